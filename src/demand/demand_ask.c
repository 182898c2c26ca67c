/*
 * demand_ask — asking the platform whether a name may get a certificate:
 * GET ASK?domain=NAME, a 2xx status allows (the body is not read for
 * meaning). libcurl's multi interface runs the asks in flight on the
 * decider's thread; curl_multi_poll waits for them and for new work
 * (curl_multi_wakeup from the front's workers).
 *
 * The URL may hold a token in its query or user-info: it is never logged,
 * and errors are reported with curl_easy_strerror only (no URL in them).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "demand/demand.h"

#define BODY_MAX (64 * 1024)
#define URL_MAX	 4096

int demand_ask_url(const char *base, const char *name, char *out, size_t outsz)
{
	size_t blen, i;
	int n;

	if (!base || !*base || !name || !*name ||
	    strlen(name) > DEMAND_NAME_MAX)
		return -EINVAL;
	for (i = 0; name[i]; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return -EINVAL; /* would need escaping: not an SNI name
					 */
	}
	blen = strcspn(base, "#");
	n = snprintf(
	    out, outsz, "%.*s%sdomain=%s", (int)blen, base,
	    memchr(base, '?', blen)
		? (blen && base[blen - 1] != '?' && base[blen - 1] != '&' ? "&"
									  : "")
		: "?",
	    name);
	return n < 0 || (size_t)n >= outsz ? -ENOSPC : 0;
}

struct ask {
	struct ask *prev, *next; /* demand_asker.asks */
	CURL *h;
	size_t body;
	char name[DEMAND_NAME_MAX + 1];
};

struct demand_asker {
	CURLM *m;
	char *base;
	size_t active;
	struct ask *asks; /* in flight (curl_multi_get_handles is 8.4+) */
};

int demand_asker_set_base(struct demand_asker *a, const char *base)
{
	char *nb = NULL;

	if (base && *base && !(nb = strdup(base)))
		return -ENOMEM;
	if (a->base) {
		memset(a->base, 0, strlen(a->base));
		free(a->base);
	}
	a->base = nb; /* asks in flight keep the URL they were made with */
	return 0;
}

struct demand_asker *demand_asker_new(const char *base)
{
	struct demand_asker *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT); /* refcounted; thread-safe
						  since 7.84 */
	a->m = curl_multi_init();
	if (!a->m || (base && *base && !(a->base = strdup(base)))) {
		demand_asker_free(a);
		return NULL;
	}
	curl_multi_setopt(a->m, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			  (long)DEMAND_ASK_MAX);
	return a;
}

static void ask_end(struct demand_asker *a, struct ask *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		a->asks = k->next;
	if (k->next)
		k->next->prev = k->prev;
	curl_multi_remove_handle(a->m, k->h);
	curl_easy_cleanup(k->h);
	free(k);
	a->active--;
}

void demand_asker_free(struct demand_asker *a)
{
	if (!a)
		return;
	while (a->asks)
		ask_end(a, a->asks);
	if (a->m)
		curl_multi_cleanup(a->m);
	if (a->base) {
		/* the URL may hold a token */
		memset(a->base, 0, strlen(a->base));
		free(a->base);
	}
	free(a);
	curl_global_cleanup();
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct ask *k = ud;
	size_t n = size * nmemb;

	k->body += n;
	return k->body > BODY_MAX ? 0 : n; /* 0 aborts: a huge answer */
}

int demand_asker_start(struct demand_asker *a, const char *name)
{
	char url[URL_MAX];
	struct ask *k;
	int rc;

	if (!a->base)
		return -ENOTSUP;
	if (a->active >= DEMAND_ASK_MAX)
		return -EAGAIN;
	rc = demand_ask_url(a->base, name, url, sizeof(url));
	if (rc < 0)
		return rc;
	k = calloc(1, sizeof(*k));
	if (!k || !(k->h = curl_easy_init())) {
		free(k);
		return -ENOMEM;
	}
	snprintf(k->name, sizeof(k->name), "%s", name);
	curl_easy_setopt(k->h, CURLOPT_URL, url);
	curl_easy_setopt(k->h, CURLOPT_PRIVATE, k);
	curl_easy_setopt(k->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(k->h, CURLOPT_TIMEOUT_MS, (long)DEMAND_ASK_TIMEOUT_MS);
	curl_easy_setopt(k->h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(k->h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(k->h, CURLOPT_USERAGENT, "certherd-on-demand");
	curl_easy_setopt(k->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(k->h, CURLOPT_WRITEDATA, k);
	memset(url, 0, sizeof(url));
	if (curl_multi_add_handle(a->m, k->h) != CURLM_OK) {
		curl_easy_cleanup(k->h);
		free(k);
		return -ENOMEM;
	}
	k->next = a->asks;
	if (k->next)
		k->next->prev = k;
	a->asks = k;
	a->active++;
	return 0;
}

size_t demand_asker_active(const struct demand_asker *a)
{
	return a->active;
}

int demand_asker_poll(struct demand_asker *a, int timeout_ms, demand_ask_cb cb,
		      void *ctx)
{
	CURLMsg *msg;
	int running, left;

	if (curl_multi_perform(a->m, &running) != CURLM_OK ||
	    curl_multi_poll(a->m, NULL, 0, timeout_ms, NULL) != CURLM_OK ||
	    curl_multi_perform(a->m, &running) != CURLM_OK)
		return -EIO;
	while ((msg = curl_multi_info_read(a->m, &left))) {
		struct ask *k = NULL;
		long status = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
				  (char **)&k);
		if (msg->data.result == CURLE_OK)
			curl_easy_getinfo(msg->easy_handle,
					  CURLINFO_RESPONSE_CODE, &status);
		cb(ctx, k->name, status,
		   msg->data.result == CURLE_OK
		       ? ""
		       : curl_easy_strerror(msg->data.result));
		ask_end(a, k);
	}
	return 0;
}

void demand_asker_wakeup(struct demand_asker *a)
{
	curl_multi_wakeup(a->m);
}
