/* The routing map: which blocks each token ran (Mixture-of-Depths, Figure 1
 * right), as a PNG (the report's canvas and libpng) or an SVG. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "fusion/report_internal.h"
#include "sparsefuse_routing.h"

enum { MARGIN = 40, LABEL_W = 44, BAR_W = 80, GAP = 12, TITLE_H = 24, AXIS_H = 22 };

/* Geometry: cell size so the map is at most ~1400 px wide and 12 px per block. */
typedef struct {
    int cw, ch;     /* cell width, height */
    int x0, y0;     /* top-left of the map */
    int w, h;       /* whole picture */
} layout;

static layout layout_of(int n_tok, int n_layer) {
    layout g;
    g.cw = n_tok <= 350 ? 4 : n_tok <= 700 ? 2 : 1;
    g.ch = n_layer <= 40 ? 12 : 6;
    g.x0 = MARGIN + LABEL_W;
    g.y0 = MARGIN + TITLE_H;
    g.w = g.x0 + n_tok * g.cw + GAP + BAR_W + MARGIN;
    g.h = g.y0 + n_layer * g.ch + AXIS_H + MARGIN;
    return g;
}

static double share(const bool *run, int n_tok, int n_layer, int l) {
    int n = 0;
    for (int t = 0; t < n_tok; t++) n += run[(size_t)t * n_layer + l];
    return n_tok ? (double)n / n_tok : 0.0;
}

static const sf_rgb RAN = {45, 60, 130}, SKIPPED = {235, 235, 225}, BAR = {220, 120, 40}, INK = {30, 30, 30};

static int draw_png(const bool *run, int n_tok, int n_layer, const char *title, sf_rbuf *out) {
    const layout g = layout_of(n_tok, n_layer);
    const int scale = sf_text_w(title, 2) <= g.w - 2 * MARGIN ? 2 : 1;
    const int w = sf_text_w(title, scale) + 2 * MARGIN > g.w ? sf_text_w(title, scale) + 2 * MARGIN : g.w;
    sf_canvas c;
    int rc = sf_canvas_init(&c, w, g.h, (sf_rgb){255, 255, 255});
    if (rc) return rc;
    sf_canvas_text(&c, MARGIN, MARGIN, title, scale, INK);
    for (int l = 0; l < n_layer; l++) {
        const int y = g.y0 + l * g.ch;
        for (int t = 0; t < n_tok; t++)
            sf_canvas_rect(&c, g.x0 + t * g.cw, y, g.cw, g.ch - 1, run[(size_t)t * n_layer + l] ? RAN : SKIPPED);
        const int bw = (int)(share(run, n_tok, n_layer, l) * BAR_W + 0.5);
        sf_canvas_rect(&c, g.x0 + n_tok * g.cw + GAP, y, bw, g.ch - 1, BAR);
        if (l % 5 == 0) {
            char s[16];
            snprintf(s, sizeof s, "%d", l);
            sf_canvas_text(&c, g.x0 - 6 - sf_text_w(s, 1), y + (g.ch - sf_text_h(1)) / 2, s, 1, INK);
        }
    }
    sf_canvas_text_up(&c, MARGIN, g.y0 + n_layer * g.ch / 2 - sf_text_w("block", 1) / 2, "block", 1, INK);
    const int ya = g.y0 + n_layer * g.ch + 6;
    char s[48];
    snprintf(s, sizeof s, "token 0 .. %d", n_tok - 1);
    sf_canvas_text(&c, g.x0, ya, s, 1, INK);
    sf_canvas_text(&c, g.x0 + n_tok * g.cw + GAP, ya, "share run", 1, INK);
    rc = sf_png_encode(&c, out);
    sf_canvas_free(&c);
    return rc;
}

static void svg_text_escaped(sf_rbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '<') sf_rbuf_puts(b, "&lt;");
        else if (*s == '>') sf_rbuf_puts(b, "&gt;");
        else if (*s == '&') sf_rbuf_puts(b, "&amp;");
        else sf_rbuf_put(b, s, 1);
    }
}

static void draw_svg(const bool *run, int n_tok, int n_layer, const char *title, sf_rbuf *b) {
    const layout g = layout_of(n_tok, n_layer);
    sf_rbuf_printf(b,
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
                   "font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n"
                   "<text x=\"%d\" y=\"%d\" font-size=\"15\">",
                   g.w, g.h, MARGIN, MARGIN + 12);
    svg_text_escaped(b, title);
    sf_rbuf_puts(b, "</text>\n");
    for (int l = 0; l < n_layer; l++) {
        const int y = g.y0 + l * g.ch;
        sf_rbuf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#ebebe1\"/>\n", g.x0, y,
                       n_tok * g.cw, g.ch - 1);
        /* runs of consecutive tokens that ran the block: one rect each */
        for (int t = 0; t < n_tok;) {
            if (!run[(size_t)t * n_layer + l]) {
                t++;
                continue;
            }
            int e = t;
            while (e < n_tok && run[(size_t)e * n_layer + l]) e++;
            sf_rbuf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#2d3c82\"/>\n",
                           g.x0 + t * g.cw, y, (e - t) * g.cw, g.ch - 1);
            t = e;
        }
        const double f = share(run, n_tok, n_layer, l);
        sf_rbuf_printf(b,
                       "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#dc7828\"><title>block %d: %.1f %% "
                       "of tokens ran it</title></rect>\n",
                       g.x0 + n_tok * g.cw + GAP, y, f * BAR_W, g.ch - 1, l, 100.0 * f);
        if (l % 5 == 0)
            sf_rbuf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%d</text>\n", g.x0 - 6, y + g.ch - 2, l);
    }
    const int ya = g.y0 + n_layer * g.ch + 14;
    sf_rbuf_printf(b,
                   "<text x=\"%d\" y=\"%d\" transform=\"rotate(-90 %d %d)\" text-anchor=\"end\">block</text>\n"
                   "<text x=\"%d\" y=\"%d\">token 0 .. %d (dark: ran the block; light: skipped it)</text>\n"
                   "<text x=\"%d\" y=\"%d\">share run</text>\n</svg>\n",
                   MARGIN + 10, g.y0, MARGIN + 10, g.y0, g.x0, ya, n_tok - 1, g.x0 + n_tok * g.cw + GAP, ya);
}

static bool ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int sf_route_map_write(const char *path, const bool *run, int n_tok, int n_layer, const char *title) {
    if (!path || !run || n_tok < 1 || n_layer < 1) return sf_fail(SF_ERR_ARG, "route map: nothing to draw");
    const bool png = ends_with(path, ".png");
    if (!png && !ends_with(path, ".svg"))
        return sf_fail(SF_ERR_ARG, "route map: %s: the name must end in .png or .svg", path);
    if (n_tok > 4096) n_tok = 4096; /* wider than any screen */
    sf_rbuf b = {0};
    int rc = SF_OK;
    if (png) rc = draw_png(run, n_tok, n_layer, title ? title : "", &b);
    else draw_svg(run, n_tok, n_layer, title ? title : "", &b);
    if (!rc && b.failed) rc = sf_fail(SF_ERR_NOMEM, "route map: out of memory");
    if (!rc) rc = sf_report_write_file(path, &b);
    sf_rbuf_free(&b);
    return rc;
}
