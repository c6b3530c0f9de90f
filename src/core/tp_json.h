/*
 * A small JSON reader (RFC 8259) producing a tree, for tests, `tp encode` and fixture files. Numbers keep their
 * source text so 64-bit integers are read exactly. Not for hot paths: every node is tp_alloc'd.
 */
#ifndef TP_CORE_JSON_H
#define TP_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tp_strbuf.h"

typedef enum tp_json_type
{
    TP_JSON_NULL,
    TP_JSON_BOOL,
    TP_JSON_NUMBER,
    TP_JSON_STRING,
    TP_JSON_ARRAY,
    TP_JSON_OBJECT,
} tp_json_type_t;

typedef struct tp_json tp_json_t;
struct tp_json
{
    tp_json_type_t type;
    char *key;          /* member name when the parent is an object */
    char *text;         /* STRING: decoded UTF-8 (may hold NULs: see length); NUMBER: the literal */
    size_t length;      /* STRING: decoded byte length */
    bool boolean;       /* BOOL */
    tp_json_t *child;   /* ARRAY/OBJECT: first element, in document order */
    tp_json_t *next;    /* next sibling */
    size_t count;       /* ARRAY/OBJECT: number of children */
};

/* Parse text into a new tree. On error returns -1 with a message naming line and column. */
int tp_json_parse(tp_json_t **out, const char *text, size_t length);
void tp_json_free(tp_json_t *root);

/* Member of an object by name (first match), or NULL. */
const tp_json_t *tp_json_get(const tp_json_t *object, const char *key);
/* Element i of an array, or NULL. */
const tp_json_t *tp_json_at(const tp_json_t *array, size_t index);

/* Exact integer conversions of a NUMBER node; -1 if it is not an integer in range. */
int tp_json_to_u64(const tp_json_t *node, uint64_t *out);
int tp_json_to_i64(const tp_json_t *node, int64_t *out);

/* Structural equality: same types, numbers compared as exact integers when both are integers, otherwise as
 * doubles; object members compared regardless of order. */
bool tp_json_equal(const tp_json_t *a, const tp_json_t *b);

/* Re-indent compact JSON text (as produced by our writers) with two spaces per level. */
void tp_json_pretty(tp_strbuf_t *out, const char *compact);

#endif
