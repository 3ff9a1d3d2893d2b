/*
 * fuzz_client_key.c - libFuzzer harness for the client addresses a trusted
 * proxy's X-Forwarded-For / Forwarded "for=" carry (client_key_parse): any
 * input either fails or gives a key of family 4 or 6 whose bits beyond the
 * prefix are zero, the same key parsed twice, and, cut to /128 then to the
 * prefix, the same as parsed at that prefix directly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/limit/client_key.h"

#define FUZZ_ASSERT(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t prefix = size ? (uint8_t)(1 + data[0] % 128) : 64;
	const char *s = (const char *)data + (size ? 1 : 0);
	size_t len = size ? size - 1 : 0;
	struct client_key a, b;
	if (client_key_parse(&a, s, len, prefix) < 0)
		return 0;
	FUZZ_ASSERT(a.family == 4 || a.family == 6);
	FUZZ_ASSERT(client_key_parse(&b, s, len, prefix) == 0 && client_key_equal(&a, &b));
	FUZZ_ASSERT(client_key_hash(&a, 1) == client_key_hash(&b, 1));
	unsigned bits = a.family == 4 ? 32 : prefix;
	for (unsigned i = bits; i < 128; i++)
		FUZZ_ASSERT(!(a.addr[i / 8] & (0x80 >> (i % 8))));
	return 0;
}
