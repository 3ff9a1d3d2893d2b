/*
 * resolver.h - backend name resolution for one worker: asynchronous (evdns,
 * /etc/hosts honoured), cached with a bounded size and a TTL so container
 * names are re-resolved when they move. IP literals never hit DNS.
 */
#pragma once

#include <stdint.h>
#include <sys/socket.h>

#include <event2/dns.h>
#include <event2/event.h>

struct resolver;
struct resolver_req;

/* resolver_cb: err is 0 and sa the address on success, else err != 0 and a
 * message (sa NULL). Never called after resolver_cancel. */
typedef void (*resolver_cb)(int err, const char *errmsg, const struct sockaddr *sa,
			    socklen_t salen, void *arg);

/* resolver_new: ttl_ms is how long an answer is reused; max_entries bounds the cache. */
struct resolver *resolver_new(struct event_base *base, struct evdns_base *dns, uint64_t ttl_ms,
			      unsigned max_entries);
void resolver_free(struct resolver *r);

/* resolver_lookup: resolve host:port. When the answer is cached or host is a
 * literal, cb runs before this returns and NULL is returned; otherwise the
 * returned request may be cancelled until cb runs. */
struct resolver_req *resolver_lookup(struct resolver *r, const char *host, uint16_t port,
				     resolver_cb cb, void *arg);
void resolver_cancel(struct resolver_req *req);

/* resolver_set_query_timeout: fail a lookup DNS has not answered in ms
 * (default 10 s; the last good address is kept on a refresh). evdns alone
 * never answers when no nameserver is configured. */
void resolver_set_query_timeout(struct resolver *r, uint64_t ms);
