/*
 * Region URIs: only shm:file?path=<abs>[|require_hugepages=true|false].
 */
#include <string.h>

#include "shm/tp_region_uri.h"
#include "tp_test_util.h"

static int parse(const char *s, tp_region_uri_t *u)
{
    return tp_region_uri_parse(u, s, strlen(s));
}

/* covers: W-15.22-1 */
static void test_valid(void **state)
{
    (void)state;
    tp_region_uri_t u;
    tp_assert_ok(parse("shm:file?path=/dev/shm/tensorpool-alice/default/10000/1/header.ring", &u));
    assert_string_equal(u.path, "/dev/shm/tensorpool-alice/default/10000/1/header.ring");
    assert_false(u.require_hugepages);
    tp_assert_ok(parse("shm:file?path=/dev/hugepages/x|require_hugepages=true", &u));
    assert_true(u.require_hugepages);
    tp_assert_ok(parse("shm:file?require_hugepages=false|path=/a", &u));
    assert_false(u.require_hugepages);
    assert_string_equal(u.path, "/a");
    char buf[128];
    tp_assert_ok(tp_region_uri_format(buf, sizeof(buf), "/dev/shm/p", true));
    assert_string_equal(buf, "shm:file?path=/dev/shm/p|require_hugepages=true");
}

/* covers: W-15.22-2, W-15.22-3, W-15.22-4, W-15.21a.5-1 */
static void test_rejected(void **state)
{
    (void)state;
    tp_region_uri_t u;
    tp_assert_fails_with(parse("shm:///tmp/pool1", &u), "unsupported region URI scheme 'shm'");
    tp_assert_fails_with(parse("file:///tmp/x", &u), "unsupported region URI scheme 'file'");
    /* Only file paths, which the containment rules cover: no name or handle of another kind is accepted.
     * covers: W-15.22-6 */
    tp_assert_fails_with(parse("shm:memfd?name=pool1", &u), "unsupported region URI scheme");
    tp_assert_fails_with(parse("shm:posix?name=/pool1", &u), "unsupported region URI scheme");
    tp_assert_fails_with(parse("shm:file?fd=3", &u), "unknown parameter 'fd'");
    tp_assert_fails_with(parse("shm:file?path=relative/x", &u), "not absolute");
    tp_assert_fails_with(parse("shm:file?path=", &u), "not absolute");
    tp_assert_fails_with(parse("shm:file?require_hugepages=true", &u), "no path");
    tp_assert_fails_with(parse("shm:file?path=/a|mode=rw", &u), "unknown parameter 'mode'");
    tp_assert_fails_with(parse("shm:file?path=/a|require_hugepages=yes", &u), "'true' or 'false'");
    tp_assert_fails_with(parse("shm:file?path=/a|path=/b", &u), "repeats 'path'");
    tp_assert_fails_with(parse("shm:file?path=/a b", &u), "forbidden byte 0x20");
    tp_assert_fails_with(parse("shm:file?path=/a?b", &u), "forbidden byte 0x3f");
    tp_assert_fails_with(parse("shm:file?path=/a\x01", &u), "forbidden byte 0x01");
    tp_assert_fails_with(parse("shm:file?path=/a\xc3\xa9", &u), "forbidden byte 0xc3");
    tp_assert_fails_with(parse("shm:file?path=/a|", &u), "empty parameter");
    tp_assert_fails_with(parse("shm:file?path=/a&require_hugepages=true", &u), "not '&'");
    /* the length bounds the parse: bytes past it are not read */
    tp_assert_ok(tp_region_uri_parse(&u, "shm:file?path=/abc|junk", 18));
    assert_string_equal(u.path, "/abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
