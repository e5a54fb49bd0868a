/* An inference context: KV cache, thread pool and every work buffer,
 * allocated once in sf_context_new (nothing is allocated per token). */
#ifndef SF_MODEL_CONTEXT_H
#define SF_MODEL_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/threads.h"
#include "model/kv_cells.h"
#include "model/model.h"
#include "tensor/fp16.h"
#include "tensor/matmul.h"
#include "sparsefuse_routing.h"
#include "sparsefuse_sparsity.h"

/* Activation types a weight can ask for (its vec_dot_type). */
enum { SF_ACT_F32, SF_ACT_F16, SF_ACT_BF16, SF_ACT_Q8_0, SF_ACT_Q8_1, SF_ACT_Q8_K, SF_ACT_KINDS };

typedef struct {
    void *buf[SF_ACT_KINDS]; /* [n_batch][row bytes of n_in_max values] each */
    size_t stride[SF_ACT_KINDS];
} sf_act_buffers;

struct sf_context {
    sf_model *model;
    sf_pool *pool;
    int n_ctx, n_batch, n_threads;
    int n_past;

    /* KV cache, per attention layer slot: [n_ctx cells][n_head_kv * head_dim] f16 */
    sf_fp16 **k_cache, **v_cache;
    sf_kv_cells *kv_cells; /* [n_kv_layers] the position each cell holds */

    /* work buffers, B = n_batch */
    float *x;      /* [B][n_embd] residual stream */
    float *xn;     /* [B][n_embd] normed input of a sub-block */
    float *tmp;    /* [B][n_embd] sub-block output before post-norm */
    float *x0, *xsum; /* [B][n_embd] each: a parallel group's input and summed contributions */
    /* Parallel-block groups: one shadow per member of the widest group, a
     * copy of this context with its own work buffers that runs its regions
     * on the calling thread (serial), so a whole group is one pool region. */
    bool serial;
    sf_context *shadow; /* [n_shadow] */
    int n_shadow;
    float *q;      /* [B][n_head_max * head_dim_k] */
    float *k;      /* [B][n_head_kv_max * head_dim_k] */
    float *v;      /* [B][n_head_kv_max * head_dim_v] */
    float *att;    /* [B][n_head_max * head_dim_v] attention output */
    float *hb;     /* [B][n_ff_max] gated FFN hidden */
    float *hb2;    /* [B][n_ff_max] up projection */
    float *attn_work; /* [n_threads][attn_work_floats] attention scratch */
    size_t attn_work_floats;
    int *pos;      /* [B] position of each token of the batch */
    const float *rope_factors; /* [n_rot/2] RoPE divisors for this context's size, or NULL */
    int *cell, *cell_lo; /* [B] each: KV cell a token writes in the current layer, first cell it attends to */
    /* Per-token routing: the rows of the tokens that run a sub-block are
     * gathered into these and the sub-block runs on them as a batch. */
    float *x_gather; /* [B][n_embd] */
    int *pos_gather; /* [B] */
    int *row_token;  /* [B] token (index in the batch) of each gathered row */
    int32_t *tokens; /* [B] */
    sf_act_buffers act;

    /* Contextual sparsity (sparse/sparse.h): the side-car in use, or NULL,
     * and which tokens run it (sf_context_sparse_policy). */
    struct sf_sparse *sparse;
    int sparse_max_batch, sparse_min_pos;
    const void **sp_rows; /* [n_threads][sp_stride] active rows of a transposed matrix, per thread */
    float *sp_scale;      /* [n_threads][sp_stride] their scales */
    size_t sp_stride;     /* max(n_embd, n_ff_max, q and v widths) */
    float *sp_part;       /* [n_threads][SF_SPARSE_SLOTS][sp_stride] per-thread partial products (row split) */
    bool sp_split_rows;   /* threads split the active rows (partials summed) instead of the columns */
    bool *sp_not_dense;   /* [B] token does not join the dense FFN batch of this layer (skips it, or runs sparse) */
    void *sp_pscratch, *sp_zq; /* predictor: sf_predictor_project's scratch and its z = A x̃ (Q8_0) */
    sf_sparse_stats sp_stats;
    struct sf_wcache_set *sp_cache; /* SF_SPARSE_CACHE=diff: the differential weight caches, or NULL */

    /* Depth routing (route/routes.h): the routes in use, or NULL, and how they run. */
    struct sf_routes *routes;
    sf_route_policy route_policy;
    float *route_score;  /* [B] router score of each token of the batch at the current block */
    bool *route_skip;    /* [B] token skips the current routed block */
    bool *route_kv_only; /* [B] it skips, but stores its K/V there (KV-preserving policy) */
    float *route_x_in;   /* [B][n_embd] block input of each token (scaled outputs, KV-preserving restores) */
    int64_t *route_ran, *route_seen; /* [n_layer] tokens that ran / reached each block since the last reset */
    bool *route_map;     /* [n_ctx][n_layer] decisions per position, when kept (NULL otherwise) */

    float *logits;   /* [B][n_vocab] */
    int n_logits;    /* rows of logits valid after the last decode */
    int logits_first;/* index (in the last call) of the first row kept */
    int last_n;      /* tokens in the last sf_decode call */
};

/* Where a run plan shows the residual stream to on_stage. */
typedef enum {
    SF_STAGE_INPUT = 0,      /* entering the layer */
    SF_STAGE_AFTER_ATTN = 1, /* after its attention sub-block */
    SF_STAGE_OUTPUT = 2      /* leaving the layer */
} sf_stage;

/* What one forward pass runs, beyond the model's layer plan. A
 * zero-initialised plan is the plain dense pass. Every field is optional:
 *  - a slice of the layers: start at start_layer from a residual stream the
 *    caller gives, stop before end_layer (no final norm, no logits);
 *  - sub-blocks dropped for every token (FFN Fusion's attention removal);
 *  - per-token routing (Mixture-of-Depths): token t skips layer l's attention
 *    or FFN where skip_*[l * n_tokens + t] is set, n_tokens being the tokens
 *    of the call. The tokens that run a sub-block are gathered and run as one
 *    batch; a token that skips attention writes no KV entry there, and later
 *    tokens do not see it at that layer (kv_cells.h);
 *  - ffn_hidden sees, and may zero, the FFN hidden activations h [T][n_ff]
 *    of each layer before the down projection; row i belongs to token
 *    row_token[i] of the call (the hook for a per-token FFN neuron subset);
 *  - on_ffn sees each FFN's normed input xn [T][n_embd], gate
 *    pre-activations g [T][n_ff] and hidden activations h [T][n_ff]
 *    (rows as for ffn_hidden; sparsity calibration);
 *  - on_attn sees each attention's normed input xn [T][n_embd] and the
 *    attention output att [T][n_head * head_dim_v] that Wo reads (rows as
 *    for ffn_hidden; sparsity calibration);
 *  - on_stage sees the residual stream [T][n_embd] at each sf_stage.
 * Tokens a side-car runs sparse (sf_context_use_sparse) call neither FFN
 * hook.
 * In a parallel group (all members read the group's input) on_stage is
 * called with SF_STAGE_INPUT at its first layer and SF_STAGE_OUTPUT at its
 * last; per-token routing and slices that cut a group are errors there. */
typedef struct {
    int start_layer;          /* 0: from the embedding */
    const float *x_start;     /* [T][n_embd] residual stream entering start_layer (start_layer > 0) */
    int end_layer;            /* > 0: stop before this layer */
    const bool *drop_attn;    /* [n_layer]: attention removed for every token where set */
    const bool *drop_ffn;     /* [n_layer]: FFN removed for every token where set */
    const bool *skip_attn;    /* [n_layer][n_tokens]: token t skips layer l's attention where set */
    const bool *skip_ffn;     /* [n_layer][n_tokens]: token t skips layer l's FFN where set */
    void (*ffn_hidden)(void *user, int layer, const int *row_token, int T, float *h, int n_ff);
    void (*on_ffn)(void *user, int layer, const int *row_token, int T, const float *xn, const float *g, const float *h,
                   int n_ff);
    void (*on_attn)(void *user, int layer, const int *row_token, int T, const float *xn, const float *att, int n_att);
    void (*on_stage)(void *user, int layer, sf_stage stage, const float *x, int T);
    void *user;
} sf_run_plan;

/* Runs the model on tokens[0..T) at positions n_past.., T <= n_batch,
 * without advancing n_past; writes logits for tokens [logits_from, T) into
 * c->logits rows 0... plan may be NULL (the dense pass); its per-token masks
 * have n_tokens = T. */
int sf_forward(sf_context *c, const int32_t *tokens, int T, int logits_from, const sf_run_plan *plan);

/* sf_forward for tokens [t_first, t_first + T) of a call of n_tokens, under
 * a plan whose per-token masks have n_tokens columns. */
int sf_forward_part(sf_context *c, const int32_t *tokens, int T, int logits_from, const sf_run_plan *plan, int t_first,
                    int n_tokens);

/* sf_decode under a run plan whose per-token masks have n_tokens = n. */
int sf_decode_plan(sf_context *c, const int32_t *tokens, int n, bool all_logits, const sf_run_plan *plan);

#endif
