/*
 * A UDP subscription's image of one publication (session): the three terms rebuilt from DATA frames in any order,
 * the positions that track them, loss detection, status messages and the reassembly of fragmented messages.
 *
 *   consumed_pos <= rebuild_pos <= hwm_pos
 *   consumed: delivered to the handler; rebuild: every frame before it is in place; hwm: the highest position any
 *   frame or heartbeat has shown. A gap is [rebuild_pos, the next frame in place) while rebuild_pos < hwm_pos.
 *
 * Internal to src/bus.
 */
#ifndef TP_BUS_UDP_IMAGE_H
#define TP_BUS_UDP_IMAGE_H

#include "bus/tp_bus_udp.h"
#include "bus/tp_udp_frame.h"
#include "tensorpool/tp_bus.h"

typedef struct tp_udp_image
{
    bool is_active;
    int32_t session_id;
    int32_t stream_id;
    int32_t initial_term_id;
    uint32_t term_length;
    int shift;
    uint8_t *terms;
    size_t terms_bytes;
    int64_t rebuild_pos;
    int64_t hwm_pos;
    int64_t consumed_pos;
    int64_t last_sm_pos;
    int64_t last_sm_ns;
    uint32_t window;
    int64_t last_packet_ns;
    tp_udp_address_t control; /* where status messages and NAKs go */
    bool is_rescan_needed;     /* frames arrived or were consumed since the gap was last measured */
    bool has_gap;
    int64_t gap_pos;
    int64_t gap_length;
    int64_t nak_due_ns;
    uint8_t *assembly;
    uint32_t assembly_length;
    uint32_t assembly_capacity;
    bool is_assembling;
    bool has_eos;
    int64_t eos_pos;
} tp_udp_image_t;

/* How a subscription talks back to its sources. */
typedef struct tp_udp_image_context
{
    int fd;
    int64_t receiver_id;
    bool is_reliable;
    bool is_multicast;
    uint32_t window_request; /* rcv-wnd, 0 for the default */
    tp_udp_sub_counters_t *counters;
    tp_bus_counters_t *bus_counters;
} tp_udp_image_context_t;

/* Create an image from a SETUP frame (validated here). -1 with an error when the SETUP is unacceptable. */
int tp_udp_image_open(tp_udp_image_t *image, const tp_udp_setup_t *setup, const tp_udp_address_t *control,
    const tp_udp_image_context_t *ctx, int64_t now_ns);
void tp_udp_image_close(tp_udp_image_t *image);

/* Place a DATA datagram (already classified as DATA) in the terms. false when it is malformed for this image. */
bool tp_udp_image_insert(tp_udp_image_t *image, const tp_udp_image_context_t *ctx, const uint8_t *datagram,
    size_t length, int64_t now_ns);

/* Deliver up to limit whole messages; returns how many. */
int tp_udp_image_deliver(tp_udp_image_t *image, const tp_udp_image_context_t *ctx, tp_bus_fragment_handler_t handler,
    void *clientd, int limit);

/* Loss detection (NAK or skip), status messages. Returns work done. */
int tp_udp_image_do_work(tp_udp_image_t *image, const tp_udp_image_context_t *ctx, int64_t now_ns);

/* The image has ended (end of stream taken) or its publication went silent. */
bool tp_udp_image_is_done(const tp_udp_image_t *image, int64_t now_ns);

/* Send a status message now (used to answer a SETUP for an image we already have). */
void tp_udp_image_send_status(tp_udp_image_t *image, const tp_udp_image_context_t *ctx, uint8_t flags, int64_t now_ns);

#endif
