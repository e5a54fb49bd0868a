/* sparsefuse analyze: FFN Fusion's block-dependency analysis of a model on
 * calibration text, written as a report directory (JSON, CSV, PNG, HTML). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "generate.h"
#include "sparsefuse_fusion.h"

int cmd_analyze(int argc, char **argv) {
    app_model_opts mo = {0};
    const char *file = NULL, *out_dir = NULL;
    sf_analyze_params ap = sf_analyze_default_params();
    int n_tokens = (int)ap.n_tokens;
    const arg_spec args[] = {
        APP_MODEL_ARGS(&mo),
        {"-f", "--file", ARG_STR, &file, "FILE", "calibration text (required)", 0, 0, NULL},
        {"-o", "--output", ARG_STR, &out_dir, "DIR", "report directory (required; created if missing)", 0, 0, NULL},
        {NULL, "--tokens", ARG_INT, &n_tokens, "N",
         "calibration tokens, in whole chunks of -c (default: 512); more is slower and more precise", 2, 1 << 24,
         NULL},
        {"-c", "--ctx-size", ARG_INT, &ap.n_ctx, "N", "chunk length in tokens (default: 512)", 2, 1 << 16, NULL},
    };
    const cmd_spec cmd = {
        "analyze", "[options] -f CALIB.txt -o DIR",
        "Measures which blocks depend on which (FFN Fusion, arXiv 2503.18908): the matrix\n"
        "M[i][j] = mean cosine distance between block j's contribution to the residual\n"
        "stream with and without block i, for whole blocks and for FFN sub-blocks; per\n"
        "layer the importance of the block and of its attention as 1 - cos(x_in, x_out)\n"
        "and as the KL divergence of the next-token distribution when only it is removed;\n"
        "and ||h(x)||/||x||. Costs one forward pass per chunk plus three per layer (each\n"
        "starting at that layer). Writes DIR/analysis.json, CSV tables, PNG heatmaps and\n"
        "DIR/index.html. llama, deci and gemma3 models.",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!file) return args_error(&cmd, "no calibration text: give -f FILE");
    if (!out_dir) return args_error(&cmd, "no report directory: give -o DIR");
    if (!app_readable(&cmd, "calibration text", file)) return APP_EXIT_USAGE;
    const char *path = app_model_path(&cmd, mo.model);
    if (!path) return APP_EXIT_USAGE;
    ap.n_tokens = n_tokens;
    ap.n_threads = mo.threads;

    size_t len = 0;
    char *text = app_read_file(&cmd, file, &len, false);
    if (!text) return APP_EXIT_RUNTIME;
    rc = APP_EXIT_RUNTIME;
    int32_t *toks = NULL;
    int n_tok = 0;
    sf_analysis an = {0};
    sf_model *m = app_load_model(&cmd, &mo, path);
    if (!m) goto done;
    toks = app_tokenize(&cmd, m, text, len, true, false, &n_tok);
    if (!toks) goto done;
    const double t0 = app_now();
    app_progress ui;
    app_progress_init(&ui, "analyze", "passes");
    ap.progress = app_progress_bar;
    ap.user = &ui;
    fprintf(stderr, "analyze: %d tokens of text, using %lld in chunks of %d\n", n_tok,
            (long long)(n_tokens < n_tok ? n_tokens : n_tok), ap.n_ctx);
    if (sf_analyze(m, toks, n_tok, &ap, &an) != SF_OK) {
        rc = app_fail(&cmd, "analysis");
        goto done;
    }
    const char *slash = strrchr(path, '/');
    an.model = slash ? slash + 1 : path;
    if (sf_analysis_write_report(&an, out_dir) != SF_OK) {
        rc = app_fail(&cmd, "writing the report");
        goto done;
    }
    fprintf(stderr, "analyze: %d layers, %lld tokens, %.1f s; report in %s/index.html\n", an.n_layer,
            (long long)an.n_tokens, app_now() - t0, out_dir);
    rc = APP_EXIT_OK;
done:
    sf_analysis_free(&an);
    free(toks);
    free(text);
    sf_model_free(m);
    return rc;
}
