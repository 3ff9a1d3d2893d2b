/*
 * test_proxy_proto.c - PROXY protocol headers: v1 TCP4/TCP6/UNKNOWN, v2
 * PROXY over IPv4/IPv6, LOCAL, UNSPEC and other local forms, TLVs; every
 * prefix of a good header asks for more, bytes after it are never taken;
 * malformed headers fail and stay failed as bytes are added.
 */
#include "tests/unit/check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>

#include "proxy/net/proxy_proto.h"

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* parse_exact: pp_parse on a copy of in[0..len) in a buffer of exactly len
 * bytes, so ASan sees any read past it. */
static enum pp_result parse_exact(const uint8_t *in, size_t len, struct pp_header *h,
				  const char **why)
{
	uint8_t *copy = malloc(len ? len : 1);
	enum pp_result r;

	if (!copy)
		return PP_ERROR;
	memcpy(copy, in, len);
	r = pp_parse(copy, len, h, why);
	free(copy);
	return r;
}

/* addr_str: "IP:PORT" or "[IP6]:PORT" of a parsed address. */
static const char *addr_str(const struct sockaddr_storage *ss, socklen_t len, char *buf,
			    size_t cap)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET && len == sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
		snprintf(buf, cap, "%s:%u", ip, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
		snprintf(buf, cap, "[%s]:%u", ip, ntohs(s->sin6_port));
	} else {
		snprintf(buf, cap, "family %d len %u", ss->ss_family, (unsigned)len);
	}
	return buf;
}

/* same_header: a and b are the same header (padding aside). */
static bool same_header(const struct pp_header *a, const struct pp_header *b)
{
	if (a->local != b->local || a->consumed != b->consumed)
		return false;
	return a->local || (a->src_len == b->src_len && a->dst_len == b->dst_len &&
			    memcmp(&a->src, &b->src, a->src_len) == 0 &&
			    memcmp(&a->dst, &b->dst, a->dst_len) == 0);
}

/* expect_done: in[0..len) holds a header of `consumed` bytes (then maybe
 * more); src/dst are "IP:PORT", or NULL for a local header. Every shorter
 * prefix asks for more and leaves the output alone; every longer one gives
 * the same header. */
static void expect_done_line(int line, const uint8_t *in, size_t len, size_t consumed,
			     const char *src, const char *dst)
{
	struct pp_header h, sentinel;
	const char *why = NULL;
	char buf[96];
	size_t bad_prefix = 0;

	memset(&h, 0, sizeof h);
	if (parse_exact(in, len, &h, &why) != PP_DONE) {
		check_failed++;
		fprintf(stderr, "line %d: not DONE (%s)\n", line, why ? why : "need more");
		return;
	}
	check_passed++;
	CHECK(h.consumed == consumed);
	CHECK(h.local == (src == NULL));
	if (src) {
		CHECK_STR(addr_str(&h.src, h.src_len, buf, sizeof buf), src);
		CHECK_STR(addr_str(&h.dst, h.dst_len, buf, sizeof buf), dst);
	}
	memset(&sentinel, 0x5a, sizeof sentinel);
	for (size_t k = 0; k < consumed; k++) {
		struct pp_header p;
		memset(&p, 0x5a, sizeof p);
		if (parse_exact(in, k, &p, &why) != PP_NEED_MORE ||
		    memcmp(&p, &sentinel, sizeof p) != 0)
			bad_prefix = bad_prefix ? bad_prefix : k + 1;
	}
	if (bad_prefix) {
		check_failed++;
		fprintf(stderr, "line %d: prefix of %zu bytes is not NEED_MORE\n", line,
			bad_prefix - 1);
	} else {
		check_passed++;
	}
	for (size_t k = consumed; k <= len; k++) {
		struct pp_header p;
		CHECK(parse_exact(in, k, &p, &why) == PP_DONE && same_header(&p, &h));
	}
}
#define expect_done(...) \
	expect_done_line(__LINE__, __VA_ARGS__)

/* expect_error: in[0..len) is rejected with a reason, and stays rejected
 * when more bytes follow. */
static void expect_error_line(int line, const uint8_t *in, size_t len)
{
	static const char tail[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n\r\n\x00";
	struct pp_header h, sentinel;
	const char *why = NULL;
	uint8_t more[2048];

	memset(&sentinel, 0x5a, sizeof sentinel);
	memset(&h, 0x5a, sizeof h);
	if (parse_exact(in, len, &h, &why) != PP_ERROR || !why ||
	    memcmp(&h, &sentinel, sizeof h) != 0) {
		check_failed++;
		fprintf(stderr, "line %d: not ERROR\n", line);
		return;
	}
	check_passed++;
	if (len + sizeof tail > sizeof more)
		return;
	memcpy(more, in, len);
	memcpy(more + len, tail, sizeof tail);
	why = NULL;
	CHECK(parse_exact(more, len + sizeof tail, &h, &why) == PP_ERROR && why);
}
#define expect_error(...) expect_error_line(__LINE__, __VA_ARGS__)
#define S(text) (const uint8_t *)(text), sizeof(text) - 1

/* v2: a v2 header with payload p[0..plen) into out; its length. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *p, size_t plen)
{
	memcpy(out, v2_sig, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (uint8_t)(plen >> 8);
	out[15] = (uint8_t)plen;
	if (plen)
		memcpy(out + 16, p, plen);
	return 16 + plen;
}

static void test_v1(void)
{
	static const char tcp4[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
	static const char tcp6[] = "PROXY TCP6 2001:db8::1 2001:DB8::2 65535 0\r\n\x16\x03\x01";
	static const char mapped[] = "PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n";
	static const char unknown[] = "PROXY UNKNOWN\r\nX";
	/* The spec's worst case: 107 bytes exactly. */
	static const char longest[] =
		"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	static const char longest6[] =
		"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

	expect_done(S(tcp4), 45, "192.0.2.1:56324", "198.51.100.2:443");
	expect_done(S(tcp6), sizeof tcp6 - 4, "[2001:db8::1]:65535", "[2001:db8::2]:0");
	expect_done(S(mapped), sizeof mapped - 1, "[::ffff:192.0.2.7]:1", "[::1]:2");
	expect_done(S("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), 44, "0.0.0.0:0",
		    "255.255.255.255:65535");
	expect_done(S(unknown), sizeof unknown - 2, NULL, NULL);
	expect_done(S("PROXY UNKNOWN 1.2.3.4 whatever\r\n"), 32, NULL, NULL);
	CHECK(sizeof longest - 1 == PP_V1_MAX);
	expect_done(S(longest), PP_V1_MAX, NULL, NULL);
	expect_done(S(longest6), sizeof longest6 - 1, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
		    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void test_v1_bad(void)
{
	uint8_t line[200];

	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 080 1\r\n"));
	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n"));
	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n"));
	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"));
	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 123456"));
	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"));
	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"));
	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n"));
	expect_error(S("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"));
	expect_error(S("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"));
	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"));
	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"));
	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"));
	expect_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"));
	expect_error(S("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"));
	expect_error(S("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"));
	expect_error(S("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"));
	expect_error(S("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n"));
	expect_error(S("PROXY TCP4 ::1 ::1 1 2\r\n"));
	expect_error(S("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"));
	expect_error(S("PROXY TCP6 2001:db8:::1 ::1 1 2\r\n"));
	expect_error(S("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"));
	expect_error(S("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"));
	expect_error(S("PROXY TCP4\r\n"));
	expect_error(S("PROXY UNKNOWNX\r\n"));
	expect_error(S("PROXY UNKNOWN\rX"));
	expect_error(S("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"));
	expect_error(S("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"));
	expect_error(S("PROXZ"));
	expect_error(S("GET / HTTP/1.1\r\n"));
	expect_error(S("\x16\x03\x01\x02\x00"));
	expect_error(S("P\0"));

	/* No CRLF within 107 bytes: asks for more up to 106, fails at 107. */
	memcpy(line, "PROXY UNKNOWN ", 14);
	memset(line + 14, 'a', sizeof line - 14);
	struct pp_header h;
	const char *why = NULL;
	CHECK(parse_exact(line, PP_V1_MAX - 1, &h, &why) == PP_NEED_MORE);
	expect_error(line, PP_V1_MAX);
	expect_error(line, sizeof line);
	line[PP_V1_MAX - 1] = '\r'; /* CR as the 107th byte, LF would be the 108th */
	line[PP_V1_MAX] = '\n';
	expect_error(line, PP_V1_MAX + 1);
}

static void test_v2(void)
{
	static const uint8_t in4[] = {192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb};
	uint8_t in6[36] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1, [16] = 0x20, 0x01, 0x0d, 0xb8,
			   [31] = 2, [32] = 0xff, 0xff, 0x00, 0x50};
	uint8_t p[600], buf[1400];
	size_t n;

	/* PROXY TCP4, then the client's bytes. */
	n = v2(buf, 0x21, 0x11, in4, sizeof in4);
	memcpy(buf + n, "GET /", 5);
	expect_done(buf, n + 5, 28, "192.0.2.1:56324", "198.51.100.2:443");

	/* PROXY TCP6. */
	n = v2(buf, 0x21, 0x21, in6, sizeof in6);
	expect_done(buf, n, 52, "[2001:db8::1]:65535", "[2001:db8::2]:80");

	/* LOCAL (a health check from the balancer): its addresses are ignored. */
	n = v2(buf, 0x20, 0x00, NULL, 0);
	expect_done(buf, n, 16, NULL, NULL);
	n = v2(buf, 0x20, 0x11, in4, sizeof in4);
	expect_done(buf, n, 28, NULL, NULL);
	n = v2(buf, 0x20, 0x21, in4, 3); /* LOCAL: the block is not looked at */
	expect_done(buf, n, 19, NULL, NULL);

	/* PROXY with UNSPEC, UNIX, or a datagram transport: local. */
	n = v2(buf, 0x21, 0x00, NULL, 0);
	expect_done(buf, n, 16, NULL, NULL);
	n = v2(buf, 0x21, 0x00, in4, 5);
	expect_done(buf, n, 21, NULL, NULL);
	memset(p, 0, 216);
	n = v2(buf, 0x21, 0x31, p, 216);
	expect_done(buf, n, 232, NULL, NULL);
	n = v2(buf, 0x21, 0x12, in4, sizeof in4);
	expect_done(buf, n, 28, NULL, NULL);
	n = v2(buf, 0x21, 0x10, in4, sizeof in4);
	expect_done(buf, n, 28, NULL, NULL);

	/* TLVs (ALPN "h2", AUTHORITY, an empty NOOP) are skipped. */
	memcpy(p, in4, sizeof in4);
	memcpy(p + 12, "\x01\x00\x02h2\x02\x00\x0b" "example.com\x04\x00\x00", 3 + 2 + 3 + 11 + 3);
	n = v2(buf, 0x21, 0x11, p, 12 + 22);
	expect_done(buf, n, 16 + 34, "192.0.2.1:56324", "198.51.100.2:443");

	/* The largest payload accepted: addresses, then one TLV filling it. */
	memcpy(p, in4, sizeof in4);
	n = PP_V2_PAYLOAD_MAX - 12 - 3;
	p[12] = 0x04;
	p[13] = (uint8_t)(n >> 8);
	p[14] = (uint8_t)n;
	memcpy(buf, v2_sig, 12);
	buf[12] = 0x21;
	buf[13] = 0x11;
	buf[14] = PP_V2_PAYLOAD_MAX >> 8;
	buf[15] = PP_V2_PAYLOAD_MAX & 0xff;
	memcpy(buf + 16, p, 15);
	memset(buf + 31, 0, n);
	CHECK(16 + PP_V2_PAYLOAD_MAX == PP_HEADER_MAX && PP_HEADER_MAX <= sizeof buf);
	expect_done(buf, PP_HEADER_MAX, PP_HEADER_MAX, "192.0.2.1:56324", "198.51.100.2:443");
}

static void test_v2_bad(void)
{
	static const uint8_t in4[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
	uint8_t buf[1400], p[64];
	size_t n;

	/* Signature. */
	n = v2(buf, 0x21, 0x11, in4, sizeof in4);
	buf[7] = 'X';
	expect_error(buf, n);
	expect_error(buf, 8);
	expect_error(S("\r\n\r\n\r\n"));
	/* Version 1 and 3, commands 2 and 15. */
	n = v2(buf, 0x11, 0x11, in4, sizeof in4);
	expect_error(buf, n);
	expect_error(buf, 13);
	n = v2(buf, 0x31, 0x11, in4, sizeof in4);
	expect_error(buf, n);
	n = v2(buf, 0x22, 0x11, in4, sizeof in4);
	expect_error(buf, n);
	n = v2(buf, 0x2f, 0x11, in4, sizeof in4);
	expect_error(buf, n);
	/* Undefined family or transport. */
	n = v2(buf, 0x21, 0x41, in4, sizeof in4);
	expect_error(buf, 14);
	n = v2(buf, 0x21, 0x13, in4, sizeof in4);
	expect_error(buf, n);
	n = v2(buf, 0x20, 0xf0, NULL, 0);
	expect_error(buf, n);
	/* Longer than accepted: known from the fixed 16 bytes. */
	memcpy(buf, v2_sig, 12);
	buf[12] = 0x21;
	buf[13] = 0x11;
	buf[14] = (PP_V2_PAYLOAD_MAX + 1) >> 8;
	buf[15] = (PP_V2_PAYLOAD_MAX + 1) & 0xff;
	expect_error(buf, 16);
	buf[14] = buf[15] = 0xff;
	expect_error(buf, 16);
	buf[12] = 0x20; /* LOCAL too */
	expect_error(buf, 16);
	/* Length shorter than the family's addresses. */
	n = v2(buf, 0x21, 0x11, in4, 8);
	expect_error(buf, n);
	expect_error(buf, 16);
	n = v2(buf, 0x21, 0x21, in4, 12);
	expect_error(buf, n);
	memset(p, 0, sizeof p);
	n = v2(buf, 0x21, 0x31, p, 64);
	expect_error(buf, n);
	/* Malformed TLVs: truncated header, value past the end. */
	memcpy(p, in4, 12);
	memcpy(p + 12, "\x04\x00", 2);
	n = v2(buf, 0x21, 0x11, p, 14);
	expect_error(buf, n);
	memcpy(p + 12, "\x04\x00\x05" "abcd", 7);
	n = v2(buf, 0x21, 0x11, p, 19);
	expect_error(buf, n);
}

static void test_misc(void)
{
	struct pp_header h;
	const char *why = "unset";

	CHECK(pp_parse((const uint8_t *)"", 0, &h, &why) == PP_NEED_MORE);
	CHECK(pp_parse((const uint8_t *)"x", 1, &h, NULL) == PP_ERROR); /* why may be NULL */
	CHECK(pp_parse((const uint8_t *)"x", 1, &h, &why) == PP_ERROR);
	CHECK_STR(why, "not a PROXY protocol header");
	why = NULL;
	CHECK(pp_parse(S("PROXY TCP4 1.2.3.4 5.6.7.8 080 1\r\n"), &h, &why) == PP_ERROR);
	CHECK_STR(why, "v1: bad port");
}

int main(void)
{
	test_v1();
	test_v1_bad();
	test_v2();
	test_v2_bad();
	test_misc();
	return check_done();
}
