/* Routes in a context: attaching a side-car, the policy, the per-batch
 * decisions (causal threshold or expert-choice top-k) and their counters. */
#include "route/route_run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

void sf_routes_detach(sf_context *c) {
    sf_routes_free(c->routes);
    free(c->route_score);
    free(c->route_skip);
    free(c->route_kv_only);
    free(c->route_x_in);
    free(c->route_ran);
    free(c->route_map);
    c->routes = NULL;
    c->route_score = c->route_x_in = NULL;
    c->route_skip = c->route_kv_only = c->route_map = NULL;
    c->route_ran = c->route_seen = NULL;
}

int sf_context_use_routes(sf_context *c, const char *path) {
    if (!c || !path) return sf_fail(SF_ERR_ARG, "sf_context_use_routes: no context or path");
    const sf_model *m = c->model;
    sf_routes *r;
    int rc = sf_routes_open(path, m, &r);
    if (rc) return rc;
    const size_t B = (size_t)c->n_batch, L = (size_t)m->n_layer;
    float *score = malloc(sizeof(float) * B), *x_in = malloc(sizeof(float) * B * (size_t)m->n_embd);
    bool *skip = malloc(sizeof(bool) * B), *kv_only = malloc(sizeof(bool) * B);
    int64_t *counts = calloc(2 * L, sizeof *counts);
    if (!score || !x_in || !skip || !kv_only || !counts) {
        free(score);
        free(x_in);
        free(skip);
        free(kv_only);
        free(counts);
        sf_routes_free(r);
        return sf_fail(SF_ERR_NOMEM, "out of memory for the routing buffers");
    }
    const bool keep = c->route_map != NULL;
    sf_routes_detach(c);
    c->routes = r;
    c->route_score = score;
    c->route_x_in = x_in;
    c->route_skip = skip;
    c->route_kv_only = kv_only;
    c->route_ran = counts;
    c->route_seen = counts + L;
    sf_context_route_keep_map(c, keep);
    return SF_OK;
}

bool sf_context_has_routes(const sf_context *c) { return c && c->routes; }

void sf_context_route_policy(sf_context *c, const sf_route_policy *p) { c->route_policy = *p; }

void sf_context_route_stats(sf_context *c, int64_t *ran, int64_t *seen, bool reset) {
    const size_t L = (size_t)c->model->n_layer;
    for (size_t l = 0; l < L; l++) {
        if (ran) ran[l] = c->route_ran ? c->route_ran[l] : 0;
        if (seen) seen[l] = c->route_seen ? c->route_seen[l] : 0;
    }
    if (reset && c->route_ran) memset(c->route_ran, 0, sizeof(int64_t) * 2 * L);
}

double sf_context_route_fraction(sf_context *c, bool reset) {
    if (!c->routes) return 1.0;
    const int L = c->model->n_layer;
    int64_t tokens = 0;
    for (int l = 0; l < L; l++) tokens = c->route_seen[l] > tokens ? c->route_seen[l] : tokens;
    double run = 0;
    for (int l = 0; l < L; l++) {
        const sf_route_layer *R = &c->routes->layers[l];
        run += R->dropped ? 0.0 : !R->routed ? 1.0 : tokens ? (double)c->route_ran[l] / tokens : 0.0;
    }
    if (reset) memset(c->route_ran, 0, sizeof(int64_t) * 2 * (size_t)L);
    return run / L;
}

void sf_context_route_keep_map(sf_context *c, bool keep) {
    if (!keep || !c->routes) {
        free(c->route_map);
        c->route_map = NULL;
        if (!keep) return;
    }
    if (!c->route_map) c->route_map = calloc((size_t)c->n_ctx * (size_t)c->model->n_layer, sizeof(bool));
}

int sf_context_route_map(const sf_context *c, const bool **run) {
    *run = c->route_map;
    return c->route_map ? c->n_past : -1;
}

/* Expert choice: the k = round(c·T) best scores run (at least one), ties
 * to the earlier token. */
typedef struct {
    float score;
    int t;
} ranked;

static int by_score(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->t - y->t;
}

static void top_k(sf_context *c, int il, int T, float capacity) {
    int k = (int)lroundf(capacity * (float)T);
    if (k < 1) k = 1;
    ranked *order = (ranked *)c->route_x_in; /* scratch, [T] (the block input is saved after the decision) */
    for (int t = 0; t < T; t++) order[t] = (ranked){c->route_score[t], t};
    qsort(order, (size_t)T, sizeof *order, by_score);
    for (int t = 0; t < T; t++) c->route_skip[t] = true;
    for (int i = 0; i < k; i++) c->route_skip[order[i].t] = false;
    if (c->routes->kth_sum) {
        c->routes->kth_sum[il] += order[k - 1].score;
        c->routes->kth_n[il]++;
    }
}

void sf_route_map_begin(sf_context *c, int T) {
    if (!c->route_map || !c->routes) return;
    const int L = c->model->n_layer;
    for (int t = 0; t < T; t++)
        for (int l = 0; l < L; l++) c->route_map[(size_t)c->pos[t] * L + l] = !c->routes->layers[l].dropped;
}

void sf_route_decide(sf_context *c, int il, int T) {
    const sf_model *m = c->model;
    const sf_route_layer *R = &c->routes->layers[il];
    const int E = m->n_embd;
    for (int t = 0; t < T; t++) c->route_score[t] = sf_route_score(R, c->x + (size_t)t * E, E, m->norm_eps);
    if (R->capacity >= 1.0f)
        for (int t = 0; t < T; t++) c->route_skip[t] = false;
    else if (c->route_policy.rule == SF_ROUTE_TOPK && T > 1)
        top_k(c, il, T, R->capacity);
    else
        for (int t = 0; t < T; t++) c->route_skip[t] = !(c->route_score[t] >= R->threshold);
    int ran = 0;
    for (int t = 0; t < T; t++) ran += !c->route_skip[t];
    c->route_ran[il] += ran;
    c->route_seen[il] += T;
    if (c->route_map)
        for (int t = 0; t < T; t++) c->route_map[(size_t)c->pos[t] * m->n_layer + il] = !c->route_skip[t];
}
