/* Depth routing (Mixture-of-Depths) on a tiny random-weight F32 llama:
 *  - capacity 1 on every block gives logits bit-identical to dense;
 *  - the causal rule matches the naive reference (ref_forward.c: the router
 *    decides per token, a skipped token leaves no KV entry, or keeps one
 *    when KV-preserving; x + r·f(x) when scaled) through a prefill and later
 *    decode steps, decision for decision;
 *  - token by token it gives the same logits as the prefill (a prefix's
 *    decisions do not depend on what follows);
 *  - expert-choice top-k runs exactly round(c·T) tokens, the best-scored, and
 *    where its choice equals the causal rule's the logits are identical;
 *  - sf_route_fit writes routers whose thresholds, set on the routed model
 *    itself, give each block its capacity on the calibration text;
 *  - bad side-cars and parameters are errors that say what is wrong. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "model/context.h"
#include "model/model.h"
#include "ref_forward.h"
#include "route/routes.h"
#include "sparsefuse_eval.h"
#include "sparsefuse_routing.h"
#include "testutil.h"

enum { N_PRE = 12, N_DEC = 5, N_ALL = N_PRE + N_DEC, L = 2 };

static char g_dir[64], g_path[128];
static sf_model *g_m;
static int32_t g_tok[N_ALL];
static float *g_w[L];     /* router weights [n_embd] */
static float g_thr[L];    /* thresholds with a wide gap around them (set_thresholds) */
static float g_frac[L];   /* share of the N_PRE prefill tokens the thresholds run */

static sf_context *new_context(int n_batch) {
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = n_batch;
    cp.n_threads = 2;
    sf_context *c = sf_context_new(g_m, &cp);
    assert_non_null(c);
    return c;
}

/* The reference with both blocks routed at thresholds thr. */
static double *reference(const float *thr, bool preserve, bool scale, bool *skip, double *score) {
    static const bool routed[L] = {true, true};
    static float bias[L];
    bool ffn[L * N_ALL];
    ref_spec r = {.m = g_m, .n_tok = N_ALL, .tok = g_tok, .skip_attn = skip, .skip_ffn = ffn, .routed = routed,
                  .w = (const float *const *)g_w, .bias = bias, .thr = thr, .kv_preserve = preserve,
                  .scale = scale, .score = score};
    return ref_logits(&r);
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Per block in order, the threshold in the middle of the widest gap between
 * the prefill tokens' scores (from the middle third of them), with the
 * earlier blocks routed: far from every score, so float and double agree. */
static void set_thresholds(void) {
    float thr[L] = {-1e30f, -1e30f};
    for (int l = 0; l < L; l++) {
        bool skip[L * N_ALL];
        double score[L * N_ALL], s[N_PRE];
        free(reference(thr, false, false, skip, score));
        memcpy(s, score + l * N_ALL, sizeof s);
        qsort(s, N_PRE, sizeof *s, by_value);
        int best = N_PRE / 3;
        for (int i = N_PRE / 3; i < 2 * N_PRE / 3; i++)
            if (s[i + 1] - s[i] > s[best + 1] - s[best]) best = i;
        thr[l] = (float)(0.5 * (s[best] + s[best + 1]));
        g_frac[l] = (float)(N_PRE - 1 - best) / N_PRE;
        print_message("block %d: threshold %.4f, gap %.4f, %d of %d prefill tokens run\n", l, thr[l],
                      s[best + 1] - s[best], N_PRE - 1 - best, N_PRE);
        assert_true(s[best + 1] - s[best] > 1e-3);
    }
    memcpy(g_thr, thr, sizeof thr);
}

static int setup(void **state) {
    (void)state;
    if (sf_test_mkdtemp(g_dir, sizeof g_dir, "route")) return -1;
    snprintf(g_path, sizeof g_path, "%s/tiny-f32.gguf", g_dir);
    sf_synth_params p = sf_synth_default_params();
    p.shape = "tiny";
    p.type = "f32";
    p.seed = 5;
    if (sf_synth_write(g_path, &p, NULL) != SF_OK) return -1;
    g_m = sf_model_load(g_path);
    if (!g_m || g_m->n_layer != L) return -1;
    uint64_t rng = 3;
    for (int t = 0; t < N_ALL; t++) g_tok[t] = 3 + (int32_t)(sf_test_rand_u64(&rng) % (uint64_t)(g_m->n_vocab - 3));
    for (int l = 0; l < L; l++) {
        g_w[l] = malloc(sizeof(float) * (size_t)g_m->n_embd);
        for (int e = 0; e < g_m->n_embd; e++) g_w[l][e] = sf_test_rand_f32(&rng);
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int l = 0; l < L; l++) free(g_w[l]);
    sf_model_free(g_m);
    sf_test_rm_tree(g_dir);
    return 0;
}

/* A side-car routing both blocks at these capacities and thresholds. */
static const char *write_routes(const char *name, const float *capacity, const float *thr) {
    static char path[192];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    sf_route_layer layers[L] = {0};
    for (int l = 0; l < L; l++)
        layers[l] = (sf_route_layer){.routed = true, .capacity = capacity[l], .threshold = thr[l], .w = g_w[l]};
    assert_int_equal(sf_routes_write(path, g_m, layers, "test"), SF_OK);
    return path;
}

/* Prefill N_PRE tokens in batches of `batch`, then N_DEC one by one; logits
 * [N_ALL][V] and the decisions run[N_ALL][L]. */
static float *run_routed(sf_context *c, int batch, bool *run) {
    const int V = g_m->n_vocab;
    float *out = malloc(sizeof(float) * N_ALL * V);
    sf_context_route_keep_map(c, true);
    for (int t0 = 0; t0 < N_ALL;) {
        const int n = t0 < N_PRE ? (N_PRE - t0 < batch ? N_PRE - t0 : batch) : 1;
        assert_int_equal(sf_decode(c, g_tok + t0, n, true), SF_OK);
        memcpy(out + (size_t)t0 * V, c->logits, sizeof(float) * n * V);
        t0 += n;
        const bool *map;
        assert_int_equal(sf_context_route_map(c, &map), t0);
        memcpy(run, map, sizeof(bool) * t0 * L);
    }
    return out;
}

static void test_capacity_one_is_dense(void **state) {
    (void)state;
    const int V = g_m->n_vocab;
    const float one[L] = {1, 1}, thr[L] = {1e30f, 1e30f}; /* capacity 1: the threshold is not consulted */
    sf_context *c = new_context(N_ALL);
    assert_int_equal(sf_decode(c, g_tok, N_ALL, true), SF_OK);
    float *dense = malloc(sizeof(float) * N_ALL * V);
    memcpy(dense, c->logits, sizeof(float) * N_ALL * V);
    assert_int_equal(sf_context_use_routes(c, write_routes("one.gguf", one, thr)), SF_OK);
    for (int rule = 0; rule < 2; rule++) {
        sf_route_policy p = {.rule = rule ? SF_ROUTE_TOPK : SF_ROUTE_CAUSAL};
        sf_context_route_policy(c, &p);
        assert_int_equal(sf_kv_truncate(c, 0), SF_OK);
        assert_int_equal(sf_decode(c, g_tok, N_ALL, true), SF_OK);
        assert_memory_equal(c->logits, dense, sizeof(float) * N_ALL * V);
    }
    int64_t ran[L], seen[L];
    sf_context_route_stats(c, ran, seen, true);
    assert_int_equal(ran[0], 2 * N_ALL);
    assert_int_equal(seen[1], 2 * N_ALL);
    free(dense);
    sf_context_free(c);
}

static void test_causal_matches_reference(void **state) {
    (void)state;
    const int V = g_m->n_vocab;
    set_thresholds();
    const float cap[L] = {0.5f, 0.5f};
    const char *path = write_routes("causal.gguf", cap, g_thr);
    double *dense = NULL;
    {
        const float none[L] = {-1e30f, -1e30f};
        bool skip[L * N_ALL];
        dense = reference(none, false, false, skip, NULL);
    }
    for (int mode = 0; mode < 3; mode++) { /* exact, KV-preserving, scaled */
        const bool preserve = mode == 1, scale = mode == 2;
        bool skip[L * N_ALL];
        double *ref = reference(g_thr, preserve, scale, skip, NULL);
        sf_route_policy p = {.kv = preserve ? SF_ROUTE_KV_PRESERVE : SF_ROUTE_KV_EXACT, .scale = scale};
        float *first = NULL;
        for (int batch = N_PRE; batch >= 1; batch = batch == N_PRE ? 5 : batch == 5 ? 1 : 0) {
            sf_context *c = new_context(N_ALL);
            assert_int_equal(sf_context_use_routes(c, path), SF_OK);
            sf_context_route_policy(c, &p);
            bool run[N_ALL * L];
            float *got = run_routed(c, batch, run);
            int n_skip = 0;
            for (int t = 0; t < N_ALL; t++)
                for (int l = 0; l < L; l++) {
                    assert_int_equal(run[t * L + l], !skip[l * N_ALL + t]); /* decision for decision */
                    n_skip += !run[t * L + l];
                }
            assert_true(n_skip > N_ALL / 2);
            double worst = 0;
            for (int t = 0; t < N_ALL; t++) {
                const double e = ref_nmse(got + (size_t)t * V, ref + (size_t)t * V, (size_t)V);
                worst = e > worst ? e : worst;
            }
            print_message("mode %d batch %d: worst logit NMSE vs the reference %.3g\n", mode, batch, worst);
            /* ggml's f16 accumulation of V, as in test_run_plan: 7.3e-7; KV-preserving 1.9e-6 (more entries);
             * scaled 5.3e-6 (block outputs times router scores of up to ~10) */
            assert_true(worst <= (scale ? 6e-6 : preserve ? 2.5e-6 : 1e-6));
            /* the routing matters: far from the dense model */
            assert_true(ref_nmse(got + (size_t)(N_ALL - 1) * V, dense + (size_t)(N_ALL - 1) * V, (size_t)V) > 1e-3);
            if (!first) first = got;
            else {
                /* prefix-consistent: batches of 5 and of 1 give the prefill's logits */
                assert_memory_equal(got, first, sizeof(float) * N_ALL * V);
                free(got);
            }
            sf_context_free(c);
        }
        free(first);
        free(ref);
    }
    free(dense);
}

static void test_topk(void **state) {
    (void)state;
    const int V = g_m->n_vocab;
    set_thresholds();
    /* the capacity the thresholds give on the prefill: top-k picks the same tokens */
    const char *path = write_routes("topk.gguf", g_frac, g_thr);
    sf_context *c = new_context(N_ALL);
    assert_int_equal(sf_context_use_routes(c, path), SF_OK);
    bool run[N_ALL * L], run_k[N_ALL * L];
    float *causal = run_routed(c, N_PRE, run);
    sf_route_policy p = {.rule = SF_ROUTE_TOPK};
    sf_context_route_policy(c, &p);
    assert_int_equal(sf_kv_truncate(c, 0), SF_OK);
    float *topk = run_routed(c, N_PRE, run_k);
    assert_memory_equal(run_k, run, sizeof run);
    assert_memory_equal(topk, causal, sizeof(float) * N_ALL * V);
    free(topk);
    free(causal);
    sf_context_free(c);

    /* capacity 0.25 of 12: exactly 3 tokens, those with the best scores */
    const float quarter[L] = {0.25f, 0.25f};
    c = new_context(N_ALL);
    assert_int_equal(sf_context_use_routes(c, write_routes("quarter.gguf", quarter, g_thr)), SF_OK);
    sf_context_route_policy(c, &p);
    sf_context_route_keep_map(c, true);
    assert_int_equal(sf_decode(c, g_tok, N_PRE, true), SF_OK);
    const bool *map;
    assert_int_equal(sf_context_route_map(c, &map), N_PRE);
    for (int l = 0; l < L; l++) {
        int n = 0;
        for (int t = 0; t < N_PRE; t++) n += map[t * L + l];
        assert_int_equal(n, 3);
    }
    /* block 0 sees the embeddings: its 3 best scores, recomputed here */
    const int E = g_m->n_embd;
    double s[N_PRE];
    for (int t = 0; t < N_PRE; t++) {
        const float *x = (const float *)g_m->token_embd->data + (size_t)g_tok[t] * E;
        double ss = 0, dot = 0;
        for (int e = 0; e < E; e++) {
            ss += (double)x[e] * x[e];
            dot += (double)g_w[0][e] * x[e];
        }
        s[t] = dot / sqrt(ss / E + g_m->norm_eps);
    }
    for (int t = 0; t < N_PRE; t++) {
        int better = 0;
        for (int u = 0; u < N_PRE; u++) better += s[u] > s[t];
        assert_int_equal(map[t * L + 0], better < 3);
    }
    sf_context_free(c);
}

static void test_fit(void **state) {
    (void)state;
    enum { N_CAL = 64 };
    int32_t cal[N_CAL];
    uint64_t rng = 11;
    for (int t = 0; t < N_CAL; t++) cal[t] = 3 + (int32_t)(sf_test_rand_u64(&rng) % (uint64_t)(g_m->n_vocab - 3));
    const bool bos = sf_model_add_bos(g_m) && sf_token_bos(g_m) >= 0;
    const int per = bos ? 15 : 16; /* text tokens per chunk of 16 */
    for (int target = 0; target < SF_ROUTE_TARGETS; target++) {
        const bool routed[L] = {true, true};
        const float cap[L] = {0.5f, 0.25f};
        sf_route_params rp = sf_route_default_params();
        rp.routed = routed;
        rp.capacity = cap;
        rp.target = (sf_route_target)target;
        rp.n_ctx = 16;
        rp.n_threads = 2;
        char path[192];
        snprintf(path, sizeof path, "%s/fit-%s.gguf", g_dir, sf_route_target_name(rp.target));
        sf_route_result res;
        for (int pass = 0; pass < 2; pass++) { /* all the text, then one chunk */
            rp.n_tokens = pass ? per : N_CAL;
            assert_int_equal(sf_route_fit(g_m, cal, N_CAL, &rp, path, &res), SF_OK);
            assert_int_equal(res.n_tokens, pass ? 16 : (N_CAL / per) * 16);
            for (int l = 0; l < L; l++) {
                assert_true(res.routed[l] && res.importance[l] > 0);
                assert_true(isfinite(res.r2[l]) && res.r2[l] <= 1);
                assert_true(res.captured[l] <= res.oracle[l] + 1e-6 && res.oracle[l] <= 1);
                assert_true(isfinite(res.threshold[l]));
            }
            print_message("target %s, %lld tokens: R2 %.3f/%.3f, carried %.3f of best %.3f\n",
                          sf_route_target_name(rp.target), (long long)res.n_tokens, res.r2[0], res.r2[1],
                          res.captured[1], res.oracle[1]);
            sf_route_result_free(&res);
        }
        /* one calibration chunk: the causal thresholds are its top-k scores in the routed model, so the
         * causal rule on that chunk runs exactly round(c * 16) tokens at each block */
        sf_context *c = new_context(16);
        assert_int_equal(sf_context_use_routes(c, path), SF_OK);
        int32_t buf[16];
        int n = 0;
        if (bos) buf[n++] = sf_token_bos(g_m);
        memcpy(buf + n, cal, sizeof(int32_t) * per);
        assert_int_equal(sf_decode(c, buf, 16, false), SF_OK);
        int64_t ran[L], seen[L];
        sf_context_route_stats(c, ran, seen, true);
        assert_int_equal(seen[0], 16);
        assert_int_equal(ran[0], 8);
        assert_int_equal(ran[1], 4);
        sf_context_free(c);
    }
}

static void test_bad_input(void **state) {
    (void)state;
    const float cap[L] = {0.5f, 0.5f}, thr[L] = {0, 0};
    char path[192];
    snprintf(path, sizeof path, "%s", write_routes("good.gguf", cap, thr));
    /* routers for another model */
    char other[160];
    snprintf(other, sizeof other, "%s/other.gguf", g_dir);
    sf_synth_params sp = sf_synth_default_params();
    sp.shape = "tiny";
    sp.type = "f32";
    sp.seed = 6;
    assert_int_equal(sf_synth_write(other, &sp, NULL), SF_OK);
    sf_model *m2 = sf_model_load(other);
    assert_non_null(m2);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = 32;
    sf_context *c2 = sf_context_new(m2, &cp);
    assert_int_equal(sf_context_use_routes(c2, path), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "another model"));
    assert_false(sf_context_has_routes(c2));
    sf_context_free(c2);
    sf_model_free(m2);
    /* not a side-car */
    sf_context *c = new_context(8);
    assert_int_equal(sf_context_use_routes(c, g_path), SF_ERR_FORMAT);
    assert_non_null(strstr(sf_last_error(), "not a routes side-car"));
    /* a capacity outside (0, 1] in the file */
    const float zero[L] = {0, 0.5f};
    assert_int_equal(sf_context_use_routes(c, write_routes("zero.gguf", zero, thr)), SF_ERR_FORMAT);
    assert_non_null(strstr(sf_last_error(), "outside (0, 1]"));
    /* routers and per-token skip masks together */
    assert_int_equal(sf_context_use_routes(c, path), SF_OK);
    bool none[L * 4] = {0};
    sf_run_plan rp = {.skip_attn = none};
    assert_int_equal(sf_forward(c, g_tok, 4, 0, &rp), SF_ERR_UNSUPPORTED);
    sf_context_free(c);
    /* fitting: capacities, blocks, static counts */
    const bool routed[L] = {true, false}, nothing[L] = {false, false};
    const float over[L] = {1.5f, 1};
    sf_route_params p = sf_route_default_params();
    p.routed = routed;
    p.capacity = over;
    assert_int_equal(sf_route_fit(g_m, g_tok, N_ALL, &p, "/nonexistent/x.gguf", NULL), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "outside (0, 1]"));
    p.capacity = cap;
    p.routed = nothing;
    assert_int_equal(sf_route_fit(g_m, g_tok, N_ALL, &p, "/nonexistent/x.gguf", NULL), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "no blocks"));
    p.n_static = 1; /* 2 blocks: the first and last stay */
    assert_int_equal(sf_route_fit(g_m, g_tok, N_ALL, &p, "/nonexistent/x.gguf", NULL), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "--static"));
}

/* The routing map as PNG and SVG: files that say what they are, a cell per
 * (token, block) that ran (SVG: one rect per run of tokens), bad names refused. */
static void test_map(void **state) {
    (void)state;
    enum { T = 6 };
    const bool run[T * L] = {1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1}; /* [token][block] */
    char png[192], svg[192];
    snprintf(png, sizeof png, "%s/map.png", g_dir);
    snprintf(svg, sizeof svg, "%s/map.svg", g_dir);
    assert_int_equal(sf_route_map_write(png, run, T, L, "tiny <test>"), SF_OK);
    assert_int_equal(sf_route_map_write(svg, run, T, L, "tiny <test>"), SF_OK);
    size_t n;
    char *b = sf_test_read_file(png, &n);
    assert_non_null(b);
    assert_memory_equal(b, "\x89PNG", 4);
    free(b);
    b = sf_test_read_file(svg, &n);
    assert_non_null(b);
    assert_non_null(strstr(b, "tiny &lt;test&gt;"));
    int dark = 0;
    for (const char *p = b; (p = strstr(p, "fill=\"#2d3c82\"")); p++) dark++;
    assert_int_equal(dark, 3 + 2); /* block 0: tokens 0, 2 and 4-5; block 1: 0-1 and 4-5 */
    assert_non_null(strstr(b, "block 1: 66.7 %"));
    free(b);
    assert_int_equal(sf_route_map_write("/tmp/x.jpg", run, T, L, ""), SF_ERR_ARG);
    assert_int_equal(sf_route_map_write(png, run, 0, L, ""), SF_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capacity_one_is_dense),
        cmocka_unit_test(test_causal_matches_reference),
        cmocka_unit_test(test_topk),
        cmocka_unit_test(test_fit),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_map),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
