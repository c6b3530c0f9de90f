/* Table-driven configuration loader; see tp_config.h. */
#include "core/tp_config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_PTR(config, field) ((char *)(config) + (field)->offset)

void tp_config_report_init(tp_config_report_t *r, const char *source_name)
{
    memset(r, 0, sizeof(*r));
    tp_strbuf_init(&r->errors);
    tp_strbuf_init(&r->warnings);
    r->source_name = source_name != NULL ? source_name : "config";
}

void tp_config_report_fini(tp_config_report_t *r)
{
    tp_strbuf_fini(&r->errors);
    tp_strbuf_fini(&r->warnings);
}

static void report_line(tp_strbuf_t *b, const char *source, uint32_t line, const char *key, const char *fmt,
    va_list args) TP_PRINTF_LIKE(5, 0);

static void report_line(tp_strbuf_t *b, const char *source, uint32_t line, const char *key, const char *fmt,
    va_list args)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, args);
    if (line > 0)
    {
        tp_strbuf_printf(b, "%s:%u: %s: %s\n", source, line, key, msg);
    }
    else
    {
        tp_strbuf_printf(b, "%s: %s: %s\n", source, key, msg);
    }
}

void tp_config_error(tp_config_report_t *r, uint32_t line, const char *key, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    report_line(&r->errors, r->source_name, line, key, fmt, args);
    va_end(args);
    r->error_count++;
}

void tp_config_warning(tp_config_report_t *r, uint32_t line, const char *key, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    report_line(&r->warnings, r->source_name, line, key, fmt, args);
    va_end(args);
    r->warning_count++;
}

void tp_config_env_name(const char *key, char *out, size_t capacity)
{
    int n = snprintf(out, capacity, "TP_");
    tp_config_env_name_old(key, out + n, capacity - (size_t)n);
}

void tp_config_env_name_old(const char *key, char *out, size_t capacity)
{
    size_t i = 0;
    for (; key[i] != '\0' && i + 1 < capacity; i++)
    {
        out[i] = key[i] == '.' ? '_' : (char)toupper((unsigned char)key[i]);
    }
    out[i] = '\0';
}

/* "20000-29999" */
static int parse_range_text(const char *text, tp_config_range_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long a = strtoul(text, &end, 10);
    if (end == text || *end != '-' || errno != 0)
    {
        return -1;
    }
    const char *second = end + 1;
    unsigned long b = strtoul(second, &end, 10);
    if (end == second || *end != '\0' || errno != 0 || a > UINT32_MAX || b > UINT32_MAX)
    {
        return -1;
    }
    out->is_set = true;
    out->start = (uint32_t)a;
    out->end = (uint32_t)b;
    return 0;
}

static int parse_uint_text(const char *text, uint64_t *out)
{
    if (text[0] == '\0' || text[0] == '-' || text[0] == '+')
    {
        return -1;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0')
    {
        return -1;
    }
    *out = v;
    return 0;
}

static int store_uint(const tp_config_field_t *f, void *config, uint64_t v, const char **why)
{
    static char reason[128];
    if (v < f->min || v > f->max)
    {
        snprintf(reason, sizeof(reason), "%" PRIu64 " is outside %" PRIu64 "..%" PRIu64, v, f->min, f->max);
        *why = reason;
        return -1;
    }
    switch (f->kind)
    {
    case TP_CFG_U16: *(uint16_t *)(void *)FIELD_PTR(config, f) = (uint16_t)v; break;
    case TP_CFG_U32:
    case TP_CFG_MODE: *(uint32_t *)(void *)FIELD_PTR(config, f) = (uint32_t)v; break;
    default: *(uint64_t *)(void *)FIELD_PTR(config, f) = v; break;
    }
    return 0;
}

static int store_string(const tp_config_field_t *f, void *config, const char *text, size_t length, const char **why)
{
    if (length >= TP_CONFIG_STRING_MAX || memchr(text, '\0', length) != NULL)
    {
        *why = "is longer than 255 bytes or holds a NUL";
        return -1;
    }
    char *dst = FIELD_PTR(config, f);
    memcpy(dst, text, length);
    dst[length] = '\0';
    return 0;
}

int tp_config_parse_text(const tp_config_field_t *f, void *config, const char *text, const char **why)
{
    uint64_t v;
    switch (f->kind)
    {
    case TP_CFG_STRING: return store_string(f, config, text, strlen(text), why);
    case TP_CFG_BOOL:
        if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
        {
            *(bool *)(void *)FIELD_PTR(config, f) = true;
            return 0;
        }
        if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
        {
            *(bool *)(void *)FIELD_PTR(config, f) = false;
            return 0;
        }
        *why = "must be true or false";
        return -1;
    case TP_CFG_U16:
    case TP_CFG_U32:
    case TP_CFG_U64:
        if (parse_uint_text(text, &v) < 0)
        {
            *why = "is not a non-negative integer";
            return -1;
        }
        return store_uint(f, config, v, why);
    case TP_CFG_MODE:
    {
        if (strlen(text) < 3 || strlen(text) > 4 || strspn(text, "01234567") != strlen(text))
        {
            *why = "must be an octal permission string such as \"660\" or \"2770\"";
            return -1;
        }
        v = strtoull(text, NULL, 8);
        return store_uint(f, config, v, why);
    }
    case TP_CFG_RANGE:
    {
        tp_config_range_t *r = (tp_config_range_t *)(void *)FIELD_PTR(config, f);
        if (text[0] == '\0')
        {
            memset(r, 0, sizeof(*r));
            return 0;
        }
        if (parse_range_text(text, r) < 0)
        {
            *why = "must be an inclusive range \"start-end\" (or [start, end])";
            return -1;
        }
        if (r->start > r->end)
        {
            *why = "has start > end";
            return -1;
        }
        return 0;
    }
    case TP_CFG_STRING_LIST:
    {
        /* environment form: comma-separated */
        tp_config_string_list_t *l = (tp_config_string_list_t *)(void *)FIELD_PTR(config, f);
        memset(l, 0, sizeof(*l));
        const char *p = text;
        while (*p != '\0')
        {
            const char *comma = strchr(p, ',');
            size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
            if (l->count == TP_CONFIG_LIST_MAX || n >= TP_CONFIG_STRING_MAX)
            {
                *why = "has too many or too long entries";
                return -1;
            }
            memcpy(l->items[l->count], p, n);
            l->items[l->count][n] = '\0';
            l->count++;
            p += n;
            if (*p == ',')
            {
                p++;
            }
        }
        return 0;
    }
    }
    *why = "has an unsupported type";
    return -1;
}

void tp_config_apply_defaults(const tp_config_field_t *fields, size_t count, void *config)
{
    for (size_t i = 0; i < count; i++)
    {
        const char *why = NULL;
        if (fields[i].default_text != NULL)
        {
            tp_config_parse_text(&fields[i], config, fields[i].default_text, &why);
        }
    }
}

/* Follow a dotted key through nested tables. */
static const tp_toml_value_t *toml_lookup(const tp_toml_value_t *root, const char *key)
{
    char part[128];
    const tp_toml_value_t *t = root;
    const char *p = key;
    while (t != NULL)
    {
        const char *dot = strchr(p, '.');
        size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(part))
        {
            return NULL;
        }
        memcpy(part, p, n);
        part[n] = '\0';
        t = tp_toml_get(t, part);
        if (dot == NULL)
        {
            return t;
        }
        p = dot + 1;
    }
    return NULL;
}

static const char *kind_name(tp_config_kind_t k)
{
    switch (k)
    {
    case TP_CFG_STRING: return "a string";
    case TP_CFG_BOOL: return "a boolean";
    case TP_CFG_U16:
    case TP_CFG_U32:
    case TP_CFG_U64: return "an integer";
    case TP_CFG_MODE: return "an octal permission string";
    case TP_CFG_RANGE: return "a range (\"start-end\" or [start, end])";
    case TP_CFG_STRING_LIST: return "an array of strings";
    }
    return "?";
}

static int apply_toml_value(const tp_config_field_t *f, void *config, const tp_toml_value_t *v, const char **why)
{
    switch (f->kind)
    {
    case TP_CFG_STRING:
    case TP_CFG_MODE:
        if (v->type != TP_TOML_STRING)
        {
            return -1;
        }
        if (f->kind == TP_CFG_MODE)
        {
            return tp_config_parse_text(f, config, v->text, why);
        }
        return store_string(f, config, v->text, v->text_length, why);
    case TP_CFG_BOOL:
        if (v->type != TP_TOML_BOOL)
        {
            return -1;
        }
        *(bool *)(void *)FIELD_PTR(config, f) = v->boolean;
        return 0;
    case TP_CFG_U16:
    case TP_CFG_U32:
    case TP_CFG_U64:
        if (v->type != TP_TOML_INTEGER)
        {
            return -1;
        }
        if (v->integer < 0)
        {
            *why = "must not be negative";
            return -1;
        }
        return store_uint(f, config, (uint64_t)v->integer, why);
    case TP_CFG_RANGE:
        if (v->type == TP_TOML_STRING)
        {
            return tp_config_parse_text(f, config, v->text, why);
        }
        if (v->type == TP_TOML_ARRAY && v->count == 2 && v->members[0].value->type == TP_TOML_INTEGER &&
            v->members[1].value->type == TP_TOML_INTEGER)
        {
            int64_t a = v->members[0].value->integer;
            int64_t b = v->members[1].value->integer;
            if (a < 0 || b < 0 || a > UINT32_MAX || b > UINT32_MAX)
            {
                *why = "has ids outside 0..4294967295";
                return -1;
            }
            if (a > b)
            {
                *why = "has start > end";
                return -1;
            }
            tp_config_range_t *r = (tp_config_range_t *)(void *)FIELD_PTR(config, f);
            *r = (tp_config_range_t){ .is_set = true, .start = (uint32_t)a, .end = (uint32_t)b };
            return 0;
        }
        return -1;
    case TP_CFG_STRING_LIST:
    {
        if (v->type != TP_TOML_ARRAY)
        {
            return -1;
        }
        tp_config_string_list_t *l = (tp_config_string_list_t *)(void *)FIELD_PTR(config, f);
        memset(l, 0, sizeof(*l));
        for (size_t i = 0; i < v->count; i++)
        {
            const tp_toml_value_t *e = v->members[i].value;
            if (e->type != TP_TOML_STRING)
            {
                return -1;
            }
            if (l->count == TP_CONFIG_LIST_MAX || e->text_length >= TP_CONFIG_STRING_MAX)
            {
                *why = "has too many or too long entries";
                return -1;
            }
            memcpy(l->items[l->count++], e->text, e->text_length + 1);
        }
        return 0;
    }
    }
    return -1;
}

void tp_config_apply_toml(const tp_config_field_t *fields, size_t count, void *config, const tp_toml_value_t *root,
    tp_config_report_t *report, bool *is_set)
{
    for (size_t i = 0; i < count; i++)
    {
        const tp_config_field_t *f = &fields[i];
        const tp_toml_value_t *v = toml_lookup(root, f->key);
        if (v == NULL)
        {
            continue;
        }
        const char *why = NULL;
        if (apply_toml_value(f, config, v, &why) < 0)
        {
            if (why != NULL)
            {
                tp_config_error(report, v->line, f->key, "%s", why);
            }
            else
            {
                tp_config_error(report, v->line, f->key, "expected %s, found a %s", kind_name(f->kind),
                    tp_toml_type_name(v->type));
            }
            continue;
        }
        if (is_set != NULL)
        {
            is_set[i] = true;
        }
    }
}

void tp_config_apply_env(const tp_config_field_t *fields, size_t count, void *config, tp_config_report_t *report,
    bool *is_set)
{
    for (size_t i = 0; i < count; i++)
    {
        char name[128];
        char old[128];
        tp_config_env_name(fields[i].key, name, sizeof(name));
        tp_config_env_name_old(fields[i].key, old, sizeof(old));
        const char *text = getenv(name);
        if (text == NULL && (text = getenv(old)) != NULL)
        {
            tp_config_warning(report, 0, fields[i].key, "environment %s is the old name of %s: it still works, "
                "but rename it", old, name);
            snprintf(name, sizeof(name), "%s", old);
        }
        if (text == NULL)
        {
            continue;
        }
        const char *why = "is invalid";
        if (tp_config_parse_text(&fields[i], config, text, &why) < 0)
        {
            tp_config_error(report, 0, fields[i].key, "environment %s='%s' %s", name, text, why);
            continue;
        }
        if (is_set != NULL)
        {
            is_set[i] = true;
        }
    }
}

static bool key_known(const tp_config_field_t *fields, size_t count, const char *key)
{
    for (size_t i = 0; i < count; i++)
    {
        if (strcmp(fields[i].key, key) == 0)
        {
            return true;
        }
    }
    return false;
}

static bool prefix_of_known(const tp_config_field_t *fields, size_t count, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < count; i++)
    {
        if (strncmp(fields[i].key, key, n) == 0 && fields[i].key[n] == '.')
        {
            return true;
        }
    }
    return false;
}

void tp_config_warn_unknown(const tp_config_field_t *fields, size_t count, const tp_toml_value_t *table,
    const char *prefix, const char *const *allowed_tables, tp_config_report_t *report)
{
    if (table == NULL || table->type != TP_TOML_TABLE)
    {
        return;
    }
    for (size_t i = 0; i < table->count; i++)
    {
        char key[300];
        snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] != '\0' ? "." : "", table->members[i].key);
        bool allowed = false;
        for (size_t k = 0; allowed_tables != NULL && allowed_tables[k] != NULL && !allowed; k++)
        {
            allowed = strcmp(allowed_tables[k], key) == 0;
        }
        if (allowed || key_known(fields, count, key))
        {
            continue;
        }
        const tp_toml_value_t *v = table->members[i].value;
        if (v->type == TP_TOML_TABLE && prefix_of_known(fields, count, key))
        {
            tp_config_warn_unknown(fields, count, v, key, allowed_tables, report);
            continue;
        }
        tp_config_warning(report, v->line, key, "unknown key (ignored)");
    }
}

static void dump_value(const tp_config_field_t *f, const void *config, tp_strbuf_t *out, bool json)
{
    const char *p = (const char *)config + f->offset;
    switch (f->kind)
    {
    case TP_CFG_STRING: tp_strbuf_json_string(out, p, strlen(p)); break;
    case TP_CFG_BOOL: tp_strbuf_puts(out, *(const bool *)(const void *)p ? "true" : "false"); break;
    case TP_CFG_U16: tp_strbuf_printf(out, "%u", *(const uint16_t *)(const void *)p); break;
    case TP_CFG_U32: tp_strbuf_printf(out, "%" PRIu32, *(const uint32_t *)(const void *)p); break;
    case TP_CFG_U64: tp_strbuf_printf(out, "%" PRIu64, *(const uint64_t *)(const void *)p); break;
    case TP_CFG_MODE: tp_strbuf_printf(out, "\"%o\"", *(const uint32_t *)(const void *)p); break;
    case TP_CFG_RANGE:
    {
        const tp_config_range_t *r = (const tp_config_range_t *)(const void *)p;
        if (r->is_set)
        {
            tp_strbuf_printf(out, "\"%" PRIu32 "-%" PRIu32 "\"", r->start, r->end);
        }
        else
        {
            tp_strbuf_puts(out, "\"\"");
        }
        break;
    }
    case TP_CFG_STRING_LIST:
    {
        const tp_config_string_list_t *l = (const tp_config_string_list_t *)(const void *)p;
        tp_strbuf_putc(out, '[');
        for (size_t i = 0; i < l->count; i++)
        {
            tp_strbuf_puts(out, i > 0 ? ", " : "");
            tp_strbuf_json_string(out, l->items[i], strlen(l->items[i]));
        }
        tp_strbuf_putc(out, ']');
        break;
    }
    }
    (void)json;
}

void tp_config_dump(const tp_config_field_t *fields, size_t count, const void *config, tp_strbuf_t *out, bool json)
{
    for (size_t i = 0; i < count; i++)
    {
        if (json)
        {
            tp_strbuf_printf(out, "%s\"%s\":", i > 0 ? "," : "", fields[i].key);
        }
        else
        {
            tp_strbuf_printf(out, "%s = ", fields[i].key);
        }
        dump_value(&fields[i], config, out, json);
        if (!json)
        {
            tp_strbuf_putc(out, '\n');
        }
    }
}

/* table.key, its full name in `full` for messages; NULL when absent (an error if it is required). */
static const tp_toml_value_t *config_lookup(const tp_toml_value_t *table, const char *key, bool is_required,
    const char *where, tp_config_report_t *report, char *full, size_t full_capacity)
{
    const tp_toml_value_t *v = tp_toml_get(table, key);
    snprintf(full, full_capacity, "%s.%s", where, key);
    if (v == NULL && is_required)
    {
        tp_config_error(report, table != NULL ? table->line : 0, full, "is required");
    }
    return v;
}

bool tp_config_get_u32(const tp_toml_value_t *table, const char *key, uint64_t min, uint64_t max, uint32_t *out,
    bool is_required, const char *where, tp_config_report_t *report)
{
    char full[300];
    const tp_toml_value_t *v = config_lookup(table, key, is_required, where, report, full, sizeof(full));
    if (v == NULL)
    {
        return false;
    }
    if (v->type != TP_TOML_INTEGER)
    {
        tp_config_error(report, v->line, full, "expected an integer, found a %s", tp_toml_type_name(v->type));
        return false;
    }
    if (v->integer < 0 || (uint64_t)v->integer < min || (uint64_t)v->integer > max)
    {
        tp_config_error(report, v->line, full, "%" PRId64 " is outside %" PRIu64 "..%" PRIu64, v->integer, min, max);
        return false;
    }
    *out = (uint32_t)v->integer;
    return true;
}

bool tp_config_get_string(const tp_toml_value_t *table, const char *key, char *out, size_t capacity,
    bool is_required, const char *where, tp_config_report_t *report)
{
    char full[300];
    const tp_toml_value_t *v = config_lookup(table, key, is_required, where, report, full, sizeof(full));
    if (v == NULL)
    {
        return false;
    }
    if (v->type != TP_TOML_STRING || v->text_length >= capacity)
    {
        tp_config_error(report, v->line, full, v->type != TP_TOML_STRING ? "expected a string" : "is too long");
        return false;
    }
    memcpy(out, v->text, v->text_length + 1);
    return true;
}

bool tp_config_ranges_overlap(const tp_config_range_t *a, const tp_config_range_t *b)
{
    return a->is_set && b->is_set && a->start <= b->end && b->start <= a->end;
}

bool tp_config_range_contains(const tp_config_range_t *r, uint32_t id)
{
    return r->is_set && id >= r->start && id <= r->end;
}

void tp_config_read(const tp_config_field_t *fields, size_t count, void *config, size_t config_size,
    const tp_toml_value_t *doc, const char *const *sections, tp_config_report_t *report, bool *is_set)
{
    memset(is_set, 0, count * sizeof(is_set[0]));
    memset(config, 0, config_size);
    tp_config_apply_defaults(fields, count, config);
    if (doc != NULL)
    {
        tp_config_apply_toml(fields, count, config, doc, report, is_set);
        tp_config_warn_unknown(fields, count, doc, "", sections, report);
    }
    tp_config_apply_env(fields, count, config, report, is_set);
    for (size_t i = 0; i < count; i++)
    {
        if (fields[i].is_required && !is_set[i])
        {
            tp_config_error(report, 0, fields[i].key, "is required");
        }
    }
}
