/*
 * Round trips for every message of every schema (generated values through JSON, encode, decode), and hand-checked
 * layouts for the messages no golden vector covers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tp_json.h"
#include "tp_sbe_bridge.h"
#include "tp_sbe_discovery.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_merge.h"
#include "tp_sbe_tracelink.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void json_value_for(tp_strbuf_t *b, const tp_sbe_field_meta_t *f)
{
    if (f->presence == TP_SBE_OPTIONAL && rng() % 3 == 0)
    {
        tp_strbuf_puts(b, "null");
        return;
    }
    if (f->enum_meta != NULL)
    {
        tp_strbuf_printf(b, "\"%s\"", f->enum_meta->names[rng() % f->enum_meta->count]);
        return;
    }
    size_t size = tp_sbe_prim_size(f->prim);
    uint64_t v = rng();
    if (size < 8)
    {
        v &= (UINT64_C(1) << (size * 8)) - 1;
    }
    if (f->presence == TP_SBE_OPTIONAL && v == f->null_bits)
    {
        v ^= 1;
    }
    switch (f->prim)
    {
    case TP_SBE_I8: tp_strbuf_printf(b, "%d", (int8_t)v); break;
    case TP_SBE_I16: tp_strbuf_printf(b, "%d", (int16_t)v); break;
    case TP_SBE_I32: tp_strbuf_printf(b, "%d", (int32_t)v); break;
    case TP_SBE_I64: tp_strbuf_printf(b, "%lld", (long long)(int64_t)v); break;
    default: tp_strbuf_printf(b, "%llu", (unsigned long long)v); break;
    }
}

static void json_body_for(tp_strbuf_t *b, const tp_sbe_body_meta_t *m, int depth)
{
    tp_strbuf_putc(b, '{');
    int first = 1;
    for (uint16_t i = 0; i < m->field_count; i++)
    {
        const tp_sbe_field_meta_t *f = &m->fields[i];
        if (f->presence == TP_SBE_CONSTANT)
        {
            continue;
        }
        tp_strbuf_printf(b, "%s\"%s\":", first ? "" : ",", f->name);
        first = 0;
        if (f->array_length > 1)
        {
            tp_strbuf_putc(b, '[');
            for (uint16_t k = 0; k < f->array_length; k++)
            {
                tp_strbuf_puts(b, k ? "," : "");
                json_value_for(b, f);
            }
            tp_strbuf_putc(b, ']');
        }
        else
        {
            json_value_for(b, f);
        }
    }
    for (uint16_t g = 0; g < m->group_count; g++)
    {
        tp_strbuf_printf(b, "%s\"%s\":[", first ? "" : ",", m->groups[g].name);
        first = 0;
        int n = (int)(rng() % (depth == 0 ? 4 : 3));
        for (int e = 0; e < n; e++)
        {
            tp_strbuf_puts(b, e ? "," : "");
            json_body_for(b, m->groups[g].body, depth + 1);
        }
        tp_strbuf_putc(b, ']');
    }
    for (uint16_t k = 0; k < m->var_count; k++)
    {
        tp_strbuf_printf(b, "%s\"%s\":\"", first ? "" : ",", m->vars[k].name);
        first = 0;
        int n = (int)(rng() % 12);
        for (int i = 0; i < n; i++)
        {
            if (m->vars[k].is_ascii)
            {
                tp_strbuf_putc(b, (char)('a' + rng() % 26));
            }
            else
            {
                tp_strbuf_printf(b, "%02x", (unsigned)(rng() & 0xFF));
            }
        }
        tp_strbuf_putc(b, '"');
    }
    tp_strbuf_putc(b, '}');
}

/* Every message of every schema, behind the 8-byte message header, var-data after the groups, through JSON, encode
 * and decode with random values. covers: W-10.1-7, Q-4.1-1, Q-5.0-1, Q-5.0-5 */
static void test_every_message_round_trips(void **state)
{
    (void)state;
    size_t messages = 0;
    for (size_t s = 0; s < tp_sbe_schema_count; s++)
    {
        const tp_sbe_schema_meta_t *schema = tp_sbe_schemas[s];
        for (uint16_t i = 0; i < schema->message_count; i++)
        {
            const tp_sbe_message_meta_t *meta = schema->messages[i];
            for (int round = 0; round < 20; round++)
            {
                tp_strbuf_t in;
                tp_strbuf_init(&in);
                json_body_for(&in, &meta->body, 0);
                tp_json_t *fields = NULL;
                tp_assert_ok(tp_json_parse(&fields, tp_strbuf_cstr(&in), in.length));
                uint8_t buf[8192];
                int64_t n = tp_sbe_from_json(meta, fields, buf, sizeof(buf));
                if (n < 0)
                {
                    print_error("%s: %s\n%s\n", meta->name, tp_errmsg(), tp_strbuf_cstr(&in));
                    fail();
                }
                tp_sbe_msg_view_t view;
                tp_assert_ok(tp_sbe_decode(&view, meta, buf, (size_t)n));
                assert_int_equal(view.encoded_length, n);
                tp_strbuf_t out;
                tp_strbuf_init(&out);
                tp_sbe_fields_to_json(&out, meta, &view.body);
                tp_json_t *back = NULL;
                tp_assert_ok(tp_json_parse(&back, tp_strbuf_cstr(&out), out.length));
                /* The decoded JSON also lists constants; compare every member the input had. */
                for (const tp_json_t *m = fields->child; m != NULL; m = m->next)
                {
                    if (!tp_json_equal(m, tp_json_get(back, m->key)))
                    {
                        print_error("%s.%s differs:\n in  %s\n out %s\n", meta->name, m->key, tp_strbuf_cstr(&in),
                            tp_strbuf_cstr(&out));
                        fail();
                    }
                }
                tp_json_free(back);
                tp_json_free(fields);
                tp_strbuf_fini(&out);
                tp_strbuf_fini(&in);
            }
            messages++;
        }
    }
    assert_int_equal(messages, 16 + 8 + 1 + 4 + 1 + 2);
}

static void test_frame_descriptor_layout_and_nulls(void **state)
{
    (void)state;
    /* covers: Q-5.0-2 (the wire schema's nulls too), W-16-7, W-10.1-1, W-10.1-2, W-10.1-3, W-10.2.1-14, T-8.1-1,
     * covers: D-4.2-12 */
    uint8_t buf[64];
    tp_wire_frame_descriptor_enc_t e;
    tp_wire_frame_descriptor_enc_begin(&e, buf, sizeof(buf));
    tp_wire_frame_descriptor_set_stream_id(&e, 10000);
    tp_wire_frame_descriptor_set_epoch(&e, 3);
    tp_wire_frame_descriptor_set_seq(&e, 77);
    tp_wire_frame_descriptor_set_timestamp_ns(&e, UINT64_MAX);
    tp_wire_frame_descriptor_set_meta_version(&e, 0xFFFFFFFFu);
    tp_wire_frame_descriptor_set_trace_id(&e, 0);
    assert_int_equal(tp_wire_frame_descriptor_enc_finish(&e), 48);
    /* header: blockLength 40, templateId 4, schemaId 900, version 1 */
    const uint8_t header[8] = { 40, 0, 4, 0, 0x84, 0x03, 1, 0 };
    assert_memory_equal(buf, header, 8);
    assert_int_equal(tp_sbe_get_u64(buf + 8 + 12), 77); /* seq @12 */
    assert_true(tp_sbe_get_u64(buf + 8 + 20) == UINT64_MAX); /* timestampNs @20, null */
    assert_int_equal(tp_sbe_get_u64(buf + 8 + 32), 0);   /* traceId @32 */
    tp_wire_frame_descriptor_t d;
    tp_assert_ok(tp_wire_frame_descriptor_decode(&d, buf, 48));
    assert_false(tp_wire_frame_descriptor_has_timestamp_ns(&d));
    assert_false(tp_wire_frame_descriptor_has_meta_version(&d));
    assert_false(tp_wire_frame_descriptor_has_trace_id(&d)); /* traceId 0 means absent */
    tp_wire_frame_descriptor_set_trace_id(&e, UINT64_MAX);
    assert_true(tp_wire_frame_descriptor_has_trace_id(&d)); /* all-ones is a legal trace id */
}

/* covers: D-4.2-15 */
static void test_driver_attach_layouts(void **state)
{
    (void)state;
    uint8_t buf[512];
    tp_driver_shm_attach_request_enc_t r;
    tp_driver_shm_attach_request_enc_begin(&r, buf, sizeof(buf));
    tp_driver_shm_attach_request_set_correlation_id(&r, -5);
    tp_driver_shm_attach_request_set_stream_id(&r, 10000);
    tp_driver_shm_attach_request_set_client_id(&r, 42);
    tp_driver_shm_attach_request_set_role(&r, TP_DRIVER_ROLE_PRODUCER);
    tp_driver_shm_attach_request_set_expected_layout_version(&r, 1);
    tp_driver_shm_attach_request_set_publish_mode(&r, 255); /* absent */
    tp_driver_shm_attach_request_set_require_hugepages(&r, TP_DRIVER_HUGEPAGES_POLICY_UNSPECIFIED);
    tp_driver_shm_attach_request_set_desired_node_id(&r, 0xFFFFFFFFu);
    assert_int_equal(tp_driver_shm_attach_request_enc_finish(&r), 8 + 27);
    assert_int_equal(buf[8 + 16], TP_DRIVER_ROLE_PRODUCER); /* role @16 */
    assert_int_equal(buf[8 + 21], 255);                     /* publishMode @21 */
    tp_driver_shm_attach_request_t ar;
    tp_assert_ok(tp_driver_shm_attach_request_decode(&ar, buf, 35));
    assert_false(tp_driver_shm_attach_request_has_publish_mode(&ar));
    assert_false(tp_driver_publish_mode_is_valid(tp_driver_shm_attach_request_publish_mode(&ar)));
    assert_int_equal(tp_driver_shm_attach_request_correlation_id(&ar), -5);

    tp_driver_shm_attach_response_enc_t a;
    tp_driver_shm_attach_response_enc_begin(&a, buf, sizeof(buf));
    tp_driver_shm_attach_response_set_code(&a, TP_DRIVER_RESPONSE_CODE_OK);
    tp_driver_shm_attach_response_set_node_id(&a, 9);
    tp_driver_shm_attach_response_payload_pools_enc_t pools;
    tp_driver_shm_attach_response_payload_pools_begin(&a, &pools, 2);
    for (int i = 0; i < 2; i++)
    {
        tp_driver_shm_attach_response_payload_pools_enc_next(&pools);
        tp_driver_shm_attach_response_payload_pools_set_pool_id(&pools, (uint16_t)(i + 1));
        tp_driver_shm_attach_response_payload_pools_put_region_uri(&pools, "shm:file?path=/dev/shm/x", 24);
    }
    tp_driver_shm_attach_response_put_header_region_uri(&a, "shm:file?path=/dev/shm/h", 24);
    int64_t n = tp_driver_shm_attach_response_enc_finish(&a);
    /* 8 + 54 + group header 4 + 2 x (10 + 4 + 24) + (4 + 24) + errorMessage (4 + 0) */
    assert_int_equal(n, 8 + 54 + 4 + 2 * 38 + 28 + 4);
    assert_int_equal(tp_sbe_get_u32(buf + 8 + 50), 9); /* nodeId @50 */
    tp_driver_shm_attach_response_t resp;
    tp_assert_ok(tp_driver_shm_attach_response_decode(&resp, buf, (size_t)n));
    assert_int_equal(tp_driver_shm_attach_response_error_message(&resp).length, 0);
}

/* Driver spec appendix A: the schema id, version and template ids, the enum encodings, and the nulls. */
static void test_driver_schema_appendix_a(void **state)
{
    (void)state;
    /* covers: D-A-1, D-A-2, D-A-3 */
    uint8_t buf[512];
    tp_driver_shm_lease_keepalive_enc_t k;
    tp_driver_shm_lease_keepalive_enc_begin(&k, buf, sizeof(buf));
    assert_true(tp_driver_shm_lease_keepalive_enc_finish(&k) > 8);
    assert_int_equal(tp_sbe_get_u16(buf + 2), 5);   /* templateId */
    assert_int_equal(tp_sbe_get_u16(buf + 4), 901); /* schemaId */
    assert_int_equal(tp_sbe_get_u16(buf + 6), 1);   /* version */
    const int templates[] = { TP_DRIVER_SHM_ATTACH_REQUEST_TEMPLATE_ID, TP_DRIVER_SHM_ATTACH_RESPONSE_TEMPLATE_ID,
        TP_DRIVER_SHM_DETACH_REQUEST_TEMPLATE_ID, TP_DRIVER_SHM_DETACH_RESPONSE_TEMPLATE_ID,
        TP_DRIVER_SHM_LEASE_KEEPALIVE_TEMPLATE_ID, TP_DRIVER_SHM_DRIVER_SHUTDOWN_TEMPLATE_ID,
        TP_DRIVER_SHM_LEASE_REVOKED_TEMPLATE_ID, TP_DRIVER_SHM_DRIVER_SHUTDOWN_REQUEST_TEMPLATE_ID };
    for (int i = 0; i < 8; i++)
    {
        assert_int_equal(templates[i], i + 1);
    }
    assert_int_equal(TP_DRIVER_HUGEPAGES_POLICY_UNSPECIFIED, 0);
    assert_int_equal(TP_DRIVER_HUGEPAGES_POLICY_STANDARD, 1);
    assert_int_equal(TP_DRIVER_HUGEPAGES_POLICY_HUGEPAGES, 2);
    assert_int_equal(TP_DRIVER_ROLE_PRODUCER, 1);
    assert_int_equal(TP_DRIVER_ROLE_CONSUMER, 2);
    assert_int_equal(TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING, 1);
    assert_int_equal(TP_DRIVER_PUBLISH_MODE_EXISTING_OR_CREATE, 2);
    assert_int_equal(TP_DRIVER_LEASE_REVOKE_REASON_DETACHED, 1);
    assert_int_equal(TP_DRIVER_LEASE_REVOKE_REASON_EXPIRED, 2);
    assert_int_equal(TP_DRIVER_LEASE_REVOKE_REASON_REVOKED, 3);
    assert_int_equal(TP_DRIVER_SHUTDOWN_REASON_NORMAL, 0);
    assert_int_equal(TP_DRIVER_SHUTDOWN_REASON_ADMIN, 1);
    assert_int_equal(TP_DRIVER_SHUTDOWN_REASON_ERROR, 2);
    assert_int_equal(TP_DRIVER_RESPONSE_CODE_OK, 0);
    assert_int_equal(TP_DRIVER_RESPONSE_CODE_INTERNAL_ERROR, 4);

    /* The code is an i32 on the wire, the role a u8: a response with code INTERNAL_ERROR and every optional field at
     * its declared null decodes as "absent" everywhere; one below each null is present. */
    for (int present = 0; present < 2; present++)
    {
        uint64_t d = (uint64_t)present;
        tp_driver_shm_attach_response_enc_t a;
        tp_driver_shm_attach_response_enc_begin(&a, buf, sizeof(buf));
        tp_driver_shm_attach_response_set_code(&a, TP_DRIVER_RESPONSE_CODE_INTERNAL_ERROR);
        tp_driver_shm_attach_response_set_lease_id(&a, UINT64_MAX - d);
        tp_driver_shm_attach_response_set_lease_expiry_timestamp_ns(&a, UINT64_MAX - d);
        tp_driver_shm_attach_response_set_stream_id(&a, (uint32_t)(UINT32_MAX - d));
        tp_driver_shm_attach_response_set_epoch(&a, UINT64_MAX - d);
        tp_driver_shm_attach_response_set_layout_version(&a, (uint32_t)(UINT32_MAX - d));
        tp_driver_shm_attach_response_set_header_nslots(&a, (uint32_t)(UINT32_MAX - d));
        tp_driver_shm_attach_response_set_header_slot_bytes(&a, (uint16_t)(UINT16_MAX - d));
        tp_driver_shm_attach_response_set_node_id(&a, (uint32_t)(UINT32_MAX - d));
        int64_t n = tp_driver_shm_attach_response_enc_finish(&a);
        assert_true(n > 0);
        assert_int_equal(tp_sbe_get_u32(buf + 8 + TP_DRIVER_SHM_ATTACH_RESPONSE_CODE_OFFSET), 4);
        tp_driver_shm_attach_response_t r;
        tp_assert_ok(tp_driver_shm_attach_response_decode(&r, buf, (size_t)n));
        bool want = present != 0;
        assert_true(tp_driver_shm_attach_response_has_lease_id(&r) == want);
        assert_true(tp_driver_shm_attach_response_has_lease_expiry_timestamp_ns(&r) == want);
        assert_true(tp_driver_shm_attach_response_has_stream_id(&r) == want);
        assert_true(tp_driver_shm_attach_response_has_epoch(&r) == want);
        assert_true(tp_driver_shm_attach_response_has_layout_version(&r) == want);
        assert_true(tp_driver_shm_attach_response_has_header_nslots(&r) == want);
        assert_true(tp_driver_shm_attach_response_has_header_slot_bytes(&r) == want);
        assert_true(tp_driver_shm_attach_response_has_node_id(&r) == want);

        tp_driver_shm_attach_request_enc_t q;
        tp_driver_shm_attach_request_enc_begin(&q, buf, sizeof(buf));
        tp_driver_shm_attach_request_set_publish_mode(&q, (uint8_t)(255 - d));
        tp_driver_shm_attach_request_set_desired_node_id(&q, (uint32_t)(UINT32_MAX - d));
        n = tp_driver_shm_attach_request_enc_finish(&q);
        tp_driver_shm_attach_request_t qr;
        tp_assert_ok(tp_driver_shm_attach_request_decode(&qr, buf, (size_t)n));
        assert_true(tp_driver_shm_attach_request_has_publish_mode(&qr) == want);
        assert_true(tp_driver_shm_attach_request_has_desired_node_id(&qr) == want);
    }
}

/* Var-data is never optional in any of our schemas: absence is length 0 (a reader cannot tell "optional" from the
 * bytes). covers: W-10.1-6, D-4.2-16, W-10.1-4, W-10.1-5, Q-5.0-3 */
static void test_var_data_is_never_optional(void **state)
{
    (void)state;
    const char *names[] = { "wire", "driver", "discovery", "bridge", "merge", "tracelink" };
    int data_fields = 0;
    for (int i = 0; i < 6; i++)
    {
        char path[1024];
        snprintf(path, sizeof(path), "%s/schemas/%s.xml", TP_SOURCE_DIR, names[i]);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static char text[1 << 17];
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        for (const char *at = strstr(text, "<data "); at != NULL; at = strstr(at + 1, "<data "))
        {
            const char *end = strchr(at, '>');
            assert_non_null(end);
            char element[512];
            size_t len = (size_t)(end - at) < sizeof(element) - 1 ? (size_t)(end - at) : sizeof(element) - 1;
            memcpy(element, at, len);
            element[len] = '\0';
            if (strstr(element, "presence") != NULL)
            {
                fail_msg("%s: %s declares a presence", path, element);
            }
            data_fields++;
        }
    }
    assert_int_equal(data_fields, 35); /* the scan found them all: wire 15, driver 8, discovery 10, bridge 2 */
}

/* covers: Q-15-2 */
static void test_discovery_response_nested_groups(void **state)
{
    (void)state;
    uint8_t buf[1024];
    tp_discovery_discovery_response_enc_t e;
    tp_discovery_discovery_response_enc_begin(&e, buf, sizeof(buf));
    tp_discovery_discovery_response_set_request_id(&e, 99);
    tp_discovery_discovery_response_set_status(&e, TP_DISCOVERY_DISCOVERY_STATUS_OK);
    tp_discovery_discovery_response_results_enc_t results;
    tp_discovery_discovery_response_results_begin(&e, &results, 2);
    for (int r = 0; r < 2; r++)
    {
        tp_discovery_discovery_response_results_enc_next(&results);
        tp_discovery_discovery_response_results_set_stream_id(&results, (uint32_t)(10000 + r));
        tp_discovery_discovery_response_results_tags_enc_t tags;
        /* payloadPools skipped on purpose: written as an empty group */
        tp_discovery_discovery_response_results_tags_begin(&results, &tags, (uint16_t)(r + 1));
        for (int t = 0; t <= r; t++)
        {
            tp_discovery_discovery_response_results_tags_enc_next(&tags);
            tp_discovery_discovery_response_results_tags_put_tag(&tags, t ? "rgb" : "camera", t ? 3 : 6);
        }
        tp_discovery_discovery_response_results_put_data_source_name(&results, "cam", 3);
    }
    int64_t n = tp_discovery_discovery_response_enc_finish(&e);
    assert_true(n > 0);
    tp_discovery_discovery_response_t d;
    tp_assert_ok(tp_discovery_discovery_response_decode(&d, buf, (size_t)n));
    tp_discovery_discovery_response_results_t it;
    assert_int_equal(tp_discovery_discovery_response_results(&d, &it), 2);
    int r = 0;
    while (tp_discovery_discovery_response_results_next(&it))
    {
        assert_int_equal(tp_discovery_discovery_response_results_stream_id(&it), 10000 + r);
        tp_discovery_discovery_response_results_payload_pools_t pools;
        assert_int_equal(tp_discovery_discovery_response_results_payload_pools(&it, &pools), 0);
        tp_discovery_discovery_response_results_tags_t tags;
        assert_int_equal(tp_discovery_discovery_response_results_tags(&it, &tags), r + 1);
        assert_true(tp_discovery_discovery_response_results_tags_next(&tags));
        tp_sbe_bytes_t tag = tp_discovery_discovery_response_results_tags_tag(&tags);
        assert_memory_equal(tag.data, "camera", 6);
        assert_int_equal(tp_discovery_discovery_response_results_data_source_name(&it).length, 3);
        assert_int_equal(tp_discovery_discovery_response_results_driver_instance_id(&it).length, 0);
        r++;
    }
    assert_int_equal(r, 2);
    /* tags groups have entry blockLength 0: each tag is a u32 length and its bytes */
    assert_int_equal(TP_DISCOVERY_DISCOVERY_RESPONSE_RESULTS_TAGS_BLOCK_LENGTH, 0);
    assert_int_equal(TP_DISCOVERY_DISCOVERY_RESPONSE_RESULTS_BLOCK_LENGTH, 39);
}

static void test_discovery_null_stream_id(void **state)
{
    (void)state;
    /* A DiscoveryRequest without a stream filter carries streamId's nullValue, 0xFFFFFFFF, on the wire; one below
     * it is a real stream id. covers: Q-5.0-2 */
    for (uint32_t d = 0; d < 2; d++)
    {
        uint8_t buf[512];
        tp_discovery_discovery_request_enc_t e;
        tp_discovery_discovery_request_enc_begin(&e, buf, sizeof(buf));
        tp_discovery_discovery_request_set_stream_id(&e, UINT32_MAX - d);
        int64_t n = tp_discovery_discovery_request_enc_finish(&e);
        assert_true(n > 0);
        assert_true(tp_sbe_get_u32(buf + 8 + TP_DISCOVERY_DISCOVERY_REQUEST_STREAM_ID_OFFSET) == UINT32_MAX - d);
        tp_discovery_discovery_request_t m;
        tp_assert_ok(tp_discovery_discovery_request_decode(&m, buf, (size_t)n));
        assert_true(tp_discovery_discovery_request_has_stream_id(&m) == (d == 1));
    }
}

/* Block lengths, field offsets, schema, template and enum values against the specs' tables.
 * covers: W-16-2, Q-10-4, Q-15-1, B-11-1, B-11-2, J-15-1, J-15-2, J-15-4, J-10.4-2, J-10.4-3, J-10.5-1,
 * covers: J-6.3.1-1, T-9.1-1, T-9.2-1, T-16-1 */
static void test_block_lengths_match_the_schemas(void **state)
{
    (void)state;
    /* Values hand-computed from the spec field tables (shared/vectors/sbe/README.md lists them too). */
    assert_int_equal(TP_WIRE_FRAME_DESCRIPTOR_BLOCK_LENGTH, 40);
    assert_int_equal(TP_WIRE_FRAME_PROGRESS_BLOCK_LENGTH, 29);
    assert_int_equal(TP_WIRE_FRAME_PROGRESS_STATE_OFFSET, 28);
    assert_int_equal(TP_DRIVER_SHM_ATTACH_REQUEST_BLOCK_LENGTH, 27);
    assert_int_equal(TP_DRIVER_SHM_ATTACH_RESPONSE_BLOCK_LENGTH, 54);
    assert_int_equal(TP_DRIVER_SHM_DETACH_REQUEST_BLOCK_LENGTH, 25);
    assert_int_equal(TP_DRIVER_SHM_DETACH_RESPONSE_BLOCK_LENGTH, 12);
    assert_int_equal(TP_DRIVER_SHM_LEASE_KEEPALIVE_BLOCK_LENGTH, 25);
    assert_int_equal(TP_DRIVER_SHM_DRIVER_SHUTDOWN_BLOCK_LENGTH, 9);
    assert_int_equal(TP_DRIVER_SHM_LEASE_REVOKED_BLOCK_LENGTH, 26);
    assert_int_equal(TP_DRIVER_SHM_DRIVER_SHUTDOWN_REQUEST_BLOCK_LENGTH, 9);
    assert_int_equal(TP_BRIDGE_BRIDGE_FRAME_CHUNK_BLOCK_LENGTH, 53);
    assert_int_equal(TP_BRIDGE_BRIDGE_FRAME_CHUNK_TRACE_ID_OFFSET, 20);
    assert_int_equal(TP_BRIDGE_BRIDGE_FRAME_CHUNK_HEADER_INCLUDED_OFFSET, 52);
    assert_int_equal(TP_MERGE_TIMESTAMP_MERGE_MAP_ANNOUNCE_BLOCK_LENGTH, 29);
    assert_int_equal(TP_MERGE_TIMESTAMP_MERGE_MAP_ANNOUNCE_RULES_BLOCK_LENGTH, 22);
    assert_int_equal(TP_MERGE_SEQUENCE_MERGE_MAP_REQUEST_BLOCK_LENGTH, 12);
    assert_int_equal(TP_MERGE_TIMESTAMP_MERGE_MAP_REQUEST_BLOCK_LENGTH, 12);
    assert_int_equal(TP_TRACELINK_TRACE_LINK_SET_BLOCK_LENGTH, 28);
    assert_int_equal(TP_TRACELINK_TRACE_LINK_SET_PARENTS_BLOCK_LENGTH, 8);
    assert_int_equal(TP_DISCOVERY_DISCOVERY_REQUEST_BLOCK_LENGTH, 32);
    assert_int_equal(TP_DISCOVERY_DISCOVERY_RESPONSE_BLOCK_LENGTH, 9);
    assert_int_equal(TP_WIRE_META_BLOB_ANNOUNCE_BLOCK_LENGTH, 28);
    assert_int_equal(TP_WIRE_META_BLOB_CHUNK_BLOCK_LENGTH, 16);
    assert_int_equal(TP_WIRE_META_BLOB_COMPLETE_BLOCK_LENGTH, 16);
    assert_int_equal(TP_WIRE_META_BLOB_ANNOUNCE_TEMPLATE_ID, 10);
    assert_int_equal(TP_WIRE_META_BLOB_CHUNK_TEMPLATE_ID, 12);
    assert_int_equal(TP_WIRE_META_BLOB_COMPLETE_TEMPLATE_ID, 13);
    assert_int_equal(TP_WIRE_FRAME_PROGRESS_TEMPLATE_ID, 11);
    assert_int_equal(TP_DISCOVERY_SCHEMA_ID, 910);
    assert_int_equal(TP_TRACELINK_SCHEMA_ID, 904);
    assert_int_equal(TP_BRIDGE_SCHEMA_ID, 902);
    assert_int_equal(TP_MERGE_SCHEMA_ID, 903);
    assert_int_equal(TP_DRIVER_SCHEMA_ID, 901);
    /* merge enums are u8 with the spec's values; offsetNs a signed 64-bit field of 8 bytes (6 to 14) */
    assert_int_equal(TP_MERGE_MERGE_RULE_TYPE_OFFSET, 0);
    assert_int_equal(TP_MERGE_MERGE_RULE_TYPE_WINDOW, 1);
    assert_int_equal(TP_MERGE_MERGE_TIME_RULE_TYPE_OFFSET_NS, 0);
    assert_int_equal(TP_MERGE_MERGE_TIME_RULE_TYPE_WINDOW_NS, 1);
    assert_int_equal(TP_MERGE_TIMESTAMP_SOURCE_FRAME_DESCRIPTOR, 1);
    assert_int_equal(TP_MERGE_TIMESTAMP_SOURCE_SLOT_HEADER, 2);
    assert_int_equal(TP_MERGE_CLOCK_DOMAIN_MONOTONIC, 1);
    assert_int_equal(TP_MERGE_CLOCK_DOMAIN_REALTIME_SYNCED, 2);
    assert_int_equal(TP_MERGE_TIMESTAMP_MERGE_MAP_ANNOUNCE_RULES_TIMESTAMP_SOURCE_OFFSET -
                         TP_MERGE_TIMESTAMP_MERGE_MAP_ANNOUNCE_RULES_RULE_TYPE_OFFSET,
        1);
    assert_int_equal(TP_MERGE_TIMESTAMP_MERGE_MAP_ANNOUNCE_RULES_WINDOW_NS_OFFSET -
                         TP_MERGE_TIMESTAMP_MERGE_MAP_ANNOUNCE_RULES_OFFSET_NS_OFFSET,
        8);
    int64_t offset_ns = -5;
    uint8_t rule[64] = { 0 };
    tp_sbe_put_i64(rule + TP_MERGE_TIMESTAMP_MERGE_MAP_ANNOUNCE_RULES_OFFSET_NS_OFFSET, offset_ns);
    assert_true(tp_sbe_get_i64(rule + TP_MERGE_TIMESTAMP_MERGE_MAP_ANNOUNCE_RULES_OFFSET_NS_OFFSET) == -5);
}

static void test_discovery_schema_version_constant(void **state)
{
    (void)state;
    /* The discovery schema carries its version as a constant for generated code and diagnostics; it is the version
     * every encoded message's header states (the header is what readers check). covers: Q-10-3s */
    assert_int_equal(TP_DISCOVERY_DISCOVERY_SCHEMA_VERSION, TP_DISCOVERY_SCHEMA_VERSION);
    uint8_t buf[256];
    tp_discovery_discovery_request_enc_t e;
    tp_discovery_discovery_request_enc_begin(&e, buf, sizeof(buf));
    tp_discovery_discovery_request_tags_enc_t t;
    tp_discovery_discovery_request_tags_begin(&e, &t, 0);
    tp_discovery_discovery_request_tags_end(&t);
    tp_discovery_discovery_request_put_response_channel(&e, "", 0);
    tp_discovery_discovery_request_put_data_source_name(&e, "", 0);
    assert_true(tp_discovery_discovery_request_enc_finish(&e) > 0);
    uint16_t version;
    memcpy(&version, buf + 6, 2);
    assert_int_equal(version, TP_DISCOVERY_DISCOVERY_SCHEMA_VERSION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_message_round_trips),
        cmocka_unit_test(test_frame_descriptor_layout_and_nulls),
        cmocka_unit_test(test_discovery_null_stream_id),
        cmocka_unit_test(test_driver_attach_layouts),
        cmocka_unit_test(test_driver_schema_appendix_a),
        cmocka_unit_test(test_var_data_is_never_optional),
        cmocka_unit_test(test_discovery_response_nested_groups),
        cmocka_unit_test(test_block_lengths_match_the_schemas),
        cmocka_unit_test(test_discovery_schema_version_constant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
