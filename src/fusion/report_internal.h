/* Internals of the FFN Fusion analysis report (sf_analysis_write_report):
 * a growable byte buffer, an RGB canvas with a built-in 5x7 bitmap font,
 * a log colour scale, PNG encoding, and one builder per output file.
 * Every builder fills a buffer; report.c writes it atomically. */
#ifndef SF_FUSION_REPORT_INTERNAL_H
#define SF_FUSION_REPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sparsefuse_fusion.h"

/* ---- byte buffer (report_buf.c) ---- */
typedef struct {
    char *data; /* [len] bytes, NUL-terminated while len < cap */
    size_t len, cap;
    int failed; /* an allocation failed: contents are incomplete */
} sf_rbuf;

void sf_rbuf_put(sf_rbuf *b, const void *p, size_t n);
void sf_rbuf_puts(sf_rbuf *b, const char *s);
void sf_rbuf_printf(sf_rbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void sf_rbuf_free(sf_rbuf *b);

/* Shortest "%.Ng" text (N <= 9) that reads back as the same float; "" for
 * NaN/inf. out must hold 32 bytes. */
void sf_report_fmt_float(char out[32], float v);

/* ---- canvas (report_canvas.c, report_font.c) ---- */
typedef struct {
    uint8_t r, g, b;
} sf_rgb;

typedef struct {
    int w, h;
    uint8_t *px; /* [h][w][3] RGB */
} sf_canvas;

#define SF_FONT_W 5 /* glyph cell; characters advance (SF_FONT_W + 1) * scale */
#define SF_FONT_H 7
#define SF_FONT_ROWS 8 /* glyph rows: the 7-row cell and a descender row below it */

int sf_canvas_init(sf_canvas *c, int w, int h, sf_rgb bg); /* SF_OK / SF_ERR_NOMEM */
void sf_canvas_free(sf_canvas *c);
void sf_canvas_rect(sf_canvas *c, int x, int y, int w, int h, sf_rgb col); /* clipped */
void sf_canvas_frame(sf_canvas *c, int x, int y, int w, int h, sf_rgb col); /* 1-px outline */
/* Text with its top-left corner at (x, y); each font pixel is scale x scale. */
void sf_canvas_text(sf_canvas *c, int x, int y, const char *s, int scale, sf_rgb col);
/* Text turned 90 degrees counter-clockwise (reads bottom to top); (x, y) is
 * the top-left of its bounding box, which is text_h wide and text_w tall. */
void sf_canvas_text_up(sf_canvas *c, int x, int y, const char *s, int scale, sf_rgb col);
int sf_text_w(const char *s, int scale);
int sf_text_h(int scale);
/* The 5x7 glyph of an ASCII character (others draw as '?'): SF_FONT_ROWS
 * rows of 5 chars, '#' = ink; row 7 only holds descenders. */
const char (*sf_font_glyph(unsigned char ch))[SF_FONT_W + 1];

/* ---- colour scales (report_canvas.c) ---- */
sf_rgb sf_viridis(double t); /* t in [0,1] (clamped): dark purple -> yellow */
/* Position of v on a log scale from lo to hi (both > 0), clamped to [0,1];
 * v <= 0 maps to 0. */
double sf_log_pos(double v, double lo, double hi);
/* Tick label for a value: "0.05", "2", "1e-3", "5e+4". out holds 32 bytes. */
void sf_report_fmt_tick(char out[32], double v);
/* Ticks for a log axis from lo to hi: the powers of ten inside, plus 2x and
 * 5x when fewer than two powers fit, plus the ends when still fewer than two.
 * Returns the count (<= max), ascending. */
int sf_report_log_ticks(double lo, double hi, double *ticks, int max);
/* Smallest positive and largest finite value of v[0..n) (NAN when there is
 * none); returns the count of finite values. */
int sf_report_range(const float *v, int n, double *min_pos, double *max_val);

/* ---- PNG (report_png.c) ---- */
int sf_png_encode(const sf_canvas *c, sf_rbuf *out); /* SF_OK or SF_ERR_* */

/* path <- buf atomically (temp name, fsync, rename; report.c). */
int sf_report_write_file(const char *path, const sf_rbuf *buf);

/* ---- figures and files ---- */
int sf_report_heatmap(const sf_analysis *a, const float *m, const char *title, sf_rbuf *png);
int sf_report_importance_attn(const sf_analysis *a, sf_rbuf *png);
int sf_report_importance_blocks(const sf_analysis *a, sf_rbuf *png);
int sf_report_json(const sf_analysis *a, sf_rbuf *out);
int sf_report_csv_matrix(const sf_analysis *a, const float *m, sf_rbuf *out);
int sf_report_csv_importance(const sf_analysis *a, sf_rbuf *out);
int sf_report_html(const sf_analysis *a, sf_rbuf *out);

/* Layer l has no attention sub-block (the analysis marks it with NaN). */
int sf_report_attn_free(const sf_analysis *a, int l);

/* File names, shared by the writer, the HTML page and the tests. */
#define SF_REPORT_JSON "analysis.json"
#define SF_REPORT_CSV_BLOCKS "dependency_blocks.csv"
#define SF_REPORT_CSV_FFN "dependency_ffn.csv"
#define SF_REPORT_CSV_IMPORTANCE "importance.csv"
#define SF_REPORT_PNG_BLOCKS "heatmap_blocks.png"
#define SF_REPORT_PNG_FFN "heatmap_ffn.png"
#define SF_REPORT_PNG_ATTN "importance_attn.png"
#define SF_REPORT_PNG_IMPORTANCE "importance_blocks.png"
#define SF_REPORT_HTML "index.html"

#define SF_REPORT_MAX_LAYERS 1024 /* keeps the figures a sane size */

#endif
