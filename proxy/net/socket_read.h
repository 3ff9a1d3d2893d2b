/*
 * socket_read.h - a socket bufferevent that reads in large reads without
 * asking first. libevent 2.1's own read callback costs two system calls
 * per read, ioctl(FIONREAD) then readv, and reads at most 4 KiB; under
 * h2load the ioctl alone was 4.7% of portier's CPU, and a 64 KiB response
 * took 17 reads. socket_read_install gives a socket bufferevent a read
 * callback that reads up to 68 KiB per readiness (readvs of 4 KiB, 60 KiB
 * and 4 KiB while the socket has more), and otherwise behaves as
 * libevent's: the read timeout, end of file and errors reach the event
 * callback, data the read callback, watermarks and enable/disable work as
 * before.
 */
#pragma once

#include <sys/types.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

/* socket_read_install: on a connected socket bufferevent (after
 * bufferevent_socket_connect, which re-creates the read event); again on
 * the same bufferevent does nothing. */
void socket_read_install(struct bufferevent *bev);

/* socket_read_some: up to max bytes from fd into in, as described above
 * (conn_io reads the same way): >0 read, 0 nothing (EAGAIN), -1 end of
 * file, -2 error. An end or error met after data is left for the next call. */
ssize_t socket_read_some(int fd, struct evbuffer *in, size_t max);
