/*
 * tls_conn.h - the TLS handshake of an accepted connection, driven on the
 * raw socket so it can be parked while the main thread obtains the
 * certificate (SSL_CLIENT_HELLO_RETRY); then the connection goes to the
 * front that ALPN chose, with its SSL in the open state.
 */
#pragma once

#include <sys/socket.h>

#include <openssl/ssl.h>

#include "proxy/net/peer.h"
#include "proxy/worker.h"

struct tls_conn;

/* tls_conn_init: once, before any worker starts. */
int tls_conn_init(void);

/* tls_conn_accept: start the handshake on fd (ownership taken). */
void tls_conn_accept(struct worker *w, int fd, const struct conn_origin *o);

/* tls_conn_client_hello: the ClientHello callback installed in the shared
 * SSL_CTX: picks the certificate from the worker's cert index, or parks. */
int tls_conn_client_hello(SSL *ssl, int *alert, void *arg);

/* tls_conn_cert_result: the main thread answered for host; resume or fail
 * the handshakes parked on it. */
void tls_conn_cert_result(struct worker *w, const char *host, int ok);

/* tls_conn_drain: drop every handshake in progress (shutdown). */
void tls_conn_drain(struct worker *w);

/* The name the default certificate is issued for when tls.unknown_sni is "default". */
#define TLS_DEFAULT_CERT_HOST "portier.invalid"
