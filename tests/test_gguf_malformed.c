/* Malformed GGUF files: every one must be rejected with an error that names
 * the problem, or (for random corruption that happens to stay valid) opened
 * with a consistent view; never a crash, an out-of-bounds read or UB (this
 * test runs under ASan+UBSan in CI). Every file is opened from a heap copy of
 * exactly its size, so any read past the end hits a redzone. */
#include "gguf_bytes.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "sparsefuse.h"

/* ------------------------------------------------------------ byte builder */

/* bytes, b_raw, b_u8 ... b_str, b_key, b_header, b_pad: gguf_bytes.h */

/* Offsets of the fields the tests patch. */
typedef struct {
    size_t version, n_tensors, n_kv;
    size_t key_aaa_len, key_bbb_chars;
    size_t align_type, align_val;
    size_t bool_val, str_len, f_type;
    size_t arr_type, arr_count, strs_count, strs_item1_len, nested_inner_count, nested_inner_type;
    size_t a_name_chars, a_ne1, b_ndims, b_ne0, b_type, b_offset, c_offset;
    size_t infos_end, data_start, size;
} layout;

/* A small valid v3 file: 10 keys of assorted types (nested and string
 * arrays included) and 3 tensors; the file ends with the last tensor. */
static bytes build_valid(layout *L) {
    bytes b = {0};
    b_raw(&b, "GGUF", 4);
    L->version = b.n; b_u32(&b, 3);
    L->n_tensors = b.n; b_u64(&b, 3);
    L->n_kv = b.n; b_u64(&b, 10);
    b_str(&b, "general.architecture"); b_u32(&b, SF_GGUF_STRING); b_str(&b, "llama");
    b_str(&b, "general.alignment");
    L->align_type = b.n; b_u32(&b, SF_GGUF_U32);
    L->align_val = b.n; b_u32(&b, 32);
    L->key_aaa_len = b.n; b_str(&b, "t.aaa"); b_u32(&b, SF_GGUF_U32); b_u32(&b, 1);
    L->key_bbb_chars = b.n + 8; b_str(&b, "t.bbb"); b_u32(&b, SF_GGUF_U32); b_u32(&b, 2);
    b_str(&b, "t.flag"); b_u32(&b, SF_GGUF_BOOL);
    L->bool_val = b.n; b_u8(&b, 1);
    b_str(&b, "t.str"); b_u32(&b, SF_GGUF_STRING);
    L->str_len = b.n; b_str(&b, "hello");
    b_str(&b, "t.arr"); b_u32(&b, SF_GGUF_ARRAY);
    L->arr_type = b.n; b_u32(&b, SF_GGUF_I32);
    L->arr_count = b.n; b_u64(&b, 4);
    for (uint32_t i = 1; i <= 4; i++) b_u32(&b, i);
    b_str(&b, "t.strs"); b_u32(&b, SF_GGUF_ARRAY); b_u32(&b, SF_GGUF_STRING);
    L->strs_count = b.n; b_u64(&b, 3);
    b_str(&b, "x");
    L->strs_item1_len = b.n; b_str(&b, "yy");
    b_str(&b, "zzz");
    b_str(&b, "t.nested"); b_u32(&b, SF_GGUF_ARRAY); b_u32(&b, SF_GGUF_ARRAY); b_u64(&b, 2);
    b_u32(&b, SF_GGUF_U8); b_u64(&b, 2); b_u8(&b, 1); b_u8(&b, 2);
    L->nested_inner_type = b.n; b_u32(&b, SF_GGUF_U8);
    L->nested_inner_count = b.n; b_u64(&b, 1); b_u8(&b, 3);
    b_str(&b, "t.f");
    L->f_type = b.n; b_u32(&b, SF_GGUF_F32);
    float f = 0.25f;
    b_raw(&b, &f, 4);
    /* tensor infos */
    L->a_name_chars = b.n + 8; b_str(&b, "w.a"); b_u32(&b, 2); b_u64(&b, 4);
    L->a_ne1 = b.n; b_u64(&b, 2);
    b_u32(&b, SF_TYPE_F32); b_u64(&b, 0);
    b_str(&b, "w.b");
    L->b_ndims = b.n; b_u32(&b, 1);
    L->b_ne0 = b.n; b_u64(&b, 64);
    L->b_type = b.n; b_u32(&b, SF_TYPE_Q8_0);
    L->b_offset = b.n; b_u64(&b, 32);
    b_str(&b, "w.c"); b_u32(&b, 1); b_u64(&b, 16); b_u32(&b, SF_TYPE_F16);
    L->c_offset = b.n; b_u64(&b, 128);
    L->infos_end = b.n;
    while (b.n % 32) b_u8(&b, 0);
    L->data_start = b.n;
    for (int i = 0; i < 160; i++) b_u8(&b, (uint8_t)(i * 3)); /* a: 32, b: 68 + 28 pad, c: 32 */
    L->size = b.n;
    return b;
}

static void patch32(bytes *b, size_t at, uint32_t v) { memcpy(b->p + at, &v, 4); }
static void patch64(bytes *b, size_t at, uint64_t v) { memcpy(b->p + at, &v, 8); }

/* ------------------------------------------------------------ checks */

/* Touches everything a caller can reach through the API. */
static void check_consistent(const sf_gguf *g, const uint8_t *buf, size_t len) {
    char text[512];
    assert_true(sf_gguf_data_offset(g) <= len || sf_gguf_n_tensors(g) == 0);
    size_t a = sf_gguf_alignment(g);
    assert_true(a && (a & (a - 1)) == 0);
    for (int64_t i = 0; i < sf_gguf_n_kv(g); i++) {
        const char *key = sf_gguf_key_at(g, i);
        assert_non_null(key);
        assert_int_equal(sf_gguf_find_key(g, key), i);
        sf_gguf_kv_format(g, i, text, sizeof text);
        assert_true(strlen(text) < sizeof text);
        uint64_t u; int64_t s; float f; bool bo; sf_gguf_str str; uint32_t pl[4];
        (void)sf_gguf_get_u64(g, key, &u);
        (void)sf_gguf_get_i64(g, key, &s);
        (void)sf_gguf_get_f32(g, key, &f);
        (void)sf_gguf_get_bool(g, key, &bo);
        (void)sf_gguf_get_u32_per_layer(g, key, 4, pl);
        volatile uint8_t sink = 0;
        if (sf_gguf_get_str(g, key, &str) == SF_OK && str.len) sink ^= (uint8_t)str.ptr[str.len - 1];
        sf_gguf_vtype et; uint64_t n; const void *data; const sf_gguf_str *items;
        if (sf_gguf_get_arr_data(g, key, &et, &n, &data) == SF_OK && n) {
            (void)sf_gguf_arr_get_f64(et, data, n - 1);
            (void)sf_gguf_arr_get_i64(et, data, n - 1);
        }
        if (sf_gguf_get_arr_str(g, key, &n, &items) == SF_OK)
            for (uint64_t k = 0; k < n; k++)
                if (items[k].len) sink ^= (uint8_t)(items[k].ptr[0] ^ items[k].ptr[items[k].len - 1]);
        (void)sink;
    }
    for (int64_t i = 0; i < sf_gguf_n_tensors(g); i++) {
        const sf_gguf_tensor *t = sf_gguf_tensor_at(g, i);
        assert_ptr_equal(sf_gguf_find_tensor(g, t->name), t);
        assert_true(t->n_dims >= 1 && t->n_dims <= 4);
        for (int d = 0; d < 4; d++) assert_true(t->ne[d] >= 0);
        assert_int_equal(t->offset % a, 0);
        const uint8_t *p = t->data;
        assert_true(p >= buf + sf_gguf_data_offset(g));
        assert_true((size_t)(p - buf) + t->nbytes <= len);
        if (t->nbytes) {
            volatile uint8_t x = p[0] ^ p[t->nbytes - 1];
            (void)x;
        }
    }
}

/* Opens a heap copy of buf[len]. Returns the status; *ok_view checked. */
static int try_open(const uint8_t *buf, size_t len) {
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, buf, len);
    sf_gguf *g = (sf_gguf *)copy; /* must be reset to NULL on failure */
    int rc = sf_gguf_open_memory(copy, len, &g);
    if (rc == SF_OK) {
        assert_non_null(g);
        check_consistent(g, copy, len);
        sf_gguf_close(g);
    } else {
        assert_null(g);
        assert_true(strlen(sf_last_error()) > 10);
    }
    free(copy);
    return rc;
}

static void expect_error(const bytes *b, const char *substr) {
    int rc = try_open(b->p, b->n);
    if (rc == SF_OK) fail_msg("file opened, expected an error mentioning '%s'", substr);
    assert_int_equal(rc, SF_ERR_FORMAT);
    if (!strstr(sf_last_error(), substr)) fail_msg("error '%s' does not mention '%s'", sf_last_error(), substr);
}

/* A fresh copy of the valid file to patch. */
static bytes fresh(layout *L) { return build_valid(L); }

/* ------------------------------------------------------------ tests */

static void test_valid_baseline(void **state) {
    (void)state;
    layout L;
    bytes b = build_valid(&L);
    assert_int_equal(try_open(b.p, b.n), SF_OK);
    sf_gguf *g;
    assert_int_equal(sf_gguf_open_memory(b.p, b.n, &g), SF_OK);
    assert_int_equal(sf_gguf_n_kv(g), 10);
    assert_int_equal(sf_gguf_n_tensors(g), 3);
    assert_int_equal(sf_gguf_data_offset(g), L.data_start);
    assert_int_equal(sf_gguf_find_tensor(g, "w.c")->nbytes, 32);
    sf_gguf_close(g);
    free(b.p);
}

static void test_truncation(void **state) {
    (void)state;
    layout L;
    bytes b = build_valid(&L);
    /* every offset of the header, metadata, tensor infos and padding... */
    for (size_t n = 0; n <= L.data_start; n++) {
        int rc = try_open(b.p, n);
        if (rc == SF_OK) fail_msg("file truncated to %zu bytes opened", n);
    }
    /* ...and every offset inside the data (the last tensor ends the file) */
    for (size_t n = L.data_start; n < L.size; n++) {
        int rc = try_open(b.p, n);
        if (rc == SF_OK) fail_msg("file truncated to %zu bytes opened", n);
        if (!strstr(sf_last_error(), "past the end of the file"))
            fail_msg("truncated to %zu: '%s'", n, sf_last_error());
    }
    free(b.p);
}

static void test_bit_flips(void **state) {
    (void)state;
    layout L;
    bytes b = build_valid(&L);
    /* each bit of the first 64 bytes */
    for (size_t bit = 0; bit < 64 * 8; bit++) {
        b.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        (void)try_open(b.p, b.n);
        b.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* each bit of the whole metadata + tensor-info region */
    for (size_t bit = 64 * 8; bit < L.data_start * 8; bit++) {
        b.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        (void)try_open(b.p, b.n);
        b.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* many random multi-byte corruptions of the metadata region */
    uint64_t seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        bytes c = {0};
        b_raw(&c, b.p, b.n);
        int k = 1 + (int)(sf_test_rand_u64(&seed) % 4);
        for (int j = 0; j < k; j++) {
            size_t at = (size_t)(sf_test_rand_u64(&seed) % L.data_start);
            uint64_t r = sf_test_rand_u64(&seed);
            if (r & 1) c.p[at] ^= (uint8_t)(1u << ((r >> 1) % 8));
            else c.p[at] = (uint8_t)(r >> 8); /* random byte: 0xff lengths, type ids... */
        }
        size_t len = c.n;
        if (iter % 7 == 0) len = (size_t)(sf_test_rand_u64(&seed) % (c.n + 1));
        (void)try_open(c.p, len);
        free(c.p);
    }
    free(b.p);
}

static void test_header_errors(void **state) {
    (void)state;
    layout L;
    bytes b;
    b = fresh(&L); memcpy(b.p, "GGUG", 4); expect_error(&b, "bad magic"); free(b.p);
    b = fresh(&L); memcpy(b.p, "FUGG", 4); expect_error(&b, "byte-swapped"); free(b.p);
    b = fresh(&L); patch32(&b, L.version, 0x03000000u); expect_error(&b, "byte-swapped"); free(b.p);
    b = fresh(&L); patch32(&b, L.version, 1); expect_error(&b, "version 1"); free(b.p);
    b = fresh(&L); patch32(&b, L.version, 0); expect_error(&b, "version 0"); free(b.p);
    b = fresh(&L); patch32(&b, L.version, 4); expect_error(&b, "version 4"); free(b.p);
    b = fresh(&L); patch64(&b, L.n_kv, 1ull << 63); expect_error(&b, "metadata_kv_count 9223372036854775808"); free(b.p);
    b = fresh(&L); patch64(&b, L.n_kv, UINT64_MAX); expect_error(&b, "metadata_kv_count"); free(b.p);
    b = fresh(&L); patch64(&b, L.n_tensors, 1ull << 63); expect_error(&b, "tensor_count 9223372036854775808"); free(b.p);
    b = fresh(&L); patch64(&b, L.n_tensors, 1000); expect_error(&b, "tensor_count 1000"); free(b.p);
    /* one entry more than present: parsing runs into the next section */
    b = fresh(&L); patch64(&b, L.n_tensors, 4); expect_error(&b, "tensor #3"); free(b.p);
    /* the empty file and a bare header */
    b = (bytes){0}; b_raw(&b, "", 0); expect_error(&b, "too small"); free(b.p);
    b = fresh(&L); b.n = 20; expect_error(&b, "too small"); free(b.p);
}

static void test_metadata_errors(void **state) {
    (void)state;
    layout L;
    bytes b;
    b = fresh(&L); patch64(&b, L.key_aaa_len, 1ull << 62); expect_error(&b, "string length 4611686018427387904"); free(b.p);
    b = fresh(&L); patch64(&b, L.key_aaa_len, UINT64_MAX); expect_error(&b, "string length"); free(b.p);
    b = fresh(&L); patch64(&b, L.str_len, 1ull << 40); expect_error(&b, "string length"); free(b.p);
    b = fresh(&L); patch64(&b, L.str_len, 1ull << 40); expect_error(&b, "'t.str'"); free(b.p);
    b = fresh(&L); patch64(&b, L.strs_item1_len, UINT64_MAX); expect_error(&b, "string length"); free(b.p);
    b = fresh(&L); patch64(&b, L.arr_count, 1ull << 62); expect_error(&b, "array of 4611686018427387904"); free(b.p);
    b = fresh(&L); patch64(&b, L.arr_count, 1ull << 62); expect_error(&b, "cannot fit"); free(b.p);
    b = fresh(&L); patch64(&b, L.strs_count, UINT64_MAX); expect_error(&b, "cannot fit"); free(b.p);
    b = fresh(&L); patch64(&b, L.nested_inner_count, 1ull << 60); expect_error(&b, "cannot fit"); free(b.p);
    b = fresh(&L); patch32(&b, L.nested_inner_type, 77); expect_error(&b, "unknown value type 77"); free(b.p);
    b = fresh(&L); patch32(&b, L.arr_type, 13); expect_error(&b, "unknown value type 13"); free(b.p);
    b = fresh(&L); patch32(&b, L.f_type, 13); expect_error(&b, "unknown value type 13"); free(b.p);
    b = fresh(&L); patch32(&b, L.f_type, 0xffffffffu); expect_error(&b, "unknown value type"); free(b.p);
    b = fresh(&L); b.p[L.bool_val] = 2; expect_error(&b, "bool value 2"); free(b.p);
    b = fresh(&L); memcpy(b.p + L.key_bbb_chars, "t.aaa", 5); expect_error(&b, "duplicate key 't.aaa'"); free(b.p);
    b = fresh(&L); b.p[L.key_bbb_chars + 1] = 0; expect_error(&b, "NUL"); free(b.p);
    /* general.alignment: 0, 3, not u32 */
    b = fresh(&L); patch32(&b, L.align_val, 0); expect_error(&b, "general.alignment = 0"); free(b.p);
    b = fresh(&L); patch32(&b, L.align_val, 3); expect_error(&b, "power of two"); free(b.p);
    b = fresh(&L); patch32(&b, L.align_type, SF_GGUF_I32); expect_error(&b, "general.alignment has type i32"); free(b.p);
    b = fresh(&L); patch32(&b, L.align_type, SF_GGUF_F32); expect_error(&b, "must be u32"); free(b.p);
    /* a larger valid alignment moves the data section: now misplaced */
    b = fresh(&L); patch32(&b, L.align_val, 1u << 20); expect_error(&b, "past the end of the file"); free(b.p);
}

static void test_nesting_limit(void **state) {
    (void)state;
    for (int depth = 1; depth <= 40; depth++) {
        bytes b = {0};
        b_raw(&b, "GGUF", 4); b_u32(&b, 3); b_u64(&b, 0); b_u64(&b, 1);
        b_str(&b, "deep"); b_u32(&b, SF_GGUF_ARRAY);
        for (int d = 0; d < depth - 1; d++) { b_u32(&b, SF_GGUF_ARRAY); b_u64(&b, 1); }
        b_u32(&b, SF_GGUF_U8); b_u64(&b, 1); b_u8(&b, 9);
        int rc = try_open(b.p, b.n);
        if (depth <= 16) assert_int_equal(rc, SF_OK);
        else {
            assert_int_equal(rc, SF_ERR_FORMAT);
            assert_non_null(strstr(sf_last_error(), "nested deeper"));
        }
        free(b.p);
    }
    /* a long array of empty arrays is fine */
    bytes b = {0};
    b_raw(&b, "GGUF", 4); b_u32(&b, 3); b_u64(&b, 0); b_u64(&b, 1);
    b_str(&b, "wide"); b_u32(&b, SF_GGUF_ARRAY); b_u32(&b, SF_GGUF_ARRAY); b_u64(&b, 10000);
    for (int i = 0; i < 10000; i++) { b_u32(&b, SF_GGUF_STRING); b_u64(&b, 0); }
    assert_int_equal(try_open(b.p, b.n), SF_OK);
    free(b.p);
}

static void test_tensor_errors(void **state) {
    (void)state;
    layout L;
    bytes b;
    b = fresh(&L); patch32(&b, L.b_ndims, 5); expect_error(&b, "n_dims 5"); free(b.p);
    b = fresh(&L); patch32(&b, L.b_ndims, 0); expect_error(&b, "n_dims 0"); free(b.p);
    b = fresh(&L); patch32(&b, L.b_ndims, 0xffffffffu); expect_error(&b, "'w.b': n_dims"); free(b.p);
    b = fresh(&L); patch64(&b, L.a_ne1, UINT64_MAX); expect_error(&b, "ne[1] = -1 is negative"); free(b.p);
    b = fresh(&L); patch64(&b, L.a_ne1, 1ull << 62); expect_error(&b, "overflows"); free(b.p);
    b = fresh(&L); patch64(&b, L.a_ne1, (1ull << 62) - 1); expect_error(&b, "overflows"); free(b.p);
    b = fresh(&L); patch64(&b, L.a_ne1, 1ull << 40); expect_error(&b, "past the end of the file"); free(b.p);
    b = fresh(&L); patch64(&b, L.b_ne0, 48); expect_error(&b, "ne[0] = 48 is not a multiple of the block size 32"); free(b.p);
    b = fresh(&L); patch64(&b, L.b_ne0, 1ull << 62); expect_error(&b, "'w.b'"); free(b.p);
    b = fresh(&L); patch32(&b, L.b_type, 4); expect_error(&b, "unknown tensor type id 4"); free(b.p);
    b = fresh(&L); patch32(&b, L.b_type, 99); expect_error(&b, "unknown tensor type id 99"); free(b.p);
    b = fresh(&L); patch32(&b, L.b_type, 43); expect_error(&b, "unknown tensor type"); free(b.p);
    b = fresh(&L); patch64(&b, L.b_offset, 33); expect_error(&b, "offset 33 is not a multiple of the alignment 32"); free(b.p);
    b = fresh(&L); patch64(&b, L.c_offset, 1024); expect_error(&b, "tensor 'w.c': data ["); free(b.p);
    b = fresh(&L); patch64(&b, L.c_offset, 1024); expect_error(&b, "past the end of the file (size"); free(b.p);
    b = fresh(&L); patch64(&b, L.c_offset, UINT64_MAX - 31); expect_error(&b, "past the end of the file"); free(b.p);
    b = fresh(&L); memcpy(b.p + L.a_name_chars, "w.b", 3); expect_error(&b, "duplicate tensor name 'w.b'"); free(b.p);
    b = fresh(&L); b.p[L.a_name_chars + 2] = 0; expect_error(&b, "NUL"); free(b.p);
    /* every ggml type with a valid shape is accepted (inspect must work on
     * any file); sizes follow ggml */
    static const struct { int type; int blck; int bytes; } types[] = {
        {0, 1, 4}, {1, 1, 2}, {2, 32, 18}, {3, 32, 20}, {6, 32, 22}, {7, 32, 24}, {8, 32, 34}, {9, 32, 36},
        {10, 256, 84}, {11, 256, 110}, {12, 256, 144}, {13, 256, 176}, {14, 256, 210}, {15, 256, 292},
        {16, 256, 66}, {17, 256, 74}, {18, 256, 98}, {19, 256, 50}, {20, 32, 18}, {21, 256, 110},
        {22, 256, 82}, {23, 256, 136}, {24, 1, 1}, {25, 1, 2}, {26, 1, 4}, {27, 1, 8}, {28, 1, 8},
        {29, 256, 56}, {30, 1, 2}, {34, 256, 54}, {35, 256, 66}, {39, 32, 17},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        bytes t = {0};
        b_raw(&t, "GGUF", 4); b_u32(&t, 3); b_u64(&t, 1); b_u64(&t, 0);
        b_str(&t, "t"); b_u32(&t, 2); b_u64(&t, (uint64_t)types[i].blck * 2); b_u64(&t, 3);
        b_u32(&t, (uint32_t)types[i].type); b_u64(&t, 0);
        while (t.n % 32) b_u8(&t, 0);
        size_t ds = t.n;
        for (int k = 0; k < types[i].bytes * 6; k++) b_u8(&t, 0);
        sf_gguf *g;
        if (sf_gguf_open_memory(t.p, t.n, &g) != SF_OK) fail_msg("type %d: %s", types[i].type, sf_last_error());
        assert_int_equal(sf_gguf_tensor_at(g, 0)->nbytes, types[i].bytes * 6);
        assert_int_equal(sf_gguf_data_offset(g), ds);
        sf_gguf_close(g);
        t.n--; /* one byte short */
        assert_int_equal(try_open(t.p, t.n), SF_ERR_FORMAT);
        free(t.p);
    }
}

/* The real model's header region truncated at a spread of offsets. */
static void test_truncated_model(void **state) {
    (void)state;
    const char *path = sf_test_model_path(SF_TEST_SMOLLM);
    if (!path) skip();
    sf_gguf *g;
    assert_int_equal(sf_gguf_open(path, &g), SF_OK);
    size_t header = sf_gguf_data_offset(g);
    sf_gguf_close(g);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(header);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, header, f), header);
    fclose(f);
    uint64_t seed = 7;
    for (int i = 0; i < 150; i++) {
        size_t n = i < 50 ? (size_t)i * 7 : (size_t)(sf_test_rand_u64(&seed) % (header + 1));
        assert_int_equal(try_open(buf, n), SF_ERR_FORMAT);
    }
    assert_int_equal(try_open(buf, header), SF_ERR_FORMAT); /* all of the header but no data */
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_baseline),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_metadata_errors),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_tensor_errors),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_truncated_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
