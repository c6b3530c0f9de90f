/*
 * UDP publications in Aeron's protocol: three terms kept for retransmission, messages appended as 32-byte aligned
 * frames (fragmented past mtu - 32, padded at the end of a term), sent within the window the receivers' status
 * messages grant, SETUP until a receiver answers, heartbeats when idle, NAKs answered from the kept terms.
 *
 * Positions: pub_pos (appended) >= snd_pos (sent) and snd_pos <= snd_limit (flow control). An offer may run ahead
 * of snd_pos by half a term (Aeron's term window); past that it is back-pressured. Retransmits reach back half a
 * term and one maximum message behind snd_pos, which the three terms always still hold.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/tp_bus_internal.h"
#include "bus/tp_bus_udp.h"
#include "bus/tp_udp_frame.h"
#include "core/tp_alloc.h"
#include "core/tp_err.h"
#include "core/tp_proc.h"

#define CONTROL_BYTES 2048

struct tp_bus_udp_pub
{
    int fd;
    tp_udp_address_t dest;
    bool is_multicast;
    bool is_fc_min;
    const tp_clock_t *clock;
    uint8_t *terms;
    size_t terms_bytes;
    uint32_t term_length;
    int shift;
    int32_t initial_term_id;
    uint32_t mtu;
    uint32_t max_payload;
    int64_t pub_pos;
    int64_t snd_pos;
    int64_t snd_limit;
    int64_t last_send_ns;
    int64_t last_offer_ns;
    int64_t last_setup_ns;
    int64_t last_control_ns;
    bool has_setup_been_sent;
    bool is_setup_elicited;
    bool is_coalescing;
    int64_t claim_pos;
    tp_udp_receiver_t receivers[TP_UDP_MAX_RECEIVERS];
    int receiver_count;
    tp_udp_retransmit_t retransmits[TP_UDP_MAX_RETRANSMITS];
    tp_udp_pub_counters_t counters;
    uint8_t control[CONTROL_BYTES];
};

static inline uint8_t *term_at(struct tp_bus_udp_pub *u, int64_t position)
{
    return u->terms + tp_udp_partition(position, u->shift) * u->term_length + (size_t)(position & (u->term_length - 1));
}

static void fill_data_header(const tp_bus_publication_t *pub, uint8_t *at, int64_t position, int32_t frame_length,
    uint8_t flags, int16_t type)
{
    const struct tp_bus_udp_pub *u = pub->udp;
    tp_udp_data_header_t h = {
        .frame_length = frame_length,
        .flags = flags,
        .type = type,
        .term_offset = (int32_t)(position & (u->term_length - 1)),
        .session_id = pub->session_id,
        .stream_id = pub->stream_id,
        .term_id = tp_udp_term_id(position, u->shift, u->initial_term_id),
    };
    tp_udp_data_header_put(at, &h);
}

/* ---- sending ---- */

static bool send_datagram(struct tp_bus_udp_pub *u, const void *datagram, size_t length)
{
    if (!tp_udp_send(u->fd, datagram, length, &u->dest))
    {
        return false;
    }
    u->counters.datagrams_sent++;
    u->counters.bytes_sent += length;
    return true;
}

/* How many bytes from position form one datagram: whole frames up to mtu and limit, never past the term's end. A PAD
 * frame travels as its header alone and ends the datagram; *advance is how far the datagram moves the position. */
static uint32_t datagram_at(struct tp_bus_udp_pub *u, int64_t position, int64_t limit, int64_t *advance)
{
    uint32_t bytes = 0;
    int64_t at = position;
    *advance = 0;
    while (at < limit)
    {
        const uint8_t *f = term_at(u, at);
        uint32_t aligned = tp_udp_align((uint32_t)tp_udp_frame_length(f));
        if (tp_udp_frame_type(f) == TP_UDP_TYPE_PAD)
        {
            if (bytes + TP_UDP_DATA_HEADER_LENGTH > u->mtu)
            {
                break;
            }
            bytes += TP_UDP_DATA_HEADER_LENGTH;
            at += aligned;
            break;
        }
        if (bytes + aligned > u->mtu || at + aligned > limit)
        {
            break; /* a frame goes whole or not at all */
        }
        bytes += aligned;
        at += aligned;
    }
    *advance = at - position;
    return bytes;
}

/* Send appended data the window allows; returns bytes sent. */
static int64_t send_pending(struct tp_bus_udp_pub *u, int64_t now_ns)
{
    int64_t sent = 0;
    struct iovec iov[TP_UDP_SEND_BATCH];
    struct mmsghdr messages[TP_UDP_SEND_BATCH];
    while (u->snd_pos < u->pub_pos && u->snd_pos < u->snd_limit)
    {
        /* Up to TP_UDP_SEND_BATCH datagrams per system call. */
        int count = 0;
        int64_t at = u->snd_pos;
        int64_t limit = u->pub_pos < u->snd_limit ? u->pub_pos : u->snd_limit;
        int64_t advances[TP_UDP_SEND_BATCH];
        while (count < TP_UDP_SEND_BATCH && at < limit)
        {
            int64_t advance;
            uint32_t bytes = datagram_at(u, at, limit, &advance);
            if (bytes == 0)
            {
                break;
            }
            iov[count].iov_base = term_at(u, at);
            iov[count].iov_len = bytes;
            memset(&messages[count].msg_hdr, 0, sizeof(messages[count].msg_hdr));
            messages[count].msg_hdr.msg_iov = &iov[count];
            messages[count].msg_hdr.msg_iovlen = 1;
            messages[count].msg_hdr.msg_name = &u->dest.addr;
            messages[count].msg_hdr.msg_namelen = u->dest.length;
            advances[count] = advance;
            at += advance;
            count++;
        }
        if (count == 0)
        {
            break; /* the next frame does not fit the window */
        }
        int n = sendmmsg(u->fd, messages, (unsigned)count, MSG_DONTWAIT);
        if (n <= 0)
        {
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
            {
                n = count; /* lost on the way (no route, refused): the protocol recovers, as after any loss */
            }
            else
            {
                break; /* the socket buffer is full: later */
            }
        }
        for (int i = 0; i < n; i++)
        {
            u->snd_pos += advances[i];
            u->counters.datagrams_sent++;
            u->counters.bytes_sent += iov[i].iov_len;
            sent += (int64_t)iov[i].iov_len;
        }
        u->last_send_ns = now_ns;
        if (n < count)
        {
            break;
        }
    }
    return sent;
}

/* After an offer: send what is pending at once. A coalescing publication instead holds offers that come in a burst
 * (the one before was less than TP_UDP_COALESCE_NS ago) until they fill TP_UDP_BURST_DATAGRAMS mtu-sized datagrams,
 * sent with one system call; a lone message still goes at once, and what a burst leaves goes with the next offer
 * or tp_bus_publication_do_work, which its owner must therefore call. */
static void send_after_offer(struct tp_bus_udp_pub *u, int64_t now_ns)
{
    if (!u->is_coalescing)
    {
        send_pending(u, now_ns);
        return;
    }
    bool is_burst = now_ns - u->last_offer_ns < TP_UDP_COALESCE_NS;
    u->last_offer_ns = now_ns;
    if (!is_burst || u->pub_pos - u->snd_pos >= (int64_t)u->mtu * TP_UDP_BURST_DATAGRAMS)
    {
        if (send_pending(u, now_ns) > 0)
        {
            /* The send took a while: the burst is measured from its end, or it would never be one. */
            u->last_offer_ns = tp_clock_now(u->clock);
        }
    }
}

static void send_setup(tp_bus_publication_t *pub, int64_t now_ns)
{
    struct tp_bus_udp_pub *u = pub->udp;
    tp_udp_setup_t s = {
        .term_offset = (int32_t)(u->snd_pos & (u->term_length - 1)),
        .session_id = pub->session_id,
        .stream_id = pub->stream_id,
        .initial_term_id = u->initial_term_id,
        .active_term_id = tp_udp_term_id(u->snd_pos, u->shift, u->initial_term_id),
        .term_length = (int32_t)u->term_length,
        .mtu = (int32_t)u->mtu,
        .ttl = pub->channel.ttl >= 0 ? pub->channel.ttl : 0,
    };
    uint8_t frame[TP_UDP_SETUP_LENGTH];
    tp_udp_setup_put(frame, &s);
    if (send_datagram(u, frame, sizeof(frame)))
    {
        u->counters.setups_sent++;
        u->last_setup_ns = now_ns;
        u->has_setup_been_sent = true;
    }
}

static void send_heartbeat(tp_bus_publication_t *pub, int64_t now_ns, bool is_end_of_stream)
{
    struct tp_bus_udp_pub *u = pub->udp;
    uint8_t frame[TP_UDP_DATA_HEADER_LENGTH];
    uint8_t flags = (uint8_t)(TP_UDP_FLAGS_UNFRAGMENTED | (is_end_of_stream ? TP_UDP_FLAG_EOS : 0));
    fill_data_header(pub, frame, u->snd_pos, 0, flags, TP_UDP_TYPE_DATA);
    if (send_datagram(u, frame, sizeof(frame)))
    {
        u->counters.heartbeats_sent++;
        u->last_send_ns = now_ns;
    }
}

/* Resend [position, position + length) as the original datagrams would have carried it. */
static void resend(struct tp_bus_udp_pub *u, int64_t position, int64_t length)
{
    int64_t end = position + length;
    while (position < end)
    {
        int64_t advance;
        uint32_t bytes = datagram_at(u, position, end, &advance);
        if (bytes == 0 || !send_datagram(u, term_at(u, position), bytes))
        {
            return;
        }
        u->counters.retransmits_sent++;
        u->counters.retransmitted_bytes += bytes;
        position += advance;
    }
}

/* ---- control: status messages and NAKs ---- */

static bool is_connected(const struct tp_bus_udp_pub *u, int64_t now_ns)
{
    for (int i = 0; i < u->receiver_count; i++)
    {
        if (now_ns - u->receivers[i].last_sm_ns <= TP_UDP_CONNECTION_TIMEOUT_NS)
        {
            return true;
        }
    }
    return false;
}

/* Unicast: the latest status message sets the limit. Multicast: the slowest (fc=min) or fastest (fc=max, Aeron's
 * default) receiver heard from within the connection timeout. */
static void update_limit(struct tp_bus_udp_pub *u, int64_t now_ns)
{
    int64_t limit = -1;
    int kept = 0;
    for (int i = 0; i < u->receiver_count; i++)
    {
        tp_udp_receiver_t *r = &u->receivers[i];
        if (now_ns - r->last_sm_ns > TP_UDP_CONNECTION_TIMEOUT_NS)
        {
            continue; /* a receiver that went quiet leaves the group */
        }
        u->receivers[kept++] = *r;
        if (limit < 0 || (u->is_fc_min ? r->limit < limit : r->limit > limit))
        {
            limit = r->limit;
        }
    }
    u->receiver_count = kept;
    if (limit >= 0)
    {
        u->snd_limit = limit;
    }
}

static void on_status_message(tp_bus_publication_t *pub, const uint8_t *frame, int64_t now_ns)
{
    struct tp_bus_udp_pub *u = pub->udp;
    tp_udp_sm_t sm;
    tp_udp_sm_get(&sm, frame);
    if (sm.session_id != pub->session_id || sm.stream_id != pub->stream_id)
    {
        return; /* another publication's (multicast control is shared) */
    }
    u->counters.sms_received++;
    if ((sm.flags & TP_UDP_SM_FLAG_SEND_SETUP) != 0)
    {
        u->is_setup_elicited = true;
        return;
    }
    int64_t position = tp_udp_position(sm.consumption_term_id, sm.consumption_term_offset, u->shift,
        u->initial_term_id);
    /* A receiver cannot have consumed what was never sent, and a window is at most half a term. */
    if (sm.consumption_term_offset < 0 || (uint32_t)sm.consumption_term_offset > u->term_length ||
        position < 0 || position > u->snd_pos || position < u->snd_pos - (int64_t)u->term_length ||
        sm.receiver_window < 0)
    {
        u->counters.control_malformed++;
        return;
    }
    int64_t window = sm.receiver_window;
    if (window > (int64_t)(u->term_length / 2))
    {
        window = u->term_length / 2;
    }
    int64_t receiver_id = u->is_multicast ? sm.receiver_id : 0;
    tp_udp_receiver_t *r = NULL;
    for (int i = 0; i < u->receiver_count && r == NULL; i++)
    {
        if (u->receivers[i].receiver_id == receiver_id)
        {
            r = &u->receivers[i];
        }
    }
    if (r == NULL)
    {
        if (u->receiver_count == TP_UDP_MAX_RECEIVERS)
        {
            u->counters.control_malformed++;
            return;
        }
        r = &u->receivers[u->receiver_count++];
        r->receiver_id = receiver_id;
        r->limit = 0;
        r->consumed = 0;
    }
    r->last_sm_ns = now_ns;
    if (position + window > r->limit || !u->is_multicast)
    {
        r->limit = position + window;
    }
    if (position > r->consumed || !u->is_multicast)
    {
        r->consumed = position;
    }
    u->is_setup_elicited = false;
    update_limit(u, now_ns);
}

static void on_nak(tp_bus_publication_t *pub, const uint8_t *frame, int64_t now_ns)
{
    struct tp_bus_udp_pub *u = pub->udp;
    tp_udp_nak_t nak;
    tp_udp_nak_get(&nak, frame);
    if (nak.session_id != pub->session_id || nak.stream_id != pub->stream_id)
    {
        return;
    }
    u->counters.naks_received++;
    int64_t position = tp_udp_position(nak.term_id, nak.term_offset, u->shift, u->initial_term_id);
    int64_t bottom = u->snd_pos - (int64_t)(u->term_length / 2) - tp_udp_max_message_length(u->term_length);
    if (nak.term_offset < 0 || (uint32_t)nak.term_offset >= u->term_length || nak.term_offset % 32 != 0 ||
        nak.length <= 0 || position < 0 || position < bottom || position >= u->snd_pos)
    {
        u->counters.control_malformed++; /* a range never sent, or long gone */
        return;
    }
    int64_t length = nak.length;
    int64_t term_end = position - nak.term_offset + u->term_length;
    int64_t end = position + length;
    end = end > u->snd_pos ? u->snd_pos : end;
    end = end > term_end ? term_end : end;
    /* Retransmit once per position per linger period, so that many receivers' NAKs cost one resend. */
    int slot = -1;
    for (int i = 0; i < TP_UDP_MAX_RETRANSMITS; i++)
    {
        tp_udp_retransmit_t *r = &u->retransmits[i];
        if (r->expiry_ns > now_ns && r->position == position)
        {
            return;
        }
        if (slot < 0 && r->expiry_ns <= now_ns)
        {
            slot = i;
        }
    }
    if (slot < 0)
    {
        return; /* as many retransmits in flight as Aeron allows; the receiver asks again */
    }
    u->retransmits[slot] =
        (tp_udp_retransmit_t){ .position = position, .expiry_ns = now_ns + TP_UDP_RETRANSMIT_LINGER_NS };
    resend(u, position, end - position);
}

/* Read every control frame waiting on the socket. */
static int read_control(tp_bus_publication_t *pub, int64_t now_ns)
{
    struct tp_bus_udp_pub *u = pub->udp;
    int work = 0;
    u->last_control_ns = now_ns;
    for (;;)
    {
        ssize_t n = recv(u->fd, u->control, sizeof(u->control), MSG_DONTWAIT);
        if (n < 0)
        {
            break;
        }
        work++;
        int type = tp_udp_frame_classify(u->control, (size_t)n);
        if (type == TP_UDP_TYPE_SM)
        {
            on_status_message(pub, u->control, now_ns);
        }
        else if (type == TP_UDP_TYPE_NAK)
        {
            on_nak(pub, u->control, now_ns);
        }
        else if (type < 0)
        {
            u->counters.control_malformed++;
        }
        /* ERR, RTTM and frames for receivers are not a publication's business here. */
    }
    return work;
}

/* ---- the publication's duty cycle ---- */

static int service(tp_bus_publication_t *pub, int64_t now_ns)
{
    struct tp_bus_udp_pub *u = pub->udp;
    int work = read_control(pub, now_ns);
    update_limit(u, now_ns);
    bool connected = is_connected(u, now_ns);
    if ((!connected || u->is_setup_elicited) &&
        (!u->has_setup_been_sent || now_ns - u->last_setup_ns >= TP_UDP_SETUP_INTERVAL_NS))
    {
        send_setup(pub, now_ns);
        work++;
    }
    if (connected && send_pending(u, now_ns) > 0)
    {
        work++;
    }
    else if (connected && now_ns - u->last_send_ns >= TP_UDP_HEARTBEAT_INTERVAL_NS)
    {
        send_heartbeat(pub, now_ns, false);
        work++;
    }
    return work;
}

void tp_bus_udp_publication_set_coalescing(tp_bus_publication_t *pub, bool is_coalescing)
{
    pub->udp->is_coalescing = is_coalescing;
}

int tp_bus_udp_publication_do_work(tp_bus_publication_t *pub)
{
    return service(pub, tp_clock_now(pub->udp->clock));
}

bool tp_bus_udp_publication_is_connected(const tp_bus_publication_t *pub)
{
    return is_connected(pub->udp, tp_clock_now(pub->udp->clock));
}

void tp_bus_udp_publication_counters(const tp_bus_publication_t *pub, tp_udp_pub_counters_t *out)
{
    *out = pub->udp->counters;
}

/* ---- appending ---- */

/* Make room for required bytes in the current term, padding to its end first if they do not fit. Returns the
 * position to write at, or a TP_BUS_* code. */
static int64_t reserve(tp_bus_publication_t *pub, uint32_t required, int64_t now_ns)
{
    struct tp_bus_udp_pub *u = pub->udp;
    if (now_ns - u->last_control_ns >= TP_UDP_CONTROL_POLL_NS || !is_connected(u, now_ns))
    {
        service(pub, now_ns);
    }
    if (!is_connected(u, now_ns))
    {
        return TP_BUS_NOT_CONNECTED;
    }
    uint32_t term_offset = (uint32_t)(u->pub_pos & (u->term_length - 1));
    uint32_t padding = term_offset + required > u->term_length ? u->term_length - term_offset : 0;
    if (u->pub_pos + padding + required - u->snd_pos > (int64_t)(u->term_length / 2))
    {
        read_control(pub, now_ns);
        update_limit(u, now_ns);
        send_pending(u, now_ns);
        if (u->pub_pos + padding + required - u->snd_pos > (int64_t)(u->term_length / 2))
        {
            u->counters.back_pressured++;
            return TP_BUS_BACK_PRESSURED;
        }
    }
    if (padding > 0)
    {
        fill_data_header(pub, term_at(u, u->pub_pos), u->pub_pos, (int32_t)padding, TP_UDP_FLAGS_UNFRAGMENTED,
            TP_UDP_TYPE_PAD);
        u->pub_pos += padding;
    }
    return u->pub_pos;
}

int64_t tp_bus_udp_offer(tp_bus_publication_t *pub, const void *buffer, size_t length)
{
    struct tp_bus_udp_pub *u = pub->udp;
    int64_t now_ns = tp_clock_now(u->clock);
    uint32_t frames = length == 0 ? 1 : (uint32_t)((length + u->max_payload - 1) / u->max_payload);
    uint32_t last = (uint32_t)length - (frames - 1) * u->max_payload;
    uint32_t required = (frames - 1) * u->mtu + tp_udp_align(TP_UDP_DATA_HEADER_LENGTH + last);
    int64_t position = reserve(pub, required, now_ns);
    if (position < 0)
    {
        return position;
    }
    const uint8_t *from = buffer;
    for (uint32_t i = 0; i < frames; i++)
    {
        uint32_t payload = i + 1 == frames ? last : u->max_payload;
        uint8_t flags = (uint8_t)((i == 0 ? TP_UDP_FLAG_BEGIN : 0) | (i + 1 == frames ? TP_UDP_FLAG_END : 0));
        uint8_t *at = term_at(u, position);
        memcpy(at + TP_UDP_DATA_HEADER_LENGTH, from, payload);
        fill_data_header(pub, at, position, (int32_t)(TP_UDP_DATA_HEADER_LENGTH + payload), flags, TP_UDP_TYPE_DATA);
        from += payload;
        position += tp_udp_align(TP_UDP_DATA_HEADER_LENGTH + payload);
    }
    u->pub_pos = position;
    send_after_offer(u, now_ns);
    return u->pub_pos;
}

int64_t tp_bus_udp_try_claim(tp_bus_publication_t *pub, size_t length, tp_bus_claim_t *claim)
{
    struct tp_bus_udp_pub *u = pub->udp;
    if (length > u->max_payload)
    {
        return TP_BUS_MAX_MESSAGE_LENGTH_EXCEEDED; /* a claim is one frame, as in Aeron */
    }
    int64_t position = reserve(pub, tp_udp_align(TP_UDP_DATA_HEADER_LENGTH + (uint32_t)length),
        tp_clock_now(u->clock));
    if (position < 0)
    {
        return position;
    }
    u->claim_pos = position;
    claim->buffer = term_at(u, position) + TP_UDP_DATA_HEADER_LENGTH;
    claim->length = length;
    claim->record_bytes_ = tp_udp_align(TP_UDP_DATA_HEADER_LENGTH + (uint32_t)length);
    claim->position_ = position + (int64_t)claim->record_bytes_;
    return claim->position_;
}

int64_t tp_bus_udp_commit(tp_bus_publication_t *pub, tp_bus_claim_t *claim, bool is_abort)
{
    struct tp_bus_udp_pub *u = pub->udp;
    uint8_t *at = term_at(u, u->claim_pos);
    if (is_abort)
    {
        /* The reserved frame becomes padding the receivers skip. */
        fill_data_header(pub, at, u->claim_pos, (int32_t)claim->record_bytes_, TP_UDP_FLAGS_UNFRAGMENTED,
            TP_UDP_TYPE_PAD);
    }
    else
    {
        fill_data_header(pub, at, u->claim_pos, (int32_t)(TP_UDP_DATA_HEADER_LENGTH + claim->length),
            TP_UDP_FLAGS_UNFRAGMENTED, TP_UDP_TYPE_DATA);
    }
    u->pub_pos = u->claim_pos + (int64_t)claim->record_bytes_;
    send_after_offer(u, tp_clock_now(u->clock));
    return u->pub_pos;
}

/* ---- open and close ---- */

int tp_bus_udp_publication_open(tp_bus_publication_t *pub)
{
    struct tp_bus_udp_pub *u = NULL;
    if (tp_alloc((void **)&u, sizeof(*u)) < 0)
    {
        return -1;
    }
    u->fd = -1;
    u->terms = MAP_FAILED;
    pub->udp = u;
    u->clock = &pub->bus->clock;
    u->term_length = (uint32_t)pub->channel.term_length;
    u->shift = tp_udp_term_shift(u->term_length);
    u->mtu = pub->channel.mtu;
    u->max_payload = u->mtu - TP_UDP_DATA_HEADER_LENGTH;
    u->initial_term_id = (int32_t)tp_random_u32();
    u->is_fc_min = pub->channel.is_fc_min;
    u->last_control_ns = INT64_MIN / 2;
    u->last_offer_ns = INT64_MIN / 2;
    if (tp_udp_resolve(&pub->channel, &u->dest) < 0)
    {
        return -1;
    }
    u->is_multicast = tp_udp_is_multicast(&u->dest);
    u->terms_bytes = (size_t)3 * u->term_length;
    /* Untouched pages cost nothing; the terms fill as the stream runs. */
    u->terms = mmap(NULL, u->terms_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (u->terms == MAP_FAILED)
    {
        TP_SET_ERR(errno, "mapping %zu bytes of UDP terms: %s", u->terms_bytes, strerror(errno));
        return -1;
    }
    if (u->is_multicast)
    {
        /* Receivers send status messages and NAKs to the group's control port. */
        tp_udp_address_t control;
        if (tp_udp_control_address(&u->dest, &control) < 0 ||
            tp_udp_socket_open(&pub->channel, &control, &control, true, &u->fd) < 0)
        {
            return -1;
        }
    }
    else if (tp_udp_socket_open(&pub->channel, NULL, NULL, false, &u->fd) < 0)
    {
        return -1;
    }
    pub->session_id = pub->channel.has_session_id ? pub->channel.session_id : (int32_t)tp_random_u32();
    pub->max_message_length = tp_udp_max_message_length(u->term_length);
    /* Announce ourselves at once: a receiver that is already there answers before the first offer. */
    send_setup(pub, tp_clock_now(u->clock));
    return 0;
}

/* Give receivers the chance to take what was sent (answering their NAKs), then tell them the stream ended. */
static void linger(tp_bus_publication_t *pub)
{
    struct tp_bus_udp_pub *u = pub->udp;
    service(pub, tp_clock_now(u->clock)); /* whatever offers left coalescing goes now, as far as the window allows */
    int64_t start = tp_clock_monotonic_ns();
    while (pub->channel.linger_ns > 0 && tp_clock_monotonic_ns() - start < pub->channel.linger_ns)
    {
        int64_t now = tp_clock_now(u->clock);
        service(pub, now);
        bool is_taken = u->snd_pos == u->pub_pos;
        for (int i = 0; i < u->receiver_count && is_taken; i++)
        {
            is_taken = u->receivers[i].consumed >= u->pub_pos;
        }
        if (!is_connected(u, now) || is_taken)
        {
            break;
        }
        usleep(100);
    }
    for (int i = 0; i < 3; i++)
    {
        send_heartbeat(pub, tp_clock_now(u->clock), true);
    }
}

void tp_bus_udp_publication_close(tp_bus_publication_t *pub)
{
    struct tp_bus_udp_pub *u = pub->udp;
    if (u == NULL)
    {
        return;
    }
    if (u->fd >= 0 && u->terms != MAP_FAILED)
    {
        linger(pub);
    }
    if (u->fd >= 0)
    {
        close(u->fd);
    }
    if (u->terms != MAP_FAILED)
    {
        munmap(u->terms, u->terms_bytes);
    }
    tp_free(u);
    pub->udp = NULL;
}
