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
    tp_assert_fails_with(tp_channel_parse(&c, "aeron:udp?endpoint=h:1|term-length=64k"),
        "unsupported parameter 'term-length'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipc),
        cmocka_unit_test(test_udp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
