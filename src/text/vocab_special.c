/* Special tokens: ids from metadata with llama.cpp's defaults and range
 * checks, detection of end-of-turn / FIM tokens by their text, the
 * end-of-generation set, and the partition of raw text on special-token
 * texts (llama.cpp tokenizer_st_partition). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "text/vocab_impl.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define FW_BAR "\xEF\xBD\x9C" /* U+FF5C fullwidth vertical line */
#define SPM_SP "\xE2\x96\x81" /* U+2581 */

static const char *const k_eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
    "_<EOT>", "[EOT]", "<" FW_BAR "end" SPM_SP "of" SPM_SP "sentence" FW_BAR ">", "<end_of_utterance>",
};
static const char *const k_eom_texts[] = {"<|eom_id|>"};
static const char *const k_fim_pre_texts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<" FW_BAR "fim" SPM_SP "begin" FW_BAR ">",
    "<PRE>", SPM_SP "<PRE>", "<|code_prefix|>", "<|prefix|>",
};
static const char *const k_fim_suf_texts[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<" FW_BAR "fim" SPM_SP "hole" FW_BAR ">",
    "<SUF>", SPM_SP "<SUF>", "<|code_suffix|>", "<|suffix|>",
};
static const char *const k_fim_mid_texts[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<" FW_BAR "fim" SPM_SP "end" FW_BAR ">",
    "<MID>", SPM_SP "<MID>", "<|code_middle|>", "<|middle|>",
};
static const char *const k_fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
static const char *const k_fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
static const char *const k_fim_sep_texts[] = {"<|file_sep|>"};
static const char *const k_eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<" FW_BAR "end" SPM_SP "of" SPM_SP "sentence" FW_BAR ">", "[e~[",
};

static int32_t find_text(const sf_vocab *v, const char *s) { return sf_vocab_lookup(v, s, strlen(s)); }

static void make_control(sf_vocab *v, int32_t id) {
    if (!(v->attrs[id] & SF_ATTR_CONTROL)) {
        sf_log_warn("vocab: control-looking token %d '%s' was not control-type; treating it as control", id,
                    sf_vocab_text(v, id));
        v->attrs[id] |= SF_ATTR_CONTROL;
    }
}

/* Sets *id from the first text of the list found in the vocab, if unset. */
static void detect(sf_vocab *v, int32_t *id, const char *const *texts, size_t n) {
    if (*id >= 0) return;
    for (size_t i = 0; i < n; i++) {
        int32_t t = find_text(v, texts[i]);
        if (t >= 0) {
            *id = t;
            make_control(v, t);
            return;
        }
    }
}

static int eog_add(sf_vocab *v, int32_t id, int *cap) {
    if (id < 0 || id >= v->n_tokens || sf_vocab_is_eog(v, id)) return SF_OK;
    if (v->n_eog == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        int32_t *ne = realloc(v->eog, (size_t)*cap * sizeof(int32_t));
        if (!ne) return sf_fail(SF_ERR_NOMEM, "out of memory for the EOG set");
        v->eog = ne;
    }
    /* keep sorted (insertion; the set is tiny) */
    int i = v->n_eog++;
    while (i > 0 && v->eog[i - 1] > id) {
        v->eog[i] = v->eog[i - 1];
        i--;
    }
    v->eog[i] = id;
    return SF_OK;
}

static void eog_remove(sf_vocab *v, int32_t id) {
    for (int i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) {
            memmove(&v->eog[i], &v->eog[i + 1], (size_t)(v->n_eog - i - 1) * sizeof(int32_t));
            v->n_eog--;
            return;
        }
}

static int build_eog(sf_vocab *v) {
    int cap = 0;
    if (eog_add(v, v->fim_pad, &cap) || eog_add(v, v->fim_rep, &cap) || eog_add(v, v->fim_sep, &cap))
        return SF_ERR_NOMEM;
    for (size_t i = 0; i < N_OF(k_eog_texts); i++) {
        int32_t t = find_text(v, k_eog_texts[i]);
        if (t < 0) continue;
        if (eog_add(v, t, &cap)) return SF_ERR_NOMEM;
        make_control(v, t);
    }
    /* llama.cpp (gpt-oss): these always render */
    static const char *const k_render[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t i = 0; i < N_OF(k_render); i++) {
        int32_t t = find_text(v, k_render[i]);
        if (t >= 0) v->attrs[t] = SF_ATTR_USER_DEFINED;
    }
    if (eog_add(v, v->eos, &cap) || eog_add(v, v->eot, &cap) || eog_add(v, v->eom, &cap)) return SF_ERR_NOMEM;
    /* o200k_harmony / solar-open: <|end|> is not an end of generation there */
    int32_t t_return = -1, t_call = -1, t_end = -1, t_flush = -1;
    for (int i = 0; i < v->n_eog; i++) {
        const char *s = sf_vocab_text(v, v->eog[i]);
        if (!strcmp(s, "<|return|>")) t_return = v->eog[i];
        else if (!strcmp(s, "<|call|>") || !strcmp(s, "<|calls|>")) t_call = v->eog[i];
        else if (!strcmp(s, "<|flush|>")) t_flush = v->eog[i];
        else if (!strcmp(s, "<|end|>")) t_end = v->eog[i];
    }
    if (t_end >= 0 && t_call >= 0 && (t_return >= 0 || t_flush >= 0)) {
        eog_remove(v, t_end);
        v->attrs[t_end] = SF_ATTR_USER_DEFINED;
    }
    /* gemma4 / paddleocr: </s> is not an end of generation next to <|tool_response> */
    int32_t t_tool = -1, t_s = -1;
    for (int i = 0; i < v->n_eog; i++) {
        const char *s = sf_vocab_text(v, v->eog[i]);
        if (!strcmp(s, "<|tool_response>")) t_tool = v->eog[i];
        else if (!strcmp(s, "</s>")) t_s = v->eog[i];
    }
    if (t_tool >= 0 && t_s >= 0) {
        eog_remove(v, t_s);
        v->attrs[t_s] = SF_ATTR_NORMAL;
    }
    return SF_OK;
}

/* special[] order: longer text first; equal lengths by id (llama.cpp's
 * std::sort leaves that order unspecified). Sorted as keys
 * (~len << 32 | id) so no comparison context is needed. */
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int trie_child(const sf_vocab *v, int32_t node, uint8_t b) {
    for (int32_t c = v->trie[node].child; c >= 0; c = v->trie[c].sibling)
        if (v->trie[c].byte == b) return c;
    return -1;
}

static int build_trie(sf_vocab *v) {
    size_t nodes = 0;
    for (int r = 0; r < v->n_special; r++) nodes += v->text_len[v->special[r]];
    v->trie = malloc((nodes + 1) * sizeof(sf_trie_node));
    if (!v->trie) return sf_fail(SF_ERR_NOMEM, "out of memory for the special-token trie");
    for (int b = 0; b < 256; b++) v->root[b] = -1;
    v->n_trie = 0;
    for (int r = 0; r < v->n_special; r++) {
        const uint8_t *s = (const uint8_t *)sf_vocab_text(v, v->special[r]);
        uint32_t n = v->text_len[v->special[r]];
        int32_t node = -1;
        for (uint32_t k = 0; k < n; k++) {
            int32_t next = node < 0 ? v->root[s[k]] : trie_child(v, node, s[k]);
            if (next < 0) {
                next = v->n_trie++;
                v->trie[next] = (sf_trie_node){-1, -1, -1, s[k]};
                if (node < 0) {
                    v->root[s[k]] = next;
                } else {
                    v->trie[next].sibling = v->trie[node].child;
                    v->trie[node].child = next;
                }
            }
            node = next;
        }
        if (node >= 0 && v->trie[node].rank < 0) v->trie[node].rank = r;
    }
    return SF_OK;
}

static bool contains_ci(const char *hay, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && tolower((unsigned char)hay[i + k]) == needle[k]) k++;
        if (k == m) return true;
    }
    return false;
}

static void set_attr(sf_vocab *v, const char *text, uint16_t attr, bool on) {
    int32_t t = find_text(v, text);
    if (t < 0) return;
    v->attrs[t] = on ? (uint16_t)(v->attrs[t] | attr) : (uint16_t)(v->attrs[t] & ~attr);
}

int sf_vocab_init_specials(sf_vocab *v, const sf_vocab_src *src) {
    struct { int32_t *id; int64_t val; const char *key; } ids[] = {
        {&v->bos, src->bos, "bos"}, {&v->eos, src->eos, "eos"}, {&v->eot, src->eot, "eot"},
        {&v->eom, src->eom, "eom"}, {&v->unk, src->unk, "unknown"}, {&v->sep, src->sep, "seperator"},
        {&v->pad, src->pad, "padding"}, {&v->mask, src->mask, "mask"}, {&v->fim_pre, src->fim_pre, "fim_pre"},
        {&v->fim_suf, src->fim_suf, "fim_suf"}, {&v->fim_mid, src->fim_mid, "fim_mid"},
        {&v->fim_pad, src->fim_pad, "fim_pad"}, {&v->fim_rep, src->fim_rep, "fim_rep"},
        {&v->fim_sep, src->fim_sep, "fim_sep"},
    };
    for (size_t i = 0; i < N_OF(ids); i++) {
        if (*ids[i].id >= v->n_tokens) *ids[i].id = -1; /* default out of range */
        if (ids[i].val < 0) continue;
        if (ids[i].val >= v->n_tokens)
            sf_log_warn("vocab: bad special token tokenizer.ggml.%s_token_id = %lld, using default %d", ids[i].key,
                        (long long)ids[i].val, *ids[i].id);
        else *ids[i].id = (int32_t)ids[i].val;
    }
    if (src->add_bos >= 0) v->add_bos = src->add_bos != 0;
    if (src->add_eos >= 0) v->add_eos = src->add_eos != 0;
    if (v->add_bos && v->bos < 0)
        return sf_fail(SF_ERR_FORMAT, "tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set");
    if (v->add_eos && v->eos < 0)
        return sf_fail(SF_ERR_FORMAT, "tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set");

    detect(v, &v->eot, k_eot_texts, N_OF(k_eot_texts));
    detect(v, &v->eom, k_eom_texts, N_OF(k_eom_texts));
    detect(v, &v->fim_pre, k_fim_pre_texts, N_OF(k_fim_pre_texts));
    detect(v, &v->fim_suf, k_fim_suf_texts, N_OF(k_fim_suf_texts));
    detect(v, &v->fim_mid, k_fim_mid_texts, N_OF(k_fim_mid_texts));
    detect(v, &v->fim_pad, k_fim_pad_texts, N_OF(k_fim_pad_texts));
    detect(v, &v->fim_rep, k_fim_rep_texts, N_OF(k_fim_rep_texts));
    detect(v, &v->fim_sep, k_fim_sep_texts, N_OF(k_fim_sep_texts));

    /* control tokens named "unused..." are unused */
    for (int32_t i = 0; i < v->n_tokens; i++)
        if ((v->attrs[i] & SF_ATTR_CONTROL) && strstr(sf_vocab_text(v, i), "unused")) v->attrs[i] |= SF_ATTR_UNUSED;

    if (build_eog(v)) return SF_ERR_NOMEM;

    int n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        n += (v->attrs[i] & (SF_ATTR_CONTROL | SF_ATTR_USER_DEFINED | SF_ATTR_UNKNOWN)) != 0;
    v->special = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    uint64_t *keys = malloc((size_t)(n ? n : 1) * sizeof(uint64_t));
    if (!v->special || !keys) {
        free(keys);
        return sf_fail(SF_ERR_NOMEM, "out of memory for special tokens");
    }
    v->n_special = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->attrs[i] & (SF_ATTR_CONTROL | SF_ATTR_USER_DEFINED | SF_ATTR_UNKNOWN))
            keys[v->n_special++] = ((uint64_t)(UINT32_MAX - v->text_len[i]) << 32) | (uint32_t)i;
    qsort(keys, (size_t)v->n_special, sizeof(uint64_t), cmp_u64);
    for (int r = 0; r < v->n_special; r++) v->special[r] = (int32_t)(keys[r] & 0xFFFFFFFFu);
    free(keys);

    /* per-model strip attributes llama.cpp sets by name */
    const char *pre = src->pre.ptr ? src->pre.ptr : "";
    size_t pre_len = src->pre.ptr ? (size_t)src->pre.len : 0;
    const char *name = src->name.ptr ? src->name.ptr : "";
    size_t name_len = src->name.ptr ? (size_t)src->name.len : 0;
    if (contains_ci(pre, pre_len, "jina-v2-de") || contains_ci(pre, pre_len, "jina-v2-es") ||
        contains_ci(pre, pre_len, "jina-v2-code")) {
        set_attr(v, "<mask>", SF_ATTR_LSTRIP, true);
    } else if (contains_ci(name, name_len, "phi-3") || contains_ci(name, name_len, "phi3")) {
        for (int r = 0; r < v->n_special; r++) v->attrs[v->special[r]] |= SF_ATTR_RSTRIP;
        set_attr(v, "</s>", SF_ATTR_RSTRIP, true);
        set_attr(v, "<unk>", SF_ATTR_RSTRIP, false);
        set_attr(v, "<s>", SF_ATTR_RSTRIP, false);
        set_attr(v, "<|endoftext|>", SF_ATTR_RSTRIP, false);
    } else if (contains_ci(name, name_len, "modern-bert")) {
        set_attr(v, "[MASK]", SF_ATTR_LSTRIP, true);
    }
    return build_trie(v);
}

/* ---- partition ---- */
static int frag_push(sf_fragments *f, int32_t id, size_t off, size_t len) {
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        sf_fragment *nv = realloc(f->v, cap * sizeof(*nv));
        if (!nv) return sf_fail(SF_ERR_NOMEM, "out of memory splitting special tokens");
        f->v = nv;
        f->cap = cap;
    }
    f->v[f->n++] = (sf_fragment){id, off, len};
    return SF_OK;
}

static bool active(const sf_vocab *v, int32_t id, bool parse_special) {
    /* control and unknown tokens only when parsing specials; user-defined
     * tokens always (as Hugging Face tokenizers do) */
    return parse_special || !(v->attrs[id] & (SF_ATTR_CONTROL | SF_ATTR_UNKNOWN));
}

/* Splits every raw fragment of in on the text of token id, into out. */
static int split_on(const sf_vocab *v, const char *text, int32_t id, const sf_fragments *in, sf_fragments *out) {
    const char *tok = sf_vocab_text(v, id);
    size_t tlen = v->text_len[id];
    uint16_t attr = v->attrs[id];
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        sf_fragment fr = in->v[k];
        if (fr.id >= 0) {
            if (frag_push(out, fr.id, 0, 0)) return SF_ERR_NOMEM;
            continue;
        }
        size_t base = fr.off, blen = fr.len;
        for (;;) {
            const char *m = blen >= tlen ? memmem(text + base, blen, tok, tlen) : NULL;
            if (!m) {
                if (blen > 0 && frag_push(out, -1, base, blen)) return SF_ERR_NOMEM;
                break;
            }
            size_t mpos = (size_t)(m - text);
            size_t left = mpos - base;
            if (attr & SF_ATTR_LSTRIP)
                while (left > 0 && isspace((unsigned char)text[base + left - 1])) left--;
            if (left > 0 && frag_push(out, -1, base, left)) return SF_ERR_NOMEM;
            if (frag_push(out, id, 0, 0)) return SF_ERR_NOMEM;
            size_t roff = mpos + tlen, rlen = base + blen - roff;
            if (attr & SF_ATTR_RSTRIP)
                while (rlen > 0 && isspace((unsigned char)text[roff])) {
                    roff++;
                    rlen--;
                }
            base = roff;
            blen = rlen;
        }
    }
    return SF_OK;
}

int sf_vocab_partition(const sf_vocab *v, const char *text, size_t len, bool parse_special, sf_fragments *out) {
    out->n = 0;
    if (len == 0) return SF_OK;
    if (frag_push(out, -1, 0, len)) return SF_ERR_NOMEM;
    if (v->n_special == 0) return SF_OK;
    /* which active special texts occur at all (trie walk from every byte) */
    uint8_t *occurs = calloc((size_t)v->n_special, 1);
    if (!occurs) return sf_fail(SF_ERR_NOMEM, "out of memory splitting special tokens");
    bool any = false;
    for (size_t p = 0; p < len; p++) {
        int32_t node = v->root[(uint8_t)text[p]];
        for (size_t q = p; node >= 0;) {
            int32_t r = v->trie[node].rank;
            if (r >= 0 && active(v, v->special[r], parse_special)) {
                occurs[r] = 1;
                any = true;
            }
            if (++q >= len) break;
            node = trie_child(v, node, (uint8_t)text[q]);
        }
    }
    int rc = SF_OK;
    sf_fragments tmp = {0};
    for (int r = 0; any && r < v->n_special; r++) {
        if (!occurs[r]) continue;
        if ((rc = split_on(v, text, v->special[r], out, &tmp))) break;
        sf_fragments t = *out;
        *out = tmp;
        tmp = t;
    }
    free(tmp.v);
    free(occurs);
    return rc;
}
