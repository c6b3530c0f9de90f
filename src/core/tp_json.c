/* JSON reader; see tp_json.h. Recursive descent with a depth limit so hostile input cannot blow the stack. */
#include "core/tp_json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_err.h"
#include "core/tp_strbuf.h"

#define JSON_MAX_DEPTH 256

typedef struct json_parser
{
    const char *text;
    size_t length;
    size_t pos;
    int depth;
} json_parser_t;

static int json_value(json_parser_t *p, tp_json_t **out);

static void json_position(const json_parser_t *p, size_t *line, size_t *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < p->pos && i < p->length; i++)
    {
        if (p->text[i] == '\n')
        {
            (*line)++;
            *column = 1;
        }
        else
        {
            (*column)++;
        }
    }
}

static int json_fail(const json_parser_t *p, const char *what)
{
    size_t line;
    size_t column;
    json_position(p, &line, &column);
    TP_SET_ERR(TP_E_MALFORMED, "JSON line %zu column %zu: %s", line, column, what);
    return -1;
}

static void json_skip_ws(json_parser_t *p)
{
    while (p->pos < p->length)
    {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
        {
            break;
        }
        p->pos++;
    }
}

static int json_new(tp_json_t **out, tp_json_type_t type)
{
    if (tp_alloc((void **)out, sizeof(tp_json_t)) < 0)
    {
        return -1;
    }
    (*out)->type = type;
    return 0;
}

static int json_hex4(json_parser_t *p, uint32_t *out)
{
    if (p->pos + 4 > p->length)
    {
        return json_fail(p, "truncated \\u escape");
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
    {
        char c = p->text[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9')
        {
            v |= (uint32_t)(c - '0');
        }
        else if (c >= 'a' && c <= 'f')
        {
            v |= (uint32_t)(c - 'a' + 10);
        }
        else if (c >= 'A' && c <= 'F')
        {
            v |= (uint32_t)(c - 'A' + 10);
        }
        else
        {
            return json_fail(p, "bad hex digit in \\u escape");
        }
    }
    *out = v;
    return 0;
}

static int json_escape_char(json_parser_t *p, tp_strbuf_t *b)
{
    if (p->pos >= p->length)
    {
        return json_fail(p, "truncated escape");
    }
    char e = p->text[p->pos++];
    switch (e)
    {
    case '"': tp_strbuf_putc(b, '"'); return 0;
    case '\\': tp_strbuf_putc(b, '\\'); return 0;
    case '/': tp_strbuf_putc(b, '/'); return 0;
    case 'b': tp_strbuf_putc(b, '\b'); return 0;
    case 'f': tp_strbuf_putc(b, '\f'); return 0;
    case 'n': tp_strbuf_putc(b, '\n'); return 0;
    case 'r': tp_strbuf_putc(b, '\r'); return 0;
    case 't': tp_strbuf_putc(b, '\t'); return 0;
    case 'u':
    {
        uint32_t cp;
        if (json_hex4(p, &cp) < 0)
        {
            return -1;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF)
        {
            uint32_t lo;
            if (p->pos + 2 > p->length || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u')
            {
                return json_fail(p, "unpaired surrogate");
            }
            p->pos += 2;
            if (json_hex4(p, &lo) < 0)
            {
                return -1;
            }
            if (lo < 0xDC00 || lo > 0xDFFF)
            {
                return json_fail(p, "unpaired surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        else if (cp >= 0xDC00 && cp <= 0xDFFF)
        {
            return json_fail(p, "unpaired surrogate");
        }
        tp_strbuf_put_utf8(b, cp);
        return 0;
    }
    default: return json_fail(p, "unknown escape");
    }
}

static int json_string_raw(json_parser_t *p, char **out, size_t *out_length)
{
    tp_strbuf_t b;
    tp_strbuf_init(&b);
    p->pos++; /* opening quote */
    while (1)
    {
        if (p->pos >= p->length)
        {
            tp_strbuf_fini(&b);
            return json_fail(p, "unterminated string");
        }
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c == '"')
        {
            p->pos++;
            break;
        }
        if (c < 0x20)
        {
            tp_strbuf_fini(&b);
            return json_fail(p, "control character in string");
        }
        if (c == '\\')
        {
            p->pos++;
            if (json_escape_char(p, &b) < 0)
            {
                tp_strbuf_fini(&b);
                return -1;
            }
            continue;
        }
        tp_strbuf_putc(&b, (char)c);
        p->pos++;
    }
    tp_strbuf_append(&b, "", 0);
    if (b.has_error || b.data == NULL)
    {
        char *empty = NULL;
        tp_strbuf_fini(&b);
        if (tp_alloc((void **)&empty, 1) < 0)
        {
            return -1;
        }
        *out = empty;
        *out_length = 0;
        return 0;
    }
    *out = b.data;
    *out_length = b.length;
    return 0;
}

static int json_number(json_parser_t *p, tp_json_t **out)
{
    size_t start = p->pos;
    if (p->pos < p->length && p->text[p->pos] == '-')
    {
        p->pos++;
    }
    size_t digits = p->pos;
    while (p->pos < p->length && p->text[p->pos] >= '0' && p->text[p->pos] <= '9')
    {
        p->pos++;
    }
    if (p->pos == digits)
    {
        return json_fail(p, "expected a value");
    }
    if (p->text[digits] == '0' && p->pos - digits > 1)
    {
        return json_fail(p, "leading zero in number");
    }
    if (p->pos < p->length && p->text[p->pos] == '.')
    {
        p->pos++;
        size_t frac = p->pos;
        while (p->pos < p->length && p->text[p->pos] >= '0' && p->text[p->pos] <= '9')
        {
            p->pos++;
        }
        if (p->pos == frac)
        {
            return json_fail(p, "digits expected after '.'");
        }
    }
    if (p->pos < p->length && (p->text[p->pos] == 'e' || p->text[p->pos] == 'E'))
    {
        p->pos++;
        if (p->pos < p->length && (p->text[p->pos] == '+' || p->text[p->pos] == '-'))
        {
            p->pos++;
        }
        size_t exp = p->pos;
        while (p->pos < p->length && p->text[p->pos] >= '0' && p->text[p->pos] <= '9')
        {
            p->pos++;
        }
        if (p->pos == exp)
        {
            return json_fail(p, "digits expected in exponent");
        }
    }
    if (json_new(out, TP_JSON_NUMBER) < 0)
    {
        return -1;
    }
    size_t n = p->pos - start;
    if (tp_alloc((void **)&(*out)->text, n + 1) < 0)
    {
        return -1;
    }
    memcpy((*out)->text, p->text + start, n);
    (*out)->length = n;
    return 0;
}

static int json_literal(json_parser_t *p, const char *word, tp_json_type_t type, bool value, tp_json_t **out)
{
    size_t n = strlen(word);
    if (p->pos + n > p->length || memcmp(p->text + p->pos, word, n) != 0)
    {
        return json_fail(p, "unexpected token");
    }
    p->pos += n;
    if (json_new(out, type) < 0)
    {
        return -1;
    }
    (*out)->boolean = value;
    return 0;
}

static int json_container(json_parser_t *p, tp_json_t **out, bool is_object)
{
    if (++p->depth > JSON_MAX_DEPTH)
    {
        return json_fail(p, "nesting too deep");
    }
    if (json_new(out, is_object ? TP_JSON_OBJECT : TP_JSON_ARRAY) < 0)
    {
        return -1;
    }
    char close = is_object ? '}' : ']';
    tp_json_t **tail = &(*out)->child;
    p->pos++;
    json_skip_ws(p);
    if (p->pos < p->length && p->text[p->pos] == close)
    {
        p->pos++;
        p->depth--;
        return 0;
    }
    while (1)
    {
        char *key = NULL;
        size_t key_length = 0;
        json_skip_ws(p);
        if (is_object)
        {
            if (p->pos >= p->length || p->text[p->pos] != '"')
            {
                return json_fail(p, "expected a member name");
            }
            if (json_string_raw(p, &key, &key_length) < 0)
            {
                return -1;
            }
            json_skip_ws(p);
            if (p->pos >= p->length || p->text[p->pos] != ':')
            {
                tp_free(key);
                return json_fail(p, "expected ':'");
            }
            p->pos++;
        }
        tp_json_t *value = NULL;
        if (json_value(p, &value) < 0)
        {
            tp_free(key);
            tp_json_free(value);
            return -1;
        }
        value->key = key;
        *tail = value;
        tail = &value->next;
        (*out)->count++;
        json_skip_ws(p);
        if (p->pos < p->length && p->text[p->pos] == ',')
        {
            p->pos++;
            continue;
        }
        if (p->pos < p->length && p->text[p->pos] == close)
        {
            p->pos++;
            p->depth--;
            return 0;
        }
        return json_fail(p, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int json_value(json_parser_t *p, tp_json_t **out)
{
    json_skip_ws(p);
    if (p->pos >= p->length)
    {
        return json_fail(p, "unexpected end of input");
    }
    char c = p->text[p->pos];
    switch (c)
    {
    case '{': return json_container(p, out, true);
    case '[': return json_container(p, out, false);
    case '"':
        if (json_new(out, TP_JSON_STRING) < 0)
        {
            return -1;
        }
        return json_string_raw(p, &(*out)->text, &(*out)->length);
    case 't': return json_literal(p, "true", TP_JSON_BOOL, true, out);
    case 'f': return json_literal(p, "false", TP_JSON_BOOL, false, out);
    case 'n': return json_literal(p, "null", TP_JSON_NULL, false, out);
    default: return json_number(p, out);
    }
}

int tp_json_parse(tp_json_t **out, const char *text, size_t length)
{
    json_parser_t p = { .text = text, .length = length };
    tp_json_t *root = NULL;
    if (json_value(&p, &root) < 0)
    {
        tp_json_free(root);
        return -1;
    }
    json_skip_ws(&p);
    if (p.pos != p.length)
    {
        tp_json_free(root);
        return json_fail(&p, "trailing characters after the value");
    }
    *out = root;
    return 0;
}

void tp_json_free(tp_json_t *node)
{
    while (node != NULL)
    {
        tp_json_t *next = node->next;
        tp_json_free(node->child);
        tp_free(node->key);
        tp_free(node->text);
        tp_free(node);
        node = next;
    }
}

const tp_json_t *tp_json_get(const tp_json_t *object, const char *key)
{
    if (object == NULL || object->type != TP_JSON_OBJECT)
    {
        return NULL;
    }
    for (const tp_json_t *c = object->child; c != NULL; c = c->next)
    {
        if (c->key != NULL && strcmp(c->key, key) == 0)
        {
            return c;
        }
    }
    return NULL;
}

const tp_json_t *tp_json_at(const tp_json_t *array, size_t index)
{
    if (array == NULL || array->type != TP_JSON_ARRAY)
    {
        return NULL;
    }
    const tp_json_t *c = array->child;
    for (size_t i = 0; c != NULL && i < index; i++)
    {
        c = c->next;
    }
    return c;
}

static bool json_is_integer_text(const char *t)
{
    return strpbrk(t, ".eE") == NULL;
}

int tp_json_to_u64(const tp_json_t *node, uint64_t *out)
{
    if (node == NULL || node->type != TP_JSON_NUMBER || !json_is_integer_text(node->text) || node->text[0] == '-')
    {
        return -1;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(node->text, &end, 10);
    if (errno != 0 || *end != '\0')
    {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int tp_json_to_i64(const tp_json_t *node, int64_t *out)
{
    if (node == NULL || node->type != TP_JSON_NUMBER || !json_is_integer_text(node->text))
    {
        return -1;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(node->text, &end, 10);
    if (errno != 0 || *end != '\0')
    {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

bool tp_json_equal(const tp_json_t *a, const tp_json_t *b)
{
    if (a == NULL || b == NULL || a->type != b->type)
    {
        return a == b;
    }
    switch (a->type)
    {
    case TP_JSON_NULL: return true;
    case TP_JSON_BOOL: return a->boolean == b->boolean;
    case TP_JSON_STRING: return a->length == b->length && memcmp(a->text, b->text, a->length) == 0;
    case TP_JSON_NUMBER:
        if (json_is_integer_text(a->text) && json_is_integer_text(b->text))
        {
            return strcmp(a->text, b->text) == 0 || (strtoll(a->text, NULL, 10) == strtoll(b->text, NULL, 10) &&
                                                        strtoull(a->text, NULL, 10) == strtoull(b->text, NULL, 10));
        }
        return strtod(a->text, NULL) == strtod(b->text, NULL);
    case TP_JSON_ARRAY:
    {
        if (a->count != b->count)
        {
            return false;
        }
        for (const tp_json_t *x = a->child, *y = b->child; x != NULL; x = x->next, y = y->next)
        {
            if (!tp_json_equal(x, y))
            {
                return false;
            }
        }
        return true;
    }
    case TP_JSON_OBJECT:
    {
        if (a->count != b->count)
        {
            return false;
        }
        for (const tp_json_t *x = a->child; x != NULL; x = x->next)
        {
            if (!tp_json_equal(x, tp_json_get(b, x->key)))
            {
                return false;
            }
        }
        return true;
    }
    }
    return false;
}

static void pretty_newline(tp_strbuf_t *out, int depth)
{
    tp_strbuf_putc(out, '\n');
    for (int i = 0; i < depth; i++)
    {
        tp_strbuf_puts(out, "  ");
    }
}

void tp_json_pretty(tp_strbuf_t *out, const char *s)
{
    int depth = 0;
    bool in_string = false;
    for (const char *p = s; *p != '\0'; p++)
    {
        char c = *p;
        if (in_string)
        {
            tp_strbuf_putc(out, c);
            if (c == '\\' && p[1] != '\0')
            {
                tp_strbuf_putc(out, *++p);
            }
            else if (c == '"')
            {
                in_string = false;
            }
            continue;
        }
        switch (c)
        {
        case '"':
            in_string = true;
            tp_strbuf_putc(out, c);
            break;
        case '{':
        case '[':
            tp_strbuf_putc(out, c);
            if (p[1] == '}' || p[1] == ']')
            {
                tp_strbuf_putc(out, *++p);
                break;
            }
            pretty_newline(out, ++depth);
            break;
        case '}':
        case ']':
            pretty_newline(out, --depth);
            tp_strbuf_putc(out, c);
            break;
        case ',':
            tp_strbuf_putc(out, c);
            pretty_newline(out, depth);
            break;
        case ':': tp_strbuf_puts(out, ": "); break;
        default: tp_strbuf_putc(out, c); break;
        }
    }
}
