/*
 * cert_index.h - the certificates workers can serve without asking: an
 * immutable host -> cert map, rebuilt by the main thread (copy plus one
 * change) and handed to every worker. Bounded: past `cap` entries the
 * oldest are left out of the next index (they are reloaded from disk on
 * their next handshake).
 */
#pragma once

#include <stddef.h>

#include "acme/cert.h"

struct cert_index;

/* cert_index_with: a new index = old (may be NULL) with c set for c->host,
 * keeping at most cap entries. New reference, NULL on allocation failure. */
struct cert_index *cert_index_with(const struct cert_index *old, struct cert *c, size_t cap);
/* cert_index_without: a new index = old without host. */
struct cert_index *cert_index_without(const struct cert_index *old, const char *host);

struct cert_index *cert_index_retain(struct cert_index *ix);
void cert_index_release(struct cert_index *ix);

/* cert_index_get: the certificate for host or NULL (borrowed: valid while
 * the caller holds ix). */
struct cert *cert_index_get(const struct cert_index *ix, const char *host);
size_t cert_index_size(const struct cert_index *ix);
/* cert_index_at: i-th entry in insertion order, for listings. */
struct cert *cert_index_at(const struct cert_index *ix, size_t i);
