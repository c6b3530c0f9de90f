/* The UDP bridge's configuration; see tp_bridge_config.h and docs/CONFIG.md. */
#include "bridge/tp_bridge_config.h"
#include "core/tp_err.h"
#include "tensorpool/tp_bus.h"

#include <stdio.h>
#include <string.h>

#define C tp_bridge_config_t

/* clang-format off */
const tp_config_field_t tp_bridge_config_fields[] = {
    TP_CFG_FIELD(C, instance_id, "bridge.instance_id", TP_CFG_STRING, "", 0, 0, true, "identifier for logs"),
    TP_CFG_FIELD(C, bus_dir, "bridge.bus_dir", TP_CFG_STRING, "", 0, 0, false,
        "local bus directory; empty = $TP_BUS_DIR or the default"),
    TP_CFG_FIELD(C, shm_base_dir, "bridge.shm_base_dir", TP_CFG_STRING, "/dev/shm", 0, 0, false,
        "where the local driver's SHM regions may lie (comma-separated)"),
    TP_CFG_FIELD(C, payload_channel, "bridge.payload_channel", TP_CFG_STRING, "", 0, 0, true,
        "UDP channel of BridgeFrameChunk"),
    TP_CFG_FIELD(C, payload_stream_id, "bridge.payload_stream_id", TP_CFG_U32, "0", 1, UINT32_MAX, true,
        "BridgeFrameChunk stream id"),
    TP_CFG_FIELD(C, control_channel, "bridge.control_channel", TP_CFG_STRING, "", 0, 0, true,
        "channel of forwarded ShmPoolAnnounce (and QoS / FrameProgress when enabled)"),
    TP_CFG_FIELD(C, control_stream_id, "bridge.control_stream_id", TP_CFG_U32, "0", 1, UINT32_MAX, true,
        "bridge control stream id"),
    TP_CFG_FIELD(C, metadata_channel, "bridge.metadata_channel", TP_CFG_STRING, "", 0, 0, false,
        "UDP channel of forwarded metadata; empty = metadata not forwarded"),
    TP_CFG_FIELD(C, metadata_stream_id, "bridge.metadata_stream_id", TP_CFG_U32, "3002", 1, UINT32_MAX, false,
        "stream id of forwarded metadata on bridge.metadata_channel"),
    TP_CFG_FIELD(C, source_metadata_stream_id, "bridge.source_metadata_stream_id", TP_CFG_U32, "1300", 1, UINT32_MAX,
        false, "local metadata stream read on the sending host"),
    TP_CFG_FIELD(C, mtu_bytes, "bridge.mtu_bytes", TP_CFG_U32, "1408", 256, 65504, false,
        "datagram size the chunks are cut for"),
    TP_CFG_FIELD(C, chunk_bytes, "bridge.chunk_bytes", TP_CFG_U32, "0", 0, 65535, false,
        "payload bytes per chunk; 0 = mtu_bytes - 128 (effective: min(chunk_bytes, mtu_bytes - 128))"),
    TP_CFG_FIELD(C, max_chunk_bytes, "bridge.max_chunk_bytes", TP_CFG_U32, "65535", 1, 65535, false,
        "hard cap on one chunk's payload"),
    TP_CFG_FIELD(C, max_payload_bytes, "bridge.max_payload_bytes", TP_CFG_U32, "1073741824", 1, 1073741824, false,
        "hard cap on one frame's payload"),
    TP_CFG_FIELD(C, integrity_crc32c, "bridge.integrity_crc32c", TP_CFG_BOOL, "false", 0, 0, false,
        "send and check CRC32C of every frame"),
    TP_CFG_FIELD(C, dest_stream_id_range, "bridge.dest_stream_id_range", TP_CFG_RANGE, "", 0, 0, false,
        "range for destination streams of mappings with dest_stream_id = 0"),
    TP_CFG_FIELD(C, forward_metadata, "bridge.forward_metadata", TP_CFG_BOOL, "true", 0, 0, false,
        "forward DataSourceAnnounce / DataSourceMeta"),
    TP_CFG_FIELD(C, forward_tracelink, "bridge.forward_tracelink", TP_CFG_BOOL, "false", 0, 0, false,
        "forward TraceLinkSet on the metadata channel"),
    TP_CFG_FIELD(C, forward_qos, "bridge.forward_qos", TP_CFG_BOOL, "false", 0, 0, false, "forward QoS messages"),
    TP_CFG_FIELD(C, forward_progress, "bridge.forward_progress", TP_CFG_BOOL, "false", 0, 0, false,
        "forward FrameProgress"),
    TP_CFG_FIELD(C, assembly_timeout_ms, "bridge.assembly_timeout_ms", TP_CFG_U32, "250", 1, 600000, false,
        "per-stream frame assembly timeout"),
    TP_CFG_FIELD(C, driver_control_channel, "bridge.driver_control_channel", TP_CFG_STRING,
        TP_BUS_DEFAULT_CHANNEL, 0, 0, false, "local driver control channel (attach of destination streams)"),
    TP_CFG_FIELD(C, driver_control_stream_id, "bridge.driver_control_stream_id", TP_CFG_U32, "1000", 1, UINT32_MAX,
        false, "local driver control stream id"),
    TP_CFG_FIELD(C, driver_announce_stream_id, "bridge.driver_announce_stream_id", TP_CFG_U32, "0", 0, UINT32_MAX,
        false, "stream of the local driver's ShmPoolAnnounce (on the control channel); 0 = the control stream"),
    TP_CFG_FIELD(C, local_metadata_channel, "bridge.local_metadata_channel", TP_CFG_STRING, TP_BUS_DEFAULT_CHANNEL,
        0, 0, false, "local channel of source_metadata_stream_id (read when sending, written when receiving)"),
    TP_CFG_FIELD(C, direction, "bridge.direction", TP_CFG_STRING, "", 0, 0, false,
        "direction of mappings that name none: send (this host reads the source) or receive"),
};
/* clang-format on */
const size_t tp_bridge_config_field_count = sizeof(tp_bridge_config_fields) / sizeof(tp_bridge_config_fields[0]);

uint32_t tp_bridge_config_chunk_bytes(const tp_bridge_config_t *c)
{
    uint32_t limit = c->mtu_bytes > 128 ? c->mtu_bytes - 128 : 1;
    uint32_t chunk = c->chunk_bytes == 0 || c->chunk_bytes > limit ? limit : c->chunk_bytes;
    return chunk > c->max_chunk_bytes ? c->max_chunk_bytes : chunk;
}

/* Which end of the mapping this host runs: the mapping's own direction, else bridge.direction, else not known yet
 * (a file shared by both hosts leaves it to `tp bridge --direction`). */
static bool load_direction(const char *direction, tp_bridge_mapping_config_t *mp, uint32_t line, const char *where,
    tp_config_report_t *r)
{
    mp->has_direction = strcmp(direction, "send") == 0 || strcmp(direction, "receive") == 0;
    mp->is_sender = direction[0] == 's';
    if (!mp->has_direction && direction[0] != '\0')
    {
        tp_config_error(r, line, where, "direction is '%s'; expected \"send\" or \"receive\"", direction);
        return false;
    }
    return true;
}

int tp_bridge_config_check_directions(const tp_bridge_config_t *c)
{
    for (uint32_t i = 0; i < c->mapping_count; i++)
    {
        if (!c->mappings[i].has_direction)
        {
            TP_SET_ERR(TP_E_CONFIG,
                "mapping %u -> %u: which end runs here? give tp bridge --direction send|receive, or set bridge.direction "
                "(TP_BRIDGE_DIRECTION) or the mapping's direction",
                c->mappings[i].source_stream_id, c->mappings[i].dest_stream_id);
            return -1;
        }
    }
    return 0;
}

static void load_mappings(tp_bridge_config_t *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    const tp_toml_value_t *m = tp_toml_get(doc, "mappings");
    if (m == NULL || m->type != TP_TOML_ARRAY || m->count == 0)
    {
        tp_config_error(r, m != NULL ? m->line : 0, "mappings",
            m == NULL ? "at least one [[mappings]] entry is required" : "must be a non-empty array of tables");
        return;
    }
    for (size_t i = 0; i < m->count; i++)
    {
        const tp_toml_value_t *e = m->members[i].value;
        char where[64];
        snprintf(where, sizeof(where), "mappings[%zu]", i);
        if (e->type != TP_TOML_TABLE || c->mapping_count == TP_BRIDGE_MAX_MAPPINGS)
        {
            tp_config_error(r, e->line, where, e->type != TP_TOML_TABLE ? "expected a table" : "too many mappings");
            continue;
        }
        tp_bridge_mapping_config_t *mp = &c->mappings[c->mapping_count];
        memset(mp, 0, sizeof(*mp));
        mp->line = e->line;
        bool ok = tp_config_get_u32(e, "source_stream_id", 1, UINT32_MAX, &mp->source_stream_id, true, where, r);
        ok &= tp_config_get_u32(e, "dest_stream_id", 0, UINT32_MAX, &mp->dest_stream_id, true, where, r);
        tp_config_get_string(e, "profile", mp->profile, sizeof(mp->profile), false, where, r);
        mp->metadata_stream_id = mp->dest_stream_id;
        tp_config_get_u32(e, "metadata_stream_id", 0, UINT32_MAX, &mp->metadata_stream_id, false, where, r);
        tp_config_get_u32(e, "source_control_stream_id", 0, UINT32_MAX, &mp->source_control_stream_id, false, where,
            r);
        tp_config_get_u32(e, "dest_control_stream_id", 0, UINT32_MAX, &mp->dest_control_stream_id, false, where, r);
        mp->source_qos_stream_id = mp->source_control_stream_id;
        mp->dest_qos_stream_id = mp->dest_control_stream_id;
        tp_config_get_u32(e, "source_qos_stream_id", 0, UINT32_MAX, &mp->source_qos_stream_id, false, where, r);
        tp_config_get_u32(e, "dest_qos_stream_id", 0, UINT32_MAX, &mp->dest_qos_stream_id, false, where, r);
        char direction[16] = "";
        tp_config_get_string(e, "direction", direction, sizeof(direction), false, where, r);
        ok &= load_direction(direction[0] != '\0' ? direction : c->direction, mp, e->line, where, r);
        static const char *const known[] = { "source_stream_id", "dest_stream_id", "profile", "metadata_stream_id",
            "source_control_stream_id", "dest_control_stream_id", "source_qos_stream_id", "dest_qos_stream_id",
            "direction", NULL };
        for (size_t k = 0; k < e->count; k++)
        {
            bool found = false;
            for (size_t j = 0; known[j] != NULL && !found; j++)
            {
                found = strcmp(known[j], e->members[k].key) == 0;
            }
            if (!found)
            {
                char full[128];
                snprintf(full, sizeof(full), "%s.%s", where, e->members[k].key);
                tp_config_warning(r, e->members[k].value->line, full, "unknown key (ignored)");
            }
        }
        if (ok)
        {
            if (mp->dest_stream_id == 0 && !c->dest_stream_id_range.is_set)
            {
                tp_config_error(r, e->line, where, "dest_stream_id 0 needs bridge.dest_stream_id_range");
            }
            c->mapping_count++;
        }
    }
}

static bool was_set(const bool *is_set, const char *key)
{
    for (size_t i = 0; i < tp_bridge_config_field_count; i++)
    {
        if (strcmp(tp_bridge_config_fields[i].key, key) == 0)
        {
            return is_set[i];
        }
    }
    return false;
}

/* Bridge spec 7.1: metadata and TraceLinkSet travel only on a configured metadata channel. forward_metadata
 * defaults to true while metadata_channel defaults to empty: the default quietly forwards nothing (with a
 * warning); asking for it explicitly without a channel fails. */
static void validate_forwarding(tp_bridge_config_t *c, const bool *is_set, tp_config_report_t *r)
{
    bool has_channel = c->metadata_channel[0] != '\0';
    c->is_metadata_forwarded = c->forward_metadata && has_channel;
    c->is_tracelink_forwarded = c->forward_tracelink && has_channel;
    if (c->forward_metadata && !has_channel)
    {
        if (was_set(is_set, "bridge.forward_metadata"))
        {
            tp_config_error(r, 0, "bridge.forward_metadata", "is true but bridge.metadata_channel is empty");
        }
        else
        {
            tp_config_warning(r, 0, "bridge.metadata_channel", "empty: metadata is not forwarded");
        }
    }
    if (c->forward_tracelink && !has_channel)
    {
        tp_config_error(r, 0, "bridge.forward_tracelink", "is true but bridge.metadata_channel is empty");
    }
    for (uint32_t i = 0; i < c->mapping_count && c->forward_progress; i++)
    {
        const tp_bridge_mapping_config_t *m = &c->mappings[i];
        if (m->source_control_stream_id == 0 || m->dest_control_stream_id == 0)
        {
            tp_config_error(r, m->line, "mappings",
                "mapping %u -> %u: forward_progress needs nonzero source_control_stream_id and dest_control_stream_id",
                m->source_stream_id, m->dest_stream_id);
        }
    }
}

/* Bridge spec 2.3: in one instance every stream id must say which mapping it belongs to, and nothing received may be
 * sent back. Chunks, announces and metadata carry the source stream id, so two mappings of one source are
 * ambiguous; two receivers of one destination would be two producers. */
static void validate_ids(const tp_bridge_config_t *c, tp_config_report_t *r)
{
    for (uint32_t i = 0; i < c->mapping_count; i++)
    {
        const tp_bridge_mapping_config_t *a = &c->mappings[i];
        for (uint32_t j = 0; j < i; j++)
        {
            const tp_bridge_mapping_config_t *b = &c->mappings[j];
            if (a->source_stream_id == b->source_stream_id)
            {
                tp_config_error(r, a->line, "mappings", "source_stream_id %u is in two mappings (chunks of one source "
                    "cannot be told apart)", a->source_stream_id);
            }
            if (a->has_direction && b->has_direction && !a->is_sender && !b->is_sender && a->dest_stream_id != 0 && a->dest_stream_id == b->dest_stream_id)
            {
                tp_config_error(r, a->line, "mappings", "dest_stream_id %u is received by two mappings",
                    a->dest_stream_id);
            }
        }
        for (uint32_t j = 0; j < c->mapping_count; j++)
        {
            const tp_bridge_mapping_config_t *b = &c->mappings[j];
            if (a->has_direction && b->has_direction && !a->is_sender && b->is_sender &&
                a->dest_stream_id == b->source_stream_id)
            {
                tp_config_error(r, a->line, "mappings",
                    "stream %u is received here (from %u) and sent from here: a feedback loop", a->dest_stream_id,
                    a->source_stream_id);
            }
        }
    }
}

/* Bridge spec 4: the bridge's own streams keep ids apart from the local control plane's (the driver's control and
 * announce streams, descriptors 1100, QoS 1200, metadata): on other channels they do not collide, but an id that
 * means two things is a trap for whoever reads a capture or a config. */
static void warn_shared_ids(const tp_bridge_config_t *c, tp_config_report_t *r)
{
    const uint32_t local[] = { c->driver_control_stream_id, c->driver_announce_stream_id, 1100, 1200,
        c->source_metadata_stream_id };
    const struct
    {
        const char *key;
        uint32_t id;
    } own[] = { { "bridge.payload_stream_id", c->payload_stream_id },
        { "bridge.control_stream_id", c->control_stream_id }, { "bridge.metadata_stream_id", c->metadata_stream_id } };
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
    {
        for (size_t k = 0; k < sizeof(local) / sizeof(local[0]); k++)
        {
            if (own[i].id != 0 && own[i].id == local[k])
            {
                tp_config_warning(r, 0, own[i].key, "%u is also a local control-plane stream id: take the bridge's "
                    "ids from a range of their own (e.g. 50000-59999)", own[i].id);
                break;
            }
        }
    }
}

static void validate(tp_bridge_config_t *c, const bool *is_set, tp_config_report_t *r)
{
    warn_shared_ids(c, r);
    const tp_config_range_t *range = &c->dest_stream_id_range;
    const uint32_t reserved[] = { c->payload_stream_id, c->control_stream_id, c->metadata_stream_id,
        c->source_metadata_stream_id, c->driver_control_stream_id, c->driver_announce_stream_id };
    for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
    {
        if (reserved[k] != 0 && tp_config_range_contains(range, reserved[k]))
        {
            tp_config_error(r, 0, "bridge.dest_stream_id_range", "%u-%u contains control/metadata stream id %u",
                range->start, range->end, reserved[k]);
        }
    }
    for (uint32_t i = 0; i < c->mapping_count; i++)
    {
        const tp_bridge_mapping_config_t *m = &c->mappings[i];
        const uint32_t ids[] = { m->dest_stream_id, m->metadata_stream_id, m->source_control_stream_id,
            m->dest_control_stream_id, m->source_qos_stream_id, m->dest_qos_stream_id };
        for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++)
        {
            /* Bridge spec 4: allocated ids stay clear of the ones configured statically. */
            if (ids[k] != 0 && tp_config_range_contains(range, ids[k]))
            {
                tp_config_error(r, m->line, "bridge.dest_stream_id_range",
                    "%u-%u contains stream id %u configured for mapping %u", range->start, range->end, ids[k],
                    m->source_stream_id);
            }
        }
    }
    validate_ids(c, r);
    validate_forwarding(c, is_set, r);
    if (c->mtu_bytes <= 128 + 64)
    {
        tp_config_error(r, 0, "bridge.mtu_bytes", "%u leaves no room for chunk payload (header needs 128)",
            c->mtu_bytes);
    }
}

int tp_bridge_config_load(tp_bridge_config_t *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    size_t before = r->error_count;
    bool is_set[sizeof(tp_bridge_config_fields) / sizeof(tp_bridge_config_fields[0])];
    static const char *const sections[] = { "mappings", NULL };
    tp_config_read(tp_bridge_config_fields, tp_bridge_config_field_count, c, sizeof(*c), doc, sections, r, is_set);
    load_mappings(c, doc, r);
    validate(c, is_set, r);
    if (r->error_count > before)
    {
        TP_SET_ERR(TP_E_CONFIG, "%zu bridge configuration error(s)", r->error_count - before);
        return -1;
    }
    return 0;
}

void tp_bridge_config_dump(const tp_bridge_config_t *c, tp_strbuf_t *out, bool json)
{
    tp_strbuf_puts(out, json ? "{" : "");
    tp_config_dump(tp_bridge_config_fields, tp_bridge_config_field_count, c, out, json);
    tp_strbuf_printf(out, json ? ",\"effective_chunk_bytes\":%u,\"mappings\":[" : "effective chunk bytes = %u\n",
        tp_bridge_config_chunk_bytes(c));
    for (uint32_t i = 0; i < c->mapping_count; i++)
    {
        const tp_bridge_mapping_config_t *m = &c->mappings[i];
        tp_strbuf_printf(out,
            json ? "%s{\"source_stream_id\":%u,\"dest_stream_id\":%u,\"profile\":\"%s\",\"metadata_stream_id\":%u,"
                   "\"source_control_stream_id\":%u,\"dest_control_stream_id\":%u}"
                 : "%smappings = {source_stream_id = %u, dest_stream_id = %u, profile = \"%s\", metadata_stream_id = "
                   "%u, source_control_stream_id = %u, dest_control_stream_id = %u}\n",
            json && i > 0 ? "," : "", m->source_stream_id, m->dest_stream_id, m->profile, m->metadata_stream_id,
            m->source_control_stream_id, m->dest_control_stream_id);
    }
    tp_strbuf_puts(out, json ? "]}" : "");
}
