/* Encodes an RGB canvas as PNG into a memory buffer with libpng (the file
 * itself is written atomically by report.c). */
#include <png.h>
#include <stdlib.h>

#include "base/error.h"
#include "fusion/report_internal.h"

static void on_write(png_structp png, png_bytep data, png_size_t n) {
    sf_rbuf *out = png_get_io_ptr(png);
    sf_rbuf_put(out, data, n);
    if (out->failed) png_error(png, "out of memory");
}

static void on_flush(png_structp png) { (void)png; }

/* libpng reports errors by longjmp; keep the message for sf_fail */
static void on_error(png_structp png, png_const_charp msg) {
    sf_fail(SF_ERR_IO, "report: PNG encoding failed: %s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

int sf_png_encode(const sf_canvas *c, sf_rbuf *out) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, on_error, on_warning);
    if (!png) return sf_fail(SF_ERR_NOMEM, "report: cannot create a PNG writer");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return sf_fail(SF_ERR_NOMEM, "report: cannot create PNG info");
    }
    png_bytep *volatile rows = NULL; /* [h] pointers into c->px; volatile: survives longjmp */
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        png_destroy_write_struct(&png, &info);
        return out->failed ? sf_fail(SF_ERR_NOMEM, "report: out of memory encoding a PNG") : SF_ERR_IO;
    }
    rows = malloc((size_t)c->h * sizeof *rows);
    if (!rows) png_error(png, "out of memory");
    for (int y = 0; y < c->h; y++) rows[y] = c->px + (size_t)y * (size_t)c->w * 3;
    png_set_write_fn(png, out, on_write, on_flush);
    png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    free(rows);
    png_destroy_write_struct(&png, &info);
    return SF_OK;
}
