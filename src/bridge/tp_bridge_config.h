/*
 * The UDP bridge's configuration (bridge spec section 10): [bridge] keys and [[mappings]], defaults, environment
 * overrides (bridge.payload_stream_id <- TP_BRIDGE_PAYLOAD_STREAM_ID) and validation.
 */
#ifndef TP_BRIDGE_CONFIG_H
#define TP_BRIDGE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tp_config.h"

#define TP_BRIDGE_MAX_MAPPINGS 64

typedef struct tp_bridge_mapping_config
{
    uint32_t source_stream_id;
    uint32_t dest_stream_id; /* 0: allocate from bridge.dest_stream_id_range */
    char profile[64];
    uint32_t metadata_stream_id; /* default: dest_stream_id */
    uint32_t source_control_stream_id;
    uint32_t dest_control_stream_id;
    uint32_t source_qos_stream_id; /* default: source_control_stream_id (bridge spec 9) */
    uint32_t dest_qos_stream_id;   /* default: dest_control_stream_id */
    bool has_direction;            /* false: neither the mapping nor bridge.direction says (tp bridge refuses) */
    bool is_sender;                /* direction "send" (this host reads source_stream_id) or "receive" */
    uint32_t line;
} tp_bridge_mapping_config_t;

typedef struct tp_bridge_config
{
    char instance_id[TP_CONFIG_STRING_MAX];
    char bus_dir[TP_CONFIG_STRING_MAX];
    char shm_base_dir[TP_CONFIG_STRING_MAX];
    char payload_channel[TP_CONFIG_STRING_MAX];
    uint32_t payload_stream_id;
    char control_channel[TP_CONFIG_STRING_MAX];
    uint32_t control_stream_id;
    char metadata_channel[TP_CONFIG_STRING_MAX];
    uint32_t metadata_stream_id;
    uint32_t source_metadata_stream_id;
    uint32_t mtu_bytes;
    uint32_t chunk_bytes; /* as configured (0 = unset) */
    uint32_t max_chunk_bytes;
    uint32_t max_payload_bytes;
    bool integrity_crc32c;
    tp_config_range_t dest_stream_id_range;
    bool forward_metadata;
    bool forward_tracelink;
    bool forward_qos;
    bool forward_progress;
    uint32_t assembly_timeout_ms;
    char driver_control_channel[TP_CONFIG_STRING_MAX];
    uint32_t driver_control_stream_id;
    uint32_t driver_announce_stream_id; /* 0: the driver control stream */
    char local_metadata_channel[TP_CONFIG_STRING_MAX];
    char direction[16];                 /* default direction of mappings that name none: "send", "receive" or "" */
    bool is_metadata_forwarded;         /* forward_metadata, and a metadata channel to carry it */
    bool is_tracelink_forwarded;
    uint32_t mapping_count;
    tp_bridge_mapping_config_t mappings[TP_BRIDGE_MAX_MAPPINGS];
} tp_bridge_config_t;

extern const tp_config_field_t tp_bridge_config_fields[];
extern const size_t tp_bridge_config_field_count;

/* Effective payload bytes per chunk: min(chunk_bytes, mtu_bytes - 128), or mtu_bytes - 128 when unset (bridge
 * spec 10), never above max_chunk_bytes. */
uint32_t tp_bridge_config_chunk_bytes(const tp_bridge_config_t *config);

/* 0 when every mapping knows which end runs here; else -1 naming the first that does not. */
int tp_bridge_config_check_directions(const tp_bridge_config_t *config);

int tp_bridge_config_load(tp_bridge_config_t *config, const tp_toml_value_t *doc, tp_config_report_t *report);
void tp_bridge_config_dump(const tp_bridge_config_t *config, tp_strbuf_t *out, bool json);

#endif
