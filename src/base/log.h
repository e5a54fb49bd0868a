/* Logging through the user's hook (sf_set_log); silent by default. */
#ifndef SF_BASE_LOG_H
#define SF_BASE_LOG_H
#include "base/error.h"
void sf_log_info(const char *fmt, ...) SF_PRINTF(1, 2);
void sf_log_warn(const char *fmt, ...) SF_PRINTF(1, 2);
#endif
