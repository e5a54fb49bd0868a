/* A naive reference forward pass for small F32 llama models (sparsefuse
 * synth --shape tiny): double precision, token by token, a per-layer list of
 * the KV entries the tokens that ran attention wrote. Per-token sub-block
 * skips come from masks; a routed block decides them itself from its router
 * (Mixture-of-Depths, sparsefuse_routing.h), exactly as defined, so the
 * engine's routing can be held to it. */
#ifndef SF_TEST_REF_FORWARD_H
#define SF_TEST_REF_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"

typedef struct {
    const sf_model *m;
    int n_tok;
    const int32_t *tok;       /* [n_tok] at positions 0.. */
    bool *skip_attn, *skip_ffn; /* [n_layer][n_tok]: read; routed layers write theirs */
    /* routing (routed may be NULL: none) */
    const bool *routed;       /* [n_layer] */
    const float *const *w;    /* [n_layer] router weights [n_embd] on x / rms(x) */
    const float *bias, *thr;  /* [n_layer] a token runs the block when its score >= thr */
    bool kv_preserve;         /* a skipped token still stores its K/V at the block */
    bool scale;               /* x + r·f(x) */
    double *score;            /* [n_layer][n_tok] out: router scores (may be NULL) */
} ref_spec;

/* Logits of every token, [n_tok][n_vocab] (malloc'd). */
double *ref_logits(const ref_spec *s);

/* NMSE of a against the reference. */
double ref_nmse(const float *a, const double *ref, size_t n);

#endif
