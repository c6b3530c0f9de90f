/*
 * SHM regions: one mmap'd file with a 64-byte superblock (wire spec 6, 7.1) followed by either 256-byte header
 * slots (HEADER_RING) or stride_bytes payload slots (PAYLOAD_POOL).
 *
 * The creator (driver or producer) writes every superblock field, then the magic last with a release store, and
 * afterwards only refreshes activity_timestamp_ns (8-byte aligned at offset 56, stored with release). A mapper
 * opens through the containment checks, checks the file is at least as large as the superblock says, and
 * validates every superblock field against what the announce promised before anything else reads the region.
 */
#ifndef TP_SHM_REGION_H
#define TP_SHM_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/tp_region_uri.h"
#include "shm/tp_shm_path.h"

#define TP_SUPERBLOCK_BYTES 64
#define TP_HEADER_SLOT_BYTES 256
#define TP_SUPERBLOCK_MAGIC UINT64_C(0x544F504C53484D31)
#define TP_LAYOUT_VERSION 1

typedef enum tp_region_type
{
    TP_REGION_HEADER_RING = 1,
    TP_REGION_PAYLOAD_POOL = 2,
} tp_region_type_t;

/* What a superblock holds (and what a mapper expects). */
typedef struct tp_superblock
{
    uint64_t magic;
    uint32_t layout_version;
    uint64_t epoch;
    uint32_t stream_id;
    int16_t region_type;
    uint16_t pool_id;
    uint32_t nslots;
    uint32_t slot_bytes;   /* 256 for a header ring; stride_bytes for a pool */
    uint32_t stride_bytes; /* 0 for a header ring */
    uint64_t pid;
    uint64_t start_timestamp_ns;
    uint64_t activity_timestamp_ns;
} tp_superblock_t;

typedef struct tp_shm_create_opts
{
    mode_t file_mode;        /* e.g. 0600; applied exactly (umask ignored) */
    bool prefault;           /* touch every page at creation */
    bool lock_memory;        /* mlock; failure is an error */
    bool require_hugepages;  /* the file must live on hugetlbfs */
    bool replace_existing;   /* unlink a file already at the path instead of failing */
    int64_t now_ns;          /* the creator's clock for the superblock's timestamps (0: CLOCK_MONOTONIC) */
} tp_shm_create_opts_t;

typedef struct tp_shm_region
{
    int fd;
    bool has_fd;
    uint8_t *base;
    size_t length_bytes; /* mapped length */
    bool is_writable;
    int guard; /* its SIGBUS guard handle (tp_shm_guard.h), 0 if unguarded */
} tp_shm_region_t;

/* Bytes a region needs: 64 + nslots x (256 for a header ring, stride for a pool). */
size_t tp_shm_region_size_bytes(const tp_superblock_t *sb);

/* true if nslots is a non-zero power of two. */
bool tp_shm_nslots_is_valid(uint32_t nslots);
/* true if stride is a power-of-two multiple of 64 (64 x 2^k), wire spec 15.22. */
bool tp_shm_stride_is_valid(uint32_t stride_bytes);

/* Create the file at path (its directory must exist), size it, map it writable, write the superblock (pid,
 * start and activity timestamps filled in here), sync it. */
int tp_shm_region_create(tp_shm_region_t *r, const char *path, const tp_superblock_t *sb,
    const tp_shm_create_opts_t *opts);

/* Map an announced region through the containment checks and validate its superblock against expected
 * (magic, layout version, epoch, stream, region type, pool id, nslots, slot bytes, stride). Read-only unless
 * writable. On any failure nothing stays mapped. */
int tp_shm_region_map(tp_shm_region_t *r, const tp_shm_allowed_dirs_t *allowed, const tp_region_uri_t *uri,
    const tp_superblock_t *expected, bool writable);

/* Unmap and close; safe on a zeroed or already closed region. */
void tp_shm_region_close(tp_shm_region_t *r);

/* true if the file behind the mapping shrank (someone truncated it) or a SIGBUS already replaced the mapping with
 * zero pages (tp_shm_guard.h). Makes one fstat: for ticks and checks, not per frame. */
bool tp_shm_region_is_damaged(const tp_shm_region_t *r);

/* Mappings of one group are replaced together when one of them faults (e.g. an attachment's header ring and
 * pools, so that a frame whose pool vanished fails its seqlock re-check). Each region starts in a group of its own. */
void tp_shm_region_set_group(tp_shm_region_t *r, uint64_t group);

/* Decode the superblock at base (64 bytes). */
void tp_superblock_read(const uint8_t *base, tp_superblock_t *out);
/* Encode sb at base; the magic is written last with release order (pairs with tp_superblock_magic_acquire). */
void tp_superblock_write(uint8_t *base, const tp_superblock_t *sb);
uint64_t tp_superblock_magic_acquire(const uint8_t *base);
/* Refresh / read the liveness timestamp (offset 56, aligned). */
void tp_superblock_set_activity(uint8_t *base, uint64_t now_ns);
uint64_t tp_superblock_activity(const uint8_t *base);

/* Compare a superblock with what was expected; -1 (TP_E_VALIDATION) naming the first field that differs. */
int tp_superblock_validate(const tp_superblock_t *actual, const tp_superblock_t *expected);

#endif
