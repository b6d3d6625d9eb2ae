/*
 * jw.c - the small JSON writer, base64 and UTF-8 checks (see jw.h).  Pure
 * code; the buffer belongs to the caller's thread.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatbattle/json.h"
#include "chatbattle/jw.h"

void cb_jw_reset(struct cb_jw *w)
{
	w->len = 0;
	w->oom = false;
	w->comma = false;
}

void cb_jw_release(struct cb_jw *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static bool grow(struct cb_jw *w, size_t more)
{
	size_t cap;
	char *b;

	if (w->oom)
		return false;
	if (w->len + more + 1 <= w->cap)
		return true;
	cap = w->cap ? w->cap : 1024;
	while (cap < w->len + more + 1)
		cap *= 2;
	b = realloc(w->buf, cap);
	if (b == NULL) {
		w->oom = true;
		return false;
	}
	w->buf = b;
	w->cap = cap;
	return true;
}

void cb_jw_raw(struct cb_jw *w, const char *s, size_t n)
{
	if (!grow(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void sep(struct cb_jw *w)
{
	if (w->comma)
		CB_JW_LIT(w, ",");
	w->comma = true;
}

void cb_jw_open(struct cb_jw *w, char c)
{
	sep(w);
	cb_jw_raw(w, &c, 1);
	w->comma = false;
}

void cb_jw_close(struct cb_jw *w, char c)
{
	cb_jw_raw(w, &c, 1);
	w->comma = true;
}

/* A quoted JSON string, escaped by the project's one escaper (json.h):
 * control characters as \u escapes, invalid UTF-8 as U+FFFD. */
static void put_str(struct cb_jw *w, const char *s, size_t n)
{
	size_t need = cb_json_escape(NULL, 0, s, n);

	if (!grow(w, need + 2))
		return;
	w->buf[w->len++] = '"';
	w->len += cb_json_escape(w->buf + w->len, need, s, n);
	w->buf[w->len++] = '"';
	w->buf[w->len] = '\0';
}

void cb_jw_key(struct cb_jw *w, const char *key)
{
	sep(w);
	put_str(w, key, strlen(key));
	CB_JW_LIT(w, ":");
	w->comma = false;
}

void cb_jw_str(struct cb_jw *w, const char *s, size_t n)
{
	sep(w);
	put_str(w, s, n);
}

void cb_jw_int(struct cb_jw *w, int64_t v)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%" PRId64, v);

	sep(w);
	cb_jw_raw(w, b, (size_t)n);
}

void cb_jw_double(struct cb_jw *w, double v)
{
	char b[32];
	int n;

	/* JSON has no NaN or infinity. */
	if (!isfinite(v))
		v = 0;
	n = snprintf(b, sizeof(b), "%.4g", v);
	sep(w);
	cb_jw_raw(w, b, (size_t)n);
}

void cb_jw_bool(struct cb_jw *w, bool v)
{
	sep(w);
	if (v)
		CB_JW_LIT(w, "true");
	else
		CB_JW_LIT(w, "false");
}

void cb_jw_base64(struct cb_jw *w, const uint8_t *p, size_t n)
{
	size_t out = cb_json_base64(NULL, 0, (const char *)p, n);

	sep(w);
	if (!grow(w, out + 2))
		return;
	w->buf[w->len++] = '"';
	w->len += cb_json_base64(w->buf + w->len, out, (const char *)p, n);
	w->buf[w->len++] = '"';
	w->buf[w->len] = '\0';
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long cb_jw_base64_decode(const char *s, size_t n, uint8_t *out)
{
	long o = 0;

	if (n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int pad = 0;

		for (int k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
			} else if (pad > 0 || (v[k] = b64val(s[i + k])) < 0) {
				return -1;
			}
		}
		uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)v[2] << 6 | (uint32_t)v[3];
		out[o++] = (uint8_t)(x >> 16);
		if (pad < 2)
			out[o++] = (uint8_t)(x >> 8);
		if (pad < 1)
			out[o++] = (uint8_t)x;
	}
	return o;
}
