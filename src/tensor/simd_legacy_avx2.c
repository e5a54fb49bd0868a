/* AVX2 dot products of the legacy 32-value blocks with Q8_0 / Q8_1
 * activations: Q4_0, Q5_0, Q8_0 (with Q8_0) and Q4_1, Q5_1 (with Q8_1).
 *
 * Per block: the exact int32 dot of the quants (doc section 3.4), as 8
 * partial sums, converted to f32 (exact: each is < 2^24) and scaled by
 * d_w * d_a into one vector accumulator; one horizontal sum at the end
 * (ggml's order of operations). */
#include "tensor/simd_x86.h"

/* acc + one block's scaled partial dots; *offset += its m_w * s_a term
 * (Q4_1, Q5_1; the others leave it alone). */
typedef __m256 (*block_dot_fn)(const uint8_t *x, const uint8_t *y, __m256 acc, float *offset);

/* The row loop shared by the kernels below (inlined: each passes a constant
 * block function). x: nb weight blocks of xs bytes, y: nb activation blocks
 * of ys bytes. */
static inline float dot_rows(int64_t nb, const uint8_t *x, size_t xs, const uint8_t *y, size_t ys, block_dot_fn block) {
    /* One accumulator and a sequential offset sum, block by block, exactly
     * as ggml's x86 kernels: the result is then bit-identical to llama.cpp's,
     * which matters on models that amplify rounding (docs/parity.md). */
    __m256 acc = _mm256_setzero_ps();
    float off = 0.0f;
    for (int64_t i = 0; i < nb; i++) acc = block(x + i * xs, y + i * ys, acc, &off);
    return sf_x86_hsum_ps(acc) + off;
}

/* acc + d_w * d_a * (8 int32 partial dots). */
static inline __m256 scale_add(const uint8_t *x_d, const uint8_t *y_d, __m256i dot, __m256 acc) {
    const __m256 d = _mm256_set1_ps(sf_x86_load_f16(x_d) * sf_x86_load_f16(y_d));
    return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc);
}

/* 5-bit quants of a Q5 block (0..31): the nibbles plus 16 where qh has the bit. */
static inline __m256i q5_quants(const uint8_t *qs, const uint8_t *qh) {
    const __m256i high = _mm256_and_si256(sf_x86_bits_to_bytes(sf_x86_load_u32(qh)), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(sf_x86_nibbles32(qs), high);
}

static inline __m256 block_q4_0(const uint8_t *x, const uint8_t *y, __m256 acc, float *offset) {
    (void)offset;
    const __m256i q = _mm256_sub_epi8(sf_x86_nibbles32(x + offsetof(sf_block_q4_0, qs)), _mm256_set1_epi8(8));
    const __m256i dot = sf_x86_dot_i8i8(q, sf_x86_loadu256(y + offsetof(sf_block_q8_0, qs)));
    return scale_add(x + offsetof(sf_block_q4_0, d), y + offsetof(sf_block_q8_0, d), dot, acc);
}

/* sum(d_w*d_a*sum(q_w*q_a) + m_w*s_a): the nibbles go unsigned into maddubs. */
static inline __m256 block_q4_1(const uint8_t *x, const uint8_t *y, __m256 acc, float *offset) {
    const __m256i q = sf_x86_nibbles32(x + offsetof(sf_block_q4_1, qs));
    const __m256i dot = sf_x86_dot_u8i8(q, sf_x86_loadu256(y + offsetof(sf_block_q8_1, qs)));
    *offset += sf_x86_load_f16(x + offsetof(sf_block_q4_1, m)) * sf_x86_load_f16(y + offsetof(sf_block_q8_1, s));
    return scale_add(x + offsetof(sf_block_q4_1, d), y + offsetof(sf_block_q8_1, d), dot, acc);
}

static inline __m256 block_q5_0(const uint8_t *x, const uint8_t *y, __m256 acc, float *offset) {
    (void)offset;
    const __m256i q = _mm256_sub_epi8(q5_quants(x + offsetof(sf_block_q5_0, qs), x + offsetof(sf_block_q5_0, qh)),
                                      _mm256_set1_epi8(16));
    const __m256i dot = sf_x86_dot_i8i8(q, sf_x86_loadu256(y + offsetof(sf_block_q8_0, qs)));
    return scale_add(x + offsetof(sf_block_q5_0, d), y + offsetof(sf_block_q8_0, d), dot, acc);
}

static inline __m256 block_q5_1(const uint8_t *x, const uint8_t *y, __m256 acc, float *offset) {
    const __m256i q = q5_quants(x + offsetof(sf_block_q5_1, qs), x + offsetof(sf_block_q5_1, qh));
    const __m256i dot = sf_x86_dot_u8i8(q, sf_x86_loadu256(y + offsetof(sf_block_q8_1, qs)));
    *offset += sf_x86_load_f16(x + offsetof(sf_block_q5_1, m)) * sf_x86_load_f16(y + offsetof(sf_block_q8_1, s));
    return scale_add(x + offsetof(sf_block_q5_1, d), y + offsetof(sf_block_q8_1, d), dot, acc);
}

static inline __m256 block_q8_0(const uint8_t *x, const uint8_t *y, __m256 acc, float *offset) {
    (void)offset;
    const __m256i dot = sf_x86_dot_i8i8(sf_x86_loadu256(x + offsetof(sf_block_q8_0, qs)),
                                        sf_x86_loadu256(y + offsetof(sf_block_q8_0, qs)));
    return scale_add(x + offsetof(sf_block_q8_0, d), y + offsetof(sf_block_q8_0, d), dot, acc);
}

float sf_avx2_vec_dot_q4_0(int64_t n, const void *w, const void *a) {
    /* [n/32] Q4_0 blocks, [n/32] Q8_0 blocks */
    return dot_rows(n / SF_QK, w, sizeof(sf_block_q4_0), a, sizeof(sf_block_q8_0), block_q4_0);
}

float sf_avx2_vec_dot_q4_1(int64_t n, const void *w, const void *a) {
    /* [n/32] Q4_1 blocks, [n/32] Q8_1 blocks */
    return dot_rows(n / SF_QK, w, sizeof(sf_block_q4_1), a, sizeof(sf_block_q8_1), block_q4_1);
}

float sf_avx2_vec_dot_q5_0(int64_t n, const void *w, const void *a) {
    /* [n/32] Q5_0 blocks, [n/32] Q8_0 blocks */
    return dot_rows(n / SF_QK, w, sizeof(sf_block_q5_0), a, sizeof(sf_block_q8_0), block_q5_0);
}

float sf_avx2_vec_dot_q5_1(int64_t n, const void *w, const void *a) {
    /* [n/32] Q5_1 blocks, [n/32] Q8_1 blocks */
    return dot_rows(n / SF_QK, w, sizeof(sf_block_q5_1), a, sizeof(sf_block_q8_1), block_q5_1);
}

float sf_avx2_vec_dot_q8_0(int64_t n, const void *w, const void *a) {
    /* [n/32] Q8_0 blocks, both */
    return dot_rows(n / SF_QK, w, sizeof(sf_block_q8_0), a, sizeof(sf_block_q8_0), block_q8_0);
}
