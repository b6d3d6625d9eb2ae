/*
 * irc_msg.h - the pure IRCv3 line parser and the Twitch semantics on top
 * (module "irc_msg", src/irc_msg.c).  No I/O, no malloc, no clocks, no
 * global state: any thread may call it on its own buffers, and it is unit-
 * and fuzz-tested.  Policies (line cap, spaces, emotes, /me) are described
 * in docs/irc.md.
 *
 * Two layers:
 *   cb_irc_parse()     one raw line -> struct cb_irc_msg: tags (unescaped in
 *                      place), prefix parts, command, parameters.
 *   cb_twitch_decode() struct cb_irc_msg -> struct cb_twitch_msg: channel,
 *                      user, text, /me, emotes, badges, replies, events...
 *
 * Every string is a struct cb_irc_str, a pointer and a length into the
 * caller's line buffer (never NUL-terminated).  p == NULL means "absent",
 * which is different from present and empty (p != NULL, len == 0).  The
 * results stay valid as long as the line buffer does.
 */
#ifndef CHATBATTLE_IRC_MSG_H
#define CHATBATTLE_IRC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cb_config;

/*
 * The longest line accepted, in bytes, without the CR LF.  Twitch lines with
 * tags reach about 8 KiB (a 500-character message, a reply parent of 500
 * characters, escaped badge-info and a shared-chat tag set); 16 KiB leaves
 * room for what Twitch adds next without letting one line grow without end.
 */
#define CB_IRC_LINE_MAX 16384
/* More tags than this (counting repeats) and the line is rejected.  Real
 * Twitch lines carry up to ~45. */
#define CB_IRC_TAGS_MAX 128
/* RFC 1459: at most 15 parameters; the 15th takes the rest of the line,
 * spaces included, as if it started with ':'. */
#define CB_IRC_PARAMS_MAX 15

struct cb_irc_str {
	const char *p; /* NULL: absent */
	size_t len;
};

struct cb_irc_tag {
	struct cb_irc_str key;   /* never empty */
	struct cb_irc_str value; /* unescaped; "" for a valueless tag */
};

/* The commands chatbattle reacts to; everything else is CB_IRC_K_OTHER
 * (m->command still holds it). */
enum cb_irc_kind {
	CB_IRC_K_OTHER = 0,
	CB_IRC_K_PRIVMSG,
	CB_IRC_K_USERNOTICE,
	CB_IRC_K_CLEARCHAT,
	CB_IRC_K_CLEARMSG,
	CB_IRC_K_NOTICE,
	CB_IRC_K_ROOMSTATE,
	CB_IRC_K_USERSTATE,
	CB_IRC_K_GLOBALUSERSTATE,
	CB_IRC_K_WHISPER,
	CB_IRC_K_HOSTTARGET,
	CB_IRC_K_PING,
	CB_IRC_K_PONG,
	CB_IRC_K_RECONNECT,
	CB_IRC_K_JOIN,
	CB_IRC_K_PART,
	CB_IRC_K_MODE,
	CB_IRC_K_CAP,
	CB_IRC_K_WELCOME,    /* 001 */
	CB_IRC_K_NAMREPLY,   /* 353 */
	CB_IRC_K_ENDOFNAMES, /* 366 */
};

/* m->flags: what a lenient parse let through (a strict caller may reject). */
enum {
	CB_IRC_F_EMPTY_PARAM = 1u << 0,  /* a doubled or trailing space made an
					  * empty middle parameter */
	CB_IRC_F_EMPTY_PREFIX_PART = 1u << 1, /* ":a@", ":a!@b": empty part */
	CB_IRC_F_EMPTY_TAG = 1u << 2,    /* "a;;b" or "=v": item skipped */
	CB_IRC_F_TRAILING = 1u << 3,     /* the last param started with ':' */
};

struct cb_irc_msg {
	struct cb_irc_str prefix;  /* without ':'; absent when no prefix */
	struct cb_irc_str nick;    /* absent when the prefix has no '!'/'@' */
	struct cb_irc_str user;    /* between '!' and '@'; absent without '!' */
	struct cb_irc_str host;    /* after '@', or the whole prefix when it has
				    * neither '!' nor '@' (a server name) */
	struct cb_irc_str command; /* upper-cased in place, or 3 digits */
	int kind;                  /* enum cb_irc_kind */
	unsigned flags;            /* CB_IRC_F_* */
	bool has_tags;             /* the line started with '@' */
	uint16_t ntags;
	uint16_t nparams;
	struct cb_irc_str params[CB_IRC_PARAMS_MAX]; /* trailing one last,
						      * without its ':' */
	struct cb_irc_tag tags[CB_IRC_TAGS_MAX];     /* in line order, repeats
						      * kept (see cb_irc_tag) */
};

/*
 * Parses one IRC line in place.  line[0..len) is the line; one trailing
 * "\r\n", "\n" or "\r" is ignored.  Tag values are unescaped inside the
 * buffer (so it must be writable) and the command is upper-cased in place;
 * m then points into line.  Rejects (CB_E_PARSE, or CB_E_TOOBIG beyond
 * CB_IRC_LINE_MAX / CB_IRC_TAGS_MAX) with the reason in errstr: an empty
 * line, a leading space, a raw NUL/CR/LF inside, "@" with no tags, tags or a
 * prefix not followed by a space, an empty prefix, a missing command, a
 * command that is not letters or exactly 3 digits.  Extra spaces between or
 * after parameters are accepted as empty parameters (go-twitch-irc style,
 * flagged CB_IRC_F_EMPTY_PARAM); see docs/irc.md.  Bytes are not required
 * to be UTF-8.  Thread-safe, no allocation.
 */
int cb_irc_parse(char *line, size_t len, struct cb_irc_msg *m, char *errstr,
		 size_t errstr_size);

/*
 * Looks a tag up by key (exact, case-sensitive).  When the key repeats, the
 * last occurrence wins (IRCv3).  Returns the unescaped value, "" for a
 * valueless tag, or NULL when absent; *len gets its length (len may be
 * NULL).
 */
const char *cb_irc_tag(const struct cb_irc_msg *m, const char *key,
		       size_t *len);

/* True when tag i is shadowed by a later tag of the same key: skip it when
 * iterating m->tags to see each key once, with its winning value. */
bool cb_irc_tag_shadowed(const struct cb_irc_msg *m, size_t i);

/*
 * Unescapes an IRCv3 tag value in place: \: ; \s space \\ backslash \r CR
 * \n LF, a backslash before any other character is dropped (the character
 * kept), a lone trailing backslash produces nothing.  Returns the new length
 * (<= len).  cb_irc_parse() already does this for every value.
 */
size_t cb_irc_unescape(char *s, size_t len);

/* ---- Twitch semantics ---- */

#define CB_TWITCH_EMOTES_MAX 256
#define CB_TWITCH_BADGES_MAX 32

struct cb_twitch_emote {
	struct cb_irc_str id;
	uint32_t start, end;   /* code points as in the tag, end inclusive */
	struct cb_irc_str name; /* text[start..end] cut by code points and
				 * clamped to the text; "" when reversed or
				 * past the end */
	bool out_of_range;     /* end past the text, or start > end */
};

struct cb_twitch_badge {
	struct cb_irc_str name;
	struct cb_irc_str version; /* after the first '/'; absent without '/' */
};

struct cb_twitch_emotes {
	uint16_t n;
	bool malformed;     /* the tag could not be read: n == 0 */
	bool out_of_range;  /* some range was clamped */
	bool truncated;     /* more than CB_TWITCH_EMOTES_MAX ranges */
	struct cb_twitch_emote v[CB_TWITCH_EMOTES_MAX]; /* sorted by start */
};

struct cb_twitch_msg {
	int kind; /* enum cb_irc_kind, copied from the cb_irc_msg */

	/* params[0] (353: params[2], 366: params[1]) without '#' for the
	 * commands that name a channel; absent when it does not start with
	 * '#' (so NOTICE * has none).  Not yet normalized. */
	struct cb_irc_str channel;
	/* PRIVMSG, WHISPER, JOIN, PART: the prefix nick; USERNOTICE,
	 * CLEARMSG: the login tag (on CLEARMSG the deleted message's author) */
	struct cb_irc_str user_login;
	/* PRIVMSG, WHISPER, USERNOTICE, NOTICE, CLEARMSG: the last parameter
	 * when there are at least two; PRIVMSG and CLEARMSG unwrap a
	 * "\x01ACTION ...\x01" (is_action).  USERNOTICE is never unwrapped. */
	struct cb_irc_str text;
	bool is_action;
	bool first_msg;     /* first-msg=1 */

	/* tags (unescaped); color is absent when empty */
	struct cb_irc_str display_name, user_id, room_id, color, msg_id,
		system_msg, login, emote_sets;
	struct cb_irc_str message_id;        /* id (WHISPER: message-id) */
	struct cb_irc_str target_message_id; /* target-msg-id (CLEARMSG) */
	struct cb_irc_str target_user;       /* CLEARCHAT params[1] */
	struct cb_irc_str target_user_id;    /* target-user-id */
	struct cb_irc_str recipient_login;   /* WHISPER params[0] */
	struct cb_irc_str source_room_id;    /* shared chat: source-room-id */
	struct cb_irc_str source_id;         /* shared chat: source-id */
	struct cb_irc_str emotes_tag;        /* raw emotes tag */
	struct {
		struct cb_irc_str message_id, user_id, user_login,
			display_name, text;
	} reply_parent; /* reply-parent-*; present when any of them is */
	bool has_reply_parent;

	bool has_tmi_sent_ts, has_bits, has_ban_duration;
	int64_t tmi_sent_ts; /* ms; can be negative (seen in the wild) */
	int64_t bits;
	int64_t ban_duration; /* seconds */

	/* PING/PONG: the argument to echo (last param); CAP: the subcommand
	 * (ACK, NAK, LS...) and the capability list (last param). */
	struct cb_irc_str ping_arg;
	struct cb_irc_str cap_sub, cap_list;
	/* NOTICE * that says the login failed (bad or malformed token). */
	bool auth_failed;

	uint16_t nbadges, nbadge_info;
	bool badges_truncated;
	struct cb_twitch_badge badges[CB_TWITCH_BADGES_MAX];
	struct cb_twitch_badge badge_info[CB_TWITCH_BADGES_MAX];
	struct cb_twitch_emotes emotes; /* of text, for PRIVMSG, USERNOTICE,
					 * WHISPER (empty otherwise) */
};

/*
 * Adds the Twitch meaning to a parsed line.  Never fails on content: a
 * malformed emotes tag sets emotes.malformed, a non-numeric tmi-sent-ts
 * leaves has_tmi_sent_ts false, and so on.  t points into the same buffer
 * as m.  Returns 0, or CB_E_INVAL when m or t is NULL.
 */
int cb_twitch_decode(const struct cb_irc_msg *m, struct cb_twitch_msg *t,
		     char *errstr, size_t errstr_size);

/*
 * Reads an emotes tag ("id:s-e,s-e/id:s-e") against text: fills e (ranges
 * sorted by start, names cut by Unicode code points, clamped, see
 * struct cb_twitch_emote).  An unreadable tag gives e->malformed and no
 * emotes.  Invalid UTF-8 counts one code point per invalid byte (as the
 * JSON writer replaces each with one U+FFFD).
 */
void cb_twitch_emotes(const char *tag, size_t tag_len, const char *text,
		      size_t text_len, struct cb_twitch_emotes *e);

/* Parses a decimal int64 ("-12" allowed); false on anything else. */
bool cb_irc_parse_i64(const char *s, size_t len, int64_t *out);

/* `chatbattle irc-parse` (src/cmd_irc_parse.c): raw IRC lines on stdin ->
 * the JSON records that would be produced to Kafka, one per line. */
int cb_cmd_irc_parse(const struct cb_config *cfg);

#endif
