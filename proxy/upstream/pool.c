#include "proxy/upstream/pool.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

struct pool_idle {
	struct pool_idle *next, *prev; /* in its key's list, newest first */
	struct pool_key *key;
	struct bufferevent *bev;
};

struct pool_key {
	struct pool_key *next;
	struct pool_idle *idle;
	unsigned n;
	char name[];
};

struct pool {
	struct event_base *base;
	struct pool_key *keys;
	uint64_t idle_ms;
	unsigned max_per_key, max_total, n_total;
};

struct pool *pool_new(struct event_base *base, uint64_t idle_ms, unsigned max_per_key,
		      unsigned max_total)
{
	struct pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->base = base;
	p->idle_ms = idle_ms;
	p->max_per_key = max_per_key;
	p->max_total = max_total;
	return p;
}

static struct pool_key *pool_key_find(struct pool *p, const char *name, bool create)
{
	for (struct pool_key *k = p->keys; k; k = k->next)
		if (strcmp(k->name, name) == 0)
			return k;
	if (!create)
		return NULL;
	size_t len = strlen(name);
	struct pool_key *k = calloc(1, sizeof *k + len + 1);
	if (!k)
		return NULL;
	memcpy(k->name, name, len + 1);
	k->next = p->keys;
	p->keys = k;
	return k;
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
}

struct pool_idle_cb_arg {
	struct pool *p;
	struct pool_idle *it;
};

/* pool_idle_event: anything on an idle connection (data, EOF, error,
 * idle timeout) ends it: a backend may not speak unasked. */
static void pool_idle_event(struct bufferevent *bev, short what, void *arg)
{
	struct pool_idle_cb_arg *a = arg;
	(void)what;
	pool_unlink(a->p, a->it);
	free(a->it);
	free(a);
	bufferevent_free(bev);
}

static void pool_idle_read(struct bufferevent *bev, void *arg)
{
	pool_idle_event(bev, BEV_EVENT_READING, arg);
}

void pool_put(struct pool *p, const char *key, struct bufferevent *bev)
{
	struct pool_key *k = p->n_total < p->max_total ? pool_key_find(p, key, true) : NULL;
	struct pool_idle *it = k && k->n < p->max_per_key ? calloc(1, sizeof *it) : NULL;
	struct pool_idle_cb_arg *a = it ? calloc(1, sizeof *a) : NULL;
	if (!a) {
		free(it);
		bufferevent_free(bev);
		return;
	}
	it->key = k;
	it->bev = bev;
	it->next = k->idle;
	if (k->idle)
		k->idle->prev = it;
	k->idle = it;
	k->n++;
	p->n_total++;
	a->p = p;
	a->it = it;
	struct timeval tv = {.tv_sec = (time_t)(p->idle_ms / 1000),
			     .tv_usec = (suseconds_t)(p->idle_ms % 1000) * 1000};
	bufferevent_setcb(bev, pool_idle_read, NULL, pool_idle_event, a);
	bufferevent_set_timeouts(bev, &tv, NULL);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	bufferevent_enable(bev, EV_READ);
}

struct bufferevent *pool_take(struct pool *p, const char *key)
{
	struct pool_key *k = pool_key_find(p, key, false);
	if (!k || !k->idle)
		return NULL;
	struct pool_idle *it = k->idle;
	struct bufferevent *bev = it->bev;
	void *cbarg;
	bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
	free(cbarg);
	pool_unlink(p, it);
	free(it);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	return bev;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	while (p->keys) {
		struct pool_key *k = p->keys;
		while (k->idle) {
			struct pool_idle *it = k->idle;
			struct bufferevent *bev = it->bev;
			void *cbarg;
			bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
			free(cbarg);
			k->idle = it->next;
			free(it);
			bufferevent_free(bev);
		}
		p->keys = k->next;
		free(k);
	}
	free(p);
}
