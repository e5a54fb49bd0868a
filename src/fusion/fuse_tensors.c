/* The fused FFN tensors of one group (ffn-fusion.md section 3): gate/up rows
 * stacked, down rows concatenated, byte for byte when the members share a
 * type, else through f32 with the project's reference quantizers. */
#include "fusion/fuse_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/types.h"

void sf_fused_tensor_free(sf_fused_tensor *t) {
    if (!t) return;
    free(t->data);
    memset(t, 0, sizeof *t);
}

static bool same_types(const sf_gguf_tensor *const *m, int k) {
    for (int j = 1; j < k; j++)
        if (m[j]->type != m[0]->type) return false;
    return true;
}

/* "Q4_K, Q6_K, Q4_K" into buf. */
static void type_list(const sf_gguf_tensor *const *m, int k, char *buf, size_t len) {
    size_t n = 0;
    buf[0] = '\0';
    for (int j = 0; j < k && n < len; j++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", j ? ", " : "", sf_type_name(m[j]->type));
}

static bool is_2d(const sf_gguf_tensor *t) { return t->ne[2] == 1 && t->ne[3] == 1; }

/* Checks a type can be dequantized (src) or quantized to (dst). */
static int check_traits(const sf_gguf_tensor *t, int type, bool quantize) {
    const sf_type_traits *tr = sf_type_ref(type);
    if (!tr || (quantize ? !tr->quantize : !tr->dequantize))
        return sf_fail(SF_ERR_UNSUPPORTED, "tensor '%s': sparsefuse cannot %s type %s", t->name,
                       quantize ? "quantize to" : "dequantize", sf_type_name(type));
    return SF_OK;
}

int sf_fuse_stack_rows(const sf_gguf_tensor *const *m, int k, const float *const *col_scale, int out_type,
                       sf_fused_tensor *out) {
    memset(out, 0, sizeof *out);
    const int64_t E = m[0]->ne[0];
    int64_t rows = 0;
    for (int j = 0; j < k; j++) {
        if (m[j]->ne[0] != E || !is_2d(m[j]))
            return sf_fail(SF_ERR_FORMAT, "tensor '%s' has shape {%lld, %lld}, expected {%lld, n_ff} like '%s'",
                           m[j]->name, (long long)m[j]->ne[0], (long long)m[j]->ne[1], (long long)E, m[0]->name);
        rows += m[j]->ne[1];
    }
    bool same = same_types(m, k);
    bool requant = !same || col_scale || (out_type >= 0 && out_type != (int)m[0]->type);
    sf_type type = out_type >= 0 ? (sf_type)out_type : m[0]->type;
    out->ne[0] = E;
    out->ne[1] = rows;
    out->type = type;
    if (!requant) {
        size_t total = 0;
        for (int j = 0; j < k; j++) total += m[j]->nbytes;
        uint8_t *d = malloc(total ? total : 1);
        if (!d) return sf_fail(SF_ERR_NOMEM, "out of memory for a fused %zu-byte tensor", total);
        size_t off = 0;
        for (int j = 0; j < k; j++) {
            memcpy(d + off, m[j]->data, m[j]->nbytes);
            off += m[j]->nbytes;
        }
        out->data = d;
        out->nbytes = total;
        return SF_OK;
    }
    /* through f32, one row at a time */
    int rc = check_traits(m[0], type, true);
    for (int j = 0; j < k && !rc; j++) rc = check_traits(m[j], m[j]->type, false);
    if (rc) return rc;
    const sf_type_traits *to = sf_type_ref(type);
    if (E % to->block_size)
        return sf_fail(SF_ERR_UNSUPPORTED, "tensor '%s': rows of %lld values cannot be stored as %s (blocks of %d)",
                       m[0]->name, (long long)E, to->name, to->block_size);
    const size_t orow = sf_type_row_bytes(type, E);
    uint8_t *d = malloc(orow * (size_t)rows + 1);
    float *buf = malloc((size_t)E * sizeof *buf); /* [E] one row */
    if (!d || !buf) {
        free(d);
        free(buf);
        return sf_fail(SF_ERR_NOMEM, "out of memory for a fused tensor of %lld rows", (long long)rows);
    }
    uint8_t *dst = d;
    for (int j = 0; j < k; j++) {
        const sf_type_traits *from = sf_type_ref(m[j]->type);
        const size_t irow = sf_type_row_bytes(m[j]->type, E);
        const uint8_t *src = m[j]->data;
        for (int64_t r = 0; r < m[j]->ne[1]; r++, dst += orow) {
            from->dequantize(src + (size_t)r * irow, buf, E);
            if (col_scale)
                for (int64_t c = 0; c < E; c++) buf[c] *= col_scale[j][c];
            to->quantize(buf, dst, E);
        }
    }
    free(buf);
    out->data = d;
    out->nbytes = orow * (size_t)rows;
    out->requantized = true;
    out->mixed = !same;
    char types[96];
    type_list(m, k, types, sizeof types);
    if (col_scale && !same)
        snprintf(out->why, sizeof out->why, "gamma folded into the columns; member types differ (%s)", types);
    else if (col_scale)
        snprintf(out->why, sizeof out->why, "gamma folded into the columns");
    else if (!same)
        snprintf(out->why, sizeof out->why, "member types differ (%s)", types);
    else
        snprintf(out->why, sizeof out->why, "fused type %s requested", sf_type_name(type));
    return SF_OK;
}

int sf_fuse_concat_rows(const sf_gguf_tensor *const *m, int k, int out_type, sf_fused_tensor *out) {
    memset(out, 0, sizeof *out);
    const int64_t E = m[0]->ne[1];
    int64_t width = 0;
    for (int j = 0; j < k; j++) {
        if (m[j]->ne[1] != E || !is_2d(m[j]))
            return sf_fail(SF_ERR_FORMAT, "tensor '%s' has shape {%lld, %lld}, expected {n_ff, %lld} like '%s'",
                           m[j]->name, (long long)m[j]->ne[0], (long long)m[j]->ne[1], (long long)E, m[0]->name);
        width += m[j]->ne[0];
    }
    bool same = same_types(m, k);
    bool requant = !same || (out_type >= 0 && out_type != (int)m[0]->type);
    sf_type type = m[0]->type;
    if (out_type >= 0) {
        type = (sf_type)out_type;
    } else if (!same) {
        /* keep the first member's type if the fused width fits its blocks */
        const sf_type_traits *tr = sf_type_ref(type);
        if (!tr || !tr->quantize || width % tr->block_size) type = width % SF_QK == 0 ? SF_TYPE_Q8_0 : SF_TYPE_F16;
    }
    out->ne[0] = width;
    out->ne[1] = E;
    out->type = type;
    if (!requant) {
        /* each member row is R_j = n_ff_j / B * S bytes, whole blocks */
        size_t orow = 0;
        for (int j = 0; j < k; j++) orow += sf_type_row_bytes(type, m[j]->ne[0]);
        uint8_t *d = malloc(orow * (size_t)E + 1);
        if (!d) return sf_fail(SF_ERR_NOMEM, "out of memory for a fused %zu-byte tensor", orow * (size_t)E);
        for (int64_t r = 0; r < E; r++) {
            uint8_t *dst = d + (size_t)r * orow;
            for (int j = 0; j < k; j++) {
                size_t rb = sf_type_row_bytes(type, m[j]->ne[0]);
                memcpy(dst, (const uint8_t *)m[j]->data + (size_t)r * rb, rb);
                dst += rb;
            }
        }
        out->data = d;
        out->nbytes = orow * (size_t)E;
        return SF_OK;
    }
    int rc = check_traits(m[0], type, true);
    for (int j = 0; j < k && !rc; j++) rc = check_traits(m[j], m[j]->type, false);
    if (rc) return rc;
    const sf_type_traits *to = sf_type_ref(type);
    if (width % to->block_size)
        return sf_fail(SF_ERR_UNSUPPORTED, "tensor '%s': a fused width of %lld cannot be stored as %s (blocks of %d)",
                       m[0]->name, (long long)width, to->name, to->block_size);
    const size_t orow = sf_type_row_bytes(type, width);
    uint8_t *d = malloc(orow * (size_t)E + 1);
    float *buf = malloc((size_t)width * sizeof *buf); /* [width] one fused row */
    if (!d || !buf) {
        free(d);
        free(buf);
        return sf_fail(SF_ERR_NOMEM, "out of memory for a fused tensor of width %lld", (long long)width);
    }
    for (int64_t r = 0; r < E; r++) {
        float *seg = buf;
        for (int j = 0; j < k; j++) {
            const int64_t n = m[j]->ne[0];
            size_t rb = sf_type_row_bytes(m[j]->type, n);
            sf_type_ref(m[j]->type)->dequantize((const uint8_t *)m[j]->data + (size_t)r * rb, seg, n);
            seg += n;
        }
        to->quantize(buf, d + (size_t)r * orow, width);
    }
    free(buf);
    out->data = d;
    out->nbytes = orow * (size_t)E;
    out->requantized = true;
    out->mixed = !same;
    if (same) {
        snprintf(out->why, sizeof out->why, "fused type %s requested", sf_type_name(type));
    } else {
        char types[96];
        type_list(m, k, types, sizeof types);
        snprintf(out->why, sizeof out->why, "member types differ (%s)", types);
    }
    return SF_OK;
}
