#include "tensor/matmul.h"

#include "tensor/ggml_batch.h"

/* Rows are processed in tiles so one tile of weight rows stays in L1 while
 * every token's activation row streams past it (weights read once per tile
 * of tokens, not once per token). */
enum { ROW_TILE = 8 };

void sf_matmul_rows(const sf_matrix *w, const void *x, size_t x_stride, int T, float *y, int64_t y_stride,
                    bool accumulate, int64_t r0, int64_t r1) {
    const sf_type_traits *tr = sf_type_fast(w->type);
    const int ggml_batch = w->ggml_batch > 0 ? w->ggml_batch : T;
    const size_t row_bytes = sf_type_row_bytes(w->type, w->n_in);
    const uint8_t *wd = w->data;
    const uint8_t *xd = x;
    for (int64_t rt = r0; rt < r1; rt += ROW_TILE) {
        const int64_t re = rt + ROW_TILE < r1 ? rt + ROW_TILE : r1;
        int t = 0;
        /* groups of 4 tokens x 2 rows through the 2x4 kernel where it computes
         * what vec_dot would (every token on the plain vec_dot path) */
        for (; tr->vec_dot_2x4 && re - rt >= 2 && t + 4 <= T; t += 4) {
            bool plain = true;
            for (int k = 0; k < 4; k++) plain &= !sf_ggml_batch_dot(w->type, w->n_out, ggml_batch, t + k - w->ggml_first);
            if (!plain) break;
            int64_t r = rt;
            for (; r + 2 <= re; r += 2) {
                float v[8];
                tr->vec_dot_2x4(w->n_in, wd + (size_t)r * row_bytes, row_bytes, xd + (size_t)t * x_stride, x_stride, v);
                for (int i = 0; i < 2; i++)
                    for (int k = 0; k < 4; k++) {
                        float *yr = y + (int64_t)(t + k) * y_stride + r + i;
                        *yr = accumulate ? *yr + v[4 * i + k] : v[4 * i + k];
                    }
            }
            for (; r < re; r++) /* an odd last row */
                for (int k = 0; k < 4; k++) {
                    const float v = tr->vec_dot(w->n_in, wd + (size_t)r * row_bytes, xd + (size_t)(t + k) * x_stride);
                    float *yr = y + (int64_t)(t + k) * y_stride + r;
                    *yr = accumulate ? *yr + v : v;
                }
        }
        for (; t < T; t++) {
            const void *xt = xd + (size_t)t * x_stride;
            float *yt = y + (int64_t)t * y_stride;
            sf_vec_dot_fn dot = sf_ggml_batch_dot(w->type, w->n_out, ggml_batch, t - w->ggml_first);
            if (!dot) dot = tr->vec_dot;
            for (int64_t r = rt; r < re; r++) {
                float v = dot(w->n_in, wd + (size_t)r * row_bytes, xt);
                yt[r] = accumulate ? yt[r] + v : v;
            }
        }
    }
}
