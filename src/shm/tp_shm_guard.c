/* The SIGBUS guard; see tp_shm_guard.h. */
#include "shm/tp_shm_guard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#include "core/tp_atomic.h"
#include "core/tp_log.h"

/* One registered mapping. `state` is written last on add (release) and first on remove, and the handler reads it
 * (acquire) before the other fields: it never sees a half-written entry. */
typedef struct guard_entry
{
    uint32_t state; /* GUARD_FREE, GUARD_LIVE, or GUARD_LIVE | GUARD_DAMAGED */
    uint32_t is_writable;
    uint64_t base;
    uint64_t length;
    uint64_t group;
} guard_entry_t;

enum
{
    GUARD_FREE = 0,
    GUARD_LIVE = 1,
    GUARD_DAMAGED = 2,
};

static guard_entry_t guard_entries[TP_SHM_GUARD_MAX];
static uint32_t guard_high_water; /* entries below this index may be live */
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction guard_previous;

/* Replace one live mapping by zero pages at the same address, so the access that faulted (and every later one)
 * completes. MAP_FIXED over the file mapping is atomic for other threads: they see either mapping, never a hole. */
static void guard_replace(guard_entry_t *e)
{
    int prot = PROT_READ | (e->is_writable ? PROT_WRITE : 0);
    void *at = (void *)(uintptr_t)e->base;
    if (mmap(at, (size_t)e->length, prot, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED)
    {
        tp_store_release_u32(&e->state, GUARD_LIVE | GUARD_DAMAGED);
    }
}

static void guard_chain(int sig, siginfo_t *info, void *context)
{
    if ((guard_previous.sa_flags & SA_SIGINFO) != 0 && guard_previous.sa_sigaction != NULL)
    {
        guard_previous.sa_sigaction(sig, info, context);
        return;
    }
    if (guard_previous.sa_handler != SIG_DFL && guard_previous.sa_handler != SIG_IGN)
    {
        guard_previous.sa_handler(sig);
        return;
    }
    /* Not ours and nobody else's: the default action, when the faulting instruction runs again on return. */
    signal(sig, SIG_DFL);
}

static void guard_on_sigbus(int sig, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    uint64_t addr = (uint64_t)(uintptr_t)info->si_addr;
    uint32_t n = tp_load_acquire_u32(&guard_high_water);
    const guard_entry_t *hit = NULL;
    for (uint32_t i = 0; i < n && hit == NULL; i++)
    {
        const guard_entry_t *e = &guard_entries[i];
        if (tp_load_acquire_u32(&e->state) != GUARD_FREE && addr >= e->base && addr - e->base < e->length)
        {
            hit = e;
        }
    }
    if (hit == NULL)
    {
        guard_chain(sig, info, context);
        errno = saved_errno;
        return;
    }
    uint64_t group = tp_load_acquire_u64(&hit->group);
    for (uint32_t i = 0; i < n; i++)
    {
        guard_entry_t *e = &guard_entries[i];
        if (tp_load_acquire_u32(&e->state) == GUARD_LIVE && tp_load_acquire_u64(&e->group) == group)
        {
            guard_replace(e);
        }
    }
    errno = saved_errno;
}

/* Ours in front of whatever handles SIGBUS now. Checked at every registration (attach time), because a program or
 * a test framework may install its own handler after ours; theirs is then called for faults outside our mappings. */
static void guard_install(void)
{
    struct sigaction current;
    if (sigaction(SIGBUS, NULL, &current) == 0 && (current.sa_flags & SA_SIGINFO) != 0 &&
        current.sa_sigaction == guard_on_sigbus)
    {
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = guard_on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &guard_previous) < 0)
    {
        TP_LOG_W("shm", "installing the SIGBUS guard failed: %s; a truncated region file will kill this process",
            strerror(errno));
    }
}

void tp_shm_guard_install(void)
{
    pthread_mutex_lock(&guard_lock);
    guard_install();
    pthread_mutex_unlock(&guard_lock);
}

int tp_shm_guard_add(void *base, size_t length, uint64_t group, bool writable)
{
    pthread_mutex_lock(&guard_lock);
    guard_install();
    int handle = 0;
    for (uint32_t i = 0; i < TP_SHM_GUARD_MAX && handle == 0; i++)
    {
        guard_entry_t *e = &guard_entries[i];
        if (tp_load_relaxed_u32(&e->state) != GUARD_FREE)
        {
            continue;
        }
        e->base = (uint64_t)(uintptr_t)base;
        e->length = length;
        tp_store_relaxed_u64(&e->group, group);
        e->is_writable = writable;
        tp_store_release_u32(&e->state, GUARD_LIVE); /* pairs with the handler's acquire load */
        if (i + 1 > tp_load_relaxed_u32(&guard_high_water))
        {
            tp_store_release_u32(&guard_high_water, i + 1);
        }
        handle = (int)i + 1;
    }
    pthread_mutex_unlock(&guard_lock);
    if (handle == 0)
    {
        TP_LOG_W("shm", "%d mappings are guarded already: this one is not (a truncated file will raise SIGBUS)",
            TP_SHM_GUARD_MAX);
    }
    return handle;
}

void tp_shm_guard_set_group(int handle, uint64_t group)
{
    if (handle > 0 && handle <= TP_SHM_GUARD_MAX)
    {
        tp_store_release_u64(&guard_entries[handle - 1].group, group);
    }
}

void tp_shm_guard_remove(int handle)
{
    if (handle <= 0 || handle > TP_SHM_GUARD_MAX)
    {
        return;
    }
    pthread_mutex_lock(&guard_lock);
    tp_store_release_u32(&guard_entries[handle - 1].state, GUARD_FREE);
    pthread_mutex_unlock(&guard_lock);
}

bool tp_shm_guard_is_damaged(int handle)
{
    if (handle <= 0 || handle > TP_SHM_GUARD_MAX)
    {
        return false;
    }
    return (tp_load_acquire_u32(&guard_entries[handle - 1].state) & GUARD_DAMAGED) != 0;
}
