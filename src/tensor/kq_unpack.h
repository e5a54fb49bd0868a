/* K-quant super-blocks rearranged for the prompt-path kernels (internal).
 *
 * Every K-quant type (Q2_K..Q6_K) is, per super-block of 256 values,
 *   value[e] = d * sc_g * q[e] + dm * mn_g,    g = e / 16,
 * with q unsigned (0..63), sc_g and mn_g small integers and d, dm floats.
 * (Q4_K/Q5_K: mn = the sub-block min, dm = -dmin; Q6_K/Q3_K: the constant
 * offset of the quants, mn = -32 sc resp. -4 sc, dm = d; Q2_K: like Q4_K.)
 * The dot with a Q8_K block y is then
 *   d_y * (d * sum_g sc_g * sum_{e in g} q_e y_e  +  dm * sum_g mn_g * bsum_g)
 * whatever the type, so one integer kernel serves them all. A weight tile is
 * unpacked once and reused for every token of the batch, so the unpacking
 * cost is spread over the whole prompt. */
#ifndef SF_TENSOR_KQ_UNPACK_H
#define SF_TENSOR_KQ_UNPACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct sf_kq_unpacked {
    uint8_t q[256];    /* unsigned quants in element order */
    int16_t sc[8][16]; /* 32-value chunk c as maddubs pairs: lanes 0-7 sc_{2c}, 8-15 sc_{2c+1} */
    int16_t mn[16];    /* per 16 values, multiplies that group's activation sum */
    float d, dm;
} sf_kq_unpacked;

/* The float orders of ggml's K-quant matmul paths that the unpacked kernel
 * reproduces (tensor/ggml_batch.h; kq_gemm_impl.h has the formulas). */
enum {
    SF_KQ_TILED,        /* ggml's tiled matmul, types with a min (Q4_K, Q5_K; Q2_K) */
    SF_KQ_TILED_OFFSET, /* the same for types with a constant offset (Q3_K, Q6_K) */
    SF_KQ_REPACK_GEMV,  /* Q4_K repacked 8 rows at a time, single activation rows */
    SF_KQ_REPACK_GEMM   /* the same, activation rows in groups of 4 */
};

/* 16 rows of one super-block, interleaved so that each 32-bit lane of a
 * 512-bit register belongs to one row (as ggml's repacked layouts do): the
 * kernel then accumulates every row in its own lane and needs no horizontal
 * sums. Rows past the matrix are zero (their results are dropped). */
typedef struct sf_kq_tile16 {
    uint8_t q[64][64];   /* group of 4 values gq: bytes 4r..4r+3 = row r's values 4gq..4gq+3 */
    int16_t sc[16][32];  /* 16-value group g: lanes 2r, 2r+1 = row r's sc_g */
    int16_t mn[8][32];   /* groups 2j, 2j+1: lane 2r = row r's mn_2j, 2r+1 = its mn_2j+1 */
    float d[16], dm[16]; /* per row */
} sf_kq_tile16;

/* Unpacks super-blocks of n_rows <= 16 rows (row_bytes apart) into
 * dst[n/256]; rows n_rows..15 are zero. Returns 0, or -1 for a type that
 * is not a K-quant. */
int sf_kq_unpack_tile16(int type, const void *rows, size_t row_bytes, int n_rows, int64_t n, sf_kq_tile16 *dst);

/* Unpacks the n/256 super-blocks of one row of `type` (SF_TYPE_Q2_K..Q6_K)
 * into dst[n/256]. Returns 0, or -1 for another type. */
int sf_kq_unpack_row(int type, const void *row, int64_t n, sf_kq_unpacked *dst);

/* Reference dot of an unpacked row with a Q8_K row (scalar, for tests). */
float sf_kq_unpacked_dot_ref(int64_t n, const sf_kq_unpacked *w, const void *a);

#endif
