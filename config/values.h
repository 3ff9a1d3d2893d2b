/*
 * values.h - the value syntaxes of the configuration files: durations, sizes,
 * addresses, CIDRs.
 */
#pragma once

#include <stdint.h>

#include "config/model.h"

/* cfg_parse_duration: "250ms", "30s", "5m", "24h", "7d" -> milliseconds. */
int cfg_parse_duration(const char *s, uint64_t *ms);
/* cfg_parse_size: "512", "16k", "1m", "2g" (powers of 1024) -> bytes. */
int cfg_parse_size(const char *s, uint64_t *bytes);
/* cfg_parse_addr: "HOST:PORT" or "[V6]:PORT". */
int cfg_parse_addr(const char *s, struct cfg_addr *out);
void cfg_addr_clear(struct cfg_addr *a);
/* cfg_addr_text: a as "host:port" ("[v6]:port"): its text when parsed,
 * else written into buf (len bytes). For pool keys, access logs and log lines. */
const char *cfg_addr_text(const struct cfg_addr *a, char *buf, size_t len);

/* cfg_parse_cidr: "10.0.0.0/8", "fd00::/8" or a bare address (a /32 or
 * /128), host bits cleared. Returns 0, or -1 with *out zeroed or partly set. */
int cfg_parse_cidr(const char *s, struct cfg_cidr *out);
