#include "proxy/tls/cert_index.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Open addressing over a power-of-two table; entries[] keeps insertion
 * order so trimming to cap drops the oldest. */
struct cert_index {
	_Atomic unsigned refs;
	size_t n, mask;
	struct cert **entries; /* n, oldest first */
	struct cert **slots;   /* mask + 1 */
};

static uint64_t cert_index_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void cert_index_slot_put(struct cert_index *ix, struct cert *c)
{
	size_t i = (size_t)cert_index_hash(c->host) & ix->mask;
	while (ix->slots[i])
		i = (i + 1) & ix->mask;
	ix->slots[i] = c;
}

/* cert_index_build: an index of list[0..n) (references taken). */
static struct cert_index *cert_index_build(struct cert **list, size_t n)
{
	struct cert_index *ix = calloc(1, sizeof *ix);
	if (!ix)
		return NULL;
	size_t size = 16;
	while (size < n * 2)
		size *= 2;
	ix->mask = size - 1;
	ix->slots = calloc(size, sizeof *ix->slots);
	ix->entries = calloc(n ? n : 1, sizeof *ix->entries);
	if (!ix->slots || !ix->entries) {
		free(ix->slots);
		free(ix->entries);
		free(ix);
		return NULL;
	}
	atomic_init(&ix->refs, 1);
	for (size_t i = 0; i < n; i++) {
		ix->entries[ix->n++] = cert_retain(list[i]);
		cert_index_slot_put(ix, list[i]);
	}
	return ix;
}

struct cert_index *cert_index_with(const struct cert_index *old, struct cert *c, size_t cap)
{
	size_t n_old = old ? old->n : 0;
	struct cert **list = calloc(n_old + 1, sizeof *list);
	if (!list)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < n_old; i++)
		if (strcmp(old->entries[i]->host, c->host) != 0)
			list[n++] = old->entries[i];
	list[n++] = c;
	size_t skip = cap && n > cap ? n - cap : 0;
	struct cert_index *ix = cert_index_build(list + skip, n - skip);
	free(list);
	return ix;
}

struct cert_index *cert_index_without(const struct cert_index *old, const char *host)
{
	size_t n_old = old ? old->n : 0;
	struct cert **list = calloc(n_old + 1, sizeof *list);
	if (!list)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < n_old; i++)
		if (strcmp(old->entries[i]->host, host) != 0)
			list[n++] = old->entries[i];
	struct cert_index *ix = cert_index_build(list, n);
	free(list);
	return ix;
}

struct cert_index *cert_index_retain(struct cert_index *ix)
{
	if (ix)
		atomic_fetch_add_explicit(&ix->refs, 1, memory_order_relaxed);
	return ix;
}

void cert_index_release(struct cert_index *ix)
{
	if (!ix || atomic_fetch_sub_explicit(&ix->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < ix->n; i++)
		cert_release(ix->entries[i]);
	free(ix->entries);
	free(ix->slots);
	free(ix);
}

struct cert *cert_index_get(const struct cert_index *ix, const char *host)
{
	if (!ix || !ix->n)
		return NULL;
	size_t i = (size_t)cert_index_hash(host) & ix->mask;
	for (struct cert *c; (c = ix->slots[i]); i = (i + 1) & ix->mask)
		if (strcmp(c->host, host) == 0)
			return c;
	return NULL;
}

size_t cert_index_size(const struct cert_index *ix)
{
	return ix ? ix->n : 0;
}

struct cert *cert_index_at(const struct cert_index *ix, size_t i)
{
	return ix && i < ix->n ? ix->entries[i] : NULL;
}
