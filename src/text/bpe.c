/* Byte-level BPE (tokenizer.ggml.model = "gpt2") for one raw fragment:
 * decode to code points, pre-tokenize into words, map each word's UTF-8
 * bytes through the GPT-2 byte map, then merge adjacent symbols by rank
 * (lowest first, leftmost on ties), as llama.cpp's llm_tokenizer_bpe_session. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "text/merge.h"
#include "text/unicode.h"
#include "text/vocab_impl.h"

typedef struct {
    uint32_t *cps;  uint16_t *flags; size_t cap_cps;   /* [cap_cps] */
    char *word; size_t cap_word;                        /* encoded word bytes */
    sf_symbol *sym; size_t cap_sym;
    sf_merge_heap heap;
    sf_lens lens, tmp;
} bpe_scratch;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return SF_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *np = realloc(*p, c * elem);
    if (!np) return sf_fail(SF_ERR_NOMEM, "out of memory in the BPE tokenizer (%zu items)", need);
    *p = np;
    *cap = c;
    return SF_OK;
}

static int add_bigram(const sf_vocab *v, bpe_scratch *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return SF_OK;
    const sf_symbol *l = &s->sym[left], *r = &s->sym[right];
    int32_t rank = sf_pairmap_find(&v->merges, v->merge_pool, s->word + l->off, l->n, s->word + r->off, r->n);
    if (rank < 0) return SF_OK;
    return sf_merge_push(&s->heap, (sf_merge){-(float)rank, left, right, l->n + r->n}); /* lowest rank first */
}

/* Merges one encoded word s->word[wlen] and appends its ids. */
static int merge_word(const sf_vocab *v, bpe_scratch *s, size_t wlen, sf_ids *out) {
    if (v->ignore_merges) {
        int32_t id = sf_vocab_lookup(v, s->word, wlen);
        if (id >= 0) return sf_ids_push(out, id);
    }
    size_t n_sym = 0;
    if (grow((void **)&s->sym, &s->cap_sym, wlen, sizeof(sf_symbol))) return SF_ERR_NOMEM;
    for (size_t off = 0; off < wlen;) {
        size_t n = sf_utf8_len((uint8_t)s->word[off]);
        if (n > wlen - off) n = wlen - off;
        s->sym[n_sym] = (sf_symbol){(int32_t)n_sym - 1, -1, (uint32_t)off, (uint32_t)n};
        off += n;
        if (off < wlen) s->sym[n_sym].next = (int32_t)n_sym + 1;
        n_sym++;
    }
    s->heap.n = 0;
    for (size_t i = 1; i < n_sym; i++)
        if (add_bigram(v, s, (int32_t)i - 1, (int32_t)i)) return SF_ERR_NOMEM;
    while (s->heap.n > 0) {
        const sf_merge b = sf_merge_pop(&s->heap);
        if (!sf_merge_apply(s->sym, &b)) continue;
        const sf_symbol *l = &s->sym[b.left];
        if (add_bigram(v, s, l->prev, b.left) || add_bigram(v, s, b.left, l->next)) return SF_ERR_NOMEM;
    }
    for (int32_t i = n_sym ? 0 : -1; i >= 0; i = s->sym[i].next) {
        const sf_symbol *sy = &s->sym[i];
        if (sy->n == 0) continue;
        int32_t id = sf_vocab_lookup(v, s->word + sy->off, sy->n);
        if (id >= 0) {
            if (sf_ids_push(out, id)) return SF_ERR_NOMEM;
            continue;
        }
        /* llama.cpp looks up each byte of the encoded symbol as a one-byte
         * token and drops the ones that are not in the vocab */
        for (uint32_t j = 0; j < sy->n; j++) {
            int32_t bid = sf_vocab_lookup(v, s->word + sy->off + j, 1);
            if (bid >= 0 && sf_ids_push(out, bid)) return SF_ERR_NOMEM;
        }
    }
    return SF_OK;
}

static void scratch_free(bpe_scratch *s) {
    free(s->cps);
    free(s->flags);
    free(s->word);
    free(s->sym);
    sf_merge_heap_free(&s->heap);
    free(s->lens.v);
    free(s->tmp.v);
}

int sf_bpe_tokenize(const sf_vocab *v, const char *text, size_t len, sf_ids *out) {
    bpe_scratch s = {0};
    int rc = SF_OK;
    size_t cap_flags = 0;
    if (grow((void **)&s.cps, &s.cap_cps, len + 1, sizeof(uint32_t)) ||
        grow((void **)&s.flags, &cap_flags, len + 1, sizeof(uint16_t))) {
        rc = SF_ERR_NOMEM;
        goto done;
    }
    size_t n = 0;
    for (size_t off = 0; off < len; n++) {
        uint32_t cp = sf_utf8_decode(text, len, &off);
        if (cp > 0x10FFFF) cp = SF_UNICODE_REPLACEMENT; /* would not re-encode */
        s.cps[n] = cp;
        s.flags[n] = sf_unicode_flags(cp);
    }
    rc = sf_pretok_split(v->pre, s.cps, s.flags, n, &s.lens, &s.tmp);
    if (rc) goto done;
    size_t start = 0;
    for (size_t w = 0; w < s.lens.n; w++) {
        size_t wn = s.lens.v[w];
        /* each code point: at most 4 UTF-8 bytes, each mapped to <= 2 bytes */
        if (grow((void **)&s.word, &s.cap_word, wn * 8 + 1, 1)) {
            rc = SF_ERR_NOMEM;
            goto done;
        }
        size_t wlen = 0;
        for (size_t i = start; i < start + wn; i++) {
            char u[4];
            int k = sf_utf8_encode(s.cps[i], u);
            for (int j = 0; j < k; j++) {
                uint8_t b = (uint8_t)u[j];
                memcpy(s.word + wlen, v->byte_utf8[b], v->byte_utf8_len[b]);
                wlen += v->byte_utf8_len[b];
            }
        }
        start += wn;
        rc = merge_word(v, &s, wlen, out);
        if (rc) goto done;
    }
done:
    scratch_free(&s);
    return rc;
}
