/*
 * `tp bridge CONFIG`: run a UDP bridge instance (bridge spec 1.1) in the foreground. Each [[mappings]] entry is
 * sent from this host (its source stream read here, chunked onto the bridge payload channel) or received here
 * (rebuilt into a local stream this bridge produces), as its direction (or bridge.direction / --direction) says.
 * Every second it writes its state to <bus_dir>/bridge-<instance_id>.json, which `tp bridge status` prints.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge/tp_bridge.h"
#include "cli/tp_cli.h"
#include "cli/tp_cli_status.h"
#include "core/tp_clock.h"
#include "core/tp_strbuf.h"
#include "tensorpool/tp_bus.h"

#define STATUS_PERIOD_NS TP_NS_PER_S

static void bridge_usage(FILE *out)
{
    fprintf(out,
        "usage: tp bridge [--direction send|receive] CONFIG\n"
        "       tp bridge status [--bus-dir DIR] [--json]\n\n"
        "Run a UDP bridge in the foreground. A mapping sent from this host reads source_stream_id from the local\n"
        "driver as a consumer and sends each frame as BridgeFrameChunk messages on bridge.payload_channel, with the\n"
        "stream's ShmPoolAnnounce on bridge.control_channel and (forward_metadata, with a metadata_channel) its\n"
        "metadata on bridge.metadata_channel. A mapping received here attaches dest_stream_id (or one of\n"
        "bridge.dest_stream_id_range when it is 0) as its only producer on the local driver and rebuilds every\n"
        "complete, valid frame into it under the source's seq, timestamp, meta_version and trace id; incomplete\n"
        "or invalid frames are dropped and counted. A mapping's `direction` says which end runs here; mappings\n"
        "without one take bridge.direction, which --direction (or TP_BRIDGE_DIRECTION) sets.\n"
        "Ctrl-C or SIGTERM stops it. `status` prints what every bridge on the bus reported last (once a second).\n"
        "Keys: docs/CONFIG.md (Bridge); a walk-through: docs/GUIDE.md (Bridging two hosts).\n\n"
        "examples:\n"
        "  tp bridge --direction send config/bridge.toml      # on the host that has the streams\n"
        "  tp bridge --direction receive config/bridge.toml   # on the host that wants them\n"
        "  tp bridge status\n\n"
        "exit status: 0 stopped; 1 it could not start (no driver, a destination already has a producer); 2 bad\n"
        "arguments or configuration.\n");
}

static int load_bridge(void *config, const tp_toml_value_t *doc, tp_config_report_t *report)
{
    return tp_bridge_config_load(config, doc, report);
}

static int client_context(const tp_bridge_config_t *c, tp_client_context_t **out)
{
    char stream[16];
    snprintf(stream, sizeof(stream), "%" PRIu32, c->driver_control_stream_id);
    tp_client_context_t *ctx = NULL;
    if (tp_client_context_init(&ctx) < 0 ||
        (c->bus_dir[0] != '\0' && tp_client_context_set(ctx, "client.bus_dir", c->bus_dir) < 0) ||
        tp_client_context_set(ctx, "client.allowed_base_dirs", c->shm_base_dir) < 0 ||
        tp_client_context_set(ctx, "client.control_channel", c->driver_control_channel) < 0 ||
        tp_client_context_set(ctx, "client.control_stream_id", stream) < 0 ||
        tp_client_context_set(ctx, "client.metadata_channel", c->local_metadata_channel) < 0)
    {
        tp_client_context_close(ctx);
        return -1;
    }
    *out = ctx;
    return 0;
}

static void print_started(const tp_bridge_config_t *c)
{
    for (uint32_t i = 0; i < c->mapping_count; i++)
    {
        const tp_bridge_mapping_config_t *m = &c->mappings[i];
        fprintf(stderr, "tp bridge: %s: %s stream %" PRIu32 " -> %" PRIu32 "\n", c->instance_id,
            m->is_sender ? "sending" : "receiving", m->source_stream_id, m->dest_stream_id);
    }
}

static int run(const char *config_path, const char *direction)
{
    const char *cmd = "bridge";
    if (direction != NULL && setenv("TP_BRIDGE_DIRECTION", direction, 1) != 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, cmd, "cannot set TP_BRIDGE_DIRECTION");
    }
    static tp_bridge_config_t c;
    if (tp_cli_load_config(config_path, &c, load_bridge) < 0 || tp_bridge_config_check_directions(&c) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s", tp_errmsg());
    }
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    tp_bus_t *bus = NULL;
    tp_bridge_t *bridge = NULL;
    int status = TP_EXIT_OK;
    tp_strbuf_t json;
    tp_strbuf_init(&json);
    char status_path[4096] = "";
    tp_cli_install_stop_handlers();
    if (client_context(&c, &ctx) < 0 || tp_client_connect(&client, ctx) < 0 ||
        tp_bus_init(&bus, c.bus_dir[0] != '\0' ? c.bus_dir : NULL) < 0 || tp_bridge_open(&bridge, client, bus, &c) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
        goto done;
    }
    print_started(tp_bridge_config_of(bridge));
    tp_cli_status_path(status_path, sizeof(status_path), c.bus_dir, "bridge", c.instance_id);
    int64_t next_status = 0;
    while (!tp_cli_stop_requested())
    {
        int64_t now = tp_clock_monotonic_ns();
        int work = tp_bridge_do_work(bridge, now);
        if (now >= next_status && status_path[0] != '\0')
        {
            tp_strbuf_reset(&json);
            tp_bridge_status_json(bridge, &json);
            tp_cli_status_write(status_path, &json);
            next_status = now + STATUS_PERIOD_NS;
        }
        if (work == 0)
        {
            usleep(50); /* idle: a chunk waits at most this long (the socket buffers meanwhile) */
        }
    }
done:
    if (status_path[0] != '\0')
    {
        unlink(status_path);
    }
    tp_strbuf_fini(&json);
    tp_bridge_close(bridge);
    tp_bus_close(bus);
    tp_client_close(client);
    tp_client_context_close(ctx);
    return status;
}

static const char *const drop_columns[] = { "crc", "epoch", "timeout", "incomplete", "conflict", "header", "pool" };

static uint64_t other_drops(const tp_json_t *drops)
{
    uint64_t total = 0;
    for (const tp_json_t *d = drops != NULL ? drops->child : NULL; d != NULL; d = d->next)
    {
        bool is_column = false;
        for (size_t i = 0; i < sizeof(drop_columns) / sizeof(drop_columns[0]); i++)
        {
            is_column |= strcmp(d->key, drop_columns[i]) == 0;
        }
        uint64_t v = 0;
        tp_json_to_u64(d, &v);
        total += is_column ? 0 : v;
    }
    return total;
}

static int print_report(const tp_json_t *root, const char *text, size_t length, bool json)
{
    if (json)
    {
        fwrite(text, 1, length, stdout);
        return 0;
    }
    const tp_json_t *id = tp_json_get(root, "instance_id");
    printf("%s (pid %" PRIu64 ", reported %" PRId64 " ms ago): forwarded %" PRIu64 " announces, %" PRIu64
           " metadata, %" PRIu64 " progress; republished %" PRIu64 " metadata, %" PRIu64 " progress\n",
        id != NULL ? id->text : "?", tp_cli_json_u64(root, "pid"), tp_cli_status_age_ms(root),
        tp_cli_json_u64(root, "announces_forwarded"), tp_cli_json_u64(root, "metadata_forwarded"),
        tp_cli_json_u64(root, "progress_forwarded"), tp_cli_json_u64(root, "metadata_republished"),
        tp_cli_json_u64(root, "progress_republished"));
    printf("  %-7s %-7s %-7s %5s %10s %12s %10s | drops %6s %6s %7s %6s %6s %6s %6s %6s\n", "DIR", "SOURCE", "DEST",
        "READY", "FRAMES", "MIB", "CHUNKS", "CRC", "EPOCH", "TIMEOUT", "INCOMP", "CONFL", "HEADER", "POOL", "OTHER");
    for (const tp_json_t *m = tp_json_get(root, "mappings")->child; m != NULL; m = m->next)
    {
        const tp_json_t *dir = tp_json_get(m, "direction");
        const tp_json_t *ready = tp_json_get(m, "ready");
        bool is_send = dir != NULL && strcmp(dir->text, "send") == 0;
        const tp_json_t *drops = tp_json_get(m, "drops");
        printf("  %-7s %-7" PRIu64 " %-7" PRIu64 " %5s %10" PRIu64 " %12.1f %10" PRIu64 " |",
            is_send ? "send" : "receive", tp_cli_json_u64(m, "source"), tp_cli_json_u64(m, "dest"), ready != NULL && ready->boolean ? "yes" : "no",
            tp_cli_json_u64(m, is_send ? "frames_sent" : "frames_rebuilt"),
            (double)tp_cli_json_u64(m, is_send ? "bytes_sent" : "bytes_rebuilt") / (1024.0 * 1024.0),
            tp_cli_json_u64(m, is_send ? "chunks_sent" : "chunks"));
        if (is_send)
        {
            printf(" lapped %" PRIu64 ", too large %" PRIu64 ", back-pressured %" PRIu64 "\n",
                tp_cli_json_u64(m, "frames_lapped"), tp_cli_json_u64(m, "frames_too_large"),
                tp_cli_json_u64(m, "frames_back_pressured"));
            continue;
        }
        printf("       %6" PRIu64 " %6" PRIu64 " %7" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64
               " %6" PRIu64 "\n",
            tp_cli_json_u64(drops, "crc"), tp_cli_json_u64(drops, "epoch"), tp_cli_json_u64(drops, "timeout"),
            tp_cli_json_u64(drops, "incomplete"), tp_cli_json_u64(drops, "conflict"), tp_cli_json_u64(drops, "header"),
            tp_cli_json_u64(drops, "pool") + tp_cli_json_u64(m, "frames_no_local_pool"), other_drops(drops));
    }
    return 0;
}

int tp_cmd_bridge(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "status") == 0)
    {
        return tp_cli_status_main("bridge", argc, argv, print_report);
    }
    const char *direction = NULL;
    int at = 1;
    if (argc >= 3 && strcmp(argv[1], "--direction") == 0)
    {
        direction = argv[2];
        if (strcmp(direction, "send") != 0 && strcmp(direction, "receive") != 0)
        {
            return tp_cli_fail(TP_EXIT_USAGE, "bridge", "--direction is '%s'; expected send or receive", direction);
        }
        at = 3;
    }
    if (argc != at + 1 || tp_cli_is_help(argv[at]))
    {
        bool is_help = argc == at + 1;
        bridge_usage(is_help ? stdout : stderr);
        return is_help ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    return run(argv[at], direction);
}
