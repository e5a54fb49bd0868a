/* The steps of the forward pass (forward.c) that other sub-layer
 * implementations reuse (forward_sparse.c). Each step is one parallel region
 * of the context's pool (or runs inline in a serial shadow context). */
#ifndef SF_MODEL_FORWARD_IMPL_H
#define SF_MODEL_FORWARD_IMPL_H

#include "model/context.h"

sf_matrix sf_fw_matrix_of(const sf_gguf_tensor *t);
/* SF_ACT_* kind of the activations a weight's vec_dot reads */
int sf_fw_weight_kind(const sf_gguf_tensor *t);
/* Activation kinds the matmuls with these weights read (NULLs ignored). */
uint32_t sf_fw_kinds_for(const sf_gguf_tensor *a, const sf_gguf_tensor *b, const sf_gguf_tensor *c);
void sf_fw_run_region(sf_context *c, sf_pool_fn fn, void *job);
/* xn = norm(x) for T rows, quantized into `kinds` (c->act). */
void sf_fw_norm_quantize(sf_context *c, int T, const sf_gguf_tensor *norm, uint32_t kinds);
/* src [T][n] quantized into `kinds`. */
void sf_fw_quantize(sf_context *c, int T, const float *src, int n, uint32_t kinds);
/* out (+)= W · act for T rows; ggml_rows: llama.cpp's row count (T elsewhere). */
void sf_fw_matmul(sf_context *c, int T, const sf_gguf_tensor *w, float *out, int64_t out_stride, bool accumulate,
                  int ggml_rows);
/* x += post_norm(tmp) */
void sf_fw_post_norm_residual(sf_context *c, int T, const sf_gguf_tensor *post_norm);
/* where a sub-layer writes: x (accumulating), or tmp when a post-norm follows */
float *sf_fw_sublayer_out(sf_context *c, const sf_gguf_tensor *post_norm);

/* The FFN sub-layer of one token (the row c->x) with the side-car's sparse
 * sites (forward_sparse.c): x += post_norm(W_down · h) over active channels. */
struct sf_sparse;
void sf_sparse_ffn_token(sf_context *c, const sf_layer *L, int il);
/* TEAL on the attention of row t of the batch: q, k, v (+ biases) from the
 * active channels of xn[t]; o[n_embd] = Wo · att[t] over its active ones. */
void sf_sparse_attn_in(sf_context *c, const sf_layer *L, int il, int t);
void sf_sparse_attn_out(sf_context *c, const sf_layer *L, int il, int t, float *o);

#endif
