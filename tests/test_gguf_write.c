/* GGUF writer: every metadata type and several tensors round-trip through
 * the reader; layout rules (alignment, back-to-back offsets); atomic output;
 * a byte-exact copy of the real SmolLM2 file. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "sparsefuse.h"

/* Number of entries in the temp dir (to catch leftover temporary files). */
static void put_u32(uint8_t *b, size_t *n, uint32_t v) { memcpy(b + *n, &v, 4); *n += 4; }
static void put_u64(uint8_t *b, size_t *n, uint64_t v) { memcpy(b + *n, &v, 8); *n += 8; }

/* A source file holding a nested array, built by hand:
 * "t.nested" = [[1, 2], [], [3]] (arrays of u8). */
static uint8_t *nested_source(size_t *len) {
    uint8_t *b = calloc(1, 256);
    size_t n = 0;
    memcpy(b, "GGUF", 4); n = 4;
    put_u32(b, &n, 3);
    put_u64(b, &n, 0); /* tensors */
    put_u64(b, &n, 1); /* keys */
    put_u64(b, &n, 8); memcpy(b + n, "t.nested", 8); n += 8;
    put_u32(b, &n, SF_GGUF_ARRAY);
    put_u32(b, &n, SF_GGUF_ARRAY); put_u64(b, &n, 3);
    put_u32(b, &n, SF_GGUF_U8); put_u64(b, &n, 2); b[n++] = 1; b[n++] = 2;
    put_u32(b, &n, SF_GGUF_U8); put_u64(b, &n, 0);
    put_u32(b, &n, SF_GGUF_U8); put_u64(b, &n, 1); b[n++] = 3;
    *len = n;
    return b;
}

static void test_roundtrip_all_types(void **state) {
    (void)state;
    sf_gguf_writer *w = sf_gguf_writer_new();
    assert_non_null(w);
    uint8_t u8 = 250; int8_t i8 = -100; uint16_t u16 = 65000; int16_t i16 = -32000;
    uint32_t u32 = 0xfedcba98u; int32_t i32 = -123456; uint64_t u64 = 0x0123456789abcdefull;
    int64_t i64 = -(int64_t)0x0123456789abcdefll; float f32 = 3.25f; double f64 = -1e300; bool bo = true;
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.u8", SF_GGUF_U8, &u8), SF_OK);
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.i8", SF_GGUF_I8, &i8), SF_OK);
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.u16", SF_GGUF_U16, &u16), SF_OK);
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.i16", SF_GGUF_I16, &i16), SF_OK);
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.u32", SF_GGUF_U32, &u32), SF_OK);
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.i32", SF_GGUF_I32, &i32), SF_OK);
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.u64", SF_GGUF_U64, &u64), SF_OK);
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.i64", SF_GGUF_I64, &i64), SF_OK);
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.f32", SF_GGUF_F32, &f32), SF_OK);
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.f64", SF_GGUF_F64, &f64), SF_OK);
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.bool", SF_GGUF_BOOL, &bo), SF_OK);
    assert_int_equal(sf_gguf_writer_set_scalar(w, "s.bad", SF_GGUF_STRING, "x"), SF_ERR_ARG);
    assert_int_equal(sf_gguf_writer_set_u32(w, "w.u32", 7), SF_OK);
    assert_int_equal(sf_gguf_writer_set_i32(w, "w.i32", -7), SF_OK);
    assert_int_equal(sf_gguf_writer_set_u64(w, "w.u64", 1ull << 50), SF_OK);
    assert_int_equal(sf_gguf_writer_set_f32(w, "w.f32", 0.125f), SF_OK);
    assert_int_equal(sf_gguf_writer_set_bool(w, "w.bool", false), SF_OK);
    assert_int_equal(sf_gguf_writer_set_str(w, "w.str", "héllo"), SF_OK);
    assert_int_equal(sf_gguf_writer_set_str(w, "w.empty", ""), SF_OK);
    /* one array per numeric element type */
    const uint8_t a_u8[3] = {1, 2, 255};
    const int16_t a_i16[2] = {-1, 300};
    const int32_t a_i32[4] = {1, -2, 3, -4};
    const uint64_t a_u64[2] = {0, UINT64_MAX};
    const float a_f32[3] = {0.5f, -1.0f, 1e-20f};
    const double a_f64[2] = {1.0 / 3.0, -0.0};
    const bool a_bool[3] = {true, false, true};
    assert_int_equal(sf_gguf_writer_set_arr(w, "a.u8", SF_GGUF_U8, a_u8, 3), SF_OK);
    assert_int_equal(sf_gguf_writer_set_arr(w, "a.i16", SF_GGUF_I16, a_i16, 2), SF_OK);
    assert_int_equal(sf_gguf_writer_set_arr(w, "a.i32", SF_GGUF_I32, a_i32, 4), SF_OK);
    assert_int_equal(sf_gguf_writer_set_arr(w, "a.u64", SF_GGUF_U64, a_u64, 2), SF_OK);
    assert_int_equal(sf_gguf_writer_set_arr(w, "a.f32", SF_GGUF_F32, a_f32, 3), SF_OK);
    assert_int_equal(sf_gguf_writer_set_arr(w, "a.f64", SF_GGUF_F64, a_f64, 2), SF_OK);
    assert_int_equal(sf_gguf_writer_set_arr(w, "a.bool", SF_GGUF_BOOL, a_bool, 3), SF_OK);
    assert_int_equal(sf_gguf_writer_set_arr(w, "a.none", SF_GGUF_I32, NULL, 0), SF_OK);
    assert_int_equal(sf_gguf_writer_set_arr(w, "a.bad", SF_GGUF_STRING, a_u8, 1), SF_ERR_ARG);
    const sf_gguf_str strs[3] = {{"alpha", 5}, {"", 0}, {"g\0mma", 5}};
    assert_int_equal(sf_gguf_writer_set_arr_str(w, "a.str", strs, 3), SF_OK);
    /* nested array via copy_kv */
    size_t nlen;
    uint8_t *nsrc = nested_source(&nlen);
    sf_gguf *src;
    if (sf_gguf_open_memory(nsrc, nlen, &src) != SF_OK) print_error("%s\n", sf_last_error());
    assert_non_null(src);
    assert_int_equal(sf_gguf_writer_copy_kv(w, src, 0), SF_OK);
    assert_int_equal(sf_gguf_writer_copy_kv(w, src, 1), SF_ERR_ARG);
    sf_gguf_close(src);
    free(nsrc);

    /* tensors: sizes that need padding, a quantized one, an empty one */
    float t_f32[12];
    for (int i = 0; i < 12; i++) t_f32[i] = (float)i - 5.5f;
    uint8_t t_q8[2 * 68], t_q4k[144], t_f16[6];
    for (size_t i = 0; i < sizeof t_q8; i++) t_q8[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof t_q4k; i++) t_q4k[i] = (uint8_t)(i ^ 0x5a);
    for (size_t i = 0; i < sizeof t_f16; i++) t_f16[i] = (uint8_t)(i + 1);
    const int64_t ne_f32[2] = {4, 3}, ne_q8[2] = {64, 2}, ne_q4k[1] = {256}, ne_f16[1] = {3}, ne_0[2] = {0, 4};
    assert_int_equal(sf_gguf_writer_add_tensor(w, "f32", SF_TYPE_F32, 2, ne_f32, t_f32, sizeof t_f32), SF_OK);
    assert_int_equal(sf_gguf_writer_add_tensor(w, "q8", SF_TYPE_Q8_0, 2, ne_q8, t_q8, sizeof t_q8), SF_OK);
    assert_int_equal(sf_gguf_writer_add_tensor(w, "f16", SF_TYPE_F16, 1, ne_f16, t_f16, sizeof t_f16), SF_OK);
    assert_int_equal(sf_gguf_writer_add_tensor(w, "empty", SF_TYPE_F32, 2, ne_0, NULL, 0), SF_OK);
    assert_int_equal(sf_gguf_writer_add_tensor(w, "q4k", SF_TYPE_Q4_K, 1, ne_q4k, t_q4k, sizeof t_q4k), SF_OK);
    const char *path = sf_test_scratch_path("all.gguf");
    assert_int_equal(sf_gguf_writer_finish(w, path), SF_OK);
    sf_gguf_writer_free(w);
    assert_int_equal(sf_test_scratch_entries(), 1); /* no temporary left */

    sf_gguf *g;
    assert_int_equal(sf_gguf_open(path, &g), SF_OK);
    assert_int_equal(sf_gguf_version(g), 3);
    assert_int_equal(sf_gguf_n_kv(g), 28);
    assert_string_equal(sf_gguf_key_at(g, 0), "s.u8"); /* insertion order */
    uint32_t r32; uint64_t r64; int64_t ri; float rf; bool rb; sf_gguf_str rs;
    assert_int_equal(sf_gguf_get_u32(g, "s.u8", &r32), SF_OK); assert_int_equal(r32, 250);
    assert_int_equal(sf_gguf_get_i64(g, "s.i8", &ri), SF_OK); assert_int_equal(ri, -100);
    assert_int_equal(sf_gguf_get_u32(g, "s.u16", &r32), SF_OK); assert_int_equal(r32, 65000);
    assert_int_equal(sf_gguf_get_i64(g, "s.i16", &ri), SF_OK); assert_int_equal(ri, -32000);
    assert_int_equal(sf_gguf_get_u32(g, "s.u32", &r32), SF_OK); assert_int_equal(r32, 0xfedcba98u);
    assert_int_equal(sf_gguf_get_i64(g, "s.i32", &ri), SF_OK); assert_int_equal(ri, -123456);
    assert_int_equal(sf_gguf_get_u64(g, "s.u64", &r64), SF_OK); assert_true(r64 == u64);
    assert_int_equal(sf_gguf_get_i64(g, "s.i64", &ri), SF_OK); assert_true(ri == i64);
    assert_int_equal(sf_gguf_get_f32(g, "s.f32", &rf), SF_OK); assert_true(rf == 3.25f);
    char buf[256];
    assert_string_equal(sf_gguf_kv_format(g, sf_gguf_find_key(g, "s.f64"), buf, sizeof buf), "-1.0000000000000001e+300");
    assert_int_equal(sf_gguf_kv_type(g, sf_gguf_find_key(g, "s.f64")), SF_GGUF_F64);
    assert_int_equal(sf_gguf_get_f32(g, "s.f64", &rf), SF_ERR_FORMAT); /* -1e300 does not fit */
    assert_non_null(strstr(sf_last_error(), "out of range for f32"));
    assert_int_equal(sf_gguf_get_bool(g, "s.bool", &rb), SF_OK); assert_true(rb);
    assert_int_equal(sf_gguf_get_u32(g, "w.u32", &r32), SF_OK); assert_int_equal(r32, 7);
    assert_int_equal(sf_gguf_kv_type(g, sf_gguf_find_key(g, "w.u32")), SF_GGUF_U32);
    assert_int_equal(sf_gguf_get_i64(g, "w.i32", &ri), SF_OK); assert_int_equal(ri, -7);
    assert_int_equal(sf_gguf_kv_type(g, sf_gguf_find_key(g, "w.i32")), SF_GGUF_I32);
    assert_int_equal(sf_gguf_get_u64(g, "w.u64", &r64), SF_OK); assert_true(r64 == 1ull << 50);
    assert_int_equal(sf_gguf_get_f32(g, "w.f32", &rf), SF_OK); assert_true(rf == 0.125f);
    assert_int_equal(sf_gguf_get_bool(g, "w.bool", &rb), SF_OK); assert_false(rb);
    assert_int_equal(sf_gguf_get_str(g, "w.str", &rs), SF_OK);
    assert_int_equal(rs.len, strlen("héllo")); assert_memory_equal(rs.ptr, "héllo", rs.len);
    assert_int_equal(sf_gguf_get_str(g, "w.empty", &rs), SF_OK); assert_int_equal(rs.len, 0);

    sf_gguf_vtype et; uint64_t n; const void *d;
    assert_int_equal(sf_gguf_get_arr_data(g, "a.u8", &et, &n, &d), SF_OK);
    assert_int_equal(et, SF_GGUF_U8); assert_int_equal(n, 3); assert_memory_equal(d, a_u8, sizeof a_u8);
    assert_int_equal(sf_gguf_get_arr_data(g, "a.i16", &et, &n, &d), SF_OK);
    assert_int_equal(et, SF_GGUF_I16); assert_memory_equal(d, a_i16, sizeof a_i16);
    assert_int_equal(sf_gguf_arr_get_i64(et, d, 0), -1);
    assert_int_equal(sf_gguf_get_arr_data(g, "a.i32", &et, &n, &d), SF_OK);
    assert_int_equal(n, 4); assert_memory_equal(d, a_i32, sizeof a_i32);
    assert_int_equal(sf_gguf_get_arr_data(g, "a.u64", &et, &n, &d), SF_OK);
    assert_int_equal(et, SF_GGUF_U64); assert_memory_equal(d, a_u64, sizeof a_u64);
    assert_int_equal(sf_gguf_arr_get_i64(et, d, 1), INT64_MAX); /* saturates */
    assert_int_equal(sf_gguf_get_arr_data(g, "a.f32", &et, &n, &d), SF_OK);
    assert_int_equal(et, SF_GGUF_F32); assert_memory_equal(d, a_f32, sizeof a_f32);
    assert_int_equal(sf_gguf_get_arr_data(g, "a.f64", &et, &n, &d), SF_OK);
    assert_int_equal(et, SF_GGUF_F64); assert_memory_equal(d, a_f64, sizeof a_f64);
    assert_true(sf_gguf_arr_get_f64(et, d, 0) == 1.0 / 3.0);
    assert_int_equal(sf_gguf_get_arr_data(g, "a.bool", &et, &n, &d), SF_OK);
    assert_int_equal(et, SF_GGUF_BOOL); assert_int_equal(sf_gguf_arr_get_i64(et, d, 1), 0);
    assert_int_equal(sf_gguf_get_arr_data(g, "a.none", &et, &n, &d), SF_OK);
    assert_int_equal(n, 0);
    const sf_gguf_str *items;
    assert_int_equal(sf_gguf_get_arr_str(g, "a.str", &n, &items), SF_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(items[i].len, strs[i].len);
        assert_memory_equal(items[i].ptr, strs[i].ptr, strs[i].len);
    }
    int64_t ki = sf_gguf_find_key(g, "t.nested");
    assert_int_equal(sf_gguf_arr_type(g, ki), SF_GGUF_ARRAY);
    assert_string_equal(sf_gguf_kv_format(g, ki, buf, sizeof buf),
                        "[[1, 2] (2 x u8), [] (0 x u8), [3] (1 x u8)] (3 x arr)");

    /* tensors: back to back, each padded to 32 */
    assert_int_equal(sf_gguf_n_tensors(g), 5);
    assert_int_equal(sf_gguf_data_offset(g) % 32, 0);
    static const char *const names[5] = {"f32", "q8", "f16", "empty", "q4k"};
    const void *datas[5] = {t_f32, t_q8, t_f16, NULL, t_q4k};
    const size_t sizes[5] = {sizeof t_f32, sizeof t_q8, sizeof t_f16, 0, sizeof t_q4k};
    uint64_t off = 0;
    for (int i = 0; i < 5; i++) {
        const sf_gguf_tensor *t = sf_gguf_tensor_at(g, i);
        assert_string_equal(t->name, names[i]);
        assert_int_equal(t->offset, off);
        assert_int_equal(t->nbytes, sizes[i]);
        if (sizes[i]) assert_memory_equal(t->data, datas[i], sizes[i]);
        off += (sizes[i] + 31) / 32 * 32;
    }
    const sf_gguf_tensor *t = sf_gguf_find_tensor(g, "q4k");
    assert_int_equal(t->type, SF_TYPE_Q4_K);
    assert_int_equal(t->n_dims, 1);
    assert_int_equal(t->ne[0], 256);
    t = sf_gguf_find_tensor(g, "empty");
    assert_int_equal(t->ne[0], 0); assert_int_equal(t->ne[1], 4);
    assert_int_equal(sf_gguf_file_size(g), sf_gguf_data_offset(g) + off);
    /* padding bytes are zero */
    t = sf_gguf_find_tensor(g, "f16");
    for (int i = 6; i < 32; i++) assert_int_equal(((const uint8_t *)t->data)[i], 0);
    sf_gguf_close(g);
}

static void test_alignment_and_replace(void **state) {
    (void)state;
    sf_gguf_writer *w = sf_gguf_writer_new();
    assert_int_equal(sf_gguf_writer_set_u32(w, "general.alignment", 3), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "power of two"));
    assert_int_equal(sf_gguf_writer_set_u32(w, "general.alignment", 0), SF_ERR_ARG);
    assert_int_equal(sf_gguf_writer_set_i32(w, "general.alignment", 64), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "u32"));
    assert_int_equal(sf_gguf_writer_set_str(w, "general.name", "first"), SF_OK);
    assert_int_equal(sf_gguf_writer_set_u32(w, "general.alignment", 64), SF_OK);
    assert_int_equal(sf_gguf_writer_set_str(w, "general.name", "second"), SF_OK); /* replaces */
    uint8_t data[6 * 64];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)i;
    const int64_t ne[1] = {3};
    assert_int_equal(sf_gguf_writer_add_tensor(w, "a", SF_TYPE_F16, 1, ne, data, 6), SF_OK);
    assert_int_equal(sf_gguf_writer_add_tensor(w, "b", SF_TYPE_F16, 1, ne, data + 6, 6), SF_OK);
    const char *path = sf_test_scratch_path("aligned.gguf");
    assert_int_equal(sf_gguf_writer_finish(w, path), SF_OK);
    sf_gguf_writer_free(w);
    sf_gguf *g;
    assert_int_equal(sf_gguf_open(path, &g), SF_OK);
    assert_int_equal(sf_gguf_alignment(g), 64);
    assert_int_equal(sf_gguf_n_kv(g), 2);
    assert_string_equal(sf_gguf_key_at(g, 0), "general.name");
    sf_gguf_str s;
    assert_int_equal(sf_gguf_get_str(g, "general.name", &s), SF_OK);
    assert_int_equal(s.len, 6); assert_memory_equal(s.ptr, "second", 6);
    assert_int_equal(sf_gguf_data_offset(g) % 64, 0);
    assert_int_equal(sf_gguf_find_tensor(g, "b")->offset, 64);
    assert_memory_equal(sf_gguf_find_tensor(g, "b")->data, data + 6, 6);
    assert_int_equal(sf_gguf_file_size(g), sf_gguf_data_offset(g) + 128);
    sf_gguf_close(g);
    unlink(path);
}

static void test_writer_errors(void **state) {
    (void)state;
    sf_gguf_writer *w = sf_gguf_writer_new();
    uint8_t data[1024] = {0};
    int64_t ne[5] = {32, 2, 1, 1, 1};
    assert_int_equal(sf_gguf_writer_add_tensor(w, "q", SF_TYPE_Q8_0, 2, ne, data, 34), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "need 68"));
    assert_int_equal(sf_gguf_writer_add_tensor(w, "q", SF_TYPE_Q8_0, 5, ne, data, 68), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "n_dims"));
    ne[0] = 33;
    assert_int_equal(sf_gguf_writer_add_tensor(w, "q", SF_TYPE_Q8_0, 2, ne, data, 68), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "multiple of 32"));
    ne[0] = 32;
    assert_int_equal(sf_gguf_writer_add_tensor(w, "q", (sf_type)4, 2, ne, data, 68), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "unknown type"));
    assert_int_equal(sf_gguf_writer_add_tensor(w, "q", SF_TYPE_Q8_0, 2, ne, NULL, 68), SF_ERR_ARG);
    assert_int_equal(sf_gguf_writer_add_tensor(w, "q", SF_TYPE_Q8_0, 2, ne, data, 68), SF_OK);
    assert_int_equal(sf_gguf_writer_add_tensor(w, "q", SF_TYPE_Q8_0, 2, ne, data, 68), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "duplicate tensor name 'q'"));
    const bool bad_bool[1] = {true};
    uint8_t two = 2;
    assert_int_equal(sf_gguf_writer_set_arr(w, "b", SF_GGUF_BOOL, bad_bool, 1), SF_OK);
    assert_int_equal(sf_gguf_writer_set_arr(w, "b", SF_GGUF_BOOL, &two, 1), SF_ERR_ARG);
    assert_int_equal(sf_gguf_writer_set_str(w, "s", NULL), SF_ERR_ARG);

    /* a failed finish leaves nothing behind and the target untouched */
    int before = sf_test_scratch_entries();
    assert_int_equal(sf_gguf_writer_finish(w, "/nonexistent/dir/x.gguf"), SF_ERR_IO);
    const char *sub = sf_test_scratch_path("subdir");
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(sf_gguf_writer_finish(w, sub), SF_ERR_IO); /* rename over a directory fails */
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(sf_test_scratch_entries(), before + 1); /* only subdir: the temporary was removed */
    rmdir(sub);
    sf_gguf_writer_free(w);
    sf_gguf_writer_free(NULL);
}

/* Asserts that key i of a has the same type and value under the same key in b. */
static void assert_same_kv(const sf_gguf *a, int64_t i, const sf_gguf *b) {
    const char *key = sf_gguf_key_at(a, i);
    int64_t j = sf_gguf_find_key(b, key);
    assert_true(j >= 0);
    assert_int_equal(sf_gguf_kv_type(a, i), sf_gguf_kv_type(b, j));
    char fa[512], fb[512];
    assert_string_equal(sf_gguf_kv_format(a, i, fa, sizeof fa), sf_gguf_kv_format(b, j, fb, sizeof fb));
    if (sf_gguf_kv_type(a, i) == SF_GGUF_STRING) {
        sf_gguf_str sa, sb;
        assert_int_equal(sf_gguf_get_str(a, key, &sa), SF_OK);
        assert_int_equal(sf_gguf_get_str(b, key, &sb), SF_OK);
        assert_int_equal(sa.len, sb.len);
        assert_memory_equal(sa.ptr, sb.ptr, sa.len);
    }
    if (sf_gguf_kv_type(a, i) != SF_GGUF_ARRAY) return;
    assert_int_equal(sf_gguf_arr_type(a, i), sf_gguf_arr_type(b, j));
    assert_int_equal(sf_gguf_arr_len(a, i), sf_gguf_arr_len(b, j));
    uint64_t na, nb;
    if (sf_gguf_arr_type(a, i) == SF_GGUF_STRING) {
        const sf_gguf_str *ia, *ib;
        assert_int_equal(sf_gguf_get_arr_str(a, key, &na, &ia), SF_OK);
        assert_int_equal(sf_gguf_get_arr_str(b, key, &nb, &ib), SF_OK);
        for (uint64_t k = 0; k < na; k++) {
            assert_int_equal(ia[k].len, ib[k].len);
            assert_memory_equal(ia[k].ptr, ib[k].ptr, ia[k].len);
        }
    } else {
        sf_gguf_vtype ta, tb;
        const void *da, *db;
        assert_int_equal(sf_gguf_get_arr_data(a, key, &ta, &na, &da), SF_OK);
        assert_int_equal(sf_gguf_get_arr_data(b, key, &tb, &nb, &db), SF_OK);
        for (uint64_t k = 0; k < na; k++)
            assert_true(sf_gguf_arr_get_f64(ta, da, k) == sf_gguf_arr_get_f64(tb, db, k));
    }
}

/* Copies all of SmolLM2's metadata and tensors: the result must be the
 * original file byte for byte (llama.cpp writes the same layout). */
static void test_copy_smollm_exact(void **state) {
    (void)state;
    const char *model = sf_test_model_path(SF_TEST_SMOLLM);
    if (!model) skip();
    char src_path[4096];
    snprintf(src_path, sizeof src_path, "%s", model);
    sf_gguf *src;
    assert_int_equal(sf_gguf_open(src_path, &src), SF_OK);
    sf_gguf_writer *w = sf_gguf_writer_new();
    for (int64_t i = 0; i < sf_gguf_n_kv(src); i++) assert_int_equal(sf_gguf_writer_copy_kv(w, src, i), SF_OK);
    for (int64_t i = 0; i < sf_gguf_n_tensors(src); i++) {
        const sf_gguf_tensor *t = sf_gguf_tensor_at(src, i);
        assert_int_equal(sf_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes), SF_OK);
    }
    const char *path = sf_test_scratch_path("smollm_copy.gguf");
    assert_int_equal(sf_gguf_writer_finish(w, path), SF_OK);
    sf_gguf_writer_free(w);
    sf_gguf_close(src);
    size_t len_copy, len_orig;
    char *copy = sf_test_read_file(path, &len_copy);
    char *orig = sf_test_read_file(src_path, &len_orig);
    assert_non_null(copy);
    assert_non_null(orig);
    assert_int_equal(len_copy, len_orig);
    size_t first_diff = len_orig;
    for (size_t k = 0; k < len_orig && first_diff == len_orig; k++)
        if (copy[k] != orig[k]) first_diff = k;
    if (first_diff != len_orig) print_error("first differing byte at offset %zu\n", first_diff);
    assert_int_equal(first_diff, len_orig);
    free(copy);
    free(orig);
    unlink(path);
}

/* All metadata and a few tensors, in a new order: same values, same bytes. */
static void test_copy_smollm_partial(void **state) {
    (void)state;
    const char *model = sf_test_model_path(SF_TEST_SMOLLM);
    if (!model) skip();
    sf_gguf *src;
    assert_int_equal(sf_gguf_open(model, &src), SF_OK);
    sf_gguf_writer *w = sf_gguf_writer_new();
    for (int64_t i = sf_gguf_n_kv(src) - 1; i >= 0; i--) assert_int_equal(sf_gguf_writer_copy_kv(w, src, i), SF_OK);
    assert_int_equal(sf_gguf_writer_set_str(w, "general.name", "copy"), SF_OK);
    static const char *const names[] = {"output_norm.weight", "blk.0.attn_q.weight", "blk.7.ffn_down.weight",
                                        "token_embd.weight"};
    for (int i = 0; i < 4; i++) {
        const sf_gguf_tensor *t = sf_gguf_find_tensor(src, names[i]);
        assert_non_null(t);
        assert_int_equal(sf_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes), SF_OK);
    }
    const char *path = sf_test_scratch_path("smollm_part.gguf");
    assert_int_equal(sf_gguf_writer_finish(w, path), SF_OK);
    sf_gguf_writer_free(w);
    sf_gguf *g;
    assert_int_equal(sf_gguf_open(path, &g), SF_OK);
    assert_int_equal(sf_gguf_n_kv(g), sf_gguf_n_kv(src));
    assert_string_equal(sf_gguf_key_at(g, 0), sf_gguf_key_at(src, sf_gguf_n_kv(src) - 1));
    for (int64_t i = 0; i < sf_gguf_n_kv(src); i++)
        if (strcmp(sf_gguf_key_at(src, i), "general.name") != 0) assert_same_kv(src, i, g);
    sf_gguf_str s;
    assert_int_equal(sf_gguf_get_str(g, "general.name", &s), SF_OK);
    assert_int_equal(s.len, 4);
    assert_int_equal(sf_gguf_n_tensors(g), 4);
    for (int i = 0; i < 4; i++) {
        const sf_gguf_tensor *a = sf_gguf_find_tensor(src, names[i]), *b = sf_gguf_tensor_at(g, i);
        assert_string_equal(b->name, names[i]);
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->n_dims, b->n_dims);
        assert_memory_equal(a->ne, b->ne, sizeof a->ne);
        assert_int_equal(a->nbytes, b->nbytes);
        assert_memory_equal(a->data, b->data, a->nbytes);
    }
    sf_gguf_close(g);
    sf_gguf_close(src);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_types),
        cmocka_unit_test(test_alignment_and_replace),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_copy_smollm_exact),
        cmocka_unit_test(test_copy_smollm_partial),
    };
    return cmocka_run_group_tests(tests, sf_test_scratch_setup, sf_test_scratch_teardown);
}
