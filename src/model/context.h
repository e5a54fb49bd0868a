/* An inference context: KV cache, thread pool and every work buffer,
 * allocated once in sf_context_new (nothing is allocated per token). */
#ifndef SF_MODEL_CONTEXT_H
#define SF_MODEL_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/threads.h"
#include "model/model.h"
#include "tensor/fp16.h"
#include "tensor/matmul.h"

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

    /* KV cache, per attention layer slot: [n_ctx][n_head_kv * head_dim] f16 */
    sf_fp16 **k_cache, **v_cache;

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
    int32_t *tokens; /* [B] */
    sf_act_buffers act;

    float *logits;   /* [B][n_vocab] */
    int n_logits;    /* rows of logits valid after the last decode */
    int logits_first;/* index (in the last call) of the first row kept */
    int last_n;      /* tokens in the last sf_decode call */
};

/* Where a forward pass shows the residual stream to on_stage. */
typedef enum {
    SF_STAGE_INPUT = 0,      /* entering the layer */
    SF_STAGE_AFTER_ATTN = 1, /* after its attention sub-block */
    SF_STAGE_OUTPUT = 2      /* leaving the layer */
} sf_stage;

/* Optional control of one forward pass, for analysis tools (not for
 * models with post-norms, whose sub-block outputs are added late). A
 * zero-initialised one is the plain dense pass: start at layer
 * `start_layer` from a residual stream the caller provides, stop early,
 * remove attention or FFN sub-blocks, and see the residual stream at each
 * sf_stage of every layer. */
typedef struct {
    int start_layer;          /* 0: from the embedding */
    const float *x_start;     /* [T][n_embd] residual stream entering start_layer (start_layer > 0) */
    int end_layer;            /* > 0: stop before this layer (no final norm, no logits) */
    const bool *skip_attn;    /* optional [n_layer]: attention removed where set */
    const bool *skip_ffn;     /* optional [n_layer]: FFN removed where set */
    void (*on_stage)(void *user, int layer, sf_stage stage, const float *x, int T);
    void *user;
} sf_forward_ctl;

/* Runs the model on tokens[0..T) at positions n_past.., T <= n_batch;
 * writes logits for tokens [logits_from, T) into c->logits rows 0... */
int sf_forward(sf_context *c, const int32_t *tokens, int T, int logits_from);
int sf_forward_ctl_run(sf_context *c, const int32_t *tokens, int T, int logits_from, const sf_forward_ctl *ctl);

#endif
