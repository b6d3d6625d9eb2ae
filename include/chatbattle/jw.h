/*
 * jw.h - a small JSON writer (src/jw.c) appending to a growable buffer the
 * caller owns and reuses (so steady-state writing allocates nothing), plus
 * base64 decoding.  Escaping, UTF-8 and base64 encoding are json.h's.  Used for ChannelStats and dead-letter records.
 * Pure code, no threads.
 *
 * Separators are automatic: cb_jw_key and values insert the comma when the
 * previous member or element needs one.
 */
#ifndef CHATBATTLE_JW_H
#define CHATBATTLE_JW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cb_jw {
	char *buf;
	size_t len, cap;
	bool oom; /* an append failed; the text is incomplete */
	bool comma; /* the next member/element needs a separator */
};

void cb_jw_reset(struct cb_jw *w);
void cb_jw_release(struct cb_jw *w);
void cb_jw_raw(struct cb_jw *w, const char *s, size_t n);
/* cb_jw_raw and cb_jw_str of a string literal, its length counted by the
 * compiler ("" lit "" refuses anything but a literal). */
#define CB_JW_LIT(w, lit) cb_jw_raw((w), "" lit "", sizeof(lit) - 1)
#define CB_JW_STR_LIT(w, lit) cb_jw_str((w), "" lit "", sizeof(lit) - 1)
/* Opening and closing brackets: "{", "}", "[", "]". */
void cb_jw_open(struct cb_jw *w, char c);
void cb_jw_close(struct cb_jw *w, char c);
/* A member name ("key":) of the current object. */
void cb_jw_key(struct cb_jw *w, const char *key);
/* Values (after a key, or as array elements). */
void cb_jw_str(struct cb_jw *w, const char *s, size_t n);
void cb_jw_int(struct cb_jw *w, int64_t v);
void cb_jw_double(struct cb_jw *w, double v);
void cb_jw_bool(struct cb_jw *w, bool v);
/* A string value of the bytes as base64 (RFC 4648, padded). */
void cb_jw_base64(struct cb_jw *w, const uint8_t *p, size_t n);

/* Decodes base64 text; out must hold n / 4 * 3 bytes.  Returns the decoded
 * length, or -1 when the text is not padded base64. */
long cb_jw_base64_decode(const char *s, size_t n, uint8_t *out);

#endif
