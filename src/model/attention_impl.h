/* The portable attention kernels (included once, by attention.c): the
 * reference for the AVX2 ones in attention_avx2.c, and what runs without AVX2.
 *
 * Each function mirrors one piece of ggml-cpu's flash attention
 * (ggml_compute_forward_flash_attn_ext_f16 and friends, AVX-512 build); the
 * comments name the ggml code whose rounding they reproduce. */
#include <math.h>
#include <string.h>

#include "model/attention.h"

extern float sf_attn_f16_table[1 << 16];
#define F16(x) sf_attn_f16_table[(x)]

/* _mm512_reduce_add_ps: 16 -> 8 -> 4 -> 2 -> 1, pairing lanes i and i + half. */
static inline float reduce16(const float *v) {
    float t8[8], t4[4];
    for (int i = 0; i < 8; i++) t8[i] = v[i] + v[i + 8];
    for (int i = 0; i < 4; i++) t4[i] = t8[i] + t8[i + 4];
    return (t4[0] + t4[2]) + (t4[1] + t4[3]);
}

/* ggml_vec_dot_f16 (AVX-512 without FP16 arithmetic): 4 accumulators of 16
 * lanes over 64-value steps, combined (0+2, 1+3, then 0+1), reduced, then
 * leftovers added in double. a holds f16-rounded values as floats. */
static inline float dot_f16(const float *a, const sf_fp16 *b, int n) {
    float sum[4][16] = {{0}};
    const int np = n & ~63;
    for (int i = 0; i < np; i += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++) {
                const int e = i + 16 * j + l;
                sum[j][l] = fmaf(a[e], F16(b[e]), sum[j][l]);
            }
    for (int l = 0; l < 16; l++) {
        sum[0][l] += sum[2][l];
        sum[1][l] += sum[3][l];
        sum[0][l] += sum[1][l];
    }
    double s = reduce16(sum[0]);
    for (int i = np; i < n; i++) s += (double)(a[i] * F16(b[i]));
    return (float)s;
}

/* ggml_compute_forward_flash_attn_ext_f16_one_chunk over key cells
 * [c0, c1) ∩ [lo, p]: online softmax, V accumulated in f16 (ggml_vec_mad_f16,
 * ggml_vec_scale_f16). Leaves the unnormalized f32 accumulator in acc and the
 * running max and sum in *M, *S (-inf and 0 when no key is visible). */
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
        if (sc > M) { /* new maximum: rescale what was accumulated */
            const float Mold = M;
            M = sc;
            ms = expf(Mold - M);
            for (int d = 0; d < hv; d++) acc16[d] = SF_ATTN_TO_F16(F16(acc16[d]) * ms);
        } else {
            vs = expf(sc - M);
        }
        for (int d = 0; d < hv; d++) acc16[d] = SF_ATTN_TO_F16(fmaf(F16(vr[d]), vs, F16(acc16[d])));
        S = fmaf(S, ms, vs); /* S = S*ms + vs, contracted by the compiler */
    }
    for (int d = 0; d < hv; d++) acc[d] = F16(acc16[d]);
    *M_out = M;
    *S_out = S;
}

static void path_vec(const sf_attn_args *a, const float *q, int kh, int lo, int p, float *work, float *out) {
    const int hk = a->head_dim_k, hv = a->head_dim_v;
    float *qh = work, *acc = qh + hk, *part = acc + hv;
    sf_fp16 *acc16 = (sf_fp16 *)(part + hv);
    for (int d = 0; d < hk; d++) qh[d] = F16(SF_ATTN_TO_F16(q[d])); /* q_to_vec_dot: f32 -> f16 */

    if (a->split_chunk <= 0) {
        float M, S;
        vec_chunk(a, qh, kh, lo, p + 1, acc, acc16, &M, &S);
        const float inv = S == 0.0f ? 0.0f : 1.0f / S;
        for (int d = 0; d < hv; d++) out[d] = acc[d] * inv;
        return;
    }
    /* split-KV decode: one chunk of cells per thread, then
     * ggml_flash_attn_ext_reduce_partials merges them in chunk order */
    const int n_kv = ((p + 1 + 255) / 256) * 256, cs = a->split_chunk;
    float Mf = -INFINITY, Sf = 0.0f;
    memset(acc, 0, sizeof(float) * (size_t)hv);
    for (int c0 = 0; c0 < n_kv; c0 += cs) {
        const int b0 = c0 > lo ? c0 : lo, b1 = c0 + cs < p + 1 ? c0 + cs : p + 1;
        if (b0 >= b1) continue; /* no visible key: S == 0, skipped */
        float Mc, Sc;
        vec_chunk(a, qh, kh, b0, b1, part, acc16, &Mc, &Sc);
        if (Sc == 0.0f) continue;
        const float Mn = fmaxf(Mf, Mc), so = expf(Mf - Mn), sn = expf(Mc - Mn);
        for (int d = 0; d < hv; d++) acc[d] = fmaf(acc[d], so, part[d] * sn);
        Sf = fmaf(Sf, so, Sc * sn);
        Mf = Mn;
    }
    const float inv = Sf != 0.0f ? 1.0f / Sf : 1.0f;
    for (int d = 0; d < hv; d++) out[d] = acc[d] * inv;
}

/* ggml_compute_forward_flash_attn_ext_tiled for one query row: KV tiles of 64
 * cells aligned to cell 0; a tile with no visible key is skipped. */
static void path_tiled(const sf_attn_args *a, const float *q, int kh, int lo, int p, float *work, float *out) {
    enum { KV_TILE = 64 };
    const int hk = a->head_dim_k, hv = a->head_dim_v;
    float *kq = work, *acc = kq + KV_TILE;
    memset(acc, 0, sizeof(float) * (size_t)hv);
    float M = -INFINITY, S = 0.0f;
    for (int t0 = lo & ~(KV_TILE - 1); t0 <= p; t0 += KV_TILE) {
        const int a0 = t0 > lo ? t0 : lo, a1 = t0 + KV_TILE < p + 1 ? t0 + KV_TILE : p + 1;
        float tmax = -INFINITY;
        for (int s = a0; s < a1; s++) { /* simd_gemm: one FMA chain over the head dim */
            const sf_fp16 *kr = a->k + ((size_t)s * a->kv_stride + kh) * hk;
            float d = 0.0f;
            for (int e = 0; e < hk; e++) d = fmaf(q[e], F16(kr[e]), d);
            kq[s - t0] = d * a->scale;
            tmax = kq[s - t0] > tmax ? kq[s - t0] : tmax;
        }
        const float Mnew = fmaxf(M, tmax);
        if (Mnew > M) {
            const float ms = expf(M - Mnew);
            for (int d = 0; d < hv; d++) acc[d] *= ms;
            S *= ms;
        }
        M = Mnew;
        /* ggml_vec_soft_max_f32 over the whole tile (masked cells give 0) */
        double sum = 0.0;
        for (int b = 0; b < KV_TILE; b += 16) {
            for (int l = 0; l < 16; l++) {
                const int s = t0 + b + l;
                kq[b + l] = (s >= a0 && s < a1) ? sf_ggml_expf(kq[b + l] - Mnew) : 0.0f;
            }
            sum += (double)reduce16(kq + b);
        }
        S = (float)((double)S + sum);
        for (int s = a0; s < a1; s++) { /* simd_gemm: FMA chain over the tile's cells */
            const sf_fp16 *vr = a->v + ((size_t)s * a->kv_stride + kh) * hv;
            const float w = kq[s - t0];
            for (int d = 0; d < hv; d++) acc[d] = fmaf(w, F16(vr[d]), acc[d]);
        }
    }
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int d = 0; d < hv; d++) out[d] = acc[d] * inv;
}

void sf_attention_head_generic(const sf_attn_args *a, const float *q, int kh, int lo, int p, float *work,
                               float *out) {
    pthread_once(&g_table_once, table_init);
    path_vec(a, q, kh, lo, p, work, out);
}

void sf_attention_tiled_generic(const sf_attn_args *a, const sf_attn_item *it, float *work) {
    pthread_once(&g_table_once, table_init);
    for (int t = it->t0; t < it->t1; t++) {
        const int p = it->cell[t], lo = it->lo[t];
        for (int h = it->h0; h < it->h0 + it->n_h; h++)
            path_tiled(a, it->q + (size_t)t * it->q_stride + (size_t)h * a->head_dim_k, it->kh, lo, p, work,
                       it->out + (size_t)t * it->out_stride + (size_t)h * a->head_dim_v);
    }
}
