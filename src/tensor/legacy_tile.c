/* The legacy prompt-kernel layout (legacy_tile.h): the scalar unpacking and
 * kernel every SIMD version is held to, and the activation preparation. */
#include "tensor/legacy_tile.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "tensor/blocks.h"
#include "tensor/quant_ref.h"

int sf_lg16_offset(sf_type type) {
    switch (type) {
    case SF_TYPE_Q4_0: return 8;
    case SF_TYPE_Q5_0: return 16;
    case SF_TYPE_Q8_0:
    case SF_TYPE_IQ4_NL: return 128;
    case SF_TYPE_Q4_1:
    case SF_TYPE_Q5_1: return 0;
    default: return -1;
    }
}

/* u[32], d and m of one block */
static void unpack_block(sf_type type, const uint8_t *b, uint8_t u[32], float *d, float *m) {
    *m = 0.0f;
    switch (type) {
    case SF_TYPE_Q4_0:
    case SF_TYPE_IQ4_NL: {
        sf_block_q4_0 x; /* IQ4_NL has the same layout */
        memcpy(&x, b, sizeof x);
        *d = sf_fp16_to_fp32(x.d);
        for (int j = 0; j < 16; j++) {
            u[j] = x.qs[j] & 0x0F;
            u[j + 16] = x.qs[j] >> 4;
        }
        if (type == SF_TYPE_IQ4_NL)
            for (int j = 0; j < 32; j++) u[j] = (uint8_t)(sf_iq4nl_values[u[j]] + 128);
        break;
    }
    case SF_TYPE_Q4_1: {
        sf_block_q4_1 x;
        memcpy(&x, b, sizeof x);
        *d = sf_fp16_to_fp32(x.d);
        *m = sf_fp16_to_fp32(x.m);
        for (int j = 0; j < 16; j++) {
            u[j] = x.qs[j] & 0x0F;
            u[j + 16] = x.qs[j] >> 4;
        }
        break;
    }
    case SF_TYPE_Q5_0:
    case SF_TYPE_Q5_1: {
        uint32_t qh;
        const uint8_t *qs;
        if (type == SF_TYPE_Q5_0) {
            sf_block_q5_0 x;
            memcpy(&x, b, sizeof x);
            *d = sf_fp16_to_fp32(x.d);
            memcpy(&qh, x.qh, 4);
            qs = b + offsetof(sf_block_q5_0, qs);
        } else {
            sf_block_q5_1 x;
            memcpy(&x, b, sizeof x);
            *d = sf_fp16_to_fp32(x.d);
            *m = sf_fp16_to_fp32(x.m);
            memcpy(&qh, x.qh, 4);
            qs = b + offsetof(sf_block_q5_1, qs);
        }
        for (int j = 0; j < 16; j++) {
            u[j] = (uint8_t)((qs[j] & 0x0F) | ((qh >> j & 1) << 4));
            u[j + 16] = (uint8_t)((qs[j] >> 4) | ((qh >> (j + 16) & 1) << 4));
        }
        break;
    }
    case SF_TYPE_Q8_0: {
        sf_block_q8_0 x;
        memcpy(&x, b, sizeof x);
        *d = sf_fp16_to_fp32(x.d);
        for (int j = 0; j < 32; j++) u[j] = (uint8_t)(x.qs[j] + 128);
        break;
    }
    default: memset(u, 0, 32); *d = 0.0f;
    }
}

void sf_lg16_unpack_ref(sf_type type, const void *rows, size_t row_bytes, int n_rows, int64_t n, sf_lg_tile16 *dst) {
    const size_t bb = (size_t)sf_type_info_of(type)->type_size;
    for (int64_t i = 0; i < n / SF_QK; i++) {
        sf_lg_tile16 *t = dst + i;
        memset(t, 0, sizeof *t);
        for (int r = 0; r < n_rows; r++) {
            uint8_t u[32];
            unpack_block(type, (const uint8_t *)rows + (size_t)r * row_bytes + (size_t)i * bb, u, &t->d[r], &t->m[r]);
            for (int g = 0; g < 8; g++) memcpy(&t->q[g][4 * r], u + 4 * g, 4);
        }
    }
}

/* the exact integer sum of group g of row r with token k's block i */
static int32_t group_dot(const sf_lg_tile16 *t, const sf_lg_acts *a, int k, int64_t i, int r, int g) {
    const int8_t *y = (const int8_t *)(a->qs + (size_t)k * a->stride + (size_t)i * a->block);
    int32_t s = a->corr4[(k * a->nb + i) * 8 + g];
    for (int e = 0; e < 4; e++) s += (int32_t)t->q[g][4 * r + e] * y[4 * g + e];
    return s;
}

void sf_lg16_gemm_ref(int64_t nb, const sf_lg_tile16 *w, int n_tok, const sf_lg_acts *a, float out[][16]) {
    for (int k = 0; k < n_tok; k++) {
        for (int r = 0; r < 16; r++) {
            float acc = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                int32_t s = 0;
                for (int g = 0; g < 8; g++) s += group_dot(w + i, a, k, i, r, g);
                acc = fmaf((float)s, w[i].d[r] * a->d[k * nb + i], acc);
                if (a->s) acc = fmaf(w[i].m[r], a->s[k * nb + i], acc);
            }
            out[k][r] = acc;
        }
    }
}

void sf_lg16_gemm_ggml_ref(int64_t nb, const sf_lg_tile16 *w, int n_tok, const sf_lg_acts *a, float out[][16]) {
    for (int k = 0; k < n_tok; k++) {
        for (int r = 0; r < 16; r++) {
            float acc[8] = {0}, mins = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                const float dd = w[i].d[r] * a->d[k * nb + i];
                for (int g = 0; g < 8; g++) acc[g] = fmaf(dd, (float)group_dot(w + i, a, k, i, r, g), acc[g]);
                if (a->s) {
                    const float ms = w[i].m[r] * a->s[k * nb + i];
                    mins += ms;
                }
            }
            /* ggml's hsum of 8 lanes: ((0+4)+(2+6)) + ((1+5)+(3+7)) */
            const float h = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
            out[k][r] = h + mins;
        }
    }
}

sf_lg_acts sf_lg16_acts_prepare(sf_type type, const void *x, size_t x_stride, int n_tok, int64_t nb, void *buf) {
    const bool q8_1 = sf_type_ref(type)->vec_dot_type == SF_TYPE_Q8_1;
    const size_t block = q8_1 ? sizeof(sf_block_q8_1) : sizeof(sf_block_q8_0);
    const size_t qs_off = q8_1 ? offsetof(sf_block_q8_1, qs) : offsetof(sf_block_q8_0, qs);
    const int off = sf_lg16_offset(type);
    const size_t n = (size_t)n_tok * (size_t)nb;
    float *d = buf, *s = d + n;         /* [n_tok][nb] each */
    int32_t *corr = (int32_t *)(s + n); /* [n_tok][nb] */
    int32_t *corr4 = corr + n;          /* [n_tok][nb][8] */
    for (int k = 0; k < n_tok; k++) {
        const uint8_t *row = (const uint8_t *)x + (size_t)k * x_stride;
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *b = row + (size_t)i * block;
            const int8_t *q = (const int8_t *)(b + qs_off);
            const size_t ki = (size_t)k * nb + i;
            sf_fp16 h;
            memcpy(&h, b, sizeof h);
            d[ki] = sf_fp16_to_fp32(h);
            if (q8_1) {
                memcpy(&h, b + offsetof(sf_block_q8_1, s), sizeof h);
                s[ki] = sf_fp16_to_fp32(h);
            }
            int32_t sum = 0;
            for (int g = 0; g < 8; g++) {
                const int32_t s4 = q[4 * g] + q[4 * g + 1] + q[4 * g + 2] + q[4 * g + 3];
                corr4[ki * 8 + g] = -off * s4;
                sum += s4;
            }
            corr[ki] = -off * sum;
        }
    }
    sf_lg_acts a = {(const uint8_t *)x + qs_off, x_stride, block, nb, d, q8_1 ? s : NULL, corr, corr4};
    return a;
}

sf_lg_acts sf_lg16_acts_from(sf_lg_acts a, int k0) {
    a.qs += (size_t)k0 * a.stride;
    a.d += k0 * a.nb;
    if (a.s) a.s += k0 * a.nb;
    a.corr += k0 * a.nb;
    a.corr4 += k0 * a.nb * 8;
    return a;
}
