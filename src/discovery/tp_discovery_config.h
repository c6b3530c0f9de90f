/*
 * The standalone discovery registry's configuration (discovery spec 4.2, 6): the request endpoint and the drivers
 * whose announces and metadata it indexes ([[drivers]]), with defaults from the stream-id conventions, environment
 * overrides (discovery.stream_id <- TP_DISCOVERY_STREAM_ID) and validation.
 */
#ifndef TP_DISCOVERY_CONFIG_H
#define TP_DISCOVERY_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tp_config.h"

#define TP_DISCOVERY_MAX_DRIVERS 32

typedef struct tp_discovery_driver_config
{
    char instance_id[TP_CONFIG_STRING_MAX];
    char control_channel[TP_CONFIG_STRING_MAX];
    uint32_t control_stream_id;
    char announce_channel[TP_CONFIG_STRING_MAX];
    uint32_t announce_stream_id;
    char metadata_channel[TP_CONFIG_STRING_MAX];
    uint32_t metadata_stream_id;
    uint32_t line;
} tp_discovery_driver_config_t;

typedef struct tp_discovery_config
{
    char instance_id[TP_CONFIG_STRING_MAX];
    char bus_dir[TP_CONFIG_STRING_MAX];
    char channel[TP_CONFIG_STRING_MAX];
    uint32_t stream_id;
    uint32_t announce_period_ms;
    uint32_t max_results;
    uint32_t driver_count;
    tp_discovery_driver_config_t drivers[TP_DISCOVERY_MAX_DRIVERS];
} tp_discovery_config_t;

extern const tp_config_field_t tp_discovery_config_fields[];
extern const size_t tp_discovery_config_field_count;

int tp_discovery_config_load(tp_discovery_config_t *config, const tp_toml_value_t *doc, tp_config_report_t *report);
void tp_discovery_config_dump(const tp_discovery_config_t *config, tp_strbuf_t *out, bool json);

#endif
