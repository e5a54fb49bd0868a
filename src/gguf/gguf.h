/* GGUF v2/v3 reader (mmap, validated before use) and writer (atomic).
 *
 * The reader maps the file read-only and validates everything before any
 * accessor can see it: magic, version, counts, string lengths, value types,
 * n_dims <= 4, element counts and byte sizes without overflow, known tensor
 * types, alignment, tensor data inside the file, unique keys and names.
 * Tensor data pointers point into the mapping (weights are never copied). */
#ifndef SF_GGUF_H
#define SF_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/types.h"

typedef enum {
    SF_GGUF_U8 = 0, SF_GGUF_I8 = 1, SF_GGUF_U16 = 2, SF_GGUF_I16 = 3,
    SF_GGUF_U32 = 4, SF_GGUF_I32 = 5, SF_GGUF_F32 = 6, SF_GGUF_BOOL = 7,
    SF_GGUF_STRING = 8, SF_GGUF_ARRAY = 9, SF_GGUF_U64 = 10, SF_GGUF_I64 = 11,
    SF_GGUF_F64 = 12, SF_GGUF_TYPE_COUNT = 13
} sf_gguf_vtype;

/* A string inside the mapping: not NUL-terminated. */
typedef struct { const char *ptr; uint64_t len; } sf_gguf_str;

typedef struct {
    const char *name;  /* NUL-terminated copy */
    sf_type type;
    int n_dims;        /* 1..4 */
    int64_t ne[4];     /* unused dims are 1 */
    uint64_t offset;   /* relative to the data section */
    size_t nbytes;
    const void *data;  /* inside the mapping */
} sf_gguf_tensor;

typedef struct sf_gguf sf_gguf;

/* Maps and validates the file. Returns SF_OK or an error naming the problem
 * (sf_last_error()); *out is NULL on error. */
int sf_gguf_open(const char *path, sf_gguf **out);
/* Same, over a caller-owned buffer that must outlive the handle (tests). */
int sf_gguf_open_memory(const void *buf, size_t size, sf_gguf **out);
void sf_gguf_close(sf_gguf *g);

uint32_t sf_gguf_version(const sf_gguf *g);
size_t sf_gguf_alignment(const sf_gguf *g);
size_t sf_gguf_file_size(const sf_gguf *g);
size_t sf_gguf_data_offset(const sf_gguf *g); /* start of the tensor data section */

/* ---- metadata ---- */
int64_t sf_gguf_n_kv(const sf_gguf *g);
int64_t sf_gguf_find_key(const sf_gguf *g, const char *key); /* index or -1 */
const char *sf_gguf_key_at(const sf_gguf *g, int64_t i);      /* NUL-terminated */
sf_gguf_vtype sf_gguf_kv_type(const sf_gguf *g, int64_t i);
/* For arrays: element type and count. */
sf_gguf_vtype sf_gguf_arr_type(const sf_gguf *g, int64_t i);
uint64_t sf_gguf_arr_len(const sf_gguf *g, int64_t i);
const char *sf_gguf_vtype_name(int t);

/* Typed getters by key. Each returns SF_OK, or SF_ERR_RANGE if the key is
 * missing (no message set, so callers can apply defaults), or SF_ERR_FORMAT
 * if present with an incompatible type or value (message names key and type).
 *  - integers accept any integer type, checked for range;
 *  - f32 accepts F32 and F64;
 *  - bool accepts BOOL. */
int sf_gguf_get_u32(const sf_gguf *g, const char *key, uint32_t *out);
int sf_gguf_get_u64(const sf_gguf *g, const char *key, uint64_t *out);
int sf_gguf_get_i64(const sf_gguf *g, const char *key, int64_t *out);
int sf_gguf_get_f32(const sf_gguf *g, const char *key, float *out);
int sf_gguf_get_bool(const sf_gguf *g, const char *key, bool *out);
int sf_gguf_get_str(const sf_gguf *g, const char *key, sf_gguf_str *out);

/* Per-layer hyper-parameter (deci style): a scalar integer broadcast to all
 * n_layer entries, or an integer array of exactly n_layer elements. */
int sf_gguf_get_u32_per_layer(const sf_gguf *g, const char *key, int n_layer, uint32_t *out);

/* Arrays of numbers: element type, count and a pointer to the packed (possibly
 * unaligned) little-endian elements inside the mapping. SF_ERR_FORMAT if the
 * key is not a numeric array. */
int sf_gguf_get_arr_data(const sf_gguf *g, const char *key, sf_gguf_vtype *elem_type,
                         uint64_t *n, const void **data);
/* Arrays of strings: count and an index (built at open) of every element. */
int sf_gguf_get_arr_str(const sf_gguf *g, const char *key, uint64_t *n, const sf_gguf_str **items);
/* Reads element i of a numeric array as double / int64 (any numeric type). */
double sf_gguf_arr_get_f64(sf_gguf_vtype elem_type, const void *data, uint64_t i);
int64_t sf_gguf_arr_get_i64(sf_gguf_vtype elem_type, const void *data, uint64_t i);

/* Formats a value for display (arrays abbreviated) into buf; returns buf. */
const char *sf_gguf_kv_format(const sf_gguf *g, int64_t i, char *buf, size_t len);

/* ---- tensors ---- */
int64_t sf_gguf_n_tensors(const sf_gguf *g);
const sf_gguf_tensor *sf_gguf_tensor_at(const sf_gguf *g, int64_t i);
const sf_gguf_tensor *sf_gguf_find_tensor(const sf_gguf *g, const char *name); /* NULL if absent */

/* ---- writer ----
 * Builds a GGUF v3 file in memory-order: metadata and tensor infos first, data
 * back to back, each tensor padded to the alignment (the layout llama.cpp
 * requires). The file goes to "<path>.tmp.<pid>", is fsync'ed and renamed
 * over path on sf_gguf_writer_finish; on any error or abort the temporary file
 * is removed and path is untouched. */
typedef struct sf_gguf_writer sf_gguf_writer;

sf_gguf_writer *sf_gguf_writer_new(void); /* NULL on out-of-memory */
void sf_gguf_writer_free(sf_gguf_writer *w); /* also discards an unfinished file */
int sf_gguf_writer_set_u32(sf_gguf_writer *w, const char *key, uint32_t v);
int sf_gguf_writer_set_i32(sf_gguf_writer *w, const char *key, int32_t v);
int sf_gguf_writer_set_u64(sf_gguf_writer *w, const char *key, uint64_t v);
int sf_gguf_writer_set_f32(sf_gguf_writer *w, const char *key, float v);
int sf_gguf_writer_set_bool(sf_gguf_writer *w, const char *key, bool v);
int sf_gguf_writer_set_str(sf_gguf_writer *w, const char *key, const char *v);
/* Any fixed-size scalar type (u8..i64, f32, f64, bool); v points to a value
 * of the matching C type (uint8_t, int16_t, double, bool...). Setting a key
 * that is already set replaces its value (its position stays). */
int sf_gguf_writer_set_scalar(sf_gguf_writer *w, const char *key, sf_gguf_vtype type, const void *v);
/* Numeric array (elements packed little-endian, elem_size from elem_type). */
int sf_gguf_writer_set_arr(sf_gguf_writer *w, const char *key, sf_gguf_vtype elem_type,
                           const void *data, uint64_t n);
int sf_gguf_writer_set_arr_str(sf_gguf_writer *w, const char *key, const sf_gguf_str *items, uint64_t n);
/* Copies key i of src (any type, arrays included) under the same key. */
int sf_gguf_writer_copy_kv(sf_gguf_writer *w, const sf_gguf *src, int64_t i);
/* Adds a tensor; data must stay valid until finish (it is not copied). */
int sf_gguf_writer_add_tensor(sf_gguf_writer *w, const char *name, sf_type type, int n_dims,
                              const int64_t *ne, const void *data, size_t nbytes);
/* Writes the file atomically. */
int sf_gguf_writer_finish(sf_gguf_writer *w, const char *path);

#endif
