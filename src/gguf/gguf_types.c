/* ggml tensor type geometry and GGUF metadata value-type sizes/names. */
#include "gguf/gguf_impl.h"

/* Indexed by ggml type id; sizes from ggml-common.h. Retired ids (4, 5,
 * 31-33, 36-38) keep block_size 0 and are rejected like unknown ones. */
static const sf_gguf_type_info k_types[] = {
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},
    [2] = {"Q4_0", 32, 18},     [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},   [11] = {"Q3_K", 256, 110},
    [12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},
    [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},  [23] = {"IQ4_XS", 256, 136},
    [24] = {"I8", 1, 1},        [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},
    [28] = {"F64", 1, 8},       [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},
    [34] = {"TQ1_0", 256, 54},  [35] = {"TQ2_0", 256, 66},
    [39] = {"MXFP4", 32, 17},
};

const sf_gguf_type_info *sf_gguf_type_lookup(int type) {
    if (type < 0 || type >= (int)(sizeof k_types / sizeof k_types[0])) return NULL;
    return k_types[type].block_size ? &k_types[type] : NULL;
}

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
