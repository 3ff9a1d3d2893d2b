/*
 * resolver.c - backend name resolution for one worker thread.
 *
 * A cache of host -> address, bounded by max_entries (least recently used
 * evicted first) and aged by ttl_ms on the monotonic clock, in front of
 * evdns_getaddrinfo (which honours /etc/hosts). Concurrent lookups of one
 * name share one DNS query: the entry keeps a list of waiters. Failures are
 * cached for at most a second so a dead name cannot flood the DNS server;
 * a refresh that fails for a transient reason (timeout, server failure)
 * keeps serving the last good address for that second instead of failing
 * requests to a backend that was working. IPv4 is preferred when a name has
 * both: container networks route IPv4 and most backends bind 0.0.0.0.
 *
 * Reentrancy and lifetime:
 *   - evdns may call back synchronously (literals, /etc/hosts) and always
 *     calls back once, even after evdns_getaddrinfo_cancel (with
 *     EVUTIL_EAI_CANCEL, usually from the loop). Its argument is therefore a
 *     small resolver_query that outlives the entry: dropping an entry
 *     orphans the query, and the callback frees it.
 *   - waiters are moved off the entry before they are called, so callbacks
 *     may look up, cancel other requests, or evict entries meanwhile.
 *   - resolver_free is not for use inside a resolver callback. After it,
 *     run the loop once (EVLOOP_NONBLOCK) before freeing the evdns_base so
 *     the cancelled queries can call back and be freed.
 */
#include "proxy/upstream/resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/util.h>

#include "proxy/core/clock.h"

#define RESOLVER_DEFAULT_MAX_ENTRIES 1024u
#define RESOLVER_NEGATIVE_TTL_MS 1000u
/* A query evdns has not answered after this long is failed by us: with no
 * nameserver configured evdns queues requests forever, and one stuck query
 * would otherwise hold its name (and everybody waiting on it) for good. */
#define RESOLVER_DEFAULT_QUERY_TIMEOUT_MS 10000u

enum resolver_state { RESOLVER_PENDING, RESOLVER_OK, RESOLVER_FAILED };

/* resolver_req: one waiter for an answer. pprev points at the link that
 * points at it (an entry's list or a dispatch in progress). */
struct resolver_req {
	struct resolver_req *next, **pprev;
	uint16_t port;
	resolver_cb cb;
	void *arg;
};

struct resolver_entry;

/* resolver_query: the argument of one evdns_getaddrinfo. entry is NULL once
 * nobody wants the answer; sync_done points at the starter's flag while
 * evdns_getaddrinfo has not returned yet. */
struct resolver_query {
	struct resolver *r;
	struct resolver_entry *entry;
	bool *sync_done;
};

struct resolver_entry {
	char *host;
	uint64_t hash;
	struct resolver_entry *hnext;            /* hash chain */
	struct resolver_entry *newer, *older;    /* recency list */
	enum resolver_state state;
	int err;                                 /* RESOLVER_FAILED: EVUTIL_EAI_* */
	const char *why;                         /* RESOLVER_FAILED: our reason, or NULL */
	struct sockaddr_storage addr;            /* port 0; valid when addrlen > 0 */
	socklen_t addrlen;
	int64_t expires_ms;
	struct resolver_query *query;            /* RESOLVER_PENDING */
	struct evdns_getaddrinfo_request *dns;   /* RESOLVER_PENDING, when asynchronous */
	struct event *deadline;                  /* armed while RESOLVER_PENDING */
	struct resolver_req *waiters;
};

struct resolver {
	struct event_base *base;
	struct evdns_base *dns;
	uint64_t ttl_ms, negative_ttl_ms, query_timeout_ms;
	unsigned max_entries, n_entries;
	struct resolver_entry **buckets;
	size_t n_buckets; /* a power of two */
	struct resolver_entry *newest, *oldest;
};

/* resolver_answer: a copy of an entry's result, safe to hand out while
 * callbacks change the cache. */
struct resolver_answer {
	int err;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char errmsg[320];
};

static uint64_t resolver_hash(const char *host)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const unsigned char *p = (const unsigned char *)host; *p; p++) {
		unsigned char c = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p + 32) : *p;
		h = (h ^ c) * 0x100000001b3ULL;
	}
	return h;
}

/* resolver_literal: host as an IPv4 or IPv6 address with port; false when
 * it is a name. */
static bool resolver_literal(const char *host, uint16_t port, struct sockaddr_storage *ss,
			     socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof *sin;
		return true;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof *sin6;
		return true;
	}
	return false;
}

static void resolver_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons(port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons(port);
}

/* resolver_deliver: call one waiter's callback with the answer. */
static void resolver_deliver(const struct resolver_answer *ans, uint16_t port, resolver_cb cb,
			     void *arg)
{
	if (ans->err) {
		cb(ans->err, ans->errmsg, NULL, 0, arg);
		return;
	}
	struct sockaddr_storage ss = ans->addr;
	resolver_set_port(&ss, port);
	cb(0, NULL, (const struct sockaddr *)&ss, ans->addrlen, arg);
}

static void resolver_fail_now(const char *host, const char *why, resolver_cb cb, void *arg)
{
	struct resolver_answer ans = {.err = EVUTIL_EAI_FAIL};
	snprintf(ans.errmsg, sizeof ans.errmsg, "cannot resolve %s: %s", host, why);
	resolver_deliver(&ans, 0, cb, arg);
}

static void resolver_answer_of(const struct resolver_entry *e, struct resolver_answer *ans)
{
	memset(ans, 0, sizeof *ans);
	if (e->state == RESOLVER_OK) {
		ans->addr = e->addr;
		ans->addrlen = e->addrlen;
		return;
	}
	ans->err = e->err ? e->err : EVUTIL_EAI_FAIL;
	const char *why = e->why ? e->why
		: e->err == EVUTIL_EAI_NONAME ? "name not found" : evutil_gai_strerror(e->err);
	snprintf(ans->errmsg, sizeof ans->errmsg, "cannot resolve %s: %s", e->host, why);
}

/* --- the recency list and the hash table --- */

static void resolver_lru_unlink(struct resolver *r, struct resolver_entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		r->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		r->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void resolver_lru_push(struct resolver *r, struct resolver_entry *e)
{
	e->older = r->newest;
	e->newer = NULL;
	if (r->newest)
		r->newest->newer = e;
	else
		r->oldest = e;
	r->newest = e;
}

static void resolver_touch(struct resolver *r, struct resolver_entry *e)
{
	if (r->newest == e)
		return;
	resolver_lru_unlink(r, e);
	resolver_lru_push(r, e);
}

static struct resolver_entry *resolver_find(struct resolver *r, const char *host, uint64_t hash)
{
	struct resolver_entry *e = r->buckets[hash & (r->n_buckets - 1)];
	for (; e; e = e->hnext)
		if (e->hash == hash && strcasecmp(e->host, host) == 0)
			return e;
	return NULL;
}

/* resolver_query_drop: nobody wants the entry's DNS answer any more. */
static void resolver_query_drop(struct resolver_entry *e)
{
	if (!e->query)
		return;
	struct evdns_getaddrinfo_request *dns = e->dns;
	/* Orphan first: the cancel may call back before it returns. */
	e->query->entry = NULL;
	e->query = NULL;
	e->dns = NULL;
	if (dns)
		evdns_getaddrinfo_cancel(dns);
}

/* resolver_entry_free: unhook e and free it with its waiters, calling no
 * callback. */
static void resolver_entry_free(struct resolver *r, struct resolver_entry *e)
{
	struct resolver_entry **pp = &r->buckets[e->hash & (r->n_buckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	resolver_lru_unlink(r, e);
	r->n_entries--;

	resolver_query_drop(e);
	if (e->deadline)
		event_free(e->deadline);
	while (e->waiters) {
		struct resolver_req *w = e->waiters;
		e->waiters = w->next;
		free(w);
	}
	free(e->host);
	free(e);
}

/* resolver_make_room: evict the least recently used entry nobody waits on
 * (an unanswered query of it is abandoned). False when every entry has
 * waiters: the cache stays bounded and the new lookup fails instead. */
static bool resolver_make_room(struct resolver *r)
{
	if (r->n_entries < r->max_entries)
		return true;
	for (struct resolver_entry *e = r->oldest; e; e = e->newer) {
		if (!e->waiters) {
			resolver_entry_free(r, e);
			return true;
		}
	}
	return false;
}

static struct resolver_entry *resolver_entry_new(struct resolver *r, const char *host,
						 uint64_t hash)
{
	struct resolver_entry *e = calloc(1, sizeof *e);
	if (!e || !(e->host = strdup(host))) {
		free(e);
		return NULL;
	}
	e->hash = hash;
	e->state = RESOLVER_PENDING;
	size_t b = hash & (r->n_buckets - 1);
	e->hnext = r->buckets[b];
	r->buckets[b] = e;
	resolver_lru_push(r, e);
	r->n_entries++;
	return e;
}

/* --- answers --- */

/* resolver_store: record a DNS answer in e (IPv4 preferred); why, when
 * not NULL, says why there is none. */
static void resolver_store(struct resolver *r, struct resolver_entry *e, int result,
			   const struct evutil_addrinfo *res, const char *why)
{
	int64_t now = clock_mono_ms();
	const struct evutil_addrinfo *pick = NULL;

	for (const struct evutil_addrinfo *ai = res; result == 0 && ai; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof e->addr)
			continue;
		if (!pick || (ai->ai_family == AF_INET && pick->ai_family != AF_INET))
			pick = ai;
	}
	if (pick) {
		memset(&e->addr, 0, sizeof e->addr);
		memcpy(&e->addr, pick->ai_addr, pick->ai_addrlen);
		resolver_set_port(&e->addr, 0);
		e->addrlen = (socklen_t)pick->ai_addrlen;
		e->state = RESOLVER_OK;
		e->err = 0;
		e->why = NULL;
		e->expires_ms = now + (int64_t)r->ttl_ms;
		return;
	}
	if (result == 0)
		result = EVUTIL_EAI_NONAME; /* an answer without a usable address */
	e->expires_ms = now + (int64_t)r->negative_ttl_ms;
	if (e->addrlen > 0 && result != EVUTIL_EAI_NONAME) {
		/* transient failure of a refresh: keep the last good address */
		e->state = RESOLVER_OK;
		return;
	}
	e->state = RESOLVER_FAILED;
	e->err = result;
	e->why = why;
}

/* resolver_dispatch: hand e's answer to every waiter. The answer is copied
 * and the waiters moved to a local list first, so callbacks may change the
 * cache (even evict e); each waiter is freed before its callback runs. */
static void resolver_dispatch(struct resolver_entry *e)
{
	struct resolver_answer ans;
	struct resolver_req *list = NULL;

	resolver_answer_of(e, &ans);
	/* Waiters are pushed at the head; reversed here, the first to ask is
	 * the first answered. */
	while (e->waiters) {
		struct resolver_req *w = e->waiters;
		e->waiters = w->next;
		w->next = list;
		list = w;
	}
	for (struct resolver_req **pp = &list; *pp; pp = &(*pp)->next)
		(*pp)->pprev = pp;
	while (list) {
		struct resolver_req *w = list;
		list = w->next;
		if (list)
			list->pprev = &list;
		uint16_t port = w->port;
		resolver_cb cb = w->cb;
		void *arg = w->arg;
		free(w);
		resolver_deliver(&ans, port, cb, arg);
	}
}

static void resolver_dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct resolver_query *q = arg;
	struct resolver *r = q->r;
	struct resolver_entry *e = q->entry;

	if (q->sync_done)
		*q->sync_done = true;
	free(q);
	if (e) {
		e->query = NULL;
		e->dns = NULL;
		evtimer_del(e->deadline);
		resolver_store(r, e, result, res, NULL);
	}
	if (res)
		evutil_freeaddrinfo(res);
	if (e)
		resolver_dispatch(e);
}

/* resolver_deadline_cb: evdns did not answer in time: give up on its
 * query and answer the waiters (with the last good address if any). */
static void resolver_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct resolver_entry *e = arg;
	struct resolver *r = e->query ? e->query->r : NULL;

	if (!r)
		return;
	resolver_query_drop(e);
	resolver_store(r, e, EVUTIL_EAI_AGAIN, NULL, "timed out");
	resolver_dispatch(e);
}

/* resolver_start: ask DNS for e->host. Returns true when the answer came
 * (and was dispatched) before this returned. */
static bool resolver_start(struct resolver *r, struct resolver_entry *e)
{
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					.ai_protocol = IPPROTO_TCP};
	bool sync_done = false;
	struct resolver_query *q = calloc(1, sizeof *q);

	if (!e->deadline)
		e->deadline = evtimer_new(r->base, resolver_deadline_cb, e);
	if (!q || !e->deadline) {
		free(q);
		e->state = RESOLVER_FAILED;
		e->err = EVUTIL_EAI_MEMORY;
		e->why = "out of memory";
		e->expires_ms = 0; /* retried by the next lookup */
		resolver_dispatch(e);
		return true;
	}
	struct timeval tv = {.tv_sec = (time_t)(r->query_timeout_ms / 1000),
			     .tv_usec = (suseconds_t)(r->query_timeout_ms % 1000) * 1000};
	evtimer_add(e->deadline, &tv);
	q->r = r;
	q->entry = e;
	q->sync_done = &sync_done;
	e->state = RESOLVER_PENDING;
	e->query = q;
	struct evdns_getaddrinfo_request *dns =
		evdns_getaddrinfo(r->dns, e->host, NULL, &hints, resolver_dns_cb, q);
	if (sync_done)
		return true; /* q is freed, e may be too */
	q->sync_done = NULL;
	e->dns = dns;
	return false;
}

struct resolver_req *resolver_lookup(struct resolver *r, const char *host, uint16_t port,
				     resolver_cb cb, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t sslen;

	if (!cb)
		return NULL;
	if (!r || !host || !*host) {
		resolver_fail_now(host ? host : "", "no name", cb, arg);
		return NULL;
	}
	if (resolver_literal(host, port, &ss, &sslen)) {
		cb(0, NULL, (const struct sockaddr *)&ss, sslen, arg);
		return NULL;
	}

	uint64_t hash = resolver_hash(host);
	struct resolver_entry *e = resolver_find(r, host, hash);
	if (e && e->state != RESOLVER_PENDING && clock_mono_ms() < e->expires_ms) {
		struct resolver_answer ans;
		resolver_touch(r, e);
		resolver_answer_of(e, &ans);
		resolver_deliver(&ans, port, cb, arg);
		return NULL;
	}
	if (!e) {
		if (!resolver_make_room(r)) {
			resolver_fail_now(host, "too many names being resolved", cb, arg);
			return NULL;
		}
		e = resolver_entry_new(r, host, hash);
		if (!e) {
			resolver_fail_now(host, "out of memory", cb, arg);
			return NULL;
		}
	}
	resolver_touch(r, e);

	struct resolver_req *w = calloc(1, sizeof *w);
	if (!w) {
		resolver_fail_now(host, "out of memory", cb, arg);
		return NULL;
	}
	w->port = port;
	w->cb = cb;
	w->arg = arg;
	w->next = e->waiters;
	if (w->next)
		w->next->pprev = &w->next;
	w->pprev = &e->waiters;
	e->waiters = w;

	/* A pending entry already has its query: join it. */
	if (e->state == RESOLVER_PENDING && e->query)
		return w;
	return resolver_start(r, e) ? NULL : w;
}

void resolver_cancel(struct resolver_req *req)
{
	if (!req)
		return;
	/* The query goes on without this waiter: its answer still fills the
	 * cache for the next request. */
	*req->pprev = req->next;
	if (req->next)
		req->next->pprev = req->pprev;
	free(req);
}

struct resolver *resolver_new(struct event_base *base, struct evdns_base *dns, uint64_t ttl_ms,
			      unsigned max_entries)
{
	if (!base || !dns)
		return NULL;
	struct resolver *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->base = base;
	r->dns = dns;
	r->ttl_ms = ttl_ms;
	r->negative_ttl_ms = ttl_ms < RESOLVER_NEGATIVE_TTL_MS ? ttl_ms : RESOLVER_NEGATIVE_TTL_MS;
	r->max_entries = max_entries ? max_entries : RESOLVER_DEFAULT_MAX_ENTRIES;
	r->query_timeout_ms = RESOLVER_DEFAULT_QUERY_TIMEOUT_MS;
	r->n_buckets = 16;
	while (r->n_buckets < r->max_entries && r->n_buckets < ((size_t)1 << 20))
		r->n_buckets <<= 1;
	r->buckets = calloc(r->n_buckets, sizeof *r->buckets);
	if (!r->buckets) {
		free(r);
		return NULL;
	}
	return r;
}

void resolver_free(struct resolver *r)
{
	if (!r)
		return;
	while (r->newest)
		resolver_entry_free(r, r->newest);
	free(r->buckets);
	free(r);
}

void resolver_set_query_timeout(struct resolver *r, uint64_t ms)
{
	if (r && ms > 0)
		r->query_timeout_ms = ms;
}
