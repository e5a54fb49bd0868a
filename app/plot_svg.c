/* SVG scatter plots (plot_svg.h). */
#include "plot_svg.h"

#include <math.h>
#include <stdlib.h>

enum { W = 720, H = 480, LEFT = 70, RIGHT = 30, TOP = 40, BOTTOM = 60 };

/* A tick step of 1, 2 or 5 times a power of ten giving about 5 ticks. */
static double tick_step(double range) {
    if (!(range > 0)) return 1;
    const double raw = range / 5, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* Text with &, <, > escaped. */
static void put_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else
            fputc(*s, f);
    }
}

typedef struct {
    double x0, x1, y0, y1;
} bounds;

static double px(const bounds *b, double x) { return LEFT + (x - b->x0) / (b->x1 - b->x0) * (W - LEFT - RIGHT); }
static double py(const bounds *b, double y) { return H - BOTTOM - (y - b->y0) / (b->y1 - b->y0) * (H - TOP - BOTTOM); }

static int by_x(const void *a, const void *b) {
    const svg_point *p = a, *q = b;
    return (p->x > q->x) - (p->x < q->x);
}

static void axes(FILE *f, const bounds *b, double sx, double sy) {
    fprintf(f, "<g stroke=\"#ccc\" stroke-width=\"1\">\n");
    for (double x = b->x0; x <= b->x1 + sx / 2; x += sx)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", px(b, x), TOP, px(b, x), H - BOTTOM);
    for (double y = b->y0; y <= b->y1 + sy / 2; y += sy)
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", LEFT, py(b, y), W - RIGHT, py(b, y));
    fprintf(f, "</g>\n<g font-size=\"12\" fill=\"#333\">\n");
    for (double x = b->x0; x <= b->x1 + sx / 2; x += sx)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", px(b, x), H - BOTTOM + 18,
                fabs(x) < sx / 1e6 ? 0 : x);
    for (double y = b->y0; y <= b->y1 + sy / 2; y += sy)
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", LEFT - 6, py(b, y) + 4,
                fabs(y) < sy / 1e6 ? 0 : y);
    fprintf(f, "</g>\n");
}

void svg_scatter(FILE *f, const char *title, const char *xlabel, const char *ylabel, const svg_point *pts, int n,
                 bool frontier) {
    bounds b = {0, 0, INFINITY, -INFINITY};
    for (int i = 0; i < n; i++) {
        if (pts[i].x > b.x1) b.x1 = pts[i].x;
        if (pts[i].y < b.y0) b.y0 = pts[i].y;
        if (pts[i].y > b.y1) b.y1 = pts[i].y;
    }
    if (n == 0) b = (bounds){0, 1, 0, 1};
    const double sx = tick_step(b.x1 > 0 ? b.x1 * 1.1 : 1), sy = tick_step(b.y1 > b.y0 ? (b.y1 - b.y0) * 1.2 : 1);
    b.x1 = ceil((b.x1 > 0 ? b.x1 * 1.05 : 1) / sx) * sx;
    b.y0 = floor((b.y0 - (b.y1 - b.y0) * 0.05) / sy) * sy;
    b.y1 = ceil((b.y1 + (b.y1 - b.y0) * 0.05) / sy) * sy;
    if (b.y1 <= b.y0) b.y1 = b.y0 + sy;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">", W / 2);
    put_text(f, title);
    fprintf(f, "</text>\n");
    axes(f, &b, sx, sy);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">", (LEFT + W - RIGHT) / 2, H - 16);
    put_text(f, xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(18 %d) rotate(-90)\" font-size=\"13\" text-anchor=\"middle\">",
            (TOP + H - BOTTOM) / 2);
    put_text(f, ylabel);
    fprintf(f, "</text>\n");
    if (frontier && n > 1) {
        /* by x; a point is on the frontier when it is faster than every point left of it */
        svg_point *s = malloc(sizeof *s * (size_t)n);
        if (s) {
            for (int i = 0; i < n; i++) s[i] = pts[i];
            qsort(s, (size_t)n, sizeof *s, by_x);
            fprintf(f, "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\" points=\"");
            double best = -INFINITY;
            for (int i = 0; i < n; i++)
                if (s[i].y > best) {
                    best = s[i].y;
                    fprintf(f, "%.1f,%.1f ", px(&b, s[i].x), py(&b, s[i].y));
                }
            fprintf(f, "\"/>\n");
            free(s);
        }
    }
    fprintf(f, "<g font-size=\"11\">\n");
    for (int i = 0; i < n; i++) {
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#1f77b4\"/>\n", px(&b, pts[i].x), py(&b, pts[i].y));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", px(&b, pts[i].x) + 6, py(&b, pts[i].y) - 6);
        put_text(f, pts[i].label);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</g>\n</svg>\n");
}
