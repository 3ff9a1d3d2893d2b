/*
 * loop_check.h - what the tests of portier's read callbacks share: a byte
 * stream to send and compare against, and waiting on a real event_base
 * with a guard timer (no sleeps, every loop bounded).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define LOOP_STREAM_MAX (256 * 1024)
#define MAX_PASSES 32
#define GUARD_MS 2000 /* no loop that waits for a timer waits longer */

static uint8_t stream[LOOP_STREAM_MAX]; /* what peers send: stream[0..n), never periodic at 256 */

static inline void stream_init(void)
{
	uint32_t x = 0x9e3779b9u;
	for (size_t i = 0; i < sizeof stream; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		stream[i] = (uint8_t)x;
	}
}

struct guard {
	struct event_base *base;
	bool fired;
};

static inline void guard_fire(evutil_socket_t fd, short what, void *arg)
{
	struct guard *g = arg;
	(void)fd;
	(void)what;
	g->fired = true;
	event_base_loopbreak(g->base);
}

static inline long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* loop_wait_events: loop passes that may wait, until *events changed (an
 * event callback ran), at most MAX_PASSES of them and GUARD_MS; the
 * milliseconds it took, -1 if the guard fired. */
static inline long long loop_wait_events(struct event_base *base, const int *events)
{
	struct guard g = { base, false };
	struct event *ev = evtimer_new(base, guard_fire, &g);
	if (!ev)
		return -1;
	struct timeval tv = { GUARD_MS / 1000, (GUARD_MS % 1000) * 1000 };
	evtimer_add(ev, &tv);
	long long start = mono_ms();
	int before = *events;
	for (int i = 0; i < MAX_PASSES && *events == before && !g.fired; i++)
		event_base_loop(base, EVLOOP_ONCE);
	long long took = mono_ms() - start;
	event_free(ev);
	return g.fired ? -1 : took;
}

/* buffer_is: in holds exactly stream[0..n). */
static inline bool buffer_is(struct evbuffer *in, size_t n)
{
	size_t len = evbuffer_get_length(in);
	if (len != n) {
		fprintf(stderr, "input holds %zu bytes, expected %zu\n", len, n);
		return false;
	}
	const uint8_t *p = evbuffer_pullup(in, -1);
	return n == 0 || (p && memcmp(p, stream, n) == 0);
}

/* input_is: bev's input holds exactly stream[0..n). */
static inline bool input_is(struct bufferevent *bev, size_t n)
{
	return buffer_is(bufferevent_get_input(bev), n);
}

static inline bool reading(struct bufferevent *bev)
{
	return (bufferevent_get_enabled(bev) & EV_READ) != 0;
}
