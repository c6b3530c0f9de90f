/* Shared by the client tests that run producers and consumers on one embedded driver; see tp_client_frames.h. */
#include "tp_client_frames.h"

#include <string.h>

#include "core/tp_crc32c.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

client_fixture_t F;
tp_client_t *client;

int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "client");
    const uint16_t ids[] = { 1, 2 };
    const uint32_t strides[] = { 4096, 65536 };
    tp_assert_ok(tp_driver_context_add_profile(F.dctx, "small", 8, ids, strides, 2));
    tp_assert_ok(tp_driver_context_add_stream(F.dctx, "cam", STREAM, "small"));
    client_fixture_start(&F);
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    return 0;
}

int teardown(void **state)
{
    (void)state;
    tp_assert_ok(tp_client_close(client));
    client_fixture_close(&F);
    return 0;
}

/* A payload whose bytes depend on seq and whose last 4 bytes are its CRC32C. */
void make_payload(uint8_t *buf, uint32_t length, uint64_t seq)
{
    for (uint32_t i = 0; i + 4 < length; i++)
    {
        buf[i] = (uint8_t)(seq * 31 + i);
    }
    uint32_t crc = tp_crc32c(0, buf, length - 4);
    memcpy(buf + length - 4, &crc, 4);
}

bool payload_ok(const uint8_t *buf, uint32_t length)
{
    uint32_t crc;
    memcpy(&crc, buf + length - 4, 4);
    return tp_crc32c(0, buf, length - 4) == crc;
}



const tp_tensor_desc_t *tensor_of(uint32_t length)
{
    static tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT8;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = (int32_t)length;
    return &t;
}

void on_frame(void *clientd, const tp_frame_t *f)
{
    seen_t *s = clientd;
    s->frames++;
    s->bad += !payload_ok(f->payload, f->payload_length) || f->tensor.dims[0] != (int32_t)f->payload_length;
    s->last_seq = f->seq;
    s->epoch = f->epoch;
    s->last_pool = f->pool_id;
    s->last_meta = f->meta_version;
    s->last_trace = f->trace_id;
    s->last = *f;
    if (s->lapper != NULL)
    {
        if (s->copy_first)
        {
            s->copy_rc = tp_frame_copy_out(f, s->copy, sizeof(s->copy));
        }
        for (int i = 0; i < 8; i++)
        {
            make_payload(s->scratch, 100, 1000 + (uint64_t)i);
            tp_producer_offer_frame(s->lapper, s->scratch, 100, tensor_of(100), 0, 0);
        }
        if (!s->copy_first)
        {
            s->copy_rc = tp_frame_copy_out(f, s->copy, sizeof(s->copy));
        }
    }
    else
    {
        s->copy_rc = tp_frame_copy_out(f, s->copy, sizeof(s->copy));
    }
    s->was_intact = tp_frame_is_intact(f);
}

/* A producer, then a consumer, of STREAM (the consumer maps the producer's epoch). */
void attach_both(tp_producer_t **p, tp_consumer_t **c)
{
    tp_assert_ok(tp_producer_attach(p, client, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_attach(c, client, STREAM, TIMEOUT_NS));
}

/* A FrameDescriptor from somebody else, on the consumer's descriptor stream. */
void inject_descriptor(tp_bus_publication_t *pub, uint32_t stream, uint64_t epoch, uint64_t seq)
{
    uint8_t buf[128];
    tp_wire_frame_descriptor_enc_t e;
    tp_wire_frame_descriptor_enc_begin(&e, buf, sizeof(buf));
    tp_wire_frame_descriptor_set_stream_id(&e, stream);
    tp_wire_frame_descriptor_set_epoch(&e, epoch);
    tp_wire_frame_descriptor_set_seq(&e, seq);
    tp_wire_frame_descriptor_set_timestamp_ns(&e, UINT64_MAX);
    tp_wire_frame_descriptor_set_meta_version(&e, UINT32_MAX);
    int64_t n = tp_wire_frame_descriptor_enc_finish(&e);
    assert_true(n > 0 && tp_bus_offer(pub, buf, (size_t)n) > 0);
}
