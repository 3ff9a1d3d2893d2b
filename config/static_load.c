/*
 * static_load.c - portier.json: defaults of DESIGN.md section 3, then every
 * key the file sets, validated strictly. Unknown keys and wrong types are
 * errors naming the full field path, so a typo never silently falls back to
 * a default.
 *
 * Relative paths (state_dir, tenants_file, control.socket, access_log, ...)
 * are kept as written and so resolve against the working directory of the
 * process, as with most daemons; run portier from a known directory (or use
 * absolute paths) in service files.
 */
#include "config/static_load.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/json_field.h"
#include "config/values.h"

/* Same values as OpenSSL's TLS1_2_VERSION / TLS1_3_VERSION (wire versions);
 * spelled out so the config library does not need OpenSSL's headers. */
#define STATIC_TLS12 0x0303
#define STATIC_TLS13 0x0304

#define STATIC_FILE_MAX  (1024 * 1024) /* portier.json is small; bound hostile input */
#define STATIC_PATH_MAX  4096
#define STATIC_LIST_MAX  64            /* listen addresses per listener */
#define STATIC_CIDR_MAX  1024          /* trusted_proxies entries */
#define STATIC_WORKERS_MAX 1024

/* ---- defaults -------------------------------------------------------- */

static void static_addr_list_clear(struct cfg_addr_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		cfg_addr_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int static_addr_list_one(struct cfg_addr_list *l, const char *host, uint16_t port)
{
	if (!(l->v = calloc(1, sizeof(*l->v))))
		return -1;
	if (!(l->v[0].host = strdup(host))) {
		free(l->v);
		l->v = NULL;
		return -1;
	}
	l->v[0].port = port;
	l->n = 1;
	return 0;
}

static unsigned static_online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > STATIC_WORKERS_MAX ? STATIC_WORKERS_MAX : (unsigned)n;
}

static int static_tenants_file_default(struct cfg_static *c)
{
	size_t len = strlen(c->state_dir);
	char *path;

	while (len > 1 && c->state_dir[len - 1] == '/')
		len--;
	if (!(path = malloc(len + sizeof("/tenants.json"))))
		return -1;
	memcpy(path, c->state_dir, len);
	strcpy(path + len, "/tenants.json");
	free(c->tenants_file);
	c->tenants_file = path;
	return 0;
}

/* cfg_static_defaults: allocation failures leave the string fields NULL;
 * cfg_static_from_json notices and reports them. */
void cfg_static_defaults(struct cfg_static *out)
{
	memset(out, 0, sizeof(*out));
	static_addr_list_one(&out->listen_http, "0.0.0.0", 80);
	static_addr_list_one(&out->listen_https, "0.0.0.0", 443);
	out->workers = static_online_cpus();
	out->state_dir = strdup("/var/lib/portier");
	if (out->state_dir)
		static_tenants_file_default(out);
	out->control_socket = strdup("/run/portier/control.sock");
	out->control_mode = 0600;
	out->tls.dflt = CFG_TLS_INTERNAL;
	out->tls.min_version = STATIC_TLS12;
	out->tls.unknown_sni_default = false;
	out->acme.directory = strdup("https://acme-v02.api.letsencrypt.org/directory");
	out->acme.http01 = true;
	out->acme.tlsalpn01 = true;
	out->acme.on_demand = true;
	out->acme.on_demand_timeout_ms = 30000;
	out->acme.max_concurrent_orders = 4;
	out->acme.max_orders_per_minute = 20;
	out->timeouts_ms.client_header = 10000;
	out->timeouts_ms.client_idle = 75000;
	out->timeouts_ms.backend_connect = 5000;
	out->timeouts_ms.backend_response = 60000;
	out->timeouts_ms.backend_idle = 60000;
	out->timeouts_ms.shutdown = 30000;
	out->limits.header_size = 16 * 1024;
	out->limits.header_count = 100;
	out->limits.max_body = 0;
	out->http2.enabled = true;
	out->http2.h2c = false;
	out->http2.max_concurrent_streams = 100;
	out->access_log = strdup("-");
}

static bool static_defaults_complete(const struct cfg_static *c)
{
	return c->listen_http.n == 1 && c->listen_https.n == 1 && c->state_dir &&
	       c->tenants_file && c->control_socket && c->acme.directory && c->access_log;
}

void cfg_static_clear(struct cfg_static *c)
{
	if (!c)
		return;
	static_addr_list_clear(&c->listen_http);
	static_addr_list_clear(&c->listen_https);
	free(c->state_dir);
	free(c->tenants_file);
	free(c->control_socket);
	free(c->acme.directory);
	free(c->acme.email);
	free(c->acme.ca_bundle);
	free(c->acme.eab_kid);
	free(c->acme.eab_hmac);
	free(c->trusted_proxies);
	if (c->metrics_listen)
		cfg_addr_clear(c->metrics_listen);
	free(c->metrics_listen);
	free(c->access_log);
	memset(c, 0, sizeof(*c));
}

/* ---- sections -------------------------------------------------------- */

/* static_oom: the one message for allocation failures. */
static int static_oom(struct cfg_err *err, const struct jf_path *p)
{
	return jf_fail(err, 500, p, "out of memory");
}

/* static_path_string: a non-empty path-like string, copied into *dst. */
static int static_path_string(const json_t *v, size_t maxlen, struct jf_path *p,
			      struct cfg_err *err, char **dst)
{
	const char *s;

	if (jf_string(v, maxlen, p, err, &s) < 0)
		return -1;
	if (!*s)
		return jf_fail(err, 400, p, "must not be empty");
	return jf_strdup(dst, s) < 0 ? static_oom(err, p) : 0;
}

static int static_addr(const json_t *v, struct jf_path *p, struct cfg_err *err,
		       struct cfg_addr *out)
{
	const char *s;

	if (jf_string(v, 300, p, err, &s) < 0)
		return -1;
	if (cfg_parse_addr(s, out) < 0)
		return jf_fail(err, 400, p,
			       "expected \"HOST:PORT\" or \"[IPV6]:PORT\" (e.g. \"0.0.0.0:443\", \"[::]:443\"), got \"%.100s\"",
			       s);
	return 0;
}

/* static_listen_addr: "HOST:PORT", or {"address": "HOST:PORT",
 * "proxy_protocol": BOOL} for a listener behind a TCP load balancer. */
static int static_listen_addr(json_t *v, struct jf_path *p, struct cfg_err *err,
			      struct cfg_addr *out)
{
	static const char *const keys[] = {"address", "proxy_protocol", NULL};
	bool proxy = false;
	json_t *f;
	size_t mark;

	if (json_is_string(v))
		return static_addr(v, p, err, out);
	if (!json_is_object(v))
		return jf_fail(err, 400, p,
			       "expected a string \"HOST:PORT\" or an object {\"address\": \"HOST:PORT\", \"proxy_protocol\": true}");
	if (jf_check_keys(v, keys, p, err) < 0)
		return -1;
	if ((f = json_object_get(v, "proxy_protocol"))) {
		mark = jf_path_key(p, "proxy_protocol");
		if (jf_bool(f, p, err, &proxy) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	mark = jf_path_key(p, "address");
	if (!(f = json_object_get(v, "address")))
		return jf_fail(err, 400, p, "required: the listener's \"HOST:PORT\"");
	if (static_addr(f, p, err, out) < 0)
		return -1;
	jf_path_pop(p, mark);
	out->proxy_protocol = proxy;
	return 0;
}

/* static_listen_value: an address (static_listen_addr), a list of them, or
 * null (listener off). */
static int static_listen_value(json_t *v, struct jf_path *p, struct cfg_err *err,
			       struct cfg_addr_list *out)
{
	struct cfg_addr_list l = {0};
	size_t n = 1;

	if (json_is_null(v))
		goto done;
	if (json_is_array(v))
		n = json_array_size(v);
	else if (!json_is_string(v) && !json_is_object(v))
		return jf_fail(err, 400, p,
			       "expected \"HOST:PORT\", an object {\"address\": ..., \"proxy_protocol\": ...} or a list of them");
	if (n > STATIC_LIST_MAX)
		return jf_fail(err, 400, p, "at most %d addresses", STATIC_LIST_MAX);
	if (n && !(l.v = calloc(n, sizeof(*l.v))))
		return static_oom(err, p);
	for (size_t i = 0; i < n; i++) {
		json_t *item = json_is_array(v) ? json_array_get(v, i) : v;
		size_t mark = json_is_array(v) ? jf_path_index(p, i) : p->len;

		if (static_listen_addr(item, p, err, &l.v[i]) < 0)
			goto fail;
		l.n++;
		jf_path_pop(p, mark);
	}
done:
	static_addr_list_clear(out);
	*out = l;
	return 0;
fail:
	static_addr_list_clear(&l);
	return -1;
}

static int static_listen(json_t *obj, struct jf_path *p, struct cfg_static *c,
			 struct cfg_err *err)
{
	static const char *const keys[] = {"http", "https", NULL};
	struct cfg_addr_list *dst[] = {&c->listen_http, &c->listen_https};

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	for (size_t i = 0; keys[i]; i++) {
		json_t *v = json_object_get(obj, keys[i]);
		size_t mark;

		if (!v)
			continue;
		mark = jf_path_key(p, keys[i]);
		if (static_listen_value(v, p, err, dst[i]) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	return 0;
}

static int static_control(json_t *obj, struct jf_path *p, struct cfg_static *c,
			  struct cfg_err *err)
{
	static const char *const keys[] = {"socket", "mode", NULL};
	json_t *v;
	size_t mark;

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	if ((v = json_object_get(obj, "socket"))) {
		mark = jf_path_key(p, "socket");
		/* sun_path bounds the socket path, NUL included. */
		if (static_path_string(v, sizeof(((struct sockaddr_un *)0)->sun_path) - 1, p, err,
				       &c->control_socket) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "mode"))) {
		const char *s;
		unsigned mode = 0;

		mark = jf_path_key(p, "mode");
		/* A JSON number 0600 is not valid JSON and 600 would be a surprise;
		 * the mode is an octal string as in chmod. */
		if (!json_is_string(v))
			return jf_fail(err, 400, p, "expected an octal string such as \"0600\"");
		s = json_string_value(v);
		if (!*s || strlen(s) > 4 || strspn(s, "01234567") != strlen(s))
			return jf_fail(err, 400, p, "expected an octal string such as \"0600\"");
		for (; *s; s++)
			mode = mode * 8 + (unsigned)(*s - '0');
		if (mode > 0777)
			return jf_fail(err, 400, p, "only permission bits (at most 0777) are allowed");
		c->control_mode = mode;
		jf_path_pop(p, mark);
	}
	return 0;
}

/* static_enum: v is one of names (NULL-terminated); *idx gets its index. */
static int static_enum(const json_t *v, const char *const *names, struct jf_path *p,
		       struct cfg_err *err, size_t *idx)
{
	const char *s;
	char list[128] = "";
	size_t used = 0;

	if (json_is_string(v)) {
		s = json_string_value(v);
		for (size_t i = 0; names[i]; i++) {
			if (strcmp(s, names[i]) == 0) {
				*idx = i;
				return 0;
			}
		}
	}
	for (size_t i = 0; names[i] && used < sizeof(list); i++) {
		int n = snprintf(list + used, sizeof(list) - used, "%s\"%s\"",
				 i ? (names[i + 1] ? ", " : " or ") : "", names[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	return jf_fail(err, 400, p, "expected %s", list);
}

static int static_tls(json_t *obj, struct jf_path *p, struct cfg_static *c, struct cfg_err *err)
{
	static const char *const keys[] = {"default", "min_version", "unknown_sni", NULL};
	static const char *const modes[] = {"acme", "internal", "off", NULL};
	static const enum cfg_tls_mode mode_vals[] = {CFG_TLS_ACME, CFG_TLS_INTERNAL, CFG_TLS_OFF};
	static const char *const versions[] = {"1.2", "1.3", NULL};
	static const char *const sni[] = {"reject", "default", NULL};
	json_t *v;
	size_t mark, idx;

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	if ((v = json_object_get(obj, "default"))) {
		mark = jf_path_key(p, "default");
		if (static_enum(v, modes, p, err, &idx) < 0)
			return -1;
		c->tls.dflt = mode_vals[idx];
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "min_version"))) {
		mark = jf_path_key(p, "min_version");
		if (static_enum(v, versions, p, err, &idx) < 0)
			return -1;
		c->tls.min_version = idx == 0 ? STATIC_TLS12 : STATIC_TLS13;
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "unknown_sni"))) {
		mark = jf_path_key(p, "unknown_sni");
		if (static_enum(v, sni, p, err, &idx) < 0)
			return -1;
		c->tls.unknown_sni_default = idx == 1;
		jf_path_pop(p, mark);
	}
	return 0;
}

static int static_acme_challenges(const json_t *v, struct jf_path *p, struct cfg_static *c,
				  struct cfg_err *err)
{
	static const char *const names[] = {"tls-alpn-01", "http-01", NULL};
	bool seen[2] = {false, false};

	if (!json_is_array(v))
		return jf_fail(err, 400, p, "expected a list of \"tls-alpn-01\" and/or \"http-01\"");
	if (json_array_size(v) == 0)
		return jf_fail(err, 400, p, "must name at least one challenge type");
	for (size_t i = 0; i < json_array_size(v); i++) {
		size_t mark = jf_path_index(p, i), idx;

		if (static_enum(json_array_get(v, i), names, p, err, &idx) < 0)
			return -1;
		seen[idx] = true;
		jf_path_pop(p, mark);
	}
	c->acme.tlsalpn01 = seen[0];
	c->acme.http01 = seen[1];
	return 0;
}

/* static_nullable_string: null clears *dst, a string replaces it. */
static int static_nullable_string(const json_t *v, size_t maxlen, struct jf_path *p,
				  struct cfg_err *err, char **dst)
{
	if (json_is_null(v)) {
		free(*dst);
		*dst = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return jf_fail(err, 400, p, "expected a string or null");
	return static_path_string(v, maxlen, p, err, dst);
}

static int static_acme_strings(json_t *obj, struct jf_path *p, struct cfg_static *c,
			       struct cfg_err *err)
{
	json_t *v;
	size_t mark;

	if ((v = json_object_get(obj, "directory"))) {
		mark = jf_path_key(p, "directory");
		if (static_path_string(v, 2048, p, err, &c->acme.directory) < 0)
			return -1;
		if (strncmp(c->acme.directory, "https://", 8) != 0 &&
		    strncmp(c->acme.directory, "http://", 7) != 0)
			return jf_fail(err, 400, p, "expected an https:// (or http://) URL");
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "email"))) {
		mark = jf_path_key(p, "email");
		if (static_nullable_string(v, 254, p, err, &c->acme.email) < 0)
			return -1;
		if (c->acme.email && (!strchr(c->acme.email, '@') || strchr(c->acme.email, ' ')))
			return jf_fail(err, 400, p, "expected an e-mail address or null");
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "ca_bundle"))) {
		mark = jf_path_key(p, "ca_bundle");
		if (static_nullable_string(v, STATIC_PATH_MAX, p, err, &c->acme.ca_bundle) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	return 0;
}

/* static_acme_eab: null, or {"kid": ..., "hmac_key": base64url} as the CA
 * issued them (RFC 8555 7.3.4). */
static int static_acme_eab(json_t *v, struct jf_path *p, struct cfg_static *c, struct cfg_err *err)
{
	static const char *const keys[] = {"kid", "hmac_key", NULL};
	if (json_is_null(v))
		return 0;
	if (jf_expect_object(v, p, err) < 0 || jf_check_keys(v, keys, p, err) < 0)
		return -1;
	const char *names[2] = {"kid", "hmac_key"};
	char **dst[2] = {&c->acme.eab_kid, &c->acme.eab_hmac};
	for (int i = 0; i < 2; i++) {
		size_t mark = jf_path_key(p, names[i]);
		json_t *s = json_object_get(v, names[i]);
		if (!s)
			return jf_fail(err, 400, p, "required with eab");
		if (static_path_string(s, 512, p, err, dst[i]) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	for (const char *k = c->acme.eab_hmac; *k; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9') || *k == '-' || *k == '_')) {
			size_t mark = jf_path_key(p, "hmac_key");
			int rc = jf_fail(err, 400, p, "expected base64url (A-Z a-z 0-9 - _)");
			jf_path_pop(p, mark);
			return rc;
		}
	return 0;
}

static int static_acme(json_t *obj, struct jf_path *p, struct cfg_static *c, struct cfg_err *err)
{
	static const char *const keys[] = {"directory", "email", "ca_bundle", "challenges",
					   "on_demand", "on_demand_timeout",
					   "max_concurrent_orders", "max_orders_per_minute", "eab",
					   NULL};
	json_t *v;
	size_t mark;
	uint64_t u;

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	if (static_acme_strings(obj, p, c, err) < 0)
		return -1;
	if ((v = json_object_get(obj, "challenges"))) {
		mark = jf_path_key(p, "challenges");
		if (static_acme_challenges(v, p, c, err) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "on_demand"))) {
		mark = jf_path_key(p, "on_demand");
		if (jf_bool(v, p, err, &c->acme.on_demand) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "on_demand_timeout"))) {
		mark = jf_path_key(p, "on_demand_timeout");
		if (jf_duration(v, 1, p, err, &c->acme.on_demand_timeout_ms) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "max_concurrent_orders"))) {
		mark = jf_path_key(p, "max_concurrent_orders");
		if (jf_uint(v, 1, 1000, p, err, &u) < 0)
			return -1;
		c->acme.max_concurrent_orders = (unsigned)u;
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "eab"))) {
		mark = jf_path_key(p, "eab");
		if (static_acme_eab(v, p, c, err) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "max_orders_per_minute"))) {
		mark = jf_path_key(p, "max_orders_per_minute");
		if (jf_uint(v, 1, 100000, p, err, &u) < 0)
			return -1;
		c->acme.max_orders_per_minute = (unsigned)u;
		jf_path_pop(p, mark);
	}
	return 0;
}

static int static_trusted_proxies(json_t *v, struct jf_path *p, struct cfg_static *c,
				  struct cfg_err *err)
{
	struct cfg_cidr *list = NULL;
	size_t n;

	if (!json_is_array(v))
		return jf_fail(err, 400, p, "expected a list of addresses or CIDRs");
	n = json_array_size(v);
	if (n > STATIC_CIDR_MAX)
		return jf_fail(err, 400, p, "at most %d entries", STATIC_CIDR_MAX);
	if (n && !(list = calloc(n, sizeof(*list))))
		return static_oom(err, p);
	for (size_t i = 0; i < n; i++) {
		size_t mark = jf_path_index(p, i);
		const char *s;

		if (jf_string(json_array_get(v, i), 64, p, err, &s) < 0)
			goto fail;
		if (cfg_parse_cidr(s, &list[i]) < 0) {
			jf_fail(err, 400, p,
				"expected an IP address or CIDR such as \"10.0.0.0/8\" or \"fd00::/8\", got \"%s\"",
				s);
			goto fail;
		}
		jf_path_pop(p, mark);
	}
	free(c->trusted_proxies);
	c->trusted_proxies = list;
	c->n_trusted_proxies = n;
	return 0;
fail:
	free(list);
	return -1;
}

static int static_timeouts(json_t *obj, struct jf_path *p, struct cfg_static *c,
			   struct cfg_err *err)
{
	static const char *const keys[] = {"client_header", "client_idle", "backend_connect",
					   "backend_response", "backend_idle", "shutdown", NULL};
	uint64_t *dst[] = {&c->timeouts_ms.client_header, &c->timeouts_ms.client_idle,
			   &c->timeouts_ms.backend_connect, &c->timeouts_ms.backend_response,
			   &c->timeouts_ms.backend_idle, &c->timeouts_ms.shutdown};

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	for (size_t i = 0; keys[i]; i++) {
		json_t *v = json_object_get(obj, keys[i]);
		size_t mark;

		if (!v)
			continue;
		mark = jf_path_key(p, keys[i]);
		/* A zero shutdown grace means "exit now"; other zero timeouts
		 * would fire at once and are mistakes. */
		if (jf_duration(v, dst[i] == &c->timeouts_ms.shutdown ? 0 : 1, p, err, dst[i]) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	return 0;
}

static int static_limits(json_t *obj, struct jf_path *p, struct cfg_static *c,
			 struct cfg_err *err)
{
	static const char *const keys[] = {"header_size", "header_count", "max_body", NULL};
	json_t *v;
	size_t mark;
	uint64_t u;

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	if ((v = json_object_get(obj, "header_size"))) {
		mark = jf_path_key(p, "header_size");
		if (jf_size(v, 1024 * 1024, p, err, &u) < 0)
			return -1;
		if (u < 1024)
			return jf_fail(err, 400, p, "must be at least 1k");
		c->limits.header_size = u;
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "header_count"))) {
		mark = jf_path_key(p, "header_count");
		if (jf_uint(v, 1, 10000, p, err, &u) < 0)
			return -1;
		c->limits.header_count = (uint32_t)u;
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "max_body"))) {
		mark = jf_path_key(p, "max_body");
		if (jf_size(v, (uint64_t)INT64_MAX, p, err, &c->limits.max_body) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	return 0;
}

static int static_http2(json_t *obj, struct jf_path *p, struct cfg_static *c,
			struct cfg_err *err)
{
	static const char *const keys[] = {"enabled", "h2c", "max_concurrent_streams", NULL};
	json_t *v;
	size_t mark;
	uint64_t u;

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	if ((v = json_object_get(obj, "enabled"))) {
		mark = jf_path_key(p, "enabled");
		if (jf_bool(v, p, err, &c->http2.enabled) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "h2c"))) {
		mark = jf_path_key(p, "h2c");
		if (jf_bool(v, p, err, &c->http2.h2c) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = json_object_get(obj, "max_concurrent_streams"))) {
		mark = jf_path_key(p, "max_concurrent_streams");
		if (jf_uint(v, 1, 1000, p, err, &u) < 0)
			return -1;
		c->http2.max_concurrent_streams = (uint32_t)u;
		jf_path_pop(p, mark);
	}
	return 0;
}

static int static_metrics(json_t *obj, struct jf_path *p, struct cfg_static *c,
			  struct cfg_err *err)
{
	static const char *const keys[] = {"listen", NULL};
	struct cfg_addr *a;
	json_t *v;
	size_t mark;

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	if (!(v = json_object_get(obj, "listen")))
		return 0;
	mark = jf_path_key(p, "listen");
	if (c->metrics_listen)
		cfg_addr_clear(c->metrics_listen);
	free(c->metrics_listen);
	c->metrics_listen = NULL;
	if (json_is_null(v)) {
		jf_path_pop(p, mark);
		return 0;
	}
	if (!json_is_string(v))
		return jf_fail(err, 400, p, "expected \"HOST:PORT\" or null");
	if (!(a = calloc(1, sizeof(*a))))
		return static_oom(err, p);
	if (static_addr(v, p, err, a) < 0) {
		free(a);
		return -1;
	}
	c->metrics_listen = a;
	jf_path_pop(p, mark);
	return 0;
}

/* ---- top level ------------------------------------------------------- */

typedef int (*static_section_fn)(json_t *v, struct jf_path *p, struct cfg_static *c,
				 struct cfg_err *err);

static int static_workers(json_t *v, struct jf_path *p, struct cfg_static *c,
			  struct cfg_err *err)
{
	uint64_t u;

	if (jf_uint(v, 0, STATIC_WORKERS_MAX, p, err, &u) < 0)
		return -1;
	c->workers = u ? (unsigned)u : static_online_cpus();
	return 0;
}

static int static_state_dir(json_t *v, struct jf_path *p, struct cfg_static *c,
			    struct cfg_err *err)
{
	return static_path_string(v, STATIC_PATH_MAX - 64, p, err, &c->state_dir);
}

static int static_tenants_file(json_t *v, struct jf_path *p, struct cfg_static *c,
			       struct cfg_err *err)
{
	/* null keeps the STATE_DIR/tenants.json default, resolved at the end. */
	if (json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return jf_fail(err, 400, p, "expected a path or null");
	return static_path_string(v, STATIC_PATH_MAX, p, err, &c->tenants_file);
}

static int static_access_log(json_t *v, struct jf_path *p, struct cfg_static *c,
			     struct cfg_err *err)
{
	if (!json_is_string(v))
		return jf_fail(err, 400, p, "expected \"-\" (stdout), \"off\" or a file path");
	return static_path_string(v, STATIC_PATH_MAX, p, err, &c->access_log);
}

static const struct {
	const char *key;
	static_section_fn fn;
} static_sections[] = {
	{"listen", static_listen},
	{"workers", static_workers},
	{"state_dir", static_state_dir},
	{"tenants_file", static_tenants_file},
	{"control", static_control},
	{"tls", static_tls},
	{"acme", static_acme},
	{"trusted_proxies", static_trusted_proxies},
	{"timeouts", static_timeouts},
	{"limits", static_limits},
	{"http2", static_http2},
	{"metrics", static_metrics},
	{"access_log", static_access_log},
};

#define STATIC_N_SECTIONS (sizeof(static_sections) / sizeof(static_sections[0]))

/* static_proxy_trust: a listener taking PROXY headers with trusted_proxies
 * empty would close every connection; the error names its proxy_protocol. */
static int static_proxy_trust(json_t *root, const struct cfg_static *c, struct jf_path *p,
			      struct cfg_err *err)
{
	static const char *const names[] = {"http", "https"};
	const struct cfg_addr_list *lists[] = {&c->listen_http, &c->listen_https};

	if (c->n_trusted_proxies)
		return 0;
	for (size_t l = 0; l < 2; l++) {
		for (size_t i = 0; i < lists[l]->n; i++) {
			json_t *v = json_object_get(json_object_get(root, "listen"), names[l]);

			if (!lists[l]->v[i].proxy_protocol)
				continue;
			jf_path_key(p, "listen");
			jf_path_key(p, names[l]);
			if (json_is_array(v))
				jf_path_index(p, i);
			jf_path_key(p, "proxy_protocol");
			return jf_fail(err, 400, p,
				       "PROXY headers are taken only from trusted_proxies, which is empty: every connection would be closed");
		}
	}
	return 0;
}

int cfg_static_from_json(json_t *root, struct cfg_static *out, struct cfg_err *err)
{
	const char *keys[STATIC_N_SECTIONS + 1];
	struct jf_path p;
	bool tenants_file_set;

	jf_path_init(&p, "");
	cfg_static_defaults(out);
	if (!static_defaults_complete(out)) {
		static_oom(err, &p);
		goto fail;
	}
	if (!json_is_object(root)) {
		jf_fail(err, 400, &p, "expected a JSON object at the top level");
		goto fail;
	}
	for (size_t i = 0; i < STATIC_N_SECTIONS; i++)
		keys[i] = static_sections[i].key;
	keys[STATIC_N_SECTIONS] = NULL;
	if (jf_check_keys(root, keys, &p, err) < 0)
		goto fail;
	for (size_t i = 0; i < STATIC_N_SECTIONS; i++) {
		json_t *v = json_object_get(root, static_sections[i].key);
		size_t mark;

		if (!v)
			continue;
		mark = jf_path_key(&p, static_sections[i].key);
		if (static_sections[i].fn(v, &p, out, err) < 0)
			goto fail;
		jf_path_pop(&p, mark);
	}
	if (static_proxy_trust(root, out, &p, err) < 0)
		goto fail;
	tenants_file_set = json_is_string(json_object_get(root, "tenants_file"));
	if (!tenants_file_set && static_tenants_file_default(out) < 0) {
		static_oom(err, &p);
		goto fail;
	}
	return 0;
fail:
	cfg_static_clear(out);
	return -1;
}

int cfg_static_load_file(const char *path, struct cfg_static *out, struct cfg_err *err)
{
	json_t *root = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (jf_load_file(path, STATIC_FILE_MAX, false, &root, err) < 0)
		return -1;
	rc = cfg_static_from_json(root, out, err);
	json_decref(root);
	return rc;
}
