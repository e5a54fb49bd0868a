/* bench --draft-skip: dense greedy tgN against self-speculative tgN on the
 * same real prompt (drafting needs real text, not bench's random tokens),
 * the two alternated in each repetition so both see the same machine load. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draft_cli.h"

/* Used without --draft-prompt: plain English prose. */
static const char default_prompt[] =
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined "
    "movable metal type, oil-based ink and a wooden screw press into a system that could produce books far "
    "faster than scribes. Within fifty years, printing shops had spread to more than two hundred cities across "
    "Europe, and the price of books fell sharply. This change had consequences that";

static int32_t argmax(const float *lg, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (lg[i] > lg[best]) best = i;
    return best;
}

typedef struct {
    int32_t *tok;
    int n, cap;
} collected;

static bool collect(int32_t tok, void *user) {
    collected *c = user;
    if (c->n < c->cap) c->tok[c->n++] = tok;
    return true;
}

/* n tokens of the one-token greedy loop after the prompt; seconds of the loop. */
static int dense_run(sf_context *c, int n_vocab, const int32_t *p, int np, int n, int32_t *out, double *sec) {
    int rc = sf_kv_truncate(c, 0);
    if (rc == SF_OK) rc = sf_decode(c, p, np, false);
    const double t0 = app_now();
    for (int i = 0; rc == SF_OK && i < n; i++) {
        out[i] = argmax(sf_get_logits(c, -1), n_vocab);
        if (i + 1 < n) rc = sf_decode(c, &out[i], 1, false);
    }
    *sec = app_now() - t0;
    return rc;
}

static int draft_run(sf_context *c, const sf_draft_params *dp, const int32_t *p, int np, int n, int32_t *out,
                     sf_draft_stats *st) {
    int rc = sf_kv_truncate(c, 0);
    if (rc == SF_OK) rc = sf_decode(c, p, np, false);
    collected col = {out, 0, n};
    if (rc == SF_OK) rc = sf_draft_generate(c, dp, n, collect, &col, st);
    return rc;
}

static void mean_std(const double *v, int n, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += v[i], s2 += v[i] * v[i];
    *mean = s / n;
    double var = n > 1 ? (s2 - s * s / n) / (n - 1) : 0.0;
    *sd = var > 0 ? sqrt(var) : 0.0;
}

int app_draft_bench(const cmd_spec *cmd, const app_model_opts *mo, const char *path, const app_draft_opts *o,
                    const char *prompt_file, int n_gen, int reps, int n_threads) {
    size_t len = sizeof default_prompt - 1;
    char *text = prompt_file ? app_read_file(cmd, prompt_file, &len, false) : NULL;
    if (prompt_file && !text) return APP_EXIT_RUNTIME;
    int rc = APP_EXIT_RUNTIME, np = 0;
    int32_t *p = NULL, *ref = NULL, *got = NULL;
    double *tps_d = NULL, *tps_s = NULL;
    bool *skip = NULL;
    sf_context *c = NULL;
    sf_model *m = app_load_model(cmd, mo, path);
    if (!m) goto done;
    sf_model_info info;
    sf_model_get_info(m, &info);
    skip = calloc((size_t)info.n_layer, sizeof *skip);
    ref = malloc(sizeof *ref * (size_t)n_gen);
    got = malloc(sizeof *got * (size_t)n_gen);
    tps_d = malloc(sizeof *tps_d * (size_t)reps);
    tps_s = malloc(sizeof *tps_s * (size_t)reps);
    if (!skip || !ref || !got || !tps_d || !tps_s) {
        fprintf(stderr, "sparsefuse %s: out of memory\n", cmd->name);
        goto done;
    }
    int lr = app_draft_layers(cmd, o, m, mo->threads, skip);
    if (lr >= 0) {
        rc = lr;
        goto done;
    }
    p = app_tokenize(cmd, m, text ? text : default_prompt, len, true, false, &np);
    if (!p) goto done;
    c = app_new_context(cmd, m, mo, np + n_gen + o->k + 2, false);
    if (!c) goto done;
    const sf_draft_params dp = {.k = o->k, .skip = skip, .ignore_eog = true};
    sf_draft_stats st, sum = {0};
    double sec;
    bool identical = true;
    /* a warm-up of each, then reps alternated */
    for (int r = -1; r < reps; r++) {
        if (dense_run(c, info.n_vocab, p, np, n_gen, ref, &sec) != SF_OK ||
            draft_run(c, &dp, p, np, n_gen, got, &st) != SF_OK) {
            rc = app_fail(cmd, "draft bench");
            goto done;
        }
        if (r < 0) continue;
        tps_d[r] = n_gen / (sec > 0 ? sec : 1e-9);
        tps_s[r] = n_gen / (st.seconds > 0 ? st.seconds : 1e-9);
        if (st.n_gen != n_gen || memcmp(ref, got, sizeof *ref * (size_t)n_gen)) identical = false;
        sum.drafted += st.drafted;
        sum.accepted += st.accepted;
        sum.verify_passes += st.verify_passes + st.dense_passes;
        sum.n_gen += st.n_gen;
    }
    double md, sd, ms, ss;
    mean_std(tps_d, reps, &md, &sd);
    mean_std(tps_s, reps, &ms, &ss);
    char list[1024], model[96];
    sf_draft_format_skip(skip, info.n_layer, list, sizeof list);
    snprintf(model, sizeof model, "%s %.0fM %s", info.arch, (double)info.n_params / 1e6, info.ftype);
    const int n_thr = n_threads > 0 ? n_threads : app_physical_cores();
    printf("| %-30s | %7s | %15s | %20s | %10s | %12s |\n", "model", "threads", "test", "t/s", "acceptance",
           "tokens/pass");
    printf("| ------------------------------ | ------: | --------------: | -------------------: | ---------: | "
           "-----------: |\n");
    char test[32], tps[48];
    snprintf(test, sizeof test, "tg%d", n_gen);
    snprintf(tps, sizeof tps, "%.2f ± %.2f", md, sd);
    printf("| %-30s | %7d | %15s | %21s | %10s | %12.2f |\n", model, n_thr, test, tps, "-", 1.0);
    snprintf(test, sizeof test, "tg%d+draft", n_gen);
    snprintf(tps, sizeof tps, "%.2f ± %.2f", ms, ss);
    char acc[32];
    snprintf(acc, sizeof acc, "%.1f %%", sum.drafted ? 100.0 * (double)sum.accepted / (double)sum.drafted : 0.0);
    printf("| %-30s | %7d | %15s | %21s | %10s | %12.2f |\n", model, n_thr, test, tps, acc,
           sum.verify_passes ? (double)sum.n_gen / (double)sum.verify_passes : 0.0);
    printf("\ndraft: --draft-skip %s --draft-k %d (%.2f of the weights per draft pass); prompt: %d tokens (%s); "
           "speedup %.2fx; greedy output %s\n",
           list, o->k, sf_draft_cost_fraction(m, skip), np, prompt_file ? prompt_file : "built-in", md > 0 ? ms / md : 0,
           identical ? "identical to dense" : "DIFFERS from dense");
    rc = identical ? APP_EXIT_OK : APP_EXIT_RUNTIME;
done:
    sf_context_free(c);
    sf_model_free(m);
    free(text);
    free(p);
    free(ref);
    free(got);
    free(tps_d);
    free(tps_s);
    free(skip);
    return rc;
}
