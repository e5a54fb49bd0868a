/* Attention for one query head, with ggml's CPU arithmetic reproduced
 * operation for operation, so sparsefuse's logits track llama.cpp's instead
 * of drifting on models that amplify rounding (SmolLM2 at Q4_1 does: two of
 * llama.cpp's own attention paths differ by NMSE ~1e-2 there).
 *
 * What ggml does (non-flash attention, AVX-512 build):
 *  - q is rounded to f16; K·q is an f16 dot product accumulated in 16-lane
 *    f32 FMA registers — one register for batches (llamafile tinyBLAS), four
 *    registers 64 values apart for single-token decode (ggml_vec_dot_f16) —
 *    then summed with _mm512_reduce_add_ps's tree;
 *  - softmax uses a polynomial exp (ggml_v_expf) and sums 16-value blocks of
 *    the KV row in double;
 *  - probabilities are rounded to f16 before the V product (same dot shapes). */
#ifndef SF_MODEL_ATTENTION_H
#define SF_MODEL_ATTENTION_H

#include <stdbool.h>

#include "tensor/fp16.h"

/* ggml_v_expf: the vectorized exp ggml uses in softmax and SiLU. */
float sf_ggml_expf(float x);

typedef struct {
    const sf_fp16 *k, *v; /* cache rows: position s, head kh at (s * kv_stride + kh) * head_dim */
    int kv_stride;        /* KV heads per position */
    int head_dim_k, head_dim_v;
    float scale;          /* applied to q·k */
    bool batched;         /* the query came in a multi-token batch (tinyBLAS shapes) */
} sf_attn_args;

/* out[head_dim_v] = softmax(scale · q·K[lo..p]) · V[lo..p] for KV head kh.
 * scores: scratch of at least p - (lo & ~15) + 16 floats; qh: scratch of head_dim_k. */
void sf_attention_head(const sf_attn_args *a, const float *q, int kh, int lo, int p, float *scores, float *qh,
                       float *out);

#endif
