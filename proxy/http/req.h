/*
 * req.h - the protocol-neutral request: what the h1 (and later h2) front
 * produces and what routing, limits, header rewriting, upstream and the
 * access log read. Strings point into head_buf, owned by the request.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/rule.h"
#include "config/snapshot.h"
#include "proxy/http/h1_head.h"
#include "proxy/net/peer.h"

struct req {
	char *head_buf; /* owned copy of the head the strings below point into */
	bool borrowed;  /* head_buf and headers are the front's: not freed by req_clear */

	const char *method;
	size_t method_len;
	const char *path;  /* absolute path, no query */
	size_t path_len;
	const char *query; /* without '?', NULL when none */
	size_t query_len;
	const char *authority; /* Host as sent (with port), for X-Forwarded-Host */
	size_t authority_len;
	char host[256];        /* normalised: lowercase, no port, no trailing dot */
	size_t host_len;
	struct h1_header *headers;
	size_t n_headers;

	int64_t content_length; /* -1: none (or chunked) */
	bool chunked, expect_continue, upgrade, keep_alive, is_head;

	/* Where it came from. */
	struct sockaddr_storage client;
	char client_ip[48];
	uint16_t local_port;
	bool tls;
	const char *tls_version; /* "TLSv1.3", NULL on plain HTTP */
	const char *protocol;    /* "HTTP/1.1", "HTTP/1.0", "h2" */
	bool client_trusted;     /* peer is in trusted_proxies */
	bool inflight_held;      /* holds a max_inflight slot of its tenant */

	char id[40];

	/* Routing result; snap is held for the request's lifetime. */
	struct route_snapshot *snap;
	struct route_match route;

	/* Accounting for the access log. */
	int64_t start_ms;
	int status;
	uint64_t bytes_in, bytes_out;
	char upstream[280];
	int64_t upstream_ms;
};

/* req_header: the idx-th value of header name (case-insensitive). */
bool req_header(const struct req *r, const char *name, size_t idx, const char **val,
		size_t *len);

/* req_rule_view: the rule matcher's view of r. */
void req_rule_view(const struct req *r, struct rule_req *out);

/* req_make_id: a fresh 32-hex-digit request id into r->id, or the client's
 * X-Request-Id when it is sane (printable token, <= 36 chars). */
void req_make_id(struct req *r);

/* req_account: add a finished request to its tenant's counters. */
void req_account(const struct req *r);

/* req_set_peer: where r came from: client address, local port, TLS. */
void req_set_peer(struct req *r, const struct conn_peer *p);

/* req_clear: free what r owns (head copy, snapshot reference). */
void req_clear(struct req *r);
