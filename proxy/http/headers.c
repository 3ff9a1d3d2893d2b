#include "proxy/http/headers.h"

#include <string.h>

#include "proxy/http/head_out.h"

/* What a field name means to the rewriting below. Names are compared by
 * length first: most fields are none of these and cost an integer test each. */
enum header_kind {
	HK_OTHER,
	HK_HOP,        /* hop-by-hop (RFC 9110 7.6.1), never forwarded */
	HK_CONNECTION, /* hop-by-hop, and lists more of them */
	HK_FORWARDING, /* replaced or appended to by portier */
	HK_LENGTH,     /* Content-Length: portier frames the body itself */
	HK_EXPECT,     /* answered by portier */
	HK_HOST,       /* never removed through Connection */
};

static const struct {
	const char *name;
	size_t len;
	enum header_kind kind;
} header_kinds[] = {
#define HK(lit, k) {lit, sizeof(lit) - 1, k}
	HK("connection", HK_CONNECTION),     HK("keep-alive", HK_HOP),
	HK("proxy-connection", HK_HOP),      HK("te", HK_HOP),
	HK("trailer", HK_HOP),               HK("transfer-encoding", HK_HOP),
	HK("upgrade", HK_HOP),               HK("proxy-authenticate", HK_HOP),
	HK("proxy-authorization", HK_HOP),   HK("x-forwarded-for", HK_FORWARDING),
	HK("x-forwarded-proto", HK_FORWARDING), HK("x-forwarded-host", HK_FORWARDING),
	HK("x-forwarded-port", HK_FORWARDING), HK("x-real-ip", HK_FORWARDING),
	HK("x-request-id", HK_FORWARDING),   HK("forwarded", HK_FORWARDING),
	HK("content-length", HK_LENGTH),     HK("expect", HK_EXPECT),
	HK("host", HK_HOST),
#undef HK
};

static enum header_kind header_kind(const struct h1_header *h)
{
	for (size_t k = 0; k < sizeof header_kinds / sizeof header_kinds[0]; k++)
		if (h->name_len == header_kinds[k].len &&
		    h1_ieq(h->name, header_kinds[k].name, h->name_len))
			return header_kinds[k].kind;
	return HK_OTHER;
}

static bool header_is_connection(const struct h1_header *h)
{
	return h1_token_eq(h->name, h->name_len, "connection");
}

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

/* hop_by_hop: as headers_is_hop_by_hop, h's kind known. */
static bool hop_by_hop(const struct h1_header *hs, size_t n, const struct h1_header *h,
		       enum header_kind kind)
{
	if (kind == HK_HOP || kind == HK_CONNECTION)
		return true;
	/* Connection may not remove what the message needs end to end. */
	if (kind == HK_HOST)
		return false;
	for (size_t j = 0; j < n; j++)
		if (header_is_connection(&hs[j]) &&
		    headers_list_has(hs[j].value, hs[j].value_len, h->name, h->name_len))
			return true;
	return false;
}

bool headers_is_hop_by_hop(const struct h1_header *hs, size_t n, size_t i)
{
	return hop_by_hop(hs, n, &hs[i], header_kind(&hs[i]));
}

#define CONNECTION_FIELDS_MAX 8 /* more in one message: the general path */

size_t headers_end_to_end(const struct h1_header *hs, size_t n, bool keep_length,
			  struct h1_header *keep)
{
	const struct h1_header *conn[CONNECTION_FIELDS_MAX];
	size_t nc = 0;
	bool many = false;
	for (size_t j = 0; j < n; j++)
		if (header_is_connection(&hs[j])) {
			if (nc < CONNECTION_FIELDS_MAX)
				conn[nc++] = &hs[j];
			else
				many = true;
		}
	size_t nk = 0;
	for (size_t i = 0; i < n; i++) {
		const struct h1_header *h = &hs[i];
		enum header_kind kind = header_kind(h);
		if (kind == HK_HOP || kind == HK_CONNECTION || (kind == HK_LENGTH && !keep_length))
			continue;
		bool listed = false;
		if (many)
			listed = hop_by_hop(hs, n, h, kind);
		else if (kind != HK_HOST)
			for (size_t j = 0; j < nc && !listed; j++)
				listed = headers_list_has(conn[j]->value, conn[j]->value_len, h->name,
							  h->name_len);
		if (!listed)
			keep[nk++] = *h;
	}
	return nk;
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

/* headers_write_forwarding: X-Forwarded-*, X-Real-IP, X-Request-Id. From a
 * trusted proxy the client's values are kept (XFF appended to); from anyone
 * else they are replaced so a client cannot forge its address. */
static void headers_write_forwarding(struct head_out *h, const struct req *r)
{
	const char *v;
	size_t len;
	HEAD_OUT_LIT(h, "X-Forwarded-For: ");
	/* From a trusted proxy every hop it reports is kept, over all its XFF lines. */
	for (size_t i = 0; r->client_trusted && req_header(r, "x-forwarded-for", i, &v, &len); i++) {
		head_out_add(h, v, len);
		HEAD_OUT_LIT(h, ", ");
	}
	head_out_str(h, r->client_ip);
	HEAD_OUT_LIT(h, "\r\n");

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
			head_out_field(h, keep[i].header, strlen(keep[i].header), v, len);
			continue;
		}
		switch (i) {
		case 0:
			HEAD_OUT_LIT(h, "X-Forwarded-Proto: ");
			head_out_str(h, r->tls ? "https\r\n" : "http\r\n");
			break;
		case 1:
			HEAD_OUT_LIT(h, "X-Forwarded-Host: ");
			if (r->authority)
				head_out_add(h, r->authority, r->authority_len);
			else
				head_out_str(h, r->host);
			HEAD_OUT_LIT(h, "\r\n");
			break;
		case 2:
			HEAD_OUT_LIT(h, "X-Forwarded-Port: ");
			head_out_uint(h, r->local_port, 10);
			HEAD_OUT_LIT(h, "\r\n");
			break;
		default:
			HEAD_OUT_LIT(h, "X-Real-IP: ");
			head_out_str(h, r->client_ip);
			HEAD_OUT_LIT(h, "\r\n");
			break;
		}
	}
	HEAD_OUT_LIT(h, "X-Request-Id: ");
	head_out_str(h, r->id);
	HEAD_OUT_LIT(h, "\r\n");
}

void headers_compose_upstream(struct head_out *h, const struct req *r, int64_t body_len,
			      bool chunked)
{
	const char *path;
	size_t path_len = headers_strip_prefix(r->path, r->path_len, r->route.route->strip_prefix,
					       &path);
	head_out_add(h, r->method, r->method_len);
	HEAD_OUT_LIT(h, " ");
	head_out_add(h, path, path_len);
	if (r->query) {
		HEAD_OUT_LIT(h, "?");
		head_out_add(h, r->query, r->query_len);
	}
	HEAD_OUT_LIT(h, " HTTP/1.1\r\n");

	for (size_t i = 0; i < r->n_headers; i++) {
		const struct h1_header *f = &r->headers[i];
		enum header_kind kind = header_kind(f);
		if (kind == HK_FORWARDING || kind == HK_LENGTH || kind == HK_EXPECT ||
		    hop_by_hop(r->headers, r->n_headers, f, kind))
			continue;
		head_out_field(h, f->name, f->name_len, f->value, f->value_len);
	}
	if (!r->authority) { /* HTTP/1.0 without Host: the backend needs one */
		HEAD_OUT_LIT(h, "Host: ");
		head_out_str(h, r->host);
		HEAD_OUT_LIT(h, "\r\n");
	}
	headers_write_forwarding(h, r);
	const char *up;
	size_t up_len;
	if (r->upgrade && req_header(r, "upgrade", 0, &up, &up_len)) {
		HEAD_OUT_LIT(h, "Connection: upgrade\r\n");
		head_out_field(h, "Upgrade", 7, up, up_len);
	}
	if (chunked) {
		HEAD_OUT_LIT(h, "Transfer-Encoding: chunked\r\n");
	} else if (body_len >= 0) {
		HEAD_OUT_LIT(h, "Content-Length: ");
		head_out_uint(h, (uint64_t)body_len, 10);
		HEAD_OUT_LIT(h, "\r\n");
	}
	HEAD_OUT_LIT(h, "\r\n");
}
