/* Perplexity over a token stream, optionally saving or comparing against
 * KL-divergence base log-probabilities (llama.cpp's conventions). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "eval/eval_internal.h"

sf_ppl_params sf_ppl_default_params(void) {
    sf_ppl_params p = {0};
    return p;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Linear interpolation between sorted samples (llama.cpp's percentile). */
static double percentile(const float *v, int64_t n, double frac) {
    if (frac <= 0) return v[0];
    if (frac >= 1) return v[n - 1];
    double p = frac * (double)(n - 1);
    int64_t i = (int64_t)p;
    p -= (double)i;
    return (1 - p) * v[i] + p * v[i + 1 < n ? i + 1 : n - 1];
}

/* Perplexity from NLL sums (llama.cpp's Final estimate). */
static void ppl_finish(double nll, double nll2, int64_t count, sf_ppl_result *r) {
    double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
    r->ppl = exp(mean);
    r->ppl_err = var > 0 && count > 1 ? r->ppl * sqrt(var / (double)(count - 1)) : 0.0;
}

typedef struct {
    sf_model *m;
    sf_context *c;
    const sf_ppl_params *p;
    int n_ctx, n_vocab, n_chunk, first, n_score, n_batch;
    const int32_t *tokens; /* [n_chunk * n_ctx] evaluated stream */
    int32_t *buf;          /* [n_ctx] one chunk, BOS substituted */
    uint16_t *rows;        /* [n_score * row_len] quantized log-probs of a chunk */
    float *kld_vals;       /* [n_chunk * n_score] per-token KLD (base mode) */
    sf_kld_writer w;
    sf_kld_reader r;
    bool saving, comparing;
} ppl_job;

static int run_chunks(ppl_job *j, sf_ppl_result *out) {
    const size_t row_len = sf_kld_row_len(j->n_vocab);
    const bool add_bos = sf_model_add_bos(j->m) && sf_token_bos(j->m) >= 0;
    double nll = 0.0, nll2 = 0.0;
    int64_t count = 0;
    sf_kld_acc acc = {0};
    for (int ch = 0; ch < j->n_chunk; ch++) {
        const int32_t *toks = j->tokens + (size_t)ch * j->n_ctx;
        memcpy(j->buf, toks, (size_t)j->n_ctx * sizeof *j->buf);
        if (add_bos) j->buf[0] = sf_token_bos(j->m);
        if (j->comparing) {
            int rc = sf_kld_reader_get(&j->r, j->rows, (size_t)j->n_score * row_len);
            if (rc != SF_OK) return sf_fail_context(rc, "chunk %d", ch + 1);
        }
        double t0 = sf_eval_now();
        int rc = sf_kv_truncate(j->c, 0);
        /* the first half only conditions; logits are kept for the scored
         * half, n_batch tokens at a time */
        if (rc == SF_OK) rc = sf_decode(j->c, j->buf, j->first, false);
        for (int off = 0; rc == SF_OK && off < j->n_score; off += j->n_batch) {
            int n = j->n_score + 1 - off < j->n_batch ? j->n_score + 1 - off : j->n_batch;
            rc = sf_decode(j->c, j->buf + j->first + off, n, true);
            for (int k = off; rc == SF_OK && k < off + n && k < j->n_score; k++) {
                const float *lg = sf_get_logits(j->c, k - off);
                if (!lg) return sf_fail(SF_ERR_RANGE, "perplexity: no logits for position %d", j->first + k);
                int32_t target = toks[j->first + k + 1];
                uint16_t *row = j->rows + (size_t)k * row_len;
                if (j->comparing) {
                    j->kld_vals[count] = (float)sf_kld_accumulate(&acc, lg, j->n_vocab, row, target);
                } else {
                    double v = j->saving ? sf_kld_quantize(lg, j->n_vocab, target, row)
                                         : sf_eval_nll(lg, j->n_vocab, target);
                    nll += v;
                    nll2 += v * v;
                }
                count++;
            }
        }
        if (rc != SF_OK) return sf_fail_context(rc, "perplexity chunk %d", ch + 1);
        if (j->saving) {
            rc = sf_kld_writer_put(&j->w, j->rows, (size_t)j->n_score * row_len);
            if (rc != SF_OK) return rc;
        }
        out->n_chunks = ch + 1;
        out->n_scored = count;
        if (j->comparing) sf_kld_finish(&acc, out);
        else ppl_finish(nll, nll2, count, out);
        if (j->p->on_chunk) j->p->on_chunk(ch + 1, j->n_chunk, sf_eval_now() - t0, out, j->p->user);
    }
    if (j->comparing && count > 0) {
        qsort(j->kld_vals, (size_t)count, sizeof *j->kld_vals, cmp_float);
        out->kld_max = j->kld_vals[count - 1];
        out->kld_p99 = percentile(j->kld_vals, count, 0.99);
        out->kld_p90 = percentile(j->kld_vals, count, 0.90);
        out->kld_median = count % 2 == 0
                              ? 0.5 * (j->kld_vals[count / 2] + j->kld_vals[count / 2 - 1])
                              : j->kld_vals[count / 2];
    }
    return SF_OK;
}

/* Sets up n_ctx, n_chunk and the token stream for either mode. */
static int plan(ppl_job *j, const int32_t *tokens, int64_t n_tokens) {
    const sf_ppl_params *p = j->p;
    if (p->n_ctx < 0) return sf_fail(SF_ERR_ARG, "perplexity: n_ctx must be positive (got %d)", p->n_ctx);
    if (p->n_batch < 0) return sf_fail(SF_ERR_ARG, "perplexity: n_batch must be positive (got %d)", p->n_batch);
    j->n_batch = p->n_batch > 0 ? p->n_batch : 512;
    int64_t n_chunk_max;
    if (j->comparing) {
        int rc = sf_kld_reader_open(&j->r, p->kld_base);
        if (rc != SF_OK) return rc;
        if (j->r.n_vocab != j->n_vocab)
            return sf_fail(SF_ERR_ARG, "%s was saved with a vocab of %d tokens, this model has %d",
                           p->kld_base, j->r.n_vocab, j->n_vocab);
        if (p->n_ctx > 0 && p->n_ctx != j->r.n_ctx)
            return sf_fail(SF_ERR_ARG, "%s was saved with n_ctx %d, but n_ctx %d was asked for",
                           p->kld_base, j->r.n_ctx, p->n_ctx);
        j->n_ctx = j->r.n_ctx;
        n_chunk_max = j->r.n_chunk;
        j->tokens = j->r.tokens;
        if (tokens) {
            int64_t need = (int64_t)j->r.n_chunk * j->r.n_ctx;
            int64_t n = n_tokens < need ? n_tokens : need;
            for (int64_t i = 0; i < n; i++)
                if (tokens[i] != j->r.tokens[i])
                    return sf_fail(SF_ERR_ARG,
                                   "the text's tokens differ from those saved in %s at token %lld "
                                   "(%d vs %d): not the same text or tokenizer",
                                   p->kld_base, (long long)i, tokens[i], j->r.tokens[i]);
            if (n_tokens < need)
                return sf_fail(SF_ERR_ARG, "the text has %lld tokens, %s was saved over %lld",
                               (long long)n_tokens, p->kld_base, (long long)need);
        }
    } else {
        j->n_ctx = p->n_ctx > 0 ? p->n_ctx : 512;
        if (!tokens) return sf_fail(SF_ERR_ARG, "perplexity: no tokens");
        if (n_tokens < 2 * (int64_t)j->n_ctx)
            return sf_fail(SF_ERR_ARG,
                           "perplexity needs at least %d tokens (2 * n_ctx %d); the text has %lld",
                           2 * j->n_ctx, j->n_ctx, (long long)n_tokens);
        n_chunk_max = n_tokens / j->n_ctx;
        j->tokens = tokens;
    }
    if (j->n_ctx < 4) return sf_fail(SF_ERR_ARG, "perplexity: n_ctx %d is too small", j->n_ctx);
    if (sf_context_n_ctx(j->c) < j->n_ctx)
        return sf_fail(SF_ERR_ARG, "perplexity: the context holds %d positions, n_ctx is %d",
                       sf_context_n_ctx(j->c), j->n_ctx);
    if (n_chunk_max > INT32_MAX / 2) n_chunk_max = INT32_MAX / 2;
    j->n_chunk = p->n_chunks > 0 && p->n_chunks < n_chunk_max ? p->n_chunks : (int)n_chunk_max;
    j->first = j->n_ctx / 2;
    j->n_score = j->n_ctx - 1 - j->first;
    return SF_OK;
}

int sf_eval_perplexity(sf_model *m, sf_context *c, const int32_t *tokens, int64_t n_tokens,
                       const sf_ppl_params *params, sf_ppl_result *out) {
    sf_ppl_params defaults = sf_ppl_default_params();
    if (!m || !c || !out) return sf_fail(SF_ERR_ARG, "perplexity: NULL model, context or result");
    memset(out, 0, sizeof *out);
    ppl_job j = {.m = m, .c = c, .p = params ? params : &defaults};
    if (j.p->kld_save && j.p->kld_base)
        return sf_fail(SF_ERR_ARG, "perplexity: saving and comparing KL-divergence logits at once");
    j.saving = j.p->kld_save != NULL;
    j.comparing = j.p->kld_base != NULL;
    sf_model_info info;
    sf_model_get_info(m, &info);
    j.n_vocab = info.n_vocab;

    int rc = plan(&j, tokens, n_tokens);
    if (rc == SF_OK) {
        out->n_ctx = j.n_ctx;
        size_t row_len = sf_kld_row_len(j.n_vocab);
        j.buf = malloc((size_t)j.n_ctx * sizeof *j.buf);
        if (j.saving || j.comparing) j.rows = malloc((size_t)j.n_score * row_len * sizeof *j.rows);
        if (j.comparing) j.kld_vals = malloc((size_t)j.n_chunk * j.n_score * sizeof *j.kld_vals);
        if (!j.buf || ((j.saving || j.comparing) && !j.rows) || (j.comparing && !j.kld_vals))
            rc = sf_fail(SF_ERR_NOMEM, "perplexity: out of memory");
    }
    if (rc == SF_OK && j.saving)
        rc = sf_kld_writer_open(&j.w, j.p->kld_save, j.n_ctx, j.n_vocab, j.n_chunk, j.tokens);
    if (rc == SF_OK) rc = run_chunks(&j, out);
    if (j.saving && j.w.f) {
        if (rc == SF_OK) rc = sf_kld_writer_commit(&j.w);
        else sf_kld_writer_abort(&j.w);
    }
    if (j.comparing) sf_kld_reader_close(&j.r);
    free(j.buf);
    free(j.rows);
    free(j.kld_vals);
    return rc;
}
