/*
 * UDP subscriptions: one socket per endpoint in a process, shared by the subscriptions of its streams. A poll reads
 * the socket (recvmmsg batches) under an in-process mutex, uncontended when one thread polls, and handles the
 * datagrams of its own stream at once; a copy of each goes to the inbox of every other subscription of that stream
 * (and those of other streams to theirs), which it drains on its next poll. Each publication heard from becomes an image (tp_bus_udp_image.c) when its SETUP arrives; data
 * from a session without an image asks the sender for a SETUP (a status message with the S flag).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/tp_bus_internal.h"
#include "bus/tp_bus_udp_image.h"
#include "core/tp_alloc.h"
#include "core/tp_atomic.h"
#include "core/tp_err.h"
#include "core/tp_proc.h"

#define MAX_SUBS_PER_ENDPOINT 32
#define INBOX_BYTES (1u << 20)
#define ELICIT_INTERVAL_NS (100 * TP_NS_PER_MS)
#define RECV_BATCHES_PER_POLL 4
#define PARK_MAX_NS (100 * TP_NS_PER_MS)

typedef struct udp_endpoint udp_endpoint_t;

/* An inbox record: a datagram another poll read for us, with its source. */
typedef struct inbox_record
{
    uint32_t length;
    uint32_t bytes; /* whole record, 8-byte aligned */
    tp_udp_address_t from;
} inbox_record_t;

struct tp_bus_udp_sub
{
    udp_endpoint_t *endpoint;
    const tp_clock_t *clock;
    tp_udp_image_context_t ctx;
    tp_udp_sub_counters_t counters;
    tp_udp_address_t control_group; /* multicast: where status messages and NAKs go */
    tp_udp_image_t images[TP_UDP_MAX_IMAGES];
    int64_t last_elicit_ns;
    uint8_t *inbox;
    uint32_t inbox_head; /* owner's read offset (monotonic) */
    uint32_t inbox_tail; /* writers' offset (monotonic), under endpoints_lock */
};

struct udp_endpoint
{
    char key[TP_CHANNEL_HOST_MAX + 16];
    int fd;
    int refs;
    tp_bus_subscription_t *subs[MAX_SUBS_PER_ENDPOINT];
    struct mmsghdr messages[TP_UDP_RECV_BATCH];
    struct iovec iov[TP_UDP_RECV_BATCH];
    tp_udp_address_t from[TP_UDP_RECV_BATCH];
    uint8_t *buffers; /* TP_UDP_RECV_BATCH x TP_UDP_RECV_BYTES */
    udp_endpoint_t *next;
};

static pthread_mutex_t endpoints_lock = PTHREAD_MUTEX_INITIALIZER;
static udp_endpoint_t *endpoints;

static void endpoint_free(udp_endpoint_t *ep)
{
    if (ep->fd >= 0)
    {
        close(ep->fd);
    }
    tp_free(ep->buffers);
    tp_free(ep);
}

static udp_endpoint_t *endpoint_open(const tp_channel_t *c, const char *key)
{
    udp_endpoint_t *ep = NULL;
    if (tp_alloc((void **)&ep, sizeof(*ep)) < 0)
    {
        return NULL;
    }
    ep->fd = -1;
    snprintf(ep->key, sizeof(ep->key), "%s", key);
    tp_udp_address_t addr;
    if (tp_alloc((void **)&ep->buffers, (size_t)TP_UDP_RECV_BATCH * TP_UDP_RECV_BYTES) < 0 ||
        tp_udp_resolve(c, &addr) < 0)
    {
        endpoint_free(ep);
        return NULL;
    }
    bool is_multicast = tp_udp_is_multicast(&addr);
    if (tp_udp_socket_open(c, &addr, is_multicast ? &addr : NULL, is_multicast, &ep->fd) < 0)
    {
        endpoint_free(ep);
        return NULL;
    }
    for (int i = 0; i < TP_UDP_RECV_BATCH; i++)
    {
        ep->iov[i].iov_base = ep->buffers + (size_t)i * TP_UDP_RECV_BYTES;
        ep->iov[i].iov_len = TP_UDP_RECV_BYTES;
    }
    return ep;
}

int tp_bus_udp_subscription_open(tp_bus_subscription_t *sub)
{
    struct tp_bus_udp_sub *u = NULL;
    if (tp_alloc((void **)&u, sizeof(*u)) < 0)
    {
        return -1;
    }
    sub->udp = u;
    u->clock = &sub->bus->clock;
    u->last_elicit_ns = INT64_MIN / 2;
    if (tp_alloc((void **)&u->inbox, INBOX_BYTES) < 0)
    {
        return -1;
    }
    tp_udp_address_t data;
    if (tp_udp_resolve(&sub->channel, &data) < 0)
    {
        return -1;
    }
    u->ctx.is_multicast = tp_udp_is_multicast(&data);
    if (u->ctx.is_multicast && tp_udp_control_address(&data, &u->control_group) < 0)
    {
        return -1;
    }
    u->ctx.is_reliable = sub->channel.is_reliable;
    u->ctx.window_request = sub->channel.receiver_window;
    u->ctx.receiver_id = (int64_t)(((uint64_t)tp_random_u32() << 32) | tp_random_u32());
    u->ctx.counters = &u->counters;
    u->ctx.bus_counters = &sub->counters;
    char key[TP_CHANNEL_HOST_MAX + 16];
    snprintf(key, sizeof(key), "%s:%u", sub->channel.host, sub->channel.port);
    pthread_mutex_lock(&endpoints_lock);
    udp_endpoint_t *ep = endpoints;
    while (ep != NULL && strcmp(ep->key, key) != 0)
    {
        ep = ep->next;
    }
    int rc = -1;
    if (ep == NULL && (ep = endpoint_open(&sub->channel, key)) != NULL)
    {
        ep->next = endpoints;
        endpoints = ep;
    }
    for (int i = 0; ep != NULL && i < MAX_SUBS_PER_ENDPOINT; i++)
    {
        if (ep->subs[i] == NULL)
        {
            ep->subs[i] = sub;
            ep->refs++;
            u->endpoint = ep;
            u->ctx.fd = ep->fd;
            rc = 0;
            break;
        }
    }
    if (rc < 0 && ep != NULL)
    {
        TP_SET_ERR(TP_E_CAPACITY, "UDP endpoint %s has %d subscriptions already", key, MAX_SUBS_PER_ENDPOINT);
    }
    pthread_mutex_unlock(&endpoints_lock);
    return rc;
}

void tp_bus_udp_subscription_close(tp_bus_subscription_t *sub)
{
    struct tp_bus_udp_sub *u = sub->udp;
    if (u == NULL)
    {
        return;
    }
    pthread_mutex_lock(&endpoints_lock);
    udp_endpoint_t *ep = u->endpoint;
    if (ep != NULL)
    {
        for (int i = 0; i < MAX_SUBS_PER_ENDPOINT; i++)
        {
            if (ep->subs[i] == sub)
            {
                ep->subs[i] = NULL;
                ep->refs--;
            }
        }
        if (ep->refs == 0)
        {
            udp_endpoint_t **link = &endpoints;
            while (*link != ep)
            {
                link = &(*link)->next;
            }
            *link = ep->next;
            endpoint_free(ep);
        }
    }
    pthread_mutex_unlock(&endpoints_lock);
    for (int i = 0; i < TP_UDP_MAX_IMAGES; i++)
    {
        tp_udp_image_close(&u->images[i]);
    }
    tp_free(u->inbox);
    tp_free(u);
    sub->udp = NULL;
}

void tp_bus_udp_subscription_counters(const tp_bus_subscription_t *sub, tp_udp_sub_counters_t *out)
{
    *out = sub->udp->counters;
}

/* ---- handling one datagram of our stream ---- */

static tp_udp_image_t *image_for(struct tp_bus_udp_sub *u, int32_t session_id)
{
    for (int i = 0; i < TP_UDP_MAX_IMAGES; i++)
    {
        if (u->images[i].is_active && u->images[i].session_id == session_id)
        {
            return &u->images[i];
        }
    }
    return NULL;
}

static const tp_udp_address_t *control_for(struct tp_bus_udp_sub *u, const tp_udp_address_t *from)
{
    return u->ctx.is_multicast ? &u->control_group : from;
}

static void on_setup(tp_bus_subscription_t *sub, const uint8_t *d, const tp_udp_address_t *from, int64_t now_ns)
{
    struct tp_bus_udp_sub *u = sub->udp;
    tp_udp_setup_t s;
    tp_udp_setup_get(&s, d);
    tp_udp_image_t *im = image_for(u, s.session_id);
    if (im != NULL)
    {
        /* The sender has not heard us yet (or lost track): answer now rather than at the next interval. */
        im->control = *control_for(u, from);
        tp_udp_image_send_status(im, &u->ctx, 0, now_ns);
        return;
    }
    for (int i = 0; i < TP_UDP_MAX_IMAGES; i++)
    {
        if (!u->images[i].is_active)
        {
            if (tp_udp_image_open(&u->images[i], &s, control_for(u, from), &u->ctx, now_ns) < 0)
            {
                sub->counters.malformed++;
                return;
            }
            sub->counters.images_joined++;
            sub->counters.images_active++;
            if (sub->on_available != NULL)
            {
                sub->on_available(sub->clientd, sub->stream_id, s.session_id);
            }
            return;
        }
    }
    /* Every image slot is taken: the session waits until one frees, sending SETUPs meanwhile. */
}

static void elicit_setup(tp_bus_subscription_t *sub, const uint8_t *d, const tp_udp_address_t *from, int64_t now_ns)
{
    struct tp_bus_udp_sub *u = sub->udp;
    if (now_ns - u->last_elicit_ns < ELICIT_INTERVAL_NS)
    {
        return;
    }
    tp_udp_data_header_t h;
    tp_udp_data_header_get(&h, d);
    tp_udp_sm_t sm = {
        .flags = TP_UDP_SM_FLAG_SEND_SETUP,
        .session_id = h.session_id,
        .stream_id = h.stream_id,
        .consumption_term_id = h.term_id,
        .consumption_term_offset = h.term_offset,
        .receiver_window = 0,
        .receiver_id = u->ctx.receiver_id,
    };
    uint8_t frame[TP_UDP_SM_LENGTH];
    tp_udp_sm_put(frame, &sm);
    tp_udp_send(u->ctx.fd, frame, sizeof(frame), control_for(u, from));
    u->counters.setups_elicited++;
    u->last_elicit_ns = now_ns;
}

static void on_datagram(tp_bus_subscription_t *sub, int type, const uint8_t *d, size_t length,
    const tp_udp_address_t *from, int64_t now_ns)
{
    struct tp_bus_udp_sub *u = sub->udp;
    if (type == TP_UDP_TYPE_SETUP)
    {
        on_setup(sub, d, from, now_ns);
        return;
    }
    tp_udp_image_t *im = image_for(u, tp_udp_get_i32(d, 12));
    if (im == NULL)
    {
        elicit_setup(sub, d, from, now_ns);
        return;
    }
    if (!tp_udp_image_insert(im, &u->ctx, d, length, now_ns))
    {
        sub->counters.malformed++;
    }
}

/* The stream a datagram is for, or 0 when it is not a frame a subscription handles. */
static int32_t stream_of(int type, const uint8_t *d)
{
    if (type == TP_UDP_TYPE_DATA || type == TP_UDP_TYPE_SETUP)
    {
        return tp_udp_get_i32(d, 16);
    }
    return 0;
}

/* Queue a datagram for another subscription of this endpoint (its owner drains it; writers hold endpoints_lock). */
static void inbox_put(tp_bus_subscription_t *target, const uint8_t *d, size_t length, const tp_udp_address_t *from)
{
    struct tp_bus_udp_sub *t = target->udp;
    uint32_t bytes = (uint32_t)((sizeof(inbox_record_t) + length + 7) & ~(size_t)7);
    uint32_t tail = t->inbox_tail;
    uint32_t head = tp_load_acquire_u32(&t->inbox_head);
    uint32_t at = tail % INBOX_BYTES;
    uint32_t skip = INBOX_BYTES - at < bytes ? INBOX_BYTES - at : 0; /* records never wrap */
    if (tail + skip + bytes - head > INBOX_BYTES)
    {
        return; /* full: as if the network dropped it; the protocol asks again */
    }
    if (skip > 0)
    {
        inbox_record_t pad = { .length = UINT32_MAX, .bytes = skip };
        memcpy(t->inbox + at, &pad, sizeof(uint32_t) * 2);
        at = 0;
    }
    inbox_record_t r = { .length = (uint32_t)length, .bytes = bytes, .from = *from };
    memcpy(t->inbox + at, &r, sizeof(r));
    memcpy(t->inbox + at + sizeof(r), d, length);
    tp_store_release_u32(&t->inbox_tail, tail + skip + bytes);
}

static void inbox_drain(tp_bus_subscription_t *sub, int64_t now_ns)
{
    struct tp_bus_udp_sub *u = sub->udp;
    uint32_t tail = tp_load_acquire_u32(&u->inbox_tail);
    while (u->inbox_head != tail)
    {
        inbox_record_t r;
        const uint8_t *at = u->inbox + u->inbox_head % INBOX_BYTES;
        memcpy(&r, at, sizeof(uint32_t) * 2);
        if (r.length != UINT32_MAX)
        {
            memcpy(&r, at, sizeof(r));
            const uint8_t *d = at + sizeof(r);
            on_datagram(sub, tp_udp_frame_classify(d, r.length), d, r.length, &r.from, now_ns);
        }
        tp_store_release_u32(&u->inbox_head, u->inbox_head + r.bytes);
    }
}

/* Read what the socket holds, in batches; returns datagrams read. Caller holds endpoints_lock. */
static int read_socket(tp_bus_subscription_t *sub, int64_t now_ns)
{
    udp_endpoint_t *ep = sub->udp->endpoint;
    int total = 0;
    for (int batch = 0; batch < RECV_BATCHES_PER_POLL; batch++)
    {
        for (int i = 0; i < TP_UDP_RECV_BATCH; i++)
        {
            memset(&ep->messages[i].msg_hdr, 0, sizeof(ep->messages[i].msg_hdr));
            ep->messages[i].msg_hdr.msg_iov = &ep->iov[i];
            ep->messages[i].msg_hdr.msg_iovlen = 1;
            ep->messages[i].msg_hdr.msg_name = &ep->from[i].addr;
            ep->messages[i].msg_hdr.msg_namelen = sizeof(ep->from[i].addr);
        }
        int n = recvmmsg(ep->fd, ep->messages, TP_UDP_RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
        {
            break;
        }
        for (int i = 0; i < n; i++)
        {
            const uint8_t *d = ep->iov[i].iov_base;
            size_t length = ep->messages[i].msg_len;
            ep->from[i].length = ep->messages[i].msg_hdr.msg_namelen;
            int type = tp_udp_frame_classify(d, length);
            if (type < 0)
            {
                sub->counters.malformed++;
                continue;
            }
            /* Every subscription of the stream gets it (several in one process each rebuild their own image, as
             * Aeron's subscriptions all see every message); a stream nobody here subscribes to, or a frame for
             * senders, is not ours, and not malformed either. */
            int32_t stream_id = stream_of(type, d);
            for (int k = 0; k < MAX_SUBS_PER_ENDPOINT; k++)
            {
                tp_bus_subscription_t *target = ep->subs[k];
                if (target == sub && target->stream_id == stream_id)
                {
                    on_datagram(sub, type, d, length, &ep->from[i], now_ns);
                }
                else if (target != NULL && target->stream_id == stream_id)
                {
                    inbox_put(target, d, length, &ep->from[i]);
                }
            }
        }
        total += n;
        if (n < TP_UDP_RECV_BATCH)
        {
            break;
        }
    }
    return total;
}

static void image_retire(tp_bus_subscription_t *sub, tp_udp_image_t *im)
{
    int32_t session_id = im->session_id;
    tp_udp_image_close(im);
    sub->counters.images_dropped++;
    sub->counters.images_active--;
    if (sub->on_unavailable != NULL)
    {
        sub->on_unavailable(sub->clientd, sub->stream_id, session_id);
    }
}

int tp_bus_udp_poll(tp_bus_subscription_t *sub, tp_bus_fragment_handler_t handler, void *clientd, int limit)
{
    struct tp_bus_udp_sub *u = sub->udp;
    int64_t now_ns = tp_clock_now(u->clock);
    pthread_mutex_lock(&endpoints_lock);
    read_socket(sub, now_ns);
    pthread_mutex_unlock(&endpoints_lock);
    inbox_drain(sub, now_ns);
    int delivered = 0;
    for (int i = 0; i < TP_UDP_MAX_IMAGES; i++)
    {
        tp_udp_image_t *im = &u->images[i];
        if (!im->is_active)
        {
            continue;
        }
        if (delivered < limit)
        {
            delivered += tp_udp_image_deliver(im, &u->ctx, handler, clientd, limit - delivered);
        }
        tp_udp_image_do_work(im, &u->ctx, now_ns);
        if (tp_udp_image_is_done(im, now_ns))
        {
            image_retire(sub, im);
        }
    }
    sub->counters.messages += (uint64_t)delivered;
    return delivered;
}

int tp_bus_udp_park(tp_bus_subscription_t *sub, int64_t timeout_ns)
{
    struct tp_bus_udp_sub *u = sub->udp;
    if (u->inbox_head != tp_load_acquire_u32(&u->inbox_tail))
    {
        return 1;
    }
    for (int i = 0; i < TP_UDP_MAX_IMAGES; i++)
    {
        const tp_udp_image_t *im = &u->images[i];
        if (im->is_active && (im->consumed_pos < im->rebuild_pos || im->is_rescan_needed))
        {
            return 1;
        }
        if (im->is_active && im->has_gap && timeout_ns > TP_NS_PER_MS)
        {
            timeout_ns = TP_NS_PER_MS; /* a NAK falls due soon */
        }
    }
    if (timeout_ns > PARK_MAX_NS)
    {
        timeout_ns = PARK_MAX_NS; /* status messages keep the senders' windows open */
    }
    struct pollfd p = { .fd = u->endpoint->fd, .events = POLLIN };
    int ms = (int)((timeout_ns + TP_NS_PER_MS - 1) / TP_NS_PER_MS);
    return poll(&p, 1, ms) > 0 ? 1 : 0;
}
