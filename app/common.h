/* Helpers shared by the subcommands: the option groups every model command
 * takes, model/context setup, file reading, tokenization. */
#ifndef SF_APP_COMMON_H
#define SF_APP_COMMON_H

#include "args.h"
#include "sparsefuse.h"
#include "sparsefuse_routing.h"

#define APP_VERSION "0.1.0"
#define APP_DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

/* Options of every command that loads a model. */
typedef struct {
    const char *model;
    int threads; /* 0 = library default */
    int ctx;     /* 0 = command default */
    int batch;   /* 0 = 512 */
    bool verbose;
    const char *sparse; /* side-car GGUF (sparsify) the contexts use, or NULL */
    const char *routes; /* routes side-car (route) the contexts use, or NULL */
    const char *route_kv, *route_rule; /* --route-kv, --route-rule, or NULL (defaults) */
    bool route_scale;
} app_model_opts;

#define APP_ARG_MODEL(o)                                                                          \
    {"-m", "--model", ARG_STR, &(o)->model, "FILE",                                               \
     "model GGUF (default: " APP_DEFAULT_MODEL " if present, else $SF_MODEL)", 0, 0, NULL}
#define APP_ARG_THREADS(o)                                                                        \
    {"-t", "--threads", ARG_INT, &(o)->threads, "N", "threads (default: physical cores)", 1, 4096, NULL}
#define APP_ARG_BATCH(o)                                                                          \
    {"-b", "--batch-size", ARG_INT, &(o)->batch, "N", "tokens per forward batch (default: 512)", 1, \
     1 << 20, NULL}
#define APP_ARG_VERBOSE(o)                                                                        \
    {"-v", "--verbose", ARG_FLAG, &(o)->verbose, NULL, "print library log messages to stderr", 0, 0, NULL}
#define APP_ARG_SPARSE(o)                                                                         \
    {NULL, "--sparse", ARG_STR, &(o)->sparse, "SIDE.gguf",                                        \
     "contextual FFN sparsity from a side-car written by 'sparsefuse sparsify': decode steps run sparse "     \
     "(perplexity: the scored half of each chunk; hellaswag: every token; prompts stay dense)", 0, 0,            \
     NULL}
#define APP_ARG_ROUTES(o)                                                                         \
    {NULL, "--routes", ARG_STR, &(o)->routes, "ROUTES.gguf",                                       \
     "depth routing (Mixture-of-Depths) from a side-car written by 'sparsefuse route': routed blocks run only "  \
     "for the tokens their router picks; static ones for none", 0, 0, NULL},                                    \
    {NULL, "--route-kv", ARG_STR, &(o)->route_kv, "exact|preserve",                                \
     "with --routes: a token that skips a block writes no K/V there and later tokens do not see it (exact, "     \
     "MoD; default), or it still stores its K/V there (preserve, FlexiDepth)", 0, 0, NULL},                     \
    {NULL, "--route-rule", ARG_STR, &(o)->route_rule, "causal|topk",                               \
     "with --routes: which tokens run a routed block: score above the calibrated threshold (causal; default), "  \
     "or the capacity's top-k of each prompt batch (topk, MoD's expert choice; one-token calls stay causal)",    \
     0, 0, NULL},                                                                                 \
    {NULL, "--route-scale", ARG_FLAG, &(o)->route_scale, NULL,                                     \
     "with --routes: x + r * f(x), the block output scaled by the router score (MoD-trained routers; "          \
     "default: x + f(x))", 0, 0, NULL}
/* The policy the --route-* options ask for. */
void app_route_policy(const app_model_opts *o, sf_route_policy *p);
/* Checks the --route-* options (usage error printed; false if bad). */
bool app_route_opts_ok(const cmd_spec *cmd, const app_model_opts *o);

/* -m -t -b -v */
#define APP_MODEL_ARGS(o) APP_ARG_MODEL(o), APP_ARG_THREADS(o), APP_ARG_BATCH(o), APP_ARG_VERBOSE(o)

/* Sampling options (run, chat). */
typedef struct {
    sf_sampler_params p;
    bool seed_given;
} app_sampler_opts;

#define APP_SAMPLER_ARGS(o)                                                                       \
    {NULL, "--temp", ARG_FLOAT, &(o)->p.temperature, "T", "temperature; <= 0 is greedy (default: 0.8)", \
     0, 0, NULL},                                                                                 \
    {NULL, "--top-k", ARG_INT, &(o)->p.top_k, "N", "keep the N most likely tokens; 0 = off (default: 40)", \
     0, 1e9, NULL},                                                                               \
    {NULL, "--top-p", ARG_FLOAT, &(o)->p.top_p, "P", "nucleus sampling; 1 = off (default: 0.95)",  \
     1e-6, 1, NULL},                                                                              \
    {NULL, "--min-p", ARG_FLOAT, &(o)->p.min_p, "P",                                             \
     "drop tokens below P * p(top token); 0 = off (default: 0.05)", 0, 1, NULL},                  \
    {NULL, "--repeat-penalty", ARG_FLOAT, &(o)->p.repeat_penalty, "X",                             \
     "penalize recent tokens; 1 = off (default: 1.0)", 1e-3, 1e3, NULL},                          \
    {NULL, "--repeat-last-n", ARG_INT, &(o)->p.repeat_last_n, "N",                                \
     "tokens the penalty looks back on (default: 64)", 0, 1e7, NULL},                             \
    {NULL, "--seed", ARG_U64, &(o)->p.seed, "N", "random seed (default: random, printed to stderr)", \
     0, 0, &(o)->seed_given}

void app_sampler_opts_init(app_sampler_opts *o);
/* Picks a random seed when none was given and reports it on stderr. */
void app_sampler_opts_finish(app_sampler_opts *o, const char *cmd);

/* Model path: -m, else APP_DEFAULT_MODEL if it exists, else $SF_MODEL.
 * Prints an error (how to fetch the model) and returns NULL if none. */
const char *app_model_path(const cmd_spec *cmd, const char *given);

/* Checks a file given on the command line is readable (usage error if not). */
bool app_readable(const cmd_spec *cmd, const char *what, const char *path);

/* Installs the stderr log hook and loads the model at path (from
 * app_model_path); NULL after printing the error. */
sf_model *app_load_model(const cmd_spec *cmd, const app_model_opts *o, const char *path);
/* Context of n_ctx positions (capped to the training context when
 * cap_to_train), using o->sparse when given; NULL after printing. */
sf_context *app_new_context(const cmd_spec *cmd, sf_model *m, const app_model_opts *o, int n_ctx,
                            bool cap_to_train);

/* Whole file (NUL-terminated, *len bytes); NULL after printing. A name
 * ending in .bz2 is decompressed through `bzip2 -dc` when decompress. */
char *app_read_file(const cmd_spec *cmd, const char *path, size_t *len, bool decompress);

/* Tokenizes text[len]; malloc'd ids, count in *n; NULL after printing. */
int32_t *app_tokenize(const cmd_spec *cmd, const sf_model *m, const char *text, size_t len,
                      bool add_special, bool parse_special, int *n);

/* Prints "sparsefuse NAME: what: <last library error>" and returns APP_EXIT_RUNTIME. */
int app_fail(const cmd_spec *cmd, const char *what);

/* A progress bar on stderr for sf_progress_fn: in place on a terminal,
 * else a line every 5 s. user: an app_progress. */
typedef struct {
    const char *cmd;  /* "analyze" */
    const char *unit; /* "passes", or NULL */
    bool tty;
    double t_start, t_last;
} app_progress;
void app_progress_init(app_progress *p, const char *cmd, const char *unit);
void app_progress_bar(const char *what, int64_t done, int64_t total, void *user);

/* Physical cores (for display when -t is not given). */
int app_physical_cores(void);

#endif
