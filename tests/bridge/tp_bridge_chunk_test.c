/*
 * Bridge frame chunks: the sender's split and the receiver's reassembly, every chunk rule of bridge spec 5.2-5.4
 * and the frame rules of 6, with hostile chunks built by hand.
 */
#include <stdlib.h>
#include <string.h>

#include "bridge/tp_bridge_chunk.h"
#include "core/tp_crc32c.h"
#include "shm/tp_header_ring.h"
#include "tp_sbe_bridge.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"
#include "wire/tp_tensor.h"

#define STREAM 55000
#define CHUNK 1280
#define MAX_PAYLOAD (2u << 20)
#define MS 1000000LL

typedef struct delivered
{
    int frames;
    uint64_t seq;
    uint64_t trace_id;
    uint32_t length;
    uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
    uint8_t *payload;
} delivered_t;

static void on_frame(void *clientd, const tp_bridge_frame_t *f, const tp_tensor_desc_t *tensor)
{
    delivered_t *d = clientd;
    d->frames++;
    d->seq = f->seq;
    d->trace_id = f->trace_id;
    d->length = f->payload_length;
    assert_int_equal(tensor->dims[0], (int32_t)f->payload_length);
    memcpy(d->header, f->header, sizeof(d->header));
    memcpy(d->payload, f->payload, f->payload_length);
}

static void make_header(uint8_t *header, uint32_t length, uint64_t seq)
{
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT8;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = (int32_t)length;
    uint8_t tensor[192];
    tp_tensor_header_encode(tensor, &t);
    tp_slot_fields_t fields = { .values_len_bytes = length, .payload_slot = (uint32_t)(seq % 8), .pool_id = 1,
        .timestamp_ns = 1000 + seq, .meta_version = 3 };
    memset(header, 0, TP_BRIDGE_SLOT_HEADER_BYTES);
    tp_slot_write_header(header, &fields, tensor);
}

static uint8_t *payload_of(uint32_t length, uint64_t seq)
{
    uint8_t *p = malloc(length + 1);
    for (uint32_t i = 0; i < length; i++)
    {
        p[i] = (uint8_t)(seq * 13 + i * 7);
    }
    return p;
}

typedef struct chunked
{
    uint32_t count;
    uint8_t **chunks;
    size_t *lengths;
} chunked_t;

static void split(chunked_t *c, const tp_bridge_frame_t *f, bool is_integrity)
{
    c->count = tp_bridge_chunk_count(f->payload_length, CHUNK);
    assert_true(c->count >= 1);
    c->chunks = calloc(c->count, sizeof(uint8_t *));
    c->lengths = calloc(c->count, sizeof(size_t));
    for (uint32_t i = 0; i < c->count; i++)
    {
        c->chunks[i] = malloc(CHUNK + 512);
        int64_t n = tp_bridge_chunk_encode(c->chunks[i], CHUNK + 512, f, i, CHUNK, is_integrity);
        assert_true(n > 0);
        c->lengths[i] = (size_t)n;
    }
}

static void unsplit(chunked_t *c)
{
    for (uint32_t i = 0; i < c->count; i++)
    {
        free(c->chunks[i]);
    }
    free(c->chunks);
    free(c->lengths);
}

static tp_bridge_assembler_t *assembler(delivered_t *d, bool is_integrity)
{
    tp_bridge_assembler_limits_t l = { .chunk_bytes = CHUNK, .max_payload_bytes = MAX_PAYLOAD,
        .is_integrity = is_integrity, .timeout_ns = 200 * MS, .in_flight = 4 };
    tp_bridge_assembler_t *a;
    tp_assert_ok(tp_bridge_assembler_init(&a, STREAM, &l, on_frame, d));
    return a;
}

/* A forwarded announce of epoch with one source pool, id 1, of MAX_PAYLOAD bytes per slot. */
static bool announce(tp_bridge_assembler_t *a, uint64_t epoch)
{
    tp_bridge_announce_t an = { .epoch = epoch, .pool_count = 1 };
    an.pools[0].pool_id = 1;
    an.pools[0].stride_bytes = MAX_PAYLOAD;
    return tp_bridge_assembler_on_announce(a, &an);
}

static uint64_t drops_of(tp_bridge_assembler_t *a, tp_bridge_drop_t why)
{
    uint64_t drops[TP_BRIDGE_DROP_KINDS];
    uint64_t delivered;
    tp_bridge_assembler_counters(a, drops, &delivered);
    return drops[why];
}

/* Frames of 0 bytes to 1 MiB, chunked at 1,280 bytes (chunk 0 gives 256 to the slot header), come back bit-exact
 * with header and trace id; chunk 0 alone carries the header, every chunk the trace id.
 * covers: B-5-1, B-5.1-1, B-5.2-1, B-5.2-3, B-5.2-4, B-5.2-5, B-5.2-6, B-5.2-7, B-5.2-8, B-5.2-14, B-5.2-16,
 * B-5.2-17, B-5.2-20, B-6-1 */
static void test_round_trip(void **state)
{
    (void)state;
    delivered_t d = { .payload = malloc(MAX_PAYLOAD) };
    tp_bridge_assembler_t *a = assembler(&d, false);
    announce(a, 7);
    const uint32_t sizes[] = { 0, 1, 1024, 1025, 1024 + 1280, 65536, 1u << 20 };
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
    {
        uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
        make_header(header, sizes[k], k);
        uint8_t *payload = payload_of(sizes[k], k);
        tp_bridge_frame_t f = { .stream_id = STREAM, .epoch = 7, .seq = k, .trace_id = k == 1 ? 0 : 0x77 + k,
            .header = header, .payload = payload, .payload_length = sizes[k] };
        chunked_t c;
        split(&c, &f, false);
        assert_int_equal(c.count, sizes[k] <= 1024 ? 1 : 1 + (sizes[k] - 1024 + 1279) / 1280);
        for (uint32_t i = 0; i < c.count; i++)
        {
            tp_bridge_bridge_frame_chunk_t m;
            tp_assert_ok(tp_bridge_bridge_frame_chunk_decode(&m, c.chunks[i], c.lengths[i]));
            assert_int_equal(tp_bridge_bridge_frame_chunk_trace_id(&m), f.trace_id);
            assert_int_equal(tp_bridge_bridge_frame_chunk_header_bytes(&m).length, i == 0 ? 256 : 0);
            tp_bridge_assembler_on_chunk(a, c.chunks[i], c.lengths[i], 0);
        }
        assert_int_equal(d.frames, (int)k + 1);
        assert_int_equal(d.seq, k);
        assert_int_equal(d.trace_id, f.trace_id);
        assert_int_equal(d.length, sizes[k]);
        assert_memory_equal(d.header, header, sizeof(header));
        if (sizes[k] > 0)
        {
            assert_memory_equal(d.payload, payload, sizes[k]);
        }
        unsplit(&c);
        free(payload);
    }
    tp_bridge_assembler_close(a);
    free(d.payload);
}

/* Chunks in reverse order with identical duplicates: one frame. A duplicate with other bytes, or another trace
 * id on one chunk, ends the frame.
 * covers: B-5.2-21, B-5.2-22, B-5.2-24, B-5.2-25, B-5.2-26, B-5.3-1, B-5.3-2 */
static void test_order_duplicates_conflicts(void **state)
{
    (void)state;
    delivered_t d = { .payload = malloc(MAX_PAYLOAD) };
    tp_bridge_assembler_t *a = assembler(&d, false);
    announce(a, 7);
    uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
    make_header(header, 10000, 1);
    uint8_t *payload = payload_of(10000, 1);
    tp_bridge_frame_t f = { .stream_id = STREAM, .epoch = 7, .seq = 1, .trace_id = 5, .header = header,
        .payload = payload, .payload_length = 10000 };
    chunked_t c;
    split(&c, &f, false);
    for (uint32_t i = c.count; i-- > 0;)
    {
        tp_bridge_assembler_on_chunk(a, c.chunks[i], c.lengths[i], 0);
        if (i > 0)
        {
            tp_bridge_assembler_on_chunk(a, c.chunks[i], c.lengths[i], 0); /* the same again */
        }
    }
    assert_int_equal(d.frames, 1);
    assert_memory_equal(d.payload, payload, 10000);
    /* seq 2: chunk 1 arrives twice, the second time with one byte changed */
    f.seq = 2;
    unsplit(&c);
    split(&c, &f, false);
    tp_bridge_assembler_on_chunk(a, c.chunks[1], c.lengths[1], 0);
    c.chunks[1][c.lengths[1] - 1] ^= 1;
    tp_bridge_assembler_on_chunk(a, c.chunks[1], c.lengths[1], 0);
    for (uint32_t i = 0; i < c.count; i++)
    {
        if (i != 1)
        {
            tp_bridge_assembler_on_chunk(a, c.chunks[i], c.lengths[i], 0);
        }
    }
    assert_int_equal(d.frames, 1); /* never delivered: its chunk 1 is gone with the frame */
    assert_true(drops_of(a, TP_BRIDGE_DROP_CONFLICT) >= 1);
    /* seq 3: one chunk with another trace id */
    unsplit(&c);
    f.seq = 3;
    split(&c, &f, false);
    tp_bridge_frame_t other = f;
    other.trace_id = 6;
    uint8_t odd[CHUNK + 512];
    int64_t n = tp_bridge_chunk_encode(odd, sizeof(odd), &other, 2, CHUNK, false);
    tp_bridge_assembler_on_chunk(a, c.chunks[0], c.lengths[0], 0);
    tp_bridge_assembler_on_chunk(a, odd, (size_t)n, 0);
    assert_int_equal(d.frames, 1);
    uint64_t conflicts = drops_of(a, TP_BRIDGE_DROP_CONFLICT);
    assert_true(conflicts >= 2);
    unsplit(&c);
    free(payload);
    tp_bridge_assembler_close(a);
    free(d.payload);
}

/* A chunk by hand: the fields below, the given header and payload bytes. */
typedef struct raw_chunk
{
    uint64_t epoch;
    uint64_t seq;
    uint64_t trace_id;
    uint32_t index;
    uint32_t count;
    uint32_t offset;
    uint32_t length;
    uint32_t payload_length;
    uint32_t crc;
    uint8_t has_header;
    uint32_t header_length;
    uint32_t bytes_length;
} raw_chunk_t;

static size_t encode_raw(uint8_t *buf, size_t capacity, const raw_chunk_t *r, const uint8_t *header,
    const uint8_t *bytes)
{
    tp_bridge_bridge_frame_chunk_enc_t e;
    tp_bridge_bridge_frame_chunk_enc_begin(&e, buf, capacity);
    tp_bridge_bridge_frame_chunk_set_stream_id(&e, STREAM);
    tp_bridge_bridge_frame_chunk_set_epoch(&e, r->epoch);
    tp_bridge_bridge_frame_chunk_set_seq(&e, r->seq);
    tp_bridge_bridge_frame_chunk_set_trace_id(&e, r->trace_id);
    tp_bridge_bridge_frame_chunk_set_chunk_index(&e, r->index);
    tp_bridge_bridge_frame_chunk_set_chunk_count(&e, r->count);
    tp_bridge_bridge_frame_chunk_set_chunk_offset(&e, r->offset);
    tp_bridge_bridge_frame_chunk_set_chunk_length(&e, r->length);
    tp_bridge_bridge_frame_chunk_set_payload_length(&e, r->payload_length);
    tp_bridge_bridge_frame_chunk_set_payload_crc32c(&e, r->crc);
    tp_bridge_bridge_frame_chunk_set_header_included(&e, r->has_header);
    tp_bridge_bridge_frame_chunk_put_header_bytes(&e, header, r->header_length);
    tp_bridge_bridge_frame_chunk_put_payload_bytes(&e, bytes, r->bytes_length);
    int64_t n = tp_bridge_bridge_frame_chunk_enc_finish(&e);
    assert_true(n > 0);
    return (size_t)n;
}

/* Every self-inconsistent chunk is dropped and counted by reason, before it touches a frame.
 * covers: B-5.2-2, B-5.2-9, B-5.2-10, B-5.2-15, B-5.2-27, B-5.2-28 */
static void test_hostile_chunks(void **state)
{
    (void)state;
    delivered_t d = { .payload = malloc(MAX_PAYLOAD) };
    tp_bridge_assembler_t *a = assembler(&d, false);
    announce(a, 7);
    static uint8_t buf[1u << 17];
    static uint8_t bytes[1u << 16];
    uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
    make_header(header, 100, 9);
    const raw_chunk_t good = { .epoch = 7, .seq = 9, .index = 0, .count = 1, .length = 100, .payload_length = 100,
        .has_header = 1, .header_length = 256, .bytes_length = 100 };
    raw_chunk_t bad[] = { good, good, good, good, good, good, good, good, good, good, good };
    bad[0].count = 0;                                       /* no chunks */
    bad[1].count = 70000;                                   /* past 65535 */
    bad[2].index = 1;                                       /* index past the count */
    bad[3].has_header = 0;                                  /* chunk 0 without its header */
    bad[3].header_length = 0;
    bad[4].header_length = 255;                             /* a header of the wrong size */
    bad[5].bytes_length = 99;                               /* fewer payload bytes than chunkLength */
    bad[6].offset = 8;                                      /* chunk 0 not at 0, and past the payload */
    bad[7].has_header = 2;                                  /* not a boolean */
    bad[8].count = 2;                                       /* a non-zero chunk claiming a header */
    bad[8].index = 1;
    bad[8].offset = 0;
    bad[9].length = CHUNK + 1;                              /* longer than the chunk size */
    bad[9].bytes_length = CHUNK + 1;
    bad[9].payload_length = CHUNK + 1;
    bad[10].payload_length = MAX_PAYLOAD + 1;               /* longer than any local slot */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    {
        tp_bridge_assembler_on_chunk(a, buf, encode_raw(buf, sizeof(buf), &bad[i], header, bytes), 0);
    }
    tp_bridge_assembler_on_chunk(a, (const uint8_t *)"junk", 4, 0);
    assert_int_equal(d.frames, 0);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_CHUNK_RULE), 9);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_TOO_LARGE), 2);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_MALFORMED), 1);
    /* and the good one still goes */
    memcpy(bytes, "abc", 3);
    tp_bridge_assembler_on_chunk(a, buf, encode_raw(buf, sizeof(buf), &good, header, bytes), 0);
    assert_int_equal(d.frames, 1);
    tp_bridge_assembler_close(a);
    free(d.payload);
}

/* Nothing before the source's announce; only the announced epoch, never an older one once a newer was seen; a new
 * epoch drops what was in flight; a frame missing a chunk times out and frees its slot.
 * covers: B-5.2-11, B-6-2, B-6-3, B-5.3a-1, B-5.3a-3, B-8-3 */
static void test_announce_epoch_timeout(void **state)
{
    (void)state;
    delivered_t d = { .payload = malloc(MAX_PAYLOAD) };
    tp_bridge_assembler_t *a = assembler(&d, false);
    uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
    make_header(header, 5000, 1);
    uint8_t *payload = payload_of(5000, 1);
    tp_bridge_frame_t f = { .stream_id = STREAM, .epoch = 7, .seq = 1, .header = header, .payload = payload,
        .payload_length = 5000 };
    chunked_t c;
    split(&c, &f, false);
    tp_bridge_assembler_on_chunk(a, c.chunks[0], c.lengths[0], 0);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_NO_ANNOUNCE), 1);
    assert_true(announce(a, 6));
    tp_bridge_assembler_on_chunk(a, c.chunks[0], c.lengths[0], 0);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_EPOCH), 1);
    assert_true(announce(a, 7));
    assert_false(announce(a, 6)); /* once 7 is seen, 6 is not taken back */
    for (uint32_t i = 0; i + 1 < c.count; i++) /* all but the last */
    {
        tp_bridge_assembler_on_chunk(a, c.chunks[i], c.lengths[i], 0);
    }
    tp_bridge_assembler_expire(a, 100 * MS);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_TIMEOUT), 0);
    tp_bridge_assembler_expire(a, 201 * MS);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_TIMEOUT), 1);
    tp_bridge_assembler_on_chunk(a, c.chunks[c.count - 1], c.lengths[c.count - 1], 300 * MS);
    assert_int_equal(d.frames, 0); /* its last chunk alone does not make a frame */
    /* in flight when a new epoch is announced: dropped */
    f.seq = 2;
    unsplit(&c);
    split(&c, &f, false);
    tp_bridge_assembler_on_chunk(a, c.chunks[0], c.lengths[0], 300 * MS);
    uint64_t epoch_drops = drops_of(a, TP_BRIDGE_DROP_EPOCH);
    announce(a, 9);
    assert_true(drops_of(a, TP_BRIDGE_DROP_EPOCH) > epoch_drops);
    unsplit(&c);
    free(payload);
    tp_bridge_assembler_close(a);
    free(d.payload);
}

/* Integrity on: CRC32C over header and payload of chunk 0, payload of the others; a wrong or missing CRC drops.
 * covers: B-5.2-18, B-5.2-19, B-5.4-1, B-5.4-2, B-5.4-3 */
static void test_integrity(void **state)
{
    (void)state;
    delivered_t d = { .payload = malloc(MAX_PAYLOAD) };
    tp_bridge_assembler_t *a = assembler(&d, true);
    announce(a, 7);
    uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
    make_header(header, 3000, 4);
    uint8_t *payload = payload_of(3000, 4);
    tp_bridge_frame_t f = { .stream_id = STREAM, .epoch = 7, .seq = 4, .header = header, .payload = payload,
        .payload_length = 3000 };
    chunked_t c;
    split(&c, &f, true);
    tp_bridge_bridge_frame_chunk_t m;
    tp_assert_ok(tp_bridge_bridge_frame_chunk_decode(&m, c.chunks[0], c.lengths[0]));
    uint32_t want = tp_crc32c(tp_crc32c(0, header, 256), payload, 1024);
    assert_int_equal(tp_bridge_bridge_frame_chunk_payload_crc32c(&m), want);
    tp_assert_ok(tp_bridge_bridge_frame_chunk_decode(&m, c.chunks[1], c.lengths[1]));
    assert_int_equal(tp_bridge_bridge_frame_chunk_payload_crc32c(&m), tp_crc32c(0, payload + 1024, 1280));
    for (uint32_t i = 0; i < c.count; i++)
    {
        tp_bridge_assembler_on_chunk(a, c.chunks[i], c.lengths[i], 0);
    }
    assert_int_equal(d.frames, 1);
    /* the same frame as seq 5 with a payload byte flipped in transit, then without CRCs at all */
    f.seq = 5;
    unsplit(&c);
    split(&c, &f, true);
    c.chunks[1][c.lengths[1] - 10] ^= 0x40;
    tp_bridge_assembler_on_chunk(a, c.chunks[1], c.lengths[1], 0);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_CRC), 1);
    unsplit(&c);
    split(&c, &f, false);
    tp_bridge_assembler_on_chunk(a, c.chunks[0], c.lengths[0], 0);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_CRC), 2);
    assert_int_equal(d.frames, 1);
    unsplit(&c);
    free(payload);
    tp_bridge_assembler_close(a);
    free(d.payload);
}

/* The slot header must describe the payload: values_len_bytes equal to payloadLength and a valid tensor header;
 * chunks that overlap (their lengths still summing right) never make a frame.
 * covers: B-6-4, B-6-5, B-6-6 */
static void test_header_and_tiling(void **state)
{
    (void)state;
    delivered_t d = { .payload = malloc(MAX_PAYLOAD) };
    tp_bridge_assembler_t *a = assembler(&d, false);
    announce(a, 7);
    uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
    make_header(header, 999, 1); /* says 999 bytes */
    uint8_t *payload = payload_of(1000, 1);
    tp_bridge_frame_t f = { .stream_id = STREAM, .epoch = 7, .seq = 1, .header = header, .payload = payload,
        .payload_length = 1000 };
    chunked_t c;
    split(&c, &f, false);
    tp_bridge_assembler_on_chunk(a, c.chunks[0], c.lengths[0], 0);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_HEADER), 1);
    unsplit(&c);
    make_header(header, 1000, 2);
    header[TP_SLOT_TENSOR_HEADER_OFFSET + 8 + 3] = 99; /* somewhere in the tensor header: ndims or dtype */
    f.seq = 2;
    split(&c, &f, false);
    tp_bridge_assembler_on_chunk(a, c.chunks[0], c.lengths[0], 0);
    assert_int_equal(d.frames, 0);
    unsplit(&c);
    /* an embedded header of another schema (901), version or template is no TensorHeader */
    const size_t at[] = { 2, 4, 6 }; /* templateId, schemaId, version of its message header */
    for (size_t k = 0; k < 3; k++)
    {
        uint64_t before = drops_of(a, TP_BRIDGE_DROP_HEADER);
        make_header(header, 1000, 10 + k);
        header[TP_SLOT_TENSOR_HEADER_OFFSET + at[k]] ^= 0x01;
        f.seq = 10 + k;
        split(&c, &f, false);
        tp_bridge_assembler_on_chunk(a, c.chunks[0], c.lengths[0], 0);
        unsplit(&c);
        assert_int_equal(drops_of(a, TP_BRIDGE_DROP_HEADER), before + 1);
    }
    assert_int_equal(d.frames, 0);
    /* two chunks of 1000 bytes each over a 2000-byte payload, both at offset 0 */
    static uint8_t buf[4096];
    static uint8_t bytes[2000];
    make_header(header, 2000, 3);
    raw_chunk_t r0 = { .epoch = 7, .seq = 3, .index = 0, .count = 2, .offset = 0, .length = 1000,
        .payload_length = 2000, .has_header = 1, .header_length = 256, .bytes_length = 1000 };
    raw_chunk_t r1 = r0;
    r1.index = 1;
    r1.has_header = 0;
    r1.header_length = 0;
    r1.offset = 500; /* overlaps chunk 0 */
    tp_bridge_assembler_on_chunk(a, buf, encode_raw(buf, sizeof(buf), &r0, header, bytes), 0);
    tp_bridge_assembler_on_chunk(a, buf, encode_raw(buf, sizeof(buf), &r1, header, bytes), 0);
    assert_int_equal(d.frames, 0);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_INCOMPLETE), 1);
    free(payload);
    tp_bridge_assembler_close(a);
    free(d.payload);
}

/* Send one frame whose slot header says pool_id / payload_offset, through a fresh split. */
static void send_with_header(tp_bridge_assembler_t *a, uint64_t seq, uint32_t length, uint16_t pool_id,
    uint32_t payload_offset)
{
    uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
    make_header(header, length, seq);
    tp_slot_fields_t fields;
    tp_slot_read_fields(header, &fields);
    fields.pool_id = pool_id;
    fields.payload_offset = payload_offset;
    uint8_t tensor[192];
    memcpy(tensor, header + TP_SLOT_TENSOR_HEADER_OFFSET, sizeof(tensor));
    memset(header, 0, sizeof(header));
    tp_slot_write_header(header, &fields, tensor);
    uint8_t *payload = payload_of(length, seq);
    tp_bridge_frame_t f = { .stream_id = STREAM, .epoch = 7, .seq = seq, .header = header, .payload = payload,
        .payload_length = length };
    chunked_t c;
    split(&c, &f, false);
    for (uint32_t i = 0; i < c.count; i++)
    {
        tp_bridge_assembler_on_chunk(a, c.chunks[i], c.lengths[i], 0);
    }
    unsplit(&c);
    free(payload);
}

/* The source pools of the latest announce judge each frame: its pool must be one of them and the payload within
 * that pool's stride; payload_offset must be 0. The announce's own decoding rejects more pools than we keep.
 * covers: B-6-7, B-6-8, B-6-9, B-7.2-2 */
static void test_source_pool_rules(void **state)
{
    (void)state;
    delivered_t d = { .payload = malloc(MAX_PAYLOAD) };
    tp_bridge_assembler_t *a = assembler(&d, false);
    tp_bridge_announce_t an = { .epoch = 7, .pool_count = 2 };
    an.pools[0].pool_id = 1;
    an.pools[0].stride_bytes = 4096;
    an.pools[1].pool_id = 2;
    an.pools[1].stride_bytes = 65536;
    assert_true(tp_bridge_assembler_on_announce(a, &an));
    send_with_header(a, 1, 4096, 1, 0);
    assert_int_equal(d.frames, 1); /* fits pool 1 exactly */
    send_with_header(a, 2, 4097, 1, 0);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_POOL), 1); /* past pool 1's stride */
    send_with_header(a, 3, 5000, 2, 0);
    assert_int_equal(d.frames, 2);
    send_with_header(a, 4, 100, 3, 0);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_POOL), 2); /* no pool 3 in the announce */
    send_with_header(a, 5, 100, 1, 64);
    assert_int_equal(drops_of(a, TP_BRIDGE_DROP_HEADER), 1); /* payload_offset 64 */
    assert_int_equal(d.frames, 2);
    /* a later announce with a bigger pool 1 lets the same frame through */
    an.pools[0].stride_bytes = 8192;
    assert_true(tp_bridge_assembler_on_announce(a, &an));
    send_with_header(a, 6, 4097, 1, 0);
    assert_int_equal(d.frames, 3);
    /* the decoder: a real announce round-trips, one naming 17 pools does not decode */
    uint8_t buf[4096];
    for (int count = 2; count <= 17; count += 15)
    {
        tp_wire_shm_pool_announce_enc_t e;
        tp_wire_shm_pool_announce_enc_begin(&e, buf, sizeof(buf));
        tp_wire_shm_pool_announce_set_stream_id(&e, STREAM);
        tp_wire_shm_pool_announce_set_epoch(&e, 9);
        tp_wire_shm_pool_announce_payload_pools_enc_t g;
        tp_wire_shm_pool_announce_payload_pools_begin(&e, &g, (uint16_t)count);
        for (int i = 0; i < count; i++)
        {
            tp_wire_shm_pool_announce_payload_pools_enc_next(&g);
            tp_wire_shm_pool_announce_payload_pools_set_pool_id(&g, (uint16_t)(i + 1));
            tp_wire_shm_pool_announce_payload_pools_set_stride_bytes(&g, 4096u << i);
            tp_wire_shm_pool_announce_payload_pools_put_region_uri(&g, "shm:file?path=/dev/shm/x", 24);
        }
        tp_wire_shm_pool_announce_payload_pools_end(&g);
        tp_wire_shm_pool_announce_put_header_region_uri(&e, "shm:file?path=/dev/shm/h", 24);
        int64_t n = tp_wire_shm_pool_announce_enc_finish(&e);
        assert_true(n > 0);
        tp_bridge_announce_t decoded;
        uint32_t stream_id;
        int rc = tp_bridge_announce_decode(&decoded, &stream_id, buf, (size_t)n);
        if (count == 2)
        {
            tp_assert_ok(rc);
            assert_int_equal(stream_id, STREAM);
            assert_int_equal(decoded.epoch, 9);
            assert_int_equal(decoded.pool_count, 2);
            assert_int_equal(decoded.pools[1].pool_id, 2);
            assert_int_equal(decoded.pools[1].stride_bytes, 8192);
        }
        else
        {
            assert_int_equal(rc, -1);
        }
    }
    tp_bridge_assembler_close(a);
    free(d.payload);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_order_duplicates_conflicts),
        cmocka_unit_test(test_hostile_chunks),
        cmocka_unit_test(test_announce_epoch_timeout),
        cmocka_unit_test(test_integrity),
        cmocka_unit_test(test_header_and_tiling),
        cmocka_unit_test(test_source_pool_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
