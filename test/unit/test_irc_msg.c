/*
 * test_irc_msg.c - the IRCv3 parser and Twitch decoder (src/irc_msg.c)
 * against every record of test/fixtures/twitch-irc/expected.jsonl, then
 * the README's "Tricky cases" one by one, then limits and edge cases.
 *
 * Policy checked here (docs/irc.md), where the fixture's libraries
 * disagree:
 *   - Space policy: lenient between parameters.  Each extra space makes an
 *     empty parameter (go-twitch-irc), flagged CB_IRC_F_EMPTY_PARAM, so the
 *     fixture's strict_error lines and the "TooManySpacesInMiddleParams"
 *     INVALID lines are accepted with exactly their lenient_parse values.
 *   - Prefix: parts may be empty (":a@", ":a!@b" parse to their
 *     lenient_parse values, flagged CB_IRC_F_EMPTY_PREFIX_PART); an empty
 *     prefix (": PING") is rejected.
 *   - Every other expect_error line is rejected: empty line, leading
 *     space, "@" without tags, tags or prefix with no command after them,
 *     bad commands (P!NG, P1NG, PØNG, 01, 0001), raw CR/LF inside.
 *   - Tags: IRCv3 unescaping one character at a time, last repeat wins,
 *     split on the first '=' (the fixture's own rules).
 *   - Emotes: Unicode code points, inclusive end, clamped names and an
 *     out-of-range mark (twitch-irc-rs); a malformed tag gives no emotes.
 *   - /me: PRIVMSG and CLEARMSG need "\x01ACTION " and a final "\x01"
 *     ("\x01ACTION\x01" is no action); USERNOTICE text is never unwrapped
 *     by the decoder (the ChatMessage writer unwraps it, test_chatmsg).
 * TAGSTRING records (a bare tag section) are checked by parsing
 * "@<section> X".
 */
#include <jansson.h>
#include <stdint.h>

#include "chatbattle/chatmsg.h"
#include "chatbattle/err.h"
#include "chatbattle/irc_msg.h"
#include "test.h"

static json_t *records;
static struct cb_irc_msg msg;
static struct cb_twitch_msg tw;
static char line[CB_IRC_LINE_MAX + 64];

/* ---- helpers ---- */

/* Copies s into the static line buffer and parses it. */
static int parse(const char *s, size_t n, char *errstr, size_t errstr_size)
{
	if (n > sizeof(line))
		return -100;
	memcpy(line, s, n);
	return cb_irc_parse(line, n, &msg, errstr, errstr_size);
}

static int parse_s(const char *s)
{
	char errstr[128];

	return parse(s, strlen(s), errstr, sizeof(errstr));
}

/* Parses and decodes s; returns the parse status. */
static int decode_s(const char *s)
{
	int err = parse_s(s);

	if (err == 0)
		err = cb_twitch_decode(&msg, &tw, NULL, 0);
	return err;
}

static bool span_is(struct cb_irc_str s, const char *want)
{
	if (want == NULL)
		return s.p == NULL;
	return s.p != NULL && s.len == strlen(want) &&
	       memcmp(s.p, want, s.len) == 0;
}

#define CHECK_SPAN(s, want)                                                    \
	do {                                                                   \
		if (!span_is((s), (want))) {                                   \
			printf("# %s:%d: %s == \"%.*s\"%s, expected %s%s%s\n", \
			       __FILE__, __LINE__, #s, (int)(s).len,           \
			       (s).p ? (s).p : "", (s).p ? "" : " (absent)",   \
			       (want) ? "\"" : "",                             \
			       (want) ? (const char *)(want) : "absent",       \
			       (want) ? "\"" : "");                            \
			t_cur_failed = 1;                                      \
			return;                                                \
		}                                                              \
	} while (0)

/* The fixture mismatch reporter: one line per mismatch, naming the raw
 * line (JSON-escaped so control bytes stay readable). */
static int mismatches;
static unsigned long comparisons;

static void mismatch(json_t *rec, const char *field, const char *detail)
{
	char *raw = json_dumps(json_object_get(rec, "raw"),
			       JSON_ENCODE_ANY | JSON_ENSURE_ASCII);

	printf("# mismatch %s (%s): raw=%.300s\n", field, detail,
	       raw ? raw : "?");
	free(raw);
	mismatches++;
}

/* Expected string-or-null exp against a span: null <-> absent. */
static bool same_str(json_t *exp, struct cb_irc_str got)
{
	if (json_is_null(exp))
		return got.p == NULL;
	if (!json_is_string(exp))
		return false;
	return got.p != NULL && got.len == json_string_length(exp) &&
	       memcmp(got.p, json_string_value(exp), got.len) == 0;
}

/* Checks field: when the record has it, it must equal got; when it does
 * not and must_be_absent, got must be absent. */
static void cmp_str(json_t *rec, const char *field, struct cb_irc_str got,
		    bool must_be_absent)
{
	json_t *exp = json_object_get(rec, field);
	char detail[200];

	comparisons++;
	if (exp == NULL) {
		if (must_be_absent && got.p != NULL) {
			snprintf(detail, sizeof(detail),
				 "expected absent, got \"%.*s\"",
				 (int)(got.len > 60 ? 60 : got.len), got.p);
			mismatch(rec, field, detail);
		}
		return;
	}
	if (!same_str(exp, got)) {
		snprintf(detail, sizeof(detail), "got \"%.*s\"%s",
			 (int)(got.len > 60 ? 60 : got.len),
			 got.p ? got.p : "", got.p ? "" : " (absent)");
		mismatch(rec, field, detail);
	}
}

static void cmp_int(json_t *rec, const char *field, bool has, int64_t got)
{
	json_t *exp = json_object_get(rec, field);
	char detail[100];

	if (exp == NULL)
		return;
	comparisons++;
	if (!json_is_integer(exp) || !has ||
	    json_integer_value(exp) != (json_int_t)got) {
		snprintf(detail, sizeof(detail), "got %s%lld",
			 has ? "" : "nothing ", (long long)got);
		mismatch(rec, field, detail);
	}
}

static void cmp_bool(json_t *rec, const char *field, bool got, bool dflt)
{
	json_t *exp = json_object_get(rec, field);
	bool want = exp != NULL ? json_is_true(exp) : dflt;

	comparisons++;
	if (want != got)
		mismatch(rec, field, got ? "got true" : "got false");
}

/* The tags of msg as an object, each key once with its winning value. */
static json_t *tags_object(void)
{
	json_t *o = json_object();

	for (size_t i = 0; i < msg.ntags; i++) {
		const struct cb_irc_tag *t = &msg.tags[i];
		char key[256];

		if (cb_irc_tag_shadowed(&msg, i))
			continue;
		snprintf(key, sizeof(key), "%.*s", (int)t->key.len, t->key.p);
		json_object_set_new(o, key,
				    json_stringn_nocheck(t->value.p,
							 t->value.len));
	}
	return o;
}

static void cmp_tags(json_t *rec)
{
	json_t *exp = json_object_get(rec, "tags");
	json_t *got;

	comparisons++;
	if (exp == NULL) {
		if (msg.ntags != 0)
			mismatch(rec, "tags", "expected no tags");
		return;
	}
	got = tags_object();
	if (!json_equal(exp, got)) {
		char *s = json_dumps(got, JSON_ENSURE_ASCII);

		mismatch(rec, "tags", s ? s : "?");
		free(s);
	}
	/* cb_irc_tag() must agree with the map for every key. */
	{
		const char *k;
		json_t *v;

		json_object_foreach(exp, k, v)
		{
			size_t n;
			const char *val = cb_irc_tag(&msg, k, &n);
			struct cb_irc_str s = {val, n};

			if (!same_str(v, s))
				mismatch(rec, "cb_irc_tag", k);
		}
	}
	json_decref(got);
}

static void cmp_params(json_t *rec)
{
	json_t *exp = json_object_get(rec, "params");
	size_t i;
	json_t *v;

	if (exp == NULL)
		return;
	comparisons++;
	if (json_array_size(exp) != msg.nparams) {
		char d[64];

		snprintf(d, sizeof(d), "got %u params", msg.nparams);
		mismatch(rec, "params", d);
		return;
	}
	json_array_foreach(exp, i, v)
	{
		if (!same_str(v, msg.params[i])) {
			char d[64];

			snprintf(d, sizeof(d), "param %zu differs", i);
			mismatch(rec, "params", d);
			return;
		}
	}
}

/* badges/badge_info: {name: version|null}; the expected object is a
 * Python dict built in tag order (first position, last value). */
static void cmp_badges(json_t *rec, const char *field,
		       const struct cb_twitch_badge *b, uint16_t n)
{
	json_t *exp = json_object_get(rec, field);
	json_t *got;

	if (exp == NULL)
		return;
	comparisons++;
	got = json_object();
	for (uint16_t i = 0; i < n; i++) {
		char key[256];

		snprintf(key, sizeof(key), "%.*s", (int)b[i].name.len,
			 b[i].name.p);
		json_object_set_new(
			got, key,
			b[i].version.p ? json_stringn_nocheck(b[i].version.p,
							      b[i].version.len)
				       : json_null());
	}
	if (!json_equal(exp, got)) {
		char *s = json_dumps(got, JSON_ENSURE_ASCII);

		mismatch(rec, field, s ? s : "?");
		free(s);
	} else {
		/* same order of first appearance */
		void *ie = json_object_iter(exp), *ig = json_object_iter(got);

		while (ie != NULL && ig != NULL) {
			if (strcmp(json_object_iter_key(ie),
				   json_object_iter_key(ig)) != 0) {
				mismatch(rec, field, "order differs");
				break;
			}
			ie = json_object_iter_next(exp, ie);
			ig = json_object_iter_next(got, ig);
		}
	}
	json_decref(got);
}

static void cmp_emotes(json_t *rec)
{
	json_t *exp = json_object_get(rec, "emotes");
	size_t i;
	json_t *v;

	cmp_bool(rec, "emotes_malformed", tw.emotes.malformed, false);
	if (exp == NULL)
		return;
	cmp_bool(rec, "emote_ranges_out_of_bounds", tw.emotes.out_of_range,
		 false);
	comparisons++;
	if (json_is_null(exp)) {
		if (!tw.emotes.malformed || tw.emotes.n != 0)
			mismatch(rec, "emotes", "expected malformed");
		return;
	}
	if (json_array_size(exp) != tw.emotes.n) {
		char d[64];

		snprintf(d, sizeof(d), "got %u emotes", tw.emotes.n);
		mismatch(rec, "emotes", d);
		return;
	}
	json_array_foreach(exp, i, v)
	{
		const struct cb_twitch_emote *e = &tw.emotes.v[i];
		char d[160];

		if (!same_str(json_object_get(v, "id"), e->id) ||
		    !same_str(json_object_get(v, "name"), e->name) ||
		    json_integer_value(json_object_get(v, "start")) !=
			    (json_int_t)e->start ||
		    json_integer_value(json_object_get(v, "end")) !=
			    (json_int_t)e->end) {
			snprintf(d, sizeof(d),
				 "emote %zu: got %.*s \"%.*s\" %u-%u", i,
				 (int)e->id.len, e->id.p, (int)e->name.len,
				 e->name.p, e->start, e->end);
			mismatch(rec, "emotes", d);
			return;
		}
	}
}

static void cmp_reply_parent(json_t *rec)
{
	json_t *exp = json_object_get(rec, "reply_parent");

	comparisons++;
	if (exp == NULL) {
		if (tw.has_reply_parent)
			mismatch(rec, "reply_parent", "expected none");
		return;
	}
	if (!tw.has_reply_parent) {
		mismatch(rec, "reply_parent", "got none");
		return;
	}
	cmp_str(exp, "message_id", tw.reply_parent.message_id, true);
	cmp_str(exp, "user_id", tw.reply_parent.user_id, true);
	cmp_str(exp, "user_login", tw.reply_parent.user_login, true);
	cmp_str(exp, "display_name", tw.reply_parent.display_name, true);
	cmp_str(exp, "text", tw.reply_parent.text, true);
}

static void cmp_emote_sets(json_t *rec)
{
	json_t *exp = json_object_get(rec, "emote_sets");
	const char *p, *end;
	size_t i = 0;

	if (exp == NULL)
		return;
	comparisons++;
	if (tw.emote_sets.p == NULL) {
		mismatch(rec, "emote_sets", "absent");
		return;
	}
	p = tw.emote_sets.p;
	end = p + tw.emote_sets.len;
	while (tw.emote_sets.len > 0 && p <= end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		struct cb_irc_str item;

		if (c == NULL)
			c = end;
		item.p = p;
		item.len = (size_t)(c - p);
		if (!same_str(json_array_get(exp, i++), item)) {
			mismatch(rec, "emote_sets", "item differs");
			return;
		}
		p = c + 1;
	}
	if (i != json_array_size(exp))
		mismatch(rec, "emote_sets", "count differs");
}

/* Every field of an accepted record (or its lenient_parse object). */
static void check_fields(json_t *rec, json_t *fields)
{
	struct cb_irc_str cmd = msg.command;

	cmp_str(fields, "command", cmd, false);
	cmp_str(fields, "prefix", msg.prefix, true);
	cmp_str(fields, "prefix_nick", msg.nick, true);
	cmp_str(fields, "prefix_user", msg.user, true);
	cmp_str(fields, "prefix_host", msg.host, true);
	cmp_params(fields);
	cmp_tags(fields);
	if (cb_twitch_decode(&msg, &tw, NULL, 0) != 0) {
		mismatch(rec, "decode", "cb_twitch_decode failed");
		return;
	}
	cmp_str(fields, "channel", tw.channel, true);
	cmp_str(fields, "user_login", tw.user_login, true);
	cmp_str(fields, "display_name", tw.display_name, true);
	cmp_str(fields, "user_id", tw.user_id, true);
	cmp_str(fields, "room_id", tw.room_id, true);
	cmp_str(fields, "color", tw.color, false);
	cmp_str(fields, "msg_id", tw.msg_id, true);
	cmp_str(fields, "system_msg", tw.system_msg, true);
	cmp_str(fields, "message_id", tw.message_id, false);
	cmp_str(fields, "target_message_id", tw.target_message_id, true);
	cmp_str(fields, "target_user", tw.target_user, true);
	cmp_str(fields, "target_user_id", tw.target_user_id, true);
	cmp_str(fields, "recipient_login", tw.recipient_login, true);
	cmp_str(fields, "text", tw.text, true);
	if (json_object_get(fields, "is_action") != NULL)
		cmp_bool(fields, "is_action", tw.is_action, false);
	cmp_int(fields, "tmi_sent_ts", tw.has_tmi_sent_ts, tw.tmi_sent_ts);
	cmp_int(fields, "bits", tw.has_bits, tw.bits);
	cmp_int(fields, "ban_duration", tw.has_ban_duration, tw.ban_duration);
	cmp_emotes(fields);
	cmp_badges(fields, "badges", tw.badges, tw.nbadges);
	cmp_badges(fields, "badge_info", tw.badge_info, tw.nbadge_info);
	cmp_reply_parent(fields);
	cmp_emote_sets(fields);
}

/* ---- the fixture, record by record ---- */

static void load_records(void)
{
	char path[1024];
	FILE *f;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/test/fixtures/twitch-irc/expected.jsonl",
		 t_root());
	records = json_array();
	f = fopen(path, "r");
	if (f == NULL) {
		printf("# cannot open %s\n", path);
		return;
	}
	while ((n = getline(&buf, &cap, f)) > 0) {
		json_error_t jerr;
		json_t *r = json_loadb(buf, (size_t)n, 0, &jerr);

		if (r == NULL) {
			printf("# %s: %s\n", path, jerr.text);
			continue;
		}
		json_array_append_new(records, r);
	}
	free(buf);
	fclose(f);
}

static int count_kind(bool (*pick)(json_t *))
{
	size_t i;
	json_t *r;
	int n = 0;

	json_array_foreach(records, i, r) n += pick(r);
	return n;
}

static bool is_tagstring(json_t *r)
{
	return strcmp(json_string_value(json_object_get(r, "kind")),
		      "TAGSTRING") == 0;
}

static bool is_error(json_t *r)
{
	return !is_tagstring(r) && json_is_true(json_object_get(r, "expect_error"));
}

static bool is_line(json_t *r)
{
	return !is_tagstring(r) && !is_error(r);
}

static void test_fixture_has_every_record(void)
{
	CHECK_INT(json_array_size(records), 317);
	CHECK_INT(count_kind(is_tagstring), 12);
	CHECK_INT(count_kind(is_error), 25);
}

/* Lines the sources parse successfully: every field must match. */
static void test_fixture_lines(void)
{
	size_t i;
	json_t *r;
	int checked = 0;

	mismatches = 0;
	json_array_foreach(records, i, r)
	{
		json_t *raw = json_object_get(r, "raw");
		char errstr[256];

		if (!is_line(r))
			continue;
		checked++;
		if (parse(json_string_value(raw), json_string_length(raw),
			  errstr, sizeof(errstr)) != 0) {
			mismatch(r, "parse", errstr);
			continue;
		}
		/* strict_error lines are accepted, flagged. */
		if (json_is_true(json_object_get(r, "strict_error")) &&
		    !(msg.flags & CB_IRC_F_EMPTY_PARAM))
			mismatch(r, "flags", "CB_IRC_F_EMPTY_PARAM not set");
		if (!json_is_true(json_object_get(r, "strict_error")) &&
		    (msg.flags & CB_IRC_F_EMPTY_PARAM))
			mismatch(r, "flags", "CB_IRC_F_EMPTY_PARAM set");
		check_fields(r, r);
	}
	printf("# %d parsed records checked, %lu field comparisons, %d "
	       "mismatches\n",
	       checked, comparisons, mismatches);
	CHECK_INT(checked, 317 - 12 - 25);
	CHECK_INT(mismatches, 0);
}

/* expect_error lines: rejected, unless the record gives a lenient_parse,
 * which this parser's policy follows (see the file header). */
static void test_fixture_invalid_lines(void)
{
	size_t i;
	json_t *r;
	int rejected = 0, lenient = 0;

	mismatches = 0;
	json_array_foreach(records, i, r)
	{
		json_t *raw = json_object_get(r, "raw");
		json_t *lp = json_object_get(r, "lenient_parse");
		char errstr[256] = "";
		int err;

		if (!is_error(r))
			continue;
		err = parse(json_string_value(raw), json_string_length(raw),
			    errstr, sizeof(errstr));
		if (lp == NULL) {
			if (err == 0)
				mismatch(r, "parse", "accepted, expected an error");
			else if (errstr[0] == '\0')
				mismatch(r, "parse", "rejected with no reason");
			else
				rejected++;
			continue;
		}
		lenient++;
		if (err != 0) {
			mismatch(r, "lenient parse", errstr);
			continue;
		}
		if (json_is_true(json_object_get(lp, "strict_error")) &&
		    !(msg.flags & CB_IRC_F_EMPTY_PARAM))
			mismatch(r, "flags", "CB_IRC_F_EMPTY_PARAM not set");
		if (json_object_get(lp, "prefix_nick") != NULL &&
		    !(msg.flags & CB_IRC_F_EMPTY_PREFIX_PART))
			mismatch(r, "flags", "CB_IRC_F_EMPTY_PREFIX_PART not set");
		check_fields(r, lp);
	}
	printf("# %d invalid lines rejected, %d accepted by the lenient "
	       "policy with their lenient_parse values\n",
	       rejected, lenient);
	CHECK_INT(rejected + lenient, 25);
	CHECK_INT(lenient, 6);
	CHECK_INT(mismatches, 0);
}

static void test_fixture_tag_sections(void)
{
	size_t i;
	json_t *r;
	int checked = 0;

	mismatches = 0;
	json_array_foreach(records, i, r)
	{
		json_t *raw = json_object_get(r, "raw");
		char buf[512], errstr[128];
		int n;

		if (!is_tagstring(r))
			continue;
		n = snprintf(buf, sizeof(buf), "@%s X", json_string_value(raw));
		if (parse(buf, (size_t)n, errstr, sizeof(errstr)) != 0) {
			mismatch(r, "parse", errstr);
			continue;
		}
		cmp_tags(r);
		checked++;
	}
	printf("# %d tag sections checked\n", checked);
	CHECK_INT(checked, 12);
	CHECK_INT(mismatches, 0);
}

/* Every line of lines.tsv parses or is rejected the way expected.jsonl
 * says (the two files agree, and the TSV's "\t" escape is handled). */
static void test_fixture_tsv_agrees(void)
{
	char path[1024], *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int lines = 0, bad = 0;

	snprintf(path, sizeof(path), "%s/test/fixtures/twitch-irc/lines.tsv",
		 t_root());
	f = fopen(path, "r");
	CHECK(f != NULL);
	while ((n = getline(&buf, &cap, f)) > 0) {
		char *kind = memchr(buf, '\t', (size_t)n), *raw, *tab;
		char text[CB_IRC_LINE_MAX];
		size_t len = 0;
		int err;

		if (kind == NULL)
			continue;
		kind++;
		tab = strchr(kind, '\t');
		if (tab == NULL)
			continue;
		*tab = '\0';
		raw = tab + 1;
		if (buf[n - 1] == '\n')
			buf[--n] = '\0';
		for (char *p = raw; *p != '\0' && len < sizeof(text); p++) {
			if (p[0] == '\\' && p[1] == 't') {
				text[len++] = '\t';
				p++;
			} else {
				text[len++] = *p;
			}
		}
		lines++;
		err = parse(text, len, NULL, 0);
		if (strcmp(kind, "INVALID") == 0)
			continue; /* policy per record: see above */
		if (err != 0 || msg.command.len != strlen(kind) ||
		    memcmp(msg.command.p, kind, msg.command.len) != 0) {
			printf("# lines.tsv: %s line not parsed as %s: %.100s\n",
			       kind, kind, raw);
			bad++;
		}
	}
	free(buf);
	fclose(f);
	printf("# %d lines of lines.tsv\n", lines);
	CHECK_INT(lines, 303);
	CHECK_INT(bad, 0);
}

/* ---- README "Tricky cases" ---- */

/* 1. Emote indexes are code points: not bytes, not UTF-16 units. */
static void test_tricky_emotes_code_points(void)
{
	CHECK_INT(decode_s("@emotes=25:0-4,8-12 :a!a@a PRIVMSG #c :Kappa "
			   "\xF0\x9F\x98\x82 Kappa"),
		  0);
	CHECK_INT(tw.emotes.n, 2);
	CHECK_SPAN(tw.emotes.v[0].name, "Kappa");
	CHECK_SPAN(tw.emotes.v[1].name, "Kappa");
	CHECK(!tw.emotes.out_of_range);

	/* the same id in two groups; sorted by start */
	CHECK_INT(decode_s("@emotes=25:9-13/25:1-5 :a!a@a PRIVMSG #c "
			   ":\xF0\x9F\x98\x82Kappa\xF0\x9F\x98\x82 &Kappa a  b"),
		  0);
	CHECK_INT(tw.emotes.n, 2);
	CHECK_INT(tw.emotes.v[0].start, 1);
	CHECK_SPAN(tw.emotes.v[0].name, "Kappa");
	CHECK_INT(tw.emotes.v[1].start, 9);
	CHECK_SPAN(tw.emotes.v[1].name, "Kappa");

	CHECK_INT(decode_s("@emotes=483:2-3,7-8,12-13 :a!a@a PRIVMSG #c "
			   ":\xF0\x9F\x91\x89 <3 \xF0\x9F\x91\x89 <3 "
			   "\xF0\x9F\x91\x89 <3"),
		  0);
	CHECK_INT(tw.emotes.n, 3);
	for (int i = 0; i < 3; i++)
		CHECK_SPAN(tw.emotes.v[i].name, "<3");

	/* U+E0000 (4 UTF-8 bytes) at the start counts as one code point */
	CHECK_INT(decode_s("@emotes=25:2-6 :a!a@a PRIVMSG #c "
			   ":\xF3\xA0\x80\x80 Kappa"),
		  0);
	CHECK_INT(tw.emotes.n, 1);
	CHECK_SPAN(tw.emotes.v[0].name, "Kappa");
}

/* 2. Out-of-range and shifted ranges (twitchdev/issues#104): clamped. */
static void test_tricky_emotes_out_of_range(void)
{
	static const struct {
		const char *range;
		const char *name;
	} cases[] = {
		{"40-44", "appa"}, {"41-45", "ppa"}, {"44-48", ""},
		{"45-49", ""},     {"39-43", "Kappa"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char l[256];

		snprintf(l, sizeof(l),
			 "@emotes=25:%s :a!a@a PRIVMSG #c :D\xC3\xA5 kan du "
			 "beg\xC3\xA4ra skadest\xC3\xA5nd och f\xC3\xB6rtal "
			 "Kappa",
			 cases[i].range);
		CHECK_INT(decode_s(l), 0);
		CHECK_INT(tw.emotes.n, 1);
		CHECK_SPAN(tw.emotes.v[0].name, cases[i].name);
		CHECK(tw.emotes.v[0].out_of_range == (i != 4));
		CHECK(tw.emotes.out_of_range == (i != 4));
	}

	/* "foo bar": past the end, the whole text and more, reversed */
	CHECK_INT(decode_s("@emotes=84608:9-10,0-15,15-2 :a!a@a PRIVMSG #c "
			   ":foo bar"),
		  0);
	CHECK_INT(tw.emotes.n, 3);
	CHECK_INT(tw.emotes.v[0].start, 0);
	CHECK_SPAN(tw.emotes.v[0].name, "foo bar");
	CHECK(tw.emotes.v[0].out_of_range);
	CHECK_INT(tw.emotes.v[1].start, 9);
	CHECK_SPAN(tw.emotes.v[1].name, "");
	CHECK(tw.emotes.v[1].out_of_range);
	CHECK_INT(tw.emotes.v[2].start, 15);
	CHECK_SPAN(tw.emotes.v[2].name, "");
	CHECK(tw.emotes.v[2].out_of_range);

	/* huge numbers do not wrap */
	CHECK_INT(decode_s("@emotes=1:4294967295-4294967295 :a!a@a PRIVMSG #c "
			   ":x"),
		  0);
	CHECK_INT(tw.emotes.n, 1);
	CHECK(tw.emotes.v[0].out_of_range);
	CHECK_SPAN(tw.emotes.v[0].name, "");
}

/* 3. Malformed emotes tags: no emotes, never a crash. */
static void test_tricky_emotes_malformed(void)
{
	static const char *const bad[] = {
		"25:04",  "80481_/3:7-14", "25:",    ":1-2",   "25:1-",
		"25:-1",  "25:a-b",        "25:1-2,", "25:99999999999-1",
		"25:1-2,,3-4", "25:+1-2",  "25:1--2",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char l[256];

		snprintf(l, sizeof(l), "@emotes=%s :a!a@a PRIVMSG #c :Kappa abc",
			 bad[i]);
		CHECK_INT(decode_s(l), 0);
		if (!tw.emotes.malformed || tw.emotes.n != 0) {
			printf("# emotes=%s not malformed\n", bad[i]);
			CHECK(0);
		}
	}
	/* the README's "25:4-0" is reversed, hence out of range, not
	 * malformed; an empty group is tolerated */
	CHECK_INT(decode_s("@emotes=25:4-0 :a!a@a PRIVMSG #c :Kappa"), 0);
	CHECK(!tw.emotes.malformed);
	CHECK_INT(tw.emotes.n, 1);
	CHECK(tw.emotes.v[0].out_of_range);
	CHECK_INT(decode_s("@emotes=25:0-1//26:3-4 :a!a@a PRIVMSG #c :ab cd"),
		  0);
	CHECK_INT(tw.emotes.n, 2);
	CHECK_SPAN(tw.emotes.v[1].name, "cd");
	/* ids may hold '_' and letters */
	CHECK_INT(decode_s("@emotes=300196486_TK:0-7 :a!a@a PRIVMSG #c "
			   ":pajaDent"),
		  0);
	CHECK_SPAN(tw.emotes.v[0].id, "300196486_TK");
	CHECK_SPAN(tw.emotes.v[0].name, "pajaDent");
}

/* 4. /me: USERNOTICE is not unwrapped (ranges then cut " Kapp"), and the
 * degenerate PRIVMSG "\x01ACTION\x01" is no action. */
static void test_tricky_me_actions(void)
{
	CHECK_INT(decode_s("@emotes=25:7-11,23-27/499:29-30;login=randers;"
			   "msg-id=resub :tmi.twitch.tv USERNOTICE #pajlada "
			   ":\001ACTION Kappa TEST TEST Kappa :)\001"),
		  0);
	CHECK(!tw.is_action);
	CHECK_SPAN(tw.text, "\001ACTION Kappa TEST TEST Kappa :)\001");
	CHECK_INT(tw.emotes.n, 3);
	CHECK_SPAN(tw.emotes.v[0].name, " Kapp");
	CHECK_SPAN(tw.emotes.v[2].name, " :");

	CHECK_INT(decode_s(":a!a@a PRIVMSG #c :\001ACTION\001"), 0);
	CHECK(!tw.is_action);
	CHECK_SPAN(tw.text, "\001ACTION\001");
	CHECK_INT(decode_s(":a!a@a PRIVMSG #c :\001ACTION \001"), 0);
	CHECK(tw.is_action);
	CHECK_SPAN(tw.text, "");
	CHECK_INT(decode_s(":a!a@a PRIVMSG #c :\001ACTION no end"), 0);
	CHECK(!tw.is_action);
	CHECK_INT(decode_s("@emotes=25:0-4 :a!a@a PRIVMSG #c "
			   ":\001ACTION Kappa waves\001"),
		  0);
	CHECK(tw.is_action);
	CHECK_SPAN(tw.text, "Kappa waves");
	CHECK_SPAN(tw.emotes.v[0].name, "Kappa");
	CHECK_INT(decode_s("@login=x;target-msg-id=1 :tmi.twitch.tv CLEARMSG "
			   "#c :\001ACTION hi\001"),
		  0);
	CHECK(tw.is_action);
	CHECK_SPAN(tw.text, "hi");
}

/* 5. Escape torture: decoded one character at a time. */
static void test_tricky_escapes(void)
{
	static const struct {
		const char *raw, *value;
		size_t value_len;
	} cases[] = {
		{"\\\\\\\\\\:\\\\s\\s\\r\\n", "\\\\;\\s \r\n", 8},
		{"value\\\\ntest", "value\\ntest", 11},
		{"value\\1", "value1", 6},
		{"value1\\", "value1", 6},
		{"\\bla", "bla", 3},
		{"chars\\s!\\:", "chars !;", 8},
		{"joined\\n!", "joined\n!", 8},
		{"a\\\\", "a\\", 2},
		{"\\", "", 0},
		{"\\\\\\", "\\", 1},
		{"\xFF\\s\xFE", "\xFF \xFE", 3},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char l[256];
		size_t n;
		const char *v;

		snprintf(l, sizeof(l), "@k=%s X", cases[i].raw);
		CHECK_INT(parse_s(l), 0);
		v = cb_irc_tag(&msg, "k", &n);
		CHECK(v != NULL);
		if (n != cases[i].value_len ||
		    memcmp(v, cases[i].value, n) != 0) {
			printf("# case %zu: got %zu bytes \"%.*s\"\n", i, n,
			       (int)n, v);
			CHECK(0);
		}
	}
	/* the unescaper on its own */
	{
		char s[] = "a\\sb\\:c\\\\d\\";

		CHECK_INT(cb_irc_unescape(s, strlen(s)), 7);
		CHECK(memcmp(s, "a b;c\\d", 7) == 0);
	}
}

/* 6. Escaped spaces at the edges are kept (no trimming). */
static void test_tricky_escaped_spaces(void)
{
	CHECK_INT(decode_s("@display-name=CarvedTaleare\\s;system-msg=gifted!\\s"
			   " :tmi.twitch.tv USERNOTICE #c"),
		  0);
	CHECK_SPAN(tw.display_name, "CarvedTaleare ");
	CHECK_SPAN(tw.system_msg, "gifted! ");
	CHECK_SPAN(tw.text, NULL); /* no user message */
}

/* 7. Tag-section structure: repeats, '=' in values, valueless tags. */
static void test_tricky_tag_structure(void)
{
	size_t n;
	const char *v;

	CHECK_INT(decode_s("@badges=moderator/1;id=x;badges=subscriber/3,"
			   "premium/1 :a!a@a PRIVMSG #c :hi"),
		  0);
	v = cb_irc_tag(&msg, "badges", &n);
	CHECK(v != NULL && n == 22 && memcmp(v, "subscriber/3,premium/1", 22) == 0);
	CHECK(cb_irc_tag_shadowed(&msg, 0));
	CHECK(!cb_irc_tag_shadowed(&msg, 2));
	CHECK_INT(tw.nbadges, 2);
	CHECK_SPAN(tw.badges[0].name, "subscriber");
	CHECK_SPAN(tw.badges[0].version, "3");

	CHECK_INT(parse_s("@display-name=display-name=x;u=https://y/?list=PL;"
			  "vendor.example/key=1;flag;empty= X"),
		  0);
	CHECK_SPAN(((struct cb_irc_str){cb_irc_tag(&msg, "display-name", &n),
					n}),
		   "display-name=x");
	CHECK_SPAN(((struct cb_irc_str){cb_irc_tag(&msg, "u", &n), n}),
		   "https://y/?list=PL");
	CHECK_SPAN(((struct cb_irc_str){cb_irc_tag(&msg, "vendor.example/key",
						   &n),
					n}),
		   "1");
	CHECK_SPAN(((struct cb_irc_str){cb_irc_tag(&msg, "flag", &n), n}), "");
	CHECK_SPAN(((struct cb_irc_str){cb_irc_tag(&msg, "empty", &n), n}), "");
	CHECK(cb_irc_tag(&msg, "missing", &n) == NULL && n == 0);
	CHECK(cb_irc_tag(&msg, "Flag", NULL) == NULL); /* case-sensitive */

	/* badge-info items split on the first '/' after unescaping */
	CHECK_INT(decode_s("@badge-info=predictions/Day\\s53/53\\sforsenSmug,"
			   "subscriber/67,odd :a!a@a PRIVMSG #c :x"),
		  0);
	CHECK_INT(tw.nbadge_info, 3);
	CHECK_SPAN(tw.badge_info[0].version, "Day 53/53 forsenSmug");
	CHECK_SPAN(tw.badge_info[2].name, "odd");
	CHECK_SPAN(tw.badge_info[2].version, NULL);

	/* empty items and empty keys are skipped and flagged */
	CHECK_INT(parse_s("@a=1;;=v;b X"), 0);
	CHECK_INT(msg.ntags, 2);
	CHECK(msg.flags & CB_IRC_F_EMPTY_TAG);
	CHECK_INT(parse_s("@a=1; X"), 0); /* a trailing ';' is harmless */
	CHECK_INT(msg.ntags, 1);
	CHECK(!(msg.flags & CB_IRC_F_EMPTY_TAG));
}

/* 8. The last parameter is the text, with or without ':'. */
static void test_tricky_text_as_middle_param(void)
{
	CHECK_INT(decode_s(":a!a@a PRIVMSG #jerma985 ballfondler"), 0);
	CHECK_SPAN(tw.channel, "jerma985");
	CHECK_SPAN(tw.text, "ballfondler");
	CHECK(!(msg.flags & CB_IRC_F_TRAILING));
	CHECK_INT(decode_s(":tmi.twitch.tv CLEARCHAT #pajlada nerixyz"), 0);
	CHECK_SPAN(tw.target_user, "nerixyz");
	CHECK_INT(decode_s("@login=x :tmi.twitch.tv CLEARMSG #pajlada sup"), 0);
	CHECK_SPAN(tw.text, "sup");
	CHECK_INT(decode_s("@login=x :tmi.twitch.tv USERNOTICE #pajlada "
			   "\xF0\x9F\xAB\xA3"),
		  0);
	CHECK_SPAN(tw.text, "\xF0\x9F\xAB\xA3");
	CHECK_INT(decode_s(":a!a@a PRIVMSG #c :"), 0); /* empty trailing */
	CHECK_SPAN(tw.text, "");
	CHECK(msg.flags & CB_IRC_F_TRAILING);
}

/* 9. Space policy: lenient between parameters, strict elsewhere. */
static void test_tricky_space_policy(void)
{
	CHECK_INT(parse_s(":src AWAY "), 0);
	CHECK_INT(msg.nparams, 1);
	CHECK_SPAN(msg.params[0], "");
	CHECK(msg.flags & CB_IRC_F_EMPTY_PARAM);
	CHECK_INT(parse_s("PING asd  def"), 0);
	CHECK_INT(msg.nparams, 3);
	CHECK_SPAN(msg.params[1], "");
	CHECK_INT(parse_s("PING asd def"), 0);
	CHECK(!(msg.flags & CB_IRC_F_EMPTY_PARAM));
	CHECK_INT(parse_s("PING :a  b "), 0); /* trailing keeps its spaces */
	CHECK_SPAN(msg.params[0], "a  b ");
	CHECK(!(msg.flags & CB_IRC_F_EMPTY_PARAM));

	static const char *const rejected[] = {
		": PING xD", " PING", "@a=b  PING", ":p  PING", "@a=b :p",
		"@a=b :p ", "@ :p X", "@a=b", "P!NG", "P1NG", "P\xC3\x98NG",
		"01",        "0001", "1x1", ":",   "@",
	};
	for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++) {
		char errstr[128] = "";

		if (parse(rejected[i], strlen(rejected[i]), errstr,
			  sizeof(errstr)) != CB_E_PARSE ||
		    errstr[0] == '\0') {
			printf("# \"%s\" not rejected with a reason\n",
			       rejected[i]);
			CHECK(0);
		}
	}
	/* lenient prefix parts */
	CHECK_INT(parse_s(":a@ PING xD"), 0);
	CHECK_SPAN(msg.nick, "a");
	CHECK_SPAN(msg.host, "");
	CHECK_SPAN(msg.user, NULL);
	CHECK(msg.flags & CB_IRC_F_EMPTY_PREFIX_PART);
	CHECK_INT(parse_s(":nick@host PING"), 0);
	CHECK_SPAN(msg.nick, "nick");
	CHECK_SPAN(msg.user, NULL);
	CHECK_SPAN(msg.host, "host");
	CHECK(!(msg.flags & CB_IRC_F_EMPTY_PREFIX_PART));
	CHECK_INT(parse_s(":nick!~u PING"), 0);
	CHECK_SPAN(msg.user, "~u");
	CHECK_SPAN(msg.host, NULL);
}

/* 10. Values a parser should not be surprised by. */
static void test_tricky_surprising_values(void)
{
	CHECK_INT(decode_s("@login=supibot;room-id=;target-msg-id=25fd;"
			   "tmi-sent-ts=-6795364578871 :tmi.twitch.tv "
			   "CLEARMSG #randers :Pong!"),
		  0);
	CHECK(tw.has_tmi_sent_ts);
	CHECK(tw.tmi_sent_ts == -6795364578871LL);
	CHECK_SPAN(tw.room_id, "");
	CHECK_SPAN(tw.user_login, "supibot");
	CHECK_SPAN(tw.target_message_id, "25fd");

	CHECK_INT(decode_s(":tmi.twitch.tv NOTICE * :Login authentication "
			   "failed"),
		  0);
	CHECK_INT(tw.kind, CB_IRC_K_NOTICE);
	CHECK_SPAN(tw.channel, NULL);
	CHECK_SPAN(tw.text, "Login authentication failed");
	CHECK(tw.auth_failed);
	CHECK_INT(decode_s(":tmi.twitch.tv NOTICE * :Improperly formatted "
			   "auth"),
		  0);
	CHECK(tw.auth_failed);
	CHECK_INT(decode_s("@msg-id=msg_banned :tmi.twitch.tv NOTICE #forsen "
			   ":Login authentication failed"),
		  0);
	CHECK(!tw.auth_failed); /* in a channel: some other notice */
	CHECK_SPAN(tw.msg_id, "msg_banned");

	CHECK_INT(decode_s("@msg-id=emote_only_on :tmi.twitch.tv NOTICE "
			   "#local7000"),
		  0);
	CHECK_SPAN(tw.channel, "local7000");
	CHECK_SPAN(tw.text, NULL);
	CHECK_INT(decode_s("@slow=0 :tmi.twitch.tv ROOMSTATE"), 0);
	CHECK_SPAN(tw.channel, NULL);

	/* control bytes and a TAB in the prefix */
	CHECK_INT(decode_s(":cool\tguy!~ag@n\002et\00305w\017ork.admin "
			   "PRIVMSG foo :bar baz"),
		  0);
	CHECK_SPAN(msg.nick, "cool\tguy");
	CHECK_SPAN(msg.host, "n\002et\00305w\017ork.admin");
	CHECK_SPAN(tw.channel, NULL);

	/* non-integers are not numbers */
	CHECK_INT(decode_s("@bits=5-00;tmi-sent-ts=12a;ban-duration= "
			   ":tmi.twitch.tv CLEARCHAT #c :x"),
		  0);
	CHECK(!tw.has_bits);
	CHECK(!tw.has_tmi_sent_ts);
	CHECK(!tw.has_ban_duration);

	CHECK_INT(decode_s("@emote-sets=0,33563,6ee8e1ad-0c6f-4b4b-b1c9-"
			   "3ce1b0e6e4a4 :tmi.twitch.tv GLOBALUSERSTATE"),
		  0);
	CHECK_SPAN(tw.emote_sets, "0,33563,6ee8e1ad-0c6f-4b4b-b1c9-3ce1b0e6e4a4");
}

/* ---- the client's view: kinds and their arguments ---- */

static void test_client_kinds(void)
{
	CHECK_INT(decode_s("PING :tmi.twitch.tv"), 0);
	CHECK_INT(msg.kind, CB_IRC_K_PING);
	CHECK_SPAN(tw.ping_arg, "tmi.twitch.tv");
	CHECK_INT(decode_s("ping"), 0); /* case-insensitive, no argument */
	CHECK_INT(msg.kind, CB_IRC_K_PING);
	CHECK_SPAN(msg.command, "PING");
	CHECK_SPAN(tw.ping_arg, NULL);
	CHECK_INT(decode_s(":tmi.twitch.tv PONG tmi.twitch.tv :xyz"), 0);
	CHECK_INT(msg.kind, CB_IRC_K_PONG);
	CHECK_SPAN(tw.ping_arg, "xyz");
	CHECK_INT(decode_s(":tmi.twitch.tv RECONNECT"), 0);
	CHECK_INT(msg.kind, CB_IRC_K_RECONNECT);
	CHECK_INT(decode_s(":tmi.twitch.tv 001 justinfan1 :Welcome, GLHF!"), 0);
	CHECK_INT(msg.kind, CB_IRC_K_WELCOME);
	CHECK_SPAN(msg.params[0], "justinfan1");
	CHECK_INT(decode_s(":tmi.twitch.tv CAP * ACK :twitch.tv/tags "
			   "twitch.tv/commands"),
		  0);
	CHECK_INT(msg.kind, CB_IRC_K_CAP);
	CHECK_SPAN(tw.cap_sub, "ACK");
	CHECK_SPAN(tw.cap_list, "twitch.tv/tags twitch.tv/commands");
	CHECK_INT(decode_s(":tmi.twitch.tv CAP * NAK :twitch.tv/foo"), 0);
	CHECK_SPAN(tw.cap_sub, "NAK");
	CHECK_INT(decode_s(":justinfan1!justinfan1@justinfan1.tmi.twitch.tv "
			   "JOIN #Forsen"),
		  0);
	CHECK_INT(msg.kind, CB_IRC_K_JOIN);
	CHECK_SPAN(tw.channel, "Forsen");
	CHECK_SPAN(tw.user_login, "justinfan1");
	CHECK_INT(decode_s(":justinfan1!justinfan1@x PART #forsen"), 0);
	CHECK_INT(msg.kind, CB_IRC_K_PART);
	CHECK_INT(decode_s(":a.tmi.twitch.tv 353 a = #chan :u1 u2"), 0);
	CHECK_INT(msg.kind, CB_IRC_K_NAMREPLY);
	CHECK_SPAN(tw.channel, "chan");
	CHECK_INT(decode_s(":a.tmi.twitch.tv 366 a #chan :End"), 0);
	CHECK_INT(msg.kind, CB_IRC_K_ENDOFNAMES);
	CHECK_SPAN(tw.channel, "chan");
	CHECK_INT(decode_s(":tmi.twitch.tv 421 a WHO :Unknown command"), 0);
	CHECK_INT(msg.kind, CB_IRC_K_OTHER);
	CHECK_SPAN(msg.command, "421");
	CHECK_INT(decode_s("@source-room-id=1;source-id=abc :a!a@a PRIVMSG "
			   "#c :shared"),
		  0);
	CHECK_SPAN(tw.source_room_id, "1");
	CHECK_SPAN(tw.source_id, "abc");
	CHECK_INT(decode_s("@first-msg=1 :a!a@a PRIVMSG #c :first"), 0);
	CHECK(tw.first_msg);
}

/* ---- limits ---- */

static void test_line_limits(void)
{
	static char big[CB_IRC_LINE_MAX + 8];
	char errstr[128];
	size_t hdr = strlen("PRIVMSG #c :");

	memcpy(big, "PRIVMSG #c :", hdr);
	memset(big + hdr, 'x', sizeof(big) - hdr);
	CHECK_INT(parse(big, CB_IRC_LINE_MAX, errstr, sizeof(errstr)), 0);
	CHECK_INT(msg.params[1].len, CB_IRC_LINE_MAX - hdr);
	/* CR LF does not count */
	big[CB_IRC_LINE_MAX] = '\r';
	big[CB_IRC_LINE_MAX + 1] = '\n';
	CHECK_INT(parse(big, CB_IRC_LINE_MAX + 2, errstr, sizeof(errstr)), 0);
	CHECK_INT(msg.params[1].len, CB_IRC_LINE_MAX - hdr);
	big[CB_IRC_LINE_MAX] = 'x';
	CHECK_INT(parse(big, CB_IRC_LINE_MAX + 1, errstr, sizeof(errstr)),
		  CB_E_TOOBIG);
	CHECK(strstr(errstr, "16384") != NULL);

	/* raw CR, LF, NUL inside */
	CHECK_INT(parse("PING a\rb", 8, errstr, sizeof(errstr)), CB_E_PARSE);
	CHECK_INT(parse("PING a\nb", 8, errstr, sizeof(errstr)), CB_E_PARSE);
	CHECK_INT(parse("PING a\0b", 8, errstr, sizeof(errstr)), CB_E_PARSE);
	CHECK_INT(parse("PING a\n", 7, errstr, sizeof(errstr)), 0);
	CHECK_INT(parse("PING a\r", 7, errstr, sizeof(errstr)), 0);
	CHECK_SPAN(msg.params[0], "a");
	CHECK_INT(parse("\r\n", 2, errstr, sizeof(errstr)), CB_E_PARSE);
	CHECK_INT(cb_irc_parse(NULL, 0, &msg, errstr, sizeof(errstr)),
		  CB_E_INVAL);
}

static void test_tag_limit(void)
{
	static char l[CB_IRC_TAGS_MAX * 8 + 32];
	char errstr[128];
	size_t n = 0;

	l[n++] = '@';
	for (int i = 0; i < CB_IRC_TAGS_MAX; i++)
		n += (size_t)snprintf(l + n, sizeof(l) - n, "%sk%d=v",
				      i ? ";" : "", i);
	memcpy(l + n, " X", 2);
	CHECK_INT(parse(l, n + 2, errstr, sizeof(errstr)), 0);
	CHECK_INT(msg.ntags, CB_IRC_TAGS_MAX);
	memcpy(l + n, ";z X", 4);
	CHECK_INT(parse(l, n + 4, errstr, sizeof(errstr)), CB_E_TOOBIG);
	CHECK(strstr(errstr, "tags") != NULL);
}

static void test_param_limit(void)
{
	/* 14 middle params, then the rest of the line is the 15th */
	CHECK_INT(parse_s("X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 :17"), 0);
	CHECK_INT(msg.nparams, CB_IRC_PARAMS_MAX);
	CHECK_SPAN(msg.params[13], "14");
	CHECK_SPAN(msg.params[14], "15 16 :17");
	CHECK_INT(parse_s("X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 :last one"), 0);
	CHECK_INT(msg.nparams, 15);
	CHECK_SPAN(msg.params[14], "last one");
}

static void test_badge_and_emote_caps(void)
{
	static char l[8192];
	size_t n = (size_t)snprintf(l, sizeof(l), "@badges=");

	for (int i = 0; i < CB_TWITCH_BADGES_MAX + 3; i++)
		n += (size_t)snprintf(l + n, sizeof(l) - n, "%sb%d/1",
				      i ? "," : "", i);
	n += (size_t)snprintf(l + n, sizeof(l) - n, ";emotes=1:");
	for (int i = 0; i < CB_TWITCH_EMOTES_MAX + 5; i++)
		n += (size_t)snprintf(l + n, sizeof(l) - n, "%s%d-%d",
				      i ? "," : "", i, i);
	snprintf(l + n, sizeof(l) - n, " :a!a@a PRIVMSG #c :x");
	CHECK_INT(decode_s(l), 0);
	CHECK_INT(tw.nbadges, CB_TWITCH_BADGES_MAX);
	CHECK(tw.badges_truncated);
	CHECK_INT(tw.emotes.n, CB_TWITCH_EMOTES_MAX);
	CHECK(tw.emotes.truncated);
	CHECK(!tw.emotes.malformed);
	CHECK_SPAN(tw.emotes.v[0].name, "x");
	CHECK(tw.emotes.v[1].out_of_range);
}

static void test_parse_i64(void)
{
	int64_t v = 0;

	CHECK(cb_irc_parse_i64("0", 1, &v) && v == 0);
	CHECK(cb_irc_parse_i64("-42", 3, &v) && v == -42);
	CHECK(cb_irc_parse_i64("9223372036854775807", 19, &v) &&
	      v == INT64_MAX);
	CHECK(cb_irc_parse_i64("-9223372036854775808", 20, &v) &&
	      v == INT64_MIN);
	CHECK(!cb_irc_parse_i64("9223372036854775808", 19, &v));
	CHECK(!cb_irc_parse_i64("-", 1, &v));
	CHECK(!cb_irc_parse_i64("", 0, &v));
	CHECK(!cb_irc_parse_i64(NULL, 0, &v));
	CHECK(!cb_irc_parse_i64("1 ", 2, &v));
	CHECK(!cb_irc_parse_i64("99999999999999999999999", 23, &v));
}

/* Invalid UTF-8 anywhere: parsed as bytes, emote names cut per byte. */
static void test_invalid_utf8(void)
{
	CHECK_INT(decode_s("@display-name=\xFF\xFE;emotes=1:1-2 :a!a@a PRIVMSG "
			   "#c :\xC3(\xE2\x82 z"),
		  0);
	CHECK_SPAN(tw.display_name, "\xFF\xFE");
	/* code points: 0xC3 (invalid alone), '(', 0xE2 0x82 is a truncated
	 * sequence: one invalid byte each */
	CHECK_INT(tw.emotes.n, 1);
	CHECK_SPAN(tw.emotes.v[0].name, "(\xE2");
}

int main(void)
{
	load_records();
	RUN(test_fixture_has_every_record);
	RUN(test_fixture_lines);
	RUN(test_fixture_invalid_lines);
	RUN(test_fixture_tag_sections);
	RUN(test_fixture_tsv_agrees);
	RUN(test_tricky_emotes_code_points);
	RUN(test_tricky_emotes_out_of_range);
	RUN(test_tricky_emotes_malformed);
	RUN(test_tricky_me_actions);
	RUN(test_tricky_escapes);
	RUN(test_tricky_escaped_spaces);
	RUN(test_tricky_tag_structure);
	RUN(test_tricky_text_as_middle_param);
	RUN(test_tricky_space_policy);
	RUN(test_tricky_surprising_values);
	RUN(test_client_kinds);
	RUN(test_line_limits);
	RUN(test_tag_limit);
	RUN(test_param_limit);
	RUN(test_badge_and_emote_caps);
	RUN(test_parse_i64);
	RUN(test_invalid_utf8);
	json_decref(records);
	return test_done();
}
