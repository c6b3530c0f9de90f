/*
 * `tp bench attach`: the driver's control-plane round trip. A driver runs on its own thread over a private bus
 * and SHM directory; the benchmark attaches and detaches through the control stream exactly as a client process
 * does, timing each request from send to response:
 *   consumer attach   (a lease on an existing epoch)
 *   detach
 *   producer attach   (moves the stream to a new epoch: creates and maps fresh regions)
 * Figures are medians over --repeats runs of percentiles within each run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/tp_bench.h"
#include "cli/tp_cli.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_histogram.h"
#include "cli/tp_driver_proxy.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_driver.h"
#include "tp_sbe_driver.h"

#define ATTACH_TIMEOUT_NS (5 * TP_NS_PER_S)
#define KINDS 3

static const char *const kind_names[KINDS] = { "consumer attach", "detach", "producer attach (new epoch)" };

typedef struct attach_bench
{
    char dir[256];
    tp_driver_context_t *ctx;
    tp_driver_t *driver;
    tp_bus_t *bus;
    tp_driver_proxy_t *proxy;
} attach_bench_t;

static void bench_attach_usage(FILE *out)
{
    fprintf(out,
        "usage: tp bench attach [--requests N] [--repeats N] [--json]\n\n"
        "Time the driver's attach and detach round trips: an embedded driver thread, a private bus and SHM\n"
        "directory under /dev/shm (or /tmp), requests sent and answered on the control stream as any client does.\n"
        "Prints p50, p99 and p99.9 in microseconds for consumer attach, detach, and producer attach (which moves\n"
        "the stream to a new epoch with freshly created regions), as medians over the repeats with min..max.\n\n"
        "options: --requests N per kind per run [2000], --repeats N [5], --json for one JSON document.\n\n"
        "exit status: 0 measured; 1 the driver failed or refused; 2 bad arguments.\n");
}

static int bench_open(attach_bench_t *b)
{
    const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(b->dir, sizeof(b->dir), "%s/tp-bench-attach-%d", root, (int)getpid());
    tp_fs_remove_tree(b->dir);
    char bus_dir[300], shm_dir[300];
    snprintf(bus_dir, sizeof(bus_dir), "%s/bus", b->dir);
    snprintf(shm_dir, sizeof(shm_dir), "%s/shm", b->dir);
    const uint16_t ids[] = { 1 };
    const uint32_t strides[] = { 4096 };
    if (tp_fs_mkdirs(root, shm_dir, 0700) < 0 || tp_driver_context_init(&b->ctx) < 0 ||
        tp_driver_context_set(b->ctx, "driver.bus_dir", bus_dir) < 0 ||
        tp_driver_context_set(b->ctx, "shm.base_dir", shm_dir) < 0 ||
        tp_driver_context_set(b->ctx, "policies.epoch_gc_enabled", "true") < 0 ||
        tp_driver_context_set(b->ctx, "policies.epoch_gc_min_age_ns", "0") < 0 ||
        tp_driver_context_add_profile(b->ctx, "bench", 64, ids, strides, 1) < 0 ||
        tp_driver_context_add_stream(b->ctx, "bench", 10, "bench") < 0 || tp_driver_init(&b->driver, b->ctx) < 0 ||
        tp_driver_start(b->driver) < 0 || tp_bus_init(&b->bus, bus_dir) < 0 ||
        tp_driver_proxy_open(&b->proxy, b->bus, "aeron:ipc", 1000) < 0)
    {
        return -1;
    }
    return 0;
}

static void bench_close(attach_bench_t *b)
{
    tp_driver_proxy_close(b->proxy);
    tp_driver_close(b->driver);
    tp_bus_close(b->bus);
    tp_driver_context_close(b->ctx);
    tp_fs_remove_tree(b->dir);
}

/* One request of each kind per iteration, timed into h[kind]. */
static int bench_run(attach_bench_t *b, uint64_t requests, uint32_t *next_client, tp_histogram_t *h)
{
    for (uint64_t i = 0; i < requests && !tp_cli_stop_requested(); i++)
    {
        for (int producer = 0; producer < 2; producer++)
        {
            tp_attach_params_t p = { .stream_id = 10, .client_id = (*next_client)++,
                .role = producer ? TP_DRIVER_ROLE_PRODUCER : TP_DRIVER_ROLE_CONSUMER,
                .publish_mode = TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING,
                .require_hugepages = TP_DRIVER_HUGEPAGES_POLICY_UNSPECIFIED };
            tp_attach_result_t r;
            int64_t t0 = tp_clock_monotonic_ns();
            if (tp_driver_proxy_attach(b->proxy, &p, &r, ATTACH_TIMEOUT_NS) < 0)
            {
                return -1;
            }
            int64_t t1 = tp_clock_monotonic_ns();
            if (r.code != TP_DRIVER_RESPONSE_CODE_OK)
            {
                TP_SET_ERR(TP_E_REJECTED, "attach refused: %s", r.error_message);
                return -1;
            }
            int32_t code = -1;
            if (tp_driver_proxy_detach(b->proxy, r.lease_id, 10, p.client_id, p.role, &code, NULL, 0,
                    ATTACH_TIMEOUT_NS) < 0)
            {
                return -1;
            }
            int64_t t2 = tp_clock_monotonic_ns();
            tp_histogram_record(&h[producer ? 2 : 0], (uint64_t)(t1 - t0));
            if (!producer)
            {
                tp_histogram_record(&h[1], (uint64_t)(t2 - t1));
            }
        }
    }
    return 0;
}

int tp_bench_attach(int argc, char **argv)
{
    uint64_t requests = 2000;
    uint64_t repeats = 5;
    bool json = false;
    for (int i = 1; i < argc; i++)
    {
        if (tp_cli_is_help(argv[i]))
        {
            bench_attach_usage(stdout);
            return TP_EXIT_OK;
        }
        else if (strcmp(argv[i], "--requests") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_u64(argv[++i], 1, 10000000, &requests) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench attach", "--requests: %s", tp_errmsg());
            }
        }
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_u64(argv[++i], 1, TP_BENCH_MAX_VALUES, &repeats) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench attach", "--repeats: %s", tp_errmsg());
            }
        }
        else if (strcmp(argv[i], "--json") == 0)
        {
            json = true;
        }
        else
        {
            tp_cli_fail(TP_EXIT_USAGE, "bench attach", "unknown option '%s'", argv[i]);
            bench_attach_usage(stderr);
            return TP_EXIT_USAGE;
        }
    }
    tp_cli_install_stop_handlers();
    attach_bench_t b;
    memset(&b, 0, sizeof(b));
    if (bench_open(&b) < 0)
    {
        int status = tp_cli_fail(TP_EXIT_FAILED, "bench attach", "starting the driver: %s", tp_errmsg());
        bench_close(&b);
        return status;
    }
    if (!json)
    {
        tp_bench_print_machine(stdout, argc, argv);
        printf("running %" PRIu64 " repeats of %" PRIu64 " requests per kind...\n", repeats, requests);
        fflush(stdout);
    }
    static const double pcts[3] = { 50.0, 99.0, 99.9 };
    double values[KINDS][3][TP_BENCH_MAX_VALUES];
    uint32_t next_client = 1;
    int status = TP_EXIT_OK;
    tp_histogram_t *h = calloc(KINDS, sizeof(tp_histogram_t));
    if (h == NULL)
    {
        bench_close(&b);
        return tp_cli_fail(TP_EXIT_FAILED, "bench attach", "out of memory");
    }
    int done = 0;
    for (uint64_t r = 0; r < repeats && !tp_cli_stop_requested(); r++)
    {
        for (int k = 0; k < KINDS; k++)
        {
            tp_histogram_reset(&h[k]);
        }
        if (bench_run(&b, requests, &next_client, h) < 0)
        {
            status = tp_cli_fail(TP_EXIT_FAILED, "bench attach", "%s", tp_errmsg());
            break;
        }
        for (int k = 0; k < KINDS; k++)
        {
            for (int p = 0; p < 3; p++)
            {
                values[k][p][done] = (double)tp_histogram_percentile(&h[k], pcts[p]) / 1000.0;
            }
        }
        done++;
    }
    if (status == TP_EXIT_OK && done > 0)
    {
        if (json)
        {
            printf("{\"requests\":%" PRIu64 ",\"repeats\":%d,\"unit\":\"us\"", requests, done);
        }
        else
        {
            printf("%-30s %20s %20s %20s\n", "round trip (us)", "p50", "p99", "p99.9");
        }
        for (int k = 0; k < KINDS; k++)
        {
            tp_bench_stat_t s[3];
            for (int p = 0; p < 3; p++)
            {
                tp_bench_stats(values[k][p], done, &s[p]);
            }
            if (json)
            {
                printf(",\"%s\":{\"p50\":%.2f,\"p99\":%.2f,\"p999\":%.2f}", kind_names[k], s[0].median, s[1].median,
                    s[2].median);
                continue;
            }
            printf("%-30s", kind_names[k]);
            for (int p = 0; p < 3; p++)
            {
                char cell[64];
                snprintf(cell, sizeof(cell), "%.1f [%.1f..%.1f]", s[p].median, s[p].min, s[p].max);
                printf(" %20s", cell);
            }
            printf("\n");
        }
        if (json)
        {
            printf("}\n");
        }
    }
    free(h);
    bench_close(&b);
    return status;
}
