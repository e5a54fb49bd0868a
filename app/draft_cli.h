/* The --draft-* options (self-speculative decoding, sparsefuse_draft.h) of
 * run and bench: parsing, the layer set (a list or the auto search) and the
 * generation loop that streams the drafted text. */
#ifndef SF_APP_DRAFT_CLI_H
#define SF_APP_DRAFT_CLI_H

#include "args.h"
#include "common.h"
#include "generate.h"
#include "sparsefuse_draft.h"

typedef struct {
    const char *skip;  /* "auto", a layer list or "none"; NULL: no drafting */
    int k;             /* tokens drafted per round */
    const char *calib; /* calibration text for auto */
    int n_calib;       /* its tokens used by auto */
    bool k_seen, n_calib_seen;
} app_draft_opts;

#define APP_DRAFT_K_DEFAULT 3

#define APP_DRAFT_ARGS(o)                                                                                             \
    {NULL, "--draft-skip", ARG_STR, &(o)->skip, "auto|LIST",                                                          \
     "self-speculative greedy decoding: a draft with the layers of LIST (comma-separated indices, or 'none') "       \
     "dropped proposes --draft-k tokens, the full model verifies them in one batched pass; 'auto' picks the "       \
     "layers on --draft-calib text and prints the list",                                                              \
     0, 0, NULL},                                                                                                     \
        {NULL, "--draft-k", ARG_INT, &(o)->k, "N", "tokens drafted per verify pass (default: 3)", 1,                 \
         SF_DRAFT_MAX_K, &(o)->k_seen},                                                                                       \
        {NULL, "--draft-calib", ARG_STR, &(o)->calib, "FILE",                                                        \
         "calibration text for --draft-skip auto (its first --draft-calib-tokens tokens)", 0, 0, NULL},              \
        {NULL, "--draft-calib-tokens", ARG_INT, &(o)->n_calib, "N",                                                   \
         "tokens of --draft-calib the search uses (default: 512)", 64, 512, &(o)->n_calib_seen}

void app_draft_opts_init(app_draft_opts *o);
/* Usage checks before the model loads: the other --draft-* options need
 * --draft-skip, auto needs a readable --draft-calib. APP_EXIT_USAGE after
 * printing, or -1. */
int app_draft_check(const cmd_spec *cmd, const app_draft_opts *o);
/* The layer set into skip[n_layer]: the list parsed, or the auto search run
 * (progress and each set tried on stderr, then the chosen list). APP_EXIT_*
 * after printing an error, or -1. */
int app_draft_layers(const cmd_spec *cmd, const app_draft_opts *o, sf_model *m, int n_threads, bool *skip);
/* One line on stderr: k, the list, its cost fraction, acceptance, tokens per verify pass. */
void app_draft_report(const sf_model *m, const bool *skip, int k, const sf_draft_stats *st);

/* app_generate's loop (greedy) through sf_draft_generate: same output,
 * same gen_stats; the draft's statistics into *ds. */
int app_draft_generate(sf_context *c, const sf_model *m, const bool *skip, int k, int n_max, utf8_stream *out,
                       gen_stats *st, sf_draft_stats *ds);

/* bench --draft-skip: tgN dense greedy and tgN+draft on the same prompt,
 * alternated, as rows of a markdown table. */
int app_draft_bench(const cmd_spec *cmd, const app_model_opts *mo, const char *path, const app_draft_opts *o,
                    const char *prompt_file, int n_gen, int reps, int n_threads);

#endif
