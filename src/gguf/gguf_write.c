/* GGUF v3 writer: collects metadata (serialized at once) and tensor
 * descriptions, then writes the file atomically: "<path>.tmp.<pid>",
 * fsync, rename, fsync of the directory. Tensor data is written back to back
 * in insertion order, each tensor padded with zeros to the alignment, which
 * is the layout llama.cpp requires. */
#include "gguf/gguf_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"

typedef struct {
    char *key;
    uint32_t type;
    uint8_t *val;    /* [val_size] the serialized value (after the u32 type) */
    size_t val_size;
} wkv;

typedef struct {
    char *name;
    int type;
    int n_dims;
    int64_t ne[4];
    const void *data; /* [nbytes], caller-owned */
    size_t nbytes;
} wtensor;

struct sf_gguf_writer {
    wkv *kv;          /* [n_kv] */
    size_t n_kv, cap_kv;
    wtensor *t;       /* [n_t] */
    size_t n_t, cap_t;
    size_t alignment; /* general.alignment if set, else 32 */
};

sf_gguf_writer *sf_gguf_writer_new(void) {
    sf_gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->alignment = 32;
    return w;
}

void sf_gguf_writer_free(sf_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) { free(w->kv[i].key); free(w->kv[i].val); }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void wr64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static int grow(void **arr, size_t *cap, size_t n, size_t es) {
    if (n < *cap) return SF_OK;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * es);
    if (!p) return sf_fail(SF_ERR_NOMEM, "out of memory");
    *arr = p;
    *cap = nc;
    return SF_OK;
}

/* Stores key = value (type, val[n] serialized; ownership of val passes to
 * the writer, also on error). Replaces an existing key in place. */
static int put_kv(sf_gguf_writer *w, const char *key, uint32_t type, uint8_t *val, size_t n) {
    if (!w || !key) { free(val); return sf_fail(SF_ERR_ARG, "gguf writer: NULL writer or key"); }
    if (strcmp(key, "general.alignment") == 0) {
        if (type != SF_GGUF_U32) {
            free(val);
            return sf_fail(SF_ERR_ARG, "gguf writer: general.alignment must be u32, not %s", sf_gguf_vtype_name((int)type));
        }
        uint32_t a = sf_gguf_rd32(val);
        if (a == 0 || (a & (a - 1)) != 0) {
            free(val);
            return sf_fail(SF_ERR_ARG, "gguf writer: general.alignment = %u is not a non-zero power of two", a);
        }
        w->alignment = a;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].val);
            w->kv[i].type = type;
            w->kv[i].val = val;
            w->kv[i].val_size = n;
            return SF_OK;
        }
    }
    char *k = strdup(key);
    if (!k || grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
        free(k);
        free(val);
        return sf_fail(SF_ERR_NOMEM, "gguf writer: out of memory for key '%s'", key);
    }
    w->kv[w->n_kv++] = (wkv){k, type, val, n};
    return SF_OK;
}

/* A copy of n bytes (at least one byte allocated). */
static uint8_t *dup_bytes(const void *p, size_t n) {
    uint8_t *d = malloc(n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

int sf_gguf_writer_set_scalar(sf_gguf_writer *w, const char *key, sf_gguf_vtype type, const void *v) {
    size_t es = sf_gguf_vtype_size(type);
    if (!es || !v)
        return sf_fail(SF_ERR_ARG, "gguf writer: key '%s': %s is not a scalar type", key ? key : "(null)",
                       sf_gguf_vtype_name(type));
    uint8_t *val = malloc(8);
    if (!val) return sf_fail(SF_ERR_NOMEM, "out of memory");
    switch (type) {
    case SF_GGUF_U8: val[0] = *(const uint8_t *)v; break;
    case SF_GGUF_I8: { int8_t x = *(const int8_t *)v; memcpy(val, &x, 1); break; }
    case SF_GGUF_BOOL: val[0] = *(const bool *)v ? 1 : 0; break;
    case SF_GGUF_U16: { uint16_t x = *(const uint16_t *)v; val[0] = (uint8_t)x; val[1] = (uint8_t)(x >> 8); break; }
    case SF_GGUF_I16: { uint16_t x; memcpy(&x, v, 2); val[0] = (uint8_t)x; val[1] = (uint8_t)(x >> 8); break; }
    case SF_GGUF_U32: case SF_GGUF_I32: case SF_GGUF_F32: { uint32_t x; memcpy(&x, v, 4); wr32(val, x); break; }
    default: { uint64_t x; memcpy(&x, v, 8); wr64(val, x); break; } /* u64, i64, f64 */
    }
    return put_kv(w, key, type, val, es);
}

int sf_gguf_writer_set_u32(sf_gguf_writer *w, const char *key, uint32_t v) {
    return sf_gguf_writer_set_scalar(w, key, SF_GGUF_U32, &v);
}
int sf_gguf_writer_set_i32(sf_gguf_writer *w, const char *key, int32_t v) {
    return sf_gguf_writer_set_scalar(w, key, SF_GGUF_I32, &v);
}
int sf_gguf_writer_set_u64(sf_gguf_writer *w, const char *key, uint64_t v) {
    return sf_gguf_writer_set_scalar(w, key, SF_GGUF_U64, &v);
}
int sf_gguf_writer_set_f32(sf_gguf_writer *w, const char *key, float v) {
    return sf_gguf_writer_set_scalar(w, key, SF_GGUF_F32, &v);
}
int sf_gguf_writer_set_bool(sf_gguf_writer *w, const char *key, bool v) {
    return sf_gguf_writer_set_scalar(w, key, SF_GGUF_BOOL, &v);
}

int sf_gguf_writer_set_str(sf_gguf_writer *w, const char *key, const char *v) {
    if (!v) return sf_fail(SF_ERR_ARG, "gguf writer: key '%s': NULL string", key ? key : "(null)");
    size_t n = strlen(v);
    uint8_t *val = malloc(8 + n);
    if (!val) return sf_fail(SF_ERR_NOMEM, "out of memory");
    wr64(val, n);
    memcpy(val + 8, v, n);
    return put_kv(w, key, SF_GGUF_STRING, val, 8 + n);
}

int sf_gguf_writer_set_arr(sf_gguf_writer *w, const char *key, sf_gguf_vtype elem_type, const void *data, uint64_t n) {
    size_t es = sf_gguf_vtype_size(elem_type);
    const char *k = key ? key : "(null)";
    if (!es)
        return sf_fail(SF_ERR_ARG, "gguf writer: key '%s': %s is not a numeric element type", k,
                       sf_gguf_vtype_name(elem_type));
    if (n > (SIZE_MAX - 12) / es) return sf_fail(SF_ERR_ARG, "gguf writer: key '%s': %" PRIu64 " elements overflow", k, n);
    if (n && !data) return sf_fail(SF_ERR_ARG, "gguf writer: key '%s': NULL array data", k);
    const uint8_t *src = data;
    if (elem_type == SF_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (src[i] > 1) return sf_fail(SF_ERR_ARG, "gguf writer: key '%s': bool element %" PRIu64 " is %u", k, i, src[i]);
    uint8_t *val = malloc(12 + (size_t)n * es);
    if (!val) return sf_fail(SF_ERR_NOMEM, "out of memory for key '%s'", k);
    wr32(val, elem_type);
    wr64(val + 4, n);
    if (n) memcpy(val + 12, data, (size_t)n * es); /* host is little-endian, like the file */
    return put_kv(w, key, SF_GGUF_ARRAY, val, 12 + (size_t)n * es);
}

int sf_gguf_writer_set_arr_str(sf_gguf_writer *w, const char *key, const sf_gguf_str *items, uint64_t n) {
    const char *k = key ? key : "(null)";
    if (n && !items) return sf_fail(SF_ERR_ARG, "gguf writer: key '%s': NULL items", k);
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++) {
        if (items[i].len && !items[i].ptr)
            return sf_fail(SF_ERR_ARG, "gguf writer: key '%s': item %" PRIu64 " is NULL", k, i);
        if (items[i].len > SIZE_MAX - 8 - total)
            return sf_fail(SF_ERR_ARG, "gguf writer: key '%s': strings too long", k);
        total += 8 + (size_t)items[i].len;
    }
    uint8_t *val = malloc(total);
    if (!val) return sf_fail(SF_ERR_NOMEM, "out of memory for key '%s'", k);
    wr32(val, SF_GGUF_STRING);
    wr64(val + 4, n);
    size_t off = 12;
    for (uint64_t i = 0; i < n; i++) {
        wr64(val + off, items[i].len);
        if (items[i].len) memcpy(val + off + 8, items[i].ptr, (size_t)items[i].len);
        off += 8 + (size_t)items[i].len;
    }
    return put_kv(w, key, SF_GGUF_ARRAY, val, total);
}

int sf_gguf_writer_copy_kv(sf_gguf_writer *w, const sf_gguf *src, int64_t i) {
    if (!src || i < 0 || i >= src->n_kv)
        return sf_fail(SF_ERR_ARG, "gguf writer: copy_kv: no metadata entry #%" PRId64, i);
    const sf_gguf_kv *kv = &src->kv[i];
    uint8_t *val = dup_bytes(kv->raw, kv->raw_size); /* already validated and serialized */
    if (!val) return sf_fail(SF_ERR_NOMEM, "out of memory for key '%s'", kv->key);
    return put_kv(w, kv->key, kv->type, val, kv->raw_size);
}

int sf_gguf_writer_add_tensor(sf_gguf_writer *w, const char *name, sf_type type, int n_dims, const int64_t *ne,
                              const void *data, size_t nbytes) {
    if (!w || !name || !ne) return sf_fail(SF_ERR_ARG, "gguf writer: add_tensor: NULL argument");
    if (!*name) return sf_fail(SF_ERR_ARG, "gguf writer: tensor with an empty name");
    const sf_gguf_type_info *ti = sf_gguf_type_lookup((int)type);
    if (!ti) return sf_fail(SF_ERR_ARG, "gguf writer: tensor '%s': unknown type id %d", name, (int)type);
    if (n_dims < 1 || n_dims > 4)
        return sf_fail(SF_ERR_ARG, "gguf writer: tensor '%s': n_dims %d (must be 1..4)", name, n_dims);
    int64_t ne4[4] = {1, 1, 1, 1};
    for (int d = 0; d < n_dims; d++) ne4[d] = ne[d];
    uint64_t expect;
    if (!sf_gguf_tensor_bytes((int)type, ne4, &expect))
        return sf_fail(SF_ERR_ARG,
                       "gguf writer: tensor '%s': invalid shape {%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                       "} for type %s (negative, overflowing or ne[0] not a multiple of %d)",
                       name, ne4[0], ne4[1], ne4[2], ne4[3], ti->name, ti->block_size);
    if (expect != nbytes)
        return sf_fail(SF_ERR_ARG, "gguf writer: tensor '%s': %zu bytes given, shape and type %s need %" PRIu64, name,
                       nbytes, ti->name, expect);
    if (nbytes && !data) return sf_fail(SF_ERR_ARG, "gguf writer: tensor '%s': NULL data", name);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0) return sf_fail(SF_ERR_ARG, "gguf writer: duplicate tensor name '%s'", name);
    char *nm = strdup(name);
    if (!nm || grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t)) {
        free(nm);
        return sf_fail(SF_ERR_NOMEM, "out of memory");
    }
    w->t[w->n_t++] = (wtensor){nm, (int)type, n_dims, {ne4[0], ne4[1], ne4[2], ne4[3]}, data, nbytes};
    return SF_OK;
}

/* ------------------------------------------------------------ output */

static size_t pad_to(size_t n, size_t a) { return (a - n % a) % a; }

/* Serializes header, metadata and tensor infos, zero-padded to the
 * alignment, into a new buffer *out[*len]. */
static int build_header(const sf_gguf_writer *w, uint8_t **out, size_t *len) {
    size_t n = 24;
    for (size_t i = 0; i < w->n_kv; i++) n += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].val_size;
    for (size_t i = 0; i < w->n_t; i++) n += 8 + strlen(w->t[i].name) + 4 + 8 * (size_t)w->t[i].n_dims + 4 + 8;
    size_t total = n + pad_to(n, w->alignment);
    uint8_t *b = calloc(1, total);
    if (!b) return sf_fail(SF_ERR_NOMEM, "gguf writer: out of memory for a %zu-byte header", total);
    memcpy(b, "GGUF", 4);
    wr32(b + 4, 3);
    wr64(b + 8, w->n_t);
    wr64(b + 16, w->n_kv);
    size_t p = 24;
    for (size_t i = 0; i < w->n_kv; i++) {
        size_t kl = strlen(w->kv[i].key);
        wr64(b + p, kl);
        memcpy(b + p + 8, w->kv[i].key, kl);
        p += 8 + kl;
        wr32(b + p, w->kv[i].type);
        memcpy(b + p + 4, w->kv[i].val, w->kv[i].val_size);
        p += 4 + w->kv[i].val_size;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        size_t nl = strlen(t->name);
        wr64(b + p, nl);
        memcpy(b + p + 8, t->name, nl);
        p += 8 + nl;
        wr32(b + p, (uint32_t)t->n_dims);
        p += 4;
        for (int d = 0; d < t->n_dims; d++, p += 8) wr64(b + p, (uint64_t)t->ne[d]);
        wr32(b + p, (uint32_t)t->type);
        wr64(b + p + 4, off);
        p += 12;
        off += t->nbytes + pad_to(t->nbytes, w->alignment);
    }
    *out = b;
    *len = total;
    return SF_OK;
}

static int write_all(int fd, const void *buf, size_t n, const char *path) {
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return sf_fail(SF_ERR_IO, "%s: write failed: %s", path, k < 0 ? strerror(errno) : "no progress");
        p += k;
        n -= (size_t)k;
    }
    return SF_OK;
}

static int write_zeros(int fd, size_t n, const char *path) {
    static const uint8_t zeros[4096];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        int rc = write_all(fd, zeros, k, path);
        if (rc) return rc;
        n -= k;
    }
    return SF_OK;
}

static int write_body(const sf_gguf_writer *w, int fd, const char *tmp) {
    uint8_t *hdr = NULL;
    size_t hlen = 0;
    int rc = build_header(w, &hdr, &hlen);
    if (rc) return rc;
    rc = write_all(fd, hdr, hlen, tmp);
    free(hdr);
    for (size_t i = 0; i < w->n_t && !rc; i++) {
        rc = write_all(fd, w->t[i].data, w->t[i].nbytes, tmp);
        if (!rc) rc = write_zeros(fd, pad_to(w->t[i].nbytes, w->alignment), tmp);
    }
    if (!rc && fsync(fd) != 0) rc = sf_fail(SF_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    return rc;
}

/* Makes the rename durable; failure only weakens crash safety, so ignored. */
static void sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { (void)fsync(fd); close(fd); }
    free(copy);
}

int sf_gguf_writer_finish(sf_gguf_writer *w, const char *path) {
    if (!w || !path || !*path) return sf_fail(SF_ERR_ARG, "gguf writer: finish: NULL writer or empty path");
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp) return sf_fail(SF_ERR_NOMEM, "out of memory");
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = sf_fail(SF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    int rc = write_body(w, fd, tmp);
    if (close(fd) != 0 && !rc) rc = sf_fail(SF_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0) rc = sf_fail(SF_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc) unlink(tmp);
    else sync_dir(path);
    free(tmp);
    return rc;
}
