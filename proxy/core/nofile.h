/*
 * nofile.h - the open-file limit. Debian's default soft limit, 1024, would
 * stop an edge at about 500 proxied connections (a client's and a
 * backend's descriptor each) while the hard limit allows far more; like
 * Go programs (Traefik, Caddy) portier raises the soft limit at start.
 */
#pragma once

#include <sys/resource.h>

/* nofile_raise: the soft RLIMIT_NOFILE up to the hard one (to fs.nr_open
 * when that is lower). Returns the soft limit in force afterwards. */
rlim_t nofile_raise(void);
