/* Token pieces and detokenization (llama.cpp token_to_piece / detokenize). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "text/unicode.h"
#include "text/vocab_impl.h"

typedef struct { char *v; size_t n, cap; } buf_t;

static int put(buf_t *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        char *nv = realloc(b->v, cap);
        if (!nv) return sf_fail(SF_ERR_NOMEM, "out of memory for token pieces");
        b->v = nv;
        b->cap = cap;
    }
    memcpy(b->v + b->n, p, n);
    b->n += n;
    return SF_OK;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* <0xXX>: the two characters after "<0x" read as hex (llama.cpp token_to_byte). */
static uint8_t byte_of(const char *text, size_t len) {
    int v = 0;
    for (size_t i = 3; i < len && i < 5 && hexval(text[i]) >= 0; i++) v = v * 16 + hexval(text[i]);
    return (uint8_t)v;
}

/* llama_decode_text: each code point back to the byte it stands for; code
 * points outside the byte map render as "[UNK_BYTE_0x<utf8 hex><text>]". */
static int decode_bpe(buf_t *b, const char *text, size_t len) {
    for (size_t off = 0; off < len;) {
        uint32_t cp = sf_utf8_decode(text, len, &off);
        int byte = sf_cp_to_byte(cp);
        if (byte >= 0) {
            uint8_t c = (uint8_t)byte;
            if (put(b, &c, 1)) return SF_ERR_NOMEM;
            continue;
        }
        char u[4], hex[16];
        int k = sf_utf8_encode(cp, u);
        if (put(b, "[UNK_BYTE_0x", 12)) return SF_ERR_NOMEM;
        for (int j = 0; j < k; j++) {
            snprintf(hex, sizeof hex, "%02x", (uint8_t)u[j]);
            if (put(b, hex, 2)) return SF_ERR_NOMEM;
        }
        if (put(b, text, len) || put(b, "]", 1)) return SF_ERR_NOMEM;
    }
    return SF_OK;
}

int sf_vocab_build_pieces(sf_vocab *v) {
    buf_t b = {0};
    v->piece_off = malloc((size_t)v->n_tokens * sizeof(uint32_t));
    v->piece_len = malloc((size_t)v->n_tokens * sizeof(uint32_t));
    if (!v->piece_off || !v->piece_len) return sf_fail(SF_ERR_NOMEM, "out of memory for token pieces");
    for (int32_t id = 0; id < v->n_tokens; id++) {
        const char *text = sf_vocab_text(v, id);
        size_t len = v->text_len[id];
        uint16_t attr = v->attrs[id];
        size_t start = b.n;
        int rc = SF_OK;
        if (attr & (SF_ATTR_UNKNOWN | SF_ATTR_CONTROL | SF_ATTR_USER_DEFINED)) {
            rc = put(&b, text, len);
        } else if (attr & SF_ATTR_NORMAL) {
            if (v->kind == SF_VOCAB_BPE) {
                rc = decode_bpe(&b, text, len);
            } else {
                /* U+2581 -> space */
                for (size_t i = 0; i < len && !rc;) {
                    if (i + 3 <= len && memcmp(text + i, "\xE2\x96\x81", 3) == 0) {
                        rc = put(&b, " ", 1);
                        i += 3;
                    } else {
                        rc = put(&b, text + i, 1);
                        i++;
                    }
                }
            }
        } else if (attr & SF_ATTR_BYTE) {
            uint8_t c = byte_of(text, len);
            rc = put(&b, &c, 1);
        }
        if (rc || b.n > UINT32_MAX) {
            free(b.v);
            return rc ? rc : sf_fail(SF_ERR_FORMAT, "token pieces too large");
        }
        v->piece_off[id] = (uint32_t)start;
        v->piece_len[id] = (uint32_t)(b.n - start);
    }
    v->piece_pool = b.v ? b.v : malloc(1);
    if (!v->piece_pool) return sf_fail(SF_ERR_NOMEM, "out of memory for token pieces");
    return SF_OK;
}

/* Copies the piece, skipping up to lstrip leading spaces. */
static int piece(const sf_vocab *v, int32_t id, char *buf, int len, int lstrip, bool special) {
    if (id < 0 || id >= v->n_tokens) return 0; /* unknown ids render as nothing */
    if (!special && (v->attrs[id] & (SF_ATTR_UNKNOWN | SF_ATTR_CONTROL))) return 0;
    const char *p = v->piece_pool + v->piece_off[id];
    size_t n = v->piece_len[id];
    for (int i = 0; i < lstrip && n && *p == ' '; i++) {
        p++;
        n--;
    }
    if (n > (size_t)INT_MAX) return INT_MIN + 1;
    if (len < (int)n) return -(int)n;
    if (n) memcpy(buf, p, n);
    return (int)n;
}

int sf_vocab_token_to_piece(const sf_vocab *v, int32_t id, char *buf, int len, bool special) {
    return piece(v, id, buf, len, 0, special);
}

int sf_vocab_detokenize(const sf_vocab *v, const int32_t *tokens, int n, char *text, int len,
                        bool remove_special, bool unparse_special) {
    if (n < 0 || len < 0 || (n > 0 && !tokens) || (len > 0 && !text)) return 0;
    int avail = len;
    int64_t total = 0;
    bool remove_space = v->add_space_prefix;
    if (remove_special && v->add_bos && n > 0 && tokens[0] == v->bos) {
        remove_space = false;
        n--;
        tokens++;
    }
    if (remove_special && v->add_eos && n > 0 && tokens[n - 1] == v->eos) n--;
    char *out = text;
    for (int i = 0; i < n; i++) {
        int k = piece(v, tokens[i], out, avail, remove_space, unparse_special);
        remove_space = false;
        if (k < 0) {
            avail = 0;
            total -= k;
        } else if (k > 0) {
            avail -= k;
            out += k;
            total += k;
        }
        if (total > INT_MAX) return INT_MIN + 1;
    }
    if (total > len) return -(int)total;
    int t = (int)total;
    if (v->clean_spaces) {
        /* llama.cpp clean_up_tokenization_spaces, in three passes */
        int t1 = t;
        t = t ? 1 : 0;
        for (int i = 1; i < t1; i++) {
            char x = text[i];
            if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) t--;
            text[t++] = x;
        }
        int t2 = t;
        t = t ? 1 : 0;
        for (int i = 1; i < t2; i++) {
            char x = text[i];
            if (x == '\'' && i + 1 < t2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
                t--;              /* drop the space before */
                text[++i] = '\0'; /* and skip the one after */
            }
            text[t++] = x;
        }
        int t3 = t;
        t = t ? 1 : 0;
        for (int i = 1; i < t3; i++) {
            char x = text[i];
            if (text[i - 1] == ' ' && x == '\'' && i + 1 < t3) {
                char x1 = text[i + 1];
                if (x1 == 's' || x1 == 'm') t--; /* " 's", " 'm" */
                else if (i + 2 < t3) {
                    char x2 = text[i + 2];
                    if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) t--; /* " 're", " 've" */
                }
            }
            text[t++] = x;
        }
    }
    return t;
}
