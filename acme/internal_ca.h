/*
 * internal_ca.h - portier's local certificate authority for development and
 * private hosts: the root is created once in STATE_DIR/ca/ (root.pem, and
 * root.key mode 0600 beside it) and issues ECDSA P-256 leaf certificates.
 * Main thread only (disk I/O).
 */
#pragma once

#include "acme/cert.h"

struct internal_ca;

/* internal_ca_open: load STATE_DIR/ca/root.{pem,key}, creating them (and the
 * directory, mode 0700) on first use. NULL with a message on failure. */
struct internal_ca *internal_ca_open(const char *state_dir, char *errbuf, size_t errlen);
void internal_ca_free(struct internal_ca *ca);

/* internal_ca_root_path: path of root.pem, for operators' trust stores. */
const char *internal_ca_root_path(const struct internal_ca *ca);

/* internal_ca_issue: a fresh P-256 key and a leaf for host (SAN dNSName, or
 * iPAddress for literals), valid 90 days, chain = the root. */
struct cert *internal_ca_issue(struct internal_ca *ca, const char *host, char *errbuf,
			       size_t errlen);

/* internal_ca_signed: whether leaf was issued by this CA's current root (a
 * stored leaf from an earlier, replaced root must be reissued). */
int internal_ca_signed(const struct internal_ca *ca, X509 *leaf);
