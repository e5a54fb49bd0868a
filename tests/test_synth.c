/* Synthetic models (src/model/synth.h): the tiny shape written to a temp
 * dir loads through the reader and the public API with the promised
 * metadata, tensors and vocabulary, decodes to finite logits in both weight
 * types, is deterministic per seed, and bad arguments are errors that leave
 * no file. Also the `sparsefuse synth` command's argument handling. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "sparsefuse_eval.h"
#include "sparsefuse.h"

/* the tiny shape, as documented in synth.h / `sparsefuse synth --help` */
enum { T_EMBD = 256, T_LAYER = 2, T_HEAD = 4, T_HEAD_KV = 2, T_HEAD_DIM = 64, T_FF = 768, T_VOCAB = 1000 };

static void write_tiny(const char *path, const char *type, uint64_t seed) {
    sf_synth_params p = sf_synth_default_params();
    p.shape = "tiny";
    p.type = type;
    p.seed = seed;
    sf_synth_result r;
    if (sf_synth_write(path, &p, &r) != SF_OK) fail_msg("sf_synth_write: %s", sf_last_error());
    assert_int_equal(r.n_tensors, 3 + 9 * T_LAYER);
    assert_true(r.n_params > (int64_t)T_EMBD * T_VOCAB);
}

static void expect_u32(const sf_gguf *g, const char *key, uint32_t want) {
    uint32_t v = 0;
    if (sf_gguf_get_u32(g, key, &v) != SF_OK) fail_msg("key %s: %s", key, sf_last_error());
    if (v != want) fail_msg("key %s = %u, want %u", key, v, want);
}

static void expect_tensor(const sf_gguf *g, const char *name, sf_type type, int64_t ne0, int64_t ne1) {
    const sf_gguf_tensor *t = sf_gguf_find_tensor(g, name);
    if (!t) fail_msg("tensor %s missing", name);
    if ((int)t->type != (int)type || t->ne[0] != ne0 || t->ne[1] != ne1)
        fail_msg("tensor %s: %s {%lld, %lld}, want %s {%lld, %lld}", name, sf_type_name(t->type), (long long)t->ne[0],
                 (long long)t->ne[1], sf_type_name(type), (long long)ne0, (long long)ne1);
}

/* Metadata and tensor table through the GGUF reader. */
static void check_file(const char *path, sf_type wtype) {
    sf_gguf *g;
    if (sf_gguf_open(path, &g) != SF_OK) fail_msg("%s", sf_last_error());
    sf_gguf_str s;
    assert_int_equal(sf_gguf_get_str(g, "general.architecture", &s), SF_OK);
    assert_true(s.len == 5 && memcmp(s.ptr, "llama", 5) == 0);
    assert_int_equal(sf_gguf_get_str(g, "tokenizer.ggml.model", &s), SF_OK);
    assert_true(s.len == 5 && memcmp(s.ptr, "llama", 5) == 0);
    assert_int_equal(sf_gguf_get_str(g, "general.name", &s), SF_OK);
    assert_non_null(memmem(s.ptr, s.len, "random weights", 14));
    expect_u32(g, "llama.embedding_length", T_EMBD);
    expect_u32(g, "llama.block_count", T_LAYER);
    expect_u32(g, "llama.attention.head_count", T_HEAD);
    expect_u32(g, "llama.attention.head_count_kv", T_HEAD_KV);
    expect_u32(g, "llama.feed_forward_length", T_FF);
    expect_u32(g, "llama.rope.dimension_count", T_HEAD_DIM);
    expect_u32(g, "llama.vocab_size", T_VOCAB);
    expect_u32(g, "general.file_type", wtype == SF_TYPE_Q4_0 ? 2 : 7);
    float f;
    assert_int_equal(sf_gguf_get_f32(g, "llama.rope.freq_base", &f), SF_OK);
    assert_true(f == 500000.0f);
    assert_int_equal(sf_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f), SF_OK);
    assert_true(f == 1e-5f);

    assert_int_equal(sf_gguf_n_tensors(g), 3 + 9 * T_LAYER);
    assert_null(sf_gguf_find_tensor(g, "output.weight")); /* tied embeddings */
    expect_tensor(g, "token_embd.weight", wtype, T_EMBD, T_VOCAB);
    expect_tensor(g, "output_norm.weight", SF_TYPE_F32, T_EMBD, 1);
    expect_tensor(g, "rope_freqs.weight", SF_TYPE_F32, T_HEAD_DIM / 2, 1);
    char name[64];
    for (int il = 0; il < T_LAYER; il++) {
        const struct { const char *what; sf_type t; int64_t ne0, ne1; } want[] = {
            {"attn_norm", SF_TYPE_F32, T_EMBD, 1},
            {"attn_q", wtype, T_EMBD, T_HEAD * T_HEAD_DIM},
            {"attn_k", wtype, T_EMBD, T_HEAD_KV * T_HEAD_DIM},
            {"attn_v", wtype, T_EMBD, T_HEAD_KV * T_HEAD_DIM},
            {"attn_output", wtype, T_HEAD * T_HEAD_DIM, T_EMBD},
            {"ffn_norm", SF_TYPE_F32, T_EMBD, 1},
            {"ffn_gate", wtype, T_EMBD, T_FF},
            {"ffn_up", wtype, T_EMBD, T_FF},
            {"ffn_down", wtype, T_FF, T_EMBD},
        };
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", il, want[k].what);
            expect_tensor(g, name, want[k].t, want[k].ne0, want[k].ne1);
        }
    }
    /* norms are ones; rope factors run from 1 (short wavelengths) to 32 */
    const float *norm = sf_gguf_find_tensor(g, "blk.1.ffn_norm.weight")->data;
    for (int i = 0; i < T_EMBD; i++) assert_true(norm[i] == 1.0f);
    const float *rf = sf_gguf_find_tensor(g, "rope_freqs.weight")->data;
    assert_true(rf[0] == 1.0f);
    assert_true(rf[T_HEAD_DIM / 2 - 1] == 32.0f);
    for (int i = 1; i < T_HEAD_DIM / 2; i++) assert_true(rf[i] >= rf[i - 1]);

    /* vocabulary: specials, bytes, then "▁", "▁a", ... */
    uint64_t n;
    const sf_gguf_str *tok;
    assert_int_equal(sf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &n, &tok), SF_OK);
    assert_int_equal(n, T_VOCAB);
    assert_true(tok[1].len == 3 && memcmp(tok[1].ptr, "<s>", 3) == 0);
    assert_true(tok[3 + 0x0A].len == 6 && memcmp(tok[3 + 0x0A].ptr, "<0x0A>", 6) == 0);
    assert_true(tok[259].len == 3 && memcmp(tok[259].ptr, "\xe2\x96\x81", 3) == 0);
    assert_true(tok[260].len == 4 && memcmp(tok[260].ptr, "\xe2\x96\x81" "a", 4) == 0);
    assert_true(tok[286].len == 5 && memcmp(tok[286].ptr, "\xe2\x96\x81" "aa", 5) == 0);
    sf_gguf_close(g);
}

/* Through the public API: info, tokenizer, a decode with finite logits. */
static void check_model(const char *path, const char *ftype) {
    sf_model *m = sf_model_load(path);
    if (!m) fail_msg("%s", sf_last_error());
    sf_model_info info;
    sf_model_get_info(m, &info);
    assert_string_equal(info.arch, "llama");
    assert_string_equal(info.ftype, ftype);
    assert_int_equal(info.n_vocab, T_VOCAB);
    assert_int_equal(info.n_embd, T_EMBD);
    assert_int_equal(info.n_layer, T_LAYER);
    assert_int_equal(info.n_head, T_HEAD);
    assert_int_equal(info.n_head_kv, T_HEAD_KV);
    assert_int_equal(info.n_ff, T_FF);
    assert_int_equal(info.head_dim, T_HEAD_DIM);
    assert_int_equal(sf_token_bos(m), 1);
    assert_int_equal(sf_token_eos(m), 2);

    int32_t toks[32];
    int nt = sf_tokenize(m, "hi there", 8, toks, 32, true, false);
    assert_true(nt >= 3);
    assert_int_equal(toks[0], 1);
    char piece[16];
    assert_int_equal(sf_token_to_piece(m, 260, piece, sizeof piece, false), 2);
    assert_memory_equal(piece, " a", 2);

    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    sf_context *c = sf_context_new(m, &cp);
    if (!c) fail_msg("%s", sf_last_error());
    if (sf_decode(c, toks, nt, true) != SF_OK) fail_msg("%s", sf_last_error());
    float lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < nt; i++) {
        const float *l = sf_get_logits(c, i);
        assert_non_null(l);
        for (int v = 0; v < T_VOCAB; v++) {
            if (!isfinite(l[v])) fail_msg("logit %d of token %d is %g", v, i, l[v]);
            lo = fminf(lo, l[v]);
            hi = fmaxf(hi, l[v]);
        }
    }
    assert_true(hi > lo); /* not degenerate */
    /* one generated step, as `run` does */
    const float *l = sf_get_logits(c, -1);
    int32_t next = 0;
    for (int v = 1; v < T_VOCAB; v++)
        if (l[v] > l[next]) next = v;
    assert_int_equal(sf_decode(c, &next, 1, false), SF_OK);
    l = sf_get_logits(c, -1);
    for (int v = 0; v < T_VOCAB; v++) assert_true(isfinite(l[v]));
    sf_context_free(c);
    sf_model_free(m);
}

static void test_tiny_q4_0(void **state) {
    (void)state;
    const char *path = sf_test_scratch_path("tiny-q4_0.gguf");
    write_tiny(path, "q4_0", 1);
    assert_int_equal(sf_test_scratch_entries(), 1); /* no temporary left */
    check_file(path, SF_TYPE_Q4_0);
    check_model(path, "Q4_0");
}

static void test_tiny_q8_0(void **state) {
    (void)state;
    const char *path = sf_test_scratch_path("tiny-q8_0.gguf");
    write_tiny(path, "Q8_0", 7); /* type names in any case */
    check_file(path, SF_TYPE_Q8_0);
    check_model(path, "Q8_0");
}

/* Every --type: the tiny model loads, and a forward pass gives finite
 * logits; the mixes put each tensor in the type llama-quantize would. */
static void test_every_type(void **state) {
    (void)state;
    for (const char *const *ty = sf_synth_type_names(); *ty; ty++) {
        char name[64];
        snprintf(name, sizeof name, "tiny-%s.gguf", *ty);
        const char *path = sf_test_scratch_path(name);
        write_tiny(path, *ty, 3);
        sf_model *m = sf_model_load(path);
        if (!m) fail_msg("%s: %s", *ty, sf_last_error());
        sf_context_params cp = sf_context_default_params();
        cp.n_ctx = 16;
        cp.n_threads = 1;
        sf_context *c = sf_context_new(m, &cp);
        assert_non_null(c);
        const int32_t toks[5] = {1, 300, 301, 302, 303};
        assert_int_equal(sf_decode(c, toks, 5, true), SF_OK);
        for (int t = 0; t < 5; t++) {
            const float *l = sf_get_logits(c, t);
            for (int v = 0; v < T_VOCAB; v++)
                if (!isfinite(l[v])) fail_msg("%s: logit %d of token %d is not finite", *ty, v, t);
        }
        sf_context_free(c);
        sf_model_free(m);
        if (strcmp(*ty, "q4_k_m") == 0) {
            sf_gguf *g;
            assert_int_equal(sf_gguf_open(path, &g), SF_OK);
            expect_u32(g, "general.file_type", 15);
            expect_tensor(g, "token_embd.weight", SF_TYPE_Q6_K, T_EMBD, T_VOCAB);
            expect_tensor(g, "blk.0.attn_q.weight", SF_TYPE_Q4_K, T_EMBD, T_HEAD * T_HEAD_DIM);
            /* 2 layers: use_more_bits picks layer 1 (i >= 7n/8), not layer 0 */
            expect_tensor(g, "blk.0.attn_v.weight", SF_TYPE_Q4_K, T_EMBD, T_HEAD_KV * T_HEAD_DIM);
            expect_tensor(g, "blk.1.attn_v.weight", SF_TYPE_Q6_K, T_EMBD, T_HEAD_KV * T_HEAD_DIM);
            expect_tensor(g, "blk.1.ffn_down.weight", SF_TYPE_Q6_K, T_FF, T_EMBD);
            expect_tensor(g, "blk.1.ffn_up.weight", SF_TYPE_Q4_K, T_EMBD, T_FF);
            sf_gguf_close(g);
        }
        unlink(path);
    }
}

static void test_deterministic(void **state) {
    (void)state;
    const char *a = sf_test_scratch_path("a.gguf"), *b = sf_test_scratch_path("b.gguf");
    write_tiny(a, "q4_0", 42);
    write_tiny(b, "q4_0", 42);
    size_t na, nb;
    char *da = sf_test_read_file(a, &na), *db = sf_test_read_file(b, &nb);
    assert_non_null(da);
    assert_non_null(db);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    free(db);
    write_tiny(b, "q4_0", 43); /* replaces b */
    db = sf_test_read_file(b, &nb);
    assert_int_equal(na, nb);
    assert_true(memcmp(da, db, na) != 0);
    free(da);
    free(db);
    assert_int_equal(sf_test_scratch_entries(), 2);
}

typedef struct { int calls; int64_t last_gen, total; bool wrote; } progress_log;

static void on_progress(const char *what, int64_t done, int64_t total, void *user) {
    progress_log *p = user;
    p->calls++;
    if (strcmp(what, "generating") == 0) {
        assert_true(done > p->last_gen && done <= total);
        p->last_gen = done;
        p->total = total;
    } else {
        assert_string_equal(what, "writing");
        assert_int_equal(total, p->total);
        if (done == total) p->wrote = true;
    }
}

static void test_progress(void **state) {
    (void)state;
    progress_log log = {0};
    sf_synth_params p = sf_synth_default_params();
    p.shape = "tiny";
    p.progress = on_progress;
    p.user = &log;
    sf_synth_result r;
    assert_int_equal(sf_synth_write(sf_test_scratch_path("p.gguf"), &p, &r), SF_OK);
    assert_true(log.calls > 3 + 9 * T_LAYER);
    assert_true(log.last_gen == log.total && (uint64_t)log.total == r.data_bytes);
    assert_true(log.wrote);
}

static void expect_error(const char *path, const char *shape, const char *type, int code, const char *msg) {
    sf_synth_params p = sf_synth_default_params();
    p.shape = shape;
    p.type = type;
    int rc = sf_synth_write(path, &p, NULL);
    if (rc != code || !strstr(sf_last_error(), msg))
        fail_msg("want %d and '%s'; got %d: %s", code, msg, rc, sf_last_error());
}

static void test_bad_args(void **state) {
    (void)state;
    const char *ok = sf_test_scratch_path("x.gguf");
    expect_error(NULL, "tiny", "q4_0", SF_ERR_ARG, "no output path");
    expect_error("", "tiny", "q4_0", SF_ERR_ARG, "no output path");
    expect_error(ok, "llama-3.2-70b", "q4_0", SF_ERR_ARG, "unknown shape 'llama-3.2-70b'");
    expect_error(ok, "tiny", "q7_0", SF_ERR_ARG, "unsupported weight type 'q7_0'");
    expect_error(ok, "tiny", "", SF_ERR_ARG, "unsupported weight type");
    expect_error(sf_test_scratch_path("no/such/dir.gguf"), "tiny", "q4_0", SF_ERR_IO, "No such file or directory");
    expect_error(sf_test_scratch(), "tiny", "q4_0", SF_ERR_IO, "is a directory");
    assert_int_equal(sf_test_scratch_entries(), 0); /* nothing written, nothing left */
    assert_non_null(sf_synth_shape_names()[0]);
}

/* ------------------------------------------------------------ the command */


#define CLI(err, ...) sf_test_run_cli("synth", (const char *const[]){__VA_ARGS__, NULL}, err, sizeof err)

static void test_cli(void **state) {
    (void)state;
    char err[4096];
    const char *out = sf_test_scratch_path("cli.gguf");
    assert_int_equal(CLI(err, "--help"), 0);
    assert_int_equal(CLI(err, "--shape", "tiny"), 2);
    assert_non_null(strstr(err, "no output file"));
    assert_int_equal(CLI(err, "-o", out, "--type", "f8"), 2);
    assert_non_null(strstr(err, "unsupported weight type 'f8'"));
    assert_int_equal(CLI(err, "-o", out, "--shape", "huge"), 2);
    assert_non_null(strstr(err, "unknown shape 'huge'"));
    assert_int_equal(CLI(err, "-o", out, "--seed", "-3"), 2);
    assert_int_equal(CLI(err, "-o", out, "--bogus"), 2);
    assert_int_equal(CLI(err, "-o", sf_test_scratch_path("none/x.gguf"), "--shape", "tiny"), 1);
    assert_non_null(strstr(err, "none"));
    assert_int_equal(sf_test_scratch_entries(), 0);
    int rc = CLI(err, "-o", out, "--shape", "tiny", "--type", "q8_0", "--seed", "5");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(err, "wrote"));
    assert_int_equal(access(out, R_OK), 0);
    assert_int_equal(sf_test_scratch_entries(), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        sf_test_in_scratch(test_tiny_q4_0),
        sf_test_in_scratch(test_tiny_q8_0),
        sf_test_in_scratch(test_every_type),
        sf_test_in_scratch(test_deterministic),
        sf_test_in_scratch(test_progress),
        sf_test_in_scratch(test_bad_args),
        sf_test_in_scratch(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
