/* Directory helpers: create a path below a trusted root without following symlinks, remove a tree. */
#ifndef TP_CORE_FS_H
#define TP_CORE_FS_H

#include <sys/types.h>

/* Create every missing directory of path (absolute) with exactly mode (umask ignored); existing components must be
 * directories, not symlinks, from `trusted_root` (which must exist) down. */
int tp_fs_mkdirs(const char *trusted_root, const char *path, mode_t mode);

/* Remove a directory tree (never follows links). Missing paths are fine. */
int tp_fs_remove_tree(const char *path);

#endif
