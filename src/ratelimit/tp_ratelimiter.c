/* One rate limiter mapping; see tp_ratelimiter.h. */
#include "ratelimit/tp_ratelimiter.h"

#include <stdio.h>
#include <string.h>

#include "core/tp_err.h"
#include "core/tp_log.h"

static int open_mapping(tp_ratelimiter_t *r, tp_client_t *client, uint32_t source_stream_id,
    uint32_t dest_stream_id, tp_producer_t *dest, uint32_t max_rate_hz)
{
    memset(r, 0, sizeof(*r));
    r->client = client;
    r->source_stream_id = source_stream_id;
    r->dest_stream_id = dest_stream_id;
    r->dest = dest;
    tp_rate_policy_init(&r->policy, max_rate_hz);
    r->configured_rate_hz = max_rate_hz;
    if (source_stream_id == dest_stream_id)
    {
        TP_SET_ERR(TP_E_CONFIG, "a rate limiter never publishes on its source stream %u", source_stream_id);
    }
    else if (tp_consumer_attach_async(&r->source, client, source_stream_id) == 0 &&
             (r->dest != NULL || tp_producer_attach_async(&r->dest, client, dest_stream_id) == 0))
    {
        return 0;
    }
    TP_APPEND_ERR("rate limiter %u -> %u", source_stream_id, dest_stream_id);
    tp_ratelimiter_close(r);
    return -1;
}

int tp_ratelimiter_open(tp_ratelimiter_t *r, tp_client_t *client, uint32_t source_stream_id, uint32_t dest_stream_id,
    uint32_t max_rate_hz)
{
    return open_mapping(r, client, source_stream_id, dest_stream_id, NULL, max_rate_hz);
}

int tp_ratelimiter_open_with(tp_ratelimiter_t *r, tp_client_t *client, uint32_t source_stream_id, tp_producer_t *dest,
    uint32_t max_rate_hz)
{
    /* The producer's stream is the destination; it was attached by the caller. */
    return open_mapping(r, client, source_stream_id, tp_producer_stream_id(dest), dest, max_rate_hz);
}

int tp_ratelimiter_forward_metadata(tp_ratelimiter_t *r, tp_metadata_cache_t *cache, uint32_t metadata_stream_id)
{
    r->meta_cache = cache;
    r->metadata_stream_id = metadata_stream_id != 0 ? metadata_stream_id : r->dest_stream_id;
    if (r->metadata_stream_id != r->dest_stream_id &&
        tp_metadata_publisher_open(&r->meta_own, r->client, r->metadata_stream_id) < 0)
    {
        TP_APPEND_ERR("forwarding metadata of stream %u as stream %u", r->source_stream_id, r->metadata_stream_id);
        return -1;
    }
    return 0;
}

/* The cap in force: the sole consumer's own when it asked for RATE_LIMITED, else the configured one. */
static void follow_consumers(tp_ratelimiter_t *r)
{
    tp_consumer_request_t request;
    uint32_t consumers = tp_producer_consumer_requests(r->dest, &request, 1);
    uint32_t wanted = consumers == 1 && request.is_rate_limited ? request.max_rate_hz : r->configured_rate_hz;
    if (wanted != r->policy.max_rate_hz)
    {
        tp_rate_policy_reset(&r->policy, wanted);
    }
}

/* The source's metadata, when it changed, as the destination's. */
static int forward_metadata(tp_ratelimiter_t *r)
{
    if (r->meta_cache == NULL)
    {
        return 0;
    }
    tp_metadata_view_t view;
    if (!tp_metadata_cache_get(r->meta_cache, r->source_stream_id, &view) ||
        (r->has_forwarded && view.meta_version == r->forwarded_version &&
            (!view.has_announce || strcmp(view.name, r->forwarded_name) == 0)))
    {
        return 0;
    }
    tp_metadata_publisher_t *to = r->meta_own != NULL ? r->meta_own : tp_producer_metadata(r->dest);
    if (tp_metadata_mirror(to, &view) < 0)
    {
        TP_LOG_D("ratelimiter", "forwarding metadata of stream %u: %s", r->source_stream_id, tp_errmsg());
    }
    r->has_forwarded = true;
    r->forwarded_version = view.meta_version;
    snprintf(r->forwarded_name, sizeof(r->forwarded_name), "%s", view.has_announce ? view.name : "");
    r->counters.metadata_forwarded++;
    return 1;
}

int tp_ratelimiter_close(tp_ratelimiter_t *r)
{
    tp_metadata_publisher_close(r->meta_own);
    r->meta_own = NULL;
    tp_consumer_close(r->source);
    tp_producer_close(r->dest);
    r->source = NULL;
    r->dest = NULL;
    return 0;
}

void tp_ratelimiter_set_rate(tp_ratelimiter_t *r, uint32_t max_rate_hz)
{
    r->configured_rate_hz = max_rate_hz;
    tp_rate_policy_reset(&r->policy, max_rate_hz);
}

bool tp_ratelimiter_is_ready(const tp_ratelimiter_t *r)
{
    return tp_consumer_is_attached(r->source) && tp_producer_is_attached(r->dest);
}

/* The destination numbers frames as the source did; a source that started over (a new epoch from 0) needs a new
 * destination epoch, so that nobody downstream sees a seq go back. */
static int follow_source_seq(tp_ratelimiter_t *r, uint64_t seq)
{
    int rc = tp_producer_follow_seq(&r->dest, r->client, seq);
    if (rc == 1)
    {
        r->has_forwarded = false; /* the new producer's publisher starts empty */
        r->counters.dest_reattaches++;
    }
    return rc == 0 ? 0 : -1; /* replaced: this frame is dropped, the new lease is not there yet */
}

/* Copy frame into the destination and publish it; the frame's bytes are read once, then checked intact. */
static void republish(tp_ratelimiter_t *r, const tp_frame_t *frame)
{
    if (!tp_producer_is_attached(r->dest))
    {
        r->counters.dropped_detached++;
        return;
    }
    if (follow_source_seq(r, frame->seq) < 0)
    {
        r->counters.dropped_detached++;
        return;
    }
    tp_claim_t claim;
    if (tp_producer_try_claim_by_size(r->dest, frame->payload_length, &claim) != 0)
    {
        r->counters.dropped_no_pool++;
        return;
    }
    if (tp_frame_copy_out(frame, claim.buffer, claim.capacity) < 0)
    {
        tp_producer_abort(r->dest, &claim);
        r->counters.dropped_lapped++;
        return;
    }
    claim.timestamp_ns = frame->timestamp_ns;
    if (tp_producer_commit(r->dest, &claim, frame->payload_length, &frame->tensor, frame->meta_version,
            frame->trace_id) < 0)
    {
        r->counters.dropped_detached++;
        return;
    }
    r->counters.published++;
    tp_rate_policy_take(&r->policy, r->now_ns);
}

static void on_source_epoch(tp_ratelimiter_t *r, uint64_t epoch)
{
    if (epoch != r->source_epoch)
    {
        /* Rate limiter spec 7: a remap boundary; what was held belongs to the old epoch. */
        r->source_epoch = epoch;
        r->has_pending = false;
        tp_rate_policy_reset(&r->policy, r->policy.max_rate_hz);
        r->counters.source_epochs++;
    }
}

static void on_frame(void *clientd, const tp_frame_t *frame)
{
    tp_ratelimiter_t *r = clientd;
    r->counters.frames_seen++;
    on_source_epoch(r, frame->epoch);
    if (tp_rate_policy_is_open(&r->policy, r->now_ns))
    {
        r->has_pending = false;
        republish(r, frame);
        return;
    }
    if (r->has_pending)
    {
        r->counters.superseded++;
    }
    r->pending = *frame;
    r->pending.copied_ = NULL; /* read again later, outside the callback */
    tp_consumer_counters_t c;
    tp_consumer_counters(r->source, &c);
    r->pending_remaps = c.remaps;
    r->has_pending = true;
}

/* The held frame, when its slot opens and its source mapping is still the one it was read from. */
static int release_pending(tp_ratelimiter_t *r)
{
    if (!r->has_pending || !tp_rate_policy_is_open(&r->policy, r->now_ns))
    {
        return 0;
    }
    tp_consumer_counters_t c;
    tp_consumer_counters(r->source, &c);
    r->has_pending = false;
    if (c.remaps != r->pending_remaps || !tp_consumer_is_attached(r->source) ||
        tp_consumer_epoch(r->source) != r->pending.epoch)
    {
        r->counters.dropped_lapped++;
        return 1;
    }
    republish(r, &r->pending);
    return 1;
}

int tp_ratelimiter_do_work(tp_ratelimiter_t *r, int64_t now_ns)
{
    r->now_ns = now_ns;
    int work = tp_producer_do_work(r->dest);
    if (tp_consumer_is_attached(r->source))
    {
        on_source_epoch(r, tp_consumer_epoch(r->source));
    }
    int n = tp_consumer_poll(r->source, on_frame, r, 64);
    work += n > 0 ? n : 0;
    work += release_pending(r);
    if (now_ns >= r->next_meta_check_ns)
    {
        /* Every 10 ms: consumers' caps and metadata change rarely. */
        r->next_meta_check_ns = now_ns + 10 * 1000 * 1000;
        follow_consumers(r);
        work += forward_metadata(r);
    }
    if (r->meta_own != NULL)
    {
        work += tp_metadata_publisher_do_work(r->meta_own);
    }
    return work;
}
