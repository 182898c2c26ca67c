/*
 * populate — fill a certherd store with N domains that already have
 * certificates, fast, for bench/serve.sh: issuing 100,000 certificates
 * from Pebble takes about 15 minutes at ~120/s (when Pebble does not
 * wedge on the way), this 2-4 minutes on one core (1-2 ms per domain,
 * mostly OpenSSL: a key, a signature, PEM) and gives
 * the daemon the same kind of store to start on.
 *
 *   populate STATE_DIR [--domains N] [--due PERCENT] [--suffix SUFFIX]
 *                      [--seed S] [--export DIR]
 *
 * Every domain gets a real certificate (X.509 checked with the project's
 * own x509_inspect and x509_key_matches, one in 1,000 also parsed back from
 * its PEM) for its name, with its own ECDSA P-256 key,
 * signed by a throwaway CA made here ("certherd bench CA", not trusted by
 * anything); the chain stored is leaf + CA, as a CA would send it. The
 * rows are written through the store library (store_domain_add,
 * store_cert_insert, store_event_append), so they are exactly what the
 * daemon writes after an issuance, in a few big transactions
 * (store_bulk_begin/end, BATCH domains each).
 *
 * Ages model a fleet in steady state with 90-day certificates renewed at
 * 2/3 of their lifetime: a certificate's age is uniform over [0, 58 days),
 * so its renewal time (the daemon's own policy, engine_renew_at, jitter
 * included) lies in the next two months; PERCENT % of the domains (default
 * 1, as after about 14 hours of downtime) are 62-63 days old, past their
 * renewal time: due at once, as early renewals. Names: pNNNNNN.SUFFIX
 * (default suffix bench.test), N from 1. Times are read once at the start.
 *
 * --export DIR also writes every certificate as files for the servers
 * bench/front.sh compares with: DIR/NAME/fullchain.pem (leaf + CA),
 * DIR/NAME/privkey.pem (0600) and DIR/NAME/combined.pem (chain then key,
 * HAProxy's and hitch's format), and DIR/ca.pem (the throwaway CA).
 *
 * Refuses a store that already holds domains. Prints one line of
 * KEY=VALUE results (domains, due, seconds, db_bytes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "engine/engine.h"
#include "store/store.h"
#include "util/util.h"

#define BATCH	      10000
#define LIFETIME_MS   (90 * ENGINE_DAY_MS)
#define MAX_DOMAINS   10000000u
#define PEM_BUF	      8192

struct ca {
	EVP_PKEY *key;
	X509 *cert;
	char *pem;
	X509_NAME *name;
};

__attribute__((format(printf, 1, 2), noreturn)) static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "populate: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Deterministic random numbers from --seed (splitmix64): the same seed
 * gives the same ages, so runs are comparable. Keys and serials come
 * from OpenSSL's generator. */
static uint64_t rnd_state;
static uint64_t rnd(void)
{
	uint64_t z = (rnd_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static int64_t rnd_between(int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rnd() % (uint64_t)(hi - lo));
}

static int set_time(ASN1_TIME *t, int64_t ms)
{
	return ASN1_TIME_set(t, (time_t)(ms / 1000)) ? 0 : -1;
}

static int random_serial(X509 *x, char *hex, size_t hexsz)
{
	unsigned char b[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	b[0] &= 0x7f; /* positive */
	b[0] |= 0x01; /* and full length */
	for (size_t i = 0; i < sizeof(b) && 2 * i + 2 < hexsz; i++)
		snprintf(hex + 2 * i, 3, "%02X", b[i]);
	bn = BN_bin2bn(b, sizeof(b), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	return ok ? 0 : -1;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!e)
		return -1;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/* PEM of x, malloc'd. */
static char *cert_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long len;

	if (b && PEM_write_bio_X509(b, x) &&
	    (len = BIO_get_mem_data(b, &data)) > 0 &&
	    (out = malloc((size_t)len + 1))) {
		memcpy(out, data, (size_t)len);
		out[len] = 0;
	}
	BIO_free(b);
	return out;
}

static void ca_make(struct ca *ca, int64_t now)
{
	char hex[40];

	ca->key = key_generate(KEY_ECDSA_P256);
	ca->cert = X509_new();
	ca->name = X509_NAME_new();
	if (!ca->key || !ca->cert || !ca->name ||
	    !X509_NAME_add_entry_by_txt(ca->name, "CN", MBSTRING_ASC,
					(const unsigned char *)"certherd bench CA",
					-1, -1, 0) ||
	    !X509_set_version(ca->cert, 2) ||
	    random_serial(ca->cert, hex, sizeof(hex)) < 0 ||
	    !X509_set_subject_name(ca->cert, ca->name) ||
	    !X509_set_issuer_name(ca->cert, ca->name) ||
	    set_time(X509_getm_notBefore(ca->cert), now - 400 * ENGINE_DAY_MS) ||
	    set_time(X509_getm_notAfter(ca->cert), now + 400 * ENGINE_DAY_MS) ||
	    !X509_set_pubkey(ca->cert, ca->key) ||
	    add_ext(ca->cert, ca->cert, NID_basic_constraints,
		    "critical,CA:TRUE") ||
	    add_ext(ca->cert, ca->cert, NID_key_usage,
		    "critical,keyCertSign,cRLSign") ||
	    add_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash") ||
	    !X509_sign(ca->cert, ca->key, EVP_sha256()) ||
	    !(ca->pem = cert_pem(ca->cert)))
		die("cannot make the throwaway CA");
}

/*
 * A certificate for name valid [nb, na), signed by ca, with a new key:
 * chain (leaf + CA) and key PEM into c (malloc'd), facts from the
 * project's own parser. 0 or -1.
 */
static int leaf_make(const struct ca *ca, const char *name, int64_t nb,
		     int64_t na, int sample, struct store_cert *c)
{
	EVP_PKEY *key = key_generate(KEY_ECDSA_P256);
	X509 *x = X509_new(), *back = NULL;
	X509_NAME *subj = X509_NAME_new();
	struct x509_info info = {0};
	char san[300], hex[40], *leaf = NULL;
	size_t klen, llen, clen;
	int rc = -1;

	snprintf(san, sizeof(san), "DNS:%s", name);
	if (!key || !x || !subj ||
	    !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
					(const unsigned char *)name, -1, -1,
					0) ||
	    !X509_set_version(x, 2) || random_serial(x, hex, sizeof(hex)) < 0 ||
	    !X509_set_subject_name(x, subj) ||
	    !X509_set_issuer_name(x, ca->name) ||
	    set_time(X509_getm_notBefore(x), nb) ||
	    set_time(X509_getm_notAfter(x), na) || !X509_set_pubkey(x, key) ||
	    add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature") ||
	    add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth") ||
	    add_ext(x, ca->cert, NID_authority_key_identifier, "keyid") ||
	    add_ext(x, ca->cert, NID_subject_alt_name, san) ||
	    !X509_sign(x, ca->key, EVP_sha256()) || !(leaf = cert_pem(x)))
		goto out;
	llen = strlen(leaf);
	clen = strlen(ca->pem);
	c->chain_pem = malloc(llen + clen + 1);
	c->key_pem = key_to_pem(key, &klen);
	if (!c->chain_pem || !c->key_pem)
		goto out;
	memcpy(c->chain_pem, leaf, llen);
	memcpy(c->chain_pem + llen, ca->pem, clen + 1);
	/* facts from the project's own parser; every 1,000th certificate is
	 * also read back from its PEM the way the daemon reads a CA's (for
	 * every one that was a fifth of the run, in OpenSSL's decoder set-up) */
	if (sample)
		back = x509_from_pem(c->chain_pem, llen + clen);
	else if (X509_up_ref(x))
		back = x;
	if (!back || x509_inspect(back, &info) < 0 ||
	    x509_key_matches(back, key) != 1 || info.n_names != 1 ||
	    strcmp(info.names[0], name) != 0)
		goto out;
	snprintf(c->info.domain, sizeof(c->info.domain), "%s", name);
	snprintf(c->info.serial, sizeof(c->info.serial), "%s", info.serial);
	snprintf(c->info.issuer, sizeof(c->info.issuer), "%s", info.issuer_cn);
	c->info.not_before_ms = info.not_before * 1000;
	c->info.not_after_ms = info.not_after * 1000;
	c->info.ari_start_ms = c->info.ari_end_ms = STORE_NO_TIME;
	rc = 0;
out:
	x509_info_free(&info);
	X509_free(back);
	X509_free(x);
	X509_NAME_free(subj);
	EVP_PKEY_free(key);
	free(leaf);
	return rc;
}

static void cert_free(struct store_cert *c)
{
	if (c->key_pem)
		OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
	free(c->key_pem);
	free(c->chain_pem);
	memset(c, 0, sizeof(*c));
}

static void write_file(const char *path, mode_t mode, const char *a,
		       const char *b)
{
	FILE *f;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || !(f = fdopen(fd, "w")))
		die("cannot write %s: %s", path, strerror(errno));
	if (fputs(a, f) < 0 || (b && fputs(b, f) < 0) || fclose(f) != 0)
		die("cannot write %s: %s", path, strerror(errno));
}

/* The files of one certificate under dir/name/ (see the header). */
static void export_cert(const char *dir, const char *name,
			const struct store_cert *c)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die("cannot make %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s/fullchain.pem", dir, name);
	write_file(path, 0644, c->chain_pem, NULL);
	snprintf(path, sizeof(path), "%s/%s/privkey.pem", dir, name);
	write_file(path, 0600, c->key_pem, NULL);
	snprintf(path, sizeof(path), "%s/%s/combined.pem", dir, name);
	write_file(path, 0600, c->chain_pem, c->key_pem);
}

static unsigned long parse_num(const char *s, const char *what,
			       unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		die("bad %s", what);
	return v;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *suffix = "bench.test", *export = NULL;
	unsigned long n = 100000, due_pct = 1, seed = 1;
	uint64_t counts[STORE_DOMAIN__MAX] = {0}, total = 0;
	struct store *st = NULL;
	struct ca ca = {0};
	char err[512], name[STORE_NAME_MAX + 1], path[4200];
	int64_t now = clock_wall_ms(), t0 = clock_mono_ms();
	unsigned long due = 0;
	struct stat sb;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--domains") && v)
			n = parse_num(v, "--domains", MAX_DOMAINS), i++;
		else if (!strcmp(a, "--due") && v)
			due_pct = parse_num(v, "--due (a percentage)", 100), i++;
		else if (!strcmp(a, "--seed") && v)
			seed = parse_num(v, "--seed", ~0ul), i++;
		else if (!strcmp(a, "--export") && v)
			export = v, i++;
		else if (!strcmp(a, "--suffix") && v)
			suffix = v, i++;
		else if (a[0] != '-' && !dir)
			dir = a;
		else
			die("usage: populate STATE_DIR [--domains N] [--due "
			    "PERCENT] [--suffix SUFFIX] [--seed S] "
			    "[--export DIR]");
	}
	if (!dir)
		die("usage: populate STATE_DIR [options]");
	if (strlen(suffix) > 200) /* the store checks the rest */
		die("bad --suffix %s", suffix);
	rnd_state = seed;
	rc = store_open(dir, &st, err, sizeof(err));
	if (rc < 0)
		die("%s", err);
	if (store_domain_count(st, counts) < 0)
		die("cannot count domains: %s", store_errmsg(st));
	for (int i = 0; i < STORE_DOMAIN__MAX; i++)
		total += counts[i];
	if (total)
		die("%s already holds domains: populate wants an empty store",
		    dir);
	ca_make(&ca, now);
	if (export) {
		if (strlen(export) > 3000)
			die("--export path too long");
		if (mkdir(export, 0755) < 0 && errno != EEXIST)
			die("cannot make %s: %s", export, strerror(errno));
		snprintf(path, sizeof(path), "%s/ca.pem", export);
		write_file(path, 0644, ca.pem, NULL);
	}

	for (unsigned long i = 1; i <= n; i++) {
		struct store_cert c = {0};
		int is_due = rnd() % 100 < due_pct;
		int64_t age, nb, renew;

		if ((i - 1) % BATCH == 0 && store_bulk_begin(st) < 0)
			die("cannot begin a transaction: %s", store_errmsg(st));
		snprintf(name, sizeof(name), "p%06lu.%s", i, suffix);
		age = is_due ? rnd_between(62 * ENGINE_DAY_MS, 63 * ENGINE_DAY_MS)
			     : rnd_between(0, 58 * ENGINE_DAY_MS);
		/* whole seconds, as X.509 keeps them */
		nb = (now - age) / 1000 * 1000;
		if (leaf_make(&ca, name, nb, nb + LIFETIME_MS, i % 1000 == 1,
			      &c) < 0)
			die("cannot make a certificate for %s", name);
		renew = engine_renew_at(c.info.not_before_ms,
					c.info.not_after_ms, NULL, now, rnd());
		if ((renew <= now) != is_due)
			die("renewal time of %s does not match its age", name);
		due += (unsigned long)is_due;
		if (store_domain_add(st, name, NULL, nb) != 1 ||
		    store_cert_insert(st, &c, 0, renew, nb, NULL) < 0 ||
		    store_event_append(st, name, nb, "issued",
				       "certificate stored (bench/populate)") <
			0)
			die("cannot store %s: %s", name, store_errmsg(st));
		if (export)
			export_cert(export, name, &c);
		cert_free(&c);
		if ((i % BATCH == 0 || i == n) && store_bulk_end(st, 1) < 0)
			die("cannot commit: %s", store_errmsg(st));
	}
	store_close(st);
	snprintf(path, sizeof(path), "%s/certherd.db", dir);
	printf("domains=%lu due=%lu seconds=%.1f db_bytes=%lld\n", n, due,
	       (double)(clock_mono_ms() - t0) / 1000.0,
	       stat(path, &sb) == 0 ? (long long)sb.st_size : -1LL);
	EVP_PKEY_free(ca.key);
	X509_free(ca.cert);
	X509_NAME_free(ca.name);
	free(ca.pem);
	return 0;
}
