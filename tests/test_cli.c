/* The sparsefuse binary (SF_BINARY): help and argument errors without a
 * model, then every subcommand on the real model (skipped when missing). */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sparsefuse.h"
#include "testutil.h"

typedef struct {
    int code;  /* exit status, or -1 if it did not exit normally */
    char *out; /* stdout */
    char *err; /* stderr */
} cli_result;

static void cli_free(cli_result *r) {
    free(r->out);
    free(r->err);
}

static char *slurp(const char *path) {
    size_t n;
    char *s = sf_test_read_file(path, &n);
    return s ? s : calloc(1, 1);
}

/* Runs SF_BINARY with argv (NULL-terminated), stdin from `in` (or
 * /dev/null), in directory cwd (or the current one), with $SF_MODEL unset
 * when unset_model. */
static cli_result run_argv(const char *const *argv, const char *in, const char *cwd, bool unset_model) {
    char out_path[] = "/tmp/sf_test_cli_out_XXXXXX", err_path[] = "/tmp/sf_test_cli_err_XXXXXX",
         in_path[] = "/tmp/sf_test_cli_in_XXXXXX";
    int fo = mkstemp(out_path), fe = mkstemp(err_path), fi = mkstemp(in_path);
    assert_true(fo >= 0 && fe >= 0 && fi >= 0);
    if (in) assert_int_equal(write(fi, in, strlen(in)), (ssize_t)strlen(in));
    lseek(fi, 0, SEEK_SET);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        if (cwd && chdir(cwd) != 0) _exit(127);
        if (unset_model) unsetenv("SF_MODEL");
        const char *args[64] = {SF_BINARY};
        int n = 1;
        for (; argv[n - 1] && n < 63; n++) args[n] = argv[n - 1];
        args[n] = NULL;
        execv(SF_BINARY, (char *const *)args);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    close(fo);
    close(fe);
    close(fi);
    cli_result r = {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out_path), slurp(err_path)};
    unlink(out_path);
    unlink(err_path);
    unlink(in_path);
    return r;
}

#define RUN(...) run_argv((const char *const[]){__VA_ARGS__, NULL}, NULL, NULL, false)

static void expect_usage_error(cli_result r, const char *msg) {
    if (r.code != 2 || !strstr(r.err, msg))
        fail_msg("want exit 2 and '%s' on stderr; got %d, stderr: %s", msg, r.code, r.err);
    assert_string_equal(r.out, "");
    cli_free(&r);
}

/* --------------------------------------------------------- no model needed */

static void test_help(void **state) {
    (void)state;
    cli_result r = RUN("--help");
    assert_int_equal(r.code, 0);
    const char *cmds[] = {"run", "chat", "perplexity", "hellaswag", "bench", "tokenize", "inspect"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) assert_non_null(strstr(r.out, cmds[i]));
    cli_free(&r);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        r = RUN(cmds[i], "--help");
        char want[64];
        snprintf(want, sizeof want, "usage: sparsefuse %s", cmds[i]);
        if (r.code != 0 || !strstr(r.out, want)) fail_msg("%s --help: exit %d, %s", cmds[i], r.code, r.out);
        assert_non_null(strstr(r.out, "--help"));
        cli_free(&r);
    }
    r = RUN("--version");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "sparsefuse "));
    cli_free(&r);
}

static void test_bad_arguments(void **state) {
    (void)state;
    expect_usage_error(RUN("run", "-p", "hi", "--bogus"), "unknown option '--bogus'");
    expect_usage_error(RUN("run", "-p"), "--prompt needs a value");
    expect_usage_error(RUN("run", "-p", "hi", "-n", "abc"), "'abc' is not an integer");
    expect_usage_error(RUN("run", "-p", "hi", "-n", "-5"), "out of range");
    expect_usage_error(RUN("run", "-p", "hi", "--temp", "warm"), "not a number");
    expect_usage_error(RUN("run", "-p", "hi", "--seed", "-1"), "negative");
    expect_usage_error(RUN("run", "-f", "/nonexistent/prompt.txt"), "cannot read prompt file");
    expect_usage_error(RUN("run", "-p", "a", "-f", "/etc/hostname"), "exactly one");
    expect_usage_error(RUN("run", "-m", "/nonexistent/model.gguf", "-p", "hi"), "cannot read model");
    expect_usage_error(RUN("tokenize"), "exactly one");
    expect_usage_error(RUN("perplexity"), "give -f FILE");
    expect_usage_error(RUN("perplexity", "-f", "x", "--kld", "y", "--kld-save", "z"), "cannot be combined");
    expect_usage_error(RUN("perplexity", "--chunks", "0", "-f", "x"), "out of range");
    expect_usage_error(RUN("hellaswag", "-f", "/nonexistent/tasks.txt"), "cannot read task file");
    expect_usage_error(RUN("chat", "--chat-template", "nope"), "unknown chat template 'nope'");
    expect_usage_error(RUN("bench", "-r", "0"), "out of range");
    expect_usage_error(RUN("inspect", "a.gguf", "b.gguf"), "more than one");
    expect_usage_error(RUN("frobnicate"), "unknown command 'frobnicate'");
    cli_result r = run_argv((const char *const[]){NULL}, NULL, NULL, false);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "usage"));
    cli_free(&r);
}

static void test_missing_default_model(void **state) {
    (void)state;
    /* in a directory without models/ and no $SF_MODEL: say how to fetch it */
    cli_result r = run_argv((const char *const[]){"run", "-p", "hi", NULL}, NULL, "/", true);
    if (r.code != 2 || !strstr(r.err, "scripts/fetch_models.sh")) fail_msg("exit %d: %s", r.code, r.err);
    cli_free(&r);
}

/* The streaming helper holds back incomplete UTF-8 sequences. */
#include "../app/generate.c"

static void test_utf8_stream(void **state) {
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    utf8_stream s = {.f = f, .capture = true};
    utf8_put(&s, "a\xc3", 2); /* 'a' and the first byte of U+00E9 */
    fflush(f);
    assert_int_equal(len, 1);
    utf8_put(&s, "\xa9 \xf0\x9f", 4); /* completes it; half an emoji */
    fflush(f);
    assert_int_equal(len, 4);
    utf8_put(&s, "\x98", 1);
    fflush(f);
    assert_int_equal(len, 4);
    utf8_put(&s, "\x80!", 2);
    fflush(f);
    assert_int_equal(len, 9);
    assert_memory_equal(buf, "a\xc3\xa9 \xf0\x9f\x98\x80!", 9);
    utf8_put(&s, "\xe2\x82", 2); /* truncated at the end: flushed as is */
    utf8_flush(&s);
    assert_int_equal(len, 11);
    utf8_put(&s, "\xff\x80x", 3); /* invalid bytes pass through */
    fflush(f);
    assert_int_equal(len, 14);
    assert_int_equal(s.len, 14);
    assert_memory_equal(s.text, buf, 14);
    fclose(f);
    free(buf);
    free(s.text);
}

/* ------------------------------------------------------------ on the model */

static const char *model_or_skip(void) {
    const char *p = sf_test_model_path(SF_TEST_SMOLLM);
    if (!p) skip();
    static char path[4096];
    snprintf(path, sizeof path, "%s", p);
    return path;
}

/* Token ids as sf_tokenize gives them, formatted like `tokenize`. */
static void lib_ids(sf_model *m, const char *text, size_t len, char *buf, size_t cap) {
    int32_t ids[256];
    int n = sf_tokenize(m, text, len, ids, 256, true, false);
    assert_true(n >= 0);
    size_t o = 0;
    for (int i = 0; i < n; i++) o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? " " : "", ids[i]);
    snprintf(buf + o, cap - o, "\n");
}

static void test_tokenize(void **state) {
    (void)state;
    const char *mp = model_or_skip();
    sf_model *m = sf_model_load(mp);
    assert_non_null(m);
    char want[4096];
    cli_result r = RUN("tokenize", "-m", mp, "-p", "Hello world");
    assert_int_equal(r.code, 0);
    lib_ids(m, "Hello world", 11, want, sizeof want);
    assert_string_equal(r.out, want);
    assert_string_equal(r.out, "19556 905\n"); /* SmolLM2: no BOS by metadata */
    cli_free(&r);

    /* -f takes the bytes exactly, trailing newline included */
    char path[] = "/tmp/sf_test_cli_tok_XXXXXX";
    int fd = mkstemp(path);
    const char body[] = "  two spaces, a tab\tand a newline\n";
    assert_int_equal(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);
    r = RUN("tokenize", "-m", mp, "-f", path);
    assert_int_equal(r.code, 0);
    lib_ids(m, body, sizeof body - 1, want, sizeof want);
    assert_string_equal(r.out, want);
    cli_free(&r);
    unlink(path);

    r = RUN("tokenize", "-m", mp, "-p", "Hello world", "--pieces");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "19556 'Hello'\n905 ' world'\n");
    cli_free(&r);
    /* special tokens only with --parse-special */
    r = RUN("tokenize", "-m", mp, "-p", "<|im_start|>", "--parse-special");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "1\n");
    cli_free(&r);
    r = RUN("tokenize", "-m", mp, "-p", "<|im_start|>");
    assert_int_equal(r.code, 0);
    assert_string_not_equal(r.out, "1\n");
    cli_free(&r);
    sf_model_free(m);
}

/* Greedy continuation through the library, for comparison. */
static char *lib_greedy(const char *mp, const char *prompt, int n) {
    sf_model *m = sf_model_load(mp);
    assert_non_null(m);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = 256;
    sf_context *c = sf_context_new(m, &cp);
    assert_non_null(c);
    sf_model_info info;
    sf_model_get_info(m, &info);
    int32_t toks[64];
    int nt = sf_tokenize(m, prompt, strlen(prompt), toks, 64, true, true);
    assert_true(nt > 0);
    assert_int_equal(sf_decode(c, toks, nt, false), SF_OK);
    char *out = calloc(1, 4096);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const float *l = sf_get_logits(c, -1);
        int32_t best = 0;
        for (int v = 1; v < info.n_vocab; v++) if (l[v] > l[best]) best = v;
        if (sf_token_is_eog(m, best)) break;
        int k = sf_token_to_piece(m, best, out + len, (int)(4096 - len - 1), false);
        assert_true(k >= 0);
        len += (size_t)k;
        assert_int_equal(sf_decode(c, &best, 1, false), SF_OK);
    }
    sf_context_free(c);
    sf_model_free(m);
    return out;
}

static void test_run(void **state) {
    (void)state;
    const char *mp = model_or_skip();
    const char *prompt = "The capital of France is";
    cli_result r = RUN("run", "-m", mp, "-p", prompt, "-n", "8", "--temp", "0");
    if (r.code != 0) fail_msg("run: exit %d: %s", r.code, r.err);
    assert_true(strlen(r.out) > 0);
    assert_null(strstr(r.out, "t/s"));
    assert_non_null(strstr(r.err, "t/s"));
    char *want = lib_greedy(mp, prompt, 8);
    assert_string_equal(r.out, want); /* stdout is exactly the generated text */
    free(want);
    cli_free(&r);

    /* --echo puts the prompt first */
    r = RUN("run", "-m", mp, "-p", prompt, "-n", "4", "--temp", "0", "--echo");
    assert_int_equal(r.code, 0);
    assert_true(strncmp(r.out, prompt, strlen(prompt)) == 0);
    assert_true(strlen(r.out) > strlen(prompt));
    cli_free(&r);

    /* sampling: same seed, same text */
    cli_result a = RUN("run", "-m", mp, "-p", prompt, "-n", "12", "--temp", "1.0", "--seed", "1234");
    cli_result b = RUN("run", "-m", mp, "-p", prompt, "-n", "12", "--temp", "1.0", "--seed", "1234");
    assert_int_equal(a.code, 0);
    assert_int_equal(b.code, 0);
    assert_string_equal(a.out, b.out);
    assert_true(strlen(a.out) > 0);
    cli_free(&a);
    cli_free(&b);
}

static void test_chat(void **state) {
    (void)state;
    const char *mp = model_or_skip();
    cli_result r = RUN("chat", "-m", mp, "-p", "What is the capital of France?", "-n", "16", "--temp", "0");
    if (r.code != 0) fail_msg("chat: exit %d: %s", r.code, r.err);
    assert_true(strlen(r.out) > 1);
    assert_int_equal(r.out[strlen(r.out) - 1], '\n');
    assert_null(strstr(r.out, "<|im_"));
    cli_free(&r);
    /* two turns from a pipe: two replies */
    r = run_argv((const char *const[]){"chat", "-m", mp, "-n", "12", "--temp", "0", "-v", NULL},
                 "Say hello.\n\nSay goodbye.\n", NULL, false);
    if (r.code != 0) fail_msg("chat: exit %d: %s", r.code, r.err);
    int lines = 0;
    for (const char *p = r.out; *p; p++) lines += *p == '\n';
    assert_true(lines >= 2);
    assert_non_null(strstr(r.err, "2 turns"));
    /* the second turn evaluates only what follows the first turn's cache */
    int reused[2] = {-1, -1}, evaluated[2] = {-1, -1}, turns = 0;
    for (const char *p = strstr(r.err, "chat: "); p && turns < 2; p = strstr(p + 1, "chat: "))
        if (sscanf(p, "chat: %d tokens reused from the cache, %d evaluated", &reused[turns], &evaluated[turns]) == 2)
            turns++;
    assert_int_equal(turns, 2);
    assert_int_equal(reused[0], 0);
    assert_true(reused[1] > evaluated[1]);
    cli_free(&r);
}

static const char *text_or_skip(void) {
    const char *p = sf_test_shared("wikitext-2/test.txt");
    if (access(p, R_OK) != 0) skip();
    static char path[4096];
    snprintf(path, sizeof path, "%s", p);
    return path;
}

static void test_perplexity(void **state) {
    (void)state;
    const char *mp = model_or_skip();
    const char *text = text_or_skip();
    cli_result r = RUN("perplexity", "-m", mp, "-f", text, "-c", "128", "--chunks", "2");
    if (r.code != 0) fail_msg("perplexity: exit %d: %s", r.code, r.err);
    const char *fe = strstr(r.out, "Final estimate: PPL = ");
    assert_non_null(fe);
    double ppl = 0, err = 0;
    assert_int_equal(sscanf(fe, "Final estimate: PPL = %lf +/- %lf", &ppl, &err), 2);
    assert_true(ppl > 1.0 && ppl < 1000.0 && err > 0.0);
    assert_non_null(strstr(r.out, "[1]"));
    assert_non_null(strstr(r.out, "[2]"));
    cli_free(&r);

    /* save, then compare the model with itself */
    char base[64];
    snprintf(base, sizeof base, "/tmp/sf_test_cli_%d.kld", (int)getpid());
    r = RUN("perplexity", "-m", mp, "-f", text, "-c", "64", "--chunks", "2", "--kld-save", base);
    assert_int_equal(r.code, 0);
    cli_free(&r);
    r = RUN("perplexity", "-m", mp, "--kld", base);
    if (r.code != 0) fail_msg("kld: exit %d: %s", r.code, r.err);
    assert_non_null(strstr(r.out, "Mean    KLD:"));
    assert_non_null(strstr(r.out, "Same top p: 100.000"));
    cli_free(&r);
    expect_usage_error(RUN("perplexity", "-m", mp, "--kld", base, "-c", "128"), "saved with -c 64");
    unlink(base);
}

static void test_hellaswag_bench_inspect(void **state) {
    (void)state;
    const char *mp = model_or_skip();
    char path[] = "/tmp/sf_test_cli_hs_XXXXXX";
    int fd = mkstemp(path);
    const char tasks[] =
        "Cooking: She cracks two eggs into a hot pan and\n1\nthe pan flies away.\n"
        "waits for the whites to set.\nthe eggs turn blue.\nshe sings to the moon.\n"
        "Sports: The runner hears the gun and\n0\nsprints toward the finish.\nplants a tree.\n"
        "writes a letter.\nturns into smoke.\n";
    assert_int_equal(write(fd, tasks, sizeof tasks - 1), (ssize_t)(sizeof tasks - 1));
    close(fd);
    cli_result r = RUN("hellaswag", "-m", mp, "-f", path, "-c", "128");
    if (r.code != 0) fail_msg("hellaswag: exit %d: %s", r.code, r.err);
    assert_non_null(strstr(r.out, "task\tacc_norm"));
    assert_non_null(strstr(r.out, "\n1\t"));
    assert_non_null(strstr(r.out, "\n2\t"));
    assert_non_null(strstr(r.out, "Final acc_norm = "));
    cli_free(&r);
    /* 7 lines: not whole tasks */
    fd = open(path, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, "extra\n", 6), 6);
    close(fd);
    r = RUN("hellaswag", "-m", mp, "-f", path);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "multiple of 6"));
    cli_free(&r);
    unlink(path);

    r = RUN("bench", "-m", mp, "-p", "16", "-n", "4", "-r", "1");
    if (r.code != 0) fail_msg("bench: exit %d: %s", r.code, r.err);
    assert_non_null(strstr(r.out, "| model"));
    assert_non_null(strstr(r.out, " t/s |"));
    assert_non_null(strstr(r.out, "pp16"));
    assert_non_null(strstr(r.out, "tg4"));
    cli_free(&r);

    r = RUN("inspect", mp);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "llama"));
    cli_free(&r);
    r = RUN("inspect", "/etc/hostname");
    assert_int_equal(r.code, 1);
    assert_true(strlen(r.err) > 0);
    cli_free(&r);
}

/* sparsify (predictor), then compare the model with its side-car: the table
 * has both rows, and --plot writes an SVG with a point per row */
static void test_sparsify_compare_plot(void **state) {
    (void)state;
    const char *mp = model_or_skip();
    const char *text = text_or_skip();
    char side[64], svg[64];
    snprintf(side, sizeof side, "/tmp/sf_test_cli_%d.side.gguf", (int)getpid());
    snprintf(svg, sizeof svg, "/tmp/sf_test_cli_%d.svg", (int)getpid());
    cli_result r = RUN("sparsify", "-m", mp, "-f", text, "-c", "64", "--tokens", "128", "--method", "predictor",
                       "--rank", "32", "--sparsity", "0.4", "-o", side);
    if (r.code != 0) fail_msg("sparsify: exit %d: %s", r.code, r.err);
    assert_non_null(strstr(r.out, "recall "));
    cli_free(&r);
    r = RUN("compare", "-m", mp, "--sparse", side, "-f", text, "-c", "64", "--chunks", "2", "-p", "8", "-n", "4",
            "-r", "1", "--plot", svg);
    if (r.code != 0) fail_msg("compare: exit %d: %s", r.code, r.err);
    assert_non_null(strstr(r.out, "(base)"));
    assert_non_null(strstr(r.out, ".side.gguf"));
    cli_free(&r);
    FILE *f = fopen(svg, "r");
    assert_non_null(f);
    char buf[16384];
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    assert_non_null(strstr(buf, "<svg"));
    assert_non_null(strstr(buf, "</svg>"));
    assert_non_null(strstr(buf, ".side.gguf</text>"));
    int circles = 0;
    for (const char *p = buf; (p = strstr(p, "<circle")); p++) circles++;
    assert_int_equal(circles, 2);
    expect_usage_error(RUN("compare", "-m", mp, "--sparse", side, "-f", text, "--no-bench", "--plot", svg),
                       "--plot needs the speed tests");
    expect_usage_error(RUN("bench", "-m", mp, "--union", text), "--union needs --sparse");
    expect_usage_error(RUN("bench", "-m", mp, "--sparse-batch", "8"), "--sparse-batch needs --sparse");
    r = RUN("bench", "-m", mp, "--sparse", side, "-p", "0", "-n", "0", "--union", text);
    assert_int_equal(r.code, 1); /* a predictor's side-car: its masks are not measured by --union */
    assert_non_null(strstr(r.err, "predictor"));
    cli_free(&r);
    /* --sparsity: a level or auto:KLD, nothing else */
    expect_usage_error(RUN("sparsify", "-m", mp, "-f", text, "--sparsity", "auto:", "-o", side), "auto: needs a KLD");
    expect_usage_error(RUN("sparsify", "-m", mp, "-f", text, "--sparsity", "auto:-1", "-o", side), "auto: needs a KLD");
    expect_usage_error(RUN("sparsify", "-m", mp, "-f", text, "--sparsity", "half", "-o", side), "neither a number");
    expect_usage_error(RUN("sparsify", "-m", mp, "-f", text, "--sparsity", "1", "-o", side), "outside [0, 1)");
    unlink(side);
    unlink(svg);
}

/* route (auto blocks, delta target), then perplexity and bench with the
 * routes; argument errors of route and of the --route-* options */
static void test_route(void **state) {
    (void)state;
    const char *mp = model_or_skip();
    const char *text = text_or_skip();
    char routes[64];
    snprintf(routes, sizeof routes, "/tmp/sf_test_cli_%d.routes.gguf", (int)getpid());
    cli_result r = RUN("route", "-m", mp, "-f", text, "-c", "64", "--tokens", "128", "--blocks", "auto:4",
                       "--capacity", "0.5", "--target", "delta", "-o", routes);
    if (r.code != 0) fail_msg("route: exit %d: %s", r.code, r.err);
    assert_non_null(strstr(r.out, "block executions skipped: 6.7 %")); /* 4 of 30 blocks at half capacity */
    cli_free(&r);
    r = RUN("perplexity", "-m", mp, "--routes", routes, "--route-kv", "preserve", "-f", text, "-c", "64", "--chunks",
            "2");
    if (r.code != 0) fail_msg("perplexity --routes: exit %d: %s", r.code, r.err);
    assert_non_null(strstr(r.out, "Block executions run: "));
    cli_free(&r);
    r = RUN("bench", "-m", mp, "--routes", routes, "--text", text, "-p", "8", "-n", "4", "-r", "1");
    if (r.code != 0) fail_msg("bench --routes: exit %d: %s", r.code, r.err);
    assert_non_null(strstr(r.out, "routes: tg4 ran "));
    cli_free(&r);
    expect_usage_error(RUN("route", "-m", mp, "-f", text, "-o", routes, "--capacity", "0"), "outside (0, 1]");
    expect_usage_error(RUN("route", "-m", mp, "-f", text, "-o", routes, "--capacity", "1.5"), "outside (0, 1]");
    expect_usage_error(RUN("route", "-m", mp, "-f", text, "-o", routes, "--blocks", "3,40"), "--blocks");
    expect_usage_error(RUN("route", "-m", mp, "-f", text, "-o", routes, "--blocks", "auto:0"), "auto:N needs");
    expect_usage_error(RUN("route", "-m", mp, "-f", text, "-o", routes, "--static", "3", "--blocks", "1"),
                       "--static removes blocks itself");
    expect_usage_error(RUN("route", "-m", mp, "-f", text, "-o", routes, "--target", "loss"), "unknown routing target");
    expect_usage_error(RUN("route", "-m", mp, "-o", routes), "give -f FILE");
    expect_usage_error(RUN("run", "-m", mp, "-p", "hi", "--routes", routes, "--route-kv", "some"),
                       "not exact or preserve");
    expect_usage_error(RUN("run", "-m", mp, "-p", "hi", "--route-rule", "topk"), "need --routes");
    expect_usage_error(RUN("run", "-m", mp, "-p", "hi", "--routes", "/nonexistent/r.gguf"), "cannot read routes");
    r = RUN("run", "-m", mp, "-p", "hi", "-n", "1", "--routes", mp); /* a model, not routes */
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "not a routes side-car"));
    cli_free(&r);
    unlink(routes);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_missing_default_model),
        cmocka_unit_test(test_utf8_stream),
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_run),
        cmocka_unit_test(test_chat),
        cmocka_unit_test(test_perplexity),
        cmocka_unit_test(test_hellaswag_bench_inspect),
        cmocka_unit_test(test_sparsify_compare_plot),
        cmocka_unit_test(test_route),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
