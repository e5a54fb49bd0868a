/* sparsefuse bench: llama-bench's pp/tg tests as a markdown table. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "sparsefuse_eval.h"

static void print_row(const sf_model_info *info, int threads, const char *test, const sf_bench_result *r) {
    char model[96], size[32], params[32], tps[48];
    snprintf(model, sizeof model, "%s %.0fM %s", info->arch, (double)info->n_params / 1e6, info->ftype);
    double mib = (double)info->size_bytes / (1024.0 * 1024.0);
    if (mib >= 1024.0) snprintf(size, sizeof size, "%.2f GiB", mib / 1024.0);
    else snprintf(size, sizeof size, "%.2f MiB", mib);
    if (info->n_params >= 1000000000) snprintf(params, sizeof params, "%.2f B", (double)info->n_params / 1e9);
    else snprintf(params, sizeof params, "%.2f M", (double)info->n_params / 1e6);
    snprintf(tps, sizeof tps, "%.2f ± %.2f", r->tps_mean, r->tps_std);
    /* "±" is 2 bytes but one column: pad by one more */
    printf("| %-30s | %10s | %10s | %-10s | %7d | %15s | %21s |\n", model, size, params, "CPU", threads, test, tps);
    fflush(stdout);
}

int cmd_bench(int argc, char **argv) {
    app_model_opts mo = {0};
    sf_bench_params bp = sf_bench_default_params();
    const arg_spec args[] = {
        APP_MODEL_ARGS(&mo),
        {"-p", "--n-prompt", ARG_INT, &bp.n_prompt, "N", "prompt-processing test length; 0 skips it (default: 512)",
         0, 1 << 20, NULL},
        {"-n", "--n-gen", ARG_INT, &bp.n_gen, "N", "generation test length; 0 skips it (default: 128)", 0, 1 << 20,
         NULL},
        {"-r", "--repetitions", ARG_INT, &bp.reps, "N", "timed repetitions per test (default: 5)", 1, 1000, NULL},
    };
    const cmd_spec cmd = {
        "bench", "[options]",
        "Measures speed as llama-bench does: ppN decodes N random tokens as one prompt,\n"
        "tgN generates N tokens one at a time (random tokens: nothing is tokenized or\n"
        "sampled inside the timing). Each test runs once to warm up, then -r timed times;\n"
        "t/s is the mean ± standard deviation. Prints a markdown table to stdout.",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (bp.n_prompt == 0 && bp.n_gen == 0) return args_error(&cmd, "both tests are off (-p 0 -n 0)");
    const char *path = app_model_path(&cmd, mo.model);
    if (!path) return APP_EXIT_USAGE;
    sf_model *m = app_load_model(&cmd, &mo, path);
    if (!m) return APP_EXIT_RUNTIME;
    sf_model_info info;
    sf_model_get_info(m, &info);
    int threads = mo.threads > 0 ? mo.threads : app_physical_cores();
    bp.n_threads = threads;
    bp.n_batch = mo.batch;

    printf("| %-30s | %10s | %10s | %-10s | %7s | %15s | %20s |\n", "model", "size", "params", "backend",
           "threads", "test", "t/s");
    printf("| ------------------------------ | ---------: | ---------: | ---------- | ------: | --------------: "
           "| -------------------: |\n");
    fflush(stdout);
    rc = APP_EXIT_OK;
    for (int pass = 0; pass < 2 && rc == APP_EXIT_OK; pass++) {
        sf_bench_params one = bp;
        sf_bench_result r;
        char test[32];
        if (pass == 0) {
            if (bp.n_prompt == 0) continue;
            one.n_gen = 0;
            snprintf(test, sizeof test, "pp%d", bp.n_prompt);
        } else {
            if (bp.n_gen == 0) continue;
            one.n_prompt = 0;
            snprintf(test, sizeof test, "tg%d", bp.n_gen);
        }
        if (sf_eval_bench(m, &one, pass == 0 ? &r : NULL, pass == 1 ? &r : NULL) != SF_OK)
            rc = app_fail(&cmd, test);
        else
            print_row(&info, threads, test, &r);
    }
    sf_model_free(m);
    return rc;
}
