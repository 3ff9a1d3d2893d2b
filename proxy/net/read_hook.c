#include "proxy/net/read_hook.h"

#include <event2/buffer.h>
#include <event2/bufferevent_struct.h> /* ev_read and timeout_read */

static bool read_hook_is(struct bufferevent *bev, read_hook_fn fn)
{
	return event_get_callback(&bev->ev_read) == fn;
}

void read_hook_install(struct bufferevent *bev, read_hook_fn fn)
{
	if (read_hook_is(bev, fn))
		return;
	evutil_socket_t fd = bufferevent_getfd(bev);
	bool pending = event_pending(&bev->ev_read, EV_READ, NULL);
	event_del(&bev->ev_read);
	event_assign(&bev->ev_read, bev->ev_base, fd, EV_READ | EV_PERSIST | EV_FINALIZE, fn, bev);
	if (pending)
		event_add(&bev->ev_read,
			  evutil_timerisset(&bev->timeout_read) ? &bev->timeout_read : NULL);
}

size_t read_hook_room(struct bufferevent *bev, size_t max)
{
	size_t low = 0, high = 0;
	bufferevent_getwatermark(bev, EV_READ, &low, &high);
	if (!high)
		return max;
	size_t len = evbuffer_get_length(bufferevent_get_input(bev));
	if (len >= high)
		return 0;
	return high - len < max ? high - len : max;
}

void read_hook_fail(struct bufferevent *bev, short what)
{
	bufferevent_disable(bev, EV_READ);
	bufferevent_trigger_event(bev, (short)(BEV_EVENT_READING | what), 0);
}
