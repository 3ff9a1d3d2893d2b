#include "proxy/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/listener.h>

#include "proxy/core/clock.h"
#include "proxy/core/log.h"
#include "proxy/core/loop_timeout.h"
#include "proxy/edge.h"
#include "proxy/http/h1_front.h"
#include "proxy/http/h2_front.h"
#include "proxy/log/access_log.h"
#include "proxy/net/listener.h"
#include "proxy/net/proxy_accept.h"
#include "proxy/tls/tls_conn.h"
#include "proxy/upstream/pool.h"
#include "proxy/upstream/resolver.h"

#define WORKER_DNS_TTL_MS 30000
#define WORKER_DNS_ENTRIES 4096
/* Idle backend connections kept: enough for the streams one worker has in
 * flight to a backend (HTTP/2 multiplies them: 50 clients x 10 streams),
 * else each burst closes and reconnects hundreds. backend_idle trims them. */
#define WORKER_POOL_PER_BACKEND 1024
#define WORKER_POOL_TOTAL 8192

/* After a failed accept (out of descriptors or memory) the listener rests
 * this long; its warning is logged at most once per WORKER_ACCEPT_WARN_MS. */
#define WORKER_ACCEPT_PAUSE_MS 100
#define WORKER_ACCEPT_WARN_MS 1000

struct worker_listener {
	struct worker *w;
	enum listener_kind kind;
	uint16_t port;       /* the one every socket accepted here has */
	bool proxy_protocol; /* a PROXY header comes first (proxy_accept.h) */
	struct evconnlistener *l;
	struct event *resume;  /* ends a pause after a failed accept */
	int64_t warned_ms;     /* the last accept warning */
	unsigned long failures; /* accepts failed since that warning */
};

static void worker_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			  int len, void *arg)
{
	struct worker_listener *wl = arg;
	(void)l;
	struct conn_origin o;
	conn_origin_set(&o, sa, (socklen_t)len, wl->port);
	if (wl->proxy_protocol)
		proxy_accept_start(wl->w, fd, &o, wl->kind);
	else if (wl->kind == LISTENER_HTTPS)
		tls_conn_accept(wl->w, fd, &o);
	else
		h1_conn_new(wl->w, fd, NULL, NULL, &o, LISTENER_HTTP);
}

static void worker_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct worker_listener *wl = arg;
	(void)fd;
	(void)what;
	if (wl->l)
		evconnlistener_enable(wl->l);
}

/* worker_accept_error: an accept libevent does not retry itself. Out of
 * descriptors or memory, the connection stays queued and the listener
 * readable, so accepting again at once would spin the loop and flood the
 * log; the listener rests instead, as in nginx and HAProxy, and the
 * connections already open are served meanwhile. Other errors concern one
 * connection (a firewall's EPERM): the next accept goes on. */
static void worker_accept_error(struct evconnlistener *l, void *arg)
{
	struct worker_listener *wl = arg;
	int err = EVUTIL_SOCKET_ERROR();
	bool exhausted = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
	wl->failures++;
	int64_t now = clock_mono_ms();
	if (!wl->warned_ms || now - wl->warned_ms >= WORKER_ACCEPT_WARN_MS) {
		log_warn("accept on port %u failed %lu time(s): %s%s", wl->port, wl->failures,
			 evutil_socket_error_to_string(err),
			 exhausted ? "; resting the listener between tries" : "");
		wl->warned_ms = now;
		wl->failures = 0;
	}
	struct timeval tv = {0, WORKER_ACCEPT_PAUSE_MS * 1000};
	if (exhausted && wl->resume && evconnlistener_disable(l) == 0)
		evtimer_add(wl->resume, &tv);
}

/* worker_listener_close: the listener and its pause timer. */
static void worker_listener_close(struct worker_listener *wl)
{
	if (wl->l)
		evconnlistener_free(wl->l);
	wl->l = NULL;
	if (wl->resume)
		event_free(wl->resume);
	wl->resume = NULL;
}

/* worker_listener_proxy: the proxy_protocol of listener i, which is listen.http's
 * address i or listen.https's address i - listen_http.n (worker_start). */
static int worker_listener_proxy(const struct cfg_static *cfg, size_t i, enum listener_kind kind,
				 bool *on)
{
	bool http = i < cfg->listen_http.n;
	const struct cfg_addr_list *l = http ? &cfg->listen_http : &cfg->listen_https;
	size_t k = http ? i : i - cfg->listen_http.n;
	if (k >= l->n || kind != (http ? LISTENER_HTTP : LISTENER_HTTPS))
		return -1;
	*on = l->v[k].proxy_protocol;
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	event_base_dispatch(w->base);
	edge_worker_exited(w->edge, w);
	return NULL;
}

int worker_start(struct worker *w, const int *fds, const enum listener_kind *kinds, size_t n)
{
	/* The changelist folds the enable/disable pairs of one loop turn into
	 * one epoll_ctl (or none): a request toggles interest several times. */
	struct event_config *ec = event_config_new();
	if (!ec)
		return -1;
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	/* Only this thread touches the base (others post to the mailbox), so
	 * libevent's base lock, taken on every event operation, is not needed. */
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (!w->base)
		return -1;
	w->mailbox = mailbox_new(w->base);
	w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						  EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (w->dns)
		evdns_base_load_hosts(w->dns, NULL);
	w->resolver = resolver_new(w->base, w->dns, WORKER_DNS_TTL_MS, WORKER_DNS_ENTRIES);
	w->pool = pool_new(w->base, w->cfg->timeouts_ms.backend_idle, WORKER_POOL_PER_BACKEND,
			   WORKER_POOL_TOTAL);
	w->scratch = evbuffer_new();
	w->tv.client_header = loop_timeout(w->base, w->cfg->timeouts_ms.client_header);
	w->tv.client_idle = loop_timeout(w->base, w->cfg->timeouts_ms.client_idle);
	w->tv.backend_response = loop_timeout(w->base, w->cfg->timeouts_ms.backend_response);
	w->listeners = calloc(n ? n : 1, sizeof *w->listeners);
	w->alog = access_log_buf_new(w->alog_sink, w->base);
	if (!w->alog || !w->mailbox || !w->dns || !w->resolver || !w->pool || !w->scratch ||
	    !w->listeners)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct worker_listener *wl = &w->listeners[i];
		wl->w = w;
		wl->kind = kinds[i];
		wl->port = listener_port(fds[i]);
		if (worker_listener_proxy(w->cfg, i, kinds[i], &wl->proxy_protocol) < 0) {
			log_err("worker %u: listener %zu does not match the config", w->id, i);
			return -1;
		}
		wl->l = evconnlistener_new(w->base, worker_accept, wl, LEV_OPT_CLOSE_ON_FREE, 0,
					   fds[i]);
		wl->resume = evtimer_new(w->base, worker_accept_resume, wl);
		w->n_listeners++; /* closed with the worker, whole or not */
		if (!wl->l || !wl->resume)
			return -1;
		evconnlistener_set_error_cb(wl->l, worker_accept_error);
	}
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return -1;
	return 0;
}

/* Messages from the main thread. */

struct worker_msg {
	struct worker *w;
	struct route_snapshot *routes;
	struct cert_index *certs;
	bool ok;
	char host[256];
};

static void worker_on_routes(void *arg)
{
	struct worker_msg *m = arg;
	struct worker *w = m->w;
	snapshot_release(w->routes);
	w->routes = m->routes;
	free(m);
	struct h1_conn *c = w->conns;
	while (c) {
		struct h1_conn *next = h1_conn_next(c);
		h1_conn_routes_changed(c);
		c = next;
	}
	struct h2_conn *h = w->h2_conns;
	while (h) {
		struct h2_conn *next = h2_conn_next(h);
		h2_conn_routes_changed(h);
		h = next;
	}
}

void worker_post_routes(struct worker *w, struct route_snapshot *snap)
{
	struct worker_msg *m = calloc(1, sizeof *m);
	if (!m)
		return;
	m->w = w;
	m->routes = snapshot_retain(snap);
	if (mailbox_post(w->mailbox, worker_on_routes, m) < 0) {
		snapshot_release(m->routes);
		free(m);
	}
}

static void worker_on_certs(void *arg)
{
	struct worker_msg *m = arg;
	cert_index_release(m->w->certs);
	m->w->certs = m->certs;
	free(m);
}

void worker_post_certs(struct worker *w, struct cert_index *ix)
{
	struct worker_msg *m = calloc(1, sizeof *m);
	if (!m)
		return;
	m->w = w;
	m->certs = cert_index_retain(ix);
	if (mailbox_post(w->mailbox, worker_on_certs, m) < 0) {
		cert_index_release(m->certs);
		free(m);
	}
}

static void worker_on_cert_result(void *arg)
{
	struct worker_msg *m = arg;
	tls_conn_cert_result(m->w, m->host, m->ok);
	free(m);
}

void worker_post_cert_result(struct worker *w, const char *host, bool ok, const char *err)
{
	struct worker_msg *m = calloc(1, sizeof *m);
	if (!m)
		return;
	(void)err;
	m->w = w;
	m->ok = ok;
	snprintf(m->host, sizeof m->host, "%s", host);
	if (mailbox_post(w->mailbox, worker_on_cert_result, m) < 0)
		free(m);
}

/* worker_on_drain: stop accepting (closing the sockets makes the kernel
 * refuse new connections), let in-flight requests finish. */
static void worker_on_drain(void *arg)
{
	struct worker *w = arg;
	w->draining = true;
	for (size_t i = 0; i < w->n_listeners; i++)
		worker_listener_close(&w->listeners[i]);
	proxy_accept_drain(w);
	tls_conn_drain(w);
	struct h1_conn *c = w->conns;
	while (c) {
		struct h1_conn *next = h1_conn_next(c);
		h1_conn_drain(c);
		c = next;
	}
	struct h2_conn *h = w->h2_conns;
	while (h) {
		struct h2_conn *next = h2_conn_next(h);
		h2_conn_drain(h);
		h = next;
	}
	worker_maybe_finish(w);
}

void worker_post_drain(struct worker *w)
{
	mailbox_post(w->mailbox, worker_on_drain, w);
}

static void worker_on_stop(void *arg)
{
	struct worker *w = arg;
	event_base_loopbreak(w->base);
}

void worker_post_stop(struct worker *w)
{
	mailbox_post(w->mailbox, worker_on_stop, w);
}

void worker_request_cert(struct worker *w, const char *host, enum cfg_tls_mode mode)
{
	edge_request_cert(w->edge, w, host, mode);
}

struct evbuffer *worker_buf_take(struct worker *w)
{
	return w->n_spare_bufs ? w->spare_bufs[--w->n_spare_bufs] : evbuffer_new();
}

void worker_buf_give(struct worker *w, struct evbuffer *b)
{
	if (w->n_spare_bufs < WORKER_SPARE_BUFS && evbuffer_drain(b, evbuffer_get_length(b)) == 0)
		w->spare_bufs[w->n_spare_bufs++] = b;
	else
		evbuffer_free(b);
}

void worker_conn_added(struct worker *w)
{
	atomic_fetch_add_explicit(&w->n_conns, 1, memory_order_relaxed);
}

void worker_conn_removed(struct worker *w)
{
	atomic_fetch_sub_explicit(&w->n_conns, 1, memory_order_relaxed);
}

void worker_maybe_finish(struct worker *w)
{
	if (w->draining && atomic_load(&w->n_conns) == 0)
		event_base_loopexit(w->base, NULL);
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
	/* Anything still open after a forced stop is freed here. */
	proxy_accept_drain(w);
	while (w->handshakes)
		tls_conn_drain(w);
	while (w->conns)
		h1_conn_close_now(w->conns);
	h1_spares_free(w);
	while (w->h2_conns)
		h2_conn_close_now(w->h2_conns);
	h2_spares_free(w);
	while (w->n_spare_bufs)
		evbuffer_free(w->spare_bufs[--w->n_spare_bufs]);
	for (size_t i = 0; i < w->n_listeners; i++)
		worker_listener_close(&w->listeners[i]);
	free(w->listeners);
	pool_free(w->pool);
	if (w->scratch)
		evbuffer_free(w->scratch);
	resolver_free(w->resolver);
	/* Cancelled lookups call back from the loop; let them before freeing evdns. */
	event_base_loop(w->base, EVLOOP_NONBLOCK);
	if (w->dns)
		evdns_base_free(w->dns, 0);
	access_log_buf_free(w->alog);
	snapshot_release(w->routes);
	cert_index_release(w->certs);
	mailbox_free(w->mailbox);
	event_base_free(w->base);
}
