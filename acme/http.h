/*
 * http.h - the ACME client's HTTPS client: one-shot GET, HEAD and JOSE POST
 * requests to the CA on the main thread's event loop, built on libevent's
 * evhttp with one connection per request. The server is always verified
 * (TLS 1.2 or later, name or IP checked against the certificate); responses
 * are bounded (1 MiB body, 64 KiB headers, 30 s per request). Main thread
 * only, like the event_base it runs on.
 */
#pragma once

#include <stddef.h>
#include <time.h>

struct event_base;
struct evdns_base;

struct acme_http;     /* the client: SSL_CTX, event base, dns base, in-flight list */
struct acme_http_req; /* one request in flight */

/* Response bounds; a response over either is a transport error. */
#define ACME_HTTP_BODY_MAX (1024 * 1024)
#define ACME_HTTP_HEADERS_MAX (64 * 1024)
/* Default whole-request timeout, connecting and resolving included. */
#define ACME_HTTP_TIMEOUT_S 30
/* Retry-After values beyond this are clamped to it (30 days). */
#define ACME_HTTP_RETRY_AFTER_MAX_S (30L * 24 * 3600)

struct acme_http_resp {
	int status;               /* HTTP status; 0 when the request failed in transport */
	const char *error;        /* transport failure text ("connect to HOST:PORT: ...",
				   * "TLS: certificate verify failed: ...", "timeout after 30 s",
				   * "response body over 1 MiB"), else NULL */
	const char *body;         /* NUL-terminated, never NULL ("" when empty) */
	size_t body_len;
	const char *nonce;        /* Replay-Nonce header or NULL */
	const char *location;     /* Location header or NULL */
	const char *content_type; /* Content-Type header or NULL */
	long retry_after_s;       /* Retry-After in seconds from now (delta-seconds or
				   * HTTP-date, past dates give 0), -1 when absent or
				   * unparsable */
};

/* The completion callback. Everything in resp is valid only during the
 * callback. It may start new requests, cancel other requests, or free the
 * client (acme_http_free). */
typedef void (*acme_http_cb)(const struct acme_http_resp *resp, void *arg);

/* acme_http_new: a client on base. ca_bundle NULL means the system trust
 * store (SSL_CTX_set_default_verify_paths); else only the certificates in
 * that PEM file are trusted. dns resolves host names; it may be NULL for
 * IP-literal-only use (a host name then fails the request, it is never
 * resolved by blocking). user_agent is copied. NULL with a message in errbuf
 * on failure (e.g. an unreadable bundle, named by its path). */
struct acme_http *acme_http_new(struct event_base *base, struct evdns_base *dns,
				const char *ca_bundle, const char *user_agent, char *errbuf,
				size_t errlen);

/* acme_http_free: cancels every request in flight (their callbacks are never
 * called) and frees the client. NULL-safe. May be called from inside any
 * request's callback. Pending DNS lookups are cancelled in dns, so free h
 * before freeing dns. */
void acme_http_free(struct acme_http *h);

/* acme_http_set_timeout_s: FOR TESTS ONLY: the whole-request timeout (secs
 * >= 1) for requests started from now on, instead of ACME_HTTP_TIMEOUT_S. */
void acme_http_set_timeout_s(struct acme_http *h, int secs);

/* Requests. url is absolute, https:// (or http://, allowed for testing).
 * Every request carries Host, User-Agent, Accept: application/json and
 * Connection: close. body is the request body for POST, sent as is with
 * Content-Type: application/jose+json. The callback is called exactly once,
 * always later from the event loop (never from inside these functions, even
 * when the URL is bad or connecting fails at once), unless the request is
 * cancelled or the client freed first. The returned handle is valid until
 * the callback returns or the request is cancelled. NULL only on out of
 * memory (then no callback). No retries: one attempt per call. */
struct acme_http_req *acme_http_get(struct acme_http *h, const char *url, acme_http_cb cb,
				    void *arg);
struct acme_http_req *acme_http_head(struct acme_http *h, const char *url, acme_http_cb cb,
				     void *arg);
struct acme_http_req *acme_http_post_jose(struct acme_http *h, const char *url,
					  const char *body, acme_http_cb cb, void *arg);

/* acme_http_cancel: stops r and frees it; the callback will not be called.
 * NULL-safe; must not be called from inside that request's own callback
 * (it is ignored there: r is freed when the callback returns). */
void acme_http_cancel(struct acme_http_req *r);

/* acme_http_retry_after: a Retry-After value (RFC 9110 10.2.3) as seconds
 * after now: 1*DIGIT delta-seconds or an IMF-fixdate ("Sun, 06 Nov 1994
 * 08:49:37 GMT", exact form, weekday checked), clamped to [0,
 * ACME_HTTP_RETRY_AFTER_MAX_S]; -1 for NULL or anything else. Pure; the
 * responses' retry_after_s comes from it with now = time(NULL). */
long acme_http_retry_after(const char *value, time_t now);
