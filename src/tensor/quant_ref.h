/* Portable scalar reference kernels, one set per tensor type (internal).
 *
 * These are the functions behind sf_type_ref(); most code should reach them
 * through the trait table. Contracts are those of sf_dequantize_fn,
 * sf_quantize_fn and sf_vec_dot_fn in types.h: n is a multiple of the block
 * size, buffers may have any alignment (blocks are read with memcpy).
 *
 * vec_dot pairs (as ggml): F32·F32, F16·F16, BF16·BF16, Q4_0/Q5_0/Q8_0/IQ4_NL·Q8_0,
 * Q4_1/Q5_1·Q8_1, Q2_K..Q6_K·Q8_K. The activation quantizers (Q8_0, Q8_1,
 * Q8_K) and the legacy weight quantizers reproduce ggml's *_ref results bit
 * for bit; the K-quant weight quantizers are sparsefuse's own (deterministic,
 * no importance weighting) and are meant for tests and synthetic models. */
#ifndef SF_TENSOR_QUANT_REF_H
#define SF_TENSOR_QUANT_REF_H

#include <stdint.h>
#include <string.h>

/* quant_float.c */
void sf_ref_dequantize_f32(const void *src, float *dst, int64_t n);
void sf_ref_quantize_f32(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_f32(int64_t n, const void *w, const void *a);
void sf_ref_dequantize_f16(const void *src, float *dst, int64_t n);
void sf_ref_quantize_f16(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_f16(int64_t n, const void *w, const void *a);
void sf_ref_dequantize_bf16(const void *src, float *dst, int64_t n);
void sf_ref_quantize_bf16(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_bf16(int64_t n, const void *w, const void *a);

/* quant_legacy.c */
void sf_ref_dequantize_q4_0(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q4_0(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_q4_0(int64_t n, const void *w, const void *a); /* a: Q8_0 */
void sf_ref_dequantize_q4_1(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q4_1(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_q4_1(int64_t n, const void *w, const void *a); /* a: Q8_1 */
void sf_ref_dequantize_q5_0(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q5_0(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_q5_0(int64_t n, const void *w, const void *a); /* a: Q8_0 */
void sf_ref_dequantize_q5_1(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q5_1(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_q5_1(int64_t n, const void *w, const void *a); /* a: Q8_1 */
void sf_ref_dequantize_q8_0(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q8_0(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_q8_0(int64_t n, const void *w, const void *a); /* a: Q8_0 */
void sf_ref_dequantize_q8_1(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q8_1(const float *src, void *dst, int64_t n);

/* quant_iq4nl.c: IQ4_NL (value = d * sf_iq4nl_values[index]; a: Q8_0) */
extern const int8_t sf_iq4nl_values[16];
void sf_ref_dequantize_iq4_nl(const void *src, float *dst, int64_t n);
void sf_ref_quantize_iq4_nl(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_iq4_nl(int64_t n, const void *w, const void *a);

/* quant_kquants.c (all vec_dots take Q8_K activations) */
void sf_ref_dequantize_q2_K(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q2_K(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_q2_K(int64_t n, const void *w, const void *a);
void sf_ref_dequantize_q3_K(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q3_K(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_q3_K(int64_t n, const void *w, const void *a);
void sf_ref_dequantize_q4_K(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q4_K(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_q4_K(int64_t n, const void *w, const void *a);
void sf_ref_dequantize_q5_K(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q5_K(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_q5_K(int64_t n, const void *w, const void *a);
void sf_ref_dequantize_q6_K(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q6_K(const float *src, void *dst, int64_t n);
float sf_ref_vec_dot_q6_K(int64_t n, const void *w, const void *a);
void sf_ref_dequantize_q8_K(const void *src, float *dst, int64_t n);
void sf_ref_quantize_q8_K(const float *src, void *dst, int64_t n);

/* ggml's nearest_int: round half to even via the 1.5*2^23 trick (|x| < 2^22).
 * Defined for every input (NaN gives some int), so never undefined behaviour. */
static inline int sf_nearest_int(float x) {
    float v = x + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* C's float -> integer truncation, saturated to [lo, hi] (NaN -> 0), so that
 * odd inputs (NaN, inf) cannot trigger an out-of-range conversion. */
static inline int sf_trunc_sat(float x, int lo, int hi) {
    if (!(x == x)) return 0;
    if (x <= (float)lo) return lo;
    if (x >= (float)hi) return hi;
    return (int)x;
}

/* The integer parts of one K-quant block's dot product with a Q8_K block:
 * s1 = sum over sub-blocks of scale * sum(q * q8), s2 = sum of min * bsum
 * (Q4_K/Q5_K only), with the block's d, dmin and the Q8_K d. For kernels that
 * combine them in a specific float order (tensor/ggml_batch.c).
 * Only the 32-value sub-block range [j0, j1) of the block is summed (0, 8:
 * all). type: SF_TYPE_Q3_K/Q4_K/Q5_K/Q6_K; returns -1 for any other. */
typedef struct {
    int32_t s1, s2;
    float d0, dmin0, d1;
} sf_kquant_ints;
int sf_kquant_block_ints_range(int type, const void *wblock, const void *q8k, int j0, int j1,
                               sf_kquant_ints *out);

#endif
