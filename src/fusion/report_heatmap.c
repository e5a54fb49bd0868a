/* Heatmap of a block dependency matrix M (rows: dropped block i, columns:
 * affected block j) on a log colour scale, dark = low dependency, like the
 * paper's App. F figure; NaN cells grey, a colour bar with log ticks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "fusion/report_internal.h"

#define TS 2   /* text scale: 10x14 px characters */
#define PAD 16 /* outer margin */

static const sf_rgb WHITE = {255, 255, 255};
static const sf_rgb INK = {30, 30, 30};
static const sf_rgb NAN_GREY = {150, 150, 150};   /* i < j but no value */
static const sf_rgb UNDEF_GREY = {236, 236, 236}; /* i >= j: not defined */
static const sf_rgb NOATTN = {60, 60, 60};        /* attention-free layer mark */

/* The colour range: the data's smallest positive and largest value, at most
 * six decades (anything smaller draws darkest). */
static void colour_range(const sf_analysis *a, const float *m, double *lo, double *hi) {
    int n = a->n_layer;
    *lo = NAN;
    *hi = NAN;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            float v = m[(size_t)i * n + j];
            if (!isfinite(v)) continue;
            if (v > 0 && !(v >= *lo)) *lo = v;
            if (!(v <= *hi)) *hi = v;
        }
    if (!(*lo > 0) || !(*hi > 0)) {
        *lo = 1e-4;
        *hi = 1;
    }
    if (*hi < *lo * 1.01) { /* one value: spread it around the middle */
        *lo /= sqrt(10);
        *hi *= sqrt(10);
    }
    if (*lo < *hi * 1e-6) *lo = *hi * 1e-6;
}

/* Smallest step from 1, 2, 5, 10, ... so that labels `need` px apart fit. */
static int tick_step(int cell, int need) {
    static const int steps[] = {1, 2, 5, 10, 20, 50, 100, 200, 500};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++)
        if (steps[k] * cell >= need) return steps[k];
    return 1000;
}

static int any_attn_free(const sf_analysis *a) {
    for (int l = 0; l < a->n_layer; l++)
        if (sf_report_attn_free(a, l)) return 1;
    return 0;
}

/* legend item: swatch + text; returns the x after it */
static int legend(sf_canvas *c, int x, int y, sf_rgb sw, const char *text) {
    sf_canvas_rect(c, x, y, 14, 14, sw);
    sf_canvas_frame(c, x, y, 14, 14, INK);
    sf_canvas_text(c, x + 20, y, text, TS, INK);
    return x + 20 + sf_text_w(text, TS) + 24;
}

int sf_report_heatmap(const sf_analysis *a, const float *m, const char *title, sf_rbuf *png) {
    int n = a->n_layer;
    int cell = 900 / n; /* 30 px at 30 layers, 11 at 80, at most 48 */
    if (cell > 48) cell = 48;
    if (cell < 3) cell = 3;
    int th = sf_text_h(TS);
    char num[32];
    snprintf(num, sizeof num, "%d", n - 1);
    int num_w = sf_text_w(num, TS);
    int col_step = tick_step(cell, num_w + 6), row_step = tick_step(cell, th + 2);
    int strip = any_attn_free(a);

    double lo, hi;
    colour_range(a, m, &lo, &hi);
    double ticks[32];
    int n_ticks = sf_report_log_ticks(lo, hi, ticks, 32);
    int tick_w = 0;
    for (int k = 0; k < n_ticks; k++) {
        sf_report_fmt_tick(num, ticks[k]);
        if (sf_text_w(num, TS) > tick_w) tick_w = sf_text_w(num, TS);
    }

    /* text lines above the matrix */
    char sub1[256], sub2[256];
    snprintf(sub1, sizeof sub1, "model: %.60s   tokens: %lld", a->model ? a->model : "?", (long long)a->n_tokens);
    char lo_s[32], hi_s[32];
    sf_report_fmt_tick(lo_s, lo);
    sf_report_fmt_tick(hi_s, hi);
    snprintf(sub2, sizeof sub2, "M = cosine distance, log colour scale %s .. %s; dark = low dependency", lo_s, hi_s);

    /* geometry */
    int mat = n * cell;
    int bar_h = mat < 240 ? 240 : mat;
    const char *strip_lab = "no attn";
    int mx = PAD + th + 10 + num_w + 10; /* axis label, gap, row numbers, tick */
    if (strip && mx < PAD + sf_text_w(strip_lab, TS) + 8) mx = PAD + sf_text_w(strip_lab, TS) + 8;
    int my = PAD + 3 * (th + 8) + 8 + (strip ? 24 : 0);
    int bar_x = mx + mat + 28, bar_w = 22;
    const char *bar_label = "M (log scale)";
    int w = bar_x + bar_w + 10 + tick_w + 12 + th + PAD;
    int legend_y = my + (bar_h > mat ? bar_h : mat) + 4 + 4 + th + 10 + th + 16;
    int h = legend_y + th + PAD;
    int need_w = PAD + sf_text_w(sub2, TS) + PAD;
    if (sf_text_w(sub1, TS) + 2 * PAD > need_w) need_w = sf_text_w(sub1, TS) + 2 * PAD;
    if (sf_text_w(title, TS) + 2 * PAD > need_w) need_w = sf_text_w(title, TS) + 2 * PAD;
    if (need_w > w) w = need_w;
    if (w < 700) w = 700; /* room for the legend line */

    sf_canvas c;
    int rc = sf_canvas_init(&c, w, h, WHITE);
    if (rc) return rc;

    sf_canvas_text(&c, PAD, PAD, title, TS, INK);
    sf_canvas_text(&c, PAD, PAD + th + 8, sub1, TS, INK);
    sf_canvas_text(&c, PAD, PAD + 2 * (th + 8), sub2, TS, INK);

    /* cells */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float v = m[(size_t)i * n + j];
            sf_rgb col = i >= j ? UNDEF_GREY : !isfinite(v) ? NAN_GREY : sf_viridis(sf_log_pos(v, lo, hi));
            sf_canvas_rect(&c, mx + j * cell, my + i * cell, cell, cell, col);
        }
    sf_canvas_frame(&c, mx - 1, my - 1, mat + 2, mat + 2, INK);

    /* attention-free layers, marked above their columns */
    if (strip) {
        for (int j = 0; j < n; j++)
            if (sf_report_attn_free(a, j)) sf_canvas_rect(&c, mx + j * cell, my - 18, cell, 8, NOATTN);
        sf_canvas_text(&c, mx - 8 - sf_text_w(strip_lab, TS), my - 21, strip_lab, TS, INK);
    }

    /* row ticks: dropped block i */
    for (int i = 0; i < n; i += row_step) {
        snprintf(num, sizeof num, "%d", i);
        int cy = my + i * cell + cell / 2;
        sf_canvas_rect(&c, mx - 5, cy, 4, 1, INK);
        sf_canvas_text(&c, mx - 8 - sf_text_w(num, TS), cy - th / 2, num, TS, INK);
    }
    const char *ylab = "dropped block i";
    int ylab_len = sf_text_w(ylab, TS);
    sf_canvas_text_up(&c, PAD, my + (mat - ylab_len) / 2 > my ? my + (mat - ylab_len) / 2 : my, ylab, TS, INK);

    /* column ticks: affected block j */
    for (int j = 0; j < n; j += col_step) {
        snprintf(num, sizeof num, "%d", j);
        int cx = mx + j * cell + cell / 2;
        sf_canvas_rect(&c, cx, my + mat + 1, 1, 4, INK);
        sf_canvas_text(&c, cx - sf_text_w(num, TS) / 2, my + mat + 8, num, TS, INK);
    }
    const char *xlab = "affected block j";
    sf_canvas_text(&c, mx + (mat - sf_text_w(xlab, TS)) / 2, my + mat + 8 + th + 10, xlab, TS, INK);

    /* colour bar: top = hi */
    for (int y = 0; y < bar_h; y++)
        sf_canvas_rect(&c, bar_x, my + y, bar_w, 1, sf_viridis(1.0 - (double)y / (bar_h - 1)));
    sf_canvas_frame(&c, bar_x - 1, my - 1, bar_w + 2, bar_h + 2, INK);
    int last_y = -1000;
    for (int k = n_ticks - 1; k >= 0; k--) { /* top down, skipping crowded labels */
        int y = my + (int)lround((1.0 - sf_log_pos(ticks[k], lo, hi)) * (bar_h - 1));
        if (y - last_y < th + 2) continue;
        last_y = y;
        sf_report_fmt_tick(num, ticks[k]);
        sf_canvas_rect(&c, bar_x + bar_w + 1, y, 5, 1, INK);
        sf_canvas_text(&c, bar_x + bar_w + 10, y - th / 2, num, TS, INK);
    }
    int bl = sf_text_w(bar_label, TS);
    sf_canvas_text_up(&c, bar_x + bar_w + 10 + tick_w + 12, my + (bar_h - bl) / 2, bar_label, TS, INK);

    /* legend */
    int x = legend(&c, PAD, legend_y, NAN_GREY, "no value");
    x = legend(&c, x, legend_y, UNDEF_GREY, "i >= j (not defined)");
    if (strip) legend(&c, x, legend_y, NOATTN, "attention-free layer");

    rc = sf_png_encode(&c, png);
    sf_canvas_free(&c);
    return rc;
}
