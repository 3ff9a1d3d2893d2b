/*
 * test_socket_read.c - socket_read_install on a socket bufferevent over a
 * socketpair, driven by a real event_base one pass at a time: the read
 * event's callback is replaced, once; one readiness brings what waits in
 * one read callback, up to 68 KiB (libevent 2.1's own brings 4 KiB), and at
 * most up to the read high watermark; end of file, an error and the read
 * timeout reach the event callback with BEV_EVENT_READING and stop reading;
 * reading enabled with a timeout before the install stays so after it; the
 * bufferevent freed from its own callbacks.
 */
#include "tests/unit/check.h"
#include "tests/unit/loop_check.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/util.h>

#include "proxy/net/socket_read.h"

#define READ_MAX (68 * 1024)  /* socket_read's bytes per readiness, SOCKET_READ_MAX */
#define LIBEVENT_READ 4096    /* libevent 2.1's bytes per readiness, EVBUFFER_MAX_READ */
#define STREAM_LEN (256 * 1024)
#define MAX_CALLS 16

/* What the callbacks saw. */
struct rec {
	struct bufferevent *bev; /* NULL once a callback freed it */
	int reads;               /* read callbacks */
	size_t seen[MAX_CALLS];  /* the input's length at each */
	int events;              /* event callbacks */
	short what[MAX_CALLS];   /* what each was told */
	int err[MAX_CALLS];      /* and the socket error then */
	bool drain;              /* the read callback moves the input to got */
	bool free_in_read, free_in_event;
	uint8_t *got;
	size_t got_len;
};

static uint8_t got_buf[STREAM_LEN];

static void on_read(struct bufferevent *bev, void *arg)
{
	struct rec *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	if (r->reads < MAX_CALLS)
		r->seen[r->reads] = len;
	r->reads++;
	if (r->drain) {
		size_t room = STREAM_LEN - r->got_len;
		ev_ssize_t n = evbuffer_remove(in, r->got + r->got_len, len < room ? len : room);
		if (n > 0)
			r->got_len += (size_t)n;
	}
	if (r->free_in_read) {
		bufferevent_free(bev);
		r->bev = NULL;
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct rec *r = arg;
	int err = EVUTIL_SOCKET_ERROR();
	if (r->events < MAX_CALLS) {
		r->what[r->events] = what;
		r->err[r->events] = err;
	}
	r->events++;
	if (r->free_in_event) {
		bufferevent_free(bev);
		r->bev = NULL;
	}
}

/* A bufferevent on fd[0] of a socketpair, its peer fd[1]. */
struct fixture {
	struct event_base *base;
	int fd[2];
	struct rec r;
};

static bool setup(struct fixture *f, int options)
{
	memset(f, 0, sizeof *f);
	f->fd[0] = f->fd[1] = -1;
	f->r.got = got_buf;
	f->base = event_base_new();
	if (!f->base)
		return false;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, f->fd) != 0) {
		perror("socketpair");
		return false;
	}
	/* Room for all the peer sends, queued at once. */
	int size = 1 << 20;
	setsockopt(f->fd[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	setsockopt(f->fd[0], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
	if (evutil_make_socket_nonblocking(f->fd[0]) != 0 || evutil_make_socket_nonblocking(f->fd[1]) != 0)
		return false;
	f->r.bev = bufferevent_socket_new(f->base, f->fd[0], BEV_OPT_CLOSE_ON_FREE | options);
	if (!f->r.bev)
		return false;
	f->fd[0] = -1; /* the bufferevent's now */
	bufferevent_setcb(f->r.bev, on_read, NULL, on_event, &f->r);
	return true;
}

static void teardown(struct fixture *f)
{
	if (f->r.bev)
		bufferevent_free(f->r.bev);
	if (f->fd[0] >= 0)
		close(f->fd[0]);
	if (f->fd[1] >= 0)
		close(f->fd[1]);
	if (f->base)
		event_base_free(f->base); /* runs what finalizers are left */
}

/* peer_send: the peer queues stream[from..from+len) in one write(2). */
static bool peer_send(struct fixture *f, size_t from, size_t len)
{
	ssize_t n = write(f->fd[1], stream + from, len);
	if (n != (ssize_t)len) {
		fprintf(stderr, "write %zu: %zd (%s)\n", len, n, n < 0 ? strerror(errno) : "short");
		return false;
	}
	return true;
}

/* pass: one pass of the loop that never waits: the events ready now, each
 * callback once. */
static void pass(struct fixture *f)
{
	event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static long long wait_events(struct fixture *f)
{
	return loop_wait_events(f->base, &f->r.events);
}

/* 1. The read event gets socket_read's callback, for the same socket and
 * bufferevent; a second install changes nothing; the event not pending
 * before is not after. */
static void test_install(void)
{
	struct fixture f;
	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out;
	struct bufferevent *bev = f.r.bev;
	event_callback_fn own = event_get_callback(&bev->ev_read);
	evutil_socket_t fd = bufferevent_getfd(bev);
	CHECK(own != NULL);
	CHECK(!event_pending(&bev->ev_read, EV_READ, NULL));

	socket_read_install(bev);
	event_callback_fn ours = event_get_callback(&bev->ev_read);
	CHECK(ours != NULL && ours != own);
	CHECK(event_get_callback_arg(&bev->ev_read) == bev);
	CHECK(event_get_fd(&bev->ev_read) == fd);
	CHECK(event_get_base(&bev->ev_read) == f.base);
	CHECK((event_get_events(&bev->ev_read) & (EV_READ | EV_PERSIST)) == (EV_READ | EV_PERSIST));
	CHECK(!event_pending(&bev->ev_read, EV_READ, NULL));

	socket_read_install(bev);
	CHECK(event_get_callback(&bev->ev_read) == ours);
	CHECK(event_get_callback_arg(&bev->ev_read) == bev);

	/* Again once reading: still the same callback, still pending. */
	CHECK(bufferevent_enable(bev, EV_READ) == 0);
	socket_read_install(bev);
	CHECK(event_get_callback(&bev->ev_read) == ours);
	CHECK(event_pending(&bev->ev_read, EV_READ, NULL));
out:
	teardown(&f);
}

/* 2. 60,000 bytes waiting: one pass, one read callback, all of them; with
 * 200,000 waiting each pass brings 68 KiB, the last the rest; a 64 KiB
 * body and a head of 300 bytes come in one pass. */
static void test_large_reads(void)
{
	struct fixture f;
	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out;
	socket_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	CHECK(peer_send(&f, 0, 60000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 60000);
	CHECK(f.r.seen[0] > LIBEVENT_READ);
	CHECK(input_is(f.r.bev, 60000));
	CHECK(f.r.events == 0);
	pass(&f); /* nothing more waits */
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 0);
out:
	teardown(&f);

	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out2;
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	socket_read_install(f.r.bev);
	CHECK(peer_send(&f, 0, 200000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == READ_MAX);
	CHECK(input_is(f.r.bev, READ_MAX));
	/* The rest, 68 KiB a pass, the input left as it is. */
	for (int i = 0; i < 8 && f.r.reads < 3; i++)
		pass(&f);
	CHECK(f.r.reads == 3);
	CHECK(f.r.seen[1] == 2 * READ_MAX);
	CHECK(f.r.seen[2] == 200000);
	CHECK(input_is(f.r.bev, 200000));
	pass(&f);
	CHECK(f.r.reads == 3);
	CHECK(f.r.events == 0);
	CHECK(reading(f.r.bev));
out2:
	teardown(&f);

	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out3;
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	socket_read_install(f.r.bev);
	CHECK(peer_send(&f, 0, 64 * 1024 + 300));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(input_is(f.r.bev, 64 * 1024 + 300));
	pass(&f);
	CHECK(f.r.reads == 1);
out3:
	teardown(&f);
}

/* 3. A read high watermark of 1000 with 5000 waiting: 1000 a callback (the
 * callback drains the input, as it must: libevent calls a read callback
 * again and again while the input stays at the watermark), in order; one
 * of 50,000 with 60,000 waiting: 50,000 in the first callback. */
static void test_high_watermark(void)
{
	struct fixture f;
	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out;
	socket_read_install(f.r.bev);
	bufferevent_setwatermark(f.r.bev, EV_READ, 0, 1000);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.drain = true;
	CHECK(peer_send(&f, 0, 5000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 1000);
	CHECK(f.r.got_len == 1000);
	for (int i = 0; i < MAX_PASSES && f.r.got_len < 5000; i++)
		pass(&f);
	CHECK(f.r.got_len == 5000);
	CHECK(memcmp(got_buf, stream, 5000) == 0);
	CHECK(f.r.reads == 5);
	for (int i = 0; i < 5 && i < MAX_CALLS; i++)
		CHECK(f.r.seen[i] == 1000);
	pass(&f);
	CHECK(f.r.reads == 5);
	CHECK(f.r.events == 0);
	CHECK(reading(f.r.bev));
out:
	teardown(&f);

	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out2;
	bufferevent_setwatermark(f.r.bev, EV_READ, 0, 50000);
	socket_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.drain = true;
	CHECK(peer_send(&f, 0, 60000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 50000);
	CHECK(f.r.got_len == 50000);
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.seen[1] == 10000);
	CHECK(f.r.got_len == 60000);
	CHECK(memcmp(got_buf, stream, 60000) == 0);
out2:
	teardown(&f);
}

/* 4. Ten bytes then the peer's end: the bytes to the read callback, then,
 * a pass later, BEV_EVENT_EOF to the event callback; reading stops. */
static void test_eof(void)
{
	struct fixture f;
	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out;
	socket_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	CHECK(peer_send(&f, 0, 10));
	CHECK(shutdown(f.fd[1], SHUT_WR) == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 10);
	CHECK(input_is(f.r.bev, 10));
	CHECK(f.r.events == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (BEV_EVENT_EOF | BEV_EVENT_READING));
	CHECK(!reading(f.r.bev));
	CHECK(!event_pending(&f.r.bev->ev_read, EV_READ, NULL));
	CHECK(input_is(f.r.bev, 10));
	pass(&f);
	CHECK(f.r.events == 1);
out:
	teardown(&f);
}

/* An error: the peer closes with bytes of ours unread, after ten of its
 * own: the ten, then a pass later BEV_EVENT_ERROR (ECONNRESET). */
static void test_error(void)
{
	struct fixture f;
	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out;
	socket_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	CHECK(peer_send(&f, 0, 10));
	CHECK(write(bufferevent_getfd(f.r.bev), "unread", 6) == 6);
	close(f.fd[1]);
	f.fd[1] = -1;
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 10);
	CHECK(f.r.events == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (BEV_EVENT_ERROR | BEV_EVENT_READING));
	CHECK(f.r.err[0] == ECONNRESET);
	CHECK(!reading(f.r.bev));
	CHECK(input_is(f.r.bev, 10));
out:
	teardown(&f);
}

/* 5. A read timeout of 100 ms, nothing sent: BEV_EVENT_TIMEOUT, reading
 * stops; enabled again, reading goes on through socket_read. */
static void test_timeout(void)
{
	struct fixture f;
	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out;
	socket_read_install(f.r.bev);
	struct timeval tv = { 0, 100 * 1000 };
	CHECK(bufferevent_set_timeouts(f.r.bev, &tv, NULL) == 0);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	long long took = wait_events(&f);
	CHECK(took >= 50 && took < GUARD_MS);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (BEV_EVENT_TIMEOUT | BEV_EVENT_READING));
	CHECK(f.r.reads == 0);
	CHECK(!reading(f.r.bev));
	CHECK(!event_pending(&f.r.bev->ev_read, EV_READ | EV_TIMEOUT, NULL));

	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	CHECK(event_pending(&f.r.bev->ev_read, EV_READ | EV_TIMEOUT, NULL) == (EV_READ | EV_TIMEOUT));
	CHECK(peer_send(&f, 0, 20000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 20000);
	CHECK(input_is(f.r.bev, 20000));
	CHECK(f.r.events == 1);
out:
	teardown(&f);
}

/* 6. Reading enabled with a timeout before the install: still pending with
 * its timeout after it; data come through socket_read, and so does the
 * timeout. Enabled without a timeout: pending without one. */
static void test_install_pending(void)
{
	struct fixture f;
	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out;
	struct bufferevent *bev = f.r.bev;
	struct timeval tv = { 0, 150 * 1000 };
	CHECK(bufferevent_set_timeouts(bev, &tv, NULL) == 0);
	CHECK(bufferevent_enable(bev, EV_READ) == 0);
	event_callback_fn own = event_get_callback(&bev->ev_read);
	CHECK(event_pending(&bev->ev_read, EV_READ | EV_TIMEOUT, NULL) == (EV_READ | EV_TIMEOUT));
	socket_read_install(bev);
	CHECK(event_get_callback(&bev->ev_read) != own);
	CHECK(event_pending(&bev->ev_read, EV_READ | EV_TIMEOUT, NULL) == (EV_READ | EV_TIMEOUT));
	CHECK(reading(bev));

	CHECK(peer_send(&f, 0, 20000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 20000);
	CHECK(input_is(bev, 20000));
	CHECK(f.r.events == 0);

	long long took = wait_events(&f);
	CHECK(took >= 0 && took < GUARD_MS);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (BEV_EVENT_TIMEOUT | BEV_EVENT_READING));
	CHECK(f.r.reads == 1);
	CHECK(!reading(bev));
out:
	teardown(&f);

	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out2;
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	socket_read_install(f.r.bev);
	CHECK(event_pending(&f.r.bev->ev_read, EV_READ | EV_TIMEOUT, NULL) == EV_READ);
	CHECK(peer_send(&f, 0, 30000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 30000);
	CHECK(input_is(f.r.bev, 30000));
out2:
	teardown(&f);
}

/* 7. The bufferevent freed in its read callback, in its event callback
 * (end of file, timeout), and in a deferred read callback: ASan's word. */
static void test_free_in_callbacks(void)
{
	struct fixture f;
	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out;
	socket_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.free_in_read = true;
	CHECK(peer_send(&f, 0, 60000));
	CHECK(shutdown(f.fd[1], SHUT_WR) == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 60000);
	CHECK(f.r.bev == NULL);
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 0);
out:
	teardown(&f);

	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out2;
	socket_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.free_in_event = true;
	CHECK(shutdown(f.fd[1], SHUT_WR) == 0);
	pass(&f);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (BEV_EVENT_EOF | BEV_EVENT_READING));
	CHECK(f.r.bev == NULL);
	pass(&f);
	CHECK(f.r.events == 1);
out2:
	teardown(&f);

	CHECK(setup(&f, 0));
	if (!f.r.bev)
		goto out3;
	socket_read_install(f.r.bev);
	struct timeval tv = { 0, 50 * 1000 };
	CHECK(bufferevent_set_timeouts(f.r.bev, &tv, NULL) == 0);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.free_in_event = true;
	CHECK(wait_events(&f) >= 0);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (BEV_EVENT_TIMEOUT | BEV_EVENT_READING));
	CHECK(f.r.bev == NULL);
out3:
	teardown(&f);

	CHECK(setup(&f, BEV_OPT_DEFER_CALLBACKS));
	if (!f.r.bev)
		goto out4;
	socket_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.free_in_read = true;
	CHECK(peer_send(&f, 0, 60000));
	pass(&f); /* the deferred callback runs in the same pass */
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 60000);
	CHECK(f.r.bev == NULL);
	pass(&f);
	CHECK(f.r.reads == 1);
out4:
	teardown(&f);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	stream_init();
	test_install();
	test_large_reads();
	test_high_watermark();
	test_eof();
	test_error();
	test_timeout();
	test_install_pending();
	test_free_in_callbacks();
	return check_done();
}
