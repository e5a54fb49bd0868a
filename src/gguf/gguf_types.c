/* ggml tensor type geometry (over tensor/types.h's table) and GGUF metadata
 * value-type sizes/names. */
#include "gguf/gguf_impl.h"

const sf_gguf_type_info *sf_gguf_type_lookup(int type) { return sf_type_info_of(type); }

const char *sf_gguf_type_str(int type) {
    const sf_gguf_type_info *t = sf_gguf_type_lookup(type);
    return t ? t->name : "unknown";
}

bool sf_gguf_tensor_bytes(int type, const int64_t ne[4], uint64_t *nbytes) {
    const sf_gguf_type_info *t = sf_gguf_type_lookup(type);
    if (!t) return false;
    for (int i = 0; i < 4; i++)
        if (ne[i] < 0) return false;
    if (ne[0] % t->block_size != 0) return false;
    /* The element count must stay <= INT64_MAX (as in ggml); any zero dim
     * makes the tensor empty. bytes = ne0/block * type_size * ne1 * ne2 * ne3. */
    uint64_t elems = 1;
    for (int i = 0; i < 4; i++) {
        if (ne[i] == 0) { *nbytes = 0; return true; }
        if (elems > (uint64_t)INT64_MAX / (uint64_t)ne[i]) return false;
        elems *= (uint64_t)ne[i];
    }
    uint64_t blocks = (uint64_t)ne[0] / (uint64_t)t->block_size;
    if (blocks > (uint64_t)INT64_MAX / (uint64_t)t->type_size) return false;
    uint64_t bytes = blocks * (uint64_t)t->type_size;
    for (int i = 1; i < 4; i++) {
        if (bytes > (uint64_t)INT64_MAX / (uint64_t)ne[i]) return false;
        bytes *= (uint64_t)ne[i];
    }
    if (bytes > SIZE_MAX) return false;
    *nbytes = bytes;
    return true;
}

size_t sf_gguf_vtype_size(int t) {
    switch (t) {
    case SF_GGUF_U8: case SF_GGUF_I8: case SF_GGUF_BOOL: return 1;
    case SF_GGUF_U16: case SF_GGUF_I16: return 2;
    case SF_GGUF_U32: case SF_GGUF_I32: case SF_GGUF_F32: return 4;
    case SF_GGUF_U64: case SF_GGUF_I64: case SF_GGUF_F64: return 8;
    default: return 0;
    }
}

const char *sf_gguf_vtype_name(int t) {
    static const char *const names[SF_GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
    };
    return t >= 0 && t < SF_GGUF_TYPE_COUNT ? names[t] : "unknown";
}
