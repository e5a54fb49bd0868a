/* Shared pieces of the evaluation code: log-softmax, the quantized
 * log-probability rows of llama.cpp's KL-divergence base file, and the file
 * itself. */
#ifndef SF_EVAL_INTERNAL_H
#define SF_EVAL_INTERNAL_H

#include <stdio.h>

#include "sparsefuse_eval.h"

double sf_eval_now(void); /* monotonic seconds */

/* -log softmax(logits)[tok], summed in double (llama.cpp's log_softmax). */
double sf_eval_nll(const float *logits, int n_vocab, int32_t tok);

/* One quantized row: float scale, float min log-prob (4 uint16), then
 * n_vocab uint16 padded to even. */
static inline size_t sf_kld_row_len(int n_vocab) { return 2 * (((size_t)n_vocab + 1) / 2) + 4; }

/* Fills row[sf_kld_row_len] from logits; returns -log p(tok). */
double sf_kld_quantize(const float *logits, int n_vocab, int32_t tok, uint16_t *row);

/* Running sums of the KL-divergence comparison (as llama.cpp keeps them). */
typedef struct {
    double sum_nll, sum_nll2, sum_nll_base, sum_nll_base2, sum_nll_nll_base;
    double sum_kld, sum_kld2, sum_dp, sum_dp2, sum_dp4;
    int64_t n_same_top, count;
} sf_kld_acc;

/* Compares logits with a base row for target tok; returns the token's KLD. */
double sf_kld_accumulate(sf_kld_acc *a, const float *logits, int n_vocab, const uint16_t *row,
                         int32_t tok);

/* Fills the PPL/KLD fields of r from a (percentiles are left alone). */
void sf_kld_finish(const sf_kld_acc *a, sf_ppl_result *r);

/* ---- the base file: "_logits_", int32 n_ctx, n_vocab, n_chunk,
 * int32 tokens[n_chunk * n_ctx], then n_chunk * (n_ctx - 1 - n_ctx/2) rows. */

typedef struct {
    FILE *f;
    char *path, *tmp; /* final name and the temporary one written first */
} sf_kld_writer;

int sf_kld_writer_open(sf_kld_writer *w, const char *path, int32_t n_ctx, int32_t n_vocab,
                       int32_t n_chunk, const int32_t *tokens);
int sf_kld_writer_put(sf_kld_writer *w, const uint16_t *data, size_t n);
int sf_kld_writer_commit(sf_kld_writer *w); /* flush, fsync, rename */
void sf_kld_writer_abort(sf_kld_writer *w); /* close and unlink the temporary */

typedef struct {
    FILE *f;
    int32_t n_ctx, n_vocab, n_chunk;
    int32_t *tokens; /* [n_chunk * n_ctx] */
} sf_kld_reader;

/* Reads and validates the header and tokens (size must match exactly). */
int sf_kld_reader_open(sf_kld_reader *r, const char *path);
int sf_kld_reader_get(sf_kld_reader *r, uint16_t *data, size_t n);
void sf_kld_reader_close(sf_kld_reader *r);

#endif
