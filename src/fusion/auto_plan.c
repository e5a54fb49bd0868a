/* Automatic FFN Fusion plans from a dependency analysis (analysis.json):
 * which attention sub-blocks to drop, which FFN runs to fuse, which whole
 * blocks to parallelize (FFN Fusion paper, sections 3 and App. B; choices
 * documented in docs/ffn-fusion.md). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "sparsefuse_fusion.h"

static int read_vec(json_t *root, const char *key, int n, float **out) {
    json_t *arr = json_object_get(root, key);
    if (!json_is_array(arr) || (int)json_array_size(arr) != n)
        return sf_fail(SF_ERR_FORMAT, "analysis: '%s' is missing or not an array of %d values", key, n);
    *out = malloc(sizeof(float) * (size_t)n);
    if (!*out) return sf_fail(SF_ERR_NOMEM, "analysis: out of memory");
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, (size_t)i);
        (*out)[i] = json_is_number(v) ? (float)json_number_value(v) : NAN;
    }
    return SF_OK;
}

static int read_mat(json_t *root, const char *key, int n, float **out) {
    json_t *rows = json_object_get(root, key);
    if (!json_is_array(rows) || (int)json_array_size(rows) != n)
        return sf_fail(SF_ERR_FORMAT, "analysis: '%s' is missing or not %d rows", key, n);
    *out = malloc(sizeof(float) * (size_t)n * n);
    if (!*out) return sf_fail(SF_ERR_NOMEM, "analysis: out of memory");
    for (int i = 0; i < n; i++) {
        json_t *row = json_array_get(rows, (size_t)i);
        if (!json_is_array(row) || (int)json_array_size(row) != n)
            return sf_fail(SF_ERR_FORMAT, "analysis: '%s' row %d is not %d values", key, i, n);
        for (int j = 0; j < n; j++) {
            json_t *v = json_array_get(row, (size_t)j);
            (*out)[(size_t)i * n + j] = json_is_number(v) ? (float)json_number_value(v) : NAN;
        }
    }
    return SF_OK;
}

int sf_analysis_read_json(const char *path, sf_analysis *out) {
    memset(out, 0, sizeof *out);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) return sf_fail(SF_ERR_FORMAT, "%s: line %d: %s", path, err.line, err.text);
    int rc = SF_OK;
    json_t *fmt = json_object_get(root, "format");
    json_t *nl = json_object_get(root, "n_layer");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "sparsefuse-ffn-fusion-analysis") != 0 ||
        !json_is_integer(nl) || json_integer_value(nl) < 1 || json_integer_value(nl) > 4096)
        rc = sf_fail(SF_ERR_FORMAT, "%s is not a sparsefuse analysis (analysis.json of `sparsefuse analyze`)", path);
    const int n = rc == SF_OK ? (int)json_integer_value(nl) : 0;
    out->n_layer = n;
    json_t *nt = json_object_get(root, "n_tokens");
    out->n_tokens = json_is_integer(nt) ? json_integer_value(nt) : 0;
    if (rc == SF_OK) rc = read_mat(root, "dep_block", n, &out->dep_block);
    if (rc == SF_OK) rc = read_mat(root, "dep_ffn", n, &out->dep_ffn);
    if (rc == SF_OK) rc = read_vec(root, "block_cos", n, &out->block_cos);
    if (rc == SF_OK) rc = read_vec(root, "attn_cos", n, &out->attn_cos);
    if (rc == SF_OK) rc = read_vec(root, "block_kl", n, &out->block_kl);
    if (rc == SF_OK) rc = read_vec(root, "attn_kl", n, &out->attn_kl);
    if (rc == SF_OK) rc = read_vec(root, "h_ratio", n, &out->h_ratio);
    if (rc == SF_OK) rc = read_vec(root, "ffn_h_ratio", n, &out->ffn_h_ratio);
    json_decref(root);
    if (rc != SF_OK) sf_analysis_free(out);
    return rc;
}

int sf_auto_drop_attn(const sf_analysis *a, int k, bool *drop) {
    const int n = a->n_layer;
    memset(drop, 0, sizeof(bool) * (size_t)n);
    int n_cand = 0;
    for (int l = 1; l < n; l++) n_cand += !isnan(a->attn_kl[l]);
    if (k < 1 || k > n_cand)
        return sf_fail(SF_ERR_ARG, "--drop-attn auto:%d: between 1 and %d attention sub-blocks can be dropped "
                                   "(layer 0 keeps its attention)", k, n_cand);
    for (int step = 0; step < k; step++) { /* the k least important by KL, never layer 0 */
        int best = -1;
        for (int l = 1; l < n; l++)
            if (!drop[l] && !isnan(a->attn_kl[l]) && (best < 0 || a->attn_kl[l] < a->attn_kl[best])) best = l;
        drop[best] = true;
    }
    return SF_OK;
}

/* Largest M_ffn[i][j] between j and the members i of a group [first, j). */
static float max_dep_into(const sf_analysis *a, int first, int j) {
    float mx = 0.0f;
    for (int i = first; i < j; i++) {
        const float v = a->dep_ffn[(size_t)i * a->n_layer + j];
        if (!isnan(v) && v > mx) mx = v;
    }
    return mx;
}

int sf_auto_fuse_groups(const sf_analysis *a, int n_layer, const bool *attn_free, float max_m, sf_layer_range *out,
                        int *n_out) {
    int n = 0;
    for (int s = 0; s < n_layer;) {
        if (!attn_free[s]) {
            s++;
            continue;
        }
        int e = s;
        while (e + 1 < n_layer && attn_free[e + 1]) e++;
        /* the run s..e minus its last FFN, which the paper found sensitive;
         * split where a member would depend on the group by more than max_m */
        for (int first = s; first <= e - 2;) {
            int last = first;
            while (last + 1 <= e - 1 && (!a || max_dep_into(a, first, last + 1) <= max_m)) last++;
            if (last > first) out[n++] = (sf_layer_range){first, last};
            first = last + 1;
        }
        s = e + 1;
    }
    *n_out = n;
    return SF_OK;
}

int sf_auto_parallel(const sf_analysis *a, int n_groups, int window, const bool *excluded, sf_layer_range *out) {
    const int n = a->n_layer;
    bool *taken = calloc((size_t)n, sizeof(bool)); /* layers in a chosen window */
    if (!taken) return sf_fail(SF_ERR_NOMEM, "out of memory");
    int got = 0;
    for (; got < n_groups; got++) {
        int best = -1;
        double best_max = 0, best_sum = 0;
        for (int s = 1; s + window <= n; s++) { /* never with layer 0 */
            bool ok = true;
            for (int l = s; l < s + window; l++) ok &= !taken[l] && !(excluded && excluded[l]);
            if (!ok) continue;
            double mx = 0, sum = 0; /* the window's sub-matrix of M (i < j) */
            for (int i = s; i < s + window; i++)
                for (int j = i + 1; j < s + window; j++) {
                    const double v = a->dep_block[(size_t)i * n + j];
                    if (isnan(v)) continue;
                    mx = v > mx ? v : mx;
                    sum += v;
                }
            if (best < 0 || mx < best_max || (mx == best_max && sum < best_sum)) {
                best = s;
                best_max = mx;
                best_sum = sum;
            }
        }
        if (best < 0) break;
        for (int l = best; l < best + window; l++) taken[l] = true;
        out[got] = (sf_layer_range){best, best + window - 1};
    }
    free(taken);
    if (got < n_groups)
        return sf_fail(SF_ERR_ARG, "--parallel-blocks auto:%d: only %d disjoint windows of %d blocks are available",
                       n_groups, got, window);
    /* ascending, as the plan wants */
    for (int i = 0; i < got; i++)
        for (int j = i + 1; j < got; j++)
            if (out[j].first < out[i].first) {
                const sf_layer_range t = out[i];
                out[i] = out[j];
                out[j] = t;
            }
    return SF_OK;
}
