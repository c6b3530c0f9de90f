/* Thread-local error record; see tp_err.h. */
#include "core/tp_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TP_ERRMSG_CAPACITY 4096

typedef struct tp_err_record
{
    int code;
    size_t length;
    char message[TP_ERRMSG_CAPACITY];
} tp_err_record_t;

static _Thread_local tp_err_record_t err_record;

static const char *err_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* Append formatted text; a full buffer keeps what fits and marks the cut with "...". */
static void err_vappend(const char *prefix, const char *func, const char *file, int line, const char *fmt,
    va_list args) TP_PRINTF_LIKE(5, 0);
static void err_vappend(const char *prefix, const char *func, const char *file, int line, const char *fmt,
    va_list args)
{
    tp_err_record_t *r = &err_record;
    size_t room = sizeof(r->message) - r->length;
    if (room <= 1)
    {
        return;
    }
    int n = snprintf(r->message + r->length, room, "%s", prefix);
    if (n > 0)
    {
        r->length += ((size_t)n < room) ? (size_t)n : room - 1;
    }
    room = sizeof(r->message) - r->length;
    n = vsnprintf(r->message + r->length, room, fmt, args);
    if (n > 0)
    {
        r->length += ((size_t)n < room) ? (size_t)n : room - 1;
    }
    room = sizeof(r->message) - r->length;
    n = snprintf(r->message + r->length, room, " [%s %s:%d]", func, err_basename(file), line);
    if (n > 0)
    {
        r->length += ((size_t)n < room) ? (size_t)n : room - 1;
    }
    if (r->length >= sizeof(r->message) - 1)
    {
        memcpy(r->message + sizeof(r->message) - 4, "...", 4);
    }
}

void tp_err_set(int code, const char *func, const char *file, int line, const char *fmt, ...)
{
    err_record.code = code;
    err_record.length = 0;
    err_record.message[0] = '\0';
    va_list args;
    va_start(args, fmt);
    err_vappend("", func, file, line, fmt, args);
    va_end(args);
}

void tp_err_append(const char *func, const char *file, int line, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    err_vappend(err_record.length > 0 ? "\n  while: " : "", func, file, line, fmt, args);
    va_end(args);
}

int tp_errcode(void)
{
    return err_record.code;
}

const char *tp_errmsg(void)
{
    return err_record.length > 0 ? err_record.message : "no error recorded";
}

void tp_err_clear(void)
{
    err_record.code = 0;
    err_record.length = 0;
    err_record.message[0] = '\0';
}

const char *tp_version(void)
{
#define TP_STR2(x) #x
#define TP_STR(x) TP_STR2(x)
    return TP_STR(TP_VERSION_MAJOR) "." TP_STR(TP_VERSION_MINOR) "." TP_STR(TP_VERSION_PATCH);
}
