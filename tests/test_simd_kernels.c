/* Holds every SIMD kernel to its scalar reference, at every ISA level this
 * CPU has (sf_cpu_isa_force):
 *   - activation quantizers (Q8_0, Q8_1, Q8_K): identical blocks;
 *   - vec_dot: |fast - ref| <= 1e-5 * sum|w_i * a_i| per row and NMSE <= 1e-8
 *     per case; exact equality where every partial result is an integer
 *     (unit scales, one block);
 *   - dequantize: identical floats.
 * Inputs: random and adversarial rows (zeros, +-large, a single spike, .5
 * ties, quants at their extremes against activations at +-127), several row
 * lengths, and rows at odd byte offsets for the fast kernels. */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tensor/blocks.h"
#include "tensor/types.h"

static const char *const k_isas[] = {"avx2", "avx512"};
#define N_ISAS 2

/* ------------------------------------------------------------ helpers */

/* Runs fn once per ISA level the CPU supports, then restores the dispatch
 * level that was active before. Returns how many levels ran. */
static int for_each_isa(void (*fn)(const char *isa)) {
    const char *before = sf_cpu_isa();
    int ran = 0;
    for (int i = 0; i < N_ISAS; i++) {
        if (!sf_cpu_isa_force(k_isas[i])) continue;
        fn(k_isas[i]);
        ran++;
    }
    assert_true(sf_cpu_isa_force(before));
    return ran;
}

static void put_f16(uint8_t *p, float v) {
    const sf_fp16 h = sf_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* A copy of n bytes at an odd address that ends where its buffer ends: the
 * fast kernels must not assume any alignment, and the sanitizer build
 * catches any read past the row. free() the returned base. */
static uint8_t *misaligned_copy(const void *src, size_t n, uint8_t **base) {
    *base = malloc(n + 3);
    assert_non_null(*base);
    uint8_t *p = *base + 3;
    memcpy(p, src, n);
    return p;
}

/* Float activation / weight patterns. */
enum {
    P_RANDOM,  /* uniform in [-1, 1) */
    P_ZEROS,
    P_LARGE,   /* +-2e3: large, yet Q8_1's s = d*sum(q) stays within f16 */
    P_SPIKE,   /* tiny noise and one large value */
    P_TIES,    /* k + 0.5 with 127 at every block start: exact .5 ties after scaling */
    P_EXTREME, /* +-1 in random signs with a few exact +-max duplicates */
    P_UNIT,    /* integers in [-127, 127], 127 at every 32-block start: scale exactly 1 */
    P_TINY,    /* ~1e-39: the scale's reciprocal overflows */
    P_NONFINITE, /* random with an inf and a nan (quantizers only) */
    P_COUNT
};
static const char *const k_pattern_names[] = {"random", "zeros", "large", "spike", "ties",
                                               "extreme", "unit", "tiny", "nonfinite"};

static void fill_pattern(float *x, int64_t n, int pattern, uint64_t *rng) {
    for (int64_t i = 0; i < n; i++) {
        const float r = sf_test_rand_f32(rng);
        const int k = (int)(sf_test_rand_u64(rng) % 255) - 127; /* -127..127 */
        switch (pattern) {
        case P_RANDOM: x[i] = r; break;
        case P_ZEROS: x[i] = 0.0f; break;
        case P_LARGE: x[i] = 2e3f * r; break;
        case P_SPIKE: x[i] = 1e-3f * r; break;
        case P_TIES: x[i] = i % 32 == 0 ? 127.0f : (float)(k < 127 ? k : 126) + 0.5f; break;
        case P_EXTREME: x[i] = r < 0 ? -1.0f : 1.0f; break;
        case P_UNIT: x[i] = i % 32 == 0 ? 127.0f : (float)k; break;
        case P_TINY: x[i] = 1e-39f * r; break;
        case P_NONFINITE: x[i] = r; break;
        }
    }
    if (pattern == P_SPIKE) x[sf_test_rand_u64(rng) % (uint64_t)n] = 50.0f;
    if (pattern == P_NONFINITE) {
        x[sf_test_rand_u64(rng) % (uint64_t)n] = INFINITY;
        x[sf_test_rand_u64(rng) % (uint64_t)n] = NAN;
    }
}

/* ------------------------------------------------------------ quantizers */

static const int k_act_types[] = {SF_TYPE_Q8_0, SF_TYPE_Q8_1, SF_TYPE_Q8_K};
static const int64_t k_quant_lengths[] = {256, 512, 1536, 4096};

/* ggml's x86 runtime quantizer for Q8_0/Q8_1 (quantize_row_q8_0/1, which
 * llama.cpp runs instead of the *_ref functions): d = amax/127, q =
 * round-half-even(x * (127/amax)), s = f16(d * sum(q)). The fast kernels
 * reproduce it byte for byte; it may differ from the scalar reference by one
 * step on ties. */
static void runtime_quantize_q8(const float *x, uint8_t *dst, int64_t n, bool with_sum) {
    const size_t bs = with_sum ? sizeof(sf_block_q8_1) : sizeof(sf_block_q8_0);
    for (int64_t b = 0; b < n / SF_QK; b++) {
        const float *xb = x + b * SF_QK;
        uint8_t *y = dst + b * bs;
        float amax = 0.0f;
        for (int i = 0; i < SF_QK; i++) amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;
        const float d = amax / 127.f, id = amax != 0.0f ? 127.f / amax : 0.0f;
        if (!(id <= FLT_MAX)) { /* 127/amax overflows: the kernels defer to the reference */
            sf_type_ref(with_sum ? SF_TYPE_Q8_1 : SF_TYPE_Q8_0)->quantize(xb, y, SF_QK);
            continue;
        }
        int8_t *qs = (int8_t *)(y + (with_sum ? offsetof(sf_block_q8_1, qs) : offsetof(sf_block_q8_0, qs)));
        int sum = 0;
        for (int i = 0; i < SF_QK; i++) {
            qs[i] = (int8_t)nearbyintf(xb[i] * id); /* default rounding mode: half to even */
            sum += qs[i];
        }
        const sf_fp16 dh = sf_fp32_to_fp16(d);
        memcpy(y, &dh, 2);
        if (with_sum) {
            const sf_fp16 sh = sf_fp32_to_fp16(d * (float)sum);
            memcpy(y + offsetof(sf_block_q8_1, s), &sh, 2);
        }
    }
}

static bool has_non_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return true;
    return false;
}

static void check_quantizers(const char *isa) {
    uint64_t rng = 42;
    for (size_t t = 0; t < sizeof k_act_types / sizeof k_act_types[0]; t++) {
        const sf_type_traits *ref = sf_type_ref(k_act_types[t]);
        const sf_type_traits *fast = sf_type_fast(k_act_types[t]);
        assert_non_null(ref);
        assert_non_null(fast);
        assert_ptr_not_equal(ref->quantize, fast->quantize); /* a SIMD quantizer is installed */
        for (size_t l = 0; l < sizeof k_quant_lengths / sizeof k_quant_lengths[0]; l++) {
            const int64_t n = k_quant_lengths[l];
            const size_t bytes = sf_type_row_bytes((sf_type)k_act_types[t], n);
            float *x = malloc((size_t)n * sizeof *x); /* [n] */
            uint8_t *want = malloc(bytes), *got_base = malloc(bytes + 1);
            assert_true(x && want && got_base);
            uint8_t *got = got_base + 1; /* odd address */
            for (int p = 0; p < P_COUNT; p++) {
                for (int rep = 0; rep < 4; rep++) {
                    fill_pattern(x, n, p, &rng);
                    if (k_act_types[t] != SF_TYPE_Q8_K && !has_non_finite(x, n))
                        runtime_quantize_q8(x, want, n, k_act_types[t] == SF_TYPE_Q8_1);
                    else
                        ref->quantize(x, want, n);
                    memset(got, 0xCD, bytes);
                    fast->quantize(x, got, n);
                    int diff = 0;
                    for (size_t i = 0; i < bytes; i++) diff += want[i] != got[i];
                    if (diff)
                        print_error("%s quantize %s n=%lld pattern %s: %d bytes differ\n", isa, ref->name,
                                    (long long)n, k_pattern_names[p], diff);
                    assert_int_equal(diff, 0);
                }
            }
            free(x);
            free(want);
            free(got_base);
        }
    }
}

static void test_quantizers(void **state) {
    (void)state;
    if (for_each_isa(check_quantizers) == 0) skip();
}

/* ------------------------------------------------------------ vec_dot */

static const int k_dot_types[] = {SF_TYPE_F32,  SF_TYPE_F16,  SF_TYPE_BF16, SF_TYPE_Q4_0, SF_TYPE_Q4_1,
                                  SF_TYPE_Q5_0, SF_TYPE_Q5_1, SF_TYPE_Q8_0, SF_TYPE_Q2_K, SF_TYPE_Q3_K,
                                  SF_TYPE_Q4_K, SF_TYPE_Q5_K, SF_TYPE_Q6_K};
#define N_DOT_TYPES ((int)(sizeof k_dot_types / sizeof k_dot_types[0]))

/* Byte offsets of the f16 scale fields (d, and m / dmin) in a weight block;
 * -1 when absent. */
static void scale_offsets(int type, int *d_off, int *m_off) {
    *d_off = -1;
    *m_off = -1;
    switch (type) {
    case SF_TYPE_Q4_0: *d_off = offsetof(sf_block_q4_0, d); break;
    case SF_TYPE_Q4_1: *d_off = offsetof(sf_block_q4_1, d), *m_off = offsetof(sf_block_q4_1, m); break;
    case SF_TYPE_Q5_0: *d_off = offsetof(sf_block_q5_0, d); break;
    case SF_TYPE_Q5_1: *d_off = offsetof(sf_block_q5_1, d), *m_off = offsetof(sf_block_q5_1, m); break;
    case SF_TYPE_Q8_0: *d_off = offsetof(sf_block_q8_0, d); break;
    case SF_TYPE_Q2_K: *d_off = offsetof(sf_block_q2_K, d), *m_off = offsetof(sf_block_q2_K, dmin); break;
    case SF_TYPE_Q3_K: *d_off = offsetof(sf_block_q3_K, d); break;
    case SF_TYPE_Q4_K: *d_off = offsetof(sf_block_q4_K, d), *m_off = offsetof(sf_block_q4_K, dmin); break;
    case SF_TYPE_Q5_K: *d_off = offsetof(sf_block_q5_K, d), *m_off = offsetof(sf_block_q5_K, dmin); break;
    case SF_TYPE_Q6_K: *d_off = offsetof(sf_block_q6_K, d); break;
    }
}

/* How weight rows are made. */
enum {
    W_QUANTIZED, /* a float pattern through the reference quantizer (all types) */
    W_RANDOM,    /* random bytes, random small scales */
    W_EXTREME,   /* blocks of all-0xFF / 0x00 / 0x80 / 0x7F bytes: quants and sub-block scales at their limits */
    W_UNIT,      /* random bytes, scales 1.0: integer results */
    W_COUNT
};
static const char *const k_weight_names[] = {"quantized", "random", "extreme", "unit"};

/* Fills one weight row of n values; false if the kind does not apply to the type. */
static bool make_weight_row(const sf_type_traits *ref, int type, int kind, int64_t n, uint8_t *row, uint64_t *rng) {
    const size_t bytes = sf_type_row_bytes((sf_type)type, n);
    if (kind == W_QUANTIZED) {
        float *x = malloc((size_t)n * sizeof *x); /* [n] */
        assert_non_null(x);
        fill_pattern(x, n, sf_test_rand_u64(rng) % 2 ? P_RANDOM : P_LARGE, rng);
        ref->quantize(x, row, n);
        free(x);
        return true;
    }
    if (!ref->is_quantized) return false;
    static const uint8_t fills[] = {0xFF, 0x00, 0x80, 0x7F};
    int d_off, m_off;
    scale_offsets(type, &d_off, &m_off);
    for (size_t b = 0; b < bytes / ref->type_size; b++) {
        uint8_t *blk = row + b * ref->type_size;
        for (size_t i = 0; i < ref->type_size; i++)
            blk[i] = kind == W_EXTREME ? fills[b % 4] : (uint8_t)sf_test_rand_u64(rng);
        for (int k = 0; k < 2; k++) {
            const int off = k == 0 ? d_off : m_off;
            if (off < 0) continue;
            float v = kind == W_UNIT ? 1.0f : (0.001f + 0.05f * fabsf(sf_test_rand_f32(rng)));
            if (kind != W_UNIT && sf_test_rand_u64(rng) % 2) v = -v;
            put_f16(blk + off, v);
        }
    }
    return true;
}

static const int64_t k_lengths_1[] = {1, 7, 31, 32, 33, 100, 576, 1000, 4096};
static const int64_t k_lengths_32[] = {32, 64, 96, 576, 1536, 4096};
static const int64_t k_lengths_256[] = {256, 768, 1536, 2048, 4096};

#define N_ROWS 4

/* The scale of the rounding error a correct kernel may make:
 * sum_i (|w_i| + |o_i|) * |a_i| over the dequantized rows, where o_i is the
 * weight's offset term (m, or dmin * min; found by dequantizing with d = 0):
 * kernels add the scaled quants and the offsets as separate float terms,
 * which can be far larger than w_i when they cancel. */
static double abs_dot(int type, const sf_type_traits *wt, const sf_type_traits *at, int64_t n, const uint8_t *w,
                      const uint8_t *a) {
    const size_t wbytes = sf_type_row_bytes((sf_type)type, n);
    float *x = malloc((size_t)n * sizeof *x), *o = calloc((size_t)n, sizeof *o), *y = malloc((size_t)n * sizeof *y);
    uint8_t *w0 = malloc(wbytes); /* w with every d zeroed */
    assert_true(x && o && y && w0);
    wt->dequantize(w, x, n);
    at->dequantize(a, y, n);
    int d_off, m_off;
    scale_offsets(type, &d_off, &m_off);
    if (m_off >= 0) {
        memcpy(w0, w, wbytes);
        for (size_t b = 0; b < wbytes / wt->type_size; b++) put_f16(w0 + b * wt->type_size + d_off, 0.0f);
        wt->dequantize(w0, o, n);
    }
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (fabs((double)x[i]) + fabs((double)o[i])) * fabs((double)y[i]);
    free(x);
    free(o);
    free(y);
    free(w0);
    return s;
}

static void check_dot_case(const char *isa, int type, int64_t n, int wkind, int apat, uint64_t *rng) {
    const sf_type_traits *ref = sf_type_ref(type), *fast = sf_type_fast(type);
    const sf_type_traits *aref = sf_type_ref(ref->vec_dot_type);
    const size_t wbytes = sf_type_row_bytes((sf_type)type, n);
    const size_t abytes = sf_type_row_bytes(ref->vec_dot_type, n);
    uint8_t *w = malloc(wbytes * N_ROWS), *a = malloc(abytes); /* [N_ROWS][wbytes], [abytes] */
    float *x = malloc((size_t)n * sizeof *x);                   /* [n] */
    assert_true(w && a && x);
    for (int r = 0; r < N_ROWS; r++)
        if (!make_weight_row(ref, type, wkind, n, w + r * wbytes, rng)) goto done;
    fill_pattern(x, n, apat, rng);
    aref->quantize(x, a, n);

    uint8_t *abase, *wbase;
    const uint8_t *a_odd = misaligned_copy(a, abytes, &abase);
    const uint8_t *w_odd = misaligned_copy(w, wbytes * N_ROWS, &wbase);
    double err2 = 0.0, ref2 = 0.0;
    for (int r = 0; r < N_ROWS; r++) {
        const float want = ref->vec_dot(n, w + r * wbytes, a);
        const float got = fast->vec_dot(n, w_odd + r * wbytes, a_odd);
        /* Q6_K follows ggml's lane order, where each lane's integer partial
         * carries the -32 offset of other sub-blocks (up to ~64/|q| times the
         * dot's own terms) before it is scaled and rounded: a wider bound */
        const double rel = type == SF_TYPE_Q6_K ? 1e-4 : 1e-5;
        const double bound = rel * abs_dot(type, ref, aref, n, w + r * wbytes, a);
        const bool exact = wkind == W_UNIT && apat == P_UNIT && n == ref->block_size;
        const double err = fabs((double)got - (double)want);
        if (!(exact ? err == 0.0 : err <= bound))
            print_error("%s vec_dot %s n=%lld weights %s activations %s row %d: got %.9g want %.9g (bound %.3g)\n",
                        isa, ref->name, (long long)n, k_weight_names[wkind], k_pattern_names[apat], r, got, want,
                        exact ? 0.0 : bound);
        assert_true(exact ? err == 0.0 : err <= bound);
        err2 += err * err;
        ref2 += (double)want * want;
    }
    if (ref2 > 0.0) {
        const double nmse = err2 / ref2;
        if (nmse > 1e-8)
            print_error("%s vec_dot %s n=%lld weights %s activations %s: NMSE %.3g\n", isa, ref->name, (long long)n,
                        k_weight_names[wkind], k_pattern_names[apat], nmse);
        assert_true(nmse <= 1e-8);
    }
    free(abase);
    free(wbase);
done:
    free(w);
    free(a);
    free(x);
}

/* Types with a SIMD vec_dot at every level (the fast entry must differ from
 * the reference, so the test does test something). */
static void check_vec_dots(const char *isa) {
    uint64_t rng = 7;
    static const int act_patterns[] = {P_RANDOM, P_ZEROS, P_LARGE, P_SPIKE, P_EXTREME, P_UNIT};
    for (int t = 0; t < N_DOT_TYPES; t++) {
        const int type = k_dot_types[t];
        const sf_type_traits *ref = sf_type_ref(type), *fast = sf_type_fast(type);
        assert_non_null(ref);
        assert_non_null(fast);
        assert_ptr_not_equal(ref->vec_dot, fast->vec_dot);
        const int64_t *lengths = ref->block_size == 1 ? k_lengths_1 : ref->block_size == 32 ? k_lengths_32 : k_lengths_256;
        const size_t n_lengths = ref->block_size == 1    ? sizeof k_lengths_1 / sizeof k_lengths_1[0]
                                 : ref->block_size == 32 ? sizeof k_lengths_32 / sizeof k_lengths_32[0]
                                                         : sizeof k_lengths_256 / sizeof k_lengths_256[0];
        for (size_t l = 0; l < n_lengths; l++)
            for (int wk = 0; wk < W_COUNT; wk++)
                for (size_t p = 0; p < sizeof act_patterns / sizeof act_patterns[0]; p++)
                    check_dot_case(isa, type, lengths[l], wk, act_patterns[p], &rng);
        /* integer exactness on single blocks, many times */
        if (ref->is_quantized)
            for (int rep = 0; rep < 64; rep++) check_dot_case(isa, type, ref->block_size, W_UNIT, P_UNIT, &rng);
    }
}

static void test_vec_dot(void **state) {
    (void)state;
    if (for_each_isa(check_vec_dots) == 0) skip();
}

/* vec_dot_2x4 must equal vec_dot calls bit for bit where the table says so
 * (the same chains); elsewhere (the 512-bit vec_dots replaced the ones it
 * mirrors) it is held to the reference with vec_dot's bound. */
static void check_vec_dot_2x4(const char *isa) {
    uint64_t rng = 1234;
    int checked = 0;
    for (int type = 0; type < SF_TYPE_COUNT; type++) {
        const sf_type_traits *ref = sf_type_ref(type), *fast = sf_type_fast(type);
        if (!ref || !fast || !fast->vec_dot_2x4) continue;
        const int64_t n = 7 * 32 * (ref->block_size / 32 > 0 ? ref->block_size / 32 : 1);
        const size_t wbytes = sf_type_row_bytes((sf_type)type, n), abytes = sf_type_row_bytes(ref->vec_dot_type, n);
        const size_t astride = abytes + 5; /* rows not packed, not aligned */
        uint8_t *w = malloc(wbytes), *a = calloc(4, astride); /* [wbytes], [4][astride] */
        float *x = malloc((size_t)n * sizeof *x);             /* [n] */
        assert_true(w && a && x);
        for (int apat = P_RANDOM; apat <= P_UNIT; apat++) {
            assert_true(make_weight_row(ref, type, W_QUANTIZED, n, w, &rng));
            for (int r = 0; r < 4; r++) {
                fill_pattern(x, n, r == 3 ? P_RANDOM : apat, &rng);
                sf_type_fast(ref->vec_dot_type)->quantize(x, a + r * astride, n);
            }
            if (fast->vec_dot_2x4) { /* two weight rows, an odd stride apart */
                uint8_t *w2 = malloc(2 * wbytes + 3); /* [2][wbytes] + 3 so the stride is odd */
                assert_non_null(w2);
                memcpy(w2, w, wbytes);
                assert_true(make_weight_row(ref, type, W_QUANTIZED, n, w2 + wbytes + 3, &rng));
                float got8[8];
                fast->vec_dot_2x4(n, w2, wbytes + 3, a, astride, got8);
                for (int i = 0; i < 2; i++)
                    for (int r = 0; r < 4; r++) {
                        const uint8_t *wi = w2 + i * (wbytes + 3), *ar = a + r * astride;
                        if (fast->vec_dot_2x4_exact) {
                            const float want = fast->vec_dot(n, wi, ar);
                            if (memcmp(&want, &got8[4 * i + r], sizeof want) != 0)
                                fail_msg("%s vec_dot_2x4 %s pattern %s row %d token %d: %.9g vs vec_dot %.9g", isa,
                                         ref->name, k_pattern_names[apat], i, r, got8[4 * i + r], want);
                        } else {
                            const float want = ref->vec_dot(n, wi, ar);
                            const double bound =
                                1e-5 * abs_dot(type, ref, sf_type_ref(ref->vec_dot_type), n, wi, ar) + 1e-30;
                            if (!(fabs((double)got8[4 * i + r] - want) <= bound))
                                fail_msg("%s vec_dot_2x4 %s pattern %s row %d token %d: %.9g vs reference %.9g", isa,
                                         ref->name, k_pattern_names[apat], i, r, got8[4 * i + r], want);
                        }
                    }
                free(w2);
            }
            checked++;
        }
        free(w);
        free(a);
        free(x);
    }
    if (strcmp(isa, "avx2") == 0) assert_true(checked > 0);
}

static void test_vec_dot_2x4(void **state) {
    (void)state;
    if (for_each_isa(check_vec_dot_2x4) == 0) skip();
}

/* ------------------------------------------------------------ dequantize */

static const int k_dequant_types[] = {SF_TYPE_Q4_1, SF_TYPE_Q5_0, SF_TYPE_Q8_0, SF_TYPE_Q4_K, SF_TYPE_Q6_K};

static void check_dequantizers(const char *isa) {
    uint64_t rng = 99;
    for (size_t t = 0; t < sizeof k_dequant_types / sizeof k_dequant_types[0]; t++) {
        const int type = k_dequant_types[t];
        const sf_type_traits *ref = sf_type_ref(type), *fast = sf_type_fast(type);
        assert_ptr_not_equal(ref->dequantize, fast->dequantize);
        const int64_t n = 8 * SF_QK_K;
        const size_t bytes = sf_type_row_bytes((sf_type)type, n);
        uint8_t *row = malloc(bytes); /* [bytes] */
        float *want = malloc((size_t)n * sizeof *want), *got = malloc((size_t)n * sizeof *got); /* [n] each */
        assert_true(row && want && got);
        for (int kind = W_QUANTIZED; kind < W_COUNT; kind++) {
            assert_true(make_weight_row(ref, type, kind, n, row, &rng));
            uint8_t *base;
            const uint8_t *odd = misaligned_copy(row, bytes, &base);
            ref->dequantize(row, want, n);
            fast->dequantize(odd, got, n);
            int diff = 0;
            for (int64_t i = 0; i < n; i++) diff += memcmp(&want[i], &got[i], sizeof(float)) != 0;
            if (diff)
                print_error("%s dequantize %s weights %s: %d values differ\n", isa, ref->name, k_weight_names[kind],
                            diff);
            assert_int_equal(diff, 0);
            free(base);
        }
        free(row);
        free(want);
        free(got);
    }
}

static void test_dequantize(void **state) {
    (void)state;
    if (for_each_isa(check_dequantizers) == 0) skip();
}

/* Ties: the fast Q8_0 follows ggml's runtime quantizer (half to even, like
 * Q8_K's nearest_int). A direct check on the fast kernels with
 * hand-computed values, independent of any reference. */
static void check_tie_rounding(const char *isa) {
    float x[SF_QK_K]; /* [256] */
    for (int i = 0; i < SF_QK_K; i++) x[i] = i % 32 == 0 ? 127.0f : (i % 2 ? 2.5f : -3.5f);
    uint8_t q8_0[sizeof(sf_block_q8_0) * 8], q8_k[sizeof(sf_block_q8_K)];
    sf_type_fast(SF_TYPE_Q8_0)->quantize(x, q8_0, SF_QK_K);
    sf_type_fast(SF_TYPE_Q8_K)->quantize(x, q8_k, SF_QK_K);
    const int8_t *qs0 = (const int8_t *)(q8_0 + offsetof(sf_block_q8_0, qs));
    const int8_t *qsk = (const int8_t *)(q8_k + offsetof(sf_block_q8_K, qs));
    /* Q8_0: d = 1, q = round-half-even(x) */
    assert_int_equal(qs0[0], 127);
    assert_int_equal(qs0[1], 2);  /* 2.5 -> 2 */
    assert_int_equal(qs0[2], -4); /* -3.5 -> -4 */
    /* Q8_K: iscale = -1, q = nearest_int(-x) */
    assert_int_equal(qsk[0], -127);
    assert_int_equal(qsk[1], -2); /* -2.5 -> -2 */
    assert_int_equal(qsk[2], 4);  /* 3.5 -> 4 */
    (void)isa;
}

static void test_tie_rounding(void **state) {
    (void)state;
    if (for_each_isa(check_tie_rounding) == 0) skip();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantizers),
        cmocka_unit_test(test_tie_rounding),
        cmocka_unit_test(test_vec_dot),
        cmocka_unit_test(test_vec_dot_2x4),
        cmocka_unit_test(test_dequantize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
