/* Datagram validation for the Aeron UDP frames; see tp_udp_frame.h. */
#include "bus/tp_udp_frame.h"

/* DATA datagrams carry one or more whole frames, each 32-byte aligned, optionally ending in a PAD header. */
static int classify_data(const uint8_t *d, size_t length)
{
    if (length < TP_UDP_DATA_HEADER_LENGTH || length % TP_UDP_FRAME_ALIGNMENT != 0)
    {
        /* Senders send whole aligned frames; a heartbeat is exactly one header. */
        return length == TP_UDP_DATA_HEADER_LENGTH ? TP_UDP_TYPE_DATA : -1;
    }
    if (tp_udp_frame_length(d) == 0)
    {
        return length == TP_UDP_DATA_HEADER_LENGTH && tp_udp_frame_type(d) == TP_UDP_TYPE_DATA ? TP_UDP_TYPE_DATA : -1;
    }
    size_t at = 0;
    while (at < length)
    {
        const uint8_t *f = d + at;
        int32_t frame_length = tp_udp_frame_length(f);
        int16_t type = tp_udp_frame_type(f);
        if (f[TP_UDP_OFF_VERSION] != TP_UDP_FRAME_VERSION || frame_length < TP_UDP_DATA_HEADER_LENGTH)
        {
            return -1;
        }
        if (type == TP_UDP_TYPE_PAD)
        {
            /* Only its header travels; the length says how much of the term it fills. */
            return at + TP_UDP_DATA_HEADER_LENGTH == length ? TP_UDP_TYPE_DATA : -1;
        }
        if (type != TP_UDP_TYPE_DATA || (size_t)tp_udp_align((uint32_t)frame_length) > length - at)
        {
            return -1;
        }
        at += tp_udp_align((uint32_t)frame_length);
    }
    return TP_UDP_TYPE_DATA;
}

int tp_udp_frame_classify(const uint8_t *d, size_t length)
{
    if (length < 8 || d[TP_UDP_OFF_VERSION] != TP_UDP_FRAME_VERSION)
    {
        return -1;
    }
    int16_t type = tp_udp_frame_type(d);
    int32_t frame_length = tp_udp_frame_length(d);
    size_t need;
    switch (type)
    {
    case TP_UDP_TYPE_PAD:
    case TP_UDP_TYPE_DATA: return classify_data(d, length);
    case TP_UDP_TYPE_SM: need = TP_UDP_SM_LENGTH; break;
    case TP_UDP_TYPE_NAK: need = TP_UDP_NAK_LENGTH; break;
    case TP_UDP_TYPE_SETUP: need = TP_UDP_SETUP_LENGTH; break;
    case TP_UDP_TYPE_RTTM: need = TP_UDP_RTTM_LENGTH; break;
    case TP_UDP_TYPE_ERR: need = TP_UDP_ERR_LENGTH; break;
    default: return type >= 0 ? type : -1; /* a frame we do not speak (RES, ATS, extensions): not ours to judge */
    }
    if (length < need || frame_length < (int32_t)need || (size_t)frame_length > length)
    {
        return -1;
    }
    return type;
}
