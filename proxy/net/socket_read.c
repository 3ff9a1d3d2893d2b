#include "proxy/net/socket_read.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/net/read_hook.h"

#define SOCKET_READ_FIRST 4096         /* most answers fit; a small chain for them */
#define SOCKET_READ_STEP (60 * 1024)   /* one chain of 64 KiB with its header */
/* Per readiness, then the next connection's turn: 4 KiB, 60 KiB, and 4
 * KiB more, so that a 64 KiB body and its head come in one turn. */
#define SOCKET_READ_MAX (SOCKET_READ_FIRST + SOCKET_READ_STEP + SOCKET_READ_FIRST)

/* socket_read_some: the first readv asks for 4 KiB (a small chain for the
 * small answers most are), the next ones for the rest, at most 60 KiB
 * each, into the free end of the last chain plus one new chain. Reads of
 * 16 KiB into one contiguous reservation each started a chain of 32 KiB
 * and left half of it unused: a 64 KiB response cost 1.3-2x the CPU of
 * this. A read of more than 60 KiB takes a chain of 128 KiB, which the
 * heap gives back and takes again: reading a 64 KiB body's last bytes
 * into one of those halved the 64 KiB answers' rate. Left for the next
 * turn instead, they cost the answer a whole pass of the loop: p99 11.5
 * ms against 9.8 ms now, and 8% more CPU per answer (wrk, 50 connections
 * over TLS). Stops at the first short read: the socket is empty. */
ssize_t socket_read_some(int fd, struct evbuffer *in, size_t max)
{
	size_t got = 0;
	size_t want = max < SOCKET_READ_FIRST ? max : SOCKET_READ_FIRST;
	while (got < max) {
		struct evbuffer_iovec v[2];
		int nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
		if (nv < 1)
			return got ? (ssize_t)got : -2;
		size_t room = 0;
		for (int i = 0; i < nv; i++) {
			if (v[i].iov_len > want - room)
				v[i].iov_len = want - room;
			room += v[i].iov_len;
		}
		/* evbuffer_iovec has struct iovec's layout (event2/buffer.h). */
		ssize_t n = readv(fd, (struct iovec *)v, nv);
		if (n <= 0) {
			evbuffer_commit_space(in, v, 0);
			if (got)
				return (ssize_t)got; /* the end, or an error, is found next time */
			if (n == 0)
				return -1;
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -2;
		}
		size_t left = (size_t)n;
		int used = 0;
		for (int i = 0; i < nv && left; i++, used++) {
			if (v[i].iov_len > left)
				v[i].iov_len = left;
			left -= v[i].iov_len;
		}
		evbuffer_commit_space(in, v, used);
		got += (size_t)n;
		if ((size_t)n < room)
			break;
		want = max - got < SOCKET_READ_STEP ? max - got : SOCKET_READ_STEP;
	}
	return (ssize_t)got;
}

static void socket_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bufferevent *bev = arg;
	if (what & EV_TIMEOUT) {
		read_hook_fail(bev, BEV_EVENT_TIMEOUT);
		return;
	}
	size_t max = read_hook_room(bev, SOCKET_READ_MAX);
	if (max == 0)
		return;
	/* A socket bufferevent keeps its input's end frozen between reads. */
	struct evbuffer *in = bufferevent_get_input(bev);
	evbuffer_unfreeze(in, 0);
	ssize_t n = socket_read_some(fd, in, max);
	evbuffer_freeze(in, 0);
	if (n > 0)
		bufferevent_trigger(bev, EV_READ, 0);
	else if (n < 0)
		read_hook_fail(bev, n == -1 ? BEV_EVENT_EOF : BEV_EVENT_ERROR);
}

void socket_read_install(struct bufferevent *bev)
{
	read_hook_install(bev, socket_read_cb);
}
