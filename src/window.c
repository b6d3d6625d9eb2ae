/*
 * window.c - per-channel tumbling windows, their figures, the spike
 * detector, ChannelStats JSON and the restorable state (see window.h and
 * docs/aggregation.md).  Pure code owned by the aggregator thread (one
 * cb_winset per input partition); time comes from the records and the
 * caller.
 *
 * Memory: a channel holds its windows (a small array sorted by start), its
 * detector (spike_history minute counts) and its last moments.  A window
 * holds fixed-size counters, two space-saving summaries and the unique
 * chatters (an exact hash set up to exact_limit, then a HyperLogLog).  They
 * are allocated when a channel or window appears, never per record.
 *
 * Determinism: everything that decides the figures (window choice, late
 * rule, summaries' tie breaks, detector, pruning) depends only on the
 * records, their order, and the emit points, and the state blob captures
 * all of it, so a restored set continues byte for byte like the original.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatbattle/err.h"
#include "chatbattle/hll.h"
#include "chatbattle/jw.h"
#include "chatbattle/sentiment.h"
#include "chatbattle/topk.h"
#include "chatbattle/window.h"

/* Version 2 added the mood sums per window; a version 1 state restores
 * with them zero (docs/aggregation.md, "Chat mood"). */
#define STATE_VERSION 2
#define STATE_VERSION_MIN 1
#define MINUTE_MS 60000

static const char *const ev_names[CB_EV_COUNT] = {
	"sub",        "resub",          "subgift",         "submysterygift",
	"giftpaidupgrade", "raid",      "announcement",    "ritual",
	"bitsbadgetier", "viewermilestone", "usernotice",  "ban",
	"timeout",    "clearchat",      "clearmsg",        "other",
};

struct win {
	int64_t start_ms;
	int64_t count;
	int64_t late;
	int64_t last_received_at;
	bool dirty;
	uint32_t *per_minute; /* minutes entries */
	uint32_t events[CB_EV_COUNT];
	/* Unique chatters: exact set until it exceeds the limit. */
	uint64_t *set;        /* open addressing, 0 = empty */
	uint32_t set_n, set_cap;
	struct cb_hll *hll;   /* non-NULL once estimating */
	struct cb_topk emotes, chatters;
	/* Mood: the sum of the messages' scores (thousandths) and how many
	 * were positive and negative (the rest of count is neutral). */
	int64_t mood_sum;
	uint32_t mood_pos, mood_neg;
};

struct chan {
	char name[26];
	uint8_t name_len;
	bool dirty;
	struct win **w; /* sorted by start */
	uint32_t nw, w_cap;
	/* Spike detector. */
	bool has_cur;
	int64_t cur_minute;  /* absolute minute number */
	uint32_t cur_count;
	uint32_t *hist;      /* ring of spike_history completed minutes */
	uint32_t hist_head;  /* next write position */
	uint32_t hist_n;     /* filled, <= spike_history */
	struct cb_moment moments[CB_WIN_MOMENTS_MAX];
	uint32_t n_moments;
};

struct cb_winset {
	struct cb_window_cfg cfg;
	uint32_t minutes;   /* per window */
	uint32_t topk_cap;
	int64_t stream_time;
	struct chan **ch;   /* every channel */
	size_t nch, ch_cap;
	int32_t *index;     /* open addressing into ch, -1 empty */
	size_t index_cap;
	struct chan **dirty;
	size_t ndirty, dirty_cap;
	struct cb_jw json;  /* reused for every record */
	struct cb_jw state; /* binary state, base64'd into json */
};

/* ---- small helpers ---- */

int cb_window_event_type(const char *type, size_t len)
{
	if (type == NULL || len == 0 ||
	    (len == 7 && memcmp(type, "message", 7) == 0))
		return CB_EV_MESSAGE;
	for (int i = 0; i < CB_EV_OTHER; i++)
		if (strlen(ev_names[i]) == len &&
		    memcmp(ev_names[i], type, len) == 0)
			return i;
	return CB_EV_OTHER;
}

const char *cb_window_event_name(int ev)
{
	return ev >= 0 && ev < CB_EV_COUNT ? ev_names[ev] : "message";
}

int64_t cb_window_start(int64_t ts_ms, int64_t size_ms)
{
	int64_t q = ts_ms / size_ms;

	if (ts_ms % size_ms != 0 && ts_ms < 0)
		q--;
	return q * size_ms;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return cb_window_start(a, b) / b;
}

/* 64-bit FNV-1a with a murmur3 finalizer: well mixed for the sketch. */
static uint64_t hash64(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

/* ---- windows ---- */

static void win_free(struct win *w)
{
	if (w == NULL)
		return;
	free(w->per_minute);
	free(w->set);
	free(w->hll);
	cb_topk_release(&w->emotes);
	cb_topk_release(&w->chatters);
	free(w);
}

static struct win *win_new(const struct cb_winset *ws, int64_t start_ms)
{
	struct win *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->start_ms = start_ms;
	w->per_minute = calloc(ws->minutes, sizeof(*w->per_minute));
	if (w->per_minute == NULL ||
	    cb_topk_init(&w->emotes, ws->topk_cap) != 0 ||
	    cb_topk_init(&w->chatters, ws->topk_cap) != 0) {
		win_free(w);
		return NULL;
	}
	if (ws->cfg.exact_limit == 0) {
		w->hll = malloc(sizeof(*w->hll));
		if (w->hll == NULL) {
			win_free(w);
			return NULL;
		}
		cb_hll_init(w->hll);
	}
	return w;
}

static int set_grow(struct win *w)
{
	uint32_t cap = w->set_cap ? w->set_cap * 2 : 16;
	uint64_t *s = calloc(cap, sizeof(*s));

	if (s == NULL)
		return CB_E_NOMEM;
	for (uint32_t i = 0; i < w->set_cap; i++) {
		uint64_t h = w->set[i];
		uint32_t j;

		if (h == 0)
			continue;
		for (j = (uint32_t)h & (cap - 1); s[j]; j = (j + 1) & (cap - 1))
			;
		s[j] = h;
	}
	free(w->set);
	w->set = s;
	w->set_cap = cap;
	return 0;
}

/* Moves the exact set into a new sketch. */
static int to_hll(struct win *w)
{
	w->hll = malloc(sizeof(*w->hll));
	if (w->hll == NULL)
		return CB_E_NOMEM;
	cb_hll_init(w->hll);
	for (uint32_t i = 0; i < w->set_cap; i++)
		if (w->set[i])
			cb_hll_add(w->hll, w->set[i]);
	free(w->set);
	w->set = NULL;
	w->set_n = w->set_cap = 0;
	return 0;
}

/* Adds a chatter by hash: exact while the set stays within limit. */
static int uniq_add(struct win *w, uint32_t limit, uint64_t h)
{
	uint32_t j;

	if (h == 0)
		h = 1; /* 0 marks an empty slot */
	if (w->hll != NULL) {
		cb_hll_add(w->hll, h);
		return 0;
	}
	if (w->set_cap != 0) {
		for (j = (uint32_t)h & (w->set_cap - 1); w->set[j];
		     j = (j + 1) & (w->set_cap - 1))
			if (w->set[j] == h)
				return 0;
	}
	if (w->set_n + 1 > limit) {
		int err = to_hll(w);

		if (err == 0)
			cb_hll_add(w->hll, h);
		return err;
	}
	if ((w->set_n + 1) * 2 > w->set_cap && set_grow(w) != 0)
		return CB_E_NOMEM;
	for (j = (uint32_t)h & (w->set_cap - 1); w->set[j];
	     j = (j + 1) & (w->set_cap - 1))
		;
	w->set[j] = h;
	w->set_n++;
	return 0;
}

static int64_t uniq_count(const struct win *w)
{
	return w->hll ? (int64_t)llround(cb_hll_estimate(w->hll))
		      : (int64_t)w->set_n;
}

/* ---- channels ---- */

static void chan_free(struct chan *c)
{
	if (c == NULL)
		return;
	for (uint32_t i = 0; i < c->nw; i++)
		win_free(c->w[i]);
	free(c->w);
	free(c->hist);
	free(c);
}

static uint32_t chash(const char *s, size_t n)
{
	return (uint32_t)hash64(s, n);
}

static int index_rebuild(struct cb_winset *ws, size_t cap)
{
	int32_t *ix = malloc(cap * sizeof(*ix));

	if (ix == NULL)
		return CB_E_NOMEM;
	memset(ix, 0xff, cap * sizeof(*ix));
	for (size_t k = 0; k < ws->nch; k++) {
		size_t i = chash(ws->ch[k]->name, ws->ch[k]->name_len) &
			   (cap - 1);

		while (ix[i] >= 0)
			i = (i + 1) & (cap - 1);
		ix[i] = (int32_t)k;
	}
	free(ws->index);
	ws->index = ix;
	ws->index_cap = cap;
	return 0;
}

static struct chan *chan_find(const struct cb_winset *ws, const char *name,
			      size_t n)
{
	size_t i;

	if (ws->index_cap == 0)
		return NULL;
	i = chash(name, n) & (ws->index_cap - 1);
	for (;;) {
		int32_t k = ws->index[i];

		if (k < 0)
			return NULL;
		if (ws->ch[k]->name_len == n &&
		    memcmp(ws->ch[k]->name, name, n) == 0)
			return ws->ch[k];
		i = (i + 1) & (ws->index_cap - 1);
	}
}

static struct chan *chan_get(struct cb_winset *ws, const char *name, size_t n)
{
	struct chan *c = chan_find(ws, name, n);
	size_t i;

	if (c != NULL)
		return c;
	if (n == 0 || n > 25)
		return NULL;
	if (ws->nch == ws->ch_cap) {
		size_t cap = ws->ch_cap ? ws->ch_cap * 2 : 16;
		struct chan **a = realloc(ws->ch, cap * sizeof(*a));

		if (a == NULL)
			return NULL;
		ws->ch = a;
		ws->ch_cap = cap;
	}
	if ((ws->nch + 1) * 2 > ws->index_cap &&
	    index_rebuild(ws, ws->index_cap ? ws->index_cap * 2 : 32) != 0)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->hist = calloc(ws->cfg.spike_history, sizeof(*c->hist));
	if (c->hist == NULL) {
		free(c);
		return NULL;
	}
	memcpy(c->name, name, n);
	c->name_len = (uint8_t)n;
	ws->ch[ws->nch] = c;
	i = chash(name, n) & (ws->index_cap - 1);
	while (ws->index[i] >= 0)
		i = (i + 1) & (ws->index_cap - 1);
	ws->index[i] = (int32_t)ws->nch++;
	return c;
}

static int mark_dirty(struct cb_winset *ws, struct chan *c, struct win *w)
{
	if (!c->dirty) {
		if (ws->ndirty == ws->dirty_cap) {
			size_t cap = ws->dirty_cap ? ws->dirty_cap * 2 : 16;
			struct chan **d = realloc(ws->dirty, cap * sizeof(*d));

			if (d == NULL)
				return CB_E_NOMEM;
			ws->dirty = d;
			ws->dirty_cap = cap;
		}
		ws->dirty[ws->ndirty++] = c;
		c->dirty = true;
	}
	if (w != NULL)
		w->dirty = true;
	return 0;
}

/* The window of c starting at start, created (in order) when missing. */
static struct win *win_get(struct cb_winset *ws, struct chan *c,
			   int64_t start)
{
	uint32_t pos = c->nw;
	struct win *w;

	while (pos > 0 && c->w[pos - 1]->start_ms >= start) {
		if (c->w[pos - 1]->start_ms == start)
			return c->w[pos - 1];
		pos--;
	}
	if (c->nw == c->w_cap) {
		uint32_t cap = c->w_cap ? c->w_cap * 2 : 4;
		struct win **a = realloc(c->w, cap * sizeof(*a));

		if (a == NULL)
			return NULL;
		c->w = a;
		c->w_cap = cap;
	}
	w = win_new(ws, start);
	if (w == NULL)
		return NULL;
	memmove(&c->w[pos + 1], &c->w[pos], (c->nw - pos) * sizeof(*c->w));
	c->w[pos] = w;
	c->nw++;
	return w;
}

/* True while window w can still take records (Kafka Streams' rule). */
static bool win_open(const struct cb_winset *ws, int64_t start_ms)
{
	int64_t end = start_ms + ws->cfg.size_ms;

	if (ws->stream_time == INT64_MIN)
		return true;
	return end > ws->stream_time - ws->cfg.grace_ms;
}

/* ---- spike detector ---- */

static void hist_push(const struct cb_winset *ws, struct chan *c, uint32_t v)
{
	c->hist[c->hist_head] = v;
	c->hist_head = (c->hist_head + 1) % ws->cfg.spike_history;
	if (c->hist_n < ws->cfg.spike_history)
		c->hist_n++;
}

/* Judges the completed minute m with count x, then adds it to history. */
static void judge(const struct cb_winset *ws, struct chan *c, int64_t m,
		  uint32_t x)
{
	uint32_t h = ws->cfg.spike_history;

	if (c->hist_n == h && x >= ws->cfg.spike_min_rate) {
		/* Integer sums: exact, so independent of the ring's layout
		 * (a restored ring starts at another position). */
		unsigned __int128 sum = 0, sq = 0;
		double mean, sd, score;

		for (uint32_t i = 0; i < h; i++) {
			sum += c->hist[i];
			sq += (unsigned __int128)c->hist[i] * c->hist[i];
		}
		mean = (double)sum / h;
		sd = sqrt((double)(sq * h - sum * sum) / ((double)h * h));
		score = (x - mean) / (sd > 1.0 ? sd : 1.0);
		if (score >= ws->cfg.spike_threshold) {
			if (c->n_moments == CB_WIN_MOMENTS_MAX) {
				memmove(&c->moments[0], &c->moments[1],
					(CB_WIN_MOMENTS_MAX - 1) *
						sizeof(c->moments[0]));
				c->n_moments--;
			}
			c->moments[c->n_moments++] = (struct cb_moment){
				.minute_start_ms = m * MINUTE_MS,
				.count = x,
				.mean = mean,
				.stddev = sd,
				.score = score,
			};
		}
	}
	hist_push(ws, c, x);
}

/* A counted chat message at minute m. */
static void detect(const struct cb_winset *ws, struct chan *c, int64_t m)
{
	uint32_t h = ws->cfg.spike_history;

	if (!c->has_cur) {
		c->has_cur = true;
		c->cur_minute = m;
		c->cur_count = 1;
		return;
	}
	if (m == c->cur_minute) {
		c->cur_count++;
		return;
	}
	if (m < c->cur_minute)
		return; /* out of order: only the window's per-minute counts */
	judge(ws, c, c->cur_minute, c->cur_count);
	if (m - c->cur_minute - 1 >= (int64_t)h) {
		/* Silent for the whole history: start over, as a channel
		 * seen for the first time would (see cb_winset_emit). */
		c->hist_n = 0;
		c->hist_head = 0;
	} else {
		for (int64_t k = c->cur_minute + 1; k < m; k++)
			hist_push(ws, c, 0);
	}
	c->cur_minute = m;
	c->cur_count = 1;
}

/* ---- the set ---- */

int cb_winset_new(struct cb_winset **out, const struct cb_window_cfg *cfg,
		  char *errstr, size_t errstr_size)
{
	struct cb_winset *ws;

	*out = NULL;
	if (cfg->size_ms < 1000 || cfg->size_ms > 86400000 ||
	    cfg->grace_ms < 0 || cfg->top_k == 0 || cfg->spike_history == 0 ||
	    !(cfg->spike_threshold > 0))
		return cb_seterr(errstr, errstr_size, CB_E_INVAL,
				 "window settings out of range");
	ws = calloc(1, sizeof(*ws));
	if (ws == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	ws->cfg = *cfg;
	ws->minutes = (uint32_t)((cfg->size_ms + MINUTE_MS - 1) / MINUTE_MS);
	ws->topk_cap = cfg->top_k * 8;
	ws->stream_time = INT64_MIN;
	*out = ws;
	return 0;
}

void cb_winset_free(struct cb_winset *ws)
{
	if (ws == NULL)
		return;
	for (size_t i = 0; i < ws->nch; i++)
		chan_free(ws->ch[i]);
	free(ws->ch);
	free(ws->index);
	free(ws->dirty);
	cb_jw_release(&ws->json);
	cb_jw_release(&ws->state);
	free(ws);
}

int64_t cb_winset_stream_time(const struct cb_winset *ws)
{
	return ws->stream_time;
}

size_t cb_winset_channels(const struct cb_winset *ws)
{
	return ws->nch;
}

size_t cb_winset_dirty(const struct cb_winset *ws)
{
	return ws->ndirty;
}

int cb_winset_apply(struct cb_winset *ws, const struct cb_win_rec *r)
{
	int64_t start = cb_window_start(r->ts_ms, ws->cfg.size_ms);
	int64_t saved = ws->stream_time;
	struct chan *c;
	struct win *w;
	const uint8_t *e;

	if (r->ts_ms > ws->stream_time)
		ws->stream_time = r->ts_ms;
	if (!win_open(ws, start)) {
		/* Late: counted on the channel's newest window if that one
		 * is still open, else only by the caller's metric. */
		c = chan_find(ws, r->channel, r->channel_len);
		if (c != NULL && c->nw > 0 &&
		    win_open(ws, c->w[c->nw - 1]->start_ms)) {
			if (mark_dirty(ws, c, c->w[c->nw - 1]) != 0)
				return CB_E_NOMEM;
			c->w[c->nw - 1]->late++;
		}
		return CB_WIN_LATE;
	}
	c = chan_get(ws, r->channel, r->channel_len);
	w = c ? win_get(ws, c, start) : NULL;
	if (w == NULL || mark_dirty(ws, c, w) != 0) {
		ws->stream_time = saved;
		return CB_E_NOMEM;
	}
	if (r->event != CB_EV_MESSAGE) {
		w->events[r->event >= 0 && r->event < CB_EV_COUNT ? r->event
								: CB_EV_OTHER]++;
		return CB_WIN_APPLIED;
	}
	if (r->user_len > 0 &&
	    uniq_add(w, ws->cfg.exact_limit, hash64(r->user, r->user_len)) != 0)
		return CB_E_NOMEM;
	w->count++;
	w->per_minute[(r->ts_ms - start) / MINUTE_MS]++;
	w->mood_sum += r->mood_milli;
	if (r->mood_milli >= CB_SENTIMENT_THRESHOLD_MILLI)
		w->mood_pos++;
	else if (r->mood_milli <= -CB_SENTIMENT_THRESHOLD_MILLI)
		w->mood_neg++;
	if (r->received_at_ms > w->last_received_at)
		w->last_received_at = r->received_at_ms;
	if (r->username_len > 0)
		cb_topk_add(&w->chatters, r->username, r->username_len);
	e = r->emotes;
	for (uint16_t i = 0; i < r->emote_count; i++) {
		size_t len;

		if ((size_t)(e - r->emotes) + 2 > r->emotes_len)
			break;
		len = (size_t)e[0] | (size_t)e[1] << 8;
		if ((size_t)(e - r->emotes) + 2 + len > r->emotes_len)
			break;
		cb_topk_add(&w->emotes, (const char *)e + 2, len);
		e += 2 + len;
	}
	detect(ws, c, floor_div(r->ts_ms, MINUTE_MS));
	return CB_WIN_APPLIED;
}

/* ---- state (binary, then base64) ---- */

static void put_u8(struct cb_jw *b, uint8_t v)
{
	cb_jw_raw(b, (const char *)&v, 1);
}

static void put_uv(struct cb_jw *b, uint64_t v)
{
	char t[10];
	size_t n = 0;

	while (v >= 0x80) {
		t[n++] = (char)(v | 0x80);
		v >>= 7;
	}
	t[n++] = (char)v;
	cb_jw_raw(b, t, n);
}

static void put_sv(struct cb_jw *b, int64_t v)
{
	put_uv(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void put_f64(struct cb_jw *b, double d)
{
	uint64_t u;
	char t[8];

	memcpy(&u, &d, 8);
	for (int i = 0; i < 8; i++)
		t[i] = (char)(u >> (8 * i));
	cb_jw_raw(b, t, 8);
}

static void put_topk(struct cb_jw *b, const struct cb_topk *t)
{
	put_uv(b, t->n);
	for (uint32_t i = 0; i < t->n; i++) {
		put_uv(b, t->e[i].len);
		cb_jw_raw(b, t->e[i].name, t->e[i].len);
		put_uv(b, t->e[i].count);
		put_uv(b, t->e[i].error);
	}
}

static void state_write(struct cb_winset *ws, const struct chan *c)
{
	struct cb_jw *b = &ws->state;
	uint32_t nopen = 0;

	cb_jw_reset(b);
	put_u8(b, STATE_VERSION);
	put_sv(b, ws->stream_time);
	put_sv(b, ws->cfg.size_ms);
	put_u8(b, c->has_cur);
	if (c->has_cur) {
		put_sv(b, c->cur_minute);
		put_uv(b, c->cur_count);
	}
	put_uv(b, c->hist_n);
	for (uint32_t i = 0; i < c->hist_n; i++) {
		uint32_t h = ws->cfg.spike_history;

		put_uv(b, c->hist[(c->hist_head + h - c->hist_n + i) % h]);
	}
	put_uv(b, c->n_moments);
	for (uint32_t i = 0; i < c->n_moments; i++) {
		put_sv(b, c->moments[i].minute_start_ms);
		put_uv(b, c->moments[i].count);
		put_f64(b, c->moments[i].mean);
		put_f64(b, c->moments[i].stddev);
		put_f64(b, c->moments[i].score);
	}
	for (uint32_t i = 0; i < c->nw; i++)
		nopen += win_open(ws, c->w[i]->start_ms);
	put_uv(b, nopen);
	for (uint32_t i = 0; i < c->nw; i++) {
		const struct win *w = c->w[i];

		if (!win_open(ws, w->start_ms))
			continue;
		put_sv(b, w->start_ms);
		put_uv(b, (uint64_t)w->count);
		put_uv(b, (uint64_t)w->late);
		put_sv(b, w->last_received_at);
		put_uv(b, ws->minutes);
		for (uint32_t k = 0; k < ws->minutes; k++)
			put_uv(b, w->per_minute[k]);
		put_uv(b, CB_EV_COUNT);
		for (int k = 0; k < CB_EV_COUNT; k++)
			put_uv(b, w->events[k]);
		if (w->hll != NULL) {
			uint8_t regs[CB_HLL_BYTES];

			put_u8(b, 1);
			cb_hll_save(w->hll, regs);
			cb_jw_raw(b, (const char *)regs, sizeof(regs));
		} else {
			put_u8(b, 0);
			put_uv(b, w->set_n);
			for (uint32_t k = 0; k < w->set_cap; k++) {
				char t[8];

				if (w->set[k] == 0)
					continue;
				for (int j = 0; j < 8; j++)
					t[j] = (char)(w->set[k] >> (8 * j));
				cb_jw_raw(b, t, 8);
			}
		}
		put_topk(b, &w->emotes);
		put_topk(b, &w->chatters);
		put_sv(b, w->mood_sum);
		put_uv(b, w->mood_pos);
		put_uv(b, w->mood_neg);
	}
}

struct rd {
	const uint8_t *base, *p, *end;
	bool bad;
};

static uint8_t get_u8(struct rd *r)
{
	if (r->p >= r->end) {
		r->bad = true;
		return 0;
	}
	return *r->p++;
}

static uint64_t get_uv(struct rd *r)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		uint8_t b = get_u8(r);

		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

static int64_t get_sv(struct rd *r)
{
	uint64_t u = get_uv(r);

	return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static double get_f64(struct rd *r)
{
	uint64_t u = 0;
	double d;

	for (int i = 0; i < 8; i++)
		u |= (uint64_t)get_u8(r) << (8 * i);
	memcpy(&d, &u, 8);
	return d;
}

static const uint8_t *get_bytes(struct rd *r, size_t n)
{
	const uint8_t *p = r->p;

	if ((size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	return p;
}

static int get_topk(struct rd *r, struct cb_topk *t)
{
	uint64_t n = get_uv(r);

	for (uint64_t i = 0; i < n && !r->bad; i++) {
		uint64_t len = get_uv(r), count, error;
		const uint8_t *name;

		if (len > CB_TOPK_NAME_MAX) {
			r->bad = true;
			break;
		}
		name = get_bytes(r, len);
		count = get_uv(r);
		error = get_uv(r);
		if (name == NULL)
			break;
		/* A smaller top_k now: keep the first entries. */
		if (cb_topk_put(t, (const char *)name, len, (uint32_t)count,
				(uint32_t)error) != 0)
			continue;
	}
	return r->bad ? CB_E_PARSE : 0;
}

static int win_read(struct cb_winset *ws, struct rd *r, struct win *w,
		    bool same_size, int version)
{
	uint64_t n;

	w->count = (int64_t)get_uv(r);
	w->late = (int64_t)get_uv(r);
	w->last_received_at = get_sv(r);
	n = get_uv(r);
	if (same_size && n != ws->minutes)
		return CB_E_PARSE;
	for (uint64_t k = 0; k < n && !r->bad; k++) {
		uint64_t v = get_uv(r);

		if (k < ws->minutes)
			w->per_minute[k] = (uint32_t)v;
	}
	n = get_uv(r);
	for (uint64_t k = 0; k < n && !r->bad; k++) {
		uint64_t v = get_uv(r);

		w->events[k < CB_EV_COUNT ? k : CB_EV_OTHER] += (uint32_t)v;
	}
	if (get_u8(r) == 1) {
		const uint8_t *regs = get_bytes(r, CB_HLL_BYTES);

		if (regs == NULL)
			return CB_E_PARSE;
		if (w->hll == NULL) {
			w->hll = malloc(sizeof(*w->hll));
			if (w->hll == NULL)
				return CB_E_NOMEM;
		}
		if (cb_hll_load(w->hll, regs) != 0)
			return CB_E_PARSE;
	} else {
		n = get_uv(r);
		if (n > (uint64_t)(r->end - r->p) / 8)
			return CB_E_PARSE;
		for (uint64_t k = 0; k < n; k++) {
			const uint8_t *b = get_bytes(r, 8);
			uint64_t h = 0;

			for (int j = 0; j < 8; j++)
				h |= (uint64_t)b[j] << (8 * j);
			/* A lower exact limit now turns the set into a
			 * sketch, as the live path would have. */
			if (uniq_add(w, ws->cfg.exact_limit, h) != 0)
				return CB_E_NOMEM;
		}
	}
	if (get_topk(r, &w->emotes) != 0 || get_topk(r, &w->chatters) != 0)
		return CB_E_PARSE;
	if (version >= 2) {
		uint64_t pos, neg;
		int64_t lim;

		w->mood_sum = get_sv(r);
		pos = get_uv(r);
		neg = get_uv(r);
		/* The sums are bounded by the count they were made of (a
		 * damaged count must not overflow the bound). */
		if (w->count < 0 || w->count > INT64_MAX / 1000)
			return CB_E_PARSE;
		lim = w->count * 1000;
		if (pos > (uint64_t)w->count ||
		    neg > (uint64_t)w->count - pos || w->mood_sum > lim ||
		    w->mood_sum < -lim)
			return CB_E_PARSE;
		w->mood_pos = (uint32_t)pos;
		w->mood_neg = (uint32_t)neg;
	}
	return r->bad ? CB_E_PARSE : 0;
}

/*
 * Fills c (empty) from the state; *stream_time gets the state's.  Windows of
 * another size than the configured one are skipped (*size_changed).
 * Returns 0, CB_E_PARSE or CB_E_NOMEM.
 */
static int state_read(struct cb_winset *ws, struct chan *c, struct rd *r,
		      int64_t *stream_time, int64_t *size_changed,
		      char *errstr, size_t errstr_size)
{
	uint32_t h = ws->cfg.spike_history;
	uint64_t n, hist_n;
	int64_t size_ms;
	int err, version;

	version = get_u8(r);
	if (version < STATE_VERSION_MIN || version > STATE_VERSION)
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "unknown state version");
	*stream_time = get_sv(r);
	size_ms = get_sv(r);
	c->has_cur = get_u8(r) != 0;
	if (c->has_cur) {
		c->cur_minute = get_sv(r);
		c->cur_count = (uint32_t)get_uv(r);
	}
	hist_n = get_uv(r);
	if (hist_n > (uint64_t)(r->end - r->p))
		goto bad;
	for (uint64_t i = 0; i < hist_n; i++) {
		uint32_t v = (uint32_t)get_uv(r);

		/* A shorter history now keeps the newest minutes. */
		if (hist_n - i <= h)
			hist_push(ws, c, v);
	}
	n = get_uv(r);
	if (n > CB_WIN_MOMENTS_MAX)
		goto bad;
	for (uint64_t i = 0; i < n; i++) {
		struct cb_moment *m = &c->moments[c->n_moments++];

		m->minute_start_ms = get_sv(r);
		m->count = (uint32_t)get_uv(r);
		m->mean = get_f64(r);
		m->stddev = get_f64(r);
		m->score = get_f64(r);
	}
	n = get_uv(r);
	if (r->bad || n > 1000000)
		goto bad;
	for (uint64_t i = 0; i < n; i++) {
		int64_t start = get_sv(r);
		struct win *w;

		if (r->bad || cb_window_start(start, size_ms) != start)
			goto bad;
		if (size_ms != ws->cfg.size_ms) {
			/* Another window size: the figures cannot be mapped;
			 * read past them into a throwaway window. */
			struct win *tmp = win_new(ws, start);

			if (tmp == NULL)
				return CB_E_NOMEM;
			err = win_read(ws, r, tmp, false, version);
			win_free(tmp);
			if (err == CB_E_NOMEM)
				return err;
			if (err != 0)
				goto bad;
			continue;
		}
		if (c->nw > 0 && c->w[c->nw - 1]->start_ms >= start)
			goto bad;
		w = win_get(ws, c, start);
		if (w == NULL)
			return CB_E_NOMEM;
		err = win_read(ws, r, w, true, version);
		if (err == CB_E_NOMEM)
			return err;
		if (err != 0)
			goto bad;
	}
	if (r->bad || r->p != r->end)
		goto bad;
	if (size_ms != ws->cfg.size_ms)
		*size_changed = size_ms;
	return 0;
bad:
	return cb_seterr(errstr, errstr_size, CB_E_PARSE,
			 "state is damaged near byte %zu",
			 (size_t)(r->p - r->base));
}

static void chan_reset(const struct cb_winset *ws, struct chan *c)
{
	for (uint32_t i = 0; i < c->nw; i++)
		win_free(c->w[i]);
	c->nw = 0;
	c->has_cur = false;
	c->cur_minute = 0;
	c->cur_count = 0;
	memset(c->hist, 0, ws->cfg.spike_history * sizeof(*c->hist));
	c->hist_head = c->hist_n = 0;
	c->n_moments = 0;
}

int cb_winset_restore(struct cb_winset *ws, const char *channel,
		      size_t channel_len, const char *state_b64, size_t n,
		      char *errstr, size_t errstr_size)
{
	struct chan *c = chan_get(ws, channel, channel_len);
	uint8_t *bin = NULL;
	long len;
	struct rd r;
	int64_t st = INT64_MIN, other_size = 0;
	int err;

	if (c == NULL)
		goto nomem;
	chan_reset(ws, c);
	bin = malloc(n / 4 * 3 + 1);
	if (bin == NULL)
		goto nomem;
	len = cb_jw_base64_decode(state_b64, n, bin);
	if (len < 0) {
		free(bin);
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "state is not base64");
	}
	r = (struct rd){.base = bin, .p = bin, .end = bin + len};
	err = state_read(ws, c, &r, &st, &other_size, errstr, errstr_size);
	free(bin);
	if (err == CB_E_NOMEM)
		goto nomem;
	if (err != 0) {
		chan_reset(ws, c);
		return err;
	}
	if (st > ws->stream_time)
		ws->stream_time = st;
	if (other_size != 0)
		return cb_seterr(errstr, errstr_size, CB_E_RANGE,
				 "state has %lld ms windows, not %lld: its "
				 "windows were dropped",
				 (long long)other_size,
				 (long long)ws->cfg.size_ms);
	return 0;
nomem:
	return cb_seterr(errstr, errstr_size, CB_E_NOMEM, "out of memory");
}

/*
 * Forgets closed windows, and channels with no window left that have been
 * silent for the whole spike history (a channel seen again later starts
 * like a new one, which is exactly what its detector would do).
 */
static void prune(struct cb_winset *ws)
{
	size_t keep = 0;
	bool removed = false;
	int64_t now_minute = ws->stream_time == INT64_MIN
				     ? INT64_MIN
				     : floor_div(ws->stream_time, MINUTE_MS);

	for (size_t i = 0; i < ws->nch; i++) {
		struct chan *c = ws->ch[i];
		uint32_t k = 0;

		for (uint32_t j = 0; j < c->nw; j++) {
			if (win_open(ws, c->w[j]->start_ms))
				c->w[k++] = c->w[j];
			else
				win_free(c->w[j]);
		}
		c->nw = k;
		if (c->nw == 0 && !c->dirty && now_minute != INT64_MIN &&
		    (!c->has_cur ||
		     now_minute - c->cur_minute - 1 >=
			     (int64_t)ws->cfg.spike_history)) {
			chan_free(c);
			removed = true;
			continue;
		}
		ws->ch[keep++] = c;
	}
	ws->nch = keep;
	if (removed)
		index_rebuild(ws, ws->index_cap);
}

void cb_winset_restore_done(struct cb_winset *ws)
{
	prune(ws);
}

/* ---- ChannelStats JSON ---- */

/* The window's mean score in thousandths, rounded half away from zero in
 * integers (no float on the way, so every reader computes the same). */
static int64_t mood_mean_milli(const struct win *w)
{
	if (w->count <= 0)
		return 0;
	if (w->mood_sum >= 0)
		return (w->mood_sum + w->count / 2) / w->count;
	return -((-w->mood_sum + w->count / 2) / w->count);
}

static void top_list(struct cb_jw *j, const struct cb_topk *t, size_t k,
		     const char *name_key)
{
	const struct cb_topk_entry *top[100];
	size_t n = cb_topk_top(t, top, k > 100 ? 100 : k);

	cb_jw_open(j, '[');
	for (size_t i = 0; i < n; i++) {
		cb_jw_open(j, '{');
		cb_jw_key(j, name_key);
		cb_jw_str(j, top[i]->name, top[i]->len);
		cb_jw_key(j, "count");
		cb_jw_int(j, top[i]->count);
		cb_jw_close(j, '}');
	}
	cb_jw_close(j, ']');
}

static void record(struct cb_winset *ws, const struct chan *c,
		   const struct win *w, int64_t now_ms, bool with_state)
{
	struct cb_jw *j = &ws->json;

	cb_jw_reset(j);
	cb_jw_open(j, '{');
	cb_jw_key(j, "channel_id");
	cb_jw_str(j, c->name, c->name_len);
	cb_jw_key(j, "message_count");
	cb_jw_int(j, w->count);
	cb_jw_key(j, "window_start");
	cb_jw_int(j, w->start_ms);
	cb_jw_key(j, "window_end");
	cb_jw_int(j, w->start_ms + ws->cfg.size_ms);
	cb_jw_key(j, "window_duration_seconds");
	cb_jw_int(j, ws->cfg.size_ms / 1000);
	cb_jw_key(j, "unique_chatters");
	cb_jw_int(j, uniq_count(w));
	cb_jw_key(j, "unique_chatters_exact");
	cb_jw_bool(j, w->hll == NULL);
	cb_jw_key(j, "per_minute");
	cb_jw_open(j, '[');
	for (uint32_t i = 0; i < ws->minutes; i++)
		cb_jw_int(j, w->per_minute[i]);
	cb_jw_close(j, ']');
	cb_jw_key(j, "top_emotes");
	top_list(j, &w->emotes, ws->cfg.top_k, "name");
	cb_jw_key(j, "top_chatters");
	top_list(j, &w->chatters, ws->cfg.top_k, "username");
	cb_jw_key(j, "events");
	cb_jw_open(j, '{');
	for (int i = 0; i < CB_EV_COUNT; i++) {
		cb_jw_key(j, ev_names[i]);
		cb_jw_int(j, w->events[i]);
	}
	cb_jw_close(j, '}');
	cb_jw_key(j, "moments");
	cb_jw_open(j, '[');
	for (uint32_t i = 0; i < c->n_moments; i++) {
		const struct cb_moment *m = &c->moments[i];

		cb_jw_open(j, '{');
		cb_jw_key(j, "minute_start");
		cb_jw_int(j, m->minute_start_ms);
		cb_jw_key(j, "count");
		cb_jw_int(j, m->count);
		cb_jw_key(j, "mean");
		cb_jw_double(j, m->mean);
		cb_jw_key(j, "stddev");
		cb_jw_double(j, m->stddev);
		cb_jw_key(j, "score");
		cb_jw_double(j, m->score);
		cb_jw_close(j, '}');
	}
	cb_jw_close(j, ']');
	cb_jw_key(j, "late_records");
	cb_jw_int(j, w->late);
	cb_jw_key(j, "stream_time");
	cb_jw_int(j, ws->stream_time == INT64_MIN ? 0 : ws->stream_time);
	cb_jw_key(j, "last_updated");
	cb_jw_int(j, now_ms);
	cb_jw_key(j, "last_received_at");
	cb_jw_int(j, w->last_received_at);
	/* Mood (docs/aggregation.md): the mean compound score, rounded to
	 * thousandths from the exact integer sum, and the counts. */
	cb_jw_key(j, "sentiment");
	cb_jw_double(j, mood_mean_milli(w) / 1000.0);
	cb_jw_key(j, "sentiment_sum");
	cb_jw_int(j, w->mood_sum);
	cb_jw_key(j, "sentiment_positive");
	cb_jw_int(j, w->mood_pos);
	cb_jw_key(j, "sentiment_negative");
	cb_jw_int(j, w->mood_neg);
	cb_jw_key(j, "sentiment_neutral");
	cb_jw_int(j, w->count - w->mood_pos - w->mood_neg);
	if (with_state) {
		state_write(ws, c);
		cb_jw_key(j, "state");
		cb_jw_base64(j, (const uint8_t *)ws->state.buf, ws->state.len);
		if (ws->state.oom)
			j->oom = true;
	}
	cb_jw_close(j, '}');
}

int cb_winset_emit(struct cb_winset *ws, int64_t now_ms, cb_win_emit_fn fn,
		   void *arg)
{
	int err = 0;
	size_t done;

	for (done = 0; done < ws->ndirty && err == 0; done++) {
		struct chan *c = ws->dirty[done];

		for (uint32_t i = 0; i < c->nw && err == 0; i++) {
			struct win *w = c->w[i];
			bool last = i + 1 == c->nw;

			if (!w->dirty && !last)
				continue;
			record(ws, c, w, now_ms, last);
			if (ws->json.oom)
				err = CB_E_NOMEM;
			else
				err = fn(arg, c->name, c->name_len,
					 ws->json.buf, ws->json.len);
			w->dirty = false;
		}
		c->dirty = false;
	}
	/* On error the rest stays dirty for the caller's retry. */
	if (ws->ndirty > done)
		memmove(ws->dirty, ws->dirty + done,
			(ws->ndirty - done) * sizeof(*ws->dirty));
	ws->ndirty -= done;
	if (err == 0)
		prune(ws);
	return err;
}

/* ---- inspection ---- */

int cb_winset_figures(const struct cb_winset *ws, const char *channel,
		      int64_t start_ms, struct cb_win_figures *out)
{
	const struct chan *c = chan_find(ws, channel, strlen(channel));

	for (uint32_t i = 0; c != NULL && i < c->nw; i++) {
		const struct win *w = c->w[i];

		if (w->start_ms != start_ms)
			continue;
		memset(out, 0, sizeof(*out));
		out->start_ms = w->start_ms;
		out->message_count = w->count;
		out->late_records = w->late;
		out->unique_chatters = uniq_count(w);
		out->unique_exact = w->hll == NULL;
		out->last_received_at = w->last_received_at;
		out->minutes = ws->minutes;
		memcpy(out->per_minute, w->per_minute,
		       ws->minutes * sizeof(w->per_minute[0]));
		memcpy(out->events, w->events, sizeof(out->events));
		out->sentiment_sum = w->mood_sum;
		out->sentiment_positive = w->mood_pos;
		out->sentiment_negative = w->mood_neg;
		out->sentiment_milli = mood_mean_milli(w);
		return 0;
	}
	return CB_E_NOTFOUND;
}

size_t cb_winset_moments(const struct cb_winset *ws, const char *channel,
			 struct cb_moment *out, size_t max)
{
	const struct chan *c = chan_find(ws, channel, strlen(channel));
	size_t n = 0;

	for (uint32_t i = 0; c != NULL && i < c->n_moments && n < max; i++)
		out[n++] = c->moments[i];
	return n;
}
