/*
 * direct_write.h - moving response bytes toward a connection's output so
 * that they leave in few TLS records: conn_io_write makes a record (or
 * more) of each chain of the buffer, and sends up to 64 KiB of records in
 * one write(2).
 */
#pragma once

#include <stddef.h>

#include <event2/buffer.h>

#define DIRECT_WRITE_COALESCE (16 * 1024)

/* direct_write_move: n bytes from src to dst. Pieces up to
 * DIRECT_WRITE_COALESCE are copied so they join the chain before them;
 * larger ones move without a copy. */
void direct_write_move(struct evbuffer *dst, struct evbuffer *src, size_t n);
