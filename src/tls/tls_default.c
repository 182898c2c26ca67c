/*
 * tls_default — front.default_certificate: the certificate a handshake
 * gets when its name has none (an unknown name, a removed domain, no SNI
 * at all) instead of the unrecognized_name alert.
 *
 * The holder is read by every worker's ClientHello callback and replaced
 * by a SIGHUP on the daemon's loop, so it is a refcounted pointer behind
 * a mutex: a handshake takes its own reference (tls_cert_use then gives
 * the SSL its own), a reload swaps the pointer, and the old certificate
 * lives on in the handshakes that chose it.
 *
 * The files are read like other secrets: the key file must be a regular
 * file not readable by group or others (config_read_secret_text), and the
 * key must match the leaf (tls_cert_from_pem checks). Messages name the
 * key and the file, never key material.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "tls/tls.h"
#include "util/config.h"
#include "util/util.h"

/* A chain of a leaf and a few intermediates is a few KiB; this bounds a
 * file named by mistake (a log, a bundle of every root). */
#define CHAIN_MAX (256 * 1024)

struct tls_default {
	pthread_mutex_t mu;
	struct tls_cert *cert; /* NULL: none, alert instead */
};

struct tls_cert *tls_default_load(const char *cert_path, const char *key_path,
				  char *err, size_t errsz)
{
	char *chain = NULL, *key = NULL, why[200];
	size_t chain_len = 0;
	struct tls_cert *c = NULL;
	int rc;

	rc = fsio_read_all(cert_path, CHAIN_MAX, &chain, &chain_len);
	if (rc < 0) {
		snprintf(err, errsz,
			 "front.default_certificate: cannot read %s: %s",
			 cert_path,
			 rc == -EFBIG ? "larger than 256 KiB" : strerror(-rc));
		return NULL;
	}
	if (config_read_secret_text(key_path, "front.default_key", &key, err,
				    errsz) < 0)
		goto out;
	c = tls_cert_from_pem(NULL, chain, chain_len, key, strlen(key), why,
			      sizeof(why));
	if (!c)
		snprintf(err, errsz, "front.default_certificate %s with "
			 "front.default_key %s: %s", cert_path, key_path, why);
out:
	if (key) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	free(chain);
	return c;
}

struct tls_default *tls_default_new(void)
{
	struct tls_default *d = calloc(1, sizeof(*d));

	if (d)
		pthread_mutex_init(&d->mu, NULL);
	return d;
}

void tls_default_free(struct tls_default *d)
{
	if (!d)
		return;
	tls_cert_unref(d->cert);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

void tls_default_set(struct tls_default *d, struct tls_cert *c)
{
	struct tls_cert *old;

	if (c)
		tls_cert_ref(c);
	pthread_mutex_lock(&d->mu);
	old = d->cert;
	d->cert = c;
	pthread_mutex_unlock(&d->mu);
	tls_cert_unref(old); /* handshakes that chose it hold their own */
}

struct tls_cert *tls_default_get(struct tls_default *d)
{
	struct tls_cert *c;

	if (!d)
		return NULL;
	pthread_mutex_lock(&d->mu);
	c = d->cert;
	if (c)
		tls_cert_ref(c);
	pthread_mutex_unlock(&d->mu);
	return c;
}

int tls_default_use(struct tls_default *d, SSL *ssl)
{
	struct tls_cert *c = tls_default_get(d);
	int rc;

	if (!c)
		return 0;
	rc = tls_cert_use(c, ssl);
	tls_cert_unref(c);
	return rc < 0 ? rc : 1;
}
