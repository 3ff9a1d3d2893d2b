/*
 * ari.c - RFC 9773 certificate identifiers and renewal windows.
 */
#include "acme/ari.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/x509v3.h>

#include "acme/b64url.h"

int ari_cert_id(X509 *leaf, char *out, size_t cap)
{
	AUTHORITY_KEYID *akid = X509_get_ext_d2i(leaf, NID_authority_key_identifier, NULL, NULL);
	const ASN1_INTEGER *serial = X509_get0_serialNumber(leaf);
	unsigned char keyid[64];
	int klen = akid && akid->keyid ? akid->keyid->length : 0;
	if (klen > 0 && klen <= (int)sizeof keyid)
		memcpy(keyid, akid->keyid->data, (size_t)klen);
	AUTHORITY_KEYID_free(akid);
	if (!serial || klen <= 0 || klen > (int)sizeof keyid)
		return -1;
	/* The serial's DER content octets (with the leading zero a positive
	 * number with its high bit set needs): the encoding minus its tag and
	 * short-form length (serials are at most 20 octets, RFC 5280 4.1.2.2). */
	unsigned char der[64], *p = der;
	int total = i2d_ASN1_INTEGER(serial, NULL);
	if (total < 3 || total > (int)sizeof der || i2d_ASN1_INTEGER(serial, &p) != total ||
	    der[0] != V_ASN1_INTEGER || der[1] >= 0x80 || der[1] + 2 != total)
		return -1;
	int n = der[1];
	ssize_t a = b64url_encode(keyid, (size_t)klen, out, cap);
	if (a < 0 || (size_t)a + 2 > cap)
		return -1;
	out[a] = '.';
	ssize_t b = b64url_encode(der + 2, (size_t)n, out + a + 1, cap - (size_t)a - 1);
	return b < 0 ? -1 : 0;
}

/* ari_time: "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" to epoch seconds. */
static int ari_time(const char *s, int64_t *out)
{
	struct tm tm = {0};
	const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!p)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	int64_t offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int hh, mm, used = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &used) != 2 || used != 5 || hh > 23 || mm > 59)
			return -1;
		offset = (int64_t)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	*out = (int64_t)timegm(&tm) - offset;
	return 0;
}

int ari_parse_window(const char *body, size_t len, int64_t *start, int64_t *end)
{
	json_t *doc = json_loadb(body, len, 0, NULL);
	json_t *win = json_object_get(doc, "suggestedWindow");
	int64_t s, e;
	int rc = -1;
	if (ari_time(json_string_value(json_object_get(win, "start")), &s) == 0 &&
	    ari_time(json_string_value(json_object_get(win, "end")), &e) == 0 && e >= s) {
		*start = s;
		*end = e;
		rc = 0;
	}
	json_decref(doc);
	return rc;
}

int64_t ari_pick(int64_t start, int64_t end, uint32_t random)
{
	if (end <= start)
		return start;
	return start + (int64_t)((double)(end - start) * ((double)random / 4294967296.0));
}
