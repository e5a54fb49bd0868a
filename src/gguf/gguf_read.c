/* GGUF reader: maps the file (or takes a buffer), parses and validates the
 * header, metadata and tensor infos before anything can be looked up.
 *
 * Every count read from the file is bounded by the bytes left in it before
 * anything is allocated from it, and every length is checked against the end
 * of the buffer before the bytes are touched. */
#include "gguf/gguf_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"

#define GGUF_HEADER_BYTES 24
#define GGUF_MIN_KV_BYTES 13     /* key length + type + 1-byte value */
#define GGUF_MIN_TINFO_BYTES 32  /* name length + n_dims + ne[0] + type + offset */

/* ------------------------------------------------------------ the cursor */

typedef struct {
    const uint8_t *p; /* [size] */
    size_t size;
    size_t pos;
} cursor;

static size_t left(const cursor *c) { return c->size - c->pos; }

static int need(const cursor *c, uint64_t n, const char *what) {
    if (n > left(c))
        return sf_fail(SF_ERR_FORMAT,
                       "truncated file: %s at offset %zu needs %" PRIu64 " bytes, only %zu left (file size %zu)",
                       what, c->pos, n, left(c), c->size);
    return SF_OK;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    int rc = need(c, 4, what);
    if (rc) return rc;
    *v = sf_gguf_rd32(c->p + c->pos);
    c->pos += 4;
    return SF_OK;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    int rc = need(c, 8, what);
    if (rc) return rc;
    *v = sf_gguf_rd64(c->p + c->pos);
    c->pos += 8;
    return SF_OK;
}

static int rd_str(cursor *c, sf_gguf_str *s, const char *what) {
    uint64_t len;
    size_t at = c->pos;
    int rc = rd_u64(c, &len, what);
    if (rc) return rc;
    if (len > left(c))
        return sf_fail(SF_ERR_FORMAT,
                       "%s: string length %" PRIu64 " at offset %zu runs past the end of the file (%zu bytes left, file size %zu)",
                       what, len, at, left(c), c->size);
    s->ptr = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return SF_OK;
}

/* A printable, shortened copy of a name from the file, for messages. */
static const char *printable(const char *s, uint64_t len, char *buf, size_t cap) {
    size_t n = 0;
    for (uint64_t i = 0; i < len && n + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (len > cap - 4 && n + 4 <= cap) { buf[n++] = '.'; buf[n++] = '.'; buf[n++] = '.'; }
    buf[n] = '\0';
    return buf;
}

static char *dup_name(sf_gguf_str s) {
    char *d = malloc((size_t)s.len + 1);
    if (!d) return NULL;
    memcpy(d, s.ptr, (size_t)s.len);
    d[s.len] = '\0';
    return d;
}

/* ------------------------------------------------------------ values */

/* Smallest serialized size of one element of type t (t known). */
static size_t min_elem_size(uint32_t t) {
    if (t == SF_GGUF_STRING) return 8;
    if (t == SF_GGUF_ARRAY) return 12;
    return sf_gguf_vtype_size((int)t);
}

static int check_bools(const cursor *c, const uint8_t *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1)
            return sf_fail(SF_ERR_FORMAT, "bool value %u at offset %zu (must be 0 or 1)", p[i],
                           (size_t)(p + i - c->p));
    return SF_OK;
}

/* Reads an array header (u32 element type, u64 count) and checks the count
 * against the bytes left, so nothing is ever sized from an absurd count. */
static int rd_array_header(cursor *c, uint32_t *et, uint64_t *n) {
    size_t at = c->pos;
    int rc = rd_u32(c, et, "array element type");
    if (!rc) rc = rd_u64(c, n, "array element count");
    if (rc) return rc;
    if (*et >= SF_GGUF_TYPE_COUNT)
        return sf_fail(SF_ERR_FORMAT, "unknown value type %u for array elements at offset %zu", *et, at);
    if (*n > left(c) / min_elem_size(*et))
        return sf_fail(SF_ERR_FORMAT,
                       "array of %" PRIu64 " %s elements at offset %zu cannot fit in the %zu bytes left in the file",
                       *n, sf_gguf_vtype_name((int)*et), at, left(c));
    return SF_OK;
}

/* Validates the elements of an array whose header was just read and moves
 * past them; string elements go to items[n] when items is not NULL. */
static int walk_elements(cursor *c, uint32_t et, uint64_t n, int depth, sf_gguf_str *items) {
    size_t es = sf_gguf_vtype_size((int)et);
    if (es) { /* n * es cannot overflow: n <= left / es */
        int rc = need(c, n * es, "array elements");
        if (!rc && et == SF_GGUF_BOOL) rc = check_bools(c, c->p + c->pos, n);
        if (rc) return rc;
        c->pos += (size_t)(n * es);
        return SF_OK;
    }
    if (et == SF_GGUF_STRING) {
        for (uint64_t i = 0; i < n; i++) {
            sf_gguf_str s;
            int rc = rd_str(c, &s, "array string element");
            if (rc) return sf_fail_context(rc, "element %" PRIu64, i);
            if (items) items[i] = s;
        }
        return SF_OK;
    }
    /* arrays of arrays */
    if (depth >= SF_GGUF_MAX_NEST)
        return sf_fail(SF_ERR_FORMAT, "arrays nested deeper than %d levels at offset %zu", SF_GGUF_MAX_NEST, c->pos);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t inner_t;
        uint64_t inner_n;
        int rc = rd_array_header(c, &inner_t, &inner_n);
        if (!rc) rc = walk_elements(c, inner_t, inner_n, depth + 1, NULL);
        if (rc) return sf_fail_context(rc, "element %" PRIu64, i);
    }
    return SF_OK;
}

/* Parses the value of kv (type already read) at the cursor. */
static int parse_value(cursor *c, sf_gguf_kv *kv, uint32_t type) {
    size_t at = c->pos - 4;
    if (type >= SF_GGUF_TYPE_COUNT)
        return sf_fail(SF_ERR_FORMAT, "unknown value type %u at offset %zu", type, at);
    kv->type = (sf_gguf_vtype)type;
    kv->raw = c->p + c->pos;
    size_t es = sf_gguf_vtype_size((int)type);
    int rc;
    if (es) {
        rc = need(c, es, "value");
        if (!rc && type == SF_GGUF_BOOL) rc = check_bools(c, c->p + c->pos, 1);
        if (rc) return rc;
        kv->data = c->p + c->pos;
        c->pos += es;
    } else if (type == SF_GGUF_STRING) {
        sf_gguf_str s;
        rc = rd_str(c, &s, "string value");
        if (rc) return rc;
        kv->data = (const uint8_t *)s.ptr;
        kv->str_len = s.len;
    } else {
        uint32_t et;
        rc = rd_array_header(c, &et, &kv->arr_len);
        if (rc) return rc;
        kv->arr_type = (sf_gguf_vtype)et;
        kv->data = c->p + c->pos;
        if (et == SF_GGUF_STRING) {
            /* bounded: arr_len <= bytes left / 8, so the index is at most
             * twice the size of what it indexes */
            kv->items = malloc(kv->arr_len ? (size_t)kv->arr_len * sizeof *kv->items : 1);
            if (!kv->items) return sf_fail(SF_ERR_NOMEM, "out of memory for a %" PRIu64 "-string array", kv->arr_len);
        }
        rc = walk_elements(c, et, kv->arr_len, 1, kv->items);
        if (rc) return rc;
    }
    kv->raw_size = (size_t)(c->p + c->pos - kv->raw);
    return SF_OK;
}

/* ------------------------------------------------------------ name index */

static uint64_t hash_name(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

typedef const char *(*name_at_fn)(const sf_gguf *g, int64_t i);
static const char *kv_name(const sf_gguf *g, int64_t i) { return g->kv[i].key; }
static const char *tensor_name(const sf_gguf *g, int64_t i) { return g->tensors[i].name; }

static int64_t index_find(const sf_gguf_index *ix, const sf_gguf *g, name_at_fn name_at, const char *name) {
    if (!ix->cap || !name) return -1;
    for (size_t s = (size_t)hash_name(name) & (ix->cap - 1);; s = (s + 1) & (ix->cap - 1)) {
        int64_t i = ix->slots[s];
        if (i < 0) return -1;
        if (strcmp(name_at(g, i), name) == 0) return i;
    }
}

/* Builds the index of n names; *dup gets the index of a repeated name (the
 * second occurrence) or -1. */
static int index_build(sf_gguf_index *ix, const sf_gguf *g, name_at_fn name_at, int64_t n, int64_t *dup) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    ix->slots = malloc(cap * sizeof *ix->slots);
    if (!ix->slots) return sf_fail(SF_ERR_NOMEM, "out of memory for a name index of %" PRId64 " entries", n);
    for (size_t s = 0; s < cap; s++) ix->slots[s] = -1;
    ix->cap = cap;
    *dup = -1;
    for (int64_t i = 0; i < n; i++) {
        const char *name = name_at(g, i);
        size_t s = (size_t)hash_name(name) & (cap - 1);
        for (; ix->slots[s] >= 0; s = (s + 1) & (cap - 1))
            if (strcmp(name_at(g, ix->slots[s]), name) == 0) { *dup = i; return SF_OK; }
        ix->slots[s] = i;
    }
    return SF_OK;
}

int64_t sf_gguf_find_key(const sf_gguf *g, const char *key) {
    return g ? index_find(&g->key_index, g, kv_name, key) : -1;
}

const sf_gguf_tensor *sf_gguf_find_tensor(const sf_gguf *g, const char *name) {
    int64_t i = g ? index_find(&g->tensor_index, g, tensor_name, name) : -1;
    return i < 0 ? NULL : &g->tensors[i];
}

/* ------------------------------------------------------------ parsing */

static int parse_header(sf_gguf *g, cursor *c, uint64_t *n_tensors, uint64_t *n_kv) {
    if (c->size < 4 || memcmp(c->p, "GGUF", 4) != 0) {
        if (c->size >= 4 && memcmp(c->p, "FUGG", 4) == 0)
            return sf_fail(SF_ERR_FORMAT, "bad magic: byte-swapped (big-endian) GGUF files are not supported");
        return sf_fail(SF_ERR_FORMAT, "bad magic: not a GGUF file (%zu bytes)", c->size);
    }
    c->pos = 4;
    int rc = rd_u32(c, &g->version, "version");
    if (rc) return rc;
    if ((g->version & 0xffffu) == 0 && g->version != 0)
        return sf_fail(SF_ERR_FORMAT, "GGUF version 0x%08x looks byte-swapped (big-endian file); not supported", g->version);
    if (g->version == 1)
        return sf_fail(SF_ERR_FORMAT, "GGUF version 1 is not supported (it used 32-bit counts); convert the file to v3");
    if (g->version < 2 || g->version > 3)
        return sf_fail(SF_ERR_FORMAT, "unsupported GGUF version %u (supported: 2 and 3)", g->version);
    rc = rd_u64(c, n_tensors, "tensor_count");
    if (!rc) rc = rd_u64(c, n_kv, "metadata_kv_count");
    if (rc) return rc;
    if (*n_kv > left(c) / GGUF_MIN_KV_BYTES)
        return sf_fail(SF_ERR_FORMAT, "metadata_kv_count %" PRIu64 " cannot fit in the file (size %zu)", *n_kv, c->size);
    if (*n_tensors > (left(c) - *n_kv * GGUF_MIN_KV_BYTES) / GGUF_MIN_TINFO_BYTES)
        return sf_fail(SF_ERR_FORMAT, "tensor_count %" PRIu64 " cannot fit in the file (size %zu)", *n_tensors, c->size);
    return SF_OK;
}

/* Makes room for entry i of *arr (elements of size es, capacity *cap, grown
 * by doubling): memory follows what was actually parsed, not the count the
 * file claims, even though that count is already bounded by the file size. */
static int grow(void **arr, size_t *cap, uint64_t i, size_t es) {
    if (i < *cap) return SF_OK;
    size_t nc = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, nc * es);
    if (!p) return sf_fail(SF_ERR_NOMEM, "out of memory for %zu entries", nc);
    memset((char *)p + *cap * es, 0, (nc - *cap) * es);
    *arr = p;
    *cap = nc;
    return SF_OK;
}

static int parse_kvs(sf_gguf *g, cursor *c, uint64_t n_kv) {
    size_t cap = 0;
    char pk[96];
    for (uint64_t i = 0; i < n_kv; i++) {
        int rc = grow((void **)&g->kv, &cap, i, sizeof *g->kv);
        if (rc) return rc;
        sf_gguf_kv *kv = &g->kv[i];
        sf_gguf_str key;
        uint32_t type;
        rc = rd_str(c, &key, "metadata key");
        if (rc) return sf_fail_context(rc, "metadata entry #%" PRIu64, i);
        printable(key.ptr, key.len, pk, sizeof pk);
        if (memchr(key.ptr, '\0', (size_t)key.len))
            return sf_fail(SF_ERR_FORMAT, "metadata entry #%" PRIu64 ": key '%s' contains a NUL byte", i, pk);
        kv->key = dup_name(key);
        if (!kv->key) return sf_fail(SF_ERR_NOMEM, "out of memory");
        g->n_kv = (int64_t)i + 1; /* from here on close() frees this entry */
        rc = rd_u32(c, &type, "value type");
        if (!rc) rc = parse_value(c, kv, type);
        if (rc) return sf_fail_context(rc, "metadata key '%s'", pk);
    }
    int64_t dup;
    int rc = index_build(&g->key_index, g, kv_name, g->n_kv, &dup);
    if (rc) return rc;
    if (dup >= 0)
        return sf_fail(SF_ERR_FORMAT, "duplicate key '%s' (metadata entry #%" PRId64 ")",
                       printable(g->kv[dup].key, strlen(g->kv[dup].key), pk, sizeof pk), dup);
    return SF_OK;
}

static int parse_alignment(sf_gguf *g) {
    g->alignment = 32;
    int64_t i = sf_gguf_find_key(g, "general.alignment");
    if (i < 0) return SF_OK;
    if (g->kv[i].type != SF_GGUF_U32)
        return sf_fail(SF_ERR_FORMAT, "general.alignment has type %s; it must be u32",
                       sf_gguf_vtype_name(g->kv[i].type));
    uint32_t a = sf_gguf_rd32(g->kv[i].data);
    if (a == 0 || (a & (a - 1)) != 0)
        return sf_fail(SF_ERR_FORMAT, "general.alignment = %u is not a non-zero power of two", a);
    g->alignment = a;
    return SF_OK;
}

static int parse_tensor_info(cursor *c, sf_gguf_tensor *t, uint64_t *nbytes) {
    uint32_t n_dims, type;
    int rc = rd_u32(c, &n_dims, "n_dims");
    if (rc) return rc;
    if (n_dims < 1 || n_dims > 4) return sf_fail(SF_ERR_FORMAT, "n_dims %u (must be 1..4)", n_dims);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t v;
        rc = rd_u64(c, &v, "ne");
        if (rc) return rc;
        memcpy(&t->ne[d], &v, sizeof v); /* ne is read as int64 */
        if (t->ne[d] < 0) return sf_fail(SF_ERR_FORMAT, "ne[%u] = %" PRId64 " is negative", d, t->ne[d]);
    }
    rc = rd_u32(c, &type, "tensor type");
    if (!rc) rc = rd_u64(c, &t->offset, "tensor offset");
    if (rc) return rc;
    const sf_gguf_type_info *ti = sf_gguf_type_lookup((int)type);
    if (!ti) return sf_fail(SF_ERR_FORMAT, "unknown tensor type id %u", type);
    t->type = (sf_type)type;
    if (t->ne[0] % ti->block_size != 0)
        return sf_fail(SF_ERR_FORMAT, "ne[0] = %" PRId64 " is not a multiple of the block size %d of type %s",
                       t->ne[0], ti->block_size, ti->name);
    if (!sf_gguf_tensor_bytes((int)type, t->ne, nbytes))
        return sf_fail(SF_ERR_FORMAT,
                       "shape {%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "} of type %s: element count or byte size overflows",
                       t->ne[0], t->ne[1], t->ne[2], t->ne[3], ti->name);
    return SF_OK;
}

static int parse_tensors(sf_gguf *g, cursor *c, uint64_t n_t) {
    if (n_t > left(c) / GGUF_MIN_TINFO_BYTES)
        return sf_fail(SF_ERR_FORMAT, "tensor_count %" PRIu64 " cannot fit in the %zu bytes left after the metadata",
                       n_t, left(c));
    size_t cap = 0;
    char pn[96];
    for (uint64_t i = 0; i < n_t; i++) {
        int rc = grow((void **)&g->tensors, &cap, i, sizeof *g->tensors);
        if (rc) return rc;
        sf_gguf_tensor *t = &g->tensors[i];
        sf_gguf_str name;
        rc = rd_str(c, &name, "tensor name");
        if (rc) return sf_fail_context(rc, "tensor #%" PRIu64, i);
        printable(name.ptr, name.len, pn, sizeof pn);
        if (memchr(name.ptr, '\0', (size_t)name.len))
            return sf_fail(SF_ERR_FORMAT, "tensor #%" PRIu64 ": name '%s' contains a NUL byte", i, pn);
        if (name.len >= 64)
            sf_log_warn("tensor '%s': name is %" PRIu64 " bytes; ggml allows at most 63", pn, name.len);
        t->name = dup_name(name);
        if (!t->name) return sf_fail(SF_ERR_NOMEM, "out of memory");
        g->n_tensors = (int64_t)i + 1;
        uint64_t nbytes;
        rc = parse_tensor_info(c, t, &nbytes);
        if (rc) return sf_fail_context(rc, "tensor #%" PRIu64 " '%s'", i, pn);
        t->nbytes = (size_t)nbytes;
    }
    int64_t dup;
    int rc = index_build(&g->tensor_index, g, tensor_name, g->n_tensors, &dup);
    if (rc) return rc;
    if (dup >= 0)
        return sf_fail(SF_ERR_FORMAT, "duplicate tensor name '%s' (tensor #%" PRId64 ")",
                       printable(g->tensors[dup].name, strlen(g->tensors[dup].name), pn, sizeof pn), dup);
    return SF_OK;
}

static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

/* Places the data section and checks every tensor's offset and extent. */
static int place_data(sf_gguf *g, size_t infos_end) {
    size_t a = g->alignment;
    size_t pad = (a - infos_end % a) % a;
    if (infos_end > SIZE_MAX - pad) return sf_fail(SF_ERR_FORMAT, "data section offset overflows");
    g->data_offset = infos_end + pad;
    char pn[96];
    for (int64_t i = 0; i < g->n_tensors; i++) {
        sf_gguf_tensor *t = &g->tensors[i];
        printable(t->name, strlen(t->name), pn, sizeof pn);
        if (t->offset % a != 0)
            return sf_fail(SF_ERR_FORMAT, "tensor '%s': offset %" PRIu64 " is not a multiple of the alignment %zu",
                           pn, t->offset, a);
        uint64_t start = sat_add(g->data_offset, t->offset);
        if (g->data_offset > g->size || t->offset > g->size - g->data_offset ||
            t->nbytes > g->size - g->data_offset - t->offset)
            return sf_fail(SF_ERR_FORMAT, "tensor '%s': data [%" PRIu64 ", %" PRIu64 ") lies past the end of the file (size %zu)",
                           pn, start, sat_add(start, t->nbytes), g->size);
        t->data = g->base + g->data_offset + t->offset;
    }
    return SF_OK;
}

static int parse(sf_gguf *g) {
    cursor c = {g->base, g->size, 0};
    uint64_t n_tensors, n_kv;
    if (g->size < GGUF_HEADER_BYTES && (g->size < 4 || memcmp(g->base, "GGUF", 4) == 0))
        return sf_fail(SF_ERR_FORMAT, "truncated file: %zu bytes is too small for a GGUF header (24 bytes)", g->size);
    int rc = parse_header(g, &c, &n_tensors, &n_kv);
    if (!rc) rc = parse_kvs(g, &c, n_kv);
    if (!rc) rc = parse_alignment(g);
    if (!rc) rc = parse_tensors(g, &c, n_tensors);
    if (!rc) rc = place_data(g, c.pos);
    return rc;
}

/* ------------------------------------------------------------ open/close */

void sf_gguf_close(sf_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free((char *)g->kv[i].key);
        free(g->kv[i].items);
    }
    free(g->kv);
    for (int64_t i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->tensors);
    free(g->key_index.slots);
    free(g->tensor_index.slots);
    if (g->mapped && g->size) munmap((void *)g->base, g->size);
    free(g);
}

static int open_common(sf_gguf *g, sf_gguf **out) {
    int rc = parse(g);
    if (rc) { sf_gguf_close(g); return rc; }
    *out = g;
    return SF_OK;
}

int sf_gguf_open_memory(const void *buf, size_t size, sf_gguf **out) {
    if (!out) return sf_fail(SF_ERR_ARG, "sf_gguf_open_memory: out is NULL");
    *out = NULL;
    if (!buf && size) return sf_fail(SF_ERR_ARG, "sf_gguf_open_memory: buffer is NULL");
    sf_gguf *g = calloc(1, sizeof *g);
    if (!g) return sf_fail(SF_ERR_NOMEM, "out of memory");
    static const uint8_t empty[1];
    g->base = buf ? buf : empty;
    g->size = size;
    return open_common(g, out);
}

int sf_gguf_open(const char *path, sf_gguf **out) {
    if (!out) return sf_fail(SF_ERR_ARG, "sf_gguf_open: out is NULL");
    *out = NULL;
    if (!path) return sf_fail(SF_ERR_ARG, "sf_gguf_open: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sf_fail(SF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sf_fail(SF_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) { close(fd); return sf_fail(SF_ERR_IO, "%s: not a regular file", path); }
    sf_gguf *g = calloc(1, sizeof *g);
    if (!g) { close(fd); return sf_fail(SF_ERR_NOMEM, "out of memory"); }
    static const uint8_t empty[1];
    g->base = empty;
    g->size = (size_t)st.st_size;
    if (g->size) {
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(g);
            return sf_fail(SF_ERR_IO, "%s: cannot mmap %zu bytes: %s", path, (size_t)st.st_size, strerror(e));
        }
        g->base = m;
        g->mapped = true;
    }
    close(fd);
    int rc = open_common(g, out);
    return rc ? sf_fail_context(rc, "%s", path) : SF_OK;
}

/* ------------------------------------------------------------ accessors */

uint32_t sf_gguf_version(const sf_gguf *g) { return g->version; }
size_t sf_gguf_alignment(const sf_gguf *g) { return g->alignment; }
size_t sf_gguf_file_size(const sf_gguf *g) { return g->size; }
size_t sf_gguf_data_offset(const sf_gguf *g) { return g->data_offset; }

int64_t sf_gguf_n_kv(const sf_gguf *g) { return g->n_kv; }
const char *sf_gguf_key_at(const sf_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->kv[i].key : NULL;
}
sf_gguf_vtype sf_gguf_kv_type(const sf_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->kv[i].type : SF_GGUF_TYPE_COUNT;
}
sf_gguf_vtype sf_gguf_arr_type(const sf_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv && g->kv[i].type == SF_GGUF_ARRAY ? g->kv[i].arr_type : SF_GGUF_TYPE_COUNT;
}
uint64_t sf_gguf_arr_len(const sf_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv && g->kv[i].type == SF_GGUF_ARRAY ? g->kv[i].arr_len : 0;
}

int64_t sf_gguf_n_tensors(const sf_gguf *g) { return g->n_tensors; }
const sf_gguf_tensor *sf_gguf_tensor_at(const sf_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}
