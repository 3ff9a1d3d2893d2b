/*
 * listener.h - listening sockets. Every worker has its own socket on each
 * address (SO_REUSEPORT), so the kernel spreads connections and a second
 * portier can bind the same ports while the first drains.
 */
#pragma once

#include <stdint.h>

#include "config/model.h"

/* listener_bind: a non-blocking listening TCP socket on a.host and `port`
 * (0 picks a free one) with SO_REUSEPORT. Returns the fd and the bound
 * port in *bound, or -1 with a message naming the address. */
int listener_bind(const struct cfg_addr *a, uint16_t port, uint16_t *bound, char *errbuf,
		  size_t errlen);

/* listener_port: the port socket fd is bound to, 0 when that fails. */
uint16_t listener_port(int fd);
