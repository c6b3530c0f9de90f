/*
 * Which lock files this process holds as a driver. POSIX record locks belong to a process and are dropped when it
 * closes any descriptor of the file, so a client living in a driver's process (an embedded driver) must not open
 * and close the driver's lock file to ask who holds it: that would drop the driver's own lock, and every other
 * process would then take the driver's answers for forgeries. The driver registers its lock files here; a client
 * asks first (a stat, which opens nothing).
 */
#ifndef TP_DRIVER_LOCK_H
#define TP_DRIVER_LOCK_H

#include <stdbool.h>

/* The driver holds the record lock of fd (its lock file) until tp_driver_lock_forget. */
void tp_driver_lock_remember(int fd);
void tp_driver_lock_forget(int fd);
/* true if path is a lock file this process holds. */
bool tp_driver_lock_is_ours(const char *path);

#endif
