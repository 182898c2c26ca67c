/*
 * libFuzzer driver for the client and order machines: the input is the
 * CA's side of a whole conversation, one response per record, fed to a
 * client until it is ready and then to an order for two names.
 *
 * Input layout (text-friendly, so seeds can be written by hand):
 *
 *     <config byte> then records separated by "\n%%\n"; each record is
 *     "<status digits>\n<header lines>\n\n<body>" (no digits: transport
 *     failure; no blank line: headers only, empty body).
 *
 * config bit 0: the driver adds a fresh Replay-Nonce to every response
 *               (so the fuzzer need not learn nonces to go deep)
 *        bit 1: prefer the tls-alpn-01 challenge instead of http-01
 *        bit 2: preferred issuer "Fuzz Root B" (exercises alternates)
 *        bit 3: resume an order by URL instead of newOrder
 *        bit 4: the publish hook fails
 *        bit 5: order a single name
 *
 * Headers and bodies are handed over in buffers of exactly their length
 * (no NUL after them), so reading past a length is caught by ASan.
 *
 * Checked: next never asks to SEND without a URL, or a POST without a
 * body; WAIT always lies in the future; DONE/FAILED carry no request;
 * FAILED carries an error with a code, a detail and a step; VALID has a
 * certificate; every published challenge is withdrawn by the end and
 * nothing is withdrawn that was not published; a feed after the end is
 * refused.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acme/acme.h"
#include "crypto/crypto.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEP	  "\n%%\n"
#define MAX_STEPS 400
#define T0	  INT64_C(1735689600000)

static EVP_PKEY *account_key;
static unsigned char *csr[2];
static size_t csr_len[2];
static const char *const names[] = {"example.com", "www.example.com"};

struct hooks_state {
	int outstanding;
	int fail;
};

static int on_publish(void *ctx, enum acme_chall_type type, const char *domain,
		      const char *token, const char *ka)
{
	struct hooks_state *h = ctx;

	if ((unsigned)type >= ACME_CHALL__MAX || !domain || !token || !ka ||
	    acme_token_valid(token) < 0 || strncmp(ka, token, strlen(token)))
		abort();
	if (strcasecmp(domain, names[0]) && strcasecmp(domain, names[1]))
		abort(); /* only names we ordered */
	if (h->fail)
		return -EIO;
	h->outstanding++;
	return 0;
}

static void on_unpublish(void *ctx, enum acme_chall_type type,
			 const char *domain, const char *token)
{
	struct hooks_state *h = ctx;

	if ((unsigned)type >= ACME_CHALL__MAX || !domain || !token)
		abort();
	if (--h->outstanding < 0)
		abort();
}

static void init_once(void)
{
	if (account_key)
		return;
	log_set_level(LOG_LVL_ERROR);
	account_key = key_generate(KEY_ECDSA_P256);
	if (!account_key ||
	    csr_create(account_key, names, 2, &csr[0], &csr_len[0]) < 0 ||
	    csr_create(account_key, names, 1, &csr[1], &csr_len[1]) < 0)
		abort();
}

/* The input, consumed one record at a time. */
struct script {
	const uint8_t *p;
	size_t left;
	int add_nonce;
	unsigned nonce_seq;
	char *hdrs, *body; /* current response buffers */
};

static const uint8_t *find(const uint8_t *p, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; k <= n && i <= n - k; i++)
		if (memcmp(p + i, needle, k) == 0)
			return p + i;
	return NULL;
}

static char *copy_exact(const uint8_t *p, size_t n)
{
	/* malloc(0) may return NULL; 1 byte keeps "no bytes" distinct from
	 * failure while still catching any read */
	char *b = malloc(n ? n : 1);

	if (!b)
		abort();
	if (n)
		memcpy(b, p, n);
	return b;
}

/* Next response from the script; 0 when the script is used up. */
static int next_response(struct script *s, struct acme_response *r)
{
	const uint8_t *end, *rec, *nl, *blank;
	size_t len, hlen, extra = 0;
	char nonce[64] = "";
	long status = 0;

	free(s->hdrs);
	free(s->body);
	s->hdrs = s->body = NULL;
	memset(r, 0, sizeof(*r));
	if (s->left == 0)
		return 0;
	rec = s->p;
	end = find(s->p, s->left, SEP);
	len = end ? (size_t)(end - rec) : s->left;
	s->p += end ? len + strlen(SEP) : len;
	s->left -= end ? len + strlen(SEP) : len;

	for (; len > 0 && *rec >= '0' && *rec <= '9'; rec++, len--)
		if (status < 1000)
			status = status * 10 + (*rec - '0');
	nl = memchr(rec, '\n', len);
	if (nl) {
		len -= (size_t)(nl + 1 - rec);
		rec = nl + 1;
	} else {
		len = 0;
	}
	/* an empty header block: the body follows the status line's
	 * newline directly */
	blank = len > 0 && rec[0] == '\n' ? rec - 1 : find(rec, len, "\n\n");
	hlen = blank ? (size_t)(blank - rec) + 1 : len;
	if (s->add_nonce && status != 0)
		extra = (size_t)snprintf(nonce, sizeof(nonce),
					 "Replay-Nonce: fuzzNonce%u\n",
					 ++s->nonce_seq);
	s->hdrs = malloc(hlen + extra ? hlen + extra : 1);
	if (!s->hdrs)
		abort();
	memcpy(s->hdrs, nonce, extra);
	if (hlen)
		memcpy(s->hdrs + extra, rec, hlen);
	r->status = status;
	r->headers = s->hdrs;
	r->headers_len = hlen + extra;
	if (blank) {
		size_t boff = hlen + 1;
		s->body = copy_exact(rec + boff, len - boff);
		r->body = s->body;
		r->body_len = len - boff;
	}
	if (status == 0)
		r->transport_error = "fuzzed transport failure";
	return 1;
}

static void check_error(const struct acme_error *e)
{
	char buf[512];

	if (e->code == ACME_E_NONE || (unsigned)e->code >= ACME_E__MAX ||
	    !e->detail || !e->step)
		abort();
	acme_error_str(e, buf, sizeof(buf));
	if (!buf[0] || strchr(buf, '\n'))
		abort();
}

static void check_request(enum acme_step st, const struct acme_request *req,
			  int64_t now, int64_t wake)
{
	switch (st) {
	case ACME_STEP_SEND:
		if (!req->url || (unsigned)req->method >= ACME_METHOD__MAX)
			abort();
		if (req->method == ACME_POST &&
		    (!req->body || req->body_len != strlen(req->body)))
			abort();
		break;
	case ACME_STEP_WAIT:
		if (wake <= now || req->url)
			abort();
		break;
	case ACME_STEP_DONE:
	case ACME_STEP_FAILED:
		if (req->url || req->body)
			abort();
		break;
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct acme_client_opts co = {.directory_url = "https://ca.test/dir",
				      .email = "fuzz@example.com",
				      .agree_tos = 1};
	struct hooks_state hs = {0};
	struct acme_challenge_hooks hooks = {on_publish, on_unpublish, &hs};
	struct acme_order_opts oo = {0};
	struct script s = {0};
	struct acme_client *c = NULL;
	struct acme_order *o = NULL;
	struct acme_request req;
	struct acme_response r;
	enum acme_step st = ACME_STEP_SEND;
	int64_t now = T0, wake;
	uint8_t cfg;
	int single;

	if (size < 1)
		return 0;
	init_once();
	cfg = data[0];
	s.p = data + 1;
	s.left = size - 1;
	s.add_nonce = cfg & 1;
	hs.fail = !!(cfg & 16);
	single = !!(cfg & 32);

	c = acme_client_new(account_key, &co);
	if (!c)
		abort();
	for (int i = 0; i < MAX_STEPS; i++) {
		wake = 0;
		st = acme_client_next(c, now, &req, &wake);
		check_request(st, &req, now, wake);
		if (st == ACME_STEP_WAIT) {
			now = wake;
			continue;
		}
		if (st != ACME_STEP_SEND)
			break;
		acme_request_clear(&req);
		if (!next_response(&s, &r))
			goto out;
		if (acme_client_feed(c, &r, now) < 0)
			abort();
		now += 1;
	}
	if (st == ACME_STEP_FAILED) {
		check_error(acme_client_error(c));
		if (acme_client_ready(c) || acme_client_account_url(c))
			abort();
		goto out;
	}
	if (st != ACME_STEP_DONE)
		goto out;
	if (!acme_client_ready(c) || !acme_client_account_url(c) ||
	    !acme_client_directory(c))
		abort();

	oo.names = names;
	oo.n_names = single ? 1 : 2;
	oo.csr_der = csr[single];
	oo.csr_len = csr_len[single];
	oo.chall = cfg & 2 ? ACME_CHALL_TLSALPN01 : ACME_CHALL_HTTP01;
	oo.preferred_issuer = cfg & 4 ? "Fuzz Root B" : NULL;
	oo.order_url = cfg & 8 ? "https://ca.test/order/1" : NULL;
	oo.poll_deadline_ms = 60000;
	o = acme_order_new(c, &oo, &hooks);
	if (!o)
		abort();
	for (int i = 0; i < MAX_STEPS; i++) {
		wake = 0;
		st = acme_order_next(o, now, &req, &wake);
		check_request(st, &req, now, wake);
		if (st == ACME_STEP_WAIT) {
			now = wake;
			continue;
		}
		if (st != ACME_STEP_SEND)
			break;
		acme_request_clear(&req);
		if (!next_response(&s, &r))
			goto out;
		if (acme_order_feed(o, &r, now) < 0)
			abort();
		now += 1;
	}
	if (st == ACME_STEP_DONE) {
		size_t len = 0;
		if (acme_order_state(o) != ACME_ORDER_VALID ||
		    !acme_order_cert(o, &len) || len == 0 || hs.outstanding)
			abort();
	} else if (st == ACME_STEP_FAILED) {
		if (acme_order_state(o) != ACME_ORDER_FAILED ||
		    acme_order_cert(o, NULL) || hs.outstanding)
			abort();
		check_error(acme_order_error(o));
	}
	if (st == ACME_STEP_DONE || st == ACME_STEP_FAILED) {
		struct acme_response late = {.status = 200};
		if (acme_order_feed(o, &late, now) != -EINVAL)
			abort();
	}
out:
	acme_order_free(o);
	if (hs.outstanding)
		abort(); /* freeing an order withdraws what it published */
	acme_client_free(c);
	free(s.hdrs);
	free(s.body);
	return 0;
}
