/*
 * http_battle.c - the battle of channels (docs/api.md): GET /api/battle
 * ranks channels by messages per minute in their current window, with
 * each one's count, unique chatters, top emote and a per-minute sparkline,
 * in one answer; http_sse.c streams the same document
 * (GET /api/battle/events).
 *
 * Every figure comes from the stats cache (so from channel-stats): the
 * seqlock view for the version and the window length, then the channel's
 * last windows as JSON for the per-minute counts and the top emote.  The
 * IRC reader's status only adds "monitored" and "state", and, without
 * ?channels=, the channels it watches that have no figures yet.
 *
 * Messages per minute in the current window: the window's message count
 * divided by the minutes from the later of the window's start and the
 * channel's first minute with messages in it, up to now (at least one
 * minute, so that the first seconds of a window do not make a channel
 * look busier than it is).  A channel whose newest window has ended has
 * nothing in the current one: 0.  Runs in libmicrohttpd's threads and in
 * the SSE callbacks; reads only.
 *
 * Viewer counts (viewers.h), when the poller runs: "viewers" (the last
 * Helix count; 0 when offline; null before the first answer or when the
 * counts are off), "live", and "msgs_per_1k_viewers": messages per minute
 * per 1,000 viewers, null without a positive count.  A new count moves the
 * document's version too.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chatbattle/app.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/irc.h"
#include "chatbattle/clock.h"
#include "chatbattle/stats_cache.h"
#include "chatbattle/viewers.h"
#include "http_int.h"

#define JSON_TYPE "application/json"
#define SPARK_MINUTES 30
#define MINUTE_MS 60000
/* Windows read per channel for the sparkline, whatever their length. */
#define SPARK_WINDOWS_MAX 64

struct fighter {
	char name[26];
	const struct cb_irc_channel_status *st; /* NULL: not monitored here */
	bool stats;     /* the cache has figures */
	bool current;   /* its newest window is still open at now */
	double rate;    /* messages per minute in the current window */
	int64_t count, unique, start, end, updated;
	json_t *top_emote; /* owned; NULL when none */
	json_t *mood;      /* owned "sentiment" number; NULL when none */
	int64_t spark[SPARK_MINUTES];
	bool have_viewers; /* the poller has a sample */
	struct cb_viewers_view viewers;
};

int cb_http_battle_parse(struct cb_http_ctx *x,
			 struct cb_http_battle_query *q, enum MHD_Result *ret)
{
	const char *v = MHD_lookup_connection_value(
		x->conn, MHD_GET_ARGUMENT_KIND, "channels");
	const char *p;

	memset(q, 0, sizeof(*q));
	if (v == NULL) {
		q->all = true;
		return 0;
	}
	if (v[0] == '\0') {
		*ret = cb_http_error(x, 400, NULL,
				     "channels: name at least one channel "
				     "(a,b,c), or leave the parameter out "
				     "for every channel watched");
		return -1;
	}
	for (p = v;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char name[26], reason[160];
		bool dup = false;

		if (cb_channel_normalize(p, len, name, reason,
					 sizeof(reason)) != 0) {
			*ret = cb_http_error(x, 400, NULL,
					     "channels: \"%.*s\" is not a "
					     "channel name: %s",
					     (int)(len > 40 ? 40 : len), p,
					     reason);
			return -1;
		}
		for (size_t i = 0; i < q->n && !dup; i++)
			dup = strcmp(q->names[i], name) == 0;
		if (!dup) {
			if (q->n == CB_HTTP_BATTLE_MAX) {
				*ret = cb_http_error(
					x, 400, NULL,
					"channels: at most %d channels in "
					"one battle",
					CB_HTTP_BATTLE_MAX);
				return -1;
			}
			memcpy(q->names[q->n++], name, sizeof(name));
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return 0;
}

uint64_t cb_http_battle_version(struct cb_http *h,
				const struct cb_http_battle_query *q)
{
	struct cb_stats_cache *c = h->app->cache;
	struct cb_stats_view v;
	uint64_t max = 0;

	if (c == NULL)
		return 0;
	/* Both only grow: their sum moves when either does. */
	if (q->all)
		return cb_stats_cache_version(c) +
		       cb_viewers_version(h->app->viewers);
	for (size_t i = 0; i < q->n; i++)
		if (cb_stats_cache_get(c, q->names[i], &v) == 0 &&
		    v.version > max)
			max = v.version;
	return max + cb_viewers_version(h->app->viewers);
}

static int64_t int_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return 0;
}

/* Fills f's figures from the cache (f->name set). */
static int fill(struct cb_stats_cache *c, struct fighter *f, int64_t now,
		int64_t spark_start)
{
	struct cb_stats_view v;
	json_error_t jerr;
	json_t *arr, *cur, *pm, *emotes;
	int64_t dur_ms, active;
	size_t k, len;
	char *text;
	int err;

	if (c == NULL || cb_stats_cache_get(c, f->name, &v) != 0)
		return 0;
	dur_ms = v.window_duration_s > 0 ? v.window_duration_s * 1000
					 : v.window_end_ms - v.window_start_ms;
	if (dur_ms <= 0)
		dur_ms = MINUTE_MS;
	k = (size_t)(SPARK_MINUTES * (int64_t)MINUTE_MS / dur_ms) + 2;
	if (k > SPARK_WINDOWS_MAX)
		k = SPARK_WINDOWS_MAX;
	err = cb_stats_cache_windows_json(c, f->name, k, &text, &len);
	if (err == CB_E_NOTFOUND)
		return 0;
	if (err != 0)
		return err;
	arr = json_loadb(text, len, 0, &jerr);
	free(text);
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		json_decref(arr);
		return 0;
	}
	/* The sparkline: per-minute counts of every window read. */
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *w = json_array_get(arr, i);
		int64_t ws = int_of(w, "window_start");

		pm = json_object_get(w, "per_minute");
		for (size_t m = 0; json_is_array(pm) && m < json_array_size(pm);
		     m++) {
			int64_t t = ws + (int64_t)m * MINUTE_MS;
			int64_t slot = (t - spark_start) / MINUTE_MS;

			if (t >= spark_start && slot < SPARK_MINUTES)
				f->spark[slot] = (int64_t)json_integer_value(
					json_array_get(pm, m));
		}
	}
	cur = json_array_get(arr, 0);
	f->stats = true;
	f->start = int_of(cur, "window_start");
	f->end = int_of(cur, "window_end");
	f->updated = int_of(cur, "last_updated");
	f->current = now < f->end;
	if (f->current) {
		f->count = int_of(cur, "message_count");
		f->unique = int_of(cur, "unique_chatters");
		active = f->start;
		pm = json_object_get(cur, "per_minute");
		for (size_t m = 0; json_is_array(pm) && m < json_array_size(pm);
		     m++) {
			if (json_integer_value(json_array_get(pm, m)) > 0) {
				active = f->start + (int64_t)m * MINUTE_MS;
				break;
			}
		}
		active = (now < f->end ? now : f->end) - active;
		if (active < MINUTE_MS)
			active = MINUTE_MS;
		f->rate = round((double)f->count * MINUTE_MS / (double)active *
				10.0) /
			  10.0;
		emotes = json_object_get(cur, "top_emotes");
		if (json_is_array(emotes) && json_array_size(emotes) > 0)
			f->top_emote = json_incref(json_array_get(emotes, 0));
		if (json_is_number(json_object_get(cur, "sentiment")))
			f->mood = json_incref(json_object_get(cur, "sentiment"));
	}
	json_decref(arr);
	return 0;
}

/* Busiest first; then the bigger count; figures before none; by name. */
static int by_rank(const void *a, const void *b)
{
	const struct fighter *x = a, *y = b;

	if (x->rate != y->rate)
		return x->rate > y->rate ? -1 : 1;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	if (x->stats != y->stats)
		return x->stats ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int by_status_name(const void *key, const void *elem)
{
	return strcmp(key, ((const struct cb_irc_channel_status *)elem)->channel);
}

static json_t *ms_or_null(bool have, int64_t ms)
{
	return have && ms > 0 ? json_integer(ms) : json_null();
}

json_t *cb_http_per_1k_json(double per_minute, bool have, int64_t viewers)
{
	if (!have || viewers <= 0)
		return json_null();
	return json_real(round(per_minute * 1000.0 / (double)viewers * 100.0) /
			 100.0);
}

double cb_http_channel_rate(struct cb_http *h, const char *channel,
			    int64_t now_ms)
{
	struct fighter f;
	int64_t spark_start = (now_ms / MINUTE_MS - (SPARK_MINUTES - 1)) *
			      MINUTE_MS;

	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "%s", channel);
	if (fill(h->app->cache, &f, now_ms, spark_start) != 0)
		return 0;
	json_decref(f.top_emote);
	return f.stats ? f.rate : 0;
}

static json_t *fighter_json(const struct fighter *f, size_t rank)
{
	json_t *e = json_object(), *spark = json_array();

	for (int i = 0; i < SPARK_MINUTES; i++)
		json_array_append_new(spark, json_integer(f->spark[i]));
	json_object_set_new(e, "rank", json_integer((json_int_t)rank));
	json_object_set_new(e, "channel_id", json_string(f->name));
	json_object_set_new(e, "messages_per_minute",
			    f->stats ? json_real(f->rate) : json_null());
	json_object_set_new(e, "message_count",
			    f->stats ? json_integer(f->count) : json_null());
	json_object_set_new(e, "unique_chatters",
			    f->stats ? json_integer(f->unique) : json_null());
	json_object_set_new(e, "top_emote",
			    f->top_emote ? json_incref(f->top_emote)
					 : json_null());
	json_object_set_new(e, "sentiment",
			    f->mood ? json_incref(f->mood) : json_null());
	json_object_set_new(e, "viewers",
			    f->have_viewers ? json_integer(f->viewers.viewers)
					    : json_null());
	json_object_set_new(e, "live", f->have_viewers
					       ? json_boolean(f->viewers.live)
					       : json_null());
	json_object_set_new(e, "msgs_per_1k_viewers",
			    cb_http_per_1k_json(f->rate,
						f->have_viewers && f->stats,
						f->viewers.viewers));
	json_object_set_new(e, "sparkline", spark);
	json_object_set_new(e, "has_stats", json_boolean(f->stats));
	json_object_set_new(e, "in_window", json_boolean(f->current));
	json_object_set_new(e, "window_start", ms_or_null(f->stats, f->start));
	json_object_set_new(e, "window_end", ms_or_null(f->stats, f->end));
	json_object_set_new(e, "last_updated",
			    ms_or_null(f->stats, f->updated));
	json_object_set_new(e, "monitored", json_boolean(f->st != NULL));
	json_object_set_new(e, "state",
			    f->st ? json_string(cb_http_irc_state_name(
					    f->st->state))
				  : json_null());
	return e;
}

int cb_http_battle_json(struct cb_http *h,
			const struct cb_http_battle_query *q, int64_t now_ms,
			char **json, size_t *len)
{
	struct cb_app *app = h->app;
	struct cb_irc_channel_status *st;
	char(*names)[26] = NULL;
	struct fighter *f = NULL;
	size_t nst, nn = 0, n = 0, cap;
	int64_t spark_start = (now_ms / MINUTE_MS - (SPARK_MINUTES - 1)) *
			      MINUTE_MS;
	json_t *doc = NULL, *list;
	int err = 0;

	*json = NULL;
	*len = 0;
	st = cb_http_irc_channels(app, &nst);
	if (q->all)
		names = cb_http_cache_channels(app->cache, &nn);
	cap = q->all ? nst + nn : q->n;
	f = calloc(cap ? cap : 1, sizeof(*f));
	if (f == NULL)
		goto nomem;
	if (q->all) {
		/* The union of two sorted lists. */
		size_t i = 0, j = 0;

		while (i < nst || j < nn) {
			int cmp = i >= nst  ? 1
				  : j >= nn ? -1
					    : strcmp(st[i].channel, names[j]);

			memcpy(f[n++].name, cmp <= 0 ? st[i].channel : names[j],
			       26);
			i += cmp <= 0;
			j += cmp >= 0;
		}
	} else {
		for (size_t i = 0; i < q->n; i++)
			memcpy(f[n++].name, q->names[i], 26);
	}
	for (size_t i = 0; i < n; i++) {
		f[i].st = st ? bsearch(f[i].name, st, nst, sizeof(*st),
				       by_status_name)
			     : NULL;
		if ((err = fill(app->cache, &f[i], now_ms, spark_start)) != 0)
			goto out;
		f[i].have_viewers = cb_viewers_get(app->viewers, f[i].name,
						   &f[i].viewers) == 0;
	}
	qsort(f, n, sizeof(*f), by_rank);
	doc = json_object();
	list = json_array();
	for (size_t i = 0; i < n && i < CB_HTTP_BATTLE_MAX; i++)
		json_array_append_new(list, fighter_json(&f[i], i + 1));
	json_object_set_new(doc, "now", json_integer(now_ms));
	json_object_set_new(doc, "sparkline_start", json_integer(spark_start));
	json_object_set_new(doc, "sparkline_minutes",
			    json_integer(SPARK_MINUTES));
	json_object_set_new(doc, "count", json_integer((json_int_t)n));
	json_object_set_new(doc, "truncated",
			    json_boolean(n > CB_HTTP_BATTLE_MAX));
	json_object_set_new(doc, "channels", list);
	*json = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (*json == NULL)
		goto nomem;
	*len = strlen(*json);
	goto out;
nomem:
	err = CB_E_NOMEM;
out:
	for (size_t i = 0; f != NULL && i < n; i++) {
		json_decref(f[i].top_emote);
		json_decref(f[i].mood);
	}
	json_decref(doc);
	free(f);
	free(names);
	free(st);
	return err;
}

enum MHD_Result cb_http_api_battle(struct cb_http_ctx *x)
{
	struct cb_http_battle_query *q = malloc(sizeof(*q));
	enum MHD_Result ret;
	char *json;
	size_t len;
	int err;

	if (q == NULL)
		return cb_http_error(x, 500, NULL, "out of memory");
	if (x->h->app->cache == NULL) {
		static const char *const retry[] = {"Retry-After", "5", NULL};

		free(q);
		return cb_http_error(x, 503, retry,
				     "the stats cache is not available in this "
				     "instance");
	}
	if (cb_http_battle_parse(x, q, &ret) != 0) {
		free(q);
		return ret;
	}
	err = cb_http_battle_json(x->h, q, cb_wall_ms(), &json, &len);
	free(q);
	if (err != 0)
		return cb_http_error(x, 500, NULL, "%s", cb_strerror(err));
	return cb_http_send_owned(x, 200, JSON_TYPE, json, len, NULL);
}
