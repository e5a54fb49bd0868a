/* Scalar unpacking of K-quant rows into sf_kq_unpacked (see kq_unpack.h).
 * The element order and bit fields follow the reference dequantizers in
 * quant_kquants.c (doc section 3.3). */
#include "tensor/kq_unpack.h"

#include <string.h>

#include "tensor/blocks.h"
#include "tensor/fp16.h"
#include "tensor/types.h"

/* sc and mn per 16-value group into the unpacked layout */
static void put_groups(sf_kq_unpacked *u, const int sc[16], const int mn[16]) {
    for (int c = 0; c < 8; c++)
        for (int l = 0; l < 16; l++) u->sc[c][l] = (int16_t)sc[2 * c + l / 8];
    for (int g = 0; g < 16; g++) u->mn[g] = (int16_t)mn[g];
}

/* Q4_K / Q5_K: 6-bit scale and min of sub-block s (get_scale_min_k4) */
static void scale_min_k4(int s, const uint8_t b[12], int *sc, int *m) {
    if (s < 4) {
        *sc = b[s] & 63;
        *m = b[s + 4] & 63;
    } else {
        *sc = (b[s + 4] & 0x0F) | ((b[s - 4] >> 6) << 4);
        *m = (b[s + 4] >> 4) | ((b[s] >> 6) << 4);
    }
}

static void unpack_k4(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, float d, float dmin,
                      sf_kq_unpacked *u) {
    int sc[16], mn[16];
    for (int s = 0; s < 8; s++) {
        int a, m;
        scale_min_k4(s, scales, &a, &m);
        sc[2 * s] = sc[2 * s + 1] = a;
        mn[2 * s] = mn[2 * s + 1] = m;
    }
    /* element e = 64c + 32t + l: nibble t of qs[32c + l], + 16 * bit (2c + t) of qh[l] */
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            const uint8_t byte = qs[32 * c + l], hb = qh ? qh[l] : 0;
            u->q[64 * c + l] = (uint8_t)((byte & 0x0F) | ((hb >> (2 * c)) & 1) << 4);
            u->q[64 * c + 32 + l] = (uint8_t)((byte >> 4) | ((hb >> (2 * c + 1)) & 1) << 4);
        }
    put_groups(u, sc, mn);
    u->d = d;
    u->dm = -dmin;
}

static void unpack_q6_K(const sf_block_q6_K *b, sf_kq_unpacked *u) {
    int sc[16], mn[16];
    for (int g = 0; g < 16; g++) {
        sc[g] = b->scales[g];
        mn[g] = -32 * b->scales[g];
    }
    /* element e = 128h + 32r + l: low 4 bits from ql[64h + 32(r&1) + l]
     * (low nibble for r < 2), high 2 bits from qh[32h + l] >> 2r */
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t lo0 = b->ql[64 * h + l], lo1 = b->ql[64 * h + 32 + l], hi = b->qh[32 * h + l];
            uint8_t *q = u->q + 128 * h + l;
            q[0] = (uint8_t)((lo0 & 0x0F) | (hi & 3) << 4);
            q[32] = (uint8_t)((lo1 & 0x0F) | ((hi >> 2) & 3) << 4);
            q[64] = (uint8_t)((lo0 >> 4) | ((hi >> 4) & 3) << 4);
            q[96] = (uint8_t)((lo1 >> 4) | ((hi >> 6) & 3) << 4);
        }
    put_groups(u, sc, mn);
    u->d = u->dm = sf_fp16_to_fp32(b->d);
}

static void unpack_q3_K(const sf_block_q3_K *b, sf_kq_unpacked *u) {
    int sc[16], mn[16];
    for (int g = 0; g < 16; g++) {
        const int low4 = g < 8 ? (b->scales[g] & 0x0F) : (b->scales[g - 8] >> 4);
        const int high2 = (b->scales[8 + (g & 3)] >> (2 * (g / 4))) & 3;
        sc[g] = (low4 | (high2 << 4)) - 32;
        mn[g] = -4 * sc[g];
    }
    /* element e = 128h + 32j + 16k + l: 2 bits (qs[32h + 16k + l] >> 2j) & 3,
     * + 4 where bit 4h + j of hmask[16k + l] is set */
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, j = (e / 32) % 4, kl = e % 32;
        const int low2 = (b->qs[32 * h + kl] >> (2 * j)) & 3;
        const int hbit = (b->hmask[kl] >> (4 * h + j)) & 1;
        u->q[e] = (uint8_t)(low2 | hbit << 2);
    }
    put_groups(u, sc, mn);
    u->d = u->dm = sf_fp16_to_fp32(b->d);
}

static void unpack_q2_K(const sf_block_q2_K *b, sf_kq_unpacked *u) {
    int sc[16], mn[16];
    for (int g = 0; g < 16; g++) {
        sc[g] = b->scales[g] & 0x0F;
        mn[g] = b->scales[g] >> 4;
    }
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, j = (e / 32) % 4, kl = e % 32;
        u->q[e] = (uint8_t)((b->qs[32 * h + kl] >> (2 * j)) & 3);
    }
    put_groups(u, sc, mn);
    u->d = sf_fp16_to_fp32(b->d);
    u->dm = -sf_fp16_to_fp32(b->dmin);
}

int sf_kq_unpack_row(int type, const void *row, int64_t n, sf_kq_unpacked *dst) {
    if (type < SF_TYPE_Q2_K || type > SF_TYPE_Q6_K) return -1;
    const uint8_t *p = row;
    for (int64_t i = 0; i < n / SF_QK_K; i++) {
        switch (type) {
        case SF_TYPE_Q2_K: {
            sf_block_q2_K b;
            memcpy(&b, p + i * sizeof b, sizeof b);
            unpack_q2_K(&b, &dst[i]);
            break;
        }
        case SF_TYPE_Q3_K: {
            sf_block_q3_K b;
            memcpy(&b, p + i * sizeof b, sizeof b);
            unpack_q3_K(&b, &dst[i]);
            break;
        }
        case SF_TYPE_Q4_K: {
            sf_block_q4_K b;
            memcpy(&b, p + i * sizeof b, sizeof b);
            unpack_k4(b.scales, b.qs, NULL, sf_fp16_to_fp32(b.d), sf_fp16_to_fp32(b.dmin), &dst[i]);
            break;
        }
        case SF_TYPE_Q5_K: {
            sf_block_q5_K b;
            memcpy(&b, p + i * sizeof b, sizeof b);
            unpack_k4(b.scales, b.qs, b.qh, sf_fp16_to_fp32(b.d), sf_fp16_to_fp32(b.dmin), &dst[i]);
            break;
        }
        case SF_TYPE_Q6_K: {
            sf_block_q6_K b;
            memcpy(&b, p + i * sizeof b, sizeof b);
            unpack_q6_K(&b, &dst[i]);
            break;
        }
        default: return -1;
        }
    }
    return 0;
}

int sf_kq_unpack_tile16(int type, const void *rows, size_t row_bytes, int n_rows, int64_t n, sf_kq_tile16 *dst) {
    if (type < SF_TYPE_Q2_K || type > SF_TYPE_Q6_K) return -1;
    const int64_t nsb = n / SF_QK_K;
    const size_t block_bytes = sf_type_row_bytes((sf_type)type, SF_QK_K);
    if (n_rows < 16) memset(dst, 0, sizeof *dst * (size_t)nsb);
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *row = (const uint8_t *)rows + (size_t)r * row_bytes;
        for (int64_t i = 0; i < nsb; i++) {
            sf_kq_unpacked u;
            sf_kq_unpack_row(type, row + (size_t)i * block_bytes, SF_QK_K, &u);
            sf_kq_tile16 *t = &dst[i];
            for (int gq = 0; gq < 64; gq++) memcpy(&t->q[gq][4 * r], &u.q[4 * gq], 4);
            for (int g = 0; g < 16; g++) t->sc[g][2 * r] = t->sc[g][2 * r + 1] = u.sc[g / 2][(g % 2) * 8];
            for (int j = 0; j < 8; j++) {
                t->mn[j][2 * r] = u.mn[2 * j];
                t->mn[j][2 * r + 1] = u.mn[2 * j + 1];
            }
            t->d[r] = u.d;
            t->dm[r] = u.dm;
        }
    }
    return 0;
}

float sf_kq_unpacked_dot_ref(int64_t n, const sf_kq_unpacked *w, const void *a) {
    const uint8_t *pa = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SF_QK_K; i++) {
        sf_block_q8_K y;
        memcpy(&y, pa + i * sizeof y, sizeof y);
        int32_t s = 0, m = 0;
        for (int e = 0; e < 256; e++) s += w[i].sc[e / 32][(e % 32) / 16 * 8] * w[i].q[e] * y.qs[e];
        for (int g = 0; g < 16; g++) m += w[i].mn[g] * y.bsums[g];
        sum += y.d * (w[i].d * (float)s + w[i].dm * (float)m);
    }
    return sum;
}
