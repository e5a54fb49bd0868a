/* The architectures no real file here has (qwen2: q/k/v biases; qwen3: q/k
 * norms and a head size that is not n_embd / n_head; phi3: fused qkv and
 * gate_up, LongRoPE factors), each on a tiny random-weight Q8_0 model that
 * `sparsefuse synth --shape tiny-ARCH` writes, against llama.cpp's own
 * logits, greedy continuations and perplexity on the same file
 * (tests/fixtures/{logits,greedy,perplexity}-tiny-ARCH.txt; tools/reference/README.md). The fixture
 * records the file's FNV-1a hash, so a change to synth that would make the
 * fixtures stale fails here first. No model file is needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity.h"
#include "sparsefuse.h"
#include "sparsefuse_eval.h"
#include "testutil.h"

static uint64_t fnv1a64(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Writes tiny-ARCH as Q8_0 and checks it is the file the fixtures came from. */
static const char *write_model(const char *arch) {
    static char path[128];
    char shape[32], fx[64];
    snprintf(shape, sizeof shape, "tiny-%s", arch);
    snprintf(path, sizeof path, "%s/%s.gguf", sf_test_scratch(), shape);
    sf_synth_params p = sf_synth_default_params();
    p.shape = shape;
    p.type = "q8_0";
    if (sf_synth_write(path, &p, NULL) != SF_OK) fail_msg("%s", sf_last_error());
    snprintf(fx, sizeof fx, "logits-%s.txt", shape);
    char *text = sf_test_read_file(sf_test_fixture(fx), NULL);
    if (!text) fail_msg("fixture %s is missing", fx);
    const char *h = strstr(text, "# model fnv1a64 ");
    assert_non_null(h);
    const uint64_t want = strtoull(h + 16, NULL, 16);
    free(text);
    size_t len;
    unsigned char *file = (unsigned char *)sf_test_read_file(path, &len);
    assert_non_null(file);
    const uint64_t got = fnv1a64(file, len);
    free(file);
    if (got != want)
        fail_msg("%s: synth wrote a different file (FNV-1a %016llx) than the fixtures were made from (%016llx); "
                 "regenerate them (tools/reference/README.md)", shape, (unsigned long long)got,
                 (unsigned long long)want);
    return path;
}

/* What the engine reaches on these files (fast kernels): the fixtures print
 * logits to 6-7 digits, so NMSE ~1e-12 is their precision. */
static const sf_parity_tol k_tol = {1e-10, 1.0, 0, 1e-6};

static void check_arch(const char *arch) {
    char name[32];
    snprintf(name, sizeof name, "tiny-%s", arch);
    char path[128];
    snprintf(path, sizeof path, "%s", write_model(arch));
    sf_parity_logits(path, name, &k_tol);
    sf_parity_greedy(path, name, &k_tol);
    sf_parity_perplexity(path, name, 4, &k_tol);
}

static void test_qwen2(void **state) { (void)state; check_arch("qwen2"); }
static void test_qwen3(void **state) { (void)state; check_arch("qwen3"); }
/* original context 256: logits and greedy (contexts of 256) use the short
 * LongRoPE factors, perplexity (512) the long ones */
static void test_phi3(void **state) { (void)state; check_arch("phi3"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen2),
        cmocka_unit_test(test_qwen3),
        cmocka_unit_test(test_phi3),
    };
    return cmocka_run_group_tests(tests, sf_test_scratch_setup, sf_test_scratch_teardown);
}
