/*
 * The SIGBUS guard: a region file that shrinks under its mappings (anyone who can write it can `truncate` it) makes
 * every access past the new end raise SIGBUS, which would kill the driver and every producer and consumer mapping
 * it. Each mapping the library makes is registered here, with a group (the mappings of one attachment). A SIGBUS
 * inside a registered mapping replaces every mapping of its group, in place, with anonymous zero pages and marks
 * them damaged; the faulting access then completes (reading zeros, or writing where nobody reads) and the owner,
 * at its next liveness check, sees the damage and drops the attachment. A header ring read as zeros holds no committed
 * slot, so a frame being read at that moment fails its seqlock re-check: nobody is handed bytes that were not the
 * producer's. A SIGBUS anywhere else goes to the handler that was installed before ours (or the default action).
 *
 * The handler is put in front of whatever handles SIGBUS at every registration (a program or a test framework may
 * have installed its own since). Registration and removal take a mutex and are for attach and detach time; the
 * handler itself takes no lock and calls only mmap.
 */
#ifndef TP_SHM_GUARD_H
#define TP_SHM_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Mappings guarded at once in one process; past it a mapping is simply not guarded (with a warning). */
#define TP_SHM_GUARD_MAX 4096

/* Put the handler in front again now (registration does it too): for a program, or a test framework, that
 * replaced signal handlers after the regions were mapped. */
void tp_shm_guard_install(void);

/* Register [base, base + length) under group; writable says whether the replacement must accept writes.
 * Returns a handle > 0, or 0 when the table is full. */
int tp_shm_guard_add(void *base, size_t length, uint64_t group, bool writable);

/* Put a registered mapping in another group (the attachment it belongs to); before the mapping is used. */
void tp_shm_guard_set_group(int handle, uint64_t group);

/* Forget a handle (0 is ignored); call before unmapping. */
void tp_shm_guard_remove(int handle);

/* true once a fault replaced the mapping (0: never). */
bool tp_shm_guard_is_damaged(int handle);

#endif
