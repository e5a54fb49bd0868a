#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int args_error(const cmd_spec *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sparsefuse %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'sparsefuse %s --help')\n", cmd->name);
    va_end(ap);
    return APP_EXIT_USAGE;
}

void args_usage(const cmd_spec *cmd, FILE *out) {
    fprintf(out, "usage: sparsefuse %s %s\n\n%s\n\noptions:\n", cmd->name, cmd->synopsis,
            cmd->description);
    for (int i = 0; i < cmd->n_args; i++) {
        const arg_spec *a = &cmd->args[i];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s%s%s", a->shrt ? a->shrt : "", a->shrt ? ", " : "    ",
                 a->lng, a->metavar ? " " : "", a->metavar ? a->metavar : "");
        fprintf(out, "  %-28s %s\n", left, a->help);
    }
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help and exit");
}

static const arg_spec *find(const cmd_spec *cmd, const char *name, size_t len) {
    for (int i = 0; i < cmd->n_args; i++) {
        const arg_spec *a = &cmd->args[i];
        if ((a->shrt && strlen(a->shrt) == len && strncmp(a->shrt, name, len) == 0) ||
            (strlen(a->lng) == len && strncmp(a->lng, name, len) == 0))
            return a;
    }
    return NULL;
}

static bool in_range(const arg_spec *a, double v) { return a->lo == a->hi || (v >= a->lo && v <= a->hi); }

static int range_error(const cmd_spec *cmd, const arg_spec *a, const char *val) {
    if (a->hi >= 1e18)
        return args_error(cmd, "%s: %s is out of range (must be >= %g)", a->lng, val, a->lo);
    return args_error(cmd, "%s: %s is out of range (%g to %g)", a->lng, val, a->lo, a->hi);
}

/* Stores val into a's destination, checking syntax and range. */
static int store(const cmd_spec *cmd, const arg_spec *a, const char *val) {
    char *end = NULL;
    errno = 0;
    switch (a->kind) {
    case ARG_FLAG: *(bool *)a->dest = true; break;
    case ARG_STR: *(const char **)a->dest = val; break;
    case ARG_INT: {
        long v = strtol(val, &end, 10);
        if (end == val || *end || errno == ERANGE || v < -2147483647L || v > 2147483647L)
            return args_error(cmd, "%s: '%s' is not an integer", a->lng, val);
        if (!in_range(a, (double)v)) return range_error(cmd, a, val);
        *(int *)a->dest = (int)v;
        break;
    }
    case ARG_FLOAT: {
        double v = strtod(val, &end);
        if (end == val || *end || errno == ERANGE || !isfinite(v))
            return args_error(cmd, "%s: '%s' is not a number", a->lng, val);
        if (!in_range(a, v)) return range_error(cmd, a, val);
        *(float *)a->dest = (float)v;
        break;
    }
    case ARG_U64: {
        if (val[0] == '-') return args_error(cmd, "%s: '%s' must not be negative", a->lng, val);
        unsigned long long v = strtoull(val, &end, 0);
        if (end == val || *end || errno == ERANGE)
            return args_error(cmd, "%s: '%s' is not a non-negative integer", a->lng, val);
        *(uint64_t *)a->dest = (uint64_t)v;
        break;
    }
    }
    if (a->seen) *a->seen = true;
    return -1;
}

int args_parse(const cmd_spec *cmd, int argc, char **argv) {
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!only_positional && (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0)) {
            args_usage(cmd, stdout);
            return APP_EXIT_OK;
        }
        if (!only_positional && strcmp(s, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (only_positional || s[0] != '-' || s[1] == '\0') {
            if (!cmd->positional_name) return args_error(cmd, "unexpected argument '%s'", s);
            if (*cmd->positional) return args_error(cmd, "more than one %s given ('%s')", cmd->positional_name, s);
            *cmd->positional = s;
            continue;
        }
        /* --name=value or --name value */
        const char *eq = strncmp(s, "--", 2) == 0 ? strchr(s, '=') : NULL;
        size_t name_len = eq ? (size_t)(eq - s) : strlen(s);
        const arg_spec *a = find(cmd, s, name_len);
        if (!a) return args_error(cmd, "unknown option '%.*s'", (int)name_len, s);
        const char *val = NULL;
        if (a->kind == ARG_FLAG) {
            if (eq) return args_error(cmd, "%s takes no value", a->lng);
        } else if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc) return args_error(cmd, "%s needs a value (%s)", a->lng, a->metavar);
            val = argv[++i];
        }
        int rc = store(cmd, a, val);
        if (rc >= 0) return rc;
    }
    return -1;
}
