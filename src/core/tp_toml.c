/* TOML 1.0.0 reader; see tp_toml.h. Recursive descent over input validated as UTF-8 first. */
#include "core/tp_toml.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_err.h"
#include "core/tp_toml_internal.h"

#define TOML_MAX_DEPTH 128
#define TOML_MAX_KEY_PARTS 128

typedef struct toml_parser
{
    const char *src;
    size_t length;
    size_t pos;
    uint32_t line;
    size_t line_start;
    const char *name;
    tp_toml_value_t *root;
    tp_toml_value_t *current;
    int depth;
} toml_parser_t;

typedef struct toml_key
{
    char *parts[TOML_MAX_KEY_PARTS];
    size_t lengths[TOML_MAX_KEY_PARTS];
    int count;
    uint32_t line;
    uint32_t column;
} toml_key_t;

static int toml_fail_at(const toml_parser_t *p, uint32_t line, uint32_t column, const char *fmt, ...)
    TP_PRINTF_LIKE(4, 5);

static int toml_fail_at(const toml_parser_t *p, uint32_t line, uint32_t column, const char *fmt, ...)
{
    char msg[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);
    TP_SET_ERR(TP_E_CONFIG, "%s:%u:%u: %s", p->name, line, column, msg);
    return -1;
}

static uint32_t toml_column(const toml_parser_t *p)
{
    return (uint32_t)(p->pos - p->line_start + 1);
}

#define TOML_FAIL(p, ...) toml_fail_at((p), (p)->line, toml_column(p), __VA_ARGS__)

static int peek(const toml_parser_t *p)
{
    return p->pos < p->length ? (unsigned char)p->src[p->pos] : -1;
}

static int peek_at(const toml_parser_t *p, size_t ahead)
{
    return p->pos + ahead < p->length ? (unsigned char)p->src[p->pos + ahead] : -1;
}

static bool starts_with(const toml_parser_t *p, const char *s)
{
    size_t n = strlen(s);
    return p->pos + n <= p->length && memcmp(p->src + p->pos, s, n) == 0;
}

static void skip_ws(toml_parser_t *p)
{
    while (peek(p) == ' ' || peek(p) == '\t')
    {
        p->pos++;
    }
}

static bool at_newline(const toml_parser_t *p)
{
    return peek(p) == '\n' || (peek(p) == '\r' && peek_at(p, 1) == '\n');
}

static void consume_newline(toml_parser_t *p)
{
    p->pos += peek(p) == '\r' ? 2 : 1;
    p->line++;
    p->line_start = p->pos;
}

static void skip_comment(toml_parser_t *p)
{
    while (p->pos < p->length && !at_newline(p))
    {
        p->pos++;
    }
}

/* Whitespace, newlines and comments (inside arrays). */
static void skip_ws_nl(toml_parser_t *p)
{
    while (1)
    {
        skip_ws(p);
        if (peek(p) == '#')
        {
            skip_comment(p);
        }
        if (!at_newline(p))
        {
            return;
        }
        consume_newline(p);
    }
}

/* ---- UTF-8 and control characters, checked once over the whole input ---- */

static int toml_check_encoding(toml_parser_t *p)
{
    const unsigned char *s = (const unsigned char *)p->src;
    uint32_t line = 1;
    size_t line_start = 0;
    size_t i = 0;
    while (i < p->length)
    {
        unsigned char c = s[i];
        uint32_t column = (uint32_t)(i - line_start + 1);
        if (c == '\n')
        {
            line++;
            i++;
            line_start = i;
            continue;
        }
        if (c == '\r')
        {
            if (i + 1 >= p->length || s[i + 1] != '\n')
            {
                return toml_fail_at(p, line, column, "a carriage return must be followed by a line feed");
            }
            i++;
            continue;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7F)
        {
            return toml_fail_at(p, line, column, "control character U+%04X is not allowed", c);
        }
        if (c < 0x80)
        {
            i++;
            continue;
        }
        int n;
        uint32_t cp;
        uint32_t min;
        if ((c & 0xE0) == 0xC0)
        {
            n = 2;
            cp = c & 0x1F;
            min = 0x80;
        }
        else if ((c & 0xF0) == 0xE0)
        {
            n = 3;
            cp = c & 0x0F;
            min = 0x800;
        }
        else if ((c & 0xF8) == 0xF0)
        {
            n = 4;
            cp = c & 0x07;
            min = 0x10000;
        }
        else
        {
            return toml_fail_at(p, line, column, "invalid UTF-8 byte 0x%02X", c);
        }
        if (i + (size_t)n > p->length)
        {
            return toml_fail_at(p, line, column, "truncated UTF-8 sequence");
        }
        for (int k = 1; k < n; k++)
        {
            if ((s[i + (size_t)k] & 0xC0) != 0x80)
            {
                return toml_fail_at(p, line, column, "invalid UTF-8 sequence");
            }
            cp = (cp << 6) | (s[i + (size_t)k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        {
            return toml_fail_at(p, line, column, "invalid UTF-8 (overlong, surrogate or out of range)");
        }
        i += (size_t)n;
    }
    return 0;
}

/* ---- values and tables ---- */

static tp_toml_value_t *value_new(toml_parser_t *p, tp_toml_type_t type, uint32_t line, uint32_t column)
{
    tp_toml_value_t *v = NULL;
    if (tp_alloc((void **)&v, sizeof(*v)) < 0)
    {
        TOML_FAIL(p, "out of memory");
        return NULL;
    }
    v->type = type;
    v->line = line;
    v->column = column;
    return v;
}

static int container_push(toml_parser_t *p, tp_toml_value_t *c, char *key, size_t key_length, tp_toml_value_t *v)
{
    if (c->count == c->capacity)
    {
        size_t cap = c->capacity == 0 ? 4 : c->capacity * 2;
        void *m = c->members;
        if (tp_realloc(&m, cap * sizeof(tp_toml_member_t)) < 0)
        {
            return TOML_FAIL(p, "out of memory");
        }
        c->members = m;
        c->capacity = cap;
    }
    c->members[c->count++] = (tp_toml_member_t){ .key = key, .key_length = key_length, .value = v };
    return 0;
}

static tp_toml_value_t *table_find(const tp_toml_value_t *t, const char *key, size_t length)
{
    for (size_t i = 0; i < t->count; i++)
    {
        if (t->members[i].key_length == length && memcmp(t->members[i].key, key, length) == 0)
        {
            return t->members[i].value;
        }
    }
    return NULL;
}

static char *dup_key(toml_parser_t *p, const char *key, size_t length)
{
    char *k = NULL;
    if (tp_alloc((void **)&k, length + 1) < 0)
    {
        TOML_FAIL(p, "out of memory");
        return NULL;
    }
    memcpy(k, key, length);
    return k;
}

/* Add a child table under key; flags say how it came to be. */
static tp_toml_value_t *table_add_table(toml_parser_t *p, tp_toml_value_t *t, const char *key, size_t length,
    uint8_t flags, uint32_t line, uint32_t column)
{
    tp_toml_value_t *child = value_new(p, TP_TOML_TABLE, line, column);
    char *k = child != NULL ? dup_key(p, key, length) : NULL;
    if (k == NULL || container_push(p, t, k, length, child) < 0)
    {
        tp_free(k);
        tp_toml_free(child);
        return NULL;
    }
    child->flags = flags;
    return child;
}

static void freeze(tp_toml_value_t *v)
{
    v->flags |= TP_TOML_F_INLINE;
    for (size_t i = 0; i < v->count; i++)
    {
        if (v->members[i].value->type == TP_TOML_TABLE || v->members[i].value->type == TP_TOML_ARRAY)
        {
            freeze(v->members[i].value);
        }
    }
}

static int parse_value(toml_parser_t *p, tp_toml_value_t **out);

/* ---- strings ---- */

static int parse_escape(toml_parser_t *p, tp_strbuf_t *b)
{
    int e = peek_at(p, 1);
    p->pos += 2;
    switch (e)
    {
    case 'b': tp_strbuf_putc(b, '\b'); return 0;
    case 't': tp_strbuf_putc(b, '\t'); return 0;
    case 'n': tp_strbuf_putc(b, '\n'); return 0;
    case 'f': tp_strbuf_putc(b, '\f'); return 0;
    case 'r': tp_strbuf_putc(b, '\r'); return 0;
    case '"': tp_strbuf_putc(b, '"'); return 0;
    case '\\': tp_strbuf_putc(b, '\\'); return 0;
    case 'u':
    case 'U':
    {
        int digits = e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int i = 0; i < digits; i++)
        {
            int c = peek(p);
            int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                                     : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                                              : -1;
            if (v < 0)
            {
                return TOML_FAIL(p, "\\%c escape needs %d hex digits", e, digits);
            }
            cp = cp * 16 + (uint32_t)v;
            p->pos++;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        {
            return TOML_FAIL(p, "\\%c%0*X is not a Unicode scalar value", e, digits, cp);
        }
        tp_strbuf_put_utf8(b, cp);
        return 0;
    }
    default:
        p->pos -= 1;
        return TOML_FAIL(p, "unknown escape sequence '\\%c'", e > 0x20 && e < 0x7F ? e : '?');
    }
}

/* Parse a string token of any kind at p->pos into a new tp_alloc'd buffer. allow_multiline: values only. */
static int parse_string(toml_parser_t *p, bool allow_multiline, char **out, size_t *out_length)
{
    uint32_t line = p->line;
    uint32_t column = toml_column(p);
    bool is_literal = peek(p) == '\'';
    bool is_multi = allow_multiline && (starts_with(p, "\"\"\"") || starts_with(p, "'''"));
    char quote = is_literal ? '\'' : '"';
    tp_strbuf_t b;
    tp_strbuf_init(&b);
    p->pos += is_multi ? 3 : 1;
    if (is_multi && at_newline(p))
    {
        consume_newline(p); /* a newline right after the opening delimiter is trimmed */
    }
    while (1)
    {
        int c = peek(p);
        if (c < 0)
        {
            tp_strbuf_fini(&b);
            return toml_fail_at(p, line, column, "unterminated string (it starts here)");
        }
        if (c == quote)
        {
            if (!is_multi)
            {
                p->pos++;
                break;
            }
            size_t run = 0;
            while (peek_at(p, run) == quote)
            {
                run++;
            }
            if (run >= 3)
            {
                if (run > 5)
                {
                    tp_strbuf_fini(&b);
                    return TOML_FAIL(p, "too many quotes at the end of a multi-line string");
                }
                tp_strbuf_append(&b, p->src + p->pos, run - 3); /* up to two quotes belong to the content */
                p->pos += run;
                break;
            }
            tp_strbuf_append(&b, p->src + p->pos, run);
            p->pos += run;
            continue;
        }
        if (at_newline(p))
        {
            if (!is_multi)
            {
                tp_strbuf_fini(&b);
                return toml_fail_at(p, line, column, "string is not closed on its line");
            }
            tp_strbuf_putc(&b, '\n');
            consume_newline(p);
            continue;
        }
        if (c == '\\' && !is_literal)
        {
            if (is_multi)
            {
                /* line-ending backslash: skip whitespace and newlines up to the next other character */
                size_t k = 1;
                while (peek_at(p, k) == ' ' || peek_at(p, k) == '\t')
                {
                    k++;
                }
                int after = peek_at(p, k);
                if (after == '\n' || (after == '\r' && peek_at(p, k + 1) == '\n'))
                {
                    p->pos += k;
                    while (1)
                    {
                        skip_ws(p);
                        if (!at_newline(p))
                        {
                            break;
                        }
                        consume_newline(p);
                    }
                    continue;
                }
            }
            if (parse_escape(p, &b) < 0)
            {
                tp_strbuf_fini(&b);
                return -1;
            }
            continue;
        }
        /* Control characters were rejected by the encoding check (tab is allowed). */
        tp_strbuf_putc(&b, (char)c);
        p->pos++;
    }
    tp_strbuf_append(&b, "", 0);
    if (b.has_error)
    {
        tp_strbuf_fini(&b);
        return TOML_FAIL(p, "out of memory");
    }
    if (b.data == NULL && tp_alloc((void **)&b.data, 1) < 0)
    {
        return TOML_FAIL(p, "out of memory");
    }
    *out = b.data;
    *out_length = b.length;
    return 0;
}

/* ---- keys ---- */

static bool is_bare_key_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static void key_free(toml_key_t *k)
{
    for (int i = 0; i < k->count; i++)
    {
        tp_free(k->parts[i]);
    }
    k->count = 0;
}

static int parse_key(toml_parser_t *p, toml_key_t *k)
{
    k->count = 0;
    k->line = p->line;
    k->column = toml_column(p);
    while (1)
    {
        skip_ws(p);
        if (k->count == TOML_MAX_KEY_PARTS)
        {
            key_free(k);
            return TOML_FAIL(p, "key has more than %d parts", TOML_MAX_KEY_PARTS);
        }
        int c = peek(p);
        if (c == '"' || c == '\'')
        {
            if (starts_with(p, "\"\"\"") || starts_with(p, "'''"))
            {
                key_free(k);
                return TOML_FAIL(p, "a key cannot be a multi-line string");
            }
            if (parse_string(p, false, &k->parts[k->count], &k->lengths[k->count]) < 0)
            {
                key_free(k);
                return -1;
            }
        }
        else if (is_bare_key_char(c))
        {
            size_t start = p->pos;
            while (is_bare_key_char(peek(p)))
            {
                p->pos++;
            }
            k->parts[k->count] = dup_key(p, p->src + start, p->pos - start);
            k->lengths[k->count] = p->pos - start;
            if (k->parts[k->count] == NULL)
            {
                key_free(k);
                return -1;
            }
        }
        else
        {
            key_free(k);
            return TOML_FAIL(p, c < 0 || at_newline(p) ? "expected a key" : "expected a key, found '%c'",
                c > 0x20 && c < 0x7F ? c : '?');
        }
        k->count++;
        skip_ws(p);
        if (peek(p) != '.')
        {
            return 0;
        }
        p->pos++;
    }
}

/* ---- numbers and dates ---- */

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Copy digits of `s` (length n) without underscores into out, checking each underscore sits between two digits
 * of base `base`. Returns the digit count, or -1. */
static int strip_underscores(const char *s, size_t n, int base, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
    {
        char c = s[i];
        if (c == '_')
        {
            bool ok = i > 0 && i + 1 < n && s[i - 1] != '_' && s[i + 1] != '_';
            if (!ok)
            {
                return -1;
            }
            continue;
        }
        bool valid = base == 16 ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
                                : (c >= '0' && c < '0' + base);
        if (!valid || o + 1 >= cap)
        {
            return -1;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

static int parse_integer(toml_parser_t *p, const char *tok, size_t n, uint32_t line, uint32_t column,
    int64_t *out)
{
    char digits[128];
    if (n >= 2 && tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'o' || tok[1] == 'b'))
    {
        int base = tok[1] == 'x' ? 16 : tok[1] == 'o' ? 8 : 2;
        int count = strip_underscores(tok + 2, n - 2, base, digits, sizeof(digits));
        if (count <= 0)
        {
            return toml_fail_at(p, line, column, "malformed %s integer '%.*s'",
                base == 16 ? "hexadecimal" : base == 8 ? "octal" : "binary", (int)n, tok);
        }
        errno = 0;
        unsigned long long v = strtoull(digits, NULL, base);
        if (errno != 0 || v > INT64_MAX)
        {
            return toml_fail_at(p, line, column, "integer '%.*s' does not fit in 64 bits", (int)n, tok);
        }
        *out = (int64_t)v;
        return 0;
    }
    size_t i = 0;
    bool negative = false;
    if (tok[0] == '+' || tok[0] == '-')
    {
        negative = tok[0] == '-';
        i = 1;
    }
    int count = strip_underscores(tok + i, n - i, 10, digits + 1, sizeof(digits) - 1);
    if (count <= 0)
    {
        return toml_fail_at(p, line, column, "malformed integer '%.*s'", (int)n, tok);
    }
    if (digits[1] == '0' && count > 1)
    {
        return toml_fail_at(p, line, column, "leading zeros are not allowed in '%.*s'", (int)n, tok);
    }
    digits[0] = negative ? '-' : '+';
    errno = 0;
    long long v = strtoll(digits, NULL, 10);
    if (errno != 0)
    {
        return toml_fail_at(p, line, column, "integer '%.*s' does not fit in 64 bits", (int)n, tok);
    }
    *out = v;
    return 0;
}

static int parse_float(toml_parser_t *p, const char *tok, size_t n, uint32_t line, uint32_t column, double *out)
{
    size_t i = 0;
    bool negative = false;
    if (tok[0] == '+' || tok[0] == '-')
    {
        negative = tok[0] == '-';
        i = 1;
    }
    if (n - i == 3 && (memcmp(tok + i, "inf", 3) == 0 || memcmp(tok + i, "nan", 3) == 0))
    {
        *out = tok[i] == 'i' ? (negative ? -INFINITY : INFINITY) : (negative ? -NAN : NAN);
        return 0;
    }
    /* int-part [ '.' digits ] [ (e|E) [sign] digits ], underscores only between digits */
    char clean[256];
    size_t o = 0;
    if (negative)
    {
        clean[o++] = '-';
    }
    size_t int_start = i;
    while (i < n && (is_digit(tok[i]) || tok[i] == '_'))
    {
        i++;
    }
    size_t int_len = i - int_start;
    char buf[128];
    int count = int_len > 0 ? strip_underscores(tok + int_start, int_len, 10, buf, sizeof(buf)) : -1;
    if (count <= 0 || (buf[0] == '0' && count > 1))
    {
        return toml_fail_at(p, line, column, "malformed float '%.*s'", (int)n, tok);
    }
    memcpy(clean + o, buf, (size_t)count);
    o += (size_t)count;
    bool has_frac = false;
    bool has_exp = false;
    if (i < n && tok[i] == '.')
    {
        i++;
        size_t start = i;
        while (i < n && (is_digit(tok[i]) || tok[i] == '_'))
        {
            i++;
        }
        count = strip_underscores(tok + start, i - start, 10, buf, sizeof(buf));
        if (count <= 0 || o + (size_t)count + 2 >= sizeof(clean))
        {
            return toml_fail_at(p, line, column, "malformed float '%.*s' (digits needed after '.')", (int)n, tok);
        }
        clean[o++] = '.';
        memcpy(clean + o, buf, (size_t)count);
        o += (size_t)count;
        has_frac = true;
    }
    if (i < n && (tok[i] == 'e' || tok[i] == 'E'))
    {
        i++;
        clean[o++] = 'e';
        if (i < n && (tok[i] == '+' || tok[i] == '-'))
        {
            clean[o++] = tok[i++];
        }
        size_t start = i;
        while (i < n && (is_digit(tok[i]) || tok[i] == '_'))
        {
            i++;
        }
        count = strip_underscores(tok + start, i - start, 10, buf, sizeof(buf));
        if (count <= 0 || o + (size_t)count + 1 >= sizeof(clean))
        {
            return toml_fail_at(p, line, column, "malformed float '%.*s' (exponent digits needed)", (int)n, tok);
        }
        memcpy(clean + o, buf, (size_t)count);
        o += (size_t)count;
        has_exp = true;
    }
    if (i != n || (!has_frac && !has_exp))
    {
        return toml_fail_at(p, line, column, "malformed number '%.*s'", (int)n, tok);
    }
    clean[o] = '\0';
    *out = strtod(clean, NULL);
    return 0;
}

static bool digits_at(const char *s, size_t n, size_t at, size_t count)
{
    if (at + count > n)
    {
        return false;
    }
    for (size_t i = 0; i < count; i++)
    {
        if (!is_digit(s[at + i]))
        {
            return false;
        }
    }
    return true;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

static bool valid_date(const char *s)
{
    int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int month = num2(s + 5);
    int day = num2(s + 8);
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (month < 1 || month > 12 || day < 1)
    {
        return false;
    }
    int max = days[month - 1];
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
    {
        max = 29;
    }
    return day <= max;
}

/* HH:MM:SS[.frac] at s (n bytes); returns the consumed length or 0. */
static size_t time_length(const char *s, size_t n)
{
    if (!digits_at(s, n, 0, 2) || n < 8 || s[2] != ':' || !digits_at(s, n, 3, 2) || s[5] != ':' ||
        !digits_at(s, n, 6, 2))
    {
        return 0;
    }
    if (num2(s) > 23 || num2(s + 3) > 59 || num2(s + 6) > 60)
    {
        return 0;
    }
    size_t i = 8;
    if (i < n && s[i] == '.')
    {
        i++;
        size_t start = i;
        while (i < n && is_digit(s[i]))
        {
            i++;
        }
        if (i == start)
        {
            return 0;
        }
    }
    return i;
}

/* Classify and validate a date/time token; write the normalised form (upper-case T and Z). */
static int parse_datetime(toml_parser_t *p, const char *tok, size_t n, uint32_t line, uint32_t column,
    tp_toml_value_t *v)
{
    tp_toml_type_t type;
    size_t i;
    if (n >= 10 && digits_at(tok, n, 0, 4) && tok[4] == '-' && digits_at(tok, n, 5, 2) && tok[7] == '-' &&
        digits_at(tok, n, 8, 2))
    {
        if (!valid_date(tok))
        {
            return toml_fail_at(p, line, column, "'%.10s' is not a valid date", tok);
        }
        if (n == 10)
        {
            type = TP_TOML_DATE_LOCAL;
            i = 10;
        }
        else
        {
            if (tok[10] != 'T' && tok[10] != 't' && tok[10] != ' ')
            {
                return toml_fail_at(p, line, column, "malformed date-time '%.*s'", (int)n, tok);
            }
            size_t t = time_length(tok + 11, n - 11);
            if (t == 0)
            {
                return toml_fail_at(p, line, column, "malformed time in '%.*s' (HH:MM:SS required)", (int)n, tok);
            }
            i = 11 + t;
            type = TP_TOML_DATETIME_LOCAL;
            if (i < n)
            {
                if ((tok[i] == 'Z' || tok[i] == 'z') && i + 1 == n)
                {
                    i++;
                }
                else if ((tok[i] == '+' || tok[i] == '-') && i + 6 == n && digits_at(tok, n, i + 1, 2) &&
                         tok[i + 3] == ':' && digits_at(tok, n, i + 4, 2) && num2(tok + i + 1) <= 23 &&
                         num2(tok + i + 4) <= 59)
                {
                    i += 6;
                }
                else
                {
                    return toml_fail_at(p, line, column, "malformed offset in '%.*s'", (int)n, tok);
                }
                type = TP_TOML_DATETIME;
            }
        }
    }
    else
    {
        size_t t = time_length(tok, n);
        if (t == 0 || t != n)
        {
            return toml_fail_at(p, line, column, "malformed time '%.*s' (HH:MM:SS required)", (int)n, tok);
        }
        type = TP_TOML_TIME_LOCAL;
        i = t;
    }
    if (i != n)
    {
        return toml_fail_at(p, line, column, "unexpected characters in '%.*s'", (int)n, tok);
    }
    v->type = type;
    if (tp_alloc((void **)&v->text, n + 1) < 0)
    {
        return toml_fail_at(p, line, column, "out of memory");
    }
    for (size_t k = 0; k < n; k++)
    {
        char c = tok[k];
        v->text[k] = (k == 10 && (c == 't' || c == ' ')) ? 'T' : c == 'z' ? 'Z' : c;
    }
    v->text_length = n;
    return 0;
}

static bool is_value_char(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' || c == '-' ||
           c == '_' || c == '.' || c == ':';
}

static int parse_scalar_token(toml_parser_t *p, tp_toml_value_t *v)
{
    size_t start = p->pos;
    while (is_value_char(peek(p)))
    {
        p->pos++;
    }
    /* "1979-05-27 07:32:00": a space may separate a date from its time. */
    if (p->pos - start == 10 && peek(p) == ' ' && is_digit(peek_at(p, 1)) && is_digit(peek_at(p, 2)) &&
        peek_at(p, 3) == ':' && p->src[start + 4] == '-')
    {
        p->pos++;
        while (is_value_char(peek(p)))
        {
            p->pos++;
        }
    }
    const char *tok = p->src + start;
    size_t n = p->pos - start;
    uint32_t column = (uint32_t)(start - p->line_start + 1);
    if (n == 0)
    {
        return TOML_FAIL(p, "expected a value");
    }
    if (n == 4 && memcmp(tok, "true", 4) == 0)
    {
        v->type = TP_TOML_BOOL;
        v->boolean = true;
        return 0;
    }
    if (n == 5 && memcmp(tok, "false", 5) == 0)
    {
        v->type = TP_TOML_BOOL;
        return 0;
    }
    if ((digits_at(tok, n, 0, 4) && n >= 5 && tok[4] == '-') || (digits_at(tok, n, 0, 2) && n >= 3 && tok[2] == ':'))
    {
        return parse_datetime(p, tok, n, p->line, column, v);
    }
    bool is_float = false;
    bool is_prefixed = n > 1 && tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'o' || tok[1] == 'b');
    for (size_t i = 0; i < n && !is_prefixed; i++)
    {
        if (tok[i] == '.' || tok[i] == 'e' || tok[i] == 'E' || tok[i] == 'i' || tok[i] == 'n')
        {
            is_float = true;
        }
    }
    if (is_float)
    {
        v->type = TP_TOML_FLOAT;
        return parse_float(p, tok, n, p->line, column, &v->number);
    }
    v->type = TP_TOML_INTEGER;
    return parse_integer(p, tok, n, p->line, column, &v->integer);
}

/* ---- arrays and inline tables ---- */

static int parse_array(toml_parser_t *p, tp_toml_value_t *arr)
{
    uint32_t line = p->line;
    uint32_t column = toml_column(p);
    arr->flags |= TP_TOML_F_STATIC;
    p->pos++;
    while (1)
    {
        skip_ws_nl(p);
        if (peek(p) == ']')
        {
            p->pos++;
            return 0;
        }
        if (peek(p) < 0)
        {
            return toml_fail_at(p, line, column, "unterminated array (it starts here)");
        }
        tp_toml_value_t *elem = NULL;
        if (parse_value(p, &elem) < 0)
        {
            return -1;
        }
        if (container_push(p, arr, NULL, 0, elem) < 0)
        {
            tp_toml_free(elem);
            return -1;
        }
        skip_ws_nl(p);
        if (peek(p) == ',')
        {
            p->pos++;
            continue;
        }
        if (peek(p) == ']')
        {
            p->pos++;
            return 0;
        }
        if (peek(p) < 0)
        {
            return toml_fail_at(p, line, column, "unterminated array (it starts here)");
        }
        return TOML_FAIL(p, "expected ',' or ']' in the array");
    }
}

static int insert_keyval(toml_parser_t *p, tp_toml_value_t *table, toml_key_t *k, tp_toml_value_t *v);

/* `key = value` (in a table body or an inline table), inserted into table. */
static int parse_keyval(toml_parser_t *p, tp_toml_value_t *table)
{
    toml_key_t k;
    if (parse_key(p, &k) < 0)
    {
        return -1;
    }
    if (peek(p) != '=')
    {
        key_free(&k);
        return TOML_FAIL(p, "expected '=' after the key");
    }
    p->pos++;
    skip_ws(p);
    tp_toml_value_t *v = NULL;
    if (parse_value(p, &v) < 0)
    {
        key_free(&k);
        return -1;
    }
    return insert_keyval(p, table, &k, v);
}

static int parse_inline_table(toml_parser_t *p, tp_toml_value_t *t)
{
    uint32_t line = p->line;
    uint32_t column = toml_column(p);
    p->pos++;
    skip_ws(p);
    if (peek(p) == '}')
    {
        p->pos++;
        freeze(t);
        return 0;
    }
    while (1)
    {
        skip_ws(p);
        if (peek(p) < 0 || at_newline(p))
        {
            return toml_fail_at(p, line, column, "inline table is not closed on its line (it starts here)");
        }
        if (parse_keyval(p, t) < 0)
        {
            return -1;
        }
        skip_ws(p);
        if (peek(p) == ',')
        {
            p->pos++;
            skip_ws(p);
            if (peek(p) == '}')
            {
                return TOML_FAIL(p, "a trailing comma is not allowed in an inline table (TOML 1.0)");
            }
            continue;
        }
        if (peek(p) == '}')
        {
            p->pos++;
            freeze(t);
            return 0;
        }
        if (peek(p) < 0 || at_newline(p))
        {
            return toml_fail_at(p, line, column, "inline table is not closed on its line (it starts here)");
        }
        return TOML_FAIL(p, "expected ',' or '}' in the inline table");
    }
}

static int parse_value(toml_parser_t *p, tp_toml_value_t **out)
{
    if (++p->depth > TOML_MAX_DEPTH)
    {
        return TOML_FAIL(p, "values nested deeper than %d", TOML_MAX_DEPTH);
    }
    int c = peek(p);
    tp_toml_value_t *v = value_new(p, TP_TOML_STRING, p->line, toml_column(p));
    if (v == NULL)
    {
        return -1;
    }
    int rc;
    if (c == '"' || c == '\'')
    {
        v->type = TP_TOML_STRING;
        rc = parse_string(p, true, &v->text, &v->text_length);
    }
    else if (c == '[')
    {
        v->type = TP_TOML_ARRAY;
        rc = parse_array(p, v);
    }
    else if (c == '{')
    {
        v->type = TP_TOML_TABLE;
        rc = parse_inline_table(p, v);
    }
    else if (c < 0 || at_newline(p) || c == '#')
    {
        rc = TOML_FAIL(p, "expected a value");
    }
    else
    {
        rc = parse_scalar_token(p, v);
    }
    p->depth--;
    if (rc < 0)
    {
        tp_toml_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- keys into tables: the redefinition rules ---- */

/* Walk the dotted prefix of k from table (key/value pairs): intermediate tables must be ones dotted keys made or
 * ones a header path created implicitly, never tables defined by a header or inline. */
static int insert_keyval(toml_parser_t *p, tp_toml_value_t *table, toml_key_t *k, tp_toml_value_t *v)
{
    tp_toml_value_t *t = table;
    int rc = -1;
    for (int i = 0; i < k->count - 1; i++)
    {
        tp_toml_value_t *child = table_find(t, k->parts[i], k->lengths[i]);
        if (child == NULL)
        {
            child = table_add_table(p, t, k->parts[i], k->lengths[i], TP_TOML_F_DOTTED, k->line, k->column);
            if (child == NULL)
            {
                goto done;
            }
        }
        else if (child->type != TP_TOML_TABLE)
        {
            toml_fail_at(p, k->line, k->column, "key '%s' already holds a value that is not a table", k->parts[i]);
            goto done;
        }
        else if ((child->flags & TP_TOML_F_INLINE) != 0)
        {
            toml_fail_at(p, k->line, k->column, "inline table '%s' cannot be extended", k->parts[i]);
            goto done;
        }
        else if ((child->flags & TP_TOML_F_HEADER) != 0)
        {
            toml_fail_at(p, k->line, k->column, "table '%s' was defined by a [header]; dotted keys cannot extend it",
                k->parts[i]);
            goto done;
        }
        /* Dotted keys may extend a table a header path created implicitly; from then on it counts as defined by
         * dotted keys, so no later [header] may define it. */
        child->flags = TP_TOML_F_DOTTED;
        t = child;
    }
    int last = k->count - 1;
    if (table_find(t, k->parts[last], k->lengths[last]) != NULL)
    {
        toml_fail_at(p, k->line, k->column, "duplicate key '%s'", k->parts[last]);
        goto done;
    }
    if (container_push(p, t, k->parts[last], k->lengths[last], v) < 0)
    {
        goto done;
    }
    k->parts[last] = NULL;
    v = NULL;
    rc = 0;
done:
    tp_toml_free(v);
    key_free(k);
    return rc;
}

static int parse_header(toml_parser_t *p)
{
    uint32_t line = p->line;
    uint32_t column = toml_column(p);
    bool is_array = peek_at(p, 1) == '[';
    p->pos += is_array ? 2 : 1;
    toml_key_t k;
    if (parse_key(p, &k) < 0)
    {
        return -1;
    }
    if (peek(p) != ']' || (is_array && peek_at(p, 1) != ']'))
    {
        key_free(&k);
        return toml_fail_at(p, line, column, is_array ? "expected ']]' to close the array-of-tables header"
                                                      : "expected ']' to close the table header");
    }
    p->pos += is_array ? 2 : 1;
    tp_toml_value_t *t = p->root;
    for (int i = 0; i < k.count - 1; i++)
    {
        tp_toml_value_t *child = table_find(t, k.parts[i], k.lengths[i]);
        if (child == NULL)
        {
            child = table_add_table(p, t, k.parts[i], k.lengths[i], TP_TOML_F_IMPLICIT, line, column);
            if (child == NULL)
            {
                key_free(&k);
                return -1;
            }
        }
        else if (child->type == TP_TOML_ARRAY && (child->flags & TP_TOML_F_AOT) != 0 && child->count > 0)
        {
            child = child->members[child->count - 1].value;
        }
        else if (child->type != TP_TOML_TABLE || (child->flags & TP_TOML_F_INLINE) != 0)
        {
            int rc = toml_fail_at(p, line, column, "'%s' is %s, which a table header cannot extend", k.parts[i],
                child->type == TP_TOML_TABLE ? "an inline table" : "a value");
            key_free(&k);
            return rc;
        }
        t = child;
    }
    int last = k.count - 1;
    tp_toml_value_t *existing = table_find(t, k.parts[last], k.lengths[last]);
    if (is_array)
    {
        if (existing == NULL)
        {
            existing = value_new(p, TP_TOML_ARRAY, line, column);
            char *key = existing != NULL ? dup_key(p, k.parts[last], k.lengths[last]) : NULL;
            if (key == NULL || container_push(p, t, key, k.lengths[last], existing) < 0)
            {
                tp_free(key);
                tp_toml_free(existing);
                key_free(&k);
                return -1;
            }
            existing->flags = TP_TOML_F_AOT;
        }
        else if (existing->type != TP_TOML_ARRAY || (existing->flags & TP_TOML_F_AOT) == 0)
        {
            int rc = toml_fail_at(p, line, column, "'%s' is already defined and is not an array of tables",
                k.parts[last]);
            key_free(&k);
            return rc;
        }
        tp_toml_value_t *elem = value_new(p, TP_TOML_TABLE, line, column);
        if (elem == NULL || container_push(p, existing, NULL, 0, elem) < 0)
        {
            tp_toml_free(elem);
            key_free(&k);
            return -1;
        }
        elem->flags = TP_TOML_F_HEADER;
        p->current = elem;
        key_free(&k);
        return 0;
    }
    if (existing == NULL)
    {
        existing = table_add_table(p, t, k.parts[last], k.lengths[last], TP_TOML_F_HEADER, line, column);
        if (existing == NULL)
        {
            key_free(&k);
            return -1;
        }
    }
    else if (existing->type == TP_TOML_TABLE && existing->flags == TP_TOML_F_IMPLICIT)
    {
        existing->flags = TP_TOML_F_HEADER;
        existing->line = line;
        existing->column = column;
    }
    else
    {
        int rc = toml_fail_at(p, line, column, "table '%s' is already defined", k.parts[last]);
        key_free(&k);
        return rc;
    }
    p->current = existing;
    key_free(&k);
    return 0;
}

static int expect_line_end(toml_parser_t *p, const char *after)
{
    skip_ws(p);
    if (peek(p) == '#')
    {
        skip_comment(p);
    }
    if (peek(p) < 0)
    {
        return 0;
    }
    if (!at_newline(p))
    {
        return TOML_FAIL(p, "expected a newline after %s", after);
    }
    consume_newline(p);
    return 0;
}

static int parse_document(toml_parser_t *p)
{
    if (starts_with(p, "\xEF\xBB\xBF"))
    {
        p->pos = 3;
        p->line_start = 3;
    }
    while (1)
    {
        skip_ws(p);
        int c = peek(p);
        if (c < 0)
        {
            return 0;
        }
        if (c == '#')
        {
            skip_comment(p);
            continue;
        }
        if (at_newline(p))
        {
            consume_newline(p);
            continue;
        }
        if (c == '[')
        {
            if (parse_header(p) < 0 || expect_line_end(p, "the table header") < 0)
            {
                return -1;
            }
            continue;
        }
        if (parse_keyval(p, p->current) < 0 || expect_line_end(p, "the value") < 0)
        {
            return -1;
        }
    }
}

int tp_toml_parse(tp_toml_value_t **out, const char *text, size_t length, const char *name)
{
    toml_parser_t p = { .src = text, .length = length, .line = 1, .name = name != NULL ? name : "-" };
    if (toml_check_encoding(&p) < 0)
    {
        return -1;
    }
    p.root = value_new(&p, TP_TOML_TABLE, 1, 1);
    if (p.root == NULL)
    {
        return -1;
    }
    p.root->flags = TP_TOML_F_HEADER;
    p.current = p.root;
    if (parse_document(&p) < 0)
    {
        tp_toml_free(p.root);
        return -1;
    }
    *out = p.root;
    return 0;
}
