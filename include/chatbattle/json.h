/*
 * json.h - a small, fast JSON writer into a caller's buffer (module "json",
 * src/json.c), for hot paths where building a jansson tree per record would
 * cost a malloc per field.  No allocation, no global state, any thread.
 *
 * Strings: '"' and '\' are escaped, control characters U+0000..U+001F
 * become \b \f \n \r \t or \u00XX, everything else valid UTF-8 is copied
 * as is (U+007F and U+2028/U+2029 included: valid JSON).  Every byte that
 * does not start a well-formed UTF-8 sequence (stray continuation bytes,
 * overlong forms, surrogates, > U+10FFFF, truncated sequences) becomes one
 * U+FFFD, written as its 3 UTF-8 bytes: the output is always valid UTF-8
 * and valid JSON, whatever the input.
 */
#ifndef CHATBATTLE_JSON_H
#define CHATBATTLE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Writes s[0..len) escaped as the inside of a JSON string (no quotes) into
 * dst, at most cap bytes (no NUL added).  Returns the number of bytes the
 * whole escaped form needs (at most 6 * len): when that is > cap, dst holds
 * a prefix and the caller should grow or give up (snprintf style).
 */
size_t cb_json_escape(char *dst, size_t cap, const char *s, size_t len);

/*
 * Decodes the UTF-8 sequence at s[0..len) (len > 0): returns its length in
 * bytes (1..4) and puts the code point in *cp; an invalid or truncated
 * sequence gives length 1 and U+FFFD.  The one decoder of the project: the
 * JSON writer and the emote code-point counting agree through it.
 */
size_t cb_json_utf8_next(const char *s, size_t len, uint32_t *cp);

/* True when s[0..len) is entirely well-formed UTF-8. */
bool cb_json_utf8_valid(const char *s, size_t len);

/* Standard base64 (RFC 4648, '=' padded) of s into dst; returns the length
 * needed (4 * ceil(len / 3)); writes only when it fits in cap. */
size_t cb_json_base64(char *dst, size_t cap, const char *s, size_t len);

/*
 * An append-only writer.  Once something does not fit, overflow is set,
 * later writes do nothing, and len keeps counting what would be needed.
 * cb_json_w_*() never write a NUL.
 */
struct cb_json_w {
	char *buf;
	size_t cap;
	size_t len;
	bool overflow;
};

static inline void cb_json_w_init(struct cb_json_w *w, char *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
}

/* Appends n raw bytes (JSON punctuation, keys known to need no escaping). */
void cb_json_w_raw(struct cb_json_w *w, const char *s, size_t n);
/* cb_json_w_raw of a string literal, its length counted by the compiler
 * ("" lit "" refuses anything but a literal). */
#define CB_JSON_W_LIT(w, lit) cb_json_w_raw((w), "" lit "", sizeof(lit) - 1)
/* Appends a quoted, escaped JSON string. */
void cb_json_w_str(struct cb_json_w *w, const char *s, size_t n);
/* Appends a decimal integer. */
void cb_json_w_int(struct cb_json_w *w, int64_t v);
/* Appends true or false. */
void cb_json_w_bool(struct cb_json_w *w, bool v);
/* Appends ,"key": (or "key": when first) - key is a plain ASCII literal. */
void cb_json_w_key(struct cb_json_w *w, const char *key, bool first);

#endif
