/* The KL-divergence base file (llama.cpp's --kl-divergence-base layout,
 * native little-endian): written to a temporary name and renamed when
 * complete; read back with its size checked against the header. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "eval/eval_internal.h"

static const char k_magic[8] = {'_', 'l', 'o', 'g', 'i', 't', 's', '_'};

int sf_kld_writer_open(sf_kld_writer *w, const char *path, int32_t n_ctx, int32_t n_vocab,
                       int32_t n_chunk, const int32_t *tokens) {
    memset(w, 0, sizeof *w);
    size_t n = strlen(path);
    w->path = strdup(path);
    w->tmp = malloc(n + 16);
    if (!w->path || !w->tmp) {
        sf_kld_writer_abort(w);
        return sf_fail(SF_ERR_NOMEM, "out of memory");
    }
    memcpy(w->tmp, path, n);
    memcpy(w->tmp + n, ".tmp.XXXXXX", 12);
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        int e = errno;
        free(w->tmp); /* nothing was created: do not unlink */
        w->tmp = NULL;
        sf_kld_writer_abort(w);
        return sf_fail(SF_ERR_IO, "cannot create a temporary file beside %s: %s", path, strerror(e));
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600 */
    w->f = fdopen(fd, "wb");
    if (!w->f) {
        close(fd);
        sf_kld_writer_abort(w);
        return sf_fail(SF_ERR_IO, "cannot open temporary file for %s", path);
    }
    int32_t head[3] = {n_ctx, n_vocab, n_chunk};
    size_t nt = (size_t)n_ctx * (size_t)n_chunk;
    if (fwrite(k_magic, 1, 8, w->f) != 8 || fwrite(head, sizeof head, 1, w->f) != 1 ||
        fwrite(tokens, sizeof *tokens, nt, w->f) != nt) {
        int e = errno;
        sf_kld_writer_abort(w);
        return sf_fail(SF_ERR_IO, "writing %s: %s", path, strerror(e));
    }
    return SF_OK;
}

int sf_kld_writer_put(sf_kld_writer *w, const uint16_t *data, size_t n) {
    if (fwrite(data, sizeof *data, n, w->f) != n) {
        int e = errno;
        return sf_fail(SF_ERR_IO, "writing %s: %s", w->path, strerror(e));
    }
    return SF_OK;
}

int sf_kld_writer_commit(sf_kld_writer *w) {
    int rc = SF_OK;
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0) {
        rc = sf_fail(SF_ERR_IO, "writing %s: %s", w->path, strerror(errno));
    }
    if (fclose(w->f) != 0 && rc == SF_OK)
        rc = sf_fail(SF_ERR_IO, "closing %s: %s", w->path, strerror(errno));
    w->f = NULL;
    if (rc == SF_OK && rename(w->tmp, w->path) != 0)
        rc = sf_fail(SF_ERR_IO, "renaming %s to %s: %s", w->tmp, w->path, strerror(errno));
    if (rc != SF_OK) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    w->tmp = w->path = NULL;
    return rc;
}

void sf_kld_writer_abort(sf_kld_writer *w) {
    if (w->f) fclose(w->f);
    if (w->tmp) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    memset(w, 0, sizeof *w);
}

int sf_kld_reader_open(sf_kld_reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->f = fopen(path, "rb");
    if (!r->f) return sf_fail(SF_ERR_IO, "cannot open KL-divergence base %s: %s", path, strerror(errno));
    char magic[8];
    int32_t head[3];
    if (fread(magic, 1, 8, r->f) != 8 || memcmp(magic, k_magic, 8) != 0) {
        sf_kld_reader_close(r);
        return sf_fail(SF_ERR_FORMAT, "%s is not a KL-divergence base file (no _logits_ magic)", path);
    }
    if (fread(head, sizeof head, 1, r->f) != 1) {
        sf_kld_reader_close(r);
        return sf_fail(SF_ERR_FORMAT, "%s: truncated header", path);
    }
    r->n_ctx = head[0];
    r->n_vocab = head[1];
    r->n_chunk = head[2];
    if (r->n_ctx < 4 || r->n_ctx > (1 << 24) || r->n_vocab < 1 || r->n_vocab > (1 << 24) ||
        r->n_chunk < 1 || r->n_chunk > (1 << 24)) {
        int32_t c = r->n_ctx, v = r->n_vocab, k = r->n_chunk;
        sf_kld_reader_close(r);
        return sf_fail(SF_ERR_FORMAT, "%s: implausible header (n_ctx %d, n_vocab %d, n_chunk %d)",
                       path, c, v, k);
    }
    size_t nt = (size_t)r->n_ctx * (size_t)r->n_chunk;
    size_t n_score = (size_t)(r->n_ctx - 1 - r->n_ctx / 2);
    uint64_t want = 8 + sizeof head + nt * sizeof(int32_t) +
                    (uint64_t)r->n_chunk * n_score * sf_kld_row_len(r->n_vocab) * sizeof(uint16_t);
    struct stat st = {0};
    if (fstat(fileno(r->f), &st) != 0 || (uint64_t)st.st_size != want) {
        uint64_t have = (uint64_t)st.st_size;
        sf_kld_reader_close(r);
        return sf_fail(SF_ERR_FORMAT,
                       "%s: size %llu bytes, but its header (n_ctx %d, n_vocab %d, %d chunks) "
                       "needs %llu (truncated or not a base file)",
                       path, (unsigned long long)have, head[0], head[1], head[2],
                       (unsigned long long)want);
    }
    r->tokens = malloc(nt * sizeof *r->tokens);
    if (!r->tokens) {
        sf_kld_reader_close(r);
        return sf_fail(SF_ERR_NOMEM, "out of memory for %zu tokens", nt);
    }
    if (fread(r->tokens, sizeof *r->tokens, nt, r->f) != nt) {
        sf_kld_reader_close(r);
        return sf_fail(SF_ERR_IO, "%s: cannot read the tokens", path);
    }
    for (size_t i = 0; i < nt; i++) {
        if (r->tokens[i] < 0 || r->tokens[i] >= r->n_vocab) {
            int32_t t = r->tokens[i];
            sf_kld_reader_close(r);
            return sf_fail(SF_ERR_FORMAT, "%s: token %zu has id %d outside the vocab", path, i, t);
        }
    }
    return SF_OK;
}

int sf_kld_reader_get(sf_kld_reader *r, uint16_t *data, size_t n) {
    if (fread(data, sizeof *data, n, r->f) != n)
        return sf_fail(SF_ERR_IO, "KL-divergence base: unexpected end of file");
    return SF_OK;
}

void sf_kld_reader_close(sf_kld_reader *r) {
    if (r->f) fclose(r->f);
    free(r->tokens);
    memset(r, 0, sizeof *r);
}

int sf_kld_base_info(const char *path, int *n_ctx, int *n_vocab, int *n_chunks) {
    if (!path) return sf_fail(SF_ERR_ARG, "KL-divergence base: NULL path");
    sf_kld_reader r;
    int rc = sf_kld_reader_open(&r, path);
    if (rc != SF_OK) return rc;
    if (n_ctx) *n_ctx = r.n_ctx;
    if (n_vocab) *n_vocab = r.n_vocab;
    if (n_chunks) *n_chunks = r.n_chunk;
    sf_kld_reader_close(&r);
    return SF_OK;
}
