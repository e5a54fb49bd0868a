/* The model: hyperparameters, the layer plan, and weights as views into the
 * mapped GGUF (nothing is copied). Internal to the library. */
#ifndef SF_MODEL_MODEL_H
#define SF_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "model/arch.h"
#include "sparsefuse.h"
#include "text/vocab.h"


/* What a block's attention sub-block is: none (deci files, or dropped by
 * `fuse`), softmax attention over the KV cache, or deci's "linear
 * attention" (x += Wo · norm(x), no KV cache). */
typedef enum { SF_ATTN_NONE, SF_ATTN_DENSE, SF_ATTN_LINEAR } sf_attn_kind;
/* What a block's FFN sub-block is: none (a no-op layer in deci files) or a
 * gated FFN of n_ff neurons (a fused group's FFNs are one wide FFN). */
typedef enum { SF_FFN_NONE, SF_FFN_DENSE } sf_ffn_kind;

/* One block of the layer plan. */
typedef struct {
    sf_attn_kind attn;
    sf_ffn_kind ffn;
    int n_head, n_head_kv, n_ff; /* 0 where the sub-block is absent; n_head_kv 0 for linear attention */
    int kv_slot;             /* index into the KV cache, -1 without attention */
    bool swa;                /* sliding-window attention layer */
    float rope_base;         /* this layer's RoPE base */
    const sf_gguf_tensor *attn_norm, *wq, *wk, *wv, *wo;  /* wq/wk/wv NULL for linear attention */
    const sf_gguf_tensor *bq, *bk, *bv;                    /* biases of q/k/v, or NULL (qwen2) */
    const sf_gguf_tensor *q_norm, *k_norm, *attn_post_norm; /* or NULL, as the architecture says */
    const sf_gguf_tensor *ffn_norm, *ffn_gate, *ffn_up, *ffn_down, *ffn_post_norm;
    /* Row ranges of a fused tensor (phi3's attn_qkv, ffn_up with gate and
     * up): wq, wk, wv, ffn_gate, ffn_up point here then. */
    sf_gguf_tensor part[5];
    /* The parallel group this block runs in (sparsefuse.parallel_blocks: all
     * members read the group's input, their contributions are summed):
     * layers group_first..group_last; both are the block's own index when it
     * runs alone. */
    int group_first, group_last;
} sf_layer;

struct sf_model {
    sf_gguf *gguf;
    sf_vocab *vocab;
    const sf_arch_desc *arch;
    char arch_name[32];
    char *name;           /* general.name, owned */
    char *chat_template;  /* tokenizer.chat_template, owned, NULL if absent */

    int n_vocab, n_ctx_train, n_embd, n_layer;
    int head_dim_k, head_dim_v, n_rot;
    int n_head_max, n_head_kv_max, n_ff_max; /* maxima over layers, for buffers */
    int n_kv_layers;                          /* layers with a KV cache */
    float norm_eps;
    float rope_base, rope_freq_scale;
    sf_rope_type rope_type;
    const float *rope_freq_factors;           /* [n_rot/2] divisors, or NULL (phi3: the short factors) */
    const float *rope_factors_long;           /* phi3: [n_rot/2] divisors for contexts beyond n_ctx_orig */
    int n_ctx_orig;                           /* phi3: rope.scaling.original_context_length */
    float rope_attn_factor;                   /* rope.scaling.attn_factor: cos and sin scaled by it (1: none) */
    float embd_scale;                         /* 1, or sqrt(n_embd) for gemma */
    float attn_scale;                         /* applied to q·k */
    bool attn_q_prescale;                     /* gemma3: q *= attn_scale after RoPE, as llama.cpp's graph does */
    int n_swa;                                /* sliding window, 0 = none */
    float final_logit_softcap;                /* 0 = none */
    sf_ffn_act ffn_act;

    const sf_gguf_tensor *token_embd, *output_norm, *output; /* output == token_embd if tied */
    sf_layer *layers;                         /* [n_layer] */

    int64_t n_params;
    uint64_t size_bytes;
    const char *ftype_name;
};

/* A hash of the model's shape, tensor names/types/shapes and a few bytes of
 * every tensor (sidecar_base.c): a side-car records it and refuses any other
 * model. */
uint64_t sf_model_fingerprint(const sf_model *m);

/* A kind of side-car: general.architecture = arch, and under prefix the keys
 * .version and .base.{name,n_layer,n_embd,fingerprint} of its base model. */
typedef struct {
    const char *name;   /* "sparsity", for messages */
    const char *arch;   /* "sparsefuse-sparsity" */
    const char *prefix; /* "sparsefuse.sparsity" */
    uint32_t version;
} sf_sidecar_kind;
/* Checks a side-car's header against m: SF_ERR_FORMAT when it is not one,
 * SF_ERR_UNSUPPORTED for another version, SF_ERR_ARG for another model. */
int sf_sidecar_check(const sf_gguf *g, const char *path, const sf_model *m, const sf_sidecar_kind *k);
/* Writes those header keys for m. */
int sf_sidecar_write_header(sf_gguf_writer *w, const sf_model *m, const sf_sidecar_kind *k);

#endif
