/*
 * problem.h - ACME error documents (RFC 7807 problem details with the
 * RFC 8555 section 6.7 types) reduced to what the client acts on: a short
 * classification, the HTTP status, and a bounded single-line message safe
 * to show operators and write to logs. Fixed-size, nothing to free.
 */
#pragma once

#include <stddef.h>

/* The error types the order machine treats differently; anything else is
 * PROBLEM_OTHER. Matched exactly on "urn:ietf:params:acme:error:" + name. */
enum problem_kind {
	PROBLEM_OTHER = 0,
	PROBLEM_BAD_NONCE,       /* badNonce: retry once with the fresh nonce */
	PROBLEM_RATE_LIMITED,    /* rateLimited: honour Retry-After */
	PROBLEM_UNAUTHORIZED,    /* unauthorized */
	PROBLEM_CONNECTION,      /* connection: the CA could not reach us */
	PROBLEM_DNS,             /* dns */
	PROBLEM_MALFORMED,       /* malformed */
	PROBLEM_SERVER_INTERNAL, /* serverInternal */
	PROBLEM_ACCOUNT_MISSING,  /* accountDoesNotExist: register again (the CA forgot us) */
};

/* Message capacity including the NUL; longer text is cut and ends "...". */
#define PROBLEM_MSG_SIZE 256
/* Subproblems kept (RFC 8555 6.7.1); the rest are only counted. */
#define PROBLEM_SUB_MAX 4

struct problem_sub {
	enum problem_kind kind;
	char message[PROBLEM_MSG_SIZE]; /* "TYPE: DETAIL (IDENTIFIER)" */
};

struct problem {
	enum problem_kind kind;
	int status;                     /* the document's, else the HTTP status */
	char message[PROBLEM_MSG_SIZE]; /* "TYPE: DETAIL" */
	unsigned nsub;                  /* entries used in sub[] */
	unsigned nsub_total;            /* subproblems in the document */
	struct problem_sub sub[PROBLEM_SUB_MAX];
};

/* problem_parse: fill p from the response body[0..len) and the response's
 * HTTP status. TYPE is the name after the ACME prefix, or the whole type
 * URI for other types ("about:blank" when absent); control characters are
 * dropped and the text is cut at a UTF-8 boundary. For a "compound" problem
 * the kind is that of the first subproblem. Returns 0, or -1 when body is
 * not a JSON object; p then still holds kind PROBLEM_OTHER and a message
 * saying so, so callers can report it as is. */
int problem_parse(const char *body, size_t len, int http_status, struct problem *p);

/* problem_kind_name: a static name for logs ("badNonce", ..., "other"). */
const char *problem_kind_name(enum problem_kind kind);
