/*
 * headers.h - header rewriting between client and backend: hop-by-hop
 * removal (RFC 9110 7.6.1), forwarding headers, the request id, strip_prefix.
 * Protocol-neutral: works on header lists, writes HTTP/1.1 to the backend.
 */
#pragma once

#include "proxy/http/head_out.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "proxy/http/req.h"

/* headers_is_hop_by_hop: whether hs[i] must not be forwarded: a fixed
 * hop-by-hop name, or a name listed in one of the list's Connection headers. */
bool headers_is_hop_by_hop(const struct h1_header *hs, size_t n, size_t i);

/* headers_end_to_end: the fields of hs[0..n) that are not hop-by-hop, in
 * order, into keep (room for n); Content-Length only when keep_length.
 * One pass: the same answer as headers_is_hop_by_hop on each. */
size_t headers_end_to_end(const struct h1_header *hs, size_t n, bool keep_length,
			  struct h1_header *keep);

/* headers_strip_prefix: the path to send after removing prefix from
 * path[0..len) when it is a whole-segment prefix; "/" when nothing is left.
 * Returns the new length; *out points into path or at "/". */
size_t headers_strip_prefix(const char *path, size_t len, const char *prefix, const char **out);

/* headers_compose_upstream: the backend request head for r into h, where
 * it stays while it fits the stack buffer (the caller may then send it from
 * there), else spills into h's evbuffer. body_len is the Content-Length to
 * send (-1: none), chunked sends Transfer-Encoding: chunked. Forwarding
 * headers are appended to the client's when the peer is trusted, replaced
 * otherwise. Out of memory sets h->failed (head_out_end returns -1): the
 * head is then cut and must not be sent. */
void headers_compose_upstream(struct head_out *h, const struct req *r, int64_t body_len,
			      bool chunked);
