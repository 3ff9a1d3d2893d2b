/*
 * backoff.h - when to try a failed host again, and how many orders may run.
 * Pure: the caller passes the (monotonic, milliseconds) time and the random
 * bits, so tests move time by hand. Not thread-safe; one owner.
 */
#pragma once

#include <stdint.h>

/* Jitter applied to every delay: +/- this many percent. */
#define BACKOFF_JITTER_PCT 10
/* Retry-After values beyond this are clamped (a broken or hostile CA must
 * not park a host for years). */
#define BACKOFF_RETRY_AFTER_MAX_MS (30LL * 24 * 3600 * 1000)
/* Bound of the per-minute window, and so of max_per_minute. */
#define BACKOFF_WINDOW_MAX 64
#define BACKOFF_WINDOW_MS (60 * 1000)

/* backoff_delay_ms: the delay before jitter after failures consecutive
 * failures: 0 for none, then 1 min, 10 min, 100 min, and 1 day from the
 * fourth on. */
int64_t backoff_delay_ms(unsigned failures);

/* backoff_next: the time of the next attempt after failures consecutive
 * failures (0: now_ms). The delay gets +/- BACKOFF_JITTER_PCT % jitter
 * spread evenly over random's range. retry_after_ms is the absolute time
 * (same clock as now_ms) the CA's Retry-After named, or 0 for none; the
 * result is never earlier, but at most BACKOFF_RETRY_AFTER_MAX_MS after
 * now_ms on account of it. */
int64_t backoff_next(unsigned failures, int64_t now_ms, int64_t retry_after_ms, uint32_t random);

/* A global cap on ACME orders: at most max_concurrent running, and at most
 * max_per_minute started in any sliding 60 s window. */
struct backoff_limiter {
	unsigned max_concurrent, max_per_minute;
	unsigned active;                     /* started, not yet done */
	unsigned head, count;                /* ring of recent start times */
	int64_t starts[BACKOFF_WINDOW_MAX];
};

/* backoff_limiter_init: limits below 1 become 1, max_per_minute above
 * BACKOFF_WINDOW_MAX becomes BACKOFF_WINDOW_MAX. */
void backoff_limiter_init(struct backoff_limiter *l, unsigned max_concurrent,
			  unsigned max_per_minute);

/* backoff_limiter_try: 1 and the order counted as started when both limits
 * allow one more at now_ms, else 0 and nothing changes. */
int backoff_limiter_try(struct backoff_limiter *l, int64_t now_ms);

/* backoff_limiter_done: an order started with backoff_limiter_try ended
 * (success or failure). Extra calls are ignored. */
void backoff_limiter_done(struct backoff_limiter *l);

/* backoff_limiter_free_at: the earliest time the per-minute window has room
 * again (now_ms when it has room now), for scheduling the retry of a refused
 * start; the concurrency limit frees on backoff_limiter_done instead. */
int64_t backoff_limiter_free_at(struct backoff_limiter *l, int64_t now_ms);

/* backoff_renew_at: when to renew a certificate valid [not_before,
 * not_after] (seconds since the epoch): when a third of its lifetime is
 * left, moved earlier by up to a thirtieth of the lifetime spread over
 * random's range, so certificates issued together do not renew together.
 * A lifetime of zero or less gives not_before. */
int64_t backoff_renew_at(int64_t not_before, int64_t not_after, uint32_t random);
