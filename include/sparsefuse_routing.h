/* Depth routing: Mixture-of-Depths (arXiv 2404.02258) on pretrained models.
 *
 * A routes side-car (written by sf_route_fit) gives some blocks a linear
 * router r = w · x̂ + b on the block's input x̂ = x / rms(x) and a capacity c:
 * the fraction of tokens that run the block. The others ride the residual
 * stream. Blocks may also be removed for every token (static pruning). The
 * context decides per call (sf_route_policy):
 *  - which tokens run a routed block: the causal rule (score >= the
 *    threshold calibrated to give c on calibration text; the same decision
 *    in prefill and decode, so a prefix's cache does not depend on what
 *    follows), or expert-choice top-k over the tokens of each prefill call
 *    (exactly round(c·T), at least 1, ties to the earlier position; calls of
 *    one token use the causal rule);
 *  - the KV cache of a skipped token: MoD's rule (it writes no K/V at that
 *    block and later tokens do not attend to it there), or FlexiDepth's
 *    KV-preserving variant (it still computes and stores its K/V there);
 *  - whether a token that runs the block adds r·f(x) (the paper's
 *    multiplicative gate, for MoD-trained routers) or f(x) (retrofits). */
#ifndef SPARSEFUSE_ROUTING_H
#define SPARSEFUSE_ROUTING_H

#include <stdbool.h>
#include <stdint.h>

#include "sparsefuse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fitting routers to a pretrained model --------------------------------- */

/* The per-token target a router is fitted to (it ranks tokens by it). */
typedef enum {
    SF_ROUTE_TARGET_KL,    /* KL(dense || block removed) of the token's next-token distribution */
    SF_ROUTE_TARGET_DELTA, /* ||block(x) - x|| / ||x||: the block's relative update of the token */
    SF_ROUTE_TARGETS
} sf_route_target;
const char *sf_route_target_name(sf_route_target t); /* "kl", "delta" */
int sf_route_target_parse(const char *name, sf_route_target *out);

typedef struct {
    const bool *routed;     /* [n_layer] blocks that get a router (ignored with n_auto) */
    int n_auto;             /* > 0: route the n_auto blocks of lowest mean target instead (never the first or last) */
    const float *capacity;  /* [n_layer] their capacity, in (0, 1] */
    int n_static;           /* > 0: instead of routers, remove the n_static least important blocks (static baseline) */
    sf_route_target target; /* default SF_ROUTE_TARGET_KL */
    float ridge;            /* ridge λ as a fraction of the mean diagonal of ZᵀZ (default 1e-3) */
    int n_ctx;              /* tokens per calibration chunk (default 512) */
    int64_t n_tokens;       /* calibration tokens, whole chunks (default 4096) */
    int n_threads;          /* 0: physical cores */
    sf_progress_fn progress; /* "calibrate" (forward passes) */
    void *user;
} sf_route_params;
sf_route_params sf_route_default_params(void);

/* What a fit measured, per layer [n_layer] (NAN where not routed). */
typedef struct {
    int n_layer;
    int64_t n_tokens;
    float *importance;  /* mean target of each block over the calibration tokens (every block) */
    float *r2;          /* coefficient of determination of the router fit (on log target) */
    float *captured;    /* share of the block's total target carried by the tokens the router runs at its capacity
                         * (dense-model inputs) */
    float *oracle;      /* the same share for the best possible selection of that many tokens */
    float *threshold;   /* the causal threshold written (from the routed model's own scores) */
    bool *dropped;      /* static baseline: the blocks removed */
    bool *routed;       /* the blocks routed */
} sf_route_result;
void sf_route_result_free(sf_route_result *r);

/* Runs the dense model on the first p->n_tokens of tokens[0..n_avail) and
 * writes a routes side-car for m to out_path (atomically). */
int sf_route_fit(sf_model *m, const int32_t *tokens, int64_t n_avail, const sf_route_params *p,
                 const char *out_path, sf_route_result *res);

/* ---- running routed models ------------------------------------------------- */

typedef enum { SF_ROUTE_KV_EXACT, SF_ROUTE_KV_PRESERVE } sf_route_kv;
typedef enum { SF_ROUTE_CAUSAL, SF_ROUTE_TOPK } sf_route_rule;

typedef struct {
    sf_route_kv kv;     /* default SF_ROUTE_KV_EXACT (MoD) */
    sf_route_rule rule; /* default SF_ROUTE_CAUSAL */
    bool scale;         /* x + r·f(x) (default false: x + f(x)) */
} sf_route_policy;

/* Loads a routes side-car for the context's model and routes every later
 * decode of that context (the context owns it). One written for another
 * model, or malformed, is an error that says so; the context is unchanged. */
int sf_context_use_routes(sf_context *c, const char *path);
bool sf_context_has_routes(const sf_context *c);
void sf_context_route_policy(sf_context *c, const sf_route_policy *p);

/* Block executions since the last reset: ran[l] of seen[l] tokens ran
 * block l (arrays of n_layer, filled when not NULL). */
void sf_context_route_stats(sf_context *c, int64_t *ran, int64_t *seen, bool reset);

/* The share of (token, block) executions that ran since the last reset:
 * routed blocks as counted, removed ones none, the others all (1 without
 * routes; a static removal counts even before any decode). */
double sf_context_route_fraction(sf_context *c, bool reset);

/* The decisions per position once kept (sf_context_route_keep_map first):
 * run[pos * n_layer + l] for the positions held (n_layer: sf_model_info);
 * returns their count (n_past), or -1 when not kept. */
void sf_context_route_keep_map(sf_context *c, bool keep);
int sf_context_route_map(const sf_context *c, const bool **run);

/* Draws run[n_tok][n_layer] as the MoD paper's Figure 1 (right): tokens
 * across, blocks down, a cell dark where the token ran the block, light
 * where it skipped it; beside it a bar per block with the share of tokens
 * that ran it. PNG or SVG by path's ending (.png, .svg), written atomically. */
int sf_route_map_write(const char *path, const bool *run, int n_tok, int n_layer, const char *title);

#ifdef __cplusplus
}
#endif

#endif
