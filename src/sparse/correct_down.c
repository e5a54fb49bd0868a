/* sparsify --correct-down: a least-squares correction of the down
 * projection for the neurons a sparse token drops, fitted on the dense
 * model's activations over the calibration text (as heal does for fused
 * FFNs).
 *
 * For a token, h is the dense hidden activation, m its mask under the
 * calibrated rule and z = h ⊙ m what the sparse FFN multiplies. Per layer:
 *  - mean: W_d unchanged, plus a bias b = W_d · E[h ⊙ ¬m], the dropped
 *    neurons' mean contribution (the least-squares constant);
 *  - ls: W' and b minimizing Σ_t ‖W_d h_t − (W' z_t + b)‖² + λ‖W' − W_d‖²,
 *    so kept neurons that correlate with dropped ones stand in for them:
 *    with centred sums G = Σ z̃ z̃ᵀ and C = Σ h̃ z̃ᵀ,
 *      W'ᵀ = (G + λI)⁻¹ (Cᵀ + λI) W_dᵀ,   b = W_d h̄ − W' z̄,
 *    W'ᵀ is exactly the transposed down the side-car stores (re-quantized
 *    to its type); λ = 0.1 · trace(G) / n_ff pulls rarely active neurons
 *    towards W_d.
 * The ls sums take 2 · n_ff² doubles per layer, so layers are fitted in
 * groups that fit in 4 GiB, one dense pass per group. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/ops.h"
#include "sparse/sparsify_impl.h"
#include "tensor/types.h"

#define GROUP_BYTES (4.0 * 1024 * 1024 * 1024)

typedef struct {
    double *G, *C;   /* ls: [n_ff²] Σ z zᵀ (upper), Σ h zᵀ */
    double *zs, *hs; /* [n_ff] Σ z (mean: Σ h ⊙ ¬m), Σ h */
    int64_t n;       /* tokens */
} layer_sums;

typedef struct {
    const sparsify_state *st;
    const float *thr, *lvl; /* [SF_SITES][n_layer] */
    sf_sparse_correction mode;
    int l0, l1;       /* the layers of this pass */
    layer_sums *sums; /* [l1 - l0] */
    double *zb, *hb;  /* [n_ctx][n_ff_max] one batch as doubles */
} corr;

static bool hidden_on(const corr *k, int l) { return k->lvl[SF_SITE_FFN_HIDDEN * k->st->m->n_layer + l] > 0; }

/* run-plan hook: the masked activations of this batch */
static void on_ffn(void *user, int layer, const int *row_token, int T, const float *xn, const float *g, const float *h,
                   int n_ff) {
    (void)row_token;
    (void)xn;
    corr *k = user;
    if (layer < k->l0 || layer >= k->l1 || !hidden_on(k, layer)) return;
    const sparsify_state *st = k->st;
    layer_sums *s = &k->sums[layer - k->l0];
    const float t = k->thr[SF_SITE_FFN_HIDDEN * st->m->n_layer + layer];
    const float *scale = st->lo[layer].hidden_scale;
    const bool cats = st->p->method == SF_SPARSE_CATS;
    for (int64_t r = 0; r < T; r++)
        for (int i = 0; i < n_ff; i++) {
            const size_t at = (size_t)r * n_ff + i;
            const float score =
                cats ? fabsf(sf_gate_act(g[at], st->m->ffn_act)) : fabsf(h[at]) * (scale ? scale[i] : 1.0f);
            const bool kept = score > t;
            k->hb[at] = h[at];
            k->zb[at] = kept ? h[at] : 0.0;
            s->hs[i] += h[at];
            s->zs[i] += k->mode == SF_CORRECT_MEAN ? (kept ? 0.0 : h[at]) : k->zb[at];
        }
    s->n += T;
    if (k->mode != SF_CORRECT_LS) return;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n_ff, T, 1.0, k->zb, n_ff, 1.0, s->G, n_ff);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_ff, n_ff, T, 1.0, k->hb, n_ff, k->zb, n_ff, 1.0, s->C, n_ff);
}

/* W_d of layer l as doubles, [n_embd][n_ff] */
static double *down_of(const sf_layer *L, int64_t E) {
    const int64_t F = L->n_ff;
    float *w = malloc(sizeof(float) * (size_t)(E * F));
    double *d = malloc(sizeof(double) * (size_t)(E * F));
    if (!w || !d) {
        free(w);
        free(d);
        return NULL;
    }
    sf_type_ref(L->ffn_down->type)->dequantize(L->ffn_down->data, w, E * F);
    for (int64_t i = 0; i < E * F; i++) d[i] = w[i];
    free(w);
    return d;
}

/* The least-squares W'ᵀ into down_t (re-quantized), and the bias. */
static int solve_ls(const sf_layer *L, int64_t E, layer_sums *s, const double *wd, owned_tensor *down_t, float *bias,
                    int layer) {
    const int64_t F = L->n_ff;
    const double n = (double)s->n;
    double *G = s->G, *C = s->C;
    double tr = 0;
    for (int64_t i = 0; i < F; i++)
        for (int64_t j = i; j < F; j++) {
            G[i * F + j] -= s->zs[i] * s->zs[j] / n; /* centre */
            G[j * F + i] = G[i * F + j];
        }
    for (int64_t i = 0; i < F; i++) {
        tr += G[i * F + i];
        for (int64_t j = 0; j < F; j++) C[i * F + j] -= s->hs[i] * s->zs[j] / n;
    }
    const double lambda = tr > 0 ? 1e-1 * tr / (double)F : 1e-6;
    for (int64_t i = 0; i < F; i++) {
        G[i * F + i] += lambda;
        C[i * F + i] += lambda;
    }
    /* X = (Cᵀ + λI) W_dᵀ: [F][E] */
    double *X = malloc(sizeof(double) * (size_t)(F * E));
    float *row = malloc(sizeof(float) * (size_t)E);
    if (!X || !row) {
        free(X);
        free(row);
        return sf_fail(SF_ERR_NOMEM, "out of memory fitting the down correction");
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, F, E, F, 1.0, C, F, wd, F, 0.0, X, E);
    int rc = SF_OK;
    if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', (lapack_int)F, (lapack_int)E, G, (lapack_int)F, X, (lapack_int)E) != 0)
        rc = sf_fail(SF_ERR_RANGE, "layer %d: the masked activations' covariance is not positive definite", layer);
    const sf_type_traits *tr_t = sf_type_ref(down_t->type);
    const size_t rb = sf_type_row_bytes(down_t->type, E);
    for (int64_t e = 0; !rc && e < E; e++) { /* b = W_d h̄ − W' z̄ */
        double b = 0;
        for (int64_t i = 0; i < F; i++) b += (wd[e * F + i] * s->hs[i] - X[i * E + e] * s->zs[i]) / n;
        bias[e] = (float)b;
    }
    for (int64_t i = 0; !rc && i < F; i++) {
        for (int64_t e = 0; e < E; e++) row[e] = (float)X[i * E + e];
        tr_t->quantize(row, (uint8_t *)down_t->data + (size_t)i * rb, E);
    }
    free(X);
    free(row);
    return rc;
}

static void free_sums(layer_sums *s, int n) {
    for (int i = 0; s && i < n; i++) {
        free(s[i].G);
        free(s[i].C);
        free(s[i].zs);
        free(s[i].hs);
    }
    free(s);
}

int sparsify_correct_down(const sparsify_state *st, const int32_t *tokens, int64_t n_avail, const float *thr,
                          const float *lvl, layer_out *lo) {
    sf_model *m = st->m;
    const sf_sparsify_params *p = st->p;
    const int64_t E = m->n_embd, F = m->n_ff_max;
    const bool ls = p->correct_down == SF_CORRECT_LS;
    const double per_layer = ls ? 2.0 * (double)F * (double)F * sizeof(double) : 1.0;
    const double fit = GROUP_BYTES / per_layer;
    const int group = fit < 1 ? 1 : fit > m->n_layer ? m->n_layer : (int)fit;
    const int n_pass = (m->n_layer + group - 1) / group;
    corr k = {.st = st, .thr = thr, .lvl = lvl, .mode = p->correct_down};
    k.zb = malloc(sizeof(double) * (size_t)p->n_ctx * (size_t)F);
    k.hb = malloc(sizeof(double) * (size_t)p->n_ctx * (size_t)F);
    int rc = k.zb && k.hb ? SF_OK : sf_fail(SF_ERR_NOMEM, "out of memory");
    for (int pass = 0; !rc && pass < n_pass; pass++) {
        k.l0 = pass * group;
        k.l1 = k.l0 + group < m->n_layer ? k.l0 + group : m->n_layer;
        k.sums = calloc((size_t)(k.l1 - k.l0), sizeof *k.sums);
        if (!k.sums) rc = sf_fail(SF_ERR_NOMEM, "out of memory");
        for (int l = k.l0; !rc && l < k.l1; l++) {
            layer_sums *s = &k.sums[l - k.l0];
            const size_t f = (size_t)m->layers[l].n_ff;
            s->zs = calloc(f, sizeof(double));
            s->hs = calloc(f, sizeof(double));
            if (ls && hidden_on(&k, l)) {
                s->G = calloc(f * f, sizeof(double));
                s->C = calloc(f * f, sizeof(double));
            }
            if (!s->zs || !s->hs || (ls && hidden_on(&k, l) && (!s->G || !s->C)))
                rc = sf_fail(SF_ERR_NOMEM, "out of memory for the down correction's sums (%d layers at a time)", group);
        }
        const sf_run_plan plan = {.on_ffn = on_ffn, .user = &k};
        if (!rc) rc = sparsify_dense_pass(m, p, tokens, n_avail, &plan, "correct", pass, n_pass);
        for (int l = k.l0; !rc && l < k.l1; l++) {
            layer_sums *s = &k.sums[l - k.l0];
            if (!hidden_on(&k, l) || s->n == 0) continue;
            const sf_layer *L = &m->layers[l];
            double *wd = down_of(L, E);
            lo[l].down_b = calloc((size_t)E, sizeof(float));
            if (!wd || !lo[l].down_b) rc = sf_fail(SF_ERR_NOMEM, "out of memory");
            if (!rc && ls) rc = solve_ls(L, E, s, wd, &lo[l].down_t, lo[l].down_b, l);
            for (int64_t e = 0; !rc && !ls && e < E; e++) { /* b = W_d E[h ⊙ ¬m] */
                double b = 0;
                for (int64_t i = 0; i < L->n_ff; i++) b += wd[e * L->n_ff + i] * s->zs[i];
                lo[l].down_b[e] = (float)(b / (double)s->n);
            }
            free(wd);
        }
        free_sums(k.sums, k.l1 - k.l0);
        k.sums = NULL;
    }
    free(k.zb);
    free(k.hb);
    return rc;
}
