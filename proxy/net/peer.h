/*
 * peer.h - what a front needs to know about an accepted connection's ends:
 * the client's address as text and the local port it reached.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* peer_format_ip: sa's address as text (IPv4-mapped IPv6 as IPv4),
 * "unknown" for other families. */
void peer_format_ip(const struct sockaddr *sa, char *out, size_t cap);

/* peer_local_port: the local port of socket fd, 0 when unknown. */
uint16_t peer_local_port(int fd);
