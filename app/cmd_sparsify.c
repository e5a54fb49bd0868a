/* sparsefuse sparsify: calibrates contextual FFN sparsity for a model and
 * writes the side-car GGUF that `--sparse` reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "generate.h"
#include "sparsefuse_sparsity.h"

int cmd_sparsify(int argc, char **argv) {
    app_model_opts mo = {0};
    const char *file = NULL, *out = NULL, *method = "teal", *wt_type = NULL, *level = "0.5", *correct = "none";
    sf_sparsify_params sp = sf_sparsify_default_params();
    int n_tokens = (int)sp.n_tokens;
    const arg_spec args[] = {
        APP_MODEL_ARGS(&mo),
        {"-f", "--file", ARG_STR, &file, "FILE", "calibration text (required)", 0, 0, NULL},
        {"-o", "--output", ARG_STR, &out, "FILE", "side-car GGUF to write (required)", 0, 0, NULL},
        {NULL, "--method", ARG_STR, &method, "M",
         "teal (|x| thresholds on the FFN input and hidden activations), cats (|act(gate)|, gate dense), "
         "wina (|x| times the weight column norm), predictor (a rank-R estimate of the gate picks the neurons; "
         "gate, up and down read only those) (default: teal)",
         0, 0, NULL},
        {NULL, "--attention", ARG_FLAG, &sp.attention, NULL,
         "teal: also skip channels of the attention's input (q, k, v) and output (Wo): TEAL on every matrix "
         "but the output head",
         0, 0, NULL},
        {NULL, "--rank", ARG_INT, &sp.rank, "R", "predictor rank, a multiple of 32 up to n_embd (default: 64)", 32,
         1 << 16, NULL},
        {NULL, "--pred-keep", ARG_FLOAT, &sp.pred_keep, "K",
         "predictor: fraction of neurons it passes on, in (1 - S, 1]; their exact gate then keeps those above "
         "CATS's threshold at S (default: 1 - S, no verification)",
         0, 0, NULL},
        {NULL, "--sparsity", ARG_STR, &level, "S|auto:KLD",
         "fraction of channels skipped at each sparse site, in [0, 1), or auto:KLD: per-layer levels, the "
         "sparsest allocation found whose mean KL divergence against the dense model on the first "
         "--auto-chunks calibration chunks stays within KLD (not the predictor) (default: 0.5)",
         0, 0, NULL},
        {NULL, "--auto-chunks", ARG_INT, &sp.auto_chunks, "N",
         "auto:KLD: calibration chunks the KLD is measured on, their second halves (default: 2)", 1, 1 << 16,
         NULL},
        {NULL, "--correct-down", ARG_STR, &correct, "none|mean|ls",
         "correct the down projection for the dropped neurons, fitted on the calibration text: mean adds their "
         "mean contribution as a bias; ls refits down by least squares for the masked activations, with that "
         "bias (teal, cats, wina; default: none)",
         0, 0, NULL},
        {NULL, "--tokens", ARG_INT, &n_tokens, "N", "calibration tokens, in whole chunks of -c (default: 8192)", 8,
         1 << 26, NULL},
        {"-c", "--ctx-size", ARG_INT, &sp.n_ctx, "N", "calibration chunk length in tokens (default: 512)", 8, 1 << 16,
         NULL},
        {NULL, "--wt-type", ARG_STR, &wt_type, "TYPE",
         "type of the transposed matrices, e.g. q8_0 (default: the source type where its block fits the row, "
         "else a 32-block type of about the same bits)",
         0, 0, NULL},
    };
    const cmd_spec cmd = {
        "sparsify", "[options] -f CALIB.txt -o SIDE.gguf",
        "Contextual FFN sparsity (TEAL, CATS, WINA, a low-rank predictor;\n"
        "docs/sparsity.md). Runs the dense model over the calibration text, keeps a\n"
        "sample of each layer's channel scores and sets per-layer thresholds so that a\n"
        "fraction S of the channels falls below them (the predictor takes three passes:\n"
        "it is fitted by least squares first, and its recall is measured last).\n"
        "Writes a side-car GGUF with the thresholds and the matrices the sparse\n"
        "kernels read transposed (one quantized row per channel), bound to this model:\n"
        "run, chat, bench, perplexity, hellaswag and compare take it with --sparse.\n"
        "Sparsity 0 writes a side-car that runs every layer dense. With auto:KLD the\n"
        "levels are per layer: each layer is probed alone at two levels, and the\n"
        "allocations a cost model proposes are run on the calibration chunks until one\n"
        "is measured within the budget (about 2 x layers + 8 runs; -v shows them).",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!file) return args_error(&cmd, "no calibration text: give -f FILE");
    if (!out) return args_error(&cmd, "no output: give -o SIDE.gguf");
    char *end = NULL;
    if (strncmp(level, "auto:", 5) == 0) {
        const double b = strtod(level + 5, &end);
        if (end == level + 5 || *end || !(b > 0 && b < 1e3))
            return args_error(&cmd, "--sparsity %s: auto: needs a KLD budget > 0, e.g. auto:0.1", level);
        sp.kld_budget = (float)b;
    } else {
        const double v = strtod(level, &end);
        if (end == level || *end) return args_error(&cmd, "--sparsity %s is neither a number nor auto:KLD", level);
        if (!(v >= 0.0 && v < 1.0)) return args_error(&cmd, "--sparsity %g is outside [0, 1)", v);
        sp.sparsity = (float)v;
    }
    if (sf_sparse_method_parse(method, &sp.method) != SF_OK) return args_error(&cmd, "%s", sf_last_error());
    static const char *const corrections[] = {"none", "mean", "ls"};
    sp.correct_down = (sf_sparse_correction)-1;
    for (int i = 0; i < 3; i++)
        if (strcmp(correct, corrections[i]) == 0) sp.correct_down = (sf_sparse_correction)i;
    if ((int)sp.correct_down < 0) return args_error(&cmd, "--correct-down %s is not none, mean or ls", correct);
    if (wt_type) {
        sp.wt_type = sf_sparse_type_parse(wt_type);
        if (sp.wt_type < 0) return args_error(&cmd, "--wt-type %s is not a type name (q8_0, q4_0, q4_k, f16...)", wt_type);
    }
    if (!app_readable(&cmd, "calibration text", file)) return APP_EXIT_USAGE;
    const char *path = app_model_path(&cmd, mo.model);
    if (!path) return APP_EXIT_USAGE;
    sp.n_tokens = n_tokens;
    sp.n_threads = mo.threads;

    size_t len = 0;
    char *text = app_read_file(&cmd, file, &len, false);
    if (!text) return APP_EXIT_RUNTIME;
    rc = APP_EXIT_RUNTIME;
    int32_t *toks = NULL;
    int n_tok = 0;
    sf_model *m = app_load_model(&cmd, &mo, path);
    if (!m) goto done;
    toks = app_tokenize(&cmd, m, text, len, false, false, &n_tok);
    if (!toks) goto done;
    const double t0 = app_now();
    app_progress ui;
    app_progress_init(&ui, "sparsify", NULL);
    sp.progress = app_progress_bar;
    sp.user = &ui;
    if (sp.kld_budget > 0)
        fprintf(stderr, "sparsify: %s, per-layer levels within a mean KLD of %g, %d tokens of text, calibrating on up "
                        "to %d in chunks of %d\n",
                sf_sparse_method_name(sp.method), sp.kld_budget, n_tok, n_tokens, sp.n_ctx);
    else
        fprintf(stderr, "sparsify: %s at %.0f %%, %d tokens of text, calibrating on up to %d in chunks of %d\n",
                sf_sparse_method_name(sp.method), 100.0 * sp.sparsity, n_tok, n_tokens, sp.n_ctx);
    sf_sparsify_result res;
    if (sf_sparsify(m, toks, n_tok, &sp, out, &res) != SF_OK) {
        rc = app_fail(&cmd, "sparsify");
        goto done;
    }
    printf("method            %s\n", sf_sparse_method_name(sp.method));
    if (sp.kld_budget > 0) {
        printf("target            auto: mean KLD <= %g\n", sp.kld_budget);
        printf("measured          KLD %.4f, same top %.1f %% (%d calibration chunks, scored halves)\n", res.kld,
               100.0 * res.same_top, sp.auto_chunks);
    } else printf("target sparsity   %.3f\n", sp.sparsity);
    printf("calibrated level  %.4f (mean over the method's sites of every layer)\n", res.level_mean);
    printf("calibration       %lld tokens\n", (long long)res.n_tokens);
    printf("transposed NMSE   %.3e (re-quantized weights vs the originals)\n", res.transpose_nmse);
    if (sp.correct_down != SF_CORRECT_NONE) printf("down correction   %s\n", correct);
    if (sp.method == SF_SPARSE_PREDICTOR) {
        printf("predictor rank    %d, %.1f %% of the dense FFN's multiply-adds\n", sp.rank, 100.0 * res.pred_flops);
        printf("gate variance     %.4f kept by the rank-%d estimate (mean over layers)\n", res.pred_explained, sp.rank);
        printf("recall            %.4f of the neurons CATS keeps at this level are predicted\n", res.pred_recall);
        printf("|h| mass          %.4f of sum |h_i| is on the predicted neurons\n", res.pred_mass);
    }
    printf("side-car          %s, %.1f MiB of tensors\n", out, res.side_bytes / 1048576.0);
    fprintf(stderr, "sparsify: done in %.1f s\n", app_now() - t0);
    rc = APP_EXIT_OK;
done:
    free(toks);
    free(text);
    sf_model_free(m);
    return rc;
}
