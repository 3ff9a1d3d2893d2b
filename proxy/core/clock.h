/*
 * clock.h - monotonic and wall time in milliseconds. Tests may override the
 * monotonic clock to drive time-dependent logic without sleeping.
 */
#pragma once

#include <stdint.h>

/* clock_mono_ms: monotonic milliseconds (or the override, when set). */
int64_t clock_mono_ms(void);
/* clock_wall_ms: milliseconds since the epoch. */
int64_t clock_wall_ms(void);
/* clock_override_mono: for tests; a negative value restores the real clock. */
void clock_override_mono(int64_t ms);
