/*
 * Metadata (wire spec 10.3, 15.9) with an embedded driver: a producer's data source and attributes reach a cache
 * (and frames carry the version that applies), deletes bump the version, a cache that joins late learns
 * everything from the periodic repeats, blobs are reassembled and verified, and hostile blobs (gap, overlap,
 * bad checksum, short, past the end) and stale versions are discarded and counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "core/tp_crc32c.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_driver.h"
#include "tensorpool/tp_metadata.h"
#include "tp_sbe_wire.h"
#include "tp_client_fixture.h"
#include "tp_test_util.h"

#define STREAM 10
#define TIMEOUT_NS (5 * TP_NS_PER_S)

static client_fixture_t F;
static tp_client_t *client;

static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "client-meta");
    client_fixture_add_stream(&F, "cam", STREAM, "small", 8, 4096);
    client_fixture_start(&F);
    tp_assert_ok(tp_client_context_set(F.cctx, "client.metadata_period_ms", "50"));
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_assert_ok(tp_client_close(client));
    client_fixture_close(&F);
    return 0;
}

typedef struct events
{
    int announced;
    int attributes;
    int blobs;
    uint32_t last_version;
    uint8_t blob[300000];
    size_t blob_length;
    uint32_t blob_type;
} events_t;

static void on_event(void *clientd, tp_metadata_event_t event, const tp_metadata_view_t *view,
    const tp_metadata_blob_t *blob)
{
    events_t *e = clientd;
    e->last_version = view->meta_version;
    if (event == TP_METADATA_ANNOUNCED)
    {
        e->announced++;
    }
    else if (event == TP_METADATA_ATTRIBUTES)
    {
        e->attributes++;
    }
    else if (event == TP_METADATA_BLOB)
    {
        assert_non_null(blob);
        e->blobs++;
        e->blob_type = blob->blob_type;
        e->blob_length = blob->length;
        memcpy(e->blob, blob->data, blob->length < sizeof(e->blob) ? blob->length : sizeof(e->blob));
    }
}

/* Poll the cache (and run the producer's duty cycle) until done(state) or the deadline. */
static void poll_until(tp_metadata_cache_t *cache, tp_producer_t *p, bool (*done)(const events_t *, uint32_t),
    const events_t *e, uint32_t arg)
{
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (!done(e, arg))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        if (p != NULL)
        {
            tp_producer_do_work(p);
        }
        if (tp_metadata_cache_poll(cache, 64) == 0)
        {
            usleep(500);
        }
    }
}

static bool version_reached(const events_t *e, uint32_t version)
{
    return e->last_version >= version && e->attributes > 0;
}

static bool blobs_reached(const events_t *e, uint32_t count)
{
    return e->blobs >= (int)count;
}

static void on_frame(void *clientd, const tp_frame_t *f)
{
    *(uint32_t *)clientd = f->meta_version;
}

static void test_producer_metadata(void **state)
{
    (void)state;
    /* covers: W-10.3.1-1, W-10.3.2-1, W-10.3.2-2, W-10.3.2-3 */
    static events_t e;
    memset(&e, 0, sizeof(e));
    tp_metadata_cache_t *cache = NULL;
    tp_assert_ok(tp_metadata_cache_open(&cache, client, on_event, &e));
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_attach(&c, client, STREAM, TIMEOUT_NS));
    tp_metadata_publisher_t *meta = tp_producer_metadata(p);
    assert_int_equal(tp_metadata_version(meta), 0);
    tp_assert_ok(tp_metadata_set_source(meta, "camera-01", "front camera, 64x64 mono"));
    tp_assert_ok(tp_metadata_set_text(meta, "pattern", "counter"));
    const uint8_t calib[4] = { 1, 2, 3, 4 };
    tp_assert_ok(tp_metadata_set_attribute(meta, "calibration", "application/octet-stream", calib, sizeof(calib)));
    assert_int_equal(tp_metadata_version(meta), 3);
    poll_until(cache, p, version_reached, &e, 3);
    tp_metadata_view_t v;
    assert_true(tp_metadata_cache_get(cache, STREAM, &v));
    assert_true(v.has_announce);
    assert_string_equal(v.name, "camera-01");
    assert_string_equal(v.summary, "front camera, 64x64 mono");
    assert_int_equal(v.epoch, tp_producer_epoch(p));
    assert_int_equal(v.meta_version, 3);
    assert_int_equal(v.attribute_count, 2);
    const tp_metadata_attribute_t *a = tp_metadata_find(&v, "pattern");
    assert_non_null(a);
    assert_string_equal(a->format, "text/plain");
    assert_int_equal(a->length, 7);
    assert_memory_equal(a->value, "counter", 7);
    a = tp_metadata_find(&v, "calibration");
    assert_non_null(a);
    assert_memory_equal(a->value, calib, sizeof(calib));
    assert_true(e.announced >= 1);
    /* A frame offered with meta_version 0 carries the version that applies to it. */
    uint8_t frame[16] = { 0 };
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, sizeof(frame));
    assert_true(tp_producer_offer_frame(p, frame, sizeof(frame), &t, 0, 0) >= 0);
    uint32_t seen_version = 0;
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_consumer_poll(c, on_frame, &seen_version, 16) == 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
    }
    assert_int_equal(seen_version, 3);
    /* Deleting an attribute is a new version without it. */
    tp_assert_ok(tp_metadata_delete_attribute(meta, "pattern"));
    poll_until(cache, p, version_reached, &e, 4);
    assert_true(tp_metadata_cache_get(cache, STREAM, &v));
    assert_int_equal(v.attribute_count, 1);
    assert_null(tp_metadata_find(&v, "pattern"));
    /* Bad input is refused with the reason and changes nothing. */
    tp_assert_fails_with(tp_metadata_set_source(meta, "", NULL), "data source name");
    tp_assert_fails_with(tp_metadata_set_text(meta, "caf\xc3\xa9", "x"), "printable ASCII");
    static uint8_t big[TP_METADATA_VALUE_MAX + 1];
    tp_assert_fails_with(tp_metadata_set_attribute(meta, "big", "application/octet-stream", big, sizeof(big)),
        "a value of 8193 bytes");
    tp_assert_fails_with(tp_metadata_delete_attribute(meta, "nope"), "no attribute 'nope'");
    assert_int_equal(tp_metadata_version(meta), 4);
    tp_consumer_close(c);
    tp_producer_close(p);
    tp_metadata_cache_close(cache);
}

static void test_late_joining_cache(void **state)
{
    (void)state;
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tp_metadata_publisher_t *meta = tp_producer_metadata(p);
    tp_assert_ok(tp_metadata_set_source(meta, "lidar", ""));
    tp_assert_ok(tp_metadata_set_text(meta, "frame_id", "lidar_top"));
    /* The cache subscribes after both changes went out: the repeats (every 50 ms here) bring it up to date. */
    static events_t e;
    memset(&e, 0, sizeof(e));
    tp_metadata_cache_t *cache = NULL;
    tp_assert_ok(tp_metadata_cache_open(&cache, client, on_event, &e));
    poll_until(cache, p, version_reached, &e, 2);
    tp_metadata_view_t v;
    assert_true(tp_metadata_cache_get(cache, STREAM, &v));
    assert_string_equal(v.name, "lidar");
    assert_non_null(tp_metadata_find(&v, "frame_id"));
    assert_false(tp_metadata_cache_get(cache, STREAM + 1, &v));
    tp_metadata_cache_close(cache);
    tp_producer_close(p);
}

/* ---- blobs, good and hostile ---- */

static tp_bus_t *inject_bus;
static tp_bus_publication_t *inject_pub;

static void inject(const uint8_t *buf, int64_t n)
{
    assert_true(n > 0);
    assert_true(tp_bus_offer(inject_pub, buf, (size_t)n) > 0);
}

static void blob_announce(uint32_t version, uint64_t total, uint64_t checksum)
{
    uint8_t buf[256];
    tp_wire_meta_blob_announce_enc_t e;
    tp_wire_meta_blob_announce_enc_begin(&e, buf, sizeof(buf));
    tp_wire_meta_blob_announce_set_stream_id(&e, STREAM);
    tp_wire_meta_blob_announce_set_meta_version(&e, version);
    tp_wire_meta_blob_announce_set_blob_type(&e, 9);
    tp_wire_meta_blob_announce_set_total_len(&e, total);
    tp_wire_meta_blob_announce_set_checksum(&e, checksum);
    inject(buf, tp_wire_meta_blob_announce_enc_finish(&e));
}

static void blob_chunk(uint32_t version, uint64_t offset, const uint8_t *data, size_t n)
{
    static uint8_t buf[TP_METADATA_BLOB_CHUNK_MAX + 256];
    tp_wire_meta_blob_chunk_enc_t e;
    tp_wire_meta_blob_chunk_enc_begin(&e, buf, sizeof(buf));
    tp_wire_meta_blob_chunk_set_stream_id(&e, STREAM);
    tp_wire_meta_blob_chunk_set_meta_version(&e, version);
    tp_wire_meta_blob_chunk_set_chunk_offset(&e, offset);
    tp_wire_meta_blob_chunk_put_bytes(&e, data, n);
    inject(buf, tp_wire_meta_blob_chunk_enc_finish(&e));
}

static void blob_complete(uint32_t version, uint64_t checksum)
{
    uint8_t buf[256];
    tp_wire_meta_blob_complete_enc_t e;
    tp_wire_meta_blob_complete_enc_begin(&e, buf, sizeof(buf));
    tp_wire_meta_blob_complete_set_stream_id(&e, STREAM);
    tp_wire_meta_blob_complete_set_meta_version(&e, version);
    tp_wire_meta_blob_complete_set_checksum(&e, checksum);
    inject(buf, tp_wire_meta_blob_complete_enc_finish(&e));
}

static void test_blobs(void **state)
{
    (void)state;
    /* covers: W-10.3.3-1, W-10.3.3-2, W-15.9-1 */
    static events_t e;
    memset(&e, 0, sizeof(e));
    tp_metadata_cache_t *cache = NULL;
    tp_assert_ok(tp_metadata_cache_open(&cache, client, on_event, &e));
    tp_metadata_publisher_t *meta = NULL;
    tp_assert_ok(tp_metadata_publisher_open(&meta, client, STREAM));
    /* 200 000 bytes: four chunks (64 KiB at most each), in order, with its CRC32C. */
    static uint8_t blob[200000];
    for (size_t i = 0; i < sizeof(blob); i++)
    {
        blob[i] = (uint8_t)(i * 7 + 3);
    }
    tp_assert_ok(tp_metadata_send_blob(meta, 42, blob, sizeof(blob)));
    poll_until(cache, NULL, blobs_reached, &e, 1);
    assert_int_equal(e.blob_type, 42);
    assert_int_equal(e.blob_length, sizeof(blob));
    assert_memory_equal(e.blob, blob, sizeof(blob));
    /* An empty blob is fine too. */
    tp_assert_ok(tp_metadata_send_blob(meta, 43, NULL, 0));
    poll_until(cache, NULL, blobs_reached, &e, 2);
    assert_int_equal(e.blob_length, 0);

    /* Hostile blobs from another publisher: each is discarded. */
    tp_assert_ok(tp_bus_init(&inject_bus, F.bus));
    tp_assert_ok(tp_bus_publication_open(&inject_pub, inject_bus, "aeron:ipc?term-length=4m", 1300, false));
    uint32_t crc = tp_crc32c(0, blob, 3000);
    blob_announce(100, 3000, crc); /* a gap: 0..1000 then 2000.. */
    blob_chunk(100, 0, blob, 1000);
    blob_chunk(100, 2000, blob + 2000, 1000);
    blob_complete(100, crc);
    blob_announce(101, 3000, crc); /* an overlap: 0..2000 then 1000.. */
    blob_chunk(101, 0, blob, 2000);
    blob_chunk(101, 1000, blob + 1000, 2000);
    blob_complete(101, crc);
    blob_announce(102, 3000, crc ^ 1); /* a checksum that does not match */
    blob_chunk(102, 0, blob, 3000);
    blob_complete(102, crc ^ 1);
    blob_announce(103, 3000, crc); /* completed before it was covered */
    blob_chunk(103, 0, blob, 2000);
    blob_complete(103, crc);
    blob_announce(104, 3000, crc); /* a chunk past the end */
    blob_chunk(104, 0, blob, 2000);
    blob_chunk(104, 2000, blob, 2000);
    blob_complete(104, crc);
    blob_announce(105, 3000, crc); /* a good one, to know everything before it was read */
    blob_chunk(105, 0, blob, 3000);
    blob_complete(105, crc);
    poll_until(cache, NULL, blobs_reached, &e, 3);
    tp_metadata_counters_t k;
    tp_metadata_cache_counters(cache, &k);
    assert_int_equal(k.blobs, 3);
    assert_int_equal(k.blobs_discarded, 5);
    assert_int_equal(e.blob_length, 3000);

    /* An older DataSourceMeta than the one held is ignored. */
    tp_assert_ok(tp_metadata_set_text(meta, "k", "v"));
    poll_until(cache, NULL, version_reached, &e, tp_metadata_version(meta));
    uint8_t buf[512];
    tp_wire_data_source_meta_enc_t m;
    tp_wire_data_source_meta_enc_begin(&m, buf, sizeof(buf));
    tp_wire_data_source_meta_set_stream_id(&m, STREAM);
    tp_wire_data_source_meta_set_meta_version(&m, 1);
    tp_wire_data_source_meta_set_timestamp_ns(&m, 0);
    tp_wire_data_source_meta_attributes_enc_t g;
    tp_wire_data_source_meta_attributes_begin(&m, &g, 0);
    tp_wire_data_source_meta_attributes_end(&g);
    inject(buf, tp_wire_data_source_meta_enc_finish(&m));
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    do
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_metadata_cache_poll(cache, 64);
        tp_metadata_cache_counters(cache, &k);
    } while (k.stale == 0);
    tp_metadata_view_t v;
    assert_true(tp_metadata_cache_get(cache, STREAM, &v));
    assert_non_null(tp_metadata_find(&v, "k"));
    tp_bus_publication_close(inject_pub);
    tp_bus_close(inject_bus);
    tp_metadata_publisher_close(meta);
    tp_metadata_cache_close(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_producer_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_joining_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blobs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
