/* SentencePiece-style BPE (tokenizer.ggml.model = "llama") for one raw
 * fragment, as llama.cpp's llm_tokenizer_spm_session: spaces become U+2581,
 * the text is split into UTF-8 characters, and the adjacent pair whose
 * concatenation is the highest-scoring vocab token is merged first (leftmost
 * on ties). Symbols that are not tokens fall back to <0xXX> byte tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "text/merge.h"
#include "text/unicode.h"
#include "text/vocab_impl.h"

typedef struct {
    sf_symbol *sym;
    sf_merge_heap heap;
} spm_scratch;

static int try_bigram(const sf_vocab *v, spm_scratch *s, const char *text, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return SF_OK;
    const sf_symbol *l = &s->sym[left], *r = &s->sym[right];
    uint32_t size = l->n + r->n; /* r follows l directly in the text */
    int32_t id = sf_vocab_lookup(v, text + l->off, size);
    if (id < 0) return SF_OK;
    return sf_merge_push(&s->heap, (sf_merge){v->scores[id], left, right, size}); /* highest score first */
}

/* llama.cpp byte_to_token for SPM: "<0xXX>", else the byte itself. */
static int32_t byte_token(const sf_vocab *v, uint8_t b) {
    char buf[8];
    snprintf(buf, sizeof buf, "<0x%02X>", b);
    int32_t id = sf_vocab_lookup(v, buf, 6);
    if (id < 0) id = sf_vocab_lookup(v, (const char *)&b, 1);
    if (id < 0) id = v->unk; /* llama.cpp would throw here */
    return id;
}

int sf_spm_tokenize(const sf_vocab *v, const char *raw, size_t raw_len, sf_ids *out) {
    /* escaped text: at most 3 bytes per input byte (space -> U+2581) */
    spm_scratch s = {0};
    int rc = SF_OK;
    char *text = malloc(raw_len * 3 + 1);
    s.sym = malloc((raw_len + 1) * sizeof(sf_symbol));
    if (!text || !s.sym) {
        rc = sf_fail(SF_ERR_NOMEM, "out of memory tokenizing %zu bytes", raw_len);
        goto done;
    }
    size_t len = 0;
    for (size_t i = 0; i < raw_len; i++) {
        if (raw[i] == ' ') {
            memcpy(text + len, "\xE2\x96\x81", 3);
            len += 3;
        } else {
            text[len++] = raw[i];
        }
    }
    int32_t n_sym = 0;
    for (size_t off = 0; off < len;) {
        size_t n = sf_utf8_len((uint8_t)text[off]);
        if (n > len - off) n = len - off;
        s.sym[n_sym] = (sf_symbol){n_sym - 1, -1, (uint32_t)off, (uint32_t)n};
        off += n;
        if (off < len) s.sym[n_sym].next = n_sym + 1;
        n_sym++;
    }
    for (int32_t i = 1; i < n_sym; i++)
        if ((rc = try_bigram(v, &s, text, i - 1, i))) goto done;
    while (s.heap.n > 0) {
        const sf_merge b = sf_merge_pop(&s.heap);
        if (!sf_merge_apply(s.sym, &b)) continue;
        const sf_symbol *l = &s.sym[b.left];
        if ((rc = try_bigram(v, &s, text, l->prev, b.left))) goto done;
        if ((rc = try_bigram(v, &s, text, b.left, l->next))) goto done;
    }
    /* Every merged symbol is a token by construction, so llama.cpp's
     * reverse-merge re-segmentation never applies: a symbol is either a
     * token or falls back to bytes. */
    for (int32_t i = n_sym ? 0 : -1; i >= 0; i = s.sym[i].next) {
        const sf_symbol *sy = &s.sym[i];
        int32_t id = sf_vocab_lookup(v, text + sy->off, sy->n);
        if (id >= 0) {
            if ((rc = sf_ids_push(out, id))) goto done;
            continue;
        }
        for (uint32_t j = 0; j < sy->n; j++) {
            int32_t bid = byte_token(v, (uint8_t)text[sy->off + j]);
            if (bid >= 0 && (rc = sf_ids_push(out, bid))) goto done;
        }
    }
done:
    free(text);
    free(s.sym);
    sf_merge_heap_free(&s.heap);
    return rc;
}
