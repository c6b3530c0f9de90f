/* The lossy relay; see tp_udp_relay.h. */
#include "cli/tp_udp_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RELAY_MAX_DATAGRAM 65536

struct tp_udp_relay
{
    int fd;
    struct sockaddr_in to;   /* the subscription */
    struct sockaddr_in back; /* the publication, learned from its first datagram */
    bool has_back;
    tp_udp_relay_options_t rates;
    uint32_t random;
    atomic_bool stop;
    atomic_uint_fast64_t forwarded;
    atomic_uint_fast64_t dropped;
    FILE *pcap;
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

/* pcap: a global header (LINKTYPE_RAW: packets start with their IPv4 header), then per packet a record header, a
 * 20-byte IPv4 header and an 8-byte UDP header (checksums 0: not computed) around the datagram. */
static void pcap_begin(FILE *f)
{
    const uint32_t magic = 0xa1b2c3d4;
    const uint16_t version[2] = { 2, 4 };
    const uint32_t zone_sigfigs_snaplen_linktype[4] = { 0, 0, 65535, 101 };
    fwrite(&magic, 4, 1, f);
    fwrite(version, 2, 2, f);
    fwrite(zone_sigfigs_snaplen_linktype, 4, 4, f);
}

static void pcap_record(FILE *f, const uint8_t *d, size_t n, const struct sockaddr_in *from,
    const struct sockaddr_in *to)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint32_t length = (uint32_t)(n + 28);
    uint32_t record[4] = { (uint32_t)ts.tv_sec, (uint32_t)(ts.tv_nsec / 1000), length, length };
    uint8_t ip[20] = { 0x45, 0, (uint8_t)(length >> 8), (uint8_t)length, 0, 0, 0x40, 0, 64, 17, 0, 0 };
    memcpy(ip + 12, &from->sin_addr, 4);
    memcpy(ip + 16, &to->sin_addr, 4);
    uint16_t udp_length = htons((uint16_t)(n + 8));
    uint8_t udp[8];
    memcpy(udp, &from->sin_port, 2);
    memcpy(udp + 2, &to->sin_port, 2);
    memcpy(udp + 4, &udp_length, 2);
    udp[6] = 0;
    udp[7] = 0;
    fwrite(record, 4, 4, f);
    fwrite(ip, 1, sizeof(ip), f);
    fwrite(udp, 1, sizeof(udp), f);
    fwrite(d, 1, n, f);
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
    if (r->pcap != NULL)
    {
        /* As the two ends see it: the relay stands in for the other end. */
        pcap_record(r->pcap, d, n, from, to);
    }
    if (relay_random(r) < r->rates.drop)
    {
        atomic_fetch_add(&r->dropped, 1);
        return;
    }
    if (relay_random(r) < r->rates.corrupt)
    {
        d[relay_random(r) < 0.5 ? 4 : 6] ^= (uint8_t)(0x10u | (r->random & 0x0F));
    }
    if (n > 512 && relay_random(r) < r->rates.flip)
    {
        d[n - 1 - (r->random % 128)] ^= 0x5A;
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

int tp_udp_relay_start(tp_udp_relay_t **out, int listen_port, int to_port, const tp_udp_relay_options_t *options)
{
    FILE *pcap = NULL;
    if (options->pcap_path != NULL)
    {
        pcap = fopen(options->pcap_path, "wb");
        if (pcap == NULL)
        {
            return -1;
        }
        pcap_begin(pcap);
    }
    tp_udp_relay_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
    {
        if (pcap != NULL)
        {
            fclose(pcap);
        }
        return -1;
    }
    r->pcap = pcap;
    r->rates = *options;
    r->random = options->seed;
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
        if (pcap != NULL)
        {
            fclose(pcap);
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
    if (relay->pcap != NULL)
    {
        fclose(relay->pcap);
    }
    free(relay);
}
