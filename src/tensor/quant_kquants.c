/* Scalar reference kernels for the K-quants (256-value super-blocks):
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (weights) and Q8_K (activations).
 *
 * Layouts and formulas: docs/reference/gguf-and-engine.md section 3.3.
 * Dequantizers and dot products follow ggml's dequantize_row_* and
 * ggml_vec_dot_*_q8_K_generic (integer sums per sub-block, scaled once per
 * super-block); quantize_q8_K reproduces ggml's quantize_row_q8_K_ref.
 *
 * The weight quantizers are sparsefuse's own simple deterministic ones: a
 * least-squares scale (and min) search per sub-block (no importance matrix;
 * Q2_K weighs each value by |x|), then the sub-block scales quantized against
 * one super-block scale and the values re-rounded with the scales actually
 * stored. They serve tests and synthetic models, not model files: their
 * bytes differ from ggml's quantize_row_*_K_ref, their errors are of the same
 * order (within ggml's test-quantize-fns bounds).
 *
 * Blocks are copied into local structs with memcpy (rows may be unaligned). */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "tensor/blocks.h"
#include "tensor/quant_ref.h"
#include "tensor/types.h"

#define QK_K SF_QK_K

/* nearest integer of v clamped to [lo, hi]; NaN gives lo */
static int round_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return sf_nearest_int(v);
}

/* 6-bit scale and min of sub-block j (0..7) of Q4_K / Q5_K (get_scale_min_k4). */
static void get_scale_min_k4(int j, const uint8_t b[12], int *sc, int *m) {
    if (j < 4) {
        *sc = b[j] & 63;
        *m = b[j + 4] & 63;
    } else {
        *sc = (b[j + 4] & 0x0F) | ((b[j - 4] >> 6) << 4);
        *m = (b[j + 4] >> 4) | ((b[j] >> 6) << 4);
    }
}

static void put_scale_min_k4(uint8_t b[12], const uint8_t sc[8], const uint8_t m[8]) {
    memset(b, 0, 12);
    for (int j = 0; j < 4; j++) {
        b[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        b[j + 4] = (uint8_t)(m[j] | ((m[j + 4] >> 4) << 6));
        b[j + 8] = (uint8_t)((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4));
    }
}

/* Signed 6-bit scale s (0..15) of Q3_K: stored value - 32, in -32..31. */
static int get_scale_q3_K(int s, const uint8_t b[12]) {
    const int low4 = s < 8 ? (b[s] & 0x0F) : (b[s - 8] >> 4);
    const int high2 = (b[8 + (s & 3)] >> (2 * (s / 4))) & 3;
    return (low4 | (high2 << 4)) - 32;
}

/* ------------------------------------------------- weight-quantizer helpers */

/* Weighted least-squares (scale, off) for x ≈ scale*L + off with off <= 0;
 * weights |x| when `weighted` (else 1). Returns the weighted squared error. */
static double lsq_affine(int n, const float *x, const uint8_t *L, bool weighted, float *scale,
                         float *off) {
    double sw = 0, sl = 0, sll = 0, sx = 0, slx = 0;
    for (int i = 0; i < n; i++) {
        const double w = weighted ? fabsf(x[i]) : 1.0;
        sw += w;
        sl += w * L[i];
        sll += w * L[i] * L[i];
        sx += w * x[i];
        slx += w * L[i] * x[i];
    }
    const double det = sw * sll - sl * sl;
    double s = 0, o = sw > 0 ? sx / sw : 0;
    if (det > 0) {
        s = (sw * slx - sl * sx) / det;
        o = (sx - s * sl) / sw;
    }
    if (o > 0) { /* the format can only subtract a min */
        o = 0;
        s = sll > 0 ? slx / sll : 0;
    }
    if (s < 0) s = 0;
    *scale = (float)s;
    *off = (float)o;
    double err = 0;
    for (int i = 0; i < n; i++) {
        const double e = (double)*scale * L[i] + *off - x[i];
        err += (weighted ? fabsf(x[i]) : 1.0) * e * e;
    }
    return err;
}

/* Fits x[0..n) ≈ scale*L - min, L in 0..nmax, scale >= 0, min >= 0: tries a
 * range of grid spacings around (max - min)/nmax, then re-rounds with the best
 * fit until the error stops falling. Returns scale, sets *min_out.
 * `weighted` weighs each value by |x| (used for Q2_K: plain least squares
 * shrinks 2-bit blocks toward zero enough to bias dot products). */
static float fit_affine(int n, int nmax, const float *x, bool weighted, uint8_t *L,
                        float *min_out) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    if (lo > 0) lo = 0;
    memset(L, 0, (size_t)n);
    if (!(hi > lo)) { /* constant block (or NaN): everything is the min */
        *min_out = lo == lo ? -lo : 0.0f;
        return 0.0f;
    }
    uint8_t cand[32]; /* n <= 32 */
    double best = INFINITY;
    float best_s = 0, best_o = 0;
    for (int k = -5; k <= 10; k++) {
        const float iscale = (nmax + 0.1f * k) / (hi - lo);
        for (int i = 0; i < n; i++) cand[i] = (uint8_t)round_clamp(iscale * (x[i] - lo), 0, nmax);
        float s, o;
        const double err = lsq_affine(n, x, cand, weighted, &s, &o);
        if (err < best) {
            best = err, best_s = s, best_o = o;
            memcpy(L, cand, (size_t)n);
        }
    }
    for (int it = 0; it < 8 && best_s > 0; it++) {
        for (int i = 0; i < n; i++) cand[i] = (uint8_t)round_clamp((x[i] - best_o) / best_s, 0, nmax);
        float s, o;
        const double err = lsq_affine(n, x, cand, weighted, &s, &o);
        if (!(err < best)) break;
        best = err, best_s = s, best_o = o;
        memcpy(L, cand, (size_t)n);
    }
    *min_out = -best_o;
    return best_s;
}

/* Squared error of the least-squares scale for fixed L (x ≈ scale*L). */
static double lsq_symmetric(int n, const float *x, const int8_t *L, float *scale) {
    double slx = 0, sll = 0;
    for (int i = 0; i < n; i++) {
        slx += (double)L[i] * x[i];
        sll += (double)L[i] * L[i];
    }
    *scale = sll > 0 ? (float)(slx / sll) : 0.0f;
    double err = 0;
    for (int i = 0; i < n; i++) {
        const double e = (double)*scale * L[i] - x[i];
        err += e * e;
    }
    return err;
}

/* Fits x[0..n) ≈ scale*L, L in -nneg..nneg-1. The value of largest |x| maps
 * near the -nneg end (the wider side), so scale takes the opposite sign of
 * that value. Grid of spacings, then re-rounding with the best scale until
 * the error stops falling. Returns the signed scale. */
static float fit_symmetric(int n, int nneg, const float *x, int8_t *L) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    memset(L, 0, (size_t)n);
    if (!(amax > 0) || !isfinite(amax)) return 0.0f;
    int8_t cand[16]; /* n <= 16 */
    double best = INFINITY;
    float best_s = 0;
    for (int k = -6; k <= 6; k++) {
        const float iscale = -(nneg + 0.1f * k) / max;
        for (int i = 0; i < n; i++) cand[i] = (int8_t)round_clamp(iscale * x[i], -nneg, nneg - 1);
        float s;
        const double err = lsq_symmetric(n, x, cand, &s);
        if (err < best) {
            best = err, best_s = s;
            memcpy(L, cand, (size_t)n);
        }
    }
    for (int it = 0; it < 8 && best_s != 0; it++) {
        for (int i = 0; i < n; i++) cand[i] = (int8_t)round_clamp(x[i] / best_s, -nneg, nneg - 1);
        float s;
        const double err = lsq_symmetric(n, x, cand, &s);
        if (!(err < best)) break;
        best = err, best_s = s;
        memcpy(L, cand, (size_t)n);
    }
    return best_s;
}

/* Signed value of largest magnitude among v[0..n) (first one wins). */
static float signed_max(int n, const float *v) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(v[i]) > amax) {
            amax = fabsf(v[i]);
            max = v[i];
        }
    }
    return max;
}

/* ------------------------------------------------------------------ Q2_K */

void sf_ref_dequantize_q2_K(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/256] blocks of 84 bytes */
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        sf_block_q2_K b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        const float d = sf_fp16_to_fp32(b.d), dmin = sf_fp16_to_fp32(b.dmin);
        /* element e = 128h + 32j + 16k + l, sub-block s = e / 16 */
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, j = (e / 32) % 4, kl = e % 32, s = e / 16;
            const int q = (b.qs[32 * h + kl] >> (2 * j)) & 3;
            const float dl = d * (b.scales[s] & 0x0F), ml = dmin * (b.scales[s] >> 4);
            dst[e] = dl * q - ml;
        }
    }
}

void sf_ref_quantize_q2_K(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        uint8_t L[QK_K];
        float scales[16], mins[16], max_s = 0, max_m = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_affine(16, 3, x + 16 * j, true, L + 16 * j, &mins[j]);
            if (scales[j] > max_s) max_s = scales[j];
            if (mins[j] > max_m) max_m = mins[j];
        }
        sf_block_q2_K b;
        memset(&b, 0, sizeof b);
        const float d = max_s / 15, dmin = max_m / 15;
        for (int j = 0; j < 16; j++) {
            const int sc = max_s > 0 ? round_clamp(scales[j] / d, 0, 15) : 0;
            const int m = max_m > 0 ? round_clamp(mins[j] / dmin, 0, 15) : 0;
            b.scales[j] = (uint8_t)(sc | (m << 4));
        }
        b.d = sf_fp32_to_fp16(max_s > 0 ? d : 0.0f);
        b.dmin = sf_fp32_to_fp16(max_m > 0 ? dmin : 0.0f);
        const float dq = sf_fp16_to_fp32(b.d), dmq = sf_fp16_to_fp32(b.dmin);
        for (int j = 0; j < 16; j++) { /* re-round with the stored scales */
            const float ds = dq * (b.scales[j] & 0x0F), dm = dmq * (b.scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)(ds > 0 ? round_clamp((x[16 * j + l] + dm) / ds, 0, 3) : 0);
        }
        for (int e = 0; e < QK_K; e++)
            b.qs[32 * (e / 128) + e % 32] |= (uint8_t)(L[e] << (2 * ((e / 32) % 4)));
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

float sf_ref_vec_dot_q2_K(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* Q2_K and Q8_K blocks */
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        sf_block_q2_K x;
        sf_block_q8_K y;
        memcpy(&x, pw + i * sizeof x, sizeof x);
        memcpy(&y, pa + i * sizeof y, sizeof y);
        int summs = 0, isum = 0;
        for (int s = 0; s < 16; s++) {
            summs += y.bsums[s] * (x.scales[s] >> 4);
            int isuml = 0;
            for (int e = 16 * s; e < 16 * s + 16; e++) {
                const int q = (x.qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
                isuml += y.qs[e] * q;
            }
            isum += (x.scales[s] & 0x0F) * isuml;
        }
        const float dall = y.d * sf_fp16_to_fp32(x.d);
        const float dmin = y.d * sf_fp16_to_fp32(x.dmin);
        sumf += dall * isum - dmin * summs;
    }
    return sumf;
}

/* ------------------------------------------------------------------ Q3_K */

/* q (-4..3) of element e = 128h + 32j + 16k + l */
static inline int q3_K_value(const sf_block_q3_K *b, int e) {
    const int h = e / 128, j = (e / 32) % 4, kl = e % 32;
    const int low2 = (b->qs[32 * h + kl] >> (2 * j)) & 3;
    const int hbit = (b->hmask[kl] >> (4 * h + j)) & 1;
    return low2 - (hbit ? 0 : 4);
}

void sf_ref_dequantize_q3_K(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/256] blocks of 110 bytes */
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        sf_block_q3_K b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        const float d = sf_fp16_to_fp32(b.d);
        for (int s = 0; s < 16; s++) {
            const float dl = d * get_scale_q3_K(s, b.scales);
            for (int e = 16 * s; e < 16 * s + 16; e++) dst[e] = dl * q3_K_value(&b, e);
        }
    }
}

void sf_ref_quantize_q3_K(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        int8_t L[QK_K];
        float scales[16];
        for (int j = 0; j < 16; j++) scales[j] = fit_symmetric(16, 4, x + 16 * j, L + 16 * j);
        const float max_s = signed_max(16, scales);
        const float iscale = max_s != 0 ? -32 / max_s : 0.0f;
        sf_block_q3_K b;
        memset(&b, 0, sizeof b);
        b.d = sf_fp32_to_fp16(max_s != 0 ? 1 / iscale : 0.0f);
        const float dq = sf_fp16_to_fp32(b.d);
        for (int j = 0; j < 16; j++) {
            const int sc = max_s != 0 ? round_clamp(iscale * scales[j], -32, 31) : 0;
            const int v = sc + 32; /* stored 6-bit value */
            b.scales[j < 8 ? j : j - 8] |= (uint8_t)((v & 0x0F) << (j < 8 ? 0 : 4));
            b.scales[8 + (j & 3)] |= (uint8_t)((v >> 4) << (2 * (j / 4)));
            const float ds = dq * sc;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(ds != 0 ? round_clamp(x[16 * j + l] / ds, -4, 3) : 0);
        }
        for (int e = 0; e < QK_K; e++) {
            const int u = L[e] + 4, h = e / 128, j = (e / 32) % 4, kl = e % 32;
            b.qs[32 * h + kl] |= (uint8_t)((u & 3) << (2 * j));
            b.hmask[kl] |= (uint8_t)((u >> 2) << (4 * h + j));
        }
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

float sf_ref_vec_dot_q3_K(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* Q3_K and Q8_K blocks */
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        sf_block_q3_K x;
        sf_block_q8_K y;
        memcpy(&x, pw + i * sizeof x, sizeof x);
        memcpy(&y, pa + i * sizeof y, sizeof y);
        int isum = 0;
        for (int s = 0; s < 16; s++) {
            int isuml = 0;
            for (int e = 16 * s; e < 16 * s + 16; e++) isuml += y.qs[e] * q3_K_value(&x, e);
            isum += get_scale_q3_K(s, x.scales) * isuml;
        }
        sumf += (sf_fp16_to_fp32(x.d) * y.d) * isum;
    }
    return sumf;
}

/* ----------------------------------------------------------- Q4_K / Q5_K */

/* Low 4 bits of element e = 64c + 32t + l: qs[32c + l], low nibble if t == 0. */
static inline int q4_K_low(const uint8_t *qs, int e) {
    const uint8_t byte = qs[32 * (e / 64) + e % 32];
    return (e / 32) % 2 ? byte >> 4 : byte & 0x0F;
}

/* Shared body of the Q4_K / Q5_K dequantizers; qh is NULL for Q4_K. */
static void dequantize_k4(const sf_fp16 dd, const sf_fp16 dmin_h, const uint8_t scales[12],
                          const uint8_t *qh, const uint8_t *qs, float *dst) {
    const float d = sf_fp16_to_fp32(dd), min = sf_fp16_to_fp32(dmin_h);
    for (int s = 0; s < 8; s++) { /* sub-block s = 2c + t covers e = 32s .. 32s+31 */
        int sc, m;
        get_scale_min_k4(s, scales, &sc, &m);
        const float d1 = d * sc, m1 = min * m;
        for (int e = 32 * s; e < 32 * s + 32; e++) {
            const int q = q4_K_low(qs, e) + (qh && ((qh[e % 32] >> s) & 1) ? 16 : 0);
            dst[e] = d1 * q - m1;
        }
    }
}

/* Shared body of the Q4_K / Q5_K dot products with Q8_K. */
static float vec_dot_k4(const sf_fp16 dd, const sf_fp16 dmin_h, const uint8_t scales[12],
                        const uint8_t *qh, const uint8_t *qs, const sf_block_q8_K *y) {
    int isum = 0, summs = 0;
    for (int s = 0; s < 8; s++) {
        int sc, m;
        get_scale_min_k4(s, scales, &sc, &m);
        summs += (y->bsums[2 * s] + y->bsums[2 * s + 1]) * m;
        int isuml = 0;
        for (int e = 32 * s; e < 32 * s + 32; e++) {
            const int q = q4_K_low(qs, e) + (qh && ((qh[e % 32] >> s) & 1) ? 16 : 0);
            isuml += y->qs[e] * q;
        }
        isum += sc * isuml;
    }
    const float d = sf_fp16_to_fp32(dd) * y->d, dmin = sf_fp16_to_fp32(dmin_h) * y->d;
    return d * isum - dmin * summs;
}

/* Shared body of the Q4_K / Q5_K quantizers (nmax 15 or 31). Writes d, dmin,
 * scales and L[256] (the values 0..nmax); the caller packs L. */
static void quantize_k4(const float *x, int nmax, sf_fp16 *dd, sf_fp16 *dmin_h,
                        uint8_t scales[12], uint8_t L[QK_K]) {
    float sub_s[8], sub_m[8], max_s = 0, max_m = 0;
    for (int j = 0; j < 8; j++) {
        sub_s[j] = fit_affine(32, nmax, x + 32 * j, false, L + 32 * j, &sub_m[j]);
        if (sub_s[j] > max_s) max_s = sub_s[j];
        if (sub_m[j] > max_m) max_m = sub_m[j];
    }
    const float d = max_s / 63, dmin = max_m / 63;
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(max_s > 0 ? round_clamp(sub_s[j] / d, 0, 63) : 0);
        m[j] = (uint8_t)(max_m > 0 ? round_clamp(sub_m[j] / dmin, 0, 63) : 0);
    }
    put_scale_min_k4(scales, sc, m);
    *dd = sf_fp32_to_fp16(max_s > 0 ? d : 0.0f);
    *dmin_h = sf_fp32_to_fp16(max_m > 0 ? dmin : 0.0f);
    const float dq = sf_fp16_to_fp32(*dd), dmq = sf_fp16_to_fp32(*dmin_h);
    for (int j = 0; j < 8; j++) { /* re-round with the stored scales */
        const float ds = dq * sc[j], dm = dmq * m[j];
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)(ds > 0 ? round_clamp((x[32 * j + l] + dm) / ds, 0, nmax) : 0);
    }
}

void sf_ref_dequantize_q4_K(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/256] blocks of 144 bytes */
    for (int64_t i = 0; i < n / QK_K; i++) {
        sf_block_q4_K b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        dequantize_k4(b.d, b.dmin, b.scales, NULL, b.qs, dst + i * QK_K);
    }
}

void sf_ref_quantize_q4_K(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        sf_block_q4_K b;
        uint8_t L[QK_K];
        memset(&b, 0, sizeof b);
        quantize_k4(src + i * QK_K, 15, &b.d, &b.dmin, b.scales, L);
        for (int e = 0; e < QK_K; e++)
            b.qs[32 * (e / 64) + e % 32] |= (uint8_t)(L[e] << ((e / 32) % 2 ? 4 : 0));
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

float sf_ref_vec_dot_q4_K(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* Q4_K and Q8_K blocks */
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        sf_block_q4_K x;
        sf_block_q8_K y;
        memcpy(&x, pw + i * sizeof x, sizeof x);
        memcpy(&y, pa + i * sizeof y, sizeof y);
        sumf += vec_dot_k4(x.d, x.dmin, x.scales, NULL, x.qs, &y);
    }
    return sumf;
}

void sf_ref_dequantize_q5_K(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/256] blocks of 176 bytes */
    for (int64_t i = 0; i < n / QK_K; i++) {
        sf_block_q5_K b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        dequantize_k4(b.d, b.dmin, b.scales, b.qh, b.qs, dst + i * QK_K);
    }
}

void sf_ref_quantize_q5_K(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        sf_block_q5_K b;
        uint8_t L[QK_K];
        memset(&b, 0, sizeof b);
        quantize_k4(src + i * QK_K, 31, &b.d, &b.dmin, b.scales, L);
        for (int e = 0; e < QK_K; e++) {
            b.qs[32 * (e / 64) + e % 32] |= (uint8_t)((L[e] & 0x0F) << ((e / 32) % 2 ? 4 : 0));
            b.qh[e % 32] |= (uint8_t)((L[e] >> 4) << (e / 32)); /* bit 2c + t = e / 32 */
        }
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

float sf_ref_vec_dot_q5_K(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* Q5_K and Q8_K blocks */
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        sf_block_q5_K x;
        sf_block_q8_K y;
        memcpy(&x, pw + i * sizeof x, sizeof x);
        memcpy(&y, pa + i * sizeof y, sizeof y);
        sumf += vec_dot_k4(x.d, x.dmin, x.scales, x.qh, x.qs, &y);
    }
    return sumf;
}

/* ------------------------------------------------------------------ Q6_K */

/* q (-32..31) of element e = 128h + 32r + l */
static inline int q6_K_value(const sf_block_q6_K *b, int e) {
    const int h = e / 128, r = (e / 32) % 4, l = e % 32;
    const uint8_t lo = b->ql[64 * h + 32 * (r & 1) + l];
    const int low4 = r < 2 ? lo & 0x0F : lo >> 4;
    const int high2 = (b->qh[32 * h + l] >> (2 * r)) & 3;
    return (low4 | (high2 << 4)) - 32;
}

void sf_ref_dequantize_q6_K(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/256] blocks of 210 bytes */
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        sf_block_q6_K b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        const float d = sf_fp16_to_fp32(b.d);
        for (int e = 0; e < QK_K; e++) dst[e] = d * b.scales[e / 16] * q6_K_value(&b, e);
    }
}

void sf_ref_quantize_q6_K(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        int8_t L[QK_K];
        float scales[16];
        for (int j = 0; j < 16; j++) scales[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j);
        const float max_s = signed_max(16, scales);
        const float iscale = max_s != 0 ? -128 / max_s : 0.0f;
        sf_block_q6_K b;
        memset(&b, 0, sizeof b);
        b.d = sf_fp32_to_fp16(max_s != 0 ? 1 / iscale : 0.0f);
        const float dq = sf_fp16_to_fp32(b.d);
        for (int j = 0; j < 16; j++) {
            const int sc = max_s != 0 ? round_clamp(iscale * scales[j], -128, 127) : 0;
            b.scales[j] = (int8_t)sc;
            const float ds = dq * sc;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(ds != 0 ? round_clamp(x[16 * j + l] / ds, -32, 31) : 0);
        }
        for (int e = 0; e < QK_K; e++) {
            const int u = L[e] + 32, h = e / 128, r = (e / 32) % 4, l = e % 32;
            b.ql[64 * h + 32 * (r & 1) + l] |= (uint8_t)((u & 0x0F) << (r < 2 ? 0 : 4));
            b.qh[32 * h + l] |= (uint8_t)((u >> 4) << (2 * r));
        }
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

float sf_ref_vec_dot_q6_K(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* Q6_K and Q8_K blocks */
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        sf_block_q6_K x;
        sf_block_q8_K y;
        memcpy(&x, pw + i * sizeof x, sizeof x);
        memcpy(&y, pa + i * sizeof y, sizeof y);
        int isum = 0;
        for (int s = 0; s < 16; s++) {
            int isuml = 0;
            for (int e = 16 * s; e < 16 * s + 16; e++) isuml += y.qs[e] * q6_K_value(&x, e);
            isum += x.scales[s] * isuml;
        }
        sumf += (sf_fp16_to_fp32(x.d) * y.d) * isum;
    }
    return sumf;
}

/* ------------------------------------------------------------------ Q8_K */

void sf_ref_dequantize_q8_K(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/256] blocks of 292 bytes */
    for (int64_t i = 0; i < n / QK_K; i++) {
        sf_block_q8_K b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        for (int j = 0; j < QK_K; j++) dst[i * QK_K + j] = b.d * b.qs[j];
    }
}

/* ggml's quantize_row_q8_K_ref: iscale = -127/max (max = the signed value of
 * largest |x|), q = nearest_int(iscale*x) capped at 127, d = 1/iscale. An
 * all-zero block gets d = 0 and zero bsums (ggml leaves bsums unset). */
void sf_ref_quantize_q8_K(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        sf_block_q8_K b;
        memset(&b, 0, sizeof b);
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax != 0) {
            const float iscale = -127.f / max;
            for (int j = 0; j < QK_K; j++) {
                const float v = iscale * x[j];
                const int q = fabsf(v) < 4194303.f ? sf_nearest_int(v) : (v > 0 ? 127 : -128);
                b.qs[j] = (int8_t)(q < 127 ? (q > -128 ? q : -128) : 127);
            }
            for (int g = 0; g < QK_K / 16; g++) {
                int sum = 0;
                for (int l = 0; l < 16; l++) sum += b.qs[16 * g + l];
                b.bsums[g] = (int16_t)sum;
            }
            b.d = 1 / iscale;
        }
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

/* ------------------------------------------- integer parts of a block dot */

int sf_kquant_block_ints_range(int type, const void *wblock, const void *q8k, int j0, int j1, sf_kquant_ints *out) {
    sf_block_q8_K y;
    memcpy(&y, q8k, sizeof y);
    int32_t s1 = 0, s2 = 0;
    switch (type) {
    case SF_TYPE_Q4_K:
    case SF_TYPE_Q5_K: {
        sf_block_q5_K x5;
        sf_block_q4_K x4;
        const uint8_t *scales, *qs, *qh = NULL;
        sf_fp16 d, dmin;
        if (type == SF_TYPE_Q4_K) {
            memcpy(&x4, wblock, sizeof x4);
            scales = x4.scales; qs = x4.qs; d = x4.d; dmin = x4.dmin;
        } else {
            memcpy(&x5, wblock, sizeof x5);
            scales = x5.scales; qs = x5.qs; qh = x5.qh; d = x5.d; dmin = x5.dmin;
        }
        for (int s = j0; s < j1; s++) {
            int sc, m;
            get_scale_min_k4(s, scales, &sc, &m);
            s2 += (y.bsums[2 * s] + y.bsums[2 * s + 1]) * m;
            int32_t isum = 0;
            for (int e = 32 * s; e < 32 * s + 32; e++)
                isum += y.qs[e] * (q4_K_low(qs, e) + (qh && ((qh[e % 32] >> s) & 1) ? 16 : 0));
            s1 += sc * isum;
        }
        out->d0 = sf_fp16_to_fp32(d);
        out->dmin0 = sf_fp16_to_fp32(dmin);
        break;
    }
    case SF_TYPE_Q6_K: {
        sf_block_q6_K x;
        memcpy(&x, wblock, sizeof x);
        for (int s = 2 * j0; s < 2 * j1; s++) {
            int32_t isum = 0;
            for (int e = 16 * s; e < 16 * s + 16; e++) isum += y.qs[e] * q6_K_value(&x, e);
            s1 += x.scales[s] * isum;
        }
        out->d0 = sf_fp16_to_fp32(x.d);
        out->dmin0 = 0.0f;
        break;
    }
    case SF_TYPE_Q3_K: {
        sf_block_q3_K x;
        memcpy(&x, wblock, sizeof x);
        for (int s = 2 * j0; s < 2 * j1; s++) {
            int32_t isum = 0;
            for (int e = 16 * s; e < 16 * s + 16; e++) isum += y.qs[e] * q3_K_value(&x, e);
            s1 += get_scale_q3_K(s, x.scales) * isum;
        }
        out->d0 = sf_fp16_to_fp32(x.d);
        out->dmin0 = 0.0f;
        break;
    }
    default:
        return -1;
    }
    out->s1 = s1;
    out->s2 = s2;
    out->d1 = y.d;
    return 0;
}
