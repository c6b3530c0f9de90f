/*
 * Metadata cache: the latest DataSourceAnnounce and DataSourceMeta of every stream on the metadata stream, and
 * meta blobs reassembled under the rules of wire spec 10.3.3 / 15.9 (increasing, non-overlapping chunks covering
 * [0, total_len), CRC32C when one is given); anything else is discarded and counted.
 */
#include <inttypes.h>
#include <string.h>

#include "client/tp_metadata_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_crc32c.h"
#include "core/tp_err.h"
#include "tp_sbe_wire.h"
#include "wire/tp_sbe.h"

#define CACHE_MAX_STREAMS 256
#define CACHE_MAX_BLOB_BYTES (64u << 20)

typedef struct cache_entry
{
    uint32_t stream_id;
    uint32_t producer_id;
    uint64_t epoch;
    uint32_t meta_version;
    bool has_announce;
    char name[TP_METADATA_NAME_MAX];
    char summary[TP_METADATA_SUMMARY_MAX];
    bool has_attributes;
    size_t attr_count;
    tp_metadata_attribute_t attrs[TP_METADATA_MAX_ATTRIBUTES];
    uint8_t *attr_storage; /* keys, formats and values of attrs, NUL-separated */
    /* the blob being reassembled */
    bool blob_active;
    uint32_t blob_version;
    uint32_t blob_type;
    uint64_t blob_total;
    uint64_t blob_checksum;
    uint64_t blob_next;
    uint8_t *blob_data;
} cache_entry_t;

struct tp_metadata_cache
{
    tp_client_t *client;
    tp_bus_subscription_t *sub;
    tp_metadata_handler_t handler;
    void *clientd;
    cache_entry_t *entries[CACHE_MAX_STREAMS];
    size_t count;
    tp_metadata_counters_t counters;
};

int tp_metadata_cache_open(tp_metadata_cache_t **out, tp_client_t *client, tp_metadata_handler_t handler,
    void *clientd)
{
    *out = NULL;
    tp_metadata_cache_t *c = NULL;
    if (tp_alloc((void **)&c, sizeof(*c)) < 0)
    {
        return -1;
    }
    if (tp_bus_subscription_open(&c->sub, client->bus, client->config.metadata_channel,
            (int32_t)client->config.metadata_stream_id, NULL, NULL, NULL) < 0)
    {
        tp_free(c);
        return -1;
    }
    c->client = client;
    c->handler = handler;
    c->clientd = clientd;
    tp_client_retain(client);
    *out = c;
    return 0;
}

static void blob_drop(cache_entry_t *e)
{
    tp_free(e->blob_data);
    e->blob_data = NULL;
    e->blob_active = false;
}

int tp_metadata_cache_close(tp_metadata_cache_t *c)
{
    if (c == NULL)
    {
        return 0;
    }
    for (size_t i = 0; i < c->count; i++)
    {
        blob_drop(c->entries[i]);
        tp_free(c->entries[i]->attr_storage);
        tp_free(c->entries[i]);
    }
    tp_bus_subscription_close(c->sub);
    tp_client_t *client = c->client;
    tp_free(c);
    tp_client_release(client);
    return 0;
}

static cache_entry_t *entry_for(tp_metadata_cache_t *c, uint32_t stream_id, bool create)
{
    for (size_t i = 0; i < c->count; i++)
    {
        if (c->entries[i]->stream_id == stream_id)
        {
            return c->entries[i];
        }
    }
    if (!create || c->count == CACHE_MAX_STREAMS)
    {
        return NULL;
    }
    cache_entry_t *e = NULL;
    if (tp_alloc((void **)&e, sizeof(*e)) < 0)
    {
        return NULL;
    }
    e->stream_id = stream_id;
    c->entries[c->count++] = e;
    return e;
}

static void view_of(const cache_entry_t *e, tp_metadata_view_t *v)
{
    memset(v, 0, sizeof(*v));
    v->stream_id = e->stream_id;
    v->producer_id = e->producer_id;
    v->epoch = e->epoch;
    v->meta_version = e->meta_version;
    v->has_announce = e->has_announce;
    v->name = e->name;
    v->summary = e->summary;
    v->has_attributes = e->has_attributes;
    v->attribute_count = e->attr_count;
    v->attributes = e->attrs;
}

static void notify(tp_metadata_cache_t *c, tp_metadata_event_t event, const cache_entry_t *e,
    const tp_metadata_blob_t *blob)
{
    if (c->handler != NULL)
    {
        tp_metadata_view_t v;
        view_of(e, &v);
        c->handler(c->clientd, event, &v, blob);
    }
}

/* Copy sbe bytes into a NUL-terminated text buffer; false if it does not fit or is not printable ASCII. */
static bool copy_ascii(char *out, size_t capacity, tp_sbe_bytes_t b)
{
    if (b.length >= capacity)
    {
        return false;
    }
    for (size_t i = 0; i < b.length; i++)
    {
        if (b.data[i] < 0x20 || b.data[i] > 0x7e)
        {
            return false;
        }
    }
    memcpy(out, b.data, b.length);
    out[b.length] = '\0';
    return true;
}

static void on_announce(tp_metadata_cache_t *c, const uint8_t *buffer, size_t length)
{
    tp_wire_data_source_announce_t m;
    char name[TP_METADATA_NAME_MAX], summary[TP_METADATA_SUMMARY_MAX];
    if (tp_wire_data_source_announce_decode(&m, buffer, length) < 0 ||
        !copy_ascii(name, sizeof(name), tp_wire_data_source_announce_name(&m)) ||
        !copy_ascii(summary, sizeof(summary), tp_wire_data_source_announce_summary(&m)))
    {
        c->counters.malformed++;
        return;
    }
    cache_entry_t *e = entry_for(c, tp_wire_data_source_announce_stream_id(&m), true);
    if (e == NULL)
    {
        return;
    }
    uint64_t epoch = tp_wire_data_source_announce_epoch(&m);
    uint32_t producer = tp_wire_data_source_announce_producer_id(&m);
    uint32_t version = tp_wire_data_source_announce_meta_version(&m);
    if (e->has_announce && epoch < e->epoch)
    {
        c->counters.stale++; /* an older producer's announce */
        return;
    }
    c->counters.announces++;
    bool is_new_source = !e->has_announce || epoch != e->epoch || producer != e->producer_id;
    if (is_new_source)
    {
        e->meta_version = 0; /* a new producer counts its versions afresh */
    }
    bool is_change = is_new_source || strcmp(name, e->name) != 0 || strcmp(summary, e->summary) != 0;
    e->has_announce = true;
    e->epoch = epoch;
    e->producer_id = producer;
    memcpy(e->name, name, sizeof(name));
    memcpy(e->summary, summary, sizeof(summary));
    if (version > e->meta_version && !e->has_attributes)
    {
        e->meta_version = version;
    }
    if (is_change)
    {
        notify(c, TP_METADATA_ANNOUNCED, e, NULL);
    }
}

static void on_meta(tp_metadata_cache_t *c, const uint8_t *buffer, size_t length)
{
    tp_wire_data_source_meta_t m;
    if (tp_wire_data_source_meta_decode(&m, buffer, length) < 0)
    {
        c->counters.malformed++;
        return;
    }
    cache_entry_t *e = entry_for(c, tp_wire_data_source_meta_stream_id(&m), true);
    if (e == NULL)
    {
        return;
    }
    uint32_t version = tp_wire_data_source_meta_meta_version(&m);
    if (e->has_attributes && version <= e->meta_version)
    {
        if (version < e->meta_version)
        {
            c->counters.stale++;
        }
        return; /* a repeat of what we hold, or older */
    }
    /* Measure, check, then copy every attribute into one block. */
    tp_wire_data_source_meta_attributes_t g;
    uint16_t count = tp_wire_data_source_meta_attributes(&m, &g);
    size_t bytes = 0;
    while (tp_wire_data_source_meta_attributes_next(&g))
    {
        tp_sbe_bytes_t k = tp_wire_data_source_meta_attributes_key(&g);
        tp_sbe_bytes_t f = tp_wire_data_source_meta_attributes_format(&g);
        tp_sbe_bytes_t v = tp_wire_data_source_meta_attributes_value(&g);
        if (k.length == 0 || k.length >= TP_METADATA_KEY_MAX || f.length >= TP_METADATA_FORMAT_MAX)
        {
            c->counters.malformed++;
            return;
        }
        bytes += k.length + f.length + v.length + 3;
    }
    if (count > TP_METADATA_MAX_ATTRIBUTES)
    {
        c->counters.malformed++;
        return;
    }
    uint8_t *storage = NULL;
    if (tp_alloc((void **)&storage, bytes > 0 ? bytes : 1) < 0)
    {
        return;
    }
    tp_wire_data_source_meta_attributes(&m, &g);
    size_t at = 0;
    size_t n = 0;
    char key[TP_METADATA_KEY_MAX], format[TP_METADATA_FORMAT_MAX];
    while (tp_wire_data_source_meta_attributes_next(&g))
    {
        tp_sbe_bytes_t v = tp_wire_data_source_meta_attributes_value(&g);
        if (!copy_ascii(key, sizeof(key), tp_wire_data_source_meta_attributes_key(&g)) ||
            !copy_ascii(format, sizeof(format), tp_wire_data_source_meta_attributes_format(&g)))
        {
            tp_free(storage);
            c->counters.malformed++;
            return;
        }
        tp_metadata_attribute_t *a = &e->attrs[n++];
        size_t kl = strlen(key) + 1, fl = strlen(format) + 1;
        memcpy(storage + at, key, kl);
        a->key = (const char *)storage + at;
        at += kl;
        memcpy(storage + at, format, fl);
        a->format = (const char *)storage + at;
        at += fl;
        memcpy(storage + at, v.data, v.length);
        a->value = storage + at;
        a->length = v.length;
        at += v.length + 1;
    }
    tp_free(e->attr_storage);
    e->attr_storage = storage;
    e->attr_count = n;
    e->has_attributes = true;
    e->meta_version = version;
    c->counters.metas++;
    notify(c, TP_METADATA_ATTRIBUTES, e, NULL);
}

static void blob_discard(tp_metadata_cache_t *c, cache_entry_t *e)
{
    blob_drop(e);
    c->counters.blobs_discarded++;
}

static void on_blob_announce(tp_metadata_cache_t *c, const uint8_t *buffer, size_t length)
{
    tp_wire_meta_blob_announce_t m;
    if (tp_wire_meta_blob_announce_decode(&m, buffer, length) < 0)
    {
        c->counters.malformed++;
        return;
    }
    cache_entry_t *e = entry_for(c, tp_wire_meta_blob_announce_stream_id(&m), true);
    if (e == NULL)
    {
        return;
    }
    if (e->blob_active)
    {
        blob_discard(c, e); /* a new blob before the last one completed */
    }
    uint64_t total = tp_wire_meta_blob_announce_total_len(&m);
    if (total > CACHE_MAX_BLOB_BYTES || tp_alloc((void **)&e->blob_data, total > 0 ? (size_t)total : 1) < 0)
    {
        c->counters.blobs_discarded++;
        return;
    }
    e->blob_active = true;
    e->blob_version = tp_wire_meta_blob_announce_meta_version(&m);
    e->blob_type = tp_wire_meta_blob_announce_blob_type(&m);
    e->blob_total = total;
    e->blob_checksum = tp_wire_meta_blob_announce_checksum(&m);
    e->blob_next = 0;
}

static void on_blob_chunk(tp_metadata_cache_t *c, const uint8_t *buffer, size_t length)
{
    tp_wire_meta_blob_chunk_t m;
    if (tp_wire_meta_blob_chunk_decode(&m, buffer, length) < 0)
    {
        c->counters.malformed++;
        return;
    }
    cache_entry_t *e = entry_for(c, tp_wire_meta_blob_chunk_stream_id(&m), false);
    if (e == NULL || !e->blob_active || tp_wire_meta_blob_chunk_meta_version(&m) != e->blob_version)
    {
        return; /* not a blob we are reassembling (we joined late, or it was discarded) */
    }
    uint64_t offset = tp_wire_meta_blob_chunk_chunk_offset(&m);
    tp_sbe_bytes_t bytes = tp_wire_meta_blob_chunk_bytes(&m);
    /* A gap (offset ahead), an overlap (offset behind), a chunk too large or past the end: discard the blob. */
    if (offset != e->blob_next || bytes.length > TP_METADATA_BLOB_CHUNK_MAX || bytes.length > e->blob_total - offset)
    {
        blob_discard(c, e);
        return;
    }
    memcpy(e->blob_data + offset, bytes.data, bytes.length);
    e->blob_next += bytes.length;
}

static void on_blob_complete(tp_metadata_cache_t *c, const uint8_t *buffer, size_t length)
{
    tp_wire_meta_blob_complete_t m;
    if (tp_wire_meta_blob_complete_decode(&m, buffer, length) < 0)
    {
        c->counters.malformed++;
        return;
    }
    cache_entry_t *e = entry_for(c, tp_wire_meta_blob_complete_stream_id(&m), false);
    if (e == NULL || !e->blob_active || tp_wire_meta_blob_complete_meta_version(&m) != e->blob_version)
    {
        return;
    }
    uint64_t checksum = tp_wire_meta_blob_complete_checksum(&m);
    bool covered = e->blob_next == e->blob_total;
    bool checksum_ok = (checksum == 0 && e->blob_checksum == 0) ||
                       (checksum == e->blob_checksum &&
                           checksum == tp_crc32c(0, e->blob_data, (size_t)e->blob_total));
    if (!covered || !checksum_ok)
    {
        blob_discard(c, e);
        return;
    }
    tp_metadata_blob_t blob = { .blob_type = e->blob_type, .meta_version = e->blob_version, .data = e->blob_data,
        .length = (size_t)e->blob_total };
    c->counters.blobs++;
    notify(c, TP_METADATA_BLOB, e, &blob);
    blob_drop(e);
}

static void on_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_metadata_cache_t *c = clientd;
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID ||
        h.version > TP_WIRE_SCHEMA_VERSION)
    {
        return; /* another schema shares the stream, or a newer one we do not read */
    }
    switch (h.template_id)
    {
    case TP_WIRE_DATA_SOURCE_ANNOUNCE_TEMPLATE_ID: on_announce(c, buffer, length); break;
    case TP_WIRE_DATA_SOURCE_META_TEMPLATE_ID: on_meta(c, buffer, length); break;
    case TP_WIRE_META_BLOB_ANNOUNCE_TEMPLATE_ID: on_blob_announce(c, buffer, length); break;
    case TP_WIRE_META_BLOB_CHUNK_TEMPLATE_ID: on_blob_chunk(c, buffer, length); break;
    case TP_WIRE_META_BLOB_COMPLETE_TEMPLATE_ID: on_blob_complete(c, buffer, length); break;
    default: break;
    }
}

int tp_metadata_cache_poll(tp_metadata_cache_t *c, int limit)
{
    return tp_bus_poll(c->sub, on_message, c, limit);
}

bool tp_metadata_cache_get(const tp_metadata_cache_t *c, uint32_t stream_id, tp_metadata_view_t *out)
{
    for (size_t i = 0; i < c->count; i++)
    {
        if (c->entries[i]->stream_id == stream_id &&
            (c->entries[i]->has_announce || c->entries[i]->has_attributes))
        {
            view_of(c->entries[i], out);
            return true;
        }
    }
    return false;
}

const tp_metadata_attribute_t *tp_metadata_find(const tp_metadata_view_t *v, const char *key)
{
    for (size_t i = 0; i < v->attribute_count; i++)
    {
        if (strcmp(v->attributes[i].key, key) == 0)
        {
            return &v->attributes[i];
        }
    }
    return NULL;
}

void tp_metadata_cache_counters(const tp_metadata_cache_t *c, tp_metadata_counters_t *out)
{
    *out = c->counters;
}
