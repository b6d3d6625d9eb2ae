/*
 * sentiment.h - the chat mood of one message (src/sentiment.c): a
 * VADER-style compound score from VADER's word lexicon (MIT licence) and
 * the project's own table of Twitch emotes and chat words.  Pure code: no
 * I/O, no allocation, no state; safe from any thread.  docs/aggregation.md
 * ("Chat mood") states the rules, the sources and the emote table.
 */
#ifndef CHATBATTLE_SENTIMENT_H
#define CHATBATTLE_SENTIMENT_H

#include <stddef.h>
#include <stdint.h>

/* A message is positive at a compound score >= +0.05 and negative at
 * <= -0.05 (VADER's usual thresholds), else neutral. */
#define CB_SENTIMENT_THRESHOLD_MILLI 50

enum cb_sentiment_label {
	CB_SENTIMENT_NEUTRAL = 0,
	CB_SENTIMENT_POSITIVE = 1,
	CB_SENTIMENT_NEGATIVE = 2
};

/*
 * The compound score of a chat message's text, in thousandths: an integer
 * in [-1000, 1000] (0 for text without a scored token).  The same text
 * always gives the same score, which is what makes the window sums exactly
 * once.  text need not be NUL-terminated; only the first 256 tokens count.
 */
int32_t cb_sentiment_score(const char *text, size_t len);

/* The label of a score (see CB_SENTIMENT_THRESHOLD_MILLI). */
enum cb_sentiment_label cb_sentiment_label(int32_t score_milli);

/* The valence (-4000 .. +4000) the lexicons give one token as it would be
 * looked up inside a message, or 0 when neither knows it (tests, docs). */
int32_t cb_sentiment_token_valence(const char *token, size_t len);

/* Tests: how many entries of the three tables are out of byte order or
 * not found by their own name (0 when the tables are sound). */
int cb_sentiment_table_check(void);

#endif
