/* sparsefuse perplexity: llama.cpp-style perplexity and KL divergence. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "generate.h"
#include "sparsefuse_eval.h"
#include "sparsefuse_sparsity.h"

typedef struct {
    bool kld;          /* comparing against a base: table rows instead of [i]ppl */
    bool progress;     /* stdout is not a terminal: progress lines on stderr */
    double t_start, t_last;
} ppl_ui;

static void on_chunk(int chunk, int n_chunks, double seconds, const sf_ppl_result *r, void *user) {
    ppl_ui *ui = user;
    double now = app_now();
    if (chunk == 1)
        fprintf(stderr, "perplexity: %.2f seconds per pass - ETA %.2f minutes\n", seconds,
                seconds * n_chunks / 60.0);
    if (ui->kld) {
        if (chunk == 1)
            printf("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence"
                   "              Δp RMS            Same top p\n");
        printf("%4d    %9.4f ± %9.4f    %10.5f ± %10.5f    %10.5f ± %10.5f    %6.3f ± %6.3f %%    %6.3f ± %6.3f %%\n",
               chunk, r->ppl, r->ppl_err, r->ln_ppl_ratio, r->ln_ppl_ratio_err, r->kld, r->kld_err,
               100.0 * r->dp_rms, 100.0 * r->dp_rms_err, 100.0 * r->same_top, 100.0 * r->same_top_err);
    } else {
        printf("[%d]%.4f,", chunk, r->ppl);
    }
    fflush(stdout);
    if (ui->progress && (now - ui->t_last >= 2.0 || chunk == n_chunks)) {
        double per = (now - ui->t_start) / chunk;
        fprintf(stderr, "perplexity: chunk %d/%d, ETA %.1f min\n", chunk, n_chunks,
                per * (n_chunks - chunk) / 60.0);
        ui->t_last = now;
    }
}

static void print_kld_summary(const sf_ppl_result *r) {
    printf("\n====== Perplexity statistics ======\n");
    printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", r->ppl, r->ppl_err);
    printf("Mean PPL(base)                : %10.6f ± %10.6f\n", r->ppl_base, r->ppl_base_err);
    printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * r->ppl_cor);
    printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", r->ln_ppl_ratio, r->ln_ppl_ratio_err);
    printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", r->ppl_ratio, r->ppl_ratio_err);
    printf("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", r->ppl_diff, r->ppl_diff_err);
    printf("\n====== KL divergence statistics ======\n");
    printf("Mean    KLD: %10.6f ± %10.6f\n", r->kld, r->kld_err);
    printf("Maximum KLD: %10.6f\n", r->kld_max);
    printf("99.0%%   KLD: %10.6f\n", r->kld_p99);
    printf("90.0%%   KLD: %10.6f\n", r->kld_p90);
    printf("Median  KLD: %10.6f\n", r->kld_median);
    printf("\n====== Token probability statistics ======\n");
    printf("RMS Δp    : %6.3f ± %5.3f %%\n", 100.0 * r->dp_rms, 100.0 * r->dp_rms_err);
    printf("Same top p: %6.3f ± %5.3f %%\n", 100.0 * r->same_top, 100.0 * r->same_top_err);
}

int cmd_perplexity(int argc, char **argv) {
    app_model_opts mo = {0};
    const char *file = NULL, *kld_save = NULL, *kld_base = NULL;
    int n_ctx = 0, n_chunks = 0;
    const arg_spec args[] = {
        APP_MODEL_ARGS(&mo),
        APP_ARG_SPARSE(&mo),
        APP_ARG_ROUTES(&mo),
        {"-f", "--file", ARG_STR, &file, "FILE", "text to evaluate, tokenized as one stream", 0, 0, NULL},
        {"-c", "--ctx-size", ARG_INT, &n_ctx, "N",
         "chunk length in tokens (default: 512, or the --kld base's)", 4, 1 << 24, NULL},
        {NULL, "--chunks", ARG_INT, &n_chunks, "N", "evaluate at most N chunks (default: all)", 1, 1e9, NULL},
        {NULL, "--kld-save", ARG_STR, &kld_save, "FILE",
         "save the scored tokens' log-probabilities (llama.cpp --kl-divergence-base format)", 0, 0, NULL},
        {NULL, "--kld", ARG_STR, &kld_base, "FILE",
         "compare with log-probabilities saved by --kld-save: KL divergence, same top token, PPL "
         "ratio (-f optional; if given its tokens must match)",
         0, 0, NULL},
    };
    const cmd_spec cmd = {
        "perplexity", "[options] -f FILE",
        "Perplexity as llama.cpp's llama-perplexity computes it: the text is cut into\n"
        "chunks of -c tokens, each evaluated from an empty cache with BOS first (when the\n"
        "model adds BOS), scoring the second half of each chunk. stdout gets the running\n"
        "[chunk]PPL values and 'Final estimate: PPL = X +/- Y'; timing and progress go to\n"
        "stderr. At least two chunks of text are needed.",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!app_route_opts_ok(&cmd, &mo)) return APP_EXIT_USAGE;
    if (kld_save && kld_base) return args_error(&cmd, "--kld-save and --kld cannot be combined");
    if (!file && !kld_base) return args_error(&cmd, "no text: give -f FILE");
    if (file && !app_readable(&cmd, "text file", file)) return APP_EXIT_USAGE;
    if (kld_base && !app_readable(&cmd, "KL-divergence base", kld_base)) return APP_EXIT_USAGE;
    const char *path = app_model_path(&cmd, mo.model);
    if (!path) return APP_EXIT_USAGE;

    int base_ctx = 0, base_vocab = 0, base_chunks = 0;
    if (kld_base && sf_kld_base_info(kld_base, &base_ctx, &base_vocab, &base_chunks) != SF_OK)
        return app_fail(&cmd, "reading the KL-divergence base");
    if (kld_base && n_ctx && n_ctx != base_ctx)
        return args_error(&cmd, "%s was saved with -c %d, not %d", kld_base, base_ctx, n_ctx);
    if (!n_ctx) n_ctx = kld_base ? base_ctx : 512;

    size_t len = 0;
    char *text = file ? app_read_file(&cmd, file, &len, false) : NULL;
    if (file && !text) return APP_EXIT_RUNTIME;
    rc = APP_EXIT_RUNTIME;
    int32_t *toks = NULL;
    int n_tok = 0;
    sf_context *c = NULL;
    sf_model *m = app_load_model(&cmd, &mo, path);
    if (!m) goto done;
    if (text) {
        toks = app_tokenize(&cmd, m, text, len, true, false, &n_tok);
        if (!toks) goto done;
    }
    c = app_new_context(&cmd, m, &mo, n_ctx, false);
    if (!c) goto done;
    /* sparse on the scored second half of each chunk, dense on its context (as decoding would be) */
    if (mo.sparse) sf_context_sparse_policy(c, 1, n_ctx / 2);
    if (toks)
        fprintf(stderr, "perplexity: %d tokens, chunks of %d (batch %d)\n", n_tok, n_ctx,
                mo.batch > 0 ? mo.batch : 512);
    if (kld_base)
        fprintf(stderr, "perplexity: comparing with %s (%d chunks of %d)\n", kld_base, base_chunks, base_ctx);

    ppl_ui ui = {.kld = kld_base != NULL, .progress = !isatty(STDOUT_FILENO), .t_start = app_now()};
    ui.t_last = ui.t_start;
    sf_ppl_params pp = sf_ppl_default_params();
    pp.n_ctx = n_ctx;
    pp.n_chunks = n_chunks;
    pp.n_batch = mo.batch;
    pp.kld_save = kld_save;
    pp.kld_base = kld_base;
    pp.on_chunk = on_chunk;
    pp.user = &ui;
    sf_ppl_result res;
    int erc = sf_eval_perplexity(m, c, toks, n_tok, &pp, &res);
    if (!ui.kld && res.n_chunks > 0) printf("\n");
    if (erc != SF_OK) {
        fflush(stdout);
        app_fail(&cmd, "perplexity");
        goto done;
    }
    if (ui.kld) print_kld_summary(&res);
    printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", res.ppl, res.ppl_err);
    if (mo.routes) printf("Block executions run: %.2f %%\n", 100.0 * sf_context_route_fraction(c, true));
    fflush(stdout);
    fprintf(stderr, "perplexity: %d chunks, %lld tokens scored\n", res.n_chunks, (long long)res.n_scored);
    if (kld_save) fprintf(stderr, "perplexity: saved log-probabilities to %s\n", kld_save);
    rc = APP_EXIT_OK;
done:
    free(toks);
    free(text);
    sf_context_free(c);
    sf_model_free(m);
    return rc;
}
