/* SBE runtime: decoding walk, group iteration and the sequential encoder. See tp_sbe.h. */
#include "wire/tp_sbe.h"

#include <inttypes.h>

#include "core/tp_err.h"

size_t tp_sbe_prim_size(tp_sbe_prim_t prim)
{
    switch (prim)
    {
    case TP_SBE_U8:
    case TP_SBE_I8: return 1;
    case TP_SBE_U16:
    case TP_SBE_I16: return 2;
    case TP_SBE_U32:
    case TP_SBE_I32: return 4;
    case TP_SBE_U64:
    case TP_SBE_I64: return 8;
    }
    return 0;
}

int tp_sbe_header_read(tp_sbe_header_t *h, const void *buffer, size_t length)
{
    if (buffer == NULL || length < TP_SBE_HEADER_LENGTH)
    {
        TP_SET_ERR(TP_E_MALFORMED, "truncated SBE message: %zu bytes, the message header alone needs 8", length);
        return -1;
    }
    const uint8_t *p = buffer;
    h->block_length = tp_sbe_get_u16(p);
    h->template_id = tp_sbe_get_u16(p + 2);
    h->schema_id = tp_sbe_get_u16(p + 4);
    h->version = tp_sbe_get_u16(p + 6);
    return 0;
}

/* Walk one body (block, groups, var-data) starting at *pos; fill view. Every length is checked against limit
 * before use. */
static int sbe_walk_body(const tp_sbe_body_meta_t *meta, const uint8_t *base, size_t limit, size_t *pos,
    uint16_t block_length, tp_sbe_body_view_t *view, const char *where)
{
    if (block_length < meta->block_length)
    {
        TP_SET_ERR(TP_E_MALFORMED, "%s: block length %u is smaller than the schema's %u", where, block_length,
            meta->block_length);
        return -1;
    }
    if (*pos > limit || limit - *pos < block_length)
    {
        TP_SET_ERR(TP_E_MALFORMED, "%s: truncated: block of %u bytes at offset %zu runs past the end (%zu bytes)",
            where, block_length, *pos, limit);
        return -1;
    }
    view->base = base;
    view->limit = limit;
    view->block = base + *pos;
    view->block_length = block_length;
    *pos += block_length;
    for (uint16_t g = 0; g < meta->group_count; g++)
    {
        const tp_sbe_group_meta_t *gm = &meta->groups[g];
        if (limit - *pos < TP_SBE_GROUP_HEADER_LENGTH)
        {
            TP_SET_ERR(TP_E_MALFORMED, "%s: truncated: group '%s' header at offset %zu runs past the end", where,
                gm->name, *pos);
            return -1;
        }
        view->group_offset[g] = (uint32_t)*pos;
        uint16_t entry_block = tp_sbe_get_u16(base + *pos);
        uint16_t count = tp_sbe_get_u16(base + *pos + 2);
        *pos += TP_SBE_GROUP_HEADER_LENGTH;
        for (uint16_t i = 0; i < count; i++)
        {
            tp_sbe_body_view_t entry;
            if (sbe_walk_body(gm->body, base, limit, pos, entry_block, &entry, gm->name) < 0)
            {
                TP_APPEND_ERR("%s: group '%s' entry %u of %u", where, gm->name, i, count);
                return -1;
            }
        }
    }
    for (uint16_t v = 0; v < meta->var_count; v++)
    {
        const tp_sbe_var_meta_t *vm = &meta->vars[v];
        if (limit - *pos < TP_SBE_VAR_LENGTH_PREFIX)
        {
            TP_SET_ERR(TP_E_MALFORMED, "%s: truncated: length of '%s' at offset %zu runs past the end", where,
                vm->name, *pos);
            return -1;
        }
        uint32_t n = tp_sbe_get_u32(base + *pos);
        *pos += TP_SBE_VAR_LENGTH_PREFIX;
        if (n > vm->max_length)
        {
            TP_SET_ERR(TP_E_MALFORMED, "%s: '%s' length %" PRIu32 " exceeds the schema maximum %" PRIu32, where,
                vm->name, n, vm->max_length);
            return -1;
        }
        if (limit - *pos < n)
        {
            TP_SET_ERR(TP_E_MALFORMED, "%s: truncated: '%s' of %" PRIu32 " bytes at offset %zu runs past the end",
                where, vm->name, n, *pos);
            return -1;
        }
        view->vars[v].data = base + *pos;
        view->vars[v].length = n;
        *pos += n;
    }
    view->end = *pos;
    return 0;
}

int tp_sbe_decode(tp_sbe_msg_view_t *view, const tp_sbe_message_meta_t *meta, const void *buffer, size_t length)
{
    memset(view, 0, sizeof(*view));
    view->meta = meta;
    size_t pos = 0;
    if (buffer == NULL)
    {
        TP_SET_ERR(TP_E_MALFORMED, "%s: no buffer", meta->name);
        return -1;
    }
    if (meta->is_headerless)
    {
        view->header.block_length = meta->body.block_length;
        view->header.template_id = meta->template_id;
        view->header.schema_id = meta->schema_id;
        view->header.version = meta->schema_version;
    }
    else
    {
        if (tp_sbe_header_read(&view->header, buffer, length) < 0)
        {
            TP_APPEND_ERR("decoding %s", meta->name);
            return -1;
        }
        const tp_sbe_header_t *h = &view->header;
        if (h->schema_id != meta->schema_id)
        {
            TP_SET_ERR(TP_E_MALFORMED, "%s: schema id %u, expected %u", meta->name, h->schema_id, meta->schema_id);
            return -1;
        }
        if (h->template_id != meta->template_id)
        {
            TP_SET_ERR(TP_E_MALFORMED, "%s: template id %u, expected %u", meta->name, h->template_id,
                meta->template_id);
            return -1;
        }
        if (h->version < meta->schema_version)
        {
            TP_SET_ERR(TP_E_MALFORMED, "%s: version %u is older than this schema's %u", meta->name, h->version,
                meta->schema_version);
            return -1;
        }
        pos = TP_SBE_HEADER_LENGTH;
    }
    if (sbe_walk_body(&meta->body, buffer, length, &pos, view->header.block_length, &view->body, meta->name) < 0)
    {
        return -1;
    }
    view->encoded_length = pos;
    return 0;
}

uint16_t tp_sbe_group_iter_init(tp_sbe_group_iter_t *it, const tp_sbe_body_view_t *parent,
    const tp_sbe_body_meta_t *parent_meta, uint16_t index)
{
    memset(it, 0, sizeof(*it));
    it->meta = parent_meta->groups[index].body;
    it->base = parent->base;
    it->limit = parent->limit;
    size_t at = parent->group_offset[index];
    it->block_length = tp_sbe_get_u16(parent->base + at);
    it->count = tp_sbe_get_u16(parent->base + at + 2);
    it->pos = at + TP_SBE_GROUP_HEADER_LENGTH;
    return it->count;
}

bool tp_sbe_group_iter_next(tp_sbe_group_iter_t *it)
{
    if (it->index >= it->count)
    {
        return false;
    }
    /* The decode walk already proved this entry fits; walking again costs little and keeps us honest if the
     * caller iterates a view it built by hand. */
    if (sbe_walk_body(it->meta, it->base, it->limit, &it->pos, it->block_length, &it->entry, "group entry") < 0)
    {
        it->index = it->count;
        return false;
    }
    it->index++;
    return true;
}

uint64_t tp_sbe_field_get_bits(const tp_sbe_body_view_t *v, const tp_sbe_field_meta_t *f, uint16_t element)
{
    const uint8_t *p = v->block + f->offset + element * tp_sbe_prim_size(f->prim);
    switch (f->prim)
    {
    case TP_SBE_U8:
    case TP_SBE_I8: return tp_sbe_get_u8(p);
    case TP_SBE_U16:
    case TP_SBE_I16: return tp_sbe_get_u16(p);
    case TP_SBE_U32:
    case TP_SBE_I32: return tp_sbe_get_u32(p);
    case TP_SBE_U64:
    case TP_SBE_I64: return tp_sbe_get_u64(p);
    }
    return 0;
}

int64_t tp_sbe_field_get_i64(const tp_sbe_body_view_t *v, const tp_sbe_field_meta_t *f, uint16_t element)
{
    if (f->presence == TP_SBE_CONSTANT)
    {
        return f->constant_value;
    }
    uint64_t bits = tp_sbe_field_get_bits(v, f, element);
    switch (f->prim)
    {
    case TP_SBE_I8: return (int8_t)bits;
    case TP_SBE_I16: return (int16_t)bits;
    case TP_SBE_I32: return (int32_t)bits;
    case TP_SBE_I64: return (int64_t)bits;
    default: return (int64_t)bits;
    }
}

bool tp_sbe_enum_is_valid(const tp_sbe_enum_meta_t *e, int64_t value)
{
    return tp_sbe_enum_name(e, value) != NULL;
}

const char *tp_sbe_enum_name(const tp_sbe_enum_meta_t *e, int64_t value)
{
    for (uint32_t i = 0; i < e->count; i++)
    {
        if (e->values[i] == value)
        {
            return e->names[i];
        }
    }
    return NULL;
}

static int sbe_check_body_enums(const tp_sbe_body_meta_t *meta, const tp_sbe_body_view_t *v, const char *where)
{
    for (uint16_t i = 0; i < meta->field_count; i++)
    {
        const tp_sbe_field_meta_t *f = &meta->fields[i];
        if (f->enum_meta == NULL || f->presence == TP_SBE_CONSTANT)
        {
            continue;
        }
        if (f->presence == TP_SBE_OPTIONAL && tp_sbe_field_get_bits(v, f, 0) == f->null_bits)
        {
            continue;
        }
        int64_t value = tp_sbe_field_get_i64(v, f, 0);
        if (!tp_sbe_enum_is_valid(f->enum_meta, value))
        {
            TP_SET_ERR(TP_E_MALFORMED, "%s: field '%s' holds %" PRId64 ", which is not a valid %s value", where,
                f->name, value, f->enum_meta->name);
            return -1;
        }
    }
    for (uint16_t g = 0; g < meta->group_count; g++)
    {
        tp_sbe_group_iter_t it;
        tp_sbe_group_iter_init(&it, v, meta, g);
        while (tp_sbe_group_iter_next(&it))
        {
            if (sbe_check_body_enums(it.meta, &it.entry, meta->groups[g].name) < 0)
            {
                TP_APPEND_ERR("%s: group '%s' entry %u", where, meta->groups[g].name, it.index - 1);
                return -1;
            }
        }
    }
    return 0;
}

int tp_sbe_check_enums(const tp_sbe_msg_view_t *view)
{
    return sbe_check_body_enums(&view->meta->body, &view->body, view->meta->name);
}

/* ---- encoder ---- */

static void enc_fail(tp_sbe_cursor_t *c, int error, const char *detail)
{
    if (c->error == 0)
    {
        c->error = error;
        c->error_detail = detail;
    }
}

static uint8_t *enc_reserve(tp_sbe_cursor_t *c, size_t n)
{
    if (c->error != 0 || c->pos > c->capacity || c->capacity - c->pos < n)
    {
        enc_fail(c, TP_SBE_ENC_OVERFLOW, "buffer too small");
        return NULL;
    }
    uint8_t *p = c->buffer + c->pos;
    c->pos += n;
    return p;
}

static void enc_body_open(tp_sbe_body_enc_t *body, tp_sbe_cursor_t *c, const tp_sbe_body_meta_t *meta)
{
    body->cursor = c;
    body->meta = meta;
    body->stage = 0;
    body->open_group = NULL;
    body->block = enc_reserve(c, meta->block_length);
    if (body->block != NULL)
    {
        memset(body->block, 0, meta->block_length);
    }
}

static void enc_body_advance(tp_sbe_body_enc_t *body, uint16_t stage);

static void enc_group_close(tp_sbe_group_enc_t *g)
{
    if (g->written > 0)
    {
        enc_body_advance(&g->entry, (uint16_t)(g->meta->group_count + g->meta->var_count));
    }
    if (g->written != g->count)
    {
        enc_fail(g->parent->cursor, TP_SBE_ENC_COUNT, "a group got fewer entries than its declared count");
    }
}

/* Move body to `stage`, writing every skipped group as empty and every skipped var-data as length 0. */
static void enc_body_advance(tp_sbe_body_enc_t *body, uint16_t stage)
{
    if (body->open_group != NULL)
    {
        tp_sbe_group_enc_t *g = body->open_group;
        body->open_group = NULL;
        enc_group_close(g);
    }
    while (body->stage < stage)
    {
        uint16_t s = body->stage++;
        if (s < body->meta->group_count)
        {
            uint8_t *p = enc_reserve(body->cursor, TP_SBE_GROUP_HEADER_LENGTH);
            if (p != NULL)
            {
                tp_sbe_put_u16(p, body->meta->groups[s].body->block_length);
                tp_sbe_put_u16(p + 2, 0);
            }
        }
        else
        {
            uint8_t *p = enc_reserve(body->cursor, TP_SBE_VAR_LENGTH_PREFIX);
            if (p != NULL)
            {
                tp_sbe_put_u32(p, 0);
            }
        }
    }
}

void tp_sbe_enc_begin(tp_sbe_msg_enc_t *e, const tp_sbe_message_meta_t *meta, void *buffer, size_t capacity)
{
    e->meta = meta;
    e->cursor.buffer = buffer;
    e->cursor.capacity = buffer != NULL ? capacity : 0;
    e->cursor.pos = 0;
    e->cursor.error = 0;
    e->cursor.error_detail = NULL;
    if (!meta->is_headerless)
    {
        uint8_t *h = enc_reserve(&e->cursor, TP_SBE_HEADER_LENGTH);
        if (h != NULL)
        {
            tp_sbe_put_u16(h, meta->body.block_length);
            tp_sbe_put_u16(h + 2, meta->template_id);
            tp_sbe_put_u16(h + 4, meta->schema_id);
            tp_sbe_put_u16(h + 6, meta->schema_version);
        }
    }
    enc_body_open(&e->body, &e->cursor, &meta->body);
}

void tp_sbe_enc_group_begin(tp_sbe_body_enc_t *body, uint16_t index, tp_sbe_group_enc_t *g, uint16_t count)
{
    memset(g, 0, sizeof(*g));
    g->parent = body;
    g->meta = body->meta->groups[index].body;
    g->count = count;
    if (index < body->stage || index >= body->meta->group_count)
    {
        enc_fail(body->cursor, TP_SBE_ENC_ORDER, "a group was written after a later part of the message");
        g->count = 0;
        return;
    }
    enc_body_advance(body, index);
    body->stage = (uint16_t)(index + 1);
    uint8_t *p = enc_reserve(body->cursor, TP_SBE_GROUP_HEADER_LENGTH);
    if (p != NULL)
    {
        tp_sbe_put_u16(p, g->meta->block_length);
        tp_sbe_put_u16(p + 2, count);
    }
    body->open_group = g;
}

void tp_sbe_enc_group_next(tp_sbe_group_enc_t *g)
{
    if (g->written >= g->count)
    {
        enc_fail(g->parent->cursor, TP_SBE_ENC_COUNT, "more group entries than the declared count");
        /* Keep the entry pointing at scratch so setters stay harmless. */
        g->entry.block = NULL;
        g->entry.cursor = g->parent->cursor;
        g->entry.meta = g->meta;
        return;
    }
    if (g->written > 0)
    {
        enc_body_advance(&g->entry, (uint16_t)(g->meta->group_count + g->meta->var_count));
    }
    enc_body_open(&g->entry, g->parent->cursor, g->meta);
    g->written++;
}

void tp_sbe_enc_group_end(tp_sbe_group_enc_t *g)
{
    if (g->parent != NULL && g->parent->open_group == g)
    {
        g->parent->open_group = NULL;
        enc_group_close(g);
    }
}

void tp_sbe_enc_var(tp_sbe_body_enc_t *body, uint16_t index, const void *data, size_t length)
{
    uint16_t stage = (uint16_t)(body->meta->group_count + index);
    if (index >= body->meta->var_count || stage < body->stage)
    {
        enc_fail(body->cursor, TP_SBE_ENC_ORDER, "var-data was written out of schema order");
        return;
    }
    if (length > body->meta->vars[index].max_length)
    {
        enc_fail(body->cursor, TP_SBE_ENC_TOO_LONG, "var-data longer than the schema maximum");
        return;
    }
    enc_body_advance(body, stage);
    body->stage = (uint16_t)(stage + 1);
    uint8_t *p = enc_reserve(body->cursor, TP_SBE_VAR_LENGTH_PREFIX + length);
    if (p != NULL)
    {
        tp_sbe_put_u32(p, (uint32_t)length);
        if (length > 0)
        {
            memcpy(p + TP_SBE_VAR_LENGTH_PREFIX, data, length);
        }
    }
}

int64_t tp_sbe_enc_finish(tp_sbe_msg_enc_t *e)
{
    enc_body_advance(&e->body, (uint16_t)(e->meta->body.group_count + e->meta->body.var_count));
    if (e->cursor.error != 0)
    {
        TP_SET_ERR(e->cursor.error == TP_SBE_ENC_OVERFLOW ? TP_E_CAPACITY : TP_E_INVALID,
            "encoding %s: %s (capacity %zu)", e->meta->name, e->cursor.error_detail, e->cursor.capacity);
        return -1;
    }
    return (int64_t)e->cursor.pos;
}

void tp_sbe_field_set_bits(tp_sbe_body_enc_t *body, const tp_sbe_field_meta_t *f, uint16_t element, uint64_t bits)
{
    if (f->presence == TP_SBE_CONSTANT)
    {
        return;
    }
    size_t size = tp_sbe_prim_size(f->prim);
    uint8_t *p = tp_sbe_enc_at(body, f->offset + element * size);
    switch (size)
    {
    case 1: tp_sbe_put_u8(p, (uint8_t)bits); break;
    case 2: tp_sbe_put_u16(p, (uint16_t)bits); break;
    case 4: tp_sbe_put_u32(p, (uint32_t)bits); break;
    default: tp_sbe_put_u64(p, bits); break;
    }
}

const tp_sbe_schema_meta_t *tp_sbe_schema_find(uint16_t schema_id)
{
    for (size_t i = 0; i < tp_sbe_schema_count; i++)
    {
        if (tp_sbe_schemas[i]->id == schema_id)
        {
            return tp_sbe_schemas[i];
        }
    }
    return NULL;
}

const tp_sbe_message_meta_t *tp_sbe_message_find(uint16_t schema_id, uint16_t template_id)
{
    const tp_sbe_schema_meta_t *s = tp_sbe_schema_find(schema_id);
    for (uint16_t i = 0; s != NULL && i < s->message_count; i++)
    {
        if (s->messages[i]->template_id == template_id)
        {
            return s->messages[i];
        }
    }
    return NULL;
}
