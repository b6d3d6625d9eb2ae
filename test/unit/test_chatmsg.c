/*
 * test_chatmsg.c - the ChatMessage/event/dead-letter JSON (src/chatmsg.c)
 * and the JSON writer under it (src/json.c).  Every output is parsed back
 * with jansson (which also rejects invalid UTF-8), fields are checked
 * against docs/contracts.md and against the twitch-irc fixture's expected
 * values, and the escaping, derived UUIDs, buffer limits and DLQ records
 * are checked one by one.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdint.h>

#include "chatbattle/chatmsg.h"
#include "chatbattle/err.h"
#include "chatbattle/irc_msg.h"
#include "chatbattle/json.h"
#include "test.h"

#define RECV_MS 1700000000123LL

static struct cb_irc_msg msg;
static char line[CB_IRC_LINE_MAX + 64];
static char buf[CB_CHATMSG_BUF_SIZE];
static struct cb_chatmsg out;
static char errstr[256];

/* Parses s and converts it; returns cb_chatmsg_from_irc's result (or the
 * parse error). */
static int convert_n(const char *s, size_t n, bool events)
{
	int err;

	memcpy(line, s, n);
	err = cb_irc_parse(line, n, &msg, errstr, sizeof(errstr));
	if (err != 0)
		return err;
	memset(&out, 0, sizeof(out));
	return cb_chatmsg_from_irc(&msg, RECV_MS, events, &out, buf,
				   sizeof(buf), errstr, sizeof(errstr));
}

static int convert(const char *s)
{
	return convert_n(s, strlen(s), true);
}

/* The record as a jansson object (NULL when it is not valid JSON). */
static json_t *load_out(void)
{
	json_error_t jerr;
	json_t *j = json_loadb(out.json, out.json_len, 0, &jerr);

	if (j == NULL)
		printf("# invalid JSON (%s): %.*s\n", jerr.text,
		       (int)out.json_len, out.json);
	return j;
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The first six keys are the original ones, in the original order. */
static bool original_order(json_t *j)
{
	static const char *const keys[] = {"channel_id", "user_id", "username",
					   "message",    "timestamp", "emotes"};
	void *it = json_object_iter(j);

	for (size_t i = 0; i < 6; i++) {
		if (it == NULL || strcmp(json_object_iter_key(it), keys[i]) != 0)
			return false;
		it = json_object_iter_next(j, it);
	}
	return true;
}

/* ---- contract, exact ---- */

static void test_chat_message_exact(void)
{
	static const char want[] =
		"{\"channel_id\":\"pajlada\",\"user_id\":\"29803735\","
		"\"username\":\"jun1orrrr\",\"message\":\"dank cam\","
		"\"timestamp\":1594545155039,\"emotes\":[\"Kappa\"],"
		"\"message_id\":\"e9d998c3-36f1-430f-89ec-6b887c28af36\","
		"\"display_name\":\"JuN1oRRRR\",\"room_id\":\"11148817\","
		"\"type\":\"message\",\"color\":\"#0000FF\","
		"\"badges\":{\"subscriber\":\"12\"},"
		"\"badge_info\":{\"subscriber\":\"22\"},\"bits\":0,"
		"\"is_action\":false,\"first_msg\":false,"
		"\"emote_details\":[{\"id\":\"25\",\"name\":\"Kappa\","
		"\"start\":5,\"end\":9}],"
		"\"received_at\":1700000000123}";

	CHECK_INT(convert("@badge-info=subscriber/22;badges=subscriber/12;"
			  "color=#0000FF;display-name=JuN1oRRRR;emotes=25:5-9;"
			  "flags=;id=e9d998c3-36f1-430f-89ec-6b887c28af36;"
			  "mod=0;room-id=11148817;subscriber=0;"
			  "tmi-sent-ts=1594545155039;turbo=0;user-id=29803735;"
			  "user-type= :jun1orrrr!jun1orrrr@jun1orrrr.tmi."
			  "twitch.tv PRIVMSG #pajlada :dank Kappa cam"),
		  CB_CHATMSG_CHAT);
	/* the message is "dank Kappa cam": fix the expected text */
	{
		char w[sizeof(want) + 16];
		const char *a = strstr(want, "dank cam");

		snprintf(w, sizeof(w), "%.*sdank Kappa cam%s",
			 (int)(a - want), want, a + 8);
		if (out.json_len != strlen(w) ||
		    memcmp(out.json, w, out.json_len) != 0) {
			printf("# got  %.*s\n# want %s\n", (int)out.json_len,
			       out.json, w);
			CHECK(0);
		}
	}
	CHECK_STR(out.channel, "pajlada");
	CHECK_INT(out.channel_len, 7);
	CHECK_INT(out.type, CB_CT_MESSAGE);
	CHECK(!out.message_id_derived);
	CHECK_INT(out.message_id[0], 0xe9);
	CHECK_INT(out.message_id[15], 0x36);
	CHECK(out.timestamp_ms == 1594545155039LL);
	CHECK(out.dedupe_len == 36 &&
	      memcmp(out.dedupe, "e9d998c3-36f1-430f-89ec-6b887c28af36", 36) ==
		      0);
}

/* A reply, an action, bits, first message, shared chat: the extra fields. */
static void test_chat_message_extras(void)
{
	json_t *j, *rp;

	CHECK_INT(convert("@bits=100;first-msg=1;id=8a3b7e5f-0000-4000-8000-"
			  "000000000001;reply-parent-msg-id=p1;"
			  "reply-parent-user-id=7;reply-parent-user-login=bob;"
			  "reply-parent-display-name=Bob;reply-parent-msg-body="
			  "hi\\sthere\\:);source-room-id=99;source-id=src-1;"
			  "tmi-sent-ts=5;user-id=1 :al!al@al PRIVMSG #Chan "
			  ":\001ACTION cheer100 wave\001"),
		  CB_CHATMSG_CHAT);
	j = load_out();
	CHECK(j != NULL);
	CHECK(original_order(j));
	CHECK_STR(jstr(j, "channel_id"), "chan");
	CHECK_STR(jstr(j, "message"), "cheer100 wave");
	CHECK(json_is_true(json_object_get(j, "is_action")));
	CHECK(json_is_true(json_object_get(j, "first_msg")));
	CHECK_INT(json_integer_value(json_object_get(j, "bits")), 100);
	CHECK_INT(json_integer_value(json_object_get(j, "timestamp")), 5);
	rp = json_object_get(j, "reply_parent");
	CHECK(rp != NULL);
	CHECK_STR(jstr(rp, "message_id"), "p1");
	CHECK_STR(jstr(rp, "user_id"), "7");
	CHECK_STR(jstr(rp, "username"), "bob");
	CHECK_STR(jstr(rp, "display_name"), "Bob");
	CHECK_STR(jstr(rp, "message"), "hi there;)");
	CHECK_STR(jstr(j, "source_room_id"), "99");
	CHECK_STR(jstr(j, "source_message_id"), "src-1");
	/* absent when empty */
	CHECK(json_object_get(j, "color") == NULL);
	CHECK(json_object_get(j, "badges") == NULL);
	CHECK(json_object_get(j, "emote_details") == NULL);
	CHECK(json_object_get(j, "display_name") == NULL);
	CHECK(json_is_array(json_object_get(j, "emotes")));
	/* shared chat dedupes on source-id */
	CHECK(out.dedupe_len == 5 && memcmp(out.dedupe, "src-1", 5) == 0);
	json_decref(j);
}

/* ---- escaping ---- */

static void test_escaping_in_records(void)
{
	/* every control byte but NUL/CR/LF (which IRC cannot carry), quotes,
	 * backslashes, DEL, invalid UTF-8 */
	char l[512];
	size_t n = (size_t)snprintf(l, sizeof(l),
				    "@tmi-sent-ts=1;display-name=a\\\\b\\n\"c\\r"
				    " :u!u@u PRIVMSG #c :");
	char want[256];
	size_t wn = 0;
	json_t *j;

	for (int c = 1; c < 0x20; c++) {
		if (c == '\r' || c == '\n')
			continue;
		l[n++] = (char)c;
		want[wn++] = (char)c;
	}
	memcpy(l + n, "\"\\\x7F\xFF\xC3(\xE2\x82\xAC", 9);
	n += 9;
	memcpy(want + wn, "\"\\\x7F\xEF\xBF\xBD\xEF\xBF\xBD(\xE2\x82\xAC",
	       13);
	wn += 13;
	CHECK_INT(convert_n(l, n, true), CB_CHATMSG_CHAT);
	for (size_t i = 0; i < out.json_len; i++)
		CHECK((unsigned char)out.json[i] >= 0x20);
	j = load_out();
	CHECK(j != NULL);
	CHECK_INT(json_string_length(json_object_get(j, "message")), wn);
	CHECK(memcmp(jstr(j, "message"), want, wn) == 0);
	CHECK_STR(jstr(j, "display_name"), "a\\b\n\"c\r");
	CHECK(strstr(out.json, "\\u0001\\u0002") != NULL);
	CHECK(strstr(out.json, "\\b\\t") != NULL);
	json_decref(j);
}

static void test_json_escape_unit(void)
{
	static const struct {
		const char *in;
		size_t n;
		const char *want;
	} cases[] = {
		{"plain", 5, "plain"},
		{"\"\\/", 3, "\\\"\\\\/"},
		{"\b\f\n\r\t", 5, "\\b\\f\\n\\r\\t"},
		{"\0\x1f\x7f", 3, "\\u0000\\u001f\x7f"},
		{"\xE2\x80\xA8", 3, "\xE2\x80\xA8"},       /* U+2028 kept */
		{"\xF0\x9F\x98\x82", 4, "\xF0\x9F\x98\x82"}, /* astral */
		{"\xEF\xBF\xBD", 3, "\xEF\xBF\xBD"},       /* literal U+FFFD */
		{"\xC0\x80", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong NUL */
		{"\xED\xA0\x80", 3,
		 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
		{"\xF4\x90\x80\x80", 4,
		 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
		{"a\xE2\x82", 3, "a\xEF\xBF\xBD\xEF\xBF\xBD"}, /* truncated */
		{"\x80z", 2, "\xEF\xBF\xBDz"},
		{"", 0, ""},
	};
	char o[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t need = cb_json_escape(o, sizeof(o), cases[i].in,
					     cases[i].n);

		if (need != strlen(cases[i].want) ||
		    memcmp(o, cases[i].want, need) != 0) {
			printf("# case %zu: got %zu bytes \"%.*s\"\n", i, need,
			       (int)need, o);
			CHECK(0);
		}
	}
	/* every byte value, alone and paired, comes out as valid JSON */
	for (int a = 0; a < 256; a++) {
		for (int b = 0; b < 256; b += 17) {
			char in[2] = {(char)a, (char)b}, q[32];
			size_t need = cb_json_escape(q + 1, sizeof(q) - 2, in, 2);
			json_t *j;

			q[0] = '"';
			q[need + 1] = '"';
			j = json_loadb(q, need + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL,
				       NULL);
			if (j == NULL) {
				printf("# bytes %02x %02x: invalid JSON\n", a,
				       b);
				CHECK(0);
			}
			json_decref(j);
		}
	}
	/* snprintf-like: the needed size, and nothing past cap */
	memset(o, '#', sizeof(o));
	CHECK_INT(cb_json_escape(o, 4, "ab\"cd", 5), 6);
	CHECK(memcmp(o, "ab\\\"", 4) == 0);
	CHECK(o[4] == '#');
	CHECK_INT(cb_json_escape(o, 0, "\xF0\x9F\x98\x82", 4), 4);
}

static void test_utf8_decoder(void)
{
	uint32_t cp;

	CHECK_INT(cb_json_utf8_next("A", 1, &cp), 1);
	CHECK_INT(cp, 'A');
	CHECK_INT(cb_json_utf8_next("\xC3\xA5", 2, &cp), 2);
	CHECK_INT(cp, 0xE5);
	CHECK_INT(cb_json_utf8_next("\xF3\xA0\x80\x80", 4, &cp), 4);
	CHECK_INT(cp, 0xE0000);
	CHECK_INT(cb_json_utf8_next("\xF3\xA0\x80", 3, &cp), 1);
	CHECK_INT(cp, 0xFFFD);
	CHECK_INT(cb_json_utf8_next("\xE0\x9F\xBF", 3, &cp), 1); /* overlong */
	CHECK(cb_json_utf8_valid("h\xC3\xA9llo \xF0\x9F\x98\x82", 11));
	CHECK(cb_json_utf8_valid("", 0));
	CHECK(!cb_json_utf8_valid("a\xFF", 2));
	CHECK(!cb_json_utf8_valid("\xED\xBF\xBF", 3));
}

static void test_base64(void)
{
	static const char *const vec[][2] = {
		{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
		{"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
		{"foobar", "Zm9vYmFy"},
	};
	char o[16];

	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		size_t n = cb_json_base64(o, sizeof(o), vec[i][0],
					  strlen(vec[i][0]));

		CHECK_INT(n, strlen(vec[i][1]));
		CHECK(memcmp(o, vec[i][1], n) == 0);
	}
	CHECK_INT(cb_json_base64(o, 3, "foo", 3), 4); /* too small */
}

static void test_writer_ints(void)
{
	char o[64];
	struct cb_json_w w;

	cb_json_w_init(&w, o, sizeof(o));
	cb_json_w_int(&w, INT64_MIN);
	cb_json_w_raw(&w, " ", 1);
	cb_json_w_int(&w, INT64_MAX);
	cb_json_w_raw(&w, " ", 1);
	cb_json_w_int(&w, 0);
	cb_json_w_raw(&w, " ", 1);
	cb_json_w_int(&w, -7);
	CHECK(!w.overflow);
	CHECK(w.len == strlen("-9223372036854775808 9223372036854775807 0 -7"));
	CHECK(memcmp(o, "-9223372036854775808 9223372036854775807 0 -7",
		     w.len) == 0);
	cb_json_w_init(&w, o, 3);
	cb_json_w_str(&w, "abc", 3);
	CHECK(w.overflow);
	CHECK_INT(w.len, 5);
}

/* ---- message ids ---- */

static void test_derived_uuid(void)
{
	uint8_t a[16], b[16];
	char s[37] = {0};

	/* Cross-checked with Python: uuid.uuid5(UUID("917221c0-2626-4aea-
	 * a967-8099bbfe6d33"), "pajlada\0" "1594545155039\0" "29803735\0"
	 * "dank cam"). */
	cb_chatmsg_derive_uuid("pajlada", 7, 1594545155039LL, "29803735", 8,
			       "dank cam", 8, a);
	cb_chatmsg_format_uuid(a, s);
	CHECK_STR(s, "394a31f1-ef50-5b4c-b26a-081f5d07bc73");
	cb_chatmsg_derive_uuid("c", 1, -5, "", 0, "", 0, b);
	cb_chatmsg_format_uuid(b, s);
	CHECK_STR(s, "4627d14c-db94-56f1-94f9-9cddf64f0f68");
	cb_chatmsg_derive_uuid("pajlada", 7, 1594545155039LL, "29803735", 8,
			       "dank cam!", 9, b);
	CHECK(memcmp(a, b, 16) != 0);

	/* a line with an id that is no UUID: derived, same on replay */
	CHECK_INT(convert("@id=test-id;source-id=source-test-id;"
			  "tmi-sent-ts=1234567890000;user-id=987654 "
			  ":testuser!testuser@x PRIVMSG #testchannel :Hello"),
		  CB_CHATMSG_CHAT);
	CHECK(out.message_id_derived);
	CHECK_INT(out.message_id[6] >> 4, 5);
	CHECK_INT(out.message_id[8] >> 6, 2);
	memcpy(a, out.message_id, 16);
	cb_chatmsg_derive_uuid("testchannel", 11, 1234567890000LL, "987654", 6,
			       "Hello", 5, b);
	CHECK(memcmp(a, b, 16) == 0);
	CHECK(out.dedupe_len == 14 &&
	      memcmp(out.dedupe, "source-test-id", 14) == 0);
	CHECK_INT(convert("@id=test-id;source-id=source-test-id;"
			  "tmi-sent-ts=1234567890000;user-id=987654 "
			  ":testuser!testuser@x PRIVMSG #testchannel :Hello"),
		  CB_CHATMSG_CHAT);
	CHECK(memcmp(a, out.message_id, 16) == 0);

	/* no id at all: dedupe on the derived text inside the JSON */
	CHECK_INT(convert(":u!u@u PRIVMSG #c :no tags"), CB_CHATMSG_CHAT);
	CHECK(out.message_id_derived);
	cb_chatmsg_format_uuid(out.message_id, s);
	CHECK(out.dedupe_len == 36 && memcmp(out.dedupe, s, 36) == 0);
	CHECK(out.dedupe > buf && out.dedupe < buf + out.json_len);
	/* no tmi-sent-ts: timestamp is the receive time, in the uuid too */
	CHECK(out.timestamp_ms == RECV_MS);
	cb_chatmsg_derive_uuid("c", 1, RECV_MS, "u", 1, "no tags", 7, b);
	CHECK(memcmp(out.message_id, b, 16) == 0);

	/* upper-case UUIDs are accepted, written lower-case */
	CHECK_INT(convert("@id=E9D998C3-36F1-430F-89EC-6B887C28AF36 :u!u@u "
			  "PRIVMSG #c :x"),
		  CB_CHATMSG_CHAT);
	CHECK(!out.message_id_derived);
	CHECK(strstr(out.json, "e9d998c3-36f1-430f-89ec-6b887c28af36") != NULL);
	CHECK(!cb_chatmsg_parse_uuid("e9d998c3-36f1-430f-89ec-6b887c28af3", 35,
				     a));
	CHECK(!cb_chatmsg_parse_uuid("e9d998c3x36f1-430f-89ec-6b887c28af36", 36,
				     a));
	CHECK(!cb_chatmsg_parse_uuid("g9d998c3-36f1-430f-89ec-6b887c28af36", 36,
				     a));
}

/* tmi-sent-ts that is negative or zero is no event time. */
static void test_bad_timestamp(void)
{
	CHECK_INT(convert("@tmi-sent-ts=-6795364578871 :u!u@u PRIVMSG #c :x"),
		  CB_CHATMSG_CHAT);
	CHECK(out.timestamp_ms == RECV_MS);
	CHECK_INT(convert("@tmi-sent-ts=abc :u!u@u PRIVMSG #c :x"),
		  CB_CHATMSG_CHAT);
	CHECK(out.timestamp_ms == RECV_MS);
}

/* ---- emotes in records ---- */

static void test_emotes_in_records(void)
{
	json_t *j, *names;

	/* out-of-range ranges are dropped, the good one kept */
	CHECK_INT(convert("@emotes=25:0-4,8-12,40-44/1902:6-6 :u!u@u PRIVMSG "
			  "#c :Kappa \xF0\x9F\x98\x82 Kappa"),
		  CB_CHATMSG_CHAT);
	j = load_out();
	CHECK(j != NULL);
	names = json_object_get(j, "emotes");
	CHECK_INT(json_array_size(names), 3);
	CHECK_STR(json_string_value(json_array_get(names, 0)), "Kappa");
	CHECK_STR(json_string_value(json_array_get(names, 1)),
		  "\xF0\x9F\x98\x82");
	CHECK_STR(json_string_value(json_array_get(names, 2)), "Kappa");
	CHECK_INT(json_array_size(json_object_get(j, "emote_details")), 3);
	json_decref(j);

	/* malformed: none, the message still goes through */
	CHECK_INT(convert("@emotes=80481_/3:7-14 :u!u@u PRIVMSG #c :x pajaW_/3"),
		  CB_CHATMSG_CHAT);
	j = load_out();
	CHECK(j != NULL);
	CHECK_INT(json_array_size(json_object_get(j, "emotes")), 0);
	json_decref(j);
}

/* ---- events ---- */

static void test_events(void)
{
	static const struct {
		const char *line;
		const char *type;
		const char *message;
		const char *username;
	} cases[] = {
		{"@msg-id=sub;login=a;system-msg=a\\ssubscribed :tmi.twitch.tv "
		 "USERNOTICE #c",
		 "sub", "a subscribed", "a"},
		{"@msg-id=resub;login=b;system-msg=x :tmi.twitch.tv USERNOTICE "
		 "#c :great stream",
		 "resub", "great stream", "b"},
		{"@msg-id=anonsubgift;login=ananonymousgifter :tmi.twitch.tv "
		 "USERNOTICE #c",
		 "subgift", "", "ananonymousgifter"},
		{"@msg-id=submysterygift;login=d :tmi.twitch.tv USERNOTICE #c",
		 "submysterygift", "", "d"},
		{"@msg-id=giftpaidupgrade;login=d :tmi.twitch.tv USERNOTICE #c",
		 "giftpaidupgrade", "", "d"},
		{"@msg-id=raid;login=r;system-msg=5\\sraiders\\n! "
		 ":tmi.twitch.tv USERNOTICE #c",
		 "raid", "5 raiders\n!", "r"},
		{"@msg-id=announcement;login=m :tmi.twitch.tv USERNOTICE #c :hi",
		 "announcement", "hi", "m"},
		{"@msg-id=ritual;login=n :tmi.twitch.tv USERNOTICE #c :HeyGuys",
		 "ritual", "HeyGuys", "n"},
		{"@msg-id=bitsbadgetier;login=n :tmi.twitch.tv USERNOTICE #c",
		 "bitsbadgetier", "", "n"},
		{"@msg-id=viewermilestone;login=n :tmi.twitch.tv USERNOTICE #c",
		 "viewermilestone", "", "n"},
		{"@msg-id=sharedchatnotice;login=n :tmi.twitch.tv USERNOTICE #c",
		 "usernotice", "", "n"},
		{"@ban-duration=600;target-user-id=42 :tmi.twitch.tv CLEARCHAT "
		 "#c :weeb123",
		 "timeout", "", "weeb123"},
		{"@target-user-id=42 :tmi.twitch.tv CLEARCHAT #c :weeb123", "ban",
		 "", "weeb123"},
		{"@room-id=1 :tmi.twitch.tv CLEARCHAT #c", "clearchat", "", ""},
		{"@login=alazymeme;target-msg-id=3c92014f :tmi.twitch.tv "
		 "CLEARMSG #c :NIGHT",
		 "clearmsg", "NIGHT", "alazymeme"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j;
		int rc = convert(cases[i].line);

		if (rc != CB_CHATMSG_EVENT) {
			printf("# case %zu: rc %d (%s)\n", i, rc, errstr);
			CHECK(0);
		}
		j = load_out();
		CHECK(j != NULL);
		CHECK(original_order(j));
		CHECK_STR(jstr(j, "type"), cases[i].type);
		CHECK_STR(cb_chatmsg_type_name(out.type), cases[i].type);
		CHECK_STR(jstr(j, "message"), cases[i].message);
		CHECK_STR(jstr(j, "username"), cases[i].username);
		CHECK_STR(jstr(j, "channel_id"), "c");
		CHECK(json_object_get(j, "bits") == NULL);
		json_decref(j);
		/* events are off: nothing */
		CHECK_INT(convert_n(cases[i].line, strlen(cases[i].line), false),
			  CB_CHATMSG_NONE);
	}

	/* ban details */
	CHECK_INT(convert("@ban-duration=600;target-user-id=42 :tmi.twitch.tv "
			  "CLEARCHAT #c :weeb123"),
		  CB_CHATMSG_EVENT);
	{
		json_t *j = load_out();

		CHECK(j != NULL);
		CHECK_STR(jstr(j, "target_user"), "weeb123");
		CHECK_STR(jstr(j, "target_user_id"), "42");
		CHECK_STR(jstr(j, "user_id"), "42");
		CHECK_INT(json_integer_value(json_object_get(j, "ban_duration")),
			  600);
		json_decref(j);
	}
}

/* A resub whose message is a /me: unwrapped in the event; Twitch's ranges
 * count "ACTION Kappa ..." (twitchdev/issues#175), so the names are cut
 * there and the ranges shifted onto the message. */
static void test_usernotice_me_unwrapped(void)
{
	json_t *j, *e;

	CHECK_INT(convert("@emotes=25:7-11,23-27/499:29-30;login=randers;"
			  "msg-id=resub;tmi-sent-ts=1 :tmi.twitch.tv USERNOTICE "
			  "#pajlada :\001ACTION Kappa TEST TEST Kappa :)\001"),
		  CB_CHATMSG_EVENT);
	j = load_out();
	CHECK(j != NULL);
	CHECK_STR(jstr(j, "message"), "Kappa TEST TEST Kappa :)");
	CHECK(json_is_true(json_object_get(j, "is_action")));
	e = json_object_get(j, "emotes");
	CHECK_INT(json_array_size(e), 3);
	CHECK_STR(json_string_value(json_array_get(e, 0)), "Kappa");
	CHECK_STR(json_string_value(json_array_get(e, 1)), "Kappa");
	CHECK_STR(json_string_value(json_array_get(e, 2)), ":)");
	/* emote_details index the unwrapped message */
	e = json_object_get(j, "emote_details");
	CHECK_INT(json_integer_value(json_object_get(json_array_get(e, 0),
						     "start")),
		  0);
	CHECK_INT(json_integer_value(json_object_get(json_array_get(e, 1),
						     "start")),
		  16);
	CHECK_INT(json_integer_value(json_object_get(json_array_get(e, 2),
						     "end")),
		  23);
	json_decref(j);
}

/* ---- dead letters ---- */

static void test_dead_letter_reasons(void)
{
	static const struct {
		const char *line;
		const char *reason;
	} cases[] = {
		{":u!u@u PRIVMSG", "PRIVMSG without channel"},
		{":u!u@u PRIVMSG bar :lol", "PRIVMSG without channel"},
		{":u!u@u PRIVMSG #c", "PRIVMSG without text"},
		{":u!u@u PRIVMSG #c :", "PRIVMSG with empty text"},
		{":u!u@u PRIVMSG #c :\001ACTION \001", "PRIVMSG with empty text"},
		{":u!u@u PRIVMSG #foo-bar :x", "not a Twitch login"},
		{":u!u@u PRIVMSG # :x", "not a Twitch login"},
		{":u!u@u PRIVMSG #abcdefghijklmnopqrstuvwxyz :x",
		 "not a Twitch login"},
		{"@msg-id=sub :tmi.twitch.tv USERNOTICE", "USERNOTICE without "
							  "channel"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		errstr[0] = '\0';
		bool keyed = strstr(cases[i].reason, "text") != NULL;

		/* the key of the dead letter: the channel once it is known */
		if (convert(cases[i].line) != CB_E_PARSE ||
		    strstr(errstr, cases[i].reason) == NULL ||
		    strcmp(out.channel, keyed ? "c" : "") != 0) {
			printf("# case %zu: \"%s\"\n", i, errstr);
			CHECK(0);
		}
	}
	/* not records at all */
	CHECK_INT(convert("PING :tmi.twitch.tv"), CB_CHATMSG_NONE);
	CHECK_INT(convert("@room-id=1 :tmi.twitch.tv ROOMSTATE #c"),
		  CB_CHATMSG_NONE);
	CHECK_INT(convert(":tmi.twitch.tv NOTICE * :Login authentication "
			  "failed"),
		  CB_CHATMSG_NONE);
	CHECK_INT(convert("@badges= :tmi.twitch.tv USERSTATE #c"),
		  CB_CHATMSG_NONE);
	CHECK_INT(convert(":a!a@a WHISPER b :hi"), CB_CHATMSG_NONE);
	CHECK_INT(convert(":a!a@a JOIN #c"), CB_CHATMSG_NONE);
}

/* Every capacity short of the record fails cleanly, never writing past
 * cap; the exact size succeeds. */
static void test_buffer_limits(void)
{
	static char small[2048];
	const char *l = "@emotes=25:0-4;badges=a/1,b/2;reply-parent-msg-id=x "
			":u!u@u PRIVMSG #c :Kappa \"quoted\" \xFF";
	size_t need;
	int rc;

	CHECK_INT(convert(l), CB_CHATMSG_CHAT);
	need = out.json_len;
	for (size_t cap = 0; cap < need; cap++) {
		memcpy(line, l, strlen(l));
		CHECK_INT(cb_irc_parse(line, strlen(l), &msg, NULL, 0), 0);
		memset(small, '#', sizeof(small));
		rc = cb_chatmsg_from_irc(&msg, RECV_MS, true, &out, small, cap,
					 errstr, sizeof(errstr));
		CHECK_INT(rc, CB_E_TOOBIG);
		CHECK(small[cap] == '#');
		CHECK_STR(out.channel, "c"); /* the dead letter's key */
	}
	CHECK(strstr(errstr, "exceeds") != NULL);
	memcpy(line, l, strlen(l));
	CHECK_INT(cb_irc_parse(line, strlen(l), &msg, NULL, 0), 0);
	CHECK_INT(cb_chatmsg_from_irc(&msg, RECV_MS, true, &out, small, need,
				      NULL, 0),
		  CB_CHATMSG_CHAT);
	CHECK_INT(out.json_len, need);

	/* the largest line, its text all control bytes (\u0001 each), is
	 * refused with a reason, never overflows */
	{
		static char big[CB_IRC_LINE_MAX];
		size_t hdr = strlen(":u!u@u PRIVMSG #c :");

		memcpy(big, ":u!u@u PRIVMSG #c :", hdr);
		memset(big + hdr, '\x01', sizeof(big) - hdr);
		rc = convert_n(big, sizeof(big), true);
		CHECK_INT(rc, CB_E_TOOBIG); /* 6 x 16 KiB > 64 KiB */
		CHECK(strstr(errstr, "exceeds its buffer") != NULL);
	}
}

static void test_dlq(void)
{
	char o[512];
	size_t len = 0;
	json_t *j;
	const char raw[] = "@a=b :x PRIVMSG :\"quoted\"\x01";
	const char bin[] = "PRIVMSG #c :\xFF\xFE";

	CHECK_INT(cb_chatmsg_dlq(raw, sizeof(raw) - 1, "PRIVMSG without channel",
				 "irc", 1594545155101LL, o, sizeof(o), &len),
		  0);
	j = json_loadb(o, len, 0, NULL);
	CHECK(j != NULL);
	CHECK(len > 30 && memcmp(o, "{\"reason\":\"PRIVMSG without channel\","
				    "\"stage\":\"irc\",\"raw\":",
				 52) == 0);
	CHECK_STR(jstr(j, "raw"), raw);
	CHECK_INT(json_integer_value(json_object_get(j, "received_at")),
		  1594545155101LL);
	json_decref(j);

	CHECK_INT(cb_chatmsg_dlq(bin, sizeof(bin) - 1, "bad", "irc", 1, o,
				 sizeof(o), &len),
		  0);
	j = json_loadb(o, len, 0, NULL);
	CHECK(j != NULL);
	CHECK(json_object_get(j, "raw") == NULL);
	CHECK_STR(jstr(j, "raw_base64"), "UFJJVk1TRyAjYyA6//4=");
	json_decref(j);

	/* regression (fuzz_irc_msg): a raw line holding NUL bytes is valid
	 * UTF-8, written as text with \u0000 escapes */
	CHECK_INT(cb_chatmsg_dlq("a\0b", 3, "r", "irc", 1, o, sizeof(o), &len),
		  0);
	CHECK(strstr(o, "\"raw\":\"a\\u0000b\"") != NULL);
	j = json_loadb(o, len, JSON_ALLOW_NUL, NULL);
	CHECK(j != NULL);
	CHECK_INT(json_string_length(json_object_get(j, "raw")), 3);
	json_decref(j);

	/* optional reason/stage, empty raw */
	CHECK_INT(cb_chatmsg_dlq(NULL, 0, NULL, NULL, 2, o, sizeof(o), &len), 0);
	CHECK(len == strlen("{\"raw\":\"\",\"received_at\":2}") &&
	      memcmp(o, "{\"raw\":\"\",\"received_at\":2}", len) == 0);

	/* too small: refused, size reported */
	CHECK_INT(cb_chatmsg_dlq(raw, sizeof(raw) - 1, "r", "irc", 1, o, 10,
				 &len),
		  CB_E_TOOBIG);
	CHECK(len > 10);
	CHECK(len <= CB_CHATMSG_DLQ_MAX(sizeof(raw) - 1, 4));
	CHECK_INT(cb_chatmsg_dlq(bin, sizeof(bin) - 1, "r", "irc", 1, o, 20,
				 &len),
		  CB_E_TOOBIG);
}

/* ---- the whole fixture ---- */

static bool is_login(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 25)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* Each fixture line through cb_chatmsg_from_irc: valid JSON, original keys
 * first, values equal to the fixture's expected ones. */
static void test_fixture_records(void)
{
	char path[1024], *fb = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int chats = 0, events = 0, dlq = 0, none = 0, bad = 0;

	snprintf(path, sizeof(path), "%s/test/fixtures/twitch-irc/expected.jsonl",
		 t_root());
	f = fopen(path, "r");
	CHECK(f != NULL);
	while ((n = getline(&fb, &cap, f)) > 0) {
		json_t *r = json_loadb(fb, (size_t)n, 0, NULL), *j;
		const char *cmd = r ? jstr(r, "command") : NULL;
		json_t *raw = r ? json_object_get(r, "raw") : NULL;
		const char *ch, *text;
		bool want_chat;
		int rc;

		if (r == NULL || cmd == NULL ||
		    json_is_true(json_object_get(r, "expect_error"))) {
			json_decref(r);
			continue;
		}
		rc = convert_n(json_string_value(raw), json_string_length(raw),
			       true);
		ch = jstr(r, "channel");
		text = jstr(r, "text");
		want_chat = strcmp(cmd, "PRIVMSG") == 0 && ch && is_login(ch) &&
			    text && text[0];
		if (rc < 0) {
			dlq++;
			if (want_chat || (strcmp(cmd, "PRIVMSG") != 0 &&
					  ch != NULL && is_login(ch))) {
				printf("# unexpected dead letter (%s): %.120s\n",
				       errstr, json_string_value(raw));
				bad++;
			}
			json_decref(r);
			continue;
		}
		if (rc == CB_CHATMSG_NONE) {
			none++;
			if (want_chat || strcmp(cmd, "USERNOTICE") == 0 ||
			    strcmp(cmd, "CLEARCHAT") == 0 ||
			    strcmp(cmd, "CLEARMSG") == 0) {
				printf("# no record: %.120s\n",
				       json_string_value(raw));
				bad++;
			}
			json_decref(r);
			continue;
		}
		j = load_out();
		if (j == NULL || !original_order(j)) {
			printf("# bad JSON or key order: %.120s\n",
			       json_string_value(raw));
			bad++;
			json_decref(j);
			json_decref(r);
			continue;
		}
		if (rc == CB_CHATMSG_CHAT) {
			json_t *ts = json_object_get(r, "tmi_sent_ts");
			const char *id = jstr(r, "message_id");
			const char *ul = jstr(r, "user_login");
			const char *uid = jstr(r, "user_id");
			char lower[32];
			size_t k;

			chats++;
			for (k = 0; ch[k] && k < sizeof(lower) - 1; k++)
				lower[k] = (char)tolower((unsigned char)ch[k]);
			lower[k] = '\0';
			if (!want_chat || strcmp(jstr(j, "channel_id"), lower) ||
			    strcmp(jstr(j, "message"), text) ||
			    strcmp(jstr(j, "username"), ul ? ul : "") ||
			    strcmp(jstr(j, "user_id"), uid ? uid : "") ||
			    json_integer_value(json_object_get(j, "timestamp")) !=
				    (ts && json_integer_value(ts) > 0
					     ? json_integer_value(ts)
					     : RECV_MS) ||
			    (id && strlen(id) == 36 &&
			     strcmp(jstr(j, "message_id"), id) != 0) ||
			    json_is_true(json_object_get(j, "is_action")) !=
				    json_is_true(json_object_get(r, "is_action")) ||
			    strcmp(jstr(j, "type"), "message") != 0) {
				printf("# chat fields differ: %.*s\n",
				       (int)out.json_len, out.json);
				bad++;
			}
		} else {
			events++;
			if (strcmp(jstr(j, "type"), "message") == 0) {
				printf("# event typed message: %.120s\n",
				       out.json);
				bad++;
			}
		}
		json_decref(j);
		json_decref(r);
	}
	free(fb);
	fclose(f);
	printf("# fixture: %d chat messages, %d events, %d dead letters, %d "
	       "not records\n",
	       chats, events, dlq, none);
	CHECK(chats >= 50);
	CHECK(events >= 50);
	CHECK_INT(bad, 0);
}

int main(void)
{
	RUN(test_chat_message_exact);
	RUN(test_chat_message_extras);
	RUN(test_escaping_in_records);
	RUN(test_json_escape_unit);
	RUN(test_utf8_decoder);
	RUN(test_base64);
	RUN(test_writer_ints);
	RUN(test_derived_uuid);
	RUN(test_bad_timestamp);
	RUN(test_emotes_in_records);
	RUN(test_events);
	RUN(test_usernotice_me_unwrapped);
	RUN(test_dead_letter_reasons);
	RUN(test_buffer_limits);
	RUN(test_dlq);
	RUN(test_fixture_records);
	return test_done();
}
