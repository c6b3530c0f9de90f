/*
 * Per-consumer descriptor and control streams (driver spec 11, wire spec 10.1.3). A consumer holding a consumer
 * lease asks for them in ConsumerHello (a non-empty channel with a non-zero stream id); the driver answers with
 * ConsumerConfig on the control stream:
 *  - each requested stream gets an id from driver.descriptor_stream_id_range / driver.control_stream_id_range:
 *    the requested id if it lies in the range and is free, otherwise the lowest free one; the channel is echoed;
 *  - ids belong to the consumer's lease: a repeated hello gets the same ids, and they are free again once the
 *    lease ends;
 *  - a request the driver cannot grant (range unset or exhausted) is declined with an empty channel and stream id
 *    0, the wire spec's encoding (driver spec 11 would return the shared ids when the range is unset, which a
 *    consumer cannot tell from a grant; see docs/ARCHITECTURE.md). The lease itself is untouched;
 *  - a malformed request (a channel with stream id 0) declines both, as wire spec 10.1.2 requires;
 *  - a hello without any request, or from a client without a consumer lease on that stream, is not answered
 *    (the driver does not speak for producers about anything else).
 */
#include <inttypes.h>
#include <string.h>

#include "core/tp_log.h"
#include "driver/tp_driver_consumers.h"
#include "driver/tp_driver_internal.h"
#include "driver/tp_driver_send.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"

static bool consumer_stream_in_use(const tp_driver_t *d, uint32_t id, bool is_control)
{
    for (uint32_t i = 0; i < TP_DRIVER_MAX_LEASES; i++)
    {
        const tp_driver_lease_t *l = &d->leases[i];
        if (l->is_active && (is_control ? l->control_stream_id : l->descriptor_stream_id) == id)
        {
            return true;
        }
    }
    return false;
}

/* An id of range for a consumer stream, or 0 when the range is unset or exhausted. */
static uint32_t consumer_stream_allocate(const tp_driver_t *d, const tp_config_range_t *range, bool is_control,
    uint32_t requested)
{
    if (!range->is_set || range->start > range->end)
    {
        return 0;
    }
    if (tp_config_range_contains(range, requested) && !consumer_stream_in_use(d, requested, is_control))
    {
        return requested;
    }
    for (uint64_t id = range->start; id <= range->end; id++)
    {
        if (!consumer_stream_in_use(d, (uint32_t)id, is_control))
        {
            return (uint32_t)id;
        }
    }
    return 0;
}

static tp_driver_lease_t *consumer_lease(tp_driver_t *d, uint32_t client_id, uint32_t stream_id)
{
    for (uint32_t i = 0; i < TP_DRIVER_MAX_LEASES; i++)
    {
        tp_driver_lease_t *l = &d->leases[i];
        if (l->is_active && l->role == TP_DRIVER_ROLE_CONSUMER && l->client_id == client_id &&
            l->stream_id == stream_id)
        {
            return l;
        }
    }
    return NULL;
}

static void publish_consumer_config(tp_driver_t *d, uint32_t stream_id, uint32_t consumer_id, uint8_t mode,
    uint32_t descriptor_stream_id, tp_sbe_bytes_t descriptor_channel, uint32_t control_stream_id,
    tp_sbe_bytes_t control_channel)
{
    tp_wire_consumer_config_enc_t e;
    tp_wire_consumer_config_enc_begin(&e, d->scratch, TP_DRIVER_SCRATCH_BYTES);
    tp_wire_consumer_config_set_stream_id(&e, stream_id);
    tp_wire_consumer_config_set_consumer_id(&e, consumer_id);
    tp_wire_consumer_config_set_use_shm(&e, TP_WIRE_BOOL_TRUE);
    tp_wire_consumer_config_set_mode(&e, mode);
    tp_wire_consumer_config_set_descriptor_stream_id(&e, descriptor_stream_id);
    tp_wire_consumer_config_set_control_stream_id(&e, control_stream_id);
    tp_wire_consumer_config_put_payload_fallback_uri(&e, "", 0);
    /* A declined stream has an empty channel. */
    tp_wire_consumer_config_put_descriptor_channel(&e, descriptor_channel.data,
        descriptor_stream_id != 0 ? descriptor_channel.length : 0);
    tp_wire_consumer_config_put_control_channel(&e, control_channel.data,
        control_stream_id != 0 ? control_channel.length : 0);
    int64_t n = tp_wire_consumer_config_enc_finish(&e);
    if (n > 0 && tp_driver_publish(d, d->control_pub, d->scratch, n) == 0)
    {
        d->counters.consumer_configs++;
    }
}

void tp_driver_on_consumer_hello(tp_driver_t *d, const uint8_t *buffer, size_t length)
{
    tp_wire_consumer_hello_t m;
    if (tp_wire_consumer_hello_decode(&m, buffer, length) < 0)
    {
        d->counters.malformed_messages++;
        return;
    }
    uint32_t stream_id = tp_wire_consumer_hello_stream_id(&m);
    uint32_t consumer_id = tp_wire_consumer_hello_consumer_id(&m);
    tp_sbe_bytes_t descriptor_channel = tp_wire_consumer_hello_descriptor_channel(&m);
    tp_sbe_bytes_t control_channel = tp_wire_consumer_hello_control_channel(&m);
    uint32_t descriptor_request = tp_wire_consumer_hello_descriptor_stream_id(&m);
    uint32_t control_request = tp_wire_consumer_hello_control_stream_id(&m);
    bool is_malformed = (descriptor_channel.length > 0 && descriptor_request == 0) ||
        (control_channel.length > 0 && control_request == 0);
    bool wants_descriptor = descriptor_channel.length > 0 && descriptor_request != 0;
    bool wants_control = control_channel.length > 0 && control_request != 0;
    tp_driver_lease_t *lease = consumer_lease(d, consumer_id, stream_id);
    if (lease == NULL || (!is_malformed && !wants_descriptor && !wants_control))
    {
        d->counters.consumer_hellos_ignored++;
        return;
    }
    uint8_t mode = tp_wire_consumer_hello_mode(&m);
    if (!tp_wire_mode_is_valid(mode))
    {
        mode = TP_WIRE_MODE_STREAM;
    }
    if (is_malformed)
    {
        TP_LOG_I("driver", "consumer %" PRIu32 " of stream %" PRIu32 ": per-consumer stream request with a channel "
            "but stream id 0, declined", consumer_id, stream_id);
        publish_consumer_config(d, stream_id, consumer_id, mode, 0, descriptor_channel, 0, control_channel);
        return;
    }
    if (wants_descriptor && lease->descriptor_stream_id == 0)
    {
        lease->descriptor_stream_id = consumer_stream_allocate(d, &d->config.descriptor_stream_id_range, false,
            descriptor_request);
    }
    if (wants_control && lease->control_stream_id == 0)
    {
        lease->control_stream_id = consumer_stream_allocate(d, &d->config.control_stream_id_range, true,
            control_request);
    }
    d->is_status_dirty = true;
    TP_LOG_I("driver", "consumer %" PRIu32 " of stream %" PRIu32 ": descriptor stream %" PRIu32 ", control stream %"
        PRIu32 " (0: declined or not asked)", consumer_id, stream_id,
        wants_descriptor ? lease->descriptor_stream_id : 0, wants_control ? lease->control_stream_id : 0);
    publish_consumer_config(d, stream_id, consumer_id, mode, wants_descriptor ? lease->descriptor_stream_id : 0,
        descriptor_channel, wants_control ? lease->control_stream_id : 0, control_channel);
}
