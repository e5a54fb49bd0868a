/* sparsefuse hellaswag: HellaSwag acc_norm as llama.cpp computes it. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "generate.h"
#include "sparsefuse_eval.h"
#include "sparsefuse_sparsity.h"

typedef struct {
    bool progress; /* stdout is not a terminal: progress lines on stderr */
    double t_start, t_last;
} hs_ui;

static void on_task(const sf_hellaswag_result *r, void *user) {
    hs_ui *ui = user;
    printf("%d\t%3.8f%%\t[%3.4f%%, %3.4f%%]\n", r->task, 100.0 * r->acc_norm, 100.0 * r->ci_lo,
           100.0 * r->ci_hi);
    fflush(stdout);
    double now = app_now();
    if (ui->progress && (now - ui->t_last >= 2.0 || r->task == r->n_tasks)) {
        double per = (now - ui->t_start) / r->task;
        fprintf(stderr, "hellaswag: task %d/%d, acc_norm %.2f%%, ETA %.1f min\n", r->task, r->n_tasks,
                100.0 * r->acc_norm, per * (r->n_tasks - r->task) / 60.0);
        ui->t_last = now;
    }
}

int cmd_hellaswag(int argc, char **argv) {
    app_model_opts mo = {0};
    const char *file = NULL;
    int n_tasks = 0, n_ctx = 1024;
    bool in_order = false;
    const arg_spec args[] = {
        APP_MODEL_ARGS(&mo),
        APP_ARG_SPARSE(&mo),
        APP_ARG_ROUTES(&mo),
        {"-f", "--file", ARG_STR, &file, "FILE",
         "tasks, 6 lines each (a name ending in .bz2 is read through 'bzip2 -dc')", 0, 0, NULL},
        {NULL, "--tasks", ARG_INT, &n_tasks, "N", "score N tasks (default: all)", 1, 1e9, NULL},
        {NULL, "--in-order", ARG_FLAG, &in_order, NULL,
         "take the first N tasks instead of llama.cpp's random selection", 0, 0, NULL},
        {"-c", "--ctx-size", ARG_INT, &n_ctx, "N", "context size; must hold the longest task (default: 1024)", 8,
         1 << 24, NULL},
    };
    const cmd_spec cmd = {
        "hellaswag", "[options] -f FILE",
        "HellaSwag as llama.cpp's llama-perplexity --hellaswag scores it. FILE has 6 lines\n"
        "per task: the context, the gold ending (0-3) and the 4 endings (the format of\n"
        "klosax/hellaswag_text_data, e.g. hellaswag_val_full.txt; .bz2 files are\n"
        "decompressed with the bzip2 program). Each ending is scored by the mean\n"
        "log-probability of its tokens; a task counts as correct when the gold ending\n"
        "scores highest (acc_norm). Tasks are picked at random as llama.cpp does\n"
        "(mt19937 seeded with 1) unless --in-order. stdout gets one line per task: the\n"
        "running acc_norm and its 95% confidence interval, then the final result.",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!app_route_opts_ok(&cmd, &mo)) return APP_EXIT_USAGE;
    if (!file) return args_error(&cmd, "no task file: give -f FILE");
    if (!app_readable(&cmd, "task file", file)) return APP_EXIT_USAGE;
    const char *path = app_model_path(&cmd, mo.model);
    if (!path) return APP_EXIT_USAGE;

    size_t len = 0;
    char *text = app_read_file(&cmd, file, &len, true);
    if (!text) return APP_EXIT_RUNTIME;
    rc = APP_EXIT_RUNTIME;
    sf_model *m = app_load_model(&cmd, &mo, path);
    sf_context *c = m ? app_new_context(&cmd, m, &mo, n_ctx, false) : NULL;
    if (!c) goto done;
    /* a task is scored in one batch: with --sparse every token of it runs sparse */
    if (mo.sparse) sf_context_sparse_policy(c, 1, 0);
    hs_ui ui = {.progress = !isatty(STDOUT_FILENO), .t_start = app_now()};
    ui.t_last = ui.t_start;
    sf_hellaswag_params hp = sf_hellaswag_default_params();
    hp.n_tasks = n_tasks;
    hp.in_order = in_order;
    hp.n_batch = mo.batch;
    hp.on_task = on_task;
    hp.user = &ui;
    sf_hellaswag_result res;
    printf("task\tacc_norm\t95%% confidence interval\n");
    if (sf_eval_hellaswag(m, c, text, len, &hp, &res) != SF_OK) {
        fflush(stdout);
        app_fail(&cmd, "hellaswag");
        goto done;
    }
    double p = res.acc_norm, err = res.task > 1 ? sqrt(p * (1 - p) / (res.task - 1)) : 0.0;
    printf("\nFinal acc_norm = %.4f +/- %.4f %% over %d tasks\n", 100.0 * p, 100.0 * err, res.task);
    if (mo.routes) printf("Block executions run: %.2f %%\n", 100.0 * sf_context_route_fraction(c, true));
    fflush(stdout);
    rc = APP_EXIT_OK;
done:
    free(text);
    sf_context_free(c);
    sf_model_free(m);
    return rc;
}
