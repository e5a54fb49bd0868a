/* Sampler: greedy, top-k, determinism, distributions, penalties, filters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sparsefuse.h"
#include "testutil.h"

static sf_sampler_params plain_params(float temp) {
    sf_sampler_params p = sf_sampler_default_params();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 12345;
    return p;
}

static void random_logits(float *l, int n, uint64_t *st) {
    for (int i = 0; i < n; i++) l[i] = 4.0f * sf_test_rand_f32(st);
}

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (l[i] > l[b]) b = i;
    return b;
}

static void test_greedy_is_argmax(void **state) {
    (void)state;
    enum { V = 1000 };
    float l[V];
    uint64_t st = 1;
    sf_sampler_params p = plain_params(0.0f);
    sf_sampler *s = sf_sampler_new(&p, V);
    assert_non_null(s);
    for (int it = 0; it < 50; it++) {
        random_logits(l, V, &st);
        assert_int_equal(sf_sampler_sample(s, l), argmax(l, V));
    }
    p.temperature = -1.0f;
    sf_sampler_free(s);
    s = sf_sampler_new(&p, V);
    assert_non_null(s);
    random_logits(l, V, &st);
    assert_int_equal(sf_sampler_sample(s, l), argmax(l, V));
    sf_sampler_free(s);
}

static void test_top_k_one_is_argmax(void **state) {
    (void)state;
    enum { V = 5000 };
    float *l = malloc(V * sizeof *l);
    uint64_t st = 7;
    sf_sampler_params p = plain_params(1.5f);
    p.top_k = 1;
    sf_sampler *s = sf_sampler_new(&p, V);
    assert_non_null(s);
    for (int it = 0; it < 30; it++) {
        random_logits(l, V, &st);
        assert_int_equal(sf_sampler_sample(s, l), argmax(l, V));
    }
    sf_sampler_free(s);
    free(l);
}

/* top-p this small keeps only the best token: checks the full sort */
static void test_tiny_top_p_is_argmax(void **state) {
    (void)state;
    enum { V = 5000 };
    float *l = malloc(V * sizeof *l);
    uint64_t st = 21;
    sf_sampler_params p = plain_params(1.0f);
    p.top_p = 1e-6f;
    sf_sampler *s = sf_sampler_new(&p, V);
    assert_non_null(s);
    for (int it = 0; it < 20; it++) {
        random_logits(l, V, &st);
        assert_int_equal(sf_sampler_sample(s, l), argmax(l, V));
    }
    sf_sampler_free(s);
    free(l);
}

static void sample_seq(uint64_t seed, int32_t *out, int n) {
    enum { V = 300 };
    float l[V];
    uint64_t st = 99;
    sf_sampler_params p = sf_sampler_default_params();
    p.seed = seed;
    p.top_k = 50;
    p.temperature = 1.0f;
    sf_sampler *s = sf_sampler_new(&p, V);
    assert_non_null(s);
    for (int i = 0; i < n; i++) {
        random_logits(l, V, &st);
        out[i] = sf_sampler_sample(s, l);
        assert_true(out[i] >= 0 && out[i] < V);
    }
    sf_sampler_free(s);
}

static void test_same_seed_same_sequence(void **state) {
    (void)state;
    int32_t a[200], b[200], c[200];
    sample_seq(42, a, 200);
    sample_seq(42, b, 200);
    sample_seq(43, c, 200);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
}

/* Pearson chi-square of counts against expected probabilities. */
static double chi_square(const int *count, const double *prob, int k, int n) {
    double x = 0.0;
    for (int i = 0; i < k; i++) {
        double e = prob[i] * n;
        x += (count[i] - e) * (count[i] - e) / e;
    }
    return x;
}

static void test_distribution_temperature(void **state) {
    (void)state;
    enum { V = 4, N = 20000 };
    const double p0[V] = {0.4, 0.3, 0.2, 0.1};
    float l[V];
    for (int i = 0; i < V; i++) l[i] = (float)log(p0[i]) + 3.0f; /* shift must not matter */
    const float temps[] = {1.0f, 0.5f, 2.0f};
    for (int t = 0; t < 3; t++) {
        sf_sampler_params p = plain_params(temps[t]);
        sf_sampler *s = sf_sampler_new(&p, V);
        assert_non_null(s);
        int count[V] = {0};
        for (int i = 0; i < N; i++) count[sf_sampler_sample(s, l)]++;
        sf_sampler_free(s);
        /* expected: p^(1/T), normalized */
        double q[V], z = 0.0;
        for (int i = 0; i < V; i++) z += q[i] = pow(p0[i], 1.0 / temps[t]);
        for (int i = 0; i < V; i++) q[i] /= z;
        double x = chi_square(count, q, V, N);
        print_message("T=%.1f chi2=%.2f counts %d %d %d %d\n", (double)temps[t], x, count[0],
                      count[1], count[2], count[3]);
        assert_true(x < 25.0); /* 3 d.o.f.: p ~ 1e-5 */
    }
}

static void test_top_p_and_min_p(void **state) {
    (void)state;
    enum { V = 5, N = 20000 };
    const double p0[V] = {0.5, 0.25, 0.15, 0.07, 0.03};
    float l[V];
    for (int i = 0; i < V; i++) l[i] = (float)log(p0[i]);

    /* top_p 0.8: keeps 0.5+0.25+0.15 = 0.9 >= 0.8 -> the first three */
    sf_sampler_params p = plain_params(1.0f);
    p.top_p = 0.8f;
    sf_sampler *s = sf_sampler_new(&p, V);
    assert_non_null(s);
    int count[V] = {0};
    for (int i = 0; i < N; i++) count[sf_sampler_sample(s, l)]++;
    sf_sampler_free(s);
    assert_int_equal(count[3] + count[4], 0);
    double q[V] = {0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0, 0};
    assert_true(chi_square(count, q, 3, N) < 25.0);

    /* min_p 0.2: keeps p >= 0.1 -> the first three */
    p = plain_params(1.0f);
    p.min_p = 0.2f;
    s = sf_sampler_new(&p, V);
    assert_non_null(s);
    memset(count, 0, sizeof count);
    for (int i = 0; i < N; i++) count[sf_sampler_sample(s, l)]++;
    sf_sampler_free(s);
    assert_int_equal(count[3] + count[4], 0);
    assert_true(chi_square(count, q, 3, N) < 25.0);

    /* top_k 2 */
    p = plain_params(1.0f);
    p.top_k = 2;
    s = sf_sampler_new(&p, V);
    assert_non_null(s);
    memset(count, 0, sizeof count);
    for (int i = 0; i < N; i++) count[sf_sampler_sample(s, l)]++;
    sf_sampler_free(s);
    assert_int_equal(count[2] + count[3] + count[4], 0);
    double q2[2] = {2.0 / 3.0, 1.0 / 3.0};
    assert_true(chi_square(count, q2, 2, N) < 25.0);
}

static void test_repeat_penalty(void **state) {
    (void)state;
    enum { V = 4 };
    /* token 0 leads a positive logit, token 1 a negative one */
    float l[V] = {2.0f, -0.5f, 1.5f, -1.0f};
    sf_sampler_params p = plain_params(0.0f);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 3;
    sf_sampler *s = sf_sampler_new(&p, V);
    assert_non_null(s);
    /* 2.0/1.5 = 1.33 < 1.5 -> token 2 wins once token 0 is in history */
    sf_sampler_accept(s, 0);
    assert_int_equal(sf_sampler_sample(s, l), 2); /* history: 0 2 */
    /* now 0 -> 1.33, 2 -> 1.0: token 0 wins */
    assert_int_equal(sf_sampler_sample(s, l), 0); /* history: 0 2 0 */
    sf_sampler_free(s);

    /* negative logits are multiplied: -0.5 * 3 = -1.5 < -1.0 */
    float m[V] = {-3.0f, -0.5f, -2.0f, -1.0f};
    p.repeat_penalty = 3.0f;
    p.repeat_last_n = 2;
    s = sf_sampler_new(&p, V);
    assert_non_null(s);
    assert_int_equal(sf_sampler_sample(s, m), 1); /* history: 1 */
    assert_int_equal(sf_sampler_sample(s, m), 3); /* -1.5 vs -1.0; history: 1 3 */
    /* 1 and 3 penalized: -1.5, -3.0 vs -2.0, -3.0 -> 1 */
    assert_int_equal(sf_sampler_sample(s, m), 1); /* history: 3 1 */
    /* a token repeated in the window is penalized once */
    sf_sampler_accept(s, 2);
    sf_sampler_accept(s, 2); /* history: 2 2 */
    float r[V] = {-4.0f, -4.0f, 2.0f, 1.0f};
    assert_int_equal(sf_sampler_sample(s, r), 3); /* 2 -> 0.67 < 1.0 */
    sf_sampler_accept(s, 2);
    sf_sampler_accept(s, 2);
    float r2[V] = {-4.0f, -4.0f, 2.0f, 0.5f};
    assert_int_equal(sf_sampler_sample(s, r2), 2); /* 0.67 > 0.5: applied once */
    sf_sampler_free(s);
}

static void test_window_expires(void **state) {
    (void)state;
    enum { V = 3 };
    float l[V] = {1.0f, 0.9f, -5.0f};
    sf_sampler_params p = plain_params(0.0f);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 2;
    sf_sampler *s = sf_sampler_new(&p, V);
    sf_sampler_accept(s, 0);
    assert_int_equal(sf_sampler_sample(s, l), 1); /* 0 penalized; history 0 1 */
    sf_sampler_accept(s, 2);                       /* history 1 2: 0 expired */
    assert_int_equal(sf_sampler_sample(s, l), 0);
    sf_sampler_free(s);
}

static void test_bad_params_and_input(void **state) {
    (void)state;
    sf_sampler_params p = sf_sampler_default_params();
    assert_null(sf_sampler_new(&p, 0));
    assert_non_null(strstr(sf_last_error(), "n_vocab"));
    p.repeat_penalty = 0.0f;
    assert_null(sf_sampler_new(&p, 10));
    p = sf_sampler_default_params();
    p.repeat_last_n = -1;
    assert_null(sf_sampler_new(&p, 10));
    p = sf_sampler_default_params();
    p.top_p = 0.0f;
    assert_null(sf_sampler_new(&p, 10));
    p = sf_sampler_default_params();
    sf_sampler *s = sf_sampler_new(&p, 10);
    assert_non_null(s);
    assert_int_equal(sf_sampler_sample(s, NULL), -1);
    /* NaN logits never win; out-of-range accepted tokens are ignored */
    float l[10];
    for (int i = 0; i < 10; i++) l[i] = NAN;
    l[7] = 0.0f;
    sf_sampler_accept(s, -3);
    sf_sampler_accept(s, 1000);
    assert_int_equal(sf_sampler_sample(s, l), 7);
    /* all -inf: still returns a valid token */
    for (int i = 0; i < 10; i++) l[i] = -INFINITY;
    int32_t t = sf_sampler_sample(s, l);
    assert_true(t >= 0 && t < 10);
    sf_sampler_free(s);
    sf_sampler_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_is_argmax),
        cmocka_unit_test(test_top_k_one_is_argmax),
        cmocka_unit_test(test_tiny_top_p_is_argmax),
        cmocka_unit_test(test_same_seed_same_sequence),
        cmocka_unit_test(test_distribution_temperature),
        cmocka_unit_test(test_top_p_and_min_p),
        cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_window_expires),
        cmocka_unit_test(test_bad_params_and_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
