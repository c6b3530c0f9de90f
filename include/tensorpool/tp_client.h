/*
 * Producers and consumers: the API applications write against. They attach through the driver (blocking, or
 * without blocking and then polled), publish on the copy or the claim path, poll frame views, and follow the
 * stream by themselves: a new epoch, a revoked lease, a driver that shut down, restarted or died.
 *
 *   tp_client_context_init(&ctx);                      defaults, then the environment (TP_CLIENT_* keys below)
 *   tp_client_connect(&client, ctx);                   the bus and the driver's control stream
 *   tp_producer_attach(&producer, client, 10000, 5 s); a producer lease, the stream's regions mapped
 *   tp_producer_offer_frame(producer, data, n, &tensor, meta_version, trace_id);
 *   tp_consumer_attach(&consumer, client, 10000, 5 s);
 *   tp_consumer_poll(consumer, on_frame, state, 16);   callbacks get a tp_frame_t valid during the call
 *   ... close in any order.
 *
 * A client and the producers and consumers opened from it are used by one thread at a time (use one client per
 * thread). Call tp_producer_do_work / tp_consumer_poll regularly (at least every keepalive interval): they send
 * the keepalives, read the driver's notices and announces, and attach again when needed.
 */
#ifndef TENSORPOOL_TP_CLIENT_H
#define TENSORPOOL_TP_CLIENT_H

#include "tensorpool/tp_agent.h"
#include "tensorpool/tp_common.h"
#include "tensorpool/tp_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_client_context tp_client_context_t;
typedef struct tp_client tp_client_t;
typedef struct tp_producer tp_producer_t;
typedef struct tp_consumer tp_consumer_t;

/* Defaults, then environment overrides (TP_ and the key upper-cased, '.' -> '_': client.bus_dir <- TP_CLIENT_BUS_DIR;
 * the older name without TP_ still works, with a warning in the log):
 *   client.bus_dir               ""  ($TP_BUS_DIR, else /dev/shm/tensorpool-$USER/bus)
 *   client.control_channel       "aeron:ipc?term-length=4m"   client.control_stream_id     1000
 *   client.announce_channel      ""  (the control channel)     client.announce_stream_id    0 (the control stream)
 *   client.announce_period_ms    1000 (the driver's: announces older than 3x this are ignored, and a stream
 *                                whose superblock activity is older than 3x this is taken for dead)
 *   client.descriptor_channel    "aeron:ipc?term-length=4m"   client.descriptor_stream_id  1100
 *   client.metadata_channel, client.metadata_stream_id (1300), client.metadata_period_ms (1000)
 *   client.qos_channel, client.qos_stream_id (1200), client.qos_period_ms (1000)
 *   client.allowed_base_dirs     "/dev/shm"  (comma-separated; regions must lie inside one of them)
 *   client.client_id             0 (random, non-zero; each lease takes the next id)
 *   client.keepalive_interval_ms 1000
 *   client.mlock_shm             false (true: mlock every region this client maps; a failed mlock fails the attach)
 *   client.discovery_channel, client.discovery_stream_id (7000), client.discovery_response_channel,
 *   client.discovery_response_stream_id (7004) */
TP_API int tp_client_context_init(tp_client_context_t **out);
/* Set one key from text, as the environment would. */
TP_API int tp_client_context_set(tp_client_context_t *ctx, const char *key, const char *value);
TP_API int tp_client_context_close(tp_client_context_t *ctx);

/* The clock of the client's time-dependent logic (keepalives, attach retries and backoff, announce freshness,
 * liveness checks, progress throttling, QoS and metadata periods, local rate limiting, frame timestamps):
 * NULL restores CLOCK_MONOTONIC, the default. For tests that advance time by hand; the driver it talks to needs
 * the same clock (tp_driver_context_set_clock). Timeouts of blocking calls stay real time. clientd outlives the
 * client. */
TP_API int tp_client_context_set_clock(tp_client_context_t *ctx, tp_clock_fn_t clock, void *clientd);

TP_API int tp_client_connect(tp_client_t **out, const tp_client_context_t *ctx);
/* Close the client. Its producers and consumers may be closed before or after (any order): while some are open,
 * the client stays usable by them and is freed when the last one is closed. NULL is fine. */
TP_API int tp_client_close(tp_client_t *client);

/* ---- producers ---- */

/* Producers and consumers are made one way, tp_producer_open / tp_consumer_open (out, client, stream, options,
 * timeout); attach and attach_async are shorthands for it with the default options.
 *
 * Attach as the stream's producer (waits up to timeout_ns for the driver) and map its regions. Fails with the
 * driver's reason (e.g. another producer holds the stream), or a timeout when no driver answered. The same as
 * tp_producer_open(out, client, stream_id, NULL, timeout_ns), a negative timeout_ns counting as 0. */
TP_API int tp_producer_attach(tp_producer_t **out, tp_client_t *client, uint32_t stream_id, int64_t timeout_ns);
/* The same without waiting: returns a producer at once, which attaches in tp_producer_do_work (the request is
 * resent until a driver answers, so the driver may start later; refusals are retried with backoff).
 * tp_producer_is_attached says when it is ready; tp_producer_last_error why it is not yet. The same as
 * tp_producer_open(out, client, stream_id, NULL, -1). */
TP_API int tp_producer_attach_async(tp_producer_t **out, tp_client_t *client, uint32_t stream_id);

/* How a producer attaches. */
typedef struct tp_producer_options
{
    /* false (default): the stream must be in the driver's configuration (REQUIRE_EXISTING). true: the driver
     * creates it if it is not (EXISTING_OR_CREATE), when its policies.allow_dynamic_streams is on and stream_id
     * lies in its driver.stream_id_range; a dynamic stream uses the driver's default profile. */
    bool create_stream;
    /* false (default): each FrameDescriptor carries its publish time (timestamp_ns), which consumers use for
     * latency figures and rate gating. true: timestamp_ns is left null (wire spec 10.2.1), for deployments that need
     * neither; consumers then gate on the slot's capture time. */
    bool omit_publish_time;
} tp_producer_options_t;

TP_API void tp_producer_options_init(tp_producer_options_t *options);
/* Attach as the producer of stream_id (non-zero) with options (NULL: the defaults); timeout_ns < 0 returns at
 * once and attaches in tp_producer_do_work, like tp_producer_attach_async. */
TP_API int tp_producer_open(tp_producer_t **out, tp_client_t *client, uint32_t stream_id,
    const tp_producer_options_t *options, int64_t timeout_ns);

/* Returned by the offer and claim calls while the producer holds no lease (still attaching, or attaching again
 * after a driver restart or a revocation): nothing was written and no error text was formatted. Not an error:
 * keep calling tp_producer_do_work and offer again (tp_producer_last_error says why it is not attached). */
#define TP_PRODUCER_NOT_ATTACHED (-2)

/* Copy path: write payload into the smallest pool that fits, fill the slot header (tensor, meta_version; 0 means
 * the producer's current metadata version, see tp_metadata.h), commit the slot and publish FrameDescriptor.
 * Returns the frame's sequence (>= 0); TP_PRODUCER_NOT_ATTACHED while there is no lease; or -1 with the reason:
 * the payload fits no pool, the tensor is invalid, or the descriptor could not be published (back pressure).
 * Hot path: no allocation, lock or system call. */
TP_API int64_t tp_producer_offer_frame(tp_producer_t *producer, const void *payload, uint32_t length,
    const tp_tensor_desc_t *tensor, uint32_t meta_version, uint64_t trace_id);
/* The same with the frame's capture (source) time, CLOCK_MONOTONIC ns, for the slot header (0: the commit time).
 * Slot timestamps never go back (wire spec 15.7): one older than the previous frame's is refused (TP_E_INVALID,
 * nothing published). The descriptor always carries the publish time, taken after the commit. */
TP_API int64_t tp_producer_offer_frame_at(tp_producer_t *producer, const void *payload, uint32_t length,
    const tp_tensor_desc_t *tensor, uint32_t meta_version, uint64_t trace_id, uint64_t timestamp_ns);

/* Zero-copy path (a camera or a device writing by DMA): claim the next slot in a pool, fill claim.buffer (up to
 * claim.capacity bytes), then commit with the length and tensor, or abort. One claim at a time. The slot reads
 * as "being written" from the claim on, so no consumer sees a half-filled frame. Hot path. */
typedef struct tp_claim
{
    uint8_t *buffer;   /* 64-byte aligned (regions are page aligned, a slot starts 64 bytes in, strides are
                        * power-of-two multiples of 64): any element type may be stored through it */
    uint32_t capacity; /* the pool's stride */
    uint16_t pool_id;
    uint64_t seq;
    uint64_t timestamp_ns; /* capture time for the slot header (CLOCK_MONOTONIC); set it before the commit, or
                            * leave 0 for the commit time. Older than the previous frame's: the commit is refused
                            * and the slot released (wire spec 15.7) */
    uint32_t generation_; /* internal */
} tp_claim_t;

/* 0, TP_PRODUCER_NOT_ATTACHED (no lease now), or -1 with the reason. */
TP_API int tp_producer_try_claim(tp_producer_t *producer, uint16_t pool_id, tp_claim_t *claim);
/* The smallest pool whose stride holds length bytes. */
TP_API int tp_producer_try_claim_by_size(tp_producer_t *producer, uint32_t length, tp_claim_t *claim);
/* Publish the claimed slot: header, commit, FrameDescriptor. Returns its sequence, or -1 (the claim is then
 * released; if the lease was lost meanwhile the frame is dropped). */
TP_API int64_t tp_producer_commit(tp_producer_t *producer, tp_claim_t *claim, uint32_t length,
    const tp_tensor_desc_t *tensor, uint32_t meta_version, uint64_t trace_id);
TP_API int tp_producer_abort(tp_producer_t *producer, tp_claim_t *claim);

/* Frame progress (wire spec 10.2.2), for frames that fill slowly (a camera reading out rows): describe the claimed
 * slot first (its final length and tensor go into the slot header while the slot still reads as being written),
 * then report the bytes filled so far. The first report sends STARTED, later ones PROGRESS, throttled to the most
 * aggressive hints of the consumers that follow progress but never more often than every 250 us or 64 KiB (the
 * defaults when no consumer gives hints), and each stream's reports capped at 2 kHz with bursts of 4. A report held
 * back is not lost: tp_producer_do_work sends the latest state once its interval elapsed. Commit sends COMPLETE
 * (if STARTED went out) before the FrameDescriptor, which stays the only "frame available" signal. Nothing is sent
 * when no consumer follows progress. bytes_filled must not exceed the length or go backwards. Returns 1 when a
 * report went out, 0 when held back or unwatched, -1 on a misuse. */
TP_API int tp_producer_describe(tp_producer_t *producer, tp_claim_t *claim, uint32_t length,
    const tp_tensor_desc_t *tensor, uint32_t meta_version);
TP_API int tp_producer_progress(tp_producer_t *producer, tp_claim_t *claim, uint64_t bytes_filled);

/* Housekeeping: the driver's notices, lease keepalives, and attaching again (with backoff, each attempt waiting
 * at most 250 ms) after the lease was revoked or the driver shut down. Returns the work done. */
TP_API int tp_producer_do_work(tp_producer_t *producer);

TP_API uint64_t tp_producer_epoch(const tp_producer_t *producer);
TP_API uint32_t tp_producer_stream_id(const tp_producer_t *producer);
/* How many per-consumer descriptor streams the producer serves now. */
TP_API uint32_t tp_producer_consumer_streams(const tp_producer_t *producer);
/* What a consumer asked for in its latest ConsumerHello. */
typedef struct tp_consumer_request
{
    uint32_t consumer_id;
    bool is_rate_limited; /* RATE_LIMITED mode (its own, or one a ConsumerConfig gave it) */
    uint32_t max_rate_hz; /* 0: no cap */
} tp_consumer_request_t;

/* How many consumers have said hello lately (within four hello periods); the first capacity of them in out. */
TP_API uint32_t tp_producer_consumer_requests(const tp_producer_t *producer, tp_consumer_request_t *out,
    uint32_t capacity);
/* The sequence the next offer or claim gets. */
TP_API uint64_t tp_producer_next_seq(const tp_producer_t *producer);
/* Number the next frame seq (at least tp_producer_next_seq; the ones skipped are gaps downstream, as dropped frames
 * are): for stages that republish another stream's frames under their source sequence (rate limiter, bridge
 * receiver). -1 when seq is behind, or a claim is open. */
TP_API int tp_producer_skip_to(tp_producer_t *producer, uint64_t seq);
/* The same for a relay stage whose source may start over: when seq is behind (a restarted source numbers from 0
 * again), *producer is closed and replaced by a new one attaching to the same stream, for a new epoch, so that no
 * consumer downstream sees a seq go back under one epoch. 0: numbered; 1: replaced (drop this frame, the new
 * lease is not there yet); -1: an error (the old producer is kept). */
TP_API int tp_producer_follow_seq(tp_producer_t **producer, tp_client_t *client, uint64_t seq);
/* The stream's payload pools as the driver granted them: up to capacity ids and strides (bytes per slot).
 * Returns how many pools there are (0 while detached). */
TP_API uint32_t tp_producer_pools(const tp_producer_t *producer, uint16_t *pool_ids, uint32_t *strides,
    uint32_t capacity);
/* The driver's lease id (0 while detached), as `tp driver leases` shows it. */
TP_API uint64_t tp_producer_lease_id(const tp_producer_t *producer);
/* false until attached, and between losing the lease and attaching again (offers fail meanwhile). */
TP_API bool tp_producer_is_attached(const tp_producer_t *producer);
/* Why the last attach attempt failed ("" when it did not). */
TP_API const char *tp_producer_last_error(const tp_producer_t *producer);
/* Detach (best effort) and unmap. NULL is fine. */
TP_API int tp_producer_close(tp_producer_t *producer);

/* ---- consumers ---- */

/* One frame, valid only during the callback. The payload is read in place (zero copy): the producer may
 * overwrite the slot meanwhile, so check tp_frame_is_intact after using it, or copy it out with
 * tp_frame_copy_out, which validates the copy. After the callback the library counts the frame as accepted if
 * it was copied out intact or the slot is still unchanged, and as a late drop otherwise. */
typedef struct tp_frame
{
    uint32_t stream_id;
    uint64_t epoch;
    uint64_t seq;
    uint64_t timestamp_ns;         /* the slot's: capture time if the producer gave one, else its commit time */
    uint64_t publish_timestamp_ns; /* the descriptor's: when it was published, after the commit (0: absent) */
    uint32_t meta_version;
    uint64_t trace_id; /* 0: none */
    uint16_t pool_id;
    tp_tensor_desc_t tensor;
    const uint8_t *payload; /* 64-byte aligned, like tp_claim_t.buffer: read it as the tensor's element type */
    uint32_t payload_length;
    const uint8_t *slot_;    /* internal */
    uint64_t seq_commit_;    /* internal */
    int *copied_;            /* internal: set by a successful tp_frame_copy_out */
} tp_frame_t;

typedef void (*tp_frame_handler_t)(void *clientd, const tp_frame_t *frame);

typedef struct tp_consumer_counters
{
    uint64_t frames;        /* delivered to the handler and still intact afterwards */
    uint64_t drops_gap;     /* sequences never seen or overwritten before they were read */
    uint64_t drops_late;    /* frames that changed while being read (including during the callback) */
    uint64_t drops_invalid; /* slots whose header broke a rule */
    uint64_t descriptors_ignored; /* for other streams or other epochs */
    uint64_t remaps;        /* attachments after the first: a new epoch, a lost lease, a driver restart */
    uint64_t lease_losses;  /* the driver revoked or expired the lease, or shut down */
    uint64_t progress;         /* FrameProgress reports delivered to the progress handler */
    uint64_t progress_dropped; /* FrameProgress reports that broke a rule */
    uint64_t rate_limited;  /* RATE_LIMITED: frames not delivered by local gating on the shared stream, or
                             * thinned by the producer on a per-consumer stream */
    uint64_t resyncs;       /* jumps to the newest frame after falling max_outstanding_seq_gap behind */
    uint64_t seq_refuted;   /* sequence numbers (in a descriptor or a slot) that the ring proved false: a forged
                             * descriptor naming an unwritten frame, a scribbled seq_commit; never followed */
    uint64_t regions_damaged; /* attachments dropped because a region file shrank under its mapping (a process
                               * that can write it truncated it): no crash, the consumer maps the stream again */
} tp_consumer_counters_t;

typedef enum tp_consumer_mode
{
    TP_CONSUMER_STREAM = 1,       /* every frame */
    TP_CONSUMER_RATE_LIMITED = 2, /* at most max_rate_hz frames per second */
} tp_consumer_mode_t;

/* How a consumer asks to be served (wire spec 10.1.2, 11). It says so in ConsumerHello, at every attachment and
 * every client.qos_period_ms. A per-consumer descriptor stream, when the driver grants one (from its
 * driver.descriptor_stream_id_range), carries this consumer's descriptors only, thinned by the producer to
 * max_rate_hz in RATE_LIMITED mode; declined, the consumer stays on the shared stream and, in RATE_LIMITED mode,
 * lets through at most max_rate_hz frames itself (by the descriptors' publish times), counting the others as
 * rate_limited. */
typedef struct tp_consumer_options
{
    tp_consumer_mode_t mode;        /* default TP_CONSUMER_STREAM */
    uint32_t max_rate_hz;           /* RATE_LIMITED: frames per second at most (0: no cap) */
    bool per_consumer_descriptors;  /* ask for a descriptor stream of this consumer's own */
    const char *descriptor_channel; /* its channel (NULL: client.descriptor_channel) */
    uint32_t descriptor_stream_id;  /* the id asked for (0: any free one of the driver's range) */
    bool per_consumer_control;      /* ask for a control stream of its own (FrameProgress for it only) */
    const char *control_channel;    /* its channel (NULL: client.control_channel) */
    uint32_t control_stream_id;     /* the id asked for (0: any free one of the driver's range) */
    bool supports_progress;         /* follow frames as they fill (tp_consumer_set_progress_handler) */
    uint32_t progress_interval_us;  /* hint: report at most this often (0: the producer's default) */
    uint32_t progress_bytes_delta;  /* hint: at least this many bytes apart (0: the producer's default) */
    /* Resync when this far behind (wire spec 15.4): a descriptor whose slot already holds a frame more than this many
     * sequences newer makes the consumer drop everything up to that newer frame without reading it (counted as
     * drops_gap, and once in resyncs) and continue from there, the freshest data it knows of. Default
     * TP_CONSUMER_DEFAULT_MAX_SEQ_GAP (256); 0: never resync, check every descriptor's slot. */
    uint32_t max_outstanding_seq_gap;
} tp_consumer_options_t;

#define TP_CONSUMER_DEFAULT_MAX_SEQ_GAP 256

/* A frame being filled: the prefix [0, bytes_filled) of its payload is written, the rest is not yet. prefix is
 * NULL when the tensor's layout does not make a prefix meaningful (wire spec 10.2.2: strides must be contiguous, or
 * progress counted in whole rows or columns); then prefix_bytes is 0. Valid during the callback only; the frame is
 * only complete (and safe) when it arrives through the frame handler. */
/* tp_progress_t.state: FrameProgress.state of the wire spec (10.2.2). */
typedef enum tp_progress_state
{
    TP_PROGRESS_STARTED = 1,
    TP_PROGRESS_PROGRESS = 2,
    TP_PROGRESS_COMPLETE = 3,
} tp_progress_state_t;

typedef struct tp_progress
{
    uint32_t stream_id;
    uint64_t epoch;
    uint64_t seq;
    uint8_t state; /* tp_progress_state_t */
    uint64_t bytes_filled;
    uint32_t values_len; /* the frame's final length */
    tp_tensor_desc_t tensor;
    const uint8_t *prefix;
    uint64_t prefix_bytes;
} tp_progress_t;

typedef void (*tp_progress_handler_t)(void *clientd, const tp_progress_t *progress);

TP_API void tp_consumer_options_init(tp_consumer_options_t *options);

/* Attach as a consumer with options (NULL: the defaults); timeout_ns < 0 returns at once and attaches in the
 * polls, like tp_consumer_attach_async. */
TP_API int tp_consumer_open(tp_consumer_t **out, tp_client_t *client, uint32_t stream_id,
    const tp_consumer_options_t *options, int64_t timeout_ns);
/* Called (from tp_consumer_poll / tp_consumer_next) for each valid FrameProgress of this consumer's stream and
 * epoch, when the consumer was opened with supports_progress. Reports that break a rule (beyond the frame's length,
 * going backwards, a slot that is not that frame) are dropped and counted (progress_dropped). */
TP_API void tp_consumer_set_progress_handler(tp_consumer_t *consumer, tp_progress_handler_t handler, void *clientd);
/* The mode in force: the one a ConsumerConfig gave (the driver's, or a supervisor's), else the option's. */
TP_API tp_consumer_mode_t tp_consumer_mode(const tp_consumer_t *consumer);
/* The per-consumer control stream it reads FrameProgress from, 0 while on the shared control stream. */
TP_API uint32_t tp_consumer_control_stream_id(const tp_consumer_t *consumer);
/* The per-consumer descriptor stream in use, 0 while on the shared one. */
TP_API uint32_t tp_consumer_descriptor_stream_id(const tp_consumer_t *consumer);

/* Attach as a consumer of the stream and map its regions: tp_consumer_open(out, client, stream_id, NULL,
 * timeout_ns). */
TP_API int tp_consumer_attach(tp_consumer_t **out, tp_client_t *client, uint32_t stream_id, int64_t timeout_ns);
/* The same without waiting: the consumer attaches in tp_consumer_poll, whenever the driver and the stream are
 * there (start in any order): tp_consumer_open(out, client, stream_id, NULL, -1). */
TP_API int tp_consumer_attach_async(tp_consumer_t **out, tp_client_t *client, uint32_t stream_id);

/* Read up to limit descriptors: each committed, stable frame goes to handler; the others are dropped and
 * counted, never waited for. A newer epoch (named by a descriptor or a fresh announce) ends the mapped one: its
 * frames are dropped and the new regions mapped (attaching again, without blocking); a revoked lease, a driver
 * shutdown or a dead driver (stale superblock activity) unmaps at once and attaches again with backoff. Also
 * sends keepalives.
 * Returns frames delivered, -1 on a fatal error. Hot path (while the epoch holds): no allocation, lock or
 * system call. */
TP_API int tp_consumer_poll(tp_consumer_t *consumer, tp_frame_handler_t handler, void *clientd, int limit);

/* Pull style, for loops that prefer it to a callback: the next frame of the stream into *out (1), or none
 * available now (0), or -1 on a fatal error. The view is valid until the next call to tp_consumer_next,
 * tp_consumer_poll or tp_consumer_close, which first settles it: accepted if copied out intact or still
 * unchanged, late otherwise. Also does everything tp_consumer_poll does between frames. Hot path. */
TP_API int tp_consumer_next(tp_consumer_t *consumer, tp_frame_t *out);

/* Random access, for stages that pick frames by sequence (a join reading in_seq once its barrier says ready): the
 * frame seq of the mapped epoch if its slot holds it now, committed (1); 0 if it does not (not written yet, being
 * rewritten, overwritten by a newer frame, or its header breaks a rule). A single attempt that never waits. The view
 * (trace_id and publish time unknown: 0) is valid until the next tp_consumer_poll / tp_consumer_next, which may
 * remap; check tp_frame_is_intact after reading it in place, or copy it out. Counts nothing. Hot path. */
TP_API int tp_consumer_read(tp_consumer_t *consumer, uint64_t seq, tp_frame_t *out);

/* Sleep (no spinning: a futex on the descriptor stream) until a descriptor may have arrived or timeout_ns passed,
 * at most 100 ms at a time so that the caller's next poll keeps the lease alive. 1 if woken, 0 on timeout; then
 * poll. For threads with nothing else to do, and for bindings that release their interpreter lock meanwhile. */
TP_API int tp_consumer_wait(tp_consumer_t *consumer, int64_t timeout_ns);

TP_API void tp_consumer_counters(const tp_consumer_t *consumer, tp_consumer_counters_t *out);
TP_API uint64_t tp_consumer_epoch(const tp_consumer_t *consumer);
TP_API uint32_t tp_consumer_stream_id(const tp_consumer_t *consumer);
TP_API uint64_t tp_consumer_lease_id(const tp_consumer_t *consumer);
TP_API bool tp_consumer_is_attached(const tp_consumer_t *consumer);
/* Why the last attach attempt failed ("" when it did not). */
TP_API const char *tp_consumer_last_error(const tp_consumer_t *consumer);
TP_API int tp_consumer_close(tp_consumer_t *consumer);

/* ---- runner threads ----
 * Agents (tp_agent.h) for running a producer or a consumer on a thread of its own with tp_agent_runner_init /
 * _start / _close, or from your own loop with tp_agent_invoke. The producer, consumer and their client then
 * belong to that thread until the runner is stopped. */

/* Each duty cycle calls produce (which offers or claims frames, returning how many, 0 when idle, -1 to stop the
 * runner), then tp_producer_do_work. */
typedef int (*tp_produce_fn_t)(void *clientd, tp_producer_t *producer);
TP_API void tp_producer_agent(tp_agent_t *out, tp_producer_t *producer, tp_produce_fn_t produce, void *clientd);
/* Each duty cycle polls up to 64 descriptors into handler. */
TP_API void tp_consumer_agent(tp_agent_t *out, tp_consumer_t *consumer, tp_frame_handler_t handler, void *clientd);

/* ---- for language bindings ----
 * A binding that hands out views (a NumPy array over a slot) which may outlive the library's mapping (the next poll
 * may remap, close unmaps) maps the region once more from the library's descriptor and points its views there: the
 * region holding a frame's payload or a claim's buffer, as the library maps it. The descriptor stays the library's
 * (do not close it). 0, or -1 if the frame or claim is not of the current mapping. */
typedef struct tp_region_info
{
    int fd;
    const uint8_t *base; /* the library's mapping */
    size_t length;       /* mapped bytes */
} tp_region_info_t;
TP_API int tp_consumer_payload_region(const tp_consumer_t *consumer, const tp_frame_t *frame, tp_region_info_t *out);
TP_API int tp_producer_payload_region(const tp_producer_t *producer, const tp_claim_t *claim, tp_region_info_t *out);

/* true if the frame's slot has not changed since it was read: what was read from the payload is good. */
TP_API bool tp_frame_is_intact(const tp_frame_t *frame);
/* Copy the payload to dst (capacity bytes), then validate; 0 if the copy is intact, -1 if the frame changed
 * meanwhile (the copy is then garbage) or dst is too small. */
TP_API int tp_frame_copy_out(const tp_frame_t *frame, void *dst, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
