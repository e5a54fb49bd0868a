/* 2 unpacked K-quant weight rows x 4 Q8_K activation rows (internal), the
 * prompt-path kernel of every K-quant type (see kq_unpack.h), computing each
 * of the 8 results in the float order of one of ggml's CPU matmul paths
 * (tensor/ggml_batch.h), so it equals them bit for bit:
 *   SF_KQ_TILED        per super-block r = s1 * d (+ dm * s2), out = fma(r, d_y, out)
 *   SF_KQ_REPACK_GEMV  per super-block acc += s1 * (d * d_y), acc_min += s2 * (dmin * d_y)
 *   SF_KQ_REPACK_GEMM  the same per 64-value part; result acc - acc_min
 * s1 and s2 are exact integers (maddubs pair sums of q <= 63 and |y| <= 127
 * cannot saturate); the 8 (row, token) results live in the 8 float lanes of
 * one vector, lane 4 * row + token, so ggml's per-output scalar chain is one
 * vector chain here. Included by simd_kq_gemm_avx2.c (madd + add) and
 * simd_kq_gemm_avx512.c (vpdpwssd), which define KQ_NAME(x) and
 * KQ_DPWSSD(acc, a, b) (acc + the pair sums of a * b, int16 -> int32). */
#include "tensor/kq_unpack.h"
#include "tensor/simd_x86.h"

enum { KQ_Y_QS = 4, KQ_Y_BSUMS = 4 + 256 }; /* byte offsets in a Q8_K block */

/* lane k of the result = sum of the lanes of v[k] (exact integer adds) */
static inline __m256i kq_tsum8(const __m256i v[8]) {
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* From 8 vectors of 8 sub-block sums m[k] (sub-block j in lane j), the 4
 * part sums: part[p] lane k = m[k][2p] + m[k][2p + 1]. */
static inline void kq_parts(const __m256i m[8], __m256i part[4]) {
    __m256i h[4];
    for (int i = 0; i < 4; i++) /* [k p0, k' p0, k p1, k' p1 | k p2, k' p2, k p3, k' p3], k = 2i, k' = 2i + 1 */
        h[i] = _mm256_shuffle_epi32(_mm256_hadd_epi32(m[2 * i], m[2 * i + 1]), _MM_SHUFFLE(3, 1, 2, 0));
    const __m256i lo01 = _mm256_unpacklo_epi64(h[0], h[1]), hi01 = _mm256_unpackhi_epi64(h[0], h[1]);
    const __m256i lo23 = _mm256_unpacklo_epi64(h[2], h[3]), hi23 = _mm256_unpackhi_epi64(h[2], h[3]);
    part[0] = _mm256_permute2x128_si256(lo01, lo23, 0x20);
    part[2] = _mm256_permute2x128_si256(lo01, lo23, 0x31);
    part[1] = _mm256_permute2x128_si256(hi01, hi23, 0x20);
    part[3] = _mm256_permute2x128_si256(hi01, hi23, 0x31);
}

/* the integer sums of chunks [c0, c1) for every (row, token) into s[4r + t] */
static inline void kq_chunks(const sf_kq_unpacked *const u[2], const uint8_t *const y[4], int c0, int c1,
                             __m256i s[8]) {
    for (int k = 0; k < 8; k++) s[k] = _mm256_setzero_si256();
    for (int c = c0; c < c1; c++) {
        const __m256i q0 = _mm256_loadu_si256((const __m256i *)(u[0]->q + 32 * c));
        const __m256i q1 = _mm256_loadu_si256((const __m256i *)(u[1]->q + 32 * c));
        const __m256i sc0 = _mm256_loadu_si256((const __m256i *)u[0]->sc[c]);
        const __m256i sc1 = _mm256_loadu_si256((const __m256i *)u[1]->sc[c]);
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const __m256i yv = sf_x86_loadu256(y[t] + KQ_Y_QS + 32 * c);
            s[t] = KQ_DPWSSD(s[t], _mm256_maddubs_epi16(q0, yv), sc0);
            s[4 + t] = KQ_DPWSSD(s[4 + t], _mm256_maddubs_epi16(q1, yv), sc1);
        }
    }
}

static inline __attribute__((always_inline)) void kq_tile(int64_t nsb, const sf_kq_unpacked *w0,
                                                          const sf_kq_unpacked *w1, const uint8_t *const a[4],
                                                          int order, float out[8]) {
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < nsb; i++) {
        const sf_kq_unpacked *const u[2] = {w0 + i, w1 + i};
        const uint8_t *y[4];
        float dy[4];
        for (int t = 0; t < 4; t++) {
            y[t] = a[t] + (size_t)i * sizeof(sf_block_q8_K);
            dy[t] = sf_x86_load_f32(y[t]);
        }
        const __m256 d0 = _mm256_setr_m128(_mm_set1_ps(u[0]->d), _mm_set1_ps(u[1]->d));
        const __m256 dm = _mm256_setr_m128(_mm_set1_ps(u[0]->dm), _mm_set1_ps(u[1]->dm));
        const __m256 d1 = _mm256_setr_m128(_mm_loadu_ps(dy), _mm_loadu_ps(dy));
        /* the min / offset terms: m[k] lane j = sub-block j's sum of mn * bsum */
        __m256i m[8];
        const __m256i mn0 = _mm256_loadu_si256((const __m256i *)u[0]->mn);
        const __m256i mn1 = _mm256_loadu_si256((const __m256i *)u[1]->mn);
        for (int t = 0; t < 4; t++) {
            const __m256i bs = sf_x86_loadu256(y[t] + KQ_Y_BSUMS);
            m[t] = _mm256_madd_epi16(bs, mn0);
            m[4 + t] = _mm256_madd_epi16(bs, mn1);
        }
        __m256i s[8];
        if (order == SF_KQ_REPACK_GEMM) {
            /* ggml_gemm_q4_K_8x8_q8_K: per 64-value part, two FMA chains */
            __m256i mp[4];
            kq_parts(m, mp);
            const __m256 dd = _mm256_mul_ps(d0, d1), ddmin = _mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), dm), d1);
            for (int p = 0; p < 4; p++) {
                kq_chunks(u, y, 2 * p, 2 * p + 2, s);
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(kq_tsum8(s)), dd, acc);
                acc_min = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mp[p]), ddmin, acc_min);
            }
            continue;
        }
        kq_chunks(u, y, 0, 8, s);
        const __m256i s1 = kq_tsum8(s), s2 = kq_tsum8(m);
        if (order == SF_KQ_REPACK_GEMV) {
            /* ggml_gemv_q4_K_8x8_q8_K: per super-block, two FMA chains */
            const __m256 dd = _mm256_mul_ps(d0, d1), ddmin = _mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), dm), d1);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), dd, acc);
            acc_min = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s2), ddmin, acc_min);
        } else if (order == SF_KQ_TILED_OFFSET) {
            /* tiled, Q3_K / Q6_K: the offset is part of the integer sum */
            const __m256 r = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s1, s2)), d0);
            acc = _mm256_fmadd_ps(r, d1, acc);
        } else {
            /* tiled, Q4_K / Q5_K (and Q2_K): r = s1 * d - dmin * s2 */
            const __m256 r = _mm256_fmadd_ps(dm, _mm256_cvtepi32_ps(s2), _mm256_mul_ps(_mm256_cvtepi32_ps(s1), d0));
            acc = _mm256_fmadd_ps(r, d1, acc);
        }
    }
    _mm256_storeu_ps(out, _mm256_sub_ps(acc, acc_min));
}

void KQ_NAME(gemm_2x4)(int64_t nsb, const sf_kq_unpacked *w0, const sf_kq_unpacked *w1, const uint8_t *const a[4],
                       int order, float out[8]) {
    switch (order) {
    case SF_KQ_REPACK_GEMM: kq_tile(nsb, w0, w1, a, SF_KQ_REPACK_GEMM, out); break;
    case SF_KQ_REPACK_GEMV: kq_tile(nsb, w0, w1, a, SF_KQ_REPACK_GEMV, out); break;
    case SF_KQ_TILED_OFFSET: kq_tile(nsb, w0, w1, a, SF_KQ_TILED_OFFSET, out); break;
    default: kq_tile(nsb, w0, w1, a, SF_KQ_TILED, out); break;
    }
}
