/*
 * The bus over UDP speaks Aeron's transport protocol (tp_udp_frame.h). There is no media driver: the calls a
 * process makes service its own publications and subscriptions.
 *
 *   publication:  tp_bus_offer / tp_bus_commit append to the publication's terms and send what the receivers'
 *                 window allows at once; tp_bus_publication_do_work (and every offer) reads status messages and
 *                 NAKs, retransmits, sends SETUP until a receiver answers, and heartbeats when idle.
 *   subscription: tp_bus_poll reads datagrams, rebuilds each image's terms, delivers whole messages, and sends
 *                 status messages and NAKs.
 *
 * A process that stops calling them is, to its peers, a publication that went quiet (images time out after
 * TP_UDP_IMAGE_LIVENESS_NS) or a receiver that stopped reporting (the sender's window closes; after
 * TP_UDP_CONNECTION_TIMEOUT_NS it is no longer a receiver).
 *
 * Internal to src/bus.
 */
#ifndef TP_BUS_UDP_H
#define TP_BUS_UDP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bus/tp_channel.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"

/* Aeron's default timings. */
#define TP_UDP_SETUP_INTERVAL_NS (100 * TP_NS_PER_MS)
#define TP_UDP_HEARTBEAT_INTERVAL_NS (100 * TP_NS_PER_MS)
#define TP_UDP_SM_INTERVAL_NS (200 * TP_NS_PER_MS)
#define TP_UDP_CONNECTION_TIMEOUT_NS (5000 * TP_NS_PER_MS)
#define TP_UDP_IMAGE_LIVENESS_NS (10000 * TP_NS_PER_MS)
#define TP_UDP_RECEIVER_WINDOW_DEFAULT (1u << 20) /* Aeron: 128 KiB; see docs/ARCHITECTURE.md */
#define TP_UDP_NAK_UNICAST_DELAY_NS (100 * TP_NS_PER_US)
#define TP_UDP_NAK_RETRY_DELAY_NS (10 * TP_NS_PER_MS)
#define TP_UDP_NAK_MULTICAST_MAX_BACKOFF_NS (10 * TP_NS_PER_MS)
#define TP_UDP_RETRANSMIT_LINGER_NS (10 * TP_NS_PER_MS)
/* Offers less than this apart are a burst, coalesced into mtu-sized datagrams (see send_after_offer). */
#define TP_UDP_COALESCE_NS (2 * TP_NS_PER_US)
/* A burst is sent once it fills this many datagrams (one sendmmsg). */
#define TP_UDP_BURST_DATAGRAMS 16
/* How often an offer looks for status messages and NAKs when its window is open. */
#define TP_UDP_CONTROL_POLL_NS (50 * TP_NS_PER_US)

#define TP_UDP_MAX_RECEIVERS 64
#define TP_UDP_MAX_RETRANSMITS 16
#define TP_UDP_MAX_IMAGES 64
#define TP_UDP_SEND_BATCH 16
#define TP_UDP_RECV_BATCH 32
#define TP_UDP_RECV_BYTES 65536

typedef struct tp_udp_address
{
    struct sockaddr_storage addr;
    socklen_t length;
} tp_udp_address_t;

typedef struct tp_udp_pub_counters
{
    uint64_t bytes_sent;
    uint64_t datagrams_sent;
    uint64_t setups_sent;
    uint64_t heartbeats_sent;
    uint64_t sms_received;
    uint64_t naks_received;
    uint64_t retransmits_sent;
    uint64_t retransmitted_bytes;
    uint64_t control_malformed; /* control frames that failed validation (hostile or corrupt) */
    uint64_t back_pressured;
} tp_udp_pub_counters_t;

typedef struct tp_udp_sub_counters
{
    uint64_t sms_sent;
    uint64_t naks_sent;
    uint64_t setups_elicited;
    uint64_t heartbeats_received;
    uint64_t duplicates;      /* frames already in place (retransmits that crossed, duplicated datagrams) */
    uint64_t overruns;        /* frames past the window this subscription granted */
    uint64_t gaps_skipped;    /* reliable=false: gaps filled with padding */
    uint64_t bytes_skipped;
    uint64_t fragments_dropped; /* fragments of a message whose start was skipped */
} tp_udp_sub_counters_t;

typedef struct tp_udp_receiver
{
    int64_t receiver_id;
    int64_t consumed;   /* the consumption position it reported */
    int64_t limit;      /* consumed + window */
    int64_t last_sm_ns;
} tp_udp_receiver_t;

typedef struct tp_udp_retransmit
{
    int64_t position;
    int64_t expiry_ns; /* a NAK for the same position before this is already answered */
} tp_udp_retransmit_t;

/* Resolve a channel's endpoint. */
int tp_udp_resolve(const tp_channel_t *c, tp_udp_address_t *out);
bool tp_udp_is_multicast(const tp_udp_address_t *a);
/* The multicast control address: the data group's address + 1, same port (Aeron's convention; the data address
 * must be odd). */
int tp_udp_control_address(const tp_udp_address_t *data, tp_udp_address_t *out);
/* A non-blocking socket bound to bind_to (may be NULL: ephemeral), set up for multicast sends on c's interface and
 * ttl when multicast_to is a group it sends to, and joined to join (a group) when not NULL. */
int tp_udp_socket_open(const tp_channel_t *c, const tp_udp_address_t *bind_to, const tp_udp_address_t *join,
    bool sends_multicast, int *fd_out);
/* One datagram; false when the kernel would block (nothing sent). */
bool tp_udp_send(int fd, const void *datagram, size_t length, const tp_udp_address_t *to);

/* The protocol's counters, for tests and tools. */
void tp_bus_udp_publication_counters(const tp_bus_publication_t *pub, tp_udp_pub_counters_t *out);
void tp_bus_udp_subscription_counters(const tp_bus_subscription_t *sub, tp_udp_sub_counters_t *out);

#endif
