/* NimbleEdge's differential weight cache (sparse_transformers), as they
 * describe it, for one transposed matrix: a compact buffer holding the rows
 * of the channels active for the current token. Per token the new mask is
 * compared with the previous one (mask XOR previous); each row that left
 * frees its slot and each row that entered is copied into a freed slot
 * (paired replacement), so only changed rows move; the product then reads
 * the active rows from the buffer (a view on it) instead of from the mapped
 * file. Behind SF_SPARSE_CACHE=diff, for measurement against direct reads
 * (docs/sparsity.md). */
#ifndef SF_SPARSE_WCACHE_H
#define SF_SPARSE_WCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n; /* channels (rows of the matrix) */
    size_t row_bytes;
    uint8_t *buf;     /* [n][row_bytes] slots (every channel fits: no eviction order to choose) */
    int32_t *slot_of; /* [n] slot of channel j, or -1 */
    int32_t *chan_of; /* [n] channel in slot s, or -1 (free) */
    int32_t *free_slots, n_free;
    int32_t *enter, n_enter; /* channels copied in for this token */
} sf_wcache;

int sf_wcache_init(sf_wcache *w, int n, size_t row_bytes);
void sf_wcache_free(sf_wcache *w);

/* The new mask active[n]: frees the slots of rows that left, assigns slots
 * to rows that entered (w->enter). Serial. */
void sf_wcache_update(sf_wcache *w, const bool *active);

/* Thread ith of nth copies its share of the entering rows from the mapped
 * matrix; returns the bytes it copied. */
size_t sf_wcache_copy(sf_wcache *w, const uint8_t *mapped, int ith, int nth);

/* The active rows as views on the buffer, in slot order: rows[k], with
 * s[k] = x[channel]; returns k. */
int sf_wcache_rows(const sf_wcache *w, const float *x, const void **rows, float *s);

/* A context's caches: one per transposed FFN matrix of every layer, and a
 * mask buffer. */
struct sf_wcache_set {
    sf_wcache (*m)[3]; /* [n_layer][gate_t, up_t, down_t]; n = 0 where that matrix is not sparse */
    bool *mask;        /* [max n] */
};

#endif
