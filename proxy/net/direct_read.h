/*
 * direct_read.h - read what a connection's socket holds beyond what its
 * bufferevent read. A bufferevent_openssl reads one TLS record per
 * readiness (it stops when SSL_pending is 0, which it is at every record's
 * end), and a socket bufferevent at most 4 KiB; a client that queued
 * several records then waits one event-loop turn per record. Under HTTP/2
 * load that made the service per connection uneven by 6x (a connection
 * whose requests came two per record got two per turn).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>

enum direct_read_result {
	DIRECT_READ_MORE,  /* bytes were added: there may be more */
	DIRECT_READ_EMPTY, /* nothing more for now */
	DIRECT_READ_END,   /* the peer closed, or TLS failed: end the connection */
};

/* direct_read: append about `budget` more bytes from bev's socket to its
 * input (SSL_read over TLS, whole records; read(2) otherwise), stopping
 * early when the socket has nothing more. */
enum direct_read_result direct_read(struct bufferevent *bev, bool tls, size_t budget);
