/*
 * test_config_static.c - portier.json: defaults, every key, scalar parsers
 * and the field path of each kind of mistake.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/static_load.h"
#include "tests/unit/check.h"

static int load_text(const char *text, struct cfg_static *c, struct cfg_err *err)
{
	json_error_t je;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	int rc;

	if (!root) {
		fprintf(stderr, "test JSON does not parse: %s: %s\n", text, je.text);
		return -2;
	}
	rc = cfg_static_from_json(root, c, err);
	json_decref(root);
	return rc;
}

/* BAD: text must be rejected with exactly `field` and a message holding frag;
 * the output is left cleared. */
#define BAD(TEXT, FIELD, FRAG) do { \
	struct cfg_static c_; struct cfg_err e_ = {0}; \
	CHECK(load_text(TEXT, &c_, &e_) == -1); \
	CHECK_STR(e_.field, FIELD); \
	if (!strstr(e_.message, FRAG)) { \
		check_failed++; \
		fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, e_.message, FRAG); \
	} else { check_passed++; } \
	CHECK(e_.status == 400); \
	CHECK(c_.listen_http.v == NULL && c_.state_dir == NULL); \
} while (0)

static void test_defaults(void)
{
	struct cfg_static c;
	struct cfg_err err = {0};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	CHECK(load_text("{}", &c, &err) == 0);
	CHECK(c.listen_http.n == 1);
	CHECK_STR(c.listen_http.v[0].host, "0.0.0.0");
	CHECK(c.listen_http.v[0].port == 80);
	CHECK(c.listen_https.n == 1);
	CHECK_STR(c.listen_https.v[0].host, "0.0.0.0");
	CHECK(c.listen_https.v[0].port == 443);
	CHECK(c.workers == (unsigned)(ncpu < 1 ? 1 : ncpu));
	CHECK_STR(c.state_dir, "/var/lib/portier");
	CHECK_STR(c.tenants_file, "/var/lib/portier/tenants.json");
	CHECK_STR(c.control_socket, "/run/portier/control.sock");
	CHECK(c.control_mode == 0600);
	CHECK(c.tls.dflt == CFG_TLS_INTERNAL);
	CHECK(c.tls.min_version == 0x0303);
	CHECK(!c.tls.unknown_sni_default);
	CHECK_STR(c.acme.directory, "https://acme-v02.api.letsencrypt.org/directory");
	CHECK(c.acme.email == NULL && c.acme.ca_bundle == NULL);
	CHECK(c.acme.http01 && c.acme.tlsalpn01 && c.acme.on_demand);
	CHECK(c.acme.on_demand_timeout_ms == 30000);
	CHECK(c.acme.max_concurrent_orders == 4 && c.acme.max_orders_per_minute == 20);
	CHECK(c.n_trusted_proxies == 0);
	CHECK(c.timeouts_ms.client_header == 10000 && c.timeouts_ms.client_idle == 75000);
	CHECK(c.timeouts_ms.backend_connect == 5000 && c.timeouts_ms.backend_response == 60000);
	CHECK(c.timeouts_ms.backend_idle == 60000 && c.timeouts_ms.shutdown == 30000);
	CHECK(c.limits.header_size == 16384 && c.limits.header_count == 100);
	CHECK(c.limits.max_body == 0);
	CHECK(c.http2.enabled && !c.http2.h2c && c.http2.max_concurrent_streams == 100);
	CHECK(c.metrics_listen == NULL);
	CHECK_STR(c.access_log, "-");
	cfg_static_clear(&c);
	CHECK(c.state_dir == NULL && c.listen_http.n == 0);
	cfg_static_clear(&c); /* twice is harmless */
	cfg_static_clear(NULL);

	/* cfg_static_defaults alone gives the same, usable without a file. */
	cfg_static_defaults(&c);
	CHECK_STR(c.tenants_file, "/var/lib/portier/tenants.json");
	CHECK(c.workers >= 1);
	cfg_static_clear(&c);
}

static void test_every_key(void)
{
	static const char text[] =
		"{\"listen\": {\"http\": \"127.0.0.1:0\", \"https\": [\"0.0.0.0:8443\", \"[::]:8443\"]},"
		" \"workers\": 3, \"state_dir\": \"/srv/portier/\", \"tenants_file\": \"conf/t.json\","
		" \"control\": {\"socket\": \"/tmp/p.sock\", \"mode\": \"0660\"},"
		" \"tls\": {\"default\": \"acme\", \"min_version\": \"1.3\", \"unknown_sni\": \"default\"},"
		" \"acme\": {\"directory\": \"https://localhost:14000/dir\", \"email\": \"ops@example.com\","
		"   \"ca_bundle\": \"/etc/pebble.pem\", \"challenges\": [\"http-01\"], \"on_demand\": false,"
		"   \"on_demand_timeout\": \"2m\", \"max_concurrent_orders\": 2, \"max_orders_per_minute\": 60,"
		"   \"eab\": {\"kid\": \"kid-1\", \"hmac_key\": \"zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\"}},"
		" \"trusted_proxies\": [\"10.1.2.3/8\", \"192.168.0.1\", \"fd00::1/8\", \"::1\"],"
		" \"timeouts\": {\"client_header\": \"250ms\", \"client_idle\": \"1m\", \"backend_connect\": \"1s\","
		"   \"backend_response\": \"1h\", \"backend_idle\": \"7d\", \"shutdown\": \"0s\"},"
		" \"limits\": {\"header_size\": \"32k\", \"header_count\": 50, \"max_body\": \"1g\"},"
		" \"http2\": {\"enabled\": false, \"h2c\": true, \"max_concurrent_streams\": 250},"
		" \"metrics\": {\"listen\": \"127.0.0.1:9100\"},"
		" \"access_log\": \"/var/log/portier/access.log\"}";
	struct cfg_static c;
	struct cfg_err err = {0};

	CHECK(load_text(text, &c, &err) == 0);
	CHECK(c.listen_http.n == 1 && c.listen_http.v[0].port == 0);
	CHECK_STR(c.listen_http.v[0].host, "127.0.0.1");
	CHECK(c.listen_https.n == 2);
	CHECK_STR(c.listen_https.v[1].host, "::");
	CHECK(c.listen_https.v[1].port == 8443);
	CHECK(c.workers == 3);
	CHECK_STR(c.state_dir, "/srv/portier/");
	CHECK_STR(c.tenants_file, "conf/t.json"); /* kept relative: resolved against the cwd */
	CHECK_STR(c.control_socket, "/tmp/p.sock");
	CHECK(c.control_mode == 0660);
	CHECK(c.tls.dflt == CFG_TLS_ACME && c.tls.min_version == 0x0304);
	CHECK(c.tls.unknown_sni_default);
	CHECK_STR(c.acme.directory, "https://localhost:14000/dir");
	CHECK_STR(c.acme.email, "ops@example.com");
	CHECK_STR(c.acme.ca_bundle, "/etc/pebble.pem");
	CHECK(c.acme.http01 && !c.acme.tlsalpn01 && !c.acme.on_demand);
	CHECK(c.acme.on_demand_timeout_ms == 120000);
	CHECK(c.acme.max_concurrent_orders == 2 && c.acme.max_orders_per_minute == 60);
	CHECK_STR(c.acme.eab_kid, "kid-1");
	CHECK(c.acme.eab_hmac && !strncmp(c.acme.eab_hmac, "zWNDZM6e", 8));
	CHECK(c.n_trusted_proxies == 4);
	if (c.n_trusted_proxies == 4) {
		static const uint8_t ten[4] = {10, 0, 0, 0}, one92[4] = {192, 168, 0, 1};
		static const uint8_t fd[16] = {0xfd}, lo[16] = {[15] = 1};
		CHECK(c.trusted_proxies[0].family == AF_INET && c.trusted_proxies[0].prefix == 8);
		CHECK(memcmp(c.trusted_proxies[0].addr, ten, 4) == 0); /* host bits cleared */
		CHECK(c.trusted_proxies[1].prefix == 32);
		CHECK(memcmp(c.trusted_proxies[1].addr, one92, 4) == 0);
		CHECK(c.trusted_proxies[2].family == AF_INET6 && c.trusted_proxies[2].prefix == 8);
		CHECK(memcmp(c.trusted_proxies[2].addr, fd, 16) == 0);
		CHECK(c.trusted_proxies[3].prefix == 128);
		CHECK(memcmp(c.trusted_proxies[3].addr, lo, 16) == 0);
	}
	CHECK(c.timeouts_ms.client_header == 250 && c.timeouts_ms.client_idle == 60000);
	CHECK(c.timeouts_ms.backend_connect == 1000 && c.timeouts_ms.backend_response == 3600000);
	CHECK(c.timeouts_ms.backend_idle == 7ull * 86400000 && c.timeouts_ms.shutdown == 0);
	CHECK(c.limits.header_size == 32768 && c.limits.header_count == 50);
	CHECK(c.limits.max_body == 1024ull * 1024 * 1024);
	CHECK(!c.http2.enabled && c.http2.h2c && c.http2.max_concurrent_streams == 250);
	CHECK(c.metrics_listen && c.metrics_listen->port == 9100);
	CHECK_STR(c.metrics_listen ? c.metrics_listen->host : NULL, "127.0.0.1");
	CHECK_STR(c.access_log, "/var/log/portier/access.log");
	cfg_static_clear(&c);
}

static void test_variants(void)
{
	struct cfg_static c;
	struct cfg_err err = {0};

	/* state_dir moves the tenants file unless it is given. */
	CHECK(load_text("{\"state_dir\": \"/srv/p//\", \"tenants_file\": null}", &c, &err) == 0);
	CHECK_STR(c.tenants_file, "/srv/p/tenants.json");
	cfg_static_clear(&c);
	CHECK(load_text("{\"state_dir\": \"state\"}", &c, &err) == 0);
	CHECK_STR(c.tenants_file, "state/tenants.json");
	cfg_static_clear(&c);

	/* null turns a listener off; an empty list too. */
	CHECK(load_text("{\"listen\": {\"http\": null, \"https\": []}}", &c, &err) == 0);
	CHECK(c.listen_http.n == 0 && c.listen_https.n == 0);
	cfg_static_clear(&c);

	/* sizes and counts as JSON integers, "off" access log, workers 0 = cores. */
	CHECK(load_text("{\"limits\": {\"header_size\": 8192, \"max_body\": 1048576},"
			" \"access_log\": \"off\", \"workers\": 0, \"control\": {\"mode\": \"600\"},"
			" \"acme\": {\"email\": null, \"challenges\": [\"tls-alpn-01\", \"tls-alpn-01\"]},"
			" \"metrics\": {\"listen\": null}}", &c, &err) == 0);
	CHECK(c.limits.header_size == 8192 && c.limits.max_body == 1048576);
	CHECK_STR(c.access_log, "off");
	CHECK(c.workers >= 1);
	CHECK(c.control_mode == 0600);
	CHECK(c.acme.tlsalpn01 && !c.acme.http01);
	CHECK(c.metrics_listen == NULL);
	cfg_static_clear(&c);
}

/* test_listen_objects: {"address", "proxy_protocol"} alone or in a list,
 * mixed with strings, and the field each mistake names. */
static void test_listen_objects(void)
{
	struct cfg_static c;
	struct cfg_err err = {0};

	CHECK(load_text("{\"listen\": {\"http\": {\"address\": \"127.0.0.1:8080\", \"proxy_protocol\": true},"
			" \"https\": [\"0.0.0.0:443\", {\"address\": \"[::]:8443\", \"proxy_protocol\": true},"
			"   {\"address\": \"10.0.0.1:9443\"}, {\"address\": \"10.0.0.2:9443\", \"proxy_protocol\": false}]},"
			" \"trusted_proxies\": [\"10.0.0.0/8\"]}", &c, &err) == 0);
	CHECK_STR(err.message, "");
	CHECK(c.listen_http.n == 1 && c.listen_http.v[0].port == 8080);
	CHECK_STR(c.listen_http.v[0].host, "127.0.0.1");
	CHECK(c.listen_http.v[0].proxy_protocol);
	CHECK(c.listen_https.n == 4);
	if (c.listen_https.n == 4) {
		CHECK(!c.listen_https.v[0].proxy_protocol && c.listen_https.v[0].port == 443);
		CHECK(c.listen_https.v[1].proxy_protocol && c.listen_https.v[1].port == 8443);
		CHECK_STR(c.listen_https.v[1].host, "::");
		CHECK(!c.listen_https.v[2].proxy_protocol);
		CHECK_STR(c.listen_https.v[2].host, "10.0.0.1");
		CHECK(!c.listen_https.v[3].proxy_protocol);
	}
	cfg_static_clear(&c);

	/* Strings never take PROXY headers. */
	CHECK(load_text("{\"listen\": {\"http\": \"0.0.0.0:80\"}}", &c, &err) == 0);
	CHECK(!c.listen_http.v[0].proxy_protocol && !c.listen_https.v[0].proxy_protocol);
	cfg_static_clear(&c);

	BAD("{\"listen\": {\"https\": [\"0.0.0.0:443\", {\"address\": \"0.0.0.0:8443\", \"proxy_protocol\": \"yes\"}]},"
	    " \"trusted_proxies\": [\"10.0.0.0/8\"]}", "listen.https[1].proxy_protocol", "true or false");
	BAD("{\"listen\": {\"http\": {\"address\": \"0.0.0.0:80\", \"proxy_protocol\": 1}}}",
	    "listen.http.proxy_protocol", "true or false");
	BAD("{\"listen\": {\"https\": [{\"proxy_protocol\": true}]}}", "listen.https[0].address", "required");
	BAD("{\"listen\": {\"https\": {\"address\": \"0.0.0.0\"}}}", "listen.https.address", "HOST:PORT");
	BAD("{\"listen\": {\"https\": {\"address\": 443}}}", "listen.https.address", "expected a string");
	BAD("{\"listen\": {\"https\": [{\"address\": \"0.0.0.0:443\", \"proxy\": true}]}}",
	    "listen.https[0].proxy", "unknown key");
	BAD("{\"listen\": {\"https\": [\"0.0.0.0:443\", [\"0.0.0.0:8443\"]]}}", "listen.https[1]",
	    "expected a string");
	/* PROXY headers with nobody trusted to send them: every connection would close. */
	BAD("{\"listen\": {\"https\": [\"0.0.0.0:443\", {\"address\": \"0.0.0.0:8443\", \"proxy_protocol\": true}]}}",
	    "listen.https[1].proxy_protocol", "trusted_proxies");
	BAD("{\"listen\": {\"http\": {\"address\": \"0.0.0.0:80\", \"proxy_protocol\": true}},"
	    " \"trusted_proxies\": []}", "listen.http.proxy_protocol", "trusted_proxies");
}

static void test_durations(void)
{
	static const struct {
		const char *s;
		uint64_t ms;
	} good[] = {
		{"250ms", 250}, {"30s", 30000}, {"5m", 300000}, {"24h", 86400000},
		{"7d", 604800000}, {"0s", 0}, {"0ms", 0}, {"007s", 7000},
		{"9223372036854775807ms", 9223372036854775807ull}, {"106751991167d", 106751991167ull * 86400000},
	};
	static const char *const bad[] = {
		"", "s", "10", "-5s", "+5s", "5 s", " 5s", "5s ", "5S", "5sec", "1.5s", "5ss",
		"18446744073709551616s", "9999999999999999d", "9223372036854775808ms",
		"106751991168d", "5mss", "ms", "5h30m", "0x10s",
	};
	uint64_t ms;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = 12345;
		CHECK(cfg_parse_duration(good[i].s, &ms) == 0);
		CHECK(ms == good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cfg_parse_duration(bad[i], &ms) == 0) {
			check_failed++;
			fprintf(stderr, "duration \"%s\" accepted\n", bad[i]);
		} else {
			check_passed++;
		}
	}
	CHECK(cfg_parse_duration(NULL, &ms) == -1);
}

static void test_sizes(void)
{
	static const struct {
		const char *s;
		uint64_t n;
	} good[] = {
		{"512", 512}, {"0", 0}, {"16k", 16384}, {"16K", 16384}, {"1m", 1048576},
		{"1M", 1048576}, {"2g", 2147483648ull}, {"100m", 104857600},
		{"8589934591g", 8589934591ull << 30},
	};
	static const char *const bad[] = {
		"", "k", "16kb", "-1", "1.5k", "16q", " 16k", "16k ", "16 k", "8589934592g",
		"99999999999999999999", "9223372036854775808", "0x10", "+1",
	};
	uint64_t n;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		n = 1;
		CHECK(cfg_parse_size(good[i].s, &n) == 0);
		CHECK(n == good[i].n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cfg_parse_size(bad[i], &n) == 0) {
			check_failed++;
			fprintf(stderr, "size \"%s\" accepted\n", bad[i]);
		} else {
			check_passed++;
		}
	}
}

static void test_addrs(void)
{
	static const struct {
		const char *s, *host;
		unsigned port;
	} good[] = {
		{"0.0.0.0:80", "0.0.0.0", 80}, {"[::]:443", "::", 443}, {"[::1]:0", "::1", 0},
		{"localhost:8080", "localhost", 8080}, {"demo_web-1:8080", "demo_web-1", 8080},
		{"Demo.Example.com:1", "Demo.Example.com", 1}, {"10.0.0.7:65535", "10.0.0.7", 65535},
		{"[fe80::1:2]:4000", "fe80::1:2", 4000},
	};
	static const char *const bad[] = {
		"::1:80", "[::1]80", "[::1]", "[::1]:", "host", "host:", ":80", "host:65536",
		"host:-1", "host:80x", "256.1.1.1:80", "1.2.3:80", "a..b:80", "[zz::1]:80",
		"host name:80", ".a:80", "a.:80", "[]:80", "host:000080", "[1.2.3.4]:80", "",
		"ho/st:80",
	};
	struct cfg_addr a;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(&a, 0, sizeof(a));
		CHECK(cfg_parse_addr(good[i].s, &a) == 0);
		CHECK_STR(a.host, good[i].host);
		CHECK(a.port == good[i].port);
		char buf[8];
		CHECK_STR(cfg_addr_text(&a, buf, sizeof buf), good[i].s); /* made once, whole */
		cfg_addr_clear(&a);
		CHECK(a.host == NULL && a.text == NULL);
	}
	/* Built by hand: written into the caller's buffer, brackets for IPv6. */
	char buf[64];
	struct cfg_addr v6 = {.host = "fd00::7", .port = 8443}, v4 = {.host = "10.0.0.1", .port = 80};
	CHECK_STR(cfg_addr_text(&v6, buf, sizeof buf), "[fd00::7]:8443");
	CHECK_STR(cfg_addr_text(&v4, buf, sizeof buf), "10.0.0.1:80");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&a, 0, sizeof(a));
		if (cfg_parse_addr(bad[i], &a) == 0) {
			check_failed++;
			fprintf(stderr, "address \"%s\" accepted\n", bad[i]);
			cfg_addr_clear(&a);
		} else {
			check_passed++;
		}
	}
	cfg_addr_clear(NULL);
}

static void test_bad(void)
{
	char longsock[400];

	BAD("{\"listne\": {}}", "listne", "unknown key");
	BAD("{\"timeouts\": {\"client_hedaer\": \"5s\"}}", "timeouts.client_hedaer", "unknown key");
	BAD("{\"listen\": {\"https\": 443}}", "listen.https", "or a list of them");
	BAD("{\"listen\": {\"http\": [\"0.0.0.0:80\", 8080]}}", "listen.http[1]", "expected a string");
	BAD("{\"listen\": {\"http\": \"0.0.0.0:99999\"}}", "listen.http", "HOST:PORT");
	BAD("{\"listen\": {\"https\": [\"[::]:443\", \"::1:443\"]}}", "listen.https[1]", "HOST:PORT");
	BAD("{\"listen\": {\"quic\": \"0.0.0.0:443\"}}", "listen.quic", "unknown key");
	BAD("{\"listen\": \"0.0.0.0:80\"}", "listen", "expected an object");
	BAD("{\"workers\": -1}", "workers", "between 0 and");
	BAD("{\"workers\": \"4\"}", "workers", "expected an integer");
	BAD("{\"workers\": 1.5}", "workers", "expected an integer");
	BAD("{\"workers\": 100000}", "workers", "between 0 and");
	BAD("{\"state_dir\": \"\"}", "state_dir", "must not be empty");
	BAD("{\"state_dir\": null}", "state_dir", "expected a string");
	BAD("{\"tenants_file\": 5}", "tenants_file", "expected a path or null");
	BAD("{\"control\": {\"mode\": 600}}", "control.mode", "octal");
	BAD("{\"control\": {\"mode\": \"0800\"}}", "control.mode", "octal");
	BAD("{\"control\": {\"mode\": \"1777\"}}", "control.mode", "0777");
	BAD("{\"control\": {\"mode\": \"\"}}", "control.mode", "octal");
	memset(longsock, 0, sizeof(longsock));
	strcpy(longsock, "{\"control\": {\"socket\": \"/");
	memset(longsock + strlen(longsock), 'a', 200);
	strcat(longsock, "\"}}");
	BAD(longsock, "control.socket", "too long");
	BAD("{\"control\": {\"sock\": \"/x\"}}", "control.sock", "unknown key");
	BAD("{\"tls\": {\"default\": \"files\"}}", "tls.default", "\"acme\", \"internal\" or \"off\"");
	BAD("{\"tls\": {\"min_version\": \"1.1\"}}", "tls.min_version", "\"1.2\" or \"1.3\"");
	BAD("{\"tls\": {\"min_version\": 1.2}}", "tls.min_version", "\"1.2\" or \"1.3\"");
	BAD("{\"tls\": {\"unknown_sni\": \"drop\"}}", "tls.unknown_sni", "\"reject\" or \"default\"");
	BAD("{\"tls\": {\"default\": \"acme\", \"extra\": 1}}", "tls.extra", "unknown key");
	BAD("{\"acme\": {\"challenges\": []}}", "acme.challenges", "at least one");
	BAD("{\"acme\": {\"challenges\": \"http-01\"}}", "acme.challenges", "expected a list");
	BAD("{\"acme\": {\"challenges\": [\"http-01\", \"dns-01\"]}}", "acme.challenges[1]", "http-01");
	BAD("{\"acme\": {\"on_demand\": \"yes\"}}", "acme.on_demand", "true or false");
	BAD("{\"acme\": {\"on_demand_timeout\": \"30\"}}", "acme.on_demand_timeout", "duration");
	BAD("{\"acme\": {\"on_demand_timeout\": \"0s\"}}", "acme.on_demand_timeout", "greater than zero");
	BAD("{\"acme\": {\"max_concurrent_orders\": 0}}", "acme.max_concurrent_orders", "between 1");
	BAD("{\"acme\": {\"max_orders_per_minute\": 0}}", "acme.max_orders_per_minute", "between 1");
	BAD("{\"acme\": {\"email\": \"nobody\"}}", "acme.email", "e-mail");
	BAD("{\"acme\": {\"email\": 5}}", "acme.email", "string or null");
	BAD("{\"acme\": {\"directory\": \"ftp://x\"}}", "acme.directory", "https://");
	BAD("{\"acme\": {\"ca_bundle\": \"\"}}", "acme.ca_bundle", "must not be empty");
	BAD("{\"trusted_proxies\": [\"10.0.0.0/33\"]}", "trusted_proxies[0]", "CIDR");
	BAD("{\"trusted_proxies\": [\"10.0.0.0/8\", \"fd00::/129\"]}", "trusted_proxies[1]", "CIDR");
	BAD("{\"trusted_proxies\": [\"example.com\"]}", "trusted_proxies[0]", "CIDR");
	BAD("{\"trusted_proxies\": \"10.0.0.0/8\"}", "trusted_proxies", "expected a list");
	BAD("{\"timeouts\": {\"client_idle\": \"0s\"}}", "timeouts.client_idle", "greater than zero");
	BAD("{\"timeouts\": {\"backend_connect\": \"5 seconds\"}}", "timeouts.backend_connect", "duration");
	BAD("{\"timeouts\": {\"shutdown\": 30}}", "timeouts.shutdown", "duration");
	BAD("{\"limits\": {\"header_size\": \"16q\"}}", "limits.header_size", "size");
	BAD("{\"limits\": {\"header_size\": 100}}", "limits.header_size", "at least 1k");
	BAD("{\"limits\": {\"header_size\": \"2m\"}}", "limits.header_size", "at most");
	BAD("{\"limits\": {\"header_count\": 0}}", "limits.header_count", "between 1");
	BAD("{\"limits\": {\"max_body\": -1}}", "limits.max_body", "size");
	BAD("{\"http2\": {\"h2c\": \"yes\"}}", "http2.h2c", "true or false");
	BAD("{\"http2\": {\"max_concurrent_streams\": 0}}", "http2.max_concurrent_streams", "between 1");
	BAD("{\"http2\": {\"push\": true}}", "http2.push", "unknown key");
	BAD("{\"metrics\": {\"listen\": 9100}}", "metrics.listen", "HOST:PORT");
	BAD("{\"metrics\": {\"listen\": \"localhost\"}}", "metrics.listen", "HOST:PORT");
	BAD("{\"metrics\": \"127.0.0.1:9100\"}", "metrics", "expected an object");
	BAD("{\"access_log\": \"\"}", "access_log", "must not be empty");
	BAD("{\"access_log\": false}", "access_log", "\"off\"");
	BAD("{\"access_log\": \"/var/log/\\u0007\"}", "access_log", "control characters");
	BAD("[]", "", "top level");
	BAD("{\"a\\u0001b\": 1}", "a?b", "unknown key");
}

/* test_dir: a private scratch directory. */
static char test_dir[64];

static void write_file(const char *name, const char *text, char *path, size_t cap)
{
	FILE *f;

	snprintf(path, cap, "%s/%s", test_dir, name);
	f = fopen(path, "w");
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

static void test_files(void)
{
	char path[256], big_path[256];
	struct cfg_static c;
	struct cfg_err err = {0};
	char *big;
	FILE *f;

	snprintf(test_dir, sizeof(test_dir), "/tmp/portier-test-static-XXXXXX");
	if (!mkdtemp(test_dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	write_file("good.json", "{\"workers\": 2}\n", path, sizeof(path));
	CHECK(cfg_static_load_file(path, &c, &err) == 0);
	CHECK(c.workers == 2);
	cfg_static_clear(&c);
	unlink(path);

	CHECK(cfg_static_load_file(path, &c, &err) == -1);
	CHECK(strstr(err.message, path) != NULL);
	CHECK(strstr(err.message, "No such file") != NULL);
	CHECK(c.state_dir == NULL);

	write_file("syntax.json", "{\n  \"workers\": 2,\n}\n", path, sizeof(path));
	CHECK(cfg_static_load_file(path, &c, &err) == -1);
	CHECK(strstr(err.message, path) != NULL);
	CHECK(strstr(err.message, "line 3") != NULL);
	unlink(path);

	write_file("dup.json", "{\"workers\": 2, \"workers\": 3}", path, sizeof(path));
	CHECK(cfg_static_load_file(path, &c, &err) == -1);
	CHECK(strstr(err.message, "duplicate") != NULL);
	unlink(path);

	write_file("field.json", "{\"tls\": {\"min_version\": \"1.0\"}}", path, sizeof(path));
	CHECK(cfg_static_load_file(path, &c, &err) == -1);
	CHECK_STR(err.field, "tls.min_version");
	unlink(path);

	/* A file over the cap is refused before it is parsed. */
	snprintf(big_path, sizeof(big_path), "%s/big.json", test_dir);
	if ((f = fopen(big_path, "w")) && (big = malloc(2 * 1024 * 1024))) {
		memset(big, ' ', 2 * 1024 * 1024);
		big[0] = '{';
		big[2 * 1024 * 1024 - 1] = '}';
		fwrite(big, 1, 2 * 1024 * 1024, f);
		free(big);
	}
	if (f)
		fclose(f);
	CHECK(cfg_static_load_file(big_path, &c, &err) == -1);
	CHECK(strstr(err.message, "larger than") != NULL);
	unlink(big_path);

	CHECK(cfg_static_load_file(test_dir, &c, &err) == -1);
	CHECK(strstr(err.message, "not a regular file") != NULL);
	rmdir(test_dir);
}

/* test_example: config/examples/portier.json loads; found from the source
 * tree whether the test runs from the repository or the build directory. */
static void test_example(void)
{
	static const char *const candidates[] = {
		"config/examples/portier.json", "../config/examples/portier.json",
		"../../config/examples/portier.json",
	};
	struct cfg_static c;
	struct cfg_err err = {0};
	const char *src = getenv("PORTIER_SRCDIR");
	char path[PATH_MAX];
	bool found = false;

	for (size_t i = 0; i <= sizeof(candidates) / sizeof(candidates[0]) && !found; i++) {
		if (i == 0 && src)
			snprintf(path, sizeof(path), "%s/config/examples/portier.json", src);
		else if (i == 0)
			continue;
		else
			snprintf(path, sizeof(path), "%s", candidates[i - 1]);
		found = access(path, R_OK) == 0;
	}
	CHECK(found);
	if (!found)
		return;
	CHECK(cfg_static_load_file(path, &c, &err) == 0);
	if (err.message[0])
		fprintf(stderr, "%s: %s: %s\n", path, err.field, err.message);
	CHECK(c.acme.tlsalpn01 && c.acme.http01);
	CHECK_STR(c.tenants_file, "/var/lib/portier/tenants.json");
	cfg_static_clear(&c);
}

int main(void)
{
	test_defaults();
	test_every_key();
	test_variants();
	test_listen_objects();
	test_durations();
	test_sizes();
	test_addrs();
	test_bad();
	test_files();
	test_example();
	return check_done();
}
