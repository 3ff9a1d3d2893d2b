/*
 * gcra.h - one rate-limit bucket: the token bucket written as GCRA, its whole
 * state one atomic "theoretical arrival time" (tat), so every worker can take
 * from the same bucket without a lock. Pure: time is passed in (monotonic
 * ns, the same clock for every call), nothing here reads a clock.
 *
 * A bucket of capacity burst refilled average per period admits, over any
 * run, exactly burst + average * elapsed / period requests (to within the one
 * token whose refill falls on the run's edge). Refused requests take nothing.
 *
 * Exactness: when average divides the period in ns (100/s, 10/min) tat moves
 * by whole intervals. When it does not (3/s), tat still holds whole ns but
 * steps alternate between floor and ceil of the interval, chosen against a
 * fixed schedule of token times (gcra.c), so a bucket kept busy for years
 * is never more than 2 ns from exact time: no drift, ever.
 *
 * Range: now_ns is clamped to [0, GCRA_NOW_MAX] (about 146 years): a clock
 * beyond stands still (no refill) instead of overflowing, and a negative one
 * reads as 0. A zero tat is therefore a full bucket whatever the time.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define GCRA_NOW_MAX (INT64_C(1) << 62)  /* ~146 years after the clock's origin */
#define GCRA_SPAN_MAX (INT64_C(1) << 61) /* burst * period / average, ~73 years */

struct gcra_params {
	int64_t interval_ns;  /* period / average: the time one token takes to come back
			       * (rounded up to whole ns when average does not divide it) */
	int64_t tolerance_ns; /* (burst - 1) * interval_ns */
	uint64_t burst, average;
	int64_t period_ns;
};

/* gcra_params_init: from average per period_ms with capacity burst (0 means
 * average). -1 (p untouched) when average or period is 0, when the numbers
 * overflow int64 ns (period, or a full bucket's span beyond GCRA_SPAN_MAX),
 * or when the interval is under 1 ns (more than 10^9 requests a second, a
 * limit that could never bind: the caller may treat it as none). */
int gcra_params_init(struct gcra_params *p, uint64_t average, uint64_t period_ms, uint64_t burst);

struct gcra {
	_Atomic int64_t tat;
}; /* zero-initialised = full bucket */

struct gcra_verdict {
	bool allowed;
	uint64_t remaining;     /* tokens left after this request (RateLimit header "r") */
	int64_t retry_after_ns; /* refused: until the next token is due (> 0); allowed: 0 */
	int64_t reset_ns;       /* until the bucket is full again (RateLimit "t") */
};

/* gcra_take: one request at now_ns, under p as gcra_params_init filled it.
 * Lock-free (CAS loop): any number of threads may take from one bucket at
 * once, and each token is spent once. Returns v->allowed. A refused request
 * changes nothing. The bucket's state does not depend on p, so it survives
 * a change of limit. */
bool gcra_take(struct gcra *g, const struct gcra_params *p, int64_t now_ns, struct gcra_verdict *v);

/* gcra_peek: the verdict a take would give at now_ns, changing nothing (for
 * tests and status). */
void gcra_peek(const struct gcra *g, const struct gcra_params *p, int64_t now_ns,
	       struct gcra_verdict *v);

/* gcra_retry_after_s: whole seconds for a Retry-After header:
 * ceil(retry_after_ns / 1e9), at least 1. */
long gcra_retry_after_s(const struct gcra_verdict *v);
