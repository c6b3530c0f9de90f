/* Channel URIs: Aeron syntax, clear errors naming the bad part. */
#include "bus/tp_channel.h"
#include "tp_test_util.h"

static void test_ipc(void **state)
{
    (void)state;
    tp_channel_t c;
    tp_assert_ok(tp_channel_parse(&c, "aeron:ipc"));
    assert_int_equal(c.kind, TP_CHANNEL_IPC);
    assert_int_equal(c.term_length, 4u << 20);
    tp_assert_ok(tp_channel_parse(&c, "aeron:ipc?term-length=64k"));
    assert_int_equal(c.term_length, 65536);
    tp_assert_ok(tp_channel_parse(&c, "aeron:ipc?alias=control|term-length=16m"));
    assert_int_equal(c.term_length, 16u << 20);
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:ipc?term-length=3m"), "power of two");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:ipc?term-length=4k"), "power of two");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:ipc?term-length=4x"), "'4x'");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:ipc?sparse=true"), "unsupported parameter 'sparse'");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:ipc?endpoint=a:1"), "unsupported parameter 'endpoint'");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:ipcx"), "neither aeron:ipc nor aeron:udp");
    tp_assert_fails_with(tp_channel_parse(&c, "tcp://x"), "neither aeron:ipc nor aeron:udp");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:ipc?"), "empty parameter");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:ipc?term-length"), "not key=value");
}

static void test_udp(void **state)
{
    (void)state;
    tp_channel_t c;
    tp_assert_ok(tp_channel_parse(&c, "aeron:udp?endpoint=127.0.0.1:40456"));
    assert_int_equal(c.kind, TP_CHANNEL_UDP);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 40456);
    tp_assert_ok(tp_channel_parse(&c, "aeron:udp?endpoint=239.255.0.1:40457|interface=127.0.0.1/8|ttl=4|mtu=8192"));
    assert_string_equal(c.interface, "127.0.0.1");
    assert_int_equal(c.ttl, 4);
    assert_int_equal(c.mtu, 8192);
    tp_assert_ok(tp_channel_parse(&c, "aeron:udp?endpoint=[::1]:40458"));
    assert_string_equal(c.host, "::1");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp"), "needs endpoint=host:port");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=localhost"), "must be host:port");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=localhost:0"), "port '0'");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=localhost:70000"), "port '70000'");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=localhost:9x"), "port '9x'");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|ttl=300"), "ttl '300'");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|mtu=70000"), "mtu '70000'");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|mtu=1400"), "multiple of 32");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|unknown=1"), "unsupported parameter 'unknown'");
}

/* Aeron's channel options for the UDP protocol: defaults, values, and a clear error for each bad one. */
static void test_udp_protocol_options(void **state)
{
    (void)state;
    tp_channel_t c;
    tp_assert_ok(tp_channel_parse(&c, "aeron:udp?endpoint=h:1"));
    assert_int_equal(c.term_length, 16u << 20);
    assert_int_equal(c.mtu, 1408);
    assert_true(c.is_reliable);
    assert_false(c.has_session_id);
    assert_false(c.is_fc_min);
    assert_int_equal(c.receiver_window, 0);
    assert_int_equal(c.linger_ns, 1000000000);
    tp_assert_ok(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|term-length=64k|reliable=false|session-id=-7|fc=min|"
                                      "rcv-wnd=256k|linger=250ms"));
    assert_int_equal(c.term_length, 64u << 10);
    assert_false(c.is_reliable);
    assert_true(c.has_session_id);
    assert_int_equal(c.session_id, -7);
    assert_true(c.is_fc_min);
    assert_int_equal(c.receiver_window, 256u << 10);
    assert_int_equal(c.linger_ns, 250000000);
    tp_assert_ok(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|linger=0"));
    assert_int_equal(c.linger_ns, 0);
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|term-length=96k"), "power of two");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|term-length=2g"), "power of two");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|reliable=yes"), "true or false");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|session-id=3000000000"), "32-bit");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|fc=tagged"), "min or max");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|rcv-wnd=1"), "rcv-wnd '1'");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|linger=5 s"), "linger '5 s'");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|control=h:2"), "multi-destination-cast");
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|control-mode=manual"), "not supported");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipc),
        cmocka_unit_test(test_udp),
        cmocka_unit_test(test_udp_protocol_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
