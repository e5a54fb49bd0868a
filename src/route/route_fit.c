/* sparsefuse route: routers fitted in closed form to a pretrained model.
 *
 * Per calibration chunk, one dense pass records the residual stream entering
 * and leaving every block; then each block's per-token target:
 *  - kl: KL(dense || block removed) of each token's next-token distribution,
 *    from a pass that starts at the block with the block removed for every
 *    token (one partial pass per block): what skipping the block costs that
 *    token downstream, the quantity routing should keep small;
 *  - delta: ||x_out - x_in|| / ||x_in||, the block's relative update (free,
 *    from the dense pass; a proxy that ignores what later blocks do with it).
 * A router is the ridge regression of log(target) on [x̂, 1], x̂ = x / rms(x)
 * of the block input (LAPACK dposv): tokens with a high predicted cost run
 * the block. Its threshold comes from the routed model itself (closed_loop):
 * the score that lets the capacity through once the blocks before it route. Routed blocks are given, or (auto) those with the
 * lowest mean target; the static baseline removes such blocks for every
 * token instead (SLEB / ShortGPT-style). Neither takes the first or last. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/threads.h"
#include "model/context.h"
#include "route/routes.h"
#include "sparsefuse_routing.h"

static const char *const target_names[SF_ROUTE_TARGETS] = {"kl", "delta"};
#define LOG_FLOOR 1e-6 /* log(target + LOG_FLOOR): a zero target stays finite */

const char *sf_route_target_name(sf_route_target t) {
    return t >= 0 && t < SF_ROUTE_TARGETS ? target_names[t] : "?";
}

int sf_route_target_parse(const char *name, sf_route_target *out) {
    for (int t = 0; t < SF_ROUTE_TARGETS; t++)
        if (name && strcmp(name, target_names[t]) == 0) {
            *out = (sf_route_target)t;
            return SF_OK;
        }
    return sf_fail(SF_ERR_ARG, "unknown routing target '%s' (kl or delta)", name ? name : "");
}

sf_route_params sf_route_default_params(void) {
    return (sf_route_params){.target = SF_ROUTE_TARGET_KL, .ridge = 1e-3f, .n_ctx = 512, .n_tokens = 4096};
}

void sf_route_result_free(sf_route_result *r) {
    if (!r) return;
    free(r->importance);
    free(r->dropped);
    memset(r, 0, sizeof *r);
}

typedef struct {
    int L, E, T, V;
    float *x_in, *x_out; /* [L][T][E] the dense stream entering / leaving each block, this chunk */
    float *lp;           /* [T][V] dense log-probabilities */
    double *neg_ent;     /* [T] Σ p log p of the dense distribution */
    const float *logits; /* [T][V] logits of the pass being compared (KL region) */
    float *kl;           /* [T] its per-token KL */
} chunk_acc;

static void on_stage(void *user, int layer, sf_stage stage, const float *x, int T) {
    chunk_acc *a = user;
    if (stage == SF_STAGE_AFTER_ATTN) return;
    float *dst = (stage == SF_STAGE_INPUT ? a->x_in : a->x_out) + (size_t)layer * T * a->E;
    memcpy(dst, x, sizeof(float) * (size_t)T * a->E);
}

/* log-softmax of a logits row into lp; returns Σ p log p. */
static double log_softmax(const float *l, int V, float *lp) {
    float mx = l[0];
    for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
    double z = 0;
    for (int v = 0; v < V; v++) z += exp((double)(l[v] - mx));
    const double lz = log(z) + mx;
    double ne = 0;
    for (int v = 0; v < V; v++) {
        lp[v] = (float)((double)l[v] - lz);
        ne += exp((double)lp[v]) * lp[v];
    }
    return ne;
}

static void region_dense(void *arg, int ith, int nth) {
    chunk_acc *a = arg;
    int64_t t0, t1;
    sf_split_range(a->T, ith, nth, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        a->neg_ent[t] = log_softmax(a->logits + t * a->V, a->V, a->lp + t * a->V);
}

/* kl[t] = KL(dense || logits) per token. */
static void region_kl(void *arg, int ith, int nth) {
    chunk_acc *a = arg;
    int64_t t0, t1;
    sf_split_range(a->T, ith, nth, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        const float *l = a->logits + t * a->V, *lp = a->lp + t * a->V;
        float mx = l[0];
        for (int v = 1; v < a->V; v++) mx = l[v] > mx ? l[v] : mx;
        double z = 0, pl = 0;
        for (int v = 0; v < a->V; v++) {
            z += exp((double)(l[v] - mx));
            pl += exp((double)lp[v]) * l[v];
        }
        const double kl = a->neg_ent[t] - pl + log(z) + mx;
        a->kl[t] = kl > 0 ? (float)kl : 0.0f;
    }
}

/* x̂ = x / rms(x), as sf_route_score sees it. */
static void features(const float *x, int E, float eps, float *z) {
    const double inv = sf_route_inv_rms(x, E, eps);
    for (int e = 0; e < E; e++) z[e] = (float)(x[e] * inv);
}

static double norm2(const float *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

typedef struct {
    const sf_model *m;
    const sf_route_params *p;
    int L, E;
    int64_t N, n;   /* calibration tokens planned, recorded so far */
    bool *need;     /* [L] blocks whose per-token target is needed (routed, or all for static) */
    float **Z;      /* [L] routed: [N][E] features */
    float **Y;      /* [L] needed: [N] targets */
    int64_t pass, n_pass;
} fit_state;

static int run_chunk(sf_context *c, fit_state *s, chunk_acc *a, const int32_t *toks) {
    const int L = s->L, E = s->E, T = a->T;
    int rc = sf_kv_truncate(c, 0);
    sf_run_plan base = {.on_stage = on_stage, .user = a};
    if (!rc) rc = sf_forward(c, toks, T, 0, &base);
    if (rc) return rc;
    const sf_route_params *p = s->p;
    if (p->progress) p->progress("calibrate", ++s->pass, s->n_pass, p->user);
    const bool kl = p->target == SF_ROUTE_TARGET_KL;
    if (kl) {
        a->logits = c->logits;
        sf_pool_run(c->pool, region_dense, a);
    }
    bool *drop = calloc((size_t)L, sizeof *drop);
    if (!drop) return sf_fail(SF_ERR_NOMEM, "out of memory");
    for (int l = 0; !rc && l < L; l++) {
        if (!s->need[l]) continue;
        const float *xi = a->x_in + (size_t)l * T * E, *xo = a->x_out + (size_t)l * T * E;
        float *y = s->Y[l] + s->n;
        if (kl) {
            drop[l] = true;
            sf_run_plan d = {.start_layer = l, .x_start = xi, .drop_attn = drop, .drop_ffn = drop};
            rc = sf_forward(c, toks, T, 0, &d);
            drop[l] = false;
            if (rc) break;
            a->logits = c->logits;
            a->kl = y;
            sf_pool_run(c->pool, region_kl, a);
            if (p->progress) p->progress("calibrate", ++s->pass, s->n_pass, p->user);
        } else {
            for (int t = 0; t < T; t++) {
                double dd = 0;
                for (int e = 0; e < E; e++) {
                    const double v = (double)xo[(size_t)t * E + e] - xi[(size_t)t * E + e];
                    dd += v * v;
                }
                const double nx = norm2(xi + (size_t)t * E, E);
                y[t] = nx > 0 ? (float)(sqrt(dd) / nx) : 0.0f;
            }
        }
        if (s->Z[l])
            for (int t = 0; t < T; t++)
                features(xi + (size_t)t * E, E, s->m->norm_eps, s->Z[l] + (size_t)(s->n + t) * E);
    }
    free(drop);
    if (!rc) s->n += T;
    return rc;
}

/* Ridge fit of log(y + floor) on [z, 1] over n tokens: w[E], *b, and the R²
 * of the fit. */
static int ridge_fit(const float *Z, const float *y, int64_t n, int E, float ridge, float *w, float *b, float *r2) {
    const int D = E + 1;
    double *A = malloc(sizeof(double) * (size_t)n * D), *G = calloc((size_t)D * D, sizeof(double));
    double *r = malloc(sizeof(double) * D), *ly = malloc(sizeof(double) * (size_t)n);
    if (!A || !G || !r || !ly) {
        free(A), free(G), free(r), free(ly);
        return sf_fail(SF_ERR_NOMEM, "route: out of memory for the router fit");
    }
    double mean = 0;
    for (int64_t t = 0; t < n; t++) {
        for (int e = 0; e < E; e++) A[t * D + e] = Z[t * E + e];
        A[t * D + E] = 1.0;
        ly[t] = log((double)y[t] + LOG_FLOOR);
        mean += ly[t];
    }
    mean /= (double)n;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, D, (int)n, 1.0, A, D, 0.0, G, D);
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, D, 1.0, A, D, ly, 1, 0.0, r, 1);
    double tr = 0;
    for (int e = 0; e < E; e++) tr += G[(size_t)e * D + e];
    const double lambda = ridge * tr / E;
    for (int e = 0; e < E; e++) G[(size_t)e * D + e] += lambda; /* the bias is not shrunk */
    int rc = SF_OK;
    if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', D, 1, G, D, r, 1) != 0)
        rc = sf_fail(SF_ERR_ARG, "route: the ridge system is not positive definite");
    if (!rc) {
        double ss_res = 0, ss_tot = 0;
        for (int64_t t = 0; t < n; t++) {
            double pr = r[E];
            for (int e = 0; e < E; e++) pr += r[e] * A[t * D + e];
            ss_res += (ly[t] - pr) * (ly[t] - pr);
            ss_tot += (ly[t] - mean) * (ly[t] - mean);
        }
        for (int e = 0; e < E; e++) w[e] = (float)r[e];
        *b = (float)r[E];
        *r2 = ss_tot > 0 ? (float)(1.0 - ss_res / ss_tot) : NAN;
    }
    free(A), free(G), free(r), free(ly);
    return rc;
}

static int by_desc(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y ? 1 : 0;
}

/* Threshold giving capacity on the calibration scores, and the share of the
 * target the picked tokens carry (and the best possible share). */
static int calibrate(const sf_route_layer *R, const float *Z, const float *y, int64_t n, int E, float *thr,
                     float *captured, float *oracle) {
    float *s = malloc(sizeof(float) * (size_t)n), *sorted = malloc(sizeof(float) * (size_t)n);
    if (!s || !sorted) {
        free(s), free(sorted);
        return sf_fail(SF_ERR_NOMEM, "route: out of memory");
    }
    for (int64_t t = 0; t < n; t++) {
        double d = R->bias;
        for (int e = 0; e < E; e++) d += (double)R->w[e] * Z[t * E + e];
        s[t] = sorted[t] = (float)d;
    }
    qsort(sorted, (size_t)n, sizeof(float), by_desc);
    int64_t k = (int64_t)ceil((double)R->capacity * (double)n);
    if (k < 1) k = 1;
    if (k > n) k = n;
    *thr = sorted[k - 1];
    double tot = 0, got = 0;
    for (int64_t t = 0; t < n; t++) {
        tot += y[t];
        if (s[t] >= *thr) got += y[t];
        sorted[t] = y[t];
    }
    qsort(sorted, (size_t)n, sizeof(float), by_desc);
    double best = 0;
    for (int64_t t = 0; t < k; t++) best += sorted[t];
    *captured = tot > 0 ? (float)(got / tot) : NAN;
    *oracle = tot > 0 ? (float)(best / tot) : NAN;
    free(s), free(sorted);
    return SF_OK;
}

static int check_params(const sf_model *m, const sf_route_params *p) {
    const int L = m->n_layer;
    if (p->n_ctx < 2) return sf_fail(SF_ERR_ARG, "route: chunk size %d is too small", p->n_ctx);
    if (p->target < 0 || p->target >= SF_ROUTE_TARGETS) return sf_fail(SF_ERR_ARG, "route: unknown target");
    if (!(p->ridge > 0)) return sf_fail(SF_ERR_ARG, "route: ridge %g must be > 0", p->ridge);
    if (p->n_static < 0 || p->n_static > L - 2)
        return sf_fail(SF_ERR_ARG, "route: --static %d: the model has %d blocks, and the first and last stay",
                       p->n_static, L);
    if (p->n_auto < 0 || p->n_auto > L - 2)
        return sf_fail(SF_ERR_ARG, "route: auto:%d: the model has %d blocks, and the first and last are not routed",
                       p->n_auto, L);
    if (p->n_static > 0 && p->n_auto > 0) return sf_fail(SF_ERR_ARG, "route: --static or automatic routed blocks, not both");
    if (p->n_static > 0) return SF_OK;
    if ((!p->routed && p->n_auto == 0) || !p->capacity) return sf_fail(SF_ERR_ARG, "route: no blocks to route");
    int n = 0;
    for (int l = 0; l < L; l++) {
        if (p->n_auto > 0 ? l == 0 || l == L - 1 : !p->routed[l]) continue;
        n++;
        if (!(p->capacity[l] > 0 && p->capacity[l] <= 1))
            return sf_fail(SF_ERR_ARG, "route: capacity %g of block %d is outside (0, 1]", p->capacity[l], l);
        if (m->layers[l].group_first != m->layers[l].group_last)
            return sf_fail(SF_ERR_UNSUPPORTED, "route: block %d is in a parallel group; routed blocks cannot be", l);
    }
    if (n == 0) return sf_fail(SF_ERR_ARG, "route: no blocks to route");
    return SF_OK;
}

/* pick[n_layer]: the n blocks of lowest importance, never the first or last. */
static void pick_least(const float *importance, int L, int n, bool *pick) {
    for (int k = 0; k < n; k++) {
        int best = -1;
        for (int l = 1; l < L - 1; l++)
            if (!pick[l] && (best < 0 || importance[l] < importance[best])) best = l;
        pick[best] = true;
    }
}

/* Closed-loop thresholds: the routed model (side-car at path) runs each
 * calibration chunk with expert-choice top-k at every routed block, so each
 * block sees the inputs earlier routing leaves it and runs exactly its
 * capacity; a block's causal threshold is the mean over chunks of its k-th
 * best score. (Thresholds from the dense model's scores let too many tokens
 * through once earlier blocks are skipped.) */
static int closed_loop(sf_model *m, const sf_route_params *p, const char *path, const int32_t *tokens,
                       int64_t n_chunks, bool bos, fit_state *s, sf_route_layer *layers) {
    const int L = m->n_layer, T = p->n_ctx, per_chunk = bos ? T - 1 : T;
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = cp.n_batch = T;
    cp.n_threads = p->n_threads;
    sf_context *c = sf_context_new(m, &cp);
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)T);
    int rc = c && buf ? sf_context_use_routes(c, path) : SF_ERR_NOMEM;
    if (!rc) {
        c->routes->kth_sum = calloc((size_t)L, sizeof(double));
        c->routes->kth_n = calloc((size_t)L, sizeof(int64_t));
        if (!c->routes->kth_sum || !c->routes->kth_n) rc = sf_fail(SF_ERR_NOMEM, "route: out of memory");
        c->route_policy.rule = SF_ROUTE_TOPK;
    }
    for (int64_t ch = 0; !rc && ch < n_chunks; ch++) {
        int n = 0;
        if (bos) buf[n++] = sf_token_bos(m);
        memcpy(buf + n, tokens + ch * per_chunk, sizeof(int32_t) * (size_t)per_chunk);
        rc = sf_kv_truncate(c, 0);
        if (!rc) rc = sf_forward(c, buf, T, T, NULL);
        if (p->progress) p->progress("calibrate", ++s->pass, s->n_pass, p->user);
    }
    for (int l = 0; !rc && l < L; l++)
        if (layers[l].routed && c->routes->kth_n[l] > 0)
            layers[l].threshold = (float)(c->routes->kth_sum[l] / (double)c->routes->kth_n[l]);
    sf_context_free(c);
    free(buf);
    return rc;
}

int sf_route_fit(sf_model *m, const int32_t *tokens, int64_t n_avail, const sf_route_params *p,
                 const char *out_path, sf_route_result *res) {
    if (!m || !tokens || !p || !out_path) return sf_fail(SF_ERR_ARG, "route: null argument");
    int rc = check_params(m, p);
    if (rc) return rc;
    const int L = m->n_layer, E = m->n_embd;
    const bool bos = sf_model_add_bos(m) && sf_token_bos(m) >= 0;
    const int per_chunk = bos ? p->n_ctx - 1 : p->n_ctx;
    const int64_t n_chunks = (p->n_tokens < n_avail ? p->n_tokens : n_avail) / per_chunk;
    if (n_chunks < 1)
        return sf_fail(SF_ERR_ARG, "route: the calibration text has %lld tokens, one chunk needs %d",
                       (long long)n_avail, per_chunk);
    const int T = p->n_ctx;
    fit_state s = {.m = m, .p = p, .L = L, .E = E, .N = n_chunks * T};
    chunk_acc a = {.L = L, .E = E, .T = T, .V = m->n_vocab};
    sf_route_layer *layers = calloc((size_t)L, sizeof *layers);
    float *W = calloc((size_t)L * E, sizeof(float));
    s.need = calloc((size_t)L, sizeof(bool));
    s.Z = calloc((size_t)L, sizeof(float *));
    s.Y = calloc((size_t)L, sizeof(float *));
    a.x_in = malloc(sizeof(float) * (size_t)L * T * E);
    a.x_out = malloc(sizeof(float) * (size_t)L * T * E);
    const bool kl = p->target == SF_ROUTE_TARGET_KL;
    if (kl) {
        a.lp = malloc(sizeof(float) * (size_t)T * a.V);
        a.neg_ent = malloc(sizeof(double) * (size_t)T);
    }
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)T);
    bool ok = layers && W && s.need && s.Z && s.Y && a.x_in && a.x_out && buf && (!kl || (a.lp && a.neg_ent));
    int n_need = 0;
    for (int l = 0; ok && l < L; l++) {
        const bool candidate = p->n_auto > 0 ? l > 0 && l < L - 1 : p->n_static == 0 && p->routed[l];
        s.need[l] = p->n_static > 0 || candidate;
        n_need += s.need[l];
        if (s.need[l]) ok = (s.Y[l] = malloc(sizeof(float) * (size_t)s.N)) != NULL;
        if (ok && candidate) ok = (s.Z[l] = malloc(sizeof(float) * (size_t)s.N * E)) != NULL;
    }
    if (!ok) rc = sf_fail(SF_ERR_NOMEM, "route: out of memory for %lld calibration tokens", (long long)s.N);
    s.n_pass = n_chunks * (1 + (kl ? n_need : 0) + (p->n_static > 0 ? 0 : 1));

    sf_context *c = NULL;
    if (!rc) {
        sf_context_params cp = sf_context_default_params();
        cp.n_ctx = cp.n_batch = T;
        cp.n_threads = p->n_threads;
        c = sf_context_new(m, &cp);
        if (!c) rc = SF_ERR_NOMEM;
    }
    for (int64_t ch = 0; !rc && ch < n_chunks; ch++) {
        int n = 0;
        if (bos) buf[n++] = sf_token_bos(m);
        memcpy(buf + n, tokens + ch * per_chunk, sizeof(int32_t) * (size_t)per_chunk);
        rc = run_chunk(c, &s, &a, buf);
    }
    sf_context_free(c);

    sf_route_result r = {.n_layer = L, .n_tokens = s.n};
    if (!rc) {
        r.importance = calloc((size_t)L * 5, sizeof(float));
        r.dropped = calloc(2 * (size_t)L, sizeof(bool));
        if (!r.importance || !r.dropped) rc = sf_fail(SF_ERR_NOMEM, "route: out of memory");
        else r.routed = r.dropped + L;
    }
    if (!rc) {
        r.r2 = r.importance + L;
        r.captured = r.importance + 2 * L;
        r.oracle = r.importance + 3 * L;
        r.threshold = r.importance + 4 * L;
        for (int l = 0; l < L; l++) {
            double sum = 0;
            for (int64_t t = 0; s.need[l] && t < s.n; t++) sum += s.Y[l][t];
            r.importance[l] = s.need[l] ? (float)(sum / (double)s.n) : NAN;
            r.r2[l] = r.captured[l] = r.oracle[l] = r.threshold[l] = NAN;
        }
    }
    if (!rc && p->n_static > 0) {
        pick_least(r.importance, L, p->n_static, r.dropped);
        for (int l = 0; l < L; l++) layers[l].dropped = r.dropped[l];
    }
    if (!rc && p->n_auto > 0) pick_least(r.importance, L, p->n_auto, r.routed);
    else if (!rc && p->n_static == 0) memcpy(r.routed, p->routed, sizeof(bool) * (size_t)L);
    for (int l = 0; !rc && p->n_static == 0 && l < L; l++) {
        if (!r.routed[l]) continue;
        sf_route_layer *R = &layers[l];
        R->routed = true;
        R->capacity = p->capacity[l];
        R->w = W + (size_t)l * E;
        rc = ridge_fit(s.Z[l], s.Y[l], s.n, E, p->ridge, W + (size_t)l * E, &R->bias, &r.r2[l]);
        if (!rc) rc = calibrate(R, s.Z[l], s.Y[l], s.n, E, &R->threshold, &r.captured[l], &r.oracle[l]);
    }
    const char *target = p->n_static > 0 ? "static" : sf_route_target_name(p->target);
    if (!rc) rc = sf_routes_write(out_path, m, layers, target);
    if (!rc && p->n_static == 0) {
        rc = closed_loop(m, p, out_path, tokens, n_chunks, bos, &s, layers);
        if (!rc) rc = sf_routes_write(out_path, m, layers, target);
        for (int l = 0; !rc && l < L; l++)
            if (layers[l].routed) r.threshold[l] = layers[l].threshold;
        if (rc) unlink(out_path);
    }
    if (!rc && res) *res = r;
    else sf_route_result_free(&r);
    for (int l = 0; s.Z && s.Y && l < L; l++) {
        free(s.Z[l]);
        free(s.Y[l]);
    }
    free(s.Z), free(s.Y), free(s.need), free(a.x_in), free(a.x_out), free(a.lp), free(a.neg_ent), free(buf);
    free(layers), free(W);
    return rc;
}
