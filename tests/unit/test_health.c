/*
 * test_health.c - active health checks against a loopback HTTP server of
 * our own: one round (up, down on 500, timeout, refused, garbage,
 * unresolvable), cancelling a round, and the checker's schedule across
 * snapshot updates. The snapshot functions the checker uses are stood in
 * for here (the link takes these, not config/snapshot.c), so this test
 * does not depend on the snapshot compiler.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config/snapshot.h"
#include "proxy/core/log.h"
#include "proxy/upstream/health.h"
#include "tests/unit/check.h"

static struct event_base *base;
static struct evdns_base *dns;

/* --- a stand-in for the routing snapshot --- */

struct route_snapshot {
	int refs;
	struct cfg_tenants tenants;
};

struct route_snapshot *snapshot_retain(struct route_snapshot *s)
{
	if (s)
		s->refs++;
	return s;
}

void snapshot_release(struct route_snapshot *s)
{
	if (s)
		s->refs--; /* the test owns the memory and checks the count */
}

const struct cfg_tenants *snapshot_tenants(const struct route_snapshot *s)
{
	return &s->tenants;
}

/* --- a loopback HTTP server --- */

#define SERVER_MAX_CONNS 64

enum server_mode { SERVE_STATUS, SERVE_SILENT, SERVE_GARBAGE };

struct server {
	struct evconnlistener *lis;
	uint16_t port;
	enum server_mode mode;
	int status;
	int accepted, requests;
	char last_req[512];
	struct bufferevent *conns[SERVER_MAX_CONNS];
};

static void server_close(struct server *srv, struct bufferevent *bev)
{
	for (int i = 0; i < SERVER_MAX_CONNS; i++)
		if (srv->conns[i] == bev)
			srv->conns[i] = NULL;
	bufferevent_free(bev);
}

static void server_drained_cb(struct bufferevent *bev, void *arg)
{
	server_close(arg, bev);
}

static void server_event_cb(struct bufferevent *bev, short what, void *arg)
{
	server_close(arg, bev);
}

static void server_read_cb(struct bufferevent *bev, void *arg)
{
	struct server *srv = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0)
		return;
	size_t n = (size_t)end.pos + 4;
	if (n >= sizeof srv->last_req)
		n = sizeof srv->last_req - 1;
	evbuffer_remove(in, srv->last_req, n);
	srv->last_req[n] = '\0';
	srv->requests++;

	struct evbuffer *out = bufferevent_get_output(bev);
	if (srv->mode == SERVE_SILENT)
		return;
	if (srv->mode == SERVE_GARBAGE)
		evbuffer_add_printf(out, "SSH-2.0-nope\r\n");
	else
		evbuffer_add_printf(out, "HTTP/1.1 %d X\r\nContent-Length: 0\r\n"
					 "Connection: close\r\n\r\n", srv->status);
	bufferevent_setcb(bev, NULL, server_drained_cb, server_event_cb, srv);
}

static void server_accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
			     struct sockaddr *sa, int salen, void *arg)
{
	struct server *srv = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	srv->accepted++;
	for (int i = 0; bev && i < SERVER_MAX_CONNS; i++) {
		if (!srv->conns[i]) {
			srv->conns[i] = bev;
			bufferevent_setcb(bev, server_read_cb, NULL, server_event_cb, srv);
			bufferevent_enable(bev, EV_READ);
			return;
		}
	}
	if (bev)
		bufferevent_free(bev);
}

static int server_start(struct server *srv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sin;
	srv->status = 200;
	srv->lis = evconnlistener_new_bind(base, server_accept_cb, srv,
					   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
					   (struct sockaddr *)&sin, sizeof sin);
	if (!srv->lis ||
	    getsockname(evconnlistener_get_fd(srv->lis), (struct sockaddr *)&sin, &len) < 0)
		return -1;
	srv->port = ntohs(sin.sin_port);
	return 0;
}

static void server_stop(struct server *srv)
{
	for (int i = 0; i < SERVER_MAX_CONNS; i++)
		if (srv->conns[i])
			server_close(srv, srv->conns[i]);
	if (srv->lis)
		evconnlistener_free(srv->lis);
	srv->lis = NULL;
}

/* closed_port: a loopback port nobody listens on (bound, then released). */
static uint16_t closed_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port = 1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* --- loop helpers --- */

static int64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run(const int *count, int want, int max_ms)
{
	int64_t end = real_ms() + max_ms;
	while ((!count || *count < want) && real_ms() < end) {
		struct timeval tv = {0, 10000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static void on_done(void *arg)
{
	(*(int *)arg)++;
}

/* --- services --- */

static void svc_init(struct cfg_service *svc, const char *name, size_t n)
{
	memset(svc, 0, sizeof *svc);
	svc->name = strdup(name);
	svc->n_backends = n;
	svc->backends = calloc(n ? n : 1, sizeof *svc->backends);
	svc->state = calloc(n ? n : 1, sizeof *svc->state);
	svc->health.enabled = true;
	svc->health.path = strdup("/health");
	svc->health.timeout_ms = 1000;
}

static void svc_backend(struct cfg_service *svc, size_t i, const char *host, uint16_t port)
{
	svc->backends[i].host = strdup(host);
	svc->backends[i].port = port;
}

static void svc_fini(struct cfg_service *svc)
{
	for (size_t i = 0; i < svc->n_backends; i++)
		free(svc->backends[i].host);
	free(svc->backends);
	free(svc->state);
	free(svc->name);
	free(svc->health.path);
}

static bool is_down(struct cfg_service *svc, int i)
{
	return atomic_load(&svc->state[i].check_down);
}

/* wait_state: turn the loop until backend 0's verdict is `down`. */
static bool wait_state(struct cfg_service *svc, bool down, int max_ms)
{
	int64_t end = real_ms() + max_ms;
	while (is_down(svc, 0) != down && real_ms() < end)
		run(NULL, 0, 10);
	return is_down(svc, 0) == down;
}

/* --- tests --- */

static void test_round(struct server *srv)
{
	struct cfg_service svc;
	int done = 0;
	svc_init(&svc, "web", 2);
	svc_backend(&svc, 0, "hc-backend", srv->port); /* from the hosts file */
	svc_backend(&svc, 1, "127.0.0.1", closed_port());

	struct health_check *chk = health_check_service_once(base, dns, &svc, on_done, &done);
	CHECK(chk != NULL);
	CHECK(done == 0); /* nothing before the loop runs */
	run(&done, 1, 5000);
	CHECK(done == 1);
	CHECK(!is_down(&svc, 0));
	CHECK(is_down(&svc, 1)); /* refused */
	CHECK(strncmp(srv->last_req, "GET /health HTTP/1.1\r\n", 22) == 0);
	CHECK(strstr(srv->last_req, "\r\nHost: hc-backend\r\n") != NULL);
	CHECK(strstr(srv->last_req, "\r\nConnection: close\r\n") != NULL);
	CHECK(strstr(srv->last_req, "\r\nUser-Agent: portier-health\r\n") != NULL);

	/* 500: down; 200 again: up; 3xx counts as up */
	srv->status = 500;
	health_check_service_once(base, dns, &svc, on_done, &done);
	run(&done, 2, 5000);
	CHECK(done == 2 && is_down(&svc, 0));
	srv->status = 200;
	health_check_service_once(base, dns, &svc, on_done, &done);
	run(&done, 3, 5000);
	CHECK(done == 3 && !is_down(&svc, 0));
	srv->status = 302;
	health_check_service_once(base, dns, &svc, on_done, &done);
	run(&done, 4, 5000);
	CHECK(done == 4 && !is_down(&svc, 0));

	/* not HTTP: down */
	srv->mode = SERVE_GARBAGE;
	health_check_service_once(base, dns, &svc, on_done, &done);
	run(&done, 5, 5000);
	CHECK(done == 5 && is_down(&svc, 0));

	/* no answer: down after the timeout */
	srv->mode = SERVE_SILENT;
	svc.health.timeout_ms = 200;
	int64_t start = real_ms();
	int accepted = srv->accepted;
	atomic_store(&svc.state[0].check_down, false);
	health_check_service_once(base, dns, &svc, on_done, &done);
	run(&done, 6, 5000);
	CHECK(done == 6 && is_down(&svc, 0));
	CHECK(srv->accepted == accepted + 1);
	CHECK(real_ms() - start < 2000);
	srv->mode = SERVE_STATUS;

	/* default path */
	free(svc.health.path);
	svc.health.path = NULL;
	health_check_service_once(base, dns, &svc, on_done, &done);
	run(&done, 7, 5000);
	CHECK(done == 7 && !is_down(&svc, 0));
	CHECK(strncmp(srv->last_req, "GET / HTTP/1.1\r\n", 16) == 0);
	svc_fini(&svc);
}

static void test_cancel(struct server *srv)
{
	struct cfg_service svc;
	int done = 0;
	svc_init(&svc, "web", 1);
	svc_backend(&svc, 0, "127.0.0.1", srv->port);
	atomic_store(&svc.state[0].check_down, true);

	/* before it started */
	struct health_check *chk = health_check_service_once(base, dns, &svc, on_done, &done);
	health_check_cancel(chk);
	health_check_cancel(NULL);
	run(NULL, 0, 100);
	CHECK(done == 0 && is_down(&svc, 0));

	/* connected, waiting for the answer */
	srv->mode = SERVE_SILENT;
	int requests = srv->requests;
	chk = health_check_service_once(base, dns, &svc, on_done, &done);
	run(&srv->requests, requests + 1, 3000);
	CHECK(srv->requests == requests + 1);
	health_check_cancel(chk);
	run(NULL, 0, 100);
	CHECK(done == 0 && is_down(&svc, 0));
	srv->mode = SERVE_STATUS;

	/* no backends: done from the loop all the same */
	struct cfg_service none;
	svc_init(&none, "none", 0);
	CHECK(health_check_service_once(base, dns, &none, on_done, &done) != NULL);
	CHECK(done == 0);
	run(&done, 1, 1000);
	CHECK(done == 1);
	svc_fini(&none);
	svc_fini(&svc);
}

static void test_unresolvable(void)
{
	/* no nameserver: evdns never answers, the probe's timeout does */
	struct evdns_base *empty = evdns_base_new(base, 0);
	struct cfg_service svc;
	int done = 0;
	svc_init(&svc, "ghost", 1);
	svc_backend(&svc, 0, "nowhere", 80);
	svc.health.timeout_ms = 200;
	health_check_service_once(base, empty, &svc, on_done, &done);
	run(&done, 1, 3000);
	CHECK(done == 1 && is_down(&svc, 0));
	run(NULL, 0, 50); /* the cancelled lookup calls back and is freed */
	evdns_base_free(empty, 0);
	svc_fini(&svc);
}

static void test_checker(struct server *srv)
{
	struct cfg_tenant tenant = {0};
	struct cfg_service svcs[2];
	struct route_snapshot snap1 = {0}, snap2 = {0};

	svc_init(&svcs[0], "checked", 1);
	svc_backend(&svcs[0], 0, "127.0.0.1", srv->port);
	svcs[0].health.interval_ms = 100;
	svc_init(&svcs[1], "unchecked", 1);
	svc_backend(&svcs[1], 0, "127.0.0.1", closed_port());
	svcs[1].health.enabled = false;
	atomic_store(&svcs[1].state[0].check_down, true); /* a stale verdict */
	tenant.name = "t";
	tenant.services = svcs;
	tenant.n_services = 2;
	snap1.tenants.v = &tenant;
	snap1.tenants.n = 1;

	struct health_checker *hc = health_checker_new(base, dns);
	CHECK(hc != NULL);
	health_checker_update(hc, &snap1);
	CHECK(snap1.refs == 1);
	CHECK(!is_down(&svcs[1], 0)); /* no check any more: not held down */

	/* rounds every interval */
	int requests = srv->requests;
	run(&srv->requests, requests + 3, 3000);
	CHECK(srv->requests >= requests + 3);

	/* the backend starts failing: marked down by the next round */
	srv->status = 503;
	CHECK(wait_state(&svcs[0], true, 3000));
	srv->status = 200;
	CHECK(wait_state(&svcs[0], false, 3000));

	/* same snapshot again, then a snapshot without checks: the old
	 * reference is dropped and no request follows */
	health_checker_update(hc, &snap1);
	CHECK(snap1.refs == 1);
	snap2.tenants.n = 0;
	health_checker_update(hc, &snap2);
	CHECK(snap1.refs == 0 && snap2.refs == 1);
	run(NULL, 0, 50);
	requests = srv->requests;
	run(NULL, 0, 300);
	CHECK(srv->requests == requests);

	/* back to checks, with a round in flight when the checker goes */
	srv->mode = SERVE_SILENT;
	svcs[0].health.timeout_ms = 5000;
	health_checker_update(hc, &snap1);
	requests = srv->requests;
	run(&srv->requests, requests + 1, 3000);
	CHECK(srv->requests == requests + 1);
	health_checker_free(hc);
	health_checker_free(NULL);
	CHECK(snap1.refs == 0 && snap2.refs == 0);
	run(NULL, 0, 100);
	srv->mode = SERVE_STATUS;

	/* update(NULL) stops everything too */
	hc = health_checker_new(base, dns);
	health_checker_update(hc, &snap1);
	health_checker_update(hc, NULL);
	CHECK(snap1.refs == 0);
	health_checker_free(hc);
	svc_fini(&svcs[0]);
	svc_fini(&svcs[1]);
}

static void quiet_log(int severity, const char *msg)
{
}

int main(void)
{
	char hosts[64];
	struct server srv = {0};

	log_set_level(LOG_ERR); /* transitions are logged; expected here */
	event_set_log_callback(quiet_log);
	base = event_base_new();
	dns = base ? evdns_base_new(base, 0) : NULL;
	CHECK(dns != NULL);
	if (!dns)
		return check_done();

	snprintf(hosts, sizeof hosts, "/tmp/portier-test-hosts-XXXXXX");
	int fd = mkstemp(hosts);
	CHECK(fd >= 0);
	if (fd >= 0) {
		const char text[] = "127.0.0.1 hc-backend\n";
		CHECK(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
		close(fd);
		CHECK(evdns_base_load_hosts(dns, hosts) == 0);
		unlink(hosts);
	}
	CHECK(server_start(&srv) == 0);

	test_round(&srv);
	test_cancel(&srv);
	test_unresolvable();
	test_checker(&srv);

	server_stop(&srv);
	run(NULL, 0, 20);
	evdns_base_free(dns, 0);
	event_base_free(base);
	return check_done();
}
