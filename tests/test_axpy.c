/* axpy_rows (types.h), the sparse FFN's y += Σ_r s_r · row_r, for every type
 * that has one (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL,
 * Q2_K..Q6_K), on k in {0, 1, 3, 4, 5, 17} rows of one block, several blocks
 * and 2048 values; each row in its own allocation at an odd address that ends
 * where the row ends (the sanitizer build catches a read past it):
 *  - every fast kernel (the fast table at each ISA level the CPU has, and the
 *    AVX2 and AVX-512 installers' kernels directly, since the dispatcher may
 *    pick one over the other) equals the reference within float rounding,
 *    |fast - ref| <= AXPY_REL * (|y0| + Σ_r |s_r · v_r|) for every value, on
 *    quantized rows and on random bytes (every bit pattern of the quants and
 *    scales); and the SIMD kernels all give the same bits (they round each
 *    row's term once, on the same values);
 *  - the reference equals y0 + Σ_r s_r · v_r computed in double (v_r the
 *    dequantized rows) within the bound of its k products and k sums,
 *    (k + 1) · 2^-24 · (|y0| + Σ_r |s_r · v_r|) per value, and within
 *    DENSE_NMSE over each type's values;
 *  - leaving rows out or giving them s = 0 gives the dense F32 product
 *    W · x with those inputs zeroed, within DENSE_NMSE;
 *  - k = 0 reads nothing and leaves y as it is. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/blocks.h"
#include "tensor/simd.h"
#include "tensor/types.h"
#include "testutil.h"

/* About 2 x the largest error seen (2.2e-7, 3.6 ulps of the scale; the
 * tests print theirs): a rounding or two of s·v per row, over up to 17 rows. */
#define AXPY_REL 4e-7
/* About 100 x what is seen (1e-14). */
#define DENSE_NMSE 1e-12

static const sf_type k_types[] = {SF_TYPE_F32,  SF_TYPE_F16,  SF_TYPE_BF16, SF_TYPE_Q4_0,   SF_TYPE_Q4_1,
                                  SF_TYPE_Q5_0, SF_TYPE_Q5_1, SF_TYPE_Q8_0, SF_TYPE_IQ4_NL, SF_TYPE_Q2_K,
                                  SF_TYPE_Q3_K, SF_TYPE_Q4_K, SF_TYPE_Q5_K, SF_TYPE_Q6_K};
#define N_TYPES (int)(sizeof k_types / sizeof k_types[0])
static const int k_ks[] = {0, 1, 3, 4, 5, 17};
#define N_KS (int)(sizeof k_ks / sizeof k_ks[0])
#define K_MAX 17

/* ------------------------------------------------------------ kernel sets */

typedef struct {
    char name[32];
    sf_axpy_rows_fn fn[N_TYPES];
} kernel_set;

static kernel_set g_sets[8];
static int g_n_sets;

/* The fast table at each ISA level the CPU has, then the installers'
 * kernels on their own (on a copy of the reference table). */
static int setup_sets(void **state) {
    (void)state;
    const char *before = sf_cpu_isa();
    static const char *const isas[] = {"scalar", "avx2", "avx512"};
    bool has[3] = {false, false, false};
    g_n_sets = 0;
    for (int i = 0; i < 3; i++) {
        if (!sf_cpu_isa_force(isas[i])) continue;
        has[i] = true;
        kernel_set *ks = &g_sets[g_n_sets++];
        snprintf(ks->name, sizeof ks->name, "fast/%s", isas[i]);
        for (int t = 0; t < N_TYPES; t++) ks->fn[t] = sf_type_fast(k_types[t])->axpy_rows;
    }
    if (!sf_cpu_isa_force(before)) return -1;
    for (int i = 1; i < 3; i++) {
        if (!has[i]) continue;
        sf_type_traits tab[SF_TYPE_COUNT];
        memset(tab, 0, sizeof tab);
        for (int t = 0; t < SF_TYPE_COUNT; t++)
            if (sf_type_ref(t)) tab[t] = *sf_type_ref(t);
        if (i == 1) sf_axpy_avx2_install(tab);
        else sf_axpy_avx512_install(tab);
        kernel_set *ks = &g_sets[g_n_sets++];
        snprintf(ks->name, sizeof ks->name, "%s installer", isas[i]);
        for (int t = 0; t < N_TYPES; t++) ks->fn[t] = tab[k_types[t]].axpy_rows;
    }
    return 0;
}

/* ------------------------------------------------------------ data */

/* The row lengths tried for a type: one block, several, 2048. */
static void lengths(sf_type type, int64_t out[3]) {
    const int bs = sf_type_ref(type)->block_size;
    out[0] = bs;
    out[1] = bs == 1 ? 45 : bs == SF_QK ? 5 * SF_QK : 3 * SF_QK_K; /* 45: not a multiple of 8 */
    out[2] = 2048;
}

typedef struct {
    sf_type type;
    int64_t n;
    int k;
    uint8_t *base[K_MAX]; /* each row's own allocation */
    const void *rows[K_MAX];
    float s[K_MAX];
    float *v;  /* [k][n] the rows dequantized by the reference */
    float *y0; /* [n] */
} rows_case;

/* Each row alone at an odd address, ending where its allocation ends. */
static void place_rows(rows_case *c, const uint8_t *w) {
    const size_t rb = sf_type_row_bytes(c->type, c->n);
    for (int r = 0; r < c->k; r++) {
        c->base[r] = malloc(rb + 1);
        assert_non_null(c->base[r]);
        memcpy(c->base[r] + 1, w + r * rb, rb);
        c->rows[r] = c->base[r] + 1;
    }
}

/* The f16 fields of a block (scales, mins) at these byte offsets; -1 ends. */
static const int *f16_fields(sf_type type) {
    static const int d0[] = {0, -1}, dm0[] = {0, 2, -1};
    static const int q2k[] = {offsetof(sf_block_q2_K, d), offsetof(sf_block_q2_K, dmin), -1};
    static const int q3k[] = {offsetof(sf_block_q3_K, d), -1};
    static const int q6k[] = {offsetof(sf_block_q6_K, d), -1};
    switch (type) {
    case SF_TYPE_Q4_1:
    case SF_TYPE_Q5_1:
    case SF_TYPE_Q4_K:
    case SF_TYPE_Q5_K: return dm0;
    case SF_TYPE_Q2_K: return q2k;
    case SF_TYPE_Q3_K: return q3k;
    case SF_TYPE_Q6_K: return q6k;
    default: return d0;
    }
}

/* k rows of n values: quantized from random floats by the reference
 * quantizer, or (raw) random bytes with random f16 scales in +-[1e-3, 1e-1)
 * (float types: from random floats either way); random s in +-[0.05, 2),
 * random y0. */
static rows_case make_case(sf_type type, int64_t n, int k, bool raw, uint64_t *rng) {
    rows_case c = {.type = type, .n = n, .k = k};
    const sf_type_traits *tr = sf_type_ref(type);
    const size_t rb = sf_type_row_bytes(type, n);
    uint8_t *w;
    if (raw && tr->is_quantized) {
        w = malloc(rb * (size_t)(k ? k : 1));
        assert_non_null(w);
        for (size_t i = 0; i < rb * (size_t)k; i++) w[i] = (uint8_t)sf_test_rand_u64(rng);
        const int *f = f16_fields(type);
        for (size_t b = 0; b < rb * (size_t)k / tr->type_size; b++)
            for (int j = 0; f[j] >= 0; j++) {
                const float m = sf_test_rand_f32(rng);
                const sf_fp16 h = sf_fp32_to_fp16((m < 0 ? -1.0f : 1.0f) * (1e-3f + 0.099f * fabsf(m)));
                memcpy(w + b * tr->type_size + f[j], &h, 2);
            }
    } else {
        w = sf_test_quant_rows(type, n, k ? k : 1, 0.7f, rng);
    }
    place_rows(&c, w);
    c.v = malloc(sizeof(float) * (size_t)(n * (k ? k : 1)));
    c.y0 = malloc(sizeof(float) * (size_t)n);
    assert_true(c.v && c.y0);
    for (int r = 0; r < k; r++) {
        tr->dequantize(w + r * rb, c.v + r * n, n);
        const float u = sf_test_rand_f32(rng);
        c.s[r] = (u < 0 ? -1.0f : 1.0f) * (0.05f + 1.95f * fabsf(u));
    }
    for (int64_t i = 0; i < n; i++) c.y0[i] = 0.1f * sf_test_rand_f32(rng);
    free(w);
    return c;
}

static void free_case(rows_case *c) {
    for (int r = 0; r < c->k; r++) free(c->base[r]);
    free(c->v);
    free(c->y0);
}

/* y = y0, then fn over the case's rows. malloc'd. */
static float *run(const rows_case *c, sf_axpy_rows_fn fn) {
    float *y = malloc(sizeof(float) * (size_t)c->n);
    assert_non_null(y);
    memcpy(y, c->y0, sizeof(float) * (size_t)c->n);
    fn(c->n, c->rows, c->s, c->k, y);
    return y;
}

/* |y0| + Σ_r |s_r · v_r| of value i: the scale of the float rounding. */
static double abs_scale(const rows_case *c, int64_t i) {
    double a = fabs((double)c->y0[i]);
    for (int r = 0; r < c->k; r++) a += fabs((double)c->s[r] * c->v[r * c->n + i]);
    return a;
}

/* Σ (got - want)² / Σ want² */
static double nmse(const float *got, const double *want, int64_t n) {
    double e = 0, w = 0;
    for (int64_t i = 0; i < n; i++) {
        e += (got[i] - want[i]) * (got[i] - want[i]);
        w += want[i] * want[i];
    }
    return w > 0 ? e / w : e;
}

/* ------------------------------------------------------------ tests */

/* The largest |fast - ref| / scale over every value, type, length and k. */
static void check_fast_vs_ref(bool raw, uint64_t seed) {
    double worst[8] = {0};
    int checks = 0;
    for (int ti = 0; ti < N_TYPES; ti++) {
        const sf_type type = k_types[ti];
        const sf_axpy_rows_fn ref = sf_type_ref(type)->axpy_rows;
        assert_non_null(ref);
        int64_t ns[3];
        lengths(type, ns);
        for (int ni = 0; ni < 3; ni++)
            for (int ki = 0; ki < N_KS; ki++) {
                uint64_t rng = seed + (uint64_t)(1000 * ti + 10 * ni + ki);
                rows_case c = make_case(type, ns[ni], k_ks[ki], raw, &rng);
                float *want = run(&c, ref), *simd = NULL; /* the first SIMD kernel's result */
                int simd_set = -1;
                for (int si = 0; si < g_n_sets; si++) {
                    assert_non_null(g_sets[si].fn[ti]);
                    float *got = run(&c, g_sets[si].fn[ti]);
                    if (g_sets[si].fn[ti] != ref && simd && memcmp(got, simd, sizeof(float) * (size_t)c.n) != 0)
                        fail_msg("%s %s n %lld k %d: not the bits of %s", g_sets[si].name, sf_type_name(type),
                                 (long long)c.n, c.k, g_sets[simd_set].name);
                    for (int64_t i = 0; i < c.n; i++) {
                        const double scale = abs_scale(&c, i), err = fabs((double)got[i] - want[i]);
                        if (!(err <= AXPY_REL * scale))
                            fail_msg("%s %s%s n %lld k %d value %lld: %.9g, reference %.9g (scale %.3g)",
                                     g_sets[si].name, sf_type_name(type), raw ? " (raw bytes)" : "", (long long)c.n,
                                     c.k, (long long)i, got[i], want[i], scale);
                        if (scale > 0 && err / scale > worst[si]) worst[si] = err / scale;
                        checks++;
                    }
                    if (g_sets[si].fn[ti] != ref && !simd) simd = got, simd_set = si;
                    else free(got);
                }
                free(simd);
                free(want);
                free_case(&c);
            }
    }
    for (int si = 0; si < g_n_sets; si++)
        print_message("axpy %s%s: max |fast - ref| / (|y0| + sum |s v|) = %.3g (bound %.3g)\n", g_sets[si].name,
                      raw ? " (raw bytes)" : "", worst[si], AXPY_REL);
    assert_true(checks > 0);
}

static void test_fast_equals_reference(void **state) {
    (void)state;
    check_fast_vs_ref(false, 1);
}

static void test_fast_equals_reference_raw(void **state) {
    (void)state;
    check_fast_vs_ref(true, 7);
}

/* The reference against y0 + Σ s_r v_r in double. */
static void test_reference_vs_double(void **state) {
    (void)state;
    double worst = 0, worst_ulps = 0;
    for (int ti = 0; ti < N_TYPES; ti++) {
        const sf_type type = k_types[ti];
        int64_t ns[3];
        lengths(type, ns);
        double e2 = 0, d2 = 0;
        for (int ni = 0; ni < 3; ni++)
            for (int ki = 0; ki < N_KS; ki++) {
                uint64_t rng = 100 + (uint64_t)(1000 * ti + 10 * ni + ki);
                rows_case c = make_case(type, ns[ni], k_ks[ki], false, &rng);
                float *y = run(&c, sf_type_ref(type)->axpy_rows);
                for (int64_t i = 0; i < c.n; i++) {
                    double d = c.y0[i];
                    for (int r = 0; r < c.k; r++) d += (double)c.s[r] * c.v[r * c.n + i];
                    const double err = fabs(y[i] - d), scale = abs_scale(&c, i);
                    if (!(err <= 1.001 * (c.k + 1) * 0x1p-24 * scale))
                        fail_msg("%s n %lld k %d value %lld: reference %.9g, double %.17g (scale %.3g)",
                                 sf_type_name(type), (long long)c.n, c.k, (long long)i, y[i], d, scale);
                    if (scale > 0 && err / scale / 0x1p-24 > worst_ulps) worst_ulps = err / scale / 0x1p-24;
                    e2 += err * err;
                    d2 += d * d;
                }
                free(y);
                free_case(&c);
            }
        const double e = e2 / d2;
        if (!(e <= DENSE_NMSE)) fail_msg("%s: reference NMSE %.3g against double", sf_type_name(type), e);
        if (e > worst) worst = e;
    }
    print_message("axpy reference against double: NMSE <= %.3g (bound %.3g), error <= %.2f ulps of the scale "
                  "(bound k + 1)\n",
                  worst, DENSE_NMSE, worst_ulps);
}

/* A matrix W {n_out = n, n_in = K} stored transposed (K rows of n values, the
 * type's quantization), and x with some inputs zeroed: W · x by the dense F32
 * vec_dot on the dequantized W equals axpy_rows over all K rows with s = 0 at
 * the zeroed ones, and over only the rows left active. */
static void test_zeroed_rows_match_dense(void **state) {
    (void)state;
    enum { K = 17 };
    const sf_vec_dot_fn dot = sf_type_fast(SF_TYPE_F32)->vec_dot;
    double worst = 0;
    for (int ti = 0; ti < N_TYPES; ti++) {
        const sf_type type = k_types[ti];
        const int64_t n = 512;
        uint64_t rng = 500 + (uint64_t)ti;
        rows_case c = make_case(type, n, K, false, &rng);
        float *wd = malloc(sizeof(float) * (size_t)(n * K)), x[K]; /* [n][K]: W, dequantized */
        double *dense = malloc(sizeof(double) * (size_t)n);
        assert_true(wd && dense);
        for (int64_t i = 0; i < n; i++)
            for (int r = 0; r < K; r++) wd[i * K + r] = c.v[r * n + i];
        const void *active[K];
        float s_active[K], s_zeroed[K];
        int k_active = 0;
        for (int r = 0; r < K; r++) {
            const bool off = r % 3 == 1 || r == K - 1; /* the last one too: the tail pass */
            x[r] = off ? 0.0f : c.s[r];
            s_zeroed[r] = x[r];
            if (!off) active[k_active] = c.rows[r], s_active[k_active++] = c.s[r];
        }
        for (int64_t i = 0; i < n; i++) dense[i] = (double)c.y0[i] + dot(K, wd + i * K, x);
        for (int si = -1; si < g_n_sets; si++) {
            const sf_axpy_rows_fn fn = si < 0 ? sf_type_ref(type)->axpy_rows : g_sets[si].fn[ti];
            float *y = malloc(sizeof(float) * (size_t)n);
            assert_non_null(y);
            for (int pass = 0; pass < 2; pass++) {
                memcpy(y, c.y0, sizeof(float) * (size_t)n);
                if (pass == 0) fn(n, c.rows, s_zeroed, K, y);
                else fn(n, active, s_active, k_active, y);
                const double e = nmse(y, dense, n);
                if (!(e <= DENSE_NMSE))
                    fail_msg("%s %s, rows %s: NMSE %.3g against the dense product",
                             si < 0 ? "reference" : g_sets[si].name, sf_type_name(type),
                             pass ? "left out" : "with s = 0", e);
                if (e > worst) worst = e;
            }
            free(y);
        }
        free(wd);
        free(dense);
        free_case(&c);
    }
    print_message("axpy zeroed rows: max NMSE against the dense F32 product %.3g (bound %.3g)\n", worst, DENSE_NMSE);
}

static void test_k0_leaves_y(void **state) {
    (void)state;
    const int64_t n = 2048;
    float y[2048], y0[2048];
    for (int64_t i = 0; i < n; i++) y0[i] = i % 7 == 0 ? NAN : i % 5 == 0 ? -0.0f : (float)i;
    for (int ti = 0; ti < N_TYPES; ti++)
        for (int si = -1; si < g_n_sets; si++) {
            const sf_axpy_rows_fn fn = si < 0 ? sf_type_ref(k_types[ti])->axpy_rows : g_sets[si].fn[ti];
            memcpy(y, y0, sizeof y);
            fn(n, NULL, NULL, 0, y); /* k = 0: nothing is read */
            if (memcmp(y, y0, sizeof y) != 0)
                fail_msg("%s %s: k = 0 changed y", si < 0 ? "reference" : g_sets[si].name, sf_type_name(k_types[ti]));
        }
}

static void test_traits(void **state) {
    (void)state;
    for (int ti = 0; ti < N_TYPES; ti++) {
        assert_non_null(sf_type_ref(k_types[ti])->axpy_rows);
        assert_non_null(sf_type_fast(k_types[ti])->axpy_rows);
    }
    /* activation-only types have none */
    assert_null(sf_type_ref(SF_TYPE_Q8_1)->axpy_rows);
    assert_null(sf_type_ref(SF_TYPE_Q8_K)->axpy_rows);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits),
        cmocka_unit_test(test_k0_leaves_y),
        cmocka_unit_test(test_reference_vs_double),
        cmocka_unit_test(test_fast_equals_reference),
        cmocka_unit_test(test_fast_equals_reference_raw),
        cmocka_unit_test(test_zeroed_rows_match_dense),
    };
    return cmocka_run_group_tests(tests, setup_sets, NULL);
}
