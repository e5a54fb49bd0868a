/* sparsefuse self-speculative decoding with a layer-skipping draft
 * (Draft&Verify, SWIFT): the model with a set of layers dropped drafts k
 * tokens one at a time, the full model checks them in one batched pass and
 * keeps the longest prefix it agrees with plus its own next token. Greedy
 * only; the output is the dense model's greedy output (up to the float
 * rounding of the batched kernels, see sf_draft_generate). */
#ifndef SPARSEFUSE_DRAFT_H
#define SPARSEFUSE_DRAFT_H

#include <stdbool.h>
#include <stdint.h>

#include "sparsefuse.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_DRAFT_MAX_K 16

typedef struct {
    int k;            /* tokens drafted per round, 1..SF_DRAFT_MAX_K; the context's n_batch must hold k + 1 */
    const bool *skip; /* [n_layer]: layers the draft drops (attention and FFN); all false is allowed */
    bool ignore_eog;  /* keep generating through end-of-generation tokens (benchmarks) */
} sf_draft_params;

typedef struct {
    int n_gen;            /* tokens produced, the end-of-generation token excluded */
    int n_decoded;        /* of those, in the KV cache at the end */
    bool eog, ctx_full;   /* why it stopped (neither: n_max or the callback) */
    int64_t drafted;      /* draft tokens proposed */
    int64_t accepted;     /* of those, equal to the full model's greedy token */
    int64_t draft_passes; /* one-token passes of the draft */
    int64_t verify_passes;
    int64_t dense_passes; /* one-token dense passes (no room left to draft) */
    int64_t verify_size[SF_DRAFT_MAX_K + 2]; /* verify passes by their token count */
    double seconds;       /* wall time */
} sf_draft_stats;

/* accepted / drafted (0 when nothing was drafted). */
double sf_draft_acceptance(const sf_draft_stats *st);

/* Receives each generated token in order; returns false to stop there (the
 * token counts as generated, as the last token at n_max does). */
typedef bool (*sf_draft_token_fn)(int32_t token, void *user);

/* Greedy generation from the logits of c's last decode (the prompt's), as a
 * loop of argmax + sf_decode of one token would do it: it stops at an
 * end-of-generation token (not passed on, unless ignore_eog), after n_max
 * tokens (< 0: no limit) or when the context is full, and leaves exactly the
 * tokens that loop would have decoded in the KV cache (every generated token
 * but the last; all of them after an end-of-generation token).
 * The verify pass runs k + 1 tokens through the batched kernels, whose float
 * sums may differ from the one-token kernels in the last bits: where the two
 * best logits are that close the token can differ from a one-token decode.
 * The logits of c are not kept afterwards. */
int sf_draft_generate(sf_context *c, const sf_draft_params *p, int n_max, sf_draft_token_fn on_token, void *user,
                      sf_draft_stats *st);

/* Parses a comma-separated list of layer indices ("3,7,12") or "none" into
 * skip[n_layer]. SF_ERR_ARG for anything else: a bad number, an index out of
 * 0..n_layer-1, a duplicate, or every layer. */
int sf_draft_parse_skip(const sf_model *m, const char *list, bool *skip);
/* skip[n_layer] as a list sf_draft_parse_skip reads ("none" when empty);
 * the length it needs (snprintf-like). */
int sf_draft_format_skip(const bool *skip, int n_layer, char *buf, int cap);

/* Bytes of weights a draft pass reads over those a dense pass reads
 * (sf_model_decode_weight_bytes' matrices). */
double sf_draft_cost_fraction(const sf_model *m, const bool *skip);

/* ------------------------------------------------------------ auto search */

typedef struct {
    int k;            /* drafts per round the choice is made for (1..SF_DRAFT_MAX_K) */
    int n_threads;    /* 0 = library default */
    int n_calib;      /* calibration tokens used, 64..512 (0 = 512; fewer if the text is shorter) */
    sf_progress_fn progress; /* optional: what = "draft: ranking layers" / "draft: growing the set" */
    /* optional: each set tried while growing, with its acceptance and modeled speedup */
    void (*on_candidate)(const bool *skip, int n_layer, double acceptance, double speedup, void *user);
    void *user;
} sf_draft_auto_params;

typedef struct {
    int n_skip;             /* layers in the chosen set */
    double acceptance;      /* measured drafting on the calibration text */
    double cost_fraction;   /* sf_draft_cost_fraction of the set */
    double verify_cost[SF_DRAFT_MAX_K + 2]; /* measured time of a dense pass of n tokens / of one token */
    double speedup;         /* modeled: tokens / (draft passes * cost_fraction + sum of verify costs) */
    int passes;             /* forward passes the search ran */
} sf_draft_auto_result;

/* Chooses skip[n_layer] for drafting k tokens on calibration tokens:
 * 1. ranks the layers by the top-1 agreement with the dense model when that
 *    layer alone is dropped, on the second half of the text with the first
 *    half's KV cache dense (teacher forcing; one pass per layer);
 * 2. grows the set in that order and, for each, drafts greedy continuations
 *    of four pieces of the text, measuring acceptance, and models the
 *    speedup with the cost fraction and measured verify costs;
 * 3. keeps the set with the best modeled speedup (the growth stops after 4
 *    sets without improvement). That speedup may be below 1: drafting then
 *    does not pay on this machine for this k.
 * About (n_layer + 1) teacher-forced passes over n_calib / 2 tokens, then
 * 4 x (a prompt of n_calib / 4 tokens + 32 drafted tokens) per set tried. */
int sf_draft_auto(sf_model *m, const int32_t *tokens, int n_tokens, const sf_draft_auto_params *p, bool *skip,
                  sf_draft_auto_result *out);

#ifdef __cplusplus
}
#endif
#endif
