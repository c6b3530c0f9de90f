/* A growable string buffer (tp_alloc-backed) for building text off the hot path: JSON, reports, messages. */
#ifndef TP_CORE_STRBUF_H
#define TP_CORE_STRBUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/tp_err.h"

typedef struct tp_strbuf
{
    char *data;    /* always NUL-terminated once anything was appended */
    size_t length; /* bytes, without the NUL */
    size_t capacity;
    int has_error; /* an allocation failed; later appends are ignored */
} tp_strbuf_t;

void tp_strbuf_init(tp_strbuf_t *b);
void tp_strbuf_fini(tp_strbuf_t *b);
void tp_strbuf_reset(tp_strbuf_t *b);
void tp_strbuf_append(tp_strbuf_t *b, const void *data, size_t length);
void tp_strbuf_puts(tp_strbuf_t *b, const char *s);
void tp_strbuf_putc(tp_strbuf_t *b, char c);
/* Append code point cp (at most 0x10FFFF, not a surrogate: the caller checks) as UTF-8. */
void tp_strbuf_put_utf8(tp_strbuf_t *b, uint32_t cp);
void tp_strbuf_printf(tp_strbuf_t *b, const char *fmt, ...) TP_PRINTF_LIKE(2, 3);
/* Append bytes as a quoted JSON string: escapes quotes, backslashes and control bytes; other bytes verbatim. */
void tp_strbuf_json_string(tp_strbuf_t *b, const void *data, size_t length);
/* Append bytes as lowercase hex. */
void tp_strbuf_hex(tp_strbuf_t *b, const void *data, size_t length);
/* The text so far ("" when empty). */
const char *tp_strbuf_cstr(const tp_strbuf_t *b);

#endif
