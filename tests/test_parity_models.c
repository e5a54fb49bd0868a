/* Parity with llama.cpp on the real models, against fixtures produced by
 * llama.cpp itself (tools/reference/make_fixtures.py). The same tests run in
 * both kernel modes (ctest runs this binary twice, once with
 * SF_KERNELS=exact), each asserting its own tolerances:
 *  - fast (default): next-token logits at every position of every prompt
 *    with NMSE <= 1e-4, the same top token at >= 99% of positions, greedy
 *    64-token continuations identical for >= 4 of 5 prompts, perplexity of
 *    the first WikiText-2 chunks within 0.2%;
 *  - exact (ggml's float order): NMSE <= 1e-8 (the fixtures' printed
 *    precision is ~1e-10), every top token, 5/5 continuations, perplexity
 *    within 0.001%.
 * The test prints the measured numbers (docs/parity.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity.h"
#include "sparsefuse.h"
#include "testutil.h"

typedef struct {
    const char *model_file;
    const char *name; /* fixture suffix */
} model_case;

static const model_case g_models[] = {{SF_TEST_SMOLLM, "smollm2"}, {SF_TEST_GEMMA, "gemma3"}};

/* issue 8 allows the fast kernels NMSE 1e-4, 99% top, 4/5, 0.2%; they reach
 * the exact ones (they keep ggml's order), so that is what is asserted */
static const sf_parity_tol k_fast = {1e-8, 1.0, 0, 1e-5}, k_exact = {1e-8, 1.0, 0, 1e-5};
static sf_parity_tol g_tol;

/* A copy of the model's path: sf_test_fixture reuses sf_test_model_path's buffer. */
static const char *path_or_skip(const model_case *mc) {
    static char path[4096];
    const char *p = sf_test_model_path(mc->model_file);
    if (!p) skip();
    snprintf(path, sizeof path, "%s", p);
    return path;
}

static void test_logits_smollm2(void **s) { (void)s; sf_parity_logits(path_or_skip(&g_models[0]), "smollm2", &g_tol); }
static void test_logits_gemma3(void **s) { (void)s; sf_parity_logits(path_or_skip(&g_models[1]), "gemma3", &g_tol); }
static void test_greedy_smollm2(void **s) { (void)s; sf_parity_greedy(path_or_skip(&g_models[0]), "smollm2", &g_tol); }
static void test_greedy_gemma3(void **s) { (void)s; sf_parity_greedy(path_or_skip(&g_models[1]), "gemma3", &g_tol); }
static void test_ppl_smollm2(void **s) { (void)s; sf_parity_perplexity(path_or_skip(&g_models[0]), "smollm2", 4, &g_tol); }
static void test_ppl_gemma3(void **s) { (void)s; sf_parity_perplexity(path_or_skip(&g_models[1]), "gemma3", 2, &g_tol); }

int main(void) {
    SF_TEST_REQUIRE_MODEL(SF_TEST_SMOLLM);
    g_tol = strcmp(sf_kernels_mode(), "exact") == 0 ? k_exact : k_fast;
    printf("kernel mode: %s (SF_KERNELS)\n", sf_kernels_mode());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_smollm2), cmocka_unit_test(test_greedy_smollm2),
        cmocka_unit_test(test_ppl_smollm2),    cmocka_unit_test(test_logits_gemma3),
        cmocka_unit_test(test_greedy_gemma3),  cmocka_unit_test(test_ppl_gemma3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
