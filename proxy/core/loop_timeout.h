/*
 * loop_timeout.h - a timeout that many events of one loop share.
 *
 * libevent keeps timeouts in a heap: re-arming one (every request re-arms
 * its backend connection's) is O(log n) in the connections open. A
 * duration registered as a "common timeout" gets a queue instead, where a
 * re-arm goes to the tail in O(1), since every event in it waits as long.
 */
#pragma once

#include <stdint.h>
#include <sys/time.h>

#include <event2/event.h>

/* loop_timeout: ms as a common timeout of base, to pass wherever libevent
 * takes a timeout; the plain timeval if base has no room for another. */
static inline struct timeval loop_timeout(struct event_base *base, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	const struct timeval *common = event_base_init_common_timeout(base, &tv);
	return common ? *common : tv;
}
