/* Scalar reference kernels for the float types: F32, F16, BF16.
 *
 * Elements are read with memcpy so rows may sit at any address. The dot
 * products accumulate in double, as ggml's scalar ggml_vec_dot_f32/_f16/_bf16
 * do (ggml_float), so they are the most accurate answer a SIMD kernel with
 * f32 accumulators is compared against. */
#include <string.h>

#include "tensor/fp16.h"
#include "tensor/quant_ref.h"

/* ---- F32 (vec_dot with F32) */

void sf_ref_dequantize_f32(const void *src, float *dst, int64_t n) {
    memmove(dst, src, (size_t)n * sizeof(float));
}

void sf_ref_quantize_f32(const float *src, void *dst, int64_t n) {
    memmove(dst, src, (size_t)n * sizeof(float));
}

float sf_ref_vec_dot_f32(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* [n] f32 each */
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float x, y;
        memcpy(&x, pw + 4 * i, 4);
        memcpy(&y, pa + 4 * i, 4);
        sum += (double)(x * y);
    }
    return (float)sum;
}

/* ---- F16 (vec_dot with F16) */

static inline float load_f16(const unsigned char *p, int64_t i) {
    sf_fp16 h;
    memcpy(&h, p + 2 * i, 2);
    return sf_fp16_to_fp32(h);
}

void sf_ref_dequantize_f16(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n] f16 */
    for (int64_t i = 0; i < n; i++) dst[i] = load_f16(p, i);
}

void sf_ref_quantize_f16(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst; /* [n] f16 */
    for (int64_t i = 0; i < n; i++) {
        sf_fp16 h = sf_fp32_to_fp16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

float sf_ref_vec_dot_f16(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* [n] f16 each */
    double sum = 0.0;
    /* f16 x f16 products are exact in f32 (11-bit mantissas) */
    for (int64_t i = 0; i < n; i++) sum += (double)(load_f16(pw, i) * load_f16(pa, i));
    return (float)sum;
}

/* ---- BF16 (vec_dot with BF16) */

static inline float load_bf16(const unsigned char *p, int64_t i) {
    sf_bf16 h;
    memcpy(&h, p + 2 * i, 2);
    return sf_bf16_to_fp32(h);
}

void sf_ref_dequantize_bf16(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n] bf16 */
    for (int64_t i = 0; i < n; i++) dst[i] = load_bf16(p, i);
}

void sf_ref_quantize_bf16(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst; /* [n] bf16 */
    for (int64_t i = 0; i < n; i++) {
        sf_bf16 h = sf_fp32_to_bf16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

float sf_ref_vec_dot_bf16(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* [n] bf16 each */
    double sum = 0.0;
    /* bf16 x bf16 products are exact in f32 (8-bit mantissas) */
    for (int64_t i = 0; i < n; i++) sum += (double)(load_bf16(pw, i) * load_bf16(pa, i));
    return (float)sum;
}
