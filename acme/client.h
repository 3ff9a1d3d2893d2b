/*
 * client.h - the RFC 8555 client: one account, many orders, each order a
 * non-blocking state machine on the caller's event loop. It knows nothing of
 * listeners, tenants or stores: challenge answers go out and certificates
 * come back through acme_client_ops, which the edge implements.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "acme/cert.h"
#include "acme/http.h"

enum acme_chal_type { ACME_CHAL_HTTP01, ACME_CHAL_TLSALPN01 };

struct acme_client_cfg {
	const char *directory; /* the CA's directory URL */
	const char *email;     /* account contact, may be NULL */
	const char *eab_kid;   /* external account binding, both or neither */
	const char *eab_hmac;  /* base64url MAC key as the CA issued it */
	bool http01, tlsalpn01;
	const char *state_dir; /* account key in STATE_DIR/acme/ */
};

struct acme_client_ops {
	/* chal_put: publish the answer to one challenge (token is for http-01,
	 * host for tls-alpn-01). -1 with a message when it cannot be served. */
	int (*chal_put)(void *arg, enum acme_chal_type type, const char *host, const char *token,
			const char *keyauth, char *errbuf, size_t errlen);
	void (*chal_del)(void *arg, enum acme_chal_type type, const char *host, const char *token);
	/* order_done: the order for host ended, once per acme_client_order:
	 * c is a new reference the callee takes over, or NULL with err (one line
	 * for operators) and retry_after_s (the CA's Retry-After, -1 if none). */
	void (*order_done)(void *arg, const char *host, struct cert *c, const char *err,
			   long retry_after_s);
	/* ari_done: the CA's suggested renewal window for host's certificate
	 * cert_id (epoch seconds) and when to ask again (-1: no Retry-After),
	 * or err. */
	void (*ari_done)(void *arg, const char *host, const char *cert_id, int64_t start,
			 int64_t end, long retry_after_s, const char *err);
};

struct acme_client;

/* acme_client_new: load STATE_DIR/acme/account.key, creating it (P-256,
 * mode 0600) on first use. Nothing is sent to the CA until an order starts.
 * http is borrowed and must outlive the client. NULL with a message. */
struct acme_client *acme_client_new(struct event_base *base, struct acme_http *http,
				    const struct acme_client_cfg *cfg,
				    const struct acme_client_ops *ops, void *arg, char *errbuf,
				    size_t errlen);
/* acme_client_free: stops every order (order_done is not called for them)
 * and removes their challenge answers. NULL-safe. */
void acme_client_free(struct acme_client *cl);

/* acme_client_order: start an order for host (one DNS name). replaces, when
 * not NULL, is the ARI identifier of the certificate it renews (sent as
 * "replaces", RFC 9773 5, when the CA offers renewalInfo). The caller keeps
 * at most one order per host. -1 with a message when it cannot start (then
 * order_done is not called). */
int acme_client_order(struct acme_client *cl, const char *host, const char *replaces,
		      char *errbuf, size_t errlen);

/* acme_client_renewal_info: ask the CA's renewalInfo resource (RFC 9773)
 * about the certificate cert_id (ari.h) of host; ari_done follows, once
 * (possibly before this returns, when the CA offers no renewalInfo). The
 * directory is fetched first when not known yet (no account is needed). -1 with a
 * message when it cannot start (then ari_done is not called). */
int acme_client_renewal_info(struct acme_client *cl, const char *host, const char *cert_id,
			     char *errbuf, size_t errlen);
