/* TOML trees: freeing, lookup and the tagged JSON form; see tp_toml.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_toml.h"

void tp_toml_free(tp_toml_value_t *v)
{
    if (v == NULL)
    {
        return;
    }
    for (size_t i = 0; i < v->count; i++)
    {
        tp_free(v->members[i].key);
        tp_toml_free(v->members[i].value);
    }
    tp_free(v->members);
    tp_free(v->text);
    tp_free(v);
}

const tp_toml_value_t *tp_toml_get(const tp_toml_value_t *table, const char *key)
{
    if (table == NULL || table->type != TP_TOML_TABLE)
    {
        return NULL;
    }
    size_t n = strlen(key);
    for (size_t i = 0; i < table->count; i++)
    {
        if (table->members[i].key_length == n && memcmp(table->members[i].key, key, n) == 0)
        {
            return table->members[i].value;
        }
    }
    return NULL;
}

const char *tp_toml_type_name(tp_toml_type_t type)
{
    switch (type)
    {
    case TP_TOML_STRING: return "string";
    case TP_TOML_INTEGER: return "integer";
    case TP_TOML_FLOAT: return "float";
    case TP_TOML_BOOL: return "bool";
    case TP_TOML_DATETIME: return "datetime";
    case TP_TOML_DATETIME_LOCAL: return "datetime-local";
    case TP_TOML_DATE_LOCAL: return "date-local";
    case TP_TOML_TIME_LOCAL: return "time-local";
    case TP_TOML_ARRAY: return "array";
    case TP_TOML_TABLE: return "table";
    }
    return "unknown";
}

static void tagged_leaf(tp_strbuf_t *out, const char *type, const char *value, size_t length)
{
    tp_strbuf_printf(out, "{\"type\":\"%s\",\"value\":", type);
    tp_strbuf_json_string(out, value, length);
    tp_strbuf_putc(out, '}');
}

void tp_toml_to_tagged_json(tp_strbuf_t *out, const tp_toml_value_t *v)
{
    char num[64];
    switch (v->type)
    {
    case TP_TOML_TABLE:
        tp_strbuf_putc(out, '{');
        for (size_t i = 0; i < v->count; i++)
        {
            if (i > 0)
            {
                tp_strbuf_putc(out, ',');
            }
            tp_strbuf_json_string(out, v->members[i].key, v->members[i].key_length);
            tp_strbuf_putc(out, ':');
            tp_toml_to_tagged_json(out, v->members[i].value);
        }
        tp_strbuf_putc(out, '}');
        return;
    case TP_TOML_ARRAY:
        tp_strbuf_putc(out, '[');
        for (size_t i = 0; i < v->count; i++)
        {
            if (i > 0)
            {
                tp_strbuf_putc(out, ',');
            }
            tp_toml_to_tagged_json(out, v->members[i].value);
        }
        tp_strbuf_putc(out, ']');
        return;
    case TP_TOML_STRING: tagged_leaf(out, "string", v->text, v->text_length); return;
    case TP_TOML_INTEGER:
        snprintf(num, sizeof(num), "%lld", (long long)v->integer);
        tagged_leaf(out, "integer", num, strlen(num));
        return;
    case TP_TOML_FLOAT:
        if (isnan(v->number))
        {
            snprintf(num, sizeof(num), "nan");
        }
        else if (isinf(v->number))
        {
            snprintf(num, sizeof(num), "%sinf", v->number < 0 ? "-" : "");
        }
        else
        {
            snprintf(num, sizeof(num), "%.17g", v->number);
        }
        tagged_leaf(out, "float", num, strlen(num));
        return;
    case TP_TOML_BOOL: tagged_leaf(out, "bool", v->boolean ? "true" : "false", v->boolean ? 4 : 5); return;
    case TP_TOML_DATETIME:
    case TP_TOML_DATETIME_LOCAL:
    case TP_TOML_DATE_LOCAL:
    case TP_TOML_TIME_LOCAL: tagged_leaf(out, tp_toml_type_name(v->type), v->text, v->text_length); return;
    }
}
