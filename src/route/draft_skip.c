/* The draft's layer set: parsing, printing and what it costs. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/model.h"
#include "route/draft.h"
#include "sparsefuse_eval.h"

int sf_draft_parse_skip(const sf_model *m, const char *list, bool *skip) {
    if (!m || !list || !skip) return sf_fail(SF_ERR_ARG, "draft layers: NULL argument");
    const int n = m->n_layer;
    memset(skip, 0, sizeof(bool) * (size_t)n);
    if (!strcmp(list, "none")) return SF_OK;
    int count = 0;
    for (const char *s = list;;) {
        if (!isdigit((unsigned char)*s))
            return sf_fail(SF_ERR_ARG, "draft layers '%s': expected a layer index at '%s' (a list like 3,7,12)", list,
                           s);
        errno = 0;
        char *end;
        long v = strtol(s, &end, 10);
        if (errno || v >= n)
            return sf_fail(SF_ERR_ARG, "draft layers '%s': layer %.*s is out of range (the model has layers 0..%d)",
                           list, (int)(end - s), s, n - 1);
        if (skip[v]) return sf_fail(SF_ERR_ARG, "draft layers '%s': layer %ld is listed twice", list, v);
        skip[v] = true;
        count++;
        if (*end == '\0') break;
        if (*end != ',')
            return sf_fail(SF_ERR_ARG, "draft layers '%s': unexpected '%c' after layer %ld", list, *end, v);
        s = end + 1;
    }
    if (count == n)
        return sf_fail(SF_ERR_ARG, "draft layers '%s': every layer of the model (%d) is skipped, the draft would not "
                       "run the model at all", list, n);
    return SF_OK;
}

int sf_draft_format_skip(const bool *skip, int n_layer, char *buf, int cap) {
    int len = 0;
    bool full = !buf || cap <= 0; /* stop writing at the first entry that does not fit */
    if (!full) buf[0] = '\0';
    for (int l = 0; l < n_layer; l++) {
        if (!skip[l]) continue;
        char one[16];
        int w = snprintf(one, sizeof one, "%s%d", len ? "," : "", l);
        if (!full && len + w < cap) memcpy(buf + len, one, (size_t)w + 1);
        else full = true;
        len += w;
    }
    if (len == 0) len = snprintf(buf, buf ? (size_t)cap : 0, "none");
    return len;
}

static uint64_t matrix_bytes(const sf_gguf_tensor *t) { return t && t->n_dims >= 2 ? (uint64_t)t->nbytes : 0; }

double sf_draft_cost_fraction(const sf_model *m, const bool *skip) {
    const uint64_t total = sf_model_decode_weight_bytes(m);
    if (!total || !skip) return 1.0;
    uint64_t dropped = 0;
    for (int il = 0; il < m->n_layer; il++) {
        const sf_layer *l = &m->layers[il];
        if (!skip[il]) continue;
        if (l->attn != SF_ATTN_NONE)
            dropped += matrix_bytes(l->wq) + matrix_bytes(l->wk) + matrix_bytes(l->wv) + matrix_bytes(l->wo);
        if (l->ffn != SF_FFN_NONE)
            dropped += matrix_bytes(l->ffn_gate) + matrix_bytes(l->ffn_up) + matrix_bytes(l->ffn_down);
    }
    return (double)(total - dropped) / (double)total;
}
