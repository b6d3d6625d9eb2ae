/*
 * chatmsg.c - decoded Twitch lines -> the Kafka records of
 * docs/contracts.md: ChatMessage and event JSON for twitch-chat-messages,
 * dead-letter JSON for twitch-chat-dlq.  Runs in the irc thread for every
 * chat line (and in `chatbattle irc-parse`), so it writes JSON by hand into
 * the caller's buffer through json.h: no allocation, no jansson, no clock.
 *
 * The original fields come first, in the original order (channel_id,
 * user_id, username, message, timestamp, emotes); extra fields follow and
 * are left out when empty.  Emote ranges that Twitch sent out of range
 * (twitchdev/issues#104) are dropped from "emotes" and "emote_details"
 * rather than clamped: a clamped name ("UL", "ppa", "") is not an emote and
 * would pollute the top-emotes figures.
 */
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "chatbattle/chatmsg.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/json.h"

/* Namespace of chatbattle's derived message ids (a random v4 UUID fixed
 * once: changing it would break replay idempotence). */
static const uint8_t chatmsg_ns[16] = {0x91, 0x72, 0x21, 0xc0, 0x26, 0x26,
				       0x4a, 0xea, 0xa9, 0x67, 0x80, 0x99,
				       0xbb, 0xfe, 0x6d, 0x33};

static const char *const type_names[CB_CT_COUNT] = {
	[CB_CT_MESSAGE] = "message",
	[CB_CT_SUB] = "sub",
	[CB_CT_RESUB] = "resub",
	[CB_CT_SUBGIFT] = "subgift",
	[CB_CT_SUBMYSTERYGIFT] = "submysterygift",
	[CB_CT_GIFTPAIDUPGRADE] = "giftpaidupgrade",
	[CB_CT_RAID] = "raid",
	[CB_CT_ANNOUNCEMENT] = "announcement",
	[CB_CT_RITUAL] = "ritual",
	[CB_CT_BITSBADGETIER] = "bitsbadgetier",
	[CB_CT_VIEWERMILESTONE] = "viewermilestone",
	[CB_CT_USERNOTICE] = "usernotice",
	[CB_CT_BAN] = "ban",
	[CB_CT_TIMEOUT] = "timeout",
	[CB_CT_CLEARCHAT] = "clearchat",
	[CB_CT_CLEARMSG] = "clearmsg",
};

const char *cb_chatmsg_type_name(int type)
{
	if (type < 0 || type >= CB_CT_COUNT)
		return "unknown";
	return type_names[type];
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool cb_chatmsg_parse_uuid(const char *s, size_t len, uint8_t uuid[16])
{
	size_t o = 0;

	if (s == NULL || len != 36)
		return false;
	for (size_t i = 0; i < 36;) {
		int hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
			i++;
			continue;
		}
		hi = hexval(s[i]);
		lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		uuid[o++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return true;
}

void cb_chatmsg_format_uuid(const uint8_t uuid[16], char out[36])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[uuid[i] >> 4];
		out[o++] = hex[uuid[i] & 15];
	}
}

/* Appends n bytes at *o in buf[0..cap), as far as they fit. */
static void name_put(uint8_t *buf, size_t cap, size_t *o, const void *s,
		     size_t n)
{
	if (n > cap - *o)
		n = cap - *o;
	if (n != 0)
		memcpy(buf + *o, s, n);
	*o += n;
}

void cb_chatmsg_derive_uuid(const char *channel, size_t channel_len,
			    int64_t timestamp_ms, const char *user,
			    size_t user_len, const char *text, size_t text_len,
			    uint8_t uuid[16])
{
	/* Any name built from one line fits; a longer (API) input is cut,
	 * still deterministically. */
	uint8_t name[16 + CB_IRC_LINE_MAX + 128];
	uint8_t md[SHA_DIGEST_LENGTH];
	char ts[24];
	size_t o = 0;
	int n = snprintf(ts, sizeof(ts), "%lld", (long long)timestamp_ms);

	name_put(name, sizeof(name), &o, chatmsg_ns, 16);
	name_put(name, sizeof(name), &o, channel, channel_len);
	name_put(name, sizeof(name), &o, "", 1);
	name_put(name, sizeof(name), &o, ts, (size_t)n);
	name_put(name, sizeof(name), &o, "", 1);
	name_put(name, sizeof(name), &o, user, user_len);
	name_put(name, sizeof(name), &o, "", 1);
	name_put(name, sizeof(name), &o, text, text_len);
	SHA1(name, o, md);
	memcpy(uuid, md, 16);
	uuid[6] = (uint8_t)((uuid[6] & 0x0F) | 0x50); /* version 5 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3F) | 0x80); /* RFC 4122 variant */
}

static int usernotice_type(struct cb_irc_str id)
{
	static const struct {
		const char *msg_id;
		int type;
	} map[] = {
		{"sub", CB_CT_SUB},
		{"resub", CB_CT_RESUB},
		{"subgift", CB_CT_SUBGIFT},
		{"anonsubgift", CB_CT_SUBGIFT},
		{"submysterygift", CB_CT_SUBMYSTERYGIFT},
		{"anonsubmysterygift", CB_CT_SUBMYSTERYGIFT},
		{"giftpaidupgrade", CB_CT_GIFTPAIDUPGRADE},
		{"anongiftpaidupgrade", CB_CT_GIFTPAIDUPGRADE},
		{"raid", CB_CT_RAID},
		{"announcement", CB_CT_ANNOUNCEMENT},
		{"ritual", CB_CT_RITUAL},
		{"bitsbadgetier", CB_CT_BITSBADGETIER},
		{"viewermilestone", CB_CT_VIEWERMILESTONE},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (id.p != NULL && id.len == strlen(map[i].msg_id) &&
		    memcmp(id.p, map[i].msg_id, id.len) == 0)
			return map[i].type;
	return CB_CT_USERNOTICE;
}

static inline bool present(struct cb_irc_str s)
{
	return s.p != NULL && s.len > 0;
}

/* ,"key":"value" when value is present and not empty. */
static void opt_str(struct cb_json_w *w, const char *key, struct cb_irc_str v)
{
	if (!present(v))
		return;
	cb_json_w_key(w, key, false);
	cb_json_w_str(w, v.p, v.len);
}

static void str_or_empty(struct cb_json_w *w, struct cb_irc_str v)
{
	cb_json_w_str(w, v.p != NULL ? v.p : "", v.len);
}

/* ,"key":{"name":"version",...} - a repeated name keeps its last version. */
static void badges_obj(struct cb_json_w *w, const char *key,
		       const struct cb_twitch_badge *b, uint16_t n)
{
	bool first = true;

	if (n == 0)
		return;
	cb_json_w_key(w, key, false);
	CB_JSON_W_LIT(w, "{");
	for (uint16_t i = 0; i < n; i++) {
		bool later = false;

		for (uint16_t j = i + 1; j < n && !later; j++)
			later = b[j].name.len == b[i].name.len &&
				memcmp(b[j].name.p, b[i].name.p,
				       b[i].name.len) == 0;
		if (later)
			continue;
		if (!first)
			CB_JSON_W_LIT(w, ",");
		first = false;
		cb_json_w_str(w, b[i].name.p, b[i].name.len);
		CB_JSON_W_LIT(w, ":");
		if (b[i].version.p != NULL)
			cb_json_w_str(w, b[i].version.p, b[i].version.len);
		else
			CB_JSON_W_LIT(w, "null");
	}
	CB_JSON_W_LIT(w, "}");
}

static void emote_names(struct cb_json_w *w, const struct cb_twitch_emotes *e)
{
	bool first = true;

	CB_JSON_W_LIT(w, "[");
	for (uint16_t i = 0; i < e->n; i++) {
		if (e->v[i].out_of_range)
			continue;
		if (!first)
			CB_JSON_W_LIT(w, ",");
		first = false;
		cb_json_w_str(w, e->v[i].name.p, e->v[i].name.len);
	}
	CB_JSON_W_LIT(w, "]");
}

static void emote_details(struct cb_json_w *w, const struct cb_twitch_emotes *e)
{
	bool first = true;

	for (uint16_t i = 0; i < e->n; i++) {
		const struct cb_twitch_emote *x = &e->v[i];

		if (x->out_of_range)
			continue;
		if (first)
			CB_JSON_W_LIT(w, ",\"emote_details\":[");
		else
			CB_JSON_W_LIT(w, ",");
		first = false;
		CB_JSON_W_LIT(w, "{\"id\":");
		cb_json_w_str(w, x->id.p, x->id.len);
		CB_JSON_W_LIT(w, ",\"name\":");
		cb_json_w_str(w, x->name.p, x->name.len);
		CB_JSON_W_LIT(w, ",\"start\":");
		cb_json_w_int(w, x->start);
		CB_JSON_W_LIT(w, ",\"end\":");
		cb_json_w_int(w, x->end);
		CB_JSON_W_LIT(w, "}");
	}
	if (!first)
		CB_JSON_W_LIT(w, "]");
}

static bool unwrap_action(struct cb_irc_str *text)
{
	if (text->len >= 9 && memcmp(text->p, "\001ACTION ", 8) == 0 &&
	    text->p[text->len - 1] == '\001') {
		text->p += 8;
		text->len -= 9;
		return true;
	}
	return false;
}

/*
 * A USERNOTICE whose message is a /me (a resub message, say) keeps the raw
 * "\x01ACTION ...\x01" text, and Twitch computes its emote ranges on the
 * text without the \x01 bytes, "ACTION " included (twitchdev/issues#175).
 * Cut the names there, then shift the ranges by 7 so that they index the
 * unwrapped message; a range inside "ACTION " is dropped.
 */
static void usernotice_action_emotes(const struct cb_twitch_msg *t,
				     struct cb_irc_str body,
				     struct cb_twitch_emotes *e)
{
	cb_twitch_emotes(t->emotes_tag.p, t->emotes_tag.len, body.p - 7,
			 body.len + 7, e);
	for (uint16_t i = 0; i < e->n; i++) {
		if (e->v[i].start < 7 || e->v[i].end < 7) {
			e->v[i].out_of_range = true;
			continue;
		}
		e->v[i].start -= 7;
		e->v[i].end -= 7;
	}
}

/*
 * What a Twitch message becomes, between the three steps of
 * cb_chatmsg_from_twitch: parse (the kind decides the type and the
 * fields), validate (channel, text, time, id) and emit (the JSON).
 */
struct chat_fields {
	const char *what; /* the command, for reasons */
	int type;         /* enum of type_names */
	bool chat;        /* a PRIVMSG: a ChatMessage, not an event */
	bool is_action;
	struct cb_irc_str user_id, username, text, id_tag;
	const struct cb_twitch_emotes *emotes;
	/* Only for a USERNOTICE /me, whose ranges count the unwrapped text. */
	struct cb_twitch_emotes un_emotes;
};

/* Parse: the record type of t, or false when t makes no record. */
static bool chat_parse(const struct cb_twitch_msg *t, bool emit_events,
		       struct chat_fields *f)
{
	f->what = "PRIVMSG";
	f->chat = false;
	f->is_action = t->is_action;
	f->user_id = t->user_id;
	f->username = t->user_login;
	f->text = t->text;
	f->id_tag = t->message_id;
	f->emotes = &t->emotes;
	switch (t->kind) {
	case CB_IRC_K_PRIVMSG:
		f->type = CB_CT_MESSAGE;
		f->chat = true;
		break;
	case CB_IRC_K_USERNOTICE:
		f->type = usernotice_type(t->msg_id);
		f->what = "USERNOTICE";
		break;
	case CB_IRC_K_CLEARCHAT:
		f->type = t->target_user.p == NULL ? CB_CT_CLEARCHAT
			  : t->has_ban_duration    ? CB_CT_TIMEOUT
						   : CB_CT_BAN;
		f->what = "CLEARCHAT";
		break;
	case CB_IRC_K_CLEARMSG:
		f->type = CB_CT_CLEARMSG;
		f->what = "CLEARMSG";
		break;
	default:
		return false;
	}
	return f->chat || emit_events;
}

/* Validate: the channel, the per-kind fields, the time and the id into
 * out.  Returns 0 or CB_E_PARSE with the reason. */
static int chat_validate(const struct cb_twitch_msg *t, int64_t received_ms,
			 struct chat_fields *f, struct cb_chatmsg *out,
			 char *errstr, size_t errstr_size)
{
	int err;

	if (t->channel.p == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "%s without channel", f->what);
	err = cb_channel_normalize(t->channel.p, t->channel.len, out->channel,
				   NULL, 0);
	if (err != 0) {
		out->channel[0] = '\0'; /* normalize may have written part */
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "%s channel is not a Twitch login "
				 "(1..25 of a-z 0-9 _)",
				 f->what);
	}
	out->channel_len = strlen(out->channel);
	out->type = f->type;

	switch (t->kind) {
	case CB_IRC_K_PRIVMSG:
		if (f->text.p == NULL)
			return cb_seterr(errstr, errstr_size, CB_E_PARSE,
					 "PRIVMSG without text");
		if (f->text.len == 0)
			return cb_seterr(errstr, errstr_size, CB_E_PARSE,
					 "PRIVMSG with empty text");
		if (f->username.p == NULL)
			f->username = t->login;
		break;
	case CB_IRC_K_USERNOTICE:
		if (f->text.p != NULL && unwrap_action(&f->text)) {
			f->is_action = true;
			if (t->emotes_tag.len > 0) {
				usernotice_action_emotes(t, f->text,
							 &f->un_emotes);
				f->emotes = &f->un_emotes;
			}
		}
		if (f->text.p == NULL)
			f->text = t->system_msg;
		break;
	case CB_IRC_K_CLEARCHAT:
		f->user_id = t->target_user_id;
		f->username = t->target_user;
		break;
	default:
		break;
	}

	out->timestamp_ms = t->has_tmi_sent_ts && t->tmi_sent_ts > 0
				    ? t->tmi_sent_ts
				    : received_ms;
	if (cb_chatmsg_parse_uuid(f->id_tag.p, f->id_tag.len,
				  out->message_id)) {
		out->message_id_derived = false;
	} else {
		struct cb_irc_str who =
			present(f->user_id) ? f->user_id : f->username;

		cb_chatmsg_derive_uuid(out->channel, out->channel_len,
				       out->timestamp_ms, who.p, who.len,
				       f->text.p, f->text.len, out->message_id);
		out->message_id_derived = true;
	}
	return 0;
}

/* The reply_parent object of a threaded reply. */
static void reply_parent_obj(struct cb_json_w *w, const struct cb_twitch_msg *t)
{
	bool first = true;
	const struct {
		const char *key;
		struct cb_irc_str v;
	} rp[] = {
		{"message_id", t->reply_parent.message_id},
		{"user_id", t->reply_parent.user_id},
		{"username", t->reply_parent.user_login},
		{"display_name", t->reply_parent.display_name},
		{"message", t->reply_parent.text},
	};

	CB_JSON_W_LIT(w, ",\"reply_parent\":{");
	for (size_t i = 0; i < sizeof(rp) / sizeof(rp[0]); i++) {
		if (rp[i].v.p == NULL)
			continue;
		cb_json_w_key(w, rp[i].key, first);
		cb_json_w_str(w, rp[i].v.p, rp[i].v.len);
		first = false;
	}
	CB_JSON_W_LIT(w, "}");
}

/* Emit: the JSON into buf and the dedupe key into out.  Returns
 * CB_CHATMSG_CHAT or _EVENT, or CB_E_TOOBIG. */
static int chat_emit(const struct cb_twitch_msg *t, int64_t received_ms,
		     const struct chat_fields *f, struct cb_chatmsg *out,
		     char *buf, size_t cap, char *errstr, size_t errstr_size)
{
	struct cb_json_w w;
	bool chat = f->chat;
	size_t mid_off;
	char mid[36];

	cb_chatmsg_format_uuid(out->message_id, mid);
	cb_json_w_init(&w, buf, cap);
	CB_JSON_W_LIT(&w, "{\"channel_id\":");
	cb_json_w_str(&w, out->channel, out->channel_len);
	CB_JSON_W_LIT(&w, ",\"user_id\":");
	str_or_empty(&w, f->user_id);
	CB_JSON_W_LIT(&w, ",\"username\":");
	str_or_empty(&w, f->username);
	CB_JSON_W_LIT(&w, ",\"message\":");
	str_or_empty(&w, f->text);
	CB_JSON_W_LIT(&w, ",\"timestamp\":");
	cb_json_w_int(&w, out->timestamp_ms);
	CB_JSON_W_LIT(&w, ",\"emotes\":");
	emote_names(&w, f->emotes);
	CB_JSON_W_LIT(&w, ",\"message_id\":\"");
	mid_off = w.len;
	cb_json_w_raw(&w, mid, sizeof(mid));
	CB_JSON_W_LIT(&w, "\"");
	opt_str(&w, "display_name", t->display_name);
	opt_str(&w, "room_id", t->room_id);
	CB_JSON_W_LIT(&w, ",\"type\":\"");
	cb_json_w_raw(&w, type_names[f->type], strlen(type_names[f->type]));
	CB_JSON_W_LIT(&w, "\"");
	if (!chat) {
		opt_str(&w, "msg_id", t->msg_id);
		opt_str(&w, "system_msg", t->system_msg);
		opt_str(&w, "target_user", t->target_user);
		opt_str(&w, "target_user_id", t->target_user_id);
		if (t->kind == CB_IRC_K_CLEARCHAT && t->has_ban_duration) {
			CB_JSON_W_LIT(&w, ",\"ban_duration\":");
			cb_json_w_int(&w, t->ban_duration);
		}
		opt_str(&w, "target_message_id", t->target_message_id);
	}
	opt_str(&w, "color", t->color);
	badges_obj(&w, "badges", t->badges, t->nbadges);
	badges_obj(&w, "badge_info", t->badge_info, t->nbadge_info);
	if (chat) {
		CB_JSON_W_LIT(&w, ",\"bits\":");
		cb_json_w_int(&w, t->has_bits && t->bits > 0 ? t->bits : 0);
	}
	if (chat || t->kind == CB_IRC_K_USERNOTICE ||
	    t->kind == CB_IRC_K_CLEARMSG) {
		CB_JSON_W_LIT(&w, ",\"is_action\":");
		cb_json_w_bool(&w, f->is_action);
	}
	if (chat) {
		CB_JSON_W_LIT(&w, ",\"first_msg\":");
		cb_json_w_bool(&w, t->first_msg);
	}
	emote_details(&w, f->emotes);
	if (chat && t->has_reply_parent)
		reply_parent_obj(&w, t);
	opt_str(&w, "source_room_id", t->source_room_id);
	opt_str(&w, "source_message_id", t->source_id);
	CB_JSON_W_LIT(&w, ",\"received_at\":");
	cb_json_w_int(&w, received_ms);
	CB_JSON_W_LIT(&w, "}");
	if (w.overflow)
		return cb_seterr(errstr, errstr_size, CB_E_TOOBIG,
				 "%s record of %zu bytes exceeds its buffer "
				 "of %zu",
				 f->what, w.len, cap);

	out->json = buf;
	out->json_len = w.len;
	if (present(t->source_id)) {
		out->dedupe = t->source_id.p;
		out->dedupe_len = t->source_id.len;
	} else if (present(f->id_tag)) {
		out->dedupe = f->id_tag.p;
		out->dedupe_len = f->id_tag.len;
	} else {
		out->dedupe = buf + mid_off;
		out->dedupe_len = sizeof(mid);
	}
	return chat ? CB_CHATMSG_CHAT : CB_CHATMSG_EVENT;
}

int cb_chatmsg_from_twitch(const struct cb_irc_msg *m,
			   const struct cb_twitch_msg *t, int64_t received_ms,
			   bool emit_events, struct cb_chatmsg *out, char *buf,
			   size_t cap, char *errstr, size_t errstr_size)
{
	struct chat_fields f;
	int err;

	(void)m;
	out->channel[0] = '\0';
	out->channel_len = 0;
	if (!chat_parse(t, emit_events, &f))
		return CB_CHATMSG_NONE;
	err = chat_validate(t, received_ms, &f, out, errstr, errstr_size);
	if (err != 0)
		return err;
	return chat_emit(t, received_ms, &f, out, buf, cap, errstr,
			 errstr_size);
}

int cb_chatmsg_from_irc(const struct cb_irc_msg *m, int64_t received_ms,
			bool emit_events, struct cb_chatmsg *out, char *buf,
			size_t cap, char *errstr, size_t errstr_size)
{
	struct cb_twitch_msg t;
	int err;

	switch (m->kind) {
	case CB_IRC_K_PRIVMSG:
		break;
	case CB_IRC_K_USERNOTICE:
	case CB_IRC_K_CLEARCHAT:
	case CB_IRC_K_CLEARMSG:
		if (emit_events)
			break;
		return CB_CHATMSG_NONE;
	default:
		return CB_CHATMSG_NONE;
	}
	err = cb_twitch_decode(m, &t, errstr, errstr_size);
	if (err != 0)
		return err;
	return cb_chatmsg_from_twitch(m, &t, received_ms, emit_events, out,
				      buf, cap, errstr, errstr_size);
}

int cb_chatmsg_dlq(const char *raw, size_t raw_len, const char *reason,
		   const char *stage, int64_t received_ms, char *buf,
		   size_t cap, size_t *len)
{
	struct cb_json_w w;
	bool first = true;

	if (raw == NULL)
		raw_len = 0;
	cb_json_w_init(&w, buf, cap);
	CB_JSON_W_LIT(&w, "{");
	if (reason != NULL) {
		cb_json_w_key(&w, "reason", first);
		cb_json_w_str(&w, reason, strlen(reason));
		first = false;
	}
	if (stage != NULL) {
		cb_json_w_key(&w, "stage", first);
		cb_json_w_str(&w, stage, strlen(stage));
		first = false;
	}
	if (raw_len == 0 || cb_json_utf8_valid(raw, raw_len)) {
		cb_json_w_key(&w, "raw", first);
		cb_json_w_str(&w, raw_len ? raw : "", raw_len);
	} else {
		size_t room, need;

		cb_json_w_key(&w, "raw_base64", first);
		CB_JSON_W_LIT(&w, "\"");
		room = w.overflow ? 0 : w.cap - w.len;
		need = cb_json_base64(w.overflow ? w.buf : w.buf + w.len, room,
				      raw, raw_len);
		if (need > room)
			w.overflow = true;
		w.len += need;
		CB_JSON_W_LIT(&w, "\"");
	}
	CB_JSON_W_LIT(&w, ",\"received_at\":");
	cb_json_w_int(&w, received_ms);
	CB_JSON_W_LIT(&w, "}");
	if (len != NULL)
		*len = w.len;
	return w.overflow ? CB_E_TOOBIG : 0;
}
