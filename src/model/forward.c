/* The forward pass: executes the layer plan over a batch of T tokens.
 * Each step is one parallel region of the thread pool (one barrier):
 *
 *   embed → per block: [norm+quantize → QKV → (q/k norm) RoPE + KV store →
 *   attention → quantize → Wo (+post-norm) + residual] [norm+quantize →
 *   gate/up + GLU → quantize → down (+post-norm) + residual] → norm → LM head
 *
 * Activations are quantized once per distinct input to the weight type's
 * vec_dot_type, as ggml does, so numerics track llama.cpp. */
#include <math.h>
#include <string.h>

#include "base/error.h"
#include "model/attention.h"
#include "model/context.h"
#include "model/debug_dump.h"
#include "model/ops.h"
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
    /* row-wise regions */
    const float *src;        /* [T][src_n] */
    int src_n;
    const float *norm_w;     /* norm weight for the row op, or NULL */
    uint32_t quant_kinds;    /* bit mask of SF_ACT_* to produce from the normed rows */
    int t0;                  /* first token for the final norm */
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

static sf_matrix matrix_of(const sf_gguf_tensor *t) {
    sf_matrix m = {t->data, t->type, t->ne[0], t->ne[1], 0, 0};
    return m;
}

static int weight_kind(const sf_gguf_tensor *t) { return act_kind(sf_type_ref(t->type)->vec_dot_type); }

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

/* Optional: x += post_norm(tmp) (the previous sub-block's output); then
 * xn = norm(x) and quantize xn into the kinds the next matmuls need. */
static void region_norm_quant(void *arg, int ith, int nth) {
    sf_job *j = arg;
    sf_context *c = j->c;
    const sf_model *m = c->model;
    const int E = m->n_embd;
    int64_t t0, t1;
    sf_split_range(j->T - j->t0, ith, nth, 1, &t0, &t1);
    for (int64_t i = t0; i < t1; i++) {
        const int64_t t = i + j->t0;
        float *x = c->x + t * E, *xn = c->xn + i * E;
        if (j->src) { /* pending sub-block output with post-norm */
            float *o = c->tmp + t * E;
            sf_rmsnorm(o, o, j->src, E, m->norm_eps);
            for (int e = 0; e < E; e++) x[e] += o[e];
        }
        if (!j->norm_w) continue;
        sf_rmsnorm(xn, x, j->norm_w, E, m->norm_eps);
        quantize_row(c, xn, E, (int)i, j->quant_kinds);
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
        if (a < b)
            sf_matmul_rows(&j->mats[i], c->act.buf[j->act_kind[i]], c->act.stride[j->act_kind[i]], j->T,
                           j->outs[i], j->out_stride[i], j->accumulate, a, b);
        base += n;
    }
}

/* q/k norms (gemma3), RoPE, and K/V appended to the cache as f16. */
static void region_rope_store(void *arg, int ith, int nth) {
    sf_job *j = arg;
    sf_context *c = j->c;
    const sf_model *m = c->model;
    const sf_layer *L = j->L;
    const int hk = m->head_dim_k, hv = m->head_dim_v;
    const int heads = L->n_head + L->n_head_kv;
    float cs[1024]; /* n_rot <= head_dim_k <= 1024 */
    int64_t i0, i1;
    sf_split_range((int64_t)j->T * heads, ith, nth, 1, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const int t = (int)(i / heads), h = (int)(i % heads);
        const int p = c->pos[t];
        sf_rope_table(cs, m->n_rot, p, L->rope_base, m->rope_freq_scale, m->rope_freq_factors);
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
            sf_fp16 *kc = c->k_cache[L->kv_slot] + ((size_t)p * L->n_head_kv + kh) * hk;
            for (int d = 0; d < hk; d++) kc[d] = sf_fp32_to_fp16(k[d]);
            const float *v = c->v + ((size_t)t * L->n_head_kv + kh) * hv;
            sf_fp16 *vc = c->v_cache[L->kv_slot] + ((size_t)p * L->n_head_kv + kh) * hv;
            for (int d = 0; d < hv; d++) vc[d] = sf_fp32_to_fp16(v[d]);
        }
    }
}

/* Causal (optionally sliding-window) attention. VEC path: one work unit per
 * (token, head); TILED path: per (KV head, block of tokens), so the KV tiles
 * are converted once for all the query heads that share them. */
static void region_attention(void *arg, int ith, int nth) {
    sf_job *j = arg;
    sf_context *c = j->c;
    const sf_model *m = c->model;
    const sf_layer *L = j->L;
    const int group = L->n_head / L->n_head_kv;
    const int n_swa = L->swa && m->n_swa > 0 ? m->n_swa : 0;
    sf_attn_args a = {.k = c->k_cache[L->kv_slot], .v = c->v_cache[L->kv_slot], .kv_stride = L->n_head_kv,
                      .head_dim_k = m->head_dim_k, .head_dim_v = m->head_dim_v,
                      .scale = m->attn_q_prescale ? 1.0f : m->attn_scale};
    sf_attn_plan(&a, j->T, c->pos[j->T - 1], c->n_threads);
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
                                     .pos = c->pos, .t0 = t0,
                                     .t1 = t0 + SF_ATTN_ITEM_TOKENS < j->T ? t0 + SF_ATTN_ITEM_TOKENS : j->T,
                                     .h0 = kh * group, .n_h = group, .kh = kh, .n_swa = n_swa};
            sf_attention_tiled(&a, &it, work);
        }
        return;
    }
    int64_t i0, i1;
    sf_split_range((int64_t)j->T * L->n_head, ith, nth, 1, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const int t = (int)(i / L->n_head), h = (int)(i % L->n_head);
        const int p = c->pos[t];
        const int lo = n_swa > 0 && p - n_swa + 1 > 0 ? p - n_swa + 1 : 0;
        sf_attention_head(&a, c->q + (size_t)t * q_stride + (size_t)h * m->head_dim_k, h / group, lo, p, work,
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
    for (int t = 0; t < j->T; t++)
        sf_glu(c->hb + (size_t)t * F, c->hb + (size_t)t * F, c->hb2 + (size_t)t * F, (int)r0, (int)r1, F,
               c->model->ffn_act);
}

/* ---- the pass ---- */

/* One parallel region, or, in a serial shadow context, the same work on the
 * calling thread. */
static void run_region(sf_context *c, sf_pool_fn fn, void *job) {
    if (c->serial) fn(job, 0, 1);
    else sf_pool_run(c->pool, fn, job);
}

static void run_matmul(sf_context *c, int T, int n, const sf_gguf_tensor *const *w, float *const *out,
                       const int64_t *stride, bool accumulate) {
    sf_job j = {.c = c, .T = T, .n_mats = n, .accumulate = accumulate};
    for (int i = 0; i < n; i++) {
        j.mats[i] = matrix_of(w[i]);
        j.outs[i] = out[i];
        j.out_stride[i] = stride[i];
        j.act_kind[i] = weight_kind(w[i]);
    }
    run_region(c, region_matmul, &j);
}

static void attention_block(sf_context *c, const sf_layer *L, int T, const float *pending_post) {
    const sf_model *m = c->model;
    const int E = m->n_embd;
    sf_job j = {.c = c, .L = L, .T = T, .src = pending_post, .norm_w = L->attn_norm->data};
    if (L->attn == SF_ATTN_LINEAR) { /* x += Wo · norm(x) */
        j.quant_kinds = 1u << weight_kind(L->wo);
        run_region(c, region_norm_quant, &j);
        const sf_gguf_tensor *w[1] = {L->wo};
        float *o[1] = {c->x};
        int64_t s[1] = {E};
        run_matmul(c, T, 1, w, o, s, true);
        return;
    }
    j.quant_kinds = (1u << weight_kind(L->wq)) | (1u << weight_kind(L->wk)) | (1u << weight_kind(L->wv));
    run_region(c, region_norm_quant, &j);

    const sf_gguf_tensor *qkv[3] = {L->wq, L->wk, L->wv};
    float *outs[3] = {c->q, c->k, c->v};
    int64_t strides[3] = {(int64_t)L->n_head * m->head_dim_k, (int64_t)L->n_head_kv * m->head_dim_k,
                          (int64_t)L->n_head_kv * m->head_dim_v};
    run_matmul(c, T, 3, qkv, outs, strides, false);

    run_region(c, region_rope_store, &j);
    run_region(c, region_attention, &j);
    sf_debug_dump("attn_norm", (int)(L - m->layers), c->xn, T, E, E);
    sf_debug_dump("Qcur", (int)(L - m->layers), c->q, T, L->n_head * m->head_dim_k, (size_t)L->n_head * m->head_dim_k);
    sf_debug_dump("kqv_out", (int)(L - m->layers), c->att, T, L->n_head * m->head_dim_v, (size_t)L->n_head * m->head_dim_v);

    sf_job jq = {.c = c, .T = T, .src = c->att, .src_n = L->n_head * m->head_dim_v,
                 .quant_kinds = 1u << weight_kind(L->wo)};
    run_region(c, region_quant_rows, &jq);
    const sf_gguf_tensor *w[1] = {L->wo};
    float *o[1] = {L->attn_post_norm ? c->tmp : c->x};
    int64_t s[1] = {E};
    run_matmul(c, T, 1, w, o, s, !L->attn_post_norm);
    if (L->attn_post_norm) sf_debug_dump("attn_out", (int)(L - m->layers), c->tmp, T, E, E);
}

/* ggml_batch: rows llama.cpp runs this FFN with (it drops the rows whose
 * logits are not wanted before the last layer's FFN), which picks its kernel. */
static void ffn_block(sf_context *c, const sf_layer *L, int T, const float *pending_post, int ggml_batch) {
    const sf_model *m = c->model;
    sf_job j = {.c = c, .L = L, .T = T, .src = pending_post, .norm_w = L->ffn_norm->data,
                .quant_kinds = (1u << weight_kind(L->ffn_gate)) | (1u << weight_kind(L->ffn_up))};
    run_region(c, region_norm_quant, &j);
    j.n_mats = 2;
    j.mats[0] = matrix_of(L->ffn_gate);
    j.mats[1] = matrix_of(L->ffn_up);
    j.mats[0].ggml_batch = j.mats[1].ggml_batch = ggml_batch;
    j.mats[0].ggml_first = j.mats[1].ggml_first = T - ggml_batch;
    j.act_kind[0] = weight_kind(L->ffn_gate);
    j.act_kind[1] = weight_kind(L->ffn_up);
    run_region(c, region_gate_up, &j);
    sf_debug_dump("ffn_glu", (int)(L - m->layers), c->hb, T, L->n_ff, L->n_ff);

    sf_job jq = {.c = c, .T = T, .src = c->hb, .src_n = L->n_ff, .quant_kinds = 1u << weight_kind(L->ffn_down)};
    run_region(c, region_quant_rows, &jq);
    sf_debug_dump("ffn_norm", (int)(L - m->layers), c->xn, T, m->n_embd, m->n_embd);
    sf_debug_dump("sa_out", (int)(L - m->layers), c->x, T, m->n_embd, m->n_embd);
    sf_debug_dump("ffn_inp", (int)(L - m->layers), c->x, T, m->n_embd, m->n_embd);
    sf_job jd = {.c = c, .T = T, .n_mats = 1, .accumulate = !L->ffn_post_norm};
    jd.mats[0] = matrix_of(L->ffn_down);
    jd.mats[0].ggml_batch = ggml_batch;
    jd.mats[0].ggml_first = T - ggml_batch;
    jd.outs[0] = L->ffn_post_norm ? c->tmp : c->x;
    jd.out_stride[0] = m->n_embd;
    jd.act_kind[0] = weight_kind(L->ffn_down);
    run_region(c, region_matmul, &jd);
    if (L->ffn_post_norm) sf_debug_dump("ffn_out", (int)(L - m->layers), c->tmp, T, m->n_embd, m->n_embd);
}

typedef struct {
    sf_context *c;
    int first, n, T, logits_from; /* group layers first .. first + n - 1 */
} par_job;

/* Members ith, ith + nth, ... of a parallel group, each on its shadow. */
static void region_parallel(void *arg, int ith, int nth) {
    par_job *pj = arg;
    sf_context *c = pj->c;
    const sf_model *m = c->model;
    const size_t n = (size_t)pj->T * m->n_embd;
    for (int k = ith; k < pj->n; k += nth) {
        sf_context *s = &c->shadow[k];
        const sf_layer *J = &m->layers[pj->first + k];
        memcpy(s->x, c->x0, sizeof(float) * n);
        if (J->attn != SF_ATTN_NONE) attention_block(s, J, pj->T, NULL);
        if (J->ffn != SF_FFN_NONE) {
            const int n_out = pj->T - pj->logits_from;
            ffn_block(s, J, pj->T, NULL, pj->first + k == m->n_layer - 1 && n_out > 0 ? n_out : pj->T);
        }
    }
}

int sf_forward(sf_context *c, const int32_t *tokens, int T, int logits_from) {
    return sf_forward_ctl_run(c, tokens, T, logits_from, NULL);
}

int sf_forward_ctl_run(sf_context *c, const int32_t *tokens, int T, int logits_from, const sf_forward_ctl *ctl) {
    const sf_model *m = c->model;
    for (int t = 0; t < T; t++) {
        c->tokens[t] = tokens[t];
        c->pos[t] = c->n_past + t;
    }
    const int start = ctl ? ctl->start_layer : 0;
    if (start > 0) memcpy(c->x, ctl->x_start, sizeof(float) * (size_t)T * m->n_embd);
    else {
        sf_job je = {.c = c, .T = T};
        sf_pool_run(c->pool, region_embed, &je);
    }

    /* A post-norm'ed sub-block output waits in c->tmp and is added to the
     * residual at the start of the next region that reads x. */
    const float *pending = NULL;
    const int end = ctl && ctl->end_layer > 0 ? ctl->end_layer : m->n_layer;
    for (int il = start; il < end; il++) {
        const sf_layer *L = &m->layers[il];
        if (L->parallel_last > il && !ctl && !c->serial) {
            /* the group's blocks all read x, each whole block on one thread
             * (its own shadow context): one region for the group; then the
             * contributions are summed in layer order */
            const size_t n = (size_t)T * m->n_embd;
            memcpy(c->x0, c->x, sizeof(float) * n);
            par_job pj = {.c = c, .first = il, .n = L->parallel_last - il + 1, .T = T, .logits_from = logits_from};
            sf_pool_run(c->pool, region_parallel, &pj);
            memset(c->xsum, 0, sizeof(float) * n);
            for (int k = 0; k < pj.n; k++)
                for (size_t e = 0; e < n; e++) c->xsum[e] += c->shadow[k].x[e] - c->x0[e];
            for (size_t e = 0; e < n; e++) c->x[e] = c->x0[e] + c->xsum[e];
            il = L->parallel_last;
            continue;
        }
        if (ctl && ctl->on_stage) ctl->on_stage(ctl->user, il, SF_STAGE_INPUT, c->x, T);
        if (L->attn != SF_ATTN_NONE && !(ctl && ctl->skip_attn && ctl->skip_attn[il])) {
            attention_block(c, L, T, pending);
            pending = L->attn_post_norm ? L->attn_post_norm->data : NULL;
        }
        if (ctl && ctl->on_stage) ctl->on_stage(ctl->user, il, SF_STAGE_AFTER_ATTN, c->x, T);
        if (L->ffn != SF_FFN_NONE && !(ctl && ctl->skip_ffn && ctl->skip_ffn[il])) {
            const int n_out = T - logits_from;
            ffn_block(c, L, T, pending, il == m->n_layer - 1 && n_out > 0 ? n_out : T);
            pending = L->ffn_post_norm ? L->ffn_post_norm->data : NULL;
        }
        if (ctl && ctl->on_stage) ctl->on_stage(ctl->user, il, SF_STAGE_OUTPUT, c->x, T);
    }

    if (end < m->n_layer) {
        c->n_logits = 0;
        return SF_OK;
    }
    /* final norm and LM head for tokens [logits_from, T) */
    const int n_out = T - logits_from;
    c->n_logits = n_out;
    if (n_out <= 0) {
        if (pending) { /* still fold the pending output into x for consistency */
            sf_job jp = {.c = c, .T = T, .src = pending};
            sf_pool_run(c->pool, region_norm_quant, &jp);
        }
        return SF_OK;
    }
    if (pending) { /* add the last sub-block's output for all tokens */
        sf_job jp = {.c = c, .T = T, .src = pending};
        sf_pool_run(c->pool, region_norm_quant, &jp);
    }
    sf_job jn = {.c = c, .T = T, .t0 = logits_from, .norm_w = m->output_norm->data,
                 .quant_kinds = 1u << weight_kind(m->output)};
    sf_pool_run(c->pool, region_norm_quant, &jn);
    const sf_gguf_tensor *w[1] = {m->output};
    float *o[1] = {c->logits};
    int64_t s[1] = {m->n_vocab};
    run_matmul(c, n_out, 1, w, o, s, false);
    if (m->final_logit_softcap > 0.0f) {
        const float cap = m->final_logit_softcap;
        for (int64_t i = 0; i < (int64_t)n_out * m->n_vocab; i++) c->logits[i] = tanhf(c->logits[i] / cap) * cap;
    }
    return SF_OK;
}
