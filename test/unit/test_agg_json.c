/*
 * test_agg_json.c - the aggregator's ChatMessage parser (valid and invalid
 * JSON, the original producers' variants, escapes, the emote block), the
 * message-id UUIDs, and the JSON writer with base64 and UTF-8 checks.  The
 * parser's verdict on every line of the IRC fixture corpus' expected.jsonl
 * (real-world JSON) must agree with jansson's.
 */
#include <jansson.h>

#include "chatbattle/aggjson.h"
#include "chatbattle/chatmsg.h"
#include "chatbattle/err.h"
#include "chatbattle/json.h"
#include "chatbattle/jw.h"
#include "test.h"

static uint8_t scratch[1 << 20];
static char errstr[256];

static int parse(const char *j, struct cb_aggjson_msg *m)
{
	return cb_aggjson_parse(j, strlen(j), m, scratch, sizeof(scratch),
				errstr, sizeof(errstr));
}

static int eq(struct cb_jstr s, const char *want)
{
	if (want == NULL)
		return s.p == NULL;
	return s.p != NULL && s.len == strlen(want) &&
	       memcmp(s.p, want, s.len) == 0;
}

static void test_contract_example(void)
{
	struct cb_aggjson_msg m;
	const char *j =
		"{\"channel_id\":\"pajlada\",\"user_id\":\"29803735\","
		"\"username\":\"jun1orrrr\",\"message\":\"dank cam\","
		"\"timestamp\":1594545155039,\"emotes\":[\"Kappa\",\"LUL\",\"Kappa\"],"
		"\"message_id\":\"e9d998c3-36f1-430f-89ec-6b887c28af36\","
		"\"display_name\":\"JuN1oRRRR\",\"room_id\":\"11148817\","
		"\"type\":\"message\",\"color\":\"#0000FF\","
		"\"badges\":{\"subscriber\":\"12\"},\"bits\":0,\"is_action\":false,"
		"\"emote_details\":[{\"id\":\"25\",\"name\":\"Kappa\",\"start\":0,"
		"\"end\":4}],\"reply_parent\":null,\"received_at\":1594545155101}";

	CHECK_INT(parse(j, &m), 0);
	CHECK(eq(m.channel_id, "pajlada"));
	CHECK(eq(m.user_id, "29803735"));
	CHECK(eq(m.username, "jun1orrrr"));
	CHECK(eq(m.message, "dank cam"));
	CHECK(eq(m.message_id, "e9d998c3-36f1-430f-89ec-6b887c28af36"));
	CHECK(eq(m.type, "message"));
	CHECK(m.has_timestamp);
	CHECK_INT(m.timestamp_ms, 1594545155039);
	CHECK_INT(m.received_at_ms, 1594545155101);
	CHECK_INT(m.emote_count, 3);
	CHECK_INT(m.emotes_len, 2 + 5 + 2 + 3 + 2 + 5);
	CHECK(m.emotes[0] == 5 && m.emotes[1] == 0 &&
	      memcmp(m.emotes + 2, "Kappa", 5) == 0);
	CHECK(m.emotes[7] == 3 && memcmp(m.emotes + 9, "LUL", 3) == 0);
}

static void test_original_producer_variants(void)
{
	struct cb_aggjson_msg m;

	/* No type, timestamp as a digit string, numeric user id, no
	 * emotes, no message id, white space everywhere. */
	CHECK_INT(parse(" {\n \"channel_id\" : \"forsen\" , \"user_id\":123,"
			"\"username\":\"x\",\"message\":\"hi\","
			"\"timestamp\":\"1594545155039\"}\r\n",
			&m),
		  0);
	CHECK(m.type.p == NULL);
	CHECK(eq(m.user_id, "123"));
	CHECK_INT(m.timestamp_ms, 1594545155039);
	CHECK_INT(m.emote_count, 0);
	CHECK(m.message_id.p == NULL);
	CHECK_INT(m.received_at_ms, 0);
	/* A fractional or exponent timestamp is cut to milliseconds. */
	CHECK_INT(parse("{\"timestamp\":1594545155039.7}", &m), 0);
	CHECK_INT(m.timestamp_ms, 1594545155039);
	CHECK_INT(parse("{\"timestamp\":1.5e12}", &m), 0);
	CHECK_INT(m.timestamp_ms, 1500000000000);
	/* Missing timestamp: the caller falls back to the Kafka time. */
	CHECK_INT(parse("{\"channel_id\":\"a\"}", &m), 0);
	CHECK(!m.has_timestamp);
	CHECK_INT(parse("{\"timestamp\":null,\"emotes\":null}", &m), 0);
	CHECK(!m.has_timestamp);
	/* tmi.js-style emotes object and non-string elements are skipped. */
	CHECK_INT(parse("{\"emotes\":{\"25\":[\"0-4\"]}}", &m), 0);
	CHECK_INT(m.emote_count, 0);
	CHECK_INT(parse("{\"emotes\":[1,\"Kappa\",{\"n\":\"x\"},[\"y\"],null]}",
			&m),
		  0);
	CHECK_INT(m.emote_count, 1);
	CHECK(memcmp(m.emotes + 2, "Kappa", 5) == 0);
	/* Duplicate members: the last one wins. */
	CHECK_INT(parse("{\"username\":\"a\",\"username\":\"b\"}", &m), 0);
	CHECK(eq(m.username, "b"));
	CHECK_INT(parse("{}", &m), 0);
	CHECK(m.channel_id.p == NULL);
}

static void test_escapes_decoded(void)
{
	struct cb_aggjson_msg m;

	CHECK_INT(parse("{\"message\":\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\u20ac"
			"\\ud83d\\ude00\\ud800x\"}",
			&m),
		  0);
	CHECK(eq(m.message, "a\"b\\c/d\n\t\xc3\xa9\xe2\x82\xac"
			    "\xf0\x9f\x98\x80\xef\xbf\xbdx"));
	CHECK_INT(parse("{\"message\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}", &m),
		  0);
	CHECK(eq(m.message, "caf\xc3\xa9 \xf0\x9f\x98\x80"));
	CHECK_INT(parse("{\"emotes\":[\"\\u004bappa\"]}", &m), 0);
	CHECK(memcmp(m.emotes + 2, "Kappa", 5) == 0);
	/* An escaped key still names the field. */
	CHECK_INT(parse("{\"user\\u006eame\":\"z\"}", &m), 0);
	CHECK(eq(m.username, "z"));
}

static void test_invalid_rejected_with_reason(void)
{
	struct cb_aggjson_msg m;
	const char *bad[] = {
		"",
		"not json",
		"[1,2]",
		"\"str\"",
		"{\"a\":1,}",
		"{\"a\":1",
		"{\"a\" 1}",
		"{'a':1}",
		"{\"a\":01}",
		"{\"a\":1.}",
		"{\"a\":-}",
		"{\"a\":tru}",
		"{\"a\":\"\x01\"}",
		"{\"a\":\"\\x\"}",
		"{\"a\":\"\\u12g4\"}",
		"{\"a\":\"\xc3\x28\"}",
		"{\"a\":\"\xe0\x80\xaf\"}",
		"{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\":1} x",
		"{\"channel_id\":[\"x\"]}",
		"{\"timestamp\":\"12ab\"}",
		"{\"timestamp\":true}",
		"{\"timestamp\":1e30}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errstr[0] = '\0';
		if (parse(bad[i], &m) != CB_E_PARSE) {
			printf("# accepted: %s\n", bad[i]);
			CHECK(0);
		}
		CHECK(errstr[0] != '\0');
	}
	CHECK_INT(parse("[1]", &m), CB_E_PARSE);
	CHECK(strstr(errstr, "not a JSON object") != NULL);
	CHECK_INT(parse("{\"channel_id\":{}}", &m), CB_E_PARSE);
	CHECK(strstr(errstr, "channel_id is not a string") != NULL);
}

static void test_nesting_bounded(void)
{
	static char deep[4096];
	struct cb_aggjson_msg m;
	size_t n = 0;

	n += (size_t)snprintf(deep, sizeof(deep), "{\"x\":");
	for (int i = 0; i < 100; i++)
		deep[n++] = '[';
	for (int i = 0; i < 100; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	deep[n] = '\0';
	CHECK_INT(parse(deep, &m), CB_E_PARSE);
	CHECK(strstr(errstr, "deep") != NULL);
	n = (size_t)snprintf(deep, sizeof(deep), "{\"x\":");
	for (int i = 0; i < 60; i++)
		deep[n++] = '[';
	for (int i = 0; i < 60; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	deep[n] = '\0';
	CHECK_INT(parse(deep, &m), 0);
}

/* Every line of a real-world JSON corpus: the same verdict as jansson, and
 * the decoded channel matches. */
static void test_agrees_with_jansson_on_corpus(void)
{
	char path[512], line[65536];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/test/fixtures/twitch-irc/expected.jsonl",
		 t_root());
	f = fopen(path, "r");
	CHECK(f != NULL);
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		json_error_t jerr;
		json_t *doc = json_loadb(line, len, 0, &jerr);
		struct cb_aggjson_msg m;
		int rc = cb_aggjson_parse(line, len, &m, scratch,
					  sizeof(scratch), errstr,
					  sizeof(errstr));

		CHECK_INT(rc == 0, doc != NULL && json_is_object(doc));
		if (doc != NULL) {
			json_t *ch = json_object_get(doc, "channel_id");

			if (json_is_string(ch))
				CHECK(eq(m.channel_id, json_string_value(ch)));
			json_decref(doc);
		}
		/* Damaged copies: cut in the middle. */
		if (len > 10) {
			rc = cb_aggjson_parse(line, len / 2, &m, scratch,
					      sizeof(scratch), errstr,
					      sizeof(errstr));
			CHECK_INT(rc, CB_E_PARSE);
		}
		n++;
	}
	fclose(f);
	CHECK(n > 300);
}

/* Rows of messages without an id get the id the IRC reader derives. */
static void test_uuid(void)
{
	uint8_t u[16], v[16];

	CHECK(cb_chatmsg_parse_uuid("e9d998c3-36f1-430f-89ec-6b887c28af36", 36,
				    u));
	cb_chatmsg_derive_uuid("pajlada", 7, 1594545155039, "29803735", 8,
			       "dank cam", 8, v);
	CHECK(memcmp(u, v, 16) != 0);
	CHECK_INT(v[6] >> 4, 5); /* version 5 */
}

static void test_writer(void)
{
	struct cb_jw w = {0};
	uint8_t bin[256], back[256];
	json_t *doc;

	cb_jw_open(&w, '{');
	cb_jw_key(&w, "s");
	cb_jw_str(&w, "a\"b\\\n\x01\xc3\xa9", 8);
	cb_jw_key(&w, "n");
	cb_jw_int(&w, -42);
	cb_jw_key(&w, "d");
	cb_jw_double(&w, 1.0 / 3);
	cb_jw_key(&w, "nan");
	cb_jw_double(&w, 0.0 / 0.0);
	cb_jw_key(&w, "a");
	cb_jw_open(&w, '[');
	cb_jw_bool(&w, true);
	cb_jw_open(&w, '{');
	cb_jw_close(&w, '}');
	cb_jw_close(&w, ']');
	cb_jw_close(&w, '}');
	CHECK(!w.oom);
	CHECK_STR(w.buf, "{\"s\":\"a\\\"b\\\\\\n\\u0001\xc3\xa9\",\"n\":-42,"
			 "\"d\":0.3333,\"nan\":0,\"a\":[true,{}]}");
	doc = json_loadb(w.buf, w.len, 0, NULL);
	CHECK(doc != NULL);
	json_decref(doc);

	for (size_t n = 0; n < 20; n++) {
		for (size_t i = 0; i < n; i++)
			bin[i] = (uint8_t)(i * 37 + n);
		cb_jw_reset(&w);
		cb_jw_base64(&w, bin, n);
		CHECK(w.buf[0] == '"' && w.buf[w.len - 1] == '"');
		CHECK_INT(cb_jw_base64_decode(w.buf + 1, w.len - 2, back),
			  (long)n);
		CHECK(memcmp(bin, back, n) == 0);
	}
	cb_jw_reset(&w);
	cb_jw_base64(&w, (const uint8_t *)"Man", 3);
	CHECK_STR(w.buf, "\"TWFu\"");
	CHECK_INT(cb_jw_base64_decode("TWE=", 4, back), 2);
	CHECK_INT(cb_jw_base64_decode("TW==", 4, back), 1);
	CHECK_INT(cb_jw_base64_decode("TWE", 3, back), -1);
	CHECK_INT(cb_jw_base64_decode("T=E=", 4, back), -1);
	CHECK_INT(cb_jw_base64_decode("TW=E", 4, back), -1);
	CHECK_INT(cb_jw_base64_decode("TW==TWFu", 8, back), -1);
	cb_jw_release(&w);

	CHECK(cb_json_utf8_valid("caf\xc3\xa9", 5));
	CHECK(!cb_json_utf8_valid("caf\xc3", 4));
	CHECK(!cb_json_utf8_valid("\xc0\xaf", 2));
	CHECK(!cb_json_utf8_valid("\xed\xa0\x80", 3));
	CHECK(cb_json_utf8_valid("\xf0\x9f\x98\x80", 4));
	CHECK(!cb_json_utf8_valid("\xf4\x90\x80\x80", 4));
}

int main(void)
{
	RUN(test_contract_example);
	RUN(test_original_producer_variants);
	RUN(test_escapes_decoded);
	RUN(test_invalid_rejected_with_reason);
	RUN(test_nesting_bounded);
	RUN(test_agrees_with_jansson_on_corpus);
	RUN(test_uuid);
	RUN(test_writer);
	return test_done();
}
