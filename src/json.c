/*
 * json.c - the JSON string escaper, UTF-8 decoder, base64 encoder and the
 * append-only writer of json.h.  Pure functions over caller buffers: no
 * allocation, no state, any thread.  Hot path of the irc thread (every chat
 * message is written through here), so the common case - runs of printable
 * ASCII - is copied with one memcpy per run.
 */
#include <string.h>

#include "chatbattle/json.h"

/*
 * Byte classes for the escaper: 0 copy as is (printable ASCII but '"' and
 * '\'), 1 needs an escape (controls, '"', '\'), 2 starts or continues a
 * multi-byte sequence (>= 0x80), decoded with cb_json_utf8_next().
 */
static const unsigned char byte_class[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 '"' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50 '\' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static const char hex_digits[] = "0123456789abcdef";

/* Copies n bytes to dst + o when they fit; the caller adds n to o anyway. */
static inline void put(char *dst, size_t cap, size_t o, const void *src,
		       size_t n)
{
	if (n != 0 && o <= cap && n <= cap - o)
		memcpy(dst + o, src, n);
}

static inline int is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/*
 * Well-formed UTF-8 per Unicode table 3-7: no overlong forms, no
 * surrogates (ED A0..BF), nothing above U+10FFFF (F4 90.., F5..FF).
 */
size_t cb_json_utf8_next(const char *s, size_t len, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned char c = u[0];

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		if (len >= 2 && is_cont(u[1])) {
			*cp = ((uint32_t)(c & 0x1F) << 6) | (u[1] & 0x3F);
			return 2;
		}
	} else if (c >= 0xE0 && c <= 0xEF) {
		unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
		unsigned char hi = c == 0xED ? 0x9F : 0xBF;

		if (len >= 3 && u[1] >= lo && u[1] <= hi && is_cont(u[2])) {
			*cp = ((uint32_t)(c & 0x0F) << 12) |
			      ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
			return 3;
		}
	} else if (c >= 0xF0 && c <= 0xF4) {
		unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
		unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;

		if (len >= 4 && u[1] >= lo && u[1] <= hi && is_cont(u[2]) &&
		    is_cont(u[3])) {
			*cp = ((uint32_t)(c & 0x07) << 18) |
			      ((uint32_t)(u[1] & 0x3F) << 12) |
			      ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
			return 4;
		}
	}
	*cp = 0xFFFD;
	return 1;
}

bool cb_json_utf8_valid(const char *s, size_t len)
{
	size_t i = 0;
	uint32_t cp;

	while (i < len) {
		size_t n;

		if ((unsigned char)s[i] < 0x80) {
			i++;
			continue;
		}
		n = cb_json_utf8_next(s + i, len - i, &cp);
		/* A literal U+FFFD is 3 bytes; the invalid marker is 1. */
		if (n == 1)
			return false;
		i += n;
	}
	return true;
}

size_t cb_json_escape(char *dst, size_t cap, const char *s, size_t len)
{
	static const char replacement[3] = {(char)0xEF, (char)0xBF,
					    (char)0xBD};
	size_t o = 0, i = 0;

	while (i < len) {
		size_t j = i;
		unsigned char c;

		while (j < len && byte_class[(unsigned char)s[j]] == 0)
			j++;
		if (j > i) {
			put(dst, cap, o, s + i, j - i);
			o += j - i;
			i = j;
			if (i == len)
				break;
		}
		c = (unsigned char)s[i];
		if (byte_class[c] == 1) {
			char e[6] = {'\\', 0, 0, 0, 0, 0};
			size_t n = 2;

			switch (c) {
			case '"':
				e[1] = '"';
				break;
			case '\\':
				e[1] = '\\';
				break;
			case '\b':
				e[1] = 'b';
				break;
			case '\f':
				e[1] = 'f';
				break;
			case '\n':
				e[1] = 'n';
				break;
			case '\r':
				e[1] = 'r';
				break;
			case '\t':
				e[1] = 't';
				break;
			default:
				e[1] = 'u';
				e[2] = '0';
				e[3] = '0';
				e[4] = hex_digits[c >> 4];
				e[5] = hex_digits[c & 15];
				n = 6;
				break;
			}
			put(dst, cap, o, e, n);
			o += n;
			i++;
		} else {
			uint32_t cp;
			size_t n = cb_json_utf8_next(s + i, len - i, &cp);

			if (n == 1) {
				put(dst, cap, o, replacement, 3);
				o += 3;
			} else {
				put(dst, cap, o, s + i, n);
				o += n;
			}
			i += n;
		}
	}
	return o;
}

size_t cb_json_base64(char *dst, size_t cap, const char *s, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *u = (const unsigned char *)s;
	size_t need = (len + 2) / 3 * 4, o = 0, i = 0;

	if (need > cap)
		return need;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)u[i] << 16 | (uint32_t)u[i + 1] << 8 |
			     u[i + 2];

		dst[o++] = alphabet[v >> 18];
		dst[o++] = alphabet[(v >> 12) & 63];
		dst[o++] = alphabet[(v >> 6) & 63];
		dst[o++] = alphabet[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)u[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)u[i + 1] << 8;
		dst[o++] = alphabet[v >> 18];
		dst[o++] = alphabet[(v >> 12) & 63];
		dst[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
		dst[o++] = '=';
	}
	return need;
}

void cb_json_w_raw(struct cb_json_w *w, const char *s, size_t n)
{
	if (!w->overflow && n <= w->cap - w->len) {
		if (n != 0)
			memcpy(w->buf + w->len, s, n);
	} else {
		w->overflow = true;
	}
	w->len += n;
}

void cb_json_w_str(struct cb_json_w *w, const char *s, size_t n)
{
	size_t room, need;

	CB_JSON_W_LIT(w, "\"");
	room = w->overflow ? 0 : w->cap - w->len;
	need = cb_json_escape(w->overflow ? w->buf : w->buf + w->len, room, s,
			      n);
	if (need > room)
		w->overflow = true;
	w->len += need;
	CB_JSON_W_LIT(w, "\"");
}

void cb_json_w_int(struct cb_json_w *w, int64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	/* Negate in unsigned arithmetic: INT64_MIN has no positive twin. */
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do {
		tmp[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		tmp[--i] = '-';
	cb_json_w_raw(w, tmp + i, sizeof(tmp) - i);
}

void cb_json_w_bool(struct cb_json_w *w, bool v)
{
	if (v)
		CB_JSON_W_LIT(w, "true");
	else
		CB_JSON_W_LIT(w, "false");
}

void cb_json_w_key(struct cb_json_w *w, const char *key, bool first)
{
	size_t n = strlen(key);

	if (!first)
		CB_JSON_W_LIT(w, ",");
	CB_JSON_W_LIT(w, "\"");
	cb_json_w_raw(w, key, n);
	CB_JSON_W_LIT(w, "\":");
}
