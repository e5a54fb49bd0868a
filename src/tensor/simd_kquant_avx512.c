/* AVX-512 dot products of the K-quants with Q8_K activations: the AVX2
 * scheme (simd_kquant_avx2.c) on 64 values per step, with the sub-block
 * scales applied by vpdpwssd (int16 pairs times scales, summed into int32).
 * As there, a super-block's integer sums are exact and meet the float
 * scales once, in the reference's order. */
#include "tensor/simd_x86.h"

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VNNI__)
#error "simd_kquant_avx512.c needs -mavx512f -mavx512bw -mavx512vnni"
#endif

/* 0..31: the int16 lane numbers of a 512-bit vector. */
static const int16_t k_lanes[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

/* The scales for a 64-byte maddubs product (32 int16 lanes, lane l covering
 * bytes 2l and 2l+1) whose values fall in consecutive groups of 2^shift
 * lanes (shift 3: 16-value groups, 4: 32-value sub-blocks): lane l gets
 * sc[first + (l >> shift)], sc being the int16 scales in sc16. */
static inline __m512i spread_scales(__m512i sc16, int first, int shift) {
    const __m512i lane = _mm512_loadu_si512(k_lanes);
    const __m512i idx = _mm512_add_epi16(_mm512_srl_epi16(lane, _mm_cvtsi32_si128(shift)), _mm512_set1_epi16((short)first));
    return _mm512_permutexvar_epi16(idx, sc16);
}

/* int16 lanes 0..15 = a, 16..31 = b (per-half shift counts). */
static inline __m512i halves_epi16(int a, int b) {
    return _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16((short)a), _mm512_set1_epi16((short)b));
}

/* 32 bytes, twice. */
static inline __m512i twice(const uint8_t *p) { return _mm512_broadcast_i64x4(sf_x86_loadu256(p)); }

static inline __m512i loadu512(const uint8_t *p) { return _mm512_loadu_si512(p); }

/* sumi += the 64 products q * y scaled by sc (int16 per product pair). */
static inline __m512i dot_scaled(__m512i sumi, __m512i q, const uint8_t *y, __m512i sc) {
    return _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q, loadu512(y)), sc);
}

/* ------------------------------------------------ Q4_K, Q5_K */

static_assert(offsetof(sf_block_q5_K, d) == offsetof(sf_block_q4_K, d) &&
                  offsetof(sf_block_q5_K, dmin) == offsetof(sf_block_q4_K, dmin) &&
                  offsetof(sf_block_q5_K, scales) == offsetof(sf_block_q4_K, scales),
              "Q4_K and Q5_K share the d, dmin, scales offsets");

static inline float dot_q45_K(int64_t n, const uint8_t *x, const uint8_t *y, size_t block_bytes, size_t qs_off,
                              size_t qh_off, int has_qh) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i bit01 = _mm512_mask_blend_epi8(0xFFFFFFFF00000000ull, _mm512_set1_epi8(1), _mm512_set1_epi8(2));
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SF_QK_K; i++, x += block_bytes, y += sizeof(sf_block_q8_K)) {
        const float dy = sf_x86_load_f32(y + offsetof(sf_block_q8_K, d));
        const float d = dy * sf_x86_load_f16(x + offsetof(sf_block_q4_K, d));
        const float dmin = dy * sf_x86_load_f16(x + offsetof(sf_block_q4_K, dmin));
        uint8_t sc[8], m[8];
        sf_x86_k4_scales(x + offsetof(sf_block_q4_K, scales), sc, m);
        const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)m));
        const int summs = sf_x86_hsum_epi32_128(_mm_madd_epi16(sf_x86_bsums_32(y + offsetof(sf_block_q8_K, bsums)), mins));
        const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));

        const uint8_t *qs = x + qs_off, *q8 = y + offsetof(sf_block_q8_K, qs);
        const __m512i hbits = has_qh ? twice(x + qh_off) : _mm512_setzero_si512();
        __m512i sumi = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) { /* sub-blocks 2c (low nibbles) and 2c+1 (high) */
            const __m256i raw = sf_x86_loadu256(qs + 32 * c);
            __m512i q = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), low4);
            if (has_qh) { /* + 16 where bit 2c (first half) / 2c+1 (second half) of qh is set */
                const __mmask64 k = _mm512_test_epi8_mask(_mm512_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c)), bit01);
                q = _mm512_mask_add_epi8(q, k, q, _mm512_set1_epi8(16));
            }
            sumi = dot_scaled(sumi, q, q8 + 64 * c, spread_scales(sc16, 2 * c, 4));
        }
        const int isum = _mm512_reduce_add_epi32(sumi);
        sum += d * isum - dmin * summs;
    }
    return sum;
}

float sf_avx512_vec_dot_q4_K(int64_t n, const void *w, const void *a) {
    /* [n/256] Q4_K blocks, [n/256] Q8_K blocks */
    return dot_q45_K(n, w, a, sizeof(sf_block_q4_K), offsetof(sf_block_q4_K, qs), 0, 0);
}

float sf_avx512_vec_dot_q5_K(int64_t n, const void *w, const void *a) {
    /* [n/256] Q5_K blocks, [n/256] Q8_K blocks */
    return dot_q45_K(n, w, a, sizeof(sf_block_q5_K), offsetof(sf_block_q5_K, qs), offsetof(sf_block_q5_K, qh), 1);
}

/* ------------------------------------------------ Q6_K */

float sf_avx512_vec_dot_q6_K(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a; /* [n/256] Q6_K blocks, [n/256] Q8_K blocks */
    const __m512i low4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl01 = halves_epi16(4, 2), shr23 = halves_epi16(0, 2); /* qh bits 2r -> bits 4,5 */
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SF_QK_K; i++, x += sizeof(sf_block_q6_K), y += sizeof(sf_block_q8_K)) {
        const float d = sf_x86_load_f32(y + offsetof(sf_block_q8_K, d)) * sf_x86_load_f16(x + offsetof(sf_block_q6_K, d));
        const __m256i sc16_256 = _mm256_cvtepi8_epi16(sf_x86_loadu128(x + offsetof(sf_block_q6_K, scales)));
        const int offset = sf_x86_hsum_epi32(_mm256_madd_epi16(sf_x86_loadu256(y + offsetof(sf_block_q8_K, bsums)), sc16_256));
        const __m512i sc16 = _mm512_castsi256_si512(sc16_256);
        const uint8_t *q8 = y + offsetof(sf_block_q8_K, qs);
        __m512i sumi = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const __m512i ql = loadu512(x + offsetof(sf_block_q6_K, ql) + 64 * h); /* low 4 bits of r = 0|1, and r = 2|3 above */
            const __m512i qh = twice(x + offsetof(sf_block_q6_K, qh) + 32 * h);
            const __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_and_si512(_mm512_sllv_epi16(qh, shl01), m30));
            const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                                _mm512_and_si512(_mm512_srlv_epi16(qh, shr23), m30));
            sumi = dot_scaled(sumi, q01, q8 + 128 * h, spread_scales(sc16, 8 * h, 3));
            sumi = dot_scaled(sumi, q23, q8 + 128 * h + 64, spread_scales(sc16, 8 * h + 4, 3));
        }
        const int isum = _mm512_reduce_add_epi32(sumi) - 32 * offset; /* quants are stored + 32 */
        sum += d * isum;
    }
    return sum;
}

/* ------------------------------------------------ Q3_K, Q2_K */

float sf_avx512_vec_dot_q3_K(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a; /* [n/256] Q3_K blocks, [n/256] Q8_K blocks */
    const __m512i three = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1), four = _mm512_set1_epi8(4);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SF_QK_K; i++, x += sizeof(sf_block_q3_K), y += sizeof(sf_block_q8_K)) {
        const float d = sf_x86_load_f32(y + offsetof(sf_block_q8_K, d)) * sf_x86_load_f16(x + offsetof(sf_block_q3_K, d));
        const __m256i sc16_256 = _mm256_cvtepi8_epi16(sf_x86_q3_K_scales(x + offsetof(sf_block_q3_K, scales)));
        const int offset = sf_x86_hsum_epi32(_mm256_madd_epi16(sf_x86_loadu256(y + offsetof(sf_block_q8_K, bsums)), sc16_256));
        const __m512i sc16 = _mm512_castsi256_si512(sc16_256);
        const __m512i hmask = twice(x + offsetof(sf_block_q3_K, hmask));
        const uint8_t *q8 = y + offsetof(sf_block_q8_K, qs);
        __m512i sumi = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const __m512i qs = twice(x + offsetof(sf_block_q3_K, qs) + 32 * h);
            for (int j = 0; j < 4; j += 2) { /* shifts j and j+1 in the two halves */
                __m512i q = _mm512_and_si512(_mm512_srlv_epi16(qs, halves_epi16(2 * j, 2 * j + 2)), three);
                const __mmask64 high = _mm512_test_epi8_mask(_mm512_srlv_epi16(hmask, halves_epi16(4 * h + j, 4 * h + j + 1)), one);
                q = _mm512_mask_add_epi8(q, high, q, four);
                sumi = dot_scaled(sumi, q, q8 + 128 * h + 32 * j, spread_scales(sc16, 8 * h + 2 * j, 3));
            }
        }
        const int isum = _mm512_reduce_add_epi32(sumi) - 4 * offset; /* quants are stored + 4 */
        sum += d * isum;
    }
    return sum;
}

float sf_avx512_vec_dot_q2_K(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a; /* [n/256] Q2_K blocks, [n/256] Q8_K blocks */
    const __m512i three = _mm512_set1_epi8(3);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SF_QK_K; i++, x += sizeof(sf_block_q2_K), y += sizeof(sf_block_q8_K)) {
        const float dy = sf_x86_load_f32(y + offsetof(sf_block_q8_K, d));
        const float d = dy * sf_x86_load_f16(x + offsetof(sf_block_q2_K, d));
        const float dmin = dy * sf_x86_load_f16(x + offsetof(sf_block_q2_K, dmin));
        const __m128i scales = sf_x86_loadu128(x + offsetof(sf_block_q2_K, scales));
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(scales, 4), _mm_set1_epi8(0x0F)));
        const int summs = sf_x86_hsum_epi32(_mm256_madd_epi16(sf_x86_loadu256(y + offsetof(sf_block_q8_K, bsums)), m16));
        const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(scales, _mm_set1_epi8(0x0F))));
        const uint8_t *q8 = y + offsetof(sf_block_q8_K, qs);
        __m512i sumi = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const __m512i qs = twice(x + offsetof(sf_block_q2_K, qs) + 32 * h);
            for (int j = 0; j < 4; j += 2) {
                const __m512i q = _mm512_and_si512(_mm512_srlv_epi16(qs, halves_epi16(2 * j, 2 * j + 2)), three);
                sumi = dot_scaled(sumi, q, q8 + 128 * h + 32 * j, spread_scales(sc16, 8 * h + 2 * j, 3));
            }
        }
        const int isum = _mm512_reduce_add_epi32(sumi);
        sum += d * isum - dmin * summs;
    }
    return sum;
}
