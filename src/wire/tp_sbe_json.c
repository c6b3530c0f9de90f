/* Generic JSON for SBE messages, driven by the generated metadata: printing for `tp decode` / `tp listen`, and
 * encoding from JSON for `tp encode` and the golden-vector tests. The JSON shape is the vectors' (see
 * shared/vectors/sbe/README.md): schema field names, enums by name, optional nulls as null, ASCII var-data as
 * strings and raw var-data as lowercase hex. */
#include <ctype.h>
#include <inttypes.h>

#include "core/tp_alloc.h"
#include "core/tp_err.h"
#include "wire/tp_sbe.h"

/* "ShmPoolAnnounce" matches "ShmPoolAnnounce", "shm_pool_announce" and "shmpoolannounce". */
static bool name_matches(const char *camel, const char *query)
{
    const char *a = camel;
    const char *b = query;
    while (*a != '\0' && *b != '\0')
    {
        if (*b == '_' || *b == '-')
        {
            b++;
            continue;
        }
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
        {
            return false;
        }
        a++;
        b++;
    }
    while (*b == '_' || *b == '-')
    {
        b++;
    }
    return *a == '\0' && *b == '\0';
}

const tp_sbe_message_meta_t *tp_sbe_message_find_name(const char *name)
{
    for (size_t s = 0; s < tp_sbe_schema_count; s++)
    {
        for (uint16_t i = 0; i < tp_sbe_schemas[s]->message_count; i++)
        {
            if (name_matches(tp_sbe_schemas[s]->messages[i]->name, name))
            {
                return tp_sbe_schemas[s]->messages[i];
            }
        }
    }
    return NULL;
}

static bool prim_is_signed(tp_sbe_prim_t p)
{
    return p == TP_SBE_I8 || p == TP_SBE_I16 || p == TP_SBE_I32 || p == TP_SBE_I64;
}

static void json_scalar(tp_strbuf_t *out, const tp_sbe_field_meta_t *f, const tp_sbe_body_view_t *v, uint16_t i)
{
    if (f->presence == TP_SBE_OPTIONAL && tp_sbe_field_get_bits(v, f, i) == f->null_bits)
    {
        tp_strbuf_puts(out, "null");
        return;
    }
    int64_t value = tp_sbe_field_get_i64(v, f, i);
    if (f->enum_meta != NULL)
    {
        const char *name = tp_sbe_enum_name(f->enum_meta, value);
        if (name != NULL)
        {
            tp_strbuf_printf(out, "\"%s\"", name);
            return;
        }
    }
    if (prim_is_signed(f->prim) || f->presence == TP_SBE_CONSTANT)
    {
        tp_strbuf_printf(out, "%" PRId64, value);
    }
    else
    {
        tp_strbuf_printf(out, "%" PRIu64, tp_sbe_field_get_bits(v, f, i));
    }
}

static void json_body(tp_strbuf_t *out, const tp_sbe_body_meta_t *meta, const tp_sbe_body_view_t *v)
{
    tp_strbuf_putc(out, '{');
    bool first = true;
    for (uint16_t i = 0; i < meta->field_count; i++)
    {
        const tp_sbe_field_meta_t *f = &meta->fields[i];
        tp_strbuf_printf(out, "%s\"%s\":", first ? "" : ",", f->name);
        first = false;
        if (f->array_length > 1)
        {
            tp_strbuf_putc(out, '[');
            for (uint16_t k = 0; k < f->array_length; k++)
            {
                if (k > 0)
                {
                    tp_strbuf_putc(out, ',');
                }
                json_scalar(out, f, v, k);
            }
            tp_strbuf_putc(out, ']');
        }
        else
        {
            json_scalar(out, f, v, 0);
        }
    }
    for (uint16_t g = 0; g < meta->group_count; g++)
    {
        tp_strbuf_printf(out, "%s\"%s\":[", first ? "" : ",", meta->groups[g].name);
        first = false;
        tp_sbe_group_iter_t it;
        tp_sbe_group_iter_init(&it, v, meta, g);
        while (tp_sbe_group_iter_next(&it))
        {
            if (it.index > 1)
            {
                tp_strbuf_putc(out, ',');
            }
            json_body(out, it.meta, &it.entry);
        }
        tp_strbuf_putc(out, ']');
    }
    for (uint16_t k = 0; k < meta->var_count; k++)
    {
        tp_strbuf_printf(out, "%s\"%s\":", first ? "" : ",", meta->vars[k].name);
        first = false;
        if (meta->vars[k].is_ascii)
        {
            tp_strbuf_json_string(out, v->vars[k].data, v->vars[k].length);
        }
        else
        {
            tp_strbuf_putc(out, '"');
            tp_strbuf_hex(out, v->vars[k].data, v->vars[k].length);
            tp_strbuf_putc(out, '"');
        }
    }
    tp_strbuf_putc(out, '}');
}

void tp_sbe_fields_to_json(tp_strbuf_t *out, const tp_sbe_message_meta_t *meta, const tp_sbe_body_view_t *body)
{
    json_body(out, &meta->body, body);
}

static void json_envelope(tp_strbuf_t *out, const tp_sbe_msg_view_t *view, bool with_embedded);

/* SlotHeader.headerBytes holds a whole TensorHeader message: show it decoded as "embedded" when it is one. */
static void json_embedded(tp_strbuf_t *out, const tp_sbe_msg_view_t *view)
{
    const tp_sbe_message_meta_t *meta = view->meta;
    bool first = true;
    for (uint16_t k = 0; k < meta->body.var_count; k++)
    {
        if (meta->body.vars[k].is_ascii || view->body.vars[k].length < TP_SBE_HEADER_LENGTH)
        {
            continue;
        }
        tp_sbe_header_t h;
        tp_sbe_header_read(&h, view->body.vars[k].data, view->body.vars[k].length);
        const tp_sbe_message_meta_t *inner = tp_sbe_message_find(h.schema_id, h.template_id);
        tp_sbe_msg_view_t inner_view;
        if (inner == NULL || inner->is_headerless ||
            tp_sbe_decode(&inner_view, inner, view->body.vars[k].data, view->body.vars[k].length) < 0 ||
            inner_view.encoded_length != view->body.vars[k].length)
        {
            continue;
        }
        tp_strbuf_printf(out, "%s\"%s\":", first ? ",\"embedded\":{" : ",", meta->body.vars[k].name);
        first = false;
        json_envelope(out, &inner_view, false);
    }
    if (!first)
    {
        tp_strbuf_putc(out, '}');
    }
}

static void json_envelope(tp_strbuf_t *out, const tp_sbe_msg_view_t *view, bool with_embedded)
{
    const tp_sbe_message_meta_t *meta = view->meta;
    tp_strbuf_printf(out,
        "{\"schema_id\":%u,\"template_id\":%u,\"message\":\"%s\",\"version\":%u,\"block_length\":%u,"
        "\"framing\":\"%s\",\"length\":%zu,\"fields\":",
        view->header.schema_id, view->header.template_id, meta->name, view->header.version,
        view->header.block_length, meta->is_headerless ? "headerless" : "message_header", view->encoded_length);
    json_body(out, &meta->body, &view->body);
    if (with_embedded)
    {
        json_embedded(out, view);
    }
    tp_strbuf_putc(out, '}');
}

void tp_sbe_to_json(tp_strbuf_t *out, const tp_sbe_msg_view_t *view)
{
    json_envelope(out, view, true);
}

/* ---- JSON -> bytes ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
    {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f')
    {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F')
    {
        return c - 'A' + 10;
    }
    return -1;
}

static int value_bits(const tp_sbe_field_meta_t *f, const tp_json_t *j, uint64_t *bits)
{
    if (j->type == TP_JSON_NULL)
    {
        if (f->presence != TP_SBE_OPTIONAL)
        {
            TP_SET_ERR(TP_E_INVALID, "field '%s' is required and cannot be null", f->name);
            return -1;
        }
        *bits = f->null_bits;
        return 0;
    }
    if (j->type == TP_JSON_STRING && f->enum_meta != NULL)
    {
        for (uint32_t i = 0; i < f->enum_meta->count; i++)
        {
            if (strcmp(f->enum_meta->names[i], j->text) == 0)
            {
                *bits = (uint64_t)f->enum_meta->values[i];
                return 0;
            }
        }
        TP_SET_ERR(TP_E_INVALID, "field '%s': '%s' is not a %s value", f->name, j->text, f->enum_meta->name);
        return -1;
    }
    int64_t s;
    uint64_t u;
    size_t size = tp_sbe_prim_size(f->prim);
    if (prim_is_signed(f->prim) && tp_json_to_i64(j, &s) == 0)
    {
        int64_t lo = size == 8 ? INT64_MIN : -(INT64_C(1) << (size * 8 - 1));
        int64_t hi = size == 8 ? INT64_MAX : (INT64_C(1) << (size * 8 - 1)) - 1;
        if (s < lo || s > hi)
        {
            TP_SET_ERR(TP_E_INVALID, "field '%s': %" PRId64 " is out of range", f->name, s);
            return -1;
        }
        *bits = (uint64_t)s;
        return 0;
    }
    if (!prim_is_signed(f->prim) && tp_json_to_u64(j, &u) == 0)
    {
        if (size < 8 && u >> (size * 8) != 0)
        {
            TP_SET_ERR(TP_E_INVALID, "field '%s': %" PRIu64 " is out of range", f->name, u);
            return -1;
        }
        *bits = u;
        return 0;
    }
    TP_SET_ERR(TP_E_INVALID, "field '%s': expected an integer%s", f->name, f->enum_meta != NULL ? " or a name" : "");
    return -1;
}

static int from_json_body(tp_sbe_body_enc_t *body, const tp_json_t *obj, const char *where)
{
    const tp_sbe_body_meta_t *meta = body->meta;
    if (obj == NULL || obj->type != TP_JSON_OBJECT)
    {
        TP_SET_ERR(TP_E_INVALID, "%s: expected a JSON object", where);
        return -1;
    }
    for (const tp_json_t *m = obj->child; m != NULL; m = m->next)
    {
        bool known = false;
        for (uint16_t i = 0; i < meta->field_count && !known; i++)
        {
            known = strcmp(meta->fields[i].name, m->key) == 0;
        }
        for (uint16_t i = 0; i < meta->group_count && !known; i++)
        {
            known = strcmp(meta->groups[i].name, m->key) == 0;
        }
        for (uint16_t i = 0; i < meta->var_count && !known; i++)
        {
            known = strcmp(meta->vars[i].name, m->key) == 0;
        }
        if (!known)
        {
            TP_SET_ERR(TP_E_INVALID, "%s: unknown field '%s'", where, m->key);
            return -1;
        }
    }
    for (uint16_t i = 0; i < meta->field_count; i++)
    {
        const tp_sbe_field_meta_t *f = &meta->fields[i];
        const tp_json_t *j = tp_json_get(obj, f->name);
        if (f->presence == TP_SBE_CONSTANT)
        {
            int64_t c;
            if (j != NULL && (tp_json_to_i64(j, &c) < 0 || c != f->constant_value))
            {
                TP_SET_ERR(TP_E_INVALID, "%s: constant field '%s' must be %" PRId64, where, f->name,
                    f->constant_value);
                return -1;
            }
            continue;
        }
        if (j == NULL)
        {
            TP_SET_ERR(TP_E_INVALID, "%s: field '%s' is missing", where, f->name);
            return -1;
        }
        if (f->array_length > 1)
        {
            if (j->type != TP_JSON_ARRAY || j->count != f->array_length)
            {
                TP_SET_ERR(TP_E_INVALID, "%s: field '%s' needs an array of %u numbers", where, f->name,
                    f->array_length);
                return -1;
            }
            for (uint16_t k = 0; k < f->array_length; k++)
            {
                uint64_t bits;
                if (value_bits(f, tp_json_at(j, k), &bits) < 0)
                {
                    return -1;
                }
                tp_sbe_field_set_bits(body, f, k, bits);
            }
            continue;
        }
        uint64_t bits;
        if (value_bits(f, j, &bits) < 0)
        {
            TP_APPEND_ERR("in %s", where);
            return -1;
        }
        tp_sbe_field_set_bits(body, f, 0, bits);
    }
    for (uint16_t g = 0; g < meta->group_count; g++)
    {
        const tp_json_t *list = tp_json_get(obj, meta->groups[g].name);
        if (list == NULL || list->type != TP_JSON_ARRAY || list->count > UINT16_MAX)
        {
            TP_SET_ERR(TP_E_INVALID, "%s: group '%s' needs an array of at most 65535 objects", where,
                meta->groups[g].name);
            return -1;
        }
        tp_sbe_group_enc_t ge;
        tp_sbe_enc_group_begin(body, g, &ge, (uint16_t)list->count);
        for (const tp_json_t *entry = list->child; entry != NULL; entry = entry->next)
        {
            tp_sbe_enc_group_next(&ge);
            if (from_json_body(&ge.entry, entry, meta->groups[g].name) < 0)
            {
                return -1;
            }
        }
        tp_sbe_enc_group_end(&ge);
    }
    for (uint16_t k = 0; k < meta->var_count; k++)
    {
        const tp_sbe_var_meta_t *vm = &meta->vars[k];
        const tp_json_t *j = tp_json_get(obj, vm->name);
        if (j == NULL || j->type != TP_JSON_STRING)
        {
            TP_SET_ERR(TP_E_INVALID, "%s: var-data '%s' needs a string", where, vm->name);
            return -1;
        }
        if (vm->is_ascii)
        {
            tp_sbe_enc_var(body, k, j->text, j->length);
            continue;
        }
        if (j->length % 2 != 0)
        {
            TP_SET_ERR(TP_E_INVALID, "%s: '%s' must be hex with an even number of digits", where, vm->name);
            return -1;
        }
        size_t n = j->length / 2;
        uint8_t *bytes = NULL;
        if (n > 0 && tp_alloc((void **)&bytes, n) < 0)
        {
            return -1;
        }
        for (size_t i = 0; i < n; i++)
        {
            int hi = hex_value(j->text[2 * i]);
            int lo = hex_value(j->text[2 * i + 1]);
            if (hi < 0 || lo < 0)
            {
                tp_free(bytes);
                TP_SET_ERR(TP_E_INVALID, "%s: '%s' holds a non-hex character", where, vm->name);
                return -1;
            }
            bytes[i] = (uint8_t)(hi << 4 | lo);
        }
        tp_sbe_enc_var(body, k, bytes, n);
        tp_free(bytes);
    }
    return 0;
}

int64_t tp_sbe_from_json(const tp_sbe_message_meta_t *meta, const tp_json_t *fields, void *buffer, size_t capacity)
{
    tp_sbe_msg_enc_t e;
    tp_sbe_enc_begin(&e, meta, buffer, capacity);
    if (from_json_body(&e.body, fields, meta->name) < 0)
    {
        return -1;
    }
    return tp_sbe_enc_finish(&e);
}
