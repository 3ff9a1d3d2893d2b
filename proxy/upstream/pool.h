/*
 * pool.h - idle keep-alive connections to backends, per worker, keyed by
 * the backend's configured address "host:port" (so they survive routing
 * updates). Bounded per key and in total; an idle connection that the
 * backend closes or that outlives backend_idle is dropped. Keys are hashed,
 * so thousands of backends cost no more per request than one.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

struct pool;

struct pool *pool_new(struct event_base *base, uint64_t idle_ms, unsigned max_per_key,
		      unsigned max_total);
void pool_free(struct pool *p);

/* pool_put: keep bev (an idle connection with nothing pending) for reuse.
 * The pool owns it from now on and may free it at once when full. */
void pool_put(struct pool *p, const char *key, struct bufferevent *bev);

/* pool_take: an idle connection for key, or NULL. It comes back with no
 * callbacks, reading still enabled and the idle read timeout still set (no
 * epoll change for a connection about to be read again): the caller sets
 * callbacks and timeouts before the loop runs. */
struct bufferevent *pool_take(struct pool *p, const char *key);

/* pool_idle_count: idle connections kept for key, or in all if key is NULL. */
unsigned pool_idle_count(struct pool *p, const char *key);
/* pool_key_count: keys held, with or without idle connections. */
size_t pool_key_count(const struct pool *p);
