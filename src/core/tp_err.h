/*
 * Errors: a thread-local record of the last failure (code + message trail).
 *
 * The function that detects a failure calls TP_SET_ERR once; every caller that passes the failure up adds one
 * line with TP_APPEND_ERR. Expected outcomes (back pressure, a dropped frame) are sentinels, never errors, and
 * hot paths never format text.
 */
#ifndef TP_CORE_ERR_H
#define TP_CORE_ERR_H

#include "tensorpool/tp_common.h"

#if defined(__GNUC__)
#define TP_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define TP_PRINTF_LIKE(f, a)
#endif

#define TP_SET_ERR(code, ...) tp_err_set((code), __func__, __FILE__, __LINE__, __VA_ARGS__)
#define TP_APPEND_ERR(...) tp_err_append(__func__, __FILE__, __LINE__, __VA_ARGS__)

void tp_err_set(int code, const char *func, const char *file, int line, const char *fmt, ...) TP_PRINTF_LIKE(5, 6);
void tp_err_append(const char *func, const char *file, int line, const char *fmt, ...) TP_PRINTF_LIKE(4, 5);

#endif
