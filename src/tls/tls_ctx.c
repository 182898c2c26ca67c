/*
 * tls_ctx — the one SSL_CTX every front worker makes its connections
 * from, and its callbacks: the ClientHello callback that chooses the
 * certificate by SNI, ALPN selection, and session tickets under rotating
 * keys.
 *
 * Settings and why:
 * - TLS 1.2 and 1.3 only; in 1.2 ECDHE with AEAD ciphers (Mozilla's
 *   "intermediate" list), server preference, no renegotiation (a client
 *   could make us do handshakes for free), no compression (CRIME).
 * - Groups X25519, P-256, P-384: what browsers send key shares for.
 * - The server-side session cache is off: resumption is by stateless
 *   tickets only, so memory does not grow with clients and workers share
 *   nothing but the key ring. One TLS 1.3 ticket per handshake (browsers
 *   use one; each costs an encryption).
 * - An EOF without close_notify is an ordinary end of stream (HTTP
 *   clients do that all the time), not an error.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "tls/tls.h"
#include "util/util.h"

#define CIPHERS_12                                                        \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"      \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"      \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define GROUPS "X25519:P-256:P-384"
#define TICKET_PERIOD_MS (60 * 60 * 1000)

const char *const tls_hello_result_names[TLS_HELLO__MAX] = {
	[TLS_HELLO_NONE] = "none",	   [TLS_HELLO_OK] = "ok",
	[TLS_HELLO_WAIT] = "wait",	   [TLS_HELLO_NO_SNI] = "no-sni",
	[TLS_HELLO_UNKNOWN] = "unknown",   [TLS_HELLO_ONDEMAND] = "on-demand",
	[TLS_HELLO_ACME] = "acme-tls/1",   [TLS_HELLO_GAVE_UP] = "gave-up",
	[TLS_HELLO_DEFAULT] = "default",
};

struct ctx_state {
	struct tls_loader *loader;
	struct tls_alpn *challenges; /* TLS-ALPN-01, NULL = none */
	tls_unknown_fn unknown;
	void *unknown_ctx;
	struct tls_default *def; /* front.default_certificate, NULL = none */
	unsigned char alpn[32]; /* our protocols, wire format, preferred first */
	unsigned alpn_len;
	pthread_mutex_t mu; /* the ring */
	struct tls_ticket_ring ring;
};

/* TLS-ALPN-01: a client offering acme-tls/1 for a name with a pending
 * challenge gets its challenge certificate. 1 when it was set, 0 when
 * this is not such a handshake, -1 on error (alert in *al). */
static int hello_acme(struct ctx_state *cs, SSL *ssl, struct tls_hello *h,
		      int *al)
{
	const unsigned char *ext;
	size_t len;
	struct tls_cert *c;
	int rc;

	if (!cs->challenges ||
	    !SSL_client_hello_get0_ext(
		    ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
		    &ext, &len) ||
	    tls_alpn_offered(ext, len) != 1)
		return 0;
	c = tls_alpn_get(cs->challenges, h->sni);
	if (!c)
		return 0; /* no challenge: ALPN refuses acme-tls/1 later */
	rc = tls_cert_use(c, ssl);
	tls_cert_unref(c);
	if (rc < 0) {
		*al = SSL_AD_INTERNAL_ERROR;
		return -1;
	}
	h->result = TLS_HELLO_ACME;
	return 1;
}

/* A name with no certificate (h->result says which kind): the default
 * certificate when one is configured, else the unrecognized_name alert. */
static int hello_default(struct ctx_state *cs, SSL *ssl, struct tls_hello *h,
			 int *al)
{
	int rc = tls_default_use(cs->def, ssl);

	if (rc == 1) {
		h->result = TLS_HELLO_DEFAULT;
		return SSL_CLIENT_HELLO_SUCCESS;
	}
	*al = rc < 0 ? SSL_AD_INTERNAL_ERROR : SSL_AD_UNRECOGNIZED_NAME;
	return SSL_CLIENT_HELLO_ERROR;
}

static int hello_cb(SSL *ssl, int *al, void *arg)
{
	struct ctx_state *cs = arg;
	struct tls_hello *h = SSL_get_app_data(ssl);
	const unsigned char *ext;
	size_t len;
	struct tls_cert *c;
	int rc;

	if (!h) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	/* a retry after a pause finds the name already parsed */
	if (!h->sni[0] &&
	    (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext,
					&len) ||
	     tls_sni_from_ext(ext, len, h->sni, sizeof(h->sni)) < 0)) {
		h->sni[0] = '\0';
		h->result = TLS_HELLO_NO_SNI;
		return hello_default(cs, ssl, h, al);
	}
	switch (hello_acme(cs, ssl, h, al)) {
	case 1:
		return SSL_CLIENT_HELLO_SUCCESS;
	case -1:
		return SSL_CLIENT_HELLO_ERROR;
	default:
		break;
	}
	switch (tls_loader_lookup(cs->loader, h->sni, &c)) {
	case TLS_LOOK_HIT:
		rc = tls_cert_use(c, ssl);
		tls_cert_unref(c); /* the SSL holds its own references now */
		if (rc < 0) {
			*al = SSL_AD_INTERNAL_ERROR;
			return SSL_CLIENT_HELLO_ERROR;
		}
		h->result = TLS_HELLO_OK;
		return SSL_CLIENT_HELLO_SUCCESS;
	case TLS_LOOK_LOADING:
	case TLS_LOOK_MISS:
		h->result = TLS_HELLO_WAIT;
		return SSL_CLIENT_HELLO_RETRY;
	default:
		break;
	}
	if (h->give_up) {
		/* waited for an on-demand certificate too long: a different
		 * alert from an unknown name's, so a client (and its
		 * operator) can tell "not ours" from "not ready" */
		h->result = TLS_HELLO_GAVE_UP;
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (cs->unknown && cs->unknown(cs->unknown_ctx, h->sni)) {
		h->result = TLS_HELLO_ONDEMAND;
		return SSL_CLIENT_HELLO_RETRY;
	}
	h->result = TLS_HELLO_UNKNOWN;
	return hello_default(cs, ssl, h, al);
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	static unsigned char acme[] = "\x0a" "acme-tls/1";
	struct ctx_state *cs = arg;
	struct tls_hello *h = SSL_get_app_data(ssl);
	unsigned char *sel = NULL;

	if (h && h->result == TLS_HELLO_ACME) {
		/* the challenge certificate was chosen because the client
		 * offered acme-tls/1: RFC 8737 wants it negotiated */
		if (SSL_select_next_proto(&sel, outlen, acme, sizeof(acme) - 1,
					  in, inlen) != OPENSSL_NPN_NEGOTIATED)
			return SSL_TLSEXT_ERR_ALERT_FATAL;
		*out = sel;
		return SSL_TLSEXT_ERR_OK;
	}
	if (SSL_select_next_proto(&sel, outlen, cs->alpn, cs->alpn_len, in,
				  inlen) != OPENSSL_NPN_NEGOTIATED)
		/* nothing in common: no_application_protocol (RFC 7301),
		 * rather than a stream the upstream cannot read */
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* libssl's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb):
 * enc = 1 issue with the newest key; enc = 0 find the ticket's key: 1
 * (newest), 2 (older: resume and issue a new ticket), 0 (unknown or
 * retired: full handshake), -1 error. */
static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
		     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct ctx_state *cs = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	struct tls_ticket_key k;
	int64_t now = clock_mono_ms();
	OSSL_PARAM params[3];
	int idx = 0, rc = -1;

	pthread_mutex_lock(&cs->mu);
	if (tls_ticket_due(&cs->ring, now)) {
		struct tls_ticket_key fresh;

		if (RAND_bytes(fresh.name, sizeof(fresh.name)) != 1 ||
		    RAND_bytes(fresh.aes, sizeof(fresh.aes)) != 1 ||
		    RAND_bytes(fresh.hmac, sizeof(fresh.hmac)) != 1) {
			pthread_mutex_unlock(&cs->mu);
			OPENSSL_cleanse(&fresh, sizeof(fresh));
			return -1;
		}
		tls_ticket_push(&cs->ring, &fresh, now);
		OPENSSL_cleanse(&fresh, sizeof(fresh));
	}
	if (!enc)
		idx = tls_ticket_find(&cs->ring, key_name, now);
	if (idx >= 0)
		k = cs->ring.keys[idx];
	pthread_mutex_unlock(&cs->mu);
	if (idx < 0)
		return 0;
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
						      k.hmac, sizeof(k.hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (enc) {
		memcpy(key_name, k.name, sizeof(k.name));
		if (RAND_bytes(iv, 16) != 1 ||
		    EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes,
				       iv) != 1 ||
		    EVP_MAC_CTX_set_params(hctx, params) != 1)
			goto out;
		rc = 1;
	} else {
		if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes,
				       iv) != 1 ||
		    EVP_MAC_CTX_set_params(hctx, params) != 1)
			goto out;
		rc = idx == 0 ? 1 : 2;
	}
out:
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

SSL_CTX *tls_ctx_new(const struct tls_ctx_opts *o, char *err, size_t errsz)
{
	static const unsigned char h2[] = "\x02h2", h11[] = "\x08http/1.1";
	struct ctx_state *cs = NULL;
	SSL_CTX *ctx = NULL;
	int64_t period = o->ticket_period_ms > 0 ? o->ticket_period_ms
						 : TICKET_PERIOD_MS;

	if (!o->loader) {
		snprintf(err, errsz, "front: no certificate loader");
		return NULL;
	}
	cs = calloc(1, sizeof(*cs));
	ctx = SSL_CTX_new(TLS_server_method());
	if (!cs || !ctx) {
		snprintf(err, errsz, "front: cannot create the TLS context");
		SSL_CTX_free(ctx);
		free(cs);
		return NULL;
	}
	cs->loader = o->loader;
	cs->challenges = o->alpn;
	cs->unknown = o->unknown;
	cs->unknown_ctx = o->unknown_ctx;
	cs->def = o->def;
	cs->ring.period_ms = period;
	pthread_mutex_init(&cs->mu, NULL);
	if (o->h2) {
		memcpy(cs->alpn, h2, sizeof(h2) - 1);
		cs->alpn_len = sizeof(h2) - 1;
	}
	memcpy(cs->alpn + cs->alpn_len, h11, sizeof(h11) - 1);
	cs->alpn_len += sizeof(h11) - 1;
	SSL_CTX_set_app_data(ctx, cs);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, CIPHERS_12) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, GROUPS) != 1 ||
	    SSL_CTX_set_num_tickets(ctx, 1) != 1) {
		snprintf(err, errsz, "front: cannot configure TLS");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_PRIORITIZE_CHACHA |
					 SSL_OP_NO_COMPRESSION |
					 SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* read what the socket holds in one read, not a record header and
	 * then its body: the ClientHello, the client's CCS + Finished and
	 * its close_notify each take one read instead of two to four.
	 * net_conn.c never waits on the poll for bytes SSL may already
	 * hold: it calls SSL_read again whenever it can take more. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* a ticket outlives its key by at most this */
	SSL_CTX_set_timeout(ctx, (long)(period * (TLS_TICKET_KEYS - 1) / 1000));
	SSL_CTX_set_client_hello_cb(ctx, hello_cb, cs);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, cs);
	if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) != 1) {
		snprintf(err, errsz, "front: cannot set the ticket callback");
		goto fail;
	}
	return ctx;
fail:
	ERR_clear_error();
	tls_ctx_free(ctx); /* and cs, its app data */
	return NULL;
}

void tls_ctx_free(SSL_CTX *ctx)
{
	struct ctx_state *cs;

	if (!ctx)
		return;
	cs = SSL_CTX_get_app_data(ctx);
	SSL_CTX_free(ctx);
	if (cs) {
		OPENSSL_cleanse(&cs->ring, sizeof(cs->ring));
		pthread_mutex_destroy(&cs->mu);
		free(cs);
	}
}
