/* sparsefuse fuse: write an FFN-Fusion variant of a model (attention dropped
 * in chosen layers, runs of attention-free FFNs fused into one wide FFN) as a
 * `deci` GGUF. The transform is library code (src/fusion/fuse.h). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "fusion/fuse.h"
#include "fusion/heal.h"
#include "generate.h"
#include "sparsefuse_fusion.h"
#include "tensor/types.h"

/* The writer's temporary file ("<out>.tmp.<pid>", see gguf.h), removed if
 * the command is interrupted before the rename. */
static char g_tmp[4096];

static void on_signal(int sig) {
    if (g_tmp[0]) unlink(g_tmp); /* async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void log_line(int level, const char *msg, void *user) {
    (void)user;
    size_t n = strlen(msg);
    fprintf(stderr, "sparsefuse fuse: %s%s%s", level ? "warning: " : "", msg, n && msg[n - 1] == '\n' ? "" : "\n");
}

static void on_progress(const char *what, int64_t done, int64_t total, void *user) {
    const char *out = user;
    if (strcmp(what, "fusing") == 0)
        fprintf(stderr, "sparsefuse fuse: fused group %lld of %lld\n", (long long)done, (long long)total);
    else if (strcmp(what, "writing") == 0 && done == 0)
        fprintf(stderr, "sparsefuse fuse: writing %.1f MiB to %s ...\n", (double)total / 1048576.0, out);
}

/* --fused-type: "keep" (-1) or a type sparsefuse can quantize to. */
static int parse_type(const char *s) {
    if (!s || strcasecmp(s, "keep") == 0) return -1;
    for (int t = 0; t < SF_TYPE_COUNT; t++) {
        const sf_type_traits *tr = sf_type_ref(t);
        if (tr && tr->quantize && tr->vec_dot && strcasecmp(tr->name, s) == 0) return t;
    }
    return -2;
}

/* "3-6, 8-11" for the summary. */
static void format_ranges(const sf_layer_range *r, int n, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%d-%d", i ? ", " : "", r[i].first, r[i].last);
}

/* "auto" / "auto:K": K (or 0 for plain "auto"); -1 if s is not an auto spec. */
static int auto_count(const char *s) {
    if (!s || strncmp(s, "auto", 4) != 0) return -1;
    if (s[4] == '\0') return 0;
    if (s[4] != ':') return -2;
    char *end = NULL;
    const long k = strtol(s + 5, &end, 10);
    return end && *end == '\0' && k > 0 && k < 100000 ? (int)k : -2;
}

/* analysis.json from -a DIR or FILE */
static int load_analysis(const cmd_spec *cmd, const char *given, sf_analysis *a) {
    char path[4096];
    const size_t n = strlen(given);
    if (n > 5 && strcmp(given + n - 5, ".json") == 0) snprintf(path, sizeof path, "%s", given);
    else snprintf(path, sizeof path, "%s/analysis.json", given);
    if (sf_analysis_read_json(path, a) != SF_OK) return args_error(cmd, "--analysis: %s", sf_last_error());
    return APP_EXIT_OK;
}

/* Fits and folds the healing correction: unhealed -> output. */
static int heal(const cmd_spec *cmd, const char *src, const sf_fuse_plan *plan, const char *unhealed,
                const char *output, const char *calib, int tokens, float ridge, int threads) {
    size_t len = 0;
    char *text = app_read_file(cmd, calib, &len, false);
    if (!text) return APP_EXIT_RUNTIME;
    int rc = APP_EXIT_RUNTIME, n_tok = 0;
    int32_t *toks = NULL;
    app_model_opts mo = {0};
    sf_model *m = app_load_model(cmd, &mo, src);
    if (m) toks = app_tokenize(cmd, m, text, len, true, false, &n_tok);
    sf_model_free(m);
    free(text);
    if (!toks) return rc;
    sf_heal_params hp = sf_heal_default_params();
    hp.n_tokens = tokens;
    hp.ridge = ridge;
    hp.n_threads = threads;
    sf_heal_fit_result fit;
    fprintf(stderr, "sparsefuse fuse: healing on %lld calibration tokens of %s ...\n",
            (long long)(tokens < n_tok ? tokens : n_tok), calib);
    if (sf_heal_fit(src, unhealed, plan, toks, n_tok, &hp, &fit) != SF_OK) {
        rc = app_fail(cmd, "healing");
    } else {
        for (int k = 0; k < fit.n_groups; k++)
            fprintf(stderr, "sparsefuse fuse: heal: fused layer %d: relative error of the group's output on the "
                            "calibration tokens %.4f -> %.4f\n",
                    fit.layer[k], fit.err_before[k], fit.err_after[k]);
        rc = sf_heal_apply(unhealed, &fit, ridge, output) == SF_OK ? APP_EXIT_OK : app_fail(cmd, "writing the healed model");
        sf_heal_fit_free(&fit);
    }
    free(toks);
    return rc;
}

int cmd_fuse(int argc, char **argv) {
    const char *model = NULL, *output = NULL, *drop = NULL, *fuse = NULL, *norm = "shared-last", *parallel = NULL,
               *ftype = "keep", *analysis = NULL, *heal_file = NULL, *blocks = NULL;
    int heal_tokens = 2048, threads = 0;
    float heal_ridge = 1e-2f, fuse_max_m = 0.0f;
    const arg_spec args[] = {
        {"-m", "--model", ARG_STR, &model, "FILE",
         "source GGUF, llama, deci or gemma3 (default: " APP_DEFAULT_MODEL " if present, else $SF_MODEL)", 0, 0, NULL},
        {"-o", "--output", ARG_STR, &output, "FILE", "the GGUF to write (required; replaced if it exists)", 0, 0,
         NULL},
        {NULL, "--drop-attn", ARG_STR, &drop, "LIST", "remove the attention of these layers, e.g. 3,5,7-12 (not layer 0)",
         0, 0, NULL},
        {NULL, "--drop-blocks", ARG_STR, &blocks, "LIST",
         "remove these whole blocks, e.g. the list `sparsefuse route --static K` prints (static depth pruning; not "
         "block 0; llama and deci sources)",
         0, 0, NULL},
        {NULL, "--fuse", ARG_STR, &fuse, "RANGES",
         "fuse the FFNs of each range into one layer, e.g. 8-11,14-16 (attention dropped in all of them)", 0, 0, NULL},
        {NULL, "--norm", ARG_STR, &norm, "V", "norm of a fused layer: shared-last or folded (default: shared-last)", 0, 0,
         NULL},
        {NULL, "--parallel-blocks", ARG_STR, &parallel, "RANGES",
         "run whole blocks of these ranges in parallel, e.g. 20-23 (see above)", 0, 0, NULL},
        {NULL, "--fused-type", ARG_STR, &ftype, "T",
         "type of the fused gate/up/down tensors: keep, f32, f16, q8_0, ... (default: keep)", 0, 0, NULL},
        {"-a", "--analysis", ARG_STR, &analysis, "DIR",
         "report of `sparsefuse analyze` (DIR or DIR/analysis.json), for the auto plans", 0, 0, NULL},
        {NULL, "--fuse-max-m", ARG_FLOAT, &fuse_max_m, "X",
         "--fuse auto: split runs where a member's FFN dependency M on its group exceeds X (default: no split)", 1e-6,
         10, NULL},
        {NULL, "--heal", ARG_STR, &heal_file, "FILE", "fit the healing correction on this calibration text", 0, 0,
         NULL},
        {NULL, "--heal-tokens", ARG_INT, &heal_tokens, "N", "calibration tokens for --heal (default: 2048)", 2,
         1 << 24, NULL},
        {NULL, "--heal-ridge", ARG_FLOAT, &heal_ridge, "R", "ridge strength, relative to trace(G)/n_embd (default: 0.01)",
         1e-8, 1e4, NULL},
        {"-t", "--threads", ARG_INT, &threads, "N", "threads for --heal (default: physical cores)", 1, 4096, NULL},
    };
    const cmd_spec cmd = {
        "fuse", "-o OUT.gguf [-m MODEL] [--drop-attn LIST] [--drop-blocks LIST] [--fuse RANGES] [--norm V]\n"
        "                      [--parallel-blocks RANGES] [--fused-type T]",
        "FFN Fusion (arXiv 2503.18908) with an explicit plan: writes the model as a 'deci'\n"
        "GGUF (llama.cpp runs it too) in which\n"
        "  --drop-attn   layers keep only their FFN: x <- x + FFN(norm(x)). Layer 0 keeps its\n"
        "                attention (llama.cpp derives the head size from it).\n"
        "  --drop-blocks these blocks are removed (x <- x) and the rest renumbered.\n"
        "  --fuse        each range of consecutive attention-free layers becomes ONE layer whose\n"
        "                FFN is the members' FFNs side by side (gate/up rows stacked, down rows\n"
        "                concatenated, feed_forward_length = the sum); all members then see the\n"
        "                same input. Every layer of a range must be in --drop-attn (or have no\n"
        "                attention in the source). Layers are renumbered contiguously.\n"
        "                The paper leaves the last FFN of each attention-free run out of the\n"
        "                fused range (including it cost the most quality).\n"
        "  --norm        shared-last (the paper): the fused layer uses the last member's ffn_norm;\n"
        "                the member tensors are copied byte for byte. folded: exact for a shared\n"
        "                input: ffn_norm = 1 and each member's gamma is multiplied into its\n"
        "                gate/up columns, which re-quantizes them (lossy at 4 bits; use\n"
        "                --fused-type f16 or f32 to avoid that, at a larger file).\n"
        "  --parallel-blocks  ranges of whole blocks to run in parallel: each block of a range\n"
        "                reads the same input and their contributions are summed. Recorded as\n"
        "                sparsefuse.parallel_blocks (new numbering); sparsefuse runs it, llama.cpp\n"
        "                ignores the key and runs the blocks in sequence.\n"
        "LIST and RANGES are layer numbers of the source model (0-based), e.g. 3,5,7-12, or\n"
        "automatic plans from `sparsefuse analyze` (-a DIR):\n"
        "  --drop-attn auto:K      the K attention sub-blocks whose removal alone changes the\n"
        "                          next-token distribution least (KL), never layer 0's;\n"
        "  --fuse auto             every run of consecutive attention-free layers minus its\n"
        "                          last FFN, where 2 or more remain, split where the FFN\n"
        "                          dependency M exceeds --fuse-max-m (and M printed);\n"
        "  --parallel-blocks auto:G  the paper's greedy rule: windows of 4 blocks with the\n"
        "                          smallest max (then sum) of M inside, G times, disjoint,\n"
        "                          avoiding dropped and fused layers.\n"
        "  --heal FILE   fits, per fused group, the linear map A that best turns the fused\n"
        "                output into what the members add one after another (least squares\n"
        "                over calibration tokens, ridge towards A = I, LAPACK) and folds it\n"
        "                into the group's ffn_down (re-quantized to its type).\n"
        "Members whose tensor types differ are re-quantized to the first\n"
        "member's type, with a warning. The plan is recorded under sparsefuse.fusion.*.\n"
        "gemma3 sources (post-norms: each member's output is normed before it is added, so\n"
        "FFNs cannot be merged) keep their architecture and layer numbers: --drop-attn\n"
        "removes attention and its post-norm, and each --fuse range runs as a parallel group\n"
        "of FFN-only blocks, x + sum_j post_norm_j(FFN_j(norm_j(x))). llama.cpp cannot run\n"
        "such a file; it is marked sparsefuse.only and fuse says so.\n"
        "The file is written atomically (nothing is left behind on error or Ctrl-C).\n"
        "Progress and the summary go to stderr.",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!output || !*output) return args_error(&cmd, "no output file (-o FILE)");
    const char *path = app_model_path(&cmd, model);
    if (!path) return APP_EXIT_USAGE;
    sf_fuse_norm norm_v;
    if (sf_fuse_parse_norm(norm, &norm_v)) return args_error(&cmd, "--norm: %s", sf_last_error());
    int fused_type = parse_type(ftype);
    if (fused_type == -2) return args_error(&cmd, "--fused-type: '%s' is not keep or a type sparsefuse can write", ftype);

    sf_layer_range *drop_r = NULL, *fuse_r = NULL, *par_r = NULL, *block_r = NULL;
    int n_drop = 0, n_fuse = 0, n_par = 0, n_layer = 0, n_block = 0;
    bool *mask = NULL, *block_mask = NULL;
    int exit_code = APP_EXIT_OK;
    const int k_drop = auto_count(drop), k_fuse = auto_count(fuse), k_par = auto_count(parallel);
    sf_analysis an = {0};
    if (k_drop == -2 || k_par == -2 || k_fuse == -2 || (k_fuse > 0))
        return args_error(&cmd, "auto plans are written auto:K for --drop-attn and --parallel-blocks, auto for --fuse");
    if ((k_drop >= 0 || k_fuse >= 0 || k_par >= 0) && !analysis)
        return args_error(&cmd, "automatic plans need the dependency analysis: give -a DIR (from sparsefuse analyze)");
    if (k_drop == 0 || k_par == 0) return args_error(&cmd, "say how many: --drop-attn auto:K, --parallel-blocks auto:G");
    if (analysis && (exit_code = load_analysis(&cmd, analysis, &an)) != APP_EXIT_OK) return exit_code;
    if ((drop && k_drop < 0 && sf_fuse_parse_ranges(drop, "--drop-attn", &drop_r, &n_drop)) ||
        (fuse && k_fuse < 0 && sf_fuse_parse_ranges(fuse, "--fuse", &fuse_r, &n_fuse)) ||
        (parallel && k_par < 0 && sf_fuse_parse_ranges(parallel, "--parallel-blocks", &par_r, &n_par)) ||
        (blocks && sf_fuse_parse_ranges(blocks, "--drop-blocks", &block_r, &n_block))) {
        exit_code = args_error(&cmd, "%s", sf_last_error());
        goto done;
    }
    sf_set_log(log_line, NULL);
    if (sf_fuse_source_layers(path, &n_layer)) {
        fprintf(stderr, "sparsefuse fuse: %s\n", sf_last_error());
        exit_code = APP_EXIT_RUNTIME;
        goto done;
    }
    mask = calloc((size_t)n_layer, sizeof *mask);
    block_mask = calloc((size_t)n_layer, sizeof *block_mask);
    if (!mask || !block_mask) { exit_code = APP_EXIT_RUNTIME; goto done; }
    if (blocks && sf_fuse_ranges_to_mask(block_r, n_block, n_layer, "--drop-blocks", block_mask)) {
        exit_code = args_error(&cmd, "%s", sf_last_error());
        goto done;
    }
    if (analysis && an.n_layer != n_layer) {
        exit_code = args_error(&cmd, "the analysis is of a %d-layer model, %s has %d layers", an.n_layer, path, n_layer);
        goto done;
    }
    if (k_drop > 0) {
        if (sf_auto_drop_attn(&an, k_drop, mask)) {
            exit_code = args_error(&cmd, "%s", sf_last_error());
            goto done;
        }
        n_drop = k_drop;
    } else if (sf_fuse_ranges_to_mask(drop_r, n_drop, n_layer, "--drop-attn", mask)) {
        exit_code = args_error(&cmd, "%s", sf_last_error());
        goto done;
    }
    if (k_fuse == 0) {
        fuse_r = malloc(sizeof *fuse_r * (size_t)(n_layer / 2 + 1));
        if (!fuse_r) { exit_code = APP_EXIT_RUNTIME; goto done; }
        sf_auto_fuse_groups(&an, n_layer, mask, fuse_max_m > 0 ? fuse_max_m : INFINITY, fuse_r, &n_fuse);
        if (!n_fuse) fprintf(stderr, "sparsefuse fuse: --fuse auto: no run of 3 or more attention-free layers\n");
    }
    if (k_par > 0) {
        bool *excl = calloc((size_t)n_layer, sizeof *excl);
        par_r = malloc(sizeof *par_r * (size_t)k_par);
        if (!excl || !par_r) { free(excl); exit_code = APP_EXIT_RUNTIME; goto done; }
        for (int l = 0; l < n_layer; l++) excl[l] = mask[l];
        for (int g = 0; g < n_fuse; g++)
            for (int l = fuse_r[g].first; l <= fuse_r[g].last; l++) excl[l] = true;
        int prc = sf_auto_parallel(&an, k_par, 4, excl, par_r);
        free(excl);
        if (prc) {
            exit_code = args_error(&cmd, "%s", sf_last_error());
            goto done;
        }
        n_par = k_par;
    }
    {
        char buf[512];
        if (k_drop > 0) {
            size_t k = 0;
            buf[0] = '\0';
            for (int l = 0; l < n_layer && k < sizeof buf; l++)
                if (mask[l]) k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%d", k ? "," : "", l);
            fprintf(stderr, "sparsefuse fuse: --drop-attn auto:%d -> %s\n", k_drop, buf);
        }
        if (k_fuse == 0) {
            format_ranges(fuse_r, n_fuse, buf, sizeof buf);
            fprintf(stderr, "sparsefuse fuse: --fuse auto -> %s\n", n_fuse ? buf : "(none)");
            for (int g = 0; g < n_fuse; g++) { /* how independent the chosen members are */
                double sum = 0, mx = 0;
                int cnt = 0;
                for (int i = fuse_r[g].first; i <= fuse_r[g].last; i++)
                    for (int j = i + 1; j <= fuse_r[g].last; j++) {
                        const double v = an.dep_ffn[(size_t)i * n_layer + j];
                        if (v != v) continue;
                        sum += v;
                        mx = v > mx ? v : mx;
                        cnt++;
                    }
                fprintf(stderr, "sparsefuse fuse:   group %d-%d: FFN dependency M mean %.3f, max %.3f\n",
                        fuse_r[g].first, fuse_r[g].last, cnt ? sum / cnt : 0.0, mx);
            }
        }
        if (k_par > 0) {
            format_ranges(par_r, n_par, buf, sizeof buf);
            fprintf(stderr, "sparsefuse fuse: --parallel-blocks auto:%d -> %s\n", k_par, buf);
        }
    }
    if (heal_file && !app_readable(&cmd, "calibration text", heal_file)) {
        exit_code = APP_EXIT_USAGE;
        goto done;
    }
    if (heal_file && !n_fuse) {
        exit_code = args_error(&cmd, "--heal needs at least one fused group");
        goto done;
    }
    /* validated by sf_fuse_write against the source's layout (a deci source
     * may have attention-free layers already), before anything is written */
    sf_fuse_plan plan = {n_layer, mask, n_fuse, fuse_r, norm_v, n_par, par_r, blocks ? block_mask : NULL};
    if (!n_drop && !n_fuse && !n_par && !n_block)
        fprintf(stderr, "sparsefuse fuse: no --drop-attn, --drop-blocks, --fuse or --parallel-blocks: the model is "
                        "only rewritten as deci\n");

    /* with --heal the unhealed model goes to a temporary file first */
    char unhealed[3800];
    snprintf(unhealed, sizeof unhealed, "%s.unhealed.%ld", output, (long)getpid());
    const char *target = heal_file ? unhealed : output;
    snprintf(g_tmp, sizeof g_tmp, "%s.tmp.%ld", target, (long)getpid());
    void (*old_int)(int) = signal(SIGINT, on_signal);
    void (*old_term)(int) = signal(SIGTERM, on_signal);
    void (*old_hup)(int) = signal(SIGHUP, on_signal);
    sf_fuse_options opt = sf_fuse_default_options();
    opt.fused_type = fused_type;
    opt.progress = on_progress;
    opt.user = (void *)output;
    sf_fuse_report r;
    double t0 = app_now();
    rc = sf_fuse_write(path, &plan, target, &opt, &r);
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);
    signal(SIGHUP, old_hup);
    g_tmp[0] = '\0';
    if (rc) {
        fprintf(stderr, "sparsefuse fuse: %s\n", sf_last_error());
        exit_code = rc == SF_ERR_ARG ? APP_EXIT_USAGE : APP_EXIT_RUNTIME;
        goto done;
    }
    char groups[512];
    format_ranges(fuse_r, n_fuse, groups, sizeof groups);
    fprintf(stderr,
            "sparsefuse fuse: wrote %s in %.1f s: %d -> %d layers; attention removed in %d; %d FFN group%s %s "
            "(%d layers%s%s, norm %s); %d tensors, %.1f MiB%s\n",
            heal_file ? "the unhealed model" : output, app_now() - t0, r.n_layer_in, r.n_layer_out, r.n_attn_dropped,
            r.n_groups, r.n_groups == 1 ? "" : "s", r.sparsefuse_only ? "run as parallel FFN-only blocks" : "fused",
            r.n_fused_layers, n_fuse ? ": " : "", groups, r.sparsefuse_only ? "each member's own" : sf_fuse_norm_name(norm_v), r.n_tensors,
            (double)r.data_bytes / 1048576.0, r.n_requantized ? "" : "; nothing re-quantized");
    if (r.n_requantized) fprintf(stderr, "sparsefuse fuse: %d fused tensors re-quantized (see above)\n", r.n_requantized);
    if (r.n_parallel) fprintf(stderr, "sparsefuse fuse: %d parallel-block groups recorded\n", r.n_parallel);
    if (r.sparsefuse_only)
        fprintf(stderr, "sparsefuse fuse: note: %s runs in sparsefuse only (marked sparsefuse.only): llama.cpp's "
                        "gemma3 has no attention-free layers and no parallel blocks\n", heal_file ? "the model" : output);
    if (heal_file) {
        exit_code = heal(&cmd, path, &plan, unhealed, output, heal_file, heal_tokens, heal_ridge, threads);
        unlink(unhealed);
        if (exit_code == APP_EXIT_OK) fprintf(stderr, "sparsefuse fuse: wrote the healed model to %s\n", output);
    }
done:
    sf_analysis_free(&an);
    free(drop_r);
    free(fuse_r);
    free(par_r);
    free(block_r);
    free(mask);
    free(block_mask);
    return exit_code;
}
