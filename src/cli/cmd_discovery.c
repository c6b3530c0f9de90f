/*
 * `tp discovery CONFIG`: the standalone discovery registry (discovery spec 4, 6), indexing the streams of every
 * driver in [[drivers]] from their announce and metadata streams (IPC or UDP) and answering DiscoveryRequest.
 * `tp discover`: ask a provider (a driver's embedded one, or a registry) and print what it knows.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_strbuf.h"
#include "core/tp_toml.h"
#include "discovery/tp_discovery_config.h"
#include "discovery/tp_discovery_provider.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_discovery.h"

#define REGISTRY_STATS_NS (10 * TP_NS_PER_S)

static void registry_usage(FILE *out)
{
    fprintf(out,
        "usage: tp discovery CONFIG\n\n"
        "Run a standalone discovery registry: index the streams of every driver listed in the configuration's\n"
        "[[drivers]] (their ShmPoolAnnounce, DataSourceAnnounce and DataSourceMeta, on IPC or UDP channels) and\n"
        "answer DiscoveryRequest on discovery.channel / discovery.stream_id. Entries expire after 3 announce\n"
        "periods without an announce. Ctrl-C stops it. Keys: docs/CONFIG.md (Discovery registry).\n\n"
        "example:\n"
        "  tp discovery config/discovery.toml\n\n"
        "exit status: 0 stopped; 1 it could not start; 2 bad arguments or configuration.\n");
}

typedef struct registry_driver
{
    tp_discovery_provider_t *provider;
    int index;
    tp_bus_subscription_t *announces;
    tp_bus_subscription_t *metadata;
} registry_driver_t;

static void on_driver_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    registry_driver_t *d = clientd;
    tp_discovery_provider_on_message(d->provider, d->index, buffer, length, tp_clock_monotonic_ns());
}

static int load_discovery(void *config, const tp_toml_value_t *doc, tp_config_report_t *report)
{
    return tp_discovery_config_load(config, doc, report);
}

int tp_cmd_discovery(int argc, char **argv)
{
    const char *cmd = "discovery";
    if (argc != 2 || tp_cli_is_help(argv[1]))
    {
        registry_usage(argc == 2 ? stdout : stderr);
        return argc == 2 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    static tp_discovery_config_t c;
    if (tp_cli_load_config(argv[1], &c, load_discovery) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s", tp_errmsg());
    }
    tp_bus_t *bus = NULL;
    tp_discovery_provider_t *p = NULL;
    static registry_driver_t drivers[TP_DISCOVERY_MAX_DRIVERS];
    memset(drivers, 0, sizeof(drivers));
    int status = TP_EXIT_OK;
    if (tp_bus_init(&bus, c.bus_dir[0] != '\0' ? c.bus_dir : NULL) < 0 ||
        tp_discovery_provider_open(&p, bus, c.channel, c.stream_id, 3 * (int64_t)c.announce_period_ms * TP_NS_PER_MS,
            c.max_results) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
        goto done;
    }
    for (uint32_t i = 0; i < c.driver_count; i++)
    {
        const tp_discovery_driver_config_t *dc = &c.drivers[i];
        tp_discovery_driver_t d;
        memset(&d, 0, sizeof(d));
        snprintf(d.instance_id, sizeof(d.instance_id), "%s", dc->instance_id);
        snprintf(d.control_channel, sizeof(d.control_channel), "%s", dc->control_channel);
        d.control_stream_id = dc->control_stream_id;
        drivers[i].provider = p;
        drivers[i].index = tp_discovery_provider_add_driver(p, &d);
        if (drivers[i].index < 0 ||
            tp_bus_subscription_open(&drivers[i].announces, bus, dc->announce_channel, (int32_t)dc->announce_stream_id,
                NULL, NULL, NULL) < 0 ||
            tp_bus_subscription_open(&drivers[i].metadata, bus, dc->metadata_channel, (int32_t)dc->metadata_stream_id,
                NULL, NULL, NULL) < 0)
        {
            status = tp_cli_fail(TP_EXIT_FAILED, cmd, "driver %s: %s", dc->instance_id, tp_errmsg());
            goto done;
        }
        fprintf(stderr, "tp discovery: indexing %s (announces %s %" PRIu32 ", metadata %s %" PRIu32 ")\n",
            dc->instance_id, dc->announce_channel, dc->announce_stream_id, dc->metadata_channel,
            dc->metadata_stream_id);
    }
    fprintf(stderr, "tp discovery: %s answering on %s stream %" PRIu32 " (bus %s)\n", c.instance_id, c.channel,
        c.stream_id, tp_bus_dir(bus));
    tp_cli_install_stop_handlers();
    int64_t next_stats = tp_clock_monotonic_ns() + REGISTRY_STATS_NS;
    while (!tp_cli_stop_requested())
    {
        int work = 0;
        for (uint32_t i = 0; i < c.driver_count; i++)
        {
            int a = tp_bus_poll(drivers[i].announces, on_driver_message, &drivers[i], 64);
            int m = tp_bus_poll(drivers[i].metadata, on_driver_message, &drivers[i], 64);
            work += (a > 0 ? a : 0) + (m > 0 ? m : 0);
        }
        int64_t now = tp_clock_monotonic_ns();
        work += tp_discovery_provider_poll(p, now);
        if (now >= next_stats)
        {
            tp_discovery_counters_t k;
            tp_discovery_provider_counters(p, &k);
            fprintf(stderr, "tp discovery: %zu stream(s) indexed; %" PRIu64 " requests, %" PRIu64 " answered, %" PRIu64
                " dropped, %" PRIu64 " malformed\n", tp_discovery_provider_entry_count(p), k.requests, k.responses,
                k.dropped_requests, k.malformed);
            next_stats = now + REGISTRY_STATS_NS;
        }
        if (work == 0)
        {
            usleep(1000);
        }
    }
done:
    for (uint32_t i = 0; i < TP_DISCOVERY_MAX_DRIVERS; i++)
    {
        tp_bus_subscription_close(drivers[i].announces);
        tp_bus_subscription_close(drivers[i].metadata);
    }
    tp_discovery_provider_close(p);
    tp_bus_close(bus);
    return status;
}

/* ---- tp discover ---- */

static void discover_usage(FILE *out)
{
    fprintf(out,
        "usage: tp discover [--name NAME] [--tag TAG]... [--stream-id N] [--producer-id N] [--json]\n"
        "                   [--timeout S] [--bus-dir DIR]\n\n"
        "Ask the discovery provider (a driver's embedded one, or `tp discovery`) which streams match, and print\n"
        "them: stream, data source name, tags, epoch, layout, and the driver to attach through. Filters combine\n"
        "(AND); names and tags compare byte for byte; a stream must carry every tag given. The request goes to\n"
        "$TP_CLIENT_DISCOVERY_CHANNEL / $TP_CLIENT_DISCOVERY_STREAM_ID (7000), the answer comes back on\n"
        "$TP_CLIENT_DISCOVERY_RESPONSE_STREAM_ID (7004). Results are advisory: attach through the named driver.\n\n"
        "examples:\n"
        "  tp discover\n"
        "  tp discover --name camera-1 --json\n"
        "  tp discover --tag front --tag rgb\n\n"
        "exit status: 0 streams found; 1 none matches, or no provider answered; 2 bad arguments.\n");
}

int tp_cmd_discover(int argc, char **argv)
{
    const char *cmd = "discover";
    tp_discovery_query_t q;
    tp_discovery_query_init(&q);
    bool json = false;
    double timeout_s = 2;
    const char *bus_dir = NULL;
    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        if (tp_cli_is_help(a))
        {
            discover_usage(stdout);
            return TP_EXIT_OK;
        }
        if (strcmp(a, "--json") == 0)
        {
            json = true;
            continue;
        }
        if (i + 1 >= argc || a[0] != '-')
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, a[0] == '-' ? "%s needs a value" : "unexpected '%s' (see tp "
                "discover --help)", a);
        }
        const char *v = argv[++i];
        uint64_t n;
        if (strcmp(a, "--name") == 0)
        {
            q.data_source_name = v;
        }
        else if (strcmp(a, "--tag") == 0)
        {
            if (q.tag_count == TP_DISCOVERY_QUERY_MAX_TAGS)
            {
                return tp_cli_fail(TP_EXIT_USAGE, cmd, "at most %d tags", TP_DISCOVERY_QUERY_MAX_TAGS);
            }
            q.tags[q.tag_count++] = v;
        }
        else if (strcmp(a, "--stream-id") == 0 || strcmp(a, "--producer-id") == 0)
        {
            if (tp_cli_parse_u64(v, 0, UINT32_MAX - 1, &n) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s: %s", a, tp_errmsg());
            }
            if (a[2] == 's')
            {
                q.has_stream_id = true;
                q.stream_id = (uint32_t)n;
            }
            else
            {
                q.has_producer_id = true;
                q.producer_id = (uint32_t)n;
            }
        }
        else if (strcmp(a, "--timeout") == 0)
        {
            if (tp_cli_parse_double(v, 0.01, 3600, &timeout_s) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, cmd, "--timeout: %s", tp_errmsg());
            }
        }
        else if (strcmp(a, "--bus-dir") == 0)
        {
            bus_dir = v;
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown option '%s' (see tp discover --help)", a);
        }
    }
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    static tp_discovery_result_t results[256];
    size_t count = 0;
    int status = TP_EXIT_FAILED;
    if (tp_client_context_init(&ctx) < 0 || (bus_dir != NULL && tp_client_context_set(ctx, "client.bus_dir",
                                                                     bus_dir) < 0) ||
        tp_client_connect(&client, ctx) < 0 ||
        tp_discover(client, &q, results, 256, &count, (int64_t)(timeout_s * 1e9)) < 0)
    {
        tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
        goto done;
    }
    tp_strbuf_t b;
    tp_strbuf_init(&b);
    if (!json)
    {
        tp_strbuf_printf(&b, "%-8s %-20s %-24s %-8s %-8s %-14s %s\n", "STREAM", "NAME", "TAGS", "EPOCH", "SLOTS",
            "DRIVER", "CONTROL");
    }
    for (size_t i = 0; i < count; i++)
    {
        const tp_discovery_result_t *r = &results[i];
        char tags[512] = "";
        for (size_t k = 0; k < r->tag_count; k++)
        {
            size_t used = strlen(tags);
            snprintf(tags + used, sizeof(tags) - used, "%s%s", k > 0 ? "," : "", r->tags[k]);
        }
        if (json)
        {
            tp_strbuf_printf(&b, "{\"stream_id\":%" PRIu32 ",\"producer_id\":%" PRIu32 ",\"epoch\":%" PRIu64
                ",\"layout_version\":%" PRIu32 ",\"header_nslots\":%" PRIu32 ",\"pools\":%" PRIu32 ",\"name\":",
                r->stream_id, r->producer_id, r->epoch, r->layout_version, r->header_nslots, r->pool_count);
            tp_strbuf_json_string(&b, r->data_source_name, strlen(r->data_source_name));
            tp_strbuf_puts(&b, ",\"tags\":[");
            for (size_t k = 0; k < r->tag_count; k++)
            {
                if (k > 0)
                {
                    tp_strbuf_putc(&b, ',');
                }
                tp_strbuf_json_string(&b, r->tags[k], strlen(r->tags[k]));
            }
            tp_strbuf_puts(&b, "],\"driver_instance_id\":");
            tp_strbuf_json_string(&b, r->driver_instance_id, strlen(r->driver_instance_id));
            tp_strbuf_puts(&b, ",\"driver_control_channel\":");
            tp_strbuf_json_string(&b, r->driver_control_channel, strlen(r->driver_control_channel));
            tp_strbuf_printf(&b, ",\"driver_control_stream_id\":%" PRIu32 "}\n", r->driver_control_stream_id);
        }
        else
        {
            tp_strbuf_printf(&b, "%-8" PRIu32 " %-20s %-24s %-8" PRIu64 " %-8" PRIu32 " %-14s %s %" PRIu32 "\n",
                r->stream_id, r->data_source_name[0] != '\0' ? r->data_source_name : "-", tags[0] != '\0' ? tags : "-",
                r->epoch, r->header_nslots, r->driver_instance_id, r->driver_control_channel,
                r->driver_control_stream_id);
        }
    }
    fputs(tp_strbuf_cstr(&b), stdout);
    tp_strbuf_fini(&b);
    if (count == 0)
    {
        fprintf(stderr, "tp discover: no stream matches\n");
    }
    status = count > 0 ? TP_EXIT_OK : TP_EXIT_FAILED;
done:
    tp_client_close(client);
    tp_client_context_close(ctx);
    return status;
}
