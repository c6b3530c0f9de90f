/*
 * Hostile SBE input: truncation at every length, lengths and counts that run past the end, block lengths below
 * the schema's, wrong ids, unknown enum values, and random mutation. Never an out-of-bounds read (run under ASan).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp_sbe_wire.h"
#include "tp_test_util.h"

static uint8_t *load(const char *name, size_t *n)
{
    TP_TEST_REQUIRE_SHARED();
    char path[1024];
    snprintf(path, sizeof(path), "%s/vectors/sbe/%s.bin", TP_SHARED_DIR, name);
    return tp_test_read_file(path, n);
}

static void test_every_truncation_fails(void **state)
{
    (void)state;
    const char *names[] = { "shm_pool_announce", "consumer_hello", "consumer_config", "control_response",
        "data_source_announce", "data_source_meta", "qos_consumer", "qos_producer", "tensor_header",
        "sequence_map", "sequence_request", "superblock", "slot_header" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    {
        size_t n;
        uint8_t *full = load(names[i], &n);
        const tp_sbe_message_meta_t *meta = NULL;
        if (strcmp(names[i], "superblock") == 0)
        {
            meta = &tp_wire_shm_region_superblock_meta;
        }
        else if (strcmp(names[i], "slot_header") == 0)
        {
            meta = &tp_wire_slot_header_meta;
        }
        else
        {
            tp_sbe_header_t h;
            tp_assert_ok(tp_sbe_header_read(&h, full, n));
            meta = tp_sbe_message_find(h.schema_id, h.template_id);
        }
        for (size_t k = 0; k < n; k++)
        {
            /* An exact-size copy so ASan sees any read past the end. */
            uint8_t *cut = malloc(k == 0 ? 1 : k);
            memcpy(cut, full, k);
            tp_sbe_msg_view_t v;
            if (tp_sbe_decode(&v, meta, cut, k) == 0)
            {
                print_error("%s truncated to %zu of %zu bytes decoded\n", names[i], k, n);
                fail();
            }
            assert_int_equal(tp_errcode(), TP_E_MALFORMED);
            free(cut);
        }
        free(full);
    }
}

/* covers: W-16-8 */
static void test_lengths_and_counts_past_the_end(void **state)
{
    (void)state;
    size_t n;
    uint8_t *buf = load("shm_pool_announce", &n);
    tp_wire_shm_pool_announce_t a;
    /* group numInGroup at 8 + 35 + 2 */
    tp_sbe_put_u16(buf + 8 + 35 + 2, 5);
    tp_assert_fails_with(tp_wire_shm_pool_announce_decode(&a, buf, n), "group 'payloadPools' entry 1 of 5");
    assert_int_equal(tp_errcode(), TP_E_MALFORMED);
    tp_sbe_put_u16(buf + 8 + 35 + 2, 1);
    /* group entry blockLength below the schema's 10 */
    tp_sbe_put_u16(buf + 8 + 35, 9);
    tp_assert_fails_with(tp_wire_shm_pool_announce_decode(&a, buf, n), "smaller than the schema's 10");
    tp_sbe_put_u16(buf + 8 + 35, 10);
    /* trailing headerRegionUri length too large for the buffer, then beyond the schema maximum */
    size_t at = n - 4 - strlen("shm:///tmp/header");
    tp_sbe_put_u32(buf + at, 1000);
    tp_assert_fails_with(tp_wire_shm_pool_announce_decode(&a, buf, n), "headerRegionUri");
    tp_sbe_put_u32(buf + at, 1073741825u);
    tp_assert_fails_with(tp_wire_shm_pool_announce_decode(&a, buf, n), "exceeds the schema maximum");
    tp_sbe_put_u32(buf + at, (uint32_t)strlen("shm:///tmp/header"));
    tp_assert_ok(tp_wire_shm_pool_announce_decode(&a, buf, n));
    /* message blockLength below the schema's */
    tp_sbe_put_u16(buf, 34);
    tp_assert_fails_with(tp_wire_shm_pool_announce_decode(&a, buf, n), "smaller than the schema's 35");
    free(buf);
}

static void test_ids_and_versions(void **state)
{
    (void)state;
    size_t n;
    uint8_t *buf = load("qos_producer", &n);
    tp_wire_qos_producer_t q;
    tp_sbe_put_u16(buf + 4, 901);
    tp_assert_fails_with(tp_wire_qos_producer_decode(&q, buf, n), "schema id 901, expected 900");
    tp_sbe_put_u16(buf + 4, 900);
    tp_sbe_put_u16(buf + 2, 5);
    tp_assert_fails_with(tp_wire_qos_producer_decode(&q, buf, n), "template id 5, expected 6");
    tp_sbe_put_u16(buf + 2, 6);
    tp_sbe_put_u16(buf + 6, 0);
    tp_assert_fails_with(tp_wire_qos_producer_decode(&q, buf, n), "version 0 is older");
    free(buf);
}

static void test_newer_version_with_longer_block_is_skipped(void **state)
{
    (void)state;
    size_t n;
    uint8_t *old = load("shm_pool_announce", &n);
    /* Version 2 adds 6 bytes to the root block and 3 to each pool entry. */
    uint8_t buf[256];
    size_t pos = 0;
    memcpy(buf, old, 8 + 35);
    tp_sbe_put_u16(buf, 35 + 6);
    tp_sbe_put_u16(buf + 6, 2);
    pos = 8 + 35;
    memset(buf + pos, 0xAB, 6);
    pos += 6;
    tp_sbe_put_u16(buf + pos, 13);
    tp_sbe_put_u16(buf + pos + 2, 1);
    pos += 4;
    memcpy(buf + pos, old + 8 + 35 + 4, 10);
    pos += 10;
    memset(buf + pos, 0xCD, 3);
    pos += 3;
    size_t rest = n - (8 + 35 + 4 + 10);
    memcpy(buf + pos, old + 8 + 35 + 4 + 10, rest);
    pos += rest;
    tp_wire_shm_pool_announce_t a;
    tp_assert_ok(tp_wire_shm_pool_announce_decode(&a, buf, pos));
    assert_int_equal(a.v.encoded_length, pos);
    assert_int_equal(tp_wire_shm_pool_announce_header_slot_bytes(&a), 256);
    tp_wire_shm_pool_announce_payload_pools_t pools;
    assert_int_equal(tp_wire_shm_pool_announce_payload_pools(&a, &pools), 1);
    assert_true(tp_wire_shm_pool_announce_payload_pools_next(&pools));
    assert_int_equal(tp_wire_shm_pool_announce_payload_pools_stride_bytes(&pools), 1024);
    tp_sbe_bytes_t uri = tp_wire_shm_pool_announce_payload_pools_region_uri(&pools);
    assert_memory_equal(uri.data, "shm:///tmp/pool1", uri.length);
    uri = tp_wire_shm_pool_announce_header_region_uri(&a);
    assert_memory_equal(uri.data, "shm:///tmp/header", uri.length);
    free(old);
}

/* covers: D-4.2-15 */
static void test_unknown_enum_values_are_reported(void **state)
{
    (void)state;
    size_t n;
    uint8_t *buf = load("shm_pool_announce", &n);
    buf[8 + 24] = 7; /* announceClockDomain */
    tp_sbe_msg_view_t v;
    tp_assert_ok(tp_sbe_decode(&v, &tp_wire_shm_pool_announce_meta, buf, n));
    tp_assert_fails_with(tp_sbe_check_enums(&v), "'announceClockDomain' holds 7");
    free(buf);
    /* An optional enum at its null value is fine; any other undefined value is not. */
    uint8_t req[64];
    tp_sbe_msg_enc_t e;
    const tp_sbe_message_meta_t *m = tp_sbe_message_find_name("ShmAttachRequest");
    tp_sbe_enc_begin(&e, m, req, sizeof(req));
    req[8 + 16] = 1;   /* role PRODUCER */
    req[8 + 21] = 255; /* publishMode null */
    int64_t len = tp_sbe_enc_finish(&e);
    tp_assert_ok(tp_sbe_decode(&v, m, req, (size_t)len));
    tp_assert_ok(tp_sbe_check_enums(&v));
    req[8 + 21] = 3;
    tp_assert_fails_with(tp_sbe_check_enums(&v), "publishMode");
}

static void test_encoder_errors(void **state)
{
    (void)state;
    uint8_t buf[64];
    tp_wire_data_source_announce_enc_t e;
    tp_wire_data_source_announce_enc_begin(&e, buf, 20); /* smaller than header + block */
    tp_wire_data_source_announce_set_stream_id(&e, 1);  /* harmless: goes to scratch */
    tp_assert_fails_with(tp_wire_data_source_announce_enc_finish(&e), "buffer too small");
    assert_int_equal(tp_errcode(), TP_E_CAPACITY);

    tp_wire_data_source_announce_enc_begin(&e, buf, sizeof(buf));
    tp_wire_data_source_announce_put_summary(&e, "s", 1);
    tp_wire_data_source_announce_put_name(&e, "n", 1); /* out of order */
    tp_assert_fails_with(tp_wire_data_source_announce_enc_finish(&e), "out of schema order");

    tp_wire_data_source_announce_enc_begin(&e, buf, sizeof(buf));
    tp_wire_data_source_announce_put_name(&e, "0123456789012345678901234567890123456789", 40);
    tp_assert_fails_with(tp_wire_data_source_announce_enc_finish(&e), "buffer too small");

    uint8_t big[256];
    tp_wire_data_source_meta_enc_t m;
    tp_wire_data_source_meta_attributes_enc_t g;
    tp_wire_data_source_meta_enc_begin(&m, big, sizeof(big));
    tp_wire_data_source_meta_attributes_begin(&m, &g, 2);
    tp_wire_data_source_meta_attributes_enc_next(&g);
    tp_assert_fails_with(tp_wire_data_source_meta_enc_finish(&m), "fewer entries");

    tp_wire_data_source_meta_enc_begin(&m, big, sizeof(big));
    tp_wire_data_source_meta_attributes_begin(&m, &g, 1);
    tp_wire_data_source_meta_attributes_enc_next(&g);
    tp_wire_data_source_meta_attributes_enc_next(&g);
    tp_assert_fails_with(tp_wire_data_source_meta_enc_finish(&m), "more group entries");
}

static void test_random_mutations_never_crash(void **state)
{
    (void)state;
    const char *names[] = { "shm_pool_announce", "data_source_meta", "consumer_hello", "sequence_map" };
    uint64_t x = 88172645463325252ull;
    size_t decoded = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    {
        size_t n;
        uint8_t *orig = load(names[i], &n);
        for (int round = 0; round < 20000; round++)
        {
            uint8_t *buf = malloc(n);
            memcpy(buf, orig, n);
            int flips = 1 + (int)(x % 4);
            for (int f = 0; f < flips; f++)
            {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf[x % n] = (uint8_t)(x >> 32);
            }
            size_t len = (x >> 40) % 8 == 0 ? (size_t)((x >> 20) % n) : n;
            tp_sbe_header_t h;
            if (tp_sbe_header_read(&h, buf, len) == 0)
            {
                const tp_sbe_message_meta_t *meta = tp_sbe_message_find(h.schema_id, h.template_id);
                tp_sbe_msg_view_t v;
                if (meta != NULL && !meta->is_headerless && tp_sbe_decode(&v, meta, buf, len) == 0)
                {
                    tp_strbuf_t out;
                    tp_strbuf_init(&out);
                    tp_sbe_to_json(&out, &v);
                    tp_sbe_check_enums(&v);
                    assert_true(v.encoded_length <= len);
                    tp_strbuf_fini(&out);
                    decoded++;
                }
            }
            free(buf);
        }
        free(orig);
    }
    assert_true(decoded > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_truncation_fails),
        cmocka_unit_test(test_lengths_and_counts_past_the_end),
        cmocka_unit_test(test_ids_and_versions),
        cmocka_unit_test(test_newer_version_with_longer_block_is_skipped),
        cmocka_unit_test(test_unknown_enum_values_are_reported),
        cmocka_unit_test(test_encoder_errors),
        cmocka_unit_test(test_random_mutations_never_crash),
    };
    return tp_test_shared_result(cmocka_run_group_tests(tests, NULL, NULL));
}
