/* sf_analysis_write_report: checks the analysis, creates the output folder
 * and writes every report file atomically (temp name, fsync, rename, fsync
 * of the folder), so a crash never leaves a half-written file behind. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "fusion/report_internal.h"

int sf_report_attn_free(const sf_analysis *a, int l) {
    /* both attention measures are NaN exactly when the layer has no
     * attention (one alone may be missing because it was not computed) */
    return isnan(a->attn_cos[l]) && isnan(a->attn_kl[l]);
}

static int check(const sf_analysis *a, const char *dir) {
    if (!a) return sf_fail(SF_ERR_ARG, "report: NULL analysis");
    if (!dir || !*dir) return sf_fail(SF_ERR_ARG, "report: empty output folder name");
    if (a->n_layer < 1 || a->n_layer > SF_REPORT_MAX_LAYERS)
        return sf_fail(SF_ERR_ARG, "report: n_layer %d out of range 1..%d", a->n_layer, SF_REPORT_MAX_LAYERS);
    const struct {
        const float *p;
        const char *name;
    } f[] = {{a->dep_block, "dep_block"}, {a->dep_ffn, "dep_ffn"},   {a->block_cos, "block_cos"},
             {a->attn_cos, "attn_cos"},   {a->block_kl, "block_kl"}, {a->attn_kl, "attn_kl"},
             {a->h_ratio, "h_ratio"},     {a->ffn_h_ratio, "ffn_h_ratio"}};
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
        if (!f[k].p) return sf_fail(SF_ERR_ARG, "report: analysis field %s is NULL", f[k].name);
    return SF_OK;
}

/* mkdir -p DIR */
static int make_dir(const char *dir) {
    char *p = strdup(dir);
    if (!p) return sf_fail(SF_ERR_NOMEM, "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int rc = sf_fail(SF_ERR_IO, "report: cannot create folder %s: %s", p, strerror(errno));
            free(p);
            return rc;
        }
        *s = '/';
    }
    free(p);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return sf_fail(SF_ERR_IO, "report: cannot create folder %s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0) return sf_fail(SF_ERR_IO, "report: %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return sf_fail(SF_ERR_IO, "report: %s exists and is not a folder", dir);
    return SF_OK;
}

static int write_all(int fd, const char *p, size_t n, const char *path) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return sf_fail(SF_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        p += k;
        n -= (size_t)k;
    }
    return SF_OK;
}

/* DIR/NAME <- buf */
static int write_atomic(const char *dir, const char *name, const sf_rbuf *buf) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return sf_fail(SF_ERR_ARG, "report: output folder name too long");
    return sf_report_write_file(path, buf);
}

int sf_report_write_file(const char *path, const sf_rbuf *buf) {
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return sf_fail(SF_ERR_ARG, "%s: file name too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return sf_fail(SF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = write_all(fd, buf->data ? buf->data : "", buf->len, tmp);
    if (!rc && fsync(fd) != 0) rc = sf_fail(SF_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && !rc) rc = sf_fail(SF_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = sf_fail(SF_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}

/* Makes the renames durable; failure only weakens crash safety, so ignored. */
static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

enum { F_JSON, F_CSV_BLOCKS, F_CSV_FFN, F_CSV_IMP, F_PNG_BLOCKS, F_PNG_FFN, F_PNG_ATTN, F_PNG_IMP, F_HTML };

static int build(const sf_analysis *a, int which, sf_rbuf *b) {
    switch (which) {
    case F_JSON: return sf_report_json(a, b);
    case F_CSV_BLOCKS: return sf_report_csv_matrix(a, a->dep_block, b);
    case F_CSV_FFN: return sf_report_csv_matrix(a, a->dep_ffn, b);
    case F_CSV_IMP: return sf_report_csv_importance(a, b);
    case F_PNG_BLOCKS:
        return sf_report_heatmap(a, a->dep_block, "Block dependency M[i][j]: whole blocks (attention + FFN)", b);
    case F_PNG_FFN: return sf_report_heatmap(a, a->dep_ffn, "FFN dependency M[i][j]: FFN sub-blocks", b);
    case F_PNG_ATTN: return sf_report_importance_attn(a, b);
    case F_PNG_IMP: return sf_report_importance_blocks(a, b);
    default: return sf_report_html(a, b);
    }
}

int sf_analysis_write_report(const sf_analysis *a, const char *dir) {
    int rc = check(a, dir);
    if (!rc) rc = make_dir(dir);
    if (rc) return rc;
    /* index.html last: it links to everything else */
    static const char *const names[] = {
        [F_JSON] = SF_REPORT_JSON,          [F_CSV_BLOCKS] = SF_REPORT_CSV_BLOCKS,
        [F_CSV_FFN] = SF_REPORT_CSV_FFN,    [F_CSV_IMP] = SF_REPORT_CSV_IMPORTANCE,
        [F_PNG_BLOCKS] = SF_REPORT_PNG_BLOCKS, [F_PNG_FFN] = SF_REPORT_PNG_FFN,
        [F_PNG_ATTN] = SF_REPORT_PNG_ATTN,  [F_PNG_IMP] = SF_REPORT_PNG_IMPORTANCE,
        [F_HTML] = SF_REPORT_HTML,
    };
    for (int k = 0; k <= F_HTML && !rc; k++) {
        sf_rbuf b = {0};
        rc = build(a, k, &b);
        if (!rc && b.failed) rc = sf_fail(SF_ERR_NOMEM, "report: out of memory building %s", names[k]);
        if (rc) sf_fail_context(rc, "writing %s/%s", dir, names[k]);
        else rc = write_atomic(dir, names[k], &b);
        sf_rbuf_free(&b);
    }
    sync_dir(dir);
    return rc;
}
