/*
 * `tp bench --peers`: our figures beside iceoryx's, ZeroMQ's and Aeron's, measured by their own code in one run,
 * round by round interleaved, with the same CPUs (publisher or producer on CPU 0, subscriber or consumer on 1)
 * and sizes:
 *   ours      `tp bench bus --json` and `tp bench frames --processes --json` (producer and consumer in two
 *             processes, as the peers'), one repeat per round, as child processes
 *   Aeron     aeronmd with streaming_publisher -> rate_subscriber and cping/cpong over aeron:ipc (--aeron DIR or
 *             AERON_BIN_DIR: where Aeron's C binaries are)
 *   ZeroMQ    tp-peer-zmq: PUSH -> PULL over ipc:// (built when libzmq3-dev is installed)
 *   iceoryx   tp-peer-iceoryx: loan, fill, publish -> take, release, under a RouDi this bench starts (built when
 *             libiceoryx-binding-c-dev is installed; iox-roudi from Debian's iceoryx)
 * A peer that is not there is skipped with a message saying what would bring it. One table: each figure's
 * median over the rounds, ours and the peer's, and the median over the rounds of ours / peer's in the same round.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/tp_bench.h"
#include "cli/tp_cli.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_json.h"

#define PEERS_MAX_REPEATS 20
#define PEERS_OUTPUT_MAX (1 << 16)
#define PEERS_ROUND_TRIPS 100000

typedef enum peers_row_id
{
    ROW_BUS_32,
    ROW_BUS_256,
    ROW_RTT_P50,
    ROW_RTT_P99,
    ROW_COPY_640K,
    ROW_CLAIM_64_ZMQ,
    ROW_COPY_64_ZMQ,
    ROW_CLAIM_64_ICEORYX,
    ROW_ONE_WAY,
    ROW_COUNT,
} peers_row_id_t;

typedef struct peers_row
{
    const char *figure;
    const char *peer;
    const char *unit;
    double scale; /* printed value = value / scale */
    bool is_time; /* lower is better */
} peers_row_t;

static const peers_row_t rows[ROW_COUNT] = {
    [ROW_BUS_32] = { "bus 32 B msgs/s, 1 -> 1", "Aeron IPC", "M", 1e6, false },
    [ROW_BUS_256] = { "bus 256 B msgs/s, 1 -> 1", "Aeron IPC", "M", 1e6, false },
    [ROW_RTT_P50] = { "bus round trip 32 B, p50", "Aeron IPC", "us", 1, true },
    [ROW_RTT_P99] = { "bus round trip 32 B, p99", "Aeron IPC", "us", 1, true },
    [ROW_COPY_640K] = { "frames 640 KiB copy path", "iceoryx", "GiB/s", 1, false },
    [ROW_CLAIM_64_ZMQ] = { "frames 64 B claim path", "ZeroMQ", "M/s", 1e6, false },
    [ROW_COPY_64_ZMQ] = { "frames 64 B copy path", "ZeroMQ", "M/s", 1e6, false },
    [ROW_CLAIM_64_ICEORYX] = { "frames 64 B claim path", "iceoryx", "M/s", 1e6, false },
    [ROW_ONE_WAY] = { "commit -> callback one way, p50", "Aeron RTT/2", "us", 1, true },
};

typedef struct peers_bench
{
    double seconds;
    uint64_t repeats;
    uint64_t round_trips;
    bool json;
    const char *aeron;   /* Aeron's binaries, or NULL */
    char self[PATH_MAX]; /* this tp */
    char zmq[PATH_MAX];  /* tp-peer-zmq, or "" */
    char iceoryx[PATH_MAX];
    char dir[128]; /* /dev/shm/tp-bench-PID: logs, RouDi's configuration, Aeron's directory */
    double placement_ns[PEERS_MAX_REPEATS]; /* measured at the start of each round */
    double ours[ROW_COUNT][PEERS_MAX_REPEATS];
    double peer[ROW_COUNT][PEERS_MAX_REPEATS];
    int n_ours[ROW_COUNT];
    int n_peer[ROW_COUNT];
    double ratio[ROW_COUNT][PEERS_MAX_REPEATS]; /* ours / peer's within one round, where both were measured */
    int n_ratio[ROW_COUNT];
    bool has_ours[ROW_COUNT]; /* this round's */
    double round_ours[ROW_COUNT];
} peers_bench_t;

static void peers_usage(FILE *out)
{
    fprintf(out,
        "usage: tp bench --peers [--seconds S] [--repeats N] [--round-trips N] [--aeron DIR] [--json]\n"
        "       tp bench peers ...\n\n"
        "Our bus and frames beside the peers' own code, round by round in one run, each side's publisher on\n"
        "CPU 0 and subscriber on CPU 1:\n"
        "  Aeron IPC   its samples over aeronmd: streaming_publisher -> rate_subscriber (32 B, 256 B), cping/cpong\n"
        "              (--aeron DIR or AERON_BIN_DIR: Aeron's C binaries; docs/ARCHITECTURE.md says how to build)\n"
        "  ZeroMQ      tp-peer-zmq: 64 B messages PUSH -> PULL over ipc:// (built with libzmq3-dev)\n"
        "  iceoryx     tp-peer-iceoryx: 64 B and 640 KiB chunks loaned, filled, published, taken (built with\n"
        "              libiceoryx-binding-c-dev; this bench starts iox-roudi, Debian's package iceoryx)\n"
        "A peer that is missing is skipped with a message. Ours are `tp bench bus` and\n"
        "`tp bench frames --processes`: producer and consumer in two processes, as every peer's are.\n"
        "Prints the median of the rounds of each figure, ours and the peer's, and the median of ours / peer's\n"
        "within each round (for rates above 1 is better, for times below 1).\n\n"
        "options: --seconds S per throughput run [0.5], --repeats N rounds [3], --round-trips N per ping-pong\n"
        "         run [100000], --aeron DIR Aeron's C binaries [$AERON_BIN_DIR], --json one JSON object\n\n"
        "exit status: 0 measured; 1 one of our benchmarks failed; 2 bad arguments.\n");
}

static int peers_parse(int argc, char **argv, peers_bench_t *b)
{
    b->seconds = 0.5;
    b->repeats = 3;
    b->round_trips = PEERS_ROUND_TRIPS;
    b->aeron = getenv("AERON_BIN_DIR") != NULL && getenv("AERON_BIN_DIR")[0] != '\0' ? getenv("AERON_BIN_DIR") : NULL;
    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--json") == 0)
        {
            b->json = true;
        }
        else if (strcmp(a, "--seconds") == 0 && has_value)
        {
            if (tp_cli_parse_double(argv[++i], 0.1, 10, &b->seconds) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench --peers", "--seconds: %s", tp_errmsg());
            }
        }
        else if (strcmp(a, "--repeats") == 0 && has_value)
        {
            if (tp_cli_parse_u64(argv[++i], 1, PEERS_MAX_REPEATS, &b->repeats) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench --peers", "--repeats: %s", tp_errmsg());
            }
        }
        else if (strcmp(a, "--round-trips") == 0 && has_value)
        {
            if (tp_cli_parse_u64(argv[++i], 100, 10000000, &b->round_trips) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench --peers", "--round-trips: %s", tp_errmsg());
            }
        }
        else if (strcmp(a, "--aeron") == 0 && has_value)
        {
            b->aeron = argv[++i];
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, "bench --peers", "unknown option '%s' (see tp bench --peers --help)", a);
        }
    }
    return TP_EXIT_OK;
}

/* A peer program beside this tp, or in ../libexec/tensorpool after an install; "" when neither exists. */
static void peers_find(const char *self, const char *name, char *out, size_t n)
{
    char dir[PATH_MAX - 64];
    if (snprintf(dir, sizeof(dir), "%s", self) >= (int)sizeof(dir))
    {
        out[0] = '\0';
        return;
    }
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
    {
        *slash = '\0';
    }
    snprintf(out, n, "%s/%s", dir, name);
    if (access(out, X_OK) == 0)
    {
        return;
    }
    snprintf(out, n, "%s/../libexec/tensorpool/%s", dir, name);
    if (access(out, X_OK) != 0)
    {
        out[0] = '\0';
    }
}

/* The last lines of a log, indented, to stderr. */
static void peers_print_tail(const char *log)
{
    char lines[4][256] = { { 0 } };
    int n = 0;
    FILE *f = fopen(log, "r");
    while (f != NULL && fgets(lines[n % 4], sizeof(lines[0]), f) != NULL)
    {
        n++;
    }
    if (f != NULL)
    {
        fclose(f);
    }
    for (int i = n > 4 ? n - 4 : 0; i < n; i++)
    {
        fprintf(stderr, "    %s%s", lines[i % 4], strchr(lines[i % 4], '\n') != NULL ? "" : "\n");
    }
}

/* Run argv to its end, its output into dir/name.log; the last line of it that is a JSON object, parsed. */
static tp_json_t *peers_run_json(const peers_bench_t *b, const char *name, char *const argv[])
{
    char log[256];
    snprintf(log, sizeof(log), "%s/%s.log", b->dir, name);
    pid_t pid = tp_bench_spawn(argv, log);
    if (pid < 0)
    {
        fprintf(stderr, "tp bench --peers: %s could not be started: %s\n", name, strerror(errno));
        return NULL;
    }
    int status = 0;
    bool has_ended = false;
    /* A run takes a few times --seconds plus set-up; one that hangs (a peer waiting on its daemon) is killed. */
    int64_t limit_ms = 60000 + (int64_t)(b->seconds * 20000);
    for (int64_t waited_ms = 0; waited_ms < limit_ms && !has_ended; waited_ms += 10)
    {
        has_ended = waitpid(pid, &status, WNOHANG) == pid;
        if (!has_ended)
        {
            usleep(10000);
        }
    }
    if (!has_ended)
    {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fprintf(stderr, "tp bench --peers: %s did not end within %" PRId64 " s: killed\n", name, limit_ms / 1000);
    }
    if (!has_ended || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    {
        fprintf(stderr, "tp bench --peers: %s failed (%s %d); the end of its output:\n", name,
            WIFSIGNALED(status) || !has_ended ? "signal" : "exit status",
            !has_ended ? SIGKILL : WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        peers_print_tail(log);
        return NULL;
    }
    static char text[PEERS_OUTPUT_MAX];
    FILE *f = fopen(log, "r");
    size_t length = f != NULL ? fread(text, 1, sizeof(text) - 1, f) : 0;
    if (f != NULL)
    {
        fclose(f);
    }
    text[length] = '\0';
    char *line = NULL;
    for (char *at = text; at != NULL && *at != '\0'; at = strchr(at, '\n'), at = at != NULL ? at + 1 : NULL)
    {
        line = *at == '{' ? at : line;
    }
    tp_json_t *tree = NULL;
    if (line == NULL || tp_json_parse(&tree, line, strcspn(line, "\n")) < 0)
    {
        fprintf(stderr, "tp bench --peers: %s printed no JSON result; the end of its output:\n", name);
        peers_print_tail(log);
        return NULL;
    }
    return tree;
}

static double peers_number(const tp_json_t *object, const char *key)
{
    const tp_json_t *v = object != NULL ? tp_json_get(object, key) : NULL;
    return v != NULL && v->type == TP_JSON_NUMBER ? strtod(v->text, NULL) : -1;
}

/* The element of array whose member key equals value (a number), or NULL. */
static const tp_json_t *peers_find_entry(const tp_json_t *array, const char *key, double value, const char *key2,
    double value2)
{
    for (const tp_json_t *e = array != NULL ? array->child : NULL; e != NULL; e = e->next)
    {
        if (peers_number(e, key) == value && (key2 == NULL || peers_number(e, key2) == value2))
        {
            return e;
        }
    }
    return NULL;
}

static void peers_add(double *values, int *n, double v)
{
    if (v > 0 && *n < PEERS_MAX_REPEATS)
    {
        values[(*n)++] = v;
    }
}

static void peers_ours(peers_bench_t *b, peers_row_id_t row, double v)
{
    peers_add(b->ours[row], &b->n_ours[row], v);
    b->has_ours[row] = v > 0;
    b->round_ours[row] = v;
}

/* The peer's figure of this round, and its ratio to ours of the same round: the machine's placement changes
 * between rounds, so a ratio within one round compares like with like better than a ratio of two medians. */
static void peers_theirs(peers_bench_t *b, peers_row_id_t row, double v)
{
    peers_add(b->peer[row], &b->n_peer[row], v);
    if (v > 0 && b->has_ours[row])
    {
        peers_add(b->ratio[row], &b->n_ratio[row], b->round_ours[row] / v);
    }
}

static int peers_round_ours(peers_bench_t *b)
{
    char seconds[32];
    char round_trips[32];
    snprintf(seconds, sizeof(seconds), "%g", b->seconds);
    snprintf(round_trips, sizeof(round_trips), "%" PRIu64, b->round_trips);
    char *bus_argv[] = { b->self, "bench", "bus", "--json", "--repeats", "1", "--seconds", seconds, "--round-trips",
        round_trips, NULL };
    tp_json_t *bus = peers_run_json(b, "tp-bench-bus", bus_argv);
    if (bus == NULL)
    {
        return -1;
    }
    const tp_json_t *throughput = tp_json_get(bus, "throughput");
    peers_ours(b, ROW_BUS_32, peers_number(peers_find_entry(throughput, "size", 32, "publishers", 1), "msgs_per_s"));
    peers_ours(b, ROW_BUS_256, peers_number(peers_find_entry(throughput, "size", 256, "publishers", 1), "msgs_per_s"));
    const tp_json_t *rtt = tp_json_get(bus, "round_trip_us");
    const tp_json_t *spin = rtt != NULL ? rtt->child : NULL; /* the first mode is busy-spin, as cping's */
    peers_ours(b, ROW_RTT_P50, peers_number(spin, "p50"));
    peers_ours(b, ROW_RTT_P99, peers_number(spin, "p99"));
    tp_json_free(bus);
    char *frames_argv[] = { b->self, "bench", "frames", "--json", "--processes", "--repeats", "1", "--seconds",
        seconds, NULL };
    tp_json_t *frames = peers_run_json(b, "tp-bench-frames", frames_argv);
    if (frames == NULL)
    {
        return -1;
    }
    const tp_json_t *sizes = tp_json_get(frames, "sizes");
    const tp_json_t *small = peers_find_entry(sizes, "bytes", 64, NULL, 0);
    peers_ours(b, ROW_COPY_640K, peers_number(peers_find_entry(sizes, "bytes", 655360, NULL, 0), "copy_gib_s"));
    peers_ours(b, ROW_CLAIM_64_ZMQ, peers_number(small, "claim_frames_per_s"));
    peers_ours(b, ROW_CLAIM_64_ICEORYX, peers_number(small, "claim_frames_per_s"));
    peers_ours(b, ROW_COPY_64_ZMQ, peers_number(small, "copy_frames_per_s"));
    peers_ours(b, ROW_ONE_WAY, peers_number(tp_json_get(frames, "latency_us"), "p50"));
    tp_json_free(frames);
    return 0;
}

/* One run of a tp-peer-* program: its msgs/s, or its GiB/s when gib; -1 when it failed. */
static double peers_program(const peers_bench_t *b, const char *program, const char *name, uint32_t size, bool gib)
{
    char bytes[32];
    char seconds[32];
    snprintf(bytes, sizeof(bytes), "%" PRIu32, size);
    snprintf(seconds, sizeof(seconds), "%g", b->seconds);
    char *argv[] = { (char *)program, bytes, seconds, NULL };
    tp_json_t *result = peers_run_json(b, name, argv);
    double v = peers_number(result, gib ? "gib_s" : "msgs_per_s");
    tp_json_free(result);
    return v;
}

static double peers_iceoryx(peers_bench_t *b, uint32_t size, bool gib);

static void peers_round_theirs(peers_bench_t *b, bool has_aeron, bool has_iceoryx)
{
    if (has_aeron)
    {
        peers_theirs(b, ROW_BUS_32, tp_bench_aeron_stream(b->aeron, b->dir, "aeron:ipc", 32, b->seconds));
        peers_theirs(b, ROW_BUS_256, tp_bench_aeron_stream(b->aeron, b->dir, "aeron:ipc", 256, b->seconds));
        tp_bench_aeron_t rtt = { 0 };
        if (tp_bench_aeron_ping(b->aeron, b->dir, "aeron:ipc", "aeron:ipc", b->round_trips, &rtt))
        {
            peers_theirs(b, ROW_RTT_P50, rtt.p50_us);
            peers_theirs(b, ROW_RTT_P99, rtt.p99_us);
            peers_theirs(b, ROW_ONE_WAY, rtt.p50_us / 2);
        }
    }
    if (b->zmq[0] != '\0')
    {
        double zmq = peers_program(b, b->zmq, "tp-peer-zmq", 64, false);
        peers_theirs(b, ROW_CLAIM_64_ZMQ, zmq);
        peers_theirs(b, ROW_COPY_64_ZMQ, zmq);
    }
    if (has_iceoryx)
    {
        peers_theirs(b, ROW_CLAIM_64_ICEORYX, peers_iceoryx(b, 64, false));
        peers_theirs(b, ROW_COPY_640K, peers_iceoryx(b, 655360, true));
    }
}

/* RouDi with memory pools for 64 B and 640 KiB chunks; the pid, 0 when one was running already (it is used as it
 * is), -1 when it could not start. */
static pid_t peers_start_roudi(const peers_bench_t *b)
{
    char config[256];
    char log[256];
    snprintf(config, sizeof(config), "%s/roudi.toml", b->dir);
    snprintf(log, sizeof(log), "%s/iox-roudi.log", b->dir);
    FILE *f = fopen(config, "w");
    if (f == NULL)
    {
        return -1;
    }
    /* 16 queued + held + loaned chunks of each size, with room to spare; 640 KiB plus iceoryx's chunk header */
    fprintf(f, "[general]\nversion = 1\n\n[[segment]]\n\n[[segment.mempool]]\nsize = 128\ncount = 1024\n\n"
               "[[segment.mempool]]\nsize = 720896\ncount = 48\n");
    fclose(f);
    char roudi[] = "/usr/bin/iox-roudi";
    char *argv[] = { roudi, "-c", config, "-l", "info", NULL };
    pid_t pid = tp_bench_spawn(argv, log);
    for (int i = 0; i < 500 && pid > 0; i++)
    {
        char line[256];
        bool is_ready = false;
        f = fopen(log, "r");
        while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        {
            is_ready = is_ready || strstr(line, "RouDi is ready for clients") != NULL;
        }
        if (f != NULL)
        {
            fclose(f);
        }
        if (is_ready)
        {
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
        {
            return 0; /* it exits at once when another RouDi runs */
        }
        usleep(10000);
    }
    tp_bench_stop_child(pid);
    return -1;
}

/* One run of tp-peer-iceoryx under a RouDi of its own: a RouDi that served a run sometimes stopped answering the
 * next one's registration (iceoryx 2.0.3), so each run starts clean. -1 when it failed. */
static double peers_iceoryx(peers_bench_t *b, uint32_t size, bool gib)
{
    pid_t roudi = peers_start_roudi(b);
    if (roudi < 0)
    {
        char log[256];
        snprintf(log, sizeof(log), "%s/iox-roudi.log", b->dir);
        fprintf(stderr, "tp bench --peers: iox-roudi did not start; the end of its output:\n");
        peers_print_tail(log);
        return -1;
    }
    double v = peers_program(b, b->iceoryx, "tp-peer-iceoryx", size, gib);
    tp_bench_stop_child(roudi);
    return v;
}

static void peers_print_value(char *out, size_t n, const peers_row_t *row, const double *values, int count)
{
    if (count == 0)
    {
        snprintf(out, n, "-");
        return;
    }
    tp_bench_stat_t st;
    tp_bench_stats(values, count, &st);
    snprintf(out, n, "%.3g %s", st.median / row->scale, row->unit);
}

static double peers_median(const double *values, int count)
{
    tp_bench_stat_t st = { 0, 0, 0 };
    if (count > 0)
    {
        tp_bench_stats(values, count, &st);
    }
    return st.median;
}

static void peers_report(const peers_bench_t *b)
{
    if (b->json)
    {
        printf("{\"rounds\":%" PRIu64 ",\"placement_ns\":[", b->repeats);
        for (uint64_t r = 0; r < b->repeats; r++)
        {
            printf("%s%.0f", r > 0 ? "," : "", b->placement_ns[r]);
        }
        printf("],\"rows\":[");
    }
    else
    {
        printf("\nplacement (CPU 0 <-> CPU 1 cache-line round trip) at the start of each round:");
        for (uint64_t r = 0; r < b->repeats; r++)
        {
            printf(" %.0f", b->placement_ns[r]);
        }
        printf(" ns (under 180 near, else far)\n");
        printf("\n%-34s %-14s %-12s %-14s %s\n", "figure (median of rounds)", "ours", "peer", "peer's", "ours/peer");
    }
    for (int r = 0; r < ROW_COUNT; r++)
    {
        double ours = peers_median(b->ours[r], b->n_ours[r]);
        double theirs = peers_median(b->peer[r], b->n_peer[r]);
        double ratio = peers_median(b->ratio[r], b->n_ratio[r]);
        if (b->json)
        {
            printf("%s{\"figure\":\"%s\",\"peer\":\"%s\",\"unit\":\"%s\",\"ours\":%.6g,\"peers\":%.6g,\"ratio\":%.3f,"
                   "\"lower_is_better\":%s}",
                r > 0 ? "," : "", rows[r].figure, rows[r].peer, rows[r].unit, ours / rows[r].scale,
                theirs / rows[r].scale, ratio, rows[r].is_time ? "true" : "false");
            continue;
        }
        char a[32];
        char t[32];
        peers_print_value(a, sizeof(a), &rows[r], b->ours[r], b->n_ours[r]);
        peers_print_value(t, sizeof(t), &rows[r], b->peer[r], b->n_peer[r]);
        char ratio_text[32] = "-";
        if (ratio > 0)
        {
            bool is_better = rows[r].is_time ? ratio <= 1 : ratio >= 1;
            snprintf(ratio_text, sizeof(ratio_text), "%.2f%s", ratio, is_better ? "  (faster)" : "  (slower)");
        }
        printf("%-34s %-14s %-12s %-14s %s\n", rows[r].figure, a, rows[r].peer, t, ratio_text);
    }
    printf(b->json ? "]}\n" : "");
}

/* Which peers are there; a line for each that is not. */
static void peers_discover(peers_bench_t *b, bool *has_aeron, bool *has_iceoryx)
{
    char probe[PATH_MAX + 16];
    snprintf(probe, sizeof(probe), "%s/aeronmd", b->aeron != NULL ? b->aeron : "");
    *has_aeron = b->aeron != NULL && access(probe, X_OK) == 0;
    peers_find(b->self, "tp-peer-zmq", b->zmq, sizeof(b->zmq));
    peers_find(b->self, "tp-peer-iceoryx", b->iceoryx, sizeof(b->iceoryx));
    *has_iceoryx = b->iceoryx[0] != '\0' && access("/usr/bin/iox-roudi", X_OK) == 0;
    FILE *out = b->json ? stderr : stdout;
    if (!*has_aeron)
    {
        fprintf(out, "Aeron: skipped (%s%s%s)\n", b->aeron == NULL ? "set AERON_BIN_DIR or --aeron to the directory of "
                                                                   "aeronmd and its C samples" : "no aeronmd in ",
            b->aeron != NULL ? b->aeron : "", b->aeron != NULL ? "" : "; docs/ARCHITECTURE.md says how to build them");
    }
    if (b->zmq[0] == '\0')
    {
        fprintf(out, "ZeroMQ: skipped (tp-peer-zmq was not built: install libzmq3-dev and build again)\n");
    }
    if (!*has_iceoryx)
    {
        fprintf(out, "iceoryx: skipped (%s)\n", b->iceoryx[0] == '\0' ? "tp-peer-iceoryx was not built: install "
                                                                      "libiceoryx-binding-c-dev and build again"
                                                                    : "no /usr/bin/iox-roudi: install iceoryx");
    }
}

int tp_bench_peers(int argc, char **argv)
{
    if (argc >= 2 && tp_cli_is_help(argv[1]))
    {
        peers_usage(stdout);
        return TP_EXIT_OK;
    }
    static peers_bench_t b;
    memset(&b, 0, sizeof(b));
    int rc = peers_parse(argc, argv, &b);
    if (rc != TP_EXIT_OK)
    {
        return rc;
    }
    ssize_t n = readlink("/proc/self/exe", b.self, sizeof(b.self) - 1);
    if (n <= 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "bench --peers", "cannot find this program: %s", strerror(errno));
    }
    b.self[n] = '\0';
    tp_cli_install_stop_handlers();
    snprintf(b.dir, sizeof(b.dir), "/dev/shm/tp-bench-%d", (int)getpid());
    if (mkdir(b.dir, 0700) < 0 && errno != EEXIST)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "bench --peers", "cannot create %s: %s", b.dir, strerror(errno));
    }
    if (!b.json)
    {
        tp_bench_print_machine(stdout, argc, argv);
    }
    bool has_aeron = false;
    bool has_iceoryx = false;
    peers_discover(&b, &has_aeron, &has_iceoryx);
    pid_t aeronmd = has_aeron ? tp_bench_aeron_driver_start(b.aeron, b.dir) : -1;
    if (!b.json)
    {
        printf("running %" PRIu64 " rounds, ours then the peers' in each...\n", b.repeats);
        fflush(stdout);
    }
    int status = TP_EXIT_OK;
    for (uint64_t r = 0; r < b.repeats && status == TP_EXIT_OK && !tp_cli_stop_requested(); r++)
    {
        b.placement_ns[r] = tp_bench_placement_ns();
        memset(b.has_ours, 0, sizeof(b.has_ours));
        status = peers_round_ours(&b) < 0 ? TP_EXIT_FAILED : TP_EXIT_OK;
        if (status == TP_EXIT_OK && !tp_cli_stop_requested())
        {
            peers_round_theirs(&b, aeronmd > 0, has_iceoryx);
        }
    }
    tp_bench_aeron_driver_stop(aeronmd);
    if (status != TP_EXIT_OK)
    {
        fprintf(stderr, "tp bench --peers: logs kept in %s\n", b.dir);
        return tp_cli_fail(TP_EXIT_FAILED, "bench --peers", "one of our benchmarks failed (see above)");
    }
    tp_fs_remove_tree(b.dir);
    peers_report(&b);
    return TP_EXIT_OK;
}
