/* The FFN sub-layer of one token with contextual sparsity (sparse/sparse.h):
 *
 *   h = act(W_gate · x̃) ⊙ (W_up · x̃),   x̃ = norm(x) on its active channels
 *   x += post_norm(W_down · h̃),         h̃ = h on its active neurons
 *
 * A product over active input channels reads only those rows of the
 * transposed matrix (W·x̃ = Σ_j x_j Wᵀ[j], one scaled accumulation per row,
 * the type's axpy_rows kernel). By default each thread takes its share of
 * the active rows whole and accumulates a partial product that the calling
 * thread sums (long contiguous reads; measured faster than splitting the
 * output columns, which needs no sum but halves every read: SF_SPARSE_SPLIT=
 * cols keeps that variant for measurement). Each thread finds the active
 * channels itself (a pass over n values, cheaper than a barrier). CATS keeps the gate dense
 * and computes the up rows of the active neurons only; the predictor
 * (sparse/predictor.h) estimates the gate from z = A x̃ and computes gate and
 * up rows of the neurons it predicts active only. A site the side-car
 * leaves dense in this layer runs the dense kernels. */
#include <math.h>
#include <string.h>

#include "model/forward_impl.h"
#include "model/ops.h"
#include "sparse/sparse.h"
#include "sparse/wcache.h"
#include "tensor/types.h"

typedef struct {
    sf_context *c;
    const sf_layer *L;
    const sf_sparse_layer *S;
    sf_sparse_method method;
    float *o;        /* [n_embd] the sub-layer's output row: x (accumulated) or tmp */
    bool accumulate;
    sf_wcache *cache; /* SF_SPARSE_CACHE=diff: this layer's [gate_t, up_t, down_t] caches, or NULL */
} sparse_job;

/* The active channels of x[n] under rule r (|x_j| · scale_j > threshold):
 * rows[k] = the row of channel j in a transposed matrix, at this thread's
 * column offset, and s[k] = x_j. Returns the count. */
static int active_rows(const sf_sparse_rule *r, const float *x, int n, const sf_gguf_tensor *wt, size_t offset,
                       const void **rows, float *s) {
    const uint8_t *base = (const uint8_t *)wt->data + offset;
    const size_t row_bytes = sf_type_row_bytes(wt->type, wt->ne[0]);
    int k = 0;
    for (int j = 0; j < n; j++) {
        if (sf_sparse_active(r, x[j], j)) {
            rows[k] = base + (size_t)j * row_bytes;
            s[k++] = x[j];
        }
    }
    return k;
}

/* This thread's columns [c0, c1) of a transposed matrix (whole blocks), and
 * the byte offset of c0 in its rows. */
static size_t column_slice(const sf_gguf_tensor *wt, int ith, int nth, int64_t *c0, int64_t *c1) {
    const sf_type_traits *tr = sf_type_ref(wt->type);
    sf_split_range(wt->ne[0], ith, nth, tr->block_size, c0, c1);
    return (size_t)(*c0 / tr->block_size) * tr->type_size;
}

/* out[c0, c1) = Wᵀ · x̃ over the active channels of x[n]. */
static int sparse_product(const sf_sparse_rule *r, const float *x, int n, const sf_gguf_tensor *wt, int ith, int nth,
                          const void **rows, float *s, float *out, bool accumulate) {
    int64_t c0, c1;
    const size_t off = column_slice(wt, ith, nth, &c0, &c1);
    const int k = active_rows(r, x, n, wt, off, rows, s);
    if (c0 >= c1) return k;
    if (!accumulate) memset(out + c0, 0, sizeof(float) * (size_t)(c1 - c0));
    sf_type_fast(wt->type)->axpy_rows(c1 - c0, rows, s, k, out + c0);
    return k;
}

/* The row split (the default; SF_SPARSE_SPLIT=cols: the column split): thread ith accumulates its share of
 * the active rows, whole, into its partial part[ith][slot][n_out]; the
 * calling thread sums the partials after the region (partial_sum). */
static int sparse_product_rows(const sf_sparse_rule *r, const float *x, int n, const sf_gguf_tensor *wt, int ith,
                               int nth, const void **rows, float *s, float *part, const sf_wcache *cache) {
    const int k = cache ? sf_wcache_rows(cache, x, rows, s) : active_rows(r, x, n, wt, 0, rows, s);
    int64_t k0, k1;
    sf_split_range(k, ith, nth, 1, &k0, &k1);
    memset(part, 0, sizeof(float) * (size_t)wt->ne[0]);
    sf_type_fast(wt->type)->axpy_rows(wt->ne[0], rows + k0, s + k0, (int)(k1 - k0), part);
    return k;
}

static float *partial(sf_context *c, int ith, int slot) {
    return c->sp_part + ((size_t)ith * SF_SPARSE_SLOTS + (size_t)slot) * c->sp_stride;
}

/* out[n] (+)= Σ over threads of partial slot */
static void partial_sum(sf_context *c, int nth, int slot, float *out, int64_t n, bool accumulate) {
    if (!accumulate) memset(out, 0, sizeof(float) * (size_t)n);
    for (int t = 0; t < nth; t++) {
        const float *p = partial(c, t, slot);
        for (int64_t i = 0; i < n; i++) out[i] += p[i];
    }
}

/* Row i of a dense matrix dotted with the token's quantized x̃. */
typedef struct {
    sf_vec_dot_fn dot;
    const uint8_t *data;
    size_t row_bytes;
    const void *act;
} row_dot;

static row_dot row_dot_of(sf_context *c, const sf_gguf_tensor *w) {
    const sf_matrix m = sf_fw_matrix_of(w);
    const int kind = sf_fw_weight_kind(w);
    return (row_dot){sf_matmul_gemv_dot(&m), m.data, sf_type_row_bytes(m.type, m.n_in), c->act.buf[kind]};
}

static float dot_row(const row_dot *d, int64_t n, int64_t i) { return d->dot(n, d->data + (size_t)i * d->row_bytes, d->act); }

/* CATS, rows [r0, r1): the gate dense; up only where |act(gate)| > t (an
 * inactive neuron's h is exactly 0). */
static void hidden_cats(sparse_job *j, int64_t r0, int64_t r1) {
    sf_context *c = j->c;
    const sf_layer *L = j->L;
    const int E = c->model->n_embd;
    const sf_matrix gate = sf_fw_matrix_of(L->ffn_gate);
    const int kg = sf_fw_weight_kind(L->ffn_gate);
    sf_matmul_rows(&gate, c->act.buf[kg], c->act.stride[kg], 1, c->hb, L->n_ff, false, r0, r1);
    const row_dot up = row_dot_of(c, L->ffn_up);
    const float t = j->S->site[SF_SITE_FFN_HIDDEN].threshold;
    int64_t n_up = 0;
    for (int64_t i = r0; i < r1; i++) {
        const bool on = fabsf(sf_gate_act(c->hb[i], c->model->ffn_act)) > t;
        c->hb2[i] = on ? dot_row(&up, E, i) : 0.0f;
        n_up += on;
    }
    /* up rows read, and the dense gate's (same shape) */
    __atomic_add_fetch(&c->sp_stats.bytes, (n_up + r1 - r0) * (int64_t)up.row_bytes, __ATOMIC_RELAXED);
}

/* The predictor, rows [r0, r1): neuron i is computed where |act(ĝ_i)| > t_p,
 * and kept where then also |act(g_i)| > t (t = 0: every computed neuron);
 * only those gate and up rows are read (h exactly 0 elsewhere). y: [r1 - r0]. */
static void hidden_predicted(sparse_job *j, int64_t r0, int64_t r1, float *y) {
    sf_context *c = j->c;
    const sf_layer *L = j->L;
    const int E = c->model->n_embd;
    const sf_ffn_act act = c->model->ffn_act;
    sf_predictor_scores(&j->S->pred, c->sp_zq, r0, r1, y);
    const row_dot gate = row_dot_of(c, L->ffn_gate), up = row_dot_of(c, L->ffn_up);
    const float tp = j->S->pred_threshold, t = j->S->site[SF_SITE_FFN_HIDDEN].threshold;
    int64_t n_gate = 0, n_up = 0;
    for (int64_t i = r0; i < r1; i++) {
        float g = 0.0f, u = 0.0f;
        if (fabsf(sf_gate_act(y[i - r0], act)) > tp) {
            g = dot_row(&gate, E, i);
            n_gate++;
            if (t <= 0.0f || fabsf(sf_gate_act(g, act)) > t) {
                u = dot_row(&up, E, i);
                n_up++;
            } else g = 0.0f;
        }
        c->hb[i] = g;
        c->hb2[i] = u;
    }
    const int64_t pred_bytes = (int64_t)sf_type_row_bytes(SF_TYPE_Q8_0, j->S->pred.rank) * (r1 - r0);
    __atomic_add_fetch(&c->sp_stats.bytes, n_gate * (int64_t)gate.row_bytes + n_up * (int64_t)up.row_bytes + pred_bytes,
                       __ATOMIC_RELAXED);
}

/* hb = h for this token: gate and up, dense or over active channels. */
static void region_hidden(void *arg, int ith, int nth) {
    sparse_job *j = arg;
    sf_context *c = j->c;
    const sf_layer *L = j->L;
    const sf_sparse_layer *S = j->S;
    const int F = L->n_ff, E = c->model->n_embd;
    const void **rows = c->sp_rows + (size_t)ith * c->sp_stride;
    float *s = c->sp_scale + (size_t)ith * c->sp_stride;
    const sf_sparse_rule *in = &S->site[SF_SITE_FFN_IN];
    if (in->on && c->sp_split_rows) {
        const int k = sparse_product_rows(in, c->xn, E, S->gate_t, ith, nth, rows, s, partial(c, ith, 0),
                                          j->cache ? &j->cache[0] : NULL);
        sparse_product_rows(in, c->xn, E, S->up_t, ith, nth, rows, s, partial(c, ith, 1), j->cache ? &j->cache[1] : NULL);
        if (ith == 0) {
            c->sp_stats.in_total += E;
            c->sp_stats.in_active += k;
            c->sp_stats.bytes += (int64_t)k * 2 * (int64_t)sf_type_row_bytes(S->gate_t->type, F);
        }
        return;
    }
    if (in->on) {
        int64_t c0, c1;
        column_slice(S->gate_t, ith, nth, &c0, &c1);
        const int k = sparse_product(in, c->xn, E, S->gate_t, ith, nth, rows, s, c->hb, false);
        sparse_product(in, c->xn, E, S->up_t, ith, nth, rows, s, c->hb2, false);
        if (c0 < c1) sf_glu(c->hb, c->hb, c->hb2, (int)c0, (int)c1, F, c->model->ffn_act);
        if (ith == 0) {
            c->sp_stats.in_total += E;
            c->sp_stats.in_active += k;
            c->sp_stats.bytes += (int64_t)k * 2 * (int64_t)sf_type_row_bytes(S->gate_t->type, F);
        }
        return;
    }
    int64_t r0, r1;
    sf_split_range(F, ith, nth, 8, &r0, &r1);
    if (r0 >= r1) return;
    if (S->site[SF_SITE_FFN_HIDDEN].on && j->method == SF_SPARSE_CATS) hidden_cats(j, r0, r1);
    else if (S->site[SF_SITE_FFN_HIDDEN].on && j->method == SF_SPARSE_PREDICTOR) hidden_predicted(j, r0, r1, s);
    else {
        const sf_matrix gate = sf_fw_matrix_of(L->ffn_gate), up = sf_fw_matrix_of(L->ffn_up);
        const int kg = sf_fw_weight_kind(L->ffn_gate), ku = sf_fw_weight_kind(L->ffn_up);
        sf_matmul_rows(&gate, c->act.buf[kg], c->act.stride[kg], 1, c->hb, F, false, r0, r1);
        sf_matmul_rows(&up, c->act.buf[ku], c->act.stride[ku], 1, c->hb2, F, false, r0, r1);
        if (ith == 0) __atomic_add_fetch(&c->sp_stats.bytes, (int64_t)(L->ffn_gate->nbytes + L->ffn_up->nbytes),
                                         __ATOMIC_RELAXED);
    }
    sf_glu(c->hb, c->hb, c->hb2, (int)r0, (int)r1, F, c->model->ffn_act);
}

/* o (+)= W_down · h̃ over the active neurons. */
static void region_down(void *arg, int ith, int nth) {
    sparse_job *j = arg;
    sf_context *c = j->c;
    const sf_sparse_layer *S = j->S;
    /* CATS and the predictor decided in region_hidden: their inactive neurons are exact zeros */
    static const sf_sparse_rule nonzero = {.on = true, .threshold = 0.0f};
    const bool decided = j->method == SF_SPARSE_CATS || j->method == SF_SPARSE_PREDICTOR;
    const sf_sparse_rule *r = decided ? &nonzero : &S->site[SF_SITE_FFN_HIDDEN];
    const void **rows = c->sp_rows + (size_t)ith * c->sp_stride;
    float *s = c->sp_scale + (size_t)ith * c->sp_stride;
    const int k = c->sp_split_rows
                      ? sparse_product_rows(r, c->hb, j->L->n_ff, S->down_t, ith, nth, rows, s, partial(c, ith, 0),
                                            j->cache ? &j->cache[2] : NULL)
                      : sparse_product(r, c->hb, j->L->n_ff, S->down_t, ith, nth, rows, s, j->o, j->accumulate);
    if (ith == 0) {
        c->sp_stats.hidden_total += j->L->n_ff;
        c->sp_stats.hidden_active += k;
        __atomic_add_fetch(&c->sp_stats.bytes, (int64_t)k * (int64_t)sf_type_row_bytes(S->down_t->type, S->down_t->ne[0]),
                           __ATOMIC_RELAXED);
    }
}

/* ---------------------------------------------- differential weight cache */

typedef struct {
    sf_context *c;
    sf_wcache *w[2];
    const sf_gguf_tensor *t[2];
} copy_job;

static void region_copy(void *arg, int ith, int nth) {
    copy_job *j = arg;
    size_t bytes = 0;
    for (int i = 0; i < 2 && j->w[i]; i++) bytes += sf_wcache_copy(j->w[i], j->t[i]->data, ith, nth);
    /* read from the mapping and written to the cache */
    __atomic_add_fetch(&j->c->sp_stats.bytes, (int64_t)(2 * bytes), __ATOMIC_RELAXED);
}

/* The mask of x[n] under rule r (CATS and the predictor: h's nonzeros) into
 * the caches w (one or two matrices with the same channels), and their
 * entering rows copied in by every thread. */
static void cache_update(sf_context *c, const sf_sparse_rule *r, bool nonzero, const float *x, int n, sf_wcache *w0,
                         const sf_gguf_tensor *t0, sf_wcache *w1, const sf_gguf_tensor *t1) {
    bool *mask = c->sp_cache->mask;
    for (int j = 0; j < n; j++) mask[j] = nonzero ? x[j] != 0.0f : sf_sparse_active(r, x[j], j);
    sf_wcache_update(w0, mask);
    if (w1) sf_wcache_update(w1, mask);
    copy_job j = {c, {w0, w1}, {t0, t1}};
    sf_fw_run_region(c, region_copy, &j);
}

void sf_sparse_ffn_token(sf_context *c, const sf_layer *L, int il) {
    const sf_sparse_layer *S = &c->sparse->layers[il];
    const int E = c->model->n_embd;
    float *o = sf_fw_sublayer_out(c, L->ffn_post_norm);
    const bool in = S->site[SF_SITE_FFN_IN].on, hidden = S->site[SF_SITE_FFN_HIDDEN].on;
    /* x̃ = norm(x); the dense gate/up read it quantized, the sparse ones as floats */
    sf_fw_norm_quantize(c, 1, L->ffn_norm, in ? 0u : sf_fw_kinds_for(L->ffn_gate, L->ffn_up, NULL));
    if (hidden && c->sparse->method == SF_SPARSE_PREDICTOR) {
        /* z = A x̃, a few hundred values: once, on this thread */
        sf_predictor_project(&S->pred, c->xn, c->sp_pscratch, c->sp_zq);
        c->sp_stats.bytes += (int64_t)sf_type_row_bytes(SF_TYPE_Q8_0, E) * S->pred.rank;
    }
    sparse_job j = {.c = c, .L = L, .S = S, .method = c->sparse->method, .o = o, .accumulate = o == c->x,
                    .cache = c->sp_cache ? c->sp_cache->m[il] : NULL};
    if (j.cache && in)
        cache_update(c, &S->site[SF_SITE_FFN_IN], false, c->xn, E, &j.cache[0], S->gate_t, &j.cache[1], S->up_t);
    sf_fw_run_region(c, region_hidden, &j);
    const int nth = c->serial ? 1 : c->n_threads;
    if (in && c->sp_split_rows) {
        partial_sum(c, nth, 0, c->hb, L->n_ff, false);
        partial_sum(c, nth, 1, c->hb2, L->n_ff, false);
        sf_glu(c->hb, c->hb, c->hb2, 0, L->n_ff, L->n_ff, c->model->ffn_act);
    }
    if (hidden) {
        if (j.cache) {
            const bool decided = j.method == SF_SPARSE_CATS || j.method == SF_SPARSE_PREDICTOR;
            cache_update(c, &S->site[SF_SITE_FFN_HIDDEN], decided, c->hb, L->n_ff, &j.cache[2], S->down_t, NULL, NULL);
        }
        sf_fw_run_region(c, region_down, &j);
        if (c->sp_split_rows) partial_sum(c, nth, 0, o, E, o == c->x);
        if (S->down_b) /* --correct-down */
            for (int e = 0; e < E; e++) o[e] += S->down_b[e];
    } else {
        sf_fw_quantize(c, 1, c->hb, L->n_ff, sf_fw_kinds_for(L->ffn_down, NULL, NULL));
        sf_fw_matmul(c, 1, L->ffn_down, o, E, o == c->x, 1);
        c->sp_stats.bytes += (int64_t)L->ffn_down->nbytes;
    }
    if (L->ffn_post_norm) sf_fw_post_norm_residual(c, 1, L->ffn_post_norm);
    c->sp_stats.tokens++;
}

/* ------------------------------------------------------------ attention */

/* One token's attention projections over the active channels of a site:
 * out[k] (+ bias[k]) = wt[k]ᵀ · x̃ for k < n, row split with partials. */
typedef struct {
    sf_context *c;
    const sf_sparse_rule *rule;
    const float *x; /* [n_in] */
    int n_in, n;
    const sf_gguf_tensor *wt[SF_SPARSE_SLOTS];
    int active; /* channels active (thread 0) */
} attn_job;

static void region_attn(void *arg, int ith, int nth) {
    attn_job *j = arg;
    sf_context *c = j->c;
    const void **rows = c->sp_rows + (size_t)ith * c->sp_stride;
    float *s = c->sp_scale + (size_t)ith * c->sp_stride;
    for (int k = 0; k < j->n; k++) {
        const int a = sparse_product_rows(j->rule, j->x, j->n_in, j->wt[k], ith, nth, rows, s, partial(c, ith, k), NULL);
        if (ith == 0) j->active = a;
    }
}

static void attn_product(sf_context *c, attn_job *j, float *const out[], const float *const bias[]) {
    sf_fw_run_region(c, region_attn, j);
    const int nth = c->serial ? 1 : c->n_threads;
    for (int k = 0; k < j->n; k++) {
        const int64_t n_out = j->wt[k]->ne[0];
        partial_sum(c, nth, k, out[k], n_out, false);
        if (bias[k])
            for (int64_t i = 0; i < n_out; i++) out[k][i] += bias[k][i];
        c->sp_stats.bytes += (int64_t)j->active * (int64_t)sf_type_row_bytes(j->wt[k]->type, n_out);
    }
    c->sp_stats.attn_total += j->n_in;
    c->sp_stats.attn_active += j->active;
}

static const float *bias_data(const sf_gguf_tensor *t) { return t ? t->data : NULL; }

void sf_sparse_attn_in(sf_context *c, const sf_layer *L, int il, int t) {
    const sf_sparse_layer *S = &c->sparse->layers[il];
    const sf_model *m = c->model;
    const int64_t nq = (int64_t)L->n_head * m->head_dim_k, nk = (int64_t)L->n_head_kv * m->head_dim_k,
                  nv = (int64_t)L->n_head_kv * m->head_dim_v;
    attn_job j = {.c = c, .rule = &S->site[SF_SITE_ATTN_IN], .x = c->xn + (size_t)t * m->n_embd, .n_in = m->n_embd,
                  .n = 3, .wt = {S->q_t, S->k_t, S->v_t}};
    float *const out[3] = {c->q + t * nq, c->k + t * nk, c->v + t * nv};
    const float *const bias[3] = {bias_data(L->bq), bias_data(L->bk), bias_data(L->bv)};
    attn_product(c, &j, out, bias);
}

void sf_sparse_attn_out(sf_context *c, const sf_layer *L, int il, int t, float *o) {
    const sf_sparse_layer *S = &c->sparse->layers[il];
    const int n_att = L->n_head * c->model->head_dim_v;
    attn_job j = {.c = c, .rule = &S->site[SF_SITE_ATTN_OUT], .x = c->att + (size_t)t * n_att, .n_in = n_att, .n = 1,
                  .wt = {S->o_t}};
    float *const out[1] = {o};
    const float *const bias[1] = {NULL};
    attn_product(c, &j, out, bias);
}
