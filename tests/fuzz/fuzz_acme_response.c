/*
 * fuzz_acme_response.c - libFuzzer harness for what portier parses of a CA's
 * answers: problem documents (their text reaches logs and terminals, so it
 * must come out bounded, NUL-terminated and free of control characters),
 * the PEM certificate chain of a download (leaf first, then the chain), and
 * renewalInfo windows (RFC 9773: start never after end).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme/ari.h"
#include "acme/pem.h"
#include "acme/problem.h"

#define FUZZ_ASSERT(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_text(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);
	FUZZ_ASSERT(n < cap);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		FUZZ_ASSERT(ch >= 0x20 && ch != 0x7f);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct problem p;
	int status = size ? 400 + data[0] % 200 : 400;
	problem_parse((const char *)data, size, status, &p);
	fuzz_check_text(p.message, sizeof p.message);
	FUZZ_ASSERT(p.nsub <= PROBLEM_SUB_MAX && p.nsub <= p.nsub_total);
	for (unsigned i = 0; i < p.nsub; i++)
		fuzz_check_text(p.sub[i].message, sizeof p.sub[i].message);

	int64_t start, end;
	if (ari_parse_window((const char *)data, size, &start, &end) == 0)
		FUZZ_ASSERT(start <= end && ari_pick(start, end, 12345) >= start &&
			    ari_pick(start, end, 12345) <= end);

	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	char err[256];
	if (pem_decode_certs((const char *)data, size, &leaf, &chain, err, sizeof err) == 0) {
		FUZZ_ASSERT(leaf && chain);
		X509_free(leaf);
		sk_X509_pop_free(chain, X509_free);
	} else {
		FUZZ_ASSERT(!leaf && !chain);
	}
	return 0;
}
