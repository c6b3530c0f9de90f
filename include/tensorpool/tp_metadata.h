/*
 * Metadata of data sources (wire spec 10.3): who a stream is (DataSourceAnnounce: name, summary), what describes
 * it (DataSourceMeta: key -> format + value attributes) and large blobs (MetaBlobAnnounce / Chunk / Complete), all
 * tied to a meta_version that frames carry.
 *
 * Publishing: a producer has a metadata publisher (tp_producer_metadata), or one is opened on its own for a
 * stream (a supervisor describing someone else's stream, a test). Every change increments meta_version and is
 * published at once; DataSourceAnnounce and DataSourceMeta are also repeated every client.metadata_period_ms
 * (default 1000) so that late joiners learn them. Frames offered with meta_version 0 carry the current version.
 *
 *   tp_metadata_publisher_t *meta = tp_producer_metadata(producer);
 *   tp_metadata_set_source(meta, "camera-01", "front camera, 1280x720 RGB");
 *   tp_metadata_set_text(meta, "pattern", "counter");           -> meta_version 2
 *   tp_metadata_delete_attribute(meta, "pattern");              -> meta_version 3
 *
 * Reading: a metadata cache subscribes to the metadata stream and keeps, per stream, the latest announce and
 * attribute set, calling back on every change; it also reassembles blobs, discarding any with a gap, an overlap,
 * a wrong length or a CRC32C mismatch.
 */
#ifndef TENSORPOOL_TP_METADATA_H
#define TENSORPOOL_TP_METADATA_H

#include "tensorpool/tp_client.h"
#include "tensorpool/tp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_METADATA_MAX_ATTRIBUTES 64
#define TP_METADATA_KEY_MAX 128
#define TP_METADATA_FORMAT_MAX 64
#define TP_METADATA_VALUE_MAX 8192
#define TP_METADATA_NAME_MAX 256
#define TP_METADATA_SUMMARY_MAX 1024
#define TP_METADATA_BLOB_CHUNK_MAX 65536

typedef struct tp_metadata_publisher tp_metadata_publisher_t;
typedef struct tp_metadata_cache tp_metadata_cache_t;

/* ---- publishing ---- */

/* A publisher for stream_id on the client's metadata stream, on its own (producer id and epoch 0 unless set). */
TP_API int tp_metadata_publisher_open(tp_metadata_publisher_t **out, tp_client_t *client, uint32_t stream_id);
TP_API int tp_metadata_publisher_close(tp_metadata_publisher_t *publisher);
/* The producer's own publisher (owned by the producer; it follows the producer's id and epoch). */
TP_API tp_metadata_publisher_t *tp_producer_metadata(tp_producer_t *producer);

/* Name (1..255 printable ASCII bytes) and summary (up to 1023). */
TP_API int tp_metadata_set_source(tp_metadata_publisher_t *publisher, const char *name, const char *summary);
/* Add or replace an attribute: key (1..127 printable ASCII), format (a media type such as "text/plain", up to
 * 63), value (up to 8 KiB of bytes). */
TP_API int tp_metadata_set_attribute(tp_metadata_publisher_t *publisher, const char *key, const char *format,
    const void *value, size_t length);
/* The same with format "text/plain" and a NUL-terminated value. */
TP_API int tp_metadata_set_text(tp_metadata_publisher_t *publisher, const char *key, const char *text);
/* The stream's tags, for discovery: the "tags" attribute, comma-separated text (each tag 1..63 printable
 * characters, no commas; at most 16). */
TP_API int tp_metadata_set_tags(tp_metadata_publisher_t *publisher, const char *const *tags, size_t count);
/* Remove an attribute (-1 if there is no such key). */
TP_API int tp_metadata_delete_attribute(tp_metadata_publisher_t *publisher, const char *key);
/* Send a blob (any size) as MetaBlobAnnounce, chunks of at most 64 KiB in increasing offsets, and
 * MetaBlobComplete, with its CRC32C. Increments meta_version. */
TP_API int tp_metadata_send_blob(tp_metadata_publisher_t *publisher, uint32_t blob_type, const void *data,
    size_t length);
TP_API uint32_t tp_metadata_version(const tp_metadata_publisher_t *publisher);
/* Periodic repeats (tp_producer_do_work calls it for the producer's publisher). Returns the work done. */
TP_API int tp_metadata_publisher_do_work(tp_metadata_publisher_t *publisher);

/* ---- reading ---- */

typedef struct tp_metadata_attribute
{
    const char *key;
    const char *format;
    const uint8_t *value;
    size_t length;
} tp_metadata_attribute_t;

/* What a cache knows about one stream; valid until the next poll. */
typedef struct tp_metadata_view
{
    uint32_t stream_id;
    uint32_t producer_id;
    uint64_t epoch;
    uint32_t meta_version; /* of the latest DataSourceMeta (or announce, whichever is newer) */
    bool has_announce;
    const char *name;
    const char *summary;
    bool has_attributes;
    size_t attribute_count;
    const tp_metadata_attribute_t *attributes;
} tp_metadata_view_t;

typedef enum tp_metadata_event
{
    TP_METADATA_ANNOUNCED = 1,      /* name, summary, producer or epoch changed */
    TP_METADATA_ATTRIBUTES = 2,     /* a new attribute set (meta_version changed) */
    TP_METADATA_BLOB = 3,           /* a complete, verified blob */
} tp_metadata_event_t;

typedef struct tp_metadata_blob
{
    uint32_t blob_type;
    uint32_t meta_version;
    const uint8_t *data;
    size_t length;
} tp_metadata_blob_t;

/* blob is set for TP_METADATA_BLOB only (valid during the call). */
typedef void (*tp_metadata_handler_t)(void *clientd, tp_metadata_event_t event, const tp_metadata_view_t *view,
    const tp_metadata_blob_t *blob);

typedef struct tp_metadata_counters
{
    uint64_t announces;
    uint64_t metas;
    uint64_t blobs;
    uint64_t blobs_discarded; /* a gap, an overlap, a wrong length or a checksum mismatch */
    uint64_t stale;           /* an older meta_version than the one held: ignored */
    uint64_t malformed;       /* did not decode, or broke a length rule */
} tp_metadata_counters_t;

/* Publish another stream's metadata as this publisher's (a rate limiter or bridge forwarding its source): the view's
 * announce (when it has one) and attribute set (when it has one) replace ours, and its meta_version becomes ours,
 * so that forwarded frames and forwarded metadata agree. Sent at once, then repeated like any other. */
TP_API int tp_metadata_mirror(tp_metadata_publisher_t *publisher, const tp_metadata_view_t *view);

/* A cache of every stream's metadata on the client's metadata stream. handler may be NULL. */
TP_API int tp_metadata_cache_open(tp_metadata_cache_t **out, tp_client_t *client, tp_metadata_handler_t handler,
    void *clientd);
TP_API int tp_metadata_cache_close(tp_metadata_cache_t *cache);
/* Read what arrived; returns the messages read, -1 on a fatal error. */
TP_API int tp_metadata_cache_poll(tp_metadata_cache_t *cache, int limit);
/* The stream's metadata (false if nothing is known about it). */
TP_API bool tp_metadata_cache_get(const tp_metadata_cache_t *cache, uint32_t stream_id, tp_metadata_view_t *out);
/* One attribute of a view, or NULL. */
TP_API const tp_metadata_attribute_t *tp_metadata_find(const tp_metadata_view_t *view, const char *key);
TP_API void tp_metadata_cache_counters(const tp_metadata_cache_t *cache, tp_metadata_counters_t *out);

#ifdef __cplusplus
}
#endif

#endif
