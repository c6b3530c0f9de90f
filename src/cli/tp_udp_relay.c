/* The lossy relay; see tp_udp_relay.h. */
#include "cli/tp_udp_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_MAX_DATAGRAM 65536

struct tp_udp_relay
{
    int fd;
    struct sockaddr_in to;   /* the subscription */
    struct sockaddr_in back; /* the publication, learned from its first datagram */
    bool has_back;
    tp_udp_relay_rates_t rates;
    uint32_t random;
    atomic_bool stop;
    atomic_uint_fast64_t forwarded;
    atomic_uint_fast64_t dropped;
    uint8_t held[RELAY_MAX_DATAGRAM];
    size_t held_length;
    struct sockaddr_in held_to;
    pthread_t thread;
};

static double relay_random(tp_udp_relay_t *r)
{
    r->random = r->random * 1103515245u + 12345u;
    return (double)((r->random >> 8) & 0xFFFFFF) / (double)0x1000000;
}

static void relay_send(tp_udp_relay_t *r, const uint8_t *d, size_t n, const struct sockaddr_in *to)
{
    sendto(r->fd, d, n, 0, (const struct sockaddr *)to, sizeof(*to));
}

static void relay_flush_held(tp_udp_relay_t *r)
{
    if (r->held_length > 0)
    {
        relay_send(r, r->held, r->held_length, &r->held_to);
        r->held_length = 0;
    }
}

static void relay_one(tp_udp_relay_t *r, uint8_t *d, size_t n, const struct sockaddr_in *from)
{
    const struct sockaddr_in *to;
    if (from->sin_port == r->to.sin_port)
    {
        if (!r->has_back)
        {
            return;
        }
        to = &r->back;
    }
    else
    {
        r->back = *from;
        r->has_back = true;
        to = &r->to;
    }
    atomic_fetch_add(&r->forwarded, 1);
    if (relay_random(r) < r->rates.drop)
    {
        atomic_fetch_add(&r->dropped, 1);
        return;
    }
    if (relay_random(r) < r->rates.corrupt)
    {
        d[relay_random(r) < 0.5 ? 4 : 6] ^= (uint8_t)(0x10u | (r->random & 0x0F));
    }
    if (r->held_length == 0 && relay_random(r) < r->rates.reorder)
    {
        memcpy(r->held, d, n);
        r->held_length = n;
        r->held_to = *to;
        return;
    }
    relay_send(r, d, n, to);
    if (relay_random(r) < r->rates.duplicate)
    {
        relay_send(r, d, n, to);
    }
    relay_flush_held(r);
}

static void *relay_main(void *arg)
{
    tp_udp_relay_t *r = arg;
    static _Thread_local uint8_t buffer[RELAY_MAX_DATAGRAM];
    while (!atomic_load(&r->stop))
    {
        struct pollfd p = { .fd = r->fd, .events = POLLIN };
        if (poll(&p, 1, 1) <= 0)
        {
            relay_flush_held(r); /* nothing came after it: send it late rather than never */
            continue;
        }
        struct sockaddr_in from;
        socklen_t from_length = sizeof(from);
        ssize_t n = recvfrom(r->fd, buffer, sizeof(buffer), MSG_DONTWAIT, (struct sockaddr *)&from, &from_length);
        if (n > 0)
        {
            relay_one(r, buffer, (size_t)n, &from);
        }
    }
    return NULL;
}

int tp_udp_relay_start(tp_udp_relay_t **out, int listen_port, int to_port, const tp_udp_relay_rates_t *rates)
{
    tp_udp_relay_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
    {
        return -1;
    }
    r->rates = *rates;
    r->random = rates->seed;
    r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in at = { .sin_family = AF_INET, .sin_port = htons((uint16_t)listen_port) };
    inet_pton(AF_INET, "127.0.0.1", &at.sin_addr);
    r->to = at;
    r->to.sin_port = htons((uint16_t)to_port);
    int buffer_bytes = 4 << 20;
    setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof(buffer_bytes));
    if (r->fd < 0 || bind(r->fd, (struct sockaddr *)&at, sizeof(at)) < 0 ||
        pthread_create(&r->thread, NULL, relay_main, r) != 0)
    {
        if (r->fd >= 0)
        {
            close(r->fd);
        }
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

void tp_udp_relay_counts(const tp_udp_relay_t *relay, uint64_t *forwarded, uint64_t *dropped)
{
    *forwarded = atomic_load(&relay->forwarded);
    *dropped = atomic_load(&relay->dropped);
}

void tp_udp_relay_stop(tp_udp_relay_t *relay)
{
    atomic_store(&relay->stop, true);
    pthread_join(relay->thread, NULL);
    close(relay->fd);
    free(relay);
}
