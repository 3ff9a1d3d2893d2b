/*
 * certstore.h - certificates on disk (STATE_DIR/certs/HOST/{cert.pem,key.pem,
 * meta.json}), written atomically, read lazily. Main thread only: workers see
 * certificates through the published cert index (proxy/tls/cert_index.h).
 */
#pragma once

#include "acme/cert.h"
#include "acme/internal_ca.h"

struct certstore;

struct certstore *certstore_new(const char *state_dir, struct internal_ca *ca,
				char *errbuf, size_t errlen);
void certstore_free(struct certstore *cs);

/* certstore_get_internal: the stored internal-CA certificate for host if it
 * is valid for more than a third of its lifetime, else a newly issued one
 * (stored before returning). NULL with a message on failure. New reference. */
struct cert *certstore_get_internal(struct certstore *cs, const char *host, char *errbuf,
				    size_t errlen);

/* certstore_load: the stored certificate for host with the given source, or
 * NULL (errbuf says why: none stored, expired, unreadable). New reference. */
struct cert *certstore_load(struct certstore *cs, const char *host, enum cfg_tls_mode source,
			    char *errbuf, size_t errlen);

/* certstore_save: write cert.pem, key.pem (0600), meta.json for c->host
 * atomically (temp file, fsync, rename, fsync dir). -1 with the OS error. */
int certstore_save(struct certstore *cs, const struct cert *c, char *errbuf, size_t errlen);

/* certstore_validity: the validity period (and issuer name and ARI
 * identifier, "" when unknown, when those are not NULL) of host's stored
 * certificate with the given source, from its meta.json alone: cheap enough
 * to schedule renewals of every stored certificate at start-up without
 * loading any. -1 with a message when none is stored or the metadata is
 * unreadable. */
int certstore_validity(struct certstore *cs, const char *host, enum cfg_tls_mode source,
		       time_t *not_before, time_t *not_after, char *issuer, size_t issuer_len,
		       char *ari_id, size_t ari_len, char *errbuf, size_t errlen);
