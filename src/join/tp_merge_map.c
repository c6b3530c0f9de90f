/* Merge maps: building, the validation rules of the join barrier spec section 6, and the schema-903 codec. */
#include "tensorpool/tp_join.h"

#include <inttypes.h>
#include <string.h>

#include "core/tp_err.h"
#include "tp_sbe_merge.h"

void tp_merge_map_init(tp_merge_map_t *map, tp_merge_kind_t kind, uint32_t out_stream_id, uint64_t epoch)
{
    memset(map, 0, sizeof(*map));
    map->kind = kind;
    map->out_stream_id = out_stream_id;
    map->epoch = epoch;
    map->stale_timeout_ns = TP_MERGE_NULL_U64;
    map->clock_domain = TP_CLOCK_DOMAIN_MONOTONIC;
    map->lateness_ns = TP_MERGE_NULL_U64;
}

static tp_merge_rule_t *add_rule(tp_merge_map_t *map, uint32_t input_stream_id, uint8_t type, uint8_t source)
{
    if (map->rule_count == TP_MERGE_MAX_RULES)
    {
        TP_SET_ERR(TP_E_CAPACITY, "a merge map holds at most %d rules", TP_MERGE_MAX_RULES);
        return NULL;
    }
    tp_merge_rule_t *r = &map->rules[map->rule_count++];
    memset(r, 0, sizeof(*r));
    r->input_stream_id = input_stream_id;
    r->rule_type = type;
    r->timestamp_source = source;
    return r;
}

int tp_merge_map_add_offset(tp_merge_map_t *map, uint32_t input_stream_id, int32_t offset)
{
    tp_merge_rule_t *r = add_rule(map, input_stream_id, TP_MERGE_RULE_OFFSET, 0);
    if (r == NULL)
    {
        return -1;
    }
    r->has_offset = true;
    r->offset = offset;
    return 0;
}

int tp_merge_map_add_window(tp_merge_map_t *map, uint32_t input_stream_id, uint32_t window_size)
{
    tp_merge_rule_t *r = add_rule(map, input_stream_id, TP_MERGE_RULE_WINDOW, 0);
    if (r == NULL)
    {
        return -1;
    }
    r->has_window = true;
    r->window = window_size;
    return 0;
}

int tp_merge_map_add_offset_ns(tp_merge_map_t *map, uint32_t input_stream_id, tp_merge_time_source_t source,
    int64_t offset_ns)
{
    tp_merge_rule_t *r = add_rule(map, input_stream_id, TP_MERGE_RULE_OFFSET, (uint8_t)source);
    if (r == NULL)
    {
        return -1;
    }
    r->has_offset = true;
    r->offset = offset_ns;
    return 0;
}

int tp_merge_map_add_window_ns(tp_merge_map_t *map, uint32_t input_stream_id, tp_merge_time_source_t source,
    uint64_t window_ns)
{
    tp_merge_rule_t *r = add_rule(map, input_stream_id, TP_MERGE_RULE_WINDOW, (uint8_t)source);
    if (r == NULL)
    {
        return -1;
    }
    r->has_window = true;
    r->window = window_ns;
    return 0;
}

/* Spec 6.2 / 6.3: exactly the parameter the rule type takes, present; the other null; windows positive. */
static int validate_rule(const tp_merge_map_t *map, uint32_t i)
{
    const tp_merge_rule_t *r = &map->rules[i];
    bool is_time = map->kind == TP_MERGE_TIMESTAMP;
    const char *offset_name = is_time ? "offsetNs" : "offset";
    const char *window_name = is_time ? "windowNs" : "windowSize";
    if (r->input_stream_id == 0)
    {
        TP_SET_ERR(TP_E_INVALID, "rule %" PRIu32 " names no input stream (inputStreamId 0)", i);
        return -1;
    }
    if (r->rule_type == TP_MERGE_RULE_OFFSET && (!r->has_offset || r->has_window))
    {
        TP_SET_ERR(TP_E_INVALID, "rule %" PRIu32 " (input %" PRIu32 ") is an %s rule: it needs a %s and no %s", i,
            r->input_stream_id, is_time ? "OFFSET_NS" : "OFFSET", offset_name, window_name);
        return -1;
    }
    if (r->rule_type == TP_MERGE_RULE_WINDOW && (!r->has_window || r->has_offset))
    {
        TP_SET_ERR(TP_E_INVALID, "rule %" PRIu32 " (input %" PRIu32 ") is a %s rule: it needs a %s and no %s", i,
            r->input_stream_id, is_time ? "WINDOW_NS" : "WINDOW", window_name, offset_name);
        return -1;
    }
    if (r->rule_type != TP_MERGE_RULE_OFFSET && r->rule_type != TP_MERGE_RULE_WINDOW)
    {
        TP_SET_ERR(TP_E_INVALID, "rule %" PRIu32 " (input %" PRIu32 ") has an unknown rule type %u", i,
            r->input_stream_id, r->rule_type);
        return -1;
    }
    if (r->rule_type == TP_MERGE_RULE_WINDOW && r->window == 0)
    {
        TP_SET_ERR(TP_E_INVALID, "rule %" PRIu32 " (input %" PRIu32 "): a window must be positive, not 0", i,
            r->input_stream_id);
        return -1;
    }
    if (!is_time && r->has_offset && (r->offset < INT32_MIN + 1 || r->offset > INT32_MAX))
    {
        TP_SET_ERR(TP_E_INVALID, "rule %" PRIu32 " (input %" PRIu32 "): offset %" PRId64 " is not a 32-bit value", i,
            r->input_stream_id, r->offset);
        return -1;
    }
    if (!is_time && r->has_window && r->window >= UINT32_MAX)
    {
        TP_SET_ERR(TP_E_INVALID, "rule %" PRIu32 " (input %" PRIu32 "): window %" PRIu64 " is not a 32-bit value", i,
            r->input_stream_id, r->window);
        return -1;
    }
    if (is_time && r->has_offset && r->offset == INT64_MIN)
    {
        TP_SET_ERR(TP_E_INVALID, "rule %" PRIu32 " (input %" PRIu32 "): offsetNs is the null value", i,
            r->input_stream_id);
        return -1;
    }
    if (is_time && r->timestamp_source != TP_MERGE_SOURCE_FRAME_DESCRIPTOR &&
        r->timestamp_source != TP_MERGE_SOURCE_SLOT_HEADER)
    {
        TP_SET_ERR(TP_E_INVALID,
            "rule %" PRIu32 " (input %" PRIu32 ") declares no timestamp source (%u; 1 FRAME_DESCRIPTOR, 2 SLOT_HEADER)",
            i, r->input_stream_id, r->timestamp_source);
        return -1;
    }
    for (uint32_t j = 0; j < i; j++)
    {
        if (map->rules[j].input_stream_id == r->input_stream_id)
        {
            TP_SET_ERR(TP_E_INVALID, "rules %" PRIu32 " and %" PRIu32 " both name input %" PRIu32, j, i,
                r->input_stream_id);
            return -1;
        }
    }
    return 0;
}

int tp_merge_map_validate(const tp_merge_map_t *map)
{
    if (map->kind != TP_MERGE_SEQUENCE && map->kind != TP_MERGE_TIMESTAMP)
    {
        TP_SET_ERR(TP_E_INVALID, "unknown merge map kind %d", (int)map->kind);
        return -1;
    }
    if (map->out_stream_id == 0)
    {
        TP_SET_ERR(TP_E_INVALID, "the merge map names no output stream (outStreamId 0)");
        return -1;
    }
    if (map->rule_count == 0 || map->rule_count > TP_MERGE_MAX_RULES)
    {
        TP_SET_ERR(TP_E_INVALID, "a merge map needs 1 to %d rules, not %" PRIu32, TP_MERGE_MAX_RULES,
            map->rule_count);
        return -1;
    }
    if (map->kind == TP_MERGE_TIMESTAMP && map->clock_domain != TP_CLOCK_DOMAIN_MONOTONIC &&
        map->clock_domain != TP_CLOCK_DOMAIN_REALTIME_SYNCED)
    {
        TP_SET_ERR(TP_E_INVALID, "unknown clock domain %u (1 MONOTONIC, 2 REALTIME_SYNCED)", map->clock_domain);
        return -1;
    }
    if (map->stale_timeout_ns == 0)
    {
        TP_SET_ERR(TP_E_INVALID, "staleTimeoutNs 0 would call every input stale (use the null value for none)");
        return -1;
    }
    for (uint32_t i = 0; i < map->rule_count; i++)
    {
        if (validate_rule(map, i) < 0)
        {
            TP_APPEND_ERR("merge map for output %" PRIu32 " epoch %" PRIu64, map->out_stream_id, map->epoch);
            return -1;
        }
    }
    return 0;
}

static int64_t encode_sequence(const tp_merge_map_t *map, void *buffer, size_t capacity)
{
    tp_merge_sequence_merge_map_announce_enc_t e;
    tp_merge_sequence_merge_map_announce_enc_begin(&e, buffer, capacity);
    tp_merge_sequence_merge_map_announce_set_out_stream_id(&e, map->out_stream_id);
    tp_merge_sequence_merge_map_announce_set_epoch(&e, map->epoch);
    tp_merge_sequence_merge_map_announce_set_stale_timeout_ns(&e, map->stale_timeout_ns);
    tp_merge_sequence_merge_map_announce_rules_enc_t g;
    tp_merge_sequence_merge_map_announce_rules_begin(&e, &g, (uint16_t)map->rule_count);
    for (uint32_t i = 0; i < map->rule_count; i++)
    {
        const tp_merge_rule_t *r = &map->rules[i];
        tp_merge_sequence_merge_map_announce_rules_enc_next(&g);
        tp_merge_sequence_merge_map_announce_rules_set_input_stream_id(&g, r->input_stream_id);
        tp_merge_sequence_merge_map_announce_rules_set_rule_type(&g, r->rule_type);
        tp_merge_sequence_merge_map_announce_rules_set_offset(&g, r->has_offset ? (int32_t)r->offset : INT32_MIN);
        tp_merge_sequence_merge_map_announce_rules_set_window_size(&g,
            r->has_window ? (uint32_t)r->window : UINT32_MAX);
    }
    tp_merge_sequence_merge_map_announce_rules_end(&g);
    return tp_merge_sequence_merge_map_announce_enc_finish(&e);
}

static int64_t encode_timestamp(const tp_merge_map_t *map, void *buffer, size_t capacity)
{
    tp_merge_timestamp_merge_map_announce_enc_t e;
    tp_merge_timestamp_merge_map_announce_enc_begin(&e, buffer, capacity);
    tp_merge_timestamp_merge_map_announce_set_out_stream_id(&e, map->out_stream_id);
    tp_merge_timestamp_merge_map_announce_set_epoch(&e, map->epoch);
    tp_merge_timestamp_merge_map_announce_set_stale_timeout_ns(&e, map->stale_timeout_ns);
    tp_merge_timestamp_merge_map_announce_set_clock_domain(&e, map->clock_domain);
    tp_merge_timestamp_merge_map_announce_set_lateness_ns(&e, map->lateness_ns);
    tp_merge_timestamp_merge_map_announce_rules_enc_t g;
    tp_merge_timestamp_merge_map_announce_rules_begin(&e, &g, (uint16_t)map->rule_count);
    for (uint32_t i = 0; i < map->rule_count; i++)
    {
        const tp_merge_rule_t *r = &map->rules[i];
        tp_merge_timestamp_merge_map_announce_rules_enc_next(&g);
        tp_merge_timestamp_merge_map_announce_rules_set_input_stream_id(&g, r->input_stream_id);
        tp_merge_timestamp_merge_map_announce_rules_set_rule_type(&g, r->rule_type);
        tp_merge_timestamp_merge_map_announce_rules_set_timestamp_source(&g, r->timestamp_source);
        tp_merge_timestamp_merge_map_announce_rules_set_offset_ns(&g, r->has_offset ? r->offset : INT64_MIN);
        tp_merge_timestamp_merge_map_announce_rules_set_window_ns(&g, r->has_window ? r->window : UINT64_MAX);
    }
    tp_merge_timestamp_merge_map_announce_rules_end(&g);
    return tp_merge_timestamp_merge_map_announce_enc_finish(&e);
}

int64_t tp_merge_map_encode(const tp_merge_map_t *map, void *buffer, size_t capacity)
{
    if (map->rule_count > TP_MERGE_MAX_RULES)
    {
        TP_SET_ERR(TP_E_INVALID, "a merge map holds at most %d rules", TP_MERGE_MAX_RULES);
        return -1;
    }
    int64_t n = map->kind == TP_MERGE_TIMESTAMP ? encode_timestamp(map, buffer, capacity)
                                                : encode_sequence(map, buffer, capacity);
    if (n < 0)
    {
        TP_APPEND_ERR("encoding the merge map for output %" PRIu32, map->out_stream_id);
    }
    return n;
}

static int too_many_rules(uint16_t count)
{
    TP_SET_ERR(TP_E_CAPACITY, "the merge map has %u rules; this build takes at most %d", count, TP_MERGE_MAX_RULES);
    return -1;
}

static int decode_sequence(tp_merge_map_t *map, const void *buffer, size_t length)
{
    tp_merge_sequence_merge_map_announce_t m;
    if (tp_merge_sequence_merge_map_announce_decode(&m, buffer, length) < 0)
    {
        return -1;
    }
    tp_merge_map_init(map, TP_MERGE_SEQUENCE, tp_merge_sequence_merge_map_announce_out_stream_id(&m),
        tp_merge_sequence_merge_map_announce_epoch(&m));
    map->stale_timeout_ns = tp_merge_sequence_merge_map_announce_stale_timeout_ns(&m);
    tp_merge_sequence_merge_map_announce_rules_t g;
    uint16_t count = tp_merge_sequence_merge_map_announce_rules(&m, &g);
    if (count > TP_MERGE_MAX_RULES)
    {
        return too_many_rules(count);
    }
    while (tp_merge_sequence_merge_map_announce_rules_next(&g))
    {
        tp_merge_rule_t *r = &map->rules[map->rule_count++];
        r->input_stream_id = tp_merge_sequence_merge_map_announce_rules_input_stream_id(&g);
        r->rule_type = tp_merge_sequence_merge_map_announce_rules_rule_type(&g);
        r->has_offset = tp_merge_sequence_merge_map_announce_rules_has_offset(&g);
        r->offset = tp_merge_sequence_merge_map_announce_rules_offset(&g);
        r->has_window = tp_merge_sequence_merge_map_announce_rules_has_window_size(&g);
        r->window = tp_merge_sequence_merge_map_announce_rules_window_size(&g);
    }
    return 0;
}

static int decode_timestamp(tp_merge_map_t *map, const void *buffer, size_t length)
{
    tp_merge_timestamp_merge_map_announce_t m;
    if (tp_merge_timestamp_merge_map_announce_decode(&m, buffer, length) < 0)
    {
        return -1;
    }
    tp_merge_map_init(map, TP_MERGE_TIMESTAMP, tp_merge_timestamp_merge_map_announce_out_stream_id(&m),
        tp_merge_timestamp_merge_map_announce_epoch(&m));
    map->stale_timeout_ns = tp_merge_timestamp_merge_map_announce_stale_timeout_ns(&m);
    map->clock_domain = tp_merge_timestamp_merge_map_announce_clock_domain(&m);
    map->lateness_ns = tp_merge_timestamp_merge_map_announce_lateness_ns(&m);
    tp_merge_timestamp_merge_map_announce_rules_t g;
    uint16_t count = tp_merge_timestamp_merge_map_announce_rules(&m, &g);
    if (count > TP_MERGE_MAX_RULES)
    {
        return too_many_rules(count);
    }
    while (tp_merge_timestamp_merge_map_announce_rules_next(&g))
    {
        tp_merge_rule_t *r = &map->rules[map->rule_count++];
        r->input_stream_id = tp_merge_timestamp_merge_map_announce_rules_input_stream_id(&g);
        r->rule_type = tp_merge_timestamp_merge_map_announce_rules_rule_type(&g);
        r->timestamp_source = tp_merge_timestamp_merge_map_announce_rules_timestamp_source(&g);
        r->has_offset = tp_merge_timestamp_merge_map_announce_rules_has_offset_ns(&g);
        r->offset = tp_merge_timestamp_merge_map_announce_rules_offset_ns(&g);
        r->has_window = tp_merge_timestamp_merge_map_announce_rules_has_window_ns(&g);
        r->window = tp_merge_timestamp_merge_map_announce_rules_window_ns(&g);
    }
    return 0;
}

/* J-14-1: the header's schema id is checked before anything is decoded. */
static int read_merge_header(tp_sbe_header_t *h, const void *buffer, size_t length)
{
    if (tp_sbe_header_read(h, buffer, length) < 0)
    {
        return -1;
    }
    if (h->schema_id != TP_MERGE_SCHEMA_ID)
    {
        TP_SET_ERR(TP_E_MALFORMED, "schema %u is not the merge-map schema (%d)", h->schema_id, TP_MERGE_SCHEMA_ID);
        return -1;
    }
    return 0;
}

int tp_merge_map_decode(tp_merge_map_t *map, const void *buffer, size_t length)
{
    tp_sbe_header_t h;
    if (read_merge_header(&h, buffer, length) < 0)
    {
        return -1;
    }
    if (h.template_id == TP_MERGE_SEQUENCE_MERGE_MAP_ANNOUNCE_TEMPLATE_ID)
    {
        return decode_sequence(map, buffer, length);
    }
    if (h.template_id == TP_MERGE_TIMESTAMP_MERGE_MAP_ANNOUNCE_TEMPLATE_ID)
    {
        return decode_timestamp(map, buffer, length);
    }
    TP_SET_ERR(TP_E_MALFORMED, "template %u of schema 903 is not a merge-map announce", h.template_id);
    return -1;
}

int64_t tp_merge_request_encode(const tp_merge_request_t *request, void *buffer, size_t capacity)
{
    if (request->kind == TP_MERGE_TIMESTAMP)
    {
        tp_merge_timestamp_merge_map_request_enc_t e;
        tp_merge_timestamp_merge_map_request_enc_begin(&e, buffer, capacity);
        tp_merge_timestamp_merge_map_request_set_out_stream_id(&e, request->out_stream_id);
        tp_merge_timestamp_merge_map_request_set_epoch(&e, request->epoch);
        return tp_merge_timestamp_merge_map_request_enc_finish(&e);
    }
    tp_merge_sequence_merge_map_request_enc_t e;
    tp_merge_sequence_merge_map_request_enc_begin(&e, buffer, capacity);
    tp_merge_sequence_merge_map_request_set_out_stream_id(&e, request->out_stream_id);
    tp_merge_sequence_merge_map_request_set_epoch(&e, request->epoch);
    return tp_merge_sequence_merge_map_request_enc_finish(&e);
}

int tp_merge_request_decode(tp_merge_request_t *request, const void *buffer, size_t length)
{
    tp_sbe_header_t h;
    if (read_merge_header(&h, buffer, length) < 0)
    {
        return -1;
    }
    if (h.template_id == TP_MERGE_SEQUENCE_MERGE_MAP_REQUEST_TEMPLATE_ID)
    {
        tp_merge_sequence_merge_map_request_t m;
        if (tp_merge_sequence_merge_map_request_decode(&m, buffer, length) < 0)
        {
            return -1;
        }
        request->kind = TP_MERGE_SEQUENCE;
        request->out_stream_id = tp_merge_sequence_merge_map_request_out_stream_id(&m);
        request->epoch = tp_merge_sequence_merge_map_request_epoch(&m);
        return 0;
    }
    if (h.template_id == TP_MERGE_TIMESTAMP_MERGE_MAP_REQUEST_TEMPLATE_ID)
    {
        tp_merge_timestamp_merge_map_request_t m;
        if (tp_merge_timestamp_merge_map_request_decode(&m, buffer, length) < 0)
        {
            return -1;
        }
        request->kind = TP_MERGE_TIMESTAMP;
        request->out_stream_id = tp_merge_timestamp_merge_map_request_out_stream_id(&m);
        request->epoch = tp_merge_timestamp_merge_map_request_epoch(&m);
        return 0;
    }
    TP_SET_ERR(TP_E_MALFORMED, "template %u of schema 903 is not a merge-map request", h.template_id);
    return -1;
}
