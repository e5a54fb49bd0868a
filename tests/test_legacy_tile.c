/* The fast-mode legacy prompt kernel (tensor/legacy_tile.h), held to its
 * references, for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and IQ4_NL:
 *  - the scalar tile kernel in the fast order equals the scalar vec_dot
 *    within float rounding (the same exact integers, another float order),
 *    and in ggml's order equals it bit for bit;
 *  - the SIMD unpacking equals the scalar one byte for byte, and the SIMD
 *    kernel equals the scalar kernel of its order (ggml's where the type
 *    keeps it) bit for bit, for 1..13 tokens and 1..16 rows;
 *  - sf_matmul_rows in the fast mode, which runs the kernel for batches of 4
 *    and more, equals the scalar vec_dot within rounding for every token. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/blocks.h"
#include "tensor/legacy_tile.h"
#include "tensor/matmul.h"
#include "tensor/types.h"
#include "testutil.h"

static const sf_type k_types[] = {SF_TYPE_Q4_0, SF_TYPE_Q4_1, SF_TYPE_Q5_0, SF_TYPE_Q5_1, SF_TYPE_Q8_0, SF_TYPE_IQ4_NL};
#define N_TYPES (sizeof k_types / sizeof k_types[0])

static void check_close(sf_type type, int64_t n, const uint8_t *w, const uint8_t *a, float got, const char *what, int r,
                        int t) {
    const float want = sf_type_ref(type)->vec_dot(n, w, a);
    if (!(fabs((double)got - want) <= 2e-6 * sf_test_abs_dot(type, n, w, a) + 1e-30))
        fail_msg("%s %s n %lld row %d token %d: %.9g, vec_dot %.9g", sf_type_name(type), what, (long long)n, r, t, got,
                 want);
}

static void test_reference_kernel(void **state) {
    (void)state;
    uint64_t rng = 3;
    for (size_t k = 0; k < N_TYPES; k++) {
        const sf_type type = k_types[k];
        for (int64_t nb = 1; nb <= 9; nb += 4) {
            const int64_t n = nb * SF_QK, T = 8;
            const size_t rb = sf_type_row_bytes(type, n), ab = sf_type_row_bytes(sf_type_ref(type)->vec_dot_type, n);
            uint8_t *w = sf_test_quant_rows(type, n, 16, 0.7f, &rng),
                    *a = sf_test_quant_acts(sf_type_ref(type)->vec_dot_type, n, (int)T, 0.5f, &rng);
            sf_lg_tile16 *tile = malloc(sizeof *tile * (size_t)nb); /* [nb] */
            void *b = malloc((size_t)(T * nb) * SF_LG_ACT_BYTES);
            assert_true(tile && b);
            sf_lg16_unpack_ref(type, w, rb, 16, n, tile);
            const sf_lg_acts acts = sf_lg16_acts_prepare(type, a, ab, (int)T, nb, b);
            float out[8][16];
            sf_lg16_gemm_ref(nb, tile, (int)T, &acts, out);
            for (int t = 0; t < T; t++)
                for (int r = 0; r < 16; r++)
                    check_close(type, n, w + r * rb, a + t * ab, out[t][r], "reference tile", r, t);
            /* ggml's x86 order: the AVX2 vec_dot (where the fast table
             * has it, in ggml's order) bit for bit, else within rounding */
            sf_lg16_gemm_ggml_ref(nb, tile, (int)T, &acts, out);
            for (int t = 0; t < T; t++)
                for (int r = 0; r < 16; r++) {
                    /* (IQ4_NL's x86 vec_dot pairs blocks: another order) */
                    if (!sf_type_fast(type)->ggml_order || type == SF_TYPE_IQ4_NL) {
                        check_close(type, n, w + r * rb, a + t * ab, out[t][r], "ggml-order tile", r, t);
                        continue;
                    }
                    const float want = sf_type_fast(type)->vec_dot(n, w + r * rb, a + t * ab);
                    if (memcmp(&want, &out[t][r], sizeof want) != 0)
                        fail_msg("%s nb %lld row %d token %d: ggml-order tile %.9g, "
                                 "vec_dot %.9g",
                                 sf_type_name(type), (long long)nb, r, t, out[t][r], want);
                }
            free(w);
            free(a);
            free(tile);
            free(b);
        }
    }
    assert_int_equal(sf_lg16_offset(SF_TYPE_Q4_K), -1);
}

static void test_simd_equals_reference(void **state) {
    (void)state;
    if (!sf_type_fast(SF_TYPE_Q4_0)->lg16_gemm) skip();
    uint64_t rng = 7;
    int checks = 0;
    for (size_t k = 0; k < N_TYPES; k++) {
        const sf_type type = k_types[k];
        const sf_type_traits *tr = sf_type_fast(type);
        assert_non_null(tr->lg16_unpack);
        for (int64_t nb = 1; nb <= 10; nb += 3) {
            const int64_t n = nb * SF_QK;
            const int T = 13;
            const size_t rb = sf_type_row_bytes(type, n), ab = sf_type_row_bytes(sf_type_ref(type)->vec_dot_type, n);
            uint8_t *w = sf_test_quant_rows(type, n, 16, 0.7f, &rng),
                    *a = sf_test_quant_acts(sf_type_ref(type)->vec_dot_type, n, T, 0.5f, &rng);
            sf_lg_tile16 *t_ref = aligned_alloc(64, sizeof(sf_lg_tile16) * (size_t)nb); /* [nb] */
            sf_lg_tile16 *t_simd = aligned_alloc(64, sizeof(sf_lg_tile16) * (size_t)nb);
            void *b = malloc((size_t)(T * nb) * SF_LG_ACT_BYTES);
            assert_true(t_ref && t_simd && b);
            const sf_lg_acts acts = sf_lg16_acts_prepare(type, a, ab, T, nb, b);
            const sf_lg16_gemm_fn ref = tr->lg16_gemm == NULL ? NULL
                                        : tr->ggml_order      ? sf_lg16_gemm_ggml_ref
                                                              : sf_lg16_gemm_ref;
            for (int rows = 1; rows <= 16; rows += 5) {
                sf_lg16_unpack_ref(type, w, rb, rows, n, t_ref);
                memset(t_simd, 0xAB, sizeof(sf_lg_tile16) * (size_t)nb);
                tr->lg16_unpack(w, rb, rows, n, t_simd);
                if (memcmp(t_ref, t_simd, sizeof(sf_lg_tile16) * (size_t)nb) != 0)
                    fail_msg("%s nb %lld rows %d: SIMD unpacking differs from the reference", sf_type_name(type),
                             (long long)nb, rows);
                for (int k0 = 0; ref && k0 < T; k0 += SF_LG_TOKENS)
                    for (int nt = 1; k0 + nt <= T && nt <= SF_LG_TOKENS; nt++) {
                        const sf_lg_acts v = sf_lg16_acts_from(acts, k0);
                        float want[SF_LG_TOKENS][16], got[SF_LG_TOKENS][16];
                        ref(nb, t_ref, nt, &v, want);
                        tr->lg16_gemm(nb, t_simd, nt, &v, got);
                        for (int t = 0; t < nt; t++)
                            for (int r = 0; r < 16; r++) {
                                if (memcmp(&got[t][r], &want[t][r], sizeof(float)) != 0)
                                    fail_msg("%s nb %lld rows %d tokens %d+%d: token %d row %d "
                                             "SIMD %.9g, reference %.9g",
                                             sf_type_name(type), (long long)nb, rows, k0, nt, t, r, got[t][r],
                                             want[t][r]);
                                checks++;
                            }
                    }
            }
            free(w);
            free(a);
            free(t_ref);
            free(t_simd);
            free(b);
        }
    }
    assert_true(checks > 10000);
}

static void test_matmul_rows(void **state) {
    (void)state;
    uint64_t rng = 9;
    for (size_t k = 0; k < N_TYPES; k++) {
        const sf_type type = k_types[k];
        const int64_t n = 18 * SF_QK;
        const int n_out = 37, T = 21;
        const size_t rb = sf_type_row_bytes(type, n), ab = sf_type_row_bytes(sf_type_ref(type)->vec_dot_type, n);
        uint8_t *w = sf_test_quant_rows(type, n, n_out, 0.7f, &rng),
                *a = sf_test_quant_acts(sf_type_ref(type)->vec_dot_type, n, T, 0.5f, &rng);
        float *y = malloc(sizeof(float) * (size_t)(T * n_out)); /* [T][n_out] */
        assert_non_null(y);
        for (int Tb = 1; Tb <= T; Tb += 4) {
            const sf_matrix m = {w, type, n, n_out, 0, 0};
            /* two row slices, as two threads would take them */
            sf_matmul_rows(&m, a, ab, Tb, y, n_out, false, 0, 19);
            sf_matmul_rows(&m, a, ab, Tb, y, n_out, false, 19, n_out);
            for (int t = 0; t < Tb; t++)
                for (int r = 0; r < n_out; r++)
                    check_close(type, n, w + r * rb, a + t * ab, y[t * n_out + r], "matmul", r, t);
        }
        free(w);
        free(a);
        free(y);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_kernel),
        cmocka_unit_test(test_simd_equals_reference),
        cmocka_unit_test(test_matmul_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
