/* sparsefuse compare: a base model against variants of it (fused, dropped,
 * sparse...) in one table: perplexity on held-out text, mean KL divergence and
 * same-top-token rate against the base, HellaSwag acc_norm, and pp/tg speed
 * with ratios to the base. Markdown on stdout, optionally CSV. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "generate.h"
#include "plot_svg.h"
#include "sparsefuse_eval.h"
#include "sparsefuse_sparsity.h"

enum { MAX_MODELS = 16 };

typedef struct {
    const char *path;
    const char *sparse; /* side-car the variant runs with (the base model's file), or NULL */
    char name[160];     /* shown in the table */
    int n_layer;
    double ppl, ppl_err, kld, kld_err, same_top, hs_acc, hs_lo, hs_hi, pp, tg;
    int barriers;
    bool has_kld, has_hs, has_bench;
} row_t;

typedef struct {
    const char *text, *hs_file, *csv, *plot;
    char *hs_text;
    size_t text_len, hs_len;
    int n_ctx, n_chunks, n_tasks, threads;
    sf_bench_params bp;
    bool bench;
} opts_t;

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Evaluates one model; kld_path is saved (base) or compared against (variant). */
static int eval_model(const cmd_spec *cmd, const opts_t *o, row_t *r, const char *kld_path, bool is_base) {
    app_model_opts mo = {.threads = o->threads, .sparse = r->sparse};
    sf_model *m = app_load_model(cmd, &mo, r->path);
    if (!m) return APP_EXIT_RUNTIME;
    sf_model_info info;
    sf_model_get_info(m, &info);
    r->n_layer = info.n_layer;
    int rc = APP_EXIT_RUNTIME, n_tok = 0;
    int32_t *toks = NULL;
    sf_context *c = app_new_context(cmd, m, &mo, o->n_ctx > 2048 ? o->n_ctx : 2048, false);
    if (!c) goto done;
    /* a side-car: sparse on perplexity's scored half, as in `perplexity --sparse` */
    if (r->sparse) sf_context_sparse_policy(c, 1, o->n_ctx / 2);
    fprintf(stderr, "compare: %s: perplexity%s\n", r->name, is_base ? "" : " and KL divergence");
    if (is_base) {
        toks = app_tokenize(cmd, m, o->text, o->text_len, true, false, &n_tok);
        if (!toks) goto done;
    }
    sf_ppl_params pp = sf_ppl_default_params();
    pp.n_ctx = o->n_ctx;
    pp.n_chunks = o->n_chunks;
    if (is_base) pp.kld_save = kld_path;
    else pp.kld_base = kld_path;
    sf_ppl_result pr;
    if (sf_eval_perplexity(m, c, toks, n_tok, &pp, &pr) != SF_OK) {
        rc = app_fail(cmd, "perplexity");
        goto done;
    }
    r->ppl = pr.ppl;
    r->ppl_err = pr.ppl_err;
    if (pr.has_kld) {
        r->has_kld = true;
        r->kld = pr.kld;
        r->kld_err = pr.kld_err;
        r->same_top = pr.same_top;
    }
    if (o->hs_text) {
        fprintf(stderr, "compare: %s: HellaSwag\n", r->name);
        if (r->sparse) sf_context_sparse_policy(c, 1, 0); /* a task is one batch: every token sparse */
        sf_hellaswag_params hp = sf_hellaswag_default_params();
        hp.n_tasks = o->n_tasks;
        sf_hellaswag_result hr;
        if (sf_eval_hellaswag(m, c, o->hs_text, o->hs_len, &hp, &hr) != SF_OK) {
            rc = app_fail(cmd, "HellaSwag");
            goto done;
        }
        r->has_hs = true;
        r->hs_acc = hr.acc_norm;
        r->hs_lo = hr.ci_lo;
        r->hs_hi = hr.ci_hi;
    }
    if (o->bench) {
        fprintf(stderr, "compare: %s: speed\n", r->name);
        sf_bench_params bp = o->bp;
        bp.sparse = r->sparse;
        bp.n_threads = o->threads;
        sf_bench_result bpp, btg;
        if (sf_eval_bench(m, &bp, &bpp, &btg) != SF_OK) {
            rc = app_fail(cmd, "bench");
            goto done;
        }
        r->has_bench = true;
        r->pp = bpp.tps_mean;
        r->tg = btg.tps_mean;
        r->barriers = btg.barriers_per_step;
    }
    rc = APP_EXIT_OK;
done:
    free(toks);
    sf_context_free(c);
    sf_model_free(m);
    return rc;
}

static void print_table(FILE *f, const row_t *rows, int n, const opts_t *o, bool csv) {
    const row_t *b = &rows[0];
    if (csv)
        fprintf(f, "model,layers,ppl,ppl_err,kld,kld_err,same_top,hellaswag_acc_norm,hellaswag_ci_lo,hellaswag_ci_hi,"
                   "pp_tps,tg_tps,pp_ratio,tg_ratio,barriers_per_token\n");
    else {
        fprintf(f, "| model | layers | PPL | ΔPPL | mean KLD | same top | HellaSwag acc_norm | pp%d t/s | tg%d t/s | "
                   "pp ratio | tg ratio | barriers/token |\n",
                o->bp.n_prompt, o->bp.n_gen);
        fprintf(f, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    }
    for (int i = 0; i < n; i++) {
        const row_t *r = &rows[i];
        char kld[48] = "", top[24] = "", hs[48] = "", pp[24] = "", tg[24] = "", ppr[16] = "", tgr[16] = "", bar[16] = "";
        if (r->has_kld) {
            snprintf(kld, sizeof kld, csv ? "%.6f,%.6f" : "%.4f ± %.4f", r->kld, r->kld_err);
            snprintf(top, sizeof top, csv ? "%.5f" : "%.2f %%", csv ? r->same_top : 100 * r->same_top);
        } else if (csv) snprintf(kld, sizeof kld, ",");
        if (r->has_hs)
            snprintf(hs, sizeof hs, csv ? "%.5f,%.5f,%.5f" : "%.2f %% [%.1f, %.1f]", csv ? r->hs_acc : 100 * r->hs_acc,
                     csv ? r->hs_lo : 100 * r->hs_lo, csv ? r->hs_hi : 100 * r->hs_hi);
        else if (csv) snprintf(hs, sizeof hs, ",,");
        if (r->has_bench) {
            snprintf(pp, sizeof pp, "%.2f", r->pp);
            snprintf(tg, sizeof tg, "%.2f", r->tg);
            snprintf(ppr, sizeof ppr, "%.3f", r->pp / b->pp);
            snprintf(tgr, sizeof tgr, "%.3f", r->tg / b->tg);
            if (r->barriers >= 0) snprintf(bar, sizeof bar, "%d", r->barriers);
        }
        const double dppl = 100.0 * (r->ppl / b->ppl - 1.0);
        if (csv)
            fprintf(f, "%s,%d,%.6f,%.6f,%s,%s,%s,%s,%s,%s,%s,%s\n", r->name, r->n_layer, r->ppl, r->ppl_err,
                    kld, top, hs, pp, tg, ppr, tgr, bar);
        else
            fprintf(f, "| %s%s | %d | %.4f ± %.4f | %+.2f %% | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                    r->name, i == 0 ? " (base)" : "", r->n_layer, r->ppl, r->ppl_err, dppl,
                    i == 0 ? "—" : kld, i == 0 ? "—" : top, hs, pp, tg, ppr, tgr, bar);
    }
}

typedef struct {
    const row_t *rows;
    int n;
    const opts_t *o;
} table_t;

static void emit_csv(FILE *f, const table_t *t) { print_table(f, t->rows, t->n, t->o, true); }

/* The speed/quality frontier: tg ratio against mean KLD, one point per row. */
static void emit_plot(FILE *f, const table_t *t) {
    svg_point pts[MAX_MODELS];
    for (int i = 0; i < t->n; i++)
        pts[i] = (svg_point){i == 0 ? 0.0 : t->rows[i].kld, t->rows[i].tg / t->rows[0].tg, t->rows[i].name};
    char title[256];
    snprintf(title, sizeof title, "%s: decode speed against KL divergence", t->rows[0].name);
    svg_scatter(f, title, "mean KL divergence against the base (nats)", "tg tokens/s / base", pts, t->n, true);
}

/* path written through a temporary file and a rename */
static int write_atomic(const cmd_spec *cmd, const char *path, void (*emit)(FILE *, const table_t *),
                        const table_t *t) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return args_error(cmd, "cannot write %s: %s", tmp, strerror(errno));
    emit(f, t);
    const bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        unlink(tmp);
        fprintf(stderr, "sparsefuse compare: cannot write %s\n", path);
        return APP_EXIT_RUNTIME;
    }
    return APP_EXIT_OK;
}

int cmd_compare(int argc, char **argv) {
    /* -m may repeat: collect the models, parse the rest with the table */
    const char *models[MAX_MODELS], *sparse[MAX_MODELS];
    int n_models = 0, n_sparse = 0;
    char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
    int n_rest = 0;
    if (!rest) return APP_EXIT_RUNTIME;
    rest[n_rest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            if (n_models == MAX_MODELS) {
                free(rest);
                fprintf(stderr, "sparsefuse compare: at most %d models\n", MAX_MODELS);
                return APP_EXIT_USAGE;
            }
            models[n_models++] = argv[++i];
        } else if (!strcmp(argv[i], "--sparse") && i + 1 < argc) {
            if (n_sparse == MAX_MODELS) {
                free(rest);
                fprintf(stderr, "sparsefuse compare: at most %d side-cars\n", MAX_MODELS);
                return APP_EXIT_USAGE;
            }
            sparse[n_sparse++] = argv[++i];
        } else rest[n_rest++] = argv[i];
    }
    opts_t o = {.n_ctx = 512, .n_chunks = 20, .n_tasks = 100, .bench = true};
    o.bp = sf_bench_default_params();
    o.bp.reps = 3;
    bool no_bench = false;
    const char *text_file = NULL, *m_listed = NULL, *s_listed = NULL; /* taken out above; for --help */
    const arg_spec args[] = {
        {"-m", "--model", ARG_STR, &m_listed, "FILE", "a model; give it twice or more: the first is the base", 0, 0, NULL},
        {NULL, "--sparse", ARG_STR, &s_listed, "SIDE.gguf",
         "a variant: the base model with this sparsity side-car (sparsify); may repeat", 0, 0, NULL},
        {"-f", "--file", ARG_STR, &text_file, "FILE", "held-out text for perplexity and KL divergence (required)", 0, 0,
         NULL},
        {"-c", "--ctx-size", ARG_INT, &o.n_ctx, "N", "perplexity chunk length (default: 512)", 16, 1 << 16, NULL},
        {NULL, "--chunks", ARG_INT, &o.n_chunks, "N", "perplexity chunks (default: 20; 0: the whole text)", 0, 1e9,
         NULL},
        {NULL, "--hellaswag", ARG_STR, &o.hs_file, "FILE", "HellaSwag tasks in llama.cpp's format (optional)", 0, 0,
         NULL},
        {NULL, "--tasks", ARG_INT, &o.n_tasks, "N", "HellaSwag tasks (default: 100)", 1, 1e7, NULL},
        {"-p", "--n-prompt", ARG_INT, &o.bp.n_prompt, "N", "pp test length (default: 512)", 1, 1 << 20, NULL},
        {"-n", "--n-gen", ARG_INT, &o.bp.n_gen, "N", "tg test length (default: 128)", 1, 1 << 20, NULL},
        {"-r", "--repetitions", ARG_INT, &o.bp.reps, "N", "speed repetitions (default: 3)", 1, 1000, NULL},
        {NULL, "--no-bench", ARG_FLAG, &no_bench, NULL, "skip the speed tests", 0, 0, NULL},
        {"-t", "--threads", ARG_INT, &o.threads, "N", "threads (default: physical cores)", 1, 4096, NULL},
        {NULL, "--csv", ARG_STR, &o.csv, "FILE", "also write the table as CSV (atomically)", 0, 0, NULL},
        {NULL, "--plot", ARG_STR, &o.plot, "FILE.svg",
         "also write the frontier plot, tg speed ratio against mean KLD per row, as SVG (atomically)", 0, 0, NULL},
    };
    const cmd_spec cmd = {
        "compare", "-m BASE (-m VARIANT | --sparse SIDE.gguf)... -f TEXT [options]",
        "Compares variants of a model with their base in one table: perplexity on -f\n"
        "(llama.cpp's method, --chunks chunks of -c tokens), mean KL divergence and\n"
        "same-top-token rate of each variant against the base on the same tokens,\n"
        "HellaSwag acc_norm with its 95% interval (--hellaswag), and pp/tg tokens/s with\n"
        "ratios to the base (llama-bench's tests, -r repetitions each; machines are\n"
        "noisy, read ratios from one run). A --sparse row is the base model with that\n"
        "sparsity side-car: sparse on the scored half of each perplexity chunk, on every\n"
        "token of a HellaSwag task, and on decode steps. Markdown to stdout; --csv for scripts;\n"
        "--plot draws each row's decode speed ratio against its mean KLD, with the frontier\n"
        "of rows no other row beats on both.",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, n_rest, rest);
    free(rest);
    if (rc >= 0) return rc;
    if (n_models < 1 || n_models + n_sparse < 2)
        return args_error(&cmd, "give a base and at least one variant: -m BASE -m VARIANT or --sparse SIDE.gguf");
    if (n_models + n_sparse > MAX_MODELS) return args_error(&cmd, "at most %d rows", MAX_MODELS);
    for (int i = 0; i < n_sparse; i++)
        if (!app_readable(&cmd, "side-car", sparse[i])) return APP_EXIT_USAGE;
    if (!text_file) return args_error(&cmd, "no held-out text: give -f FILE");
    if (!app_readable(&cmd, "text", text_file)) return APP_EXIT_USAGE;
    if (o.hs_file && !app_readable(&cmd, "HellaSwag file", o.hs_file)) return APP_EXIT_USAGE;
    for (int i = 0; i < n_models; i++)
        if (!app_readable(&cmd, "model", models[i])) return APP_EXIT_USAGE;
    o.bench = !no_bench;
    if (o.plot && no_bench) return args_error(&cmd, "--plot needs the speed tests: drop --no-bench");
    char *text = app_read_file(&cmd, text_file, &o.text_len, false);
    if (!text) return APP_EXIT_RUNTIME;
    o.text = text;
    if (o.hs_file && !(o.hs_text = app_read_file(&cmd, o.hs_file, &o.hs_len, true))) {
        free(text);
        return APP_EXIT_RUNTIME;
    }
    char kld[] = "/tmp/sparsefuse-compare-XXXXXX";
    const int fd = mkstemp(kld);
    if (fd < 0) {
        free(text);
        free(o.hs_text);
        return args_error(&cmd, "cannot create a temporary file: %s", strerror(errno));
    }
    close(fd);
    row_t rows[MAX_MODELS] = {{0}};
    rc = APP_EXIT_OK;
    const int n_rows = n_models + n_sparse;
    for (int i = 0; i < n_rows; i++) {
        row_t *r = &rows[i];
        r->path = i < n_models ? models[i] : models[0];
        r->sparse = i < n_models ? NULL : sparse[i - n_models];
        if (r->sparse) snprintf(r->name, sizeof r->name, "%s + %s", base_name(r->path), base_name(r->sparse));
        else snprintf(r->name, sizeof r->name, "%s", base_name(r->path));
    }
    for (int i = 0; i < n_rows && rc == APP_EXIT_OK; i++) rc = eval_model(&cmd, &o, &rows[i], kld, i == 0);
    unlink(kld);
    if (rc == APP_EXIT_OK) {
        print_table(stdout, rows, n_rows, &o, false);
        const table_t t = {rows, n_rows, &o};
        if (o.csv) rc = write_atomic(&cmd, o.csv, emit_csv, &t);
        if (rc == APP_EXIT_OK && o.plot) rc = write_atomic(&cmd, o.plot, emit_plot, &t);
    }
    free(text);
    free(o.hs_text);
    return rc;
}
