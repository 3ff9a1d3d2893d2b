#include "proxy/http/headers.h"

#include <string.h>

static const char *const headers_hop[] = {
	"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
	"upgrade", "proxy-authenticate", "proxy-authorization", NULL,
};

/* headers_list_has: whether comma-separated token list v contains tok. */
static bool headers_list_has(const char *v, size_t len, const char *tok, size_t tok_len)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t start = i;
		while (i < len && v[i] != ',')
			i++;
		size_t end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end - start == tok_len && strncasecmp(v + start, tok, tok_len) == 0)
			return true;
	}
	return false;
}

bool headers_is_hop_by_hop(const struct h1_header *hs, size_t n, size_t i)
{
	const struct h1_header *h = &hs[i];
	for (const char *const *p = headers_hop; *p; p++)
		if (h1_token_eq(h->name, h->name_len, *p))
			return true;
	/* Connection may not remove what the message needs end to end. */
	if (h1_token_eq(h->name, h->name_len, "host"))
		return false;
	for (size_t j = 0; j < n; j++)
		if (h1_token_eq(hs[j].name, hs[j].name_len, "connection") &&
		    headers_list_has(hs[j].value, hs[j].value_len, h->name, h->name_len))
			return true;
	return false;
}

size_t headers_strip_prefix(const char *path, size_t len, const char *prefix, const char **out)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	while (plen > 1 && prefix[plen - 1] == '/')
		plen--; /* "/api/" strips like "/api" */
	*out = path;
	if (plen <= 1 || len < plen || memcmp(path, prefix, plen) != 0)
		return len; /* no prefix, or "/": every path keeps its leading slash */
	if (len == plen) {
		*out = "/";
		return 1;
	}
	if (path[plen] != '/' && prefix[plen - 1] != '/')
		return len; /* "/apiary" is not under "/api" */
	*out = path + plen;
	return len - plen;
}

static bool headers_is_forwarding(const struct h1_header *h)
{
	static const char *const names[] = {
		"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
		"x-forwarded-port", "x-real-ip", "x-request-id", "forwarded", NULL,
	};
	for (const char *const *p = names; *p; p++)
		if (h1_token_eq(h->name, h->name_len, *p))
			return true;
	return false;
}

/* headers_write_forwarding: X-Forwarded-*, X-Real-IP, X-Request-Id. From a
 * trusted proxy the client's values are kept (XFF appended to); from anyone
 * else they are replaced so a client cannot forge its address. */
static void headers_write_forwarding(struct evbuffer *out, const struct req *r)
{
	const char *v;
	size_t len;
	evbuffer_add(out, "X-Forwarded-For: ", 17);
	/* From a trusted proxy every hop it reports is kept, over all its XFF lines. */
	for (size_t i = 0; r->client_trusted && req_header(r, "x-forwarded-for", i, &v, &len); i++) {
		evbuffer_add(out, v, len);
		evbuffer_add(out, ", ", 2);
	}
	evbuffer_add_printf(out, "%s\r\n", r->client_ip);

	static const struct {
		const char *name, *header;
	} keep[] = {
		{"x-forwarded-proto", "X-Forwarded-Proto"},
		{"x-forwarded-host", "X-Forwarded-Host"},
		{"x-forwarded-port", "X-Forwarded-Port"},
		{"x-real-ip", "X-Real-IP"},
	};
	for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
		if (r->client_trusted && req_header(r, keep[i].name, 0, &v, &len)) {
			evbuffer_add_printf(out, "%s: %.*s\r\n", keep[i].header, (int)len, v);
			continue;
		}
		switch (i) {
		case 0:
			evbuffer_add_printf(out, "X-Forwarded-Proto: %s\r\n", r->tls ? "https" : "http");
			break;
		case 1:
			if (r->authority)
				evbuffer_add_printf(out, "X-Forwarded-Host: %.*s\r\n",
						    (int)r->authority_len, r->authority);
			else
				evbuffer_add_printf(out, "X-Forwarded-Host: %s\r\n", r->host);
			break;
		case 2:
			evbuffer_add_printf(out, "X-Forwarded-Port: %u\r\n", r->local_port);
			break;
		default:
			evbuffer_add_printf(out, "X-Real-IP: %s\r\n", r->client_ip);
			break;
		}
	}
	evbuffer_add_printf(out, "X-Request-Id: %s\r\n", r->id);
}

void headers_write_upstream(struct evbuffer *out, const struct req *r, int64_t body_len,
			    bool chunked)
{
	const char *path;
	size_t path_len = headers_strip_prefix(r->path, r->path_len, r->route.route->strip_prefix,
					       &path);
	evbuffer_add(out, r->method, r->method_len);
	evbuffer_add(out, " ", 1);
	evbuffer_add(out, path, path_len);
	if (r->query) {
		evbuffer_add(out, "?", 1);
		evbuffer_add(out, r->query, r->query_len);
	}
	evbuffer_add(out, " HTTP/1.1\r\n", 11);

	for (size_t i = 0; i < r->n_headers; i++) {
		const struct h1_header *h = &r->headers[i];
		if (headers_is_hop_by_hop(r->headers, r->n_headers, i) || headers_is_forwarding(h) ||
		    h1_token_eq(h->name, h->name_len, "content-length") ||
		    h1_token_eq(h->name, h->name_len, "expect"))
			continue;
		evbuffer_add(out, h->name, h->name_len);
		evbuffer_add(out, ": ", 2);
		evbuffer_add(out, h->value, h->value_len);
		evbuffer_add(out, "\r\n", 2);
	}
	if (!r->authority) /* HTTP/1.0 without Host: the backend needs one */
		evbuffer_add_printf(out, "Host: %s\r\n", r->host);
	headers_write_forwarding(out, r);
	const char *up;
	size_t up_len;
	if (r->upgrade && req_header(r, "upgrade", 0, &up, &up_len))
		evbuffer_add_printf(out, "Connection: upgrade\r\nUpgrade: %.*s\r\n", (int)up_len, up);
	if (chunked)
		evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
	else if (body_len >= 0)
		evbuffer_add_printf(out, "Content-Length: %lld\r\n", (long long)body_len);
	evbuffer_add(out, "\r\n", 2);
}
