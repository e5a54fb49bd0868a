/* Shared helpers for the cmocka tests. */
#ifndef SF_TESTUTIL_H
#define SF_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

/* Path of a model under SF_MODEL_DIR (or <repo>/models); NULL if the file is
 * missing, in which case the test should call skip(). */
const char *sf_test_model_path(const char *file);
#define SF_TEST_SMOLLM "SmolLM2-135M-Instruct.Q4_1.gguf"
#define SF_TEST_GEMMA "gemma-3-270m-q4_k_m.gguf"

/* For main(): exits 77 (ctest: skipped) with a message if the model is missing. */
#define SF_TEST_REQUIRE_MODEL(file)                                                        \
    do {                                                                                   \
        if (!sf_test_model_path(file)) {                                                   \
            printf("SKIPPED: model %s not found (run scripts/fetch_models.sh)\n", file);   \
            return 77;                                                                     \
        }                                                                                  \
    } while (0)

/* <repo>/tests/fixtures/<name>, <shared>/data/<name>. */
const char *sf_test_fixture(const char *name);
const char *sf_test_shared(const char *name);

/* Reads a whole file; NULL on error. *len gets the size. free() the result. */
char *sf_test_read_file(const char *path, size_t *len);

/* A fresh directory /tmp/sf_test_<tag>_XXXXXX written into dir (cap >= 64);
 * 0 on success, -1 on failure (as cmocka setup functions return). */
int sf_test_mkdtemp(char *dir, size_t cap, const char *tag);
/* Removes path and everything below it (files and directories). */
void sf_test_rm_tree(const char *path);

/* A scratch directory for a test group: sf_test_scratch_setup (a cmocka
 * group setup) creates a fresh /tmp/sf_test_scratch_XXXXXX, the teardown
 * removes it with everything in it. */
int sf_test_scratch_setup(void **state);
int sf_test_scratch_teardown(void **state);
const char *sf_test_scratch(void);                  /* its path */
const char *sf_test_scratch_path(const char *name); /* scratch/name; 4 rotating buffers */
int sf_test_scratch_entries(void);                  /* entries in it, or -1 */
/* A cmocka test run in a fresh scratch directory. */
#define sf_test_in_scratch(f) cmocka_unit_test_setup_teardown(f, sf_test_scratch_setup, sf_test_scratch_teardown)

/* Runs `SF_BINARY subcommand args...` (args NULL-terminated, stdout to
 * /dev/null); returns its exit status (-1 if it did not exit), its stderr
 * in err (truncated to cap). */
int sf_test_run_cli(const char *subcommand, const char *const *args, char *err, size_t cap);

/* Deterministic pseudo-random numbers for tests. */
uint64_t sf_test_rand_u64(uint64_t *state);
float sf_test_rand_f32(uint64_t *state); /* uniform in [-1, 1) */

/* Random quantized data for kernel tests (malloc'd; the caller frees).
 * Weights: n_rows rows of `type` from floats 0.02 (1 + r % 5) (u + b_r),
 * b_r = bias on odd rows, 0 on even ones (a bias moves Q4_1 / Q5_1 mins
 * off 0). Activations: T rows of `act_type` from (t % 3 == 2 ? 40 : 1)
 * (u + b_t), b_t likewise; u uniform in [-1, 1). */
uint8_t *sf_test_quant_rows(int type, int64_t n, int n_rows, float bias, uint64_t *rng);
uint8_t *sf_test_quant_acts(int act_type, int64_t n, int T, float bias, uint64_t *rng);
/* sum |w_i * a_i| of a weight row with an activation row (in the weight
 * type's vec_dot_type): the scale of the float rounding of their dot */
double sf_test_abs_dot(int type, int64_t n, const uint8_t *w, const uint8_t *a);

#endif
