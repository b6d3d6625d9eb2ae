/*
 * fuzz_irc_msg.c - libFuzzer target for the IRC line parser, the Twitch
 * decoder, the ChatMessage/event writer, the dead-letter writer and the
 * JSON escaper, on arbitrary bytes.  Besides "no crash, no sanitizer
 * report" it asserts the invariants callers rely on:
 *   - a rejection carries a reason;
 *   - every span points inside the line (or is absent), counts stay within
 *     their caps, the command is upper-case letters or 3 digits;
 *   - emote names lie inside the text;
 *   - every JSON record is valid JSON (jansson, which also refuses invalid
 *     UTF-8) with the original fields first, and fits the caller's buffer;
 *   - the same input gives the same record (derived UUIDs deterministic);
 *   - the dead letter of any input fits CB_CHATMSG_DLQ_MAX and is valid.
 * Input split at the first NUL is also fed to cb_twitch_emotes() as
 * (tag, text).  Seeds: test/fuzz/corpus/irc_msg/; run with test/fuzz/run.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatbattle/chatmsg.h"
#include "chatbattle/irc_msg.h"
#include "chatbattle/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MUST(cond)                                                             \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n",      \
				#cond, __FILE__, __LINE__);                    \
			abort();                                               \
		}                                                              \
	} while (0)

static char line[CB_IRC_LINE_MAX + 64];
static char line2[CB_IRC_LINE_MAX + 64];
static char json1[CB_CHATMSG_BUF_SIZE];
static char json2[CB_CHATMSG_BUF_SIZE];
static char dlq[CB_CHATMSG_DLQ_MAX(CB_IRC_LINE_MAX + 64, 64)];
static struct cb_irc_msg msg, msg2;
static struct cb_twitch_msg tw;
static struct cb_twitch_emotes emotes;

static bool inside(struct cb_irc_str s, const char *base, size_t len)
{
	if (s.p == NULL)
		return s.len == 0;
	return s.p >= base && s.len <= len && s.p - base <= (long)(len - s.len);
}

static void valid_json(const char *s, size_t n, bool record)
{
	json_error_t jerr;
	/* \u0000 is valid JSON, and a dead letter may carry it (the raw line);
	 * a record may not (the parser refuses NUL). */
	json_t *j = json_loadb(s, n, record ? 0 : JSON_ALLOW_NUL, &jerr);

	if (j == NULL) {
		fprintf(stderr, "invalid JSON (%s): %.*s\n", jerr.text, (int)n,
			s);
		abort();
	}
	if (record) {
		void *it = json_object_iter(j);

		MUST(it != NULL &&
		     strcmp(json_object_iter_key(it), "channel_id") == 0);
		MUST(json_is_string(json_object_get(j, "message")));
		MUST(json_is_integer(json_object_get(j, "timestamp")));
		MUST(json_is_array(json_object_get(j, "emotes")));
	}
	json_decref(j);
}

static void check_msg(const struct cb_irc_msg *m, const char *base,
		      size_t len)
{
	MUST(m->nparams <= CB_IRC_PARAMS_MAX);
	MUST(m->ntags <= CB_IRC_TAGS_MAX);
	MUST(m->command.p != NULL && m->command.len > 0);
	MUST(inside(m->command, base, len));
	for (size_t i = 0; i < m->command.len; i++) {
		char c = m->command.p[i];

		MUST((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
	}
	MUST(inside(m->prefix, base, len) && inside(m->nick, base, len) &&
	     inside(m->user, base, len) && inside(m->host, base, len));
	for (size_t i = 0; i < m->nparams; i++)
		MUST(inside(m->params[i], base, len));
	for (size_t i = 0; i < m->ntags; i++) {
		MUST(m->tags[i].key.len > 0);
		MUST(inside(m->tags[i].key, base, len));
		MUST(inside(m->tags[i].value, base, len));
	}
}

static void check_emotes(const struct cb_twitch_emotes *e, const char *text,
			 size_t text_len)
{
	MUST(e->n <= CB_TWITCH_EMOTES_MAX);
	MUST(!e->malformed || e->n == 0);
	for (size_t i = 0; i < e->n; i++) {
		struct cb_irc_str t = {text, text_len};

		if (text == NULL)
			MUST(e->v[i].name.len == 0);
		else
			MUST(inside(e->v[i].name, t.p, t.len));
		MUST(i == 0 || e->v[i - 1].start <= e->v[i].start);
		MUST(e->v[i].start <= e->v[i].end || e->v[i].out_of_range);
	}
}

static void check_twitch(const struct cb_twitch_msg *t, const char *base,
			 size_t len)
{
	MUST(inside(t->channel, base, len) && inside(t->text, base, len) &&
	     inside(t->user_login, base, len) &&
	     inside(t->message_id, base, len));
	MUST(t->nbadges <= CB_TWITCH_BADGES_MAX &&
	     t->nbadge_info <= CB_TWITCH_BADGES_MAX);
	for (size_t i = 0; i < t->nbadges; i++)
		MUST(inside(t->badges[i].name, base, len) &&
		     inside(t->badges[i].version, base, len));
	check_emotes(&t->emotes, t->text.p, t->text.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct cb_chatmsg out, out2;
	char errstr[256];
	size_t dlq_len = 0;
	const char *nul;
	int rc, rc2;

	/* the dead letter and the escaper take any bytes */
	rc = cb_chatmsg_dlq(in, size > CB_IRC_LINE_MAX + 64 ? 0 : size,
			    "fuzz \"reason\"", "irc", -1, dlq, sizeof(dlq),
			    &dlq_len);
	MUST(rc == 0);
	valid_json(dlq, dlq_len, false);

	nul = memchr(in, '\0', size);
	if (nul != NULL) {
		size_t tl = (size_t)(nul - in);

		cb_twitch_emotes(in, tl, nul + 1, size - tl - 1, &emotes);
		check_emotes(&emotes, nul + 1, size - tl - 1);
	}

	if (size > sizeof(line))
		return 0;
	memcpy(line, data, size);
	errstr[0] = '\0';
	rc = cb_irc_parse(line, size, &msg, errstr, sizeof(errstr));
	if (rc != 0) {
		MUST(rc < 0 && errstr[0] != '\0');
		return 0;
	}
	check_msg(&msg, line, size);
	MUST(cb_twitch_decode(&msg, &tw, NULL, 0) == 0);
	check_twitch(&tw, line, size);

	errstr[0] = '\0';
	rc = cb_chatmsg_from_irc(&msg, 1700000000000LL, true, &out, json1,
				 sizeof(json1), errstr, sizeof(errstr));
	MUST(rc == CB_CHATMSG_NONE || rc == CB_CHATMSG_CHAT ||
	     rc == CB_CHATMSG_EVENT || (rc < 0 && errstr[0] != '\0'));
	if (rc <= 0)
		return 0;
	MUST(out.json == json1 && out.json_len <= sizeof(json1));
	valid_json(out.json, out.json_len, true);
	MUST(out.channel_len > 0 && out.channel_len <= 25 &&
	     strlen(out.channel) == out.channel_len);
	MUST(out.dedupe_len > 0 &&
	     (inside((struct cb_irc_str){out.dedupe, out.dedupe_len}, line,
		     size) ||
	      inside((struct cb_irc_str){out.dedupe, out.dedupe_len}, json1,
		     out.json_len)));

	/* replay: the same bytes give the same record */
	memcpy(line2, data, size);
	MUST(cb_irc_parse(line2, size, &msg2, NULL, 0) == 0);
	rc2 = cb_chatmsg_from_irc(&msg2, 1700000000000LL, true, &out2, json2,
				  sizeof(json2), NULL, 0);
	MUST(rc2 == rc && out2.json_len == out.json_len &&
	     memcmp(json1, json2, out.json_len) == 0 &&
	     memcmp(out.message_id, out2.message_id, 16) == 0);
	return 0;
}
