/* AVX-512 (F, BW, VL, DQ, VNNI) kernels: the installer, the legacy-block dot
 * products and the float dot products. K-quants: simd_kquant_avx512.c.
 * Installed after the AVX2 set, overriding what 512-bit registers and
 * vpdpbusd do better; the activation quantizers and dequantizers stay AVX2. */
#include <stdbool.h>

#include "tensor/simd.h"
#include "tensor/simd_x86.h"

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || !defined(__AVX512VNNI__)
#error "simd_avx512.c needs -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif

static float vec_dot_q4_0(int64_t n, const void *w, const void *a);
static float vec_dot_q4_1(int64_t n, const void *w, const void *a);
static float vec_dot_q5_0(int64_t n, const void *w, const void *a);
static float vec_dot_q5_1(int64_t n, const void *w, const void *a);
static float vec_dot_q8_0(int64_t n, const void *w, const void *a);
static float vec_dot_f32(int64_t n, const void *w, const void *a);
static float vec_dot_f16(int64_t n, const void *w, const void *a);
static float vec_dot_bf16(int64_t n, const void *w, const void *a);

void sf_simd_avx512_install(sf_type_traits fast[SF_TYPE_COUNT]) {
    fast[SF_TYPE_Q4_0].vec_dot = vec_dot_q4_0;
    fast[SF_TYPE_Q4_1].vec_dot = vec_dot_q4_1;
    fast[SF_TYPE_Q5_0].vec_dot = vec_dot_q5_0;
    fast[SF_TYPE_Q5_1].vec_dot = vec_dot_q5_1;
    fast[SF_TYPE_Q8_0].vec_dot = vec_dot_q8_0;

    fast[SF_TYPE_Q2_K].vec_dot = sf_avx512_vec_dot_q2_K;
    fast[SF_TYPE_Q3_K].vec_dot = sf_avx512_vec_dot_q3_K;
    fast[SF_TYPE_Q4_K].vec_dot = sf_avx512_vec_dot_q4_K;
    fast[SF_TYPE_Q5_K].vec_dot = sf_avx512_vec_dot_q5_K;
    fast[SF_TYPE_Q6_K].vec_dot = sf_avx512_vec_dot_q6_K;

    fast[SF_TYPE_F32].vec_dot = vec_dot_f32;
    fast[SF_TYPE_F16].vec_dot = vec_dot_f16;
    fast[SF_TYPE_BF16].vec_dot = vec_dot_bf16;
}

void sf_simd_avx512_install_unordered(sf_type_traits fast[SF_TYPE_COUNT]) {
    fast[SF_TYPE_Q4_0].vec_dot = vec_dot_q4_0;
    fast[SF_TYPE_Q4_0].ggml_order = false;
    fast[SF_TYPE_Q4_0].vec_dot_2x4_exact = false;
}

/* ------------------------------------------------ legacy blocks, two at a time */

/* Each loop step handles blocks i and i+1 in one 64-byte vector: bytes 0..31
 * are block i's 32 values, bytes 32..63 block i+1's. vpdpbusd multiplies
 * unsigned by signed bytes and sums each 4 into int32 without saturation; a
 * signed weight quant q is fed as u = q + off and off * sum(y) taken back
 * out. An odd last block is paired with itself under a zero scale. */

/* The pair of blocks at step i: the second is the first again (and `live`
 * false) when block i is the last. */
typedef struct {
    const uint8_t *x0, *x1, *y0, *y1;
    bool live;
} block_pair;

static inline block_pair pair_at(const uint8_t *x, size_t xs, const uint8_t *y, size_t ys, int64_t i, int64_t nb) {
    block_pair p;
    p.live = i + 1 < nb;
    p.x0 = x + i * xs;
    p.y0 = y + i * ys;
    p.x1 = p.live ? p.x0 + xs : p.x0;
    p.y1 = p.live ? p.y0 + ys : p.y0;
    return p;
}

/* Per-lane scale for the int32 lanes: 0..7 block i, 8..15 block i+1. */
static inline __m512 pair_scale(const block_pair *p, size_t x_d, size_t y_d) {
    const float d0 = sf_x86_load_f16(p->x0 + x_d) * sf_x86_load_f16(p->y0 + y_d);
    const float d1 = p->live ? sf_x86_load_f16(p->x1 + x_d) * sf_x86_load_f16(p->y1 + y_d) : 0.0f;
    return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d0), _mm512_set1_ps(d1));
}

/* 32 bytes at p0 and 32 at p1 as one vector. */
static inline __m512i load_2x32(const uint8_t *p0, const uint8_t *p1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(sf_x86_loadu256(p0)), sf_x86_loadu256(p1), 1);
}

/* Two blocks' 16 nibble bytes -> 64 quants in 0..15, each block's low
 * nibbles (elements 0..15) then high nibbles (16..31). */
static inline __m512i nibbles_2x32(const uint8_t *qs0, const uint8_t *qs1) {
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(sf_x86_loadu128(qs0)), sf_x86_loadu128(qs1), 1);
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(both), _mm256_srli_epi16(both, 4), 1);
    /* 128-bit chunks [q0, q1, q0>>4, q1>>4] -> [q0, q0>>4, q1, q1>>4] */
    return _mm512_and_si512(_mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0F));
}

/* Two Q5 blocks' quants in 0..31: the nibbles plus 16 where qh has the bit. */
static inline __m512i q5_2x32(const block_pair *p, size_t qs_off, size_t qh_off) {
    const __m512i q = nibbles_2x32(p->x0 + qs_off, p->x1 + qs_off);
    const __mmask64 high = (__mmask64)sf_x86_load_u32(p->x0 + qh_off) | (__mmask64)sf_x86_load_u32(p->x1 + qh_off) << 32;
    return _mm512_mask_add_epi8(q, high, q, _mm512_set1_epi8(16));
}

/* sum (u - off) * y per 4 bytes, u unsigned, y signed, off unsigned. */
static inline __m512i dot_offset(__m512i u, __m512i y, __m512i off) {
    const __m512i zero = _mm512_setzero_si512();
    return _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, u, y), _mm512_dpbusd_epi32(zero, off, y));
}

static inline __m512i dot_unsigned(__m512i u, __m512i y) { return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, y); }

/* acc + a block pair's scaled dots; *offset += their m_w * s_a terms
 * (Q4_1, Q5_1; the others leave it alone). */
typedef __m512 (*pair_dot_fn)(const block_pair *p, __m512 acc, float *offset);

/* The row loop shared by the kernels below (inlined: each passes a constant
 * pair function). x: nb weight blocks of xs bytes, y: nb activation blocks of ys bytes. */
static inline float dot_pairs(int64_t nb, const uint8_t *x, size_t xs, const uint8_t *y, size_t ys, pair_dot_fn pair) {
    __m512 acc = _mm512_setzero_ps();
    float offset = 0.0f;
    for (int64_t i = 0; i < nb; i += 2) {
        const block_pair p = pair_at(x, xs, y, ys, i, nb);
        acc = pair(&p, acc, &offset);
    }
    return _mm512_reduce_add_ps(acc) + offset;
}

/* m_w * s_a of both blocks (Q4_1 and Q5_1 have d and m at the same offsets). */
static_assert(offsetof(sf_block_q4_1, m) == offsetof(sf_block_q5_1, m), "Q4_1 / Q5_1 layout");
static inline float pair_offsets(const block_pair *p) {
    const size_t m = offsetof(sf_block_q4_1, m), s = offsetof(sf_block_q8_1, s);
    const float o0 = sf_x86_load_f16(p->x0 + m) * sf_x86_load_f16(p->y0 + s);
    return p->live ? o0 + sf_x86_load_f16(p->x1 + m) * sf_x86_load_f16(p->y1 + s) : o0;
}

static inline __m512 pair_q4_0(const block_pair *p, __m512 acc, float *offset) {
    (void)offset;
    const __m512i u = nibbles_2x32(p->x0 + offsetof(sf_block_q4_0, qs), p->x1 + offsetof(sf_block_q4_0, qs));
    const __m512i y = load_2x32(p->y0 + offsetof(sf_block_q8_0, qs), p->y1 + offsetof(sf_block_q8_0, qs));
    return _mm512_fmadd_ps(pair_scale(p, offsetof(sf_block_q4_0, d), offsetof(sf_block_q8_0, d)),
                           _mm512_cvtepi32_ps(dot_offset(u, y, _mm512_set1_epi8(8))), acc);
}

static inline __m512 pair_q4_1(const block_pair *p, __m512 acc, float *offset) {
    const __m512i u = nibbles_2x32(p->x0 + offsetof(sf_block_q4_1, qs), p->x1 + offsetof(sf_block_q4_1, qs));
    const __m512i y = load_2x32(p->y0 + offsetof(sf_block_q8_1, qs), p->y1 + offsetof(sf_block_q8_1, qs));
    *offset += pair_offsets(p);
    return _mm512_fmadd_ps(pair_scale(p, offsetof(sf_block_q4_1, d), offsetof(sf_block_q8_1, d)),
                           _mm512_cvtepi32_ps(dot_unsigned(u, y)), acc);
}

static inline __m512 pair_q5_0(const block_pair *p, __m512 acc, float *offset) {
    (void)offset;
    const __m512i u = q5_2x32(p, offsetof(sf_block_q5_0, qs), offsetof(sf_block_q5_0, qh));
    const __m512i y = load_2x32(p->y0 + offsetof(sf_block_q8_0, qs), p->y1 + offsetof(sf_block_q8_0, qs));
    return _mm512_fmadd_ps(pair_scale(p, offsetof(sf_block_q5_0, d), offsetof(sf_block_q8_0, d)),
                           _mm512_cvtepi32_ps(dot_offset(u, y, _mm512_set1_epi8(16))), acc);
}

static inline __m512 pair_q5_1(const block_pair *p, __m512 acc, float *offset) {
    const __m512i u = q5_2x32(p, offsetof(sf_block_q5_1, qs), offsetof(sf_block_q5_1, qh));
    const __m512i y = load_2x32(p->y0 + offsetof(sf_block_q8_1, qs), p->y1 + offsetof(sf_block_q8_1, qs));
    *offset += pair_offsets(p);
    return _mm512_fmadd_ps(pair_scale(p, offsetof(sf_block_q5_1, d), offsetof(sf_block_q8_1, d)),
                           _mm512_cvtepi32_ps(dot_unsigned(u, y)), acc);
}

/* Q8_0 weights are signed: u = q + 128 (an xor of the sign bit), off = 128. */
static inline __m512 pair_q8_0(const block_pair *p, __m512 acc, float *offset) {
    (void)offset;
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const __m512i u = _mm512_xor_si512(load_2x32(p->x0 + offsetof(sf_block_q8_0, qs), p->x1 + offsetof(sf_block_q8_0, qs)), bias);
    const __m512i y = load_2x32(p->y0 + offsetof(sf_block_q8_0, qs), p->y1 + offsetof(sf_block_q8_0, qs));
    return _mm512_fmadd_ps(pair_scale(p, offsetof(sf_block_q8_0, d), offsetof(sf_block_q8_0, d)),
                           _mm512_cvtepi32_ps(dot_offset(u, y, bias)), acc);
}

static float vec_dot_q4_0(int64_t n, const void *w, const void *a) {
    /* [n/32] Q4_0 blocks, [n/32] Q8_0 blocks */
    return dot_pairs(n / SF_QK, w, sizeof(sf_block_q4_0), a, sizeof(sf_block_q8_0), pair_q4_0);
}

static float vec_dot_q4_1(int64_t n, const void *w, const void *a) {
    /* [n/32] Q4_1 blocks, [n/32] Q8_1 blocks */
    return dot_pairs(n / SF_QK, w, sizeof(sf_block_q4_1), a, sizeof(sf_block_q8_1), pair_q4_1);
}

static float vec_dot_q5_0(int64_t n, const void *w, const void *a) {
    /* [n/32] Q5_0 blocks, [n/32] Q8_0 blocks */
    return dot_pairs(n / SF_QK, w, sizeof(sf_block_q5_0), a, sizeof(sf_block_q8_0), pair_q5_0);
}

static float vec_dot_q5_1(int64_t n, const void *w, const void *a) {
    /* [n/32] Q5_1 blocks, [n/32] Q8_1 blocks */
    return dot_pairs(n / SF_QK, w, sizeof(sf_block_q5_1), a, sizeof(sf_block_q8_1), pair_q5_1);
}

static float vec_dot_q8_0(int64_t n, const void *w, const void *a) {
    /* [n/32] Q8_0 blocks, both */
    return dot_pairs(n / SF_QK, w, sizeof(sf_block_q8_0), a, sizeof(sf_block_q8_0), pair_q8_0);
}

/* ------------------------------------------------ float dot products */

/* 16 values at a time with two accumulators; the tail (n % 16) goes
 * through masked loads, which read nothing past the row. */

static inline __m512 load16_f32(const uint8_t *p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }
static inline __m512 load16_f16(const uint8_t *p, __mmask16 k) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p)); }
static inline __m512 load16_bf16(const uint8_t *p, __mmask16 k) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
}

/* The loop shared by the three types: elem is the element size in bytes,
 * load one of the loaders above (inlined: the calls pass constants). */
static inline float dot_float(int64_t n, const uint8_t *x, const uint8_t *y, size_t elem,
                              __m512 (*load)(const uint8_t *, __mmask16)) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(load(x + i * elem, 0xFFFF), load(y + i * elem, 0xFFFF), acc0);
        acc1 = _mm512_fmadd_ps(load(x + (i + 16) * elem, 0xFFFF), load(y + (i + 16) * elem, 0xFFFF), acc1);
    }
    for (; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        acc0 = _mm512_fmadd_ps(load(x + i * elem, k), load(y + i * elem, k), acc0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

static float vec_dot_f32(int64_t n, const void *w, const void *a) { return dot_float(n, w, a, 4, load16_f32); }   /* [n] f32 each */
static float vec_dot_f16(int64_t n, const void *w, const void *a) { return dot_float(n, w, a, 2, load16_f16); }   /* [n] f16 each */
static float vec_dot_bf16(int64_t n, const void *w, const void *a) { return dot_float(n, w, a, 2, load16_bf16); } /* [n] bf16 each */
