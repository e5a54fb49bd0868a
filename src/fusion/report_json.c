/* analysis.json: every number of an sf_analysis, with jansson. NaN (and
 * inf) are written as null; floats with the shortest text that reads back
 * as the same float. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "fusion/report_internal.h"

static json_t *num(float v) {
    if (!isfinite(v)) return json_null();
    char s[32];
    sf_report_fmt_float(s, v);
    return json_real(strtod(s, NULL));
}

static json_t *vec(const float *v, int n) {
    json_t *arr = json_array();
    for (int k = 0; arr && k < n; k++)
        if (json_array_append_new(arr, num(v[k]))) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

static json_t *matrix(const float *m, int n) { /* [n][n] -> list of rows */
    json_t *rows = json_array();
    for (int i = 0; rows && i < n; i++)
        if (json_array_append_new(rows, vec(m + (size_t)i * n, n))) {
            json_decref(rows);
            return NULL;
        }
    return rows;
}

/* jansson needs UTF-8; a file name that is not becomes '?' per odd byte */
static json_t *str(const char *s) {
    json_t *j = json_string(s);
    if (j) return j;
    char *copy = strdup(s);
    if (!copy) return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20) *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

int sf_report_json(const sf_analysis *a, sf_rbuf *out) {
    int n = a->n_layer;
    json_t *root = json_object();
    if (!root) return sf_fail(SF_ERR_NOMEM, "report: out of memory building JSON");
    int bad = 0;
    bad |= json_object_set_new(root, "format", json_string("sparsefuse-ffn-fusion-analysis"));
    bad |= json_object_set_new(root, "version", json_integer(1));
    bad |= json_object_set_new(root, "model", str(a->model ? a->model : ""));
    bad |= json_object_set_new(root, "n_layer", json_integer(n));
    bad |= json_object_set_new(root, "n_tokens", json_integer((json_int_t)a->n_tokens));
    bad |= json_object_set_new(root, "matrix_layout",
                               json_string("dep_*[i][j]: row i = removed block, column j = affected block; "
                                           "null where i >= j or no value"));
    bad |= json_object_set_new(root, "dep_block", matrix(a->dep_block, n));
    bad |= json_object_set_new(root, "dep_ffn", matrix(a->dep_ffn, n));
    bad |= json_object_set_new(root, "block_cos", vec(a->block_cos, n));
    bad |= json_object_set_new(root, "attn_cos", vec(a->attn_cos, n));
    bad |= json_object_set_new(root, "block_kl", vec(a->block_kl, n));
    bad |= json_object_set_new(root, "attn_kl", vec(a->attn_kl, n));
    bad |= json_object_set_new(root, "h_ratio", vec(a->h_ratio, n));
    bad |= json_object_set_new(root, "ffn_h_ratio", vec(a->ffn_h_ratio, n));
    char *text = bad ? NULL : json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(9));
    json_decref(root);
    if (!text) return sf_fail(SF_ERR_NOMEM, "report: cannot build analysis JSON (out of memory)");
    sf_rbuf_puts(out, text);
    sf_rbuf_puts(out, "\n");
    free(text);
    return out->failed ? sf_fail(SF_ERR_NOMEM, "report: out of memory") : SF_OK;
}
