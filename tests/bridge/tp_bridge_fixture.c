/* What the bridge tests share; see tp_bridge_fixture.h. */
#include "tp_bridge_fixture.h"

#include <stdio.h>
#include <string.h>

#include "tp_test_util.h"

static int load_config(void *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    return tp_bridge_config_load(c, doc, r);
}

/* A bridge configuration for one end: both ends name the same channels (the receiver's endpoint). */
void bridge_fixture_config(tp_bridge_config_t *c, const char *endpoint, const char *direction, const char *options,
    const char *mappings)
{
    char text[8192];
    snprintf(text, sizeof(text),
        "[bridge]\ninstance_id = \"%s\"\ndirection = \"%s\"\npayload_channel = \"%s\"\npayload_stream_id = 50100\n"
        "control_channel = \"%s\"\ncontrol_stream_id = 50101\nmetadata_channel = \"%s\"\nmetadata_stream_id = 50102\n"
        "integrity_crc32c = true\n%s\n%s",
        direction, direction, endpoint, endpoint, endpoint, options, mappings);
    tp_config_report_t r;
    tp_assert_ok(tp_test_config_load(load_config, c, "bridge.toml", text, &r));
    tp_config_report_fini(&r);
}

uint32_t bridge_fixture_size_of(uint64_t seq)
{
    return 1 + (uint32_t)((seq * 7919) % (200 * 1024)); /* 1 B to 200 KiB: some fit no pool of B */
}

static void make_payload(uint8_t *buf, uint32_t length, uint64_t seq)
{
    for (uint32_t i = 0; i < length; i++)
    {
        buf[i] = (uint8_t)(seq * 31 + i * 3);
    }
}

static void tensor_of(tp_tensor_desc_t *t, uint32_t length)
{
    memset(t, 0, sizeof(*t));
    t->dtype = TP_DTYPE_UINT8;
    t->major_order = TP_MAJOR_ORDER_ROW;
    t->ndims = 1;
    t->dims[0] = (int32_t)length;
}

void bridge_fixture_on_frame(void *clientd, const tp_frame_t *f)
{
    seen_t *s = clientd;
    static uint8_t expect[SRC_STRIDE];
    make_payload(expect, f->payload_length, f->seq);
    bool is_bad = f->payload_length != bridge_fixture_size_of(f->seq) ||
        memcmp(expect, f->payload, f->payload_length) != 0 || f->trace_id != 0x5000 + f->seq || f->timestamp_ns != 1000 + f->seq || f->meta_version != 4 ||
        f->tensor.dims[0] != (int32_t)f->payload_length;
    bool is_wrong_pool = f->pool_id != (f->payload_length <= SMALL_STRIDE ? 5 : 6);
    if (!tp_frame_is_intact(f))
    {
        return;
    }
    if (f->epoch != s->last_epoch)
    {
        s->epochs++;
        s->last_epoch = f->epoch;
    }
    else if (f->seq <= s->last_seq)
    {
        s->bad++; /* a seq went back within one epoch */
    }
    s->bad += is_bad;
    s->wrong_pool += is_wrong_pool;
    s->last_seq = f->seq;
    s->frames++;
}

/* Offer the source's next frame (copy path, or claim + progress + commit for every 8th); true when it went. */
bool bridge_fixture_offer(tp_producer_t *source)
{
    uint64_t seq = tp_producer_next_seq(source);
    static uint8_t payload[SRC_STRIDE];
    uint32_t length = bridge_fixture_size_of(seq);
    make_payload(payload, length, seq);
    tp_tensor_desc_t t;
    tensor_of(&t, length);
    if (seq % 8 != 3)
    {
        return tp_producer_offer_frame_at(source, payload, length, &t, 4, 0x5000 + seq, 1000 + seq) >= 0;
    }
    tp_claim_t claim;
    if (tp_producer_try_claim_by_size(source, length, &claim) != 0)
    {
        return false;
    }
    memcpy(claim.buffer, payload, length);
    claim.timestamp_ns = 1000 + seq;
    tp_assert_ok(tp_producer_describe(source, &claim, length, &t, 4));
    assert_true(tp_producer_progress(source, &claim, length / 2) >= 0);
    return tp_producer_commit(source, &claim, length, &t, 4, 0x5000 + seq) >= 0;
}

