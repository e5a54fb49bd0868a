/* Symbol merging for the BPE and SPM tokenizers (see merge.h). */
#include "text/merge.h"

#include <stdlib.h>

#include "base/error.h"

static bool before(const sf_merge *a, const sf_merge *b) {
    return a->priority > b->priority || (a->priority == b->priority && a->left < b->left);
}

int sf_merge_push(sf_merge_heap *h, sf_merge m) {
    if (h->n == h->cap) {
        const size_t cap = h->cap ? h->cap * 2 : 64;
        sf_merge *ni = realloc(h->items, cap * sizeof *ni);
        if (!ni) return sf_fail(SF_ERR_NOMEM, "out of memory in the tokenizer (%zu merge candidates)", cap);
        h->items = ni;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        const size_t parent = (i - 1) / 2;
        if (!before(&m, &h->items[parent])) break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = m;
    return SF_OK;
}

sf_merge sf_merge_pop(sf_merge_heap *h) {
    const sf_merge top = h->items[0], last = h->items[--h->n];
    size_t i = 0;
    const size_t n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&h->items[c + 1], &h->items[c])) c++;
        if (!before(&h->items[c], &last)) break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (n > 0) h->items[i] = last;
    return top;
}

bool sf_merge_apply(sf_symbol *sym, const sf_merge *m) {
    sf_symbol *l = &sym[m->left], *r = &sym[m->right];
    if (l->n == 0 || r->n == 0 || l->n + r->n != m->size) return false; /* stale */
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0) sym[r->next].prev = m->left;
    return true;
}

void sf_merge_heap_free(sf_merge_heap *h) {
    free(h->items);
    h->items = NULL;
    h->n = h->cap = 0;
}
