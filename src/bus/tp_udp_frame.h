/*
 * Aeron's UDP transport protocol: the frames on the wire, byte for byte (facts from Aeron's public protocol
 * description; our own code). Every frame starts with an 8-byte frame header, little-endian:
 *
 *   frame_length i32 | version u8 (0) | flags u8 | type i16
 *
 *   DATA / PAD (32 bytes + payload): term_offset i32 | session_id i32 | stream_id i32 | term_id i32 |
 *                                     reserved_value i64
 *   SM    (36, or 44 with a group tag): session_id | stream_id | consumption_term_id | consumption_term_offset |
 *                                     receiver_window i32 | receiver_id i64 [| group_tag i64]
 *   NAK   (28): session_id | stream_id | term_id | term_offset | length
 *   SETUP (40): term_offset | session_id | stream_id | initial_term_id | active_term_id | term_length | mtu | ttl
 *   RTTM  (40): session_id | stream_id | echo_timestamp i64 | reception_delta i64 | receiver_id i64
 *   ERR   (40 + text): session_id | stream_id | receiver_id i64 | group_tag i64 | error_code i32 | error_length i32
 *
 * A stream is a sequence of terms of term_length bytes (a power of two); a frame's place in it is
 * position = (term_id - initial_term_id) * term_length + term_offset. Frames are aligned to 32 bytes; a message
 * longer than mtu - 32 is split into fragments flagged BEGIN ... END; a message never spans two terms (the rest of
 * a term is filled by one PAD frame, sent as its 32-byte header). A DATA frame of frame_length 0 in a 32-byte
 * datagram is a heartbeat (with EOS set when the publication closes).
 */
#ifndef TP_BUS_UDP_FRAME_H
#define TP_BUS_UDP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the Aeron UDP frames are little-endian; this code reads them in host order"
#endif

#define TP_UDP_FRAME_VERSION 0
#define TP_UDP_FRAME_ALIGNMENT 32
#define TP_UDP_DATA_HEADER_LENGTH 32
#define TP_UDP_SM_LENGTH 36
#define TP_UDP_SM_GROUP_TAG_LENGTH 44
#define TP_UDP_NAK_LENGTH 28
#define TP_UDP_SETUP_LENGTH 40
#define TP_UDP_RTTM_LENGTH 40
#define TP_UDP_ERR_LENGTH 40
#define TP_UDP_MAX_MESSAGE_LENGTH (16u << 20) /* and at most term_length / 8 */

enum
{
    TP_UDP_TYPE_PAD = 0x00,
    TP_UDP_TYPE_DATA = 0x01,
    TP_UDP_TYPE_NAK = 0x02,
    TP_UDP_TYPE_SM = 0x03,
    TP_UDP_TYPE_ERR = 0x04,
    TP_UDP_TYPE_SETUP = 0x05,
    TP_UDP_TYPE_RTTM = 0x06,
    TP_UDP_TYPE_RES = 0x07,
};

#define TP_UDP_FLAG_BEGIN 0x80u
#define TP_UDP_FLAG_END 0x40u
#define TP_UDP_FLAG_EOS 0x20u
#define TP_UDP_FLAGS_UNFRAGMENTED (TP_UDP_FLAG_BEGIN | TP_UDP_FLAG_END)
#define TP_UDP_SM_FLAG_SEND_SETUP 0x80u
#define TP_UDP_SM_FLAG_EOS 0x40u
#define TP_UDP_RTTM_FLAG_REPLY 0x80u

/* Field offsets shared by the frames. */
#define TP_UDP_OFF_LENGTH 0
#define TP_UDP_OFF_VERSION 4
#define TP_UDP_OFF_FLAGS 5
#define TP_UDP_OFF_TYPE 6

static inline int32_t tp_udp_get_i32(const uint8_t *p, size_t offset)
{
    int32_t v;
    memcpy(&v, p + offset, sizeof(v));
    return v;
}

static inline int64_t tp_udp_get_i64(const uint8_t *p, size_t offset)
{
    int64_t v;
    memcpy(&v, p + offset, sizeof(v));
    return v;
}

static inline void tp_udp_put_i32(uint8_t *p, size_t offset, int32_t v)
{
    memcpy(p + offset, &v, sizeof(v));
}

static inline void tp_udp_put_i64(uint8_t *p, size_t offset, int64_t v)
{
    memcpy(p + offset, &v, sizeof(v));
}

static inline int32_t tp_udp_frame_length(const uint8_t *p)
{
    return tp_udp_get_i32(p, TP_UDP_OFF_LENGTH);
}

static inline uint8_t tp_udp_frame_flags(const uint8_t *p)
{
    return p[TP_UDP_OFF_FLAGS];
}

static inline int16_t tp_udp_frame_type(const uint8_t *p)
{
    int16_t v;
    memcpy(&v, p + TP_UDP_OFF_TYPE, sizeof(v));
    return v;
}

static inline void tp_udp_frame_header_put(uint8_t *p, int32_t frame_length, uint8_t flags, int16_t type)
{
    tp_udp_put_i32(p, TP_UDP_OFF_LENGTH, frame_length);
    p[TP_UDP_OFF_VERSION] = TP_UDP_FRAME_VERSION;
    p[TP_UDP_OFF_FLAGS] = flags;
    memcpy(p + TP_UDP_OFF_TYPE, &type, sizeof(type));
}

static inline uint32_t tp_udp_align(uint32_t length)
{
    return (length + (TP_UDP_FRAME_ALIGNMENT - 1)) & ~(uint32_t)(TP_UDP_FRAME_ALIGNMENT - 1);
}

/* ---- DATA and PAD ---- */

typedef struct tp_udp_data_header
{
    int32_t frame_length;
    uint8_t flags;
    int16_t type;
    int32_t term_offset;
    int32_t session_id;
    int32_t stream_id;
    int32_t term_id;
    int64_t reserved_value;
} tp_udp_data_header_t;

static inline void tp_udp_data_header_put(uint8_t *p, const tp_udp_data_header_t *h)
{
    tp_udp_frame_header_put(p, h->frame_length, h->flags, h->type);
    tp_udp_put_i32(p, 8, h->term_offset);
    tp_udp_put_i32(p, 12, h->session_id);
    tp_udp_put_i32(p, 16, h->stream_id);
    tp_udp_put_i32(p, 20, h->term_id);
    tp_udp_put_i64(p, 24, h->reserved_value);
}

static inline void tp_udp_data_header_get(tp_udp_data_header_t *h, const uint8_t *p)
{
    h->frame_length = tp_udp_frame_length(p);
    h->flags = tp_udp_frame_flags(p);
    h->type = tp_udp_frame_type(p);
    h->term_offset = tp_udp_get_i32(p, 8);
    h->session_id = tp_udp_get_i32(p, 12);
    h->stream_id = tp_udp_get_i32(p, 16);
    h->term_id = tp_udp_get_i32(p, 20);
    h->reserved_value = tp_udp_get_i64(p, 24);
}

/* ---- SM ---- */

typedef struct tp_udp_sm
{
    uint8_t flags;
    int32_t session_id;
    int32_t stream_id;
    int32_t consumption_term_id;
    int32_t consumption_term_offset;
    int32_t receiver_window;
    int64_t receiver_id;
} tp_udp_sm_t;

static inline void tp_udp_sm_put(uint8_t *p, const tp_udp_sm_t *m)
{
    tp_udp_frame_header_put(p, TP_UDP_SM_LENGTH, m->flags, TP_UDP_TYPE_SM);
    tp_udp_put_i32(p, 8, m->session_id);
    tp_udp_put_i32(p, 12, m->stream_id);
    tp_udp_put_i32(p, 16, m->consumption_term_id);
    tp_udp_put_i32(p, 20, m->consumption_term_offset);
    tp_udp_put_i32(p, 24, m->receiver_window);
    tp_udp_put_i64(p, 28, m->receiver_id);
}

static inline void tp_udp_sm_get(tp_udp_sm_t *m, const uint8_t *p)
{
    m->flags = tp_udp_frame_flags(p);
    m->session_id = tp_udp_get_i32(p, 8);
    m->stream_id = tp_udp_get_i32(p, 12);
    m->consumption_term_id = tp_udp_get_i32(p, 16);
    m->consumption_term_offset = tp_udp_get_i32(p, 20);
    m->receiver_window = tp_udp_get_i32(p, 24);
    m->receiver_id = tp_udp_get_i64(p, 28);
}

/* ---- NAK ---- */

typedef struct tp_udp_nak
{
    int32_t session_id;
    int32_t stream_id;
    int32_t term_id;
    int32_t term_offset;
    int32_t length;
} tp_udp_nak_t;

static inline void tp_udp_nak_put(uint8_t *p, const tp_udp_nak_t *m)
{
    tp_udp_frame_header_put(p, TP_UDP_NAK_LENGTH, 0, TP_UDP_TYPE_NAK);
    tp_udp_put_i32(p, 8, m->session_id);
    tp_udp_put_i32(p, 12, m->stream_id);
    tp_udp_put_i32(p, 16, m->term_id);
    tp_udp_put_i32(p, 20, m->term_offset);
    tp_udp_put_i32(p, 24, m->length);
}

static inline void tp_udp_nak_get(tp_udp_nak_t *m, const uint8_t *p)
{
    m->session_id = tp_udp_get_i32(p, 8);
    m->stream_id = tp_udp_get_i32(p, 12);
    m->term_id = tp_udp_get_i32(p, 16);
    m->term_offset = tp_udp_get_i32(p, 20);
    m->length = tp_udp_get_i32(p, 24);
}

/* ---- SETUP ---- */

typedef struct tp_udp_setup
{
    int32_t term_offset;
    int32_t session_id;
    int32_t stream_id;
    int32_t initial_term_id;
    int32_t active_term_id;
    int32_t term_length;
    int32_t mtu;
    int32_t ttl;
} tp_udp_setup_t;

static inline void tp_udp_setup_put(uint8_t *p, const tp_udp_setup_t *m)
{
    tp_udp_frame_header_put(p, TP_UDP_SETUP_LENGTH, 0, TP_UDP_TYPE_SETUP);
    tp_udp_put_i32(p, 8, m->term_offset);
    tp_udp_put_i32(p, 12, m->session_id);
    tp_udp_put_i32(p, 16, m->stream_id);
    tp_udp_put_i32(p, 20, m->initial_term_id);
    tp_udp_put_i32(p, 24, m->active_term_id);
    tp_udp_put_i32(p, 28, m->term_length);
    tp_udp_put_i32(p, 32, m->mtu);
    tp_udp_put_i32(p, 36, m->ttl);
}

static inline void tp_udp_setup_get(tp_udp_setup_t *m, const uint8_t *p)
{
    m->term_offset = tp_udp_get_i32(p, 8);
    m->session_id = tp_udp_get_i32(p, 12);
    m->stream_id = tp_udp_get_i32(p, 16);
    m->initial_term_id = tp_udp_get_i32(p, 20);
    m->active_term_id = tp_udp_get_i32(p, 24);
    m->term_length = tp_udp_get_i32(p, 28);
    m->mtu = tp_udp_get_i32(p, 32);
    m->ttl = tp_udp_get_i32(p, 36);
}

/* ---- RTTM ---- */

typedef struct tp_udp_rttm
{
    uint8_t flags;
    int32_t session_id;
    int32_t stream_id;
    int64_t echo_timestamp;
    int64_t reception_delta;
    int64_t receiver_id;
} tp_udp_rttm_t;

static inline void tp_udp_rttm_put(uint8_t *p, const tp_udp_rttm_t *m)
{
    tp_udp_frame_header_put(p, TP_UDP_RTTM_LENGTH, m->flags, TP_UDP_TYPE_RTTM);
    tp_udp_put_i32(p, 8, m->session_id);
    tp_udp_put_i32(p, 12, m->stream_id);
    tp_udp_put_i64(p, 16, m->echo_timestamp);
    tp_udp_put_i64(p, 24, m->reception_delta);
    tp_udp_put_i64(p, 32, m->receiver_id);
}

static inline void tp_udp_rttm_get(tp_udp_rttm_t *m, const uint8_t *p)
{
    m->flags = tp_udp_frame_flags(p);
    m->session_id = tp_udp_get_i32(p, 8);
    m->stream_id = tp_udp_get_i32(p, 12);
    m->echo_timestamp = tp_udp_get_i64(p, 16);
    m->reception_delta = tp_udp_get_i64(p, 24);
    m->receiver_id = tp_udp_get_i64(p, 32);
}

/* ---- positions ---- */

/* log2 of a power-of-two term length. */
static inline int tp_udp_term_shift(uint32_t term_length)
{
    return __builtin_ctz(term_length);
}

static inline int64_t tp_udp_position(int32_t term_id, int32_t term_offset, int shift, int32_t initial_term_id)
{
    /* Term ids wrap as 32-bit integers; the difference is what counts. */
    int64_t terms = (int64_t)(int32_t)((uint32_t)term_id - (uint32_t)initial_term_id);
    return (int64_t)((uint64_t)terms << shift) + term_offset; /* shifted unsigned: terms may be negative */
}

static inline int32_t tp_udp_term_id(int64_t position, int shift, int32_t initial_term_id)
{
    return (int32_t)((uint32_t)initial_term_id + (uint32_t)(position >> shift));
}

/* Which of the three term partitions holds position. */
static inline size_t tp_udp_partition(int64_t position, int shift)
{
    return (size_t)((position >> shift) % 3);
}

static inline uint32_t tp_udp_max_message_length(uint32_t term_length)
{
    uint32_t by_term = term_length / 8;
    return by_term < TP_UDP_MAX_MESSAGE_LENGTH ? by_term : TP_UDP_MAX_MESSAGE_LENGTH;
}

/* What a datagram holds, checked before anything in it is trusted: the first frame's type, and that every length
 * the frame claims lies inside the datagram. Returns the frame type, or -1 when it is malformed. */
int tp_udp_frame_classify(const uint8_t *datagram, size_t length);

#endif
