/*
 * test_rate_limit.c - the rate limiter's core with time moved by hand: the
 * GCRA bucket's arithmetic (burst, refill, exact counts over long runs,
 * non-integral intervals, clocks going back, years of idle, parameter
 * overflow), no double spend when threads race on one bucket, client keys
 * from sockets and header text, and the bounded per-client table (isolation,
 * memory bound under a million keys, eviction order, threads).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/limit/client_key.h"
#include "proxy/limit/client_table.h"
#include "proxy/limit/gcra.h"
#include "tests/unit/check.h"

#define MS INT64_C(1000000)
#define SEC INT64_C(1000000000)
#define T0 (1000 * SEC) /* a monotonic "now" far from 0 */

static struct gcra_params params(uint64_t average, uint64_t period_ms, uint64_t burst)
{
	struct gcra_params p;
	if (gcra_params_init(&p, average, period_ms, burst) != 0) {
		fprintf(stderr, "params %llu/%llums burst %llu refused\n", (unsigned long long)average,
			(unsigned long long)period_ms, (unsigned long long)burst);
		exit(2);
	}
	return p;
}

/* drain: takes at now until one is refused; the number admitted. */
static uint64_t drain(struct gcra *g, const struct gcra_params *p, int64_t now)
{
	struct gcra_verdict v;
	uint64_t n = 0;
	while (gcra_take(g, p, now, &v))
		n++;
	return n;
}

/* ---- bucket arithmetic ---- */

static void test_params(void)
{
	struct gcra_params p;
	CHECK(gcra_params_init(&p, 100, 1000, 200) == 0);
	CHECK(p.interval_ns == 10 * MS && p.tolerance_ns == 199 * 10 * MS);
	CHECK(p.burst == 200 && p.average == 100 && p.period_ns == SEC);
	CHECK(gcra_params_init(&p, 100, 1000, 0) == 0 && p.burst == 100);
	CHECK(gcra_params_init(&p, 3, 1000, 0) == 0 && p.interval_ns == 333333334);
	CHECK(gcra_params_init(&p, 0, 1000, 10) == -1);
	CHECK(gcra_params_init(&p, 10, 0, 10) == -1);
	CHECK(gcra_params_init(&p, 10, UINT64_MAX, 10) == -1);                     /* period */
	CHECK(gcra_params_init(&p, 10, (uint64_t)INT64_MAX / 1000000 + 1, 1) == -1); /* period */
	CHECK(gcra_params_init(&p, 1, 86400000, 1000000000000ull) == -1);           /* span */
	CHECK(gcra_params_init(&p, 1, 1000, UINT64_MAX) == -1);
	CHECK(gcra_params_init(&p, 2000000, 1, 0) == -1); /* 0.5 ns a token */
	CHECK(gcra_params_init(&p, 1000000, 1, 0) == 0 && p.interval_ns == 1);
	CHECK(gcra_params_init(&p, 1000000000, 1000, 1000000000000ull) == 0);
	CHECK(gcra_params_init(NULL, 1, 1, 1) == -1);
}

static void test_burst_then_refill(void)
{
	struct gcra_params p = params(100, 1000, 200);
	struct gcra g = {0};
	struct gcra_verdict v;

	CHECK(drain(&g, &p, T0) == 200);
	/* one token per 10 ms, exactly */
	CHECK(!gcra_take(&g, &p, T0 + 10 * MS - 1, &v));
	CHECK(v.retry_after_ns == 1 && v.remaining == 0);
	CHECK(gcra_take(&g, &p, T0 + 10 * MS, &v) && v.remaining == 0);
	CHECK(!gcra_take(&g, &p, T0 + 10 * MS, &v) && v.retry_after_ns == 10 * MS);
	CHECK(drain(&g, &p, T0 + 50 * MS) == 4);
	CHECK(drain(&g, &p, T0 + 50 * MS + 9 * MS) == 0);
}

static void test_remaining_and_reset(void)
{
	struct gcra_params p = params(10, 1000, 5); /* 100 ms a token */
	struct gcra g = {0};
	struct gcra_verdict v;

	gcra_peek(&g, &p, T0, &v);
	CHECK(v.allowed && v.remaining == 4 && v.reset_ns == 100 * MS && v.retry_after_ns == 0);
	CHECK(atomic_load(&g.tat) == 0); /* peek changed nothing */
	for (uint64_t i = 1; i <= 5; i++) {
		CHECK(gcra_take(&g, &p, T0, &v));
		CHECK(v.remaining == 5 - i && v.reset_ns == (int64_t)i * 100 * MS);
	}
	CHECK(!gcra_take(&g, &p, T0 + 30 * MS, &v));
	CHECK(v.remaining == 0 && v.retry_after_ns == 70 * MS && v.reset_ns == 470 * MS);
	int64_t tat = atomic_load(&g.tat);
	CHECK(!gcra_take(&g, &p, T0 + 30 * MS, &v) && atomic_load(&g.tat) == tat);
	/* 250 ms later: two tokens back and half of a third */
	gcra_peek(&g, &p, T0 + 250 * MS, &v);
	CHECK(v.allowed && v.remaining == 1 && v.reset_ns == 350 * MS);
	/* full again at reset */
	gcra_peek(&g, &p, T0 + 500 * MS, &v);
	CHECK(v.allowed && v.remaining == 4 && v.reset_ns == 100 * MS);
	CHECK(drain(&g, &p, T0 + 500 * MS) == 5);
}

static void test_retry_after_s(void)
{
	struct gcra_verdict v = {0};
	v.retry_after_ns = 1;
	CHECK(gcra_retry_after_s(&v) == 1);
	v.retry_after_ns = SEC;
	CHECK(gcra_retry_after_s(&v) == 1);
	v.retry_after_ns = SEC + 1;
	CHECK(gcra_retry_after_s(&v) == 2);
	v.retry_after_ns = 0;
	CHECK(gcra_retry_after_s(&v) == 1);
	v.retry_after_ns = INT64_MAX;
	CHECK(gcra_retry_after_s(&v) == 9223372037L);
}

/* test_double_rate: 50/s burst 20 offered 100/s for 6 s admits 20 + 300
 * (301 when the last refill lands on the run's edge). */
static void test_double_rate(void)
{
	struct gcra_params p = params(50, 1000, 20);
	struct gcra g = {0};
	struct gcra_verdict v;
	uint64_t admitted = 0;
	for (int64_t t = 0; t <= 6 * SEC; t += 10 * MS)
		admitted += gcra_take(&g, &p, T0 + t, &v);
	CHECK(admitted == 20 + 300 || admitted == 20 + 301);
	/* and the offered rate only ever sees the refill rate once drained */
	uint64_t later = 0;
	for (int64_t t = 6 * SEC + 10 * MS; t <= 16 * SEC; t += 10 * MS)
		later += gcra_take(&g, &p, T0 + t, &v);
	CHECK(later == 500);
}

/* test_per_minute: 6 per minute burst 6: six at once, then one every 10 s. */
static void test_per_minute(void)
{
	struct gcra_params p = params(6, 60000, 6);
	struct gcra g = {0};
	struct gcra_verdict v;
	CHECK(drain(&g, &p, T0) == 6);
	CHECK(!gcra_take(&g, &p, T0 + 9999 * MS, &v) && v.retry_after_ns == MS);
	CHECK(gcra_retry_after_s(&v) == 1);
	CHECK(gcra_take(&g, &p, T0 + 10 * SEC, &v));
	CHECK(!gcra_take(&g, &p, T0 + 10 * SEC, &v) && v.retry_after_ns == 10 * SEC);
	CHECK(gcra_retry_after_s(&v) == 10);
	CHECK(gcra_take(&g, &p, T0 + 20 * SEC, &v));
	/* a minute of nothing: full again, six at once */
	CHECK(drain(&g, &p, T0 + 80 * SEC) == 6);
}

/* test_clock_backwards: an earlier now finds no tokens a later one spent. */
static void test_clock_backwards(void)
{
	struct gcra_params p = params(10, 1000, 10);
	struct gcra g = {0};
	struct gcra_verdict v;
	CHECK(drain(&g, &p, T0 + 10 * SEC) == 10);
	int64_t tat = atomic_load(&g.tat);
	CHECK(!gcra_take(&g, &p, T0 + 5 * SEC, &v));
	CHECK(!gcra_take(&g, &p, T0, &v));
	CHECK(!gcra_take(&g, &p, 0, &v));
	CHECK(!gcra_take(&g, &p, -5 * SEC, &v));
	CHECK(!gcra_take(&g, &p, INT64_MIN, &v) && v.retry_after_ns > 0);
	CHECK(atomic_load(&g.tat) == tat);
	/* and going forward again, the refill is counted from the latest tat */
	CHECK(drain(&g, &p, T0 + 10 * SEC + 100 * MS) == 1);
}

/* test_extremes: now at 0 and at the int64 ends, years of idle: no
 * overflow (UBSan watches), exact answers where time is representable. */
static void test_extremes(void)
{
	struct gcra_params p = params(100, 1000, 200);
	struct gcra g = {0};
	struct gcra_verdict v;

	CHECK(drain(&g, &p, 0) == 200);
	CHECK(!gcra_take(&g, &p, 9 * MS, &v) && v.retry_after_ns == MS);
	/* 100 years of idle: exactly burst */
	int64_t years = INT64_C(100) * 365 * 86400 * SEC;
	CHECK(drain(&g, &p, years) == 200);
	CHECK(!gcra_take(&g, &p, years, &v) && v.retry_after_ns == 10 * MS);
	/* beyond GCRA_NOW_MAX time stands still: a burst, then nothing */
	struct gcra end = {0};
	CHECK(drain(&end, &p, INT64_MAX) == 200);
	CHECK(!gcra_take(&end, &p, INT64_MAX, &v) && v.retry_after_ns == 10 * MS);
	CHECK(!gcra_take(&end, &p, INT64_MAX - 1, &v));
	CHECK(drain(&end, &p, GCRA_NOW_MAX + 10 * MS) == 0);
	/* a zero bucket is full at any time, negative ones included */
	struct gcra neg = {0};
	CHECK(drain(&neg, &p, INT64_MIN) == 200);
	/* a corrupted tat at either end neither overflows nor admits */
	struct gcra odd = {INT64_MAX};
	CHECK(!gcra_take(&odd, &p, T0, &v) && v.retry_after_ns > 0 && v.reset_ns > 0);
	atomic_store(&odd.tat, INT64_MIN);
	CHECK(drain(&odd, &p, T0) == 200);
	/* the same with a non-integral interval and the largest span */
	struct gcra_params q = params(3, 1000, 0);
	struct gcra h = {0};
	CHECK(drain(&h, &q, INT64_MAX) == 3 && drain(&h, &q, years) == 0);
	struct gcra_params big;
	CHECK(gcra_params_init(&big, 7, 1000, (uint64_t)(GCRA_SPAN_MAX / (SEC / 7)) + 1) == -1);
	CHECK(gcra_params_init(&big, 7, 1000, (uint64_t)(GCRA_SPAN_MAX / (SEC / 7 + 1))) == 0);
	struct gcra b = {0};
	CHECK(!gcra_take(&(struct gcra){INT64_MAX}, &big, INT64_MAX, &v));
	CHECK(gcra_take(&b, &big, INT64_MAX, &v) && v.remaining == big.burst - 1);
	/* clock back to 0: tat stays far ahead, the wait nearly the whole way */
	CHECK(!gcra_take(&b, &big, 0, &v) && v.retry_after_ns > GCRA_NOW_MAX - GCRA_SPAN_MAX);
}

/* run_saturated: a bucket offered a request every step ns for duration ns
 * (both ends included), starting at start; the number admitted. */
static uint64_t run_saturated(const struct gcra_params *p, int64_t start, int64_t duration,
			      int64_t step)
{
	struct gcra g = {0};
	struct gcra_verdict v;
	uint64_t n = 0;
	for (int64_t t = 0; t <= duration; t += step)
		n += drain(&g, p, start + t);
	(void)v;
	return n;
}

/* test_non_integral: 3/s over 1000 s admits burst + 3000, wherever the run
 * starts; rates whose interval is a fraction of a ns off whole (1000001/s,
 * 999999/s) don't drift either, where a rounded interval would gain or
 * lose a token every thousand or million. */
static void test_non_integral(void)
{
	struct gcra_params p = params(3, 1000, 0);
	CHECK(run_saturated(&p, T0, 1000 * SEC, MS) == 3 + 3000);
	CHECK(run_saturated(&p, T0 + 12345, 1000 * SEC, MS) == 3 + 3000);
	CHECK(run_saturated(&p, 0, 1000 * SEC, 7 * MS + 3) >= 3 + 2999);
	CHECK(run_saturated(&p, T0, 1000 * SEC - 1, MS) == 3 + 2999);
	/* burst 10, 7 per 3 s, over a simulated hour */
	struct gcra_params q = params(7, 3000, 10);
	CHECK(run_saturated(&q, T0 + 1, 3600 * SEC, 10 * MS) == 10 + 8400);

	/* (a burst above the thousand tokens refilled between two steps) */
	struct gcra_params fast = params(1000001, 1000, 2000);
	CHECK(run_saturated(&fast, T0 + 777, 2 * SEC, MS) == 2000 + 2000002);
	struct gcra_params slow = params(999999, 1000, 2000);
	CHECK(run_saturated(&slow, T0 + 5, 2 * SEC, MS) == 2000 + 1999998);

	/* 3/s offered once every 100 ms for 1000 s: still 3000 + burst */
	struct gcra g = {0};
	struct gcra_verdict v;
	uint64_t n = 0;
	for (int64_t t = 0; t <= 1000 * SEC; t += 100 * MS)
		n += gcra_take(&g, &p, T0 + 333 + t, &v);
	CHECK(n >= 3 + 2999 && n <= 3 + 3000);
}

/* test_non_integral_steps: 1 s / 3: each refill is 333333333 or
 * 333333334 ns after the last, and never more than 2 ns off exact time. */
static void test_non_integral_steps(void)
{
	struct gcra_params p = params(3, 1000, 1);
	struct gcra g = {0};
	struct gcra_verdict v;
	int64_t start = T0 + 42, t = start;
	CHECK(gcra_take(&g, &p, t, &v));
	for (int k = 1; k <= 30000; k++) {
		CHECK(!gcra_take(&g, &p, t, &v));
		int64_t next = t + v.retry_after_ns;
		int64_t exact = start + (int64_t)((__extension__(__int128)k * SEC) / 3);
		bool step_ok = k == 1 || next - t == 333333333 || next - t == 333333334;
		bool near = next - exact <= 2 && exact - next <= 2;
		if (!step_ok || !near) {
			CHECK(step_ok);
			CHECK(near);
			break;
		}
		CHECK(!gcra_take(&g, &p, next - 1, &v));
		CHECK(gcra_take(&g, &p, next, &v));
		t = next;
	}
}

/* ---- one bucket, many threads ---- */

#define RACE_THREADS 4

struct race {
	struct gcra g;
	struct gcra_params p;
	pthread_barrier_t barrier;
	_Atomic uint64_t admitted;
	int rounds, tries;
	int64_t step;
};

/* race_worker: every round, all threads hammer the bucket at the same now,
 * then wait for each other; the clock moves between rounds. */
static void *race_worker(void *arg)
{
	struct race *r = arg;
	struct gcra_verdict v;
	for (int round = 0; round < r->rounds; round++) {
		pthread_barrier_wait(&r->barrier);
		int64_t now = T0 + round * r->step;
		uint64_t n = 0;
		for (int i = 0; i < r->tries; i++)
			n += gcra_take(&r->g, &r->p, now, &v);
		atomic_fetch_add(&r->admitted, n);
	}
	return NULL;
}

/* race_expect: what the same rounds admit taken one thread at a time (all
 * takes of a round share now, so order within a round doesn't matter). */
static uint64_t race_expect(const struct gcra_params *p, int rounds, int tries, int64_t step)
{
	struct gcra g = {0};
	struct gcra_verdict v;
	uint64_t n = 0;
	for (int round = 0; round < rounds; round++)
		for (int i = 0; i < RACE_THREADS * tries; i++)
			n += gcra_take(&g, p, T0 + round * step, &v);
	return n;
}

static uint64_t race_run(const struct gcra_params *p, int rounds, int tries, int64_t step)
{
	struct race r = {.p = *p, .rounds = rounds, .tries = tries, .step = step};
	pthread_t th[RACE_THREADS];
	pthread_barrier_init(&r.barrier, NULL, RACE_THREADS);
	for (int i = 0; i < RACE_THREADS; i++)
		pthread_create(&th[i], NULL, race_worker, &r);
	for (int i = 0; i < RACE_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&r.barrier);
	return atomic_load(&r.admitted);
}

/* test_concurrent_bucket: threads racing on one bucket spend each token
 * once: the total is exactly what the arithmetic allows, with the clock
 * fixed (the burst) and moving (burst plus the refill of each round). The
 * rounds are long enough for the threads' takes to overlap. */
static void test_concurrent_bucket(void)
{
	struct gcra_params p = params(100, 1000, 200000);
	CHECK(race_run(&p, 1, 100000, 0) == 200000);
	/* 10^6/s in rounds of 10 ms: 10000 tokens a round for 32000 takes
	 * (the burst above a round's refill, so none is lost to the cap) */
	struct gcra_params q = params(1000000, 1000, 20000);
	uint64_t want = race_expect(&q, 40, 8000, 10 * MS);
	CHECK(want == 20000 + 39 * 10000);
	CHECK(race_run(&q, 40, 8000, 10 * MS) == want);
	/* the same off whole ns (999999/s: the schedule's path) */
	struct gcra_params r = params(999999, 1000, 20000);
	want = race_expect(&r, 40, 8000, 10 * MS);
	CHECK(want == 20000 + 389999); /* 390 ms at 999999/s, floored */
	CHECK(race_run(&r, 40, 8000, 10 * MS) == want);
}

/* ---- client keys ---- */

static struct client_key key_v4(const char *s)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(1234)};
	struct client_key k;
	inet_pton(AF_INET, s, &in.sin_addr);
	client_key_from_sockaddr(&k, (struct sockaddr *)&in, 64);
	return k;
}

static struct client_key key_v6(const char *s, uint8_t prefix)
{
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
	struct client_key k;
	inet_pton(AF_INET6, s, &in6.sin6_addr);
	if (client_key_from_sockaddr(&k, (struct sockaddr *)&in6, prefix) != 0)
		k.family = 0;
	return k;
}

static bool parses(const char *s, uint8_t prefix, struct client_key *k)
{
	return client_key_parse(k, s, strlen(s), prefix) == 0;
}

static void test_client_key_sockaddr(void)
{
	struct client_key a = key_v4("192.0.2.7"), b;
	CHECK(a.family == 4 && a.prefix == 32 && memcmp(a.addr, "\xc0\x00\x02\x07", 4) == 0);
	b = key_v6("::ffff:192.0.2.7", 64);
	CHECK(client_key_equal(&a, &b) && client_key_hash(&a, 1) == client_key_hash(&b, 1));
	b = key_v4("192.0.2.8");
	CHECK(!client_key_equal(&a, &b));

	struct client_key x = key_v6("2001:db8:1:2:aaaa::1", 64);
	struct client_key y = key_v6("2001:db8:1:2:bbbb::9", 64);
	struct client_key z = key_v6("2001:db8:1:3::1", 64);
	CHECK(x.family == 6 && x.prefix == 64);
	CHECK(client_key_equal(&x, &y) && client_key_hash(&x, 7) == client_key_hash(&y, 7));
	CHECK(!client_key_equal(&x, &z));
	CHECK(!client_key_equal(&x, &(struct client_key){6, 48, {0}}));
	x = key_v6("2001:db8::1", 128);
	y = key_v6("2001:db8::2", 128);
	CHECK(x.prefix == 128 && !client_key_equal(&x, &y) && x.addr[15] == 1);
	x = key_v6("2001:db8::ff", 127);
	y = key_v6("2001:db8::fe", 127);
	CHECK(client_key_equal(&x, &y) && x.addr[15] == 0xfe);
	x = key_v6("2001:db8:8000::", 33);
	CHECK(x.addr[4] == 0x80 && x.addr[5] == 0);
	x = key_v6("2001:db8:4000::", 33);
	CHECK(x.addr[4] == 0 && client_key_equal(&x, &(struct client_key){6, 33, {0x20, 0x01, 0x0d, 0xb8}}));
	CHECK(key_v6("::1", 0).family == 0 && key_v6("::1", 129).family == 0);

	struct sockaddr_un_like {
		sa_family_t family;
		char path[32];
	} un = {.family = AF_UNIX};
	CHECK(client_key_from_sockaddr(&b, (struct sockaddr *)&un, 64) == -1 && b.family == 0);
	CHECK(client_key_from_sockaddr(&b, NULL, 64) == -1);
}

static void test_client_key_parse(void)
{
	struct client_key k, ref = key_v4("1.2.3.4");
	CHECK(parses("1.2.3.4", 64, &k) && client_key_equal(&k, &ref));
	CHECK(parses("1.2.3.4:5678", 64, &k) && client_key_equal(&k, &ref));
	CHECK(parses("1.2.3.4:0", 64, &k) && parses("1.2.3.4:65535", 64, &k));
	CHECK(parses("::ffff:1.2.3.4", 64, &k) && client_key_equal(&k, &ref));
	CHECK(parses("[::ffff:1.2.3.4]:80", 64, &k) && client_key_equal(&k, &ref));
	struct client_key v6 = key_v6("2001:db8::1", 64);
	CHECK(parses("2001:db8::1", 64, &k) && client_key_equal(&k, &v6));
	CHECK(parses("[2001:db8::1]", 64, &k) && client_key_equal(&k, &v6));
	CHECK(parses("[2001:db8::1]:443", 64, &k) && client_key_equal(&k, &v6));
	CHECK(parses("2001:db8::ffff:1", 64, &k) && client_key_equal(&k, &v6)); /* same /64 */
	CHECK(parses("2001:db8::ffff:1", 128, &k) && !client_key_equal(&k, &v6));
	/* longest form accepted */
	const char *longest = "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535";
	CHECK(strlen(longest) == CLIENT_KEY_TEXT_MAX && parses(longest, 128, &k));
	/* only len bytes are read */
	CHECK(client_key_parse(&k, "1.2.3.4, 5.6.7.8", 7, 64) == 0 && client_key_equal(&k, &ref));

	static const char *const bad[] = {
		"unknown", "_x", "_hidden", "1.2.3", "1.2.3.4.5", "::g", "[::1", "1.2.3.4:",
		" 1.2.3.4", "1.2.3.4 ", "\"1.2.3.4\"", "", "1.2.3.4:65536", "1.2.3.4:123456",
		"1.2.3.4:-1", "1.2.3.4:_abc", "[::1]:", "[::1]x", "[::1]:_p", "[1.2.3.4]",
		"[::1]]", "256.1.1.1", "01.2.3.4", "0x1.2.3.4", "fe80::1%eth0", "1.2.3.4:80:80",
		"[2001:db8::1]:443:1", "2001:db8::1::2", "[[::1]]", ":::", "1.2.3.4/24",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "localhost", "1.2.3.4:+80",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		k.family = 9;
		bool rejected = !parses(bad[i], 64, &k) && k.family == 0;
		if (!rejected)
			fprintf(stderr, "accepted \"%s\"\n", bad[i]);
		CHECK(rejected);
	}
	char over[200];
	memset(over, '0', sizeof over);
	memcpy(over, "1.2.3.4:", 8);
	CHECK(client_key_parse(&k, over, sizeof over, 64) == -1);
	CHECK(client_key_parse(&k, "[2001:db8:0:0:0:0:0:1]:00000443", 31, 64) == -1);
	CHECK(client_key_parse(&k, "[2001:db8:0000:0000:0000:0000:0000:1]:00443", 43, 64) == 0);
	CHECK(client_key_parse(&k, "[2001:0db8:0000:0000:0000:0000:0000:0001]:443:", 46, 64) == -1);
	CHECK(client_key_parse(&k, "1.2.3.4\0", 8, 64) == -1); /* embedded NUL */
	CHECK(client_key_parse(&k, NULL, 0, 64) == -1);
	CHECK(client_key_parse(&k, "1.2.3.4", 7, 0) == -1 && client_key_parse(&k, "::1", 3, 129) == -1);
}

static void test_client_key_hash(void)
{
	struct client_key a = key_v4("10.0.0.1"), b = key_v4("10.0.0.2");
	CHECK(client_key_hash(&a, 1) != client_key_hash(&b, 1));
	CHECK(client_key_hash(&a, 1) != client_key_hash(&a, 2));
	CHECK(client_key_hash(&a, 1) == client_key_hash(&a, 1));
	/* same bytes, other family or prefix: other keys */
	struct client_key c = a;
	c.family = 6;
	CHECK(!client_key_equal(&a, &c) && client_key_hash(&a, 1) != client_key_hash(&c, 1));
}

/* ---- the client table ---- */

/* drain_table: takes for key at now until one is refused; the number admitted. */
static uint64_t drain_table(struct client_table *t, const struct client_key *key,
			    const struct gcra_params *p, int64_t now)
{
	struct gcra_verdict v;
	uint64_t n = 0;
	while (client_table_take(t, key, p, now, &v) && n < 1000)
		n++;
	return n;
}

/* key_n: the n-th of many distinct client keys (IPv4 from 10.0.0.0 up). */
static struct client_key key_n(uint32_t n)
{
	struct client_key k = {.family = 4, .prefix = 32};
	uint32_t be = htonl(0x0a000000u + n);
	memcpy(k.addr, &be, 4);
	return k;
}

static void test_table_isolation(void)
{
	struct client_table *t = client_table_new(1000);
	struct gcra_params p = params(10, 1000, 3);
	struct gcra_verdict v;
	struct client_key a = key_n(1), b = key_n(2);
	CHECK(t && client_table_size(t) == 0);
	for (int i = 0; i < 3; i++)
		CHECK(client_table_take(t, &a, &p, T0, &v) && v.remaining == (uint64_t)(2 - i));
	CHECK(!client_table_take(t, &a, &p, T0, &v) && v.retry_after_ns == 100 * MS);
	CHECK(client_table_take(t, &b, &p, T0, &v) && v.remaining == 2);
	CHECK(client_table_size(t) == 2 && client_table_evictions(t) == 0);
	CHECK(client_table_take(t, &a, &p, T0 + 100 * MS, &v));
	CHECK(!client_table_take(t, &a, &p, T0 + 100 * MS, &v));
	client_table_free(t);
	client_table_free(NULL);
	CHECK(client_table_new(0) == NULL && client_table_new(CLIENT_TABLE_MAX_CLIENTS + 1) == NULL);
}

/* table_bound: the stated memory bound for max clients. */
static size_t table_bound(uint32_t max)
{
	return (size_t)max * 43 + 8192;
}

/* test_table_bound: a million distinct clients through 65536 slots, first
 * at one instant (all active: forced evictions), then with time moving so
 * the old ones go idle (recycled, no forced eviction). */
static void test_table_bound(void)
{
	struct client_table *t = client_table_new(65536);
	struct gcra_params p = params(1, 1000, 2); /* each client stays active 1 s */
	struct gcra_verdict v;
	size_t empty = client_table_bytes(t), max_size = 0, max_bytes = 0;
	uint64_t allowed = 0;
	for (uint32_t i = 0; i < 1000000; i++) {
		struct client_key k = key_n(i);
		allowed += client_table_take(t, &k, &p, T0, &v);
		if ((i & 1023) == 0 || i > 999000) {
			size_t n = client_table_size(t), b = client_table_bytes(t);
			max_size = n > max_size ? n : max_size;
			max_bytes = b > max_bytes ? b : max_bytes;
		}
	}
	size_t full = client_table_bytes(t);
	printf("client table: %zu bytes empty, %zu bytes with %zu clients: %.1f bytes a client\n",
	       empty, full, client_table_size(t), (double)full / (double)client_table_size(t));
	CHECK(empty < 8192);
	CHECK(allowed == 1000000); /* every client new or evicted: a full bucket */
	CHECK(max_size <= 65536 && client_table_size(t) == 65536);
	CHECK(max_bytes <= table_bound(65536) && full <= table_bound(65536));
	CHECK(client_table_evictions(t) >= 1000000 - 65536);
	client_table_free(t);

	/* moving time: 10 us a client at 100/s, so those older than 10 ms
	 * (all but about 1000) are idle full */
	t = client_table_new(65536);
	struct gcra_params quick = params(100, 1000, 2);
	for (uint32_t i = 0; i < 1000000; i++) {
		struct client_key k = key_n(i);
		client_table_take(t, &k, &quick, T0 + (int64_t)i * 10000, &v);
	}
	CHECK(client_table_size(t) <= 65536 && client_table_bytes(t) <= table_bound(65536));
	CHECK(client_table_evictions(t) == 0);
	client_table_free(t);

	/* tiny tables hold too */
	for (uint32_t max = 1; max <= 40; max++) {
		t = client_table_new(max);
		for (uint32_t i = 0; i < 500; i++) {
			struct client_key k = key_n(i);
			client_table_take(t, &k, &p, T0, &v);
			if (client_table_size(t) > max) {
				CHECK(client_table_size(t) <= max);
				break;
			}
		}
		CHECK(client_table_size(t) == max && client_table_bytes(t) <= table_bound(max));
		client_table_free(t);
	}
}

/* test_table_idle_first: with a full table, a new client evicts the idle
 * full bucket and not the active ones (8 clients: one stripe, one look). */
static void test_table_idle_first(void)
{
	struct client_table *t = client_table_new(8);
	struct gcra_params p = params(1, 10000, 2); /* 10 s a token */
	struct gcra_verdict v;
	struct client_key idle = key_n(100);
	CHECK(client_table_take(t, &idle, &p, T0, &v));
	/* 7 others drained at T0 + 30 s, when idle is full again */
	for (uint32_t i = 0; i < 7; i++) {
		struct client_key k = key_n(i);
		CHECK(drain_table(t, &k, &p, T0 + 30 * SEC) == 2);
	}
	CHECK(client_table_size(t) == 8);
	struct client_key fresh = key_n(200);
	CHECK(client_table_take(t, &fresh, &p, T0 + 30 * SEC, &v));
	CHECK(client_table_size(t) == 8 && client_table_evictions(t) == 0);
	for (uint32_t i = 0; i < 7; i++) {
		struct client_key k = key_n(i);
		CHECK(!client_table_take(t, &k, &p, T0 + 30 * SEC, &v)); /* still limited */
	}
	/* now everyone is active: the next newcomer evicts the closest to full,
	 * fresh (one token spent 0 s ago, 10 s owed) rather than the drained */
	struct client_key other = key_n(300);
	CHECK(client_table_take(t, &other, &p, T0 + 30 * SEC, &v));
	CHECK(client_table_evictions(t) == 1);
	for (uint32_t i = 0; i < 7; i++) {
		struct client_key k = key_n(i);
		CHECK(!client_table_take(t, &k, &p, T0 + 30 * SEC, &v));
	}
	CHECK(client_table_take(t, &fresh, &p, T0 + 30 * SEC, &v)); /* evicted: full again */
	client_table_free(t);
}

/* test_table_limited_stays: one drained client keeps its state while a
 * million others pass through its table, none as limited as it. */
static void test_table_limited_stays(void)
{
	struct client_table *t = client_table_new(65536);
	struct gcra_params p = params(1, 1000, 10); /* drained: 10 s owed */
	struct gcra_verdict v;
	struct client_key limited = key_n(0xffffff);
	CHECK(drain_table(t, &limited, &p, T0) == 10);
	for (uint32_t i = 0; i < 1000000; i++) {
		struct client_key k = key_n(i);
		client_table_take(t, &k, &p, T0 + (int64_t)i * 1000, &v); /* one token: 1 s owed */
	}
	CHECK(client_table_evictions(t) > 0);
	CHECK(!client_table_take(t, &limited, &p, T0 + 999 * MS, &v) && v.retry_after_ns == MS);
	CHECK(client_table_take(t, &limited, &p, T0 + SEC, &v));
	CHECK(!client_table_take(t, &limited, &p, T0 + SEC, &v) && v.retry_after_ns == SEC);
	client_table_free(t);
}

/* ---- the table, many threads ---- */

#define TT_THREADS 4
#define TT_KEYS 2000

struct table_race {
	struct client_table *t;
	struct gcra_params p;
	pthread_barrier_t *barrier;
	int id;
	uint64_t own_admitted;
	_Atomic uint64_t *shared_admitted;
};

/* table_worker: this thread's own keys, the keys every thread shares, and
 * a stream of throwaway keys to churn a second, small table. */
static void *table_worker(void *arg)
{
	struct table_race *r = arg;
	struct gcra_verdict v;
	pthread_barrier_wait(r->barrier);
	for (int round = 0; round < 3; round++) {
		for (uint32_t i = 0; i < TT_KEYS; i++) {
			struct client_key own = key_n((uint32_t)(r->id + 1) * 100000 + i);
			struct client_key shared = key_n(i);
			r->own_admitted += client_table_take(r->t, &own, &r->p, T0, &v);
			if (client_table_take(r->t, &shared, &r->p, T0, &v))
				atomic_fetch_add(r->shared_admitted, 1);
		}
	}
	return NULL;
}

struct churn {
	struct client_table *t;
	int id;
};

static void *churn_worker(void *arg)
{
	struct churn *c = arg;
	struct gcra_params p = params(5, 1000, 2);
	struct gcra_verdict v;
	for (uint32_t i = 0; i < 100000; i++) {
		struct client_key k = key_n(i * TT_THREADS + (uint32_t)c->id);
		client_table_take(c->t, &k, &p, T0 + (int64_t)i * 1000, &v);
		struct client_key hot = key_n(i % 16);
		client_table_take(c->t, &hot, &p, T0 + (int64_t)i * 1000, &v);
	}
	return NULL;
}

static void test_table_concurrent(void)
{
	struct client_table *t = client_table_new(65536);
	_Atomic uint64_t shared = 0;
	struct table_race r[TT_THREADS];
	pthread_t th[TT_THREADS];
	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, TT_THREADS);
	for (int i = 0; i < TT_THREADS; i++) {
		r[i] = (struct table_race){.t = t, .p = params(1, 1000, 2), .barrier = &barrier,
					   .id = i, .shared_admitted = &shared};
	}
	for (int i = 0; i < TT_THREADS; i++)
		pthread_create(&th[i], NULL, table_worker, &r[i]);
	for (int i = 0; i < TT_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&barrier);
	for (int i = 0; i < TT_THREADS; i++)
		CHECK(r[i].own_admitted == 2 * TT_KEYS); /* burst 2 each, 3 tries each */
	CHECK(atomic_load(&shared) == 2 * TT_KEYS); /* burst 2 per shared key, all threads */
	CHECK(client_table_size(t) == (size_t)TT_KEYS * (TT_THREADS + 1));
	CHECK(client_table_evictions(t) == 0);
	client_table_free(t);

	/* churn through a small table from every thread: bound and no races */
	struct client_table *small = client_table_new(1000);
	struct churn c[TT_THREADS];
	for (int i = 0; i < TT_THREADS; i++) {
		c[i] = (struct churn){.t = small, .id = i};
		pthread_create(&th[i], NULL, churn_worker, &c[i]);
	}
	for (int i = 0; i < TT_THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK(client_table_size(small) <= 1000 && client_table_bytes(small) <= table_bound(1000));
	client_table_free(small);
}

int main(void)
{
	test_params();
	test_burst_then_refill();
	test_remaining_and_reset();
	test_retry_after_s();
	test_double_rate();
	test_per_minute();
	test_clock_backwards();
	test_extremes();
	test_non_integral();
	test_non_integral_steps();
	test_concurrent_bucket();
	test_client_key_sockaddr();
	test_client_key_parse();
	test_client_key_hash();
	test_table_isolation();
	test_table_bound();
	test_table_idle_first();
	test_table_limited_stays();
	test_table_concurrent();
	return check_done();
}
