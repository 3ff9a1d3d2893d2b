/*
 * test_pool.c - the backend connection pool on socketpairs and a real
 * event_base: take gives the newest idle connection of its key and
 * nothing of another; the per-key and total caps; a backend that closes
 * or speaks on an idle connection, and the idle timeout, end it and drop
 * its key with its last connection; thousands of keys each find their own
 * connection (hashing, rehashing); keys left empty by takes stay bounded.
 */
#include "tests/unit/check.h"
#include "tests/unit/loop_check.h"

#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/upstream/pool.h"

#define MANY_KEYS 400 /* 800 descriptors: under the usual limit of 1024 */

struct conn {
	struct bufferevent *bev;
	int peer;
};

static struct conn conn_new(struct event_base *base)
{
	int sv[2];
	struct conn c = {NULL, -1};
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return c;
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(sv[1]);
	c.bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	c.peer = sv[1];
	return c;
}

/* pool_wait_total: loop passes until the pool holds `want` idle
 * connections in all, bounded in passes and by the guard timer. */
static bool pool_wait_total(struct event_base *base, struct pool *p, unsigned want)
{
	struct guard g = {base, false};
	struct event *ev = evtimer_new(base, guard_fire, &g);
	struct timeval tv = {GUARD_MS / 1000, (GUARD_MS % 1000) * 1000};
	evtimer_add(ev, &tv);
	for (int i = 0; i < MAX_PASSES && pool_idle_count(p, NULL) != want && !g.fired; i++)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(ev);
	return pool_idle_count(p, NULL) == want;
}

/* peer_eof: the pool's side of this peer was closed. libevent closes a
 * freed bufferevent's socket from the loop, so run it, bounded. */
static bool peer_eof(struct event_base *base, int peer)
{
	char byte;
	for (int i = 0; i < MAX_PASSES; i++) {
		if (read(peer, &byte, 1) == 0)
			return true;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	return false;
}

/* three_idle: a pool holding c[0] and c[1] idle under k1, c[2] under k2. */
static struct pool *three_idle(struct event_base *base, struct conn c[3], const char *k1,
			       const char *k2)
{
	struct pool *p = pool_new(base, 60000, 8, 64);
	for (int i = 0; i < 3; i++)
		c[i] = conn_new(base);
	pool_put(p, k1, c[0].bev);
	pool_put(p, k1, c[1].bev);
	pool_put(p, k2, c[2].bev);
	return p;
}

static void test_take_newest(struct event_base *base)
{
	struct conn c[3];
	struct pool *p = three_idle(base, c, "10.0.0.1:80", "[::1]:8080");
	CHECK(pool_idle_count(p, "10.0.0.1:80") == 2);
	CHECK(pool_idle_count(p, "[::1]:8080") == 1);
	CHECK(pool_idle_count(p, NULL) == 3);
	CHECK(pool_key_count(p) == 2);
	CHECK(pool_take(p, "10.0.0.2:80") == NULL);
	CHECK(pool_take(p, "10.0.0.1:80") == c[1].bev);
	CHECK(pool_take(p, "10.0.0.1:80") == c[0].bev);
	CHECK(pool_take(p, "10.0.0.1:80") == NULL);
	CHECK(pool_take(p, "[::1]:8080") == c[2].bev);
	CHECK(pool_idle_count(p, NULL) == 0);
	/* Taken connections are the caller's again: put back, reused. */
	pool_put(p, "10.0.0.1:80", c[0].bev);
	CHECK(pool_take(p, "10.0.0.1:80") == c[0].bev);
	for (int i = 0; i < 3; i++) {
		bufferevent_free(c[i].bev);
		close(c[i].peer);
	}
	pool_free(p);
}

static void test_caps(struct event_base *base)
{
	struct pool *p = pool_new(base, 60000, 2, 3);
	struct conn c[5];
	for (int i = 0; i < 5; i++)
		c[i] = conn_new(base);
	pool_put(p, "a:1", c[0].bev);
	pool_put(p, "a:1", c[1].bev);
	pool_put(p, "a:1", c[2].bev); /* over the key's 2: freed */
	CHECK(pool_idle_count(p, "a:1") == 2);
	pool_put(p, "b:1", c[3].bev);
	pool_put(p, "c:1", c[4].bev); /* over the total of 3: freed, no key made */
	CHECK(pool_idle_count(p, NULL) == 3);
	CHECK(pool_idle_count(p, "c:1") == 0);
	CHECK(pool_key_count(p) == 2);
	/* A freed connection's peer reads end of file. */
	CHECK(peer_eof(base, c[2].peer));
	CHECK(peer_eof(base, c[4].peer));
	pool_free(p); /* frees the three still idle */
	CHECK(peer_eof(base, c[0].peer));
	for (int i = 0; i < 5; i++)
		close(c[i].peer);
}

static void test_backend_ends_idle(struct event_base *base)
{
	struct conn c[3];
	struct pool *p = three_idle(base, c, "x:1", "y:1");
	close(c[0].peer); /* the backend closes one */
	CHECK(pool_wait_total(base, p, 2));
	CHECK(pool_take(p, "x:1") == c[1].bev); /* the other is still good */
	CHECK(write(c[2].peer, "x", 1) == 1); /* a backend speaking unasked */
	CHECK(pool_wait_total(base, p, 0));
	CHECK(pool_key_count(p) == 1); /* y went with its last connection; x was taken from */
	bufferevent_free(c[1].bev);
	pool_free(p);
	close(c[1].peer);
	close(c[2].peer);
}

static void test_idle_timeout(struct event_base *base)
{
	struct pool *p = pool_new(base, 20, 8, 64);
	struct conn a = conn_new(base);
	pool_put(p, "t:1", a.bev);
	CHECK(pool_idle_count(p, "t:1") == 1);
	CHECK(pool_wait_total(base, p, 0));
	CHECK(pool_key_count(p) == 0);
	CHECK(peer_eof(base, a.peer));
	pool_free(p);
	close(a.peer);
}

static void test_many_keys(struct event_base *base)
{
	static struct conn c[MANY_KEYS];
	struct pool *p = pool_new(base, 60000, 4, MANY_KEYS);
	char key[32];
	int made = 0;
	for (int i = 0; i < MANY_KEYS; i++) {
		c[i] = conn_new(base);
		if (!c[i].bev)
			break;
		snprintf(key, sizeof key, "10.%d.%d.1:%d", i / 256, i % 256, 8000 + i % 7);
		pool_put(p, key, c[i].bev);
		made++;
	}
	CHECK(made == MANY_KEYS);
	CHECK(pool_key_count(p) == (size_t)made);
	int right = 0;
	for (int i = made - 1; i >= 0; i--) {
		snprintf(key, sizeof key, "10.%d.%d.1:%d", i / 256, i % 256, 8000 + i % 7);
		struct bufferevent *got = pool_take(p, key);
		right += got == c[i].bev;
		if (got)
			bufferevent_free(got);
		close(c[i].peer);
	}
	CHECK(right == made);
	CHECK(pool_idle_count(p, NULL) == 0);
	pool_free(p);
}

/* Every request takes and puts back; addresses come and go. The keys
 * emptied by takes are swept, never more than twice max_total. */
static void test_empty_keys_bounded(struct event_base *base)
{
	struct pool *p = pool_new(base, 60000, 4, 4);
	struct conn a = conn_new(base);
	char key[32];
	size_t most = 0;
	pool_put(p, "first:1", a.bev);
	struct bufferevent *bev = pool_take(p, "first:1");
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof key, "10.1.1.%d:80", i);
		pool_put(p, key, bev);
		bev = pool_take(p, key);
		if (pool_key_count(p) > most)
			most = pool_key_count(p);
	}
	CHECK(bev == a.bev);
	CHECK(most <= 8);
	bufferevent_free(bev);
	pool_free(p);
	close(a.peer);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	test_take_newest(base);
	test_caps(base);
	test_backend_ends_idle(base);
	test_idle_timeout(base);
	test_many_keys(base);
	test_empty_keys_bounded(base);
	event_base_free(base);
	return check_done();
}
