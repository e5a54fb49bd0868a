/* Status codes and the thread-local error message.
 *
 * Library functions return an int status (SF_OK or a negative SF_ERR_*) and
 * record a human-readable message with sf_fail(); the caller reads it with
 * sf_last_error(). The library never prints or exits on its own. */
#ifndef SF_BASE_ERROR_H
#define SF_BASE_ERROR_H

#include "sparsefuse.h" /* sf_status codes, sf_last_error() */

#if defined(__GNUC__)
#define SF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SF_PRINTF(a, b)
#endif

/* Records the message and returns `code` so callers can `return sf_fail(...)`. */
int sf_fail(int code, const char *fmt, ...) SF_PRINTF(2, 3);

/* Prepends context ("loading X: ") to the current message; returns `code`. */
int sf_fail_context(int code, const char *fmt, ...) SF_PRINTF(2, 3);

#endif
