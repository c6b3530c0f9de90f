/*
 * The bus: tensorpool's message transport, in Aeron's channel syntax.
 *
 * Channels:
 *   aeron:ipc[?term-length=4m]     shared memory on this host: our own log format (an Aeron client cannot join it)
 *   aeron:udp?endpoint=host:port[|interface=ip|ttl=n|mtu=n|term-length=n|reliable=true|false|session-id=n|
 *             fc=max|min|rcv-wnd=n|linger=duration]
 *                                  Aeron's UDP transport protocol on the wire, byte for byte: an Aeron media driver
 *                                  on another host is a peer (unicast or multicast)
 *
 * Semantics:
 *   - many publications and subscriptions per (channel, stream id), in any processes;
 *   - a subscription sees only what is published after it joined;
 *   - per publication (image) order is kept; across publications there is no total order;
 *   - IPC is lossy under overrun: a publication never waits for readers; a subscription that falls about its
 *     image's capacity behind (a sixteenth early: 15/16 of it less one record is always readable) counts the records
 *     it lost and resumes at the newest one. A publication never waits on a subscriber; the cache lines a
 *     subscriber reads still travel between cores, and a ring small enough to stay in the subscriber's caches
 *     makes the publisher fetch back every line it rewrites: for high rates of small messages use a large term
 *     (Aeron's IPC default, term-length=64m, ran 32 B messages 2-4x faster than 16m with the cores far apart);
 *   - UDP is reliable and flow-controlled, as Aeron's is: receivers NAK gaps and the publication resends them; a
 *     publication sends no further than its receivers' windows (multicast: the fastest receiver's, fc=max, Aeron's
 *     default; or the slowest's, fc=min) and offers are back-pressured beyond half a term. With reliable=false
 *     gaps are skipped and counted. A UDP publication is not connected (offers return TP_BUS_NOT_CONNECTED) until
 *     a receiver's status message arrives; it stops being connected 5 s after the last one.
 *
 * Who does the work (there is no media driver daemon): a UDP publication sends on offer and commit (unless it
 * coalesces, see tp_bus_publication_set_coalescing), and is
 * serviced (status messages, NAKs and retransmits, SETUP, heartbeats) by tp_bus_publication_do_work and by its
 * offers; a UDP subscription does everything in tp_bus_poll. Call them from the loop that owns the object, at
 * least every few milliseconds while it is open: a process that stops is, to its peers, a silent publication or a
 * receiver that stopped reporting, and they time it out.
 *
 * IPC: every publication owns a single-writer ring ("image") in a file under the bus directory,
 * <bus_dir>/<stream_id>/<session_id>.log, listed in <bus_dir>/<stream_id>/registry. The bus directory defaults
 * to /dev/shm/tensorpool-$USER/bus; TP_BUS_DIR overrides the default and an explicit directory overrides both.
 *
 * Lanes (IPC): a stream shared by one service and its many clients (the driver's control stream) would have every
 * client map, poll and wake for every other client's requests. Each publication writes one lane: broadcast (the
 * default), requests (TP_BUS_PUB_REQUESTS: clients to the service) or hellos (TP_BUS_PUB_HELLOS: consumers to
 * producers). A subscription reads the lanes it was opened for (tp_bus_subscription_open: all of them;
 * tp_bus_subscription_open_broadcast: broadcast only; tp_bus_subscription_open_with: any), never maps the images of
 * the others, and is not woken by their records. UDP has no lanes: a UDP subscription receives everything.
 *
 * Threads: a publication may be used by one thread at a time unless opened shared (then offers serialise on a
 * short in-process spin); a subscription by one thread at a time. Different objects need no coordination.
 */
#ifndef TENSORPOOL_TP_BUS_H
#define TENSORPOOL_TP_BUS_H

#include "tensorpool/tp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Offer / claim results below zero (a position, > 0, means the message is in the log). */
enum
{
    TP_BUS_NOT_CONNECTED = -1,              /* no subscription exists on the stream; nothing was written */
    TP_BUS_BACK_PRESSURED = -2,             /* transient (UDP: the receivers' window is full); try again */
    TP_BUS_ADMIN_ACTION = -3,               /* transient: the claim is busy or the image is rolling over */
    TP_BUS_CLOSED = -4,                     /* the publication is closed */
    TP_BUS_MAX_MESSAGE_LENGTH_EXCEEDED = -5 /* longer than tp_bus_publication_max_message_length() */
};

typedef struct tp_bus tp_bus_t;
typedef struct tp_bus_publication tp_bus_publication_t;
typedef struct tp_bus_subscription tp_bus_subscription_t;

/* What a subscriber learns about a message besides its bytes. */
typedef struct tp_bus_header
{
    int32_t stream_id;
    int32_t session_id; /* the publication (image) it came from */
    int64_t position;   /* byte position just past the message in its image */
} tp_bus_header_t;

/* Called once per message; buffer and header are valid only during the call. */
typedef void (*tp_bus_fragment_handler_t)(void *clientd, const uint8_t *buffer, size_t length,
    const tp_bus_header_t *header);

/* Called when an image (a publication) becomes available to, or is dropped by, a subscription. */
typedef void (*tp_bus_image_handler_t)(void *clientd, int32_t stream_id, int32_t session_id);

/* A claimed region of the log: fill buffer[0..length) then commit or abort. */
typedef struct tp_bus_claim
{
    uint8_t *buffer;
    size_t length;
    int64_t position_;     /* internal */
    uint64_t record_bytes_; /* internal */
} tp_bus_claim_t;

typedef struct tp_bus_counters
{
    uint64_t messages;        /* delivered to handlers */
    uint64_t lost_records;    /* records overwritten before this subscription read them */
    uint64_t images_joined;
    uint64_t images_dropped;  /* closed or dead publications, removed once drained */
    uint64_t malformed;       /* records or datagrams that failed validation and were skipped */
    uint32_t images_active;
} tp_bus_counters_t;

/* The channel every stream uses unless configured otherwise: shared memory on this host, 4 MiB per publication. */
#define TP_BUS_DEFAULT_CHANNEL "aeron:ipc?term-length=4m"

/* Open a bus context on bus_dir (NULL: $TP_BUS_DIR, else /dev/shm/tensorpool-$USER/bus). Creates the directory
 * (0700) if missing; its files are created 0600. A directory that exists and is shared with a group of ours
 * (group rwx, as a driver with shm.group makes it) is joined on its terms: directories get its group bits and
 * setgid, files 0660, so every member can read what we write. A directory closed to us is refused with a "not
 * permitted" error that names it, its owner and its group. The context must outlive every publication and
 * subscription made from it. */
TP_API int tp_bus_init(tp_bus_t **out, const char *bus_dir);

/* The same for tools that watch or talk to what is running: the directory must exist already, so that a mistyped
 * one is an error ("does not exist") rather than a new, empty bus nobody else uses. */
TP_API int tp_bus_init_existing(tp_bus_t **out, const char *bus_dir);

/* The same with explicit modes for the directories and files the bus creates, e.g. 02770 and 0660 so that the
 * processes of one group share a bus. Modes are applied exactly (the umask does not narrow them). */
TP_API int tp_bus_init_with_modes(tp_bus_t **out, const char *bus_dir, uint32_t dir_mode, uint32_t file_mode);

/* A bus shared by the members of `group` (a name or a decimal id), as a driver with shm.group opens it: every
 * directory on the way that we create or own joins the group with dir_mode plus setgid (so what others create
 * in it is the group's too), files get file_mode; existing files we own join the group as well. */
TP_API int tp_bus_init_shared(tp_bus_t **out, const char *bus_dir, const char *group, uint32_t dir_mode,
    uint32_t file_mode);
TP_API int tp_bus_close(tp_bus_t *bus);
/* The bus directory in use. */
TP_API const char *tp_bus_dir(const tp_bus_t *bus);

/* The clock the UDP protocol's timers (SETUP, heartbeats, status messages, NAK delays, timeouts) read, for tests;
 * NULL restores CLOCK_MONOTONIC. Set it before opening publications or subscriptions. */
TP_API void tp_bus_set_clock(tp_bus_t *bus, tp_clock_fn_t clock, void *clientd);

/* How many publications, and as many subscriptions, an IPC stream's registry has room for when this process is the
 * one that creates it (the first to open the stream in its bus directory): 16 to 65536. Default 2048 (a driver with
 * a thousand client processes, each with a control publication and subscription, and room for churn), or the
 * environment's TP_BUS_REGISTRY_SLOTS, read by tp_bus_init (a bad value fails it). Every process that opens an
 * existing registry takes the size it was made with; an entry costs 64 bytes. Set it before opening anything. */
TP_API int tp_bus_set_registry_slots(tp_bus_t *bus, uint32_t slots);

/* ---- publications ---- */

/* Open a publication on channel / stream_id. is_shared allows several threads to offer concurrently. */
TP_API int tp_bus_publication_open(tp_bus_publication_t **out, tp_bus_t *bus, const char *channel, int32_t stream_id,
    bool is_shared);

/* Flags of tp_bus_publication_open_with (IPC; a UDP publication heeds only SHARED). */
#define TP_BUS_PUB_SHARED 1u /* several threads may offer (is_shared above) */
/* Low-rate, and many subscribers sleep on the stream: each record costs a fence, and in exchange a subscriber
 * parking on a stream with only such publications makes no system-wide barrier (membarrier) first. Without it a
 * publication wakes without a fence, as streams with data rates should. */
#define TP_BUS_PUB_FENCED 2u
/* Requests to the stream's service (implies FENCED): the request lane (Lanes, above). Its log is at most 128 KiB
 * whatever the channel's term-length: requests are small, and a crowd of clients holds one log each. */
#define TP_BUS_PUB_REQUESTS 4u
/* Consumers' hellos to producers (implies FENCED): the hello lane, a log of at most 128 KiB like requests. */
#define TP_BUS_PUB_HELLOS 16u
/* A service answering a crowd (implies FENCED): its log is at least 2 MiB whatever the channel's term-length, so
 * that a burst of answers to a thousand clients laps none of them (a lapped reader loses what it skipped). */
#define TP_BUS_PUB_SERVICE 8u
TP_API int tp_bus_publication_open_with(tp_bus_publication_t **out, tp_bus_t *bus, const char *channel,
    int32_t stream_id, uint32_t flags);
TP_API int tp_bus_publication_close(tp_bus_publication_t *pub);

/* Copy a message into the log. Returns the new position (> 0) or a TP_BUS_* code. Never blocks, never waits for
 * readers. Hot path: no allocation or lock (unless shared); IPC makes no system call, UDP sends what the window
 * allows and now and then reads its control messages. */
TP_API int64_t tp_bus_offer(tp_bus_publication_t *pub, const void *buffer, size_t length);

/* Reserve length bytes in the log to fill in place (SBE encoders write straight into it). Returns the position
 * the message will have, or a TP_BUS_* code. Every successful claim must be committed or aborted before the
 * next offer or claim on the publication. */
TP_API int64_t tp_bus_try_claim(tp_bus_publication_t *pub, size_t length, tp_bus_claim_t *claim);
TP_API int64_t tp_bus_commit(tp_bus_publication_t *pub, tp_bus_claim_t *claim);
TP_API int64_t tp_bus_abort(tp_bus_publication_t *pub, tp_bus_claim_t *claim);

/* Service a UDP publication: read status messages and NAKs, retransmit, send what the window now allows, SETUP
 * until connected, a heartbeat when idle. Returns the work done (0 when idle; always 0 for IPC). */
TP_API int tp_bus_publication_do_work(tp_bus_publication_t *pub);

/* UDP: let offers that come in a burst (less than 2 us apart) travel together, many small messages to an mtu-sized
 * datagram and 16 datagrams to a system call; a lone offer still goes at once. The last datagrams of a burst wait
 * for the next offer or tp_bus_publication_do_work, so only a publication whose owner calls do_work in its loop
 * should coalesce. Off by default (every offer sends what it can). No effect on IPC. Returns 0. */
TP_API int tp_bus_publication_set_coalescing(tp_bus_publication_t *pub, bool is_coalescing);

/* The longest message: IPC term-length / 8 less a record header; UDP term-length / 8 (at most 16 MiB), sent in
 * fragments of mtu - 32 bytes. A claim (try_claim) on UDP is one frame: at most mtu - 32 bytes. */
TP_API size_t tp_bus_publication_max_message_length(const tp_bus_publication_t *pub);
TP_API int32_t tp_bus_publication_session_id(const tp_bus_publication_t *pub);
/* true if at least one subscription is on the stream (IPC: live subscribers in the registry; UDP: a receiver's
 * status message within the last 5 s). */
TP_API bool tp_bus_publication_is_connected(const tp_bus_publication_t *pub);

/* ---- subscriptions ---- */

/* Open a subscription. The handlers (may be NULL) are called from tp_bus_poll on the polling thread. */
TP_API int tp_bus_subscription_open(tp_bus_subscription_t **out, tp_bus_t *bus, const char *channel,
    int32_t stream_id, tp_bus_image_handler_t on_available, tp_bus_image_handler_t on_unavailable, void *clientd);
/* The same, reading the broadcast lane only (see Lanes above): a client of the stream's service, which needs the
 * service's answers and its peers' broadcasts, not the other clients' requests and hellos. */
TP_API int tp_bus_subscription_open_broadcast(tp_bus_subscription_t **out, tp_bus_t *bus, const char *channel,
    int32_t stream_id, tp_bus_image_handler_t on_available, tp_bus_image_handler_t on_unavailable, void *clientd);
/* The same for any set of lanes (at least one): a producer's client adds a subscription to the hello lane. */
#define TP_BUS_SUB_BROADCAST 1u
#define TP_BUS_SUB_REQUESTS 2u
#define TP_BUS_SUB_HELLOS 4u
TP_API int tp_bus_subscription_open_with(tp_bus_subscription_t **out, tp_bus_t *bus, const char *channel,
    int32_t stream_id, tp_bus_image_handler_t on_available, tp_bus_image_handler_t on_unavailable, void *clientd,
    uint32_t flags);
TP_API int tp_bus_subscription_close(tp_bus_subscription_t *sub);

/* Deliver up to fragment_limit messages to handler; returns how many were delivered (0 when idle), or -1 on a
 * fatal error. Also notices new and departed publications. Hot path when messages flow: no allocation, lock or
 * system call. */
TP_API int tp_bus_poll(tp_bus_subscription_t *sub, tp_bus_fragment_handler_t handler, void *clientd,
    int fragment_limit);

/* Sleep until a message may be available or timeout_ns passes (IPC: futex on the stream's registry, which
 * publishers wake only when a subscriber is parked; UDP: poll(2), at most 100 ms so that status messages keep
 * flowing, 1 ms while a NAK is due). Returns 1 if woken or data is ready, 0 on timeout. Spurious wakeups are
 * possible: poll afterwards. */
TP_API int tp_bus_subscription_park(tp_bus_subscription_t *sub, int64_t timeout_ns);

/* Remove now what dead processes left on the subscription's IPC stream (their registry entries and logs), rather
 * than at the next of the stream's shared reaps (every 250 ms, by whichever process claims it). A service that owns
 * the stream (the driver, as it stops) calls it. Returns how many entries went (0 on UDP, or for NULL). */
TP_API int tp_bus_subscription_reap(tp_bus_subscription_t *sub);

TP_API void tp_bus_subscription_counters(const tp_bus_subscription_t *sub, tp_bus_counters_t *out);
TP_API int32_t tp_bus_subscription_stream_id(const tp_bus_subscription_t *sub);

/* The process that writes the image `session_id` of an IPC subscription (as its log says: pid and the process's
 * start time, which tells a reused pid apart). 0 and the pair, or -1 when no such image is mapped (or on UDP). */
TP_API int tp_bus_subscription_image_owner(const tp_bus_subscription_t *sub, int32_t session_id, int32_t *pid,
    uint64_t *pid_start_time);

#ifdef __cplusplus
}
#endif

#endif
