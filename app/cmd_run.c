/* sparsefuse run: complete a prompt, streaming the generated text. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "draft_cli.h"
#include "generate.h"

/* --route-map: the picture, and the share of tokens that ran each block on stderr. */
static int write_route_map(const cmd_spec *cmd, sf_context *c, const sf_model_info *info, const char *path) {
    const bool *run;
    const int n = sf_context_route_map(c, &run);
    char title[160];
    snprintf(title, sizeof title, "%s: blocks each of %d tokens ran", info->name[0] ? info->name : info->arch, n);
    if (n < 1 || sf_route_map_write(path, run, n, info->n_layer, title) != SF_OK) return app_fail(cmd, "--route-map");
    fprintf(stderr, "route map: %s; share of tokens that ran each block:", path);
    for (int l = 0; l < info->n_layer; l++) {
        int k = 0;
        for (int t = 0; t < n; t++) k += run[(size_t)t * info->n_layer + l];
        fprintf(stderr, "%s %d:%.0f%%", l % 10 ? "" : "\n ", l, 100.0 * k / n);
    }
    fprintf(stderr, "\n");
    return APP_EXIT_OK;
}

int cmd_run(int argc, char **argv) {
    app_model_opts mo = {0};
    app_sampler_opts so;
    app_sampler_opts_init(&so);
    const char *prompt = NULL, *file = NULL, *route_map = NULL;
    int n_predict = -1, n_ctx = 4096;
    bool echo = false, no_bos = false, no_special = false;
    app_draft_opts dr;
    app_draft_opts_init(&dr);
    bool *skip = NULL;
    const arg_spec args[] = {
        APP_MODEL_ARGS(&mo),
        APP_ARG_SPARSE(&mo),
        APP_ARG_ROUTES(&mo),
        {NULL, "--route-map", ARG_STR, &route_map, "FILE",
         "with --routes: draw which blocks each token of the prompt and the output ran (tokens x blocks) to FILE "
         "(.png or .svg), and print the share of tokens that ran each block",
         0, 0, NULL},
        {"-p", "--prompt", ARG_STR, &prompt, "TEXT", "the prompt", 0, 0, NULL},
        {"-f", "--file", ARG_STR, &file, "FILE", "read the prompt from FILE (its bytes as they are)", 0, 0, NULL},
        {"-n", "--n-predict", ARG_INT, &n_predict, "N",
         "generate at most N tokens (default: until end of generation or a full context)", 0, 1e9, NULL},
        {"-c", "--ctx-size", ARG_INT, &n_ctx, "N",
         "context size in tokens (default: 4096, at most the model's training context)", 1, 1 << 24, NULL},
        APP_SAMPLER_ARGS(&so),
        APP_DRAFT_ARGS(&dr),
        {NULL, "--echo", ARG_FLAG, &echo, NULL, "print the prompt to stdout before the generated text", 0, 0, NULL},
        {NULL, "--no-bos", ARG_FLAG, &no_bos, NULL, "do not add the BOS/EOS tokens the model's metadata asks for",
         0, 0, NULL},
        {NULL, "--no-special", ARG_FLAG, &no_special, NULL,
         "tokenize special-token text in the prompt (e.g. <|im_start|>) as plain text", 0, 0, NULL},
    };
    const cmd_spec cmd = {
        "run", "[options] (-p TEXT | -f FILE)",
        "Continues the prompt with the model. stdout carries only the generated text,\n"
        "streamed token by token (with --echo, the prompt first); the sampling seed and\n"
        "the prompt and generation speeds (tokens/s) go to stderr. Generation stops at an\n"
        "end-of-generation token, after -n tokens, or when the context is full.\n"
        "With --draft-skip, decoding is greedy (the sampling options must keep it so) and\n"
        "self-speculative: the output is the dense greedy output; stderr also gets the\n"
        "draft's acceptance rate.",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!app_route_opts_ok(&cmd, &mo)) return APP_EXIT_USAGE;
    if (route_map && !mo.routes) return args_error(&cmd, "--route-map needs --routes ROUTES.gguf");
    if (!prompt == !file) return args_error(&cmd, "give exactly one of -p TEXT or -f FILE");
    if (file && !app_readable(&cmd, "prompt file", file)) return APP_EXIT_USAGE;
    const char *path = app_model_path(&cmd, mo.model);
    if (!path) return APP_EXIT_USAGE;
    if ((rc = app_draft_check(&cmd, &dr)) >= 0) return rc;
    if (dr.skip) {
        /* drafting is lossless for greedy decoding only: the sampler defaults give way, explicit values must agree */
        app_sampler_opts def;
        app_sampler_opts_init(&def);
        if (so.p.temperature > 0 && so.p.temperature != def.p.temperature)
            return args_error(&cmd, "--draft-skip decodes greedily: --temp must be <= 0 (it is %g)",
                              (double)so.p.temperature);
        if (so.p.repeat_penalty != 1.0f)
            return args_error(&cmd, "--draft-skip decodes greedily: --repeat-penalty must be 1");
        if (mo.sparse) return args_error(&cmd, "--draft-skip and --sparse do not combine");
        so.p.temperature = 0.0f;
    } else {
        app_sampler_opts_finish(&so, cmd.name);
    }

    size_t len = 0;
    char *text = file ? app_read_file(&cmd, file, &len, false) : NULL;
    if (file && !text) return APP_EXIT_RUNTIME;
    if (!file) len = strlen(prompt);
    const char *ptext = file ? text : prompt;

    rc = APP_EXIT_RUNTIME;
    sf_model *m = app_load_model(&cmd, &mo, path);
    sf_context *c = m ? app_new_context(&cmd, m, &mo, n_ctx, true) : NULL;
    sf_model_info info;
    if (m) sf_model_get_info(m, &info);
    sf_sampler *s = c ? sf_sampler_new(&so.p, info.n_vocab) : NULL;
    int n_tok = 0;
    int32_t *toks = s ? app_tokenize(&cmd, m, ptext, len, !no_bos, !no_special, &n_tok) : NULL;
    if (c && !s) app_fail(&cmd, "sampler");
    if (!toks) goto done;
    if (dr.skip) {
        skip = calloc((size_t)info.n_layer, sizeof *skip);
        int lr = skip ? app_draft_layers(&cmd, &dr, m, mo.threads, skip) : APP_EXIT_RUNTIME;
        if (lr >= 0) {
            rc = lr;
            goto done;
        }
    }
    if (n_tok == 0) {
        fprintf(stderr, "sparsefuse run: the prompt is empty (no tokens to start from)\n");
        goto done;
    }
    if (n_tok >= sf_context_n_ctx(c)) {
        fprintf(stderr, "sparsefuse run: the prompt has %d tokens; the context holds %d (see -c)\n", n_tok,
                sf_context_n_ctx(c));
        goto done;
    }
    utf8_stream out = {.f = stdout};
    if (echo) {
        fwrite(ptext, 1, len, stdout);
        fflush(stdout);
    }
    for (int i = 0; i < n_tok; i++) sf_sampler_accept(s, toks[i]);
    if (route_map) sf_context_route_keep_map(c, true);
    double t_prompt;
    if (app_decode_timed(c, toks, n_tok, &t_prompt) != SF_OK) {
        app_fail(&cmd, "evaluating the prompt");
        goto done;
    }
    gen_stats st;
    sf_draft_stats ds;
    int grc = skip ? app_draft_generate(c, m, skip, dr.k, n_predict, &out, &st, &ds)
                   : app_generate(c, m, s, n_predict, &out, &st, NULL, 0);
    utf8_flush(&out);
    if (isatty(STDOUT_FILENO)) fputc('\n', stderr);
    fprintf(stderr, "prompt: %d tokens in %.3f s (%.2f t/s)\n", n_tok, t_prompt,
            t_prompt > 0 ? n_tok / t_prompt : 0.0);
    fprintf(stderr, "generation: %d tokens in %.3f s (%.2f t/s)%s\n", st.n_gen, st.seconds,
            st.seconds > 0 ? st.n_gen / st.seconds : 0.0,
            st.eog ? "" : st.ctx_full ? ", stopped: context full" : ", stopped: -n reached");
    if (skip) app_draft_report(m, skip, dr.k, &ds);
    if (grc != SF_OK) {
        app_fail(&cmd, "generation");
        goto done;
    }
    if (route_map && write_route_map(&cmd, c, &info, route_map) != APP_EXIT_OK) goto done;
    rc = APP_EXIT_OK;
done:
    free(skip);
    free(toks);
    free(text);
    sf_sampler_free(s);
    sf_context_free(c);
    sf_model_free(m);
    return rc;
}
