/* 2x4 legacy-quant kernels on 512-bit registers: both weight rows of a block
 * in one register (row 0 in the low 256 bits, row 1 in the high), the
 * activation block broadcast to both halves, one vpdpbusd for the two rows.
 * Each half holds exactly the 8 int32 partial dots of the AVX2 vec_dot
 * (simd_legacy_avx2.c) and goes through the same float operations, lane for
 * lane: the results equal vec_dot bit for bit, with half the instructions of
 * the 256-bit 2x4 kernels (gemm_legacy_impl.h). Signed quants enter vpdpbusd
 * as unsigned u = q + off; off * (the 4-value activation sums) is taken back
 * out, so every partial dot is the exact integer. */
#include "tensor/simd.h"
#include "tensor/simd_x86.h"

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VNNI__)
#error "simd_gemm_legacy_avx512.c needs -mavx512f -mavx512bw -mavx512vnni"
#endif

static inline __m512i pair(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

static inline __m256i q5_unsigned(const uint8_t *qs, const uint8_t *qh) {
    const __m256i high = _mm256_and_si256(sf_x86_bits_to_bytes(sf_x86_load_u32(qh)), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(sf_x86_nibbles32(qs), high);
}

/* unsigned quants of one block (32 bytes) per type */
static inline __m256i u_q4_0(const uint8_t *x) { return sf_x86_nibbles32(x + offsetof(sf_block_q4_0, qs)); }
static inline __m256i u_q4_1(const uint8_t *x) { return sf_x86_nibbles32(x + offsetof(sf_block_q4_1, qs)); }
static inline __m256i u_q5_0(const uint8_t *x) {
    return q5_unsigned(x + offsetof(sf_block_q5_0, qs), x + offsetof(sf_block_q5_0, qh));
}
static inline __m256i u_q5_1(const uint8_t *x) {
    return q5_unsigned(x + offsetof(sf_block_q5_1, qs), x + offsetof(sf_block_q5_1, qh));
}
static inline __m256i u_q8_0(const uint8_t *x) {
    return _mm256_xor_si256(sf_x86_loadu256(x + offsetof(sf_block_q8_0, qs)), _mm256_set1_epi8((char)0x80));
}

#define GEMM512(name, wtype, ufn, off, atype, has_m)                                                            \
    static void name(int64_t n, const void *w, size_t w_stride, const void *a, size_t a_stride, float out[8]) { \
        const uint8_t *x = w, *y = a;                                                                           \
        const size_t ys = sizeof(atype), qs_off = offsetof(atype, qs);                                          \
        __m512 acc[4];                                                                                          \
        float o0[4] = {0}, o1[4] = {0};                                                                         \
        for (int t = 0; t < 4; t++) acc[t] = _mm512_setzero_ps();                                               \
        for (int64_t i = 0; i < n / SF_QK; i++) {                                                               \
            const uint8_t *x0 = x + i * sizeof(wtype), *x1 = x0 + w_stride;                                    \
            const __m512i u = pair(ufn(x0), ufn(x1));                                                           \
            const __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(sf_x86_load_f16(x0)),                          \
                                                 _mm256_set1_ps(sf_x86_load_f16(x1)), 1);                       \
            float m0 = 0.0f, m1 = 0.0f;                                                                         \
            if (has_m) {                                                                                        \
                m0 = sf_x86_load_f16(x0 + 2);                                                                   \
                m1 = sf_x86_load_f16(x1 + 2);                                                                   \
            }                                                                                                   \
            _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {                                               \
                const uint8_t *yr = y + (size_t)t * a_stride + i * ys;                                          \
                const __m512i yv = _mm512_broadcast_i64x4(sf_x86_loadu256(yr + qs_off));                       \
                __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, yv);                               \
                if (off) dot = _mm512_sub_epi32(dot, _mm512_dpbusd_epi32(_mm512_setzero_si512(),               \
                                                                         _mm512_set1_epi8((char)(off)), yv));   \
                const float da = sf_x86_load_f16(yr);                                                           \
                if (has_m) {                                                                                    \
                    const float sa = sf_x86_load_f16(yr + offsetof(sf_block_q8_1, s));                         \
                    o0[t] += m0 * sa;                                                                           \
                    o1[t] += m1 * sa;                                                                           \
                }                                                                                               \
                /* d_w * d_a per half, as vec_dot's set1(d_w * d_a) */                                          \
                const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(da));                                         \
                acc[t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc[t]);                                   \
            }                                                                                                   \
        }                                                                                                       \
        for (int t = 0; t < 4; t++) {                                                                           \
            out[t] = sf_x86_hsum_ps(_mm512_castps512_ps256(acc[t])) + o0[t];                                   \
            out[4 + t] = sf_x86_hsum_ps(_mm512_extractf32x8_ps(acc[t], 1)) + o1[t];                            \
        }                                                                                                       \
    }

GEMM512(gemm_q4_0, sf_block_q4_0, u_q4_0, 8, sf_block_q8_0, 0)
GEMM512(gemm_q4_1, sf_block_q4_1, u_q4_1, 0, sf_block_q8_1, 1)
GEMM512(gemm_q5_0, sf_block_q5_0, u_q5_0, 16, sf_block_q8_0, 0)
GEMM512(gemm_q5_1, sf_block_q5_1, u_q5_1, 0, sf_block_q8_1, 1)
GEMM512(gemm_q8_0, sf_block_q8_0, u_q8_0, 128, sf_block_q8_0, 0)

void sf_avx512_gemm_2x4_install(sf_type_traits fast[SF_TYPE_COUNT]) {
    fast[SF_TYPE_Q4_0].vec_dot_2x4 = gemm_q4_0;
    fast[SF_TYPE_Q4_1].vec_dot_2x4 = gemm_q4_1;
    fast[SF_TYPE_Q5_0].vec_dot_2x4 = gemm_q5_0;
    fast[SF_TYPE_Q5_1].vec_dot_2x4 = gemm_q5_1;
    fast[SF_TYPE_Q8_0].vec_dot_2x4 = gemm_q8_0;
}
