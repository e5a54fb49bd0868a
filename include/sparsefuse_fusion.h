/* sparsefuse FFN Fusion (arXiv 2503.18908): analysis of block dependencies,
 * and the model transform (drop attention, fuse FFN runs, parallel blocks),
 * written as a `deci` GGUF. See docs/ffn-fusion.md. */
#ifndef SPARSEFUSE_FUSION_H
#define SPARSEFUSE_FUSION_H

#include <stdbool.h>
#include <stdint.h>

#include "sparsefuse.h"

/* ---- analysis -------------------------------------------------------------
 * All matrices are [n_layer][n_layer] row-major; entry [i][j] only has a value
 * for i < j (dropping block i cannot change earlier blocks), NAN elsewhere. */
typedef struct {
    int n_layer;
    int64_t n_tokens;      /* calibration tokens the means run over */
    const char *model;     /* display name (file name) */
    /* M[i][j] = mean over tokens of the cosine distance between block j's
     * contribution h_j = f_j(x) - x in the full model and with block i removed */
    float *dep_block;      /* whole blocks removed; whole-block contributions */
    float *dep_ffn;        /* FFN sub-block i removed; FFN j's contribution */
    /* per layer, [n_layer] */
    float *block_cos;      /* mean 1 - cos(x_in, x_out) of the whole block */
    float *attn_cos;       /* mean 1 - cos(x_in, x after the attention residual); NAN if no attention */
    float *block_kl;       /* mean KL(dense || block removed) of the next-token distribution */
    float *attn_kl;        /* mean KL(dense || only this attention removed); NAN if no attention */
    float *h_ratio;        /* mean ||h(x)|| / ||x|| of the whole block */
    float *ffn_h_ratio;    /* mean ||FFN contribution|| / ||x before the FFN|| */
} sf_analysis;

typedef struct {
    int n_ctx;            /* tokens per calibration chunk (default 512) */
    int64_t n_tokens;     /* calibration tokens to use, in whole chunks (default 512) */
    int n_threads;        /* 0: physical cores */
    sf_progress_fn progress; /* optional: what = "analyze", done/total forward passes */
    void *user;
} sf_analyze_params;

sf_analyze_params sf_analyze_default_params(void);

/* Measures the block-dependency matrices and importances over the first
 * p->n_tokens of tokens[0..n_avail) (chunks of p->n_ctx, each starting with
 * BOS when the model adds one). One baseline pass per chunk plus, for every
 * layer i, passes with block i, FFN i and attention i removed (each starting
 * from the cached residual stream at layer i). llama-style models only (no
 * post-norms). On success *out owns its arrays: sf_analysis_free. */
int sf_analyze(sf_model *m, const int32_t *tokens, int64_t n_avail, const sf_analyze_params *p, sf_analysis *out);
void sf_analysis_free(sf_analysis *a);

/* Writes DIR/analysis.json, the CSV tables, PNG heatmaps of M on a log
 * colour scale, importance charts) and DIR/index.html (the figures and a
 * short reading guide). Creates DIR if needed; files written atomically. */
int sf_analysis_write_report(const sf_analysis *a, const char *dir);

/* ---- transform ------------------------------------------------------------ */
typedef enum {
    SF_FUSE_NORM_SHARED_LAST, /* the paper: one RMSNorm with the group's last ffn_norm */
    SF_FUSE_NORM_FOLDED,      /* exact: gamma_j folded into member j's gate/up columns, norm weight 1 */
} sf_fuse_norm;

typedef struct {
    int first, last; /* inclusive layer range */
} sf_layer_range;

typedef struct {
    int n_layer;              /* of the source model */
    const bool *drop_attn;    /* [n_layer] remove this layer's attention sub-block */
    int n_fuse;               /* FFN fusion groups: consecutive layers, attention removed in all */
    const sf_layer_range *fuse;
    sf_fuse_norm norm;
    int n_parallel;           /* whole-block parallel groups (consecutive, disjoint, not fused) */
    const sf_layer_range *parallel;
    const bool *drop_block;   /* [n_layer] remove the whole block (static depth pruning; llama/deci sources), or NULL */
} sf_fuse_plan;

/* ---- automatic plans (from an analysis) ----------------------------------- */

/* Reads DIR/analysis.json as written by sf_analysis_write_report. */
int sf_analysis_read_json(const char *path, sf_analysis *out);
/* drop[n_layer] = the k attention sub-blocks whose removal alone changes the
 * next-token distribution least (attn_kl), never layer 0's. */
int sf_auto_drop_attn(const sf_analysis *a, int k, bool *drop);
/* Fusion groups from the attention-free layers: every run of consecutive
 * attention-free layers minus its last FFN (the paper found the last one
 * sensitive), split greedily so that no member depends on the earlier members
 * of its group by more than max_m (M_ffn from the analysis a; INFINITY or
 * a == NULL: no split); groups of 2 or more. out: room for n_layer / 2. */
int sf_auto_fuse_groups(const sf_analysis *a, int n_layer, const bool *attn_free, float max_m, sf_layer_range *out,
                        int *n_out);
/* The paper's greedy block parallelization: among windows of `window`
 * consecutive blocks (not layer 0, none excluded[l]), pick the one with the
 * smallest max of M inside (ties: smallest sum), remove overlapping windows,
 * repeat n_groups times. out: [n_groups], ascending. */
int sf_auto_parallel(const sf_analysis *a, int n_groups, int window, const bool *excluded, sf_layer_range *out);

#endif
