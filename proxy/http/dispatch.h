/*
 * dispatch.h - what happens to a parsed request, whatever protocol brought
 * it: routing (404, 421), the redirect to HTTPS, the body size limit, the
 * tenant's rate limits, a respond service, or an exchange with a backend.
 * The fronts (h1, h2) ask and then answer in their own framing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/http/req.h"

struct worker;

enum dispatch_result {
	DISPATCH_ANSWER,   /* portier answers itself with the fields of struct dispatch */
	DISPATCH_CONTINUE, /* routed; go on (dispatch_admit next) */
	DISPATCH_EXCHANGE, /* admitted: start an exchange with a backend */
};

struct dispatch {
	int status;
	const char *content_type;
	const char *body;
	size_t body_len;
	/* Extra header lines, "Name: value\r\n" each ("" when none). */
	char extra[2304];
	uint64_t max_body; /* 0 = unlimited; set once routed */
	char body_buf[128];
};

/* dispatch_route: route r (its host, path, headers) on the worker's table.
 * sni is the TLS name ("" or NULL on plain HTTP): it must name the same
 * tenant as the request's host. Takes r->snap and fills r->route. */
enum dispatch_result dispatch_route(struct worker *w, struct req *r, const char *sni,
				    struct dispatch *d);

/* dispatch_admit: the tenant's limits, then a respond service's answer, or
 * DISPATCH_EXCHANGE. A refused request took no token (429 in d). */
enum dispatch_result dispatch_admit(struct worker *w, struct req *r, struct dispatch *d);

/* dispatch_error: d becomes the short error answer for status. */
void dispatch_error(struct dispatch *d, const struct req *r, int status);

/* dispatch_header_next: the next "Name: value\r\n" line of extra from *pos;
 * false at the end. For fronts that need the fields one by one. */
bool dispatch_header_next(const char *extra, size_t *pos, const char **name, size_t *name_len,
			  const char **value, size_t *value_len);
