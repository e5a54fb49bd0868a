/* Attention with ggml's CPU flash-attention arithmetic (GGML_OP_FLASH_ATTN_EXT,
 * what llama.cpp uses by default on CPU) reproduced operation for operation,
 * so sparsefuse's logits track llama.cpp's instead of drifting on models that
 * amplify rounding (SmolLM2 at Q4_1 does).
 *
 * ggml picks one of three paths; so do we (sf_attn_plan):
 *  - VEC    batches of < 64 queries: q rounded to f16, K·q by ggml_vec_dot_f16,
 *           online softmax with libm expf, V accumulated in an f16 vector;
 *  - TILED  batches of >= 64 queries: f32 q, KV in tiles of 64 cells aligned to
 *           cell 0, K·q and P·V as f32 FMA chains, tile softmax with ggml's
 *           vector exp and sums in double;
 *  - SPLIT  single-token decode once the padded KV length reaches 512: the VEC
 *           path over one contiguous KV chunk per thread, partials merged.
 * Keys are KV cells: one sequence, filled in order from cell 0 (a layer that
 * some tokens skipped holds fewer cells than positions, see kv_cells.h).
 * Each path has a portable implementation (attention_impl.h) and an AVX2 one
 * (attention_avx2.c) with bit-identical results (tests/test_attention.c). */
#ifndef SF_MODEL_ATTENTION_H
#define SF_MODEL_ATTENTION_H

#include "tensor/fp16.h"

/* ggml_v_expf: the vectorized exp ggml uses in softmax and SiLU. */
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

/* ggml's choice of path and split for a batch of n_tokens queries whose last
 * key cell is p_last, computed with n_threads threads. */
void sf_attn_plan(sf_attn_args *a, int n_tokens, int p_last, int n_threads);

/* VEC path, one query row: out[head_dim_v] = softmax(scale · q·K[lo..p]) ·
 * V[lo..p] for KV head kh. work: SF_ATTN_WORK_FLOATS floats. */
void sf_attention_head(const sf_attn_args *a, const float *q, int kh, int lo, int p, float *work, float *out);

/* TILED path work item: query tokens [t0, t1) of the n_h query heads h0..
 * that share KV head kh. Token t sees cells [lo[t], cell[t]]. */
enum { SF_ATTN_ITEM_TOKENS = 8 };
typedef struct {
    const float *q; /* row of token t, head h: q + t * q_stride + h * head_dim_k */
    int q_stride;
    float *out;     /* out + t * out_stride + h * head_dim_v */
    int out_stride;
    const int *cell, *lo; /* [t1] each: the last and the first cell token t attends to */
    int t0, t1;           /* t1 - t0 <= SF_ATTN_ITEM_TOKENS */
    int h0, n_h, kh;
} sf_attn_item;
void sf_attention_tiled(const sf_attn_args *a, const sf_attn_item *it, float *work);

/* Per-thread scratch floats for either path; group = query heads per KV head. */
#define SF_ATTN_WORK_FLOATS(hk, hv, group)                                                                  \
    (64 * ((hk) + (hv)) + SF_ATTN_ITEM_TOKENS * (group) * ((hv) + 2) + (hk) + 3 * (hv) + 256)

/* The portable implementations, for tests. */
void sf_attention_head_generic(const sf_attn_args *a, const float *q, int kh, int lo, int p, float *work,
                               float *out);
void sf_attention_tiled_generic(const sf_attn_args *a, const sf_attn_item *it, float *work);

#endif
