/* Elementwise ops: the AVX2 SwiGLU against the portable one, bit for bit,
 * over values that exercise the vector exp's range (underflow to 0, overflow
 * to inf) and a row whose tail takes libm's expf. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops.h"
#include "tensor/types.h"
#include "testutil.h"

static void test_swiglu_avx2(void **state) {
    (void)state;
    if (!sf_cpu_isa_force("avx2")) skip();
    enum { N = 1000 }; /* not a multiple of 16: a libm tail */
    float *g = malloc(N * sizeof *g), *u = malloc(N * sizeof *u); /* [N] */
    float *h1 = malloc(N * sizeof *h1), *h2 = malloc(N * sizeof *h2);
    uint64_t rng = 5;
    for (int i = 0; i < N; i++) {
        const float r = sf_test_rand_f32(&rng);
        g[i] = i % 7 == 0 ? 200.0f * r : (i % 11 == 0 ? 1e-30f * r : 12.0f * r);
        u[i] = sf_test_rand_f32(&rng);
    }
    g[5] = -150.0f; /* exp(150): overflows to inf, result -0 */
    g[6] = 100.0f;  /* exp(-100): subnormal */
    for (int i0 = 0; i0 < 40; i0 += 13) { /* slices start anywhere, as thread splits do */
        sf_glu(h1, g, u, i0, N, N, SF_ACT_SILU);
        assert_true(sf_cpu_isa_force("scalar"));
        sf_glu(h2, g, u, i0, N, N, SF_ACT_SILU);
        assert_true(sf_cpu_isa_force("avx2"));
        for (int i = i0; i < N; i++)
            if (memcmp(&h1[i], &h2[i], sizeof(float)) != 0) fail_msg("x=%.9g: avx2 %.9g, scalar %.9g", g[i], h1[i], h2[i]);
    }
    free(g);
    free(u);
    free(h1);
    free(h2);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_swiglu_avx2)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
