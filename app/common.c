#include "common.h"
#include "generate.h"
#include "sparsefuse_routing.h"
#include "sparsefuse_sparsity.h"

#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static bool g_verbose;

static void log_to_stderr(int level, const char *msg, void *user) {
    (void)user;
    if (level == 0 && !g_verbose) return;
    size_t n = strlen(msg);
    fprintf(stderr, "%s%s%s", level ? "warning: " : "", msg, n && msg[n - 1] == '\n' ? "" : "\n");
}

int app_fail(const cmd_spec *cmd, const char *what) {
    fprintf(stderr, "sparsefuse %s: %s: %s\n", cmd->name, what, sf_last_error());
    return APP_EXIT_RUNTIME;
}

void app_sampler_opts_init(app_sampler_opts *o) {
    o->p = sf_sampler_default_params();
    o->seed_given = false;
}

void app_sampler_opts_finish(app_sampler_opts *o, const char *cmd) {
    if (o->seed_given) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    o->p.seed = ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    o->p.seed &= 0xffffffffull; /* short enough to retype */
    if (o->p.temperature > 0.0f) /* greedy decoding uses no randomness */
        fprintf(stderr, "sparsefuse %s: seed %llu\n", cmd, (unsigned long long)o->p.seed);
}

bool app_readable(const cmd_spec *cmd, const char *what, const char *path) {
    if (access(path, R_OK) == 0) return true;
    args_error(cmd, "cannot read %s '%s': %s", what, path, strerror(errno));
    return false;
}

const char *app_model_path(const cmd_spec *cmd, const char *given) {
    if (given) return app_readable(cmd, "model", given) ? given : NULL;
    if (access(APP_DEFAULT_MODEL, R_OK) == 0) return APP_DEFAULT_MODEL;
    const char *env = getenv("SF_MODEL");
    if (env && *env) return app_readable(cmd, "model (from $SF_MODEL)", env) ? env : NULL;
    fprintf(stderr,
            "sparsefuse %s: no model: %s does not exist here and $SF_MODEL is not set.\n"
            "Fetch the default model with scripts/fetch_models.sh (run it from the repository\n"
            "root), or pass -m FILE.\n",
            cmd->name, APP_DEFAULT_MODEL);
    return NULL;
}

sf_model *app_load_model(const cmd_spec *cmd, const app_model_opts *o, const char *path) {
    g_verbose = o->verbose;
    sf_set_log(log_to_stderr, NULL);
    sf_model *m = sf_model_load(path);
    if (!m) fprintf(stderr, "sparsefuse %s: cannot load model %s: %s\n", cmd->name, path, sf_last_error());
    return m;
}

sf_context *app_new_context(const cmd_spec *cmd, sf_model *m, const app_model_opts *o, int n_ctx,
                            bool cap_to_train) {
    sf_model_info info;
    sf_model_get_info(m, &info);
    if (cap_to_train && info.n_ctx_train > 0 && n_ctx > info.n_ctx_train) n_ctx = info.n_ctx_train;
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = n_ctx;
    if (o->batch > 0) cp.n_batch = o->batch;
    if (o->threads > 0) cp.n_threads = o->threads;
    sf_context *c = sf_context_new(m, &cp);
    if (!c) {
        char what[64];
        snprintf(what, sizeof what, "cannot create a context of %d tokens", n_ctx);
        app_fail(cmd, what);
    }
    if (c && o->sparse && sf_context_use_sparse(c, o->sparse) != SF_OK) {
        app_fail(cmd, "--sparse");
        sf_context_free(c);
        return NULL;
    }
    if (c && o->routes) {
        if (sf_context_use_routes(c, o->routes) != SF_OK) {
            app_fail(cmd, "--routes");
            sf_context_free(c);
            return NULL;
        }
        sf_route_policy rp;
        app_route_policy(o, &rp);
        sf_context_route_policy(c, &rp);
    }
    return c;
}

void app_route_policy(const app_model_opts *o, sf_route_policy *p) {
    p->kv = o->route_kv && strcmp(o->route_kv, "preserve") == 0 ? SF_ROUTE_KV_PRESERVE : SF_ROUTE_KV_EXACT;
    p->rule = o->route_rule && strcmp(o->route_rule, "topk") == 0 ? SF_ROUTE_TOPK : SF_ROUTE_CAUSAL;
    p->scale = o->route_scale;
}

bool app_route_opts_ok(const cmd_spec *cmd, const app_model_opts *o) {
    if (o->route_kv && strcmp(o->route_kv, "exact") && strcmp(o->route_kv, "preserve")) {
        args_error(cmd, "--route-kv %s is not exact or preserve", o->route_kv);
        return false;
    }
    if (o->route_rule && strcmp(o->route_rule, "causal") && strcmp(o->route_rule, "topk")) {
        args_error(cmd, "--route-rule %s is not causal or topk", o->route_rule);
        return false;
    }
    if (!o->routes && (o->route_kv || o->route_rule || o->route_scale)) {
        args_error(cmd, "--route-kv, --route-rule and --route-scale need --routes ROUTES.gguf");
        return false;
    }
    if (o->routes && !app_readable(cmd, "routes side-car", o->routes)) return false;
    return true;
}

/* Reads everything from fd into a growing buffer (NUL-terminated). */
static char *read_fd(int fd, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        if (r == 0) {
            buf[n] = '\0';
            *len = n;
            return buf;
        }
        n += (size_t)r;
    }
    free(buf);
    return NULL;
}

/* Runs `bzip2 -dc -- path` (no shell) and collects its output. */
static char *read_bz2(const cmd_spec *cmd, const char *path, size_t *len) {
    int fds[2];
    if (pipe(fds) != 0) {
        fprintf(stderr, "sparsefuse %s: pipe: %s\n", cmd->name, strerror(errno));
        return NULL;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    char *argv[] = {"bzip2", "-dc", "--", (char *)path, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "bzip2", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fprintf(stderr, "sparsefuse %s: cannot run bzip2 to read %s: %s\n", cmd->name, path, strerror(rc));
        return NULL;
    }
    char *buf = read_fd(fds[0], len);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!buf || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "sparsefuse %s: decompressing %s with bzip2 failed\n", cmd->name, path);
        free(buf);
        return NULL;
    }
    return buf;
}

char *app_read_file(const cmd_spec *cmd, const char *path, size_t *len, bool decompress) {
    size_t pl = strlen(path);
    if (decompress && pl > 4 && strcmp(path + pl - 4, ".bz2") == 0) return read_bz2(cmd, path, len);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "sparsefuse %s: cannot open %s: %s\n", cmd->name, path, strerror(errno));
        return NULL;
    }
    char *buf = read_fd(fileno(f), len);
    if (!buf) fprintf(stderr, "sparsefuse %s: cannot read %s: %s\n", cmd->name, path, strerror(errno));
    fclose(f);
    return buf;
}

int32_t *app_tokenize(const cmd_spec *cmd, const sf_model *m, const char *text, size_t len,
                      bool add_special, bool parse_special, int *n) {
    if (len > (size_t)1 << 30) {
        fprintf(stderr, "sparsefuse %s: text of %zu bytes is too long\n", cmd->name, len);
        return NULL;
    }
    int cap = (int)len + 8;
    for (;;) {
        int32_t *ids = malloc((size_t)cap * sizeof *ids);
        if (!ids) break;
        int r = sf_tokenize(m, text, len, ids, cap, add_special, parse_special);
        if (r >= 0) {
            *n = r;
            return ids;
        }
        free(ids);
        cap = -r;
    }
    fprintf(stderr, "sparsefuse %s: out of memory tokenizing %zu bytes\n", cmd->name, len);
    return NULL;
}

static int read_int_file(const char *path) {
    FILE *f = fopen(path, "r");
    int v = -1;
    if (f) {
        if (fscanf(f, "%d", &v) != 1) v = -1;
        fclose(f);
    }
    return v;
}

int app_physical_cores(void) {
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_cpu < 1) return 1;
    /* distinct (package, core) pairs of the online CPUs */
    enum { MAX_CPU = 1024 };
    static int seen[MAX_CPU][2];
    int n_seen = 0;
    char path[128];
    for (int cpu = 0; cpu < MAX_CPU && cpu < n_cpu * 4; cpu++) {
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        int core = read_int_file(path);
        if (core < 0) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        int pkg = read_int_file(path);
        bool dup = false;
        for (int i = 0; i < n_seen && !dup; i++) dup = seen[i][0] == pkg && seen[i][1] == core;
        if (!dup && n_seen < MAX_CPU) {
            seen[n_seen][0] = pkg;
            seen[n_seen][1] = core;
            n_seen++;
        }
    }
    return n_seen > 0 && n_seen <= n_cpu ? n_seen : (int)n_cpu;
}

void app_progress_init(app_progress *p, const char *cmd, const char *unit) {
    p->cmd = cmd;
    p->unit = unit;
    p->tty = isatty(2);
    p->t_start = app_now();
    p->t_last = 0.0;
}

void app_progress_bar(const char *what, int64_t done, int64_t total, void *user) {
    app_progress *ui = user;
    const double now = app_now();
    if (!ui->tty && now - ui->t_last < 5.0 && done < total) return;
    ui->t_last = now;
    const double eta = done > 0 ? (now - ui->t_start) / done * (total - done) : 0.0;
    char bar[41];
    const int fill = total > 0 ? (int)(40 * done / total) : 40;
    for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
    bar[40] = '\0';
    const bool same = !what || strcmp(what, ui->cmd) == 0;
    fprintf(stderr, "%s%s%s%s [%s] %lld/%lld%s%s, ETA %.0f s%s", ui->tty ? "\r" : "", ui->cmd, same ? "" : ": ",
            same ? "" : what, bar, (long long)done, (long long)total, ui->unit ? " " : "", ui->unit ? ui->unit : "",
            eta, ui->tty && done < total ? "" : "\n");
    if (done == total) ui->t_start = now; /* a next phase starts its own clock */
}
