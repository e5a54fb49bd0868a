/* sparsefuse analyze on the default model with a few calibration tokens:
 * shapes and NaN pattern of the result, value ranges, and — the part that can
 * be wrong in subtle ways — that the passes which start at layer i from the
 * cached residual stream agree with full passes that remove the same block
 * from the start. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/context.h"
#include "model/model.h"
#include "sparsefuse_fusion.h"
#include "testutil.h"

static const char *k_text =
    "The quick brown fox jumps over the lazy dog. In the beginning the universe was created, which made "
    "a lot of people very angry and has been widely regarded as a bad move. It was the best of times.";

typedef struct {
    sf_model *m;
    int32_t *toks;
    int n_tok;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->m = sf_model_load(sf_test_model_path(SF_TEST_SMOLLM));
    if (!f->m) return -1;
    f->toks = malloc(sizeof(int32_t) * 256);
    f->n_tok = sf_tokenize(f->m, k_text, strlen(k_text), f->toks, 256, true, false);
    *state = f;
    return f->n_tok > 16 ? 0 : -1;
}

static int teardown(void **state) {
    fixture *f = *state;
    free(f->toks);
    sf_model_free(f->m);
    free(f);
    return 0;
}

/* mean KL(dense || block l removed) by full passes from the embedding */
static double full_pass_kl(sf_model *m, const int32_t *toks, int T, int layer) {
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = cp.n_batch = T;
    cp.n_threads = 1;
    sf_context *c = sf_context_new(m, &cp);
    const int V = m->n_vocab;
    float *dense = malloc(sizeof(float) * (size_t)T * V);
    sf_run_plan ctl = {};
    assert_int_equal(sf_forward(c, toks, T, 0, &ctl), SF_OK);
    memcpy(dense, c->logits, sizeof(float) * (size_t)T * V);
    bool *drop = calloc((size_t)m->n_layer, sizeof(bool));
    drop[layer] = true;
    ctl.drop_attn = ctl.drop_ffn = drop;
    assert_int_equal(sf_forward(c, toks, T, 0, &ctl), SF_OK);
    double kl = 0;
    for (int t = 0; t < T; t++) {
        const float *p = dense + (size_t)t * V, *q = c->logits + (size_t)t * V;
        double mp = p[0], mq = q[0];
        for (int v = 1; v < V; v++) {
            mp = p[v] > mp ? p[v] : mp;
            mq = q[v] > mq ? q[v] : mq;
        }
        double zp = 0, zq = 0;
        for (int v = 0; v < V; v++) {
            zp += exp(p[v] - mp);
            zq += exp(q[v] - mq);
        }
        for (int v = 0; v < V; v++) {
            const double lp = p[v] - mp - log(zp), lq = q[v] - mq - log(zq);
            kl += exp(lp) * (lp - lq);
        }
    }
    free(dense);
    free(drop);
    sf_context_free(c);
    return kl / T;
}

/* Analysis of 24 tokens in chunks of 12 on model m (L layers). */
static void check_small_analysis(sf_model *m, const int32_t *toks, int n_tok, int want_layers) {
    sf_analyze_params p = sf_analyze_default_params();
    p.n_threads = 1; /* the test machine may be busy: no spinning pool */
    p.n_ctx = 12;
    p.n_tokens = 24; /* two chunks */
    sf_analysis a;
    assert_int_equal(sf_analyze(m, toks, n_tok, &p, &a), SF_OK);
    const int L = a.n_layer;
    assert_int_equal(L, want_layers);
    assert_int_equal(a.n_tokens, 24);
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < L; j++) {
            const float b = a.dep_block[i * L + j], g = a.dep_ffn[i * L + j];
            if (j <= i) {
                assert_true(isnan(b) && isnan(g));
            } else {
                assert_true(b >= 0.0f && b <= 2.0f);
                assert_true(g >= 0.0f && g <= 2.0f);
            }
        }
        assert_true(a.block_cos[i] >= 0 && a.block_cos[i] <= 2);
        assert_true(a.attn_cos[i] >= 0 && a.attn_cos[i] <= 2);
        assert_true(a.block_kl[i] >= -1e-6 && a.attn_kl[i] >= -1e-6);
        assert_true(a.h_ratio[i] > 0 && a.ffn_h_ratio[i] > 0);
    }
    /* removing layer 0 matters more than removing a middle one (as in most LLMs) */
    assert_true(a.block_kl[0] > a.block_kl[L / 2]);
    /* the passes that start at layer i from the cached residual stream agree
     * with full passes that remove the same block from the embedding on */
    for (int l = 3; l < L; l += 13) {
        double want = 0;
        for (int ch = 0; ch < 2; ch++) {
            int32_t chunk[12];
            memcpy(chunk, toks + 12 * ch, sizeof chunk);
            if (sf_model_add_bos(m) && sf_token_bos(m) >= 0) chunk[0] = sf_token_bos(m); /* as analyze does */
            want += full_pass_kl(m, chunk, 12, l) / 2;
        }
        print_message("layer %d: KL %.10g (full passes %.10g)\n", l, a.block_kl[l], want);
        assert_true(fabs(a.block_kl[l] - want) <= 1e-6 * (want > 1 ? want : 1)); /* 2e-7 reached: float storage */
    }
    sf_analysis_free(&a);
}

static void test_analyze_small(void **state) {
    fixture *f = *state;
    check_small_analysis(f->m, f->toks, f->n_tok, 30);
}

/* Gemma 3: post-norms applied in place, so the passes that start at layer i
 * agree with full passes there too. */
static void test_analyze_gemma(void **state) {
    (void)state;
    const char *path = sf_test_model_path(SF_TEST_GEMMA);
    if (!path) skip();
    sf_model *m = sf_model_load(path);
    assert_non_null(m);
    int32_t toks[256];
    const int n = sf_tokenize(m, k_text, strlen(k_text), toks, 256, true, false);
    assert_true(n >= 24);
    check_small_analysis(m, toks, n, 18);
    sf_model_free(m);
}

static void test_analyze_errors(void **state) {
    fixture *f = *state;
    sf_analyze_params p = sf_analyze_default_params();
    sf_analysis a;
    p.n_tokens = 1;
    assert_int_equal(sf_analyze(f->m, f->toks, f->n_tok, &p, &a), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "too few"));
    p = sf_analyze_default_params();
    assert_int_equal(sf_analyze(f->m, f->toks, 1, &p, &a), SF_ERR_ARG);
    assert_int_equal(sf_analyze(NULL, f->toks, 1, &p, &a), SF_ERR_ARG);
}

int main(void) {
    SF_TEST_REQUIRE_MODEL(SF_TEST_SMOLLM);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_analyze_small), cmocka_unit_test(test_analyze_gemma),
                                       cmocka_unit_test(test_analyze_errors)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
