/*
 * acme_dir — the ACME directory (RFC 8555 §7.1.1): the one document that
 * tells the client every other URL, plus the CA's terms, EAB requirement
 * and certificate profiles.
 *
 * Why strict: every URL here is later used as a request target and
 * signed into a JWS "url" header, so a directory that is not what it
 * claims is refused whole rather than half-used. A CA that lacks an
 * optional resource simply omits it; one that sends it with the wrong
 * type is broken, and we say so.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acme/acme.h"

/* No CA needs more; a longer "URL" is junk we should not sign into JWS. */
#define DIR_URL_MAX 2048
/* Profiles are names shown to users and sent in newOrder. */
#define DIR_PROFILE_MAX	     64
#define DIR_PROFILE_NAME_MAX 64

static void set_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (!err || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

/* http:// is allowed because test CAs (Pebble's management side, local
 * mocks) may use it; the driver decides whether to talk plain HTTP. */
static int url_ok(const char *u)
{
	size_t n = strlen(u), skip;
	const char *p;

	if (n > DIR_URL_MAX)
		return 0;
	if (strncasecmp(u, "https://", 8) == 0)
		skip = 8;
	else if (strncasecmp(u, "http://", 7) == 0)
		skip = 7;
	else
		return 0;
	if (n == skip)
		return 0;
	for (p = u; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* A string we may show or log: bounded, no control characters. */
static int text_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DIR_URL_MAX)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/*
 * Copy the URL member key of o into *dst. Absent: -ENOENT (the caller
 * decides whether that is fatal). Present but not a sane URL: -EINVAL.
 */
static int get_url(json_t *o, const char *key, char **dst, char *err,
		   size_t errsz)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return -ENOENT;
	if (!json_is_string(v) || !url_ok(json_string_value(v))) {
		set_err(err, errsz, "directory %s is not an http(s) URL", key);
		return -EINVAL;
	}
	*dst = strdup(json_string_value(v));
	if (!*dst) {
		set_err(err, errsz, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int profile_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DIR_PROFILE_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f)
			return 0;
	return 1;
}

/*
 * meta.profiles (draft-aaron-acme-profiles): names map to descriptions;
 * we keep the names. Odd names are skipped and the list is capped: a
 * profile we cannot name safely is one we will not request.
 */
static int get_profiles(json_t *prof, struct acme_directory *d, char *err,
			size_t errsz)
{
	const char *k;
	json_t *v;
	size_t n = json_object_size(prof);

	if (n == 0)
		return 0;
	if (n > DIR_PROFILE_MAX)
		n = DIR_PROFILE_MAX;
	d->profiles = calloc(n, sizeof(*d->profiles));
	if (!d->profiles)
		goto nomem;
	json_object_foreach(prof, k, v)
	{
		if (d->n_profiles == n)
			break;
		if (!profile_name_ok(k))
			continue;
		d->profiles[d->n_profiles] = strdup(k);
		if (!d->profiles[d->n_profiles])
			goto nomem;
		d->n_profiles++;
	}
	if (d->n_profiles == 0) {
		free(d->profiles);
		d->profiles = NULL;
	}
	return 0;
nomem:
	set_err(err, errsz, "out of memory");
	return -ENOMEM;
}

static int parse_meta(json_t *meta, struct acme_directory *d, char *err,
		      size_t errsz)
{
	json_t *v;

	if (!meta)
		return 0;
	if (!json_is_object(meta)) {
		set_err(err, errsz, "directory meta is not an object");
		return -EINVAL;
	}
	/* Shown to humans only, never fetched, and Pebble sends a data:
	 * URL: any sane string is kept, anything else ignored rather than
	 * failing the directory over a display string. */
	v = json_object_get(meta, "termsOfService");
	if (json_is_string(v) && text_ok(json_string_value(v)) &&
	    !(d->terms_of_service = strdup(json_string_value(v)))) {
		set_err(err, errsz, "out of memory");
		return -ENOMEM;
	}
	v = json_object_get(meta, "externalAccountRequired");
	if (v) {
		if (!json_is_boolean(v)) {
			set_err(err, errsz,
				"directory meta.%s is not a boolean",
				"externalAccountRequired");
			return -EINVAL;
		}
		d->eab_required = json_is_true(v);
	}
	v = json_object_get(meta, "profiles");
	if (v) {
		if (!json_is_object(v)) {
			set_err(err, errsz,
				"directory meta.profiles is not an object");
			return -EINVAL;
		}
		return get_profiles(v, d, err, errsz);
	}
	return 0;
}

int acme_directory_parse(const char *body, size_t len, struct acme_directory *d,
			 char *err, size_t errsz)
{
	static const char *const required[] = {"newNonce", "newAccount",
					       "newOrder"};
	struct acme_directory tmp;
	char **req_dst[3];
	json_t *root = NULL;
	json_error_t jerr;
	size_t i;
	int ret = -EINVAL;

	memset(&tmp, 0, sizeof(tmp));
	set_err(err, errsz, "no error");
	if (!d)
		goto out;
	if (!body || len == 0) {
		set_err(err, errsz, "directory is empty");
		goto out;
	}
	if (len > ACME_MAX_BODY) {
		set_err(err, errsz, "directory is larger than %u bytes",
			ACME_MAX_BODY);
		goto out;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			  &jerr);
	if (!root) {
		set_err(err, errsz, "directory is not JSON: %s (line %d)",
			jerr.text, jerr.line);
		goto out;
	}
	if (!json_is_object(root)) {
		set_err(err, errsz, "directory is not a JSON object");
		goto out;
	}
	req_dst[0] = &tmp.new_nonce;
	req_dst[1] = &tmp.new_account;
	req_dst[2] = &tmp.new_order;
	for (i = 0; i < 3; i++) {
		ret = get_url(root, required[i], req_dst[i], err, errsz);
		if (ret == -ENOENT) {
			set_err(err, errsz, "directory has no %s", required[i]);
			ret = -EINVAL;
		}
		if (ret < 0)
			goto out;
	}
	ret = get_url(root, "revokeCert", &tmp.revoke_cert, err, errsz);
	if (ret < 0 && ret != -ENOENT)
		goto out;
	ret = get_url(root, "keyChange", &tmp.key_change, err, errsz);
	if (ret < 0 && ret != -ENOENT)
		goto out;
	ret = get_url(root, "renewalInfo", &tmp.renewal_info, err, errsz);
	if (ret < 0 && ret != -ENOENT)
		goto out;
	ret = parse_meta(json_object_get(root, "meta"), &tmp, err, errsz);
	if (ret < 0)
		goto out;
	*d = tmp;
	memset(&tmp, 0, sizeof(tmp));
	set_err(err, errsz, "no error");
	ret = 0;
out:
	if (ret < 0 && ret != -ENOMEM)
		ret = -EINVAL;
	if (ret < 0 && d)
		memset(d, 0, sizeof(*d));
	acme_directory_clear(&tmp);
	json_decref(root);
	return ret;
}

void acme_directory_clear(struct acme_directory *d)
{
	size_t i;

	if (!d)
		return;
	free(d->new_nonce);
	free(d->new_account);
	free(d->new_order);
	free(d->revoke_cert);
	free(d->key_change);
	free(d->renewal_info);
	free(d->terms_of_service);
	for (i = 0; i < d->n_profiles; i++)
		free(d->profiles[i]);
	free(d->profiles);
	memset(d, 0, sizeof(*d));
}
