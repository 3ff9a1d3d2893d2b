/*
 * test_h2_mem.c - the allocator of portier's nghttp2 sessions: blocks of
 * H2_MEM_MAP_MIN bytes or more are pages of their own, resident only where
 * written (mincore), smaller ones come from malloc; calloc zeroes either
 * kind; realloc keeps the bytes across the boundary both ways; and a real
 * nghttp2 session runs on it (its 16 KiB frame buffer mapped).
 */
#include "tests/unit/check.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "proxy/http/h2_mem.h"

static nghttp2_mem *mem;

static void *mem_malloc(size_t n)
{
	return mem->malloc(n, mem->mem_user_data);
}

static void mem_free(void *p)
{
	mem->free(p, mem->mem_user_data);
}

/* resident_pages: how many of the pages under [p, p+n) are in memory. */
static int resident_pages(const void *p, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = (uintptr_t)p & ~(uintptr_t)(page - 1);
	size_t len = (uintptr_t)p + n - start;
	size_t pages = (len + page - 1) / page;
	unsigned char vec[64];
	if (pages > sizeof vec || mincore((void *)start, len, vec) != 0)
		return -1;
	int resident = 0;
	for (size_t i = 0; i < pages; i++)
		resident += vec[i] & 1;
	return resident;
}

static bool all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* A large block is mapped: only the page its header shares, and the pages
 * written, are resident. */
static void test_large_is_mapped(void)
{
	size_t n = 64 * 1024;
	unsigned char *p = mem_malloc(n);
	CHECK(p != NULL);
	if (!p)
		return;
	CHECK(h2_mem_is_mapped(p));
	CHECK(resident_pages(p, n) == 1);
	memset(p + 32 * 1024, 0xab, 100);
	CHECK(resident_pages(p, n) == 2);
	CHECK(all_bytes(p + 32 * 1024, 100, 0xab));
	mem_free(p);

	unsigned char *q = mem_malloc(H2_MEM_MAP_MIN);
	CHECK(q != NULL && h2_mem_is_mapped(q));
	mem_free(q);
}

/* A small block comes from malloc, aligned as malloc's are. */
static void test_small_from_malloc(void)
{
	unsigned char *p = mem_malloc(H2_MEM_MAP_MIN - 1);
	CHECK(p != NULL);
	if (!p)
		return;
	CHECK(!h2_mem_is_mapped(p));
	CHECK((uintptr_t)p % _Alignof(max_align_t) == 0);
	memset(p, 0x5a, H2_MEM_MAP_MIN - 1);
	CHECK(all_bytes(p, H2_MEM_MAP_MIN - 1, 0x5a));
	mem_free(p);
	mem_free(NULL);
}

static void test_calloc_zeroes(void)
{
	/* Dirty the heap first, so a zeroed small block is calloc's doing. */
	unsigned char *d = mem_malloc(256);
	CHECK(d != NULL);
	if (d) {
		memset(d, 0xff, 256);
		mem_free(d);
	}
	size_t sizes[] = {256, 64 * 1024};
	for (size_t i = 0; i < 2; i++) {
		unsigned char *p = mem->calloc(sizes[i] / 64, 64, mem->mem_user_data);
		CHECK(p != NULL);
		if (!p)
			continue;
		CHECK(h2_mem_is_mapped(p) == (sizes[i] >= H2_MEM_MAP_MIN));
		CHECK(all_bytes(p, sizes[i], 0));
		mem_free(p);
	}
	CHECK(mem->calloc(SIZE_MAX / 2, 4, mem->mem_user_data) == NULL);
	CHECK(mem_malloc(SIZE_MAX - 8) == NULL);
}

/* realloc keeps the bytes: small to small, small to large (now mapped),
 * large to large, large to small (from malloc again). */
static void test_realloc_keeps_bytes(void)
{
	unsigned char *p = mem->realloc(NULL, 100, mem->mem_user_data);
	CHECK(p != NULL);
	if (!p)
		return;
	for (int i = 0; i < 100; i++)
		p[i] = (unsigned char)i;
	size_t steps[] = {1000, 40 * 1024, 80 * 1024, 500};
	size_t kept = 100;
	for (size_t s = 0; s < 4 && p; s++) {
		p = mem->realloc(p, steps[s], mem->mem_user_data);
		CHECK(p != NULL);
		if (!p)
			break;
		CHECK(h2_mem_is_mapped(p) == (steps[s] >= H2_MEM_MAP_MIN));
		bool same = true;
		for (size_t i = 0; i < kept && i < 100; i++)
			same = same && p[i] == (unsigned char)i;
		CHECK(same);
		kept = steps[s] < kept ? steps[s] : kept;
	}
	mem_free(p);
}

static ssize_t send_nothing(nghttp2_session *s, const uint8_t *d, size_t n, int flags, void *u)
{
	(void)s, (void)d, (void)flags, (void)u;
	return (ssize_t)n;
}

/* A server session on it sends its SETTINGS and is freed (ASan's word on
 * every block it took). */
static void test_session(void)
{
	nghttp2_session_callbacks *cb;
	nghttp2_session *s = NULL;
	CHECK(nghttp2_session_callbacks_new(&cb) == 0);
	nghttp2_session_callbacks_set_send_callback(cb, send_nothing);
	CHECK(nghttp2_session_server_new3(&s, cb, NULL, NULL, mem) == 0);
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
	CHECK(nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 1) == 0);
	CHECK(nghttp2_session_send(s) == 0);
	nghttp2_session_del(s);
	nghttp2_session_callbacks_del(cb);
}

int main(void)
{
	mem = h2_mem();
	test_large_is_mapped();
	test_small_from_malloc();
	test_calloc_zeroes();
	test_realloc_keeps_bytes();
	test_session();
	return check_done();
}
