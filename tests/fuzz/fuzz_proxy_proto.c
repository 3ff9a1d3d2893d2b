/*
 * fuzz_proxy_proto.c - libFuzzer harness for the PROXY protocol parser.
 * Every prefix of the input is parsed in a buffer of exactly its size: the
 * answers must only move forward (NEED_MORE, then DONE or ERROR for good),
 * DONE must be the same header at every length from `consumed` on, never
 * more than the input, with consistent addresses, and ERROR must give a
 * reason. A parsed header written back as v1 and as v2 must parse to the
 * same addresses.
 */
#include "proxy/net/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum pp_result fuzz_parse(const uint8_t *in, size_t len, struct pp_header *h)
{
	uint8_t *copy = malloc(len ? len : 1);
	const char *why = NULL;
	struct pp_header out, sentinel;
	enum pp_result r;

	FUZZ_ASSERT(copy);
	memcpy(copy, in, len);
	memset(&sentinel, 0x5a, sizeof sentinel);
	memset(&out, 0x5a, sizeof out);
	r = pp_parse(copy, len, &out, &why);
	free(copy);
	FUZZ_ASSERT(r == PP_NEED_MORE || r == PP_DONE || r == PP_ERROR);
	FUZZ_ASSERT((r == PP_ERROR) == (why != NULL));
	if (r != PP_DONE) {
		FUZZ_ASSERT(memcmp(&out, &sentinel, sizeof out) == 0);
		FUZZ_ASSERT(r != PP_NEED_MORE || len < PP_HEADER_MAX);
		return r;
	}
	FUZZ_ASSERT(out.consumed > 0 && out.consumed <= len && out.consumed <= PP_HEADER_MAX);
	if (!out.local) {
		int fam = out.src.ss_family;
		socklen_t want = fam == AF_INET ? sizeof(struct sockaddr_in)
						: sizeof(struct sockaddr_in6);
		FUZZ_ASSERT(fam == AF_INET || fam == AF_INET6);
		FUZZ_ASSERT(out.dst.ss_family == fam);
		FUZZ_ASSERT(out.src_len == want && out.dst_len == want);
	}
	*h = out;
	return r;
}

/* fuzz_same: a and b are the same header (padding aside). */
static bool fuzz_same(const struct pp_header *a, const struct pp_header *b)
{
	if (a->local != b->local || a->consumed != b->consumed)
		return false;
	return a->local || (a->src_len == b->src_len && a->dst_len == b->dst_len &&
			    memcmp(&a->src, &b->src, a->src_len) == 0 &&
			    memcmp(&a->dst, &b->dst, a->dst_len) == 0);
}

/* fuzz_addr: the address and port of a parsed (non-local) header's side. */
static void fuzz_addr(const struct sockaddr_storage *ss, const void **addr, size_t *alen,
		      uint16_t *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
		*addr = &s->sin_addr;
		*alen = 4;
		*port = ntohs(s->sin_port);
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		*addr = &s->sin6_addr;
		*alen = 16;
		*port = ntohs(s->sin6_port);
	}
}

/* fuzz_same_addrs: a and b carry the same source and destination. */
static void fuzz_same_addrs(const struct pp_header *a, const struct pp_header *b)
{
	const void *x, *y;
	size_t xl, yl;
	uint16_t xp, yp;

	FUZZ_ASSERT(!a->local && !b->local);
	fuzz_addr(&a->src, &x, &xl, &xp);
	fuzz_addr(&b->src, &y, &yl, &yp);
	FUZZ_ASSERT(xl == yl && xp == yp && memcmp(x, y, xl) == 0);
	fuzz_addr(&a->dst, &x, &xl, &xp);
	fuzz_addr(&b->dst, &y, &yl, &yp);
	FUZZ_ASSERT(xl == yl && xp == yp && memcmp(x, y, xl) == 0);
}

/* fuzz_round_trip: h written as v1 and as v2 parses back to itself. */
static void fuzz_round_trip(const struct pp_header *h)
{
	static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
					0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	uint8_t buf[128];
	struct pp_header back;
	const void *sa, *da;
	size_t alen, n;
	uint16_t sp, dp;
	int fam = h->src.ss_family, len;

	fuzz_addr(&h->src, &sa, &alen, &sp);
	fuzz_addr(&h->dst, &da, &alen, &dp);
	FUZZ_ASSERT(inet_ntop(fam, sa, src, sizeof src) && inet_ntop(fam, da, dst, sizeof dst));
	len = snprintf((char *)buf, sizeof buf, "PROXY TCP%c %s %s %u %u\r\n",
		       fam == AF_INET ? '4' : '6', src, dst, sp, dp);
	FUZZ_ASSERT(len > 0 && (size_t)len <= PP_V1_MAX);
	FUZZ_ASSERT(fuzz_parse(buf, (size_t)len, &back) == PP_DONE);
	FUZZ_ASSERT(back.consumed == (size_t)len);
	fuzz_same_addrs(h, &back);

	memcpy(buf, sig, 12);
	buf[12] = 0x21;
	buf[13] = fam == AF_INET ? 0x11 : 0x21;
	buf[14] = 0;
	buf[15] = (uint8_t)(2 * alen + 4);
	memcpy(buf + 16, sa, alen);
	memcpy(buf + 16 + alen, da, alen);
	n = 16 + 2 * alen;
	buf[n++] = (uint8_t)(sp >> 8);
	buf[n++] = (uint8_t)sp;
	buf[n++] = (uint8_t)(dp >> 8);
	buf[n++] = (uint8_t)dp;
	FUZZ_ASSERT(fuzz_parse(buf, n, &back) == PP_DONE);
	FUZZ_ASSERT(back.consumed == n);
	fuzz_same_addrs(h, &back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_header whole, h;
	enum pp_result r, prev = PP_NEED_MORE;
	size_t len = size < 2 * PP_HEADER_MAX ? size : 2 * PP_HEADER_MAX;

	r = fuzz_parse(data, len, &whole);
	for (size_t k = 0; k < len; k++) {
		enum pp_result rk = fuzz_parse(data, k, &h);
		/* Forward only: NEED_MORE may become anything; DONE and ERROR stay. */
		FUZZ_ASSERT(prev == PP_NEED_MORE || rk == prev);
		if (rk == PP_DONE) {
			FUZZ_ASSERT(r == PP_DONE && fuzz_same(&h, &whole));
			FUZZ_ASSERT(k >= whole.consumed);
		}
		if (r == PP_DONE && k < whole.consumed)
			FUZZ_ASSERT(rk == PP_NEED_MORE);
		prev = rk;
	}
	FUZZ_ASSERT(prev == PP_NEED_MORE || r == prev);
	if (r == PP_DONE && !whole.local)
		fuzz_round_trip(&whole);
	return 0;
}
