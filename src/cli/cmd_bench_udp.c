/*
 * `tp bench bus --udp`: the aeron:udp transport on loopback, beside the physical limit measured in the same run.
 *   throughput   publisher process (CPU 0) -> subscriber process (CPU 1): 32 B, 1 KiB, 64 KiB messages
 *   raw UDP      the same two cores moving datagrams with sendmmsg/recvmmsg, 64 per call: 32 B and 1408 B
 *   round trip   ping-pong, busy-spinning, ours and raw UDP sendto/recv, p50/p99/p99.9
 *   loss         1 KiB throughput through a relay thread, without loss and dropping 1% of datagrams (both ways)
 *   Aeron        streaming_publisher -> rate_subscriber and cping/cpong over aeronmd, when AERON_BIN_DIR (or
 *                --aeron DIR) names Aeron's C binaries
 * Figures are medians of --repeats interleaved runs.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/tp_bench.h"
#include "cli/tp_cli.h"
#include "cli/tp_udp_relay.h"
#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_histogram.h"
#include "tensorpool/tp_bus.h"

#define UDP_MAX_REPEATS 21
#define RAW_BATCH 64
#define SIZE_COUNT 3

typedef struct udp_shared
{
    int stop;
    uint8_t pad0[124];
    int ready;
    uint8_t pad1[124];
    uint64_t received;
    uint64_t bytes;
    int64_t elapsed_ns;
    tp_histogram_t rtt;
} udp_shared_t;

typedef struct udp_bench
{
    char dir[256];
    udp_shared_t *sh;
    double seconds;
    int port;
} udp_bench_t;

static const size_t sizes[SIZE_COUNT] = { 32, 1024, 65536 };

static void udp_loopback(struct sockaddr_in *out, int port)
{
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    out->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static int udp_wait(pid_t *pids, int n)
{
    int ok = 1;
    for (int i = 0; i < n; i++)
    {
        int status = 0;
        waitpid(pids[i], &status, 0);
        ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    return ok;
}

static tp_bus_t *udp_bus(const udp_bench_t *b)
{
    tp_bus_t *bus = NULL;
    if (tp_bus_init(&bus, b->dir) < 0)
    {
        fprintf(stderr, "tp bench: %s\n", tp_errmsg());
        _exit(1);
    }
    return bus;
}

static void on_bytes(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)buffer;
    (void)header;
    uint64_t *counts = clientd;
    counts[0]++;
    counts[1] += length;
}

/* Count for b->seconds after a 200 ms warm-up; then tell the sender to stop. */
static void measure_window(udp_shared_t *sh, double seconds, uint64_t *counts, void (*poll_once)(void *, uint64_t *),
    void *state)
{
    while (counts[0] == 0 && !tp_load_relaxed_int(&sh->stop))
    {
        poll_once(state, counts);
    }
    int64_t warm = tp_clock_monotonic_ns() + 200 * TP_NS_PER_MS;
    while (tp_clock_monotonic_ns() < warm)
    {
        poll_once(state, counts);
    }
    uint64_t c0 = counts[0];
    uint64_t b0 = counts[1];
    int64_t start = tp_clock_monotonic_ns();
    int64_t end = start + (int64_t)(seconds * 1e9);
    int64_t now = start;
    while (now < end)
    {
        poll_once(state, counts);
        now = tp_clock_monotonic_ns();
    }
    sh->received = counts[0] - c0;
    sh->bytes = counts[1] - b0;
    sh->elapsed_ns = now - start;
    tp_store_relaxed_int(&sh->stop, 1);
}

/* ---- ours ---- */

static void ours_poll(void *state, uint64_t *counts)
{
    tp_bus_poll(state, on_bytes, counts, 1024);
}

static void ours_channel(char *out, size_t n, int port)
{
    const char *extra = getenv("TP_BENCH_UDP_OPTIONS");
    snprintf(out, n, "aeron:udp?endpoint=127.0.0.1:%d|linger=0%s", port, extra != NULL ? extra : "");
}

static void ours_publisher(const udp_bench_t *b, const char *channel, size_t size)
{
    tp_bench_pin(0);
    tp_bus_t *bus = udp_bus(b);
    tp_bus_publication_t *pub;
    if (tp_bus_publication_open(&pub, bus, channel, 1, false) < 0)
    {
        fprintf(stderr, "tp bench: %s\n", tp_errmsg());
        _exit(1);
    }
    tp_bus_publication_set_coalescing(pub, true); /* this loop calls do_work whenever an offer is refused */
    static uint8_t msg[65536];
    memset(msg, 0x5A, sizeof(msg));
    while (!tp_load_relaxed_int(&b->sh->stop))
    {
        if (tp_bus_offer(pub, msg, size) < 0)
        {
            tp_bus_publication_do_work(pub);
        }
    }
    tp_bus_publication_close(pub);
    tp_bus_close(bus);
    _exit(0);
}

static void ours_subscriber(const udp_bench_t *b, const char *channel)
{
    tp_bench_pin(1);
    tp_bus_t *bus = udp_bus(b);
    tp_bus_subscription_t *sub;
    if (tp_bus_subscription_open(&sub, bus, channel, 1, NULL, NULL, NULL) < 0)
    {
        fprintf(stderr, "tp bench: %s\n", tp_errmsg());
        _exit(1);
    }
    tp_store_relaxed_int(&b->sh->ready, 1);
    uint64_t counts[2] = { 0, 0 };
    measure_window(b->sh, b->seconds, counts, ours_poll, sub);
    tp_bus_subscription_close(sub);
    tp_bus_close(bus);
    _exit(0);
}

/* Messages per second and bytes per second of one run; the relay (when rates is not NULL) sits in between. */
static int ours_throughput(udp_bench_t *b, size_t size, const tp_udp_relay_options_t *rates, double *msgs, double *bps)
{
    memset(b->sh, 0, sizeof(*b->sh));
    int sub_port = b->port++;
    int pub_port = sub_port;
    tp_udp_relay_t *relay = NULL;
    if (rates != NULL)
    {
        pub_port = b->port++;
        if (tp_udp_relay_start(&relay, pub_port, sub_port, rates) < 0)
        {
            return -1;
        }
    }
    char sub_channel[128];
    char pub_channel[128];
    ours_channel(sub_channel, sizeof(sub_channel), sub_port);
    ours_channel(pub_channel, sizeof(pub_channel), pub_port);
    pid_t pids[2];
    if ((pids[0] = fork()) == 0)
    {
        ours_subscriber(b, sub_channel);
    }
    while (!tp_load_relaxed_int(&b->sh->ready))
    {
        usleep(1000);
    }
    if ((pids[1] = fork()) == 0)
    {
        ours_publisher(b, pub_channel, size);
    }
    int ok = udp_wait(pids, 2);
    if (relay != NULL)
    {
        tp_udp_relay_stop(relay);
    }
    if (!ok || b->sh->elapsed_ns <= 0)
    {
        return -1;
    }
    *msgs = (double)b->sh->received / ((double)b->sh->elapsed_ns / 1e9);
    *bps = (double)b->sh->bytes / ((double)b->sh->elapsed_ns / 1e9);
    return 0;
}

/* ---- raw UDP ---- */

typedef struct raw_state
{
    int fd;
    struct mmsghdr messages[RAW_BATCH];
    struct iovec iov[RAW_BATCH];
} raw_state_t;

static void raw_poll(void *state, uint64_t *counts)
{
    raw_state_t *r = state;
    int n = recvmmsg(r->fd, r->messages, RAW_BATCH, MSG_DONTWAIT, NULL);
    for (int i = 0; i < n; i++)
    {
        counts[0]++;
        counts[1] += r->messages[i].msg_len;
    }
}

static int raw_socket(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int buffer_bytes = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof(buffer_bytes));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof(buffer_bytes));
    if (port != 0)
    {
        struct sockaddr_in at;
        udp_loopback(&at, port);
        if (bind(fd, (struct sockaddr *)&at, sizeof(at)) < 0)
        {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void raw_batch(raw_state_t *r, uint8_t *buffer, size_t size, struct sockaddr_in *to)
{
    for (int i = 0; i < RAW_BATCH; i++)
    {
        r->iov[i].iov_base = buffer + (size_t)i * size;
        r->iov[i].iov_len = size;
        memset(&r->messages[i].msg_hdr, 0, sizeof(r->messages[i].msg_hdr));
        r->messages[i].msg_hdr.msg_iov = &r->iov[i];
        r->messages[i].msg_hdr.msg_iovlen = 1;
        r->messages[i].msg_hdr.msg_name = to;
        r->messages[i].msg_hdr.msg_namelen = to != NULL ? sizeof(*to) : 0;
    }
}

static int raw_throughput(udp_bench_t *b, size_t size, double *msgs, double *bps)
{
    memset(b->sh, 0, sizeof(*b->sh));
    int port = b->port++;
    pid_t pids[2];
    if ((pids[0] = fork()) == 0)
    {
        tp_bench_pin(1);
        static raw_state_t r;
        static uint8_t buffer[RAW_BATCH * 1500];
        r.fd = raw_socket(port);
        raw_batch(&r, buffer, 1500, NULL);
        tp_store_relaxed_int(&b->sh->ready, 1);
        uint64_t counts[2] = { 0, 0 };
        measure_window(b->sh, b->seconds, counts, raw_poll, &r);
        _exit(r.fd >= 0 ? 0 : 1);
    }
    while (!tp_load_relaxed_int(&b->sh->ready))
    {
        usleep(1000);
    }
    if ((pids[1] = fork()) == 0)
    {
        tp_bench_pin(0);
        static raw_state_t r;
        static uint8_t buffer[RAW_BATCH * 1500];
        struct sockaddr_in to;
        udp_loopback(&to, port);
        r.fd = raw_socket(0);
        raw_batch(&r, buffer, size, &to);
        while (!tp_load_relaxed_int(&b->sh->stop))
        {
            sendmmsg(r.fd, r.messages, RAW_BATCH, 0);
        }
        _exit(0);
    }
    if (!udp_wait(pids, 2) || b->sh->elapsed_ns <= 0)
    {
        return -1;
    }
    *msgs = (double)b->sh->received / ((double)b->sh->elapsed_ns / 1e9);
    *bps = (double)b->sh->bytes / ((double)b->sh->elapsed_ns / 1e9);
    return 0;
}

/* ---- round trips ---- */

static void ours_pong(const udp_bench_t *b, const char *ping_channel, const char *pong_channel)
{
    tp_bench_pin(1);
    tp_bus_t *bus = udp_bus(b);
    tp_bus_subscription_t *sub;
    tp_bus_publication_t *pub;
    if (tp_bus_subscription_open(&sub, bus, ping_channel, 1, NULL, NULL, NULL) < 0 ||
        tp_bus_publication_open(&pub, bus, pong_channel, 2, false) < 0)
    {
        _exit(1);
    }
    tp_store_relaxed_int(&b->sh->ready, 1);
    uint8_t msg[32] = { 0 };
    uint64_t counts[2] = { 0, 0 };
    while (!tp_load_relaxed_int(&b->sh->stop))
    {
        uint64_t before = counts[0];
        tp_bus_poll(sub, on_bytes, counts, 1);
        if (counts[0] != before)
        {
            while (tp_bus_offer(pub, msg, sizeof(msg)) < 0 && !tp_load_relaxed_int(&b->sh->stop))
            {
                tp_bus_publication_do_work(pub);
            }
        }
        tp_bus_publication_do_work(pub);
    }
    tp_bus_publication_close(pub);
    tp_bus_subscription_close(sub);
    tp_bus_close(bus);
    _exit(0);
}

static int ours_round_trips(udp_bench_t *b, int round_trips)
{
    memset(b->sh, 0, sizeof(*b->sh));
    tp_histogram_reset(&b->sh->rtt);
    char ping_channel[128];
    char pong_channel[128];
    ours_channel(ping_channel, sizeof(ping_channel), b->port++);
    ours_channel(pong_channel, sizeof(pong_channel), b->port++);
    pid_t pong = fork();
    if (pong == 0)
    {
        ours_pong(b, ping_channel, pong_channel);
    }
    while (!tp_load_relaxed_int(&b->sh->ready))
    {
        usleep(1000);
    }
    tp_bench_pin(0);
    tp_bus_t *bus = udp_bus(b);
    tp_bus_subscription_t *sub = NULL;
    tp_bus_publication_t *pub = NULL;
    int rc = -1;
    if (tp_bus_subscription_open(&sub, bus, pong_channel, 2, NULL, NULL, NULL) < 0 ||
        tp_bus_publication_open(&pub, bus, ping_channel, 1, false) < 0)
    {
        goto done;
    }
    uint8_t msg[32] = { 0 };
    uint64_t counts[2] = { 0, 0 };
    int warmup = round_trips / 10;
    int64_t give_up = tp_clock_monotonic_ns() + 10 * TP_NS_PER_S;
    for (int i = 0; i < round_trips + warmup && tp_clock_monotonic_ns() < give_up; i++)
    {
        int64_t t0 = tp_clock_monotonic_ns();
        if (tp_bus_offer(pub, msg, sizeof(msg)) < 0)
        {
            /* not connected yet (the pong's image is forming), or back-pressured: service and try again */
            tp_bus_publication_do_work(pub);
            tp_bus_poll(sub, on_bytes, counts, 16);
            i--;
            continue;
        }
        uint64_t want = counts[0] + 1;
        int64_t deadline = t0 + TP_NS_PER_S;
        while (counts[0] < want && tp_clock_monotonic_ns() < deadline)
        {
            tp_bus_poll(sub, on_bytes, counts, 1);
        }
        if (counts[0] < want)
        {
            break;
        }
        if (i >= warmup)
        {
            tp_histogram_record(&b->sh->rtt, (uint64_t)(tp_clock_monotonic_ns() - t0));
        }
        tp_bus_publication_do_work(pub);
    }
    rc = b->sh->rtt.count == (uint64_t)round_trips ? 0 : -1;
done:
    tp_store_relaxed_int(&b->sh->stop, 1);
    udp_wait(&pong, 1);
    tp_bus_publication_close(pub);
    tp_bus_subscription_close(sub);
    tp_bus_close(bus);
    tp_bench_pin(-1);
    return rc;
}

static int raw_round_trips(udp_bench_t *b, int round_trips)
{
    memset(b->sh, 0, sizeof(*b->sh));
    tp_histogram_reset(&b->sh->rtt);
    int ping_port = b->port++;
    int pong_port = b->port++;
    pid_t pong = fork();
    if (pong == 0)
    {
        tp_bench_pin(1);
        int fd = raw_socket(pong_port);
        struct sockaddr_in to;
        udp_loopback(&to, ping_port);
        tp_store_relaxed_int(&b->sh->ready, 1);
        uint8_t msg[32];
        while (!tp_load_relaxed_int(&b->sh->stop))
        {
            if (recv(fd, msg, sizeof(msg), MSG_DONTWAIT) > 0)
            {
                sendto(fd, msg, sizeof(msg), 0, (struct sockaddr *)&to, sizeof(to));
            }
        }
        _exit(fd >= 0 ? 0 : 1);
    }
    while (!tp_load_relaxed_int(&b->sh->ready))
    {
        usleep(1000);
    }
    tp_bench_pin(0);
    int fd = raw_socket(ping_port);
    struct sockaddr_in to;
    udp_loopback(&to, pong_port);
    uint8_t msg[32] = { 0 };
    int warmup = round_trips / 10;
    for (int i = 0; i < round_trips + warmup; i++)
    {
        int64_t t0 = tp_clock_monotonic_ns();
        sendto(fd, msg, sizeof(msg), 0, (struct sockaddr *)&to, sizeof(to));
        int64_t deadline = t0 + TP_NS_PER_S;
        while (recv(fd, msg, sizeof(msg), MSG_DONTWAIT) <= 0 && tp_clock_monotonic_ns() < deadline)
        {
        }
        if (i >= warmup)
        {
            tp_histogram_record(&b->sh->rtt, (uint64_t)(tp_clock_monotonic_ns() - t0));
        }
    }
    tp_store_relaxed_int(&b->sh->stop, 1);
    udp_wait(&pong, 1);
    close(fd);
    tp_bench_pin(-1);
    return fd >= 0 ? 0 : -1;
}

/* ---- one round of every measurement, and the report ---- */

typedef struct udp_runs
{
    int n;
    uint64_t round_trips;
    const char *aeron;
    double ours_msgs[SIZE_COUNT][UDP_MAX_REPEATS];
    double ours_bps[SIZE_COUNT][UDP_MAX_REPEATS];
    double raw_msgs[2][UDP_MAX_REPEATS];
    double raw_bps[2][UDP_MAX_REPEATS];
    double rtt[2][3][UDP_MAX_REPEATS];
    double relay_msgs[2][UDP_MAX_REPEATS]; /* through the relay: lossless, 1% loss */
    double relay_bps[2][UDP_MAX_REPEATS];
    tp_bench_aeron_t aeron_figures;
} udp_runs_t;

static const size_t raw_sizes[2] = { 32, 1408 };

static int udp_measure_round(udp_bench_t *b, udp_runs_t *runs, int r)
{
    for (int s = 0; s < SIZE_COUNT; s++)
    {
        if (ours_throughput(b, sizes[s], NULL, &runs->ours_msgs[s][r], &runs->ours_bps[s][r]) < 0)
        {
            fprintf(stderr, "tp bench: aeron:udp throughput of %zu B messages failed\n", sizes[s]);
            return TP_EXIT_FAILED;
        }
    }
    for (int s = 0; s < 2; s++)
    {
        if (raw_throughput(b, raw_sizes[s], &runs->raw_msgs[s][r], &runs->raw_bps[s][r]) < 0)
        {
            fprintf(stderr, "tp bench: raw UDP throughput of %zu B datagrams failed\n", raw_sizes[s]);
            return TP_EXIT_FAILED;
        }
    }
    for (int k = 0; k < 2; k++)
    {
        int round_trips = (int)runs->round_trips;
        if ((k == 0 ? ours_round_trips(b, round_trips) : raw_round_trips(b, round_trips)) < 0)
        {
            fprintf(stderr, "tp bench: %s round trips failed after %" PRIu64 "\n", k == 0 ? "aeron:udp" : "raw UDP",
                b->sh->rtt.count);
            return TP_EXIT_FAILED;
        }
        runs->rtt[k][0][r] = (double)tp_histogram_percentile(&b->sh->rtt, 50) / 1e3;
        runs->rtt[k][1][r] = (double)tp_histogram_percentile(&b->sh->rtt, 99) / 1e3;
        runs->rtt[k][2][r] = (double)tp_histogram_percentile(&b->sh->rtt, 99.9) / 1e3;
    }
    const tp_udp_relay_options_t rates[2] = { { .seed = 1 }, { .drop = 0.01, .seed = 1 } };
    for (int k = 0; k < 2; k++)
    {
        if (ours_throughput(b, 1024, &rates[k], &runs->relay_msgs[k][r], &runs->relay_bps[k][r]) < 0)
        {
            fprintf(stderr, "tp bench: aeron:udp throughput through the relay%s failed\n",
                k == 1 ? " dropping 1%" : "");
            return TP_EXIT_FAILED;
        }
    }
    return TP_EXIT_OK;
}

static void udp_report(const udp_runs_t *runs, bool json)
{
    int n = runs->n;
    const tp_bench_aeron_t *af = &runs->aeron_figures;
    tp_bench_stat_t st[SIZE_COUNT];
    tp_bench_stat_t sb[SIZE_COUNT];
    tp_bench_stat_t raw_m[2];
    tp_bench_stat_t raw_b[2];
    tp_bench_stat_t rt[2][3];
    tp_bench_stat_t relay_m[2];
    tp_bench_stat_t relay_b[2];
    for (int s = 0; s < SIZE_COUNT; s++)
    {
        tp_bench_stats(runs->ours_msgs[s], n, &st[s]);
        tp_bench_stats(runs->ours_bps[s], n, &sb[s]);
    }
    for (int k = 0; k < 2; k++)
    {
        tp_bench_stats(runs->raw_msgs[k], n, &raw_m[k]);
        tp_bench_stats(runs->raw_bps[k], n, &raw_b[k]);
        tp_bench_stats(runs->relay_msgs[k], n, &relay_m[k]);
        tp_bench_stats(runs->relay_bps[k], n, &relay_b[k]);
        for (int q = 0; q < 3; q++)
        {
            tp_bench_stats(runs->rtt[k][q], n, &rt[k][q]);
        }
    }
    double bw_ratio = sb[2].median / raw_b[1].median;
    double rtt_ratio = rt[0][0].median / rt[1][0].median;
    double loss_ratio = relay_m[1].median / relay_m[0].median;
    if (json)
    {
        printf("{\"repeats\":%d,\"throughput\":[", n);
        for (int s = 0; s < SIZE_COUNT; s++)
        {
            printf("%s{\"size\":%zu,\"msgs_per_s\":%.0f,\"min\":%.0f,\"max\":%.0f,\"bytes_per_s\":%.0f}", s ? "," : "",
                sizes[s], st[s].median, st[s].min, st[s].max, sb[s].median);
        }
        printf("],\"raw_udp\":[{\"size\":32,\"datagrams_per_s\":%.0f},{\"size\":1408,\"datagrams_per_s\":%.0f,"
               "\"bytes_per_s\":%.0f}],",
            raw_m[0].median, raw_m[1].median, raw_b[1].median);
        printf("\"round_trip_us\":{\"ours\":[%.3f,%.3f,%.3f],\"raw_udp\":[%.3f,%.3f,%.3f]},", rt[0][0].median,
            rt[0][1].median, rt[0][2].median, rt[1][0].median, rt[1][1].median, rt[1][2].median);
        printf("\"relayed_1k_msgs_per_s\":%.0f,\"lossy_1k_msgs_per_s\":%.0f,\"bandwidth_64k_over_raw\":%.3f,"
               "\"rtt_over_raw\":%.3f,\"loss_1pct_over_lossless\":%.3f",
            relay_m[0].median, relay_m[1].median, bw_ratio, rtt_ratio, loss_ratio);
        if (runs->aeron != NULL)
        {
            printf(",\"aeron\":{\"msgs_per_s\":[%.0f,%.0f,%.0f],\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f}",
                af->msgs_per_s[0], af->msgs_per_s[1], af->msgs_per_s[2], af->p50_us, af->p99_us);
        }
        printf("}\n");
        return;
    }
    printf("\nthroughput, publisher (CPU 0) -> subscriber (CPU 1)      msgs/s: median [min .. max]        MB/s\n");
    for (int s = 0; s < SIZE_COUNT; s++)
    {
        printf("  aeron:udp %6zu B                            %9.3f M [%7.3f .. %7.3f]   %8.1f\n", sizes[s],
            st[s].median / 1e6, st[s].min / 1e6, st[s].max / 1e6, sb[s].median / 1e6);
    }
    for (int k = 0; k < 2; k++)
    {
        printf("  raw UDP   %6zu B datagrams, 64 per call     %9.3f M [%7.3f .. %7.3f]   %8.1f\n", raw_sizes[k],
            raw_m[k].median / 1e6, raw_m[k].min / 1e6, raw_m[k].max / 1e6, raw_b[k].median / 1e6);
    }
    const char *relay_names[2] = { "no loss", "dropping 1%" };
    for (int k = 0; k < 2; k++)
    {
        printf("  aeron:udp 1 KiB through the relay, %-11s  %9.3f M [%7.3f .. %7.3f]   %8.1f\n", relay_names[k],
            relay_m[k].median / 1e6, relay_m[k].min / 1e6, relay_m[k].max / 1e6, relay_b[k].median / 1e6);
    }
    printf("  ratios: 64 KiB bandwidth / raw 1408 B bandwidth = %.2f; 32 B msgs/s / raw 32 B datagrams/s = %.2f;\n"
           "          through the relay (a thread: the bottleneck of both) 1%% loss / no loss = %.2f\n",
        bw_ratio, st[0].median / raw_m[0].median, loss_ratio);
    printf("\nround trip, 32 B, busy-spinning, %" PRIu64 " per run        us: p50 / p99 / p99.9 (median of runs)\n",
        runs->round_trips);
    const char *who[2] = { "aeron:udp", "raw UDP" };
    for (int k = 0; k < 2; k++)
    {
        printf("  %-10s                                       %7.2f / %7.2f / %7.2f   (p50 %.2f .. %.2f)\n", who[k],
            rt[k][0].median, rt[k][1].median, rt[k][2].median, rt[k][0].min, rt[k][0].max);
    }
    printf("  ratio: p50 ours / raw = %.2f\n", rtt_ratio);
    if (runs->aeron == NULL)
    {
        printf("\nAeron's samples: not run (set AERON_BIN_DIR or --aeron to the directory of aeronmd and its "
               "samples)\n");
        return;
    }
    printf("\nAeron %s over aeronmd (SHARED threading), one run:\n", runs->aeron);
    for (int s = 0; s < SIZE_COUNT; s++)
    {
        printf("  streaming_publisher -> rate_subscriber %6zu B   %9.3f M msgs/s   %8.1f MB/s   (ours / Aeron = %.2f)\n",
            sizes[s], af->msgs_per_s[s] / 1e6, af->msgs_per_s[s] * (double)sizes[s] / 1e6,
            af->msgs_per_s[s] > 0 ? st[s].median / af->msgs_per_s[s] : 0.0);
    }
    if (af->has_rtt)
    {
        printf("  cping/cpong 32 B round trip                   p50 %.1f us, p99 %.1f us, max %.1f us\n", af->p50_us,
            af->p99_us, af->max_us);
    }
    else
    {
        printf("  cping/cpong: no result (see its log; it may not finish on a busy machine)\n");
    }
}

/* ---- usage and options ---- */

static void udp_usage(FILE *out)
{
    fprintf(out,
        "usage: tp bench bus --udp [--seconds S] [--repeats N] [--round-trips N] [--aeron DIR] [--json]\n\n"
        "Measures aeron:udp on loopback between two processes pinned to CPUs 0 and 1: throughput of 32 B,\n"
        "1 KiB and 64 KiB messages (msgs/s, MB/s); the raw UDP limit on the same cores (sendmmsg/recvmmsg, 64\n"
        "datagrams per call, 32 B and 1408 B); ping-pong round trips, ours and raw UDP (p50/p99/p99.9); and\n"
        "1 KiB throughput through a relay thread, lossless and dropping 1%% of datagrams. With Aeron's C\n"
        "binaries (--aeron DIR or AERON_BIN_DIR) it also runs streaming_publisher -> rate_subscriber and\n"
        "cping/cpong over aeronmd. Every figure is the median of N interleaved runs, with min and max; ratios\n"
        "are printed beside.\n\n"
        "options: --seconds S per throughput run [1], --repeats N [3], --round-trips N per run [20000],\n"
        "         --aeron DIR Aeron's binaries [$AERON_BIN_DIR], --json one JSON object instead of the table\n\n"
        "exit status: 0 measured; 1 a benchmark process failed; 2 bad arguments.\n");
}

int tp_bench_udp(int argc, char **argv)
{
    double seconds = 1.0;
    uint64_t repeats = 3;
    uint64_t round_trips = 20000;
    bool json = false;
    const char *aeron = getenv("AERON_BIN_DIR");
    for (int i = 1; i < argc; i++)
    {
        if (tp_cli_is_help(argv[i]))
        {
            udp_usage(stdout);
            return TP_EXIT_OK;
        }
        if (strcmp(argv[i], "--udp") == 0)
        {
            continue;
        }
        if (strcmp(argv[i], "--json") == 0)
        {
            json = true;
        }
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_double(argv[++i], 0.1, 600, &seconds) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench bus --udp", "--seconds: %s", tp_errmsg());
            }
        }
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_u64(argv[++i], 1, UDP_MAX_REPEATS, &repeats) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench bus --udp", "--repeats: %s", tp_errmsg());
            }
        }
        else if (strcmp(argv[i], "--round-trips") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_u64(argv[++i], 100, 10000000, &round_trips) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench bus --udp", "--round-trips: %s", tp_errmsg());
            }
        }
        else if (strcmp(argv[i], "--aeron") == 0 && i + 1 < argc)
        {
            aeron = argv[++i];
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, "bench bus --udp", "unknown option '%s' (see tp bench bus --udp --help)",
                argv[i]);
        }
    }
    char probe[1100];
    snprintf(probe, sizeof(probe), "%s/aeronmd", aeron != NULL ? aeron : "");
    bool has_aeron = aeron != NULL && access(probe, X_OK) == 0;
    udp_bench_t b = { .seconds = seconds, .port = 32000 + (int)(getpid() % 8000) };
    tp_cli_install_stop_handlers(); /* SIGINT/SIGTERM end the runs; the embedded driver then removes its files */
    snprintf(b.dir, sizeof(b.dir), "/dev/shm/tp-bench-udp-%d", (int)getpid());
    if (mkdir(b.dir, 0700) < 0 && errno != EEXIST)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "bench bus --udp", "cannot create %s: %s", b.dir, strerror(errno));
    }
    b.sh = mmap(NULL, sizeof(udp_shared_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b.sh == MAP_FAILED)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "bench bus --udp", "cannot map shared memory");
    }
    static udp_runs_t runs;
    memset(&runs, 0, sizeof(runs));
    runs.n = (int)repeats;
    runs.round_trips = round_trips;
    runs.aeron = has_aeron ? aeron : NULL;
    if (!json)
    {
        tp_bench_print_machine(stdout, argc, argv);
        printf("running %" PRIu64 " interleaved repeats%s...\n", repeats,
            has_aeron ? " (and Aeron's samples once)" : "");
        fflush(stdout);
    }
    int status = TP_EXIT_OK;
    for (int r = 0; r < runs.n && status == TP_EXIT_OK && !tp_cli_stop_requested(); r++)
    {
        status = udp_measure_round(&b, &runs, r);
    }
    if (status == TP_EXIT_OK && has_aeron)
    {
        tp_bench_aeron_measure(aeron, b.dir, &b.port, seconds, sizes, &runs.aeron_figures);
    }
    tp_fs_remove_tree(b.dir);
    munmap(b.sh, sizeof(*b.sh));
    if (status != TP_EXIT_OK)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "bench bus --udp", "a benchmark process failed (see its message above)");
    }
    udp_report(&runs, json);
    return TP_EXIT_OK;
}
