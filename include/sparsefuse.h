/* sparsefuse public C API.
 *
 * Errors: functions that can fail return a status (SF_OK = 0 or a negative
 * SF_ERR_*) or NULL, and leave a message in sf_last_error() (per thread).
 * The library never prints (except through sf_set_log) and never exits. */
#ifndef SPARSEFUSE_H
#define SPARSEFUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SF_OK = 0,
    SF_ERR_IO = -1,          /* file cannot be opened/read/written */
    SF_ERR_FORMAT = -2,      /* malformed input (file, text, template) */
    SF_ERR_UNSUPPORTED = -3, /* valid but not supported (architecture, type) */
    SF_ERR_ARG = -4,         /* bad argument */
    SF_ERR_NOMEM = -5,
    SF_ERR_RANGE = -6        /* out of range (context full, key missing) */
};

const char *sf_last_error(void);
const char *sf_status_name(int code);

/* Kernel mode, for the whole process. "fast" (the default): the fastest
 * kernels for this CPU; logits differ from llama.cpp's only by the order of
 * float additions (docs/parity.md has the measured tolerances). "exact":
 * ggml's order of operations, bit-identical to llama.cpp on x86, slower; for
 * parity work. SF_KERNELS=fast|exact in the environment sets it at start.
 * Set it between runs, not while a decode is in flight. */
const char *sf_kernels_mode(void);
int sf_set_kernels_mode(const char *mode); /* SF_OK, or SF_ERR_ARG */

/* Log hook: level 0 = info, 1 = warning. Default: silent. */
typedef void (*sf_log_fn)(int level, const char *msg, void *user);
void sf_set_log(sf_log_fn fn, void *user);

/* Progress hook for long jobs (loading, perplexity...): done of total. */
typedef void (*sf_progress_fn)(const char *what, int64_t done, int64_t total, void *user);

/* ------------------------------------------------------------------ model */

typedef struct sf_model sf_model;

/* Maps a GGUF file and builds the model (weights stay in the mapping).
 * NULL on error: unsupported architecture, missing tensor, shape mismatch... */
sf_model *sf_model_load(const char *path);
void sf_model_free(sf_model *m);

typedef struct {
    const char *arch;       /* "llama", "gemma3", "deci" */
    const char *name;       /* general.name or "" */
    int32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim;
    int64_t n_params;       /* total elements of all tensors */
    uint64_t size_bytes;    /* bytes of all tensor data */
    const char *ftype;      /* majority weight type, e.g. "Q4_1" */
} sf_model_info;
void sf_model_get_info(const sf_model *m, sf_model_info *out);
/* tokenizer.chat_template of the model, or NULL if it has none. */
const char *sf_model_chat_template(const sf_model *m);

/* --------------------------------------------------------------- tokenizer */

/* Returns the token count; -(needed) if n_max is too small; SF_ERR_* never
 * (text is always tokenizable). add_special: BOS/EOS per model metadata.
 * parse_special: special-token texts like <|im_start|> become their ids. */
int sf_tokenize(const sf_model *m, const char *text, size_t len, int32_t *out, int n_max,
                bool add_special, bool parse_special);
/* Bytes of one token (no NUL); -(needed) if buf is too small. */
int sf_token_to_piece(const sf_model *m, int32_t token, char *buf, int len, bool special);
int32_t sf_token_bos(const sf_model *m); /* -1 if none */
int32_t sf_token_eos(const sf_model *m);
bool sf_token_is_eog(const sf_model *m, int32_t token);
bool sf_model_add_bos(const sf_model *m);

/* ----------------------------------------------------------------- context */

typedef struct sf_context sf_context;

typedef struct {
    int n_ctx;      /* KV positions; 0 = the model's training context */
    int n_batch;    /* max tokens per sf_decode call; 0 = 512 */
    int n_threads;  /* 0 = physical cores */
} sf_context_params;

sf_context_params sf_context_default_params(void);
/* Allocates KV cache and every work buffer up front: nothing is allocated
 * per token afterwards. */
sf_context *sf_context_new(sf_model *m, const sf_context_params *p);
void sf_context_free(sf_context *c);
int sf_context_n_ctx(const sf_context *c);

/* Evaluates n tokens at positions n_past .. n_past+n-1 (n_past = tokens
 * already in the KV cache), appending them to the cache. Any n is accepted;
 * it is processed in n_batch pieces. If all_logits, logits are kept for
 * every token; otherwise only for the last one. */
int sf_decode(sf_context *c, const int32_t *tokens, int n, bool all_logits);
/* Logits of token i of the last sf_decode call (i = -1: the last one);
 * NULL if that token's logits were not kept. */
const float *sf_get_logits(sf_context *c, int i);
int sf_context_n_past(const sf_context *c);
/* Drops cached positions >= n_past (0 clears the cache). */
int sf_kv_truncate(sf_context *c, int n_past);
/* Parallel regions (each ends in one thread barrier) the last sf_decode call ran; -1 before the first. */
int sf_context_barriers_last(const sf_context *c);

/* ----------------------------------------------------------------- sampler */

typedef struct {
    float temperature;    /* <= 0: greedy */
    int top_k;            /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    int repeat_last_n;    /* tokens of history the penalty looks at */
    uint64_t seed;
} sf_sampler_params;

typedef struct sf_sampler sf_sampler;
sf_sampler_params sf_sampler_default_params(void);
sf_sampler *sf_sampler_new(const sf_sampler_params *p, int n_vocab);
void sf_sampler_free(sf_sampler *s);
/* Picks the next token from logits[n_vocab]; remembers it for the repetition
 * penalty (sf_sampler_accept also feeds prompt tokens). */
int32_t sf_sampler_sample(sf_sampler *s, const float *logits);
void sf_sampler_accept(sf_sampler *s, int32_t token);

/* -------------------------------------------------------------------- chat */

typedef struct { const char *role; const char *content; } sf_chat_message;

/* Name of the template the model's tokenizer.chat_template maps to
 * ("chatml", "llama3", "llama2", "gemma", "zephyr", ...). Without a
 * template key, the family whose turn-marker tokens are in the vocabulary;
 * "chatml" if none fits. */
const char *sf_chat_template_detect(const sf_model *m);
/* Formats messages with template `name` (NULL = detect) and, if
 * add_assistant, the opening of the assistant turn, into a new
 * NUL-terminated string *out (free() it). SF_ERR_ARG for an unknown name. */
int sf_chat_apply(const sf_model *m, const char *name, const sf_chat_message *msgs, int n,
                  bool add_assistant, char **out);
/* The template names sf_chat_apply accepts, NULL-terminated. */
const char *const *sf_chat_template_names(void);

/* ----------------------------------------------------------------- inspect */

/* Validates a GGUF file and prints its architecture, hyperparameters,
 * tokenizer summary and tensor table to out (all metadata keys if
 * all_metadata). Returns SF_OK or the validation error. */
int sf_inspect_file(const char *path, FILE *out, bool all_metadata);

#ifdef __cplusplus
}
#endif
#endif
