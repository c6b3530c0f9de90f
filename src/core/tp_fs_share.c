/* Shared-group directories (one driver, several users) and the "not permitted" explanation; see tp_fs.h. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tp_err.h"
#include "core/tp_fs.h"

#define SHARE_PATH_MAX 4096

int tp_fs_group_id(const char *name, gid_t *out)
{
    if (name == NULL || name[0] == '\0')
    {
        TP_SET_ERR(TP_E_CONFIG, "empty group name");
        return -1;
    }
    struct group gr;
    struct group *found = NULL;
    char buf[8192];
    if (getgrnam_r(name, &gr, buf, sizeof(buf), &found) == 0 && found != NULL)
    {
        *out = found->gr_gid;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long id = strtoul(name, &end, 10);
    if (name[0] >= '0' && name[0] <= '9' && *end == '\0' && errno == 0 && id < (unsigned long)UINT32_MAX)
    {
        *out = (gid_t)id;
        return 0;
    }
    TP_SET_ERR(TP_E_CONFIG, "no group named '%s' on this machine (create it with groupadd, or give a number)", name);
    return -1;
}

void tp_fs_group_name(gid_t gid, char *out, size_t capacity)
{
    struct group gr;
    struct group *found = NULL;
    char buf[8192];
    if (getgrgid_r(gid, &gr, buf, sizeof(buf), &found) == 0 && found != NULL)
    {
        snprintf(out, capacity, "%s", found->gr_name);
        return;
    }
    snprintf(out, capacity, "%u", (unsigned)gid);
}

static void user_name(uid_t uid, char *out, size_t capacity)
{
    struct passwd pw;
    struct passwd *found = NULL;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found != NULL)
    {
        snprintf(out, capacity, "%s", found->pw_name);
        return;
    }
    snprintf(out, capacity, "uid %u", (unsigned)uid);
}

bool tp_fs_is_shared_dir(const struct stat *st)
{
    return S_ISDIR(st->st_mode) && (st->st_mode & (S_ISGID | S_IRWXG)) == (S_ISGID | S_IRWXG) &&
           (st->st_mode & S_IWOTH) == 0;
}

bool tp_fs_in_our_groups(gid_t gid)
{
    if (gid == getegid())
    {
        return true;
    }
    gid_t groups[256];
    int n = getgroups(sizeof(groups) / sizeof(groups[0]), groups);
    for (int i = 0; i < n; i++)
    {
        if (groups[i] == gid)
        {
            return true;
        }
    }
    return false;
}

int tp_fs_share_dir(const char *path, mode_t mode, gid_t gid)
{
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
    {
        TP_SET_ERR(errno != 0 ? errno : TP_E_INVALID, "'%s' is not a directory", path);
        return -1;
    }
    if (st.st_gid == gid && (st.st_mode & 07777) == mode)
    {
        return 0;
    }
    if (st.st_uid != geteuid() && geteuid() != 0)
    {
        TP_SET_ERR(TP_E_CONTAINMENT, "'%s' belongs to another user: cannot share it with group %u", path,
            (unsigned)gid);
        return -1;
    }
    /* Group first: chown may clear the setgid bit, which chmod then sets. */
    if (lchown(path, (uid_t)-1, gid) < 0)
    {
        char name[64];
        tp_fs_group_name(gid, name, sizeof(name));
        TP_SET_ERR(errno, "giving '%s' to group '%s' failed: %s%s", path, name, strerror(errno),
            errno == EPERM ? " (the driver's user must be a member of the group)" : "");
        return -1;
    }
    if (chmod(path, mode) < 0)
    {
        TP_SET_ERR(errno, "chmod %04o on '%s' failed: %s", (unsigned)mode, path, strerror(errno));
        return -1;
    }
    return 0;
}

int tp_fs_mkdirs_shared(const char *trusted_root, const char *path, mode_t mode, gid_t gid)
{
    if (tp_fs_mkdirs(trusted_root, path, mode) < 0)
    {
        return -1;
    }
    if (gid == (gid_t)-1)
    {
        return 0;
    }
    /* Every component below the root that we own joins the group (one made earlier in private mode too). */
    char partial[SHARE_PATH_MAX];
    snprintf(partial, sizeof(partial), "%s", path);
    size_t root_n = strlen(trusted_root);
    while (strlen(partial) > root_n)
    {
        struct stat st;
        if (lstat(partial, &st) == 0 && (st.st_uid == geteuid() || geteuid() == 0) &&
            tp_fs_share_dir(partial, mode, gid) < 0)
        {
            return -1;
        }
        char *slash = strrchr(partial, '/');
        if (slash == NULL)
        {
            break;
        }
        *slash = '\0';
    }
    return 0;
}

int tp_fs_explain_denied(const char *path, const char *what)
{
    /* Find the deepest ancestor we can see; the first one below it is what we may not enter. */
    char seen[SHARE_PATH_MAX];
    snprintf(seen, sizeof(seen), "%s", path);
    struct stat st;
    for (;;)
    {
        char *slash = strrchr(seen, '/');
        if (slash == NULL || slash == seen)
        {
            return 0;
        }
        *slash = '\0';
        if (stat(seen, &st) == 0)
        {
            break;
        }
    }
    if (faccessat(AT_FDCWD, seen, X_OK, AT_EACCESS) == 0)
    {
        /* we may enter the deepest one we see: the next component does not exist or is hidden by its own mode */
        size_t n = strlen(seen);
        char next[SHARE_PATH_MAX];
        snprintf(next, sizeof(next), "%s", path);
        char *end = strchr(next + n + 1, '/');
        if (end != NULL)
        {
            *end = '\0';
        }
        if (stat(next, &st) < 0 || faccessat(AT_FDCWD, next, R_OK | W_OK | X_OK, AT_EACCESS) == 0)
        {
            return 0;
        }
        snprintf(seen, sizeof(seen), "%s", next);
    }
    char me[64];
    char owner[64];
    char group[64];
    user_name(geteuid(), me, sizeof(me));
    user_name(st.st_uid, owner, sizeof(owner));
    tp_fs_group_name(st.st_gid, group, sizeof(group));
    unsigned mode = (unsigned)(st.st_mode & 07777);
    if ((st.st_mode & S_IXGRP) != 0 && !tp_fs_in_our_groups(st.st_gid))
    {
        TP_SET_ERR(EACCES, "not permitted: you (%s) are not in group '%s', which shares '%s' (mode %04o, "
            "owner %s); %s needs that group (usermod -aG %s %s, then log in again)", me, group, seen, mode, owner,
            what, group, me);
    }
    else
    {
        TP_SET_ERR(EACCES, "not permitted: '%s' belongs to %s (group '%s', mode %04o) and is not shared "
            "with you (%s); %s needs the driver's shm.group to be a group of yours", seen, owner, group, mode, me,
            what);
    }
    return -1;
}
