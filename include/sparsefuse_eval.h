/* sparsefuse evaluation API: perplexity, KL divergence against a saved base,
 * HellaSwag and llama-bench-style speed tests. Everything here runs through
 * the public API in sparsefuse.h, so it works for any model the library
 * loads (dense or accelerated). Like the rest of the library it never prints:
 * running results reach the caller through callbacks. */
#ifndef SPARSEFUSE_EVAL_H
#define SPARSEFUSE_EVAL_H

#include "sparsefuse.h"
#include "sparsefuse_routing.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ perplexity */

/* Results (final, or running when passed to the chunk callback).
 * Uncertainties are one standard error, as llama.cpp prints them. */
typedef struct {
    int n_ctx;          /* chunk length */
    int n_chunks;       /* chunks evaluated */
    int64_t n_scored;   /* tokens scored: n_chunks * (n_ctx - 1 - n_ctx/2) */
    double ppl, ppl_err;

    /* Only when comparing against a KL-divergence base (kld_base): */
    bool has_kld;
    double ppl_base, ppl_base_err;             /* PPL of the saved base */
    double ln_ppl_ratio, ln_ppl_ratio_err;     /* mean ln(PPL(Q)/PPL(base)) */
    double ppl_ratio, ppl_ratio_err;           /* PPL(Q)/PPL(base) */
    double ppl_diff, ppl_diff_err;             /* PPL(Q)-PPL(base) */
    double ppl_cor;                            /* correlation of ln PPLs */
    double kld, kld_err;                       /* mean KL(base || Q) */
    double kld_max, kld_p99, kld_p90, kld_median; /* final result only */
    double same_top, same_top_err;             /* fraction argmax agrees */
    double dp_rms, dp_rms_err;                 /* RMS of p_Q(tok) - p_base(tok) */
} sf_ppl_result;

/* Called after every chunk: chunk is 1-based, seconds the chunk's time. */
typedef void (*sf_ppl_chunk_fn)(int chunk, int n_chunks, double seconds,
                                const sf_ppl_result *running, void *user);

typedef struct {
    int n_ctx;              /* chunk length; 0 = 512 (or the base file's with kld_base) */
    int n_chunks;           /* cap on chunks; <= 0 = all */
    int n_batch;            /* logits are taken in pieces of this many tokens:
                               at most the context's n_batch; 0 = 512 */
    const char *kld_save;   /* save the scored tokens' log-probabilities here */
    const char *kld_base;   /* compare against log-probabilities saved earlier */
    sf_ppl_chunk_fn on_chunk;
    void *user;
} sf_ppl_params;

sf_ppl_params sf_ppl_default_params(void);

/* llama.cpp's perplexity: the token stream is cut into floor(n/n_ctx) chunks
 * (at least 2 are needed); per chunk the KV cache is cleared, the first token
 * becomes BOS when the model adds one, and the logits at positions
 * n_ctx/2 .. n_ctx-2 score the next token. PPL = exp(mean NLL).
 *
 * kld_save writes llama.cpp's --kl-divergence-base file format ("_logits_",
 * int32 n_ctx, n_vocab, n_chunk, the chunks' tokens, then per scored token
 * float scale, float min and n_vocab uint16 quantized log-probs, padded to
 * even), through a temporary file renamed at the end.
 *
 * kld_base reads such a file and reports KL divergence, same-top-token rate
 * and the PPL ratio against it. Its tokens are evaluated: `tokens` may then
 * be NULL; if given, they must equal the saved ones. Mismatching vocab size,
 * n_ctx or tokens are SF_ERR_ARG errors naming the difference.
 *
 * c must hold at least n_ctx positions. */
int sf_eval_perplexity(sf_model *m, sf_context *c, const int32_t *tokens, int64_t n_tokens,
                       const sf_ppl_params *p, sf_ppl_result *out);

/* Validates a base file written with kld_save and reads its header. */
int sf_kld_base_info(const char *path, int *n_ctx, int *n_vocab, int *n_chunks);

/* ------------------------------------------------------------- HellaSwag */

typedef struct {
    int task;           /* tasks done so far (1-based index of the last one) */
    int n_tasks;
    int n_correct;
    double acc_norm;    /* fraction correct so far */
    double ci_lo, ci_hi; /* 95% Wilson score interval */
} sf_hellaswag_result;

typedef void (*sf_hellaswag_task_fn)(const sf_hellaswag_result *running, void *user);

typedef struct {
    int n_tasks;        /* <= 0: all tasks in the file */
    bool in_order;      /* take the first n_tasks; default: llama.cpp's random pick */
    int n_batch;        /* at most the context's n_batch; 0 = 512 */
    sf_hellaswag_task_fn on_task;
    void *user;
} sf_hellaswag_params;

sf_hellaswag_params sf_hellaswag_default_params(void);

/* HellaSwag as llama.cpp's hellaswag_score: text holds 6 lines per task
 * (context, gold ending 0-3, four endings). Each ending is tokenized as
 * context + " " + ending (with BOS as the model adds it) and scored by the
 * mean log-probability of its tokens after the prefix all four share; the
 * shared prefix is evaluated once and its KV cache reused. Task selection
 * reproduces llama.cpp's (mt19937 seeded with 1, libstdc++'s
 * uniform_int_distribution) unless in_order. acc_norm is the fraction whose
 * gold ending scores highest. c must hold the longest task. */
int sf_eval_hellaswag(sf_model *m, sf_context *c, const char *text, size_t len,
                      const sf_hellaswag_params *p, sf_hellaswag_result *out);

/* ----------------------------------------------------------------- bench */

#define SF_BENCH_MAX_REPS 1000

typedef struct {
    int n_prompt;       /* pp test length; 0 = skip */
    int n_gen;          /* tg test length; 0 = skip */
    int reps;           /* repetitions after one warm-up run, 1..SF_BENCH_MAX_REPS */
    int n_threads;      /* 0 = library default */
    int n_batch;        /* 0 = 512 */
    int n_depth;        /* tokens already in the KV cache before each timed run (llama-bench -d), 0..1<<20 */
    uint64_t seed;      /* random tokens */
    const int32_t *text; /* [n_text] tokens to decode instead of random ones (depth, pp, tg take consecutive
                          * slices, wrapping around), or NULL: data-dependent variants (routes, sparsity) see text */
    int n_text;
    const char *sparse; /* side-car (sparsify) for the context, or NULL: decode steps run sparse */
    int sparse_batch;   /* with a side-car: every token of a call of at most this many tokens runs
                         * sparse, one by one (0 or 1: decode steps only; pp with -b <= this: sparse prefill) */
    const char *routes; /* routes side-car (route) for the context, or NULL */
    sf_route_policy route_policy;
} sf_bench_params;

typedef struct {
    int n_tokens;           /* tokens per repetition */
    int n_depth;            /* tokens in the cache before each repetition */
    int reps;
    double tps_mean, tps_std; /* tokens/s over the repetitions (sample std) */
    double seconds_mean;
    double samples[SF_BENCH_MAX_REPS]; /* [reps] tokens/s of each repetition */
    int steps;              /* forward steps per repetition: tg n_gen, pp ceil(n_prompt / n_batch) */
    int barriers_per_step;  /* thread-pool regions (barriers) per step, -1 if unknown */
    uint64_t weight_bytes;  /* sf_model_decode_weight_bytes: matrix bytes read per step */
    double gbps;            /* effective weight bandwidth: weight_bytes * steps/s (from tps_mean), 1e9 B/s */
    /* with a side-car, steps that ran sparse (tg): the weight bytes a step
     * actually read, that bandwidth, and the fraction of FFN neurons and of
     * FFN input channels active (-1 where that site is dense) */
    bool sparse;
    uint64_t sparse_bytes;
    double sparse_gbps, hidden_density, in_density, attn_density; /* densities: -1 where that site is dense */
    /* with routes: the fraction of (token, block) executions that ran in the timed repetitions */
    bool routed;
    double block_fraction;
} sf_bench_result;

sf_bench_params sf_bench_default_params(void); /* 512, 128, 5 reps */

/* llama-bench's pp and tg tests on random tokens: pp decodes n_prompt tokens
 * in n_batch pieces into a cache holding n_depth random tokens (decoded
 * untimed before each run, as llama-bench -d does; 0: an empty cache); tg decodes n_gen tokens one at a
 * time (the first is BOS when the model adds one). One warm-up run each,
 * then reps timed runs; nothing is tokenized or sampled inside the timing.
 * pp/tg may be NULL to skip a test. */
int sf_eval_bench(sf_model *m, const sf_bench_params *p, sf_bench_result *pp, sf_bench_result *tg);

/* Bytes of the weight matrices one decode step reads once: every 2-D weight
 * of every layer (attention q/k/v/o, FFN gate/up/down) and the output
 * matrix, which is token_embd when the embeddings are tied. Not counted: the
 * embedding lookup (one row per token) and 1-D tensors (norms). */
uint64_t sf_model_decode_weight_bytes(const sf_model *m);

/* ------------------------------------------------------------- bandwidth */

typedef struct {
    int n_threads;      /* 0 = physical cores */
    size_t array_bytes; /* size of each of the two arrays (default 256 MiB) */
    int reps;           /* timed copies after one warm-up, 1..1000 (default 5) */
} sf_bandwidth_params;

typedef struct {
    int n_threads;
    size_t array_bytes;
    int reps;
    double gbps_best, gbps_median; /* (bytes read + bytes written) / s, 1 GB = 1e9 B */
} sf_bandwidth_result;

sf_bandwidth_params sf_bandwidth_default_params(void);

/* STREAM-like memory copy: the threads copy one array into the other (each
 * its own slice), alternating directions, and the best and median rates are
 * reported. Arrays should be much larger than the last-level cache. */
int sf_eval_bandwidth(const sf_bandwidth_params *p, sf_bandwidth_result *out);

#ifdef __cplusplus
}
#endif
/* ---- synthetic models (sparsefuse synth) ----------------------------------
 * A GGUF in the shape of a real model with random quantized weights, for speed
 * measurements (speed does not depend on the values); sparsefuse and llama.cpp
 * both load it. Details: src/model/synth.h. */
typedef struct {
    const char *shape;       /* "llama-3.2-1b" (default) or "tiny" */
    const char *type;        /* "q4_0" (default), one of sf_synth_type_names(), any case */
    uint64_t seed;           /* default 0 */
    /* Optional: called with what = "generating" (done/total = bytes of
     * weights drawn so far) and what = "writing" (0 of total before the
     * file is written, total of total after). */
    sf_progress_fn progress;
    void *user;
} sf_synth_params;

typedef struct {
    int n_tensors;
    int64_t n_params;        /* elements of all tensors */
    uint64_t data_bytes;     /* bytes of all tensor data (the file is slightly larger) */
} sf_synth_result;

sf_synth_params sf_synth_default_params(void);

/* Writes the model to path atomically (the tensor data is held in memory
 * until then: ~0.7 GB for llama-3.2-1b q4_0, ~1.3 GB for q8_0). Returns
 * SF_OK, or an error naming the problem (unknown shape or type, directory
 * not writable, out of memory, I/O); on error no file is left behind.
 * out (optional) receives the sizes. */
int sf_synth_write(const char *path, const sf_synth_params *p, sf_synth_result *out);

/* The accepted shape names, NULL-terminated. */
const char *const *sf_synth_shape_names(void);
/* The accepted type names (f32 ... q6_k, q4_k_m, q5_k_m), NULL-terminated. */
const char *const *sf_synth_type_names(void);

#endif
