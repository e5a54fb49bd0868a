/* RGB canvas drawing (rectangles, bitmap text) and the colour scales used by
 * the report figures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "fusion/report_internal.h"

int sf_canvas_init(sf_canvas *c, int w, int h, sf_rgb bg) {
    c->w = w;
    c->h = h;
    c->px = malloc((size_t)w * (size_t)h * 3);
    if (!c->px) return sf_fail(SF_ERR_NOMEM, "report: out of memory for a %dx%d image", w, h);
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) {
        c->px[3 * i] = bg.r;
        c->px[3 * i + 1] = bg.g;
        c->px[3 * i + 2] = bg.b;
    }
    return SF_OK;
}

void sf_canvas_free(sf_canvas *c) {
    free(c->px);
    c->px = NULL;
}

void sf_canvas_rect(sf_canvas *c, int x, int y, int w, int h, sf_rgb col) {
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > c->w ? c->w : x + w, y1 = y + h > c->h ? c->h : y + h;
    for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++) {
            uint8_t *p = c->px + 3 * ((size_t)yy * (size_t)c->w + (size_t)xx);
            p[0] = col.r;
            p[1] = col.g;
            p[2] = col.b;
        }
}

void sf_canvas_frame(sf_canvas *c, int x, int y, int w, int h, sf_rgb col) {
    sf_canvas_rect(c, x, y, w, 1, col);
    sf_canvas_rect(c, x, y + h - 1, w, 1, col);
    sf_canvas_rect(c, x, y, 1, h, col);
    sf_canvas_rect(c, x + w - 1, y, 1, h, col);
}

int sf_text_w(const char *s, int scale) {
    int n = (int)strlen(s);
    return n ? n * (SF_FONT_W + 1) * scale - scale : 0;
}

int sf_text_h(int scale) { return SF_FONT_H * scale; }

void sf_canvas_text(sf_canvas *c, int x, int y, const char *s, int scale, sf_rgb col) {
    for (; *s; s++, x += (SF_FONT_W + 1) * scale) {
        const char (*g)[SF_FONT_W + 1] = sf_font_glyph((unsigned char)*s);
        for (int r = 0; r < SF_FONT_ROWS; r++)
            for (int k = 0; k < SF_FONT_W; k++)
                if (g[r][k] == '#') sf_canvas_rect(c, x + k * scale, y + r * scale, scale, scale, col);
    }
}

void sf_canvas_text_up(sf_canvas *c, int x, int y, const char *s, int scale, sf_rgb col) {
    /* glyph pixel (row r, column k) of character i lands at
     * x + r, y + total - 1 - (i*(W+1) + k) in font units */
    int total = sf_text_w(s, scale);
    for (int i = 0; s[i]; i++) {
        const char (*g)[SF_FONT_W + 1] = sf_font_glyph((unsigned char)s[i]);
        for (int r = 0; r < SF_FONT_ROWS; r++)
            for (int k = 0; k < SF_FONT_W; k++)
                if (g[r][k] == '#')
                    sf_canvas_rect(c, x + r * scale, y + total - (i * (SF_FONT_W + 1) + k + 1) * scale, scale,
                                   scale, col);
    }
}

/* matplotlib's viridis at t = 0, 1/8, ..., 1; linear in between */
static const uint8_t viridis[9][3] = {
    {68, 1, 84},    {71, 44, 122},  {59, 81, 139}, {44, 113, 142}, {33, 144, 141},
    {39, 173, 129}, {92, 200, 99}, {170, 220, 50}, {253, 231, 37},
};

sf_rgb sf_viridis(double t) {
    if (!(t > 0)) t = 0; /* also NaN */
    if (t > 1) t = 1;
    double f = t * 8;
    int i = (int)f;
    if (i > 7) i = 7;
    f -= i;
    sf_rgb c;
    c.r = (uint8_t)lround(viridis[i][0] + f * (viridis[i + 1][0] - viridis[i][0]));
    c.g = (uint8_t)lround(viridis[i][1] + f * (viridis[i + 1][1] - viridis[i][1]));
    c.b = (uint8_t)lround(viridis[i][2] + f * (viridis[i + 1][2] - viridis[i][2]));
    return c;
}

double sf_log_pos(double v, double lo, double hi) {
    if (!(v > lo)) return 0; /* also v <= 0 and NaN */
    if (v >= hi) return 1;
    return (log(v) - log(lo)) / (log(hi) - log(lo));
}

void sf_report_fmt_tick(char out[32], double v) {
    double a = fabs(v);
    if (v == 0 || (a >= 0.001 && a < 10000)) {
        snprintf(out, 32, "%.4g", v);
        return;
    }
    /* "2.5e-05" -> "2.5e-5", "1.0e-04" -> "1e-4" */
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.1e", v);
    char *e = strchr(tmp, 'e');
    int ex = e ? atoi(e + 1) : 0;
    if (e) *e = '\0';
    size_t k = strlen(tmp);
    while (k > 1 && tmp[k - 1] == '0') tmp[--k] = '\0';
    if (k > 1 && tmp[k - 1] == '.') tmp[--k] = '\0';
    snprintf(out, 32, "%.16se%d", tmp, ex);
}

int sf_report_log_ticks(double lo, double hi, double *ticks, int max) {
    static const double mult[3] = {1, 2, 5};
    int n = 0;
    for (int pass = 0; pass < 2 && n < 2; pass++) {
        n = 0;
        for (int e = (int)floor(log10(lo)) - 1; e <= (int)ceil(log10(hi)) + 1; e++)
            for (int m = 0; m < (pass ? 3 : 1); m++) {
                double v = mult[m] * pow(10, e);
                if (v >= lo * (1 - 1e-6) && v <= hi * (1 + 1e-6) && n < max) ticks[n++] = v;
            }
    }
    if (n < 2 && max >= 2) {
        ticks[0] = lo;
        ticks[1] = hi;
        n = 2;
    }
    return n;
}

int sf_report_range(const float *v, int n, double *min_pos, double *max_val) {
    int count = 0;
    *min_pos = NAN;
    *max_val = NAN;
    for (int k = 0; k < n; k++) {
        if (!isfinite(v[k])) continue;
        count++;
        if (v[k] > 0 && !(v[k] >= *min_pos)) *min_pos = v[k];
        if (!(v[k] <= *max_val)) *max_val = v[k];
    }
    return count;
}
