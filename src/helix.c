/*
 * helix.c - the pure parts of the Helix client (see helix.h): request
 * targets, answer parsing with jansson, and the rate-limit arithmetic.
 * Used by the viewers thread and by `chatbattle check`; no state.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chatbattle/err.h"
#include "chatbattle/helix.h"

int cb_helix_streams_target(const char *path, const char (*logins)[26],
			    size_t n, char *out, size_t size)
{
	size_t plen = strlen(path), o;
	int w;

	if (n == 0 || n > CB_HELIX_LOGINS_MAX)
		return CB_E_INVAL;
	while (plen > 0 && path[plen - 1] == '/')
		plen--;
	w = snprintf(out, size, "%.*s/helix/streams", (int)plen, path);
	if (w < 0 || (size_t)w >= size)
		return CB_E_TOOBIG;
	o = (size_t)w;
	for (size_t i = 0; i < n; i++) {
		/* Logins are [a-z0-9_]: nothing to percent-encode. */
		w = snprintf(out + o, size - o, "%cuser_login=%s",
			     i == 0 ? '?' : '&', logins[i]);
		if (w < 0 || (size_t)w >= size - o)
			return CB_E_TOOBIG;
		o += (size_t)w;
	}
	return (int)o;
}

int cb_helix_parse_streams(const char *body, size_t len,
			   struct cb_helix_stream *out, size_t max, size_t *n,
			   char *errstr, size_t errstr_size)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr), *data;
	int err = 0;

	*n = 0;
	if (root == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_PARSE,
				"streams answer is not JSON: %s", jerr.text);
		goto out;
	}
	data = json_object_get(root, "data");
	if (!json_is_array(data)) {
		err = cb_seterr(errstr, errstr_size, CB_E_PARSE,
				"streams answer has no \"data\" array");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(data) && *n < max; i++) {
		json_t *e = json_array_get(data, i);
		json_t *login = json_object_get(e, "user_login");
		json_t *count = json_object_get(e, "viewer_count");
		const char *s;
		size_t k, sl;

		if (!json_is_string(login) || !json_is_integer(count) ||
		    json_integer_value(count) < 0)
			continue;
		s = json_string_value(login);
		sl = json_string_length(login);
		if (sl == 0 || sl > 25)
			continue;
		for (k = 0; k < sl; k++) {
			char c = s[k];

			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if (!((c >= 'a' && c <= 'z') ||
			      (c >= '0' && c <= '9') || c == '_'))
				break;
			out[*n].login[k] = c;
		}
		if (k < sl)
			continue;
		out[*n].login[sl] = '\0';
		out[*n].viewers = (int64_t)json_integer_value(count);
		(*n)++;
	}
out:
	json_decref(root);
	return err;
}

int cb_helix_parse_token(const char *body, size_t len, char *token,
			 size_t size, int64_t *expires_in_s, char *errstr,
			 size_t errstr_size)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr), *v;
	int err = 0;

	token[0] = '\0';
	*expires_in_s = 0;
	if (root == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_PARSE,
				"token answer is not JSON");
		goto out;
	}
	v = json_object_get(root, "access_token");
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) >= size) {
		err = cb_seterr(errstr, errstr_size, CB_E_PARSE,
				"token answer has no usable access_token");
		goto out;
	}
	memcpy(token, json_string_value(v), json_string_length(v) + 1);
	v = json_object_get(root, "expires_in");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		*expires_in_s = (int64_t)json_integer_value(v);
out:
	json_decref(root);
	return err;
}

/* A header value as a non-negative integer; false when absent or not one. */
static bool header_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL)
		return false;
	while (*s == ' ')
		s++;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || errno != 0 || v < 0)
		return false;
	while (*end == ' ')
		end++;
	if (*end != '\0')
		return false;
	*out = v;
	return true;
}

int64_t cb_helix_wait_ms(int status, const char *remaining, const char *reset,
			 int64_t now_ms)
{
	int64_t left, reset_s, wait;
	bool have_reset = header_int(reset, &reset_s);

	if (status == 429) {
		if (!have_reset)
			wait = 60000;
		else if (reset_s > (CB_HELIX_WAIT_MAX_MS + now_ms) / 1000 + 1)
			wait = CB_HELIX_WAIT_MAX_MS;
		else
			wait = reset_s * 1000 - now_ms;
		if (wait < CB_HELIX_WAIT_429_MIN_MS)
			wait = CB_HELIX_WAIT_429_MIN_MS;
	} else if (header_int(remaining, &left) && left == 0 && have_reset) {
		if (reset_s > (CB_HELIX_WAIT_MAX_MS + now_ms) / 1000 + 1)
			wait = CB_HELIX_WAIT_MAX_MS;
		else
			wait = reset_s * 1000 - now_ms;
		if (wait < 0)
			wait = 0;
	} else {
		wait = 0;
	}
	return wait > CB_HELIX_WAIT_MAX_MS ? CB_HELIX_WAIT_MAX_MS : wait;
}
