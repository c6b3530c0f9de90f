/*
 * The tp command as a user runs it: decode every golden vector to its JSON, encode it back, usage errors exit 2,
 * and the demo runs clean.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_json.h"
#include "tp_test_util.h"

static char out[1 << 16];

/* Run `tp` with args (already a shell word list). */
static int run(const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s %s", TP_TOOL, args);
    return tp_test_run(cmd, out, sizeof(out));
}

static tp_json_t *vector_json(const char *name)
{
    TP_TEST_REQUIRE_SHARED();
    char path[1024];
    snprintf(path, sizeof(path), "%s/vectors/sbe/%s.json", TP_SHARED_DIR, name);
    size_t n;
    uint8_t *text = tp_test_read_file(path, &n);
    tp_json_t *j = NULL;
    tp_assert_ok(tp_json_parse(&j, (const char *)text, n));
    free(text);
    return j;
}

/* covers: W-16-1, W-16-2 */
static void test_decode_prints_each_vector(void **state)
{
    (void)state;
    TP_TEST_REQUIRE_SHARED();
    const char *names[] = { "consumer_config", "consumer_hello", "control_response", "data_source_announce",
        "data_source_meta", "qos_consumer", "qos_producer", "sequence_map", "sequence_request", "shm_pool_announce",
        "slot_header", "superblock", "tensor_header" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    {
        const char *opt = strcmp(names[i], "superblock") == 0    ? "--shm superblock"
                          : strcmp(names[i], "slot_header") == 0 ? "--shm slot"
                                                                 : "";
        char path[1024];
        snprintf(path, sizeof(path), "%s/vectors/sbe/%s.bin", TP_SHARED_DIR, names[i]);
        char args[2048];
        snprintf(args, sizeof(args), "decode %s %s", opt, path);
        assert_int_equal(run(args), 0);
        tp_json_t *got = NULL;
        tp_assert_ok(tp_json_parse(&got, out, strlen(out)));
        tp_json_t *want = vector_json(names[i]);
        assert_true(tp_json_equal(tp_json_get(got, "fields"), tp_json_get(want, "fields")));
        assert_true(tp_json_equal(tp_json_get(got, "message"), tp_json_get(want, "message")));
        if (tp_json_get(want, "embedded") != NULL)
        {
            const tp_json_t *e1 = tp_json_get(tp_json_get(got, "embedded"), "headerBytes");
            const tp_json_t *e2 = tp_json_get(tp_json_get(want, "embedded"), "headerBytes");
            assert_true(tp_json_equal(tp_json_get(e1, "fields"), tp_json_get(e2, "fields")));
        }
        tp_json_free(got);
        tp_json_free(want);
    }
}

static void test_encode_inverts_decode(void **state)
{
    (void)state;
    TP_TEST_REQUIRE_SHARED();
    char dir[512];
    tp_test_make_dir(dir, sizeof(dir), "cli");
    char path[1024];
    snprintf(path, sizeof(path), "%s/vectors/sbe/shm_pool_announce.bin", TP_SHARED_DIR);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
        "%s decode --pretty %s > %s/a.json && %s encode -o %s/a.bin %s/a.json && cmp %s %s/a.bin", TP_TOOL, path, dir,
        TP_TOOL, dir, dir, path, dir);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 0);
    snprintf(cmd, sizeof(cmd),
        "echo '{\"correlationId\":7,\"code\":\"REJECTED\",\"errorMessage\":\"no\"}' | %s encode --message "
        "control_response - | %s decode -",
        TP_TOOL, TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 0);
    tp_test_assert_contains(out, "\"code\":\"REJECTED\"");
    tp_test_remove_dir(dir);
}

static void test_bad_input_exits_2_with_a_reason(void **state)
{
    (void)state;
    TP_TEST_REQUIRE_SHARED();
    char dir[512];
    tp_test_make_dir(dir, sizeof(dir), "clibad");
    char cmd[8192];
    /* unknown schema id 999 */
    snprintf(cmd, sizeof(cmd),
        "printf '\\010\\000\\001\\000\\347\\003\\001\\000abcdefgh' > %s/x.bin; %s decode %s/x.bin 2>&1", dir, TP_TOOL,
        dir);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "unknown schema id 999");
    /* schema 900, template 99 */
    snprintf(cmd, sizeof(cmd),
        "printf '\\010\\000\\143\\000\\204\\003\\001\\000abcdefgh' > %s/y.bin; %s decode %s/y.bin 2>&1", dir, TP_TOOL,
        dir);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "no message with template id 99");
    /* truncated announce */
    snprintf(cmd, sizeof(cmd), "head -c 50 %s/vectors/sbe/shm_pool_announce.bin | %s decode - 2>&1", TP_SHARED_DIR,
        TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "truncated");
    /* trailing bytes */
    snprintf(cmd, sizeof(cmd), "(cat %s/vectors/sbe/qos_producer.bin; printf 'zz') | %s decode - 2>&1", TP_SHARED_DIR,
        TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "2 trailing bytes");
    assert_int_equal(run("decode --bogus 2>&1"), 2);
    tp_test_assert_contains(out, "unknown option '--bogus'");
    assert_int_equal(run("decode --shm nope /dev/null 2>&1"), 2);
    assert_int_equal(run("nosuchcommand 2>&1"), 2);
    tp_test_assert_contains(out, "unknown command");
    assert_int_equal(run("demo --slots 3 2>&1"), 2);
    tp_test_assert_contains(out, "not a power of two");
    assert_int_equal(run("encode --message NoSuch /dev/null 2>&1"), 2);
    tp_test_remove_dir(dir);
}

static void test_help_and_version(void **state)
{
    (void)state;
    assert_int_equal(run("--help"), 0);
    tp_test_assert_contains(out, "decode");
    tp_test_assert_contains(out, "demo");
    assert_int_equal(run("--version"), 0);
    tp_test_assert_contains(out, "tensorpool");
    const char *cmds[] = { "decode", "encode", "demo", "bench", "bench bus", "bench attach", "bench frames",
        "bench join", "config", "config check", "driver", "driver status", "trace", "produce" };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
    {
        char args[64];
        snprintf(args, sizeof(args), "%s --help", cmds[i]);
        assert_int_equal(run(args), 0);
        tp_test_assert_contains(out, "usage: tp");
        tp_test_assert_contains(out, "exit status");
    }
}

static void test_demo_runs_clean(void **state)
{
    (void)state;
    assert_int_equal(run("demo --seconds 1 --width 320 --height 240 --slots 8 --slow-ms 1 --json"), 0);
    const char *last = out;
    for (const char *p = strchr(out, '\n'); p != NULL && p[1] != '\0'; p = strchr(p + 1, '\n'))
    {
        last = p + 1;
    }
    tp_json_t *j = NULL;
    tp_assert_ok(tp_json_parse(&j, last, strcspn(last, "\n")));
    assert_true(tp_json_get(j, "final")->boolean);
    uint64_t v;
    tp_assert_ok(tp_json_to_u64(tp_json_get(j, "checksum_failures"), &v));
    assert_int_equal(v, 0);
    tp_assert_ok(tp_json_to_u64(tp_json_get(j, "produced"), &v));
    assert_true(v > 0);
    const tp_json_t *fast = tp_json_at(tp_json_get(j, "consumers"), 0);
    uint64_t frames;
    tp_assert_ok(tp_json_to_u64(tp_json_get(fast, "frames"), &frames));
    assert_true(frames > 0);
    tp_json_free(j);
}

static void test_bench_bus_reports_figures(void **state)
{
    (void)state;
    assert_int_equal(run("bench bus --repeats 1 --seconds 0.2 --round-trips 1000 --json"), 0);
    tp_json_t *j = NULL;
    tp_assert_ok(tp_json_parse(&j, out, strcspn(out, "\n")));
    const tp_json_t *t = tp_json_get(j, "throughput");
    assert_int_equal(t->count, 4);
    uint64_t rate;
    tp_assert_ok(tp_json_to_u64(tp_json_get(tp_json_at(t, 0), "msgs_per_s"), &rate));
    assert_true(rate > 0);
    uint64_t offered;
    tp_assert_ok(tp_json_to_u64(tp_json_get(tp_json_at(t, 0), "offered_per_s"), &offered));
    assert_true(offered > 0);
    assert_int_equal(tp_json_get(j, "round_trip_us")->count, 2);
    assert_non_null(tp_json_get(j, "idle_subscriber_cpu_ms_per_s"));
    tp_json_free(j);
    assert_int_equal(run("bench bus --repeats 0 2>&1"), 2);
    assert_int_equal(run("bench nothing 2>&1"), 2);
}

static void test_bench_attach_reports_figures(void **state)
{
    (void)state;
    assert_int_equal(run("bench attach --requests 50 --repeats 2 --json"), 0);
    tp_json_t *j = NULL;
    tp_assert_ok(tp_json_parse(&j, out, strcspn(out, "\n")));
    const char *kinds[] = { "consumer attach", "detach", "producer attach (new epoch)" };
    for (size_t i = 0; i < 3; i++)
    {
        const tp_json_t *k = tp_json_get(j, kinds[i]);
        assert_non_null(k);
        double p50 = strtod(tp_json_get(k, "p50")->text, NULL);
        double p99 = strtod(tp_json_get(k, "p99")->text, NULL);
        assert_true(p50 > 0 && p99 >= p50);
    }
    tp_json_free(j);
    assert_int_equal(run("bench attach --requests 0 2>&1"), 2);
}

static void test_bench_frames_reports_figures(void **state)
{
    (void)state;
    assert_int_equal(run("bench frames --seconds 0.05 --repeats 1 --latency-frames 200 --json"), 0);
    tp_json_t *j = NULL;
    tp_assert_ok(tp_json_parse(&j, out, strcspn(out, "\n")));
    const tp_json_t *sizes = tp_json_get(j, "sizes");
    assert_int_equal(sizes->count, 4);
    for (size_t i = 0; i < sizes->count; i++)
    {
        const tp_json_t *s = tp_json_at(sizes, i);
        assert_true(strtod(tp_json_get(s, "memcpy_cold_gib_s")->text, NULL) > 0);
        assert_true(strtod(tp_json_get(s, "memcpy_dram_gib_s")->text, NULL) > 0);
        assert_true(strtod(tp_json_get(s, "copy_frames_per_s")->text, NULL) > 0);
        assert_true(strtod(tp_json_get(s, "claim_frames_per_s")->text, NULL) > 0);
    }
    assert_true(strtod(tp_json_get(tp_json_get(j, "latency_us"), "p50")->text, NULL) > 0);
    assert_string_equal(tp_json_get(j, "consumer")->text, "thread");
    tp_json_free(j);
    /* The consumer in a process of its own, as the peers' are: every frame still reaches it. */
    assert_int_equal(run("bench frames --seconds 0.05 --repeats 1 --latency-frames 200 --processes --json"), 0);
    tp_assert_ok(tp_json_parse(&j, out, strcspn(out, "\n")));
    assert_string_equal(tp_json_get(j, "consumer")->text, "process");
    sizes = tp_json_get(j, "sizes");
    for (size_t i = 0; i < sizes->count; i++)
    {
        assert_true(strtod(tp_json_get(tp_json_at(sizes, i), "claim_frames_per_s")->text, NULL) > 0);
    }
    assert_true(strtod(tp_json_get(tp_json_get(j, "latency_us"), "p50")->text, NULL) > 0);
    tp_json_free(j);
    assert_int_equal(run("bench frames --repeats 0 2>&1"), 2);
}

static void test_bench_join_reports_figures(void **state)
{
    (void)state;
    assert_int_equal(run("bench join --seconds 0.2 --json"), 0);
    tp_json_t *j = NULL;
    tp_assert_ok(tp_json_parse(&j, out, strcspn(out, "\n")));
    const tp_json_t *b = tp_json_get(j, "barrier_ns_per_input_frame");
    const char *kinds[] = { "sequence", "timestamp", "latest_value" };
    for (size_t i = 0; i < 3; i++)
    {
        assert_true(strtod(tp_json_get(b, kinds[i])->text, NULL) > 0);
    }
    const tp_json_t *p = tp_json_get(j, "pipeline");
    assert_true(strtod(tp_json_get(p, "output_frames_per_s")->text, NULL) > 0);
    assert_true(strtod(tp_json_get(p, "latency_1khz_p50_us")->text, NULL) > 0);
    assert_true(strtod(tp_json_get(p, "single_input_p50_us")->text, NULL) > 0);
    tp_json_free(j);
    assert_int_equal(run("bench join --seconds 0 2>&1"), 2);
    /* the text form names the machine and where CPU 0 and 1 sit */
    assert_int_equal(run("bench join --seconds 0.1"), 0);
    tp_test_assert_contains(out, "machine: ");
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
    {
        tp_test_assert_contains(out, "placement: CPU 0 <-> CPU 1 cache-line round trip ");
    }
}

static void test_config_commands(void **state)
{
    (void)state;
    const char *files[] = { "driver", "camera-pipeline", "integration", "bridge", "rate-limiter", "discovery" };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
    {
        char args[1024];
        snprintf(args, sizeof(args), "config check %s/config/%s.toml 2>&1", TP_SOURCE_DIR, files[i]);
        if (run(args) != 0)
        {
            print_error("%s", out);
            fail();
        }
        tp_test_assert_contains(out, ": OK: ");
        if (strstr(out, "warning") != NULL || strstr(out, "unknown key") != NULL)
        {
            print_error("config/%s.toml has warnings: %s", files[i], out);
            fail();
        }
    }
    /* the shared deployment's file names a group this machine may lack: checked with one that exists */
    char shared[1024];
    snprintf(shared, sizeof(shared), "TP_SHM_GROUP=root %s config check %s/config/shared-driver.toml 2>&1", TP_TOOL,
        TP_SOURCE_DIR);
    assert_int_equal(tp_test_run(shared, out, sizeof(out)), 0);
    tp_test_assert_contains(out, ": OK: ");
    assert_null(strstr(out, "warning"));
    snprintf(shared, sizeof(shared), "TP_SHM_GROUP=no-such-group-here %s config check %s/config/shared-driver.toml "
        "2>&1", TP_TOOL, TP_SOURCE_DIR);
    assert_int_equal(tp_test_run(shared, out, sizeof(out)), 1);
    tp_test_assert_contains(out, "shm.group");
    tp_test_assert_contains(out, "no group named 'no-such-group-here'");
    char dir[512];
    tp_test_make_dir(dir, sizeof(dir), "config");
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
        "printf '[driver]\\ncontrol_stream_id = 1000\\n[profiles.p]\\nheader_nslots = 3\\n"
        "payload_pools = [{pool_id = 1, "
        "stride_bytes = 100}]\\n' > %s/bad.toml && %s config check %s/bad.toml 2>&1",
        dir, TP_TOOL, dir);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 1);
    tp_test_assert_contains(out, "bad.toml:3: profiles.p: header_nslots 3 is not a power of two");
    tp_test_assert_contains(out, "stride_bytes 100 is not a power-of-two multiple of 64");
    tp_test_assert_contains(out, "error(s) in this driver configuration");
    snprintf(cmd, sizeof(cmd), "printf 'a = [1,\\n' > %s/broken.toml && %s config check %s/broken.toml 2>&1", dir,
        TP_TOOL, dir);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 1);
    tp_test_assert_contains(out, "broken.toml:1:5: unterminated array");
    snprintf(cmd, sizeof(cmd), "TP_DRIVER_CONTROL_STREAM_ID=1555 %s config dump --json %s/config/driver.toml", TP_TOOL,
        TP_SOURCE_DIR);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 0);
    tp_json_t *j = NULL;
    tp_assert_ok(tp_json_parse(&j, out, strlen(out)));
    uint64_t v;
    tp_assert_ok(tp_json_to_u64(tp_json_get(j, "driver.control_stream_id"), &v));
    assert_int_equal(v, 1555);
    tp_json_free(j);
    /* docs/CONFIG.md is exactly what the tables say */
    snprintf(cmd, sizeof(cmd), "%s config docs | cmp - %s/docs/CONFIG.md", TP_TOOL, TP_SOURCE_DIR);
    if (tp_test_run(cmd, out, sizeof(out)) != 0)
    {
        print_error("docs/CONFIG.md is out of date: run tp config docs > docs/CONFIG.md\n");
        fail();
    }
    assert_int_equal(run("config check 2>&1"), 2);
    assert_int_equal(run("config check /nonexistent.toml 2>&1"), 2);
    assert_int_equal(run("config frobnicate 2>&1"), 2);
    assert_int_equal(run("config check --kind nope x 2>&1"), 2);
    tp_test_remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_prints_each_vector),
        cmocka_unit_test(test_encode_inverts_decode),
        cmocka_unit_test(test_bad_input_exits_2_with_a_reason),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_demo_runs_clean),
        cmocka_unit_test(test_bench_bus_reports_figures),
        cmocka_unit_test(test_bench_attach_reports_figures),
        cmocka_unit_test(test_bench_frames_reports_figures),
        cmocka_unit_test(test_bench_join_reports_figures),
        cmocka_unit_test(test_config_commands),
    };
    return tp_test_shared_result(cmocka_run_group_tests(tests, NULL, NULL));
}
