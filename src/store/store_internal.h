/*
 * store internals shared by the files of src/store/: the ops table every
 * backend fills, and helpers (store__ prefix).
 *
 * store.c validates every argument once and then calls the backend, so a
 * backend may assume: non-NULL pointers, names that passed store__name_ok,
 * strings within the STORE_*_MAX bounds, enums in range, max > 0.
 * Backends validate what they read back (lengths, enum ranges) and return
 * -EBADMSG for a row that does not fit.
 */
#ifndef CERTHERD_STORE_INTERNAL_H
#define CERTHERD_STORE_INTERNAL_H

#include "store/store.h"

struct store_ops {
	const char *name; /* "sqlite" */
	void (*close)(struct store *st);
	int (*bulk_begin)(struct store *);
	int (*bulk_end)(struct store *, int commit);
	int (*account_put)(struct store *, const struct store_account *);
	int (*account_get)(struct store *, const char *,
			   struct store_account *);
	int (*domain_add)(struct store *, const char *, const char *, int64_t);
	int (*domain_remove)(struct store *, const char *, int64_t);
	int (*domain_get)(struct store *, const char *, struct store_domain *);
	int (*domain_list)(struct store *, const struct store_domain_filter *,
			   struct store_domain *, size_t, size_t *);
	int (*domain_count)(struct store *, uint64_t *);
	int (*domain_due)(struct store *, int64_t, const unsigned *,
			  struct store_due *, size_t, size_t *);
	int (*domain_set_job)(struct store *, const char *,
			      const struct store_job *, int64_t);
	int (*order_begin)(struct store *, const char *, const char *,
			   const char *, int64_t, int64_t *);
	int (*order_update)(struct store *, int64_t, enum store_order_state,
			    int64_t, int terminal);
	int (*order_list_pending)(struct store *, int64_t, struct store_order *,
				  size_t, size_t *);
	int (*cert_insert)(struct store *, const struct store_cert *, int64_t,
			   int64_t, int64_t, int64_t *);
	int (*cert_current)(struct store *, const char *, struct store_cert *);
	int (*cert_expiring)(struct store *, int64_t, struct store_cert_info *,
			     size_t, size_t *);
	int (*cert_set_ari)(struct store *, int64_t, int64_t, int64_t);
	int (*challenge_put)(struct store *, const struct store_challenge *);
	int (*challenge_get)(struct store *, const char *, int64_t,
			     struct store_challenge *);
	int (*challenge_delete)(struct store *, const char *);
	int (*challenge_expire)(struct store *, int64_t);
	int (*bucket_save)(struct store *, const struct store_bucket *);
	int (*bucket_load)(struct store *, const char *, struct store_bucket *);
	int (*event_append)(struct store *, const char *, int64_t, const char *,
			    const char *);
	int (*event_list)(struct store *, const char *, struct store_event *,
			  size_t, size_t *);
};

/* Every backend's handle starts with this. */
struct store {
	const struct store_ops *ops;
	char errmsg[256];
};

/* Backend constructors. */
int store__sqlite_open(const char *state_dir, struct store **out, char *err,
		       size_t errsz);

/* 0 if s is a normalized name (as name_normalize writes) of at most
 * STORE_NAME_MAX bytes, else -EINVAL. */
int store__name_ok(const char *s);
/* 0 if s is non-NULL, 1..max bytes and has no control characters. */
int store__str_ok(const char *s, size_t max);
/* Copy src (len bytes, may lack a NUL) into dst[dstsz]; -EBADMSG if it
 * does not fit. Used for every string read back. */
int store__copy(char *dst, size_t dstsz, const char *src, size_t len);

/* explicit_bzero then free; NULL ok. For key PEM. */
void store__free_secret(char *s);

/* Problem <-> JSON text (the last_error column). to_json: malloc'd string
 * or NULL; from_json: 0 or -EBADMSG. */
char *store__problem_to_json(const struct store_problem *p);
int store__problem_from_json(const char *s, size_t len,
			     struct store_problem *p);

#endif
