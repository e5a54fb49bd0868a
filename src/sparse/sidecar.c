/* Reading a sparsity side-car: every key and tensor validated against the
 * base model before the forward pass can see it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "sparse/sparse.h"

const char *const sf_sparse_site_names[SF_SITES] = {"ffn_in", "ffn_hidden", "attn_in", "attn_out"};

static const char *const g_method_names[SF_SPARSE_METHODS] = {"teal", "cats", "wina", "predictor"};

const char *sf_sparse_method_name(sf_sparse_method m) {
    return m >= 0 && m < SF_SPARSE_METHODS ? g_method_names[m] : "unknown";
}

int sf_sparse_method_parse(const char *name, sf_sparse_method *out) {
    for (int i = 0; i < SF_SPARSE_METHODS; i++)
        if (name && strcmp(name, g_method_names[i]) == 0) {
            *out = (sf_sparse_method)i;
            return SF_OK;
        }
    return sf_fail(SF_ERR_ARG, "unknown sparsity method '%s' (teal, cats, wina, predictor)", name ? name : "");
}

int sf_sparse_type_parse(const char *name) {
    for (int t = 0; name && t < SF_TYPE_COUNT; t++)
        if (sf_type_info_of(t) && strcasecmp(sf_type_name(t), name) == 0) return t;
    return -1;
}

static int need_u32(const sf_gguf *g, const char *path, const char *key, uint32_t *v) {
    int rc = sf_gguf_get_u32(g, key, v);
    if (rc == SF_ERR_RANGE) return sf_fail(SF_ERR_FORMAT, "%s: not a sparsity side-car: %s is missing", path, key);
    return rc;
}

/* f32[n_layer] array under key. */
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
        if (!isfinite(out[i]) || out[i] < 0)
            return sf_fail(SF_ERR_FORMAT, "%s: %s[%d] = %g is not a finite value >= 0", path, key, i, out[i]);
    }
    return SF_OK;
}

/* Tensor `name` with ne = {ne0, ne1}, a type whose block divides ne0 and
 * that the engine computes on; F32 where f32. */
static int need_tensor(const sf_gguf *g, const char *path, const char *name, int64_t ne0, int64_t ne1, bool f32,
                       const sf_gguf_tensor **out) {
    const sf_gguf_tensor *t = sf_gguf_find_tensor(g, name);
    if (!t) return sf_fail(SF_ERR_FORMAT, "%s: tensor %s is missing", path, name);
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return sf_fail(SF_ERR_FORMAT, "%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld] for this model",
                       path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)ne0, (long long)ne1);
    const sf_type_traits *tr = sf_type_ref(t->type);
    if (f32 ? t->type != SF_TYPE_F32 : (!tr || !tr->dequantize || ne0 % tr->block_size != 0))
        return sf_fail(SF_ERR_UNSUPPORTED, "%s: tensor %s has type %s, which sparse kernels cannot read", path,
                       name, sf_type_name(t->type));
    *out = t;
    return SF_OK;
}

const sf_sidecar_kind sf_sparse_sidecar = {"sparsity", SF_SPARSE_ARCH, "sparsefuse.sparsity", SF_SPARSE_VERSION};

static int bind(sf_sparse *s, const char *path, const sf_model *m) {
    const sf_gguf *g = s->g;
    int rc = sf_sidecar_check(g, path, m, &sf_sparse_sidecar);
    if (rc) return rc;
    sf_gguf_str method;
    if (sf_gguf_get_str(g, "sparsefuse.sparsity.method", &method) != SF_OK)
        return sf_fail(SF_ERR_FORMAT, "%s: sparsefuse.sparsity.method is missing", path);
    char mname[16] = "";
    if (method.len < sizeof mname) memcpy(mname, method.ptr, method.len);
    if (sf_sparse_method_parse(mname, &s->method) != SF_OK)
        return sf_fail(SF_ERR_FORMAT, "%s: unknown sparsity method '%.*s'", path, (int)method.len, method.ptr);
    if (sf_gguf_get_f32(g, "sparsefuse.sparsity.target", &s->target) != SF_OK) s->target = NAN;
    if (s->method == SF_SPARSE_PREDICTOR) {
        uint32_t rank;
        rc = need_u32(g, path, "sparsefuse.sparsity.predictor.rank", &rank);
        if (!rc && (rank < 32 || rank % 32 != 0 || rank > (uint32_t)m->n_embd))
            rc = sf_fail(SF_ERR_FORMAT, "%s: predictor rank %u is not a multiple of 32 in [32, n_embd]", path, rank);
        if (rc) return rc;
        s->rank = (int)rank;
    }

    s->n_layer = m->n_layer;
    s->layers = calloc((size_t)m->n_layer, sizeof *s->layers);
    float *vals = malloc(sizeof(float) * 2 * (size_t)m->n_layer);
    if (!s->layers || !vals) {
        free(vals);
        return sf_fail(SF_ERR_NOMEM, "out of memory reading %s", path);
    }
    char key[160];
    for (int site = 0; !rc && site < SF_SITES; site++) {
        snprintf(key, sizeof key, "sparsefuse.sparsity.%s.threshold", sf_sparse_site_names[site]);
        if (site >= SF_SITE_ATTN_IN && sf_gguf_find_key(g, key) < 0) continue; /* attention dense */
        rc = layer_floats(g, path, key, m->n_layer, vals);
        snprintf(key, sizeof key, "sparsefuse.sparsity.%s.level", sf_sparse_site_names[site]);
        if (!rc) rc = layer_floats(g, path, key, m->n_layer, vals + m->n_layer);
        for (int l = 0; !rc && l < m->n_layer; l++) {
            sf_sparse_rule *r = &s->layers[l].site[site];
            r->threshold = vals[l];
            r->level = vals[m->n_layer + l];
            if (r->level >= 1) rc = sf_fail(SF_ERR_FORMAT, "%s: %s[%d] = %g is not below 1", path, key, l, r->level);
            r->on = r->level > 0;
        }
    }
    if (!rc && s->method == SF_SPARSE_PREDICTOR) {
        rc = layer_floats(g, path, "sparsefuse.sparsity.predictor.threshold", m->n_layer, vals);
        for (int l = 0; !rc && l < m->n_layer; l++) s->layers[l].pred_threshold = vals[l];
    }
    free(vals);
    for (int l = 0; !rc && l < m->n_layer; l++) {
        const sf_layer *L = &m->layers[l];
        sf_sparse_layer *S = &s->layers[l];
        const bool any = S->site[SF_SITE_FFN_IN].on || S->site[SF_SITE_FFN_HIDDEN].on;
        if (any && (L->ffn != SF_FFN_DENSE || L->group_first != L->group_last))
            return sf_fail(SF_ERR_UNSUPPORTED, "%s: layer %d is sparse but has no FFN of its own in this model", path,
                           l);
        if ((s->method == SF_SPARSE_CATS || s->method == SF_SPARSE_PREDICTOR) && S->site[SF_SITE_FFN_IN].on)
            return sf_fail(SF_ERR_FORMAT, "%s: layer %d: %s has no ffn_in site", path, l,
                           sf_sparse_method_name(s->method));
        if (S->site[SF_SITE_FFN_IN].on) {
            snprintf(key, sizeof key, "blk.%d.ffn_gate_t", l);
            rc = need_tensor(g, path, key, L->n_ff, m->n_embd, false, &S->gate_t);
            snprintf(key, sizeof key, "blk.%d.ffn_up_t", l);
            if (!rc) rc = need_tensor(g, path, key, L->n_ff, m->n_embd, false, &S->up_t);
            /* the two are computed on one column slice per thread */
            if (!rc && S->gate_t->type != S->up_t->type)
                rc = sf_fail(SF_ERR_FORMAT, "%s: blk.%d.ffn_gate_t and ffn_up_t have different types", path, l);
        }
        if (!rc && S->site[SF_SITE_FFN_HIDDEN].on) {
            snprintf(key, sizeof key, "blk.%d.ffn_down_t", l);
            rc = need_tensor(g, path, key, m->n_embd, L->n_ff, false, &S->down_t);
            const sf_gguf_tensor *b;
            snprintf(key, sizeof key, "blk.%d.ffn_down_b", l);
            if (!rc && sf_gguf_find_tensor(g, key)) {
                rc = need_tensor(g, path, key, m->n_embd, 1, true, &b);
                if (!rc) S->down_b = b->data;
            }
        }
        const bool attn_in = S->site[SF_SITE_ATTN_IN].on, attn_out = S->site[SF_SITE_ATTN_OUT].on;
        if (!rc && (attn_in || attn_out) && (s->method != SF_SPARSE_TEAL || L->attn != SF_ATTN_DENSE))
            rc = sf_fail(SF_ERR_FORMAT, "%s: layer %d: attention sparsity needs teal and full attention", path, l);
        if (!rc && attn_in) {
            snprintf(key, sizeof key, "blk.%d.attn_q_t", l);
            rc = need_tensor(g, path, key, L->wq->ne[1], m->n_embd, false, &S->q_t);
            snprintf(key, sizeof key, "blk.%d.attn_k_t", l);
            if (!rc) rc = need_tensor(g, path, key, L->wk->ne[1], m->n_embd, false, &S->k_t);
            snprintf(key, sizeof key, "blk.%d.attn_v_t", l);
            if (!rc) rc = need_tensor(g, path, key, L->wv->ne[1], m->n_embd, false, &S->v_t);
        }
        if (!rc && attn_out) {
            snprintf(key, sizeof key, "blk.%d.attn_output_t", l);
            rc = need_tensor(g, path, key, m->n_embd, L->wo->ne[0], false, &S->o_t);
        }
        if (!rc && s->method == SF_SPARSE_PREDICTOR && S->site[SF_SITE_FFN_HIDDEN].on) {
            const sf_gguf_tensor *a, *b;
            snprintf(key, sizeof key, "blk.%d.ffn_pred_a", l);
            rc = need_tensor(g, path, key, m->n_embd, s->rank, false, &a);
            snprintf(key, sizeof key, "blk.%d.ffn_pred_b", l);
            if (!rc) rc = need_tensor(g, path, key, s->rank, L->n_ff, false, &b);
            if (!rc && (a->type != SF_TYPE_Q8_0 || b->type != SF_TYPE_Q8_0))
                rc = sf_fail(SF_ERR_FORMAT, "%s: layer %d: the predictor's matrices are not Q8_0", path, l);
            if (!rc) S->pred = (sf_predictor){a->data, b->data, s->rank, m->n_embd, L->n_ff};
        }
        if (!rc && s->method == SF_SPARSE_WINA) {
            const sf_gguf_tensor *t;
            if (S->site[SF_SITE_FFN_IN].on) {
                snprintf(key, sizeof key, "blk.%d.ffn_in_scale", l);
                rc = need_tensor(g, path, key, m->n_embd, 1, true, &t);
                if (!rc) S->site[SF_SITE_FFN_IN].scale = t->data;
            }
            if (!rc && S->site[SF_SITE_FFN_HIDDEN].on) {
                snprintf(key, sizeof key, "blk.%d.ffn_hidden_scale", l);
                rc = need_tensor(g, path, key, L->n_ff, 1, true, &t);
                if (!rc) S->site[SF_SITE_FFN_HIDDEN].scale = t->data;
            }
        }
    }
    return rc;
}

int sf_sparse_open(const char *path, const sf_model *m, sf_sparse **out) {
    *out = NULL;
    sf_sparse *s = calloc(1, sizeof *s);
    if (!s) return sf_fail(SF_ERR_NOMEM, "out of memory");
    int rc = sf_gguf_open(path, &s->g);
    if (!rc) rc = bind(s, path, m);
    if (rc) {
        sf_sparse_free(s);
        return rc;
    }
    *out = s;
    return SF_OK;
}

void sf_sparse_free(sf_sparse *s) {
    if (!s) return;
    sf_gguf_close(s->g);
    free(s->layers);
    free(s);
}
