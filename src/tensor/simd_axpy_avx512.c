/* 512-bit axpy_rows (types.h) for every type that has a reference one, with
 * the shape and float order of simd_axpy_avx2.c (passes of 4 rows over
 * 32-value slices of y held in two registers; for every value the rows in
 * order, one rounding per row: y = fma(s, v, y) with v the reference's value,
 * or y = fma(fl(s·d), q, y) for the symmetric types), so the same bound holds.
 *
 * What 512 bits change: 4-bit quants become floats by one vpermps on a
 * 16-entry table per 16 values (the levels q - 8 of Q4_0, IQ4_NL's levels, or
 * a block's or sub-block's dequantized values d·j + m for Q4_1 and Q4_K),
 * instead of a widening and a conversion; Q5's fifth bit is a mask register.
 * Uses AVX-512 F, BW and VL only (types.c installs this where the CPU has
 * them). */
#include "tensor/quant_ref.h"
#include "tensor/simd.h"
#include "tensor/simd_x86.h"

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__)
#error "simd_axpy_avx512.c needs -mavx512f -mavx512bw -mavx512vl"
#endif

/* ------------------------------------------------ 32 values of y */

typedef struct {
    __m512 lo, hi; /* values 0..15, 16..31 */
} z32;

static inline z32 z32_load(const float *y) { return (z32){_mm512_loadu_ps(y), _mm512_loadu_ps(y + 16)}; }

static inline void z32_store(float *y, z32 a) {
    _mm512_storeu_ps(y, a.lo);
    _mm512_storeu_ps(y + 16, a.hi);
}

/* 16 int8 / uint8 at p as 16 int32. */
static inline __m512i i8x16(const uint8_t *p) { return _mm512_cvtepi8_epi32(sf_x86_loadu128(p)); }
static inline __m512i u8x16(const uint8_t *p) { return _mm512_cvtepu8_epi32(sf_x86_loadu128(p)); }

/* The 16 floats 0, 1, .., 15 (the table index j). */
static inline __m512 iota16(void) { return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }

/* acc += a · q for 32 int8 q in element order (a_lo: values 0..15, a_hi:
 * 16..31); q goes through the stack, widened from memory. */
static inline z32 add_sym(z32 acc, __m256i q, __m512 a_lo, __m512 a_hi) {
    _Alignas(32) uint8_t b[32];
    _mm256_store_si256((__m256i *)b, q);
    __asm__("" : "+m"(b)); /* widen from memory (see simd_axpy_avx2.c) */
    acc.lo = _mm512_fmadd_ps(a_lo, _mm512_cvtepi32_ps(i8x16(b)), acc.lo);
    acc.hi = _mm512_fmadd_ps(a_hi, _mm512_cvtepi32_ps(i8x16(b + 16)), acc.hi);
    return acc;
}

/* acc += s · (d · q + m), the value rounded once (the reference's). */
static inline z32 add_affine(z32 acc, __m256i q, __m512 d_lo, __m512 m_lo, __m512 d_hi, __m512 m_hi, __m512 s) {
    _Alignas(32) uint8_t b[32];
    _mm256_store_si256((__m256i *)b, q);
    __asm__("" : "+m"(b));
    acc.lo = _mm512_fmadd_ps(s, _mm512_fmadd_ps(d_lo, _mm512_cvtepi32_ps(i8x16(b)), m_lo), acc.lo);
    acc.hi = _mm512_fmadd_ps(s, _mm512_fmadd_ps(d_hi, _mm512_cvtepi32_ps(i8x16(b + 16)), m_hi), acc.hi);
    return acc;
}

/* The driver: passes of 4 rows, then one of the 1..3 left. `pass` is an
 * always_inline function of (n, rows, s, G, y); each G gets its own copy.
 * (No software prefetch: prefetching the next pass's rows measured no faster,
 * rows in L3 or in DRAM, contiguous or scattered.) */
#define AXPY_DRIVER(name, pass)                                                                                        \
    static void name(int64_t n, const void *const *rows, const float *s, int k, float *y) {                            \
        int r = 0;                                                                                                     \
        for (; r + 4 <= k; r += 4) pass(n, rows + r, s + r, 4, y);                                                     \
        switch (k - r) {                                                                                               \
        case 3: pass(n, rows + r, s + r, 3, y); break;                                                                 \
        case 2: pass(n, rows + r, s + r, 2, y); break;                                                                 \
        case 1: pass(n, rows + r, s + r, 1, y); break;                                                                 \
        default: break;                                                                                                \
        }                                                                                                              \
    }

#define INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------ float types */

static inline __m512 load16_f32(const uint8_t *p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }
static inline __m512 load16_f16(const uint8_t *p, __mmask16 k) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p));
}
static inline __m512 load16_bf16(const uint8_t *p, __mmask16 k) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
}

/* G rows of n elements of elem bytes: 32 values at a time, the tail (n % 32)
 * 16 at a time under a mask that reads and writes nothing past n. */
INLINE void pass_float(int64_t n, const void *const *rows, const float *s, int G, float *y, size_t elem,
                       __m512 (*load16)(const uint8_t *, __mmask16)) {
    const uint8_t *p[4];
    __m512 sv[4];
    for (int g = 0; g < G; g++) p[g] = rows[g], sv[g] = _mm512_set1_ps(s[g]);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        z32 acc = z32_load(y + i);
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            acc.lo = _mm512_fmadd_ps(sv[g], load16(p[g] + i * elem, 0xFFFF), acc.lo);
            acc.hi = _mm512_fmadd_ps(sv[g], load16(p[g] + (i + 16) * elem, 0xFFFF), acc.hi);
        }
        z32_store(y + i, acc);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 acc = _mm512_maskz_loadu_ps(m, y + i);
        for (int g = 0; g < G; g++) acc = _mm512_fmadd_ps(sv[g], load16(p[g] + i * elem, m), acc);
        _mm512_mask_storeu_ps(y + i, m, acc);
    }
}

INLINE void pass_f32(int64_t n, const void *const *rows, const float *s, int G, float *y) {
    pass_float(n, rows, s, G, y, 4, load16_f32);
}
INLINE void pass_f16(int64_t n, const void *const *rows, const float *s, int G, float *y) {
    pass_float(n, rows, s, G, y, 2, load16_f16);
}
INLINE void pass_bf16(int64_t n, const void *const *rows, const float *s, int G, float *y) {
    pass_float(n, rows, s, G, y, 2, load16_bf16);
}
AXPY_DRIVER(axpy_f32, pass_f32)
AXPY_DRIVER(axpy_f16, pass_f16)
AXPY_DRIVER(axpy_bf16, pass_bf16)

/* ------------------------------------------------ legacy blocks (32 values) */

/* As in simd_axpy_avx2.c: a pass goes over y in chunks of up to LG_CHUNK
 * blocks, first the rows' block scales into par (s·d, or d and m for Q4_1 /
 * Q5_1), then the blocks two at a time (two independent chains of FMAs), the
 * scales broadcast from par. */
#define LG_CHUNK 32

/* The 4 f16 at p as floats (reads 8 bytes: every legacy block has them). */
static inline __m128 f16x4(const uint8_t *p) { return _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)p)); }
static inline uint64_t ld16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

/* par[b] = s·d of the m blocks x + b·bytes: four f16 packed in a general
 * register and converted at once (the packing runs on the integer ports). */
static inline void scales_sym(const uint8_t *x, size_t bytes, int m, float s, float *par) {
    const __m128 sv = _mm_set1_ps(s);
    int b = 0;
    for (; b + 4 <= m; b += 4, x += 4 * bytes) {
        const uint64_t w = ld16(x) | ld16(x + bytes) << 16 | ld16(x + 2 * bytes) << 32 | ld16(x + 3 * bytes) << 48;
        _mm_storeu_ps(par + b, _mm_mul_ps(sv, _mm_cvtph_ps(_mm_cvtsi64_si128((long long)w))));
    }
    for (; b < m; b++, x += bytes) par[b] = s * _mm_cvtss_f32(f16x4(x));
}

/* par[2b], par[2b + 1] = d, m of the m blocks x + b·bytes, two at a time. */
static inline void scales_dm(const uint8_t *x, size_t bytes, int m, float s, float *par) {
    (void)s;
    int b = 0;
    for (; b + 2 <= m; b += 2, x += 2 * bytes) {
        const uint64_t w = sf_x86_load_u32(x) | (uint64_t)sf_x86_load_u32(x + bytes) << 32;
        _mm_storeu_ps(par + 2 * b, _mm_cvtph_ps(_mm_cvtsi64_si128((long long)w)));
    }
    if (b < m) _mm_storel_pi((__m64 *)(par + 2 * b), f16x4(x));
}

/* acc += s · block x; sv = s in every lane, tab a table the pass set up once
 * (the levels of Q4_0 / IQ4_NL, unused by the others). Nibble bytes widen to
 * int32 q; vpermps reads only the low 4 bits of q, so q indexes with the low
 * nibble as it is and with the high one after q >> 4. */

static inline z32 block_q8_0(z32 acc, const uint8_t *x, const float *par, __m512 sv, __m512 tab) {
    (void)sv, (void)tab;
    const __m512 a = _mm512_set1_ps(par[0]);
    const uint8_t *qs = x + offsetof(sf_block_q8_0, qs);
    acc.lo = _mm512_fmadd_ps(a, _mm512_cvtepi32_ps(i8x16(qs)), acc.lo);
    acc.hi = _mm512_fmadd_ps(a, _mm512_cvtepi32_ps(i8x16(qs + 16)), acc.hi);
    return acc;
}

/* Q4_0 and IQ4_NL: y = fma(fl(s·d), level, y), the level from tab (qs at
 * byte 2 in both blocks). */
static inline z32 block_levels(z32 acc, const uint8_t *x, const float *par, __m512 sv, __m512 tab) {
    (void)sv;
    const __m512 a = _mm512_set1_ps(par[0]);
    const __m512i q = u8x16(x + 2);
    acc.lo = _mm512_fmadd_ps(a, _mm512_permutexvar_ps(q, tab), acc.lo);
    acc.hi = _mm512_fmadd_ps(a, _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), tab), acc.hi);
    return acc;
}

/* Q4_1: the block's 16 values d·j + m (the reference's, one rounding) in a
 * table, then y = fma(s, v, y). */
static inline z32 block_q4_1(z32 acc, const uint8_t *x, const float *par, __m512 sv, __m512 tab) {
    (void)tab;
    const __m512 v = _mm512_fmadd_ps(iota16(), _mm512_set1_ps(par[0]), _mm512_set1_ps(par[1]));
    const __m512i q = u8x16(x + offsetof(sf_block_q4_1, qs));
    acc.lo = _mm512_fmadd_ps(sv, _mm512_permutexvar_ps(q, v), acc.lo);
    acc.hi = _mm512_fmadd_ps(sv, _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), v), acc.hi);
    return acc;
}

/* Q5_0: the level j - 16 of the low 4 bits, + 16 where qh has the bit (exact). */
static inline z32 block_q5_0(z32 acc, const uint8_t *x, const float *par, __m512 sv, __m512 tab) {
    (void)sv;
    const __m512 a = _mm512_set1_ps(par[0]), sixteen = _mm512_set1_ps(16.0f);
    const uint32_t qh = sf_x86_load_u32(x + offsetof(sf_block_q5_0, qh));
    const __m512i q = u8x16(x + offsetof(sf_block_q5_0, qs));
    __m512 lo = _mm512_permutexvar_ps(q, tab), hi = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), tab);
    lo = _mm512_mask_add_ps(lo, (__mmask16)qh, lo, sixteen);
    hi = _mm512_mask_add_ps(hi, (__mmask16)(qh >> 16), hi, sixteen);
    acc.lo = _mm512_fmadd_ps(a, lo, acc.lo);
    acc.hi = _mm512_fmadd_ps(a, hi, acc.hi);
    return acc;
}

/* Q5_1: the block's 32 values d·j + m in two tables, the fifth bit picking. */
static inline z32 block_q5_1(z32 acc, const uint8_t *x, const float *par, __m512 sv, __m512 tab) {
    (void)tab;
    const __m512 d = _mm512_set1_ps(par[0]), m = _mm512_set1_ps(par[1]);
    const __m512 v0 = _mm512_fmadd_ps(iota16(), d, m);
    const __m512 v1 = _mm512_fmadd_ps(_mm512_add_ps(iota16(), _mm512_set1_ps(16.0f)), d, m);
    const uint32_t qh = sf_x86_load_u32(x + offsetof(sf_block_q5_1, qh));
    const __m512i q = u8x16(x + offsetof(sf_block_q5_1, qs)), qhi = _mm512_srli_epi32(q, 4);
    const __m512 lo = _mm512_mask_permutexvar_ps(_mm512_permutexvar_ps(q, v0), (__mmask16)qh, q, v1);
    const __m512 hi = _mm512_mask_permutexvar_ps(_mm512_permutexvar_ps(qhi, v0), (__mmask16)(qh >> 16), qhi, v1);
    acc.lo = _mm512_fmadd_ps(sv, lo, acc.lo);
    acc.hi = _mm512_fmadd_ps(sv, hi, acc.hi);
    return acc;
}

/* One pass of G rows over n/32 blocks of `bytes` bytes. */
#define LEGACY_PASS(name, bytes, scales, stride, block, table)                                                         \
    INLINE void name(int64_t n, const void *const *rows, const float *s, int G, float *y) {                            \
        const uint8_t *p[4];                                                                                           \
        __m512 sv[4];                                                                                                  \
        for (int g = 0; g < G; g++) p[g] = rows[g], sv[g] = _mm512_set1_ps(s[g]);                                      \
        const __m512 tab = table;                                                                                      \
        const int64_t nb = n / SF_QK;                                                                                  \
        for (int64_t b0 = 0; b0 < nb; b0 += LG_CHUNK) {                                                                \
            const int m = nb - b0 < LG_CHUNK ? (int)(nb - b0) : LG_CHUNK;                                              \
            float par[4][2 * LG_CHUNK];                                                                                \
            for (int g = 0; g < G; g++) scales(p[g] + b0 * (bytes), bytes, m, s[g], par[g]);                           \
            int b = 0;                                                                                                 \
            for (; b + 2 <= m; b += 2) {                                                                               \
                float *yb = y + (b0 + b) * SF_QK;                                                                      \
                z32 acc0 = z32_load(yb), acc1 = z32_load(yb + SF_QK);                                                  \
                _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) {                                                  \
                    const uint8_t *x = p[g] + (b0 + b) * (bytes);                                                      \
                    acc0 = block(acc0, x, par[g] + b * (stride), sv[g], tab);                                          \
                    acc1 = block(acc1, x + (bytes), par[g] + (b + 1) * (stride), sv[g], tab);                          \
                }                                                                                                      \
                z32_store(yb, acc0);                                                                                   \
                z32_store(yb + SF_QK, acc1);                                                                           \
            }                                                                                                          \
            if (b < m) {                                                                                               \
                float *yb = y + (b0 + b) * SF_QK;                                                                      \
                z32 acc = z32_load(yb);                                                                                \
                _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) acc =                                              \
                    block(acc, p[g] + (b0 + b) * (bytes), par[g] + b * (stride), sv[g], tab);                          \
                z32_store(yb, acc);                                                                                    \
            }                                                                                                          \
        }                                                                                                              \
    }

#define NO_TABLE _mm512_setzero_ps()
#define Q4_0_LEVELS _mm512_sub_ps(iota16(), _mm512_set1_ps(8.0f))
#define Q5_0_LEVELS _mm512_sub_ps(iota16(), _mm512_set1_ps(16.0f))
#define IQ4_NL_LEVELS _mm512_cvtepi32_ps(i8x16((const uint8_t *)sf_iq4nl_values))

LEGACY_PASS(pass_q4_0, sizeof(sf_block_q4_0), scales_sym, 1, block_levels, Q4_0_LEVELS)
LEGACY_PASS(pass_q4_1, sizeof(sf_block_q4_1), scales_dm, 2, block_q4_1, NO_TABLE)
LEGACY_PASS(pass_q5_0, sizeof(sf_block_q5_0), scales_sym, 1, block_q5_0, Q5_0_LEVELS)
LEGACY_PASS(pass_q5_1, sizeof(sf_block_q5_1), scales_dm, 2, block_q5_1, NO_TABLE)
LEGACY_PASS(pass_q8_0, sizeof(sf_block_q8_0), scales_sym, 1, block_q8_0, NO_TABLE)
LEGACY_PASS(pass_iq4_nl, sizeof(sf_block_iq4_nl), scales_sym, 1, block_levels, IQ4_NL_LEVELS)
AXPY_DRIVER(axpy_q4_0, pass_q4_0)
AXPY_DRIVER(axpy_q4_1, pass_q4_1)
AXPY_DRIVER(axpy_q5_0, pass_q5_0)
AXPY_DRIVER(axpy_q5_1, pass_q5_1)
AXPY_DRIVER(axpy_q8_0, pass_q8_0)
AXPY_DRIVER(axpy_iq4_nl, pass_iq4_nl)

/* ------------------------------------------------ K-quants (256 values, 8 slices of 32) */

/* As in simd_axpy_avx2.c: per row and super-block, decode() turns the scales
 * into floats par[32] once; slice(acc, x, t, par, sv) adds values 32t..32t+31. */

/* Q2_K: value e = 128h + 32j + l (slice t = 4h + j) is (qs[32h + l] >> 2j) & 3,
 * v = dl·q − ml per 16: par = dl[16], −ml[16]. */
static inline void decode_q2_K(const uint8_t *x, float s, float par[32]) {
    (void)s;
    const __m512i sc = u8x16(x + offsetof(sf_block_q2_K, scales));
    const __m512 d = _mm512_set1_ps(sf_x86_load_f16(x + offsetof(sf_block_q2_K, d)));
    const __m512 ndmin = _mm512_set1_ps(-sf_x86_load_f16(x + offsetof(sf_block_q2_K, dmin)));
    _mm512_storeu_ps(par, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_and_si512(sc, _mm512_set1_epi32(0x0F)))));
    _mm512_storeu_ps(par + 16, _mm512_mul_ps(ndmin, _mm512_cvtepi32_ps(_mm512_srli_epi32(sc, 4))));
}

static inline z32 slice_q2_K(z32 acc, const uint8_t *x, int t, const float *par, __m512 sv) {
    const __m256i raw = sf_x86_loadu256(x + offsetof(sf_block_q2_K, qs) + 32 * (t / 4));
    const __m256i q = _mm256_and_si256(_mm256_srlv_epi32(raw, _mm256_set1_epi32(2 * (t % 4))), _mm256_set1_epi8(3));
    return add_affine(acc, q, _mm512_set1_ps(par[2 * t]), _mm512_set1_ps(par[16 + 2 * t]),
                      _mm512_set1_ps(par[2 * t + 1]), _mm512_set1_ps(par[17 + 2 * t]), sv);
}

/* Q3_K: Q2_K's 2 bits, minus 4 where bit t of hmask[l] is clear; v = dl·q
 * per 16, dl = d·scale: par = s·dl[16]. */
static inline void decode_q3_K(const uint8_t *x, float s, float par[32]) {
    const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sf_x86_q3_K_scales(x + offsetof(sf_block_q3_K, scales))));
    const __m512 d = _mm512_set1_ps(sf_x86_load_f16(x + offsetof(sf_block_q3_K, d)));
    _mm512_storeu_ps(par, _mm512_mul_ps(_mm512_set1_ps(s), _mm512_mul_ps(d, sc)));
}

static inline z32 slice_q3_K(z32 acc, const uint8_t *x, int t, const float *par, __m512 sv) {
    (void)sv;
    const __m256i low =
        _mm256_and_si256(_mm256_srlv_epi32(sf_x86_loadu256(x + offsetof(sf_block_q3_K, qs) + 32 * (t / 4)),
                                           _mm256_set1_epi32(2 * (t % 4))),
                         _mm256_set1_epi8(3));
    /* + 4 where bit t of hmask[l] is set (a mask of those bytes), then - 4 */
    const __mmask32 hbit =
        _mm256_test_epi8_mask(sf_x86_loadu256(x + offsetof(sf_block_q3_K, hmask)), _mm256_set1_epi8((char)(1 << t)));
    const __m256i q = _mm256_sub_epi8(_mm256_mask_add_epi8(low, hbit, low, _mm256_set1_epi8(4)), _mm256_set1_epi8(4));
    return add_sym(acc, q, _mm512_set1_ps(par[2 * t]), _mm512_set1_ps(par[2 * t + 1]));
}

/* Q4_K: v = d1·q − m1 per 32-value sub-block t (the low nibbles of
 * qs[32c..32c+31] for t = 2c, the high ones for t = 2c + 1): par = d1[8],
 * −m1[8]. Two sub-blocks share their bytes, so a step adds 64 values: each
 * sub-block's 16 values d1·j − m1 (the reference's, one rounding) in a table,
 * then y = fma(s, table[q], y). */
static inline void decode_k4(const uint8_t *x, float par[32]) {
    uint8_t sc[16];
    sf_x86_k4_scales(x + offsetof(sf_block_q4_K, scales), sc, sc + 8);
    const __m512 sm = _mm512_cvtepi32_ps(u8x16(sc)); /* sc[0..7], m[0..7] */
    /* d, -dmin (the block's first two f16; the 8 bytes read end in its scales),
     * each in 8 lanes */
    const __m128 dm =
        _mm_xor_ps(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)x)), _mm_setr_ps(0.0f, -0.0f, 0.0f, 0.0f));
    const __m512i pick = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    _mm512_storeu_ps(par, _mm512_mul_ps(_mm512_permutexvar_ps(pick, _mm512_castps128_ps512(dm)), sm));
}

static inline void decode_q4_K(const uint8_t *x, float s, float par[32]) { (void)s, decode_k4(x, par); }
static inline void decode_q5_K(const uint8_t *x, float s, float par[32]) { (void)s, decode_k4(x, par); }

INLINE void pass_q4_K(int64_t n, const void *const *rows, const float *s, int G, float *y) {
    const uint8_t *p[4];
    __m512 sv[4];
    for (int g = 0; g < G; g++) p[g] = rows[g], sv[g] = _mm512_set1_ps(s[g]);
    for (int64_t b = 0; b < n / SF_QK_K; b++) {
        float par[4][32];
        for (int g = 0; g < G; g++) decode_k4(p[g] + b * sizeof(sf_block_q4_K), par[g]);
        for (int c = 0; c < 4; c++) {
            float *yc = y + b * SF_QK_K + 64 * c;
            __m512 a0 = _mm512_loadu_ps(yc), a1 = _mm512_loadu_ps(yc + 16), a2 = _mm512_loadu_ps(yc + 32),
                   a3 = _mm512_loadu_ps(yc + 48);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++) {
                const uint8_t *qs = p[g] + b * sizeof(sf_block_q4_K) + offsetof(sf_block_q4_K, qs) + 32 * c;
                const float *pg = par[g];
                const __m512 v0 = _mm512_fmadd_ps(iota16(), _mm512_set1_ps(pg[2 * c]), _mm512_set1_ps(pg[8 + 2 * c]));
                const __m512 v1 =
                    _mm512_fmadd_ps(iota16(), _mm512_set1_ps(pg[2 * c + 1]), _mm512_set1_ps(pg[9 + 2 * c]));
                const __m512i q0 = u8x16(qs), q1 = u8x16(qs + 16);
                a0 = _mm512_fmadd_ps(sv[g], _mm512_permutexvar_ps(q0, v0), a0);
                a1 = _mm512_fmadd_ps(sv[g], _mm512_permutexvar_ps(q1, v0), a1);
                a2 = _mm512_fmadd_ps(sv[g], _mm512_permutexvar_ps(_mm512_srli_epi32(q0, 4), v1), a2);
                a3 = _mm512_fmadd_ps(sv[g], _mm512_permutexvar_ps(_mm512_srli_epi32(q1, 4), v1), a3);
            }
            _mm512_storeu_ps(yc, a0);
            _mm512_storeu_ps(yc + 16, a1);
            _mm512_storeu_ps(yc + 32, a2);
            _mm512_storeu_ps(yc + 48, a3);
        }
    }
}

/* Q5_K: Q4_K's nibbles plus 16 where bit t of qh[l] is set. */
static inline z32 slice_q5_K(z32 acc, const uint8_t *x, int t, const float *par, __m512 sv) {
    const __m512 d1 = _mm512_set1_ps(par[t]), m1 = _mm512_set1_ps(par[8 + t]);
    const __m256i raw = sf_x86_loadu256(x + offsetof(sf_block_q5_K, qs) + 32 * (t / 2));
    const __m256i nib = t % 2 ? sf_x86_hi_nibbles(raw) : sf_x86_lo_nibbles(raw);
    const __mmask32 hbit =
        _mm256_test_epi8_mask(sf_x86_loadu256(x + offsetof(sf_block_q5_K, qh)), _mm256_set1_epi8((char)(1 << t)));
    const __m256i q = _mm256_mask_add_epi8(nib, hbit, nib, _mm256_set1_epi8(16));
    return add_affine(acc, q, d1, m1, d1, m1, sv);
}

/* Q6_K: value e = 128h + 32r + l (slice t = 4h + r) has its low 4 bits in
 * ql[64h + 32(r & 1) + l] (low nibble for r < 2), its high 2 in bits 2r of
 * qh[32h + l]; v = (d·sc)·(q − 32) per 16: par = s·d·sc[16]. */
static inline void decode_q6_K(const uint8_t *x, float s, float par[32]) {
    const __m512 sc = _mm512_cvtepi32_ps(i8x16(x + offsetof(sf_block_q6_K, scales)));
    const __m512 d = _mm512_set1_ps(sf_x86_load_f16(x + offsetof(sf_block_q6_K, d)));
    _mm512_storeu_ps(par, _mm512_mul_ps(_mm512_set1_ps(s), _mm512_mul_ps(d, sc)));
}

/* A step adds a half h (128 values, 8 registers of y): its 6-bit values are
 * put together 64 bytes at a time (r = 0, 1 from the low nibbles of
 * ql[64h..64h+63], r = 2, 3 from the high ones; qh[32h..32h+31] in both
 * halves of a register, shifted by 2r per half), then widened from memory. */
INLINE void pass_q6_K(int64_t n, const void *const *rows, const float *s, int G, float *y) {
    const uint8_t *p[4];
    for (int g = 0; g < G; g++) p[g] = rows[g];
    const __m512i shift01 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i shift23 = _mm512_add_epi16(shift01, _mm512_set1_epi16(4));
    const __m512i m3 = _mm512_set1_epi8(3), m15 = _mm512_set1_epi8(15), m32 = _mm512_set1_epi8(32);
    for (int64_t b = 0; b < n / SF_QK_K; b++) {
        float par[4][32];
        for (int g = 0; g < G; g++) decode_q6_K(p[g] + b * sizeof(sf_block_q6_K), s[g], par[g]);
        for (int h = 0; h < 2; h++) {
            float *yh = y + b * SF_QK_K + 128 * h;
            __m512 acc[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) acc[j] = _mm512_loadu_ps(yh + 16 * j);
            for (int g = 0; g < G; g++) {
                const uint8_t *x = p[g] + b * sizeof(sf_block_q6_K);
                const __m512i ql = _mm512_loadu_si512(x + offsetof(sf_block_q6_K, ql) + 64 * h);
                const __m512i qh = _mm512_broadcast_i64x4(sf_x86_loadu256(x + offsetof(sf_block_q6_K, qh) + 32 * h));
                const __m512i h01 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift01), m3), 4);
                const __m512i h23 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift23), m3), 4);
                _Alignas(64) int8_t q[128];
                _mm512_store_si512(q, _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(ql, m15), h01), m32));
                _mm512_store_si512(
                    q + 64,
                    _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m15), h23), m32));
                __asm__("" : "+m"(q));
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++)
                    acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(par[g][8 * h + j]),
                                             _mm512_cvtepi32_ps(i8x16((const uint8_t *)q + 16 * j)), acc[j]);
            }
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) _mm512_storeu_ps(yh + 16 * j, acc[j]);
        }
    }
}

#define KQ_PASS(name, bytes, decode, slice)                                                                            \
    INLINE void name(int64_t n, const void *const *rows, const float *s, int G, float *y) {                            \
        const uint8_t *p[4];                                                                                           \
        __m512 sv[4];                                                                                                  \
        for (int g = 0; g < G; g++) p[g] = rows[g], sv[g] = _mm512_set1_ps(s[g]);                                      \
        for (int64_t b = 0; b < n / SF_QK_K; b++) {                                                                    \
            float par[4][32];                                                                                          \
            for (int g = 0; g < G; g++) decode(p[g] + b * (bytes), s[g], par[g]);                                      \
            for (int t = 0; t < 8; t++) {                                                                              \
                float *yt = y + b * SF_QK_K + 32 * t;                                                                  \
                z32 acc = z32_load(yt);                                                                                \
                _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) acc =                                              \
                    slice(acc, p[g] + b * (bytes), t, par[g], sv[g]);                                                  \
                z32_store(yt, acc);                                                                                    \
            }                                                                                                          \
        }                                                                                                              \
    }

KQ_PASS(pass_q2_K, sizeof(sf_block_q2_K), decode_q2_K, slice_q2_K)
KQ_PASS(pass_q3_K, sizeof(sf_block_q3_K), decode_q3_K, slice_q3_K)
KQ_PASS(pass_q5_K, sizeof(sf_block_q5_K), decode_q5_K, slice_q5_K)
AXPY_DRIVER(axpy_q2_K, pass_q2_K)
AXPY_DRIVER(axpy_q3_K, pass_q3_K)
AXPY_DRIVER(axpy_q4_K, pass_q4_K)
AXPY_DRIVER(axpy_q5_K, pass_q5_K)
AXPY_DRIVER(axpy_q6_K, pass_q6_K)

void sf_axpy_avx512_install(sf_type_traits fast[SF_TYPE_COUNT]) {
    fast[SF_TYPE_F32].axpy_rows = axpy_f32;
    fast[SF_TYPE_F16].axpy_rows = axpy_f16;
    fast[SF_TYPE_BF16].axpy_rows = axpy_bf16;
    fast[SF_TYPE_Q4_0].axpy_rows = axpy_q4_0;
    fast[SF_TYPE_Q4_1].axpy_rows = axpy_q4_1;
    fast[SF_TYPE_Q5_0].axpy_rows = axpy_q5_0;
    fast[SF_TYPE_Q5_1].axpy_rows = axpy_q5_1;
    fast[SF_TYPE_Q8_0].axpy_rows = axpy_q8_0;
    fast[SF_TYPE_IQ4_NL].axpy_rows = axpy_iq4_nl;
    fast[SF_TYPE_Q2_K].axpy_rows = axpy_q2_K;
    fast[SF_TYPE_Q3_K].axpy_rows = axpy_q3_K;
    fast[SF_TYPE_Q4_K].axpy_rows = axpy_q4_K;
    fast[SF_TYPE_Q5_K].axpy_rows = axpy_q5_K;
    fast[SF_TYPE_Q6_K].axpy_rows = axpy_q6_K;
}
