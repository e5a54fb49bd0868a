/* llama-bench's pp/tg tests: random tokens, one warm-up, timed repetitions,
 * tokens/s as mean and sample standard deviation. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "eval/eval_internal.h"
#include "model/context.h"
#include "sparse/sparse.h"

sf_bench_params sf_bench_default_params(void) {
    sf_bench_params p = {.n_prompt = 512, .n_gen = 128, .reps = 5, .seed = 1};
    return p;
}

static uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* toks[n]: random ids, or the next n of the text (from *at, wrapping); the
 * first is BOS when the model adds one. */
static void fill_tokens(sf_model *m, int n_vocab, uint64_t *rng, const sf_bench_params *p, int *at, int32_t *toks,
                        int n) {
    for (int i = 0; i < n; i++)
        toks[i] = p->text ? p->text[(*at)++ % p->n_text] : (int32_t)(next_rand(rng) % (uint64_t)n_vocab);
    if (n > 0 && sf_model_add_bos(m) && sf_token_bos(m) >= 0) toks[0] = sf_token_bos(m);
}

/* One timed run: n tokens as one prompt, or one at a time. *barriers gets
 * the thread-pool regions of the last sf_decode call. */
static int run_once(sf_context *c, const int32_t *depth, int n_depth, const int32_t *toks, int n, bool one_by_one,
                    double *sec, int *barriers) {
    int rc = sf_kv_truncate(c, 0);
    if (rc == SF_OK && n_depth > 0) rc = sf_decode(c, depth, n_depth, false); /* untimed */
    if (rc != SF_OK) return rc;
    double t0 = sf_eval_now();
    if (one_by_one) {
        for (int i = 0; i < n && rc == SF_OK; i++) rc = sf_decode(c, toks + i, 1, false);
    } else {
        rc = sf_decode(c, toks, n, false);
    }
    *sec = sf_eval_now() - t0;
    *barriers = sf_context_barriers_last(c);
    return rc;
}

/* What the side-car's steps read (sf_bench_result.sparse_*), from the
 * context's counters over the test's runs. */
static void sparse_bytes(sf_context *c, uint64_t weight_bytes, sf_bench_result *out) {
    sf_sparse_stats st;
    sf_context_sparse_stats(c, &st, true);
    if (!c->sparse || st.tokens == 0) return;
    uint64_t dense_ffn = 0;
    int n_sparse = 0;
    for (int l = 0; l < c->model->n_layer; l++) {
        const sf_sparse_layer *S = &c->sparse->layers[l];
        const sf_layer *L = &c->model->layers[l];
        /* the dense matrices the sparse sites replace (their sparse reads are in st.bytes) */
        if (S->site[SF_SITE_ATTN_IN].on) dense_ffn += L->wq->nbytes + L->wk->nbytes + L->wv->nbytes;
        if (S->site[SF_SITE_ATTN_OUT].on) dense_ffn += L->wo->nbytes;
        if (!S->site[SF_SITE_FFN_IN].on && !S->site[SF_SITE_FFN_HIDDEN].on) continue;
        dense_ffn += L->ffn_gate->nbytes + L->ffn_up->nbytes + L->ffn_down->nbytes;
        n_sparse++;
    }
    const double steps = (double)st.tokens / n_sparse;
    out->sparse = true;
    out->sparse_bytes = weight_bytes - dense_ffn + (uint64_t)(st.bytes / steps);
    out->sparse_gbps = (double)out->sparse_bytes * out->tps_mean * out->steps / out->n_tokens / 1e9;
    out->hidden_density = st.hidden_total ? (double)st.hidden_active / st.hidden_total : -1.0;
    out->in_density = st.in_total ? (double)st.in_active / st.in_total : -1.0;
    out->attn_density = st.attn_total ? (double)st.attn_active / st.attn_total : -1.0;
}

static int run_test(sf_context *c, const int32_t *depth, int n_depth, const int32_t *toks, int n, bool tg, int reps,
                    int n_batch, uint64_t weight_bytes, sf_bench_result *out) {
    double sec;
    int barriers;
    /* warm-up: the whole prompt for pp, a single token for tg (llama-bench) */
    int rc = run_once(c, depth, n_depth, toks, tg ? 1 : n, tg, &sec, &barriers);
    memset(out, 0, sizeof *out);
    sf_context_route_stats(c, NULL, NULL, true);
    double sum = 0.0, sum2 = 0.0, sum_sec = 0.0;
    for (int r = 0; rc == SF_OK && r < reps; r++) {
        rc = run_once(c, depth, n_depth, toks, n, tg, &sec, &barriers);
        if (sec <= 0.0) sec = 1e-9;
        double tps = n / sec;
        out->samples[r] = tps;
        sum += tps;
        sum2 += tps * tps;
        sum_sec += sec;
    }
    if (rc != SF_OK) return sf_fail_context(rc, "bench %s%d", tg ? "tg" : "pp", n);
    out->n_tokens = n;
    out->n_depth = n_depth;
    out->reps = reps;
    out->tps_mean = sum / reps;
    double var = reps > 1 ? (sum2 - sum * sum / reps) / (reps - 1) : 0.0;
    out->tps_std = var > 0 ? sqrt(var) : 0.0;
    out->seconds_mean = sum_sec / reps;
    /* a pp decode runs ceil(n / n_batch) forward steps, each reading every weight once */
    out->steps = tg ? n : (n + n_batch - 1) / n_batch;
    out->barriers_per_step = barriers < 0 ? -1 : tg ? barriers : barriers / out->steps;
    out->weight_bytes = weight_bytes;
    out->gbps = (double)weight_bytes * out->tps_mean * out->steps / n / 1e9;
    sparse_bytes(c, weight_bytes, out);
    if (c->routes) {
        out->routed = true;
        out->block_fraction = sf_context_route_fraction(c, true);
    }
    return SF_OK;
}

int sf_eval_bench(sf_model *m, const sf_bench_params *params, sf_bench_result *pp,
                  sf_bench_result *tg) {
    sf_bench_params p = params ? *params : sf_bench_default_params();
    if (!m) return sf_fail(SF_ERR_ARG, "bench: NULL model");
    if (p.n_prompt < 0 || p.n_gen < 0)
        return sf_fail(SF_ERR_ARG, "bench: token counts must be >= 0 (pp %d, tg %d)", p.n_prompt,
                       p.n_gen);
    if (p.reps < 1 || p.reps > SF_BENCH_MAX_REPS)
        return sf_fail(SF_ERR_ARG, "bench: repetitions must be 1..%d (got %d)", SF_BENCH_MAX_REPS, p.reps);
    if (p.n_threads < 0 || p.n_batch < 0)
        return sf_fail(SF_ERR_ARG, "bench: threads and batch must be >= 0");
    if (p.text && p.n_text < 1) return sf_fail(SF_ERR_ARG, "bench: the text has no tokens");
    if (p.text)
        for (int i = 0; i < p.n_text; i++)
            if (p.text[i] < 0 || p.text[i] >= m->n_vocab)
                return sf_fail(SF_ERR_ARG, "bench: text token %d at %d is outside the vocabulary", p.text[i], i);
    if (p.n_depth < 0 || p.n_depth > (1 << 20))
        return sf_fail(SF_ERR_ARG, "bench: depth must be 0..%d (got %d)", 1 << 20, p.n_depth);
    if (!pp) p.n_prompt = 0;
    if (!tg) p.n_gen = 0;
    int n_max = p.n_prompt > p.n_gen ? p.n_prompt : p.n_gen;
    if (n_max == 0) return SF_OK;

    sf_model_info info;
    sf_model_get_info(m, &info);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = p.n_depth + n_max;
    cp.n_batch = p.n_batch;
    cp.n_threads = p.n_threads;
    sf_context *c = sf_context_new(m, &cp);
    if (!c) return sf_fail_context(SF_ERR_ARG, "bench: creating a context of %d", cp.n_ctx);
    if (p.sparse && sf_context_use_sparse(c, p.sparse) != SF_OK) {
        sf_context_free(c);
        return sf_fail_context(SF_ERR_ARG, "bench: --sparse");
    }
    if (p.sparse && p.sparse_batch > 1) sf_context_sparse_policy(c, p.sparse_batch, INT_MAX);
    if (p.routes && sf_context_use_routes(c, p.routes) != SF_OK) {
        sf_context_free(c);
        return sf_fail_context(SF_ERR_ARG, "bench: --routes");
    }
    if (p.routes) sf_context_route_policy(c, &p.route_policy);
    int32_t *toks = malloc((size_t)(n_max + p.n_depth) * sizeof *toks); /* [n_max + n_depth]: test, then depth */
    if (!toks) {
        sf_context_free(c);
        return sf_fail(SF_ERR_NOMEM, "bench: out of memory");
    }
    uint64_t rng = p.seed;
    const int n_batch = p.n_batch > 0 ? p.n_batch : 512;
    const uint64_t wbytes = sf_model_decode_weight_bytes(m);
    int rc = SF_OK;
    int32_t *depth = toks + n_max;
    int at = 0; /* next text token */
    fill_tokens(m, info.n_vocab, &rng, &p, &at, depth, p.n_depth); /* BOS first, like a prompt */
    if (p.n_prompt > 0) {
        fill_tokens(m, info.n_vocab, &rng, &p, &at, toks, p.n_prompt);
        if (p.n_depth > 0) toks[0] = depth[p.n_depth - 1]; /* no second BOS mid-context */
        rc = run_test(c, depth, p.n_depth, toks, p.n_prompt, false, p.reps, n_batch, wbytes, pp);
    }
    if (rc == SF_OK && p.n_gen > 0) {
        fill_tokens(m, info.n_vocab, &rng, &p, &at, toks, p.n_gen);
        if (p.n_depth > 0) toks[0] = depth[p.n_depth - 1];
        rc = run_test(c, depth, p.n_depth, toks, p.n_gen, true, p.reps, n_batch, wbytes, tg);
    }
    free(toks);
    sf_context_free(c);
    return rc;
}
