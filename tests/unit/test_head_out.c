/*
 * test_head_out.c - the head writer (proxy/http/head_out.h): pieces land in
 * order across the stack buffer's boundary, pieces larger than the buffer,
 * numbers in both bases at their extremes, fields, and a failed add
 * reported at the end.
 */
#include "proxy/http/head_out.h"
#include "tests/unit/check.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* drained: out's bytes as a NUL-terminated string (freed by the caller). */
static char *drained(struct evbuffer *out)
{
	size_t n = evbuffer_get_length(out);
	char *s = malloc(n + 1);
	evbuffer_remove(out, s, n);
	s[n] = '\0';
	return s;
}

static void test_pieces_and_fields(void)
{
	struct evbuffer *out = evbuffer_new();
	struct head_out h;
	head_out_begin(&h, out);
	HEAD_OUT_LIT(&h, "HTTP/1.1 ");
	head_out_uint(&h, 200, 10);
	HEAD_OUT_LIT(&h, " OK\r\n");
	head_out_field(&h, "Content-Length", 14, "12", 2);
	head_out_str(&h, "X-A: b\r\n");
	HEAD_OUT_LIT(&h, "\r\n");
	CHECK(evbuffer_get_length(out) == 0); /* nothing leaves before the end */
	CHECK(head_out_end(&h) == 0);
	char *s = drained(out);
	CHECK_STR(s, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-A: b\r\n\r\n");
	free(s);
	evbuffer_free(out);
}

static void test_numbers(void)
{
	static const struct {
		uint64_t v;
		unsigned base;
		const char *want;
	} cases[] = {
		{0, 10, "0"}, {7, 10, "7"}, {10, 10, "10"}, {65535, 10, "65535"},
		{UINT64_MAX, 10, "18446744073709551615"}, {0, 16, "0"}, {255, 16, "ff"},
		{4096, 16, "1000"}, {UINT64_MAX, 16, "ffffffffffffffff"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct evbuffer *out = evbuffer_new();
		struct head_out h;
		head_out_begin(&h, out);
		head_out_uint(&h, cases[i].v, cases[i].base);
		CHECK(head_out_end(&h) == 0);
		char *s = drained(out);
		CHECK_STR(s, cases[i].want);
		free(s);
		evbuffer_free(out);
	}
}

/* test_boundary: pieces of every size from 1 to 97 bytes, then one of
 * three buffers' worth, cross the 4 KiB buffer many times; every byte must
 * arrive once, in order. */
static void test_boundary(void)
{
	size_t big_len = 3 * HEAD_OUT_BUF + 17;
	char *big = malloc(big_len);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (char)('a' + i % 26);
	struct evbuffer *out = evbuffer_new();
	struct evbuffer *want = evbuffer_new();
	struct head_out h;
	head_out_begin(&h, out);
	char piece[128];
	for (int round = 0; round < 40; round++) {
		for (size_t n = 1; n < 98; n++) {
			memset(piece, '0' + (int)(n % 10), n);
			head_out_add(&h, piece, n);
			evbuffer_add(want, piece, n);
		}
		if (round == 20) {
			head_out_add(&h, big, big_len);
			evbuffer_add(want, big, big_len);
		}
	}
	CHECK(head_out_end(&h) == 0);
	char *got = drained(out), *exp = drained(want);
	CHECK(strlen(got) == strlen(exp));
	CHECK(strcmp(got, exp) == 0);
	free(got);
	free(exp);
	free(big);
	evbuffer_free(out);
	evbuffer_free(want);
}

/* test_failure: an evbuffer that refuses adds (its end frozen) makes
 * head_out_end report -1, whether the refusal came at a flush or at end. */
static void test_failure(void)
{
	struct evbuffer *out = evbuffer_new();
	evbuffer_freeze(out, 0);
	struct head_out h;
	head_out_begin(&h, out);
	HEAD_OUT_LIT(&h, "GET / HTTP/1.1\r\n");
	CHECK(head_out_end(&h) == -1);

	head_out_begin(&h, out);
	char *big = calloc(1, 2 * HEAD_OUT_BUF);
	head_out_add(&h, big, 2 * HEAD_OUT_BUF); /* goes straight to out, and fails */
	CHECK(h.failed);
	CHECK(head_out_end(&h) == -1);
	CHECK(evbuffer_get_length(out) == 0);
	free(big);
	evbuffer_free(out);
}

int main(void)
{
	test_pieces_and_fields();
	test_numbers();
	test_boundary();
	test_failure();
	return check_done();
}
