/* Elementwise and row operations of the forward pass, with ggml's numerics
 * (order of operations, GELU through an f16 table) so results track llama.cpp. */
#ifndef SF_MODEL_OPS_H
#define SF_MODEL_OPS_H

#include <stdint.h>

#include "model/model.h"

/* y[n] = x / sqrt(mean(x²) + eps) * w  (w may be NULL); y may alias x. */
void sf_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

/* Rotation table for one position: cs[2i] = mscale·cos, cs[2i+1] = mscale·sin
 * of pos * freq_scale * base^(-2i/n_rot) / factors[i], i < n_rot/2 (mscale:
 * LongRoPE's attention factor, 1 elsewhere). */
void sf_rope_table(float *cs, int n_rot, int pos, float base, float freq_scale, const float *factors, float mscale);
/* Rotates one head vector x[head_dim] in place with the table. */
void sf_rope_apply(float *x, const float *cs, int n_rot, sf_rope_type type);

/* h[i] = act(g[i]) * u[i] for SiLU (SwiGLU) or tanh-GELU (GeGLU). */
void sf_glu(float *h, const float *g, const float *u, int i0, int i1, int n_row, sf_ffn_act act);
/* act(g) alone (CATS's rule, sparsity calibration): plain SiLU or tanh-GELU,
 * without ggml's exp approximation or GELU table (a threshold decision). */
float sf_gate_act(float g, sf_ffn_act act);
/* The SiLU branch of sf_glu in AVX2 (ops_avx2.c); same results. */
void sf_swiglu_avx2(float *h, const float *g, const float *u, int i0, int i1, int n_row);

#endif
