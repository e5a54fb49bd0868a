/* The K-quant prompt path (tensor/kq_unpack.h, kq_gemm_impl.h) and the
 * ggml-order kernels of the fast mode, held to their references:
 *  - unpacking: the dot over an unpacked row equals the scalar vec_dot
 *    within float rounding, for Q2_K..Q6_K;
 *  - the 2x4 kernel in each of ggml's orders equals the scalar functions of
 *    tensor/ggml_batch.c bit for bit (Q2_K, which ggml has no tiled path
 *    for, against the reference within rounding);
 *  - the AVX2 Q4_K repacked-gemv dot equals its scalar reference bit for bit;
 *  - sf_matmul_rows in the fast mode equals the exact mode bit for bit, for
 *    every K-quant and legacy type whose fast kernels keep ggml's order
 *    (within float rounding for the others: Q4_0 on AVX-512 CPUs), over
 *    batch sizes 1..13, row counts that are and are not multiples of 8, and
 *    llama.cpp's reduced last batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tensor/blocks.h"
#include "tensor/ggml_batch.h"
#include "tensor/kq_unpack.h"
#include "tensor/matmul.h"
#include "tensor/types.h"

static const int k_kq_types[] = {SF_TYPE_Q2_K, SF_TYPE_Q3_K, SF_TYPE_Q4_K, SF_TYPE_Q5_K, SF_TYPE_Q6_K};
#define N_KQ (sizeof k_kq_types / sizeof k_kq_types[0])

static void test_unpack(void **state) {
    (void)state;
    uint64_t rng = 11;
    const int64_t n = 4 * SF_QK_K;
    for (size_t k = 0; k < N_KQ; k++) {
        const int type = k_kq_types[k];
        uint8_t *w = sf_test_quant_rows(type, n, 3, 0.0f, &rng), *a = sf_test_quant_acts(SF_TYPE_Q8_K, n, 1, 0.0f, &rng);
        sf_kq_unpacked u[4];
        const size_t rb = sf_type_row_bytes((sf_type)type, n);
        for (int r = 0; r < 3; r++) {
            assert_int_equal(sf_kq_unpack_row(type, w + r * rb, n, u), 0);
            const float got = sf_kq_unpacked_dot_ref(n, u, a), want = sf_type_ref(type)->vec_dot(n, w + r * rb, a);
            if (!(fabs((double)got - want) <= 1e-5 * sf_test_abs_dot(type, n, w + r * rb, a)))
                fail_msg("%s row %d: unpacked dot %.9g, vec_dot %.9g", sf_type_name(type), r, got, want);
        }
        free(w);
        free(a);
    }
    assert_int_equal(sf_kq_unpack_row(SF_TYPE_Q4_0, NULL, 0, NULL), -1);
}

/* the scalar function of ggml_batch.c for an order, NULL if ggml has none */
static sf_vec_dot_fn ggml_fn(int type, int order) {
    switch (order) {
    case SF_KQ_REPACK_GEMM: return type == SF_TYPE_Q4_K ? sf_ggml_dot_q4_K_repacked_gemm : NULL;
    case SF_KQ_REPACK_GEMV: return type == SF_TYPE_Q4_K ? sf_ggml_dot_q4_K_repacked_gemv : NULL;
    case SF_KQ_TILED:
        return type == SF_TYPE_Q4_K ? sf_ggml_dot_kquant_tiled_q4_K : type == SF_TYPE_Q5_K ? sf_ggml_dot_kquant_tiled_q5_K : NULL;
    case SF_KQ_TILED_OFFSET:
        return type == SF_TYPE_Q3_K ? sf_ggml_dot_kquant_tiled_q3_K : type == SF_TYPE_Q6_K ? sf_ggml_dot_kquant_tiled_q6_K : NULL;
    default: return NULL;
    }
}

static void test_kernel_orders(void **state) {
    (void)state;
    if (!sf_type_fast(SF_TYPE_Q4_K)->kq_gemm_2x4) skip();
    uint64_t rng = 5;
    int exact_checks = 0;
    for (size_t k = 0; k < N_KQ; k++) {
        const int type = k_kq_types[k];
        const sf_type_traits *tr = sf_type_fast(type);
        for (int64_t nsb = 1; nsb <= 9; nsb += 4) {
            const int64_t n = nsb * SF_QK_K;
            const size_t rb = sf_type_row_bytes((sf_type)type, n), ab = sf_type_row_bytes(SF_TYPE_Q8_K, n);
            uint8_t *w = sf_test_quant_rows(type, n, 2, 0.0f, &rng), *a = sf_test_quant_acts(SF_TYPE_Q8_K, n, 4, 0.0f, &rng);
            sf_kq_unpacked *u = malloc(sizeof *u * (size_t)(2 * nsb)); /* [2][nsb] */
            assert_non_null(u);
            for (int r = 0; r < 2; r++) sf_kq_unpack_row(type, w + r * rb, n, u + r * nsb);
            const uint8_t *ap[4] = {a, a + ab, a + 2 * ab, a + 3 * ab};
            for (int order = SF_KQ_TILED; order <= SF_KQ_REPACK_GEMM; order++) {
                sf_vec_dot_fn f = ggml_fn(type, order);
                if (!f && !(type == SF_TYPE_Q2_K && order == SF_KQ_TILED)) continue;
                float out[8];
                tr->kq_gemm_2x4(nsb, u, u + nsb, ap, order, out);
                for (int r = 0; r < 2; r++)
                    for (int t = 0; t < 4; t++) {
                        const float got = out[4 * r + t];
                        if (f) {
                            const float want = f(n, w + r * rb, ap[t]);
                            if (memcmp(&got, &want, sizeof got) != 0)
                                fail_msg("%s order %d nsb %lld row %d token %d: %.9g, ggml order %.9g", sf_type_name(type),
                                         order, (long long)nsb, r, t, got, want);
                            exact_checks++;
                        } else {
                            const float want = sf_type_ref(type)->vec_dot(n, w + r * rb, ap[t]);
                            if (!(fabs((double)got - want) <= 1e-5 * sf_test_abs_dot(type, n, w + r * rb, ap[t])))
                                fail_msg("%s nsb %lld: %.9g vs reference %.9g", sf_type_name(type), (long long)nsb, got, want);
                        }
                    }
            }
            if (type == SF_TYPE_Q4_K && tr->dot_repacked_gemv)
                for (int r = 0; r < 2; r++)
                    for (int t = 0; t < 4; t++) {
                        const float got = tr->dot_repacked_gemv(n, w + r * rb, ap[t]);
                        const float want = sf_ggml_dot_q4_K_repacked_gemv(n, w + r * rb, ap[t]);
                        assert_memory_equal(&got, &want, sizeof got);
                    }
            free(u);
            free(w);
            free(a);
        }
    }
    assert_true(exact_checks > 0);
}

/* y[T][n_out] of one matmul in the current mode */
static float *run_matmul(const sf_matrix *m, const uint8_t *a, size_t a_stride, int T) {
    float *y = calloc((size_t)T * (size_t)m->n_out, sizeof *y);
    assert_non_null(y);
    /* two slices, as two threads would split the rows */
    const int64_t mid = m->n_out / 16 * 8;
    sf_matmul_rows(m, a, a_stride, T, y, m->n_out, false, 0, mid);
    sf_matmul_rows(m, a, a_stride, T, y, m->n_out, false, mid, m->n_out);
    return y;
}

static void test_fast_equals_exact(void **state) {
    (void)state;
    static const int types[] = {SF_TYPE_Q2_K, SF_TYPE_Q3_K, SF_TYPE_Q4_K, SF_TYPE_Q5_K, SF_TYPE_Q6_K,
                                SF_TYPE_Q4_0, SF_TYPE_Q4_1, SF_TYPE_Q5_0, SF_TYPE_Q8_0};
    static const int64_t rows[] = {24, 20};
    const char *mode = sf_kernels_exact() ? "exact" : "fast";
    uint64_t rng = 77;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const int type = types[k];
        const int vdt = sf_type_ref(type)->vec_dot_type;
        const int64_t n = 2 * SF_QK_K;
        for (size_t ri = 0; ri < 2; ri++) {
            uint8_t *w = sf_test_quant_rows(type, n, (int)rows[ri], 0.0f, &rng);
            for (int T = 1; T <= 13; T++) {
                uint8_t *a = sf_test_quant_acts(vdt, n, T, 0.0f, &rng);
                const size_t as = sf_type_row_bytes((sf_type)vdt, n);
                for (int reduced = 0; reduced <= (T > 2); reduced++) {
                    /* reduced: llama.cpp runs only the last T - 2 rows (the last layer's FFN) */
                    sf_matrix m = {w, (sf_type)type, n, rows[ri], reduced ? T - 2 : 0, reduced ? 2 : 0};
                    assert_true(sf_kernels_force("fast"));
                    const bool ordered = sf_type_fast(type)->ggml_order;
                    float *yf = run_matmul(&m, a, as, T);
                    assert_true(sf_kernels_force("exact"));
                    float *ye = run_matmul(&m, a, as, T);
                    for (int t = reduced ? 2 : 0; t < T; t++)
                        for (int64_t r = 0; r < m.n_out; r++) {
                            const float f = yf[(size_t)t * m.n_out + r], e = ye[(size_t)t * m.n_out + r];
                            const size_t wb = sf_type_row_bytes((sf_type)type, n);
                            if (ordered ? memcmp(&f, &e, sizeof f) != 0
                                        : !(fabs((double)f - e) <= 1e-5 * sf_test_abs_dot(type, n, w + r * wb, a + t * as)))
                                fail_msg("%s rows %lld T %d reduced %d: token %d row %lld fast %.9g exact %.9g",
                                         sf_type_name(type), (long long)rows[ri], T, reduced, t, (long long)r, f, e);
                        }
                    free(yf);
                    free(ye);
                }
                free(a);
            }
            free(w);
        }
    }
    assert_true(sf_kernels_force(mode));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unpack),
        cmocka_unit_test(test_kernel_orders),
        cmocka_unit_test(test_fast_equals_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
