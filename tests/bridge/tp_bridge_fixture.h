/* What the bridge tests share: a bridge configuration from text, test frames whose content follows from their seq
 * (1 B to 200 KiB), and a consumer tally that checks every frame against it. */
#ifndef TP_BRIDGE_FIXTURE_H
#define TP_BRIDGE_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "bridge/tp_bridge_config.h"
#include "tensorpool/tp_client.h"

#define SRC_STRIDE (256u << 10)
#define SMALL_STRIDE 4096u
#define LARGE_STRIDE (128u << 10)

/* One end's configuration: instance `direction`, every channel on endpoint (payload, control and metadata stream
 * ids 50100-50102), CRC32C on, then options (bridge keys) and mappings (TOML text). */
void bridge_fixture_config(tp_bridge_config_t *c, const char *endpoint, const char *direction, const char *options,
    const char *mappings);

uint32_t bridge_fixture_size_of(uint64_t seq);
/* Offer the source's next frame (copy path, or claim + describe + progress + commit for every 8th): payload from
 * its seq, meta_version 4, trace id 0x5000 + seq, timestamp 1000 + seq. true when it went. */
bool bridge_fixture_offer(tp_producer_t *source);

typedef struct seen
{
    int frames;
    int bad;
    int wrong_pool; /* B's pools: 5 up to 4 KiB, 6 above */
    uint64_t last_seq;
    uint64_t last_epoch;
    int epochs;
} seen_t;

/* A tp_frame_handler_t with a seen_t: checks everything the source gave the frame, and its seq order. */
void bridge_fixture_on_frame(void *clientd, const tp_frame_t *f);

#endif
