/*
 * Atomics: the only file that knows how atomics are spelled. Every function names its memory ordering.
 * Shared-memory words are plain, naturally aligned fixed-width fields touched only through these wrappers.
 */
#ifndef TP_CORE_ATOMIC_H
#define TP_CORE_ATOMIC_H

#include <stdatomic.h>
#include <stdint.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shared-memory atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "shared-memory atomics must be lock-free");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensorpool runs on little-endian hosts only (wire spec 15.1)"
#endif

/* Separate fields written by different threads or processes onto their own lines. */
#define TP_CACHE_LINE_BYTES 64
#define TP_CACHE_LINE_PAD_BYTES 128

static inline uint64_t tp_load_relaxed_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline uint64_t tp_load_acquire_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tp_store_relaxed_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline void tp_store_release_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint64_t tp_fetch_add_relaxed_u64(uint64_t *p, uint64_t v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
static inline uint64_t tp_fetch_add_acq_rel_u64(uint64_t *p, uint64_t v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
}
static inline uint64_t tp_fetch_sub_acq_rel_u64(uint64_t *p, uint64_t v)
{
    return __atomic_fetch_sub(p, v, __ATOMIC_ACQ_REL);
}
static inline int tp_cas_acq_rel_u64(uint64_t *p, uint64_t *expected, uint64_t desired)
{
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static inline uint32_t tp_load_relaxed_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline uint32_t tp_load_acquire_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tp_store_relaxed_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline void tp_store_release_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t tp_fetch_add_acq_rel_u32(uint32_t *p, uint32_t v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
}
static inline uint32_t tp_fetch_sub_acq_rel_u32(uint32_t *p, uint32_t v)
{
    return __atomic_fetch_sub(p, v, __ATOMIC_ACQ_REL);
}
static inline uint32_t tp_exchange_acq_rel_u32(uint32_t *p, uint32_t v)
{
    return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
}
static inline int tp_cas_acq_rel_u32(uint32_t *p, uint32_t *expected, uint32_t desired)
{
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static inline int64_t tp_load_acquire_i64(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tp_store_release_i64(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static inline int tp_load_relaxed_int(const int *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void tp_store_relaxed_int(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
/* Keep the compiler from moving memory accesses across this point (the CPU still may). */
static inline void tp_compiler_barrier(void) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

static inline int tp_load_acquire_int(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tp_store_release_int(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline _Bool tp_load_acquire_bool(const _Bool *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tp_store_release_bool(_Bool *p, _Bool v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
/* Compare-and-swap that publishes with release on success (relaxed on failure). */
static inline int tp_cas_release_u64(uint64_t *p, uint64_t *expected, uint64_t desired)
{
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}
static inline uint64_t tp_exchange_acquire_u64(uint64_t *p, uint64_t v)
{
    return __atomic_exchange_n(p, v, __ATOMIC_ACQUIRE);
}
/* Adds 0 to a byte: a write fault that allocates the page without changing what a concurrent writer stored. */
static inline void tp_touch_relaxed_u8(uint8_t *p) { (void)__atomic_fetch_add(p, 0, __ATOMIC_RELAXED); }

/* Fences: a release fence orders earlier loads/stores before later stores; an acquire fence orders earlier
 * loads before later loads/stores. Used by the seqlock, whose payload bytes are not atomic. */
static inline void tp_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
static inline void tp_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void tp_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

static inline void tp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
