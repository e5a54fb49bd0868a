/* The scalar reference of axpy_rows (types.h), one generic body for every
 * type with a dequantizer:
 *
 *   y[i] += s[r] * v_r[i]   for r = 0, 1, .., k-1 in order, each row over all i,
 *
 * v_r = the type's reference dequantization of rows[r], taken 256 values at a
 * time (a multiple of every block size: 1, 32, 256) into a stack buffer. Each
 * step rounds twice, the product then the sum (written as two statements, so
 * no compiler contracts them into an FMA). The SIMD kernels keep the row order
 * and differ only in how they round the product (simd_axpy_*.c). k = 0 reads
 * nothing and leaves y as it is. */
#include <stdint.h>

#include "tensor/types.h"

/* Values dequantized per step: one K-quant super-block, 8 legacy blocks. */
#define CHUNK SF_QK_K

static void axpy_ref(int type, int64_t n, const void *const *rows, const float *s, int k, float *y) {
    const sf_type_traits *tr = sf_type_ref(type);
    const int64_t bs = tr->block_size;
    float v[CHUNK];
    for (int r = 0; r < k; r++) {
        const uint8_t *row = rows[r];
        const float sr = s[r];
        for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
            const int64_t m = n - i0 < CHUNK ? n - i0 : CHUNK; /* a multiple of bs: n and CHUNK are */
            tr->dequantize(row + (size_t)(i0 / bs) * tr->type_size, v, m);
            for (int64_t i = 0; i < m; i++) {
                const float p = sr * v[i];
                y[i0 + i] += p;
            }
        }
    }
}

/* the per-type entries of the reference table (declared in types.c) */
#define AXPY_REF(name, type)                                                                                           \
    void sf_ref_axpy_rows_##name(int64_t n, const void *const *rows, const float *s, int k, float *y) {                \
        axpy_ref(type, n, rows, s, k, y);                                                                              \
    }

AXPY_REF(f32, SF_TYPE_F32)
AXPY_REF(f16, SF_TYPE_F16)
AXPY_REF(bf16, SF_TYPE_BF16)
AXPY_REF(q4_0, SF_TYPE_Q4_0)
AXPY_REF(q4_1, SF_TYPE_Q4_1)
AXPY_REF(q5_0, SF_TYPE_Q5_0)
AXPY_REF(q5_1, SF_TYPE_Q5_1)
AXPY_REF(q8_0, SF_TYPE_Q8_0)
AXPY_REF(q2_K, SF_TYPE_Q2_K)
AXPY_REF(q3_K, SF_TYPE_Q3_K)
AXPY_REF(q4_K, SF_TYPE_Q4_K)
AXPY_REF(q5_K, SF_TYPE_Q5_K)
AXPY_REF(q6_K, SF_TYPE_Q6_K)
AXPY_REF(iq4_nl, SF_TYPE_IQ4_NL)
