/*
 * TOML 1.0.0: a complete reader producing a tree.
 *
 * Everything the spec defines: the four string kinds with every escape, integers (decimal, hex, octal, binary,
 * underscores, int64 range), floats (exponents, inf, nan), booleans, offset and local date-times, local dates and
 * times, arrays (mixed types), inline tables, standard tables, arrays of tables, dotted keys, and every
 * redefinition rule. The input is validated as UTF-8 (a leading BOM is skipped). Errors say
 * "FILE:LINE:COLUMN: what was wrong / what was expected"; a construct left open at the end of the input is
 * reported at the line where it starts.
 *
 * Values remember the line and column where they were written, so configuration errors and unknown-key warnings
 * can point at the file position.
 */
#ifndef TP_CORE_TOML_H
#define TP_CORE_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tp_strbuf.h"

typedef enum tp_toml_type
{
    TP_TOML_STRING = 1,
    TP_TOML_INTEGER,
    TP_TOML_FLOAT,
    TP_TOML_BOOL,
    TP_TOML_DATETIME,       /* offset date-time */
    TP_TOML_DATETIME_LOCAL, /* date-time without offset */
    TP_TOML_DATE_LOCAL,
    TP_TOML_TIME_LOCAL,
    TP_TOML_ARRAY,
    TP_TOML_TABLE,
} tp_toml_type_t;

typedef struct tp_toml_value tp_toml_value_t;

/* One member of a table (keys are decoded UTF-8) or one element of an array (key NULL). */
typedef struct tp_toml_member
{
    char *key;
    size_t key_length;
    tp_toml_value_t *value;
} tp_toml_member_t;

struct tp_toml_value
{
    tp_toml_type_t type;
    uint32_t line;
    uint32_t column;
    /* scalars */
    char *text;         /* STRING: decoded UTF-8; date/time kinds: the normalised RFC 3339 text */
    size_t text_length;
    int64_t integer;
    double number;
    bool boolean;
    /* ARRAY / TABLE: members in document order */
    tp_toml_member_t *members;
    size_t count;
    size_t capacity;
    /* definition state, for the redefinition rules */
    uint8_t flags;
};

/* Parse a document. name is used in error messages (a file name, or "-"). On error returns -1 with
 * "name:line:column: message" as the error text. */
int tp_toml_parse(tp_toml_value_t **out, const char *text, size_t length, const char *name);
void tp_toml_free(tp_toml_value_t *value);

/* Look up a member of a table by key (NULL if absent or not a table). */
const tp_toml_value_t *tp_toml_get(const tp_toml_value_t *table, const char *key);

/* The document in toml-test's tagged JSON form ({"type": T, "value": V} leaves). */
void tp_toml_to_tagged_json(tp_strbuf_t *out, const tp_toml_value_t *value);

/* "string", "integer", ... (toml-test names). */
const char *tp_toml_type_name(tp_toml_type_t type);

#endif
