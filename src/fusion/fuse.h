/* FFN Fusion model transform for explicit plans (arXiv 2503.18908; the rules
 * are in ../shared/docs/reference/ffn-fusion.md sections 3 and 3.6).
 *
 * From a `llama` or `deci` GGUF it writes a `deci` GGUF in which
 *  - layers whose attention is dropped keep their FFN, with head_count =
 *    head_count_kv = 0 and no attention tensors (x <- x + FFN(norm(x)));
 *  - each fusion group [a..b] (attention dropped in all members) becomes ONE
 *    layer whose FFN is the members' FFNs side by side (Theorem 3.1):
 *    ffn_gate / ffn_up rows stacked, each ffn_down row the concatenation of
 *    the members' rows, feed_forward_length = sum; the group's ffn_norm is
 *    the last member's (SF_FUSE_NORM_SHARED_LAST, the paper) or all ones with
 *    each member's gamma folded into its gate/up columns (SF_FUSE_NORM_FOLDED,
 *    exact for a shared input, at the cost of re-quantizing gate/up);
 *  - layers are renumbered contiguously, llama.* keys become deci.* keys with
 *    per-layer arrays, and the plan is recorded under sparsefuse.* keys:
 *      sparsefuse.fusion.groups        i32 [first0,last0,first1,...] (source numbering)
 *      sparsefuse.fusion.norm          "shared-last" | "folded"
 *      sparsefuse.fusion.attn_dropped  i32 source layers whose attention the plan removed
 *      sparsefuse.fusion.source_layer  i32 [n_layer_out] first source layer of each new layer
 *      sparsefuse.parallel_blocks      i32 [first0,last0,...] (NEW numbering) whole-block
 *                                      parallel groups: the engine runs each group's blocks
 *                                      on a shared input (llama.cpp ignores the key)
 *    (a key is left out when its list is empty).
 *
 * A source with post-norms (gemma3: each sub-block's output goes through its
 * own norm before the residual add) cannot be fused into one wide FFN: the
 * members' outputs are normed separately. There the file keeps the gemma3
 * architecture and its layer numbering (the sliding-window pattern depends
 * on it), layers whose attention is dropped lose their attention tensors and
 * post_attention_norm, and each fusion group becomes a parallel group of
 * FFN-only blocks — FFN Fusion's form x + Σ_j post_norm_j(FFN_j(norm_j(x))).
 * llama.cpp's gemma3 has no layers without attention nor parallel blocks, so
 * the file is marked sparsefuse.only (a string saying why) and the report
 * says so.
 *
 * This header is internal for now; the lead moves the API to
 * include/sparsefuse_fusion.h later. */
#ifndef SF_FUSION_FUSE_H
#define SF_FUSION_FUSE_H

#include <stdbool.h>
#include <stdint.h>

#include "sparsefuse.h"
#include "sparsefuse_fusion.h"

/* ---- plan text ------------------------------------------------------------ */

/* Parses "3,5,7-12" (a layer list) or "8-12,14-17" (ranges): comma-separated
 * N or N-M items of decimal layer numbers. A single N is the range N-N.
 * Ranges are returned as written (reversed or out-of-bounds ones are reported
 * by the validation, which knows the model). `what` names the option in
 * messages ("--fuse"). *out is malloc'd (free() it), *n its count (>= 1).
 * "auto..." is SF_ERR_UNSUPPORTED: automatic plans need the dependency
 * analysis, which is not implemented yet. */
int sf_fuse_parse_ranges(const char *s, const char *what, sf_layer_range **out, int *n);
/* "shared-last" or "folded". */
int sf_fuse_parse_norm(const char *s, sf_fuse_norm *out);
const char *sf_fuse_norm_name(sf_fuse_norm norm);
/* Sets mask[i] for every layer in the ranges (mask[n_layer] is cleared first);
 * SF_ERR_ARG naming the item if one is reversed or outside 0..n_layer-1. */
int sf_fuse_ranges_to_mask(const sf_layer_range *r, int n, int n_layer, const char *what, bool *mask);

/* ---- validation ----------------------------------------------------------- */

/* Checks a plan against a model of plan->n_layer layers whose source layer i
 * has n_head[i] attention heads and an FFN of n_ff[i] (either array may be
 * NULL: every layer has attention / an FFN). SF_ERR_ARG with a message naming
 * the problem: a range out of bounds, reversed or of one layer, overlapping
 * fusion groups, a fused layer that keeps its attention or has no FFN,
 * dropping layer 0's attention, parallel groups that overlap a fusion group
 * or each other. */
int sf_fuse_plan_validate(const sf_fuse_plan *plan, const int *n_head, const int *n_ff);

/* Layer numbering of a valid plan: new_index[i] = the output layer that
 * source layer i becomes (members of a group share one), group_of[i] = the
 * fusion group holding layer i or -1 (either array may be NULL). Returns the
 * output layer count. */
int sf_fuse_plan_map(const sf_fuse_plan *plan, int *new_index, int *group_of);

/* Opens a GGUF just to check its architecture is one the transform accepts
 * (llama, deci, gemma3) and to read its layer count. */
int sf_fuse_source_layers(const char *path, int *n_layer);

/* ---- the transform -------------------------------------------------------- */

typedef struct {
    /* Type of the fused FFN tensors (gate, up, down of every group): -1 keeps
     * the members' type (the first member's where they differ); an sf_type id
     * (SF_TYPE_F32, SF_TYPE_F16, ...) re-quantizes them to it, e.g. F32 to
     * test the fused arithmetic without re-quantization error. */
    int fused_type;
    /* Progress (may be NULL): ("fusing", group done, groups) after each
     * group, then ("writing", 0, data bytes) before the file is written and
     * ("writing", bytes, bytes) after. */
    sf_progress_fn progress;
    void *user;
} sf_fuse_options;

sf_fuse_options sf_fuse_default_options(void);

typedef struct {
    int n_layer_in, n_layer_out;
    int n_attn_dropped;   /* layers whose attention the plan removed */
    int n_groups;         /* fusion groups */
    int n_fused_layers;   /* source layers inside fusion groups */
    int n_parallel;       /* parallel-block groups recorded */
    int n_requantized;    /* fused tensors that went through f32 (folding, mixed types, fused_type) */
    int n_tensors;        /* in the output file */
    uint64_t data_bytes;  /* tensor data in the output file */
    bool sparsefuse_only; /* llama.cpp cannot run the file (a post-norm source; see the top of this file) */
} sf_fuse_report;

/* Writes the transformed model (see the top of this file) to out_gguf,
 * atomically: nothing is left at out_gguf (or beside it) on error. Each
 * re-quantization is logged (sf_set_log) with the tensor and the reason.
 * opt and report may be NULL. */
int sf_fuse_write(const char *src_gguf, const sf_fuse_plan *plan, const char *out_gguf, const sf_fuse_options *opt,
                  sf_fuse_report *report);

#endif
