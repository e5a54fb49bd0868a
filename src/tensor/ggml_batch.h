/* Dot products in the float order of llama.cpp's CPU matmul paths that are
 * not plain vec_dot (internal). The integers are identical; what differs is
 * how the per-block partial sums are scaled and added, and that is enough to
 * move logits by ~1e-6 relative, which models like SmolLM2 and Gemma 3
 * amplify. Which path ggml takes depends on the weight type, the number of
 * weight rows and the batch size; sf_ggml_batch_dot picks the same one. */
#ifndef SF_TENSOR_GGML_BATCH_H
#define SF_TENSOR_GGML_BATCH_H

#include <stdint.h>

#include "tensor/types.h"

/* The dot function ggml would use for row t of a batch of n_tokens
 * activation rows against a weight of this type with n_out rows, when that
 * differs from the type's vec_dot; NULL when vec_dot is what ggml computes. */
sf_vec_dot_fn sf_ggml_batch_dot(sf_type type, int64_t n_out, int n_tokens, int t);

/* The same choice as a float order: SF_GGML_VEC_DOT (the type's vec_dot)
 * or one of the SF_KQ_* orders of tensor/kq_unpack.h. */
enum { SF_GGML_VEC_DOT = -1 };
int sf_ggml_batch_order(sf_type type, int64_t n_out, int n_tokens, int t);

/* Q4_K weights repacked 8 rows at a time (ggml's q4_K_8x8_q8_K on AVX2 and
 * AVX-512 CPUs, any batch size when n_out % 8 == 0): gemv and gemm orders. */
float sf_ggml_dot_q4_K_repacked_gemv(int64_t n, const void *w, const void *a);
float sf_ggml_dot_q4_K_repacked_gemm(int64_t n, const void *w, const void *a);

/* ggml's tiled K-quant matmul (batches of >= 8 rows, weights not repacked). */
float sf_ggml_dot_kquant_tiled_q3_K(int64_t n, const void *w, const void *a);
float sf_ggml_dot_kquant_tiled_q4_K(int64_t n, const void *w, const void *a);
float sf_ggml_dot_kquant_tiled_q5_K(int64_t n, const void *w, const void *a);
float sf_ggml_dot_kquant_tiled_q6_K(int64_t n, const void *w, const void *a);

#endif
