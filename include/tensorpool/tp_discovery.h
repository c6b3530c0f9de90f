/*
 * Discovery (discovery spec, user guide section 4): ask a discovery provider (embedded in a driver, or the
 * standalone registry `tp discovery`) which streams exist, by data source name, tags, stream or producer id.
 * Results are advisory snapshots: attach through the driver a result names (its control channel and stream id),
 * which validates everything again; never map from a result.
 *
 *   tp_discovery_query_t q;
 *   tp_discovery_query_init(&q);
 *   q.data_source_name = "camera-1";
 *   tp_discover(client, &q, results, 16, &count, 1 s);
 *   tp_consumer_attach_by_name(&consumer, client, "camera-1", 5 s);    the same, then an ordinary attach
 *
 * Requests go to client.discovery_channel / discovery_stream_id (7000); answers come back on
 * client.discovery_response_channel / discovery_response_stream_id (7004).
 */
#ifndef TENSORPOOL_TP_DISCOVERY_H
#define TENSORPOOL_TP_DISCOVERY_H

#include "tensorpool/tp_client.h"
#include "tensorpool/tp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_DISCOVERY_QUERY_MAX_TAGS 16
#define TP_DISCOVERY_NAME_BYTES_MAX 256 /* a data source name's longest (discovery spec 5.1) */

typedef struct tp_discovery_query
{
    const char *data_source_name; /* NULL or "": any (compared byte for byte; at most 256 bytes) */
    const char *tags[TP_DISCOVERY_QUERY_MAX_TAGS]; /* every one must be carried (case matters) */
    size_t tag_count;
    bool has_stream_id;
    uint32_t stream_id;
    bool has_producer_id;
    uint32_t producer_id;
} tp_discovery_query_t;

typedef struct tp_discovery_result
{
    uint32_t stream_id;
    uint32_t producer_id;
    uint64_t epoch;
    uint32_t layout_version;
    uint32_t header_nslots;
    uint32_t pool_count;
    char data_source_name[257];
    size_t tag_count;
    char tags[16][64];
    /* the authority to attach through */
    char driver_instance_id[256];
    char driver_control_channel[256];
    uint32_t driver_control_stream_id;
} tp_discovery_result_t;

TP_API void tp_discovery_query_init(tp_discovery_query_t *query);

/* Send a request (resent every 50 ms) and collect the first valid answer within timeout_ns: up to capacity
 * results in results, their number in *count (0 when nothing matches). Results that break the spec (no driver
 * control channel or stream, pool slots that differ from the header's, a name or authority that does not fit or
 * holds a NUL byte, so could not be compared byte for byte) are discarded; of the results for one driver instance
 * and stream only the newest epoch is kept. A result about this client's own driver that its announces contradict
 * (an older epoch, or the same epoch with another layout) means the provider is behind: the request is asked again,
 * up to twice, and what still disagrees is left out. -1 with the reason on a timeout (no provider answered) or an
 * ERROR answer. */
TP_API int tp_discover(tp_client_t *client, const tp_discovery_query_t *query, tp_discovery_result_t *results,
    size_t capacity, size_t *count, int64_t timeout_ns);

/* Discover the stream announced as `name` and attach to it as a consumer through the driver that serves it (this
 * client's driver: the result's control endpoint must be the client's; another driver needs a client of its own,
 * and the error says which). */
TP_API int tp_consumer_attach_by_name(tp_consumer_t **out, tp_client_t *client, const char *name,
    int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif
