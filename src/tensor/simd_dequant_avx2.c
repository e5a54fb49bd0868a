/* AVX2 dequantizers (used for embedding-row gathers): Q4_1, Q5_0, Q8_0,
 * Q4_K, Q6_K to f32. Each value is computed with the same f32 operations in
 * the same order as the scalar reference (separate multiply and add, no FMA),
 * so the results are identical. */
#include "tensor/simd_x86.h"

/* Bytes 8k..8k+7 of v (signed int8) as 8 floats. */
static inline __m256 bytes_to_ps(__m256i v, int k) {
    __m128i half = k < 2 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1);
    if (k & 1) half = _mm_srli_si128(half, 8);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(half));
}

/* dst[0..31] = q * d for 32 int8 quants. */
static inline void store_scaled(float *dst, __m256i q, __m256 d) {
    for (int k = 0; k < 4; k++) _mm256_storeu_ps(dst + 8 * k, _mm256_mul_ps(bytes_to_ps(q, k), d));
}

/* dst[0..31] = q * d + m (rounded after the multiply, as the reference). */
static inline void store_scaled_offset(float *dst, __m256i q, __m256 d, __m256 m) {
    for (int k = 0; k < 4; k++) _mm256_storeu_ps(dst + 8 * k, _mm256_add_ps(_mm256_mul_ps(bytes_to_ps(q, k), d), m));
}

void sf_avx2_dequantize_q8_0(const void *src, float *dst, int64_t n) {
    const uint8_t *x = src; /* [n/32] Q8_0 blocks */
    for (int64_t i = 0; i < n / SF_QK; i++, x += sizeof(sf_block_q8_0))
        store_scaled(dst + i * SF_QK, sf_x86_loadu256(x + offsetof(sf_block_q8_0, qs)),
                     _mm256_set1_ps(sf_x86_load_f16(x + offsetof(sf_block_q8_0, d))));
}

void sf_avx2_dequantize_q4_1(const void *src, float *dst, int64_t n) {
    const uint8_t *x = src; /* [n/32] Q4_1 blocks */
    for (int64_t i = 0; i < n / SF_QK; i++, x += sizeof(sf_block_q4_1))
        store_scaled_offset(dst + i * SF_QK, sf_x86_nibbles32(x + offsetof(sf_block_q4_1, qs)),
                            _mm256_set1_ps(sf_x86_load_f16(x + offsetof(sf_block_q4_1, d))),
                            _mm256_set1_ps(sf_x86_load_f16(x + offsetof(sf_block_q4_1, m))));
}

void sf_avx2_dequantize_q5_0(const void *src, float *dst, int64_t n) {
    const uint8_t *x = src; /* [n/32] Q5_0 blocks */
    for (int64_t i = 0; i < n / SF_QK; i++, x += sizeof(sf_block_q5_0)) {
        const __m256i high = _mm256_and_si256(sf_x86_bits_to_bytes(sf_x86_load_u32(x + offsetof(sf_block_q5_0, qh))),
                                              _mm256_set1_epi8(0x10));
        const __m256i q = _mm256_sub_epi8(_mm256_or_si256(sf_x86_nibbles32(x + offsetof(sf_block_q5_0, qs)), high),
                                          _mm256_set1_epi8(16));
        store_scaled(dst + i * SF_QK, q, _mm256_set1_ps(sf_x86_load_f16(x + offsetof(sf_block_q5_0, d))));
    }
}

/* y = (d * sc) * q - dmin * m per 32-value sub-block. */
void sf_avx2_dequantize_q4_K(const void *src, float *dst, int64_t n) {
    const uint8_t *x = src; /* [n/256] Q4_K blocks */
    for (int64_t i = 0; i < n / SF_QK_K; i++, x += sizeof(sf_block_q4_K)) {
        const float d = sf_x86_load_f16(x + offsetof(sf_block_q4_K, d));
        const float dmin = sf_x86_load_f16(x + offsetof(sf_block_q4_K, dmin));
        uint8_t sc[8], m[8];
        sf_x86_k4_scales(x + offsetof(sf_block_q4_K, scales), sc, m);
        float *y = dst + i * SF_QK_K; /* [256] */
        for (int c = 0; c < 4; c++) {
            const __m256i raw = sf_x86_loadu256(x + offsetof(sf_block_q4_K, qs) + 32 * c);
            store_scaled_offset(y + 64 * c, sf_x86_lo_nibbles(raw), _mm256_set1_ps(d * sc[2 * c]),
                                _mm256_set1_ps(-(dmin * m[2 * c])));
            store_scaled_offset(y + 64 * c + 32, sf_x86_hi_nibbles(raw), _mm256_set1_ps(d * sc[2 * c + 1]),
                                _mm256_set1_ps(-(dmin * m[2 * c + 1])));
        }
    }
}

/* y = (d * sc) * (q - 32) per 16-value group. */
void sf_avx2_dequantize_q6_K(const void *src, float *dst, int64_t n) {
    const uint8_t *x = src; /* [n/256] Q6_K blocks */
    const __m256i m30 = _mm256_set1_epi8(0x30), m32 = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < n / SF_QK_K; i++, x += sizeof(sf_block_q6_K)) {
        const float d = sf_x86_load_f16(x + offsetof(sf_block_q6_K, d));
        const int8_t *sc = (const int8_t *)(x + offsetof(sf_block_q6_K, scales));
        float *y = dst + i * SF_QK_K; /* [256] */
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x + offsetof(sf_block_q6_K, ql) + 64 * h;
            const __m256i ql0 = sf_x86_loadu256(ql), ql1 = sf_x86_loadu256(ql + 32);
            const __m256i qh = sf_x86_loadu256(x + offsetof(sf_block_q6_K, qh) + 32 * h);
            const __m256i q[4] = {
                _mm256_or_si256(sf_x86_lo_nibbles(ql0), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
                _mm256_or_si256(sf_x86_lo_nibbles(ql1), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
                _mm256_or_si256(sf_x86_hi_nibbles(ql0), _mm256_and_si256(qh, m30)),
                _mm256_or_si256(sf_x86_hi_nibbles(ql1), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)),
            };
            for (int r = 0; r < 4; r++) {
                const __m256i qs = _mm256_sub_epi8(q[r], m32);
                const int g = 8 * h + 2 * r; /* scale group of the first 16 values */
                float *out = y + 128 * h + 32 * r;
                const __m256 d0 = _mm256_set1_ps(d * sc[g]), d1 = _mm256_set1_ps(d * sc[g + 1]);
                _mm256_storeu_ps(out, _mm256_mul_ps(bytes_to_ps(qs, 0), d0));
                _mm256_storeu_ps(out + 8, _mm256_mul_ps(bytes_to_ps(qs, 1), d0));
                _mm256_storeu_ps(out + 16, _mm256_mul_ps(bytes_to_ps(qs, 2), d1));
                _mm256_storeu_ps(out + 24, _mm256_mul_ps(bytes_to_ps(qs, 3), d1));
            }
        }
    }
}
