/* Private to src/fusion: building the fused FFN tensors. */
#ifndef SF_FUSION_FUSE_IMPL_H
#define SF_FUSION_FUSE_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "gguf/gguf.h"

typedef struct {
    void *data;        /* [nbytes] malloc'd */
    size_t nbytes;
    sf_type type;
    int64_t ne[2];
    bool requantized;  /* went through f32 */
    bool mixed;        /* because the members' types differ (not asked for) */
    char why[160];     /* why it was re-quantized (for the log), "" if not */
} sf_fused_tensor;

/* Fused ffn_gate or ffn_up: members m[k], each {n_embd, n_ff_j}, rows
 * stacked in member order -> {n_embd, sum n_ff_j}. Plain byte concatenation
 * when every member has the same type, no folding and no out_type; else each
 * row is dequantized, column c multiplied by col_scale[j][c] (if col_scale),
 * and quantized to out_type (-1: the first member's type). */
int sf_fuse_stack_rows(const sf_gguf_tensor *const *m, int k, const float *const *col_scale, int out_type,
                       sf_fused_tensor *out);

/* Fused ffn_down: members {n_ff_j, n_embd}; fused row r = member rows r side
 * by side -> {sum n_ff_j, n_embd}. Byte concatenation per row when every
 * member has the same type (each n_ff_j is then a multiple of that type's
 * block, since the member tensor exists); else through f32 to out_type (-1:
 * the first member's type, or Q8_0 / F16 when the fused width is not a
 * multiple of its block). */
int sf_fuse_concat_rows(const sf_gguf_tensor *const *m, int k, int out_type, sf_fused_tensor *out);

void sf_fused_tensor_free(sf_fused_tensor *t);

/* Checks general.architecture is llama, deci or gemma3 (others rejected
 * with a message naming path); the name goes to arch[len]. */
int sf_fuse_check_arch(const sf_gguf *g, const char *path, char *arch, size_t len);

#endif
