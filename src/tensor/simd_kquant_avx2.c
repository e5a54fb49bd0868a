/* AVX2 dot products of the K-quants (256-value super-blocks) with Q8_K
 * activations. Layouts and element order: doc section 3.3.
 *
 * Per super-block, with d_a the Q8_K scale:
 *   d_a * (d * sum_s sc_s * sum_{i in s} q_i * y_i  -  dmin * sum_s m_s * sum_{i in s} y_i)
 * The weight quants enter maddubs unsigned; a constant offset (Q3_K: -4,
 * Q6_K: -32) is taken out through the activation sums (bsums), like a min.
 * A super-block's integer sums are exact (int32 lanes, then a horizontal
 * sum) and meet the float scales once, in the reference's order, so the
 * result equals the reference's bit for bit. (Converting the lanes to f32
 * separately would not be exact: with the offsets taken out through the
 * bsums, the lanes are much larger than their sum.) */
#include <math.h>

#include "tensor/simd_x86.h"

/* 32 unsigned quants times 32 activations, pair-summed to 16 int16 (the
 * quants are < 64, so no saturation). */
static inline __m256i dot16(__m256i q, const uint8_t *y) { return _mm256_maddubs_epi16(q, sf_x86_loadu256(y)); }

/* Bits `bit` of 32 bytes, as 0 or `value` per byte. */
static inline __m256i bit_as(__m256i bytes, int bit, char value) {
    const __m256i m = _mm256_set1_epi8((char)(1 << bit));
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, m), m), _mm256_set1_epi8(value));
}

/* 2-bit field `shift/2` of 32 bytes (values 0..3). */
static inline __m256i crumbs(__m256i bytes, int shift) {
    return _mm256_and_si256(_mm256_srl_epi16(bytes, _mm_cvtsi32_si128(shift)), _mm256_set1_epi8(3));
}

/* ------------------------------------------------ Q4_K, Q5_K (8 x 32 values) */

static_assert(offsetof(sf_block_q5_K, d) == offsetof(sf_block_q4_K, d) &&
                  offsetof(sf_block_q5_K, dmin) == offsetof(sf_block_q4_K, dmin) &&
                  offsetof(sf_block_q5_K, scales) == offsetof(sf_block_q4_K, scales),
              "Q4_K and Q5_K share the d, dmin, scales offsets");

/* The integer parts of one Q4_K / Q5_K super-block's dot with a Q8_K block:
 * *isum = sum_s sc_s * sum q*y, *summs = sum_s m_s * bsum_s (has_qh = 0 for
 * Q4_K). Element 64c + 32t + l is nibble t of qs[32c + l], plus 16 * bit
 * (2c + t) of qh[l] for Q5_K. */
static inline void ints_q45_K(const uint8_t *x, const uint8_t *y, size_t qs_off, size_t qh_off, int has_qh,
                              int *isum_out, int *summs_out) {
    uint8_t sc[8], m[8];
    sf_x86_k4_scales(x + offsetof(sf_block_q4_K, scales), sc, m);
    const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)m));
    const __m128i pm = _mm_madd_epi16(sf_x86_bsums_32(y + offsetof(sf_block_q8_K, bsums)), mins);
    *summs_out = sf_x86_hsum_epi32_128(pm);

    const uint8_t *qs = x + qs_off, *q8 = y + offsetof(sf_block_q8_K, qs);
    const __m256i hbits = has_qh ? sf_x86_loadu256(x + qh_off) : _mm256_setzero_si256();
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        const __m256i raw = sf_x86_loadu256(qs + 32 * c);
        __m256i lo = sf_x86_lo_nibbles(raw), hi = sf_x86_hi_nibbles(raw);
        if (has_qh) {
            lo = _mm256_or_si256(lo, bit_as(hbits, 2 * c, 16));
            hi = _mm256_or_si256(hi, bit_as(hbits, 2 * c + 1, 16));
        }
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(dot16(lo, q8 + 64 * c), _mm256_set1_epi16(sc[2 * c])));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(dot16(hi, q8 + 64 * c + 32), _mm256_set1_epi16(sc[2 * c + 1])));
    }
    *isum_out = sf_x86_hsum_epi32(sumi);
}

/* ggml's vec_dot order: per super-block sum += d * isum - dmin * summs. */
static inline float dot_q45_K(int64_t n, const uint8_t *x, const uint8_t *y, size_t block_bytes, size_t qs_off,
                              size_t qh_off, int has_qh) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SF_QK_K; i++, x += block_bytes, y += sizeof(sf_block_q8_K)) {
        const float dy = sf_x86_load_f32(y + offsetof(sf_block_q8_K, d));
        const float d = dy * sf_x86_load_f16(x + offsetof(sf_block_q4_K, d));
        const float dmin = dy * sf_x86_load_f16(x + offsetof(sf_block_q4_K, dmin));
        int isum, summs;
        ints_q45_K(x, y, qs_off, qh_off, has_qh, &isum, &summs);
        sum += d * isum - dmin * summs;
    }
    return sum;
}

/* The order of ggml's gemv over repacked Q4_K rows (ggml_batch.c):
 * acc += isum * (d * dy), acc_min += summs * (dmin * dy), acc - acc_min. */
float sf_avx2_dot_q4_K_repacked_gemv(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a; /* [n/256] Q4_K blocks, [n/256] Q8_K blocks */
    float acc = 0.0f, acc_min = 0.0f;
    for (int64_t i = 0; i < n / SF_QK_K; i++, x += sizeof(sf_block_q4_K), y += sizeof(sf_block_q8_K)) {
        const float dy = sf_x86_load_f32(y + offsetof(sf_block_q8_K, d));
        int isum, summs;
        ints_q45_K(x, y, offsetof(sf_block_q4_K, qs), 0, 0, &isum, &summs);
        acc = fmaf((float)isum, sf_x86_load_f16(x + offsetof(sf_block_q4_K, d)) * dy, acc);
        acc_min = fmaf((float)summs, sf_x86_load_f16(x + offsetof(sf_block_q4_K, dmin)) * dy, acc_min);
    }
    return acc - acc_min;
}

float sf_avx2_vec_dot_q4_K(int64_t n, const void *w, const void *a) {
    /* [n/256] Q4_K blocks, [n/256] Q8_K blocks */
    return dot_q45_K(n, w, a, sizeof(sf_block_q4_K), offsetof(sf_block_q4_K, qs), 0, 0);
}

float sf_avx2_vec_dot_q5_K(int64_t n, const void *w, const void *a) {
    /* [n/256] Q5_K blocks, [n/256] Q8_K blocks (d, dmin, scales sit as in Q4_K) */
    return dot_q45_K(n, w, a, sizeof(sf_block_q5_K), offsetof(sf_block_q5_K, qs), offsetof(sf_block_q5_K, qh), 1);
}

/* ------------------------------------------------ Q6_K (16 x 16 values) */

/* Element 128h + 32r + l: low 4 bits from ql[64h + 32(r&1) + l] (low nibble
 * for r < 2, high for r >= 2), high 2 bits from qh[32h + l] >> 2r; q - 32. */
float sf_avx2_vec_dot_q6_K(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a; /* [n/256] Q6_K blocks, [n/256] Q8_K blocks */
    __m256 acc = _mm256_setzero_ps(); /* ggml's order: 8 lanes of d * partial sums, one hsum */
    for (int64_t i = 0; i < n / SF_QK_K; i++, x += sizeof(sf_block_q6_K), y += sizeof(sf_block_q8_K)) {
        const float d = sf_x86_load_f32(y + offsetof(sf_block_q8_K, d)) * sf_x86_load_f16(x + offsetof(sf_block_q6_K, d));
        const __m256i sc16 = _mm256_cvtepi8_epi16(sf_x86_loadu128(x + offsetof(sf_block_q6_K, scales)));
        /* the -32 offset: -32 * sum_g sc_g * bsum_g */
        const __m256i offset = _mm256_madd_epi16(sf_x86_loadu256(y + offsetof(sf_block_q8_K, bsums)), sc16);
        __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));

        const uint8_t *q8 = y + offsetof(sf_block_q8_K, qs);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x + offsetof(sf_block_q6_K, ql) + 64 * h;
            const __m256i ql0 = sf_x86_loadu256(ql), ql1 = sf_x86_loadu256(ql + 32);
            const __m256i qh = sf_x86_loadu256(x + offsetof(sf_block_q6_K, qh) + 32 * h);
            const __m256i m30 = _mm256_set1_epi8(0x30);
            const __m256i q[4] = {
                _mm256_or_si256(sf_x86_lo_nibbles(ql0), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
                _mm256_or_si256(sf_x86_lo_nibbles(ql1), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
                _mm256_or_si256(sf_x86_hi_nibbles(ql0), _mm256_and_si256(qh, m30)),
                _mm256_or_si256(sf_x86_hi_nibbles(ql1), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)),
            };
            for (int r = 0; r < 4; r++)
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(dot16(q[r], q8 + 128 * h + 32 * r),
                                                                sf_x86_scale_pair(sc16, 4 * h + r)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return sf_x86_hsum_ps(acc);
}

/* ------------------------------------------------ Q3_K, Q2_K (16 x 16 values) */

/* Element 128h + 32j + 16k + l: 2 bits (qs[32h + 16k + l] >> 2j) & 3; Q3_K
 * adds 4 where bit 4h + j of hmask[16k + l] is set, then subtracts 4. */
float sf_avx2_vec_dot_q3_K(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a; /* [n/256] Q3_K blocks, [n/256] Q8_K blocks */
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SF_QK_K; i++, x += sizeof(sf_block_q3_K), y += sizeof(sf_block_q8_K)) {
        const float d = sf_x86_load_f32(y + offsetof(sf_block_q8_K, d)) * sf_x86_load_f16(x + offsetof(sf_block_q3_K, d));
        const __m256i sc16 = _mm256_cvtepi8_epi16(sf_x86_q3_K_scales(x + offsetof(sf_block_q3_K, scales)));
        /* the -4 offset: -4 * sum_g sc_g * bsum_g */
        const __m256i offset = _mm256_madd_epi16(sf_x86_loadu256(y + offsetof(sf_block_q8_K, bsums)), sc16);
        __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 2));

        const __m256i hmask = sf_x86_loadu256(x + offsetof(sf_block_q3_K, hmask));
        const uint8_t *q8 = y + offsetof(sf_block_q8_K, qs);
        for (int h = 0; h < 2; h++) {
            const __m256i qs = sf_x86_loadu256(x + offsetof(sf_block_q3_K, qs) + 32 * h);
            for (int j = 0; j < 4; j++) {
                const __m256i q = _mm256_or_si256(crumbs(qs, 2 * j), bit_as(hmask, 4 * h + j, 4));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(dot16(q, q8 + 128 * h + 32 * j),
                                                                sf_x86_scale_pair(sc16, 4 * h + j)));
            }
        }
        const int isum = sf_x86_hsum_epi32(sumi);
        sum += d * isum;
    }
    return sum;
}

/* Q2_K: scales[s] holds the 4-bit scale (low nibble) and min (high nibble)
 * of the 16 values of sub-block s = 8h + 2j + k. */
float sf_avx2_vec_dot_q2_K(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a; /* [n/256] Q2_K blocks, [n/256] Q8_K blocks */
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SF_QK_K; i++, x += sizeof(sf_block_q2_K), y += sizeof(sf_block_q8_K)) {
        const float dy = sf_x86_load_f32(y + offsetof(sf_block_q8_K, d));
        const float d = dy * sf_x86_load_f16(x + offsetof(sf_block_q2_K, d));
        const float dmin = dy * sf_x86_load_f16(x + offsetof(sf_block_q2_K, dmin));
        const __m128i scales = sf_x86_loadu128(x + offsetof(sf_block_q2_K, scales));
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(scales, _mm_set1_epi8(0x0F)));
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(scales, 4), _mm_set1_epi8(0x0F)));
        const int summs = sf_x86_hsum_epi32(_mm256_madd_epi16(sf_x86_loadu256(y + offsetof(sf_block_q8_K, bsums)), m16));

        const uint8_t *q8 = y + offsetof(sf_block_q8_K, qs);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i qs = sf_x86_loadu256(x + offsetof(sf_block_q2_K, qs) + 32 * h);
            for (int j = 0; j < 4; j++)
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(dot16(crumbs(qs, 2 * j), q8 + 128 * h + 32 * j),
                                                                sf_x86_scale_pair(sc16, 4 * h + j)));
        }
        const int isum = sf_x86_hsum_epi32(sumi);
        sum += d * isum - dmin * summs;
    }
    return sum;
}
