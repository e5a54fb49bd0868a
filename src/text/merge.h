/* What the two merge tokenizers (BPE, SPM) share: a word as a linked list of
 * symbols, candidate merges of adjacent symbols in a priority heap (highest
 * priority first, leftmost on ties), and applying a merge. BPE gives a merge
 * the priority -rank (exact: ranks are < 2^24), SPM the merged token's score. */
#ifndef SF_TEXT_MERGE_H
#define SF_TEXT_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t prev, next; /* symbol indices, -1 at the ends */
    uint32_t off, n;    /* bytes of the word; n == 0 once merged into its left neighbour */
} sf_symbol;

typedef struct {
    float priority;
    int32_t left, right;
    uint32_t size; /* byte size of the pair when pushed: stale if it changed */
} sf_merge;

typedef struct {
    sf_merge *items; /* [cap] a binary heap of n */
    size_t n, cap;
} sf_merge_heap;

/* SF_OK, or SF_ERR_NOMEM (recorded). */
int sf_merge_push(sf_merge_heap *h, sf_merge m);
/* The first merge; h->n > 0. */
sf_merge sf_merge_pop(sf_merge_heap *h);
/* Joins m.right into m.left unless the merge is stale (either side already
 * merged away or changed size); whether it did. */
bool sf_merge_apply(sf_symbol *sym, const sf_merge *m);
void sf_merge_heap_free(sf_merge_heap *h);

#endif
