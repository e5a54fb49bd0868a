/* Legacy-quant prompt kernels on 512-bit registers: the 16-row tile kernels
 * of the fast mode (legacy_tile.h; at the end of this file), and the 2x4
 * kernels the exact mode keeps.
 *
 * 2x4: both weight rows of a block
 * in one register (row 0 in the low 256 bits, row 1 in the high), the
 * activation block broadcast to both halves, one vpdpbusd for the two rows.
 * Each half holds exactly the 8 int32 partial dots of the AVX2 vec_dot
 * (simd_legacy_avx2.c) and goes through the same float operations, lane for
 * lane: the results equal vec_dot bit for bit, with half the instructions of
 * the 256-bit 2x4 kernels (gemm_legacy_impl.h). Signed quants enter vpdpbusd
 * as unsigned u = q + off; off * (the 4-value activation sums) is taken back
 * out, so every partial dot is the exact integer. */
#include "tensor/legacy_tile.h"
#include "tensor/simd.h"
#include "tensor/simd_x86.h"

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VNNI__)
#error "simd_gemm_legacy_avx512.c needs -mavx512f -mavx512bw -mavx512vnni"
#endif

static inline __m512i pair(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

static inline __m256i q5_unsigned(const uint8_t *qs, const uint8_t *qh) {
    const __m256i high = _mm256_and_si256(sf_x86_bits_to_bytes(sf_x86_load_u32(qh)), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(sf_x86_nibbles32(qs), high);
}

/* unsigned quants of one block (32 bytes) per type */
static inline __m256i u_q4_0(const uint8_t *x) { return sf_x86_nibbles32(x + offsetof(sf_block_q4_0, qs)); }
static inline __m256i u_q4_1(const uint8_t *x) { return sf_x86_nibbles32(x + offsetof(sf_block_q4_1, qs)); }
static inline __m256i u_q5_0(const uint8_t *x) {
    return q5_unsigned(x + offsetof(sf_block_q5_0, qs), x + offsetof(sf_block_q5_0, qh));
}
static inline __m256i u_q5_1(const uint8_t *x) {
    return q5_unsigned(x + offsetof(sf_block_q5_1, qs), x + offsetof(sf_block_q5_1, qh));
}
static inline __m256i u_q8_0(const uint8_t *x) {
    return _mm256_xor_si256(sf_x86_loadu256(x + offsetof(sf_block_q8_0, qs)), _mm256_set1_epi8((char)0x80));
}

#define GEMM512(name, wtype, ufn, off, atype, has_m)                                                            \
    static void name(int64_t n, const void *w, size_t w_stride, const void *a, size_t a_stride, float out[8]) { \
        const uint8_t *x = w, *y = a;                                                                           \
        const size_t ys = sizeof(atype), qs_off = offsetof(atype, qs);                                          \
        __m512 acc[4];                                                                                          \
        float o0[4] = {0}, o1[4] = {0};                                                                         \
        for (int t = 0; t < 4; t++) acc[t] = _mm512_setzero_ps();                                               \
        for (int64_t i = 0; i < n / SF_QK; i++) {                                                               \
            const uint8_t *x0 = x + i * sizeof(wtype), *x1 = x0 + w_stride;                                    \
            const __m512i u = pair(ufn(x0), ufn(x1));                                                           \
            const __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(sf_x86_load_f16(x0)),                          \
                                                 _mm256_set1_ps(sf_x86_load_f16(x1)), 1);                       \
            float m0 = 0.0f, m1 = 0.0f;                                                                         \
            if (has_m) {                                                                                        \
                m0 = sf_x86_load_f16(x0 + 2);                                                                   \
                m1 = sf_x86_load_f16(x1 + 2);                                                                   \
            }                                                                                                   \
            _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {                                               \
                const uint8_t *yr = y + (size_t)t * a_stride + i * ys;                                          \
                const __m512i yv = _mm512_broadcast_i64x4(sf_x86_loadu256(yr + qs_off));                       \
                __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, yv);                               \
                if (off) dot = _mm512_sub_epi32(dot, _mm512_dpbusd_epi32(_mm512_setzero_si512(),               \
                                                                         _mm512_set1_epi8((char)(off)), yv));   \
                const float da = sf_x86_load_f16(yr);                                                           \
                if (has_m) {                                                                                    \
                    const float sa = sf_x86_load_f16(yr + offsetof(sf_block_q8_1, s));                         \
                    o0[t] += m0 * sa;                                                                           \
                    o1[t] += m1 * sa;                                                                           \
                }                                                                                               \
                /* d_w * d_a per half, as vec_dot's set1(d_w * d_a) */                                          \
                const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(da));                                         \
                acc[t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc[t]);                                   \
            }                                                                                                   \
        }                                                                                                       \
        for (int t = 0; t < 4; t++) {                                                                           \
            out[t] = sf_x86_hsum_ps(_mm512_castps512_ps256(acc[t])) + o0[t];                                   \
            out[4 + t] = sf_x86_hsum_ps(_mm512_extractf32x8_ps(acc[t], 1)) + o1[t];                            \
        }                                                                                                       \
    }

GEMM512(gemm_q4_0, sf_block_q4_0, u_q4_0, 8, sf_block_q8_0, 0)
GEMM512(gemm_q4_1, sf_block_q4_1, u_q4_1, 0, sf_block_q8_1, 1)
GEMM512(gemm_q5_0, sf_block_q5_0, u_q5_0, 16, sf_block_q8_0, 0)
GEMM512(gemm_q5_1, sf_block_q5_1, u_q5_1, 0, sf_block_q8_1, 1)
GEMM512(gemm_q8_0, sf_block_q8_0, u_q8_0, 128, sf_block_q8_0, 0)

void sf_avx512_gemm_2x4_install(sf_type_traits fast[SF_TYPE_COUNT]) {
    fast[SF_TYPE_Q4_0].vec_dot_2x4 = gemm_q4_0;
    fast[SF_TYPE_Q4_1].vec_dot_2x4 = gemm_q4_1;
    fast[SF_TYPE_Q5_0].vec_dot_2x4 = gemm_q5_0;
    fast[SF_TYPE_Q5_1].vec_dot_2x4 = gemm_q5_1;
    fast[SF_TYPE_Q8_0].vec_dot_2x4 = gemm_q8_0;
}

/* ------------------------------------- the 16-row fast prompt kernel */

/* IQ4_NL levels + 128, as unsigned bytes, for vpshufb on nibbles */
static inline __m256i u_iq4_nl(const uint8_t *x) {
    const __m128i lv = _mm_setr_epi8(1, 24, 45, 63, 79, 93, 106, 118, (char)129, (char)141, (char)153, (char)166,
                                     (char)181, (char)197, (char)217, (char)241);
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(lv), sf_x86_nibbles32(x + offsetof(sf_block_iq4_nl, qs)));
}

/* Each row's 32 unsigned quants go to a row-major scratch [16][32]; 8
 * gathers then take dword g of every row into q[g] (lane r = row r). */
#define UNPACK16(name, wtype, ufn, has_m)                                                                   \
    static void name(const void *rows, size_t row_bytes, int n_rows, int64_t n, sf_lg_tile16 *dst) {       \
        _Alignas(64) uint8_t tmp[16][32] = {{0}};                                                           \
        const __m512i idx = _mm512_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120); \
        for (int64_t i = 0; i < n / SF_QK; i++) {                                                           \
            sf_lg_tile16 *t = dst + i;                                                                      \
            for (int r = 0; r < 16; r++) {                                                                  \
                if (r >= n_rows) {                                                                          \
                    t->d[r] = t->m[r] = 0.0f;                                                               \
                    continue;                                                                               \
                }                                                                                           \
                const uint8_t *x = (const uint8_t *)rows + (size_t)r * row_bytes + (size_t)i * sizeof(wtype); \
                _mm256_store_si256((__m256i *)tmp[r], ufn(x));                                              \
                t->d[r] = sf_x86_load_f16(x);                                                               \
                t->m[r] = has_m ? sf_x86_load_f16(x + 2) : 0.0f;                                            \
            }                                                                                               \
            for (int g = 0; g < 8; g++)                                                                     \
                _mm512_storeu_si512(t->q[g], _mm512_i32gather_epi32(_mm512_add_epi32(idx, _mm512_set1_epi32(g)), tmp, 4)); \
        }                                                                                                   \
    }

UNPACK16(unpack16_q4_0, sf_block_q4_0, u_q4_0, 0)
UNPACK16(unpack16_q4_1, sf_block_q4_1, u_q4_1, 1)
UNPACK16(unpack16_q5_0, sf_block_q5_0, u_q5_0, 0)
UNPACK16(unpack16_q5_1, sf_block_q5_1, u_q5_1, 1)
UNPACK16(unpack16_q8_0, sf_block_q8_0, u_q8_0, 0)
UNPACK16(unpack16_iq4_nl, sf_block_iq4_nl, u_iq4_nl, 0)

/* The fast order: nt tokens (a constant after inlining) against one tile;
 * per block 8 vpdpbusd per token into one sum that starts at the offset
 * correction, then the float scales as sf_lg16_gemm_ref. */
static inline __attribute__((always_inline)) void lg16_fast(int64_t nb, const sf_lg_tile16 *w, const int nt,
                                                            const sf_lg_acts *a, float out[][16]) {
    __m512 acc[SF_LG_TOKENS];
    const uint8_t *y[SF_LG_TOKENS];
    for (int k = 0; k < nt; k++) {
        acc[k] = _mm512_setzero_ps();
        y[k] = a->qs + (size_t)k * a->stride;
    }
    for (int64_t i = 0; i < nb; i++) {
        const sf_lg_tile16 *t = w + i;
        __m512i s[SF_LG_TOKENS];
        for (int k = 0; k < nt; k++) s[k] = _mm512_set1_epi32(a->corr[k * nb + i]);
        const size_t yo = (size_t)i * a->block;
        for (int g = 0; g < 8; g++) {
            const __m512i wq = _mm512_load_si512(t->q[g]);
            for (int k = 0; k < nt; k++)
                s[k] = _mm512_dpbusd_epi32(s[k], wq, _mm512_set1_epi32((int)sf_x86_load_u32(y[k] + yo + 4 * g)));
        }
        const __m512 d = _mm512_load_ps(t->d);
        for (int k = 0; k < nt; k++)
            acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[k]), _mm512_mul_ps(d, _mm512_set1_ps(a->d[k * nb + i])), acc[k]);
        if (a->s) {
            const __m512 m = _mm512_load_ps(t->m);
            for (int k = 0; k < nt; k++) acc[k] = _mm512_fmadd_ps(m, _mm512_set1_ps(a->s[k * nb + i]), acc[k]);
        }
    }
    for (int k = 0; k < nt; k++) _mm512_storeu_ps(out[k], acc[k]);
}

/* ggml's vec_dot order (sf_lg16_gemm_ggml_ref): per token one FMA chain per
 * group of 4 values (ggml's 8 lanes), each row in its own 32-bit lane, the
 * min terms in their own sum. */
enum { LG_GGML_TOKENS = 3 };
static inline __attribute__((always_inline)) void lg16_ggml(int64_t nb, const sf_lg_tile16 *w, const int nt,
                                                            const sf_lg_acts *a, float out[][16]) {
    __m512 acc[LG_GGML_TOKENS][8], mins[LG_GGML_TOKENS];
    const uint8_t *y[LG_GGML_TOKENS];
    for (int k = 0; k < nt; k++) {
        for (int g = 0; g < 8; g++) acc[k][g] = _mm512_setzero_ps();
        mins[k] = _mm512_setzero_ps();
        y[k] = a->qs + (size_t)k * a->stride;
    }
    for (int64_t i = 0; i < nb; i++) {
        const sf_lg_tile16 *t = w + i;
        const size_t yo = (size_t)i * a->block;
        const __m512 d = _mm512_load_ps(t->d);
        __m512 dd[LG_GGML_TOKENS];
        for (int k = 0; k < nt; k++) dd[k] = _mm512_mul_ps(d, _mm512_set1_ps(a->d[k * nb + i]));
        for (int g = 0; g < 8; g++) {
            const __m512i wq = _mm512_load_si512(t->q[g]);
            for (int k = 0; k < nt; k++) {
                const __m512i c = _mm512_set1_epi32(a->corr4[(k * nb + i) * 8 + g]);
                const __m512i p = _mm512_dpbusd_epi32(c, wq, _mm512_set1_epi32((int)sf_x86_load_u32(y[k] + yo + 4 * g)));
                acc[k][g] = _mm512_fmadd_ps(dd[k], _mm512_cvtepi32_ps(p), acc[k][g]);
            }
        }
        if (a->s) {
            const __m512 m = _mm512_load_ps(t->m);
            for (int k = 0; k < nt; k++) mins[k] = _mm512_add_ps(mins[k], _mm512_mul_ps(m, _mm512_set1_ps(a->s[k * nb + i])));
        }
    }
    for (int k = 0; k < nt; k++) {
        const __m512 *v = acc[k];
        const __m512 h = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(v[0], v[4]), _mm512_add_ps(v[2], v[6])),
                                       _mm512_add_ps(_mm512_add_ps(v[1], v[5]), _mm512_add_ps(v[3], v[7])));
        _mm512_storeu_ps(out[k], _mm512_add_ps(h, mins[k]));
    }
}

static void gemm16_fast(int64_t nb, const sf_lg_tile16 *w, int n_tok, const sf_lg_acts *a, float out[][16]) {
    int k = 0;
    if (n_tok - k >= 8) {
        lg16_fast(nb, w, 8, a, out);
        k += 8;
    }
    if (n_tok - k >= 4) {
        const sf_lg_acts v = sf_lg16_acts_from(*a, k);
        lg16_fast(nb, w, 4, &v, out + k);
        k += 4;
    }
    for (; k < n_tok; k++) {
        const sf_lg_acts v = sf_lg16_acts_from(*a, k);
        lg16_fast(nb, w, 1, &v, out + k);
    }
}

static void gemm16_ggml(int64_t nb, const sf_lg_tile16 *w, int n_tok, const sf_lg_acts *a, float out[][16]) {
    int k = 0;
    for (; n_tok - k >= LG_GGML_TOKENS; k += LG_GGML_TOKENS) {
        const sf_lg_acts v = sf_lg16_acts_from(*a, k);
        lg16_ggml(nb, w, LG_GGML_TOKENS, &v, out + k);
    }
    for (; k < n_tok; k++) {
        const sf_lg_acts v = sf_lg16_acts_from(*a, k);
        lg16_ggml(nb, w, 1, &v, out + k);
    }
}

void sf_avx512_lg16_install(sf_type_traits fast[SF_TYPE_COUNT]) {
    static const struct { sf_type type; sf_lg16_unpack_fn unpack; } k_types[] = {
        {SF_TYPE_Q4_0, unpack16_q4_0}, {SF_TYPE_Q4_1, unpack16_q4_1}, {SF_TYPE_Q5_0, unpack16_q5_0},
        {SF_TYPE_Q5_1, unpack16_q5_1}, {SF_TYPE_Q8_0, unpack16_q8_0}, {SF_TYPE_IQ4_NL, unpack16_iq4_nl},
    };
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++) {
        sf_type_traits *t = &fast[k_types[i].type];
        t->lg16_unpack = k_types[i].unpack;
        /* ggml's order where the type's results are llama.cpp's bit for bit
         * (IQ4_NL's vec_dot pairs blocks into two chains: no tile for it
         * there) */
        if (!t->ggml_order) t->lg16_gemm = gemm16_fast;
        else if (k_types[i].type != SF_TYPE_IQ4_NL) t->lg16_gemm = gemm16_ggml;
    }
}
