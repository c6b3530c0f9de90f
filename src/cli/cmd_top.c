/*
 * `tp top`: a live table of every stream of a driver, refreshed every second: producer, epoch, consumers (from
 * the driver's status file), frames/s and bytes/s (from the descriptors on the bus, each frame's length read from
 * its header slot), drops (from QosConsumer, when consumers send it) and the age of the last announce.
 * Plain ANSI output that works over ssh; `q` or Ctrl-C quits; `--once` prints one snapshot for scripts.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_json.h"
#include "core/tp_strbuf.h"
#include "driver/tp_driver_internal.h"
#include "shm/tp_header_ring.h"
#include "shm/tp_region_uri.h"
#include "shm/tp_shm_path.h"
#include "tensorpool/tp_bus.h"
#include "tp_sbe_wire.h"
#include "wire/tp_sbe.h"

#define TOP_MAX_STREAMS 256
#define TOP_MAX_CONSUMERS 32
#define TOP_QOS_STALE_NS (5 * TP_NS_PER_S)
#define TOP_CHANNEL TP_BUS_DEFAULT_CHANNEL

typedef struct top_stream
{
    uint32_t stream_id;
    char name[64];
    uint64_t epoch;
    uint32_t producer_client_id;
    uint32_t consumers;
    char header_path[TP_PATH_MAX]; /* of the newest epoch known (announce or status file) */
    uint64_t header_epoch;
    bool in_status; /* listed by the latest status file */
    /* the mapped header ring (for frame lengths) */
    uint8_t *ring;
    size_t ring_bytes;
    uint64_t ring_epoch;
    uint32_t ring_nslots;
    /* counted since the last refresh */
    uint64_t frames;
    uint64_t bytes;
    double fps;
    double bps;
    /* announces and QoS (the latest report of each consumer) */
    int64_t last_announce_ns;
    struct
    {
        uint32_t consumer_id;
        uint64_t drops_gap;
        uint64_t drops_late;
        int64_t seen_ns;
    } qos[TOP_MAX_CONSUMERS];
    size_t qos_count;
} top_stream_t;

typedef struct top
{
    const char *bus_dir;
    uint32_t control_stream_id;
    tp_bus_t *bus;
    tp_bus_subscription_t *announces;
    tp_bus_subscription_t *descriptors;
    tp_bus_subscription_t *qos;
    tp_shm_allowed_dirs_t allowed;
    bool has_allowed;
    char driver_line[1400];
    bool driver_running;
    top_stream_t streams[TOP_MAX_STREAMS];
    size_t count;
    int64_t window_start_ns;
    uint64_t unknown_descriptors;
} top_t;

static void top_usage(FILE *out)
{
    fprintf(out,
        "usage: tp top [--once] [--interval S] [--bus-dir DIR] [--control-stream-id N]\n\n"
        "A live table of the driver's streams, refreshed every second: epoch, producer, consumers, frames/s,\n"
        "MiB/s, drops reported by consumers (QosConsumer), and the age of the last ShmPoolAnnounce. It reads the\n"
        "driver's status file and listens to the announce, descriptor (1100) and QoS (1200) streams; frame sizes\n"
        "come from the header slots, mapped read-only. Plain ANSI: works in any terminal over ssh. q or Ctrl-C\n"
        "quits.\n\n"
        "options:\n"
        "  --once             sample for one interval, print one table without escape codes, exit\n"
        "  --interval S       refresh (or sampling) period in seconds [1]\n"
        "  --bus-dir DIR      the bus directory ($TP_BUS_DIR, else /dev/shm/tensorpool-$USER/bus)\n"
        "  --control-stream-id N  the driver's control stream ($TP_CONTROL_STREAM_ID, else 1000)\n"
        "environment: TP_DESCRIPTOR_STREAM_ID (1100), TP_QOS_STREAM_ID (1200).\n\n"
        "example:\n"
        "  tp top --once\n\n"
        "exit status: 0; 1 no driver status could be read; 2 bad arguments.\n");
}

static top_stream_t *find_stream(top_t *t, uint32_t stream_id, bool create)
{
    for (size_t i = 0; i < t->count; i++)
    {
        if (t->streams[i].stream_id == stream_id)
        {
            return &t->streams[i];
        }
    }
    if (!create || t->count == TOP_MAX_STREAMS)
    {
        return NULL;
    }
    top_stream_t *s = &t->streams[t->count++];
    memset(s, 0, sizeof(*s));
    s->stream_id = stream_id;
    return s;
}

static void unmap_ring(top_stream_t *s)
{
    if (s->ring != NULL)
    {
        munmap(s->ring, s->ring_bytes);
        s->ring = NULL;
    }
}

/* Remember where the header ring of an epoch is (the newest epoch wins). */
static void learn_header(top_stream_t *s, uint64_t epoch, const char *path)
{
    if (epoch >= s->header_epoch && path[0] != '\0')
    {
        s->header_epoch = epoch;
        snprintf(s->header_path, sizeof(s->header_path), "%s", path);
    }
}

/* Map the stream's newest header ring read-only (through the containment rules), for frame lengths. */
static void map_ring(top_t *t, top_stream_t *s)
{
    if ((s->ring != NULL && s->ring_epoch == s->header_epoch) || !t->has_allowed || s->header_path[0] == '\0')
    {
        return;
    }
    unmap_ring(s);
    int fd = tp_shm_open_contained(&t->allowed, s->header_path, O_RDONLY);
    if (fd < 0)
    {
        return;
    }
    struct stat st;
    uint8_t sb_raw[TP_SUPERBLOCK_BYTES];
    tp_superblock_t sb;
    if (fstat(fd, &st) == 0 && st.st_size >= TP_SUPERBLOCK_BYTES &&
        pread(fd, sb_raw, sizeof(sb_raw), 0) == (ssize_t)sizeof(sb_raw))
    {
        tp_superblock_read(sb_raw, &sb);
        uint64_t need = TP_SUPERBLOCK_BYTES + (uint64_t)sb.nslots * TP_HEADER_SLOT_BYTES;
        if (sb.magic == TP_SUPERBLOCK_MAGIC && sb.region_type == TP_REGION_HEADER_RING &&
            tp_shm_nslots_is_valid(sb.nslots) && (uint64_t)st.st_size >= need)
        {
            void *p = mmap(NULL, (size_t)need, PROT_READ, MAP_SHARED, fd, 0);
            if (p != MAP_FAILED)
            {
                s->ring = p;
                s->ring_bytes = (size_t)need;
                s->ring_epoch = sb.epoch;
                s->ring_nslots = sb.nslots;
            }
        }
    }
    close(fd);
}

static uint64_t json_u64(const tp_json_t *o, const char *key)
{
    uint64_t v = 0;
    const tp_json_t *n = tp_json_get(o, key);
    if (n != NULL)
    {
        tp_json_to_u64(n, &v);
    }
    return v;
}

static const char *json_str(const tp_json_t *o, const char *key)
{
    const tp_json_t *n = tp_json_get(o, key);
    return n != NULL && n->type == TP_JSON_STRING ? n->text : "";
}

/* Read the driver's status file: the streams, their epochs, producers and consumers. */
static int read_status(top_t *t)
{
    char path[1024];
    tp_driver_status_path(path, sizeof(path), tp_bus_dir(t->bus), t->control_stream_id);
    uint8_t *text = NULL;
    size_t length = 0;
    tp_json_t *doc = NULL;
    if (tp_fs_read_file(path, 1u << 24, &text, &length) < 0 || tp_json_parse(&doc, (const char *)text, length) < 0)
    {
        snprintf(t->driver_line, sizeof(t->driver_line), "no driver status at %s", path);
        t->driver_running = false;
        tp_free(text);
        return -1;
    }
    tp_free(text);
    uint64_t pid = json_u64(doc, "pid");
    t->driver_running = strcmp(json_str(doc, "state"), "running") == 0 && pid > 0 &&
                        (kill((pid_t)pid, 0) == 0 || errno == EPERM);
    snprintf(t->driver_line, sizeof(t->driver_line), "driver %s, pid %" PRIu64 " (%s), control stream %" PRIu32,
        json_str(doc, "instance_id"), pid, t->driver_running ? "running" : "not running", t->control_stream_id);
    const char *base = json_str(doc, "base_dir");
    if (!t->has_allowed && base[0] != '\0')
    {
        const char *dirs[1] = { base };
        t->has_allowed = tp_shm_allowed_dirs_init(&t->allowed, dirs, 1) == 0;
    }
    if (t->announces == NULL)
    {
        const char *channel = json_str(doc, "announce_channel");
        uint64_t stream = json_u64(doc, "announce_stream_id");
        tp_bus_subscription_open(&t->announces, t->bus, channel[0] != '\0' ? channel : TOP_CHANNEL,
            (int32_t)(stream != 0 ? stream : t->control_stream_id), NULL, NULL, NULL);
    }
    for (size_t i = 0; i < t->count; i++)
    {
        t->streams[i].in_status = false;
    }
    const tp_json_t *streams = tp_json_get(doc, "streams");
    for (size_t i = 0; streams != NULL && i < streams->count; i++)
    {
        const tp_json_t *o = tp_json_at(streams, i);
        top_stream_t *s = find_stream(t, (uint32_t)json_u64(o, "stream_id"), true);
        if (s == NULL)
        {
            break;
        }
        s->in_status = true;
        snprintf(s->name, sizeof(s->name), "%s", json_str(o, "name"));
        s->epoch = json_u64(o, "epoch");
        s->producer_client_id = (uint32_t)json_u64(o, "producer_client_id");
        s->consumers = (uint32_t)json_u64(o, "consumers");
        char header[TP_PATH_MAX];
        snprintf(header, sizeof(header), "%.4000s/header.ring", json_str(o, "epoch_dir"));
        learn_header(s, s->epoch, header);
        map_ring(t, s);
    }
    tp_json_free(doc);
    return 0;
}

static void on_announce(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    top_t *t = clientd;
    tp_sbe_header_t h;
    tp_wire_shm_pool_announce_t m;
    if (tp_sbe_header_read(&h, buffer, length) == 0 && h.schema_id == TP_WIRE_SCHEMA_ID &&
        h.template_id == TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID &&
        tp_wire_shm_pool_announce_decode(&m, buffer, length) == 0)
    {
        top_stream_t *s = find_stream(t, tp_wire_shm_pool_announce_stream_id(&m), true);
        if (s != NULL)
        {
            s->last_announce_ns = tp_clock_monotonic_ns();
            /* The announce names the epoch's header ring at once (the status file follows within a second). */
            tp_sbe_bytes_t uri_bytes = tp_wire_shm_pool_announce_header_region_uri(&m);
            tp_region_uri_t uri;
            if (tp_region_uri_parse(&uri, (const char *)uri_bytes.data, uri_bytes.length) == 0)
            {
                learn_header(s, tp_wire_shm_pool_announce_epoch(&m), uri.path);
                map_ring(t, s);
            }
        }
    }
}

static void on_descriptor(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    top_t *t = clientd;
    tp_sbe_header_t h;
    tp_wire_frame_descriptor_t m;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID ||
        h.template_id != TP_WIRE_FRAME_DESCRIPTOR_TEMPLATE_ID ||
        tp_wire_frame_descriptor_decode(&m, buffer, length) < 0)
    {
        t->unknown_descriptors++;
        return;
    }
    top_stream_t *s = find_stream(t, tp_wire_frame_descriptor_stream_id(&m), true);
    if (s == NULL)
    {
        return;
    }
    s->frames++;
    uint64_t seq = tp_wire_frame_descriptor_seq(&m);
    if (s->ring != NULL && tp_wire_frame_descriptor_epoch(&m) == s->ring_epoch)
    {
        const uint8_t *slot =
            s->ring + TP_SUPERBLOCK_BYTES + (size_t)(seq & (s->ring_nslots - 1)) * TP_HEADER_SLOT_BYTES;
        s->bytes += tp_sbe_get_u32(slot + TP_WIRE_SLOT_HEADER_VALUES_LEN_BYTES_OFFSET);
    }
}

static void on_qos(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    top_t *t = clientd;
    tp_sbe_header_t h;
    tp_wire_qos_consumer_t m;
    if (tp_sbe_header_read(&h, buffer, length) == 0 && h.schema_id == TP_WIRE_SCHEMA_ID &&
        h.template_id == TP_WIRE_QOS_CONSUMER_TEMPLATE_ID && tp_wire_qos_consumer_decode(&m, buffer, length) == 0)
    {
        top_stream_t *s = find_stream(t, tp_wire_qos_consumer_stream_id(&m), true);
        if (s != NULL)
        {
            uint32_t id = tp_wire_qos_consumer_consumer_id(&m);
            size_t i = 0;
            while (i < s->qos_count && s->qos[i].consumer_id != id)
            {
                i++;
            }
            if (i == s->qos_count && s->qos_count < TOP_MAX_CONSUMERS)
            {
                s->qos_count++;
            }
            if (i < s->qos_count)
            {
                s->qos[i].consumer_id = id;
                s->qos[i].drops_gap = tp_wire_qos_consumer_drops_gap(&m);
                s->qos[i].drops_late = tp_wire_qos_consumer_drops_late(&m);
                s->qos[i].seen_ns = tp_clock_monotonic_ns();
            }
        }
    }
}

static void render(top_t *t, tp_strbuf_t *b, bool ansi, double window_s)
{
    if (ansi)
    {
        tp_strbuf_puts(b, "\033[H\033[2J");
    }
    tp_strbuf_printf(b, "tp top: %s, bus %s\n\n", t->driver_line, tp_bus_dir(t->bus));
    tp_strbuf_printf(b, "%-8s %-16s %-6s %-10s %-9s %-10s %-9s %-12s %s\n", "STREAM", "NAME", "EPOCH", "PRODUCER",
        "CONSUMERS", "FRAMES/S", "MIB/S", "DROPS", "ANNOUNCED");
    int64_t now = tp_clock_monotonic_ns();
    for (size_t i = 0; i < t->count; i++)
    {
        top_stream_t *s = &t->streams[i];
        s->fps = (double)s->frames / window_s;
        s->bps = (double)s->bytes / window_s;
        char producer[32], drops[32], announced[32];
        snprintf(producer, sizeof(producer), s->producer_client_id != 0 ? "client %" PRIu32 : "-",
            s->producer_client_id);
        uint64_t gap = 0, late = 0;
        size_t reporting = 0;
        for (size_t k = 0; k < s->qos_count; k++)
        {
            if (now - s->qos[k].seen_ns < TOP_QOS_STALE_NS) /* consumers still reporting */
            {
                gap += s->qos[k].drops_gap;
                late += s->qos[k].drops_late;
                reporting++;
            }
        }
        if (reporting > 0)
        {
            snprintf(drops, sizeof(drops), "%" PRIu64 "/%" PRIu64, gap, late);
        }
        else
        {
            snprintf(drops, sizeof(drops), "-");
        }
        if (s->last_announce_ns != 0)
        {
            snprintf(announced, sizeof(announced), "%.1f s ago", (double)(now - s->last_announce_ns) / 1e9);
        }
        else
        {
            snprintf(announced, sizeof(announced), "-");
        }
        char fps[32], mibs[32];
        if (window_s >= 0.05)
        {
            snprintf(fps, sizeof(fps), "%.1f", s->fps);
            snprintf(mibs, sizeof(mibs), "%.1f", s->bps / (1024.0 * 1024.0));
        }
        else
        {
            snprintf(fps, sizeof(fps), "..."); /* the first screen, before any sampling */
            snprintf(mibs, sizeof(mibs), "...");
        }
        tp_strbuf_printf(b, "%-8" PRIu32 " %-16s %-6" PRIu64 " %-10s %-9" PRIu32 " %-10s %-9s %-12s %s\n",
            s->stream_id, s->in_status ? s->name : "(not the driver's)", s->epoch, producer, s->consumers, fps, mibs,
            drops, announced);
        s->frames = 0;
        s->bytes = 0;
    }
    if (t->count == 0)
    {
        tp_strbuf_puts(b, "(no streams)\n");
    }
    if (ansi)
    {
        tp_strbuf_puts(b, "\nq quits; DROPS = gaps/late, summed over the consumers' latest QosConsumer reports\n");
    }
}

static int parse_args(int argc, char **argv, top_t *t, bool *once, double *interval)
{
    const char *cmd = "top";
    const char *env = getenv("TP_CONTROL_STREAM_ID");
    uint64_t v = 1000;
    if (env != NULL && tp_cli_parse_u64(env, 1, INT32_MAX, &v) < 0)
    {
        return tp_cli_fail(-1, cmd, "TP_CONTROL_STREAM_ID: %s", tp_errmsg());
    }
    t->control_stream_id = (uint32_t)v;
    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        if (tp_cli_is_help(a))
        {
            top_usage(stdout);
            return 1;
        }
        if (strcmp(a, "--once") == 0)
        {
            *once = true;
            continue;
        }
        if (strcmp(a, "--interval") != 0 && strcmp(a, "--bus-dir") != 0 && strcmp(a, "--control-stream-id") != 0)
        {
            return tp_cli_fail(-1, cmd, "unknown option '%s' (see tp top --help)", a);
        }
        if (i + 1 >= argc)
        {
            return tp_cli_fail(-1, cmd, "%s needs a value (see tp top --help)", a);
        }
        const char *val = argv[++i];
        if (strcmp(a, "--interval") == 0 && tp_cli_parse_double(val, 0.05, 3600, interval) < 0)
        {
            return tp_cli_fail(-1, cmd, "--interval: %s", tp_errmsg());
        }
        if (strcmp(a, "--bus-dir") == 0)
        {
            t->bus_dir = val;
        }
        if (strcmp(a, "--control-stream-id") == 0)
        {
            if (tp_cli_parse_u64(val, 1, INT32_MAX, &v) < 0)
            {
                return tp_cli_fail(-1, cmd, "--control-stream-id: %s", tp_errmsg());
            }
            t->control_stream_id = (uint32_t)v;
        }
    }
    return 0;
}

static uint32_t env_stream(const char *name, uint32_t fallback)
{
    uint64_t v;
    const char *e = getenv(name);
    return e != NULL && tp_cli_parse_u64(e, 1, INT32_MAX, &v) == 0 ? (uint32_t)v : fallback;
}

/* true if `q` was typed (stdin in non-canonical mode). */
static bool quit_typed(void)
{
    char c;
    while (read(STDIN_FILENO, &c, 1) == 1)
    {
        if (c == 'q' || c == 'Q')
        {
            return true;
        }
    }
    return false;
}

int tp_cmd_top(int argc, char **argv)
{
    const char *cmd = "top";
    static top_t t;
    memset(&t, 0, sizeof(t));
    bool once = false;
    double interval = 1.0;
    int rc = parse_args(argc, argv, &t, &once, &interval);
    if (rc != 0)
    {
        return rc > 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    if (tp_bus_init_existing(&t.bus, t.bus_dir) < 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
    }
    int status = TP_EXIT_OK;
    if (tp_bus_subscription_open(&t.descriptors, t.bus, TOP_CHANNEL,
            (int32_t)env_stream("TP_DESCRIPTOR_STREAM_ID", 1100), NULL, NULL, NULL) < 0 ||
        tp_bus_subscription_open(&t.qos, t.bus, TOP_CHANNEL, (int32_t)env_stream("TP_QOS_STREAM_ID", 1200), NULL,
            NULL, NULL) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
        goto done;
    }
    if (read_status(&t) < 0 && once)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s (is a driver running with this bus directory?)", t.driver_line);
        goto done;
    }
    struct termios saved;
    bool is_tty = !once && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (is_tty)
    {
        struct termios raw = saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    tp_cli_install_stop_handlers();
    tp_strbuf_t b;
    tp_strbuf_init(&b);
    int64_t window_start = tp_clock_monotonic_ns();
    /* Interactive: the first screen at once; then one per interval. */
    int64_t next = once ? window_start + (int64_t)(interval * 1e9) : window_start;
    for (;;)
    {
        int work = tp_bus_poll(t.descriptors, on_descriptor, &t, 256);
        work += tp_bus_poll(t.qos, on_qos, &t, 64);
        if (t.announces != NULL)
        {
            work += tp_bus_poll(t.announces, on_announce, &t, 64);
        }
        int64_t now = tp_clock_monotonic_ns();
        if (now >= next)
        {
            read_status(&t);
            render(&t, &b, !once, (double)(now - window_start) / 1e9);
            fputs(tp_strbuf_cstr(&b), stdout);
            fflush(stdout);
            tp_strbuf_reset(&b);
            if (once)
            {
                break;
            }
            window_start = now;
            next = now + (int64_t)(interval * 1e9);
        }
        if (tp_cli_stop_requested() || (is_tty && quit_typed()))
        {
            break;
        }
        if (work <= 0)
        {
            usleep(1000);
        }
    }
    tp_strbuf_fini(&b);
    if (is_tty)
    {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    }
done:
    for (size_t i = 0; i < t.count; i++)
    {
        unmap_ring(&t.streams[i]);
    }
    if (t.has_allowed)
    {
        tp_shm_allowed_dirs_fini(&t.allowed);
    }
    tp_bus_subscription_close(t.announces);
    tp_bus_subscription_close(t.descriptors);
    tp_bus_subscription_close(t.qos);
    tp_bus_close(t.bus);
    return status;
}
