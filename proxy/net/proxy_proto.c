/*
 * proxy_proto.c - PROXY protocol v1 and v2 headers, parsed strictly and
 * incrementally: each byte is judged when it arrives, so the answer for a
 * buffer never changes as more bytes follow (see pp_parse in the header).
 */
#include "proxy/net/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#define PP_V1_ADDR_MAX 45 /* INET6_ADDRSTRLEN - 1 */
#define PP_V2_FIXED 16    /* signature, version/command, family, length */

enum { PP_V2_LOCAL = 0, PP_V2_PROXY = 1 };
enum { PP_V2_UNSPEC = 0, PP_V2_INET = 1, PP_V2_INET6 = 2, PP_V2_UNIX = 3 };
enum { PP_V2_STREAM = 1 };

static const uint8_t pp_v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				      0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static enum pp_result pp_fail(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return PP_ERROR;
}

/* pp_sockaddr: family's address (network order) and port into *ss. */
static void pp_sockaddr(struct sockaddr_storage *ss, socklen_t *len, int family,
			const void *addr, uint16_t port)
{
	memset(ss, 0, sizeof *ss);
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr, 4);
		*len = sizeof *sin;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr, 16);
		*len = sizeof *sin6;
	}
}

/* ---- version 1 ------------------------------------------------------- */

/* A v1 line being read: p[0..len) with len at most PP_V1_MAX. */
struct pp_cursor {
	const uint8_t *p;
	size_t len, pos;
};

/* pp_v1_field: the field at the cursor: 1..max bytes of `allowed`, ended
 * by one byte of `seps`, stored in *sep and passed over. field gets the
 * bytes NUL-terminated (it holds max + 1). */
static enum pp_result pp_v1_field(struct pp_cursor *c, const char *allowed, size_t max,
				  const char *seps, char *field, char *sep, const char **why)
{
	size_t n = 0;

	for (; c->pos < c->len; c->pos++) {
		uint8_t b = c->p[c->pos];
		if (b && strchr(seps, b)) {
			if (n == 0)
				return pp_fail(why, "v1: empty field or double space");
			field[n] = '\0';
			*sep = (char)b;
			c->pos++;
			return PP_DONE;
		}
		if (!b || !strchr(allowed, b))
			return pp_fail(why, "v1: unexpected byte");
		if (n == max)
			return pp_fail(why, "v1: field too long");
		field[n++] = (char)b;
	}
	return PP_NEED_MORE;
}

/* pp_v1_port: decimal 0-65535, no leading zero except "0" itself. */
static int pp_v1_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;

	if (s[0] == '0' && s[1])
		return -1;
	for (; *s; s++)
		v = v * 10 + (unsigned long)(*s - '0'); /* at most 5 digits: no overflow */
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* pp_v1_unknown: "UNKNOWN" was read and followed by sep: the rest of the
 * line up to CRLF is ignored. */
static enum pp_result pp_v1_unknown(struct pp_cursor *c, char sep, struct pp_header *h,
				    const char **why)
{
	if (sep == '\r') {
		if (c->pos == c->len)
			return PP_NEED_MORE;
		if (c->p[c->pos] != '\n')
			return pp_fail(why, "v1: CR without LF");
		h->consumed = c->pos + 1;
		h->local = true;
		return PP_DONE;
	}
	for (; c->pos + 1 < c->len; c->pos++) {
		if (c->p[c->pos] == '\r' && c->p[c->pos + 1] == '\n') {
			h->consumed = c->pos + 2;
			h->local = true;
			return PP_DONE;
		}
	}
	return PP_NEED_MORE;
}

/* pp_v1_line: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or
 * "PROXY UNKNOWN[ anything]\r\n" within c->len bytes. */
static enum pp_result pp_v1_line(struct pp_cursor *c, struct pp_header *h, const char **why)
{
	static const char prefix[] = "PROXY ";
	char proto[8], addr[2][PP_V1_ADDR_MAX + 1], port[2][6], sep = 0;
	uint8_t bin[2][16];
	uint16_t pnum[2];
	enum pp_result r;
	int family;

	if (memcmp(c->p, prefix, c->len < 6 ? c->len : 6) != 0)
		return pp_fail(why, "not a PROXY protocol header");
	if (c->len < 6)
		return PP_NEED_MORE;
	c->pos = 6;
	if ((r = pp_v1_field(c, "TCP46UNKOW", 7, " \r", proto, &sep, why)) != PP_DONE)
		return r;
	if (strcmp(proto, "UNKNOWN") == 0)
		return pp_v1_unknown(c, sep, h, why);
	if (sep != ' ' || (strcmp(proto, "TCP4") != 0 && strcmp(proto, "TCP6") != 0))
		return pp_fail(why, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
	family = proto[3] == '4' ? AF_INET : AF_INET6;
	for (int i = 0; i < 2; i++) {
		r = family == AF_INET ? pp_v1_field(c, "0123456789.", 15, " ", addr[i], &sep, why)
				      : pp_v1_field(c, "0123456789abcdefABCDEF:.", PP_V1_ADDR_MAX,
						    " ", addr[i], &sep, why);
		if (r != PP_DONE)
			return r;
		if (inet_pton(family, addr[i], bin[i]) != 1)
			return pp_fail(why, family == AF_INET ? "v1: bad TCP4 address"
							      : "v1: bad TCP6 address");
	}
	for (int i = 0; i < 2; i++) {
		if ((r = pp_v1_field(c, "0123456789", 5, i ? "\r" : " ", port[i], &sep, why)) !=
		    PP_DONE)
			return r;
		if (pp_v1_port(port[i], &pnum[i]) < 0)
			return pp_fail(why, "v1: bad port");
	}
	if (c->pos == c->len)
		return PP_NEED_MORE;
	if (c->p[c->pos] != '\n')
		return pp_fail(why, "v1: CR without LF");
	h->consumed = c->pos + 1;
	h->local = false;
	pp_sockaddr(&h->src, &h->src_len, family, bin[0], pnum[0]);
	pp_sockaddr(&h->dst, &h->dst_len, family, bin[1], pnum[1]);
	return PP_DONE;
}

static enum pp_result pp_v1(const uint8_t *buf, size_t len, struct pp_header *out,
			    const char **why)
{
	struct pp_cursor c = {.p = buf, .len = len < PP_V1_MAX ? len : PP_V1_MAX};
	struct pp_header h;
	enum pp_result r;

	memset(&h, 0, sizeof h);
	r = pp_v1_line(&c, &h, why);
	if (r == PP_NEED_MORE && len >= PP_V1_MAX)
		return pp_fail(why, "v1: no CRLF within 107 bytes");
	if (r == PP_DONE)
		*out = h;
	return r;
}

/* ---- version 2 ------------------------------------------------------- */

/* pp_v2_tlvs: p[0..n) is a sequence of whole TLVs (type, 16-bit length, value). */
static int pp_v2_tlvs(const uint8_t *p, size_t n)
{
	while (n) {
		size_t l;
		if (n < 3)
			return -1;
		l = (size_t)p[1] << 8 | p[2];
		if (l > n - 3)
			return -1;
		p += 3 + l;
		n -= 3 + l;
	}
	return 0;
}

static enum pp_result pp_v2(const uint8_t *buf, size_t len, struct pp_header *out,
			    const char **why)
{
	static const size_t addr_len[4] = {0, 12, 36, 216}; /* by family */
	struct pp_header h;
	unsigned cmd, fam, transport;
	size_t plen;
	bool addressed;

	if (memcmp(buf, pp_v2_sig, len < 12 ? len : 12) != 0)
		return pp_fail(why, "not a PROXY protocol header");
	if (len < 13)
		return PP_NEED_MORE;
	if (buf[12] >> 4 != 2)
		return pp_fail(why, "v2: version is not 2");
	cmd = buf[12] & 0x0f;
	if (cmd != PP_V2_LOCAL && cmd != PP_V2_PROXY)
		return pp_fail(why, "v2: command is neither LOCAL nor PROXY");
	if (len < 14)
		return PP_NEED_MORE;
	fam = buf[13] >> 4;
	transport = buf[13] & 0x0f;
	if (fam > PP_V2_UNIX || transport > 2)
		return pp_fail(why, "v2: undefined address family or transport");
	if (len < PP_V2_FIXED)
		return PP_NEED_MORE;
	plen = (size_t)buf[14] << 8 | buf[15];
	if (plen > PP_V2_PAYLOAD_MAX)
		return pp_fail(why, "v2: header longer than accepted");
	/* LOCAL's address block, if any, is ignored whole (spec 2.2). */
	addressed = cmd == PP_V2_PROXY && fam != PP_V2_UNSPEC;
	if (addressed && plen < addr_len[fam])
		return pp_fail(why, "v2: length shorter than the family's addresses");
	if (len < PP_V2_FIXED + plen)
		return PP_NEED_MORE;
	if (addressed && pp_v2_tlvs(buf + PP_V2_FIXED + addr_len[fam], plen - addr_len[fam]) < 0)
		return pp_fail(why, "v2: malformed TLV");

	memset(&h, 0, sizeof h);
	h.consumed = PP_V2_FIXED + plen;
	h.local = !addressed || transport != PP_V2_STREAM ||
		  (fam != PP_V2_INET && fam != PP_V2_INET6);
	if (!h.local) {
		const uint8_t *a = buf + PP_V2_FIXED;
		size_t alen = fam == PP_V2_INET ? 4 : 16;
		int family = fam == PP_V2_INET ? AF_INET : AF_INET6;
		const uint8_t *ports = a + 2 * alen;
		pp_sockaddr(&h.src, &h.src_len, family, a, (uint16_t)(ports[0] << 8 | ports[1]));
		pp_sockaddr(&h.dst, &h.dst_len, family, a + alen,
			    (uint16_t)(ports[2] << 8 | ports[3]));
	}
	*out = h;
	return PP_DONE;
}

enum pp_result pp_parse(const uint8_t *buf, size_t len, struct pp_header *out, const char **why)
{
	if (len == 0)
		return PP_NEED_MORE;
	if (buf[0] == 'P')
		return pp_v1(buf, len, out, why);
	if (buf[0] == pp_v2_sig[0])
		return pp_v2(buf, len, out, why);
	return pp_fail(why, "not a PROXY protocol header");
}
