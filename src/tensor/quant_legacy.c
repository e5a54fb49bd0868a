/* Scalar reference kernels for the legacy 32-value blocks:
 * Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (weights) and Q8_0, Q8_1 (activations).
 *
 * Layouts and formulas: docs/reference/gguf-and-engine.md section 3.2. The
 * quantizers follow ggml's quantize_row_*_ref step for step (same operations
 * in the same order) so their bytes match ggml's; the dot products follow
 * ggml's ggml_vec_dot_*_generic: an exact integer sum per block, then one
 * float scale per block. Intermediate results are kept in named variables
 * where ggml does, so that no compiler fuses them into an FMA (which would
 * change roundings).
 *
 * Blocks are packed (18, 20, 22... bytes), so a block's f16 fields can be
 * misaligned: every block is copied into a local struct with memcpy. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "tensor/blocks.h"
#include "tensor/quant_ref.h"

#define QK SF_QK

/* Largest |x| in a block and the signed value that has it (first one wins). */
static void block_signed_max(const float *x, float *amax_out, float *max_out) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    *amax_out = amax;
    *max_out = max;
}

static void block_min_max(const float *x, float *min_out, float *max_out) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < QK; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *min_out = min;
    *max_out = max;
}

/* ------------------------------------------------------------------ Q4_0 */

void sf_ref_dequantize_q4_0(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/32] blocks of 18 bytes */
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q4_0 b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        const float d = sf_fp16_to_fp32(b.d);
        for (int j = 0; j < QK / 2; j++) {
            dst[i * QK + j] = ((b.qs[j] & 0x0F) - 8) * d;
            dst[i * QK + j + QK / 2] = ((b.qs[j] >> 4) - 8) * d;
        }
    }
}

void sf_ref_quantize_q4_0(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        const float *x = src + i * QK;
        float amax, max;
        block_signed_max(x, &amax, &max);
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        sf_block_q4_0 b;
        b.d = sf_fp32_to_fp16(d);
        for (int j = 0; j < QK / 2; j++) {
            const float v0 = x[j] * id, v1 = x[j + QK / 2] * id;
            int q0 = sf_trunc_sat(v0 + 8.5f, -128, 127);
            int q1 = sf_trunc_sat(v1 + 8.5f, -128, 127);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            b.qs[j] = (uint8_t)((q0 & 0x0F) | (q1 << 4));
        }
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

float sf_ref_vec_dot_q4_0(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* Q4_0 and Q8_0 blocks */
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q4_0 x;
        sf_block_q8_0 y;
        memcpy(&x, pw + i * sizeof x, sizeof x);
        memcpy(&y, pa + i * sizeof y, sizeof y);
        int sumi = 0;
        for (int j = 0; j < QK / 2; j++) {
            sumi += ((x.qs[j] & 0x0F) - 8) * y.qs[j];
            sumi += ((x.qs[j] >> 4) - 8) * y.qs[j + QK / 2];
        }
        sumf += sumi * sf_fp16_to_fp32(x.d) * sf_fp16_to_fp32(y.d);
    }
    return sumf;
}

/* ------------------------------------------------------------------ Q4_1 */

void sf_ref_dequantize_q4_1(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/32] blocks of 20 bytes */
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q4_1 b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        const float d = sf_fp16_to_fp32(b.d), m = sf_fp16_to_fp32(b.m);
        for (int j = 0; j < QK / 2; j++) {
            dst[i * QK + j] = (b.qs[j] & 0x0F) * d + m;
            dst[i * QK + j + QK / 2] = (b.qs[j] >> 4) * d + m;
        }
    }
}

void sf_ref_quantize_q4_1(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        const float *x = src + i * QK;
        float min, max;
        block_min_max(x, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        sf_block_q4_1 b;
        b.d = sf_fp32_to_fp16(d);
        b.m = sf_fp32_to_fp16(min);
        for (int j = 0; j < QK / 2; j++) {
            const float v0 = (x[j] - min) * id, v1 = (x[j + QK / 2] - min) * id;
            int q0 = sf_trunc_sat(v0 + 0.5f, -128, 127);
            int q1 = sf_trunc_sat(v1 + 0.5f, -128, 127);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            b.qs[j] = (uint8_t)((q0 & 0x0F) | (q1 << 4));
        }
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

float sf_ref_vec_dot_q4_1(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* Q4_1 and Q8_1 blocks */
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q4_1 x;
        sf_block_q8_1 y;
        memcpy(&x, pw + i * sizeof x, sizeof x);
        memcpy(&y, pa + i * sizeof y, sizeof y);
        int sumi = 0;
        for (int j = 0; j < QK / 2; j++) {
            sumi += (x.qs[j] & 0x0F) * y.qs[j];
            sumi += (x.qs[j] >> 4) * y.qs[j + QK / 2];
        }
        /* the offset m meets the activation sum s = d_a * sum(q_a) */
        sumf += (sf_fp16_to_fp32(x.d) * sf_fp16_to_fp32(y.d)) * sumi +
                sf_fp16_to_fp32(x.m) * sf_fp16_to_fp32(y.s);
    }
    return sumf;
}

/* ------------------------------------------------------------------ Q5_0 */

/* 5-bit value j (0..31) of a Q5 block: low nibble from qs, 5th bit from qh. */
static inline int q5_value(const uint8_t qs[16], uint32_t qh, int j) {
    const int lo = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
    return lo | (int)(((qh >> j) & 1u) << 4);
}

void sf_ref_dequantize_q5_0(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/32] blocks of 22 bytes */
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q5_0 b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        uint32_t qh;
        memcpy(&qh, b.qh, 4); /* little-endian, as on every supported host */
        const float d = sf_fp16_to_fp32(b.d);
        for (int j = 0; j < QK; j++) dst[i * QK + j] = (q5_value(b.qs, qh, j) - 16) * d;
    }
}

void sf_ref_quantize_q5_0(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        const float *x = src + i * QK;
        float amax, max;
        block_signed_max(x, &amax, &max);
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        sf_block_q5_0 b;
        b.d = sf_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            const float v0 = x[j] * id, v1 = x[j + QK / 2] * id;
            int q0 = sf_trunc_sat(v0 + 16.5f, -128, 127);
            int q1 = sf_trunc_sat(v1 + 16.5f, -128, 127);
            q0 = q0 < 31 ? q0 : 31;
            q1 = q1 < 31 ? q1 : 31;
            b.qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((uint32_t)(q0 & 0x10) >> 4) << j;
            qh |= ((uint32_t)(q1 & 0x10) >> 4) << (j + QK / 2);
        }
        memcpy(b.qh, &qh, 4);
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

float sf_ref_vec_dot_q5_0(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* Q5_0 and Q8_0 blocks */
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q5_0 x;
        sf_block_q8_0 y;
        memcpy(&x, pw + i * sizeof x, sizeof x);
        memcpy(&y, pa + i * sizeof y, sizeof y);
        uint32_t qh;
        memcpy(&qh, x.qh, 4);
        int sumi = 0;
        for (int j = 0; j < QK; j++) sumi += (q5_value(x.qs, qh, j) - 16) * y.qs[j];
        sumf += (sf_fp16_to_fp32(x.d) * sf_fp16_to_fp32(y.d)) * sumi;
    }
    return sumf;
}

/* ------------------------------------------------------------------ Q5_1 */

void sf_ref_dequantize_q5_1(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/32] blocks of 24 bytes */
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q5_1 b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        uint32_t qh;
        memcpy(&qh, b.qh, 4);
        const float d = sf_fp16_to_fp32(b.d), m = sf_fp16_to_fp32(b.m);
        for (int j = 0; j < QK; j++) dst[i * QK + j] = q5_value(b.qs, qh, j) * d + m;
    }
}

void sf_ref_quantize_q5_1(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        const float *x = src + i * QK;
        float min, max;
        block_min_max(x, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        sf_block_q5_1 b;
        b.d = sf_fp32_to_fp16(d);
        b.m = sf_fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            /* ggml converts to uint8_t here (no clamp to 31) */
            const float v0 = (x[j] - min) * id, v1 = (x[j + QK / 2] - min) * id;
            const int q0 = sf_trunc_sat(v0 + 0.5f, 0, 255);
            const int q1 = sf_trunc_sat(v1 + 0.5f, 0, 255);
            b.qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((uint32_t)(q0 & 0x10) >> 4) << j;
            qh |= ((uint32_t)(q1 & 0x10) >> 4) << (j + QK / 2);
        }
        memcpy(b.qh, &qh, 4);
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

float sf_ref_vec_dot_q5_1(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* Q5_1 and Q8_1 blocks */
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q5_1 x;
        sf_block_q8_1 y;
        memcpy(&x, pw + i * sizeof x, sizeof x);
        memcpy(&y, pa + i * sizeof y, sizeof y);
        uint32_t qh;
        memcpy(&qh, x.qh, 4);
        int sumi = 0;
        for (int j = 0; j < QK; j++) sumi += q5_value(x.qs, qh, j) * y.qs[j];
        sumf += (sf_fp16_to_fp32(x.d) * sf_fp16_to_fp32(y.d)) * sumi +
                sf_fp16_to_fp32(x.m) * sf_fp16_to_fp32(y.s);
    }
    return sumf;
}

/* ------------------------------------------------------------------ Q8_0 */

void sf_ref_dequantize_q8_0(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/32] blocks of 34 bytes */
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q8_0 b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        const float d = sf_fp16_to_fp32(b.d);
        for (int j = 0; j < QK; j++) dst[i * QK + j] = b.qs[j] * d;
    }
}

/* Q8_0 / Q8_1 core: d = amax/127 (stored as f16), q = roundf(x / d) computed
 * as x * (1/d) with the f32 d. Returns the f32 d. */
static float quantize_block_q8(const float *x, int8_t qs[QK]) {
    float amax = 0.0f;
    for (int j = 0; j < QK; j++) {
        const float v = fabsf(x[j]);
        amax = amax > v ? amax : v; /* ggml's MAX(amax, v) */
    }
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK; j++) qs[j] = (int8_t)sf_trunc_sat(roundf(x[j] * id), -128, 127);
    return d;
}

void sf_ref_quantize_q8_0(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q8_0 b;
        b.d = sf_fp32_to_fp16(quantize_block_q8(src + i * QK, b.qs));
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

float sf_ref_vec_dot_q8_0(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* Q8_0 blocks, both */
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q8_0 x, y;
        memcpy(&x, pw + i * sizeof x, sizeof x);
        memcpy(&y, pa + i * sizeof y, sizeof y);
        int sumi = 0;
        for (int j = 0; j < QK; j++) sumi += x.qs[j] * y.qs[j];
        sumf += sumi * (sf_fp16_to_fp32(x.d) * sf_fp16_to_fp32(y.d));
    }
    return sumf;
}

/* ------------------------------------------------------------------ Q8_1 */

void sf_ref_dequantize_q8_1(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/32] blocks of 36 bytes */
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q8_1 b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        const float d = sf_fp16_to_fp32(b.d);
        for (int j = 0; j < QK; j++) dst[i * QK + j] = b.qs[j] * d;
    }
}

void sf_ref_quantize_q8_1(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_q8_1 b;
        const float d = quantize_block_q8(src + i * QK, b.qs);
        int sum = 0;
        for (int j = 0; j < QK; j++) sum += b.qs[j];
        b.d = sf_fp32_to_fp16(d);
        b.s = sf_fp32_to_fp16(sum * d);
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}
