/*
 * proxy_proto.h - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) a TCP load balancer sends before the client's bytes, to
 * pass on the client's address. A pure parser: no I/O, no allocation; the
 * listener side (trust, reading, timeouts) is proxy_accept.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* PP_HEADER_MAX: pp_parse decides (DONE or ERROR) on at most this many
 * bytes: a v1 line is at most 107; a v2 header 16 bytes plus at most
 * PP_V2_PAYLOAD_MAX (the UNIX address block, 216, and 1 KiB of TLVs). */
#define PP_V1_MAX 107
#define PP_V2_PAYLOAD_MAX (216 + 1024)
#define PP_HEADER_MAX (16 + PP_V2_PAYLOAD_MAX)

enum pp_result { PP_NEED_MORE, PP_DONE, PP_ERROR };

struct pp_header {
	bool local; /* v2 LOCAL (or PROXY without TCP addresses), v1 "UNKNOWN":
		     * keep the socket's own addresses */
	struct sockaddr_storage src, dst; /* when !local: the client, the original destination */
	socklen_t src_len, dst_len;
	size_t consumed; /* bytes of the header, to remove from the stream */
};

/*
 * pp_parse: a v1 ("PROXY TCP4 ...\r\n") or v2 (binary) header at the start
 * of buf[0..len).
 *   PP_DONE:      *out is filled; out->consumed <= len. Bytes after it are
 *                 the client's and are not looked at.
 *   PP_NEED_MORE: buf is a valid prefix of a header (len < PP_HEADER_MAX);
 *                 every byte of it belongs to the header, so a caller may
 *                 consume them before reading more.
 *   PP_ERROR:     not a header, or a malformed one; *why (when why is not
 *                 NULL) is a static reason.
 * The answer only ever moves forward as bytes are added: a prefix of a
 * DONE input is NEED_MORE, an input extending an ERROR one is ERROR, and
 * DONE stays DONE with the same header. *out is written only on PP_DONE.
 *
 * Strict: v1 with single spaces, TCP4/TCP6 addresses that inet_pton parses
 * in that family, decimal ports 0-65535 without leading zeros, CRLF within
 * 107 bytes; "UNKNOWN" (rest of the line ignored) is local. v2 with version
 * 2, command LOCAL or PROXY, a defined family and transport, a length that
 * holds the address block and at most PP_V2_PAYLOAD_MAX, and whole TLVs
 * after a PROXY address block (then skipped). LOCAL (whose block is ignored
 * whole), and PROXY over anything but TCP over IPv4/IPv6, are local.
 */
enum pp_result pp_parse(const uint8_t *buf, size_t len, struct pp_header *out, const char **why);
