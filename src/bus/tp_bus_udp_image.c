/* A UDP subscription's image of one publication; see tp_bus_udp_image.h. */
#include "bus/tp_bus_udp_image.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "core/tp_err.h"
#include "core/tp_proc.h"

static inline uint8_t *term_at(const tp_udp_image_t *im, int64_t position)
{
    return im->terms + tp_udp_partition(position, im->shift) * im->term_length +
        (size_t)(position & (im->term_length - 1));
}

static inline int32_t term_id_of(const tp_udp_image_t *im, int64_t position)
{
    return tp_udp_term_id(position, im->shift, im->initial_term_id);
}

/* A frame is in place at position when its header says it belongs exactly there (stale frames from three terms ago
 * carry another term id). Returns its aligned length (for a PAD, the rest of the term), or 0. */
static uint32_t frame_in_place(const tp_udp_image_t *im, int64_t position)
{
    const uint8_t *f = term_at(im, position);
    int32_t length = tp_udp_frame_length(f);
    int32_t term_offset = (int32_t)(position & (im->term_length - 1));
    if (length < TP_UDP_DATA_HEADER_LENGTH || tp_udp_get_i32(f, 20) != term_id_of(im, position) ||
        tp_udp_get_i32(f, 8) != term_offset)
    {
        return 0;
    }
    return tp_udp_align((uint32_t)length);
}

int tp_udp_image_open(tp_udp_image_t *im, const tp_udp_setup_t *s, const tp_udp_address_t *control,
    const tp_udp_image_context_t *ctx, int64_t now_ns)
{
    uint32_t term_length = (uint32_t)s->term_length;
    if (s->term_length < (int32_t)TP_IPC_TERM_LENGTH_MIN || s->term_length > (int32_t)TP_IPC_TERM_LENGTH_MAX ||
        (term_length & (term_length - 1)) != 0 || s->term_offset < 0 || s->term_offset >= s->term_length ||
        s->term_offset % TP_UDP_FRAME_ALIGNMENT != 0 || s->mtu < TP_UDP_DATA_HEADER_LENGTH || s->mtu > 65504 ||
        (int32_t)((uint32_t)s->active_term_id - (uint32_t)s->initial_term_id) < 0)
    {
        TP_SET_ERR(TP_E_MALFORMED, "SETUP for session %d has term length %d, offset %d, mtu %d", s->session_id,
            s->term_length, s->term_offset, s->mtu);
        return -1;
    }
    memset(im, 0, sizeof(*im));
    im->session_id = s->session_id;
    im->stream_id = s->stream_id;
    im->initial_term_id = s->initial_term_id;
    im->term_length = term_length;
    im->shift = tp_udp_term_shift(term_length);
    im->terms_bytes = (size_t)3 * term_length;
    im->terms = mmap(NULL, im->terms_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
        0);
    im->assembly_capacity = tp_udp_max_message_length(term_length);
    im->assembly = mmap(NULL, im->assembly_capacity, PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (im->terms == MAP_FAILED || im->assembly == MAP_FAILED)
    {
        TP_SET_ERR(errno, "mapping an image of %zu bytes: %s", im->terms_bytes, strerror(errno));
        tp_udp_image_close(im);
        return -1;
    }
    /* The image joins where the sender is: nothing before its SETUP's position is asked for. */
    int64_t join_pos = tp_udp_position(s->active_term_id, s->term_offset, im->shift, im->initial_term_id);
    im->rebuild_pos = join_pos;
    im->hwm_pos = join_pos;
    im->consumed_pos = join_pos;
    uint32_t window = ctx->window_request != 0 ? ctx->window_request : TP_UDP_RECEIVER_WINDOW_DEFAULT;
    window = window < term_length / 2 ? window : term_length / 2;
    im->window = window > (uint32_t)s->mtu ? window : (uint32_t)s->mtu; /* at least one whole frame */
    im->control = *control;
    im->last_packet_ns = now_ns;
    im->is_active = true;
    tp_udp_image_send_status(im, ctx, 0, now_ns);
    return 0;
}

void tp_udp_image_close(tp_udp_image_t *im)
{
    if (im->terms != NULL && im->terms != MAP_FAILED)
    {
        munmap(im->terms, im->terms_bytes);
    }
    if (im->assembly != NULL && im->assembly != MAP_FAILED)
    {
        munmap(im->assembly, im->assembly_capacity);
    }
    im->terms = NULL;
    im->assembly = NULL;
    im->is_active = false;
}

void tp_udp_image_send_status(tp_udp_image_t *im, const tp_udp_image_context_t *ctx, uint8_t flags, int64_t now_ns)
{
    tp_udp_sm_t sm = {
        .flags = flags,
        .session_id = im->session_id,
        .stream_id = im->stream_id,
        .consumption_term_id = term_id_of(im, im->consumed_pos),
        .consumption_term_offset = (int32_t)(im->consumed_pos & (im->term_length - 1)),
        .receiver_window = (int32_t)im->window,
        .receiver_id = ctx->receiver_id,
    };
    uint8_t frame[TP_UDP_SM_LENGTH];
    tp_udp_sm_put(frame, &sm);
    if (tp_udp_send(ctx->fd, frame, sizeof(frame), &im->control))
    {
        ctx->counters->sms_sent++;
        im->last_sm_pos = im->consumed_pos;
        im->last_sm_ns = now_ns;
    }
}

static bool insert_heartbeat(tp_udp_image_t *im, const tp_udp_image_context_t *ctx, const tp_udp_data_header_t *h,
    int64_t position, int64_t now_ns)
{
    if (position < im->consumed_pos - (int64_t)im->term_length || position > im->consumed_pos + im->term_length)
    {
        return false;
    }
    ctx->counters->heartbeats_received++;
    im->last_packet_ns = now_ns;
    if (position > im->hwm_pos)
    {
        im->hwm_pos = position;
        im->is_rescan_needed = true;
    }
    if ((h->flags & TP_UDP_FLAG_EOS) != 0 && !im->has_eos)
    {
        im->has_eos = true;
        im->eos_pos = position;
    }
    return true;
}

bool tp_udp_image_insert(tp_udp_image_t *im, const tp_udp_image_context_t *ctx, const uint8_t *d, size_t length,
    int64_t now_ns)
{
    tp_udp_data_header_t h;
    tp_udp_data_header_get(&h, d);
    if (h.term_offset < 0 || (uint32_t)h.term_offset >= im->term_length || h.term_offset % TP_UDP_FRAME_ALIGNMENT != 0)
    {
        return false;
    }
    if ((int32_t)((uint32_t)h.term_id - (uint32_t)im->initial_term_id) < 0)
    {
        return false; /* before the stream's first term: no position */
    }
    int64_t position = tp_udp_position(h.term_id, h.term_offset, im->shift, im->initial_term_id);
    if (h.frame_length == 0)
    {
        return insert_heartbeat(im, ctx, &h, position, now_ns);
    }
    if ((uint64_t)h.term_offset + length > im->term_length)
    {
        return false;
    }
    /* Every frame must be the next one of this session's term: same ids, consecutive offsets. */
    int64_t end = position;
    size_t first_new = length; /* offset in the datagram of the first frame not already rebuilt */
    for (size_t at = 0; at < length;)
    {
        const uint8_t *f = d + at;
        tp_udp_data_header_t fh;
        tp_udp_data_header_get(&fh, f);
        if (fh.session_id != im->session_id || fh.stream_id != im->stream_id || fh.term_id != h.term_id ||
            fh.term_offset != h.term_offset + (int32_t)at)
        {
            return false;
        }
        uint32_t step = tp_udp_align((uint32_t)fh.frame_length);
        if (fh.type == TP_UDP_TYPE_PAD)
        {
            if ((uint64_t)fh.term_offset + (uint64_t)fh.frame_length > im->term_length)
            {
                return false; /* padding (the end of a term, or an aborted claim) stays inside its term */
            }
            at += TP_UDP_DATA_HEADER_LENGTH;
        }
        else
        {
            at += step;
        }
        if (first_new == length && position + (int64_t)(f - d) >= im->rebuild_pos)
        {
            first_new = (size_t)(f - d);
        }
        end = position + (int64_t)(f - d) + step;
    }
    if (end > im->consumed_pos + (int64_t)im->term_length || position < im->consumed_pos - (int64_t)im->term_length)
    {
        ctx->counters->overruns++;
        return true; /* well-formed, but outside the window we granted: the sender will resend */
    }
    im->last_packet_ns = now_ns;
    if (first_new == length)
    {
        ctx->counters->duplicates++;
        return true;
    }
    memcpy(term_at(im, position + (int64_t)first_new), d + first_new, length - first_new);
    if (end > im->hwm_pos)
    {
        im->hwm_pos = end;
    }
    im->is_rescan_needed = true;
    return true;
}

/* Advance rebuild_pos over the frames in place. */
static void rebuild(tp_udp_image_t *im)
{
    while (im->rebuild_pos < im->hwm_pos)
    {
        uint32_t step = frame_in_place(im, im->rebuild_pos);
        if (step == 0)
        {
            break;
        }
        im->rebuild_pos += step;
    }
}

static void deliver_one(tp_udp_image_t *im, const uint8_t *payload, uint32_t length, int64_t position,
    tp_bus_fragment_handler_t handler, void *clientd)
{
    tp_bus_header_t header = { .stream_id = im->stream_id, .session_id = im->session_id, .position = position };
    handler(clientd, payload, length, &header);
}

int tp_udp_image_deliver(tp_udp_image_t *im, const tp_udp_image_context_t *ctx, tp_bus_fragment_handler_t handler,
    void *clientd, int limit)
{
    rebuild(im);
    int delivered = 0;
    while (im->consumed_pos < im->rebuild_pos && delivered < limit)
    {
        uint8_t *f = term_at(im, im->consumed_pos);
        tp_udp_data_header_t h;
        tp_udp_data_header_get(&h, f);
        uint32_t step = tp_udp_align((uint32_t)h.frame_length);
        int64_t next = im->consumed_pos + step;
        uint32_t payload_length = (uint32_t)h.frame_length - TP_UDP_DATA_HEADER_LENGTH;
        const uint8_t *payload = f + TP_UDP_DATA_HEADER_LENGTH;
        if (h.type == TP_UDP_TYPE_PAD)
        {
            if (im->is_assembling)
            {
                im->is_assembling = false; /* only a skipped gap ends a message with padding */
                ctx->counters->fragments_dropped++;
            }
        }
        else if ((h.flags & TP_UDP_FLAGS_UNFRAGMENTED) == TP_UDP_FLAGS_UNFRAGMENTED)
        {
            if (im->is_assembling)
            {
                im->is_assembling = false;
                ctx->counters->fragments_dropped++;
            }
            deliver_one(im, payload, payload_length, next, handler, clientd); /* position: just past it */
            delivered++;
        }
        else if ((h.flags & TP_UDP_FLAG_BEGIN) != 0 || im->is_assembling)
        {
            if ((h.flags & TP_UDP_FLAG_BEGIN) != 0)
            {
                if (im->is_assembling)
                {
                    ctx->counters->fragments_dropped++;
                }
                im->is_assembling = true;
                im->assembly_length = 0;
            }
            if (payload_length > im->assembly_capacity - im->assembly_length)
            {
                im->is_assembling = false; /* longer than any message the term allows */
                ctx->bus_counters->malformed++;
            }
            else
            {
                memcpy(im->assembly + im->assembly_length, payload, payload_length);
                im->assembly_length += payload_length;
                if ((h.flags & TP_UDP_FLAG_END) != 0)
                {
                    im->is_assembling = false;
                    deliver_one(im, im->assembly, im->assembly_length, next, handler, clientd);
                    delivered++;
                }
            }
        }
        else
        {
            ctx->counters->fragments_dropped++; /* a middle or end whose start was skipped */
        }
        tp_udp_put_i32(f, TP_UDP_OFF_LENGTH, 0); /* consumed: never mistaken for a frame again */
        im->consumed_pos = next;
        im->is_rescan_needed = true;
    }
    return delivered;
}

/* [rebuild_pos, the next frame in place or hwm), within rebuild_pos's term. */
static int64_t measure_gap(const tp_udp_image_t *im)
{
    int64_t term_end = (im->rebuild_pos | (int64_t)(im->term_length - 1)) + 1;
    int64_t limit = im->hwm_pos < term_end ? im->hwm_pos : term_end;
    int64_t at = im->rebuild_pos + TP_UDP_FRAME_ALIGNMENT;
    while (at < limit && frame_in_place(im, at) == 0)
    {
        at += TP_UDP_FRAME_ALIGNMENT;
    }
    return (at < limit ? at : limit) - im->rebuild_pos;
}

static int64_t nak_delay(const tp_udp_image_context_t *ctx, bool is_retry)
{
    if (!ctx->is_multicast)
    {
        return is_retry ? TP_UDP_NAK_RETRY_DELAY_NS : TP_UDP_NAK_UNICAST_DELAY_NS;
    }
    /* Multicast: a random back-off, so that one receiver's NAK (and the retransmit) usually spares the others. */
    return (int64_t)(tp_random_u32() % (uint32_t)TP_UDP_NAK_MULTICAST_MAX_BACKOFF_NS);
}

static void send_nak(tp_udp_image_t *im, const tp_udp_image_context_t *ctx)
{
    tp_udp_nak_t nak = {
        .session_id = im->session_id,
        .stream_id = im->stream_id,
        .term_id = term_id_of(im, im->gap_pos),
        .term_offset = (int32_t)(im->gap_pos & (im->term_length - 1)),
        .length = (int32_t)im->gap_length,
    };
    uint8_t frame[TP_UDP_NAK_LENGTH];
    tp_udp_nak_put(frame, &nak);
    if (tp_udp_send(ctx->fd, frame, sizeof(frame), &im->control))
    {
        ctx->counters->naks_sent++;
    }
}

/* Unreliable: the gap becomes padding, which delivery skips. */
static void skip_gap(tp_udp_image_t *im, const tp_udp_image_context_t *ctx)
{
    tp_udp_data_header_t pad = {
        .frame_length = (int32_t)im->gap_length,
        .flags = TP_UDP_FLAGS_UNFRAGMENTED,
        .type = TP_UDP_TYPE_PAD,
        .term_offset = (int32_t)(im->gap_pos & (im->term_length - 1)),
        .session_id = im->session_id,
        .stream_id = im->stream_id,
        .term_id = term_id_of(im, im->gap_pos),
    };
    tp_udp_data_header_put(term_at(im, im->gap_pos), &pad);
    ctx->counters->gaps_skipped++;
    ctx->counters->bytes_skipped += (uint64_t)im->gap_length;
    ctx->bus_counters->lost_records++;
    im->has_gap = false;
    im->is_rescan_needed = true;
}

static int detect_loss(tp_udp_image_t *im, const tp_udp_image_context_t *ctx, int64_t now_ns)
{
    if (im->is_rescan_needed)
    {
        im->is_rescan_needed = false;
        rebuild(im);
        if (im->rebuild_pos >= im->hwm_pos)
        {
            im->has_gap = false;
            return 0;
        }
        int64_t length = measure_gap(im);
        if (!im->has_gap || im->gap_pos != im->rebuild_pos)
        {
            im->has_gap = true;
            im->gap_pos = im->rebuild_pos;
            im->nak_due_ns = now_ns + nak_delay(ctx, false);
        }
        im->gap_length = length;
    }
    if (!im->has_gap || now_ns < im->nak_due_ns)
    {
        return 0;
    }
    if (!ctx->is_reliable)
    {
        skip_gap(im, ctx);
        return 1;
    }
    send_nak(im, ctx);
    im->nak_due_ns = now_ns + nak_delay(ctx, true);
    return 1;
}

int tp_udp_image_do_work(tp_udp_image_t *im, const tp_udp_image_context_t *ctx, int64_t now_ns)
{
    int work = detect_loss(im, ctx, now_ns);
    if (im->consumed_pos - im->last_sm_pos >= (int64_t)(im->window / 4) ||
        now_ns - im->last_sm_ns >= TP_UDP_SM_INTERVAL_NS)
    {
        tp_udp_image_send_status(im, ctx, 0, now_ns);
        work++;
    }
    return work;
}

bool tp_udp_image_is_done(const tp_udp_image_t *im, int64_t now_ns)
{
    if (im->has_eos && im->consumed_pos >= im->eos_pos)
    {
        return true;
    }
    return now_ns - im->last_packet_ns > TP_UDP_IMAGE_LIVENESS_NS;
}
