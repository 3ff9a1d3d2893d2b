#include "proxy/core/clock.h"

#include <stdatomic.h>
#include <time.h>

static _Atomic int64_t clock_override = -1;

int64_t clock_mono_ms(void)
{
	int64_t o = atomic_load_explicit(&clock_override, memory_order_relaxed);
	if (o >= 0)
		return o;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_override_mono(int64_t ms)
{
	atomic_store(&clock_override, ms);
}
