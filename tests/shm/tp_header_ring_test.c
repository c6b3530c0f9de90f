/*
 * The seqlock and header slots (wire spec 8.3, 15.19, 15.21): states, validation, a torn-read torture run, and
 * zero allocations on the steady-state path.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/tp_alloc.h"
#include "core/tp_atomic.h"
#include "core/tp_crc32c.h"
#include "shm/tp_header_ring.h"
#include "tp_malloc_count.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"
#include "wire/tp_tensor.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define TORTURE_FRAMES 100000 /* instrumented builds run ~50x slower */
#else
#define TORTURE_FRAMES 1000000
#endif
#define RING_SLOTS 4
#define STRIDE 256
#define FRAME_BYTES 200

/* 64-byte aligned like a mapped region. */
static _Alignas(64) uint8_t ring[64 + RING_SLOTS * 256];
static _Alignas(64) uint8_t pool[64 + RING_SLOTS * STRIDE];

static void publish(uint64_t seq, const void *payload, uint32_t length, const tp_tensor_desc_t *t)
{
    uint32_t index = (uint32_t)(seq & (RING_SLOTS - 1));
    uint8_t *slot = tp_header_slot_at(ring, index);
    uint8_t th[TP_TENSOR_HEADER_BYTES];
    tp_tensor_header_encode(th, t);
    tp_slot_begin_write(slot, seq);
    memcpy(tp_pool_slot_at(pool, index, STRIDE), payload, length);
    tp_slot_fields_t f = { .values_len_bytes = length, .payload_slot = index, .pool_id = 1, .timestamp_ns = 5 };
    tp_slot_write_header(slot, &f, th);
    tp_slot_commit(slot, seq);
}

/* The seqlock's states: never written, in progress (S << 1), committed ((S << 1) + 1), a seq other than the
 * descriptor's, a writer starting over a reader, an empty payload.
 * covers: W-8.3-1, W-8.3-2, W-8.3-4, W-8.3-5, W-8.3-6, W-8.2-2, W-8.2-9, W-15.21-1, W-15.21-2, W-15.21-4,
 * covers: W-10.2.1-11, W-15.3-1, W-8.2-21, W-8.2-22, W-8.2-23, W-9-4 */
static void test_states(void **state)
{
    /* A slot that holds another seq than the descriptor's (reused since) is dropped. covers: W-8.2-20s */
    (void)state;
    memset(ring, 0, sizeof(ring));
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, 4);
    tp_slot_fields_t f;
    tp_tensor_desc_t out;
    uint64_t sc;
    uint8_t *slot = tp_header_slot_at(ring, 1);
    assert_ptr_equal(slot, ring + 64 + 256); /* slot i at 64 + i * 256. covers: W-6-3 */
    /* seq_commit is the slot's first 8 bytes, 8-byte aligned: one atomic store and load, inside one cache line */
    assert_ptr_equal((void *)tp_slot_seq_word(slot), (void *)slot);
    assert_int_equal((uintptr_t)slot % 64, 0);
    /* never written: seq_commit 0 is "in progress, seq 0" */
    assert_int_equal(tp_slot_snapshot(slot, 1, &f, &out, &sc), TP_SLOT_NOT_COMMITTED);
    publish(5, "abcd", 4, &t);
    assert_int_equal(tp_load_acquire_u64(tp_slot_seq_word(slot)), (5u << 1) | 1);
    assert_int_equal(tp_slot_snapshot(slot, 5, &f, &out, &sc), TP_SLOT_OK);
    assert_int_equal(sc, 11);
    assert_int_equal(f.values_len_bytes, 4);
    assert_int_equal(f.payload_slot, 1);
    assert_int_equal(f.pool_id, 1);
    assert_int_equal(out.dims[0], 4);
    /* a descriptor for an older or newer seq mapping to the same slot is dropped */
    assert_int_equal(tp_slot_snapshot(slot, 1, &f, &out, &sc), TP_SLOT_SEQ_MISMATCH);
    assert_int_equal(tp_slot_snapshot(slot, 9, &f, &out, &sc), TP_SLOT_SEQ_MISMATCH);
    /* a writer starting on the slot makes it uncommitted */
    tp_slot_begin_write(slot, 9);
    assert_int_equal(tp_slot_snapshot(slot, 9, &f, &out, &sc), TP_SLOT_NOT_COMMITTED);
    assert_false(tp_slot_read_still(slot, 11)); /* a reader holding seq 5 sees the change */
    tp_slot_commit(slot, 9);
    assert_int_equal(tp_slot_snapshot(slot, 9, &f, &out, &sc), TP_SLOT_OK);
    /* empty payloads are frames too */
    tp_tensor_bytes(&t, 0);
    publish(10, "", 0, &t);
    assert_int_equal(tp_slot_snapshot(tp_header_slot_at(ring, 2), 10, &f, &out, &sc), TP_SLOT_OK);
    assert_int_equal(f.values_len_bytes, 0);
    assert_int_equal(f.payload_slot, 2);
}

/* A committed slot whose header breaks a rule is dropped: payload_offset not 0, headerBytes not 192 bytes, another
 * embedded template, too many dims, an unknown dtype. covers: W-8.2-13, W-8.2-5 */
static void test_invalid_headers_are_dropped(void **state)
{
    (void)state;
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, 8);
    tp_slot_fields_t f;
    tp_tensor_desc_t out;
    uint64_t sc;
    uint8_t *slot = tp_header_slot_at(ring, 3);
    publish(3, "12345678", 8, &t);
    tp_sbe_put_u32(slot + TP_WIRE_SLOT_HEADER_PAYLOAD_OFFSET_OFFSET, 16);
    assert_int_equal(tp_slot_snapshot(slot, 3, &f, &out, &sc), TP_SLOT_INVALID_HEADER);
    publish(3, "12345678", 8, &t);
    tp_sbe_put_u32(slot + 60, 191); /* headerBytes length */
    assert_int_equal(tp_slot_snapshot(slot, 3, &f, &out, &sc), TP_SLOT_INVALID_HEADER);
    publish(3, "12345678", 8, &t);
    tp_sbe_put_u16(slot + 64 + 2, 53); /* embedded templateId */
    assert_int_equal(tp_slot_snapshot(slot, 3, &f, &out, &sc), TP_SLOT_INVALID_HEADER);
    publish(3, "12345678", 8, &t);
    slot[64 + 8 + TP_WIRE_TENSOR_HEADER_NDIMS_OFFSET] = 9;
    assert_int_equal(tp_slot_snapshot(slot, 3, &f, &out, &sc), TP_SLOT_INVALID_HEADER);
    publish(3, "12345678", 8, &t);
    tp_sbe_put_i16(slot + 64 + 8 + TP_WIRE_TENSOR_HEADER_DTYPE_OFFSET, 12);
    assert_int_equal(tp_slot_snapshot(slot, 3, &f, &out, &sc), TP_SLOT_INVALID_HEADER);
    /* pad bytes are ignored. covers: W-8.2-4 */
    publish(3, "12345678", 8, &t);
    memset(slot + TP_WIRE_SLOT_HEADER_PAD_OFFSET, 0xEE, 26);
    assert_int_equal(tp_slot_snapshot(slot, 3, &f, &out, &sc), TP_SLOT_OK);
}

/* covers: W-8.3-3, W-8.2-12 */
static void test_full_overwrite(void **state)
{
    (void)state;
    /* Header bytes left over from an earlier frame never survive a new write. */
    uint8_t *slot = tp_header_slot_at(ring, 0);
    memset(slot, 0xFF, 256);
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, 1);
    publish(4, "x", 1, &t);
    assert_int_equal(slot[TP_WIRE_SLOT_HEADER_PAD_OFFSET + 10], 0);
    assert_int_equal(tp_sbe_get_u32(slot + TP_WIRE_SLOT_HEADER_PAYLOAD_OFFSET_OFFSET), 0);
    assert_int_equal(tp_sbe_get_u32(slot + TP_WIRE_SLOT_HEADER_META_VERSION_OFFSET), 0);
    assert_int_equal(slot[255], 0);
}

static void test_payload_location_checks(void **state)
{
    (void)state;
    /* covers: W-15.5-4, W-10.2.1-12, W-10.2.1-13 */
    tp_slot_fields_t f = { .values_len_bytes = 256, .payload_slot = 3, .pool_id = 1 };
    assert_true(tp_slot_payload_is_valid(&f, 3, 4, 256));
    assert_false(tp_slot_payload_is_valid(&f, 3, 4, 128)); /* values_len_bytes > stride_bytes */
    assert_false(tp_slot_payload_is_valid(&f, 2, 4, 256)); /* payload_slot != header index */
    f.payload_slot = 4;
    assert_false(tp_slot_payload_is_valid(&f, 4, 4, 256)); /* outside the mapped pool */
    f.payload_slot = 0;
    f.values_len_bytes = 0;
    assert_true(tp_slot_payload_is_valid(&f, 0, 4, 256));
}

/* The smallest pool whose stride holds the frame. covers: W-9-2 */
static void test_pool_select(void **state)
{
    (void)state;
    const uint32_t strides[] = { 1048576, 65536, 4194304, 262144 };
    assert_int_equal(tp_pool_select(strides, 4, 120000), 3);  /* 256 KiB */
    assert_int_equal(tp_pool_select(strides, 4, 900000), 0);  /* 1 MiB */
    assert_int_equal(tp_pool_select(strides, 4, 0), 1);
    assert_int_equal(tp_pool_select(strides, 4, 65536), 1);
    assert_int_equal(tp_pool_select(strides, 4, 4194305), -1); /* no pool fits: the frame is dropped */
}

/* ---- torture: a 4-slot ring overwritten as fast as possible while consumers read ---- */

typedef struct torture
{
    uint64_t head;
    int done;
    uint64_t frames;
} torture_t;

typedef struct reader
{
    torture_t *t;
    uint64_t considered;
    uint64_t accepted;
    uint64_t gap;
    uint64_t late;
    uint64_t bad;
} reader_t;

static void seqlock_payload_write(uint8_t *dst, uint64_t seq)
{
    for (uint32_t i = 8; i < FRAME_BYTES - 4; i++)
    {
        dst[i] = (uint8_t)(seq * 31 + i);
    }
    memcpy(dst, &seq, 8);
    uint32_t crc = tp_crc32c_sw(0, dst, FRAME_BYTES - 4);
    memcpy(dst + FRAME_BYTES - 4, &crc, 4);
}

static void seqlock_payload_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);
}

/* The header varies with the frame (dtype, shape, timestamp, meta version), so a header copied half from one frame
 * and half from the next cannot pass for either: only the seqlock re-check between copying and parsing keeps it out. */
static void torture_tensor(uint64_t seq, tp_tensor_desc_t *d)
{
    static const tp_dtype_t dtypes[3] = { TP_DTYPE_UINT8, TP_DTYPE_UINT16, TP_DTYPE_FLOAT32 };
    static const int32_t rows[3] = { FRAME_BYTES, 10, 5 };
    memset(d, 0, sizeof(*d));
    int k = (int)(seq % 3);
    d->dtype = dtypes[k];
    d->major_order = TP_MAJOR_ORDER_ROW;
    d->ndims = k == 0 ? 1 : 2;
    d->dims[0] = rows[k];
    d->dims[1] = k == 0 ? 0 : 10;
}

static bool torture_header_matches(uint64_t seq, const tp_slot_fields_t *f, const tp_tensor_desc_t *d)
{
    tp_tensor_desc_t want;
    torture_tensor(seq, &want);
    return f->timestamp_ns == seq && f->meta_version == (uint32_t)seq && f->values_len_bytes == FRAME_BYTES &&
           d->dtype == want.dtype && d->ndims == want.ndims && d->dims[0] == want.dims[0] &&
           d->dims[1] == want.dims[1];
}

static void *torture_writer(void *arg)
{
    torture_t *t = arg;
    uint8_t th[3][TP_TENSOR_HEADER_BYTES];
    for (uint64_t k = 0; k < 3; k++)
    {
        tp_tensor_desc_t d;
        torture_tensor(k, &d);
        tp_tensor_header_encode(th[k], &d);
    }
    for (uint64_t seq = 0; seq < t->frames; seq++)
    {
        uint32_t index = (uint32_t)(seq & (RING_SLOTS - 1));
        uint8_t *slot = tp_header_slot_at(ring, index);
        tp_slot_begin_write(slot, seq);
        seqlock_payload_write(tp_pool_slot_at(pool, index, STRIDE), seq);
        tp_slot_fields_t f = { .values_len_bytes = FRAME_BYTES, .payload_slot = index, .pool_id = 1,
            .timestamp_ns = seq, .meta_version = (uint32_t)seq };
        tp_slot_write_header(slot, &f, th[seq % 3]);
        tp_slot_commit(slot, seq);
        tp_store_release_u64(&t->head, seq + 1);
    }
    tp_store_release_u32((uint32_t *)&t->done, 1);
    return NULL;
}

static void *torture_reader(void *arg)
{
    reader_t *r = arg;
    uint64_t cursor = 0;
    uint8_t copy[FRAME_BYTES];
    while (1)
    {
        uint64_t head = tp_load_acquire_u64(&r->t->head);
        if (cursor >= head)
        {
            if (tp_load_acquire_u32((uint32_t *)&r->t->done) && cursor >= tp_load_acquire_u64(&r->t->head))
            {
                break;
            }
            continue;
        }
        r->considered++;
        uint32_t index = (uint32_t)(cursor & (RING_SLOTS - 1));
        const uint8_t *slot = tp_header_slot_at(ring, index);
        tp_slot_fields_t f;
        tp_tensor_desc_t d;
        uint64_t sc;
        tp_slot_status_t st = tp_slot_snapshot(slot, cursor, &f, &d, &sc);
        if (st == TP_SLOT_SEQ_MISMATCH)
        {
            r->gap++; /* overwritten by a later frame before we looked */
        }
        else if (st != TP_SLOT_OK)
        {
            r->late++;
        }
        else
        {
            /* Copy-out path: copy, then re-check; only a stable copy is used. */
            seqlock_payload_copy(copy, tp_pool_slot_at(pool, index, STRIDE), f.values_len_bytes);
            if (!tp_slot_read_still(slot, sc))
            {
                r->late++;
            }
            else
            {
                uint64_t s;
                uint32_t crc;
                memcpy(&s, copy, 8);
                memcpy(&crc, copy + FRAME_BYTES - 4, 4);
                if (s != cursor || tp_crc32c_sw(0, copy, FRAME_BYTES - 4) != crc || !torture_header_matches(cursor, &f, &d))
                {
                    r->bad++;
                }
                r->accepted++;
            }
        }
        cursor++;
    }
    return NULL;
}

/* A writer overwriting a 4-slot ring as fast as it can (the wire spec's publication order) while two readers copy
 * out: every frame is accepted intact or counted (gap, late), none waits, none is torn.
 * covers: W-8.3-12, W-15.3-2, W-15.3-3, W-15.21-5, W-15.18-1 */
static void test_no_torn_frame_is_ever_accepted(void **state)
{
    (void)state;
    memset(ring, 0, sizeof(ring));
    torture_t t = { .frames = TORTURE_FRAMES };
    reader_t readers[2] = { { .t = &t }, { .t = &t } };
    pthread_t w;
    pthread_t r[2];
    for (int i = 0; i < 2; i++)
    {
        assert_int_equal(pthread_create(&r[i], NULL, torture_reader, &readers[i]), 0);
    }
    assert_int_equal(pthread_create(&w, NULL, torture_writer, &t), 0);
    pthread_join(w, NULL);
    for (int i = 0; i < 2; i++)
    {
        pthread_join(r[i], NULL);
        reader_t *x = &readers[i];
        print_message("reader %d: accepted %llu gap %llu late %llu of %llu\n", i, (unsigned long long)x->accepted,
            (unsigned long long)x->gap, (unsigned long long)x->late, (unsigned long long)x->considered);
        assert_int_equal(x->bad, 0);
        assert_int_equal(x->considered, t.frames);
        assert_int_equal(x->accepted + x->gap + x->late, t.frames);
        assert_true(x->accepted > 0);
    }
}

/* ---- deterministic: the producer rewrites the slot while the reader is halfway through copying its header ---- */

/* Two views of one memfd: the reader's, whose second page is made inaccessible, and the producer's. Slot 15 starts
 * at 64 + 15 * 256 = 3904: its seq_commit is on the first page, the end of its header on the second, so the
 * reader's copy faults midway, after it read seq_commit. The fault handler plays the producer: it rewrites the slot
 * for a later frame, then lets the copy go on. */
#define MIDCOPY_SLOT 15
static uint8_t *midcopy_reader;
static uint8_t *midcopy_producer;
static bool midcopy_rewrite;
static int midcopy_faults;

static void midcopy_on_segv(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)context;
    uint8_t *page = midcopy_reader + 4096;
    if ((uint8_t *)info->si_addr < page || (uint8_t *)info->si_addr >= page + 4096)
    {
        abort();
    }
    midcopy_faults++;
    if (midcopy_rewrite)
    {
        uint8_t *slot = tp_header_slot_at(midcopy_producer, MIDCOPY_SLOT);
        tp_slot_begin_write(slot, MIDCOPY_SLOT + 16); /* the next lap's frame is being written */
        tp_tensor_desc_t d = { .dtype = TP_DTYPE_FLOAT64, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 2,
            .dims = { 2, 4 } };
        uint8_t th[TP_TENSOR_HEADER_BYTES];
        tp_tensor_header_encode(th, &d);
        tp_slot_fields_t f = { .values_len_bytes = 64, .payload_slot = MIDCOPY_SLOT, .pool_id = 1, .timestamp_ns = 9 };
        tp_slot_write_header(slot, &f, th);
    }
    mprotect(page, 4096, PROT_READ);
}

static tp_slot_status_t midcopy_read(bool rewrite, tp_slot_fields_t *f, tp_tensor_desc_t *d)
{
    int fd = memfd_create("tp-midcopy", MFD_CLOEXEC);
    assert_true(fd >= 0);
    tp_assert_ok(ftruncate(fd, 8192));
    midcopy_producer = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    midcopy_reader = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(midcopy_producer != MAP_FAILED && midcopy_reader != MAP_FAILED);
    uint8_t *slot = tp_header_slot_at(midcopy_producer, MIDCOPY_SLOT);
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, 100);
    uint8_t th[TP_TENSOR_HEADER_BYTES];
    tp_tensor_header_encode(th, &t);
    tp_slot_begin_write(slot, MIDCOPY_SLOT);
    tp_slot_fields_t w = { .values_len_bytes = 100, .payload_slot = MIDCOPY_SLOT, .pool_id = 1, .timestamp_ns = 5 };
    tp_slot_write_header(slot, &w, th);
    tp_slot_commit(slot, MIDCOPY_SLOT);
    /* cmocka has its own SIGSEGV handler around each test function: ours for the duration of one read. */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = midcopy_on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    tp_assert_ok(sigaction(SIGSEGV, &sa, &old));
    midcopy_rewrite = rewrite;
    midcopy_faults = 0;
    tp_assert_ok(mprotect(midcopy_reader + 4096, 4096, PROT_NONE));
    uint64_t seq_commit = 0;
    tp_slot_status_t st = tp_slot_snapshot(tp_header_slot_at(midcopy_reader, MIDCOPY_SLOT), MIDCOPY_SLOT, f, d,
        &seq_commit);
    tp_assert_ok(sigaction(SIGSEGV, &old, NULL));
    assert_int_equal(midcopy_faults, 1); /* the copy really was interrupted */
    munmap(midcopy_reader, 8192);
    munmap(midcopy_producer, 8192);
    return st;
}

static void test_header_changed_during_the_copy_is_dropped(void **state)
{
    (void)state;
    /* covers: W-8.3-7, W-8.3-10 */
    tp_slot_fields_t f;
    tp_tensor_desc_t d;
    assert_int_equal(midcopy_read(false, &f, &d), TP_SLOT_OK); /* the fault alone changes nothing */
    assert_int_equal(f.values_len_bytes, 100);
    /* A copy half of one frame's header and half of the next's is never parsed: the re-check catches it. */
    assert_int_equal(midcopy_read(true, &f, &d), TP_SLOT_CHANGED);
}

static void test_steady_state_allocates_nothing(void **state)
{
    (void)state;
    tp_tensor_desc_t d;
    tp_tensor_bytes(&d, FRAME_BYTES);
    uint8_t th[TP_TENSOR_HEADER_BYTES];
    tp_tensor_header_encode(th, &d);
    uint8_t payload[FRAME_BYTES];
    memset(payload, 1, sizeof(payload));
    uint64_t before_malloc = tp_malloc_count();
    uint64_t before_alloc = tp_alloc_count();
    for (uint64_t seq = 0; seq < 10000; seq++)
    {
        uint32_t index = (uint32_t)(seq & (RING_SLOTS - 1));
        uint8_t *slot = tp_header_slot_at(ring, index);
        tp_slot_begin_write(slot, seq);
        memcpy(tp_pool_slot_at(pool, index, STRIDE), payload, sizeof(payload));
        tp_slot_fields_t f = { .values_len_bytes = FRAME_BYTES, .payload_slot = index, .pool_id = 1 };
        tp_slot_write_header(slot, &f, th);
        tp_slot_commit(slot, seq);
        tp_slot_fields_t rf;
        tp_tensor_desc_t rd;
        uint64_t sc;
        assert_int_equal(tp_slot_snapshot(slot, seq, &rf, &rd, &sc), TP_SLOT_OK);
    }
    assert_int_equal(tp_alloc_count(), before_alloc);
    if (tp_malloc_count_available())
    {
        assert_int_equal(tp_malloc_count(), before_malloc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_invalid_headers_are_dropped),
        cmocka_unit_test(test_full_overwrite),
        cmocka_unit_test(test_payload_location_checks),
        cmocka_unit_test(test_pool_select),
        cmocka_unit_test(test_no_torn_frame_is_ever_accepted),
        cmocka_unit_test(test_header_changed_during_the_copy_is_dropped),
        cmocka_unit_test(test_steady_state_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
