/* The driver lock files this process holds; see tp_driver_lock.h. */
#include "driver/tp_driver_lock.h"

#include <pthread.h>
#include <sys/stat.h>

#define MAX_HELD 16

typedef struct held
{
    int fd;
    dev_t dev;
    ino_t ino;
} held_t;

static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static held_t held[MAX_HELD];
static int held_count;

void tp_driver_lock_remember(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
    {
        return;
    }
    pthread_mutex_lock(&held_lock);
    if (held_count < MAX_HELD)
    {
        held[held_count++] = (held_t){ .fd = fd, .dev = st.st_dev, .ino = st.st_ino };
    }
    pthread_mutex_unlock(&held_lock);
}

void tp_driver_lock_forget(int fd)
{
    pthread_mutex_lock(&held_lock);
    for (int i = 0; i < held_count; i++)
    {
        if (held[i].fd == fd)
        {
            held[i] = held[--held_count];
            break;
        }
    }
    pthread_mutex_unlock(&held_lock);
}

bool tp_driver_lock_is_ours(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
    {
        return false;
    }
    bool is_ours = false;
    pthread_mutex_lock(&held_lock);
    for (int i = 0; i < held_count && !is_ours; i++)
    {
        is_ours = held[i].dev == st.st_dev && held[i].ino == st.st_ino;
    }
    pthread_mutex_unlock(&held_lock);
    return is_ours;
}
