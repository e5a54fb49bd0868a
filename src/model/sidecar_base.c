/* What binds a side-car (sparsity, routes) to its base model: the model's
 * fingerprint (shapes, tensor names and types, a few bytes of every tensor)
 * and the header keys that record it. */
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "model/model.h"

/* FNV-1a, 64 bit */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t sf_model_fingerprint(const sf_model *m) {
    uint64_t h = 0xcbf29ce484222325ull;
    const int32_t dims[3] = {m->n_layer, m->n_embd, m->n_vocab};
    h = fnv(h, dims, sizeof dims);
    for (int64_t i = 0; i < sf_gguf_n_tensors(m->gguf); i++) {
        const sf_gguf_tensor *t = sf_gguf_tensor_at(m->gguf, i);
        h = fnv(h, t->name, strlen(t->name));
        const int64_t shape[5] = {t->type, t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        h = fnv(h, shape, sizeof shape);
        /* the first and last 64 bytes of the data: weights that were changed
         * (healed, requantized) under the same names give another hash */
        const size_t k = t->nbytes < 64 ? t->nbytes : 64;
        h = fnv(h, t->data, k);
        h = fnv(h, (const unsigned char *)t->data + t->nbytes - k, k);
    }
    return h;
}

static int need_u32(const sf_gguf *g, const char *path, const char *kind, const char *key, uint32_t *v) {
    int rc = sf_gguf_get_u32(g, key, v);
    if (rc == SF_ERR_RANGE) return sf_fail(SF_ERR_FORMAT, "%s: not a %s side-car: %s is missing", path, kind, key);
    return rc;
}

int sf_sidecar_check(const sf_gguf *g, const char *path, const sf_model *m, const sf_sidecar_kind *k) {
    sf_gguf_str arch;
    if (sf_gguf_get_str(g, "general.architecture", &arch) != SF_OK || arch.len != strlen(k->arch) ||
        memcmp(arch.ptr, k->arch, arch.len) != 0)
        return sf_fail(SF_ERR_FORMAT, "%s: not a %s side-car (general.architecture is not '%s')", path, k->name,
                       k->arch);
    char key[96];
    uint32_t version, n_layer, n_embd;
    snprintf(key, sizeof key, "%s.version", k->prefix);
    int rc = need_u32(g, path, k->name, key, &version);
    if (!rc && version != k->version)
        rc = sf_fail(SF_ERR_UNSUPPORTED, "%s: %s side-car version %u, this build reads version %u", path, k->name,
                     version, k->version);
    snprintf(key, sizeof key, "%s.base.n_layer", k->prefix);
    if (!rc) rc = need_u32(g, path, k->name, key, &n_layer);
    snprintf(key, sizeof key, "%s.base.n_embd", k->prefix);
    if (!rc) rc = need_u32(g, path, k->name, key, &n_embd);
    if (rc) return rc;
    uint64_t fp;
    snprintf(key, sizeof key, "%s.base.fingerprint", k->prefix);
    rc = sf_gguf_get_u64(g, key, &fp);
    if (rc == SF_ERR_RANGE) return sf_fail(SF_ERR_FORMAT, "%s: %s is missing", path, key);
    if (rc) return rc;
    sf_gguf_str base = {"", 0};
    snprintf(key, sizeof key, "%s.base.name", k->prefix);
    sf_gguf_get_str(g, key, &base);
    if ((int)n_layer != m->n_layer || (int)n_embd != m->n_embd || fp != sf_model_fingerprint(m))
        return sf_fail(SF_ERR_ARG,
                       "%s was written for another model ('%.*s', %u layers, n_embd %u); this model is '%s' "
                       "(%d layers, n_embd %d)%s",
                       path, (int)base.len, base.ptr, n_layer, n_embd, m->name ? m->name : "", m->n_layer, m->n_embd,
                       (int)n_layer == m->n_layer && (int)n_embd == m->n_embd ? " with other weights" : "");
    return SF_OK;
}

int sf_sidecar_write_header(sf_gguf_writer *w, const sf_model *m, const sf_sidecar_kind *k) {
    char key[96];
    int rc = sf_gguf_writer_set_str(w, "general.architecture", k->arch);
    snprintf(key, sizeof key, "%s.version", k->prefix);
    if (!rc) rc = sf_gguf_writer_set_u32(w, key, k->version);
    snprintf(key, sizeof key, "%s.base.name", k->prefix);
    if (!rc) rc = sf_gguf_writer_set_str(w, key, m->name ? m->name : "");
    snprintf(key, sizeof key, "%s.base.fingerprint", k->prefix);
    if (!rc) rc = sf_gguf_writer_set_u64(w, key, sf_model_fingerprint(m));
    snprintf(key, sizeof key, "%s.base.n_layer", k->prefix);
    if (!rc) rc = sf_gguf_writer_set_u32(w, key, (uint32_t)m->n_layer);
    snprintf(key, sizeof key, "%s.base.n_embd", k->prefix);
    if (!rc) rc = sf_gguf_writer_set_u32(w, key, (uint32_t)m->n_embd);
    return rc;
}
