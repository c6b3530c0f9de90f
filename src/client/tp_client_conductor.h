/*
 * The client conductor: the one owner of a client's control plane, as Aeron's client conductor is of its client.
 * It holds the publication and subscription of the driver's control stream (and of the announce stream when the
 * driver announces elsewhere), reads every message with one handler per type, believes what only the driver
 * sends (its schema, pool announces) only from the process holding the driver's lock, and keeps the requests
 * that wait for an answer: any number of attaches and detaches at once, each resent under its correlation id
 * (100 ms, doubling to 1 s) until the answer comes, so that a driver that starts later or restarts still answers.
 * Everything it reads goes to one handler, as an event; it formats and records nothing. Leases (tp_client_lease.c)
 * act on those events; the CLI's and the tests' synchronous helper (cli/tp_driver_proxy.h) records them.
 */
#ifndef TP_CLIENT_CONDUCTOR_H
#define TP_CLIENT_CONDUCTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"

#define TP_CONTROL_MAX_POOLS 16
#define TP_CONTROL_URI_MAX 4160
#define TP_CONTROL_MESSAGE_MAX 1025
#define TP_CONTROL_PENDING_MAX 1040 /* a client's leases (TP_CLIENT_MAX_LEASES) each attaching, and some detaches */

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
    char region_uri[TP_CONTROL_URI_MAX];
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
    tp_attach_pool_t pools[TP_CONTROL_MAX_POOLS];
    char header_region_uri[TP_CONTROL_URI_MAX];
    char error_message[TP_CONTROL_MESSAGE_MAX];
    size_t error_message_length;
} tp_attach_result_t;

typedef enum tp_control_event_kind
{
    TP_CONTROL_EVENT_REVOKED = 1,
    TP_CONTROL_EVENT_SHUTDOWN = 2,
    TP_CONTROL_EVENT_ANNOUNCE = 3,
    TP_CONTROL_EVENT_CONSUMER_CONFIG = 4,
    TP_CONTROL_EVENT_HELLO = 5,
    TP_CONTROL_EVENT_PROGRESS = 6,
    TP_CONTROL_EVENT_ATTACH_RESPONSE = 7, /* the answer to one of our attaches, or why there is none */
    TP_CONTROL_EVENT_DETACH_RESPONSE = 8, /* the answer to one of our detaches */
} tp_control_event_kind_t;

typedef struct tp_control_event
{
    tp_control_event_kind_t kind;
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
    /* ATTACH_RESPONSE, DETACH_RESPONSE: the request's correlation id. For an attach, `attach` is the decoded
     * answer (valid during the handler call), or NULL with `failure` saying why there is none (the request could
     * not be sent, or the answer was malformed): the request is over either way. For a detach, `code` and
     * `message`. */
    int64_t correlation_id;
    const tp_attach_result_t *attach;
    const char *failure;
    int32_t code;
    const char *message;
} tp_control_event_t;

typedef struct tp_client_conductor tp_client_conductor_t;

/* Called for every event, as it is read. */
typedef void (*tp_control_handler_t)(void *clientd, const tp_control_event_t *event);

int tp_client_conductor_open(tp_client_conductor_t **out, tp_bus_t *bus, const char *control_channel,
    uint32_t control_stream_id);
void tp_client_conductor_close(tp_client_conductor_t *conductor);
void tp_client_conductor_set_handler(tp_client_conductor_t *conductor, tp_control_handler_t handler, void *clientd);
/* The clock of keepalive timestamps (the resend schedule runs on the now_ns given to the calls below). */
void tp_client_conductor_set_clock(tp_client_conductor_t *conductor, tp_clock_fn_t clock, void *clientd);
/* Also read ShmPoolAnnounce from another stream (when the driver's announce stream is not its control stream). */
int tp_client_conductor_subscribe_announces(tp_client_conductor_t *conductor, tp_bus_t *bus, const char *channel,
    uint32_t stream_id);
/* Also read consumers' hellos (the control stream's hello lane, tp_bus.h): a client with a producer needs them,
 * others never map a consumer's hello image. Idempotent. */
int tp_client_conductor_read_hellos(tp_client_conductor_t *conductor);
/* The control-stream subscription (to park on while waiting). */
tp_bus_subscription_t *tp_client_conductor_subscription(tp_client_conductor_t *conductor);

/* Read what arrived (each message to the handler) and resend the requests that are due. Returns the work done. */
int tp_client_conductor_do_work(tp_client_conductor_t *conductor, int64_t now_ns);

/* Send an attach (or a detach) and keep it until its answer arrives or it is cancelled; the answer comes as an
 * ATTACH_RESPONSE (DETACH_RESPONSE) event with the returned correlation id. -1 when it cannot be encoded or every
 * pending slot is taken (TP_E_CAPACITY: try again later). */
int64_t tp_client_conductor_attach(tp_client_conductor_t *conductor, const tp_attach_params_t *params,
    int64_t now_ns);
int64_t tp_client_conductor_detach(tp_client_conductor_t *conductor, uint64_t lease_id, uint32_t stream_id,
    uint32_t client_id, uint8_t role, int64_t now_ns);
/* Stop waiting for an answer: a late one is ignored. Unknown ids are fine. */
void tp_client_conductor_cancel(tp_client_conductor_t *conductor, int64_t correlation_id);
/* How many requests wait for answers. */
uint32_t tp_client_conductor_pending(const tp_client_conductor_t *conductor);
/* How long a waiter may park (the conductor's clock, at now_ns): until the next request is due to be sent again, at
 * most max_ns (max_ns when none waits), 0 when one is due. Rather than waking every millisecond, which a crowd of
 * waiters would spend its CPU on. */
int64_t tp_client_conductor_park_ns(const tp_client_conductor_t *conductor, int64_t now_ns, int64_t max_ns);

/* Sent once, no answer awaited. */
int tp_client_conductor_detach_send(tp_client_conductor_t *conductor, uint64_t lease_id, uint32_t stream_id,
    uint32_t client_id, uint8_t role);
int tp_client_conductor_keepalive(tp_client_conductor_t *conductor, uint64_t lease_id, uint32_t stream_id,
    uint32_t client_id, uint8_t role);
int tp_client_conductor_shutdown_request(tp_client_conductor_t *conductor, const char *token, uint8_t reason);
/* Any message of ours on the control stream (hellos, consumer configs, progress; raw bytes in tests). */
int tp_client_conductor_send(tp_client_conductor_t *conductor, const void *buffer, size_t length);

/* Messages not acted on: a newer schema version than ours, a revocation with an unknown reason or role. */
uint64_t tp_client_conductor_messages_rejected(const tp_client_conductor_t *conductor);
/* Messages only the driver sends (its schema, pool announces) that came from another process's image: ignored. */
uint64_t tp_client_conductor_messages_untrusted(const tp_client_conductor_t *conductor);
/* The next correlation id this conductor will use. */
int64_t tp_client_conductor_next_correlation_id(const tp_client_conductor_t *conductor);

#endif
