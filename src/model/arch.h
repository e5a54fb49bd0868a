/* Architectures as data: one row per GGUF `general.architecture` that
 * sparsefuse runs. The loader reads hyperparameters under the row's name
 * (`<name>.block_count`, ...), loads the optional tensors the row names, and
 * the forward pass follows the row's choices (through the layer plan). */
#ifndef SF_MODEL_ARCH_H
#define SF_MODEL_ARCH_H

#include <stdbool.h>

typedef enum { SF_ROPE_NORMAL = 0, SF_ROPE_NEOX = 2 } sf_rope_type; /* pairs (2i, 2i+1) or (i, i + n_rot/2) */
typedef enum { SF_ACT_SILU, SF_ACT_GELU } sf_ffn_act;

typedef struct {
    const char *name;       /* general.architecture */
    sf_rope_type rope;
    sf_ffn_act act;         /* FFN gate activation */
    bool embd_scale;        /* x = embedding · sqrt(n_embd) (gemma) */
    bool qk_norm;           /* attn_q_norm / attn_k_norm: RMS norm of each q/k head before RoPE */
    bool q_prescale;        /* q *= 1/sqrt(head_dim) after RoPE instead of scaling q·k (gemma3's, phi3's graph) */
    bool post_norms;        /* post_attention_norm / post_ffw_norm on each sub-block's output */
    bool qkv_bias;          /* attn_q/k/v.bias added after the projections (qwen2) */
    bool fused_qkv;         /* one attn_qkv.weight: q rows, then k, then v (phi3) */
    bool fused_gate_up;     /* ffn_up.weight holds the gate rows, then the up rows; no ffn_gate (phi3) */
    bool rope_freqs;        /* optional rope_freqs.weight divisors (llama 3) */
    bool longrope;          /* rope_factors_short / _long.weight and an attention factor (phi3) */
    bool zero_blocks;       /* per-layer 0 heads (no attention) or 0 FFN are valid (deci) */
    bool linear_attn;       /* head_count_kv 0 with heads > 0 is deci's linear attention */
    int swa_period;         /* with a window: layers il % period != period - 1 use it (gemma3: 6);
                             * 1: every layer; 0: the architecture has none */
    float swa_rope_base;    /* RoPE base of window layers (0: the model's) */
    bool softcap_without_swa; /* final_logit_softcapping only applies when there is no window (gemma3) */
} sf_arch_desc;

/* The row for an architecture name, or NULL. */
const sf_arch_desc *sf_arch_find(const char *name);
/* "llama, gemma3, ..." for messages. */
const char *sf_arch_names(void);

#endif
