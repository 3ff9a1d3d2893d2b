/*
 * conn_io.h - a client connection's bytes: its socket in the clear or
 * under TLS, an input and an output buffer, and three callbacks, in place
 * of a bufferevent. A bufferevent_openssl kept 1.1 KiB per connection
 * beyond OpenSSL's own (696 B of its state, two buffers and three
 * callbacks: a tenth of an idle connection), and re-added its read event
 * on every change to the input and its write event on every enable. Here
 * an event moves only when what the connection waits for changes.
 *
 * Reading, while on: at readiness up to 64 KiB per turn (then the other
 * connections' turn), in large reads. Under TLS, read-ahead is on, so one
 * read(2) takes all the client queued, and every record OpenSSL holds is
 * taken as well (no readiness would announce it). The read callback then
 * sees the new bytes in the input. At the read high watermark reading
 * pauses until the input drains below it. An end of file or an error met
 * after data reaches the event callback once the data was delivered.
 *
 * Writing: bytes added to the output go to the socket when it takes them;
 * conn_io_write tries the socket first, so an answer costs no EPOLLOUT
 * registration. The write callback runs after a write from the output
 * leaves it at or below the write low watermark.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

/* What the event callback is told: one of the first three, with one of
 * the last two. */
#define CONN_IO_EOF 0x01
#define CONN_IO_ERROR 0x02
#define CONN_IO_TIMEOUT 0x04
#define CONN_IO_READING 0x10
#define CONN_IO_WRITING 0x20

struct conn_io;

typedef void (*conn_io_cb)(struct conn_io *io, void *arg);
typedef void (*conn_io_event_cb)(struct conn_io *io, short what, void *arg);

/* conn_io_new: around the connected, non-blocking fd; ssl (NULL in the
 * clear) has finished its handshake on fd. Takes both, and frees them when
 * it fails (NULL). Reading is off; no callbacks are set. */
struct conn_io *conn_io_new(struct event_base *base, int fd, SSL *ssl);

/* conn_io_free: closes the socket; may be called from any callback. Under
 * TLS a close_notify goes first, unless the connection failed or was
 * stopped, or output is left unwritten. */
void conn_io_free(struct conn_io *io);

void conn_io_setcb(struct conn_io *io, conn_io_cb on_read, conn_io_cb on_write,
		   conn_io_event_cb on_event, void *arg);

struct evbuffer *conn_io_input(struct conn_io *io);
struct evbuffer *conn_io_output(struct conn_io *io);
int conn_io_fd(const struct conn_io *io);

/* conn_io_read_on: read (again). Bytes or an end OpenSSL holds from
 * before reach the read callback from the loop. Again while on: nothing. */
void conn_io_read_on(struct conn_io *io);
void conn_io_read_off(struct conn_io *io);
bool conn_io_reading(const struct conn_io *io);

/* conn_io_read_high: the input's length at which reading pauses (0: none). */
void conn_io_read_high(struct conn_io *io, size_t high);

/* conn_io_write_low: the output's length at or below which a write runs
 * the write callback (0: only once it is empty). */
void conn_io_write_low(struct conn_io *io, size_t low);

/* conn_io_timeouts: rd bounds the wait for bytes while reading is on, wr
 * the wait for the socket to take pending output; either NULL for none.
 * A timeout reaches the event callback and stops that direction. libevent
 * common timeouts are kept as such. */
void conn_io_timeouts(struct conn_io *io, const struct timeval *rd, const struct timeval *wr);

/* conn_io_write: stage's bytes to the socket now when the output is empty,
 * the rest (or all, when something is queued) to the output. stage is
 * empty afterwards. */
void conn_io_write(struct conn_io *io, struct evbuffer *stage);

/* conn_io_write_last: conn_io_write of the connection's last bytes (stage
 * may be NULL: none). Under TLS with nothing queued, the close_notify
 * leaves in the same write as them (and a session ticket still held from
 * the handshake before them): one segment rather than two. Nothing may be
 * written after. */
void conn_io_write_last(struct conn_io *io, struct evbuffer *stage);

/* conn_io_flushed: nothing written waits for the socket: neither output
 * nor records held that it refused (a batch's, conn_io_write_last's). */
bool conn_io_flushed(const struct conn_io *io);

/* conn_io_stop: neither read nor write any more (no callback runs), until
 * conn_io_free, which then closes without a close_notify (an abort). */
void conn_io_stop(struct conn_io *io);
