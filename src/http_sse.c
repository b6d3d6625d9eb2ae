/*
 * http_sse.c - GET /api/channels/:id/events: Server-Sent Events.
 *
 * Each stream is a libmicrohttpd response from a callback (chunked, no
 * size).  When the callback has nothing to send it suspends its connection
 * (MHD_suspend_connection) and returns 0, so a quiet stream holds no HTTP
 * thread: the epoll workers keep serving other requests.  One notifier
 * thread, owned here, blocks in cb_stats_cache_wait() (in slices of
 * NOTIFY_SLICE_MS, so that stop is prompt) and resumes the suspended
 * streams whose channel changed or whose heartbeat is due (at most every
 * COALESCE_MS under a stream of changes); each resumed callback then sends
 * its channel's latest ChannelStats, a heartbeat comment, or suspends
 * again.
 *
 * Locking: sse->lock guards the client list and each client's `suspended`
 * flag.  A callback marks itself suspended and calls MHD_suspend_connection
 * under the lock; the notifier clears the flag under the lock and calls
 * MHD_resume_connection after releasing it, so our lock is never taken
 * inside libmicrohttpd's.  A connection flagged suspended is suspended in
 * libmicrohttpd, which cannot end it before it is resumed, so the client
 * memory stays valid until its response's free callback runs.
 *
 * GET /api/battle/events streams the battle document (http_battle.c)
 * instead of one channel's figures: at once, then whenever one of its
 * channels changed but at most every BATTLE_MIN_MS (a document covers up
 * to CB_HTTP_BATTLE_MAX channels, and rates move with every record), and
 * again after sse_heartbeat_s without a change (messages per minute move
 * with the clock too).  The notifier looks at throttled battle streams at
 * each of its NOTIFY_SLICE_MS slices.
 *
 * No wake-up is missed: the callback samples the cache version before it
 * looks at its channel, and re-checks it under the lock before suspending;
 * a change after that point wakes the notifier (whose starting version is
 * sampled before its thread exists), which finds the client suspended.  The
 * cache moves its version just before it publishes the channel's view, so
 * the notifier looks once more COALESCE_MS after each change.  Streams are
 * bounded by sse_max_clients.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatbattle/app.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/http.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/stats_cache.h"
#include "chatbattle/viewers.h"
#include "http_int.h"

#define NOTIFY_SLICE_MS 250
#define RETRY_MS 3000
#define COALESCE_MS 20
#define BATTLE_MIN_MS 1000

struct sse_client {
	struct cb_http_sse *sse;
	struct MHD_Connection *conn;
	char channel[26];
	uint64_t sent_version; /* channel version last sent; 0 = none */
	int64_t sent_viewers_ms; /* updated of the viewers event last sent */
	int64_t next_hb_ms;    /* monotonic */
	bool suspended;        /* under sse->lock */
	struct cb_http_battle_query *battle; /* a battle stream, or NULL */
	bool sent_any;         /* battle: the first document went out */
	int64_t next_battle_ms; /* battle: monotonic, earliest next document */
	char *out;             /* bytes to send (malloc'd), or NULL */
	size_t out_len, out_off;
	struct sse_client *prev, *next;
};

struct cb_http_sse {
	struct cb_http *h;
	struct cb_stats_cache *cache;
	pthread_mutex_t lock;
	pthread_cond_t gone; /* a client left */
	struct sse_client *head;
	size_t nclients;
	bool stopping;
	atomic_bool stop_notifier;
	pthread_t notifier;
	bool notifier_started;
	uint64_t notifier_seen; /* cache version when the notifier started */
};

/* Replaces cl's pending output by text (copied). */
static int set_out(struct sse_client *cl, const char *text, size_t len)
{
	char *p = malloc(len);

	if (p == NULL)
		return CB_E_NOMEM;
	memcpy(p, text, len);
	free(cl->out);
	cl->out = p;
	cl->out_len = len;
	cl->out_off = 0;
	return 0;
}

/* Frames json (taken: freed here) as one event into cl->out: an "id:" line
 * when id is not NULL, then "event: name" and one "data:" line.  Returns 0
 * or CB_E_NOMEM. */
static int queue_event(struct sse_client *cl, const uint64_t *id,
		       const char *name, char *json, size_t len)
{
	size_t mlen = len + strlen(name) + 64;
	char *msg = malloc(mlen);
	int n;

	if (msg == NULL) {
		free(json);
		return CB_E_NOMEM;
	}
	if (id != NULL)
		n = snprintf(msg, mlen, "id: %" PRIu64 "\nevent: %s\ndata: %s\n\n",
			     *id, name, json);
	else
		n = snprintf(msg, mlen, "event: %s\ndata: %s\n\n", name, json);
	free(json);
	free(cl->out);
	cl->out = msg;
	cl->out_len = (size_t)n;
	cl->out_off = 0;
	cb_metric_add(CB_M_sse_events_total, 1);
	return 0;
}

/* A battle stream's next document is due (under s->lock in wake()). */
static bool battle_due(struct sse_client *cl, int64_t now)
{
	return !cl->sent_any || now >= cl->next_hb_ms ||
	       (now >= cl->next_battle_ms &&
		cb_http_battle_version(cl->sse->h, cl->battle) !=
			cl->sent_version);
}

/* The battle document for cl into cl->out when due: 1, 0 or a cb_err. */
static int prepare_battle(struct sse_client *cl)
{
	struct cb_http_sse *s = cl->sse;
	int64_t now = cb_mono_ms();
	uint64_t v;
	char *json;
	size_t len;

	if (!battle_due(cl, now))
		return 0;
	/* The version first: a change while the document is built is then
	 * sent again, never lost. */
	v = cb_http_battle_version(s->h, cl->battle);
	if (cb_http_battle_json(s->h, cl->battle, cb_wall_ms(), &json, &len) !=
	    0)
		return CB_E_NOMEM;
	if (queue_event(cl, &v, "battle", json, len) != 0)
		return CB_E_NOMEM;
	cl->sent_version = v;
	cl->sent_any = true;
	cl->next_battle_ms = now + BATTLE_MIN_MS;
	cl->next_hb_ms = now + s->h->cfg->sse_heartbeat_s * 1000;
	return 1;
}

/* A channel stream's viewer count changed since it was last sent (the
 * "viewers" event goes out with the next stats change or heartbeat). */
static bool viewers_due(const struct sse_client *cl, int64_t *updated)
{
	struct cb_viewers_view vv;

	if (cb_viewers_get(cl->sse->h->app->viewers, cl->channel, &vv) != 0 ||
	    vv.updated_ms == cl->sent_viewers_ms)
		return false;
	*updated = vv.updated_ms;
	return true;
}

/* Builds the next message for cl into cl->out: its channel's stats when
 * they changed, else a heartbeat when due.  Returns 1 when there is one,
 * 0 when there is nothing to send, or a negative cb_err. */
static int prepare(struct sse_client *cl)
{
	struct cb_http_sse *s = cl->sse;
	struct cb_stats_view v;
	int64_t now = cb_mono_ms(), updated;
	char *json;
	size_t len;

	if (cl->battle != NULL)
		return prepare_battle(cl);
	if (cb_stats_cache_get(s->cache, cl->channel, &v) == 0 &&
	    v.version != cl->sent_version &&
	    cb_stats_cache_current_json(s->cache, cl->channel, &json, &len) ==
		    0) {
		/* One data: line: the document must hold no newline (the
		 * cache stores compact JSON; this keeps that a guarantee). */
		for (size_t i = 0; i < len; i++)
			if (json[i] == '\n' || json[i] == '\r')
				json[i] = ' ';
		if (queue_event(cl, &v.version, "stats", json, len) != 0)
			return CB_E_NOMEM;
		cl->sent_version = v.version;
		cl->next_hb_ms = now + s->h->cfg->sse_heartbeat_s * 1000;
		return 1;
	}
	if (viewers_due(cl, &updated)) {
		json = cb_http_viewers_json(s->h, cl->channel, cb_wall_ms(), 0,
					    &len);
		if (json == NULL)
			return CB_E_NOMEM;
		/* No id: the stream's id stays the stats version, which a
		 * reconnecting client resumes from. */
		if (queue_event(cl, NULL, "viewers", json, len) != 0)
			return CB_E_NOMEM;
		cl->sent_viewers_ms = updated;
		return 1;
	}
	if (now >= cl->next_hb_ms) {
		static const char hb[] = ": heartbeat\n\n";

		cl->next_hb_ms = now + s->h->cfg->sse_heartbeat_s * 1000;
		return set_out(cl, hb, sizeof(hb) - 1) == 0 ? 1 : CB_E_NOMEM;
	}
	return 0;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse_client *cl = cls;
	struct cb_http_sse *s = cl->sse;

	for (;;) {
		uint64_t global;
		int r;

		if (cl->out_off < cl->out_len) {
			size_t n = cl->out_len - cl->out_off;

			if (n > max)
				n = max;
			memcpy(buf, cl->out + cl->out_off, n);
			cl->out_off += n;
			return (ssize_t)n;
		}
		global = cb_stats_cache_version(s->cache);
		r = prepare(cl);
		if (r < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		pthread_mutex_lock(&s->lock);
		if (s->stopping) {
			pthread_mutex_unlock(&s->lock);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		/* A throttled battle stream does not spin on changes: the
		 * notifier resumes it when its next document is due. */
		if (r > 0 || (cl->battle == NULL &&
			      cb_stats_cache_version(s->cache) != global)) {
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		cl->suspended = true;
		MHD_suspend_connection(cl->conn);
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
}

/* The response is gone (stream ended or client left): forget the client. */
static void client_free(void *cls)
{
	struct sse_client *cl = cls;
	struct cb_http_sse *s = cl->sse;

	pthread_mutex_lock(&s->lock);
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		s->head = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	s->nclients--;
	cb_metric_set(CB_M_sse_clients, s->nclients);
	pthread_cond_broadcast(&s->gone);
	pthread_mutex_unlock(&s->lock);
	cb_debug("http", "SSE stream for %s closed", cl->channel);
	free(cl->out);
	free(cl->battle);
	free(cl);
}

/*
 * Resumes the suspended clients that have something to do: a heartbeat
 * due, or (changed) a new version of their channel; all of them when
 * stopping.  A client's sent_version and next_hb_ms are written by its
 * callback before it takes the lock to suspend, so reading them here under
 * the lock is ordered after those writes.  Resumption happens outside the
 * lock (see the header comment).
 */
static void wake(struct cb_http_sse *s, bool changed, bool all, int64_t now)
{
	struct MHD_Connection *batch[64];
	size_t n;

	do {
		n = 0;
		pthread_mutex_lock(&s->lock);
		for (struct sse_client *cl = s->head;
		     cl != NULL && n < sizeof(batch) / sizeof(batch[0]);
		     cl = cl->next) {
			struct cb_stats_view v;

			if (!cl->suspended)
				continue;
			if (!all && cl->battle != NULL) {
				if (!battle_due(cl, now))
					continue;
			} else if (!all && now < cl->next_hb_ms &&
			    !(changed &&
			      cb_stats_cache_get(s->cache, cl->channel, &v) ==
				      0 &&
			      v.version != cl->sent_version))
				continue;
			cl->suspended = false;
			batch[n++] = cl->conn;
		}
		pthread_mutex_unlock(&s->lock);
		for (size_t i = 0; i < n; i++)
			MHD_resume_connection(batch[i]);
	} while (n == sizeof(batch) / sizeof(batch[0]));
}

static void *notifier_main(void *arg)
{
	struct cb_http_sse *s = arg;
	uint64_t seen = s->notifier_seen;
	bool recheck = false;

	while (!atomic_load(&s->stop_notifier)) {
		uint64_t v = cb_stats_cache_wait(s->cache, seen,
						 recheck ? 0 : NOTIFY_SLICE_MS);

		/* The cache moves its version just before it publishes the
		 * channel's new view, so a change seen here (by a timed-out
		 * wait) may not be visible in the view yet: after every
		 * change, look once more COALESCE_MS later. */
		wake(s, v != seen || recheck, false, cb_mono_ms());
		recheck = v != seen;
		if (recheck) {
			/* Under a stream of changes, wake at most every
			 * COALESCE_MS: each stream then sends its latest
			 * figures once instead of every intermediate one. */
			struct timespec ts = {0, COALESCE_MS * 1000000L};

			nanosleep(&ts, NULL);
		}
		seen = v;
	}
	return NULL;
}

int cb_http_sse_new(struct cb_http *h, char *errstr, size_t errstr_size)
{
	struct cb_http_sse *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "http: out of memory");
	s->h = h;
	s->cache = h->app->cache;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->gone, NULL);
	h->sse = s;
	return 0;
}

/* Under s->lock: the notifier starts with the first stream, so that an
 * instance nobody streams from runs no extra thread. */
static int start_notifier(struct cb_http_sse *s)
{
	if (s->notifier_started)
		return 0;
	/* Sampled now, not when the thread gets to run: a change between
	 * the two would otherwise go unnoticed (regression test: SSE update
	 * delivered only at the next heartbeat). */
	s->notifier_seen = cb_stats_cache_version(s->cache);
	if (pthread_create(&s->notifier, NULL, notifier_main, s) != 0) {
		cb_error("http", "cannot start the SSE notifier thread");
		return CB_E_AGAIN;
	}
	s->notifier_started = true;
	return 0;
}

void cb_http_sse_shutdown(struct cb_http *h, int timeout_ms)
{
	struct cb_http_sse *s = h->sse;
	struct timespec deadline;

	if (s == NULL)
		return;
	/* After this no stream starts, and neither does the notifier. */
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_mutex_unlock(&s->lock);
	atomic_store(&s->stop_notifier, true);
	if (s->notifier_started) {
		pthread_join(s->notifier, NULL);
		s->notifier_started = false;
	}
	/* Every stream now ends at its next callback. */
	wake(s, false, true, 0);
	{
		int64_t end_ms = cb_wall_ms() + timeout_ms; /* realtime */

		deadline.tv_sec = (time_t)(end_ms / 1000);
		deadline.tv_nsec = (long)(end_ms % 1000) * 1000000L;
	}
	pthread_mutex_lock(&s->lock);
	while (s->nclients > 0 &&
	       pthread_cond_timedwait(&s->gone, &s->lock, &deadline) == 0)
		;
	if (s->nclients > 0)
		cb_warn("http", "%zu SSE stream(s) still open at stop",
			s->nclients);
	pthread_mutex_unlock(&s->lock);
}

void cb_http_sse_free(struct cb_http *h)
{
	struct cb_http_sse *s = h ? h->sse : NULL;

	if (s == NULL)
		return;
	if (s->notifier_started) {
		atomic_store(&s->stop_notifier, true);
		pthread_join(s->notifier, NULL);
	}
	pthread_cond_destroy(&s->gone);
	pthread_mutex_destroy(&s->lock);
	free(s);
	h->sse = NULL;
}

/* Gives cl its stream, first heartbeat deadline and hello (hello_len bytes
 * of hello), registers it and answers with its stream; frees cl (and its
 * battle request) when it cannot. */
static enum MHD_Result open_stream(struct cb_http_ctx *x,
				   struct sse_client *cl, const char *hello,
				   int hello_len)
{
	static const char *const busy[] = {"Retry-After", "10", NULL};
	static const char *const hdrs[] = {
		"Cache-Control", "no-cache",
		"X-Accel-Buffering", "no",
		NULL};
	struct cb_http_sse *s = x->h->sse;
	struct MHD_Response *r;

	cl->sse = s;
	cl->conn = x->conn;
	cl->next_hb_ms = cb_mono_ms() + x->h->cfg->sse_heartbeat_s * 1000;
	if (set_out(cl, hello, (size_t)hello_len) != 0) {
		free(cl->battle);
		free(cl);
		return cb_http_error(x, 500, NULL, "out of memory");
	}
	pthread_mutex_lock(&s->lock);
	if (s->stopping || s->nclients >= (size_t)x->h->cfg->sse_max_clients ||
	    start_notifier(s) != 0) {
		bool stopping = s->stopping;

		pthread_mutex_unlock(&s->lock);
		free(cl->out);
		free(cl->battle);
		free(cl);
		cb_metric_add(CB_M_sse_rejected_total, 1);
		return cb_http_error(x, 503, busy,
				     stopping ? "shutting down"
					      : "too many event streams open "
						"(sse_max_clients)");
	}
	cl->next = s->head;
	if (s->head)
		s->head->prev = cl;
	s->head = cl;
	s->nclients++;
	cb_metric_set(CB_M_sse_clients, s->nclients);
	pthread_mutex_unlock(&s->lock);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader,
					      cl, client_free);
	if (r == NULL) {
		client_free(cl);
		return cb_http_error(x, 500, NULL, "out of memory");
	}
	cb_debug("http", "SSE stream for %s opened", cl->channel);
	return cb_http_queue(x, 200, "text/event-stream", r, 0, hdrs);
}

enum MHD_Result cb_http_sse_events(struct cb_http_ctx *x)
{
	struct cb_http_sse *s = x->h->sse;
	struct sse_client *cl;
	const char *last;
	char hello[96];
	int n;

	if (s == NULL)
		return cb_http_error(x, 503, NULL,
				     "the stats cache is not available in "
				     "this instance");
	cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return cb_http_error(x, 500, NULL, "out of memory");
	memcpy(cl->channel, x->channel, sizeof(cl->channel));
	last = MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND,
					   "Last-Event-ID");
	if (last != NULL)
		cl->sent_version = strtoull(last, NULL, 10);
	n = snprintf(hello, sizeof(hello), "retry: %d\n: stream of %s\n\n",
		     RETRY_MS, cl->channel);
	return open_stream(x, cl, hello, n);
}

enum MHD_Result cb_http_sse_battle(struct cb_http_ctx *x)
{
	struct cb_http_sse *s = x->h->sse;
	struct sse_client *cl;
	enum MHD_Result ret;
	char hello[64];
	int n;

	if (s == NULL)
		return cb_http_error(x, 503, NULL,
				     "the stats cache is not available in "
				     "this instance");
	cl = calloc(1, sizeof(*cl));
	if (cl == NULL || (cl->battle = malloc(sizeof(*cl->battle))) == NULL) {
		free(cl);
		return cb_http_error(x, 500, NULL, "out of memory");
	}
	if (cb_http_battle_parse(x, cl->battle, &ret) != 0) {
		free(cl->battle);
		free(cl);
		return ret;
	}
	/* For the logs: a battle stream has no one channel. */
	memcpy(cl->channel, "(battle)", sizeof("(battle)"));
	n = snprintf(hello, sizeof(hello), "retry: %d\n: battle stream\n\n",
		     RETRY_MS);
	return open_stream(x, cl, hello, n);
}
