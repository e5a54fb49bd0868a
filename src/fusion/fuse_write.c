/* sf_fuse_write: the source GGUF (llama or deci) -> a deci GGUF with dropped
 * attention, fused FFN groups and renumbered layers; a gemma3 source -> a
 * sparsefuse-only gemma3 GGUF with dropped attention and parallel FFN groups
 * (see fuse.h and ffn-fusion.md section 3.6). Tensors that do not change point into the
 * source mapping; only fused tensors are built in memory. */
#include "fusion/fuse.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/log.h"
#include "fusion/fuse_impl.h"
#include "gguf/gguf.h"

sf_fuse_options sf_fuse_default_options(void) {
    sf_fuse_options o = {0};
    o.fused_type = -1;
    return o;
}

/* The source model: its file and the per-layer facts the plan depends on. */
typedef struct {
    const char *path;
    sf_gguf *g;
    char arch[16];
    bool post_norms;                 /* gemma3: sub-block outputs are normed before the residual add */
    int n_layer, n_embd;
    int *n_head, *n_head_kv, *n_ff; /* [n_layer] each, one allocation */
    int *tensor_layer;               /* [n_tensors] layer of blk.N.* tensors, -1 for the others */
    const char **tensor_suffix;      /* [n_tensors] the part after "blk.N." */
} source;

static void source_close(source *s) {
    sf_gguf_close(s->g);
    free(s->n_head);
    free(s->tensor_layer);
    free(s->tensor_suffix);
}

static int arch_u32(const source *s, const char *suffix, uint32_t *out) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", s->arch, suffix);
    int rc = sf_gguf_get_u32(s->g, key, out);
    if (rc == SF_ERR_RANGE) return sf_fail(SF_ERR_FORMAT, "missing key '%s'", key);
    return rc;
}

static int per_layer(const source *s, const char *suffix, uint32_t *tmp, int *out, bool required) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", s->arch, suffix);
    int rc = sf_gguf_get_u32_per_layer(s->g, key, s->n_layer, tmp);
    if (rc == SF_ERR_RANGE && !required) return rc;
    if (rc == SF_ERR_RANGE) return sf_fail(SF_ERR_FORMAT, "missing key '%s'", key);
    if (rc) return rc;
    for (int l = 0; l < s->n_layer; l++) {
        if (tmp[l] > (1u << 24)) return sf_fail(SF_ERR_FORMAT, "%s[%d] = %u is out of range", key, l, tmp[l]);
        out[l] = (int)tmp[l];
    }
    return SF_OK;
}

static int source_open(const char *path, source *s) {
    memset(s, 0, sizeof *s);
    s->path = path;
    int rc = sf_gguf_open(path, &s->g);
    if (rc) return rc;
    if ((rc = sf_fuse_check_arch(s->g, path, s->arch, sizeof s->arch))) return rc;
    s->post_norms = strcmp(s->arch, "gemma3") == 0;
    uint32_t u;
    if ((rc = arch_u32(s, "block_count", &u))) return rc;
    if (u == 0 || u > 4096) return sf_fail(SF_ERR_FORMAT, "%s.block_count = %u is out of range", s->arch, u);
    s->n_layer = (int)u;
    if ((rc = arch_u32(s, "embedding_length", &u))) return rc;
    s->n_embd = (int)u;
    const int L = s->n_layer;
    s->n_head = calloc((size_t)L * 3, sizeof *s->n_head);
    uint32_t *tmp = calloc((size_t)L, sizeof *tmp);
    int64_t nt = sf_gguf_n_tensors(s->g);
    s->tensor_layer = calloc((size_t)nt + 1, sizeof *s->tensor_layer);
    s->tensor_suffix = calloc((size_t)nt + 1, sizeof *s->tensor_suffix);
    if (!s->n_head || !tmp || !s->tensor_layer || !s->tensor_suffix) {
        free(tmp);
        return sf_fail(SF_ERR_NOMEM, "out of memory");
    }
    s->n_head_kv = s->n_head + L;
    s->n_ff = s->n_head + 2 * L;
    rc = per_layer(s, "attention.head_count", tmp, s->n_head, true);
    if (!rc) {
        rc = per_layer(s, "attention.head_count_kv", tmp, s->n_head_kv, false);
        if (rc == SF_ERR_RANGE) { memcpy(s->n_head_kv, s->n_head, (size_t)L * sizeof(int)); rc = SF_OK; }
    }
    if (!rc) rc = per_layer(s, "feed_forward_length", tmp, s->n_ff, true);
    free(tmp);
    if (rc) return rc;
    for (int64_t i = 0; i < nt; i++) {
        const char *name = sf_gguf_tensor_at(s->g, i)->name;
        s->tensor_layer[i] = -1;
        int layer, used = 0;
        if (strncmp(name, "blk.", 4) == 0 && sscanf(name, "blk.%d.%n", &layer, &used) == 1 && used > 0) {
            if (layer < 0 || layer >= L)
                return sf_fail(SF_ERR_FORMAT, "tensor '%s' belongs to layer %d, but the model has %d layers", name, layer, L);
            s->tensor_layer[i] = layer;
            s->tensor_suffix[i] = name + used;
        }
    }
    return SF_OK;
}

/* ---- metadata ------------------------------------------------------------- */

/* Copies metadata entry i of g under another key (the writer's copy_kv keeps
 * the key). F64 values pass through f32, which no llama key needs. */
static int copy_kv_as(sf_gguf_writer *w, const sf_gguf *g, int64_t i, const char *key) {
    const char *src = sf_gguf_key_at(g, i);
    sf_gguf_vtype t = sf_gguf_kv_type(g, i);
    int rc;
    switch (t) {
    case SF_GGUF_U8: case SF_GGUF_U16: case SF_GGUF_U32: case SF_GGUF_U64: {
        uint64_t v;
        if ((rc = sf_gguf_get_u64(g, src, &v))) return rc;
        uint8_t v8 = (uint8_t)v; uint16_t v16 = (uint16_t)v; uint32_t v32 = (uint32_t)v;
        const void *p = t == SF_GGUF_U8 ? (const void *)&v8 : t == SF_GGUF_U16 ? (const void *)&v16
                      : t == SF_GGUF_U32 ? (const void *)&v32 : (const void *)&v;
        return sf_gguf_writer_set_scalar(w, key, t, p);
    }
    case SF_GGUF_I8: case SF_GGUF_I16: case SF_GGUF_I32: case SF_GGUF_I64: {
        int64_t v;
        if ((rc = sf_gguf_get_i64(g, src, &v))) return rc;
        int8_t v8 = (int8_t)v; int16_t v16 = (int16_t)v; int32_t v32 = (int32_t)v;
        const void *p = t == SF_GGUF_I8 ? (const void *)&v8 : t == SF_GGUF_I16 ? (const void *)&v16
                      : t == SF_GGUF_I32 ? (const void *)&v32 : (const void *)&v;
        return sf_gguf_writer_set_scalar(w, key, t, p);
    }
    case SF_GGUF_F32: case SF_GGUF_F64: {
        float f;
        if ((rc = sf_gguf_get_f32(g, src, &f))) return rc;
        double d = f;
        return t == SF_GGUF_F32 ? sf_gguf_writer_set_f32(w, key, f) : sf_gguf_writer_set_scalar(w, key, t, &d);
    }
    case SF_GGUF_BOOL: {
        bool b;
        if ((rc = sf_gguf_get_bool(g, src, &b))) return rc;
        return sf_gguf_writer_set_bool(w, key, b);
    }
    case SF_GGUF_STRING: {
        sf_gguf_str s;
        if ((rc = sf_gguf_get_str(g, src, &s))) return rc;
        char *z = malloc(s.len + 1);
        if (!z) return sf_fail(SF_ERR_NOMEM, "out of memory");
        memcpy(z, s.ptr, s.len);
        z[s.len] = '\0';
        rc = sf_gguf_writer_set_str(w, key, z);
        free(z);
        return rc;
    }
    case SF_GGUF_ARRAY: {
        sf_gguf_vtype et = sf_gguf_arr_type(g, i);
        uint64_t n;
        if (et == SF_GGUF_STRING) {
            const sf_gguf_str *items;
            if ((rc = sf_gguf_get_arr_str(g, src, &n, &items))) return rc;
            return sf_gguf_writer_set_arr_str(w, key, items, n);
        }
        if (et == SF_GGUF_ARRAY) return sf_fail(SF_ERR_UNSUPPORTED, "key '%s': nested arrays cannot be renamed", src);
        const void *data;
        if ((rc = sf_gguf_get_arr_data(g, src, &et, &n, &data))) return rc;
        return sf_gguf_writer_set_arr(w, key, et, data, n);
    }
    default:
        return sf_fail(SF_ERR_FORMAT, "key '%s' has an unknown type %d", src, (int)t);
    }
}

/* The output's per-layer arrays and the map back to source layers. */
typedef struct {
    int n;                      /* output layers */
    int32_t *head, *head_kv, *ff, *src_layer; /* [n] each, one allocation */
} out_layers;

static int set_i32_arr(sf_gguf_writer *w, const char *key, const int32_t *v, int n) {
    return sf_gguf_writer_set_arr(w, key, SF_GGUF_I32, v, (uint64_t)n);
}

static int write_metadata(sf_gguf_writer *w, const source *s, const sf_fuse_plan *p, const out_layers *o,
                          const int *new_index, const sf_layer_range *parallel, int n_parallel, bool only) {
    const sf_gguf *g = s->g;
    const size_t alen = strlen(s->arch);
    const char *out_arch = s->post_norms ? s->arch : "deci";
    bool have_k = false, have_v = false, have_rot = false, dropped_sf = false;
    int rc = SF_OK;
    for (int64_t i = 0; i < sf_gguf_n_kv(g) && !rc; i++) {
        const char *key = sf_gguf_key_at(g, i);
        if (strcmp(key, "general.architecture") == 0) {
            rc = sf_gguf_writer_set_str(w, key, out_arch);
        } else if (strncmp(key, "sparsefuse.", 11) == 0) {
            dropped_sf = true; /* described the source's own numbering */
        } else if (strncmp(key, s->arch, alen) == 0 && key[alen] == '.') {
            const char *suffix = key + alen + 1;
            char nk[256];
            snprintf(nk, sizeof nk, "%s.%s", out_arch, suffix);
            if (strcmp(suffix, "block_count") == 0) rc = sf_gguf_writer_set_u32(w, nk, (uint32_t)o->n);
            else if (strcmp(suffix, "attention.head_count") == 0) rc = set_i32_arr(w, nk, o->head, o->n);
            else if (strcmp(suffix, "attention.head_count_kv") == 0) rc = set_i32_arr(w, nk, o->head_kv, o->n);
            else if (strcmp(suffix, "feed_forward_length") == 0) rc = set_i32_arr(w, nk, o->ff, o->n);
            else rc = copy_kv_as(w, g, i, nk);
            have_k |= strcmp(suffix, "attention.key_length") == 0;
            have_v |= strcmp(suffix, "attention.value_length") == 0;
            have_rot |= strcmp(suffix, "rope.dimension_count") == 0;
        } else {
            rc = sf_gguf_writer_copy_kv(w, g, i); /* general.*, tokenizer.*, others */
        }
    }
    if (rc) return rc;
    if (dropped_sf) sf_log_warn("%s: its sparsefuse.* keys were not copied (they describe its own layer numbering)", s->path);
    /* head_count_kv may have been implicit; the head size must not be
     * derived from a layer that lost its heads */
    char key[64];
    snprintf(key, sizeof key, "%s.attention.head_count_kv", out_arch);
    if (!rc) rc = set_i32_arr(w, key, o->head_kv, o->n);
    if (!rc && only)
        rc = sf_gguf_writer_set_str(w, "sparsefuse.only",
                                    "llama.cpp's gemma3 has no layers without attention and no parallel blocks");
    if (!rc && (!have_k || !have_v || !have_rot)) {
        /* llama.cpp's defaults made explicit: key_length = n_embd / n_head,
         * value_length and rope.dimension_count = key_length */
        uint32_t hd = 0;
        if (have_k) rc = arch_u32(s, "attention.key_length", &hd);
        else {
            int heads = 0;
            for (int l = 0; l < s->n_layer && !heads; l++) heads = s->n_head[l];
            if (heads <= 0 || s->n_embd % heads)
                return sf_fail(SF_ERR_FORMAT, "cannot derive the head size (n_embd %d, first head count %d)",
                               s->n_embd, heads);
            hd = (uint32_t)(s->n_embd / heads);
        }
        static const char *const what[3] = {"attention.key_length", "attention.value_length", "rope.dimension_count"};
        const bool have[3] = {have_k, have_v, have_rot};
        for (int i = 0; i < 3 && !rc; i++) {
            snprintf(key, sizeof key, "%s.%s", out_arch, what[i]);
            if (!have[i]) rc = sf_gguf_writer_set_u32(w, key, hd);
        }
    }
    if (rc) return rc;

    /* the plan */
    int32_t *v = malloc(sizeof *v * (size_t)(2 * (p->n_fuse + n_parallel) + s->n_layer + 1));
    if (!v) return sf_fail(SF_ERR_NOMEM, "out of memory");
    if (p->n_fuse > 0) {
        for (int k = 0; k < p->n_fuse; k++) { v[2 * k] = p->fuse[k].first; v[2 * k + 1] = p->fuse[k].last; }
        rc = set_i32_arr(w, "sparsefuse.fusion.groups", v, 2 * p->n_fuse);
        if (!rc) rc = sf_gguf_writer_set_str(w, "sparsefuse.fusion.norm", sf_fuse_norm_name(p->norm));
    }
    int nd = 0;
    for (int l = 0; l < s->n_layer; l++)
        if (p->drop_attn && p->drop_attn[l]) v[nd++] = l;
    if (!rc && nd) rc = set_i32_arr(w, "sparsefuse.fusion.attn_dropped", v, nd);
    nd = 0;
    for (int l = 0; l < s->n_layer; l++)
        if (p->drop_block && p->drop_block[l]) v[nd++] = l;
    if (!rc && nd) rc = set_i32_arr(w, "sparsefuse.fusion.blocks_removed", v, nd);
    if (!rc) rc = set_i32_arr(w, "sparsefuse.fusion.source_layer", o->src_layer, o->n);
    if (!rc && n_parallel > 0) {
        for (int k = 0; k < n_parallel; k++) {
            v[2 * k] = new_index[parallel[k].first];
            v[2 * k + 1] = new_index[parallel[k].last];
        }
        rc = set_i32_arr(w, "sparsefuse.parallel_blocks", v, 2 * n_parallel);
    }
    free(v);
    return rc;
}

/* ---- tensors -------------------------------------------------------------- */

typedef struct {
    sf_fused_tensor *t; /* [3 * n_groups] gate, up, down */
    float **ones;       /* [n_groups] folded ffn_norm weights, NULL otherwise */
    int n_groups;
} fused_store;

static void fused_store_free(fused_store *f) {
    if (f->t)
        for (int i = 0; i < 3 * f->n_groups; i++) sf_fused_tensor_free(&f->t[i]);
    if (f->ones)
        for (int i = 0; i < f->n_groups; i++) free(f->ones[i]);
    free(f->t);
    free(f->ones);
}

static int add_renamed(sf_gguf_writer *w, const sf_gguf_tensor *t, int layer, const char *suffix, sf_fuse_report *r) {
    char name[256];
    snprintf(name, sizeof name, "blk.%d.%s", layer, suffix);
    r->n_tensors++;
    r->data_bytes += t->nbytes;
    return sf_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
}

static const sf_gguf_tensor *member_tensor(const source *s, int layer, const char *what) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s.weight", layer, what);
    return sf_gguf_find_tensor(s->g, name);
}

/* Builds and adds the fused layer of group gi = [a..b] as output layer ni. */
static int add_group(sf_gguf_writer *w, const source *s, const sf_fuse_plan *p, int gi, int ni, int fused_type,
                     fused_store *fs, sf_fuse_report *r) {
    const int a = p->fuse[gi].first, b = p->fuse[gi].last, k = b - a + 1;
    const int64_t E = s->n_embd;
    /* members may hold only the FFN (and the attention being dropped) */
    for (int64_t i = 0; i < sf_gguf_n_tensors(s->g); i++) {
        int l = s->tensor_layer[i];
        if (l < a || l > b) continue;
        const char *suf = s->tensor_suffix[i];
        if (strncmp(suf, "attn_", 5) == 0) continue;
        if (strcmp(suf, "ffn_norm.weight") && strcmp(suf, "ffn_gate.weight") && strcmp(suf, "ffn_up.weight") &&
            strcmp(suf, "ffn_down.weight"))
            return sf_fail(SF_ERR_UNSUPPORTED,
                           "fuse %d-%d: tensor '%s' cannot be fused (only ffn_norm, ffn_gate, ffn_up and ffn_down weights are)",
                           a, b, sf_gguf_tensor_at(s->g, i)->name);
    }
    const sf_gguf_tensor **m = calloc((size_t)k * 4, sizeof *m); /* [4][k] gate, up, down, norm */
    const float **gamma = calloc((size_t)k, sizeof *gamma);
    if (!m || !gamma) { free(m); free(gamma); return sf_fail(SF_ERR_NOMEM, "out of memory"); }
    static const char *const what[4] = {"ffn_gate", "ffn_up", "ffn_down", "ffn_norm"};
    int rc = SF_OK;
    int64_t width = 0;
    for (int j = 0; j < k && !rc; j++) {
        for (int q = 0; q < 4 && !rc; q++) {
            m[q * k + j] = member_tensor(s, a + j, what[q]);
            if (!m[q * k + j])
                rc = sf_fail(SF_ERR_FORMAT, "missing tensor 'blk.%d.%s.weight'", a + j, what[q]);
        }
        if (rc) break;
        const sf_gguf_tensor *nrm = m[3 * k + j];
        if (nrm->type != SF_TYPE_F32 || nrm->ne[0] != E || nrm->ne[1] != 1)
            rc = sf_fail(SF_ERR_FORMAT, "tensor '%s' must be F32 {%lld}", nrm->name, (long long)E);
        gamma[j] = nrm->data;
        width += s->n_ff[a + j];
    }
    sf_fused_tensor *ft = &fs->t[3 * gi];
    const bool folded = p->norm == SF_FUSE_NORM_FOLDED;
    if (!rc) rc = sf_fuse_stack_rows(m, k, folded ? gamma : NULL, fused_type, &ft[0]);
    if (!rc) rc = sf_fuse_stack_rows(m + k, k, folded ? gamma : NULL, fused_type, &ft[1]);
    if (!rc) rc = sf_fuse_concat_rows(m + 2 * k, k, fused_type, &ft[2]);
    if (!rc && (ft[0].ne[1] != width || ft[1].ne[1] != width || ft[2].ne[0] != width))
        rc = sf_fail(SF_ERR_FORMAT, "FFN tensor shapes do not match feed_forward_length (sum %lld)", (long long)width);
    if (rc) {
        free(m);
        free(gamma);
        return sf_fail_context(rc, "fuse %d-%d", a, b);
    }
    /* the group's norm: the last member's gamma, or ones with gamma folded */
    const void *norm_data = m[3 * k + k - 1]->data;
    if (folded) {
        float *ones = malloc((size_t)E * sizeof *ones);
        if (!ones) rc = sf_fail(SF_ERR_NOMEM, "out of memory");
        else for (int64_t c = 0; c < E; c++) ones[c] = 1.0f;
        fs->ones[gi] = ones;
        norm_data = ones;
    }
    free(m);
    free(gamma);
    if (rc) return rc;
    char name[96];
    snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", ni);
    rc = sf_gguf_writer_add_tensor(w, name, SF_TYPE_F32, 1, &E, norm_data, (size_t)E * sizeof(float));
    r->n_tensors++;
    r->data_bytes += (size_t)E * sizeof(float);
    for (int q = 0; q < 3 && !rc; q++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", ni, what[q]);
        if (ft[q].requantized) {
            r->n_requantized++;
            if (!ft[q].mixed) /* asked for: folding or a fused type */
                sf_log_info("%s (fuse %d-%d): %s, re-quantized to %s", name, a, b, ft[q].why, sf_type_name(ft[q].type));
            else
                sf_log_warn("%s (fuse %d-%d): %s: dequantized and re-quantized to %s", name, a, b, ft[q].why,
                            sf_type_name(ft[q].type));
        }
        rc = sf_gguf_writer_add_tensor(w, name, ft[q].type, 2, ft[q].ne, ft[q].data, ft[q].nbytes);
        r->n_tensors++;
        r->data_bytes += ft[q].nbytes;
    }
    return rc;
}

static int add_tensors(sf_gguf_writer *w, const source *s, const sf_fuse_plan *p, const int *new_index,
                       const int *group_of, const sf_fuse_options *opt, fused_store *fs, sf_fuse_report *r) {
    const int64_t nt = sf_gguf_n_tensors(s->g);
    int rc = SF_OK;
    for (int64_t i = 0; i < nt && !rc; i++) /* token_embd, output_norm, output, rope_freqs... */
        if (s->tensor_layer[i] < 0) {
            const sf_gguf_tensor *t = sf_gguf_tensor_at(s->g, i);
            rc = sf_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
            r->n_tensors++;
            r->data_bytes += t->nbytes;
        }
    int done = 0;
    for (int l = 0; l < s->n_layer && !rc; l++) {
        int gi = group_of[l];
        if (gi >= 0) {
            if (l != p->fuse[gi].first) continue;
            rc = add_group(w, s, p, gi, new_index[l], opt->fused_type, fs, r);
            if (!rc && opt->progress) opt->progress("fusing", ++done, p->n_fuse, opt->user);
            continue;
        }
        if (new_index[l] < 0) continue; /* a removed block */
        bool drop = p->drop_attn && p->drop_attn[l];
        for (int64_t i = 0; i < nt && !rc; i++) {
            if (s->tensor_layer[i] != l) continue;
            const char *suf = s->tensor_suffix[i];
            if (drop && (strncmp(suf, "attn_", 5) == 0 || strcmp(suf, "post_attention_norm.weight") == 0)) continue;
            rc = add_renamed(w, sf_gguf_tensor_at(s->g, i), new_index[l], suf, r);
        }
    }
    return rc;
}

/* ---- the whole transform ---------------------------------------------------- */

static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* A post-norm source keeps its numbering and runs each fusion group as a
 * parallel group (see fuse.h): the output's parallel groups are the plan's
 * and, there, its fusion groups, in layer order. *out is malloc'd. */
static int output_parallel(const source *s, const sf_fuse_plan *p, sf_layer_range **out, int *n) {
    const int nf = s->post_norms ? p->n_fuse : 0;
    *n = 0;
    *out = malloc(sizeof **out * (size_t)(p->n_parallel + nf + 1));
    if (!*out) return sf_fail(SF_ERR_NOMEM, "out of memory");
    for (int k = 0; k < p->n_parallel; k++) (*out)[(*n)++] = p->parallel[k];
    for (int k = 0; k < nf; k++) (*out)[(*n)++] = p->fuse[k];
    for (int i = 1; i < *n; i++) /* insertion sort by first layer; validation made them disjoint */
        for (int j = i; j > 0 && (*out)[j].first < (*out)[j - 1].first; j--) {
            sf_layer_range t = (*out)[j];
            (*out)[j] = (*out)[j - 1];
            (*out)[j - 1] = t;
        }
    return SF_OK;
}

static int fuse_write(const source *s, const sf_fuse_plan *p, const char *out_path, const sf_fuse_options *opt,
                      sf_fuse_report *r) {
    if (p->n_layer != s->n_layer)
        return sf_fail(SF_ERR_ARG, "the plan is for %d layers, but the model has %d", p->n_layer, s->n_layer);
    int rc = sf_fuse_plan_validate(p, s->n_head, s->n_ff);
    if (rc) return rc;
    const int L = s->n_layer;
    for (int l = 0; s->post_norms && p->drop_block && l < L; l++)
        if (p->drop_block[l])
            return sf_fail(SF_ERR_UNSUPPORTED, "%s: removing blocks of a %s model is not supported (its sliding-window "
                           "pattern follows the layer numbers); run the routes side-car instead",
                           s->path, s->arch);
    int *new_index = calloc((size_t)L * 3, sizeof *new_index);
    if (!new_index) return sf_fail(SF_ERR_NOMEM, "out of memory");
    int *group_of = new_index + L, *in_fusion = new_index + 2 * L;
    out_layers o = {0};
    o.n = sf_fuse_plan_map(p, new_index, group_of);
    for (int l = 0; l < L; l++) in_fusion[l] = group_of[l] >= 0;
    if (s->post_norms) { /* nothing is merged: layers keep their numbers */
        o.n = L;
        for (int l = 0; l < L; l++) {
            new_index[l] = l;
            group_of[l] = -1;
        }
    }
    sf_layer_range *parallel = NULL;
    int n_parallel = 0;
    rc = output_parallel(s, p, &parallel, &n_parallel);
    o.head = calloc((size_t)o.n * 4, sizeof *o.head);
    fused_store fs = {0};
    fs.n_groups = p->n_fuse;
    fs.t = calloc((size_t)p->n_fuse * 3 + 1, sizeof *fs.t);
    fs.ones = calloc((size_t)p->n_fuse + 1, sizeof *fs.ones);
    sf_gguf_writer *w = sf_gguf_writer_new();
    if (!rc && (!o.head || !fs.t || !fs.ones || !w)) rc = sf_fail(SF_ERR_NOMEM, "out of memory");
    if (!rc) {
        o.head_kv = o.head + o.n;
        o.ff = o.head + 2 * o.n;
        o.src_layer = o.head + 3 * o.n;
        for (int l = 0; l < L; l++) {
            int ni = new_index[l];
            if (ni < 0) continue; /* a removed block */
            bool drop = (p->drop_attn && p->drop_attn[l]) || in_fusion[l];
            if (group_of[l] < 0 || l == p->fuse[group_of[l]].first) o.src_layer[ni] = l;
            o.head[ni] = drop ? 0 : s->n_head[l];
            o.head_kv[ni] = drop ? 0 : s->n_head_kv[l];
            o.ff[ni] += s->n_ff[l];
            r->n_attn_dropped += p->drop_attn && p->drop_attn[l] && s->n_head[l] > 0;
        }
        r->n_layer_in = L;
        r->n_layer_out = o.n;
        r->n_groups = p->n_fuse;
        for (int g = 0; g < p->n_fuse; g++) r->n_fused_layers += p->fuse[g].last - p->fuse[g].first + 1;
        r->n_parallel = n_parallel;
        for (int l = 0; l < L; l++) r->sparsefuse_only |= s->post_norms && new_index[l] >= 0 && o.head[new_index[l]] == 0;
        r->sparsefuse_only |= s->post_norms && n_parallel > 0;
        rc = write_metadata(w, s, p, &o, new_index, parallel, n_parallel, r->sparsefuse_only);
    }
    /* with post-norms the fused members are written as they are, minus attention */
    sf_fuse_plan as_written = *p;
    bool *drop = NULL;
    if (!rc && s->post_norms) {
        drop = calloc((size_t)L, sizeof *drop);
        if (!drop) rc = sf_fail(SF_ERR_NOMEM, "out of memory");
        for (int l = 0; drop && l < L; l++) drop[l] = (p->drop_attn && p->drop_attn[l]) || in_fusion[l];
        as_written.drop_attn = drop;
        as_written.n_fuse = 0;
    }
    if (!rc) rc = add_tensors(w, s, &as_written, new_index, group_of, opt, &fs, r);
    if (!rc && opt->progress) opt->progress("writing", 0, (int64_t)r->data_bytes, opt->user);
    if (!rc) rc = sf_gguf_writer_finish(w, out_path);
    if (!rc && opt->progress) opt->progress("writing", (int64_t)r->data_bytes, (int64_t)r->data_bytes, opt->user);
    sf_gguf_writer_free(w);
    fused_store_free(&fs);
    free(drop);
    free(parallel);
    free(o.head);
    free(new_index);
    return rc;
}

int sf_fuse_write(const char *src_gguf, const sf_fuse_plan *plan, const char *out_gguf, const sf_fuse_options *opt,
                  sf_fuse_report *report) {
    sf_fuse_report local;
    sf_fuse_report *r = report ? report : &local;
    memset(r, 0, sizeof *r);
    sf_fuse_options defaults = sf_fuse_default_options();
    if (!opt) opt = &defaults;
    if (!src_gguf || !out_gguf || !*out_gguf || !plan) return sf_fail(SF_ERR_ARG, "sf_fuse_write: NULL argument");
    if (same_file(src_gguf, out_gguf))
        return sf_fail(SF_ERR_ARG, "the output %s is the source model; write to another file", out_gguf);
    const sf_type_traits *ft = opt->fused_type >= 0 ? sf_type_ref(opt->fused_type) : NULL;
    if (opt->fused_type >= 0 && (!ft || !ft->quantize || !ft->vec_dot)) /* a weight type sparsefuse can write */
        return sf_fail(SF_ERR_ARG, "fused type %s is not a weight type sparsefuse can write", sf_type_name(opt->fused_type));
    source s;
    int rc = source_open(src_gguf, &s);
    if (!rc) rc = fuse_write(&s, plan, out_gguf, opt, r);
    source_close(&s);
    return rc;
}
