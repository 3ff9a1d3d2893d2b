/*
 * client_table.c - the per-client buckets: striped open-addressing tables
 * (linear probing, deletion by backward shift, so no tombstones build up
 * under churn), each stripe under its own mutex. The choices and the memory
 * bound are in client_table.h.
 *
 * Entries carry the low 32 bits of their hash: lookups compare keys only on
 * a match of those, and growing or shifting never hashes again.
 */
#include "proxy/limit/client_table.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#define CT_STRIPES_MAX 64u
#define CT_STRIPE_MIN_SHARE 16u /* fewer stripes than that many clients each: less of them */
#define CT_FIRST_SLOTS 16u
#define CT_LOOK 8u              /* buckets looked at for an eviction */

struct ct_entry {
	struct gcra bucket;
	uint32_t h32;           /* low hash bits: the home slot */
	struct client_key key;
	uint8_t used;
};
static_assert(sizeof(struct ct_entry) == 32, "an entry is meant to be 32 bytes");

struct ct_stripe {
	_Alignas(64) pthread_mutex_t lock; /* one cache line a stripe: no false sharing */
	struct ct_entry *slots;            /* cap entries, NULL until the first client */
	uint32_t cap;
	uint32_t max;                      /* this stripe's share of max_clients */
	uint32_t hand;                     /* where the next eviction look starts */
	_Atomic uint32_t count;            /* written under lock, read by client_table_size */
};

struct client_table {
	uint64_t seed;
	uint32_t n_stripes; /* a power of 2 */
	_Atomic uint64_t evictions;
	_Atomic size_t bytes;
	struct ct_stripe *stripes;
};

/* ct_cap_max: slots of a stripe holding max clients, at most 3/4 full
 * (linear probing's runs grow fast beyond). */
static uint32_t ct_cap_max(uint32_t max)
{
	return max + max / 3 + 1;
}

/* ct_home: h32's slot among cap (multiply-shift, so cap needn't be a power of 2). */
static uint32_t ct_home(uint32_t h32, uint32_t cap)
{
	return (uint32_t)(((uint64_t)h32 * cap) >> 32);
}

static uint32_t ct_next(const struct ct_stripe *s, uint32_t i)
{
	return i + 1 == s->cap ? 0 : i + 1;
}

/* ct_move: src's client into the free slot dst; src is left as it was. */
static void ct_move(struct ct_entry *dst, const struct ct_entry *src)
{
	atomic_store_explicit(&dst->bucket.tat,
			      atomic_load_explicit(&src->bucket.tat, memory_order_relaxed),
			      memory_order_relaxed);
	dst->h32 = src->h32;
	dst->key = src->key;
	dst->used = 1;
}

static void ct_clear(struct ct_entry *e)
{
	atomic_store_explicit(&e->bucket.tat, 0, memory_order_relaxed);
	e->h32 = 0;
	memset(&e->key, 0, sizeof e->key);
	e->used = 0;
}

/* ct_free_slot: the first free slot from h32's home (one always exists:
 * count < cap). */
static struct ct_entry *ct_free_slot(struct ct_stripe *s, uint32_t h32)
{
	uint32_t i = ct_home(h32, s->cap);
	while (s->slots[i].used)
		i = ct_next(s, i);
	return &s->slots[i];
}

/* ct_find: key's entry, or NULL. */
static struct ct_entry *ct_find(struct ct_stripe *s, const struct client_key *key, uint32_t h32)
{
	if (!s->slots)
		return NULL;
	for (uint32_t i = ct_home(h32, s->cap); s->slots[i].used; i = ct_next(s, i)) {
		struct ct_entry *e = &s->slots[i];
		if (e->h32 == h32 && client_key_equal(&e->key, key))
			return e;
	}
	return NULL;
}

/* ct_resize: the stripe's entries moved into cap fresh slots; -1 (stripe
 * unchanged) on out of memory. */
static int ct_resize(struct client_table *t, struct ct_stripe *s, uint32_t cap)
{
	struct ct_entry *slots = calloc(cap, sizeof *slots), *old = s->slots;
	uint32_t old_cap = s->cap;
	if (!slots)
		return -1;
	s->slots = slots;
	s->cap = cap;
	s->hand = 0;
	for (uint32_t i = 0; i < old_cap; i++)
		if (old[i].used)
			ct_move(ct_free_slot(s, old[i].h32), &old[i]);
	free(old);
	atomic_fetch_add_explicit(&t->bytes, (size_t)(cap - old_cap) * sizeof *slots,
				  memory_order_relaxed);
	return 0;
}

/* ct_remove: empties slot hole, moving back the entries of its probe run
 * that would no longer be found past the gap (backward-shift deletion). */
static void ct_remove(struct ct_stripe *s, uint32_t hole)
{
	for (uint32_t j = ct_next(s, hole); s->slots[j].used; j = ct_next(s, j)) {
		uint32_t home = ct_home(s->slots[j].h32, s->cap);
		/* j stays when its home lies cyclically in (hole, j] */
		bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
		if (stays)
			continue;
		ct_move(&s->slots[hole], &s->slots[j]);
		hole = j;
	}
	ct_clear(&s->slots[hole]);
	atomic_fetch_sub_explicit(&s->count, 1, memory_order_relaxed);
}

/* ct_evict: frees a slot of a full stripe: the first idle full bucket
 * among the next CT_LOOK, else the one closest to full among them. */
static void ct_evict(struct client_table *t, struct ct_stripe *s, int64_t now)
{
	/* full as gcra.c sees it: tat at or before the (clamped) now */
	int64_t full_at = now < 0 ? 0 : now > GCRA_NOW_MAX ? GCRA_NOW_MAX : now;
	uint32_t i = s->hand, victim = s->hand, seen = 0;
	int64_t victim_tat = INT64_MAX;
	for (uint32_t n = 0; n < s->cap && seen < CT_LOOK; n++, i = ct_next(s, i)) {
		if (!s->slots[i].used)
			continue;
		int64_t tat = atomic_load_explicit(&s->slots[i].bucket.tat, memory_order_relaxed);
		if (seen++ == 0 || tat < victim_tat) {
			victim = i;
			victim_tat = tat;
		}
		if (tat <= full_at)
			break;
	}
	s->hand = ct_next(s, i);
	if (victim_tat > full_at)
		atomic_fetch_add_explicit(&t->evictions, 1, memory_order_relaxed);
	ct_remove(s, victim);
}

/* ct_make_room: a free slot for one more client, growing the stripe while
 * under its bound, evicting at the bound (or when growing fails and the
 * last free slot would go). -1 only when the stripe has no slots at all. */
static int ct_make_room(struct client_table *t, struct ct_stripe *s, int64_t now)
{
	uint32_t count = atomic_load_explicit(&s->count, memory_order_relaxed);
	uint32_t cap_max = ct_cap_max(s->max);
	if (count >= s->max) {
		ct_evict(t, s, now);
		return 0;
	}
	if ((uint64_t)(count + 1) * 4 > (uint64_t)s->cap * 3 && s->cap < cap_max) {
		uint32_t cap = s->cap ? s->cap * 2 : CT_FIRST_SLOTS;
		if (cap > cap_max)
			cap = cap_max;
		if (ct_resize(t, s, cap) == 0)
			return 0;
	}
	if (s->cap == 0)
		return -1;
	if (count + 1 >= s->cap)
		ct_evict(t, s, now);
	return 0;
}

/* ct_insert: a new full bucket for key, or NULL (no slots at all). */
static struct ct_entry *ct_insert(struct client_table *t, struct ct_stripe *s,
				  const struct client_key *key, uint32_t h32, int64_t now)
{
	if (ct_make_room(t, s, now) < 0)
		return NULL;
	struct ct_entry *e = ct_free_slot(s, h32);
	atomic_store_explicit(&e->bucket.tat, 0, memory_order_relaxed); /* 0: full */
	e->h32 = h32;
	e->key = *key;
	e->used = 1;
	atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
	return e;
}

/* ct_stripe_count: stripes for max clients: as many as keep each share at
 * CT_STRIPE_MIN_SHARE or more, up to CT_STRIPES_MAX. */
static uint32_t ct_stripe_count(uint32_t max)
{
	uint32_t n = 1;
	while (n < CT_STRIPES_MAX && max / (n * 2) >= CT_STRIPE_MIN_SHARE)
		n *= 2;
	return n;
}

/* ct_stripes_new: n stripes sharing max clients; NULL on failure. */
static struct ct_stripe *ct_stripes_new(uint32_t n, uint32_t max)
{
	struct ct_stripe *stripes = aligned_alloc(_Alignof(struct ct_stripe), n * sizeof *stripes);
	if (!stripes)
		return NULL;
	memset(stripes, 0, n * sizeof *stripes);
	for (uint32_t i = 0; i < n; i++) {
		stripes[i].max = max / n + (i < max % n);
		if (pthread_mutex_init(&stripes[i].lock, NULL) != 0) {
			while (i-- > 0)
				pthread_mutex_destroy(&stripes[i].lock);
			free(stripes);
			return NULL;
		}
	}
	return stripes;
}

struct client_table *client_table_new(uint32_t max_clients)
{
	if (max_clients < 1 || max_clients > CLIENT_TABLE_MAX_CLIENTS)
		return NULL;
	struct client_table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	if (RAND_bytes((unsigned char *)&t->seed, sizeof t->seed) != 1)
		goto fail;
	t->n_stripes = ct_stripe_count(max_clients);
	if (!(t->stripes = ct_stripes_new(t->n_stripes, max_clients)))
		goto fail;
	atomic_init(&t->bytes, sizeof *t + t->n_stripes * sizeof *t->stripes);
	return t;
fail:
	free(t);
	return NULL;
}

void client_table_free(struct client_table *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->n_stripes; i++) {
		pthread_mutex_destroy(&t->stripes[i].lock);
		free(t->stripes[i].slots);
	}
	free(t->stripes);
	free(t);
}

bool client_table_take(struct client_table *t, const struct client_key *key,
		       const struct gcra_params *p, int64_t now_ns, struct gcra_verdict *v)
{
	uint64_t h = client_key_hash(key, t->seed);
	/* the high half picks the stripe, the low half the slot in it */
	struct ct_stripe *s = &t->stripes[(h >> 32) & (t->n_stripes - 1)];
	pthread_mutex_lock(&s->lock);
	struct ct_entry *e = ct_find(s, key, (uint32_t)h);
	if (!e)
		e = ct_insert(t, s, key, (uint32_t)h, now_ns);
	struct gcra fresh = {0};
	bool allowed = gcra_take(e ? &e->bucket : &fresh, p, now_ns, v);
	pthread_mutex_unlock(&s->lock);
	return allowed;
}

size_t client_table_size(struct client_table *t)
{
	size_t n = 0;
	for (uint32_t i = 0; i < t->n_stripes; i++)
		n += atomic_load_explicit(&t->stripes[i].count, memory_order_relaxed);
	return n;
}

uint64_t client_table_evictions(struct client_table *t)
{
	return atomic_load_explicit(&t->evictions, memory_order_relaxed);
}

size_t client_table_bytes(struct client_table *t)
{
	return atomic_load_explicit(&t->bytes, memory_order_relaxed);
}
