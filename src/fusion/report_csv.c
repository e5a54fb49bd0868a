/* CSV files of the analysis: the dependency matrices (header row and column
 * of layer indices, empty cell for NaN) and one row of measures per layer. */
#include <stdio.h>

#include "base/error.h"
#include "fusion/report_internal.h"

static void cell(sf_rbuf *out, float v) {
    char s[32];
    sf_report_fmt_float(s, v); /* "" for NaN */
    sf_rbuf_puts(out, ",");
    sf_rbuf_puts(out, s);
}

int sf_report_csv_matrix(const sf_analysis *a, const float *m, sf_rbuf *out) {
    int n = a->n_layer;
    sf_rbuf_puts(out, "dropped_i/affected_j");
    for (int j = 0; j < n; j++) sf_rbuf_printf(out, ",%d", j);
    sf_rbuf_puts(out, "\n");
    for (int i = 0; i < n; i++) {
        sf_rbuf_printf(out, "%d", i);
        for (int j = 0; j < n; j++) cell(out, m[(size_t)i * n + j]);
        sf_rbuf_puts(out, "\n");
    }
    return out->failed ? sf_fail(SF_ERR_NOMEM, "report: out of memory") : SF_OK;
}

int sf_report_csv_importance(const sf_analysis *a, sf_rbuf *out) {
    sf_rbuf_puts(out, "layer,block_cos,attn_cos,block_kl,attn_kl,h_ratio,ffn_h_ratio\n");
    for (int l = 0; l < a->n_layer; l++) {
        sf_rbuf_printf(out, "%d", l);
        cell(out, a->block_cos[l]);
        cell(out, a->attn_cos[l]);
        cell(out, a->block_kl[l]);
        cell(out, a->attn_kl[l]);
        cell(out, a->h_ratio[l]);
        cell(out, a->ffn_h_ratio[l]);
        sf_rbuf_puts(out, "\n");
    }
    return out->failed ? sf_fail(SF_ERR_NOMEM, "report: out of memory") : SF_OK;
}
