/*
 * fuzz_static_json.c - libFuzzer: bytes -> portier.json validation. The
 * static config is read on start-up and on every reload.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config/static_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg_static c;
	struct cfg_err err;
	json_t *root;
	char buf[64];
	uint64_t v;

	/* The scalar parsers on their own, with the input as one string. */
	if (size < sizeof(buf)) {
		memcpy(buf, data, size);
		buf[size] = '\0';
		cfg_parse_duration(buf, &v);
		cfg_parse_size(buf, &v);
		struct cfg_addr a = {0};
		if (cfg_parse_addr(buf, &a) == 0)
			cfg_addr_clear(&a);
	}
	root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!root)
		return 0;
	if (cfg_static_from_json(root, &c, &err) == 0)
		cfg_static_clear(&c);
	json_decref(root);
	return 0;
}
