/* Per-layer bar charts of the importance measures: attention importance
 * (1 - cos, KL) and block importance (1 - cos, KL, contribution size). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "fusion/report_internal.h"

#define TS 2
#define PAD 16
#define PLOT_H 180 /* bar area height, px */

static const sf_rgb WHITE = {255, 255, 255};
static const sf_rgb INK = {30, 30, 30};
static const sf_rgb GRID = {225, 225, 225};
static const sf_rgb NAN_GREY = {150, 150, 150};
static const sf_rgb NAN_BACK = {236, 236, 236};
static const sf_rgb SERIES[2] = {{49, 104, 142}, {230, 140, 40}};

typedef struct {
    const char *title;
    int n_series;                /* 1 or 2 */
    const float *v[2];           /* [n_layer] each */
    const char *name[2];         /* legend names when n_series == 2 */
    int log;                     /* log y axis (values <= 0 draw as empty bars) */
} panel;

typedef struct {
    int n, slot;      /* layers, px per layer */
    int x0, ytick_w;  /* left edge of the plot area, width of the y labels */
} layout;

#define NAN_NOTE "grey: no value"

static int legend_w(const panel *p) {
    int w = sf_text_w(NAN_NOTE, TS);
    if (p->n_series == 2)
        for (int s = 0; s < 2; s++) w += 20 + sf_text_w(p->name[s], TS) + 24;
    return w;
}

static int panel_height(void) { return sf_text_h(TS) + 18 + PLOT_H + 8 + sf_text_h(TS) + 8 + sf_text_h(TS) + 24; }

static double nice_step(double raw) {
    double p = pow(10, floor(log10(raw)));
    double f = raw / p;
    const double tol = 1 + 1e-6; /* float inputs: 0.1f is a hair above 0.1 */
    return (f <= tol ? 1 : f <= 2 * tol ? 2 : f <= 5 * tol ? 5 : 10) * p;
}

/* y axis: linear 0..top with ticks every step, or log lo..hi with decade ticks */
typedef struct {
    int log;
    double lo, hi;
    double ticks[32];
    int n_ticks;
} yaxis;

static void make_axis(const panel *p, int n, yaxis *ax) {
    double mn = NAN, mx = NAN;
    for (int s = 0; s < p->n_series; s++) {
        double a, b;
        if (!sf_report_range(p->v[s], n, &a, &b)) continue;
        if (a > 0 && !(a >= mn)) mn = a;
        if (!(b <= mx)) mx = b;
    }
    ax->log = p->log;
    if (p->log) {
        if (!(mn > 0) || !(mx > 0)) {
            mn = 1e-3;
            mx = 1;
        }
        /* a decade below the smallest value unless that leaves it 0.3 decades of bar */
        ax->lo = pow(10, floor(log10(mn) - 0.3));
        ax->hi = pow(10, ceil(log10(mx) - 1e-6));
        if (ax->hi <= ax->lo) ax->hi = ax->lo * 10;
        if (ax->lo < ax->hi * 1e-8) ax->lo = ax->hi * 1e-8;
        ax->n_ticks = sf_report_log_ticks(ax->lo, ax->hi, ax->ticks, 32);
    } else {
        if (!(mx > 0)) mx = 1;
        double step = nice_step(mx / 4);
        ax->lo = 0;
        ax->hi = ceil(mx / step - 1e-6) * step;
        ax->n_ticks = 0;
        for (int k = 0; k * step <= ax->hi * (1 + 1e-9) && ax->n_ticks < 32; k++) ax->ticks[ax->n_ticks++] = k * step;
    }
}

static double axis_pos(const yaxis *ax, double v) {
    if (ax->log) return sf_log_pos(v, ax->lo, ax->hi);
    double t = v / ax->hi;
    return t < 0 ? 0 : t > 1 ? 1 : t;
}

static int tick_step(int slot, int need) {
    static const int steps[] = {1, 2, 5, 10, 20, 50, 100, 200, 500};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++)
        if (steps[k] * slot >= need) return steps[k];
    return 1000;
}

static void draw_panel(sf_canvas *c, const layout *L, int y0, const panel *p) {
    int th = sf_text_h(TS), n = L->n;
    yaxis ax;
    make_axis(p, n, &ax);
    char num[32];

    sf_canvas_text(c, PAD, y0, p->title, TS, INK);
    int py = y0 + th + 18;            /* top of the plot area */
    int pw = n * L->slot, base = py + PLOT_H; /* baseline y */

    /* grid and y ticks */
    for (int k = 0; k < ax.n_ticks; k++) {
        int y = base - (int)lround(axis_pos(&ax, ax.ticks[k]) * PLOT_H);
        sf_canvas_rect(c, L->x0, y, pw, 1, GRID);
        sf_canvas_rect(c, L->x0 - 5, y, 4, 1, INK);
        sf_report_fmt_tick(num, ax.ticks[k]);
        sf_canvas_text(c, L->x0 - 8 - sf_text_w(num, TS), y - th / 2, num, TS, INK);
    }

    /* bars */
    int gap = L->slot / 5 > 1 ? L->slot / 5 : 1;
    int bw = (L->slot - gap) / p->n_series;
    if (bw < 1) bw = 1;
    for (int l = 0; l < n; l++)
        for (int s = 0; s < p->n_series; s++) {
            int x = L->x0 + l * L->slot + gap / 2 + s * bw;
            float v = p->v[s][l];
            if (!isfinite(v)) { /* light column with a grey foot: no value */
                sf_canvas_rect(c, x, py, bw, PLOT_H, NAN_BACK);
                sf_canvas_rect(c, x, base - 4, bw, 4, NAN_GREY);
                continue;
            }
            int hgt = (int)lround(axis_pos(&ax, v) * PLOT_H);
            sf_canvas_rect(c, x, base - hgt, bw, hgt, SERIES[s]);
        }
    sf_canvas_rect(c, L->x0, py, 1, PLOT_H + 1, INK);
    sf_canvas_rect(c, L->x0, base, pw, 1, INK);

    /* x ticks */
    snprintf(num, sizeof num, "%d", n - 1);
    int step = tick_step(L->slot, sf_text_w(num, TS) + 6);
    for (int l = 0; l < n; l += step) {
        snprintf(num, sizeof num, "%d", l);
        int cx = L->x0 + l * L->slot + L->slot / 2;
        sf_canvas_rect(c, cx, base + 1, 1, 4, INK);
        sf_canvas_text(c, cx - sf_text_w(num, TS) / 2, base + 8, num, TS, INK);
    }
    const char *xl = "layer";
    sf_canvas_text(c, L->x0 + (pw - sf_text_w(xl, TS)) / 2, base + 8 + th + 8, xl, TS, INK);

    /* legend on the title line, right-aligned: series names, grey marks */
    int lx = c->w - PAD - legend_w(p);
    if (p->n_series == 2)
        for (int s = 0; s < 2; s++) {
            sf_canvas_rect(c, lx, y0, 14, 14, SERIES[s]);
            sf_canvas_text(c, lx + 20, y0, p->name[s], TS, INK);
            lx += 20 + sf_text_w(p->name[s], TS) + 24;
        }
    sf_canvas_text(c, lx, y0, NAN_NOTE, TS, NAN_GREY);
}

static int figure(const sf_analysis *a, const char *title, const panel *ps, int np, sf_rbuf *png) {
    int n = a->n_layer, th = sf_text_h(TS);
    layout L = {.n = n};
    L.slot = 900 / n; /* 30 px at 30 layers, 11 at 80, at most 80 */
    if (L.slot > 80) L.slot = 80;
    if (L.slot < 3) L.slot = 3;

    /* widest y tick label over all panels */
    L.ytick_w = 0;
    for (int k = 0; k < np; k++) {
        yaxis ax;
        make_axis(&ps[k], n, &ax);
        for (int t = 0; t < ax.n_ticks; t++) {
            char num[32];
            sf_report_fmt_tick(num, ax.ticks[t]);
            if (sf_text_w(num, TS) > L.ytick_w) L.ytick_w = sf_text_w(num, TS);
        }
    }
    L.x0 = PAD + L.ytick_w + 10;

    char sub[256];
    snprintf(sub, sizeof sub, "model: %.60s   tokens: %lld", a->model ? a->model : "?", (long long)a->n_tokens);
    int w = L.x0 + n * L.slot + PAD;
    int need = PAD + sf_text_w(sub, TS) + PAD;
    for (int k = 0; k < np; k++)
        if (PAD + sf_text_w(ps[k].title, TS) + 40 + legend_w(&ps[k]) + PAD > need)
            need = PAD + sf_text_w(ps[k].title, TS) + 40 + legend_w(&ps[k]) + PAD;
    if (need > w) w = need;
    int top = PAD + 2 * (th + 8) + 12;
    int h = top + np * panel_height() + PAD;

    sf_canvas c;
    int rc = sf_canvas_init(&c, w, h, WHITE);
    if (rc) return rc;
    sf_canvas_text(&c, PAD, PAD, title, TS, INK);
    sf_canvas_text(&c, PAD, PAD + th + 8, sub, TS, INK);
    for (int k = 0; k < np; k++) draw_panel(&c, &L, top + k * panel_height(), &ps[k]);
    rc = sf_png_encode(&c, png);
    sf_canvas_free(&c);
    return rc;
}

int sf_report_importance_attn(const sf_analysis *a, sf_rbuf *png) {
    panel ps[2] = {
        {.title = "attn_cos: mean 1 - cos(x_in, x after attention)", .n_series = 1, .v = {a->attn_cos}},
        {.title = "attn_kl: mean KL(dense || this attention removed), log", .n_series = 1, .v = {a->attn_kl},
         .log = 1},
    };
    return figure(a, "Attention importance per layer", ps, 2, png);
}

int sf_report_importance_blocks(const sf_analysis *a, sf_rbuf *png) {
    panel ps[3] = {
        {.title = "block_cos: mean 1 - cos(x_in, x_out)", .n_series = 1, .v = {a->block_cos}},
        {.title = "block_kl: mean KL(dense || block removed), log", .n_series = 1, .v = {a->block_kl}, .log = 1},
        {.title = "h_ratio, ffn_h_ratio: mean ||h|| / ||x||",
         .n_series = 2,
         .v = {a->h_ratio, a->ffn_h_ratio},
         .name = {"block", "FFN"}},
    };
    return figure(a, "Block importance per layer", ps, 3, png);
}
