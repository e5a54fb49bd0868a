/* Automatic FFN Fusion plans (auto_plan.c) on made-up analyses, the
 * analysis.json round trip, and healing on the default model: the fitted
 * correction lowers the fused group's error on its calibration tokens and
 * the healed file loads and runs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fusion/fuse.h"
#include "fusion/heal.h"
#include "model/context.h"
#include "model/model.h"
#include "sparsefuse_fusion.h"
#include "testutil.h"

static sf_analysis make(int n) {
    sf_analysis a = {.n_layer = n, .n_tokens = 10, .model = "made-up"};
    float **v[] = {&a.block_cos, &a.attn_cos, &a.block_kl, &a.attn_kl, &a.h_ratio, &a.ffn_h_ratio};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        *v[i] = malloc(sizeof(float) * n);
        for (int l = 0; l < n; l++) (*v[i])[l] = 1.0f + l;
    }
    a.dep_block = malloc(sizeof(float) * n * n);
    a.dep_ffn = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) a.dep_block[i * n + j] = a.dep_ffn[i * n + j] = j > i ? 0.5f : NAN;
    return a;
}

static void test_drop_and_fuse(void **st) {
    (void)st;
    sf_analysis a = make(12);
    /* attention matters least in 4..7 and 9 */
    const int low[] = {4, 5, 6, 7, 9};
    for (int i = 0; i < 5; i++) a.attn_kl[low[i]] = 0.01f * (i + 1);
    a.attn_kl[0] = 0.0f; /* layer 0 is never dropped, however small */
    bool drop[12];
    assert_int_equal(sf_auto_drop_attn(&a, 5, drop), SF_OK);
    for (int l = 0; l < 12; l++) assert_int_equal(drop[l], l == 4 || l == 5 || l == 6 || l == 7 || l == 9);
    sf_layer_range g[6];
    int n = 0;
    assert_int_equal(sf_auto_fuse_groups(&a, 12, drop, INFINITY, g, &n), SF_OK);
    assert_int_equal(n, 1); /* run 4-7 minus its last: 4-6; 9 alone is no group */
    assert_int_equal(g[0].first, 4);
    assert_int_equal(g[0].last, 6);
    /* a threshold splits where M is high: 6 depends strongly on 4 */
    a.dep_ffn[4 * 12 + 6] = 0.9f;
    assert_int_equal(sf_auto_fuse_groups(&a, 12, drop, 0.6f, g, &n), SF_OK);
    assert_int_equal(n, 1); /* 4-5, then 6 alone */
    assert_int_equal(g[0].first, 4);
    assert_int_equal(g[0].last, 5);
    assert_int_equal(sf_auto_fuse_groups(&a, 12, drop, 0.1f, g, &n), SF_OK); /* everything above 0.1: no group */
    assert_int_equal(n, 0);
    assert_int_equal(sf_auto_drop_attn(&a, 12, drop), SF_ERR_ARG); /* only 11 candidates */
    sf_analysis_free(&a);
}

static void test_parallel_greedy(void **st) {
    (void)st;
    sf_analysis a = make(16);
    /* make window 9-12 the least dependent, then 2-5 */
    for (int i = 9; i <= 12; i++)
        for (int j = i + 1; j <= 12; j++) a.dep_block[i * 16 + j] = 0.01f;
    for (int i = 2; i <= 5; i++)
        for (int j = i + 1; j <= 5; j++) a.dep_block[i * 16 + j] = 0.02f;
    sf_layer_range r[2];
    assert_int_equal(sf_auto_parallel(&a, 2, 4, NULL, r), SF_OK);
    assert_int_equal(r[0].first, 2); /* ascending */
    assert_int_equal(r[0].last, 5);
    assert_int_equal(r[1].first, 9);
    assert_int_equal(r[1].last, 12);
    bool excl[16] = {0};
    excl[10] = true; /* an excluded layer removes 9-12 and its overlaps */
    assert_int_equal(sf_auto_parallel(&a, 1, 4, excl, r), SF_OK);
    assert_int_equal(r[0].first, 2);
    assert_int_equal(sf_auto_parallel(&a, 4, 4, NULL, r), SF_ERR_ARG); /* 15 usable layers: 3 windows */
    sf_analysis_free(&a);
}

static void test_json_round_trip(void **st) {
    (void)st;
    char dir[64];
    assert_int_equal(sf_test_mkdtemp(dir, sizeof dir, "auto"), 0);
    sf_analysis a = make(7), b;
    a.attn_kl[3] = NAN;
    assert_int_equal(sf_analysis_write_report(&a, dir), SF_OK);
    char path[256];
    snprintf(path, sizeof path, "%s/analysis.json", dir);
    assert_int_equal(sf_analysis_read_json(path, &b), SF_OK);
    assert_int_equal(b.n_layer, 7);
    assert_true(isnan(b.attn_kl[3]));
    assert_true(b.attn_kl[2] == a.attn_kl[2]);
    assert_true(isnan(b.dep_block[3 * 7 + 1]) && b.dep_block[1 * 7 + 3] == 0.5f);
    sf_analysis_free(&b);
    assert_int_equal(sf_analysis_read_json("/nonexistent/analysis.json", &b), SF_ERR_FORMAT);
    sf_test_rm_tree(dir);
    sf_analysis_free(&a);
}

static void test_heal(void **st) {
    (void)st;
    const char *src = sf_test_model_path(SF_TEST_SMOLLM);
    if (!src) skip();
    char dir[64];
    assert_int_equal(sf_test_mkdtemp(dir, sizeof dir, "heal"), 0);
    char fused[256], healed[256];
    snprintf(fused, sizeof fused, "%s/fused.gguf", dir);
    snprintf(healed, sizeof healed, "%s/healed.gguf", dir);
    bool drop[30] = {0};
    for (int l = 5; l <= 9; l++) drop[l] = true;
    const sf_layer_range g = {5, 8};
    const sf_fuse_plan plan = {30, drop, 1, &g, SF_FUSE_NORM_SHARED_LAST, 0, NULL, NULL};
    assert_int_equal(sf_fuse_write(src, &plan, fused, NULL, NULL), SF_OK);
    sf_model *m = sf_model_load(src);
    assert_non_null(m);
    static const char text[] = "The history of the city begins in the twelfth century, when a small market grew "
                               "around the river crossing. Its first charter was granted in 1201, and the town "
                               "walls were built over the following decades as trade in wool and cloth expanded.";
    int32_t toks[128];
    const int n = sf_tokenize(m, text, strlen(text), toks, 128, true, false);
    sf_model_free(m);
    assert_true(n >= 32);
    sf_heal_params hp = sf_heal_default_params();
    hp.n_ctx = 16;
    hp.n_tokens = 32;
    hp.n_threads = 1;
    hp.ridge = 1.0f; /* few tokens: strong shrinkage */
    sf_heal_fit_result fit;
    assert_int_equal(sf_heal_fit(src, fused, &plan, toks, n, &hp, &fit), SF_OK);
    assert_int_equal(fit.n_groups, 1);
    assert_int_equal(fit.layer[0], 5);
    print_message("heal: relative error %.4f -> %.4f\n", fit.err_before[0], fit.err_after[0]);
    assert_true(fit.err_before[0] > 0 && fit.err_after[0] < fit.err_before[0]);
    assert_int_equal(sf_heal_apply(fused, &fit, hp.ridge, healed), SF_OK);
    sf_heal_fit_free(&fit);
    sf_model *h = sf_model_load(healed);
    assert_non_null(h);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 1;
    sf_context *c = sf_context_new(h, &cp);
    assert_int_equal(sf_decode(c, toks, 8, false), SF_OK);
    const float *lg = sf_get_logits(c, -1);
    for (int v = 0; v < 100; v++) assert_true(isfinite(lg[v]));
    sf_context_free(c);
    sf_model_free(h);
    /* errors: a plan without groups; parallel blocks */
    sf_fuse_plan none = plan;
    none.n_fuse = 0;
    assert_int_equal(sf_heal_fit(src, fused, &none, toks, n, &hp, &fit), SF_ERR_ARG);
    sf_test_rm_tree(dir);
}

/* The engine's parallel-block groups: x <- x0 + sum_j (block_j(x0) - x0),
 * each member on one thread of a single region, checked bit for bit against
 * the same sums built from single-block passes of the source model. */
static float *g_x0;
static void grab_x0(void *user, int layer, sf_stage stage, const float *x, int T) {
    const sf_model *m = user;
    if (layer == 10 && stage == SF_STAGE_INPUT) memcpy(g_x0, x, sizeof(float) * (size_t)T * m->n_embd);
}

static void test_parallel_runtime(void **st) {
    (void)st;
    const char *src = sf_test_model_path(SF_TEST_SMOLLM);
    if (!src) skip();
    char dir[64];
    assert_int_equal(sf_test_mkdtemp(dir, sizeof dir, "par"), 0);
    char par[256];
    snprintf(par, sizeof par, "%s/par.gguf", dir);
    const sf_layer_range g = {10, 11};
    const sf_fuse_plan plan = {30, NULL, 0, NULL, SF_FUSE_NORM_SHARED_LAST, 1, &g, NULL};
    assert_int_equal(sf_fuse_write(src, &plan, par, NULL, NULL), SF_OK);
    enum { T = 8 };
    const int32_t toks[T] = {504, 3575, 282, 4649, 314, 7042, 28, 284};
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = cp.n_batch = T;
    cp.n_threads = 1;
    /* the parallel model as the engine runs it */
    sf_model *mp = sf_model_load(par);
    assert_non_null(mp);
    assert_int_equal(mp->layers[10].group_last, 11);
    assert_int_equal(mp->layers[11].group_first, 10);
    sf_context_params cp2 = cp;
    cp2.n_threads = 2; /* group members spread over the pool's threads */
    sf_context *cpar = sf_context_new(mp, &cp2);
    assert_int_equal(sf_decode(cpar, toks, T, true), SF_OK);
    /* the reference from the source model */
    sf_model *m = sf_model_load(src);
    sf_context *c = sf_context_new(m, &cp);
    const size_t n = (size_t)T * m->n_embd;
    g_x0 = malloc(sizeof(float) * n);
    float *sum = calloc(n, sizeof(float)), *xs = malloc(sizeof(float) * n);
    sf_run_plan base = {.on_stage = grab_x0, .user = m};
    assert_int_equal(sf_forward(c, toks, T, T, &base), SF_OK);
    for (int l = 10; l <= 11; l++) {
        sf_run_plan one = {.start_layer = l, .x_start = g_x0, .end_layer = l + 1};
        assert_int_equal(sf_forward(c, toks, T, T, &one), SF_OK);
        for (size_t k = 0; k < n; k++) sum[k] += c->x[k] - g_x0[k];
    }
    for (size_t k = 0; k < n; k++) xs[k] = g_x0[k] + sum[k];
    sf_run_plan rest = {.start_layer = 12, .x_start = xs};
    assert_int_equal(sf_forward(c, toks, T, 0, &rest), SF_OK);
    for (int t = 0; t < T; t++) {
        const float *a = sf_get_logits(cpar, t), *b = c->logits + (size_t)t * m->n_vocab;
        assert_int_equal(memcmp(a, b, sizeof(float) * (size_t)m->n_vocab), 0);
    }
    free(g_x0);
    free(sum);
    free(xs);
    sf_context_free(c);
    sf_context_free(cpar);
    sf_model_free(m);
    sf_model_free(mp);
    sf_test_rm_tree(dir);
}

/* A written drop-only plan equals the in-memory transform: the source model
 * run with the same attention sub-blocks skipped, bit for bit. */
static void test_written_equals_in_memory(void **st) {
    (void)st;
    const char *src = sf_test_model_path(SF_TEST_SMOLLM);
    if (!src) skip();
    char dir[64];
    assert_int_equal(sf_test_mkdtemp(dir, sizeof dir, "mem"), 0);
    char out[256];
    snprintf(out, sizeof out, "%s/drop.gguf", dir);
    bool drop[30] = {0};
    drop[5] = drop[6] = drop[17] = true;
    const sf_fuse_plan plan = {30, drop, 0, NULL, SF_FUSE_NORM_SHARED_LAST, 0, NULL, NULL};
    assert_int_equal(sf_fuse_write(src, &plan, out, NULL, NULL), SF_OK);
    enum { T = 8 };
    const int32_t toks[T] = {504, 3575, 282, 4649, 314, 7042, 28, 284};
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = cp.n_batch = T;
    cp.n_threads = 1;
    sf_model *mf = sf_model_load(out), *m = sf_model_load(src);
    assert_true(mf && m);
    sf_context *cf = sf_context_new(mf, &cp), *c = sf_context_new(m, &cp);
    assert_int_equal(sf_decode(cf, toks, T, true), SF_OK);
    sf_run_plan ctl = {.drop_attn = drop};
    assert_int_equal(sf_forward(c, toks, T, 0, &ctl), SF_OK);
    for (int t = 0; t < T; t++)
        assert_int_equal(memcmp(sf_get_logits(cf, t), c->logits + (size_t)t * m->n_vocab, sizeof(float) * m->n_vocab), 0);
    sf_context_free(cf);
    sf_context_free(c);
    sf_model_free(mf);
    sf_model_free(m);
    sf_test_rm_tree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_and_fuse), cmocka_unit_test(test_parallel_greedy),
        cmocka_unit_test(test_json_round_trip), cmocka_unit_test(test_heal), cmocka_unit_test(test_parallel_runtime),
        cmocka_unit_test(test_written_equals_in_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
