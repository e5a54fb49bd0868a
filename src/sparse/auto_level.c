/* sparsify --sparsity auto:KLD: per-layer levels, the sparsest allocation
 * found whose mean KL divergence against the dense model stays within a
 * budget, measured on calibration chunks (the scored half sparse, as
 * perplexity --sparse runs them).
 *
 * A KLD run per candidate allocation is the expensive part, so the search
 * uses a model of the cost that the runs correct:
 *  1. probe: each layer alone at level PROBE gives its measured KLD k_l;
 *  2. shape: within a layer, KLD is taken proportional to the share of the
 *     squared score magnitude the threshold drops, e_l(s), read off the
 *     calibration samples (a small perturbation δ of the logits costs
 *     ½ δᵀFδ, and E‖δ‖² grows with the dropped energy), so
 *     ĉ_l(s) = k_l · e_l(s) / e_l(PROBE);
 *  3. allocation for a multiplier λ: each layer takes the grid level s
 *     maximizing w_l · s − λ · ĉ_l(s), w_l the bytes the layer's sparse
 *     sites skip per unit of level; λ is bisected so that Σ ĉ_l meets a
 *     predicted budget;
 *  4. the allocation is run and its KLD measured; the predicted budget is
 *     rescaled by budget / measured and step 3 repeated. The sparsest
 *     allocation measured within the budget wins (all dense, KLD 0, if none
 *     is). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "eval/eval_internal.h"
#include "model/context.h"
#include "sparse/sparsify_impl.h"

#define PROBE 0.5f /* level of the single-layer probes */
#define N_GRID 19  /* candidate levels 0, 0.05, ..., 0.90 */
#define MAX_FITS 8 /* measured allocations after the probes */

static float grid_level(int g) { return 0.05f * (float)g; }

typedef struct {
    sparsify_state *st;
    sf_context *c;
    int n_ctx, first, n_score, n_chunks, n_vocab;
    int32_t *chunks; /* [n_chunks][n_ctx], BOS first where the model adds one */
    uint16_t *base;  /* [n_chunks * n_score][row_len] the dense model's log-probs */
    size_t row_len;
    float *thr, *lvl; /* [SF_SITES][n_layer] */
    int64_t runs, total_runs;
} auto_eval;

/* the dense log-probs of every scored position */
static int measure_dense(auto_eval *a) {
    for (int ch = 0; ch < a->n_chunks; ch++) {
        const int32_t *buf = a->chunks + (size_t)ch * a->n_ctx;
        int rc = sf_forward(a->c, buf, a->n_ctx, a->first, NULL);
        if (rc) return rc;
        for (int k = 0; k < a->n_score; k++)
            sf_kld_quantize(a->c->logits + (size_t)k * a->n_vocab, a->n_vocab, buf[a->first + k + 1],
                            a->base + ((size_t)ch * a->n_score + k) * a->row_len);
    }
    return SF_OK;
}

/* Sets the context's rules to level[l] per layer and measures mean KLD and
 * the same-top fraction against the dense model. */
static int measure(auto_eval *a, const float *level, double *kld, double *same_top) {
    const sparsify_state *st = a->st;
    const int n = st->m->n_layer;
    sparsify_rules(st, level, a->thr, a->lvl);
    for (int l = 0; l < n; l++)
        for (int s = 0; s < SF_SITES; s++) {
            if (!sparsify_site_used(st->p, (sf_sparse_site)s)) continue;
            sf_sparse_rule *r = &a->c->sparse->layers[l].site[s];
            r->threshold = a->thr[s * n + l];
            r->level = a->lvl[s * n + l];
            r->on = r->level > 0;
        }
    sf_kld_acc acc = {0};
    for (int ch = 0; ch < a->n_chunks; ch++) {
        const int32_t *buf = a->chunks + (size_t)ch * a->n_ctx;
        int rc = sf_forward(a->c, buf, a->n_ctx, a->first, NULL);
        if (rc) return rc;
        for (int k = 0; k < a->n_score; k++)
            sf_kld_accumulate(&acc, a->c->logits + (size_t)k * a->n_vocab, a->n_vocab,
                              a->base + ((size_t)ch * a->n_score + k) * a->row_len, buf[a->first + k + 1]);
    }
    *kld = acc.count ? acc.sum_kld / (double)acc.count : 0.0;
    *same_top = acc.count ? (double)acc.n_same_top / (double)acc.count : 1.0;
    a->runs++;
    if (st->p->progress) st->p->progress("auto", a->runs, a->total_runs, st->p->user);
    return SF_OK;
}

/* bytes the sparse sites of layer l skip per unit of level */
static double layer_weight(const sparsify_state *st, int l) {
    const sf_layer *L = &st->m->layers[l];
    const sf_sparsify_params *p = st->p;
    double w = 0;
    if (sparsify_site_used(p, SF_SITE_FFN_IN)) w += (double)L->ffn_gate->nbytes + (double)L->ffn_up->nbytes;
    w += (double)L->ffn_down->nbytes + (p->method == SF_SPARSE_CATS ? (double)L->ffn_up->nbytes : 0.0);
    if (p->attention) w += (double)(L->wq->nbytes + L->wk->nbytes + L->wv->nbytes + L->wo->nbytes);
    return w;
}

/* e_l(s): the mean over the layer's sites of the squared magnitude dropped */
static double dropped_energy(const sparsify_state *st, int l, float s) {
    double e = 0;
    int n = 0;
    for (int site = 0; site < SF_SITES; site++) {
        if (!sparsify_site_used(st->p, (sf_sparse_site)site)) continue;
        const sf_reservoir *r = &st->res[(size_t)l * SF_SITES + site];
        float t, v;
        sf_reservoir_quantile(r, s, &t, &v);
        e += s > 0 ? sf_reservoir_energy_below(r, t) : 0.0;
        n++;
    }
    return n ? e / n : 0.0;
}

typedef struct {
    int n_layer;
    double *w;    /* [n_layer] normalized to mean 1 */
    double *cost; /* [n_layer][N_GRID] ĉ_l(s) */
} cost_model;

/* The allocation for λ into level[]; returns Σ ĉ_l. */
static double allocate(const cost_model *cm, double lambda, float *level) {
    double total = 0;
    for (int l = 0; l < cm->n_layer; l++) {
        int best = 0;
        double best_v = 0;
        for (int g = 1; g < N_GRID; g++) {
            const double v = cm->w[l] * grid_level(g) - lambda * cm->cost[l * N_GRID + g];
            if (v > best_v) best_v = v, best = g;
        }
        level[l] = grid_level(best);
        total += cm->cost[l * N_GRID + best];
    }
    return total;
}

/* the sparsest allocation whose predicted cost is within budget */
static void allocate_within(const cost_model *cm, double budget, float *level) {
    double lo = -30, hi = 30; /* log λ */
    if (allocate(cm, exp(lo), level) <= budget) return;
    for (int it = 0; it < 80; it++) {
        const double mid = 0.5 * (lo + hi);
        if (allocate(cm, exp(mid), level) <= budget)
            hi = mid;
        else
            lo = mid;
    }
    allocate(cm, exp(hi), level);
}

static double weighted_level(const cost_model *cm, const float *level) {
    double s = 0;
    for (int l = 0; l < cm->n_layer; l++) s += cm->w[l] * level[l];
    return s / cm->n_layer;
}

/* Probes, cost model, and the measured search (the header comment). */
static int search(auto_eval *a, float *best_level) {
    sparsify_state *st = a->st;
    const int n = st->m->n_layer;
    const double budget = st->kld_budget;
    cost_model cm = {n, calloc((size_t)n, sizeof(double)), calloc((size_t)n * N_GRID, sizeof(double))};
    float *level = calloc((size_t)n, sizeof(float));
    int rc = cm.w && cm.cost && level ? SF_OK : sf_fail(SF_ERR_NOMEM, "out of memory");
    double wsum = 0;
    for (int l = 0; !rc && l < n; l++) wsum += cm.w[l] = layer_weight(st, l);
    for (int l = 0; !rc && l < n; l++) {
        /* two probes: the low one is mostly the re-quantized transposes' cost */
        cm.w[l] *= n / wsum;
        double k[2], top;
        const float at[2] = {grid_level(1), PROBE};
        for (int i = 0; !rc && i < 2; i++) {
            memset(level, 0, sizeof(float) * (size_t)n);
            level[l] = at[i];
            rc = measure(a, level, &k[i], &top);
        }
        if (rc) break;
        sf_log_info("auto: layer %d alone: KLD %.5f at %.2f, %.5f at %.2f", l, k[0], at[0], k[1], at[1]);
        const double e0 = dropped_energy(st, l, at[0]), e1 = dropped_energy(st, l, at[1]);
        const double lo = k[0] > 1e-7 ? k[0] : 1e-7, slope = k[1] > lo ? k[1] - lo : 1e-7;
        for (int g = 1; g < N_GRID; g++) {
            const double e = dropped_energy(st, l, grid_level(g));
            const double f = e1 > e0 ? (e - e0) / (e1 - e0) : (grid_level(g) - at[0]) / (at[1] - at[0]);
            cm.cost[l * N_GRID + g] = lo + slope * (f > 0 ? f : 0);
        }
    }
    memset(best_level, 0, sizeof(float) * (size_t)n);
    /* secant steps on the predicted budget towards a measured KLD just under the budget */
    const double aim = 0.97 * budget;
    double best = -1, predicted = aim, p_prev = 0, k_prev = -1;
    for (int it = 0; !rc && it < MAX_FITS; it++) {
        allocate_within(&cm, predicted, level);
        const double v = weighted_level(&cm, level);
        double k = 0, top = 1; /* all dense: the dense model itself */
        if (v > 0) rc = measure(a, level, &k, &top);
        if (rc) break;
        sf_log_info("auto: allocation %d (predicted KLD %.4f): mean level %.3f, measured KLD %.4f, budget %.4f", it + 1,
                    predicted, v, k, budget);
        if (k <= budget && v > best) {
            best = v;
            memcpy(best_level, level, sizeof(float) * (size_t)n);
            st->kld = k;
            st->same_top = top;
        }
        if (k <= budget && k >= 0.9 * budget) break; /* close enough from below */
        double next = k > 0 ? predicted * aim / k : 4 * predicted;
        if (k_prev >= 0 && fabs(k - k_prev) > 1e-9 * budget)
            next = predicted + (aim - k) * (predicted - p_prev) / (k - k_prev);
        if (!(next > 0.25 * predicted)) next = 0.25 * predicted;
        if (next > 4 * predicted) next = 4 * predicted;
        p_prev = predicted;
        k_prev = k;
        predicted = next;
    }
    if (!rc && best >= 0) {
        char line[2048];
        int at = 0;
        for (int l = 0; l < n && at < (int)sizeof line - 16; l++)
            at += snprintf(line + at, sizeof line - (size_t)at, "%s%.2f", l ? " " : "", best_level[l]);
        sf_log_info("auto: levels per layer: %s", line);
    }
    if (!rc && best < 0) { /* none within the budget: all dense */
        st->kld = 0;
        st->same_top = 1;
    }
    free(cm.w);
    free(cm.cost);
    free(level);
    return rc;
}

int sparsify_auto_levels(sparsify_state *st, const int32_t *tokens, int64_t n_avail, const char *out_path,
                         float *level) {
    sf_model *m = st->m;
    const sf_sparsify_params *p = st->p;
    const int n_ctx = p->n_ctx;
    const int64_t avail = sparsify_n_chunks(m, p, n_avail);
    auto_eval a = {.st = st, .n_ctx = n_ctx, .first = n_ctx / 2, .n_vocab = m->n_vocab};
    a.n_score = n_ctx - 1 - a.first;
    a.n_chunks = (int)(avail < p->auto_chunks ? avail : p->auto_chunks);
    a.row_len = sf_kld_row_len(m->n_vocab);
    a.total_runs = 2 * m->n_layer + MAX_FITS;
    a.chunks = malloc(sizeof(int32_t) * (size_t)a.n_chunks * (size_t)n_ctx);
    a.base = malloc(sizeof(uint16_t) * a.row_len * (size_t)a.n_chunks * (size_t)a.n_score);
    a.thr = malloc(sizeof(float) * SF_SITES * (size_t)m->n_layer);
    a.lvl = malloc(sizeof(float) * SF_SITES * (size_t)m->n_layer);
    float *probe = malloc(sizeof(float) * (size_t)m->n_layer);
    char *tmp = malloc(strlen(out_path) + 16);
    int rc = a.chunks && a.base && a.thr && a.lvl && probe && tmp
                 ? SF_OK
                 : sf_fail(SF_ERR_NOMEM, "out of memory for the dense log-probs of %d chunks", a.n_chunks);
    for (int ch = 0; !rc && ch < a.n_chunks; ch++) sparsify_chunk(m, tokens, n_ctx, ch, a.chunks + (size_t)ch * n_ctx);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = cp.n_batch = n_ctx;
    cp.n_threads = p->n_threads;
    if (!rc && !(a.c = sf_context_new(m, &cp))) rc = SF_ERR_NOMEM;
    if (!rc) rc = measure_dense(&a);
    /* every layer at the probe level, so that every tensor is in the
     * side-car the context reads; the search then changes the rules only */
    if (!rc) {
        for (int l = 0; l < m->n_layer; l++) probe[l] = PROBE;
        sparsify_rules(st, probe, a.thr, a.lvl);
        sprintf(tmp, "%s.auto.tmp", out_path);
        uint64_t bytes;
        rc = sparsify_write(st, a.thr, a.lvl, tmp, &bytes);
        if (!rc) {
            rc = sf_context_use_sparse(a.c, tmp);
            unlink(tmp); /* mapped while the context holds it */
        }
    }
    if (!rc) {
        sf_context_sparse_policy(a.c, 1, a.first);
        rc = search(&a, level);
    }
    if (a.c) sf_context_free(a.c);
    free(a.chunks);
    free(a.base);
    free(a.thr);
    free(a.lvl);
    free(probe);
    free(tmp);
    return rc;
}
