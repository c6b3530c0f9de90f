/*
 * Channel URIs in Aeron's syntax: `aeron:ipc[?term-length=N]` and
 * `aeron:udp?endpoint=host:port[|interface=ip|ttl=n|mtu=n]`. Parameters are `key=value` separated by '|';
 * `alias` is accepted and ignored; any other parameter, a missing endpoint, a bad number or a malformed host is an
 * error naming the part.
 */
#ifndef TP_BUS_CHANNEL_H
#define TP_BUS_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_CHANNEL_HOST_MAX 256
#define TP_IPC_TERM_LENGTH_DEFAULT (4u << 20)
#define TP_IPC_TERM_LENGTH_MIN (64u << 10)
#define TP_IPC_TERM_LENGTH_MAX (1u << 30)
#define TP_UDP_MTU_DEFAULT 1408
#define TP_UDP_MTU_MAX 65504

typedef enum tp_channel_kind
{
    TP_CHANNEL_IPC = 1,
    TP_CHANNEL_UDP = 2,
} tp_channel_kind_t;

typedef struct tp_channel
{
    tp_channel_kind_t kind;
    uint64_t term_length;              /* IPC: ring capacity in bytes, a power of two */
    char host[TP_CHANNEL_HOST_MAX];    /* UDP endpoint host */
    uint16_t port;                     /* UDP endpoint port */
    char interface[TP_CHANNEL_HOST_MAX]; /* UDP: local interface address (multicast), "" if none */
    int ttl;                           /* UDP multicast TTL, -1 if not set */
    uint32_t mtu;                      /* UDP: largest datagram */
} tp_channel_t;

/* Parse a channel URI (NUL-terminated). -1 (TP_E_INVALID) with a message naming the bad part. */
int tp_channel_parse(tp_channel_t *out, const char *uri);

/* Parse a size with an optional k/m/g suffix (binary). -1 if malformed. */
int tp_channel_parse_size(const char *text, size_t length, uint64_t *out);

#endif
