/* Unit tests for upstream server addresses (wire/listen.h): the plain forms
 * stay as they were, tls:// gets port 853 unless told otherwise, keeps its
 * server name, and anything else is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "wire/listen.h"

static unsigned port_of(const struct dns_listen *l)
{
	if (l->addr.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port);
}

static void test_good(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int family;
		unsigned port;
		bool tls;
		const char *name;
	} cases[] = {
	    {"192.0.2.1", AF_INET, 53, false, ""},
	    {"192.0.2.1:5353", AF_INET, 5353, false, ""},
	    {"[2001:db8::1]:54", AF_INET6, 54, false, ""},
	    {"tls://192.0.2.1", AF_INET, 853, true, ""},
	    {"tls://192.0.2.1#dns.example", AF_INET, 853, true, "dns.example"},
	    {"tls://192.0.2.1:8853#dns.example", AF_INET, 8853, true, "dns.example"},
	    {"tls://[2001:db8::1]#one.one.one.one", AF_INET6, 853, true, "one.one.one.one"},
	    {"tls://[2001:db8::1]:443#Dns-X.example", AF_INET6, 443, true, "Dns-X.example"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dns_listen l;
		if (dns_server_parse(cases[i].text, &l) != 0)
			fail_msg("%s: refused", cases[i].text);
		assert_int_equal(l.addr.ss_family, cases[i].family);
		assert_int_equal(port_of(&l), cases[i].port);
		assert_int_equal(l.tls, cases[i].tls);
		assert_string_equal(l.tls_name, cases[i].name);
		assert_string_equal(l.text, cases[i].text);
	}
}

static void test_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "tls://",
	    "tls://#name",
	    "tls://192.0.2.1#",
	    "tls://192.0.2.1#a b",
	    "tls://192.0.2.1#a/b",
	    "tls://host.example#host.example",
	    "tls://192.0.2.1:99999",
	    "https://192.0.2.1",
	    "tls:/192.0.2.1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dns_listen l;
		if (dns_server_parse(bad[i], &l) != -EINVAL)
			fail_msg("%s: accepted", bad[i]);
	}
	/* --listen takes no tls:// */
	struct dns_listen l;
	assert_int_equal(dns_listen_parse("tls://192.0.2.1", &l), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
