/* Header ring slots; see tp_header_ring.h. */
#include "shm/tp_header_ring.h"

#include "tp_sbe_wire.h"
#include "wire/tp_tensor.h"

#define SH_OFF(field) TP_WIRE_SLOT_HEADER_##field##_OFFSET
#define SLOT_HEADER_BYTES_LENGTH_OFFSET TP_WIRE_SLOT_HEADER_BLOCK_LENGTH
#define SLOT_TENSOR_OFFSET (TP_WIRE_SLOT_HEADER_BLOCK_LENGTH + TP_SBE_VAR_LENGTH_PREFIX)
_Static_assert(SLOT_TENSOR_OFFSET == TP_SLOT_TENSOR_HEADER_OFFSET, "the TensorHeader starts 64 bytes into a slot");

_Static_assert(SLOT_TENSOR_OFFSET + TP_TENSOR_HEADER_BYTES == TP_HEADER_SLOT_BYTES, "slot is 60 + 4 + 192 bytes");
_Static_assert(SH_OFF(SEQ_COMMIT) == 0, "seq_commit is at slot offset 0");

void tp_slot_write_header(uint8_t *slot, const tp_slot_fields_t *f, const uint8_t tensor_header[192])
{
    /* Full overwrite of bytes 8..255: never rely on earlier contents (wire spec 8.3 step 3). */
    memset(slot + 8, 0, TP_WIRE_SLOT_HEADER_BLOCK_LENGTH - 8);
    tp_sbe_put_u32(slot + SH_OFF(VALUES_LEN_BYTES), f->values_len_bytes);
    tp_sbe_put_u32(slot + SH_OFF(PAYLOAD_SLOT), f->payload_slot);
    tp_sbe_put_u16(slot + SH_OFF(POOL_ID), f->pool_id);
    tp_sbe_put_u32(slot + SH_OFF(PAYLOAD_OFFSET), f->payload_offset);
    tp_sbe_put_u64(slot + SH_OFF(TIMESTAMP_NS), f->timestamp_ns);
    tp_sbe_put_u32(slot + SH_OFF(META_VERSION), f->meta_version);
    tp_sbe_put_u32(slot + SLOT_HEADER_BYTES_LENGTH_OFFSET, TP_TENSOR_HEADER_BYTES);
    /* The TensorHeader fills the slot's last three cache lines. A line that already holds the same bytes (the same
     * shape as this slot's last frame) is left alone: rewriting it would take it away from the consumers' caches
     * for nothing, and every frame would pay for the round trips. The bytes end up the same either way. */
    for (size_t line = 0; line < TP_TENSOR_HEADER_BYTES; line += 64)
    {
        uint8_t *dst = slot + SLOT_TENSOR_OFFSET + line;
        if (memcmp(dst, tensor_header + line, 64) != 0)
        {
            memcpy(dst, tensor_header + line, 64);
        }
    }
}

void tp_slot_read_fields(const uint8_t *slot, tp_slot_fields_t *out)
{
    out->values_len_bytes = tp_sbe_get_u32(slot + SH_OFF(VALUES_LEN_BYTES));
    out->payload_slot = tp_sbe_get_u32(slot + SH_OFF(PAYLOAD_SLOT));
    out->pool_id = tp_sbe_get_u16(slot + SH_OFF(POOL_ID));
    out->payload_offset = tp_sbe_get_u32(slot + SH_OFF(PAYLOAD_OFFSET));
    out->timestamp_ns = tp_sbe_get_u64(slot + SH_OFF(TIMESTAMP_NS));
    out->meta_version = tp_sbe_get_u32(slot + SH_OFF(META_VERSION));
}

uint64_t tp_slot_timestamp_of(const uint8_t *slot, uint64_t seq)
{
    uint64_t first = tp_slot_read_begin(slot);
    if (first != tp_seq_committed(seq))
    {
        return 0;
    }
    uint64_t t = tp_sbe_get_u64(slot + SH_OFF(TIMESTAMP_NS));
    return tp_slot_read_still(slot, first) ? t : 0;
}

tp_slot_status_t tp_slot_snapshot(const uint8_t *slot, uint64_t seq, tp_slot_fields_t *fields,
    tp_tensor_desc_t *tensor, uint64_t *seq_commit_out)
{
    uint64_t first = tp_slot_read_begin(slot);
    if ((first & 1) == 0)
    {
        return TP_SLOT_NOT_COMMITTED;
    }
    if ((first >> 1) != seq)
    {
        return TP_SLOT_SEQ_MISMATCH;
    }
    /* Copy the header out, then check the seqlock: only a stable copy is parsed. */
    uint8_t copy[TP_HEADER_SLOT_BYTES];
    memcpy(copy + 8, slot + 8, sizeof(copy) - 8); /* seq_commit itself is only read atomically */
    if (!tp_slot_read_still(slot, first))
    {
        return TP_SLOT_CHANGED;
    }
    tp_slot_read_fields(copy, fields);
    uint32_t header_len = tp_sbe_get_u32(copy + SLOT_HEADER_BYTES_LENGTH_OFFSET);
    if (fields->payload_offset != 0 || header_len != TP_TENSOR_HEADER_BYTES ||
        tp_tensor_header_check(copy + SLOT_TENSOR_OFFSET, header_len, fields->values_len_bytes, tensor) < 0)
    {
        return TP_SLOT_INVALID_HEADER;
    }
    *seq_commit_out = first;
    return TP_SLOT_OK;
}

int tp_pool_select(const uint32_t *strides, int count, uint64_t length_bytes)
{
    int best = -1;
    for (int i = 0; i < count; i++)
    {
        if (strides[i] >= length_bytes && (best < 0 || strides[i] < strides[best]))
        {
            best = i;
        }
    }
    return best;
}
