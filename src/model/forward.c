/* The forward pass: executes the layer plan, under a run plan, over a
 * batch of T tokens. Read from the bottom up: sf_forward_part runs the
 * layers; layer_forward is one block (attention then FFN, each routed to the
 * tokens the plan sends through it); attention_sublayer and ffn_sublayer are
 * the math, x += post_norm(sublayer(norm(x))); each of their steps is one
 * parallel region of the thread pool (one barrier), defined above them.
 *
 * Activations are quantized once per distinct input to the weight type's
 * vec_dot_type, as ggml does, so numerics track llama.cpp. */
#include <math.h>
#include <string.h>

#include "base/error.h"
#include "model/attention.h"
#include "model/context.h"
#include "model/debug_dump.h"
#include "model/forward_impl.h"
#include "model/ops.h"
#include "route/route_run.h"
#include "sparse/sparse.h"
#include "tensor/types.h"

typedef struct {
    sf_context *c;
    const sf_layer *L;
    int T;
    /* matmul regions: up to 3 matrices sharing the job, rows concatenated */
    int n_mats;
    sf_matrix mats[3];
    float *outs[3];
    int64_t out_stride[3];
    bool accumulate;
    int act_kind[3];
    const float *bias[3];    /* [n_out] added to each output row, or NULL */
    /* row-wise regions */
    const float *src;        /* [T][src_n] */
    int src_n;
    const float *norm_w;     /* norm weight for the row op, or NULL */
    uint32_t quant_kinds;    /* bit mask of SF_ACT_* to produce from the normed rows */
    int t0;                  /* first token for the final norm */
    bool keep_gate;          /* gate/up: h into hb2, the gate pre-activations kept in hb */
    bool kv_only;            /* RoPE/store: K and V only (no queries computed) */
} sf_job;

static int act_kind(sf_type vec_dot_type) {
    switch (vec_dot_type) {
    case SF_TYPE_F16: return SF_ACT_F16;
    case SF_TYPE_BF16: return SF_ACT_BF16;
    case SF_TYPE_Q8_0: return SF_ACT_Q8_0;
    case SF_TYPE_Q8_1: return SF_ACT_Q8_1;
    case SF_TYPE_Q8_K: return SF_ACT_Q8_K;
    default: return SF_ACT_F32;
    }
}

static const sf_type g_kind_type[SF_ACT_KINDS] = {SF_TYPE_F32, SF_TYPE_F16, SF_TYPE_BF16,
                                                  SF_TYPE_Q8_0, SF_TYPE_Q8_1, SF_TYPE_Q8_K};

sf_matrix sf_fw_matrix_of(const sf_gguf_tensor *t) {
    sf_matrix m = {t->data, t->type, t->ne[0], t->ne[1], 0, 0};
    return m;
}

static const float *bias_of(const sf_gguf_tensor *t) { return t ? t->data : NULL; }

int sf_fw_weight_kind(const sf_gguf_tensor *t) { return act_kind(sf_type_ref(t->type)->vec_dot_type); }

/* Quantizes row t of src[n] into every activation kind in `kinds`. */
static void quantize_row(sf_context *c, const float *row, int n, int t, uint32_t kinds) {
    for (int k = 0; k < SF_ACT_KINDS; k++) {
        if (!(kinds & (1u << k))) continue;
        uint8_t *dst = (uint8_t *)c->act.buf[k] + (size_t)t * c->act.stride[k];
        if (k == SF_ACT_F32) memcpy(dst, row, sizeof(float) * (size_t)n);
        else sf_type_fast(g_kind_type[k])->quantize(row, dst, n);
    }
}

/* ---- regions ---- */

static void region_embed(void *arg, int ith, int nth) {
    sf_job *j = arg;
    sf_context *c = j->c;
    const sf_model *m = c->model;
    const sf_type_traits *tr = sf_type_fast(m->token_embd->type);
    const size_t row_bytes = sf_type_row_bytes(m->token_embd->type, m->n_embd);
    int64_t t0, t1;
    sf_split_range(j->T, ith, nth, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        float *x = c->x + t * m->n_embd;
        tr->dequantize((const uint8_t *)m->token_embd->data + (size_t)c->tokens[t] * row_bytes, x, m->n_embd);
        if (m->embd_scale != 1.0f)
            for (int i = 0; i < m->n_embd; i++) x[i] *= m->embd_scale;
    }
}

/* xn = norm(x) for tokens [t0, T), quantized into the kinds the next
 * matmuls need. */
static void region_norm_quant(void *arg, int ith, int nth) {
    sf_job *j = arg;
    sf_context *c = j->c;
    const sf_model *m = c->model;
    const int E = m->n_embd;
    int64_t t0, t1;
    sf_split_range(j->T - j->t0, ith, nth, 1, &t0, &t1);
    for (int64_t i = t0; i < t1; i++) {
        const float *x = c->x + (i + j->t0) * E;
        float *xn = c->xn + i * E;
        sf_rmsnorm(xn, x, j->norm_w, E, m->norm_eps);
        quantize_row(c, xn, E, (int)i, j->quant_kinds);
    }
}

/* x += norm(tmp): a sub-block's output through its post-norm, into the residual. */
static void region_post_norm_residual(void *arg, int ith, int nth) {
    sf_job *j = arg;
    sf_context *c = j->c;
    const sf_model *m = c->model;
    const int E = m->n_embd;
    int64_t t0, t1;
    sf_split_range(j->T, ith, nth, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        float *x = c->x + t * E, *o = c->tmp + t * E;
        sf_rmsnorm(o, o, j->norm_w, E, m->norm_eps);
        for (int e = 0; e < E; e++) x[e] += o[e];
    }
}

static void region_matmul(void *arg, int ith, int nth) {
    sf_job *j = arg;
    sf_context *c = j->c;
    int64_t total = 0;
    for (int i = 0; i < j->n_mats; i++) total += j->mats[i].n_out;
    int64_t r0, r1;
    sf_split_range(total, ith, nth, 8, &r0, &r1);
    int64_t base = 0;
    for (int i = 0; i < j->n_mats; i++) {
        const int64_t n = j->mats[i].n_out;
        const int64_t a = r0 > base ? r0 - base : 0, b = r1 - base < n ? r1 - base : n;
        if (a < b) {
            sf_matmul_rows(&j->mats[i], c->act.buf[j->act_kind[i]], c->act.stride[j->act_kind[i]], j->T,
                           j->outs[i], j->out_stride[i], j->accumulate, a, b);
            if (j->bias[i])
                for (int t = 0; t < j->T; t++)
                    for (int64_t r = a; r < b; r++) j->outs[i][t * j->out_stride[i] + r] += j->bias[i][r];
        }
        base += n;
    }
}

/* q/k norms (gemma3), RoPE at each token's position, and K/V stored as f16
 * in the cells the tokens were given (c->cell). */
static void region_rope_store(void *arg, int ith, int nth) {
    sf_job *j = arg;
    sf_context *c = j->c;
    const sf_model *m = c->model;
    const sf_layer *L = j->L;
    const int hk = m->head_dim_k, hv = m->head_dim_v;
    const int h0 = j->kv_only ? L->n_head : 0, heads = L->n_head + L->n_head_kv - h0;
    float cs[1024]; /* n_rot <= head_dim_k <= 1024 */
    int64_t i0, i1;
    sf_split_range((int64_t)j->T * heads, ith, nth, 1, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const int t = (int)(i / heads), h = h0 + (int)(i % heads);
        const int p = c->pos[t];
        sf_rope_table(cs, m->n_rot, p, L->rope_base, m->rope_freq_scale, c->rope_factors, m->rope_attn_factor);
        if (h < L->n_head) {
            float *q = c->q + ((size_t)t * L->n_head + h) * hk;
            if (L->q_norm) sf_rmsnorm(q, q, L->q_norm->data, hk, m->norm_eps);
            sf_rope_apply(q, cs, m->n_rot, m->rope_type);
            if (m->attn_q_prescale)
                for (int d = 0; d < hk; d++) q[d] *= m->attn_scale;
        } else {
            const int kh = h - L->n_head;
            float *k = c->k + ((size_t)t * L->n_head_kv + kh) * hk;
            if (L->k_norm) sf_rmsnorm(k, k, L->k_norm->data, hk, m->norm_eps);
            sf_rope_apply(k, cs, m->n_rot, m->rope_type);
            const size_t cell = (size_t)c->cell[t];
            sf_fp16 *kc = c->k_cache[L->kv_slot] + (cell * L->n_head_kv + kh) * hk;
            for (int d = 0; d < hk; d++) kc[d] = sf_fp32_to_fp16(k[d]);
            const float *v = c->v + ((size_t)t * L->n_head_kv + kh) * hv;
            sf_fp16 *vc = c->v_cache[L->kv_slot] + (cell * L->n_head_kv + kh) * hv;
            for (int d = 0; d < hv; d++) vc[d] = sf_fp32_to_fp16(v[d]);
        }
    }
}

/* Causal (optionally sliding-window) attention: token t over cells
 * [cell_lo[t], cell[t]] of its layer. VEC path: one work unit per
 * (token, head); TILED path: per (KV head, block of tokens), so the KV tiles
 * are converted once for all the query heads that share them. */
static void region_attention(void *arg, int ith, int nth) {
    sf_job *j = arg;
    sf_context *c = j->c;
    const sf_model *m = c->model;
    const sf_layer *L = j->L;
    const int group = L->n_head / L->n_head_kv;
    sf_attn_args a = {.k = c->k_cache[L->kv_slot], .v = c->v_cache[L->kv_slot], .kv_stride = L->n_head_kv,
                      .head_dim_k = m->head_dim_k, .head_dim_v = m->head_dim_v,
                      .scale = m->attn_q_prescale ? 1.0f : m->attn_scale};
    sf_attn_plan(&a, j->T, c->cell[j->T - 1], c->n_threads);
    float *work = c->attn_work + (size_t)ith * c->attn_work_floats;
    const int q_stride = L->n_head * m->head_dim_k, o_stride = L->n_head * m->head_dim_v;
    if (a.path == SF_ATTN_TILED) {
        const int n_blocks = (j->T + SF_ATTN_ITEM_TOKENS - 1) / SF_ATTN_ITEM_TOKENS;
        int64_t i0, i1;
        sf_split_range((int64_t)n_blocks * L->n_head_kv, ith, nth, 1, &i0, &i1);
        for (int64_t i = i0; i < i1; i++) {
            const int blk = (int)(i / L->n_head_kv), kh = (int)(i % L->n_head_kv);
            const int t0 = blk * SF_ATTN_ITEM_TOKENS;
            const sf_attn_item it = {.q = c->q, .q_stride = q_stride, .out = c->att, .out_stride = o_stride,
                                     .cell = c->cell, .lo = c->cell_lo, .t0 = t0,
                                     .t1 = t0 + SF_ATTN_ITEM_TOKENS < j->T ? t0 + SF_ATTN_ITEM_TOKENS : j->T,
                                     .h0 = kh * group, .n_h = group, .kh = kh};
            sf_attention_tiled(&a, &it, work);
        }
        return;
    }
    int64_t i0, i1;
    sf_split_range((int64_t)j->T * L->n_head, ith, nth, 1, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const int t = (int)(i / L->n_head), h = (int)(i % L->n_head);
        sf_attention_head(&a, c->q + (size_t)t * q_stride + (size_t)h * m->head_dim_k, h / group, c->cell_lo[t],
                          c->cell[t], work,
                          c->att + (size_t)t * o_stride + (size_t)h * m->head_dim_v);
    }
}

static void region_quant_rows(void *arg, int ith, int nth) {
    sf_job *j = arg;
    int64_t t0, t1;
    sf_split_range(j->T, ith, nth, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) quantize_row(j->c, j->src + t * j->src_n, j->src_n, (int)t, j->quant_kinds);
}

/* gate and up rows of this thread's slice, then h = act(gate) * up. */
static void region_gate_up(void *arg, int ith, int nth) {
    sf_job *j = arg;
    sf_context *c = j->c;
    const sf_layer *L = j->L;
    const int F = L->n_ff;
    int64_t r0, r1;
    sf_split_range(F, ith, nth, 8, &r0, &r1);
    if (r0 >= r1) return;
    for (int i = 0; i < 2; i++)
        sf_matmul_rows(&j->mats[i], c->act.buf[j->act_kind[i]], c->act.stride[j->act_kind[i]], j->T,
                       i == 0 ? c->hb : c->hb2, F, false, r0, r1);
    float *h = j->keep_gate ? c->hb2 : c->hb;
    for (int t = 0; t < j->T; t++)
        sf_glu(h + (size_t)t * F, c->hb + (size_t)t * F, c->hb2 + (size_t)t * F, (int)r0, (int)r1, F,
               c->model->ffn_act);
}

/* ---- steps: one parallel region each ---- */

/* One parallel region, or, in a serial shadow context, the same work on the
 * calling thread. */
void sf_fw_run_region(sf_context *c, sf_pool_fn fn, void *job) {
    if (c->serial) fn(job, 0, 1);
    else sf_pool_run(c->pool, fn, job);
}

/* Activation kinds the matmuls with these weights read (NULLs ignored). */
uint32_t sf_fw_kinds_for(const sf_gguf_tensor *a, const sf_gguf_tensor *b, const sf_gguf_tensor *c) {
    uint32_t k = 0;
    if (a) k |= 1u << sf_fw_weight_kind(a);
    if (b) k |= 1u << sf_fw_weight_kind(b);
    if (c) k |= 1u << sf_fw_weight_kind(c);
    return k;
}

/* xn = norm(x), quantized for the next matmuls. */
void sf_fw_norm_quantize(sf_context *c, int T, const sf_gguf_tensor *norm, uint32_t kinds) {
    sf_job j = {.c = c, .T = T, .norm_w = norm->data, .quant_kinds = kinds};
    sf_fw_run_region(c, region_norm_quant, &j);
}

/* src [T][n] quantized for the next matmul. */
void sf_fw_quantize(sf_context *c, int T, const float *src, int n, uint32_t kinds) {
    sf_job j = {.c = c, .T = T, .src = src, .src_n = n, .quant_kinds = kinds};
    sf_fw_run_region(c, region_quant_rows, &j);
}

/* out (+)= W · a for the T quantized activation rows. ggml_rows: see
 * ggml_ffn_rows (T for every other matmul). */
void sf_fw_matmul(sf_context *c, int T, const sf_gguf_tensor *w, float *out, int64_t out_stride, bool accumulate,
                   int ggml_rows) {
    sf_job j = {.c = c, .T = T, .n_mats = 1, .accumulate = accumulate};
    j.mats[0] = sf_fw_matrix_of(w);
    j.mats[0].ggml_batch = ggml_rows;
    j.mats[0].ggml_first = T - ggml_rows;
    j.outs[0] = out;
    j.out_stride[0] = out_stride;
    j.act_kind[0] = sf_fw_weight_kind(w);
    sf_fw_run_region(c, region_matmul, &j);
}

/* x += post_norm(tmp). */
void sf_fw_post_norm_residual(sf_context *c, int T, const sf_gguf_tensor *post_norm) {
    sf_job j = {.c = c, .T = T, .norm_w = post_norm->data};
    sf_fw_run_region(c, region_post_norm_residual, &j);
}

/* Where a sub-layer writes its output o: straight into x, the matmul adding
 * it (x += o), or, with a post-norm, into tmp for x += norm(o). */
float *sf_fw_sublayer_out(sf_context *c, const sf_gguf_tensor *post_norm) { return post_norm ? c->tmp : c->x; }

/* Developer aid (SF_DUMP_DIR, debug_dump.h): tensor `name` of layer L, named
 * as in llama.cpp's graph. */
static void trace(const sf_context *c, const sf_layer *L, const char *name, const float *x, int T, int n) {
    sf_debug_dump(name, (int)(L - c->model->layers), x, T, n, (size_t)n);
}

/* ---- the pass ---- */

/* One forward pass: its plan and where this batch sits in the call. */
typedef struct {
    const sf_run_plan *plan; /* never NULL: a zero plan is the dense pass */
    int T;                   /* tokens of this batch */
    int n_out;               /* logits wanted for its last n_out tokens */
    int t_first, n_tokens;   /* the batch is tokens [t_first, t_first + T) of a call of n_tokens */
} pass;

/* llama.cpp order (exact mode): the rows llama.cpp runs an FFN's matmuls
 * with. It drops the tokens whose logits are not wanted before the last
 * layer's FFN, and the row count picks its kernel. */
static int ggml_ffn_rows(const sf_context *c, const pass *ps, const sf_layer *L, int T) {
    const bool last = L == &c->model->layers[c->model->n_layer - 1];
    return last && T == ps->T && ps->n_out > 0 ? ps->n_out : T;
}

/* x += post_norm(Wo · softmax(RoPE(Wq h) · RoPE(Wk h)ᵀ · scale) · Wv h), h = norm(x);
 * deci's linear attention: x += Wo · norm(x). */
static void attention_sublayer(sf_context *c, const sf_layer *L, const pass *ps, int T) {
    const sf_model *m = c->model;
    const int E = m->n_embd, il = (int)(L - m->layers);
    float *o = sf_fw_sublayer_out(c, L->attn_post_norm);
    if (L->attn == SF_ATTN_LINEAR) {
        sf_fw_norm_quantize(c, T, L->attn_norm, sf_fw_kinds_for(L->wo, NULL, NULL));
        sf_fw_matmul(c, T, L->wo, o, E, o == c->x, T);
    } else {
        /* rows the side-car runs sparse (TEAL --attention), and how many */
        const sf_sparse_layer *S = c->sparse ? &c->sparse->layers[il] : NULL;
        const bool sp_in = S && S->site[SF_SITE_ATTN_IN].on, sp_out = S && S->site[SF_SITE_ATTN_OUT].on;
        bool *sparse_row = c->sp_not_dense;
        int n_sparse = 0;
        for (int t = 0; (sp_in || sp_out) && t < T; t++)
            n_sparse += sparse_row[t] = ps->T <= c->sparse_max_batch || c->pos[t] >= c->sparse_min_pos;
        sf_fw_norm_quantize(c, T, L->attn_norm, sf_fw_kinds_for(L->wq, L->wk, L->wv));
        /* q, k, v = Wq h + bq, Wk h + bk, Wv h + bv: one region */
        if (!sp_in || n_sparse < T) {
            sf_job jqkv = {.c = c, .T = T, .n_mats = 3,
                           .mats = {sf_fw_matrix_of(L->wq), sf_fw_matrix_of(L->wk), sf_fw_matrix_of(L->wv)},
                           .outs = {c->q, c->k, c->v},
                           .out_stride = {(int64_t)L->n_head * m->head_dim_k, (int64_t)L->n_head_kv * m->head_dim_k,
                                          (int64_t)L->n_head_kv * m->head_dim_v},
                           .act_kind = {sf_fw_weight_kind(L->wq), sf_fw_weight_kind(L->wk), sf_fw_weight_kind(L->wv)},
                           .bias = {bias_of(L->bq), bias_of(L->bk), bias_of(L->bv)}};
            sf_fw_run_region(c, region_matmul, &jqkv);
        }
        for (int t = 0; sp_in && t < T; t++)
            if (sparse_row[t]) sf_sparse_attn_in(c, L, il, t);
        /* the KV cells these tokens write and see */
        sf_kv_cells_append(&c->kv_cells[L->kv_slot], c->pos, T, L->swa ? m->n_swa : 0, c->cell, c->cell_lo);
        sf_job j = {.c = c, .L = L, .T = T};
        sf_fw_run_region(c, region_rope_store, &j);
        sf_fw_run_region(c, region_attention, &j);
        trace(c, L, "attn_norm", c->xn, T, E);
        trace(c, L, "Qcur", c->q, T, L->n_head * m->head_dim_k);
        trace(c, L, "kqv_out", c->att, T, L->n_head * m->head_dim_v);
        const int n_att = L->n_head * m->head_dim_v;
        if (ps->plan->on_attn) ps->plan->on_attn(ps->plan->user, il, c->row_token, T, c->xn, c->att, n_att);
        if (!sp_out || n_sparse == 0) {
            sf_fw_quantize(c, T, c->att, n_att, sf_fw_kinds_for(L->wo, NULL, NULL));
            sf_fw_matmul(c, T, L->wo, o, E, o == c->x, T);
        } else {
            /* Wo into tmp: dense rows as a batch, sparse rows one by one; then x += tmp unless a post-norm does it */
            if (n_sparse < T) {
                sf_fw_quantize(c, T, c->att, n_att, sf_fw_kinds_for(L->wo, NULL, NULL));
                sf_fw_matmul(c, T, L->wo, c->tmp, E, false, T);
            }
            for (int t = 0; t < T; t++)
                if (sparse_row[t]) sf_sparse_attn_out(c, L, il, t, c->tmp + (size_t)t * E);
            if (o == c->x)
                for (size_t i = 0; i < (size_t)T * E; i++) c->x[i] += c->tmp[i];
        }
    }
    if (L->attn_post_norm) {
        trace(c, L, "attn_out", c->tmp, T, E);
        sf_fw_post_norm_residual(c, T, L->attn_post_norm);
    }
}

/* K, V = RoPE(Wk h + bk), Wv h + bv stored for tokens that skip the block
 * but keep their KV entry there (KV-preserving routing), h = norm(x). */
static void kv_only_sublayer(sf_context *c, const sf_layer *L, int T) {
    const sf_model *m = c->model;
    sf_fw_norm_quantize(c, T, L->attn_norm, sf_fw_kinds_for(L->wk, L->wv, NULL));
    sf_job jkv = {.c = c, .T = T, .n_mats = 2, .mats = {sf_fw_matrix_of(L->wk), sf_fw_matrix_of(L->wv)},
                  .outs = {c->k, c->v},
                  .out_stride = {(int64_t)L->n_head_kv * m->head_dim_k, (int64_t)L->n_head_kv * m->head_dim_v},
                  .act_kind = {sf_fw_weight_kind(L->wk), sf_fw_weight_kind(L->wv)},
                  .bias = {bias_of(L->bk), bias_of(L->bv)}};
    sf_fw_run_region(c, region_matmul, &jkv);
    sf_kv_cells_append(&c->kv_cells[L->kv_slot], c->pos, T, L->swa ? m->n_swa : 0, c->cell, c->cell_lo);
    sf_job j = {.c = c, .L = L, .T = T, .kv_only = true};
    sf_fw_run_region(c, region_rope_store, &j);
}

/* x += post_norm(W_down · (act(W_gate h) ⊙ W_up h)), h = norm(x). */
static void ffn_sublayer(sf_context *c, const sf_layer *L, const pass *ps, int T) {
    const sf_model *m = c->model;
    const int E = m->n_embd, rows = ggml_ffn_rows(c, ps, L, T);
    float *o = sf_fw_sublayer_out(c, L->ffn_post_norm);
    sf_fw_norm_quantize(c, T, L->ffn_norm, sf_fw_kinds_for(L->ffn_gate, L->ffn_up, NULL));
    /* hb = act(W_gate h) ⊙ W_up h, each thread on its slice of neurons */
    sf_job j = {.c = c, .L = L, .T = T, .n_mats = 2, .mats = {sf_fw_matrix_of(L->ffn_gate), sf_fw_matrix_of(L->ffn_up)},
                .act_kind = {sf_fw_weight_kind(L->ffn_gate), sf_fw_weight_kind(L->ffn_up)}};
    for (int i = 0; i < 2; i++) {
        j.mats[i].ggml_batch = rows;
        j.mats[i].ggml_first = T - rows;
    }
    j.keep_gate = ps->plan->on_ffn != NULL;
    sf_fw_run_region(c, region_gate_up, &j);
    if (ps->plan->on_ffn) {
        ps->plan->on_ffn(ps->plan->user, (int)(L - m->layers), c->row_token, T, c->xn, c->hb, c->hb2, L->n_ff);
        memcpy(c->hb, c->hb2, sizeof(float) * (size_t)T * L->n_ff);
    }
    if (ps->plan->ffn_hidden)
        ps->plan->ffn_hidden(ps->plan->user, (int)(L - m->layers), c->row_token, T, c->hb, L->n_ff);
    trace(c, L, "ffn_glu", c->hb, T, L->n_ff);
    trace(c, L, "ffn_norm", c->xn, T, E);
    trace(c, L, "ffn_inp", c->x, T, E); /* llama's name for the residual entering the FFN */
    trace(c, L, "sa_out", c->x, T, E);  /* gemma3's */
    sf_fw_quantize(c, T, c->hb, L->n_ff, sf_fw_kinds_for(L->ffn_down, NULL, NULL));
    sf_fw_matmul(c, T, L->ffn_down, o, E, o == c->x, rows);
    if (L->ffn_post_norm) {
        trace(c, L, "ffn_out", c->tmp, T, E);
        sf_fw_post_norm_residual(c, T, L->ffn_post_norm);
    }
}

typedef void sublayer_fn(sf_context *c, const sf_layer *L, const pass *ps, int T);

/* Runs a sub-layer for the tokens of the batch that do not skip it (skip:
 * [T], or NULL: all run). When some skip, the others' rows are gathered into
 * one contiguous batch, run, and scattered back; a token that skips keeps
 * its residual stream. c->row_token maps the rows run to tokens of the call. */
static void routed(sf_context *c, const pass *ps, const sf_layer *L, const bool *skip, sublayer_fn *fn) {
    int n = 0;
    for (int t = 0; t < ps->T; t++)
        if (!skip || !skip[t]) c->row_token[n++] = ps->t_first + t;
    if (n == ps->T) {
        fn(c, L, ps, n);
        return;
    }
    if (n == 0) return;
    const size_t E = (size_t)c->model->n_embd;
    for (int i = 0; i < n; i++) {
        const int t = c->row_token[i] - ps->t_first;
        memcpy(c->x_gather + i * E, c->x + t * E, sizeof(float) * E);
        c->pos_gather[i] = c->pos[t];
    }
    float *x = c->x;
    int *pos = c->pos;
    c->x = c->x_gather;
    c->pos = c->pos_gather;
    fn(c, L, ps, n);
    c->x = x;
    c->pos = pos;
    for (int i = 0; i < n; i++)
        memcpy(c->x + (c->row_token[i] - ps->t_first) * E, c->x_gather + i * E, sizeof(float) * E);
}

/* The plan's per-token mask of layer il for this batch, or NULL. */
static const bool *batch_mask(const pass *ps, const bool *mask, int il) {
    return mask ? mask + (size_t)il * ps->n_tokens + ps->t_first : NULL;
}

/* The FFN of layer il for the tokens that do not skip it: the dense
 * sub-layer as one batch, and, where the context uses a side-car that makes
 * this layer sparse, each token its policy picks through the sparse one. */
static void ffn_step(sf_context *c, const pass *ps, const sf_layer *L, int il, const bool *skip) {
    const sf_sparse_layer *S = c->sparse ? &c->sparse->layers[il] : NULL;
    if (!S || !(S->site[SF_SITE_FFN_IN].on || S->site[SF_SITE_FFN_HIDDEN].on)) {
        routed(c, ps, L, skip, ffn_sublayer);
        return;
    }
    bool *not_dense = c->sp_not_dense; /* skips the dense batch: skipped, or sparse */
    for (int t = 0; t < ps->T; t++)
        not_dense[t] = (skip && skip[t]) || ps->T <= c->sparse_max_batch || c->pos[t] >= c->sparse_min_pos;
    routed(c, ps, L, not_dense, ffn_sublayer);
    float *x = c->x;
    for (int t = 0; t < ps->T; t++) {
        if (!not_dense[t] || (skip && skip[t])) continue;
        c->x = x + (size_t)t * c->model->n_embd;
        sf_sparse_ffn_token(c, L, il);
    }
    c->x = x;
}

static void show(sf_context *c, const pass *ps, int il, sf_stage stage) {
    if (ps->plan->on_stage) ps->plan->on_stage(ps->plan->user, il, stage, c->x, ps->T);
}

/* The attention of a routed block for the tokens its router picked (skip:
 * the others). KV-preserving, the others still store K/V here: alone, only
 * that; in a batch with running tokens, the whole sub-layer runs (their
 * K/V in position order with the rest) and their residual rows are put
 * back (c->route_x_in holds the block input). */
static void routed_attention(sf_context *c, const pass *ps, const sf_layer *L, const bool *skip, int n_run) {
    const int T = ps->T;
    const size_t E = (size_t)c->model->n_embd;
    if (c->route_policy.kv != SF_ROUTE_KV_PRESERVE || L->attn != SF_ATTN_DENSE || n_run == T) {
        routed(c, ps, L, skip, attention_sublayer);
    } else if (n_run == 0) {
        kv_only_sublayer(c, L, T);
    } else {
        routed(c, ps, L, NULL, attention_sublayer);
        for (int t = 0; t < T; t++)
            if (skip[t]) memcpy(c->x + t * E, c->route_x_in + t * E, sizeof(float) * E);
    }
}

/* A routed block (Mixture-of-Depths): x + f(x) (or x + r·f(x) when the
 * policy scales by the router score r) for the tokens the router picks, x
 * for the others; f is attention then FFN among the picked tokens. */
static void routed_block(sf_context *c, const pass *ps, const sf_layer *L, int il) {
    const sf_run_plan *p = ps->plan;
    const int T = ps->T;
    const size_t E = (size_t)c->model->n_embd;
    sf_route_decide(c, il, T);
    const bool *skip = c->route_skip;
    int n_run = 0;
    for (int t = 0; t < T; t++) n_run += !skip[t];
    const bool scale = c->route_policy.scale;
    if (scale || c->route_policy.kv == SF_ROUTE_KV_PRESERVE) memcpy(c->route_x_in, c->x, sizeof(float) * T * E);
    if (L->attn != SF_ATTN_NONE && !(p->drop_attn && p->drop_attn[il])) routed_attention(c, ps, L, skip, n_run);
    show(c, ps, il, SF_STAGE_AFTER_ATTN);
    if (L->ffn != SF_FFN_NONE && !(p->drop_ffn && p->drop_ffn[il])) ffn_step(c, ps, L, il, skip);
    for (int t = 0; scale && t < T; t++) {
        if (skip[t]) continue;
        float *x = c->x + t * E;
        const float *x0 = c->route_x_in + t * E, r = c->route_score[t];
        for (size_t e = 0; e < E; e++) x[e] = x0[e] + r * (x[e] - x0[e]);
    }
}

/* One block: attention then FFN, each for the tokens the plan (or the
 * block's router) sends through it. */
static void layer_forward(sf_context *c, const pass *ps, int il) {
    const sf_layer *L = &c->model->layers[il];
    const sf_run_plan *p = ps->plan;
    show(c, ps, il, SF_STAGE_INPUT);
    if (c->routes && c->routes->layers[il].dropped) {
        /* statically pruned: no token runs it */
    } else if (sf_route_layer_of(c, il)) {
        routed_block(c, ps, L, il);
        show(c, ps, il, SF_STAGE_OUTPUT);
        return;
    } else {
        if (L->attn != SF_ATTN_NONE && !(p->drop_attn && p->drop_attn[il]))
            routed(c, ps, L, batch_mask(ps, p->skip_attn, il), attention_sublayer);
    }
    show(c, ps, il, SF_STAGE_AFTER_ATTN);
    if (L->ffn != SF_FFN_NONE && !(p->drop_ffn && p->drop_ffn[il]) && !(c->routes && c->routes->layers[il].dropped))
        ffn_step(c, ps, L, il, batch_mask(ps, p->skip_ffn, il));
    show(c, ps, il, SF_STAGE_OUTPUT);
}

typedef struct {
    sf_context *c;
    const pass *ps;
    int first, n; /* group layers first .. first + n - 1 */
} group_job;

/* Members ith, ith + nth, ... of a parallel group, each whole on one
 * thread in its shadow context, from the group's input x0. */
static void region_group(void *arg, int ith, int nth) {
    group_job *g = arg;
    sf_context *c = g->c;
    const sf_run_plan *p = g->ps->plan;
    const int T = g->ps->T;
    for (int k = ith; k < g->n; k += nth) {
        sf_context *s = &c->shadow[k];
        const int il = g->first + k;
        const sf_layer *L = &c->model->layers[il];
        memcpy(s->x, c->x0, sizeof(float) * (size_t)T * c->model->n_embd);
        if (L->attn != SF_ATTN_NONE && !(p->drop_attn && p->drop_attn[il])) attention_sublayer(s, L, g->ps, T);
        if (L->ffn != SF_FFN_NONE && !(p->drop_ffn && p->drop_ffn[il])) ffn_sublayer(s, L, g->ps, T);
    }
}

/* A parallel group: every member reads the group's input x0, then
 * x = x0 + Σ (member output − x0), summed in layer order. */
static void group_forward(sf_context *c, const pass *ps, int first, int last) {
    const size_t n = (size_t)ps->T * c->model->n_embd;
    show(c, ps, first, SF_STAGE_INPUT);
    memcpy(c->x0, c->x, sizeof(float) * n);
    group_job g = {.c = c, .ps = ps, .first = first, .n = last - first + 1};
    sf_pool_run(c->pool, region_group, &g);
    memset(c->xsum, 0, sizeof(float) * n);
    for (int k = 0; k < g.n; k++)
        for (size_t e = 0; e < n; e++) c->xsum[e] += c->shadow[k].x[e] - c->x0[e];
    for (size_t e = 0; e < n; e++) c->x[e] = c->x0[e] + c->xsum[e];
    show(c, ps, last, SF_STAGE_OUTPUT);
}

/* logits = W_out · norm(x) for the last n_out tokens, soft-capped where the model says so. */
static void lm_head(sf_context *c, int T, int n_out) {
    const sf_model *m = c->model;
    sf_job jn = {.c = c, .T = T, .t0 = T - n_out, .norm_w = m->output_norm->data,
                 .quant_kinds = sf_fw_kinds_for(m->output, NULL, NULL)};
    sf_pool_run(c->pool, region_norm_quant, &jn);
    sf_fw_matmul(c, n_out, m->output, c->logits, m->n_vocab, false, n_out);
    if (m->final_logit_softcap > 0.0f) {
        const float cap = m->final_logit_softcap;
        for (int64_t i = 0; i < (int64_t)n_out * m->n_vocab; i++) c->logits[i] = tanhf(c->logits[i] / cap) * cap;
    }
}

/* What a plan may not ask of this model. */
static int check_plan(const sf_context *c, const sf_run_plan *p, int start, int end) {
    const sf_model *m = c->model;
    if (start < 0 || start >= m->n_layer || (start > 0 && !p->x_start))
        return sf_fail(SF_ERR_ARG, "run plan: start layer %d is not one of the %d layers, or has no input", start,
                       m->n_layer);
    if (end <= start || end > m->n_layer)
        return sf_fail(SF_ERR_ARG, "run plan: end layer %d is not after start layer %d (of %d)", end, start,
                       m->n_layer);
    if (c->routes && (p->skip_attn || p->skip_ffn))
        return sf_fail(SF_ERR_UNSUPPORTED, "run plan: per-token skip masks cannot be combined with routers");
    for (int il = start; il < end; il++) {
        const sf_layer *L = &m->layers[il];
        if (L->group_first == L->group_last) continue;
        if (L->group_first < start || L->group_last >= end)
            return sf_fail(SF_ERR_ARG, "run plan: layers %d-%d cut the parallel group %d-%d", start, end - 1,
                           L->group_first, L->group_last);
        if (p->skip_attn || p->skip_ffn || p->ffn_hidden || p->on_ffn)
            return sf_fail(SF_ERR_UNSUPPORTED,
                           "run plan: per-token routing and FFN hooks are not supported in parallel groups "
                           "(layers %d-%d)", L->group_first, L->group_last);
    }
    return SF_OK;
}

int sf_forward(sf_context *c, const int32_t *tokens, int T, int logits_from, const sf_run_plan *plan) {
    return sf_forward_part(c, tokens, T, logits_from, plan, 0, T);
}

int sf_forward_part(sf_context *c, const int32_t *tokens, int T, int logits_from, const sf_run_plan *plan, int t_first,
                    int n_tokens) {
    static const sf_run_plan dense;
    const sf_model *m = c->model;
    const sf_run_plan *p = plan ? plan : &dense;
    const int start = p->start_layer, end = p->end_layer > 0 ? p->end_layer : m->n_layer;
    int rc = check_plan(c, p, start, end);
    if (rc) return rc;
    const pass ps = {.plan = p, .T = T, .n_out = T - logits_from, .t_first = t_first, .n_tokens = n_tokens};

    for (int t = 0; t < T; t++) {
        c->tokens[t] = tokens[t];
        c->pos[t] = c->n_past + t;
    }
    /* cells of positions >= n_past are stale (a pass that did not advance n_past) */
    for (int s = 0; s < m->n_kv_layers; s++) sf_kv_cells_truncate(&c->kv_cells[s], c->n_past);
    if (start > 0) memcpy(c->x, p->x_start, sizeof(float) * (size_t)T * m->n_embd);
    else {
        sf_job je = {.c = c, .T = T};
        sf_pool_run(c->pool, region_embed, &je);
    }

    sf_route_map_begin(c, T);
    for (int il = start; il < end;) {
        const sf_layer *L = &m->layers[il];
        if (L->group_last > il) {
            group_forward(c, &ps, il, L->group_last);
            il = L->group_last + 1;
        } else {
            layer_forward(c, &ps, il);
            il++;
        }
    }

    c->n_logits = end == m->n_layer && ps.n_out > 0 ? ps.n_out : 0;
    if (c->n_logits > 0) lm_head(c, T, ps.n_out);
    return SF_OK;
}
