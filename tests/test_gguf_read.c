/* GGUF reader: known values of the real models, and every getter over a
 * hand-built file holding every value type. */
#include "gguf_bytes.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "sparsefuse.h"

/* ------------------------------------------------------------ byte builder */

/* bytes, b_raw, b_u8 ... b_str, b_key, b_header, b_pad: gguf_bytes.h */

/* A file with one key of every type and two tensors (F32 {4, 2}, Q8_0 {64}). */
static bytes build_all_types(uint32_t version, size_t *data_start) {
    bytes b = {0};
    b_header(&b, version, 2, 19);
    b_key(&b, "t.u8", SF_GGUF_U8); b_u8(&b, 200);
    b_key(&b, "t.i8", SF_GGUF_I8); b_u8(&b, (uint8_t)-5);
    b_key(&b, "t.u16", SF_GGUF_U16); b_u16(&b, 60000);
    b_key(&b, "t.i16", SF_GGUF_I16); b_u16(&b, (uint16_t)-300);
    b_key(&b, "t.u32", SF_GGUF_U32); b_u32(&b, 4000000000u);
    b_key(&b, "t.i32", SF_GGUF_I32); b_u32(&b, (uint32_t)-7);
    b_key(&b, "t.u64", SF_GGUF_U64); b_u64(&b, 1ull << 40);
    b_key(&b, "t.i64", SF_GGUF_I64); b_u64(&b, (uint64_t)-(int64_t)(1ull << 40));
    float f = 1.5f; double d = -2.25;
    b_key(&b, "t.f32", SF_GGUF_F32); b_raw(&b, &f, 4);
    b_key(&b, "t.f64", SF_GGUF_F64); b_raw(&b, &d, 8);
    b_key(&b, "t.bool", SF_GGUF_BOOL); b_u8(&b, 1);
    b_key(&b, "t.str", SF_GGUF_STRING); b_str(&b, "hello \"gguf\"\n");
    b_key(&b, "t.big", SF_GGUF_U64); b_u64(&b, 1ull << 63);
    /* per-layer: array of 3 i32, and a scalar */
    b_key(&b, "t.layers", SF_GGUF_ARRAY); b_u32(&b, SF_GGUF_I32); b_u64(&b, 3);
    b_u32(&b, 8); b_u32(&b, 0); b_u32(&b, 4);
    b_key(&b, "t.layers_neg", SF_GGUF_ARRAY); b_u32(&b, SF_GGUF_I16); b_u64(&b, 3);
    b_u16(&b, 1); b_u16(&b, (uint16_t)-1); b_u16(&b, 2);
    b_key(&b, "t.strs", SF_GGUF_ARRAY); b_u32(&b, SF_GGUF_STRING); b_u64(&b, 3);
    b_str(&b, "a"); b_str(&b, ""); b_str(&b, "ccc");
    /* nested: [[1, 2], [], [3]] of u8, then an empty array */
    b_key(&b, "t.nested", SF_GGUF_ARRAY); b_u32(&b, SF_GGUF_ARRAY); b_u64(&b, 3);
    b_u32(&b, SF_GGUF_U8); b_u64(&b, 2); b_u8(&b, 1); b_u8(&b, 2);
    b_u32(&b, SF_GGUF_U8); b_u64(&b, 0);
    b_u32(&b, SF_GGUF_U8); b_u64(&b, 1); b_u8(&b, 3);
    b_key(&b, "t.empty", SF_GGUF_ARRAY); b_u32(&b, SF_GGUF_F32); b_u64(&b, 0);
    b_key(&b, "t.f32arr", SF_GGUF_ARRAY); b_u32(&b, SF_GGUF_F32); b_u64(&b, 2);
    float fa[2] = {0.5f, -3.75f};
    b_raw(&b, fa, 8);
    /* tensors */
    b_str(&b, "a.weight"); b_u32(&b, 2); b_u64(&b, 4); b_u64(&b, 2); b_u32(&b, SF_TYPE_F32); b_u64(&b, 0);
    b_str(&b, "b.weight"); b_u32(&b, 1); b_u64(&b, 64); b_u32(&b, SF_TYPE_Q8_0); b_u64(&b, 32);
    b_pad(&b, 32);
    *data_start = b.n;
    for (int i = 0; i < 8; i++) { float v = (float)i; b_raw(&b, &v, 4); }
    for (int i = 0; i < 68; i++) b_u8(&b, (uint8_t)i);
    return b;
}

static void test_all_types(void **state) {
    (void)state;
    for (uint32_t version = 2; version <= 3; version++) {
        size_t ds;
        bytes b = build_all_types(version, &ds);
        sf_gguf *g = NULL;
        assert_int_equal(sf_gguf_open_memory(b.p, b.n, &g), SF_OK);
        assert_int_equal(sf_gguf_version(g), version);
        assert_int_equal(sf_gguf_alignment(g), 32);
        assert_int_equal(sf_gguf_data_offset(g), ds);
        assert_int_equal(sf_gguf_file_size(g), b.n);
        assert_int_equal(sf_gguf_n_kv(g), 19);

        uint32_t u32; uint64_t u64; int64_t i64; float f; bool bo; sf_gguf_str s;
        assert_int_equal(sf_gguf_get_u32(g, "t.u8", &u32), SF_OK); assert_int_equal(u32, 200);
        assert_int_equal(sf_gguf_get_i64(g, "t.i8", &i64), SF_OK); assert_int_equal(i64, -5);
        assert_int_equal(sf_gguf_get_u32(g, "t.u16", &u32), SF_OK); assert_int_equal(u32, 60000);
        assert_int_equal(sf_gguf_get_i64(g, "t.i16", &i64), SF_OK); assert_int_equal(i64, -300);
        assert_int_equal(sf_gguf_get_u32(g, "t.u32", &u32), SF_OK); assert_int_equal(u32, 4000000000u);
        assert_int_equal(sf_gguf_get_i64(g, "t.i32", &i64), SF_OK); assert_int_equal(i64, -7);
        assert_int_equal(sf_gguf_get_u64(g, "t.u64", &u64), SF_OK); assert_true(u64 == 1ull << 40);
        assert_int_equal(sf_gguf_get_i64(g, "t.i64", &i64), SF_OK); assert_true(i64 == -(int64_t)(1ull << 40));
        assert_int_equal(sf_gguf_get_u64(g, "t.big", &u64), SF_OK); assert_true(u64 == 1ull << 63);
        assert_int_equal(sf_gguf_get_f32(g, "t.f32", &f), SF_OK); assert_true(f == 1.5f);
        assert_int_equal(sf_gguf_get_f32(g, "t.f64", &f), SF_OK); assert_true(f == -2.25f);
        assert_int_equal(sf_gguf_get_bool(g, "t.bool", &bo), SF_OK); assert_true(bo);
        assert_int_equal(sf_gguf_get_str(g, "t.str", &s), SF_OK);
        assert_int_equal(s.len, 13);
        assert_memory_equal(s.ptr, "hello \"gguf\"\n", 13);

        /* range and type errors name the key */
        assert_int_equal(sf_gguf_get_u32(g, "t.i8", &u32), SF_ERR_FORMAT);
        assert_non_null(strstr(sf_last_error(), "t.i8"));
        assert_non_null(strstr(sf_last_error(), "negative"));
        assert_int_equal(sf_gguf_get_u32(g, "t.u64", &u32), SF_ERR_FORMAT);
        assert_non_null(strstr(sf_last_error(), "out of range"));
        assert_int_equal(sf_gguf_get_i64(g, "t.big", &i64), SF_ERR_FORMAT);
        assert_int_equal(sf_gguf_get_u64(g, "t.i64", &u64), SF_ERR_FORMAT);
        assert_int_equal(sf_gguf_get_u32(g, "t.str", &u32), SF_ERR_FORMAT);
        assert_non_null(strstr(sf_last_error(), "t.str"));
        assert_int_equal(sf_gguf_get_u32(g, "t.f32", &u32), SF_ERR_FORMAT);
        assert_int_equal(sf_gguf_get_u32(g, "t.bool", &u32), SF_ERR_FORMAT);
        assert_int_equal(sf_gguf_get_f32(g, "t.u32", &f), SF_ERR_FORMAT);
        assert_int_equal(sf_gguf_get_bool(g, "t.u8", &bo), SF_ERR_FORMAT);
        assert_int_equal(sf_gguf_get_str(g, "t.strs", &s), SF_ERR_FORMAT);
        /* missing keys: SF_ERR_RANGE, output untouched */
        u32 = 77;
        assert_int_equal(sf_gguf_get_u32(g, "no.such.key", &u32), SF_ERR_RANGE);
        assert_int_equal(u32, 77);
        assert_int_equal(sf_gguf_get_str(g, "no.such.key", &s), SF_ERR_RANGE);
        assert_int_equal(sf_gguf_find_key(g, "no.such.key"), -1);

        /* per layer */
        uint32_t pl[3];
        assert_int_equal(sf_gguf_get_u32_per_layer(g, "t.layers", 3, pl), SF_OK);
        assert_int_equal(pl[0], 8); assert_int_equal(pl[1], 0); assert_int_equal(pl[2], 4);
        assert_int_equal(sf_gguf_get_u32_per_layer(g, "t.u16", 3, pl), SF_OK);
        assert_int_equal(pl[0], 60000); assert_int_equal(pl[2], 60000);
        assert_int_equal(sf_gguf_get_u32_per_layer(g, "t.layers", 4, pl), SF_ERR_FORMAT);
        assert_non_null(strstr(sf_last_error(), "one per layer"));
        assert_int_equal(sf_gguf_get_u32_per_layer(g, "t.layers_neg", 3, pl), SF_ERR_FORMAT);
        assert_int_equal(sf_gguf_get_u32_per_layer(g, "t.strs", 3, pl), SF_ERR_FORMAT);
        assert_int_equal(sf_gguf_get_u32_per_layer(g, "t.missing", 3, pl), SF_ERR_RANGE);

        /* arrays */
        sf_gguf_vtype et; uint64_t n; const void *data;
        assert_int_equal(sf_gguf_get_arr_data(g, "t.layers", &et, &n, &data), SF_OK);
        assert_int_equal(et, SF_GGUF_I32); assert_int_equal(n, 3);
        assert_int_equal(sf_gguf_arr_get_i64(et, data, 2), 4);
        assert_true(sf_gguf_arr_get_f64(et, data, 0) == 8.0);
        assert_int_equal(sf_gguf_get_arr_data(g, "t.layers_neg", &et, &n, &data), SF_OK);
        assert_int_equal(sf_gguf_arr_get_i64(et, data, 1), -1);
        assert_int_equal(sf_gguf_get_arr_data(g, "t.f32arr", &et, &n, &data), SF_OK);
        assert_true(sf_gguf_arr_get_f64(et, data, 1) == -3.75);
        assert_int_equal(sf_gguf_arr_get_i64(et, data, 1), -3);
        assert_int_equal(sf_gguf_get_arr_data(g, "t.empty", &et, &n, &data), SF_OK);
        assert_int_equal(n, 0);
        assert_int_equal(sf_gguf_get_arr_data(g, "t.strs", &et, &n, &data), SF_ERR_FORMAT);
        assert_int_equal(sf_gguf_get_arr_data(g, "t.nested", &et, &n, &data), SF_ERR_FORMAT);
        assert_int_equal(sf_gguf_get_arr_data(g, "t.u32", &et, &n, &data), SF_ERR_FORMAT);
        const sf_gguf_str *items;
        assert_int_equal(sf_gguf_get_arr_str(g, "t.strs", &n, &items), SF_OK);
        assert_int_equal(n, 3);
        assert_int_equal(items[0].len, 1); assert_memory_equal(items[0].ptr, "a", 1);
        assert_int_equal(items[1].len, 0);
        assert_int_equal(items[2].len, 3); assert_memory_equal(items[2].ptr, "ccc", 3);
        assert_int_equal(sf_gguf_get_arr_str(g, "t.layers", &n, &items), SF_ERR_FORMAT);
        int64_t ki = sf_gguf_find_key(g, "t.nested");
        assert_true(ki >= 0);
        assert_string_equal(sf_gguf_key_at(g, ki), "t.nested");
        assert_int_equal(sf_gguf_kv_type(g, ki), SF_GGUF_ARRAY);
        assert_int_equal(sf_gguf_arr_type(g, ki), SF_GGUF_ARRAY);
        assert_int_equal(sf_gguf_arr_len(g, ki), 3);

        /* formatting */
        char buf[256];
        assert_string_equal(sf_gguf_kv_format(g, ki, buf, sizeof buf),
                            "[[1, 2] (2 x u8), [] (0 x u8), [3] (1 x u8)] (3 x arr)");
        assert_string_equal(sf_gguf_kv_format(g, sf_gguf_find_key(g, "t.str"), buf, sizeof buf),
                            "\"hello \\\"gguf\\\"\\n\"");
        assert_string_equal(sf_gguf_kv_format(g, sf_gguf_find_key(g, "t.i64"), buf, sizeof buf), "-1099511627776");
        assert_string_equal(sf_gguf_kv_format(g, sf_gguf_find_key(g, "t.bool"), buf, sizeof buf), "true");
        assert_string_equal(sf_gguf_kv_format(g, sf_gguf_find_key(g, "t.strs"), buf, sizeof buf),
                            "[\"a\", \"\", \"ccc\"] (3 x str)");
        assert_string_equal(sf_gguf_kv_format(g, sf_gguf_find_key(g, "t.f32"), buf, sizeof buf), "1.5");
        char tiny[8];
        sf_gguf_kv_format(g, sf_gguf_find_key(g, "t.strs"), tiny, sizeof tiny);
        assert_true(strlen(tiny) < sizeof tiny);

        /* tensors */
        assert_int_equal(sf_gguf_n_tensors(g), 2);
        const sf_gguf_tensor *t = sf_gguf_find_tensor(g, "a.weight");
        assert_non_null(t);
        assert_ptr_equal(t, sf_gguf_tensor_at(g, 0));
        assert_int_equal(t->type, SF_TYPE_F32);
        assert_int_equal(t->n_dims, 2);
        assert_int_equal(t->ne[0], 4); assert_int_equal(t->ne[1], 2);
        assert_int_equal(t->ne[2], 1); assert_int_equal(t->ne[3], 1);
        assert_int_equal(t->nbytes, 32);
        assert_ptr_equal(t->data, b.p + ds);
        assert_true(((const float *)t->data)[7] == 7.0f);
        t = sf_gguf_find_tensor(g, "b.weight");
        assert_non_null(t);
        assert_int_equal(t->type, SF_TYPE_Q8_0);
        assert_int_equal(t->nbytes, 68);
        assert_int_equal(t->offset, 32);
        assert_ptr_equal(t->data, b.p + ds + 32);
        assert_null(sf_gguf_find_tensor(g, "c.weight"));
        assert_null(sf_gguf_tensor_at(g, 2));
        assert_null(sf_gguf_tensor_at(g, -1));
        sf_gguf_close(g);
        free(b.p);
    }
}

static void test_custom_alignment(void **state) {
    (void)state;
    bytes b = {0};
    b_header(&b, 3, 1, 1);
    b_key(&b, "general.alignment", SF_GGUF_U32); b_u32(&b, 64);
    b_str(&b, "x"); b_u32(&b, 1); b_u64(&b, 8); b_u32(&b, SF_TYPE_F16); b_u64(&b, 0);
    b_pad(&b, 64);
    size_t ds = b.n;
    for (int i = 0; i < 16; i++) b_u8(&b, 0);
    sf_gguf *g;
    assert_int_equal(sf_gguf_open_memory(b.p, b.n, &g), SF_OK);
    assert_int_equal(sf_gguf_alignment(g), 64);
    assert_int_equal(sf_gguf_data_offset(g), ds);
    assert_int_equal(ds % 64, 0);
    sf_gguf_close(g);
    free(b.p);
}

static void test_open_errors(void **state) {
    (void)state;
    sf_gguf *g = (sf_gguf *)1;
    assert_int_equal(sf_gguf_open("/nonexistent/dir/model.gguf", &g), SF_ERR_IO);
    assert_null(g);
    assert_non_null(strstr(sf_last_error(), "/nonexistent/dir/model.gguf"));
    assert_int_not_equal(sf_gguf_open("/tmp", &g), SF_OK);
    assert_null(g);
    assert_int_equal(sf_gguf_open_memory("", 0, &g), SF_ERR_FORMAT);
    assert_null(g);
}

static void test_smollm(void **state) {
    (void)state;
    const char *path = sf_test_model_path(SF_TEST_SMOLLM);
    if (!path) skip();
    sf_gguf *g;
    assert_int_equal(sf_gguf_open(path, &g), SF_OK);
    assert_int_equal(sf_gguf_version(g), 3);
    assert_int_equal(sf_gguf_n_tensors(g), 272);
    uint32_t v;
    assert_int_equal(sf_gguf_get_u32(g, "llama.block_count", &v), SF_OK); assert_int_equal(v, 30);
    assert_int_equal(sf_gguf_get_u32(g, "llama.embedding_length", &v), SF_OK); assert_int_equal(v, 576);
    assert_int_equal(sf_gguf_get_u32(g, "llama.attention.head_count_kv", &v), SF_OK); assert_int_equal(v, 3);
    float f;
    assert_int_equal(sf_gguf_get_f32(g, "llama.rope.freq_base", &f), SF_OK); assert_true(f == 100000.0f);
    sf_gguf_str s;
    assert_int_equal(sf_gguf_get_str(g, "general.architecture", &s), SF_OK);
    assert_int_equal(s.len, 5); assert_memory_equal(s.ptr, "llama", 5);
    bool b;
    assert_int_equal(sf_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b), SF_OK); assert_false(b);
    uint64_t n;
    const sf_gguf_str *tok;
    assert_int_equal(sf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &n, &tok), SF_OK);
    assert_int_equal(n, 49152);
    assert_int_equal(tok[1].len, 12); assert_memory_equal(tok[1].ptr, "<|im_start|>", 12);
    assert_int_equal(sf_gguf_get_arr_str(g, "tokenizer.ggml.merges", &n, &tok), SF_OK);
    assert_int_equal(n, 48900);
    assert_int_equal(tok[0].len, 4); assert_memory_equal(tok[0].ptr, "\xc4\xa0 t", 4);
    sf_gguf_vtype et;
    const void *data;
    assert_int_equal(sf_gguf_get_arr_data(g, "tokenizer.ggml.token_type", &et, &n, &data), SF_OK);
    assert_int_equal(et, SF_GGUF_I32); assert_int_equal(n, 49152);
    assert_int_equal(sf_gguf_arr_get_i64(et, data, 0), 3);

    const sf_gguf_tensor *t = sf_gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->type, SF_TYPE_Q8_0);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 576); assert_int_equal(t->ne[1], 49152);
    assert_int_equal(t->nbytes, 576 / 32 * 34 * 49152);
    assert_null(sf_gguf_find_tensor(g, "output.weight")); /* tied embeddings */
    t = sf_gguf_find_tensor(g, "blk.29.ffn_down.weight");
    assert_non_null(t);
    assert_int_equal(t->type, SF_TYPE_Q4_1);
    assert_int_equal(t->ne[0], 1536); assert_int_equal(t->ne[1], 576);
    /* every tensor aligned and inside the file */
    size_t total = 0;
    for (int64_t i = 0; i < sf_gguf_n_tensors(g); i++) {
        t = sf_gguf_tensor_at(g, i);
        assert_int_equal(t->offset % sf_gguf_alignment(g), 0);
        assert_true(sf_gguf_data_offset(g) + t->offset + t->nbytes <= sf_gguf_file_size(g));
        assert_ptr_equal(sf_gguf_find_tensor(g, t->name), t);
        total += t->nbytes;
    }
    assert_int_equal(total, 96576768);
    sf_gguf_close(g);
}

static void test_gemma(void **state) {
    (void)state;
    const char *path = sf_test_model_path(SF_TEST_GEMMA);
    if (!path) skip();
    sf_gguf *g;
    assert_int_equal(sf_gguf_open(path, &g), SF_OK);
    assert_int_equal(sf_gguf_n_tensors(g), 236);
    uint32_t v;
    assert_int_equal(sf_gguf_get_u32(g, "gemma3.block_count", &v), SF_OK); assert_int_equal(v, 18);
    assert_int_equal(sf_gguf_get_u32(g, "gemma3.attention.key_length", &v), SF_OK); assert_int_equal(v, 256);
    uint64_t n;
    const sf_gguf_str *tok;
    assert_int_equal(sf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &n, &tok), SF_OK);
    assert_int_equal(n, 262144);
    assert_int_equal(tok[2].len, 5); assert_memory_equal(tok[2].ptr, "<bos>", 5);
    sf_gguf_vtype et;
    const void *data;
    assert_int_equal(sf_gguf_get_arr_data(g, "tokenizer.ggml.scores", &et, &n, &data), SF_OK);
    assert_int_equal(et, SF_GGUF_F32); assert_int_equal(n, 262144);
    const sf_gguf_tensor *t = sf_gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 640); assert_int_equal(t->ne[1], 262144);
    sf_gguf_close(g);
}

static void test_inspect(void **state) {
    (void)state;
    const char *path = sf_test_model_path(SF_TEST_SMOLLM);
    if (!path) skip();
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    assert_int_equal(sf_inspect_file(path, out, true), SF_OK);
    fclose(out);
    assert_non_null(strstr(text, "llama.block_count"));
    assert_non_null(strstr(text, "49152 tokens"));
    assert_non_null(strstr(text, "\"<|im_start|>\""));
    assert_non_null(strstr(text, "token_embd.weight"));
    assert_non_null(strstr(text, "{576, 49152}"));
    assert_non_null(strstr(text, "Q4_1"));
    assert_non_null(strstr(text, "134515008"));
    assert_non_null(strstr(text, "tokenizer.ggml.merges"));
    free(text);
    out = fopen("/dev/null", "w");
    assert_non_null(out);
    assert_int_equal(sf_inspect_file("/nonexistent.gguf", out, false), SF_ERR_IO);
    fclose(out);
}

static int g_warnings;
static char g_last_warning[512];
static void capture_log(int level, const char *msg, void *user) {
    (void)user;
    if (level == 1) {
        g_warnings++;
        snprintf(g_last_warning, sizeof g_last_warning, "%s", msg);
    }
}

/* Names longer than ggml's 63 bytes are accepted with a warning. */
static void test_long_name_warns(void **state) {
    (void)state;
    char name[101];
    memset(name, 'n', 100);
    name[100] = '\0';
    bytes b = {0};
    b_header(&b, 3, 1, 0);
    b_str(&b, name); b_u32(&b, 1); b_u64(&b, 4); b_u32(&b, SF_TYPE_F32); b_u64(&b, 0);
    b_pad(&b, 32);
    for (int i = 0; i < 16; i++) b_u8(&b, 0);
    g_warnings = 0;
    sf_set_log(capture_log, NULL);
    sf_gguf *g;
    assert_int_equal(sf_gguf_open_memory(b.p, b.n, &g), SF_OK);
    sf_set_log(NULL, NULL);
    assert_int_equal(g_warnings, 1);
    assert_non_null(strstr(g_last_warning, "100 bytes"));
    assert_non_null(sf_gguf_find_tensor(g, name));
    sf_gguf_close(g);
    free(b.p);
}

/* inspect on the hand-built file: every value type formats. */
static void test_inspect_all_types(void **state) {
    (void)state;
    size_t ds;
    bytes b = build_all_types(3, &ds);
    char path[] = "/tmp/sf_test_gguf_inspect_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_int_equal(fwrite(b.p, 1, b.n, f), b.n);
    fclose(f);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int rc = sf_inspect_file(path, out, true);
    fclose(out);
    unlink(path);
    assert_int_equal(rc, SF_OK);
    assert_non_null(strstr(text, "t.nested"));
    assert_non_null(strstr(text, "(3 x arr)"));
    assert_non_null(strstr(text, "-1099511627776"));
    assert_non_null(strstr(text, "Q8_0"));
    assert_non_null(strstr(text, "{4, 2}"));
    free(text);
    free(b.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_types),
        cmocka_unit_test(test_custom_alignment),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_smollm),
        cmocka_unit_test(test_gemma),
        cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_long_name_warns),
        cmocka_unit_test(test_inspect_all_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
