/* Building GGUF files byte by byte in tests (the reader's valid and
 * malformed inputs): an append-only buffer and its little-endian writers. */
#ifndef SF_TEST_GGUF_BYTES_H
#define SF_TEST_GGUF_BYTES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct { uint8_t *p; size_t n, cap; } bytes;

static inline void b_raw(bytes *b, const void *src, size_t n) {
    if (!n) return;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static inline void b_u8(bytes *b, uint8_t v) { b_raw(b, &v, 1); }
static inline void b_u16(bytes *b, uint16_t v) { b_raw(b, &v, 2); }
static inline void b_u32(bytes *b, uint32_t v) { b_raw(b, &v, 4); }
static inline void b_u64(bytes *b, uint64_t v) { b_raw(b, &v, 8); }
static inline void b_str(bytes *b, const char *s) { b_u64(b, strlen(s)); b_raw(b, s, strlen(s)); }
static inline void b_key(bytes *b, const char *k, uint32_t type) { b_str(b, k); b_u32(b, type); }
static inline void b_header(bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b_raw(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}
static inline void b_pad(bytes *b, size_t a) { while (b->n % a) b_u8(b, 0); }

#endif
