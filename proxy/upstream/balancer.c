/*
 * balancer.c - choosing a backend: round_robin, least_conn, ip_hash.
 *
 * Everything here is lock-free: the only shared state is the service's
 * atomic runtime state (rr_next, and per backend `active`, `fails`,
 * `down_until_ms`, `check_down`), read and written with relaxed atomics
 * because a slightly stale view only shifts load, never breaks correctness.
 *
 * When every backend that may be tried is marked down, the pick falls back
 * to the one whose cool-down ends soonest instead of refusing the request:
 * a service that blipped (a container restart) is then probed by real
 * traffic and recovers as soon as it answers, rather than being black-holed
 * for a whole cool-down (nginx retries its peers the same way when all have
 * failed). -1 is returned only when there is nothing to try at all.
 */
#include "proxy/upstream/balancer.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "proxy/upstream/health.h"

/* balancer_usable: backend idx may take this request. */
static bool balancer_usable(const struct cfg_service *svc, size_t idx, int exclude,
			    int64_t now_ms)
{
	return (int)idx != exclude && health_is_up(svc, (int)idx, now_ms);
}

/* balancer_ticket: a counter that moves by one on every pick; it spreads
 * picks, scans and ties over the backends. */
static uint64_t balancer_ticket(struct cfg_service *svc)
{
	return atomic_fetch_add_explicit(&svc->rr_next, 1, memory_order_relaxed);
}

/* balancer_round_robin: the (ticket mod usable)-th usable backend. Counting
 * the usable ones first, rather than scanning forward from ticket mod n,
 * keeps the spread even when some are down: a forward scan would hand a
 * down backend's whole share to its next neighbour. */
static int balancer_round_robin(struct cfg_service *svc, uint64_t ticket, int exclude,
				int64_t now_ms)
{
	size_t usable = 0;
	for (size_t i = 0; i < svc->n_backends; i++)
		usable += balancer_usable(svc, i, exclude, now_ms);
	if (usable == 0)
		return -1;
	size_t k = (size_t)(ticket % usable);
	int last = -1; /* if one went down between the passes */
	for (size_t i = 0; i < svc->n_backends; i++) {
		if (!balancer_usable(svc, i, exclude, now_ms))
			continue;
		if (k-- == 0)
			return (int)i;
		last = (int)i;
	}
	return last;
}

/* balancer_least_conn: fewest requests in flight; scanning from a rotating
 * start and keeping the first minimum breaks ties round-robin style. */
static int balancer_least_conn(struct cfg_service *svc, size_t start, int exclude,
			       int64_t now_ms)
{
	int best = -1;
	uint32_t best_active = UINT32_MAX;
	for (size_t k = 0; k < svc->n_backends; k++) {
		size_t i = (start + k) % svc->n_backends;
		if (!balancer_usable(svc, i, exclude, now_ms))
			continue;
		uint32_t a = atomic_load_explicit(&svc->state[i].active, memory_order_relaxed);
		if (best < 0 || a < best_active) {
			best = (int)i;
			best_active = a;
		}
	}
	return best;
}

/* balancer_fnv1a: FNV-1a 64 over len bytes, continuing from h. */
static uint64_t balancer_fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* balancer_mix: a final avalanche (splitmix64's) so nearby keys land far
 * apart; FNV alone leaves the high bits poorly mixed. */
static uint64_t balancer_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* balancer_client_key: the bytes of the client address that ip_hash keys
 * on: the whole IPv4 address (also when written as ::ffff:a.b.c.d), the
 * first 64 bits (the network) of an IPv6 one. Returns the length, 0 when
 * there is no usable address. */
static size_t balancer_client_key(const struct sockaddr *client, unsigned char key[8])
{
	static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (!client)
		return 0;
	if (client->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)client;
		memcpy(key, &sin->sin_addr, 4);
		return 4;
	}
	if (client->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)client;
		const unsigned char *a = sin6->sin6_addr.s6_addr;
		if (memcmp(a, v4mapped, sizeof v4mapped) == 0) {
			memcpy(key, a + 12, 4);
			return 4;
		}
		memcpy(key, a, 8);
		return 8;
	}
	return 0;
}

/* balancer_backend_score: rendezvous (highest random weight) score of
 * backend idx for a client hash. Keyed on the backend's host:port rather
 * than its index, so a reload that reorders or adds backends moves only
 * the clients that must move. */
static uint64_t balancer_backend_score(const struct cfg_service *svc, size_t idx, uint64_t client)
{
	const struct cfg_addr *a = &svc->backends[idx];
	uint64_t h = balancer_fnv1a(0xcbf29ce484222325ULL, &client, sizeof client);
	if (a->host)
		h = balancer_fnv1a(h, a->host, strlen(a->host));
	h = balancer_fnv1a(h, &a->port, sizeof a->port);
	return balancer_mix(h);
}

/* balancer_ip_hash: the usable backend with the highest rendezvous score
 * for this client. A client stays on its backend while that one is up;
 * when it goes down its clients spread over the others instead of all
 * landing on one neighbour. *home is set to the best backend ignoring
 * health, the starting point of the all-down fallback. */
static int balancer_ip_hash(struct cfg_service *svc, uint64_t client, int exclude,
			    int64_t now_ms, size_t *home)
{
	int best = -1;
	uint64_t best_score = 0, home_score = 0;
	*home = 0;
	for (size_t i = 0; i < svc->n_backends; i++) {
		uint64_t s = balancer_backend_score(svc, i, client);
		if (i == 0 || s > home_score) {
			home_score = s;
			*home = i;
		}
		if (!balancer_usable(svc, i, exclude, now_ms))
			continue;
		if (best < 0 || s > best_score) {
			best = (int)i;
			best_score = s;
		}
	}
	return best;
}

/* balancer_fallback: every candidate is down: the non-excluded backend
 * whose cool-down ends soonest (first from `start` among equals). */
static int balancer_fallback(struct cfg_service *svc, size_t start, int exclude)
{
	int best = -1;
	int64_t best_until = 0;
	for (size_t k = 0; k < svc->n_backends; k++) {
		size_t i = (start + k) % svc->n_backends;
		if ((int)i == exclude)
			continue;
		int64_t until = atomic_load_explicit(&svc->state[i].down_until_ms,
						     memory_order_relaxed);
		if (best < 0 || until < best_until) {
			best = (int)i;
			best_until = until;
		}
	}
	return best;
}

int balancer_pick(struct cfg_service *svc, const struct sockaddr *client, int exclude,
		  int64_t now_ms)
{
	if (!svc || svc->n_backends == 0 || !svc->state)
		return -1;

	size_t start;
	int idx;
	unsigned char key[8];
	size_t keylen = 0;

	if (svc->balance == CFG_BAL_IP_HASH)
		keylen = balancer_client_key(client, key);

	if (keylen > 0) {
		uint64_t client_hash = balancer_fnv1a(0xcbf29ce484222325ULL, key, keylen);
		idx = balancer_ip_hash(svc, client_hash, exclude, now_ms, &start);
	} else {
		uint64_t ticket = balancer_ticket(svc);
		start = (size_t)(ticket % svc->n_backends);
		if (svc->balance == CFG_BAL_LEAST_CONN)
			idx = balancer_least_conn(svc, start, exclude, now_ms);
		else /* round_robin, and ip_hash without a client address */
			idx = balancer_round_robin(svc, ticket, exclude, now_ms);
	}
	if (idx >= 0)
		return idx;
	return balancer_fallback(svc, start, exclude);
}

void balancer_acquire(struct cfg_service *svc, int idx)
{
	if (!svc || idx < 0 || (size_t)idx >= svc->n_backends || !svc->state)
		return;
	atomic_fetch_add_explicit(&svc->state[idx].active, 1, memory_order_relaxed);
}

void balancer_release(struct cfg_service *svc, int idx)
{
	if (!svc || idx < 0 || (size_t)idx >= svc->n_backends || !svc->state)
		return;
	/* A compare-and-swap loop rather than fetch_sub: an unmatched release
	 * (a bug elsewhere) must not wrap the count to 4 billion and starve
	 * the backend under least_conn forever. */
	_Atomic uint32_t *active = &svc->state[idx].active;
	uint32_t cur = atomic_load_explicit(active, memory_order_relaxed);
	while (cur > 0 && !atomic_compare_exchange_weak_explicit(active, &cur, cur - 1,
								   memory_order_relaxed,
								   memory_order_relaxed))
		;
}
