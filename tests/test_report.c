/* FFN Fusion analysis report: every file is written into the folder (which
 * is created), the PNGs decode with libpng at sane sizes, the heatmap uses
 * the whole log colour range and grey for NaN, the JSON parses with jansson
 * and holds the values (NaN -> null), the CSVs have the right shape, errors
 * for bad arguments and an unusable folder, and no temporary file is left.
 * Set SF_TEST_REPORT_KEEP=DIR to also keep a 30-layer example in DIR. */
#include "testutil.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fusion/report_internal.h"
#include "sparsefuse.h"
#include "sparsefuse_fusion.h"

static const char *const FILES[] = {
    SF_REPORT_JSON,       SF_REPORT_CSV_BLOCKS, SF_REPORT_CSV_FFN,        SF_REPORT_CSV_IMPORTANCE,
    SF_REPORT_PNG_BLOCKS, SF_REPORT_PNG_FFN,    SF_REPORT_PNG_ATTN,       SF_REPORT_PNG_IMPORTANCE,
    SF_REPORT_HTML,
};
#define N_FILES (int)(sizeof FILES / sizeof FILES[0])

/* ---- a synthetic analysis: a paper-like picture with NaNs ---- */
typedef struct {
    sf_analysis a;
    float *buf;
} synth;

/* layers [free_first, free_last] have no attention (-1: none) */
static void synth_make(synth *s, int n, int free_first, int free_last) {
    size_t nn = (size_t)n * n;
    s->buf = malloc((2 * nn + 6 * (size_t)n) * sizeof(float));
    assert_non_null(s->buf);
    float *p = s->buf;
    s->a = (sf_analysis){.n_layer = n, .n_tokens = 4096, .model = "synthetic<&>.gguf"};
    s->a.dep_block = p, p += nn;
    s->a.dep_ffn = p, p += nn;
    s->a.block_cos = p, p += n;
    s->a.attn_cos = p, p += n;
    s->a.block_kl = p, p += n;
    s->a.attn_kl = p, p += n;
    s->a.h_ratio = p, p += n;
    s->a.ffn_h_ratio = p;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float v = NAN, f = NAN;
            if (i < j) {
                int d = j - i;
                v = 0.01f + 0.4f * expf(-(float)(d - 1) / 2.0f); /* sequential band */
                if (i == 0 || i == 5) v = 0.6f + 0.01f * (float)j; /* crucial early blocks */
                if (j >= n - 2) v += 0.2f;                         /* late sinks */
                f = v * 0.8f;
                if (free_first >= 0 && i >= free_first && j <= free_last) f = v = 1e-3f * (float)(1 + d % 3);
            }
            s->a.dep_block[(size_t)i * n + j] = v;
            s->a.dep_ffn[(size_t)i * n + j] = f;
        }
    if (n > 4) { /* missing values inside the defined triangle */
        s->a.dep_block[1 * n + 3] = NAN;
        s->a.dep_ffn[2 * n + 4] = NAN;
    }
    for (int l = 0; l < n; l++) {
        int nofree = free_first < 0 || l < free_first || l > free_last;
        s->a.block_cos[l] = 0.05f + 0.5f * expf(-(float)l / 3.0f) + (l == n - 1 ? 0.3f : 0.0f);
        s->a.attn_cos[l] = nofree ? 0.01f + 0.2f * expf(-(float)l / 4.0f) + 0.005f * (float)(l % 4) : NAN;
        s->a.block_kl[l] = 0.02f + 3.0f * expf(-(float)l / 2.0f) + (l == n - 1 ? 1.0f : 0.0f);
        s->a.attn_kl[l] = nofree ? 1e-4f + 0.5f * expf(-(float)l / 2.5f) : NAN;
        s->a.h_ratio[l] = 0.1f + 0.8f * expf(-(float)l / 5.0f);
        s->a.ffn_h_ratio[l] = 0.08f + 0.6f * expf(-(float)l / 5.0f);
    }
    s->a.block_kl[1] = NAN; /* a measure that was not computed */
}

static void synth_free(synth *s) { free(s->buf); }

/* ---- file checks ---- */
static const char *in_dir(const char *dir, const char *name) {
    static char p[1024];
    snprintf(p, sizeof p, "%.900s/%.100s", dir, name);
    return p;
}

/* every report file exists and nothing else is in the folder */
static void check_files(const char *dir) {
    for (int k = 0; k < N_FILES; k++) {
        struct stat st;
        assert_int_equal(stat(in_dir(dir, FILES[k]), &st), 0);
        assert_true(st.st_size > 0);
    }
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            int known = 0;
            for (int k = 0; k < N_FILES; k++) known |= !strcmp(e->d_name, FILES[k]);
            if (!known) fail_msg("unexpected file %s (a temporary left behind?)", e->d_name);
            n++;
        }
    closedir(d);
    assert_int_equal(n, N_FILES);
}

/* Decodes as RGB; checks the size; returns the pixels (free them). */
static uint8_t *check_png(const char *path, int *w, int *h) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&img, path));
    img.format = PNG_FORMAT_RGB;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
    assert_non_null(px);
    assert_true(png_image_finish_read(&img, NULL, px, 0, NULL));
    *w = (int)img.width;
    *h = (int)img.height;
    assert_in_range(*w, 300, 4000);
    assert_in_range(*h, 300, 4000);
    return px;
}

static int has_colour(const uint8_t *px, int w, int h, sf_rgb c) {
    for (size_t k = 0; k < (size_t)w * h; k++)
        if (px[3 * k] == c.r && px[3 * k + 1] == c.g && px[3 * k + 2] == c.b) return 1;
    return 0;
}

static void check_pngs(const char *dir) {
    for (int k = 0; k < N_FILES; k++) {
        if (!strstr(FILES[k], ".png")) continue;
        int w, h;
        uint8_t *px = check_png(in_dir(dir, FILES[k]), &w, &h);
        if (strstr(FILES[k], "heatmap")) {
            /* the smallest and largest M use the ends of the colour scale;
             * the NaN cell is the neutral grey */
            assert_true(has_colour(px, w, h, sf_viridis(0)));
            assert_true(has_colour(px, w, h, sf_viridis(1)));
            assert_true(has_colour(px, w, h, (sf_rgb){150, 150, 150}));
        }
        free(px);
    }
}

static json_t *load_json(const char *dir) {
    json_error_t err;
    json_t *root = json_load_file(in_dir(dir, SF_REPORT_JSON), 0, &err);
    if (!root) fail_msg("analysis.json: %s (line %d)", err.text, err.line);
    return root;
}

static void expect_num(json_t *v, float want) {
    if (isnan(want)) {
        assert_true(json_is_null(v));
        return;
    }
    assert_true(json_is_real(v));
    assert_true((float)json_real_value(v) == want); /* shortest round-trip text */
}

static void check_json(const char *dir, const sf_analysis *a) {
    int n = a->n_layer;
    json_t *root = load_json(dir);
    assert_int_equal(json_integer_value(json_object_get(root, "n_layer")), n);
    assert_int_equal(json_integer_value(json_object_get(root, "n_tokens")), a->n_tokens);
    assert_string_equal(json_string_value(json_object_get(root, "model")), a->model);
    const char *mats[2] = {"dep_block", "dep_ffn"};
    const float *mv[2] = {a->dep_block, a->dep_ffn};
    for (int m = 0; m < 2; m++) {
        json_t *rows = json_object_get(root, mats[m]);
        assert_int_equal(json_array_size(rows), n);
        for (int i = 0; i < n; i++) {
            json_t *row = json_array_get(rows, i);
            assert_int_equal(json_array_size(row), n);
            for (int j = 0; j < n; j++) expect_num(json_array_get(row, j), mv[m][(size_t)i * n + j]);
        }
    }
    const char *vecs[6] = {"block_cos", "attn_cos", "block_kl", "attn_kl", "h_ratio", "ffn_h_ratio"};
    const float *vv[6] = {a->block_cos, a->attn_cos, a->block_kl, a->attn_kl, a->h_ratio, a->ffn_h_ratio};
    for (int k = 0; k < 6; k++) {
        json_t *arr = json_object_get(root, vecs[k]);
        assert_int_equal(json_array_size(arr), n);
        for (int l = 0; l < n; l++) expect_num(json_array_get(arr, l), vv[k][l]);
    }
    json_decref(root);
}

/* rows x fields of a CSV file; every row must have the same field count */
static void csv_shape(const char *path, int *rows, int *fields) {
    size_t len;
    char *text = sf_test_read_file(path, &len);
    assert_non_null(text);
    *rows = 0;
    *fields = -1;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        assert_non_null(end); /* every row ends with a newline */
        int f = 1;
        for (char *p = line; p < end; p++) f += *p == ',';
        if (*fields < 0) *fields = f;
        assert_int_equal(f, *fields);
        (*rows)++;
        line = end + 1;
    }
    free(text);
}

static void check_csv(const char *dir, const sf_analysis *a) {
    int n = a->n_layer, r, f;
    csv_shape(in_dir(dir, SF_REPORT_CSV_BLOCKS), &r, &f);
    assert_int_equal(r, n + 1);
    assert_int_equal(f, n + 1);
    csv_shape(in_dir(dir, SF_REPORT_CSV_FFN), &r, &f);
    assert_int_equal(r, n + 1);
    assert_int_equal(f, n + 1);
    csv_shape(in_dir(dir, SF_REPORT_CSV_IMPORTANCE), &r, &f);
    assert_int_equal(r, n + 1);
    assert_int_equal(f, 7);

    /* row 0 of the block matrix: "0" then an empty cell (M[0][0] is NaN),
     * then M[0][1] as the shortest text of the float */
    size_t len;
    char *text = sf_test_read_file(in_dir(dir, SF_REPORT_CSV_BLOCKS), &len);
    assert_non_null(text);
    char want[64], v[32];
    sf_report_fmt_float(v, a->dep_block[1]);
    snprintf(want, sizeof want, "\n0,,%s,", v);
    assert_non_null(strstr(text, want));
    free(text);
    text = sf_test_read_file(in_dir(dir, SF_REPORT_CSV_IMPORTANCE), &len);
    assert_non_null(text);
    const char *head = "layer,block_cos,attn_cos,block_kl,attn_kl,h_ratio,ffn_h_ratio\n";
    assert_true(!strncmp(text, head, strlen(head)));
    free(text);
}

static void check_html(const char *dir) {
    size_t len;
    char *html = sf_test_read_file(in_dir(dir, SF_REPORT_HTML), &len);
    assert_non_null(html);
    for (int k = 0; k < N_FILES; k++)
        if (strstr(FILES[k], ".png")) {
            char want[128];
            snprintf(want, sizeof want, "<img src=\"%s\"", FILES[k]);
            assert_non_null(strstr(html, want));
        }
    assert_null(strstr(html, "http://"));  /* self-contained */
    assert_null(strstr(html, "https://"));
    assert_non_null(strstr(html, "synthetic&lt;&amp;&gt;.gguf")); /* escaped */
    assert_null(strstr(html, "synthetic<&>"));
    free(html);
}

static void write_and_check(int n, int free_first, int free_last, const char *dir_arg) {
    char dir[1024]; /* dir_arg may be in_dir's buffer */
    snprintf(dir, sizeof dir, "%s", dir_arg);
    synth s;
    synth_make(&s, n, free_first, free_last);
    int rc = sf_analysis_write_report(&s.a, dir);
    if (rc) fail_msg("write_report: %s", sf_last_error());
    check_files(dir);
    check_pngs(dir);
    check_json(dir, &s.a);
    check_csv(dir, &s.a);
    check_html(dir);
    synth_free(&s);
}

/* ---- tests ---- */
static void test_six_layers(void **state) {
    (void)state;
    write_and_check(6, 3, 4, in_dir(sf_test_scratch(), "six"));
}

static void test_thirty_layers_nested_dir(void **state) {
    (void)state;
    /* the folder and its parent are created */
    write_and_check(30, 18, 25, in_dir(sf_test_scratch(), "a/b/thirty"));
    const char *keep = getenv("SF_TEST_REPORT_KEEP");
    if (keep && *keep) {
        synth s;
        synth_make(&s, 30, 18, 25);
        s.a.model = "made-up-30-layers.gguf";
        assert_int_equal(sf_analysis_write_report(&s.a, keep), SF_OK);
        synth_free(&s);
    }
}

static void test_eighty_layers_no_attn_free(void **state) {
    (void)state;
    write_and_check(80, -1, -1, in_dir(sf_test_scratch(), "eighty"));
}

static void test_rewrite_same_dir(void **state) {
    (void)state;
    write_and_check(6, -1, -1, sf_test_scratch());
    write_and_check(7, 2, 5, sf_test_scratch()); /* replaces every file */
}

static void test_all_nan(void **state) {
    (void)state;
    synth s;
    synth_make(&s, 4, -1, -1);
    for (int k = 0; k < 4 * 4; k++) s.a.dep_block[k] = s.a.dep_ffn[k] = NAN;
    for (int l = 0; l < 4; l++) s.a.block_kl[l] = s.a.attn_kl[l] = NAN;
    assert_int_equal(sf_analysis_write_report(&s.a, sf_test_scratch()), SF_OK);
    check_files(sf_test_scratch());
    json_t *root = load_json(sf_test_scratch());
    assert_true(json_is_null(json_array_get(json_array_get(json_object_get(root, "dep_ffn"), 0), 1)));
    json_decref(root);
    synth_free(&s);
}

static void test_errors(void **state) {
    (void)state;
    synth s;
    synth_make(&s, 6, -1, -1);
    assert_int_equal(sf_analysis_write_report(NULL, sf_test_scratch()), SF_ERR_ARG);
    assert_int_equal(sf_analysis_write_report(&s.a, NULL), SF_ERR_ARG);
    assert_int_equal(sf_analysis_write_report(&s.a, ""), SF_ERR_ARG);
    s.a.h_ratio = NULL;
    assert_int_equal(sf_analysis_write_report(&s.a, sf_test_scratch()), SF_ERR_ARG);
    assert_non_null(strstr(sf_last_error(), "h_ratio"));
    synth_free(&s);
    synth_make(&s, 6, -1, -1);
    s.a.n_layer = 0;
    assert_int_equal(sf_analysis_write_report(&s.a, sf_test_scratch()), SF_ERR_ARG);
    s.a.n_layer = 6;

    /* a folder that cannot be made (its "parent" is a file; works as root too) */
    char file[1024];
    snprintf(file, sizeof file, "%s", in_dir(sf_test_scratch(), "plainfile"));
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    char bad[1100];
    snprintf(bad, sizeof bad, "%s/sub", file);
    assert_int_equal(sf_analysis_write_report(&s.a, bad), SF_ERR_IO);
    assert_non_null(strstr(sf_last_error(), "plainfile"));
    /* DIR itself is a file */
    assert_int_equal(sf_analysis_write_report(&s.a, file), SF_ERR_IO);

    /* a folder without write permission (not for root, who may write anyway) */
    if (geteuid() != 0) {
        char ro[1024];
        snprintf(ro, sizeof ro, "%s/readonly", sf_test_scratch());
        assert_int_equal(mkdir(ro, 0500), 0);
        assert_int_equal(sf_analysis_write_report(&s.a, ro), SF_ERR_IO);
        DIR *d = opendir(ro);
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d))) assert_true(!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."));
        closedir(d);
        chmod(ro, 0700);
    }
    synth_free(&s);
}

/* internals: the log colour scale and tick choice */
static void test_scales(void **state) {
    (void)state;
    assert_true(fabs(sf_log_pos(1e-3, 1e-3, 1e-1) - 0.0) < 1e-12);
    assert_true(fabs(sf_log_pos(1e-2, 1e-3, 1e-1) - 0.5) < 1e-12);
    assert_true(fabs(sf_log_pos(1e-1, 1e-3, 1e-1) - 1.0) < 1e-12);
    assert_true(sf_log_pos(0, 1e-3, 1e-1) == 0);
    assert_true(sf_log_pos(NAN, 1e-3, 1e-1) == 0);
    double t[32];
    int n = sf_report_log_ticks(2e-4, 0.5, t, 32);
    assert_int_equal(n, 3); /* 1e-3, 1e-2, 1e-1 */
    assert_true(fabs(t[0] - 1e-3) < 1e-15 && fabs(t[2] - 0.1) < 1e-15);
    n = sf_report_log_ticks(0.15, 0.6, t, 32); /* no power of ten inside: 2x and 5x */
    assert_int_equal(n, 2);
    assert_true(fabs(t[0] - 0.2) < 1e-12 && fabs(t[1] - 0.5) < 1e-12);
    char s[32];
    sf_report_fmt_tick(s, 1e-4);
    assert_string_equal(s, "1e-4");
    sf_report_fmt_tick(s, 2.5e-5);
    assert_string_equal(s, "2.5e-5");
    sf_report_fmt_tick(s, 50000);
    assert_string_equal(s, "5e4");
    sf_report_fmt_tick(s, 0.05);
    assert_string_equal(s, "0.05");
    sf_report_fmt_float(s, 0.1f);
    assert_string_equal(s, "0.1");
    sf_report_fmt_float(s, NAN);
    assert_string_equal(s, "");
    assert_int_equal(sf_text_w("ab", 2), 22);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scales),
        sf_test_in_scratch(test_six_layers),
        sf_test_in_scratch(test_thirty_layers_nested_dir),
        sf_test_in_scratch(test_eighty_layers_no_attn_free),
        sf_test_in_scratch(test_rewrite_same_dir),
        sf_test_in_scratch(test_all_nan),
        sf_test_in_scratch(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
