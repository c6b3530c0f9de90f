/* A synchronous driver control-stream client; see tp_driver_proxy.h. */
#include "driver/tp_driver_proxy.h"
#include "driver/tp_driver_lock.h"

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
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"

#define PROXY_BUFFER_BYTES 65536
#define PROXY_RESEND_MIN_NS (100 * TP_NS_PER_MS)
#define PROXY_RESEND_MAX_NS TP_NS_PER_S
#define PROXY_REQUEST_MAX 512

/* A request waiting for its response, resent under the same correlation id (100 ms, doubling to 1 s) so that a
 * driver that joined the control stream late, or restarted, still answers it. */
typedef struct pending
{
    bool is_active;
    bool has_response;
    bool is_malformed;
    int64_t correlation_id;
    uint8_t request[PROXY_REQUEST_MAX];
    size_t length;
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

#define PROXY_TRUST_CACHE 8

struct tp_driver_proxy
{
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    tp_bus_subscription_t *announce_sub; /* when announces travel on a stream of their own */
    int64_t next_correlation_id;
    uint8_t buffer[PROXY_BUFFER_BYTES];
    /* the responses being waited for: at most one attach and one detach */
    pending_t attach;
    pending_t detach;
    tp_attach_result_t *attach_result;
    int32_t detach_code;
    char detach_message[TP_PROXY_MESSAGE_MAX];
    /* notices */
    tp_proxy_notice_handler_t notice_handler;
    void *notice_clientd;
    tp_proxy_event_t events[TP_PROXY_MAX_EVENTS];
    size_t event_count;
    uint64_t events_dropped;
    uint64_t messages_rejected; /* newer schema version, unknown enum values */
    uint64_t messages_untrusted; /* driver messages from an image that is not the driver's */
    char lock_path[4200];        /* the driver's lock file: who holds it is the driver */
    trusted_t trusted[PROXY_TRUST_CACHE];
    uint32_t trusted_next;
    tp_clock_t clock; /* the resend schedule's (tp_driver_proxy_set_clock; CLOCK_MONOTONIC by default) */
};

int tp_driver_proxy_open(tp_driver_proxy_t **out, tp_bus_t *bus, const char *control_channel,
    uint32_t control_stream_id)
{
    *out = NULL;
    tp_driver_proxy_t *p = NULL;
    if (tp_alloc((void **)&p, sizeof(*p)) < 0)
    {
        return -1;
    }
    snprintf(p->lock_path, sizeof(p->lock_path), "%s/driver-%" PRIu32 ".lock", tp_bus_dir(bus), control_stream_id);
    /* Correlation ids: random high bits so that two proxies of one client id rarely collide. */
    p->next_correlation_id = ((int64_t)(tp_random_u32() & 0x7fffffffu) << 24) + 1;
    if (tp_bus_subscription_open(&p->sub, bus, control_channel, (int32_t)control_stream_id, NULL, NULL, NULL) < 0 ||
        tp_bus_publication_open(&p->pub, bus, control_channel, (int32_t)control_stream_id, false) < 0)
    {
        tp_driver_proxy_close(p);
        return -1;
    }
    *out = p;
    return 0;
}

void tp_driver_proxy_set_clock(tp_driver_proxy_t *p, tp_clock_fn_t clock, void *clientd)
{
    p->clock.fn = clock;
    p->clock.clientd = clientd;
}

void tp_driver_proxy_close(tp_driver_proxy_t *p)
{
    if (p == NULL)
    {
        return;
    }
    tp_bus_publication_close(p->pub);
    tp_bus_subscription_close(p->sub);
    tp_bus_subscription_close(p->announce_sub);
    tp_free(p);
}

int64_t tp_driver_proxy_next_correlation_id(tp_driver_proxy_t *p)
{
    return p->next_correlation_id;
}

void tp_driver_proxy_set_notice_handler(tp_driver_proxy_t *p, tp_proxy_notice_handler_t handler, void *clientd)
{
    p->notice_handler = handler;
    p->notice_clientd = clientd;
}

static void record(tp_driver_proxy_t *p, const tp_proxy_event_t *e)
{
    if (p->notice_handler != NULL)
    {
        p->notice_handler(p->notice_clientd, e);
    }
    if (p->event_count == TP_PROXY_MAX_EVENTS)
    {
        p->events_dropped++;
        return;
    }
    p->events[p->event_count++] = *e;
}

static void copy_text(char *out, size_t capacity, tp_sbe_bytes_t bytes)
{
    size_t n = bytes.length < capacity - 1 ? bytes.length : capacity - 1;
    memcpy(out, bytes.data, n);
    out[n] = '\0';
}

static void on_attach_response(tp_driver_proxy_t *p, const uint8_t *buffer, size_t length)
{
    tp_driver_shm_attach_response_t m;
    if (tp_driver_shm_attach_response_decode(&m, buffer, length) < 0)
    {
        return;
    }
    if (!p->attach.is_active || p->attach.has_response ||
        tp_driver_shm_attach_response_correlation_id(&m) != p->attach.correlation_id)
    {
        return;
    }
    tp_attach_result_t *r = p->attach_result;
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
        if (r->pool_count == TP_PROXY_MAX_POOLS)
        {
            p->attach.is_malformed = true;
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
    p->attach.has_response = true;
}

static void on_detach_response(tp_driver_proxy_t *p, const uint8_t *buffer, size_t length)
{
    tp_driver_shm_detach_response_t m;
    if (tp_driver_shm_detach_response_decode(&m, buffer, length) < 0 || !p->detach.is_active ||
        p->detach.has_response || tp_driver_shm_detach_response_correlation_id(&m) != p->detach.correlation_id)
    {
        return;
    }
    p->detach_code = tp_driver_shm_detach_response_code(&m);
    copy_text(p->detach_message, sizeof(p->detach_message), tp_driver_shm_detach_response_error_message(&m));
    p->detach.has_response = true;
}

/* The pid holding the driver's record lock, 0 if nobody (or we cannot tell). */
static int32_t driver_lock_holder(const tp_driver_proxy_t *p)
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
static bool is_from_driver(tp_driver_proxy_t *p, const tp_bus_header_t *header)
{
    for (int i = 0; i < PROXY_TRUST_CACHE; i++)
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
    trusted_t *t = &p->trusted[p->trusted_next++ % PROXY_TRUST_CACHE];
    *t = (trusted_t){ .session_id = header->session_id, .is_driver = is_driver, .is_set = true };
    return is_driver;
}

static void on_announce(tp_driver_proxy_t *p, const uint8_t *buffer, size_t length)
{
    tp_wire_shm_pool_announce_t m;
    if (tp_wire_shm_pool_announce_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_proxy_event_t e = { .kind = TP_PROXY_EVENT_ANNOUNCE };
    e.stream_id = tp_wire_shm_pool_announce_stream_id(&m);
    e.epoch = tp_wire_shm_pool_announce_epoch(&m);
    e.client_id = tp_wire_shm_pool_announce_producer_id(&m);
    e.announce_timestamp_ns = tp_wire_shm_pool_announce_announce_timestamp_ns(&m);
    e.clock_domain = tp_wire_shm_pool_announce_announce_clock_domain(&m);
    e.layout_version = tp_wire_shm_pool_announce_layout_version(&m);
    e.header_nslots = tp_wire_shm_pool_announce_header_nslots(&m);
    record(p, &e);
}

static void on_consumer_config(tp_driver_proxy_t *p, const uint8_t *buffer, size_t length)
{
    tp_wire_consumer_config_t m;
    if (tp_wire_consumer_config_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_proxy_event_t e = { .kind = TP_PROXY_EVENT_CONSUMER_CONFIG };
    e.stream_id = tp_wire_consumer_config_stream_id(&m);
    e.mode = tp_wire_consumer_config_mode(&m);
    e.client_id = tp_wire_consumer_config_consumer_id(&m);
    e.descriptor_stream_id = tp_wire_consumer_config_descriptor_stream_id(&m);
    e.control_stream_id = tp_wire_consumer_config_control_stream_id(&m);
    copy_text(e.descriptor_channel, sizeof(e.descriptor_channel), tp_wire_consumer_config_descriptor_channel(&m));
    copy_text(e.control_channel, sizeof(e.control_channel), tp_wire_consumer_config_control_channel(&m));
    record(p, &e);
}

static void on_progress(tp_driver_proxy_t *p, const uint8_t *buffer, size_t length)
{
    tp_wire_frame_progress_t m;
    if (tp_wire_frame_progress_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_proxy_event_t e = { .kind = TP_PROXY_EVENT_PROGRESS };
    e.stream_id = tp_wire_frame_progress_stream_id(&m);
    e.epoch = tp_wire_frame_progress_epoch(&m);
    e.seq = tp_wire_frame_progress_seq(&m);
    e.bytes_filled = tp_wire_frame_progress_payload_bytes_filled(&m);
    e.progress_state = tp_wire_frame_progress_state(&m);
    /* Not recorded: progress can be frequent; only the notice handler sees it. */
    if (p->notice_handler != NULL)
    {
        p->notice_handler(p->notice_clientd, &e);
    }
}

static void on_hello(tp_driver_proxy_t *p, const uint8_t *buffer, size_t length)
{
    tp_wire_consumer_hello_t m;
    if (tp_wire_consumer_hello_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_proxy_event_t e = { .kind = TP_PROXY_EVENT_HELLO };
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
    record(p, &e);
}

static void on_revoked(tp_driver_proxy_t *p, const uint8_t *buffer, size_t length)
{
    tp_driver_shm_lease_revoked_t m;
    if (tp_driver_shm_lease_revoked_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_proxy_event_t e = { .kind = TP_PROXY_EVENT_REVOKED };
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
    record(p, &e);
}

static void on_shutdown(tp_driver_proxy_t *p, const uint8_t *buffer, size_t length)
{
    tp_driver_shm_driver_shutdown_t m;
    if (tp_driver_shm_driver_shutdown_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_proxy_event_t e = { .kind = TP_PROXY_EVENT_SHUTDOWN };
    e.reason = tp_driver_shm_driver_shutdown_reason(&m);
    record(p, &e);
}

/* One message of the control (or announce) stream: versions and senders checked, then one handler per type. */
static void on_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    tp_driver_proxy_t *p = clientd;
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
    /* Only the driver answers, revokes, shuts down and announces pools (a ConsumerConfig may come from a producer). */
    bool is_announce = h.schema_id == TP_WIRE_SCHEMA_ID && h.template_id == TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID;
    bool is_drivers_to_send = h.schema_id == TP_DRIVER_SCHEMA_ID || is_announce;
    if (is_drivers_to_send && !is_from_driver(p, header))
    {
        p->messages_untrusted++;
        return;
    }
    uint32_t type = (uint32_t)h.schema_id << 16 | h.template_id;
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

int tp_driver_proxy_poll(tp_driver_proxy_t *p)
{
    int work = tp_bus_poll(p->sub, on_message, p, 64);
    if (work >= 0)
    {
        work += tp_bus_publication_do_work(p->pub);
    }
    if (p->announce_sub != NULL && work >= 0)
    {
        int more = tp_bus_poll(p->announce_sub, on_message, p, 64);
        work = more < 0 ? more : work + more;
    }
    return work;
}

int tp_driver_proxy_subscribe_announces(tp_driver_proxy_t *p, tp_bus_t *bus, const char *channel,
    uint32_t stream_id)
{
    if (p->announce_sub != NULL)
    {
        TP_SET_ERR(TP_E_STATE, "the driver proxy already reads an announce stream");
        return -1;
    }
    return tp_bus_subscription_open(&p->announce_sub, bus, channel, (int32_t)stream_id, NULL, NULL, NULL);
}

tp_bus_subscription_t *tp_driver_proxy_subscription(tp_driver_proxy_t *p)
{
    return p->sub;
}

int tp_driver_proxy_send(tp_driver_proxy_t *p, const void *buffer, size_t length)
{
    for (int attempt = 0; attempt < 1000; attempt++)
    {
        int64_t rc = tp_bus_offer(p->pub, buffer, length);
        if (rc > 0)
        {
            return 0;
        }
        if (rc == TP_BUS_CLOSED || rc == TP_BUS_MAX_MESSAGE_LENGTH_EXCEEDED)
        {
            break;
        }
        if (rc == TP_BUS_NOT_CONNECTED)
        {
            /* Our own subscription counts as connected, so this means the bus lost it: give up. */
            break;
        }
        sched_yield();
    }
    TP_SET_ERR(TP_E_STATE, "could not send %zu bytes on the driver control stream", length);
    return -1;
}

static void pending_begin(pending_t *q, int64_t correlation_id, const uint8_t *request, size_t length)
{
    q->is_active = true;
    q->has_response = false;
    q->is_malformed = false;
    q->correlation_id = correlation_id;
    memcpy(q->request, request, length);
    q->length = length;
    q->next_send_ns = 0;
    q->resend_ns = PROXY_RESEND_MIN_NS;
}

/* Read what arrived, (re)send when due. 1 once the response arrived, 0 while waiting, -1 if sending failed or
 * the response was malformed (the request is then finished). */
static int pending_poll(tp_driver_proxy_t *p, pending_t *q, const char *what, int *polled)
{
    *polled = tp_driver_proxy_poll(p);
    if (q->has_response)
    {
        q->is_active = false;
        if (q->is_malformed)
        {
            TP_SET_ERR(TP_E_MALFORMED, "the driver's %s response has more pools than this client handles", what);
            return -1;
        }
        return 1;
    }
    int64_t now = tp_clock_now(&p->clock);
    if (now >= q->next_send_ns)
    {
        if (tp_driver_proxy_send(p, q->request, q->length) < 0)
        {
            q->is_active = false;
            return -1;
        }
        q->next_send_ns = now + q->resend_ns;
        q->resend_ns = q->resend_ns * 2 < PROXY_RESEND_MAX_NS ? q->resend_ns * 2 : PROXY_RESEND_MAX_NS;
    }
    return 0;
}

/* Wait for the pending request's response until the deadline. */
static int pending_wait(tp_driver_proxy_t *p, pending_t *q, int64_t timeout_ns, const char *what)
{
    int64_t deadline = tp_clock_monotonic_ns() + timeout_ns;
    for (;;)
    {
        int polled = 0;
        int rc = pending_poll(p, q, what, &polled);
        if (rc != 0)
        {
            return rc > 0 ? 0 : -1;
        }
        if (tp_clock_monotonic_ns() > deadline)
        {
            q->is_active = false;
            TP_SET_ERR(TP_E_TIMEOUT, "no %s response from the driver within %" PRId64 " ms", what,
                (int64_t)(timeout_ns / TP_NS_PER_MS));
            return -1;
        }
        if (polled == 0)
        {
            tp_bus_subscription_park(p->sub, 1 * TP_NS_PER_MS); /* only when nothing came in */
        }
    }
}

int tp_driver_proxy_attach_start(tp_driver_proxy_t *p, const tp_attach_params_t *a, tp_attach_result_t *result)
{
    if (p->attach.is_active)
    {
        TP_SET_ERR(TP_E_STATE, "an attach request is already pending on this driver proxy");
        return -1;
    }
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
    int64_t n = tp_driver_shm_attach_request_enc_finish(&e);
    if (n < 0)
    {
        return -1;
    }
    p->attach_result = result;
    pending_begin(&p->attach, cid, p->buffer, (size_t)n);
    return 0;
}

int tp_driver_proxy_attach_poll(tp_driver_proxy_t *p)
{
    if (!p->attach.is_active)
    {
        TP_SET_ERR(TP_E_STATE, "no attach request is pending");
        return -1;
    }
    int polled;
    return pending_poll(p, &p->attach, "attach", &polled);
}

bool tp_driver_proxy_attach_is_pending(const tp_driver_proxy_t *p)
{
    return p->attach.is_active;
}

void tp_driver_proxy_attach_cancel(tp_driver_proxy_t *p)
{
    p->attach.is_active = false;
}

int tp_driver_proxy_attach(tp_driver_proxy_t *p, const tp_attach_params_t *a, tp_attach_result_t *result,
    int64_t timeout_ns)
{
    if (tp_driver_proxy_attach_start(p, a, result) < 0)
    {
        return -1;
    }
    return pending_wait(p, &p->attach, timeout_ns, "attach");
}

/* Encode a detach request into p->buffer; its correlation id goes to *cid. */
static int64_t detach_request(tp_driver_proxy_t *p, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
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

int tp_driver_proxy_detach_send(tp_driver_proxy_t *p, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role)
{
    int64_t cid;
    int64_t n = detach_request(p, lease_id, stream_id, client_id, role, &cid);
    return n < 0 ? -1 : tp_driver_proxy_send(p, p->buffer, (size_t)n);
}

int tp_driver_proxy_detach(tp_driver_proxy_t *p, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role, int32_t *code, char *message, size_t message_capacity, int64_t timeout_ns)
{
    int64_t cid;
    int64_t n = detach_request(p, lease_id, stream_id, client_id, role, &cid);
    if (n < 0)
    {
        return -1;
    }
    pending_begin(&p->detach, cid, p->buffer, (size_t)n);
    if (pending_wait(p, &p->detach, timeout_ns, "detach") < 0)
    {
        return -1;
    }
    *code = p->detach_code;
    if (message != NULL && message_capacity > 0)
    {
        snprintf(message, message_capacity, "%s", p->detach_message);
    }
    return 0;
}

int tp_driver_proxy_keepalive(tp_driver_proxy_t *p, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role)
{
    tp_driver_shm_lease_keepalive_enc_t e;
    tp_driver_shm_lease_keepalive_enc_begin(&e, p->buffer, sizeof(p->buffer));
    tp_driver_shm_lease_keepalive_set_lease_id(&e, lease_id);
    tp_driver_shm_lease_keepalive_set_stream_id(&e, stream_id);
    tp_driver_shm_lease_keepalive_set_client_id(&e, client_id);
    tp_driver_shm_lease_keepalive_set_role(&e, role);
    tp_driver_shm_lease_keepalive_set_client_timestamp_ns(&e, (uint64_t)tp_clock_now(&p->clock));
    int64_t n = tp_driver_shm_lease_keepalive_enc_finish(&e);
    return n < 0 ? -1 : tp_driver_proxy_send(p, p->buffer, (size_t)n);
}

int tp_driver_proxy_shutdown_request(tp_driver_proxy_t *p, const char *token, uint8_t reason)
{
    tp_driver_shm_driver_shutdown_request_enc_t e;
    tp_driver_shm_driver_shutdown_request_enc_begin(&e, p->buffer, sizeof(p->buffer));
    tp_driver_shm_driver_shutdown_request_set_correlation_id(&e, p->next_correlation_id++);
    tp_driver_shm_driver_shutdown_request_set_reason(&e, reason);
    tp_driver_shm_driver_shutdown_request_put_token(&e, token, strlen(token));
    tp_driver_shm_driver_shutdown_request_put_error_message(&e, "", 0);
    int64_t n = tp_driver_shm_driver_shutdown_request_enc_finish(&e);
    return n < 0 ? -1 : tp_driver_proxy_send(p, p->buffer, (size_t)n);
}

int tp_driver_proxy_await_event(tp_driver_proxy_t *p, tp_proxy_event_kind_t kind, uint64_t lease_id,
    uint32_t stream_id, size_t *from, tp_proxy_event_t *out, int64_t timeout_ns)
{
    int64_t deadline = tp_clock_monotonic_ns() + timeout_ns;
    for (;;)
    {
        for (size_t i = *from; i < p->event_count; i++)
        {
            const tp_proxy_event_t *e = &p->events[i];
            if (e->kind == kind && (lease_id == 0 || e->lease_id == lease_id) &&
                (stream_id == 0 || e->stream_id == stream_id))
            {
                *from = i + 1;
                if (out != NULL)
                {
                    *out = *e;
                }
                return 0;
            }
        }
        if (tp_clock_monotonic_ns() > deadline)
        {
            TP_SET_ERR(TP_E_TIMEOUT, "no such driver notice within %" PRId64 " ms",
                (int64_t)(timeout_ns / TP_NS_PER_MS));
            return -1;
        }
        if (tp_driver_proxy_poll(p) == 0)
        {
            tp_bus_subscription_park(p->sub, 1 * TP_NS_PER_MS);
        }
    }
}

uint64_t tp_driver_proxy_messages_rejected(const tp_driver_proxy_t *p)
{
    return p->messages_rejected;
}

size_t tp_driver_proxy_event_count(const tp_driver_proxy_t *p)
{
    return p->event_count;
}

const tp_proxy_event_t *tp_driver_proxy_event(const tp_driver_proxy_t *p, size_t index)
{
    return index < p->event_count ? &p->events[index] : NULL;
}

uint64_t tp_driver_proxy_messages_untrusted(const tp_driver_proxy_t *p)
{
    return p->messages_untrusted;
}
