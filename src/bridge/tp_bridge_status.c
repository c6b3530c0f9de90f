/* A bridge instance's state as JSON, for `tp bridge status`; see tp_bridge.h. */
#include <inttypes.h>
#include <unistd.h>

#include "bridge/tp_bridge.h"
#include "tensorpool/tp_common.h"

static uint32_t configured_dest(const tp_bridge_config_t *c, uint32_t source)
{
    for (uint32_t i = 0; i < c->mapping_count; i++)
    {
        if (c->mappings[i].source_stream_id == source)
        {
            return c->mappings[i].dest_stream_id;
        }
    }
    return 0;
}

static void sender_json(const tp_bridge_sender_t *s, uint32_t dest, tp_strbuf_t *out)
{
    tp_bridge_sender_counters_t k;
    tp_bridge_sender_counters(s, &k);
    tp_strbuf_printf(out,
        "{\"direction\":\"send\",\"source\":%" PRIu32 ",\"dest\":%" PRIu32 ",\"ready\":%s,\"frames_sent\":%" PRIu64
        ",\"chunks_sent\":%" PRIu64 ",\"bytes_sent\":%" PRIu64 ",\"frames_lapped\":%" PRIu64
        ",\"frames_too_large\":%" PRIu64 ",\"frames_back_pressured\":%" PRIu64 ",\"frames_unannounced\":%" PRIu64 "}",
        tp_bridge_sender_stream_id(s), dest, tp_bridge_sender_is_ready(s) ? "true" : "false", k.frames_sent, k.chunks_sent,
        k.bytes_sent, k.frames_lapped, k.frames_too_large, k.frames_back_pressured, k.frames_unannounced);
}

static void receiver_json(const tp_bridge_receiver_t *r, tp_strbuf_t *out)
{
    tp_bridge_receiver_counters_t k;
    tp_bridge_receiver_counters(r, &k);
    uint64_t epoch = 0;
    bool has_epoch = tp_bridge_receiver_source_epoch(r, &epoch);
    tp_strbuf_printf(out,
        "{\"direction\":\"receive\",\"source\":%" PRIu32 ",\"dest\":%" PRIu32 ",\"ready\":%s,\"source_epoch\":%" PRIu64
        ",\"frames_rebuilt\":%" PRIu64 ",\"bytes_rebuilt\":%" PRIu64 ",\"chunks\":%" PRIu64
        ",\"frames_no_local_pool\":%" PRIu64 ",\"frames_not_attached\":%" PRIu64 ",\"announces\":%" PRIu64
        ",\"announces_stale\":%" PRIu64 ",\"dest_reattaches\":%" PRIu64 ",\"drops\":{",
        tp_bridge_receiver_source_stream_id(r), tp_bridge_receiver_dest_stream_id(r), tp_bridge_receiver_is_ready(r) ? "true" : "false",
        has_epoch ? epoch : 0, k.frames_rebuilt, k.bytes_rebuilt, k.chunks, k.frames_no_local_pool,
        k.frames_not_attached, k.announces, k.announces_stale, k.dest_reattaches);
    for (int i = 0; i < TP_BRIDGE_DROP_KINDS; i++)
    {
        tp_strbuf_printf(out, "%s\"%s\":%" PRIu64, i > 0 ? "," : "", tp_bridge_drop_name((tp_bridge_drop_t)i),
            k.drops[i]);
    }
    tp_strbuf_puts(out, "}}");
}

void tp_bridge_status_json(const tp_bridge_t *b, tp_strbuf_t *out)
{
    tp_bridge_counters_t c;
    tp_bridge_counters(b, &c);
    tp_strbuf_printf(out,
        "{\"instance_id\":\"%s\",\"pid\":%d,\"time_ns\":%" PRId64 ",\"announces_forwarded\":%" PRIu64
        ",\"metadata_forwarded\":%" PRIu64 ",\"tracelinks_forwarded\":%" PRIu64 ",\"progress_forwarded\":%" PRIu64
        ",\"qos_forwarded\":%" PRIu64 ",\"metadata_republished\":%" PRIu64 ",\"tracelinks_republished\":%" PRIu64
        ",\"progress_republished\":%" PRIu64 ",\"qos_republished\":%" PRIu64 ",\"progress_dropped\":%" PRIu64
        ",\"control_unknown\":%" PRIu64 ",\"forward_failed\":%" PRIu64 ",\"mappings\":[",
        tp_bridge_config_of(b)->instance_id, (int)getpid(), tp_clock_realtime_ns(), c.announces_forwarded, c.metadata_forwarded,
        c.tracelinks_forwarded, c.progress_forwarded, c.qos_forwarded, c.metadata_republished,
        c.tracelinks_republished, c.progress_republished, c.qos_republished, c.progress_dropped, c.control_unknown,
        c.forward_failed);
    for (uint32_t i = 0; i < tp_bridge_sender_count(b); i++)
    {
        tp_strbuf_puts(out, i > 0 ? "," : "");
        const tp_bridge_sender_t *s = tp_bridge_sender_at(b, i);
        sender_json(s, configured_dest(tp_bridge_config_of(b), tp_bridge_sender_stream_id(s)), out);
    }
    for (uint32_t i = 0; i < tp_bridge_receiver_count(b); i++)
    {
        tp_strbuf_puts(out, i > 0 || tp_bridge_sender_count(b) > 0 ? "," : "");
        receiver_json(tp_bridge_receiver_at(b, i), out);
    }
    tp_strbuf_puts(out, "]}\n");
}
