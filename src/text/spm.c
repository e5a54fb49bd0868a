/* SentencePiece-style BPE (tokenizer.ggml.model = "llama") for one raw
 * fragment, as llama.cpp's llm_tokenizer_spm_session: spaces become U+2581,
 * the text is split into UTF-8 characters, and the adjacent pair whose
 * concatenation is the highest-scoring vocab token is merged first (leftmost
 * on ties). Symbols that are not tokens fall back to <0xXX> byte tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "text/unicode.h"
#include "text/vocab_impl.h"

typedef struct {
    int32_t prev, next;
    uint32_t off, n; /* n == 0 once merged into its left neighbour */
} symbol;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size;
} bigram;

/* max-heap on score, then min on left */
static bool before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct {
    symbol *sym;
    bigram *heap;
    size_t n_heap, cap_heap;
} spm_scratch;

static int heap_push(spm_scratch *s, bigram b) {
    if (s->n_heap == s->cap_heap) {
        size_t cap = s->cap_heap ? s->cap_heap * 2 : 64;
        bigram *nh = realloc(s->heap, cap * sizeof(*nh));
        if (!nh) return sf_fail(SF_ERR_NOMEM, "out of memory in the SPM tokenizer");
        s->heap = nh;
        s->cap_heap = cap;
    }
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&b, &s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = b;
    return SF_OK;
}

static bigram heap_pop(spm_scratch *s) {
    bigram top = s->heap[0];
    bigram last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) s->heap[i] = last;
    return top;
}

static int try_bigram(const sf_vocab *v, spm_scratch *s, const char *text, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return SF_OK;
    const symbol *l = &s->sym[left], *r = &s->sym[right];
    uint32_t size = l->n + r->n; /* r follows l directly in the text */
    int32_t id = sf_vocab_lookup(v, text + l->off, size);
    if (id < 0) return SF_OK;
    return heap_push(s, (bigram){v->scores[id], left, right, size});
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
    s.sym = malloc((raw_len + 1) * sizeof(symbol));
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
        s.sym[n_sym] = (symbol){n_sym - 1, -1, (uint32_t)off, (uint32_t)n};
        off += n;
        if (off < len) s.sym[n_sym].next = n_sym + 1;
        n_sym++;
    }
    for (int32_t i = 1; i < n_sym; i++)
        if ((rc = try_bigram(v, &s, text, i - 1, i))) goto done;
    while (s.n_heap > 0) {
        bigram b = heap_pop(&s);
        symbol *l = &s.sym[b.left], *r = &s.sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s.sym[r->next].prev = b.left;
        if ((rc = try_bigram(v, &s, text, l->prev, b.left))) goto done;
        if ((rc = try_bigram(v, &s, text, b.left, l->next))) goto done;
    }
    /* Every merged symbol is a token by construction, so llama.cpp's
     * reverse-merge re-segmentation never applies: a symbol is either a
     * token or falls back to bytes. */
    for (int32_t i = n_sym ? 0 : -1; i >= 0; i = s.sym[i].next) {
        const symbol *sy = &s.sym[i];
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
    free(s.heap);
    return rc;
}
