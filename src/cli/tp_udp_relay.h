/*
 * A lossy UDP relay, for the transport tests and `tp bench bus --udp`: listens on a loopback port, forwards what a
 * publication sends to the subscription's port and what the subscription answers back to the publication,
 * dropping, duplicating and reordering datagrams (both directions) at given rates, deterministically from a seed,
 * and optionally recording them as a pcap file. Runs on its own thread.
 */
#ifndef TP_CLI_UDP_RELAY_H
#define TP_CLI_UDP_RELAY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tp_udp_relay_options
{
    double drop;      /* probability a datagram is lost */
    double duplicate; /* probability it is sent twice */
    double reorder;   /* probability it is held back and sent after the next one */
    double corrupt;   /* probability its version or type byte is damaged: the corruption a receiver can notice (the
                       * protocol has no checksum of its own; Aeron and we rely on UDP's) */
    double flip;      /* probability one byte of a large datagram's tail (past 256 bytes: the payload of an Aeron data
                       * frame, which UDP's checksum would have caught on a wire) is flipped: damage only an
                       * end-to-end check (the bridge's CRC32C) can notice */
    uint32_t seed;
    const char *pcap_path; /* when set, every datagram received (before loss) is written there as a pcap capture
                            * (raw IPv4), for Wireshark's Aeron dissector */
} tp_udp_relay_options_t;

typedef struct tp_udp_relay tp_udp_relay_t;

/* Relay from 127.0.0.1:listen_port to 127.0.0.1:to_port. */
int tp_udp_relay_start(tp_udp_relay_t **out, int listen_port, int to_port, const tp_udp_relay_options_t *options);
/* Datagrams seen and dropped so far. */
void tp_udp_relay_counts(const tp_udp_relay_t *relay, uint64_t *forwarded, uint64_t *dropped);
void tp_udp_relay_stop(tp_udp_relay_t *relay);

#endif
