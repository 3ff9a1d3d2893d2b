#include "proxy/upstream/pool.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/core/loop_timeout.h"

#define POOL_BUCKETS_MIN 16

/* One idle connection. The struct is also its callbacks' argument, and it
 * is kept on the pool's spare list when the connection leaves: a request
 * puts and takes one, and malloc'ing both ways was measurable. */
struct pool_idle {
	struct pool_idle *next, *prev; /* in its key's list, newest first */
	struct pool_key *key;
	struct pool *p;
	struct bufferevent *bev;
};

struct pool_key {
	struct pool_key *next; /* in its hash bucket */
	struct pool_idle *idle;
	unsigned n;
	uint32_t hash;
	char name[];
};

struct pool {
	struct event_base *base;
	struct pool_key **buckets; /* keys by hash: one per backend address seen */
	size_t n_buckets, n_keys;
	struct pool_idle *spare;   /* structs of connections gone, for reuse */
	struct timeval idle_tv; /* a common timeout: every idle connection waits as long */
	unsigned max_per_key, max_total, n_total;
};

struct pool *pool_new(struct event_base *base, uint64_t idle_ms, unsigned max_per_key,
		      unsigned max_total)
{
	struct pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->buckets = calloc(POOL_BUCKETS_MIN, sizeof *p->buckets);
	if (!p->buckets) {
		free(p);
		return NULL;
	}
	p->n_buckets = POOL_BUCKETS_MIN;
	p->base = base;
	p->idle_tv = loop_timeout(base, idle_ms);
	p->max_per_key = max_per_key;
	p->max_total = max_total;
	return p;
}

/* pool_hash: FNV-1a; keys are short "host:port" strings. */
static uint32_t pool_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* pool_rehash: twice the buckets once keys outnumber them; on failure the
 * chains just grow longer. */
static void pool_rehash(struct pool *p)
{
	size_t n = p->n_buckets * 2;
	struct pool_key **b = calloc(n, sizeof *b);
	if (!b)
		return;
	for (size_t i = 0; i < p->n_buckets; i++)
		while (p->buckets[i]) {
			struct pool_key *k = p->buckets[i];
			p->buckets[i] = k->next;
			k->next = b[k->hash & (n - 1)];
			b[k->hash & (n - 1)] = k;
		}
	free(p->buckets);
	p->buckets = b;
	p->n_buckets = n;
}

/* pool_sweep: drop the keys left without idle connections (a take leaves
 * them, for the put that usually follows). Run when keys reach twice
 * max_total, so they stay bounded whatever addresses come and go. */
static void pool_sweep(struct pool *p)
{
	for (size_t i = 0; i < p->n_buckets; i++)
		for (struct pool_key **pp = &p->buckets[i]; *pp;) {
			struct pool_key *k = *pp;
			if (k->n) {
				pp = &k->next;
				continue;
			}
			*pp = k->next;
			p->n_keys--;
			free(k);
		}
}

static struct pool_key *pool_key_find(struct pool *p, const char *name, bool create)
{
	uint32_t h = pool_hash(name);
	for (struct pool_key *k = p->buckets[h & (p->n_buckets - 1)]; k; k = k->next)
		if (k->hash == h && strcmp(k->name, name) == 0)
			return k;
	if (!create)
		return NULL;
	size_t len = strlen(name);
	struct pool_key *k = calloc(1, sizeof *k + len + 1);
	if (!k)
		return NULL;
	memcpy(k->name, name, len + 1);
	k->hash = h;
	if (p->n_keys >= 2 * (size_t)p->max_total)
		pool_sweep(p);
	if (p->n_keys >= p->n_buckets)
		pool_rehash(p);
	struct pool_key **b = &p->buckets[h & (p->n_buckets - 1)];
	k->next = *b;
	*b = k;
	p->n_keys++;
	return k;
}

/* pool_key_drop: a key with no idle connection left goes, so addresses
 * that left the config do not stay forever. */
static void pool_key_drop(struct pool *p, struct pool_key *k)
{
	struct pool_key **pp = &p->buckets[k->hash & (p->n_buckets - 1)];
	while (*pp != k)
		pp = &(*pp)->next;
	*pp = k->next;
	p->n_keys--;
	free(k);
}

static void pool_unlink(struct pool *p, struct pool_idle *it)
{
	struct pool_key *k = it->key;
	if (it->prev)
		it->prev->next = it->next;
	else
		k->idle = it->next;
	if (it->next)
		it->next->prev = it->prev;
	k->n--;
	p->n_total--;
	it->next = p->spare; /* at most max_total of them: the most ever idle at once */
	p->spare = it;
}

/* pool_idle_event: anything on an idle connection (data, EOF, error,
 * idle timeout) ends it: a backend may not speak unasked. Its key goes
 * with its last connection: a key in use keeps its connections busy and
 * is not dropped by a take. */
static void pool_idle_event(struct bufferevent *bev, short what, void *arg)
{
	struct pool_idle *it = arg;
	struct pool *p = it->p;
	struct pool_key *k = it->key;
	(void)what;
	pool_unlink(p, it);
	if (k->n == 0)
		pool_key_drop(p, k);
	bufferevent_free(bev);
}

static void pool_idle_read(struct bufferevent *bev, void *arg)
{
	pool_idle_event(bev, BEV_EVENT_READING, arg);
}

void pool_put(struct pool *p, const char *key, struct bufferevent *bev)
{
	struct pool_key *k = p->n_total < p->max_total ? pool_key_find(p, key, true) : NULL;
	struct pool_idle *it = NULL;
	if (k && k->n < p->max_per_key) {
		it = p->spare;
		if (it)
			p->spare = it->next;
		else
			it = malloc(sizeof *it);
	}
	if (!it) {
		if (k && k->n == 0)
			pool_key_drop(p, k);
		bufferevent_free(bev);
		return;
	}
	*it = (struct pool_idle){.next = k->idle, .key = k, .p = p, .bev = bev};
	if (k->idle)
		k->idle->prev = it;
	k->idle = it;
	k->n++;
	p->n_total++;
	bufferevent_setcb(bev, pool_idle_read, NULL, pool_idle_event, it);
	bufferevent_set_timeouts(bev, &p->idle_tv, NULL);
	/* Setting a read watermark, even to what it is, re-adds the read
	 * event, and so does enabling reading: a connection coming back from
	 * a request reads already and has no watermark, so neither is done
	 * for it. */
	size_t low, high;
	if (bufferevent_getwatermark(bev, EV_READ, &low, &high) == 0 && (low || high))
		bufferevent_setwatermark(bev, EV_READ, 0, 0);
	if (!(bufferevent_get_enabled(bev) & EV_READ))
		bufferevent_enable(bev, EV_READ);
}

struct bufferevent *pool_take(struct pool *p, const char *key)
{
	struct pool_key *k = pool_key_find(p, key, false);
	if (!k || !k->idle)
		return NULL;
	struct pool_idle *it = k->idle;
	struct bufferevent *bev = it->bev;
	pool_unlink(p, it);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	return bev;
}

unsigned pool_idle_count(struct pool *p, const char *key)
{
	if (!key)
		return p->n_total;
	struct pool_key *k = pool_key_find(p, key, false);
	return k ? k->n : 0;
}

size_t pool_key_count(const struct pool *p)
{
	return p->n_keys;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_buckets; i++)
		while (p->buckets[i]) {
			struct pool_key *k = p->buckets[i];
			while (k->idle) {
				struct pool_idle *it = k->idle;
				k->idle = it->next;
				bufferevent_free(it->bev);
				free(it);
			}
			p->buckets[i] = k->next;
			free(k);
		}
	while (p->spare) {
		struct pool_idle *it = p->spare;
		p->spare = it->next;
		free(it);
	}
	free(p->buckets);
	free(p);
}
