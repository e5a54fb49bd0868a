/* A context's side of depth routing: the routes it uses and the per-batch
 * decisions the forward pass asks for. */
#ifndef SF_ROUTE_ROUTE_RUN_H
#define SF_ROUTE_ROUTE_RUN_H

#include <stdbool.h>

#include "model/context.h"
#include "route/routes.h"

/* Frees the context's routes and their buffers (nothing if none). */
void sf_routes_detach(sf_context *c);

/* The routed block il, if the context routes it (else NULL). */
static inline const sf_route_layer *sf_route_layer_of(const sf_context *c, int il) {
    return c->routes && c->routes->layers[il].routed ? &c->routes->layers[il] : NULL;
}

/* Decides which of the T tokens of the batch (residual rows c->x [T][n_embd])
 * run routed block il: fills
 * c->route_score[T] and c->route_skip[T] by the context's policy, counts
 * them, and records them in the map when kept. */
void sf_route_decide(sf_context *c, int il, int T);

/* Starts the map of a batch of T tokens at positions c->pos (when kept):
 * every block is marked run but dropped ones; sf_route_decide fills in the
 * routed ones. */
void sf_route_map_begin(sf_context *c, int T);

#endif
