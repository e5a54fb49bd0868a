/* The differential weight cache (wcache.h). */
#include "sparse/wcache.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"

int sf_wcache_init(sf_wcache *w, int n, size_t row_bytes) {
    memset(w, 0, sizeof *w);
    w->n = n;
    w->row_bytes = row_bytes;
    w->buf = malloc(row_bytes * (size_t)n);
    w->slot_of = malloc(sizeof(int32_t) * (size_t)n);
    w->chan_of = malloc(sizeof(int32_t) * (size_t)n);
    w->free_slots = malloc(sizeof(int32_t) * (size_t)n);
    w->enter = malloc(sizeof(int32_t) * (size_t)n);
    if (!w->buf || !w->slot_of || !w->chan_of || !w->free_slots || !w->enter) {
        sf_wcache_free(w);
        return sf_fail(SF_ERR_NOMEM, "out of memory for the weight cache");
    }
    for (int i = 0; i < n; i++) {
        w->slot_of[i] = w->chan_of[i] = -1;
        w->free_slots[i] = n - 1 - i; /* low slots first */
    }
    w->n_free = n;
    return SF_OK;
}

void sf_wcache_free(sf_wcache *w) {
    free(w->buf);
    free(w->slot_of);
    free(w->chan_of);
    free(w->free_slots);
    free(w->enter);
    memset(w, 0, sizeof *w);
}

void sf_wcache_update(sf_wcache *w, const bool *active) {
    /* rows that left free their slots first, so that entering rows pair with them */
    for (int j = 0; j < w->n; j++)
        if (!active[j] && w->slot_of[j] >= 0) {
            w->chan_of[w->slot_of[j]] = -1;
            w->free_slots[w->n_free++] = w->slot_of[j];
            w->slot_of[j] = -1;
        }
    w->n_enter = 0;
    for (int j = 0; j < w->n; j++)
        if (active[j] && w->slot_of[j] < 0) {
            const int32_t s = w->free_slots[--w->n_free];
            w->slot_of[j] = s;
            w->chan_of[s] = j;
            w->enter[w->n_enter++] = j;
        }
}

size_t sf_wcache_copy(sf_wcache *w, const uint8_t *mapped, int ith, int nth) {
    const int k0 = (int)((int64_t)w->n_enter * ith / nth), k1 = (int)((int64_t)w->n_enter * (ith + 1) / nth);
    for (int k = k0; k < k1; k++) {
        const int32_t j = w->enter[k];
        memcpy(w->buf + (size_t)w->slot_of[j] * w->row_bytes, mapped + (size_t)j * w->row_bytes, w->row_bytes);
    }
    return (size_t)(k1 - k0) * w->row_bytes;
}

int sf_wcache_rows(const sf_wcache *w, const float *x, const void **rows, float *s) {
    int k = 0;
    for (int slot = 0; slot < w->n; slot++) {
        const int32_t j = w->chan_of[slot];
        if (j < 0) continue;
        rows[k] = w->buf + (size_t)slot * w->row_bytes;
        s[k++] = x[j];
    }
    return k;
}
