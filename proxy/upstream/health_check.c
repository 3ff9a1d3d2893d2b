/*
 * health_check.c - one round of active health checks over the backends of
 * a service, on the main thread's event loop: for each backend resolve the
 * name (evdns), connect, send "GET PATH", read the status line. 2xx/3xx
 * clears the backend's check_down, anything else (other status, refused,
 * timeout, unresolvable) sets it. Transitions are logged.
 *
 * Lifetime rules that keep callbacks from running after free:
 *   - the round starts from an event, never inside health_check_service_once,
 *     and reports `done` only from the loop, never while it is starting;
 *   - bufferevent_free drops the bufferevent's pending callbacks;
 *   - evdns always calls a getaddrinfo callback once, even after cancel, so
 *     its argument is a small ticket that outlives the probe: cancelling
 *     orphans the ticket and the callback frees it.
 */
#include "proxy/upstream/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/util.h>

#include "config/values.h"
#include "proxy/core/log.h"

#define HEALTH_CHECK_DEFAULT_TIMEOUT_MS 5000u
#define HEALTH_CHECK_MAX_LINE 1024u /* a status line longer than this is a failure */

struct health_probe;

/* health_dns_ticket: the argument of one evdns_getaddrinfo; probe is NULL
 * once the probe gave up on the answer. */
struct health_dns_ticket {
	struct health_probe *probe;
};

/* health_probe: one backend's check within a round. */
struct health_probe {
	struct health_check *chk;
	int idx;
	bool finished;
	struct health_dns_ticket *ticket;      /* while resolving */
	struct evdns_getaddrinfo_request *dns; /* while resolving, when asynchronous */
	struct bufferevent *bev;               /* while connecting and reading */
	struct event *timer;                   /* the probe's overall deadline */
};

struct health_check {
	struct event_base *base;
	struct evdns_base *dns;
	struct cfg_service *svc;
	health_check_done_cb done;
	void *arg;
	struct event *kick;   /* starts the round from the loop */
	bool starting;        /* probes are being started: hold completion */
	size_t pending;       /* probes not finished yet */
	struct health_probe *probes; /* svc->n_backends entries */
};

static void health_check_complete(struct health_check *chk);

/* health_probe_stop: release whatever the probe still holds; no callback
 * of it runs afterwards. */
static void health_probe_stop(struct health_probe *p)
{
	if (p->ticket) {
		/* Orphan the ticket first: the cancel may call back synchronously. */
		struct evdns_getaddrinfo_request *dns = p->dns;
		p->ticket->probe = NULL;
		p->ticket = NULL;
		p->dns = NULL;
		if (dns)
			evdns_getaddrinfo_cancel(dns);
	}
	if (p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
	if (p->timer) {
		event_free(p->timer);
		p->timer = NULL;
	}
}

/* health_probe_finish: record the verdict, log a transition, and complete
 * the round when this was the last probe. The probe (and possibly the
 * whole round) may be gone when this returns. */
static void health_probe_finish(struct health_probe *p, bool up, const char *why)
{
	if (p->finished)
		return;
	p->finished = true;
	health_probe_stop(p);

	struct health_check *chk = p->chk;
	struct cfg_service *svc = chk->svc;
	bool was_down = atomic_exchange_explicit(&svc->state[p->idx].check_down, !up,
						 memory_order_relaxed);
	if (was_down == up) {
		char buf[300];
		const char *name = cfg_addr_text(&svc->backends[p->idx], buf, sizeof buf);
		if (up)
			log_info("backend %s of service %s passes its health check again", name,
				 svc->name ? svc->name : "?");
		else
			log_warn("backend %s of service %s marked down by its health check: %s",
				 name, svc->name ? svc->name : "?", why);
	}

	chk->pending--;
	if (chk->pending == 0 && !chk->starting)
		health_check_complete(chk);
}

/* health_check_status: the verdict on a status line "HTTP/1.x NNN ...". */
static bool health_check_status(const char *line, char *why, size_t whylen)
{
	if (strncmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' || line[8] != ' ' ||
	    line[9] < '0' || line[9] > '9' || line[10] < '0' || line[10] > '9' ||
	    line[11] < '0' || line[11] > '9' || (line[12] != ' ' && line[12] != '\0')) {
		snprintf(why, whylen, "not an HTTP/1 response");
		return false;
	}
	int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	snprintf(why, whylen, "status %d", status);
	return status >= 200 && status < 400;
}

static void health_probe_read_cb(struct bufferevent *bev, void *arg)
{
	struct health_probe *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
	char why[64];

	if (!line) {
		if (evbuffer_get_length(in) > HEALTH_CHECK_MAX_LINE)
			health_probe_finish(p, false, "status line too long");
		return;
	}
	bool up = len <= HEALTH_CHECK_MAX_LINE && health_check_status(line, why, sizeof why);
	if (len > HEALTH_CHECK_MAX_LINE)
		snprintf(why, sizeof why, "status line too long");
	free(line);
	health_probe_finish(p, up, why);
}

static void health_probe_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct health_probe *p = arg;
	char why[160];

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_EOF) {
		health_probe_finish(p, false, "connection closed before a status line");
		return;
	}
	int err = EVUTIL_SOCKET_ERROR();
	snprintf(why, sizeof why, "connection failed: %s",
		 err ? evutil_socket_error_to_string(err) : "error");
	health_probe_finish(p, false, why);
}

static void health_probe_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	health_probe_finish(arg, false, "timed out");
}

/* health_probe_request: queue the GET; the Host is the backend's name. */
static int health_probe_request(struct health_probe *p)
{
	const struct cfg_service *svc = p->chk->svc;
	const struct cfg_addr *a = &svc->backends[p->idx];
	const char *path = svc->health.path && svc->health.path[0] ? svc->health.path : "/";
	bool v6 = strchr(a->host, ':') != NULL;
	int n = evbuffer_add_printf(bufferevent_get_output(p->bev),
				    "GET %s HTTP/1.1\r\nHost: %s%s%s\r\nConnection: close\r\n"
				    "User-Agent: portier-health\r\n\r\n",
				    path, v6 ? "[" : "", a->host, v6 ? "]" : "");
	return n < 0 ? -1 : 0;
}

/* health_probe_connect: connect to the resolved address and send the GET. */
static void health_probe_connect(struct health_probe *p, const struct sockaddr *sa,
				 socklen_t salen)
{
	struct sockaddr_storage ss;
	const struct cfg_addr *a = &p->chk->svc->backends[p->idx];

	if (salen > sizeof ss) {
		health_probe_finish(p, false, "address too long");
		return;
	}
	memcpy(&ss, sa, salen);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)(void *)&ss)->sin_port = htons(a->port);
	else if (ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)&ss)->sin6_port = htons(a->port);

	p->bev = bufferevent_socket_new(p->chk->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!p->bev) {
		health_probe_finish(p, false, "out of memory");
		return;
	}
	bufferevent_setcb(p->bev, health_probe_read_cb, NULL, health_probe_event_cb, p);
	if (health_probe_request(p) < 0 || bufferevent_enable(p->bev, EV_READ) < 0) {
		health_probe_finish(p, false, "out of memory");
		return;
	}
	if (bufferevent_socket_connect(p->bev, (struct sockaddr *)&ss, (int)salen) < 0) {
		char why[160];
		snprintf(why, sizeof why, "connect failed: %s", strerror(errno));
		health_probe_finish(p, false, why);
	}
}

static void health_probe_dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct health_dns_ticket *ticket = arg;
	struct health_probe *p = ticket->probe;

	free(ticket);
	if (!p) {
		/* the probe gave up on this answer (cancelled or timed out) */
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	p->ticket = NULL;
	p->dns = NULL;
	if (result != 0 || !res) {
		char why[160];
		snprintf(why, sizeof why, "cannot resolve %s: %s",
			 p->chk->svc->backends[p->idx].host,
			 result == EVUTIL_EAI_NONAME ? "name not found"
						     : evutil_gai_strerror(result));
		if (res)
			evutil_freeaddrinfo(res);
		health_probe_finish(p, false, why);
		return;
	}
	/* IPv4 first, as the workers' resolver does: the check must probe the
	 * address that traffic goes to. */
	const struct evutil_addrinfo *ai = res;
	for (const struct evutil_addrinfo *it = res; it; it = it->ai_next) {
		if (it->ai_family == AF_INET) {
			ai = it;
			break;
		}
	}
	health_probe_connect(p, ai->ai_addr, (socklen_t)ai->ai_addrlen);
	evutil_freeaddrinfo(res);
}

/* health_probe_start: arm the deadline and resolve the backend's name (a
 * literal answers at once, through the same callback). */
static void health_probe_start(struct health_probe *p, uint64_t timeout_ms)
{
	const struct cfg_addr *a = &p->chk->svc->backends[p->idx];
	struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
			     .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};

	p->timer = evtimer_new(p->chk->base, health_probe_timeout_cb, p);
	if (!p->timer || evtimer_add(p->timer, &tv) < 0 || !a->host) {
		health_probe_finish(p, false, p->timer ? "no backend host" : "out of memory");
		return;
	}
	p->ticket = calloc(1, sizeof *p->ticket);
	if (!p->ticket) {
		health_probe_finish(p, false, "out of memory");
		return;
	}
	p->ticket->probe = p;

	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					.ai_protocol = IPPROTO_TCP};
	struct evdns_getaddrinfo_request *req =
		evdns_getaddrinfo(p->chk->dns, a->host, NULL, &hints, health_probe_dns_cb,
				  p->ticket);
	/* The callback may already have run (literal, /etc/hosts): it cleared
	 * p->ticket, and the request handle is then not ours to keep. */
	if (p->ticket)
		p->dns = req;
}

static void health_check_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct health_check *chk = arg;
	uint64_t timeout = chk->svc->health.timeout_ms ? chk->svc->health.timeout_ms
						       : HEALTH_CHECK_DEFAULT_TIMEOUT_MS;

	/* Probes that fail at once must not complete (and free) the round
	 * while this loop still walks it. */
	chk->starting = true;
	for (size_t i = 0; i < chk->svc->n_backends; i++)
		health_probe_start(&chk->probes[i], timeout);
	chk->starting = false;
	if (chk->pending == 0)
		health_check_complete(chk);
}

/* health_check_free: stop every probe without reporting anything. */
static void health_check_free(struct health_check *chk)
{
	if (!chk)
		return;
	for (size_t i = 0; chk->probes && i < chk->svc->n_backends; i++)
		health_probe_stop(&chk->probes[i]);
	if (chk->kick)
		event_free(chk->kick);
	free(chk->probes);
	free(chk);
}

static void health_check_complete(struct health_check *chk)
{
	if (chk->done)
		chk->done(chk->arg);
	health_check_free(chk);
}

struct health_check *health_check_service_once(struct event_base *base, struct evdns_base *dns,
					       struct cfg_service *svc,
					       health_check_done_cb done, void *arg)
{
	if (!base || !dns || !svc || !svc->state)
		return NULL;

	struct health_check *chk = calloc(1, sizeof *chk);
	if (!chk)
		return NULL;
	chk->base = base;
	chk->dns = dns;
	chk->svc = svc;
	chk->done = done;
	chk->arg = arg;
	chk->pending = svc->n_backends;
	chk->probes = calloc(svc->n_backends ? svc->n_backends : 1, sizeof *chk->probes);
	chk->kick = event_new(base, -1, 0, health_check_kick_cb, chk);
	if (!chk->probes || !chk->kick)
		goto fail;
	for (size_t i = 0; i < svc->n_backends; i++) {
		chk->probes[i].chk = chk;
		chk->probes[i].idx = (int)i;
	}
	event_active(chk->kick, EV_TIMEOUT, 1);
	return chk;

fail:
	health_check_free(chk);
	return NULL;
}

void health_check_cancel(struct health_check *chk)
{
	health_check_free(chk);
}
