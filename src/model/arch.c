/* The architecture table (see arch.h). */
#include "model/arch.h"

#include <string.h>

static const sf_arch_desc g_archs[] = {
    {.name = "llama", .rope = SF_ROPE_NORMAL, .act = SF_ACT_SILU, .rope_freqs = true},
    {.name = "deci", .rope = SF_ROPE_NORMAL, .act = SF_ACT_SILU, .rope_freqs = true, .zero_blocks = true,
     .linear_attn = true},
    {.name = "gemma3", .rope = SF_ROPE_NEOX, .act = SF_ACT_GELU, .embd_scale = true, .qk_norm = true,
     .q_prescale = true, .post_norms = true, .swa_period = 6, .swa_rope_base = 10000.0f,
     .softcap_without_swa = true},
    {.name = "qwen2", .rope = SF_ROPE_NEOX, .act = SF_ACT_SILU, .qkv_bias = true},
    {.name = "qwen3", .rope = SF_ROPE_NEOX, .act = SF_ACT_SILU, .qk_norm = true},
    {.name = "phi3", .rope = SF_ROPE_NEOX, .act = SF_ACT_SILU, .q_prescale = true, .fused_qkv = true,
     .fused_gate_up = true, .longrope = true, .swa_period = 1},
};

const sf_arch_desc *sf_arch_find(const char *name) {
    for (size_t i = 0; i < sizeof g_archs / sizeof g_archs[0]; i++)
        if (strcmp(g_archs[i].name, name) == 0) return &g_archs[i];
    return NULL;
}

const char *sf_arch_names(void) { return "llama, deci, gemma3, qwen2, qwen3, phi3"; }
