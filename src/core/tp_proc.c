#include "core/tp_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/tp_atomic.h"

uint64_t tp_proc_start_time(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
    {
        return 0;
    }
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
    {
        return 0;
    }
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
    {
        return 0;
    }
    p++;
    unsigned long long start = 0;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
     * priority nice num_threads itrealvalue starttime(22) */
    if (sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &start) != 1)
    {
        return 0;
    }
    return start;
}

bool tp_proc_is_alive(pid_t pid, uint64_t start_time)
{
    if (pid <= 0)
    {
        return false;
    }
    /* Our own entries (a process may hold hundreds) need no system call. Threads racing here compute the same
     * values; a forked child recomputes. */
    static int self_pid;
    static uint64_t self_start_time;
    pid_t me = getpid();
    if (tp_load_relaxed_int(&self_pid) != me)
    {
        tp_store_relaxed_u64(&self_start_time, tp_proc_start_time(me));
        tp_store_release_int(&self_pid, me);
    }
    if (pid == me && tp_load_acquire_int(&self_pid) == me &&
        (start_time == 0 || start_time == tp_load_relaxed_u64(&self_start_time)))
    {
        return true;
    }
    if (kill(pid, 0) < 0 && errno != EPERM)
    {
        return false;
    }
    if (start_time != 0)
    {
        uint64_t now = tp_proc_start_time(pid);
        return now == 0 || now == start_time;
    }
    return true;
}

uint32_t tp_random_u32(void)
{
    uint32_t v = 0;
    while (v == 0)
    {
        if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            v = (uint32_t)(ts.tv_nsec ^ (getpid() << 16) ^ ts.tv_sec);
        }
    }
    return v;
}

/* true if a process we can see maps a file below dir ("/proc/<pid>/maps"; other users' processes are not
 * readable, and cannot map our 0600/0660 files unless they share our group). */
bool tp_proc_dir_is_mapped(const char *dir)
{
    size_t dir_n = strlen(dir);
    DIR *proc = opendir("/proc");
    if (proc == NULL)
    {
        return false;
    }
    bool is_mapped = false;
    char *line = NULL;
    size_t capacity = 0;
    struct dirent *e;
    while (!is_mapped && (e = readdir(proc)) != NULL)
    {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
        {
            continue;
        }
        char maps[320];
        snprintf(maps, sizeof(maps), "/proc/%s/maps", e->d_name);
        FILE *f = fopen(maps, "re");
        if (f == NULL)
        {
            continue;
        }
        while (getline(&line, &capacity, f) > 0)
        {
            const char *path = strchr(line, '/');
            if (path != NULL && strncmp(path, dir, dir_n) == 0 && path[dir_n] == '/')
            {
                is_mapped = true;
                break;
            }
        }
        fclose(f);
    }
    free(line);
    closedir(proc);
    return is_mapped;
}

