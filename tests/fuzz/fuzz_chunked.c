/*
 * fuzz_chunked.c - libFuzzer harness for the chunked body decoder. The
 * input after its first byte is decoded whole, split in two at a position
 * the first byte picks, and (when short) byte by byte. All ways must agree
 * on the outcome, the reason for an error, the bytes consumed and the data
 * handed out (length and a running hash); every data callback must be
 * non-empty and point into the piece being decoded.
 */
#include "proxy/http/chunked.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(c) do { if (!(c)) abort(); } while (0)

#define FUZZ_BYTEWISE_MAX 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_run {
	const char *piece; /* the piece being decoded */
	size_t piece_len;
	uint64_t hash;     /* FNV-1a over the data handed out */
	uint64_t out_len;
	size_t consumed;
	bool done;
	bool failed;
	const char *why;
};

static void fuzz_on_data(void *arg, const char *p, size_t n)
{
	struct fuzz_run *r = arg;

	FUZZ_ASSERT(n > 0);
	FUZZ_ASSERT(p >= r->piece && n <= r->piece_len &&
		    (size_t)(p - r->piece) <= r->piece_len - n);
	for (size_t i = 0; i < n; i++)
		r->hash = (r->hash ^ (unsigned char)p[i]) * 0x100000001b3ull;
	r->out_len += n;
}

/* fuzz_feed: one piece of in, copied to its own buffer so reads past it
 * are caught. Returns false when the run is over. */
static bool fuzz_feed(struct chunked *c, struct fuzz_run *r, const char *in, size_t n)
{
	char *piece = malloc(n ? n : 1);
	ptrdiff_t got;

	FUZZ_ASSERT(piece);
	memcpy(piece, in, n);
	r->piece = piece;
	r->piece_len = n;
	got = chunked_decode(c, piece, n, fuzz_on_data, r, &r->why);
	free(piece);
	if (got < 0) {
		FUZZ_ASSERT(got == -1 && r->why && !c->done);
		r->failed = true;
		return false;
	}
	FUZZ_ASSERT((size_t)got <= n);
	FUZZ_ASSERT(c->done || (size_t)got == n);
	r->consumed += (size_t)got;
	r->done = c->done;
	return !c->done;
}

static void fuzz_run_init(struct fuzz_run *r, struct chunked *c)
{
	memset(r, 0, sizeof(*r));
	r->hash = 0xcbf29ce484222325ull;
	chunked_init(c);
}

static void fuzz_same(const struct fuzz_run *a, const struct fuzz_run *b)
{
	FUZZ_ASSERT(a->failed == b->failed && a->done == b->done);
	FUZZ_ASSERT(a->hash == b->hash && a->out_len == b->out_len);
	if (a->failed)
		FUZZ_ASSERT(strcmp(a->why, b->why) == 0);
	else
		FUZZ_ASSERT(a->consumed == b->consumed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_run whole, split, bytewise;
	struct chunked c;
	const char *in;
	size_t len, cut;

	if (size == 0)
		return 0;
	in = (const char *)data + 1;
	len = size - 1;
	cut = len ? (size_t)data[0] * len / 255 : 0;

	fuzz_run_init(&whole, &c);
	fuzz_feed(&c, &whole, in, len);
	if (whole.done) {
		FUZZ_ASSERT(chunked_decode(&c, in, len, fuzz_on_data, &whole, &whole.why) == 0);
	} else if (!whole.failed) {
		FUZZ_ASSERT(whole.consumed == len);
	}

	fuzz_run_init(&split, &c);
	if (fuzz_feed(&c, &split, in, cut))
		fuzz_feed(&c, &split, in + cut, len - cut);
	fuzz_same(&whole, &split);

	if (len <= FUZZ_BYTEWISE_MAX) {
		fuzz_run_init(&bytewise, &c);
		for (size_t i = 0; i < len && fuzz_feed(&c, &bytewise, in + i, 1); i++)
			;
		fuzz_same(&whole, &bytewise);
	}
	return 0;
}
