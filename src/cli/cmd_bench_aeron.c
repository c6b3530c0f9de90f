/*
 * Aeron's own samples over its C media driver, to print beside ours: aeronmd (SHARED threading),
 * streaming_publisher -> rate_subscriber (the best per-second rate it reports) and cping/cpong (HdrHistogram
 * percentiles), over UDP for `tp bench bus --udp` and over IPC for `tp bench --peers`. Aeron is built outside this
 * repository (docs/ARCHITECTURE.md says how). Also the spawning of child programs every peer runner uses.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/tp_bench.h"

extern char **environ;

pid_t tp_bench_spawn(char *const argv[], const char *log)
{
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    /* No signal blocked or ignored from here: a child that handles SIGINT (aeronmd, iox-roudi) must get it. */
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigset_t defaults;
    sigemptyset(&none);
    sigfillset(&defaults);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc == 0 ? pid : -1;
}

void tp_bench_stop_child(pid_t pid)
{
    if (pid > 0)
    {
        kill(pid, SIGINT);
        for (int i = 0; i < 300 && waitpid(pid, NULL, WNOHANG) != pid; i++)
        {
            usleep(10000);
            if (i == 200)
            {
                kill(pid, SIGKILL);
            }
        }
    }
}

/* The best per-second rate rate_subscriber printed ("..., 1.234e+05 msgs/sec, ..."). */
static double aeron_best_rate(const char *log)
{
    FILE *f = fopen(log, "r");
    double best = 0;
    char line[512];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
    {
        char *at = strstr(line, " msgs/sec");
        char *comma = strchr(line, ',');
        if (at != NULL && comma != NULL && comma < at)
        {
            double v = strtod(comma + 1, NULL);
            best = v > best ? v : best;
        }
    }
    if (f != NULL)
    {
        fclose(f);
    }
    return best;
}

/* p50, p99 and max from cping's HdrHistogram print (values in microseconds). */
static bool aeron_rtt(const char *log, tp_bench_aeron_t *out)
{
    FILE *f = fopen(log, "r");
    char line[512];
    bool has50 = false;
    bool has99 = false;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
    {
        double value;
        double percentile;
        if (sscanf(line, " %lf %lf", &value, &percentile) == 2 && line[0] == ' ')
        {
            if (!has50 && percentile >= 0.5)
            {
                out->p50_us = value;
                has50 = true;
            }
            if (!has99 && percentile >= 0.99)
            {
                out->p99_us = value;
                has99 = true;
            }
            out->max_us = value;
        }
    }
    if (f != NULL)
    {
        fclose(f);
    }
    return has50 && has99;
}

pid_t tp_bench_aeron_driver_start(const char *bin, const char *work_dir)
{
    char dir_arg[320];
    char md[1100];
    char log[400];
    snprintf(dir_arg, sizeof(dir_arg), "-Daeron.dir=%s/aeron", work_dir);
    snprintf(md, sizeof(md), "%s/aeronmd", bin);
    snprintf(log, sizeof(log), "%s/aeronmd.log", work_dir);
    char *md_argv[] = { md, dir_arg, "-Daeron.threading.mode=SHARED", "-Daeron.dir.delete.on.shutdown=true", NULL };
    pid_t driver = tp_bench_spawn(md_argv, log);
    usleep(500000);
    return driver;
}

void tp_bench_aeron_driver_stop(pid_t driver)
{
    tp_bench_stop_child(driver);
}

double tp_bench_aeron_stream(const char *bin, const char *work_dir, const char *channel, size_t size, double seconds)
{
    char aeron_dir[300];
    char sub[1100];
    char pub[1100];
    char length[32];
    char sub_log[400];
    char pub_log[400];
    snprintf(aeron_dir, sizeof(aeron_dir), "%s/aeron", work_dir);
    snprintf(sub, sizeof(sub), "%s/rate_subscriber", bin);
    snprintf(pub, sizeof(pub), "%s/streaming_publisher", bin);
    snprintf(length, sizeof(length), "%zu", size);
    snprintf(sub_log, sizeof(sub_log), "%s/rate_subscriber.log", work_dir);
    snprintf(pub_log, sizeof(pub_log), "%s/streaming_publisher.log", work_dir);
    char *sub_argv[] = { "/usr/bin/stdbuf", "-oL", sub, "-p", aeron_dir, "-c", (char *)channel, "-s", "1", NULL };
    char *pub_argv[] = { pub, "-p", aeron_dir, "-c", (char *)channel, "-s", "1", "-L", length, "-m", "1000000000",
        "-l", "0", NULL };
    pid_t sp = tp_bench_spawn(sub_argv, sub_log);
    usleep(300000);
    pid_t pp = tp_bench_spawn(pub_argv, pub_log);
    usleep((useconds_t)(seconds * 1e6) + 1500000);
    tp_bench_stop_child(pp);
    tp_bench_stop_child(sp);
    return aeron_best_rate(sub_log);
}

bool tp_bench_aeron_ping(const char *bin, const char *work_dir, const char *ping_channel, const char *pong_channel,
    uint64_t round_trips, tp_bench_aeron_t *out)
{
    char aeron_dir[300];
    char ping[1100];
    char pong[1100];
    char ping_log[400];
    char pong_log[400];
    char count[32];
    snprintf(aeron_dir, sizeof(aeron_dir), "%s/aeron", work_dir);
    snprintf(ping, sizeof(ping), "%s/cping", bin);
    snprintf(pong, sizeof(pong), "%s/cpong", bin);
    snprintf(ping_log, sizeof(ping_log), "%s/cping.log", work_dir);
    snprintf(pong_log, sizeof(pong_log), "%s/cpong.log", work_dir);
    snprintf(count, sizeof(count), "%" PRIu64, round_trips);
    char *pong_argv[] = { pong, "-p", aeron_dir, "-c", (char *)ping_channel, "-C", (char *)pong_channel, NULL };
    char *ping_argv[] = { "/usr/bin/stdbuf", "-oL", ping, "-p", aeron_dir, "-c", (char *)ping_channel, "-C",
        (char *)pong_channel, "-m", count, "-w", "50", "-L", "32", NULL };
    pid_t po = tp_bench_spawn(pong_argv, pong_log);
    usleep(300000);
    pid_t pi = po > 0 ? tp_bench_spawn(ping_argv, ping_log) : -1;
    for (int i = 0; i < 3000 && pi > 0 && waitpid(pi, NULL, WNOHANG) != pi; i++)
    {
        usleep(10000);
    }
    tp_bench_stop_child(pi);
    tp_bench_stop_child(po);
    out->has_rtt = aeron_rtt(ping_log, out);
    return out->has_rtt;
}

void tp_bench_aeron_measure(const char *bin, const char *work_dir, int *port, double seconds, const size_t *sizes,
    tp_bench_aeron_t *out)
{
    memset(out, 0, sizeof(*out));
    pid_t driver = tp_bench_aeron_driver_start(bin, work_dir);
    for (int s = 0; s < TP_BENCH_AERON_SIZES && driver > 0; s++)
    {
        char channel[128];
        snprintf(channel, sizeof(channel), "aeron:udp?endpoint=127.0.0.1:%d", (*port)++);
        out->msgs_per_s[s] = tp_bench_aeron_stream(bin, work_dir, channel, sizes[s], seconds);
    }
    char ping_channel[128];
    char pong_channel[128];
    snprintf(ping_channel, sizeof(ping_channel), "aeron:udp?endpoint=127.0.0.1:%d", (*port)++);
    snprintf(pong_channel, sizeof(pong_channel), "aeron:udp?endpoint=127.0.0.1:%d", (*port)++);
    if (driver > 0)
    {
        tp_bench_aeron_ping(bin, work_dir, ping_channel, pong_channel, 500, out);
    }
    tp_bench_aeron_driver_stop(driver);
}
