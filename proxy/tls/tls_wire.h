/*
 * tls_wire.h - the BIO between a client connection's SSL and its socket.
 * OpenSSL's socket BIO makes a system call for every BIO_read and
 * BIO_write; this one saves three per full handshake, and two TCP segments:
 *
 * - Held writes. While corked (during SSL_do_handshake), records are held
 *   in memory and the caller flushes them once the handshake waits for the
 *   client. TLS 1.3's session ticket, written as the handshake completes,
 *   stays held until the next write, and leaves in the same writev as the
 *   first answer (or the close_notify), not in a segment of its own.
 *   conn_io corks the same way to send up to 64 KiB of records in one
 *   write (OpenSSL hands the BIO one record at a time).
 * - No read after a drained socket. A read that returned less than asked
 *   emptied the socket, so the next one would only return EAGAIN (OpenSSL
 *   always reads after it sends a flight) until a readiness announces more:
 *   that read answers "retry" without a system call. The socket is
 *   level-triggered, so bytes that come meanwhile are announced anyway.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* tls_wire_attach: read and write ssl over fd through a tls_wire (which
 * does not close fd). 0, or -1 when out of memory. */
int tls_wire_attach(SSL *ssl, int fd);

/* tls_wire_cork: while on, writes are held rather than sent. */
void tls_wire_cork(SSL *ssl, bool on);

/* tls_wire_reserve: room for len more held bytes, so that the records of
 * a corked batch go in without a reallocation each. 0, or -1 when out of
 * memory. */
int tls_wire_reserve(SSL *ssl, size_t len);

/* tls_wire_corked: writes are held now. */
bool tls_wire_corked(const SSL *ssl);

/* tls_wire_flush: send what is held. 1 when all of it went, 0 when the
 * socket took only part (the rest stays held: wait until writable), -1 on
 * an error. */
int tls_wire_flush(SSL *ssl);

/* tls_wire_held: bytes held, not yet sent. */
size_t tls_wire_held(const SSL *ssl);

/* tls_wire_readable: a readiness came; the next read asks the socket. */
void tls_wire_readable(SSL *ssl);

/* The functions above do nothing (0 bytes held, 1 from a flush) on an
 * SSL without a tls_wire, such as one on OpenSSL's socket BIO. */
