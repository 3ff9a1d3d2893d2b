/*
 * test_resolver.c - the worker's resolver against a DNS server of our own
 * (libevent's evdns server on a loopback UDP port) and a private hosts file:
 * literals, hosts names, cache hits, negative caching, coalescing, cancel,
 * reentrant callbacks, TTL (driven clock), LRU eviction, stale-on-error,
 * and freeing with lookups pending. No network beyond loopback.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>
#include <event2/util.h>

#include "proxy/core/clock.h"
#include "proxy/upstream/resolver.h"
#include "tests/unit/check.h"

#define T0 5000000

/* --- a DNS server answering from a table --- */

enum fake_mode { FAKE_ANSWER, FAKE_HOLD, FAKE_DROP };

struct fake_name {
	const char *name;
	const char *v4; /* NULL: no A record */
	const char *v6; /* NULL: no AAAA record */
};

static struct fake_name fake_names[] = {
	{"demo-api", "10.0.0.1", NULL},
	{"slow-api", "10.0.0.3", NULL},
	{"ttl-api", "10.0.0.1", NULL},
	{"flaky", "10.0.0.9", NULL},
	{"dual", "10.0.0.4", "2001:db8::4"},
	{"v6-api", NULL, "2001:db8::6"},
	{"e1", "10.0.1.1", NULL},
	{"e2", "10.0.1.2", NULL},
	{"e3", "10.0.1.3", NULL},
};

struct fake_dns {
	struct evdns_server_port *port;
	uint16_t udp_port;
	enum fake_mode mode;
	int n_a, n_aaaa;
	struct evdns_server_request *held[64];
	int n_held;
};

static struct fake_dns fake;

static struct fake_name *fake_find(const char *name)
{
	for (size_t i = 0; i < sizeof fake_names / sizeof fake_names[0]; i++)
		if (strcasecmp(fake_names[i].name, name) == 0)
			return &fake_names[i];
	return NULL;
}

static void fake_answer(struct evdns_server_request *req)
{
	int err = DNS_ERR_NONE;
	for (int i = 0; i < req->nquestions; i++) {
		struct evdns_server_question *q = req->questions[i];
		struct fake_name *n = fake_find(q->name);
		if (!n) {
			err = DNS_ERR_NOTEXIST;
			continue;
		}
		if (q->type == EVDNS_TYPE_A && n->v4) {
			struct in_addr a;
			inet_pton(AF_INET, n->v4, &a);
			evdns_server_request_add_a_reply(req, q->name, 1, &a, 60);
		} else if (q->type == EVDNS_TYPE_AAAA && n->v6) {
			struct in6_addr a;
			inet_pton(AF_INET6, n->v6, &a);
			evdns_server_request_add_aaaa_reply(req, q->name, 1, &a, 60);
		}
	}
	evdns_server_request_respond(req, err);
}

static void fake_request_cb(struct evdns_server_request *req, void *arg)
{
	for (int i = 0; i < req->nquestions; i++) {
		fake.n_a += req->questions[i]->type == EVDNS_TYPE_A;
		fake.n_aaaa += req->questions[i]->type == EVDNS_TYPE_AAAA;
	}
	if (fake.mode == FAKE_DROP) {
		evdns_server_request_drop(req);
	} else if (fake.mode == FAKE_HOLD && fake.n_held < 64) {
		fake.held[fake.n_held++] = req;
	} else {
		fake_answer(req);
	}
}

static void fake_release(void)
{
	for (int i = 0; i < fake.n_held; i++)
		fake_answer(fake.held[i]);
	fake.n_held = 0;
	fake.mode = FAKE_ANSWER;
}

static int fake_start(struct event_base *base)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sin;
	evutil_socket_t fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0 ||
	    evutil_make_socket_nonblocking(fd) < 0) {
		close(fd);
		return -1;
	}
	fake.udp_port = ntohs(sin.sin_port);
	fake.port = evdns_add_server_port_with_base(base, fd, 0, fake_request_cb, NULL);
	return fake.port ? 0 : -1;
}

/* --- loop and results --- */

static int64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* run: turn the loop until *count reaches want or max_ms pass. */
static void run(struct event_base *base, const int *count, int want, int max_ms)
{
	int64_t end = real_ms() + max_ms;
	while ((!count || *count < want) && real_ms() < end) {
		struct timeval tv = {0, 10000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

struct result {
	int calls;
	int err;
	char msg[400];
	int family;
	char addr[64];
	uint16_t port;
};

static void on_result(int err, const char *errmsg, const struct sockaddr *sa, socklen_t salen,
		      void *arg)
{
	struct result *res = arg;
	res->calls++;
	res->err = err;
	snprintf(res->msg, sizeof res->msg, "%s", errmsg ? errmsg : "");
	res->family = sa ? sa->sa_family : 0;
	res->addr[0] = '\0';
	if (sa && sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, res->addr, sizeof res->addr);
		res->port = ntohs(sin->sin_port);
	} else if (sa && sa->sa_family == AF_INET6 && salen >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, res->addr, sizeof res->addr);
		res->port = ntohs(sin6->sin6_port);
	}
}

static struct event_base *base;
static struct evdns_base *dns;

/* --- tests --- */

static void test_literals(struct resolver *r)
{
	struct result a = {0}, b = {0};
	int queries = fake.n_a;
	CHECK(resolver_lookup(r, "10.1.2.3", 8080, on_result, &a) == NULL);
	CHECK(a.calls == 1 && a.err == 0 && a.family == AF_INET);
	CHECK_STR(a.addr, "10.1.2.3");
	CHECK(a.port == 8080);
	CHECK(resolver_lookup(r, "::1", 443, on_result, &b) == NULL);
	CHECK(b.calls == 1 && b.err == 0 && b.family == AF_INET6);
	CHECK_STR(b.addr, "::1");
	CHECK(b.port == 443);
	CHECK(fake.n_a == queries);
}

static void test_hosts_file(struct resolver *r)
{
	struct result a = {0};
	int queries = fake.n_a;
	struct resolver_req *req = resolver_lookup(r, "hosts-name", 81, on_result, &a);
	run(base, &a.calls, 1, 2000);
	CHECK(a.calls == 1 && a.err == 0);
	CHECK_STR(a.addr, "127.0.0.5");
	CHECK(a.port == 81);
	CHECK(fake.n_a == queries);
	/* evdns answers hosts names before returning: no handle then */
	CHECK(req == NULL);
}

static void test_dns_and_cache(struct resolver *r)
{
	struct result a = {0}, b = {0}, c = {0};
	int queries = fake.n_a;
	CHECK(resolver_lookup(r, "demo-api", 4000, on_result, &a) != NULL);
	CHECK(a.calls == 0);
	run(base, &a.calls, 1, 3000);
	CHECK(a.calls == 1 && a.err == 0);
	CHECK_STR(a.addr, "10.0.0.1");
	CHECK(a.port == 4000);
	CHECK(fake.n_a == queries + 1);

	/* cached: answered before lookup returns, with this caller's port */
	CHECK(resolver_lookup(r, "demo-api", 5000, on_result, &b) == NULL);
	CHECK(b.calls == 1 && b.err == 0 && b.port == 5000);
	CHECK_STR(b.addr, "10.0.0.1");
	CHECK(resolver_lookup(r, "DEMO-API", 1, on_result, &c) == NULL);
	CHECK(c.calls == 1 && c.err == 0);
	CHECK(fake.n_a == queries + 1);
}

static void test_negative(struct resolver *r)
{
	struct result a = {0}, b = {0}, c = {0};
	int queries = fake.n_a;
	CHECK(resolver_lookup(r, "nope", 80, on_result, &a) != NULL);
	run(base, &a.calls, 1, 3000);
	CHECK(a.calls == 1 && a.err != 0);
	CHECK_STR(a.msg, "cannot resolve nope: name not found");
	CHECK(a.family == 0);

	/* cached briefly: no DNS flood for a dead name */
	CHECK(resolver_lookup(r, "nope", 80, on_result, &b) == NULL);
	CHECK(b.calls == 1 && b.err != 0);
	CHECK_STR(b.msg, "cannot resolve nope: name not found");
	CHECK(fake.n_a == queries + 1);

	/* ... and asked again after a second */
	clock_override_mono(T0 + 1001);
	CHECK(resolver_lookup(r, "nope", 80, on_result, &c) != NULL);
	run(base, &c.calls, 1, 3000);
	CHECK(c.calls == 1 && c.err != 0);
	CHECK(fake.n_a == queries + 2);
	clock_override_mono(T0);
}

static void test_coalesce(struct resolver *r)
{
	struct result res[3] = {{0}};
	int queries = fake.n_a;
	fake.mode = FAKE_HOLD;
	for (int i = 0; i < 3; i++)
		CHECK(resolver_lookup(r, "slow-api", (uint16_t)(7000 + i), on_result, &res[i]) != NULL);
	run(base, &fake.n_a, queries + 1, 2000);
	run(base, NULL, 0, 50); /* room for any extra query to show up */
	CHECK(fake.n_a == queries + 1);
	CHECK(res[0].calls + res[1].calls + res[2].calls == 0);
	fake_release();
	run(base, &res[2].calls, 1, 3000);
	run(base, &res[1].calls, 1, 100);
	for (int i = 0; i < 3; i++) {
		CHECK(res[i].calls == 1 && res[i].err == 0);
		CHECK_STR(res[i].addr, "10.0.0.3");
		CHECK(res[i].port == 7000 + i);
	}
}

/* reentrancy helpers: a callback that cancels another waiter, and one
 * that looks up again from inside its callback */
struct canceller {
	struct result res;
	struct resolver_req *victim;
};

static void on_result_cancel(int err, const char *errmsg, const struct sockaddr *sa,
			     socklen_t salen, void *arg)
{
	struct canceller *c = arg;
	on_result(err, errmsg, sa, salen, &c->res);
	resolver_cancel(c->victim);
	c->victim = NULL;
}

struct relooker {
	struct resolver *r;
	struct result res, inner;
	struct resolver_req *inner_req;
};

static void on_result_relookup(int err, const char *errmsg, const struct sockaddr *sa,
			       socklen_t salen, void *arg)
{
	struct relooker *l = arg;
	on_result(err, errmsg, sa, salen, &l->res);
	l->inner_req = resolver_lookup(l->r, "slow-api", 9, on_result, &l->inner);
}

static void test_cancel(struct resolver *r)
{
	/* drop one of two waiters: only the other is called */
	clock_override_mono(T0 + 100000); /* everything cached so far is stale */
	struct result a = {0}, b = {0};
	fake.mode = FAKE_HOLD;
	struct resolver_req *ra = resolver_lookup(r, "slow-api", 1, on_result, &a);
	struct resolver_req *rb = resolver_lookup(r, "slow-api", 2, on_result, &b);
	CHECK(ra && rb);
	resolver_cancel(ra);
	resolver_cancel(NULL);
	run(base, &fake.n_held, 2, 2000);
	fake_release();
	run(base, &b.calls, 1, 3000);
	run(base, NULL, 0, 30);
	CHECK(a.calls == 0 && b.calls == 1 && b.err == 0);

	/* cancel every waiter: the query still completes and fills the cache */
	clock_override_mono(T0 + 200000);
	struct result c = {0}, d = {0};
	int queries = fake.n_a;
	fake.mode = FAKE_HOLD;
	struct resolver_req *rc = resolver_lookup(r, "slow-api", 3, on_result, &c);
	CHECK(rc != NULL);
	resolver_cancel(rc);
	run(base, &fake.n_held, 2, 2000);
	fake_release();
	run(base, NULL, 0, 100);
	CHECK(c.calls == 0);
	CHECK(resolver_lookup(r, "slow-api", 4, on_result, &d) == NULL);
	CHECK(d.calls == 1 && d.err == 0);
	CHECK(fake.n_a == queries + 1);

	/* a callback cancels a later waiter of the same answer */
	clock_override_mono(T0 + 300000);
	struct canceller x = {{0}, NULL};
	struct result y = {0};
	fake.mode = FAKE_HOLD;
	CHECK(resolver_lookup(r, "slow-api", 5, on_result_cancel, &x) != NULL);
	x.victim = resolver_lookup(r, "slow-api", 6, on_result, &y);
	CHECK(x.victim != NULL);
	run(base, &fake.n_held, 2, 2000);
	fake_release();
	run(base, &x.res.calls, 1, 3000);
	run(base, NULL, 0, 30);
	CHECK(x.res.calls == 1 && y.calls == 0);

	/* a callback looks the same name up again: a cache hit inside */
	clock_override_mono(T0 + 400000);
	struct relooker l = {.r = r};
	fake.mode = FAKE_HOLD;
	CHECK(resolver_lookup(r, "slow-api", 7, on_result_relookup, &l) != NULL);
	run(base, &fake.n_held, 2, 2000);
	fake_release();
	run(base, &l.res.calls, 1, 3000);
	CHECK(l.res.calls == 1 && l.inner.calls == 1 && l.inner_req == NULL);
	CHECK(l.inner.port == 9);
	clock_override_mono(T0);
}

static void test_ttl(void)
{
	struct resolver *r = resolver_new(base, dns, 5000, 16);
	struct result a = {0}, b = {0}, c = {0};
	CHECK(resolver_lookup(r, "ttl-api", 80, on_result, &a) != NULL);
	run(base, &a.calls, 1, 3000);
	CHECK_STR(a.addr, "10.0.0.1");

	fake_find("ttl-api")->v4 = "10.0.0.2"; /* the container moved */
	clock_override_mono(T0 + 4999);
	CHECK(resolver_lookup(r, "ttl-api", 80, on_result, &b) == NULL);
	CHECK_STR(b.addr, "10.0.0.1");
	clock_override_mono(T0 + 5000);
	CHECK(resolver_lookup(r, "ttl-api", 80, on_result, &c) != NULL);
	run(base, &c.calls, 1, 3000);
	CHECK(c.calls == 1 && c.err == 0);
	CHECK_STR(c.addr, "10.0.0.2");
	clock_override_mono(T0);
	resolver_free(r);
}

static void resolve_now(struct resolver *r, const char *host, struct result *res)
{
	memset(res, 0, sizeof *res);
	resolver_lookup(r, host, 80, on_result, res);
	run(base, &res->calls, 1, 3000);
}

static void test_eviction(void)
{
	struct resolver *r = resolver_new(base, dns, 60000, 2);
	struct result res;
	int queries = fake.n_a;
	resolve_now(r, "e1", &res);
	resolve_now(r, "e2", &res);
	resolve_now(r, "e1", &res); /* cache hit: e1 is now the most recent */
	CHECK(fake.n_a == queries + 2);
	resolve_now(r, "e3", &res); /* evicts e2, the least recently used */
	CHECK(fake.n_a == queries + 3);
	resolve_now(r, "e1", &res);
	CHECK(fake.n_a == queries + 3);
	CHECK_STR(res.addr, "10.0.1.1");
	resolve_now(r, "e2", &res);
	CHECK(fake.n_a == queries + 4);
	CHECK_STR(res.addr, "10.0.1.2");

	/* both entries waited on: a third name fails instead of growing */
	struct result p = {0}, q = {0}, s = {0};
	clock_override_mono(T0 + 100000);
	fake.mode = FAKE_HOLD;
	CHECK(resolver_lookup(r, "e1", 80, on_result, &p) != NULL);
	CHECK(resolver_lookup(r, "e2", 80, on_result, &q) != NULL);
	CHECK(resolver_lookup(r, "e3", 80, on_result, &s) == NULL);
	CHECK(s.calls == 1 && s.err != 0);
	CHECK_STR(s.msg, "cannot resolve e3: too many names being resolved");
	run(base, &fake.n_held, 4, 2000);
	fake_release();
	run(base, &q.calls, 1, 3000);
	run(base, &p.calls, 1, 100);
	CHECK(p.calls == 1 && q.calls == 1);
	clock_override_mono(T0);
	resolver_free(r);
}

static void test_families(struct resolver *r)
{
	struct result a = {0}, b = {0};
	resolve_now(r, "dual", &a);
	CHECK(a.calls == 1 && a.family == AF_INET);
	CHECK_STR(a.addr, "10.0.0.4");
	resolve_now(r, "v6-api", &b);
	CHECK(b.calls == 1 && b.family == AF_INET6 && b.port == 80);
	CHECK_STR(b.addr, "2001:db8::6");
}

static void test_stale_on_error(void)
{
	struct resolver *r = resolver_new(base, dns, 5000, 16);
	struct result a = {0}, b = {0}, c = {0}, d = {0};
	resolve_now(r, "flaky", &a);
	CHECK_STR(a.addr, "10.0.0.9");

	/* the DNS server stops answering: the last address is kept */
	clock_override_mono(T0 + 6000);
	fake.mode = FAKE_DROP;
	CHECK(resolver_lookup(r, "flaky", 80, on_result, &b) != NULL);
	run(base, &b.calls, 1, 5000);
	CHECK(b.calls == 1 && b.err == 0);
	CHECK_STR(b.addr, "10.0.0.9");
	fake.mode = FAKE_ANSWER;

	/* the name is gone for good: now it fails */
	fake_find("flaky")->name = "flaky-gone";
	clock_override_mono(T0 + 7001);
	resolve_now(r, "flaky", &c);
	CHECK(c.calls == 1 && c.err != 0);
	CHECK_STR(c.msg, "cannot resolve flaky: name not found");
	CHECK(resolver_lookup(r, "flaky", 80, on_result, &d) == NULL);
	CHECK(d.calls == 1 && d.err != 0);
	clock_override_mono(T0);
	resolver_free(r);
}

static void test_free_pending(void)
{
	struct resolver *r = resolver_new(base, dns, 5000, 16);
	struct result a = {0}, b = {0};
	fake.mode = FAKE_HOLD;
	CHECK(resolver_lookup(r, "slow-api", 80, on_result, &a) != NULL);
	CHECK(resolver_lookup(r, "demo-api", 80, on_result, &b) != NULL);
	run(base, &fake.n_held, 4, 2000);
	resolver_free(r);
	resolver_free(NULL);
	fake_release();
	run(base, NULL, 0, 100);
	CHECK(a.calls == 0 && b.calls == 0);
}

static void test_no_nameserver(void)
{
	/* evdns without a nameserver never answers: our deadline does */
	struct evdns_base *empty = evdns_base_new(base, 0);
	struct resolver *r = resolver_new(base, empty, 5000, 16);
	struct result a = {0}, b = {0};
	resolver_set_query_timeout(r, 200);
	int64_t start = real_ms();
	CHECK(resolver_lookup(r, "nowhere", 80, on_result, &a) != NULL);
	run(base, &a.calls, 1, 3000);
	CHECK(a.calls == 1 && a.err != 0);
	CHECK_STR(a.msg, "cannot resolve nowhere: timed out");
	CHECK(real_ms() - start < 2000);
	/* a lookup still pending when the resolver goes */
	CHECK(resolver_lookup(r, "elsewhere", 80, on_result, &b) != NULL);
	resolver_free(r);
	run(base, NULL, 0, 50);
	CHECK(b.calls == 0);
	evdns_base_free(empty, 0);
}

static void quiet_log(int severity, const char *msg)
{
}

static int write_hosts(char *path, size_t len)
{
	snprintf(path, len, "/tmp/portier-test-hosts-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	const char text[] = "127.0.0.5 hosts-name\n";
	ssize_t n = write(fd, text, sizeof text - 1);
	close(fd);
	return n == (ssize_t)(sizeof text - 1) ? 0 : -1;
}

int main(void)
{
	char hosts[64], ns[64];

	event_set_log_callback(quiet_log); /* evdns reports the dropped queries */

	base = event_base_new();
	dns = base ? evdns_base_new(base, 0) : NULL;
	CHECK(dns != NULL);
	if (!dns)
		return check_done();
	CHECK(write_hosts(hosts, sizeof hosts) == 0);
	CHECK(evdns_base_load_hosts(dns, hosts) == 0);
	unlink(hosts);
	CHECK(fake_start(base) == 0);
	snprintf(ns, sizeof ns, "127.0.0.1:%u", (unsigned)fake.udp_port);
	CHECK(evdns_base_nameserver_ip_add(dns, ns) == 0);
	evdns_base_set_option(dns, "timeout:", "0.5");
	evdns_base_set_option(dns, "attempts:", "1");
	clock_override_mono(T0);

	struct resolver *r = resolver_new(base, dns, 30000, 64);
	CHECK(r != NULL);
	test_literals(r);
	test_hosts_file(r);
	test_dns_and_cache(r);
	test_negative(r);
	test_coalesce(r);
	test_cancel(r);
	test_families(r);
	resolver_free(r);
	test_ttl();
	test_eviction();
	test_stale_on_error();
	test_free_pending();
	test_no_nameserver();

	/* let cancelled queries call back (and be freed) before teardown */
	run(base, NULL, 0, 50);
	evdns_close_server_port(fake.port);
	evdns_base_free(dns, 0);
	event_base_free(base);
	clock_override_mono(-1);
	return check_done();
}
