/*
 * jw.c - the small JSON writer, base64 and UTF-8 checks (see jw.h).  Pure
 * code; the buffer belongs to the caller's thread.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		cb_jw_raw(w, ",", 1);
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

static void put_str(struct cb_jw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	cb_jw_raw(w, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[6];

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		cb_jw_raw(w, s + run, i - run);
		run = i + 1;
		esc[0] = '\\';
		switch (ch) {
		case '"':
		case '\\':
			esc[1] = (char)ch;
			cb_jw_raw(w, esc, 2);
			break;
		case '\n':
			cb_jw_raw(w, "\\n", 2);
			break;
		case '\r':
			cb_jw_raw(w, "\\r", 2);
			break;
		case '\t':
			cb_jw_raw(w, "\\t", 2);
			break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			cb_jw_raw(w, esc, 6);
		}
	}
	cb_jw_raw(w, s + run, n - run);
	cb_jw_raw(w, "\"", 1);
}

void cb_jw_key(struct cb_jw *w, const char *key)
{
	sep(w);
	put_str(w, key, strlen(key));
	cb_jw_raw(w, ":", 1);
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
	cb_jw_raw(w, v ? "true" : "false", v ? 4 : 5);
}

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void cb_jw_base64(struct cb_jw *w, const uint8_t *p, size_t n)
{
	size_t out = (n + 2) / 3 * 4, o;
	char *d;

	sep(w);
	if (!grow(w, out + 2))
		return;
	d = w->buf + w->len;
	*d++ = '"';
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*d++ = b64[v >> 18];
		*d++ = b64[(v >> 12) & 63];
		*d++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		*d++ = i + 2 < n ? b64[v & 63] : '=';
	}
	*d++ = '"';
	o = (size_t)(d - (w->buf + w->len));
	w->len += o;
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

size_t cb_jw_utf8_seq(const uint8_t *s, const uint8_t *end)
{
	uint8_t c = s[0];
	size_t k;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		k = 1;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 2;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 3;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - s) <= k)
		return 0;
	for (size_t j = 1; j <= k; j++) {
		if ((s[j] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[j] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond U+10FFFF. */
	if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return k + 1;
}

bool cb_jw_utf8_valid(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = cb_jw_utf8_seq(s + i, s + n);

		if (k == 0)
			return false;
		i += k;
	}
	return true;
}
