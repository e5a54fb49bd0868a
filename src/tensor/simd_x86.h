/* Helpers and kernel declarations shared by the x86 SIMD files
 * (simd_*avx2.c, simd_*avx512.c). Those files are compiled with at least
 * -mavx2 -mfma -mf16c; include this header from nowhere else.
 *
 * Blocks are packed at any byte offset (a Q8_0 block is 34 bytes), so block
 * fields are addressed as byte offsets (offsetof) and read with memcpy or
 * unaligned vector loads, never through a misaligned struct pointer. */
#ifndef SF_TENSOR_SIMD_X86_H
#define SF_TENSOR_SIMD_X86_H

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "simd_x86.h needs -mavx2 -mfma -mf16c"
#endif

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tensor/blocks.h"

/* ------------------------------------------------ kernels (other files) */

/* simd_avx2.c */
void sf_avx2_quantize_q8_0(const float *src, void *dst, int64_t n);
void sf_avx2_quantize_q8_1(const float *src, void *dst, int64_t n);
void sf_avx2_quantize_q8_K(const float *src, void *dst, int64_t n);
float sf_avx2_vec_dot_f32(int64_t n, const void *w, const void *a);
float sf_avx2_vec_dot_f16(int64_t n, const void *w, const void *a);
float sf_avx2_vec_dot_bf16(int64_t n, const void *w, const void *a);

/* simd_legacy_avx2.c: 32-value blocks (a: Q8_0 or Q8_1 as the weight type needs) */
float sf_avx2_vec_dot_q4_0(int64_t n, const void *w, const void *a);
float sf_avx2_vec_dot_q4_1(int64_t n, const void *w, const void *a);
float sf_avx2_vec_dot_q5_0(int64_t n, const void *w, const void *a);
float sf_avx2_vec_dot_q5_1(int64_t n, const void *w, const void *a);
float sf_avx2_vec_dot_q8_0(int64_t n, const void *w, const void *a);

/* simd_iq4nl_avx2.c: IQ4_NL (a: Q8_0); the 2x4 one equals vec_dot bit for bit */
float sf_avx2_vec_dot_iq4_nl(int64_t n, const void *w, const void *a);
void sf_avx2_vec_dot_2x4_iq4_nl(int64_t n, const void *w, size_t w_stride, const void *a, size_t a_stride,
                                float out[8]);

/* simd_kquant_avx2.c: K-quants (a: Q8_K) */
float sf_avx2_vec_dot_q2_K(int64_t n, const void *w, const void *a);
float sf_avx2_vec_dot_q3_K(int64_t n, const void *w, const void *a);
float sf_avx2_vec_dot_q4_K(int64_t n, const void *w, const void *a);
float sf_avx2_vec_dot_q5_K(int64_t n, const void *w, const void *a);
float sf_avx2_vec_dot_q6_K(int64_t n, const void *w, const void *a);
float sf_avx2_dot_q4_K_repacked_gemv(int64_t n, const void *w, const void *a);

/* simd_dequant_avx2.c */
void sf_avx2_dequantize_q4_1(const void *src, float *dst, int64_t n);
void sf_avx2_dequantize_q5_0(const void *src, float *dst, int64_t n);
void sf_avx2_dequantize_q8_0(const void *src, float *dst, int64_t n);
void sf_avx2_dequantize_q4_K(const void *src, float *dst, int64_t n);
void sf_avx2_dequantize_q6_K(const void *src, float *dst, int64_t n);

/* simd_kquant_avx512.c: K-quants (a: Q8_K); simd_avx512.c installs them */
float sf_avx512_vec_dot_q2_K(int64_t n, const void *w, const void *a);
float sf_avx512_vec_dot_q3_K(int64_t n, const void *w, const void *a);
float sf_avx512_vec_dot_q4_K(int64_t n, const void *w, const void *a);
float sf_avx512_vec_dot_q5_K(int64_t n, const void *w, const void *a);
float sf_avx512_vec_dot_q6_K(int64_t n, const void *w, const void *a);

/* ------------------------------------------------ loads */

static inline float sf_x86_load_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h); /* exact, subnormals included */
}

static inline float sf_x86_load_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

static inline uint32_t sf_x86_load_u32(const uint8_t *p) {
    uint32_t u;
    memcpy(&u, p, 4); /* little-endian, as on every x86 */
    return u;
}

static inline __m128i sf_x86_loadu128(const uint8_t *p) { return _mm_loadu_si128((const __m128i *)p); }
static inline __m256i sf_x86_loadu256(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* ------------------------------------------------ horizontal sums */

static inline float sf_x86_hsum_ps128(__m128 v) {
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
}

static inline float sf_x86_hsum_ps(__m256 v) {
    return sf_x86_hsum_ps128(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

static inline int32_t sf_x86_hsum_epi32_128(__m128i s) {
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline int32_t sf_x86_hsum_epi32(__m256i v) {
    return sf_x86_hsum_epi32_128(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

/* ------------------------------------------------ unpacking quants */

/* 16 bytes of packed nibbles -> 32 bytes in 0..15: the low nibbles (block
 * elements 0..15), then the high nibbles (elements 16..31). */
static inline __m256i sf_x86_nibbles32(const uint8_t *qs) {
    const __m128i b = sf_x86_loadu128(qs);
    const __m256i t = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(t, _mm256_set1_epi8(0x0F));
}

/* Low and high nibbles of 32 bytes. (Shifting 16-bit lanes is fine: the bits
 * pulled in from the neighbour byte are masked off.) */
static inline __m256i sf_x86_lo_nibbles(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0F)); }
static inline __m256i sf_x86_hi_nibbles(__m256i v) {
    return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes: byte i is 0xFF if bit i is set, else 0. */
static inline __m256i sf_x86_bits_to_bytes(uint32_t bits) {
    /* byte i takes source byte i/8 (vpshufb works within 128-bit lanes, and
     * set1_epi32 repeats the 4 source bytes in both lanes) */
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull); /* byte i: 1 << (i % 8) */
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), pick);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* The 8 6-bit scales and 8 6-bit mins of a Q4_K / Q5_K super-block, from its
 * 12 scale bytes b (doc section 3.3, get_scale_min_k4), one per byte:
 *   s < 4:  sc = b[s] & 63,                        m = b[s+4] & 63
 *   s >= 4: sc = (b[s+4] & 15) | (b[s-4] >> 6) << 4, m = (b[s+4] >> 4) | (b[s] >> 6) << 4
 * computed four bytes at a time on 32-bit words. */
static inline void sf_x86_k4_scales(const uint8_t *b, uint8_t sc[8], uint8_t m[8]) {
    const uint32_t w0 = sf_x86_load_u32(b), w1 = sf_x86_load_u32(b + 4), w2 = sf_x86_load_u32(b + 8);
    const uint32_t sc_lo = w0 & 0x3f3f3f3fu, m_lo = w1 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | ((w0 >> 6) & 0x03030303u) << 4;
    const uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 6) & 0x03030303u) << 4;
    memcpy(sc, &sc_lo, 4);
    memcpy(sc + 4, &sc_hi, 4);
    memcpy(m, &m_lo, 4);
    memcpy(m + 4, &m_hi, 4);
}

/* The 16 signed 6-bit scales of a Q3_K super-block (doc section 3.3), as
 * int8: low 4 bits from bytes 0..7 (low nibbles for s < 8, high nibbles for
 * s >= 8), top 2 bits from bytes 8..11 (bit pair s/4 of byte 8 + s%4). */
static inline __m128i sf_x86_q3_K_scales(const uint8_t *b) {
    const uint32_t w0 = sf_x86_load_u32(b), w1 = sf_x86_load_u32(b + 4), w2 = sf_x86_load_u32(b + 8);
    const uint32_t lo4 = 0x0f0f0f0fu, hi2 = 0x03030303u;
    const __m128i u = _mm_setr_epi32((int)((w0 & lo4) | (w2 & hi2) << 4),
                                     (int)((w1 & lo4) | ((w2 >> 2) & hi2) << 4),
                                     (int)(((w0 >> 4) & lo4) | ((w2 >> 4) & hi2) << 4),
                                     (int)(((w1 >> 4) & lo4) | ((w2 >> 6) & hi2) << 4));
    return _mm_sub_epi8(u, _mm_set1_epi8(32));
}

/* For K-quants with one scale per 16 values: from the 16 scales as int16
 * (sc16), the int16 vector that scales a 32-byte maddubs product of values
 * 32p..32p+31: lanes 0..7 = sc[2p], lanes 8..15 = sc[2p+1]. */
static inline __m256i sf_x86_scale_pair(__m256i sc16, int p) {
    const __m256i both = _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(p)); /* (sc[2p], sc[2p+1]) everywhere */
    const __m256i pick = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                          2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    return _mm256_shuffle_epi8(both, pick);
}

/* The 8 sums of 32 activations (one per Q4_K / Q5_K sub-block) from a Q8_K
 * block's 16 bsums (sums of 16), as int16. */
static inline __m128i sf_x86_bsums_32(const uint8_t *bsums) {
    return _mm_hadd_epi16(sf_x86_loadu128(bsums), sf_x86_loadu128(bsums + 16));
}

/* ------------------------------------------------ int8 dot products */

/* Sums of u*s over each 4 consecutive bytes (8 int32), u unsigned, s signed.
 * vpmaddubsw saturates its int16 pair sums: callers keep 2*u*|s| <= 32767
 * (nibbles are <= 63; activations are in [-127, 127]). */
static inline __m256i sf_x86_dot_u8i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Same for signed x and y, via |x| * sign(y, x) = x*y (needs y != -128;
 * x = -128 is fine, |x| is then 128 read as unsigned). */
static inline __m256i sf_x86_dot_i8i8(__m256i x, __m256i y) {
    return sf_x86_dot_u8i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

#endif
