/*
 * The bus over UDP: one message per datagram behind a 32-byte bus header
 *   magic u32 "TPB1" | version u8 | flags u8 | reserved u16 | stream_id i32 | session_id i32 | seq u64 |
 *   length u32 | reserved u32
 * Several stream ids share one endpoint: within a process, subscriptions on the same endpoint share one socket;
 * a poll reads the socket under an in-process mutex (uncontended when one thread polls) and routes each datagram
 * to its stream's queue, then delivers from its own queue without the lock. Per-session sequence gaps count as lost
 * records; malformed datagrams are dropped and counted; a message larger than the datagram limit is refused.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/tp_bus_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_proc.h"

#define UDP_MAGIC 0x31425054u /* "TPB1" */
#define UDP_VERSION 1
#define UDP_HEADER_BYTES 32
#define UDP_MAX_SUBS_PER_ENDPOINT 32
#define UDP_QUEUE_SLOTS 256
#define UDP_MAX_SESSIONS 64

typedef struct udp_header
{
    uint32_t magic;
    uint8_t version;
    uint8_t flags;
    uint16_t reserved0;
    int32_t stream_id;
    int32_t session_id;
    uint64_t seq;
    uint32_t length;
    uint32_t reserved1;
} udp_header_t;

_Static_assert(sizeof(udp_header_t) == UDP_HEADER_BYTES, "bus datagram header is 32 bytes");

struct tp_bus_udp_pub
{
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_length;
    uint64_t next_seq;
    uint8_t *datagram; /* header + body, mtu bytes */
};

typedef struct udp_session
{
    int32_t session_id;
    uint64_t expected_seq;
} udp_session_t;

typedef struct udp_endpoint udp_endpoint_t;

struct tp_bus_udp_sub
{
    udp_endpoint_t *endpoint;
    uint8_t *queue;           /* UDP_QUEUE_SLOTS x mtu bytes: datagrams read for us by another poll */
    uint32_t queue_lengths[UDP_QUEUE_SLOTS];
    uint32_t queue_head;
    uint32_t queue_tail;
    udp_session_t sessions[UDP_MAX_SESSIONS];
    int session_count;
};

struct udp_endpoint
{
    char key[TP_CHANNEL_HOST_MAX + 16];
    int fd;
    int refs;
    uint32_t mtu;
    uint8_t *datagram;
    tp_bus_subscription_t *subs[UDP_MAX_SUBS_PER_ENDPOINT];
    udp_endpoint_t *next;
};

static pthread_mutex_t endpoints_lock = PTHREAD_MUTEX_INITIALIZER;
static udp_endpoint_t *endpoints;

static int udp_resolve(const tp_channel_t *c, struct sockaddr_storage *out, socklen_t *length)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    char port[8];
    snprintf(port, sizeof(port), "%u", c->port);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(c->host, port, &hints, &res);
    if (rc != 0 || res == NULL)
    {
        TP_SET_ERR(TP_E_INVALID, "cannot resolve UDP endpoint host '%s': %s", c->host, gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *length = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static bool udp_is_multicast(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
    {
        return IN_MULTICAST(ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr));
    }
    return a->ss_family == AF_INET6 && IN6_IS_ADDR_MULTICAST(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

static int udp_interface_v4(const tp_channel_t *c, struct in_addr *out)
{
    out->s_addr = htonl(INADDR_ANY);
    if (c->interface[0] != '\0' && inet_pton(AF_INET, c->interface, out) != 1)
    {
        TP_SET_ERR(TP_E_INVALID, "interface '%s' is not an IPv4 address", c->interface);
        return -1;
    }
    return 0;
}

int tp_bus_udp_publication_open(tp_bus_publication_t *pub)
{
    struct tp_bus_udp_pub *u = NULL;
    if (tp_alloc((void **)&u, sizeof(*u)) < 0)
    {
        return -1;
    }
    u->fd = -1;
    pub->udp = u;
    if (udp_resolve(&pub->channel, &u->peer, &u->peer_length) < 0 ||
        tp_alloc((void **)&u->datagram, pub->channel.mtu) < 0)
    {
        return -1;
    }
    u->fd = socket(u->peer.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0)
    {
        TP_SET_ERR(errno, "UDP socket: %s", strerror(errno));
        return -1;
    }
    if (udp_is_multicast(&u->peer) && u->peer.ss_family == AF_INET)
    {
        struct in_addr ifaddr;
        unsigned char ttl = (unsigned char)(pub->channel.ttl >= 0 ? pub->channel.ttl : 1);
        unsigned char loop = 1;
        if (udp_interface_v4(&pub->channel, &ifaddr) < 0 ||
            setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) < 0 ||
            setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) < 0 ||
            (pub->channel.interface[0] != '\0' &&
                setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof(ifaddr)) < 0))
        {
            TP_SET_ERR(errno != 0 ? errno : TP_E_INVALID, "configuring multicast on '%s': %s", pub->channel.host,
                strerror(errno));
            return -1;
        }
    }
    pub->session_id = (int32_t)tp_random_u32();
    pub->max_message_length = pub->channel.mtu - UDP_HEADER_BYTES;
    return 0;
}

void tp_bus_udp_publication_close(tp_bus_publication_t *pub)
{
    struct tp_bus_udp_pub *u = pub->udp;
    if (u == NULL)
    {
        return;
    }
    if (u->fd >= 0)
    {
        close(u->fd);
    }
    tp_free(u->datagram);
    tp_free(u);
    pub->udp = NULL;
}

uint8_t *tp_bus_udp_claim_buffer(tp_bus_publication_t *pub)
{
    return pub->udp->datagram + UDP_HEADER_BYTES;
}

/* Hot path: no alloc or locks; one sendto. */
int64_t tp_bus_udp_offer(tp_bus_publication_t *pub, const void *buffer, size_t length)
{
    struct tp_bus_udp_pub *u = pub->udp;
    udp_header_t h = { .magic = UDP_MAGIC, .version = UDP_VERSION, .stream_id = pub->stream_id,
        .session_id = pub->session_id, .seq = u->next_seq, .length = (uint32_t)length };
    memcpy(u->datagram, &h, sizeof(h));
    if (buffer != NULL)
    {
        memcpy(u->datagram + UDP_HEADER_BYTES, buffer, length);
    }
    ssize_t n = sendto(u->fd, u->datagram, UDP_HEADER_BYTES + length, MSG_DONTWAIT,
        (const struct sockaddr *)&u->peer, u->peer_length);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
    {
        return TP_BUS_BACK_PRESSURED;
    }
    /* Other errors (no route, refused) mean the datagram is lost, which UDP allows; the receiver counts the gap. */
    u->next_seq++;
    return (int64_t)u->next_seq;
}

/* ---- subscriptions ---- */

static int udp_endpoint_socket(const tp_channel_t *c, int *fd_out)
{
    struct sockaddr_storage addr;
    socklen_t length;
    if (udp_resolve(c, &addr, &length) < 0)
    {
        return -1;
    }
    int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
    {
        TP_SET_ERR(errno, "UDP socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int rcvbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    bool is_multicast = udp_is_multicast(&addr);
    if (is_multicast)
    {
        /* Several processes may listen to one group. */
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    }
    if (bind(fd, (struct sockaddr *)&addr, length) < 0)
    {
        TP_SET_ERR(errno, "binding UDP endpoint %s:%u failed: %s%s", c->host, c->port, strerror(errno),
            errno == EADDRINUSE ? " (another process listens there; unicast endpoints serve one process)" : "");
        close(fd);
        return -1;
    }
    if (is_multicast && addr.ss_family == AF_INET)
    {
        struct ip_mreq mreq;
        mreq.imr_multiaddr = ((struct sockaddr_in *)&addr)->sin_addr;
        if (udp_interface_v4(c, &mreq.imr_interface) < 0 ||
            setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) < 0)
        {
            TP_SET_ERR(errno != 0 ? errno : TP_E_INVALID, "joining multicast group %s failed: %s", c->host,
                strerror(errno));
            close(fd);
            return -1;
        }
    }
    *fd_out = fd;
    return 0;
}

int tp_bus_udp_subscription_open(tp_bus_subscription_t *sub)
{
    struct tp_bus_udp_sub *u = NULL;
    if (tp_alloc((void **)&u, sizeof(*u)) < 0)
    {
        return -1;
    }
    sub->udp = u;
    if (tp_alloc((void **)&u->queue, (size_t)UDP_QUEUE_SLOTS * sub->channel.mtu) < 0)
    {
        return -1;
    }
    char key[TP_CHANNEL_HOST_MAX + 16];
    snprintf(key, sizeof(key), "%s:%u", sub->channel.host, sub->channel.port);
    pthread_mutex_lock(&endpoints_lock);
    udp_endpoint_t *ep = endpoints;
    while (ep != NULL && strcmp(ep->key, key) != 0)
    {
        ep = ep->next;
    }
    int rc = -1;
    if (ep == NULL)
    {
        if (tp_alloc((void **)&ep, sizeof(*ep)) < 0)
        {
            goto done;
        }
        snprintf(ep->key, sizeof(ep->key), "%s", key);
        ep->mtu = TP_UDP_MTU_MAX;
        if (tp_alloc((void **)&ep->datagram, ep->mtu) < 0 || udp_endpoint_socket(&sub->channel, &ep->fd) < 0)
        {
            tp_free(ep->datagram);
            tp_free(ep);
            goto done;
        }
        ep->next = endpoints;
        endpoints = ep;
    }
    for (int i = 0; i < UDP_MAX_SUBS_PER_ENDPOINT; i++)
    {
        if (ep->subs[i] == NULL)
        {
            ep->subs[i] = sub;
            ep->refs++;
            u->endpoint = ep;
            rc = 0;
            break;
        }
    }
    if (rc < 0)
    {
        TP_SET_ERR(TP_E_CAPACITY, "UDP endpoint %s has %d subscriptions already", key, UDP_MAX_SUBS_PER_ENDPOINT);
    }
done:
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
        for (int i = 0; i < UDP_MAX_SUBS_PER_ENDPOINT; i++)
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
            close(ep->fd);
            tp_free(ep->datagram);
            tp_free(ep);
        }
    }
    pthread_mutex_unlock(&endpoints_lock);
    tp_free(u->queue);
    tp_free(u);
    sub->udp = NULL;
}

/* Count a gap in this session's sequence; remembers up to UDP_MAX_SESSIONS sessions. */
static void udp_track_session(tp_bus_subscription_t *sub, int32_t session_id, uint64_t seq)
{
    struct tp_bus_udp_sub *u = sub->udp;
    for (int i = 0; i < u->session_count; i++)
    {
        udp_session_t *s = &u->sessions[i];
        if (s->session_id == session_id)
        {
            if (seq > s->expected_seq)
            {
                sub->counters.lost_records += seq - s->expected_seq;
            }
            if (seq + 1 > s->expected_seq)
            {
                s->expected_seq = seq + 1;
            }
            return;
        }
    }
    if (u->session_count < UDP_MAX_SESSIONS)
    {
        /* First datagram of a session: we joined here. */
        u->sessions[u->session_count++] = (udp_session_t){ .session_id = session_id, .expected_seq = seq + 1 };
        sub->counters.images_joined++;
        if (sub->on_available != NULL)
        {
            sub->on_available(sub->clientd, sub->stream_id, session_id);
        }
    }
}

static void udp_deliver(tp_bus_subscription_t *sub, const uint8_t *datagram, size_t n,
    tp_bus_fragment_handler_t handler, void *clientd)
{
    udp_header_t h;
    memcpy(&h, datagram, sizeof(h));
    udp_track_session(sub, h.session_id, h.seq);
    tp_bus_header_t header = { .stream_id = h.stream_id, .session_id = h.session_id, .position = (int64_t)h.seq + 1 };
    handler(clientd, datagram + UDP_HEADER_BYTES, n - UDP_HEADER_BYTES, &header);
    sub->counters.messages++;
}

static tp_bus_subscription_t *udp_sub_for(udp_endpoint_t *ep, int32_t stream_id)
{
    for (int i = 0; i < UDP_MAX_SUBS_PER_ENDPOINT; i++)
    {
        if (ep->subs[i] != NULL && ep->subs[i]->stream_id == stream_id)
        {
            return ep->subs[i];
        }
    }
    return NULL;
}

/* Queue a datagram for target (the queue is single-consumer: its owner; producers hold endpoints_lock). */
static void udp_enqueue(tp_bus_subscription_t *target, const uint8_t *datagram, size_t n)
{
    struct tp_bus_udp_sub *tu = target->udp;
    uint32_t tail = tu->queue_tail;
    if (tail - tp_load_acquire_u32(&tu->queue_head) >= UDP_QUEUE_SLOTS || n > target->channel.mtu)
    {
        target->counters.lost_records++;
        return;
    }
    uint32_t slot = tail % UDP_QUEUE_SLOTS;
    memcpy(tu->queue + (size_t)slot * target->channel.mtu, datagram, n);
    tu->queue_lengths[slot] = (uint32_t)n;
    tp_store_release_u32(&tu->queue_tail, tail + 1); /* pairs with the owner's acquire in tp_bus_udp_poll */
}

int tp_bus_udp_poll(tp_bus_subscription_t *sub, tp_bus_fragment_handler_t handler, void *clientd, int limit)
{
    struct tp_bus_udp_sub *u = sub->udp;
    udp_endpoint_t *ep = u->endpoint;
    /* Read the socket under the endpoint lock, routing each datagram to its stream's queue; deliver from our queue
     * without the lock, so handlers may open and close subscriptions. */
    pthread_mutex_lock(&endpoints_lock);
    for (int read = 0; read < limit; read++)
    {
        ssize_t n = recv(ep->fd, ep->datagram, ep->mtu, MSG_DONTWAIT);
        if (n < 0)
        {
            break;
        }
        udp_header_t h;
        if ((size_t)n < UDP_HEADER_BYTES)
        {
            sub->counters.malformed++;
            continue;
        }
        memcpy(&h, ep->datagram, sizeof(h));
        if (h.magic != UDP_MAGIC || h.version != UDP_VERSION || h.length != (size_t)n - UDP_HEADER_BYTES)
        {
            sub->counters.malformed++;
            continue;
        }
        tp_bus_subscription_t *target = udp_sub_for(ep, h.stream_id);
        if (target != NULL)
        {
            udp_enqueue(target, ep->datagram, (size_t)n);
        }
        /* A stream nobody here subscribes to is not for us, and not malformed either. */
    }
    pthread_mutex_unlock(&endpoints_lock);
    int delivered = 0;
    uint32_t tail = tp_load_acquire_u32(&u->queue_tail);
    while (delivered < limit && u->queue_head != tail)
    {
        uint32_t slot = u->queue_head % UDP_QUEUE_SLOTS;
        udp_deliver(sub, u->queue + (size_t)slot * sub->channel.mtu, u->queue_lengths[slot], handler, clientd);
        tp_store_release_u32(&u->queue_head, u->queue_head + 1);
        delivered++;
    }
    return delivered;
}

int tp_bus_udp_park(tp_bus_subscription_t *sub, int64_t timeout_ns)
{
    struct tp_bus_udp_sub *u = sub->udp;
    if (u->queue_head != tp_load_acquire_u32(&u->queue_tail))
    {
        return 1;
    }
    struct pollfd p = { .fd = u->endpoint->fd, .events = POLLIN };
    int ms = (int)((timeout_ns + TP_NS_PER_MS - 1) / TP_NS_PER_MS);
    return poll(&p, 1, ms) > 0 ? 1 : 0;
}
