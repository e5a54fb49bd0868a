/* sparsefuse fuse: write an FFN-Fusion variant of a model (attention dropped
 * in chosen layers, runs of attention-free FFNs fused into one wide FFN) as a
 * `deci` GGUF. The transform is library code (src/fusion/fuse.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "fusion/fuse.h"
#include "generate.h"
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

int cmd_fuse(int argc, char **argv) {
    const char *model = NULL, *output = NULL, *drop = NULL, *fuse = NULL, *norm = "shared-last", *parallel = NULL,
               *ftype = "keep";
    const arg_spec args[] = {
        {"-m", "--model", ARG_STR, &model, "FILE",
         "source GGUF, llama or deci (default: " APP_DEFAULT_MODEL " if present, else $SF_MODEL)", 0, 0, NULL},
        {"-o", "--output", ARG_STR, &output, "FILE", "the deci GGUF to write (required; replaced if it exists)", 0, 0,
         NULL},
        {NULL, "--drop-attn", ARG_STR, &drop, "LIST", "remove the attention of these layers, e.g. 3,5,7-12 (not layer 0)",
         0, 0, NULL},
        {NULL, "--fuse", ARG_STR, &fuse, "RANGES",
         "fuse the FFNs of each range into one layer, e.g. 8-11,14-16 (attention dropped in all of them)", 0, 0, NULL},
        {NULL, "--norm", ARG_STR, &norm, "V", "norm of a fused layer: shared-last or folded (default: shared-last)", 0, 0,
         NULL},
        {NULL, "--parallel-blocks", ARG_STR, &parallel, "RANGES",
         "run whole blocks of these ranges in parallel, e.g. 20-23 (see above)", 0, 0, NULL},
        {NULL, "--fused-type", ARG_STR, &ftype, "T",
         "type of the fused gate/up/down tensors: keep, f32, f16, q8_0, ... (default: keep)", 0, 0, NULL},
    };
    const cmd_spec cmd = {
        "fuse", "-o OUT.gguf [-m MODEL] [--drop-attn LIST] [--fuse RANGES] [--norm V] [--parallel-blocks RANGES]\n"
        "                      [--fused-type T]",
        "FFN Fusion (arXiv 2503.18908) with an explicit plan: writes the model as a 'deci'\n"
        "GGUF (llama.cpp runs it too) in which\n"
        "  --drop-attn   layers keep only their FFN: x <- x + FFN(norm(x)). Layer 0 keeps its\n"
        "                attention (llama.cpp derives the head size from it).\n"
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
        "LIST and RANGES are explicit layer numbers of the source model (0-based), e.g.\n"
        "3,5,7-12. Automatic plans from the dependency analysis ('auto') are not\n"
        "implemented yet. Members whose tensor types differ are re-quantized to the first\n"
        "member's type, with a warning. The plan is recorded under sparsefuse.fusion.*.\n"
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

    sf_layer_range *drop_r = NULL, *fuse_r = NULL, *par_r = NULL;
    int n_drop = 0, n_fuse = 0, n_par = 0, n_layer = 0;
    bool *mask = NULL;
    int exit_code = APP_EXIT_OK;
    if ((drop && sf_fuse_parse_ranges(drop, "--drop-attn", &drop_r, &n_drop)) ||
        (fuse && sf_fuse_parse_ranges(fuse, "--fuse", &fuse_r, &n_fuse)) ||
        (parallel && sf_fuse_parse_ranges(parallel, "--parallel-blocks", &par_r, &n_par))) {
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
    if (!mask) { exit_code = APP_EXIT_RUNTIME; goto done; }
    if (sf_fuse_ranges_to_mask(drop_r, n_drop, n_layer, "--drop-attn", mask)) {
        exit_code = args_error(&cmd, "%s", sf_last_error());
        goto done;
    }
    /* validated by sf_fuse_write against the source's layout (a deci source
     * may have attention-free layers already), before anything is written */
    sf_fuse_plan plan = {n_layer, mask, n_fuse, fuse_r, norm_v, n_par, par_r};
    if (!n_drop && !n_fuse && !n_par)
        fprintf(stderr, "sparsefuse fuse: no --drop-attn, --fuse or --parallel-blocks: the model is only rewritten as deci\n");

    snprintf(g_tmp, sizeof g_tmp, "%s.tmp.%ld", output, (long)getpid());
    void (*old_int)(int) = signal(SIGINT, on_signal);
    void (*old_term)(int) = signal(SIGTERM, on_signal);
    void (*old_hup)(int) = signal(SIGHUP, on_signal);
    sf_fuse_options opt = sf_fuse_default_options();
    opt.fused_type = fused_type;
    opt.progress = on_progress;
    opt.user = (void *)output;
    sf_fuse_report r;
    double t0 = app_now();
    rc = sf_fuse_write(path, &plan, output, &opt, &r);
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
            "sparsefuse fuse: wrote %s in %.1f s: %d -> %d layers; attention removed in %d; %d FFN group%s fused "
            "(%d layers%s%s, norm %s); %d tensors, %.1f MiB%s\n",
            output, app_now() - t0, r.n_layer_in, r.n_layer_out, r.n_attn_dropped, r.n_groups, r.n_groups == 1 ? "" : "s",
            r.n_fused_layers, n_fuse ? ": " : "", groups, sf_fuse_norm_name(norm_v), r.n_tensors,
            (double)r.data_bytes / 1048576.0, r.n_requantized ? "" : "; nothing re-quantized");
    if (r.n_requantized) fprintf(stderr, "sparsefuse fuse: %d fused tensors re-quantized (see above)\n", r.n_requantized);
    if (n_par) fprintf(stderr, "sparsefuse fuse: %d parallel-block groups recorded\n", n_par);
done:
    free(drop_r);
    free(fuse_r);
    free(par_r);
    free(mask);
    return exit_code;
}
