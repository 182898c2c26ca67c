/*
 * engine_prune.c — the live/ files of removed domains go after
 * store.keep_removed. A domain removed through the API leaves nginx's
 * include at the next reload (engine_nginx.c), but its files stay for a
 * while: a platform that removes a name by mistake and adds it back gets
 * the same certificate, and anything still pointing at the files (a
 * hand-written server block) keeps working until the operator notices.
 *
 * A timer on the daemon's loop lists the REMOVED domains (the store's
 * order, a page at a time) and deletes the files of those removed longer
 * ago than keep_removed: the domain's updated time is when it was
 * removed, as nothing else changes a removed domain.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "nginx/nginx.h"
#include "store/store.h"
#include "util/util.h"

#define PRUNE_PAGE	256
#define PRUNE_EVERY_MAX ENGINE_HOUR_MS
#define PRUNE_EVERY_MIN 1000

struct engine_prune {
	struct store *st;
	char *live_dir;
	int64_t keep_ms;
	uv_timer_t timer;
};

static void prune_pass(uv_timer_t *t)
{
	struct engine_prune *p = t->data;
	struct store_domain_filter f = {.status_mask = 1u
						       << STORE_DOMAIN_REMOVED};
	struct store_domain *page = malloc(PRUNE_PAGE * sizeof(*page));
	char after[NAME_MAX_LEN + 1] = "";
	int64_t now = clock_wall_ms();
	size_t n;
	int rc;

	if (!page)
		return;
	do {
		f.after = after[0] ? after : NULL;
		rc = store_domain_list(p->st, &f, page, PRUNE_PAGE, &n);
		for (size_t i = 0; rc == 0 && i < n; i++) {
			const struct store_domain *d = &page[i];
			int r;

			if (d->updated_ms + p->keep_ms > now)
				continue;
			r = nginx_live_delete(p->live_dir, d->name);
			if (r > 0) {
				log_info("prune", d->name,
					 "live/ files deleted: removed more "
					 "than store.keep_removed ago");
				store_event_append(p->st, d->name, now,
						   "files-deleted",
						   "live/ files deleted after "
						   "store.keep_removed");
			} else if (r < 0) {
				log_warn("prune", d->name,
					 "cannot delete its live/ files: %s",
					 strerror(-r));
			}
		}
		if (rc == 0 && n)
			memcpy(after, page[n - 1].name, sizeof(after));
	} while (rc == 0 && n == PRUNE_PAGE);
	if (rc < 0)
		log_warn("prune", NULL, "cannot list removed domains: %s",
			 store_errmsg(p->st));
	free(page);
}

struct engine_prune *engine_prune_new(uv_loop_t *loop, struct store *st,
				      const char *live_dir, int64_t keep_ms)
{
	struct engine_prune *p = calloc(1, sizeof(*p));
	int64_t every = keep_ms / 2;

	if (!p || !(p->live_dir = strdup(live_dir))) {
		free(p);
		return NULL;
	}
	p->st = st;
	p->keep_ms = keep_ms;
	if (every > PRUNE_EVERY_MAX)
		every = PRUNE_EVERY_MAX;
	if (every < PRUNE_EVERY_MIN)
		every = PRUNE_EVERY_MIN;
	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	uv_timer_start(&p->timer, prune_pass, PRUNE_EVERY_MIN, (uint64_t)every);
	return p;
}

static void prune_closed(uv_handle_t *h)
{
	struct engine_prune *p = h->data;

	free(p->live_dir);
	free(p);
}

void engine_prune_free(struct engine_prune *p)
{
	if (p)
		uv_close((uv_handle_t *)&p->timer, prune_closed);
}
