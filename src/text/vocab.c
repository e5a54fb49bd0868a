/* Vocab construction (from GGUF keys or in-memory arrays) and accessors. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "text/unicode.h"
#include "text/vocab_impl.h"

void sf_vocab_src_init(sf_vocab_src *s) {
    memset(s, 0, sizeof(*s));
    s->bos = s->eos = s->eot = s->eom = s->unk = s->sep = s->pad = s->mask = -1;
    s->fim_pre = s->fim_suf = s->fim_mid = s->fim_pad = s->fim_rep = s->fim_sep = -1;
    s->add_bos = s->add_eos = s->add_space_prefix = -1;
}

static bool span_eq(sf_span s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static void copy_span(char *dst, size_t cap, sf_span s) {
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static int attr_of_type(int32_t t) {
    switch (t) {
    case SF_TOKEN_NORMAL: return SF_ATTR_NORMAL;
    case SF_TOKEN_UNKNOWN: return SF_ATTR_UNKNOWN;
    case SF_TOKEN_CONTROL: return SF_ATTR_CONTROL;
    case SF_TOKEN_USER_DEFINED: return SF_ATTR_USER_DEFINED;
    case SF_TOKEN_UNUSED: return SF_ATTR_UNUSED;
    case SF_TOKEN_BYTE: return SF_ATTR_BYTE;
    default: return SF_ATTR_UNDEFINED;
    }
}

/* Token texts into one pool; an empty text becomes "[EMPTY_<id>]" (llama.cpp). */
static int build_tokens(sf_vocab *v, const sf_vocab_src *src) {
    int32_t n = v->n_tokens;
    size_t pool = 0;
    for (int32_t i = 0; i < n; i++) pool += (src->tokens[i].len ? src->tokens[i].len : 24) + 1;
    if (pool > UINT32_MAX) return sf_fail(SF_ERR_FORMAT, "token texts too large (%zu bytes)", pool);
    v->text_pool = malloc(pool);
    v->text_off = malloc(n * sizeof(uint32_t));
    v->text_len = malloc(n * sizeof(uint32_t));
    v->scores = malloc(n * sizeof(float));
    v->types = malloc(n);
    v->attrs = malloc(n * sizeof(uint16_t));
    if (!v->text_pool || !v->text_off || !v->text_len || !v->scores || !v->types || !v->attrs)
        return sf_fail(SF_ERR_NOMEM, "out of memory for %d tokens", n);
    if (sf_strmap_init(&v->tok_map, (size_t)n)) return SF_ERR_NOMEM;
    size_t at = 0;
    int n_dup = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t len = src->tokens[i].len;
        if (len == 0) {
            len = (size_t)snprintf(v->text_pool + at, 24, "[EMPTY_%d]", (int)i);
        } else {
            memcpy(v->text_pool + at, src->tokens[i].ptr, len);
        }
        v->text_pool[at + len] = '\0';
        v->text_off[i] = (uint32_t)at;
        v->text_len[i] = (uint32_t)len;
        if (sf_strmap_insert(&v->tok_map, v->text_pool, (uint32_t)at, (uint32_t)len, i) != i) n_dup++;
        if ((int)len > v->max_token_len) v->max_token_len = (int)len;
        at += len + 1;
        v->scores[i] = src->scores ? src->scores[i] : 0.0f;
        int32_t t = src->types ? src->types[i] : SF_TOKEN_NORMAL;
        v->types[i] = (int8_t)(t >= 0 && t <= 6 ? t : 0);
        v->attrs[i] = (uint16_t)attr_of_type(t);
    }
    if (n_dup) sf_log_warn("vocab: %d duplicate token texts; the first id of each is used", n_dup);
    return SF_OK;
}

/* Merges "left right": split at the first space after the first byte, like
 * llama.cpp (word.find(' ', 1)); a merge without one maps ("", ""). */
static int build_merges(sf_vocab *v, const sf_vocab_src *src) {
    size_t pool = 0;
    for (int64_t i = 0; i < src->n_merges; i++) pool += src->merges[i].len;
    if (pool > UINT32_MAX) return sf_fail(SF_ERR_FORMAT, "merges too large (%zu bytes)", pool);
    v->merge_pool = malloc(pool + 1);
    if (!v->merge_pool) return sf_fail(SF_ERR_NOMEM, "out of memory for merges");
    if (sf_pairmap_init(&v->merges, (size_t)src->n_merges)) return SF_ERR_NOMEM;
    size_t at = 0;
    for (int64_t i = 0; i < src->n_merges; i++) {
        const char *w = src->merges[i].ptr;
        size_t len = src->merges[i].len;
        memcpy(v->merge_pool + at, w, len);
        size_t pos = 0;
        for (size_t k = 1; k < len; k++)
            if (w[k] == ' ') {
                pos = k;
                break;
            }
        if (pos) sf_pairmap_insert(&v->merges, v->merge_pool, (uint32_t)at, (uint32_t)pos,
                                   (uint32_t)(at + pos + 1), (uint32_t)(len - pos - 1), (int32_t)i);
        else sf_pairmap_insert(&v->merges, v->merge_pool, (uint32_t)at, 0, (uint32_t)at, 0, (int32_t)i);
        at += len;
    }
    return SF_OK;
}

static void build_byte_map(sf_vocab *v) {
    for (int b = 0; b < 256; b++) v->byte_utf8_len[b] = (uint8_t)sf_utf8_encode(sf_byte_to_cp((uint8_t)b), v->byte_utf8[b]);
}

int sf_vocab_build(const sf_vocab_src *src, sf_vocab **out) {
    *out = NULL;
    if (src->n_tokens <= 0 || src->n_tokens > INT32_MAX / 2)
        return sf_fail(SF_ERR_FORMAT, "tokenizer.ggml.tokens: bad token count %lld", (long long)src->n_tokens);
    sf_vocab *v = calloc(1, sizeof(*v));
    if (!v) return sf_fail(SF_ERR_NOMEM, "out of memory for the vocab");
    int rc = SF_OK;
    copy_span(v->model, sizeof v->model, src->model);
    v->n_tokens = (int32_t)src->n_tokens;
    v->eot = v->eom = v->sep = v->pad = v->mask = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    if (span_eq(src->model, "llama")) {
        v->kind = SF_VOCAB_SPM;
        v->bos = 1; /* llama.cpp's SPM defaults */
        v->eos = 2;
        v->unk = 0;
        v->pre = SF_PRE_DEFAULT;
        strcpy(v->pre_name, "default");
        v->add_space_prefix = true;
        v->clean_spaces = false;
        v->add_bos = true;
        v->add_eos = false;
    } else if (span_eq(src->model, "gpt2")) {
        v->kind = SF_VOCAB_BPE;
        v->bos = 11; /* llama.cpp's BPE defaults */
        v->eos = 11;
        v->unk = -1;
        if (!src->has_merges) {
            rc = sf_fail(SF_ERR_FORMAT, "cannot find tokenizer merges (tokenizer.ggml.merges)");
            goto fail;
        }
        v->add_space_prefix = false;
        bool no_bos = false;
        if (src->pre.len == 0) {
            strcpy(v->pre_name, "default");
            snprintf(v->note, sizeof v->note,
                     "missing tokenizer.ggml.pre: using the 'default' pre-tokenizer (quality may degrade)");
        } else {
            copy_span(v->pre_name, sizeof v->pre_name, src->pre);
            if (!sf_pretok_from_name(v->pre_name, &v->pre, &v->ignore_merges, &v->clean_spaces, &v->add_bos,
                                     &no_bos))
                snprintf(v->note, sizeof v->note,
                         "unknown pre-tokenizer '%.60s': using the 'default' pre-tokenizer", v->pre_name);
        }
        if (src->pre.len == 0) {
            sf_pretok_from_name("default", &v->pre, &v->ignore_merges, &v->clean_spaces, &v->add_bos, &no_bos);
        }
        if (v->note[0]) sf_log_warn("vocab: %s", v->note);
        if (no_bos) v->bos = -1;
    } else {
        char name[32];
        copy_span(name, sizeof name, src->model);
        rc = sf_fail(SF_ERR_UNSUPPORTED, "unknown tokenizer model '%s' (tokenizer.ggml.model)", name);
        goto fail;
    }
    if (src->add_space_prefix >= 0) v->add_space_prefix = src->add_space_prefix != 0;
    if ((rc = build_tokens(v, src))) goto fail;
    if (v->kind == SF_VOCAB_BPE && (rc = build_merges(v, src))) goto fail;
    build_byte_map(v);
    if ((rc = sf_vocab_init_specials(v, src))) goto fail;
    if ((rc = sf_vocab_build_pieces(v))) goto fail;
    *out = v;
    return SF_OK;
fail:
    sf_vocab_free(v);
    return rc;
}

void sf_vocab_free(sf_vocab *v) {
    if (!v) return;
    free(v->text_pool);
    free(v->text_off);
    free(v->text_len);
    free(v->scores);
    free(v->types);
    free(v->attrs);
    sf_strmap_free(&v->tok_map);
    free(v->merge_pool);
    sf_pairmap_free(&v->merges);
    free(v->eog);
    free(v->special);
    free(v->trie);
    free(v->piece_pool);
    free(v->piece_off);
    free(v->piece_len);
    free(v);
}

/* ---- loading from GGUF ---- */

/* Optional u32 id key: -1 if absent; error if present with a bad type. */
static int get_id(const sf_gguf *g, const char *key, int64_t *out) {
    uint32_t x;
    int rc = sf_gguf_get_u32(g, key, &x);
    if (rc == SF_ERR_RANGE) return SF_OK;
    if (rc) return rc;
    *out = x;
    return SF_OK;
}

static int get_flag(const sf_gguf *g, const char *key, int *out) {
    bool b;
    int rc = sf_gguf_get_bool(g, key, &b);
    if (rc == SF_ERR_RANGE) return SF_OK;
    if (rc) return rc;
    *out = b;
    return SF_OK;
}

/* Numeric array of at least n elements converted to float / int32. */
static int get_scores(const sf_gguf *g, int64_t n, float **out) {
    sf_gguf_vtype t;
    uint64_t cnt;
    const void *data;
    const char *key = "tokenizer.ggml.scores";
    int rc = sf_gguf_get_arr_data(g, key, &t, &cnt, &data);
    if (rc == SF_ERR_RANGE) return SF_OK;
    if (rc) return rc;
    if (t != SF_GGUF_F32 && t != SF_GGUF_I32)
        return sf_fail(SF_ERR_FORMAT, "%s: invalid element type %s", key, sf_gguf_vtype_name(t));
    if (cnt < (uint64_t)n)
        return sf_fail(SF_ERR_FORMAT, "%s: %llu scores for %lld tokens", key, (unsigned long long)cnt, (long long)n);
    float *s = malloc((size_t)n * sizeof(float));
    if (!s) return sf_fail(SF_ERR_NOMEM, "out of memory for scores");
    for (int64_t i = 0; i < n; i++) s[i] = (float)sf_gguf_arr_get_f64(t, data, (uint64_t)i);
    *out = s;
    return SF_OK;
}

static int get_types(const sf_gguf *g, int64_t n, int32_t **out) {
    sf_gguf_vtype t;
    uint64_t cnt;
    const void *data;
    const char *key = "tokenizer.ggml.token_type";
    int rc = sf_gguf_get_arr_data(g, key, &t, &cnt, &data);
    if (rc == SF_ERR_RANGE) return SF_OK;
    if (rc) return rc;
    if (t != SF_GGUF_I32)
        return sf_fail(SF_ERR_FORMAT, "%s: invalid element type %s", key, sf_gguf_vtype_name(t));
    if (cnt < (uint64_t)n)
        return sf_fail(SF_ERR_FORMAT, "%s: %llu types for %lld tokens", key, (unsigned long long)cnt, (long long)n);
    int32_t *s = malloc((size_t)n * sizeof(int32_t));
    if (!s) return sf_fail(SF_ERR_NOMEM, "out of memory for token types");
    for (int64_t i = 0; i < n; i++) s[i] = (int32_t)sf_gguf_arr_get_i64(t, data, (uint64_t)i);
    *out = s;
    return SF_OK;
}

int sf_vocab_load(const sf_gguf *g, sf_vocab **out) {
    *out = NULL;
    if (!g) return sf_fail(SF_ERR_ARG, "sf_vocab_load: no GGUF");
    sf_vocab_src src;
    sf_vocab_src_init(&src);
    float *scores = NULL;
    int32_t *types = NULL;
    int rc = sf_gguf_get_str(g, "tokenizer.ggml.model", &src.model);
    if (rc == SF_ERR_RANGE) return sf_fail(SF_ERR_FORMAT, "missing key tokenizer.ggml.model");
    if (rc) return rc;
    rc = sf_gguf_get_str(g, "tokenizer.ggml.pre", &src.pre);
    if (rc && rc != SF_ERR_RANGE) return rc;
    rc = sf_gguf_get_str(g, "general.name", &src.name);
    if (rc && rc != SF_ERR_RANGE) return rc;
    uint64_t n_tok = 0;
    const sf_gguf_str *toks = NULL;
    rc = sf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &n_tok, &toks);
    if (rc == SF_ERR_RANGE) return sf_fail(SF_ERR_FORMAT, "missing key tokenizer.ggml.tokens");
    if (rc) return rc;
    src.n_tokens = (int64_t)n_tok;
    src.tokens = toks;
    if (src.n_tokens <= 0 || src.n_tokens > INT32_MAX / 2)
        return sf_fail(SF_ERR_FORMAT, "tokenizer.ggml.tokens: bad token count %llu", (unsigned long long)n_tok);
    uint64_t n_merges = 0;
    const sf_gguf_str *merges = NULL;
    rc = sf_gguf_get_arr_str(g, "tokenizer.ggml.merges", &n_merges, &merges);
    if (rc && rc != SF_ERR_RANGE) return rc;
    src.has_merges = rc == SF_OK;
    src.n_merges = (int64_t)n_merges;
    src.merges = merges;
    static const struct { const char *key; size_t field; } ids[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(sf_vocab_src, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(sf_vocab_src, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(sf_vocab_src, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(sf_vocab_src, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(sf_vocab_src, unk)},
        {"tokenizer.ggml.seperator_token_id", offsetof(sf_vocab_src, sep)},
        {"tokenizer.ggml.padding_token_id", offsetof(sf_vocab_src, pad)},
        {"tokenizer.ggml.mask_token_id", offsetof(sf_vocab_src, mask)},
        {"tokenizer.ggml.fim_pre_token_id", offsetof(sf_vocab_src, fim_pre)},
        {"tokenizer.ggml.fim_suf_token_id", offsetof(sf_vocab_src, fim_suf)},
        {"tokenizer.ggml.fim_mid_token_id", offsetof(sf_vocab_src, fim_mid)},
        {"tokenizer.ggml.fim_pad_token_id", offsetof(sf_vocab_src, fim_pad)},
        {"tokenizer.ggml.fim_rep_token_id", offsetof(sf_vocab_src, fim_rep)},
        {"tokenizer.ggml.fim_sep_token_id", offsetof(sf_vocab_src, fim_sep)},
        /* deprecated spellings, read after the new ones as llama.cpp does */
        {"tokenizer.ggml.prefix_token_id", offsetof(sf_vocab_src, fim_pre)},
        {"tokenizer.ggml.suffix_token_id", offsetof(sf_vocab_src, fim_suf)},
        {"tokenizer.ggml.middle_token_id", offsetof(sf_vocab_src, fim_mid)},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if ((rc = get_id(g, ids[i].key, (int64_t *)((char *)&src + ids[i].field)))) return rc;
    if ((rc = get_flag(g, "tokenizer.ggml.add_bos_token", &src.add_bos)) ||
        (rc = get_flag(g, "tokenizer.ggml.add_eos_token", &src.add_eos)) ||
        (rc = get_flag(g, "tokenizer.ggml.add_space_prefix", &src.add_space_prefix)))
        return rc;
    if ((rc = get_scores(g, src.n_tokens, &scores)) || (rc = get_types(g, src.n_tokens, &types))) goto done;
    src.scores = scores;
    src.types = types;
    rc = sf_vocab_build(&src, out);
done:
    free(scores);
    free(types);
    return rc;
}

/* ---- accessors ---- */
int32_t sf_vocab_n_tokens(const sf_vocab *v) { return v->n_tokens; }
const char *sf_vocab_model_name(const sf_vocab *v) { return v->model; }
const char *sf_vocab_pre_name(const sf_vocab *v) { return v->pre_name; }
const char *sf_vocab_note(const sf_vocab *v) { return v->note; }
int32_t sf_vocab_bos(const sf_vocab *v) { return v->bos; }
int32_t sf_vocab_eos(const sf_vocab *v) { return v->eos; }
int32_t sf_vocab_eot(const sf_vocab *v) { return v->eot; }
bool sf_vocab_add_bos(const sf_vocab *v) { return v->add_bos; }
bool sf_vocab_add_eos(const sf_vocab *v) { return v->add_eos; }

bool sf_vocab_is_eog(const sf_vocab *v, int32_t id) {
    int lo = 0, hi = v->n_eog;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v->eog[mid] == id) return true;
        if (v->eog[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

sf_token_type sf_vocab_token_type(const sf_vocab *v, int32_t id) {
    if (id < 0 || id >= v->n_tokens) return (sf_token_type)0;
    return (sf_token_type)v->types[id];
}

const char *sf_vocab_token_text(const sf_vocab *v, int32_t id) {
    if (id < 0 || id >= v->n_tokens) return NULL;
    return sf_vocab_text(v, id);
}

int32_t sf_vocab_find(const sf_vocab *v, const char *text) {
    if (!text) return -1;
    return sf_vocab_lookup(v, text, strlen(text));
}
