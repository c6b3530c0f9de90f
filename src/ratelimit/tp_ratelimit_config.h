/*
 * The rate limiter's configuration (rate limiter spec section 8): [rate_limiter] keys and [[mappings]], defaults,
 * environment overrides (rate_limiter.max_rate_hz <- TP_RATE_LIMITER_MAX_RATE_HZ) and validation, including the rule
 * that no forwarding may be enabled while its stream ids are 0.
 */
#ifndef TP_RATELIMIT_CONFIG_H
#define TP_RATELIMIT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tp_config.h"

#define TP_RATELIMIT_MAX_MAPPINGS 64

typedef struct tp_ratelimit_mapping_config
{
    uint32_t source_stream_id;
    uint32_t dest_stream_id;
    uint32_t max_rate_hz; /* default: rate_limiter.max_rate_hz */
    uint32_t metadata_stream_id; /* default: dest_stream_id */
    uint32_t line;
} tp_ratelimit_mapping_config_t;

typedef struct tp_ratelimit_config
{
    char instance_id[TP_CONFIG_STRING_MAX];
    char aeron_dir[TP_CONFIG_STRING_MAX];
    char aeron_uri[TP_CONFIG_STRING_MAX];
    char bus_dir[TP_CONFIG_STRING_MAX];
    char shm_base_dir[TP_CONFIG_STRING_MAX];
    char driver_control_channel[TP_CONFIG_STRING_MAX];
    uint32_t driver_control_stream_id;
    char descriptor_channel[TP_CONFIG_STRING_MAX];
    uint32_t descriptor_stream_id;
    char control_channel[TP_CONFIG_STRING_MAX];
    uint32_t control_stream_id;
    char qos_channel[TP_CONFIG_STRING_MAX];
    uint32_t qos_stream_id;
    char metadata_channel[TP_CONFIG_STRING_MAX];
    uint32_t metadata_stream_id;
    bool forward_metadata;
    bool forward_progress;
    bool forward_qos;
    uint32_t max_rate_hz;
    uint32_t source_control_stream_id;
    uint32_t dest_control_stream_id;
    uint32_t source_qos_stream_id;
    uint32_t dest_qos_stream_id;
    uint32_t mapping_count;
    tp_ratelimit_mapping_config_t mappings[TP_RATELIMIT_MAX_MAPPINGS];
} tp_ratelimit_config_t;

extern const tp_config_field_t tp_ratelimit_config_fields[];
extern const size_t tp_ratelimit_config_field_count;

int tp_ratelimit_config_load(tp_ratelimit_config_t *config, const tp_toml_value_t *doc, tp_config_report_t *report);
void tp_ratelimit_config_dump(const tp_ratelimit_config_t *config, tp_strbuf_t *out, bool json);

#endif
