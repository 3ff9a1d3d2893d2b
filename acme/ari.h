/*
 * ari.h - ACME Renewal Information (RFC 9773): the certificate identifier a
 * CA's renewalInfo resource is asked about, and the renewal window it
 * answers with. Pure: no I/O; time is passed in.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

/* Room for base64url(keyIdentifier) "." base64url(serial): both bounded. */
#define ARI_ID_SIZE 192

/* ari_cert_id: base64url of the leaf's Authority Key Identifier keyIdentifier,
 * ".", base64url of its serial number's DER content octets (RFC 9773 4.1).
 * -1 when the leaf has no AKI keyIdentifier or the result would not fit. */
int ari_cert_id(X509 *leaf, char *out, size_t cap);

/* ari_parse_window: the suggestedWindow {"start","end"} of a renewalInfo
 * body (RFC 3339 times, fractions and offsets allowed) as seconds since the
 * epoch. -1 when missing, malformed, or end is before start. */
int ari_parse_window(const char *body, size_t len, int64_t *start, int64_t *end);

/* ari_pick: a time in [start, end] chosen uniformly by random, so the CA's
 * clients spread over the window as RFC 9773 4.2 asks. */
int64_t ari_pick(int64_t start, int64_t end, uint32_t random);
