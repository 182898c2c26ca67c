/*
 * engine_batch.c — the pure parts of the deploy hooks: the set of changed
 * domains waiting for the next hook run, its text form (one name a line:
 * the journal, the command's names file), the webhook's JSON body and the
 * webhook's retry delays. No I/O, no clock: time comes in as an argument.
 *
 * The set keeps insertion order (hooks see names in the order their
 * certificates changed) and finds a name in O(1) through an
 * open-addressing index, so 10,000 changes in one batch cost 10,000
 * lookups, not 50 million string compares.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "engine/engine.h"
#include "store/store.h"
#include "util/util.h"

struct engine_batch {
	char **names; /* insertion order */
	size_t n, cap;
	size_t *slots; /* index + 1 into names; 0 = empty; size nslots */
	size_t nslots; /* a power of two, at least twice n */
};

/* FNV-1a: names are short and ours, no adversary picks them. */
static size_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

/* The slot holding name, or the empty slot where it would go. */
static size_t *slot_of(const struct engine_batch *b, const char *name)
{
	size_t mask = b->nslots - 1, i = hash(name) & mask;

	while (b->slots[i] && strcmp(b->names[b->slots[i] - 1], name) != 0)
		i = (i + 1) & mask;
	return &b->slots[i];
}

static int rehash(struct engine_batch *b, size_t nslots)
{
	size_t *old = b->slots, oldn = b->nslots;

	b->slots = calloc(nslots, sizeof(*b->slots));
	if (!b->slots) {
		b->slots = old;
		return -ENOMEM;
	}
	b->nslots = nslots;
	for (size_t i = 0; i < oldn; i++)
		if (old[i])
			*slot_of(b, b->names[old[i] - 1]) = old[i];
	free(old);
	return 0;
}

struct engine_batch *engine_batch_new(void)
{
	struct engine_batch *b = calloc(1, sizeof(*b));

	if (!b || rehash(b, 64) < 0) {
		free(b);
		return NULL;
	}
	return b;
}

void engine_batch_clear(struct engine_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->names[i]);
	b->n = 0;
	memset(b->slots, 0, b->nslots * sizeof(*b->slots));
}

void engine_batch_free(struct engine_batch *b)
{
	if (!b)
		return;
	engine_batch_clear(b);
	free(b->names);
	free(b->slots);
	free(b);
}

/* What the store holds: normalized names, wildcards allowed. */
static int name_ok(const char *s, size_t len)
{
	if (len == 0 || len > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '*'))
			return 0;
	}
	return 1;
}

int engine_batch_add(struct engine_batch *b, const char *name)
{
	size_t *slot;
	char *copy;

	if (!name || !name_ok(name, strlen(name)))
		return -EINVAL;
	slot = slot_of(b, name);
	if (*slot)
		return 0;
	if ((b->n + 1) * 2 > b->nslots) {
		if (rehash(b, b->nslots * 2) < 0)
			return -ENOMEM;
		slot = slot_of(b, name);
	}
	if (b->n == b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 64;
		char **nn = realloc(b->names, nc * sizeof(*nn));

		if (!nn)
			return -ENOMEM;
		b->names = nn;
		b->cap = nc;
	}
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	b->names[b->n++] = copy;
	*slot = b->n;
	return 1;
}

size_t engine_batch_count(const struct engine_batch *b)
{
	return b->n;
}

const char *engine_batch_name(const struct engine_batch *b, size_t i)
{
	return i < b->n ? b->names[i] : NULL;
}

int engine_batch_merge(struct engine_batch *to, struct engine_batch *from)
{
	for (size_t i = 0; i < from->n; i++)
		if (engine_batch_add(to, from->names[i]) < 0)
			return -ENOMEM; /* from unchanged; to holds some */
	engine_batch_clear(from);
	return 0;
}

char *engine_batch_lines(const struct engine_batch *b, size_t *len)
{
	size_t total = 0, o = 0;
	char *out;

	for (size_t i = 0; i < b->n; i++)
		total += strlen(b->names[i]) + 1;
	out = malloc(total + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < b->n; i++) {
		size_t l = strlen(b->names[i]);

		memcpy(out + o, b->names[i], l);
		o += l;
		out[o++] = '\n';
	}
	out[o] = '\0';
	if (len)
		*len = o;
	return out;
}

int engine_batch_parse(struct engine_batch *b, const char *text, size_t len,
		       size_t *bad)
{
	char name[NAME_MAX_LEN + 1];
	size_t pos = 0, nbad = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;

		if (!nl) {
			/* every line is written with its '\n': one without
			 * is a write a crash cut short, maybe mid-name */
			nbad++;
			break;
		}
		if (l > 0 && name_ok(text + pos, l)) {
			memcpy(name, text + pos, l);
			name[l] = '\0';
			if (engine_batch_add(b, name) < 0)
				return -ENOMEM;
		} else if (l > 0) {
			nbad++; /* garbage: not ours */
		}
		pos += l + 1;
	}
	if (bad)
		*bad = nbad;
	return 0;
}

/* ---- the webhook's body
 * ------------------------------------------------------ */

static json_t *time_json(int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char buf[32];

	if (ms < 0 || !gmtime_r(&t, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return json_null();
	return json_string(buf);
}

/* live_dir/<name>/file, with a wildcard's files under
 * store_live_dirname's _wildcard.BASE as store_live_write puts them; JSON
 * null without a live_dir. */
static json_t *path_json(const char *live_dir, const char *name,
			 const char *file)
{
	char path[4096 + NAME_MAX_LEN + 32], dn[NAME_MAX_LEN + 16];
	int n;

	if (!live_dir)
		return json_null();
	n = snprintf(path, sizeof(path), "%s/%s/%s", live_dir,
		     store_live_dirname(name, dn, sizeof(dn)), file);
	if (n < 0 || (size_t)n >= sizeof(path))
		return json_null();
	return json_string(path);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

char *engine_batch_json(const struct engine_batch_item *items, size_t n,
			const char *live_dir, int64_t now_ms, size_t *len)
{
	json_t *root = json_object(), *arr = json_array();
	char *out = NULL;

	if (!root || !arr)
		goto out;
	/* member by member, each checked (json_pack mixes badly with nulls
	 * we build ourselves, and a failed set must not be ignored) */
	if (json_object_set_new(root, "event",
				json_string("certificates-changed")) ||
	    json_object_set_new(root, "time", time_json(now_ms)) ||
	    json_object_set_new(root, "count", json_integer((json_int_t)n)) ||
	    json_object_set(root, "domains", arr))
		goto out;
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_object();

		if (!d || json_array_append_new(arr, d) ||
		    json_object_set_new(d, "name",
					json_string(items[i].name)) ||
		    json_object_set_new(d, "not_after",
					time_json(items[i].not_after_ms)) ||
		    json_object_set_new(d, "serial",
					str_or_null(items[i].serial)) ||
		    json_object_set_new(
			d, "fullchain",
			path_json(live_dir, items[i].name, "fullchain.pem")) ||
		    json_object_set_new(
			d, "privkey",
			path_json(live_dir, items[i].name, "privkey.pem")))
			goto out;
	}
	out = json_dumps(root, JSON_COMPACT);
	if (out && len)
		*len = strlen(out);
out:
	json_decref(arr);
	json_decref(root);
	return out;
}

int64_t engine_batch_retry_ms(unsigned attempt)
{
	int64_t ms = 1000;

	/* 1 s before the 2nd attempt, then 4 s, 16 s: a receiver restarting
	 * gets ~20 s, and a dead one does not hold the next batch long */
	for (unsigned k = 2; k < attempt && ms < 3600 * 1000; k++)
		ms *= 4;
	return ms;
}
