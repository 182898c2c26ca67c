/*
 * engine_dns01_ldns.c — the DNS exchanges of DNS-01, through ldns:
 * RFC 2136 UPDATE signed with TSIG (RFC 8945, HMAC-SHA256) to the zone's
 * primary, finding a name's zone (SOA), and the propagation check that
 * asks every authoritative server of the zone (NS, then their A/AAAA)
 * for the TXT record, without recursion.
 *
 * ldns builds, signs, sends and parses every packet (TCP fallback on
 * truncation, TSIG of the answer verified by ldns_send); nothing here
 * touches DNS wire bytes. Every function blocks (a few seconds at most:
 * ENGINE_DNS01_TRY_S per try, two tries) and is meant for libuv's thread
 * pool (engine_dns01.c); they share no state, so any number may run at
 * once. The TSIG secret is handed to ldns only, never logged or put in a
 * message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldns/ldns.h>

#include "engine/engine.h"
#include "util/config.h"
#include "util/util.h"

#define TRY_S	     2
#define TRIES	     2
#define MAX_NS_ADDRS 8

/* A resolver asking host:port (an IP literal), or the servers of
 * /etc/resolv.conf when addr is NULL. rd: ask for recursion. */
static ldns_resolver *resolver_for(const char *addr, int rd, char *why,
				   size_t whysz)
{
	ldns_resolver *r = NULL;
	struct config_addr a;
	struct timeval tv = {TRY_S, 0};

	if (!addr) {
		if (ldns_resolver_new_frm_file(&r, NULL) != LDNS_STATUS_OK) {
			snprintf(why, whysz, "cannot read /etc/resolv.conf");
			return NULL;
		}
	} else {
		ldns_rdf *ns;

		if (config_parse_addr(addr, CONFIG_AF_HOST_REQUIRED, &a) < 0 ||
		    a.kind != CONFIG_ADDR_IP) {
			snprintf(why, whysz, "bad DNS server address %s", addr);
			return NULL;
		}
		ns = ldns_rdf_new_frm_str(
		    a.family == AF_INET6 ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A,
		    a.host);
		r = ldns_resolver_new();
		if (!ns || !r ||
		    ldns_resolver_push_nameserver(r, ns) != LDNS_STATUS_OK) {
			ldns_rdf_deep_free(ns);
			ldns_resolver_deep_free(r);
			snprintf(why, whysz, "out of memory");
			return NULL;
		}
		ldns_rdf_deep_free(ns);
		ldns_resolver_set_port(r, a.port);
	}
	ldns_resolver_set_recursive(r, rd);
	ldns_resolver_set_timeout(r, tv);
	ldns_resolver_set_retry(r, TRIES);
	ldns_resolver_set_fallback(r, true);
	ldns_resolver_set_dnssec(r, false);
	ldns_resolver_set_defnames(r, false);
	ldns_resolver_set_dnsrch(r, false);
	return r;
}

/* An absolute domain name rdf from text without the trailing dot. */
static ldns_rdf *dname(const char *name)
{
	char buf[NAME_MAX_LEN + 2];

	if (snprintf(buf, sizeof(buf), "%s.", name) >= (int)sizeof(buf))
		return NULL;
	return ldns_dname_new_frm_str(buf);
}

/* The text of a domain name rdf without its trailing dot. */
static void dname_str(const ldns_rdf *d, char *out, size_t outsz)
{
	char *s = ldns_rdf2str(d);
	size_t n;

	snprintf(out, outsz, "%s", s ? s : "");
	free(s);
	n = strlen(out);
	if (n > 1 && out[n - 1] == '.')
		out[n - 1] = '\0';
	for (char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

static const char *rcode_name(ldns_pkt_rcode rc)
{
	ldns_lookup_table *t = ldns_lookup_by_id(ldns_rcodes, (int)rc);

	return t && t->name ? t->name : "an unknown error";
}

/* Ask r for (name, type). 0 with *out, or -EIO with why. */
static int ask(ldns_resolver *r, const char *name, ldns_rr_type type, int rd,
	       ldns_pkt **out, const char *server, char *why, size_t whysz)
{
	ldns_rdf *d = dname(name);
	ldns_status st;

	*out = NULL;
	if (!d) {
		snprintf(why, whysz, "bad name %s", name);
		return -EINVAL;
	}
	st = ldns_resolver_query_status(out, r, d, type, LDNS_RR_CLASS_IN,
					rd ? LDNS_RD : 0);
	ldns_rdf_deep_free(d);
	if (st != LDNS_STATUS_OK || !*out) {
		ldns_pkt_free(*out);
		*out = NULL;
		snprintf(why, whysz, "no answer from %s: %s", server,
			 ldns_get_errorstr_by_id(st));
		return -EIO;
	}
	return 0;
}

int engine_dns01_zone_of(const char *resolver, const char *name, char *zone,
			 size_t zonesz, char *why, size_t whysz)
{
	ldns_resolver *r = resolver_for(resolver, 1, why, whysz);
	const char *server = resolver ? resolver : "the system's resolver";
	ldns_pkt *p = NULL;
	int rc = -EIO;

	if (!r)
		return -EINVAL;
	if (ask(r, name, LDNS_RR_TYPE_SOA, 1, &p, server, why, whysz) < 0)
		goto out;
	if (ldns_pkt_get_rcode(p) != LDNS_RCODE_NOERROR &&
	    ldns_pkt_get_rcode(p) != LDNS_RCODE_NXDOMAIN) {
		snprintf(why, whysz, "%s answered %s for the SOA of %s", server,
			 rcode_name(ldns_pkt_get_rcode(p)), name);
		goto out;
	}
	/* At the apex the SOA is the answer; below it, the negative
	 * answer carries the zone's SOA in its authority section. */
	for (int sec = 0; sec < 2 && rc < 0; sec++) {
		ldns_rr_list *l =
		    sec == 0 ? ldns_pkt_answer(p) : ldns_pkt_authority(p);
		for (size_t i = 0; l && i < ldns_rr_list_rr_count(l); i++) {
			ldns_rr *rr = ldns_rr_list_rr(l, i);
			if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA)
				continue;
			dname_str(ldns_rr_owner(rr), zone, zonesz);
			rc = 0;
			break;
		}
	}
	if (rc < 0)
		snprintf(why, whysz,
			 "%s gave no SOA record for %s (which "
			 "zone holds it?)",
			 server, name);
out:
	ldns_pkt_free(p);
	ldns_resolver_deep_free(r);
	return rc;
}

int engine_dns01_update(const char *server, const char *zone,
			const struct engine_tsig_key *key, int add,
			const char *owner, const char *value, unsigned ttl,
			char *why, size_t whysz)
{
	ldns_resolver *r = resolver_for(server, 0, why, whysz);
	ldns_rr_list *up = ldns_rr_list_new();
	ldns_rr *rr = ldns_rr_new();
	ldns_rdf *zrdf = dname(zone), *ordf = dname(owner);
	ldns_rdf *txt = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_STR, value);
	ldns_pkt *q = NULL, *a = NULL;
	ldns_status st;
	int rc = -ENOMEM;

	if (!r) {
		rc = -EINVAL;
		goto out;
	}
	if (!up || !rr || !zrdf || !ordf || !txt) {
		snprintf(why, whysz, "cannot build the update for %s", owner);
		goto out;
	}
	ldns_rr_set_owner(rr, ordf);
	ordf = NULL;
	ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
	/* RFC 2136 §2.5.1 adds an RR; §2.5.4 deletes exactly this one
	 * (class NONE, TTL 0): another order's value for the same owner
	 * (a wildcard and its base name share it) stays. */
	ldns_rr_set_class(rr, add ? LDNS_RR_CLASS_IN : LDNS_RR_CLASS_NONE);
	ldns_rr_set_ttl(rr, add ? ttl : 0);
	ldns_rr_push_rdf(rr, txt);
	txt = NULL;
	ldns_rr_list_push_rr(up, rr);
	rr = NULL;
	q = ldns_update_pkt_new(zrdf, LDNS_RR_CLASS_IN, NULL, up, NULL);
	zrdf = NULL; /* the packet owns it now */
	if (!q) {
		snprintf(why, whysz, "cannot build the update for %s", owner);
		goto out;
	}
	ldns_pkt_set_random_id(q);
	if (key) {
		ldns_resolver_set_tsig_keyname(r, key->name);
		ldns_resolver_set_tsig_algorithm(r, key->algorithm);
		ldns_resolver_set_tsig_keydata(r, key->secret);
		/* ldns 1.8 signs only what ldns_resolver_send builds itself:
		 * an update packet is signed here */
		if (ldns_update_pkt_tsig_add(q, r) != LDNS_STATUS_OK) {
			snprintf(why, whysz,
				 "cannot sign the update with TSIG "
				 "key %s",
				 key->name);
			rc = -EINVAL;
			goto out;
		}
	}
	st = ldns_resolver_send_pkt(&a, r, q);
	rc = -EIO;
	if (st == LDNS_STATUS_CRYPTO_TSIG_BOGUS) {
		snprintf(why, whysz,
			 "%s did not accept the TSIG key %s (wrong secret or "
			 "key name?)%s%s",
			 server, key ? key->name : "",
			 a ? ": it answered " : "",
			 a ? rcode_name(ldns_pkt_get_rcode(a)) : "");
		goto out;
	}
	if (st != LDNS_STATUS_OK || !a) {
		snprintf(why, whysz,
			 "no answer from %s to the update of %s: %s", server,
			 owner, ldns_get_errorstr_by_id(st));
		goto out;
	}
	if (ldns_pkt_get_rcode(a) != LDNS_RCODE_NOERROR) {
		ldns_pkt_rcode c = ldns_pkt_get_rcode(a);
		snprintf(
		    why, whysz,
		    "%s refused the update of %s in zone %s: "
		    "%s%s",
		    server, owner, zone, rcode_name(c),
		    c == LDNS_RCODE_NOTAUTH ? " (TSIG key not accepted, or not "
					      "authoritative for the zone)"
		    : c == LDNS_RCODE_REFUSED
			? " (the key may not update this zone)"
		    : c == LDNS_RCODE_NOTZONE ? " (the name is not in the zone)"
					      : "");
		goto out;
	}
	rc = 0;
out:
	ldns_pkt_free(a);
	ldns_pkt_free(q);
	ldns_rr_list_deep_free(up);
	ldns_rr_free(rr);
	ldns_rdf_deep_free(zrdf);
	ldns_rdf_deep_free(ordf);
	ldns_rdf_deep_free(txt);
	ldns_resolver_deep_free(r);
	return rc;
}

/* The A and AAAA records of ns, through r, appended to addrs. */
static void addresses_of(ldns_resolver *r, const char *ns,
			 char addrs[][ENGINE_DNS_ADDR_MAX], size_t *n)
{
	static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA};
	char why[128];

	for (size_t t = 0; t < 2; t++) {
		ldns_pkt *p = NULL;
		ldns_rr_list *l;

		if (ask(r, ns, types[t], 1, &p, "", why, sizeof(why)) < 0)
			continue;
		l = ldns_pkt_answer(p);
		for (size_t i = 0; l && i < ldns_rr_list_rr_count(l); i++) {
			ldns_rr *rr = ldns_rr_list_rr(l, i);
			char *s;
			if (ldns_rr_get_type(rr) != types[t] ||
			    *n >= MAX_NS_ADDRS || ldns_rr_rd_count(rr) < 1)
				continue;
			s = ldns_rdf2str(ldns_rr_rdf(rr, 0));
			if (s && strlen(s) < ENGINE_DNS_ADDR_MAX)
				snprintf(addrs[(*n)++], ENGINE_DNS_ADDR_MAX,
					 "%s", s);
			free(s);
		}
		ldns_pkt_free(p);
	}
}

/* Does the answer hold a TXT record at owner whose one string is value? */
static int has_value(ldns_pkt *p, const char *owner, const char *value)
{
	ldns_rr_list *l = ldns_pkt_answer(p);
	ldns_rdf *o = dname(owner);
	size_t vlen = strlen(value);
	int found = 0;

	for (size_t i = 0; o && l && i < ldns_rr_list_rr_count(l); i++) {
		ldns_rr *rr = ldns_rr_list_rr(l, i);
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_TXT ||
		    ldns_dname_compare(ldns_rr_owner(rr), o) != 0)
			continue;
		for (size_t k = 0; k < ldns_rr_rd_count(rr); k++) {
			ldns_rdf *f = ldns_rr_rdf(rr, k);
			const uint8_t *d = ldns_rdf_data(f);
			/* a character-string: its length, then its bytes */
			if (ldns_rdf_size(f) == vlen + 1 && d[0] == vlen &&
			    memcmp(d + 1, value, vlen) == 0)
				found = 1;
		}
	}
	ldns_rdf_deep_free(o);
	return found;
}

int engine_dns01_check(const char *resolver, const char *zone,
		       const char *owner, const char *value, char *why,
		       size_t whysz)
{
	ldns_resolver *r = resolver_for(resolver, 1, why, whysz);
	const char *server = resolver ? resolver : "the system's resolver";
	char addrs[MAX_NS_ADDRS][ENGINE_DNS_ADDR_MAX];
	char names[MAX_NS_ADDRS][ENGINE_DNS_NAME_MAX];
	size_t n_addrs = 0, n_names = 0, seen = 0;
	ldns_pkt *p = NULL;
	ldns_rr_list *l;
	int rc = -EIO;

	if (!r)
		return -EINVAL;
	if (ask(r, zone, LDNS_RR_TYPE_NS, 1, &p, server, why, whysz) < 0)
		goto out;
	l = ldns_pkt_answer(p);
	for (size_t i = 0; l && i < ldns_rr_list_rr_count(l); i++) {
		ldns_rr *rr = ldns_rr_list_rr(l, i);
		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_NS &&
		    ldns_rr_rd_count(rr) >= 1 && n_names < MAX_NS_ADDRS)
			dname_str(ldns_rr_rdf(rr, 0), names[n_names++],
				  ENGINE_DNS_NAME_MAX);
	}
	ldns_pkt_free(p);
	p = NULL;
	if (!n_names) {
		snprintf(why, whysz, "%s gave no NS records for zone %s",
			 server, zone);
		goto out;
	}
	for (size_t i = 0; i < n_names; i++)
		addresses_of(r, names[i], addrs, &n_addrs);
	if (!n_addrs) {
		snprintf(why, whysz,
			 "no address for the name servers of %s "
			 "(%s%s)",
			 zone, names[0], n_names > 1 ? ", ..." : "");
		goto out;
	}
	/* Every authoritative server must answer with the value: the CA
	 * may ask any of them. */
	for (size_t i = 0; i < n_addrs; i++) {
		char at[ENGINE_DNS_ADDR_MAX + 8];
		ldns_resolver *ns;
		int ok;

		snprintf(at, sizeof(at),
			 strchr(addrs[i], ':') ? "[%s]:53" : "%s:53", addrs[i]);
		ns = resolver_for(at, 0, why, whysz);
		if (!ns)
			goto out;
		ok = ask(ns, owner, LDNS_RR_TYPE_TXT, 0, &p, at, why, whysz) ==
			 0 &&
		     has_value(p, owner, value);
		if (p && !ok)
			snprintf(why, whysz,
				 "%s (%s) does not serve the TXT "
				 "record of %s yet (%s)",
				 addrs[i], zone, owner,
				 rcode_name(ldns_pkt_get_rcode(p)));
		ldns_pkt_free(p);
		p = NULL;
		ldns_resolver_deep_free(ns);
		if (!ok) {
			rc = 0; /* not yet: the caller asks again */
			goto out;
		}
		seen++;
	}
	snprintf(why, whysz, "seen at all %zu authoritative servers of %s",
		 seen, zone);
	rc = 1;
out:
	ldns_pkt_free(p);
	ldns_resolver_deep_free(r);
	return rc;
}
