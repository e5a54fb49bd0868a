/* The low-rank neuron predictor (Deja Vu, NimbleEdge sparse_transformers):
 * from the FFN input x̃ = norm(x), a rank-r estimate of the gate
 * pre-activations,
 *
 *   ĝ = B · (A · x̃),   A {n_embd -> rank}, B {rank -> n_ff},
 *
 * and neuron i runs where |act(ĝ_i)| > t. It costs rank·(n_embd + n_ff)
 * multiply-adds per token instead of the gate's n_embd·n_ff.
 *
 * The fit is the least-squares rank-r regression of the gate pre-activations
 * g = W x̃ on x̃ over calibration text: minimize E‖W x̃ - P x̃‖² over rank-r P.
 * With the input covariance Σ = E[x̃ x̃ᵀ] = L Lᵀ (Cholesky), that is
 * ‖(W - P) L‖²_F, solved by the top-r right singular vectors V_r of W L:
 * P = (W L V_r)(V_rᵀ L⁻¹), so B = W L V_r and A = V_rᵀ L⁻¹ (the z = A x̃ have
 * unit variance, which suits their 8-bit quantization). Only Σ is gathered
 * from the text, since E[x̃ gᵀ] = Σ Wᵀ exactly. A and B are stored Q8_0. */
#ifndef SF_SPARSE_PREDICTOR_H
#define SF_SPARSE_PREDICTOR_H

#include <stdint.h>

#include "model/ops.h"

typedef struct {
    const void *a; /* Q8_0, rank rows of n_embd values */
    const void *b; /* Q8_0, n_ff rows of rank values */
    int rank;
    int64_t n_embd, n_ff;
} sf_predictor;

/* Bytes of the scratch sf_predictor_project needs. */
size_t sf_predictor_scratch_bytes(int64_t n_embd, int rank);
/* zq = Q8_0(A · x) for x[n_embd]; scratch of sf_predictor_scratch_bytes. */
void sf_predictor_project(const sf_predictor *p, const float *x, void *scratch, void *zq);
/* ĝ_i for i in [i0, i1) into y[i - i0], from zq. */
void sf_predictor_scores(const sf_predictor *p, const void *zq, int64_t i0, int64_t i1, float *y);
/* Bytes of zq. */
size_t sf_predictor_zq_bytes(int rank);

/* The fit above: cov[n_embd²] = Σ x xᵀ over n tokens (row-major, both
 * triangles or the upper one), w[n_ff][n_embd] the dequantized gate.
 * Writes a[rank][n_embd] and b[n_ff][rank] (floats) and the fraction of the
 * gate pre-activations' variance on the text the rank-r estimate keeps. */
int sf_predictor_fit(const double *cov, int64_t n, const float *w, int64_t n_embd, int64_t n_ff, int rank, float *a,
                     float *b, double *explained);

#endif
