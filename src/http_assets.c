/*
 * http_assets.c - the dashboard's files (web/), embedded at build time by
 * tools/embed.sh into build/gen/assets.h, served at / with Content-Type,
 * ETag (If-None-Match -> 304) and Cache-Control: no-cache (the browser
 * revalidates, which costs one 304 when nothing changed).
 *
 * Only the embedded table is ever looked up, by exact path: no file system
 * access, so no path traversal.  Runs in libmicrohttpd's threads; the table
 * is read-only.
 */
#include <string.h>

#include "http_int.h"

struct asset {
	const char *path;
	const char *ctype;
	const unsigned char *data; /* NUL-terminated beyond len */
	size_t len;
	const char *etag;
};

#include "assets.h"

#define NASSETS (sizeof(assets) / sizeof(assets[0]))

static const struct asset *find(const char *path)
{
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	for (size_t i = 0; i < NASSETS; i++)
		if (strcmp(assets[i].path, path) == 0)
			return &assets[i];
	return NULL;
}

const char *cb_http_asset_data(const char *path, size_t *len)
{
	const struct asset *a = find(path);

	if (a == NULL)
		return NULL;
	*len = a->len;
	return (const char *)a->data;
}

/* A match of etag in an If-None-Match list ("*", or "a", "b"). */
static bool etag_matches(const char *inm, const char *etag)
{
	size_t n = strlen(etag);
	const char *p = inm;

	if (strcmp(inm, "*") == 0)
		return true;
	while ((p = strstr(p, etag)) != NULL) {
		if (p[n] == '\0' || p[n] == ',' || p[n] == ' ')
			return true;
		p += n;
	}
	return false;
}

enum MHD_Result cb_http_asset(struct cb_http_ctx *x)
{
	const struct asset *a = find(x->url);
	const char *inm;
	bool html;

	if (a == NULL)
		return cb_http_error(x, 404, NULL, "no such resource: %s",
				     x->url);
	html = strncmp(a->ctype, "text/html", 9) == 0;
	{
		const char *const hdrs[] = {
			"ETag", a->etag,
			"Cache-Control", "no-cache",
			"X-Content-Type-Options", "nosniff",
			"Referrer-Policy", "no-referrer",
			html ? "Content-Security-Policy" : NULL,
			"default-src 'self'; img-src 'self' data:; "
			"frame-ancestors 'none'; base-uri 'none'",
			NULL};

		inm = MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND,
						  MHD_HTTP_HEADER_IF_NONE_MATCH);
		if (inm != NULL && etag_matches(inm, a->etag))
			return cb_http_send_static(x, 304, NULL, "", 0, hdrs);
		return cb_http_send_static(x, 200, a->ctype, a->data, a->len,
					   hdrs);
	}
}
