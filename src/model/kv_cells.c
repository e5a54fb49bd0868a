/* KV cell bookkeeping (see kv_cells.h). */
#include "model/kv_cells.h"

/* First cell holding a position >= p (kc->n if none). */
static int first_at_or_after(const sf_kv_cells *kc, int p) {
    int a = 0, b = kc->n;
    while (a < b) {
        const int mid = a + (b - a) / 2;
        if (kc->pos[mid] < p) a = mid + 1;
        else b = mid;
    }
    return a;
}

void sf_kv_cells_append(sf_kv_cells *kc, const int *pos, int T, int n_swa, int *cell, int *lo) {
    for (int t = 0; t < T; t++) {
        cell[t] = kc->n;
        kc->pos[kc->n++] = pos[t];
        lo[t] = n_swa > 0 ? first_at_or_after(kc, pos[t] - n_swa + 1) : 0;
    }
}

void sf_kv_cells_truncate(sf_kv_cells *kc, int n_past) { kc->n = first_at_or_after(kc, n_past); }
