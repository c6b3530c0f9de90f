/*
 * Channel URIs in Aeron's syntax: `aeron:ipc[?term-length=N]` and
 * `aeron:udp?endpoint=host:port[|interface=ip|ttl=n|mtu=n|term-length=n|reliable=b|session-id=n|fc=min|max|
 * rcv-wnd=n|linger=duration]`. Parameters are `key=value` separated by '|'; `alias` is accepted and ignored; any
 * other parameter, a missing endpoint, a bad number or a malformed host is an error naming the part.
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
#define TP_UDP_MTU_MIN 64
#define TP_UDP_MTU_MAX 65504
#define TP_UDP_TERM_LENGTH_DEFAULT (16u << 20) /* Aeron's default */
#define TP_UDP_LINGER_DEFAULT_NS (1000LL * 1000 * 1000)

typedef enum tp_channel_kind
{
    TP_CHANNEL_IPC = 1,
    TP_CHANNEL_UDP = 2,
} tp_channel_kind_t;

typedef struct tp_channel
{
    tp_channel_kind_t kind;
    uint64_t term_length;              /* IPC: ring capacity; UDP: term length (bytes, a power of two) */
    char host[TP_CHANNEL_HOST_MAX];    /* UDP endpoint host */
    uint16_t port;                     /* UDP endpoint port */
    char interface[TP_CHANNEL_HOST_MAX]; /* UDP: local interface address (multicast), "" if none */
    int ttl;                           /* UDP multicast TTL, -1 if not set */
    uint32_t mtu;                      /* UDP: largest datagram, a multiple of 32 */
    bool is_reliable;                  /* UDP: receivers NAK gaps (true) or skip and count them (false) */
    bool has_session_id;               /* UDP: session-id given */
    int32_t session_id;
    bool is_fc_min;                    /* UDP multicast: flow control follows the slowest receiver (fc=min) */
    uint32_t receiver_window;          /* UDP: rcv-wnd, 0 for the default (128 KiB, at most term-length / 2) */
    int64_t linger_ns;                 /* UDP: how long close waits for receivers to take the last data */
} tp_channel_t;

/* Parse a channel URI (NUL-terminated). -1 (TP_E_INVALID) with a message naming the bad part. */
int tp_channel_parse(tp_channel_t *out, const char *uri);

/* Parse a duration in Aeron's form: digits with an optional ns/us/ms/s suffix (bare digits are nanoseconds). */
int tp_channel_parse_duration(const char *text, size_t length, int64_t *out_ns);

/* Parse a size with an optional k/m/g suffix (binary). -1 if malformed. */
int tp_channel_parse_size(const char *text, size_t length, uint64_t *out);

#endif
