/* Directory helpers shared by the SHM layout and the bus directory; see tp_fs.h. */
#include "core/tp_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pwd.h>

#include "core/tp_alloc.h"
#include "core/tp_err.h"

#define FS_PATH_MAX 4096

static int component_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

void tp_fs_sanitize_component(const char *in, char *out, size_t capacity)
{
    size_t n = 0;
    for (; in != NULL && in[n] != '\0' && n + 1 < capacity; n++)
    {
        out[n] = component_char_ok(in[n]) ? in[n] : '_';
    }
    out[n] = '\0';
    if (n == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
    {
        snprintf(out, capacity, "_");
    }
}

int tp_fs_component_is_safe(const char *name)
{
    if (name == NULL || name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    {
        return 0;
    }
    for (const char *c = name; *c != '\0'; c++)
    {
        if (!component_char_ok(*c))
        {
            return 0;
        }
    }
    return 1;
}

int tp_fs_user_dir_name(char *out, size_t capacity)
{
    char raw[256];
    struct passwd pw;
    struct passwd *found = NULL;
    char buf[4096];
    if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &found) == 0 && found != NULL && found->pw_name != NULL)
    {
        snprintf(raw, sizeof(raw), "%s", found->pw_name);
    }
    else
    {
        snprintf(raw, sizeof(raw), "uid%u", (unsigned)geteuid());
    }
    char safe[256];
    tp_fs_sanitize_component(raw, safe, sizeof(safe));
    int n = snprintf(out, capacity, "tensorpool-%s", safe);
    if (n < 0 || (size_t)n >= capacity)
    {
        TP_SET_ERR(TP_E_INVALID, "user directory name does not fit %zu bytes", capacity);
        return -1;
    }
    return 0;
}


/* Inside a shared-group directory (setgid, group-writable, closed to others), a directory of that group that the
 * group may write was made by a member: as trustworthy as the parent itself (root watching a shared bus). */
static bool is_group_member_dir(const struct stat *st, const struct stat *parent)
{
    return parent != NULL && tp_fs_is_shared_dir(parent) && st->st_gid == parent->st_gid &&
           (st->st_mode & S_IWGRP) != 0;
}

/* tp_fs_check_dir that also trusts directories of trusted_uid ((uid_t)-1: nobody more) and, given the parent's
 * stat, directories of a shared group's members. */
static int check_dir(const char *path, const struct stat *st, uid_t trusted_uid, const struct stat *parent)
{
    if (S_ISLNK(st->st_mode) || !S_ISDIR(st->st_mode))
    {
        TP_SET_ERR(TP_E_CONTAINMENT, "'%s' exists but is not a directory (or is a symlink)", path);
        return -1;
    }
    bool is_ours = st->st_uid == geteuid() || st->st_uid == 0 || st->st_uid == trusted_uid ||
                   is_group_member_dir(st, parent);
    if ((st->st_mode & S_IWOTH) != 0 && !(st->st_uid == 0 && (st->st_mode & S_ISVTX) != 0))
    {
        TP_SET_ERR(TP_E_CONTAINMENT, "directory '%s' (mode %04o) is writable by every user: anyone could replace "
            "what lives in it; remove it or chmod o-w", path, (unsigned)(st->st_mode & 07777));
        return -1;
    }
    if (!is_ours && !((st->st_mode & S_IWGRP) != 0 && tp_fs_in_our_groups(st->st_gid)))
    {
        TP_SET_ERR(TP_E_CONTAINMENT, "directory '%s' belongs to uid %u, not to us (uid %u) nor to a shared group of "
            "ours: refusing to use it; remove it, or run as its owner", path, (unsigned)st->st_uid,
            (unsigned)geteuid());
        return -1;
    }
    return 0;
}

int tp_fs_check_dir(const char *path, const struct stat *st)
{
    return check_dir(path, st, (uid_t)-1, NULL);
}

int tp_fs_check_ancestors(const char *path)
{
    return tp_fs_check_ancestors_shared(path, false);
}

int tp_fs_check_ancestors_shared(const char *path, bool trust_shared_leaf)
{
    uid_t leaf_owner = (uid_t)-1;
    char partial[FS_PATH_MAX];
    if (strlen(path) >= sizeof(partial) || path[0] != '/')
    {
        TP_SET_ERR(TP_E_INVALID, "'%s' is not an absolute path that fits %d bytes", path, FS_PATH_MAX);
        return -1;
    }
    strcpy(partial, path);
    for (;;)
    {
        struct stat st;
        if (lstat(partial, &st) < 0)
        {
            TP_SET_ERR(errno, "'%s': %s", partial, strerror(errno));
            return -1;
        }
        if (!(trust_shared_leaf && leaf_owner == (uid_t)-1 && tp_fs_is_shared_dir(&st)) &&
            check_dir(partial, &st, leaf_owner, NULL) < 0)
        {
            return -1;
        }
        if (leaf_owner == (uid_t)-1)
        {
            leaf_owner = st.st_uid; /* whoever may use path may trust its owner's directories above it */
        }
        if (st.st_uid == 0)
        {
            return 0; /* nobody but root can replace what a root-owned directory holds: no need to look further */
        }
        char *slash = strrchr(partial, '/');
        if (slash == NULL || slash == partial)
        {
            return 0;
        }
        *slash = '\0';
    }
}

int tp_fs_mkdirs(const char *trusted_root, const char *path, mode_t mode)
{
    struct stat st;
    if (lstat(trusted_root, &st) < 0 || !S_ISDIR(st.st_mode))
    {
        TP_SET_ERR(TP_E_CONFIG, "base directory '%s' does not exist or is not a directory", trusted_root);
        return -1;
    }
    size_t root_n = strlen(trusted_root);
    if (strncmp(path, trusted_root, root_n) != 0 || (path[root_n] != '/' && path[root_n] != '\0'))
    {
        TP_SET_ERR(TP_E_CONTAINMENT, "'%s' is not below base directory '%s'", path, trusted_root);
        return -1;
    }
    char partial[FS_PATH_MAX];
    if (strlen(path) >= sizeof(partial))
    {
        TP_SET_ERR(TP_E_INVALID, "path '%s' is too long", path);
        return -1;
    }
    strcpy(partial, path);
    struct stat parent = st;
    for (char *p = partial + root_n + 1; p != NULL && *p != '\0';)
    {
        char *slash = strchr(p, '/');
        if (slash != NULL)
        {
            *slash = '\0';
        }
        if (mkdir(partial, mode) == 0)
        {
            /* mkdir honours the umask; set exactly the configured mode (setgid bits included). */
            if (chmod(partial, mode) < 0)
            {
                TP_SET_ERR(errno, "chmod %o on '%s' failed: %s", (unsigned)mode, partial, strerror(errno));
                return -1;
            }
        }
        else if (errno != EEXIST)
        {
            TP_SET_ERR(errno, "creating directory '%s' failed: %s", partial, strerror(errno));
            return -1;
        }
        if (lstat(partial, &st) < 0)
        {
            TP_SET_ERR(errno, "'%s': %s", partial, strerror(errno));
            return -1;
        }
        if (check_dir(partial, &st, (uid_t)-1, &parent) < 0)
        {
            return -1;
        }
        if (slash == NULL)
        {
            break;
        }
        parent = st;
        *slash = '/';
        p = slash + 1;
    }
    return 0;
}

static int remove_tree_at(int dirfd, const char *name, int depth)
{
    if (depth > 16)
    {
        TP_SET_ERR(TP_E_INVALID, "directory tree too deep while removing '%s'", name);
        return -1;
    }
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    {
        return errno == ENOENT ? 0 : -1;
    }
    if (!S_ISDIR(st.st_mode))
    {
        return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
    {
        return -1;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL)
    {
        close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
    {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        {
            continue;
        }
        if (remove_tree_at(fd, e->d_name, depth + 1) < 0)
        {
            rc = -1;
        }
    }
    closedir(d);
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    {
        rc = -1;
    }
    return rc;
}

int tp_fs_remove_tree_below(const char *trusted_root, const char *path)
{
    size_t root_n = strlen(trusted_root);
    while (root_n > 1 && trusted_root[root_n - 1] == '/')
    {
        root_n--;
    }
    if (strncmp(path, trusted_root, root_n) != 0 || path[root_n] != '/' || strlen(path) >= FS_PATH_MAX)
    {
        TP_SET_ERR(TP_E_CONTAINMENT, "'%s' is not below '%s'", path, trusted_root);
        return -1;
    }
    char rest[FS_PATH_MAX];
    strcpy(rest, path + root_n + 1);
    int dirfd = open(trusted_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
    {
        return errno == ENOENT ? 0 : -1;
    }
    /* Walk down one component at a time, never through a symlink: a directory swapped for a link on the way is
     * not followed out of the tree. */
    char *name = rest;
    for (char *slash = strchr(name, '/'); slash != NULL; slash = strchr(name, '/'))
    {
        *slash = '\0';
        int next = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(dirfd);
        if (next < 0)
        {
            if (errno == ENOENT)
            {
                return 0;
            }
            TP_SET_ERR(errno, "not removing '%s': '%s' on the way is not a plain directory (%s)", path, name,
                strerror(errno));
            return -1;
        }
        dirfd = next;
        name = slash + 1;
    }
    int rc = remove_tree_at(dirfd, name, 0);
    int saved = errno;
    close(dirfd);
    if (rc < 0)
    {
        TP_SET_ERR(saved, "removing '%s' failed: %s", path, strerror(saved));
    }
    return rc;
}

int tp_fs_remove_tree(const char *path)
{
    if (remove_tree_at(AT_FDCWD, path, 0) < 0)
    {
        TP_SET_ERR(errno, "removing '%s' failed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int tp_fs_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *length)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL)
    {
        TP_SET_ERR(errno, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096;
    size_t n = 0;
    uint8_t *buf = NULL;
    if (tp_alloc((void **)&buf, cap) < 0)
    {
        goto error;
    }
    while (1)
    {
        if (n == cap)
        {
            if (cap >= max_bytes)
            {
                TP_SET_ERR(TP_E_INVALID, "'%s' is larger than %zu bytes", path, max_bytes);
                goto error;
            }
            cap *= 2;
            void *p = buf;
            if (tp_realloc(&p, cap) < 0)
            {
                goto error;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
        {
            break;
        }
    }
    if (ferror(f))
    {
        TP_SET_ERR(EIO, "reading '%s' failed", path);
        goto error;
    }
    if (n > max_bytes)
    {
        TP_SET_ERR(TP_E_INVALID, "'%s' is larger than %zu bytes", path, max_bytes);
        goto error;
    }
    if (f != stdin)
    {
        fclose(f);
    }
    *data = buf;
    *length = n;
    return 0;
error:
    tp_free(buf);
    if (f != stdin)
    {
        fclose(f);
    }
    return -1;
}
