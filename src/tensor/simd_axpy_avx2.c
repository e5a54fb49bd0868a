/* AVX2 axpy_rows (types.h) for every type that has a reference one:
 * y[0..n) += Σ_r s[r] · row_r, the sparse FFN's scaled accumulation of its
 * active rows.
 *
 * Shape: rows go in passes of 4 (the last pass 1..3). A pass walks y in
 * slices of 32 values (64 for the legacy types: two blocks, two independent
 * chains of FMAs): the slice is loaded into registers once, the pass's rows
 * are added to it in order, and it is stored once; each row is read once,
 * front to back. The weights are the bandwidth cost, y stays in L1. Per 8
 * values the work is one widening to int32 (the shuffle port's one uop), one
 * conversion and one FMA (two with an offset); the scales are decoded apart
 * (per chunk of blocks or per super-block), off the inner loop.
 *
 * Float order: the reference's (tensor/axpy.c: for every value the rows in
 * order r = 0..k-1), with one rounding per row where the reference has two
 * (its product s·v, then the sum):
 *   - float types and the types with an offset (Q4_1, Q5_1, Q2_K, Q4_K,
 *     Q5_K): v as the reference computes it (d·q + m has one rounding there,
 *     d·q being exact, so fma(d, q, m) is the same value), then
 *     y = fma(s, v, y);
 *   - the symmetric types (Q4_0, Q5_0, Q8_0, IQ4_NL, Q3_K, Q6_K):
 *     y = fma(fl(s·d), q, y), d the (sub-)block's scale (d·q is exact but for
 *     Q6_K, whose reference rounds it once).
 * So each row's term differs from the reference's by at most a rounding or
 * two of s·v: per value |fast − ref| is a few ulps of |y| + Σ_r |s_r·v_r|
 * (tests/test_axpy.c holds it to 4e-7 of that). The 512-bit kernels compute
 * the same values in the same order, so both give the same bits. */
#include "tensor/quant_ref.h"
#include "tensor/simd.h"
#include "tensor/simd_x86.h"

/* ------------------------------------------------ 32 values of y */

typedef struct {
    __m256 v0, v1, v2, v3; /* values 0..7, 8..15, 16..23, 24..31 */
} y32;

static inline y32 y32_load(const float *y) {
    return (y32){_mm256_loadu_ps(y), _mm256_loadu_ps(y + 8), _mm256_loadu_ps(y + 16), _mm256_loadu_ps(y + 24)};
}

static inline void y32_store(float *y, y32 a) {
    _mm256_storeu_ps(y, a.v0);
    _mm256_storeu_ps(y + 8, a.v1);
    _mm256_storeu_ps(y + 16, a.v2);
    _mm256_storeu_ps(y + 24, a.v3);
}

/* 8 int8 at p as floats (exact). */
static inline __m256 i8x8_ps(const void *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* The 32 int8 q at b (element order, just stored) as floats, 8 per vector.
 * The empty asm makes the compiler read them back from memory: vpmovsxbd from
 * memory is one shuffle per 8 values, from a register GCC spends two or three. */
#define WIDEN_I8(b, f0, f1, f2, f3)                                                                                    \
    __asm__("" : "+m"(b));                                                                                             \
    const __m256 f0 = i8x8_ps(b), f1 = i8x8_ps(b + 8), f2 = i8x8_ps(b + 16), f3 = i8x8_ps(b + 24)

/* acc += a · q for 32 int8 q in element order: a_lo scales values 0..15,
 * a_hi 16..31. */
static inline y32 add_sym(y32 acc, __m256i q, __m256 a_lo, __m256 a_hi) {
    _Alignas(32) int8_t b[32];
    _mm256_store_si256((__m256i *)b, q);
    WIDEN_I8(b, f0, f1, f2, f3);
    acc.v0 = _mm256_fmadd_ps(a_lo, f0, acc.v0);
    acc.v1 = _mm256_fmadd_ps(a_lo, f1, acc.v1);
    acc.v2 = _mm256_fmadd_ps(a_hi, f2, acc.v2);
    acc.v3 = _mm256_fmadd_ps(a_hi, f3, acc.v3);
    return acc;
}

/* acc += s · v for 32 values v = d · f + m, each rounded once (the
 * reference's value): d_lo, m_lo for values 0..15, d_hi, m_hi for 16..31. */
static inline y32 add_affine_ps(y32 acc, __m256 f0, __m256 f1, __m256 f2, __m256 f3, __m256 d_lo, __m256 m_lo,
                                __m256 d_hi, __m256 m_hi, __m256 s) {
    acc.v0 = _mm256_fmadd_ps(s, _mm256_fmadd_ps(d_lo, f0, m_lo), acc.v0);
    acc.v1 = _mm256_fmadd_ps(s, _mm256_fmadd_ps(d_lo, f1, m_lo), acc.v1);
    acc.v2 = _mm256_fmadd_ps(s, _mm256_fmadd_ps(d_hi, f2, m_hi), acc.v2);
    acc.v3 = _mm256_fmadd_ps(s, _mm256_fmadd_ps(d_hi, f3, m_hi), acc.v3);
    return acc;
}

/* The same for 32 int8 q. */
static inline y32 add_affine(y32 acc, __m256i q, __m256 d_lo, __m256 m_lo, __m256 d_hi, __m256 m_hi, __m256 s) {
    _Alignas(32) int8_t b[32];
    _mm256_store_si256((__m256i *)b, q);
    WIDEN_I8(b, f0, f1, f2, f3);
    return add_affine_ps(acc, f0, f1, f2, f3, d_lo, m_lo, d_hi, m_hi, s);
}

/* The 4 f16 at p as floats (reads 8 bytes). */
static inline __m128 f16x4(const uint8_t *p) { return _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)p)); }

/* 8 uint8 at p as int32. */
static inline __m256i u8x8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }

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

static inline __m256 load8_f32(const uint8_t *p) { return _mm256_loadu_ps((const float *)p); }
static inline __m256 load8_f16(const uint8_t *p) { return _mm256_cvtph_ps(sf_x86_loadu128(p)); }
static inline __m256 load8_bf16(const uint8_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(sf_x86_loadu128(p)), 16));
}
static inline float load1_bf16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return sf_bf16_to_fp32(h);
}

/* G rows of n elements of elem bytes: 32 values at a time, then 8, then one
 * (any n: the block size is 1), every value y = fma(s, v, y). */
INLINE void pass_float(int64_t n, const void *const *rows, const float *s, int G, float *y, size_t elem,
                       __m256 (*load8)(const uint8_t *), float (*load1)(const uint8_t *)) {
    const uint8_t *p[4];
    __m256 sv[4];
    for (int g = 0; g < G; g++) p[g] = rows[g], sv[g] = _mm256_set1_ps(s[g]);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        y32 acc = y32_load(y + i);
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            const uint8_t *x = p[g] + i * elem;
            acc.v0 = _mm256_fmadd_ps(sv[g], load8(x), acc.v0);
            acc.v1 = _mm256_fmadd_ps(sv[g], load8(x + 8 * elem), acc.v1);
            acc.v2 = _mm256_fmadd_ps(sv[g], load8(x + 16 * elem), acc.v2);
            acc.v3 = _mm256_fmadd_ps(sv[g], load8(x + 24 * elem), acc.v3);
        }
        y32_store(y + i, acc);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 acc = _mm256_loadu_ps(y + i);
        for (int g = 0; g < G; g++) acc = _mm256_fmadd_ps(sv[g], load8(p[g] + i * elem), acc);
        _mm256_storeu_ps(y + i, acc);
    }
    for (; i < n; i++) {
        __m128 acc = _mm_set_ss(y[i]);
        for (int g = 0; g < G; g++) acc = _mm_fmadd_ss(_mm_set_ss(s[g]), _mm_set_ss(load1(p[g] + i * elem)), acc);
        y[i] = _mm_cvtss_f32(acc);
    }
}

INLINE void pass_f32(int64_t n, const void *const *rows, const float *s, int G, float *y) {
    pass_float(n, rows, s, G, y, 4, load8_f32, sf_x86_load_f32);
}
INLINE void pass_f16(int64_t n, const void *const *rows, const float *s, int G, float *y) {
    pass_float(n, rows, s, G, y, 2, load8_f16, sf_x86_load_f16);
}
INLINE void pass_bf16(int64_t n, const void *const *rows, const float *s, int G, float *y) {
    pass_float(n, rows, s, G, y, 2, load8_bf16, load1_bf16);
}
AXPY_DRIVER(axpy_f32, pass_f32)
AXPY_DRIVER(axpy_f16, pass_f16)
AXPY_DRIVER(axpy_bf16, pass_bf16)

/* ------------------------------------------------ legacy blocks (32 values) */

/* A pass goes over y in chunks of up to LG_CHUNK blocks: first the rows'
 * block scales into a small table par (s·d for the symmetric types, d and m
 * for Q4_1 / Q5_1), then the blocks, the scales broadcast from par (a load,
 * not a shuffle). */
#define LG_CHUNK 32

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

/* acc += s · block x, one function per type; sv = s in every lane. */

static inline y32 block_q8_0(y32 acc, const uint8_t *x, const float *par, __m256 sv) {
    (void)sv;
    const __m256 a = _mm256_broadcast_ss(par);
    const uint8_t *qs = x + offsetof(sf_block_q8_0, qs);
    acc.v0 = _mm256_fmadd_ps(a, i8x8_ps(qs), acc.v0);
    acc.v1 = _mm256_fmadd_ps(a, i8x8_ps(qs + 8), acc.v1);
    acc.v2 = _mm256_fmadd_ps(a, i8x8_ps(qs + 16), acc.v2);
    acc.v3 = _mm256_fmadd_ps(a, i8x8_ps(qs + 24), acc.v3);
    return acc;
}

/* Q4_0 / Q4_1: nibbles straight to int32 (values 0..7 are the low nibbles of
 * bytes 0..7, 16..23 their high ones; 8..15 and 24..31 from bytes 8..15). */
static inline y32 block_q4_0(y32 acc, const uint8_t *x, const float *par, __m256 sv) {
    (void)sv;
    const __m256 a = _mm256_broadcast_ss(par);
    const uint8_t *qs = x + offsetof(sf_block_q4_0, qs);
    const __m256i b0 = u8x8(qs), b1 = u8x8(qs + 8), m15 = _mm256_set1_epi32(15), eight = _mm256_set1_epi32(8);
    acc.v0 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(b0, m15), eight)), acc.v0);
    acc.v1 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(b1, m15), eight)), acc.v1);
    acc.v2 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(b0, 4), eight)), acc.v2);
    acc.v3 = _mm256_fmadd_ps(a, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(b1, 4), eight)), acc.v3);
    return acc;
}

static inline y32 block_q4_1(y32 acc, const uint8_t *x, const float *par, __m256 sv) {
    const __m256 d = _mm256_broadcast_ss(par), m = _mm256_broadcast_ss(par + 1);
    const uint8_t *qs = x + offsetof(sf_block_q4_1, qs);
    const __m256i b0 = u8x8(qs), b1 = u8x8(qs + 8), m15 = _mm256_set1_epi32(15);
    return add_affine_ps(acc, _mm256_cvtepi32_ps(_mm256_and_si256(b0, m15)),
                         _mm256_cvtepi32_ps(_mm256_and_si256(b1, m15)), _mm256_cvtepi32_ps(_mm256_srli_epi32(b0, 4)),
                         _mm256_cvtepi32_ps(_mm256_srli_epi32(b1, 4)), d, m, d, m, sv);
}

static inline y32 block_iq4_nl(y32 acc, const uint8_t *x, const float *par, __m256 sv) {
    (void)sv;
    const __m256 a = _mm256_broadcast_ss(par);
    const __m256i values = _mm256_broadcastsi128_si256(sf_x86_loadu128((const uint8_t *)sf_iq4nl_values));
    return add_sym(acc, _mm256_shuffle_epi8(values, sf_x86_nibbles32(x + offsetof(sf_block_iq4_nl, qs))), a, a);
}

static inline y32 block_q5_0(y32 acc, const uint8_t *x, const float *par, __m256 sv) {
    (void)sv;
    const __m256 a = _mm256_broadcast_ss(par);
    const __m256i high = _mm256_and_si256(sf_x86_bits_to_bytes(sf_x86_load_u32(x + offsetof(sf_block_q5_0, qh))),
                                          _mm256_set1_epi8(0x10));
    const __m256i q =
        _mm256_sub_epi8(_mm256_or_si256(sf_x86_nibbles32(x + offsetof(sf_block_q5_0, qs)), high), _mm256_set1_epi8(16));
    return add_sym(acc, q, a, a);
}

static inline y32 block_q5_1(y32 acc, const uint8_t *x, const float *par, __m256 sv) {
    const __m256 d = _mm256_broadcast_ss(par), m = _mm256_broadcast_ss(par + 1);
    const __m256i high = _mm256_and_si256(sf_x86_bits_to_bytes(sf_x86_load_u32(x + offsetof(sf_block_q5_1, qh))),
                                          _mm256_set1_epi8(0x10));
    const __m256i q = _mm256_or_si256(sf_x86_nibbles32(x + offsetof(sf_block_q5_1, qs)), high);
    return add_affine(acc, q, d, m, d, m, sv);
}

/* One pass of G rows over n/32 blocks of `bytes` bytes. */
#define LEGACY_PASS(name, bytes, scales, stride, block)                                                                \
    INLINE void name(int64_t n, const void *const *rows, const float *s, int G, float *y) {                            \
        const uint8_t *p[4];                                                                                           \
        __m256 sv[4];                                                                                                  \
        for (int g = 0; g < G; g++) p[g] = rows[g], sv[g] = _mm256_set1_ps(s[g]);                                      \
        const int64_t nb = n / SF_QK;                                                                                  \
        for (int64_t b0 = 0; b0 < nb; b0 += LG_CHUNK) {                                                                \
            const int m = nb - b0 < LG_CHUNK ? (int)(nb - b0) : LG_CHUNK;                                              \
            float par[4][2 * LG_CHUNK];                                                                                \
            for (int g = 0; g < G; g++) scales(p[g] + b0 * (bytes), bytes, m, s[g], par[g]);                           \
            int b = 0;                                                                                                 \
            for (; b + 2 <= m; b += 2) { /* two blocks: two independent chains of FMAs */                              \
                float *yb = y + (b0 + b) * SF_QK;                                                                      \
                y32 acc0 = y32_load(yb), acc1 = y32_load(yb + SF_QK);                                                  \
                _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) {                                                  \
                    const uint8_t *x = p[g] + (b0 + b) * (bytes);                                                      \
                    acc0 = block(acc0, x, par[g] + b * (stride), sv[g]);                                               \
                    acc1 = block(acc1, x + (bytes), par[g] + (b + 1) * (stride), sv[g]);                               \
                }                                                                                                      \
                y32_store(yb, acc0);                                                                                   \
                y32_store(yb + SF_QK, acc1);                                                                           \
            }                                                                                                          \
            if (b < m) {                                                                                               \
                float *yb = y + (b0 + b) * SF_QK;                                                                      \
                y32 acc = y32_load(yb);                                                                                \
                _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) acc =                                              \
                    block(acc, p[g] + (b0 + b) * (bytes), par[g] + b * (stride), sv[g]);                               \
                y32_store(yb, acc);                                                                                    \
            }                                                                                                          \
        }                                                                                                              \
    }

LEGACY_PASS(pass_q4_0, sizeof(sf_block_q4_0), scales_sym, 1, block_q4_0)
LEGACY_PASS(pass_q4_1, sizeof(sf_block_q4_1), scales_dm, 2, block_q4_1)
LEGACY_PASS(pass_q5_0, sizeof(sf_block_q5_0), scales_sym, 1, block_q5_0)
LEGACY_PASS(pass_q5_1, sizeof(sf_block_q5_1), scales_dm, 2, block_q5_1)
LEGACY_PASS(pass_q8_0, sizeof(sf_block_q8_0), scales_sym, 1, block_q8_0)
LEGACY_PASS(pass_iq4_nl, sizeof(sf_block_iq4_nl), scales_sym, 1, block_iq4_nl)
AXPY_DRIVER(axpy_q4_0, pass_q4_0)
AXPY_DRIVER(axpy_q4_1, pass_q4_1)
AXPY_DRIVER(axpy_q5_0, pass_q5_0)
AXPY_DRIVER(axpy_q5_1, pass_q5_1)
AXPY_DRIVER(axpy_q8_0, pass_q8_0)
AXPY_DRIVER(axpy_iq4_nl, pass_iq4_nl)

/* ------------------------------------------------ K-quants (256 values, 8 slices of 32) */

/* Per row and super-block, decode() turns the scales into floats par[32]
 * once; slice(acc, x, t, par, sv) adds values 32t..32t+31. Bit fields are
 * shifted down in 32-bit lanes: a byte's low bits after a shift by c still
 * come from that byte while c + the field's width <= 8, and the rest is
 * masked off. */

/* Q2_K: value e = 128h + 32j + l (slice t = 4h + j) is (qs[32h + l] >> 2j) & 3,
 * v = dl·q − ml per 16 (sub-block e / 16): par = dl[16], −ml[16]. */
static inline void decode_q2_K(const uint8_t *x, float s, float par[32]) {
    (void)s;
    const float d = sf_x86_load_f16(x + offsetof(sf_block_q2_K, d)),
                dmin = sf_x86_load_f16(x + offsetof(sf_block_q2_K, dmin));
    const uint8_t *sc = x + offsetof(sf_block_q2_K, scales);
    for (int i = 0; i < 16; i++) par[i] = d * (sc[i] & 0x0F), par[16 + i] = -(dmin * (sc[i] >> 4));
}

static inline y32 slice_q2_K(y32 acc, const uint8_t *x, int t, const float *par, __m256 sv) {
    const __m256i raw = sf_x86_loadu256(x + offsetof(sf_block_q2_K, qs) + 32 * (t / 4));
    const __m256i q = _mm256_and_si256(_mm256_srlv_epi32(raw, _mm256_set1_epi32(2 * (t % 4))), _mm256_set1_epi8(3));
    return add_affine(acc, q, _mm256_set1_ps(par[2 * t]), _mm256_set1_ps(par[16 + 2 * t]),
                      _mm256_set1_ps(par[2 * t + 1]), _mm256_set1_ps(par[17 + 2 * t]), sv);
}

/* Q3_K: as Q2_K's 2 bits, minus 4 where bit t of hmask[l] is clear; v = dl·q
 * per 16, dl = d·scale: par = s·dl[16]. */
static inline void decode_q3_K(const uint8_t *x, float s, float par[32]) {
    const __m128i sc = sf_x86_q3_K_scales(x + offsetof(sf_block_q3_K, scales));
    const __m256 ds = _mm256_set1_ps(sf_x86_load_f16(x + offsetof(sf_block_q3_K, d))), sv = _mm256_set1_ps(s);
    _mm256_storeu_ps(par, _mm256_mul_ps(sv, _mm256_mul_ps(ds, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)))));
    _mm256_storeu_ps(
        par + 8, _mm256_mul_ps(sv, _mm256_mul_ps(ds, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))))));
}

static inline y32 slice_q3_K(y32 acc, const uint8_t *x, int t, const float *par, __m256 sv) {
    (void)sv;
    const __m256i cnt = _mm256_set1_epi32(2 * (t % 4));
    const __m256i low = _mm256_and_si256(
        _mm256_srlv_epi32(sf_x86_loadu256(x + offsetof(sf_block_q3_K, qs) + 32 * (t / 4)), cnt), _mm256_set1_epi8(3));
    const __m256i hbit =
        _mm256_and_si256(_mm256_srlv_epi32(sf_x86_loadu256(x + offsetof(sf_block_q3_K, hmask)), _mm256_set1_epi32(t)),
                         _mm256_set1_epi8(1));
    const __m256i q = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(hbit, 2)), _mm256_set1_epi8(4));
    return add_sym(acc, q, _mm256_set1_ps(par[2 * t]), _mm256_set1_ps(par[2 * t + 1]));
}

/* Q4_K / Q5_K: slice t is sub-block t, the low (t even) or high nibbles of
 * qs[32(t/2)..], plus 16 where bit t of qh[l] is set (Q5_K); v = d1·q − m1:
 * par = d1[8], −m1[8]. */
static inline void decode_k4(const uint8_t *x, float par[32]) {
    uint8_t sc[8], m[8];
    sf_x86_k4_scales(x + offsetof(sf_block_q4_K, scales), sc, m);
    const __m256 d = _mm256_set1_ps(sf_x86_load_f16(x + offsetof(sf_block_q4_K, d)));
    const __m256 dmin = _mm256_set1_ps(sf_x86_load_f16(x + offsetof(sf_block_q4_K, dmin)));
    _mm256_storeu_ps(par,
                     _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)sc)))));
    const __m256 mf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)m)));
    _mm256_storeu_ps(par + 8, _mm256_xor_ps(_mm256_mul_ps(dmin, mf), _mm256_set1_ps(-0.0f)));
}

static inline void decode_q4_K(const uint8_t *x, float s, float par[32]) { (void)s, decode_k4(x, par); }
static inline void decode_q5_K(const uint8_t *x, float s, float par[32]) { (void)s, decode_k4(x, par); }

static inline __m256i k4_nibbles(const uint8_t *qs, int t) {
    const __m256i raw = sf_x86_loadu256(qs + 32 * (t / 2));
    return t % 2 ? sf_x86_hi_nibbles(raw) : sf_x86_lo_nibbles(raw);
}

/* (Q4_K's nibbles go to int32 straight from memory: no byte stage.) */
static inline y32 slice_q4_K(y32 acc, const uint8_t *x, int t, const float *par, __m256 sv) {
    const __m256 d1 = _mm256_set1_ps(par[t]), m1 = _mm256_set1_ps(par[8 + t]);
    const uint8_t *qs = x + offsetof(sf_block_q4_K, qs) + 32 * (t / 2);
    const __m256i cnt = _mm256_set1_epi32(4 * (t % 2)), m15 = _mm256_set1_epi32(15);
#define K4_F(i) _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(u8x8(qs + 8 * (i)), cnt), m15))
    return add_affine_ps(acc, K4_F(0), K4_F(1), K4_F(2), K4_F(3), d1, m1, d1, m1, sv);
#undef K4_F
}

static inline y32 slice_q5_K(y32 acc, const uint8_t *x, int t, const float *par, __m256 sv) {
    const __m256 d1 = _mm256_set1_ps(par[t]), m1 = _mm256_set1_ps(par[8 + t]);
    const __m256i hbit = _mm256_and_si256(
        _mm256_srlv_epi32(sf_x86_loadu256(x + offsetof(sf_block_q5_K, qh)), _mm256_set1_epi32(t)), _mm256_set1_epi8(1));
    const __m256i q = _mm256_or_si256(k4_nibbles(x + offsetof(sf_block_q5_K, qs), t), _mm256_slli_epi16(hbit, 4));
    return add_affine(acc, q, d1, m1, d1, m1, sv);
}

/* Q6_K: value e = 128h + 32r + l (slice t = 4h + r) has its low 4 bits in
 * ql[64h + 32(r & 1) + l] (low nibble for r < 2), its high 2 in bits 2r of
 * qh[32h + l]; v = (d·sc)·(q − 32) per 16: par = s·d·sc[16]. */
static inline void decode_q6_K(const uint8_t *x, float s, float par[32]) {
    const __m128i sc = sf_x86_loadu128(x + offsetof(sf_block_q6_K, scales));
    const __m256 ds = _mm256_set1_ps(sf_x86_load_f16(x + offsetof(sf_block_q6_K, d))), sv = _mm256_set1_ps(s);
    _mm256_storeu_ps(par, _mm256_mul_ps(sv, _mm256_mul_ps(ds, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)))));
    _mm256_storeu_ps(
        par + 8, _mm256_mul_ps(sv, _mm256_mul_ps(ds, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))))));
}

static inline y32 slice_q6_K(y32 acc, const uint8_t *x, int t, const float *par, __m256 sv) {
    (void)sv;
    const int h = t / 4, r = t % 4;
    const __m256i raw = sf_x86_loadu256(x + offsetof(sf_block_q6_K, ql) + 64 * h + 32 * (r & 1));
    const __m256i low = r < 2 ? sf_x86_lo_nibbles(raw) : sf_x86_hi_nibbles(raw);
    const __m256i qh =
        _mm256_srlv_epi32(sf_x86_loadu256(x + offsetof(sf_block_q6_K, qh) + 32 * h), _mm256_set1_epi32(2 * r));
    const __m256i high = _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(3)), 4);
    const __m256i q = _mm256_sub_epi8(_mm256_or_si256(low, high), _mm256_set1_epi8(32));
    return add_sym(acc, q, _mm256_set1_ps(par[2 * t]), _mm256_set1_ps(par[2 * t + 1]));
}

/* One pass of G rows over n/256 super-blocks of `bytes` bytes. */
#define KQ_PASS(name, bytes, decode, slice)                                                                            \
    INLINE void name(int64_t n, const void *const *rows, const float *s, int G, float *y) {                            \
        const uint8_t *p[4];                                                                                           \
        __m256 sv[4];                                                                                                  \
        for (int g = 0; g < G; g++) p[g] = rows[g], sv[g] = _mm256_set1_ps(s[g]);                                      \
        for (int64_t b = 0; b < n / SF_QK_K; b++) {                                                                    \
            float par[4][32];                                                                                          \
            for (int g = 0; g < G; g++) decode(p[g] + b * (bytes), s[g], par[g]);                                      \
            for (int t = 0; t < 8; t++) {                                                                              \
                float *yt = y + b * SF_QK_K + 32 * t;                                                                  \
                y32 acc = y32_load(yt);                                                                                \
                _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) acc =                                              \
                    slice(acc, p[g] + b * (bytes), t, par[g], sv[g]);                                                  \
                y32_store(yt, acc);                                                                                    \
            }                                                                                                          \
        }                                                                                                              \
    }

KQ_PASS(pass_q2_K, sizeof(sf_block_q2_K), decode_q2_K, slice_q2_K)
KQ_PASS(pass_q3_K, sizeof(sf_block_q3_K), decode_q3_K, slice_q3_K)
KQ_PASS(pass_q4_K, sizeof(sf_block_q4_K), decode_q4_K, slice_q4_K)
KQ_PASS(pass_q5_K, sizeof(sf_block_q5_K), decode_q5_K, slice_q5_K)
KQ_PASS(pass_q6_K, sizeof(sf_block_q6_K), decode_q6_K, slice_q6_K)
AXPY_DRIVER(axpy_q2_K, pass_q2_K)
AXPY_DRIVER(axpy_q3_K, pass_q3_K)
AXPY_DRIVER(axpy_q4_K, pass_q4_K)
AXPY_DRIVER(axpy_q5_K, pass_q5_K)
AXPY_DRIVER(axpy_q6_K, pass_q6_K)

void sf_axpy_avx2_install(sf_type_traits fast[SF_TYPE_COUNT]) {
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
