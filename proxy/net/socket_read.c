#include "proxy/net/socket_read.h"

#include <errno.h>
#include <stdbool.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_struct.h> /* ev_read and timeout_read: public, if frowned on */
#include <event2/event.h>

#define SOCKET_READ_CHUNK (16 * 1024)
#define SOCKET_READ_MAX (64 * 1024) /* per readiness: then the next connection's turn */

/* read_some: up to `max` bytes into in; >0 read, 0 nothing (EAGAIN), -1 end
 * of file, -2 error. Stops at the first short read: the socket is empty. */
static ssize_t read_some(evutil_socket_t fd, struct evbuffer *in, size_t max)
{
	size_t got = 0;
	while (got < max) {
		struct evbuffer_iovec v;
		size_t want = max - got < SOCKET_READ_CHUNK ? max - got : SOCKET_READ_CHUNK;
		if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1)
			return got ? (ssize_t)got : -2;
		if (v.iov_len > want)
			v.iov_len = want;
		ssize_t n = read(fd, v.iov_base, v.iov_len);
		if (n <= 0) {
			if (got)
				return (ssize_t)got; /* the end, or an error, is found next time */
			if (n == 0)
				return -1;
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -2;
		}
		v.iov_len = (size_t)n;
		evbuffer_commit_space(in, &v, 1);
		got += (size_t)n;
		if ((size_t)n < want)
			break;
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
