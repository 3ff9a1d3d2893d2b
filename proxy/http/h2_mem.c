#include "proxy/http/h2_mem.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* In front of every block: its size, and where it came from. Aligned as
 * malloc's own blocks are, so the block after it is too. */
struct h2_block {
	_Alignas(max_align_t) size_t size;
	bool mapped;
};

static struct h2_block *block_of(const void *p)
{
	return (struct h2_block *)p - 1;
}

static void *block_alloc(size_t n, bool zero)
{
	if (n > SIZE_MAX - sizeof(struct h2_block) - 4096)
		return NULL;
	size_t total = n + sizeof(struct h2_block);
	if (n >= H2_MEM_MAP_MIN) {
		/* Each mapping may be a kernel map entry of its own; past
		 * vm.max_map_count (65,530 by default) mmap fails, and the
		 * block comes from malloc after all. */
		void *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p != MAP_FAILED) {
			struct h2_block *b = p; /* zeroed by the kernel */
			b->mapped = true;
			b->size = n;
			return b + 1;
		}
	}
	struct h2_block *b = zero ? calloc(1, total) : malloc(total);
	if (!b)
		return NULL;
	b->mapped = false;
	b->size = n;
	return b + 1;
}

static void h2_free(void *p, void *ud)
{
	(void)ud;
	if (!p)
		return;
	struct h2_block *b = block_of(p);
	if (b->mapped)
		munmap(b, b->size + sizeof *b);
	else
		free(b);
}

static void *h2_malloc(size_t n, void *ud)
{
	(void)ud;
	return block_alloc(n, false);
}

static void *h2_calloc(size_t nmemb, size_t size, void *ud)
{
	(void)ud;
	if (size && nmemb > SIZE_MAX / size)
		return NULL;
	return block_alloc(nmemb * size, true);
}

static void *h2_realloc(void *p, size_t n, void *ud)
{
	if (!p)
		return block_alloc(n, false);
	struct h2_block *b = block_of(p);
	if (!b->mapped && n < H2_MEM_MAP_MIN) {
		struct h2_block *nb = realloc(b, n + sizeof *b);
		if (!nb)
			return NULL;
		nb->size = n;
		return nb + 1;
	}
	void *q = block_alloc(n, false);
	if (!q)
		return NULL;
	memcpy(q, p, b->size < n ? b->size : n);
	h2_free(p, ud);
	return q;
}

static nghttp2_mem h2_mem_fns = {
	.mem_user_data = NULL,
	.malloc = h2_malloc,
	.free = h2_free,
	.calloc = h2_calloc,
	.realloc = h2_realloc,
};

nghttp2_mem *h2_mem(void)
{
	return &h2_mem_fns;
}

bool h2_mem_is_mapped(const void *p)
{
	return p && block_of(p)->mapped;
}
