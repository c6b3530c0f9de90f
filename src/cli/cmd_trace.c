/*
 * `tp trace`: the lineage store. `record` persists every traced FrameDescriptor (shared descriptor stream) and every
 * TraceLinkSet (metadata stream) into SQLite; `show`, `parents`, `children`, `lineage` and `frame` answer the
 * TraceLink spec's section 11 questions from it, as text or JSON.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "cli/tp_lineage.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_trace.h"
#include "tp_sbe_wire.h"

#define BATCH_NS (50 * TP_NS_PER_MS)
#define EXPIRE_EVERY_NS (5 * TP_NS_PER_S)

static void usage(FILE *out)
{
    fprintf(out,
        "usage: tp trace record --db FILE [--retain SECONDS] [--seconds S] [--all] [--bus-dir DIR]\n"
        "                       [--channel URI] [--descriptor-stream-id N] [--metadata-stream-id N]\n"
        "       tp trace show TRACE_ID --db FILE [--json]\n"
        "       tp trace parents|children TRACE_ID --db FILE [--json]\n"
        "       tp trace lineage TRACE_ID --db FILE [--depth N] [--json]\n"
        "       tp trace frame STREAM_ID SEQ --db FILE [--epoch E] [--json]\n\n"
        "record: subscribe to the shared descriptor stream [1100] and the metadata stream [1300] on the channel\n"
        "  [aeron:ipc?term-length=4m] and persist every traced frame (--all: untraced ones too, trace id 0) and\n"
        "  every TraceLinkSet into the SQLite file FILE (created if missing; WAL mode, written in 50 ms batches, so\n"
        "  a killed recorder loses at most its last batch). --retain keeps the last SECONDS of records [3600; 0:\n"
        "  keep everything]. Prints the record rates once a second; stops after --seconds or on Ctrl-C.\n"
        "show: the frames that carry TRACE_ID (one per stream a 1->1 chain passed it through), what the id says\n"
        "  (minted when, by which node), its parents and children.\n"
        "parents / children: the trace ids it was made from / that were made from it (TraceLinkSet).\n"
        "lineage: every ancestor up to --depth hops [64], nearest first, with the frames that carried it.\n"
        "frame: the trace id of a stream's frame (the newest epoch with that seq unless --epoch).\n\n"
        "examples:\n"
        "  tp trace record --db /var/tmp/lineage.db --retain 600\n"
        "  tp trace frame 9000 42 --db /var/tmp/lineage.db\n"
        "  tp trace lineage 81604378624311297 --db /var/tmp/lineage.db --json\n\n"
        "exit status: 0 done (a query that finds nothing too, with an empty answer); 1 the bus or the database\n"
        "failed; 2 bad arguments.\n");
}

typedef struct trace_options
{
    const char *verb;
    const char *db_path;
    uint64_t ids[2];
    uint32_t id_count;
    bool has_epoch;
    uint64_t epoch;
    uint64_t depth;
    uint64_t retain_s;
    double seconds;
    bool is_json;
    bool is_all;
    const char *bus_dir;
    const char *channel;
    uint64_t descriptor_stream_id;
    uint64_t metadata_stream_id;
} trace_options_t;

static int parse(int argc, char **argv, trace_options_t *o)
{
    const char *cmd = "trace";
    o->verb = argv[1];
    bool is_record = strcmp(o->verb, "record") == 0;
    uint32_t want_ids = is_record ? 0 : strcmp(o->verb, "frame") == 0 ? 2 : 1;
    if (!is_record && strcmp(o->verb, "show") != 0 && strcmp(o->verb, "parents") != 0 &&
        strcmp(o->verb, "children") != 0 && strcmp(o->verb, "lineage") != 0 && strcmp(o->verb, "frame") != 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown action '%s' (record, show, parents, children, lineage, frame)",
            o->verb);
    }
    for (int i = 2; i < argc; i++)
    {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (a[0] != '-' && o->id_count < want_ids)
        {
            rc = tp_cli_parse_u64(a, 0, UINT64_MAX, &o->ids[o->id_count++]);
            if (rc < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, cmd, "'%s' is not a number: %s", a, tp_errmsg());
            }
            continue;
        }
        if (strcmp(a, "--json") == 0 || strcmp(a, "--all") == 0)
        {
            *(a[2] == 'j' ? &o->is_json : &o->is_all) = true;
            continue;
        }
        if (v == NULL)
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown argument '%s', or it lacks its value (see tp trace --help)", a);
        }
        if (strcmp(a, "--db") == 0)
        {
            o->db_path = v;
        }
        else if (strcmp(a, "--epoch") == 0)
        {
            rc = tp_cli_parse_u64(v, 0, UINT64_MAX - 1, &o->epoch);
            o->has_epoch = true;
        }
        else if (strcmp(a, "--depth") == 0)
        {
            rc = tp_cli_parse_u64(v, 1, 10000, &o->depth);
        }
        else if (strcmp(a, "--retain") == 0 && is_record)
        {
            rc = tp_cli_parse_u64(v, 0, UINT32_MAX, &o->retain_s);
        }
        else if (strcmp(a, "--seconds") == 0 && is_record)
        {
            rc = tp_cli_parse_double(v, 0.001, 1e9, &o->seconds);
        }
        else if (strcmp(a, "--bus-dir") == 0 && is_record)
        {
            o->bus_dir = v;
        }
        else if (strcmp(a, "--channel") == 0 && is_record)
        {
            o->channel = v;
        }
        else if (strcmp(a, "--descriptor-stream-id") == 0 && is_record)
        {
            rc = tp_cli_parse_u64(v, 1, INT32_MAX, &o->descriptor_stream_id);
        }
        else if (strcmp(a, "--metadata-stream-id") == 0 && is_record)
        {
            rc = tp_cli_parse_u64(v, 1, INT32_MAX, &o->metadata_stream_id);
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown option '%s' for '%s' (see tp trace --help)", a, o->verb);
        }
        if (rc < 0)
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s: %s", a, tp_errmsg());
        }
        i++;
    }
    if (o->db_path == NULL)
    {
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s needs --db FILE", o->verb);
    }
    if (o->id_count < want_ids)
    {
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s needs %s", o->verb,
            want_ids == 2 ? "STREAM_ID and SEQ" : "a TRACE_ID");
    }
    return TP_EXIT_OK;
}

/* ---- record ---- */

typedef struct recorder
{
    tp_lineage_t *db;
    bool is_all;
    bool has_failed;
    uint64_t frames;
    uint64_t links;
    uint64_t invalid;
} recorder_t;

static void on_descriptor(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    recorder_t *r = clientd;
    tp_sbe_header_t h;
    tp_wire_frame_descriptor_t m;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID ||
        h.template_id != TP_WIRE_FRAME_DESCRIPTOR_TEMPLATE_ID || tp_wire_frame_descriptor_decode(&m, buffer, length) < 0)
    {
        return;
    }
    uint64_t trace_id = tp_wire_frame_descriptor_has_trace_id(&m) ? tp_wire_frame_descriptor_trace_id(&m) : 0;
    if (trace_id == 0 && !r->is_all)
    {
        return;
    }
    tp_lineage_frame_t f = { .stream_id = tp_wire_frame_descriptor_stream_id(&m),
        .epoch = tp_wire_frame_descriptor_epoch(&m), .seq = tp_wire_frame_descriptor_seq(&m),
        .stage_id = (uint32_t)header->session_id, .t_ns = tp_clock_realtime_ns(), .trace_id = trace_id };
    if (tp_lineage_add_frame(r->db, &f) < 0)
    {
        r->has_failed = true;
        return;
    }
    r->frames++;
}

static void on_metadata(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    recorder_t *r = clientd;
    tp_sbe_header_t h;
    tp_trace_link_t link;
    /* T-13-1: metadata of other schemas shares the stream; only TraceLinkSet is decoded. */
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != 904)
    {
        return;
    }
    if (tp_trace_link_decode(&link, buffer, length) < 0)
    {
        r->invalid++;
        return;
    }
    if (tp_lineage_add_link(r->db, &link, tp_clock_realtime_ns()) < 0)
    {
        r->has_failed = true;
        return;
    }
    r->links++;
}

/* The database and its write-ahead log, in bytes. */
static int64_t db_bytes(const char *path)
{
    char wal[4096];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    struct stat st;
    struct stat wst;
    return (stat(path, &st) == 0 ? (int64_t)st.st_size : 0) + (stat(wal, &wst) == 0 ? (int64_t)wst.st_size : 0);
}

static int record(const trace_options_t *o)
{
    const char *channel = o->channel != NULL ? o->channel : TP_BUS_DEFAULT_CHANNEL;
    recorder_t r = { .is_all = o->is_all };
    tp_bus_t *bus = NULL;
    tp_bus_subscription_t *descriptors = NULL;
    tp_bus_subscription_t *metadata = NULL;
    int status = TP_EXIT_OK;
    tp_cli_install_stop_handlers();
    if (tp_lineage_open(&r.db, o->db_path, true) < 0 || tp_bus_init(&bus, o->bus_dir) < 0 ||
        tp_bus_subscription_open(&descriptors, bus, channel, (int32_t)o->descriptor_stream_id, NULL, NULL, NULL) < 0 ||
        tp_bus_subscription_open(&metadata, bus, channel, (int32_t)o->metadata_stream_id, NULL, NULL, NULL) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "trace record", "%s", tp_errmsg());
        goto done;
    }
    fprintf(stderr, "tp trace record: descriptors %s stream %" PRIu64 ", TraceLinkSet stream %" PRIu64
        ", into %s (retain %" PRIu64 " s)\n", channel, o->descriptor_stream_id, o->metadata_stream_id, o->db_path,
        o->retain_s);
    int64_t start = tp_clock_monotonic_ns();
    int64_t next_flush = start + BATCH_NS;
    int64_t next_report = start + TP_NS_PER_S;
    int64_t next_expire = start + EXPIRE_EVERY_NS;
    uint64_t reported_frames = 0;
    uint64_t reported_links = 0;
    while (!tp_cli_stop_requested() && !r.has_failed &&
        (o->seconds <= 0 || (double)(tp_clock_monotonic_ns() - start) < o->seconds * 1e9))
    {
        int n = tp_bus_poll(descriptors, on_descriptor, &r, 256) + tp_bus_poll(metadata, on_metadata, &r, 256);
        int64_t now = tp_clock_monotonic_ns();
        if (now >= next_flush)
        {
            r.has_failed = tp_lineage_flush(r.db) < 0; /* T-14-1s: one transaction per 50 ms */
            next_flush = now + BATCH_NS;
        }
        if (o->retain_s > 0 && now >= next_expire)
        {
            r.has_failed = r.has_failed ||
                           tp_lineage_expire(r.db, tp_clock_realtime_ns() - (int64_t)o->retain_s * TP_NS_PER_S) < 0;
            next_expire = now + EXPIRE_EVERY_NS;
        }
        if (now >= next_report)
        {
            printf("%8" PRIu64 " frames/s %6" PRIu64 " links/s  total %" PRIu64 " frames %" PRIu64
                   " links  %.1f MiB%s\n",
                r.frames - reported_frames, r.links - reported_links, r.frames, r.links,
                (double)db_bytes(o->db_path) / (1024.0 * 1024.0),
                r.invalid > 0 ? "  (invalid TraceLinkSet dropped)" : "");
            fflush(stdout);
            reported_frames = r.frames;
            reported_links = r.links;
            next_report += TP_NS_PER_S;
        }
        if (n == 0)
        {
            usleep(500);
        }
    }
    if (r.has_failed)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "trace record", "%s", tp_errmsg());
    }
    printf("recorded %" PRIu64 " frames and %" PRIu64 " trace links (%" PRIu64 " invalid TraceLinkSet dropped)\n",
        r.frames, r.links, r.invalid);
done:
    if (tp_lineage_close(r.db) < 0 && status == TP_EXIT_OK)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "trace record", "%s", tp_errmsg());
    }
    tp_bus_subscription_close(metadata);
    tp_bus_subscription_close(descriptors);
    tp_bus_close(bus);
    return status;
}

/* ---- queries ---- */

typedef struct printer
{
    const trace_options_t *o;
    tp_lineage_t *db;
    uint32_t count;
} printer_t;

static void print_frame_json(const tp_lineage_frame_t *f)
{
    printf("{\"stream_id\":%" PRIu32 ",\"epoch\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"stage_id\":%" PRIu32
           ",\"t_ns\":%" PRId64 ",\"trace_id\":%" PRIu64 ",\"status\":%d}",
        f->stream_id, f->epoch, f->seq, f->stage_id, f->t_ns, f->trace_id, f->status);
}

static int on_frame_row(void *clientd, const tp_lineage_frame_t *f)
{
    printer_t *p = clientd;
    if (p->o->is_json)
    {
        printf("%s", p->count > 0 ? "," : "");
        print_frame_json(f);
    }
    else
    {
        printf("    stream %" PRIu32 " epoch %" PRIu64 " seq %" PRIu64 " (publication %" PRIu32 ")\n", f->stream_id,
            f->epoch, f->seq, f->stage_id);
    }
    p->count++;
    return 0;
}

static void describe_id(uint64_t id)
{
    int64_t ms = tp_trace_id_time_ms(id);
    printf("trace %" PRIu64 ": minted %" PRId64 ".%03" PRId64 " (Unix s) by node %" PRIu32 ", #%" PRIu32 "\n", id,
        ms / 1000, ms % 1000, tp_trace_id_node(id), tp_trace_id_sequence(id));
}

static int print_id_frames(printer_t *p, uint64_t id)
{
    printer_t inner = { .o = p->o, .db = p->db };
    if (p->o->is_json)
    {
        printf("{\"trace_id\":%" PRIu64 ",\"frames\":[", id);
    }
    int rc = tp_lineage_frames_of(p->db, id, on_frame_row, &inner);
    if (p->o->is_json)
    {
        printf("]}");
    }
    return rc;
}

static int on_id_row(void *clientd, uint64_t id, uint32_t depth)
{
    printer_t *p = clientd;
    if (p->o->is_json)
    {
        printf("%s", p->count > 0 ? "," : "");
        if (strcmp(p->o->verb, "lineage") == 0)
        {
            printf("{\"depth\":%" PRIu32 ",\"trace\":", depth);
        }
        print_id_frames(p, id);
        printf("%s", strcmp(p->o->verb, "lineage") == 0 ? "}" : "");
    }
    else
    {
        if (strcmp(p->o->verb, "lineage") == 0)
        {
            printf("%*s[%" PRIu32 "] ", (int)(2 * (depth - 1)), "", depth);
        }
        describe_id(id);
        print_id_frames(p, id);
    }
    p->count++;
    return 0;
}

static int query(const trace_options_t *o)
{
    tp_lineage_t *db = NULL;
    if (access(o->db_path, R_OK) != 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "trace", "no lineage database at %s (record one with tp trace record)",
            o->db_path);
    }
    if (tp_lineage_open(&db, o->db_path, false) < 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "trace", "%s", tp_errmsg());
    }
    printer_t p = { .o = o, .db = db };
    uint64_t id = o->ids[0];
    int rc = 0;
    if (strcmp(o->verb, "frame") == 0)
    {
        tp_lineage_frame_t f;
        rc = tp_lineage_frame_at(db, (uint32_t)o->ids[0], o->has_epoch ? o->epoch : UINT64_MAX,
            o->ids[1], &f);
        if (rc == 1 && o->is_json)
        {
            print_frame_json(&f);
            printf("\n");
        }
        else if (rc == 1)
        {
            printf("stream %" PRIu32 " epoch %" PRIu64 " seq %" PRIu64 ": trace %" PRIu64 "\n", f.stream_id, f.epoch,
                f.seq, f.trace_id);
        }
        else if (rc == 0)
        {
            printf(o->is_json ? "null\n" : "no frame recorded for stream %" PRIu64 " seq %" PRIu64 "\n", o->ids[0],
                o->ids[1]);
        }
    }
    else if (strcmp(o->verb, "show") == 0)
    {
        if (o->is_json)
        {
            printf("{\"trace_id\":%" PRIu64 ",\"time_ms\":%" PRId64 ",\"node_id\":%" PRIu32 ",\"frames\":[", id,
                tp_trace_id_time_ms(id), tp_trace_id_node(id));
            rc = tp_lineage_frames_of(db, id, on_frame_row, &p);
            printf("],\"parents\":[");
            printer_t ids = { .o = o, .db = db };
            rc = rc < 0 ? rc : tp_lineage_parents(db, id, on_id_row, &ids);
            printf("],\"children\":[");
            ids.count = 0;
            rc = rc < 0 ? rc : tp_lineage_children(db, id, on_id_row, &ids);
            printf("]}\n");
        }
        else
        {
            describe_id(id);
            printf("  frames:\n");
            rc = tp_lineage_frames_of(db, id, on_frame_row, &p);
            printer_t ids = { .o = o, .db = db };
            printf("  parents:\n");
            rc = rc < 0 ? rc : tp_lineage_parents(db, id, on_id_row, &ids);
            printf("  children:\n");
            rc = rc < 0 ? rc : tp_lineage_children(db, id, on_id_row, &ids);
        }
    }
    else
    {
        printf("%s", o->is_json ? "[" : "");
        if (strcmp(o->verb, "parents") == 0)
        {
            rc = tp_lineage_parents(db, id, on_id_row, &p);
        }
        else if (strcmp(o->verb, "children") == 0)
        {
            rc = tp_lineage_children(db, id, on_id_row, &p);
        }
        else
        {
            rc = tp_lineage_ancestors(db, id, o->depth == 0 ? 64 : (uint32_t)o->depth, on_id_row, &p);
        }
        printf("%s", o->is_json ? "]\n" : p.count == 0 ? "(none)\n" : "");
    }
    int status = rc < 0 ? tp_cli_fail(TP_EXIT_FAILED, "trace", "%s", tp_errmsg()) : TP_EXIT_OK;
    tp_lineage_close(db);
    return status;
}

int tp_cmd_trace(int argc, char **argv)
{
    if (argc < 2 || tp_cli_is_help(argv[1]))
    {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? TP_EXIT_USAGE : TP_EXIT_OK;
    }
    trace_options_t o = { .descriptor_stream_id = 1100, .metadata_stream_id = 1300, .retain_s = 3600 };
    int rc = parse(argc, argv, &o);
    if (rc != TP_EXIT_OK)
    {
        return rc;
    }
    return strcmp(o.verb, "record") == 0 ? record(&o) : query(&o);
}
