/*
 * Header ring slots and the seqlock (wire spec 8.1-8.3, 9, 15.18-15.21).
 *
 * Slot i of a header ring sits at 64 + i*256; payload slot i of a pool at 64 + i*stride. seq_commit is the
 * 8-byte word at slot offset 0 (aligned: regions are page aligned) and the only atomic word of the slot:
 *   producer: store seq<<1 (release) + release fence  ->  payload  ->  header fields  ->  store seq<<1|1 (release)
 *   consumer: load (acquire); committed and ==seq?  ->  copy header / read payload  ->  acquire fence + load;
 *             accept only if unchanged.
 * Nothing here waits: a slot that is not committed, not the expected sequence, or changes underneath is dropped
 * by the caller and counted.
 */
#ifndef TP_SHM_HEADER_RING_H
#define TP_SHM_HEADER_RING_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/tp_atomic.h"
#include "shm/tp_shm_region.h"
#include "tensorpool/tp_tensor.h"

/* The embedded TensorHeader starts after the 60-byte SlotHeader block and its 4-byte length. */
#define TP_SLOT_TENSOR_HEADER_OFFSET 64

/* The slot's fields other than seq_commit and the tensor. */
typedef struct tp_slot_fields
{
    uint32_t values_len_bytes;
    uint32_t payload_slot;
    uint16_t pool_id;
    uint32_t payload_offset; /* always 0 in v1.2 */
    uint64_t timestamp_ns;
    uint32_t meta_version;
} tp_slot_fields_t;

typedef enum tp_slot_status
{
    TP_SLOT_OK = 0,
    TP_SLOT_NOT_COMMITTED,  /* low bit 0: being written */
    TP_SLOT_SEQ_MISMATCH,   /* committed, but another sequence (older: stale; newer: overwritten) */
    TP_SLOT_CHANGED,        /* seq_commit moved while reading (drops_late) */
    TP_SLOT_INVALID_HEADER, /* committed and stable, but the header breaks a rule */
} tp_slot_status_t;

static inline uint8_t *tp_header_slot_at(uint8_t *ring_base, uint32_t index)
{
    return ring_base + TP_SUPERBLOCK_BYTES + (size_t)index * TP_HEADER_SLOT_BYTES;
}

static inline uint8_t *tp_pool_slot_at(uint8_t *pool_base, uint32_t index, uint32_t stride_bytes)
{
    return pool_base + TP_SUPERBLOCK_BYTES + (size_t)index * stride_bytes;
}

static inline uint64_t *tp_slot_seq_word(uint8_t *slot)
{
    return (uint64_t *)(void *)slot;
}

static inline uint64_t tp_seq_in_progress(uint64_t seq) { return seq << 1; }
static inline uint64_t tp_seq_committed(uint64_t seq) { return (seq << 1) | 1; }

/* Producer step 1: mark the slot WRITING. The fence keeps later payload/header stores after this store. */
/* Hot path: no alloc, syscalls or locks. */
static inline void tp_slot_begin_write(uint8_t *slot, uint64_t seq)
{
    tp_store_release_u64(tp_slot_seq_word(slot), tp_seq_in_progress(seq));
    tp_fence_release();
}

/* Producer last step: publish. Pairs with the acquire load in tp_slot_read_begin. */
/* Hot path: no alloc, syscalls or locks. */
static inline void tp_slot_commit(uint8_t *slot, uint64_t seq)
{
    tp_store_release_u64(tp_slot_seq_word(slot), tp_seq_committed(seq));
}

/* Consumer: first load of seq_commit. */
static inline uint64_t tp_slot_read_begin(const uint8_t *slot)
{
    return tp_load_acquire_u64((const uint64_t *)(const void *)slot);
}

/* Consumer: after reading header and payload, true if seq_commit still holds `first`. The acquire fence keeps
 * the data reads before the second load. */
static inline bool tp_slot_read_still(const uint8_t *slot, uint64_t first)
{
    tp_fence_acquire();
    return tp_load_acquire_u64((const uint64_t *)(const void *)slot) == first;
}

/* Write every header byte of the slot except seq_commit: fields, zeroed pad, headerBytes length 192 and the
 * embedded TensorHeader. Call between tp_slot_begin_write and tp_slot_commit. */
/* Hot path: no alloc, syscalls or locks. */
void tp_slot_write_header(uint8_t *slot, const tp_slot_fields_t *fields, const uint8_t tensor_header[192]);

/* The capture time (SlotHeader.timestamp_ns) of frame seq if the slot holds it, committed and unchanged while
 * read; 0 otherwise. */
/* Hot path: no alloc, syscalls or locks. */
uint64_t tp_slot_timestamp_of(const uint8_t *slot, uint64_t seq);

/* Read the fields of the slot (copy out; does not check the seqlock). */
void tp_slot_read_fields(const uint8_t *slot, tp_slot_fields_t *out);

/*
 * Consumer check of slot `slot` for descriptor sequence `seq`: seqlock begin, copy the 256-byte header, decode
 * and validate the embedded TensorHeader and payload_offset, seqlock re-check. On TP_SLOT_OK, *seq_commit_out
 * holds the stable value so the payload can be re-validated after reading it (tp_slot_read_still).
 */
/* Hot path: no alloc, syscalls or locks. */
tp_slot_status_t tp_slot_snapshot(const uint8_t *slot, uint64_t seq, tp_slot_fields_t *fields,
    tp_tensor_desc_t *tensor, uint64_t *seq_commit_out);

/* After a TP_SLOT_OK snapshot of slot `index`: the payload must be in the pool's slot `index` (v1.2 maps payload
 * slot = header index), inside the mapped pool, and no longer than its stride (wire spec 10.2.1). true if so. */
/* Hot path: no alloc, syscalls or locks. */
static inline bool tp_slot_payload_is_valid(const tp_slot_fields_t *f, uint32_t index, uint32_t pool_nslots,
    uint32_t stride_bytes)
{
    return f->payload_slot == index && f->payload_slot < pool_nslots && f->values_len_bytes <= stride_bytes;
}

/* Index of the smallest stride >= length (wire spec 9), or -1 when no pool fits. */
int tp_pool_select(const uint32_t *strides, int count, uint64_t length_bytes);

#endif
