/*
 * `tp listen`: subscribe to control-plane streams and print every message, decoded by schema and template id
 * (any of the six schemas), one line each, in human form or as JSON lines. Unknown and malformed messages are
 * shown as such and counted, never misdecoded.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_strbuf.h"
#include "tensorpool/tp_bus.h"
#include "tp_sbe_wire.h"
#include "wire/tp_sbe.h"

#define LISTEN_MAX_STREAMS 5
#define LISTEN_DEFAULT_CHANNEL TP_BUS_DEFAULT_CHANNEL

typedef struct listen_target
{
    const char *name;
    const char *env_prefix; /* TP_<X>_CHANNEL, TP_<X>_STREAM_ID (else TP_CLIENT_<X>_...: tp_cli_getenv) */
    uint32_t default_stream_id;
} listen_target_t;

/* The conventions' stream ids; announces default to the control stream, as the driver sends them there. */
static const listen_target_t targets[] = {
    { "control", "CONTROL", 1000 },
    { "announce", "ANNOUNCE", 0 },
    { "descriptors", "DESCRIPTOR", 1100 },
    { "qos", "QOS", 1200 },
    { "metadata", "METADATA", 1300 },
};
#define TARGET_COUNT (sizeof(targets) / sizeof(targets[0]))

typedef struct listen_stream
{
    const listen_target_t *target;
    char channel[512];
    uint32_t stream_id;
    tp_bus_subscription_t *sub;
} listen_stream_t;

typedef struct listen_state
{
    bool json;
    bool announces_only;
    uint32_t stream_id; /* of the subscription being polled */
    uint64_t messages;
    uint64_t unknown;
    uint64_t malformed;
    uint64_t skipped;
    uint64_t limit; /* 0: none */
    tp_strbuf_t line;
} listen_state_t;

static void listen_usage(FILE *out)
{
    fprintf(out,
        "usage: tp listen announce|control|descriptors|metadata|qos|all [--channel URI] [--stream-id N]\n"
        "                 [--duration S] [--count N] [--json] [--bus-dir DIR]\n\n"
        "Print every message on a control-plane stream of the bus, decoded by schema and template id (wire 900,\n"
        "driver 901, bridge 902, merge 903, tracelink 904, discovery 910), one line each: receive time, stream\n"
        "id, message name and its fields. Messages of an unknown schema or template, or that do not decode, are\n"
        "shown as such and counted. `announce` shows only ShmPoolAnnounce; `all` listens to every stream.\n\n"
        "streams (defaults from the stream id conventions, overridden by the environment):\n"
        "  control       $TP_CONTROL_STREAM_ID or 1000       channel $TP_CONTROL_CHANNEL\n"
        "  announce      $TP_ANNOUNCE_STREAM_ID or the control stream (where the driver announces)\n"
        "  descriptors   $TP_DESCRIPTOR_STREAM_ID or 1100\n"
        "  qos           $TP_QOS_STREAM_ID or 1200\n"
        "  metadata      $TP_METADATA_STREAM_ID or 1300\n"
        "  channels default to %s; the bus directory to $TP_BUS_DIR, else /dev/shm/tensorpool-$USER/bus.\n"
        "  Each TP_<X> unset, the client's TP_CLIENT_<X> applies (one environment for applications and tools).\n\n"
        "options:\n"
        "  --channel URI    the channel (one stream only)\n"
        "  --stream-id N    the stream id (one stream only)\n"
        "  --duration S     stop after S seconds (default: until Ctrl-C)\n"
        "  --count N        stop after N messages\n"
        "  --json           one JSON object per line: received_ns, stream_id, and the decoded message (as\n"
        "                   tp decode prints it) or \"unknown\" / \"malformed\"\n"
        "  --bus-dir DIR    the bus directory\n\n"
        "examples:\n"
        "  tp listen announce --duration 3\n"
        "  tp listen control --json --count 10\n"
        "  tp listen all\n\n"
        "exit status: 0 listened (a summary goes to stderr); 1 the bus could not be opened; 2 bad arguments.\n",
        LISTEN_DEFAULT_CHANNEL);
}

static void print_time(tp_strbuf_t *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    tp_strbuf_printf(b, "%02d:%02d:%02d.%06ld", tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
}

static void emit(listen_state_t *s)
{
    fputs(tp_strbuf_cstr(&s->line), stdout);
    fputc('\n', stdout);
    fflush(stdout);
    tp_strbuf_reset(&s->line);
}

static void on_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    listen_state_t *s = clientd;
    tp_strbuf_t *b = &s->line;
    tp_sbe_header_t h;
    const tp_sbe_message_meta_t *meta = NULL;
    bool has_header = tp_sbe_header_read(&h, buffer, length) == 0;
    if (has_header)
    {
        meta = tp_sbe_message_find(h.schema_id, h.template_id);
    }
    if (s->announces_only &&
        (!has_header || h.schema_id != TP_WIRE_SCHEMA_ID || h.template_id != TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID))
    {
        s->skipped++;
        return;
    }
    s->messages++;
    if (s->json)
    {
        tp_strbuf_printf(b, "{\"received_ns\":%" PRId64 ",\"stream_id\":%" PRIu32 ",", tp_clock_realtime_ns(),
            s->stream_id);
    }
    else
    {
        print_time(b);
        tp_strbuf_printf(b, " %5" PRIu32 " ", s->stream_id);
    }
    tp_sbe_msg_view_t view;
    if (meta == NULL || meta->is_headerless)
    {
        s->unknown++;
        if (s->json)
        {
            tp_strbuf_printf(b, "\"unknown\":{\"schema_id\":%d,\"template_id\":%d,\"length\":%zu}}",
                has_header ? h.schema_id : -1, has_header ? h.template_id : -1, length);
        }
        else if (has_header)
        {
            tp_strbuf_printf(b, "unknown message: schema %u template %u version %u, %zu bytes", h.schema_id,
                h.template_id, h.version, length);
        }
        else
        {
            tp_strbuf_printf(b, "unknown message: %zu bytes, too short for an SBE header", length);
        }
    }
    else if (tp_sbe_decode(&view, meta, buffer, length) < 0)
    {
        s->malformed++;
        if (s->json)
        {
            tp_strbuf_puts(b, "\"malformed\":{\"message\":");
            tp_strbuf_json_string(b, meta->name, strlen(meta->name));
            tp_strbuf_puts(b, ",\"error\":");
            tp_strbuf_json_string(b, tp_errmsg(), strlen(tp_errmsg()));
            tp_strbuf_printf(b, ",\"length\":%zu}}", length);
        }
        else
        {
            tp_strbuf_printf(b, "malformed %s (%zu bytes): %s", meta->name, length, tp_errmsg());
        }
    }
    else if (s->json)
    {
        tp_strbuf_puts(b, "\"message\":");
        tp_sbe_to_json(b, &view);
        tp_strbuf_putc(b, '}');
    }
    else
    {
        tp_strbuf_printf(b, "%s ", meta->name);
        tp_sbe_fields_to_json(b, meta, &view.body);
    }
    emit(s);
}

/* Resolve a target's channel and stream id: options, then the environment, then the conventions. */
static int resolve(listen_stream_t *ls, const listen_target_t *t, const char *channel_opt, const char *stream_opt)
{
    char key[64];
    ls->target = t;
    snprintf(key, sizeof(key), "%s_CHANNEL", t->env_prefix);
    const char *channel = channel_opt != NULL ? channel_opt : tp_cli_getenv(key);
    if (channel == NULL && strcmp(t->name, "announce") == 0)
    {
        channel = tp_cli_getenv("CONTROL_CHANNEL");
    }
    snprintf(ls->channel, sizeof(ls->channel), "%s", channel != NULL ? channel : LISTEN_DEFAULT_CHANNEL);
    snprintf(key, sizeof(key), "%s_STREAM_ID", t->env_prefix);
    const char *stream = stream_opt != NULL ? stream_opt : tp_cli_getenv(key);
    if (stream != NULL && stream_opt == NULL && strcmp(stream, "0") == 0 && strcmp(t->name, "announce") == 0)
    {
        stream = NULL; /* the client's announce_stream_id 0: the control stream */
    }
    if (stream == NULL && strcmp(t->name, "announce") == 0)
    {
        stream = tp_cli_getenv("CONTROL_STREAM_ID");
    }
    uint64_t id = t->default_stream_id != 0 ? t->default_stream_id : 1000;
    if (stream != NULL && tp_cli_parse_u64(stream, 1, INT32_MAX, &id) < 0)
    {
        TP_APPEND_ERR("stream id of %s%s", t->name, stream_opt != NULL ? " (--stream-id)" : " (environment)");
        return -1;
    }
    ls->stream_id = (uint32_t)id;
    return 0;
}

typedef struct listen_args
{
    const char *what;
    const char *channel;
    const char *stream;
    const char *bus_dir;
    double duration;
    uint64_t count;
    bool json;
} listen_args_t;

/* 1: --help printed, 0: run, -1: usage error (printed). */
static int listen_parse(int argc, char **argv, listen_args_t *o)
{
    const char *cmd = "listen";
    *o = (listen_args_t){ 0 };
    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        if (tp_cli_is_help(a))
        {
            listen_usage(stdout);
            return 1;
        }
        bool takes_value = strcmp(a, "--channel") == 0 || strcmp(a, "--stream-id") == 0 ||
                           strcmp(a, "--duration") == 0 || strcmp(a, "--count") == 0 || strcmp(a, "--bus-dir") == 0;
        if (takes_value && i + 1 >= argc)
        {
            return tp_cli_fail(-1, cmd, "%s needs a value (see tp listen --help)", a);
        }
        if (strcmp(a, "--channel") == 0)
        {
            o->channel = argv[++i];
        }
        else if (strcmp(a, "--stream-id") == 0)
        {
            o->stream = argv[++i];
        }
        else if (strcmp(a, "--bus-dir") == 0)
        {
            o->bus_dir = argv[++i];
        }
        else if (strcmp(a, "--duration") == 0)
        {
            if (tp_cli_parse_double(argv[++i], 0.001, 1e9, &o->duration) < 0)
            {
                return tp_cli_fail(-1, cmd, "--duration: %s", tp_errmsg());
            }
        }
        else if (strcmp(a, "--count") == 0)
        {
            if (tp_cli_parse_u64(argv[++i], 1, UINT64_MAX, &o->count) < 0)
            {
                return tp_cli_fail(-1, cmd, "--count: %s", tp_errmsg());
            }
        }
        else if (strcmp(a, "--json") == 0)
        {
            o->json = true;
        }
        else if (a[0] == '-')
        {
            return tp_cli_fail(-1, cmd, "unknown option '%s' (see tp listen --help)", a);
        }
        else if (o->what == NULL)
        {
            o->what = a;
        }
        else
        {
            return tp_cli_fail(-1, cmd, "one stream kind only ('%s' and '%s' given)", o->what, a);
        }
    }
    if (o->what == NULL)
    {
        listen_usage(stderr);
        return -1;
    }
    return 0;
}

/* The streams the kind names (every kind for `all`, each distinct stream once); -1 (printed) for a bad kind or
 * an override that does not fit it. */
static int listen_streams(const listen_args_t *o, listen_stream_t *streams, size_t *count)
{
    const char *cmd = "listen";
    size_t n = 0;
    bool all = strcmp(o->what, "all") == 0;
    if (all && (o->channel != NULL || o->stream != NULL))
    {
        return tp_cli_fail(-1, cmd, "--channel and --stream-id name one stream; not with 'all'");
    }
    for (size_t t = 0; t < TARGET_COUNT; t++)
    {
        if (!all && strcmp(o->what, targets[t].name) != 0)
        {
            continue;
        }
        if (resolve(&streams[n], &targets[t], o->channel, o->stream) < 0)
        {
            return tp_cli_fail(-1, cmd, "%s", tp_errmsg());
        }
        /* With `all`, a stream shared by two kinds (announces on the control stream) is read once. */
        bool is_duplicate = false;
        for (size_t k = 0; k < n; k++)
        {
            is_duplicate |= streams[k].stream_id == streams[n].stream_id &&
                            strcmp(streams[k].channel, streams[n].channel) == 0;
        }
        n += is_duplicate ? 0 : 1;
    }
    if (n == 0)
    {
        return tp_cli_fail(-1, cmd, "unknown stream kind '%s' (announce, control, descriptors, metadata, qos or all)",
            o->what);
    }
    *count = n;
    return 0;
}

/* Print what arrives until the duration, the count or a signal. */
static void listen_loop(listen_state_t *s, listen_stream_t *streams, size_t n, double duration)
{
    int64_t start = tp_clock_monotonic_ns();
    int64_t end = duration > 0 ? start + (int64_t)(duration * 1e9) : INT64_MAX;
    while (!tp_cli_stop_requested() && tp_clock_monotonic_ns() < end && (s->limit == 0 || s->messages < s->limit))
    {
        int work = 0;
        for (size_t i = 0; i < n && (s->limit == 0 || s->messages < s->limit); i++)
        {
            s->stream_id = streams[i].stream_id;
            /* One message at a time when counting, so that --count stops exactly. */
            int got = tp_bus_poll(streams[i].sub, on_message, s, s->limit != 0 ? 1 : 64);
            work += got > 0 ? got : 0;
        }
        if (work == 0)
        {
            usleep(1000);
        }
    }
    fprintf(stderr, "tp listen: %" PRIu64 " messages (%" PRIu64 " unknown, %" PRIu64 " malformed) in %.1f s\n",
        s->messages, s->unknown, s->malformed, (double)(tp_clock_monotonic_ns() - start) / 1e9);
}

int tp_cmd_listen(int argc, char **argv)
{
    const char *cmd = "listen";
    listen_args_t o;
    int parsed = listen_parse(argc, argv, &o);
    if (parsed != 0)
    {
        return parsed > 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    listen_stream_t streams[LISTEN_MAX_STREAMS];
    memset(streams, 0, sizeof(streams));
    size_t n = 0;
    if (listen_streams(&o, streams, &n) < 0)
    {
        return TP_EXIT_USAGE;
    }
    listen_state_t s;
    memset(&s, 0, sizeof(s));
    s.json = o.json;
    s.announces_only = strcmp(o.what, "announce") == 0;
    s.limit = o.count;
    tp_strbuf_init(&s.line);
    tp_bus_t *bus = NULL;
    int status = TP_EXIT_OK;
    if (tp_bus_init_existing(&bus, o.bus_dir) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
        goto done;
    }
    for (size_t i = 0; i < n; i++)
    {
        if (tp_bus_subscription_open(&streams[i].sub, bus, streams[i].channel, (int32_t)streams[i].stream_id, NULL,
                NULL, NULL) < 0)
        {
            status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s stream %" PRIu32 " on %s: %s", streams[i].target->name,
                streams[i].stream_id, streams[i].channel, tp_errmsg());
            goto done;
        }
        fprintf(stderr, "tp listen: %s on %s stream %" PRIu32 " (bus %s)\n", streams[i].target->name,
            streams[i].channel, streams[i].stream_id, tp_bus_dir(bus));
    }
    tp_cli_install_stop_handlers();
    listen_loop(&s, streams, n, o.duration);
done:
    for (size_t i = 0; i < n; i++)
    {
        tp_bus_subscription_close(streams[i].sub);
    }
    tp_bus_close(bus);
    tp_strbuf_fini(&s.line);
    return status;
}
