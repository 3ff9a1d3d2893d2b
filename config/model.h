/*
 * model.h - the configuration model: static config (portier.json) and tenants
 * (tenants.json) after loading and validation. Pure data; loaders live in
 * static_load.c and tenant_load.c, the compiled routing table in snapshot.c.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct rule; /* config/rule.h */

/* cfg_err: what the control path reports to an operator. */
struct cfg_err {
	int status;        /* 400 invalid, 409 host conflict, 500 system error */
	char field[192];   /* JSON path of the culprit: "routes[1].rule", "listen.https" */
	char message[512]; /* one sentence, says what to fix */
	char tenant[64];   /* 409: the tenant that already routes the host */
};

/* cfg_err_set: fill *err (NULL-safe); field may be NULL or "". */
void cfg_err_set(struct cfg_err *err, int status, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A "HOST:PORT" or "[V6]:PORT"; host is stored without brackets. */
struct cfg_addr {
	char *host;
	uint16_t port;
	char *text; /* "host:port" or "[v6]:port", made once by cfg_parse_addr; NULL when built by hand */
	bool proxy_protocol; /* listeners only: a PROXY header from trusted_proxies comes first */
};

struct cfg_addr_list {
	struct cfg_addr *v;
	size_t n;
};

struct cfg_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint8_t prefix;
};

enum cfg_tls_mode {
	CFG_TLS_INHERIT = 0, /* tenant without "tls": use static tls.default */
	CFG_TLS_ACME,
	CFG_TLS_INTERNAL,
	CFG_TLS_FILES,
	CFG_TLS_OFF,
};

struct cfg_static {
	struct cfg_addr_list listen_http, listen_https;
	unsigned workers;    /* 0 in the file means one per core; resolved by the loader */
	char *state_dir;
	char *tenants_file;  /* resolved to STATE_DIR/tenants.json when null */
	char *control_socket;
	unsigned control_mode;
	struct {
		enum cfg_tls_mode dflt; /* never CFG_TLS_INHERIT */
		int min_version;        /* TLS1_2_VERSION or TLS1_3_VERSION */
		bool unknown_sni_default;
	} tls;
	struct {
		char *directory, *email, *ca_bundle;
		char *eab_kid, *eab_hmac; /* external account binding, both or neither */
		bool http01, tlsalpn01; /* from "challenges" */
		bool on_demand;
		uint64_t on_demand_timeout_ms;
		unsigned max_concurrent_orders, max_orders_per_minute;
	} acme;
	struct cfg_cidr *trusted_proxies;
	size_t n_trusted_proxies;
	struct {
		uint64_t client_header, client_idle, backend_connect, backend_response,
			backend_idle, shutdown;
	} timeouts_ms;
	struct {
		uint64_t header_size;
		uint32_t header_count;
		uint64_t max_body; /* 0 = unlimited */
	} limits;
	struct {
		bool enabled;                    /* ALPN "h2" on TLS */
		bool h2c;                        /* prior knowledge on the plain listener */
		uint32_t max_concurrent_streams; /* per connection */
	} http2;
	struct cfg_addr *metrics_listen; /* NULL = off */
	char *access_log;                /* "-" = stdout, "off", or a file path */
};

enum cfg_balance { CFG_BAL_ROUND_ROBIN, CFG_BAL_LEAST_CONN, CFG_BAL_IP_HASH };

/* Per-backend runtime state, shared by all workers through atomics. It lives
 * beside the config so balancing needs no lookup; snapshot_build carries it
 * over from the previous snapshot for backends that did not change. */
struct cfg_backend_state {
	_Atomic uint32_t active;        /* requests in flight (least_conn) */
	_Atomic uint32_t fails;         /* consecutive failures (passive health) */
	_Atomic int64_t down_until_ms;  /* monotonic ms; 0 = up */
	_Atomic bool check_down;        /* marked down by the active checker */
};

struct cfg_health {
	bool enabled;          /* active checks configured */
	char *path;
	uint64_t interval_ms, timeout_ms;
	uint32_t max_fails;    /* passive: consecutive failures that mark a backend down (default 3) */
	uint64_t cooldown_ms;  /* passive: how long it stays down (default 10s) */
};

struct cfg_respond {
	int status;
	char *body;
	size_t body_len;
	char *content_type; /* default "text/plain; charset=utf-8" */
};

struct cfg_service {
	char *name;
	bool is_respond;
	struct cfg_respond respond;
	struct cfg_addr *backends;
	size_t n_backends;
	struct cfg_backend_state *state; /* n_backends entries */
	_Atomic uint64_t rr_next;
	enum cfg_balance balance;
	struct cfg_health health;
};

struct cfg_rate_limit {
	bool set;
	uint64_t average;
	uint64_t period_ms;
	uint64_t burst;       /* default: average */
	bool per_client_ip;
	uint32_t max_clients; /* default 65536 */
	uint8_t ipv6_prefix;  /* default 64 */
};

struct cfg_route {
	char *rule_text;
	struct rule *rule;     /* compiled, owned */
	char *service;         /* name as written */
	size_t service_idx;    /* index into the tenant's services */
	char *strip_prefix;    /* NULL = none */
	int64_t priority;      /* explicit, else strlen(rule_text) */
	struct cfg_rate_limit rate_limit;
};

/* Counters of a tenant's traffic, kept across table updates (the next
 * snapshot's tenant of the same name shares them). Workers add atomically. */
struct cfg_tenant_stats {
	_Atomic unsigned refs;
	_Atomic uint64_t requests;
	_Atomic uint64_t by_class[6]; /* responses by status class: [2] = 2xx ... [5] = 5xx */
	_Atomic uint64_t bytes_in, bytes_out;
	_Atomic uint64_t rate_limited; /* answered 429 by a rate limit or max_inflight */
};

/* The runtime state of a tenant's limits (buckets, in-flight count), owned by
 * the data plane (proxy/limit/) and only carried here, refcounted, so a
 * table update can hand an unchanged tenant its buckets as they are. */
struct cfg_limits {
	_Atomic unsigned refs;
	void (*free)(struct cfg_limits *l);
};
/* cfg_limits_release: NULL-safe; the last reference calls l->free. */
void cfg_limits_release(struct cfg_limits *l);

struct cfg_tenant_stats *cfg_tenant_stats_new(void);
struct cfg_tenant_stats *cfg_tenant_stats_retain(struct cfg_tenant_stats *st);
void cfg_tenant_stats_release(struct cfg_tenant_stats *st); /* NULL-safe */

struct cfg_tenant {
	char *name;
	struct cfg_tenant_stats *stats; /* set by snapshot_build; NULL before */
	struct cfg_route *routes;
	size_t n_routes;
	struct cfg_service *services;
	size_t n_services;
	struct cfg_rate_limit rate_limit;
	uint64_t max_inflight;    /* requests at the backends at once; 0 = no limit */
	struct cfg_limits *limits; /* runtime state, attached by the data plane; may be NULL */
	enum cfg_tls_mode tls;    /* CFG_TLS_INHERIT when not given */
	char *tls_cert, *tls_key; /* CFG_TLS_FILES */
	bool https_redirect;      /* default true */
	bool hsts;                /* default false */
	int64_t max_body;         /* -1 = static limits.max_body; 0 = unlimited */
	json_t *json;             /* the tenant as written (shorthand kept), owned */
};

struct cfg_tenants {
	struct cfg_tenant *v;
	size_t n;
};

/* cfg_tenant_tls: the effective TLS mode of t under static config st. */
enum cfg_tls_mode cfg_tenant_tls(const struct cfg_tenant *t, const struct cfg_static *st);
