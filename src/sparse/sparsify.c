/* sparsify: the side-car for a model. Three steps:
 *  1. transposed matrices: for every layer, gate and up (TEAL, WINA) and
 *     down (all methods) dequantized, transposed and re-quantized with
 *     blocks along their output dimension (the error is measured), and
 *     WINA's column norms;
 *  2. calibration: the dense model runs over the calibration chunks; a
 *     reservoir of the channel scores of each (layer, site) is kept
 *     (|x_j| for TEAL, |x_j|·‖W[:,j]‖ for WINA, |act(g_i)| for CATS);
 *  3. thresholds: per (layer, site) the s-quantile of its scores, so a
 *     fraction s of the channels falls at or below it; then the GGUF. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/context.h"
#include "model/ops.h"
#include "sparse/sparse.h"
#include "tensor/types.h"

#define RESERVOIR (1 << 18) /* scores kept per (layer, site) */

sf_sparsify_params sf_sparsify_default_params(void) {
    sf_sparsify_params p = {.method = SF_SPARSE_TEAL, .sparsity = 0.5f, .n_ctx = 512, .n_tokens = 8192,
                            .n_threads = 0, .wt_type = -1};
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
    void *data;
    size_t nbytes;
    sf_type type;
    int64_t ne0, ne1; /* ne1 rows of ne0 values */
} owned_tensor;

typedef struct {
    owned_tensor gate_t, up_t, down_t;
    float *in_scale, *hidden_scale; /* WINA: [n_embd], [n_ff] */
} layer_out;

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
    const bool in = p->method != SF_SPARSE_CATS, wina = p->method == SF_SPARSE_WINA;
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
    float *v; /* [RESERVOIR] */
    int64_t seen;
    double w;     /* Algorithm L's running weight */
    int64_t next; /* index of the next score that enters once full */
} reservoir;

typedef struct {
    const sf_model *m;
    sf_sparse_method method;
    const layer_out *lo;
    reservoir *res; /* [n_layer][SF_SITES] */
    uint64_t rng;
    float *scratch; /* [n_ff_max] */
} calib;

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double uniform(calib *k) { return ((double)(next_rand(&k->rng) >> 11) + 0.5) * 0x1.0p-53; }

/* The gap to the next score that enters a full reservoir (Li's Algorithm L). */
static void advance(calib *k, reservoir *r) {
    r->w *= exp(log(uniform(k)) / RESERVOIR);
    r->next += (int64_t)floor(log(uniform(k)) / log1p(-r->w)) + 1;
}

/* Reservoir sampling: every score seen has the same chance to be kept;
 * once full, one random draw per score that enters, not per score seen.
 * r->seen is the index (over all scores) of v[i]. */
static void keep(calib *k, reservoir *r, const float *v, int64_t n) {
    int64_t i = 0;
    for (; i < n && r->seen < RESERVOIR; i++) {
        r->v[r->seen++] = v[i];
        if (r->seen == RESERVOIR) {
            r->w = 1.0;
            r->next = RESERVOIR - 1;
            advance(k, r);
        }
    }
    while (i < n) {
        const int64_t skip = r->next - r->seen; /* scores passed over before the next that enters */
        if (skip >= n - i) {
            r->seen += n - i;
            return;
        }
        i += skip;
        r->seen += skip + 1;
        r->v[next_rand(&k->rng) % RESERVOIR] = v[i++];
        advance(k, r);
    }
}

/* run-plan hook: the scores of this batch's FFN channels */
static void on_ffn(void *user, int layer, const int *row_token, int T, const float *xn, const float *g,
                   const float *h, int n_ff) {
    (void)row_token;
    calib *k = user;
    const int E = k->m->n_embd;
    const layer_out *lo = &k->lo[layer];
    reservoir *r = &k->res[(size_t)layer * SF_SITES];
    float *s = k->scratch;
    for (int t = 0; t < T; t++) {
        if (k->method != SF_SPARSE_CATS) {
            const float *x = xn + (size_t)t * E;
            for (int j = 0; j < E; j++) s[j] = fabsf(x[j]) * (lo->in_scale ? lo->in_scale[j] : 1.0f);
            keep(k, &r[SF_SITE_FFN_IN], s, E);
        }
        const float *hh = h + (size_t)t * n_ff, *gg = g + (size_t)t * n_ff;
        for (int i = 0; i < n_ff; i++)
            s[i] = k->method == SF_SPARSE_CATS ? fabsf(sf_gate_act(gg[i], k->m->ffn_act))
                                               : fabsf(hh[i]) * (lo->hidden_scale ? lo->hidden_scale[i] : 1.0f);
        keep(k, &r[SF_SITE_FFN_HIDDEN], s, n_ff);
    }
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The threshold skipping a fraction s of the scores (those <= it), and the
 * fraction of the kept scores it actually skips. */
static void quantile(reservoir *r, float s, float *threshold, float *level) {
    const int64_t n = r->seen < RESERVOIR ? r->seen : RESERVOIR;
    *threshold = 0.0f;
    *level = 0.0f;
    if (n == 0 || s <= 0.0f) return;
    qsort(r->v, (size_t)n, sizeof(float), cmp_float);
    int64_t i = (int64_t)floor((double)s * (double)n);
    if (i >= n) i = n - 1;
    if (i < 1) i = 1;
    *threshold = r->v[i - 1];
    int64_t below = 0;
    while (below < n && r->v[below] <= *threshold) below++;
    *level = (float)((double)below / (double)n);
}

static int calibrate(sf_model *m, const int32_t *tokens, int64_t n_avail, const sf_sparsify_params *p,
                     const layer_out *lo, float *thr, float *lvl, int64_t *n_used) {
    const int n_ctx = p->n_ctx;
    const bool bos = sf_model_add_bos(m) && sf_token_bos(m) >= 0;
    const int per_chunk = bos ? n_ctx - 1 : n_ctx;
    int64_t n_chunks = (p->n_tokens < n_avail ? p->n_tokens : n_avail) / per_chunk;
    if (n_chunks < 1)
        return sf_fail(SF_ERR_ARG, "sparsify: %lld calibration tokens are fewer than one chunk of %d",
                       (long long)n_avail, n_ctx);
    calib k = {.m = m, .method = p->method, .lo = lo, .rng = 0x9e3779b97f4a7c15ull};
    const size_t n_res = (size_t)m->n_layer * SF_SITES;
    k.res = calloc(n_res, sizeof *k.res);
    k.scratch = malloc(sizeof(float) * (size_t)(m->n_ff_max > m->n_embd ? m->n_ff_max : m->n_embd));
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)n_ctx);
    int rc = k.res && k.scratch && buf ? SF_OK : sf_fail(SF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n_res; i++)
        if (!(k.res[i].v = malloc(sizeof(float) * RESERVOIR))) rc = sf_fail(SF_ERR_NOMEM, "out of memory");
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = cp.n_batch = n_ctx;
    cp.n_threads = p->n_threads;
    sf_context *c = rc ? NULL : sf_context_new(m, &cp);
    if (!rc && !c) rc = SF_ERR_NOMEM;
    const sf_run_plan plan = {.on_ffn = on_ffn, .user = &k};
    for (int64_t ch = 0; !rc && ch < n_chunks; ch++) {
        int n = 0;
        if (bos) buf[n++] = sf_token_bos(m);
        memcpy(buf + n, tokens + ch * per_chunk, sizeof(int32_t) * (size_t)per_chunk);
        rc = sf_forward(c, buf, n_ctx, n_ctx, &plan);
        if (p->progress) p->progress("calibrate", ch + 1, n_chunks, p->user);
    }
    *n_used = n_chunks * n_ctx;
    for (int l = 0; !rc && l < m->n_layer; l++)
        for (int s = 0; s < SF_SITES; s++) {
            const bool used = !(p->method == SF_SPARSE_CATS && s == SF_SITE_FFN_IN);
            float *t = &thr[s * m->n_layer + l], *v = &lvl[s * m->n_layer + l];
            if (used) quantile(&k.res[(size_t)l * SF_SITES + s], p->sparsity, t, v);
            else *t = *v = 0.0f;
        }
    sf_context_free(c);
    if (k.res)
        for (size_t i = 0; i < n_res; i++) free(k.res[i].v);
    free(k.res);
    free(k.scratch);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- writing */

static int add_owned(sf_gguf_writer *w, const char *name, const owned_tensor *t, uint64_t *bytes) {
    const int64_t ne[2] = {t->ne0, t->ne1};
    *bytes += t->nbytes;
    return sf_gguf_writer_add_tensor(w, name, t->type, 2, ne, t->data, t->nbytes);
}

static int write_sidecar(const sf_model *m, const sf_sparsify_params *p, const layer_out *lo, const float *thr,
                         const float *lvl, const char *path, uint64_t *bytes) {
    sf_gguf_writer *w = sf_gguf_writer_new();
    if (!w) return sf_fail(SF_ERR_NOMEM, "out of memory");
    int rc = sf_gguf_writer_set_str(w, "general.architecture", SF_SPARSE_ARCH);
    if (!rc) rc = sf_gguf_writer_set_u32(w, "sparsefuse.sparsity.version", SF_SPARSE_VERSION);
    if (!rc) rc = sf_gguf_writer_set_str(w, "sparsefuse.sparsity.method", sf_sparse_method_name(p->method));
    if (!rc) rc = sf_gguf_writer_set_f32(w, "sparsefuse.sparsity.target", p->sparsity);
    if (!rc) rc = sf_gguf_writer_set_str(w, "sparsefuse.sparsity.base.name", m->name ? m->name : "");
    if (!rc) rc = sf_gguf_writer_set_u64(w, "sparsefuse.sparsity.base.fingerprint", sf_sparse_fingerprint(m));
    if (!rc) rc = sf_gguf_writer_set_u32(w, "sparsefuse.sparsity.base.n_layer", (uint32_t)m->n_layer);
    if (!rc) rc = sf_gguf_writer_set_u32(w, "sparsefuse.sparsity.base.n_embd", (uint32_t)m->n_embd);
    char key[160];
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
        if (!rc && in && lo[l].in_scale) {
            const int64_t ne[1] = {m->n_embd};
            snprintf(key, sizeof key, "blk.%d.ffn_in_scale", l);
            rc = sf_gguf_writer_add_tensor(w, key, SF_TYPE_F32, 1, ne, lo[l].in_scale, sizeof(float) * ne[0]);
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
    if (p->n_ctx < 8 || p->n_tokens < 1) return sf_fail(SF_ERR_ARG, "calibration chunks of %d tokens", p->n_ctx);
    for (int l = 0; l < m->n_layer; l++) {
        const sf_layer *L = &m->layers[l];
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
    if (!rc) rc = calibrate(m, tokens, n_avail, &p, lo, thr, lvl, &n_used);
    uint64_t bytes = 0;
    if (!rc) rc = write_sidecar(m, &p, lo, thr, lvl, out_path, &bytes);
    if (!rc && res) {
        double sum = 0;
        int n = 0;
        for (int i = 0; i < m->n_layer * SF_SITES; i++)
            if (lvl[i] > 0) {
                sum += lvl[i];
                n++;
            }
        res->n_tokens = n_used;
        res->level_mean = n ? sum / n : 0.0;
        res->transpose_nmse = e.ref > 0 ? e.err / e.ref : 0.0;
        res->side_bytes = bytes;
    }
    if (lo)
        for (int l = 0; l < m->n_layer; l++) {
            free(lo[l].gate_t.data);
            free(lo[l].up_t.data);
            free(lo[l].down_t.data);
            free(lo[l].in_scale);
            free(lo[l].hidden_scale);
        }
    free(lo);
    free(thr);
    free(lvl);
    return rc;
}
