/*
 * test_chunked.c - the chunked body decoder: good bodies decoded whole, split
 * at every position and byte by byte, with the same output and the same
 * consumed count each way; bad bodies refused each way with the same reason;
 * cut-short bodies left incomplete, never refused.
 */
#include "proxy/http/chunked.h"

#include <stdlib.h>

#include "tests/unit/check.h"

#define S(lit) lit, sizeof(lit) - 1

#define OUT_MAX (1u << 17)

/* One decode of a whole input, fed in pieces. */
struct run {
	char out[OUT_MAX];
	size_t out_len;
	size_t calls;       /* data callbacks */
	size_t consumed;    /* bytes consumed over all calls */
	bool done;
	bool failed;
	const char *why;
	bool bad_cb;        /* a callback was empty or pointed outside its piece */
	const char *piece;  /* the piece being decoded */
	size_t piece_len;
};

static void run_on_data(void *arg, const char *p, size_t n)
{
	struct run *r = arg;

	r->calls++;
	if (n == 0 || p < r->piece || p + n > r->piece + r->piece_len || r->out_len + n > OUT_MAX) {
		r->bad_cb = true;
		return;
	}
	memcpy(r->out + r->out_len, p, n);
	r->out_len += n;
}

/* run_feed: decode in[0..len) as a first piece of cut bytes, then pieces of
 * step bytes (step 0: all the rest). Each piece is copied to a buffer of
 * its own size so a read past it shows under ASan. Stops at the end of the
 * body, at an error, or when the input runs out. */
static void run_feed(struct run *r, const char *in, size_t len, size_t cut, size_t step)
{
	struct chunked c;
	size_t pos = 0;
	bool first = true;

	memset(r, 0, sizeof(*r));
	chunked_init(&c);
	while (!c.done) {
		size_t n = first ? cut : (step ? step : len - pos);
		if (n > len - pos)
			n = len - pos;
		char *piece = malloc(n ? n : 1);
		if (!piece)
			abort();
		memcpy(piece, in + pos, n);
		r->piece = piece;
		r->piece_len = n;
		ptrdiff_t got = chunked_decode(&c, piece, n, run_on_data, r, &r->why);
		first = false;
		free(piece);
		if (got < 0) {
			r->failed = true;
			break;
		}
		if ((size_t)got > n || (!c.done && (size_t)got != n))
			r->bad_cb = true; /* short only at the end of the body */
		r->consumed += (size_t)got;
		pos += (size_t)got;
		if (c.done || pos == len)
			break;
	}
	r->done = c.done;
	if (c.done) {
		const char *why = NULL;
		CHECK(chunked_decode(&c, "0\r\n\r\n", 5, run_on_data, r, &why) == 0);
	}
}

/* run_same: the same output and outcome; the consumed count is compared
 * when both succeeded (after an error it depends on where pieces ended). */
static bool run_same(const struct run *a, const struct run *b)
{
	return a->out_len == b->out_len && memcmp(a->out, b->out, a->out_len) == 0 &&
	       a->done == b->done && a->failed == b->failed && !b->bad_cb &&
	       (a->failed ? strcmp(a->why, b->why) == 0 : a->consumed == b->consumed);
}

static struct run run_whole, run_other;

/* check_every_split: the input decodes the same whole, split once at every
 * position, and byte by byte. Leaves the whole run in run_whole. */
static void check_every_split(const char *in, size_t len, int line)
{
	bool same = true;

	run_feed(&run_whole, in, len, len, 0);
	CHECK(!run_whole.bad_cb);
	for (size_t cut = 0; cut <= len; cut++) {
		run_feed(&run_other, in, len, cut, 0);
		if (!run_same(&run_whole, &run_other)) {
			fprintf(stderr, "line %d: split at %zu differs\n", line, cut);
			same = false;
		}
	}
	run_feed(&run_other, in, len, 1, 1);
	if (!run_same(&run_whole, &run_other)) {
		fprintf(stderr, "line %d: byte by byte differs\n", line);
		same = false;
	}
	run_feed(&run_other, in, len, 0, 1);
	if (!run_same(&run_whole, &run_other)) {
		fprintf(stderr, "line %d: empty first piece differs\n", line);
		same = false;
	}
	CHECK(same);
}

struct good {
	const char *in;
	size_t in_len;
	const char *out;
	size_t out_len;
	size_t rest; /* pipelined bytes after the body */
	int line;
};

#define GOOD(in, out) { S(in), S(out), 0, __LINE__ }
#define GOOD_REST(in, out, rest) { S(in), S(out), rest, __LINE__ }

static const struct good goods[] = {
	GOOD("0\r\n\r\n", ""),
	GOOD("5\r\nhello\r\n0\r\n\r\n", "hello"),
	GOOD("5\r\nhello\r\n6\r\n world\r\n1\r\n!\r\n0\r\n\r\n", "hello world!"),
	GOOD("a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij"),
	GOOD("1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n", "abcdefghijklmnopqrstuvwxyz"),
	GOOD("1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n", "abcdefghijklmnopqrstuvwxyz"),
	GOOD("0005\r\nhello\r\n000\r\n\r\n", "hello"),
	GOOD("00000000000000000000000001\r\nx\r\n0\r\n\r\n", "x"),
	GOOD("0000000000000000000000000\r\n\r\n", ""),
	/* extensions */
	GOOD("5;foo\r\nhello\r\n0\r\n\r\n", "hello"),
	GOOD("5;foo=bar\r\nhello\r\n0;last\r\n\r\n", "hello"),
	GOOD("5 ; foo = bar ;baz\t;\tq=1\r\nhello\r\n0\r\n\r\n", "hello"),
	GOOD("5;a=\"quoted value\"\r\nhello\r\n0\r\n\r\n", "hello"),
	GOOD("5;a=\"esc \\\" \\\\ \\\t \\a\";b\r\nhello\r\n0\r\n\r\n", "hello"),
	GOOD("5;a=\"\"\r\nhello\r\n0\r\n\r\n", "hello"),
	GOOD("5;a=\"obs \x80\xff\"\r\nhello\r\n0\r\n\r\n", "hello"),
	GOOD("5;a=\"q\" ;b=\"r\"\r\nhello\r\n0\r\n\r\n", "hello"),
	GOOD("5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n", "hello"),
	GOOD("3;x=y\r\nabc\r\n0;x=\"z\"\r\n\r\n", "abc"),
	/* trailers */
	GOOD("5\r\nhello\r\n0\r\nExpires: never\r\n\r\n", "hello"),
	GOOD("5\r\nhello\r\n0\r\nA: 1\r\nB:2\r\nC:\r\nD: \t spaced \t \r\n\r\n", "hello"),
	GOOD("0\r\nX-Obs: \x80\xfe text\r\n\r\n", ""),
	/* binary data */
	GOOD("6\r\n\0\r\n\r\n\0\r\n0\r\n\r\n", "\0\r\n\r\n\0"),
	GOOD("4\r\n0\r\n\r\r\n2\r\n\n\n\r\n0\r\n\r\n", "0\r\n\r\n\n"),
	GOOD("3\r\n\xff\x00\x7f\r\n0\r\n\r\n", "\xff\x00\x7f"),
	/* pipelined bytes after the body stay unconsumed */
	GOOD_REST("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "hello", 16),
	GOOD_REST("0\r\n\r\n0\r\n\r\n", "", 5),
	GOOD_REST("0\r\nT: v\r\n\r\n\r\n", "", 2),
	GOOD_REST("1\r\nx\r\n0\r\n\r\nX", "x", 1),
};

static void test_good(void)
{
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		check_every_split(g->in, g->in_len, g->line);
		if (!run_whole.done || run_whole.failed)
			fprintf(stderr, "line %d: not decoded (%s)\n", g->line,
				run_whole.failed ? run_whole.why : "incomplete");
		CHECK(run_whole.done && !run_whole.failed);
		CHECK(run_whole.consumed == g->in_len - g->rest);
		CHECK(run_whole.out_len == g->out_len &&
		      memcmp(run_whole.out, g->out, g->out_len) == 0);
	}
}

struct bad {
	const char *in;
	size_t in_len;
	const char *why;
	int line;
};

#define BAD(in, why) { S(in), why, __LINE__ }

static const struct bad bads[] = {
	/* chunk size */
	BAD("\r\n\r\n", "bad chunk size"),
	BAD("g\r\n", "bad chunk size"),
	BAD("5g\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
	BAD("+5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
	BAD("-5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
	BAD("0x5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
	BAD(" 5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
	BAD(";a\r\n", "bad chunk size"),
	BAD("1 0\r\n", "bad chunk extension"),
	BAD("5 \r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("10000000000000000\r\n", "chunk size too large"),
	BAD("ffffffffffffffffff\r\n", "chunk size too large"),
	BAD("0010000000000000000\r\n", "chunk size too large"),
	/* line ends */
	BAD("5\nhello\r\n0\r\n\r\n", "bare LF"),
	BAD("\n", "bare LF"),
	BAD("5;a\nhello\r\n0\r\n\r\n", "bare LF"),
	BAD("5\rhello\r\n0\r\n\r\n", "bare CR"),
	BAD("5\r\r\nhello\r\n0\r\n\r\n", "bare CR"),
	BAD("5\r\nhello\r\n0\n\r\n", "bare LF"),
	BAD("5\r\nhello\r\n0\r\n\n", "bare LF"),
	BAD("5\r\nhello\r\n0\r\n\rX", "bare CR"),
	BAD("5\r\nhello\r\n0\r\nA: b\n\r\n", "bare LF"),
	BAD("5\r\nhello\r\n0\r\nA: b\rX\r\n\r\n", "bare CR"),
	/* chunk data and what follows it */
	BAD("5\r\nhello\n0\r\n\r\n", "missing CRLF after chunk data"),
	BAD("5\r\nhelloX\r\n0\r\n\r\n", "missing CRLF after chunk data"),
	BAD("5\r\nhello!!\r\n0\r\n\r\n", "missing CRLF after chunk data"),
	BAD("5\r\nhello\rX0\r\n\r\n", "missing CRLF after chunk data"),
	BAD("5\r\nhello0\r\n\r\n", "missing CRLF after chunk data"),
	BAD("3\r\nhello\r\n0\r\n\r\n", "missing CRLF after chunk data"),
	BAD("5\r\nhello\r\n\r\n0\r\n\r\n", "bad chunk size"),
	/* extensions */
	BAD("5;a\0b\r\nhello\r\n0\r\n\r\n", "control byte in chunk extension"),
	BAD("5;\0\r\nhello\r\n0\r\n\r\n", "control byte in chunk extension"),
	BAD("5;a=\0\r\nhello\r\n0\r\n\r\n", "control byte in chunk extension"),
	BAD("5;a=b\0\r\nhello\r\n0\r\n\r\n", "control byte in chunk extension"),
	BAD("5;a=\"\0\"\r\nhello\r\n0\r\n\r\n", "control byte in chunk extension"),
	BAD("5;a=\"\\\0\"\r\nhello\r\n0\r\n\r\n", "control byte in chunk extension"),
	BAD("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", "control byte in chunk extension"),
	BAD("5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n", "control byte in chunk extension"),
	BAD("5;a=\"\r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("5;a\x1b\r\nhello\r\n0\r\n\r\n", "control byte in chunk extension"),
	BAD("5;a\x7f\r\nhello\r\n0\r\n\r\n", "control byte in chunk extension"),
	BAD("5\0\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
	BAD("5;\r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("5;=b\r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("5;a=\r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("5;a \r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("5;a=b \r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("5;a=b c\r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("5;a=b=c\r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("5;a(b)\r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("5;a=b@c\r\nhello\r\n0\r\n\r\n", "bad chunk extension"),
	BAD("5,a\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
	/* trailers */
	BAD("0\r\nA: b\r\n c\r\n\r\n", "obs-fold in trailer"),
	BAD("0\r\n\tA: b\r\n\r\n", "obs-fold in trailer"),
	BAD("0\r\nA : b\r\n\r\n", "bad trailer field"),
	BAD("0\r\nA\t: b\r\n\r\n", "bad trailer field"),
	BAD("0\r\n: b\r\n\r\n", "bad trailer field"),
	BAD("0\r\nA b\r\n\r\n", "bad trailer field"),
	BAD("0\r\nNoColon\r\n\r\n", "bad trailer field"),
	BAD("0\r\nA: b\0c\r\n\r\n", "control byte in trailer"),
	BAD("0\r\nA: b\x01\r\n\r\n", "control byte in trailer"),
	BAD("0\r\nA: b\x7f\r\n\r\n", "control byte in trailer"),
	BAD("0\r\nA\0: b\r\n\r\n", "bad trailer field"),
	BAD("0\r\n\0", "bad trailer field"),
	BAD("0\r\nA\n", "bare LF"),
	BAD("0\r\nA:\n", "bare LF"),
};

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];
		check_every_split(b->in, b->in_len, b->line);
		if (!run_whole.failed || strcmp(run_whole.why, b->why) != 0)
			fprintf(stderr, "line %d: expected \"%s\", got \"%s\"\n", b->line, b->why,
				run_whole.failed ? run_whole.why : "(no error)");
		CHECK(run_whole.failed);
		CHECK_STR(run_whole.why, b->why);
	}
}

struct partial {
	const char *in;
	size_t in_len;
	int line;
};

#define PARTIAL(in) { S(in), __LINE__ }

/* Good prefixes: consumed whole, neither done nor failed. */
static const struct partial partials[] = {
	PARTIAL(""),
	PARTIAL("0"),
	PARTIAL("0\r"),
	PARTIAL("0\r\n"),
	PARTIAL("0\r\n\r"),
	PARTIAL("0\r\nA: b"),
	PARTIAL("0\r\nA: b\r\n"),
	PARTIAL("5\r\nhel"),
	PARTIAL("5\r\nhello"),
	PARTIAL("5\r\nhello\r"),
	PARTIAL("5\r\nhello\r\n"),
	PARTIAL("5;a=\"b\\"),
	PARTIAL("5 ; a = "),
	PARTIAL("ffffffffffffffff\r\nabc"),
	PARTIAL("0000000000000000000ffffffffffffffff\r\n"),
};

static void test_partial(void)
{
	for (size_t i = 0; i < sizeof(partials) / sizeof(partials[0]); i++) {
		const struct partial *p = &partials[i];
		check_every_split(p->in, p->in_len, p->line);
		if (run_whole.done || run_whole.failed)
			fprintf(stderr, "line %d: not incomplete (%s)\n", p->line,
				run_whole.failed ? run_whole.why : "done");
		CHECK(!run_whole.done && !run_whole.failed);
		CHECK(run_whole.consumed == p->in_len);
	}
}

/* A size line or a trailer section right at its limit, and one byte over. */
static void test_limits(void)
{
	static char buf[32768];
	struct chunked c;
	const char *why = NULL;
	size_t n;

	/* size line of 4096 bytes with its CRLF: "000...01\r\n" */
	memset(buf, '0', 4093);
	memcpy(buf + 4093, "1\r\nx\r\n0\r\n\r\n", 12);
	run_feed(&run_whole, buf, 4104, 4104, 0);
	CHECK(run_whole.done && run_whole.consumed == 4104 && run_whole.out_len == 1);
	memset(buf, '0', 4094);
	memcpy(buf + 4094, "1\r\nx\r\n0\r\n\r\n", 12);
	run_feed(&run_whole, buf, 4105, 4105, 0);
	CHECK(run_whole.failed);
	CHECK_STR(run_whole.why, "chunk size line too long");
	run_feed(&run_other, buf, 4105, 1, 1);
	CHECK(run_same(&run_whole, &run_other));

	/* an extension running on without end */
	memcpy(buf, "1;a=\"", 5);
	memset(buf + 5, 'x', 5000);
	run_feed(&run_whole, buf, 5005, 5005, 0);
	CHECK(run_whole.failed);
	CHECK_STR(run_whole.why, "chunk size line too long");

	/* a trailer line of 4096 bytes with its CRLF, then one over */
	memcpy(buf, "0\r\nA:", 5);
	memset(buf + 5, 'v', 4092);
	memcpy(buf + 4097, "\r\n\r\n", 4);
	run_feed(&run_whole, buf, 4101, 4101, 0);
	CHECK(run_whole.done && run_whole.consumed == 4101);
	memset(buf + 5, 'v', 4093);
	memcpy(buf + 4098, "\r\n\r\n", 4);
	run_feed(&run_whole, buf, 4102, 4102, 0);
	CHECK(run_whole.failed);
	CHECK_STR(run_whole.why, "trailer line too long");

	/* trailers: four lines of 4000 bytes pass, five do not */
	memcpy(buf, "0\r\n", 3);
	n = 3;
	for (int i = 0; i < 5; i++) {
		memcpy(buf + n, "A:", 2);
		memset(buf + n + 2, 'v', 3996);
		memcpy(buf + n + 3998, "\r\n", 2);
		n += 4000;
		if (i == 3) {
			memcpy(buf + n, "\r\n", 2);
			run_feed(&run_whole, buf, n + 2, n + 2, 0);
			CHECK(run_whole.done && run_whole.consumed == n + 2);
		}
	}
	memcpy(buf + n, "\r\n", 2);
	run_feed(&run_whole, buf, n + 2, n + 2, 0);
	CHECK(run_whole.failed);
	CHECK_STR(run_whole.why, "trailer too large");
	run_feed(&run_other, buf, n + 2, 7, 13);
	CHECK(run_same(&run_whole, &run_other));

	/* an error sticks */
	chunked_init(&c);
	CHECK(chunked_decode(&c, "x", 1, NULL, NULL, &why) == -1);
	CHECK(chunked_decode(&c, "0\r\n\r\n", 5, NULL, NULL, &why) == -1);
	CHECK(!c.done);
}

/* Data comes out zero-copy: one callback per piece, into the input. */
static void test_zero_copy(void)
{
	static char buf[70000];
	size_t n;

	memcpy(buf, "10000\r\n", 7);
	for (size_t i = 0; i < 0x10000; i++)
		buf[7 + i] = (char)(i * 7);
	memcpy(buf + 7 + 0x10000, "\r\n0\r\n\r\n", 7);
	n = 7 + 0x10000 + 7;
	run_feed(&run_whole, buf, n, n, 0);
	CHECK(run_whole.done && run_whole.consumed == n && !run_whole.bad_cb);
	CHECK(run_whole.calls == 1);
	CHECK(run_whole.out_len == 0x10000 && memcmp(run_whole.out, buf + 7, 0x10000) == 0);
	run_feed(&run_other, buf, n, 1000, 4096);
	CHECK(run_same(&run_whole, &run_other));
	CHECK(run_other.calls == 17);

	/* the largest size parses; the decoder waits for its data */
	struct chunked c;
	const char *why = NULL;
	chunked_init(&c);
	CHECK(chunked_decode(&c, S("FFFFFFFFFFFFFFFF\r\n"), NULL, NULL, &why) == 18);
	CHECK(c.remaining == UINT64_MAX);
	CHECK(chunked_decode(&c, S("abc"), NULL, NULL, &why) == 3);
	CHECK(c.remaining == UINT64_MAX - 3);
}

/* Kept trailers: the raw section byte by byte, whatever the split, and its
 * fields trimmed; a refused trailer leaves nothing half-kept to use. */
static void test_kept_trailers(void)
{
	static const char body[] = "3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nx-sum:\t 12 \r\n\r\nNEXT";
	static char kept[CHUNKED_TRAILERS_MAX];
	for (size_t split = 1; split < sizeof body - 1; split++) {
		struct chunked c;
		const char *why = NULL;
		chunked_init(&c);
		c.trailers = kept;
		ptrdiff_t a = chunked_decode(&c, body, split, NULL, NULL, &why);
		ptrdiff_t b = chunked_decode(&c, body + split, sizeof body - 1 - split, NULL, NULL, &why);
		CHECK(a >= 0 && b >= 0 && c.done && (size_t)(a + b) == sizeof body - 1 - 4);
		CHECK(c.trailers_len == 31 && memcmp(kept, "Grpc-Status: 0\r\nx-sum:\t 12 \r\n\r\n", 31) == 0);
	}
	struct h1_header hs[4];
	CHECK(chunked_trailer_fields(kept, 31, hs, 4) == 2);
	CHECK(hs[0].name_len == 11 && memcmp(hs[0].name, "Grpc-Status", 11) == 0);
	CHECK(hs[0].value_len == 1 && hs[0].value[0] == '0');
	CHECK(hs[1].name_len == 5 && hs[1].value_len == 2 && memcmp(hs[1].value, "12", 2) == 0);
	CHECK(chunked_trailer_fields(kept, 31, hs, 1) == 1);
	CHECK(chunked_trailer_fields("\r\n", 2, hs, 4) == 0);

	/* no trailers: only the final CRLF is kept */
	struct chunked c;
	const char *why = NULL;
	chunked_init(&c);
	c.trailers = kept;
	CHECK(chunked_decode(&c, S("0\r\n\r\n"), NULL, NULL, &why) == 5 && c.trailers_len == 2);
	/* a refused trailer byte is not kept */
	chunked_init(&c);
	c.trailers = kept;
	CHECK(chunked_decode(&c, S("0\r\nA b\r\n\r\n"), NULL, NULL, &why) == -1);
	CHECK(c.trailers_len == 1);
}

int main(void)
{
	test_kept_trailers();
	test_good();
	test_bad();
	test_partial();
	test_limits();
	test_zero_copy();
	return check_done();
}
