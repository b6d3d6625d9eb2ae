/*
 * sentiment.c - the chat mood of one message (see sentiment.h and
 * docs/aggregation.md, "Chat mood").  Pure code, called by the aggregator
 * thread once per consumed chat message; no allocation, no state.
 *
 * The scorer follows VADER (Hutto & Gilbert, ICWSM-14; the reference is
 * vaderSentiment.py) in its main rules, with VADER's constants: each token
 * gets the valence its lexicon gives it; a booster word ("very",
 * "really", ...) up to three tokens before raises (or, "barely", lowers)
 * it, less with distance; a negation ("not", "don't", ...) up to three
 * tokens before flips and damps it (x -0.74); an ALL CAPS word in a message
 * that is not all caps is emphasised; words before "but" count half and
 * words after it one and a half; "!" (up to 4) and repeated "?" push the
 * sum away from zero; and the sum is normalised to a compound score
 * x / sqrt(x^2 + 15) in [-1, 1].  Left out: VADER's idioms, its two-word
 * boosters ("kind of"), "least" and "no" special cases, and emoji.
 *
 * Emotes come first: an exact (case-sensitive) match in the project's own
 * emote table below is an emote, never a word, and never gets the caps
 * emphasis (LUL and KEKW are names, not shouting).  Then the lexicons:
 * the token as written (emoticons such as ":)" or ":D"), then the word
 * lower-cased without the punctuation around it, first in the project's
 * small table of chat words VADER does not know ("pog", "kekw"), then in
 * VADER's lexicon (src/sentiment_vader.h, generated from VADER's
 * vader_lexicon.txt, MIT licence).
 *
 * Determinism: a score is computed once per record in IEEE double
 * arithmetic and rounded to an integer number of thousandths, so the
 * window sums are integers and a replay after a restart adds exactly the
 * same numbers.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chatbattle/sentiment.h"

#define MAX_TOKENS 256
#define MAX_TOKEN_LEN 48

/* VADER's constants (vaderSentiment.py). */
#define B_INCR 0.293
#define C_INCR 0.733
#define N_SCALAR (-0.74)
#define ALPHA 15.0

struct lex {
	const char *token;
	int16_t valence_milli;
};

/*
 * The project's emote table: Twitch global emotes and the most used
 * BetterTTV/FrankerFaceZ/7TV ones, with valences on VADER's -4 .. +4 scale
 * that we assigned from the emotes' usual meaning in chat (docs/
 * aggregation.md lists them and the references).  Sorted by byte order
 * (test_sentiment checks it), matched case-sensitively.
 */
static const struct lex emotes[] = {
	{"4Head", 1000},	   {"BabyRage", -1800},
	{"BibleThump", -2200},	   {"BloodTrail", 1000},
	{"BrokeBack", 1500},	   {"Clap", 1500},
	{"CoolCat", 1000},	   {"CoolStoryBob", -1000},
	{"DansGame", -2000},	   {"EZ", 1000},
	{"EleGiggle", 1500},	   {"FailFish", -1800},
	{"FeelsAmazingMan", 2500}, {"FeelsBadMan", -2200},
	{"FeelsGoodMan", 2000},	   {"FeelsWeirdMan", -1200},
	{"GivePLZ", 1000},	   {"HeyGuys", 1500},
	{"KEKW", 2000},		   {"Kappa", 500},
	{"KappaPride", 1500},	   {"Keepo", 500},
	{"Kreygasm", 2500},	   {"LUL", 2000},
	{"LULW", 2000},		   {"NotLikeThis", -2500},
	{"OMEGALUL", 2200},	   {"PJSalt", -1500},
	{"POGGERS", 2500},	   {"PepeHands", -2200},
	{"Pepega", -1000},	   {"Pog", 2500},
	{"PogChamp", 2500},	   {"PogU", 2500},
	{"ResidentSleeper", -2000}, {"Sadge", -2000},
	{"SeemsGood", 1800},	   {"SwiftRage", -2000},
	{"TakeNRG", 1000},	   {"TriHard", 1000},
	{"TwitchUnity", 1500},	   {"VoHiYo", 1500},
	{"WeirdChamp", -1500},	   {"WutFace", -1800},
	{"catJAM", 1500},	   {"cmonBruh", -1200},
	{"monkaS", -1500},	   {"monkaW", -2000},
	{"peepoHappy", 2000},	   {"widepeepoHappy", 2000},
};

/* The project's chat words (lower case) that VADER's lexicon lacks:
 * emote names typed in lower case and common chat slang. */
static const struct lex chat_words[] = {
	{"cringe", -1800}, {"hype", 1800},  {"hyped", 2000},
	{"kekw", 2000},	   {"lul", 2000},   {"lulw", 2000},
	{"omegalul", 2200}, {"pog", 2500},  {"poggers", 2500},
	{"pogu", 2500},	   {"rip", -1500},  {"sadge", -2000},
};

/* VADER's NEGATE list. */
static const char *const negations[] = {
	"aint",	    "arent",   "cannot",   "cant",	    "couldnt", "darent",
	"didnt",    "doesnt",  "ain't",    "aren't",    "can't",   "couldn't",
	"daren't",  "didn't",  "doesn't",  "dont",	    "hadnt",   "hasnt",
	"havent",   "isnt",    "mightnt",  "mustnt",    "neither", "don't",
	"hadn't",   "hasn't",  "haven't",  "isn't",	    "mightn't", "mustn't",
	"neednt",   "needn't", "never",    "none",	    "nope",    "nor",
	"not",	    "nothing", "nowhere",  "oughtnt",   "shant",   "shouldnt",
	"uhuh",	    "wasnt",   "werent",   "oughtn't",  "shan't",  "shouldn't",
	"uh-uh",    "wasn't",  "weren't",  "without",   "wont",    "wouldnt",
	"won't",    "wouldn't", "rarely",  "seldom",    "despite",
};

/* VADER's one-word boosters: +1 raises, -1 lowers. */
static const struct {
	const char *word;
	int sign;
} boosters[] = {
	{"absolutely", 1},  {"amazingly", 1},	 {"awfully", 1},
	{"completely", 1},  {"considerable", 1}, {"considerably", 1},
	{"decidedly", 1},   {"deeply", 1},	 {"effing", 1},
	{"enormous", 1},    {"enormously", 1},	 {"entirely", 1},
	{"especially", 1},  {"exceptional", 1},	 {"exceptionally", 1},
	{"extreme", 1},	    {"extremely", 1},	 {"fabulously", 1},
	{"flipping", 1},    {"flippin", 1},	 {"frackin", 1},
	{"fracking", 1},    {"fricking", 1},	 {"frickin", 1},
	{"frigging", 1},    {"friggin", 1},	 {"fully", 1},
	{"fuckin", 1},	    {"fucking", 1},	 {"fuggin", 1},
	{"fugging", 1},	    {"greatly", 1},	 {"hella", 1},
	{"highly", 1},	    {"hugely", 1},	 {"incredible", 1},
	{"incredibly", 1},  {"intensely", 1},	 {"major", 1},
	{"majorly", 1},	    {"more", 1},	 {"most", 1},
	{"particularly", 1}, {"purely", 1},	 {"quite", 1},
	{"really", 1},	    {"remarkably", 1},	 {"so", 1},
	{"substantially", 1}, {"thoroughly", 1}, {"total", 1},
	{"totally", 1},	    {"tremendous", 1},	 {"tremendously", 1},
	{"uber", 1},	    {"unbelievably", 1}, {"unusually", 1},
	{"utter", 1},	    {"utterly", 1},	 {"very", 1},
	{"almost", -1},	    {"barely", -1},	 {"hardly", -1},
	{"kinda", -1},	    {"kindof", -1},	 {"kind-of", -1},
	{"less", -1},	    {"little", -1},	 {"marginal", -1},
	{"marginally", -1}, {"occasional", -1},	 {"occasionally", -1},
	{"partly", -1},	    {"scarce", -1},	 {"scarcely", -1},
	{"slight", -1},	    {"slightly", -1},	 {"somewhat", -1},
	{"sorta", -1},	    {"sortof", -1},	 {"sort-of", -1},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

#include "sentiment_vader.h"

struct tok {
	const char *raw;   /* as written */
	size_t raw_len;
	char low[MAX_TOKEN_LEN + 1]; /* stripped of punctuation, lower case */
	size_t low_len;
	bool upper;        /* has letters, all of them upper case */
	bool emote;
	int32_t valence;   /* milli, before the rules */
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

static bool is_punct(char c)
{
	return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') ||
	       (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
}

/* Byte order of a NUL-terminated token and a counted key (which may hold
 * NUL bytes: JSON text can carry \u0000), as strcmp orders the table. */
static int key_cmp(const char *token, const char *s, size_t len)
{
	size_t tlen = strlen(token);
	int c = memcmp(token, s, tlen < len ? tlen : len);

	if (c != 0)
		return c;
	return tlen < len ? -1 : tlen > len ? 1 : 0;
}

/* bsearch over a table sorted by byte order. */
static const struct lex *lex_find(const struct lex *t, size_t n,
				  const char *s, size_t len)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(t[mid].token, s, len);

		if (c == 0)
			return &t[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static const struct lex *vader_find(const char *s, size_t len)
{
	return lex_find(vader_lexicon, COUNT(vader_lexicon), s, len);
}

static bool word_in(const char *const *list, size_t n, const char *s,
		    size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i]) == len && memcmp(list[i], s, len) == 0)
			return true;
	return false;
}

static int booster_sign(const struct tok *t)
{
	for (size_t i = 0; i < COUNT(boosters); i++)
		if (strlen(boosters[i].word) == t->low_len &&
		    memcmp(boosters[i].word, t->low, t->low_len) == 0)
			return boosters[i].sign;
	return 0;
}

static bool negated(const struct tok *t)
{
	if (word_in(negations, COUNT(negations), t->low, t->low_len))
		return true;
	for (size_t i = 0; i + 3 <= t->low_len; i++)
		if (memcmp(t->low + i, "n't", 3) == 0)
			return true;
	return false;
}

/* Fills t from its raw bytes and looks its valence up. */
static void tok_fill(struct tok *t, const char *raw, size_t len)
{
	const char *s = raw, *e = raw + len;
	const struct lex *hit = NULL;
	bool letters = false, lower = false;

	t->raw = raw;
	t->raw_len = len;
	t->low_len = 0;
	t->emote = false;
	t->valence = 0;
	while (s < e && is_punct(*s))
		s++;
	while (e > s && is_punct(e[-1]))
		e--;
	if ((size_t)(e - s) <= MAX_TOKEN_LEN) {
		for (const char *p = s; p < e; p++) {
			char c = *p;

			if (c >= 'A' && c <= 'Z') {
				letters = true;
				c = (char)(c - 'A' + 'a');
			} else if (c >= 'a' && c <= 'z') {
				letters = lower = true;
			}
			t->low[t->low_len++] = c;
		}
	}
	t->low[t->low_len] = '\0';
	t->upper = letters && !lower;
	if (e > s)
		hit = lex_find(emotes, COUNT(emotes), s, (size_t)(e - s));
	if (hit != NULL) {
		t->emote = true;
		t->valence = hit->valence_milli;
		return;
	}
	if (booster_sign(t) != 0)
		return; /* VADER: a booster carries no valence itself */
	hit = vader_find(raw, len);
	if (hit == NULL && t->low_len > 0)
		hit = lex_find(chat_words, COUNT(chat_words), t->low,
			       t->low_len);
	if (hit == NULL && t->low_len > 0)
		hit = vader_find(t->low, t->low_len);
	if (hit != NULL)
		t->valence = hit->valence_milli;
}

static int table_check(const struct lex *t, size_t n)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(t[i].token);

		if (i > 0 && strcmp(t[i - 1].token, t[i].token) >= 0)
			bad++;
		if (lex_find(t, n, t[i].token, len) != &t[i])
			bad++;
	}
	return bad;
}

int cb_sentiment_table_check(void)
{
	return table_check(emotes, COUNT(emotes)) +
	       table_check(chat_words, COUNT(chat_words)) +
	       table_check(vader_lexicon, COUNT(vader_lexicon));
}

int32_t cb_sentiment_token_valence(const char *token, size_t len)
{
	struct tok t;

	tok_fill(&t, token, len);
	return t.valence;
}

int32_t cb_sentiment_score(const char *text, size_t len)
{
	struct tok tk[MAX_TOKENS];
	size_t n = 0, i = 0, but = SIZE_MAX, nupper = 0, nwords = 0;
	unsigned excl = 0, quest = 0;
	double sum = 0, emph = 0, compound;
	long milli;

	while (i < len && n < MAX_TOKENS) {
		size_t start;

		while (i < len && is_space(text[i]))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && !is_space(text[i]))
			i++;
		tok_fill(&tk[n], text + start, i - start);
		if (tk[n].low_len > 0 && !tk[n].emote) {
			nwords++;
			nupper += tk[n].upper;
		}
		if (but == SIZE_MAX && tk[n].low_len == 3 &&
		    memcmp(tk[n].low, "but", 3) == 0)
			but = n;
		n++;
	}
	for (size_t k = 0; k < len; k++) {
		excl += text[k] == '!';
		quest += text[k] == '?';
	}
	/* VADER's "allcap differential": caps only stand out when some
	 * words are not in caps. */
	bool cap_diff = nupper > 0 && nupper < nwords;

	for (size_t k = 0; k < n; k++) {
		const struct tok *t = &tk[k];
		double v = t->valence / 1000.0;

		if (t->valence == 0)
			continue;
		if (!t->emote && t->upper && cap_diff)
			v += v > 0 ? C_INCR : -C_INCR;
		for (size_t d = 1; d <= 3 && d <= k; d++) {
			const struct tok *p = &tk[k - d];
			int b = p->valence == 0 ? booster_sign(p) : 0;

			if (b != 0) {
				double s = b * B_INCR;

				if (v < 0)
					s = -s;
				if (p->upper && cap_diff)
					s += v > 0 ? C_INCR : -C_INCR;
				if (d == 2)
					s *= 0.95;
				else if (d == 3)
					s *= 0.9;
				v += s;
			}
			if (negated(p))
				v *= N_SCALAR;
		}
		if (but != SIZE_MAX)
			v *= k < but ? 0.5 : k > but ? 1.5 : 1.0;
		sum += v;
	}
	if (sum == 0)
		return 0;
	emph = (excl > 4 ? 4 : excl) * 0.292;
	if (quest > 1)
		emph += quest <= 3 ? quest * 0.18 : 0.96;
	sum += sum > 0 ? emph : -emph;
	compound = sum / sqrt(sum * sum + ALPHA);
	milli = lround(compound * 1000.0);
	if (milli > 1000)
		milli = 1000;
	if (milli < -1000)
		milli = -1000;
	return (int32_t)milli;
}

enum cb_sentiment_label cb_sentiment_label(int32_t score_milli)
{
	if (score_milli >= CB_SENTIMENT_THRESHOLD_MILLI)
		return CB_SENTIMENT_POSITIVE;
	if (score_milli <= -CB_SENTIMENT_THRESHOLD_MILLI)
		return CB_SENTIMENT_NEGATIVE;
	return CB_SENTIMENT_NEUTRAL;
}
