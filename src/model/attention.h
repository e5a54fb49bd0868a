/* Attention for one query head, with ggml's CPU flash-attention arithmetic
 * (GGML_OP_FLASH_ATTN_EXT, what llama.cpp uses by default on CPU) reproduced
 * operation for operation, so sparsefuse's logits track llama.cpp's instead
 * of drifting on models that amplify rounding (SmolLM2 at Q4_1 does).
 *
 * ggml picks one of three paths; so do we (see attention_impl.h):
 *  - VEC    batches of < 64 queries: q rounded to f16, K·q by ggml_vec_dot_f16,
 *           online softmax with libm expf, V accumulated in an f16 vector;
 *  - TILED  batches of >= 64 queries: f32 q, KV in tiles of 64, K·q and P·V as
 *           f32 FMA chains, tile softmax with ggml's vector exp, sums in double;
 *  - SPLIT  single-token decode once the padded KV length reaches 512: the VEC
 *           path over one contiguous KV chunk per thread, partials merged.
 * Key positions are KV cells: one sequence, filled in order from cell 0. */
#ifndef SF_MODEL_ATTENTION_H
#define SF_MODEL_ATTENTION_H

#include "tensor/fp16.h"

/* ggml_v_expf: the vectorized exp ggml uses in softmax. */
float sf_ggml_expf(float x);

typedef enum { SF_ATTN_VEC, SF_ATTN_TILED } sf_attn_path;

typedef struct {
    const sf_fp16 *k, *v; /* cache rows: position s, head kh at (s * kv_stride + kh) * head_dim */
    int kv_stride;        /* KV heads per position */
    int head_dim_k, head_dim_v;
    float scale;          /* applied to q·k */
    sf_attn_path path;
    int split_chunk;      /* VEC only: > 0 merges partials over KV chunks of this many cells */
} sf_attn_args;

/* Floats of per-thread scratch sf_attention_head needs. */
#define SF_ATTN_WORK_FLOATS(hk, hv) (64 + (hk) + 3 * (hv) + 64)

/* ggml's choice of path and split for a batch of n_tokens queries whose last
 * key cell is p_last, computed with n_threads threads. */
void sf_attn_plan(sf_attn_args *a, int n_tokens, int p_last, int n_threads);

/* out[head_dim_v] = softmax(scale · q·K[lo..p]) · V[lo..p] for KV head kh.
 * work: SF_ATTN_WORK_FLOATS(head_dim_k, head_dim_v) floats. */
void sf_attention_head(const sf_attn_args *a, const float *q, int kh, int lo, int p, float *work, float *out);

#endif
