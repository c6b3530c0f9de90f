/* Thread-local error record; see tp_err.h. */
#include "core/tp_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TP_ERRMSG_CAPACITY 4096

/* The message twice: as users read it, and with each line's source location for debug logs and bug reports. */
typedef struct tp_err_text
{
    size_t length;
    char text[TP_ERRMSG_CAPACITY];
} tp_err_text_t;

typedef struct tp_err_record
{
    int code;
    tp_err_text_t message;
    tp_err_text_t trace;
} tp_err_record_t;

static _Thread_local tp_err_record_t err_record;

static const char *err_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* Append formatted text; a full buffer keeps what fits and marks the cut with "...". */
static void text_vappend(tp_err_text_t *t, const char *fmt, va_list args) TP_PRINTF_LIKE(2, 0);
static void text_vappend(tp_err_text_t *t, const char *fmt, va_list args)
{
    size_t room = sizeof(t->text) - t->length;
    if (room <= 1)
    {
        return;
    }
    int n = vsnprintf(t->text + t->length, room, fmt, args);
    if (n > 0)
    {
        t->length += ((size_t)n < room) ? (size_t)n : room - 1;
    }
    if (t->length >= sizeof(t->text) - 1)
    {
        memcpy(t->text + sizeof(t->text) - 4, "...", 4);
    }
}

static void text_append(tp_err_text_t *t, const char *fmt, ...) TP_PRINTF_LIKE(2, 3);
static void text_append(tp_err_text_t *t, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    text_vappend(t, fmt, args);
    va_end(args);
}

static void err_vappend(const char *prefix, const char *func, const char *file, int line, const char *fmt,
    va_list args) TP_PRINTF_LIKE(5, 0);
static void err_vappend(const char *prefix, const char *func, const char *file, int line, const char *fmt,
    va_list args)
{
    va_list again;
    va_copy(again, args);
    text_append(&err_record.message, "%s", prefix);
    text_vappend(&err_record.message, fmt, args);
    text_append(&err_record.trace, "%s", prefix);
    text_vappend(&err_record.trace, fmt, again);
    text_append(&err_record.trace, " [%s %s:%d]", func, err_basename(file), line);
    va_end(again);
}

void tp_err_set(int code, const char *func, const char *file, int line, const char *fmt, ...)
{
    err_record.code = code;
    err_record.message.length = 0;
    err_record.message.text[0] = '\0';
    err_record.trace.length = 0;
    err_record.trace.text[0] = '\0';
    va_list args;
    va_start(args, fmt);
    err_vappend("", func, file, line, fmt, args);
    va_end(args);
}

void tp_err_append(const char *func, const char *file, int line, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    err_vappend(err_record.message.length > 0 ? "\n  while: " : "", func, file, line, fmt, args);
    va_end(args);
}

int tp_errcode(void)
{
    return err_record.code;
}

const char *tp_errmsg(void)
{
    return err_record.message.length > 0 ? err_record.message.text : "no error recorded";
}

const char *tp_errmsg_trace(void)
{
    return err_record.trace.length > 0 ? err_record.trace.text : "no error recorded";
}

void tp_err_clear(void)
{
    err_record.code = 0;
    err_record.message.length = 0;
    err_record.message.text[0] = '\0';
    err_record.trace.length = 0;
    err_record.trace.text[0] = '\0';
}

const char *tp_version(void)
{
#define TP_STR2(x) #x
#define TP_STR(x) TP_STR2(x)
    return TP_STR(TP_VERSION_MAJOR) "." TP_STR(TP_VERSION_MINOR) "." TP_STR(TP_VERSION_PATCH);
}
