/*
 * irc_msg.c - the pure IRCv3 line parser (cb_irc_*) and the Twitch
 * semantics on top of it (cb_twitch_*).  No I/O, no allocation, no clocks,
 * no global state: the irc thread calls it for every line it reads, tests
 * and the fuzzer call it on anything.  Everything it returns points into
 * the caller's line buffer, which it modifies in place (tag unescaping,
 * upper-casing the command).
 *
 * Policies (docs/irc.md): strict on structure (empty prefix, missing or
 * malformed command, tags or prefix without a following space, raw NUL/CR/LF
 * are rejected), lenient on spaces between parameters (each extra space
 * makes an empty parameter, as go-twitch-irc does, flagged so that a strict
 * caller can still refuse); emote ranges are Unicode code points, clamped to
 * the text and marked when out of range; a malformed emotes tag yields no
 * emotes at all.
 */
#include <string.h>

#include "chatbattle/err.h"
#include "chatbattle/irc_msg.h"
#include "chatbattle/json.h"

static const struct cb_irc_str absent = {NULL, 0};

static inline struct cb_irc_str span(const char *p, size_t len)
{
	struct cb_irc_str s = {p, len};

	return s;
}

static inline bool str_eq(struct cb_irc_str s, const char *lit, size_t n)
{
	return s.p != NULL && s.len == n && memcmp(s.p, lit, n) == 0;
}

#define STR_EQ(s, lit) str_eq((s), (lit), sizeof(lit) - 1)

size_t cb_irc_unescape(char *s, size_t len)
{
	size_t r = 0, w = 0;

	while (r < len) {
		char c = s[r++];

		if (c != '\\') {
			s[w++] = c;
			continue;
		}
		if (r == len)
			break; /* lone trailing backslash: nothing */
		c = s[r++];
		switch (c) {
		case ':':
			s[w++] = ';';
			break;
		case 's':
			s[w++] = ' ';
			break;
		case 'r':
			s[w++] = '\r';
			break;
		case 'n':
			s[w++] = '\n';
			break;
		default: /* "\\" and unknown escapes: the character itself */
			s[w++] = c;
			break;
		}
	}
	return w;
}

/* Maps an upper-cased command to its kind. */
static int command_kind(const char *c, size_t n)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(c, lit, sizeof(lit) - 1) == 0)
	switch (c[0]) {
	case 'P':
		if (IS("PRIVMSG"))
			return CB_IRC_K_PRIVMSG;
		if (IS("PING"))
			return CB_IRC_K_PING;
		if (IS("PONG"))
			return CB_IRC_K_PONG;
		if (IS("PART"))
			return CB_IRC_K_PART;
		break;
	case 'U':
		if (IS("USERNOTICE"))
			return CB_IRC_K_USERNOTICE;
		if (IS("USERSTATE"))
			return CB_IRC_K_USERSTATE;
		break;
	case 'C':
		if (IS("CLEARCHAT"))
			return CB_IRC_K_CLEARCHAT;
		if (IS("CLEARMSG"))
			return CB_IRC_K_CLEARMSG;
		if (IS("CAP"))
			return CB_IRC_K_CAP;
		break;
	case 'N':
		if (IS("NOTICE"))
			return CB_IRC_K_NOTICE;
		break;
	case 'R':
		if (IS("ROOMSTATE"))
			return CB_IRC_K_ROOMSTATE;
		if (IS("RECONNECT"))
			return CB_IRC_K_RECONNECT;
		break;
	case 'G':
		if (IS("GLOBALUSERSTATE"))
			return CB_IRC_K_GLOBALUSERSTATE;
		break;
	case 'W':
		if (IS("WHISPER"))
			return CB_IRC_K_WHISPER;
		break;
	case 'H':
		if (IS("HOSTTARGET"))
			return CB_IRC_K_HOSTTARGET;
		break;
	case 'J':
		if (IS("JOIN"))
			return CB_IRC_K_JOIN;
		break;
	case 'M':
		if (IS("MODE"))
			return CB_IRC_K_MODE;
		break;
	case '0':
		if (IS("001"))
			return CB_IRC_K_WELCOME;
		break;
	case '3':
		if (IS("353"))
			return CB_IRC_K_NAMREPLY;
		if (IS("366"))
			return CB_IRC_K_ENDOFNAMES;
		break;
	default:
		break;
	}
	return CB_IRC_K_OTHER;
#undef IS
}

/* Splits the tag section [p, end) into m->tags, unescaping values. */
static int parse_tags(struct cb_irc_msg *m, char *p, char *end, char *errstr,
		      size_t errstr_size)
{
	while (p <= end) {
		char *key = p, *eq = NULL;
		bool esc = false;
		struct cb_irc_tag *tag;

		while (p < end && *p != ';') {
			if (*p == '=') {
				if (eq == NULL)
					eq = p;
			} else if (*p == '\\' && eq != NULL) {
				esc = true;
			}
			p++;
		}
		/* p is at ';' or end; the item is [key, p) */
		if ((eq != NULL ? eq : p) == key) {
			if (p != key || p != end)
				m->flags |= CB_IRC_F_EMPTY_TAG;
			p++;
			continue;
		}
		if (m->ntags == CB_IRC_TAGS_MAX)
			return cb_seterr(errstr, errstr_size, CB_E_TOOBIG,
					 "more than %d tags", CB_IRC_TAGS_MAX);
		tag = &m->tags[m->ntags++];
		if (eq == NULL) {
			tag->key = span(key, (size_t)(p - key));
			tag->value = span(p, 0);
		} else {
			size_t vlen = (size_t)(p - eq - 1);

			tag->key = span(key, (size_t)(eq - key));
			if (esc)
				vlen = cb_irc_unescape(eq + 1, vlen);
			tag->value = span(eq + 1, vlen);
		}
		p++;
	}
	return 0;
}

/* nick!user@host, nick@host, or a bare server name (host). */
static void parse_prefix(struct cb_irc_msg *m, const char *p, size_t n)
{
	const char *end = p + n, *q = p;

	m->prefix = span(p, n);
	while (q < end && *q != '!' && *q != '@')
		q++;
	if (q == end) {
		m->host = m->prefix;
		return;
	}
	m->nick = span(p, (size_t)(q - p));
	if (*q == '!') {
		const char *u = q + 1, *at = memchr(u, '@', (size_t)(end - u));

		if (at == NULL) {
			m->user = span(u, (size_t)(end - u));
		} else {
			m->user = span(u, (size_t)(at - u));
			m->host = span(at + 1, (size_t)(end - at - 1));
		}
	} else {
		m->host = span(q + 1, (size_t)(end - q - 1));
	}
	if (m->nick.len == 0 || (m->user.p != NULL && m->user.len == 0) ||
	    (m->host.p != NULL && m->host.len == 0))
		m->flags |= CB_IRC_F_EMPTY_PREFIX_PART;
}

int cb_irc_parse(char *line, size_t len, struct cb_irc_msg *m, char *errstr,
		 size_t errstr_size)
{
	char *p, *end, *cmd;
	int err;

	m->prefix = m->nick = m->user = m->host = m->command = absent;
	m->kind = CB_IRC_K_OTHER;
	m->flags = 0;
	m->has_tags = false;
	m->ntags = 0;
	m->nparams = 0;
	if (line == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_INVAL, "no line");

	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > CB_IRC_LINE_MAX)
		return cb_seterr(errstr, errstr_size, CB_E_TOOBIG,
				 "line of %zu bytes exceeds %d", len,
				 CB_IRC_LINE_MAX);
	if (len == 0)
		return cb_seterr(errstr, errstr_size, CB_E_PARSE, "empty line");
	if (memchr(line, '\n', len) != NULL || memchr(line, '\r', len) != NULL ||
	    memchr(line, '\0', len) != NULL)
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "raw NUL, CR or LF inside the line");
	if (line[0] == ' ')
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "line starts with a space");

	p = line;
	end = line + len;
	if (*p == '@') {
		char *sp = memchr(p + 1, ' ', (size_t)(end - p - 1));

		if (sp == NULL)
			return cb_seterr(errstr, errstr_size, CB_E_PARSE,
					 "tags not followed by a command");
		if (sp == p + 1)
			return cb_seterr(errstr, errstr_size, CB_E_PARSE,
					 "empty tag section");
		m->has_tags = true;
		err = parse_tags(m, p + 1, sp, errstr, errstr_size);
		if (err != 0)
			return err;
		p = sp + 1;
	}
	if (p < end && *p == ':') {
		char *sp = memchr(p + 1, ' ', (size_t)(end - p - 1));

		if (sp == NULL)
			return cb_seterr(errstr, errstr_size, CB_E_PARSE,
					 "prefix not followed by a command");
		if (sp == p + 1)
			return cb_seterr(errstr, errstr_size, CB_E_PARSE,
					 "empty prefix");
		parse_prefix(m, p + 1, (size_t)(sp - p - 1));
		p = sp + 1;
	}

	/* Command: letters (upper-cased here) or exactly three digits. */
	cmd = p;
	while (p < end && *p != ' ')
		p++;
	if (p == cmd)
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "missing command");
	if (cmd[0] >= '0' && cmd[0] <= '9') {
		if (p - cmd != 3 || cmd[1] < '0' || cmd[1] > '9' ||
		    cmd[2] < '0' || cmd[2] > '9')
			return cb_seterr(errstr, errstr_size, CB_E_PARSE,
					 "malformed command: a numeric must "
					 "have 3 digits");
	} else {
		for (char *c = cmd; c < p; c++) {
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 'a' + 'A');
			else if (*c < 'A' || *c > 'Z')
				return cb_seterr(errstr, errstr_size,
						 CB_E_PARSE,
						 "malformed command: not "
						 "letters or 3 digits");
		}
	}
	m->command = span(cmd, (size_t)(p - cmd));
	m->kind = command_kind(cmd, (size_t)(p - cmd));

	/* Parameters: p is at a space or at the end. */
	while (p < end) {
		char *e;

		p++; /* the one separating space */
		if (p < end && *p == ':') {
			m->params[m->nparams++] = span(p + 1, (size_t)(end - p - 1));
			m->flags |= CB_IRC_F_TRAILING;
			break;
		}
		if (m->nparams == CB_IRC_PARAMS_MAX - 1) {
			m->params[m->nparams++] = span(p, (size_t)(end - p));
			break;
		}
		e = memchr(p, ' ', (size_t)(end - p));
		if (e == NULL)
			e = end;
		if (e == p)
			m->flags |= CB_IRC_F_EMPTY_PARAM;
		m->params[m->nparams++] = span(p, (size_t)(e - p));
		p = e;
	}
	return 0;
}

const char *cb_irc_tag(const struct cb_irc_msg *m, const char *key,
		       size_t *len)
{
	size_t n = strlen(key);

	for (size_t i = m->ntags; i-- > 0;) {
		const struct cb_irc_tag *t = &m->tags[i];

		if (t->key.len == n && memcmp(t->key.p, key, n) == 0) {
			if (len != NULL)
				*len = t->value.len;
			return t->value.p;
		}
	}
	if (len != NULL)
		*len = 0;
	return NULL;
}

bool cb_irc_tag_shadowed(const struct cb_irc_msg *m, size_t i)
{
	const struct cb_irc_str k = m->tags[i].key;

	for (size_t j = i + 1; j < m->ntags; j++)
		if (m->tags[j].key.len == k.len &&
		    memcmp(m->tags[j].key.p, k.p, k.len) == 0)
			return true;
	return false;
}

bool cb_irc_parse_i64(const char *s, size_t len, int64_t *out)
{
	bool neg = false;
	uint64_t v = 0, limit;
	size_t i = 0;

	if (s == NULL || len == 0)
		return false;
	if (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-';
		i = 1;
		if (len == 1)
			return false;
	}
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9 || v > (limit - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

/* ---- Twitch ---- */

/* Splits "name/version,name/version" into out (after unescaping, done by
 * the parser); items without '/' get an absent version. */
static uint16_t parse_badges(struct cb_irc_str v, struct cb_twitch_badge *out,
			     bool *truncated)
{
	const char *p = v.p, *end = v.p + v.len;
	uint16_t n = 0;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *ie = comma ? comma : end, *slash;

		if (ie > p) {
			if (n == CB_TWITCH_BADGES_MAX) {
				*truncated = true;
				break;
			}
			slash = memchr(p, '/', (size_t)(ie - p));
			if (slash == NULL) {
				out[n].name = span(p, (size_t)(ie - p));
				out[n].version = absent;
			} else {
				out[n].name = span(p, (size_t)(slash - p));
				out[n].version =
					span(slash + 1, (size_t)(ie - slash - 1));
			}
			n++;
		}
		p = ie + 1;
	}
	return n;
}

/* Reads digits [p, end) into a uint32; false when empty, not digits, or
 * too large. */
static bool parse_u32(const char *p, const char *end, uint32_t *out)
{
	uint64_t v = 0;

	if (p == end || end - p > 10)
		return false;
	for (; p < end; p++) {
		unsigned d = (unsigned char)*p - '0';

		if (d > 9)
			return false;
		v = v * 10 + d;
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* A cursor over text counting code points, for cutting emote names. */
struct cp_cursor {
	const char *s;
	size_t len;
	size_t byte;
	uint32_t cp;
};

/* Moves c to code point target (or the end of the text) and returns its
 * byte offset; sets *past when the text ends before target. */
static size_t cp_seek(struct cp_cursor *c, uint64_t target, bool *past)
{
	if (target < c->cp) {
		c->byte = 0;
		c->cp = 0;
	}
	while (c->cp < target && c->byte < c->len) {
		uint32_t cp;

		if ((unsigned char)c->s[c->byte] < 0x80)
			c->byte++;
		else
			c->byte += cb_json_utf8_next(c->s + c->byte,
						     c->len - c->byte, &cp);
		c->cp++;
	}
	if (c->cp < target)
		*past = true;
	return c->byte;
}

void cb_twitch_emotes(const char *tag, size_t tag_len, const char *text,
		      size_t text_len, struct cb_twitch_emotes *e)
{
	const char *p = tag, *end = tag + tag_len;
	struct cp_cursor cur;

	e->n = 0;
	e->malformed = false;
	e->out_of_range = false;
	e->truncated = false;
	if (tag == NULL || tag_len == 0)
		return;
	if (text == NULL) {
		text = "";
		text_len = 0;
	}

	/* id:s-e,s-e/id:s-e - the id runs to the first ':'. */
	while (p < end) {
		const char *ge = memchr(p, '/', (size_t)(end - p));
		const char *colon, *r;
		struct cb_irc_str id;

		if (ge == NULL)
			ge = end;
		if (ge == p) { /* empty group ("a:1-2//b:3-4"): ignore */
			p = ge + 1;
			continue;
		}
		colon = memchr(p, ':', (size_t)(ge - p));
		if (colon == NULL || colon == p || colon + 1 == ge)
			goto malformed;
		id = span(p, (size_t)(colon - p));
		r = colon + 1;
		while (r <= ge) {
			const char *re = memchr(r, ',', (size_t)(ge - r));
			const char *dash;
			uint32_t s, f;

			if (re == NULL)
				re = ge;
			dash = memchr(r, '-', (size_t)(re - r));
			if (dash == NULL || !parse_u32(r, dash, &s) ||
			    !parse_u32(dash + 1, re, &f))
				goto malformed;
			if (e->n == CB_TWITCH_EMOTES_MAX) {
				e->truncated = true;
			} else {
				struct cb_twitch_emote *x = &e->v[e->n++];

				x->id = id;
				x->start = s;
				x->end = f;
				x->out_of_range = false;
			}
			r = re + 1;
		}
		p = ge + 1;
	}

	/* Sort by start (insertion sort: stable, lists are short and mostly
	 * sorted already within a group). */
	for (uint16_t i = 1; i < e->n; i++) {
		struct cb_twitch_emote x = e->v[i];
		uint16_t j = i;

		while (j > 0 && e->v[j - 1].start > x.start) {
			e->v[j] = e->v[j - 1];
			j--;
		}
		e->v[j] = x;
	}

	cur.s = text;
	cur.len = text_len;
	cur.byte = 0;
	cur.cp = 0;
	for (uint16_t i = 0; i < e->n; i++) {
		struct cb_twitch_emote *x = &e->v[i];
		bool past = false;
		size_t b0 = cp_seek(&cur, x->start, &past), b1;

		if (x->start > x->end) {
			x->name = span(text + b0, 0);
			x->out_of_range = true;
		} else {
			b1 = cp_seek(&cur, (uint64_t)x->end + 1, &past);
			x->name = span(text + b0, b1 - b0);
			x->out_of_range = past;
		}
		if (x->out_of_range)
			e->out_of_range = true;
	}
	return;

malformed:
	e->n = 0;
	e->malformed = true;
	e->truncated = false;
}

/* True for the commands whose channel is params[0]. */
static bool names_channel(int kind)
{
	switch (kind) {
	case CB_IRC_K_PRIVMSG:
	case CB_IRC_K_USERNOTICE:
	case CB_IRC_K_CLEARCHAT:
	case CB_IRC_K_CLEARMSG:
	case CB_IRC_K_NOTICE:
	case CB_IRC_K_ROOMSTATE:
	case CB_IRC_K_USERSTATE:
	case CB_IRC_K_HOSTTARGET:
	case CB_IRC_K_JOIN:
	case CB_IRC_K_PART:
	case CB_IRC_K_MODE:
		return true;
	default:
		return false;
	}
}

/* Copies the tags chatbattle reads into t; later repeats overwrite earlier
 * ones, so the last occurrence wins. */
static void read_tags(const struct cb_irc_msg *m, struct cb_twitch_msg *t,
		      struct cb_irc_str *badges, struct cb_irc_str *badge_info,
		      struct cb_irc_str *id, struct cb_irc_str *message_id)
{
#define K(lit) (k.len == sizeof(lit) - 1 && memcmp(k.p, lit, k.len) == 0)
	for (size_t i = 0; i < m->ntags; i++) {
		struct cb_irc_str k = m->tags[i].key, v = m->tags[i].value;

		switch (k.len) {
		case 2:
			if (K("id"))
				*id = v;
			break;
		case 4:
			if (K("bits"))
				t->has_bits = cb_irc_parse_i64(v.p, v.len,
							       &t->bits);
			break;
		case 5:
			if (K("color"))
				t->color = v.len > 0 ? v : absent;
			else if (K("login"))
				t->login = v;
			break;
		case 6:
			if (K("emotes"))
				t->emotes_tag = v;
			else if (K("badges"))
				*badges = v;
			else if (K("msg-id"))
				t->msg_id = v;
			break;
		case 7:
			if (K("room-id"))
				t->room_id = v;
			else if (K("user-id"))
				t->user_id = v;
			break;
		case 9:
			if (K("first-msg"))
				t->first_msg = STR_EQ(v, "1");
			else if (K("source-id"))
				t->source_id = v;
			break;
		case 10:
			if (K("badge-info"))
				*badge_info = v;
			else if (K("emote-sets"))
				t->emote_sets = v;
			else if (K("message-id"))
				*message_id = v;
			else if (K("system-msg"))
				t->system_msg = v;
			break;
		case 11:
			if (K("tmi-sent-ts"))
				t->has_tmi_sent_ts = cb_irc_parse_i64(
					v.p, v.len, &t->tmi_sent_ts);
			break;
		case 12:
			if (K("display-name"))
				t->display_name = v;
			else if (K("ban-duration"))
				t->has_ban_duration = cb_irc_parse_i64(
					v.p, v.len, &t->ban_duration);
			break;
		case 13:
			if (K("target-msg-id"))
				t->target_message_id = v;
			break;
		case 14:
			if (K("source-room-id"))
				t->source_room_id = v;
			else if (K("target-user-id"))
				t->target_user_id = v;
			break;
		case 19:
			if (K("reply-parent-msg-id"))
				t->reply_parent.message_id = v;
			break;
		case 20:
			if (K("reply-parent-user-id"))
				t->reply_parent.user_id = v;
			break;
		case 21:
			if (K("reply-parent-msg-body"))
				t->reply_parent.text = v;
			break;
		case 23:
			if (K("reply-parent-user-login"))
				t->reply_parent.user_login = v;
			break;
		case 25:
			if (K("reply-parent-display-name"))
				t->reply_parent.display_name = v;
			break;
		default:
			break;
		}
	}
#undef K
}

int cb_twitch_decode(const struct cb_irc_msg *m, struct cb_twitch_msg *t,
		     char *errstr, size_t errstr_size)
{
	struct cb_irc_str badges = absent, badge_info = absent, id = absent,
			  message_id = absent, ch = absent;
	int kind;

	if (m == NULL || t == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_INVAL,
				 "no message to decode");
	/* The arrays at the end are only read up to their counts: clearing
	 * the ~16 KiB struct per line would cost more than parsing it. */
	memset(t, 0, offsetof(struct cb_twitch_msg, badges));
	t->emotes.n = 0;
	t->emotes.malformed = false;
	t->emotes.out_of_range = false;
	t->emotes.truncated = false;
	kind = t->kind = m->kind;

	read_tags(m, t, &badges, &badge_info, &id, &message_id);
	t->message_id = kind == CB_IRC_K_WHISPER ? message_id : id;
	t->has_reply_parent = t->reply_parent.message_id.p != NULL ||
			      t->reply_parent.user_id.p != NULL ||
			      t->reply_parent.user_login.p != NULL ||
			      t->reply_parent.display_name.p != NULL ||
			      t->reply_parent.text.p != NULL;
	if (badges.p != NULL)
		t->nbadges =
			parse_badges(badges, t->badges, &t->badges_truncated);
	if (badge_info.p != NULL)
		t->nbadge_info = parse_badges(badge_info, t->badge_info,
					      &t->badges_truncated);

	if (names_channel(kind) && m->nparams >= 1)
		ch = m->params[0];
	else if (kind == CB_IRC_K_NAMREPLY && m->nparams >= 3)
		ch = m->params[2];
	else if (kind == CB_IRC_K_ENDOFNAMES && m->nparams >= 2)
		ch = m->params[1];
	if (ch.p != NULL && ch.len >= 1 && ch.p[0] == '#')
		t->channel = span(ch.p + 1, ch.len - 1);

	switch (kind) {
	case CB_IRC_K_PRIVMSG:
	case CB_IRC_K_WHISPER:
	case CB_IRC_K_JOIN:
	case CB_IRC_K_PART:
		t->user_login = m->nick;
		break;
	case CB_IRC_K_USERNOTICE:
	case CB_IRC_K_CLEARMSG:
		t->user_login = t->login;
		break;
	default:
		break;
	}

	switch (kind) {
	case CB_IRC_K_PRIVMSG:
	case CB_IRC_K_CLEARMSG:
	case CB_IRC_K_WHISPER:
	case CB_IRC_K_USERNOTICE:
	case CB_IRC_K_NOTICE:
		if (m->nparams >= 2)
			t->text = m->params[m->nparams - 1];
		break;
	default:
		break;
	}
	/* CTCP ACTION: "\x01ACTION " + body + "\x01" exactly; the degenerate
	 * "\x01ACTION\x01" is no action (twitch-irc-rs, dank-twitch-irc). */
	if ((kind == CB_IRC_K_PRIVMSG || kind == CB_IRC_K_CLEARMSG) &&
	    t->text.len >= 9 && memcmp(t->text.p, "\001ACTION ", 8) == 0 &&
	    t->text.p[t->text.len - 1] == '\001') {
		t->text = span(t->text.p + 8, t->text.len - 9);
		t->is_action = true;
	}

	switch (kind) {
	case CB_IRC_K_CLEARCHAT:
		if (m->nparams >= 2)
			t->target_user = m->params[m->nparams - 1];
		break;
	case CB_IRC_K_WHISPER:
		if (m->nparams >= 1)
			t->recipient_login = m->params[0];
		break;
	case CB_IRC_K_PING:
	case CB_IRC_K_PONG:
		if (m->nparams >= 1)
			t->ping_arg = m->params[m->nparams - 1];
		break;
	case CB_IRC_K_CAP:
		if (m->nparams >= 2)
			t->cap_sub = m->params[1];
		if (m->nparams >= 3)
			t->cap_list = m->params[m->nparams - 1];
		break;
	case CB_IRC_K_NOTICE:
		t->auth_failed =
			t->channel.p == NULL &&
			(STR_EQ(t->text, "Login authentication failed") ||
			 STR_EQ(t->text, "Improperly formatted auth") ||
			 STR_EQ(t->text, "Login unsuccessful"));
		break;
	default:
		break;
	}

	if ((kind == CB_IRC_K_PRIVMSG || kind == CB_IRC_K_USERNOTICE ||
	     kind == CB_IRC_K_WHISPER) &&
	    t->emotes_tag.len > 0)
		cb_twitch_emotes(t->emotes_tag.p, t->emotes_tag.len, t->text.p,
				 t->text.len, &t->emotes);
	return 0;
}
