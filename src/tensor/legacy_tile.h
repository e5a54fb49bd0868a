/* Legacy-quant blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL) rearranged for
 * the fast prompt kernel (internal).
 *
 * Every legacy type is, per block of 32 values,
 *   value[e] = d * (u[e] - off) + m,
 * with u an unsigned byte (Q4_0 nibble, off 8; Q5_0 off 16; Q8_0 and IQ4_NL
 * the signed level + 128, off 128; Q4_1 / Q5_1 off 0 and a min m). The dot
 * with an activation block (d_y, y[32], s_y = d_y * sum y) is then
 *   d * d_y * (sum u * y - off * sum y) + m * s_y,
 * one integer dot (vpdpbusd: unsigned x signed bytes) and two float terms,
 * whatever the type. 16 rows are interleaved so that each 32-bit lane of a
 * 512-bit register belongs to one row: the kernel accumulates every row in
 * its own lane with no horizontal sums. A tile is unpacked once per matmul
 * call and reused for every token of the batch.
 *
 * Two float orders (below): the fastest, used where llama.cpp's own order
 * is not ours to match anyway (Q4_0, which it repacks), and ggml's vec_dot
 * order, bit-identical to llama.cpp, for the others. Either way it is a
 * fast-mode kernel: the exact mode keeps the 2x4 kernels. */
#ifndef SF_TENSOR_LEGACY_TILE_H
#define SF_TENSOR_LEGACY_TILE_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/types.h"

/* One block of 16 rows. Rows past the matrix are zero (results dropped). */
typedef struct sf_lg_tile16 {
    uint8_t q[8][64]; /* group of 4 values g: bytes 4r..4r+3 = row r's u[4g..4g+3] */
    float d[16];      /* per row: the block's scale */
    float m[16];      /* per row: the block's min (Q4_1, Q5_1), else 0 */
} sf_lg_tile16;

/* Activation blocks prepared for the kernel: token k's block i has its 32
 * signed quants at qs + k * stride + i * block, its scale d[k * nb + i],
 * s[k * nb + i] = s_y (Q8_1 activations; NULL for Q8_0 ones), and the
 * offset corrections corr[k * nb + i] = -off * sum y and, per group of 4
 * values, corr4[(k * nb + i) * 8 + g] = -off * (y[4g] + .. + y[4g + 3]). */
enum { SF_LG_TOKENS = 8 };
typedef struct sf_lg_acts {
    const uint8_t *qs;
    size_t stride, block;
    int64_t nb;
    const float *d, *s;
    const int32_t *corr, *corr4;
} sf_lg_acts;

/* Bytes of prepared data per token and block (d, s, corr, corr4). */
enum { SF_LG_ACT_BYTES = 2 * 4 + 4 + 8 * 4 };

/* out[k][r] = row r . token k for k < n_tok (n_tok <= SF_LG_TOKENS). */
typedef void (*sf_lg16_gemm_fn)(int64_t nb, const sf_lg_tile16 *w, int n_tok, const sf_lg_acts *a, float out[][16]);
/* Unpacks the nb = n / 32 blocks of n_rows <= 16 rows (row_bytes apart)
 * into dst[nb]. */
typedef void (*sf_lg16_unpack_fn)(const void *rows, size_t row_bytes, int n_rows, int64_t n, sf_lg_tile16 *dst);

/* The constant offset off of a legacy type (above); -1 for other types. */
int sf_lg16_offset(sf_type type);

/* Prepares tokens 0..n_tok-1 of x (rows x_stride bytes apart, in `type`'s
 * vec_dot_type) in buf (n_tok * nb * SF_LG_ACT_BYTES bytes, 4-aligned) and
 * returns the view. */
sf_lg_acts sf_lg16_acts_prepare(sf_type type, const void *x, size_t x_stride, int n_tok, int64_t nb, void *buf);

/* The view of tokens [k0, ...) of a prepared view. */
sf_lg_acts sf_lg16_acts_from(sf_lg_acts a, int k0);

/* Scalar references, the ground truth the SIMD versions are tested against
 * (bit for bit: the same integer sums, the same float operations). Two
 * kernels: the fastest order (one integer sum per block, above), and ggml's
 * vec_dot order (an FMA chain per group of 4 values across the blocks, the
 * 8 chains summed as ggml's hsum does, the min terms summed on their own),
 * which equals llama.cpp's results bit for bit. */
void sf_lg16_unpack_ref(sf_type type, const void *rows, size_t row_bytes, int n_rows, int64_t n, sf_lg_tile16 *dst);
void sf_lg16_gemm_ref(int64_t nb, const sf_lg_tile16 *w, int n_tok, const sf_lg_acts *a, float out[][16]);
void sf_lg16_gemm_ggml_ref(int64_t nb, const sf_lg_tile16 *w, int n_tok, const sf_lg_acts *a, float out[][16]);

#endif
