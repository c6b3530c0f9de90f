/* The client conductor: the control plane of a client; see tp_client_conductor.h. */
#include "client/tp_client_conductor.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_proc.h"
#include "driver/tp_driver_lock.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"

#define CONDUCTOR_BUFFER_BYTES 8192 /* a shutdown request with its token */
#define RESEND_MIN_NS (100 * TP_NS_PER_MS)
#define RESEND_MAX_NS TP_NS_PER_S
#define REQUEST_MAX 128 /* an attach or detach request: fixed fields only */
#define TRUST_CACHE 8

typedef enum request_kind
{
    REQUEST_FREE = 0,
    REQUEST_ATTACH,
    REQUEST_DETACH,
} request_kind_t;

/* A request waiting for its answer, resent under the same correlation id until it comes. */
typedef struct pending
{
    request_kind_t kind;
    int64_t correlation_id;
    uint8_t request[REQUEST_MAX];
    uint32_t length;
    int64_t next_send_ns;
    int64_t resend_ns;
} pending_t;

/* A bus image whose writer was checked: the driver's, or not. */
typedef struct trusted
{
    int32_t session_id;
    bool is_driver;
    bool is_set;
} trusted_t;

struct tp_client_conductor
{
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    tp_bus_subscription_t *announce_sub; /* when announces travel on a stream of their own */
    tp_bus_publication_t *broadcast_pub; /* for what is neither a request nor a hello; opened at its first use */
    tp_bus_publication_t *hello_pub;     /* ConsumerHello, on the hello lane; opened at its first use */
    tp_bus_subscription_t *hello_sub;    /* the hello lane, once a producer of this client needs it */
    tp_bus_t *bus;
    uint32_t control_stream_id;
    char control_channel[1024];
    int64_t next_correlation_id;
    uint8_t buffer[CONDUCTOR_BUFFER_BYTES];
    pending_t pending[TP_CONTROL_PENDING_MAX];
    uint32_t pending_count;
    tp_attach_result_t result; /* the attach answer being handed out */
    tp_control_handler_t handler;
    void *handler_clientd;
    uint64_t messages_rejected;  /* newer schema version, unknown enum values */
    uint64_t messages_untrusted; /* driver messages from an image that is not the driver's */
    char lock_path[4200];        /* the driver's lock file: who holds it is the driver */
    trusted_t trusted[TRUST_CACHE];
    uint32_t trusted_next;
    tp_clock_t clock; /* keepalive timestamps' (CLOCK_MONOTONIC by default) */
};

int tp_client_conductor_open(tp_client_conductor_t **out, tp_bus_t *bus, const char *control_channel,
    uint32_t control_stream_id)
{
    *out = NULL;
    tp_client_conductor_t *p = NULL;
    if (tp_alloc((void **)&p, sizeof(*p)) < 0)
    {
        return -1;
    }
    snprintf(p->lock_path, sizeof(p->lock_path), "%s/driver-%" PRIu32 ".lock", tp_bus_dir(bus), control_stream_id);
    /* Correlation ids: random high bits so that two conductors of one client id rarely collide. */
    p->next_correlation_id = ((int64_t)(tp_random_u32() & 0x7fffffffu) << 24) + 1;
    p->bus = bus;
    p->control_stream_id = control_stream_id;
    if (control_channel != NULL && strlen(control_channel) >= sizeof(p->control_channel))
    {
        TP_SET_ERR(TP_E_INVALID, "control channel is longer than %zu bytes", sizeof(p->control_channel) - 1);
        tp_client_conductor_close(p);
        return -1;
    }
    snprintf(p->control_channel, sizeof(p->control_channel), "%s", control_channel != NULL ? control_channel : "");
    /* Requests on the request lane, read by the driver alone; our subscription skips the other clients' requests
     * (tp_bus.h, Lanes): a crowd of clients then costs each client nothing of the others'. */
    if (tp_bus_subscription_open_broadcast(&p->sub, bus, control_channel, (int32_t)control_stream_id, NULL, NULL,
            NULL) < 0 ||
        tp_bus_publication_open_with(&p->pub, bus, control_channel, (int32_t)control_stream_id,
            TP_BUS_PUB_REQUESTS) < 0)
    {
        tp_client_conductor_close(p);
        return -1;
    }
    *out = p;
    return 0;
}

void tp_client_conductor_close(tp_client_conductor_t *p)
{
    if (p == NULL)
    {
        return;
    }
    tp_bus_publication_close(p->pub);
    tp_bus_publication_close(p->broadcast_pub);
    tp_bus_publication_close(p->hello_pub);
    tp_bus_subscription_close(p->hello_sub);
    tp_bus_subscription_close(p->sub);
    tp_bus_subscription_close(p->announce_sub);
    tp_free(p);
}

void tp_client_conductor_set_handler(tp_client_conductor_t *p, tp_control_handler_t handler, void *clientd)
{
    p->handler = handler;
    p->handler_clientd = clientd;
}

void tp_client_conductor_set_clock(tp_client_conductor_t *p, tp_clock_fn_t clock, void *clientd)
{
    p->clock.fn = clock;
    p->clock.clientd = clientd;
}

int64_t tp_client_conductor_next_correlation_id(const tp_client_conductor_t *p)
{
    return p->next_correlation_id;
}

uint64_t tp_client_conductor_messages_rejected(const tp_client_conductor_t *p)
{
    return p->messages_rejected;
}

uint64_t tp_client_conductor_messages_untrusted(const tp_client_conductor_t *p)
{
    return p->messages_untrusted;
}

int64_t tp_client_conductor_park_ns(const tp_client_conductor_t *p, int64_t now_ns, int64_t max_ns)
{
    int64_t due = now_ns + max_ns;
    for (uint32_t i = 0, seen = 0; i < TP_CONTROL_PENDING_MAX && seen < p->pending_count; i++)
    {
        const pending_t *q = &p->pending[i];
        if (q->kind != REQUEST_FREE)
        {
            seen++;
            due = q->next_send_ns < due ? q->next_send_ns : due;
        }
    }
    return due > now_ns ? due - now_ns : 0;
}

uint32_t tp_client_conductor_pending(const tp_client_conductor_t *p)
{
    return p->pending_count;
}

static void emit(tp_client_conductor_t *p, const tp_control_event_t *e)
{
    if (p->handler != NULL)
    {
        p->handler(p->handler_clientd, e);
    }
}

static pending_t *pending_find(tp_client_conductor_t *p, request_kind_t kind, int64_t correlation_id)
{
    for (uint32_t i = 0, seen = 0; i < TP_CONTROL_PENDING_MAX && seen < p->pending_count; i++)
    {
        pending_t *q = &p->pending[i];
        if (q->kind != REQUEST_FREE)
        {
            seen++;
            if (q->kind == kind && q->correlation_id == correlation_id)
            {
                return q;
            }
        }
    }
    return NULL;
}

static void pending_free(tp_client_conductor_t *p, pending_t *q)
{
    q->kind = REQUEST_FREE;
    p->pending_count--;
}

static void copy_text(char *out, size_t capacity, tp_sbe_bytes_t bytes)
{
    size_t n = bytes.length < capacity - 1 ? bytes.length : capacity - 1;
    memcpy(out, bytes.data, n);
    out[n] = '\0';
}

/* The answer to one of our attaches (any other is someone else's): decoded, handed out, the request over. */
static void on_attach_response(tp_client_conductor_t *p, const uint8_t *buffer, size_t length)
{
    tp_driver_shm_attach_response_t m;
    if (tp_driver_shm_attach_response_decode(&m, buffer, length) < 0)
    {
        return;
    }
    pending_t *q = pending_find(p, REQUEST_ATTACH, tp_driver_shm_attach_response_correlation_id(&m));
    if (q == NULL)
    {
        return;
    }
    tp_attach_result_t *r = &p->result;
    bool is_malformed = false;
    memset(r, 0, sizeof(*r));
    r->correlation_id = tp_driver_shm_attach_response_correlation_id(&m);
    r->code = tp_driver_shm_attach_response_code(&m);
    r->lease_id = tp_driver_shm_attach_response_lease_id(&m);
    r->has_lease_id = tp_driver_shm_attach_response_has_lease_id(&m);
    r->lease_expiry_ns = tp_driver_shm_attach_response_lease_expiry_timestamp_ns(&m);
    r->has_lease_expiry = tp_driver_shm_attach_response_has_lease_expiry_timestamp_ns(&m);
    r->stream_id = tp_driver_shm_attach_response_stream_id(&m);
    r->has_stream_id = tp_driver_shm_attach_response_has_stream_id(&m);
    r->epoch = tp_driver_shm_attach_response_epoch(&m);
    r->has_epoch = tp_driver_shm_attach_response_has_epoch(&m);
    r->layout_version = tp_driver_shm_attach_response_layout_version(&m);
    r->has_layout_version = tp_driver_shm_attach_response_has_layout_version(&m);
    r->header_nslots = tp_driver_shm_attach_response_header_nslots(&m);
    r->has_header_nslots = tp_driver_shm_attach_response_has_header_nslots(&m);
    r->header_slot_bytes = tp_driver_shm_attach_response_header_slot_bytes(&m);
    r->has_header_slot_bytes = tp_driver_shm_attach_response_has_header_slot_bytes(&m);
    r->node_id = tp_driver_shm_attach_response_node_id(&m);
    r->has_node_id = tp_driver_shm_attach_response_has_node_id(&m);
    tp_driver_shm_attach_response_payload_pools_t pools;
    tp_driver_shm_attach_response_payload_pools(&m, &pools);
    while (tp_driver_shm_attach_response_payload_pools_next(&pools))
    {
        if (r->pool_count == TP_CONTROL_MAX_POOLS)
        {
            is_malformed = true;
            break;
        }
        tp_attach_pool_t *pool = &r->pools[r->pool_count++];
        pool->pool_id = tp_driver_shm_attach_response_payload_pools_pool_id(&pools);
        pool->pool_nslots = tp_driver_shm_attach_response_payload_pools_pool_nslots(&pools);
        pool->stride_bytes = tp_driver_shm_attach_response_payload_pools_stride_bytes(&pools);
        copy_text(pool->region_uri, sizeof(pool->region_uri),
            tp_driver_shm_attach_response_payload_pools_region_uri(&pools));
    }
    copy_text(r->header_region_uri, sizeof(r->header_region_uri),
        tp_driver_shm_attach_response_header_region_uri(&m));
    tp_sbe_bytes_t error = tp_driver_shm_attach_response_error_message(&m);
    r->error_message_length = error.length;
    copy_text(r->error_message, sizeof(r->error_message), error);
    tp_control_event_t e = { .kind = TP_CONTROL_EVENT_ATTACH_RESPONSE, .correlation_id = q->correlation_id };
    e.attach = is_malformed ? NULL : r;
    e.failure = is_malformed ? "the driver's attach response has more pools than this client handles" : NULL;
    pending_free(p, q);
    emit(p, &e);
}

static void on_detach_response(tp_client_conductor_t *p, const uint8_t *buffer, size_t length)
{
    tp_driver_shm_detach_response_t m;
    if (tp_driver_shm_detach_response_decode(&m, buffer, length) < 0)
    {
        return;
    }
    pending_t *q = pending_find(p, REQUEST_DETACH, tp_driver_shm_detach_response_correlation_id(&m));
    if (q == NULL)
    {
        return;
    }
    char message[TP_CONTROL_MESSAGE_MAX];
    copy_text(message, sizeof(message), tp_driver_shm_detach_response_error_message(&m));
    tp_control_event_t e = { .kind = TP_CONTROL_EVENT_DETACH_RESPONSE, .correlation_id = q->correlation_id,
        .code = tp_driver_shm_detach_response_code(&m), .message = message };
    pending_free(p, q);
    emit(p, &e);
}

/* The pid holding the driver's record lock, 0 if nobody (or we cannot tell). */
static int32_t driver_lock_holder(const tp_client_conductor_t *p)
{
    if (tp_driver_lock_is_ours(p->lock_path))
    {
        return (int32_t)getpid(); /* the driver is in this process: opening its lock file would drop the lock */
    }
    int fd = open(p->lock_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
    {
        return 0;
    }
    struct flock probe = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    int32_t holder = fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK ? (int32_t)probe.l_pid : 0;
    close(fd);
    return holder;
}

/* Is this image the driver's? Its writer must be the process holding the driver's lock (or this very process: an
 * embedded driver, or a test's stand-in). Anyone who can write the control stream could otherwise forge a
 * shutdown, a revocation or an announce. Answers are cached per image; UDP images name no process: trusted. */
static bool is_from_driver(tp_client_conductor_t *p, const tp_bus_header_t *header)
{
    for (int i = 0; i < TRUST_CACHE; i++)
    {
        if (p->trusted[i].is_set && p->trusted[i].session_id == header->session_id)
        {
            return p->trusted[i].is_driver;
        }
    }
    int32_t pid = 0;
    uint64_t start_time = 0;
    bool is_known = tp_bus_subscription_image_owner(p->sub, header->session_id, &pid, &start_time) == 0 ||
                    (p->announce_sub != NULL &&
                        tp_bus_subscription_image_owner(p->announce_sub, header->session_id, &pid, &start_time) == 0);
    bool is_driver = !is_known || pid == (int32_t)getpid() || pid == driver_lock_holder(p);
    trusted_t *t = &p->trusted[p->trusted_next++ % TRUST_CACHE];
    *t = (trusted_t){ .session_id = header->session_id, .is_driver = is_driver, .is_set = true };
    return is_driver;
}

static void on_announce(tp_client_conductor_t *p, const uint8_t *buffer, size_t length)
{
    tp_wire_shm_pool_announce_t m;
    if (tp_wire_shm_pool_announce_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_control_event_t e = { .kind = TP_CONTROL_EVENT_ANNOUNCE };
    e.stream_id = tp_wire_shm_pool_announce_stream_id(&m);
    e.epoch = tp_wire_shm_pool_announce_epoch(&m);
    e.client_id = tp_wire_shm_pool_announce_producer_id(&m);
    e.announce_timestamp_ns = tp_wire_shm_pool_announce_announce_timestamp_ns(&m);
    e.clock_domain = tp_wire_shm_pool_announce_announce_clock_domain(&m);
    e.layout_version = tp_wire_shm_pool_announce_layout_version(&m);
    e.header_nslots = tp_wire_shm_pool_announce_header_nslots(&m);
    emit(p, &e);
}

static void on_consumer_config(tp_client_conductor_t *p, const uint8_t *buffer, size_t length)
{
    tp_wire_consumer_config_t m;
    if (tp_wire_consumer_config_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_control_event_t e = { .kind = TP_CONTROL_EVENT_CONSUMER_CONFIG };
    e.stream_id = tp_wire_consumer_config_stream_id(&m);
    e.mode = tp_wire_consumer_config_mode(&m);
    e.client_id = tp_wire_consumer_config_consumer_id(&m);
    e.descriptor_stream_id = tp_wire_consumer_config_descriptor_stream_id(&m);
    e.control_stream_id = tp_wire_consumer_config_control_stream_id(&m);
    copy_text(e.descriptor_channel, sizeof(e.descriptor_channel), tp_wire_consumer_config_descriptor_channel(&m));
    copy_text(e.control_channel, sizeof(e.control_channel), tp_wire_consumer_config_control_channel(&m));
    emit(p, &e);
}

static void on_progress(tp_client_conductor_t *p, const uint8_t *buffer, size_t length)
{
    tp_wire_frame_progress_t m;
    if (tp_wire_frame_progress_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_control_event_t e = { .kind = TP_CONTROL_EVENT_PROGRESS };
    e.stream_id = tp_wire_frame_progress_stream_id(&m);
    e.epoch = tp_wire_frame_progress_epoch(&m);
    e.seq = tp_wire_frame_progress_seq(&m);
    e.bytes_filled = tp_wire_frame_progress_payload_bytes_filled(&m);
    e.progress_state = tp_wire_frame_progress_state(&m);
    emit(p, &e);
}

static void on_hello(tp_client_conductor_t *p, const uint8_t *buffer, size_t length)
{
    tp_wire_consumer_hello_t m;
    if (tp_wire_consumer_hello_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_control_event_t e = { .kind = TP_CONTROL_EVENT_HELLO };
    e.stream_id = tp_wire_consumer_hello_stream_id(&m);
    e.client_id = tp_wire_consumer_hello_consumer_id(&m);
    e.mode = tp_wire_consumer_hello_mode(&m);
    e.max_rate_hz = tp_wire_consumer_hello_max_rate_hz(&m);
    e.supports_progress = tp_wire_consumer_hello_supports_progress(&m) == TP_WIRE_BOOL_TRUE;
    e.progress_interval_us = tp_wire_consumer_hello_progress_interval_us(&m);
    e.progress_bytes_delta = tp_wire_consumer_hello_progress_bytes_delta(&m);
    e.descriptor_stream_id = tp_wire_consumer_hello_descriptor_stream_id(&m);
    e.control_stream_id = tp_wire_consumer_hello_control_stream_id(&m);
    copy_text(e.descriptor_channel, sizeof(e.descriptor_channel), tp_wire_consumer_hello_descriptor_channel(&m));
    copy_text(e.control_channel, sizeof(e.control_channel), tp_wire_consumer_hello_control_channel(&m));
    emit(p, &e);
}

static void on_revoked(tp_client_conductor_t *p, const uint8_t *buffer, size_t length)
{
    tp_driver_shm_lease_revoked_t m;
    if (tp_driver_shm_lease_revoked_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_control_event_t e = { .kind = TP_CONTROL_EVENT_REVOKED };
    e.lease_id = tp_driver_shm_lease_revoked_lease_id(&m);
    e.stream_id = tp_driver_shm_lease_revoked_stream_id(&m);
    e.client_id = tp_driver_shm_lease_revoked_client_id(&m);
    e.role = tp_driver_shm_lease_revoked_role(&m);
    e.reason = tp_driver_shm_lease_revoked_reason(&m);
    /* Driver spec 4.9: a revocation with an unknown reason or role is rejected, not acted on. */
    if ((e.role != TP_DRIVER_ROLE_PRODUCER && e.role != TP_DRIVER_ROLE_CONSUMER) ||
        e.reason < TP_DRIVER_LEASE_REVOKE_REASON_DETACHED || e.reason > TP_DRIVER_LEASE_REVOKE_REASON_REVOKED)
    {
        p->messages_rejected++;
        return;
    }
    emit(p, &e);
}

static void on_shutdown(tp_client_conductor_t *p, const uint8_t *buffer, size_t length)
{
    tp_driver_shm_driver_shutdown_t m;
    if (tp_driver_shm_driver_shutdown_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_control_event_t e = { .kind = TP_CONTROL_EVENT_SHUTDOWN };
    e.reason = tp_driver_shm_driver_shutdown_reason(&m);
    emit(p, &e);
}

/* One message of the control (or announce) stream: versions and senders checked, then one handler per type. */
static void on_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    tp_client_conductor_t *p = clientd;
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) < 0)
    {
        return;
    }
    if ((h.schema_id == TP_DRIVER_SCHEMA_ID && h.version > TP_DRIVER_SCHEMA_VERSION) ||
        (h.schema_id == TP_WIRE_SCHEMA_ID && h.version > TP_WIRE_SCHEMA_VERSION))
    {
        p->messages_rejected++; /* driver spec 4.4a: a newer version than we speak is not read */
        return;
    }
    /* Only the driver answers, revokes, shuts down and announces pools (a ConsumerConfig may come from a producer).
     * Other clients' requests share the stream and are not for us: passed over before any check of their sender,
     * which costs system calls the first time a session is seen (a crowd's keepalives would pay it each time). */
    uint32_t type = (uint32_t)h.schema_id << 16 | h.template_id;
    bool is_drivers_to_send = type == (TP_WIRE_SCHEMA_ID << 16 | TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID) ||
                              type == (TP_DRIVER_SCHEMA_ID << 16 | TP_DRIVER_SHM_ATTACH_RESPONSE_TEMPLATE_ID) ||
                              type == (TP_DRIVER_SCHEMA_ID << 16 | TP_DRIVER_SHM_DETACH_RESPONSE_TEMPLATE_ID) ||
                              type == (TP_DRIVER_SCHEMA_ID << 16 | TP_DRIVER_SHM_LEASE_REVOKED_TEMPLATE_ID) ||
                              type == (TP_DRIVER_SCHEMA_ID << 16 | TP_DRIVER_SHM_DRIVER_SHUTDOWN_TEMPLATE_ID);
    if (is_drivers_to_send && !is_from_driver(p, header))
    {
        p->messages_untrusted++;
        return;
    }
    switch (type)
    {
    case TP_WIRE_SCHEMA_ID << 16 | TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID: on_announce(p, buffer, length); break;
    case TP_WIRE_SCHEMA_ID << 16 | TP_WIRE_CONSUMER_CONFIG_TEMPLATE_ID: on_consumer_config(p, buffer, length); break;
    case TP_WIRE_SCHEMA_ID << 16 | TP_WIRE_FRAME_PROGRESS_TEMPLATE_ID: on_progress(p, buffer, length); break;
    case TP_WIRE_SCHEMA_ID << 16 | TP_WIRE_CONSUMER_HELLO_TEMPLATE_ID: on_hello(p, buffer, length); break;
    case TP_DRIVER_SCHEMA_ID << 16 | TP_DRIVER_SHM_ATTACH_RESPONSE_TEMPLATE_ID:
        on_attach_response(p, buffer, length);
        break;
    case TP_DRIVER_SCHEMA_ID << 16 | TP_DRIVER_SHM_DETACH_RESPONSE_TEMPLATE_ID:
        on_detach_response(p, buffer, length);
        break;
    case TP_DRIVER_SCHEMA_ID << 16 | TP_DRIVER_SHM_LEASE_REVOKED_TEMPLATE_ID: on_revoked(p, buffer, length); break;
    case TP_DRIVER_SCHEMA_ID << 16 | TP_DRIVER_SHM_DRIVER_SHUTDOWN_TEMPLATE_ID: on_shutdown(p, buffer, length); break;
    default: break;
    }
}

int tp_client_conductor_subscribe_announces(tp_client_conductor_t *p, tp_bus_t *bus, const char *channel,
    uint32_t stream_id)
{
    if (p->announce_sub != NULL)
    {
        TP_SET_ERR(TP_E_STATE, "the conductor already reads an announce stream");
        return -1;
    }
    return tp_bus_subscription_open_broadcast(&p->announce_sub, bus, channel, (int32_t)stream_id, NULL, NULL, NULL);
}

int tp_client_conductor_read_hellos(tp_client_conductor_t *p)
{
    return p->hello_sub != NULL ? 0
                                : tp_bus_subscription_open_with(&p->hello_sub, p->bus, p->control_channel,
                                      (int32_t)p->control_stream_id, NULL, NULL, NULL, TP_BUS_SUB_HELLOS);
}

tp_bus_subscription_t *tp_client_conductor_subscription(tp_client_conductor_t *p)
{
    return p->sub;
}

/* Attach, detach, keepalive and shutdown requests are for the driver alone: the request lane. */
static bool is_driver_request(const void *buffer, size_t length)
{
    tp_sbe_header_t h;
    return tp_sbe_header_read(&h, buffer, length) == 0 && h.schema_id == TP_DRIVER_SCHEMA_ID &&
           (h.template_id == TP_DRIVER_SHM_ATTACH_REQUEST_TEMPLATE_ID ||
               h.template_id == TP_DRIVER_SHM_DETACH_REQUEST_TEMPLATE_ID ||
               h.template_id == TP_DRIVER_SHM_LEASE_KEEPALIVE_TEMPLATE_ID ||
               h.template_id == TP_DRIVER_SHM_DRIVER_SHUTDOWN_REQUEST_TEMPLATE_ID);
}

static bool is_hello(const void *buffer, size_t length)
{
    tp_sbe_header_t h;
    return tp_sbe_header_read(&h, buffer, length) == 0 && h.schema_id == TP_WIRE_SCHEMA_ID &&
           h.template_id == TP_WIRE_CONSUMER_HELLO_TEMPLATE_ID;
}

/* The publication of a lane, opened at its first use. */
static tp_bus_publication_t *lane_publication(tp_client_conductor_t *p, tp_bus_publication_t **pub, uint32_t flags)
{
    if (*pub == NULL &&
        tp_bus_publication_open_with(pub, p->bus, p->control_channel, (int32_t)p->control_stream_id, flags) < 0)
    {
        return NULL;
    }
    return *pub;
}

int tp_client_conductor_send(tp_client_conductor_t *p, const void *buffer, size_t length)
{
    /* Requests for the driver alone, hellos for producers alone, the rest for everyone (tp_bus.h, Lanes). */
    tp_bus_publication_t *pub = p->pub;
    if (!is_driver_request(buffer, length))
    {
        pub = is_hello(buffer, length) ? lane_publication(p, &p->hello_pub, TP_BUS_PUB_HELLOS)
                                       : lane_publication(p, &p->broadcast_pub, TP_BUS_PUB_FENCED);
    }
    if (pub == NULL)
    {
        return -1;
    }
    for (int attempt = 0; attempt < 1000; attempt++)
    {
        int64_t rc = tp_bus_offer(pub, buffer, length);
        if (rc > 0)
        {
            return 0;
        }
        if (rc == TP_BUS_CLOSED || rc == TP_BUS_MAX_MESSAGE_LENGTH_EXCEEDED || rc == TP_BUS_NOT_CONNECTED)
        {
            break; /* our own subscription counts as connected: NOT_CONNECTED means the bus lost it */
        }
        sched_yield();
    }
    TP_SET_ERR(TP_E_STATE, "could not send %zu bytes on the driver control stream", length);
    return -1;
}

/* Resend what is due; a request that cannot be sent is over (an attach says so through its event). */
static int resend_due(tp_client_conductor_t *p, int64_t now_ns)
{
    int work = 0;
    for (uint32_t i = 0, seen = 0; i < TP_CONTROL_PENDING_MAX && seen < p->pending_count; i++)
    {
        pending_t *q = &p->pending[i];
        if (q->kind == REQUEST_FREE)
        {
            continue;
        }
        seen++;
        if (now_ns < q->next_send_ns)
        {
            continue;
        }
        work++;
        if (tp_client_conductor_send(p, q->request, q->length) == 0)
        {
            q->next_send_ns = now_ns + q->resend_ns;
            q->resend_ns = q->resend_ns * 2 < RESEND_MAX_NS ? q->resend_ns * 2 : RESEND_MAX_NS;
            continue;
        }
        tp_control_event_t e = { .kind = q->kind == REQUEST_ATTACH ? TP_CONTROL_EVENT_ATTACH_RESPONSE
                                                                    : TP_CONTROL_EVENT_DETACH_RESPONSE,
            .correlation_id = q->correlation_id, .failure = tp_errmsg(), .code = -1, .message = tp_errmsg() };
        pending_free(p, q);
        seen--;
        emit(p, &e);
    }
    return work;
}

int tp_client_conductor_do_work(tp_client_conductor_t *p, int64_t now_ns)
{
    int work = tp_bus_poll(p->sub, on_message, p, 64);
    if (work >= 0)
    {
        work += tp_bus_publication_do_work(p->pub) +
                (p->broadcast_pub != NULL ? tp_bus_publication_do_work(p->broadcast_pub) : 0) +
                (p->hello_pub != NULL ? tp_bus_publication_do_work(p->hello_pub) : 0);
    }
    if (p->hello_sub != NULL && work >= 0)
    {
        int more = tp_bus_poll(p->hello_sub, on_message, p, 64);
        work = more < 0 ? more : work + more;
    }
    if (p->announce_sub != NULL && work >= 0)
    {
        int more = tp_bus_poll(p->announce_sub, on_message, p, 64);
        work = more < 0 ? more : work + more;
    }
    if (work >= 0 && p->pending_count > 0)
    {
        work += resend_due(p, now_ns);
    }
    return work;
}

/* Keep a request until its answer: sent at the next do_work, then on the resend schedule. */
static int64_t pending_add(tp_client_conductor_t *p, request_kind_t kind, int64_t correlation_id, int64_t length,
    int64_t now_ns)
{
    if (length < 0)
    {
        return -1;
    }
    if (length > REQUEST_MAX)
    {
        TP_SET_ERR(TP_E_CAPACITY, "a %" PRId64 "-byte request does not fit %d bytes", length, REQUEST_MAX);
        return -1;
    }
    for (uint32_t i = 0; i < TP_CONTROL_PENDING_MAX; i++)
    {
        pending_t *q = &p->pending[i];
        if (q->kind == REQUEST_FREE)
        {
            *q = (pending_t){ .kind = kind, .correlation_id = correlation_id, .length = (uint32_t)length,
                .next_send_ns = now_ns, .resend_ns = RESEND_MIN_NS };
            memcpy(q->request, p->buffer, (size_t)length);
            p->pending_count++;
            return correlation_id;
        }
    }
    TP_SET_ERR(TP_E_CAPACITY, "%d requests already wait for the driver's answer", TP_CONTROL_PENDING_MAX);
    return -1;
}

int64_t tp_client_conductor_attach(tp_client_conductor_t *p, const tp_attach_params_t *a, int64_t now_ns)
{
    tp_driver_shm_attach_request_enc_t e;
    tp_driver_shm_attach_request_enc_begin(&e, p->buffer, sizeof(p->buffer));
    int64_t cid = p->next_correlation_id++;
    tp_driver_shm_attach_request_set_correlation_id(&e, cid);
    tp_driver_shm_attach_request_set_stream_id(&e, a->stream_id);
    tp_driver_shm_attach_request_set_client_id(&e, a->client_id);
    tp_driver_shm_attach_request_set_role(&e, a->role);
    tp_driver_shm_attach_request_set_expected_layout_version(&e, a->expected_layout_version);
    tp_driver_shm_attach_request_set_publish_mode(&e, a->publish_mode);
    tp_driver_shm_attach_request_set_require_hugepages(&e, a->require_hugepages);
    tp_driver_shm_attach_request_set_desired_node_id(&e, a->has_desired_node_id ? a->desired_node_id : UINT32_MAX);
    return pending_add(p, REQUEST_ATTACH, cid, tp_driver_shm_attach_request_enc_finish(&e), now_ns);
}

/* Encode a detach request into p->buffer; its correlation id goes to *cid. */
static int64_t detach_request(tp_client_conductor_t *p, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role, int64_t *cid)
{
    tp_driver_shm_detach_request_enc_t e;
    tp_driver_shm_detach_request_enc_begin(&e, p->buffer, sizeof(p->buffer));
    *cid = p->next_correlation_id++;
    tp_driver_shm_detach_request_set_correlation_id(&e, *cid);
    tp_driver_shm_detach_request_set_lease_id(&e, lease_id);
    tp_driver_shm_detach_request_set_stream_id(&e, stream_id);
    tp_driver_shm_detach_request_set_client_id(&e, client_id);
    tp_driver_shm_detach_request_set_role(&e, role);
    return tp_driver_shm_detach_request_enc_finish(&e);
}

int64_t tp_client_conductor_detach(tp_client_conductor_t *p, uint64_t lease_id, uint32_t stream_id,
    uint32_t client_id, uint8_t role, int64_t now_ns)
{
    int64_t cid;
    int64_t n = detach_request(p, lease_id, stream_id, client_id, role, &cid);
    return pending_add(p, REQUEST_DETACH, cid, n, now_ns);
}

void tp_client_conductor_cancel(tp_client_conductor_t *p, int64_t correlation_id)
{
    pending_t *q = pending_find(p, REQUEST_ATTACH, correlation_id);
    q = q != NULL ? q : pending_find(p, REQUEST_DETACH, correlation_id);
    if (q != NULL)
    {
        pending_free(p, q);
    }
}

int tp_client_conductor_detach_send(tp_client_conductor_t *p, uint64_t lease_id, uint32_t stream_id,
    uint32_t client_id, uint8_t role)
{
    int64_t cid;
    int64_t n = detach_request(p, lease_id, stream_id, client_id, role, &cid);
    return n < 0 ? -1 : tp_client_conductor_send(p, p->buffer, (size_t)n);
}

int tp_client_conductor_keepalive(tp_client_conductor_t *p, uint64_t lease_id, uint32_t stream_id,
    uint32_t client_id, uint8_t role)
{
    tp_driver_shm_lease_keepalive_enc_t e;
    tp_driver_shm_lease_keepalive_enc_begin(&e, p->buffer, sizeof(p->buffer));
    tp_driver_shm_lease_keepalive_set_lease_id(&e, lease_id);
    tp_driver_shm_lease_keepalive_set_stream_id(&e, stream_id);
    tp_driver_shm_lease_keepalive_set_client_id(&e, client_id);
    tp_driver_shm_lease_keepalive_set_role(&e, role);
    tp_driver_shm_lease_keepalive_set_client_timestamp_ns(&e, (uint64_t)tp_clock_now(&p->clock));
    int64_t n = tp_driver_shm_lease_keepalive_enc_finish(&e);
    return n < 0 ? -1 : tp_client_conductor_send(p, p->buffer, (size_t)n);
}

int tp_client_conductor_shutdown_request(tp_client_conductor_t *p, const char *token, uint8_t reason)
{
    tp_driver_shm_driver_shutdown_request_enc_t e;
    tp_driver_shm_driver_shutdown_request_enc_begin(&e, p->buffer, sizeof(p->buffer));
    tp_driver_shm_driver_shutdown_request_set_correlation_id(&e, p->next_correlation_id++);
    tp_driver_shm_driver_shutdown_request_set_reason(&e, reason);
    tp_driver_shm_driver_shutdown_request_put_token(&e, token, strlen(token));
    tp_driver_shm_driver_shutdown_request_put_error_message(&e, "", 0);
    int64_t n = tp_driver_shm_driver_shutdown_request_enc_finish(&e);
    return n < 0 ? -1 : tp_client_conductor_send(p, p->buffer, (size_t)n);
}
