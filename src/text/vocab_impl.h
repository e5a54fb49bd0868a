/* Private to the tokenizer files (src/text/vocab*.c, bpe*.c, spm*.c).
 *
 * The vocab is built from plain arrays (sf_vocab_src) so tests can make one
 * in memory; sf_vocab_load only gathers those arrays from the GGUF keys.
 * Behaviour follows llama.cpp's llama-vocab.cpp; comments say where a quirk
 * of it is reproduced on purpose. */
#ifndef SF_TEXT_VOCAB_IMPL_H
#define SF_TEXT_VOCAB_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text/vocab.h"

/* Token attributes as bit flags (llama_token_attr). A token can gain CONTROL
 * or UNUSED next to its file type (e.g. an EOT-looking NORMAL token). */
enum {
    SF_ATTR_UNDEFINED = 0,
    SF_ATTR_UNKNOWN = 1 << 0,
    SF_ATTR_UNUSED = 1 << 1,
    SF_ATTR_NORMAL = 1 << 2,
    SF_ATTR_CONTROL = 1 << 3,
    SF_ATTR_USER_DEFINED = 1 << 4,
    SF_ATTR_BYTE = 1 << 5,
    SF_ATTR_LSTRIP = 1 << 7,
    SF_ATTR_RSTRIP = 1 << 8,
};

typedef enum { SF_VOCAB_SPM = 1, SF_VOCAB_BPE = 2 } sf_vocab_kind;

/* Pre-tokenizer regex families (llama.cpp LLAMA_VOCAB_PRE_TYPE_*). */
typedef enum {
    SF_PRE_DEFAULT = 0,
    SF_PRE_GPT2,          /* gpt-2, mpt, olmo, jais, phi-2, ... */
    SF_PRE_STARCODER,     /* starcoder, smollm, refact, command-r, ... */
    SF_PRE_LLAMA3,        /* llama-bpe, llama3, dbrx, smaug-bpe, ... */
    SF_PRE_QWEN2,         /* qwen2, stablelm2, deepseek-r1-qwen, ... */
    SF_PRE_DEEPSEEK_LLM,
    SF_PRE_DEEPSEEK_CODER,
    SF_PRE_FALCON,
} sf_pre_type;

/* ---- string-keyed hash maps (open addressing, keys live in a pool) ---- */
typedef struct {
    uint32_t hash;
    int32_t val;  /* -1: empty slot */
    uint32_t off; /* key = pool[off .. off+len) */
    uint32_t len;
} sf_strmap_slot;

typedef struct {
    sf_strmap_slot *slots; /* [cap] */
    size_t cap;            /* power of two */
    size_t count;
} sf_strmap;

uint32_t sf_hash_bytes(const char *s, size_t n);
int sf_strmap_init(sf_strmap *m, size_t expected);
void sf_strmap_free(sf_strmap *m);
/* Inserts key -> val unless the key is present; returns the value stored
 * under the key afterwards (the old one for a duplicate). */
int32_t sf_strmap_insert(sf_strmap *m, const char *pool, uint32_t off, uint32_t len, int32_t val);
int32_t sf_strmap_find(const sf_strmap *m, const char *pool, const char *key, size_t len);

/* (left, right) string pairs -> merge rank. */
typedef struct {
    uint32_t hash;
    int32_t rank; /* -1: empty slot */
    uint32_t loff, llen, roff, rlen;
} sf_pairmap_slot;

typedef struct {
    sf_pairmap_slot *slots; /* [cap] */
    size_t cap;
    size_t count;
} sf_pairmap;

int sf_pairmap_init(sf_pairmap *m, size_t expected);
void sf_pairmap_free(sf_pairmap *m);
void sf_pairmap_insert(sf_pairmap *m, const char *pool, uint32_t loff, uint32_t llen, uint32_t roff,
                       uint32_t rlen, int32_t rank);
int32_t sf_pairmap_find(const sf_pairmap *m, const char *pool, const char *l, size_t ll,
                        const char *r, size_t rl);

/* ---- growable arrays used by the tokenize paths ---- */
typedef struct { int32_t *v; size_t n, cap; } sf_ids;
int sf_ids_push(sf_ids *a, int32_t id);

/* ---- the vocab ---- */
struct sf_vocab {
    sf_vocab_kind kind;
    char model[16];
    char pre_name[64];
    sf_pre_type pre;
    char note[160]; /* e.g. why the default pre-tokenizer was chosen */

    int32_t n_tokens;
    char *text_pool;   /* every token text, NUL-terminated */
    uint32_t *text_off; /* [n_tokens] */
    uint32_t *text_len; /* [n_tokens] */
    float *scores;      /* [n_tokens] */
    int8_t *types;      /* [n_tokens] file token types (sf_token_type) */
    uint16_t *attrs;    /* [n_tokens] SF_ATTR_* */
    sf_strmap tok_map;  /* text -> first id with that text */
    int max_token_len;

    char *merge_pool; /* merge strings */
    sf_pairmap merges;

    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_space_prefix, ignore_merges, clean_spaces;

    int32_t *eog;  /* [n_eog] sorted */
    int n_eog;

    /* Control, user-defined and unknown tokens, longest text first (the order
     * llama.cpp partitions raw text by). */
    int32_t *special; /* [n_special] */
    int n_special;
    /* Byte trie over the special texts, to find which occur in a text. */
    struct sf_trie_node *trie; /* [n_trie] */
    int n_trie;
    int32_t root[256]; /* first-level node per byte, -1 if none */

    /* Piece of every token as rendered with special=true. */
    char *piece_pool;
    uint32_t *piece_off; /* [n_tokens] */
    uint32_t *piece_len; /* [n_tokens] */

    /* GPT-2 byte map: byte -> UTF-8 of its code point; code point -> byte. */
    char byte_utf8[256][3];
    uint8_t byte_utf8_len[256];
};

typedef struct sf_trie_node {
    int32_t child;   /* first child, -1 if none */
    int32_t sibling; /* next sibling, -1 if none */
    int32_t rank;    /* index into special[] of the token ending here, or -1 */
    uint8_t byte;
} sf_trie_node;

/* Inputs of sf_vocab_build. Special ids are -1 when the key is absent;
 * add_* are -1 when absent, else 0/1. Strings need not be NUL-terminated. */
typedef sf_gguf_str sf_span; /* {ptr, len}; not NUL-terminated */

typedef struct {
    sf_span model;      /* "gpt2" / "llama" */
    sf_span pre;        /* len 0 if absent */
    sf_span name;       /* general.name, len 0 if absent */
    int64_t n_tokens;
    const sf_span *tokens;  /* [n_tokens] */
    const float *scores;    /* [n_tokens] or NULL */
    const int32_t *types;   /* [n_tokens] or NULL */
    int64_t n_merges;
    const sf_span *merges;  /* [n_merges]; NULL with 0 for SPM */
    bool has_merges;
    int64_t bos, eos, eot, eom, unk, sep, pad, mask;
    int64_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    int add_bos, add_eos, add_space_prefix;
} sf_vocab_src;

void sf_vocab_src_init(sf_vocab_src *s); /* ids -1, flags -1, rest zero */
int sf_vocab_build(const sf_vocab_src *src, sf_vocab **out);

/* ---- internals shared between the files ---- */
static inline const char *sf_vocab_text(const sf_vocab *v, int32_t id) {
    return v->text_pool + v->text_off[id];
}
static inline int32_t sf_vocab_lookup(const sf_vocab *v, const char *s, size_t n) {
    return sf_strmap_find(&v->tok_map, v->text_pool, s, n);
}

/* vocab_special.c: special ids, EOG set, special cache and trie. */
int sf_vocab_init_specials(sf_vocab *v, const sf_vocab_src *src);
/* Splits text into raw fragments and special tokens (llama.cpp
 * tokenizer_st_partition). frag[i].id < 0 marks raw text [off, off+len). */
typedef struct { int32_t id; size_t off, len; } sf_fragment;
typedef struct { sf_fragment *v; size_t n, cap; } sf_fragments;
int sf_vocab_partition(const sf_vocab *v, const char *text, size_t len, bool parse_special,
                       sf_fragments *out);

/* bpe_pretok.c: splits code points into words; lens gets word lengths in
 * code points. flags[i] = sf_unicode_flags(cps[i]). */
typedef struct { uint32_t *v; size_t n, cap; } sf_lens;
int sf_pretok_split(sf_pre_type pre, const uint32_t *cps, const uint16_t *flags, size_t n,
                    sf_lens *lens, sf_lens *tmp);
/* Maps a tokenizer.ggml.pre name to its family and flags; returns false for
 * names this tokenizer does not know. */
bool sf_pretok_from_name(const char *name, sf_pre_type *pre, bool *ignore_merges,
                         bool *clean_spaces, bool *add_bos, bool *no_bos);

/* bpe.c / spm.c: tokenize one raw fragment, appending ids. */
int sf_bpe_tokenize(const sf_vocab *v, const char *text, size_t len, sf_ids *out);
int sf_spm_tokenize(const sf_vocab *v, const char *text, size_t len, sf_ids *out);

/* vocab_piece.c */
int sf_vocab_build_pieces(sf_vocab *v);

#endif
