/*
 * test_acme_client.c - the ACME client's bootstrap against a CA that ends it
 * at once: a directory that requires external account binding, with no EAB
 * configured. Orders that end call back into the client (as the edge does:
 * a finished order starts a queued one), which once freed orders still
 * being reported (use-after-free). Every order must end exactly once, with
 * the reason, and nothing may be reported from inside acme_client_order.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>

#include "acme/client.h"
#include "acme/http.h"
#include "check.h"

#define ORDERS_FIRST 2
#define ORDERS_QUEUED 3

static struct event_base *base;
static struct acme_client *client;
static int started, ended, queued = ORDERS_QUEUED, ended_twice;
static bool inside_order_call;
static char seen[ORDERS_FIRST + ORDERS_QUEUED][32];

static void serve_directory(struct evhttp_request *req, void *arg)
{
	int port = *(int *)arg;
	struct evbuffer *out = evbuffer_new();
	evbuffer_add_printf(out,
			    "{\"newNonce\":\"http://127.0.0.1:%d/nonce\","
			    "\"newAccount\":\"http://127.0.0.1:%d/account\","
			    "\"newOrder\":\"http://127.0.0.1:%d/order\","
			    "\"meta\":{\"externalAccountRequired\":true}}",
			    port, port, port);
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static int put(void *a, enum acme_chal_type t, const char *h, const char *tok, const char *k,
	       char *e, size_t el)
{
	return 0;
}

static void del(void *a, enum acme_chal_type t, const char *h, const char *tok)
{
}

static void start_one(const char *host)
{
	char err[256];
	inside_order_call = true;
	int rc = acme_client_order(client, host, NULL, err, sizeof err);
	inside_order_call = false;
	CHECK(rc == 0);
	if (rc == 0)
		started++;
}

static void order_done(void *a, const char *host, struct cert *c, const char *err, long ra)
{
	CHECK(!inside_order_call);
	CHECK(c == NULL);
	CHECK(err && strstr(err, "external account binding"));
	for (int i = 0; i < ended; i++)
		if (!strcmp(seen[i], host))
			ended_twice++;
	if (ended < ORDERS_FIRST + ORDERS_QUEUED)
		snprintf(seen[ended], sizeof seen[ended], "%s", host);
	ended++;
	/* As the edge does: the end of one order starts a queued host's. */
	if (queued > 0) {
		char h[32];
		snprintf(h, sizeof h, "q%d.example.test", queued--);
		start_one(h);
	}
	if (ended == started && queued == 0)
		event_base_loopbreak(base);
}

static void ari_done(void *a, const char *h, const char *id, int64_t s, int64_t e, long r,
		     const char *err)
{
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(base);
}

int main(void)
{
	char dir_tmpl[] = "/tmp/portier-acme-client-XXXXXX";
	const char *state = mkdtemp(dir_tmpl);
	base = event_base_new();
	struct evhttp *srv = evhttp_new(base);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(srv, "127.0.0.1", 0);
	CHECK(state && bs);
	if (!state || !bs)
		return check_done();
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &len);
	int port = ntohs(sin.sin_port);
	evhttp_set_cb(srv, "/dir", serve_directory, &port);

	char err[256], url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/dir", port);
	struct acme_http *http = acme_http_new(base, NULL, NULL, "test", err, sizeof err);
	struct acme_client_cfg cfg = {.directory = url, .http01 = true, .state_dir = state};
	struct acme_client_ops ops = {put, del, order_done, ari_done};
	client = http ? acme_client_new(base, http, &cfg, &ops, NULL, err, sizeof err) : NULL;
	CHECK(client != NULL);
	if (client) {
		start_one("a.example.test");
		start_one("b.example.test");
		struct event *deadline = evtimer_new(base, on_deadline, NULL);
		struct timeval tv = {10, 0};
		evtimer_add(deadline, &tv);
		event_base_dispatch(base);
		event_free(deadline);
	}
	CHECK(started == ORDERS_FIRST + ORDERS_QUEUED);
	CHECK(ended == started);
	CHECK(ended_twice == 0);
	acme_client_free(client);
	acme_http_free(http);
	evhttp_free(srv);
	event_base_free(base);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", state);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", state);
	return check_done();
}
