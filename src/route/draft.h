/* Internals shared by the self-speculative drafting files (sparsefuse_draft.h). */
#ifndef SF_ROUTE_DRAFT_H
#define SF_ROUTE_DRAFT_H

#include <stdint.h>

#include "sparsefuse_draft.h"

/* The greedy sampler's token: the largest logit, the lowest id on ties, NaN as -inf. */
int32_t sf_draft_argmax(const float *logits, int n_vocab);
/* SF_OK, or SF_ERR_ARG for bad parameters (k, batch size, NULLs). */
int sf_draft_check(const sf_context *c, const sf_draft_params *p);
/* Monotonic seconds. */
double sf_draft_now(void);

#endif
