/*
 * SBE runtime: schema metadata, bounds-checked decoding, sequential encoding, generic JSON.
 *
 * The code generator (tools/sbe_gen.py) turns each schema under schemas/ into metadata tables plus thin typed
 * inline accessors over this runtime. All structural checks live here, once:
 *   - decoding walks the whole message before any accessor is used: a truncated buffer, a group count or a
 *     var-data length that runs past the end, a var-data length above the schema maximum, or a block length
 *     (message or group entry) smaller than the schema's is rejected (TP_E_MALFORMED), never read;
 *   - a newer version with a larger block length is accepted and its unknown trailing block bytes are skipped;
 *   - after a successful decode, fixed-field accessors read at fixed offsets with memcpy (SBE layouts are not
 *     naturally aligned) and cannot fail.
 * Encoding writes the message header, zeroes the block, and then groups and var-data in schema order. Skipped
 * groups are written empty and skipped var-data as length 0; writing out of order or past the buffer is
 * recorded and reported by finish.
 */
#ifndef TP_WIRE_SBE_H
#define TP_WIRE_SBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/tp_json.h"
#include "core/tp_strbuf.h"

#define TP_SBE_HEADER_LENGTH 8
#define TP_SBE_GROUP_HEADER_LENGTH 4
#define TP_SBE_VAR_LENGTH_PREFIX 4
#define TP_SBE_MAX_GROUPS 4
#define TP_SBE_MAX_VARS 4

typedef enum tp_sbe_prim
{
    TP_SBE_U8,
    TP_SBE_I8,
    TP_SBE_U16,
    TP_SBE_I16,
    TP_SBE_U32,
    TP_SBE_I32,
    TP_SBE_U64,
    TP_SBE_I64,
} tp_sbe_prim_t;

typedef enum tp_sbe_presence
{
    TP_SBE_REQUIRED,
    TP_SBE_OPTIONAL,
    TP_SBE_CONSTANT,
} tp_sbe_presence_t;

typedef struct tp_sbe_enum_meta
{
    const char *name;
    tp_sbe_prim_t encoding;
    uint32_t count;
    const char *const *names;
    const int64_t *values;
} tp_sbe_enum_meta_t;

typedef struct tp_sbe_field_meta
{
    const char *name;
    uint16_t id;
    tp_sbe_prim_t prim;
    tp_sbe_presence_t presence;
    uint16_t offset;       /* within the block */
    uint16_t array_length; /* 1 for a scalar */
    uint64_t null_bits;    /* OPTIONAL: the null value's bit pattern, zero-extended */
    int64_t constant_value;
    const tp_sbe_enum_meta_t *enum_meta; /* NULL unless the field is an enum */
} tp_sbe_field_meta_t;

typedef struct tp_sbe_var_meta
{
    const char *name;
    uint16_t id;
    bool is_ascii;
    uint32_t max_length;
} tp_sbe_var_meta_t;

typedef struct tp_sbe_body_meta tp_sbe_body_meta_t;

typedef struct tp_sbe_group_meta
{
    const char *name;
    uint16_t id;
    const tp_sbe_body_meta_t *body;
} tp_sbe_group_meta_t;

/* A message body or a group entry: a fixed block, then groups, then var-data, in schema order. */
struct tp_sbe_body_meta
{
    uint16_t block_length;
    uint16_t field_count;
    uint16_t group_count;
    uint16_t var_count;
    const tp_sbe_field_meta_t *fields;
    const tp_sbe_group_meta_t *groups;
    const tp_sbe_var_meta_t *vars;
};

typedef struct tp_sbe_message_meta
{
    const char *name;
    uint16_t schema_id;
    uint16_t schema_version;
    uint16_t template_id;
    bool is_headerless; /* SHM structs: no message header on the wire */
    tp_sbe_body_meta_t body;
} tp_sbe_message_meta_t;

typedef struct tp_sbe_schema_meta
{
    const char *name; /* short name: wire, driver, bridge, merge, tracelink, discovery */
    const char *package;
    uint16_t id;
    uint16_t version;
    uint16_t message_count;
    const tp_sbe_message_meta_t *const *messages;
} tp_sbe_schema_meta_t;

typedef struct tp_sbe_header
{
    uint16_t block_length;
    uint16_t template_id;
    uint16_t schema_id;
    uint16_t version;
} tp_sbe_header_t;

typedef struct tp_sbe_bytes
{
    const uint8_t *data;
    uint32_t length;
} tp_sbe_bytes_t;

/* A decoded body: where its block, groups and var-data sit in the buffer. */
typedef struct tp_sbe_body_view
{
    const uint8_t *base; /* start of the whole buffer */
    size_t limit;        /* its length */
    const uint8_t *block;
    uint16_t block_length; /* acting block length (may exceed the schema's) */
    uint32_t group_offset[TP_SBE_MAX_GROUPS];
    tp_sbe_bytes_t vars[TP_SBE_MAX_VARS];
    size_t end; /* offset just past this body */
} tp_sbe_body_view_t;

typedef struct tp_sbe_msg_view
{
    const tp_sbe_message_meta_t *meta;
    tp_sbe_header_t header;
    tp_sbe_body_view_t body;
    size_t encoded_length; /* header + body, the bytes the message occupies */
} tp_sbe_msg_view_t;

typedef struct tp_sbe_group_iter
{
    const tp_sbe_body_meta_t *meta;
    const uint8_t *base;
    size_t limit;
    uint16_t block_length;
    uint16_t count;
    uint16_t index;
    size_t pos;
    tp_sbe_body_view_t entry;
} tp_sbe_group_iter_t;

/* ---- little-endian loads and stores at any alignment ---- */
static inline uint8_t tp_sbe_get_u8(const uint8_t *p) { return p[0]; }
static inline int8_t tp_sbe_get_i8(const uint8_t *p) { return (int8_t)p[0]; }
static inline uint16_t tp_sbe_get_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline int16_t tp_sbe_get_i16(const uint8_t *p) { int16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t tp_sbe_get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline int32_t tp_sbe_get_i32(const uint8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t tp_sbe_get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline int64_t tp_sbe_get_i64(const uint8_t *p) { int64_t v; memcpy(&v, p, 8); return v; }
static inline void tp_sbe_put_u8(uint8_t *p, uint8_t v) { p[0] = v; }
static inline void tp_sbe_put_i8(uint8_t *p, int8_t v) { p[0] = (uint8_t)v; }
static inline void tp_sbe_put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void tp_sbe_put_i16(uint8_t *p, int16_t v) { memcpy(p, &v, 2); }
static inline void tp_sbe_put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void tp_sbe_put_i32(uint8_t *p, int32_t v) { memcpy(p, &v, 4); }
static inline void tp_sbe_put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline void tp_sbe_put_i64(uint8_t *p, int64_t v) { memcpy(p, &v, 8); }

size_t tp_sbe_prim_size(tp_sbe_prim_t prim);

/* ---- decoding ---- */

/* Read the 8-byte message header. -1 (TP_E_MALFORMED) if fewer than 8 bytes. */
int tp_sbe_header_read(tp_sbe_header_t *h, const void *buffer, size_t length);

/* Decode and fully validate one message of the given type. For a headerless message the block starts at 0. */
int tp_sbe_decode(tp_sbe_msg_view_t *view, const tp_sbe_message_meta_t *meta, const void *buffer, size_t length);

/* Start iterating group `index` of a decoded body. Returns the entry count. */
uint16_t tp_sbe_group_iter_init(tp_sbe_group_iter_t *it, const tp_sbe_body_view_t *parent,
    const tp_sbe_body_meta_t *parent_meta, uint16_t index);

/* Move to the next entry; false when none is left. The entry view is it->entry. */
bool tp_sbe_group_iter_next(tp_sbe_group_iter_t *it);

/* Read one element of a field as a widened integer (sign-extended for signed types). */
int64_t tp_sbe_field_get_i64(const tp_sbe_body_view_t *v, const tp_sbe_field_meta_t *f, uint16_t element);
uint64_t tp_sbe_field_get_bits(const tp_sbe_body_view_t *v, const tp_sbe_field_meta_t *f, uint16_t element);

/* true if value is one of the enum's valid values. */
bool tp_sbe_enum_is_valid(const tp_sbe_enum_meta_t *e, int64_t value);
/* Name of a valid value, or NULL. */
const char *tp_sbe_enum_name(const tp_sbe_enum_meta_t *e, int64_t value);

/* Check every enum field (recursively, groups too) holds a valid value (or the null value when optional).
 * -1 with a message naming the field and the value otherwise. */
int tp_sbe_check_enums(const tp_sbe_msg_view_t *view);

/* ---- encoding ---- */

typedef struct tp_sbe_cursor
{
    uint8_t *buffer;
    size_t capacity;
    size_t pos;
    int error; /* 0, or the first TP_SBE_ENC_* problem */
    const char *error_detail;
} tp_sbe_cursor_t;

enum
{
    TP_SBE_ENC_OVERFLOW = 1,
    TP_SBE_ENC_ORDER = 2,
    TP_SBE_ENC_COUNT = 3,
    TP_SBE_ENC_TOO_LONG = 4,
};

typedef struct tp_sbe_group_enc tp_sbe_group_enc_t;

typedef struct tp_sbe_body_enc
{
    tp_sbe_cursor_t *cursor;
    const tp_sbe_body_meta_t *meta;
    uint8_t *block; /* NULL when the block did not fit */
    uint16_t stage; /* next group/var ordinal: groups 0..G-1, then vars G..G+V-1 */
    tp_sbe_group_enc_t *open_group;
} tp_sbe_body_enc_t;

struct tp_sbe_group_enc
{
    tp_sbe_body_enc_t *parent;
    const tp_sbe_body_meta_t *meta;
    uint16_t count;
    uint16_t written;
    tp_sbe_body_enc_t entry;
};

/* Encoder state; must not move in memory between begin and finish (the body points into it). */
typedef struct tp_sbe_msg_enc
{
    const tp_sbe_message_meta_t *meta;
    tp_sbe_cursor_t cursor;
    tp_sbe_body_enc_t body;
} tp_sbe_msg_enc_t;

/* Start a message in buffer: header (unless headerless) and a zeroed block. Errors surface at finish. */
void tp_sbe_enc_begin(tp_sbe_msg_enc_t *e, const tp_sbe_message_meta_t *meta, void *buffer, size_t capacity);

/* Start group `index` of body with `count` entries; fill it with tp_sbe_enc_group_next. */
void tp_sbe_enc_group_begin(tp_sbe_body_enc_t *body, uint16_t index, tp_sbe_group_enc_t *g, uint16_t count);

/* Open the next entry of g; its body is g->entry. */
void tp_sbe_enc_group_next(tp_sbe_group_enc_t *g);

/* Close g now (optional: the next group, var-data or finish closes it). g must stay alive until it is closed. */
void tp_sbe_enc_group_end(tp_sbe_group_enc_t *g);

/* Write var-data `index` (ordinal among the body's var-data). */
void tp_sbe_enc_var(tp_sbe_body_enc_t *body, uint16_t index, const void *data, size_t length);

/* Complete the message; returns its encoded length, or -1 (TP_E_MALFORMED / TP_E_CAPACITY) with a message. */
int64_t tp_sbe_enc_finish(tp_sbe_msg_enc_t *e);

/* Set one element of a field from a widened value (truncated to the field's width). */
void tp_sbe_field_set_bits(tp_sbe_body_enc_t *body, const tp_sbe_field_meta_t *f, uint16_t element, uint64_t bits);

/* Where a setter writes element bytes; a block that did not fit sends writes to a scratch word (the overflow is
 * already recorded and finish will fail). */
static inline uint8_t *tp_sbe_enc_at(const tp_sbe_body_enc_t *body, size_t offset)
{
    static _Thread_local uint8_t scratch[8];
    return body->block != NULL ? body->block + offset : scratch;
}

/* ---- registry and JSON ---- */

/* All schemas this build knows (generated). */
extern const tp_sbe_schema_meta_t *const tp_sbe_schemas[];
extern const size_t tp_sbe_schema_count;

const tp_sbe_schema_meta_t *tp_sbe_schema_find(uint16_t schema_id);
const tp_sbe_message_meta_t *tp_sbe_message_find(uint16_t schema_id, uint16_t template_id);
/* By name ("ShmPoolAnnounce") or snake name ("shm_pool_announce"), across all schemas. */
const tp_sbe_message_meta_t *tp_sbe_message_find_name(const char *name);

/* Append the decoded message as JSON in the vectors' format (schema_id, template_id, message, version,
 * block_length, framing, length, fields[, embedded]). */
void tp_sbe_to_json(tp_strbuf_t *out, const tp_sbe_msg_view_t *view);
/* Only the "fields" object. */
void tp_sbe_fields_to_json(tp_strbuf_t *out, const tp_sbe_message_meta_t *meta, const tp_sbe_body_view_t *body);

/* Encode a message from a JSON "fields" object (names as in the schema). Returns the length or -1 with a
 * message naming the offending field. */
int64_t tp_sbe_from_json(const tp_sbe_message_meta_t *meta, const tp_json_t *fields, void *buffer, size_t capacity);

#endif
