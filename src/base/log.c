#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>

static sf_log_fn g_log_fn;
static void *g_log_user;

void sf_set_log(sf_log_fn fn, void *user) { g_log_fn = fn; g_log_user = user; }

static void log_v(int level, const char *fmt, va_list ap) {
    if (!g_log_fn) return;
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt, ap);
    g_log_fn(level, buf, g_log_user);
}

void sf_log_info(const char *fmt, ...) { va_list ap; va_start(ap, fmt); log_v(0, fmt, ap); va_end(ap); }
void sf_log_warn(const char *fmt, ...) { va_list ap; va_start(ap, fmt); log_v(1, fmt, ap); va_end(ap); }
