/*
 * Table-driven configuration: one row per setting describes its key, type, default, range and meaning. The same
 * rows apply defaults, read a TOML document, apply environment overrides (TP_ and the key upper-cased with '.' -> '_',
 * e.g. driver.control_stream_id <- TP_DRIVER_CONTROL_STREAM_ID; the environment wins over the file), dump the
 * effective values, and generate the reference in docs/CONFIG.md.
 *
 * Problems are collected, not thrown at the first: every error and warning names the key and where the value came
 * from (FILE:LINE or the environment variable). Unknown keys are warnings, so a typo never passes silently.
 */
#ifndef TP_CORE_CONFIG_H
#define TP_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tp_err.h"
#include "core/tp_strbuf.h"
#include "core/tp_toml.h"

#define TP_CONFIG_STRING_MAX 256
#define TP_CONFIG_LIST_MAX 8

typedef enum tp_config_kind
{
    TP_CFG_STRING,      /* char[TP_CONFIG_STRING_MAX] */
    TP_CFG_BOOL,        /* bool */
    TP_CFG_U16,         /* uint16_t */
    TP_CFG_U32,         /* uint32_t */
    TP_CFG_U64,         /* uint64_t */
    TP_CFG_MODE,        /* uint32_t, written as an octal string: "660" */
    TP_CFG_RANGE,       /* tp_config_range_t, "a-b" or [a, b] */
    TP_CFG_STRING_LIST, /* tp_config_string_list_t, an array of strings */
} tp_config_kind_t;

typedef struct tp_config_range
{
    bool is_set;
    uint32_t start;
    uint32_t end; /* inclusive */
} tp_config_range_t;

typedef struct tp_config_string_list
{
    size_t count;
    char items[TP_CONFIG_LIST_MAX][TP_CONFIG_STRING_MAX];
} tp_config_string_list_t;

typedef struct tp_config_field
{
    const char *key;          /* dotted TOML key */
    tp_config_kind_t kind;
    size_t offset;            /* into the config struct */
    const char *default_text; /* as a user would write it; "" = empty/unset; NULL = derived (see help) */
    uint64_t min;
    uint64_t max;
    bool is_required;
    const char *help;
} tp_config_field_t;

#define TP_CFG_FIELD(type, member, key, kind, def, min, max, required, help)                                         \
    { (key), (kind), offsetof(type, member), (def), (min), (max), (required), (help) }

/* Where each value came from, and the problems found. */
typedef struct tp_config_report
{
    tp_strbuf_t errors;   /* one problem per line */
    tp_strbuf_t warnings; /* one per line */
    size_t error_count;
    size_t warning_count;
    const char *source_name; /* file name for messages */
} tp_config_report_t;

void tp_config_report_init(tp_config_report_t *r, const char *source_name);
void tp_config_report_fini(tp_config_report_t *r);
void tp_config_error(tp_config_report_t *r, uint32_t line, const char *key, const char *fmt, ...) TP_PRINTF_LIKE(4, 5);
void tp_config_warning(tp_config_report_t *r, uint32_t line, const char *key, const char *fmt, ...)
    TP_PRINTF_LIKE(4, 5);

/* Set every field to its default (fields with a NULL default are left zero for the caller to derive). */
void tp_config_apply_defaults(const tp_config_field_t *fields, size_t count, void *config);

/* Read every field present in the document; type and range errors go to the report. Marks which fields were set
 * (is_set[i], may be NULL). */
void tp_config_apply_toml(const tp_config_field_t *fields, size_t count, void *config, const tp_toml_value_t *root,
    tp_config_report_t *report, bool *is_set);

/* Apply environment overrides (getenv of each field's variable). */
void tp_config_apply_env(const tp_config_field_t *fields, size_t count, void *config, tp_config_report_t *report,
    bool *is_set);

/* Parse one value from text (environment / setters). -1 with a reason in *why. */
int tp_config_parse_text(const tp_config_field_t *field, void *config, const char *text, const char **why);

/* The environment variable of a key: "driver.control_stream_id" -> "TP_DRIVER_CONTROL_STREAM_ID". */
void tp_config_env_name(const char *key, char *out, size_t capacity);
/* Its older name without the prefix ("DRIVER_CONTROL_STREAM_ID", the driver spec's example form): still read when
 * the TP_ one is unset, with a warning. */
void tp_config_env_name_old(const char *key, char *out, size_t capacity);

/* Warn about every key under `prefix` (a table; "" for the root) that is not a field and not in `allowed_tables`
 * (sub-tables handled by the caller, e.g. "profiles"). */
void tp_config_warn_unknown(const tp_config_field_t *fields, size_t count, const tp_toml_value_t *table,
    const char *prefix, const char *const *allowed_tables, tp_config_report_t *report);

/* The first half of every service's load: zero config (config_size bytes), apply the defaults, then the
 * document's keys (doc may be NULL; unknown keys are warnings except the tables in sections), then the
 * environment; a required key given by neither is an error. is_set (count entries) marks the keys given. */
void tp_config_read(const tp_config_field_t *fields, size_t count, void *config, size_t config_size,
    const tp_toml_value_t *doc, const char *const *sections, tp_config_report_t *report, bool *is_set);

/* Append "key = value" lines (or one JSON object when json) of the effective values. */
void tp_config_dump(const tp_config_field_t *fields, size_t count, const void *config, tp_strbuf_t *out, bool json);

/* Typed reads for caller-handled sections: on a wrong type or range, report and return false. */
bool tp_config_get_u32(const tp_toml_value_t *table, const char *key, uint64_t min, uint64_t max, uint32_t *out,
    bool is_required, const char *where, tp_config_report_t *report);
bool tp_config_get_string(const tp_toml_value_t *table, const char *key, char *out, size_t capacity,
    bool is_required, const char *where, tp_config_report_t *report);

/* true if the two inclusive ranges share an id. */
bool tp_config_ranges_overlap(const tp_config_range_t *a, const tp_config_range_t *b);
bool tp_config_range_contains(const tp_config_range_t *r, uint32_t id);

#endif
