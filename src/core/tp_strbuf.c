#include "core/tp_strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/tp_alloc.h"

void tp_strbuf_init(tp_strbuf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void tp_strbuf_fini(tp_strbuf_t *b)
{
    tp_free(b->data);
    memset(b, 0, sizeof(*b));
}

void tp_strbuf_reset(tp_strbuf_t *b)
{
    b->length = 0;
    if (b->data != NULL)
    {
        b->data[0] = '\0';
    }
}

static int strbuf_reserve(tp_strbuf_t *b, size_t extra)
{
    if (b->has_error)
    {
        return -1;
    }
    if (b->length + extra + 1 <= b->capacity)
    {
        return 0;
    }
    size_t cap = b->capacity < 256 ? 256 : b->capacity;
    while (cap < b->length + extra + 1)
    {
        cap *= 2;
    }
    void *p = b->data;
    if (tp_realloc(&p, cap) < 0)
    {
        b->has_error = 1;
        return -1;
    }
    b->data = p;
    b->capacity = cap;
    return 0;
}

void tp_strbuf_append(tp_strbuf_t *b, const void *data, size_t length)
{
    if (strbuf_reserve(b, length) < 0)
    {
        return;
    }
    memcpy(b->data + b->length, data, length);
    b->length += length;
    b->data[b->length] = '\0';
}

void tp_strbuf_puts(tp_strbuf_t *b, const char *s)
{
    tp_strbuf_append(b, s, strlen(s));
}

void tp_strbuf_putc(tp_strbuf_t *b, char c)
{
    tp_strbuf_append(b, &c, 1);
}

void tp_strbuf_printf(tp_strbuf_t *b, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    va_list copy;
    va_copy(copy, args);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n > 0 && strbuf_reserve(b, (size_t)n) == 0)
    {
        vsnprintf(b->data + b->length, (size_t)n + 1, fmt, args);
        b->length += (size_t)n;
    }
    va_end(args);
}

void tp_strbuf_json_string(tp_strbuf_t *b, const void *data, size_t length)
{
    const unsigned char *p = data;
    tp_strbuf_putc(b, '"');
    for (size_t i = 0; i < length; i++)
    {
        unsigned char c = p[i];
        switch (c)
        {
        case '"': tp_strbuf_puts(b, "\\\""); break;
        case '\\': tp_strbuf_puts(b, "\\\\"); break;
        case '\n': tp_strbuf_puts(b, "\\n"); break;
        case '\r': tp_strbuf_puts(b, "\\r"); break;
        case '\t': tp_strbuf_puts(b, "\\t"); break;
        case '\b': tp_strbuf_puts(b, "\\b"); break;
        case '\f': tp_strbuf_puts(b, "\\f"); break;
        default:
            if (c < 0x20 || c == 0x7F)
            {
                tp_strbuf_printf(b, "\\u%04x", c);
            }
            else
            {
                tp_strbuf_putc(b, (char)c);
            }
        }
    }
    tp_strbuf_putc(b, '"');
}

void tp_strbuf_hex(tp_strbuf_t *b, const void *data, size_t length)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    if (strbuf_reserve(b, length * 2) < 0)
    {
        return;
    }
    for (size_t i = 0; i < length; i++)
    {
        b->data[b->length++] = digits[p[i] >> 4];
        b->data[b->length++] = digits[p[i] & 0xF];
    }
    b->data[b->length] = '\0';
}

const char *tp_strbuf_cstr(const tp_strbuf_t *b)
{
    return b->data != NULL ? b->data : "";
}

void tp_strbuf_put_utf8(tp_strbuf_t *b, uint32_t cp)
{
    char u[4];
    if (cp < 0x80)
    {
        u[0] = (char)cp;
        tp_strbuf_append(b, u, 1);
    }
    else if (cp < 0x800)
    {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        tp_strbuf_append(b, u, 2);
    }
    else if (cp < 0x10000)
    {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        tp_strbuf_append(b, u, 3);
    }
    else
    {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        tp_strbuf_append(b, u, 4);
    }
}
