/* 2 weight rows x 4 activation rows of the legacy 32-value blocks (internal),
 * included by simd_gemm_avx2.c (maddubs; AVX-512 CPUs use the 512-bit
 * version in simd_gemm_legacy_avx512.c instead). Every one of the 8 results is computed with
 * exactly the operations of the single-row vec_dot (simd_legacy_avx2.c): the
 * integer block dots are exact either way, and each (row, token) keeps its own
 * FMA chain and offset sum. What is shared is the work around them: each
 * weight block is decoded once for 4 tokens, each activation block loaded and
 * its scales converted once for 2 rows. The includer defines SF_GEMM_NAME(x)
 * and the integer dots SF_DOT_U8I8(u, s) and SF_DOT_I8I8(x, y). */
#include "tensor/simd_x86.h"

typedef struct {
    __m256i q;
    float d, m;
} sf_gemm_wblock;

static inline __m256i sf_gemm_q5_quants(const uint8_t *qs, const uint8_t *qh) {
    const __m256i high = _mm256_and_si256(sf_x86_bits_to_bytes(sf_x86_load_u32(qh)), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(sf_x86_nibbles32(qs), high);
}

static inline sf_gemm_wblock sf_gemm_dec_q4_0(const uint8_t *x) {
    sf_gemm_wblock b = {_mm256_sub_epi8(sf_x86_nibbles32(x + offsetof(sf_block_q4_0, qs)), _mm256_set1_epi8(8)),
                        sf_x86_load_f16(x + offsetof(sf_block_q4_0, d)), 0.0f};
    return b;
}
static inline sf_gemm_wblock sf_gemm_dec_q4_1(const uint8_t *x) {
    sf_gemm_wblock b = {sf_x86_nibbles32(x + offsetof(sf_block_q4_1, qs)),
                        sf_x86_load_f16(x + offsetof(sf_block_q4_1, d)),
                        sf_x86_load_f16(x + offsetof(sf_block_q4_1, m))};
    return b;
}
static inline sf_gemm_wblock sf_gemm_dec_q5_0(const uint8_t *x) {
    sf_gemm_wblock b = {
        _mm256_sub_epi8(sf_gemm_q5_quants(x + offsetof(sf_block_q5_0, qs), x + offsetof(sf_block_q5_0, qh)),
                        _mm256_set1_epi8(16)),
        sf_x86_load_f16(x + offsetof(sf_block_q5_0, d)), 0.0f};
    return b;
}
static inline sf_gemm_wblock sf_gemm_dec_q5_1(const uint8_t *x) {
    sf_gemm_wblock b = {sf_gemm_q5_quants(x + offsetof(sf_block_q5_1, qs), x + offsetof(sf_block_q5_1, qh)),
                        sf_x86_load_f16(x + offsetof(sf_block_q5_1, d)),
                        sf_x86_load_f16(x + offsetof(sf_block_q5_1, m))};
    return b;
}
static inline sf_gemm_wblock sf_gemm_dec_q8_0(const uint8_t *x) {
    sf_gemm_wblock b = {sf_x86_loadu256(x + offsetof(sf_block_q8_0, qs)),
                        sf_x86_load_f16(x + offsetof(sf_block_q8_0, d)), 0.0f};
    return b;
}

/* token t against both rows: Q8_0/Q8_1 blocks start with d (Q8_1's s next) */
#define SF_GEMM_TOKEN(t, dot, has_m)                                                                          \
    do {                                                                                                      \
        const uint8_t *yr = y + (t) * a_stride + i * ys;                                                      \
        const __m256i ya = sf_x86_loadu256(yr + qs_off);                                                      \
        const float da = sf_x86_load_f16(yr);                                                                 \
        if (has_m) {                                                                                          \
            const float sa = sf_x86_load_f16(yr + offsetof(sf_block_q8_1, s));                               \
            o0##t += b0.m * sa;                                                                               \
            o1##t += b1.m * sa;                                                                               \
        }                                                                                                     \
        a0##t = _mm256_fmadd_ps(_mm256_set1_ps(b0.d * da), _mm256_cvtepi32_ps(dot(b0.q, ya)), a0##t);         \
        a1##t = _mm256_fmadd_ps(_mm256_set1_ps(b1.d * da), _mm256_cvtepi32_ps(dot(b1.q, ya)), a1##t);         \
    } while (0)

#define SF_GEMM_2X4(name, wtype, dec, dot, atype, has_m)                                                       \
    void SF_GEMM_NAME(name)(int64_t n, const void *w, size_t w_stride, const void *a, size_t a_stride,         \
                            float out[8]) {                                                                    \
        const uint8_t *x = w, *y = a;                                                                          \
        const size_t ys = sizeof(atype), qs_off = offsetof(atype, qs);                                         \
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;                                     \
        __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;                                                     \
        float o00 = 0.0f, o01 = 0.0f, o02 = 0.0f, o03 = 0.0f, o10 = 0.0f, o11 = 0.0f, o12 = 0.0f, o13 = 0.0f;  \
        for (int64_t i = 0; i < n / SF_QK; i++) {                                                              \
            const sf_gemm_wblock b0 = dec(x + i * sizeof(wtype)), b1 = dec(x + w_stride + i * sizeof(wtype));  \
            SF_GEMM_TOKEN(0, dot, has_m);                                                                      \
            SF_GEMM_TOKEN(1, dot, has_m);                                                                      \
            SF_GEMM_TOKEN(2, dot, has_m);                                                                      \
            SF_GEMM_TOKEN(3, dot, has_m);                                                                      \
        }                                                                                                      \
        out[0] = sf_x86_hsum_ps(a00) + o00;                                                                    \
        out[1] = sf_x86_hsum_ps(a01) + o01;                                                                    \
        out[2] = sf_x86_hsum_ps(a02) + o02;                                                                    \
        out[3] = sf_x86_hsum_ps(a03) + o03;                                                                    \
        out[4] = sf_x86_hsum_ps(a10) + o10;                                                                    \
        out[5] = sf_x86_hsum_ps(a11) + o11;                                                                    \
        out[6] = sf_x86_hsum_ps(a12) + o12;                                                                    \
        out[7] = sf_x86_hsum_ps(a13) + o13;                                                                    \
    }

SF_GEMM_2X4(q4_0, sf_block_q4_0, sf_gemm_dec_q4_0, SF_DOT_I8I8, sf_block_q8_0, 0)
SF_GEMM_2X4(q4_1, sf_block_q4_1, sf_gemm_dec_q4_1, SF_DOT_U8I8, sf_block_q8_1, 1)
SF_GEMM_2X4(q5_0, sf_block_q5_0, sf_gemm_dec_q5_0, SF_DOT_I8I8, sf_block_q8_0, 0)
SF_GEMM_2X4(q5_1, sf_block_q5_1, sf_gemm_dec_q5_1, SF_DOT_U8I8, sf_block_q8_1, 1)
SF_GEMM_2X4(q8_0, sf_block_q8_0, sf_gemm_dec_q8_0, SF_DOT_I8I8, sf_block_q8_0, 0)

void SF_GEMM_NAME(install)(sf_type_traits fast[SF_TYPE_COUNT]) {
    fast[SF_TYPE_Q4_0].vec_dot_2x4 = SF_GEMM_NAME(q4_0);
    fast[SF_TYPE_Q4_1].vec_dot_2x4 = SF_GEMM_NAME(q4_1);
    fast[SF_TYPE_Q5_0].vec_dot_2x4 = SF_GEMM_NAME(q5_0);
    fast[SF_TYPE_Q5_1].vec_dot_2x4 = SF_GEMM_NAME(q5_1);
    fast[SF_TYPE_Q8_0].vec_dot_2x4 = SF_GEMM_NAME(q8_0);
}
