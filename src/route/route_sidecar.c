/* Reading, validating and writing a routes side-car (routes.h has the layout). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "route/routes.h"

float sf_route_score(const sf_route_layer *R, const float *x, int n_embd, float eps) {
    double dot = 0;
    for (int e = 0; e < n_embd; e++) dot += (double)R->w[e] * x[e];
    return (float)(dot * sf_route_inv_rms(x, n_embd, eps)) + R->bias;
}

const sf_sidecar_kind sf_routes_sidecar = {"routes", SF_ROUTES_ARCH, "sparsefuse.routes", SF_ROUTES_VERSION};

/* f32[n_layer] under key. */
static int layer_floats(const sf_gguf *g, const char *path, const char *key, int n_layer, float *out) {
    sf_gguf_vtype et;
    uint64_t n;
    const void *data;
    int rc = sf_gguf_get_arr_data(g, key, &et, &n, &data);
    if (rc == SF_ERR_RANGE) return sf_fail(SF_ERR_FORMAT, "%s: %s is missing", path, key);
    if (rc) return rc;
    if (n != (uint64_t)n_layer)
        return sf_fail(SF_ERR_FORMAT, "%s: %s has %llu entries, the model has %d layers", path, key,
                       (unsigned long long)n, n_layer);
    for (int i = 0; i < n_layer; i++) {
        out[i] = (float)sf_gguf_arr_get_f64(et, data, (uint64_t)i);
        if (!isfinite(out[i])) return sf_fail(SF_ERR_FORMAT, "%s: %s[%d] is not finite", path, key, i);
    }
    return SF_OK;
}

/* i32 layer list under key (absent: empty) into mark[n_layer]. */
static int layer_list(const sf_gguf *g, const char *path, const char *key, int n_layer, bool *mark) {
    sf_gguf_vtype et;
    uint64_t n;
    const void *data;
    int rc = sf_gguf_get_arr_data(g, key, &et, &n, &data);
    if (rc == SF_ERR_RANGE) return SF_OK;
    if (rc) return rc;
    for (uint64_t i = 0; i < n; i++) {
        const int64_t l = sf_gguf_arr_get_i64(et, data, i);
        if (l < 0 || l >= n_layer)
            return sf_fail(SF_ERR_FORMAT, "%s: %s names block %lld; the model has blocks 0..%d", path, key,
                           (long long)l, n_layer - 1);
        mark[l] = true;
    }
    return SF_OK;
}

static int bind(sf_routes *r, const char *path, const sf_model *m) {
    const sf_gguf *g = r->g;
    int rc = sf_sidecar_check(g, path, m, &sf_routes_sidecar);
    if (rc) return rc;
    const int L = m->n_layer;
    r->n_layer = L;
    r->n_embd = m->n_embd;
    r->layers = calloc((size_t)L, sizeof *r->layers);
    float *f = malloc(sizeof(float) * 3 * (size_t)L);
    bool *mark = calloc(2 * (size_t)L, sizeof *mark);
    if (!r->layers || !f || !mark) rc = sf_fail(SF_ERR_NOMEM, "out of memory");
    if (!rc) rc = layer_floats(g, path, "sparsefuse.routes.capacity", L, f);
    if (!rc) rc = layer_floats(g, path, "sparsefuse.routes.threshold", L, f + L);
    if (!rc) rc = layer_floats(g, path, "sparsefuse.routes.bias", L, f + 2 * L);
    if (!rc) rc = layer_list(g, path, "sparsefuse.routes.routed", L, mark);
    if (!rc) rc = layer_list(g, path, "sparsefuse.routes.dropped", L, mark + L);
    for (int l = 0; !rc && l < L; l++) {
        sf_route_layer *R = &r->layers[l];
        R->routed = mark[l];
        R->dropped = mark[L + l];
        R->capacity = f[l];
        R->threshold = f[L + l];
        R->bias = f[2 * L + l];
        if (R->routed && R->dropped)
            rc = sf_fail(SF_ERR_FORMAT, "%s: block %d is both routed and dropped", path, l);
        else if (R->routed && !(R->capacity > 0 && R->capacity <= 1))
            rc = sf_fail(SF_ERR_FORMAT, "%s: block %d has capacity %g, outside (0, 1]", path, l, R->capacity);
        else if (R->routed && m->layers[l].group_first != m->layers[l].group_last)
            rc = sf_fail(SF_ERR_UNSUPPORTED, "%s: block %d is in a parallel group; routed blocks cannot be", path, l);
        if (rc || !R->routed) continue;
        char name[64];
        snprintf(name, sizeof name, "blk.%d.route_w", l);
        const sf_gguf_tensor *t = sf_gguf_find_tensor(g, name);
        if (!t) rc = sf_fail(SF_ERR_FORMAT, "%s: tensor %s is missing", path, name);
        else if (t->type != SF_TYPE_F32 || t->ne[0] != m->n_embd || t->ne[1] != 1)
            rc = sf_fail(SF_ERR_FORMAT, "%s: tensor %s must be f32 [%d]", path, name, m->n_embd);
        else R->w = t->data;
    }
    free(f);
    free(mark);
    return rc;
}

int sf_routes_open(const char *path, const sf_model *m, sf_routes **out) {
    *out = NULL;
    sf_routes *r = calloc(1, sizeof *r);
    if (!r) return sf_fail(SF_ERR_NOMEM, "out of memory");
    int rc = sf_gguf_open(path, &r->g);
    if (!rc) rc = bind(r, path, m);
    if (rc) {
        sf_routes_free(r);
        return rc;
    }
    *out = r;
    return SF_OK;
}

void sf_routes_free(sf_routes *r) {
    if (!r) return;
    sf_gguf_close(r->g);
    free(r->layers);
    free(r->kth_sum);
    free(r->kth_n);
    free(r);
}

/* Layer numbers where mark is set, as an i32 list key (left out if empty). */
static int write_list(sf_gguf_writer *w, const char *key, const sf_route_layer *layers, int L, bool dropped) {
    int32_t *v = malloc(sizeof(int32_t) * (size_t)L);
    if (!v) return sf_fail(SF_ERR_NOMEM, "out of memory");
    int n = 0;
    for (int l = 0; l < L; l++)
        if (dropped ? layers[l].dropped : layers[l].routed) v[n++] = l;
    int rc = n ? sf_gguf_writer_set_arr(w, key, SF_GGUF_I32, v, (uint64_t)n) : SF_OK;
    free(v);
    return rc;
}

int sf_routes_write(const char *path, const sf_model *m, const sf_route_layer *layers, const char *target) {
    const int L = m->n_layer;
    sf_gguf_writer *w = sf_gguf_writer_new();
    float *f = malloc(sizeof(float) * 3 * (size_t)L);
    if (!w || !f) {
        sf_gguf_writer_free(w);
        free(f);
        return sf_fail(SF_ERR_NOMEM, "out of memory");
    }
    for (int l = 0; l < L; l++) {
        f[l] = layers[l].routed ? layers[l].capacity : 1.0f;
        f[L + l] = layers[l].routed ? layers[l].threshold : 0.0f;
        f[2 * L + l] = layers[l].routed ? layers[l].bias : 0.0f;
    }
    int rc = sf_sidecar_write_header(w, m, &sf_routes_sidecar);
    if (!rc) rc = sf_gguf_writer_set_str(w, "sparsefuse.routes.target", target);
    if (!rc) rc = write_list(w, "sparsefuse.routes.routed", layers, L, false);
    if (!rc) rc = write_list(w, "sparsefuse.routes.dropped", layers, L, true);
    if (!rc) rc = sf_gguf_writer_set_arr(w, "sparsefuse.routes.capacity", SF_GGUF_F32, f, (uint64_t)L);
    if (!rc) rc = sf_gguf_writer_set_arr(w, "sparsefuse.routes.threshold", SF_GGUF_F32, f + L, (uint64_t)L);
    if (!rc) rc = sf_gguf_writer_set_arr(w, "sparsefuse.routes.bias", SF_GGUF_F32, f + 2 * L, (uint64_t)L);
    char names[64];
    for (int l = 0; !rc && l < L; l++) {
        if (!layers[l].routed) continue;
        snprintf(names, sizeof names, "blk.%d.route_w", l);
        const int64_t ne[1] = {m->n_embd};
        rc = sf_gguf_writer_add_tensor(w, names, SF_TYPE_F32, 1, ne, layers[l].w, sizeof(float) * (size_t)m->n_embd);
    }
    if (!rc) rc = sf_gguf_writer_finish(w, path);
    sf_gguf_writer_free(w);
    free(f);
    return rc;
}
