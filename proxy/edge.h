/*
 * edge.h - the main thread: owns configuration, the routing and certificate
 * snapshots, the internal CA and cert store, signals, and the workers. Every
 * mutation happens here and reaches workers as a new snapshot.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "config/model.h"

struct edge;
struct worker;
struct challenges;

/* edge_run: run portier with static config cfg (ownership taken) until
 * SIGTERM/SIGINT and the drain that follows. Returns the exit status. */
int edge_run(struct cfg_static *cfg, const char *demo_tenants);

/* For workers (read-only, thread-safe): */
SSL_CTX *edge_ssl_ctx(const struct edge *e);
uint16_t edge_https_port(const struct edge *e);
bool edge_is_trusted_proxy(const struct edge *e, const struct sockaddr *peer);
/* edge_challenges: the ACME challenge answers (http-01 tokens, tls-alpn-01
 * certificates) workers serve to the CA's validators; never NULL while running. */
struct challenges *edge_challenges(const struct edge *e);

/* edge_request_cert: from a worker: obtain host's certificate for mode;
 * answered with worker_post_cert_result. */
void edge_request_cert(struct edge *e, struct worker *w, const char *host, enum cfg_tls_mode mode);

/* edge_worker_exited: from a worker thread whose loop ended. */
void edge_worker_exited(struct edge *e, struct worker *w);
