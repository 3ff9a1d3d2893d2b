/*
 * test_balancer.c - balancing (round_robin, least_conn, ip_hash), the
 * all-down fallback, passive health with a driven clock, and the in-flight
 * counts under concurrent workers.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core/clock.h"
#include "proxy/core/log.h"
#include "proxy/upstream/balancer.h"
#include "proxy/upstream/health.h"
#include "tests/unit/check.h"

#define T0 1000000 /* a monotonic "now" far from 0 */

/* svc_new: a service of n backends 10.0.0.1:80 .. 10.0.0.n:80. */
static struct cfg_service *svc_new(size_t n, enum cfg_balance balance)
{
	struct cfg_service *svc = calloc(1, sizeof *svc);
	svc->name = strdup("api");
	svc->balance = balance;
	svc->n_backends = n;
	svc->backends = calloc(n ? n : 1, sizeof *svc->backends);
	svc->state = calloc(n ? n : 1, sizeof *svc->state);
	for (size_t i = 0; i < n; i++) {
		char host[32];
		snprintf(host, sizeof host, "10.0.0.%zu", i + 1);
		svc->backends[i].host = strdup(host);
		svc->backends[i].port = 80;
	}
	return svc;
}

static void svc_free(struct cfg_service *svc)
{
	if (!svc)
		return;
	for (size_t i = 0; i < svc->n_backends; i++)
		free(svc->backends[i].host);
	free(svc->backends);
	free(svc->state);
	free(svc->name);
	free(svc);
}

static void set_down(struct cfg_service *svc, int idx, int64_t until)
{
	atomic_store(&svc->state[idx].down_until_ms, until);
}

static struct sockaddr_in v4(const char *ip)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(5555)};
	inet_pton(AF_INET, ip, &sin.sin_addr);
	return sin;
}

static struct sockaddr_in6 v6(const char *ip)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(5555)};
	inet_pton(AF_INET6, ip, &sin6.sin6_addr);
	return sin6;
}

static int pick_v4(struct cfg_service *svc, const char *ip, int exclude)
{
	struct sockaddr_in sin = v4(ip);
	return balancer_pick(svc, (struct sockaddr *)&sin, exclude, T0);
}

static void test_round_robin(void)
{
	struct cfg_service *svc = svc_new(3, CFG_BAL_ROUND_ROBIN);
	int count[3] = {0};
	for (int i = 0; i < 300; i++) {
		int idx = balancer_pick(svc, NULL, -1, T0);
		CHECK(idx >= 0 && idx < 3);
		if (idx >= 0 && idx < 3)
			count[idx]++;
	}
	CHECK(count[0] == 100 && count[1] == 100 && count[2] == 100);

	/* consecutive picks take turns */
	int a = balancer_pick(svc, NULL, -1, T0), b = balancer_pick(svc, NULL, -1, T0);
	CHECK(a != b);

	/* a backend in its cool-down is skipped, the others share its load */
	set_down(svc, 1, T0 + 5000);
	memset(count, 0, sizeof count);
	for (int i = 0; i < 300; i++) {
		int idx = balancer_pick(svc, NULL, -1, T0);
		if (idx >= 0 && idx < 3)
			count[idx]++;
	}
	CHECK(count[1] == 0);
	CHECK(count[0] == 150 && count[2] == 150);
	/* ... and comes back when the cool-down has passed */
	CHECK(balancer_pick(svc, NULL, -1, T0 + 5000) >= 0);
	int seen1 = 0;
	for (int i = 0; i < 6; i++)
		seen1 += balancer_pick(svc, NULL, -1, T0 + 5000) == 1;
	CHECK(seen1 == 2);
	set_down(svc, 1, 0);

	/* the active checker's verdict counts too */
	atomic_store(&svc->state[2].check_down, true);
	for (int i = 0; i < 30; i++)
		CHECK(balancer_pick(svc, NULL, -1, T0) != 2);
	atomic_store(&svc->state[2].check_down, false);

	/* exclude: the retry path never gets the backend that just failed */
	memset(count, 0, sizeof count);
	for (int i = 0; i < 300; i++) {
		int idx = balancer_pick(svc, NULL, 0, T0);
		if (idx >= 0 && idx < 3)
			count[idx]++;
	}
	CHECK(count[0] == 0 && count[1] == 150 && count[2] == 150);
	svc_free(svc);
}

static void test_least_conn(void)
{
	struct cfg_service *svc = svc_new(3, CFG_BAL_LEAST_CONN);
	atomic_store(&svc->state[0].active, 5);
	atomic_store(&svc->state[1].active, 2);
	atomic_store(&svc->state[2].active, 7);
	for (int i = 0; i < 10; i++)
		CHECK(balancer_pick(svc, NULL, -1, T0) == 1);
	/* the least loaded one down or excluded: the next least loaded */
	CHECK(balancer_pick(svc, NULL, 1, T0) == 0);
	set_down(svc, 1, T0 + 1);
	CHECK(balancer_pick(svc, NULL, -1, T0) == 0);
	set_down(svc, 1, 0);

	/* ties rotate, so an idle service still spreads its requests */
	for (int i = 0; i < 3; i++)
		atomic_store(&svc->state[i].active, 0);
	int count[3] = {0};
	for (int i = 0; i < 300; i++) {
		int idx = balancer_pick(svc, NULL, -1, T0);
		if (idx >= 0 && idx < 3)
			count[idx]++;
	}
	CHECK(count[0] == 100 && count[1] == 100 && count[2] == 100);

	/* requests held open: each pick goes to the emptiest backend */
	for (int i = 0; i < 9; i++)
		balancer_acquire(svc, balancer_pick(svc, NULL, -1, T0));
	CHECK(atomic_load(&svc->state[0].active) == 3);
	CHECK(atomic_load(&svc->state[1].active) == 3);
	CHECK(atomic_load(&svc->state[2].active) == 3);
	balancer_release(svc, 2);
	balancer_release(svc, 2);
	CHECK(balancer_pick(svc, NULL, -1, T0) == 2);

	/* release never goes below zero; bad indexes are ignored */
	for (int i = 0; i < 5; i++)
		balancer_release(svc, 2);
	CHECK(atomic_load(&svc->state[2].active) == 0);
	balancer_acquire(svc, -1);
	balancer_acquire(svc, 3);
	balancer_release(svc, 7);
	CHECK(atomic_load(&svc->state[0].active) == 3);
	svc_free(svc);
}

static void test_ip_hash(void)
{
	struct cfg_service *svc = svc_new(3, CFG_BAL_IP_HASH);

	/* the same client always lands on the same backend */
	int home = pick_v4(svc, "192.0.2.10", -1);
	CHECK(home >= 0 && home < 3);
	for (int i = 0; i < 50; i++)
		CHECK(pick_v4(svc, "192.0.2.10", -1) == home);

	/* many clients spread over all backends */
	int count[3] = {0};
	char ip[32];
	for (int i = 0; i < 3000; i++) {
		snprintf(ip, sizeof ip, "198.51.%d.%d", i / 250, i % 250 + 1);
		int idx = pick_v4(svc, ip, -1);
		if (idx >= 0 && idx < 3)
			count[idx]++;
	}
	CHECK(count[0] > 800 && count[1] > 800 && count[2] > 800);

	/* an IPv4-mapped IPv6 client is the IPv4 client */
	struct sockaddr_in6 mapped = v6("::ffff:192.0.2.10");
	CHECK(balancer_pick(svc, (struct sockaddr *)&mapped, -1, T0) == home);

	/* IPv6 clients key on their /64 */
	struct sockaddr_in6 a = v6("2001:db8:1:2::1"), b = v6("2001:db8:1:2:ffff::99");
	int ia = balancer_pick(svc, (struct sockaddr *)&a, -1, T0);
	CHECK(ia >= 0 && ia == balancer_pick(svc, (struct sockaddr *)&b, -1, T0));
	memset(count, 0, sizeof count);
	for (int i = 0; i < 300; i++) {
		snprintf(ip, sizeof ip, "2001:db8:%x::1", i);
		struct sockaddr_in6 c = v6(ip);
		int idx = balancer_pick(svc, (struct sockaddr *)&c, -1, T0);
		if (idx >= 0 && idx < 3)
			count[idx]++;
	}
	CHECK(count[0] > 50 && count[1] > 50 && count[2] > 50);

	/* home down: the client moves, deterministically, and only clients of
	 * the down backend move; they spread over both others */
	int before[200], moved_to[3] = {0};
	for (int i = 0; i < 200; i++) {
		snprintf(ip, sizeof ip, "203.0.113.%d", i + 1);
		before[i] = pick_v4(svc, ip, -1);
	}
	set_down(svc, home, T0 + 10000);
	int alt = pick_v4(svc, "192.0.2.10", -1);
	CHECK(alt >= 0 && alt != home);
	for (int i = 0; i < 20; i++)
		CHECK(pick_v4(svc, "192.0.2.10", -1) == alt);
	int stable = 1;
	for (int i = 0; i < 200; i++) {
		snprintf(ip, sizeof ip, "203.0.113.%d", i + 1);
		int now = pick_v4(svc, ip, -1);
		if (before[i] != home && now != before[i])
			stable = 0;
		if (before[i] == home && now >= 0 && now < 3)
			moved_to[now]++;
	}
	CHECK(stable);
	CHECK(moved_to[home] == 0);
	CHECK(moved_to[(home + 1) % 3] > 0 && moved_to[(home + 2) % 3] > 0);
	/* retry path: excluding the alternative finds the third backend */
	int third = pick_v4(svc, "192.0.2.10", alt);
	CHECK(third >= 0 && third != alt && third != home);
	/* home back up: the client returns */
	set_down(svc, home, 0);
	CHECK(pick_v4(svc, "192.0.2.10", -1) == home);

	/* no client address: round robin */
	memset(count, 0, sizeof count);
	for (int i = 0; i < 30; i++) {
		int idx = balancer_pick(svc, NULL, -1, T0);
		if (idx >= 0 && idx < 3)
			count[idx]++;
	}
	CHECK(count[0] == 10 && count[1] == 10 && count[2] == 10);

	/* a reordered backend list keeps each client on the same address */
	struct cfg_service *rev = svc_new(3, CFG_BAL_IP_HASH);
	for (int i = 0; i < 3; i++) {
		free(rev->backends[i].host);
		rev->backends[i].host = strdup(svc->backends[2 - i].host);
	}
	int same = 1;
	for (int i = 0; i < 100; i++) {
		snprintf(ip, sizeof ip, "192.0.2.%d", i + 1);
		int x = pick_v4(svc, ip, -1), y = pick_v4(rev, ip, -1);
		if (x < 0 || y < 0 || strcmp(svc->backends[x].host, rev->backends[y].host) != 0)
			same = 0;
	}
	CHECK(same);
	svc_free(rev);
	svc_free(svc);
}

static void test_all_down(void)
{
	struct cfg_service *svc = svc_new(3, CFG_BAL_ROUND_ROBIN);

	/* every backend cooling down: the one whose cool-down ends first */
	set_down(svc, 0, T0 + 3000);
	set_down(svc, 1, T0 + 1000);
	set_down(svc, 2, T0 + 2000);
	for (enum cfg_balance b = CFG_BAL_ROUND_ROBIN; b <= CFG_BAL_IP_HASH; b++) {
		svc->balance = b;
		CHECK(balancer_pick(svc, NULL, -1, T0) == 1);
		CHECK(pick_v4(svc, "192.0.2.1", -1) == 1);
		/* ... unless that one is excluded */
		CHECK(balancer_pick(svc, NULL, 1, T0) == 2);
	}

	/* all marked down by the active checker (no cool-down): rotate */
	svc->balance = CFG_BAL_ROUND_ROBIN;
	int count[3] = {0};
	for (int i = 0; i < 3; i++) {
		set_down(svc, i, 0);
		atomic_store(&svc->state[i].check_down, true);
	}
	for (int i = 0; i < 30; i++) {
		int idx = balancer_pick(svc, NULL, -1, T0);
		if (idx >= 0 && idx < 3)
			count[idx]++;
	}
	CHECK(count[0] == 10 && count[1] == 10 && count[2] == 10);
	svc_free(svc);

	/* nothing to try at all: -1 (503) */
	struct cfg_service *one = svc_new(1, CFG_BAL_LEAST_CONN);
	CHECK(balancer_pick(one, NULL, 0, T0) == -1);
	CHECK(balancer_pick(one, NULL, -1, T0) == 0);
	set_down(one, 0, T0 + 1);
	CHECK(balancer_pick(one, NULL, -1, T0) == 0);
	svc_free(one);
	struct cfg_service *none = svc_new(0, CFG_BAL_ROUND_ROBIN);
	CHECK(balancer_pick(none, NULL, -1, T0) == -1);
	svc_free(none);
	CHECK(balancer_pick(NULL, NULL, -1, T0) == -1);
}

static void test_passive_health(void)
{
	struct cfg_service *svc = svc_new(2, CFG_BAL_ROUND_ROBIN);
	clock_override_mono(T0);

	/* defaults: 3 failures in a row, 10 s */
	CHECK(health_is_up(svc, 0, clock_mono_ms()));
	health_report_failure(svc, 0, clock_mono_ms());
	health_report_failure(svc, 0, clock_mono_ms());
	CHECK(health_is_up(svc, 0, clock_mono_ms()));
	health_report_failure(svc, 0, clock_mono_ms());
	CHECK(!health_is_up(svc, 0, clock_mono_ms()));
	CHECK(health_is_up(svc, 1, clock_mono_ms()));
	for (int i = 0; i < 10; i++)
		CHECK(balancer_pick(svc, NULL, -1, clock_mono_ms()) == 1);
	clock_override_mono(T0 + 9999);
	CHECK(!health_is_up(svc, 0, clock_mono_ms()));
	clock_override_mono(T0 + 10000);
	CHECK(health_is_up(svc, 0, clock_mono_ms()));

	/* still failing after the cool-down: straight back down */
	health_report_failure(svc, 0, clock_mono_ms());
	CHECK(!health_is_up(svc, 0, clock_mono_ms()));
	clock_override_mono(T0 + 20000);
	CHECK(health_is_up(svc, 0, clock_mono_ms()));

	/* a success resets the count and lifts a cool-down */
	health_report_success(svc, 0);
	CHECK(atomic_load(&svc->state[0].fails) == 0);
	CHECK(atomic_load(&svc->state[0].down_until_ms) == 0);
	health_report_failure(svc, 0, clock_mono_ms());
	health_report_failure(svc, 0, clock_mono_ms());
	health_report_success(svc, 0);
	health_report_failure(svc, 0, clock_mono_ms());
	health_report_failure(svc, 0, clock_mono_ms());
	CHECK(health_is_up(svc, 0, clock_mono_ms()));
	health_report_failure(svc, 0, clock_mono_ms());
	CHECK(!health_is_up(svc, 0, clock_mono_ms()));
	health_report_success(svc, 0);
	CHECK(health_is_up(svc, 0, clock_mono_ms()));

	/* configured: 1 failure, 500 ms */
	svc->health.max_fails = 1;
	svc->health.cooldown_ms = 500;
	int64_t now = clock_mono_ms();
	health_report_failure(svc, 1, now);
	CHECK(!health_is_up(svc, 1, now));
	CHECK(!health_is_up(svc, 1, now + 499));
	CHECK(health_is_up(svc, 1, now + 500));

	/* active verdict and bad indexes */
	atomic_store(&svc->state[0].check_down, true);
	CHECK(!health_is_up(svc, 0, now));
	CHECK(!health_is_up(svc, 2, now));
	CHECK(!health_is_up(svc, -1, now));
	CHECK(!health_is_up(NULL, 0, now));
	health_report_failure(svc, 5, now);
	health_report_success(svc, -1);
	health_report_failure(NULL, 0, now);

	clock_override_mono(-1);
	svc_free(svc);
}

#define RACE_THREADS 4
#define RACE_ITERS 100000

static void *race_worker(void *arg)
{
	struct cfg_service *svc = arg;
	for (int i = 0; i < RACE_ITERS; i++) {
		int idx = balancer_pick(svc, NULL, -1, T0);
		balancer_acquire(svc, idx);
		if (i % 1000 == 0)
			health_report_success(svc, idx);
		balancer_release(svc, idx);
	}
	return NULL;
}

static void test_concurrency(void)
{
	for (enum cfg_balance b = CFG_BAL_ROUND_ROBIN; b <= CFG_BAL_IP_HASH; b++) {
		struct cfg_service *svc = svc_new(3, b);
		pthread_t th[RACE_THREADS];
		int started = 0;
		for (int i = 0; i < RACE_THREADS; i++)
			started += pthread_create(&th[i], NULL, race_worker, svc) == 0;
		CHECK(started == RACE_THREADS);
		for (int i = 0; i < started; i++)
			pthread_join(th[i], NULL);
		for (int i = 0; i < 3; i++)
			CHECK(atomic_load(&svc->state[i].active) == 0);
		CHECK(atomic_load(&svc->rr_next) == (uint64_t)started * RACE_ITERS);
		svc_free(svc);
	}
}

int main(void)
{
	log_set_level(LOG_ERR); /* the mark-down warnings are expected here */
	test_round_robin();
	test_least_conn();
	test_ip_hash();
	test_all_down();
	test_passive_health();
	test_concurrency();
	return check_done();
}
