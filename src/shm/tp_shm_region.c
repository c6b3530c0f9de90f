/* SHM regions; see tp_shm_region.h. */
#include "shm/tp_shm_region.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "shm/tp_shm_guard.h"
#include "tp_sbe_wire.h"

#define SB_OFF(field) TP_WIRE_SHM_REGION_SUPERBLOCK_##field##_OFFSET

_Static_assert(SB_OFF(ACTIVITY_TIMESTAMP_NS) % 8 == 0, "activity timestamp must be 8-byte aligned");
_Static_assert(TP_WIRE_SHM_REGION_SUPERBLOCK_BLOCK_LENGTH == TP_SUPERBLOCK_BYTES, "superblock is 64 bytes");

bool tp_shm_nslots_is_valid(uint32_t nslots)
{
    return nslots != 0 && (nslots & (nslots - 1)) == 0;
}

bool tp_shm_stride_is_valid(uint32_t stride_bytes)
{
    return stride_bytes >= 64 && (stride_bytes & (stride_bytes - 1)) == 0;
}

size_t tp_shm_region_size_bytes(const tp_superblock_t *sb)
{
    size_t slot = sb->region_type == TP_REGION_HEADER_RING ? TP_HEADER_SLOT_BYTES : sb->stride_bytes;
    return TP_SUPERBLOCK_BYTES + (size_t)sb->nslots * slot;
}

void tp_superblock_read(const uint8_t *base, tp_superblock_t *out)
{
    out->magic = tp_superblock_magic_acquire(base);
    out->layout_version = tp_sbe_get_u32(base + SB_OFF(LAYOUT_VERSION));
    out->epoch = tp_sbe_get_u64(base + SB_OFF(EPOCH));
    out->stream_id = tp_sbe_get_u32(base + SB_OFF(STREAM_ID));
    out->region_type = tp_sbe_get_i16(base + SB_OFF(REGION_TYPE));
    out->pool_id = tp_sbe_get_u16(base + SB_OFF(POOL_ID));
    out->nslots = tp_sbe_get_u32(base + SB_OFF(NSLOTS));
    out->slot_bytes = tp_sbe_get_u32(base + SB_OFF(SLOT_BYTES));
    out->stride_bytes = tp_sbe_get_u32(base + SB_OFF(STRIDE_BYTES));
    out->pid = tp_sbe_get_u64(base + SB_OFF(PID));
    out->start_timestamp_ns = tp_sbe_get_u64(base + SB_OFF(START_TIMESTAMP_NS));
    out->activity_timestamp_ns = tp_superblock_activity(base);
}

void tp_superblock_write(uint8_t *base, const tp_superblock_t *sb)
{
    tp_sbe_put_u32(base + SB_OFF(LAYOUT_VERSION), sb->layout_version);
    tp_sbe_put_u64(base + SB_OFF(EPOCH), sb->epoch);
    tp_sbe_put_u32(base + SB_OFF(STREAM_ID), sb->stream_id);
    tp_sbe_put_i16(base + SB_OFF(REGION_TYPE), sb->region_type);
    tp_sbe_put_u16(base + SB_OFF(POOL_ID), sb->pool_id);
    tp_sbe_put_u32(base + SB_OFF(NSLOTS), sb->nslots);
    tp_sbe_put_u32(base + SB_OFF(SLOT_BYTES), sb->slot_bytes);
    tp_sbe_put_u32(base + SB_OFF(STRIDE_BYTES), sb->stride_bytes);
    tp_sbe_put_u64(base + SB_OFF(PID), sb->pid);
    tp_sbe_put_u64(base + SB_OFF(START_TIMESTAMP_NS), sb->start_timestamp_ns);
    tp_superblock_set_activity(base, sb->activity_timestamp_ns);
    /* Magic last: a reader that sees it (acquire) sees every field above. Pairs with tp_superblock_magic_acquire. */
    tp_store_release_u64((uint64_t *)(void *)base, sb->magic);
}

uint64_t tp_superblock_magic_acquire(const uint8_t *base)
{
    return tp_load_acquire_u64((const uint64_t *)(const void *)base);
}

void tp_superblock_set_activity(uint8_t *base, uint64_t now_ns)
{
    tp_store_release_u64((uint64_t *)(void *)(base + SB_OFF(ACTIVITY_TIMESTAMP_NS)), now_ns);
}

uint64_t tp_superblock_activity(const uint8_t *base)
{
    return tp_load_acquire_u64((const uint64_t *)(const void *)(base + SB_OFF(ACTIVITY_TIMESTAMP_NS)));
}

int tp_superblock_validate(const tp_superblock_t *a, const tp_superblock_t *e)
{
#define SB_CHECK(field, fmt)                                                                                          \
    if (a->field != e->field)                                                                                         \
    {                                                                                                                 \
        TP_SET_ERR(TP_E_VALIDATION, "superblock " #field " is %" fmt ", expected %" fmt, a->field, e->field);       \
        return -1;                                                                                                    \
    }
    if (a->magic != TP_SUPERBLOCK_MAGIC)
    {
        TP_SET_ERR(TP_E_VALIDATION, "superblock magic is 0x%016" PRIx64 ", expected 0x%016" PRIx64 " (TPOLSHM1)",
            a->magic, (uint64_t)TP_SUPERBLOCK_MAGIC);
        return -1;
    }
    SB_CHECK(layout_version, PRIu32)
    SB_CHECK(epoch, PRIu64)
    SB_CHECK(stream_id, PRIu32)
    SB_CHECK(region_type, PRId16)
    SB_CHECK(pool_id, PRIu16)
    SB_CHECK(nslots, PRIu32)
    SB_CHECK(slot_bytes, PRIu32)
    SB_CHECK(stride_bytes, PRIu32)
#undef SB_CHECK
    return 0;
}

static int region_check_shape(const tp_superblock_t *sb)
{
    if (sb->region_type != TP_REGION_HEADER_RING && sb->region_type != TP_REGION_PAYLOAD_POOL)
    {
        TP_SET_ERR(TP_E_VALIDATION, "region type %d is neither HEADER_RING nor PAYLOAD_POOL", sb->region_type);
        return -1;
    }
    if (!tp_shm_nslots_is_valid(sb->nslots))
    {
        TP_SET_ERR(TP_E_VALIDATION, "nslots %" PRIu32 " is not a non-zero power of two", sb->nslots);
        return -1;
    }
    if (sb->region_type == TP_REGION_HEADER_RING)
    {
        if (sb->slot_bytes != TP_HEADER_SLOT_BYTES || sb->pool_id != 0)
        {
            TP_SET_ERR(TP_E_VALIDATION, "a header ring has slot_bytes 256 and pool_id 0 (got %" PRIu32 ", %u)",
                sb->slot_bytes, sb->pool_id);
            return -1;
        }
    }
    else if (!tp_shm_stride_is_valid(sb->stride_bytes))
    {
        TP_SET_ERR(TP_E_VALIDATION, "stride_bytes %" PRIu32 " is not a power-of-two multiple of 64", sb->stride_bytes);
        return -1;
    }
    if (sb->nslots > (SIZE_MAX - TP_SUPERBLOCK_BYTES) / (sb->region_type == TP_REGION_HEADER_RING
                                                             ? TP_HEADER_SLOT_BYTES
                                                             : sb->stride_bytes))
    {
        TP_SET_ERR(TP_E_VALIDATION, "region size overflows");
        return -1;
    }
    return 0;
}

void tp_shm_region_close(tp_shm_region_t *r)
{
    if (r == NULL)
    {
        return;
    }
    tp_shm_guard_remove(r->guard);
    if (r->base != NULL && r->base != MAP_FAILED)
    {
        munmap(r->base, r->length_bytes);
    }
    if (r->has_fd)
    {
        close(r->fd);
    }
    memset(r, 0, sizeof(*r));
}

static void region_prefault(uint8_t *base, size_t length, bool writable)
{
    long page = sysconf(_SC_PAGESIZE);
    volatile uint8_t sink = 0;
    for (size_t off = 0; off < length; off += (size_t)page)
    {
        if (writable)
        {
            /* A write fault allocates the page now instead of on the first frame. */
            tp_touch_relaxed_u8(&base[off]);
        }
        else
        {
            sink ^= base[off];
        }
    }
    (void)sink;
}

int tp_shm_region_create(tp_shm_region_t *r, const char *path, const tp_superblock_t *sb,
    const tp_shm_create_opts_t *opts)
{
    memset(r, 0, sizeof(*r));
    if (region_check_shape(sb) < 0)
    {
        TP_APPEND_ERR("creating region '%s'", path);
        return -1;
    }
    if (opts->replace_existing && unlink(path) < 0 && errno != ENOENT)
    {
        TP_SET_ERR(errno, "removing old region '%s' failed: %s", path, strerror(errno));
        return -1;
    }
    r->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, opts->file_mode);
    if (r->fd < 0)
    {
        TP_SET_ERR(errno, "creating region file '%s' failed: %s", path, strerror(errno));
        return -1;
    }
    r->has_fd = true;
    if (fchmod(r->fd, opts->file_mode) < 0)
    {
        TP_SET_ERR(errno, "chmod %o on '%s' failed: %s", (unsigned)opts->file_mode, path, strerror(errno));
        goto error;
    }
    size_t length = tp_shm_region_size_bytes(sb);
    if (opts->require_hugepages)
    {
        if (tp_shm_fd_is_hugetlbfs(r->fd) < 0)
        {
            TP_APPEND_ERR("hugepages are required for '%s'", path);
            goto error;
        }
        struct statfs sfs;
        if (fstatfs(r->fd, &sfs) == 0 && sfs.f_bsize > 0)
        {
            size_t huge = (size_t)sfs.f_bsize;
            length = (length + huge - 1) / huge * huge;
        }
    }
    if (ftruncate(r->fd, (off_t)length) < 0)
    {
        TP_SET_ERR(errno, "sizing region '%s' to %zu bytes failed: %s", path, length, strerror(errno));
        goto error;
    }
    /* Reserve the memory before anyone touches it, prefaulted or not: a full tmpfs is then an error here, not a
     * SIGBUS in whichever process first writes past what the filesystem could give. */
    int reserve_rc = posix_fallocate(r->fd, 0, (off_t)length);
    if (reserve_rc == ENOSPC)
    {
        char dir[TP_PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash != NULL && slash != dir)
        {
            *slash = '\0';
        }
        TP_SET_ERR(ENOSPC, "no space left on device: %zu bytes needed under %s", length, dir);
        goto error;
    }
    if (reserve_rc != 0 && reserve_rc != EOPNOTSUPP && reserve_rc != EINVAL)
    {
        TP_SET_ERR(reserve_rc, "reserving %zu bytes for region '%s' failed: %s", length, path, strerror(reserve_rc));
        goto error;
    }
    void *base = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (base == MAP_FAILED)
    {
        TP_SET_ERR(errno, "mapping region '%s' (%zu bytes) failed: %s", path, length, strerror(errno));
        goto error;
    }
    r->base = base;
    r->length_bytes = length;
    r->is_writable = true;
    r->guard = tp_shm_guard_add(r->base, length, (uint64_t)(uintptr_t)r->base, true);
    if (opts->prefault)
    {
        region_prefault(r->base, length, true);
    }
    if (opts->lock_memory && mlock(r->base, length) < 0)
    {
        TP_SET_ERR(errno, "mlock of region '%s' (%zu bytes) failed: %s (raise RLIMIT_MEMLOCK or disable mlock)",
            path, length, strerror(errno));
        goto error;
    }
    tp_superblock_t written = *sb;
    written.magic = TP_SUPERBLOCK_MAGIC;
    written.pid = (uint64_t)getpid();
    written.start_timestamp_ns = (uint64_t)(opts->now_ns != 0 ? opts->now_ns : tp_clock_monotonic_ns());
    written.activity_timestamp_ns = written.start_timestamp_ns;
    tp_superblock_write(r->base, &written);
    /* Wire spec 15.14: write the superblock and sync it before the region is announced. */
    if (msync(r->base, TP_SUPERBLOCK_BYTES, MS_SYNC) < 0)
    {
        TP_SET_ERR(errno, "msync of region '%s' failed: %s", path, strerror(errno));
        goto error;
    }
    return 0;
error:
    tp_shm_region_close(r);
    (void)unlink(path); /* ours: created above with O_EXCL */
    return -1;
}

int tp_shm_region_map(tp_shm_region_t *r, const tp_shm_allowed_dirs_t *allowed, const tp_region_uri_t *uri,
    const tp_superblock_t *expected, bool writable)
{
    memset(r, 0, sizeof(*r));
    if (region_check_shape(expected) < 0)
    {
        TP_APPEND_ERR("announced layout for '%s'", uri->path);
        return -1;
    }
    int fd = tp_shm_open_contained(allowed, uri->path, writable ? O_RDWR : O_RDONLY);
    if (fd < 0)
    {
        return -1;
    }
    r->fd = fd;
    r->has_fd = true;
    if (uri->require_hugepages && tp_shm_fd_is_hugetlbfs(fd) < 0)
    {
        TP_APPEND_ERR("region '%s' requires hugepages", uri->path);
        goto error;
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
    {
        TP_SET_ERR(errno, "fstat of '%s' failed: %s", uri->path, strerror(errno));
        goto error;
    }
    size_t needed = tp_shm_region_size_bytes(expected);
    if ((uint64_t)st.st_size < needed)
    {
        TP_SET_ERR(TP_E_VALIDATION, "region '%s' is %lld bytes, shorter than the %zu its layout needs", uri->path,
            (long long)st.st_size, needed);
        goto error;
    }
    void *base = mmap(NULL, needed, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
    {
        TP_SET_ERR(errno, "mapping '%s' failed: %s", uri->path, strerror(errno));
        goto error;
    }
    r->base = base;
    r->length_bytes = needed;
    r->is_writable = writable;
    r->guard = tp_shm_guard_add(r->base, needed, (uint64_t)(uintptr_t)r->base, writable);
    tp_superblock_t actual;
    tp_superblock_read(r->base, &actual);
    if (tp_shm_region_is_damaged(r))
    {
        TP_SET_ERR(TP_E_VALIDATION, "region '%s' shrank while it was being mapped", uri->path);
        goto error;
    }
    if (tp_superblock_validate(&actual, expected) < 0)
    {
        TP_APPEND_ERR("region '%s'", uri->path);
        goto error;
    }
    return 0;
error:
    tp_shm_region_close(r);
    return -1;
}

bool tp_shm_region_is_damaged(const tp_shm_region_t *r)
{
    if (r->base == NULL)
    {
        return false;
    }
    if (tp_shm_guard_is_damaged(r->guard))
    {
        return true;
    }
    struct stat st;
    return r->has_fd && fstat(r->fd, &st) == 0 && (uint64_t)st.st_size < r->length_bytes;
}

void tp_shm_region_set_group(tp_shm_region_t *r, uint64_t group)
{
    tp_shm_guard_set_group(r->guard, group);
}
