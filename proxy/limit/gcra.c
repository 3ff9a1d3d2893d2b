/*
 * gcra.c - the bucket's arithmetic.
 *
 * GCRA keeps one number per bucket, tat: the time at which the bucket would
 * be full again. A request at now uses tat' = max(tat, now); it is allowed
 * when its token is due, i.e. when tat' - now <= (burst - 1) * interval, and
 * then tat becomes tat' + interval. The whole state moves with one
 * compare-and-swap, so concurrent takes never spend a token twice, and a
 * refused request writes nothing. tat is absolute and never moves back, so
 * a clock read that is older than another one cannot make tokens.
 *
 * Non-integral intervals (1 s / 3): a whole-ns interval rounded either way
 * drifts by up to 1 ns a token, without bound over a long busy spell, and
 * fast: at 1000001/s (999.999 ns) that is a token every thousand. A finer
 * unit in the one int64 would cost the range (100 years of idle must still
 * fit), and a separate remainder would need a second word under the CAS, so
 * instead the steps follow a fixed schedule of token times anchored at 0,
 *
 *	G(j) = ceil(j * period / average)	(cell j is [G(j), G(j+1)))
 *
 * and tat is read as "cell j, offset o" (tat = G(j) + o). Moving by k tokens
 * is G(j + k) + o: steps of floor or ceil of the interval, and after n steps
 * the distance is G(j + n) - G(j), within 1 ns of n * period / average. The
 * offset is clamped into its cell when that is one ns shorter, which can
 * only happen once per busy spell, so a bucket is never more than 2 ns from
 * exact time however long it stays busy. The arithmetic is 128-bit (j * period
 * reaches 2^126); when average divides the period the schedule is uniform
 * and plain int64 steps are used instead.
 */
#include "proxy/limit/gcra.h"

/* GCC and Clang; -pedantic wants the marker */
__extension__ typedef __int128 gcra_wide;
__extension__ typedef unsigned __int128 gcra_uwide;

/* gcra_saturate: x pinned into int64 (only reachable from a corrupted tat). */
static int64_t gcra_saturate(gcra_wide x)
{
	if (x > INT64_MAX)
		return INT64_MAX;
	if (x < INT64_MIN)
		return INT64_MIN;
	return (int64_t)x;
}

/* gcra_clamp_now: now in [0, GCRA_NOW_MAX] (see gcra.h). */
static int64_t gcra_clamp_now(int64_t now)
{
	if (now < 0)
		return 0;
	return now > GCRA_NOW_MAX ? GCRA_NOW_MAX : now;
}

/* gcra_integral: average divides the period, every step is interval_ns. */
static bool gcra_integral(const struct gcra_params *p)
{
	return p->period_ns % (int64_t)p->average == 0;
}

static gcra_wide gcra_div_floor(gcra_wide a, int64_t b)
{
	gcra_wide q = a / b;
	return a % b < 0 ? q - 1 : q;
}

static gcra_wide gcra_div_ceil(gcra_wide a, int64_t b)
{
	gcra_wide q = a / b;
	return a % b > 0 ? q + 1 : q;
}

/* gcra_grid: G(j), when the schedule's j-th token falls. */
static gcra_wide gcra_grid(const struct gcra_params *p, gcra_wide j)
{
	return gcra_div_ceil(j * p->period_ns, (int64_t)p->average);
}

/* gcra_cell: the j whose cell holds x: the last G(j) <= x. */
static gcra_wide gcra_cell(const struct gcra_params *p, gcra_wide x)
{
	return gcra_div_floor(x * (int64_t)p->average, p->period_ns);
}

/* gcra_shift: x moved by k tokens' time (k < 0: back). */
static int64_t gcra_shift(const struct gcra_params *p, int64_t x, int64_t k)
{
	if (gcra_integral(p))
		return gcra_saturate((gcra_wide)x + (gcra_wide)k * p->interval_ns);
	gcra_wide j = gcra_cell(p, x);
	gcra_wide off = x - gcra_grid(p, j);
	gcra_wide y = gcra_grid(p, j + k) + off;
	gcra_wide last = gcra_grid(p, j + k + 1) - 1;
	return gcra_saturate(y < last ? y : last);
}

/* gcra_tokens_owed: the fewest m >= 0 with gcra_shift(x, -m) <= now, i.e.
 * how many tokens a bucket whose tat is x still lacks at now. */
static gcra_wide gcra_tokens_owed(const struct gcra_params *p, int64_t x, int64_t now)
{
	if (x <= now)
		return 0;
	if (gcra_integral(p))
		return gcra_div_ceil((gcra_wide)x - now, p->interval_ns);
	/* gcra_shift's two candidates, G(j - m) + off and G(j - m + 1) - 1,
	 * solved for m through gcra_cell. */
	gcra_wide j = gcra_cell(p, x);
	gcra_wide off = x - gcra_grid(p, j);
	gcra_wide a = j - gcra_cell(p, (gcra_wide)now - off);
	gcra_wide b = j + 1 - gcra_cell(p, (gcra_wide)now + 1);
	gcra_wide m = a < b ? a : b;
	return m > 0 ? m : 0;
}

/* gcra_remaining: the takes a bucket whose tat is x still allows at now. */
static uint64_t gcra_remaining(const struct gcra_params *p, int64_t x, int64_t now)
{
	gcra_wide owed = gcra_tokens_owed(p, x, now);
	return owed >= (gcra_wide)p->burst ? 0 : p->burst - (uint64_t)owed;
}

/* gcra_judge: the verdict for a request at now (clamped) on a bucket whose
 * tat is old; *next is the tat to store when it is allowed. */
static bool gcra_judge(const struct gcra_params *p, int64_t old, int64_t now,
		       struct gcra_verdict *v, int64_t *next)
{
	int64_t tat = old > now ? old : now;
	/* when this request's token is due: burst - 1 tokens before tat */
	int64_t due = gcra_shift(p, tat, -(int64_t)(p->burst - 1));
	if (due > now) {
		*v = (struct gcra_verdict){.allowed = false, .remaining = 0,
					   .retry_after_ns = due - now, .reset_ns = tat - now};
		return false;
	}
	*next = gcra_shift(p, tat, 1);
	*v = (struct gcra_verdict){.allowed = true, .remaining = gcra_remaining(p, *next, now),
				   .retry_after_ns = 0, .reset_ns = *next - now};
	return true;
}

int gcra_params_init(struct gcra_params *p, uint64_t average, uint64_t period_ms, uint64_t burst)
{
	if (!p || average == 0 || period_ms == 0 || period_ms > (uint64_t)INT64_MAX / 1000000)
		return -1;
	int64_t period_ns = (int64_t)period_ms * 1000000;
	if (average > (uint64_t)period_ns)
		return -1; /* under 1 ns a token: the schedule's cells would be empty */
	if (burst == 0)
		burst = average;
	/* the span of a full bucket, burst * period / average, bounds every
	 * distance between tat and now (and so every product below) */
	gcra_uwide span = (gcra_uwide)burst * (uint64_t)period_ns;
	if ((span + average - 1) / average > (uint64_t)GCRA_SPAN_MAX)
		return -1;
	int64_t interval = period_ns / (int64_t)average + (period_ns % (int64_t)average != 0);
	*p = (struct gcra_params){.interval_ns = interval,
				  .tolerance_ns = (int64_t)(burst - 1) * interval,
				  .burst = burst, .average = average, .period_ns = period_ns};
	return 0;
}

bool gcra_take(struct gcra *g, const struct gcra_params *p, int64_t now_ns, struct gcra_verdict *v)
{
	int64_t now = gcra_clamp_now(now_ns);
	/* Relaxed is enough: tat is the only shared datum and the CAS makes
	 * each read-modify-write of it atomic. */
	int64_t old = atomic_load_explicit(&g->tat, memory_order_relaxed);
	int64_t next;
	do {
		if (!gcra_judge(p, old, now, v, &next))
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&g->tat, &old, next, memory_order_relaxed,
							memory_order_relaxed));
	return true;
}

void gcra_peek(const struct gcra *g, const struct gcra_params *p, int64_t now_ns,
	       struct gcra_verdict *v)
{
	int64_t next;
	int64_t old = atomic_load_explicit(&g->tat, memory_order_relaxed);
	gcra_judge(p, old, gcra_clamp_now(now_ns), v, &next);
}

long gcra_retry_after_s(const struct gcra_verdict *v)
{
	if (v->retry_after_ns <= 0)
		return 1;
	return (long)((v->retry_after_ns - 1) / 1000000000 + 1);
}
