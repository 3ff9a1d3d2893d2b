/*
 * http.c - the ACME client's HTTPS client on libevent's evhttp.
 *
 * Each request gets its own evhttp_connection over its own bufferevent:
 * evhttp in libevent 2.1 cannot reconnect a used SSL bufferevent, and a CA
 * talks to us a few times a minute at most. A request goes
 *   lookup (evdns, skipped for IP literals) -> connect + TLS + exchange
 *   (evhttp) -> completion (our zero-timeout timer) -> user callback.
 * The user callback never runs inside evhttp: evhttp frees its request after
 * our callback and still touches the connection, so we copy the response
 * out, arm the timer, and tear the connection down from there. The same
 * timer first serves as the whole-request deadline.
 *
 * Host names are resolved here rather than by evhttp: the SSL bufferevent
 * cannot cancel a lookup it started, and without a dns base evhttp would
 * fall back to blocking getaddrinfo on the event loop.
 */
#include "acme/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct acme_http {
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *ctx;
	char *user_agent;
	int timeout_s;
	struct acme_http_req *reqs; /* in flight, doubly linked */
};

/* A lookup's link back to its request. evdns reports a cancelled lookup
 * later, so the link outlives a cancelled request and the callback frees it. */
struct acme_http_lookup {
	struct acme_http_req *r; /* NULL once nobody waits for the answer */
	struct evdns_getaddrinfo_request *q;
};

struct acme_http_req {
	struct acme_http *h;
	struct acme_http_req *prev, *next;
	acme_http_cb cb;
	void *arg;
	enum evhttp_cmd_type method;
	char *body_out;      /* POST body until the request is made */
	int tls, port, timeout_s;
	char *host;          /* as in the URL (IPv6 in brackets) */
	char *target;        /* path and query */
	struct event *timer; /* the deadline, then the zero-timeout completion */
	struct acme_http_lookup *lookup;
	struct evhttp_connection *evcon;
	/* The outcome, copied out of evhttp. */
	int done, got_headers, ev_error, sys_errno;
	int calling;         /* inside the user callback */
	int status;
	const char *error;
	char errtext[256];
	char *body;
	size_t body_len;
	char *nonce, *location, *content_type;
	long retry_after_s;
};

static const struct timeval http_now = {0, 0};

/* ---- request life ---- */

/* req_finish: the outcome is known; complete from the event loop. */
static void req_finish(struct acme_http_req *r)
{
	r->done = 1;
	evtimer_add(r->timer, &http_now);
}

/* req_fail: a transport failure, unless the outcome is already known. */
static void __attribute__((format(printf, 2, 3))) req_fail(struct acme_http_req *r,
							     const char *fmt, ...)
{
	if (r->done)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->errtext, sizeof r->errtext, fmt, ap);
	va_end(ap);
	r->error = r->errtext;
	r->status = 0;
	req_finish(r);
}

/* req_stop: end the lookup and the connection; nothing calls back after. */
static void req_stop(struct acme_http_req *r)
{
	struct acme_http_lookup *l = r->lookup;
	if (l) {
		r->lookup = NULL;
		l->r = NULL;
		evdns_getaddrinfo_cancel(l->q);
	}
	if (r->evcon) {
		evhttp_connection_free(r->evcon);
		r->evcon = NULL;
	}
}

/* req_unlink: take r out of its client's list (the callback may free it). */
static void req_unlink(struct acme_http_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else if (r->h)
		r->h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	r->h = NULL;
}

/* req_release: unlink r, stop it and free it. */
static void req_release(struct acme_http_req *r)
{
	req_unlink(r);
	req_stop(r);
	if (r->timer)
		event_free(r->timer);
	free(r->body_out);
	free(r->host);
	free(r->target);
	free(r->body);
	free(r->nonce);
	free(r->location);
	free(r->content_type);
	free(r);
}

/* req_timer_cb: the deadline passed, or the outcome is in: report it. The
 * connection goes first (never inside evhttp's own callback), then r leaves
 * the list, as the callback may free the client. */
static void req_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_http_req *r = arg;
	if (!r->done) {
		snprintf(r->errtext, sizeof r->errtext, "timeout after %d s", r->timeout_s);
		r->error = r->errtext;
	}
	int ok = !r->error;
	struct acme_http_resp resp = {
		.status = ok ? r->status : 0,
		.error = r->error,
		.body = ok && r->body ? r->body : "",
		.body_len = ok ? r->body_len : 0,
		.nonce = ok ? r->nonce : NULL,
		.location = ok ? r->location : NULL,
		.content_type = ok ? r->content_type : NULL,
		.retry_after_s = ok ? r->retry_after_s : -1,
	};
	req_stop(r);
	req_unlink(r);
	r->calling = 1;
	r->cb(&resp, r->arg);
	req_release(r);
}

/* ---- evhttp's callbacks ---- */

/* dup_header: a copy of header name, NULL when absent; *oom set on failure. */
static char *dup_header(struct evkeyvalq *hdrs, const char *name, int *oom)
{
	const char *v = evhttp_find_header(hdrs, name);
	char *s = v ? strdup(v) : NULL;
	if (v && !s)
		*oom = 1;
	return s;
}

/* req_take_response: copy what the caller sees out of er (evhttp frees it). */
static void req_take_response(struct acme_http_req *r, struct evhttp_request *er)
{
	struct evkeyvalq *hdrs = evhttp_request_get_input_headers(er);
	struct evbuffer *in = evhttp_request_get_input_buffer(er);
	size_t len = evbuffer_get_length(in);
	int oom = 0;
	r->body = malloc(len + 1);
	if (r->body) {
		evbuffer_copyout(in, r->body, len);
		r->body[len] = '\0';
		r->body_len = len;
	}
	r->nonce = dup_header(hdrs, "Replay-Nonce", &oom);
	r->location = dup_header(hdrs, "Location", &oom);
	r->content_type = dup_header(hdrs, "Content-Type", &oom);
	r->retry_after_s = acme_http_retry_after(evhttp_find_header(hdrs, "Retry-After"),
						 time(NULL));
	r->status = evhttp_request_get_response_code(er);
	if (!r->body || oom)
		req_fail(r, "out of memory reading the response");
}

/* req_ssl: the connection's TLS session, or NULL (http://). */
static SSL *req_ssl(const struct acme_http_req *r)
{
	struct bufferevent *bev = r->evcon ? evhttp_connection_get_bufferevent(r->evcon) : NULL;
	return bev && r->tls ? bufferevent_openssl_get_ssl(bev) : NULL;
}

/* req_tls_failure: describe a failed or broken TLS session; 0 if it was not
 * TLS that failed. The verify result names why the server was refused. */
static int req_tls_failure(struct acme_http_req *r)
{
	SSL *ssl = req_ssl(r);
	if (!ssl)
		return 0;
	struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
	long v = SSL_get_verify_result(ssl);
	unsigned long e, first = 0;
	/* libevent queues SSL_get_error() codes (library 0) among the real ones. */
	while ((e = bufferevent_get_openssl_error(bev)))
		if (!first && ERR_GET_LIB(e) != 0)
			first = e;
	if (v != X509_V_OK) {
		req_fail(r, "TLS: certificate verify failed: %s (server %s:%d)",
			 X509_verify_cert_error_string(v), r->host, r->port);
		return 1;
	}
	if (!first)
		return 0;
	char text[160];
	ERR_error_string_n(first, text, sizeof text);
	const char *reason = ERR_reason_error_string(first);
	req_fail(r, "TLS: %s (%s %s:%d)", reason ? reason : text,
		 SSL_is_init_finished(ssl) ? "connection to" : "handshake with", r->host, r->port);
	return 1;
}

/* req_describe_failure: the error text for a request evhttp gave up on.
 * refused: evhttp's connect cleanup path, which it takes for ECONNREFUSED
 * (and a connect timeout) without reporting an error or keeping errno. */
static void req_describe_failure(struct acme_http_req *r, int refused)
{
	if (req_tls_failure(r))
		return;
	SSL *ssl = req_ssl(r);
	int handshaken = ssl && SSL_is_init_finished(ssl);
	int err = r->ev_error - 1, sys = r->sys_errno;
	if (err == EVREQ_HTTP_TIMEOUT)
		req_fail(r, "timeout after %d s", r->timeout_s);
	else if (err == EVREQ_HTTP_DATA_TOO_LONG)
		req_fail(r, "response body over %d MiB", ACME_HTTP_BODY_MAX >> 20);
	else if (err == EVREQ_HTTP_INVALID_HEADER)
		req_fail(r, "malformed response head (or over %d KiB) from %s:%d",
			 ACME_HTTP_HEADERS_MAX >> 10, r->host, r->port);
	else if (r->got_headers)
		req_fail(r, "connection to %s:%d lost in the response body", r->host, r->port);
	else if (refused)
		req_fail(r, "connect to %s:%d: %s", r->host, r->port, strerror(ECONNREFUSED));
	else if (handshaken || !r->tls)
		req_fail(r, "connection to %s:%d closed without a response%s%s", r->host, r->port,
			 sys ? ": " : "", sys ? strerror(sys) : "");
	else
		req_fail(r, "connect to %s:%d: %s", r->host, r->port,
			 sys ? strerror(sys) : "closed during the TLS handshake");
}

/* req_header_cb: evhttp parsed the response head (a connection lost after
 * this was lost in the body). */
static int req_header_cb(struct evhttp_request *er, void *arg)
{
	struct acme_http_req *r = arg;
	r->got_headers = 1;
	return 0;
}

/* req_error_cb: evhttp's failure kind; it restores the socket errno of the
 * failure just before calling this. Called before req_done_cb. */
static void req_error_cb(enum evhttp_request_error err, void *arg)
{
	struct acme_http_req *r = arg;
	if (r->ev_error)
		return;
	r->ev_error = (int)err + 1;
	r->sys_errno = errno == EAGAIN || errno == EINPROGRESS ? 0 : errno;
}

/* req_done_cb: the exchange ended. er is NULL when evhttp failed the
 * connection, or has response code 0 when connecting failed; evhttp frees
 * er after this returns. */
static void req_done_cb(struct evhttp_request *er, void *arg)
{
	struct acme_http_req *r = arg;
	int code = er ? evhttp_request_get_response_code(er) : 0;
	if (r->done)
		return;
	if (code > 0 && !r->ev_error)
		req_take_response(r, er);
	else
		req_describe_failure(r, er && !r->ev_error);
	req_finish(r);
}

/* ---- connecting ---- */

/* req_tls_bev: an SSL bufferevent that verifies the server as addressed. */
static struct bufferevent *req_tls_bev(struct acme_http_req *r, int literal, const char *addr)
{
	SSL *ssl = SSL_new(r->h->ctx);
	if (!ssl)
		return NULL;
	int ok;
	if (literal) {
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), addr);
	} else {
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = SSL_set_tlsext_host_name(ssl, r->host) && SSL_set1_host(ssl, r->host);
	}
	if (!ok) {
		SSL_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	/* On failure libevent may or may not have freed ssl: leak, never
	 * double free (out of memory only). */
	return bufferevent_openssl_socket_new(r->h->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
					      BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
}

/* req_add_headers: the request head and body. */
static int req_add_headers(struct acme_http_req *r, struct evhttp_request *er)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(er);
	char host[300];
	int def = r->port == (r->tls ? 443 : 80);
	snprintf(host, sizeof host, def ? "%s" : "%s:%d", r->host, r->port);
	if (evhttp_add_header(out, "Host", host) ||
	    evhttp_add_header(out, "User-Agent", r->h->user_agent) ||
	    evhttp_add_header(out, "Accept", "application/json") ||
	    evhttp_add_header(out, "Connection", "close"))
		return -1;
	if (r->method != EVHTTP_REQ_POST)
		return 0;
	/* evhttp adds Content-Length for POST. */
	if (evhttp_add_header(out, "Content-Type", "application/jose+json") ||
	    evbuffer_add(evhttp_request_get_output_buffer(er), r->body_out, strlen(r->body_out)))
		return -1;
	free(r->body_out);
	r->body_out = NULL;
	return 0;
}

/* req_connect: start the exchange with the server at addr (numeric). */
static void req_connect(struct acme_http_req *r, int literal, const char *addr)
{
	struct acme_http *h = r->h;
	struct bufferevent *bev = NULL;
	if (r->tls && !(bev = req_tls_bev(r, literal, addr))) {
		req_fail(r, "connect to %s:%d: cannot set up TLS", r->host, r->port);
		return;
	}
	r->evcon = evhttp_connection_base_bufferevent_new(h->base, NULL, bev, addr,
							  (ev_uint16_t)r->port);
	if (!r->evcon) {
		if (bev)
			bufferevent_free(bev);
		req_fail(r, "connect to %s:%d: out of memory", r->host, r->port);
		return;
	}
	/* evhttp's timeout is per read or write, not per request: only a
	 * backstop behind our deadline, which must fire first to be reported. */
	evhttp_connection_set_timeout(r->evcon, r->timeout_s + 1);
	evhttp_connection_set_retries(r->evcon, 0);
	evhttp_connection_set_max_body_size(r->evcon, ACME_HTTP_BODY_MAX);
	evhttp_connection_set_max_headers_size(r->evcon, ACME_HTTP_HEADERS_MAX);
	struct evhttp_request *er = evhttp_request_new(req_done_cb, r);
	if (!er || req_add_headers(r, er)) {
		if (er)
			evhttp_request_free(er);
		req_fail(r, "connect to %s:%d: out of memory", r->host, r->port);
		return;
	}
	evhttp_request_set_error_cb(er, req_error_cb);
	evhttp_request_set_header_cb(er, req_header_cb);
	/* May call req_done_cb before returning (a connect that failed at
	 * once); on -1 evhttp may or may not have freed er: leave it. */
	if (evhttp_make_request(r->evcon, er, r->method, r->target)) {
		req_fail(r, "connect to %s:%d: cannot start the request", r->host, r->port);
		return;
	}
	/* The socket exists now (connecting). Small JOSE requests wait ~40 ms for
	 * a delayed ACK under Nagle: measured 45 ms per CA request, 7 a order. */
	int one = 1;
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(r->evcon));
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* lookup_cb: evdns answered (at once or later, or cancelled). */
static void lookup_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct acme_http_lookup *l = arg;
	struct acme_http_req *r = l->r;
	char addr[NI_MAXHOST] = "";
	if (r) {
		r->lookup = NULL;
		/* The first address only, as evhttp itself would. */
		if (result == 0 && res &&
		    getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof addr, NULL, 0,
				NI_NUMERICHOST) != 0)
			addr[0] = '\0';
		if (addr[0])
			req_connect(r, 0, addr);
		else
			req_fail(r, "connect to %s:%d: cannot resolve: %s", r->host, r->port,
				 result ? evutil_gai_strerror(result) : "no address");
	}
	if (res)
		evutil_freeaddrinfo(res);
	free(l);
}

/* req_resolve: look host up, or connect at once to an IP literal. */
static void req_resolve(struct acme_http_req *r)
{
	char lit[INET6_ADDRSTRLEN];
	unsigned char bin[16];
	size_t n = strlen(r->host);
	if (r->host[0] == '[' && n - 2 < sizeof lit && r->host[n - 1] == ']') {
		memcpy(lit, r->host + 1, n - 2);
		lit[n - 2] = '\0';
		if (inet_pton(AF_INET6, lit, bin) == 1)
			req_connect(r, 1, lit);
		else
			req_fail(r, "bad URL host %s", r->host);
		return;
	}
	if (inet_pton(AF_INET, r->host, bin) == 1) {
		req_connect(r, 1, r->host);
		return;
	}
	if (!r->h->dns) {
		req_fail(r, "connect to %s:%d: no DNS resolver for host names", r->host, r->port);
		return;
	}
	struct acme_http_lookup *l = calloc(1, sizeof *l);
	if (!l) {
		req_fail(r, "connect to %s:%d: out of memory", r->host, r->port);
		return;
	}
	struct evutil_addrinfo hints = {
		.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP,
	};
	l->r = r;
	r->lookup = l;
	/* Non-NULL only while pending; an answer at once has freed l. */
	struct evdns_getaddrinfo_request *q =
		evdns_getaddrinfo(r->h->dns, r->host, NULL, &hints, lookup_cb, l);
	if (q)
		l->q = q;
}

/* ---- starting ---- */

/* url_text: url for an error message: at most cap - 1 bytes, control
 * characters shown as '?' (the text ends up in logs). */
static const char *url_text(const char *url, char *out, size_t cap)
{
	size_t n = 0;
	for (; url && url[n] && n + 1 < cap; n++)
		out[n] = (unsigned char)url[n] < 0x20 || url[n] == 0x7f ? '?' : url[n];
	out[n] = '\0';
	return out;
}

/* req_parse_url: scheme, host, port and target of url into r. */
static int req_parse_url(struct acme_http_req *r, const char *url)
{
	char shown[101];
	struct evhttp_uri *u = url ? evhttp_uri_parse(url) : NULL;
	const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
	const char *host = u ? evhttp_uri_get_host(u) : NULL;
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	const char *query = u ? evhttp_uri_get_query(u) : NULL;
	int port = u ? evhttp_uri_get_port(u) : -1;
	int rc = -1;
	url_text(url, shown, sizeof shown);
	if (!u || !scheme)
		req_fail(r, "bad URL \"%s\"", shown);
	else if (evutil_ascii_strcasecmp(scheme, "https") &&
		 evutil_ascii_strcasecmp(scheme, "http"))
		req_fail(r, "bad URL \"%s\": not http or https", shown);
	else if (!host || !host[0] || evhttp_uri_get_userinfo(u) || port == 0 || port > 65535)
		req_fail(r, "bad URL \"%s\": no host, or a bad port or user", shown);
	else
		rc = 0;
	if (rc == 0) {
		r->tls = !evutil_ascii_strcasecmp(scheme, "https");
		r->port = port > 0 ? port : r->tls ? 443 : 80;
		r->host = strdup(host);
		size_t tlen = strlen(path ? path : "") + (query ? strlen(query) + 1 : 0) + 2;
		r->target = malloc(tlen);
		if (r->target)
			snprintf(r->target, tlen, "%s%s%s", path && path[0] ? path : "/",
				 query ? "?" : "", query ? query : "");
		if (!r->host || !r->target)
			rc = -2;
	}
	if (u)
		evhttp_uri_free(u);
	return rc;
}

/* req_start: a request in flight, or NULL out of memory. */
static struct acme_http_req *req_start(struct acme_http *h, enum evhttp_cmd_type method,
				       const char *url, const char *body, acme_http_cb cb,
				       void *arg)
{
	struct acme_http_req *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->h = h;
	r->cb = cb;
	r->arg = arg;
	r->method = method;
	r->timeout_s = h->timeout_s;
	r->retry_after_s = -1;
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	struct timeval deadline = {r->timeout_s, 0};
	r->timer = evtimer_new(h->base, req_timer_cb, r);
	if (body && !(r->body_out = strdup(body)))
		goto oom;
	if (!r->timer || evtimer_add(r->timer, &deadline))
		goto oom;
	int rc = req_parse_url(r, url);
	if (rc == -2)
		goto oom;
	if (rc == 0)
		req_resolve(r);
	return r;
oom:
	req_release(r);
	return NULL;
}

/* ---- public ---- */

/* http_tls_ctx: the client TLS policy: TLS 1.2+, the server verified. */
static SSL_CTX *http_tls_ctx(const char *ca_bundle, char *errbuf, size_t errlen)
{
	/* OpenSSL says only "system lib" for a missing file. */
	FILE *f = ca_bundle ? fopen(ca_bundle, "r") : NULL;
	if (ca_bundle && !f) {
		snprintf(errbuf, errlen, "acme http: cannot read the CA bundle %s: %s", ca_bundle,
			 strerror(errno));
		return NULL;
	}
	if (f)
		fclose(f);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	const char *what = "cannot create the TLS context";
	if (ctx && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (ca_bundle ? SSL_CTX_load_verify_file(ctx, ca_bundle)
			      : SSL_CTX_set_default_verify_paths(ctx))
			return ctx;
		what = ca_bundle ? "cannot load the CA bundle"
				 : "cannot load the system trust store";
	}
	unsigned long e = ERR_peek_last_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;
	snprintf(errbuf, errlen, "acme http: %s%s%s: %s", what, ca_bundle ? " " : "",
		 ca_bundle ? ca_bundle : "", reason ? reason : "unknown error");
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

struct acme_http *acme_http_new(struct event_base *base, struct evdns_base *dns,
				const char *ca_bundle, const char *user_agent, char *errbuf,
				size_t errlen)
{
	if (user_agent && user_agent[strcspn(user_agent, "\r\n")]) {
		snprintf(errbuf, errlen, "acme http: user agent has a line break");
		return NULL;
	}
	struct acme_http *h = calloc(1, sizeof *h);
	if (!h || !(h->user_agent = strdup(user_agent ? user_agent : "portier"))) {
		snprintf(errbuf, errlen, "acme http: out of memory");
		free(h);
		return NULL;
	}
	h->base = base;
	h->dns = dns;
	h->timeout_s = ACME_HTTP_TIMEOUT_S;
	h->ctx = http_tls_ctx(ca_bundle, errbuf, errlen);
	if (!h->ctx) {
		free(h->user_agent);
		free(h);
		return NULL;
	}
	return h;
}

void acme_http_free(struct acme_http *h)
{
	if (!h)
		return;
	while (h->reqs)
		req_release(h->reqs);
	SSL_CTX_free(h->ctx);
	free(h->user_agent);
	free(h);
}

void acme_http_set_timeout_s(struct acme_http *h, int secs)
{
	h->timeout_s = secs >= 1 ? secs : 1;
}

struct acme_http_req *acme_http_get(struct acme_http *h, const char *url, acme_http_cb cb,
				    void *arg)
{
	return req_start(h, EVHTTP_REQ_GET, url, NULL, cb, arg);
}

struct acme_http_req *acme_http_head(struct acme_http *h, const char *url, acme_http_cb cb,
				     void *arg)
{
	return req_start(h, EVHTTP_REQ_HEAD, url, NULL, cb, arg);
}

struct acme_http_req *acme_http_post_jose(struct acme_http *h, const char *url,
					  const char *body, acme_http_cb cb, void *arg)
{
	return req_start(h, EVHTTP_REQ_POST, url, body ? body : "", cb, arg);
}

void acme_http_cancel(struct acme_http_req *r)
{
	/* From r's own callback it would be a double free; r goes after it. */
	if (r && !r->calling)
		req_release(r);
}

/* ---- Retry-After ---- */

/* digits: the n-digit decimal at s, or -1. */
static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* name_index: the index of the 3-letter name at s in names, or -1. */
static int name_index(const char *s, const char *names)
{
	for (int i = 0; names[3 * i]; i++)
		if (memcmp(s, names + 3 * i, 3) == 0)
			return i;
	return -1;
}

/* imf_fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" as a time, or -1. */
static time_t imf_fixdate(const char *s)
{
	static const char layout[] = "www, dd mmm yyyy hh:mm:ss GMT";
	if (strlen(s) != sizeof layout - 1)
		return -1;
	for (size_t i = 0; layout[i]; i++)
		if (strchr(", :GMT", layout[i]) && s[i] != layout[i])
			return -1;
	int wday = name_index(s, "SunMonTueWedThuFriSat");
	struct tm tm = {
		.tm_mday = digits(s + 5, 2),
		.tm_mon = name_index(s + 8, "JanFebMarAprMayJunJulAugSepOctNovDec"),
		.tm_year = digits(s + 12, 4) - 1900,
		.tm_hour = digits(s + 17, 2),
		.tm_min = digits(s + 20, 2),
		.tm_sec = digits(s + 23, 2),
	};
	if (wday < 0 || tm.tm_mon < 0 || tm.tm_year < 0 || tm.tm_mday < 1 || tm.tm_hour < 0 ||
	    tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60)
		return -1;
	tm.tm_sec -= tm.tm_sec == 60; /* a leap second: a second early will do */
	struct tm want = tm, back;
	time_t t = timegm(&tm);
	/* timegm normalises 31 Feb into March: such a date does not exist. */
	if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_mday != want.tm_mday ||
	    back.tm_mon != want.tm_mon || back.tm_wday != wday)
		return -1;
	return t;
}

long acme_http_retry_after(const char *value, time_t now)
{
	if (!value || !value[0])
		return -1;
	if (value[0] >= '0' && value[0] <= '9') {
		long secs = 0;
		for (const char *p = value; *p; p++) {
			if (*p < '0' || *p > '9')
				return -1;
			if (secs < ACME_HTTP_RETRY_AFTER_MAX_S)
				secs = secs * 10 + (*p - '0');
		}
		return secs < ACME_HTTP_RETRY_AFTER_MAX_S ? secs : ACME_HTTP_RETRY_AFTER_MAX_S;
	}
	time_t t = imf_fixdate(value);
	if (t == (time_t)-1)
		return -1;
	if (t <= now)
		return 0;
	if (t - now > ACME_HTTP_RETRY_AFTER_MAX_S)
		return ACME_HTTP_RETRY_AFTER_MAX_S;
	return (long)(t - now);
}
