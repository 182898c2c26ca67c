/*
 * tls_loader — the index of tls_index.c behind a mutex, and the thread
 * that fills it from the store.
 *
 * A handshake's lookup (tls_loader_lookup, on a worker thread) takes the
 * mutex for a hash probe. A name not in memory is queued and reported as
 * loading; the handshake pauses. This thread reads the queued names'
 * certificates with its own store handle (SQLite WAL: it reads while the
 * daemon writes), parses them without the lock, puts the results in the
 * index and calls opts.loaded, so the workers retry their paused
 * handshakes. Nothing is read at start-up: the first handshake of a name
 * loads it.
 *
 * Bounds: the queue holds QUEUE_MAX names; when it is full a lookup
 * answers "absent" for a new name (without remembering it) rather than
 * queue without end: a flood of unknown names costs refused handshakes,
 * not memory. Absent names are remembered ABSENT_TTL_MS, in a list of
 * their own bounded like the certificates' (tls_index.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "tls/tls.h"
#include "util/util.h"

#define QUEUE_MAX 4096
#define BATCH_MAX 64
/* Another node on a shared store, or a certificate this process was not
 * told about, is seen within this time. */
#define ABSENT_TTL_MS 10000

struct tls_loader {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	int started, stop;
	struct tls_index *ix;
	struct store *st;
	struct tls_pem *pem; /* the loader thread's parser */
	char (*queue)[TLS_NAME_MAX + 1]; /* ring of QUEUE_MAX names */
	size_t qhead, qlen;
	struct tls_loader_opts o;
	struct tls_loader_stats stats;
};

static void ref_cert(void *v)
{
	tls_cert_ref(v);
}

static void unref_cert(void *v)
{
	tls_cert_unref(v);
}

/* Under mu. 0, or -ENOSPC when the queue is full. */
static int enqueue(struct tls_loader *l, const char *name)
{
	if (l->qlen == QUEUE_MAX)
		return -ENOSPC;
	snprintf(l->queue[(l->qhead + l->qlen) % QUEUE_MAX], TLS_NAME_MAX + 1,
		 "%s", name);
	l->qlen++;
	pthread_cond_signal(&l->cv);
	return 0;
}

/* Read name's current certificate from the store: NULL when it has none
 * (or its domain was removed) or it cannot be used; the reason logged
 * when it is an error. No lock held. */
static struct tls_cert *load_one(struct tls_loader *l, const char *name)
{
	struct store_domain dom;
	struct store_cert sc = {0};
	struct tls_cert *c = NULL;
	char err[160];
	int rc;

	rc = store_domain_get(l->st, name, &dom);
	if (rc == 0 && dom.status != STORE_DOMAIN_REMOVED)
		rc = store_cert_current(l->st, name, &sc);
	else if (rc == 0)
		rc = -ENOENT;
	if (rc == -ENOENT || rc == -EINVAL) /* -EINVAL: not a store name */
		return NULL;
	if (rc < 0) {
		log_warn("front", name, "cannot read the certificate: %s",
			 store_errmsg(l->st));
		pthread_mutex_lock(&l->mu);
		l->stats.load_errors++;
		pthread_mutex_unlock(&l->mu);
		return NULL;
	}
	c = tls_cert_from_pem(l->pem, sc.chain_pem, strlen(sc.chain_pem), sc.key_pem,
			      strlen(sc.key_pem), err, sizeof(err));
	if (!c) {
		log_error("front", name, "stored certificate unusable: %s", err);
		pthread_mutex_lock(&l->mu);
		l->stats.load_errors++;
		pthread_mutex_unlock(&l->mu);
	}
	store_cert_clear(&sc);
	return c;
}

static void *loader_main(void *arg)
{
	struct tls_loader *l = arg;
	char batch[BATCH_MAX][TLS_NAME_MAX + 1];
	struct tls_cert *got[BATCH_MAX];

	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		size_t n = 0;

		if (l->qlen == 0) {
			pthread_cond_wait(&l->cv, &l->mu);
			continue;
		}
		while (l->qlen && n < BATCH_MAX) {
			memcpy(batch[n++], l->queue[l->qhead],
			       TLS_NAME_MAX + 1);
			l->qhead = (l->qhead + 1) % QUEUE_MAX;
			l->qlen--;
		}
		pthread_mutex_unlock(&l->mu);
		for (size_t i = 0; i < n; i++)
			got[i] = load_one(l, batch[i]);
		pthread_mutex_lock(&l->mu);
		for (size_t i = 0; i < n; i++) {
			char wild[TLS_NAME_MAX + 1];

			if (tls_index_put(l->ix, batch[i], got[i],
					  clock_mono_ms()) < 0)
				log_error("front", batch[i],
					  "out of memory in the index");
			l->stats.loads++;
			/* an exact name with no certificate of its own: the
			 * handshake asks for its wildcard next, so load that
			 * now instead of in a second round trip */
			if (!got[i] &&
			    tls_sni_wildcard(batch[i], wild, sizeof(wild)) == 0 &&
			    tls_index_get(l->ix, wild, clock_mono_ms(), NULL) ==
				    TLS_LOOK_MISS &&
			    tls_index_loading(l->ix, wild) == 0 &&
			    enqueue(l, wild) < 0)
				tls_index_put(l->ix, wild, NULL,
					      clock_mono_ms());
			tls_cert_unref(got[i]);
		}
		pthread_mutex_unlock(&l->mu);
		if (l->o.loaded)
			l->o.loaded(l->o.ctx);
		pthread_mutex_lock(&l->mu);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

int tls_loader_start(const struct tls_loader_opts *o, struct tls_loader **out,
		     char *err, size_t errsz)
{
	static const struct tls_index_ops ops = {ref_cert, unref_cert};
	struct tls_loader *l;
	int rc;

	*out = NULL;
	if (!o || !o->state_dir || o->cache_size == 0) {
		snprintf(err, errsz, "front: bad loader options");
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	l->o = *o;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->queue = calloc(QUEUE_MAX, sizeof(*l->queue));
	/* as many absent names as certificates: a flood of unknown names
	 * churns its own list */
	l->ix = tls_index_new(&ops, o->cache_size, o->cache_size,
			      ABSENT_TTL_MS);
	l->pem = tls_pem_new();
	if (!l->queue || !l->ix || !l->pem) {
		snprintf(err, errsz, "front: out of memory for the index");
		rc = -ENOMEM;
		goto fail;
	}
	rc = store_open(o->state_dir, &l->st, err, errsz);
	if (rc < 0)
		goto fail;
	rc = -pthread_create(&l->th, NULL, loader_main, l);
	if (rc < 0) {
		snprintf(err, errsz, "front: cannot start the loader: %s",
			 strerror(-rc));
		goto fail;
	}
	l->started = 1;
	*out = l;
	return 0;
fail:
	tls_loader_stop(l);
	return rc;
}

void tls_loader_stop(struct tls_loader *l)
{
	if (!l)
		return;
	if (l->started) {
		pthread_mutex_lock(&l->mu);
		l->stop = 1;
		pthread_cond_signal(&l->cv);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->th, NULL);
	}
	store_close(l->st);
	tls_index_free(l->ix);
	tls_pem_free(l->pem);
	free(l->queue);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

enum tls_look tls_loader_lookup(struct tls_loader *l, const char *sni,
				struct tls_cert **cert)
{
	char load[TLS_NAME_MAX + 1];
	void *val = NULL;
	enum tls_look r;

	*cert = NULL;
	pthread_mutex_lock(&l->mu);
	r = tls_index_resolve(l->ix, sni, clock_mono_ms(), &val, load);
	switch (r) {
	case TLS_LOOK_HIT:
		l->stats.hits++;
		*cert = val;
		break;
	case TLS_LOOK_MISS:
		l->stats.misses++;
		if (l->qlen == QUEUE_MAX) {
			r = TLS_LOOK_ABSENT; /* overloaded: refuse, remember
						nothing */
			l->stats.absent++;
			break;
		}
		if (tls_index_loading(l->ix, load) < 0) {
			r = TLS_LOOK_ABSENT;
			l->stats.absent++;
			break;
		}
		enqueue(l, load);
		r = TLS_LOOK_LOADING;
		break;
	case TLS_LOOK_ABSENT:
		l->stats.absent++;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&l->mu);
	return r;
}

void tls_loader_changed(struct tls_loader *l, const char *name)
{
	pthread_mutex_lock(&l->mu);
	/* a loaded name keeps serving its old certificate until the reload
	 * replaces it; a full queue leaves it on the old one until it is
	 * evicted (logged: rare, and the old one is still valid) */
	if (tls_index_changed(l->ix, name) == 1 && enqueue(l, name) < 0)
		log_warn("front", name,
			 "load queue full: the renewed certificate is served "
			 "once the old one leaves the cache");
	pthread_mutex_unlock(&l->mu);
}

void tls_loader_removed(struct tls_loader *l, const char *name)
{
	int64_t now = clock_mono_ms();

	pthread_mutex_lock(&l->mu);
	/* a load in flight may have read the certificate before the
	 * removal: load it once more after it, which finds nothing */
	if (tls_index_get(l->ix, name, now, NULL) == TLS_LOOK_LOADING) {
		if (enqueue(l, name) < 0)
			log_warn("front", name,
				 "load queue full: the removed domain is "
				 "served until its entry is evicted");
	} else if (tls_index_put(l->ix, name, NULL, now) < 0) {
		log_error("front", name, "out of memory in the index");
	}
	pthread_mutex_unlock(&l->mu);
}

void tls_loader_stats(struct tls_loader *l, struct tls_loader_stats *out)
{
	pthread_mutex_lock(&l->mu);
	*out = l->stats;
	out->present = tls_index_present(l->ix);
	out->absent_kept = tls_index_absent(l->ix);
	pthread_mutex_unlock(&l->mu);
}
