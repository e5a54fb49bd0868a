/* Private to src/gguf: the parsed-file struct shared by the reader, the
 * metadata getters, the writer (copy_kv) and inspect. Tensor types are
 * validated against the geometry table of tensor/types.h, which covers every
 * ggml id, whether or not kernels exist for it. */
#ifndef SF_GGUF_IMPL_H
#define SF_GGUF_IMPL_H

#include "tensor/types.h"
#include "gguf/gguf.h"

/* Nesting limit for arrays of arrays: each level costs only 12 bytes, so
 * without a limit a small file could exhaust the stack of a recursive walk. */
#define SF_GGUF_MAX_NEST 16

/* Block geometry of a ggml type id: tensor/types.h's table. */
typedef sf_type_info sf_gguf_type_info;

/* NULL for ids ggml does not (or no longer) define. */
const sf_gguf_type_info *sf_gguf_type_lookup(int type);
/* Name of any id: "Q4_K"; "unknown" for ids ggml never defined. */
const char *sf_gguf_type_str(int type);
/* Bytes of a tensor of type with ne[4] (unused dims 1); false if ne[0] is not
 * a multiple of the block size, a dim is negative or the size overflows. */
bool sf_gguf_tensor_bytes(int type, const int64_t ne[4], uint64_t *nbytes);

/* Size in bytes of one element of a fixed-size value type; 0 for STRING,
 * ARRAY and unknown types. */
size_t sf_gguf_vtype_size(int t);

typedef struct {
    const char *key;        /* NUL-terminated copy */
    sf_gguf_vtype type;
    sf_gguf_vtype arr_type; /* arrays: element type */
    uint64_t arr_len;       /* arrays: element count */
    const uint8_t *raw;     /* serialized value, right after the u32 type (in the buffer) */
    size_t raw_size;        /* bytes of the serialized value */
    const uint8_t *data;    /* scalars: the value; strings: the bytes; arrays: first element */
    uint64_t str_len;       /* strings */
    sf_gguf_str *items;     /* string arrays: [arr_len] index into the buffer; else NULL */
} sf_gguf_kv;

/* Open-addressing hash of NUL-terminated names -> index. */
typedef struct {
    int64_t *slots; /* [cap], -1 = empty */
    size_t cap;     /* power of two */
} sf_gguf_index;

struct sf_gguf {
    const uint8_t *base; /* [size] the mapping or the caller's buffer */
    size_t size;
    bool mapped;
    uint32_t version;
    size_t alignment;
    size_t data_offset;
    int64_t n_kv;
    sf_gguf_kv *kv;           /* [n_kv] */
    int64_t n_tensors;
    sf_gguf_tensor *tensors;  /* [n_tensors] */
    sf_gguf_index key_index;
    sf_gguf_index tensor_index;
};

/* Little-endian loads from unaligned bytes. */
static inline uint16_t sf_gguf_rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t sf_gguf_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t sf_gguf_rd64(const uint8_t *p) {
    return (uint64_t)sf_gguf_rd32(p) | (uint64_t)sf_gguf_rd32(p + 4) << 32;
}

#endif
