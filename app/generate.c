#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double app_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Length of the UTF-8 sequence a lead byte starts (1 for invalid bytes). */
static int seq_len(unsigned char b) {
    if (b < 0x80) return 1;
    if ((b & 0xe0) == 0xc0) return 2;
    if ((b & 0xf0) == 0xe0) return 3;
    if ((b & 0xf8) == 0xf0) return 4;
    return 1;
}

static void capture(utf8_stream *s, const char *p, size_t n) {
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        while (cap < s->len + n + 1) cap *= 2;
        char *t = realloc(s->text, cap);
        if (!t) return; /* keeps what fits; the output itself is unaffected */
        s->text = t;
        s->cap = cap;
    }
    memcpy(s->text + s->len, p, n);
    s->len += n;
    s->text[s->len] = '\0';
}

void utf8_put(utf8_stream *s, const char *p, size_t n) {
    if (s->capture) capture(s, p, n);
    /* the stream is pend[0..n_pend) followed by p[0..n) */
    size_t total = (size_t)s->n_pend + n;
#define BYTE(i) ((unsigned char)((i) < (size_t)s->n_pend ? s->pend[(i)] : p[(i) - (size_t)s->n_pend]))
    size_t hold = 0;
    for (size_t k = 1; k <= 4 && k <= total; k++) {
        unsigned char b = BYTE(total - k);
        if ((b & 0xc0) == 0x80) continue; /* continuation byte: look further back */
        if ((size_t)seq_len(b) > k) hold = k;
        break;
    }
    size_t emit = total - hold;
    char keep[4];
    for (size_t i = 0; i < hold; i++) keep[i] = (char)BYTE(emit + i);
#undef BYTE
    size_t from_pend = emit < (size_t)s->n_pend ? emit : (size_t)s->n_pend;
    fwrite(s->pend, 1, from_pend, s->f);
    if (emit > from_pend) fwrite(p, 1, emit - from_pend, s->f);
    memcpy(s->pend, keep, hold);
    s->n_pend = (int)hold;
}

void utf8_flush(utf8_stream *s) {
    if (s->n_pend) fwrite(s->pend, 1, (size_t)s->n_pend, s->f);
    s->n_pend = 0;
    fflush(s->f);
}

int app_decode_timed(sf_context *c, const int32_t *toks, int n, double *seconds) {
    double t0 = app_now();
    int rc = n > 0 ? sf_decode(c, toks, n, false) : SF_OK;
    *seconds = app_now() - t0;
    return rc;
}

int app_generate(sf_context *c, const sf_model *m, sf_sampler *s, int n_max, utf8_stream *out,
                 gen_stats *st, int32_t *kv_out, int kv_cap) {
    memset(st, 0, sizeof *st);
    char small[256];
    double t0 = app_now();
    int rc = SF_OK;
    while (n_max < 0 || st->n_gen < n_max) {
        const float *lg = sf_get_logits(c, -1);
        if (!lg) { rc = SF_ERR_RANGE; break; }
        int32_t tok = sf_sampler_sample(s, lg);
        if (tok < 0) { rc = SF_ERR_ARG; break; }
        if (sf_token_is_eog(m, tok)) { st->eog = true; break; }
        int len = sf_token_to_piece(m, tok, small, (int)sizeof small, false);
        if (len < 0) { /* a very long piece */
            char *big = malloc((size_t)-len);
            if (big) {
                len = sf_token_to_piece(m, tok, big, -len, false);
                if (len > 0) utf8_put(out, big, (size_t)len);
                free(big);
            }
        } else {
            utf8_put(out, small, (size_t)len);
        }
        fflush(out->f);
        st->n_gen++;
        if (n_max >= 0 && st->n_gen >= n_max) break;
        if (sf_context_n_past(c) >= sf_context_n_ctx(c)) { st->ctx_full = true; break; }
        rc = sf_decode(c, &tok, 1, false);
        if (rc != SF_OK) break;
        if (kv_out && st->n_decoded < kv_cap) kv_out[st->n_decoded] = tok;
        st->n_decoded++;
    }
    st->seconds = app_now() - t0;
    return rc;
}
