/* sparsefuse chat: a conversation with the model's chat template, one user
 * turn per input line. The KV cache is kept across turns: each turn the
 * whole conversation is formatted and tokenized, and only the tokens after
 * the part already in the cache are evaluated. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "generate.h"

typedef struct {
    const cmd_spec *cmd;
    sf_model *m;
    sf_context *c;
    sf_sampler *s;
    const char *tmpl;        /* template name */
    int n_predict;
    bool verbose;
    sf_chat_message *msgs;   /* [n_msgs] conversation so far (owned strings) */
    int n_msgs, cap_msgs;
    int32_t *kv;             /* [n_ctx] tokens now in the KV cache */
    int n_kv;
    int n_turns, n_gen_total;
    double gen_seconds;
} chat_state;

static bool push_msg(chat_state *cs, const char *role, const char *content, size_t len) {
    if (cs->n_msgs == cs->cap_msgs) {
        int cap = cs->cap_msgs ? cs->cap_msgs * 2 : 8;
        sf_chat_message *nm = realloc(cs->msgs, (size_t)cap * sizeof *nm);
        if (!nm) return false;
        cs->msgs = nm;
        cs->cap_msgs = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return false;
    memcpy(copy, content, len);
    copy[len] = '\0';
    cs->msgs[cs->n_msgs].role = role;
    cs->msgs[cs->n_msgs].content = copy;
    cs->n_msgs++;
    return true;
}

/* Evaluates the new part of the formatted conversation. */
static int feed_conversation(chat_state *cs) {
    char *text = NULL;
    if (sf_chat_apply(cs->m, cs->tmpl, cs->msgs, cs->n_msgs, true, &text) != SF_OK)
        return app_fail(cs->cmd, "formatting the conversation");
    int n = 0;
    int32_t *toks = app_tokenize(cs->cmd, cs->m, text, strlen(text), true, true, &n);
    free(text);
    if (!toks) return APP_EXIT_RUNTIME;
    int n_ctx = sf_context_n_ctx(cs->c);
    if (n >= n_ctx) {
        fprintf(stderr, "sparsefuse chat: the conversation has %d tokens; the context holds %d (see -c)\n", n,
                n_ctx);
        free(toks);
        return APP_EXIT_RUNTIME;
    }
    int keep = 0;
    while (keep < n && keep < cs->n_kv && toks[keep] == cs->kv[keep]) keep++;
    if (keep == n) keep = n - 1; /* at least one token to get fresh logits */
    int rc = sf_kv_truncate(cs->c, keep);
    if (rc == SF_OK) rc = sf_decode(cs->c, toks + keep, n - keep, false);
    if (rc != SF_OK) {
        free(toks);
        cs->n_kv = 0;
        sf_kv_truncate(cs->c, 0);
        return app_fail(cs->cmd, "evaluating the conversation");
    }
    if (cs->verbose) fprintf(stderr, "chat: %d tokens reused from the cache, %d evaluated\n", keep, n - keep);
    for (int i = keep; i < n; i++) sf_sampler_accept(cs->s, toks[i]);
    memcpy(cs->kv, toks, (size_t)n * sizeof *toks);
    cs->n_kv = n;
    free(toks);
    return APP_EXIT_OK;
}

static int chat_turn(chat_state *cs, const char *user, size_t len) {
    if (!push_msg(cs, "user", user, len)) return app_fail(cs->cmd, "out of memory");
    int rc = feed_conversation(cs);
    if (rc != APP_EXIT_OK) return rc;
    utf8_stream out = {.f = stdout, .capture = true};
    gen_stats st;
    int n_ctx = sf_context_n_ctx(cs->c);
    int grc = app_generate(cs->c, cs->m, cs->s, cs->n_predict, &out, &st, cs->kv + cs->n_kv, n_ctx - cs->n_kv);
    utf8_flush(&out);
    fputc('\n', stdout);
    fflush(stdout);
    cs->n_kv += st.n_decoded;
    cs->n_turns++;
    cs->n_gen_total += st.n_gen;
    cs->gen_seconds += st.seconds;
    bool ok = push_msg(cs, "assistant", out.text ? out.text : "", out.len);
    free(out.text);
    if (grc != SF_OK) return app_fail(cs->cmd, "generation");
    if (!ok) return app_fail(cs->cmd, "out of memory");
    if (st.ctx_full) {
        fprintf(stderr, "sparsefuse chat: the context is full\n");
        return APP_EXIT_RUNTIME;
    }
    return APP_EXIT_OK;
}

/* One user turn per line of stdin; empty lines are skipped. */
static int chat_loop(chat_state *cs) {
    bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    int rc = APP_EXIT_OK;
    for (;;) {
        if (tty) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (n == 0) continue;
        rc = chat_turn(cs, line, (size_t)n);
        if (rc != APP_EXIT_OK) break;
    }
    free(line);
    return rc;
}

static bool known_template(const char *name) {
    for (const char *const *t = sf_chat_template_names(); *t; t++)
        if (strcmp(*t, name) == 0) return true;
    return false;
}

int cmd_chat(int argc, char **argv) {
    app_model_opts mo = {0};
    app_sampler_opts so;
    app_sampler_opts_init(&so);
    const char *prompt = NULL, *tmpl = NULL, *system = NULL;
    int n_predict = -1, n_ctx = 4096;
    const arg_spec args[] = {
        APP_MODEL_ARGS(&mo),
        APP_ARG_SPARSE(&mo),
        APP_ARG_ROUTES(&mo),
        {"-p", "--prompt", ARG_STR, &prompt, "TEXT", "one user turn: answer it and exit (stdin is not read)", 0, 0,
         NULL},
        {"-n", "--n-predict", ARG_INT, &n_predict, "N",
         "at most N tokens per reply (default: until end of turn or a full context)", 0, 1e9, NULL},
        {"-c", "--ctx-size", ARG_INT, &n_ctx, "N",
         "context size in tokens (default: 4096, at most the model's training context)", 1, 1 << 24, NULL},
        {NULL, "--chat-template", ARG_STR, &tmpl, "NAME",
         "chatml, llama2, llama2-sys, llama2-sys-bos, llama2-sys-strip, llama3, gemma or zephyr "
         "(default: detected from the model)",
         0, 0, NULL},
        {NULL, "--system", ARG_STR, &system, "TEXT", "system message opening the conversation", 0, 0, NULL},
        APP_SAMPLER_ARGS(&so),
    };
    const cmd_spec cmd = {
        "chat", "[options] [-p TEXT]",
        "Chats with the model using its chat template. Each line of stdin is one user\n"
        "turn (interactive on a terminal, or piped); with -p, a single turn. Replies are\n"
        "streamed to stdout, each ending with a newline, and stop at the end-of-turn\n"
        "token. The KV cache is kept across turns, so only new tokens are evaluated.",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!app_route_opts_ok(&cmd, &mo)) return APP_EXIT_USAGE;
    if (tmpl && !known_template(tmpl)) return args_error(&cmd, "unknown chat template '%s'", tmpl);
    const char *path = app_model_path(&cmd, mo.model);
    if (!path) return APP_EXIT_USAGE;
    app_sampler_opts_finish(&so, cmd.name);

    chat_state cs = {.cmd = &cmd, .n_predict = n_predict, .verbose = mo.verbose};
    rc = APP_EXIT_RUNTIME;
    cs.m = app_load_model(&cmd, &mo, path);
    if (!cs.m) goto done;
    cs.c = app_new_context(&cmd, cs.m, &mo, n_ctx, true);
    if (!cs.c) goto done;
    sf_model_info info;
    sf_model_get_info(cs.m, &info);
    cs.s = sf_sampler_new(&so.p, info.n_vocab);
    cs.kv = malloc((size_t)sf_context_n_ctx(cs.c) * sizeof *cs.kv);
    if (!cs.s || !cs.kv) {
        app_fail(&cmd, "sampler");
        goto done;
    }
    cs.tmpl = tmpl ? tmpl : sf_chat_template_detect(cs.m);
    if (mo.verbose) fprintf(stderr, "sparsefuse chat: template %s\n", cs.tmpl);
    if (system && !push_msg(&cs, "system", system, strlen(system))) goto done;
    rc = prompt ? chat_turn(&cs, prompt, strlen(prompt)) : chat_loop(&cs);
    if (cs.n_turns > 0)
        fprintf(stderr, "chat: %d turns, %d tokens generated (%.2f t/s)\n", cs.n_turns, cs.n_gen_total,
                cs.gen_seconds > 0 ? cs.n_gen_total / cs.gen_seconds : 0.0);
done:
    for (int i = 0; i < cs.n_msgs; i++) free((char *)cs.msgs[i].content);
    free(cs.msgs);
    free(cs.kv);
    sf_sampler_free(cs.s);
    sf_context_free(cs.c);
    sf_model_free(cs.m);
    return rc;
}
