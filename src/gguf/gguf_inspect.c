/* sf_inspect_file: validates a GGUF file and prints a human-readable summary
 * (file, architecture and hyperparameters, tokenizer, tensor types, tensor
 * table; every metadata key on request). */
#include "gguf/gguf_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"

/* Prints s[len] quoted, escaping control bytes, at most max bytes of it. */
static void print_quoted(FILE *out, const char *s, uint64_t len, size_t max) {
    fputc('"', out);
    for (uint64_t i = 0; i < len; i++) {
        if (i == max) { fputs("...", out); break; }
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') fprintf(out, "\\%c", ch);
        else if (ch == '\n') fputs("\\n", out);
        else if (ch < 0x20 || ch == 0x7f) fprintf(out, "\\x%02x", ch);
        else fputc(ch, out);
    }
    fputc('"', out);
}

/* Names from the file, with control bytes replaced (no terminal escapes). */
static const char *safe(const char *s, char *buf, size_t cap) {
    size_t n = 0;
    for (; s[n] && n + 1 < cap; n++) buf[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    buf[n] = '\0';
    return buf;
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

static void print_str_key(FILE *out, const sf_gguf *g, const char *label, const char *key) {
    sf_gguf_str s;
    if (sf_gguf_get_str(g, key, &s) == SF_OK) {
        fprintf(out, "  %-16s ", label);
        print_quoted(out, s.ptr, s.len, 200);
        fputc('\n', out);
    }
}

/* "bos 1 "<s>"": the id and, when the vocabulary has it, its text. */
static void print_special(FILE *out, const sf_gguf *g, const char *label, const char *key, uint64_t n_vocab,
                          const sf_gguf_str *tokens) {
    uint32_t id;
    int rc = sf_gguf_get_u32(g, key, &id);
    if (rc == SF_ERR_RANGE) return;
    if (rc != SF_OK) { fprintf(out, "  %-16s (invalid: %s)\n", label, sf_last_error()); return; }
    fprintf(out, "  %-16s %u", label, id);
    if (tokens && id < n_vocab) {
        fputc(' ', out);
        print_quoted(out, tokens[id].ptr, tokens[id].len, 64);
    } else if (tokens) {
        fputs(" (out of vocabulary range)", out);
    }
    fputc('\n', out);
}

static void print_tokenizer(FILE *out, const sf_gguf *g) {
    fputs("tokenizer:\n", out);
    print_str_key(out, g, "model", "tokenizer.ggml.model");
    print_str_key(out, g, "pre", "tokenizer.ggml.pre");
    uint64_t n_vocab = 0, n_merges = 0;
    const sf_gguf_str *tokens = NULL, *merges = NULL;
    if (sf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &n_vocab, &tokens) == SF_OK)
        fprintf(out, "  %-16s %" PRIu64 " tokens\n", "vocab", n_vocab);
    else
        tokens = NULL;
    if (sf_gguf_get_arr_str(g, "tokenizer.ggml.merges", &n_merges, &merges) == SF_OK)
        fprintf(out, "  %-16s %" PRIu64 "\n", "merges", n_merges);
    print_special(out, g, "bos", "tokenizer.ggml.bos_token_id", n_vocab, tokens);
    print_special(out, g, "eos", "tokenizer.ggml.eos_token_id", n_vocab, tokens);
    print_special(out, g, "eot", "tokenizer.ggml.eot_token_id", n_vocab, tokens);
    print_special(out, g, "unknown", "tokenizer.ggml.unknown_token_id", n_vocab, tokens);
    print_special(out, g, "padding", "tokenizer.ggml.padding_token_id", n_vocab, tokens);
    bool b;
    if (sf_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == SF_OK)
        fprintf(out, "  %-16s %s\n", "add_bos", b ? "true" : "false");
    if (sf_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b) == SF_OK)
        fprintf(out, "  %-16s %s\n", "add_eos", b ? "true" : "false");
    sf_gguf_str tpl;
    if (sf_gguf_get_str(g, "tokenizer.chat_template", &tpl) == SF_OK) {
        const char *nl = memchr(tpl.ptr, '\n', (size_t)tpl.len);
        uint64_t first = nl ? (uint64_t)(nl - tpl.ptr) : tpl.len;
        fprintf(out, "  %-16s ", "chat_template");
        print_quoted(out, tpl.ptr, first, 120);
        fprintf(out, "%s (%" PRIu64 " bytes)\n", first < tpl.len ? " ..." : "", tpl.len);
    }
}

static void print_shape(FILE *out, const sf_gguf_tensor *t) {
    char buf[128];
    int n = snprintf(buf, sizeof buf, "{");
    for (int d = 0; d < t->n_dims; d++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%" PRId64, d ? ", " : "", t->ne[d]);
    snprintf(buf + n, sizeof buf - (size_t)n, "}");
    fprintf(out, "%-28s", buf);
}

static void print_tensors(FILE *out, const sf_gguf *g) {
    enum { N_IDS = 64 };
    int64_t count[N_IDS] = {0};
    uint64_t bytes[N_IDS] = {0};
    uint64_t total_bytes = 0;
    int64_t total_params = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const sf_gguf_tensor *t = &g->tensors[i];
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; /* validated <= INT64_MAX */
        count[(int)t->type % N_IDS]++;
        bytes[(int)t->type % N_IDS] += t->nbytes;
        total_bytes += t->nbytes;
        total_params = n > INT64_MAX - total_params ? INT64_MAX : total_params + n;
    }
    fputs("tensor types:\n", out);
    for (int ty = 0; ty < N_IDS; ty++)
        if (count[ty])
            fprintf(out, "  %-8s %6" PRId64 " tensors %12.2f MiB\n", sf_gguf_type_str(ty), count[ty], mib(bytes[ty]));
    fprintf(out, "parameters: %" PRId64 " (%.2f M), tensor data %" PRIu64 " bytes (%.2f MiB, %.3f bits/weight)\n",
            total_params, (double)total_params / 1e6, total_bytes, mib(total_bytes),
            total_params ? 8.0 * (double)total_bytes / (double)total_params : 0.0);
    fprintf(out, "\ntensors (%" PRId64 "):\n", g->n_tensors);
    fprintf(out, "  %5s  %-40s %-8s %-28s %14s %12s\n", "#", "name", "type", "shape", "offset", "bytes");
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const sf_gguf_tensor *t = &g->tensors[i];
        char nm[256];
        fprintf(out, "  %5" PRId64 "  %-40s %-8s ", i, safe(t->name, nm, sizeof nm), sf_gguf_type_str((int)t->type));
        print_shape(out, t);
        fprintf(out, " %14" PRIu64 " %12zu\n", (uint64_t)g->data_offset + t->offset, t->nbytes);
    }
}

int sf_inspect_file(const char *path, FILE *out, bool all_metadata) {
    if (!out) return sf_fail(SF_ERR_ARG, "sf_inspect_file: out is NULL");
    sf_gguf *g;
    int rc = sf_gguf_open(path, &g);
    if (rc) return rc;
    fprintf(out, "file: %s\n", path);
    fprintf(out, "GGUF v%u, alignment %zu, %zu bytes (%.2f MiB), data section at %zu\n", g->version, g->alignment,
            g->size, mib(g->size), g->data_offset);
    fprintf(out, "%" PRId64 " metadata keys, %" PRId64 " tensors\n\n", g->n_kv, g->n_tensors);

    char val[1024], key[256];
    sf_gguf_str arch = {"", 0};
    sf_gguf_get_str(g, "general.architecture", &arch);
    fputs("model:\n", out);
    print_str_key(out, g, "architecture", "general.architecture");
    print_str_key(out, g, "name", "general.name");
    int64_t ft = sf_gguf_find_key(g, "general.file_type");
    if (ft >= 0) fprintf(out, "  %-16s %s\n", "file_type", sf_gguf_kv_format(g, ft, val, sizeof val));

    fputs("hyperparameters:\n", out);
    for (int64_t i = 0; arch.len && i < g->n_kv; i++) {
        const char *k = g->kv[i].key;
        if (strlen(k) > arch.len && memcmp(k, arch.ptr, (size_t)arch.len) == 0 && k[arch.len] == '.')
            fprintf(out, "  %-48s %s\n", safe(k, key, sizeof key), sf_gguf_kv_format(g, i, val, sizeof val));
    }
    print_tokenizer(out, g);

    if (all_metadata) {
        fputs("\nmetadata:\n", out);
        for (int64_t i = 0; i < g->n_kv; i++)
            fprintf(out, "  %-48s %-4s %s\n", safe(g->kv[i].key, key, sizeof key), sf_gguf_vtype_name(g->kv[i].type),
                    sf_gguf_kv_format(g, i, val, sizeof val));
    }
    fputc('\n', out);
    print_tensors(out, g);
    sf_gguf_close(g);
    return SF_OK;
}
