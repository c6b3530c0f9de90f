/* What the peer benchmark programs share: see tp_peer_util.h. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tp_peer_util.h"

int64_t tp_peer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void peer_pin(int cpu)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n > 1)
    {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu % n, &set);
        sched_setaffinity(0, sizeof(set), &set);
    }
}

tp_peer_args_t tp_peer_parse(int argc, char **argv, const char *what)
{
    tp_peer_args_t a = { 0, 0 };
    char *end1 = NULL;
    char *end2 = NULL;
    if (argc == 3)
    {
        unsigned long long size = strtoull(argv[1], &end1, 10);
        a.seconds = strtod(argv[2], &end2);
        a.size = size >= 1 && size <= (64u << 20) ? (uint32_t)size : 0;
    }
    if (argc != 3 || *end1 != '\0' || *end2 != '\0' || a.size == 0 || !(a.seconds >= 0.05 && a.seconds <= 60))
    {
        fprintf(stderr,
            "usage: %s SIZE SECONDS\n\n%s\nSIZE is 1 B .. 64 MiB, SECONDS 0.05 .. 60. Prints one JSON line:\n"
            "{\"peer\":...,\"bytes\":SIZE,\"msgs_per_s\":...,\"gib_s\":...}. Run by `tp bench --peers`.\n",
            argv[0], what);
        exit(2);
    }
    return a;
}

pid_t tp_peer_fork_publisher(void (*publisher)(const tp_peer_args_t *), const tp_peer_args_t *a)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
        {
            _exit(0);
        }
        peer_pin(0);
        publisher(a);
        _exit(0);
    }
    peer_pin(1);
    return pid;
}

void tp_peer_stop(pid_t pid)
{
    if (pid > 0)
    {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

void tp_peer_print(const char *peer, uint32_t size, uint64_t messages, int64_t elapsed_ns)
{
    double seconds = (double)elapsed_ns / 1e9;
    double rate = seconds > 0 ? (double)messages / seconds : 0;
    printf("{\"peer\":\"%s\",\"bytes\":%" PRIu32 ",\"msgs_per_s\":%.0f,\"gib_s\":%.3f}\n", peer, size, rate,
        rate * size / (1024.0 * 1024.0 * 1024.0));
    fflush(stdout);
}
