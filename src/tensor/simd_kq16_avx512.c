/* The K-quant prompt kernel on 512-bit registers: 16 interleaved rows
 * (sf_kq_tile16, kq_unpack.h) x 4 Q8_K activation rows, each row in its own
 * 32-bit lane, so every (row, token) integer sum accumulates in place and
 * meets the float scales in the order of one of ggml's paths (SF_KQ_*, the
 * formulas in kq_gemm_impl.h) without horizontal sums. Per group of 4 values:
 * the 4 activation bytes are broadcast, vpmaddubsw pairs them with the 16
 * rows' quants, vpdpwssd applies each row's scale. Two partial accumulators
 * per token (even and odd groups) keep 8 independent chains in flight. */
#include <string.h>

#include "tensor/kq_unpack.h"
#include "tensor/simd.h"
#include "tensor/simd_x86.h"

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VNNI__)
#error "simd_kq16_avx512.c needs -mavx512f -mavx512bw -mavx512vnni"
#endif

enum { Y_QS = 4, Y_BSUMS = 4 + 256 }; /* byte offsets in a Q8_K block */

static inline __m512i bcast32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* s[k] += the integer sums of 16-value groups [g0, g1) for token k */
static inline void kq16_groups(const sf_kq_tile16 *t, const uint8_t *const y[4], int g0, int g1, __m512i s[4]) {
    __m512i e[4], o[4];
    for (int k = 0; k < 4; k++) e[k] = o[k] = _mm512_setzero_si512();
    for (int g = g0; g < g1; g++) {
        const __m512i sc = _mm512_loadu_si512(t->sc[g]);
        for (int q = 4 * g; q < 4 * g + 4; q += 2) {
            const __m512i w0 = _mm512_loadu_si512(t->q[q]), w1 = _mm512_loadu_si512(t->q[q + 1]);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                e[k] = _mm512_dpwssd_epi32(e[k], _mm512_maddubs_epi16(w0, bcast32(y[k] + Y_QS + 4 * q)), sc);
                o[k] = _mm512_dpwssd_epi32(o[k], _mm512_maddubs_epi16(w1, bcast32(y[k] + Y_QS + 4 * q + 4)), sc);
            }
        }
    }
    for (int k = 0; k < 4; k++) s[k] = _mm512_add_epi32(s[k], _mm512_add_epi32(e[k], o[k]));
}

/* m[k] += sub-blocks [j0, j1) of sum mn * bsum for token k */
static inline void kq16_mins(const sf_kq_tile16 *t, const uint8_t *const y[4], int j0, int j1, __m512i m[4]) {
    for (int j = j0; j < j1; j++) {
        const __m512i mn = _mm512_loadu_si512(t->mn[j]);
        for (int k = 0; k < 4; k++) m[k] = _mm512_add_epi32(m[k], _mm512_madd_epi16(mn, bcast32(y[k] + Y_BSUMS + 4 * j)));
    }
}

static inline __attribute__((always_inline)) void kq16(int64_t nsb, const sf_kq_tile16 *w, const uint8_t *const a[4],
                                                       int order, float out[4][16]) {
    __m512 acc[4], acc_min[4];
    for (int k = 0; k < 4; k++) acc[k] = acc_min[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nsb; i++) {
        const sf_kq_tile16 *t = w + i;
        const uint8_t *y[4];
        __m512 dy[4];
        for (int k = 0; k < 4; k++) {
            y[k] = a[k] + (size_t)i * sizeof(sf_block_q8_K);
            dy[k] = _mm512_set1_ps(sf_x86_load_f32(y[k]));
        }
        const __m512 d = _mm512_loadu_ps(t->d), dm = _mm512_loadu_ps(t->dm);
        const __m512 dmin = _mm512_sub_ps(_mm512_setzero_ps(), dm);
        __m512i s[4], m[4];
        if (order == SF_KQ_REPACK_GEMM) { /* per 64-value part (sub-blocks 2p, 2p + 1) */
            for (int p = 0; p < 4; p++) {
                for (int k = 0; k < 4; k++) s[k] = m[k] = _mm512_setzero_si512();
                kq16_groups(t, y, 4 * p, 4 * p + 4, s);
                kq16_mins(t, y, 2 * p, 2 * p + 2, m);
                for (int k = 0; k < 4; k++) {
                    acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[k]), _mm512_mul_ps(d, dy[k]), acc[k]);
                    acc_min[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m[k]), _mm512_mul_ps(dmin, dy[k]), acc_min[k]);
                }
            }
            continue;
        }
        for (int k = 0; k < 4; k++) s[k] = m[k] = _mm512_setzero_si512();
        kq16_groups(t, y, 0, 16, s);
        kq16_mins(t, y, 0, 8, m);
        for (int k = 0; k < 4; k++) {
            if (order == SF_KQ_REPACK_GEMV) {
                acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[k]), _mm512_mul_ps(d, dy[k]), acc[k]);
                acc_min[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m[k]), _mm512_mul_ps(dmin, dy[k]), acc_min[k]);
            } else if (order == SF_KQ_TILED_OFFSET) {
                const __m512 r = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s[k], m[k])), d);
                acc[k] = _mm512_fmadd_ps(r, dy[k], acc[k]);
            } else {
                const __m512 r = _mm512_fmadd_ps(dm, _mm512_cvtepi32_ps(m[k]), _mm512_mul_ps(_mm512_cvtepi32_ps(s[k]), d));
                acc[k] = _mm512_fmadd_ps(r, dy[k], acc[k]);
            }
        }
    }
    for (int k = 0; k < 4; k++) _mm512_storeu_ps(out[k], _mm512_sub_ps(acc[k], acc_min[k]));
}

void sf_avx512_kq16_gemm(int64_t nsb, const sf_kq_tile16 *w, const uint8_t *const a[4], int order, float out[4][16]) {
    switch (order) {
    case SF_KQ_REPACK_GEMM: kq16(nsb, w, a, SF_KQ_REPACK_GEMM, out); break;
    case SF_KQ_REPACK_GEMV: kq16(nsb, w, a, SF_KQ_REPACK_GEMV, out); break;
    case SF_KQ_TILED_OFFSET: kq16(nsb, w, a, SF_KQ_TILED_OFFSET, out); break;
    default: kq16(nsb, w, a, SF_KQ_TILED, out); break;
    }
}
