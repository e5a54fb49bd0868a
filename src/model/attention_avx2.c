/* AVX2/FMA/F16C attention kernels: the same operations as the portable ones
 * in attention_impl.h, in the same order per value, vectorized across lanes
 * that ggml also keeps separate (results are bit-identical; see
 * tests/test_attention.c). Head dims must be multiples of 8. */
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "model/attention.h"
#include "model/expf_avx2.h"

extern float sf_attn_f16_table[1 << 16];

/* (a + b) reduced like _mm512_reduce_add_ps over the 16 lanes lo|hi. */
static inline float reduce16(__m256 lo, __m256 hi) {
    const __m256 t8 = _mm256_add_ps(lo, hi);
    __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    t4 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
    t4 = _mm_add_ss(t4, _mm_movehdup_ps(t4));
    return _mm_cvtss_f32(t4);
}

static inline __m256 load_f16(const sf_fp16 *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline void store_f16(sf_fp16 *p, __m256 v) {
    _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* ---------------------------------------------------------------- VEC */

/* ggml_vec_dot_f16 (AVX-512 lanes as lo/hi halves); qh holds f16-rounded q. */
static inline float dot_f16(const float *qh, const sf_fp16 *k, int n) {
    __m256 s[8];
    for (int r = 0; r < 8; r++) s[r] = _mm256_setzero_ps();
    const int np = n & ~63;
    for (int i = 0; i < np; i += 64)
        for (int r = 0; r < 8; r++) s[r] = _mm256_fmadd_ps(_mm256_loadu_ps(qh + i + 8 * r), load_f16(k + i + 8 * r), s[r]);
    /* registers j = 0..3 are (s[2j], s[2j+1]); 0 += 2, 1 += 3, 0 += 1 */
    __m256 lo = _mm256_add_ps(_mm256_add_ps(s[0], s[4]), _mm256_add_ps(s[2], s[6]));
    __m256 hi = _mm256_add_ps(_mm256_add_ps(s[1], s[5]), _mm256_add_ps(s[3], s[7]));
    double sum = reduce16(lo, hi);
    for (int i = np; i < n; i++) sum += (double)(qh[i] * sf_attn_f16_table[k[i]]);
    return (float)sum;
}

static void vec_chunk(const sf_attn_args *a, const float *qh, int kh, int c0, int c1, float *acc, sf_fp16 *acc16,
                      float *M_out, float *S_out) {
    const int hk = a->head_dim_k, hv = a->head_dim_v;
    memset(acc16, 0, sizeof(sf_fp16) * (size_t)hv);
    float M = -INFINITY, S = 0.0f;
    for (int s = c0; s < c1; s++) {
        const sf_fp16 *kr = a->k + ((size_t)s * a->kv_stride + kh) * hk;
        const sf_fp16 *vr = a->v + ((size_t)s * a->kv_stride + kh) * hv;
        const float sc = dot_f16(qh, kr, hk) * a->scale;
        float ms = 1.0f, vs = 1.0f;
        if (sc > M) {
            const float Mold = M;
            M = sc;
            ms = expf(Mold - M);
            const __m256 m = _mm256_set1_ps(ms);
            for (int d = 0; d < hv; d += 8) store_f16(acc16 + d, _mm256_mul_ps(load_f16(acc16 + d), m));
        } else {
            vs = expf(sc - M);
        }
        const __m256 w = _mm256_set1_ps(vs);
        for (int d = 0; d < hv; d += 8) store_f16(acc16 + d, _mm256_fmadd_ps(load_f16(vr + d), w, load_f16(acc16 + d)));
        S = fmaf(S, ms, vs);
    }
    for (int d = 0; d < hv; d += 8) _mm256_storeu_ps(acc + d, load_f16(acc16 + d));
    *M_out = M;
    *S_out = S;
}

void sf_attention_head_avx2(const sf_attn_args *a, const float *q, int kh, int lo, int p, float *work, float *out) {
    const int hk = a->head_dim_k, hv = a->head_dim_v;
    float *qh = work, *acc = qh + hk, *part = acc + hv;
    sf_fp16 *acc16 = (sf_fp16 *)(part + hv);
    for (int d = 0; d < hk; d += 8) _mm256_storeu_ps(qh + d, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(q + d), 0)));
    if (a->split_chunk <= 0) {
        float M, S;
        vec_chunk(a, qh, kh, lo, p + 1, acc, acc16, &M, &S);
        const __m256 inv = _mm256_set1_ps(S == 0.0f ? 0.0f : 1.0f / S);
        for (int d = 0; d < hv; d += 8) _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_loadu_ps(acc + d), inv));
        return;
    }
    const int n_kv = ((p + 1 + 255) / 256) * 256, cs = a->split_chunk;
    float Mf = -INFINITY, Sf = 0.0f;
    memset(acc, 0, sizeof(float) * (size_t)hv);
    for (int c0 = 0; c0 < n_kv; c0 += cs) {
        const int b0 = c0 > lo ? c0 : lo, b1 = c0 + cs < p + 1 ? c0 + cs : p + 1;
        if (b0 >= b1) continue;
        float Mc, Sc;
        vec_chunk(a, qh, kh, b0, b1, part, acc16, &Mc, &Sc);
        if (Sc == 0.0f) continue;
        const float Mn = fmaxf(Mf, Mc), so = expf(Mf - Mn), sn = expf(Mc - Mn);
        const __m256 vso = _mm256_set1_ps(so), vsn = _mm256_set1_ps(sn);
        for (int d = 0; d < hv; d += 8)
            _mm256_storeu_ps(acc + d, _mm256_fmadd_ps(_mm256_loadu_ps(acc + d), vso,
                                                      _mm256_mul_ps(_mm256_loadu_ps(part + d), vsn)));
        Sf = fmaf(Sf, so, Sc * sn);
        Mf = Mn;
    }
    const __m256 inv = _mm256_set1_ps(Sf != 0.0f ? 1.0f / Sf : 1.0f);
    for (int d = 0; d < hv; d += 8) _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_loadu_ps(acc + d), inv));
}

/* -------------------------------------------------------------- TILED */

enum { KV_TILE = 64 };

void sf_attention_tiled_avx2(const sf_attn_args *a, const sf_attn_item *it, float *work) {
    const int hk = a->head_dim_k, hv = a->head_dim_v;
    const int n_rows = (it->t1 - it->t0) * it->n_h;
    float *Kt = work;                       /* [hk][KV_TILE] the tile's keys, transposed, f32 */
    float *Vt = Kt + (size_t)hk * KV_TILE;  /* [KV_TILE][hv] the tile's values, f32 */
    float *acc = Vt + (size_t)KV_TILE * hv; /* [n_rows][hv] unnormalized outputs */
    float *Ms = acc + (size_t)n_rows * hv;  /* [n_rows] running max */
    float *Ss = Ms + n_rows;                /* [n_rows] running sum */
    float *kq = Ss + n_rows;                /* [KV_TILE] one row's scores, then exps */

    int lo_min = 1 << 30, p_max = -1;
    for (int t = it->t0; t < it->t1; t++) {
        const int p = it->cell[t], lo = it->lo[t];
        lo_min = lo < lo_min ? lo : lo_min;
        p_max = p > p_max ? p : p_max;
    }
    memset(acc, 0, sizeof(float) * (size_t)n_rows * hv);
    for (int r = 0; r < n_rows; r++) {
        Ms[r] = -INFINITY;
        Ss[r] = 0.0f;
    }
    const __m256 scale = _mm256_set1_ps(a->scale);
    for (int t0 = lo_min & ~(KV_TILE - 1); t0 <= p_max; t0 += KV_TILE) {
        const int c0 = t0 > lo_min ? t0 : lo_min, c1 = t0 + KV_TILE < p_max + 1 ? t0 + KV_TILE : p_max + 1;
        memset(Kt, 0, sizeof(float) * (size_t)hk * KV_TILE);
        for (int s = c0; s < c1; s++) {
            const sf_fp16 *kr = a->k + ((size_t)s * a->kv_stride + it->kh) * hk;
            const sf_fp16 *vr = a->v + ((size_t)s * a->kv_stride + it->kh) * hv;
            for (int e = 0; e < hk; e++) Kt[(size_t)e * KV_TILE + (s - t0)] = sf_attn_f16_table[kr[e]];
            for (int d = 0; d < hv; d += 8) _mm256_storeu_ps(Vt + (size_t)(s - t0) * hv + d, load_f16(vr + d));
        }
        for (int t = it->t0; t < it->t1; t++) {
            const int p = it->cell[t], lo = it->lo[t];
            const int a0 = t0 > lo ? t0 : lo, a1 = t0 + KV_TILE < p + 1 ? t0 + KV_TILE : p + 1;
            if (a0 >= a1) continue; /* no visible key in this tile */
            for (int h = 0; h < it->n_h; h++) {
                const int row = (t - it->t0) * it->n_h + h;
                const float *q = it->q + (size_t)t * it->q_stride + (size_t)(it->h0 + h) * hk;
                /* scores: lane = cell, one FMA chain over the head dim per cell (simd_gemm) */
                __m256 s8[KV_TILE / 8];
                for (int r = 0; r < KV_TILE / 8; r++) s8[r] = _mm256_setzero_ps();
                for (int e = 0; e < hk; e++) {
                    const __m256 qb = _mm256_set1_ps(q[e]);
                    const float *kt = Kt + (size_t)e * KV_TILE;
                    for (int r = 0; r < KV_TILE / 8; r++) s8[r] = _mm256_fmadd_ps(qb, _mm256_loadu_ps(kt + 8 * r), s8[r]);
                }
                for (int r = 0; r < KV_TILE / 8; r++) _mm256_storeu_ps(kq + 8 * r, _mm256_mul_ps(s8[r], scale));
                float tmax = -INFINITY;
                for (int s = a0; s < a1; s++) tmax = kq[s - t0] > tmax ? kq[s - t0] : tmax;
                const float Mnew = fmaxf(Ms[row], tmax);
                float *ar = acc + (size_t)row * hv;
                if (Mnew > Ms[row]) {
                    const float ms = expf(Ms[row] - Mnew);
                    const __m256 m = _mm256_set1_ps(ms);
                    for (int d = 0; d < hv; d += 8) _mm256_storeu_ps(ar + d, _mm256_mul_ps(_mm256_loadu_ps(ar + d), m));
                    Ss[row] *= ms;
                }
                Ms[row] = Mnew;
                /* ggml_vec_soft_max_f32 over the tile: masked cells give 0 */
                const __m256 mv = _mm256_set1_ps(Mnew);
                double sum = 0.0;
                for (int b = 0; b < KV_TILE; b += 16) {
                    __m256 e[2];
                    for (int hlf = 0; hlf < 2; hlf++) {
                        const int base = t0 + b + 8 * hlf;
                        const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(base), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                        const __m256i vis = _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(a0 - 1)),
                                                             _mm256_cmpgt_epi32(_mm256_set1_epi32(a1), idx));
                        const __m256 x = _mm256_sub_ps(_mm256_loadu_ps(kq + b + 8 * hlf), mv);
                        e[hlf] = _mm256_and_ps(sf_v_expf(x), _mm256_castsi256_ps(vis));
                        _mm256_storeu_ps(kq + b + 8 * hlf, e[hlf]);
                    }
                    sum += (double)reduce16(e[0], e[1]);
                }
                Ss[row] = (float)((double)Ss[row] + sum);
                /* P·V: lane = output dim, one FMA chain over the tile's cells */
                for (int d0 = 0; d0 < hv; d0 += 32) {
                    const int nd = hv - d0 < 32 ? (hv - d0) / 8 : 4;
                    __m256 o[4];
                    for (int r = 0; r < nd; r++) o[r] = _mm256_loadu_ps(ar + d0 + 8 * r);
                    for (int s = a0; s < a1; s++) {
                        const __m256 w = _mm256_set1_ps(kq[s - t0]);
                        const float *vrow = Vt + (size_t)(s - t0) * hv + d0;
                        for (int r = 0; r < nd; r++) o[r] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vrow + 8 * r), o[r]);
                    }
                    for (int r = 0; r < nd; r++) _mm256_storeu_ps(ar + d0 + 8 * r, o[r]);
                }
            }
        }
    }
    for (int t = it->t0; t < it->t1; t++)
        for (int h = 0; h < it->n_h; h++) {
            const int row = (t - it->t0) * it->n_h + h;
            const __m256 inv = _mm256_set1_ps(Ss[row] == 0.0f ? 0.0f : 1.0f / Ss[row]);
            float *o = it->out + (size_t)t * it->out_stride + (size_t)(it->h0 + h) * hv;
            for (int d = 0; d < hv; d += 8)
                _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_loadu_ps(acc + (size_t)row * hv + d), inv));
        }
}
#endif
