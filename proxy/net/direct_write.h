/*
 * direct_write.h - write a connection's pending bytes straight to its
 * socket (SSL_write over TLS, writev otherwise) when nothing is queued in
 * its bufferevent, so a response costs no EPOLLOUT registration and its
 * removal; whatever the socket refuses is queued in the bufferevent, which
 * finishes the job as usual.
 */
#pragma once

#include <stdbool.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

/* direct_write: move stage's bytes to bev's socket, or to its output when
 * something is queued there already or the socket refuses them. tls: bev
 * is a bufferevent_openssl. stage is empty afterwards. */
void direct_write(struct bufferevent *bev, bool tls, struct evbuffer *stage);

#define DIRECT_WRITE_COALESCE (16 * 1024)

/* direct_write_move: n bytes from src to dst. Pieces up to
 * DIRECT_WRITE_COALESCE are copied so they join the chain before them (a
 * TLS record and a write(2) per chain); larger ones move without a copy. */
void direct_write_move(struct evbuffer *dst, struct evbuffer *src, size_t n);
