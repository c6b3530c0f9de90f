/*
 * The SHM driver's configuration (driver spec section 17, plus our bus settings): defaults, then the TOML file,
 * then environment variables (driver.control_stream_id <- TP_DRIVER_CONTROL_STREAM_ID), then validation of every
 * rule the specs state (power-of-two slots, strides, unique pools, profiles and streams that exist, disjoint
 * stream-id ranges, absolute directories, permission strings).
 */
#ifndef TP_DRIVER_CONFIG_H
#define TP_DRIVER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/tp_config.h"

#define TP_DRIVER_MAX_PROFILES 32
#define TP_DRIVER_MAX_POOLS 16
#define TP_DRIVER_MAX_STREAMS 256
#define TP_DRIVER_NAME_MAX 64

typedef struct tp_driver_pool_config
{
    uint16_t pool_id;
    uint32_t stride_bytes;
} tp_driver_pool_config_t;

typedef struct tp_driver_profile_config
{
    char name[TP_DRIVER_NAME_MAX];
    uint32_t header_nslots;
    uint32_t pool_count;
    tp_driver_pool_config_t pools[TP_DRIVER_MAX_POOLS];
    uint32_t line;
} tp_driver_profile_config_t;

typedef struct tp_driver_stream_config
{
    char tags[1024]; /* comma-separated, for discovery ([streams.x] tags = [...]) */
    char name[TP_DRIVER_NAME_MAX];
    uint32_t stream_id;
    char profile[TP_DRIVER_NAME_MAX];
    uint32_t line;
} tp_driver_stream_config_t;

#define TP_DRIVER_MAX_SUPERVISOR_RULES 16

/* [[supervisor_rules]]: consumers of stream_id (0: any) whose stream announces data source data_source ("": any)
 * are told mode (TP_WIRE_MODE_*) and payload_fallback_uri in a ConsumerConfig. */
typedef struct tp_driver_supervisor_rule
{
    uint32_t stream_id;
    char data_source[TP_CONFIG_STRING_MAX];
    uint8_t mode;
    char payload_fallback_uri[TP_CONFIG_STRING_MAX];
    uint32_t line;
} tp_driver_supervisor_rule_t;

typedef struct tp_driver_config
{
    /* [driver] */
    char instance_id[TP_CONFIG_STRING_MAX];
    char aeron_dir[TP_CONFIG_STRING_MAX];
    char bus_dir[TP_CONFIG_STRING_MAX];
    char control_channel[TP_CONFIG_STRING_MAX];
    uint32_t control_stream_id;
    char announce_channel[TP_CONFIG_STRING_MAX];
    uint32_t announce_stream_id;
    char qos_channel[TP_CONFIG_STRING_MAX];
    uint32_t qos_stream_id;
    char metadata_channel[TP_CONFIG_STRING_MAX];
    uint32_t metadata_stream_id;
    tp_config_range_t stream_id_range;
    tp_config_range_t descriptor_stream_id_range;
    tp_config_range_t control_stream_id_range;
    /* [shm] */
    char base_dir[TP_CONFIG_STRING_MAX];
    char name_space[TP_CONFIG_STRING_MAX];
    bool require_hugepages;
    uint32_t page_size_bytes;
    uint32_t permissions_mode;
    char group[TP_CONFIG_STRING_MAX];
    tp_config_string_list_t allowed_base_dirs;
    /* [policies] */
    bool allow_dynamic_streams;
    char default_profile[TP_CONFIG_STRING_MAX];
    uint32_t announce_period_ms;
    uint32_t lease_keepalive_interval_ms;
    uint32_t lease_expiry_grace_intervals;
    bool prefault_shm;
    bool mlock_shm;
    bool reuse_existing_shm;
    bool cleanup_shm_on_exit;
    bool epoch_gc_enabled;
    uint32_t epoch_gc_keep;
    uint64_t epoch_gc_min_age_ns;
    bool epoch_gc_on_startup;
    uint32_t epoch_gc_interval_ms;
    uint32_t shutdown_timeout_ms;
    char shutdown_token[TP_CONFIG_STRING_MAX];
    /* [discovery] (embedded provider) */
    bool discovery_enabled;
    char discovery_channel[TP_CONFIG_STRING_MAX];
    uint32_t discovery_stream_id;
    /* [supervisor], [[supervisor_rules]] */
    bool supervisor_enabled;
    uint32_t supervisor_stale_after_ms;
    uint32_t supervisor_rule_count;
    tp_driver_supervisor_rule_t supervisor_rules[TP_DRIVER_MAX_SUPERVISOR_RULES];
    /* [profiles.*], [streams.*] */
    uint32_t profile_count;
    tp_driver_profile_config_t profiles[TP_DRIVER_MAX_PROFILES];
    uint32_t stream_count;
    tp_driver_stream_config_t streams[TP_DRIVER_MAX_STREAMS];
} tp_driver_config_t;

/* The field table (for dump and docs). */
extern const tp_config_field_t tp_driver_config_fields[];
extern const size_t tp_driver_config_field_count;

/* Defaults only (no profiles: a usable driver needs at least one, from a file or tp_driver_config_add_*). */
void tp_driver_config_defaults(tp_driver_config_t *config);

/* Defaults, then the document (name for messages), then the environment, then derived defaults and validation.
 * Problems go to report; returns 0 if there is no error (warnings allowed), else -1 with the first error. */
int tp_driver_config_load(tp_driver_config_t *config, const tp_toml_value_t *doc, tp_config_report_t *report);

/* The two halves of load, for callers that change values in between (the embedding API): read defaults, the
 * document and the environment, marking in is_set (tp_driver_config_field_count entries) the keys given; then
 * derive the defaults of keys not given (announce channel from control channel, ...) and validate. */
void tp_driver_config_read(tp_driver_config_t *config, const tp_toml_value_t *doc, tp_config_report_t *report,
    bool *is_set);
int tp_driver_config_finish(tp_driver_config_t *config, const bool *is_set, tp_config_report_t *report);
/* Index of a key in the field table, or -1. */
int tp_driver_config_field_find(const char *key);

/* The group of shm.group ((gid_t)-1 when empty or unknown: private). */
gid_t tp_driver_config_gid(const tp_driver_config_t *config);
/* The mode of the driver's directories: shm.permissions_mode's r bits as x (660 -> 770), plus setgid when
 * shm.group shares them, so that what anyone creates inside belongs to the group (wire spec 15.21a.6: 2770). */
mode_t tp_driver_config_dir_mode(const tp_driver_config_t *config);

/* Validation alone (after programmatic changes). */
int tp_driver_config_validate(tp_driver_config_t *config, tp_config_report_t *report);

/* Lookups. */
const tp_driver_profile_config_t *tp_driver_config_profile(const tp_driver_config_t *config, const char *name);
const tp_driver_stream_config_t *tp_driver_config_stream(const tp_driver_config_t *config, uint32_t stream_id);

/* Append the effective configuration (every key, profiles and streams) as TOML-like text or JSON. */
void tp_driver_config_dump(const tp_driver_config_t *config, tp_strbuf_t *out, bool json);

#endif
