/* AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c): the
 * installer, the activation quantizers (Q8_0, Q8_1, Q8_K) and the float dot
 * products. Integer dot products live in simd_legacy_avx2.c and
 * simd_kquant_avx2.c, dequantizers in simd_dequant_avx2.c. */
#include <float.h>
#include <math.h>
#include <stdbool.h>

#include "tensor/quant_ref.h"
#include "tensor/simd.h"
#include "tensor/simd_x86.h"

void sf_simd_avx2_install(sf_type_traits fast[SF_TYPE_COUNT]) {
    fast[SF_TYPE_F32].vec_dot = sf_avx2_vec_dot_f32;
    fast[SF_TYPE_F16].vec_dot = sf_avx2_vec_dot_f16;
    fast[SF_TYPE_BF16].vec_dot = sf_avx2_vec_dot_bf16;

    fast[SF_TYPE_Q8_0].quantize = sf_avx2_quantize_q8_0;
    fast[SF_TYPE_Q8_1].quantize = sf_avx2_quantize_q8_1;
    fast[SF_TYPE_Q8_K].quantize = sf_avx2_quantize_q8_K;

    fast[SF_TYPE_Q4_0].vec_dot = sf_avx2_vec_dot_q4_0;
    fast[SF_TYPE_Q4_1].vec_dot = sf_avx2_vec_dot_q4_1;
    fast[SF_TYPE_Q5_0].vec_dot = sf_avx2_vec_dot_q5_0;
    fast[SF_TYPE_Q5_1].vec_dot = sf_avx2_vec_dot_q5_1;
    fast[SF_TYPE_Q8_0].vec_dot = sf_avx2_vec_dot_q8_0;
    fast[SF_TYPE_IQ4_NL].vec_dot = sf_avx2_vec_dot_iq4_nl;
    fast[SF_TYPE_IQ4_NL].vec_dot_2x4 = sf_avx2_vec_dot_2x4_iq4_nl; /* the gemm_2x4 installers leave it */

    fast[SF_TYPE_Q2_K].vec_dot = sf_avx2_vec_dot_q2_K;
    fast[SF_TYPE_Q3_K].vec_dot = sf_avx2_vec_dot_q3_K;
    fast[SF_TYPE_Q4_K].vec_dot = sf_avx2_vec_dot_q4_K;
    fast[SF_TYPE_Q5_K].vec_dot = sf_avx2_vec_dot_q5_K;
    fast[SF_TYPE_Q6_K].vec_dot = sf_avx2_vec_dot_q6_K;
    fast[SF_TYPE_Q4_K].dot_repacked_gemv = sf_avx2_dot_q4_K_repacked_gemv;

    fast[SF_TYPE_Q4_1].dequantize = sf_avx2_dequantize_q4_1;
    fast[SF_TYPE_Q5_0].dequantize = sf_avx2_dequantize_q5_0;
    fast[SF_TYPE_Q8_0].dequantize = sf_avx2_dequantize_q8_0;
    fast[SF_TYPE_Q4_K].dequantize = sf_avx2_dequantize_q4_K;
    fast[SF_TYPE_Q6_K].dequantize = sf_avx2_dequantize_q6_K;
}

/* ------------------------------------------------ activation quantizers */

/* Four vectors of 8 int32 (each in int8 range) -> 32 int8 in order. */
static inline __m256i pack_i32x32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    /* the packs work per 128-bit lane, leaving the 4-byte groups in the order
     * a0 b0 c0 d0 a1 b1 c1 d1; the permute restores a0 a1 b0 b1 ... */
    const __m256i v = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* f32 -> f16 with F16C, round to nearest even: the same bits as
 * sf_fp32_to_fp16 for every non-NaN input (subnormals included). */
static inline sf_fp16 to_f16(float f) { return (sf_fp16)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* Q8_0 / Q8_1 core, as ggml's x86 runtime quantizer (quantize_row_q8_0/1,
 * which llama.cpp uses instead of the *_ref functions): d = amax/127,
 * q = round-half-even(x * (127/amax)). This differs from the scalar
 * reference (1/d, roundf) by at most one step on ties, and is what keeps
 * our activations bit-identical to llama.cpp's. Writes 32 quants to qs,
 * *d_out = d, *sum = sum(q) (if not NULL). Returns false, writing nothing,
 * for a block with inf or NaN inputs or with amax so small that 127/amax
 * overflows: the reference's saturating conversions define those, and the
 * caller hands them to it. */
static inline bool quantize_block_q8(const float *x, uint8_t *qs, float *d_out, int *sum) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(INFINITY);
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        const __m256 ax = _mm256_and_ps(v[k], abs_mask);
        amax = _mm256_max_ps(amax, ax);
        odd = _mm256_or_ps(odd, _mm256_cmp_ps(ax, inf, _CMP_NLT_UQ)); /* inf or nan */
    }
    const float max = hmax_ps(amax);
    const float d = max / 127.f;
    const float id = max != 0.0f ? 127.f / max : 0.0f;
    if (_mm256_movemask_ps(odd) || id > FLT_MAX) return false;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++)
        q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm256_storeu_si256((__m256i *)qs, pack_i32x32_to_i8(q[0], q[1], q[2], q[3]));
    if (sum) *sum = sf_x86_hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    *d_out = d;
    return true;
}

void sf_avx2_quantize_q8_0(const float *src, void *dst, int64_t n) {
    uint8_t *y = dst; /* [n/32] Q8_0 blocks */
    for (int64_t i = 0; i < n / SF_QK; i++, y += sizeof(sf_block_q8_0)) {
        float d;
        if (!quantize_block_q8(src + i * SF_QK, y + offsetof(sf_block_q8_0, qs), &d, NULL)) {
            sf_ref_quantize_q8_0(src + i * SF_QK, y, SF_QK);
            continue;
        }
        const sf_fp16 dh = to_f16(d);
        memcpy(y + offsetof(sf_block_q8_0, d), &dh, 2);
    }
}

void sf_avx2_quantize_q8_1(const float *src, void *dst, int64_t n) {
    uint8_t *y = dst; /* [n/32] Q8_1 blocks */
    for (int64_t i = 0; i < n / SF_QK; i++, y += sizeof(sf_block_q8_1)) {
        float d;
        int sum;
        if (!quantize_block_q8(src + i * SF_QK, y + offsetof(sf_block_q8_1, qs), &d, &sum)) {
            sf_ref_quantize_q8_1(src + i * SF_QK, y, SF_QK);
            continue;
        }
        const sf_fp16 dh = to_f16(d), sh = to_f16(sum * d);
        memcpy(y + offsetof(sf_block_q8_1, d), &dh, 2);
        memcpy(y + offsetof(sf_block_q8_1, s), &sh, 2);
    }
}

/* Q8_K, as the reference (ggml's quantize_row_q8_K_ref): max is the first
 * value of largest magnitude, iscale = -127/max, q = min(127, nearest_int(iscale*x))
 * (round half to even, which is what vcvtps2dq does), d = 1/iscale, and
 * bsums[g] = sum of q[16g .. 16g+15]. */
void sf_avx2_quantize_q8_K(const float *src, void *dst, int64_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    uint8_t *y = dst; /* [n/256] Q8_K blocks */
    for (int64_t i = 0; i < n / SF_QK_K; i++, y += sizeof(sf_block_q8_K)) {
        const float *x = src + i * SF_QK_K; /* [256] */
        __m256 vmax = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
        for (int k = 0; k < SF_QK_K; k += 8) {
            const __m256 ax = _mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask);
            vmax = _mm256_max_ps(vmax, ax);
            odd = _mm256_or_ps(odd, _mm256_cmp_ps(ax, _mm256_set1_ps(INFINITY), _CMP_NLT_UQ)); /* inf or nan */
        }
        if (_mm256_movemask_ps(odd)) { /* the reference's saturating conversions define these */
            sf_ref_quantize_q8_K(x, y, SF_QK_K);
            continue;
        }
        const float amax = hmax_ps(vmax);
        if (amax == 0.0f) { /* d = 0, quants and bsums 0 */
            memset(y, 0, sizeof(sf_block_q8_K));
            continue;
        }
        /* first index whose |x| equals amax */
        const __m256 vamax = _mm256_set1_ps(amax);
        int first = 0;
        for (int k = 0; k < SF_QK_K; k += 8) {
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask), vamax, _CMP_EQ_OQ));
            if (hit) {
                first = k + __builtin_ctz((unsigned)hit);
                break;
            }
        }
        const float iscale = -127.f / x[first];
        if (!(fabsf(iscale) <= FLT_MAX)) { /* max so small that the scale overflows */
            sf_ref_quantize_q8_K(x, y, SF_QK_K);
            continue;
        }
        const __m256 vscale = _mm256_set1_ps(iscale);
        uint8_t *qs = y + offsetof(sf_block_q8_K, qs);
        int16_t bsums[SF_QK_K / 16];
        const __m256i q_max = _mm256_set1_epi32(127);
        for (int k = 0; k < SF_QK_K; k += 32) { /* 32 values, two bsums */
            __m256i q[4];
            for (int j = 0; j < 4; j++)
                q[j] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vscale, _mm256_loadu_ps(x + k + 8 * j))), q_max);
            _mm256_storeu_si256((__m256i *)(qs + k), pack_i32x32_to_i8(q[0], q[1], q[2], q[3]));
            bsums[k / 16] = (int16_t)sf_x86_hsum_epi32(_mm256_add_epi32(q[0], q[1]));
            bsums[k / 16 + 1] = (int16_t)sf_x86_hsum_epi32(_mm256_add_epi32(q[2], q[3]));
        }
        const float d = 1 / iscale;
        memcpy(y + offsetof(sf_block_q8_K, d), &d, 4);
        memcpy(y + offsetof(sf_block_q8_K, bsums), bsums, sizeof bsums);
    }
}

/* ------------------------------------------------ float dot products */

static inline __m256 load8_f32(const uint8_t *p) { return _mm256_loadu_ps((const float *)p); }
static inline __m256 load8_f16(const uint8_t *p) { return _mm256_cvtph_ps(sf_x86_loadu128(p)); }
static inline __m256 load8_bf16(const uint8_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(sf_x86_loadu128(p)), 16));
}

static inline float load1_bf16(const uint8_t *p) {
    sf_bf16 h;
    memcpy(&h, p, 2);
    return sf_bf16_to_fp32(h);
}

/* The loop shared by the three types (inlined: the calls pass constant
 * loaders): rows of n elements of elem bytes at any alignment; four
 * independent accumulators hide the FMA latency, the tail (n % 32) is scalar. */
static inline float dot_float(int64_t n, const uint8_t *x, const uint8_t *y, size_t elem,
                              __m256 (*load8)(const uint8_t *), float (*load1)(const uint8_t *)) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(load8(x + (i + 8 * k) * elem), load8(y + (i + 8 * k) * elem), acc[k]);
    float sum = sf_x86_hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += load1(x + i * elem) * load1(y + i * elem);
    return sum;
}

float sf_avx2_vec_dot_f32(int64_t n, const void *w, const void *a) {
    return dot_float(n, w, a, 4, load8_f32, sf_x86_load_f32); /* [n] f32 each */
}

float sf_avx2_vec_dot_f16(int64_t n, const void *w, const void *a) {
    return dot_float(n, w, a, 2, load8_f16, sf_x86_load_f16); /* [n] f16 each */
}

float sf_avx2_vec_dot_bf16(int64_t n, const void *w, const void *a) {
    return dot_float(n, w, a, 2, load8_bf16, load1_bf16); /* [n] bf16 each */
}
