/* Synthetic models (see synth.h): the shape table, random quantized blocks
 * drawn directly, the SPM-style vocabulary, and the GGUF written through the
 * atomic writer. */
#include "model/synth.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "gguf/gguf.h"
#include "model/arch.h"
#include "tensor/blocks.h"
#include "tensor/types.h"

typedef struct {
    const char *name;       /* --shape */
    const char *arch;       /* general.architecture; its row of arch.h decides the optional tensors */
    const char *model_name; /* general.name */
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab;
    uint32_t n_ctx_train;
    float rope_base, norm_eps;
    /* Llama 3 rope scaling, baked into rope_freqs.weight */
    float rope_factor, rope_low, rope_high;
    uint32_t rope_orig_ctx;
} synth_shape;

/* Llama-3.2-1B as in its config.json (context_length is the full 131072). */
static const synth_shape g_shapes[] = {
    {"llama-3.2-1b", "llama", "sparsefuse synthetic Llama-3.2-1B shape (random weights)", 2048, 16, 32, 8, 64, 8192,
     128256, 131072, 500000.0f, 1e-5f, 32.0f, 1.0f, 4.0f, 8192},
    {"tiny", "llama", "sparsefuse synthetic tiny Llama shape (random weights)", 256, 2, 4, 2, 64, 768, 1000, 2048,
     500000.0f, 1e-5f, 32.0f, 1.0f, 4.0f, 8192},
    /* one tiny model per further architecture, for parity tests against llama.cpp */
    {"tiny-qwen2", "qwen2", "sparsefuse synthetic tiny Qwen2 shape (random weights)", 128, 2, 4, 2, 32, 256, 512,
     4096, 1000000.0f, 1e-6f, 0, 0, 0, 0},
    {"tiny-qwen3", "qwen3", "sparsefuse synthetic tiny Qwen3 shape (random weights)", 128, 2, 4, 2, 64, 256, 512,
     4096, 1000000.0f, 1e-6f, 0, 0, 0, 0},
    /* an original context of 256: contexts of 512 use the long LongRoPE factors */
    {"tiny-phi3", "phi3", "sparsefuse synthetic tiny Phi 3 shape (random weights)", 128, 2, 4, 4, 32, 256, 512,
     131072, 10000.0f, 1e-5f, 0, 0, 0, 256},
};
enum { N_SHAPES = sizeof g_shapes / sizeof g_shapes[0] };

static const char *const g_shape_names[] = {"llama-3.2-1b", "tiny", "tiny-qwen2", "tiny-qwen3", "tiny-phi3", NULL};

const char *const *sf_synth_shape_names(void) { return g_shape_names; }

sf_synth_params sf_synth_default_params(void) {
    sf_synth_params p = {0};
    p.shape = "llama-3.2-1b";
    p.type = "q4_0";
    return p;
}

/* ------------------------------------------------------------ types */

/* --type: one weight type for every matrix, or one of llama.cpp's file mixes
 * (Q4_K_M, Q5_K_M: llama_tensor_get_type's rules for a tied-embedding llama,
 * the embedding in Q6_K as the output matrix is, attn_v and ffn_down in Q6_K
 * on the layers use_more_bits picks). ftype: llama.cpp's llama_ftype. */
typedef struct {
    const char *name;
    sf_type base, more_bits; /* more_bits == base: no mix */
    uint32_t ftype;
} synth_type;

static const synth_type g_types[] = {
    {"f32", SF_TYPE_F32, SF_TYPE_F32, 0},       {"f16", SF_TYPE_F16, SF_TYPE_F16, 1},
    {"bf16", SF_TYPE_BF16, SF_TYPE_BF16, 32},   {"q4_0", SF_TYPE_Q4_0, SF_TYPE_Q4_0, 2},
    {"q4_1", SF_TYPE_Q4_1, SF_TYPE_Q4_1, 3},    {"q5_0", SF_TYPE_Q5_0, SF_TYPE_Q5_0, 8},
    {"q5_1", SF_TYPE_Q5_1, SF_TYPE_Q5_1, 9},    {"q8_0", SF_TYPE_Q8_0, SF_TYPE_Q8_0, 7},
    {"q2_k", SF_TYPE_Q2_K, SF_TYPE_Q2_K, 10},   {"q3_k", SF_TYPE_Q3_K, SF_TYPE_Q3_K, 11},
    {"q4_k", SF_TYPE_Q4_K, SF_TYPE_Q4_K, 14},   {"q5_k", SF_TYPE_Q5_K, SF_TYPE_Q5_K, 16},
    {"q6_k", SF_TYPE_Q6_K, SF_TYPE_Q6_K, 18},   {"q4_k_m", SF_TYPE_Q4_K, SF_TYPE_Q6_K, 15},
    {"q5_k_m", SF_TYPE_Q5_K, SF_TYPE_Q6_K, 17},
};
enum { N_TYPES = sizeof g_types / sizeof g_types[0] };

static const char *const g_type_names[] = {"f32",  "f16",  "bf16", "q4_0", "q4_1", "q5_0",   "q5_1",   "q8_0",
                                           "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q4_k_m", "q5_k_m", NULL};

const char *const *sf_synth_type_names(void) { return g_type_names; }

/* llama.cpp's use_more_bits(i, n): the first and last eighth of the layers
 * and every third one between */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* ------------------------------------------------------------ tensors */

typedef enum {
    T_MATRIX,      /* random quantized weights, std 1/sqrt(fan_in) */
    T_NORM,        /* all ones */
    T_NORM_RANDOM, /* 1 ± 0.3 (q/k norms, so that they matter) */
    T_BIAS,        /* uniform in ±0.5 */
    T_ROPE_FREQS,  /* llama 3's long-context divisors */
    T_ROPE_SHORT,  /* phi3 LongRoPE divisors, short and long contexts */
    T_ROPE_LONG
} tkind;

typedef struct {
    char name[48];
    tkind kind;
    sf_type type;
    int n_dims;
    int64_t ne[2];
    size_t nbytes;
    size_t offset; /* into the data buffer */
} tdesc;

/* The tensor list in llama.cpp's usual order, with the optional tensors
 * the architecture's row names; *n gets the count. */
static tdesc *plan_tensors(const synth_shape *s, const synth_type *ty, int *n) {
    const sf_arch_desc *A = sf_arch_find(s->arch);
    const sf_type wtype = ty->base;
    int cap = 4 + 16 * s->n_layer;
    tdesc *t = calloc((size_t)cap, sizeof *t);
    if (!t) return NULL;
    int k = 0;
    const int64_t E = s->n_embd, F = s->n_ff, Q = (int64_t)s->n_head * s->head_dim,
                  KV = (int64_t)s->n_head_kv * s->head_dim, hd = s->head_dim;
#define ADD(kind_, type_, nd, e0, e1, ...)                                          \
    do {                                                                            \
        snprintf(t[k].name, sizeof t[k].name, __VA_ARGS__);                         \
        t[k].kind = kind_;                                                          \
        t[k].type = type_;                                                          \
        t[k].n_dims = nd;                                                           \
        t[k].ne[0] = e0;                                                            \
        t[k].ne[1] = e1;                                                            \
        k++;                                                                        \
    } while (0)
    if (A->rope_freqs) ADD(T_ROPE_FREQS, SF_TYPE_F32, 1, hd / 2, 1, "rope_freqs.weight");
    if (A->longrope) {
        ADD(T_ROPE_LONG, SF_TYPE_F32, 1, hd / 2, 1, "rope_factors_long.weight");
        ADD(T_ROPE_SHORT, SF_TYPE_F32, 1, hd / 2, 1, "rope_factors_short.weight");
    }
    ADD(T_MATRIX, ty->more_bits, 2, E, s->n_vocab, "token_embd.weight"); /* also the output matrix */
    for (int il = 0; il < s->n_layer; il++) {
        const sf_type more = use_more_bits(il, s->n_layer) ? ty->more_bits : wtype;
        ADD(T_NORM, SF_TYPE_F32, 1, E, 1, "blk.%d.attn_norm.weight", il);
        if (A->fused_qkv) {
            ADD(T_MATRIX, wtype, 2, E, Q + 2 * KV, "blk.%d.attn_qkv.weight", il);
        } else {
            ADD(T_MATRIX, wtype, 2, E, Q, "blk.%d.attn_q.weight", il);
            ADD(T_MATRIX, wtype, 2, E, KV, "blk.%d.attn_k.weight", il);
            ADD(T_MATRIX, more, 2, E, KV, "blk.%d.attn_v.weight", il);
        }
        if (A->qkv_bias) {
            ADD(T_BIAS, SF_TYPE_F32, 1, Q, 1, "blk.%d.attn_q.bias", il);
            ADD(T_BIAS, SF_TYPE_F32, 1, KV, 1, "blk.%d.attn_k.bias", il);
            ADD(T_BIAS, SF_TYPE_F32, 1, KV, 1, "blk.%d.attn_v.bias", il);
        }
        if (A->qk_norm) {
            ADD(T_NORM_RANDOM, SF_TYPE_F32, 1, hd, 1, "blk.%d.attn_q_norm.weight", il);
            ADD(T_NORM_RANDOM, SF_TYPE_F32, 1, hd, 1, "blk.%d.attn_k_norm.weight", il);
        }
        ADD(T_MATRIX, wtype, 2, Q, E, "blk.%d.attn_output.weight", il);
        ADD(T_NORM, SF_TYPE_F32, 1, E, 1, "blk.%d.ffn_norm.weight", il);
        if (A->fused_gate_up) {
            ADD(T_MATRIX, wtype, 2, E, 2 * F, "blk.%d.ffn_up.weight", il);
        } else {
            ADD(T_MATRIX, wtype, 2, E, F, "blk.%d.ffn_gate.weight", il);
            ADD(T_MATRIX, wtype, 2, E, F, "blk.%d.ffn_up.weight", il);
        }
        ADD(T_MATRIX, more, 2, F, E, "blk.%d.ffn_down.weight", il);
    }
    ADD(T_NORM, SF_TYPE_F32, 1, E, 1, "output_norm.weight");
#undef ADD
    size_t off = 0;
    for (int i = 0; i < k; i++) {
        t[i].nbytes = sf_type_row_bytes(t[i].type, t[i].ne[0]) * (size_t)t[i].ne[1];
        t[i].offset = off;
        off += (t[i].nbytes + 63) & ~(size_t)63; /* keeps every block struct aligned */
    }
    *n = k;
    return t;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0.5, 1.5): the spread of block scales around their mean. */
static float scale_jitter(uint64_t *rng) { return 0.5f + (float)(splitmix64(rng) >> 40) * (1.0f / 16777216.0f); }

/* Random Q4_0 blocks: weights d*(q-8) with q uniform in 0..15 except that
 * 0 (-8) becomes 8 (0), so they are symmetric around 0 (otherwise every
 * row has a mean of -d/2, a common-mode drift through the layers):
 * -7..7, 0 twice as likely; RMS sqrt(17.5) d. */
static void fill_q4_0(sf_block_q4_0 *b, int64_t n_blocks, float d_mean, uint64_t *rng) {
    for (int64_t i = 0; i < n_blocks; i++) {
        b[i].d = sf_fp32_to_fp16(d_mean * scale_jitter(rng));
        uint64_t r[2] = {splitmix64(rng), splitmix64(rng)};
        memcpy(b[i].qs, r, sizeof b[i].qs);
        for (int j = 0; j < SF_QK / 2; j++) {
            uint8_t lo = b[i].qs[j] & 15, hi = b[i].qs[j] >> 4;
            b[i].qs[j] = (uint8_t)((lo ? lo : 8) | (hi ? hi : 8) << 4);
        }
    }
}

/* Random Q8_0 blocks: uniform bytes with -128 (which ggml's quantizer never
 * writes) made 0, so symmetric: -127..127, 0 twice as likely; RMS
 * sqrt(5397.5) d. */
static void fill_q8_0(sf_block_q8_0 *b, int64_t n_blocks, float d_mean, uint64_t *rng) {
    for (int64_t i = 0; i < n_blocks; i++) {
        b[i].d = sf_fp32_to_fp16(d_mean * scale_jitter(rng));
        for (int j = 0; j < 4; j++) {
            uint64_t r = splitmix64(rng);
            memcpy(b[i].qs + 8 * j, &r, 8);
        }
        for (int j = 0; j < SF_QK; j++)
            if (b[i].qs[j] == -128) b[i].qs[j] = 0;
    }
}

/* Any other type: uniform random floats with RMS `target` (and a per-row
 * scale jitter), quantized row by row with the scalar reference quantizer. */
static void fill_quantized(const tdesc *t, uint8_t *data, float target, uint64_t *rng) {
    const size_t rb = sf_type_row_bytes(t->type, t->ne[0]);
    float row[16384]; /* ne[0] <= 16384 for every shape here */
    const float amp = target * sqrtf(3.0f);
    for (int64_t r = 0; r < t->ne[1]; r++) {
        const float a = amp * scale_jitter(rng);
        for (int64_t i = 0; i < t->ne[0]; i++) row[i] = a * ((float)(splitmix64(rng) >> 40) * (2.0f / 16777216.0f) - 1.0f);
        sf_type_ref(t->type)->quantize(row, data + (size_t)r * rb, t->ne[0]);
    }
}

/* Llama 3 rope scaling (convert_hf_to_gguf.py): factor per frequency pair,
 * 1 for short wavelengths, `factor` for long ones, smooth in between. */
static void fill_rope_freqs(const synth_shape *s, float *out /* [head_dim/2] */) {
    const int dim = s->head_dim;
    const double lo_wavelen = s->rope_orig_ctx / s->rope_low, hi_wavelen = s->rope_orig_ctx / s->rope_high;
    for (int i = 0; i < dim / 2; i++) {
        double freq = 1.0 / pow(s->rope_base, (2.0 * i) / dim);
        double wavelen = 2.0 * M_PI / freq;
        double f;
        if (wavelen < hi_wavelen) f = 1.0;
        else if (wavelen > lo_wavelen) f = s->rope_factor;
        else {
            double smooth = (s->rope_orig_ctx / wavelen - s->rope_low) / (s->rope_high - s->rope_low);
            f = 1.0 / ((1.0 - smooth) / s->rope_factor + smooth);
        }
        out[i] = (float)f;
    }
}

static void fill_tensor(const synth_shape *s, const tdesc *t, uint8_t *data, uint64_t seed, int index) {
    uint64_t rng = seed ^ (0xd1b54a32d192ed03ull * (uint64_t)(index + 1)); /* one stream per tensor */
    int64_t n = t->ne[0] * t->ne[1];
    if (t->kind == T_NORM) {
        float *f = (float *)data;
        for (int64_t i = 0; i < n; i++) f[i] = 1.0f;
    } else if (t->kind == T_NORM_RANDOM || t->kind == T_BIAS) {
        float *f = (float *)data;
        const float base = t->kind == T_BIAS ? 0.0f : 1.0f, amp = t->kind == T_BIAS ? 0.5f : 0.3f;
        for (int64_t i = 0; i < n; i++)
            f[i] = base + amp * ((float)(splitmix64(&rng) >> 40) * (2.0f / 16777216.0f) - 1.0f);
    } else if (t->kind == T_ROPE_FREQS) {
        fill_rope_freqs(s, (float *)data);
    } else if (t->kind == T_ROPE_SHORT || t->kind == T_ROPE_LONG) {
        /* LongRoPE-like: 1 for the fastest pair rising smoothly to the slowest (short: 1.5, long: 12) */
        float *f = (float *)data;
        const float top = t->kind == T_ROPE_SHORT ? 1.5f : 12.0f;
        for (int64_t i = 0; i < n; i++) f[i] = 1.0f + (top - 1.0f) * (float)i / (float)(n > 1 ? n - 1 : 1);
    } else {
        /* per-weight std 1/sqrt(fan_in): outputs of a normalized input stay
         * ~1; sqrt(13/12) is the RMS of the scale jitter */
        double target = 1.0 / sqrt((double)t->ne[0]) / sqrt(13.0 / 12.0);
        if (t->type == SF_TYPE_Q4_0)
            fill_q4_0((sf_block_q4_0 *)data, n / SF_QK, (float)(target / sqrt(17.5)), &rng);
        else if (t->type == SF_TYPE_Q8_0)
            fill_q8_0((sf_block_q8_0 *)data, n / SF_QK, (float)(target / sqrt(5397.5)), &rng);
        else
            fill_quantized(t, data, (float)target, &rng);
    }
}

/* ---------------------------------------------------------- vocabulary */

enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_BYTE = 6 }; /* gguf token types */

/* Token texts, scores and types for n tokens: <unk> <s> </s>, <0x00>..<0xFF>,
 * then "▁" and "▁" + bijective base-26 words (a..z, aa..). */
static int set_vocab(sf_gguf_writer *w, int n) {
    const int first_word = 3 + 256;
    if (n < first_word) return sf_fail(SF_ERR_ARG, "vocabulary of %d tokens is too small", n);
    char *pool = malloc((size_t)n * 16);              /* [n][16] texts, NUL-free */
    sf_gguf_str *items = malloc((size_t)n * sizeof *items); /* [n] */
    float *scores = malloc((size_t)n * sizeof *scores); /* [n] */
    int32_t *types = malloc((size_t)n * sizeof *types); /* [n] */
    int rc = SF_OK;
    if (!pool || !items || !scores || !types) {
        rc = sf_fail(SF_ERR_NOMEM, "out of memory for a vocabulary of %d tokens", n);
        goto done;
    }
    static const char *const specials[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < n; i++) {
        char *p = pool + (size_t)i * 16;
        size_t len;
        if (i < 3) {
            len = strlen(specials[i]);
            memcpy(p, specials[i], len);
            types[i] = i == 0 ? TOK_UNKNOWN : TOK_CONTROL;
            scores[i] = 0.0f;
        } else if (i < first_word) {
            len = (size_t)snprintf(p, 16, "<0x%02X>", i - 3);
            types[i] = TOK_BYTE;
            scores[i] = 0.0f;
        } else {
            char rev[12];
            int nl = 0;
            for (int64_t k = i - first_word; k > 0; k = (k - 1) / 26) rev[nl++] = (char)('a' + (k - 1) % 26);
            memcpy(p, "\xe2\x96\x81", 3); /* U+2581, SentencePiece's space */
            for (int j = 0; j < nl; j++) p[3 + j] = rev[nl - 1 - j];
            len = 3 + (size_t)nl;
            types[i] = TOK_NORMAL;
            scores[i] = -(float)(i - first_word); /* shorter words merge first */
        }
        items[i] = (sf_gguf_str){p, len};
    }
    if ((rc = sf_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) ||
        (rc = sf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", items, (uint64_t)n)) ||
        (rc = sf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", SF_GGUF_F32, scores, (uint64_t)n)) ||
        (rc = sf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", SF_GGUF_I32, types, (uint64_t)n)) ||
        (rc = sf_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)) ||
        (rc = sf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1)) ||
        (rc = sf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2)) ||
        (rc = sf_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true)) ||
        (rc = sf_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false)))
        goto done;
done:
    free(pool);
    free(items);
    free(scores);
    free(types);
    return rc;
}

/* ------------------------------------------------------------ metadata */

static int arch_u32(sf_gguf_writer *w, const synth_shape *s, const char *suffix, uint32_t v) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", s->arch, suffix);
    return sf_gguf_writer_set_u32(w, key, v);
}

static int arch_f32(sf_gguf_writer *w, const synth_shape *s, const char *suffix, float v) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", s->arch, suffix);
    return sf_gguf_writer_set_f32(w, key, v);
}

static int set_metadata(sf_gguf_writer *w, const synth_shape *s, const synth_type *ty, uint64_t seed) {
    char desc[160];
    snprintf(desc, sizeof desc, "random weights from 'sparsefuse synth --shape %s --type %s --seed %" PRIu64
             "'; for speed measurements only", s->name, ty->name, seed);
    int rc;
    if ((rc = sf_gguf_writer_set_str(w, "general.architecture", s->arch)) ||
        (rc = sf_gguf_writer_set_str(w, "general.type", "model")) ||
        (rc = sf_gguf_writer_set_str(w, "general.name", s->model_name)) ||
        (rc = sf_gguf_writer_set_str(w, "general.description", desc)) ||
        (rc = sf_gguf_writer_set_u32(w, "general.file_type", ty->ftype)) ||
        (rc = sf_gguf_writer_set_u32(w, "general.quantization_version", 2)) ||
        (rc = arch_u32(w, s, "block_count", (uint32_t)s->n_layer)) ||
        (rc = arch_u32(w, s, "context_length", s->n_ctx_train)) ||
        (rc = arch_u32(w, s, "embedding_length", (uint32_t)s->n_embd)) ||
        (rc = arch_u32(w, s, "feed_forward_length", (uint32_t)s->n_ff)) ||
        (rc = arch_u32(w, s, "attention.head_count", (uint32_t)s->n_head)) ||
        (rc = arch_u32(w, s, "attention.head_count_kv", (uint32_t)s->n_head_kv)) ||
        (rc = arch_f32(w, s, "rope.freq_base", s->rope_base)) ||
        (rc = arch_f32(w, s, "attention.layer_norm_rms_epsilon", s->norm_eps)) ||
        (rc = arch_u32(w, s, "attention.key_length", (uint32_t)s->head_dim)) ||
        (rc = arch_u32(w, s, "attention.value_length", (uint32_t)s->head_dim)) ||
        (rc = arch_u32(w, s, "vocab_size", (uint32_t)s->n_vocab)) ||
        (rc = arch_u32(w, s, "rope.dimension_count", (uint32_t)s->head_dim)))
        return rc;
    /* LongRoPE as convert_hf_to_gguf writes it: the original context and the
     * attention factor sqrt(1 + ln(n_ctx_train / orig) / ln(orig)) */
    if (sf_arch_find(s->arch)->longrope &&
        ((rc = arch_u32(w, s, "rope.scaling.original_context_length", s->rope_orig_ctx)) ||
         (rc = arch_f32(w, s, "rope.scaling.attn_factor",
                        (float)sqrt(1.0 + log((double)s->n_ctx_train / s->rope_orig_ctx) / log(s->rope_orig_ctx))))))
        return rc;
    return set_vocab(w, s->n_vocab);
}

/* ---------------------------------------------------------------- write */

/* Fails early (before drawing a gigabyte of weights) if path's directory
 * cannot take the file, or path is a directory. */
static int check_dest(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return sf_fail(SF_ERR_IO, "it is a directory");
    char *copy = strdup(path);
    if (!copy) return sf_fail(SF_ERR_NOMEM, "out of memory");
    const char *dir = dirname(copy);
    int rc = SF_OK;
    if (stat(dir, &st) != 0) rc = sf_fail(SF_ERR_IO, "directory '%s': %s", dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode)) rc = sf_fail(SF_ERR_IO, "'%s' is not a directory", dir);
    else if (access(dir, W_OK) != 0)
        rc = sf_fail(SF_ERR_IO, "directory '%s' is not writable: %s", dir, strerror(errno));
    free(copy);
    return rc;
}

int sf_synth_write(const char *path, const sf_synth_params *p, sf_synth_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!path || !*path) return sf_fail(SF_ERR_ARG, "synth: no output path given");
    sf_synth_params def = sf_synth_default_params();
    if (!p) p = &def;
    const char *shape_name = p->shape ? p->shape : def.shape, *type_name = p->type ? p->type : def.type;
    const synth_shape *s = NULL;
    for (int i = 0; i < N_SHAPES; i++)
        if (strcmp(shape_name, g_shapes[i].name) == 0) s = &g_shapes[i];
    if (!s)
        return sf_fail(SF_ERR_ARG, "synth: unknown shape '%s' (known: llama-3.2-1b, tiny, tiny-qwen2, tiny-qwen3, "
                                   "tiny-phi3)", shape_name);
    const synth_type *ty = NULL;
    for (int i = 0; i < N_TYPES; i++)
        if (strcasecmp(type_name, g_types[i].name) == 0) ty = &g_types[i];
    if (!ty)
        return sf_fail(SF_ERR_ARG,
                       "synth: unsupported weight type '%s' (supported: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, "
                       "q2_k, q3_k, q4_k, q5_k, q6_k, q4_k_m, q5_k_m)", type_name);
    int rc = check_dest(path);
    if (rc) return sf_fail_context(rc, "cannot write synthetic model '%s'", path);

    int n_t = 0;
    tdesc *t = plan_tensors(s, ty, &n_t);
    if (!t) return sf_fail(SF_ERR_NOMEM, "synth: out of memory");
    size_t total = t[n_t - 1].offset + t[n_t - 1].nbytes;
    uint64_t data_bytes = 0;
    int64_t n_params = 0;
    for (int i = 0; i < n_t; i++) {
        data_bytes += t[i].nbytes;
        n_params += t[i].ne[0] * t[i].ne[1];
    }
    uint8_t *buf = aligned_alloc(64, (total + 63) & ~(size_t)63); /* all tensor data, at t[i].offset */
    sf_gguf_writer *w = buf ? sf_gguf_writer_new() : NULL;
    if (!buf || !w) {
        rc = sf_fail(SF_ERR_NOMEM, "out of memory for %.0f MiB of weights", (double)total / 1048576.0);
        goto done;
    }
    uint64_t done_bytes = 0;
    for (int i = 0; i < n_t; i++) {
        fill_tensor(s, &t[i], buf + t[i].offset, p->seed, i);
        done_bytes += t[i].nbytes;
        if (p->progress) p->progress("generating", (int64_t)done_bytes, (int64_t)data_bytes, p->user);
    }
    if ((rc = set_metadata(w, s, ty, p->seed))) goto done;
    for (int i = 0; i < n_t && !rc; i++)
        rc = sf_gguf_writer_add_tensor(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne, buf + t[i].offset, t[i].nbytes);
    if (rc) goto done;
    if (p->progress) p->progress("writing", 0, (int64_t)data_bytes, p->user);
    if ((rc = sf_gguf_writer_finish(w, path))) goto done;
    if (p->progress) p->progress("writing", (int64_t)data_bytes, (int64_t)data_bytes, p->user);
    if (out) *out = (sf_synth_result){n_t, n_params, data_bytes};
done:
    if (rc) sf_fail_context(rc, "cannot write synthetic model '%s'", path);
    sf_gguf_writer_free(w);
    free(buf);
    free(t);
    return rc;
}
