/*
 * Metadata publisher (wire spec 10.3): DataSourceAnnounce, DataSourceMeta and meta blobs for one stream, on the
 * client's metadata stream. Every change bumps meta_version and is sent at once; announce and meta repeat at the
 * configured period. Not a hot path: attribute values are allocated, messages encoded into one scratch buffer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client/tp_metadata_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_crc32c.h"
#include "core/tp_err.h"
#include "core/tp_log.h"
#include "tp_sbe_wire.h"
#include "wire/tp_sbe.h"

#define META_SEND_ATTEMPTS 1000

typedef struct meta_attr
{
    char key[TP_METADATA_KEY_MAX];
    char format[TP_METADATA_FORMAT_MAX];
    uint8_t *value;
    size_t length;
} meta_attr_t;

struct tp_metadata_publisher
{
    tp_client_t *client;
    tp_bus_publication_t *pub;
    uint32_t stream_id;
    uint32_t producer_id;
    uint64_t epoch;
    uint32_t meta_version;
    bool has_source;
    char name[TP_METADATA_NAME_MAX];
    char summary[TP_METADATA_SUMMARY_MAX];
    meta_attr_t attrs[TP_METADATA_MAX_ATTRIBUTES];
    size_t attr_count;
    int64_t period_ns;
    int64_t next_repeat_ns;
    uint8_t *scratch;
    size_t scratch_capacity;
};

/* The most a DataSourceMeta can take: every attribute at its largest, with the SBE framing. */
#define META_SCRATCH_BYTES                                                                                            \
    (1024 + TP_METADATA_MAX_ATTRIBUTES * (TP_METADATA_KEY_MAX + TP_METADATA_FORMAT_MAX + TP_METADATA_VALUE_MAX + 16))

int tp_metadata_publisher_open(tp_metadata_publisher_t **out, tp_client_t *client, uint32_t stream_id)
{
    *out = NULL;
    tp_metadata_publisher_t *m = NULL;
    if (tp_alloc((void **)&m, sizeof(*m)) < 0)
    {
        return -1;
    }
    m->client = client;
    m->stream_id = stream_id;
    m->period_ns = (int64_t)client->config.metadata_period_ms * TP_NS_PER_MS;
    m->scratch_capacity = META_SCRATCH_BYTES;
    if (tp_alloc((void **)&m->scratch, m->scratch_capacity) < 0 ||
        tp_bus_publication_open(&m->pub, client->bus, client->config.metadata_channel,
            (int32_t)client->config.metadata_stream_id, false) < 0)
    {
        TP_APPEND_ERR("opening the metadata publication of stream %" PRIu32, stream_id);
        tp_free(m->scratch);
        tp_free(m);
        return -1;
    }
    tp_client_retain(client);
    *out = m;
    return 0;
}

int tp_metadata_publisher_close(tp_metadata_publisher_t *m)
{
    if (m == NULL)
    {
        return 0;
    }
    for (size_t i = 0; i < m->attr_count; i++)
    {
        tp_free(m->attrs[i].value);
    }
    tp_bus_publication_close(m->pub);
    tp_free(m->scratch);
    tp_client_t *client = m->client;
    tp_free(m);
    tp_client_release(client);
    return 0;
}

void tp_metadata_publisher_set_identity(tp_metadata_publisher_t *m, uint32_t producer_id, uint64_t epoch)
{
    if (m->producer_id == producer_id && m->epoch == epoch)
    {
        return;
    }
    m->producer_id = producer_id;
    m->epoch = epoch;
    m->next_repeat_ns = 0; /* announce the new identity at the next tick */
}

uint32_t tp_metadata_version(const tp_metadata_publisher_t *m)
{
    return m->meta_version;
}

/* Offer with a bounded retry on back pressure (a repeat follows anyway). */
static int meta_send(tp_metadata_publisher_t *m, int64_t length, const char *what)
{
    if (length < 0)
    {
        TP_APPEND_ERR("encoding %s", what);
        return -1;
    }
    for (int attempt = 0; attempt < META_SEND_ATTEMPTS; attempt++)
    {
        int64_t rc = tp_bus_offer(m->pub, m->scratch, (size_t)length);
        if (rc > 0 || rc == TP_BUS_NOT_CONNECTED)
        {
            return 0; /* nobody listening is not an error: metadata is soft state, repeated */
        }
        if (rc == TP_BUS_CLOSED || rc == TP_BUS_MAX_MESSAGE_LENGTH_EXCEEDED)
        {
            break;
        }
        usleep(10);
    }
    TP_SET_ERR(TP_E_STATE, "%s of stream %" PRIu32 " (%" PRId64 " bytes) could not be published", what, m->stream_id,
        length);
    return -1;
}

static int send_announce(tp_metadata_publisher_t *m)
{
    tp_wire_data_source_announce_enc_t e;
    tp_wire_data_source_announce_enc_begin(&e, m->scratch, m->scratch_capacity);
    tp_wire_data_source_announce_set_stream_id(&e, m->stream_id);
    tp_wire_data_source_announce_set_producer_id(&e, m->producer_id);
    tp_wire_data_source_announce_set_epoch(&e, m->epoch);
    tp_wire_data_source_announce_set_meta_version(&e, m->meta_version);
    tp_wire_data_source_announce_put_name(&e, m->name, strlen(m->name));
    tp_wire_data_source_announce_put_summary(&e, m->summary, strlen(m->summary));
    return meta_send(m, tp_wire_data_source_announce_enc_finish(&e), "DataSourceAnnounce");
}

static int send_meta(tp_metadata_publisher_t *m)
{
    tp_wire_data_source_meta_enc_t e;
    tp_wire_data_source_meta_enc_begin(&e, m->scratch, m->scratch_capacity);
    tp_wire_data_source_meta_set_stream_id(&e, m->stream_id);
    tp_wire_data_source_meta_set_meta_version(&e, m->meta_version);
    tp_wire_data_source_meta_set_timestamp_ns(&e, (uint64_t)tp_client_now(m->client));
    tp_wire_data_source_meta_attributes_enc_t g;
    tp_wire_data_source_meta_attributes_begin(&e, &g, (uint16_t)m->attr_count);
    for (size_t i = 0; i < m->attr_count; i++)
    {
        const meta_attr_t *a = &m->attrs[i];
        tp_wire_data_source_meta_attributes_enc_next(&g);
        tp_wire_data_source_meta_attributes_put_key(&g, a->key, strlen(a->key));
        tp_wire_data_source_meta_attributes_put_format(&g, a->format, strlen(a->format));
        tp_wire_data_source_meta_attributes_put_value(&g, a->value, a->length);
    }
    tp_wire_data_source_meta_attributes_end(&g);
    return meta_send(m, tp_wire_data_source_meta_enc_finish(&e), "DataSourceMeta");
}

/* A change: a new version, sent at once (both messages carry it), then repeated. */
static int changed(tp_metadata_publisher_t *m)
{
    m->meta_version++;
    int rc = 0;
    if (m->has_source && send_announce(m) < 0)
    {
        rc = -1;
    }
    if (send_meta(m) < 0)
    {
        rc = -1;
    }
    m->next_repeat_ns = tp_client_now(m->client) + m->period_ns;
    return rc;
}

/* Printable ASCII, 1..max-1 bytes (or 0.. when empty is fine). */
static int check_text(const char *what, const char *s, size_t max, bool may_be_empty)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if ((n == 0 && !may_be_empty) || n >= max)
    {
        TP_SET_ERR(TP_E_INVALID, "%s must be %s1..%zu bytes (has %zu)", what, may_be_empty ? "0 or " : "", max - 1,
            n);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
    {
        if (s[i] < 0x20 || s[i] > 0x7e)
        {
            TP_SET_ERR(TP_E_INVALID, "%s has a byte 0x%02x at %zu; only printable ASCII is allowed", what,
                (unsigned)(uint8_t)s[i], i);
            return -1;
        }
    }
    return 0;
}

int tp_metadata_set_source(tp_metadata_publisher_t *m, const char *name, const char *summary)
{
    if (check_text("the data source name", name, TP_METADATA_NAME_MAX, false) < 0 ||
        check_text("the summary", summary != NULL ? summary : "", TP_METADATA_SUMMARY_MAX, true) < 0)
    {
        return -1;
    }
    snprintf(m->name, sizeof(m->name), "%s", name);
    snprintf(m->summary, sizeof(m->summary), "%s", summary != NULL ? summary : "");
    m->has_source = true;
    return changed(m);
}

static meta_attr_t *find_attr(tp_metadata_publisher_t *m, const char *key)
{
    for (size_t i = 0; i < m->attr_count; i++)
    {
        if (strcmp(m->attrs[i].key, key) == 0)
        {
            return &m->attrs[i];
        }
    }
    return NULL;
}

int tp_metadata_set_attribute(tp_metadata_publisher_t *m, const char *key, const char *format, const void *value,
    size_t length)
{
    if (check_text("an attribute key", key, TP_METADATA_KEY_MAX, false) < 0 ||
        check_text("an attribute format", format, TP_METADATA_FORMAT_MAX, false) < 0)
    {
        return -1;
    }
    if (length > TP_METADATA_VALUE_MAX || (length > 0 && value == NULL))
    {
        TP_SET_ERR(TP_E_INVALID, "attribute '%s': a value of %zu bytes (at most %d)", key, length,
            TP_METADATA_VALUE_MAX);
        return -1;
    }
    meta_attr_t *a = find_attr(m, key);
    if (a == NULL && m->attr_count == TP_METADATA_MAX_ATTRIBUTES)
    {
        TP_SET_ERR(TP_E_CAPACITY, "stream %" PRIu32 " already has %d attributes", m->stream_id,
            TP_METADATA_MAX_ATTRIBUTES);
        return -1;
    }
    uint8_t *copy = NULL;
    if (tp_alloc((void **)&copy, length > 0 ? length : 1) < 0)
    {
        return -1;
    }
    if (length > 0)
    {
        memcpy(copy, value, length);
    }
    if (a == NULL)
    {
        a = &m->attrs[m->attr_count++];
        snprintf(a->key, sizeof(a->key), "%s", key);
    }
    tp_free(a->value);
    snprintf(a->format, sizeof(a->format), "%s", format);
    a->value = copy;
    a->length = length;
    return changed(m);
}

int tp_metadata_set_text(tp_metadata_publisher_t *m, const char *key, const char *text)
{
    return tp_metadata_set_attribute(m, key, "text/plain", text, text != NULL ? strlen(text) : 0);
}

int tp_metadata_set_tags(tp_metadata_publisher_t *m, const char *const *tags, size_t count)
{
    char csv[16 * 64];
    size_t used = 0;
    if (count > 16)
    {
        TP_SET_ERR(TP_E_INVALID, "%zu tags; at most 16", count);
        return -1;
    }
    for (size_t i = 0; i < count; i++)
    {
        size_t n = tags[i] != NULL ? strlen(tags[i]) : 0;
        if (n == 0 || n >= 64 || strchr(tags[i], ',') != NULL || check_text("a tag", tags[i], 64, false) < 0)
        {
            TP_SET_ERR(TP_E_INVALID, "tag %zu ('%s') must be 1..63 printable characters without commas", i,
                tags[i] != NULL ? tags[i] : "");
            return -1;
        }
        used += (size_t)snprintf(csv + used, sizeof(csv) - used, "%s%s", i > 0 ? "," : "", tags[i]);
    }
    return tp_metadata_set_attribute(m, "tags", "text/plain", csv, used);
}

int tp_metadata_mirror(tp_metadata_publisher_t *m, const tp_metadata_view_t *v)
{
    if (v->has_announce &&
        (check_text("the data source name", v->name, TP_METADATA_NAME_MAX, false) < 0 ||
            check_text("the summary", v->summary != NULL ? v->summary : "", TP_METADATA_SUMMARY_MAX, true) < 0))
    {
        return -1;
    }
    if (v->has_attributes && v->attribute_count > TP_METADATA_MAX_ATTRIBUTES)
    {
        TP_SET_ERR(TP_E_CAPACITY, "%zu attributes; at most %d", v->attribute_count, TP_METADATA_MAX_ATTRIBUTES);
        return -1;
    }
    if (v->has_announce)
    {
        snprintf(m->name, sizeof(m->name), "%s", v->name);
        snprintf(m->summary, sizeof(m->summary), "%s", v->summary != NULL ? v->summary : "");
        m->has_source = true;
    }
    if (v->has_attributes)
    {
        for (size_t i = 0; i < m->attr_count; i++)
        {
            tp_free(m->attrs[i].value);
        }
        memset(m->attrs, 0, sizeof(m->attrs));
        m->attr_count = 0;
        for (size_t i = 0; i < v->attribute_count; i++)
        {
            const tp_metadata_attribute_t *a = &v->attributes[i];
            meta_attr_t *to = &m->attrs[m->attr_count];
            if (a->length > TP_METADATA_VALUE_MAX || tp_alloc((void **)&to->value, a->length > 0 ? a->length : 1) < 0)
            {
                continue; /* the cache validated it; nothing else can be wrong */
            }
            snprintf(to->key, sizeof(to->key), "%s", a->key);
            snprintf(to->format, sizeof(to->format), "%s", a->format);
            if (a->length > 0)
            {
                memcpy(to->value, a->value, a->length);
            }
            to->length = a->length;
            m->attr_count++;
        }
    }
    m->meta_version = v->meta_version - 1; /* changed() moves it on to the view's */
    return changed(m);
}

int tp_metadata_delete_attribute(tp_metadata_publisher_t *m, const char *key)
{
    meta_attr_t *a = key != NULL ? find_attr(m, key) : NULL;
    if (a == NULL)
    {
        TP_SET_ERR(TP_E_INVALID, "stream %" PRIu32 " has no attribute '%s'", m->stream_id, key != NULL ? key : "");
        return -1;
    }
    tp_free(a->value);
    *a = m->attrs[--m->attr_count]; /* order is not meaningful */
    memset(&m->attrs[m->attr_count], 0, sizeof(m->attrs[0]));
    return changed(m);
}

int tp_metadata_send_blob(tp_metadata_publisher_t *m, uint32_t blob_type, const void *data, size_t length)
{
    if (length > 0 && data == NULL)
    {
        TP_SET_ERR(TP_E_INVALID, "a blob of %zu bytes without data", length);
        return -1;
    }
    m->meta_version++;
    /* Wire spec 15.9: the checksum is CRC32C over the whole blob (0 would mean "none"; we always send one). */
    uint64_t crc = tp_crc32c(0, data, length);
    tp_wire_meta_blob_announce_enc_t a;
    tp_wire_meta_blob_announce_enc_begin(&a, m->scratch, m->scratch_capacity);
    tp_wire_meta_blob_announce_set_stream_id(&a, m->stream_id);
    tp_wire_meta_blob_announce_set_meta_version(&a, m->meta_version);
    tp_wire_meta_blob_announce_set_blob_type(&a, blob_type);
    tp_wire_meta_blob_announce_set_total_len(&a, length);
    tp_wire_meta_blob_announce_set_checksum(&a, crc);
    if (meta_send(m, tp_wire_meta_blob_announce_enc_finish(&a), "MetaBlobAnnounce") < 0)
    {
        return -1;
    }
    /* Wire spec 10.3.3: increasing, non-overlapping offsets covering [0, total_len). */
    for (size_t offset = 0; offset < length; offset += TP_METADATA_BLOB_CHUNK_MAX)
    {
        size_t n = length - offset < TP_METADATA_BLOB_CHUNK_MAX ? length - offset : TP_METADATA_BLOB_CHUNK_MAX;
        tp_wire_meta_blob_chunk_enc_t c;
        tp_wire_meta_blob_chunk_enc_begin(&c, m->scratch, m->scratch_capacity);
        tp_wire_meta_blob_chunk_set_stream_id(&c, m->stream_id);
        tp_wire_meta_blob_chunk_set_meta_version(&c, m->meta_version);
        tp_wire_meta_blob_chunk_set_chunk_offset(&c, offset);
        tp_wire_meta_blob_chunk_put_bytes(&c, (const uint8_t *)data + offset, n);
        if (meta_send(m, tp_wire_meta_blob_chunk_enc_finish(&c), "MetaBlobChunk") < 0)
        {
            return -1;
        }
    }
    tp_wire_meta_blob_complete_enc_t done;
    tp_wire_meta_blob_complete_enc_begin(&done, m->scratch, m->scratch_capacity);
    tp_wire_meta_blob_complete_set_stream_id(&done, m->stream_id);
    tp_wire_meta_blob_complete_set_meta_version(&done, m->meta_version);
    tp_wire_meta_blob_complete_set_checksum(&done, crc);
    return meta_send(m, tp_wire_meta_blob_complete_enc_finish(&done), "MetaBlobComplete");
}

int tp_metadata_publisher_do_work(tp_metadata_publisher_t *m)
{
    int64_t now = tp_client_now(m->client);
    if (m->pub != NULL)
    {
        tp_bus_publication_do_work(m->pub);
    }
    if (now < m->next_repeat_ns || (!m->has_source && m->attr_count == 0))
    {
        return 0;
    }
    m->next_repeat_ns = now + m->period_ns;
    if (m->has_source && send_announce(m) < 0)
    {
        TP_LOG_D("metadata", "%s", tp_errmsg());
    }
    if (send_meta(m) < 0)
    {
        TP_LOG_D("metadata", "%s", tp_errmsg());
    }
    return 1;
}
