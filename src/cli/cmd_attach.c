/*
 * Speaking to the driver by hand: `tp attach` (and hold the lease with keepalives), `tp detach`, `tp keepalive`,
 * and `tp send consumer-config`. Each prints what it sent and the driver's answer.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_proc.h"
#include "core/tp_strbuf.h"
#include "cli/tp_driver_proxy.h"
#include "tensorpool/tp_bus.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"

#define CONTROL_DEFAULT_CHANNEL TP_BUS_DEFAULT_CHANNEL

/* Everything the four commands take; each uses what it needs. */
typedef struct talk
{
    const char *cmd;
    const char *bus_dir;
    const char *channel;
    uint64_t control_stream_id;
    uint64_t stream_id;
    bool has_stream_id;
    uint64_t client_id;
    bool has_client_id;
    uint64_t lease_id;
    bool has_lease_id;
    int role; /* 0 unset */
    uint8_t publish_mode;
    uint8_t hugepages;
    uint64_t layout_version;
    double timeout_s;
    double hold_s;
    uint64_t count;
    double interval_s;
    bool json;
    /* consumer-config */
    uint8_t mode;
    uint8_t use_shm;
    const char *descriptor_channel;
    uint64_t descriptor_stream_id;
    const char *control_channel;
    uint64_t per_consumer_control_stream_id;
    const char *fallback_uri;
} talk_t;

static void common_help(FILE *out)
{
    fprintf(out,
        "  --bus-dir DIR              the bus directory ($TP_BUS_DIR, else /dev/shm/tensorpool-$USER/bus)\n"
        "  --control-channel URI      the driver's control channel ($TP_CONTROL_CHANNEL, else %s)\n"
        "  --control-stream-id N      its stream id ($TP_CONTROL_STREAM_ID, else $TP_CLIENT_CONTROL_STREAM_ID, else\n"
        "                             1000)\n",
        CONTROL_DEFAULT_CHANNEL);
}

static void attach_usage(FILE *out)
{
    fprintf(out,
        "usage: tp attach --role producer|consumer --stream-id N [--client-id N] [--publish-mode MODE]\n"
        "                 [--expected-layout-version V] [--hugepages POLICY] [--hold SECONDS] [--timeout S]\n"
        "                 [--json] [common options]\n\n"
        "Send ShmAttachRequest to the driver and print its ShmAttachResponse: code, lease id and expiry, epoch,\n"
        "layout, header ring and pools with their region URIs, or the refusal's message. A lease belongs to\n"
        "the process that attached: without --hold the command exits at once and the driver ends the lease\n"
        "when it sees the process gone (within about 10 ms); with --hold it keeps the lease alive with\n"
        "ShmLeaseKeepalive for that long (or until Ctrl-C), then detaches.\n\n"
        "options:\n"
        "  --role R                   producer or consumer\n"
        "  --stream-id N              the stream\n"
        "  --client-id N              the client id (default: random, non-zero)\n"
        "  --publish-mode MODE        require-existing (default) or existing-or-create\n"
        "  --expected-layout-version V  default 1; 0 accepts any\n"
        "  --hugepages POLICY         unspecified (default), standard or hugepages\n"
        "  --hold S                   keep the lease for S seconds, then detach\n"
        "  --timeout S                wait at most S seconds for the answer (default 5)\n"
        "  --json                     the response as JSON\n");
    common_help(out);
    fprintf(out,
        "\nexamples:\n"
        "  tp attach --role consumer --stream-id 10000\n"
        "  tp attach --role producer --stream-id 10000 --hold 30\n\n"
        "exit status: 0 attached (OK); 1 refused or no answer; 2 bad arguments.\n");
}

static void detach_usage(FILE *out)
{
    fprintf(out,
        "usage: tp detach --lease-id N --stream-id N --client-id N --role producer|consumer [--timeout S]\n"
        "                 [common options]\n\n"
        "Send ShmDetachRequest and print the driver's answer (OK, or REJECTED when the lease, stream, client or\n"
        "role do not match an active lease).\n\noptions:\n");
    common_help(out);
    fprintf(out, "\nexit status: 0 OK; 1 refused or no answer; 2 bad arguments.\n");
}

static void keepalive_usage(FILE *out)
{
    fprintf(out,
        "usage: tp keepalive --lease-id N --stream-id N --client-id N --role producer|consumer [--count N]\n"
        "                    [--interval S] [common options]\n\n"
        "Send ShmLeaseKeepalive (default once; --count N every --interval seconds, default 1). The driver does\n"
        "not answer keepalives: `tp driver leases` shows the lease's expiry moving.\n\noptions:\n");
    common_help(out);
    fprintf(out, "\nexit status: 0 sent; 1 the bus failed; 2 bad arguments.\n");
}

static void send_usage(FILE *out)
{
    fprintf(out,
        "usage: tp send consumer-config --stream-id N --client-id N [--mode stream|rate-limited]\n"
        "                 [--use-shm 0|1] [--descriptor-channel URI --descriptor-stream-id N]\n"
        "                 [--per-consumer-control-channel URI --per-consumer-control-stream-id N]\n"
        "                 [--payload-fallback-uri URI] [common options]\n\n"
        "Publish a ConsumerConfig for consumer --client-id of stream --stream-id on the control stream, as a\n"
        "producer or supervisor would (wire spec 10.1.3). A per-consumer stream is named by a channel and a\n"
        "stream id together; giving only one of them is refused here, as the spec forbids it.\n\noptions:\n");
    common_help(out);
    fprintf(out, "\nexit status: 0 sent; 1 the bus failed; 2 bad arguments.\n");
}

static int parse_u64_opt(const char *cmd, const char *name, const char *v, uint64_t max, uint64_t *out)
{
    if (tp_cli_parse_u64(v, 0, max, out) < 0)
    {
        return tp_cli_fail(-1, cmd, "%s: %s", name, tp_errmsg());
    }
    return 0;
}

/* Parse every option; unknown ones and ones this command does not take are usage errors. `allowed` lists the
 * options of the command (space-separated, with spaces around). */
/* The defaults, then the environment (TP_CONTROL_CHANNEL, TP_CONTROL_STREAM_ID). */
static int talk_defaults(talk_t *t)
{
    const char *env_channel = tp_cli_getenv("CONTROL_CHANNEL");
    t->channel = env_channel != NULL ? env_channel : CONTROL_DEFAULT_CHANNEL;
    t->control_stream_id = 1000;
    const char *env_stream = tp_cli_getenv("CONTROL_STREAM_ID");
    if (env_stream != NULL && tp_cli_parse_u64(env_stream, 1, INT32_MAX, &t->control_stream_id) < 0)
    {
        return tp_cli_fail(-1, t->cmd, "TP_CONTROL_STREAM_ID (or TP_CLIENT_CONTROL_STREAM_ID): %s", tp_errmsg());
    }
    t->publish_mode = TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING;
    t->hugepages = TP_DRIVER_HUGEPAGES_POLICY_UNSPECIFIED;
    t->layout_version = 1;
    t->timeout_s = 5;
    t->count = 1;
    t->interval_s = 1;
    t->mode = TP_WIRE_MODE_STREAM;
    t->use_shm = 1;
    return 0;
}

/* The options that take a word: role, publish mode, hugepages policy, consumer mode. 1: not one of them. */
static int talk_word_option(talk_t *t, const char *a, const char *v)
{
    if (strcmp(a, "--role") == 0)
    {
        t->role = strcmp(v, "producer") == 0 ? TP_DRIVER_ROLE_PRODUCER
                  : strcmp(v, "consumer") == 0 ? TP_DRIVER_ROLE_CONSUMER
                                               : -1;
        return t->role < 0 ? tp_cli_fail(-1, t->cmd, "--role is producer or consumer, not '%s'", v) : 0;
    }
    if (strcmp(a, "--publish-mode") == 0)
    {
        t->publish_mode = strcmp(v, "require-existing") == 0     ? TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING
                          : strcmp(v, "existing-or-create") == 0 ? TP_DRIVER_PUBLISH_MODE_EXISTING_OR_CREATE
                                                                 : 0;
        return t->publish_mode == 0
            ? tp_cli_fail(-1, t->cmd, "--publish-mode is require-existing or existing-or-create, not '%s'", v)
            : 0;
    }
    if (strcmp(a, "--hugepages") == 0)
    {
        t->hugepages = strcmp(v, "unspecified") == 0 ? TP_DRIVER_HUGEPAGES_POLICY_UNSPECIFIED
                       : strcmp(v, "standard") == 0  ? TP_DRIVER_HUGEPAGES_POLICY_STANDARD
                       : strcmp(v, "hugepages") == 0 ? TP_DRIVER_HUGEPAGES_POLICY_HUGEPAGES
                                                     : 255;
        return t->hugepages == 255
            ? tp_cli_fail(-1, t->cmd, "--hugepages is unspecified, standard or hugepages, not '%s'", v)
            : 0;
    }
    if (strcmp(a, "--mode") == 0)
    {
        t->mode = strcmp(v, "stream") == 0         ? TP_WIRE_MODE_STREAM
                  : strcmp(v, "rate-limited") == 0 ? TP_WIRE_MODE_RATE_LIMITED
                                                   : 0;
        return t->mode == 0 ? tp_cli_fail(-1, t->cmd, "--mode is stream or rate-limited, not '%s'", v) : 0;
    }
    return 1;
}

/* The options that take a number. 1: not one of them. */
static int talk_number_option(talk_t *t, const char *a, const char *v)
{
    const struct
    {
        const char *name;
        uint64_t max;
        uint64_t *out;
        bool *is_set;
    } ids[] = {
        { "--control-stream-id", INT32_MAX, &t->control_stream_id, NULL },
        { "--stream-id", UINT32_MAX - 1, &t->stream_id, &t->has_stream_id },
        { "--client-id", UINT32_MAX - 1, &t->client_id, &t->has_client_id },
        { "--lease-id", UINT64_MAX - 1, &t->lease_id, &t->has_lease_id },
        { "--expected-layout-version", UINT32_MAX - 1, &t->layout_version, NULL },
        { "--count", 1000000, &t->count, NULL },
        { "--descriptor-stream-id", UINT32_MAX - 1, &t->descriptor_stream_id, NULL },
        { "--per-consumer-control-stream-id", UINT32_MAX - 1, &t->per_consumer_control_stream_id, NULL },
    };
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
    {
        if (strcmp(a, ids[i].name) == 0)
        {
            if (ids[i].is_set != NULL)
            {
                *ids[i].is_set = true;
            }
            return parse_u64_opt(t->cmd, a, v, ids[i].max, ids[i].out);
        }
    }
    if (strcmp(a, "--hold") == 0 || strcmp(a, "--timeout") == 0 || strcmp(a, "--interval") == 0)
    {
        double *d = strcmp(a, "--hold") == 0 ? &t->hold_s : strcmp(a, "--timeout") == 0 ? &t->timeout_s
                                                                                          : &t->interval_s;
        return tp_cli_parse_double(v, 0, 86400, d) < 0 ? tp_cli_fail(-1, t->cmd, "%s: %s", a, tp_errmsg()) : 0;
    }
    if (strcmp(a, "--use-shm") == 0)
    {
        uint64_t u;
        int rc = parse_u64_opt(t->cmd, a, v, 1, &u);
        t->use_shm = (uint8_t)u;
        return rc;
    }
    return 1;
}

/* The options that take text. */
static void talk_text_option(talk_t *t, const char *a, const char *v)
{
    if (strcmp(a, "--bus-dir") == 0)
    {
        t->bus_dir = v;
    }
    else if (strcmp(a, "--control-channel") == 0)
    {
        t->channel = v;
    }
    else if (strcmp(a, "--descriptor-channel") == 0)
    {
        t->descriptor_channel = v;
    }
    else if (strcmp(a, "--per-consumer-control-channel") == 0)
    {
        t->control_channel = v;
    }
    else if (strcmp(a, "--payload-fallback-uri") == 0)
    {
        t->fallback_uri = v;
    }
}

static int talk_parse(talk_t *t, int argc, char **argv, int first, const char *allowed, void (*usage)(FILE *))
{
    if (talk_defaults(t) < 0)
    {
        return -1;
    }
    for (int i = first; i < argc; i++)
    {
        const char *a = argv[i];
        if (tp_cli_is_help(a))
        {
            usage(stdout);
            return 1;
        }
        char key[64];
        snprintf(key, sizeof(key), " %s ", a);
        if (a[0] != '-' || strstr(allowed, key) == NULL)
        {
            return tp_cli_fail(-1, t->cmd, "unknown option '%s' (see tp %s --help)", a, t->cmd);
        }
        if (strcmp(a, "--json") == 0)
        {
            t->json = true;
            continue;
        }
        if (i + 1 >= argc)
        {
            return tp_cli_fail(-1, t->cmd, "%s needs a value (see tp %s --help)", a, t->cmd);
        }
        const char *v = argv[++i];
        int rc = talk_word_option(t, a, v);
        rc = rc == 1 ? talk_number_option(t, a, v) : rc;
        if (rc == 1)
        {
            talk_text_option(t, a, v);
        }
        else if (rc != 0)
        {
            return -1;
        }
    }
    return 0;
}

static int need(const talk_t *t, bool ok, const char *what)
{
    return ok ? 0 : tp_cli_fail(-1, t->cmd, "%s is required (see tp %s --help)", what, t->cmd);
}

static int open_proxy(const talk_t *t, tp_bus_t **bus, tp_driver_proxy_t **proxy)
{
    if (tp_bus_init_existing(bus, t->bus_dir) < 0 ||
        tp_driver_proxy_open(proxy, *bus, t->channel, (uint32_t)t->control_stream_id) < 0)
    {
        return tp_cli_fail(-1, t->cmd, "%s", tp_errmsg());
    }
    return 0;
}

static void print_response(const talk_t *t, const tp_attach_params_t *p, const tp_attach_result_t *r)
{
    tp_strbuf_t b;
    tp_strbuf_init(&b);
    const char *code = tp_driver_response_code_name(r->code);
    if (t->json)
    {
        tp_strbuf_printf(&b, "{\"code\":\"%s\",\"client_id\":%" PRIu32 ",\"stream_id\":%" PRIu32, code, p->client_id,
            p->stream_id);
        if (r->code == TP_DRIVER_RESPONSE_CODE_OK)
        {
            tp_strbuf_printf(&b,
                ",\"lease_id\":%" PRIu64 ",\"epoch\":%" PRIu64 ",\"layout_version\":%" PRIu32
                ",\"header_nslots\":%" PRIu32
                ",\"header_slot_bytes\":%u,\"lease_expiry_in_ms\":%" PRId64 ",\"header_region_uri\":",
                r->lease_id, r->epoch, r->layout_version, r->header_nslots, r->header_slot_bytes,
                r->has_lease_expiry ? (int64_t)(((int64_t)r->lease_expiry_ns - tp_clock_monotonic_ns()) / TP_NS_PER_MS)
                                    : (int64_t)-1);
            tp_strbuf_json_string(&b, r->header_region_uri, strlen(r->header_region_uri));
            tp_strbuf_puts(&b, ",\"pools\":[");
            for (uint32_t i = 0; i < r->pool_count; i++)
            {
                tp_strbuf_printf(&b, "%s{\"pool_id\":%u,\"nslots\":%" PRIu32 ",\"stride_bytes\":%" PRIu32
                    ",\"region_uri\":",
                    i > 0 ? "," : "", r->pools[i].pool_id, r->pools[i].pool_nslots, r->pools[i].stride_bytes);
                tp_strbuf_json_string(&b, r->pools[i].region_uri, strlen(r->pools[i].region_uri));
                tp_strbuf_putc(&b, '}');
            }
            tp_strbuf_putc(&b, ']');
        }
        else
        {
            tp_strbuf_puts(&b, ",\"error_message\":");
            tp_strbuf_json_string(&b, r->error_message, strlen(r->error_message));
        }
        tp_strbuf_puts(&b, "}\n");
    }
    else if (r->code == TP_DRIVER_RESPONSE_CODE_OK)
    {
        tp_strbuf_printf(&b, "OK: %s lease %" PRIu64 " on stream %" PRIu32 " (client id %" PRIu32 "), epoch %" PRIu64
            ", layout %" PRIu32 "\n", tp_driver_role_name(p->role), r->lease_id, p->stream_id, p->client_id, r->epoch,
            r->layout_version);
        if (r->has_lease_expiry)
        {
            tp_strbuf_printf(&b, "lease expires in %" PRId64 " ms without a keepalive\n",
                (int64_t)(((int64_t)r->lease_expiry_ns - tp_clock_monotonic_ns()) / TP_NS_PER_MS));
        }
        tp_strbuf_printf(&b, "header ring: %" PRIu32 " x %u bytes  %s\n", r->header_nslots, r->header_slot_bytes,
            r->header_region_uri);
        for (uint32_t i = 0; i < r->pool_count; i++)
        {
            tp_strbuf_printf(&b, "pool %-3u     %" PRIu32 " x %" PRIu32 " bytes  %s\n", r->pools[i].pool_id,
                r->pools[i].pool_nslots, r->pools[i].stride_bytes, r->pools[i].region_uri);
        }
    }
    else
    {
        tp_strbuf_printf(&b, "%s: %s\n", code, r->error_message);
    }
    fputs(tp_strbuf_cstr(&b), stdout);
    fflush(stdout);
    tp_strbuf_fini(&b);
}

/* Keep the lease alive for hold seconds (or until Ctrl-C), reacting to its revocation, then detach. */
static int hold_lease(const talk_t *t, tp_driver_proxy_t *proxy, const tp_attach_params_t *p,
    const tp_attach_result_t *r)
{
    int64_t period = TP_NS_PER_S;
    int64_t now = tp_clock_monotonic_ns();
    if (r->has_lease_expiry && ((int64_t)r->lease_expiry_ns - now) / 3 < period)
    {
        period = ((int64_t)r->lease_expiry_ns - now) / 3 > TP_NS_PER_MS ? ((int64_t)r->lease_expiry_ns - now) / 3
                                                                          : TP_NS_PER_MS;
    }
    tp_cli_install_stop_handlers();
    int64_t end = now + (int64_t)(t->hold_s * 1e9);
    int64_t next = now + period;
    uint64_t sent = 0;
    size_t seen = tp_driver_proxy_event_count(proxy);
    while (!tp_cli_stop_requested() && tp_clock_monotonic_ns() < end)
    {
        tp_driver_proxy_poll(proxy);
        for (; seen < tp_driver_proxy_event_count(proxy); seen++)
        {
            const tp_control_event_t *e = tp_driver_proxy_event(proxy, seen);
            if ((e->kind == TP_CONTROL_EVENT_REVOKED && e->lease_id == r->lease_id) || e->kind == TP_CONTROL_EVENT_SHUTDOWN)
            {
                printf("lease %" PRIu64 " ended by the driver (%s) after %" PRIu64 " keepalives\n", r->lease_id,
                    e->kind == TP_CONTROL_EVENT_SHUTDOWN ? "driver shutdown" : "revoked", sent);
                return TP_EXIT_FAILED;
            }
        }
        int64_t now_ns = tp_clock_monotonic_ns();
        if (now_ns >= next)
        {
            tp_driver_proxy_keepalive(proxy, r->lease_id, p->stream_id, p->client_id, p->role);
            sent++;
            next += period;
        }
        /* Sleep until the next keepalive, at most 100 ms: a revocation is noticed that late at worst. Not parked
         * on the control stream's futex: every message on it would wake every holder, and each wake polls every
         * client's image, which a crowd of holders cannot afford. */
        int64_t wait_ns = next - now_ns < 100 * TP_NS_PER_MS ? next - now_ns : 100 * TP_NS_PER_MS;
        if (wait_ns > 0)
        {
            struct timespec ts = { .tv_sec = wait_ns / TP_NS_PER_S, .tv_nsec = wait_ns % TP_NS_PER_S };
            nanosleep(&ts, NULL);
        }
    }
    int32_t code = 0;
    char message[TP_CONTROL_MESSAGE_MAX];
    if (tp_driver_proxy_detach(proxy, r->lease_id, p->stream_id, p->client_id, p->role, &code, message,
            sizeof(message), (int64_t)(t->timeout_s * 1e9)) < 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, t->cmd, "held lease %" PRIu64 " (%" PRIu64 " keepalives); detach: %s",
            r->lease_id, sent, tp_errmsg());
    }
    printf("held lease %" PRIu64 " for %.1f s (%" PRIu64 " keepalives), detach: %s%s%s\n", r->lease_id,
        (double)(tp_clock_monotonic_ns() - now) / 1e9, sent, tp_driver_response_code_name(code),
        message[0] != '\0' ? ": " : "", message);
    return code == TP_DRIVER_RESPONSE_CODE_OK ? TP_EXIT_OK : TP_EXIT_FAILED;
}

int tp_cmd_attach(int argc, char **argv)
{
    talk_t t = { .cmd = "attach" };
    int rc = talk_parse(&t, argc, argv, 1,
        " --bus-dir --control-channel --control-stream-id --stream-id --client-id --role --publish-mode "
        "--expected-layout-version --hugepages --hold --timeout --json ",
        attach_usage);
    if (rc != 0)
    {
        return rc > 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    if (need(&t, t.role > 0, "--role") < 0 || need(&t, t.has_stream_id, "--stream-id") < 0)
    {
        return TP_EXIT_USAGE;
    }
    tp_attach_params_t p = { .stream_id = (uint32_t)t.stream_id,
        .client_id = t.has_client_id && t.client_id != 0 ? (uint32_t)t.client_id : (tp_random_u32() >> 1) + 1,
        .role = (uint8_t)t.role, .expected_layout_version = (uint32_t)t.layout_version,
        .publish_mode = t.publish_mode, .require_hugepages = t.hugepages };
    tp_bus_t *bus = NULL;
    tp_driver_proxy_t *proxy = NULL;
    static tp_attach_result_t r;
    int status = TP_EXIT_FAILED;
    if (open_proxy(&t, &bus, &proxy) < 0)
    {
        goto done;
    }
    if (tp_driver_proxy_attach(proxy, &p, &r, (int64_t)(t.timeout_s * 1e9)) < 0)
    {
        tp_cli_fail(TP_EXIT_FAILED, t.cmd, "%s (is a driver running on %s stream %" PRIu64 ", bus %s?)", tp_errmsg(),
            t.channel, t.control_stream_id, tp_bus_dir(bus));
        goto done;
    }
    print_response(&t, &p, &r);
    if (r.code != TP_DRIVER_RESPONSE_CODE_OK)
    {
        goto done;
    }
    status = t.hold_s > 0 ? hold_lease(&t, proxy, &p, &r) : TP_EXIT_OK;
done:
    tp_driver_proxy_close(proxy);
    tp_bus_close(bus);
    return status;
}

/* detach and keepalive take the same lease identification. */
static int lease_args(talk_t *t, int argc, char **argv, void (*usage)(FILE *), const char *extra)
{
    char allowed[512];
    snprintf(allowed, sizeof(allowed),
        " --bus-dir --control-channel --control-stream-id --lease-id --stream-id --client-id --role --timeout %s ",
        extra);
    int rc = talk_parse(t, argc, argv, 1, allowed, usage);
    if (rc != 0)
    {
        return rc;
    }
    if (need(t, t->has_lease_id, "--lease-id") < 0 || need(t, t->has_stream_id, "--stream-id") < 0 ||
        need(t, t->has_client_id, "--client-id") < 0 || need(t, t->role > 0, "--role") < 0)
    {
        return -1;
    }
    return 0;
}

int tp_cmd_detach(int argc, char **argv)
{
    talk_t t = { .cmd = "detach" };
    int rc = lease_args(&t, argc, argv, detach_usage, "");
    if (rc != 0)
    {
        return rc > 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    tp_bus_t *bus = NULL;
    tp_driver_proxy_t *proxy = NULL;
    int status = TP_EXIT_FAILED;
    int32_t code = 0;
    char message[TP_CONTROL_MESSAGE_MAX];
    if (open_proxy(&t, &bus, &proxy) == 0)
    {
        if (tp_driver_proxy_detach(proxy, t.lease_id, (uint32_t)t.stream_id, (uint32_t)t.client_id, (uint8_t)t.role,
                &code, message, sizeof(message), (int64_t)(t.timeout_s * 1e9)) < 0)
        {
            tp_cli_fail(TP_EXIT_FAILED, t.cmd, "%s", tp_errmsg());
        }
        else
        {
            printf("%s%s%s\n", tp_driver_response_code_name(code), message[0] != '\0' ? ": " : "", message);
            status = code == TP_DRIVER_RESPONSE_CODE_OK ? TP_EXIT_OK : TP_EXIT_FAILED;
        }
    }
    tp_driver_proxy_close(proxy);
    tp_bus_close(bus);
    return status;
}

int tp_cmd_keepalive(int argc, char **argv)
{
    talk_t t = { .cmd = "keepalive" };
    int rc = lease_args(&t, argc, argv, keepalive_usage, "--count --interval");
    if (rc != 0)
    {
        return rc > 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    tp_bus_t *bus = NULL;
    tp_driver_proxy_t *proxy = NULL;
    int status = TP_EXIT_FAILED;
    if (open_proxy(&t, &bus, &proxy) == 0)
    {
        tp_cli_install_stop_handlers();
        uint64_t sent = 0;
        for (; sent < t.count && !tp_cli_stop_requested(); sent++)
        {
            if (sent > 0)
            {
                usleep((useconds_t)(t.interval_s * 1e6));
            }
            if (tp_driver_proxy_keepalive(proxy, t.lease_id, (uint32_t)t.stream_id, (uint32_t)t.client_id,
                    (uint8_t)t.role) < 0)
            {
                tp_cli_fail(TP_EXIT_FAILED, t.cmd, "%s", tp_errmsg());
                break;
            }
        }
        if (sent == t.count)
        {
            printf("sent %" PRIu64 " keepalive(s) for lease %" PRIu64 "\n", sent, t.lease_id);
            status = TP_EXIT_OK;
        }
    }
    tp_driver_proxy_close(proxy);
    tp_bus_close(bus);
    return status;
}

static int send_consumer_config(int argc, char **argv)
{
    talk_t t = { .cmd = "send" };
    int rc = talk_parse(&t, argc, argv, 2,
        " --bus-dir --control-channel --control-stream-id --stream-id --client-id --mode --use-shm "
        "--descriptor-channel --descriptor-stream-id --per-consumer-control-channel "
        "--per-consumer-control-stream-id --payload-fallback-uri ",
        send_usage);
    if (rc != 0)
    {
        return rc > 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    if (need(&t, t.has_stream_id, "--stream-id") < 0 || need(&t, t.has_client_id, "--client-id (the consumer)") < 0)
    {
        return TP_EXIT_USAGE;
    }
    /* Wire spec 10.1.2-10.1.3: a channel and its stream id come together, or neither. */
    bool desc_half = (t.descriptor_channel != NULL && t.descriptor_channel[0] != '\0') != (t.descriptor_stream_id != 0);
    bool ctl_half = (t.control_channel != NULL && t.control_channel[0] != '\0') !=
                    (t.per_consumer_control_stream_id != 0);
    if (desc_half || ctl_half)
    {
        return tp_cli_fail(TP_EXIT_USAGE, t.cmd, "a per-consumer %s stream needs both its channel and a non-zero "
            "stream id, or neither", desc_half ? "descriptor" : "control");
    }
    uint8_t buf[4096];
    tp_wire_consumer_config_enc_t e;
    tp_wire_consumer_config_enc_begin(&e, buf, sizeof(buf));
    tp_wire_consumer_config_set_stream_id(&e, (uint32_t)t.stream_id);
    tp_wire_consumer_config_set_consumer_id(&e, (uint32_t)t.client_id);
    tp_wire_consumer_config_set_use_shm(&e, t.use_shm);
    tp_wire_consumer_config_set_mode(&e, t.mode);
    tp_wire_consumer_config_set_descriptor_stream_id(&e, (uint32_t)t.descriptor_stream_id);
    tp_wire_consumer_config_set_control_stream_id(&e, (uint32_t)t.per_consumer_control_stream_id);
    const char *fallback = t.fallback_uri != NULL ? t.fallback_uri : "";
    const char *dc = t.descriptor_channel != NULL ? t.descriptor_channel : "";
    const char *cc = t.control_channel != NULL ? t.control_channel : "";
    tp_wire_consumer_config_put_payload_fallback_uri(&e, fallback, strlen(fallback));
    tp_wire_consumer_config_put_descriptor_channel(&e, dc, strlen(dc));
    tp_wire_consumer_config_put_control_channel(&e, cc, strlen(cc));
    int64_t n = tp_wire_consumer_config_enc_finish(&e);
    if (n < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, t.cmd, "%s", tp_errmsg());
    }
    tp_bus_t *bus = NULL;
    tp_driver_proxy_t *proxy = NULL;
    int status = TP_EXIT_FAILED;
    if (open_proxy(&t, &bus, &proxy) == 0 && tp_driver_proxy_send(proxy, buf, (size_t)n) == 0)
    {
        printf("sent ConsumerConfig for consumer %" PRIu64 " of stream %" PRIu64 " on %s stream %" PRIu64 "\n",
            t.client_id, t.stream_id, t.channel, t.control_stream_id);
        status = TP_EXIT_OK;
    }
    else if (proxy != NULL)
    {
        tp_cli_fail(TP_EXIT_FAILED, t.cmd, "%s", tp_errmsg());
    }
    tp_driver_proxy_close(proxy);
    tp_bus_close(bus);
    return status;
}

int tp_cmd_send(int argc, char **argv)
{
    if (argc < 2 || tp_cli_is_help(argv[1]))
    {
        send_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? TP_EXIT_USAGE : TP_EXIT_OK;
    }
    if (strcmp(argv[1], "consumer-config") == 0)
    {
        return send_consumer_config(argc, argv);
    }
    return tp_cli_fail(TP_EXIT_USAGE, "send", "unknown message '%s' (consumer-config)", argv[1]);
}
