/*
 * The discovery provider (discovery spec 4-6): an index of streams built from ShmPoolAnnounce (layout, epoch, region
 * URIs), DataSourceAnnounce (name) and DataSourceMeta (tags, from the "tags" attribute: comma-separated text), keyed
 * by (driver instance id, stream id), with the driver's identity and control endpoint from configuration; and the
 * answers to DiscoveryRequest on the request stream, sent to the response endpoint each request names.
 *
 * Shared by the provider embedded in the driver and the standalone registry (`tp discovery`). Not a hot path.
 */
#ifndef TP_DISCOVERY_PROVIDER_H
#define TP_DISCOVERY_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tp_config.h"
#include "tensorpool/tp_bus.h"

#define TP_DISCOVERY_MAX_ENTRIES 1024
#define TP_DISCOVERY_MAX_TAGS 16
#define TP_DISCOVERY_TAG_MAX 64
#define TP_DISCOVERY_NAME_MAX 257
#define TP_DISCOVERY_ERROR_MAX 1024
#define TP_DISCOVERY_DEFAULT_MAX_RESULTS 1000

/* Whose streams an index entry describes (the authority a client attaches through). */
typedef struct tp_discovery_driver
{
    char instance_id[TP_CONFIG_STRING_MAX];
    char control_channel[TP_CONFIG_STRING_MAX];
    uint32_t control_stream_id;
} tp_discovery_driver_t;

typedef struct tp_discovery_provider tp_discovery_provider_t;

typedef struct tp_discovery_counters
{
    uint64_t requests;
    uint64_t responses;
    uint64_t dropped_requests; /* no response channel or stream: nobody to answer */
    uint64_t malformed;        /* did not decode, another schema or a newer version */
    uint64_t expired;          /* entries dropped for lack of announces */
    uint64_t epoch_regressions; /* announces with an older epoch than the entry's: ignored */
    uint64_t requests_logged;   /* requests written to the log: one per TP_DISCOVERY_LOG_PERIOD_NS at most */
    uint64_t driver_restarts;   /* ShmDriverShutdown seen: that driver's next epochs are taken, lower or not */
} tp_discovery_counters_t;

/* Requests are logged (info) at most once per this period, with the number answered since (discovery spec 13). */
#define TP_DISCOVERY_LOG_PERIOD_NS (10LL * 1000 * 1000 * 1000)

/* Answer requests on request_channel/request_stream_id; entries expire after expiry_ns without an announce. */
int tp_discovery_provider_open(tp_discovery_provider_t **out, tp_bus_t *bus, const char *request_channel,
    uint32_t request_stream_id, int64_t expiry_ns, uint32_t max_results);
void tp_discovery_provider_close(tp_discovery_provider_t *provider);
/* The window given at open (discovery spec 6.2: 3 x the announce period, as the driver and registry open it). */
int64_t tp_discovery_provider_expiry_ns(const tp_discovery_provider_t *provider);

/* A driver whose streams this provider indexes; returns its index (the handle of the on_* calls), -1 if full. */
int tp_discovery_provider_add_driver(tp_discovery_provider_t *provider, const tp_discovery_driver_t *driver);

/* The name and tags (comma-separated) a driver's configuration gives one of its streams: found by them until the
 * stream's own metadata (its DataSourceAnnounce name, its "tags" attribute) replaces them. */
int tp_discovery_provider_set_defaults(tp_discovery_provider_t *provider, int driver_index, uint32_t stream_id,
    const char *name, const char *tags_csv);

/* Feed a message from driver `driver_index`'s announce or metadata stream (other messages are ignored). */
void tp_discovery_provider_on_message(tp_discovery_provider_t *provider, int driver_index, const uint8_t *buffer,
    size_t length, int64_t now_ns);

/* Answer the requests that arrived and expire quiet entries. Returns the work done. */
int tp_discovery_provider_poll(tp_discovery_provider_t *provider, int64_t now_ns);

void tp_discovery_provider_counters(const tp_discovery_provider_t *provider, tp_discovery_counters_t *out);
/* Live entries (not expired). */
size_t tp_discovery_provider_entry_count(const tp_discovery_provider_t *provider);

#endif
