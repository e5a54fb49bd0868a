/* Byte-level BPE pre-tokenizers: the regex lists llama.cpp applies per
 * tokenizer.ggml.pre, as hand-written scanners over Unicode categories.
 *
 * llama.cpp runs a list of regexes one after another; each pass splits every
 * current segment further. Two kinds of pass exist there, and both are
 * reproduced here:
 *  - "custom" scanners (the GPT-2 and Llama-3 patterns) that give every code
 *    point to some word, an unmatched one becoming a word of its own;
 *  - std::regex passes, where each match is a word and the text between two
 *    matches becomes one word. Those run on a "collapsed" text in which a
 *    non-ASCII code point stands for its category, so \p{L}, \p{N}, \p{P}
 *    and \s mean exactly: category flag (ASCII: A-Za-z, 0-9, ASCII
 *    punctuation) and the White_Space property. Regexes without \p{..} run
 *    on code points with non-ASCII whitespace replaced by U+000B. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "text/unicode.h"
#include "text/vocab_impl.h"

/* ---- segment lists ---- */
static int lens_push(sf_lens *a, size_t len) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        uint32_t *nv = realloc(a->v, cap * sizeof(*nv));
        if (!nv) return sf_fail(SF_ERR_NOMEM, "out of memory splitting text into words");
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = (uint32_t)len;
    return SF_OK;
}

/* ---- character classes ---- */
typedef struct {
    const uint32_t *c;   /* [n] code points */
    const uint16_t *f;   /* [n] flags */
    size_t end;          /* end of the current segment */
} scan;

static inline uint16_t F(const scan *s, size_t i) { return i < s->end ? s->f[i] : 0; }
static inline uint32_t C(const scan *s, size_t i) { return i < s->end ? s->c[i] : 0xFFFFFFFFu; }
static inline bool is_ws(uint16_t f) { return f & SF_UF_WHITESPACE; }
static inline bool is_l(uint16_t f) { return (f & SF_UF_LETTER) && !is_ws(f); }
static inline bool is_n(uint16_t f) { return (f & SF_UF_NUMBER) && !is_ws(f); }
static inline bool is_p(uint16_t f) { return (f & SF_UF_PUNCT) && !is_ws(f); }
/* code point as the wide-regex passes see it */
static inline uint32_t W(const scan *s, size_t i) {
    return (s->c[i] > 0x7F && is_ws(s->f[i])) ? 0x0B : s->c[i];
}

typedef struct { uint32_t lo, hi; } cp_range;

static bool in_ranges(const cp_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return true;
    }
    return false;
}
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* deepseek-llm: the cased-letter class of its second regex, sorted. */
static const cp_range k_dsl_letters[] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA},
    {0x1BC, 0x1BF}, {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377},
    {0x37B, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C},
    {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
    {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
    {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE},
    {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC},
    {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
    {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
    {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787},
    {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
/* deepseek-llm: [!-/:-~！-／：-～‘-‟　-。] */
static const cp_range k_dsl_punct[] = {
    {0x21, 0x2F}, {0x3A, 0x7E}, {0x2018, 0x201F}, {0x3000, 0x3002}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
};
/* deepseek: [一-龥ࠀ-一가-퟿] */
static const cp_range k_ds_cjk[] = {{0x0800, 0x9FA5}, {0xAC00, 0xD7FF}}; /* 0800-4E00 + 4E00-9FA5 */

/* ---- the passes ----
 * A matcher returns the length of the match at i (0: none) within [i, end). */
typedef size_t (*matcher)(const scan *s, size_t i);

/* 's|'t|'re|'ve|'m|'ll|'d, optionally ASCII-case-insensitive; 0 if none */
static size_t contraction(const scan *s, size_t i, bool icase) {
    if (C(s, i) != '\'' || i + 1 >= s->end) return 0;
    uint32_t a = C(s, i + 1);
    if (icase && a >= 'A' && a <= 'Z') a += 32;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 >= s->end) return 0;
    uint32_t b = C(s, i + 2);
    if (icase && b >= 'A' && b <= 'Z') b += 32;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* llama.cpp unicode_regex_split_custom_gpt2:
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t m_gpt2(const scan *s, size_t i) {
    size_t k = contraction(s, i, false);
    if (k) return k;
    uint32_t c = C(s, i);
    size_t p = i + (c == ' ');
    uint16_t f2 = F(s, p);
    if (f2 & SF_UF_LETTER) {
        while (F(s, p) & SF_UF_LETTER) p++;
        return p - i;
    }
    if (f2 & SF_UF_NUMBER) {
        while (F(s, p) & SF_UF_NUMBER) p++;
        return p - i;
    }
    if (!(f2 & (SF_UF_WHITESPACE | SF_UF_LETTER | SF_UF_NUMBER)) && f2) {
        for (uint16_t g = f2; !(g & (SF_UF_WHITESPACE | SF_UF_LETTER | SF_UF_NUMBER)) && g; g = F(s, ++p)) {}
        return p - i;
    }
    size_t nws = 0;
    while (F(s, i + nws) & SF_UF_WHITESPACE) nws++;
    if (nws > 1 && i + nws < s->end) return nws - 1; /* \s+(?!\S) */
    if (nws > 0) return nws;
    return 1;
}

/* llama.cpp unicode_regex_split_custom_llama3 (max_digits 3), and the same
 * pattern with \p{N} instead of \p{N}{1,3} as std::regex runs it for qwen2:
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t llama3_like(const scan *s, size_t i, size_t max_digits) {
    size_t k = contraction(s, i, true);
    if (k) return k;
    uint32_t c = C(s, i);
    uint16_t f = F(s, i);
    if (!(c == '\r' || c == '\n' || (f & SF_UF_NUMBER))) {
        if ((f & SF_UF_LETTER) || (F(s, i + 1) & SF_UF_LETTER)) {
            size_t p = i + 1;
            while (F(s, p) & SF_UF_LETTER) p++;
            return p - i;
        }
    }
    if (f & SF_UF_NUMBER) {
        size_t p = i;
        while (p - i < max_digits && (F(s, p) & SF_UF_NUMBER)) p++;
        return p - i;
    }
    size_t p = i + (c == ' ');
    uint16_t f2 = F(s, p);
    if (!(f2 & (SF_UF_WHITESPACE | SF_UF_LETTER | SF_UF_NUMBER)) && f) {
        for (uint16_t g = f2; !(g & (SF_UF_WHITESPACE | SF_UF_LETTER | SF_UF_NUMBER)) && g; g = F(s, ++p)) {}
        while (C(s, p) == '\r' || C(s, p) == '\n') p++;
        return p - i;
    }
    size_t nws = 0, last_crlf = 0;
    while (F(s, i + nws) & SF_UF_WHITESPACE) {
        uint32_t c2 = C(s, i + nws);
        if (c2 == '\r' || c2 == '\n') last_crlf = i + nws + 1;
        nws++;
    }
    if (last_crlf > 0) return last_crlf - i;          /* \s*[\r\n]+ */
    if (nws > 1 && i + nws < s->end) return nws - 1;  /* \s+(?!\S) */
    if (nws > 0) return nws;
    return 1;
}
static size_t m_llama3(const scan *s, size_t i) { return llama3_like(s, i, 3); }
static size_t m_qwen2(const scan *s, size_t i) { return llama3_like(s, i, 1); }

/* \p{N} */
static size_t m_digit(const scan *s, size_t i) { return is_n(s->f[i]) ? 1 : 0; }
/* \p{N}+ */
static size_t m_digits(const scan *s, size_t i) {
    size_t p = i;
    while (p < s->end && is_n(s->f[p])) p++;
    return p - i;
}
/* [0-9][0-9][0-9] */
static size_t m_3ascii_digits(const scan *s, size_t i) {
    for (size_t k = 0; k < 3; k++) {
        uint32_t c = C(s, i + k);
        if (c < '0' || c > '9') return 0;
    }
    return 3;
}
/* [\p{P}\$\+<=>\^~\|]+ (default) and [\p{P}\$\+<=>\^~\|`]+ (falcon) */
static size_t punct_run(const scan *s, size_t i, const char *extra) {
    size_t p = i;
    while (p < s->end) {
        uint32_t c = s->c[p];
        if (!is_p(s->f[p]) && !(c < 0x80 && c && strchr(extra, (int)c))) break;
        p++;
    }
    return p - i;
}
static size_t m_punct_run(const scan *s, size_t i) { return punct_run(s, i, "$+<=>^~|"); }
static size_t m_punct_run_falcon(const scan *s, size_t i) { return punct_run(s, i, "$+<=>^~|`"); }
/* [\r\n] */
static size_t m_crlf(const scan *s, size_t i) { return (s->c[i] == '\r' || s->c[i] == '\n') ? 1 : 0; }
/* \s?X+ for a class X given as a predicate on position */
static size_t opt_ws_run(const scan *s, size_t i, bool (*cls)(const scan *, size_t)) {
    size_t p = i;
    if (is_ws(s->f[i]) && i + 1 < s->end && cls(s, i + 1)) p = i + 1;
    size_t q = p;
    while (q < s->end && cls(s, q)) q++;
    return q > p ? q - i : 0;
}
static bool cls_l(const scan *s, size_t i) { return is_l(s->f[i]); }
static bool cls_p(const scan *s, size_t i) { return is_p(s->f[i]); }
static bool cls_dsl_letter(const scan *s, size_t i) { return in_ranges(k_dsl_letters, N_OF(k_dsl_letters), W(s, i)); }
static bool cls_dsl_punct(const scan *s, size_t i) { return in_ranges(k_dsl_punct, N_OF(k_dsl_punct), W(s, i)); }
static size_t m_ws_letters(const scan *s, size_t i) { return opt_ws_run(s, i, cls_l); }
static size_t m_ws_punct(const scan *s, size_t i) { return opt_ws_run(s, i, cls_p); }
static size_t m_dsl_letters(const scan *s, size_t i) { return opt_ws_run(s, i, cls_dsl_letter); }
static size_t m_dsl_punct(const scan *s, size_t i) { return opt_ws_run(s, i, cls_dsl_punct); }
/* [一-龥ࠀ-一가-퟿]+ */
static size_t m_cjk(const scan *s, size_t i) {
    size_t p = i;
    while (p < s->end && in_ranges(k_ds_cjk, N_OF(k_ds_cjk), W(s, p))) p++;
    return p - i;
}
/* \s+$ : only a whitespace run that reaches the end of the segment */
static size_t m_trailing_ws(const scan *s, size_t i) {
    size_t p = i;
    while (p < s->end && is_ws(s->f[p])) p++;
    return (p > i && p == s->end) ? p - i : 0;
}

/* One pass over every segment of in, writing the new segments to out.
 * Text between matches becomes one segment (std::regex_iterator use). */
static int run_pass(matcher m, const uint32_t *cps, const uint16_t *flags, const sf_lens *in, sf_lens *out) {
    out->n = 0;
    size_t start = 0;
    for (size_t k = 0; k < in->n; k++) {
        scan s = {cps, flags, start + in->v[k]};
        size_t gap = start, i = start;
        while (i < s.end) {
            size_t ml = m(&s, i);
            if (ml == 0) {
                i++;
                continue;
            }
            if (i > gap && lens_push(out, i - gap)) return SF_ERR_NOMEM;
            if (lens_push(out, ml)) return SF_ERR_NOMEM;
            i += ml;
            gap = i;
        }
        if (s.end > gap && lens_push(out, s.end - gap)) return SF_ERR_NOMEM;
        start = s.end;
    }
    return SF_OK;
}

int sf_pretok_split(sf_pre_type pre, const uint32_t *cps, const uint16_t *flags, size_t n,
                    sf_lens *lens, sf_lens *tmp) {
    static const matcher k_default[] = {m_punct_run, m_gpt2, m_digits, m_3ascii_digits};
    static const matcher k_gpt2[] = {m_gpt2};
    static const matcher k_starcoder[] = {m_digit, m_gpt2};
    static const matcher k_llama3[] = {m_llama3};
    static const matcher k_qwen2[] = {m_qwen2};
    static const matcher k_dsl[] = {m_crlf, m_dsl_letters, m_dsl_punct, m_trailing_ws, m_cjk, m_digits};
    static const matcher k_dsc[] = {m_crlf, m_ws_letters, m_ws_punct, m_cjk, m_digit};
    static const matcher k_falcon[] = {m_punct_run_falcon, m_gpt2, m_3ascii_digits};
    const matcher *list;
    size_t count;
    switch (pre) {
    case SF_PRE_GPT2: list = k_gpt2; count = N_OF(k_gpt2); break;
    case SF_PRE_STARCODER: list = k_starcoder; count = N_OF(k_starcoder); break;
    case SF_PRE_LLAMA3: list = k_llama3; count = N_OF(k_llama3); break;
    case SF_PRE_QWEN2: list = k_qwen2; count = N_OF(k_qwen2); break;
    case SF_PRE_DEEPSEEK_LLM: list = k_dsl; count = N_OF(k_dsl); break;
    case SF_PRE_DEEPSEEK_CODER: list = k_dsc; count = N_OF(k_dsc); break;
    case SF_PRE_FALCON: list = k_falcon; count = N_OF(k_falcon); break;
    default: list = k_default; count = N_OF(k_default); break;
    }
    lens->n = 0;
    if (n == 0) return SF_OK;
    if (lens_push(lens, n)) return SF_ERR_NOMEM;
    for (size_t p = 0; p < count; p++) {
        if (run_pass(list[p], cps, flags, lens, tmp)) return SF_ERR_NOMEM;
        sf_lens t = *lens;
        *lens = *tmp;
        *tmp = t;
    }
    return SF_OK;
}

/* tokenizer.ggml.pre names, as llama.cpp's llama_vocab::impl::load maps them. */
typedef struct {
    const char *name;
    sf_pre_type pre;
    bool ignore_merges, clean_spaces, add_bos, no_bos;
} pre_entry;

static const pre_entry k_pre_names[] = {
    {"default", SF_PRE_DEFAULT, false, true, false, false},
    {"llama3", SF_PRE_LLAMA3, true, true, true, false},
    {"llama-v3", SF_PRE_LLAMA3, true, true, true, false},
    {"llama-bpe", SF_PRE_LLAMA3, true, true, true, false},
    {"falcon3", SF_PRE_LLAMA3, true, true, true, false},
    {"falcon-h1", SF_PRE_LLAMA3, true, true, true, false},
    {"pixtral", SF_PRE_LLAMA3, true, true, true, false},
    {"midm-2.0", SF_PRE_LLAMA3, true, true, true, false},
    {"lfm2", SF_PRE_LLAMA3, true, true, true, false},
    {"jina-v5-nano", SF_PRE_LLAMA3, true, true, true, false},
    {"dbrx", SF_PRE_LLAMA3, false, true, false, false},
    {"smaug-bpe", SF_PRE_LLAMA3, false, true, false, false},
    {"glm4", SF_PRE_LLAMA3, false, true, false, true},
    {"chatglm-bpe", SF_PRE_LLAMA3, false, true, false, true},
    {"deepseek-llm", SF_PRE_DEEPSEEK_LLM, false, false, false, false},
    {"deepseek-coder", SF_PRE_DEEPSEEK_CODER, false, false, false, false},
    {"falcon", SF_PRE_FALCON, false, true, false, false},
    {"mpt", SF_PRE_GPT2, false, true, false, false},
    {"starcoder", SF_PRE_STARCODER, false, true, false, false},
    {"gpt-2", SF_PRE_GPT2, false, true, false, false},
    {"phi-2", SF_PRE_GPT2, false, true, false, false},
    {"jina-es", SF_PRE_GPT2, false, true, false, false},
    {"jina-de", SF_PRE_GPT2, false, true, false, false},
    {"gigachat", SF_PRE_GPT2, false, true, false, false},
    {"jina-v2-es", SF_PRE_GPT2, false, true, false, false},
    {"jina-v2-de", SF_PRE_GPT2, false, true, false, false},
    {"a.x-4.0", SF_PRE_GPT2, false, true, false, false},
    {"mellum", SF_PRE_GPT2, false, true, false, false},
    {"modern-bert", SF_PRE_GPT2, false, true, false, false},
    {"jina-v1-en", SF_PRE_GPT2, false, true, false, false},
    {"jina-v2-code", SF_PRE_GPT2, false, true, false, false},
    {"roberta-bpe", SF_PRE_GPT2, false, true, false, false},
    {"refact", SF_PRE_STARCODER, false, true, false, false},
    {"command-r", SF_PRE_STARCODER, false, false, false, false},
    {"qwen2", SF_PRE_QWEN2, false, false, false, false},
    {"deepseek-r1-qwen", SF_PRE_QWEN2, false, false, false, false},
    {"kormo", SF_PRE_QWEN2, false, false, false, false},
    {"f2llmv2", SF_PRE_QWEN2, false, false, false, false},
    {"stablelm2", SF_PRE_QWEN2, false, true, false, false},
    {"megrez", SF_PRE_QWEN2, false, true, false, false},
    {"hunyuan", SF_PRE_QWEN2, false, false, false, false},
    {"solar-open", SF_PRE_QWEN2, false, false, false, false},
    {"grok-2", SF_PRE_QWEN2, false, false, false, false},
    {"olmo", SF_PRE_GPT2, false, true, false, false},
    {"jais", SF_PRE_GPT2, false, true, false, false},
    {"smollm", SF_PRE_STARCODER, false, false, false, false},
    {"codeshell", SF_PRE_STARCODER, false, true, false, false},
    {"exaone", SF_PRE_STARCODER, false, true, false, false},
    {"exaone4", SF_PRE_GPT2, false, true, false, false},
    {"minerva-7b", SF_PRE_STARCODER, false, true, false, false},
    {"mellum2", SF_PRE_STARCODER, false, true, false, false},
    {"trillion", SF_PRE_GPT2, false, false, false, false},
    {"granite-docling", SF_PRE_GPT2, false, false, false, false},
};

bool sf_pretok_from_name(const char *name, sf_pre_type *pre, bool *ignore_merges,
                         bool *clean_spaces, bool *add_bos, bool *no_bos) {
    for (size_t i = 0; i < N_OF(k_pre_names); i++) {
        const pre_entry *e = &k_pre_names[i];
        if (strcmp(e->name, name) == 0) {
            *pre = e->pre;
            *ignore_merges = e->ignore_merges;
            *clean_spaces = e->clean_spaces;
            *add_bos = e->add_bos;
            *no_bos = e->no_bos;
            return true;
        }
    }
    *pre = SF_PRE_DEFAULT;
    *ignore_merges = false;
    *clean_spaces = true;
    *add_bos = false;
    *no_bos = false;
    return false;
}
