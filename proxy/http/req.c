#include "proxy/http/req.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "proxy/core/clock.h"
#include "proxy/limit/limiter.h"

bool req_header(const struct req *r, const char *name, size_t idx, const char **val,
		size_t *len)
{
	for (size_t i = 0; i < r->n_headers; i++) {
		const struct h1_header *h = &r->headers[i];
		if (!h1_token_eq(h->name, h->name_len, name))
			continue;
		if (idx-- == 0) {
			*val = h->value;
			*len = h->value_len;
			return true;
		}
	}
	return false;
}

static bool req_rule_header_get(const void *ud, const char *name, size_t name_len, size_t idx,
				const char **val, size_t *val_len)
{
	const struct req *r = ud;
	for (size_t i = 0; i < r->n_headers; i++) {
		const struct h1_header *h = &r->headers[i];
		if (h->name_len != name_len || strncasecmp(h->name, name, name_len) != 0)
			continue;
		if (idx-- == 0) {
			*val = h->value;
			*val_len = h->value_len;
			return true;
		}
	}
	return false;
}

void req_rule_view(const struct req *r, struct rule_req *out)
{
	out->host = r->host;
	out->host_len = r->host_len;
	out->path = r->path;
	out->path_len = r->path_len;
	out->method = r->method;
	out->method_len = r->method_len;
	out->client = (const struct sockaddr *)&r->client;
	out->header_get = req_rule_header_get;
	out->header_ud = r;
}

/* Per-thread buffer of random bytes so ids cost one RAND_bytes per 64 requests. */
static _Thread_local unsigned char req_rand[512];
static _Thread_local size_t req_rand_used = sizeof req_rand;

static bool req_id_sane(const char *v, size_t len)
{
	if (len == 0 || len > 36)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = v[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

void req_make_id(struct req *r)
{
	const char *v;
	size_t len;
	if (req_header(r, "x-request-id", 0, &v, &len) && req_id_sane(v, len)) {
		memcpy(r->id, v, len);
		r->id[len] = '\0';
		return;
	}
	if (req_rand_used + 16 > sizeof req_rand) {
		if (RAND_bytes(req_rand, sizeof req_rand) != 1) {
			/* No randomness: fall back to time and a counter, still unique. */
			static _Thread_local uint64_t seq;
			uint64_t t[2] = {(uint64_t)clock_wall_ms(), ++seq ^ (uint64_t)(uintptr_t)&seq};
			for (size_t i = 0; i < sizeof req_rand; i++)
				req_rand[i] = ((const unsigned char *)t)[i % sizeof t] ^ (unsigned char)i;
		}
		req_rand_used = 0;
	}
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < 16; i++) {
		unsigned char b = req_rand[req_rand_used + i];
		r->id[2 * i] = hex[b >> 4];
		r->id[2 * i + 1] = hex[b & 15];
	}
	r->id[32] = '\0';
	req_rand_used += 16;
}

void req_set_peer(struct req *r, const struct conn_peer *p)
{
	memset(&r->client, 0, sizeof r->client);
	memcpy(&r->client, &p->addr, sizeof p->addr);
	memcpy(r->client_ip, p->ip, sizeof r->client_ip);
	r->local_port = p->local_port;
	r->tls = p->tls;
	r->tls_version = p->tls_version;
	r->client_trusted = p->trusted;
}

void req_clear(struct req *r)
{
	if (r->inflight_held && r->route.tenant)
		limits_release(r->route.tenant);
	r->inflight_held = false;
	if (!r->borrowed) {
		free(r->head_buf);
		free(r->headers);
	}
	r->head_buf = NULL;
	r->headers = NULL;
	r->borrowed = false;
	snapshot_release(r->snap);
	r->snap = NULL;
}

void req_account(const struct req *r)
{
	struct cfg_tenant_stats *st = r->route.tenant ? r->route.tenant->stats : NULL;
	if (!st)
		return;
	atomic_fetch_add_explicit(&st->requests, 1, memory_order_relaxed);
	unsigned cls = r->status >= 100 && r->status < 600 ? (unsigned)r->status / 100 : 0;
	atomic_fetch_add_explicit(&st->by_class[cls], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->bytes_in, r->bytes_in, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->bytes_out, r->bytes_out, memory_order_relaxed);
}
