/* The rate limiter's configuration; see tp_ratelimit_config.h and docs/CONFIG.md. */
#include "ratelimit/tp_ratelimit_config.h"

#include <stdio.h>
#include <string.h>

#define C tp_ratelimit_config_t

/* clang-format off */
const tp_config_field_t tp_ratelimit_config_fields[] = {
    TP_CFG_FIELD(C, instance_id, "rate_limiter.instance_id", TP_CFG_STRING, "", 0, 0, true, "identifier for logs"),
    TP_CFG_FIELD(C, aeron_dir, "rate_limiter.aeron_dir", TP_CFG_STRING, "", 0, 0, false,
        "accepted for compatibility; unused"),
    TP_CFG_FIELD(C, aeron_uri, "rate_limiter.aeron_uri", TP_CFG_STRING, "", 0, 0, false,
        "accepted for compatibility; unused"),
    TP_CFG_FIELD(C, bus_dir, "rate_limiter.bus_dir", TP_CFG_STRING, "", 0, 0, false,
        "bus directory; empty = $TP_BUS_DIR or the default"),
    TP_CFG_FIELD(C, shm_base_dir, "rate_limiter.shm_base_dir", TP_CFG_STRING, "/dev/shm", 0, 0, false,
        "base directory for SHM validation"),
    TP_CFG_FIELD(C, driver_control_channel, "rate_limiter.driver_control_channel", TP_CFG_STRING, NULL, 0, 0, false,
        "driver control channel for attach; default: rate_limiter.control_channel"),
    TP_CFG_FIELD(C, driver_control_stream_id, "rate_limiter.driver_control_stream_id", TP_CFG_U32, NULL, 1,
        UINT32_MAX, false, "driver control stream id; default: rate_limiter.control_stream_id"),
    TP_CFG_FIELD(C, descriptor_channel, "rate_limiter.descriptor_channel", TP_CFG_STRING, "", 0, 0, true,
        "local channel of the destination FrameDescriptors"),
    TP_CFG_FIELD(C, descriptor_stream_id, "rate_limiter.descriptor_stream_id", TP_CFG_U32, "0", 1, UINT32_MAX, true,
        "destination descriptor stream id"),
    TP_CFG_FIELD(C, control_channel, "rate_limiter.control_channel", TP_CFG_STRING, "aeron:ipc?term-length=1m", 0, 0,
        false, "local control channel (forwarded FrameProgress)"),
    TP_CFG_FIELD(C, control_stream_id, "rate_limiter.control_stream_id", TP_CFG_U32, "1000", 1, UINT32_MAX, false,
        "local control stream id"),
    TP_CFG_FIELD(C, qos_channel, "rate_limiter.qos_channel", TP_CFG_STRING, "aeron:ipc?term-length=1m", 0, 0, false,
        "local QoS channel"),
    TP_CFG_FIELD(C, qos_stream_id, "rate_limiter.qos_stream_id", TP_CFG_U32, "1200", 1, UINT32_MAX, false,
        "local QoS stream id"),
    TP_CFG_FIELD(C, metadata_channel, "rate_limiter.metadata_channel", TP_CFG_STRING, "aeron:ipc?term-length=1m", 0,
        0, false, "local metadata channel"),
    TP_CFG_FIELD(C, metadata_stream_id, "rate_limiter.metadata_stream_id", TP_CFG_U32, "1300", 1, UINT32_MAX, false,
        "local metadata stream id"),
    TP_CFG_FIELD(C, forward_metadata, "rate_limiter.forward_metadata", TP_CFG_BOOL, "true", 0, 0, false,
        "forward DataSourceAnnounce / DataSourceMeta"),
    TP_CFG_FIELD(C, forward_progress, "rate_limiter.forward_progress", TP_CFG_BOOL, "false", 0, 0, false,
        "forward FrameProgress (needs source/dest control stream ids)"),
    TP_CFG_FIELD(C, forward_qos, "rate_limiter.forward_qos", TP_CFG_BOOL, "false", 0, 0, false,
        "forward QoS (needs source/dest QoS stream ids)"),
    TP_CFG_FIELD(C, max_rate_hz, "rate_limiter.max_rate_hz", TP_CFG_U32, "0", 0, 1000000, false,
        "fallback publish rate when no ConsumerHello.max_rate_hz is known; 0 = unlimited"),
    TP_CFG_FIELD(C, source_control_stream_id, "rate_limiter.source_control_stream_id", TP_CFG_U32, "0", 0,
        UINT32_MAX, false, "source control stream for FrameProgress; 0 = disabled"),
    TP_CFG_FIELD(C, dest_control_stream_id, "rate_limiter.dest_control_stream_id", TP_CFG_U32, "0", 0, UINT32_MAX,
        false, "destination control stream for FrameProgress; 0 = disabled"),
    TP_CFG_FIELD(C, source_qos_stream_id, "rate_limiter.source_qos_stream_id", TP_CFG_U32, "0", 0, UINT32_MAX, false,
        "source QoS stream; 0 = disabled"),
    TP_CFG_FIELD(C, dest_qos_stream_id, "rate_limiter.dest_qos_stream_id", TP_CFG_U32, "0", 0, UINT32_MAX, false,
        "destination QoS stream; 0 = disabled"),
};
/* clang-format on */
const size_t tp_ratelimit_config_field_count =
    sizeof(tp_ratelimit_config_fields) / sizeof(tp_ratelimit_config_fields[0]);

static void load_mappings(tp_ratelimit_config_t *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    const tp_toml_value_t *m = tp_toml_get(doc, "mappings");
    if (m == NULL || m->type != TP_TOML_ARRAY || m->count == 0)
    {
        tp_config_error(r, m != NULL ? m->line : 0, "mappings",
            m == NULL ? "at least one [[mappings]] entry is required" : "must be a non-empty array of tables");
        return;
    }
    for (size_t i = 0; i < m->count && c->mapping_count < TP_RATELIMIT_MAX_MAPPINGS; i++)
    {
        const tp_toml_value_t *e = m->members[i].value;
        char where[64];
        snprintf(where, sizeof(where), "mappings[%zu]", i);
        if (e->type != TP_TOML_TABLE)
        {
            tp_config_error(r, e->line, where, "expected a table");
            continue;
        }
        tp_ratelimit_mapping_config_t *mp = &c->mappings[c->mapping_count];
        memset(mp, 0, sizeof(*mp));
        mp->line = e->line;
        bool ok = tp_config_get_u32(e, "source_stream_id", 1, UINT32_MAX, &mp->source_stream_id, true, where, r);
        ok &= tp_config_get_u32(e, "dest_stream_id", 1, UINT32_MAX, &mp->dest_stream_id, true, where, r);
        mp->max_rate_hz = c->max_rate_hz;
        tp_config_get_u32(e, "max_rate_hz", 0, 1000000, &mp->max_rate_hz, false, where, r);
        mp->metadata_stream_id = mp->dest_stream_id;
        tp_config_get_u32(e, "metadata_stream_id", 0, UINT32_MAX, &mp->metadata_stream_id, false, where, r);
        if (ok && mp->source_stream_id == mp->dest_stream_id)
        {
            tp_config_error(r, e->line, where, "source and destination are the same stream %u", mp->source_stream_id);
            ok = false;
        }
        if (ok)
        {
            c->mapping_count++;
        }
    }
}

int tp_ratelimit_config_load(tp_ratelimit_config_t *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    size_t before = r->error_count;
    bool is_set[sizeof(tp_ratelimit_config_fields) / sizeof(tp_ratelimit_config_fields[0])];
    static const char *const sections[] = { "mappings", NULL };
    tp_config_read(tp_ratelimit_config_fields, tp_ratelimit_config_field_count, c, sizeof(*c), doc, sections, r,
        is_set);
    for (size_t i = 0; i < tp_ratelimit_config_field_count; i++)
    {
        /* Derived defaults: the driver's control endpoint is ours unless given. */
        const tp_config_field_t *f = &tp_ratelimit_config_fields[i];
        if (!is_set[i] && strcmp(f->key, "rate_limiter.driver_control_channel") == 0)
        {
            snprintf(c->driver_control_channel, sizeof(c->driver_control_channel), "%s", c->control_channel);
        }
        if (!is_set[i] && strcmp(f->key, "rate_limiter.driver_control_stream_id") == 0)
        {
            c->driver_control_stream_id = c->control_stream_id;
        }
    }
    /* Rate limiter spec 8: forwarding never starts while its stream ids are 0. */
    if (c->forward_progress && (c->source_control_stream_id == 0 || c->dest_control_stream_id == 0))
    {
        tp_config_error(r, 0, "rate_limiter.forward_progress",
            "needs non-zero rate_limiter.source_control_stream_id and dest_control_stream_id");
    }
    if (c->forward_qos && (c->source_qos_stream_id == 0 || c->dest_qos_stream_id == 0))
    {
        tp_config_error(r, 0, "rate_limiter.forward_qos",
            "needs non-zero rate_limiter.source_qos_stream_id and dest_qos_stream_id");
    }
    if (c->shm_base_dir[0] != '/')
    {
        tp_config_error(r, 0, "rate_limiter.shm_base_dir", "'%s' is not an absolute path", c->shm_base_dir);
    }
    load_mappings(c, doc, r);
    if (r->error_count > before)
    {
        TP_SET_ERR(TP_E_CONFIG, "%zu rate limiter configuration error(s)", r->error_count - before);
        return -1;
    }
    return 0;
}

void tp_ratelimit_config_dump(const tp_ratelimit_config_t *c, tp_strbuf_t *out, bool json)
{
    tp_strbuf_puts(out, json ? "{" : "");
    tp_config_dump(tp_ratelimit_config_fields, tp_ratelimit_config_field_count, c, out, json);
    tp_strbuf_puts(out, json ? ",\"mappings\":[" : "");
    for (uint32_t i = 0; i < c->mapping_count; i++)
    {
        const tp_ratelimit_mapping_config_t *m = &c->mappings[i];
        tp_strbuf_printf(out,
            json ? "%s{\"source_stream_id\":%u,\"dest_stream_id\":%u,\"max_rate_hz\":%u,\"metadata_stream_id\":%u}"
                 : "%smappings = {source_stream_id = %u, dest_stream_id = %u, max_rate_hz = %u, metadata_stream_id = "
                   "%u}\n",
            json && i > 0 ? "," : "", m->source_stream_id, m->dest_stream_id, m->max_rate_hz, m->metadata_stream_id);
    }
    tp_strbuf_puts(out, json ? "]}" : "");
}
