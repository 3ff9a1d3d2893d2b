/*
 * tls_read.h - a bufferevent_openssl that reads a request in one read(2).
 * Without read-ahead OpenSSL reads a record's 5-byte header, then its
 * body: two read(2)s per request, one in five of portier's system calls
 * under wrk over TLS. And bufferevent_openssl stops after one record per
 * readiness (SSL_pending is 0 at each record's end), so a client that
 * queued several waits a loop turn per record.
 *
 * tls_read_install turns read-ahead on and gives the bufferevent a read
 * callback that reads the socket once (OpenSSL takes what fits its read
 * buffer, about 16 KiB) and then every record OpenSSL holds, up to 64 KiB
 * per callback. Read-ahead means OpenSSL may hold bytes no readiness
 * event announces, so the callback leaves none behind unless it is over
 * the read high watermark (then a drain of the input resumes it) or over
 * its budget (then it runs again next turn); a front that disables
 * reading calls tls_read_kick after enabling it again.
 */
#pragma once

#include <event2/bufferevent.h>

/* tls_read_install: on a bufferevent_openssl in the open state (after the
 * handshake: read-ahead during it would hide the first request). */
void tls_read_install(struct bufferevent *bev);

/* tls_read_kick: after bufferevent_enable(bev, EV_READ): run the read
 * callback if OpenSSL already holds bytes. */
void tls_read_kick(struct bufferevent *bev);
