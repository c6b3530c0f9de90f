/* Directory helpers: create a path below a trusted root without following symlinks, remove a tree. */
#ifndef TP_CORE_FS_H
#define TP_CORE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Replace every byte outside [A-Za-z0-9._-] by '_'; "", "." and ".." become "_". out has capacity bytes. */
void tp_fs_sanitize_component(const char *in, char *out, size_t capacity);

/* true if name is a non-empty component of [A-Za-z0-9._-] other than "." and "..". */
int tp_fs_component_is_safe(const char *name);

/* "tensorpool-<sanitised effective user name>" (falls back to "uid<N>" when the name is unknown). */
int tp_fs_user_dir_name(char *out, size_t capacity);

/* Create every missing directory of path (absolute) with exactly mode (umask ignored); existing components must be
 * directories, not symlinks, from `trusted_root` (which must exist) down. */
int tp_fs_mkdirs(const char *trusted_root, const char *path, mode_t mode);

/* Remove a directory tree (never follows links below path; path itself is resolved normally: for trees of our
 * own making only). Missing paths are fine. */
int tp_fs_remove_tree(const char *path);

/* Remove the tree at path, which lies below trusted_root: every component after the root is opened without
 * following symlinks, so a directory swapped for a link on the way makes it stop rather than delete elsewhere. */
int tp_fs_remove_tree_below(const char *trusted_root, const char *path);

/* A directory we may keep our files in (st from lstat): a real directory, not writable by every user (unless root's
 * and sticky, like /dev/shm), owned by us or root, or group-writable by a group we are in (a shared deployment).
 * -1 with the reason otherwise (a squatter's directory, a symlink). */
int tp_fs_check_dir(const char *path, const struct stat *st);

/* tp_fs_check_dir for path and each ancestor up to the first one root owns. Ancestors may also belong to path's
 * owner (a driver's service account owning the directory that holds the bus it shares with our group). */
int tp_fs_check_ancestors(const char *path);
/* The same; with trust_shared_leaf, path itself may also be another user's directory shared with a group (setgid,
 * group-writable, closed to others): a driver's shared bus, which root named explicitly to watch it. */
int tp_fs_check_ancestors_shared(const char *path, bool trust_shared_leaf);

/* ---- shared-group deployments (tp_fs_share.c) ---- */

/* The id of group `name` (a name, or a decimal id). */
int tp_fs_group_id(const char *name, gid_t *out);

/* The name of gid, or its number when it has none. */
void tp_fs_group_name(gid_t gid, char *out, size_t capacity);

/* A directory shared with its group the way a driver with shm.group makes them: setgid, group rwx, not writable by
 * others (so /dev/shm, 1777, is not one). What the bus joins and what the trust checks accept as a group's. */
bool tp_fs_is_shared_dir(const struct stat *st);

/* Is gid this process's effective group or one of its supplementary groups? */
bool tp_fs_in_our_groups(gid_t gid);

/* Give an existing directory we own (or any, as root) to group gid with exactly mode (setgid bits included). */
int tp_fs_share_dir(const char *path, mode_t mode, gid_t gid);

/* tp_fs_mkdirs, then every component below trusted_root that we own joins gid with mode ((gid_t)-1: private,
 * just tp_fs_mkdirs). Directories made with the setgid bit pass the group on to what is created in them. */
int tp_fs_mkdirs_shared(const char *trusted_root, const char *path, mode_t mode, gid_t gid);

/* Called after an EACCES on path: if a directory on the way is closed to us, set the error to a "not permitted"
 * sentence naming it, its owner, its group and whether we lack membership, and return -1 (`what` says what we were
 * doing, e.g. "using this bus"); 0 (error untouched) when no directory on the way explains it. */
int tp_fs_explain_denied(const char *path, const char *what);

/* Read a whole file ("-" is stdin) into tp_alloc'd memory (free with tp_free), at most max_bytes. */
int tp_fs_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *length);

#endif
