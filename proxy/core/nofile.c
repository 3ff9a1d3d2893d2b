#include "proxy/core/nofile.h"

#include <stdio.h>

/* fs.nr_open: the most setrlimit accepts, whatever the hard limit says. */
static rlim_t nofile_nr_open(void)
{
	unsigned long long v = 0;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v ? (rlim_t)v : (rlim_t)1 << 20;
}

rlim_t nofile_raise(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	rlim_t want = rl.rlim_max;
	rlim_t cap = nofile_nr_open();
	if (want == RLIM_INFINITY || want > cap)
		want = cap;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		struct rlimit up = {want, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = want;
	}
	return rl.rlim_cur;
}
