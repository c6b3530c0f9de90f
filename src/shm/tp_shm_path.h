/*
 * Path containment (wire spec 15.21a.5): the only way a consumer opens an announced region file.
 *
 * Allowed base directories are canonicalised once, when the set is built. A candidate path must be absolute;
 * it is canonicalised with realpath(), must lie inside one of the bases (whole path components) and must be a
 * regular file. It is then opened without following any symlink (openat2 RESOLVE_NO_SYMLINKS where the kernel
 * has it, else O_NOFOLLOW on the canonical path), and the opened descriptor is checked again with fstat: a
 * regular file with the same device and inode that was validated. Anything else fails closed.
 */
#ifndef TP_SHM_PATH_H
#define TP_SHM_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#define TP_SHM_MAX_ALLOWED_DIRS 16

typedef struct tp_shm_allowed_dirs
{
    size_t count;
    char *dirs[TP_SHM_MAX_ALLOWED_DIRS]; /* canonical, tp_alloc'd */
} tp_shm_allowed_dirs_t;

/* Canonicalise each directory (it must exist and be a directory). -1 names the directory that failed. */
int tp_shm_allowed_dirs_init(tp_shm_allowed_dirs_t *allowed, const char *const *dirs, size_t count);
void tp_shm_allowed_dirs_fini(tp_shm_allowed_dirs_t *allowed);

/* Steps 1-5: absolute, canonical, contained, regular file. Fills canonical (TP_PATH_MAX bytes) and st. */
int tp_shm_path_check(const tp_shm_allowed_dirs_t *allowed, const char *path, char *canonical, struct stat *st);

/* Steps 1-6: check, open symlink-safe with open_flags (O_RDONLY or O_RDWR), re-validate the descriptor.
 * Returns the descriptor, or -1 (TP_E_CONTAINMENT or errno) and nothing stays open. */
int tp_shm_open_contained(const tp_shm_allowed_dirs_t *allowed, const char *path, int open_flags);

/* Step 6 alone: open canonical symlink-safe and require the descriptor to be the regular file `checked`
 * describes (same device and inode). tp_shm_open_contained = tp_shm_path_check + this. */
int tp_shm_open_validated(const char *canonical, const struct stat *checked, int open_flags);

/* 0 if fd lives on hugetlbfs, -1 (TP_E_VALIDATION) otherwise. */
int tp_shm_fd_is_hugetlbfs(int fd);

#endif
