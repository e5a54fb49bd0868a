/* Contextual FFN sparsity on tiny random-weight llamas (synth --shape tiny):
 *  - a side-car of sparsity 0 runs every layer dense: logits bit-identical;
 *  - the sparse FFN of one token (TEAL, CATS, WINA; F32, Q8_0 and Q4_K
 *    weights; threads splitting the active rows or the columns) matches a naive double-precision FFN written here that reads
 *    the same transposed weights with the inactive channels zeroed
 *    (NMSE <= 1e-6), with the engine's active sets checked against the rule;
 *  - the predictor: its sparse FFN as above (decisions from a double-precision
 *    ĝ = B A x̃ on its dequantized matrices, within 8-bit rounding of t); its
 *    fit exact at full rank and better than truncating W below;
 *  - TEAL on the attention: q, k, v and Wo of a token as a naive product of
 *    the transposed rows of its active channels (NMSE <= 1e-6), and a batch
 *    with sparse attention rows equal to those rows decoded alone;
 *  - calibrated thresholds skip about the asked fraction on the text they
 *    were calibrated on;
 *  - a token that runs sparse gives the same logits in a batch (perplexity's
 *    policy) as decoded alone;
 *  - auto:KLD: the allocation found stays within the budget, and the KLD it
 *    reports is the KLD the written side-car gives, recomputed here in
 *    double precision; a budget nothing fits gives the dense model;
 *  - --correct-down: on the text it was fitted on, the FFN output error of
 *    the masked activations falls from none to mean to ls (each is the
 *    least-squares optimum of a larger family);
 *  - the union of the masks over batches of consecutive tokens: one token's
 *    active fraction is the calibrated 1 - s on the calibration text, and
 *    the union only grows with the batch;
 *  - the differential weight cache (SF_SPARSE_CACHE=diff) gives the logits
 *    of direct reads (only the summation order differs) and moves more bytes;
 *  - bad input: a side-car for another model, a malformed file, a sparsity
 *    outside [0, 1), an unknown method — errors that say so, no file left. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/context.h"
#include "model/forward_impl.h"
#include "model/model.h"
#include "model/ops.h"
#include "sparse/sparse.h"
#include "sparsefuse_eval.h"
#include "sparsefuse_sparsity.h"
#include "tensor/types.h"
#include "testutil.h"

enum { N_CALIB = 1024, N_PRE = 12, N_DEC = 4 };

static char g_dir[64];
static int32_t g_calib[N_CALIB];

static const char *path_in(const char *name) {
    static char buf[4][192];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

static sf_model *tiny(const char *type, uint64_t seed) {
    char name[64];
    snprintf(name, sizeof name, "tiny-%s-%llu.gguf", type, (unsigned long long)seed);
    const char *path = path_in(name);
    if (access(path, R_OK) != 0) {
        sf_synth_params p = sf_synth_default_params();
        p.shape = "tiny";
        p.type = type;
        p.seed = seed;
        if (sf_synth_write(path, &p, NULL) != SF_OK) return NULL;
    }
    return sf_model_load(path);
}

static int setup(void **state) {
    (void)state;
    if (sf_test_mkdtemp(g_dir, sizeof g_dir, "sparse")) return -1;
    uint64_t rng = 11;
    for (int t = 0; t < N_CALIB; t++) g_calib[t] = 3 + (int32_t)(sf_test_rand_u64(&rng) % 997);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    sf_test_rm_tree(g_dir);
    return 0;
}

static float g_pred_keep; /* the predictor's keep for sparsify() (0: 1 - s) */
static bool g_attention;  /* TEAL on the attention too, for sparsify() */

static const char *sparsify(sf_model *m, sf_sparse_method method, float s, int wt_type, const char *name) {
    sf_sparsify_params p = sf_sparsify_default_params();
    p.method = method;
    p.pred_keep = g_pred_keep;
    p.attention = g_attention;
    p.sparsity = s;
    p.n_ctx = 128;
    p.n_tokens = N_CALIB;
    p.n_threads = 2;
    p.wt_type = wt_type;
    const char *path = path_in(name);
    sf_sparsify_result r;
    assert_int_equal(sf_sparsify(m, g_calib, N_CALIB, &p, path, &r), SF_OK);
    assert_true(r.n_tokens > 0 || s == 0);
    return path;
}

static sf_context *context(sf_model *m, int n_batch) {
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = n_batch;
    cp.n_threads = 2;
    sf_context *c = sf_context_new(m, &cp);
    assert_non_null(c);
    return c;
}

/* logits of N_PRE prompt tokens then N_DEC decode steps: [N_DEC + 1][n_vocab] */
static float *decode_logits(sf_context *c) {
    const int V = c->model->n_vocab;
    float *out = malloc(sizeof(float) * (size_t)V * (N_DEC + 1));
    assert_int_equal(sf_decode(c, g_calib, N_PRE, false), SF_OK);
    memcpy(out, sf_get_logits(c, -1), sizeof(float) * V);
    for (int i = 0; i < N_DEC; i++) {
        assert_int_equal(sf_decode(c, &g_calib[100 + i], 1, false), SF_OK);
        memcpy(out + (size_t)(i + 1) * V, sf_get_logits(c, -1), sizeof(float) * V);
    }
    return out;
}

static double nmse(const float *a, const double *ref, int n) {
    double e = 0, r = 0;
    for (int i = 0; i < n; i++) {
        e += (a[i] - ref[i]) * (a[i] - ref[i]);
        r += ref[i] * ref[i];
    }
    return r > 0 ? e / r : e;
}

/* ---- sparsity 0 is the dense model */

static void test_level_zero_is_dense(void **state) {
    (void)state;
    sf_model *m = tiny("q8_0", 1);
    assert_non_null(m);
    g_attention = true;
    const char *side = sparsify(m, SF_SPARSE_TEAL, 0.0f, -1, "zero.gguf");
    g_attention = false;
    sf_context *dense = context(m, 32), *sp = context(m, 32);
    assert_int_equal(sf_context_use_sparse(sp, side), SF_OK);
    float *a = decode_logits(dense), *b = decode_logits(sp);
    assert_memory_equal(a, b, sizeof(float) * (size_t)m->n_vocab * (N_DEC + 1));
    sf_sparse_stats st;
    sf_context_sparse_stats(sp, &st, false);
    assert_int_equal(st.tokens, 0);
    free(a);
    free(b);
    sf_context_free(dense);
    sf_context_free(sp);
    sf_model_free(m);
}

/* ---- one token's sparse FFN against a naive reference */

static double gate_act_ref(double g, sf_ffn_act act) {
    if (act == SF_ACT_SILU) return g / (1.0 + exp(-g));
    return 0.5 * g * (1.0 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g)));
}

/* rows of a transposed tensor, dequantized: [ne1][ne0] */
static float *dequant_all(const sf_gguf_tensor *t) {
    float *w = malloc(sizeof(float) * (size_t)(t->ne[0] * t->ne[1]));
    sf_type_ref(t->type)->dequantize(t->data, w, t->ne[0] * t->ne[1]);
    return w;
}

static bool active(const sf_sparse_rule *r, float x, int j) {
    return fabsf(x) * (r->scale ? r->scale[j] : 1.0f) > r->threshold;
}

static void check_ffn_token(const char *type, sf_sparse_method method, int wt_type, const char *name, bool split_rows) {
    sf_model *m = tiny(type, 2);
    assert_non_null(m);
    const char *side = sparsify(m, method, 0.5f, wt_type, name);
    sf_context *c = context(m, 8);
    assert_int_equal(sf_context_use_sparse(c, side), SF_OK);
    c->sp_split_rows = split_rows; /* threads split the active rows, or the output columns */
    const int E = m->n_embd, il = 1;
    const sf_layer *L = &m->layers[il];
    const sf_sparse_layer *S = &c->sparse->layers[il];
    const int F = L->n_ff;
    assert_true(S->site[SF_SITE_FFN_HIDDEN].on);
    const bool decided = method == SF_SPARSE_CATS || method == SF_SPARSE_PREDICTOR; /* h == 0: inactive */
    assert_int_equal(S->site[SF_SITE_FFN_IN].on, !decided);
    uint64_t rng = 7;
    float *x = malloc(sizeof(float) * E), *xn = malloc(sizeof(float) * E);
    double *h = malloc(sizeof(double) * F), *y = malloc(sizeof(double) * E);
    for (int e = 0; e < E; e++) x[e] = 2.0f * sf_test_rand_f32(&rng);
    memcpy(c->x, x, sizeof(float) * E);
    sf_sparse_ffn_token(c, L, il);

    /* reference: x̃ as the engine normed it, masked; gate/up dense or over the
     * transposed rows of the active channels */
    sf_rmsnorm(xn, x, L->ffn_norm->data, E, m->norm_eps);
    if (decided) {
        /* the dense gate/up read x̃ quantized (their vec_dot type): the same input here */
        const int kind = sf_fw_weight_kind(L->ffn_gate);
        const sf_type_traits *at = sf_type_ref(sf_type_ref(L->ffn_gate->type)->vec_dot_type);
        if (at->block_size > 1) at->dequantize(c->act.buf[kind], xn, E);
    }
    const sf_sparse_rule *in = &S->site[SF_SITE_FFN_IN], *hid = &S->site[SF_SITE_FFN_HIDDEN];
    float *gate = dequant_all(S->gate_t ? S->gate_t : L->ffn_gate);
    float *up = dequant_all(S->up_t ? S->up_t : L->ffn_up);
    int n_in = 0;
    for (int i = 0; i < F; i++) {
        double g = 0, u = 0;
        for (int j = 0; j < E; j++) {
            if (in->on && !active(in, xn[j], j)) continue;
            /* transposed: row j holds column j; dense: row i holds neuron i */
            const double wg = in->on ? gate[(size_t)j * F + i] : gate[(size_t)i * E + j];
            const double wu = in->on ? up[(size_t)j * F + i] : up[(size_t)i * E + j];
            g += wg * xn[j];
            u += wu * xn[j];
        }
        const double a = gate_act_ref(g, m->ffn_act);
        h[i] = a * u;
    }
    for (int j = 0; in->on && j < E; j++) n_in += active(in, xn[j], j);
    /* the engine's h (c->hb) against the reference; CATS zeroes the inactive */
    int n_hid = 0, disagree = 0;
    double *z = NULL;
    float *pa = NULL, *pb = NULL;
    if (method == SF_SPARSE_PREDICTOR) {
        /* ĝ = B (A x̃) in double on the dequantized predictor */
        const int R = S->pred.rank;
        pa = malloc(sizeof(float) * (size_t)R * E);
        pb = malloc(sizeof(float) * (size_t)F * R);
        z = calloc((size_t)R, sizeof(double));
        sf_type_ref(SF_TYPE_Q8_0)->dequantize(S->pred.a, pa, (int64_t)R * E);
        sf_type_ref(SF_TYPE_Q8_0)->dequantize(S->pred.b, pb, (int64_t)F * R);
        for (int k = 0; k < R; k++)
            for (int e = 0; e < E; e++) z[k] += (double)pa[(size_t)k * E + e] * xn[e];
    }
    for (int i = 0; i < F; i++) {
        if (decided) {
            /* the reference's decision, against the engine's (h == 0) */
            double g = 0, gp = 0;
            for (int j = 0; j < E; j++) g += (double)gate[(size_t)i * E + j] * xn[j];
            const double a = fabs(gate_act_ref(g, m->ffn_act));
            const bool on = c->hb[i] != 0.0f;
            if (z) {
                /* predicted (ĝ above its threshold), then verified by the exact gate when t > 0; the
                 * engine's predictor reads x̃ and z quantized to 8 bits: decisions may differ within 2 % of t_p */
                for (int k = 0; k < S->pred.rank; k++) gp += (double)pb[(size_t)i * S->pred.rank + k] * z[k];
                const double ap = fabs(gate_act_ref(gp, m->ffn_act)), tp = S->pred_threshold;
                const bool pred = ap > tp, verified = hid->threshold <= 0 || a > hid->threshold;
                if (on != (pred && verified)) {
                    const bool edge = fabs(ap - tp) <= 2e-2 * tp ||
                                      (hid->threshold > 0 && fabs(a - hid->threshold) <= 1e-4 * hid->threshold);
                    disagree += edge ? 1 : 100;
                }
            } else if (on != (a > hid->threshold))
                disagree += fabs(a - hid->threshold) > 1e-4 * hid->threshold ? 100 : 1;
            if (!on) h[i] = 0;
            n_hid += on;
        } else {
            n_hid += active(hid, c->hb[i], i);
        }
    }
    print_message("%d decisions at the threshold's rounding edge\n", disagree);
    assert_true(disagree < 3); /* only at the threshold's rounding edge */
    free(z);
    free(pa);
    free(pb);
    {
        float *hb = malloc(sizeof(float) * F);
        memcpy(hb, c->hb, sizeof(float) * F);
        const double e = nmse(hb, h, F);
        print_message("%s %s (%s split): active inputs %d/%d, neurons %d/%d, h NMSE %.2e\n", type,
                      sf_sparse_method_name(method), split_rows ? "row" : "column", n_in, E, n_hid, F, e);
        assert_true(e <= 1e-6);
        free(hb);
    }
    /* down over the engine's active neurons, as the transposed rows give it */
    float *down = dequant_all(S->down_t);
    for (int e = 0; e < E; e++) y[e] = x[e];
    for (int i = 0; i < F; i++) {
        if (decided ? c->hb[i] == 0.0f : !active(hid, c->hb[i], i)) continue;
        for (int e = 0; e < E; e++) y[e] += (double)c->hb[i] * down[(size_t)i * E + e];
    }
    const double e = nmse(c->x, y, E);
    print_message("  x after the FFN: NMSE %.2e\n", e);
    assert_true(e <= 1e-6);
    /* sparsity does something: about half the channels are inactive */
    assert_true(n_hid < F * 9 / 10);
    if (in->on) assert_true(n_in < E * 9 / 10);
    free(gate);
    free(up);
    free(down);
    free(x);
    free(xn);
    free(h);
    free(y);
    sf_context_free(c);
    sf_model_free(m);
}

static void test_ffn_token_teal_f32(void **state) {
    (void)state;
    check_ffn_token("f32", SF_SPARSE_TEAL, -1, "teal-f32-r.gguf", true);
    check_ffn_token("f32", SF_SPARSE_TEAL, -1, "teal-f32-c.gguf", false);
}
static void test_ffn_token_cats_q8_0(void **state) {
    (void)state;
    check_ffn_token("q8_0", SF_SPARSE_CATS, -1, "cats-q8-r.gguf", true);
    check_ffn_token("q8_0", SF_SPARSE_CATS, -1, "cats-q8-c.gguf", false);
}
static void test_ffn_token_wina_q4_k(void **state) {
    (void)state;
    check_ffn_token("q4_k", SF_SPARSE_WINA, -1, "wina-q4k-r.gguf", true);
    check_ffn_token("q4_k", SF_SPARSE_WINA, -1, "wina-q4k-c.gguf", false);
}
static void test_ffn_token_teal_q4_0_as_q8_0(void **state) {
    (void)state;
    check_ffn_token("q4_0", SF_SPARSE_TEAL, SF_TYPE_Q8_0, "teal-q40-q8-r.gguf", true);
    check_ffn_token("q4_0", SF_SPARSE_TEAL, SF_TYPE_Q8_0, "teal-q40-q8-c.gguf", false);
}

static void test_ffn_token_predictor_q4_0(void **state) {
    (void)state;
    check_ffn_token("q4_0", SF_SPARSE_PREDICTOR, -1, "pred-q40-r.gguf", true);
    check_ffn_token("q4_0", SF_SPARSE_PREDICTOR, -1, "pred-q40-c.gguf", false);
    /* predict 75 %, keep CATS's 50 % of those */
    g_pred_keep = 0.75f;
    check_ffn_token("q4_0", SF_SPARSE_PREDICTOR, -1, "pred-verify-q40-r.gguf", true);
    g_pred_keep = 0;
}

/* ---- the predictor's fit */

/* E‖W x - P x‖² / E‖W x‖² over the rows of x[n][E], P = B A (rank R) */
static double fit_error(const float *w, const float *a, const float *b, const double *x, int n, int E, int F, int R) {
    double err = 0, ref = 0;
    double *z = malloc(sizeof(double) * R);
    for (int t = 0; t < n; t++) {
        const double *xt = x + (size_t)t * E;
        for (int k = 0; k < R; k++) {
            z[k] = 0;
            for (int e = 0; e < E; e++) z[k] += (double)a[(size_t)k * E + e] * xt[e];
        }
        for (int i = 0; i < F; i++) {
            double g = 0, p = 0;
            for (int e = 0; e < E; e++) g += (double)w[(size_t)i * E + e] * xt[e];
            for (int k = 0; k < R; k++) p += (double)b[(size_t)i * R + k] * z[k];
            err += (g - p) * (g - p);
            ref += g * g;
        }
    }
    free(z);
    return err / ref;
}

/* Full rank reproduces the gate; at lower rank the covariance-weighted fit
 * beats the plain truncation of W (the same fit on a white covariance), its
 * kept variance matches 1 - its error, and it grows with the rank. */
static void test_predictor_fit(void **state) {
    (void)state;
    enum { E = 32, F = 48, N = 400 };
    uint64_t rng = 5;
    float *w = malloc(sizeof(float) * F * E);
    double *x = malloc(sizeof(double) * N * E), *cov = calloc(E * E, sizeof(double)), *white = calloc(E * E, sizeof(double));
    for (int i = 0; i < F * E; i++) w[i] = sf_test_rand_f32(&rng);
    /* correlated inputs with a few loud channels, as normed hidden states have */
    for (int t = 0; t < N; t++) {
        const double common = sf_test_rand_f32(&rng);
        for (int e = 0; e < E; e++) x[t * E + e] = (e % 7 == 0 ? 6.0 : 1.0) * sf_test_rand_f32(&rng) + common;
    }
    for (int t = 0; t < N; t++)
        for (int i = 0; i < E; i++)
            for (int j = 0; j < E; j++) cov[i * E + j] += x[t * E + i] * x[t * E + j];
    for (int i = 0; i < E; i++) white[i * E + i] = 1.0;
    float *a = malloc(sizeof(float) * E * E), *b = malloc(sizeof(float) * F * E);
    double explained, ex_white;
    assert_int_equal(sf_predictor_fit(cov, N, w, E, F, E, a, b, &explained), SF_OK);
    const double e_full = fit_error(w, a, b, x, N, E, F, E);
    print_message("full rank: error %.2e, kept %.6f\n", e_full, explained);
    assert_true(e_full < 1e-10 && fabs(explained - 1.0) < 1e-9);
    double last = 0;
    for (int R = 4; R <= 16; R += 4) {
        assert_int_equal(sf_predictor_fit(cov, N, w, E, F, R, a, b, &explained), SF_OK);
        const double e = fit_error(w, a, b, x, N, E, F, R);
        assert_int_equal(sf_predictor_fit(white, 1, w, E, F, R, a, b, &ex_white), SF_OK);
        const double e_white = fit_error(w, a, b, x, N, E, F, R);
        print_message("rank %2d: error %.4f (truncated W: %.4f), kept %.4f\n", R, e, e_white, explained);
        assert_true(e < e_white);
        assert_true(fabs(explained - (1.0 - e)) < 1e-3);
        assert_true(explained > last);
        last = explained;
    }
    assert_int_equal(sf_predictor_fit(cov, N, w, E, F, E + 1, a, b, &explained), SF_ERR_ARG);
    free(w);
    free(x);
    free(cov);
    free(white);
    free(a);
    free(b);
}

/* ---- calibration skips about the asked fraction on its own text */

static void test_calibrated_density(void **state) {
    (void)state;
    sf_model *m = tiny("q8_0", 3);
    assert_non_null(m);
    const char *side = sparsify(m, SF_SPARSE_TEAL, 0.4f, -1, "teal40.gguf");
    sf_context *c = context(m, 8);
    assert_int_equal(sf_context_use_sparse(c, side), SF_OK);
    sf_context_sparse_policy(c, 1, 0); /* every token sparse */
    assert_int_equal(sf_decode(c, g_calib, 60, false), SF_OK);
    sf_sparse_stats st;
    sf_context_sparse_stats(c, &st, true);
    assert_int_equal(st.tokens, 60 * m->n_layer);
    const double in = (double)st.in_active / st.in_total, hid = (double)st.hidden_active / st.hidden_total;
    print_message("active: inputs %.3f, neurons %.3f (asked 0.600)\n", in, hid);
    assert_true(fabs(in - 0.6) < 0.05 && fabs(hid - 0.6) < 0.05);
    sf_context_free(c);
    sf_model_free(m);
}

/* ---- a sparse token in a batch equals the same token decoded alone */

static void batch_policy_matches_decode(bool attention) {
    sf_model *m = tiny("f32", 4);
    assert_non_null(m);
    g_attention = attention;
    const char *side = sparsify(m, SF_SPARSE_TEAL, 0.5f, -1, attention ? "teal-attn-batch.gguf" : "teal-batch.gguf");
    g_attention = false;
    const int V = m->n_vocab, half = N_PRE / 2;
    sf_context *a = context(m, 32), *b = context(m, 32);
    assert_int_equal(sf_context_use_sparse(a, side), SF_OK);
    assert_int_equal(sf_context_use_sparse(b, side), SF_OK);
    sf_context_sparse_policy(a, 1, half); /* one call: positions >= half sparse */
    assert_int_equal(sf_decode(a, g_calib, N_PRE, true), SF_OK);
    assert_int_equal(sf_decode(b, g_calib, half, false), SF_OK); /* dense prefill */
    for (int t = half; t < N_PRE; t++) {
        assert_int_equal(sf_decode(b, &g_calib[t], 1, false), SF_OK);
        const float *la = sf_get_logits(a, t), *lb = sf_get_logits(b, -1);
        double *ref = malloc(sizeof(double) * V);
        for (int v = 0; v < V; v++) ref[v] = lb[v];
        const double e = nmse(la, ref, V);
        assert_true(e <= 1e-10);
        free(ref);
    }
    sf_sparse_stats st;
    sf_context_sparse_stats(b, &st, false);
    if (attention) assert_true(st.attn_total > 0 && st.attn_active < st.attn_total * 9 / 10);
    else assert_int_equal(st.attn_total, 0);
    sf_context_free(a);
    sf_context_free(b);
    sf_model_free(m);
}

static void test_batch_policy_matches_decode(void **state) {
    (void)state;
    batch_policy_matches_decode(false);
    batch_policy_matches_decode(true);
}

/* ---- TEAL on the attention: q, k, v and Wo of one token against a naive
 * product of the transposed rows of the active channels */

/* out[n_out] = Σ over active j of x[j] · wt row j, in double */
static void masked_product(const sf_gguf_tensor *wt, const sf_sparse_rule *r, const float *x, double *out) {
    float *w = dequant_all(wt);
    const int64_t n_out = wt->ne[0], n_in = wt->ne[1];
    for (int64_t i = 0; i < n_out; i++) out[i] = 0;
    for (int64_t j = 0; j < n_in; j++)
        if (active(r, x[j], (int)j))
            for (int64_t i = 0; i < n_out; i++) out[i] += (double)x[j] * w[j * n_out + i];
    free(w);
}

static void test_attention_token(void **state) {
    (void)state;
    sf_model *m = tiny("q8_0", 7);
    assert_non_null(m);
    g_attention = true;
    const char *side = sparsify(m, SF_SPARSE_TEAL, 0.5f, -1, "teal-attn.gguf");
    g_attention = false;
    sf_context *c = context(m, 8);
    assert_int_equal(sf_context_use_sparse(c, side), SF_OK);
    const int il = 1, E = m->n_embd;
    const sf_layer *L = &m->layers[il];
    const sf_sparse_layer *S = &c->sparse->layers[il];
    assert_true(S->site[SF_SITE_ATTN_IN].on && S->site[SF_SITE_ATTN_OUT].on);
    const int nq = L->n_head * m->head_dim_k, nk = L->n_head_kv * m->head_dim_k, nv = L->n_head_kv * m->head_dim_v;
    const int n_att = L->n_head * m->head_dim_v, t = 1; /* row 1 of a batch */
    uint64_t rng = 9;
    for (int e = 0; e < E; e++) c->xn[(size_t)t * E + e] = 1.5f * sf_test_rand_f32(&rng);
    for (int e = 0; e < n_att; e++) c->att[(size_t)t * n_att + e] = sf_test_rand_f32(&rng);
    sf_sparse_attn_in(c, L, il, t);
    float *o = malloc(sizeof(float) * E);
    sf_sparse_attn_out(c, L, il, t, o);
    const sf_gguf_tensor *wt[4] = {S->q_t, S->k_t, S->v_t, S->o_t};
    const float *got[4] = {c->q + (size_t)t * nq, c->k + (size_t)t * nk, c->v + (size_t)t * nv, o};
    for (int i = 0; i < 4; i++) {
        const sf_sparse_rule *r = &S->site[i < 3 ? SF_SITE_ATTN_IN : SF_SITE_ATTN_OUT];
        const float *x = i < 3 ? c->xn + (size_t)t * E : c->att + (size_t)t * n_att;
        double *ref = malloc(sizeof(double) * (size_t)wt[i]->ne[0]);
        masked_product(wt[i], r, x, ref);
        const double e = nmse(got[i], ref, (int)wt[i]->ne[0]);
        print_message("attention product %d (%lld outputs): NMSE %.2e\n", i, (long long)wt[i]->ne[0], e);
        assert_true(e <= 1e-6);
        free(ref);
    }
    sf_sparse_stats st;
    sf_context_sparse_stats(c, &st, false);
    print_message("active attention channels %lld of %lld\n", (long long)st.attn_active, (long long)st.attn_total);
    assert_true(st.attn_active < st.attn_total * 9 / 10 && st.attn_active > 0);
    free(o);
    sf_context_free(c);
    sf_model_free(m);
}

/* ---- bad input */

static void test_bad_input(void **state) {
    (void)state;
    sf_model *m = tiny("q8_0", 5), *other = tiny("q8_0", 6);
    assert_non_null(m);
    assert_non_null(other);
    const char *side = sparsify(m, SF_SPARSE_CATS, 0.3f, -1, "cats30.gguf");
    sf_context *c = context(other, 8);
    assert_int_not_equal(sf_context_use_sparse(c, side), SF_OK);
    assert_non_null(strstr(sf_last_error(), "another model"));
    assert_false(sf_context_has_sparse(c));
    /* a model file is not a side-car */
    assert_int_not_equal(sf_context_use_sparse(c, path_in("tiny-q8_0-6.gguf")), SF_OK);
    assert_non_null(strstr(sf_last_error(), "not a sparsity side-car"));
    /* truncated */
    size_t len;
    char *bytes = sf_test_read_file(side, &len);
    assert_non_null(bytes);
    const char *cut = path_in("cut.gguf");
    FILE *f = fopen(cut, "wb");
    fwrite(bytes, 1, len / 2, f);
    fclose(f);
    free(bytes);
    sf_context *cm = context(m, 8);
    assert_int_not_equal(sf_context_use_sparse(cm, cut), SF_OK);
    /* sparsity outside [0, 1), unknown method: errors, nothing written */
    sf_sparsify_params p = sf_sparsify_default_params();
    p.sparsity = 1.0f;
    const char *none = path_in("none.gguf");
    assert_int_equal(sf_sparsify(m, g_calib, N_CALIB, &p, none, NULL), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "outside [0, 1)"));
    p.sparsity = -0.1f;
    assert_int_equal(sf_sparsify(m, g_calib, N_CALIB, &p, none, NULL), SF_ERR_ARG);
    /* a predictor rank that is no multiple of 32, or above n_embd */
    p.sparsity = 0.5f;
    p.method = SF_SPARSE_PREDICTOR;
    p.rank = 48;
    assert_int_equal(sf_sparsify(m, g_calib, N_CALIB, &p, none, NULL), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "predictor rank 48"));
    p.rank = m->n_embd + 32;
    assert_int_equal(sf_sparsify(m, g_calib, N_CALIB, &p, none, NULL), SF_ERR_ARG);
    /* attention sparsity is TEAL's */
    p.method = SF_SPARSE_CATS;
    p.attention = true;
    assert_int_equal(sf_sparsify(m, g_calib, N_CALIB, &p, none, NULL), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "attention sparsity is built for teal"));
    assert_int_not_equal(access(none, F_OK), 0);
    sf_sparse_method meth;
    assert_int_equal(sf_sparse_method_parse("dejavu", &meth), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "unknown sparsity method"));
    sf_context_free(c);
    sf_context_free(cm);
    sf_model_free(m);
    sf_model_free(other);
}

/* ---- auto:KLD: the reported KLD is the side-car's, within the budget */

/* mean KL(dense || sparse) over the scored halves of the first n_chunks
 * calibration chunks, in double, as sparsify lays them out */
static double side_kld(sf_model *m, const char *side, int n_ctx, int n_chunks, double *level_mean) {
    const bool bos = sf_model_add_bos(m) && sf_token_bos(m) >= 0;
    const int per = bos ? n_ctx - 1 : n_ctx, first = n_ctx / 2, V = m->n_vocab;
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = cp.n_batch = n_ctx;
    cp.n_threads = 2;
    sf_context *d = sf_context_new(m, &cp), *s = sf_context_new(m, &cp);
    assert_non_null(d);
    assert_non_null(s);
    assert_int_equal(sf_context_use_sparse(s, side), SF_OK);
    sf_context_sparse_policy(s, 1, first);
    double sum = 0, lv = 0;
    int n = 0, nl = 0;
    for (int l = 0; l < m->n_layer; l++)
        for (int k = SF_SITE_FFN_IN; k <= SF_SITE_FFN_HIDDEN; k++, nl++) lv += s->sparse->layers[l].site[k].level;
    *level_mean = lv / nl;
    int32_t *buf = malloc(sizeof(int32_t) * n_ctx);
    for (int ch = 0; ch < n_chunks; ch++) {
        int k = 0;
        if (bos) buf[k++] = sf_token_bos(m);
        memcpy(buf + k, g_calib + (size_t)ch * per, sizeof(int32_t) * per);
        assert_int_equal(sf_kv_truncate(d, 0), SF_OK);
        assert_int_equal(sf_kv_truncate(s, 0), SF_OK);
        assert_int_equal(sf_decode(d, buf, n_ctx, true), SF_OK);
        assert_int_equal(sf_decode(s, buf, n_ctx, true), SF_OK);
        for (int t = first; t < n_ctx - 1; t++, n++) {
            const float *p = sf_get_logits(d, t), *q = sf_get_logits(s, t);
            double mp = p[0], mq = q[0], zp = 0, zq = 0, kl = 0;
            for (int v = 1; v < V; v++) mp = p[v] > mp ? p[v] : mp, mq = q[v] > mq ? q[v] : mq;
            for (int v = 0; v < V; v++) zp += exp(p[v] - mp), zq += exp(q[v] - mq);
            for (int v = 0; v < V; v++) {
                const double lp = p[v] - mp - log(zp), lq = q[v] - mq - log(zq);
                kl += exp(lp) * (lp - lq);
            }
            sum += kl;
        }
    }
    free(buf);
    sf_context_free(d);
    sf_context_free(s);
    return sum / n;
}

static void test_auto_kld(void **state) {
    (void)state;
    sf_model *m = tiny("f32", 8);
    assert_non_null(m);
    sf_sparsify_params p = sf_sparsify_default_params();
    p.method = SF_SPARSE_TEAL;
    p.n_ctx = 128;
    p.n_tokens = N_CALIB;
    p.n_threads = 2;
    p.auto_chunks = 2;
    const float budgets[2] = {0.02f, 1e-9f};
    for (int i = 0; i < 2; i++) {
        p.kld_budget = budgets[i];
        const char *side = path_in(i ? "auto-none.gguf" : "auto.gguf");
        sf_sparsify_result r;
        assert_int_equal(sf_sparsify(m, g_calib, N_CALIB, &p, side, &r), SF_OK);
        double level;
        const double kld = side_kld(m, side, p.n_ctx, p.auto_chunks, &level);
        print_message("auto:%g: level %.3f (side-car %.3f), KLD %.6f reported, %.6f recomputed\n", budgets[i],
                      r.level_mean, level, r.kld, kld);
        assert_true(r.kld <= budgets[i]);
        assert_true(fabs(r.level_mean - level) < 1e-6);
        if (i == 0) {
            assert_true(r.level_mean > 0.1); /* something sparse fits */
            assert_true(fabs(kld - r.kld) <= 0.02 * r.kld + 1e-5); /* the base rows are 16-bit */
        } else {
            assert_true(r.level_mean == 0 && r.kld == 0 && kld < 1e-12); /* dense */
        }
    }
    /* not for the predictor; a budget below 0 */
    p.method = SF_SPARSE_PREDICTOR;
    p.kld_budget = 0.1f;
    const char *none = path_in("auto-bad.gguf");
    assert_int_equal(sf_sparsify(m, g_calib, N_CALIB, &p, none, NULL), SF_ERR_UNSUPPORTED);
    assert_non_null(strstr(sf_last_error(), "not the predictor"));
    p.method = SF_SPARSE_CATS;
    p.kld_budget = -1;
    assert_int_equal(sf_sparsify(m, g_calib, N_CALIB, &p, none, NULL), SF_ERR_ARG);
    assert_int_not_equal(access(none, F_OK), 0);
    sf_model_free(m);
}

/* ---- --correct-down: in-sample error none >= mean >= ls */

typedef struct {
    const sf_model *m;
    const sf_sparse *sp[3]; /* none, mean, ls */
    double err[3];
} corr_check;

static void corr_on_ffn(void *user, int layer, const int *row_token, int T, const float *xn, const float *g,
                        const float *h, int n_ff) {
    (void)row_token;
    (void)xn;
    corr_check *k = user;
    const int E = k->m->n_embd;
    const float *wd = k->m->layers[layer].ffn_down->data; /* f32 [E][n_ff] */
    double *z = malloc(sizeof(double) * n_ff);
    for (int t = 0; t < T; t++) {
        for (int v = 0; v < 3; v++) {
            const sf_sparse_layer *S = &k->sp[v]->layers[layer];
            assert_true(S->site[SF_SITE_FFN_HIDDEN].on);
            assert_int_equal(S->down_t->type, SF_TYPE_F32);
            const float *wt = S->down_t->data; /* [n_ff][E] */
            for (int i = 0; i < n_ff; i++) {
                const float gi = g[(size_t)t * n_ff + i];
                const bool kept = fabs(gate_act_ref(gi, k->m->ffn_act)) > S->site[SF_SITE_FFN_HIDDEN].threshold;
                z[i] = kept ? h[(size_t)t * n_ff + i] : 0.0;
            }
            for (int e = 0; e < E; e++) {
                double ref = 0, got = S->down_b ? S->down_b[e] : 0.0;
                for (int i = 0; i < n_ff; i++) {
                    ref += (double)wd[(size_t)e * n_ff + i] * h[(size_t)t * n_ff + i];
                    got += (double)wt[(size_t)i * E + e] * z[i];
                }
                k->err[v] += (ref - got) * (ref - got);
            }
        }
    }
    free(z);
}

static void test_correct_down(void **state) {
    (void)state;
    sf_model *m = tiny("f32", 9);
    assert_non_null(m);
    const char *names[3] = {"corr-none.gguf", "corr-mean.gguf", "corr-ls.gguf"};
    sf_context *cs[3];
    corr_check k = {.m = m};
    for (int v = 0; v < 3; v++) {
        sf_sparsify_params p = sf_sparsify_default_params();
        p.method = SF_SPARSE_CATS;
        p.sparsity = 0.5f;
        p.n_ctx = 128;
        p.n_tokens = N_CALIB;
        p.n_threads = 2;
        p.correct_down = (sf_sparse_correction)v;
        assert_int_equal(sf_sparsify(m, g_calib, N_CALIB, &p, path_in(names[v]), NULL), SF_OK);
        cs[v] = context(m, 8);
        assert_int_equal(sf_context_use_sparse(cs[v], path_in(names[v])), SF_OK);
        k.sp[v] = cs[v]->sparse;
        assert_true((k.sp[v]->layers[0].down_b != NULL) == (v > 0));
    }
    /* the dense model over the calibration chunks, as sparsify reads them */
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = cp.n_batch = 128;
    cp.n_threads = 2;
    sf_context *d = sf_context_new(m, &cp);
    const bool bos = sf_model_add_bos(m) && sf_token_bos(m) >= 0;
    const int per = bos ? 127 : 128;
    int32_t buf[128];
    const sf_run_plan plan = {.on_ffn = corr_on_ffn, .user = &k};
    for (int ch = 0; ch < N_CALIB / per; ch++) {
        int n = 0;
        if (bos) buf[n++] = sf_token_bos(m);
        memcpy(buf + n, g_calib + (size_t)ch * per, sizeof(int32_t) * per);
        assert_int_equal(sf_forward(d, buf, 128, 128, &plan), SF_OK);
    }
    print_message("FFN output error on the calibration text: none %.6g, mean %.6g, ls %.6g\n", k.err[0], k.err[1],
                  k.err[2]);
    assert_true(k.err[1] <= k.err[0] * (1 + 1e-6));
    assert_true(k.err[2] < k.err[1]);
    sf_context_free(d);
    for (int v = 0; v < 3; v++) sf_context_free(cs[v]);
    /* not for the predictor */
    sf_sparsify_params p = sf_sparsify_default_params();
    p.method = SF_SPARSE_PREDICTOR;
    p.correct_down = SF_CORRECT_LS;
    assert_int_equal(sf_sparsify(m, g_calib, N_CALIB, &p, path_in("corr-bad.gguf"), NULL), SF_ERR_UNSUPPORTED);
    assert_int_not_equal(access(path_in("corr-bad.gguf"), F_OK), 0);
    sf_model_free(m);
}

/* ---- the union effect */

static void test_union(void **state) {
    (void)state;
    sf_model *m = tiny("q8_0", 3);
    assert_non_null(m);
    const char *side = sparsify(m, SF_SPARSE_TEAL, 0.4f, -1, "teal40-union.gguf");
    sf_context *c = context(m, 64);
    const int batches[] = {1, 2, 4, 16, 64};
    double in[5], hid[5];
    assert_int_not_equal(sf_sparse_union(c, g_calib, 64, batches, 5, in, hid), SF_OK); /* no side-car */
    assert_int_equal(sf_context_use_sparse(c, side), SF_OK);
    assert_int_equal(sf_sparse_union(c, g_calib, 64, batches, 5, in, hid), SF_OK);
    for (int k = 0; k < 5; k++) {
        print_message("batch %d: inputs %.3f, neurons %.3f\n", batches[k], in[k], hid[k]);
        assert_true(in[k] > 0 && in[k] <= 1 && hid[k] > 0 && hid[k] <= 1);
        if (k > 0) assert_true(in[k] >= in[k - 1] && hid[k] >= hid[k - 1]);
    }
    assert_true(fabs(in[0] - 0.6) < 0.05 && fabs(hid[0] - 0.6) < 0.05);
    assert_true(hid[4] > hid[0] + 0.1);
    assert_int_equal(sf_context_n_past(c), 0); /* nothing kept */
    const int bad = 0;
    assert_int_equal(sf_sparse_union(c, g_calib, 64, &bad, 1, in, hid), SF_ERR_ARG);
    assert_int_equal(sf_sparse_union(c, g_calib, 65, batches, 1, in, hid), SF_ERR_ARG);
    sf_context_free(c);
    sf_model_free(m);
}

/* ---- the differential weight cache against direct reads */

static void test_weight_cache(void **state) {
    (void)state;
    sf_model *m = tiny("f32", 4);
    assert_non_null(m);
    const sf_sparse_method methods[2] = {SF_SPARSE_TEAL, SF_SPARSE_CATS};
    for (int i = 0; i < 2; i++) {
        const char *side = sparsify(m, methods[i], 0.5f, -1, i ? "cats-cache.gguf" : "teal-cache.gguf");
        sf_context *a = context(m, 32), *b = context(m, 32);
        assert_int_equal(sf_context_use_sparse(a, side), SF_OK);
        setenv("SF_SPARSE_CACHE", "diff", 1);
        assert_int_equal(sf_context_use_sparse(b, side), SF_OK);
        unsetenv("SF_SPARSE_CACHE");
        assert_null(a->sp_cache);
        assert_non_null(b->sp_cache);
        float *la = decode_logits(a), *lb = decode_logits(b);
        const int V = m->n_vocab;
        double *ref = malloc(sizeof(double) * V);
        for (int t = 1; t <= N_DEC; t++) { /* the decode steps run sparse */
            for (int v = 0; v < V; v++) ref[v] = la[(size_t)t * V + v];
            const double e = nmse(lb + (size_t)t * V, ref, V);
            print_message("%s step %d: cache vs direct NMSE %.2e\n", sf_sparse_method_name(methods[i]), t, e);
            /* the rows are summed in slot order: a channel at its threshold may flip later on */
            assert_true(e <= 1e-6);
        }
        sf_sparse_stats sa, sb;
        sf_context_sparse_stats(a, &sa, false);
        sf_context_sparse_stats(b, &sb, false);
        assert_true(llabs(sa.hidden_active - sb.hidden_active) <= sa.hidden_total / 100);
        assert_true(sb.bytes > sa.bytes); /* the copies */
        free(ref);
        free(la);
        free(lb);
        sf_context_free(a);
        sf_context_free(b);
    }
    sf_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_zero_is_dense),
        cmocka_unit_test(test_ffn_token_teal_f32),
        cmocka_unit_test(test_ffn_token_cats_q8_0),
        cmocka_unit_test(test_ffn_token_wina_q4_k),
        cmocka_unit_test(test_ffn_token_teal_q4_0_as_q8_0),
        cmocka_unit_test(test_ffn_token_predictor_q4_0),
        cmocka_unit_test(test_predictor_fit),
        cmocka_unit_test(test_calibrated_density),
        cmocka_unit_test(test_batch_policy_matches_decode),
        cmocka_unit_test(test_attention_token),
        cmocka_unit_test(test_auto_kld),
        cmocka_unit_test(test_weight_cache),
        cmocka_unit_test(test_union),
        cmocka_unit_test(test_correct_down),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
