/* Scalar reference kernels for IQ4_NL (ggml type 20): blocks of 32 values,
 * an f16 scale d and 16 bytes of 4-bit indices into a fixed table of 16
 * non-linear levels (ggml-common.h kvalues_iq4nl). Element j < 16 is the low
 * nibble of qs[j], element j + 16 its high nibble; value = d * level.
 *
 * The quantizer is ggml's quantize_iq4_nl without importance weights (what
 * llama-quantize writes without an imatrix): per block, the scale that
 * maximises the weighted fit (weights x^2) among the first guess max/127 and
 * 15 scales around -max/127, then every value's nearest level at that scale.
 * (ggml's quantize_row_iq4_nl_ref stops after the first guess.)
 *
 * The dot product with Q8_0 follows ggml_vec_dot_iq4_nl_q8_0_generic: an
 * exact integer sum per block, scaled by float(d_a) * float(d_w) and added to
 * one float accumulator. No operation here is fused into an FMA (ISO C, see
 * quant_legacy.c). Blocks are read with memcpy (any alignment). */
#include <math.h>
#include <string.h>

#include "tensor/blocks.h"
#include "tensor/quant_ref.h"

#define QK SF_QK

const int8_t sf_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

void sf_ref_dequantize_iq4_nl(const void *src, float *dst, int64_t n) {
    const unsigned char *p = src; /* [n/32] blocks of 18 bytes */
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_iq4_nl b;
        memcpy(&b, p + i * sizeof b, sizeof b);
        const float d = sf_fp16_to_fp32(b.d);
        for (int j = 0; j < QK / 2; j++) {
            dst[i * QK + j] = d * sf_iq4nl_values[b.qs[j] & 0x0F];
            dst[i * QK + j + QK / 2] = d * sf_iq4nl_values[b.qs[j] >> 4];
        }
    }
}

/* Index of the level nearest to x (ties to the upper one, beyond the ends
 * the end levels, NaN -> 0): the number of midpoints between neighbouring
 * levels that x reaches, compared as 2x against the sum of the two levels,
 * which is exact. */
static int nearest_level(float x) {
    const float x2 = x + x;
    int idx = 0;
    for (int k = 0; k < 15; k++) idx += x2 >= (float)(sf_iq4nl_values[k] + sf_iq4nl_values[k + 1]);
    return idx;
}

/* Weighted fit of the levels chosen at inverse scale id: sum w*q*x and
 * sum w*q*q in ggml's order (w = x^2). L (if not NULL) gets the indices. */
static void fit(const float *x, float id, uint8_t *L, float *sumqx_out, float *sumq2_out) {
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < QK; j++) {
        const int l = nearest_level(id * x[j]);
        if (L) L[j] = (uint8_t)l;
        const float q = sf_iq4nl_values[l], w = x[j] * x[j];
        const float wq = w * q;
        const float wqx = wq * x[j], wqq = wq * q;
        sumqx += wqx;
        sumq2 += wqq;
    }
    *sumqx_out = sumqx;
    *sumq2_out = sumq2;
}

enum { N_TRY = 7 }; /* scales tried on each side of -max/127 */

static void quantize_block(const float *x, sf_block_iq4_nl *b) {
    float amax = 0.0f, max = 0.0f; /* largest |x| and its signed value (first one wins) */
    for (int j = 0; j < QK; j++) {
        const float ax = fabsf(x[j]);
        if (ax > amax) {
            amax = ax;
            max = x[j];
        }
    }
    uint8_t L[QK];
    memset(L, 0, sizeof L);
    float d = 0.0f;
    if (amax >= 1e-15f) { /* ggml's GROUP_MAX_EPS: below it the block is all zero */
        float sumqx, sumq2;
        const float d0 = -max / sf_iq4nl_values[0];
        fit(x, 1 / d0, NULL, &sumqx, &sumq2);
        d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
        float best = d * sumqx;
        for (int t = -N_TRY; t <= N_TRY; t++) {
            const float id = (t + sf_iq4nl_values[0]) / max;
            fit(x, id, NULL, &sumqx, &sumq2);
            const float sq = sumqx * sumqx, bq = best * sumq2;
            if (sumq2 > 0 && sq > bq) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        float unused_qx, unused_q2;
        fit(x, d ? 1 / d : 0.0f, L, &unused_qx, &unused_q2);
    }
    b->d = sf_fp32_to_fp16(d);
    for (int j = 0; j < QK / 2; j++) b->qs[j] = (uint8_t)(L[j] | L[j + QK / 2] << 4);
}

void sf_ref_quantize_iq4_nl(const float *src, void *dst, int64_t n) {
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_iq4_nl b;
        quantize_block(src + i * QK, &b);
        memcpy(p + i * sizeof b, &b, sizeof b);
    }
}

float sf_ref_vec_dot_iq4_nl(int64_t n, const void *w, const void *a) {
    const unsigned char *pw = w, *pa = a; /* IQ4_NL and Q8_0 blocks */
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        sf_block_iq4_nl x;
        sf_block_q8_0 y;
        memcpy(&x, pw + i * sizeof x, sizeof x);
        memcpy(&y, pa + i * sizeof y, sizeof y);
        const float d = sf_fp16_to_fp32(y.d) * sf_fp16_to_fp32(x.d);
        int sumi1 = 0, sumi2 = 0;
        for (int j = 0; j < QK / 2; j++) {
            sumi1 += y.qs[j] * sf_iq4nl_values[x.qs[j] & 0x0F];
            sumi2 += y.qs[j + QK / 2] * sf_iq4nl_values[x.qs[j] >> 4];
        }
        const float s = d * (float)(sumi1 + sumi2);
        sumf += s;
    }
    return sumf;
}
