/* sparsefuse bench: llama-bench's pp/tg tests as a markdown table (or CSV /
 * JSON), with the effective weight bandwidth, the barriers per forward step
 * and, with --bandwidth, a STREAM-like memory copy test; with --sparse
 * --union, the union effect of the side-car's masks on a text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "draft_cli.h"
#include "sparsefuse_eval.h"
#include "sparsefuse_sparsity.h"

typedef enum { OUT_MD, OUT_CSV, OUT_JSON } out_format;

typedef struct {
    out_format fmt;
    int n_threads;
    int n_items; /* objects / rows printed so far */
    char model[96];
    const sf_model_info *info;
} printer;

/* ------------------------------------------------------------- bandwidth */

static void print_bandwidth(printer *p, const sf_bandwidth_result *bw) {
    switch (p->fmt) {
    case OUT_MD:
        printf("memory bandwidth (copy, 2 x %zu MiB, %d threads, %d reps): best %.2f GB/s, median %.2f GB/s "
               "(bytes read + written)\n",
               bw->array_bytes >> 20, bw->n_threads, bw->reps, bw->gbps_best, bw->gbps_median);
        break;
    case OUT_CSV:
        printf("bandwidth,,,,%d,,%d,,,%.3f,,,\n", bw->n_threads, bw->reps, bw->gbps_best);
        break;
    case OUT_JSON:
        printf("%s  {\"test\": \"bandwidth\", \"n_threads\": %d, \"reps\": %d, \"array_bytes\": %zu, "
               "\"gbps\": %.3f, \"gbps_median\": %.3f}",
               p->n_items ? ",\n" : "", bw->n_threads, bw->reps, bw->array_bytes, bw->gbps_best, bw->gbps_median);
        break;
    }
    p->n_items++;
    fflush(stdout);
}

/* ------------------------------------------------------------------ tests */

static void print_md_header(void) {
    printf("| %-30s | %10s | %10s | %-10s | %7s | %15s | %20s | %10s |\n", "model", "size", "params", "backend",
           "threads", "test", "t/s", "GB/s");
    printf("| ------------------------------ | ---------: | ---------: | ---------- | ------: | --------------: "
           "| -------------------: | ---------: |\n");
}

/* Start of a csv / json document (md prints a table header per model). */
static void print_doc_start(const printer *p) {
    if (p->fmt == OUT_CSV)
        printf("test,model,size_bytes,n_params,n_threads,n_tokens,reps,tps_mean,tps_std,gbps,weight_bytes,"
               "barriers_per_step,samples\n");
    if (p->fmt == OUT_JSON) printf("[\n");
    fflush(stdout);
}

static void print_md_row(const printer *p, const char *test, const sf_bench_result *r) {
    const sf_model_info *info = p->info;
    char size[32], params[32], tps[48];
    double mib = (double)info->size_bytes / (1024.0 * 1024.0);
    if (mib >= 1024.0) snprintf(size, sizeof size, "%.2f GiB", mib / 1024.0);
    else snprintf(size, sizeof size, "%.2f MiB", mib);
    if (info->n_params >= 1000000000) snprintf(params, sizeof params, "%.2f B", (double)info->n_params / 1e9);
    else snprintf(params, sizeof params, "%.2f M", (double)info->n_params / 1e6);
    snprintf(tps, sizeof tps, "%.2f ± %.2f", r->tps_mean, r->tps_std);
    /* "±" is 2 bytes but one column: pad by one more */
    printf("| %-30s | %10s | %10s | %-10s | %7d | %15s | %21s | %10.2f |\n", p->model, size, params, "CPU",
           p->n_threads, test, tps, r->gbps);
}

static void print_row(printer *p, const char *test, const sf_bench_result *r) {
    switch (p->fmt) {
    case OUT_MD:
        print_md_row(p, test, r);
        break;
    case OUT_CSV:
        printf("%s,%s,%llu,%lld,%d,%d,%d,%.4f,%.4f,%.3f,%llu,%d,", test, p->model,
               (unsigned long long)p->info->size_bytes, (long long)p->info->n_params, p->n_threads, r->n_tokens,
               r->reps, r->tps_mean, r->tps_std, r->gbps, (unsigned long long)r->weight_bytes, r->barriers_per_step);
        for (int i = 0; i < r->reps; i++) printf("%s%.4f", i ? " " : "", r->samples[i]);
        printf("\n");
        break;
    case OUT_JSON:
        printf("%s  {\"test\": \"%s\", \"model\": \"%s\", \"size_bytes\": %llu, \"n_params\": %lld, "
               "\"n_threads\": %d, \"n_tokens\": %d, \"n_depth\": %d, \"reps\": %d, \"tps_mean\": %.4f, \"tps_std\": %.4f, "
               "\"samples\": [",
               p->n_items ? ",\n" : "", test, p->model, (unsigned long long)p->info->size_bytes,
               (long long)p->info->n_params, p->n_threads, r->n_tokens, r->n_depth, r->reps, r->tps_mean, r->tps_std);
        for (int i = 0; i < r->reps; i++) printf("%s%.4f", i ? ", " : "", r->samples[i]);
        printf("], \"gbps\": %.3f, \"weight_bytes\": %llu, \"barriers_per_step\": %d", r->gbps,
               (unsigned long long)r->weight_bytes, r->barriers_per_step);
        if (r->sparse)
            printf(", \"sparse_bytes\": %llu, \"sparse_gbps\": %.3f, \"hidden_density\": %.4f, \"in_density\": %.4f, "
                   "\"attn_density\": %.4f",
                   (unsigned long long)r->sparse_bytes, r->sparse_gbps, r->hidden_density, r->in_density,
                   r->attn_density);
        printf("}");
        break;
    }
    p->n_items++;
    fflush(stdout);
}

/* The lines under the markdown table: barriers per step and what GB/s means. */
static void print_md_notes(const sf_bench_result *pp, const sf_bench_result *tg, int n_batch) {
    if (tg) {
        if (tg->barriers_per_step >= 0) printf("\nbarriers per token (decode): %d\n", tg->barriers_per_step);
        else printf("\nbarriers per token (decode): unknown\n");
    }
    if (pp) {
        if (pp->barriers_per_step >= 0)
            printf("%sbarriers per pp%d batch (%d tokens per batch): %d\n", tg ? "" : "\n", pp->n_tokens,
                   n_batch < pp->n_tokens ? n_batch : pp->n_tokens, pp->barriers_per_step);
        else printf("%sbarriers per pp%d batch: unknown\n", tg ? "" : "\n", pp->n_tokens);
    }
    const sf_bench_result *r = tg ? tg : pp;
    printf("GB/s: weight matrices read per forward step (%.2f MiB) x steps/s; tg: one step per token, "
           "pp: one per batch\n",
           (double)r->weight_bytes / (1024.0 * 1024.0));
    if (tg && tg->sparse) {
        printf("sparse decode: %.2f MiB of weights read per token (%.2f GB/s); active FFN neurons %.1f %%",
               (double)tg->sparse_bytes / (1024.0 * 1024.0), tg->sparse_gbps, 100.0 * tg->hidden_density);
        if (tg->in_density >= 0) printf(", FFN input channels %.1f %%", 100.0 * tg->in_density);
        if (tg->attn_density >= 0) printf(", attention channels %.1f %%", 100.0 * tg->attn_density);
        printf("\n");
    }
    for (int i = 0; i < 2; i++) {
        const sf_bench_result *x = i ? tg : pp;
        if (x && x->routed)
            printf("routes: %s%d ran %.1f %% of the (token, block) executions\n", i ? "tg" : "pp", x->n_tokens,
                   100.0 * x->block_fraction);
    }
}

/* ------------------------------------------------------------------- main */

static int parse_format(const char *s, out_format *fmt) {
    if (!s || !strcmp(s, "md")) *fmt = OUT_MD;
    else if (!strcmp(s, "csv")) *fmt = OUT_CSV;
    else if (!strcmp(s, "json")) *fmt = OUT_JSON;
    else return -1;
    return 0;
}

static int run_bandwidth(const cmd_spec *cmd, printer *p) {
    sf_bandwidth_params bwp = sf_bandwidth_default_params();
    bwp.n_threads = p->n_threads;
    sf_bandwidth_result bw;
    if (sf_eval_bandwidth(&bwp, &bw) != SF_OK) return app_fail(cmd, "memory bandwidth");
    print_bandwidth(p, &bw);
    return APP_EXIT_OK;
}

/* --union: the active fraction of the union of the side-car's masks over
 * batches of consecutive tokens of a text (sf_sparse_union). */
static int run_union(const cmd_spec *cmd, const app_model_opts *mo, const char *path, const char *file, int n_threads) {
    size_t len = 0;
    char *text = app_read_file(cmd, file, &len, false);
    if (!text) return APP_EXIT_RUNTIME;
    int rc = APP_EXIT_RUNTIME, n_tok = 0;
    int32_t *toks = NULL;
    sf_context *c = NULL;
    sf_model *m = app_load_model(cmd, mo, path);
    if (m) toks = app_tokenize(cmd, m, text, len, true, false, &n_tok);
    enum { N = 512 };
    if (toks && n_tok < N) fprintf(stderr, "sparsefuse bench: --union: %s has %d tokens, fewer than %d\n", file, n_tok, N);
    else if (toks) {
        sf_context_params cp = sf_context_default_params();
        cp.n_ctx = cp.n_batch = N;
        cp.n_threads = n_threads;
        c = sf_context_new(m, &cp);
        if (!c || sf_context_use_sparse(c, mo->sparse) != SF_OK) rc = app_fail(cmd, "--union");
        else {
            static const int batches[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
            enum { K = sizeof batches / sizeof batches[0] };
            double in[K], hid[K];
            if (sf_sparse_union(c, toks, N, batches, K, in, hid) != SF_OK) rc = app_fail(cmd, "--union");
            else {
                printf("\nunion of the per-token masks over batches of consecutive tokens (first %d tokens of %s):\n\n"
                       "| batch | active FFN inputs | active FFN neurons |\n| ---: | ---: | ---: |\n",
                       N, file);
                for (int k = 0; k < K; k++) {
                    printf("| %d |", batches[k]);
                    const double v[2] = {in[k], hid[k]};
                    for (int s = 0; s < 2; s++)
                        if (v[s] < 0) printf(" dense |");
                        else printf(" %.1f %% |", 100.0 * v[s]);
                    printf("\n");
                }
                rc = APP_EXIT_OK;
            }
        }
    }
    sf_context_free(c);
    free(toks);
    free(text);
    sf_model_free(m);
    return rc;
}

/* pp then tg on the model at path; prints the rows and, for md, the notes. */
static int run_tests(const cmd_spec *cmd, const app_model_opts *mo, const char *path, sf_bench_params bp,
                     printer *p, const char *text_file) {
    sf_model *m = app_load_model(cmd, mo, path);
    if (!m) return APP_EXIT_RUNTIME;
    int32_t *text_toks = NULL;
    if (text_file) { /* the text's tokens instead of random ones */
        size_t len = 0;
        char *text = app_read_file(cmd, text_file, &len, false);
        if (text) text_toks = app_tokenize(cmd, m, text, len, false, false, &bp.n_text);
        free(text);
        if (text_toks && bp.n_text == 0) fprintf(stderr, "sparsefuse bench: --text %s has no tokens\n", text_file);
        if (!text_toks || bp.n_text == 0) {
            free(text_toks);
            sf_model_free(m);
            return APP_EXIT_RUNTIME;
        }
        bp.text = text_toks;
    }
    sf_model_info info;
    sf_model_get_info(m, &info);
    p->info = &info;
    snprintf(p->model, sizeof p->model, "%s %.0fM %s", info.arch, (double)info.n_params / 1e6, info.ftype);
    bp.n_threads = p->n_threads;
    bp.n_batch = mo->batch;
    bp.sparse = mo->sparse;
    bp.routes = mo->routes;
    app_route_policy(mo, &bp.route_policy);
    if (p->fmt == OUT_MD) print_md_header();
    fflush(stdout);
    sf_bench_result pp, tg;
    bool have_pp = false, have_tg = false;
    int rc = APP_EXIT_OK;
    for (int pass = 0; pass < 2 && rc == APP_EXIT_OK; pass++) {
        sf_bench_params one = bp;
        char test[32];
        if (pass == 0) {
            if (bp.n_prompt == 0) continue;
            one.n_gen = 0;
            snprintf(test, sizeof test, "pp%d", bp.n_prompt);
            if (bp.n_depth > 0) snprintf(test + strlen(test), sizeof test - strlen(test), " @ d%d", bp.n_depth);
        } else {
            if (bp.n_gen == 0) continue;
            one.n_prompt = 0;
            snprintf(test, sizeof test, "tg%d", bp.n_gen);
            if (bp.n_depth > 0) snprintf(test + strlen(test), sizeof test - strlen(test), " @ d%d", bp.n_depth);
        }
        sf_bench_result *r = pass == 0 ? &pp : &tg;
        if (sf_eval_bench(m, &one, pass == 0 ? r : NULL, pass == 1 ? r : NULL) != SF_OK) {
            rc = app_fail(cmd, test);
        } else {
            print_row(p, test, r);
            if (pass == 0) have_pp = true;
            else have_tg = true;
        }
    }
    if (p->fmt == OUT_MD && (have_pp || have_tg))
        print_md_notes(have_pp ? &pp : NULL, have_tg ? &tg : NULL, mo->batch > 0 ? mo->batch : 512);
    p->info = NULL;
    free(text_toks);
    sf_model_free(m);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    app_model_opts mo = {0};
    sf_bench_params bp = sf_bench_default_params();
    bool bandwidth = false;
    const char *output = NULL, *union_text = NULL, *text_file = NULL, *draft_prompt = NULL;
    app_draft_opts dr;
    app_draft_opts_init(&dr);
    const arg_spec args[] = {
        APP_MODEL_ARGS(&mo),
        APP_ARG_SPARSE(&mo),
        APP_ARG_ROUTES(&mo),
        {"-p", "--n-prompt", ARG_INT, &bp.n_prompt, "N", "prompt-processing test length; 0 skips it (default: 512)",
         0, 1 << 20, NULL},
        {"-n", "--n-gen", ARG_INT, &bp.n_gen, "N", "generation test length; 0 skips it (default: 128)", 0, 1 << 20,
         NULL},
        {"-r", "--repetitions", ARG_INT, &bp.reps, "N", "timed repetitions per test (default: 5)", 1,
         SF_BENCH_MAX_REPS, NULL},
        {"-d", "--n-depth", ARG_INT, &bp.n_depth, "N",
         "tokens already in the KV cache before each test (llama-bench -d; decoded untimed; default: 0)", 0, 1 << 20,
         NULL},
        {NULL, "--sparse-batch", ARG_INT, &bp.sparse_batch, "N",
         "with --sparse: every token of a call of at most N tokens runs sparse, one by one, so pp with -b N "
         "measures sparse prefill (default: 1, decode steps only)",
         1, 1 << 20, NULL},
        {NULL, "--text", ARG_STR, &text_file, "FILE",
         "decode FILE's tokens instead of random ones (depth, then pp, then tg take consecutive slices, wrapping "
         "around), so variants whose work depends on the data (--routes, --sparse) are timed on text",
         0, 0, NULL},
        {NULL, "--union", ARG_STR, &union_text, "TEXT",
         "with --sparse: also print the active fraction of the union of the per-token masks over batches of "
         "1..512 consecutive tokens of TEXT's first 512 tokens (md only)",
         0, 0, NULL},
        {NULL, "--bandwidth", ARG_FLAG, &bandwidth, NULL,
         "also measure memory bandwidth (copy of 2 x 256 MiB with the -t threads, best and median of 5);"
         " without -m, only that",
         0, 0, NULL},
        {"-o", "--output", ARG_STR, &output, "FMT", "md, csv or json (default: md)", 0, 0, NULL},
        APP_DRAFT_ARGS(&dr),
        {NULL, "--draft-prompt", ARG_STR, &draft_prompt, "FILE",
         "with --draft-skip: the prompt the two tg tests continue (default: a built-in paragraph)", 0, 0, NULL},
    };
    const cmd_spec cmd = {
        "bench", "[options]",
        "Measures speed as llama-bench does: ppN decodes N random tokens as one prompt,\n"
        "tgN generates N tokens one at a time (random tokens, or --text's: nothing is\n"
        "tokenized or sampled inside the timing). Each test runs once to warm up, then -r timed times;\n"
        "t/s is the mean ± standard deviation. GB/s is the effective weight bandwidth:\n"
        "the bytes of every weight matrix a forward step reads (all 2-D layer weights and\n"
        "the output matrix) times forward steps per second (tg: one step per token, pp:\n"
        "one per batch of -b tokens). Under the table: the thread-pool barriers per token\n"
        "(tg) and per batch (pp).\n"
        "Output goes to stdout: a markdown table (md); csv, one row per test with a\n"
        "header; or json, an array with one object per test (test, n_threads, n_tokens,\n"
        "reps, tps_mean, tps_std, samples: t/s of each repetition, gbps, weight_bytes,\n"
        "barriers_per_step). The --bandwidth result is a row/object with test\n"
        "\"bandwidth\" (gbps: the best copy rate, bytes read + written, 1 GB = 1e9 B).\n"
        "With --draft-skip (md only, no pp test): two rows on a real prompt instead,\n"
        "tgN, the one-token greedy loop, and tgN+draft, self-speculative decoding of the\n"
        "same N tokens (end-of-generation tokens do not stop either), alternated in each\n"
        "repetition after one warm-up of each; t/s counts the N generated tokens, with\n"
        "the acceptance rate and tokens per verify pass, then the speedup and whether\n"
        "the two outputs were identical (exit status 1 if not).",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!app_route_opts_ok(&cmd, &mo)) return APP_EXIT_USAGE;
    printer p = {0};
    if (parse_format(output, &p.fmt) != 0)
        return args_error(&cmd, "--output: '%s' is not one of md, csv, json", output);
    const bool tests = !bandwidth || mo.model; /* --bandwidth alone: no model */
    if (union_text && !mo.sparse) return args_error(&cmd, "--union needs --sparse SIDE.gguf");
    if (union_text && p.fmt != OUT_MD) return args_error(&cmd, "--union prints a markdown table: use -o md");
    if (bp.sparse_batch > 1 && !mo.sparse) return args_error(&cmd, "--sparse-batch needs --sparse SIDE.gguf");
    if (union_text && !app_readable(&cmd, "text", union_text)) return APP_EXIT_USAGE;
    if (text_file && !app_readable(&cmd, "text", text_file)) return APP_EXIT_USAGE;
    if ((rc = app_draft_check(&cmd, &dr)) >= 0) return rc;
    if (draft_prompt && !dr.skip) return args_error(&cmd, "--draft-prompt needs --draft-skip");
    if (dr.skip) {
        if (p.fmt != OUT_MD || bandwidth || union_text || mo.sparse || mo.routes || text_file)
            return args_error(&cmd, "--draft-skip runs its own two tests (md): no -o csv/json, --bandwidth, "
                                    "--union, --sparse, --routes or --text with it");
        if (bp.n_gen == 0) return args_error(&cmd, "--draft-skip measures generation: -n must be > 0");
        if (draft_prompt && !app_readable(&cmd, "prompt", draft_prompt)) return APP_EXIT_USAGE;
        const char *mpath = app_model_path(&cmd, mo.model);
        if (!mpath) return APP_EXIT_USAGE;
        return app_draft_bench(&cmd, &mo, mpath, &dr, draft_prompt, bp.n_gen, bp.reps, mo.threads);
    }
    if (tests && bp.n_prompt == 0 && bp.n_gen == 0 && !union_text)
        return args_error(&cmd, "both tests are off (-p 0 -n 0)");
    const char *path = NULL;
    if (tests && !(path = app_model_path(&cmd, mo.model))) return APP_EXIT_USAGE;
    p.n_threads = mo.threads > 0 ? mo.threads : app_physical_cores();

    print_doc_start(&p);
    rc = APP_EXIT_OK;
    if (bandwidth) rc = run_bandwidth(&cmd, &p);
    if (rc == APP_EXIT_OK && tests) {
        if (bandwidth && p.fmt == OUT_MD) printf("\n");
        if (bp.n_prompt > 0 || bp.n_gen > 0) rc = run_tests(&cmd, &mo, path, bp, &p, text_file);
        if (rc == APP_EXIT_OK && union_text) rc = run_union(&cmd, &mo, path, union_text, p.n_threads);
    }
    if (p.fmt == OUT_JSON) printf("%s]\n", p.n_items ? "\n" : "");
    fflush(stdout);
    return rc;
}
