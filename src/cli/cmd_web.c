/* `tp web`: the dashboard server (tp_web.c) from the command line. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "cli/tp_web.h"
#include "core/tp_err.h"
#include "driver/tp_driver_internal.h"
#include "tensorpool/tp_driver.h"

static void web_usage(FILE *out)
{
    fprintf(out,
        "usage: tp web [--listen ADDR:PORT] [--config DRIVER_CONFIG | --bus-dir DIR] [--allowed-base-dirs DIRS]\n"
        "              [--control-stream-id N]\n\n"
        "Serve a read-only dashboard of the local driver (default 127.0.0.1:8080; open http://127.0.0.1:8080/),\n"
        "updated live (server-sent events, no reload): its streams with frames/s, MiB/s and drops and their last\n"
        "minute as sparklines, the announce age, each consumer's QoS report, the leases, and a preview of each\n"
        "stream's latest frame: an image (PNG, 320 pixels wide at most, 5 per second) when the tensor is one,\n"
        "else a histogram with min/max/mean. Previews come from a RATE_LIMITED consumer per stream (5 frames/s):\n"
        "a browser tab costs a producer nothing. A JSON API under the same server:\n"
        "  /api/streams                 streams, rates, drops, history, consumers' QoS, previews (JSON)\n"
        "  /api/status                  the driver's status file (streams, leases, counters)\n"
        "  /api/streams/ID/latest.png   the latest frame as PNG (415 when it is not an image)\n"
        "  /api/streams/ID/stats        min, max, mean and a 16-bin histogram of the latest frame (JSON)\n"
        "  /api/events                  the /api/streams snapshot once a second as server-sent events\n"
        "  /?focus=ID                   the page showing only that stream's preview\n"
        "--config takes the bus directory, the control stream and the SHM base directory from the driver's\n"
        "configuration file (the options given beside it win). Ctrl-C stops it.\n\n"
        "example:\n"
        "  tp web --listen 127.0.0.1:8080\n\n"
        "exit status: 0 stopped; 1 it could not listen or find the bus; 2 bad arguments.\n");
}

/* The driver's configuration file: its bus, control stream and SHM base, unless given on the command line. */
static int apply_config(const char *path, tp_web_options_t *o, char *bus_dir, size_t bus_capacity, char *base_dir,
    size_t base_capacity)
{
    tp_driver_context_t *ctx = NULL;
    if (tp_driver_context_init(&ctx) < 0 || tp_driver_context_load_file(ctx, path) < 0)
    {
        tp_driver_context_close(ctx);
        return -1;
    }
    if (o->bus_dir == NULL && ctx->config.bus_dir[0] != '\0')
    {
        snprintf(bus_dir, bus_capacity, "%s", ctx->config.bus_dir);
        o->bus_dir = bus_dir;
    }
    if (o->base_dirs == NULL && ctx->config.base_dir[0] != '\0')
    {
        snprintf(base_dir, base_capacity, "%s", ctx->config.base_dir);
        o->base_dirs = base_dir;
    }
    if (o->control_stream_id == 0)
    {
        o->control_stream_id = ctx->config.control_stream_id;
    }
    tp_driver_context_close(ctx);
    return 0;
}

int tp_cmd_web(int argc, char **argv)
{
    tp_web_options_t o = { .listen = "127.0.0.1:8080" };
    const char *config = NULL;
    for (int i = 1; i < argc; i++)
    {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (tp_cli_is_help(argv[i]))
        {
            web_usage(stdout);
            return TP_EXIT_OK;
        }
        if (v == NULL)
        {
            return tp_cli_fail(TP_EXIT_USAGE, "web", "'%s' is unknown, or lacks its value (see --help)", argv[i]);
        }
        if (strcmp(argv[i], "--listen") == 0)
        {
            o.listen = v;
        }
        else if (strcmp(argv[i], "--config") == 0)
        {
            config = v;
        }
        else if (strcmp(argv[i], "--bus-dir") == 0)
        {
            o.bus_dir = v;
        }
        else if (strcmp(argv[i], "--allowed-base-dirs") == 0)
        {
            o.base_dirs = v;
        }
        else if (strcmp(argv[i], "--control-stream-id") == 0)
        {
            uint64_t id = 0;
            if (tp_cli_parse_u64(v, 1, INT32_MAX, &id) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "web", "--control-stream-id: %s", tp_errmsg());
            }
            o.control_stream_id = (uint32_t)id;
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, "web", "unknown option '%s' (see --help)", argv[i]);
        }
        i++;
    }
    static char bus_dir[4096];
    static char base_dir[4096];
    if (config != NULL && apply_config(config, &o, bus_dir, sizeof(bus_dir), base_dir, sizeof(base_dir)) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, "web", "%s", tp_errmsg());
    }
    tp_cli_install_stop_handlers();
    tp_web_t *web = NULL;
    if (tp_web_start(&web, &o) < 0)
    {
        return tp_cli_fail(tp_errcode() == TP_E_INVALID ? TP_EXIT_USAGE : TP_EXIT_FAILED, "web", "%s", tp_errmsg());
    }
    printf("tp web: %s (Ctrl-C stops it)\n", tp_web_url(web));
    fflush(stdout);
    while (!tp_cli_stop_requested())
    {
        usleep(50000);
    }
    tp_web_stop(web);
    return TP_EXIT_OK;
}
