/* A routes side-car (sparsefuse_routing.h), bound to a model.
 *
 * GGUF layout (general.architecture = "sparsefuse-routes"):
 *   sparsefuse.routes.version           u32 1
 *   sparsefuse.routes.base.name         str   the base model's general.name
 *   sparsefuse.routes.base.n_layer      u32
 *   sparsefuse.routes.base.n_embd       u32
 *   sparsefuse.routes.base.fingerprint  u64   sf_model_fingerprint of the base
 *   sparsefuse.routes.target            str   "kl" | "delta" | "static"
 *   sparsefuse.routes.routed            i32[] layers with a router
 *   sparsefuse.routes.dropped           i32[] layers no token runs (static)
 *   sparsefuse.routes.capacity          f32[n_layer] (1 where not routed)
 *   sparsefuse.routes.threshold         f32[n_layer] causal threshold (0 where not routed)
 *   sparsefuse.routes.bias              f32[n_layer]
 *   blk.N.route_w                       f32 [n_embd] for each routed layer N
 * (an empty list is left out). */
#ifndef SF_ROUTE_ROUTES_H
#define SF_ROUTE_ROUTES_H

#include <math.h>
#include <stdbool.h>

#include "gguf/gguf.h"
#include "model/model.h"

#define SF_ROUTES_ARCH "sparsefuse-routes"
#define SF_ROUTES_VERSION 1

typedef struct {
    bool routed;     /* a router decides which tokens run this block */
    bool dropped;    /* no token runs it (static pruning) */
    float capacity;  /* routed: fraction of tokens that run it, (0, 1] */
    float threshold; /* routed, causal rule: a token runs it when its score >= threshold */
    float bias;
    const float *w;  /* routed: [n_embd] router weights on x / rms(x) */
} sf_route_layer;

typedef struct sf_routes {
    sf_gguf *g;
    int n_layer, n_embd;
    sf_route_layer *layers; /* [n_layer] */
    /* calibration (sf_route_fit), or NULL: top-k adds each batch's k-th best
     * score of block l to kth_sum[l] and counts it in kth_n[l] */
    double *kth_sum;
    int64_t *kth_n;
} sf_routes;

extern const sf_sidecar_kind sf_routes_sidecar; /* its header keys (model.h) */

/* Opens and validates a side-car against m (shape, fingerprint, ranges). */
int sf_routes_open(const char *path, const sf_model *m, sf_routes **out);
void sf_routes_free(sf_routes *r);

/* Writes a side-car for m with these layers (routed ones with w set) to
 * path, atomically; target names what the routers were fitted to. */
int sf_routes_write(const char *path, const sf_model *m, const sf_route_layer *layers, const char *target);

/* 1 / rms(x) of a residual row, the router's input scale. */
static inline double sf_route_inv_rms(const float *x, int n, float eps) {
    double ss = 0;
    for (int e = 0; e < n; e++) ss += (double)x[e] * x[e];
    return 1.0 / sqrt(ss / n + eps);
}

/* The router score of one residual row x [n_embd]: w · x / rms(x) + b. */
float sf_route_score(const sf_route_layer *R, const float *x, int n_embd, float eps);

#endif
