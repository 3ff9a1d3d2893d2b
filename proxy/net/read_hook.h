/*
 * read_hook.h - give a bufferevent a read callback of portier's own
 * (socket_read.c, for backend connections) in place of libevent's. The
 * one place that reaches into event2/bufferevent_struct.h (the read event
 * and its timeout): a public header, which libevent warns may change.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

typedef void (*read_hook_fn)(evutil_socket_t fd, short what, void *bev);

/* read_hook_install: fn(fd, what, bev) runs on read readiness and on the
 * read timeout; enable, disable, watermarks and timeouts work as before, a
 * pending read stays pending. Again with the same fn: nothing. After
 * bufferevent_socket_connect, which re-creates the read event. */
void read_hook_install(struct bufferevent *bev, read_hook_fn fn);

/* read_hook_room: how much may be read before the read high watermark, at
 * most max; 0 at or above it (libevent suspends reading then, and resumes
 * it when the input drains). */
size_t read_hook_room(struct bufferevent *bev, size_t max);

/* read_hook_fail: as libevent's own callback on a failed read: reading
 * stops, the event callback hears BEV_EVENT_READING | what. */
void read_hook_fail(struct bufferevent *bev, short what);
