#include "proxy/net/socket_read.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_struct.h> /* ev_read and timeout_read: public, if frowned on */
#include <event2/event.h>

#define SOCKET_READ_FIRST 4096         /* most answers fit; a small chain for them */
#define SOCKET_READ_MORE (64 * 1024)
#define SOCKET_READ_MAX (64 * 1024) /* per readiness: then the next connection's turn */

/* read_some: up to `max` bytes into in; >0 read, 0 nothing (EAGAIN), -1 end
 * of file, -2 error. The first readv asks for 4 KiB (a small chain for the
 * small answers most are), the next one for the rest, each into the free
 * end of the last chain plus one new chain. Reads of 16 KiB into one
 * contiguous reservation each started a chain of 32 KiB and left half of
 * it unused: a 64 KiB response cost 1.3-2x the CPU of this. Stops at the
 * first short read: the socket is empty. */
static ssize_t read_some(evutil_socket_t fd, struct evbuffer *in, size_t max)
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
		want = max - got < SOCKET_READ_MORE ? max - got : SOCKET_READ_MORE;
	}
	return (ssize_t)got;
}

static void socket_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bufferevent *bev = arg;
	short fail = BEV_EVENT_READING;
	if (what & EV_TIMEOUT) {
		fail |= BEV_EVENT_TIMEOUT;
	} else {
		struct evbuffer *in = bufferevent_get_input(bev);
		size_t max = SOCKET_READ_MAX;
		size_t low = 0, high = 0;
		bufferevent_getwatermark(bev, EV_READ, &low, &high);
		if (high) {
			size_t len = evbuffer_get_length(in);
			if (len >= high)
				return; /* libevent suspends reading here and resumes it itself */
			if (high - len < max)
				max = high - len;
		}
		/* A socket bufferevent keeps its input's end frozen between reads. */
		evbuffer_unfreeze(in, 0);
		ssize_t n = read_some(fd, in, max);
		evbuffer_freeze(in, 0);
		if (n == 0)
			return;
		if (n > 0) {
			bufferevent_trigger(bev, EV_READ, 0);
			return;
		}
		fail |= n == -1 ? BEV_EVENT_EOF : BEV_EVENT_ERROR;
	}
	/* As libevent's own callback: reading stops, the event callback hears why. */
	bufferevent_disable(bev, EV_READ);
	bufferevent_trigger_event(bev, fail, 0);
}

void socket_read_install(struct bufferevent *bev)
{
	if (event_get_callback(&bev->ev_read) == socket_read_cb)
		return;
	evutil_socket_t fd = bufferevent_getfd(bev);
	bool pending = event_pending(&bev->ev_read, EV_READ, NULL);
	event_del(&bev->ev_read);
	event_assign(&bev->ev_read, bev->ev_base, fd, EV_READ | EV_PERSIST | EV_FINALIZE,
		     socket_read_cb, bev);
	if (pending)
		event_add(&bev->ev_read,
			  evutil_timerisset(&bev->timeout_read) ? &bev->timeout_read : NULL);
}
