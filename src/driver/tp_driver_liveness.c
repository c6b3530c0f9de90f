/*
 * Process liveness of lease holders (driver spec 4.4: detecting a dead client SHOULD not wait for the lease to
 * expire). The attach request arrives on the holder's own bus image, whose log names its process (pid and start
 * time); the driver watches each such process once, however many leases it holds, through a pidfd that becomes
 * readable when the process exits. One poll() over every pidfd per check (TP_DRIVER_LIVENESS_PERIOD_NS): a holder
 * killed outright loses its leases within that period instead of the lease's expiry. Without pidfds (kernels before
 * 5.3) the same table is checked with kill(pid, 0) and the start time, less often.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "core/tp_log.h"
#include "core/tp_proc.h"
#include "driver/tp_driver_internal.h"
#include "driver/tp_driver_leases.h"
#include "driver/tp_driver_liveness.h"
#include "tp_sbe_driver.h"

#define LIVENESS_FALLBACK_PERIOD_NS (100 * TP_NS_PER_MS)

static int pidfd_open_checked(int32_t pid, uint64_t start_time)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0)
    {
        return -1;
    }
    /* The pid may have been reused between the attach and now: the fd must be for the process that attached. */
    if (start_time != 0 && tp_proc_start_time(pid) != start_time)
    {
        close(fd);
        return -2;
    }
    return fd;
#else
    (void)pid;
    (void)start_time;
    return -1;
#endif
}

static tp_driver_watch_t *watch_find(tp_driver_t *d, int32_t pid, uint64_t start_time)
{
    for (uint32_t i = 0; i < d->watch_count; i++)
    {
        if (d->watches[i].pid == pid && d->watches[i].start_time == start_time)
        {
            return &d->watches[i];
        }
    }
    return NULL;
}

void tp_driver_liveness_watch(tp_driver_t *d, tp_driver_lease_t *lease, int32_t pid, uint64_t start_time)
{
    if (pid <= 0 || pid == (int32_t)getpid())
    {
        return; /* unknown (no bus image) or ourselves (an embedded client): the lease expiry covers it */
    }
    tp_driver_watch_t *w = watch_find(d, pid, start_time);
    if (w == NULL)
    {
        if (d->watch_count == TP_DRIVER_MAX_LEASES)
        {
            return;
        }
        int fd = pidfd_open_checked(pid, start_time);
        if (fd == -2)
        {
            d->has_dead_watch = true; /* already gone: the next check ends the lease */
        }
        w = &d->watches[d->watch_count++];
        *w = (tp_driver_watch_t){ .pid = pid, .start_time = start_time, .pidfd = fd, .leases = 0,
            .is_dead = fd == -2 };
    }
    w->leases++;
    lease->pid = pid;
    lease->pid_start_time = start_time;
}

static void watch_remove(tp_driver_t *d, uint32_t index)
{
    if (d->watches[index].pidfd >= 0)
    {
        close(d->watches[index].pidfd);
    }
    d->watches[index] = d->watches[--d->watch_count];
}

void tp_driver_liveness_unwatch(tp_driver_t *d, tp_driver_lease_t *lease)
{
    if (lease->pid == 0)
    {
        return;
    }
    tp_driver_watch_t *w = watch_find(d, lease->pid, lease->pid_start_time);
    lease->pid = 0;
    if (w != NULL && --w->leases == 0)
    {
        watch_remove(d, (uint32_t)(w - d->watches));
    }
}

/* Mark the watches whose process exited. */
static void liveness_poll(tp_driver_t *d, bool with_fallback)
{
    struct pollfd fds[TP_DRIVER_MAX_LEASES];
    uint32_t map[TP_DRIVER_MAX_LEASES];
    nfds_t n = 0;
    for (uint32_t i = 0; i < d->watch_count; i++)
    {
        tp_driver_watch_t *w = &d->watches[i];
        if (w->pidfd >= 0)
        {
            fds[n] = (struct pollfd){ .fd = w->pidfd, .events = POLLIN };
            map[n++] = i;
        }
        else if (with_fallback && !w->is_dead && !tp_proc_is_alive(w->pid, w->start_time))
        {
            w->is_dead = true;
            d->has_dead_watch = true;
        }
    }
    if (n > 0 && poll(fds, n, 0) > 0)
    {
        for (nfds_t k = 0; k < n; k++)
        {
            if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) != 0)
            {
                d->watches[map[k]].is_dead = true;
                d->has_dead_watch = true;
            }
        }
    }
}

int tp_driver_liveness_check(tp_driver_t *d)
{
    if (d->watch_count == 0 || d->now_ns < d->next_liveness_ns)
    {
        return 0;
    }
    bool with_fallback = d->now_ns >= d->next_liveness_fallback_ns;
    d->next_liveness_ns = d->now_ns + TP_DRIVER_LIVENESS_PERIOD_NS;
    if (with_fallback)
    {
        d->next_liveness_fallback_ns = d->now_ns + LIVENESS_FALLBACK_PERIOD_NS;
    }
    liveness_poll(d, with_fallback);
    if (!d->has_dead_watch)
    {
        return 0;
    }
    d->has_dead_watch = false;
    int ended = 0;
    for (uint32_t i = 0; i < TP_DRIVER_MAX_LEASES; i++)
    {
        tp_driver_lease_t *l = &d->leases[i];
        if (!l->is_active || l->pid == 0)
        {
            continue;
        }
        tp_driver_watch_t *w = watch_find(d, l->pid, l->pid_start_time);
        if (w != NULL && w->is_dead)
        {
            char why[96];
            snprintf(why, sizeof(why), "its process %" PRId32 " exited", l->pid);
            d->counters.leases_dead_process++;
            tp_driver_end_lease(d, l, TP_DRIVER_LEASE_REVOKE_REASON_EXPIRED, why); /* unwatches it */
            ended++;
        }
    }
    return ended;
}

void tp_driver_liveness_close(tp_driver_t *d)
{
    while (d->watch_count > 0)
    {
        watch_remove(d, d->watch_count - 1);
    }
}
