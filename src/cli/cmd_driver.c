/*
 * `tp driver`: run the SHM driver in the foreground, look at a running one (status, streams, leases: read from
 * the status file it keeps in the bus directory), or ask it to shut down.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/tp_cli.h"
#include "cli/tp_driver_proxy.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_json.h"
#include "core/tp_log.h"
#include "core/tp_toml.h"
#include "driver/tp_driver_config.h"
#include "driver/tp_driver_internal.h"
#include "driver/tp_driver_status.h"
#include "tensorpool/tp_driver.h"
#include "tp_sbe_driver.h"

#define STATUS_MAX_BYTES (16u << 20)

/* The driver watches every lease-holding process through a pidfd (driver spec 4.4) and maps every region: a crowd
 * of a thousand clients needs more files than the usual soft limit of 1024. Raise it to the hard limit, as servers
 * do; past it, liveness falls back to a periodic check of each process. */
static void raise_open_file_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
    {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void driver_usage(FILE *out)
{
    fprintf(out,
        "usage: tp driver CONFIG [--set KEY=VALUE]...\n"
        "       tp driver status|streams|leases [--config CONFIG | --bus-dir DIR] [--control-stream-id N] [--json]\n"
        "       tp driver shutdown --token TOKEN [--reason admin|normal|error] [--config CONFIG | --bus-dir DIR]\n"
        "                          [--control-stream-id N] [--wait SECONDS]\n\n"
        "Run the SHM driver in the foreground: it creates and owns the shared-memory regions of the streams in\n"
        "CONFIG (a TOML file, see docs/CONFIG.md), answers attach, detach and keepalive requests on the control\n"
        "stream, keeps one producer per stream, bumps epochs and announces pools. Logs go to stderr. SIGINT or\n"
        "SIGTERM stop it cleanly after publishing ShmDriverShutdown. --set overrides one key after the file and\n"
        "the environment (e.g. --set policies.announce_period_ms=200). It logs at info level unless TP_LOG or\n"
        "TP_LOG_LEVEL say otherwise. It serves a thousand client processes and more; each bus stream it creates\n"
        "has room for 2048 publications and subscriptions, or TP_BUS_REGISTRY_SLOTS (16 to 65536).\n\n"
        "  status      the running driver: pid, uptime, channels, counters\n"
        "  streams     its streams: epoch, producer, consumers, region directory\n"
        "  leases      its active leases with their ages and time to expiry\n"
        "  shutdown    send ShmDriverShutdownRequest with the token of policies.shutdown_token; with --wait,\n"
        "              wait until the driver announced its shutdown\n\n"
        "The inspection commands read driver-<control stream id>.json, which the driver rewrites every second in\n"
        "its bus directory; the directory and stream come from --config, else --bus-dir / --control-stream-id,\n"
        "else $TP_BUS_DIR and 1000.\n\n"
        "examples:\n"
        "  tp driver config/driver.toml\n"
        "  tp driver streams --config config/driver.toml\n"
        "  tp driver shutdown --config config/driver.toml --token \"$TOKEN\" --wait 5\n\n"
        "exit status: 0 success; 1 the driver failed or is not running; 2 usage error or invalid configuration.\n");
}

/* ---- running ---- */

static int driver_run(int argc, char **argv)
{
    const char *path = argv[0];
    tp_driver_context_t *ctx = NULL;
    tp_driver_t *driver = NULL;
    int status = TP_EXIT_USAGE;
    if (getenv("TP_LOG") == NULL && getenv("TP_LOG_LEVEL") == NULL)
    {
        tp_log_set_level(TP_LOG_INFO); /* a foreground service says what it does */
    }
    if (tp_driver_context_init(&ctx) < 0 || tp_driver_context_load_file(ctx, path) < 0)
    {
        fprintf(stderr, "tp driver: %s\n", tp_errmsg());
        goto done;
    }
    for (int i = 1; i < argc; i++)
    {
        if (strcmp(argv[i], "--set") == 0 && i + 1 < argc)
        {
            char key[256];
            const char *kv = argv[++i];
            const char *eq = strchr(kv, '=');
            if (eq == NULL || (size_t)(eq - kv) >= sizeof(key))
            {
                status = tp_cli_fail(TP_EXIT_USAGE, "driver", "--set wants KEY=VALUE, got '%s'", kv);
                goto done;
            }
            memcpy(key, kv, (size_t)(eq - kv));
            key[eq - kv] = '\0';
            if (tp_driver_context_set(ctx, key, eq + 1) < 0)
            {
                status = tp_cli_fail(TP_EXIT_USAGE, "driver", "--set %s: %s", kv, tp_errmsg());
                goto done;
            }
        }
        else
        {
            status = tp_cli_fail(TP_EXIT_USAGE, "driver", "unexpected argument '%s' (see tp driver --help)",
                argv[i]);
            goto done;
        }
    }
    raise_open_file_limit();
    if (tp_driver_init(&driver, ctx) < 0)
    {
        fprintf(stderr, "tp driver: %s\n", tp_errmsg());
        status = tp_errcode() == TP_E_CONFIG ? TP_EXIT_USAGE : TP_EXIT_FAILED;
        goto done;
    }
    tp_cli_install_stop_handlers();
    if (tp_driver_run(driver, tp_cli_stop_flag()) < 0)
    {
        fprintf(stderr, "tp driver: stopped on an error: %s\n", tp_errmsg());
        status = TP_EXIT_FAILED;
    }
    else
    {
        status = TP_EXIT_OK;
    }
done:
    tp_driver_close(driver);
    tp_driver_context_close(ctx);
    return status;
}

/* ---- inspection ---- */

typedef struct locate
{
    const char *config_path;
    const char *bus_dir;
    uint32_t control_stream_id;
    bool has_stream_id;
    bool json;
    const char *token;
    uint8_t reason;
    double wait_s;
} locate_t;

static int locate_parse(int argc, char **argv, locate_t *l, bool is_shutdown)
{
    memset(l, 0, sizeof(*l));
    l->reason = TP_DRIVER_SHUTDOWN_REASON_ADMIN;
    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
        if (strcmp(a, "--json") == 0 && !is_shutdown)
        {
            l->json = true;
            continue;
        }
        if (v == NULL)
        {
            return tp_cli_fail(TP_EXIT_USAGE, "driver", "'%s' needs a value or is unknown (see tp driver --help)", a);
        }
        i++;
        if (strcmp(a, "--config") == 0)
        {
            l->config_path = v;
        }
        else if (strcmp(a, "--bus-dir") == 0)
        {
            l->bus_dir = v;
        }
        else if (strcmp(a, "--control-stream-id") == 0)
        {
            if (tp_cli_parse_u64(v, 1, INT32_MAX, &n) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "driver", "--control-stream-id: %s", tp_errmsg());
            }
            l->control_stream_id = (uint32_t)n;
            l->has_stream_id = true;
        }
        else if (strcmp(a, "--token") == 0 && is_shutdown)
        {
            l->token = v;
        }
        else if (strcmp(a, "--reason") == 0 && is_shutdown)
        {
            l->reason = strcmp(v, "normal") == 0 ? TP_DRIVER_SHUTDOWN_REASON_NORMAL
                : strcmp(v, "admin") == 0        ? TP_DRIVER_SHUTDOWN_REASON_ADMIN
                : strcmp(v, "error") == 0        ? TP_DRIVER_SHUTDOWN_REASON_ERROR
                                                 : 255;
            if (l->reason == 255)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "driver", "--reason is normal, admin or error, not '%s'", v);
            }
        }
        else if (strcmp(a, "--wait") == 0 && is_shutdown)
        {
            if (tp_cli_parse_double(v, 0, 3600, &l->wait_s) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "driver", "--wait: %s", tp_errmsg());
            }
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, "driver", "unknown option '%s' (see tp driver --help)", a);
        }
    }
    if (is_shutdown && l->token == NULL)
    {
        return tp_cli_fail(TP_EXIT_USAGE, "driver", "shutdown needs --token");
    }
    return TP_EXIT_OK;
}

/* Resolve the bus directory and control stream from the options (a config file wins). */
static int locate_driver(const locate_t *l, tp_driver_config_t *c, tp_bus_t **bus)
{
    tp_driver_context_t *ctx = NULL;
    if (tp_driver_context_init(&ctx) < 0 || (l->config_path != NULL && tp_driver_context_load_file(ctx,
                                                                            l->config_path) < 0))
    {
        tp_driver_context_close(ctx);
        return tp_cli_fail(TP_EXIT_USAGE, "driver", "%s", tp_errmsg());
    }
    *c = ctx->config;
    tp_driver_context_close(ctx);
    if (l->bus_dir != NULL)
    {
        snprintf(c->bus_dir, sizeof(c->bus_dir), "%s", l->bus_dir);
    }
    if (l->has_stream_id)
    {
        c->control_stream_id = l->control_stream_id;
    }
    if (tp_bus_init(bus, c->bus_dir[0] != '\0' ? c->bus_dir : NULL) < 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "driver", "opening the bus directory: %s", tp_errmsg());
    }
    return TP_EXIT_OK;
}

static uint64_t jnum(const tp_json_t *o, const char *key)
{
    uint64_t v = 0;
    const tp_json_t *n = tp_json_get(o, key);
    if (n != NULL && tp_json_to_u64(n, &v) < 0)
    {
        int64_t s = 0;
        v = tp_json_to_i64(n, &s) == 0 ? (uint64_t)s : 0;
    }
    return v;
}

static int64_t jint(const tp_json_t *o, const char *key)
{
    int64_t v = 0;
    const tp_json_t *n = tp_json_get(o, key);
    if (n != NULL)
    {
        tp_json_to_i64(n, &v);
    }
    return v;
}

static const char *jstr(const tp_json_t *o, const char *key)
{
    const tp_json_t *n = tp_json_get(o, key);
    return n != NULL && n->type == TP_JSON_STRING ? n->text : "";
}

static void print_status(const tp_json_t *root)
{
    const tp_json_t *k = tp_json_get(root, "counters");
    printf("driver pid %" PRIu64 " (%s), up %.1f s%s%s\n", jnum(root, "pid"), jstr(root, "state"),
        (double)jint(root, "uptime_ms") / 1000.0, jstr(root, "instance_id")[0] != '\0' ? ", instance " : "",
        jstr(root, "instance_id"));
    printf("control %s stream %" PRIu64 ", announces %s stream %" PRIu64 " every %" PRIu64 " ms\n",
        jstr(root, "control_channel"), jnum(root, "control_stream_id"), jstr(root, "announce_channel"),
        jnum(root, "announce_stream_id"), jnum(root, "announce_period_ms"));
    printf("regions under %s (namespace %s); leases expire after %" PRIu64 " x %" PRIu64 " ms without keepalive\n",
        jstr(root, "base_dir"), jstr(root, "namespace"), jnum(root, "lease_expiry_grace_intervals"),
        jnum(root, "lease_keepalive_interval_ms"));
    char shm[256];
    tp_cli_format_shm_use(shm, sizeof(shm), root, jstr(root, "base_dir"));
    if (shm[0] != '\0')
    {
        printf("%s\n", shm);
    }
    const tp_json_t *streams = tp_json_get(root, "streams");
    const tp_json_t *leases = tp_json_get(root, "leases");
    printf("%zu stream(s), %zu active lease(s)\n", streams != NULL ? streams->count : 0,
        leases != NULL ? leases->count : 0);
    if (k != NULL)
    {
        printf("attaches %" PRIu64 " ok, %" PRIu64 " refused; detaches %" PRIu64 "; keepalives %" PRIu64
            " (%" PRIu64 " ignored); leases expired %" PRIu64 ", revoked %" PRIu64 "\n",
            jnum(k, "attaches_ok"), jnum(k, "attaches_rejected"), jnum(k, "detaches"), jnum(k, "keepalives"),
            jnum(k, "keepalives_ignored"), jnum(k, "leases_expired"), jnum(k, "leases_revoked"));
        printf("announces %" PRIu64 "; epochs bumped %" PRIu64 "; epoch directories removed %" PRIu64 "\n",
            jnum(k, "announces"), jnum(k, "epochs_bumped"), jnum(k, "epoch_dirs_removed"));
        printf("ignored messages: %" PRIu64 " malformed, %" PRIu64 " unknown template, %" PRIu64
            " newer version, %" PRIu64 " other schema; shutdown requests refused %" PRIu64 "\n",
            jnum(k, "malformed_messages"), jnum(k, "unknown_messages"), jnum(k, "newer_version_messages"),
            jnum(k, "other_schema_messages"), jnum(k, "shutdown_requests_refused"));
        printf("per-consumer stream answers %" PRIu64 " (%" PRIu64 " hellos not for the driver)\n",
            jnum(k, "consumer_configs"), jnum(k, "consumer_hellos_ignored"));
    }
    const tp_json_t *sv = tp_json_get(root, "supervisor");
    const tp_json_t *parties = sv != NULL ? tp_json_get(sv, "parties") : NULL;
    if (parties != NULL)
    {
        size_t producers = 0, consumers = 0, stale = 0, ruled = 0;
        for (size_t i = 0; i < parties->count; i++)
        {
            const tp_json_t *p = tp_json_at(parties, i);
            bool is_consumer = strcmp(jstr(p, "role"), "CONSUMER") == 0;
            producers += !is_consumer;
            consumers += is_consumer;
            const tp_json_t *st = tp_json_get(p, "stale");
            stale += st != NULL && st->type == TP_JSON_BOOL && st->boolean;
            ruled += is_consumer && jint(p, "rule") >= 0;
        }
        printf("supervisor: %" PRIu64 " rule(s); %zu producer(s), %zu consumer(s) (%zu under a rule), %zu stale; %"
            PRIu64 " ConsumerConfig sent\n", jnum(sv, "rules"), producers, consumers, ruled, stale,
            jnum(sv, "configs_sent"));
    }
}

static void print_streams(const tp_json_t *root)
{
    printf("%-8s %-20s %-8s %-12s %-22s %-9s %s\n", "STREAM", "NAME", "EPOCH", "PROFILE", "PRODUCER", "CONSUMERS",
        "DIRECTORY");
    const tp_json_t *streams = tp_json_get(root, "streams");
    for (size_t i = 0; streams != NULL && i < streams->count; i++)
    {
        const tp_json_t *s = tp_json_at(streams, i);
        char producer[64] = "-";
        if (jnum(s, "producer_lease_id") != 0)
        {
            snprintf(producer, sizeof(producer), "client %" PRIu64 " lease %" PRIu64, jnum(s, "producer_client_id"),
                jnum(s, "producer_lease_id"));
        }
        printf("%-8" PRIu64 " %-20s %-8" PRIu64 " %-12s %-22s %-9" PRIu64 " %s\n", jnum(s, "stream_id"),
            jstr(s, "name"), jnum(s, "epoch"), jstr(s, "profile"), producer, jnum(s, "consumers"),
            jstr(s, "epoch_dir"));
    }
}

static void print_leases(const tp_json_t *root)
{
    printf("%-20s %-8s %-10s %-9s %-6s %-10s %-15s %-11s %s\n", "LEASE", "STREAM", "CLIENT", "ROLE", "NODE", "AGE",
        "LAST KEEPALIVE", "EXPIRES IN", "OWN STREAMS");
    const tp_json_t *leases = tp_json_get(root, "leases");
    for (size_t i = 0; leases != NULL && i < leases->count; i++)
    {
        const tp_json_t *l = tp_json_at(leases, i);
        char own[64] = "-";
        if (jnum(l, "descriptor_stream_id") != 0 || jnum(l, "control_stream_id") != 0)
        {
            snprintf(own, sizeof(own), "descriptor %" PRIu64 ", control %" PRIu64, jnum(l, "descriptor_stream_id"),
                jnum(l, "control_stream_id"));
        }
        char expires[32];
        snprintf(expires, sizeof(expires), "%.1f s", (double)jint(l, "expires_in_ms") / 1000.0);
        printf("%-20" PRIu64 " %-8" PRIu64 " %-10" PRIu64 " %-9s %-6" PRIu64 " %-10.1f %-15.1f %-11s %s\n",
            jnum(l, "lease_id"), jnum(l, "stream_id"), jnum(l, "client_id"), jstr(l, "role"), jnum(l, "node_id"),
            (double)jint(l, "age_ms") / 1000.0, (double)jint(l, "last_keepalive_ms") / 1000.0, expires, own);
    }
}

static int driver_inspect(int argc, char **argv)
{
    locate_t l;
    int status = locate_parse(argc, argv, &l, false);
    if (status != TP_EXIT_OK)
    {
        return status;
    }
    tp_driver_config_t *c = NULL;
    tp_bus_t *bus = NULL;
    uint8_t *text = NULL;
    size_t length = 0;
    tp_json_t *root = NULL;
    if (tp_alloc((void **)&c, sizeof(*c)) < 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "driver", "out of memory");
    }
    status = locate_driver(&l, c, &bus);
    if (status != TP_EXIT_OK)
    {
        goto done;
    }
    char path[TP_PATH_MAX];
    tp_driver_status_path(path, sizeof(path), tp_bus_dir(bus), c->control_stream_id);
    if (tp_fs_read_file(path, STATUS_MAX_BYTES, &text, &length) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "driver",
            "no driver serves control stream %" PRIu32 " from %s (no status file %s)", c->control_stream_id,
            tp_bus_dir(bus), path);
        goto done;
    }
    if (tp_json_parse(&root, (const char *)text, length) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "driver", "the status file %s is not valid JSON", path);
        goto done;
    }
    uint64_t pid = jnum(root, "pid");
    if (pid == 0 || pid > INT32_MAX || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "driver",
            "the driver is not running: %s was left by pid %" PRIu64 ", which has exited", path, pid);
        goto done;
    }
    if (l.json)
    {
        tp_strbuf_t out;
        tp_strbuf_init(&out);
        tp_json_pretty(&out, (const char *)text);
        puts(tp_strbuf_cstr(&out));
        tp_strbuf_fini(&out);
    }
    else if (strcmp(argv[0], "status") == 0)
    {
        print_status(root);
    }
    else if (strcmp(argv[0], "streams") == 0)
    {
        print_streams(root);
    }
    else
    {
        print_leases(root);
    }
    status = TP_EXIT_OK;
done:
    tp_json_free(root);
    tp_free(text);
    tp_bus_close(bus);
    tp_free(c);
    return status;
}

static int driver_shutdown(int argc, char **argv)
{
    locate_t l;
    int status = locate_parse(argc, argv, &l, true);
    if (status != TP_EXIT_OK)
    {
        return status;
    }
    tp_driver_config_t *c = NULL;
    tp_bus_t *bus = NULL;
    tp_driver_proxy_t *proxy = NULL;
    if (tp_alloc((void **)&c, sizeof(*c)) < 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "driver", "out of memory");
    }
    status = locate_driver(&l, c, &bus);
    if (status != TP_EXIT_OK)
    {
        goto done;
    }
    if (tp_driver_proxy_open(&proxy, bus, c->control_channel, c->control_stream_id) < 0 ||
        tp_driver_proxy_shutdown_request(proxy, l.token, l.reason) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "driver", "sending the shutdown request: %s", tp_errmsg());
        goto done;
    }
    status = TP_EXIT_OK;
    if (l.wait_s > 0)
    {
        size_t from = 0;
        if (tp_driver_proxy_await_event(proxy, TP_CONTROL_EVENT_SHUTDOWN, 0, 0, &from, NULL,
                (int64_t)(l.wait_s * 1e9)) < 0)
        {
            status = tp_cli_fail(TP_EXIT_FAILED, "driver",
                "no ShmDriverShutdown within %.1f s (a wrong token is ignored by the driver)", l.wait_s);
            goto done;
        }
        printf("driver on control stream %" PRIu32 " shut down\n", c->control_stream_id);
    }
    else
    {
        printf("shutdown request sent to control stream %" PRIu32 "\n", c->control_stream_id);
    }
done:
    tp_driver_proxy_close(proxy);
    tp_bus_close(bus);
    tp_free(c);
    return status;
}

int tp_cmd_driver(int argc, char **argv)
{
    bool wants_help = false;
    for (int i = 1; i < argc; i++)
    {
        wants_help = wants_help || tp_cli_is_help(argv[i]);
    }
    if (argc < 2 || wants_help)
    {
        driver_usage(wants_help ? stdout : stderr);
        return wants_help ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "status") == 0 || strcmp(sub, "streams") == 0 || strcmp(sub, "leases") == 0)
    {
        return driver_inspect(argc - 1, argv + 1);
    }
    if (strcmp(sub, "shutdown") == 0)
    {
        return driver_shutdown(argc - 1, argv + 1);
    }
    if (sub[0] == '-')
    {
        return tp_cli_fail(TP_EXIT_USAGE, "driver", "unknown option '%s' (see tp driver --help)", sub);
    }
    return driver_run(argc - 1, argv + 1);
}
