/*
 * `tp produce STREAM_ID` and `tp consume STREAM_ID`: a producer of test frames and a consumer that checks them,
 * as separate processes on the public client API, for trying a driver, a bridge or a rate limiter from the shell.
 * Frames carry their seq and a CRC32C (tp_cli_frame_fill), so `tp consume --verify` proves every frame it accepted
 * is the one the producer wrote, wherever it travelled.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_trace.h"

#define ATTACH_TIMEOUT_NS (10 * TP_NS_PER_S)

typedef struct pipe_options
{
    uint32_t stream_id;
    uint64_t size;
    double rate_hz;
    uint64_t count;
    double seconds;
    const char *bus_dir;
    const char *base_dirs;
    bool is_verify;
    bool is_tracing;
} pipe_options_t;

static void produce_usage(FILE *out)
{
    fprintf(out,
        "usage: tp produce STREAM_ID [--size BYTES] [--rate HZ] [--count N] [--seconds S] [--trace]\n"
        "                  [--bus-dir DIR] [--allowed-base-dirs DIRS]\n\n"
        "Attach to STREAM_ID as its producer through the local driver and publish test frames (a UINT8 tensor of\n"
        "--size bytes [65536] carrying its seq and a CRC32C, which `tp consume --verify` checks) at --rate frames\n"
        "per second [100; 0 = as fast as possible], until --count frames [unlimited] or --seconds [unlimited]\n"
        "or Ctrl-C. Once a second it prints frames/s and MiB/s. --trace gives every frame a new trace id (the\n"
        "stream's root frames, for `tp trace`). The bus and SHM base come from the options or the environment\n"
        "(TP_BUS_DIR, TP_CLIENT_ALLOWED_BASE_DIRS).\n\n"
        "example:\n"
        "  tp produce 10000 --size 921600 --rate 30\n\n"
        "exit status: 0 done; 1 the attach failed; 2 bad arguments.\n");
}

static void consume_usage(FILE *out)
{
    fprintf(out,
        "usage: tp consume STREAM_ID [--count N] [--seconds S] [--verify] [--bus-dir DIR]\n"
        "                  [--allowed-base-dirs DIRS]\n\n"
        "Attach to STREAM_ID as a consumer through the local driver and read its frames (in place, each re-checked\n"
        "against the seqlock). Once a second it prints frames/s, MiB/s, the last seq and epoch, and drops by kind.\n"
        "--verify checks every frame against the pattern of `tp produce` (its seq and CRC32C). It stops after\n"
        "--count frames, after --seconds, or on Ctrl-C.\n\n"
        "example:\n"
        "  tp consume 20000 --count 100 --verify\n\n"
        "exit status: 0 done (and --count frames read, when given); 1 fewer frames than --count, a frame failed\n"
        "--verify, or the attach failed; 2 bad arguments.\n");
}

static int parse(int argc, char **argv, pipe_options_t *o, bool is_producer)
{
    const char *cmd = argv[0];
    uint64_t id = 0;
    if (argc < 2 || tp_cli_parse_u64(argv[1], 1, UINT32_MAX, &id) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "needs a STREAM_ID (1..4294967295) first (see tp %s --help)", cmd);
    }
    o->stream_id = (uint32_t)id;
    for (int i = 2; i < argc; i++)
    {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(a, "--verify") == 0 && !is_producer)
        {
            o->is_verify = true;
            continue;
        }
        if (strcmp(a, "--trace") == 0 && is_producer)
        {
            o->is_tracing = true;
            continue;
        }
        if (v == NULL)
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown option '%s', or it lacks its value", a);
        }
        if (strcmp(a, "--size") == 0 && is_producer)
        {
            rc = tp_cli_parse_u64(v, 1, UINT32_MAX, &o->size);
        }
        else if (strcmp(a, "--rate") == 0 && is_producer)
        {
            rc = tp_cli_parse_double(v, 0, 1e7, &o->rate_hz);
        }
        else if (strcmp(a, "--count") == 0)
        {
            rc = tp_cli_parse_u64(v, 1, UINT64_MAX, &o->count);
        }
        else if (strcmp(a, "--seconds") == 0)
        {
            rc = tp_cli_parse_double(v, 0.001, 1e9, &o->seconds);
        }
        else if (strcmp(a, "--bus-dir") == 0)
        {
            o->bus_dir = v;
        }
        else if (strcmp(a, "--allowed-base-dirs") == 0)
        {
            o->base_dirs = v;
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown option '%s' (see tp %s --help)", a, cmd);
        }
        if (rc < 0)
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s: %s", a, tp_errmsg());
        }
        i++;
    }
    return TP_EXIT_OK;
}

static int connect_client(const pipe_options_t *o, tp_client_context_t **ctx, tp_client_t **client)
{
    if (tp_client_context_init(ctx) < 0 ||
        (o->bus_dir != NULL && tp_client_context_set(*ctx, "client.bus_dir", o->bus_dir) < 0) ||
        (o->base_dirs != NULL && tp_client_context_set(*ctx, "client.allowed_base_dirs", o->base_dirs) < 0))
    {
        return -1;
    }
    return tp_client_connect(client, *ctx);
}

static bool is_done(const pipe_options_t *o, uint64_t frames, int64_t start_ns, int64_t now_ns)
{
    return tp_cli_stop_requested() || (o->count > 0 && frames >= o->count) ||
        (o->seconds > 0 && (double)(now_ns - start_ns) >= o->seconds * 1e9);
}

int tp_cmd_produce(int argc, char **argv)
{
    if (argc == 2 && tp_cli_is_help(argv[1]))
    {
        produce_usage(stdout);
        return TP_EXIT_OK;
    }
    pipe_options_t o = { .size = 65536, .rate_hz = 100 };
    int rc = parse(argc, argv, &o, true);
    if (rc != TP_EXIT_OK)
    {
        return rc;
    }
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    tp_producer_t *producer = NULL;
    uint8_t *payload = NULL;
    int status = TP_EXIT_OK;
    tp_cli_install_stop_handlers();
    if (connect_client(&o, &ctx, &client) < 0 || tp_alloc((void **)&payload, o.size) < 0 ||
        tp_producer_attach(&producer, client, o.stream_id, ATTACH_TIMEOUT_NS) < 0 ||
        (o.is_tracing && tp_producer_set_tracing(producer, true) < 0))
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "produce", "stream %" PRIu32 ": %s", o.stream_id, tp_errmsg());
        goto done;
    }
    fprintf(stderr, "tp produce: stream %" PRIu32 ", epoch %" PRIu64 ", %" PRIu64 "-byte frames%s\n", o.stream_id,
        tp_producer_epoch(producer), o.size, o.is_tracing ? ", traced" : "");
    tp_tensor_desc_t tensor;
    memset(&tensor, 0, sizeof(tensor));
    tensor.dtype = TP_DTYPE_UINT8;
    tensor.major_order = TP_MAJOR_ORDER_ROW;
    tensor.ndims = 1;
    tensor.dims[0] = (int32_t)o.size;
    int64_t start = tp_clock_monotonic_ns();
    int64_t next_frame = start;
    int64_t next_report = start + TP_NS_PER_S;
    uint64_t frames = 0;
    uint64_t reported = 0;
    for (int64_t now = start; !is_done(&o, frames, start, now); now = tp_clock_monotonic_ns())
    {
        tp_producer_do_work(producer);
        if (now >= next_frame)
        {
            tp_cli_frame_fill(payload, (uint32_t)o.size, tp_producer_next_seq(producer));
            if (tp_producer_offer_frame(producer, payload, (uint32_t)o.size, &tensor, 0, 0) >= 0)
            {
                frames++;
                next_frame = o.rate_hz > 0 ? next_frame + (int64_t)(1e9 / o.rate_hz) : now;
            }
        }
        if (now >= next_report)
        {
            printf("%8.1f frames/s %9.1f MiB/s  seq %" PRIu64 "\n", (double)(frames - reported),
                (double)(frames - reported) * (double)o.size / (1024.0 * 1024.0), tp_producer_next_seq(producer));
            fflush(stdout);
            reported = frames;
            next_report += TP_NS_PER_S;
        }
        if (o.rate_hz > 0 && next_frame - now > 200000)
        {
            /* Sleep until shortly before the next frame (at most 10 ms, so the lease's keepalives keep going): a
             * crowd of tools waking every 100 us would spend the machine on context switches. */
            int64_t gap = next_frame - now - 100000 < 10 * TP_NS_PER_MS ? next_frame - now - 100000
                                                                         : 10 * TP_NS_PER_MS;
            struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)gap };
            nanosleep(&ts, NULL);
        }
    }
    printf("produced %" PRIu64 " frames\n", frames);
done:
    tp_producer_close(producer);
    tp_free(payload);
    tp_client_close(client);
    tp_client_context_close(ctx);
    return status;
}

typedef struct consume_state
{
    const pipe_options_t *o;
    uint64_t frames;
    uint64_t bytes;
    uint64_t bad;
    uint64_t last_seq;
    uint64_t last_epoch;
} consume_state_t;

static void on_frame(void *clientd, const tp_frame_t *f)
{
    consume_state_t *s = clientd;
    int is_good = !s->o->is_verify || tp_cli_frame_verify(f->payload, f->payload_length, f->seq);
    if (!tp_frame_is_intact(f))
    {
        return; /* overwritten while read: counted by the consumer as late */
    }
    s->bad += !is_good;
    s->frames++;
    s->bytes += f->payload_length;
    s->last_seq = f->seq;
    s->last_epoch = f->epoch;
}

int tp_cmd_consume(int argc, char **argv)
{
    if (argc == 2 && tp_cli_is_help(argv[1]))
    {
        consume_usage(stdout);
        return TP_EXIT_OK;
    }
    pipe_options_t o = { 0 };
    int rc = parse(argc, argv, &o, false);
    if (rc != TP_EXIT_OK)
    {
        return rc;
    }
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    tp_consumer_t *consumer = NULL;
    int status = TP_EXIT_OK;
    tp_cli_install_stop_handlers();
    if (connect_client(&o, &ctx, &client) < 0 || tp_consumer_attach(&consumer, client, o.stream_id, ATTACH_TIMEOUT_NS) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "consume", "stream %" PRIu32 ": %s", o.stream_id, tp_errmsg());
        goto done;
    }
    fprintf(stderr, "tp consume: stream %" PRIu32 ", epoch %" PRIu64 "\n", o.stream_id, tp_consumer_epoch(consumer));
    consume_state_t s = { .o = &o };
    int64_t start = tp_clock_monotonic_ns();
    int64_t next_report = start + TP_NS_PER_S;
    uint64_t reported = 0;
    uint64_t reported_bytes = 0;
    for (int64_t now = start; !is_done(&o, s.frames, start, now); now = tp_clock_monotonic_ns())
    {
        /* never past --count: one poll may deliver up to its limit */
        uint64_t limit = o.count > 0 && o.count - s.frames < 64 ? o.count - s.frames : 64;
        if (tp_consumer_poll(consumer, on_frame, &s, (int)limit) <= 0)
        {
            /* Parked on the descriptor stream until a frame is announced (at most until the next report, and 100 ms:
             * the lease's keepalives keep going), rather than waking every 100 us, which a crowd of consumers cannot
             * afford. */
            int64_t until_report = next_report - tp_clock_monotonic_ns();
            (void)tp_consumer_wait(consumer, until_report < 100 * TP_NS_PER_MS
                                                 ? (until_report > 0 ? until_report : 0)
                                                 : 100 * TP_NS_PER_MS);
        }
        if (now >= next_report)
        {
            tp_consumer_counters_t k;
            tp_consumer_counters(consumer, &k);
            printf("%8.1f frames/s %9.1f MiB/s  seq %" PRIu64 " epoch %" PRIu64 "  drops gap %" PRIu64
                   " late %" PRIu64 " invalid %" PRIu64 "%s\n",
                (double)(s.frames - reported), (double)(s.bytes - reported_bytes) / (1024.0 * 1024.0), s.last_seq,
                s.last_epoch, k.drops_gap, k.drops_late, k.drops_invalid, s.bad > 0 ? "  VERIFY FAILURES" : "");
            fflush(stdout);
            reported = s.frames;
            reported_bytes = s.bytes;
            next_report += TP_NS_PER_S;
        }
    }
    printf("consumed %" PRIu64 " frames (%" PRIu64 " failed --verify), last seq %" PRIu64 " epoch %" PRIu64 "\n",
        s.frames, s.bad, s.last_seq, s.last_epoch);
    if (s.bad > 0 || (o.count > 0 && s.frames < o.count))
    {
        status = TP_EXIT_FAILED;
    }
done:
    tp_consumer_close(consumer);
    tp_client_close(client);
    tp_client_context_close(ctx);
    return status;
}
