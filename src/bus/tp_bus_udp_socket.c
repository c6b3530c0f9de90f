/* UDP sockets for the bus: address resolution, unicast and multicast set-up, datagram sends. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bus/tp_bus_udp.h"
#include "core/tp_err.h"

int tp_udp_resolve(const tp_channel_t *c, tp_udp_address_t *out)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    char port[8];
    snprintf(port, sizeof(port), "%u", c->port);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(c->host, port, &hints, &res);
    if (rc != 0 || res == NULL)
    {
        TP_SET_ERR(TP_E_INVALID, "cannot resolve UDP endpoint host '%s': %s", c->host, gai_strerror(rc));
        return -1;
    }
    memset(out, 0, sizeof(*out));
    memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
    out->length = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

bool tp_udp_is_multicast(const tp_udp_address_t *a)
{
    if (a->addr.ss_family == AF_INET)
    {
        return IN_MULTICAST(ntohl(((const struct sockaddr_in *)&a->addr)->sin_addr.s_addr));
    }
    return a->addr.ss_family == AF_INET6 && IN6_IS_ADDR_MULTICAST(&((const struct sockaddr_in6 *)&a->addr)->sin6_addr);
}

int tp_udp_control_address(const tp_udp_address_t *data, tp_udp_address_t *out)
{
    /* Aeron's convention: a multicast stream's control address is the data address plus one, same port, so the
     * data address must be odd. */
    *out = *data;
    uint8_t *last;
    if (out->addr.ss_family == AF_INET)
    {
        last = (uint8_t *)&((struct sockaddr_in *)&out->addr)->sin_addr + 3;
    }
    else
    {
        last = (uint8_t *)&((struct sockaddr_in6 *)&out->addr)->sin6_addr + 15;
    }
    if ((*last & 1u) == 0)
    {
        TP_SET_ERR(TP_E_INVALID, "a multicast endpoint address must be odd: its control address is the next one, "
            "as in Aeron");
        return -1;
    }
    (*last)++;
    return 0;
}

static int interface_v4(const tp_channel_t *c, struct in_addr *out)
{
    out->s_addr = htonl(INADDR_ANY);
    if (c->interface[0] != '\0' && inet_pton(AF_INET, c->interface, out) != 1)
    {
        TP_SET_ERR(TP_E_INVALID, "interface '%s' is not an IPv4 address", c->interface);
        return -1;
    }
    return 0;
}

static int socket_setup(int fd, const tp_channel_t *c, const tp_udp_address_t *bind_to, const tp_udp_address_t *join,
    bool sends_multicast)
{
    int one = 1;
    int buffer_bytes = 4 << 20;
    /* Best effort: the kernel caps them at net.core.[rw]mem_max. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof(buffer_bytes));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof(buffer_bytes));
    if (bind_to != NULL)
    {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (tp_udp_is_multicast(bind_to))
        {
            /* Several processes listen to one group. */
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        }
        if (bind(fd, (const struct sockaddr *)&bind_to->addr, bind_to->length) < 0)
        {
            char host[INET6_ADDRSTRLEN] = "?";
            int port = 0;
            if (bind_to->addr.ss_family == AF_INET)
            {
                const struct sockaddr_in *in = (const struct sockaddr_in *)&bind_to->addr;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                port = ntohs(in->sin_port);
            }
            TP_SET_ERR(errno, "binding UDP %s:%d failed: %s%s", host, port, strerror(errno),
                errno == EADDRINUSE ? " (another process listens there; unicast endpoints serve one process)" : "");
            return -1;
        }
    }
    if (sends_multicast)
    {
        struct in_addr ifaddr;
        unsigned char ttl = (unsigned char)(c->ttl >= 0 ? c->ttl : 1);
        unsigned char loop = 1;
        if (interface_v4(c, &ifaddr) < 0 ||
            setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) < 0 ||
            setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) < 0 ||
            (c->interface[0] != '\0' && setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof(ifaddr)) < 0))
        {
            TP_SET_ERR(errno != 0 ? errno : TP_E_INVALID, "configuring multicast on '%s': %s", c->host,
                strerror(errno));
            return -1;
        }
    }
    if (join != NULL && join->addr.ss_family == AF_INET)
    {
        struct ip_mreq mreq;
        mreq.imr_multiaddr = ((const struct sockaddr_in *)&join->addr)->sin_addr;
        if (interface_v4(c, &mreq.imr_interface) < 0 ||
            setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) < 0)
        {
            TP_SET_ERR(errno != 0 ? errno : TP_E_INVALID, "joining multicast group %s failed: %s", c->host,
                strerror(errno));
            return -1;
        }
    }
    return 0;
}

int tp_udp_socket_open(const tp_channel_t *c, const tp_udp_address_t *bind_to, const tp_udp_address_t *join,
    bool sends_multicast, int *fd_out)
{
    int family = bind_to != NULL ? bind_to->addr.ss_family : (join != NULL ? join->addr.ss_family : AF_INET);
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
    {
        TP_SET_ERR(errno, "UDP socket: %s", strerror(errno));
        return -1;
    }
    if (socket_setup(fd, c, bind_to, join, sends_multicast) < 0)
    {
        close(fd);
        return -1;
    }
    *fd_out = fd;
    return 0;
}

bool tp_udp_send(int fd, const void *datagram, size_t length, const tp_udp_address_t *to)
{
    ssize_t n = sendto(fd, datagram, length, MSG_DONTWAIT, (const struct sockaddr *)&to->addr, to->length);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
    {
        return false;
    }
    /* Other errors (no route, refused) lose the datagram, which UDP allows: the protocol recovers or times out. */
    return true;
}
