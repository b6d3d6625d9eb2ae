/*
 * aggjson.c - the aggregator's ChatMessage parser and message-id UUIDs (see
 * aggjson.h).  Pure code, called by the aggregator thread for every input
 * record, so it allocates nothing: it validates the whole value in one
 * pass, decodes the few string fields it needs into the caller's scratch
 * buffer, and skips the rest.
 *
 * Validation follows RFC 8259: one value, no trailing bytes besides white
 * space, UTF-8 text, escapes as listed, no raw control characters in
 * strings.  A \u escape of a lone surrogate decodes to U+FFFD.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatbattle/aggjson.h"
#include "chatbattle/err.h"
#include "chatbattle/json.h"
#include "chatbattle/jw.h"

#define MAX_DEPTH 64

struct p {
	const uint8_t *s, *end;
	uint8_t *out, *out_end; /* scratch cursor */
	const char *why;
};

static bool fail(struct p *p, const char *why)
{
	if (p->why == NULL)
		p->why = why;
	return false;
}

static void ws(struct p *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' ||
				 *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool hex4(struct p *p, uint32_t *v)
{
	*v = 0;
	if (p->end - p->s < 4)
		return fail(p, "bad \\u escape");
	for (int i = 0; i < 4; i++) {
		int h = hexval(p->s[i]);

		if (h < 0)
			return fail(p, "bad \\u escape");
		*v = *v << 4 | (uint32_t)h;
	}
	p->s += 4;
	return true;
}

static void put_utf8(uint8_t **o, uint32_t cp)
{
	uint8_t *d = *o;

	if (cp < 0x80) {
		*d++ = (uint8_t)cp;
	} else if (cp < 0x800) {
		*d++ = (uint8_t)(0xc0 | cp >> 6);
		*d++ = (uint8_t)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*d++ = (uint8_t)(0xe0 | cp >> 12);
		*d++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		*d++ = (uint8_t)(0x80 | (cp & 0x3f));
	} else {
		*d++ = (uint8_t)(0xf0 | cp >> 18);
		*d++ = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		*d++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		*d++ = (uint8_t)(0x80 | (cp & 0x3f));
	}
	*o = d;
}

/* A string at p->s (the opening quote).  With dst, decodes it into the
 * scratch buffer; else only validates it. */
static bool string(struct p *p, struct cb_jstr *dst)
{
	uint8_t *o = dst ? p->out : NULL;

	p->s++; /* the quote */
	for (;;) {
		const uint8_t *run = p->s;
		uint8_t c;

		/* The plain ASCII run up to a quote, backslash, control or
		 * non-ASCII byte. */
		while (p->s < p->end && *p->s >= 0x20 && *p->s < 0x80 &&
		       *p->s != '"' && *p->s != '\\')
			p->s++;
		if (o != NULL) {
			memcpy(o, run, (size_t)(p->s - run));
			o += p->s - run;
		}
		if (p->s >= p->end)
			return fail(p, "unterminated string");
		c = *p->s;
		if (c == '"') {
			p->s++;
			break;
		}
		if (c < 0x20)
			return fail(p, "control character in a string");
		if (c >= 0x80) {
			uint32_t cp;
			size_t k = cb_json_utf8_next(
				(const char *)p->s, (size_t)(p->end - p->s),
				&cp);

			/* An invalid sequence decodes as one byte of U+FFFD;
			 * a real U+FFFD takes three. */
			if (k == 1)
				return fail(p, "invalid UTF-8");
			if (o != NULL) {
				memcpy(o, p->s, k);
				o += k;
			}
			p->s += k;
			continue;
		}
		/* A backslash escape. */
		if (p->end - p->s < 2)
			return fail(p, "unterminated string");
		c = p->s[1];
		p->s += 2;
		if (c == 'u') {
			uint32_t cp, lo;

			if (!hex4(p, &cp))
				return false;
			if (cp >= 0xd800 && cp <= 0xdbff && p->end - p->s >= 6 &&
			    p->s[0] == '\\' && p->s[1] == 'u') {
				const uint8_t *save = p->s;

				p->s += 2;
				if (!hex4(p, &lo))
					return false;
				if (lo >= 0xdc00 && lo <= 0xdfff)
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					     (lo - 0xdc00);
				else
					p->s = save; /* lone high surrogate */
			}
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;
			if (o != NULL)
				put_utf8(&o, cp);
			continue;
		}
		switch (c) {
		case '"':
		case '\\':
		case '/':
			break;
		case 'b':
			c = '\b';
			break;
		case 'f':
			c = '\f';
			break;
		case 'n':
			c = '\n';
			break;
		case 'r':
			c = '\r';
			break;
		case 't':
			c = '\t';
			break;
		default:
			return fail(p, "bad escape in a string");
		}
		if (o != NULL)
			*o++ = c;
	}
	if (dst != NULL) {
		dst->p = (const char *)p->out;
		dst->len = (size_t)(o - p->out);
		p->out = o;
	}
	return true;
}

/* A number at p->s; *start and *len give its text. */
static bool number(struct p *p, const uint8_t **start, size_t *len,
		   bool *integer)
{
	const uint8_t *s = p->s;

	*integer = true;
	if (s < p->end && *s == '-')
		s++;
	if (s >= p->end || *s < '0' || *s > '9')
		return fail(p, "bad number");
	if (*s == '0')
		s++;
	else
		while (s < p->end && *s >= '0' && *s <= '9')
			s++;
	if (s < p->end && *s == '.') {
		*integer = false;
		s++;
		if (s >= p->end || *s < '0' || *s > '9')
			return fail(p, "bad number");
		while (s < p->end && *s >= '0' && *s <= '9')
			s++;
	}
	if (s < p->end && (*s == 'e' || *s == 'E')) {
		*integer = false;
		s++;
		if (s < p->end && (*s == '+' || *s == '-'))
			s++;
		if (s >= p->end || *s < '0' || *s > '9')
			return fail(p, "bad number");
		while (s < p->end && *s >= '0' && *s <= '9')
			s++;
	}
	*start = p->s;
	*len = (size_t)(s - p->s);
	p->s = s;
	return true;
}

/* Number text to int64 (fractions cut).  False when out of range. */
static bool to_int64(const uint8_t *s, size_t n, bool integer, int64_t *v)
{
	char buf[64];
	double d;

	if (integer && n <= 18) {
		bool neg = s[0] == '-';
		int64_t x = 0;

		for (size_t i = neg; i < n; i++)
			x = x * 10 + (s[i] - '0');
		*v = neg ? -x : x;
		return true;
	}
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	d = strtod(buf, NULL);
	if (!(d > -9.2e18 && d < 9.2e18))
		return false;
	*v = (int64_t)d;
	return true;
}

static bool literal(struct p *p, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(p->end - p->s) < n || memcmp(p->s, word, n) != 0)
		return fail(p, "invalid literal");
	p->s += n;
	return true;
}

static bool value(struct p *p, int depth);

static bool container(struct p *p, int depth)
{
	bool obj = *p->s == '{';
	char close = obj ? '}' : ']';

	if (depth >= MAX_DEPTH)
		return fail(p, "nested too deeply");
	p->s++;
	ws(p);
	if (p->s < p->end && *p->s == close) {
		p->s++;
		return true;
	}
	for (;;) {
		if (obj) {
			ws(p);
			if (p->s >= p->end || *p->s != '"')
				return fail(p, "expected a member name");
			if (!string(p, NULL))
				return false;
			ws(p);
			if (p->s >= p->end || *p->s != ':')
				return fail(p, "expected ':'");
			p->s++;
		}
		if (!value(p, depth + 1))
			return false;
		ws(p);
		if (p->s < p->end && *p->s == ',') {
			p->s++;
			continue;
		}
		if (p->s < p->end && *p->s == close) {
			p->s++;
			return true;
		}
		return fail(p, obj ? "expected ',' or '}'"
				   : "expected ',' or ']'");
	}
}

/* Validates (and skips) any value. */
static bool value(struct p *p, int depth)
{
	const uint8_t *ns;
	size_t nl;
	bool integer;

	ws(p);
	if (p->s >= p->end)
		return fail(p, "unexpected end");
	switch (*p->s) {
	case '{':
	case '[':
		return container(p, depth);
	case '"':
		return string(p, NULL);
	case 't':
		return literal(p, "true");
	case 'f':
		return literal(p, "false");
	case 'n':
		return literal(p, "null");
	default:
		return number(p, &ns, &nl, &integer);
	}
}

/* A text field: a string (decoded), a number (its text), or null; why is
 * the reason when it is something else. */
static bool text_field(struct p *p, struct cb_jstr *dst, const char *why)
{
	ws(p);
	if (p->s < p->end && *p->s == '"')
		return string(p, dst);
	if (p->s < p->end && (*p->s == '-' || (*p->s >= '0' && *p->s <= '9'))) {
		const uint8_t *ns;
		bool integer;

		if (!number(p, &ns, &dst->len, &integer))
			return false;
		dst->p = (const char *)ns;
		return true;
	}
	if (p->s < p->end && *p->s == 'n') {
		dst->p = NULL;
		dst->len = 0;
		return literal(p, "null");
	}
	return fail(p, why);
}

static bool timestamp_field(struct p *p, struct cb_aggjson_msg *m)
{
	const uint8_t *ns;
	size_t nl;
	bool integer;

	ws(p);
	if (p->s < p->end && *p->s == '"') {
		/* A digit string (tmi.js passes tmi-sent-ts on as text). */
		struct cb_jstr t;
		uint8_t *mark = p->out;

		if (!string(p, &t))
			return false;
		p->out = mark;
		if (t.len == 0 || t.len > 18)
			return fail(p, "timestamp is not epoch milliseconds");
		for (size_t i = 0; i < t.len; i++)
			if (t.p[i] < '0' || t.p[i] > '9')
				return fail(p, "timestamp is not epoch "
					       "milliseconds");
		if (!to_int64((const uint8_t *)t.p, t.len, true,
			      &m->timestamp_ms))
			return fail(p, "timestamp is not epoch milliseconds");
		m->has_timestamp = true;
		return true;
	}
	if (p->s < p->end && *p->s == 'n') {
		m->has_timestamp = false;
		return literal(p, "null");
	}
	if (p->s >= p->end || !(*p->s == '-' || (*p->s >= '0' && *p->s <= '9')))
		return fail(p, "timestamp is not epoch milliseconds");
	if (!number(p, &ns, &nl, &integer))
		return false;
	if (!to_int64(ns, nl, integer, &m->timestamp_ms))
		return fail(p, "timestamp out of range");
	m->has_timestamp = true;
	return true;
}

static bool received_field(struct p *p, struct cb_aggjson_msg *m)
{
	const uint8_t *ns;
	size_t nl;
	bool integer;

	ws(p);
	if (p->s < p->end && (*p->s == '-' || (*p->s >= '0' && *p->s <= '9'))) {
		if (!number(p, &ns, &nl, &integer))
			return false;
		if (!to_int64(ns, nl, integer, &m->received_at_ms))
			m->received_at_ms = 0;
		return true;
	}
	return value(p, 1);
}

/* "emotes": an array; its strings become the emote block, anything else
 * is validated and skipped. */
static bool emotes_field(struct p *p, struct cb_aggjson_msg *m)
{
	uint8_t *block = p->out;
	uint16_t n = 0;

	ws(p);
	if (p->s >= p->end || *p->s != '[')
		return value(p, 1);
	p->s++;
	ws(p);
	if (p->s < p->end && *p->s == ']') {
		p->s++;
		goto done;
	}
	for (;;) {
		ws(p);
		if (p->s < p->end && *p->s == '"' && n < UINT16_MAX) {
			struct cb_jstr name;
			uint8_t *lenp = p->out;

			/* The two length bytes take the place of the quotes. */
			p->out += 2;
			if (!string(p, &name))
				return false;
			if (name.len > UINT16_MAX)
				name.len = UINT16_MAX;
			lenp[0] = (uint8_t)name.len;
			lenp[1] = (uint8_t)(name.len >> 8);
			p->out = lenp + 2 + name.len;
			n++;
		} else if (!value(p, 2)) {
			return false;
		}
		ws(p);
		if (p->s < p->end && *p->s == ',') {
			p->s++;
			continue;
		}
		if (p->s < p->end && *p->s == ']') {
			p->s++;
			break;
		}
		return fail(p, "expected ',' or ']'");
	}
done:
	m->emotes = block;
	m->emote_count = n;
	m->emotes_len = (uint32_t)(p->out - block);
	return true;
}

static bool member(struct p *p, const char *key, struct cb_aggjson_msg *m)
{
	switch (key[0]) {
	case 'c':
		if (strcmp(key, "channel_id") == 0)
			return text_field(p, &m->channel_id,
					  "channel_id is not a string");
		break;
	case 'e':
		if (strcmp(key, "emotes") == 0)
			return emotes_field(p, m);
		break;
	case 'm':
		if (strcmp(key, "message") == 0)
			return text_field(p, &m->message,
					  "message is not a string");
		if (strcmp(key, "message_id") == 0)
			return text_field(p, &m->message_id,
					  "message_id is not a string");
		break;
	case 'r':
		if (strcmp(key, "received_at") == 0)
			return received_field(p, m);
		break;
	case 't':
		if (strcmp(key, "timestamp") == 0)
			return timestamp_field(p, m);
		if (strcmp(key, "type") == 0)
			return text_field(p, &m->type,
					  "type is not a string");
		break;
	case 'u':
		if (strcmp(key, "user_id") == 0)
			return text_field(p, &m->user_id,
					  "user_id is not a string");
		if (strcmp(key, "username") == 0)
			return text_field(p, &m->username,
					  "username is not a string");
		break;
	}
	return value(p, 1);
}

int cb_aggjson_parse(const char *json, size_t len, struct cb_aggjson_msg *out,
		     uint8_t *scratch, size_t scratch_size, char *errstr,
		     size_t errstr_size)
{
	struct p p = {.s = (const uint8_t *)json,
		      .end = (const uint8_t *)json + len,
		      .out = scratch,
		      .out_end = scratch + scratch_size};
	char key[16];
	struct cb_jstr k;
	uint8_t *mark;
	size_t klen;

	memset(out, 0, sizeof(*out));
	if (scratch_size < len)
		return cb_seterr(errstr, errstr_size, CB_E_INVAL,
				 "parser scratch smaller than the input");
	ws(&p);
	if (p.s >= p.end || *p.s != '{') {
		if (p.s < p.end && value(&p, 0)) {
			ws(&p);
			if (p.s == p.end)
				return cb_seterr(errstr, errstr_size,
						 CB_E_PARSE,
						 "value is not a JSON object");
		}
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "value is not JSON");
	}
	p.s++;
	ws(&p);
	if (p.s < p.end && *p.s == '}') {
		p.s++;
		goto end;
	}
	for (;;) {
		ws(&p);
		if (p.s >= p.end || *p.s != '"') {
			fail(&p, "expected a member name");
			goto bad;
		}
		/* Keys are decoded (escapes allowed) into scratch space that
		 * is given back right after. */
		mark = p.out;
		if (!string(&p, &k))
			goto bad;
		klen = k.len < sizeof(key) ? k.len : 0;
		memcpy(key, k.p, klen);
		key[klen] = '\0';
		p.out = mark;
		ws(&p);
		if (p.s >= p.end || *p.s != ':') {
			fail(&p, "expected ':'");
			goto bad;
		}
		p.s++;
		if (!member(&p, key, out))
			goto bad;
		ws(&p);
		if (p.s < p.end && *p.s == ',') {
			p.s++;
			continue;
		}
		if (p.s < p.end && *p.s == '}') {
			p.s++;
			break;
		}
		fail(&p, "expected ',' or '}'");
		goto bad;
	}
end:
	ws(&p);
	if (p.s != p.end) {
		fail(&p, "trailing bytes after the value");
		goto bad;
	}
	return 0;
bad:
	return cb_seterr(errstr, errstr_size, CB_E_PARSE,
			 "value is not JSON: %s at byte %zu", p.why,
			 (size_t)(p.s - (const uint8_t *)json));
}
