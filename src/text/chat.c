/* Chat templates: detection by substring heuristics and formatting, both as
 * llama.cpp's llama-chat.cpp does for the families supported here. This is
 * not a Jinja interpreter: a template is recognized, then hard-coded. */
#include "text/chat.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

typedef enum {
    TMPL_CHATML,
    TMPL_LLAMA2,          /* system text in the first [INST] without <<SYS>> */
    TMPL_LLAMA2_SYS,      /* <<SYS>> ... <</SYS>> */
    TMPL_LLAMA2_SYS_BOS,  /* ... and <s> before every later [INST] */
    TMPL_LLAMA2_SYS_STRIP,/* ... and contents trimmed */
    TMPL_LLAMA3,
    TMPL_GEMMA,
    TMPL_ZEPHYR,
    TMPL_COUNT
} tmpl_kind;

static const char *const g_names[TMPL_COUNT + 1] = {
    "chatml", "llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip",
    "llama3", "gemma",  "zephyr",     NULL,
};

const char *const *sf_chat_template_names(void) { return g_names; }

static int kind_from_name(const char *name) {
    for (int i = 0; i < TMPL_COUNT; i++)
        if (strcmp(name, g_names[i]) == 0) return i;
    return -1;
}

const char *sf_chat_detect_str(const char *t) {
    if (!t) return g_names[TMPL_CHATML];
    int k = kind_from_name(t);
    if (k >= 0) return g_names[k];
#define HAS(s) (strstr(t, (s)) != NULL)
    /* same order of checks as llama.cpp's llm_chat_detect_template */
    if (HAS("<|im_start|>")) return g_names[TMPL_CHATML];
    if (strncmp(t, "mistral", 7) == 0 || HAS("[INST]")) {
        if (HAS("content.strip()")) return g_names[TMPL_LLAMA2_SYS_STRIP];
        if (HAS("bos_token + '[INST]")) return g_names[TMPL_LLAMA2_SYS_BOS];
        if (HAS("<<SYS>>")) return g_names[TMPL_LLAMA2_SYS];
        return g_names[TMPL_LLAMA2];
    }
    if (HAS("<|user|>") && (HAS("<|endoftext|>") || HAS("</s>"))) return g_names[TMPL_ZEPHYR];
    if (HAS("<start_of_turn>")) return g_names[TMPL_GEMMA];
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>")) return g_names[TMPL_LLAMA3];
#undef HAS
    return g_names[TMPL_CHATML];
}

/* True if text is a single special token of m's vocab. */
static bool has_special_token(const sf_model *m, const char *text) {
    int32_t ids[4];
    return sf_tokenize(m, text, strlen(text), ids, 4, false, true) == 1;
}

const char *sf_chat_template_detect(const sf_model *m) {
    if (!m) return g_names[TMPL_CHATML];
    const char *t = sf_model_chat_template(m);
    if (t) return sf_chat_detect_str(t);
    /* No template in the file (llama.cpp would fall back to chatml): pick
     * the family whose turn markers the vocab has as special tokens. */
    if (has_special_token(m, "<|im_start|>")) return g_names[TMPL_CHATML];
    if (has_special_token(m, "<start_of_turn>")) return g_names[TMPL_GEMMA];
    if (has_special_token(m, "<|start_header_id|>")) return g_names[TMPL_LLAMA3];
    return g_names[TMPL_CHATML];
}

/* ------------------------------------------------------- string builder */

typedef struct {
    char *buf; /* [cap] NUL-terminated text */
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) { b->oom = true; return; }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Appends s without leading/trailing whitespace (llama.cpp's trim). */
static void sb_trim(sbuf *b, const char *s) {
    size_t n = strlen(s), a = 0;
    while (a < n && isspace((unsigned char)s[a])) a++;
    while (n > a && isspace((unsigned char)s[n - 1])) n--;
    sb_put(b, s + a, n - a);
}

/* ------------------------------------------------------------ formatting */

static void fmt_chatml(sbuf *b, const sf_chat_message *m, int n, bool add_ass) {
    for (int i = 0; i < n; i++) {
        sb_str(b, "<|im_start|>");
        sb_str(b, m[i].role);
        sb_str(b, "\n");
        sb_str(b, m[i].content);
        sb_str(b, "<|im_end|>\n");
    }
    if (add_ass) sb_str(b, "<|im_start|>assistant\n");
}

/* llama2 family; like llama.cpp there is no opening <s> (the tokenizer adds
 * BOS) and no assistant opening (the prompt already ends in [/INST]). */
static void fmt_llama2(sbuf *b, tmpl_kind k, const sf_chat_message *m, int n) {
    bool sys_tags = k != TMPL_LLAMA2;
    bool bos_inside = k == TMPL_LLAMA2_SYS_BOS;
    bool strip = k == TMPL_LLAMA2_SYS_STRIP;
    bool inside_turn = true;
    sb_str(b, "[INST] ");
    for (int i = 0; i < n; i++) {
        void (*put)(sbuf *, const char *) = strip ? sb_trim : sb_str;
        if (!inside_turn) {
            inside_turn = true;
            sb_str(b, bos_inside ? "<s>[INST] " : "[INST] ");
        }
        if (strcmp(m[i].role, "system") == 0) {
            if (sys_tags) {
                sb_str(b, "<<SYS>>\n");
                put(b, m[i].content);
                sb_str(b, "\n<</SYS>>\n\n");
            } else {
                put(b, m[i].content);
                sb_str(b, "\n");
            }
        } else if (strcmp(m[i].role, "user") == 0) {
            put(b, m[i].content);
            sb_str(b, " [/INST]");
        } else {
            put(b, m[i].content);
            sb_str(b, "</s>");
            inside_turn = false;
        }
    }
}

static void fmt_llama3(sbuf *b, const sf_chat_message *m, int n, bool add_ass) {
    for (int i = 0; i < n; i++) {
        sb_str(b, "<|start_header_id|>");
        sb_str(b, m[i].role);
        sb_str(b, "<|end_header_id|>\n\n");
        sb_trim(b, m[i].content);
        sb_str(b, "<|eot_id|>");
    }
    if (add_ass) sb_str(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Gemma has no system role: system texts are trimmed, concatenated and put
 * at the start of the next user turn; "assistant" is spelled "model". */
static void fmt_gemma(sbuf *b, const sf_chat_message *m, int n, bool add_ass) {
    sbuf sys = {0};
    for (int i = 0; i < n; i++) {
        if (strcmp(m[i].role, "system") == 0) {
            sb_trim(&sys, m[i].content);
            if (sys.oom) b->oom = true;
            continue;
        }
        bool model = strcmp(m[i].role, "assistant") == 0;
        sb_str(b, "<start_of_turn>");
        sb_str(b, model ? "model" : m[i].role);
        sb_str(b, "\n");
        if (sys.len > 0 && !model && strcmp(m[i].role, "model") != 0) {
            sb_put(b, sys.buf, sys.len);
            sb_str(b, "\n\n");
            sys.len = 0;
        }
        sb_trim(b, m[i].content);
        sb_str(b, "<end_of_turn>\n");
    }
    free(sys.buf);
    if (add_ass) sb_str(b, "<start_of_turn>model\n");
}

static void fmt_zephyr(sbuf *b, const sf_chat_message *m, int n, bool add_ass) {
    for (int i = 0; i < n; i++) {
        sb_str(b, "<|");
        sb_str(b, m[i].role);
        sb_str(b, "|>\n");
        sb_str(b, m[i].content);
        sb_str(b, "<|endoftext|>\n");
    }
    if (add_ass) sb_str(b, "<|assistant|>\n");
}

int sf_chat_apply(const sf_model *model, const char *name, const sf_chat_message *msgs, int n,
                  bool add_assistant, char **out) {
    if (!out) return sf_fail(SF_ERR_ARG, "chat: NULL output pointer");
    *out = NULL;
    if (n < 0 || (n > 0 && !msgs)) return sf_fail(SF_ERR_ARG, "chat: bad message list (n = %d)", n);
    if (!name) name = sf_chat_template_detect(model);
    int k = kind_from_name(name);
    if (k < 0)
        return sf_fail(SF_ERR_ARG,
                       "unknown chat template '%s' (known: chatml, llama2, llama2-sys, "
                       "llama2-sys-bos, llama2-sys-strip, llama3, gemma, zephyr)",
                       name);
    /* NULL content counts as empty; a NULL role is an error */
    sf_chat_message *m = malloc((size_t)(n > 0 ? n : 1) * sizeof *m);
    if (!m) return sf_fail(SF_ERR_NOMEM, "chat: out of memory");
    for (int i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].role[0]) {
            free(m);
            return sf_fail(SF_ERR_ARG, "chat: message %d has no role", i);
        }
        m[i].role = msgs[i].role;
        m[i].content = msgs[i].content ? msgs[i].content : "";
    }
    sbuf b = {0};
    sb_put(&b, "", 0); /* an empty conversation still yields "" */
    switch ((tmpl_kind)k) {
    case TMPL_CHATML: fmt_chatml(&b, m, n, add_assistant); break;
    case TMPL_LLAMA2:
    case TMPL_LLAMA2_SYS:
    case TMPL_LLAMA2_SYS_BOS:
    case TMPL_LLAMA2_SYS_STRIP: fmt_llama2(&b, (tmpl_kind)k, m, n); break;
    case TMPL_LLAMA3: fmt_llama3(&b, m, n, add_assistant); break;
    case TMPL_GEMMA: fmt_gemma(&b, m, n, add_assistant); break;
    case TMPL_ZEPHYR: fmt_zephyr(&b, m, n, add_assistant); break;
    case TMPL_COUNT: break;
    }
    free(m);
    if (b.oom) {
        free(b.buf);
        return sf_fail(SF_ERR_NOMEM, "chat: out of memory formatting %d messages", n);
    }
    *out = b.buf;
    return SF_OK;
}
