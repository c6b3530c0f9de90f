/*
 * What the client tests that run producers and consumers on one embedded driver share: the fixture (a driver with
 * stream STREAM: 8 slots, pools of 4 KiB and 64 KiB) and one client of it, payloads that carry their own CRC32C,
 * and a frame handler that records what it saw.
 */
#ifndef TP_CLIENT_FRAMES_H
#define TP_CLIENT_FRAMES_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tp_client_fixture.h"

#define STREAM 10
#define TIMEOUT_NS (5 * TP_NS_PER_S)

extern client_fixture_t F;
extern tp_client_t *client;

typedef struct seen
{
    uint64_t frames;
    uint64_t bad;
    uint64_t last_seq;
    uint64_t epoch;
    uint16_t last_pool;
    uint32_t last_meta;
    uint64_t last_trace;
    tp_frame_t last;
    tp_producer_t *lapper; /* when set, the handler overwrites every slot before returning */
    bool copy_first;       /* ... after copying the frame out, instead of before */
    uint8_t *scratch;
    bool was_intact;
    int copy_rc;
    uint8_t copy[65536];
} seen_t;

int setup(void **state);
int teardown(void **state);
/* A payload whose bytes depend on seq and whose last 4 bytes are its CRC32C; payload_ok checks it. */
void make_payload(uint8_t *buf, uint32_t length, uint64_t seq);
bool payload_ok(const uint8_t *buf, uint32_t length);
/* A 1-D UINT8 tensor of length bytes (one static instance: use before the next call). */
const tp_tensor_desc_t *tensor_of(uint32_t length);
/* Records the frame in the seen_t at clientd (and laps or copies out as it says). */
void on_frame(void *clientd, const tp_frame_t *f);
/* A producer, then a consumer, of STREAM (the consumer maps the producer's epoch). */
void attach_both(tp_producer_t **p, tp_consumer_t **c);
/* A FrameDescriptor from somebody else, on the consumer's descriptor stream. */
void inject_descriptor(tp_bus_publication_t *pub, uint32_t stream, uint64_t epoch, uint64_t seq);

#endif
