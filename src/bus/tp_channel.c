/* Channel URI parsing; see tp_channel.h. */
#include "bus/tp_channel.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tp_err.h"

int tp_channel_parse_size(const char *text, size_t length, uint64_t *out)
{
    if (length == 0)
    {
        return -1;
    }
    uint64_t v = 0;
    size_t i = 0;
    for (; i < length && text[i] >= '0' && text[i] <= '9'; i++)
    {
        if (v > (UINT64_MAX - 9) / 10)
        {
            return -1;
        }
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    if (i == 0)
    {
        return -1;
    }
    if (i < length)
    {
        if (i + 1 != length)
        {
            return -1;
        }
        switch (text[i])
        {
        case 'k':
        case 'K': v <<= 10; break;
        case 'm':
        case 'M': v <<= 20; break;
        case 'g':
        case 'G': v <<= 30; break;
        default: return -1;
        }
    }
    *out = v;
    return 0;
}

/* Only decimal digits, value in [min, max]. */
static int parse_decimal(const char *text, size_t length, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (length == 0 || length > 19)
    {
        return -1;
    }
    for (size_t i = 0; i < length; i++)
    {
        if (text[i] < '0' || text[i] > '9')
        {
            return -1;
        }
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    if (v < min || v > max)
    {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_signed(const char *text, size_t length, int64_t *out)
{
    bool is_negative = length > 0 && text[0] == '-';
    uint64_t v;
    if (parse_decimal(text + is_negative, length - is_negative, 0, (uint64_t)INT64_MAX, &v) < 0)
    {
        return -1;
    }
    *out = is_negative ? -(int64_t)v : (int64_t)v;
    return 0;
}

int tp_channel_parse_duration(const char *text, size_t length, int64_t *out_ns)
{
    static const struct
    {
        const char *suffix;
        int64_t ns;
    } units[] = { { "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", 1000000000 } };
    size_t digits = 0;
    while (digits < length && text[digits] >= '0' && text[digits] <= '9')
    {
        digits++;
    }
    uint64_t v;
    if (parse_decimal(text, digits, 0, 1000000000000000ull, &v) < 0)
    {
        return -1;
    }
    if (digits == length)
    {
        *out_ns = (int64_t)v; /* Aeron's bare numbers are nanoseconds */
        return 0;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
    {
        if (length - digits == strlen(units[i].suffix) && memcmp(text + digits, units[i].suffix, length - digits) == 0)
        {
            if (v > (uint64_t)INT64_MAX / (uint64_t)units[i].ns)
            {
                return -1;
            }
            *out_ns = (int64_t)v * units[i].ns;
            return 0;
        }
    }
    return -1;
}

/* endpoint is NUL-terminated: host:port, [v6]:port */
static int parse_endpoint(tp_channel_t *c, const char *endpoint)
{
    const char *colon = strrchr(endpoint, ':');
    if (colon == NULL || colon == endpoint)
    {
        TP_SET_ERR(TP_E_INVALID, "endpoint '%s' must be host:port", endpoint);
        return -1;
    }
    const char *host = endpoint;
    size_t host_n = (size_t)(colon - endpoint);
    if (host[0] == '[')
    {
        if (host_n < 3 || host[host_n - 1] != ']')
        {
            TP_SET_ERR(TP_E_INVALID, "endpoint '%s' has a malformed [address]", endpoint);
            return -1;
        }
        host++;
        host_n -= 2;
    }
    if (host_n >= sizeof(c->host))
    {
        TP_SET_ERR(TP_E_INVALID, "endpoint host in '%s' is too long", endpoint);
        return -1;
    }
    memcpy(c->host, host, host_n);
    c->host[host_n] = '\0';
    uint64_t port;
    if (parse_decimal(colon + 1, strlen(colon + 1), 1, 65535, &port) < 0)
    {
        TP_SET_ERR(TP_E_INVALID, "endpoint port '%s' is not a number in 1..65535", colon + 1);
        return -1;
    }
    c->port = (uint16_t)port;
    return 0;
}

static int parse_param(tp_channel_t *c, const char *p, size_t n, int *has_endpoint)
{
    const char *eq = memchr(p, '=', n);
    if (eq == NULL || eq == p)
    {
        TP_SET_ERR(TP_E_INVALID, "channel parameter '%.*s' is not key=value", (int)n, p);
        return -1;
    }
    size_t key_n = (size_t)(eq - p);
    const char *v = eq + 1;
    size_t v_n = n - key_n - 1;
#define KEY_IS(s) (key_n == strlen(s) && memcmp(p, s, key_n) == 0)
    if (KEY_IS("alias"))
    {
        return 0;
    }
    if (KEY_IS("term-length"))
    {
        uint64_t len;
        if (tp_channel_parse_size(v, v_n, &len) < 0 || len < TP_IPC_TERM_LENGTH_MIN || len > TP_IPC_TERM_LENGTH_MAX ||
            (len & (len - 1)) != 0)
        {
            TP_SET_ERR(TP_E_INVALID, "term-length '%.*s' must be a power of two from 64k to 1g", (int)v_n, v);
            return -1;
        }
        c->term_length = len;
        return 0;
    }
    if (c->kind == TP_CHANNEL_UDP)
    {
        if (KEY_IS("endpoint"))
        {
            *has_endpoint = 1;
            char tmp[TP_CHANNEL_HOST_MAX + 16];
            if (v_n >= sizeof(tmp))
            {
                TP_SET_ERR(TP_E_INVALID, "endpoint is too long");
                return -1;
            }
            memcpy(tmp, v, v_n);
            tmp[v_n] = '\0';
            return parse_endpoint(c, tmp);
        }
        if (KEY_IS("interface"))
        {
            if (v_n == 0 || v_n >= sizeof(c->interface))
            {
                TP_SET_ERR(TP_E_INVALID, "interface '%.*s' is empty or too long", (int)v_n, v);
                return -1;
            }
            memcpy(c->interface, v, v_n);
            c->interface[v_n] = '\0';
            /* Aeron allows interface=ip/prefix; the address part is what we bind to. */
            char *slash = strchr(c->interface, '/');
            if (slash != NULL)
            {
                *slash = '\0';
            }
            return 0;
        }
        if (KEY_IS("ttl"))
        {
            uint64_t ttl;
            if (parse_decimal(v, v_n, 0, 255, &ttl) < 0)
            {
                TP_SET_ERR(TP_E_INVALID, "ttl '%.*s' must be 0..255", (int)v_n, v);
                return -1;
            }
            c->ttl = (int)ttl;
            return 0;
        }
        if (KEY_IS("mtu"))
        {
            uint64_t mtu;
            if (parse_decimal(v, v_n, TP_UDP_MTU_MIN, TP_UDP_MTU_MAX, &mtu) < 0 || mtu % 32 != 0)
            {
                TP_SET_ERR(TP_E_INVALID, "mtu '%.*s' must be a multiple of 32 from %u to %u", (int)v_n, v,
                    TP_UDP_MTU_MIN, TP_UDP_MTU_MAX);
                return -1;
            }
            c->mtu = (uint32_t)mtu;
            return 0;
        }
        if (KEY_IS("reliable"))
        {
            if (v_n == 4 && memcmp(v, "true", 4) == 0)
            {
                c->is_reliable = true;
                return 0;
            }
            if (v_n == 5 && memcmp(v, "false", 5) == 0)
            {
                c->is_reliable = false;
                return 0;
            }
            TP_SET_ERR(TP_E_INVALID, "reliable '%.*s' must be true or false", (int)v_n, v);
            return -1;
        }
        if (KEY_IS("session-id"))
        {
            int64_t id;
            if (parse_signed(v, v_n, &id) < 0 || id < INT32_MIN || id > INT32_MAX)
            {
                TP_SET_ERR(TP_E_INVALID, "session-id '%.*s' must be a 32-bit integer", (int)v_n, v);
                return -1;
            }
            c->has_session_id = true;
            c->session_id = (int32_t)id;
            return 0;
        }
        if (KEY_IS("fc"))
        {
            if (v_n == 3 && (memcmp(v, "min", 3) == 0 || memcmp(v, "max", 3) == 0))
            {
                c->is_fc_min = memcmp(v, "min", 3) == 0;
                return 0;
            }
            TP_SET_ERR(TP_E_INVALID, "fc '%.*s' must be min or max (tagged flow control is not supported)", (int)v_n,
                v);
            return -1;
        }
        if (KEY_IS("rcv-wnd"))
        {
            uint64_t w;
            if (tp_channel_parse_size(v, v_n, &w) < 0 || w < 4096 || w > (1u << 30))
            {
                TP_SET_ERR(TP_E_INVALID, "rcv-wnd '%.*s' must be a size from 4k to 1g", (int)v_n, v);
                return -1;
            }
            c->receiver_window = (uint32_t)w;
            return 0;
        }
        if (KEY_IS("linger"))
        {
            if (tp_channel_parse_duration(v, v_n, &c->linger_ns) < 0 || c->linger_ns > 3600LL * 1000000000LL)
            {
                TP_SET_ERR(TP_E_INVALID, "linger '%.*s' must be a duration such as 0, 500ms or 5s (at most 1h)",
                    (int)v_n, v);
                return -1;
            }
            return 0;
        }
        if (KEY_IS("control") || KEY_IS("control-mode"))
        {
            TP_SET_ERR(TP_E_UNSUPPORTED,
                "'%.*s' (multi-destination-cast) is not supported; use endpoint= with unicast or a multicast group",
                (int)key_n, p);
            return -1;
        }
    }
#undef KEY_IS
    TP_SET_ERR(TP_E_INVALID, "unsupported parameter '%.*s' for an %s channel", (int)key_n, p,
        c->kind == TP_CHANNEL_IPC ? "aeron:ipc" : "aeron:udp");
    return -1;
}

int tp_channel_parse(tp_channel_t *c, const char *uri)
{
    memset(c, 0, sizeof(*c));
    c->ttl = -1;
    c->mtu = TP_UDP_MTU_DEFAULT;
    c->is_reliable = true;
    c->linger_ns = TP_UDP_LINGER_DEFAULT_NS;
    if (uri == NULL)
    {
        TP_SET_ERR(TP_E_INVALID, "no channel given");
        return -1;
    }
    const char *rest;
    if (strncmp(uri, "aeron:ipc", 9) == 0 && (uri[9] == '\0' || uri[9] == '?'))
    {
        c->kind = TP_CHANNEL_IPC;
        c->term_length = TP_IPC_TERM_LENGTH_DEFAULT;
        rest = uri + 9;
    }
    else if (strncmp(uri, "aeron:udp", 9) == 0 && (uri[9] == '\0' || uri[9] == '?'))
    {
        c->kind = TP_CHANNEL_UDP;
        c->term_length = TP_UDP_TERM_LENGTH_DEFAULT;
        rest = uri + 9;
    }
    else
    {
        TP_SET_ERR(TP_E_INVALID, "channel '%s' is neither aeron:ipc nor aeron:udp", uri);
        return -1;
    }
    int has_endpoint = 0;
    if (*rest == '?')
    {
        rest++;
        while (1)
        {
            const char *bar = strchr(rest, '|');
            size_t n = bar != NULL ? (size_t)(bar - rest) : strlen(rest);
            if (n == 0)
            {
                TP_SET_ERR(TP_E_INVALID, "channel '%s' has an empty parameter", uri);
                return -1;
            }
            if (parse_param(c, rest, n, &has_endpoint) < 0)
            {
                TP_APPEND_ERR("in channel '%s'", uri);
                return -1;
            }
            if (bar == NULL)
            {
                break;
            }
            rest = bar + 1;
        }
    }
    if (c->kind == TP_CHANNEL_UDP && !has_endpoint)
    {
        TP_SET_ERR(TP_E_INVALID, "channel '%s' needs endpoint=host:port", uri);
        return -1;
    }
    return 0;
}
