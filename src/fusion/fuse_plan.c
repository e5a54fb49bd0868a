/* Fusion plans: parsing the layer lists, validation with errors that name
 * the problem, and the renumbering of layers (see fuse.h). */
#include "fusion/fuse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "fusion/fuse_impl.h"
#include "gguf/gguf.h"

/* ---- text ----------------------------------------------------------------- */

/* A layer number at *p (digits only); advances *p. */
static bool parse_layer(const char **p, int *out) {
    const char *s = *p;
    if (!isdigit((unsigned char)*s)) return false;
    long v = 0;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (*s - '0');
        if (v > 1000000) return false;
        s++;
    }
    *out = (int)v;
    *p = s;
    return true;
}

int sf_fuse_parse_ranges(const char *s, const char *what, sf_layer_range **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!what) what = "layer list";
    if (!s || !*s) return sf_fail(SF_ERR_ARG, "%s: empty layer list (expected e.g. 3,5,7-12)", what);
    if (strncmp(s, "auto", 4) == 0)
        return sf_fail(SF_ERR_UNSUPPORTED,
                       "%s %s: an automatic plan, not a layer list: it is resolved from the dependency analysis "
                       "(sf_auto_* in sparsefuse_fusion.h; `sparsefuse fuse -a DIR`)",
                       what, s);
    int cap = 1;
    for (const char *c = s; *c; c++) cap += *c == ',';
    sf_layer_range *r = malloc((size_t)cap * sizeof *r);
    if (!r) return sf_fail(SF_ERR_NOMEM, "out of memory");
    const char *p = s;
    int k = 0;
    for (;;) {
        const char *item = p;
        int a, b;
        bool ok = parse_layer(&p, &a);
        b = a;
        if (ok && *p == '-') {
            p++;
            ok = parse_layer(&p, &b);
        }
        if (!ok || (*p != ',' && *p != '\0')) {
            size_t len = strcspn(item, ",");
            free(r);
            return sf_fail(SF_ERR_ARG, "%s: '%.*s' is not a layer number or range N-M (expected e.g. 3,5,7-12)", what,
                           (int)len, item);
        }
        r[k++] = (sf_layer_range){a, b};
        if (*p == '\0') break;
        p++; /* ',' */
        if (*p == '\0' || *p == ',') {
            free(r);
            return sf_fail(SF_ERR_ARG, "%s: empty item in '%s' (expected e.g. 3,5,7-12)", what, s);
        }
    }
    *out = r;
    *n = k;
    return SF_OK;
}

int sf_fuse_parse_norm(const char *s, sf_fuse_norm *out) {
    if (s && strcmp(s, "shared-last") == 0) { *out = SF_FUSE_NORM_SHARED_LAST; return SF_OK; }
    if (s && strcmp(s, "folded") == 0) { *out = SF_FUSE_NORM_FOLDED; return SF_OK; }
    return sf_fail(SF_ERR_ARG, "unknown norm variant '%s' (shared-last or folded)", s ? s : "(null)");
}

const char *sf_fuse_norm_name(sf_fuse_norm norm) {
    return norm == SF_FUSE_NORM_FOLDED ? "folded" : "shared-last";
}

/* "the model has 30 layers, 0-29" */
static int out_of_range(const char *what, const sf_layer_range *r, int layer, int n_layer) {
    return sf_fail(SF_ERR_ARG, "%s %d-%d: layer %d is out of range (the model has %d layers, 0-%d)", what, r->first,
                   r->last, layer, n_layer, n_layer - 1);
}

/* Bounds and order of one range. */
static int check_range(const char *what, const sf_layer_range *r, int n_layer) {
    if (r->first > r->last)
        return sf_fail(SF_ERR_ARG, "%s %d-%d: the range is reversed (first layer after last)", what, r->first, r->last);
    if (r->first < 0) return out_of_range(what, r, r->first, n_layer);
    if (r->last >= n_layer) return out_of_range(what, r, r->last, n_layer);
    return SF_OK;
}

int sf_fuse_ranges_to_mask(const sf_layer_range *r, int n, int n_layer, const char *what, bool *mask) {
    memset(mask, 0, (size_t)n_layer * sizeof *mask);
    for (int i = 0; i < n; i++) {
        int rc = check_range(what ? what : "layers", &r[i], n_layer);
        if (rc) return rc;
        for (int l = r[i].first; l <= r[i].last; l++) mask[l] = true;
    }
    return SF_OK;
}

/* ---- validation ----------------------------------------------------------- */

static bool overlap(const sf_layer_range *a, const sf_layer_range *b) {
    return a->first <= b->last && b->first <= a->last;
}

static int first_common(const sf_layer_range *a, const sf_layer_range *b) {
    return a->first > b->first ? a->first : b->first;
}

/* Bounds, order, at least two layers, no two overlapping (one list). */
static int check_groups(const char *what, const sf_layer_range *g, int n, int n_layer) {
    if (n > 0 && !g) return sf_fail(SF_ERR_ARG, "plan: %d %s groups but no ranges", n, what);
    for (int i = 0; i < n; i++) {
        int rc = check_range(what, &g[i], n_layer);
        if (rc) return rc;
        if (g[i].first == g[i].last)
            return sf_fail(SF_ERR_ARG, "%s %d-%d: a group needs at least 2 layers", what, g[i].first, g[i].last);
        for (int j = 0; j < i; j++)
            if (overlap(&g[i], &g[j]))
                return sf_fail(SF_ERR_ARG, "%s %d-%d and %s %d-%d overlap (layer %d)", what, g[j].first, g[j].last,
                               what, g[i].first, g[i].last, first_common(&g[i], &g[j]));
    }
    return SF_OK;
}

int sf_fuse_plan_validate(const sf_fuse_plan *p, const int *n_head, const int *n_ff) {
    if (!p) return sf_fail(SF_ERR_ARG, "no fusion plan");
    if (p->n_layer <= 0) return sf_fail(SF_ERR_ARG, "plan: n_layer %d", p->n_layer);
    if (p->n_fuse < 0 || p->n_parallel < 0) return sf_fail(SF_ERR_ARG, "plan: negative group count");
    if (p->norm != SF_FUSE_NORM_SHARED_LAST && p->norm != SF_FUSE_NORM_FOLDED)
        return sf_fail(SF_ERR_ARG, "plan: unknown norm variant %d", (int)p->norm);
    if (p->drop_attn && p->drop_attn[0])
        return sf_fail(SF_ERR_ARG,
                       "layer 0's attention cannot be dropped: llama.cpp's deci graph derives the head size from layer 0");
    if (p->drop_block && p->drop_block[0])
        return sf_fail(SF_ERR_ARG, "block 0 cannot be removed: llama.cpp's deci graph derives the head size from it");
    int rc = check_groups("fuse", p->fuse, p->n_fuse, p->n_layer);
    if (!rc) rc = check_groups("parallel", p->parallel, p->n_parallel, p->n_layer);
    if (rc) return rc;
    int kept = 0;
    for (int l = 0; l < p->n_layer; l++) kept += !(p->drop_block && p->drop_block[l]);
    if (kept == 0) return sf_fail(SF_ERR_ARG, "every block is removed");
    const sf_layer_range *const sets[2] = {p->fuse, p->parallel};
    const int counts[2] = {p->n_fuse, p->n_parallel};
    for (int k = 0; k < 2 && p->drop_block; k++)
        for (int g = 0; g < counts[k]; g++)
            for (int l = sets[k][g].first; l <= sets[k][g].last; l++)
                if (p->drop_block[l])
                    return sf_fail(SF_ERR_ARG, "%s %d-%d includes block %d, which is removed", k ? "parallel" : "fuse",
                                   sets[k][g].first, sets[k][g].last, l);
    for (int g = 0; g < p->n_fuse; g++) {
        const sf_layer_range *r = &p->fuse[g];
        for (int l = r->first; l <= r->last; l++) {
            bool has_attn = (!n_head || n_head[l] > 0) && !(p->drop_attn && p->drop_attn[l]);
            if (has_attn)
                return sf_fail(SF_ERR_ARG, "fuse %d-%d: layer %d keeps its attention; drop it with --drop-attn", r->first,
                               r->last, l);
            if (n_ff && n_ff[l] <= 0)
                return sf_fail(SF_ERR_ARG, "fuse %d-%d: layer %d has no FFN to fuse", r->first, r->last, l);
        }
    }
    for (int i = 0; i < p->n_parallel; i++)
        for (int g = 0; g < p->n_fuse; g++)
            if (overlap(&p->parallel[i], &p->fuse[g]))
                return sf_fail(SF_ERR_ARG, "parallel %d-%d overlaps fuse %d-%d (layer %d): a layer is either fused or "
                               "run as a parallel block, not both",
                               p->parallel[i].first, p->parallel[i].last, p->fuse[g].first, p->fuse[g].last,
                               first_common(&p->parallel[i], &p->fuse[g]));
    return SF_OK;
}

int sf_fuse_plan_map(const sf_fuse_plan *p, int *new_index, int *group_of) {
    int n_out = 0;
    for (int l = 0; l < p->n_layer; l++) {
        int g = -1;
        for (int k = 0; k < p->n_fuse; k++)
            if (l >= p->fuse[k].first && l <= p->fuse[k].last) g = k;
        if (group_of) group_of[l] = g;
        if (p->drop_block && p->drop_block[l]) { /* removed: no output layer */
            if (new_index) new_index[l] = -1;
            continue;
        }
        /* a group's later members share the index its first member took */
        bool continues = g >= 0 && l > p->fuse[g].first;
        if (new_index) new_index[l] = continues ? n_out - 1 : n_out;
        if (!continues) n_out++;
    }
    return n_out;
}

/* ---- the source ----------------------------------------------------------- */

int sf_fuse_check_arch(const sf_gguf *g, const char *path, char *arch, size_t len) {
    sf_gguf_str a;
    int rc = sf_gguf_get_str(g, "general.architecture", &a);
    if (rc == SF_ERR_RANGE) return sf_fail(SF_ERR_FORMAT, "%s: missing key 'general.architecture'", path);
    if (rc) return sf_fail_context(rc, "%s", path);
    snprintf(arch, len, "%.*s", (int)(a.len < len ? a.len : len - 1), a.ptr);
    if (strcmp(arch, "llama") && strcmp(arch, "deci") && strcmp(arch, "gemma3"))
        return sf_fail(SF_ERR_UNSUPPORTED, "%s: architecture '%.*s' is not supported (llama, deci and gemma3 only)",
                       path, (int)(a.len < 64 ? a.len : 64), a.ptr);
    return SF_OK;
}

int sf_fuse_source_layers(const char *path, int *n_layer) {
    sf_gguf *g = NULL;
    int rc = sf_gguf_open(path, &g);
    if (rc) return sf_fail_context(rc, "%s", path);
    char arch[16];
    rc = sf_fuse_check_arch(g, path, arch, sizeof arch);
    if (!rc) {
        char key[64];
        uint32_t n = 0;
        snprintf(key, sizeof key, "%s.block_count", arch);
        rc = sf_gguf_get_u32(g, key, &n);
        if (rc == SF_ERR_RANGE) rc = sf_fail(SF_ERR_FORMAT, "%s: missing key '%s'", path, key);
        else if (!rc && (n == 0 || n > 4096)) rc = sf_fail(SF_ERR_FORMAT, "%s: %s = %u is out of range", path, key, n);
        if (!rc) *n_layer = (int)n;
    }
    sf_gguf_close(g);
    return rc;
}
