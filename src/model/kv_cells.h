/* Which positions each attention layer's KV cache holds.
 *
 * A layer that every token ran holds cell i = position i. With per-token
 * routing a token that skips a block writes nothing there, so that layer's
 * cells hold the positions of the tokens that ran it, in order: attention over
 * a layer reads a contiguous cell range and never an entry a skipped token did
 * not write (Mixture-of-Depths' rule: a token that skipped a block is invisible
 * to later tokens at that block). RoPE still uses the true position. */
#ifndef SF_MODEL_KV_CELLS_H
#define SF_MODEL_KV_CELLS_H

typedef struct {
    int n;    /* cells filled */
    int *pos; /* [n_ctx] position held by each cell, increasing */
} sf_kv_cells;

/* Appends T tokens at positions pos[0..T) (increasing, each after every held
 * position); for token t writes cell[t], the cell it fills, and lo[t], the
 * first cell it attends to: 0, or with a sliding window of n_swa > 0 the
 * first cell whose position is within n_swa of its own. */
void sf_kv_cells_append(sf_kv_cells *kc, const int *pos, int T, int n_swa, int *cell, int *lo);

/* Forgets the cells that hold positions >= n_past. */
void sf_kv_cells_truncate(sf_kv_cells *kc, int n_past);

#endif
