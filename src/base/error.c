#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_last_error[1024];

int sf_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    va_end(ap);
    return code;
}

int sf_fail_context(int code, const char *fmt, ...) {
    char prefix[512];
    char old[sizeof g_last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_last_error, sizeof old);
    /* "<prefix>: <old message>", truncated to the buffer */
    size_t n = strlen(prefix), cap = sizeof g_last_error - 1;
    if (n > cap) n = cap;
    memcpy(g_last_error, prefix, n);
    const char *parts[2] = {": ", old};
    for (int i = 0; i < 2; i++) {
        size_t k = strlen(parts[i]);
        if (k > cap - n) k = cap - n;
        memcpy(g_last_error + n, parts[i], k);
        n += k;
    }
    g_last_error[n] = '\0';
    return code;
}

const char *sf_last_error(void) { return g_last_error[0] ? g_last_error : "no error"; }

const char *sf_status_name(int code) {
    switch (code) {
    case SF_OK: return "ok";
    case SF_ERR_IO: return "I/O error";
    case SF_ERR_FORMAT: return "malformed input";
    case SF_ERR_UNSUPPORTED: return "unsupported";
    case SF_ERR_ARG: return "invalid argument";
    case SF_ERR_NOMEM: return "out of memory";
    case SF_ERR_RANGE: return "out of range";
    default: return "unknown error";
    }
}
