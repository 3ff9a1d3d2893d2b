/*
 * backoff.c - the per-host retry schedule and the global order limiter.
 */
#include "acme/backoff.h"

#define BACKOFF_MINUTE_MS (60LL * 1000)

int64_t backoff_delay_ms(unsigned failures)
{
	switch (failures) {
	case 0:
		return 0;
	case 1:
		return 1 * BACKOFF_MINUTE_MS;
	case 2:
		return 10 * BACKOFF_MINUTE_MS;
	case 3:
		return 100 * BACKOFF_MINUTE_MS;
	default:
		return 1440 * BACKOFF_MINUTE_MS;
	}
}

int64_t backoff_next(unsigned failures, int64_t now_ms, int64_t retry_after_ms, uint32_t random)
{
	int64_t delay = backoff_delay_ms(failures);
	if (delay > 0) {
		/* random in [0, 2^32) maps evenly onto [-span, +span]. */
		int64_t span = delay * BACKOFF_JITTER_PCT / 100;
		delay += (int64_t)(((uint64_t)random * (uint64_t)(2 * span)) / UINT32_MAX) - span;
	}
	int64_t next = now_ms + delay;
	if (retry_after_ms > 0) {
		if (retry_after_ms - now_ms > BACKOFF_RETRY_AFTER_MAX_MS)
			retry_after_ms = now_ms + BACKOFF_RETRY_AFTER_MAX_MS;
		if (retry_after_ms > next)
			next = retry_after_ms;
	}
	return next;
}

void backoff_limiter_init(struct backoff_limiter *l, unsigned max_concurrent,
			  unsigned max_per_minute)
{
	*l = (struct backoff_limiter){0};
	l->max_concurrent = max_concurrent ? max_concurrent : 1;
	l->max_per_minute = max_per_minute == 0		      ? 1
			    : max_per_minute > BACKOFF_WINDOW_MAX ? BACKOFF_WINDOW_MAX
								  : max_per_minute;
}

/* backoff_limiter_expire: forget starts that left the window. A clock that
 * went backwards only keeps entries longer (never admits more). */
static void backoff_limiter_expire(struct backoff_limiter *l, int64_t now_ms)
{
	while (l->count > 0 && now_ms - l->starts[l->head] >= BACKOFF_WINDOW_MS) {
		l->head = (l->head + 1) % BACKOFF_WINDOW_MAX;
		l->count--;
	}
}

int backoff_limiter_try(struct backoff_limiter *l, int64_t now_ms)
{
	backoff_limiter_expire(l, now_ms);
	if (l->active >= l->max_concurrent || l->count >= l->max_per_minute)
		return 0;
	l->starts[(l->head + l->count) % BACKOFF_WINDOW_MAX] = now_ms;
	l->count++;
	l->active++;
	return 1;
}

void backoff_limiter_done(struct backoff_limiter *l)
{
	if (l->active > 0)
		l->active--;
}

int64_t backoff_limiter_free_at(struct backoff_limiter *l, int64_t now_ms)
{
	backoff_limiter_expire(l, now_ms);
	if (l->count < l->max_per_minute)
		return now_ms;
	/* Full: room comes when the oldest of the last max_per_minute leaves. */
	unsigned i = (l->head + l->count - l->max_per_minute) % BACKOFF_WINDOW_MAX;
	return l->starts[i] + BACKOFF_WINDOW_MS;
}

int64_t backoff_renew_at(int64_t not_before, int64_t not_after, uint32_t random)
{
	int64_t life = not_after - not_before;
	if (life <= 0)
		return not_before;
	int64_t jitter = (int64_t)((double)(life / 30) * ((double)random / 4294967296.0));
	return not_after - life / 3 - jitter;
}
