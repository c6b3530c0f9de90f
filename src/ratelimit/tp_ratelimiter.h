/*
 * One rate limiter mapping (rate limiter spec sections 3-5 and 7): consumes the source stream, accepts at most
 * max_rate_hz frames per second (0: all), and re-materializes each accepted frame into its own destination stream,
 * attached through the driver as that stream's only producer: payload and slot header copied with the source's
 * seq, meta_version, timestamp and trace id, pool and slot the destination's, committed through the seqlock, then a
 * destination FrameDescriptor.
 *
 * While the rate slot is closed, the newest frame seen is held (not copied); when the slot opens it is copied if
 * the source has not overwritten it meanwhile (the seqlock says), so what goes out is the most recent frame
 * available, never a torn or lapped one. A source epoch change drops what is held and restarts the rate timer.
 * Frames are dropped, never waited for, when no destination pool fits, the destination has no lease, or the copy
 * was lapped. A restarted source numbers from 0 again: a source seq behind the destination's next one makes the
 * mapping attach again for a new destination epoch, so destination consumers never see a seq go backwards.
 *
 * do_work(now_ns) is the whole duty cycle; it allocates nothing once attached.
 */
#ifndef TP_RATELIMITER_H
#define TP_RATELIMITER_H

#include <stdbool.h>
#include <stdint.h>

#include "ratelimit/tp_rate_policy.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_metadata.h"

typedef struct tp_ratelimit_counters
{
    uint64_t frames_seen;     /* source frames delivered to the mapping */
    uint64_t published;       /* destination frames committed and described */
    uint64_t superseded;      /* held while the slot was closed, then replaced by a newer one */
    uint64_t dropped_no_pool; /* the payload fits no destination pool */
    uint64_t dropped_lapped;  /* the source overwrote the frame before it was copied */
    uint64_t dropped_detached; /* the destination held no lease */
    uint64_t source_epochs;   /* source epoch changes seen (rate timer restarts) */
    uint64_t dest_reattaches; /* destination attached again for a new epoch (a source seq went back) */
    uint64_t metadata_forwarded; /* source metadata versions republished for the destination */
} tp_ratelimit_counters_t;

typedef struct tp_ratelimiter
{
    tp_client_t *client;
    uint32_t source_stream_id;
    uint32_t dest_stream_id;
    tp_consumer_t *source;
    tp_producer_t *dest;
    tp_rate_policy_t policy;
    uint32_t configured_rate_hz; /* the mapping's cap, used unless exactly one consumer asked for its own */
    uint64_t source_epoch;
    int64_t now_ns;
    bool has_pending;
    tp_frame_t pending;
    uint64_t pending_remaps; /* the source's remap count when it was held: its mapping is still the same */
    tp_metadata_cache_t *meta_cache;     /* where source metadata is read (the caller's; NULL: no forwarding) */
    tp_metadata_publisher_t *meta_own;   /* for a metadata_stream_id other than the destination's */
    uint32_t metadata_stream_id;
    bool has_forwarded;
    uint32_t forwarded_version;
    char forwarded_name[256];
    int64_t next_meta_check_ns;
    tp_ratelimit_counters_t counters;
} tp_ratelimiter_t;

/* Start attaching to the source (as a consumer) and the destination (as its producer); do_work completes it. */
int tp_ratelimiter_open(tp_ratelimiter_t *r, tp_client_t *client, uint32_t source_stream_id, uint32_t dest_stream_id,
    uint32_t max_rate_hz);
/* The same with the destination's producer attached already (its lease held; the mapping owns it from now on). */
int tp_ratelimiter_open_with(tp_ratelimiter_t *r, tp_client_t *client, uint32_t source_stream_id, tp_producer_t *dest,
    uint32_t max_rate_hz);
int tp_ratelimiter_close(tp_ratelimiter_t *r);
/* One duty cycle at now_ns: source descriptors, the held frame, the destination's housekeeping. */
int tp_ratelimiter_do_work(tp_ratelimiter_t *r, int64_t now_ns);
/* Forward the source's DataSourceAnnounce and DataSourceMeta (read from cache, which the caller polls) as the
 * destination's: meta_version kept, stream_id the destination's, or metadata_stream_id when it differs (rate
 * limiter spec 6). */
int tp_ratelimiter_forward_metadata(tp_ratelimiter_t *r, tp_metadata_cache_t *cache, uint32_t metadata_stream_id);
/* A new configured cap; the timer restarts. Per-consumer operation (rate limiter spec 4): while the destination
 * has exactly one consumer and it asked for RATE_LIMITED mode, its ConsumerHello.max_rate_hz is the cap (0: none)
 * instead; a consumer in STREAM mode asked for nothing, so the configured cap holds. With several consumers the
 * configured cap holds for the stream and never a combination of theirs (each one's own cap still thins the
 * descriptors of its per-consumer stream, wire spec 11). */
void tp_ratelimiter_set_rate(tp_ratelimiter_t *r, uint32_t max_rate_hz);
bool tp_ratelimiter_is_ready(const tp_ratelimiter_t *r);

#endif
