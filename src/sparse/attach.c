/* A context's side-car: loading it for the context's model, the buffers the
 * sparse FFN needs (allocated here once, nothing per token), the policy of
 * which tokens run it, and its counters. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/context.h"
#include "sparse/sparse.h"
#include "sparse/wcache.h"

static void free_caches(struct sf_wcache_set *set, int n_layer) {
    if (!set) return;
    for (int l = 0; set->m && l < n_layer; l++)
        for (int i = 0; i < 3; i++) sf_wcache_free(&set->m[l][i]);
    free(set->m);
    free(set->mask);
    free(set);
}

/* SF_SPARSE_CACHE=diff: a cache for every sparse transposed FFN matrix */
static int make_caches(sf_context *c, const sf_sparse *s) {
    struct sf_wcache_set *set = calloc(1, sizeof *set);
    if (set) set->m = calloc((size_t)s->n_layer, sizeof *set->m);
    if (set) set->mask = malloc(sizeof(bool) * c->sp_stride);
    int rc = set && set->m && set->mask ? SF_OK : sf_fail(SF_ERR_NOMEM, "out of memory for the weight caches");
    for (int l = 0; !rc && l < s->n_layer; l++) {
        const sf_sparse_layer *S = &s->layers[l];
        const sf_gguf_tensor *t[3] = {S->site[SF_SITE_FFN_IN].on ? S->gate_t : NULL,
                                      S->site[SF_SITE_FFN_IN].on ? S->up_t : NULL,
                                      S->site[SF_SITE_FFN_HIDDEN].on ? S->down_t : NULL};
        for (int i = 0; !rc && i < 3; i++)
            if (t[i]) rc = sf_wcache_init(&set->m[l][i], (int)t[i]->ne[1], sf_type_row_bytes(t[i]->type, t[i]->ne[0]));
    }
    if (rc) {
        free_caches(set, s->n_layer);
        return rc;
    }
    c->sp_cache = set;
    return SF_OK;
}

void sf_sparse_detach(sf_context *c) {
    if (c->sparse) free_caches(c->sp_cache, c->sparse->n_layer);
    c->sp_cache = NULL;
    sf_sparse_free(c->sparse);
    free(c->sp_rows);
    free(c->sp_scale);
    free(c->sp_not_dense);
    free(c->sp_part);
    free(c->sp_pscratch);
    free(c->sp_zq);
    c->sp_part = NULL;
    c->sp_pscratch = c->sp_zq = NULL;
    c->sparse = NULL;
    c->sp_rows = NULL;
    c->sp_scale = NULL;
    c->sp_not_dense = NULL;
}

int sf_context_use_sparse(sf_context *c, const char *path) {
    if (!c || !path) return sf_fail(SF_ERR_ARG, "sf_context_use_sparse: no context or path");
    sf_sparse *s;
    int rc = sf_sparse_open(path, c->model, &s);
    if (rc) return rc;
    /* the longest vector a transposed product reads or writes: n_embd, n_ff, q, v */
    const sf_model *m = c->model;
    size_t stride = (size_t)(m->n_embd > m->n_ff_max ? m->n_embd : m->n_ff_max);
    const size_t nq = (size_t)m->n_head_max * (size_t)(m->head_dim_k > m->head_dim_v ? m->head_dim_k : m->head_dim_v);
    if (nq > stride) stride = nq;
    const void **rows = malloc(sizeof(void *) * stride * (size_t)c->n_threads);
    float *scale = malloc(sizeof(float) * stride * (size_t)c->n_threads);
    bool *dense = malloc(sizeof(bool) * (size_t)c->n_batch);
    float *part = malloc(sizeof(float) * SF_SPARSE_SLOTS * stride * (size_t)c->n_threads);
    const int rank = s->rank ? s->rank : 32;
    void *pscratch = malloc(sf_predictor_scratch_bytes(c->model->n_embd, rank));
    void *zq = malloc(sf_predictor_zq_bytes(rank));
    if (!rows || !scale || !dense || !part || !pscratch || !zq) {
        free(pscratch);
        free(zq);
        free(part);
        free(rows);
        free(scale);
        free(dense);
        sf_sparse_free(s);
        return sf_fail(SF_ERR_NOMEM, "out of memory for the sparse FFN buffers");
    }
    sf_sparse_detach(c);
    c->sparse = s;
    c->sp_rows = rows;
    c->sp_scale = scale;
    c->sp_not_dense = dense;
    c->sp_part = part;
    c->sp_pscratch = pscratch;
    c->sp_zq = zq;
    const char *split = getenv("SF_SPARSE_SPLIT");
    /* measured faster on 1B Q4_0 and Q8_0 (docs/sparsity.md): whole rows per thread */
    c->sp_split_rows = !(split && strcmp(split, "cols") == 0);
    c->sp_stride = stride;
    const char *cache = getenv("SF_SPARSE_CACHE");
    if (cache && strcmp(cache, "diff") == 0 && c->sp_split_rows && (rc = make_caches(c, s)) != SF_OK) {
        sf_sparse_detach(c);
        return rc;
    }
    c->sparse_max_batch = 1;
    c->sparse_min_pos = INT_MAX;
    memset(&c->sp_stats, 0, sizeof c->sp_stats);
    return SF_OK;
}

void sf_context_sparse_policy(sf_context *c, int max_batch, int min_pos) {
    c->sparse_max_batch = max_batch;
    c->sparse_min_pos = min_pos;
}

bool sf_context_has_sparse(const sf_context *c) { return c && c->sparse; }

void sf_context_sparse_stats(sf_context *c, sf_sparse_stats *out, bool reset) {
    if (out) *out = c->sp_stats;
    if (reset) memset(&c->sp_stats, 0, sizeof c->sp_stats);
}
