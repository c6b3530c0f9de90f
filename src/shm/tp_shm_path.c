/* Path containment; see tp_shm_path.h. */
#include "shm/tp_shm_path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "core/tp_alloc.h"
#include "core/tp_err.h"
#include "shm/tp_region_uri.h"

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

int tp_shm_allowed_dirs_init(tp_shm_allowed_dirs_t *allowed, const char *const *dirs, size_t count)
{
    memset(allowed, 0, sizeof(*allowed));
    if (count > TP_SHM_MAX_ALLOWED_DIRS)
    {
        TP_SET_ERR(TP_E_INVALID, "%zu allowed base directories; at most %d", count, TP_SHM_MAX_ALLOWED_DIRS);
        return -1;
    }
    for (size_t i = 0; i < count; i++)
    {
        if (dirs[i] == NULL || dirs[i][0] != '/')
        {
            TP_SET_ERR(TP_E_INVALID, "allowed base directory '%s' is not an absolute path",
                dirs[i] != NULL ? dirs[i] : "(null)");
            goto error;
        }
        char resolved[PATH_MAX];
        if (realpath(dirs[i], resolved) == NULL)
        {
            TP_SET_ERR(errno, "allowed base directory '%s' cannot be resolved: %s", dirs[i], strerror(errno));
            goto error;
        }
        struct stat st;
        if (stat(resolved, &st) < 0 || !S_ISDIR(st.st_mode))
        {
            TP_SET_ERR(TP_E_INVALID, "allowed base directory '%s' is not a directory", dirs[i]);
            goto error;
        }
        allowed->dirs[i] = tp_strdup(resolved);
        if (allowed->dirs[i] == NULL)
        {
            goto error;
        }
        allowed->count = i + 1;
    }
    return 0;
error:
    tp_shm_allowed_dirs_fini(allowed);
    return -1;
}

void tp_shm_allowed_dirs_fini(tp_shm_allowed_dirs_t *allowed)
{
    for (size_t i = 0; i < allowed->count; i++)
    {
        tp_free(allowed->dirs[i]);
    }
    memset(allowed, 0, sizeof(*allowed));
}

/* true if canonical lies strictly inside dir, comparing whole components ("/a/bc" is not inside "/a/b"). */
static bool path_is_inside(const char *canonical, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
    {
        return canonical[0] == '/' && canonical[1] != '\0';
    }
    return strncmp(canonical, dir, n) == 0 && canonical[n] == '/' && canonical[n + 1] != '\0';
}

int tp_shm_path_check(const tp_shm_allowed_dirs_t *allowed, const char *path, char *canonical, struct stat *st)
{
    if (path == NULL || path[0] != '/')
    {
        TP_SET_ERR(TP_E_CONTAINMENT, "region path '%s' is not absolute", path != NULL ? path : "(null)");
        return -1;
    }
    if (allowed == NULL || allowed->count == 0)
    {
        TP_SET_ERR(TP_E_CONTAINMENT, "no allowed base directory is configured; refusing '%s'", path);
        return -1;
    }
    char resolved[PATH_MAX];
    if (realpath(path, resolved) == NULL)
    {
        TP_SET_ERR(errno, "region path '%s' cannot be resolved: %s", path, strerror(errno));
        return -1;
    }
    size_t i = 0;
    while (i < allowed->count && !path_is_inside(resolved, allowed->dirs[i]))
    {
        i++;
    }
    if (i == allowed->count)
    {
        TP_SET_ERR(TP_E_CONTAINMENT, "region path '%s' (canonical '%s') is outside every allowed base directory",
            path, resolved);
        return -1;
    }
    if (stat(resolved, st) < 0)
    {
        TP_SET_ERR(errno, "region path '%s': stat failed: %s", resolved, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st->st_mode))
    {
        const char *kind = S_ISDIR(st->st_mode)    ? "a directory"
                           : S_ISFIFO(st->st_mode) ? "a FIFO"
                           : S_ISSOCK(st->st_mode) ? "a socket"
                           : S_ISCHR(st->st_mode)  ? "a character device"
                           : S_ISBLK(st->st_mode)  ? "a block device"
                                                   : "not a regular file";
        TP_SET_ERR(TP_E_CONTAINMENT, "region path '%s' is %s; only regular files can be mapped", resolved, kind);
        return -1;
    }
    if (strlen(resolved) >= TP_PATH_MAX)
    {
        TP_SET_ERR(TP_E_CONTAINMENT, "region path '%s' is too long", resolved);
        return -1;
    }
    strcpy(canonical, resolved);
    return 0;
}

#if defined(SYS_openat2)
#include <linux/openat2.h>
#endif

/* Open without following symlinks anywhere in the path when the kernel allows; the last component never. */
static int open_no_follow(const char *canonical, int open_flags)
{
    int flags = open_flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
#if defined(SYS_openat2) && defined(RESOLVE_NO_SYMLINKS)
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)flags;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, AT_FDCWD, canonical, &how, sizeof(how));
    if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
    {
        return (int)fd;
    }
#endif
    return open(canonical, flags);
}

int tp_shm_open_contained(const tp_shm_allowed_dirs_t *allowed, const char *path, int open_flags)
{
    char canonical[TP_PATH_MAX];
    struct stat checked;
    if (tp_shm_path_check(allowed, path, canonical, &checked) < 0)
    {
        return -1;
    }
    return tp_shm_open_validated(canonical, &checked, open_flags);
}

int tp_shm_open_validated(const char *canonical, const struct stat *checked, int open_flags)
{
    int fd = open_no_follow(canonical, open_flags);
    if (fd < 0)
    {
        int e = errno;
        TP_SET_ERR(e == ELOOP ? TP_E_CONTAINMENT : e, "opening region '%s' failed: %s%s", canonical, strerror(e),
            e == ELOOP ? " (a symlink appeared after validation)" : "");
        return -1;
    }
    struct stat opened;
    if (fstat(fd, &opened) < 0)
    {
        int e = errno;
        close(fd);
        TP_SET_ERR(e, "fstat of region '%s' failed: %s", canonical, strerror(e));
        return -1;
    }
    if (!S_ISREG(opened.st_mode) || opened.st_dev != checked->st_dev || opened.st_ino != checked->st_ino)
    {
        close(fd);
        TP_SET_ERR(TP_E_CONTAINMENT, "region '%s' changed between validation and open (file swapped)", canonical);
        return -1;
    }
    /* O_NONBLOCK only guarded the open against FIFOs; regular-file I/O does not use it. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
    {
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    return fd;
}

int tp_shm_fd_is_hugetlbfs(int fd)
{
    struct statfs sfs;
    if (fstatfs(fd, &sfs) < 0)
    {
        TP_SET_ERR(errno, "fstatfs failed: %s", strerror(errno));
        return -1;
    }
    if ((unsigned long)sfs.f_type != (unsigned long)HUGETLBFS_MAGIC)
    {
        TP_SET_ERR(TP_E_VALIDATION, "region is not on hugetlbfs (filesystem type 0x%lx)", (unsigned long)sfs.f_type);
        return -1;
    }
    return 0;
}
