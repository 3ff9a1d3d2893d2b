/*
 * client.c - portierctl's side of the control socket: one blocking HTTP/1.1
 * exchange per command (request out, answer parsed with libhttp-parser and
 * jansson, both bounded in size and time), and the helpers that turn the
 * answer into output and an exit code.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "config/portierctl/cmd.h"
#include "config/portierctl/ctl.h"
#include "config/portierctl/table.h"

/* Each send and receive gives up after CTL_IO_TIMEOUT_S; the whole exchange
 * after CTL_DEADLINE_S, so an edge trickling bytes cannot hold us forever. */
#define CTL_IO_TIMEOUT_S 10
#define CTL_DEADLINE_S 30
/* Room for the status line and headers on top of the body limit. */
#define CTL_MAX_HEAD (256u * 1024)

#define CTL_HINT "(is it running? set -s or PORTIER_SOCKET)"

/* The answer as it is parsed. */
struct ctl_answer {
	char *body;
	size_t len;
	size_t cap;
	int status;
	bool complete;
	bool too_big;
	bool nomem;
};

static int ctl_on_headers_complete(http_parser *p)
{
	struct ctl_answer *a = p->data;

	/* content_length is ULLONG_MAX when the header is absent. */
	if (p->content_length != UINT64_MAX && p->content_length > CTL_MAX_ANSWER) {
		a->too_big = true;
		return -1;
	}
	return 0;
}

static int ctl_on_body(http_parser *p, const char *at, size_t len)
{
	struct ctl_answer *a = p->data;

	if (len > CTL_MAX_ANSWER - a->len) {
		a->too_big = true;
		return -1;
	}
	if (a->len + len > a->cap) {
		size_t cap = a->cap ? a->cap : 4096;
		char *grown;

		while (cap < a->len + len)
			cap *= 2;
		if (cap > CTL_MAX_ANSWER)
			cap = CTL_MAX_ANSWER;
		if (!(grown = realloc(a->body, cap))) {
			a->nomem = true;
			return -1;
		}
		a->body = grown;
		a->cap = cap;
	}
	memcpy(a->body + a->len, at, len);
	a->len += len;
	return 0;
}

static int ctl_on_message_complete(http_parser *p)
{
	struct ctl_answer *a = p->data;

	if (p->status_code / 100 == 1) {
		/* An interim answer: the real one follows. */
		a->len = 0;
		return 0;
	}
	a->status = (int)p->status_code;
	a->complete = true;
	http_parser_pause(p, 1);
	return 0;
}

/* ctl_now: monotonic seconds. */
static double ctl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ctl_connect: a connected socket with both timeouts set, or -1 with err. */
static int ctl_connect(const char *sock, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = CTL_IO_TIMEOUT_S};
	size_t n = strlen(sock);
	int fd, rc;

	if (n == 0 || n >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "cannot reach portier at %s: socket path %s", sock,
			 n == 0 ? "is empty" : "is too long");
		return -1;
	}
	memcpy(sun.sun_path, sock, n + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		snprintf(err, errlen, "cannot set socket timeouts: %s", strerror(errno));
		close(fd);
		return -1;
	}
	do
		rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		if (errno == EAGAIN || errno == EINPROGRESS)
			snprintf(err, errlen,
				 "cannot reach portier at %s: no connection within %d s " CTL_HINT,
				 sock, CTL_IO_TIMEOUT_S);
		else
			snprintf(err, errlen, "cannot reach portier at %s: %s " CTL_HINT, sock,
				 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* ctl_send_all: 0, or the errno that stopped the write (EAGAIN: timeout). */
static int ctl_send_all(int fd, const char *buf, size_t len, double deadline)
{
	while (len > 0) {
		ssize_t n;

		if (ctl_now() > deadline)
			return EAGAIN;
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? EAGAIN : errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ctl_receive: read and parse the answer into a. 0, or -1 with err. */
static int ctl_receive(int fd, const char *sock, struct ctl_answer *a, double deadline,
		       char *err, size_t errlen)
{
	static const http_parser_settings settings = {
		.on_headers_complete = ctl_on_headers_complete,
		.on_body = ctl_on_body,
		.on_message_complete = ctl_on_message_complete,
	};
	http_parser p;
	char buf[16384];
	size_t total = 0;

	http_parser_init(&p, HTTP_RESPONSE);
	p.data = a;
	for (;;) {
		ssize_t n;

		if (ctl_now() > deadline) {
			snprintf(err, errlen, "portier at %s did not answer within %d s", sock,
				 CTL_DEADLINE_S);
			return -1;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				snprintf(err, errlen, "portier at %s did not answer within %d s",
					 sock, CTL_IO_TIMEOUT_S);
			else
				snprintf(err, errlen, "lost the connection to portier at %s: %s",
					 sock, strerror(errno));
			return -1;
		}
		total += (size_t)n;
		if (total > CTL_MAX_ANSWER + CTL_MAX_HEAD) {
			a->too_big = true;
		} else {
			/* n == 0 tells the parser about the end of the stream. */
			http_parser_execute(&p, &settings, buf, (size_t)n);
			if (a->complete)
				return 0;
		}
		if (a->too_big) {
			snprintf(err, errlen, "the answer of portier at %s is larger than %u MiB",
				 sock, CTL_MAX_ANSWER / (1024 * 1024));
			return -1;
		}
		if (a->nomem) {
			snprintf(err, errlen, "out of memory reading the answer of portier at %s",
				 sock);
			return -1;
		}
		if (HTTP_PARSER_ERRNO(&p) != HPE_OK) {
			snprintf(err, errlen, "portier at %s sent a malformed answer: %s", sock,
				 http_errno_description(HTTP_PARSER_ERRNO(&p)));
			return -1;
		}
		if (n == 0) {
			snprintf(err, errlen,
				 "portier at %s closed the connection before answering", sock);
			return -1;
		}
	}
}

/* ctl_request_head: the request line and headers, or NULL on ENOMEM. */
static char *ctl_request_head(const char *method, const char *path, size_t body_len)
{
	static const char fmt[] = "%s %s HTTP/1.1\r\nHost: portier\r\n"
				  "Content-Type: application/json\r\nContent-Length: %zu\r\n"
				  "Connection: close\r\n\r\n";
	int n = snprintf(NULL, 0, fmt, method, path, body_len);
	char *head;

	if (n < 0 || !(head = malloc((size_t)n + 1)))
		return NULL;
	snprintf(head, (size_t)n + 1, fmt, method, path, body_len);
	return head;
}

/* ctl_token_ok: method and path must not break the request line. */
static bool ctl_token_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if ((unsigned char)*s <= ' ' || (unsigned char)*s == 0x7f)
			return false;
	}
	return true;
}

int ctl_call(const struct ctl *c, const char *method, const char *path, json_t *body,
	     json_t **out, char *err, size_t errlen)
{
	struct ctl_answer a = {0};
	double deadline = ctl_now() + CTL_DEADLINE_S;
	char *text = NULL, *head = NULL;
	size_t text_len = 0;
	int fd = -1, rc = -1, send_err;

	if (out)
		*out = NULL;
	if (!ctl_token_ok(method) || !ctl_token_ok(path)) {
		snprintf(err, errlen, "invalid request target %s", path);
		return -1;
	}
	if (body) {
		if (!(text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY))) {
			snprintf(err, errlen, "cannot encode the request as JSON");
			return -1;
		}
		text_len = strlen(text);
	}
	if (!(head = ctl_request_head(method, path, text_len))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((fd = ctl_connect(c->socket, err, errlen)) < 0)
		goto out;
	send_err = ctl_send_all(fd, head, strlen(head), deadline);
	if (send_err == 0 && text)
		send_err = ctl_send_all(fd, text, text_len, deadline);
	if (send_err == EAGAIN) {
		snprintf(err, errlen, "portier at %s did not take the request within %d s",
			 c->socket, CTL_IO_TIMEOUT_S);
		goto out;
	}
	/* After EPIPE or ECONNRESET the edge may still have answered (a body
	 * it refuses, say): read that answer before giving up. */
	if (ctl_receive(fd, c->socket, &a, deadline, err, errlen) < 0) {
		if (send_err != 0)
			snprintf(err, errlen, "lost the connection to portier at %s: %s",
				 c->socket, strerror(send_err));
		goto out;
	}
	if (out && a.len > 0)
		*out = json_loadb(a.body, a.len, 0, NULL);
	rc = a.status;
out:
	if (fd >= 0)
		close(fd);
	free(a.body);
	free(head);
	free(text);
	return rc;
}

int ctl_report_error_as(const char *prefix, int status, const json_t *answer)
{
	const json_t *error = json_is_object(answer) ? json_object_get(answer, "error") : NULL;
	const json_t *field = json_is_object(answer) ? json_object_get(answer, "field") : NULL;

	fflush(stdout);
	table_put(stderr, prefix);
	fputs(": ", stderr);
	if (json_is_string(field) && json_string_length(field) > 0) {
		table_put(stderr, json_string_value(field));
		fputs(": ", stderr);
	}
	if (json_is_string(error) && json_string_length(error) > 0)
		table_put(stderr, json_string_value(error));
	else
		fprintf(stderr, "the edge answered HTTP %d without an error message", status);
	fputc('\n', stderr);
	return CTL_REJECTED;
}

int ctl_report_error(int status, json_t *answer)
{
	return ctl_report_error_as("portier", status, answer);
}

void ctl_print_json(const json_t *answer)
{
	if (!answer)
		return;
	json_dumpf(answer, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
	fputc('\n', stdout);
}

int ctl_request(const struct ctl *c, const char *method, const char *path, json_t *body,
		int *status, json_t **out)
{
	char err[1024];
	json_t *answer = NULL;
	int st = ctl_call(c, method, path, body, &answer, err, sizeof(err));

	*out = NULL;
	if (status)
		*status = st < 0 ? 0 : st;
	if (st < 0) {
		fflush(stdout);
		fprintf(stderr, "portierctl: ");
		table_put(stderr, err);
		fputc('\n', stderr);
		return CTL_UNREACHABLE;
	}
	if (st < 200 || st > 299) {
		if (c->json && answer)
			ctl_print_json(answer);
		else
			ctl_report_error(st, answer);
		json_decref(answer);
		return CTL_REJECTED;
	}
	if (c->json)
		ctl_print_json(answer);
	*out = answer;
	return CTL_OK;
}

int ctl_path_escape(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || strchr("-._~*", *p);

		if (o + (plain ? 1 : 3) >= outlen)
			return -1;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

const char *ctl_json_text(const json_t *v, char *buf, size_t buflen)
{
	if (!v)
		return "-";
	switch (json_typeof(v)) {
	case JSON_STRING:
		return json_string_value(v);
	case JSON_INTEGER:
		snprintf(buf, buflen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	case JSON_REAL:
		snprintf(buf, buflen, "%g", json_real_value(v));
		return buf;
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	default:
		return "-";
	}
}
