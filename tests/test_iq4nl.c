/* IQ4_NL (tensor/quant_iq4nl.c, simd_iq4nl_avx2.c):
 *  - layout: a hand-built block dequantizes to d * level[index], element j
 *    from the low nibble of qs[j], element j + 16 from its high nibble;
 *  - quantizer: deterministic, exact on data that lies on the level grid,
 *    ggml's round-trip bound, better than Q4_0 on bell-shaped data;
 *  - scalar vec_dot: exact on integer data, and equal to a double-precision
 *    dot of the dequantized rows up to float rounding;
 *  - AVX2 vec_dot: bit for bit equal to an emulation (written here from
 *    ggml's x86 ggml_vec_dot_iq4_nl_q8_0) of ggml's order, and within float
 *    rounding of the scalar reference (bit-identical on one block);
 *  - the 2x4 kernel: bit for bit equal to the AVX2 vec_dot;
 *  - a tiny llama model whose matrices are IQ4_NL loads, decodes finite
 *    logits close to those of the same model with the dequantized weights in
 *    F32, and gives the same bits in the fast and exact kernel modes. */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "sparsefuse.h"
#include "sparsefuse_eval.h"
#include "tensor/blocks.h"
#include "tensor/quant_ref.h"
#include "tensor/types.h"

static const int8_t k_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* ---------------------------------------------------------------- helpers */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static float rd_f16(const uint8_t *p) {
    sf_fp16 h;
    memcpy(&h, p, 2);
    return sf_fp16_to_fp32(h);
}

static void wr_f16(uint8_t *p, float v) {
    const sf_fp16 h = sf_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* Roughly normal values (sum of 4 uniforms), standard deviation ~scale. */
static void gen_bell(float *x, int64_t n, uint64_t *rng, float scale) {
    for (int64_t i = 0; i < n; i++) {
        float s = 0.0f;
        for (int k = 0; k < 4; k++) s += sf_test_rand_f32(rng);
        x[i] = scale * s * 0.866f;
    }
}

/* A row of n random IQ4_NL blocks with random scales in +-smax. */
static void random_row(uint8_t *row, int64_t n, uint64_t *rng, float smax) {
    for (int64_t b = 0; b < n / 32; b++) {
        uint8_t *blk = row + b * sizeof(sf_block_iq4_nl);
        for (size_t i = 0; i < sizeof(sf_block_iq4_nl); i++) blk[i] = (uint8_t)(sf_test_rand_u64(rng) >> 56);
        wr_f16(blk, smax * sf_test_rand_f32(rng));
    }
}

/* Q8_0 activations of n values through the fast quantizer (what the engine uses). */
static void act_row(uint8_t *a, int64_t n, uint64_t *rng, int pattern) {
    float *x = xmalloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        const float r = sf_test_rand_f32(rng);
        x[i] = pattern == 0 ? r : pattern == 1 ? 3e3f * r : pattern == 2 ? (i % 32 == 0 ? 127.0f : (float)(int)(127 * r)) : 0.0f;
    }
    if (pattern == 1) x[sf_test_rand_u64(rng) % (uint64_t)n] = -1e4f;
    sf_type_fast(SF_TYPE_Q8_0)->quantize(x, a, n);
    free(x);
}

/* ------------------------------------------------------------- the layout */

static void test_layout_by_hand(void **state) {
    (void)state;
    const sf_type_traits *t = sf_type_ref(SF_TYPE_IQ4_NL);
    assert_non_null(t);
    assert_string_equal(t->name, "IQ4_NL");
    assert_string_equal(sf_type_name(20), "IQ4_NL");
    assert_int_equal(SF_TYPE_IQ4_NL, 20);
    assert_int_equal(t->block_size, 32);
    assert_int_equal(t->type_size, 18);
    assert_int_equal(t->vec_dot_type, SF_TYPE_Q8_0);
    assert_true(t->is_quantized && t->quantize && t->dequantize && t->vec_dot);
    assert_memory_equal(sf_iq4nl_values, k_levels, sizeof k_levels);
    assert_int_equal(sf_type_row_bytes(SF_TYPE_IQ4_NL, 96), 54);

    uint8_t raw[2 * 18 + 1], *blk = raw + 1; /* two blocks at an odd address */
    wr_f16(blk, 0.5f);
    wr_f16(blk + 18, -0.25f);
    for (int j = 0; j < 16; j++) {
        blk[2 + j] = (uint8_t)(j | (15 - j) << 4);
        blk[18 + 2 + j] = (uint8_t)((j * 7) % 16 | ((j * 3 + 1) % 16) << 4);
    }
    float y[64];
    t->dequantize(blk, y, 64);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == 0.5f * k_levels[j]);
        assert_true(y[j + 16] == 0.5f * k_levels[15 - j]);
        assert_true(y[32 + j] == -0.25f * k_levels[(j * 7) % 16]);
        assert_true(y[48 + j] == -0.25f * k_levels[(j * 3 + 1) % 16]);
    }
    /* the fast table dequantizes the same */
    float yf[64];
    sf_type_fast(SF_TYPE_IQ4_NL)->dequantize(blk, yf, 64);
    assert_memory_equal(y, yf, sizeof y);
}

/* ------------------------------------------------------------ the quantizer */

static void test_quantizer(void **state) {
    (void)state;
    const sf_type_traits *t = sf_type_ref(SF_TYPE_IQ4_NL), *q4 = sf_type_ref(SF_TYPE_Q4_0);
    const int64_t n = 4096;
    float *x = xmalloc(n * sizeof *x), *y = xmalloc(n * sizeof *y);
    uint8_t *q = xmalloc(sf_type_row_bytes(SF_TYPE_IQ4_NL, n)), *q2 = xmalloc(sf_type_row_bytes(SF_TYPE_IQ4_NL, n));
    uint8_t *p4 = xmalloc(sf_type_row_bytes(SF_TYPE_Q4_0, n));
    uint64_t rng = 2024;

    /* data on the grid: c * level (c a power of two, each block using the
     * -127 level) comes back exactly */
    for (int64_t b = 0; b < n / 32; b++) {
        const float c = ldexpf(1.0f, (int)(b % 9) - 4) * (b % 2 ? -1.0f : 1.0f);
        for (int j = 0; j < 32; j++) x[b * 32 + j] = c * k_levels[j == 5 ? 0 : sf_test_rand_u64(&rng) % 16];
    }
    t->quantize(x, q, n);
    t->dequantize(q, y, n);
    for (int64_t i = 0; i < n; i++)
        if (x[i] != y[i]) fail_msg("on-grid value %lld: %g came back as %g", (long long)i, x[i], y[i]);

    /* ggml's round-trip metric on 0.1 + 2 cos(i): sqrt(sum d^2) / n <= 0.002 */
    for (int64_t i = 0; i < n; i++) x[i] = 0.1f + 2.0f * cosf((float)i);
    t->quantize(x, q, n);
    t->dequantize(q, y, n);
    double e2 = 0;
    for (int64_t i = 0; i < n; i++) e2 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    if (!(sqrt(e2) / n <= 0.002)) fail_msg("round-trip error %g", sqrt(e2) / n);

    /* bell-shaped data: lower error than Q4_0 (what the non-linear levels are
     * for), relative RMSE bounded, and the same bytes every time */
    double e_iq = 0, e_q4 = 0, ss = 0;
    for (int rep = 0; rep < 8; rep++) {
        gen_bell(x, n, &rng, rep % 2 ? 1e-3f : 3.0f);
        t->quantize(x, q, n);
        t->quantize(x, q2, n);
        assert_memory_equal(q, q2, sf_type_row_bytes(SF_TYPE_IQ4_NL, n));
        t->dequantize(q, y, n);
        for (int64_t i = 0; i < n; i++) e_iq += ((double)x[i] - y[i]) * ((double)x[i] - y[i]) / (rep % 2 ? 1e-6 : 9.0);
        q4->quantize(x, p4, n);
        q4->dequantize(p4, y, n);
        for (int64_t i = 0; i < n; i++) {
            e_q4 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]) / (rep % 2 ? 1e-6 : 9.0);
            ss += (double)x[i] * x[i] / (rep % 2 ? 1e-6 : 9.0);
        }
    }
    print_message("IQ4_NL relative RMSE %.4f, Q4_0 %.4f (bell-shaped data)\n", sqrt(e_iq / ss), sqrt(e_q4 / ss));
    assert_true(e_iq < 0.9 * e_q4);
    assert_true(sqrt(e_iq / ss) < 0.1);

    /* zeros and sub-epsilon blocks become exact zeros */
    memset(x, 0, n * sizeof *x);
    x[40] = 1e-16f;
    t->quantize(x, q, n);
    t->dequantize(q, y, n);
    for (int64_t i = 0; i < n; i++) assert_true(y[i] == 0.0f);

    free(x), free(y), free(q), free(q2), free(p4);
}

/* ------------------------------------------------------- scalar vec_dot */

static void test_ref_vec_dot(void **state) {
    (void)state;
    const sf_type_traits *t = sf_type_ref(SF_TYPE_IQ4_NL), *a8 = sf_type_ref(SF_TYPE_Q8_0);
    static const int64_t lengths[] = {32, 64, 96, 160, 576, 1000 / 32 * 32, 4096};
    uint64_t rng = 77;
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        const int64_t n = lengths[l];
        uint8_t *w = xmalloc(sf_type_row_bytes(SF_TYPE_IQ4_NL, n) + 1), *a = xmalloc(sf_type_row_bytes(SF_TYPE_Q8_0, n) + 1);
        float *wf = xmalloc(n * sizeof *wf), *af = xmalloc(n * sizeof *af);
        for (int rep = 0; rep < 12; rep++) {
            uint8_t *wo = w + (rep % 2), *ao = a + (rep % 2); /* odd addresses too */
            if (rep % 3 == 0) {
                gen_bell(wf, n, &rng, 0.05f);
                t->quantize(wf, wo, n);
            } else {
                random_row(wo, n, &rng, 0.5f);
            }
            act_row(ao, n, &rng, rep % 4);
            t->dequantize(wo, wf, n);
            a8->dequantize(ao, af, n);
            double want = 0, mag = 0;
            for (int64_t i = 0; i < n; i++) {
                want += (double)wf[i] * af[i];
                mag += fabs((double)wf[i] * af[i]);
            }
            const double got = t->vec_dot(n, wo, ao);
            if (!(fabs(got - want) <= 2e-6 * mag))
                fail_msg("n=%lld rep %d: vec_dot %.9g, dequantized dot %.9g (magnitude %.3g)", (long long)n, rep, got,
                         want, mag);
        }
        free(w), free(a), free(wf), free(af);
    }
    /* integer data: unit scales, the exact integer result */
    uint8_t w[18 * 4], a[34 * 4];
    for (int rep = 0; rep < 32; rep++) {
        long long want = 0;
        for (int b = 0; b < 4; b++) {
            wr_f16(w + 18 * b, 1.0f);
            wr_f16(a + 34 * b, 1.0f);
            for (int j = 0; j < 16; j++) w[18 * b + 2 + j] = (uint8_t)(sf_test_rand_u64(&rng) >> 56);
            for (int j = 0; j < 32; j++) a[34 * b + 2 + j] = (uint8_t)(int8_t)((int)(sf_test_rand_u64(&rng) % 255) - 127);
            for (int j = 0; j < 32; j++) {
                const uint8_t byte = w[18 * b + 2 + j % 16];
                want += (long long)k_levels[j < 16 ? byte & 15 : byte >> 4] * (int8_t)a[34 * b + 2 + j];
            }
        }
        assert_true(t->vec_dot(128, w, a) == (float)want);
        assert_true(sf_type_fast(SF_TYPE_IQ4_NL)->vec_dot(128, w, a) == (float)want);
    }
}

/* --------------------------------------------------------- AVX2 kernels */

/* ggml's x86 AVX2 order, in scalar C: per block 8 lanes of 4 products each,
 * d = f16(d_a) * f16(d_w), lane = fma(d, lane partial, lane) in accumulator
 * 1 (even blocks) or 2 (odd); hsum_float_8(acc1 + acc2) = ((l0 + l4) + (l2 +
 * l6)) + ((l1 + l5) + (l3 + l7)); an odd last block fused: fma(d, sumi, sum). */
static float ggml_avx2_order(int64_t n, const uint8_t *w, const uint8_t *a) {
    const int64_t nb = n / 32;
    float acc[2][8] = {{0}};
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2)
        for (int par = 0; par < 2; par++) {
            const uint8_t *x = w + (ib + par) * 18, *y = a + (ib + par) * 34;
            const float d = rd_f16(y) * rd_f16(x);
            for (int lane = 0; lane < 8; lane++) {
                int s = 0;
                for (int k = 4 * lane; k < 4 * lane + 4; k++) {
                    const uint8_t byte = x[2 + k % 16];
                    s += k_levels[k < 16 ? byte & 15 : byte >> 4] * (int8_t)y[2 + k];
                }
                acc[par][lane] = fmaf(d, (float)s, acc[par][lane]);
            }
        }
    float v[8];
    for (int k = 0; k < 8; k++) v[k] = acc[0][k] + acc[1][k];
    float sum = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
    for (; ib < nb; ib++) {
        const uint8_t *x = w + ib * 18, *y = a + ib * 34;
        int s = 0;
        for (int k = 0; k < 32; k++) {
            const uint8_t byte = x[2 + k % 16];
            s += k_levels[k < 16 ? byte & 15 : byte >> 4] * (int8_t)y[2 + k];
        }
        sum = fmaf(rd_f16(y) * rd_f16(x), (float)s, sum);
    }
    return sum;
}

static bool force_avx2(void) { return sf_cpu_isa_force("avx2"); }

static void test_avx2_vec_dot(void **state) {
    (void)state;
    const char *before = sf_cpu_isa();
    if (!force_avx2()) skip();
    const sf_type_traits *ref = sf_type_ref(SF_TYPE_IQ4_NL), *fast = sf_type_fast(SF_TYPE_IQ4_NL);
    assert_ptr_not_equal(ref->vec_dot, fast->vec_dot);
    assert_true(fast->ggml_order);
    static const int64_t lengths[] = {32, 64, 96, 160, 576, 1504, 2048, 4096};
    uint64_t rng = 5150;
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        const int64_t n = lengths[l];
        const size_t wb = sf_type_row_bytes(SF_TYPE_IQ4_NL, n), ab = sf_type_row_bytes(SF_TYPE_Q8_0, n);
        uint8_t *w = xmalloc(wb + 3), *a = xmalloc(ab + 3);
        float *wf = xmalloc(n * sizeof *wf), *af = xmalloc(n * sizeof *af);
        for (int rep = 0; rep < 16; rep++) {
            /* rows at odd addresses ending at their buffer's end (ASan sees overreads) */
            uint8_t *wo = w + 3, *ao = a + 3;
            if (rep % 4 == 0) {
                gen_bell(wf, n, &rng, rep % 8 ? 0.05f : 30.0f);
                ref->quantize(wf, wo, n);
            } else {
                random_row(wo, n, &rng, rep % 4 == 3 ? 60.0f : 0.5f);
            }
            act_row(ao, n, &rng, rep % 4);
            const float got = fast->vec_dot(n, wo, ao), want_ggml = ggml_avx2_order(n, wo, ao);
            const float want_ref = ref->vec_dot(n, wo, ao);
            if (memcmp(&got, &want_ggml, sizeof got) != 0)
                fail_msg("n=%lld rep %d: AVX2 vec_dot %.9g, ggml's AVX2 order %.9g", (long long)n, rep, got, want_ggml);
            if (n == 32 && memcmp(&got, &want_ref, sizeof got) != 0)
                fail_msg("one block rep %d: AVX2 %.9g, reference %.9g", rep, got, want_ref);
            ref->dequantize(wo, wf, n);
            sf_type_ref(SF_TYPE_Q8_0)->dequantize(ao, af, n);
            double mag = 0;
            for (int64_t i = 0; i < n; i++) mag += fabs((double)wf[i] * af[i]);
            if (!(fabs((double)got - want_ref) <= 1e-6 * mag + 1e-30))
                fail_msg("n=%lld rep %d: AVX2 %.9g, reference %.9g (magnitude %.3g)", (long long)n, rep, got, want_ref,
                         mag);
        }
        free(w), free(a), free(wf), free(af);
    }
    assert_true(sf_cpu_isa_force(before));
}

static void test_avx2_2x4(void **state) {
    (void)state;
    const char *before = sf_cpu_isa();
    if (!force_avx2()) skip();
    const sf_type_traits *fast = sf_type_fast(SF_TYPE_IQ4_NL);
    assert_non_null(fast->vec_dot_2x4);
    assert_true(fast->vec_dot_2x4_exact);
    static const int64_t lengths[] = {32, 64, 96, 576, 1504, 2048};
    uint64_t rng = 31337;
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        const int64_t n = lengths[l];
        const size_t wb = sf_type_row_bytes(SF_TYPE_IQ4_NL, n), ab = sf_type_row_bytes(SF_TYPE_Q8_0, n);
        const size_t ws = wb + 3, as = ab + 5; /* odd strides: nothing aligned */
        uint8_t *w = xmalloc(2 * ws + 1), *a = xmalloc(4 * as + 1);
        float *x = xmalloc(n * sizeof *x);
        for (int rep = 0; rep < 6; rep++) {
            for (int r = 0; r < 2; r++) {
                if (rep % 2) {
                    random_row(w + 1 + r * ws, n, &rng, 2.0f);
                } else {
                    gen_bell(x, n, &rng, 0.1f);
                    sf_type_ref(SF_TYPE_IQ4_NL)->quantize(x, w + 1 + r * ws, n);
                }
            }
            for (int t = 0; t < 4; t++) act_row(a + 1 + t * as, n, &rng, (rep + t) % 4);
            float out[8];
            fast->vec_dot_2x4(n, w + 1, ws, a + 1, as, out);
            for (int r = 0; r < 2; r++)
                for (int t = 0; t < 4; t++) {
                    const float want = fast->vec_dot(n, w + 1 + r * ws, a + 1 + t * as);
                    if (memcmp(&want, &out[4 * r + t], sizeof want) != 0)
                        fail_msg("n=%lld rep %d row %d token %d: 2x4 %.9g, vec_dot %.9g", (long long)n, rep, r, t,
                                 out[4 * r + t], want);
                }
        }
        free(w), free(a), free(x);
    }
    assert_true(sf_cpu_isa_force(before));
}

/* ----------------------------------------------------- a whole model */

static char g_dir[64];

static int setup_dir(void **state) {
    (void)state;
    return sf_test_mkdtemp(g_dir, sizeof g_dir, "iq4nl");
}

static int teardown_dir(void **state) {
    (void)state;
    sf_test_rm_tree(g_dir);
    return 0;
}

/* src with every 2-D tensor quantized to IQ4_NL (to_iq4 true), or replaced
 * by the F32 values of that IQ4_NL quantization (false); everything else
 * copied. */
static void convert(const char *src, const char *dst, bool to_iq4) {
    sf_gguf *g;
    if (sf_gguf_open(src, &g) != SF_OK) fail_msg("%s", sf_last_error());
    sf_gguf_writer *wr = sf_gguf_writer_new();
    assert_non_null(wr);
    for (int64_t i = 0; i < sf_gguf_n_kv(g); i++) assert_int_equal(sf_gguf_writer_copy_kv(wr, g, i), SF_OK);
    const uint32_t ftype = to_iq4 ? 25 : 0; /* llama_ftype: MOSTLY_IQ4_NL, ALL_F32 */
    assert_int_equal(sf_gguf_writer_set_scalar(wr, "general.file_type", SF_GGUF_U32, &ftype), SF_OK);
    const int64_t nt = sf_gguf_n_tensors(g);
    void **bufs = calloc((size_t)nt, sizeof *bufs);
    assert_non_null(bufs);
    for (int64_t i = 0; i < nt; i++) {
        const sf_gguf_tensor *t = sf_gguf_tensor_at(g, i);
        if (t->n_dims != 2) {
            assert_int_equal(sf_gguf_writer_add_tensor(wr, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes), SF_OK);
            continue;
        }
        const int64_t n = t->ne[0] * t->ne[1];
        float *f = xmalloc((size_t)n * sizeof *f);
        sf_type_ref(t->type)->dequantize(t->data, f, n);
        const size_t qbytes = sf_type_row_bytes(SF_TYPE_IQ4_NL, t->ne[0]) * (size_t)t->ne[1];
        uint8_t *q = xmalloc(qbytes);
        sf_type_ref(SF_TYPE_IQ4_NL)->quantize(f, q, n);
        if (to_iq4) {
            free(f);
            bufs[i] = q;
            assert_int_equal(sf_gguf_writer_add_tensor(wr, t->name, SF_TYPE_IQ4_NL, 2, t->ne, q, qbytes), SF_OK);
        } else {
            sf_type_ref(SF_TYPE_IQ4_NL)->dequantize(q, f, n);
            free(q);
            bufs[i] = f;
            assert_int_equal(sf_gguf_writer_add_tensor(wr, t->name, SF_TYPE_F32, 2, t->ne, f, (size_t)n * 4), SF_OK);
        }
    }
    if (sf_gguf_writer_finish(wr, dst) != SF_OK) fail_msg("%s", sf_last_error());
    sf_gguf_writer_free(wr);
    for (int64_t i = 0; i < nt; i++) free(bufs[i]);
    free(bufs);
    sf_gguf_close(g);
}

enum { N_TOK = 9, N_VOCAB = 1000 };

/* Logits of N_TOK prompt tokens (one batch, so the 2x4 tiles run), then one
 * decoded token: [N_TOK + 1][N_VOCAB]. */
static void run_model(const char *path, float *logits, const char *want_ftype) {
    sf_model *m = sf_model_load(path);
    if (!m) fail_msg("%s: %s", path, sf_last_error());
    sf_model_info info;
    sf_model_get_info(m, &info);
    assert_int_equal(info.n_vocab, N_VOCAB);
    if (want_ftype) assert_string_equal(info.ftype, want_ftype);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 2;
    sf_context *c = sf_context_new(m, &cp);
    if (!c) fail_msg("%s", sf_last_error());
    const int32_t toks[N_TOK] = {1, 300, 301, 302, 303, 450, 7, 999, 260};
    assert_int_equal(sf_decode(c, toks, N_TOK, true), SF_OK);
    for (int t = 0; t < N_TOK; t++) memcpy(logits + t * N_VOCAB, sf_get_logits(c, t), N_VOCAB * sizeof(float));
    const int32_t next = 512;
    assert_int_equal(sf_decode(c, &next, 1, false), SF_OK);
    memcpy(logits + N_TOK * N_VOCAB, sf_get_logits(c, -1), N_VOCAB * sizeof(float));
    for (int i = 0; i < (N_TOK + 1) * N_VOCAB; i++)
        if (!isfinite(logits[i])) fail_msg("%s: logit %d is %g", path, i, logits[i]);
    sf_context_free(c);
    sf_model_free(m);
}

static void test_tiny_model(void **state) {
    (void)state;
    char src[128], iq4[128], f32[128];
    snprintf(src, sizeof src, "%s/tiny-f32.gguf", g_dir);
    snprintf(iq4, sizeof iq4, "%s/tiny-iq4_nl.gguf", g_dir);
    snprintf(f32, sizeof f32, "%s/tiny-iq4_nl-dequantized.gguf", g_dir);
    sf_synth_params p = sf_synth_default_params();
    p.shape = "tiny";
    p.type = "f32";
    p.seed = 11;
    if (sf_synth_write(src, &p, NULL) != SF_OK) fail_msg("%s", sf_last_error());
    convert(src, iq4, true);
    convert(src, f32, false);

    {
        sf_gguf *g;
        assert_int_equal(sf_gguf_open(iq4, &g), SF_OK);
        const sf_gguf_tensor *t = sf_gguf_find_tensor(g, "blk.0.ffn_down.weight");
        assert_non_null(t);
        assert_int_equal(t->type, SF_TYPE_IQ4_NL);
        assert_int_equal(t->nbytes, sf_type_row_bytes(SF_TYPE_IQ4_NL, t->ne[0]) * (size_t)t->ne[1]);
        sf_gguf_close(g);
    }

    const size_t nl = (size_t)(N_TOK + 1) * N_VOCAB;
    float *l_iq4 = xmalloc(nl * sizeof(float)), *l_f32 = xmalloc(nl * sizeof(float)), *l_exact = xmalloc(nl * sizeof(float));
    const bool was_exact = sf_kernels_exact();
    assert_true(sf_kernels_force("fast"));
    run_model(iq4, l_iq4, "IQ4_NL");
    run_model(f32, l_f32, "F32");

    /* the same weights; only the Q8_0 rounding of the activations differs */
    double num = 0, den = 0;
    for (size_t i = 0; i < nl; i++) {
        num += ((double)l_iq4[i] - l_f32[i]) * ((double)l_iq4[i] - l_f32[i]);
        den += (double)l_f32[i] * l_f32[i];
    }
    print_message("IQ4_NL model vs its dequantized F32 copy: logits NMSE %.3g\n", num / den);
    assert_true(den > 0);
    assert_true(num / den < 1e-3);

    /* exact mode (scalar ggml-order references where they differ, 2x4 tiles
     * where they equal vec_dot): the same bits on AVX2 / AVX-512 CPUs */
    if (force_avx2()) {
        assert_true(sf_kernels_force("exact"));
        run_model(iq4, l_exact, NULL);
        assert_true(sf_kernels_force("fast"));
        size_t diff = 0;
        for (size_t i = 0; i < nl; i++) diff += memcmp(&l_exact[i], &l_iq4[i], sizeof(float)) != 0;
        if (diff) fail_msg("%zu logits differ between the fast and exact kernel modes", diff);
    }
    assert_true(sf_kernels_force(was_exact ? "exact" : "fast"));
    free(l_iq4), free(l_f32), free(l_exact);
    unlink(src), unlink(iq4), unlink(f32);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_by_hand),
        cmocka_unit_test(test_quantizer),
        cmocka_unit_test(test_ref_vec_dot),
        cmocka_unit_test(test_avx2_vec_dot),
        cmocka_unit_test(test_avx2_2x4),
        cmocka_unit_test_setup_teardown(test_tiny_model, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
