/*
 * Logging: one line per record, JSON by default (TP_LOG_FORMAT=logfmt for key=value), to stderr or a sink.
 *
 * Environment, read once at first use (tp_log_init re-reads it):
 *   TP_LOG=0|1         0 disables all logging; 1 logs from TP_LOG_LEVEL (default 20). Unset: warnings and errors.
 *   TP_LOG_LEVEL=10|20|30|40   debug, info, warn, error.
 *   TP_LOG_MODULES=a,b  only these modules (comma-separated; empty = all).
 *   TP_LOG_FORMAT=json|logfmt
 *   TP_LOG_FILE=path    append to this file instead of stderr.
 * A disabled level costs one load and one branch: the macros test tp_log_min_level before formatting.
 */
#ifndef TP_CORE_LOG_H
#define TP_CORE_LOG_H

#include "core/tp_err.h"
#include "tensorpool/tp_common.h"

extern int tp_log_min_level;

void tp_log_init(void);
void tp_log_write(int level, const char *module, const char *fmt, ...) TP_PRINTF_LIKE(3, 4);

/* Log the calling thread's last error (tp_errmsg) with a short context line. */
void tp_log_errmsg(int level, const char *module, const char *context);

#define TP_LOG_AT(level, module, ...)                                                                                 \
    do                                                                                                                \
    {                                                                                                                 \
        if ((level) >= tp_log_min_level)                                                                              \
        {                                                                                                             \
            tp_log_write((level), (module), __VA_ARGS__);                                                             \
        }                                                                                                             \
    } while (0)

#define TP_LOG_D(module, ...) TP_LOG_AT(TP_LOG_DEBUG, module, __VA_ARGS__)
#define TP_LOG_I(module, ...) TP_LOG_AT(TP_LOG_INFO, module, __VA_ARGS__)
#define TP_LOG_W(module, ...) TP_LOG_AT(TP_LOG_WARN, module, __VA_ARGS__)
#define TP_LOG_E(module, ...) TP_LOG_AT(TP_LOG_ERROR, module, __VA_ARGS__)

#endif
