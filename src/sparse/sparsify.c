/* sparsify: the side-car for a model. Three steps:
 *  1. transposed matrices: for every layer, gate and up (TEAL, WINA) and
 *     down (all methods) dequantized, transposed and re-quantized with
 *     blocks along their output dimension (the error is measured), and
 *     WINA's column norms;
 *  2. calibration: the dense model runs over the calibration chunks; a
 *     reservoir of the channel scores of each (layer, site) is kept
 *     (|x_j| for TEAL, |x_j|·‖W[:,j]‖ for WINA, |act(g_i)| for CATS);
 *     the predictor takes three passes: the input covariance (then the fit,
 *     predictor.h), the scores |act(ĝ_i)| of the quantized predictor, and
 *     its recall against CATS's choice at the same level;
 *  3. thresholds: per (layer, site) the s-quantile of its scores, so a
 *     fraction s of the channels falls at or below it; then the GGUF. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/context.h"
#include "model/ops.h"
#include "sparse/sparse.h"
#include "sparse/sparsify_impl.h"
#include "tensor/types.h"


sf_sparsify_params sf_sparsify_default_params(void) {
    sf_sparsify_params p = {.method = SF_SPARSE_TEAL, .sparsity = 0.5f, .n_ctx = 512, .n_tokens = 8192,
                            .n_threads = 0, .wt_type = -1, .rank = 64, .auto_chunks = 2};
    return p;
}

/* ------------------------------------------------------------ transposing */

/* The type a transposed matrix is stored in when the user did not say: the
 * source type where its block divides the new row length, else a 32-block
 * type of about the same bits (docs/sparsity.md). */
static sf_type transposed_type(sf_type src, int64_t n) {
    const sf_type_traits *tr = sf_type_ref(src);
    if (tr && tr->quantize && tr->axpy_rows && n % tr->block_size == 0) return src;
    switch (src) {
    case SF_TYPE_Q2_K:
    case SF_TYPE_Q3_K: return SF_TYPE_Q4_0;
    case SF_TYPE_Q4_K: return SF_TYPE_Q4_1;
    case SF_TYPE_Q5_K: return SF_TYPE_Q5_1;
    default: return SF_TYPE_Q8_0;
    }
}

static bool type_ok(int type, int64_t n) {
    const sf_type_traits *tr = sf_type_ref(type);
    return tr && tr->quantize && tr->dequantize && tr->axpy_rows &&
           tr->vec_dot && n % tr->block_size == 0;
}

typedef struct {
    double err, ref; /* Σ (Wt' - W)², Σ W² over every transposed matrix */
} requant_err;

/* w {n_in, n_out} (n_out rows of n_in) -> t: n_in rows of n_out values in
 * `type`; norms_sq[j] += Σ_r w[r][j]² when given. */
static int transpose(const sf_gguf_tensor *w, sf_type type, owned_tensor *t, double *norms_sq, requant_err *e) {
    const int64_t n_in = w->ne[0], n_out = w->ne[1];
    const sf_type_traits *src = sf_type_ref(w->type), *dst = sf_type_ref(type);
    float *a = malloc(sizeof(float) * (size_t)(n_in * n_out));
    float *b = malloc(sizeof(float) * (size_t)(n_in * n_out));
    const size_t rb = sf_type_row_bytes(type, n_out);
    t->data = malloc(rb * (size_t)n_in);
    if (!a || !b || !t->data) {
        free(a);
        free(b);
        return sf_fail(SF_ERR_NOMEM, "out of memory transposing %s", w->name);
    }
    t->nbytes = rb * (size_t)n_in;
    t->type = type;
    t->ne0 = n_out;
    t->ne1 = n_in;
    src->dequantize(w->data, a, n_in * n_out); /* a[r][j] */
    for (int64_t r = 0; r < n_out; r++)
        for (int64_t j = 0; j < n_in; j++) b[j * n_out + r] = a[r * n_in + j];
    for (int64_t j = 0; j < n_in; j++) {
        dst->quantize(b + j * n_out, (uint8_t *)t->data + (size_t)j * rb, n_out);
        if (norms_sq) {
            double s = 0;
            for (int64_t r = 0; r < n_out; r++) s += (double)b[j * n_out + r] * b[j * n_out + r];
            norms_sq[j] += s;
        }
    }
    /* the error of the re-quantization, against the source weights */
    dst->dequantize(t->data, a, n_in * n_out);
    for (int64_t i = 0; i < n_in * n_out; i++) {
        const double d = (double)a[i] - b[i];
        e->err += d * d;
        e->ref += (double)b[i] * b[i];
    }
    free(a);
    free(b);
    return SF_OK;
}

static float *sqrt_norms(const double *sq, int64_t n) {
    float *out = malloc(sizeof(float) * (size_t)n);
    if (out)
        for (int64_t i = 0; i < n; i++) out[i] = (float)sqrt(sq[i]);
    return out;
}

static int build_layer(const sf_layer *L, const sf_sparsify_params *p, int64_t n_embd, layer_out *o,
                       requant_err *e) {
    const bool in = p->method == SF_SPARSE_TEAL || p->method == SF_SPARSE_WINA, wina = p->method == SF_SPARSE_WINA;
    const int64_t F = L->n_ff;
    double *sq_in = wina ? calloc((size_t)n_embd, sizeof(double)) : NULL;
    double *sq_h = wina ? calloc((size_t)F, sizeof(double)) : NULL;
    if (wina && (!sq_in || !sq_h)) {
        free(sq_in);
        free(sq_h);
        return sf_fail(SF_ERR_NOMEM, "out of memory");
    }
    int rc = SF_OK;
    if (in) {
        /* gate and up share one column slice per thread, so one type */
        const sf_type t = p->wt_type >= 0 ? (sf_type)p->wt_type : transposed_type(L->ffn_gate->type, F);
        rc = transpose(L->ffn_gate, t, &o->gate_t, sq_in, e);
        if (!rc) rc = transpose(L->ffn_up, t, &o->up_t, sq_in, e);
    }
    if (!rc) {
        const sf_type t = p->wt_type >= 0 ? (sf_type)p->wt_type : transposed_type(L->ffn_down->type, n_embd);
        rc = transpose(L->ffn_down, t, &o->down_t, sq_h, e);
    }
    if (!rc && p->attention) {
        const sf_gguf_tensor *w[4] = {L->wq, L->wk, L->wv, L->wo};
        owned_tensor *t[4] = {&o->q_t, &o->k_t, &o->v_t, &o->o_t};
        for (int i = 0; !rc && i < 4; i++)
            rc = transpose(w[i], p->wt_type >= 0 ? (sf_type)p->wt_type : transposed_type(w[i]->type, w[i]->ne[1]), t[i],
                           NULL, e);
    }
    if (!rc && wina) {
        o->in_scale = sqrt_norms(sq_in, n_embd);
        o->hidden_scale = sqrt_norms(sq_h, F);
        if (!o->in_scale || !o->hidden_scale) rc = sf_fail(SF_ERR_NOMEM, "out of memory");
    }
    free(sq_in);
    free(sq_h);
    return rc;
}

/* ------------------------------------------------------------ calibration */

typedef struct {
    int64_t truth, hit;   /* CATS's active neurons, and those of them predicted */
    double mass, hit_mass; /* Σ|h_i| over all neurons, and over the predicted ones */
} recall_count;

typedef struct {
    const sf_model *m;
    sf_sparse_method method;
    const layer_out *lo;
    sf_reservoir *res; /* [n_layer][SF_SITES] */
    uint64_t rng;
    float *scratch; /* [n_ff_max] */
    /* predictor */
    int pass;                 /* 0: covariance, 1: scores, 2: recall */
    double **cov;             /* [n_layer][n_embd²] Σ x̃ x̃ᵀ, upper triangle */
    double *xd;               /* [n_ctx][n_embd] a batch's x̃ in double */
    sf_reservoir *truth;         /* [n_layer] CATS's scores |act(g_i)| */
    bool verify;              /* the exact gate of the predicted neurons applies CATS's threshold */
    float *t_truth;           /* [n_layer] CATS's at the same level */
    recall_count *rc;         /* [n_layer] */
    void *p_scratch, *p_zq;   /* sf_predictor_project's */
    float *y;                 /* [n_ff_max] ĝ */
} calib;

static sf_predictor predictor_of(const layer_out *lo, const sf_model *m, int layer, int rank) {
    return (sf_predictor){lo->pred_a.data, lo->pred_b.data, rank, m->n_embd, m->layers[layer].n_ff};
}

/* the predictor's passes over one batch */
static void on_ffn_predictor(calib *k, int layer, int T, const float *xn, const float *g, const float *h, int n_ff) {
    const int E = k->m->n_embd;
    const sf_ffn_act act = k->m->ffn_act;
    float *s = k->scratch;
    if (k->pass == 0) {
        for (int64_t i = 0; i < (int64_t)T * E; i++) k->xd[i] = xn[i];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, E, T, 1.0, k->xd, E, 1.0, k->cov[layer], E);
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < n_ff; i++) s[i] = fabsf(sf_gate_act(g[(size_t)t * n_ff + i], act));
            sf_reservoir_keep(&k->truth[layer], &k->rng, s, n_ff);
        }
        return;
    }
    const sf_predictor P = predictor_of(&k->lo[layer], k->m, layer, k->lo[layer].pred_a.ne1);
    for (int t = 0; t < T; t++) {
        sf_predictor_project(&P, xn + (size_t)t * E, k->p_scratch, k->p_zq);
        sf_predictor_scores(&P, k->p_zq, 0, n_ff, k->y);
        for (int i = 0; i < n_ff; i++) s[i] = fabsf(sf_gate_act(k->y[i], act));
        if (k->pass == 1) {
            sf_reservoir_keep(&k->res[(size_t)layer * SF_SITES + SF_SITE_FFN_HIDDEN], &k->rng, s, n_ff);
            continue;
        }
        recall_count *r = &k->rc[layer];
        const float *gg = g + (size_t)t * n_ff, *hh = h + (size_t)t * n_ff;
        for (int i = 0; i < n_ff; i++) {
            const bool truth = fabsf(sf_gate_act(gg[i], act)) > k->t_truth[layer];
            const bool kept = s[i] > k->lo[layer].t_pred && (!k->verify || truth);
            r->truth += truth;
            r->hit += truth && kept;
            r->mass += fabsf(hh[i]);
            if (kept) r->hit_mass += fabsf(hh[i]);
        }
    }
}

/* run-plan hook: the scores of this batch's FFN channels */
static void on_ffn(void *user, int layer, const int *row_token, int T, const float *xn, const float *g,
                   const float *h, int n_ff) {
    (void)row_token;
    calib *k = user;
    if (k->method == SF_SPARSE_PREDICTOR) {
        on_ffn_predictor(k, layer, T, xn, g, h, n_ff);
        return;
    }
    const int E = k->m->n_embd;
    const layer_out *lo = &k->lo[layer];
    sf_reservoir *r = &k->res[(size_t)layer * SF_SITES];
    float *s = k->scratch;
    for (int t = 0; t < T; t++) {
        if (k->method != SF_SPARSE_CATS) {
            const float *x = xn + (size_t)t * E;
            for (int j = 0; j < E; j++) s[j] = fabsf(x[j]) * (lo->in_scale ? lo->in_scale[j] : 1.0f);
            sf_reservoir_keep(&r[SF_SITE_FFN_IN], &k->rng, s, E);
        }
        const float *hh = h + (size_t)t * n_ff, *gg = g + (size_t)t * n_ff;
        for (int i = 0; i < n_ff; i++)
            s[i] = k->method == SF_SPARSE_CATS ? fabsf(sf_gate_act(gg[i], k->m->ffn_act))
                                               : fabsf(hh[i]) * (lo->hidden_scale ? lo->hidden_scale[i] : 1.0f);
        sf_reservoir_keep(&r[SF_SITE_FFN_HIDDEN], &k->rng, s, n_ff);
    }
}

/* run-plan hook: the attention's input and output channels (TEAL --attention) */
static void on_attn(void *user, int layer, const int *row_token, int T, const float *xn, const float *att, int n_att) {
    (void)row_token;
    calib *k = user;
    const int E = k->m->n_embd;
    sf_reservoir *r = &k->res[(size_t)layer * SF_SITES];
    float *s = k->scratch;
    for (int t = 0; t < T; t++) {
        for (int j = 0; j < E; j++) s[j] = fabsf(xn[(size_t)t * E + j]);
        sf_reservoir_keep(&r[SF_SITE_ATTN_IN], &k->rng, s, E);
        for (int j = 0; j < n_att; j++) s[j] = fabsf(att[(size_t)t * n_att + j]);
        sf_reservoir_keep(&r[SF_SITE_ATTN_OUT], &k->rng, s, n_att);
    }
}

void sparsify_chunk(const sf_model *m, const int32_t *tokens, int n_ctx, int64_t ch, int32_t *buf) {
    const bool bos = sf_model_add_bos(m) && sf_token_bos(m) >= 0;
    const int per_chunk = bos ? n_ctx - 1 : n_ctx;
    int n = 0;
    if (bos) buf[n++] = sf_token_bos(m);
    memcpy(buf + n, tokens + ch * per_chunk, sizeof(int32_t) * (size_t)per_chunk);
}

int64_t sparsify_n_chunks(const sf_model *m, const sf_sparsify_params *p, int64_t n_avail) {
    const int per_chunk = sf_model_add_bos(m) && sf_token_bos(m) >= 0 ? p->n_ctx - 1 : p->n_ctx;
    return (p->n_tokens < n_avail ? p->n_tokens : n_avail) / per_chunk;
}

int sparsify_dense_pass(sf_model *m, const sf_sparsify_params *p, const int32_t *tokens, int64_t n_avail,
                        const sf_run_plan *plan, const char *what, int pass, int n_pass) {
    const int64_t n_chunks = sparsify_n_chunks(m, p, n_avail);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = cp.n_batch = p->n_ctx;
    cp.n_threads = p->n_threads;
    sf_context *c = sf_context_new(m, &cp);
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)p->n_ctx);
    int rc = c && buf ? SF_OK : sf_fail(SF_ERR_NOMEM, "out of memory");
    for (int64_t ch = 0; !rc && ch < n_chunks; ch++) {
        sparsify_chunk(m, tokens, p->n_ctx, ch, buf);
        rc = sf_forward(c, buf, p->n_ctx, p->n_ctx, plan);
        if (p->progress) p->progress(what, pass * n_chunks + ch + 1, n_pass * n_chunks, p->user);
    }
    free(buf);
    sf_context_free(c);
    return rc;
}

/* Q8_0 copy of rows x cols floats */
static int own_q8_0(const float *v, int64_t rows, int64_t cols, owned_tensor *t) {
    const size_t rb = sf_type_row_bytes(SF_TYPE_Q8_0, cols);
    t->data = malloc(rb * (size_t)rows);
    if (!t->data) return sf_fail(SF_ERR_NOMEM, "out of memory");
    t->nbytes = rb * (size_t)rows;
    t->type = SF_TYPE_Q8_0;
    t->ne0 = cols;
    t->ne1 = rows;
    for (int64_t r = 0; r < rows; r++) sf_type_ref(SF_TYPE_Q8_0)->quantize(v + r * cols, (uint8_t *)t->data + r * rb, cols);
    return SF_OK;
}

/* The predictor of every layer from its pass-0 covariance. */
static int fit_predictors(const sf_model *m, calib *k, layer_out *lo, int64_t n_tok, int rank,
                          const sf_sparsify_params *p) {
    const int64_t E = m->n_embd;
    int rc = SF_OK;
    for (int l = 0; !rc && l < m->n_layer; l++) {
        const sf_layer *L = &m->layers[l];
        const int64_t F = L->n_ff;
        float *w = malloc(sizeof(float) * (size_t)(F * E));
        float *a = malloc(sizeof(float) * (size_t)(rank * E)), *b = malloc(sizeof(float) * (size_t)(F * rank));
        if (!w || !a || !b) rc = sf_fail(SF_ERR_NOMEM, "out of memory fitting the predictor");
        double explained = 0;
        if (!rc) {
            sf_type_ref(L->ffn_gate->type)->dequantize(L->ffn_gate->data, w, F * E);
            rc = sf_predictor_fit(k->cov[l], n_tok, w, E, F, rank, a, b, &explained);
        }
        if (!rc) rc = own_q8_0(a, rank, E, &lo[l].pred_a);
        if (!rc) rc = own_q8_0(b, F, rank, &lo[l].pred_b);
        lo[l].explained = (float)explained;
        free(w);
        free(a);
        free(b);
        if (p->progress) p->progress("fit", l + 1, m->n_layer, p->user);
    }
    return rc;
}

static void free_calib(calib *k, int n_layer) {
    const size_t n_res = (size_t)n_layer * SF_SITES;
    if (k->res)
        for (size_t i = 0; i < n_res; i++) sf_reservoir_free(&k->res[i]);
    if (k->truth)
        for (int l = 0; l < n_layer; l++) sf_reservoir_free(&k->truth[l]);
    if (k->cov)
        for (int l = 0; l < n_layer; l++) free(k->cov[l]);
    free(k->res);
    free(k->truth);
    free(k->cov);
    free(k->xd);
    free(k->t_truth);
    free(k->rc);
    free(k->p_scratch);
    free(k->p_zq);
    free(k->y);
    free(k->scratch);
}

/* the predictor's buffers (calib) */
static int alloc_predictor(calib *k, const sf_model *m, int n_ctx, int rank) {
    const int64_t E = m->n_embd;
    k->truth = calloc((size_t)m->n_layer, sizeof *k->truth);
    k->cov = calloc((size_t)m->n_layer, sizeof *k->cov);
    k->xd = malloc(sizeof(double) * (size_t)n_ctx * (size_t)E);
    k->t_truth = calloc((size_t)m->n_layer, sizeof(float));
    k->rc = calloc((size_t)m->n_layer, sizeof *k->rc);
    k->p_scratch = malloc(sf_predictor_scratch_bytes(E, rank));
    k->p_zq = malloc(sf_predictor_zq_bytes(rank));
    k->y = malloc(sizeof(float) * (size_t)m->n_ff_max);
    if (!k->truth || !k->cov || !k->xd || !k->t_truth || !k->rc || !k->p_scratch || !k->p_zq || !k->y)
        return sf_fail(SF_ERR_NOMEM, "out of memory");
    for (int l = 0; l < m->n_layer; l++) {
        k->truth[l].v = malloc(sizeof(float) * SF_RESERVOIR);
        k->cov[l] = calloc((size_t)(E * E), sizeof(double));
        if (!k->truth[l].v || !k->cov[l])
            return sf_fail(SF_ERR_NOMEM, "out of memory for the %lld x %lld input covariances", (long long)E,
                           (long long)E);
    }
    return SF_OK;
}

/* Whether a method calibrates this site (only those get a reservoir). */
bool sparsify_site_used(const sf_sparsify_params *p, sf_sparse_site s) {
    switch (s) {
    case SF_SITE_FFN_IN: return p->method == SF_SPARSE_TEAL || p->method == SF_SPARSE_WINA;
    case SF_SITE_FFN_HIDDEN: return true;
    default: return p->attention;
    }
}

void sparsify_rules(const sparsify_state *st, const float *layer_level, float *thr, float *lvl) {
    const int n = st->m->n_layer;
    for (int l = 0; l < n; l++)
        for (int s = 0; s < SF_SITES; s++) {
            float *t = &thr[s * n + l], *v = &lvl[s * n + l];
            if (sparsify_site_used(st->p, (sf_sparse_site)s))
                sf_reservoir_quantile(&st->res[(size_t)l * SF_SITES + s], layer_level[l], t, v);
            else *t = *v = 0.0f;
        }
}

/* The calibration passes; thr and lvl get the rules at the uniform level
 * p->sparsity, *res_out the sorted samples (the caller frees them). */
static int calibrate(sf_model *m, const int32_t *tokens, int64_t n_avail, const sf_sparsify_params *p,
                     layer_out *lo, float *thr, float *lvl, int64_t *n_used, sf_reservoir **res_out) {
    const int n_ctx = p->n_ctx;
    const int64_t n_chunks = sparsify_n_chunks(m, p, n_avail);
    if (n_chunks < 1)
        return sf_fail(SF_ERR_ARG, "sparsify: %lld calibration tokens are fewer than one chunk of %d",
                       (long long)n_avail, n_ctx);
    const bool pred = p->method == SF_SPARSE_PREDICTOR;
    calib k = {.m = m, .method = p->method, .lo = lo, .rng = 0x9e3779b97f4a7c15ull};
    const size_t n_res = (size_t)m->n_layer * SF_SITES;
    k.res = calloc(n_res, sizeof *k.res);
    size_t n_scratch = (size_t)(m->n_ff_max > m->n_embd ? m->n_ff_max : m->n_embd);
    const size_t n_att = (size_t)m->n_head_max * (size_t)m->head_dim_v;
    if (n_att > n_scratch) n_scratch = n_att;
    k.scratch = malloc(sizeof(float) * n_scratch);
    int rc = k.res && k.scratch ? SF_OK : sf_fail(SF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n_res; i++)
        if (sparsify_site_used(p, (sf_sparse_site)(i % SF_SITES)) && !(k.res[i].v = malloc(sizeof(float) * SF_RESERVOIR)))
            rc = sf_fail(SF_ERR_NOMEM, "out of memory");
    if (!rc && pred) rc = alloc_predictor(&k, m, n_ctx, p->rank);
    const int n_pass = pred ? 3 : 1;
    const sf_run_plan plan = {.on_ffn = on_ffn, .on_attn = p->attention ? on_attn : NULL, .user = &k};
    *n_used = n_chunks * n_ctx;
    if (!rc) rc = sparsify_dense_pass(m, p, tokens, n_avail, &plan, "calibrate", 0, n_pass);
    if (!rc && pred) {
        /* fit, then the quantized predictor's scores set its thresholds, then its recall */
        rc = fit_predictors(m, &k, lo, *n_used, p->rank, p);
        k.pass = 1;
        if (!rc) rc = sparsify_dense_pass(m, p, tokens, n_avail, &plan, "calibrate", 1, n_pass);
        for (int l = 0; !rc && l < m->n_layer; l++) {
            float level;
            rc = sf_reservoir_sort(&k.truth[l]);
            if (!rc) sf_reservoir_quantile(&k.truth[l], p->sparsity, &k.t_truth[l], &level);
        }
    }
    for (size_t i = 0; !rc && i < n_res; i++)
        if (k.res[i].v) rc = sf_reservoir_sort(&k.res[i]);
    float *uniform = rc ? NULL : malloc(sizeof(float) * (size_t)m->n_layer);
    if (!rc && !uniform) rc = sf_fail(SF_ERR_NOMEM, "out of memory");
    if (!rc) {
        for (int l = 0; l < m->n_layer; l++) uniform[l] = p->sparsity;
        const sparsify_state st = {.m = m, .p = p, .lo = lo, .res = k.res};
        sparsify_rules(&st, uniform, thr, lvl);
    }
    free(uniform);
    if (!rc && pred) {
        /* the predictor passes on a fraction keep; with verification the
         * exact gate then applies CATS's threshold at the asked level */
        const float keep = p->pred_keep > 0 ? p->pred_keep : 1.0f - p->sparsity;
        k.verify = p->pred_keep > 0 && p->sparsity > 0;
        for (int l = 0; l < m->n_layer; l++) {
            float *t = &thr[SF_SITE_FFN_HIDDEN * m->n_layer + l], *v = &lvl[SF_SITE_FFN_HIDDEN * m->n_layer + l];
            sf_reservoir_quantile(&k.res[(size_t)l * SF_SITES + SF_SITE_FFN_HIDDEN], 1.0f - keep, &lo[l].t_pred, v);
            if (p->sparsity <= 0) *v = 0.0f; /* level 0: dense */
            if (k.verify) {
                *t = k.t_truth[l];
                *v = p->sparsity;
            } else *t = 0.0f;
        }
        k.pass = 2;
        rc = sparsify_dense_pass(m, p, tokens, n_avail, &plan, "calibrate", 2, n_pass);
        for (int l = 0; !rc && l < m->n_layer; l++) {
            const recall_count *r = &k.rc[l];
            lo[l].recall = r->truth ? (float)((double)r->hit / (double)r->truth) : 1.0f;
            lo[l].mass = r->mass > 0 ? (float)(r->hit_mass / r->mass) : 1.0f;
        }
    }
    if (!rc) {
        *res_out = k.res;
        k.res = NULL;
    }
    free_calib(&k, m->n_layer);
    return rc;
}

/* ---------------------------------------------------------------- writing */

static int add_owned(sf_gguf_writer *w, const char *name, const owned_tensor *t, uint64_t *bytes) {
    const int64_t ne[2] = {t->ne0, t->ne1};
    *bytes += t->nbytes;
    return sf_gguf_writer_add_tensor(w, name, t->type, 2, ne, t->data, t->nbytes);
}

int sparsify_write(const sparsify_state *st, const float *thr, const float *lvl, const char *path, uint64_t *bytes) {
    const sf_model *m = st->m;
    const sf_sparsify_params *p = st->p;
    const layer_out *lo = st->lo;
    sf_gguf_writer *w = sf_gguf_writer_new();
    if (!w) return sf_fail(SF_ERR_NOMEM, "out of memory");
    int rc = sf_sidecar_write_header(w, m, &sf_sparse_sidecar);
    if (!rc) rc = sf_gguf_writer_set_str(w, "sparsefuse.sparsity.method", sf_sparse_method_name(p->method));
    if (!rc) rc = sf_gguf_writer_set_f32(w, "sparsefuse.sparsity.target", p->sparsity);
    if (!rc && st->kld_budget > 0) {
        rc = sf_gguf_writer_set_f32(w, "sparsefuse.sparsity.auto.kld_budget", (float)st->kld_budget);
        if (!rc) rc = sf_gguf_writer_set_f32(w, "sparsefuse.sparsity.auto.kld", (float)st->kld);
    }
    char key[160];
    if (!rc && p->method == SF_SPARSE_PREDICTOR) {
        float *ex = malloc(sizeof(float) * 3 * (size_t)m->n_layer);
        if (!ex) rc = sf_fail(SF_ERR_NOMEM, "out of memory");
        for (int l = 0; !rc && l < m->n_layer; l++) {
            ex[l] = lo[l].explained;
            ex[m->n_layer + l] = lo[l].recall;
            ex[2 * m->n_layer + l] = lo[l].t_pred;
        }
        if (!rc) rc = sf_gguf_writer_set_u32(w, "sparsefuse.sparsity.predictor.rank", (uint32_t)p->rank);
        if (!rc) rc = sf_gguf_writer_set_arr(w, "sparsefuse.sparsity.predictor.explained", SF_GGUF_F32, ex, (uint64_t)m->n_layer);
        if (!rc)
            rc = sf_gguf_writer_set_arr(w, "sparsefuse.sparsity.predictor.recall", SF_GGUF_F32, ex + m->n_layer,
                                        (uint64_t)m->n_layer);
        if (!rc)
            rc = sf_gguf_writer_set_arr(w, "sparsefuse.sparsity.predictor.threshold", SF_GGUF_F32,
                                        ex + 2 * m->n_layer, (uint64_t)m->n_layer);
        free(ex);
    }
    for (int s = 0; !rc && s < SF_SITES; s++) {
        snprintf(key, sizeof key, "sparsefuse.sparsity.%s.threshold", sf_sparse_site_names[s]);
        rc = sf_gguf_writer_set_arr(w, key, SF_GGUF_F32, thr + s * m->n_layer, (uint64_t)m->n_layer);
        snprintf(key, sizeof key, "sparsefuse.sparsity.%s.level", sf_sparse_site_names[s]);
        if (!rc) rc = sf_gguf_writer_set_arr(w, key, SF_GGUF_F32, lvl + s * m->n_layer, (uint64_t)m->n_layer);
    }
    *bytes = 0;
    for (int l = 0; !rc && l < m->n_layer; l++) {
        const bool in = lvl[SF_SITE_FFN_IN * m->n_layer + l] > 0, hid = lvl[SF_SITE_FFN_HIDDEN * m->n_layer + l] > 0;
        if (in) {
            snprintf(key, sizeof key, "blk.%d.ffn_gate_t", l);
            rc = add_owned(w, key, &lo[l].gate_t, bytes);
            snprintf(key, sizeof key, "blk.%d.ffn_up_t", l);
            if (!rc) rc = add_owned(w, key, &lo[l].up_t, bytes);
        }
        if (!rc && hid) {
            snprintf(key, sizeof key, "blk.%d.ffn_down_t", l);
            rc = add_owned(w, key, &lo[l].down_t, bytes);
        }
        const char *const attn_names[4] = {"attn_q_t", "attn_k_t", "attn_v_t", "attn_output_t"};
        const owned_tensor *attn[4] = {&lo[l].q_t, &lo[l].k_t, &lo[l].v_t, &lo[l].o_t};
        for (int i = 0; !rc && i < 4; i++)
            if (lvl[(i < 3 ? SF_SITE_ATTN_IN : SF_SITE_ATTN_OUT) * m->n_layer + l] > 0) {
                snprintf(key, sizeof key, "blk.%d.%s", l, attn_names[i]);
                rc = add_owned(w, key, attn[i], bytes);
            }
        if (!rc && hid && lo[l].pred_a.data) {
            snprintf(key, sizeof key, "blk.%d.ffn_pred_a", l);
            rc = add_owned(w, key, &lo[l].pred_a, bytes);
            snprintf(key, sizeof key, "blk.%d.ffn_pred_b", l);
            if (!rc) rc = add_owned(w, key, &lo[l].pred_b, bytes);
        }
        if (!rc && in && lo[l].in_scale) {
            const int64_t ne[1] = {m->n_embd};
            snprintf(key, sizeof key, "blk.%d.ffn_in_scale", l);
            rc = sf_gguf_writer_add_tensor(w, key, SF_TYPE_F32, 1, ne, lo[l].in_scale, sizeof(float) * ne[0]);
        }
        if (!rc && hid && lo[l].down_b) {
            const int64_t ne[1] = {m->n_embd};
            snprintf(key, sizeof key, "blk.%d.ffn_down_b", l);
            rc = sf_gguf_writer_add_tensor(w, key, SF_TYPE_F32, 1, ne, lo[l].down_b, sizeof(float) * ne[0]);
        }
        if (!rc && hid && lo[l].hidden_scale) {
            const int64_t ne[1] = {m->layers[l].n_ff};
            snprintf(key, sizeof key, "blk.%d.ffn_hidden_scale", l);
            rc = sf_gguf_writer_add_tensor(w, key, SF_TYPE_F32, 1, ne, lo[l].hidden_scale, sizeof(float) * ne[0]);
        }
    }
    if (!rc) rc = sf_gguf_writer_finish(w, path);
    sf_gguf_writer_free(w);
    return rc;
}

/* ------------------------------------------------------------------ entry */

static int check(const sf_model *m, const sf_sparsify_params *p) {
    if (!(p->sparsity >= 0.0f && p->sparsity < 1.0f))
        return sf_fail(SF_ERR_ARG, "sparsity %g is outside [0, 1)", p->sparsity);
    if (p->method < 0 || p->method >= SF_SPARSE_METHODS) return sf_fail(SF_ERR_ARG, "unknown sparsity method");
    if (!(p->kld_budget >= 0.0f && p->kld_budget < 1e3f))
        return sf_fail(SF_ERR_ARG, "KLD budget %g is not a finite value >= 0", p->kld_budget);
    if (p->kld_budget > 0 && p->method == SF_SPARSE_PREDICTOR)
        return sf_fail(SF_ERR_UNSUPPORTED, "auto:KLD is built for teal, cats and wina, not the predictor");
    if (p->correct_down < SF_CORRECT_NONE || p->correct_down > SF_CORRECT_LS)
        return sf_fail(SF_ERR_ARG, "unknown down correction %d", (int)p->correct_down);
    if (p->correct_down != SF_CORRECT_NONE && p->method == SF_SPARSE_PREDICTOR)
        return sf_fail(SF_ERR_UNSUPPORTED, "the down correction is built for teal, cats and wina, not the predictor");
    if (p->kld_budget > 0 && p->auto_chunks < 1)
        return sf_fail(SF_ERR_ARG, "auto:KLD needs at least one chunk to measure on, not %d", p->auto_chunks);
    if (p->n_ctx < 8 || p->n_tokens < 1) return sf_fail(SF_ERR_ARG, "calibration chunks of %d tokens", p->n_ctx);
    if (p->method == SF_SPARSE_PREDICTOR && (p->rank < 32 || p->rank % 32 != 0 || p->rank > m->n_embd ||
                                             m->n_embd % 32 != 0))
        return sf_fail(SF_ERR_ARG, "predictor rank %d: a multiple of 32 in [32, n_embd = %d] is needed", p->rank,
                       m->n_embd);
    if (p->attention && p->method != SF_SPARSE_TEAL)
        return sf_fail(SF_ERR_ARG, "attention sparsity is built for teal, not %s", sf_sparse_method_name(p->method));
    if (p->pred_keep != 0 && p->method != SF_SPARSE_PREDICTOR)
        return sf_fail(SF_ERR_ARG, "a predictor keep is given, but the method is %s", sf_sparse_method_name(p->method));
    if (p->pred_keep != 0 && !(p->pred_keep > 1.0f - p->sparsity && p->pred_keep <= 1.0f))
        return sf_fail(SF_ERR_ARG, "predictor keep %g is outside (1 - sparsity, 1] = (%g, 1]", p->pred_keep,
                       1.0f - p->sparsity);
    for (int l = 0; l < m->n_layer; l++) {
        const sf_layer *L = &m->layers[l];
        if (p->attention && L->attn != SF_ATTN_DENSE)
            return sf_fail(SF_ERR_UNSUPPORTED, "sparsify: layer %d has no full attention to make sparse", l);
        if (p->attention && p->wt_type >= 0 && (!type_ok(p->wt_type, L->wq->ne[1]) || !type_ok(p->wt_type, L->wk->ne[1])))
            return sf_fail(SF_ERR_ARG, "type %s cannot hold the transposed attention rows", sf_type_name(p->wt_type));
        if (L->ffn != SF_FFN_DENSE || L->group_first != L->group_last)
            return sf_fail(SF_ERR_UNSUPPORTED,
                           "sparsify: layer %d has no FFN of its own (fused or parallel models are not supported yet)",
                           l);
        if (p->wt_type >= 0 && (!type_ok(p->wt_type, L->n_ff) || !type_ok(p->wt_type, m->n_embd)))
            return sf_fail(SF_ERR_ARG, "type %s cannot hold rows of %d and %d values with the sparse kernels",
                           sf_type_name(p->wt_type), L->n_ff, m->n_embd);
    }
    return SF_OK;
}

int sf_sparsify(sf_model *m, const int32_t *tokens, int64_t n_avail, const sf_sparsify_params *params,
                const char *out_path, sf_sparsify_result *res) {
    const sf_sparsify_params p = params ? *params : sf_sparsify_default_params();
    int rc = check(m, &p);
    if (rc) return rc;
    layer_out *lo = calloc((size_t)m->n_layer, sizeof *lo);
    float *thr = calloc((size_t)m->n_layer * SF_SITES, sizeof(float));
    float *lvl = calloc((size_t)m->n_layer * SF_SITES, sizeof(float));
    if (!lo || !thr || !lvl) rc = sf_fail(SF_ERR_NOMEM, "out of memory");
    requant_err e = {0, 0};
    for (int l = 0; !rc && l < m->n_layer; l++) {
        rc = build_layer(&m->layers[l], &p, m->n_embd, &lo[l], &e);
        if (p.progress) p.progress("transpose", l + 1, m->n_layer, p.user);
    }
    int64_t n_used = 0;
    sparsify_state st = {.m = m, .p = &p, .lo = lo, .kld_budget = p.kld_budget};
    if (!rc) rc = calibrate(m, tokens, n_avail, &p, lo, thr, lvl, &n_used, &st.res);
    if (!rc && p.kld_budget > 0) {
        float *level = malloc(sizeof(float) * (size_t)m->n_layer);
        rc = level ? sparsify_auto_levels(&st, tokens, n_avail, out_path, level)
                   : sf_fail(SF_ERR_NOMEM, "out of memory");
        if (!rc) sparsify_rules(&st, level, thr, lvl);
        free(level);
    }
    if (!rc && p.correct_down != SF_CORRECT_NONE) rc = sparsify_correct_down(&st, tokens, n_avail, thr, lvl, lo);
    uint64_t bytes = 0;
    if (!rc) rc = sparsify_write(&st, thr, lvl, out_path, &bytes);
    if (!rc && res) {
        double sum = 0;
        int n = 0;
        for (int i = 0; i < m->n_layer * SF_SITES; i++)
            if (sparsify_site_used(&p, (sf_sparse_site)(i / m->n_layer))) {
                sum += lvl[i];
                n++;
            }
        res->kld = st.kld;
        res->same_top = st.same_top;
        res->n_tokens = n_used;
        res->level_mean = n ? sum / n : 0.0;
        res->transpose_nmse = e.ref > 0 ? e.err / e.ref : 0.0;
        res->side_bytes = bytes;
        res->pred_explained = res->pred_recall = res->pred_mass = res->pred_flops = 0;
        for (int l = 0; p.method == SF_SPARSE_PREDICTOR && l < m->n_layer; l++) {
            const double E = m->n_embd, F = m->layers[l].n_ff;
            res->pred_explained += lo[l].explained / m->n_layer;
            res->pred_recall += lo[l].recall / m->n_layer;
            res->pred_mass += lo[l].mass / m->n_layer;
            res->pred_flops += p.rank * (E + F) / (3 * E * F) / m->n_layer;
        }
    }
    if (lo)
        for (int l = 0; l < m->n_layer; l++) {
            free(lo[l].gate_t.data);
            free(lo[l].up_t.data);
            free(lo[l].down_t.data);
            free(lo[l].in_scale);
            free(lo[l].hidden_scale);
            free(lo[l].pred_a.data);
            free(lo[l].pred_b.data);
            free(lo[l].q_t.data);
            free(lo[l].k_t.data);
            free(lo[l].v_t.data);
            free(lo[l].o_t.data);
            free(lo[l].down_b);
        }
    if (st.res)
        for (int i = 0; i < m->n_layer * SF_SITES; i++) sf_reservoir_free(&st.res[i]);
    free(st.res);
    free(lo);
    free(thr);
    free(lvl);
    return rc;
}
