/*
 * Aeron's own samples over its C media driver, for `tp bench bus --udp` to print beside ours: aeronmd (SHARED
 * threading), streaming_publisher -> rate_subscriber (the best per-second rate it reports) and cping/cpong
 * (HdrHistogram percentiles). Aeron is built outside this repository (docs/ARCHITECTURE.md says how).
 */
#include <fcntl.h>
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

static pid_t aeron_spawn(char *const argv[], const char *log)
{
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    return rc == 0 ? pid : -1;
}

static void aeron_stop(pid_t pid)
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

void tp_bench_aeron_measure(const char *bin, const char *work_dir, int *port, double seconds, const size_t *sizes,
    tp_bench_aeron_t *out)
{
    memset(out, 0, sizeof(*out));
    char aeron_dir[300];
    char dir_arg[320];
    char md[1100];
    char log[400];
    snprintf(aeron_dir, sizeof(aeron_dir), "%s/aeron", work_dir);
    snprintf(dir_arg, sizeof(dir_arg), "-Daeron.dir=%s", aeron_dir);
    snprintf(md, sizeof(md), "%s/aeronmd", bin);
    snprintf(log, sizeof(log), "%s/aeronmd.log", work_dir);
    char *md_argv[] = { md, dir_arg, "-Daeron.threading.mode=SHARED", "-Daeron.dir.delete.on.shutdown=true", NULL };
    pid_t driver = aeron_spawn(md_argv, log);
    usleep(500000);
    for (int s = 0; s < TP_BENCH_AERON_SIZES && driver > 0; s++)
    {
        char channel[128];
        snprintf(channel, sizeof(channel), "aeron:udp?endpoint=127.0.0.1:%d", (*port)++);
        char sub[1100];
        char pub[1100];
        char length[32];
        char sub_log[400];
        char pub_log[400];
        snprintf(sub, sizeof(sub), "%s/rate_subscriber", bin);
        snprintf(pub, sizeof(pub), "%s/streaming_publisher", bin);
        snprintf(length, sizeof(length), "%zu", sizes[s]);
        snprintf(sub_log, sizeof(sub_log), "%s/rate_subscriber.log", work_dir);
        snprintf(pub_log, sizeof(pub_log), "%s/streaming_publisher.log", work_dir);
        char *sub_argv[] = { "/usr/bin/stdbuf", "-oL", sub, "-p", aeron_dir, "-c", channel, "-s", "1", NULL };
        char *pub_argv[] = { pub, "-p", aeron_dir, "-c", channel, "-s", "1", "-L", length, "-m", "1000000000", "-l",
            "0", NULL };
        pid_t sp = aeron_spawn(sub_argv, sub_log);
        usleep(300000);
        pid_t pp = aeron_spawn(pub_argv, pub_log);
        usleep((useconds_t)(seconds * 1e6) + 1500000);
        aeron_stop(pp);
        aeron_stop(sp);
        out->msgs_per_s[s] = aeron_best_rate(sub_log);
    }
    char ping[1100];
    char pong[1100];
    char ping_channel[128];
    char pong_channel[128];
    char ping_log[400];
    char pong_log[400];
    snprintf(ping, sizeof(ping), "%s/cping", bin);
    snprintf(pong, sizeof(pong), "%s/cpong", bin);
    snprintf(ping_channel, sizeof(ping_channel), "aeron:udp?endpoint=127.0.0.1:%d", (*port)++);
    snprintf(pong_channel, sizeof(pong_channel), "aeron:udp?endpoint=127.0.0.1:%d", (*port)++);
    snprintf(ping_log, sizeof(ping_log), "%s/cping.log", work_dir);
    snprintf(pong_log, sizeof(pong_log), "%s/cpong.log", work_dir);
    char *pong_argv[] = { pong, "-p", aeron_dir, "-c", ping_channel, "-C", pong_channel, NULL };
    char *ping_argv[] = { "/usr/bin/stdbuf", "-oL", ping, "-p", aeron_dir, "-c", ping_channel, "-C", pong_channel,
        "-m", "500", "-w", "50", "-L", "32", NULL };
    pid_t po = driver > 0 ? aeron_spawn(pong_argv, pong_log) : -1;
    usleep(300000);
    pid_t pi = po > 0 ? aeron_spawn(ping_argv, ping_log) : -1;
    for (int i = 0; i < 3000 && pi > 0 && waitpid(pi, NULL, WNOHANG) != pi; i++)
    {
        usleep(10000);
    }
    aeron_stop(pi);
    aeron_stop(po);
    out->has_rtt = aeron_rtt(ping_log, out);
    aeron_stop(driver);
}

