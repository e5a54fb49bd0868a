/* index.html: a self-contained page (inline style, relative links only)
 * with the figures, a summary of the attention-free runs, a reading guide
 * and the per-layer numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/error.h"
#include "fusion/report_internal.h"

static void esc(sf_rbuf *o, const char *s) {
    for (; *s; s++) switch (*s) {
        case '&': sf_rbuf_puts(o, "&amp;"); break;
        case '<': sf_rbuf_puts(o, "&lt;"); break;
        case '>': sf_rbuf_puts(o, "&gt;"); break;
        case '"': sf_rbuf_puts(o, "&quot;"); break;
        default: sf_rbuf_put(o, s, 1);
        }
}

static void num(sf_rbuf *o, float v) {
    if (isfinite(v)) sf_rbuf_printf(o, "%.4g", (double)v);
    else sf_rbuf_puts(o, "&ndash;");
}

/* mean of the finite M[i][j], first <= i < j <= last; NAN if none */
static double mean_m(const float *m, int n, int first, int last) {
    double s = 0;
    int c = 0;
    for (int i = first; i <= last; i++)
        for (int j = i + 1; j <= last; j++)
            if (isfinite(m[(size_t)i * n + j])) {
                s += m[(size_t)i * n + j];
                c++;
            }
    return c ? s / c : NAN;
}

static void mean_cell(sf_rbuf *o, double v) {
    if (isfinite(v)) sf_rbuf_printf(o, "%.3g", v);
    else sf_rbuf_puts(o, "&ndash;");
}

static void runs_summary(sf_rbuf *o, const sf_analysis *a) {
    int n = a->n_layer, any = 0;
    sf_rbuf_puts(o, "<h2>Attention-free runs</h2>\n");
    for (int l = 0; l < n; l++) {
        if (!sf_report_attn_free(a, l)) continue;
        int e = l;
        while (e + 1 < n && sf_report_attn_free(a, e + 1)) e++;
        if (!any)
            sf_rbuf_puts(o, "<table><tr><th>run</th><th>layers</th><th>mean M (FFN) inside</th>"
                            "<th>mean M (blocks) inside</th><th>fusable by the paper's rule</th></tr>\n");
        any = 1;
        sf_rbuf_printf(o, "<tr><td>%d&ndash;%d</td><td>%d</td><td>", l, e, e - l + 1);
        mean_cell(o, mean_m(a->dep_ffn, n, l, e));
        sf_rbuf_puts(o, "</td><td>");
        mean_cell(o, mean_m(a->dep_block, n, l, e));
        sf_rbuf_puts(o, "</td><td>");
        if (e - 1 > l) sf_rbuf_printf(o, "%d&ndash;%d (layer %d kept out)", l, e - 1, e);
        else sf_rbuf_puts(o, "none (a run needs 3 layers to leave a group of 2)");
        sf_rbuf_puts(o, "</td></tr>\n");
        l = e;
    }
    if (any) {
        sf_rbuf_puts(o, "</table>\n<p>For comparison, the mean over all i &lt; j: FFN ");
        mean_cell(o, mean_m(a->dep_ffn, n, 0, n - 1));
        sf_rbuf_puts(o, ", blocks ");
        mean_cell(o, mean_m(a->dep_block, n, 0, n - 1));
        sf_rbuf_puts(o, ".</p>\n");
    } else {
        sf_rbuf_puts(o, "<p>Every layer has attention (no layer has both attention measures empty). "
                        "FFN fusion needs attention-free runs: remove the least important attention "
                        "layers first (the attn_kl and attn_cos charts below), then analyse the result.</p>\n");
    }
}

static const char *const GUIDE =
    "<h2>Reading guide</h2>\n"
    "<h3>The dependency matrix M</h3>\n"
    "<p>Block j's <em>contribution</em> is h<sub>j</sub> = f<sub>j</sub>(x) &minus; x, what it adds to the "
    "residual stream. M<sub>ij</sub> is the cosine distance between h<sub>j</sub> in the full model and "
    "h<sub>j</sub> when block i is removed (everything else unchanged), averaged over the calibration tokens. "
    "Row i is the removed block, column j the affected one. 0 means block j computes the same thing whether "
    "or not block i ran; large values mean j needs i's output (1 = unrelated, up to 2 = opposite). Only i &lt; j "
    "is defined: removing a later block cannot change an earlier one. The <em>block</em> matrix removes whole "
    "blocks and compares whole-block contributions; the <em>FFN</em> matrix removes only FFN i and compares "
    "FFN j's contribution. The colours are on a log scale, like the paper's figure: dark = low dependency.</p>\n"
    "<h3>Why dark areas inside attention-free runs are fusion candidates</h3>\n"
    "<p>In a run of layers without attention each layer is x &larr; x + FFN<sub>j</sub>(x). If FFN j hardly "
    "changes when an earlier FFN i of the run is removed (low M<sub>ij</sub>), it does not need that FFN's "
    "output, so the FFNs of the run can all read the same input and add their contributions: "
    "x + &Sigma;<sub>j</sub> FFN<sub>j</sub>(x). Several FFNs on one input are exactly one wider FFN (gate and "
    "up rows and down columns concatenated): that is FFN Fusion, and it removes sequential steps. The paper "
    "picked its groups by looking at the dark region of this heatmap; it gives no numeric threshold. Low M is a "
    "hint, not a guarantee: measure the fused model's KL divergence.</p>\n"
    "<h3>Why the last FFN of a run is kept out</h3>\n"
    "<p>The paper leaves the last FFN of every attention-free run unfused (Nemotron Ultra fused 49 FFNs of a "
    "50-layer run). In its 49B ablation, putting either run's last layer into the fused group cost far more "
    "MT-Bench than any other choice (8.25 with both last layers kept out, 7.30 with both included), and the "
    "last layer before attention resumes was the most sensitive: its output is what the next attention layer "
    "reads.</p>\n"
    "<h3>Importance measures (per layer)</h3>\n"
    "<ul>\n"
    "<li><b>attn_cos</b>: mean 1 &minus; cos(x<sub>in</sub>, x after the attention residual), how much the "
    "attention sub-block turns the residual stream (He et al., <i>What Matters in Transformers? Not All "
    "Attention is Needed</i>). Low = a candidate for removal. Empty (&ndash;, grey) = the layer has no "
    "attention.</li>\n"
    "<li><b>attn_kl</b>: mean KL(dense &#8214; model with only this attention removed) of the next-token "
    "distribution: the direct quality cost of removing it.</li>\n"
    "<li><b>block_cos</b>, <b>block_kl</b>: the same for the whole block (attention + FFN).</li>\n"
    "<li><b>h_ratio</b>: mean &#8214;h(x)&#8214; / &#8214;x&#8214; of the whole block; <b>ffn_h_ratio</b>: "
    "the FFN's contribution relative to the residual stream it reads. Small contributions change the stream "
    "little.</li>\n"
    "</ul>\n"
    "<h3>1 &minus; cos is a weak proxy</h3>\n"
    "<p>A small turn of the residual stream can still change the output a lot, and a large one can be "
    "harmless; cosine similarity is known to be a weak proxy for the damage a removal does. Use attn_cos and "
    "block_cos to shortlist, then confirm with KL: the attn_kl and block_kl columns here, and the KL divergence "
    "of the transformed model against the dense one.</p>\n";

static void table(sf_rbuf *o, const sf_analysis *a) {
    sf_rbuf_puts(o, "<h2>Per-layer numbers</h2>\n<table class=\"num\"><tr><th>layer</th><th>attention</th>"
                    "<th>block_cos</th><th>attn_cos</th><th>block_kl</th><th>attn_kl</th>"
                    "<th>h_ratio</th><th>ffn_h_ratio</th></tr>\n");
    for (int l = 0; l < a->n_layer; l++) {
        int free_ = sf_report_attn_free(a, l);
        sf_rbuf_printf(o, "<tr%s><td>%d</td><td>%s</td>", free_ ? " class=\"noattn\"" : "", l, free_ ? "none" : "yes");
        const float v[6] = {a->block_cos[l], a->attn_cos[l], a->block_kl[l],
                            a->attn_kl[l],   a->h_ratio[l],  a->ffn_h_ratio[l]};
        for (int k = 0; k < 6; k++) {
            sf_rbuf_puts(o, "<td>");
            num(o, v[k]);
            sf_rbuf_puts(o, "</td>");
        }
        sf_rbuf_puts(o, "</tr>\n");
    }
    sf_rbuf_puts(o, "</table>\n");
}

static void figure(sf_rbuf *o, const char *file, const char *alt) {
    sf_rbuf_printf(o, "<p><a href=\"%s\"><img src=\"%s\" alt=\"%s\"></a></p>\n", file, file, alt);
}

int sf_report_html(const sf_analysis *a, sf_rbuf *o) {
    const char *model = a->model ? a->model : "";
    sf_rbuf_puts(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<title>FFN Fusion analysis: ");
    esc(o, model);
    sf_rbuf_puts(o, "</title>\n<style>\n"
                    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45;"
                    "color:#1e1e1e}\n"
                    "img{max-width:100%;height:auto;border:1px solid #ddd}\n"
                    "table{border-collapse:collapse;margin:0.5em 0}\n"
                    "th,td{border:1px solid #ccc;padding:2px 8px}\n"
                    "table.num td{text-align:right;font-family:monospace}\n"
                    "tr.noattn{background:#eee}\n"
                    "code{background:#f3f3f3;padding:0 3px}\n"
                    "</style>\n</head>\n<body>\n<h1>FFN Fusion analysis</h1>\n<p>Model <code>");
    esc(o, model);
    sf_rbuf_printf(o, "</code>, %d layers, %lld calibration tokens. Method: FFN Fusion, arXiv 2503.18908.</p>\n",
                   a->n_layer, (long long)a->n_tokens);
    sf_rbuf_puts(o, "<p>Data: <a href=\"" SF_REPORT_JSON "\">" SF_REPORT_JSON "</a> (every number; null = no "
                    "value), <a href=\"" SF_REPORT_CSV_BLOCKS "\">" SF_REPORT_CSV_BLOCKS "</a>, "
                    "<a href=\"" SF_REPORT_CSV_FFN "\">" SF_REPORT_CSV_FFN "</a> (row = removed block i, "
                    "column = affected block j, empty = no value), "
                    "<a href=\"" SF_REPORT_CSV_IMPORTANCE "\">" SF_REPORT_CSV_IMPORTANCE "</a>.</p>\n");
    runs_summary(o, a);
    sf_rbuf_puts(o, GUIDE);
    sf_rbuf_puts(o, "<h2>Block dependency (whole blocks)</h2>\n");
    figure(o, SF_REPORT_PNG_BLOCKS, "heatmap of the whole-block dependency matrix M");
    sf_rbuf_puts(o, "<h2>FFN dependency (FFN sub-blocks)</h2>\n");
    figure(o, SF_REPORT_PNG_FFN, "heatmap of the FFN dependency matrix M");
    sf_rbuf_puts(o, "<h2>Attention importance</h2>\n");
    figure(o, SF_REPORT_PNG_ATTN, "bar charts of attn_cos and attn_kl per layer");
    sf_rbuf_puts(o, "<h2>Block importance</h2>\n");
    figure(o, SF_REPORT_PNG_IMPORTANCE, "bar charts of block_cos, block_kl, h_ratio and ffn_h_ratio per layer");
    table(o, a);
    sf_rbuf_puts(o, "</body>\n</html>\n");
    return o->failed ? sf_fail(SF_ERR_NOMEM, "report: out of memory") : SF_OK;
}
