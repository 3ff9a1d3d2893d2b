/*
 * client_table.h - one GCRA bucket per client inside a tenant ("per":
 * "client_ip"), in a table bounded by max_clients whatever the clients do:
 * a flood of spoofed or rotating addresses costs at most the table's bound.
 *
 * Eviction. When a new client arrives and its stripe is full, a few buckets
 * (8, from a hand that sweeps the stripe) are looked at. An idle full bucket
 * (tat <= now) is recycled first: it is indistinguishable from a new one, so
 * dropping it changes no verdict. If none of those is idle, the one closest
 * to full (smallest tat) goes: that client then starts again with a fresh
 * full bucket, i.e. it is handed back the tokens it had spent. Only these
 * forced evictions are counted (client_table_evictions): a steady count
 * means max_clients is too small for the traffic. A limited client (far
 * from full) is the last to be chosen, so it stays limited while idle
 * clients come and go.
 *
 * Layout. Up to 64 stripes, each with its own mutex and its own share of
 * max_clients (split evenly, the share a seeded hash gives each stripe); a
 * stripe evicts when its share is full even if another stripe has room.
 * Each stripe is an open-addressing table of 32-byte entries (bucket, key,
 * hash bits) kept at most 3/4 full: about 43 bytes a client when the table
 * is full, plus about 4 KiB of stripes. Stripes are allocated as they fill,
 * doubling up to their bound, rather than all at creation: most tenants see
 * far fewer clients than max_clients, and a table that is never used costs
 * only its stripes. The hash is SipHash under a random per-table seed, so
 * nobody can aim addresses at one stripe or one probe run.
 *
 * Buckets live as long as the table; their state does not depend on the
 * limit's parameters, so a table kept across a config change keeps its
 * clients' state.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "proxy/limit/client_key.h"
#include "proxy/limit/gcra.h"

#define CLIENT_TABLE_MAX_CLIENTS (16u * 1024 * 1024)

struct client_table;

/* client_table_new: at most max_clients buckets (1..CLIENT_TABLE_MAX_CLIENTS).
 * NULL when max_clients is out of range, on out of memory, or when no random
 * seed can be had. */
struct client_table *client_table_new(uint32_t max_clients);

/* client_table_free: NULL-safe; no take may be running. */
void client_table_free(struct client_table *t);

/* client_table_take: gcra_take on key's bucket, creating it (full) when
 * missing, evicting as above when the stripe is full. Thread-safe: all
 * workers call it at once; they contend only within a stripe. Returns
 * v->allowed. Should even a first slot fail to allocate, the request is
 * judged on a fresh full bucket, as an evicted client's would be. */
bool client_table_take(struct client_table *t, const struct client_key *key,
		       const struct gcra_params *p, int64_t now_ns, struct gcra_verdict *v);

/* client_table_size: clients held now (a snapshot while takes run). */
size_t client_table_size(struct client_table *t);

/* client_table_evictions: buckets dropped before they were full. */
uint64_t client_table_evictions(struct client_table *t);

/* client_table_bytes: memory held, for status and tests: at most
 * 43 * max_clients + 8 KiB (while a stripe grows, its old array lives a
 * moment longer). */
size_t client_table_bytes(struct client_table *t);
