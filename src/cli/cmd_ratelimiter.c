/*
 * `tp ratelimiter CONFIG`: run a rate limiter (rate limiter spec 1.0) in the foreground, one mapping per
 * [[mappings]] entry: each consumes its source stream and republishes at most max_rate_hz frames per second on its
 * destination stream, attached through the driver as that stream's only producer. Every second it writes its
 * state to <bus_dir>/ratelimiter-<instance_id>.json, which `tp ratelimiter status` prints.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "cli/tp_cli_status.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
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
    tp_cli_status_path(status_path, sizeof(status_path), c.bus_dir, "ratelimiter", c.instance_id);
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
            tp_cli_status_write(status_path, &json);
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

/* One report as a table. */
static int print_report(const tp_json_t *root, const char *text, size_t length, bool json)
{
    if (json)
    {
        fwrite(text, 1, length, stdout);
        return 0;
    }
    const tp_json_t *id = tp_json_get(root, "instance_id");
    printf("%s (pid %" PRIu64 ", reported %" PRId64 " ms ago)\n", id != NULL ? id->text : "?",
        tp_cli_json_u64(root, "pid"), tp_cli_status_age_ms(root));
    printf("  %-8s %-8s %8s %5s %10s %10s %10s %8s %8s %8s %6s\n", "SOURCE", "DEST", "MAX_HZ", "READY", "SEEN",
        "PUBLISHED", "SUPERSEDED", "NO_POOL", "LAPPED", "DETACHED", "EPOCHS");
    for (const tp_json_t *m = tp_json_get(root, "mappings")->child; m != NULL; m = m->next)
    {
        const tp_json_t *ready = tp_json_get(m, "ready");
        printf("  %-8" PRIu64 " %-8" PRIu64 " %8" PRIu64 " %5s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %8" PRIu64
               " %8" PRIu64 " %8" PRIu64 " %6" PRIu64 "\n",
            tp_cli_json_u64(m, "source"), tp_cli_json_u64(m, "dest"), tp_cli_json_u64(m, "max_rate_hz"),
            ready != NULL && ready->boolean ? "yes" : "no", tp_cli_json_u64(m, "frames_seen"),
            tp_cli_json_u64(m, "published"), tp_cli_json_u64(m, "superseded"), tp_cli_json_u64(m, "dropped_no_pool"),
            tp_cli_json_u64(m, "dropped_lapped"), tp_cli_json_u64(m, "dropped_detached"),
            tp_cli_json_u64(m, "source_epochs"));
    }
    return 0;
}

int tp_cmd_ratelimiter(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "status") == 0)
    {
        return tp_cli_status_main("ratelimiter", argc, argv, print_report);
    }
    if (argc != 2 || tp_cli_is_help(argv[1]))
    {
        ratelimiter_usage(argc == 2 ? stdout : stderr);
        return argc == 2 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    return run(argv[1]);
}
