/*
 * Lineage end to end, every stage its own process: `tp driver`; two traced cameras (`tp produce --trace`); the
 * join stage example fusing them into stream 9000; a rate limiter republishing 9000 as 9100 (a 1->1 stage); and
 * `tp trace record` persisting it all into SQLite, killed with SIGKILL at the end. The store then answers, for an
 * output frame, exactly the two camera frames it was made from; the 1->1 copy carries the output's trace id; and
 * the lineage store's queries (recursive lineage, children, retention) hold on a hand-made graph.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/tp_lineage.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_join.h"
#include "tp_test_util.h"

static char dir[512];
static char bus[600];
static char shm[600];
static char db[600];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* `tp trace ARGS --db DB`, its stdout into out; the exit status. */
static int trace_query(const char *args, char *out, size_t capacity)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s trace %s --db '%s' 2>&1", TP_TOOL, args, db);
    return tp_test_run(cmd, out, capacity);
}

static uint64_t json_u64(const char *json, const char *key)
{
    const char *p = strstr(json, key);
    assert_non_null(p);
    return strtoull(p + strlen(key), NULL, 10);
}

/* The trace id recorded for (stream, seq), waiting for the recorder's batch to land. */
static uint64_t trace_of(uint32_t stream, uint64_t seq)
{
    char args[128];
    char out[4096];
    snprintf(args, sizeof(args), "frame %u %llu --json", stream, (unsigned long long)seq);
    int64_t deadline = tp_clock_monotonic_ns() + 20 * TP_NS_PER_S;
    for (;;)
    {
        if (trace_query(args, out, sizeof(out)) == 0 && strstr(out, "\"trace_id\":") != NULL)
        {
            return json_u64(out, "\"trace_id\":");
        }
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(20000);
    }
}

static int on_tick_unused(void *clientd, const tp_join_tick_t *tick)
{
    (void)clientd;
    (void)tick;
    return 0;
}

/* This process joins late: its agent has no map for output 9000's epoch, asks on the control stream, and the join
 * stage process (the output's authority) answers with its map (its summary counts the requests it answered; a
 * periodic announce may also reach the agent first).
 * covers: J-10.3-1, J-10.3-2, J-10.3-3, J-10.1-7 */
static void late_join_from_another_process(void)
{
    char args[128];
    char out[4096];
    snprintf(args, sizeof(args), "frame 9000 2 --json");
    int64_t deadline = tp_clock_monotonic_ns() + 20 * TP_NS_PER_S;
    while (trace_query(args, out, sizeof(out)) != 0 || strstr(out, "\"epoch\":") == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(20000);
    }
    uint64_t epoch = json_u64(out, "\"epoch\":");
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    tp_consumer_t *inputs[2] = {NULL, NULL};
    tp_assert_ok(tp_client_context_init(&ctx));
    tp_assert_ok(tp_client_context_set(ctx, "client.bus_dir", bus));
    tp_assert_ok(tp_client_context_set(ctx, "client.allowed_base_dirs", shm));
    tp_assert_ok(tp_client_connect(&client, ctx));
    tp_assert_ok(tp_consumer_attach(&inputs[0], client, 10001, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach(&inputs[1], client, 10002, 5 * TP_NS_PER_S));
    tp_join_agent_options_t o;
    tp_join_agent_options_init(&o, TP_JOIN_SEQUENCE, 9000);
    o.inputs = inputs;
    o.input_count = 2;
    o.on_tick = on_tick_unused;
    tp_join_agent_t *agent = NULL;
    tp_assert_ok(tp_join_agent_init(&agent, client, &o));
    tp_join_barrier_set_output_epoch(tp_join_agent_barrier(agent), epoch);
    while (!tp_join_barrier_has_map(tp_join_agent_barrier(agent)))
    {
        assert_true(tp_join_agent_do_work(agent, tp_clock_monotonic_ns()) >= 0);
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(1000);
    }
    tp_merge_map_t m;
    assert_true(tp_join_barrier_map(tp_join_agent_barrier(agent), &m));
    assert_true(m.out_stream_id == 9000 && m.epoch == epoch && m.rule_count == 2);
    assert_true(m.rules[0].input_stream_id == 10001 && m.rules[1].input_stream_id == 10002);
    tp_join_agent_close(agent);
    /* One more request by hand, so that the authority's count of answered requests does not depend on whether a
     * periodic announce reached the agent before its own request went out. */
    tp_bus_t *bus_handle = NULL;
    tp_bus_publication_t *pub = NULL;
    tp_assert_ok(tp_bus_init_existing(&bus_handle, bus));
    tp_assert_ok(tp_bus_publication_open(&pub, bus_handle, "aeron:ipc?term-length=4m", 1000, false));
    tp_merge_request_t rq = {TP_MERGE_SEQUENCE, 9000, epoch};
    uint8_t buf[64];
    int64_t n = tp_merge_request_encode(&rq, buf, sizeof(buf));
    assert_true(n > 0 && tp_bus_offer(pub, buf, (size_t)n) >= 0);
    tp_bus_publication_close(pub);
    tp_bus_close(bus_handle);
    tp_consumer_close(inputs[0]);
    tp_consumer_close(inputs[1]);
    tp_client_close(client);
    tp_client_context_close(ctx);
}

/* covers: T-6.3-2, T-8.1-3, T-6.3-3, T-8.1-4, T-9.2-4, T-14-1s, T-6.1-1 */
static void test_pipeline_lineage(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "trace-pipeline");
    snprintf(bus, sizeof(bus), "%s/bus", dir);
    snprintf(shm, sizeof(shm), "%s/shm", dir);
    snprintf(db, sizeof(db), "%s/lineage.db", dir);
    mkdir(shm, 0700);
    char text[4096];
    snprintf(text, sizeof(text),
        "[driver]\nbus_dir = \"%s\"\n[shm]\nbase_dir = \"%s\"\n[policies]\nprefault_shm = false\n"
        "[profiles.small]\nheader_nslots = 256\npayload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]\n"
        "[streams.fused]\nstream_id = 9000\nprofile = \"small\"\n"
        "[streams.fused-copy]\nstream_id = 9100\nprofile = \"small\"\n"
        "[streams.camera-a]\nstream_id = 10001\nprofile = \"small\"\n"
        "[streams.camera-b]\nstream_id = 10002\nprofile = \"small\"\n",
        bus, shm);
    char config[700];
    snprintf(config, sizeof(config), "%s/driver.toml", dir);
    write_text(config, text);
    snprintf(text, sizeof(text),
        "[rate_limiter]\ninstance_id = \"copy\"\nbus_dir = \"%s\"\nshm_base_dir = \"%s\"\n"
        "descriptor_channel = \"aeron:ipc?term-length=4m\"\ndescriptor_stream_id = 1100\n"
        "[[mappings]]\nsource_stream_id = 9000\ndest_stream_id = 9100\nmax_rate_hz = 0\n",
        bus, shm);
    char limiter[700];
    snprintf(limiter, sizeof(limiter), "%s/limiter.toml", dir);
    write_text(limiter, text);
    int driver = tp_test_start_driver_process(config, bus);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "exec %s trace record --db '%s' --bus-dir '%s' > '%s/record.log' 2>&1", TP_TOOL, db,
        bus, dir);
    int recorder = tp_test_spawn(cmd);
    snprintf(cmd, sizeof(cmd), "exec %s ratelimiter '%s' > '%s/limiter.log' 2>&1", TP_TOOL, limiter, dir);
    int copy = tp_test_spawn(cmd);
    snprintf(cmd, sizeof(cmd), "exec %s lockstep '%s' '%s' 400 > '%s/join.log' 2>&1", TP_JOIN_STAGE, bus, shm, dir);
    int join = tp_test_spawn(cmd);
    char log[700];
    snprintf(log, sizeof(log), "%s/join.log", dir);
    char out[65536];
    int64_t deadline = tp_clock_monotonic_ns() + 20 * TP_NS_PER_S;
    for (;;)
    {
        snprintf(cmd, sizeof(cmd), "cat '%s'", log);
        tp_test_run(cmd, out, sizeof(out));
        if (strstr(out, "attached") != NULL)
        {
            break;
        }
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(20000);
    }
    int cams[2];
    for (int i = 0; i < 2; i++)
    {
        snprintf(cmd, sizeof(cmd), "exec %s produce %d --size 64 --rate 100 --seconds 30 --trace --bus-dir '%s' "
            "--allowed-base-dirs '%s' > /dev/null 2>&1", TP_TOOL, 10001 + i, bus, shm);
        cams[i] = tp_test_spawn(cmd);
    }
    late_join_from_another_process();
    int status = 0;
    assert_int_equal(waitpid(join, &status, 0), join);
    snprintf(cmd, sizeof(cmd), "cat '%s'", log);
    tp_test_run(cmd, out, sizeof(out));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    {
        fail_msg("the join stage failed:\n%s", out);
    }
    const char *answered = strstr(out, "dropped), ");
    assert_non_null(answered);
    assert_true(strtoull(answered + strlen("dropped), "), NULL, 10) >= 1); /* our late joiner's request */
    /* Output 5 was made in lockstep from one frame of each camera, of one and the same seq (5 when the join saw
     * both cameras' first frames; one more for each first frame a camera published before the join's consumer
     * read it): its parents are exactly those two frames. */
    uint64_t out_id = trace_of(9000, 5);
    char args[256];
    snprintf(args, sizeof(args), "parents %llu --json", (unsigned long long)out_id);
    deadline = tp_clock_monotonic_ns() + 20 * TP_NS_PER_S;
    do
    {
        assert_int_equal(trace_query(args, out, sizeof(out)), 0);
        assert_true(tp_clock_monotonic_ns() < deadline);
    } while (strstr(out, "trace_id") == NULL);
    const char *seq1 = strstr(out, "\"seq\":");
    assert_non_null(seq1);
    const char *seq2 = strstr(seq1 + 1, "\"seq\":");
    assert_non_null(seq2);
    uint64_t in_seq = json_u64(seq1, "\"seq\":");
    assert_int_equal(json_u64(seq2, "\"seq\":"), in_seq);
    assert_true(in_seq >= 5);
    uint64_t a_id = trace_of(10001, in_seq);
    uint64_t b_id = trace_of(10002, in_seq);
    assert_true(out_id != 0 && a_id != 0 && b_id != 0 && out_id != a_id && out_id != b_id && a_id != b_id);
    char want[256];
    snprintf(want, sizeof(want), "[{\"trace_id\":%llu,", (unsigned long long)(a_id < b_id ? a_id : b_id));
    tp_test_assert_contains(out, want);
    snprintf(want, sizeof(want), "]},{\"trace_id\":%llu,", (unsigned long long)(a_id < b_id ? b_id : a_id));
    tp_test_assert_contains(out, want);
    const char *third = strstr(strstr(out, want) + 1, "]},{");
    assert_null(third); /* exactly two parents */
    /* The rate limiter's copy of output 5 carries the same id (1->1); the cameras' frames have no parents. */
    assert_int_equal(trace_of(9100, 5), out_id);
    snprintf(args, sizeof(args), "show %llu", (unsigned long long)out_id);
    assert_int_equal(trace_query(args, out, sizeof(out)), 0);
    tp_test_assert_contains(out, "stream 9000 epoch");
    tp_test_assert_contains(out, "stream 9100 epoch");
    snprintf(args, sizeof(args), "parents %llu", (unsigned long long)a_id);
    assert_int_equal(trace_query(args, out, sizeof(out)), 0);
    tp_test_assert_contains(out, "(none)");
    snprintf(args, sizeof(args), "children %llu --json", (unsigned long long)a_id);
    assert_int_equal(trace_query(args, out, sizeof(out)), 0);
    snprintf(want, sizeof(want), "\"trace_id\":%llu,", (unsigned long long)out_id);
    tp_test_assert_contains(out, want);
    /* The recorder dies without warning: what it committed stays readable (WAL). */
    kill(recorder, SIGKILL);
    waitpid(recorder, NULL, 0);
    snprintf(args, sizeof(args), "lineage %llu", (unsigned long long)out_id);
    assert_int_equal(trace_query(args, out, sizeof(out)), 0);
    tp_test_assert_contains(out, "[1] trace");
    assert_int_equal(trace_of(9000, 5), out_id);
    for (int i = 0; i < 2; i++)
    {
        kill(cams[i], SIGTERM);
        waitpid(cams[i], NULL, 0);
    }
    kill(copy, SIGTERM);
    waitpid(copy, NULL, 0);
    kill(driver, SIGTERM);
    waitpid(driver, NULL, 0);
    tp_test_remove_dir(dir);
}

static int count_ids(void *clientd, uint64_t id, uint32_t depth)
{
    uint64_t *seen = clientd;
    seen[0]++;
    seen[seen[0]] = id * 100 + depth;
    return 0;
}

/* A diamond and a chain: 1 and 2 are roots; 3 <- {1, 2}; 4 <- {3}; 5 <- {3, 2}; 6 <- {4, 5}. Lineage of 6 names
 * every ancestor once at its shortest depth; retention drops what is older than the cutoff.
 * covers: T-9.1-1 */
static void test_lineage_store(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "lineage-store");
    snprintf(db, sizeof(db), "%s/l.db", dir);
    tp_lineage_t *w = NULL;
    tp_assert_ok(tp_lineage_open(&w, db, true));
    struct { uint64_t id; uint64_t parents[2]; uint32_t n; int64_t t; } links[] = {
        {3, {1, 2}, 2, 100}, {4, {3, 0}, 1, 200}, {5, {3, 2}, 2, 300}, {6, {4, 5}, 2, 400},
    };
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
    {
        tp_trace_link_t l = { .stream_id = 1, .seq = i, .trace_id = links[i].id, .parent_count = links[i].n };
        memcpy(l.parents, links[i].parents, sizeof(links[i].parents));
        tp_assert_ok(tp_lineage_add_link(w, &l, links[i].t));
        tp_lineage_frame_t f = { .stream_id = 7, .epoch = UINT64_MAX - 1, .seq = (UINT64_C(1) << 63) + i,
            .t_ns = links[i].t, .trace_id = links[i].id };
        tp_assert_ok(tp_lineage_add_frame(w, &f));
    }
    tp_assert_ok(tp_lineage_flush(w));
    uint64_t seen[16] = {0};
    tp_assert_ok(tp_lineage_ancestors(w, 6, 64, count_ids, seen));
    assert_int_equal(seen[0], 5); /* 4@1 5@1 3@2 2@2 1@3 */
    assert_int_equal(seen[1], 401);
    assert_int_equal(seen[2], 501);
    assert_int_equal(seen[3], 202);
    assert_int_equal(seen[4], 302);
    assert_int_equal(seen[5], 103);
    memset(seen, 0, sizeof(seen));
    tp_assert_ok(tp_lineage_ancestors(w, 6, 1, count_ids, seen));
    assert_int_equal(seen[0], 2);
    memset(seen, 0, sizeof(seen));
    tp_assert_ok(tp_lineage_children(w, 3, count_ids, seen));
    assert_int_equal(seen[0], 2);
    tp_lineage_frame_t f;
    assert_int_equal(tp_lineage_frame_at(w, 7, UINT64_MAX - 1, (UINT64_C(1) << 63) + 2, &f), 1);
    assert_int_equal(f.trace_id, 5);
    assert_int_equal(f.epoch, UINT64_MAX - 1); /* u64 values round-trip the signed columns */
    assert_int_equal(tp_lineage_expire(w, 250), 2 + 3); /* frames of 3, 4; links of 3 (two) and 4 */
    tp_lineage_totals_t t;
    tp_assert_ok(tp_lineage_totals(w, &t));
    assert_int_equal(t.frames, 2);
    assert_int_equal(t.links, 4);
    tp_lineage_close(w);
    /* A reader opens it read-only; a missing or foreign file is an error that names it. */
    tp_lineage_t *r = NULL;
    tp_assert_ok(tp_lineage_open(&r, db, false));
    tp_lineage_close(r);
    char path[700];
    snprintf(path, sizeof(path), "%s/not-a-db", dir);
    write_text(path, "hello, I am text\n");
    assert_int_equal(tp_lineage_open(&r, path, false), -1);
    tp_test_assert_contains(tp_errmsg(), "not-a-db");
    char out[4096];
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s trace parents 5 --db '%s/missing.db' 2>&1", TP_TOOL, dir);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 1);
    tp_test_assert_contains(out, "no lineage database at");
    snprintf(cmd, sizeof(cmd), "%s trace parents --db x 2>&1; %s trace teleport 1 --db x 2>&1", TP_TOOL, TP_TOOL);
    tp_test_run(cmd, out, sizeof(out));
    tp_test_assert_contains(out, "parents needs a TRACE_ID");
    tp_test_assert_contains(out, "unknown action 'teleport'");
    tp_test_remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lineage_store),
        cmocka_unit_test(test_pipeline_lineage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
