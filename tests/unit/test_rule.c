/*
 * test_rule.c - the rule language: each matcher, operators and precedence,
 * quoting, parse and PCRE2 errors, limits, host claims, and concurrent use.
 */
#include "config/rule.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tests/unit/check.h"

struct thdr {
	const char *name, *value;
};

/* treq: a test request; headers are a plain array. */
struct treq {
	const char *host, *path, *method;
	struct thdr hdr[8];
	size_t nhdr;
	struct sockaddr_storage client;
	bool has_client;
};

static bool treq_header_get(const void *ud, const char *name, size_t name_len, size_t idx,
			    const char **val, size_t *val_len)
{
	const struct treq *t = ud;
	size_t seen = 0;

	for (size_t i = 0; i < t->nhdr; i++) {
		if (strlen(t->hdr[i].name) != name_len || strncasecmp(t->hdr[i].name, name, name_len) != 0)
			continue;
		if (seen++ == idx) {
			*val = t->hdr[i].value;
			*val_len = strlen(t->hdr[i].value);
			return true;
		}
	}
	return false;
}

static struct rule_req treq_view(const struct treq *t)
{
	struct rule_req r = {
		.host = t->host, .host_len = t->host ? strlen(t->host) : 0,
		.path = t->path, .path_len = t->path ? strlen(t->path) : 0,
		.method = t->method, .method_len = t->method ? strlen(t->method) : 0,
		.client = t->has_client ? (const struct sockaddr *)&t->client : NULL,
		.header_get = treq_header_get, .header_ud = t,
	};
	return r;
}

static void treq_client(struct treq *t, const char *addr)
{
	memset(&t->client, 0, sizeof(t->client));
	t->has_client = true;
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->client;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&t->client;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &s4->sin_addr);
	}
}

/* run: 1 match, 0 no match, -1 did not compile (reported). */
static int run(const char *text, const struct treq *t)
{
	char err[256];
	struct rule *r = rule_compile(text, err, sizeof(err));
	struct rule_req req = treq_view(t);
	bool m;

	if (!r) {
		fprintf(stderr, "  compile \"%s\": %s\n", text, err);
		return -1;
	}
	m = rule_match(r, &req);
	rule_free(r);
	return m;
}

/* hp: a request with only host and path (and GET). */
static int hp(const char *text, const char *host, const char *path)
{
	struct treq t = {.host = host, .path = path, .method = "GET"};

	return run(text, &t);
}

/* fails_with: text must not compile, and the message must contain frag. */
static bool fails_with(const char *text, const char *frag)
{
	char err[256] = "";
	struct rule *r = rule_compile(text, err, sizeof(err));

	if (r) {
		rule_free(r);
		fprintf(stderr, "  \"%s\" compiled, expected \"%s\"\n", text, frag);
		return false;
	}
	if (!strstr(err, frag)) {
		fprintf(stderr, "  \"%s\": \"%s\" lacks \"%s\"\n", text, err, frag);
		return false;
	}
	return true;
}

static void test_host(void)
{
	CHECK(hp("Host(`a.example.com`)", "a.example.com", "/") == 1);
	CHECK(hp("Host(`a.example.com`)", "b.example.com", "/") == 0);
	CHECK(hp("Host(`a.example.com`)", "a.example.co", "/") == 0);
	CHECK(hp("Host(`a.example.com`)", "a.example.com.evil", "/") == 0);
	CHECK(hp("Host(`A.Example.COM`)", "a.example.com", "/") == 1);
	CHECK(hp("Host(`a.example.com`)", "A.EXAMPLE.com", "/") == 1);
	CHECK(hp("Host(`a.example.com.`)", "a.example.com", "/") == 1);
	CHECK(hp("Host(`127.0.0.1`)", "127.0.0.1", "/") == 1);
	CHECK(hp("Host(`a.example.com`)", NULL, "/") == 0);
	CHECK(hp("Host(`a.example.com`)", "", "/") == 0);
}

static void test_wildcard(void)
{
	const char *w = "Host(`*.example.com`)";

	CHECK(hp(w, "a.example.com", "/") == 1);
	CHECK(hp(w, "app-1.example.com", "/") == 1);
	CHECK(hp(w, "A.Example.Com", "/") == 1);
	CHECK(hp(w, "example.com", "/") == 0);
	CHECK(hp(w, "a.b.example.com", "/") == 0);
	CHECK(hp(w, ".example.com", "/") == 0);
	CHECK(hp(w, "xexample.com", "/") == 0);
	CHECK(hp(w, "a.example.com.evil.net", "/") == 0);
	CHECK(hp(w, "a.example.org", "/") == 0);
	CHECK(hp("Host(`*.EXAMPLE.com`)", "a.example.com", "/") == 1);
}

static void test_host_regexp(void)
{
	CHECK(hp("HostRegexp(`^[a-z]+\\.example\\.com$`)", "app.example.com", "/") == 1);
	CHECK(hp("HostRegexp(`^[a-z]+\\.example\\.com$`)", "app1.example.com", "/") == 0);
	CHECK(hp("HostRegexp(`^[a-z]+\\.example\\.com$`)", "example.com", "/") == 0);
	/* Traefik v3: a search, not anchored */
	CHECK(hp("HostRegexp(`example\\.com`)", "www.example.com.evil.net", "/") == 1);
	CHECK(hp("HostRegexp(`^example\\.com`)", "www.example.com", "/") == 0);
	/* host matching is case-insensitive, in the pattern too */
	CHECK(hp("HostRegexp(`^API\\.Example\\.com$`)", "api.example.com", "/") == 1);
	CHECK(hp("HostRegexp(`^api\\.example\\.com$`)", "API.example.com", "/") == 1);
	CHECK(hp("HostRegexp(`.+`)", NULL, "/") == 0);
}

static void test_path(void)
{
	CHECK(hp("Path(`/api`)", "a", "/api") == 1);
	CHECK(hp("Path(`/api`)", "a", "/api/") == 0);
	CHECK(hp("Path(`/api`)", "a", "/API") == 0);
	CHECK(hp("Path(`/api`)", "a", "/ap") == 0);
	CHECK(hp("Path(`/api`)", "a", NULL) == 0);
	CHECK(hp("PathPrefix(`/api`)", "a", "/api") == 1);
	CHECK(hp("PathPrefix(`/api`)", "a", "/api/v1/users") == 1);
	CHECK(hp("PathPrefix(`/api`)", "a", "/apix") == 1); /* a byte prefix, as Traefik */
	CHECK(hp("PathPrefix(`/api/`)", "a", "/api") == 0);
	CHECK(hp("PathPrefix(`/api`)", "a", "/Api/x") == 0);
	CHECK(hp("PathPrefix(`/`)", "a", "/anything") == 1);
	CHECK(hp("PathPrefix(`/`)", "a", NULL) == 0);
	CHECK(hp("PathRegexp(`^/users/[0-9]+$`)", "a", "/users/42") == 1);
	CHECK(hp("PathRegexp(`^/users/[0-9]+$`)", "a", "/users/4x") == 0);
	CHECK(hp("PathRegexp(`\\.php$`)", "a", "/x/index.php") == 1);
	CHECK(hp("PathRegexp(`^/USERS`)", "a", "/users") == 0); /* paths are case-sensitive */
	CHECK(hp("PathRegexp(`^/caf\xc3\xa9$`)", "a", "/caf\xc3\xa9") == 1);
	/* invalid UTF-8 in the subject is searched, not an error */
	CHECK(hp("PathRegexp(`^/x`)", "a", "/x\xff\xfe") == 1);
}

static void test_method(void)
{
	struct treq t = {.host = "a", .path = "/", .method = "GET"};

	CHECK(run("Method(`GET`)", &t) == 1);
	CHECK(run("Method(`get`)", &t) == 1);   /* the value is uppercased, as Traefik */
	CHECK(run("Method(`POST`)", &t) == 0);
	CHECK(run("Method(`GE`)", &t) == 0);
	t.method = "get";                       /* request methods are case-sensitive */
	CHECK(run("Method(`GET`)", &t) == 0);
	t.method = "PROPFIND";
	CHECK(run("Method(`PROPFIND`)", &t) == 1);
	t.method = NULL;
	CHECK(run("Method(`GET`)", &t) == 0);
}

static void test_header(void)
{
	struct treq t = {.host = "a", .path = "/", .method = "GET", .nhdr = 4, .hdr = {
		{"X-Env", "dev"}, {"Accept", "text/html"}, {"x-env", "prod"},
		{"Accept", "application/json; q=0.9"}}};

	CHECK(run("Header(`X-Env`, `dev`)", &t) == 1);
	CHECK(run("Header(`X-Env`, `prod`)", &t) == 1);   /* second value, other case */
	CHECK(run("Header(`x-ENV`, `prod`)", &t) == 1);
	CHECK(run("Header(`X-Env`, `Prod`)", &t) == 0);   /* values compare exactly */
	CHECK(run("Header(`X-Env`, `pro`)", &t) == 0);
	CHECK(run("Header(`X-Env`, `prod `)", &t) == 0);
	CHECK(run("Header(`X-Other`, `dev`)", &t) == 0);
	CHECK(run("HeaderRegexp(`Accept`, `json`)", &t) == 1);
	CHECK(run("HeaderRegexp(`Accept`, `^application/`)", &t) == 1);
	CHECK(run("HeaderRegexp(`Accept`, `^text/plain`)", &t) == 0);
	CHECK(run("HeaderRegexp(`Accept`, `^TEXT/`)", &t) == 0);
	CHECK(run("HeaderRegexp(`X-None`, `.*`)", &t) == 0);
	CHECK(run("!Header(`X-None`, `x`)", &t) == 1);

	struct rule *r = rule_compile("Header(`X-Env`, `dev`)", NULL, 0);
	struct rule_req req = treq_view(&t);
	req.header_get = NULL;
	CHECK(r && !rule_match(r, &req));
	rule_free(r);
}

static void test_client_ip(void)
{
	struct treq t = {.host = "a", .path = "/", .method = "GET"};

	treq_client(&t, "10.1.2.3");
	CHECK(run("ClientIP(`10.0.0.0/8`)", &t) == 1);
	CHECK(run("ClientIP(`10.1.2.3`)", &t) == 1);
	CHECK(run("ClientIP(`10.1.2.4`)", &t) == 0);
	CHECK(run("ClientIP(`11.0.0.0/8`)", &t) == 0);
	CHECK(run("ClientIP(`10.1.2.3/8`)", &t) == 1);   /* host bits ignored */
	CHECK(run("ClientIP(`0.0.0.0/0`)", &t) == 1);
	CHECK(run("ClientIP(`::/0`)", &t) == 0);         /* v4 peer, v6 network */
	CHECK(run("ClientIP(`::ffff:10.0.0.0/104`)", &t) == 1);
	treq_client(&t, "10.127.255.255");
	CHECK(run("ClientIP(`10.0.0.0/9`)", &t) == 1);
	treq_client(&t, "10.128.0.0");
	CHECK(run("ClientIP(`10.0.0.0/9`)", &t) == 0);
	/* a v4-mapped peer (dual-stack listener) is an IPv4 client */
	treq_client(&t, "::ffff:10.1.2.3");
	CHECK(run("ClientIP(`10.0.0.0/8`)", &t) == 1);
	CHECK(run("ClientIP(`192.168.0.0/16`)", &t) == 0);
	treq_client(&t, "2001:db8:1::1");
	CHECK(run("ClientIP(`2001:db8::/32`)", &t) == 1);
	CHECK(run("ClientIP(`2001:db8:1::1`)", &t) == 1);
	CHECK(run("ClientIP(`2001:db9::/32`)", &t) == 0);
	CHECK(run("ClientIP(`2001:db8::/47`)", &t) == 1);
	CHECK(run("ClientIP(`2001:db8::/48`)", &t) == 0);
	CHECK(run("ClientIP(`::/0`)", &t) == 1);
	CHECK(run("ClientIP(`0.0.0.0/0`)", &t) == 0);
	t.has_client = false;
	CHECK(run("ClientIP(`0.0.0.0/0`)", &t) == 0);
	CHECK(run("!ClientIP(`10.0.0.0/8`)", &t) == 1);
}

static void test_operators(void)
{
	const char *p = "Host(`a.com`) || Host(`b.com`) && Path(`/x`)";
	const char *q = "(Host(`a.com`) || Host(`b.com`)) && Path(`/x`)";

	/* && binds tighter than || */
	CHECK(hp(p, "a.com", "/y") == 1);
	CHECK(hp(p, "b.com", "/y") == 0);
	CHECK(hp(p, "b.com", "/x") == 1);
	CHECK(hp(q, "a.com", "/y") == 0);
	CHECK(hp(q, "a.com", "/x") == 1);
	CHECK(hp(q, "c.com", "/x") == 0);
	/* ! binds tighter than && */
	CHECK(hp("!Host(`a.com`) && Path(`/x`)", "b.com", "/x") == 1);
	CHECK(hp("!Host(`a.com`) && Path(`/x`)", "a.com", "/x") == 0);
	CHECK(hp("!Host(`a.com`) && Path(`/x`)", "b.com", "/y") == 0);
	CHECK(hp("!(Host(`a.com`) && Path(`/x`))", "a.com", "/y") == 1);
	CHECK(hp("!(Host(`a.com`) || Host(`b.com`))", "b.com", "/") == 0);
	CHECK(hp("!(Host(`a.com`) || Host(`b.com`))", "c.com", "/") == 1);
	CHECK(hp("!!Host(`a.com`)", "a.com", "/") == 1);
	CHECK(hp("!!!Host(`a.com`)", "a.com", "/") == 0);
	CHECK(hp("! Host(`a.com`)", "b.com", "/") == 1);
	CHECK(hp("((((Host(`a.com`)))))", "a.com", "/") == 1);
	CHECK(hp("Host(`a.com`)&&Path(`/x`)||Host(`c.com`)", "c.com", "/") == 1);
	CHECK(hp("Host(`a.com`) && (Path(`/x`) || Path(`/y`)) && Method(`GET`)", "a.com", "/y") == 1);
	CHECK(hp("Host(`a.com`) && (Path(`/x`) || Path(`/y`)) && Method(`POST`)", "a.com", "/y") == 0);
	CHECK(hp("\n\tHost(`a.com`)\r\n  &&\tPathPrefix( `/x` )\n", "a.com", "/x/1") == 1);
	CHECK(hp("Header ( `X`,`y` ) || Host(`a.com`)", "a.com", "/") == 1);
}

static void test_quoting(void)
{
	struct treq t = {.host = "a.com", .path = "/a12", .method = "GET", .nhdr = 2, .hdr = {
		{"X-Q", "say \"hi\" \\ ok"}, {"X-R", "a`b"}}};

	CHECK(run("Host(\"a.com\")", &t) == 1);
	CHECK(run("Host(\"a.com\") && Path(`/a12`)", &t) == 1);
	CHECK(run("Header(\"X-Q\", \"say \\\"hi\\\" \\\\ ok\")", &t) == 1);
	CHECK(run("Header(\"X-R\", \"a`b\")", &t) == 1);
	/* backticks are raw: the backslash reaches PCRE2 */
	CHECK(run("PathRegexp(`^/a\\d+$`)", &t) == 1);
	CHECK(run("PathRegexp(\"^/a\\\\d+$\")", &t) == 1);
	CHECK(run("Header(`X-Q`, `say \"hi\" \\ ok`)", &t) == 1);
	CHECK(run("Path(\"/a\\\\12\")", &t) == 0);
}

static void test_parse_errors(void)
{
	CHECK(fails_with("", "at 0: empty rule"));
	CHECK(fails_with("  \n\t ", "at 5: empty rule"));
	CHECK(fails_with("Host(`a.com`", "at 12: expected ',' or ')', found end of rule"));
	CHECK(fails_with("(Host(`a.com`)", "at 14: expected ')', found end of rule"));
	CHECK(fails_with("(Host(`a.com`) Path(`/`))", "at 15: expected ')', found 'P'"));
	CHECK(fails_with("Hots(`a.com`)", "at 0: unknown matcher 'Hots'"));
	CHECK(fails_with("Host(`a.com`) || host(`b.com`)", "at 17: unknown matcher 'host' (did you mean 'Host'?)"));
	CHECK(fails_with("Query(`a`, `b`)", "unknown matcher 'Query' (not supported"));
	CHECK(fails_with("Headers(`a`, `b`)", "Traefik v2 syntax; use Header"));
	CHECK(fails_with("Host(`a.com`, `b.com`)", "at 4: Host takes 1 value, got 2"));
	CHECK(fails_with("Header(`X`)", "Header takes 2 values, got 1"));
	CHECK(fails_with("Header(`X`, `a`, `b`)", "Header takes 2 values, got 3"));
	CHECK(fails_with("ClientIP(`10.0.0.0/8`, `11.0.0.0/8`)", "ClientIP takes 1 value, got 2"));
	CHECK(fails_with("Host()", "at 4: Host takes 1 value, got none"));
	CHECK(fails_with("Host(``)", "at 5: Host: empty value"));
	CHECK(fails_with("Path(\"\")", "Path: empty value"));
	CHECK(fails_with("Host(`a.com`) & Path(`/`)", "at 14: expected '&&'"));
	CHECK(fails_with("Host(`a.com`) | Path(`/`)", "at 14: expected '||'"));
	CHECK(fails_with("Host(`a.com`) Path(`/`)", "at 14: expected '&&', '||' or the end of the rule, found 'P'"));
	CHECK(fails_with("Host(`a.com`))", "at 13: expected '&&', '||' or the end"));
	CHECK(fails_with("Host('a.com')", "at 5: single quotes are not accepted"));
	CHECK(fails_with("Host(`a.com)", "at 5: unterminated value: missing closing '`'"));
	CHECK(fails_with("Host(\"a.com)", "at 5: unterminated value: missing closing '\"'"));
	CHECK(fails_with("Host(\"a.com\\\")", "unterminated value"));
	CHECK(fails_with("Host(\"a\\n.com\")", "at 7: unsupported escape"));
	CHECK(fails_with("Host(a.com)", "at 5: expected a value in backticks or double quotes, found 'a'"));
	CHECK(fails_with("Host(`a.com`,)", "at 13: expected a value"));
	CHECK(fails_with("Host(`a.com` `b.com`)", "expected ',' or ')'"));
	CHECK(fails_with("&& Host(`a.com`)", "at 0: expected a matcher, '!' or '(', found '&'"));
	CHECK(fails_with("Host(`a.com`) &&", "at 16: expected a matcher, '!' or '(', found end of rule"));
	CHECK(fails_with("Host(`a.com`) && ()", "at 18: expected a matcher"));
	CHECK(fails_with("!", "at 1: expected a matcher"));
	CHECK(fails_with("Host `a.com`", "at 5: expected '(' after the matcher name"));
	CHECK(fails_with("Host", "expected '(' after the matcher name, found end of rule"));
	CHECK(fails_with("Host(`a.com`) && \x01", "found byte 0x01"));
	CHECK(fails_with(NULL, "no rule"));
}

static void test_value_errors(void)
{
	CHECK(fails_with("Host(`a com`)", "at 5: Host: invalid host name 'a com'"));
	CHECK(fails_with("Host(`a.com:8080`)", "invalid host name 'a.com:8080' (no port"));
	CHECK(fails_with("Host(`**.a.com`)", "single leading '*.' label"));
	CHECK(fails_with("Host(`a.*.com`)", "single leading '*.' label"));
	CHECK(fails_with("Host(`my_app.com`)", "underscores"));
	CHECK(fails_with("Host(`a..com`)", "invalid host name"));
	CHECK(fails_with("Host(`.`)", "invalid host name"));
	CHECK(fails_with("Host(`[::1]`)", "invalid host name"));
	CHECK(fails_with("Host(`ex\xc3\xa4mple.com`)", "Host: non-ASCII host name"));
	CHECK(fails_with("HostRegexp(`\xc3\xa4`)", "HostRegexp: non-ASCII pattern"));
	CHECK(fails_with("Path(`api`)", "at 5: Path: 'api' does not start with '/'"));
	CHECK(fails_with("PathPrefix(`api/`)", "PathPrefix: 'api/' does not start with '/'"));
	CHECK(fails_with("Path(`/a b`)", "Path: space or control character"));
	CHECK(fails_with("Method(`GE T`)", "Method: invalid method 'GE T'"));
	CHECK(fails_with("Header(`X Y`, `v`)", "Header: invalid header name 'X Y'"));
	CHECK(fails_with("HeaderRegexp(`X:`, `v`)", "HeaderRegexp: invalid header name"));
	CHECK(fails_with("Header(`X`, `a\x01`)", "Header: control character in value"));
	CHECK(fails_with("ClientIP(`10.0.0.0/33`)", "at 9: ClientIP: invalid IP address or CIDR '10.0.0.0/33'"));
	CHECK(fails_with("ClientIP(`10.0.0/8`)", "invalid IP address or CIDR"));
	CHECK(fails_with("ClientIP(`::/129`)", "invalid IP address or CIDR"));
	CHECK(fails_with("ClientIP(`10.0.0.0/`)", "invalid IP address or CIDR"));
	CHECK(fails_with("ClientIP(`10.0.0.0/+8`)", "invalid IP address or CIDR"));
	CHECK(fails_with("ClientIP(`fe80::1%eth0`)", "invalid IP address or CIDR"));
	CHECK(fails_with("ClientIP(`example.com`)", "invalid IP address or CIDR"));
	CHECK(fails_with("HostRegexp(`{sub:[a-z]+}.example.com`)", "Traefik v2 '{name:regexp}' placeholders"));
	/* the first error is the leftmost one */
	CHECK(fails_with("Path(`x`) && Host(`a b`)", "Path:"));
}

static void test_pcre2_errors(void)
{
	CHECK(fails_with("HostRegexp(`(abc`)", "at 11: HostRegexp: PCRE2: missing closing parenthesis at offset 4"));
	CHECK(fails_with("PathRegexp(`[a-`)", "at 11: PathRegexp: PCRE2: missing terminating ] for character class"));
	CHECK(fails_with("HeaderRegexp(`X`, `*a`)", "at 18: HeaderRegexp: PCRE2: quantifier does not follow a repeatable item at offset 0"));
	CHECK(fails_with("PathRegexp(`a\\C`)", "PCRE2: using \\C is disabled"));
	CHECK(fails_with("PathRegexp(`\xff`)", "PCRE2: UTF-8 error"));
	/* a literal '{' that is no v2 placeholder is fine */
	CHECK(hp("PathRegexp(`^/a{2}$`)", "a", "/aa") == 1);
	CHECK(hp("PathRegexp(`^/\\{x:`)", "a", "/{x:") == 1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_regex_limits(void)
{
	char path[64];
	double t0 = now_s();

	memset(path, 'a', 40);
	strcpy(path + 40, "!");
	path[0] = '/';
	/* catastrophic backtracking is cut off by the match limit ... */
	CHECK(hp("PathRegexp(`^/(a+)+$`)", "a.com", path) == 0);
	/* ... and "unknown" is not "false": negating it does not match either */
	CHECK(hp("!PathRegexp(`^/(a+)+$`)", "a.com", path) == 0);
	/* Kleene: false && unknown is false, true || unknown is true */
	CHECK(hp("!(PathRegexp(`^/(a+)+$`) && Host(`b.com`))", "a.com", path) == 1);
	CHECK(hp("!(Host(`b.com`) && PathRegexp(`^/(a+)+$`))", "a.com", path) == 1);
	CHECK(hp("!(PathRegexp(`^/(a+)+$`) || Host(`b.com`))", "a.com", path) == 0);
	CHECK(hp("PathRegexp(`^/(a+)+$`) || Host(`a.com`)", "a.com", path) == 1);
	CHECK(hp("Host(`a.com`) || PathRegexp(`^/(a+)+$`)", "a.com", path) == 1);
	CHECK(now_s() - t0 < 5.0);
	/* the same pattern still works on input it can decide */
	CHECK(hp("PathRegexp(`^/(a+)+$`)", "a.com", "/aaaa") == 1);
	CHECK(hp("!PathRegexp(`^/(a+)+$`)", "a.com", "/aaab") == 1);
}

/* nest: n '(' + inner + n ')' */
static char *nest(size_t n, char open, const char *inner, char close)
{
	size_t il = strlen(inner);
	char *s = malloc(2 * n + il + 1);

	memset(s, open, n);
	memcpy(s + n, inner, il);
	memset(s + n + il, close, close ? n : 0);
	s[n + il + (close ? n : 0)] = '\0';
	return s;
}

static void test_limits(void)
{
	char *s;

	s = nest(64, '(', "Host(`a.com`)", ')');
	CHECK(hp(s, "a.com", "/") == 1);
	free(s);
	s = nest(65, '(', "Host(`a.com`)", ')');
	CHECK(fails_with(s, "at 64: rule nested deeper than 64 levels"));
	free(s);
	s = nest(64, '!', "Host(`a.com`)", 0);
	CHECK(hp(s, "a.com", "/") == 1);
	free(s);
	s = nest(65, '!', "Host(`a.com`)", 0);
	CHECK(fails_with(s, "nested deeper than 64 levels"));
	free(s);
	s = nest(3000, '(', "", 0);
	CHECK(fails_with(s, "nested deeper than 64 levels"));
	free(s);

	/* exactly 4096 bytes compile; 4097 do not */
	s = malloc(5000);
	memset(s, ' ', 4096);
	memcpy(s, "Host(`a.com`)", 13);
	s[4096] = '\0';
	CHECK(hp(s, "a.com", "/") == 1);
	s[4096] = ' ';
	s[4097] = '\0';
	CHECK(fails_with(s, "rule longer than 4096 bytes"));

	/* a long flat chain neither recurses nor slows */
	strcpy(s, "Host(`h0.com`)");
	for (int i = 1; strlen(s) < 4000; i++)
		sprintf(s + strlen(s), " || Host(`h%d.com`)", i);
	CHECK(hp(s, "h5.com", "/") == 1);
	CHECK(hp(s, "h199.com", "/") == 1);
	CHECK(hp(s, "h1999.com", "/") == 0);
	CHECK(hp(s, "x.com", "/") == 0);
	free(s);
}

/* hosts_of: compile text and fetch its claims; returns rule_hosts' status. */
static int hosts_of(const char *text, struct rule **r, const struct rule_host **h, size_t *n,
		    char *err, size_t errlen)
{
	*r = rule_compile(text, err, errlen);
	if (!*r) {
		fprintf(stderr, "  compile \"%s\": %s\n", text, err);
		return -2;
	}
	return rule_hosts(*r, h, n, err, errlen);
}

static bool claims(const char *text, size_t want, const enum rule_host_kind *kinds,
		   const char *const *values)
{
	char err[256];
	struct rule *r;
	const struct rule_host *h = NULL;
	size_t n = 0;
	bool ok = hosts_of(text, &r, &h, &n, err, sizeof(err)) == 0 && n == want;

	for (size_t i = 0; ok && i < n; i++)
		ok = h[i].kind == kinds[i] && strcmp(h[i].value, values[i]) == 0;
	if (!ok)
		fprintf(stderr, "  claims of \"%s\": got %zu (%s)\n", text, n, err);
	rule_free(r);
	return ok;
}

static bool unbound(const char *text)
{
	char err[256] = "";
	struct rule *r;
	const struct rule_host *h = (const struct rule_host *)0x1;
	size_t n = 77;
	int rc = hosts_of(text, &r, &h, &n, err, sizeof(err));
	bool ok = rc == -1 && strstr(err, "every alternative") && strstr(err, "other tenants")
		  && h == (const struct rule_host *)0x1 && n == 77;

	if (!ok)
		fprintf(stderr, "  \"%s\" was expected to be refused: rc %d \"%s\"\n", text, rc, err);
	rule_free(r);
	return ok;
}

static void test_hosts_claimed(void)
{
	const enum rule_host_kind E = RULE_HOST_EXACT, W = RULE_HOST_WILDCARD, X = RULE_HOST_REGEX;

	CHECK(claims("Host(`a.com`)", 1, (enum rule_host_kind[]){E}, (const char *[]){"a.com"}));
	CHECK(claims("Host(`A.Com.`)", 1, (enum rule_host_kind[]){E}, (const char *[]){"a.com"}));
	CHECK(claims("Host(`*.a.com`)", 1, (enum rule_host_kind[]){W}, (const char *[]){"*.a.com"}));
	CHECK(claims("HostRegexp(`^X\\.a\\.com$`)", 1, (enum rule_host_kind[]){X},
		     (const char *[]){"^X\\.a\\.com$"}));
	CHECK(claims("Host(`a.com`) || Host(`b.com`)", 2, (enum rule_host_kind[]){E, E},
		     (const char *[]){"a.com", "b.com"}));
	CHECK(claims("Host(`a.com`) && PathPrefix(`/api`)", 1, (enum rule_host_kind[]){E},
		     (const char *[]){"a.com"}));
	CHECK(claims("(Host(`a.com`) || Host(`*.b.com`)) && Path(`/x`)", 2,
		     (enum rule_host_kind[]){E, W}, (const char *[]){"a.com", "*.b.com"}));
	CHECK(claims("Host(`a.com`) || Host(`A.com`) || Host(`a.com.`)", 1, (enum rule_host_kind[]){E},
		     (const char *[]){"a.com"}));
	CHECK(claims("!!Host(`a.com`)", 1, (enum rule_host_kind[]){E}, (const char *[]){"a.com"}));
	CHECK(claims("!(!Host(`a.com`) || Path(`/x`))", 1, (enum rule_host_kind[]){E},
		     (const char *[]){"a.com"}));
	CHECK(claims("Host(`a.com`) && !Host(`b.com`)", 1, (enum rule_host_kind[]){E},
		     (const char *[]){"a.com"}));
	CHECK(claims("Host(`a.com`) && (Path(`/a`) || Path(`/b`))", 1, (enum rule_host_kind[]){E},
		     (const char *[]){"a.com"}));
	CHECK(claims("(Host(`a.com`) || Path(`/a`)) && Host(`b.com`)", 2, (enum rule_host_kind[]){E, E},
		     (const char *[]){"a.com", "b.com"}));
	CHECK(claims("!(!Host(`a.com`) && !HostRegexp(`^b`))", 2, (enum rule_host_kind[]){E, X},
		     (const char *[]){"a.com", "^b"}));
}

static void test_hosts_refused(void)
{
	char *s;

	CHECK(unbound("PathPrefix(`/`)"));
	CHECK(unbound("ClientIP(`10.0.0.0/8`)"));
	CHECK(unbound("Host(`a.com`) || PathPrefix(`/x`)"));
	CHECK(unbound("!Host(`a.com`)"));
	CHECK(unbound("!HostRegexp(`^a`)"));
	CHECK(unbound("Host(`a.com`) || !Host(`b.com`)"));
	CHECK(unbound("!(Host(`a.com`) && Path(`/x`))"));
	CHECK(unbound("!!!Host(`a.com`) && Path(`/x`)"));
	CHECK(unbound("(Host(`a.com`) || Path(`/a`)) && (Host(`b.com`) || Path(`/b`))"));
	CHECK(unbound("!(Host(`a.com`) || Path(`/x`)) && Method(`GET`)"));

	/* the DNF of this has 2^60 alternatives; deciding must not expand it */
	s = malloc(4096);
	s[0] = '\0';
	for (int i = 0; i < 60; i++)
		strcat(s, i ? " && (Host(`a.b`) || Path(`/x`))" : "(Host(`a.b`) || Path(`/x`))");
	CHECK(strlen(s) < 4096);
	CHECK(unbound(s));
	strcat(s, " && Host(`a.b`)");
	CHECK(claims(s, 1, (enum rule_host_kind[]){RULE_HOST_EXACT}, (const char *[]){"a.b"}));
	free(s);

	CHECK(rule_hosts(NULL, NULL, NULL, NULL, 0) == -1);
}

static void test_host_matches(void)
{
	char err[256];
	struct rule *r;
	const struct rule_host *h = NULL;
	size_t n = 0;
	struct rule_host exact = {RULE_HOST_EXACT, "a.com"};
	struct rule_host wild = {RULE_HOST_WILDCARD, "*.a.com"};
	struct rule_host own_re = {RULE_HOST_REGEX, "^b[0-9]\\."};
	struct rule_host bad_re = {RULE_HOST_REGEX, "("};
	struct rule_host bad_wild = {RULE_HOST_WILDCARD, "a.com"};

	CHECK(rule_host_matches(&exact, "a.com", 5));
	CHECK(rule_host_matches(&exact, "A.COM", 5));
	CHECK(!rule_host_matches(&exact, "a.co", 4));
	CHECK(!rule_host_matches(&exact, "a.com.x", 7));
	CHECK(!rule_host_matches(&exact, "b.com", 5));
	CHECK(rule_host_matches(&wild, "x.a.com", 7));
	CHECK(!rule_host_matches(&wild, "a.com", 5));
	CHECK(!rule_host_matches(&wild, "y.x.a.com", 9));
	CHECK(!rule_host_matches(&wild, ".a.com", 6));
	CHECK(!rule_host_matches(&bad_wild, "x.a.com", 7));
	/* a claim built by the caller: the pattern is compiled from its text */
	CHECK(rule_host_matches(&own_re, "b1.x", 4));
	CHECK(rule_host_matches(&own_re, "B1.x", 4));
	CHECK(!rule_host_matches(&own_re, "bb.x", 4));
	CHECK(rule_host_matches(&own_re, "b1.x", 4)); /* cached now */
	CHECK(!rule_host_matches(&bad_re, "(", 1));
	CHECK(!rule_host_matches(NULL, "a.com", 5));
	CHECK(!rule_host_matches(&exact, NULL, 0));

	CHECK(hosts_of("HostRegexp(`^[a-z]+\\.a\\.com$`) || Host(`*.b.com`) || Host(`c.com`)",
		       &r, &h, &n, err, sizeof(err)) == 0);
	CHECK(n == 3);
	if (n == 3) {
		CHECK(rule_host_matches(&h[0], "x.a.com", 7));
		CHECK(rule_host_matches(&h[0], "X.A.COM", 7));
		CHECK(!rule_host_matches(&h[0], "1.a.com", 7));
		CHECK(!rule_host_matches(&h[0], "x.a.com.evil", 12));
		/* len bounds the host: the bytes after it are not read */
		CHECK(rule_host_matches(&h[0], "x.a.comXYZ", 7));
		CHECK(rule_host_matches(&h[1], "y.b.com", 7));
		CHECK(!rule_host_matches(&h[1], "b.com", 5));
		CHECK(rule_host_matches(&h[2], "c.com", 5));
		CHECK(!rule_host_matches(&h[2], "c.comm", 6));
		CHECK(rule_host_matches(&h[2], "c.comm", 5));
	}
	rule_free(r);
	rule_free(NULL);
	CHECK(!rule_match(NULL, NULL));
}

/* Many threads share one compiled rule, each with its own match data. */
struct thread_arg {
	const struct rule *r;
	int wrong;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	static const struct rule_host claim = {RULE_HOST_REGEX, "^t[0-9]+\\.example\\.com$"};

	for (int i = 0; i < 20000; i++) {
		char host[32], path[32];
		snprintf(host, sizeof(host), "t%d.example.com", i);
		snprintf(path, sizeof(path), "/v%d/items", i % 7);
		struct treq t = {.host = host, .path = path, .method = "GET"};
		struct rule_req req = treq_view(&t);
		bool want = (i % 7) < 3;
		if (rule_match(a->r, &req) != want)
			a->wrong++;
		if (!rule_host_matches(&claim, host, strlen(host)))
			a->wrong++;
	}
	return NULL;
}

static void test_threads(void)
{
	struct rule *r = rule_compile("HostRegexp(`^t[0-9]+\\.example\\.com$`) && PathRegexp(`^/v[0-2]/`)",
				      NULL, 0);
	pthread_t th[4];
	struct thread_arg args[4];

	CHECK(r != NULL);
	if (!r)
		return;
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){.r = r};
		CHECK(pthread_create(&th[i], NULL, thread_main, &args[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(args[i].wrong == 0);
	}
	rule_free(r);
}

int main(void)
{
	test_host();
	test_wildcard();
	test_host_regexp();
	test_path();
	test_method();
	test_header();
	test_client_ip();
	test_operators();
	test_quoting();
	test_parse_errors();
	test_value_errors();
	test_pcre2_errors();
	test_regex_limits();
	test_limits();
	test_hosts_claimed();
	test_hosts_refused();
	test_host_matches();
	test_threads();
	return check_done();
}
