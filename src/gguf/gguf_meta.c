/* Typed metadata getters, numeric-array element access and value formatting
 * over a validated sf_gguf (see gguf_read.c). */
#include "gguf/gguf_impl.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"

/* ------------------------------------------------------------ integers */

static bool is_int_type(int t) {
    return t == SF_GGUF_U8 || t == SF_GGUF_I8 || t == SF_GGUF_U16 || t == SF_GGUF_I16 || t == SF_GGUF_U32 ||
           t == SF_GGUF_I32 || t == SF_GGUF_U64 || t == SF_GGUF_I64;
}

/* An integer of any width: negative values in s (neg = true), others in u. */
typedef struct { bool neg; int64_t s; uint64_t u; } any_int;

static any_int read_int(int t, const uint8_t *p) {
    any_int v = {false, 0, 0};
    int64_t s = 0;
    switch (t) {
    case SF_GGUF_U8: v.u = p[0]; return v;
    case SF_GGUF_U16: v.u = sf_gguf_rd16(p); return v;
    case SF_GGUF_U32: v.u = sf_gguf_rd32(p); return v;
    case SF_GGUF_U64: v.u = sf_gguf_rd64(p); return v;
    case SF_GGUF_I8: s = (int8_t)p[0]; break;
    case SF_GGUF_I16: { int16_t x; uint16_t r = sf_gguf_rd16(p); memcpy(&x, &r, 2); s = x; break; }
    case SF_GGUF_I32: { int32_t x; uint32_t r = sf_gguf_rd32(p); memcpy(&x, &r, 4); s = x; break; }
    case SF_GGUF_I64: { uint64_t r = sf_gguf_rd64(p); memcpy(&s, &r, 8); break; }
    default: return v;
    }
    if (s < 0) { v.neg = true; v.s = s; } else v.u = (uint64_t)s;
    return v;
}

static float rd_f32(const uint8_t *p) { float f; uint32_t r = sf_gguf_rd32(p); memcpy(&f, &r, 4); return f; }
static double rd_f64(const uint8_t *p) { double f; uint64_t r = sf_gguf_rd64(p); memcpy(&f, &r, 8); return f; }

/* Finds key; SF_ERR_RANGE (no message) if missing. */
static int lookup(const sf_gguf *g, const char *key, const sf_gguf_kv **kv) {
    int64_t i = g && key ? sf_gguf_find_key(g, key) : -1;
    if (i < 0) return SF_ERR_RANGE;
    *kv = &g->kv[i];
    return SF_OK;
}

/* Reads an integer-typed value (scalar at p of type t) bounded to [0, max]
 * or, with allow_neg, to [INT64_MIN, max]. */
static int int_in_range(const char *key, int t, const uint8_t *p, uint64_t max, bool allow_neg, any_int *out) {
    if (!is_int_type(t))
        return sf_fail(SF_ERR_FORMAT, "key '%s' has type %s; expected an integer", key, sf_gguf_vtype_name(t));
    any_int v = read_int(t, p);
    if (v.neg && !allow_neg)
        return sf_fail(SF_ERR_FORMAT, "key '%s' = %" PRId64 " is negative; expected an unsigned value", key, v.s);
    if (!v.neg && v.u > max)
        return sf_fail(SF_ERR_FORMAT, "key '%s' = %" PRIu64 " is out of range (max %" PRIu64 ")", key, v.u, max);
    *out = v;
    return SF_OK;
}

int sf_gguf_get_u32(const sf_gguf *g, const char *key, uint32_t *out) {
    const sf_gguf_kv *kv;
    any_int v;
    int rc = lookup(g, key, &kv);
    if (!rc) rc = int_in_range(key, kv->type, kv->data, UINT32_MAX, false, &v);
    if (!rc) *out = (uint32_t)v.u;
    return rc;
}

int sf_gguf_get_u64(const sf_gguf *g, const char *key, uint64_t *out) {
    const sf_gguf_kv *kv;
    any_int v;
    int rc = lookup(g, key, &kv);
    if (!rc) rc = int_in_range(key, kv->type, kv->data, UINT64_MAX, false, &v);
    if (!rc) *out = v.u;
    return rc;
}

int sf_gguf_get_i64(const sf_gguf *g, const char *key, int64_t *out) {
    const sf_gguf_kv *kv;
    any_int v;
    int rc = lookup(g, key, &kv);
    if (!rc) rc = int_in_range(key, kv->type, kv->data, INT64_MAX, true, &v);
    if (!rc) *out = v.neg ? v.s : (int64_t)v.u;
    return rc;
}

int sf_gguf_get_f32(const sf_gguf *g, const char *key, float *out) {
    const sf_gguf_kv *kv;
    int rc = lookup(g, key, &kv);
    if (rc) return rc;
    if (kv->type == SF_GGUF_F32) { *out = rd_f32(kv->data); return SF_OK; }
    if (kv->type == SF_GGUF_F64) {
        double d = rd_f64(kv->data);
        if (isfinite(d) && fabs(d) > FLT_MAX)
            return sf_fail(SF_ERR_FORMAT, "key '%s' = %g is out of range for f32", key, d);
        *out = (float)d;
        return SF_OK;
    }
    return sf_fail(SF_ERR_FORMAT, "key '%s' has type %s; expected f32 or f64", key, sf_gguf_vtype_name(kv->type));
}

int sf_gguf_get_bool(const sf_gguf *g, const char *key, bool *out) {
    const sf_gguf_kv *kv;
    int rc = lookup(g, key, &kv);
    if (rc) return rc;
    if (kv->type != SF_GGUF_BOOL)
        return sf_fail(SF_ERR_FORMAT, "key '%s' has type %s; expected bool", key, sf_gguf_vtype_name(kv->type));
    *out = kv->data[0] != 0;
    return SF_OK;
}

int sf_gguf_get_str(const sf_gguf *g, const char *key, sf_gguf_str *out) {
    const sf_gguf_kv *kv;
    int rc = lookup(g, key, &kv);
    if (rc) return rc;
    if (kv->type != SF_GGUF_STRING)
        return sf_fail(SF_ERR_FORMAT, "key '%s' has type %s; expected str", key, sf_gguf_vtype_name(kv->type));
    out->ptr = (const char *)kv->data;
    out->len = kv->str_len;
    return SF_OK;
}

int sf_gguf_get_u32_per_layer(const sf_gguf *g, const char *key, int n_layer, uint32_t *out) {
    if (n_layer < 0) return sf_fail(SF_ERR_ARG, "key '%s': n_layer %d is negative", key, n_layer);
    const sf_gguf_kv *kv;
    any_int v;
    int rc = lookup(g, key, &kv);
    if (rc) return rc;
    if (kv->type != SF_GGUF_ARRAY) {
        rc = int_in_range(key, kv->type, kv->data, UINT32_MAX, false, &v);
        if (rc) return rc;
        for (int l = 0; l < n_layer; l++) out[l] = (uint32_t)v.u;
        return SF_OK;
    }
    if (!is_int_type(kv->arr_type))
        return sf_fail(SF_ERR_FORMAT, "key '%s' is an array of %s; expected integers (one per layer)", key,
                       sf_gguf_vtype_name(kv->arr_type));
    if (kv->arr_len != (uint64_t)n_layer)
        return sf_fail(SF_ERR_FORMAT, "key '%s' has %" PRIu64 " elements; expected %d (one per layer)", key,
                       kv->arr_len, n_layer);
    size_t es = sf_gguf_vtype_size(kv->arr_type);
    for (int l = 0; l < n_layer; l++) {
        rc = int_in_range(key, kv->arr_type, kv->data + (size_t)l * es, UINT32_MAX, false, &v);
        if (rc) return sf_fail_context(rc, "layer %d", l);
        out[l] = (uint32_t)v.u;
    }
    return SF_OK;
}

int sf_gguf_get_arr_data(const sf_gguf *g, const char *key, sf_gguf_vtype *elem_type, uint64_t *n,
                         const void **data) {
    const sf_gguf_kv *kv;
    int rc = lookup(g, key, &kv);
    if (rc) return rc;
    if (kv->type != SF_GGUF_ARRAY)
        return sf_fail(SF_ERR_FORMAT, "key '%s' has type %s; expected a numeric array", key,
                       sf_gguf_vtype_name(kv->type));
    if (!sf_gguf_vtype_size(kv->arr_type))
        return sf_fail(SF_ERR_FORMAT, "key '%s' is an array of %s; expected a numeric array", key,
                       sf_gguf_vtype_name(kv->arr_type));
    *elem_type = kv->arr_type;
    *n = kv->arr_len;
    *data = kv->data;
    return SF_OK;
}

int sf_gguf_get_arr_str(const sf_gguf *g, const char *key, uint64_t *n, const sf_gguf_str **items) {
    const sf_gguf_kv *kv;
    int rc = lookup(g, key, &kv);
    if (rc) return rc;
    if (kv->type != SF_GGUF_ARRAY || kv->arr_type != SF_GGUF_STRING)
        return sf_fail(SF_ERR_FORMAT, "key '%s' has type %s%s%s; expected an array of strings", key,
                       sf_gguf_vtype_name(kv->type), kv->type == SF_GGUF_ARRAY ? " of " : "",
                       kv->type == SF_GGUF_ARRAY ? sf_gguf_vtype_name(kv->arr_type) : "");
    *n = kv->arr_len;
    *items = kv->items;
    return SF_OK;
}

double sf_gguf_arr_get_f64(sf_gguf_vtype t, const void *data, uint64_t i) {
    size_t es = sf_gguf_vtype_size(t);
    const uint8_t *p = (const uint8_t *)data + i * es;
    if (t == SF_GGUF_F32) return rd_f32(p);
    if (t == SF_GGUF_F64) return rd_f64(p);
    if (t == SF_GGUF_BOOL) return p[0];
    if (!is_int_type(t)) return 0.0;
    any_int v = read_int(t, p);
    return v.neg ? (double)v.s : (double)v.u;
}

int64_t sf_gguf_arr_get_i64(sf_gguf_vtype t, const void *data, uint64_t i) {
    size_t es = sf_gguf_vtype_size(t);
    const uint8_t *p = (const uint8_t *)data + i * es;
    if (t == SF_GGUF_F32 || t == SF_GGUF_F64) {
        /* truncates toward zero; NaN and out-of-range values saturate (a plain
         * cast would be undefined) */
        double d = t == SF_GGUF_F32 ? rd_f32(p) : rd_f64(p);
        if (isnan(d)) return 0;
        if (d >= 9223372036854775807.0) return INT64_MAX;
        if (d <= -9223372036854775808.0) return INT64_MIN;
        return (int64_t)d;
    }
    if (t == SF_GGUF_BOOL) return p[0];
    if (!is_int_type(t)) return 0;
    any_int v = read_int(t, p);
    if (v.neg) return v.s;
    return v.u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v.u;
}

/* ------------------------------------------------------------ formatting */

typedef struct { char *buf; size_t cap, n; bool full; } appender;

static void ap_printf(appender *a, const char *fmt, ...) SF_PRINTF(2, 3);
static void ap_printf(appender *a, const char *fmt, ...) {
    if (a->full) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(a->buf + a->n, a->cap - a->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= a->cap - a->n) { a->full = true; a->n = a->cap - 1; return; }
    a->n += (size_t)k;
}

/* Quoted, escaped, at most max_chars source bytes. */
static void ap_string(appender *a, const char *s, uint64_t len, size_t max_chars) {
    ap_printf(a, "\"");
    for (uint64_t i = 0; i < len && !a->full; i++) {
        if (i == max_chars) { ap_printf(a, "..."); break; }
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') ap_printf(a, "\\%c", ch);
        else if (ch == '\n') ap_printf(a, "\\n");
        else if (ch == '\t') ap_printf(a, "\\t");
        else if (ch < 0x20 || ch == 0x7f) ap_printf(a, "\\x%02x", ch);
        else ap_printf(a, "%c", ch);
    }
    ap_printf(a, "\"");
}

static void ap_scalar(appender *a, int t, const uint8_t *p) {
    if (t == SF_GGUF_F32) ap_printf(a, "%.9g", rd_f32(p));
    else if (t == SF_GGUF_F64) ap_printf(a, "%.17g", rd_f64(p));
    else if (t == SF_GGUF_BOOL) ap_printf(a, "%s", p[0] ? "true" : "false");
    else {
        any_int v = read_int(t, p);
        if (v.neg) ap_printf(a, "%" PRId64, v.s);
        else ap_printf(a, "%" PRIu64, v.u);
    }
}

/* Serialized size of a validated value of type t at p. */
static size_t value_size(int t, const uint8_t *p) {
    size_t es = sf_gguf_vtype_size(t);
    if (es) return es;
    if (t == SF_GGUF_STRING) return 8 + (size_t)sf_gguf_rd64(p);
    uint32_t et = sf_gguf_rd32(p);
    uint64_t n = sf_gguf_rd64(p + 4);
    size_t off = 12;
    if (sf_gguf_vtype_size((int)et)) return off + (size_t)n * sf_gguf_vtype_size((int)et);
    for (uint64_t i = 0; i < n; i++) off += value_size((int)et, p + off);
    return off;
}

enum { FMT_MAX_ELEMS = 8, FMT_MAX_STR = 64 };

/* Array at p (header included): first elements, then the count and type. */
static void ap_array(appender *a, const uint8_t *p) {
    uint32_t et = sf_gguf_rd32(p);
    uint64_t n = sf_gguf_rd64(p + 4);
    size_t off = 12;
    ap_printf(a, "[");
    for (uint64_t i = 0; i < n && !a->full; i++) {
        if (i == FMT_MAX_ELEMS) { ap_printf(a, ", ..."); break; }
        if (i) ap_printf(a, ", ");
        if (et == SF_GGUF_STRING) ap_string(a, (const char *)p + off + 8, sf_gguf_rd64(p + off), FMT_MAX_STR);
        else if (et == SF_GGUF_ARRAY) ap_array(a, p + off);
        else ap_scalar(a, (int)et, p + off);
        off += value_size((int)et, p + off);
    }
    ap_printf(a, "] (%" PRIu64 " x %s)", n, sf_gguf_vtype_name((int)et));
}

const char *sf_gguf_kv_format(const sf_gguf *g, int64_t i, char *buf, size_t len) {
    if (!buf || !len) return buf;
    buf[0] = '\0';
    if (!g || i < 0 || i >= g->n_kv) return buf;
    appender a = {buf, len, 0, false};
    const sf_gguf_kv *kv = &g->kv[i];
    if (kv->type == SF_GGUF_STRING) ap_string(&a, (const char *)kv->data, kv->str_len, len);
    else if (kv->type == SF_GGUF_ARRAY) ap_array(&a, kv->raw);
    else ap_scalar(&a, kv->type, kv->data);
    if (a.full && len >= 4) memcpy(buf + len - 4, "...", 4);
    return buf;
}
