/*
 * tp bench --peers: one table of our figures beside the peers' own code, from real processes.
 *  - every row has our figure; the ZeroMQ and iceoryx rows have the peer's figure and a ratio where their
 *    programs were built (libzmq3-dev, libiceoryx-binding-c-dev), else the table says they were skipped;
 *  - without AERON_BIN_DIR the Aeron rows say how to get them; with it (a built Aeron), they are filled;
 *  - bad arguments exit 2, for the bench and for the peer programs.
 * Figures are not judged here (that is what the bench is for), only that they were measured.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/tp_json.h"
#include "tp_test_util.h"

static char out[1 << 16];

static int run(const char *cmd)
{
    return tp_test_run(cmd, out, sizeof(out));
}

/* The JSON object on the last line of out that starts with '{'. */
static tp_json_t *last_json(void)
{
    char *line = NULL;
    for (char *at = out; at != NULL && *at != '\0'; at = strchr(at, '\n'), at = at != NULL ? at + 1 : NULL)
    {
        line = *at == '{' ? at : line;
    }
    assert_non_null(line);
    tp_json_t *tree = NULL;
    assert_int_equal(tp_json_parse(&tree, line, strcspn(line, "\n")), 0);
    return tree;
}

static double number(const tp_json_t *object, const char *key)
{
    const tp_json_t *v = tp_json_get(object, key);
    assert_non_null(v);
    return strtod(v->text, NULL);
}

/* Every row has ours; rows of `peer` have the peer's figure and a ratio when has_peer, else nothing. */
static void check_rows(const tp_json_t *report, const char *peer, bool has_peer)
{
    const tp_json_t *rows = tp_json_get(report, "rows");
    assert_non_null(rows);
    assert_int_equal(rows->count, 9);
    int seen = 0;
    for (const tp_json_t *row = rows->child; row != NULL; row = row->next)
    {
        assert_true(number(row, "ours") > 0);
        const tp_json_t *name = tp_json_get(row, "peer");
        if (strncmp(name->text, peer, strlen(peer)) != 0)
        {
            continue;
        }
        seen++;
        if (has_peer)
        {
            assert_true(number(row, "peers") > 0);
            assert_true(number(row, "ratio") > 0);
        }
        else
        {
            assert_true(number(row, "peers") == 0);
        }
    }
    assert_true(seen >= 2);
}

static void test_peers_table(void **state)
{
    (void)state;
    assert_int_equal(run("env -u AERON_BIN_DIR " TP_TOOL
                         " bench --peers --repeats 1 --seconds 0.1 --round-trips 1000 --json 2>&1"),
        0);
    print_message("%s", out);
    tp_json_t *report = last_json();
    assert_int_equal(number(report, "rounds"), 1);
    assert_int_equal(tp_json_get(report, "placement_ns")->count, 1);
    assert_non_null(strstr(out, "Aeron: skipped (set AERON_BIN_DIR or --aeron"));
    check_rows(report, "Aeron", false);
#ifdef TP_PEER_ZMQ
    check_rows(report, "ZeroMQ", true);
#else
    assert_non_null(strstr(out, "ZeroMQ: skipped (tp-peer-zmq was not built"));
    check_rows(report, "ZeroMQ", false);
#endif
#ifdef TP_PEER_ICEORYX
    if (strstr(out, "iox-roudi did not start") != NULL)
    {
        /* RouDi reserves about 100 MB of /dev/shm; a machine without that room cannot run iceoryx at all. */
        print_message("iceoryx's figures not checked: RouDi could not start here (see its output above)\n");
        check_rows(report, "iceoryx", false);
    }
    else
    {
        check_rows(report, "iceoryx", true);
    }
#else
    assert_non_null(strstr(out, "iceoryx: skipped (tp-peer-iceoryx was not built"));
    check_rows(report, "iceoryx", false);
#endif
    tp_json_free(report);
    /* The table form: a header, a row per figure, the placement of each round. */
    assert_int_equal(run("env -u AERON_BIN_DIR " TP_TOOL " bench --peers --repeats 1 --seconds 0.1 --round-trips 1000"),
        0);
    assert_non_null(strstr(out, "figure (median of rounds)"));
    assert_non_null(strstr(out, "frames 640 KiB copy path"));
    assert_non_null(strstr(out, "placement (CPU 0 <-> CPU 1 cache-line round trip) at the start of each round:"));
}

static void test_peers_with_aeron(void **state)
{
    (void)state;
    const char *aeron = getenv("AERON_BIN_DIR");
    char probe[1024];
    snprintf(probe, sizeof(probe), "%s/aeronmd", aeron != NULL ? aeron : "");
    if (aeron == NULL || access(probe, X_OK) != 0)
    {
        print_message("skipped: AERON_BIN_DIR does not name Aeron's C binaries (docs/ARCHITECTURE.md says how)\n");
        skip();
    }
    assert_int_equal(run(TP_TOOL " bench --peers --repeats 1 --seconds 0.1 --round-trips 1000 --json 2>&1"), 0);
    tp_json_t *report = last_json();
    check_rows(report, "Aeron", true);
    tp_json_free(report);
}

static void test_peers_refuse_bad_arguments(void **state)
{
    (void)state;
    assert_int_equal(run(TP_TOOL " bench --peers --repeats 0 2>&1"), 2);
    assert_non_null(strstr(out, "--repeats"));
    assert_int_equal(run(TP_TOOL " bench --peers --seconds 100 2>&1"), 2);
    assert_int_equal(run(TP_TOOL " bench --peers --frobnicate 2>&1"), 2);
    assert_non_null(strstr(out, "unknown option '--frobnicate'"));
    assert_int_equal(run(TP_TOOL " bench --peers --help"), 0);
    assert_non_null(strstr(out, "usage: tp bench --peers"));
#ifdef TP_PEER_ZMQ
    assert_int_equal(run(TP_PEER_ZMQ " 0 1 2>&1"), 2);
    assert_non_null(strstr(out, "usage:"));
    assert_int_equal(run(TP_PEER_ZMQ " 64 0.01 2>&1"), 2);
#endif
#ifdef TP_PEER_ICEORYX
    assert_int_equal(run(TP_PEER_ICEORYX " 64 2>&1"), 2);
    assert_non_null(strstr(out, "usage:"));
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peers_refuse_bad_arguments),
        cmocka_unit_test(test_peers_table),
        cmocka_unit_test(test_peers_with_aeron),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
