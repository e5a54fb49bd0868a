/* Evaluation library: log-prob quantization and KL sums, the base file,
 * and (on the real model) perplexity, KL divergence, HellaSwag and bench
 * checked against direct computations through the public API. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/eval_internal.h"
#include "sparsefuse_eval.h"
#include "testutil.h"

static const char k_text[] =
    "The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest "
    "structure in Paris. Its base is square, measuring 125 metres on each side. During its "
    "construction, the Eiffel Tower surpassed the Washington Monument to become the tallest "
    "man-made structure in the world, a title it held for 41 years until the Chrysler Building in "
    "New York City was finished in 1930. It was the first structure to reach a height of 300 "
    "metres. Due to the addition of a broadcasting aerial at the top of the tower in 1957, it is "
    "now taller than the Chrysler Building by 5.2 metres. Excluding transmitters, the Eiffel Tower "
    "is the second tallest free-standing structure in France after the Millau Viaduct. The river "
    "flows slowly past old stone bridges, and in the evening the lights along the banks come on "
    "one after another while boats carry visitors up and down the water.";

/* Exact -log softmax(l)[t] in double. */
static double ref_nll(const float *l, int n, int t) {
    double mx = l[0];
    for (int i = 1; i < n; i++) if (l[i] > mx) mx = l[i];
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)l[i] - mx);
    return mx + log(s) - l[t];
}

static void random_logits(float *l, int n, uint64_t *st, float scale) {
    for (int i = 0; i < n; i++) l[i] = scale * sf_test_rand_f32(st);
}

/* ------------------------------------------------------------- no model */

static void test_nll_and_quantize(void **state) {
    (void)state;
    enum { V = 1001 }; /* odd: exercises the padding */
    float l[V];
    uint16_t row[2 * ((V + 1) / 2) + 4];
    assert_int_equal(sf_kld_row_len(V), sizeof row / sizeof row[0]);
    uint64_t st = 3;
    for (int it = 0; it < 20; it++) {
        random_logits(l, V, &st, 8.0f);
        int tok = (int)(sf_test_rand_u64(&st) % V);
        double want = ref_nll(l, V, tok);
        assert_true(fabs(sf_eval_nll(l, V, tok) - want) < 1e-5);
        assert_true(fabs(sf_kld_quantize(l, V, tok, row) - want) < 1e-4);
        /* decoded log-probs are within half a quantization step (or clamped at -16) */
        float head[2];
        memcpy(head, row, sizeof head);
        double lse = want + l[tok]; /* max + log sum exp */
        for (int i = 0; i < V; i++) {
            double lp = (double)head[0] * row[4 + i] + head[1];
            double exact = l[i] - lse;
            if (exact > head[1] + 1e-3) assert_true(fabs(lp - exact) <= 0.5 * head[0] + 1e-4);
            else assert_true(lp <= exact + 0.5 * head[0] + 1e-4 || lp == head[1]);
        }
        assert_int_equal(row[4 + V], 0);
    }
}

static void test_kld_sums(void **state) {
    (void)state;
    enum { V = 500 };
    float base[V], q[V];
    uint16_t row[2 * ((V + 1) / 2) + 4];
    uint64_t st = 11;
    /* identical distributions: KL ~ 0, same top token */
    sf_kld_acc a = {0};
    for (int it = 0; it < 50; it++) {
        random_logits(base, V, &st, 6.0f);
        sf_kld_quantize(base, V, 7, row);
        double k = sf_kld_accumulate(&a, base, V, row, 7);
        assert_true(fabs(k) < 1e-3);
    }
    assert_int_equal(a.count, 50);
    assert_int_equal(a.n_same_top, 50);
    sf_ppl_result r;
    memset(&r, 0, sizeof r);
    sf_kld_finish(&a, &r);
    assert_true(r.has_kld);
    assert_true(fabs(r.ppl_ratio - 1.0) < 1e-3);
    assert_true(r.same_top == 1.0);

    /* perturbed: KL matches the exact value in double */
    sf_kld_acc b = {0};
    for (int it = 0; it < 20; it++) {
        random_logits(base, V, &st, 6.0f);
        for (int i = 0; i < V; i++) q[i] = base[i] + 0.5f * sf_test_rand_f32(&st);
        sf_kld_quantize(base, V, 3, row);
        double k = sf_kld_accumulate(&b, q, V, row, 3);
        double exact = 0, mb = base[0], mq = q[0], sb = 0, sq = 0;
        for (int i = 1; i < V; i++) {
            if (base[i] > mb) mb = base[i];
            if (q[i] > mq) mq = q[i];
        }
        for (int i = 0; i < V; i++) {
            sb += exp(base[i] - mb);
            sq += exp(q[i] - mq);
        }
        for (int i = 0; i < V; i++) {
            double lpb = base[i] - mb - log(sb), lpq = q[i] - mq - log(sq);
            exact += exp(lpb) * (lpb - lpq);
        }
        assert_true(exact > 0);
        assert_true(fabs(k - exact) < 2e-3 + 0.02 * exact);
    }
}

static void tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "/tmp/sf_test_eval_%d_%s", (int)getpid(), name);
}

/* No "<name>.tmp.*" file is left beside path. */
static void assert_no_temp_left(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    size_t n = strlen(prefix);
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, n) == 0 && strstr(e->d_name, ".tmp."))
            fail_msg("temporary file left: %s", e->d_name);
    closedir(d);
}

static void test_base_file(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "base.kld");
    enum { NCTX = 8, NV = 5, NCH = 2, NS = NCTX - 1 - NCTX / 2 };
    int32_t toks[NCH * NCTX];
    for (int i = 0; i < NCH * NCTX; i++) toks[i] = i % NV;
    size_t rl = sf_kld_row_len(NV);
    uint16_t rows[NS * 10];
    for (size_t i = 0; i < NS * rl; i++) rows[i] = (uint16_t)i;

    sf_kld_writer w;
    assert_int_equal(sf_kld_writer_open(&w, path, NCTX, NV, NCH, toks), SF_OK);
    assert_int_equal(sf_kld_writer_put(&w, rows, NS * rl), SF_OK);
    assert_int_equal(access(path, F_OK), -1); /* nothing at the final name yet */
    assert_int_equal(sf_kld_writer_put(&w, rows, NS * rl), SF_OK);
    assert_int_equal(sf_kld_writer_commit(&w), SF_OK);
    assert_no_temp_left("/tmp", "sf_test_eval_");

    int c, v, k;
    assert_int_equal(sf_kld_base_info(path, &c, &v, &k), SF_OK);
    assert_int_equal(c, NCTX);
    assert_int_equal(v, NV);
    assert_int_equal(k, NCH);
    sf_kld_reader r;
    assert_int_equal(sf_kld_reader_open(&r, path), SF_OK);
    assert_memory_equal(r.tokens, toks, sizeof toks);
    uint16_t back[NS * 10];
    assert_int_equal(sf_kld_reader_get(&r, back, NS * rl), SF_OK);
    assert_memory_equal(back, rows, NS * rl * sizeof *rows);
    sf_kld_reader_close(&r);

    /* truncated: named as such */
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(sf_kld_base_info(path, &c, &v, &k), SF_ERR_FORMAT);
    assert_non_null(strstr(sf_last_error(), "truncated"));
    /* not a base file */
    FILE *f = fopen(path, "wb");
    fputs("GGUF not a base file at all", f);
    fclose(f);
    assert_int_equal(sf_kld_base_info(path, &c, &v, &k), SF_ERR_FORMAT);
    assert_non_null(strstr(sf_last_error(), "magic"));
    unlink(path);
    assert_int_equal(sf_kld_base_info(path, &c, &v, &k), SF_ERR_IO);

    /* an aborted write leaves nothing */
    assert_int_equal(sf_kld_writer_open(&w, path, NCTX, NV, NCH, toks), SF_OK);
    sf_kld_writer_abort(&w);
    assert_int_equal(access(path, F_OK), -1);
    assert_no_temp_left("/tmp", "sf_test_eval_");
    /* an unwritable place is an I/O error */
    assert_int_equal(sf_kld_writer_open(&w, "/nonexistent-dir/x.kld", NCTX, NV, NCH, toks), SF_ERR_IO);
}

/* ------------------------------------------------------------ the model */

typedef struct {
    sf_model *m;
    int n_vocab;
} model_fixture;

static int setup_model(void **state) {
    const char *path = sf_test_model_path(SF_TEST_SMOLLM);
    model_fixture *f = calloc(1, sizeof *f);
    if (path) {
        f->m = sf_model_load(path);
        if (!f->m) {
            fprintf(stderr, "cannot load %s: %s\n", path, sf_last_error());
            free(f);
            return -1;
        }
        sf_model_info info;
        sf_model_get_info(f->m, &info);
        f->n_vocab = info.n_vocab;
    }
    *state = f;
    return 0;
}

static int teardown_model(void **state) {
    model_fixture *f = *state;
    sf_model_free(f->m);
    free(f);
    return 0;
}

static int32_t *tokenize(sf_model *m, const char *text, int *n) {
    int cap = (int)strlen(text) + 8;
    int32_t *t = malloc((size_t)cap * sizeof *t);
    *n = sf_tokenize(m, text, strlen(text), t, cap, true, false);
    assert_true(*n > 0);
    return t;
}

static sf_context *new_ctx(sf_model *m, int n_ctx) {
    sf_context_params p = sf_context_default_params();
    p.n_ctx = n_ctx;
    p.n_batch = n_ctx;
    sf_context *c = sf_context_new(m, &p);
    if (!c) fail_msg("context: %s", sf_last_error());
    return c;
}

/* PPL by hand: every chunk decoded in two halves with all logits. (Not in one
 * batch: batches of >= 64 tokens take ggml's tiled attention path, smaller
 * ones its vector path, as llama.cpp does, and the two round differently.) */
static double manual_ppl(sf_model *m, sf_context *c, const int32_t *toks, int n_ctx, int n_chunk, int n_vocab) {
    double nll = 0;
    int count = 0;
    int32_t *buf = malloc((size_t)n_ctx * sizeof *buf);
    for (int ch = 0; ch < n_chunk; ch++) {
        memcpy(buf, toks + ch * n_ctx, (size_t)n_ctx * sizeof *buf);
        if (sf_model_add_bos(m)) buf[0] = sf_token_bos(m);
        assert_int_equal(sf_kv_truncate(c, 0), SF_OK);
        assert_int_equal(sf_decode(c, buf, n_ctx / 2, true), SF_OK);
        assert_int_equal(sf_decode(c, buf + n_ctx / 2, n_ctx - n_ctx / 2, true), SF_OK);
        for (int j = n_ctx / 2; j <= n_ctx - 2; j++) {
            nll += ref_nll(sf_get_logits(c, j - n_ctx / 2), n_vocab, toks[ch * n_ctx + j + 1]);
            count++;
        }
    }
    free(buf);
    return exp(nll / count);
}

static int g_chunks_seen;
static void count_chunks(int chunk, int n_chunks, double s, const sf_ppl_result *r, void *u) {
    (void)s;
    (void)u;
    assert_int_equal(chunk, ++g_chunks_seen);
    assert_int_equal(n_chunks, 2);
    assert_true(r->ppl > 1.0);
}

static void test_perplexity_matches_manual(void **state) {
    model_fixture *f = *state;
    if (!f->m) skip();
    enum { NCTX = 64 };
    int n;
    int32_t *toks = tokenize(f->m, k_text, &n);
    assert_true(n >= 2 * NCTX);
    sf_context *c = new_ctx(f->m, NCTX);
    sf_ppl_params p = sf_ppl_default_params();
    p.n_ctx = NCTX;
    p.n_chunks = 2;
    p.n_batch = 20; /* the scored half in several pieces */
    p.on_chunk = count_chunks;
    g_chunks_seen = 0;
    sf_ppl_result r;
    assert_int_equal(sf_eval_perplexity(f->m, c, toks, n, &p, &r), SF_OK);
    assert_int_equal(g_chunks_seen, 2);
    assert_int_equal(r.n_chunks, 2);
    assert_int_equal(r.n_scored, 2 * (NCTX - 1 - NCTX / 2));
    assert_false(r.has_kld);
    double want = manual_ppl(f->m, c, toks, NCTX, 2, f->n_vocab);
    print_message("ppl %.6f (manual %.6f) +/- %.4f\n", r.ppl, want, r.ppl_err);
    assert_true(fabs(r.ppl - want) < 1e-3 * want);
    assert_true(r.ppl_err > 0 && r.ppl_err < r.ppl);

    /* too little text, and a context too small */
    assert_int_equal(sf_eval_perplexity(f->m, c, toks, 2 * NCTX - 1, &p, &r), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "at least"));
    p.n_ctx = 2 * NCTX;
    assert_int_equal(sf_eval_perplexity(f->m, c, toks, n, &p, &r), SF_ERR_ARG);
    sf_context_free(c);
    free(toks);
}

static void test_kld_against_self(void **state) {
    model_fixture *f = *state;
    if (!f->m) skip();
    enum { NCTX = 32 };
    int n;
    int32_t *toks = tokenize(f->m, k_text, &n);
    sf_context *c = new_ctx(f->m, NCTX);
    char path[256];
    tmp_path(path, sizeof path, "self.kld");
    sf_ppl_params p = sf_ppl_default_params();
    p.n_ctx = NCTX;
    p.n_chunks = 3;
    p.kld_save = path;
    sf_ppl_result base, r;
    assert_int_equal(sf_eval_perplexity(f->m, c, toks, n, &p, &base), SF_OK);
    assert_no_temp_left("/tmp", "sf_test_eval_");
    int bc, bv, bk;
    assert_int_equal(sf_kld_base_info(path, &bc, &bv, &bk), SF_OK);
    assert_int_equal(bc, NCTX);
    assert_int_equal(bv, f->n_vocab);
    assert_int_equal(bk, 3);

    /* the same model against itself, tokens from the file */
    p.kld_save = NULL;
    p.kld_base = path;
    p.n_ctx = 0;
    assert_int_equal(sf_eval_perplexity(f->m, c, NULL, 0, &p, &r), SF_OK);
    assert_true(r.has_kld);
    assert_int_equal(r.n_chunks, 3);
    print_message("self: kld %.2e same top %.4f ratio %.6f\n", r.kld, r.same_top, r.ppl_ratio);
    assert_true(fabs(r.kld) < 1e-3);
    assert_true(r.same_top > 0.99);
    assert_true(fabs(r.ppl_ratio - 1.0) < 1e-2);
    assert_true(fabs(r.ppl - base.ppl) < 1e-3 * base.ppl);
    /* with the text: tokens must match */
    assert_int_equal(sf_eval_perplexity(f->m, c, toks, n, &p, &r), SF_OK);
    int32_t saved = toks[5];
    toks[5] = (toks[5] + 1) % f->n_vocab;
    assert_int_equal(sf_eval_perplexity(f->m, c, toks, n, &p, &r), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "differ"));
    toks[5] = saved;
    /* another n_ctx */
    p.n_ctx = 16;
    assert_int_equal(sf_eval_perplexity(f->m, c, toks, n, &p, &r), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "n_ctx"));
    /* saving and comparing at once */
    p.n_ctx = 0;
    p.kld_save = path;
    assert_int_equal(sf_eval_perplexity(f->m, c, toks, n, &p, &r), SF_ERR_ARG);
    unlink(path);
    sf_context_free(c);
    free(toks);
}

/* The four endings' scores the plain way: each full text decoded from an
 * empty cache (no KV reuse), mean log-prob of the tokens after the prefix
 * the four tokenizations share (at most all but the last token). */
static void manual_scores(sf_model *m, sf_context *c, int n_vocab, const char *const task[6], double score[4]) {
    int32_t *seq[4];
    int len[4];
    char text[2048];
    for (int s = 0; s < 4; s++) {
        snprintf(text, sizeof text, "%s %s", task[0], task[2 + s]);
        seq[s] = tokenize(m, text, &len[s]);
    }
    int min_len = len[0];
    for (int s = 1; s < 4; s++) if (len[s] < min_len) min_len = len[s];
    int cp = 0;
    while (cp < min_len - 1 && seq[0][cp] == seq[1][cp] && seq[0][cp] == seq[2][cp] && seq[0][cp] == seq[3][cp])
        cp++;
    for (int s = 0; s < 4; s++) {
        assert_int_equal(sf_kv_truncate(c, 0), SF_OK);
        assert_int_equal(sf_decode(c, seq[s], len[s], true), SF_OK);
        double sum = 0;
        for (int j = cp; j < len[s]; j++) sum -= ref_nll(sf_get_logits(c, j - 1), n_vocab, seq[s][j]);
        score[s] = sum / (len[s] - cp);
        free(seq[s]);
    }
}

static const char *k_tasks[4][6] = {
    {"Cooking: She cracks two eggs into a hot pan and", "1", "the pan flies to the moon and sings.",
     "waits for the whites to set before adding salt.", "the eggs become a small blue car.",
     "she reads the newspaper upside down in the rain."},
    {"Sports: The runner crouches at the starting line, hears the gun and", "0",
     "sprints down the track toward the finish.", "plants a tree in the middle of the lane.",
     "writes a letter to the referee's grandmother.", "turns into a cloud of purple smoke."},
    {"Gardening: He digs a small hole in the soil, places the seedling inside and", "3",
     "throws the shovel into the ocean.", "starts to bark at the neighbours.",
     "paints the hole bright orange.", "presses the earth gently around its roots."},
    {"Music: The pianist sits down at the piano, opens the score and", "2",
     "eats the keys one by one.", "drives the piano to the airport.",
     "begins to play the first movement.", "teaches the piano to swim."},
};

static char *tasks_text(int n_tasks, int bad_label_task) {
    size_t cap = 8192, len = 0;
    char *t = malloc(cap);
    t[0] = '\0';
    for (int i = 0; i < n_tasks; i++)
        for (int l = 0; l < 6; l++)
            len += (size_t)snprintf(t + len, cap - len, "%s\n",
                                    l == 1 && i == bad_label_task ? "x" : k_tasks[i % 4][l]);
    return t;
}

static int g_correct[8], g_tasks_seen;
static void record_task(const sf_hellaswag_result *r, void *u) {
    (void)u;
    g_correct[g_tasks_seen++] = r->n_correct;
    assert_int_equal(r->task, g_tasks_seen);
    assert_true(r->ci_lo <= r->acc_norm && r->acc_norm <= r->ci_hi);
}

static void test_hellaswag(void **state) {
    model_fixture *f = *state;
    if (!f->m) skip();
    sf_context *c = new_ctx(f->m, 128);
    char *text = tasks_text(4, -1);
    sf_hellaswag_params p = sf_hellaswag_default_params();
    p.in_order = true;
    p.on_task = record_task;
    p.n_batch = 4; /* endings in several pieces */
    g_tasks_seen = 0;
    sf_hellaswag_result r;
    assert_int_equal(sf_eval_hellaswag(f->m, c, text, strlen(text), &p, &r), SF_OK);
    assert_int_equal(r.task, 4);
    assert_int_equal(g_tasks_seen, 4);
    /* each task's verdict equals the argmax of independently computed scores */
    int correct = 0;
    for (int t = 0; t < 4; t++) {
        double sc[4];
        manual_scores(f->m, c, f->n_vocab, k_tasks[t], sc);
        int arg = 0;
        for (int s = 1; s < 4; s++) if (sc[s] > sc[arg]) arg = s;
        correct += arg == atoi(k_tasks[t][1]);
        assert_int_equal(g_correct[t], correct);
    }
    print_message("hellaswag: %d/4 correct\n", r.n_correct);
    assert_int_equal(r.n_correct, correct);
    free(text);

    /* llama.cpp's random pick from 3 tasks starts with the second
     * (mt19937(1) -> 1791095845 -> 1): a bad label there is hit first */
    text = tasks_text(3, 1);
    p.on_task = NULL;
    p.n_tasks = 1;
    p.in_order = false;
    assert_int_equal(sf_eval_hellaswag(f->m, c, text, strlen(text), &p, &r), SF_ERR_FORMAT);
    assert_non_null(strstr(sf_last_error(), "task 2"));
    p.in_order = true;
    assert_int_equal(sf_eval_hellaswag(f->m, c, text, strlen(text), &p, &r), SF_OK);
    assert_int_equal(r.task, 1);
    free(text);

    /* not a multiple of 6 lines */
    assert_int_equal(sf_eval_hellaswag(f->m, c, "a\nb\nc\n", 6, &p, &r), SF_ERR_FORMAT);
    assert_non_null(strstr(sf_last_error(), "multiple of 6"));
    /* a task longer than the context */
    sf_context *tiny = new_ctx(f->m, 8);
    text = tasks_text(1, -1);
    assert_int_equal(sf_eval_hellaswag(f->m, tiny, text, strlen(text), &p, &r), SF_ERR_RANGE);
    free(text);
    sf_context_free(tiny);
    sf_context_free(c);
}

static void test_bench(void **state) {
    model_fixture *f = *state;
    if (!f->m) skip();
    sf_bench_params p = sf_bench_default_params();
    assert_int_equal(p.n_prompt, 512);
    assert_int_equal(p.n_gen, 128);
    assert_int_equal(p.reps, 5);
    p.n_prompt = 16;
    p.n_gen = 4;
    p.reps = 2;
    sf_bench_result pp, tg;
    assert_int_equal(sf_eval_bench(f->m, &p, &pp, &tg), SF_OK);
    assert_int_equal(pp.n_tokens, 16);
    assert_int_equal(tg.n_tokens, 4);
    assert_int_equal(pp.reps, 2);
    assert_true(pp.tps_mean > 0 && tg.tps_mean > 0 && pp.tps_std >= 0);
    p.reps = 0;
    assert_int_equal(sf_eval_bench(f->m, &p, &pp, &tg), SF_ERR_ARG);
    p.reps = 1;
    p.n_gen = -1;
    assert_int_equal(sf_eval_bench(f->m, &p, &pp, &tg), SF_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_nll_and_quantize),
        cmocka_unit_test(test_kld_sums),
        cmocka_unit_test(test_base_file),
    };
    const struct CMUnitTest model[] = {
        cmocka_unit_test(test_perplexity_matches_manual),
        cmocka_unit_test(test_kld_against_self),
        cmocka_unit_test(test_hellaswag),
        cmocka_unit_test(test_bench),
    };
    int fails = cmocka_run_group_tests_name("eval_unit", unit, NULL, NULL);
    fails += cmocka_run_group_tests_name("eval_model", model, setup_model, teardown_model);
    return fails;
}
