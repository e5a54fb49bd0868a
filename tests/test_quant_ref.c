/* Scalar reference kernels and trait tables (tensor/types.h), modeled on
 * llama.cpp's test-quantize-fns:
 *  - the trait table: names, sizes, vec_dot pairs, unknown ids;
 *  - dequantizers against values computed by gguf-py (an independent
 *    implementation) and against the layout formulas of the reference doc
 *    (gguf-and-engine.md section 3), field offsets taken from the doc;
 *  - the activation quantizers (Q8_0, Q8_1, Q8_K) byte for byte against the
 *    doc's procedure, ties included;
 *  - round-trip and dot-product error bounds as in ggml;
 *  - sf_type_fast() against sf_type_ref() at every ISA level the CPU has, on
 *    several row lengths and adversarial data: this is what holds the SIMD
 *    kernels to the references. */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/fp16.h"
#include "tensor/types.h"

/* Weight types with a vec_dot, then the activation-only ones. */
static const int k_weight_types[] = {SF_TYPE_F32,  SF_TYPE_F16,  SF_TYPE_BF16, SF_TYPE_Q4_0,
                                     SF_TYPE_Q4_1, SF_TYPE_Q5_0, SF_TYPE_Q5_1, SF_TYPE_Q8_0,
                                     SF_TYPE_Q2_K, SF_TYPE_Q3_K, SF_TYPE_Q4_K, SF_TYPE_Q5_K,
                                     SF_TYPE_Q6_K, SF_TYPE_IQ4_NL};
#define N_WEIGHT_TYPES ((int)(sizeof k_weight_types / sizeof k_weight_types[0]))

static bool g_isa_env_was_set; /* SF_ISA given by the caller of the test */

/* ---------------------------------------------------------------- helpers */

/* 64-byte aligned, zeroed, with 64 bytes of slack for misaligned views. */
static void *xalloc(size_t n) {
    const size_t size = (n + 64 + 63) / 64 * 64;
    void *p = aligned_alloc(64, size);
    assert_non_null(p);
    memset(p, 0, size);
    return p;
}

static float *xalloc_f(int64_t n) { return xalloc((size_t)n * sizeof(float)); }

/* ggml's synthetic data: 0.1 + amplitude * cos(i + offset) */
static void gen_cos(float *x, int64_t n, float offset, float amp) {
    for (int64_t i = 0; i < n; i++) x[i] = 0.1f + amp * cosf((float)i + offset);
}

static void gen_rand(float *x, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * sf_test_rand_f32(&seed);
}

/* ggml's "rmse": sqrt(sum of squared differences) / n */
static double ggml_rmse(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s) / (double)n;
}

static double dot_f64(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double rms(const float *x, int64_t n) { return sqrt(dot_f64(x, x, n) / (double)n); }

static float rd_f16(const uint8_t *p) {
    sf_fp16 h;
    memcpy(&h, p, 2);
    return sf_fp16_to_fp32(h);
}

static void wr_f16(uint8_t *p, float v) {
    const sf_fp16 h = sf_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

static float rd_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

/* ------------------------------------------------------------ trait table */

typedef struct {
    int id;
    const char *name;
    int block_size;
    size_t type_size;
    int vec_dot_type;
    bool quantized, has_dot;
} want_traits;

static const want_traits k_want[] = {
    {SF_TYPE_F32, "F32", 1, 4, SF_TYPE_F32, false, true},
    {SF_TYPE_F16, "F16", 1, 2, SF_TYPE_F16, false, true},
    {SF_TYPE_BF16, "BF16", 1, 2, SF_TYPE_BF16, false, true},
    {SF_TYPE_Q4_0, "Q4_0", 32, 18, SF_TYPE_Q8_0, true, true},
    {SF_TYPE_Q4_1, "Q4_1", 32, 20, SF_TYPE_Q8_1, true, true},
    {SF_TYPE_Q5_0, "Q5_0", 32, 22, SF_TYPE_Q8_0, true, true},
    {SF_TYPE_Q5_1, "Q5_1", 32, 24, SF_TYPE_Q8_1, true, true},
    {SF_TYPE_Q8_0, "Q8_0", 32, 34, SF_TYPE_Q8_0, true, true},
    {SF_TYPE_Q8_1, "Q8_1", 32, 36, SF_TYPE_Q8_1, true, false},
    {SF_TYPE_Q2_K, "Q2_K", 256, 84, SF_TYPE_Q8_K, true, true},
    {SF_TYPE_Q3_K, "Q3_K", 256, 110, SF_TYPE_Q8_K, true, true},
    {SF_TYPE_Q4_K, "Q4_K", 256, 144, SF_TYPE_Q8_K, true, true},
    {SF_TYPE_Q5_K, "Q5_K", 256, 176, SF_TYPE_Q8_K, true, true},
    {SF_TYPE_Q6_K, "Q6_K", 256, 210, SF_TYPE_Q8_K, true, true},
    {SF_TYPE_Q8_K, "Q8_K", 256, 292, SF_TYPE_Q8_K, true, false},
    {SF_TYPE_IQ4_NL, "IQ4_NL", 32, 18, SF_TYPE_Q8_0, true, true},
};
#define N_WANT ((int)(sizeof k_want / sizeof k_want[0]))

static void test_type_table(void **state) {
    (void)state;
    bool supported[64] = {false};
    for (int i = 0; i < N_WANT; i++) {
        const want_traits *w = &k_want[i];
        supported[w->id] = true;
        const sf_type_traits *r = sf_type_ref(w->id), *f = sf_type_fast(w->id);
        assert_non_null(r);
        assert_non_null(f);
        const sf_type_traits *both[2] = {r, f};
        for (int k = 0; k < 2; k++) {
            const sf_type_traits *t = both[k];
            assert_string_equal(t->name, w->name);
            assert_int_equal(t->block_size, w->block_size);
            assert_int_equal(t->type_size, w->type_size);
            assert_int_equal(t->vec_dot_type, w->vec_dot_type);
            assert_int_equal(t->is_quantized, w->quantized);
            assert_non_null(t->dequantize);
            assert_non_null(t->quantize);
            assert_int_equal(t->vec_dot != NULL, w->has_dot);
        }
        assert_string_equal(sf_type_name(w->id), w->name);
        assert_int_equal(sf_type_row_bytes(w->id, 4096), 4096 / w->block_size * w->type_size);
        assert_int_equal(sf_type_row_bytes(w->id, 0), 0);
        if (w->block_size > 1) assert_int_equal(sf_type_row_bytes(w->id, w->block_size + 1), 0);
        else assert_int_equal(sf_type_row_bytes(w->id, 7), 7 * w->type_size);
    }
    for (int id = -3; id < 64; id++) {
        if (id >= 0 && supported[id]) continue;
        assert_null(sf_type_ref(id));
        assert_null(sf_type_fast(id));
    }
    assert_null(sf_type_ref(INT_MAX));
    assert_null(sf_type_fast(INT_MIN));

    /* names of types we cannot compute on, and ids ggml never defined */
    static const struct { int id; const char *name; } names[] = {
        {16, "IQ2_XXS"}, {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"}, {20, "IQ4_NL"},
        {21, "IQ3_S"},   {22, "IQ2_S"},  {23, "IQ4_XS"},  {24, "I8"},    {25, "I16"},
        {26, "I32"},     {27, "I64"},    {28, "F64"},     {29, "IQ1_M"}, {34, "TQ1_0"},
        {35, "TQ2_0"},   {39, "MXFP4"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_string_equal(sf_type_name(names[i].id), names[i].name);
    assert_string_equal(sf_type_name(-1), "unknown");
    assert_string_equal(sf_type_name(1000), "unknown");
    assert_string_equal(sf_type_name(INT_MAX), "unknown");

    /* sizes of types without kernels (a reader still has to size them) */
    assert_int_equal(sf_type_row_bytes((sf_type)20, 64), 36);   /* IQ4_NL */
    assert_int_equal(sf_type_row_bytes((sf_type)39, 64), 34);   /* MXFP4 */
    assert_int_equal(sf_type_row_bytes((sf_type)16, 256), 66);  /* IQ2_XXS */
    assert_int_equal(sf_type_row_bytes((sf_type)23, 512), 272); /* IQ4_XS */
    assert_int_equal(sf_type_row_bytes((sf_type)35, 256), 66);  /* TQ2_0 */
    assert_int_equal(sf_type_row_bytes((sf_type)26, 3), 12);    /* I32 */
    assert_int_equal(sf_type_row_bytes((sf_type)4, 32), 0);     /* retired */
    assert_int_equal(sf_type_row_bytes((sf_type)1000, 32), 0);
    assert_int_equal(sf_type_row_bytes(SF_TYPE_Q4_0, -32), 0);
}

/* ------------------------------------------------ dequantizers vs the doc */

/* Random block bytes with finite scale fields (d, m/dmin at the doc's offsets). */
static void make_block(int type, uint8_t *blk, uint64_t *rng) {
    const sf_type_traits *t = sf_type_ref(type);
    for (size_t i = 0; i < t->type_size; i++) blk[i] = (uint8_t)(sf_test_rand_u64(rng) >> 56);
    const float d = 0.5f * sf_test_rand_f32(rng), m = 0.5f * sf_test_rand_f32(rng);
    switch (type) {
    case SF_TYPE_Q4_0: case SF_TYPE_Q5_0: case SF_TYPE_Q8_0: case SF_TYPE_IQ4_NL: wr_f16(blk, d); break;
    case SF_TYPE_Q4_1: case SF_TYPE_Q5_1: case SF_TYPE_Q8_1: case SF_TYPE_Q4_K: case SF_TYPE_Q5_K:
        wr_f16(blk, d), wr_f16(blk + 2, m);
        break;
    case SF_TYPE_Q2_K: wr_f16(blk + 80, d), wr_f16(blk + 82, m); break;
    case SF_TYPE_Q3_K: wr_f16(blk + 108, d); break;
    case SF_TYPE_Q6_K: wr_f16(blk + 208, d); break;
    case SF_TYPE_Q8_K: memcpy(blk, &d, 4); break;
    default: fail();
    }
}

/* Value of element e of one block by the doc's formulas, reading fields at
 * the doc's byte offsets. *mag gets the size of the terms (for tolerances). */
static double doc_value(int type, const uint8_t *b, int e, double *mag) {
    double d, m = 0, q, sc = 1;
    switch (type) {
    case SF_TYPE_Q4_0: case SF_TYPE_Q4_1: {
        const int off = type == SF_TYPE_Q4_0 ? 2 : 4;
        d = rd_f16(b);
        q = e < 16 ? (b[off + e] & 0xF) : (b[off + e - 16] >> 4);
        if (type == SF_TYPE_Q4_0) q -= 8;
        else m = rd_f16(b + 2);
        break;
    }
    case SF_TYPE_Q5_0: case SF_TYPE_Q5_1: {
        const int qh_off = type == SF_TYPE_Q5_0 ? 2 : 4, qs = qh_off + 4;
        const uint32_t qh = (uint32_t)b[qh_off] | (uint32_t)b[qh_off + 1] << 8 |
                            (uint32_t)b[qh_off + 2] << 16 | (uint32_t)b[qh_off + 3] << 24;
        d = rd_f16(b);
        const int lo = e < 16 ? (b[qs + e] & 0xF) : (b[qs + e - 16] >> 4);
        q = lo | (int)((qh >> e) & 1) << 4;
        if (type == SF_TYPE_Q5_0) q -= 16;
        else m = rd_f16(b + 2);
        break;
    }
    case SF_TYPE_Q8_0: d = rd_f16(b), q = (int8_t)b[2 + e]; break;
    case SF_TYPE_IQ4_NL: { /* d at 0, 16 index bytes at 2: low nibbles elements 0..15, high 16..31 */
        static const int levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
        d = rd_f16(b), q = levels[e < 16 ? b[2 + e] & 0xF : b[2 + e - 16] >> 4];
        break;
    }
    case SF_TYPE_Q8_1: d = rd_f16(b), q = (int8_t)b[4 + e]; break;
    case SF_TYPE_Q8_K: d = rd_f32(b), q = (int8_t)b[4 + e]; break;
    case SF_TYPE_Q2_K: case SF_TYPE_Q3_K: {
        const int h = e / 128, j = (e / 32) % 4, k = (e / 16) % 2, l = e % 16, s = 8 * h + 2 * j + k;
        if (type == SF_TYPE_Q2_K) {
            q = (b[16 + 32 * h + 16 * k + l] >> (2 * j)) & 3;
            d = rd_f16(b + 80), sc = b[s] & 0xF;
            m = -rd_f16(b + 82) * (b[s] >> 4);
        } else {
            const int low2 = (b[32 + 32 * h + 16 * k + l] >> (2 * j)) & 3;
            const int hbit = (b[16 * k + l] >> (4 * h + j)) & 1;
            q = low2 - (hbit ? 0 : 4);
            const uint8_t *sb = b + 96;
            const int low4 = s < 8 ? (sb[s] & 0xF) : (sb[s - 8] >> 4);
            const int high2 = (sb[8 + s % 4] >> (2 * (s / 4))) & 3;
            d = rd_f16(b + 108), sc = (low4 | high2 << 4) - 32;
        }
        break;
    }
    case SF_TYPE_Q4_K: case SF_TYPE_Q5_K: {
        const int c = e / 64, t = (e / 32) % 2, l = e % 32, s = 2 * c + t;
        const uint8_t *sb = b + 4;
        const int qs = type == SF_TYPE_Q4_K ? 16 : 48;
        q = t == 0 ? (b[qs + 32 * c + l] & 0xF) : (b[qs + 32 * c + l] >> 4);
        if (type == SF_TYPE_Q5_K) q += 16 * ((b[16 + l] >> (2 * c + t)) & 1);
        int mn;
        if (s < 4) sc = sb[s] & 63, mn = sb[s + 4] & 63;
        else sc = (sb[s + 4] & 0xF) | ((sb[s - 4] >> 6) << 4), mn = (sb[s + 4] >> 4) | ((sb[s] >> 6) << 4);
        d = rd_f16(b), m = -rd_f16(b + 2) * mn;
        break;
    }
    case SF_TYPE_Q6_K: {
        const int h = e / 128, r = (e / 32) % 4, l = e % 32;
        const uint8_t lo = b[64 * h + 32 * (r & 1) + l];
        const int low4 = r < 2 ? (lo & 0xF) : (lo >> 4);
        const int high2 = (b[128 + 32 * h + l] >> (2 * r)) & 3;
        q = (low4 | high2 << 4) - 32;
        d = rd_f16(b + 208), sc = (int8_t)b[192 + e / 16];
        break;
    }
    default: fail(); return 0;
    }
    *mag = fabs(d * sc * q) + fabs(m);
    return d * sc * q + m;
}

static void test_dequantize_matches_doc(void **state) {
    (void)state;
    static const int types[] = {SF_TYPE_Q4_0, SF_TYPE_Q4_1, SF_TYPE_Q5_0, SF_TYPE_Q5_1,
                                SF_TYPE_Q8_0, SF_TYPE_Q8_1, SF_TYPE_Q2_K, SF_TYPE_Q3_K,
                                SF_TYPE_Q4_K, SF_TYPE_Q5_K, SF_TYPE_Q6_K, SF_TYPE_Q8_K, SF_TYPE_IQ4_NL};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const sf_type_traits *t = sf_type_ref(types[ti]);
        const int nblk = 4, bs = t->block_size;
        uint8_t *raw = xalloc(nblk * t->type_size + 1);
        float *y = xalloc_f(nblk * bs);
        uint64_t rng = 77 + (uint64_t)types[ti];
        for (int rep = 0; rep < 16; rep++) {
            /* rows start one byte off an aligned address: nothing may assume alignment */
            uint8_t *row = raw + 1;
            for (int b = 0; b < nblk; b++) make_block(types[ti], row + b * t->type_size, &rng);
            t->dequantize(row, y, nblk * bs);
            for (int b = 0; b < nblk; b++)
                for (int e = 0; e < bs; e++) {
                    double mag = 0;
                    const double want = doc_value(types[ti], row + b * t->type_size, e, &mag);
                    const double got = y[b * bs + e];
                    if (fabs(got - want) > 1e-6 * mag) {
                        fprintf(stderr, "%s block %d elem %d: got %g want %g\n", t->name, b, e, got, want);
                        fail();
                    }
                }
        }
        free(raw);
        free(y);
    }
}

/* Dequantized values of one pseudo-random 256-value row per type, computed
 * with gguf-py 0.19 (gguf.quants.dequantize), an implementation independent
 * of ours. Row bytes: splitmix64 from seed 1000 + type, top byte of each
 * output; then every block's d = 0.0625 (f16 0x2C00) and m / dmin = 0.125
 * (0x3000). */
static const int k_kat_idx[24] = {0,   1,   2,   15,  16,  17,  31,  32,  47,  63,  64,  100,
                                  127, 128, 129, 143, 160, 191, 200, 223, 224, 240, 254, 255};
static const struct { int type; float y[24]; } k_kat[] = {
    {SF_TYPE_Q4_0, {0.375f, -0.1875f, -0.3125f, -0.3125f, -0.5f, 0.4375f, 0.3125f, -0.375f, 0.4375f, 0.125f, -0.25f, -0.0625f, 0.0625f, -0.4375f, 0.0f, -0.25f, -0.3125f, -0.375f, 0.1875f, -0.4375f, -0.125f, -0.5f, -0.125f, -0.25f}},
    {SF_TYPE_Q4_1, {0.875f, 0.5625f, 1.0625f, 0.5f, 1.0625f, 1.0625f, 0.125f, 0.875f, 0.5f, 0.5625f, 0.25f, 0.875f, 0.25f, 0.1875f, 0.25f, 0.5625f, 0.625f, 0.125f, 0.25f, 1.0625f, 0.3125f, 0.875f, 1.0f, 0.6875f}},
    {SF_TYPE_Q5_0, {0.5625f, -0.5f, -0.625f, -0.3125f, -0.875f, 0.25f, -0.625f, 0.375f, 0.8125f, -0.375f, 0.625f, -0.8125f, 0.3125f, 0.5f, -1.0f, 0.8125f, -0.1875f, -0.5f, 0.125f, 0.5f, -0.25f, -0.5625f, -0.125f, -0.3125f}},
    {SF_TYPE_Q5_1, {0.25f, 0.25f, 0.375f, 1.9375f, 1.9375f, 1.625f, 1.875f, 1.5625f, 1.3125f, 0.5f, 0.4375f, 1.4375f, 1.625f, 1.3125f, 0.9375f, 1.0f, 1.1875f, 1.5625f, 0.5f, 1.875f, 1.375f, 0.125f, 0.75f, 0.125f}},
    {SF_TYPE_Q8_0, {3.3125f, -2.375f, -0.8125f, 2.0f, -4.6875f, -2.4375f, -7.75f, -6.25f, 6.25f, -4.5625f, 1.5625f, -5.75f, 7.0625f, 0.375f, -7.0f, 3.625f, -3.375f, 6.875f, 6.8125f, 6.5f, -0.5f, 0.3125f, 7.1875f, -2.3125f}},
    {SF_TYPE_Q2_K, {-0.625f, -0.375f, -0.625f, -0.625f, -0.875f, -0.625f, -1.375f, -0.3125f, 0.0625f, -1.25f, 0.625f, 0.5f, -1.8125f, -0.0625f, 1.5625f, 1.5625f, -0.875f, -0.125f, -1.75f, -0.4375f, -1.875f, 0.75f, -0.5f, -0.5f}},
    {SF_TYPE_Q3_K, {0.125f, -0.0625f, 0.1875f, 0.0f, 0.0f, -5.625f, -5.625f, 3.125f, -4.6875f, 2.0f, -0.0f, -1.375f, 0.0f, 5.4375f, -1.8125f, 5.4375f, 1.8125f, 0.75f, -3.1875f, 1.9375f, -3.1875f, 6.5f, -3.25f, 1.625f}},
    {SF_TYPE_Q4_K, {31.5625f, 15.0f, 5.0625f, 31.5625f, 38.1875f, 8.375f, 5.0625f, 47.125f, 32.625f, 54.375f, 9.625f, 15.125f, 2.625f, 37.875f, 48.75f, 8.875f, 37.0625f, 34.125f, 48.0f, 32.25f, 26.6875f, 4.5625f, 0.875f, 4.5625f}},
    {SF_TYPE_Q5_K, {8.5f, 30.5f, 38.75f, 19.5f, 40.125f, 41.5f, 40.125f, 23.6875f, 22.25f, 20.8125f, 14.875f, 53.25f, 95.25f, -3.375f, 5.125f, 6.125f, 8.1875f, 43.0625f, 39.75f, 42.25f, -0.125f, -0.875f, -1.625f, -4.875f}},
    {SF_TYPE_Q6_K, {12.0f, 10.5f, -6.75f, -21.75f, -0.0f, 4.3125f, 1.3125f, -17.4375f, 29.0625f, 1.125f, -115.5f, 11.5f, -236.25f, 131.25f, -175.0f, -18.75f, -92.75f, 17.625f, 74.0f, -137.5f, 28.4375f, 6.6875f, -80.25f, 200.625f}},
};

static void test_dequantize_known_answers(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof k_kat / sizeof k_kat[0]; k++) {
        const sf_type_traits *t = sf_type_ref(k_kat[k].type);
        const int nblk = 256 / t->block_size;
        uint8_t *row = xalloc(nblk * t->type_size);
        float *y = xalloc_f(256);
        uint64_t rng = 1000 + (uint64_t)k_kat[k].type;
        for (size_t i = 0; i < nblk * t->type_size; i++) row[i] = (uint8_t)(sf_test_rand_u64(&rng) >> 56);
        for (int b = 0; b < nblk; b++) {
            uint8_t *blk = row + b * t->type_size;
            const int d_off = k_kat[k].type == SF_TYPE_Q2_K ? 80 : k_kat[k].type == SF_TYPE_Q3_K ? 108
                            : k_kat[k].type == SF_TYPE_Q6_K ? 208 : 0;
            const bool has_m = k_kat[k].type == SF_TYPE_Q4_1 || k_kat[k].type == SF_TYPE_Q5_1 ||
                               k_kat[k].type == SF_TYPE_Q2_K || k_kat[k].type == SF_TYPE_Q4_K ||
                               k_kat[k].type == SF_TYPE_Q5_K;
            blk[d_off] = 0x00, blk[d_off + 1] = 0x2C;
            if (has_m) blk[d_off + 2] = 0x00, blk[d_off + 3] = 0x30;
        }
        t->dequantize(row, y, 256);
        for (int i = 0; i < 24; i++) {
            if (y[k_kat_idx[i]] != k_kat[k].y[i])
                fprintf(stderr, "%s y[%d] = %g, gguf-py says %g\n", t->name, k_kat_idx[i],
                        y[k_kat_idx[i]], k_kat[k].y[i]);
            assert_true(y[k_kat_idx[i]] == k_kat[k].y[i]);
        }
        free(row);
        free(y);
    }
}

/* ------------------------------------------ activation quantizers, exactly */

/* The doc's procedures (section 3.2 / 3.3), written out independently. */
static void doc_quantize_q8(int type, const float *x, int64_t n, uint8_t *out) {
    if (type == SF_TYPE_Q8_K) {
        for (int64_t b = 0; b < n / 256; b++, x += 256, out += 292) {
            memset(out, 0, 292);
            float max = 0, amax = 0;
            for (int j = 0; j < 256; j++)
                if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
            if (amax == 0) continue;
            const float iscale = -127.f / max, d = 1 / iscale;
            memcpy(out, &d, 4);
            for (int j = 0; j < 256; j++) {
                const float v = iscale * x[j];
                int q = (int)nearbyintf(v); /* default rounding: to nearest, ties even */
                if (q > 127) q = 127;
                out[4 + j] = (uint8_t)(int8_t)q;
            }
            for (int g = 0; g < 16; g++) {
                int16_t s = 0;
                for (int l = 0; l < 16; l++) s = (int16_t)(s + (int8_t)out[4 + 16 * g + l]);
                memcpy(out + 260 + 2 * g, &s, 2);
            }
        }
        return;
    }
    const int bsz = type == SF_TYPE_Q8_0 ? 34 : 36, qoff = type == SF_TYPE_Q8_0 ? 2 : 4;
    for (int64_t b = 0; b < n / 32; b++, x += 32, out += bsz) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]);
        const float d = amax / 127, id = d != 0 ? 1 / d : 0;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            const float v = x[j] * id;
            const int q = (int)roundf(v);
            out[qoff + j] = (uint8_t)(int8_t)q;
            sum += q;
        }
        wr_f16(out, d);
        if (type == SF_TYPE_Q8_1) {
            const float s = (float)sum * d;
            wr_f16(out + 2, s);
        }
    }
}

static void test_activation_quantizers_exact(void **state) {
    (void)state;
    static const int types[] = {SF_TYPE_Q8_0, SF_TYPE_Q8_1, SF_TYPE_Q8_K};
    const int64_t n = 1024;
    float *x = xalloc_f(n);
    uint8_t *got = xalloc(n * 2), *want = xalloc(n * 2);
    for (size_t ti = 0; ti < 3; ti++) {
        const sf_type_traits *t = sf_type_ref(types[ti]);
        const size_t bytes = sf_type_row_bytes(types[ti], n);
        for (int pattern = 0; pattern < 6; pattern++) {
            switch (pattern) {
            case 0: gen_rand(x, n, 5, 1.0f); break;
            case 1: gen_cos(x, n, 0.0f, 2.0f); break;
            case 2: memset(x, 0, (size_t)n * sizeof *x); break;
            case 3: gen_rand(x, n, 6, 1e-3f), x[300] = 40.0f, x[700] = -41.0f; break;
            case 4: gen_rand(x, n, 7, 3e4f); break;
            case 5: /* half-integers: every q is a tie (d = 1 where amax = 127) */
                for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 37) % 254 - 127) * 0.5f;
                for (int64_t i = 0; i < n; i += 32) x[i] = 127.0f;
                break;
            }
            memset(got, 0xAB, bytes);
            t->quantize(x, got, n);
            doc_quantize_q8(types[ti], x, n, want);
            if (memcmp(got, want, bytes) != 0) {
                for (size_t i = 0; i < bytes; i++)
                    if (got[i] != want[i]) {
                        fprintf(stderr, "%s pattern %d: byte %zu is %d, want %d\n", t->name, pattern,
                                i, got[i], want[i]);
                        break;
                    }
                fail();
            }
        }
    }

    /* one hand-checked block with ties: Q8_0/Q8_1 round half away from zero,
     * Q8_K rounds to even with iscale = -127/max (so d = -1 here) */
    memset(x, 0, 256 * sizeof *x);
    const float vals[7] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -127.0f};
    memcpy(x, vals, sizeof vals);
    sf_type_ref(SF_TYPE_Q8_0)->quantize(x, got, 32);
    const int8_t q80[7] = {127, 1, 2, 3, -1, -3, -127};
    assert_true(rd_f16(got) == 1.0f);
    for (int j = 0; j < 7; j++) assert_int_equal((int8_t)got[2 + j], q80[j]);
    sf_type_ref(SF_TYPE_Q8_1)->quantize(x, got, 32);
    assert_true(rd_f16(got) == 1.0f);
    assert_true(rd_f16(got + 2) == 2.0f); /* s = d * (127+1+2+3-1-3-127) */
    for (int j = 0; j < 7; j++) assert_int_equal((int8_t)got[4 + j], q80[j]);
    sf_type_ref(SF_TYPE_Q8_K)->quantize(x, got, 256);
    const int8_t q8k[7] = {-127, 0, -2, -2, 0, 2, 127};
    assert_true(rd_f32(got) == -1.0f);
    for (int j = 0; j < 7; j++) assert_int_equal((int8_t)got[4 + j], q8k[j]);
    int16_t bsum0;
    memcpy(&bsum0, got + 260, 2);
    assert_int_equal(bsum0, -2);

    free(x);
    free(got);
    free(want);
}

/* Legacy weight quantizers on a block whose result is known by hand. */
static void test_legacy_quantizers_by_hand(void **state) {
    (void)state;
    float x[32];
    uint8_t b[40];
    /* Q4_0: max = -8 (first of largest |x|) -> d = 1, q = x + 8 */
    for (int j = 0; j < 32; j++) x[j] = (float)(j % 16) - 8.0f;
    sf_type_ref(SF_TYPE_Q4_0)->quantize(x, b, 32);
    assert_true(rd_f16(b) == 1.0f);
    for (int j = 0; j < 16; j++) assert_int_equal(b[2 + j], j | (j << 4));
    /* Q5_0: x = j - 16, max = -16 -> d = 1, q = j: 5th bit j >> 4 in qh */
    for (int j = 0; j < 32; j++) x[j] = (float)j - 16.0f;
    sf_type_ref(SF_TYPE_Q5_0)->quantize(x, b, 32);
    assert_true(rd_f16(b) == 1.0f);
    assert_int_equal(b[2] | b[3] << 8 | b[4] << 16 | (uint32_t)b[5] << 24, 0xFFFF0000u);
    for (int j = 0; j < 16; j++) assert_int_equal(b[6 + j], j | (j << 4));
    /* Q4_1: x = 2 + 0.5 * (j % 16) -> min 2, d = 0.5, q = j % 16 */
    for (int j = 0; j < 32; j++) x[j] = 2.0f + 0.5f * (float)(j % 16);
    sf_type_ref(SF_TYPE_Q4_1)->quantize(x, b, 32);
    assert_true(rd_f16(b) == 0.5f);
    assert_true(rd_f16(b + 2) == 2.0f);
    for (int j = 0; j < 16; j++) assert_int_equal(b[4 + j], j | (j << 4));
    /* Q5_1: x = -1 + 0.25 * j -> min -1, d = 0.25, q = j */
    for (int j = 0; j < 32; j++) x[j] = -1.0f + 0.25f * (float)j;
    sf_type_ref(SF_TYPE_Q5_1)->quantize(x, b, 32);
    assert_true(rd_f16(b) == 0.25f);
    assert_true(rd_f16(b + 2) == -1.0f);
    assert_int_equal(b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24, 0xFFFF0000u);
    for (int j = 0; j < 16; j++) assert_int_equal(b[8 + j], j | (j << 4));
}

/* ------------------------------------------------ round trip and dot error */

/* Round-trip bounds. ggml: ggml's metric sqrt(sum d^2)/n on 0.1 + 2cos(i),
 * n = 4096, with ggml's thresholds (>= 4-bit 0.002, 3-bit 0.004, 2-bit
 * 0.0075). rel: RMSE / RMS on uniform [-1, 1) data, about 1.4x the worst our
 * quantizers reached over 40 seeds (Q4_0 0.067, Q2_K 0.235, Q3_K 0.121,
 * Q4_K 0.056, Q5_K 0.028, Q6_K 0.013, Q8_0 0.0039). */
static const struct { int type; double ggml, rel; } k_rt[] = {
    {SF_TYPE_F32, 0.0, 0.0},         {SF_TYPE_F16, 0.002, 0.0003},   {SF_TYPE_BF16, 0.002, 0.0025},
    {SF_TYPE_Q4_0, 0.002, 0.09},     {SF_TYPE_Q4_1, 0.002, 0.085},   {SF_TYPE_Q5_0, 0.002, 0.045},
    {SF_TYPE_Q5_1, 0.002, 0.042},    {SF_TYPE_Q8_0, 0.002, 0.0055},  {SF_TYPE_Q8_1, 0.002, 0.0055},
    {SF_TYPE_Q2_K, 0.0075, 0.32},    {SF_TYPE_Q3_K, 0.004, 0.17},    {SF_TYPE_Q4_K, 0.002, 0.075},
    {SF_TYPE_Q5_K, 0.002, 0.04},     {SF_TYPE_Q6_K, 0.002, 0.019},   {SF_TYPE_Q8_K, 0.002, 0.0055},
    {SF_TYPE_IQ4_NL, 0.002, 0.09},
};

static void test_round_trip(void **state) {
    (void)state;
    const int64_t n = 4096;
    float *x = xalloc_f(n), *y = xalloc_f(n);
    uint8_t *q = xalloc((size_t)n * 4), *q2 = xalloc((size_t)n * 4);
    for (size_t k = 0; k < sizeof k_rt / sizeof k_rt[0]; k++) {
        const sf_type_traits *t = sf_type_ref(k_rt[k].type);
        const size_t bytes = sf_type_row_bytes(k_rt[k].type, n);

        gen_cos(x, n, 0.0f, 2.0f);
        t->quantize(x, q, n);
        t->dequantize(q, y, n);
        const double e_ggml = ggml_rmse(x, y, n);

        gen_rand(x, n, 11 + (uint64_t)k, 1.0f);
        t->quantize(x, q, n);
        t->dequantize(q, y, n);
        const double e_rel = ggml_rmse(x, y, n) * sqrt((double)n) / rms(x, n); /* RMSE / RMS */
        t->quantize(x, q2, n); /* deterministic */
        assert_memory_equal(q, q2, bytes);

        if (!(e_ggml <= k_rt[k].ggml) || !(e_rel <= k_rt[k].rel))
            fprintf(stderr, "%s: ggml-metric error %.6f (max %.4f), relative RMSE %.5f (max %.4f)\n",
                    t->name, e_ggml, k_rt[k].ggml, e_rel, k_rt[k].rel);
        assert_true(e_ggml <= k_rt[k].ggml);
        assert_true(e_rel <= k_rt[k].rel);

        /* zeros stay exactly zero */
        memset(x, 0, (size_t)n * sizeof *x);
        t->quantize(x, q, n);
        t->dequantize(q, y, n);
        for (int64_t i = 0; i < n; i++) assert_true(y[i] == 0.0f);
    }
    free(x), free(y), free(q), free(q2);
}

/* Dot products against the f32 dot product of the unquantized data, error
 * |got - want| / n as in ggml (0.02, and 0.04 for Q2_K), on ggml's data. */
static void test_dot_product_error(void **state) {
    (void)state;
    const int64_t n = 4096;
    float *x = xalloc_f(n), *a = xalloc_f(n);
    uint8_t *qw = xalloc((size_t)n * 4), *qa = xalloc((size_t)n * 4);
    gen_cos(x, n, 0.0f, 2.0f);
    gen_cos(a, n, 1.0f, 2.0f);
    const double want = dot_f64(x, a, n);
    for (int k = 0; k < N_WEIGHT_TYPES; k++) {
        const sf_type_traits *t = sf_type_ref(k_weight_types[k]);
        const sf_type_traits *at = sf_type_ref(t->vec_dot_type);
        t->quantize(x, qw, n);
        at->quantize(a, qa, n);
        const double err = fabs(t->vec_dot(n, qw, qa) - want) / (double)n;
        const double bound = k_weight_types[k] == SF_TYPE_Q2_K ? 0.04 : 0.02;
        if (!(err < bound)) fprintf(stderr, "%s: dot error %.5f (max %.2f)\n", t->name, err, bound);
        assert_true(err < bound);
    }
    /* F32 at odd lengths (ggml's test_vec_dot_f32) */
    static const int lens[] = {1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 67, 127, 129, 193, 255, 1023};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        const float got = sf_type_ref(SF_TYPE_F32)->vec_dot(lens[i], x, a);
        assert_true(fabs(got - dot_f64(x, a, lens[i])) / lens[i] < 1e-4);
    }
    free(x), free(a), free(qw), free(qa);
}

/* vec_dot(w, a) equals sum(dequant(w) * dequant(a)) up to float rounding, on
 * random blocks (arbitrary scales): a vec_dot that reads a layout differently
 * from its dequantizer cannot pass. */
static void test_vec_dot_matches_dequant(void **state) {
    (void)state;
    const int64_t n = 1024;
    float *wf = xalloc_f(n), *af = xalloc_f(n), *x = xalloc_f(n);
    uint8_t *w = xalloc((size_t)n * 4), *a = xalloc((size_t)n * 4);
    for (int k = 0; k < N_WEIGHT_TYPES; k++) {
        const int type = k_weight_types[k];
        const sf_type_traits *t = sf_type_ref(type), *at = sf_type_ref(t->vec_dot_type);
        uint64_t rng = 900 + (uint64_t)type;
        for (int rep = 0; rep < 8; rep++) {
            if (t->is_quantized) {
                for (int64_t b = 0; b < n / t->block_size; b++) make_block(type, w + b * t->type_size, &rng);
            } else {
                gen_rand(x, n, rng++, 3.0f);
                t->quantize(x, w, n);
            }
            gen_rand(x, n, rng++, 2.0f);
            if (rep == 1) x[17] = 100.0f;
            at->quantize(x, a, n);
            t->dequantize(w, wf, n);
            at->dequantize(a, af, n);
            double want = 0, mag = 0;
            for (int64_t i = 0; i < n; i++) {
                want += (double)wf[i] * af[i];
                mag += fabs((double)wf[i] * af[i]);
            }
            if (t->vec_dot_type == SF_TYPE_Q8_1) {
                /* the offset term uses s = f16(d * sum q): allow its rounding */
                for (int64_t b = 0; b < n / 32; b++)
                    mag += fabs(rd_f16(w + b * t->type_size + 2)) * fabs(rd_f16(a + b * 36 + 2)) * 2e3;
            }
            const double got = t->vec_dot(n, w, a);
            if (!(fabs(got - want) <= 2e-6 * mag)) {
                fprintf(stderr, "%s rep %d: vec_dot %.9g, dequantized dot %.9g (magnitude %.3g)\n",
                        t->name, rep, got, want, mag);
                fail();
            }
        }
    }
    free(wf), free(af), free(x), free(w), free(a);
}

/* NaN, infinities, huge and subnormal values, and random bytes as blocks:
 * garbage out is fine, undefined behaviour is not (run under sanitizers). */
static void test_odd_inputs(void **state) {
    (void)state;
    const int64_t n = 512;
    float *x = xalloc_f(n), *y = xalloc_f(n);
    uint8_t *q = xalloc((size_t)n * 4), *a = xalloc((size_t)n * 4);
    const float odd[] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, 1e-40f, -1e-45f, 0.0f, 1.0f};
    for (int i = 0; i < N_WANT; i++) {
        const sf_type_traits *t = sf_type_ref(k_want[i].id);
        for (int p = 0; p < 4; p++) {
            uint64_t rng = 5 + (uint64_t)p;
            for (int64_t j = 0; j < n; j++)
                x[j] = p == 0 ? odd[j % 9] : p == 1 ? odd[sf_test_rand_u64(&rng) % 9]
                     : p == 2 ? 3e38f * sf_test_rand_f32(&rng) : odd[p % 9];
            t->quantize(x, q, n);
            t->dequantize(q, y, n);
            for (size_t b = 0; b < sf_type_row_bytes(k_want[i].id, n); b++) q[b] = (uint8_t)sf_test_rand_u64(&rng);
            t->dequantize(q, y, n);
            if (t->vec_dot) {
                const sf_type_traits *at = sf_type_ref(t->vec_dot_type);
                at->quantize(x, a, n);
                (void)t->vec_dot(n, q, a);
                (void)sf_type_fast(k_want[i].id)->vec_dot(n, q, a);
            }
        }
    }
    free(x), free(y), free(q), free(a);
}

/* ------------------------------------------------------ fast vs reference */

static const char *const k_levels[3] = {"scalar", "avx2", "avx512"};

/* One quantization step of activation element i (ref bytes q, value v):
 * what a fast activation quantizer may differ by. */
static double act_step(int type, const uint8_t *q, int64_t i, float v) {
    switch (type) {
    case SF_TYPE_F16: return fmax(fabsf(v) * 0x1p-10, 0x1p-24);
    case SF_TYPE_BF16: return fabsf(v) * 0x1p-7 + 1e-38;
    case SF_TYPE_Q8_0: return fabsf(rd_f16(q + (i / 32) * 34));
    case SF_TYPE_Q8_1: return fabsf(rd_f16(q + (i / 32) * 36));
    case SF_TYPE_Q8_K: return fabsf(rd_f32(q + (i / 256) * 292));
    default: return 0.0; /* F32: a copy */
    }
}

typedef struct {
    int64_t n;
    float *x, *yr, *yf;     /* [n] scratch */
    uint8_t *qr, *qf;       /* [row bytes] activation, ref and fast */
    uint8_t *wbase, *w;     /* [rows][row bytes] weights, w misaligned */
    float *wdeq;            /* [rows][n] reference dequantized weights */
    const char *level;
} fast_ctx;

#define N_WROWS 6
#define N_APATTERNS 7

static void gen_pattern(float *x, int64_t n, int pattern, uint64_t seed, bool weights) {
    switch (pattern) {
    case 0: gen_rand(x, n, seed, 1.0f); break;
    case 1: memset(x, 0, (size_t)n * sizeof *x); break;
    /* large; Q8_1's f16 s = d * sum(q) overflows past about 8e3 (as in ggml) */
    case 2: gen_rand(x, n, seed, weights ? 1e4f : 2e3f); break;
    case 3: gen_rand(x, n, seed, 0.01f), x[n / 3] = 50.0f, x[n - 1] = -60.0f; break; /* spikes */
    case 4: for (int64_t i = 0; i < n; i++) x[i] = weights ? 0.37f : -0.5f; break;
    case 5: gen_cos(x, n, (float)seed, 2.0f); break;
    default: gen_rand(x, n, seed, 1e-6f); break;                             /* tiny */
    }
}

/* Fast activation quantizer within one step of the reference; its sums
 * (Q8_1 s, Q8_K bsums) consistent with its own quants. */
static void check_activation(fast_ctx *c, int vdt, int pattern) {
    const sf_type_traits *r = sf_type_ref(vdt), *f = sf_type_fast(vdt);
    const int64_t n = c->n;
    const size_t bytes = sf_type_row_bytes(vdt, n);
    r->quantize(c->x, c->qr, n);
    memset(c->qf, 0xCD, bytes);
    f->quantize(c->x, c->qf, n);
    if (memcmp(c->qr, c->qf, bytes) == 0) return;
    r->dequantize(c->qr, c->yr, n);
    r->dequantize(c->qf, c->yf, n);
    for (int64_t i = 0; i < n; i++) {
        const double step = act_step(vdt, c->qr, i, c->yr[i]);
        if (!(fabs((double)c->yf[i] - c->yr[i]) <= step * 1.0001 + 1e-30)) {
            fprintf(stderr, "[%s] %s quantize n=%lld pattern %d: elem %lld fast %g ref %g (step %g)\n",
                    c->level, r->name, (long long)n, pattern, (long long)i, c->yf[i], c->yr[i], step);
            fail();
        }
    }
    for (int64_t b = 0; vdt == SF_TYPE_Q8_K && b < n / 256; b++) {
        const uint8_t *blk = c->qf + b * 292;
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            int16_t bs;
            for (int l = 0; l < 16; l++) sum += (int8_t)blk[4 + 16 * g + l];
            memcpy(&bs, blk + 260 + 2 * g, 2);
            if (bs != sum) fprintf(stderr, "[%s] Q8_K bsums[%d] %d != %d\n", c->level, g, bs, sum);
            assert_int_equal(bs, sum);
        }
    }
    for (int64_t b = 0; vdt == SF_TYPE_Q8_1 && b < n / 32; b++) {
        const uint8_t *blk = c->qf + b * 36;
        int sum = 0;
        for (int l = 0; l < 32; l++) sum += (int8_t)blk[4 + l];
        const double want = (double)rd_f16(blk) * sum;
        assert_true(fabs(rd_f16(blk + 2) - want) <= 2e-3 * fabs(want) + 1e-30);
    }
}

/* One weight type at one length: weight rows in several patterns against
 * activations in several patterns. */
static void check_fast_type(fast_ctx *c, int type) {
    const sf_type_traits *r = sf_type_ref(type), *f = sf_type_fast(type);
    const sf_type_traits *ar = sf_type_ref(r->vec_dot_type), *af = sf_type_fast(r->vec_dot_type);
    const int64_t n = c->n;
    const size_t rb = sf_type_row_bytes(type, n), ab = sf_type_row_bytes(r->vec_dot_type, n);
    c->w = c->wbase + (type == SF_TYPE_F32 ? 4 : 2); /* packed rows, not 64-byte aligned */

    for (int row = 0; row < N_WROWS; row++) {
        uint8_t *wr = c->w + row * rb;
        float *wd = c->wdeq + row * n;
        gen_pattern(c->x, n, row, 31 * (uint64_t)row + (uint64_t)n, true);
        r->quantize(c->x, wr, n);
        r->dequantize(wr, wd, n);
        /* fast dequantize: equal up to float rounding (an FMA may round once) */
        f->dequantize(wr, c->yf, n);
        double amax = 0;
        for (int64_t i = 0; i < n; i++) amax = fmax(amax, fabs(wd[i]));
        for (int64_t i = 0; i < n; i++)
            if (!(fabs((double)c->yf[i] - wd[i]) <= 1e-6 * amax)) {
                fprintf(stderr, "[%s] %s dequantize n=%lld row %d: elem %lld fast %g ref %g\n",
                        c->level, r->name, (long long)n, row, (long long)i, c->yf[i], wd[i]);
                fail();
            }
        /* a fast weight quantizer must be no worse than the reference */
        if (f->quantize != r->quantize && type != (int)r->vec_dot_type) {
            uint8_t *tmp = c->qf; /* large enough for any row */
            f->quantize(c->x, tmp, n);
            r->dequantize(tmp, c->yf, n);
            const double ef = ggml_rmse(c->x, c->yf, n), er = ggml_rmse(c->x, wd, n);
            if (!(ef <= er * 1.05 + 1e-7 * rms(c->x, n) / sqrt((double)n))) {
                fprintf(stderr, "[%s] %s fast quantize error %g vs ref %g\n", c->level, r->name, ef, er);
                fail();
            }
        }
    }

    for (int p = 0; p < N_APATTERNS; p++) {
        gen_pattern(c->x, n, p, 1000 + 7 * (uint64_t)p + (uint64_t)n, false);
        check_activation(c, r->vec_dot_type, p);
        ar->quantize(c->x, c->qr, n); /* both vec_dots read the reference bytes */
        ar->dequantize(c->qr, c->yr, n);
        af->dequantize(c->qr, c->yf, n);
        for (int64_t i = 0; i < n; i++) assert_true(fabs((double)c->yf[i] - c->yr[i]) <= 1e-6 * fabs(c->yr[i]));
        double num = 0, den = 0;
        for (int row = 0; row < N_WROWS; row++) {
            const uint8_t *wr = c->w + row * rb;
            const float *wd = c->wdeq + row * n;
            const double ref = r->vec_dot(n, wr, c->qr), fast = f->vec_dot(n, wr, c->qr);
            double mag = 0;
            for (int64_t i = 0; i < n; i++) mag += fabs((double)wd[i] * c->yr[i]);
            num += (fast - ref) * (fast - ref);
            den += ref * ref + 1e-4 * mag * mag;
            if (!isfinite(fast) && isfinite(ref)) num = INFINITY;
        }
        /* NMSE <= 1e-7 (test-backend-ops' default); the magnitude term keeps
         * rows whose terms cancel from demanding more than float rounding */
        if (!(num <= 1e-7 * den)) {
            fprintf(stderr, "[%s] %s vec_dot n=%lld activation pattern %d: NMSE %g\n", c->level,
                    r->name, (long long)n, p, den > 0 ? num / den : num);
            fail();
        }
    }
    (void)ab;
}

static void check_fast_level(const char *level) {
    const int64_t max_n = 4096;
    fast_ctx c = {.n = 0, .level = level};
    c.x = xalloc_f(max_n), c.yr = xalloc_f(max_n), c.yf = xalloc_f(max_n);
    c.qr = xalloc((size_t)max_n * 4), c.qf = xalloc((size_t)max_n * 4);
    c.wbase = xalloc((size_t)N_WROWS * max_n * 4 + 8);
    c.wdeq = xalloc_f(N_WROWS * max_n);
    static const int64_t len1[] = {1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 256, 576, 1536, 4096};
    static const int64_t len32[] = {32, 64, 96, 160, 256, 576, 1536, 4096};
    static const int64_t len256[] = {256, 512, 768, 1536, 4096};
    for (int k = 0; k < N_WEIGHT_TYPES; k++) {
        const sf_type_traits *t = sf_type_ref(k_weight_types[k]);
        const int64_t *lens = t->block_size == 1 ? len1 : t->block_size == 32 ? len32 : len256;
        const size_t nlen = t->block_size == 1 ? sizeof len1 / sizeof *len1
                          : t->block_size == 32 ? sizeof len32 / sizeof *len32
                                                : sizeof len256 / sizeof *len256;
        for (size_t li = 0; li < nlen; li++) {
            c.n = lens[li];
            check_fast_type(&c, k_weight_types[k]);
        }
    }
    free(c.x), free(c.yr), free(c.yf), free(c.qr), free(c.qf), free(c.wbase), free(c.wdeq);
}

static void test_fast_matches_ref(void **state) {
    (void)state;
    const char *initial = sf_cpu_isa();
    int tested = 0;
    for (int i = 0; i < 3; i++) {
        if (!sf_cpu_isa_force(k_levels[i])) {
            print_message("fast-vs-ref: %s not supported by this CPU, not tested\n", k_levels[i]);
            continue;
        }
        assert_string_equal(sf_cpu_isa(), k_levels[i]);
        check_fast_level(k_levels[i]);
        tested++;
    }
    assert_true(tested >= 1);
    assert_true(sf_cpu_isa_force(initial));
}

/* ------------------------------------------------------------ ISA choice */

static const char *g_first_isa[4]; /* sf_cpu_isa() seen by 4 racing threads */

static void *first_use(void *arg) {
    *(const char **)arg = sf_cpu_isa();
    return NULL;
}

static void test_isa_selection(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        assert_non_null(g_first_isa[i]);
        assert_string_equal(g_first_isa[i], g_first_isa[0]);
    }
    const char *isa = sf_cpu_isa();
    const char *env = getenv("SF_ISA");
    /* SF_ISA (main sets "scalar" when the caller gave none) picks the first
     * level whenever the CPU has it */
    if (!g_isa_env_was_set) assert_string_equal(isa, "scalar");
    else if (sf_cpu_isa_force(env)) assert_string_equal(isa, env);
    assert_true(sf_cpu_isa_force(isa));
    assert_false(sf_cpu_isa_force("bogus"));
    assert_false(sf_cpu_isa_force(""));
    assert_false(sf_cpu_isa_force(NULL));
    assert_string_equal(sf_cpu_isa(), isa); /* a refused force changes nothing */

    /* scalar: the fast table is exactly the reference table */
    assert_true(sf_cpu_isa_force("scalar"));
    assert_string_equal(sf_cpu_isa(), "scalar");
    for (int i = 0; i < N_WANT; i++) {
        const sf_type_traits *r = sf_type_ref(k_want[i].id), *f = sf_type_fast(k_want[i].id);
        assert_true(f->dequantize == r->dequantize && f->quantize == r->quantize && f->vec_dot == r->vec_dot);
    }
    /* levels nest: avx512 implies avx2 */
    const bool has512 = sf_cpu_isa_force("avx512"), has2 = sf_cpu_isa_force("avx2");
    print_message("ISA levels: avx2 %s, avx512 %s\n", has2 ? "yes" : "no", has512 ? "yes" : "no");
    if (has512) assert_true(has2);
    assert_true(sf_cpu_isa_force(isa));
}

int main(void) {
    g_isa_env_was_set = getenv("SF_ISA") != NULL;
    if (!g_isa_env_was_set) setenv("SF_ISA", "scalar", 1);
    /* first use from several threads at once: one initialization, one answer */
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&th[i], NULL, first_use, &g_first_isa[i]) != 0) return 1;
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isa_selection),
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_dequantize_matches_doc),
        cmocka_unit_test(test_dequantize_known_answers),
        cmocka_unit_test(test_activation_quantizers_exact),
        cmocka_unit_test(test_legacy_quantizers_by_hand),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_dot_product_error),
        cmocka_unit_test(test_vec_dot_matches_dequant),
        cmocka_unit_test(test_odd_inputs),
        cmocka_unit_test(test_fast_matches_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
