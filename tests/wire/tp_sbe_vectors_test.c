/*
 * Golden vectors (shared/vectors/sbe): every .bin decodes to exactly the values of its .json, consuming every byte,
 * and encoding those values gives back identical bytes. Typed accessors are checked against the same values.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tp_json.h"
#include "tp_sbe_merge.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"
#include "wire/tp_sbe.h"

static const char *vector_names[] = {
    "consumer_config", "consumer_hello", "control_response", "data_source_announce", "data_source_meta",
    "qos_consumer", "qos_producer", "sequence_map", "sequence_request", "shm_pool_announce", "slot_header",
    "superblock", "tensor_header",
};

typedef struct vector
{
    uint8_t *bin;
    size_t bin_length;
    tp_json_t *json;
} vector_t;

static void vector_load(const char *name, vector_t *v)
{
    TP_TEST_REQUIRE_SHARED();
    char path[1024];
    snprintf(path, sizeof(path), "%s/vectors/sbe/%s.bin", TP_SHARED_DIR, name);
    v->bin = tp_test_read_file(path, &v->bin_length);
    snprintf(path, sizeof(path), "%s/vectors/sbe/%s.json", TP_SHARED_DIR, name);
    size_t n;
    uint8_t *text = tp_test_read_file(path, &n);
    v->json = NULL;
    tp_assert_ok(tp_json_parse(&v->json, (const char *)text, n));
    free(text);
}

static void vector_free(vector_t *v)
{
    free(v->bin);
    tp_json_free(v->json);
}

static uint64_t json_u64(const tp_json_t *obj, const char *key)
{
    uint64_t v = 0;
    tp_assert_ok(tp_json_to_u64(tp_json_get(obj, key), &v));
    return v;
}

static void assert_fields_match(const tp_sbe_message_meta_t *meta, const tp_sbe_body_view_t *body,
    const tp_json_t *expected, const char *name)
{
    tp_strbuf_t out;
    tp_strbuf_init(&out);
    tp_sbe_fields_to_json(&out, meta, body);
    tp_json_t *actual = NULL;
    tp_assert_ok(tp_json_parse(&actual, tp_strbuf_cstr(&out), out.length));
    if (!tp_json_equal(actual, expected))
    {
        print_error("%s: decoded fields differ from the vector:\n%s\n", name, tp_strbuf_cstr(&out));
        fail();
    }
    tp_json_free(actual);
    tp_strbuf_fini(&out);
}

/* Each vector's schema, template, block length, framing (a slot and a TensorHeader without message header, both
 * little-endian at the spec's offsets), enum values, nulls and var-data order, byte for byte both ways.
 * covers: W-16-1, W-16-2, W-16-3, W-16-4, W-16-5, W-16-6, W-6-2, W-8.2-1, W-8.2-3, W-10.1-4, W-10.1-7, W-15.8-2,
 * covers: J-15-1, J-15-3, J-15-4, J-10.1-2, J-10.1-3, J-10.1-8, J-10.3-5, J-6.2.1-2 */
static void test_every_vector_decodes_and_reencodes(void **state)
{
    (void)state;
    size_t count = sizeof(vector_names) / sizeof(vector_names[0]);
    for (size_t i = 0; i < count; i++)
    {
        vector_t v;
        vector_load(vector_names[i], &v);
        const tp_json_t *msg = tp_json_get(v.json, "message");
        const tp_sbe_message_meta_t *meta = tp_sbe_message_find_name(msg->text);
        assert_non_null(meta);
        assert_int_equal(meta->schema_id, json_u64(v.json, "schema_id"));
        assert_int_equal(meta->template_id, json_u64(v.json, "template_id"));
        assert_int_equal(meta->body.block_length, json_u64(v.json, "block_length"));
        assert_int_equal(v.bin_length, json_u64(v.json, "length"));
        assert_int_equal(meta->is_headerless, strcmp(tp_json_get(v.json, "framing")->text, "headerless") == 0);

        tp_sbe_msg_view_t view;
        tp_assert_ok(tp_sbe_decode(&view, meta, v.bin, v.bin_length));
        assert_int_equal(view.encoded_length, v.bin_length); /* every byte consumed, nothing more */
        assert_int_equal(view.header.version, json_u64(v.json, "version"));
        tp_assert_ok(tp_sbe_check_enums(&view));
        assert_fields_match(meta, &view.body, tp_json_get(v.json, "fields"), vector_names[i]);

        const tp_json_t *embedded = tp_json_get(v.json, "embedded");
        if (embedded != NULL)
        {
            const tp_json_t *inner = tp_json_get(embedded, "headerBytes");
            tp_sbe_bytes_t bytes = view.body.vars[0];
            const tp_sbe_message_meta_t *inner_meta =
                tp_sbe_message_find_name(tp_json_get(inner, "message")->text);
            tp_sbe_msg_view_t inner_view;
            tp_assert_ok(tp_sbe_decode(&inner_view, inner_meta, bytes.data, bytes.length));
            assert_int_equal(inner_view.encoded_length, bytes.length);
            assert_fields_match(inner_meta, &inner_view.body, tp_json_get(inner, "fields"), "embedded");
        }

        uint8_t out[1024];
        int64_t n = tp_sbe_from_json(meta, tp_json_get(v.json, "fields"), out, sizeof(out));
        if (n < 0)
        {
            print_error("%s: %s\n", vector_names[i], tp_errmsg());
            fail();
        }
        assert_int_equal(n, v.bin_length);
        assert_memory_equal(out, v.bin, v.bin_length);
        vector_free(&v);
    }
}

static void test_json_envelope_matches_vector(void **state)
{
    (void)state;
    vector_t v;
    vector_load("slot_header", &v);
    tp_sbe_msg_view_t view;
    tp_assert_ok(tp_sbe_decode(&view, &tp_wire_slot_header_meta, v.bin, v.bin_length));
    tp_strbuf_t out;
    tp_strbuf_init(&out);
    tp_sbe_to_json(&out, &view);
    tp_json_t *actual = NULL;
    tp_assert_ok(tp_json_parse(&actual, tp_strbuf_cstr(&out), out.length));
    const char *keys[] = { "schema_id", "template_id", "message", "version", "block_length", "framing", "length",
        "fields", "embedded" };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
    {
        const tp_json_t *a = tp_json_get(actual, keys[i]);
        const tp_json_t *e = tp_json_get(v.json, keys[i]);
        if (!tp_json_equal(a, e))
        {
            print_error("key %s differs\n", keys[i]);
            fail();
        }
    }
    tp_json_free(actual);
    tp_strbuf_fini(&out);
    vector_free(&v);
}

/* The generated accessors read the vectors' values; nulls read as "not provided"; the superblock's magic is the u64
 * 0x544F504C53484D31, bytes "1MHSLPOT". covers: W-16-7, W-10.1-1, W-10.1-3, W-7.1-5 */
static void test_typed_accessors_read_the_vectors(void **state)
{
    (void)state;
    vector_t v;

    vector_load("shm_pool_announce", &v);
    tp_wire_shm_pool_announce_t a;
    tp_assert_ok(tp_wire_shm_pool_announce_decode(&a, v.bin, v.bin_length));
    assert_int_equal(tp_wire_shm_pool_announce_stream_id(&a), 1000);
    assert_int_equal(tp_wire_shm_pool_announce_producer_id(&a), 1);
    assert_int_equal(tp_wire_shm_pool_announce_epoch(&a), 1);
    assert_int_equal(tp_wire_shm_pool_announce_announce_clock_domain(&a), TP_WIRE_CLOCK_DOMAIN_MONOTONIC);
    assert_int_equal(tp_wire_shm_pool_announce_header_nslots(&a), 8);
    assert_int_equal(tp_wire_shm_pool_announce_header_slot_bytes(&a), 256);
    tp_wire_shm_pool_announce_payload_pools_t pools;
    assert_int_equal(tp_wire_shm_pool_announce_payload_pools(&a, &pools), 1);
    assert_true(tp_wire_shm_pool_announce_payload_pools_next(&pools));
    assert_int_equal(tp_wire_shm_pool_announce_payload_pools_pool_id(&pools), 1);
    assert_int_equal(tp_wire_shm_pool_announce_payload_pools_pool_nslots(&pools), 8);
    assert_int_equal(tp_wire_shm_pool_announce_payload_pools_stride_bytes(&pools), 1024);
    tp_sbe_bytes_t uri = tp_wire_shm_pool_announce_payload_pools_region_uri(&pools);
    assert_int_equal(uri.length, strlen("shm:///tmp/pool1"));
    assert_memory_equal(uri.data, "shm:///tmp/pool1", uri.length);
    assert_false(tp_wire_shm_pool_announce_payload_pools_next(&pools));
    uri = tp_wire_shm_pool_announce_header_region_uri(&a);
    assert_memory_equal(uri.data, "shm:///tmp/header", uri.length);
    vector_free(&v);

    vector_load("consumer_hello", &v);
    tp_wire_consumer_hello_t h;
    tp_assert_ok(tp_wire_consumer_hello_decode(&h, v.bin, v.bin_length));
    assert_int_equal(tp_wire_consumer_hello_supports_progress(&h), TP_WIRE_BOOL_TRUE);
    assert_false(tp_wire_consumer_hello_has_progress_interval_us(&h));
    assert_int_equal(tp_wire_consumer_hello_progress_interval_us(&h), 0xFFFFFFFFu);
    assert_int_equal(tp_wire_consumer_hello_descriptor_stream_id(&h), 1100);
    vector_free(&v);

    vector_load("qos_producer", &v);
    tp_wire_qos_producer_t q;
    tp_assert_ok(tp_wire_qos_producer_decode(&q, v.bin, v.bin_length));
    assert_true(tp_wire_qos_producer_has_watermark(&q));
    assert_int_equal(tp_wire_qos_producer_watermark(&q), 128);
    assert_int_equal(tp_wire_qos_producer_current_seq(&q), 42);
    vector_free(&v);

    vector_load("superblock", &v);
    tp_wire_shm_region_superblock_t sb;
    tp_assert_ok(tp_wire_shm_region_superblock_decode(&sb, v.bin, v.bin_length));
    assert_true(tp_wire_shm_region_superblock_magic(&sb) == UINT64_C(0x544F504C53484D31));
    assert_memory_equal(v.bin, "1MHSLPOT", 8);
    assert_int_equal(tp_wire_shm_region_superblock_region_type(&sb), TP_WIRE_REGION_TYPE_HEADER_RING);
    assert_int_equal(tp_wire_shm_region_superblock_slot_bytes(&sb), 256);
    vector_free(&v);

    vector_load("tensor_header", &v);
    tp_wire_tensor_header_t th;
    tp_assert_ok(tp_wire_tensor_header_decode(&th, v.bin, v.bin_length));
    assert_int_equal(tp_wire_tensor_header_dtype(&th), TP_WIRE_DTYPE_FLOAT32);
    assert_int_equal(tp_wire_tensor_header_max_dims(&th), 8);
    assert_int_equal(tp_wire_tensor_header_dims(&th, 0), 1);
    assert_int_equal(tp_wire_tensor_header_dims(&th, 8), 0); /* out of range reads nothing */
    vector_free(&v);

    vector_load("sequence_map", &v);
    tp_merge_sequence_merge_map_announce_t sm;
    tp_assert_ok(tp_merge_sequence_merge_map_announce_decode(&sm, v.bin, v.bin_length));
    assert_int_equal(tp_merge_sequence_merge_map_announce_out_stream_id(&sm), 2000);
    assert_true(tp_merge_sequence_merge_map_announce_has_stale_timeout_ns(&sm));
    tp_merge_sequence_merge_map_announce_rules_t rules;
    assert_int_equal(tp_merge_sequence_merge_map_announce_rules(&sm, &rules), 1);
    assert_true(tp_merge_sequence_merge_map_announce_rules_next(&rules));
    assert_int_equal(tp_merge_sequence_merge_map_announce_rules_input_stream_id(&rules), 1001);
    assert_true(tp_merge_sequence_merge_map_announce_rules_has_offset(&rules));
    assert_int_equal(tp_merge_sequence_merge_map_announce_rules_offset(&rules), 0);
    assert_false(tp_merge_sequence_merge_map_announce_rules_has_window_size(&rules));
    vector_free(&v);
}

/* The generated encoders write the vectors' bytes, an absent var-data field as length 0. covers: W-10.1-2,
 * covers: W-10.1-4 */
static void test_typed_encoder_reproduces_a_vector(void **state)
{
    (void)state;
    vector_t v;
    vector_load("data_source_meta", &v);
    uint8_t out[256];
    tp_wire_data_source_meta_enc_t e;
    tp_wire_data_source_meta_enc_begin(&e, out, sizeof(out));
    tp_wire_data_source_meta_set_stream_id(&e, 1000);
    tp_wire_data_source_meta_set_meta_version(&e, 1);
    tp_wire_data_source_meta_set_timestamp_ns(&e, 0);
    tp_wire_data_source_meta_attributes_enc_t g;
    tp_wire_data_source_meta_attributes_begin(&e, &g, 1);
    tp_wire_data_source_meta_attributes_enc_next(&g);
    tp_wire_data_source_meta_attributes_put_key(&g, "dtype", 5);
    tp_wire_data_source_meta_attributes_put_format(&g, "string", 6);
    tp_wire_data_source_meta_attributes_put_value(&g, "float32", 7);
    int64_t n = tp_wire_data_source_meta_enc_finish(&e);
    assert_int_equal(n, v.bin_length);
    assert_memory_equal(out, v.bin, v.bin_length);
    vector_free(&v);

    vector_load("consumer_config", &v);
    tp_wire_consumer_config_enc_t c;
    tp_wire_consumer_config_enc_begin(&c, out, sizeof(out));
    tp_wire_consumer_config_set_stream_id(&c, 1000);
    tp_wire_consumer_config_set_consumer_id(&c, 2);
    tp_wire_consumer_config_set_use_shm(&c, TP_WIRE_BOOL_TRUE);
    tp_wire_consumer_config_set_mode(&c, TP_WIRE_MODE_STREAM);
    tp_wire_consumer_config_set_descriptor_stream_id(&c, 1100);
    tp_wire_consumer_config_set_control_stream_id(&c, 1000);
    /* payloadFallbackUri skipped: written as length 0 (absent) */
    tp_wire_consumer_config_put_descriptor_channel(&c, "aeron:ipc", 9);
    tp_wire_consumer_config_put_control_channel(&c, "aeron:ipc", 9);
    n = tp_wire_consumer_config_enc_finish(&c);
    assert_int_equal(n, v.bin_length);
    assert_memory_equal(out, v.bin, v.bin_length);
    vector_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_vector_decodes_and_reencodes),
        cmocka_unit_test(test_json_envelope_matches_vector),
        cmocka_unit_test(test_typed_accessors_read_the_vectors),
        cmocka_unit_test(test_typed_encoder_reproduces_a_vector),
    };
    return tp_test_shared_result(cmocka_run_group_tests(tests, NULL, NULL));
}
