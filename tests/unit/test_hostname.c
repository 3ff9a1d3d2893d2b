/*
 * test_hostname.c - host_normalise (what clients send) and host_is_valid_name
 * (what tenants may claim).
 */
#include "config/hostname.h"

#include <string.h>

#include "tests/unit/check.h"

/* norm: host_normalise of a NUL-terminated input; "" when refused. */
static const char *norm(const char *in)
{
	static char out[300];
	int n = host_normalise(in, strlen(in), out, sizeof(out));

	if (n < 0)
		return "";
	if ((size_t)n != strlen(out))
		return "(length mismatch)";
	return out;
}

static bool refused(const char *in)
{
	char out[300];

	return host_normalise(in, strlen(in), out, sizeof(out)) == -1;
}

static bool valid(const char *s, bool wildcard)
{
	return host_is_valid_name(s, strlen(s), wildcard);
}

/* repeat: c n times followed by tail, in a static buffer. */
static const char *repeat(char c, size_t n, const char *tail)
{
	static char buf[600];

	memset(buf, c, n);
	strcpy(buf + n, tail);
	return buf;
}

/* name_of_len: "aaa...a.aaa...a" of exactly len bytes, labels of 63. */
static const char *name_of_len(size_t len, char *buf)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (i % 64 == 63) ? '.' : 'a';
	buf[len] = '\0';
	return buf;
}

static void test_names(void)
{
	CHECK_STR(norm("example.com"), "example.com");
	CHECK_STR(norm("Example.COM"), "example.com");
	CHECK_STR(norm("localhost"), "localhost");
	CHECK_STR(norm("a-b.example.com"), "a-b.example.com");
	CHECK_STR(norm("xn--bcher-kva.example"), "xn--bcher-kva.example");
	CHECK_STR(norm("123.example.com"), "123.example.com");
	/* docker container and compose service names */
	CHECK_STR(norm("my_app"), "my_app");
	CHECK_STR(norm("Demo_OpenWebUI.internal"), "demo_openwebui.internal");
	CHECK_STR(norm("app-"), "app-");
	CHECK(refused("-app"));
	CHECK(refused("a.-b.com"));
}

static void test_port_and_dot(void)
{
	CHECK_STR(norm("example.com:8080"), "example.com");
	CHECK_STR(norm("example.com:1"), "example.com");
	CHECK_STR(norm("example.com:65535"), "example.com");
	CHECK_STR(norm("example.com."), "example.com");
	CHECK_STR(norm("Example.com.:443"), "example.com");
	CHECK(refused("example.com:"));
	CHECK(refused("example.com:0"));
	CHECK(refused("example.com:65536"));
	CHECK(refused("example.com:99999"));
	CHECK(refused("example.com:123456"));
	CHECK(refused("example.com:8a"));
	CHECK(refused("example.com:+80"));
	CHECK(refused("example.com: 80"));
	CHECK(refused("example.com:80:80"));
	CHECK(refused("example.com:443."));
	CHECK(refused("example.com.."));
	CHECK(refused(".example.com"));
	CHECK(refused("a..b"));
	CHECK(refused("."));
	CHECK(refused(":80"));
}

static void test_bad_bytes(void)
{
	char out[64];

	CHECK(refused(""));
	CHECK(refused("a b.com"));
	CHECK(refused(" a.com"));
	CHECK(refused("a.com "));
	CHECK(refused("user@a.com"));
	CHECK(refused("a.com/x"));
	CHECK(refused("a\\b.com"));
	CHECK(refused("a\x01.com"));
	CHECK(refused("a\x7f.com"));
	CHECK(refused("a\tb"));
	CHECK(refused("\xc3\xa9.com"));
	CHECK(refused("a*.com"));
	CHECK(refused("a%2e.com"));
	/* an embedded NUL is a control byte, not an end */
	CHECK(host_normalise("a.com\0evil", 10, out, sizeof(out)) == -1);
	CHECK(host_normalise(NULL, 3, out, sizeof(out)) == -1);
	CHECK(host_normalise("a.com", 5, NULL, 10) == -1);
}

static void test_ipv4(void)
{
	CHECK_STR(norm("1.2.3.4"), "1.2.3.4");
	CHECK_STR(norm("127.0.0.1:8080"), "127.0.0.1");
	CHECK_STR(norm("1.2.3.4."), "1.2.3.4");
	CHECK_STR(norm("255.255.255.255"), "255.255.255.255");
	/* names ending in a number must be canonical dotted quads */
	CHECK(refused("01.2.3.4"));
	CHECK(refused("1.2.3"));
	CHECK(refused("1.2.3.4.5"));
	CHECK(refused("256.1.1.1"));
	CHECK(refused("example.123"));
	CHECK(refused("0x7f.1"));
	CHECK(refused("1.2.3.0x4"));
	CHECK(refused("2130706433"));
}

static void test_ipv6(void)
{
	CHECK_STR(norm("[::1]"), "::1");
	CHECK_STR(norm("[::1]:8443"), "::1");
	CHECK_STR(norm("[2001:DB8::1]"), "2001:db8::1");
	CHECK_STR(norm("[2001:db8:0:0:0:0:0:1]"), "2001:db8::1");
	CHECK_STR(norm("[::FFFF:1.2.3.4]"), "::ffff:1.2.3.4");
	CHECK(refused("::1"));
	CHECK(refused("2001:db8::1"));
	CHECK(refused("[::1"));
	CHECK(refused("[]"));
	CHECK(refused("[::1]x"));
	CHECK(refused("[::1]:"));
	CHECK(refused("[::1]:0"));
	CHECK(refused("[::1]:70000"));
	CHECK(refused("[fe80::1%eth0]"));
	CHECK(refused("[1.2.3.4]"));
	CHECK(refused("[v1.x]"));
	CHECK(refused("[::1::2]"));
	CHECK(refused("[example.com]"));
}

static void test_lengths(void)
{
	char buf[600], out[300];
	const char *n253 = name_of_len(253, buf);

	CHECK_STR(norm(repeat('a', 63, ".com")), repeat('a', 63, ".com"));
	CHECK(refused(repeat('a', 64, ".com")));
	CHECK(strlen(n253) == 253);
	CHECK(host_normalise(n253, 253, out, sizeof(out)) == 253);
	buf[253] = '.'; /* one trailing dot is still 253 */
	buf[254] = '\0';
	CHECK(host_normalise(buf, 254, out, sizeof(out)) == 253);
	CHECK(host_normalise(name_of_len(254, buf), 254, out, sizeof(out)) == -1);
	/* outcap must hold the NUL too */
	CHECK(host_normalise("a.com", 5, out, 6) == 5);
	CHECK(host_normalise("a.com", 5, out, 5) == -1);
	CHECK(host_normalise("[::1]", 5, out, 4) == 3);
	CHECK(host_normalise("[::1]", 5, out, 3) == -1);
}

static void test_valid_name(void)
{
	char buf[600];

	CHECK(valid("example.com", false));
	CHECK(valid("a.b-c.example", false));
	CHECK(valid("localhost", false));
	CHECK(valid("xn--bcher-kva.example", false));
	CHECK(valid("127.0.0.1", false));
	CHECK(valid("123.example.com", false));
	CHECK(!valid("", false));
	CHECK(!valid("Example.com", false));  /* callers lowercase first */
	CHECK(!valid("example.com.", false));
	CHECK(!valid(".example.com", false));
	CHECK(!valid("a..b", false));
	CHECK(!valid("my_app.example.com", false));
	CHECK(!valid("_dmarc.example.com", false));
	CHECK(!valid("-a.com", false));
	CHECK(!valid("a-.com", false));
	CHECK(!valid("a b.com", false));
	CHECK(!valid("a.com:80", false));
	CHECK(!valid("::1", false));
	CHECK(!valid("1.2.3", false));
	CHECK(!valid("example.123", false));
	CHECK(!valid("01.2.3.4", false));
	CHECK(valid(repeat('a', 63, ".com"), false));
	CHECK(!valid(repeat('a', 64, ".com"), false));
	CHECK(valid(name_of_len(253, buf), false));
	CHECK(!valid(name_of_len(254, buf), false));
	CHECK(!host_is_valid_name(NULL, 3, true));
}

static void test_valid_wildcard(void)
{
	CHECK(valid("*.example.com", true));
	CHECK(valid("*.localhost", true));
	CHECK(!valid("*.example.com", false));
	CHECK(!valid("*", true));
	CHECK(!valid("*.", true));
	CHECK(!valid("**.example.com", true));
	CHECK(!valid("*.*.example.com", true));
	CHECK(!valid("a.*.example.com", true));
	CHECK(!valid("*a.example.com", true));
	CHECK(!valid("*example.com", true));
	CHECK(!valid("*.1.2.3.4", true));
	CHECK(!valid("*.example.com.", true));
}

int main(void)
{
	test_names();
	test_port_and_dot();
	test_bad_bytes();
	test_ipv4();
	test_ipv6();
	test_lengths();
	test_valid_name();
	test_valid_wildcard();
	return check_done();
}
