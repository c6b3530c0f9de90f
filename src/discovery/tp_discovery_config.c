/* The discovery registry's configuration; see tp_discovery_config.h and docs/CONFIG.md. */
#include "discovery/tp_discovery_config.h"
#include "tensorpool/tp_bus.h"

#include <stdio.h>
#include <string.h>

#define C tp_discovery_config_t

/* clang-format off */
const tp_config_field_t tp_discovery_config_fields[] = {
    TP_CFG_FIELD(C, instance_id, "discovery.instance_id", TP_CFG_STRING, "discovery-01", 0, 0, false,
        "identifier for logs"),
    TP_CFG_FIELD(C, bus_dir, "discovery.bus_dir", TP_CFG_STRING, "", 0, 0, false,
        "bus directory; empty = $TP_BUS_DIR or the default"),
    TP_CFG_FIELD(C, channel, "discovery.channel", TP_CFG_STRING, "aeron:ipc?term-length=1m", 0, 0, false,
        "channel of discovery requests (aeron:udp?endpoint=... for a fleet registry)"),
    TP_CFG_FIELD(C, stream_id, "discovery.stream_id", TP_CFG_U32, "7000", 1, UINT32_MAX, false,
        "discovery request stream id"),
    TP_CFG_FIELD(C, announce_period_ms, "discovery.announce_period_ms", TP_CFG_U32, "1000", 10, 60000, false,
        "the drivers' announce period; entries expire after 3x this without a ShmPoolAnnounce"),
    TP_CFG_FIELD(C, max_results, "discovery.max_results", TP_CFG_U32, "1000", 1, 1000, false,
        "cap on results per response"),
};
/* clang-format on */
const size_t tp_discovery_config_field_count =
    sizeof(tp_discovery_config_fields) / sizeof(tp_discovery_config_fields[0]);

static void load_drivers(tp_discovery_config_t *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    const tp_toml_value_t *d = tp_toml_get(doc, "drivers");
    if (d == NULL || d->type != TP_TOML_ARRAY || d->count == 0)
    {
        tp_config_error(r, d != NULL ? d->line : 0, "drivers",
            "at least one [[drivers]] entry is required (the drivers whose streams the registry indexes)");
        return;
    }
    for (size_t i = 0; i < d->count && c->driver_count < TP_DISCOVERY_MAX_DRIVERS; i++)
    {
        const tp_toml_value_t *e = d->members[i].value;
        char where[64];
        snprintf(where, sizeof(where), "drivers[%zu]", i);
        if (e->type != TP_TOML_TABLE)
        {
            tp_config_error(r, e->line, where, "expected a table");
            continue;
        }
        tp_discovery_driver_config_t *dc = &c->drivers[c->driver_count];
        memset(dc, 0, sizeof(*dc));
        dc->line = e->line;
        snprintf(dc->control_channel, sizeof(dc->control_channel), "%s", TP_BUS_DEFAULT_CHANNEL);
        dc->control_stream_id = 1000;
        dc->metadata_stream_id = 1300;
        bool ok = tp_config_get_string(e, "instance_id", dc->instance_id, sizeof(dc->instance_id), true, where, r);
        tp_config_get_string(e, "control_channel", dc->control_channel, sizeof(dc->control_channel), false, where, r);
        tp_config_get_u32(e, "control_stream_id", 1, UINT32_MAX, &dc->control_stream_id, false, where, r);
        memcpy(dc->announce_channel, dc->control_channel, sizeof(dc->announce_channel));
        dc->announce_stream_id = dc->control_stream_id;
        tp_config_get_string(e, "announce_channel", dc->announce_channel, sizeof(dc->announce_channel), false, where,
            r);
        tp_config_get_u32(e, "announce_stream_id", 1, UINT32_MAX, &dc->announce_stream_id, false, where, r);
        memcpy(dc->metadata_channel, dc->control_channel, sizeof(dc->metadata_channel));
        tp_config_get_string(e, "metadata_channel", dc->metadata_channel, sizeof(dc->metadata_channel), false, where,
            r);
        tp_config_get_u32(e, "metadata_stream_id", 1, UINT32_MAX, &dc->metadata_stream_id, false, where, r);
        for (uint32_t j = 0; ok && j < c->driver_count; j++)
        {
            if (strcmp(c->drivers[j].instance_id, dc->instance_id) == 0)
            {
                tp_config_error(r, e->line, where, "driver instance_id '%s' appears twice", dc->instance_id);
                ok = false;
            }
        }
        if (ok)
        {
            c->driver_count++;
        }
    }
}

int tp_discovery_config_load(tp_discovery_config_t *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    size_t before = r->error_count;
    bool is_set[sizeof(tp_discovery_config_fields) / sizeof(tp_discovery_config_fields[0])];
    static const char *const sections[] = { "drivers", NULL };
    tp_config_read(tp_discovery_config_fields, tp_discovery_config_field_count, c, sizeof(*c), doc, sections, r,
        is_set);
    load_drivers(c, doc, r);
    if (r->error_count > before)
    {
        TP_SET_ERR(TP_E_CONFIG, "%zu discovery configuration error(s)", r->error_count - before);
        return -1;
    }
    return 0;
}

void tp_discovery_config_dump(const tp_discovery_config_t *c, tp_strbuf_t *out, bool json)
{
    tp_strbuf_puts(out, json ? "{" : "");
    tp_config_dump(tp_discovery_config_fields, tp_discovery_config_field_count, c, out, json);
    tp_strbuf_puts(out, json ? ",\"drivers\":[" : "");
    for (uint32_t i = 0; i < c->driver_count; i++)
    {
        const tp_discovery_driver_config_t *d = &c->drivers[i];
        tp_strbuf_printf(out,
            json ? "%s{\"instance_id\":\"%s\",\"control_channel\":\"%s\",\"control_stream_id\":%u,"
                   "\"announce_channel\":\"%s\",\"announce_stream_id\":%u,\"metadata_channel\":\"%s\","
                   "\"metadata_stream_id\":%u}"
                 : "%sdrivers = {instance_id = \"%s\", control_channel = \"%s\", control_stream_id = %u, "
                   "announce_channel = \"%s\", announce_stream_id = %u, metadata_channel = \"%s\", "
                   "metadata_stream_id = %u}\n",
            json && i > 0 ? "," : "", d->instance_id, d->control_channel, d->control_stream_id, d->announce_channel,
            d->announce_stream_id, d->metadata_channel, d->metadata_stream_id);
    }
    tp_strbuf_puts(out, json ? "]}" : "");
}
