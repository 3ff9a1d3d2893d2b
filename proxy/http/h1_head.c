/*
 * h1_head.c - strict HTTP/1.x head parsing: a pre-scan of our own, then
 * (for requests) http-parser, then the RFC 9112 framing and routing checks.
 *
 * A request head is read by two parsers on purpose. The pre-scan refuses
 * what http-parser tolerates and request smuggling relies on (bare LF,
 * obs-fold, whitespace before a colon, control bytes, sloppy request
 * lines); http-parser then parses it again. Where they could disagree on
 * framing (Content-Length, chunked) the checks compare both views and
 * refuse the message when they differ.
 *
 * A response head is read by the pre-scan alone, which fills the field
 * table itself. Bodies in both directions are framed by portier's own
 * decoder from that table, so for responses http-parser's view fed
 * nothing: it was a second opinion that cost 4,500 of the 46,000
 * instructions a proxied request took (callgrind, h2load over TLS), more
 * than the pre-scan, which refuses everything it would.
 *
 * Status choices for requests:
 *   400  malformed syntax, ambiguous framing (CL+TE, duplicate or list CL,
 *        "chunked" repeated or not last, TE on HTTP/1.0), Host problems,
 *        bad request-target, lowercase or non-token methods;
 *   417  an Expect other than 100-continue;
 *   431  more headers than lim->header_count, or more bytes than
 *        lim->header_size (or than http-parser's own 80 KiB cap);
 *   501  a well-formed uppercase method http-parser does not know (RFC 9110
 *        15.6.2), CONNECT (no tunnels on HTTP/1.1 here), or a transfer
 *        coding other than chunked (gzip, identity, ...; RFC 9112 6.1);
 *   505  a well-formed HTTP-version other than 1.0 and 1.1.
 * Every failure of a response head is 502.
 */
#include "proxy/http/h1_head.h"

#include <arpa/inet.h>
#include <string.h>

/* Parse state shared by the http-parser callbacks through parser->data. */
struct h1_parse {
	struct h1_header *headers;
	size_t cap;
	size_t n;
	bool in_value;          /* the last data callback was a header value */
	const char *url;
	size_t url_len;
	size_t scanned_headers; /* header lines counted by the pre-scan */
	bool head_done;
	int status;             /* set by a callback that stops http-parser */
	const char *why;
	struct h1_request_head *req;
};

/* Framing of a message as read from its Content-Length and
 * Transfer-Encoding fields. */
struct h1_framing {
	int64_t content_length; /* -1 when none */
	bool chunked;
};

/* A cursor over a comma-separated field value (RFC 9110 5.6.1). */
struct h1_list {
	const char *p;
	const char *end;
	bool done;
};

/* h1_fail: record the reason for the caller and return the status. */
static int h1_fail(const char **why, int status, const char *reason)
{
	if (why)
		*why = reason;
	return status;
}

static unsigned char h1_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool h1_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool h1_is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Byte classes, one lookup per byte: the pre-scan reads every byte of
 * every head, and a chain of comparisons (with a strchr for punctuation)
 * per byte was a tenth of a proxied request's instructions.
 *   H1_TCHAR  RFC 9110 5.6.2 token characters: ALPHA, DIGIT, !#$%&'*+-.^_`|~
 *   H1_FIELD  what a field value or reason phrase may hold: HTAB, SP,
 *             VCHAR, obs-text; other controls and DEL are refused. */
enum { H1_TCHAR = 1, H1_FIELD = 2 };
static const unsigned char h1_class[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, /* 0x00: HTAB only */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	2, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2, /* SP !"#$%&'()*+,-./ */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, /* 0-9 :;<=>? */
	2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* @ A-O */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 3, 3, /* P-Z [\]^_ */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* ` a-o */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 3, 0, /* p-z {|}~ DEL */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80-0xff: obs-text */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static bool h1_is_tchar(unsigned char c)
{
	return h1_class[c] & H1_TCHAR;
}

static bool h1_is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!h1_is_tchar((unsigned char)s[i]))
			return false;
	return true;
}

static bool h1_is_field_byte(unsigned char c)
{
	return h1_class[c] & H1_FIELD;
}

static bool h1_mem_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (h1_lower((unsigned char)a[i]) != h1_lower((unsigned char)b[i]))
			return false;
	return true;
}

bool h1_ieq(const char *a, const char *b, size_t n)
{
	return h1_mem_ieq(a, n, b, n);
}

/* h1_trim: strip optional whitespace (SP, HTAB) from both ends of [*s, *s+*n). */
static void h1_trim(const char **s, size_t *n)
{
	while (*n > 0 && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

static void h1_list_init(struct h1_list *l, const char *value, size_t len)
{
	l->p = value;
	l->end = value + len;
	l->done = false;
}

/* h1_list_next: the next element, OWS trimmed (possibly empty); false
 * after the last one. */
static bool h1_list_next(struct h1_list *l, const char **elt, size_t *elt_len)
{
	if (l->done)
		return false;
	const char *comma = memchr(l->p, ',', (size_t)(l->end - l->p));
	const char *stop = comma ? comma : l->end;
	*elt = l->p;
	*elt_len = (size_t)(stop - l->p);
	h1_trim(elt, elt_len);
	if (comma)
		l->p = comma + 1;
	else
		l->done = true;
	return true;
}

/* h1_list_has: whether any `name` field lists `token` (Connection). */
static bool h1_list_has(const struct h1_header *h, size_t n, const char *name, const char *token)
{
	for (size_t i = 0; i < n; i++) {
		if (!h1_token_eq(h[i].name, h[i].name_len, name))
			continue;
		struct h1_list l;
		const char *e;
		size_t elen;
		h1_list_init(&l, h[i].value, h[i].value_len);
		while (h1_list_next(&l, &e, &elen))
			if (h1_token_eq(e, elen, token))
				return true;
	}
	return false;
}

/* h1_find: the first `name` field and how many there are. */
static const struct h1_header *h1_find(const struct h1_header *h, size_t n, const char *name,
				       unsigned *count)
{
	const struct h1_header *first = NULL;
	*count = 0;
	for (size_t i = 0; i < n; i++) {
		if (!h1_token_eq(h[i].name, h[i].name_len, name))
			continue;
		if (!first)
			first = &h[i];
		(*count)++;
	}
	return first;
}

/* ---- pre-scan ------------------------------------------------------------ */

/* h1_line_next: the line starting at *pos, without its CRLF; *pos moves past
 * the CRLF. A bare LF, a CR not followed by LF, or a missing CRLF is 400.
 * Two memchr find what a byte loop would, several bytes at a time. */
static int h1_line_next(const char *buf, size_t len, size_t *pos, const char **line,
			size_t *line_len, const char **why)
{
	const char *start = buf + *pos;
	const char *cr = memchr(start, '\r', len - *pos);
	size_t end = cr ? (size_t)(cr - buf) : len;
	if (memchr(start, '\n', end - *pos))
		return h1_fail(why, 400, "bare LF");
	if (!cr)
		return h1_fail(why, 400, "head not terminated by CRLF");
	if (end + 1 >= len || buf[end + 1] != '\n')
		return h1_fail(why, 400, "bare CR");
	*line = start;
	*line_len = end - *pos;
	*pos = end + 2;
	return 0;
}

/* h1_scan_version: "HTTP/" DIGIT "." DIGIT exactly (RFC 9112 2.3, case
 * sensitive). A well-formed version other than 1.0/1.1 is 505. */
static int h1_scan_version(const char *v, size_t n, unsigned *minor, const char **why)
{
	if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || !h1_is_digit((unsigned char)v[5])
	    || v[6] != '.' || !h1_is_digit((unsigned char)v[7]))
		return h1_fail(why, 400, "malformed HTTP version");
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return h1_fail(why, 505, "HTTP version not supported");
	*minor = (unsigned)(v[7] - '0');
	return 0;
}

/* h1_is_target_byte: request-target bytes we accept as sent; controls, SP,
 * DEL, '#' and non-ASCII must be percent-encoded. */
static bool h1_is_target_byte(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '#';
}

/* h1_scan_request_line: method SP request-target SP HTTP-version, with
 * single spaces and nothing else (RFC 9112 3). */
static int h1_scan_request_line(const char *line, size_t n, struct h1_request_head *out,
				const char **why)
{
	size_t i = 0;
	bool lower = false;

	while (i < n && h1_is_tchar((unsigned char)line[i])) {
		if (line[i] >= 'a' && line[i] <= 'z')
			lower = true;
		i++;
	}
	if (i == 0 || i == n || line[i] != ' ')
		return h1_fail(why, 400, "malformed method");
	if (lower)
		return h1_fail(why, 400, "method not uppercase");
	out->method_str = line;
	out->method_len = i;

	size_t t = ++i;
	while (i < n && line[i] != ' ') {
		if (!h1_is_target_byte((unsigned char)line[i]))
			return h1_fail(why, 400, "invalid byte in request-target");
		i++;
	}
	if (i == t)
		return h1_fail(why, 400, "empty request-target");
	if (i == n)
		return h1_fail(why, 400, "request line without HTTP version");
	out->target = line + t;
	out->target_len = i - t;
	return h1_scan_version(line + i + 1, n - i - 1, &out->version_minor, why);
}

/* h1_scan_status_line: HTTP-version SP 3DIGIT [SP reason-phrase]. The
 * space before an empty reason is optional: backends omit it. */
static int h1_scan_status_line(const char *line, size_t n, struct h1_response_head *out,
			       const char **why)
{
	if (n < 12 || line[8] != ' ')
		return h1_fail(why, 400, "malformed status line");
	int rc = h1_scan_version(line, 8, &out->version_minor, why);
	if (rc)
		return rc;
	unsigned status = 0;
	for (size_t i = 9; i < 12; i++) {
		if (!h1_is_digit((unsigned char)line[i]))
			return h1_fail(why, 400, "malformed status code");
		status = status * 10 + (unsigned)(line[i] - '0');
	}
	if (status < 100 || status > 599)
		return h1_fail(why, 400, "status code out of range");
	if (n > 12 && line[12] != ' ')
		return h1_fail(why, 400, "malformed status line");
	for (size_t i = 13; i < n; i++)
		if (!h1_is_field_byte((unsigned char)line[i]))
			return h1_fail(why, 400, "control byte in reason phrase");
	out->status = status;
	return 0;
}

/* h1_scan_field_line: field-name ":" OWS field-value OWS, the name a
 * token right against the colon, no obs-fold (RFC 9112 5). *colon: where
 * the name ends. */
static int h1_scan_field_line(const char *line, size_t n, size_t *colon, const char **why)
{
	size_t i = 0;

	if (line[0] == ' ' || line[0] == '\t')
		return h1_fail(why, 400, "obs-fold or whitespace before a field name");
	while (i < n && h1_is_tchar((unsigned char)line[i]))
		i++;
	if (i == n)
		return h1_fail(why, 400, "field line without a colon");
	if (line[i] == ' ' || line[i] == '\t')
		return h1_fail(why, 400, "whitespace before a colon");
	if (line[i] != ':')
		return h1_fail(why, 400, "invalid byte in field name");
	if (i == 0)
		return h1_fail(why, 400, "empty field name");
	*colon = i;
	for (i++; i < n; i++)
		if (!h1_is_field_byte((unsigned char)line[i]))
			return h1_fail(why, 400, "control byte in field value");
	return 0;
}

/* h1_scan_fields: the field lines from *pos on, up to the empty line that
 * must end the buffer. Counts them against max (431). With a table, each
 * field goes into it too, its value trimmed: more than cap is 431. */
static int h1_scan_fields(const char *buf, size_t len, size_t pos, unsigned max,
			  struct h1_header *table, size_t cap, size_t *count, const char **why)
{
	*count = 0;
	for (;;) {
		const char *line;
		size_t n, colon;
		int rc = h1_line_next(buf, len, &pos, &line, &n, why);
		if (rc)
			return rc;
		if (n == 0)
			return pos == len ? 0 : h1_fail(why, 400, "bytes after the head");
		if (*count >= max)
			return h1_fail(why, 431, "too many header fields");
		rc = h1_scan_field_line(line, n, &colon, why);
		if (rc)
			return rc;
		if (table) {
			if (*count >= cap)
				return h1_fail(why, 431, "too many header fields for the table");
			struct h1_header *h = &table[*count];
			*h = (struct h1_header){line, colon, line + colon + 1, n - colon - 1};
			h1_trim(&h->value, &h->value_len);
		}
		(*count)++;
	}
}

/* ---- http-parser callbacks --------------------------------------------- */

/* h1_on_url: the target may come in several adjacent pieces. */
static int h1_on_url(http_parser *p, const char *at, size_t len)
{
	struct h1_parse *ps = p->data;
	if (!ps->url)
		ps->url = at;
	ps->url_len = (size_t)(at + len - ps->url);
	return 0;
}

/* h1_on_header_field: a piece adjacent to the previous name continues it;
 * anything else starts a new field, even if no value was reported. */
static int h1_on_header_field(http_parser *p, const char *at, size_t len)
{
	struct h1_parse *ps = p->data;
	struct h1_header *last = ps->n > 0 ? &ps->headers[ps->n - 1] : NULL;

	if (last && !ps->in_value && at == last->name + last->name_len) {
		last->name_len += len;
		return 0;
	}
	if (ps->n >= ps->cap) {
		ps->status = 431;
		ps->why = "too many header fields for the table";
		return -1;
	}
	ps->headers[ps->n++] = (struct h1_header){ .name = at, .name_len = len };
	ps->in_value = false;
	return 0;
}

static int h1_on_header_value(http_parser *p, const char *at, size_t len)
{
	struct h1_parse *ps = p->data;
	if (ps->n == 0)
		return -1;
	struct h1_header *h = &ps->headers[ps->n - 1];
	if (!ps->in_value || !h->value)
		h->value = at;
	h->value_len = (size_t)(at + len - h->value);
	ps->in_value = true;
	return 0;
}

/* h1_headers_finish: trim values; a value never reported points just
 * past the colon, so every pointer stays inside the buffer. */
static void h1_headers_finish(struct h1_parse *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		struct h1_header *h = &ps->headers[i];
		if (!h->value) {
			h->value = h->name + h->name_len + 1;
			h->value_len = 0;
		}
		h1_trim(&h->value, &h->value_len);
	}
}

/* ---- framing (RFC 9112 6) ---------------------------------------------- */

/* h1_parse_length: Content-Length = 1*DIGIT within int64; no sign, no
 * list, no inner whitespace. */
static bool h1_parse_length(const char *s, size_t n, int64_t *out)
{
	int64_t v = 0;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!h1_is_digit((unsigned char)s[i]))
			return false;
		int d = s[i] - '0';
		if (v > (INT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* h1_scan_codings: walk every Transfer-Encoding element. Only a single,
 * final "chunked" is implemented. */
static int h1_scan_codings(const struct h1_header *h, size_t n, bool *chunked, const char **why)
{
	bool seen_chunked = false, last_chunked = false, unknown = false;

	for (size_t i = 0; i < n; i++) {
		if (!h1_token_eq(h[i].name, h[i].name_len, "transfer-encoding"))
			continue;
		struct h1_list l;
		const char *e;
		size_t elen;
		h1_list_init(&l, h[i].value, h[i].value_len);
		while (h1_list_next(&l, &e, &elen)) {
			if (elen == 0)
				return h1_fail(why, 400, "empty transfer coding");
			if (h1_token_eq(e, elen, "chunked")) {
				if (seen_chunked)
					return h1_fail(why, 400, "chunked applied twice");
				seen_chunked = last_chunked = true;
				continue;
			}
			if (!h1_is_token(e, elen))
				return h1_fail(why, 400, "malformed transfer coding");
			last_chunked = false;
			unknown = true;
		}
	}
	if (seen_chunked && !last_chunked)
		return h1_fail(why, 400, "chunked is not the final transfer coding");
	if (unknown)
		return h1_fail(why, 501, "transfer coding not implemented");
	*chunked = true;
	return 0;
}

/* h1_framing_read: Content-Length and Transfer-Encoding of a message;
 * 0, 400 or 501 (callers for responses turn all of them into 502). */
static int h1_framing_read(const struct h1_header *h, size_t n, unsigned minor,
			   struct h1_framing *f, const char **why)
{
	unsigned n_cl, n_te;
	const struct h1_header *cl = h1_find(h, n, "content-length", &n_cl);
	h1_find(h, n, "transfer-encoding", &n_te);

	f->content_length = -1;
	f->chunked = false;
	if (n_cl > 1)
		return h1_fail(why, 400, "duplicate Content-Length");
	if (cl && !h1_parse_length(cl->value, cl->value_len, &f->content_length))
		return h1_fail(why, 400, "invalid Content-Length");
	if (n_te == 0)
		return 0;
	if (cl)
		return h1_fail(why, 400, "Transfer-Encoding with Content-Length");
	if (minor == 0)
		return h1_fail(why, 400, "Transfer-Encoding on HTTP/1.0");
	return h1_scan_codings(h, n, &f->chunked, why);
}

/* h1_framing_agrees: http-parser will frame the body itself; refuse any
 * message where its view differs from ours (e.g. "chunked<HTAB>"). */
static bool h1_framing_agrees(const http_parser *p, const struct h1_framing *f)
{
	bool p_chunked = (p->flags & F_CHUNKED) != 0;
	if (p_chunked != f->chunked)
		return false;
	if (f->content_length >= 0)
		return p->content_length == (uint64_t)f->content_length;
	return true;
}

/* ---- requests ---------------------------------------------------------- */

/* h1_host_valid: host[:port] with host a reg-name of letters, digits, '-',
 * '.', '_' (IPv4 included) or a bracketed IPv6 literal; port 0-65535. */
static bool h1_host_valid(const char *s, size_t n)
{
	size_t i = 0;

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		char addr[INET6_ADDRSTRLEN];
		struct in6_addr a6;
		size_t alen = close ? (size_t)(close - s - 1) : 0;
		if (alen == 0 || alen >= sizeof(addr))
			return false;
		memcpy(addr, s + 1, alen);
		addr[alen] = '\0';
		if (inet_pton(AF_INET6, addr, &a6) != 1)
			return false;
		i = alen + 2;
	} else {
		while (i < n && (h1_is_alpha((unsigned char)s[i]) || h1_is_digit((unsigned char)s[i])
				 || s[i] == '-' || s[i] == '.' || s[i] == '_'))
			i++;
		if (i == 0 || i > 255)
			return false;
	}
	if (i == n)
		return true;
	if (s[i] != ':' || n - i < 2 || n - i > 6)
		return false;
	unsigned port = 0;
	for (i++; i < n; i++) {
		if (!h1_is_digit((unsigned char)s[i]))
			return false;
		port = port * 10 + (unsigned)(s[i] - '0');
	}
	return port <= 65535;
}

/* h1_split_path: path and query of the part of the target from `p`; an
 * empty path (absolute-form "http://h" or "http://h?q") reads as "/". */
static void h1_split_path(struct h1_request_head *out, const char *p, size_t n)
{
	const char *q = memchr(p, '?', n);
	size_t plen = q ? (size_t)(q - p) : n;

	out->path = plen ? p : "/";
	out->path_len = plen ? plen : 1;
	if (q) {
		out->query = q + 1;
		out->query_len = n - plen - 1;
	}
}

/* h1_absolute_scheme_len: length of "http://" or "https://" at the start
 * of the target, 0 when neither. */
static size_t h1_absolute_scheme_len(const char *t, size_t n)
{
	if (n >= 7 && h1_mem_ieq(t, 7, "http://", 7))
		return 7;
	if (n >= 8 && h1_mem_ieq(t, 8, "https://", 8))
		return 8;
	return 0;
}

/* h1_req_target: classify the request-target (RFC 9112 3.2) and fill
 * path, query and, for absolute-form, host. */
static int h1_req_target(struct h1_request_head *out, const char **why)
{
	const char *t = out->target;
	size_t n = out->target_len;

	if (t[0] == '/') {
		h1_split_path(out, t, n);
		return 0;
	}
	if (n == 1 && t[0] == '*') {
		if (out->method != HTTP_OPTIONS)
			return h1_fail(why, 400, "asterisk-form outside OPTIONS");
		out->path = t;
		out->path_len = 1;
		return 0;
	}
	size_t skip = h1_absolute_scheme_len(t, n);
	if (skip == 0)
		return h1_fail(why, 400, "unsupported request-target form");

	const char *auth = t + skip;
	size_t rest = n - skip, alen = 0;
	while (alen < rest && auth[alen] != '/' && auth[alen] != '?')
		alen++;
	if (!h1_host_valid(auth, alen))
		return h1_fail(why, 400, "invalid authority in request-target");
	/* Host must name the same authority (RFC 9112 3.2); HTTP/1.0 may omit
	 * Host, then the authority alone names the origin. */
	if (out->host && !h1_mem_ieq(out->host, out->host_len, auth, alen))
		return h1_fail(why, 400, "request-target authority differs from Host");
	out->host = auth;
	out->host_len = alen;
	h1_split_path(out, auth + alen, rest - alen);
	return 0;
}

static int h1_req_host(struct h1_request_head *out, const char **why)
{
	unsigned count;
	const struct h1_header *h = h1_find(out->headers, out->n_headers, "host", &count);

	if (count > 1)
		return h1_fail(why, 400, "duplicate Host");
	if (!h) {
		if (out->version_minor == 1)
			return h1_fail(why, 400, "missing Host");
		return 0;
	}
	if (!h1_host_valid(h->value, h->value_len))
		return h1_fail(why, 400, "invalid Host");
	out->host = h->value;
	out->host_len = h->value_len;
	return 0;
}

/* h1_req_expect: only 100-continue is understood (RFC 9110 10.1.1); an
 * HTTP/1.0 client gets no interim response, so the flag stays off. */
static int h1_req_expect(struct h1_request_head *out, const char **why)
{
	const struct h1_header *h = out->headers;

	for (size_t i = 0; i < out->n_headers; i++) {
		if (!h1_token_eq(h[i].name, h[i].name_len, "expect"))
			continue;
		struct h1_list l;
		const char *e;
		size_t elen;
		h1_list_init(&l, h[i].value, h[i].value_len);
		while (h1_list_next(&l, &e, &elen)) {
			if (elen == 0)
				continue;
			if (!h1_token_eq(e, elen, "100-continue"))
				return h1_fail(why, 417, "unsupported expectation");
			out->expect_continue = out->version_minor == 1;
		}
	}
	return 0;
}

/* h1_req_connection: keep-alive per version and Connection tokens;
 * Upgrade counts only on HTTP/1.1 (RFC 9110 7.8). */
static void h1_req_connection(struct h1_request_head *out)
{
	const struct h1_header *h = out->headers;
	size_t n = out->n_headers;
	bool close = h1_list_has(h, n, "connection", "close");
	unsigned n_upgrade;

	if (out->version_minor == 1)
		out->keep_alive = !close;
	else
		out->keep_alive = !close && h1_list_has(h, n, "connection", "keep-alive");
	h1_find(h, n, "upgrade", &n_upgrade);
	out->upgrade = out->version_minor == 1 && n_upgrade > 0
		&& h1_list_has(h, n, "connection", "upgrade");
}

/* h1_parsers_agree: http-parser read the same start line and field count
 * as the pre-scan. */
static bool h1_parsers_agree(const struct h1_parse *ps, const http_parser *p, unsigned minor)
{
	return ps->n == ps->scanned_headers && p->http_major == 1 && p->http_minor == minor;
}

static int h1_req_check(struct h1_parse *ps, http_parser *p)
{
	struct h1_request_head *out = ps->req;
	struct h1_framing f;
	const char *mstr = http_method_str((enum http_method)p->method);
	int rc;

	if (!h1_parsers_agree(ps, p, out->version_minor) || ps->url != out->target
	    || ps->url_len != out->target_len || !h1_token_eq(out->method_str, out->method_len, mstr))
		return h1_fail(&ps->why, 400, "request head parsed inconsistently");
	out->method = (enum http_method)p->method;
	out->n_headers = ps->n;

	rc = h1_framing_read(out->headers, out->n_headers, out->version_minor, &f, &ps->why);
	if (rc)
		return rc;
	if (!h1_framing_agrees(p, &f))
		return h1_fail(&ps->why, 400, "ambiguous message framing");
	out->content_length = f.content_length;
	out->chunked = f.chunked;

	if ((rc = h1_req_host(out, &ps->why)) || (rc = h1_req_target(out, &ps->why))
	    || (rc = h1_req_expect(out, &ps->why)))
		return rc;
	h1_req_connection(out);
	return 0;
}

/* h1_req_on_headers_complete: 0 lets http-parser go on to the body, which
 * it reaches exactly at the end of the head we feed. */
static int h1_req_on_headers_complete(http_parser *p)
{
	struct h1_parse *ps = p->data;

	ps->head_done = true;
	h1_headers_finish(ps);
	ps->status = h1_req_check(ps, p);
	return ps->status ? -1 : 0;
}

static const http_parser_settings h1_req_settings = {
	.on_url = h1_on_url,
	.on_header_field = h1_on_header_field,
	.on_header_value = h1_on_header_value,
	.on_headers_complete = h1_req_on_headers_complete,
};

/* ---- responses --------------------------------------------------------- */

/* h1_res_bodiless: RFC 9112 6.3 items 1: HEAD, 1xx, 204, 304. */
static bool h1_res_bodiless(unsigned status, bool is_head_request)
{
	return is_head_request || status / 100 == 1 || status == 204 || status == 304;
}

/* h1_res_framing: body framing and keep-alive of a scanned response;
 * 0 or 502. */
static int h1_res_framing(struct h1_response_head *out, bool is_head_request, const char **why)
{
	struct h1_framing f;
	const struct h1_header *h = out->headers;
	size_t n = out->n_headers;

	if (h1_framing_read(h, n, out->version_minor, &f, why))
		return 502;
	if (h1_res_bodiless(out->status, is_head_request)) {
		out->content_length = 0;
		out->chunked = false;
	} else {
		out->content_length = f.content_length;
		out->chunked = f.chunked;
	}
	bool close = h1_list_has(h, n, "connection", "close");
	if (out->version_minor == 1)
		out->keep_alive = !close;
	else
		out->keep_alive = !close && h1_list_has(h, n, "connection", "keep-alive");
	/* A body delimited by the end of the connection ends it. */
	if (out->content_length < 0 && !out->chunked)
		out->keep_alive = false;
	return 0;
}

/* ---- driver ------------------------------------------------------------ */

/* h1_errno_status: the status for an error raised by http-parser itself. */
static int h1_errno_status(enum http_errno e)
{
	switch (e) {
	case HPE_HEADER_OVERFLOW:
		return 431;
	case HPE_INVALID_METHOD:
		/* The pre-scan let only uppercase tokens through: this one
		 * is well-formed but unknown (RFC 9110 15.6.2). */
		return 501;
	default:
		return 400;
	}
}

/* h1_run: feed exactly the head to http-parser, which ends positioned
 * for the body. Returns 0 or the status from a callback or the parser. */
static int h1_run(http_parser *p, const http_parser_settings *settings, struct h1_parse *ps,
		  const char *head, size_t len, const char **why)
{
	void *saved = p->data;
	size_t done;
	enum http_errno e;

	p->data = ps;
	done = http_parser_execute(p, settings, head, len);
	p->data = saved;
	e = HTTP_PARSER_ERRNO(p);

	if (ps->status)
		return h1_fail(why, ps->status, ps->why);
	if (e != HPE_OK)
		return h1_fail(why, h1_errno_status(e), http_errno_description(e));
	if (!ps->head_done || done != len)
		return h1_fail(why, 400, "head not fully parsed");
	return 0;
}

int h1_request_head_parse(const char *buf, size_t len, const struct h1_limits *lim,
			  http_parser *parser, struct h1_header *headers, size_t cap,
			  struct h1_request_head *out, const char **why)
{
	struct h1_parse ps = { .headers = headers, .cap = headers ? cap : 0, .req = out };
	size_t start = 0, pos, n;
	const char *line;
	int rc;

	*out = (struct h1_request_head){ .headers = headers, .content_length = -1 };
	http_parser_init(parser, HTTP_REQUEST);
	if (len > lim->header_size)
		return h1_fail(why, 431, "request head too large");
	/* RFC 9112 2.2: ignore empty lines before the request line. */
	while (len - start >= 2 && buf[start] == '\r' && buf[start + 1] == '\n')
		start += 2;

	if (start == len)
		return h1_fail(why, 400, "empty request");
	pos = start;
	if ((rc = h1_line_next(buf, len, &pos, &line, &n, why)))
		return rc;
	if ((rc = h1_scan_request_line(line, n, out, why)))
		return rc;
	if ((rc = h1_scan_fields(buf, len, pos, lim->header_count, NULL, 0, &ps.scanned_headers,
				 why)))
		return rc;
	if (h1_token_eq(out->method_str, out->method_len, "CONNECT"))
		return h1_fail(why, 501, "CONNECT not supported");
	return h1_run(parser, &h1_req_settings, &ps, buf + start, len - start, why);
}

int h1_response_head_parse(const char *buf, size_t len, const struct h1_limits *lim,
			   bool is_head_request, struct h1_header *headers, size_t cap,
			   struct h1_response_head *out, const char **why)
{
	size_t pos = 0, n;
	const char *line;

	*out = (struct h1_response_head){ .headers = headers, .content_length = -1 };
	if (len > lim->header_size)
		return h1_fail(why, 502, "response head too large");
	/* Backends get no leading-CRLF leniency: stray bytes between
	 * responses mean the previous body was framed wrong. */
	if (h1_line_next(buf, len, &pos, &line, &n, why) || h1_scan_status_line(line, n, out, why)
	    || h1_scan_fields(buf, len, pos, lim->header_count, headers, headers ? cap : 0,
			      &out->n_headers, why)
	    || h1_res_framing(out, is_head_request, why))
		return 502;
	return 0;
}
