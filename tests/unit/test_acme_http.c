/*
 * test_acme_http.c - the ACME HTTPS client against loopback servers on the
 * same event_base: a TLS server with a certificate from a fresh internal CA
 * answering canned responses by path (and recording what it received), one
 * whose certificate names a host (reached through an evdns hosts file), one
 * on ::1, one that drops connections at accept, a port nobody listens on and
 * a name server that never answers. Every wait is bounded by a timer.
 * TEST_VERBOSE=1 prints the error texts the client produced.
 */
#include "tests/unit/check.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "acme/cert.h"
#include "acme/http.h"
#include "acme/internal_ca.h"

#define MIB (1024 * 1024)

static struct event_base *base;
static struct event *guard;
static int guard_fired;
static char tmpdir[64];
static char errbuf[512];

/* ---- bounded waiting ---- */

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	guard_fired = 1;
}

/* run_until: run the loop until *v >= want or ms pass; whether reached. */
static int run_until(const int *v, int want, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	guard_fired = 0;
	evtimer_add(guard, &tv);
	while (*v < want && !guard_fired)
		event_base_loop(base, EVLOOP_ONCE);
	evtimer_del(guard);
	return *v >= want;
}

/* run_for: run the loop for ms, whatever happens. */
static void run_for(int ms)
{
	static const int never = 0;
	run_until(&never, 1, ms);
}

/* ---- the server ---- */

enum srv_mode { SRV_TLS, SRV_DROP };

struct srv {
	enum srv_mode mode;
	SSL_CTX *ctx;
	struct evconnlistener *lis;
	int port;
	int accepted, closed, requests;
	struct sconn *conns;
	/* The last complete request. */
	char method[16], target[256], sni[64], head[8192];
	char *body;
	size_t body_len;
};

struct sconn {
	struct srv *s;
	struct bufferevent *bev;
	struct sconn *prev, *next;
};

static void sconn_free(struct sconn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->s->closed++;
	bufferevent_free(c->bev);
	free(c);
}

/* header_value: the value of name in head (case-insensitive), or "". */
static void header_value(const char *head, const char *name, char *out, size_t cap)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\r\n%s:", name);
	const char *p = strcasestr(head, pat);
	out[0] = '\0';
	if (!p)
		return;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	size_t n = strcspn(p, "\r");
	if (n >= cap)
		n = cap - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

static void send_str(struct sconn *c, const char *s)
{
	bufferevent_write(c->bev, s, strlen(s));
}

/* send_fill: n bytes of 'a', in one go. */
static void send_fill(struct sconn *c, size_t n)
{
	char *buf = malloc(n);
	if (!buf)
		return;
	memset(buf, 'a', n);
	bufferevent_write(c->bev, buf, n);
	free(buf);
}

/* send_response: the canned answer for the last request. */
static void send_response(struct sconn *c)
{
	struct srv *s = c->s;
	char buf[512];
	if (strncmp(s->target, "/hang", 5) == 0)
		return;
	if (strcmp(s->method, "HEAD") == 0) {
		send_str(c, "HTTP/1.1 200 OK\r\nReplay-Nonce: head-nonce\r\n"
			    "Content-Length: 5\r\n\r\n");
	} else if (strncmp(s->target, "/ok", 3) == 0) {
		const char *body = "{\"status\":\"valid\"}";
		snprintf(buf, sizeof buf,
			 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			 "Replay-Nonce: nonce-1\r\nLocation: https://127.0.0.1/acme/order/1\r\n"
			 "Retry-After: 120\r\nContent-Length: %zu\r\n\r\n%s",
			 strlen(body), body);
		send_str(c, buf);
	} else if (strcmp(s->target, "/date") == 0) {
		time_t t = time(NULL) + 3600;
		struct tm tm;
		char date[64];
		gmtime_r(&t, &tm);
		strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		snprintf(buf, sizeof buf,
			 "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\n"
			 "Content-Length: 0\r\n\r\n", date);
		send_str(c, buf);
	} else if (strcmp(s->target, "/post") == 0) {
		send_str(c, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
			    "Retry-After: soon\r\nContent-Length: 2\r\n\r\n{}");
	} else if (strcmp(s->target, "/big") == 0) {
		snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
			 2 * MIB);
		send_str(c, buf);
		send_fill(c, 2 * MIB);
	} else if (strcmp(s->target, "/exact") == 0) {
		snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", MIB);
		send_str(c, buf);
		send_fill(c, MIB);
	} else if (strcmp(s->target, "/bigchunked") == 0) {
		send_str(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
		for (int i = 0; i < 32; i++) {
			send_str(c, "10000\r\n");
			send_fill(c, 0x10000);
			send_str(c, "\r\n");
		}
		send_str(c, "0\r\n\r\n");
	} else if (strcmp(s->target, "/bighead") == 0) {
		send_str(c, "HTTP/1.1 200 OK\r\nX-Filler: ");
		send_fill(c, 80 * 1024);
		send_str(c, "\r\nContent-Length: 0\r\n\r\n");
	} else if (strcmp(s->target, "/garbage") == 0) {
		send_str(c, "NOT HTTP AT ALL\r\n\r\n");
	} else {
		send_str(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
	}
}

/* sconn_read: take one whole request (head and Content-Length body). */
static void sconn_read(struct bufferevent *bev, void *arg)
{
	struct sconn *c = arg;
	struct srv *s = c->s;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0 || (size_t)end.pos + 4 >= sizeof s->head)
		return;
	size_t hlen = (size_t)end.pos + 4;
	char head[sizeof s->head], clen[32];
	evbuffer_copyout(in, head, hlen);
	head[hlen] = '\0';
	header_value(head, "Content-Length", clen, sizeof clen);
	size_t blen = strtoul(clen, NULL, 10);
	if (evbuffer_get_length(in) < hlen + blen)
		return;
	memcpy(s->head, head, hlen + 1);
	evbuffer_drain(in, hlen);
	free(s->body);
	s->body = malloc(blen + 1);
	evbuffer_remove(in, s->body, blen);
	s->body[blen] = '\0';
	s->body_len = blen;
	sscanf(head, "%15s %255s", s->method, s->target);
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	const char *sni = ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
	snprintf(s->sni, sizeof s->sni, "%s", sni ? sni : "");
	s->requests++;
	send_response(c);
}

static void sconn_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		sconn_free(arg);
}

static void srv_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
		       int salen, void *arg)
{
	struct srv *s = arg;
	s->accepted++;
	if (s->mode == SRV_DROP) {
		close(fd);
		s->closed++;
		return;
	}
	struct sconn *c = calloc(1, sizeof *c);
	SSL *ssl = SSL_new(s->ctx);
	c->s = s;
	c->bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, sconn_read, NULL, sconn_event, c);
	bufferevent_enable(c->bev, EV_READ);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
}

/* srv_start: a listener on loopback (::1 with v6) port 0; TLS with leaf
 * unless dropping. */
static int srv_start(struct srv *s, enum srv_mode mode, const struct cert *leaf, int v6)
{
	struct sockaddr_storage ss = {0};
	socklen_t sslen = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	memset(s, 0, sizeof *s);
	s->mode = mode;
	if (leaf) {
		s->ctx = SSL_CTX_new(TLS_server_method());
		if (!s->ctx || SSL_CTX_use_certificate(s->ctx, leaf->leaf) != 1 ||
		    SSL_CTX_use_PrivateKey(s->ctx, leaf->key) != 1)
			return -1;
	}
	s->lis = evconnlistener_new_bind(base, srv_accept, s,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
					 (struct sockaddr *)&ss, (int)sslen);
	if (!s->lis || getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&ss,
				   &sslen) != 0)
		return -1;
	s->port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
			   : ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static void srv_stop(struct srv *s)
{
	while (s->conns)
		sconn_free(s->conns);
	if (s->lis)
		evconnlistener_free(s->lis);
	SSL_CTX_free(s->ctx);
	free(s->body);
}

/* ---- the client side ---- */

struct result {
	int calls, sync_call;
	int status;
	char *error, *body, *nonce, *location, *content_type;
	size_t body_len;
	long retry_after_s;
	int body_terminated;
	struct acme_http *free_h;   /* freed from inside the callback */
	struct acme_http *chain_h;  /* starts one more GET of chain_url */
	const char *chain_url;
	struct result *chain_res;
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void result_clear(struct result *res)
{
	free(res->error);
	free(res->body);
	free(res->nonce);
	free(res->location);
	free(res->content_type);
	memset(res, 0, sizeof *res);
}

static void on_resp(const struct acme_http_resp *resp, void *arg)
{
	struct result *res = arg;
	res->calls++;
	res->status = resp->status;
	res->error = dup_or_null(resp->error);
	if (getenv("TEST_VERBOSE") && resp->error)
		fprintf(stderr, "  error: %s\n", resp->error);
	res->body_terminated = resp->body && resp->body[resp->body_len] == '\0';
	if (resp->body) {
		res->body = malloc(resp->body_len + 1);
		memcpy(res->body, resp->body, resp->body_len + 1);
	}
	res->body_len = resp->body_len;
	res->nonce = dup_or_null(resp->nonce);
	res->location = dup_or_null(resp->location);
	res->content_type = dup_or_null(resp->content_type);
	res->retry_after_s = resp->retry_after_s;
	if (res->free_h)
		acme_http_free(res->free_h);
	if (res->chain_h)
		acme_http_get(res->chain_h, res->chain_url, on_resp, res->chain_res);
}

static int contains(const char *s, const char *sub)
{
	if (!s || !strstr(s, sub)) {
		fprintf(stderr, "  \"%s\" lacks \"%s\"\n", s ? s : "(null)", sub);
		return 0;
	}
	return 1;
}

/* fetch: GET (or HEAD) url and wait for the callback (5 s at most). */
static void fetch(struct acme_http *h, int head, const char *url, struct result *res)
{
	result_clear(res);
	struct acme_http_req *r = head ? acme_http_head(h, url, on_resp, res)
				       : acme_http_get(h, url, on_resp, res);
	CHECK(r != NULL);
	res->sync_call = res->calls;
	CHECK(run_until(&res->calls, 1, 5000));
	CHECK(res->sync_call == 0);
	CHECK(res->calls == 1);
	CHECK(res->body != NULL && res->body_terminated);
}

/* ---- the cases ---- */

static struct srv tls_srv, other_srv, drop_srv;
static char root_path[512], other_root[512];

static void url_of(char *out, size_t cap, const char *host, int port, const char *path)
{
	snprintf(out, cap, "https://%s:%d%s", host, port, path);
}

static void test_get(struct acme_http *h)
{
	struct result res = {0};
	char url[256], want[128];
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/ok?x=1");
	fetch(h, 0, url, &res);
	CHECK(res.status == 200);
	CHECK(res.error == NULL);
	CHECK_STR(res.body, "{\"status\":\"valid\"}");
	CHECK(res.body_len == strlen("{\"status\":\"valid\"}"));
	CHECK_STR(res.nonce, "nonce-1");
	CHECK_STR(res.location, "https://127.0.0.1/acme/order/1");
	CHECK_STR(res.content_type, "application/json");
	CHECK(res.retry_after_s == 120);
	/* What the server received. */
	char v[256];
	CHECK_STR(tls_srv.method, "GET");
	CHECK_STR(tls_srv.target, "/ok?x=1");
	CHECK_STR(tls_srv.sni, "");
	snprintf(want, sizeof want, "127.0.0.1:%d", tls_srv.port);
	header_value(tls_srv.head, "Host", v, sizeof v);
	CHECK_STR(v, want);
	header_value(tls_srv.head, "User-Agent", v, sizeof v);
	CHECK_STR(v, "portier-test/1");
	header_value(tls_srv.head, "Accept", v, sizeof v);
	CHECK_STR(v, "application/json");
	header_value(tls_srv.head, "Connection", v, sizeof v);
	CHECK_STR(v, "close");

	/* Retry-After as an HTTP-date an hour ahead; no other headers. */
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/date");
	fetch(h, 0, url, &res);
	CHECK(res.status == 503);
	CHECK(res.retry_after_s >= 3598 && res.retry_after_s <= 3600);
	CHECK_STR(res.body, "");
	CHECK(res.body_len == 0);
	CHECK(res.nonce == NULL && res.location == NULL && res.content_type == NULL);

	/* HEAD: headers, no body even with a Content-Length. */
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/ok");
	fetch(h, 1, url, &res);
	CHECK(res.status == 200);
	CHECK_STR(tls_srv.method, "HEAD");
	CHECK_STR(res.nonce, "head-nonce");
	CHECK_STR(res.body, "");
	CHECK(res.retry_after_s == -1);

	/* A body at the cap exactly is fine. */
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/exact");
	fetch(h, 0, url, &res);
	CHECK(res.status == 200);
	CHECK(res.body_len == MIB);
	CHECK(res.body && res.body[0] == 'a' && res.body[MIB - 1] == 'a');

	/* Other statuses are responses, not errors. */
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/missing");
	fetch(h, 0, url, &res);
	CHECK(res.status == 404);
	CHECK(res.error == NULL);
	result_clear(&res);
}

static void test_post(struct acme_http *h)
{
	const char *jws = "{\"protected\":\"eyJhbGciOiJFUzI1NiJ9\",\"payload\":\"\","
			  "\"signature\":\"c2ln\"}";
	struct result res = {0};
	char url[256], v[256], len[32];
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/post");
	CHECK(acme_http_post_jose(h, url, jws, on_resp, &res) != NULL);
	CHECK(res.calls == 0);
	CHECK(run_until(&res.calls, 1, 5000));
	CHECK(res.status == 201);
	CHECK_STR(res.body, "{}");
	CHECK(res.retry_after_s == -1); /* "soon" */
	CHECK_STR(tls_srv.method, "POST");
	CHECK_STR(tls_srv.target, "/post");
	CHECK_STR(tls_srv.body, jws);
	CHECK(tls_srv.body_len == strlen(jws));
	header_value(tls_srv.head, "Content-Type", v, sizeof v);
	CHECK_STR(v, "application/jose+json");
	header_value(tls_srv.head, "Content-Length", v, sizeof v);
	snprintf(len, sizeof len, "%zu", strlen(jws));
	CHECK_STR(v, len);
	result_clear(&res);
}

/* test_chain: a callback may start the next request. */
static void test_chain(struct acme_http *h)
{
	struct result first = {0}, second = {0};
	char url[256];
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/ok");
	first.chain_h = h;
	first.chain_url = url;
	first.chain_res = &second;
	CHECK(acme_http_get(h, url, on_resp, &first) != NULL);
	CHECK(run_until(&second.calls, 1, 5000));
	CHECK(first.status == 200 && second.status == 200);
	result_clear(&first);
	result_clear(&second);
}

static void test_verify(struct event_base *b, struct acme_http *h)
{
	struct result res = {0};
	char url[256];
	/* Trusting another root. */
	struct acme_http *other = acme_http_new(b, NULL, other_root, "t", errbuf, sizeof errbuf);
	CHECK(other != NULL);
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/ok");
	fetch(other, 0, url, &res);
	CHECK(res.status == 0);
	CHECK(contains(res.error, "TLS: certificate verify failed"));
	CHECK(contains(res.error, "unable to get local issuer certificate"));
	CHECK_STR(res.body, "");
	CHECK(res.nonce == NULL && res.retry_after_s == -1);
	acme_http_free(other);

	/* The right root, but the certificate is for a name, not this IP. */
	url_of(url, sizeof url, "127.0.0.1", other_srv.port, "/ok");
	fetch(h, 0, url, &res);
	CHECK(res.status == 0);
	CHECK(contains(res.error, "certificate verify failed: IP address mismatch"));
	result_clear(&res);
}

/* test_dns: a host name resolved through evdns (a hosts file) gets SNI and
 * a name check; without a resolver, host names fail. */
static void test_dns(struct event_base *b, struct acme_http *h_nodns)
{
	char hosts[128], url[256], v[128], want[64];
	snprintf(hosts, sizeof hosts, "%s/hosts", tmpdir);
	FILE *f = fopen(hosts, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs("127.0.0.1 acme.test\n", f);
	fclose(f);
	struct evdns_base *dns = evdns_base_new(b, 0);
	CHECK(dns && evdns_base_load_hosts(dns, hosts) == 0);
	struct acme_http *h = acme_http_new(b, dns, root_path, "t", errbuf, sizeof errbuf);
	CHECK(h != NULL);
	struct result res = {0};
	url_of(url, sizeof url, "acme.test", other_srv.port, "/ok");
	fetch(h, 0, url, &res);
	CHECK(res.status == 200);
	CHECK(res.error == NULL);
	CHECK_STR(other_srv.sni, "acme.test");
	header_value(other_srv.head, "Host", v, sizeof v);
	snprintf(want, sizeof want, "acme.test:%d", other_srv.port);
	CHECK_STR(v, want);

	/* The name checked against the certificate, not only resolved. */
	url_of(url, sizeof url, "acme.test", tls_srv.port, "/ok");
	fetch(h, 0, url, &res);
	CHECK(contains(res.error, "certificate verify failed: hostname mismatch"));

	url_of(url, sizeof url, "acme.test", other_srv.port, "/ok");
	fetch(h_nodns, 0, url, &res);
	CHECK(res.status == 0);
	CHECK(contains(res.error, "no DNS resolver"));
	result_clear(&res);
	acme_http_free(h);
	evdns_base_free(dns, 1);
}

static void test_bounds(struct acme_http *h)
{
	struct result res = {0};
	char url[256];
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/big");
	fetch(h, 0, url, &res);
	CHECK(res.status == 0);
	CHECK(contains(res.error, "response body over 1 MiB"));
	CHECK_STR(res.body, "");
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/bigchunked");
	fetch(h, 0, url, &res);
	CHECK(res.status == 0);
	CHECK(contains(res.error, "response body over 1 MiB"));
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/bighead");
	fetch(h, 0, url, &res);
	CHECK(res.status == 0);
	CHECK(contains(res.error, "malformed response head (or over 64 KiB)"));
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/garbage");
	fetch(h, 0, url, &res);
	CHECK(res.status == 0);
	CHECK(contains(res.error, "malformed response"));
	result_clear(&res);
}

static void test_timeout(struct acme_http *h)
{
	struct result res = {0};
	char url[256];
	struct timeval t0, t1;
	acme_http_set_timeout_s(h, 1);
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/hang");
	gettimeofday(&t0, NULL);
	fetch(h, 0, url, &res);
	gettimeofday(&t1, NULL);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
	CHECK(res.status == 0);
	CHECK_STR(res.error, "timeout after 1 s");
	CHECK(ms >= 900 && ms < 3000);
	acme_http_set_timeout_s(h, ACME_HTTP_TIMEOUT_S);
	result_clear(&res);
}

/* test_connect_errors: refused, dropped during the handshake, bad URLs: all
 * reported later from the loop, never from inside the call. */
static void test_connect_errors(struct acme_http *h)
{
	struct result res = {0};
	char url[256], want[64];
	/* Bound, never listening: connecting is refused. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sin;
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	      getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	url_of(url, sizeof url, "127.0.0.1", ntohs(sin.sin_port), "/ok");
	fetch(h, 0, url, &res);
	snprintf(want, sizeof want, "connect to 127.0.0.1:%d: ", ntohs(sin.sin_port));
	CHECK(res.status == 0);
	CHECK(contains(res.error, want));
	CHECK(contains(res.error, "refused"));
	close(fd);

	url_of(url, sizeof url, "127.0.0.1", drop_srv.port, "/ok");
	fetch(h, 0, url, &res);
	snprintf(want, sizeof want, "handshake with 127.0.0.1:%d", drop_srv.port);
	CHECK(res.status == 0);
	CHECK(contains(res.error, "TLS: unexpected eof while reading"));
	CHECK(contains(res.error, want));

	static const char *bad[] = {
		"ftp://127.0.0.1/dir", "not a url", "https:///dir", "https://user@127.0.0.1/dir",
		"https://127.0.0.1:0/dir", "https://[::1/dir", "", "https://127.0.0.1/a b",
		"https://127.0.0.1/a\r\nX-Injected: 1", "https://127.0.0.1:99999/dir",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		fetch(h, 0, bad[i], &res);
		CHECK(res.status == 0);
		CHECK(contains(res.error, "bad URL"));
		CHECK(res.error && !strpbrk(res.error, "\r\n"));
	}
	result_clear(&res);
}

/* test_cancel: a cancelled request never calls back, whether waiting for
 * the server, just started, or already failed but not yet reported. */
static void test_cancel(struct acme_http *h)
{
	struct result res = {0};
	char url[256];
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/hang");
	int want = tls_srv.requests + 1;
	struct acme_http_req *r = acme_http_get(h, url, on_resp, &res);
	CHECK(r != NULL);
	CHECK(run_until(&tls_srv.requests, want, 5000));
	acme_http_cancel(r);
	CHECK(run_until(&tls_srv.closed, tls_srv.accepted, 5000));

	acme_http_cancel(acme_http_get(h, url, on_resp, &res));
	acme_http_cancel(acme_http_get(h, "ftp://x/", on_resp, &res));
	acme_http_cancel(NULL);
	run_for(200);
	CHECK(res.calls == 0);
	CHECK(run_until(&tls_srv.closed, tls_srv.accepted, 5000));
}

/* test_free: freeing the client with requests in flight, also from inside
 * another request's callback, calls none of them back and leaks nothing. */
static void test_free(struct event_base *b)
{
	struct result hang1 = {0}, hang2 = {0}, ok = {0};
	char url[256], okurl[256];
	url_of(url, sizeof url, "127.0.0.1", tls_srv.port, "/hang");
	url_of(okurl, sizeof okurl, "127.0.0.1", tls_srv.port, "/ok");

	struct acme_http *h = acme_http_new(b, NULL, root_path, "t", errbuf, sizeof errbuf);
	CHECK(h != NULL);
	int want = tls_srv.requests + 2;
	acme_http_get(h, url, on_resp, &hang1);
	acme_http_get(h, url, on_resp, &hang2);
	CHECK(run_until(&tls_srv.requests, want, 5000));
	acme_http_free(h);
	acme_http_free(NULL);
	CHECK(run_until(&tls_srv.closed, tls_srv.accepted, 5000));
	CHECK(hang1.calls == 0 && hang2.calls == 0);

	h = acme_http_new(b, NULL, root_path, "t", errbuf, sizeof errbuf);
	CHECK(h != NULL);
	want = tls_srv.requests + 2;
	acme_http_get(h, url, on_resp, &hang1);
	acme_http_get(h, url, on_resp, &hang2);
	CHECK(run_until(&tls_srv.requests, want, 5000));
	ok.free_h = h;
	acme_http_get(h, okurl, on_resp, &ok);
	CHECK(run_until(&ok.calls, 1, 5000));
	CHECK(ok.status == 200);
	CHECK(run_until(&tls_srv.closed, tls_srv.accepted, 5000));
	run_for(100);
	CHECK(hang1.calls == 0 && hang2.calls == 0);
	result_clear(&ok);
}

/* test_ipv6: an IPv6 literal in brackets, checked against an IP SAN (only
 * where the host has ::1). */
static void test_ipv6(struct event_base *b, struct internal_ca *ca)
{
	struct srv s6 = {0};
	struct cert *leaf = internal_ca_issue(ca, "::1", errbuf, sizeof errbuf);
	CHECK(leaf != NULL);
	if (leaf && srv_start(&s6, SRV_TLS, leaf, 1) == 0) {
		struct acme_http *h = acme_http_new(b, NULL, root_path, "t", errbuf, sizeof errbuf);
		struct result res = {0};
		char url[256], v[128], want[64];
		url_of(url, sizeof url, "[::1]", s6.port, "/ok");
		fetch(h, 0, url, &res);
		CHECK(res.status == 200);
		header_value(s6.head, "Host", v, sizeof v);
		snprintf(want, sizeof want, "[::1]:%d", s6.port);
		CHECK_STR(v, want);
		result_clear(&res);
		acme_http_free(h);
		CHECK(run_until(&s6.closed, s6.accepted, 5000));
	} else {
		fprintf(stderr, "  (no IPv6 loopback: IPv6 literal case skipped)\n");
	}
	srv_stop(&s6);
	cert_release(leaf);
}

static void udp_read(evutil_socket_t fd, short what, void *arg)
{
	int *n = arg;
	char buf[512];
	while (recv(fd, buf, sizeof buf, 0) > 0)
		(*n)++;
}

/* test_dns_stall: a name server that never answers: the lookup can be
 * cancelled, times out, and is dropped by acme_http_free. */
static void test_dns_stall(struct event_base *b)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), queries = 0;
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	      getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	struct event *ev = event_new(b, fd, EV_READ | EV_PERSIST, udp_read, &queries);
	event_add(ev, NULL);
	char ns[64];
	snprintf(ns, sizeof ns, "127.0.0.1:%d", ntohs(sin.sin_port));
	struct evdns_base *dns = evdns_base_new(b, 0);
	CHECK(dns && evdns_base_nameserver_ip_add(dns, ns) == 0);
	struct acme_http *h = acme_http_new(b, dns, root_path, "t", errbuf, sizeof errbuf);
	struct result res = {0}, late = {0};

	struct acme_http_req *r = acme_http_get(h, "https://stall.test/dir", on_resp, &late);
	CHECK(run_until(&queries, 1, 5000));
	acme_http_cancel(r);

	acme_http_set_timeout_s(h, 1);
	fetch(h, 0, "https://stall.test/dir", &res);
	CHECK_STR(res.error, "timeout after 1 s");

	int want = queries + 1;
	acme_http_get(h, "https://stall2.test/dir", on_resp, &late);
	CHECK(run_until(&queries, want, 5000));
	acme_http_free(h);
	run_for(100);
	CHECK(late.calls == 0);
	result_clear(&res);
	evdns_base_free(dns, 1);
	event_free(ev);
	close(fd);
}

static void test_new_errors(struct event_base *b)
{
	char empty[128];
	CHECK(acme_http_new(b, NULL, "/nonexistent/ca.pem", "t", errbuf, sizeof errbuf) == NULL);
	CHECK(contains(errbuf, "/nonexistent/ca.pem"));
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "  new: %s\n", errbuf);
	snprintf(empty, sizeof empty, "%s/empty.pem", tmpdir);
	FILE *f = fopen(empty, "w");
	if (f)
		fclose(f);
	CHECK(acme_http_new(b, NULL, empty, "t", errbuf, sizeof errbuf) == NULL);
	CHECK(contains(errbuf, empty));
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "  new: %s\n", errbuf);
	CHECK(acme_http_new(b, NULL, root_path, "a\r\nX: y", errbuf, sizeof errbuf) == NULL);
	CHECK(contains(errbuf, "line break"));
	/* The system store loads (it may be empty in a container). */
	struct acme_http *h = acme_http_new(b, NULL, NULL, NULL, errbuf, sizeof errbuf);
	CHECK(h != NULL);
	acme_http_free(h);
	CHECK(ERR_peek_error() == 0);
}

static void test_retry_after(void)
{
	time_t t0 = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
	CHECK(acme_http_retry_after("120", t0) == 120);
	CHECK(acme_http_retry_after("0", t0) == 0);
	CHECK(acme_http_retry_after("2592000", t0) == 2592000);
	CHECK(acme_http_retry_after("2592001", t0) == 2592000);
	CHECK(acme_http_retry_after("99999999999999999999999", t0) == 2592000);
	CHECK(acme_http_retry_after(NULL, t0) == -1);
	CHECK(acme_http_retry_after("", t0) == -1);
	CHECK(acme_http_retry_after(" 120", t0) == -1);
	CHECK(acme_http_retry_after("120 ", t0) == -1);
	CHECK(acme_http_retry_after("-5", t0) == -1);
	CHECK(acme_http_retry_after("+5", t0) == -1);
	CHECK(acme_http_retry_after("1.5", t0) == -1);
	CHECK(acme_http_retry_after("12a", t0) == -1);
	const char *d = "Sun, 06 Nov 1994 08:49:37 GMT";
	CHECK(acme_http_retry_after(d, t0) == 0);
	CHECK(acme_http_retry_after(d, t0 - 10) == 10);
	CHECK(acme_http_retry_after(d, t0 + 10) == 0);
	CHECK(acme_http_retry_after(d, t0 - 40L * 86400) == 2592000);
	CHECK(acme_http_retry_after("Wed, 31 Dec 2036 23:59:60 GMT", t0) == 2592000);
	CHECK(acme_http_retry_after("Sat, 31 Dec 2016 23:59:60 GMT", 1483228799) == 0);
	CHECK(acme_http_retry_after("Mon, 06 Nov 1994 08:49:37 GMT", t0 - 10) == -1);
	CHECK(acme_http_retry_after("sun, 06 Nov 1994 08:49:37 GMT", t0 - 10) == -1);
	CHECK(acme_http_retry_after("Sun, 6 Nov 1994 08:49:37 GMT", t0 - 10) == -1);
	CHECK(acme_http_retry_after("Sun, 06 Nov 1994 08:49:37 UTC", t0 - 10) == -1);
	CHECK(acme_http_retry_after("Sun, 06 Nov 1994 08:49:37 GMT ", t0 - 10) == -1);
	CHECK(acme_http_retry_after("Sun, 06 Nov 1994 24:00:00 GMT", t0 - 10) == -1);
	CHECK(acme_http_retry_after("Thu, 31 Feb 1994 08:49:37 GMT", t0 - 10) == -1);
	CHECK(acme_http_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", t0 - 10) == -1);
	CHECK(acme_http_retry_after("Sun Nov  6 08:49:37 1994", t0 - 10) == -1);
}

/* ---- setup ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_retry_after();

	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_acme_http.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		CHECK(!"mkdtemp");
		return check_done();
	}
	char state[128], other_state[128];
	snprintf(state, sizeof state, "%s/a", tmpdir);
	snprintf(other_state, sizeof other_state, "%s/b", tmpdir);
	struct internal_ca *ca = internal_ca_open(state, errbuf, sizeof errbuf);
	struct internal_ca *other_ca = internal_ca_open(other_state, errbuf, sizeof errbuf);
	struct cert *ip_leaf = ca ? internal_ca_issue(ca, "127.0.0.1", errbuf, sizeof errbuf)
				  : NULL;
	struct cert *name_leaf = ca ? internal_ca_issue(ca, "acme.test", errbuf, sizeof errbuf)
				    : NULL;
	CHECK(ca && other_ca && ip_leaf && name_leaf);
	if (!ca || !other_ca || !ip_leaf || !name_leaf) {
		fprintf(stderr, "%s\n", errbuf);
		return check_done();
	}
	snprintf(root_path, sizeof root_path, "%s", internal_ca_root_path(ca));
	snprintf(other_root, sizeof other_root, "%s", internal_ca_root_path(other_ca));

	base = event_base_new();
	guard = evtimer_new(base, guard_cb, NULL);
	CHECK(srv_start(&tls_srv, SRV_TLS, ip_leaf, 0) == 0);
	CHECK(srv_start(&other_srv, SRV_TLS, name_leaf, 0) == 0);
	CHECK(srv_start(&drop_srv, SRV_DROP, NULL, 0) == 0);
	struct acme_http *h = acme_http_new(base, NULL, root_path, "portier-test/1", errbuf,
					    sizeof errbuf);
	CHECK(h != NULL);
	if (h) {
		test_get(h);
		test_post(h);
		test_chain(h);
		test_verify(base, h);
		test_dns(base, h);
		test_bounds(h);
		test_timeout(h);
		test_connect_errors(h);
		test_cancel(h);
		test_free(base);
		test_ipv6(base, ca);
		test_dns_stall(base);
		test_new_errors(base);
		acme_http_free(h);
	}
	run_for(50);
	srv_stop(&tls_srv);
	srv_stop(&other_srv);
	srv_stop(&drop_srv);
	event_free(guard);
	event_base_free(base);
	cert_release(ip_leaf);
	cert_release(name_leaf);
	internal_ca_free(ca);
	internal_ca_free(other_ca);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_done();
}
