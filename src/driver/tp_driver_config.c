/* The SHM driver's configuration; see tp_driver_config.h and docs/CONFIG.md. */
#include "driver/tp_driver_config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bus/tp_channel.h"
#include "core/tp_fs.h"
#include "shm/tp_shm_layout.h"
#include "tensorpool/tp_bus.h"

#define C tp_driver_config_t
#define U32MAX UINT32_MAX

/* clang-format off */
const tp_config_field_t tp_driver_config_fields[] = {
    TP_CFG_FIELD(C, instance_id, "driver.instance_id", TP_CFG_STRING, "driver-01", 0, 0, false,
        "identifier for logs, status and discovery results"),
    TP_CFG_FIELD(C, aeron_dir, "driver.aeron_dir", TP_CFG_STRING, "", 0, 0, false,
        "accepted for compatibility with Aeron-based configs; unused (tensorpool has its own bus)"),
    TP_CFG_FIELD(C, bus_dir, "driver.bus_dir", TP_CFG_STRING, "", 0, 0, false,
        "bus directory; empty = $TP_BUS_DIR, else /dev/shm/tensorpool-$USER/bus"),
    TP_CFG_FIELD(C, control_channel, "driver.control_channel", TP_CFG_STRING, TP_BUS_DEFAULT_CHANNEL, 0, 0, false,
        "channel of the driver control plane (attach, detach, keepalive)"),
    TP_CFG_FIELD(C, control_stream_id, "driver.control_stream_id", TP_CFG_U32, "1000", 1, U32MAX, false,
        "control-plane stream id"),
    TP_CFG_FIELD(C, announce_channel, "driver.announce_channel", TP_CFG_STRING, NULL, 0, 0, false,
        "channel of ShmPoolAnnounce; default: driver.control_channel"),
    TP_CFG_FIELD(C, announce_stream_id, "driver.announce_stream_id", TP_CFG_U32, NULL, 1, U32MAX, false,
        "ShmPoolAnnounce stream id; default: driver.control_stream_id"),
    TP_CFG_FIELD(C, qos_channel, "driver.qos_channel", TP_CFG_STRING, TP_BUS_DEFAULT_CHANNEL, 0, 0, false,
        "channel of QoS messages"),
    TP_CFG_FIELD(C, qos_stream_id, "driver.qos_stream_id", TP_CFG_U32, "1200", 1, U32MAX, false, "QoS stream id"),
    TP_CFG_FIELD(C, metadata_channel, "driver.metadata_channel", TP_CFG_STRING, TP_BUS_DEFAULT_CHANNEL, 0, 0,
        false, "channel of DataSourceAnnounce/DataSourceMeta (read by the supervisor and discovery)"),
    TP_CFG_FIELD(C, metadata_stream_id, "driver.metadata_stream_id", TP_CFG_U32, "1300", 1, U32MAX, false,
        "metadata stream id"),
    TP_CFG_FIELD(C, stream_id_range, "driver.stream_id_range", TP_CFG_RANGE, "", 0, 0, false,
        "inclusive range for dynamically created streams, \"a-b\" or [a, b]; empty = none"),
    TP_CFG_FIELD(C, descriptor_stream_id_range, "driver.descriptor_stream_id_range", TP_CFG_RANGE, "", 0, 0, false,
        "inclusive range for per-consumer descriptor streams; empty = declined"),
    TP_CFG_FIELD(C, control_stream_id_range, "driver.control_stream_id_range", TP_CFG_RANGE, "", 0, 0, false,
        "inclusive range for per-consumer control streams; empty = declined"),
    TP_CFG_FIELD(C, base_dir, "shm.base_dir", TP_CFG_STRING, "/dev/shm", 0, 0, false,
        "absolute root of the SHM layout <base>/tensorpool-$USER/<namespace>/<stream>/<epoch>"),
    TP_CFG_FIELD(C, name_space, "shm.namespace", TP_CFG_STRING, "default", 0, 0, false,
        "namespace directory under tensorpool-$USER ([A-Za-z0-9._-])"),
    TP_CFG_FIELD(C, require_hugepages, "shm.require_hugepages", TP_CFG_BOOL, "false", 0, 0, false,
        "hugepage policy when an attach says UNSPECIFIED"),
    TP_CFG_FIELD(C, page_size_bytes, "shm.page_size_bytes", TP_CFG_U32, "4096", 4096, 1u << 30, false,
        "backing page size used for validation"),
    TP_CFG_FIELD(C, permissions_mode, "shm.permissions_mode", TP_CFG_MODE, "660", 0600, 07777, false,
        "octal mode of created region files (directories get the matching x bits)"),
    TP_CFG_FIELD(C, group, "shm.group", TP_CFG_STRING, "", 0, 0, false,
        "group sharing the bus and regions with other users (directories setgid, the mode's group bits); "
        "empty = private to the driver's user"),
    TP_CFG_FIELD(C, allowed_base_dirs, "shm.allowed_base_dirs", TP_CFG_STRING_LIST, NULL, 0, 0, false,
        "absolute directories regions may live in; default: [shm.base_dir]"),
    TP_CFG_FIELD(C, allow_dynamic_streams, "policies.allow_dynamic_streams", TP_CFG_BOOL, "false", 0, 0, false,
        "create streams on first attach (ids from driver.stream_id_range)"),
    TP_CFG_FIELD(C, default_profile, "policies.default_profile", TP_CFG_STRING, NULL, 0, 0, false,
        "profile of dynamic streams; default: the first profile"),
    TP_CFG_FIELD(C, announce_period_ms, "policies.announce_period_ms", TP_CFG_U32, "1000", 10, 60000, false,
        "ShmPoolAnnounce cadence; freshness windows are 3x this"),
    TP_CFG_FIELD(C, lease_keepalive_interval_ms, "policies.lease_keepalive_interval_ms", TP_CFG_U32, "1000", 10,
        60000, false, "keepalive interval clients must keep"),
    TP_CFG_FIELD(C, lease_expiry_grace_intervals, "policies.lease_expiry_grace_intervals", TP_CFG_U32, "3", 1, 100,
        false, "missed keepalives before a lease expires"),
    TP_CFG_FIELD(C, prefault_shm, "policies.prefault_shm", TP_CFG_BOOL, "true", 0, 0, false,
        "touch every page of a region at creation"),
    TP_CFG_FIELD(C, mlock_shm, "policies.mlock_shm", TP_CFG_BOOL, "false", 0, 0, false,
        "mlock regions at creation; a failed mlock is fatal"),
    TP_CFG_FIELD(C, reuse_existing_shm, "policies.reuse_existing_shm", TP_CFG_BOOL, "false", 0, 0, false,
        "reuse region files left by an earlier run (epochs still advance)"),
    TP_CFG_FIELD(C, cleanup_shm_on_exit, "policies.cleanup_shm_on_exit", TP_CFG_BOOL, "false", 0, 0, false,
        "remove region files on clean shutdown"),
    TP_CFG_FIELD(C, epoch_gc_enabled, "policies.epoch_gc_enabled", TP_CFG_BOOL, "true", 0, 0, false,
        "delete old epoch directories"),
    TP_CFG_FIELD(C, epoch_gc_keep, "policies.epoch_gc_keep", TP_CFG_U32, "2", 1, 1000, false,
        "epochs kept per stream (current + N-1)"),
    TP_CFG_FIELD(C, epoch_gc_min_age_ns, "policies.epoch_gc_min_age_ns", TP_CFG_U64, NULL, 0, UINT64_MAX, false,
        "minimum age before an epoch directory is deleted; default: 3 x announce period"),
    TP_CFG_FIELD(C, epoch_gc_on_startup, "policies.epoch_gc_on_startup", TP_CFG_BOOL, "false", 0, 0, false,
        "run epoch GC when the driver starts"),
    TP_CFG_FIELD(C, epoch_gc_interval_ms, "policies.epoch_gc_interval_ms", TP_CFG_U32, "10000", 0, 86400000, false,
        "sweep every stream's old epochs this often (0: only when an epoch changes)"),
    TP_CFG_FIELD(C, shutdown_timeout_ms, "policies.shutdown_timeout_ms", TP_CFG_U32, "2000", 0, 600000, false,
        "drain period of a requested shutdown"),
    TP_CFG_FIELD(C, shutdown_token, "policies.shutdown_token", TP_CFG_STRING, "", 0, 0, false,
        "token a ShmDriverShutdownRequest must carry; empty = shutdown requests disabled"),
    TP_CFG_FIELD(C, discovery_enabled, "discovery.enabled", TP_CFG_BOOL, "true", 0, 0, false,
        "answer DiscoveryRequest (embedded provider)"),
    TP_CFG_FIELD(C, discovery_channel, "discovery.channel", TP_CFG_STRING, "aeron:ipc?term-length=1m", 0, 0, false,
        "channel of discovery requests"),
    TP_CFG_FIELD(C, discovery_stream_id, "discovery.stream_id", TP_CFG_U32, "7000", 1, U32MAX, false,
        "discovery request stream id"),
    TP_CFG_FIELD(C, supervisor_enabled, "supervisor.enabled", TP_CFG_BOOL, "false", 0, 0, false,
        "run the supervisor: track producers and consumers (announces, hellos, QoS, metadata) and apply "
        "[[supervisor_rules]]"),
    TP_CFG_FIELD(C, supervisor_stale_after_ms, "supervisor.stale_after_ms", TP_CFG_U32, NULL, 1, 3600000, false,
        "a producer or consumer unheard of (no hello, QoS) for this long is stale; default: 3 x announce period"),
};
/* clang-format on */
const size_t tp_driver_config_field_count = sizeof(tp_driver_config_fields) / sizeof(tp_driver_config_fields[0]);

static size_t field_index(const char *key)
{
    for (size_t i = 0; i < tp_driver_config_field_count; i++)
    {
        if (strcmp(tp_driver_config_fields[i].key, key) == 0)
        {
            return i;
        }
    }
    return SIZE_MAX;
}

void tp_driver_config_defaults(tp_driver_config_t *config)
{
    memset(config, 0, sizeof(*config));
    tp_config_apply_defaults(tp_driver_config_fields, tp_driver_config_field_count, config);
}

static bool is_name(const char *s)
{
    return tp_fs_component_is_safe(s) && strlen(s) < TP_DRIVER_NAME_MAX;
}

static void load_profiles(tp_driver_config_t *c, const tp_toml_value_t *profiles, tp_config_report_t *r)
{
    if (profiles == NULL)
    {
        return;
    }
    if (profiles->type != TP_TOML_TABLE)
    {
        tp_config_error(r, profiles->line, "profiles", "expected a table of profiles");
        return;
    }
    for (size_t i = 0; i < profiles->count; i++)
    {
        const char *name = profiles->members[i].key;
        const tp_toml_value_t *t = profiles->members[i].value;
        char where[128];
        snprintf(where, sizeof(where), "profiles.%s", name);
        if (t->type != TP_TOML_TABLE)
        {
            tp_config_error(r, t->line, where, "expected a table");
            continue;
        }
        if (!is_name(name))
        {
            tp_config_error(r, t->line, where, "profile names are 1-63 characters of [A-Za-z0-9._-]");
            continue;
        }
        if (c->profile_count == TP_DRIVER_MAX_PROFILES)
        {
            tp_config_error(r, t->line, where, "more than %d profiles", TP_DRIVER_MAX_PROFILES);
            return;
        }
        tp_driver_profile_config_t *p = &c->profiles[c->profile_count++];
        memset(p, 0, sizeof(*p));
        snprintf(p->name, sizeof(p->name), "%s", name);
        p->line = t->line;
        p->header_nslots = 1024;
        tp_config_get_u32(t, "header_nslots", 1, 1u << 24, &p->header_nslots, false, where, r);
        const tp_toml_value_t *pools = tp_toml_get(t, "payload_pools");
        for (size_t m = 0; m < t->count; m++)
        {
            const char *k = t->members[m].key;
            if (strcmp(k, "header_nslots") != 0 && strcmp(k, "payload_pools") != 0)
            {
                char full[200];
                snprintf(full, sizeof(full), "%s.%s", where, k);
                tp_config_warning(r, t->members[m].value->line, full, "unknown key (ignored)");
            }
        }
        if (pools == NULL || pools->type != TP_TOML_ARRAY)
        {
            tp_config_error(r, t->line, where, pools == NULL ? "payload_pools is required (at least one pool)"
                                                              : "payload_pools must be an array of tables");
            continue;
        }
        for (size_t k = 0; k < pools->count; k++)
        {
            const tp_toml_value_t *e = pools->members[k].value;
            char pwhere[200];
            snprintf(pwhere, sizeof(pwhere), "%s.payload_pools[%zu]", where, k);
            if (e->type != TP_TOML_TABLE)
            {
                tp_config_error(r, e->line, pwhere, "expected a table {pool_id, stride_bytes}");
                continue;
            }
            if (p->pool_count == TP_DRIVER_MAX_POOLS)
            {
                tp_config_error(r, e->line, pwhere, "more than %d pools", TP_DRIVER_MAX_POOLS);
                break;
            }
            uint32_t pool_id = 0;
            uint32_t stride = 0;
            bool ok = tp_config_get_u32(e, "pool_id", 0, UINT16_MAX, &pool_id, true, pwhere, r);
            ok &= tp_config_get_u32(e, "stride_bytes", 1, UINT32_MAX, &stride, true, pwhere, r);
            if (ok)
            {
                p->pools[p->pool_count++] = (tp_driver_pool_config_t){ .pool_id = (uint16_t)pool_id,
                    .stride_bytes = stride };
            }
        }
    }
}

/* tags = ["front", "rgb"]: at most 16 tags of 1-63 printable ASCII characters without commas. */
static bool load_stream_tags(tp_driver_stream_config_t *s, const tp_toml_value_t *tags, const char *where,
    tp_config_report_t *r)
{
    if (tags == NULL)
    {
        return true;
    }
    char key[160];
    snprintf(key, sizeof(key), "%s.tags", where);
    if (tags->type != TP_TOML_ARRAY || tags->count > 16)
    {
        tp_config_error(r, tags->line, key, "expected an array of at most 16 strings");
        return false;
    }
    size_t used = 0;
    for (size_t i = 0; i < tags->count; i++)
    {
        const tp_toml_value_t *v = tags->members[i].value;
        bool ok = v->type == TP_TOML_STRING && v->text_length > 0 && v->text_length < 64;
        for (size_t k = 0; ok && k < v->text_length; k++)
        {
            ok = v->text[k] >= 0x20 && v->text[k] <= 0x7e && v->text[k] != ',';
        }
        if (!ok)
        {
            tp_config_error(r, v->line, key, "tags are 1-63 printable ASCII characters without commas");
            return false;
        }
        used += (size_t)snprintf(s->tags + used, sizeof(s->tags) - used, "%s%s", i > 0 ? "," : "", v->text);
    }
    return true;
}

static void load_streams(tp_driver_config_t *c, const tp_toml_value_t *streams, tp_config_report_t *r)
{
    if (streams == NULL)
    {
        return;
    }
    if (streams->type != TP_TOML_TABLE)
    {
        tp_config_error(r, streams->line, "streams", "expected a table of streams");
        return;
    }
    for (size_t i = 0; i < streams->count; i++)
    {
        const char *name = streams->members[i].key;
        const tp_toml_value_t *t = streams->members[i].value;
        char where[128];
        snprintf(where, sizeof(where), "streams.%s", name);
        if (t->type != TP_TOML_TABLE || !is_name(name))
        {
            tp_config_error(r, t->line, where,
                t->type != TP_TOML_TABLE ? "expected a table" : "stream names are 1-63 characters of [A-Za-z0-9._-]");
            continue;
        }
        if (c->stream_count == TP_DRIVER_MAX_STREAMS)
        {
            tp_config_error(r, t->line, where, "more than %d streams", TP_DRIVER_MAX_STREAMS);
            return;
        }
        tp_driver_stream_config_t *s = &c->streams[c->stream_count];
        memset(s, 0, sizeof(*s));
        snprintf(s->name, sizeof(s->name), "%s", name);
        s->line = t->line;
        bool ok = tp_config_get_u32(t, "stream_id", 1, UINT32_MAX, &s->stream_id, true, where, r);
        ok &= tp_config_get_string(t, "profile", s->profile, sizeof(s->profile), true, where, r);
        ok &= load_stream_tags(s, tp_toml_get(t, "tags"), where, r);
        for (size_t m = 0; m < t->count; m++)
        {
            const char *k = t->members[m].key;
            if (strcmp(k, "stream_id") != 0 && strcmp(k, "profile") != 0 && strcmp(k, "tags") != 0)
            {
                char full[200];
                snprintf(full, sizeof(full), "%s.%s", where, k);
                tp_config_warning(r, t->members[m].value->line, full, "unknown key (ignored)");
            }
        }
        if (ok)
        {
            c->stream_count++;
        }
    }
}

/* A payload fallback a consumer can act on: one of our channels, or bridge://<id> (a bridge's destination). */
static bool fallback_uri_is_known(const char *uri)
{
    tp_channel_t channel;
    if (strncmp(uri, "bridge://", 9) == 0)
    {
        return uri[9] != '\0' && tp_fs_component_is_safe(uri + 9);
    }
    return tp_channel_parse(&channel, uri) == 0;
}

static void load_supervisor_rules(tp_driver_config_t *c, const tp_toml_value_t *rules, tp_config_report_t *r)
{
    if (rules == NULL)
    {
        return;
    }
    if (rules->type != TP_TOML_ARRAY)
    {
        tp_config_error(r, rules->line, "supervisor_rules", "expected an array of tables ([[supervisor_rules]])");
        return;
    }
    for (size_t i = 0; i < rules->count; i++)
    {
        const tp_toml_value_t *t = rules->members[i].value;
        char where[64];
        snprintf(where, sizeof(where), "supervisor_rules[%zu]", i);
        if (t->type != TP_TOML_TABLE)
        {
            tp_config_error(r, t->line, where, "expected a table");
            continue;
        }
        if (c->supervisor_rule_count == TP_DRIVER_MAX_SUPERVISOR_RULES)
        {
            tp_config_error(r, t->line, where, "more than %d rules", TP_DRIVER_MAX_SUPERVISOR_RULES);
            return;
        }
        tp_driver_supervisor_rule_t *rule = &c->supervisor_rules[c->supervisor_rule_count];
        memset(rule, 0, sizeof(*rule));
        rule->line = t->line;
        char mode[32] = "";
        size_t errors_before = r->error_count; /* an absent optional key is not an error */
        tp_config_get_u32(t, "stream_id", 0, UINT32_MAX, &rule->stream_id, false, where, r);
        tp_config_get_string(t, "data_source", rule->data_source, sizeof(rule->data_source), false, where, r);
        tp_config_get_string(t, "mode", mode, sizeof(mode), true, where, r);
        tp_config_get_string(t, "payload_fallback_uri", rule->payload_fallback_uri,
            sizeof(rule->payload_fallback_uri), false, where, r);
        bool ok = r->error_count == errors_before;
        rule->mode = strcmp(mode, "STREAM") == 0 ? 1 : strcmp(mode, "RATE_LIMITED") == 0 ? 2 : 0;
        if (ok && rule->mode == 0)
        {
            char full[96];
            snprintf(full, sizeof(full), "%s.mode", where);
            tp_config_error(r, t->line, full, "is STREAM or RATE_LIMITED, not '%s'", mode);
            ok = false;
        }
        if (ok && rule->payload_fallback_uri[0] != '\0' && !fallback_uri_is_known(rule->payload_fallback_uri))
        {
            /* Wire spec 10.1.3: a channel or a documented scheme; consumers ignore what they cannot use. */
            char full[96];
            snprintf(full, sizeof(full), "%s.payload_fallback_uri", where);
            tp_config_warning(r, t->line, full, "'%s' is neither a channel (aeron:udp?endpoint=HOST:PORT, aeron:ipc) "
                "nor bridge://ID: consumers will ignore it", rule->payload_fallback_uri);
        }
        for (size_t m = 0; m < t->count; m++)
        {
            const char *k = t->members[m].key;
            if (strcmp(k, "stream_id") != 0 && strcmp(k, "data_source") != 0 && strcmp(k, "mode") != 0 &&
                strcmp(k, "payload_fallback_uri") != 0)
            {
                char full[200];
                snprintf(full, sizeof(full), "%s.%s", where, k);
                tp_config_warning(r, t->members[m].value->line, full, "unknown key (ignored)");
            }
        }
        if (ok)
        {
            c->supervisor_rule_count++;
        }
    }
}

/* Values whose defaults depend on other values, filled in when neither the file nor the environment set them. */
static void derive_defaults(tp_driver_config_t *c, const bool *is_set)
{
    if (!is_set[field_index("driver.announce_channel")])
    {
        snprintf(c->announce_channel, sizeof(c->announce_channel), "%s", c->control_channel);
    }
    if (!is_set[field_index("driver.announce_stream_id")])
    {
        c->announce_stream_id = c->control_stream_id;
    }
    if (!is_set[field_index("shm.allowed_base_dirs")])
    {
        c->allowed_base_dirs.count = 1;
        snprintf(c->allowed_base_dirs.items[0], sizeof(c->allowed_base_dirs.items[0]), "%s", c->base_dir);
    }
    if (!is_set[field_index("policies.default_profile")] && c->profile_count > 0)
    {
        snprintf(c->default_profile, sizeof(c->default_profile), "%s", c->profiles[0].name);
    }
    if (!is_set[field_index("supervisor.stale_after_ms")])
    {
        c->supervisor_stale_after_ms = 3 * c->announce_period_ms;
    }
    if (!is_set[field_index("policies.epoch_gc_min_age_ns")])
    {
        c->epoch_gc_min_age_ns = 3ull * c->announce_period_ms * 1000000ull;
    }
}

int tp_driver_config_field_find(const char *key)
{
    size_t i = field_index(key);
    return i == SIZE_MAX ? -1 : (int)i;
}

/* -1 with a message counting the errors since `before` and quoting the first. */
static int report_failure(const tp_config_report_t *r, size_t before)
{
    TP_SET_ERR(TP_E_CONFIG, "%zu configuration error%s, the first: %.*s", r->error_count - before,
        r->error_count - before == 1 ? "" : "s", (int)strcspn(tp_strbuf_cstr(&r->errors), "\n"),
        tp_strbuf_cstr(&r->errors));
    return -1;
}

void tp_driver_config_read(tp_driver_config_t *c, const tp_toml_value_t *doc, tp_config_report_t *r, bool *is_set)
{
    static const char *const sections[] = { "profiles", "streams", "supervisor_rules", NULL };
    tp_config_read(tp_driver_config_fields, tp_driver_config_field_count, c, sizeof(*c), doc, sections, r, is_set);
    if (doc != NULL)
    {
        load_profiles(c, tp_toml_get(doc, "profiles"), r);
        load_streams(c, tp_toml_get(doc, "streams"), r);
        load_supervisor_rules(c, tp_toml_get(doc, "supervisor_rules"), r);
    }
}

int tp_driver_config_finish(tp_driver_config_t *c, const bool *is_set, tp_config_report_t *r)
{
    size_t before = r->error_count;
    derive_defaults(c, is_set);
    tp_driver_config_validate(c, r);
    if (r->error_count > before)
    {
        return report_failure(r, before);
    }
    return 0;
}

int tp_driver_config_load(tp_driver_config_t *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    bool is_set[sizeof(tp_driver_config_fields) / sizeof(tp_driver_config_fields[0])];
    size_t before = r->error_count;
    tp_driver_config_read(c, doc, r, is_set);
    int rc = tp_driver_config_finish(c, is_set, r);
    if (rc == 0 && r->error_count > before)
    {
        return report_failure(r, before);
    }
    return rc;
}

const tp_driver_profile_config_t *tp_driver_config_profile(const tp_driver_config_t *c, const char *name)
{
    for (uint32_t i = 0; i < c->profile_count; i++)
    {
        if (strcmp(c->profiles[i].name, name) == 0)
        {
            return &c->profiles[i];
        }
    }
    return NULL;
}

const tp_driver_stream_config_t *tp_driver_config_stream(const tp_driver_config_t *c, uint32_t stream_id)
{
    for (uint32_t i = 0; i < c->stream_count; i++)
    {
        if (c->streams[i].stream_id == stream_id)
        {
            return &c->streams[i];
        }
    }
    return NULL;
}

static void validate_profiles(const tp_driver_config_t *c, tp_config_report_t *r)
{
    if (c->profile_count == 0)
    {
        tp_config_error(r, 0, "profiles", "at least one profile is required ([profiles.<name>] with payload_pools)");
    }
    for (uint32_t i = 0; i < c->profile_count; i++)
    {
        const tp_driver_profile_config_t *p = &c->profiles[i];
        char where[128];
        snprintf(where, sizeof(where), "profiles.%s", p->name);
        if (p->header_nslots == 0 || (p->header_nslots & (p->header_nslots - 1)) != 0)
        {
            tp_config_error(r, p->line, where, "header_nslots %u is not a power of two", p->header_nslots);
        }
        if (p->pool_count == 0)
        {
            tp_config_error(r, p->line, where, "payload_pools needs at least one pool");
        }
        for (uint32_t k = 0; k < p->pool_count; k++)
        {
            uint32_t s = p->pools[k].stride_bytes;
            if (s < 64 || (s & (s - 1)) != 0)
            {
                tp_config_error(r, p->line, where, "pool %u: stride_bytes %u is not a power-of-two multiple of 64",
                    p->pools[k].pool_id, s);
            }
            for (uint32_t j = 0; j < k; j++)
            {
                if (p->pools[j].pool_id == p->pools[k].pool_id)
                {
                    tp_config_error(r, p->line, where, "pool_id %u appears twice", p->pools[k].pool_id);
                }
            }
        }
    }
}

static void validate_streams(const tp_driver_config_t *c, tp_config_report_t *r)
{
    if (c->stream_count == 0 && !c->allow_dynamic_streams)
    {
        tp_config_error(r, 0, "streams",
            "no streams are defined and policies.allow_dynamic_streams is false: every attach would be refused");
    }
    for (uint32_t i = 0; i < c->stream_count; i++)
    {
        const tp_driver_stream_config_t *s = &c->streams[i];
        char where[128];
        snprintf(where, sizeof(where), "streams.%s", s->name);
        if (tp_driver_config_profile(c, s->profile) == NULL)
        {
            tp_config_error(r, s->line, where, "profile '%s' is not defined", s->profile);
        }
        for (uint32_t j = 0; j < i; j++)
        {
            if (c->streams[j].stream_id == s->stream_id)
            {
                tp_config_error(r, s->line, where, "stream_id %u is also used by streams.%s", s->stream_id,
                    c->streams[j].name);
            }
        }
        const uint32_t reserved[] = { c->control_stream_id, c->announce_stream_id, c->qos_stream_id,
            c->metadata_stream_id };
        for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
        {
            if (s->stream_id == reserved[k])
            {
                tp_config_error(r, s->line, where, "stream_id %u is a control-plane stream id", s->stream_id);
                break;
            }
        }
    }
}

static void validate_ranges(const tp_driver_config_t *c, tp_config_report_t *r)
{
    struct
    {
        const char *key;
        const tp_config_range_t *range;
    } ranges[] = {
        { "driver.stream_id_range", &c->stream_id_range },
        { "driver.descriptor_stream_id_range", &c->descriptor_stream_id_range },
        { "driver.control_stream_id_range", &c->control_stream_id_range },
    };
    const uint32_t reserved[] = { c->control_stream_id, c->announce_stream_id, c->qos_stream_id,
        c->metadata_stream_id };
    for (size_t i = 0; i < 3; i++)
    {
        const tp_config_range_t *a = ranges[i].range;
        if (!a->is_set)
        {
            continue;
        }
        for (size_t j = 0; j < i; j++)
        {
            if (tp_config_ranges_overlap(a, ranges[j].range))
            {
                tp_config_error(r, 0, ranges[i].key, "%u-%u overlaps %s", a->start, a->end, ranges[j].key);
            }
        }
        for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
        {
            if (tp_config_range_contains(a, reserved[k]))
            {
                tp_config_error(r, 0, ranges[i].key, "%u-%u contains control-plane stream id %u", a->start, a->end,
                    reserved[k]);
            }
        }
        for (uint32_t s = 0; s < c->stream_count; s++)
        {
            if (tp_config_range_contains(a, c->streams[s].stream_id))
            {
                tp_config_error(r, 0, ranges[i].key, "%u-%u contains streams.%s (stream_id %u)", a->start, a->end,
                    c->streams[s].name, c->streams[s].stream_id);
            }
        }
    }
    if (c->allow_dynamic_streams && !c->stream_id_range.is_set)
    {
        tp_config_warning(r, 0, "driver.stream_id_range",
            "policies.allow_dynamic_streams is true but no range is set: dynamic attaches will be refused");
    }
}

/* Every channel parses as the bus will parse it when the driver starts (a typo is a configuration error here,
 * not a failed start, and `tp config check` says so). */
static void validate_channels(const tp_driver_config_t *c, tp_config_report_t *r)
{
    const struct
    {
        const char *key;
        const char *value;
    } channels[] = {
        { "driver.control_channel", c->control_channel },
        { "driver.announce_channel", c->announce_channel },
        { "driver.qos_channel", c->qos_channel },
        { "driver.metadata_channel", c->metadata_channel },
        { "discovery.channel", c->discovery_channel },
    };
    for (size_t i = 0; i < sizeof(channels) / sizeof(channels[0]); i++)
    {
        tp_channel_t parsed;
        if (channels[i].value[0] != '\0' && tp_channel_parse(&parsed, channels[i].value) < 0)
        {
            tp_config_error(r, 0, channels[i].key, "%s", tp_errmsg());
        }
    }
}

int tp_driver_config_validate(tp_driver_config_t *c, tp_config_report_t *r)
{
    size_t before = r->error_count;
    if (c->base_dir[0] != '/')
    {
        tp_config_error(r, 0, "shm.base_dir", "'%s' is not an absolute path", c->base_dir);
    }
    if (c->bus_dir[0] != '\0' && c->bus_dir[0] != '/')
    {
        tp_config_error(r, 0, "driver.bus_dir", "'%s' is not an absolute path", c->bus_dir);
    }
    for (size_t i = 0; i < c->allowed_base_dirs.count; i++)
    {
        if (c->allowed_base_dirs.items[i][0] != '/')
        {
            tp_config_error(r, 0, "shm.allowed_base_dirs", "'%s' is not an absolute path",
                c->allowed_base_dirs.items[i]);
        }
    }
    if (!tp_fs_component_is_safe(c->name_space))
    {
        tp_config_error(r, 0, "shm.namespace", "'%s' must be one path component of [A-Za-z0-9._-]", c->name_space);
    }
    if ((c->permissions_mode & 0600) != 0600)
    {
        tp_config_error(r, 0, "shm.permissions_mode", "%o must give the owner read and write", c->permissions_mode);
    }
    gid_t gid;
    if (c->group[0] != '\0' && tp_fs_group_id(c->group, &gid) < 0)
    {
        tp_config_error(r, 0, "shm.group", "%s", tp_errmsg());
    }
    if (c->group[0] != '\0' && (c->permissions_mode & 0060) != 0060)
    {
        tp_config_error(r, 0, "shm.group", "sharing with group '%s' needs shm.permissions_mode to give the group "
            "read and write (e.g. \"660\"), not %o", c->group, c->permissions_mode);
    }
    if ((c->permissions_mode & 0007) != 0)
    {
        tp_config_warning(r, 0, "shm.permissions_mode", "%o lets every user on this machine at the regions; share "
            "them with a group instead (shm.group)", c->permissions_mode);
    }
    if (c->control_channel[0] == '\0' || c->announce_channel[0] == '\0')
    {
        tp_config_error(r, 0, "driver.control_channel", "control and announce channels must not be empty");
    }
    validate_channels(c, r);
    validate_profiles(c, r);
    validate_streams(c, r);
    validate_ranges(c, r);
    if (c->default_profile[0] != '\0' && c->profile_count > 0 &&
        tp_driver_config_profile(c, c->default_profile) == NULL)
    {
        tp_config_error(r, 0, "policies.default_profile", "profile '%s' is not defined", c->default_profile);
    }
    if (r->error_count > before)
    {
        return report_failure(r, before);
    }
    return 0;
}

void tp_driver_config_dump(const tp_driver_config_t *c, tp_strbuf_t *out, bool json)
{
    if (json)
    {
        tp_strbuf_putc(out, '{');
    }
    tp_config_dump(tp_driver_config_fields, tp_driver_config_field_count, c, out, json);
    if (json)
    {
        tp_strbuf_puts(out, ",\"profiles\":{");
    }
    for (uint32_t i = 0; i < c->profile_count; i++)
    {
        const tp_driver_profile_config_t *p = &c->profiles[i];
        if (json)
        {
            tp_strbuf_printf(out, "%s\"%s\":{\"header_nslots\":%u,\"payload_pools\":[", i > 0 ? "," : "", p->name,
                p->header_nslots);
        }
        else
        {
            tp_strbuf_printf(out, "profiles.%s.header_nslots = %u\nprofiles.%s.payload_pools = [", p->name,
                p->header_nslots, p->name);
        }
        for (uint32_t k = 0; k < p->pool_count; k++)
        {
            tp_strbuf_printf(out, "%s{%spool_id%s%u, %sstride_bytes%s%u}", k > 0 ? ", " : "", json ? "\"" : " ",
                json ? "\":" : " = ", p->pools[k].pool_id, json ? "\"" : "", json ? "\":" : " = ",
                p->pools[k].stride_bytes);
        }
        tp_strbuf_puts(out, json ? "]}" : "]\n");
    }
    if (json)
    {
        tp_strbuf_puts(out, "},\"streams\":{");
    }
    for (uint32_t i = 0; i < c->stream_count; i++)
    {
        const tp_driver_stream_config_t *s = &c->streams[i];
        if (json)
        {
            tp_strbuf_printf(out, "%s\"%s\":{\"stream_id\":%u,\"profile\":\"%s\"}", i > 0 ? "," : "", s->name,
                s->stream_id, s->profile);
        }
        else
        {
            tp_strbuf_printf(out, "streams.%s.stream_id = %u\nstreams.%s.profile = \"%s\"\n", s->name, s->stream_id,
                s->name, s->profile);
        }
    }
    if (json)
    {
        tp_strbuf_puts(out, "}}");
    }
}

gid_t tp_driver_config_gid(const tp_driver_config_t *config)
{
    gid_t gid;
    return config->group[0] != '\0' && tp_fs_group_id(config->group, &gid) == 0 ? gid : (gid_t)-1;
}

mode_t tp_driver_config_dir_mode(const tp_driver_config_t *config)
{
    mode_t mode = tp_shm_layout_dir_mode((mode_t)config->permissions_mode);
    return config->group[0] != '\0' ? mode | S_ISGID : mode;
}
