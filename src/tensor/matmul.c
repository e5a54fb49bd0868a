#include "tensor/matmul.h"

#include "tensor/ggml_batch.h"
#include "tensor/kq_unpack.h"
#include "tensor/legacy_tile.h"

/* Every path computes each output in the float order of the kernel
 * llama.cpp's CPU backend runs for that weight type, row count and batch
 * (tensor/ggml_batch.h), so logits stay bit-identical to llama.cpp's on x86.
 * The fast mode gets there with SIMD kernels; the exact mode runs ggml's
 * batch-dependent K-quant orders through the scalar references (the ground
 * truth the kernel tests hold the fast ones to). */

/* Legacy path: rows are processed in tiles so one tile of weight rows stays
 * in L1 while every token's activation row streams past it. */
enum { ROW_TILE = 8 };

/* K-quant path: a tile of rows is unpacked (kq_unpack.h) into a stack
 * buffer of this size, then every group of 4 tokens runs through the 2x4
 * kernel. Tiles hold up to KQ_MAX_ROWS rows (fewer for long rows). */
enum { KQ_BUF_BYTES = 384 * 1024, KQ_MAX_ROWS = 16, KQ_MIN_TOKENS = 4 };
enum { ORDER_NONE = -3, ORDER_ANY = -2 }; /* beyond T; a row whose result llama.cpp never computes */

static inline void store(float *y, int64_t y_stride, int t, int64_t r, float v, bool accumulate) {
    float *yr = y + (int64_t)t * y_stride + r;
    *yr = accumulate ? *yr + v : v;
}

static int order_of(const sf_matrix *w, int T, int t) {
    const int nb = w->ggml_batch > 0 ? w->ggml_batch : T;
    if (t >= T) return ORDER_NONE;
    if (t < w->ggml_first) return ORDER_ANY;
    return sf_ggml_batch_order(w->type, w->n_out, nb, t - w->ggml_first);
}

/* One row tile u[rows][nsb] against tokens t..t+3 (fewer at the end): each
 * distinct order among the 4 tokens is one kernel pass (or vec_dot). */
static void kq_token_group(const sf_matrix *w, const sf_type_traits *tr, const void *tile, int64_t nsb,
                           int64_t rt, int64_t re, const uint8_t *xd, size_t x_stride, int T, int t, float *y,
                           int64_t y_stride, bool accumulate) {
    const size_t row_bytes = sf_type_row_bytes(w->type, w->n_in);
    const uint8_t *a[4];
    int ord[4];
    for (int k = 0; k < 4; k++) {
        ord[k] = order_of(w, T, t + k);
        a[k] = xd + (size_t)(ord[k] == ORDER_NONE ? t : t + k) * x_stride; /* past T: any valid row */
    }
    unsigned done = 0;
    for (int k = 0; k < 4; k++) {
        if (ord[k] == ORDER_NONE || (done >> k & 1)) continue;
        int o = ord[k];
        for (int j = 0; o == ORDER_ANY && j < 4; j++)
            if (ord[j] >= SF_GGML_VEC_DOT) o = ord[j];
        if (o == ORDER_ANY) o = SF_KQ_TILED;
        unsigned mask = 0;
        for (int j = 0; j < 4; j++)
            if (!(done >> j & 1) && (ord[j] == o || ord[j] == ORDER_ANY)) mask |= 1u << j;
        done |= mask;
        if (o == SF_GGML_VEC_DOT) {
            for (int j = 0; j < 4; j++)
                for (int64_t r = rt; mask >> j & 1 && r < re; r++)
                    store(y, y_stride, t + j, r, tr->vec_dot(w->n_in, (const uint8_t *)w->data + (size_t)r * row_bytes, a[j]),
                          accumulate);
            continue;
        }
        if (tr->kq16_gemm) { /* one interleaved tile of up to 16 rows */
            float v[4][16];
            tr->kq16_gemm(nsb, tile, a, o, v);
            for (int j = 0; j < 4; j++)
                for (int64_t r = rt; mask >> j & 1 && r < re; r++) store(y, y_stride, t + j, r, v[j][r - rt], accumulate);
            continue;
        }
        const sf_kq_unpacked *u = tile; /* [re - rt][nsb] */
        for (int64_t r = rt; r < re; r += 2) {
            /* an odd last row is paired with itself, its second half dropped */
            const int64_t r2 = r + 1 < re ? r + 1 : r;
            float v[8];
            tr->kq_gemm_2x4(nsb, u + (r - rt) * nsb, u + (r2 - rt) * nsb, a, o, v);
            for (int j = 0; j < 4; j++) {
                if (!(mask >> j & 1)) continue;
                store(y, y_stride, t + j, r, v[j], accumulate);
                if (r2 != r) store(y, y_stride, t + j, r2, v[4 + j], accumulate);
            }
        }
    }
}

/* Rows [r0, r1) of y for tokens 0..T-1 through the unpacked K-quant kernel;
 * returns false (nothing done) when a tile of 2 rows does not fit. */
static __attribute__((noinline)) bool matmul_kq(const sf_matrix *w, const sf_type_traits *tr, const void *x, size_t x_stride, int T, float *y,
                      int64_t y_stride, bool accumulate, int64_t r0, int64_t r1) {
    _Alignas(64) unsigned char buf[KQ_BUF_BYTES];
    const int64_t nsb = w->n_in / SF_QK_K;
    const size_t row_bytes = sf_type_row_bytes(w->type, w->n_in);
    const uint8_t *wd = w->data;
    if (tr->kq16_gemm && (size_t)nsb * sizeof(sf_kq_tile16) <= sizeof buf) {
        sf_kq_tile16 *tile = (sf_kq_tile16 *)buf; /* [nsb]: 16 rows */
        for (int64_t rt = r0; rt < r1; rt += 16) {
            const int64_t re = rt + 16 < r1 ? rt + 16 : r1;
            sf_kq_unpack_tile16(w->type, wd + (size_t)rt * row_bytes, row_bytes, (int)(re - rt), w->n_in, tile);
            for (int t = 0; t < T; t += 4)
                kq_token_group(w, tr, tile, nsb, rt, re, x, x_stride, T, t, y, y_stride, accumulate);
        }
        return true;
    }
    sf_type_traits tr2 = *tr; /* the 2-row kernel: this tile does not fit */
    tr2.kq16_gemm = NULL;
    int64_t tile = KQ_BUF_BYTES / (int64_t)(nsb * sizeof(sf_kq_unpacked));
    if (tile > KQ_MAX_ROWS) tile = KQ_MAX_ROWS;
    if (tile < 2) return false;
    sf_kq_unpacked *u = (sf_kq_unpacked *)buf; /* [tile][nsb] */
    for (int64_t rt = r0; rt < r1; rt += tile) {
        const int64_t re = rt + tile < r1 ? rt + tile : r1;
        for (int64_t r = rt; r < re; r++) sf_kq_unpack_row(w->type, wd + (size_t)r * row_bytes, w->n_in, u + (r - rt) * nsb);
        for (int t = 0; t < T; t += 4)
            kq_token_group(w, &tr2, u, nsb, rt, re, x, x_stride, T, t, y, y_stride, accumulate);
    }
    return true;
}

/* Legacy path, fast mode (legacy_tile.h): tokens in chunks whose activation
 * scales and sums are prepared once; per chunk each 16-row tile is unpacked
 * into a stack buffer and every token of the chunk runs past it, 8 at a
 * time. Returns false (nothing done) when one tile does not fit. Below
 * LG_MIN_TOKENS the tile unpack costs more than it saves: the 2x4 kernel on
 * the file's blocks is faster (SmolLM2 Q4_1, 2 threads: pp4 194 -> 406 t/s,
 * pp16 392 -> 446, equal at pp32). */
enum { LG_TILE_BYTES = 384 * 1024, LG_ACT_BYTES = 512 * 1024, LG_MIN_TOKENS = 32 };

static __attribute__((noinline)) bool matmul_lg16(const sf_matrix *w, const sf_type_traits *tr, const void *x,
                                                  size_t x_stride, int T, float *y, int64_t y_stride, bool accumulate,
                                                  int64_t r0, int64_t r1) {
    _Alignas(64) unsigned char tile_buf[LG_TILE_BYTES];
    _Alignas(64) unsigned char act_buf[LG_ACT_BYTES];
    const int64_t nb = w->n_in / SF_QK;
    const size_t per_token = (size_t)nb * SF_LG_ACT_BYTES;
    if ((size_t)nb * sizeof(sf_lg_tile16) > sizeof tile_buf || per_token * SF_LG_TOKENS > sizeof act_buf) return false;
    int chunk = (int)(sizeof act_buf / per_token);
    if (chunk > T) chunk = T;
    sf_lg_tile16 *tile = (sf_lg_tile16 *)tile_buf; /* [nb]: 16 rows */
    const size_t row_bytes = sf_type_row_bytes(w->type, w->n_in);
    const uint8_t *wd = w->data, *xd = x;
    for (int t0 = 0; t0 < T; t0 += chunk) {
        const int tc = T - t0 < chunk ? T - t0 : chunk;
        const sf_lg_acts acts = sf_lg16_acts_prepare(w->type, xd + (size_t)t0 * x_stride, x_stride, tc, nb, act_buf);
        for (int64_t rt = r0; rt < r1; rt += 16) {
            const int64_t re = rt + 16 < r1 ? rt + 16 : r1;
            tr->lg16_unpack(wd + (size_t)rt * row_bytes, row_bytes, (int)(re - rt), w->n_in, tile);
            for (int k0 = 0; k0 < tc; k0 += SF_LG_TOKENS) {
                const int n = tc - k0 < SF_LG_TOKENS ? tc - k0 : SF_LG_TOKENS;
                const sf_lg_acts view = sf_lg16_acts_from(acts, k0);
                float v[SF_LG_TOKENS][16];
                tr->lg16_gemm(nb, tile, n, &view, v);
                for (int k = 0; k < n; k++)
                    for (int64_t r = rt; r < re; r++) store(y, y_stride, t0 + k0 + k, r, v[k][r - rt], accumulate);
            }
        }
    }
    return true;
}

/* The dot for token t outside the tiles: ggml's order for it. */
static sf_vec_dot_fn token_dot(const sf_matrix *w, const sf_type_traits *tr, bool exact, int T, int t) {
    const int o = order_of(w, T, t);
    if (o == SF_KQ_REPACK_GEMV && !exact && tr->dot_repacked_gemv) return tr->dot_repacked_gemv;
    const int nb = w->ggml_batch > 0 ? w->ggml_batch : T;
    sf_vec_dot_fn f = o >= 0 ? sf_ggml_batch_dot(w->type, w->n_out, nb, t - w->ggml_first) : NULL;
    return f ? f : tr->vec_dot;
}

sf_vec_dot_fn sf_matmul_gemv_dot(const sf_matrix *w) {
    return token_dot(w, sf_type_fast(w->type), sf_kernels_exact(), 1, 0);
}

void sf_matmul_rows(const sf_matrix *w, const void *x, size_t x_stride, int T, float *y, int64_t y_stride,
                    bool accumulate, int64_t r0, int64_t r1) {
    const sf_type_traits *tr = sf_type_fast(w->type);
    const bool exact = sf_kernels_exact();
    if (!exact && tr->kq_gemm_2x4 && T >= KQ_MIN_TOKENS && matmul_kq(w, tr, x, x_stride, T, y, y_stride, accumulate, r0, r1))
        return;
    if (!exact && tr->lg16_gemm && T >= LG_MIN_TOKENS && matmul_lg16(w, tr, x, x_stride, T, y, y_stride, accumulate, r0, r1))
        return;
    /* exact mode: the 2x4 tiles only where they equal vec_dot */
    sf_vec_dot_2x4_fn tile = exact && !tr->vec_dot_2x4_exact ? NULL : tr->vec_dot_2x4;
    const size_t row_bytes = sf_type_row_bytes(w->type, w->n_in);
    const uint8_t *wd = w->data;
    const uint8_t *xd = x;
    for (int64_t rt = r0; rt < r1; rt += ROW_TILE) {
        const int64_t re = rt + ROW_TILE < r1 ? rt + ROW_TILE : r1;
        int t = 0;
        /* groups of 4 tokens x 2 rows through the 2x4 kernel where every
         * token is on ggml's plain vec_dot path */
        for (; tile && re - rt >= 2 && t + 4 <= T; t += 4) {
            bool plain = true;
            for (int k = 0; k < 4; k++) plain &= order_of(w, T, t + k) < 0;
            if (!plain) break;
            int64_t r = rt;
            for (; r + 2 <= re; r += 2) {
                float v[8];
                tile(w->n_in, wd + (size_t)r * row_bytes, row_bytes, xd + (size_t)t * x_stride, x_stride, v);
                for (int i = 0; i < 2; i++)
                    for (int k = 0; k < 4; k++) store(y, y_stride, t + k, r + i, v[4 * i + k], accumulate);
            }
            for (; r < re; r++) /* an odd last row */
                for (int k = 0; k < 4; k++)
                    store(y, y_stride, t + k, r,
                          tr->vec_dot(w->n_in, wd + (size_t)r * row_bytes, xd + (size_t)(t + k) * x_stride), accumulate);
        }
        for (; t < T; t++) {
            const void *xt = xd + (size_t)t * x_stride;
            const sf_vec_dot_fn dot = token_dot(w, tr, exact, T, t);
            for (int64_t r = rt; r < re; r++) store(y, y_stride, t, r, dot(w->n_in, wd + (size_t)r * row_bytes, xt), accumulate);
        }
    }
}
