/* The attention head kernel, included by attention.c (portable build) and
 * attention_avx2.c (built with FMA/F16C, where fmaf is one instruction):
 * one source, two compilations, identical results (fmaf is exact either way).
 * The includer defines SF_ATTN_NAME and provides F16() and sf_ggml_expf. */
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

/* ggml_vec_dot_f16 (AVX-512): 4 accumulators of 16 lanes over 64-value steps,
 * combined (0+2, 1+3, then 0+1), reduced, then leftovers added in double. */
static inline float dot_decode(const float *a, const sf_fp16 *b, int n) {
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

/* tinyBLAS (llamafile sgemm, AVX-512): one 16-lane FMA accumulator. */
static inline float dot_batched(const float *a, const sf_fp16 *b, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] = fmaf(a[i + l], F16(b[i + l]), acc[l]);
    float s = reduce16(acc);
    for (; i < n; i++) s += a[i] * F16(b[i]); /* not reached for head dims % 16 == 0 */
    return s;
}

void SF_ATTN_NAME(const sf_attn_args *a, const float *q, int kh, int lo, int p, float *scores, float *qh,
                       float *out) {
    const int hk = a->head_dim_k, hv = a->head_dim_v;
    for (int d = 0; d < hk; d++) qh[d] = sf_fp16_to_fp32(sf_fp32_to_fp16(q[d]));

    /* scores, indexed from the 16-aligned block start so block sums line up
     * with ggml's (which runs over the whole padded KV row) */
    const int base = lo & ~15;
    float mx = -INFINITY;
    for (int s = lo; s <= p; s++) {
        const sf_fp16 *kr = a->k + ((size_t)s * a->kv_stride + kh) * hk;
        const float dot = a->batched ? dot_batched(qh, kr, hk) : dot_decode(qh, kr, hk);
        const float w = dot * a->scale;
        scores[s - base] = w;
        mx = w > mx ? w : mx;
    }
    for (int s = base; s < lo; s++) scores[s - base] = 0.0f;
    const int end = ((p + 16) & ~15); /* exclusive, block aligned */
    for (int s = p + 1; s < end; s++) scores[s - base] = 0.0f;
    double sum = 0.0;
    for (int blk = base; blk < end; blk += 16) {
        float *v = scores + (blk - base);
        for (int l = 0; l < 16; l++) {
            const int s = blk + l;
            v[l] = (s >= lo && s <= p) ? sf_ggml_expf(v[l] - mx) : 0.0f;
        }
        sum += (double)reduce16(v);
    }
    const float inv = (float)(1.0 / sum);
    for (int s = lo; s <= p; s++) /* probabilities, rounded to f16 for the V product */
        scores[s - base] = sf_fp16_to_fp32(sf_fp32_to_fp16(scores[s - base] * inv));

    /* out[d] = Σ_s P[s] · V[s][d], in the same accumulator shapes over s.
     * s runs outermost so V rows are read contiguously; each (d, lane)
     * accumulator still sees its terms in increasing s, as in ggml. */
    enum { MAX_HV = 256 };
    if (hv <= MAX_HV) {
        float acc[4][MAX_HV][16]; /* [register][d][lane] */
        const int regs = a->batched ? 1 : 4;
        for (int r = 0; r < regs; r++) memset(acc[r], 0, sizeof(float) * 16 * (size_t)hv);
        for (int s = lo; s <= p; s++) {
            const float w = scores[s - base];
            const sf_fp16 *vr = a->v + ((size_t)s * a->kv_stride + kh) * hv;
            float (*A)[16] = acc[a->batched ? 0 : (s >> 4) & 3];
            const int l = s & 15;
            for (int d = 0; d < hv; d++) A[d][l] = fmaf(w, F16(vr[d]), A[d][l]);
        }
        for (int d = 0; d < hv; d++) {
            if (!a->batched)
                for (int l = 0; l < 16; l++) {
                    acc[0][d][l] += acc[2][d][l];
                    acc[1][d][l] += acc[3][d][l];
                    acc[0][d][l] += acc[1][d][l];
                }
            out[d] = reduce16(acc[0][d]);
        }
        return;
    }
    for (int d = 0; d < hv; d++) {
        float acc4[4][16] = {{0}};
        for (int s = lo; s <= p; s++) {
            const float vv = F16(a->v[((size_t)s * a->kv_stride + kh) * hv + d]);
            float *A = acc4[a->batched ? 0 : (s >> 4) & 3];
            A[s & 15] = fmaf(scores[s - base], vv, A[s & 15]);
        }
        if (!a->batched)
            for (int l = 0; l < 16; l++) {
                acc4[0][l] += acc4[2][l];
                acc4[1][l] += acc4[3][l];
                acc4[0][l] += acc4[1][l];
            }
        out[d] = reduce16(acc4[0]);
    }
}
