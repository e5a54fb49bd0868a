/* The union effect: in a batch, a matrix row is needed when any token of
 * the batch has its channel active, so the rows a batched sparse kernel
 * could skip are those outside the union of the batch's masks. Measured on
 * the dense model's activations over a text, with the side-car's rules (the
 * hidden mask from the dense h, which for TEAL/WINA differs a little from
 * the h of sparse inputs). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/context.h"
#include "model/ops.h"
#include "sparse/sparse.h"

typedef struct {
    const sf_context *c;
    const int *batches;
    int n_batches;
    bool *mask;     /* [T][n] one site's masks of this call */
    bool *any;      /* [n] */
    double *sum[2]; /* [n_batches] Σ over windows and layers of the union's active fraction, per site (in, hidden) */
    int64_t *count[2];
} union_job;

/* windows of b consecutive tokens (the last one may be shorter) */
static void add_unions(union_job *u, int site, int T, int n) {
    for (int k = 0; k < u->n_batches; k++) {
        const int b = u->batches[k];
        for (int t0 = 0; t0 < T; t0 += b) {
            memset(u->any, 0, sizeof(bool) * (size_t)n);
            const int t1 = t0 + b < T ? t0 + b : T;
            for (int t = t0; t < t1; t++)
                for (int j = 0; j < n; j++) u->any[j] |= u->mask[(size_t)t * n + j];
            int a = 0;
            for (int j = 0; j < n; j++) a += u->any[j];
            u->sum[site][k] += (double)a / n;
            u->count[site][k]++;
        }
    }
}

static void on_ffn(void *user, int layer, const int *row_token, int T, const float *xn, const float *g, const float *h,
                   int n_ff) {
    (void)row_token;
    union_job *u = user;
    const sf_sparse *sp = u->c->sparse;
    const sf_sparse_layer *S = &sp->layers[layer];
    const int E = u->c->model->n_embd;
    const sf_sparse_rule *in = &S->site[SF_SITE_FFN_IN], *hid = &S->site[SF_SITE_FFN_HIDDEN];
    if (in->on) {
        for (int64_t i = 0; i < (int64_t)T * E; i++) u->mask[i] = sf_sparse_active(in, xn[i], (int)(i % E));
        add_unions(u, 0, T, E);
    }
    if (hid->on) {
        const bool gate = sp->method == SF_SPARSE_CATS || sp->method == SF_SPARSE_PREDICTOR;
        for (int64_t i = 0; i < (int64_t)T * n_ff; i++)
            u->mask[i] = sf_sparse_active(hid, gate ? sf_gate_act(g[i], u->c->model->ffn_act) : h[i], (int)(i % n_ff));
        add_unions(u, 1, T, n_ff);
    }
}

int sf_sparse_union(sf_context *c, const int32_t *tokens, int n_tokens, const int *batches, int n_batches,
                    double *in_active, double *hidden_active) {
    if (!c || !c->sparse) return sf_fail(SF_ERR_ARG, "sf_sparse_union: the context has no side-car");
    if (c->sparse->method == SF_SPARSE_PREDICTOR)
        return sf_fail(SF_ERR_UNSUPPORTED, "sf_sparse_union: the predictor's masks come from its estimate, not "
                                           "measured here");
    if (n_tokens < 1 || n_tokens > c->n_batch || n_tokens > c->n_ctx)
        return sf_fail(SF_ERR_ARG, "sf_sparse_union: %d tokens, the context takes 1..%d in one call", n_tokens,
                       c->n_batch < c->n_ctx ? c->n_batch : c->n_ctx);
    for (int k = 0; k < n_batches; k++)
        if (batches[k] < 1) return sf_fail(SF_ERR_ARG, "sf_sparse_union: batch size %d", batches[k]);
    const sf_model *m = c->model;
    const size_t n_max = (size_t)(m->n_ff_max > m->n_embd ? m->n_ff_max : m->n_embd);
    union_job u = {.c = c, .batches = batches, .n_batches = n_batches};
    u.mask = malloc(sizeof(bool) * n_max * (size_t)n_tokens);
    u.any = malloc(sizeof(bool) * n_max);
    for (int s = 0; s < 2; s++) {
        u.sum[s] = calloc((size_t)n_batches, sizeof(double));
        u.count[s] = calloc((size_t)n_batches, sizeof(int64_t));
    }
    int rc = u.mask && u.any && u.sum[0] && u.sum[1] && u.count[0] && u.count[1]
                 ? SF_OK
                 : sf_fail(SF_ERR_NOMEM, "out of memory");
    if (!rc) {
        /* a dense pass: no token runs sparse while the hook reads the activations */
        const int max_batch = c->sparse_max_batch, min_pos = c->sparse_min_pos;
        sf_context_sparse_policy(c, 0, INT_MAX);
        const sf_run_plan plan = {.on_ffn = on_ffn, .user = &u};
        rc = sf_forward(c, tokens, n_tokens, n_tokens, &plan);
        sf_context_sparse_policy(c, max_batch, min_pos);
    }
    for (int k = 0; !rc && k < n_batches; k++) {
        in_active[k] = u.count[0][k] ? u.sum[0][k] / (double)u.count[0][k] : -1.0;
        hidden_active[k] = u.count[1][k] ? u.sum[1][k] / (double)u.count[1][k] : -1.0;
    }
    free(u.mask);
    free(u.any);
    for (int s = 0; s < 2; s++) {
        free(u.sum[s]);
        free(u.count[s]);
    }
    return rc;
}
