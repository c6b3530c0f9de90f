/* The model `tp top` and `tp web` watch; see tp_cli_monitor.h. */
#include "cli/tp_cli_monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_json.h"
#include "driver/tp_driver_internal.h"
#include "driver/tp_driver_status.h"
#include "shm/tp_header_ring.h"
#include "shm/tp_region_uri.h"
#include "tp_sbe_wire.h"
#include "wire/tp_sbe.h"

static tp_monitor_stream_t *find_stream(tp_monitor_t *t, uint32_t stream_id, bool create)
{
    for (size_t i = 0; i < t->count; i++)
    {
        if (t->streams[i].stream_id == stream_id)
        {
            return &t->streams[i];
        }
    }
    if (!create || t->count == TP_MONITOR_MAX_STREAMS)
    {
        return NULL;
    }
    tp_monitor_stream_t *s = &t->streams[t->count++];
    memset(s, 0, sizeof(*s));
    s->stream_id = stream_id;
    return s;
}

static void unmap_ring(tp_monitor_stream_t *s)
{
    if (s->ring != NULL)
    {
        munmap(s->ring, s->ring_bytes);
        s->ring = NULL;
    }
}

/* Remember where the header ring of an epoch is (the newest epoch wins). */
static void learn_header(tp_monitor_stream_t *s, uint64_t epoch, const char *path)
{
    if (epoch >= s->header_epoch && path[0] != '\0')
    {
        s->header_epoch = epoch;
        snprintf(s->header_path, sizeof(s->header_path), "%s", path);
    }
}

/* Map the stream's newest header ring read-only (through the containment rules), for frame lengths. */
static void map_ring(tp_monitor_t *t, tp_monitor_stream_t *s)
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
int tp_monitor_read_status(tp_monitor_t *t)
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
    char shm[256];
    tp_cli_format_shm_use(shm, sizeof(shm), doc, json_str(doc, "base_dir"));
    snprintf(t->driver_line, sizeof(t->driver_line), "driver %s, pid %" PRIu64 " (%s), control stream %" PRIu32 "%s%s",
        json_str(doc, "instance_id"), pid, t->driver_running ? "running" : "not running", t->control_stream_id,
        shm[0] != '\0' ? ", " : "", shm);
    snprintf(t->instance_id, sizeof(t->instance_id), "%s", json_str(doc, "instance_id"));
    t->driver_pid = pid;
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
        tp_bus_subscription_open(&t->announces, t->bus, channel[0] != '\0' ? channel : TP_BUS_DEFAULT_CHANNEL,
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
        tp_monitor_stream_t *s = find_stream(t, (uint32_t)json_u64(o, "stream_id"), true);
        if (s == NULL)
        {
            break;
        }
        s->in_status = true;
        snprintf(s->name, sizeof(s->name), "%s", json_str(o, "name"));
        s->epoch = json_u64(o, "epoch");
        s->producer_client_id = (uint32_t)json_u64(o, "producer_client_id");
        s->consumers = (uint32_t)json_u64(o, "consumers");
        s->header_nslots = (uint32_t)json_u64(o, "header_nslots");
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
    tp_monitor_t *t = clientd;
    tp_sbe_header_t h;
    tp_wire_shm_pool_announce_t m;
    if (tp_sbe_header_read(&h, buffer, length) == 0 && h.schema_id == TP_WIRE_SCHEMA_ID &&
        h.template_id == TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID &&
        tp_wire_shm_pool_announce_decode(&m, buffer, length) == 0)
    {
        tp_monitor_stream_t *s = find_stream(t, tp_wire_shm_pool_announce_stream_id(&m), true);
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
    tp_monitor_t *t = clientd;
    tp_sbe_header_t h;
    tp_wire_frame_descriptor_t m;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID ||
        h.template_id != TP_WIRE_FRAME_DESCRIPTOR_TEMPLATE_ID ||
        tp_wire_frame_descriptor_decode(&m, buffer, length) < 0)
    {
        t->unknown_descriptors++;
        return;
    }
    tp_monitor_stream_t *s = find_stream(t, tp_wire_frame_descriptor_stream_id(&m), true);
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
    tp_monitor_t *t = clientd;
    tp_sbe_header_t h;
    tp_wire_qos_consumer_t m;
    if (tp_sbe_header_read(&h, buffer, length) == 0 && h.schema_id == TP_WIRE_SCHEMA_ID &&
        h.template_id == TP_WIRE_QOS_CONSUMER_TEMPLATE_ID && tp_wire_qos_consumer_decode(&m, buffer, length) == 0)
    {
        tp_monitor_stream_t *s = find_stream(t, tp_wire_qos_consumer_stream_id(&m), true);
        if (s != NULL)
        {
            uint32_t id = tp_wire_qos_consumer_consumer_id(&m);
            size_t i = 0;
            while (i < s->qos_count && s->qos[i].consumer_id != id)
            {
                i++;
            }
            if (i == s->qos_count && s->qos_count < TP_MONITOR_MAX_CONSUMERS)
            {
                s->qos_count++;
            }
            if (i < s->qos_count)
            {
                s->qos[i].consumer_id = id;
                s->qos[i].epoch = tp_wire_qos_consumer_epoch(&m);
                s->qos[i].last_seq = tp_wire_qos_consumer_last_seq_seen(&m);
                s->qos[i].drops_gap = tp_wire_qos_consumer_drops_gap(&m);
                s->qos[i].drops_late = tp_wire_qos_consumer_drops_late(&m);
                s->qos[i].mode = tp_wire_qos_consumer_mode(&m);
                s->qos[i].seen_ns = tp_clock_monotonic_ns();
            }
        }
    }
}

static uint32_t env_stream(const char *name, uint32_t fallback)
{
    uint64_t v;
    const char *e = tp_cli_getenv(name);
    return e != NULL && tp_cli_parse_u64(e, 1, INT32_MAX, &v) == 0 ? (uint32_t)v : fallback;
}

int tp_monitor_open(tp_monitor_t *m, const char *bus_dir, uint32_t control_stream_id)
{
    memset(m, 0, sizeof(*m));
    m->control_stream_id = control_stream_id;
    if (tp_bus_init_existing(&m->bus, bus_dir) < 0 ||
        tp_bus_subscription_open(&m->descriptors, m->bus, TP_BUS_DEFAULT_CHANNEL,
            (int32_t)env_stream("DESCRIPTOR_STREAM_ID", 1100), NULL, NULL, NULL) < 0 ||
        tp_bus_subscription_open(&m->qos, m->bus, TP_BUS_DEFAULT_CHANNEL, (int32_t)env_stream("QOS_STREAM_ID", 1200),
            NULL, NULL, NULL) < 0)
    {
        tp_monitor_close(m);
        return -1;
    }
    return 0;
}

void tp_monitor_close(tp_monitor_t *m)
{
    for (size_t i = 0; i < m->count; i++)
    {
        unmap_ring(&m->streams[i]);
    }
    if (m->has_allowed)
    {
        tp_shm_allowed_dirs_fini(&m->allowed);
    }
    tp_bus_subscription_close(m->announces);
    tp_bus_subscription_close(m->descriptors);
    tp_bus_subscription_close(m->qos);
    tp_bus_close(m->bus);
    memset(m, 0, sizeof(*m));
}

int tp_monitor_poll(tp_monitor_t *m)
{
    int work = tp_bus_poll(m->descriptors, on_descriptor, m, 256);
    work += tp_bus_poll(m->qos, on_qos, m, 64);
    if (m->announces != NULL)
    {
        work += tp_bus_poll(m->announces, on_announce, m, 64);
    }
    return work;
}

void tp_monitor_sample(tp_monitor_t *m, double window_s, int64_t now_ns)
{
    for (size_t i = 0; i < m->count; i++)
    {
        tp_monitor_stream_t *s = &m->streams[i];
        s->has_rates = window_s >= 0.05;
        s->fps = s->has_rates ? (double)s->frames / window_s : 0;
        s->bps = s->has_rates ? (double)s->bytes / window_s : 0;
        uint64_t gap = 0;
        uint64_t late = 0;
        size_t reporting = 0;
        for (size_t k = 0; k < s->qos_count; k++)
        {
            if (now_ns - s->qos[k].seen_ns < TP_MONITOR_QOS_STALE_NS) /* consumers still reporting */
            {
                gap += s->qos[k].drops_gap;
                late += s->qos[k].drops_late;
                reporting++;
            }
        }
        uint64_t before = s->drops_gap + s->drops_late;
        s->drops_per_s = s->has_drops && s->has_rates && gap + late >= before ? (double)(gap + late - before) / window_s : 0;
        s->has_drops = reporting > 0;
        s->drops_gap = gap;
        s->drops_late = late;
        if (s->has_rates)
        {
            s->fps_history[s->history_next] = (float)s->fps;
            s->drops_history[s->history_next] = (float)s->drops_per_s;
            s->history_next = (s->history_next + 1) % TP_MONITOR_HISTORY;
            s->history_count += s->history_count < TP_MONITOR_HISTORY ? 1 : 0;
        }
        s->frames = 0;
        s->bytes = 0;
    }
}

static void history_json(tp_strbuf_t *b, const tp_monitor_stream_t *s, const float *values)
{
    tp_strbuf_putc(b, '[');
    uint32_t first = (s->history_next + TP_MONITOR_HISTORY - s->history_count) % TP_MONITOR_HISTORY;
    for (uint32_t k = 0; k < s->history_count; k++)
    {
        tp_strbuf_printf(b, "%s%.1f", k > 0 ? "," : "", (double)values[(first + k) % TP_MONITOR_HISTORY]);
    }
    tp_strbuf_putc(b, ']');
}

void tp_monitor_streams_json(const tp_monitor_t *m, tp_strbuf_t *b, int64_t now_ns)
{
    tp_strbuf_putc(b, '[');
    for (size_t i = 0; i < m->count; i++)
    {
        const tp_monitor_stream_t *s = &m->streams[i];
        tp_strbuf_printf(b, "%s{\"stream_id\":%" PRIu32 ",\"name\":", i > 0 ? "," : "", s->stream_id);
        const char *name = s->in_status ? s->name : "";
        tp_strbuf_json_string(b, name, strlen(name));
        tp_strbuf_printf(b, ",\"in_status\":%s,\"epoch\":%" PRIu64 ",\"producer_client_id\":%" PRIu32
            ",\"consumers\":%" PRIu32 ",\"header_nslots\":%" PRIu32 ",\"frames_per_s\":%.1f,\"mib_per_s\":%.2f,"
            "\"drops_gap\":%" PRIu64 ",\"drops_late\":%" PRIu64 ",\"drops_per_s\":%.1f,\"announce_age_ms\":%" PRId64
            ",\"fps_history\":",
            s->in_status ? "true" : "false", s->epoch, s->producer_client_id, s->consumers, s->header_nslots, s->fps,
            s->bps / (1024.0 * 1024.0), s->drops_gap, s->drops_late, s->drops_per_s,
            (int64_t)(s->last_announce_ns != 0 ? (now_ns - s->last_announce_ns) / TP_NS_PER_MS : -1));
        history_json(b, s, s->fps_history);
        tp_strbuf_puts(b, ",\"drops_history\":");
        history_json(b, s, s->drops_history);
        tp_strbuf_puts(b, ",\"qos\":[");
        size_t n = 0;
        for (size_t k = 0; k < s->qos_count; k++)
        {
            const tp_monitor_consumer_t *c = &s->qos[k];
            if (now_ns - c->seen_ns >= TP_MONITOR_QOS_STALE_NS)
            {
                continue;
            }
            tp_strbuf_printf(b, "%s{\"consumer_id\":%" PRIu32 ",\"mode\":\"%s\",\"epoch\":%" PRIu64
                ",\"last_seq\":%" PRIu64 ",\"drops_gap\":%" PRIu64 ",\"drops_late\":%" PRIu64 ",\"age_ms\":%" PRId64 "}",
                n++ > 0 ? "," : "", c->consumer_id, c->mode == TP_WIRE_MODE_RATE_LIMITED ? "RATE_LIMITED" : "STREAM",
                c->epoch, c->last_seq, c->drops_gap, c->drops_late, (int64_t)((now_ns - c->seen_ns) / TP_NS_PER_MS));
        }
        tp_strbuf_puts(b, "]}");
    }
    tp_strbuf_putc(b, ']');
}
