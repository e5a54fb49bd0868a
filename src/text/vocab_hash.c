/* String and string-pair hash maps for the vocab (open addressing, linear
 * probing; keys are offsets into a caller-owned pool). */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "text/vocab_impl.h"

uint32_t sf_hash_bytes(const char *s, size_t n) {
    /* FNV-1a, then a final mix so the low bits used for slots are good */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    return h;
}

static size_t table_cap(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 1) cap *= 2;
    return cap;
}

int sf_strmap_init(sf_strmap *m, size_t expected) {
    m->cap = table_cap(expected);
    m->count = 0;
    m->slots = malloc(m->cap * sizeof(*m->slots));
    if (!m->slots) return sf_fail(SF_ERR_NOMEM, "out of memory for a %zu-entry hash map", expected);
    for (size_t i = 0; i < m->cap; i++) m->slots[i].val = -1;
    return SF_OK;
}

void sf_strmap_free(sf_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

int32_t sf_strmap_insert(sf_strmap *m, const char *pool, uint32_t off, uint32_t len, int32_t val) {
    uint32_t h = sf_hash_bytes(pool + off, len);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        sf_strmap_slot *s = &m->slots[i];
        if (s->val < 0) {
            s->hash = h;
            s->val = val;
            s->off = off;
            s->len = len;
            m->count++;
            return val;
        }
        if (s->hash == h && s->len == len && memcmp(pool + s->off, pool + off, len) == 0) return s->val;
    }
}

int32_t sf_strmap_find(const sf_strmap *m, const char *pool, const char *key, size_t len) {
    if (!m->slots) return -1;
    uint32_t h = sf_hash_bytes(key, len);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const sf_strmap_slot *s = &m->slots[i];
        if (s->val < 0) return -1;
        if (s->hash == h && s->len == len && memcmp(pool + s->off, key, len) == 0) return s->val;
    }
}

static uint32_t pair_hash(const char *l, size_t ll, const char *r, size_t rl) {
    return sf_hash_bytes(l, ll) * 0x9E3779B1u ^ sf_hash_bytes(r, rl);
}

int sf_pairmap_init(sf_pairmap *m, size_t expected) {
    m->cap = table_cap(expected);
    m->count = 0;
    m->slots = malloc(m->cap * sizeof(*m->slots));
    if (!m->slots) return sf_fail(SF_ERR_NOMEM, "out of memory for %zu merges", expected);
    for (size_t i = 0; i < m->cap; i++) m->slots[i].rank = -1;
    return SF_OK;
}

void sf_pairmap_free(sf_pairmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

void sf_pairmap_insert(sf_pairmap *m, const char *pool, uint32_t loff, uint32_t llen, uint32_t roff,
                       uint32_t rlen, int32_t rank) {
    uint32_t h = pair_hash(pool + loff, llen, pool + roff, rlen);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        sf_pairmap_slot *s = &m->slots[i];
        if (s->rank < 0) {
            *s = (sf_pairmap_slot){h, rank, loff, llen, roff, rlen};
            m->count++;
            return;
        }
        /* an existing pair keeps its first (lowest) rank, like emplace */
        if (s->hash == h && s->llen == llen && s->rlen == rlen &&
            memcmp(pool + s->loff, pool + loff, llen) == 0 && memcmp(pool + s->roff, pool + roff, rlen) == 0)
            return;
    }
}

int32_t sf_pairmap_find(const sf_pairmap *m, const char *pool, const char *l, size_t ll,
                        const char *r, size_t rl) {
    if (!m->slots) return -1;
    uint32_t h = pair_hash(l, ll, r, rl);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const sf_pairmap_slot *s = &m->slots[i];
        if (s->rank < 0) return -1;
        if (s->hash == h && s->llen == ll && s->rlen == rl && memcmp(pool + s->loff, l, ll) == 0 &&
            memcmp(pool + s->roff, r, rl) == 0)
            return s->rank;
    }
}

int sf_ids_push(sf_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *nv = realloc(a->v, cap * sizeof(*nv));
        if (!nv) return sf_fail(SF_ERR_NOMEM, "out of memory growing a token list to %zu", cap);
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return SF_OK;
}
