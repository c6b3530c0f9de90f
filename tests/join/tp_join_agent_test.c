/*
 * The join agent on one embedded driver: input producers, the merge-map authority and the join in one process, on
 * real streams. Lockstep cameras with trace links, a late joiner asking for its map, camera + IMU by timestamp, fast
 * data with slow configuration, windows with holes, and inputs that lap the join (it drops, never waits).
 */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "client/tp_client_fixture.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_join.h"
#include "tensorpool/tp_trace.h"
#include "tp_malloc_count.h"
#include "tp_test_util.h"

#define OUT 9000
#define CAM_A 10001
#define CAM_B 10002
#define IMU 10003
#define SLOTS 16
#define STRIDE 1024
#define DEADLINE_NS (20 * TP_NS_PER_S)

static client_fixture_t F;
static tp_client_t *client;

static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "join-agent");
    client_fixture_add_stream(&F, "out", OUT, "out", SLOTS, STRIDE);
    client_fixture_add_stream(&F, "cam-a", CAM_A, "a", SLOTS, STRIDE);
    client_fixture_add_stream(&F, "cam-b", CAM_B, "b", SLOTS, STRIDE);
    client_fixture_add_stream(&F, "imu", IMU, "imu", SLOTS, STRIDE);
    client_fixture_start(&F);
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_client_close(client);
    client_fixture_close(&F);
    return 0;
}

typedef struct rig
{
    tp_producer_t *out;
    tp_producer_t *inputs[3];
    tp_consumer_t *consumers[3];
    uint32_t count;
    tp_merge_authority_t *authority;
    tp_join_agent_t *agent;
    tp_bus_subscription_t *links; /* TraceLinkSet, on the metadata stream */
    /* what the handler saw */
    uint64_t outputs;
    uint64_t bad;
    uint64_t last_out_seq;
    uint64_t absent_inputs;
    uint64_t window_holes;
    uint64_t parents[64][2]; /* the input trace ids of each output, by output sequence */
    uint64_t config_seen;    /* latest value: the config frame's value used by the last output */
} rig_t;

static rig_t R;

static tp_tensor_desc_t tensor_of(uint32_t n)
{
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT64;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = (int32_t)n;
    return t;
}

/* Every input frame holds its own seq and stream id: a frame read for the wrong sequence shows. */
static void publish(tp_producer_t *p, uint32_t stream, uint64_t value, uint64_t capture_ns)
{
    uint64_t payload[2] = {value, stream};
    tp_tensor_desc_t t = tensor_of(2);
    assert_true(tp_producer_offer_frame_at(p, payload, sizeof(payload), &t, 0, 0, capture_ns) >= 0);
}

static void rig_open(const uint32_t *streams, uint32_t count, tp_join_kind_t kind, uint32_t anchor,
    tp_join_handler_t handler, bool with_authority)
{
    memset(&R, 0, sizeof(R));
    R.count = count;
    tp_assert_ok(tp_producer_attach(&R.out, client, OUT, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_producer_set_tracing(R.out, true));
    for (uint32_t i = 0; i < count; i++)
    {
        tp_assert_ok(tp_producer_attach(&R.inputs[i], client, streams[i], 5 * TP_NS_PER_S));
        tp_assert_ok(tp_producer_set_tracing(R.inputs[i], true));
        tp_assert_ok(tp_consumer_attach(&R.consumers[i], client, streams[i], 5 * TP_NS_PER_S));
    }
    if (with_authority)
    {
        tp_assert_ok(tp_merge_authority_init(&R.authority, client, R.out, 100));
    }
    tp_join_agent_options_t o;
    tp_join_agent_options_init(&o, kind, OUT);
    o.inputs = R.consumers;
    o.input_count = count;
    o.output = R.out;
    o.anchor_stream_id = anchor;
    o.request_interval_ms = 20;
    o.on_tick = handler;
    o.clientd = &R;
    tp_assert_ok(tp_join_agent_init(&R.agent, client, &o));
    tp_bus_t *bus = NULL;
    tp_assert_ok(tp_bus_init_existing(&bus, F.bus));
    tp_assert_ok(tp_bus_subscription_open(&R.links, bus, "aeron:ipc?term-length=4m", 1300, NULL, NULL, NULL));
    tp_bus_close(bus);
}

static void rig_close(void)
{
    if (R.agent == NULL)
    {
        return;
    }
    tp_bus_subscription_close(R.links);
    tp_join_agent_close(R.agent);
    tp_merge_authority_close(R.authority);
    for (uint32_t i = 0; i < R.count; i++)
    {
        tp_consumer_close(R.consumers[i]);
        tp_producer_close(R.inputs[i]);
    }
    tp_producer_close(R.out);
    R.agent = NULL;
}

static int rig_teardown(void **state)
{
    (void)state;
    rig_close();
    return 0;
}

static void rig_work(void)
{
    int64_t now = tp_clock_monotonic_ns();
    if (R.authority != NULL)
    {
        tp_merge_authority_do_work(R.authority, now);
    }
    assert_true(tp_join_agent_do_work(R.agent, now) >= 0);
    tp_producer_do_work(R.out);
    for (uint32_t i = 0; i < R.count; i++)
    {
        tp_producer_do_work(R.inputs[i]);
    }
}

static void run_until(bool (*done)(void))
{
    int64_t deadline = tp_clock_monotonic_ns() + DEADLINE_NS;
    while (!done())
    {
        rig_work();
        if (tp_clock_monotonic_ns() >= deadline)
        {
            tp_join_agent_counters_t c;
            tp_join_agent_counters(R.agent, &c);
            tp_join_result_t r;
            tp_join_barrier_ready_seq(tp_join_agent_barrier(R.agent), 0, 0, &r);
            fail_msg("timed out: outputs %" PRIu64 " dropped %" PRIu64 " maps %" PRIu64 "/%" PRIu64 "/%" PRIu64
                " requests %" PRIu64 ", handler saw %" PRIu64 ", barrier at 0: %s (waiting %u)", c.outputs,
                c.dropped, c.maps_applied, c.maps_invalid, c.maps_foreign, c.requests_sent, R.outputs,
                tp_join_status_name(r.status), r.waiting_stream_id);
        }
    }
}

static bool has_map(void)
{
    return tp_join_barrier_has_map(tp_join_agent_barrier(R.agent));
}

static uint64_t want_outputs;
static bool has_outputs(void)
{
    return R.outputs >= want_outputs;
}

static tp_trace_link_t links[64];
static uint32_t link_count;

static void on_link(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)clientd;
    (void)header;
    tp_trace_link_t l;
    if (tp_trace_link_decode(&l, buffer, length) == 0 && l.seq < 64) /* other metadata is skipped by schema id */
    {
        links[l.seq] = l;
        link_count++;
    }
}

static uint64_t frame_value(const tp_frame_t *f)
{
    uint64_t v[2];
    memcpy(v, f->payload, sizeof(v));
    return v[0];
}

static int on_nothing(void *clientd, const tp_join_tick_t *tick)
{
    (void)clientd;
    (void)tick;
    return 0;
}

/* A late joiner (subscribed after the authority's announce, with the next one a minute away) asks on the control
 * stream and is answered with the map: every request gets an announce. */
static void late_joiner_gets_map(tp_join_kind_t kind, uint32_t a, uint32_t b)
{
    tp_merge_authority_counters_t before;
    tp_merge_authority_counters(R.authority, &before);
    tp_consumer_t *late_inputs[2];
    tp_assert_ok(tp_consumer_attach(&late_inputs[0], client, a, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach(&late_inputs[1], client, b, 5 * TP_NS_PER_S));
    tp_join_agent_options_t o;
    tp_join_agent_options_init(&o, kind, OUT);
    o.inputs = late_inputs;
    o.input_count = 2;
    o.output = R.out;
    o.on_tick = on_nothing;
    tp_join_agent_t *late = NULL;
    tp_assert_ok(tp_join_agent_init(&late, client, &o));
    int64_t deadline = tp_clock_monotonic_ns() + DEADLINE_NS;
    while (!tp_join_barrier_has_map(tp_join_agent_barrier(late)))
    {
        rig_work();
        assert_true(tp_join_agent_do_work(late, tp_clock_monotonic_ns()) >= 0);
        assert_true(tp_clock_monotonic_ns() < deadline);
    }
    tp_merge_map_t m;
    assert_true(tp_join_barrier_map(tp_join_agent_barrier(late), &m));
    assert_int_equal(m.kind, kind == TP_JOIN_TIMESTAMP ? TP_MERGE_TIMESTAMP : TP_MERGE_SEQUENCE);
    tp_merge_authority_counters_t ac;
    tp_merge_authority_counters(R.authority, &ac);
    assert_true(ac.requests > before.requests);
    assert_int_equal(ac.announces - before.announces, ac.requests - before.requests);
    tp_join_agent_close(late);
    tp_consumer_close(late_inputs[0]);
    tp_consumer_close(late_inputs[1]);
}

static int on_lockstep(void *clientd, const tp_join_tick_t *tick)
{
    rig_t *r = clientd;
    assert_int_equal(tick->input_count, 2);
    for (uint32_t i = 0; i < 2; i++)
    {
        assert_true(tick->has_frame[i]);
        if (tick->frames[i].seq != tick->out_seq || frame_value(&tick->frames[i]) != tick->out_seq)
        {
            r->bad++;
        }
        if (tick->out_seq < 64)
        {
            r->parents[tick->out_seq][i] = tick->frames[i].trace_id;
        }
    }
    uint64_t sum = frame_value(&tick->frames[0]) + frame_value(&tick->frames[1]);
    tp_tensor_desc_t t = tensor_of(1);
    int64_t seq = tp_join_agent_publish(R.agent, tick, &sum, sizeof(sum), &t, 0);
    assert_true(seq >= 0);
    r->last_out_seq = (uint64_t)seq;
    r->outputs++;
    return 0;
}

/* Two cameras in lockstep (spec A.3.1). The join starts before the authority: it asks for the map on the control
 * stream, nobody answers (the driver keeps no maps), then the authority comes up and answers. Every output has
 * both cameras' frames of its sequence, a new trace id, and a TraceLinkSet naming the two.
 * covers: J-10.1-1, J-10.1-7, J-10.3-1, J-10.3-2, J-10.3-3, J-10.3-4, J-7.3-1, J-14-2, J-5-4, T-6.3-1, T-6.3-3,
 * T-8.1-2, T-8.1-4, T-9.2-2, T-9.2-3, T-9.2-4, T-6.2-1, T-7-1s */
static void test_lockstep_cameras(void **state)
{
    (void)state;
    uint32_t streams[2] = {CAM_A, CAM_B};
    rig_open(streams, 2, TP_JOIN_SEQUENCE, 0, on_lockstep, false);
    /* Node ids of live leases are distinct. */
    assert_true(tp_producer_node_id(R.out) != 0);
    assert_true(tp_producer_node_id(R.out) != tp_producer_node_id(R.inputs[0]));
    assert_true(tp_producer_node_id(R.inputs[0]) != tp_producer_node_id(R.inputs[1]));
    /* No authority yet: requests go out, no map comes back, nothing is produced. */
    int64_t until = tp_clock_monotonic_ns() + 200 * TP_NS_PER_MS;
    while (tp_clock_monotonic_ns() < until)
    {
        rig_work();
    }
    tp_join_agent_counters_t c;
    tp_join_agent_counters(R.agent, &c);
    assert_true(c.requests_sent >= 2);
    assert_int_equal(c.maps_applied, 0);
    assert_false(has_map());
    /* The authority comes up with the map; it answers the next request (and announces). */
    tp_assert_ok(tp_merge_authority_init(&R.authority, client, R.out, 60000));
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, tp_producer_epoch(R.out));
    tp_merge_map_add_offset(&m, CAM_A, 0);
    tp_merge_map_add_offset(&m, CAM_B, 0);
    tp_assert_ok(tp_merge_authority_set_map(R.authority, &m));
    run_until(has_map);
    late_joiner_gets_map(TP_JOIN_SEQUENCE, CAM_A, CAM_B);
    for (uint64_t s = 0; s < 48; s++)
    {
        if (s < 40)
        {
            publish(R.inputs[0], CAM_A, s, 0);
        }
        if (s >= 8)
        {
            publish(R.inputs[1], CAM_B, s - 8, 0); /* B lags A by 8 frames (half the ring): outputs wait for B */
        }
        rig_work();
        assert_true(R.outputs + 8 >= (s < 40 ? s : 40));
    }
    want_outputs = 40;
    run_until(has_outputs);
    assert_int_equal(R.bad, 0);
    assert_int_equal(R.last_out_seq, 39);
    tp_join_agent_counters(R.agent, &c);
    assert_int_equal(c.outputs, 40);
    assert_int_equal(c.dropped, 0);
    assert_int_equal(c.tracelinks, 40);
    /* The TraceLinkSets: one per output, for the output's (stream, epoch, seq), a fresh trace id, the cameras'
     * ids as parents in rule order. The output frames carry the same fresh ids. */
    memset(links, 0, sizeof(links));
    link_count = 0;
    int64_t deadline = tp_clock_monotonic_ns() + DEADLINE_NS;
    while (link_count < 40)
    {
        rig_work();
        tp_bus_poll(R.links, on_link, NULL, 64);
        assert_true(tp_clock_monotonic_ns() < deadline);
    }
    for (uint64_t s = 0; s < 40; s++)
    {
        const tp_trace_link_t *l = &links[s];
        assert_int_equal(l->stream_id, OUT);
        assert_int_equal(l->epoch, tp_producer_epoch(R.out));
        assert_int_equal(l->seq, s);
        assert_int_equal(l->parent_count, 2);
        assert_true(R.parents[s][0] != 0 && R.parents[s][1] != 0);
        assert_int_equal(l->parents[0], R.parents[s][0]);
        assert_int_equal(l->parents[1], R.parents[s][1]);
        assert_true(l->trace_id != R.parents[s][0] && l->trace_id != R.parents[s][1] && l->trace_id != 0);
        assert_int_equal(tp_trace_id_node(l->trace_id), tp_producer_node_id(R.out));
        assert_int_equal(tp_trace_id_node(l->parents[0]), tp_producer_node_id(R.inputs[0]));
        assert_true(s == 0 || l->trace_id > links[s - 1].trace_id);
    }
    rig_close();
}

static void set_map(tp_merge_map_t *m)
{
    tp_assert_ok(tp_merge_authority_init(&R.authority, client, R.out, 60000));
    tp_assert_ok(tp_merge_authority_set_map(R.authority, m));
    run_until(has_map);
}

/* A slow stage: while building output 0 it lets both cameras run two rings ahead. */
static int on_slow_lockstep(void *clientd, const tp_join_tick_t *tick)
{
    rig_t *r = clientd;
    for (uint32_t i = 0; i < 2; i++)
    {
        if (!tick->has_frame[i] || !tp_frame_is_intact(&tick->frames[i]) ||
            frame_value(&tick->frames[i]) != tick->out_seq || tick->frames[i].seq != tick->out_seq)
        {
            r->bad++;
        }
    }
    if (r->outputs++ == 0)
    {
        for (uint64_t s = 8; s < 8 + 2 * SLOTS; s++)
        {
            publish(r->inputs[0], CAM_A, s, 0); /* never refused, never waited for: the join does not hold writers */
            publish(r->inputs[1], CAM_B, s, 0);
        }
    }
    return 0;
}

/* The inputs lap the join: outputs the barrier allowed whose frames were overwritten meanwhile are dropped after one
 * read each (counted), the producers were never slowed, and no output saw a frame of another sequence.
 * covers: J-5-2, J-5-3, J-7.2-1, J-7.2-2, J-7.2-3, J-8.3-1, J-8.3-2, J-8.3-3, J-9.3-2 */
static void test_inputs_lap_the_join(void **state)
{
    (void)state;
    uint32_t streams[2] = {CAM_A, CAM_B};
    rig_open(streams, 2, TP_JOIN_SEQUENCE, 0, on_slow_lockstep, false);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, tp_producer_epoch(R.out));
    tp_merge_map_add_offset(&m, CAM_A, 0);
    tp_merge_map_add_offset(&m, CAM_B, 0);
    set_map(&m);
    for (uint64_t s = 0; s < 8; s++)
    {
        publish(R.inputs[0], CAM_A, s, 0);
        publish(R.inputs[1], CAM_B, s, 0);
    }
    int64_t deadline = tp_clock_monotonic_ns() + DEADLINE_NS;
    tp_join_agent_counters_t c;
    do
    {
        rig_work();
        tp_join_agent_counters(R.agent, &c);
        assert_true(tp_clock_monotonic_ns() < deadline);
    } while (c.outputs + c.dropped < 8 + 2 * SLOTS);
    assert_int_equal(R.bad, 0);
    /* Output 0, then 1-7 allowed but overwritten (dropped), then the last ring's worth. */
    assert_int_equal(c.dropped, 7 + SLOTS);
    assert_int_equal(c.outputs, 1 + SLOTS);
    rig_close();
}

/* Camera at ~30 Hz drives out_time (its capture time); IMU at 200 Hz inside a 10 ms window, lateness 10 ms (spec
 * A.4.2). Each output gets the camera frame of out_time and the newest IMU sample of [out_time - 10 ms, out_time];
 * the lateness covers the window, so every camera tick is served. A late joiner gets the timestamp map on request.
 * covers: J-8.1-1, J-8.2-1, J-8.2-3, J-6.3-1, J-6.3.2-3, J-10.4-1, J-10.4-6, J-6.3.2-4s, J-8.2-7s */
static int on_camera_imu(void *clientd, const tp_join_tick_t *tick)
{
    rig_t *r = clientd;
    if (!tick->has_frame[0] || !tick->has_frame[1] || tick->frames[0].timestamp_ns != tick->out_time_ns ||
        tick->frames[1].timestamp_ns > tick->out_time_ns ||
        tick->frames[1].timestamp_ns < tick->out_time_ns - 10 * TP_NS_PER_MS ||
        tick->out_time_ns - tick->frames[1].timestamp_ns > 5 * TP_NS_PER_MS) /* the newest: IMU runs every 5 ms */
    {
        print_message("bad tick: out_time %" PRIu64 " cam %d %" PRIu64 " imu %d %" PRIu64 "\n", tick->out_time_ns,
            tick->has_frame[0], tick->frames[0].timestamp_ns, tick->has_frame[1], tick->frames[1].timestamp_ns);
        r->bad++;
    }
    r->outputs++;
    return 0;
}

static void test_camera_imu_by_time(void **state)
{
    (void)state;
    uint32_t streams[2] = {CAM_A, IMU};
    rig_open(streams, 2, TP_JOIN_TIMESTAMP, CAM_A, on_camera_imu, false);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_TIMESTAMP, OUT, tp_producer_epoch(R.out));
    m.lateness_ns = 10 * TP_NS_PER_MS;
    tp_merge_map_add_offset_ns(&m, CAM_A, TP_MERGE_SOURCE_SLOT_HEADER, 0);
    tp_merge_map_add_window_ns(&m, IMU, TP_MERGE_SOURCE_SLOT_HEADER, 10 * TP_NS_PER_MS);
    set_map(&m);
    late_joiner_gets_map(TP_JOIN_TIMESTAMP, CAM_A, IMU);
    uint64_t base = (uint64_t)tp_clock_monotonic_ns();
    uint64_t cams = 0;
    for (uint64_t t = 0; t <= 600 * TP_NS_PER_MS; t += 5 * TP_NS_PER_MS)
    {
        if (t % (35 * TP_NS_PER_MS) == 0)
        {
            publish(R.inputs[0], CAM_A, t, base + t);
            cams++;
        }
        publish(R.inputs[1], IMU, t, base + t - 1000); /* stamped 1 us before the camera's tick */
        rig_work();
    }
    want_outputs = cams;
    run_until(has_outputs);
    tp_join_agent_counters_t c;
    tp_join_agent_counters(R.agent, &c);
    if (R.bad != 0)
    {
        fail_msg("%" PRIu64 " bad of %" PRIu64 " outputs (rejected %" PRIu64 ", dropped %" PRIu64 ")", R.bad, R.outputs,
            c.ticks_rejected, c.dropped);
    }
    assert_int_equal(c.ticks_rejected, 0);
    assert_int_equal(c.dropped, 0);
    rig_close();
}

/* Fast data, slow configuration (spec A.5.1): each data frame makes a tick that uses the newest configuration,
 * without alignment (a configuration may be old: the application tolerates that); before the first configuration
 * nothing is produced.
 * covers: J-9.1-1, J-9.1-2, J-9.1-3, J-9.2-1, J-9.2-2, J-9.3-3s */
static int on_data_config(void *clientd, const tp_join_tick_t *tick)
{
    rig_t *r = clientd;
    if (!tick->has_frame[0] || !tick->has_frame[1])
    {
        r->bad++;
        return 0;
    }
    r->config_seen = frame_value(&tick->frames[1]);
    r->outputs++;
    return 0;
}

static void test_data_with_config(void **state)
{
    (void)state;
    uint32_t streams[2] = {CAM_A, CAM_B};
    rig_open(streams, 2, TP_JOIN_LATEST_VALUE, CAM_A, on_data_config, false);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, tp_producer_epoch(R.out));
    tp_merge_map_add_offset(&m, CAM_A, 0);
    tp_merge_map_add_offset(&m, CAM_B, 0);
    set_map(&m);
    for (uint64_t s = 0; s < 5; s++)
    {
        publish(R.inputs[0], CAM_A, s, 0);
        rig_work();
    }
    assert_int_equal(R.outputs, 0); /* no configuration yet */
    publish(R.inputs[1], CAM_B, 100, 0);
    want_outputs = 1;
    run_until(has_outputs); /* the pending tick goes once the config is there */
    assert_int_equal(R.config_seen, 100);
    for (uint64_t s = 5; s < 12; s++)
    {
        publish(R.inputs[0], CAM_A, s, 0);
        if (s == 8)
        {
            publish(R.inputs[1], CAM_B, 200, 0);
        }
        want_outputs = R.outputs + 1;
        run_until(has_outputs);
        assert_int_equal(R.config_seen, s < 8 ? 100 : 200);
    }
    assert_int_equal(R.bad, 0);
    rig_close();
}

/* A window of 4 over A with holes: frames A dropped upstream are simply missing; the output still goes with the
 * newest frame inside the window, or none.
 * covers: J-6.2.2-4, J-6.2.2-1 */
static int on_window(void *clientd, const tp_join_tick_t *tick)
{
    rig_t *r = clientd;
    if (!tick->has_frame[1] || tick->frames[1].seq != tick->out_seq)
    {
        r->bad++;
    }
    if (!tick->has_frame[0])
    {
        r->window_holes++;
    }
    else if (tick->frames[0].seq > tick->out_seq || tick->frames[0].seq + 4 <= tick->out_seq)
    {
        r->bad++;
    }
    r->outputs++;
    return 0;
}

static void test_window_with_holes(void **state)
{
    (void)state;
    uint32_t streams[2] = {CAM_A, CAM_B};
    rig_open(streams, 2, TP_JOIN_SEQUENCE, 0, on_window, false);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, tp_producer_epoch(R.out));
    tp_merge_map_add_window(&m, CAM_A, 4);
    tp_merge_map_add_offset(&m, CAM_B, 0);
    set_map(&m);
    /* A publishes 0..19 but frames 6..12 are skipped (numbered past, as a relay that lost them would). */
    for (uint64_t s = 0; s < 20; s++)
    {
        if (s == 6)
        {
            tp_assert_ok(tp_producer_skip_to(R.inputs[0], 13));
            s = 13;
        }
        publish(R.inputs[0], CAM_A, s, 0);
        rig_work();
    }
    for (uint64_t s = 0; s < 20; s++)
    {
        publish(R.inputs[1], CAM_B, s, 0);
        rig_work();
    }
    want_outputs = 17; /* out_seq 3..19 (a window of 4 starts at 3) */
    run_until(has_outputs);
    assert_int_equal(R.bad, 0);
    /* Holes: out_seq 9-12 (windows [6, 9] .. [9, 12] hold no frame of A), and 3, whose frames 0-3 shared their
     * slots with 13-16 and were overwritten by the time B let out_seq 3 go. */
    assert_int_equal(R.window_holes, 5);
    rig_close();
}

static int on_count(void *clientd, const tp_join_tick_t *tick)
{
    rig_t *r = clientd;
    r->outputs++;
    uint64_t v = tick->out_seq;
    tp_tensor_desc_t t = tensor_of(1);
    return tp_join_agent_publish(R.agent, tick, &v, sizeof(v), &t, 0) >= 0 ? 0 : -1;
}

/* The whole stage, after warm-up: polling both inputs and the control stream, the barrier, reading the frames,
 * publishing the output with a new trace id and queueing and sending its TraceLinkSet, the authority's duty
 * cycle: no allocation.
 * covers: J-5-1 */
static void test_join_stage_allocates_nothing(void **state)
{
    (void)state;
    uint32_t streams[2] = {CAM_A, CAM_B};
    rig_open(streams, 2, TP_JOIN_SEQUENCE, 0, on_count, false);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, tp_producer_epoch(R.out));
    tp_merge_map_add_offset(&m, CAM_A, 0);
    tp_merge_map_add_offset(&m, CAM_B, 0);
    set_map(&m);
    for (uint64_t s = 0; s < 100; s++)
    {
        publish(R.inputs[0], CAM_A, s, 0);
        publish(R.inputs[1], CAM_B, s, 0);
        rig_work();
    }
    want_outputs = 100;
    run_until(has_outputs);
    tp_assert_ok(tp_driver_stop(F.driver));
    uint64_t before = tp_malloc_count_thread();
    uint64_t before_tp = tp_alloc_count();
    for (uint64_t s = 100; s < 2100; s++)
    {
        publish(R.inputs[0], CAM_A, s, 0);
        publish(R.inputs[1], CAM_B, s, 0);
        rig_work();
    }
    assert_int_equal(tp_alloc_count(), before_tp);
    if (tp_malloc_count_available())
    {
        assert_int_equal(tp_malloc_count_thread(), before);
    }
    tp_assert_ok(tp_driver_start(F.driver));
    assert_int_equal(R.outputs, 2100);
    tp_join_agent_counters_t c;
    tp_join_agent_counters(R.agent, &c);
    assert_int_equal(c.tracelinks, 2100);
}

/* Tracing never decides anything: the same inputs give the same outputs with tracing off; a TraceLinkSet queue
 * that is full drops records (counted) at once, and the frames published meanwhile are all there.
 * covers: T-5-1, T-5-2, T-5-3, T-12-1, T-8.2-1 */
static void test_tracing_is_best_effort(void **state)
{
    (void)state;
    uint32_t streams[2] = {CAM_A, CAM_B};
    uint64_t outputs[2];
    for (int traced = 0; traced < 2; traced++)
    {
        rig_open(streams, 2, TP_JOIN_SEQUENCE, 0, on_count, false);
        tp_assert_ok(tp_producer_set_tracing(R.out, traced != 0));
        tp_merge_map_t m;
        tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, tp_producer_epoch(R.out));
        tp_merge_map_add_offset(&m, CAM_A, 0);
        tp_merge_map_add_offset(&m, CAM_B, -1);
        set_map(&m);
        for (uint64_t s = 0; s < 30; s++)
        {
            publish(R.inputs[0], CAM_A, s, 0);
            if (s % 3 != 0)
            {
                publish(R.inputs[1], CAM_B, s, 0);
            }
            rig_work();
        }
        for (int i = 0; i < 20; i++)
        {
            rig_work();
        }
        outputs[traced] = R.outputs;
        tp_join_agent_counters_t c;
        tp_join_agent_counters(R.agent, &c);
        assert_int_equal(c.tracelinks, traced ? R.outputs : 0);
        rig_close();
    }
    assert_true(outputs[0] > 0);
    assert_int_equal(outputs[0], outputs[1]);
    /* A queue of 4, nobody draining it: the fifth record is dropped at once; frames go on regardless, and a
     * consumer reads trace ids it knows nothing about (not our layout) as plain values. */
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, CAM_A, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach(&c, client, CAM_A, 5 * TP_NS_PER_S));
    tp_trace_emitter_t *e = NULL;
    tp_assert_ok(tp_trace_emitter_init(&e, client, 4));
    uint64_t before = tp_alloc_count();
    for (uint64_t s = 0; s < 10; s++)
    {
        uint64_t v[2] = {s, CAM_A};
        tp_tensor_desc_t t = tensor_of(2);
        uint64_t foreign_id = UINT64_C(0xFFFF000000000000) | s; /* top bit set: no id of ours */
        assert_true(tp_producer_offer_frame(p, v, sizeof(v), &t, 0, foreign_id) >= 0);
        tp_trace_link_t l = { .stream_id = CAM_A, .epoch = 1, .seq = s, .trace_id = 1000 + s, .parent_count = 2,
            .parents = {1, 2} };
        assert_int_equal(tp_trace_emitter_offer(e, &l), s < 4);
    }
    assert_int_equal(tp_alloc_count(), before);
    tp_trace_emitter_counters_t ec;
    tp_trace_emitter_counters(e, &ec);
    assert_int_equal(ec.queued, 4);
    assert_int_equal(ec.dropped_full, 6);
    uint64_t got = 0;
    int64_t deadline = tp_clock_monotonic_ns() + DEADLINE_NS;
    while (got < 10)
    {
        tp_frame_t f;
        if (tp_consumer_next(c, &f) == 1)
        {
            assert_int_equal(f.trace_id, UINT64_C(0xFFFF000000000000) | got);
            got++;
        }
        assert_true(tp_clock_monotonic_ns() < deadline);
    }
    assert_int_equal(tp_trace_emitter_do_work(e), 4);
    tp_trace_emitter_close(e);
    tp_consumer_close(c);
    tp_producer_close(p);
}

static uint64_t seen_map_epoch;

static void on_map(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)clientd;
    (void)header;
    tp_merge_map_t m;
    if (tp_merge_map_decode(&m, buffer, length) == 0 && m.out_stream_id == OUT)
    {
        seen_map_epoch = m.epoch;
    }
}

static uint64_t next_trace_id(tp_consumer_t *c)
{
    int64_t deadline = tp_clock_monotonic_ns() + DEADLINE_NS;
    for (;;)
    {
        tp_frame_t f;
        if (tp_consumer_next(c, &f) == 1)
        {
            return f.trace_id;
        }
        assert_true(tp_clock_monotonic_ns() < deadline);
    }
}

/* Node ids: distinct among live leases, a released one not handed out again at once, and a producer's kept for
 * its life, through a revoked lease and a new epoch. Every frame of a traced stream has a new non-zero id.
 * covers: T-6.2-1, T-6.2-2, T-6.2-3s, T-6.2-5s, T-8.1-2, T-6.3-1, T-8.1-5 */
static void test_node_ids(void **state)
{
    (void)state;
    tp_producer_t *p1 = NULL;
    tp_producer_t *p2 = NULL;
    tp_producer_t *p3 = NULL;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_producer_attach(&p1, client, CAM_A, 5 * TP_NS_PER_S));
    assert_int_equal(tp_producer_set_tracing(p1, true), 0);
    tp_assert_ok(tp_producer_attach(&p2, client, CAM_B, 5 * TP_NS_PER_S));
    uint32_t x = tp_producer_node_id(p1);
    uint32_t y = tp_producer_node_id(p2);
    assert_true(x != 0 && y != 0 && x != y && x <= TP_TRACE_NODE_ID_MAX && y <= TP_TRACE_NODE_ID_MAX);
    tp_producer_close(p2);
    tp_assert_ok(tp_producer_attach(&p3, client, CAM_B, 5 * TP_NS_PER_S));
    assert_true(tp_producer_node_id(p3) != y); /* round-robin: the released id waits its turn */
    tp_assert_ok(tp_consumer_attach(&c, client, CAM_A, 5 * TP_NS_PER_S));
    uint64_t prev = 0;
    for (uint64_t s = 0; s < 5; s++)
    {
        publish(p1, CAM_A, s, 0);
        uint64_t id = next_trace_id(c);
        assert_true(id != 0 && id != prev);
        assert_int_equal(tp_trace_id_node(id), x);
        prev = id;
    }
    /* The lease is revoked: the producer attaches again, for a new epoch; its ids keep node x and go on. */
    uint64_t epoch = tp_producer_epoch(p1);
    tp_assert_ok(tp_driver_revoke_lease(F.driver, tp_producer_lease_id(p1)));
    int64_t deadline = tp_clock_monotonic_ns() + DEADLINE_NS;
    while (!tp_producer_is_attached(p1) || tp_producer_epoch(p1) == epoch)
    {
        tp_producer_do_work(p1);
        tp_frame_t f;
        tp_consumer_next(c, &f);
        assert_true(tp_clock_monotonic_ns() < deadline);
    }
    assert_int_equal(tp_producer_node_id(p1), x);
    publish(p1, CAM_A, 5, 0);
    uint64_t id = next_trace_id(c);
    assert_int_equal(tp_trace_id_node(id), x);
    assert_true(id > prev); /* ids continue across the epoch change (docs/GUIDE.md, "Tracing") */
    tp_consumer_close(c);
    tp_producer_close(p3);
    tp_producer_close(p1);
}

/* Soft state: the authority re-announces every period (on the caller's clock), and at once when the map changes or
 * its producer moves to a new epoch, with the same rules scoped to it.
 * covers: J-10.1-6s, J-10.4-5s, J-6.4-3 */
static void test_authority_cadence(void **state)
{
    (void)state;
    tp_producer_t *out = NULL;
    tp_assert_ok(tp_producer_attach(&out, client, OUT, 5 * TP_NS_PER_S));
    tp_merge_authority_t *a = NULL;
    tp_assert_ok(tp_merge_authority_init(&a, client, out, 100));
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_TIMESTAMP, OUT, tp_producer_epoch(out));
    tp_merge_map_add_offset_ns(&m, CAM_A, TP_MERGE_SOURCE_SLOT_HEADER, 0);
    tp_merge_map_t bad = m;
    bad.rules[0].has_window = true;
    assert_int_equal(tp_merge_authority_set_map(a, &bad), -1); /* an authority announces valid maps only */
    tp_assert_ok(tp_merge_authority_set_map(a, &m));
    tp_merge_authority_counters_t c;
    int64_t t0 = INT64_C(1) << 40;
    int64_t ms = TP_NS_PER_MS;
    int64_t at[] = {0, 50 * ms, 99 * ms, 100 * ms, 150 * ms, 200 * ms, 1000 * ms};
    uint64_t want[] = {1, 1, 1, 2, 2, 3, 4};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
    {
        tp_merge_authority_do_work(a, t0 + at[i]);
        tp_merge_authority_counters(a, &c);
        assert_int_equal(c.announces, want[i]);
    }
    tp_assert_ok(tp_merge_authority_set_map(a, &m)); /* set again: announced at once */
    tp_merge_authority_do_work(a, t0 + 1001 * ms);
    tp_merge_authority_counters(a, &c);
    assert_int_equal(c.announces, 5);
    /* A new epoch of the output (the lease revoked and attached again): announced at once, for the new epoch. */
    tp_bus_t *bus = NULL;
    tp_assert_ok(tp_bus_init_existing(&bus, F.bus));
    tp_bus_subscription_t *control = NULL;
    tp_assert_ok(tp_bus_subscription_open(&control, bus, "aeron:ipc?term-length=4m", 1000, NULL, NULL, NULL));
    uint64_t epoch = tp_producer_epoch(out);
    tp_assert_ok(tp_driver_revoke_lease(F.driver, tp_producer_lease_id(out)));
    int64_t deadline = tp_clock_monotonic_ns() + DEADLINE_NS;
    while (!tp_producer_is_attached(out) || tp_producer_epoch(out) == epoch)
    {
        tp_producer_do_work(out);
        assert_true(tp_clock_monotonic_ns() < deadline);
    }
    tp_merge_authority_do_work(a, t0 + 1002 * ms);
    tp_merge_authority_counters(a, &c);
    assert_int_equal(c.announces, 6);
    seen_map_epoch = 0;
    deadline = tp_clock_monotonic_ns() + DEADLINE_NS;
    while (seen_map_epoch != tp_producer_epoch(out))
    {
        tp_bus_poll(control, on_map, NULL, 64);
        assert_true(tp_clock_monotonic_ns() < deadline);
    }
    tp_bus_subscription_close(control);
    tp_bus_close(bus);
    tp_merge_authority_close(a);
    tp_producer_close(out);
}

static int on_count_atomic(void *clientd, const tp_join_tick_t *tick)
{
    rig_t *r = clientd;
    if (tick->frames[0].seq != tick->out_seq || tick->frames[1].seq != tick->out_seq)
    {
        __atomic_fetch_add(&r->bad, 1, __ATOMIC_RELAXED);
    }
    __atomic_fetch_add(&r->outputs, 1, __ATOMIC_RELEASE);
    return 0;
}

/* The join agent on a runner thread of its own (its client, consumers and output belong to that thread), the
 * cameras published from this one through another client. */
static void test_agent_on_runner_thread(void **state)
{
    (void)state;
    memset(&R, 0, sizeof(R));
    tp_client_t *stage_client = NULL;
    tp_assert_ok(tp_client_connect(&stage_client, F.cctx));
    tp_producer_t *cams[2] = {NULL, NULL};
    tp_consumer_t *inputs[2] = {NULL, NULL};
    tp_producer_t *out = NULL;
    tp_assert_ok(tp_producer_attach(&out, stage_client, OUT, 5 * TP_NS_PER_S));
    for (int i = 0; i < 2; i++)
    {
        tp_assert_ok(tp_producer_attach(&cams[i], client, CAM_A + (uint32_t)i, 5 * TP_NS_PER_S));
        tp_assert_ok(tp_consumer_attach(&inputs[i], stage_client, CAM_A + (uint32_t)i, 5 * TP_NS_PER_S));
    }
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, tp_producer_epoch(out));
    tp_merge_map_add_offset(&m, CAM_A, 0);
    tp_merge_map_add_offset(&m, CAM_B, 0);
    tp_join_agent_options_t o;
    tp_join_agent_options_init(&o, TP_JOIN_SEQUENCE, OUT);
    o.inputs = inputs;
    o.input_count = 2;
    o.output = out;
    o.on_tick = on_count_atomic;
    o.clientd = &R;
    tp_join_agent_t *agent = NULL;
    tp_assert_ok(tp_join_agent_init(&agent, stage_client, &o));
    /* The map is applied before the thread starts (a supervisor could announce it instead). */
    tp_join_barrier_set_output_epoch(tp_join_agent_barrier(agent), tp_producer_epoch(out));
    assert_int_equal(tp_join_barrier_apply_map(tp_join_agent_barrier(agent), &m, tp_clock_monotonic_ns()), 1);
    tp_agent_t as;
    tp_join_agent_as_agent(agent, &as);
    tp_idle_strategy_t idle;
    tp_idle_sleep(&idle, 100000);
    tp_agent_runner_t *runner = NULL;
    tp_assert_ok(tp_agent_runner_init(&runner, &as, &idle));
    tp_assert_ok(tp_agent_runner_start(runner));
    for (uint64_t s = 0; s < 50; s++)
    {
        publish(cams[0], CAM_A, s, 0);
        publish(cams[1], CAM_B, s, 0);
        tp_producer_do_work(cams[0]);
        tp_producer_do_work(cams[1]);
        int64_t deadline = tp_clock_monotonic_ns() + DEADLINE_NS;
        while (__atomic_load_n(&R.outputs, __ATOMIC_ACQUIRE) < s + 1) /* one pair at a time: nothing lapped */
        {
            assert_true(tp_clock_monotonic_ns() < deadline);
            usleep(100);
        }
    }
    tp_assert_ok(tp_agent_runner_close(runner));
    assert_int_equal(R.bad, 0);
    tp_join_agent_close(agent);
    for (int i = 0; i < 2; i++)
    {
        tp_consumer_close(inputs[i]);
        tp_producer_close(cams[i]);
    }
    tp_producer_close(out);
    tp_client_close(stage_client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_lockstep_cameras, rig_teardown),
        cmocka_unit_test_teardown(test_inputs_lap_the_join, rig_teardown),
        cmocka_unit_test_teardown(test_camera_imu_by_time, rig_teardown),
        cmocka_unit_test_teardown(test_data_with_config, rig_teardown),
        cmocka_unit_test_teardown(test_window_with_holes, rig_teardown),
        cmocka_unit_test_teardown(test_join_stage_allocates_nothing, rig_teardown),
        cmocka_unit_test_teardown(test_tracing_is_best_effort, rig_teardown),
        cmocka_unit_test(test_node_ids),
        cmocka_unit_test(test_authority_cadence),
        cmocka_unit_test(test_agent_on_runner_thread),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
