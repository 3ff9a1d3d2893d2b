/*
 * client_internal.h - what client.c (account, directory, nonces, signed
 * requests) and order.c (the per-host state machine) share. Not for users
 * of the client.
 */
#pragma once

#include <limits.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acme/client.h"
#include "acme/jws.h"
#include "acme/problem.h"

/* Fresh nonces kept for the next requests (RFC 8555 7.2: each is single use). */
#define ACME_NONCES 8

enum acme_boot { ACME_BOOT_NONE, ACME_BOOT_RUNNING, ACME_BOOT_READY };

struct acme_order;
struct acme_call;
struct acme_ari;

struct acme_client {
	struct event_base *base;
	struct acme_http *http;
	struct acme_client_ops ops;
	void *arg;
	char *directory_url, *email, *eab_kid, *eab_hmac;
	bool http01, tlsalpn01;
	char account_dir[PATH_MAX]; /* STATE_DIR/acme */
	EVP_PKEY *key;
	char thumbprint[JWS_THUMBPRINT_SIZE];
	/* From the directory (NULL until fetched). */
	char *new_nonce, *new_account, *new_order, *renewal_info;
	bool eab_required;
	char *kid; /* the account URL */
	/* Getting the directory and the account, shared by all orders. */
	enum acme_boot boot;
	struct acme_http_req *boot_req;
	struct acme_call *boot_call;
	struct event *boot_timer; /* reports the bootstrap's end from the loop */
	char boot_err[512];
	unsigned boot_seq;
	char *nonces[ACME_NONCES];
	unsigned n_nonces;
	struct acme_order *orders;
	struct acme_ari *aris; /* renewalInfo requests */
};

/* A signed POST (RFC 8555 6.2) with one retry on badNonce. */
typedef void (*acme_call_cb)(struct acme_client *cl, const struct acme_http_resp *r,
			     const struct problem *p, void *arg);

/* acme_call_start: POST payload_json (NULL: POST-as-GET) to url, signed
 * with the account key: by kid, or by jwk when use_jwk (newAccount). cb gets
 * the final response and, for an error status, its problem document (NULL
 * on success or transport failure). NULL on out-of-memory (no callback). */
struct acme_call *acme_call_start(struct acme_client *cl, const char *url,
				  const char *payload_json, bool use_jwk, acme_call_cb cb,
				  void *arg);
void acme_call_cancel(struct acme_call *c);

/* acme_boot_start: fetch the directory and register the account if not
 * done yet; acme_order_booted is called for every waiting order after. */
void acme_boot_start(struct acme_client *cl);
void acme_account_forget(struct acme_client *cl);

/* order.c */
void acme_order_booted(struct acme_order *o, const char *err);
/* acme_orders_mark_waiting: mark every order waiting for the bootstrap;
 * acme_orders_take_marked: one of them, unmarked, or NULL when none is left. */
void acme_orders_mark_waiting(struct acme_client *cl, unsigned seq);
struct acme_order *acme_orders_take_marked(struct acme_client *cl, unsigned seq);
/* acme_order_free: unlink and free o, its request and challenge answer;
 * order_done is the caller's business. */
void acme_order_free(struct acme_order *o);

/* acme_json_body: the response body as a JSON object, or NULL. */
json_t *acme_json_body(const struct acme_http_resp *r);
/* acme_describe: one line for operators: the problem, else the transport
 * error, else the status. */
void acme_describe(const char *what, const struct acme_http_resp *r, const struct problem *p,
		   char *out, size_t outlen);
