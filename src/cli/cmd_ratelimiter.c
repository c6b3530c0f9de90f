/*
 * `tp ratelimiter CONFIG`: run a rate limiter (rate limiter spec 1.0) in the foreground, one mapping per
 * [[mappings]] entry: each consumes its source stream and republishes at most max_rate_hz frames per second on its
 * destination stream, attached through the driver as that stream's only producer. Every second it writes its
 * state to <bus_dir>/ratelimiter-<instance_id>.json, which `tp ratelimiter status` prints.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_json.h"
#include "core/tp_strbuf.h"
#include "ratelimit/tp_ratelimit_config.h"
#include "ratelimit/tp_ratelimit_forward.h"
#include "ratelimit/tp_ratelimiter.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_metadata.h"

#define STATUS_PERIOD_NS TP_NS_PER_S
#define ATTACH_TIMEOUT_NS (10 * TP_NS_PER_S)

static void ratelimiter_usage(FILE *out)
{
    fprintf(out,
        "usage: tp ratelimiter CONFIG\n"
        "       tp ratelimiter status [--bus-dir DIR] [--json]\n\n"
        "Run a rate limiter in the foreground: for each [[mappings]] entry, consume source_stream_id and republish\n"
        "at most max_rate_hz frames per second (the mapping's, else rate_limiter.max_rate_hz; 0 = every frame) on\n"
        "dest_stream_id, copied into the destination's own pools under the source's seq, with meta_version,\n"
        "timestamp and trace id kept, and (forward_metadata, the default) the source's metadata republished as\n"
        "the destination's. When a rate slot opens, the newest frame seen goes. The destination stream\n"
        "must be in the driver's configuration and have no other producer. Ctrl-C or SIGTERM stops it.\n"
        "`status` prints what every rate limiter on the bus reported last (once a second).\n"
        "Keys: docs/CONFIG.md (Rate limiter).\n\n"
        "example:\n"
        "  tp ratelimiter config/rate-limiter.toml\n\n"
        "exit status: 0 stopped; 1 it could not start (no driver, a destination already has a producer); 2 bad\n"
        "arguments or configuration.\n");
}

static int load_ratelimit(void *config, const tp_toml_value_t *doc, tp_config_report_t *report)
{
    return tp_ratelimit_config_load(config, doc, report);
}

static int set_u32(tp_client_context_t *ctx, const char *key, uint32_t value)
{
    char text[16];
    snprintf(text, sizeof(text), "%" PRIu32, value);
    return tp_client_context_set(ctx, key, text);
}

/* The client context of the limiter: the driver's control stream, the bus, the SHM base it may map from. */
static int client_context(const tp_ratelimit_config_t *c, tp_client_context_t **out)
{
    tp_client_context_t *ctx = NULL;
    if (tp_client_context_init(&ctx) < 0 ||
        (c->bus_dir[0] != '\0' && tp_client_context_set(ctx, "client.bus_dir", c->bus_dir) < 0) ||
        tp_client_context_set(ctx, "client.allowed_base_dirs", c->shm_base_dir) < 0 ||
        tp_client_context_set(ctx, "client.control_channel", c->driver_control_channel) < 0 ||
        set_u32(ctx, "client.control_stream_id", c->driver_control_stream_id) < 0 ||
        tp_client_context_set(ctx, "client.descriptor_channel", c->descriptor_channel) < 0 ||
        set_u32(ctx, "client.descriptor_stream_id", c->descriptor_stream_id) < 0 ||
        tp_client_context_set(ctx, "client.metadata_channel", c->metadata_channel) < 0 ||
        set_u32(ctx, "client.metadata_stream_id", c->metadata_stream_id) < 0)
    {
        tp_client_context_close(ctx);
        return -1;
    }
    *out = ctx;
    return 0;
}

static void status_json(const tp_ratelimit_config_t *c, const tp_ratelimiter_t *limiters, tp_strbuf_t *out)
{
    tp_strbuf_printf(out, "{\"instance_id\":\"%s\",\"pid\":%d,\"time_ns\":%" PRId64 ",\"mappings\":[", c->instance_id,
        (int)getpid(), tp_clock_realtime_ns());
    for (uint32_t i = 0; i < c->mapping_count; i++)
    {
        const tp_ratelimiter_t *r = &limiters[i];
        const tp_ratelimit_counters_t *k = &r->counters;
        tp_strbuf_printf(out,
            "%s{\"source\":%" PRIu32 ",\"dest\":%" PRIu32 ",\"max_rate_hz\":%" PRIu32 ",\"ready\":%s,"
            "\"frames_seen\":%" PRIu64 ",\"published\":%" PRIu64 ",\"superseded\":%" PRIu64
            ",\"dropped_no_pool\":%" PRIu64 ",\"dropped_lapped\":%" PRIu64 ",\"dropped_detached\":%" PRIu64
            ",\"source_epochs\":%" PRIu64 ",\"dest_reattaches\":%" PRIu64 ",\"metadata_forwarded\":%" PRIu64 "}",
            i > 0 ? "," : "", r->source_stream_id, r->dest_stream_id, r->policy.max_rate_hz,
            tp_ratelimiter_is_ready(r) ? "true" : "false", k->frames_seen, k->published, k->superseded,
            k->dropped_no_pool, k->dropped_lapped, k->dropped_detached, k->source_epochs, k->dest_reattaches,
            k->metadata_forwarded);
    }
    tp_strbuf_puts(out, "]}\n");
}

/* Written to a temporary name and renamed, so a reader never sees half of it. */
static void write_status(const char *path, const tp_strbuf_t *json)
{
    char tmp[TP_CONFIG_STRING_MAX + 64];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
    {
        return;
    }
    fputs(tp_strbuf_cstr(json), f);
    if (fclose(f) == 0)
    {
        rename(tmp, path);
    }
}

static int run(const char *config_path)
{
    const char *cmd = "ratelimiter";
    static tp_ratelimit_config_t c;
    if (tp_cli_load_config(config_path, &c, load_ratelimit) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s", tp_errmsg());
    }
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    tp_metadata_cache_t *cache = NULL;
    tp_bus_t *forward_bus = NULL;
    static tp_ratelimit_forwarder_t progress;
    static tp_ratelimit_forwarder_t qos;
    memset(&progress, 0, sizeof(progress));
    memset(&qos, 0, sizeof(qos));
    static tp_ratelimiter_t limiters[TP_RATELIMIT_MAX_MAPPINGS];
    uint32_t opened = 0;
    int status = TP_EXIT_OK;
    tp_strbuf_t json;
    tp_strbuf_init(&json);
    char status_path[TP_CONFIG_STRING_MAX + 64] = "";
    if (client_context(&c, &ctx) < 0 || tp_client_connect(&client, ctx) < 0 ||
        (c.forward_metadata && tp_metadata_cache_open(&cache, client, NULL, NULL) < 0))
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
        goto done;
    }
    tp_cli_install_stop_handlers();
    for (uint32_t i = 0; i < c.mapping_count && !tp_cli_stop_requested(); i++)
    {
        const tp_ratelimit_mapping_config_t *m = &c.mappings[i];
        /* Attach the destination first and wait for the driver's answer: a stream that has a producer already is
         * an error now, not a retry forever (rate limiter spec 3). */
        tp_producer_t *dest = NULL;
        if (tp_producer_attach(&dest, client, m->dest_stream_id, ATTACH_TIMEOUT_NS) < 0 ||
            tp_ratelimiter_open_with(&limiters[i], client, m->source_stream_id, dest, m->max_rate_hz) < 0 ||
            (cache != NULL && tp_ratelimiter_forward_metadata(&limiters[i], cache, m->metadata_stream_id) < 0))
        {
            status = tp_cli_fail(TP_EXIT_FAILED, cmd, "mapping %" PRIu32 " -> %" PRIu32 ": %s", m->source_stream_id,
                m->dest_stream_id, tp_errmsg());
            goto done;
        }
        opened++;
        fprintf(stderr, "tp ratelimiter: %s: stream %" PRIu32 " -> %" PRIu32 " at %s%" PRIu32 " Hz\n",
            c.instance_id, m->source_stream_id, m->dest_stream_id, m->max_rate_hz == 0 ? "every frame, " : "",
            m->max_rate_hz);
    }
    /* Progress and QoS forwarding (rate limiter spec 6.1): one subscription each, shared by the mappings. */
    if ((c.forward_progress || c.forward_qos) && tp_bus_init(&forward_bus, c.bus_dir[0] != '\0' ? c.bus_dir : NULL) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
        goto done;
    }
    if ((c.forward_progress &&
            tp_ratelimit_forwarder_open(&progress, forward_bus, TP_RATELIMIT_FORWARD_PROGRESS, c.control_channel,
                c.source_control_stream_id, c.dest_control_stream_id) < 0) ||
        (c.forward_qos && tp_ratelimit_forwarder_open(&qos, forward_bus, TP_RATELIMIT_FORWARD_QOS, c.qos_channel,
                              c.source_qos_stream_id, c.dest_qos_stream_id) < 0))
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
        goto done;
    }
    for (uint32_t i = 0; i < opened; i++)
    {
        if ((c.forward_progress && tp_ratelimit_forwarder_route(&progress, c.mappings[i].source_stream_id,
                                       c.mappings[i].dest_stream_id) < 0) ||
            (c.forward_qos &&
                tp_ratelimit_forwarder_route(&qos, c.mappings[i].source_stream_id, c.mappings[i].dest_stream_id) < 0))
        {
            status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
            goto done;
        }
    }
    tp_bus_t *bus = NULL;
    if (tp_bus_init_existing(&bus, c.bus_dir[0] != '\0' ? c.bus_dir : NULL) == 0)
    {
        snprintf(status_path, sizeof(status_path), "%s/ratelimiter-%s.json", tp_bus_dir(bus), c.instance_id);
        tp_bus_close(bus);
    }
    int64_t next_status = 0;
    while (!tp_cli_stop_requested())
    {
        int64_t now = tp_clock_monotonic_ns();
        int work = cache != NULL ? tp_metadata_cache_poll(cache, 64) : 0;
        work = work > 0 ? work : 0;
        for (uint32_t i = 0; i < opened; i++)
        {
            work += tp_ratelimiter_do_work(&limiters[i], now);
        }
        if (progress.sub != NULL)
        {
            int n = tp_ratelimit_forwarder_poll(&progress);
            work += n > 0 ? n : 0;
        }
        if (qos.sub != NULL)
        {
            int n = tp_ratelimit_forwarder_poll(&qos);
            work += n > 0 ? n : 0;
        }
        if (now >= next_status && status_path[0] != '\0')
        {
            tp_strbuf_reset(&json);
            status_json(&c, limiters, &json);
            write_status(status_path, &json);
            next_status = now + STATUS_PERIOD_NS;
        }
        if (work == 0)
        {
            usleep(100); /* a frame waits at most this long; a held one opens on time within it */
        }
    }
done:
    if (status_path[0] != '\0')
    {
        unlink(status_path);
    }
    for (uint32_t i = 0; i < opened; i++)
    {
        tp_ratelimiter_close(&limiters[i]);
    }
    tp_strbuf_fini(&json);
    tp_ratelimit_forwarder_close(&progress);
    tp_ratelimit_forwarder_close(&qos);
    tp_bus_close(forward_bus);
    tp_metadata_cache_close(cache);
    tp_client_close(client);
    tp_client_context_close(ctx);
    return status;
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

/* One report as a table; 0, or -1 when it is not a report. */
static int print_report(const char *text, size_t length, bool json)
{
    tp_json_t *root = NULL;
    if (tp_json_parse(&root, text, length) < 0 || tp_json_get(root, "mappings") == NULL)
    {
        tp_json_free(root);
        return -1;
    }
    if (json)
    {
        fwrite(text, 1, length, stdout);
        tp_json_free(root);
        return 0;
    }
    const tp_json_t *id = tp_json_get(root, "instance_id");
    int64_t age_ms = ((int64_t)tp_clock_realtime_ns() - (int64_t)json_u64(root, "time_ns")) / TP_NS_PER_MS;
    printf("%s (pid %" PRIu64 ", reported %" PRId64 " ms ago)\n", id != NULL ? id->text : "?", json_u64(root, "pid"),
        age_ms);
    printf("  %-8s %-8s %8s %5s %10s %10s %10s %8s %8s %8s %6s\n", "SOURCE", "DEST", "MAX_HZ", "READY", "SEEN",
        "PUBLISHED", "SUPERSEDED", "NO_POOL", "LAPPED", "DETACHED", "EPOCHS");
    for (const tp_json_t *m = tp_json_get(root, "mappings")->child; m != NULL; m = m->next)
    {
        const tp_json_t *ready = tp_json_get(m, "ready");
        printf("  %-8" PRIu64 " %-8" PRIu64 " %8" PRIu64 " %5s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %8" PRIu64
               " %8" PRIu64 " %8" PRIu64 " %6" PRIu64 "\n",
            json_u64(m, "source"), json_u64(m, "dest"), json_u64(m, "max_rate_hz"),
            ready != NULL && ready->boolean ? "yes" : "no", json_u64(m, "frames_seen"), json_u64(m, "published"),
            json_u64(m, "superseded"), json_u64(m, "dropped_no_pool"), json_u64(m, "dropped_lapped"),
            json_u64(m, "dropped_detached"), json_u64(m, "source_epochs"));
    }
    tp_json_free(root);
    return 0;
}

/* `tp ratelimiter status`: every ratelimiter-*.json in the bus directory. */
static int print_status(int argc, char **argv)
{
    const char *cmd = "ratelimiter status";
    const char *bus_dir = NULL;
    bool json = false;
    for (int i = 2; i < argc; i++)
    {
        if (strcmp(argv[i], "--json") == 0)
        {
            json = true;
        }
        else if (strcmp(argv[i], "--bus-dir") == 0 && i + 1 < argc)
        {
            bus_dir = argv[++i];
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown option '%s' (see tp ratelimiter --help)", argv[i]);
        }
    }
    tp_bus_t *bus = NULL;
    if (tp_bus_init_existing(&bus, bus_dir) < 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", tp_bus_dir(bus));
    tp_bus_close(bus);
    DIR *d = opendir(dir);
    int found = 0;
    for (struct dirent *e = d != NULL ? readdir(d) : NULL; e != NULL; e = readdir(d))
    {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "ratelimiter-", 12) != 0 || n < 5 || strcmp(e->d_name + n - 5, ".json") != 0)
        {
            continue;
        }
        char path[4096 + 300];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        uint8_t *text = NULL;
        size_t length = 0;
        if (tp_fs_read_file(path, 1u << 20, &text, &length) == 0 && print_report((const char *)text, length, json) == 0)
        {
            found++;
        }
        tp_free(text);
    }
    if (d != NULL)
    {
        closedir(d);
    }
    if (found == 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, cmd, "no rate limiter reports in %s (is one running on this bus?)", dir);
    }
    return TP_EXIT_OK;
}

int tp_cmd_ratelimiter(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "status") == 0)
    {
        return print_status(argc, argv);
    }
    if (argc != 2 || tp_cli_is_help(argv[1]))
    {
        ratelimiter_usage(argc == 2 ? stdout : stderr);
        return argc == 2 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    return run(argv[1]);
}
