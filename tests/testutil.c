#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tensor/types.h"

static _Thread_local char g_path[4096];

const char *sf_test_model_path(const char *file) {
    const char *dir = getenv("SF_MODEL_DIR");
    snprintf(g_path, sizeof g_path, "%s/%s", dir && *dir ? dir : SF_SOURCE_DIR "/models", file);
    return access(g_path, R_OK) == 0 ? g_path : NULL;
}

const char *sf_test_fixture(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/tests/fixtures/%s", SF_SOURCE_DIR, name);
    return g_path;
}

const char *sf_test_shared(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/data/%s", SF_SHARED_DIR, name);
    return g_path;
}

char *sf_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return NULL; }
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); fclose(f); return NULL; }
    buf[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

uint64_t sf_test_rand_u64(uint64_t *s) {
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float sf_test_rand_f32(uint64_t *s) {
    return (float)((sf_test_rand_u64(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

int sf_test_mkdtemp(char *dir, size_t cap, const char *tag) {
    snprintf(dir, cap, "/tmp/sf_test_%s_XXXXXX", tag);
    return mkdtemp(dir) ? 0 : -1;
}

void sf_test_rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            sf_test_rm_tree(p);
        }
    closedir(d);
    rmdir(path);
}

int sf_test_run_cli(const char *subcommand, const char *const *args, char *err, size_t cap) {
    char err_path[] = "/tmp/sf_test_cli_err_XXXXXX";
    const int fe = mkstemp(err_path);
    if (fe < 0) return -1;
    const pid_t pid = fork();
    if (pid == 0) {
        const int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(fe, 2);
        const char *argv[64] = {SF_BINARY, subcommand};
        int n = 2;
        for (; args[n - 2] && n < 63; n++) argv[n] = args[n - 2];
        argv[n] = NULL;
        execv(SF_BINARY, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    if (pid > 0) waitpid(pid, &status, 0);
    close(fe);
    char *s = sf_test_read_file(err_path, NULL);
    unlink(err_path);
    snprintf(err, cap, "%s", s ? s : "");
    free(s);
    return pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char g_scratch[64];

int sf_test_scratch_setup(void **state) {
    (void)state;
    return sf_test_mkdtemp(g_scratch, sizeof g_scratch, "scratch");
}

int sf_test_scratch_teardown(void **state) {
    (void)state;
    sf_test_rm_tree(g_scratch);
    return 0;
}

const char *sf_test_scratch(void) { return g_scratch; }

const char *sf_test_scratch_path(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_scratch, name);
    return p[k];
}

int sf_test_scratch_entries(void) {
    DIR *d = opendir(g_scratch);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

uint8_t *sf_test_quant_rows(int type, int64_t n, int n_rows, float bias, uint64_t *rng) {
    const size_t rb = sf_type_row_bytes((sf_type)type, n);
    uint8_t *w = malloc(rb * (size_t)n_rows);
    float *x = malloc(sizeof(float) * (size_t)n); /* [n] */
    assert_true(w && x);
    for (int r = 0; r < n_rows; r++) {
        const float scale = 0.02f * (1 + r % 5), b = r % 2 ? bias : 0.0f;
        for (int64_t i = 0; i < n; i++) x[i] = scale * (sf_test_rand_f32(rng) + b);
        sf_type_ref(type)->quantize(x, w + (size_t)r * rb, n);
    }
    free(x);
    return w;
}

uint8_t *sf_test_quant_acts(int act_type, int64_t n, int T, float bias, uint64_t *rng) {
    const size_t rb = sf_type_row_bytes((sf_type)act_type, n);
    uint8_t *a = malloc(rb * (size_t)T);
    float *x = malloc(sizeof(float) * (size_t)n); /* [n] */
    assert_true(a && x);
    for (int t = 0; t < T; t++) {
        const float b = t % 2 ? bias : 0.0f;
        for (int64_t i = 0; i < n; i++) x[i] = (t % 3 == 2 ? 40.0f : 1.0f) * (sf_test_rand_f32(rng) + b);
        sf_type_fast(act_type)->quantize(x, a + (size_t)t * rb, n);
    }
    free(x);
    return a;
}

double sf_test_abs_dot(int type, int64_t n, const uint8_t *w, const uint8_t *a) {
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n); /* [n] each */
    assert_true(x && y);
    sf_type_ref(type)->dequantize(w, x, n);
    sf_type_ref(sf_type_ref(type)->vec_dot_type)->dequantize(a, y, n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += fabs((double)x[i] * y[i]);
    free(x);
    free(y);
    return s;
}
