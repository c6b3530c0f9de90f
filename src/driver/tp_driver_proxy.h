/*
 * A synchronous client of the driver's control stream: attach, detach, keepalive and shutdown requests, each sent
 * and (for attach and detach) answered by correlation id. Used by `tp driver shutdown`, `tp bench attach` and
 * the tests; the producer and consumer clients build their asynchronous state machines on the same messages.
 *
 * While waiting for a response it records the driver's notices (ShmLeaseRevoked, ShmDriverShutdown), any
 * ShmPoolAnnounce and any ConsumerConfig on the control stream, in arrival order, so callers can check what
 * happened and in which order. An attach can also be started and polled (the clients' non-blocking attach).
 */
#ifndef TP_DRIVER_PROXY_H
#define TP_DRIVER_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "tensorpool/tp_bus.h"

#define TP_PROXY_MAX_POOLS 16
#define TP_PROXY_URI_MAX 4160
#define TP_PROXY_MESSAGE_MAX 1025
#define TP_PROXY_MAX_EVENTS 256

typedef struct tp_attach_params
{
    uint32_t stream_id;
    uint32_t client_id;
    uint8_t role;                     /* TP_DRIVER_ROLE_* */
    uint32_t expected_layout_version; /* 0: any */
    uint8_t publish_mode;             /* TP_DRIVER_PUBLISH_MODE_*, 255: absent */
    uint8_t require_hugepages;        /* TP_DRIVER_HUGEPAGES_POLICY_* */
    bool has_desired_node_id;
    uint32_t desired_node_id;
} tp_attach_params_t;

typedef struct tp_attach_pool
{
    uint16_t pool_id;
    uint32_t pool_nslots;
    uint32_t stride_bytes;
    char region_uri[TP_PROXY_URI_MAX];
} tp_attach_pool_t;

/* A decoded ShmAttachResponse; has_* say which optional fields were non-null. */
typedef struct tp_attach_result
{
    int64_t correlation_id;
    int32_t code;
    uint64_t lease_id;
    uint64_t lease_expiry_ns;
    uint32_t stream_id;
    uint64_t epoch;
    uint32_t layout_version;
    uint32_t header_nslots;
    uint16_t header_slot_bytes;
    uint32_t node_id;
    bool has_lease_id, has_lease_expiry, has_stream_id, has_epoch, has_layout_version, has_header_nslots,
        has_header_slot_bytes, has_node_id;
    uint32_t pool_count;
    tp_attach_pool_t pools[TP_PROXY_MAX_POOLS];
    char header_region_uri[TP_PROXY_URI_MAX];
    char error_message[TP_PROXY_MESSAGE_MAX];
    size_t error_message_length;
} tp_attach_result_t;

typedef enum tp_proxy_event_kind
{
    TP_PROXY_EVENT_REVOKED = 1,
    TP_PROXY_EVENT_SHUTDOWN = 2,
    TP_PROXY_EVENT_ANNOUNCE = 3,
    TP_PROXY_EVENT_CONSUMER_CONFIG = 4,
    TP_PROXY_EVENT_HELLO = 5,
    TP_PROXY_EVENT_PROGRESS = 6,
} tp_proxy_event_kind_t;

typedef struct tp_proxy_event
{
    tp_proxy_event_kind_t kind;
    uint64_t lease_id;   /* REVOKED */
    uint32_t stream_id;  /* REVOKED, ANNOUNCE */
    uint32_t client_id;  /* REVOKED; ANNOUNCE: producerId */
    uint8_t role;        /* REVOKED */
    uint8_t reason;      /* REVOKED, SHUTDOWN */
    uint64_t epoch;      /* ANNOUNCE */
    uint64_t announce_timestamp_ns; /* ANNOUNCE */
    uint8_t clock_domain;           /* ANNOUNCE: TP_WIRE_CLOCK_DOMAIN_* */
    uint32_t layout_version;        /* ANNOUNCE */
    uint32_t header_nslots;         /* ANNOUNCE */
    /* HELLO, CONSUMER_CONFIG (client_id: consumerId) */
    uint8_t mode;         /* TP_WIRE_MODE_* */
    uint32_t max_rate_hz; /* HELLO */
    bool supports_progress;         /* HELLO */
    uint32_t progress_interval_us;  /* HELLO: UINT32_MAX when null */
    uint32_t progress_bytes_delta;  /* HELLO: UINT32_MAX when null */
    /* PROGRESS (epoch above) */
    uint64_t seq;
    uint64_t bytes_filled;
    uint8_t progress_state; /* TP_WIRE_FRAME_PROGRESS_STATE_* */
    uint32_t descriptor_stream_id;
    uint32_t control_stream_id;
    char descriptor_channel[128];
    char control_channel[128];
} tp_proxy_event_t;

typedef struct tp_driver_proxy tp_driver_proxy_t;

/* Called for every notice as it is read (before it is recorded). */
typedef void (*tp_proxy_notice_handler_t)(void *clientd, const tp_proxy_event_t *event);

int tp_driver_proxy_open(tp_driver_proxy_t **out, tp_bus_t *bus, const char *control_channel,
    uint32_t control_stream_id);
void tp_driver_proxy_close(tp_driver_proxy_t *proxy);
/* The clock of the resend schedule (100 ms doubling to 1 s) and of keepalive timestamps: a client passes its own,
 * so that tests drive the backoff exactly. Deadlines of the blocking calls stay real time. */
void tp_driver_proxy_set_clock(tp_driver_proxy_t *proxy, tp_clock_fn_t clock, void *clientd);

/* Also read ShmPoolAnnounce from another stream (when the driver's announce stream is not its control stream). */
int tp_driver_proxy_subscribe_announces(tp_driver_proxy_t *proxy, tp_bus_t *bus, const char *channel,
    uint32_t stream_id);
/* The control-stream subscription (to park on while waiting). */
tp_bus_subscription_t *tp_driver_proxy_subscription(tp_driver_proxy_t *proxy);

/* Deliver notices to handler as they are read (NULL to stop). */
void tp_driver_proxy_set_notice_handler(tp_driver_proxy_t *proxy, tp_proxy_notice_handler_t handler,
    void *clientd);

/* Send an attach and wait for its response, resending it (same correlation id, every 100 ms doubling to 1 s) in
 * case the driver joined our publication after the first copy or restarted. 0 once a response arrived (whatever
 * its code); -1 on timeout (TP_E_TIMEOUT), a send failure or a malformed response. */
int tp_driver_proxy_attach(tp_driver_proxy_t *proxy, const tp_attach_params_t *params, tp_attach_result_t *result,
    int64_t timeout_ns);

/* The same without waiting: start sends the request (one attach at a time per proxy; result must stay valid
 * until the attach finished or was cancelled); poll reads, resends when due, and returns 1 once the response is
 * in result, 0 while waiting, -1 on a send failure or a malformed response. */
int tp_driver_proxy_attach_start(tp_driver_proxy_t *proxy, const tp_attach_params_t *params,
    tp_attach_result_t *result);
int tp_driver_proxy_attach_poll(tp_driver_proxy_t *proxy);
bool tp_driver_proxy_attach_is_pending(const tp_driver_proxy_t *proxy);
/* Stop waiting; a late response is ignored. */
void tp_driver_proxy_attach_cancel(tp_driver_proxy_t *proxy);

/* Send a detach and wait for its response; *code receives the response code, message (may be NULL) its text. */
int tp_driver_proxy_detach(tp_driver_proxy_t *proxy, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role, int32_t *code, char *message, size_t message_capacity, int64_t timeout_ns);

/* Send a detach without waiting for its response (the response is ignored). */
int tp_driver_proxy_detach_send(tp_driver_proxy_t *proxy, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role);

int tp_driver_proxy_keepalive(tp_driver_proxy_t *proxy, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role);
int tp_driver_proxy_shutdown_request(tp_driver_proxy_t *proxy, const char *token, uint8_t reason);

/* Send raw bytes on the control stream (tests of hostile input). */
int tp_driver_proxy_send(tp_driver_proxy_t *proxy, const void *buffer, size_t length);

/* Poll for notices without waiting; returns how many messages were read. */
int tp_driver_proxy_poll(tp_driver_proxy_t *proxy);

/* Wait until an event matching kind (and lease_id/stream_id when non-zero) has been recorded at or after
 * index *from; on success *from is set past it and *out (may be NULL) receives it. */
int tp_driver_proxy_await_event(tp_driver_proxy_t *proxy, tp_proxy_event_kind_t kind, uint64_t lease_id,
    uint32_t stream_id, size_t *from, tp_proxy_event_t *out, int64_t timeout_ns);

/* Messages not acted on: a newer schema version than ours, a revocation with an unknown reason or role. */
uint64_t tp_driver_proxy_messages_rejected(const tp_driver_proxy_t *proxy);
/* Messages only the driver sends (its schema, pool announces) that came from another process's image: ignored. */
uint64_t tp_driver_proxy_messages_untrusted(const tp_driver_proxy_t *proxy);

/* Recorded events (at most TP_PROXY_MAX_EVENTS; later ones are dropped and counted). */
size_t tp_driver_proxy_event_count(const tp_driver_proxy_t *proxy);
const tp_proxy_event_t *tp_driver_proxy_event(const tp_driver_proxy_t *proxy, size_t index);

/* The next correlation id this proxy will use. */
int64_t tp_driver_proxy_next_correlation_id(tp_driver_proxy_t *proxy);

#endif
