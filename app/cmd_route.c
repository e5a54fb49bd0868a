/* sparsefuse route: fits Mixture-of-Depths routers (or a static block
 * removal) to a pretrained model and writes the side-car `--routes` reads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "fusion/fuse.h"
#include "generate.h"
#include "sparsefuse_routing.h"

/* routed[n_layer] from --blocks LIST or --every N (blocks N-1, 2N-1, ...);
 * --blocks auto:N sets *n_auto instead. */
static int pick_blocks(const cmd_spec *cmd, const char *blocks, int every, int n_layer, bool *routed, int *n_auto) {
    if (blocks && strncmp(blocks, "auto:", 5) == 0) {
        char *end = NULL;
        const long n = strtol(blocks + 5, &end, 10);
        if (end == blocks + 5 || *end || n < 1 || n > n_layer - 2)
            return args_error(cmd, "--blocks %s: auto:N needs 1 <= N <= %d (the first and last block are not routed)",
                              blocks, n_layer - 2);
        *n_auto = (int)n;
        return APP_EXIT_OK;
    }
    if (!blocks) {
        for (int l = 0; l < n_layer; l++) routed[l] = l % every == every - 1;
        return APP_EXIT_OK;
    }
    sf_layer_range *r = NULL;
    int n = 0;
    if (sf_fuse_parse_ranges(blocks, "--blocks", &r, &n) != SF_OK ||
        sf_fuse_ranges_to_mask(r, n, n_layer, "--blocks", routed) != SF_OK) {
        free(r);
        return args_error(cmd, "%s", sf_last_error());
    }
    free(r);
    return APP_EXIT_OK;
}

static void print_result(const sf_route_result *r, const bool *routed, const float *capacity, int n_static,
                         sf_route_target target) {
    printf("| block | importance (%s) | routed | capacity | fit R2 | target carried | best possible |\n",
           n_static > 0 ? "mean" : sf_route_target_name(target));
    printf("| ---: | ---: | :---: | ---: | ---: | ---: | ---: |\n");
    for (int l = 0; l < r->n_layer; l++) {
        if (n_static > 0) {
            printf("| %d | %.5f | %s | | | | |\n", l, r->importance[l], r->dropped[l] ? "removed" : "");
            continue;
        }
        if (!routed[l]) {
            if (!isnan(r->importance[l])) printf("| %d | %.5f | | | | | |\n", l, r->importance[l]);
            continue;
        }
        printf("| %d | %.5f | yes | %.3f | %.3f | %.1f %% | %.1f %% |\n", l, r->importance[l], capacity[l], r->r2[l],
               100.0 * r->captured[l], 100.0 * r->oracle[l]);
    }
}

int cmd_route(int argc, char **argv) {
    app_model_opts mo = {0};
    const char *file = NULL, *out = NULL, *blocks = NULL, *target = "kl";
    sf_route_params rp = sf_route_default_params();
    int n_tokens = (int)rp.n_tokens, every = 2;
    float capacity = 0.5f;
    const arg_spec args[] = {
        APP_MODEL_ARGS(&mo),
        {"-f", "--file", ARG_STR, &file, "FILE", "calibration text (required)", 0, 0, NULL},
        {"-o", "--output", ARG_STR, &out, "FILE", "routes side-car GGUF to write (required)", 0, 0, NULL},
        {NULL, "--blocks", ARG_STR, &blocks, "LIST|auto:N",
         "blocks to route, e.g. 1,3,5-9, or auto:N: the N blocks of lowest mean target, never the first or last "
         "(default: --every)",
         0, 0, NULL},
        {NULL, "--every", ARG_INT, &every, "N",
         "route blocks N-1, 2N-1, ... (the paper routes every other block: 2; default: 2)", 1, 1 << 16, NULL},
        {NULL, "--capacity", ARG_FLOAT, &capacity, "C",
         "fraction of tokens that run a routed block, in (0, 1] (the paper's best: 0.125; default: 0.5)", 0, 0, NULL},
        {NULL, "--static", ARG_INT, &rp.n_static, "K",
         "instead of routers: remove the K blocks of lowest mean target for every token (static baseline; never "
         "the first or last block)",
         0, 1 << 16, NULL},
        {NULL, "--target", ARG_STR, &target, "kl|delta",
         "what a router predicts per token: kl, the KL divergence of its next-token distribution when the block is "
         "removed (one extra partial pass per block and chunk), or delta, ||block(x) - x|| / ||x|| (free) "
         "(default: kl)",
         0, 0, NULL},
        {NULL, "--ridge", ARG_FLOAT, &rp.ridge, "L",
         "ridge penalty as a fraction of the mean feature energy (default: 0.001)", 1e-9, 1e3, NULL},
        {NULL, "--tokens", ARG_INT, &n_tokens, "N", "calibration tokens, in whole chunks of -c (default: 4096)", 8,
         1 << 26, NULL},
        {"-c", "--ctx-size", ARG_INT, &rp.n_ctx, "N", "calibration chunk length in tokens (default: 512)", 8, 1 << 16,
         NULL},
    };
    const cmd_spec cmd = {
        "route", "[options] -f CALIB.txt -o ROUTES.gguf",
        "Mixture-of-Depths routers for a pretrained model (docs/depth-routing.md). Runs\n"
        "the dense model over the calibration text, measures per token what removing\n"
        "each chosen block costs (--target), and fits each block a linear router on its\n"
        "normalized input by ridge regression (LAPACK) on the log of that cost. The\n"
        "threshold that lets the capacity's share of calibration tokens through is\n"
        "the causal decode rule. With --static K it removes the K blocks whose removal\n"
        "costs least on average instead. Prints per block the fit and the share of\n"
        "the cost the tokens it runs carry (against the best possible selection), and\n"
        "writes a side-car bound to this model: run, chat, bench, perplexity and\n"
        "hellaswag take it with --routes.",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!file) return args_error(&cmd, "no calibration text: give -f FILE");
    if (!out) return args_error(&cmd, "no output: give -o ROUTES.gguf");
    if (!(capacity > 0 && capacity <= 1)) return args_error(&cmd, "--capacity %g is outside (0, 1]", capacity);
    if (sf_route_target_parse(target, &rp.target) != SF_OK) return args_error(&cmd, "%s", sf_last_error());
    if (rp.n_static > 0 && blocks) return args_error(&cmd, "--static removes blocks itself; --blocks is for routers");
    if (!app_readable(&cmd, "calibration text", file)) return APP_EXIT_USAGE;
    const char *path = app_model_path(&cmd, mo.model);
    if (!path) return APP_EXIT_USAGE;
    rp.n_tokens = n_tokens;
    rp.n_threads = mo.threads;

    size_t len = 0;
    char *text = app_read_file(&cmd, file, &len, false);
    if (!text) return APP_EXIT_RUNTIME;
    rc = APP_EXIT_RUNTIME;
    int32_t *toks = NULL;
    bool *routed = NULL;
    float *cap = NULL;
    int n_tok = 0;
    sf_model *m = app_load_model(&cmd, &mo, path);
    if (!m) goto done;
    sf_model_info info;
    sf_model_get_info(m, &info);
    routed = calloc((size_t)info.n_layer, sizeof *routed);
    cap = malloc(sizeof(float) * (size_t)info.n_layer);
    if (!routed || !cap) {
        fprintf(stderr, "sparsefuse route: out of memory\n");
        goto done;
    }
    if ((rc = pick_blocks(&cmd, blocks, every, info.n_layer, routed, &rp.n_auto)) != APP_EXIT_OK) goto done;
    rc = APP_EXIT_RUNTIME;
    int n_routed = rp.n_auto;
    for (int l = 0; l < info.n_layer; l++) {
        cap[l] = capacity;
        n_routed += routed[l];
    }
    rp.routed = routed;
    rp.capacity = cap;
    toks = app_tokenize(&cmd, m, text, len, false, false, &n_tok);
    if (!toks) goto done;
    const double t0 = app_now();
    app_progress ui;
    app_progress_init(&ui, "route", "passes");
    rp.progress = app_progress_bar;
    rp.user = &ui;
    if (rp.n_static > 0)
        fprintf(stderr, "route: static: removing %d of %d blocks by mean %s, %d tokens of text, up to %d used\n",
                rp.n_static, info.n_layer, target, n_tok, n_tokens);
    else
        fprintf(stderr, "route: %d of %d blocks routed at capacity %.3f, target %s, %d tokens of text, up to %d used\n",
                n_routed, info.n_layer, capacity, target, n_tok, n_tokens);
    sf_route_result res;
    if (sf_route_fit(m, toks, n_tok, &rp, out, &res) != SF_OK) {
        rc = app_fail(&cmd, "route");
        goto done;
    }
    print_result(&res, res.routed, cap, rp.n_static, rp.target);
    double skipped = 0;
    for (int l = 0; l < info.n_layer; l++)
        skipped += rp.n_static > 0 ? res.dropped[l] : res.routed[l] ? 1.0 - capacity : 0.0;
    printf("\nblock executions skipped: %.1f %% (at the calibrated capacity)\n", 100.0 * skipped / info.n_layer);
    if (rp.n_static > 0) {
        printf("removed blocks: ");
        for (int l = 0, k = 0; l < info.n_layer; l++)
            if (res.dropped[l]) printf("%s%d", k++ ? "," : "", l);
        printf("\n(a GGUF without them, which llama.cpp runs: sparsefuse fuse -m %s --drop-blocks LIST -o OUT.gguf)\n",
               path);
    }
    printf("calibration: %lld tokens; side-car: %s\n", (long long)res.n_tokens, out);
    sf_route_result_free(&res);
    fprintf(stderr, "route: done in %.1f s\n", app_now() - t0);
    rc = APP_EXIT_OK;
done:
    free(routed);
    free(cap);
    free(toks);
    free(text);
    sf_model_free(m);
    return rc;
}
