/* Context lifetime, KV cache bookkeeping and sf_decode batching. */
#include "model/context.h"
#include "model/attention.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "route/route_run.h"
#include "sparse/sparse.h"
#include "tensor/types.h"

sf_context_params sf_context_default_params(void) {
    sf_context_params p = {.n_ctx = 0, .n_batch = 512, .n_threads = 0};
    return p;
}

static void *alloc_or_fail(size_t n, int *rc) {
    if (*rc) return NULL;
    void *p = calloc(1, n ? n : 1);
    if (!p) *rc = sf_fail(SF_ERR_NOMEM, "out of memory allocating %zu bytes for the context", n);
    return p;
}

static const sf_type g_act_types[SF_ACT_KINDS] = {SF_TYPE_F32, SF_TYPE_F16, SF_TYPE_BF16,
                                                  SF_TYPE_Q8_0, SF_TYPE_Q8_1, SF_TYPE_Q8_K};

/* The per-pass work buffers (B = n_batch), for attention scratch of
 * n_work_threads threads. Shared by a context and its serial shadows. */
static int alloc_work(sf_context *c, int n_work_threads) {
    const sf_model *m = c->model;
    int rc = SF_OK;
    const size_t B = (size_t)c->n_batch, E = (size_t)m->n_embd;
    const size_t hk = (size_t)m->head_dim_k, hv = (size_t)m->head_dim_v;
    c->x = alloc_or_fail(sizeof(float) * B * E, &rc);
    c->xn = alloc_or_fail(sizeof(float) * B * E, &rc);
    c->tmp = alloc_or_fail(sizeof(float) * B * E, &rc);
    c->q = alloc_or_fail(sizeof(float) * B * (size_t)m->n_head_max * hk, &rc);
    c->k = alloc_or_fail(sizeof(float) * B * (size_t)m->n_head_kv_max * hk, &rc);
    c->v = alloc_or_fail(sizeof(float) * B * (size_t)m->n_head_kv_max * hv, &rc);
    c->att = alloc_or_fail(sizeof(float) * B * (size_t)m->n_head_max * hv, &rc);
    c->hb = alloc_or_fail(sizeof(float) * B * (size_t)m->n_ff_max, &rc);
    c->hb2 = alloc_or_fail(sizeof(float) * B * (size_t)m->n_ff_max, &rc);
    c->cell = alloc_or_fail(sizeof(int) * B, &rc);
    c->cell_lo = alloc_or_fail(sizeof(int) * B, &rc);
    int group = 1; /* most query heads sharing one KV head, over layers */
    for (int il = 0; il < m->n_layer; il++)
        if (m->layers[il].n_head_kv > 0 && m->layers[il].n_head / m->layers[il].n_head_kv > group)
            group = m->layers[il].n_head / m->layers[il].n_head_kv;
    c->attn_work_floats = SF_ATTN_WORK_FLOATS((size_t)m->head_dim_k, (size_t)m->head_dim_v, (size_t)group);
    c->attn_work = alloc_or_fail(sizeof(float) * (size_t)n_work_threads * c->attn_work_floats, &rc);
    /* widest activation row any matmul reads */
    int64_t n_in = m->n_embd;
    if ((int64_t)m->n_head_max * m->head_dim_v > n_in) n_in = (int64_t)m->n_head_max * m->head_dim_v;
    if (m->n_ff_max > n_in) n_in = m->n_ff_max;
    for (int k = 0; k < SF_ACT_KINDS; k++) {
        const sf_type_traits *tr = sf_type_ref(g_act_types[k]);
        /* rows of n_in rounded up to whole blocks */
        int64_t blocks = (n_in + tr->block_size - 1) / tr->block_size;
        c->act.stride[k] = (size_t)blocks * tr->type_size;
        c->act.buf[k] = alloc_or_fail(c->act.stride[k] * B, &rc);
    }
    return rc;
}

static void free_work(sf_context *c) {
    free(c->x); free(c->xn); free(c->tmp); free(c->q); free(c->k); free(c->v); free(c->att);
    free(c->hb); free(c->hb2); free(c->attn_work); free(c->cell); free(c->cell_lo);
    for (int k = 0; k < SF_ACT_KINDS; k++) free(c->act.buf[k]);
}

sf_context *sf_context_new(sf_model *m, const sf_context_params *params) {
    if (!m) { sf_fail(SF_ERR_ARG, "no model"); return NULL; }
    sf_context_params p = params ? *params : sf_context_default_params();
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0) {
        sf_fail(SF_ERR_ARG, "context parameters must not be negative (n_ctx %d, n_batch %d, threads %d)", p.n_ctx,
                p.n_batch, p.n_threads);
        return NULL;
    }
    if (p.n_ctx == 0) p.n_ctx = m->n_ctx_train;
    if (p.n_ctx > (1 << 22)) { sf_fail(SF_ERR_ARG, "context size %d is too large", p.n_ctx); return NULL; }
    if (p.n_batch == 0) p.n_batch = 512;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    if (p.n_threads == 0) p.n_threads = sf_physical_cores();

    int rc = SF_OK;
    sf_context *c = alloc_or_fail(sizeof *c, &rc);
    if (!c) return NULL;
    c->model = m;
    c->n_ctx = p.n_ctx;
    c->n_batch = p.n_batch;
    c->n_threads = p.n_threads;
    /* LongRoPE: the long factors for contexts beyond the original one, as llama.cpp */
    c->rope_factors = m->rope_factors_long && c->n_ctx > m->n_ctx_orig ? m->rope_factors_long : m->rope_freq_factors;
    c->pool = sf_pool_new(p.n_threads);
    if (!c->pool) { free(c); return NULL; }

    const size_t B = (size_t)c->n_batch, E = (size_t)m->n_embd;
    const size_t hk = (size_t)m->head_dim_k, hv = (size_t)m->head_dim_v;
    c->k_cache = alloc_or_fail(sizeof(sf_fp16 *) * (size_t)(m->n_kv_layers + 1), &rc);
    c->v_cache = alloc_or_fail(sizeof(sf_fp16 *) * (size_t)(m->n_kv_layers + 1), &rc);
    c->kv_cells = alloc_or_fail(sizeof(sf_kv_cells) * (size_t)(m->n_kv_layers + 1), &rc);
    for (int il = 0; !rc && il < m->n_layer; il++) {
        const sf_layer *L = &m->layers[il];
        if (L->kv_slot < 0) continue;
        c->k_cache[L->kv_slot] = alloc_or_fail(sizeof(sf_fp16) * (size_t)c->n_ctx * L->n_head_kv * hk, &rc);
        c->v_cache[L->kv_slot] = alloc_or_fail(sizeof(sf_fp16) * (size_t)c->n_ctx * L->n_head_kv * hv, &rc);
        if (c->kv_cells) c->kv_cells[L->kv_slot].pos = alloc_or_fail(sizeof(int) * (size_t)c->n_ctx, &rc);
    }
    c->x0 = alloc_or_fail(sizeof(float) * B * E, &rc);
    c->xsum = alloc_or_fail(sizeof(float) * B * E, &rc);
    c->pos = alloc_or_fail(sizeof(int) * B, &rc);
    c->x_gather = alloc_or_fail(sizeof(float) * B * E, &rc);
    c->pos_gather = alloc_or_fail(sizeof(int) * B, &rc);
    c->row_token = alloc_or_fail(sizeof(int) * B, &rc);
    c->tokens = alloc_or_fail(sizeof(int32_t) * B, &rc);
    c->logits = alloc_or_fail(sizeof(float) * B * (size_t)m->n_vocab, &rc);
    if (!rc) rc = alloc_work(c, c->n_threads);
    /* one serial shadow context per member of the widest parallel group */
    int widest = 0;
    for (int il = 0; il < m->n_layer; il++)
        if (m->layers[il].group_last - m->layers[il].group_first + 1 > widest)
            widest = m->layers[il].group_last - m->layers[il].group_first + 1;
    if (widest < 2) widest = 0;
    if (!rc && widest > 0) {
        c->shadow = alloc_or_fail(sizeof(sf_context) * (size_t)widest, &rc);
        for (int i = 0; !rc && i < widest; i++) {
            sf_context *s = &c->shadow[i];
            *s = *c; /* model, pool, KV cache, pos, tokens shared */
            s->serial = true;
            s->shadow = NULL;
            s->n_shadow = 0;
            s->x0 = s->xsum = s->logits = s->x_gather = NULL;
            s->pos_gather = s->row_token = NULL;
            rc = alloc_work(s, 1);
            c->n_shadow = i + 1;
        }
    }
    if (rc) { sf_context_free(c); return NULL; }
    return c;
}

void sf_context_free(sf_context *c) {
    if (!c) return;
    sf_pool_free(c->pool);
    if (c->k_cache)
        for (int i = 0; i < c->model->n_kv_layers; i++) free(c->k_cache[i]);
    if (c->v_cache)
        for (int i = 0; i < c->model->n_kv_layers; i++) free(c->v_cache[i]);
    if (c->kv_cells)
        for (int i = 0; i < c->model->n_kv_layers; i++) free(c->kv_cells[i].pos);
    free(c->k_cache);
    free(c->v_cache);
    free(c->kv_cells);
    free_work(c);
    for (int i = 0; i < c->n_shadow; i++) free_work(&c->shadow[i]);
    free(c->shadow);
    free(c->x0); free(c->xsum); free(c->pos); free(c->tokens); free(c->logits);
    free(c->x_gather); free(c->pos_gather); free(c->row_token);
    sf_sparse_detach(c);
    sf_routes_detach(c);
    free(c);
}

int sf_context_n_ctx(const sf_context *c) { return c->n_ctx; }
int sf_context_n_past(const sf_context *c) { return c->n_past; }

int sf_kv_truncate(sf_context *c, int n_past) {
    if (n_past < 0 || n_past > c->n_past)
        return sf_fail(SF_ERR_ARG, "cannot truncate the KV cache to %d positions (it holds %d)", n_past, c->n_past);
    c->n_past = n_past;
    c->n_logits = 0;
    return SF_OK;
}

int sf_decode(sf_context *c, const int32_t *tokens, int n, bool all_logits) {
    return sf_decode_plan(c, tokens, n, all_logits, NULL);
}

int sf_decode_plan(sf_context *c, const int32_t *tokens, int n, bool all_logits, const sf_run_plan *plan) {
    if (!c || (!tokens && n > 0)) return sf_fail(SF_ERR_ARG, "sf_decode: null argument");
    if (n <= 0) return sf_fail(SF_ERR_ARG, "sf_decode: no tokens");
    if (n > c->n_ctx - c->n_past)
        return sf_fail(SF_ERR_RANGE, "context is full: %d tokens do not fit after %d of %d positions", n, c->n_past,
                       c->n_ctx);
    if (all_logits && n > c->n_batch)
        return sf_fail(SF_ERR_ARG, "logits for all %d tokens requested but the batch size is %d", n, c->n_batch);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->model->n_vocab)
            return sf_fail(SF_ERR_ARG, "token id %d at index %d is outside the vocabulary (0..%d)", tokens[i], i,
                           c->model->n_vocab - 1);
    c->last_n = n;
    sf_pool_mark(c->pool); /* sf_context_barriers_last counts from here */
    for (int done = 0; done < n;) {
        const int T = n - done < c->n_batch ? n - done : c->n_batch;
        const bool last = done + T == n;
        const int logits_from = !last ? T : (all_logits ? 0 : T - 1);
        int rc = sf_forward_part(c, tokens + done, T, logits_from, plan, done, n);
        if (rc) return rc;
        c->n_past += T;
        done += T;
        if (last) c->logits_first = all_logits ? 0 : n - 1;
    }
    return SF_OK;
}

const float *sf_get_logits(sf_context *c, int i) {
    if (i < 0) i = c->last_n - 1;
    const int row = i - c->logits_first;
    if (row < 0 || row >= c->n_logits) return NULL;
    return c->logits + (size_t)row * c->model->n_vocab;
}
