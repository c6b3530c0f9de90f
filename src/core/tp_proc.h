/* Process identity and liveness, for cleaning up after processes that died (never on a hot path). */
#ifndef TP_CORE_PROC_H
#define TP_CORE_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The kernel's start time of pid (clock ticks since boot, /proc/<pid>/stat field 22); 0 if unknown. Together with
 * the pid it identifies a process even after the pid is reused. */
uint64_t tp_proc_start_time(pid_t pid);

/* true if pid runs and, when start_time is non-zero, is the same process that had that start time. */
bool tp_proc_is_alive(pid_t pid, uint64_t start_time);

/* true if a process we can see maps a file below dir (/proc/<pid>/maps; other users' processes are not readable,
 * and cannot map our 0600/0660 files unless they share our group). A scan of every process: not for hot paths. */
bool tp_proc_dir_is_mapped(const char *dir);

/* A random non-zero 32-bit value (getrandom). */
uint32_t tp_random_u32(void);

#endif
