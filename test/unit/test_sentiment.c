/*
 * test_sentiment.c - the chat mood scorer (src/sentiment.c) on labelled
 * chat lines: clearly positive, clearly negative, neutral, emote-only,
 * negation, boosters, caps and exclamation emphasis, "but"; plus the
 * tables' order (bsearch needs it), exact pinned scores that
 * t40-agg-exactly-once relies on, and the limits of odd input.
 */
#include <math.h>

#include "chatbattle/sentiment.h"
#include "test.h"

enum want { POS, NEG, NEU };

static const struct {
	const char *line;
	enum want want;
	int min_abs; /* |score| at least this (milli), for POS and NEG */
} labelled[] = {
	/* clearly positive */
	{"this stream is so good", POS, 400},
	{"I love this game", POS, 500},
	{"nice play, that was awesome", POS, 600},
	{"haha lol that was great", POS, 700},
	{"gg wp", POS, 200},
	{"wow", POS, 500},
	/* clearly negative */
	{"this is boring", NEG, 200},
	{"I hate this, worst stream ever", NEG, 600},
	{"terrible play, so bad", NEG, 600},
	{"that was sad", NEG, 400},
	{"wtf is this trash", NEG, 500},
	/* neutral */
	{"what time is it", NEU, 0},
	{"when is the next stream", NEU, 0},
	{"!uptime", NEU, 0},
	{"hello chat", NEU, 0},
	{"", NEU, 0},
	{"   ", NEU, 0},
	{"日本語 Привет ñandú", NEU, 0},
	/* emote-only */
	{"PogChamp", POS, 500},
	{"PogChamp PogChamp PogChamp", POS, 800},
	{"LUL LUL", POS, 600},
	{"KEKW", POS, 400},
	{"PogU", POS, 500},
	{"FeelsGoodMan", POS, 400},
	{"NotLikeThis", NEG, 500},
	{"BibleThump BibleThump", NEG, 700},
	{"ResidentSleeper", NEG, 400},
	{"monkaS", NEG, 300},
	{"FeelsBadMan", NEG, 400},
	{"Kappa", POS, 100},
	/* emotes in words, and the case of an emote matters */
	{"that clutch PogChamp", POS, 500},
	{"we lost again NotLikeThis", NEG, 500},
	{"pog", POS, 500},
	/* negation */
	{"not good", NEG, 300},
	{"this is not bad at all", POS, 200},
	{"I don't like this", NEG, 200},
	{"never funny", NEG, 200},
	/* emoticons */
	{":)", POS, 300},
	{":(", NEG, 300},
	/* "but": the second half dominates */
	{"the game is bad but the streamer is great", POS, 200},
};

static void test_labelled_lines(void)
{
	int wrong = 0;

	for (size_t i = 0; i < sizeof(labelled) / sizeof(labelled[0]); i++) {
		const char *s = labelled[i].line;
		int32_t v = cb_sentiment_score(s, strlen(s));
		enum cb_sentiment_label l = cb_sentiment_label(v);
		bool good;

		switch (labelled[i].want) {
		case POS:
			good = l == CB_SENTIMENT_POSITIVE &&
			       v >= labelled[i].min_abs;
			break;
		case NEG:
			good = l == CB_SENTIMENT_NEGATIVE &&
			       -v >= labelled[i].min_abs;
			break;
		default:
			good = l == CB_SENTIMENT_NEUTRAL && v == 0;
			break;
		}
		if (!good) {
			printf("# \"%s\": score %d, expected %s (|score| >= %d)\n",
			       s, v,
			       labelled[i].want == POS	 ? "positive"
			       : labelled[i].want == NEG ? "negative"
							 : "neutral 0",
			       labelled[i].min_abs);
			wrong++;
		}
	}
	CHECK_INT(wrong, 0);
}

static int32_t score(const char *s)
{
	return cb_sentiment_score(s, strlen(s));
}

static void test_rules_move_the_score(void)
{
	/* Boosters raise, and lower ("barely"). */
	CHECK(score("very good") > score("good"));
	CHECK(score("barely good") < score("good"));
	CHECK(score("really bad") < score("bad"));
	/* Caps stand out only beside words that are not in caps. */
	CHECK(score("this is GOOD") > score("this is good"));
	CHECK_INT(score("GOOD"), score("good"));
	/* Emote names are never shouting. */
	CHECK_INT(score("LUL"), score("LUL"));
	CHECK_INT(score("that was LUL"), score("that was LUL"));
	/* Exclamation marks push away from zero, up to four. */
	CHECK(score("good!") > score("good"));
	CHECK(score("good!!!!") > score("good!!"));
	CHECK_INT(score("good!!!!!!!!"), score("good!!!!"));
	CHECK(score("bad!!!") < score("bad"));
	/* Punctuation alone moves nothing. */
	CHECK_INT(score("!!!???"), 0);
	/* Negation flips and damps. */
	CHECK(score("not good") < 0 && -score("not good") < score("good"));
	/* Repetition adds up, never past the bounds. */
	CHECK(score("LUL LUL LUL LUL") > score("LUL LUL"));
	CHECK(score("PogChamp PogChamp PogChamp PogChamp PogChamp PogChamp "
		    "PogChamp PogChamp PogChamp PogChamp!!!!") <= 1000);
}

/* Exact values: VADER's normalisation x / sqrt(x^2 + 15) of the valences
 * in the tables.  t40-agg-exactly-once and test_agg expect the same
 * numbers for their input lines; change them together. */
static void test_pinned_scores(void)
{
	CHECK_INT(cb_sentiment_token_valence("PogChamp", 8), 2500);
	CHECK_INT(cb_sentiment_token_valence("NotLikeThis", 11), -2500);
	CHECK_INT(cb_sentiment_token_valence("pogchamp", 8), 0);
	CHECK_INT(cb_sentiment_token_valence("good", 4), 1900);
	CHECK_INT(cb_sentiment_token_valence("good,", 5), 1900);
	CHECK_INT(cb_sentiment_token_valence(":)", 2), 2000);
	CHECK_INT(score("PogChamp"), lround(2.5 / sqrt(2.5 * 2.5 + 15) * 1000));
	CHECK_INT(score("PogChamp"), 542);
	CHECK_INT(score("NotLikeThis"), -542);
	CHECK_INT(score("hi 12345"), 0);
	/* test_agg's and t40's texts. */
	CHECK_INT(score("hello"), 0);
	CHECK_INT(score("hi chat"), 0);
	CHECK_INT(score("PogChamp PogChamp"), 791);
	/* VADER's lexicon knows some numbers (pager and street slang). */
	CHECK(score("143") > 0);
	CHECK(score("187") < 0);
	CHECK_INT(cb_sentiment_label(50), CB_SENTIMENT_POSITIVE);
	CHECK_INT(cb_sentiment_label(49), CB_SENTIMENT_NEUTRAL);
	CHECK_INT(cb_sentiment_label(-49), CB_SENTIMENT_NEUTRAL);
	CHECK_INT(cb_sentiment_label(-50), CB_SENTIMENT_NEGATIVE);
}

/* Not NUL-terminated input, huge tokens and many tokens: bounded, no
 * reads past len (ASan), the same score every time. */
static void test_odd_input(void)
{
	char big[4096];
	char *many;
	size_t n = 0;

	memset(big, 'a', sizeof(big));
	CHECK_INT(cb_sentiment_score(big, sizeof(big)), 0);
	memcpy(big, "good", 4);
	CHECK_INT(cb_sentiment_score(big, 4), score("good"));
	/* "good" followed by bytes that must not be read as part of it. */
	CHECK_INT(cb_sentiment_score("goodbye", 4), score("good"));
	/* A NUL byte inside a token (JSON's \u0000): not the shorter word,
	 * and no read past a table entry (ASan). */
	CHECK_INT(cb_sentiment_score("good\0xx", 7), 0);
	CHECK_INT(cb_sentiment_score("LUL\0", 4), 0);
	CHECK_INT(cb_sentiment_score("\0\0\0", 3), 0);
	many = malloc(5 * 1000 + 1);
	CHECK(many != NULL);
	for (int i = 0; i < 1000; i++) {
		memcpy(many + n, "LUL ", 4);
		n += 4;
	}
	int32_t a = cb_sentiment_score(many, n);
	int32_t b = cb_sentiment_score(many, n);
	free(many);
	CHECK_INT(a, b);
	CHECK(a > 990 && a <= 1000);
}

/* Every table lookup is a bsearch: each table must be in byte order and
 * every entry found by its own name. */
static void test_tables_sorted_and_found(void)
{
	const char *probe[] = {"PogChamp", "4Head", "widepeepoHappy", "monkaS",
			       "$:", ":)", "<3", "good", "zzz", "lol"};

	for (size_t i = 0; i < sizeof(probe) / sizeof(probe[0]); i++)
		CHECK(cb_sentiment_token_valence(probe[i], strlen(probe[i])) !=
		      0);
	CHECK_INT(cb_sentiment_table_check(), 0);
}

int main(void)
{
	RUN(test_labelled_lines);
	RUN(test_rules_move_the_score);
	RUN(test_pinned_scores);
	RUN(test_odd_input);
	RUN(test_tables_sorted_and_found);
	return test_done();
}
