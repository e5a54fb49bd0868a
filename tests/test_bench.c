/* Bench support: the thread pool's region counter and mark, the memory
 * bandwidth test, decode weight bytes (checked against the GGUF's own tensor
 * list), barriers per sf_decode, bench result fields, and `sparsefuse bench`
 * csv / json output (json checked by a small syntax validator). No timing
 * assertions: rates only have to be positive. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/threads.h"
#include "gguf/gguf.h"
#include "sparsefuse_eval.h"
#include "testutil.h"

/* ------------------------------------------------------------- no model */

static void count_region(void *arg, int ith, int nth) {
    (void)arg;
    (void)ith;
    (void)nth;
}

static void test_pool_regions(void **state) {
    (void)state;
    for (int nth = 1; nth <= 2; nth++) {
        sf_pool *p = sf_pool_new(nth);
        assert_non_null(p);
        assert_int_equal(sf_pool_regions(p), 0);
        assert_int_equal(sf_pool_regions_since_mark(p), -1);
        sf_pool_run(p, count_region, NULL);
        sf_pool_mark(p);
        assert_int_equal(sf_pool_regions_since_mark(p), 0);
        for (int i = 0; i < 3; i++) sf_pool_run(p, count_region, NULL);
        assert_int_equal(sf_pool_regions_since_mark(p), 3);
        assert_int_equal(sf_pool_regions(p), 4);
        sf_pool_free(p);
    }
}

static void test_bandwidth(void **state) {
    (void)state;
    sf_bandwidth_params d = sf_bandwidth_default_params();
    assert_int_equal(d.array_bytes, (size_t)256 << 20);
    assert_int_equal(d.reps, 5);
    sf_bandwidth_params p = {.n_threads = 2, .array_bytes = (size_t)8 << 20, .reps = 3};
    sf_bandwidth_result r;
    assert_int_equal(sf_eval_bandwidth(&p, &r), SF_OK);
    assert_int_equal(r.n_threads, 2);
    assert_int_equal(r.reps, 3);
    assert_int_equal(r.array_bytes, p.array_bytes);
    assert_true(r.gbps_best > 0 && r.gbps_median > 0 && r.gbps_median <= r.gbps_best);
    p.reps = 0;
    assert_int_equal(sf_eval_bandwidth(&p, &r), SF_ERR_ARG);
    p.reps = 1;
    p.array_bytes = 100;
    assert_int_equal(sf_eval_bandwidth(&p, &r), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "too small"));
}

/* ------------------------------------------------------------ JSON check */

/* A strict JSON syntax check (RFC 8259 grammar; no semantic checks). */
typedef struct { const char *s; } jcur;

static void jws(jcur *c) { while (*c->s == ' ' || *c->s == '\n' || *c->s == '\t' || *c->s == '\r') c->s++; }
static bool jvalue(jcur *c, int depth);

static bool jstring(jcur *c) {
    if (*c->s++ != '"') return false;
    while (*c->s && *c->s != '"') {
        if ((unsigned char)*c->s < 0x20) return false;
        if (*c->s == '\\') {
            c->s++;
            if (*c->s == 'u') {
                for (int i = 1; i <= 4; i++) if (!isxdigit((unsigned char)c->s[i])) return false;
                c->s += 4;
            } else if (!strchr("\"\\/bfnrt", *c->s) || !*c->s) {
                return false;
            }
        }
        c->s++;
    }
    return *c->s++ == '"';
}

static bool jnumber(jcur *c) {
    const char *s = c->s;
    if (*s == '-') s++;
    if (*s == '0') s++;
    else if (isdigit((unsigned char)*s)) while (isdigit((unsigned char)*s)) s++;
    else return false;
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s)) return false;
        while (isdigit((unsigned char)*s)) s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!isdigit((unsigned char)*s)) return false;
        while (isdigit((unsigned char)*s)) s++;
    }
    c->s = s;
    return true;
}

static bool jseq(jcur *c, char close, bool members, int depth) {
    c->s++; /* [ or { */
    jws(c);
    if (*c->s == close) { c->s++; return true; }
    for (;;) {
        jws(c);
        if (members) {
            if (!jstring(c)) return false;
            jws(c);
            if (*c->s++ != ':') return false;
        }
        if (!jvalue(c, depth + 1)) return false;
        jws(c);
        if (*c->s == ',') { c->s++; continue; }
        return *c->s++ == close;
    }
}

static bool jvalue(jcur *c, int depth) {
    if (depth > 64) return false;
    jws(c);
    switch (*c->s) {
    case '{': return jseq(c, '}', true, depth);
    case '[': return jseq(c, ']', false, depth);
    case '"': return jstring(c);
    case 't': return strncmp(c->s, "true", 4) == 0 && (c->s += 4);
    case 'f': return strncmp(c->s, "false", 5) == 0 && (c->s += 5);
    case 'n': return strncmp(c->s, "null", 4) == 0 && (c->s += 4);
    default: return jnumber(c);
    }
}

static bool json_valid(const char *s) {
    jcur c = {s};
    if (!jvalue(&c, 0)) return false;
    jws(&c);
    return *c.s == '\0';
}

static void test_json_validator(void **state) {
    (void)state;
    assert_true(json_valid("[\n  {\"a\": 1.5, \"b\": [1, -2e3, 0.25], \"c\": \"x\\\"y\"},\n  {}\n]\n"));
    assert_true(json_valid("[]"));
    assert_false(json_valid("[1, ]"));
    assert_false(json_valid("{\"a\" 1}"));
    assert_false(json_valid("[01]"));
    assert_false(json_valid("[1] x"));
    assert_false(json_valid("{\"a\": nan}"));
}

/* ---------------------------------------------------------- model tests */

/* Sum of the GGUF's 2-D tensors a decode step reads: all of them except
 * token_embd, which is read whole only when it doubles as the output. */
static uint64_t gguf_matrix_bytes(const char *path) {
    sf_gguf *g = NULL;
    assert_int_equal(sf_gguf_open(path, &g), SF_OK);
    const bool tied = sf_gguf_find_tensor(g, "output.weight") == NULL;
    uint64_t sum = 0;
    for (int64_t i = 0; i < sf_gguf_n_tensors(g); i++) {
        const sf_gguf_tensor *t = sf_gguf_tensor_at(g, i);
        if (t->n_dims < 2) continue;
        if (!strcmp(t->name, "token_embd.weight") && !tied) continue;
        sum += t->nbytes;
    }
    sf_gguf_close(g);
    return sum;
}

static void check_weight_bytes(const char *file) {
    const char *p = sf_test_model_path(file);
    if (!p) skip();
    char path[4096];
    snprintf(path, sizeof path, "%s", p);
    sf_model *m = sf_model_load(path);
    assert_non_null(m);
    const uint64_t got = sf_model_decode_weight_bytes(m);
    const uint64_t want = gguf_matrix_bytes(path);
    if (got != want) fail_msg("%s: decode weight bytes %llu, sum of matrices %llu", file, (unsigned long long)got,
                              (unsigned long long)want);
    sf_model_info info;
    sf_model_get_info(m, &info);
    assert_true(got > 0 && got <= info.size_bytes);
    sf_model_free(m);
    assert_int_equal(sf_model_decode_weight_bytes(NULL), 0);
}

static void test_weight_bytes_smollm(void **state) { (void)state; check_weight_bytes(SF_TEST_SMOLLM); }
static void test_weight_bytes_gemma(void **state) { (void)state; check_weight_bytes(SF_TEST_GEMMA); }

static void test_barriers(void **state) {
    (void)state;
    const char *p = sf_test_model_path(SF_TEST_SMOLLM);
    if (!p) skip();
    sf_model *m = sf_model_load(p);
    assert_non_null(m);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = 16;
    cp.n_batch = 4;
    cp.n_threads = 2;
    sf_context *c = sf_context_new(m, &cp);
    assert_non_null(c);
    assert_int_equal(sf_context_barriers_last(c), -1);
    assert_int_equal(sf_context_barriers_last(NULL), -1);
    const int32_t toks[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(sf_decode(c, toks, 1, false), SF_OK);
    const int one = sf_context_barriers_last(c);
    if (one < 0) {
        /* sf_decode does not call sf_pool_mark (yet): nothing else to check */
        sf_context_free(c);
        sf_model_free(m);
        skip();
    }
    assert_true(one > 0);
    assert_int_equal(sf_decode(c, toks + 1, 1, false), SF_OK);
    assert_int_equal(sf_context_barriers_last(c), one); /* the same plan every token */
    /* 8 tokens in batches of 4: two forward steps, each at least the layers' regions */
    assert_int_equal(sf_decode(c, toks, 8, false), SF_OK);
    const int two = sf_context_barriers_last(c);
    assert_true(two > one && two <= 2 * one);
    /* a failed call (context full) leaves the count of the last one that ran */
    assert_int_equal(sf_decode(c, toks, 8, false), SF_ERR_RANGE);
    assert_int_equal(sf_context_barriers_last(c), two);
    sf_context_free(c);
    sf_model_free(m);
}

static void test_bench_fields(void **state) {
    (void)state;
    const char *p = sf_test_model_path(SF_TEST_SMOLLM);
    if (!p) skip();
    sf_model *m = sf_model_load(p);
    assert_non_null(m);
    sf_bench_params bp = sf_bench_default_params();
    bp.n_prompt = 12;
    bp.n_gen = 3;
    bp.reps = 2;
    bp.n_batch = 8;
    bp.n_threads = 2;
    sf_bench_result pp, tg;
    assert_int_equal(sf_eval_bench(m, &bp, &pp, &tg), SF_OK);
    const uint64_t wb = sf_model_decode_weight_bytes(m);
    assert_int_equal(pp.steps, 2); /* 12 tokens in batches of 8 */
    assert_int_equal(tg.steps, 3);
    assert_int_equal(pp.weight_bytes, wb);
    assert_int_equal(tg.weight_bytes, wb);
    for (int i = 0; i < 2; i++) assert_true(pp.samples[i] > 0 && tg.samples[i] > 0);
    assert_true(fabs((pp.samples[0] + pp.samples[1]) / 2 - pp.tps_mean) <= 1e-9 * pp.tps_mean);
    /* gbps = weight bytes x steps/s */
    assert_true(fabs(tg.gbps - (double)wb * tg.tps_mean / 1e9) <= 1e-9 * tg.gbps);
    assert_true(fabs(pp.gbps - (double)wb * pp.tps_mean * 2 / 12 / 1e9) <= 1e-9 * pp.gbps);
    assert_true(tg.barriers_per_step == -1 || tg.barriers_per_step > 0);
    assert_true(pp.barriers_per_step == -1 || pp.barriers_per_step > 0);
    assert_int_equal(pp.n_depth, 0);
    /* at depth: the context holds depth + test, the result records it */
    bp.n_depth = 40;
    bp.reps = 1;
    assert_int_equal(sf_eval_bench(m, &bp, &pp, &tg), SF_OK);
    assert_int_equal(pp.n_depth, 40);
    assert_int_equal(tg.n_depth, 40);
    assert_true(pp.samples[0] > 0 && tg.samples[0] > 0);
    bp.n_depth = -1;
    assert_int_equal(sf_eval_bench(m, &bp, &pp, &tg), SF_ERR_ARG);
    bp.n_depth = 0;
    bp.reps = SF_BENCH_MAX_REPS + 1;
    assert_int_equal(sf_eval_bench(m, &bp, &pp, &tg), SF_ERR_ARG);
    sf_model_free(m);
}

/* Runs `sparsefuse bench ARGS` and returns its stdout (malloc'd) and exit code. */
static char *run_bench(const char *args, int *code) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' bench %s 2>/dev/null", SF_BINARY, args);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t got;
    while ((got = fread(out + n, 1, cap - 1 - n, f)) > 0) {
        n += got;
        if (n + 1 >= cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
    out[n] = '\0';
    int st = pclose(f);
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

static int count_of(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void test_cli_outputs(void **state) {
    (void)state;
    const char *p = sf_test_model_path(SF_TEST_SMOLLM);
    if (!p) skip();
    char args[4500];
    int code;

    snprintf(args, sizeof args, "-m '%s' -p 8 -n 2 -r 2 -t 2 -o json", p);
    char *out = run_bench(args, &code);
    assert_int_equal(code, 0);
    if (!json_valid(out)) fail_msg("bench json output is not valid JSON:\n%s", out);
    assert_int_equal(count_of(out, "{"), 2);
    assert_non_null(strstr(out, "\"test\": \"pp8\""));
    assert_non_null(strstr(out, "\"test\": \"tg2\""));
    const char *keys[] = {"\"n_threads\": 2", "\"tps_mean\": ", "\"tps_std\": ", "\"samples\": [", "\"gbps\": "};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) assert_int_equal(count_of(out, keys[i]), 2);
    free(out);

    snprintf(args, sizeof args, "-m '%s' -p 8 -n 0 -r 3 -t 1 --output csv", p);
    out = run_bench(args, &code);
    assert_int_equal(code, 0);
    assert_int_equal(count_of(out, "\n"), 2); /* header + one row */
    assert_int_equal(strncmp(out, "test,", 5), 0);
    const char *row = strchr(out, '\n') + 1;
    assert_int_equal(strncmp(row, "pp8,", 4), 0);
    assert_int_equal(count_of(out, ","), 2 * 12);
    free(out);

    out = run_bench("--bandwidth -t 1 -o json", &code);
    assert_int_equal(code, 0);
    assert_true(json_valid(out));
    assert_non_null(strstr(out, "\"test\": \"bandwidth\""));
    assert_int_equal(count_of(out, "{"), 1);
    free(out);

    snprintf(args, sizeof args, "-m '%s' -p 8 -n 2 -r 1 -t 2", p);
    out = run_bench(args, &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, " GB/s |"));
    assert_non_null(strstr(out, "barriers per token (decode): "));
    assert_non_null(strstr(out, "barriers per pp8 batch"));
    free(out);

    out = run_bench("-o yaml", &code);
    assert_int_equal(code, 2);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_regions),
        cmocka_unit_test(test_bandwidth),
        cmocka_unit_test(test_json_validator),
        cmocka_unit_test(test_weight_bytes_smollm),
        cmocka_unit_test(test_weight_bytes_gemma),
        cmocka_unit_test(test_barriers),
        cmocka_unit_test(test_bench_fields),
        cmocka_unit_test(test_cli_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
