/* AVX2 dot products of IQ4_NL weights with Q8_0 activations, in the order of
 * ggml's x86 ggml_vec_dot_iq4_nl_q8_0 (bit-identical to it on AVX2 CPUs):
 *  - each block's 32 indices become int8 levels with one vpshufb on the
 *    16-entry table (low nibbles -> elements 0..15 in the low lane, high
 *    nibbles -> elements 16..31 in the high lane);
 *  - the exact int32 dot as 8 partial sums (each of 4 products), converted to
 *    f32 and FMA-accumulated with d_a * d_w: even blocks into one
 *    accumulator, odd blocks into a second;
 *  - one horizontal sum of the two added together;
 *  - an odd last block in scalar code, sum += d * sumi, which GCC compiles
 *    into one FMA in ggml's build (C in GNU mode contracts; here fmaf).
 * The 2x4 variant runs exactly these chains for 2 rows x 4 tokens, sharing
 * each weight block's lookup and each activation block's load. */
#include <math.h>

#include "tensor/quant_ref.h"
#include "tensor/simd_x86.h"

/* 32 int8 levels of one block (qs: its 16 index bytes). */
static inline __m256i levels32(const uint8_t *qs) {
    const __m256i table = _mm256_broadcastsi128_si256(sf_x86_loadu128((const uint8_t *)sf_iq4nl_values));
    return _mm256_shuffle_epi8(table, sf_x86_nibbles32(qs));
}

/* acc + d_a * d_w * (8 int32 partial dots of levels q with the Q8_0 block y) */
static inline __m256 block_fma(__m256i q, float dw, const uint8_t *y, __m256 acc) {
    const __m256i dot = sf_x86_dot_i8i8(q, sf_x86_loadu256(y + offsetof(sf_block_q8_0, qs)));
    const __m256 d = _mm256_set1_ps(sf_x86_load_f16(y + offsetof(sf_block_q8_0, d)) * dw);
    return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc);
}

/* The odd last block: sum + d_a * d_w * (its integer dot), fused. */
static inline float tail_block(const uint8_t *x, const uint8_t *y, float sum) {
    const __m256i q = levels32(x + offsetof(sf_block_iq4_nl, qs));
    const int32_t sumi = sf_x86_hsum_epi32(sf_x86_dot_i8i8(q, sf_x86_loadu256(y + offsetof(sf_block_q8_0, qs))));
    const float d = sf_x86_load_f16(y + offsetof(sf_block_q8_0, d)) * sf_x86_load_f16(x + offsetof(sf_block_iq4_nl, d));
    return fmaf(d, (float)sumi, sum);
}

float sf_avx2_vec_dot_iq4_nl(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a; /* [n/32] IQ4_NL blocks, [n/32] Q8_0 blocks */
    const size_t xs = sizeof(sf_block_iq4_nl), ys = sizeof(sf_block_q8_0);
    const int64_t nb = n / SF_QK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const uint8_t *x0 = x + i * xs, *x1 = x0 + xs;
        acc0 = block_fma(levels32(x0 + offsetof(sf_block_iq4_nl, qs)), sf_x86_load_f16(x0), y + i * ys, acc0);
        acc1 = block_fma(levels32(x1 + offsetof(sf_block_iq4_nl, qs)), sf_x86_load_f16(x1), y + (i + 1) * ys, acc1);
    }
    float sum = sf_x86_hsum_ps(_mm256_add_ps(acc0, acc1));
    if (i < nb) sum = tail_block(x + i * xs, y + i * ys, sum);
    return sum;
}

void sf_avx2_vec_dot_2x4_iq4_nl(int64_t n, const void *w, size_t w_stride, const void *a, size_t a_stride,
                                float out[8]) {
    const uint8_t *x = w, *y = a; /* 2 rows w_stride apart, 4 activation rows a_stride apart */
    const size_t xs = sizeof(sf_block_iq4_nl), ys = sizeof(sf_block_q8_0);
    const int64_t nb = n / SF_QK;
    __m256 acc[2][4][2]; /* [row][token][even / odd block] */
    for (int r = 0; r < 2; r++)
        for (int t = 0; t < 4; t++) acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        for (int par = 0; par < 2; par++) {
            const uint8_t *x0 = x + (i + par) * xs, *x1 = x0 + w_stride;
            const __m256i q0 = levels32(x0 + offsetof(sf_block_iq4_nl, qs));
            const __m256i q1 = levels32(x1 + offsetof(sf_block_iq4_nl, qs));
            const float d0 = sf_x86_load_f16(x0), d1 = sf_x86_load_f16(x1);
            for (int t = 0; t < 4; t++) {
                const uint8_t *yb = y + (size_t)t * a_stride + (i + par) * ys;
                acc[0][t][par] = block_fma(q0, d0, yb, acc[0][t][par]);
                acc[1][t][par] = block_fma(q1, d1, yb, acc[1][t][par]);
            }
        }
    }
    for (int r = 0; r < 2; r++)
        for (int t = 0; t < 4; t++) {
            float sum = sf_x86_hsum_ps(_mm256_add_ps(acc[r][t][0], acc[r][t][1]));
            if (i < nb) sum = tail_block(x + r * w_stride + i * xs, y + (size_t)t * a_stride + i * ys, sum);
            out[4 * r + t] = sum;
        }
}
