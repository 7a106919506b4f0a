"""Static zones from master files (--zone-file ORIGIN=FILE): exact answers,
NXDOMAIN/NODATA with the zone's SOA, CNAMEs followed inside the zone, wildcard
synthesis, a reverse zone; served beside the cluster zone."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402
from svcdns_testlib import Case  # noqa: E402

Z = "example.org."
ZSOA = "example.org. 300 IN SOA ns1.example.org. admin.example.org. 2024010101 3600 900 604800 300"
RSOA = ("2.0.192.in-addr.arpa. 3600 IN SOA ns1.example.org. admin.example.org. 7 3600 900 "
        "604800 3600")
NODATA = dict(answer=[], ns=[ZSOA], extra=[])
NX = dict(rcode="NXDOMAIN", answer=[], ns=[ZSOA], extra=[])

REFERRAL = ["sub.example.org. 300 IN NS ns.sub.example.org.",
            "sub.example.org. 300 IN NS ns.other.net."]
GLUE = ["ns.sub.example.org. 300 IN A 192.0.2.53"]

def rr(owner, rtype, *rdatas, ttl=300):
    return ["%s %d IN %s %s" % (owner, ttl, rtype, rd) for rd in rdatas]


# Positive answers: the answer section is exact; authority/additional are not
# checked (servers differ on adding the zone's NS there), except where named.
CASES = [
    Case(Z, "SOA", answer=[ZSOA], ns=None, extra=None),
    Case(Z, "NS", answer=rr(Z, "NS", "ns1.example.org.", "ns2.example.org."), ns=[],
         extra=rr("ns1.example.org.", "A", "192.0.2.1") + rr("ns2.example.org.", "A",
                                                             "192.0.2.2"),
         note="glue in additional"),
    Case(Z, "A", answer=rr(Z, "A", "192.0.2.10"), ns=None, extra=None),
    Case(Z, "MX", answer=rr(Z, "MX", "10 mail.example.org.", "20 mail2.example.net."),
         ns=None, extra=None),
    Case(Z, "AAAA", **NODATA),
    Case("ns1.example.org.", "A", answer=rr("ns1.example.org.", "A", "192.0.2.1"), ns=None,
         extra=None),
    Case("www.example.org.", "A",
         answer=rr("www.example.org.", "CNAME", Z) + rr(Z, "A", "192.0.2.10"), ns=None,
         extra=None, note="CNAME followed"),
    Case("alias.example.org.", "A",
         answer=rr("alias.example.org.", "CNAME", "www.example.org.")
         + rr("www.example.org.", "CNAME", Z) + rr(Z, "A", "192.0.2.10"),
         ns=None, extra=None, note="CNAME chain followed"),
    Case("alias.example.org.", "AAAA",
         answer=rr("alias.example.org.", "CNAME", "www.example.org.")
         + rr("www.example.org.", "CNAME", Z), ns=None, extra=None,
         note="chain ends in NODATA"),
    Case("www.example.org.", "CNAME", answer=rr("www.example.org.", "CNAME", Z), ns=None,
         extra=None),
    Case("ext.example.org.", "A", answer=rr("ext.example.org.", "CNAME", "www.example.net."),
         ns=None, extra=None, note="CNAME out of the zone"),
    Case("dangling.example.org.", "A", rcode="NXDOMAIN",
         answer=rr("dangling.example.org.", "CNAME", "missing.example.org."), ns=[ZSOA],
         extra=[], note="CNAME to a missing name: NXDOMAIN (RFC 6604)"),
    Case("loop1.example.org.", "A",
         answer=rr("loop1.example.org.", "CNAME", "loop2.example.org.")
         + rr("loop2.example.org.", "CNAME", "loop1.example.org."),
         ns=None, extra=None, note="a CNAME loop: each CNAME once, then the chain stops"),
    Case("txt.example.org.", "TXT",
         answer=rr("txt.example.org.", "TXT", '"hello world" "second string"', ttl=600),
         ns=None, extra=None),
    Case("v6.example.org.", "AAAA", answer=rr("v6.example.org.", "AAAA", "2001:db8::1"),
         ns=None, extra=None),
    Case("v6.example.org.", "A", **NODATA),
    Case("multi.example.org.", "A",
         answer=rr("multi.example.org.", "A", "192.0.2.31", "192.0.2.32", "192.0.2.33"),
         ns=None, extra=None),
    Case("a.b.c.example.org.", "A", answer=rr("a.b.c.example.org.", "A", "192.0.2.50"),
         ns=None, extra=None),
    Case("b.c.example.org.", "A", note="empty non-terminal", **NODATA),
    Case("c.example.org.", "A", note="empty non-terminal", **NODATA),
    Case("_sip._udp.example.org.", "SRV",
         answer=rr("_sip._udp.example.org.", "SRV", "10 60 5060 sip.example.org."), ns=None,
         extra=None),
    Case("nope.example.org.", "A", **NX),
    Case("deep.nope.example.org.", "TXT", **NX),
    Case("NoPe.Example.ORG.", "A", note="case", **NX),
    Case("WWW.Example.Org.", "A",
         answer=rr("www.example.org.", "CNAME", Z) + rr(Z, "A", "192.0.2.10"), ns=None,
         extra=None, note="case"),

    # wildcard *.wild.example.org
    Case("foo.wild.example.org.", "A", answer=rr("foo.wild.example.org.", "A", "192.0.2.99"),
         ns=None, extra=None, note="wildcard synthesis"),
    Case("x.y.wild.example.org.", "A", answer=rr("x.y.wild.example.org.", "A", "192.0.2.99"),
         ns=None, extra=None, note="wildcard, two labels"),
    Case("foo.wild.example.org.", "TXT", answer=rr("foo.wild.example.org.", "TXT", '"wild"'),
         ns=None, extra=None),
    Case("foo.wild.example.org.", "AAAA", note="wildcard exists, type does not", **NODATA),
    Case("host.wild.example.org.", "A", answer=rr("host.wild.example.org.", "A", "192.0.2.98"),
         ns=None, extra=None, note="exact name beats wildcard"),
    Case("host.wild.example.org.", "TXT", note="exact name: no wildcard TXT", **NODATA),
    Case("wild.example.org.", "A", note="parent of the wildcard", **NODATA),
    Case("*.wild.example.org.", "A", answer=rr("*.wild.example.org.", "A", "192.0.2.99"),
         ns=None, extra=None, note="the wildcard owner itself"),

    Case("foo.cw.example.org.", "A",
         answer=rr("foo.cw.example.org.", "CNAME", "www.example.org.")
         + rr("www.example.org.", "CNAME", Z) + rr(Z, "A", "192.0.2.10"), ns=None, extra=None,
         note="wildcard CNAME, then followed"),

    # a delegation: referral
    Case("sub.example.org.", "A", aa=False, answer=[], ns=REFERRAL, extra=GLUE,
         note="referral"),
    Case("x.sub.example.org.", "A", aa=False, answer=[], ns=REFERRAL, extra=GLUE,
         note="referral below the cut"),
    Case("ns.sub.example.org.", "A", aa=False, answer=[], ns=REFERRAL, extra=GLUE,
         note="glue is not authoritative data"),

    # a reverse zone from a file
    Case("10.2.0.192.in-addr.arpa.", "PTR",
         answer=rr("10.2.0.192.in-addr.arpa.", "PTR", "example.org.", ttl=3600), ns=None,
         extra=None),
    Case("25.2.0.192.in-addr.arpa.", "PTR",
         answer=rr("25.2.0.192.in-addr.arpa.", "PTR", "mail.example.org.", ttl=3600),
         ns=None, extra=None),
    Case("99.2.0.192.in-addr.arpa.", "PTR", rcode="NXDOMAIN", answer=[], ns=[RSOA], extra=[]),

    # beside the cluster zone; other names still refused
    Case("dns-version.cluster.local.", "TXT",
         answer=['dns-version.cluster.local. 5 IN TXT "1.1.0"'], ns=[], extra=[]),
    Case("base.default.svc.cluster.local.", "A",
         answer=["base.default.svc.cluster.local. 5 IN A 10.96.7.1"], ns=[], extra=[]),
    Case("example.net.", "A", rcode="REFUSED", answer=[], ns=[], extra=[], aa=False),
    Case("org.", "SOA", rcode="REFUSED", answer=[], ns=[], extra=[], aa=False),
]


def body(tally):
    zdir = os.path.join(t.FIXTURES, "zones")
    srv = t.Server(os.path.join(t.FIXTURES, "watch"), args=[
        "--zone-file", "example.org=" + os.path.join(zdir, "example.org.zone"),
        "--zone-file", "2.0.192.in-addr.arpa=" + os.path.join(zdir, "2.0.192.in-addr.arpa.zone"),
    ]).start()
    t.run_table(tally, srv.port, CASES, ("dnspython-udp", "dig-udp", "kdig-tcp"))


if __name__ == "__main__":
    t.main_guard(t.Tally("test_zonefile"), body)
