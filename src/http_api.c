/*
 * http_api.c - the JSON endpoints of the HTTP API (docs/api.md): stats,
 * health, channels, windows, top lists, start/stop, /metrics, OpenAPI.
 *
 * Runs in libmicrohttpd's threads.  GET /api/channels/:id/stats is the hot
 * path: one seqlock read of the stats cache and one snprintf into a stack
 * buffer, no JSON library and no malloc besides libmicrohttpd's own.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chatbattle/app.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/http.h"
#include "chatbattle/isotime.h"
#include "chatbattle/irc.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/record.h"
#include "chatbattle/stats_cache.h"
#include "chatbattle/viewers.h"
#include "http_int.h"

#define JSON_TYPE "application/json"
#define MAX_LIST 100000

/* Sends a jansson document (consumed). */
static enum MHD_Result send_json(struct cb_http_ctx *x, unsigned status,
				 json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER)
			 : NULL;

	json_decref(doc);
	if (text == NULL)
		return cb_http_error(x, 500, NULL, "out of memory");
	return cb_http_send_owned(x, status, JSON_TYPE, text, strlen(text),
				  NULL);
}

static json_t *iso(int64_t ms)
{
	char buf[CB_ISOTIME_MAX];

	return json_string(cb_isotime_format(ms, buf));
}

static enum MHD_Result no_cache(struct cb_http_ctx *x)
{
	static const char *const retry[] = {"Retry-After", "5", NULL};

	return cb_http_error(x, 503, retry,
			     "the stats cache is not available in this "
			     "instance");
}

/* ---- health ---- */

/* Which role needs a dependency, and how the original API named states. */
static const struct {
	enum cb_dep dep;
	const char *role; /* NULL: every role */
	const char *up, *down, *unknown;
} deps[] = {
	{CB_DEP_KAFKA, NULL, "connected", "disconnected", "connecting"},
	{CB_DEP_CACHE, "serve", "ready", "unavailable", "loading"},
	{CB_DEP_CASSANDRA, "aggregate", "connected", "disconnected",
	 "connecting"},
	{CB_DEP_IRC, "ingest", "connected", "disconnected", "connecting"},
};

enum MHD_Result cb_http_api_health(struct cb_http_ctx *x)
{
	const struct cb_config *cfg = x->h->cfg;
	json_t *doc = json_object(), *services = json_object(),
	       *detail = json_object(), *roles = json_array();
	bool healthy = true;

	for (size_t i = 0; i < sizeof(deps) / sizeof(deps[0]); i++) {
		enum cb_dep_state st = cb_health_get(deps[i].dep);
		bool in_role = deps[i].role == NULL ||
			       cb_strlist_has(&cfg->roles, deps[i].role);
		const char *text, *state;
		bool ok;

		switch (st) {
		case CB_DEP_UP:
			text = deps[i].up;
			state = "up";
			break;
		case CB_DEP_DOWN:
			text = deps[i].down;
			state = "down";
			break;
		case CB_DEP_DISABLED:
			text = state = "disabled";
			break;
		default:
			text = deps[i].unknown;
			state = "unknown";
			break;
		}
		if (!in_role)
			text = "not_in_roles";
		/* Unhealthy: a dependency this instance needs that is down
		 * or not connected yet. */
		ok = !in_role || st == CB_DEP_UP || st == CB_DEP_DISABLED;
		healthy &= ok;
		json_object_set_new(services, cb_dep_name(deps[i].dep),
				    json_string(text));
		json_object_set_new(
			detail, cb_dep_name(deps[i].dep),
			json_pack("{s:s, s:b, s:b}", "state", state, "required",
				  in_role && st != CB_DEP_DISABLED, "healthy",
				  ok));
	}
	for (size_t i = 0; i < cfg->roles.n; i++)
		json_array_append_new(roles, json_string(cfg->roles.v[i]));
	json_object_set_new(doc, "status",
			    json_string(healthy ? "healthy" : "unhealthy"));
	json_object_set_new(doc, "timestamp", iso(cb_wall_ms()));
	json_object_set_new(doc, "services", services);
	json_object_set_new(doc, "dependencies", detail);
	json_object_set_new(doc, "roles", roles);
	json_object_set_new(doc, "version", json_string(CB_VERSION));
	json_object_set_new(
		doc, "uptime_seconds",
		json_integer((cb_wall_ms() - x->h->started_ms) / 1000));
	json_object_set_new(doc, "sse_clients",
			    json_integer((json_int_t)cb_metric_get(
				    CB_M_sse_clients)));
	return send_json(x, healthy ? 200 : 503, doc);
}

/* ---- GET /api/channels/:id/stats (the hot path) ---- */

/*
 * Each HTTP thread keeps the last stats response it built, with its headers,
 * and queues it again while the channel's version has not moved:
 * libmicrohttpd counts references to a response, so one can go out on many
 * connections.  Saves the body's formatting and copy and the header
 * allocations for the common case of many clients polling a few channels.
 * The thread's last response is released when the thread ends.
 */
struct stats_memo {
	char channel[26];
	uint64_t version;
	struct MHD_Response *r;
};

static pthread_key_t memo_key;
static pthread_once_t memo_once = PTHREAD_ONCE_INIT;

static void memo_free(void *p)
{
	struct stats_memo *m = p;

	if (m->r != NULL)
		MHD_destroy_response(m->r);
	free(m);
}

static void memo_init(void)
{
	if (pthread_key_create(&memo_key, memo_free) != 0)
		cb_warn("http", "no per-thread response memo");
}

static struct stats_memo *memo_get(void)
{
	struct stats_memo *m;

	pthread_once(&memo_once, memo_init);
	m = pthread_getspecific(memo_key);
	if (m == NULL && (m = calloc(1, sizeof(*m))) != NULL &&
	    pthread_setspecific(memo_key, m) != 0) {
		free(m);
		m = NULL;
	}
	return m;
}

enum MHD_Result cb_http_api_stats(struct cb_http_ctx *x)
{
	struct cb_stats_cache *c = x->h->app->cache;
	struct cb_stats_view v;
	struct stats_memo *m;
	struct MHD_Response *r;
	char start[CB_ISOTIME_MAX], end[CB_ISOTIME_MAX],
		upd[CB_ISOTIME_MAX], body[320];
	enum MHD_Result ret;
	int n;

	if (c == NULL)
		return no_cache(x);
	if (cb_stats_cache_get(c, x->channel, &v) != 0)
		return cb_http_error(x, 404, NULL,
				     "no stats for channel %s yet", x->channel);
	m = memo_get();
	if (m != NULL && m->r != NULL && m->version == v.version &&
	    strcmp(m->channel, x->channel) == 0) {
		ret = MHD_queue_response(x->conn, 200, m->r);
		cb_http_account(x, 200, 0);
		return ret;
	}
	/* Records from producers that do not set last_updated (the original
	 * Scala service) get the time they are served, as the original API
	 * did; such responses are not kept. */
	n = snprintf(body, sizeof(body),
		     "{\"channel_id\":\"%s\",\"message_count\":%lld,"
		     "\"current_window\":{\"start\":\"%s\",\"end\":\"%s\","
		     "\"duration_seconds\":%lld},\"last_updated\":\"%s\"}",
		     v.channel, (long long)v.message_count,
		     cb_isotime_format(v.window_start_ms, start),
		     cb_isotime_format(v.window_end_ms, end),
		     (long long)v.window_duration_s,
		     cb_isotime_format(v.last_updated_ms > 0 ? v.last_updated_ms
							   : cb_wall_ms(),
				     upd));
	if (m == NULL || v.last_updated_ms <= 0)
		return cb_http_send(x, 200, JSON_TYPE, body, (size_t)n, NULL);
	r = MHD_create_response_from_buffer((size_t)n, body,
					    MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return cb_http_error(x, 500, NULL, "out of memory");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, JSON_TYPE);
	cb_http_add_cors(x->h, r);
	if (m->r != NULL)
		MHD_destroy_response(m->r);
	m->r = r;
	m->version = v.version;
	memcpy(m->channel, x->channel, sizeof(m->channel));
	ret = MHD_queue_response(x->conn, 200, r);
	cb_http_account(x, 200, (size_t)n);
	return ret;
}

/* ---- GET /api/channels ---- */

const char *cb_http_irc_state_name(int st)
{
	switch (st) {
	case CB_IRC_CHAN_PENDING: return "pending";
	case CB_IRC_CHAN_JOINING: return "joining";
	case CB_IRC_CHAN_JOINED: return "joined";
	case CB_IRC_CHAN_FAILED: return "failed";
	default: return "unknown";
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int by_status_name(const void *a, const void *b)
{
	const struct cb_irc_channel_status *x = a, *y = b;

	return strcmp(x->channel, y->channel);
}

struct cb_irc_channel_status *cb_http_irc_channels(struct cb_app *app,
						  size_t *n)
{
	struct cb_irc_channel_status *st = NULL;
	size_t cap = 64, total;

	*n = 0;
	if (app->irc == NULL)
		return NULL;
	for (int tries = 0; tries < 4; tries++) {
		free(st);
		st = malloc(cap * sizeof(*st));
		if (st == NULL)
			return NULL;
		total = cb_irc_status(app->irc, st, cap);
		if (total <= cap) {
			*n = total;
			qsort(st, total, sizeof(*st), by_status_name);
			return st;
		}
		cap = total + 64 < MAX_LIST ? total + 64 : MAX_LIST;
	}
	*n = cap;
	return st;
}

char (*cb_http_cache_channels(struct cb_stats_cache *c, size_t *n))[26]
{
	char(*names)[26] = NULL;
	size_t cap = 256, total;

	*n = 0;
	if (c == NULL)
		return NULL;
	for (int tries = 0; tries < 4; tries++) {
		free(names);
		names = malloc(cap * sizeof(*names));
		if (names == NULL)
			return NULL;
		total = cb_stats_cache_channels(c, names, cap);
		if (total <= cap || cap == MAX_LIST) {
			*n = total <= cap ? total : cap;
			qsort(names, *n, sizeof(*names), by_name);
			return names;
		}
		cap = total + 256 < MAX_LIST ? total + 256 : MAX_LIST;
	}
	*n = cap;
	qsort(names, *n, sizeof(*names), by_name);
	return names;
}

static json_t *channel_entry(struct cb_stats_cache *c, const char *name,
			     const struct cb_irc_channel_status *st)
{
	struct cb_stats_view v;
	json_t *e = json_object();
	bool stats = c != NULL && cb_stats_cache_get(c, name, &v) == 0;

	json_object_set_new(e, "channel_id", json_string(name));
	json_object_set_new(e, "monitored", json_boolean(st != NULL));
	json_object_set_new(e, "state", st ? json_string(cb_http_irc_state_name(
						     st->state))
					   : json_null());
	if (st != NULL) {
		json_object_set_new(e, "connection",
				    json_integer(st->connection));
		json_object_set_new(e, "since", st->since_ms > 0
							? iso(st->since_ms)
							: json_null());
		json_object_set_new(e, "messages_received",
				    json_integer((json_int_t)st->messages));
		json_object_set_new(e, "reason",
				    st->reason[0] ? json_string(st->reason)
						  : json_null());
	}
	json_object_set_new(e, "has_stats", json_boolean(stats));
	json_object_set_new(e, "message_count",
			    stats ? json_integer(v.message_count)
				  : json_null());
	json_object_set_new(e, "last_updated",
			    stats && v.last_updated_ms > 0
				    ? iso(v.last_updated_ms)
				    : json_null());
	return e;
}

enum MHD_Result cb_http_api_channels(struct cb_http_ctx *x)
{
	struct cb_app *app = x->h->app;
	struct cb_irc_channel_status *st;
	char(*names)[26];
	size_t nst, nn, i = 0, j = 0;
	json_t *doc = json_object(), *list = json_array();

	st = cb_http_irc_channels(app, &nst);
	names = cb_http_cache_channels(app->cache, &nn);
	/* Merge the two sorted lists. */
	while (i < nst || j < nn) {
		int cmp = i >= nst   ? 1
			  : j >= nn ? -1
				    : strcmp(st[i].channel, names[j]);

		if (cmp < 0) {
			json_array_append_new(
				list, channel_entry(app->cache, st[i].channel,
						    &st[i]));
			i++;
		} else if (cmp > 0) {
			json_array_append_new(
				list, channel_entry(app->cache, names[j], NULL));
			j++;
		} else {
			json_array_append_new(
				list, channel_entry(app->cache, st[i].channel,
						    &st[i]));
			i++;
			j++;
		}
	}
	free(st);
	free(names);
	json_object_set_new(doc, "channels", list);
	json_object_set_new(doc, "count", json_integer((json_int_t)json_array_size(list)));
	json_object_set_new(doc, "monitoring_available",
			    json_boolean(app->irc != NULL));
	return send_json(x, 200, doc);
}

/* ---- GET /api/channels/:id/windows ---- */

enum MHD_Result cb_http_api_windows(struct cb_http_ctx *x)
{
	struct cb_stats_cache *c = x->h->app->cache;
	enum MHD_Result ret;
	int64_t limit;
	char *arr, *body;
	size_t len, blen;
	int err;

	if (cb_http_query_int(x, "limit", 12, 1, 10000, &limit, &ret) != 0)
		return ret;
	if (c == NULL)
		return no_cache(x);
	err = cb_stats_cache_windows_json(c, x->channel, (size_t)limit, &arr,
					  &len);
	if (err == CB_E_NOTFOUND)
		return cb_http_error(x, 404, NULL,
				     "no stats for channel %s yet", x->channel);
	if (err != 0)
		return cb_http_error(x, 500, NULL, "%s", cb_strerror(err));
	blen = len + 64;
	body = malloc(blen);
	if (body == NULL) {
		free(arr);
		return cb_http_error(x, 500, NULL, "out of memory");
	}
	blen = (size_t)snprintf(body, blen,
				"{\"channel_id\":\"%s\",\"windows\":%s}",
				x->channel, arr);
	free(arr);
	return cb_http_send_owned(x, 200, JSON_TYPE, body, blen, NULL);
}

/* ---- GET /api/channels/:id/viewers ---- */

char *cb_http_viewers_json(struct cb_http *h, const char *channel,
			   int64_t now_ms, size_t series_max, size_t *len)
{
	struct cb_viewers *vw = h->app->viewers;
	struct cb_viewers_view view;
	struct cb_viewers_sample *s = NULL;
	bool have = cb_viewers_get(vw, channel, &view) == 0;
	double rate = cb_http_channel_rate(h, channel, now_ms);
	json_t *doc = json_object(), *arr;
	size_t n = 0;
	char *text;

	json_object_set_new(doc, "channel_id", json_string(channel));
	json_object_set_new(doc, "enabled", json_boolean(vw != NULL));
	if (vw == NULL)
		json_object_set_new(doc, "reason",
				    json_string("no twitch_client_id and "
						"twitch_client_secret"));
	json_object_set_new(doc, "interval_s",
			    json_integer(h->cfg->viewers_interval_s));
	json_object_set_new(doc, "viewers",
			    have ? json_integer(view.viewers) : json_null());
	json_object_set_new(doc, "live",
			    have ? json_boolean(view.live) : json_null());
	json_object_set_new(doc, "updated",
			    have ? json_integer(view.updated_ms) : json_null());
	json_object_set_new(doc, "messages_per_minute", json_real(rate));
	json_object_set_new(doc, "msgs_per_1k_viewers",
			    cb_http_per_1k_json(rate, have, view.viewers));
	if (series_max > 0) {
		arr = json_array();
		s = malloc(series_max * sizeof(*s));
		if (s != NULL)
			n = cb_viewers_series(vw, channel, s, series_max);
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_object();

			json_object_set_new(e, "t", json_integer(s[i].t_ms));
			json_object_set_new(e, "viewers",
					    s[i].viewers >= 0
						    ? json_integer(s[i].viewers)
						    : json_null());
			json_array_append_new(arr, e);
		}
		free(s);
		json_object_set_new(doc, "series", arr);
	}
	text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	*len = text ? strlen(text) : 0;
	return text;
}

enum MHD_Result cb_http_api_viewers(struct cb_http_ctx *x)
{
	enum MHD_Result ret;
	int64_t limit;
	size_t len;
	char *body;

	if (cb_http_query_int(x, "limit", 60, 1, CB_VIEWERS_KEPT, &limit,
			      &ret) != 0)
		return ret;
	body = cb_http_viewers_json(x->h, x->channel, cb_wall_ms(),
				    (size_t)limit, &len);
	if (body == NULL)
		return cb_http_error(x, 500, NULL, "out of memory");
	return cb_http_send_owned(x, 200, JSON_TYPE, body, len, NULL);
}

/* ---- GET /api/channels/:id/top ---- */

static json_t *first_n(json_t *arr, size_t n)
{
	json_t *out = json_array();

	for (size_t i = 0; json_is_array(arr) && i < json_array_size(arr) &&
			   i < n;
	     i++)
		json_array_append(out, json_array_get(arr, i));
	return out;
}

enum MHD_Result cb_http_api_top(struct cb_http_ctx *x)
{
	struct cb_stats_cache *c = x->h->app->cache;
	enum MHD_Result ret;
	json_error_t jerr;
	json_t *cur, *doc;
	int64_t limit;
	char *text;
	size_t len;
	int err;

	if (cb_http_query_int(x, "limit", 10, 1, 100, &limit, &ret) != 0)
		return ret;
	if (c == NULL)
		return no_cache(x);
	err = cb_stats_cache_current_json(c, x->channel, &text, &len);
	if (err == CB_E_NOTFOUND)
		return cb_http_error(x, 404, NULL,
				     "no stats for channel %s yet", x->channel);
	if (err != 0)
		return cb_http_error(x, 500, NULL, "%s", cb_strerror(err));
	cur = json_loadb(text, len, 0, &jerr);
	free(text);
	if (cur == NULL)
		return cb_http_error(x, 500, NULL,
				     "stored stats are not JSON: %s", jerr.text);
	doc = json_object();
	json_object_set_new(doc, "channel_id", json_string(x->channel));
	json_object_set_new(
		doc, "window_start",
		iso(json_integer_value(json_object_get(cur, "window_start"))));
	json_object_set_new(
		doc, "window_end",
		iso(json_integer_value(json_object_get(cur, "window_end"))));
	json_object_set(doc, "message_count",
			json_object_get(cur, "message_count"));
	json_object_set_new(
		doc, "unique_chatters",
		json_integer(json_integer_value(
			json_object_get(cur, "unique_chatters"))));
	json_object_set_new(doc, "top_emotes",
			    first_n(json_object_get(cur, "top_emotes"),
				    (size_t)limit));
	json_object_set_new(doc, "top_chatters",
			    first_n(json_object_get(cur, "top_chatters"),
				    (size_t)limit));
	json_decref(cur);
	return send_json(x, 200, doc);
}

/* ---- POST / DELETE /api/channels/:id ---- */

static enum MHD_Result command(struct cb_http_ctx *x, enum cb_irc_op op)
{
	static const char *const retry[] = {"Retry-After", "1", NULL};
	struct cb_app *app = x->h->app;
	struct cb_irc_cmd cmd;
	const char *action = op == CB_IRC_JOIN ? "join" : "part";
	json_t *doc;

	if (app->irc_cmd == NULL ||
	    !cb_strlist_has(&x->h->cfg->roles, "ingest"))
		return cb_http_error(x, 503, NULL,
				     "this instance does not read chat (its "
				     "roles lack \"ingest\"): start and stop "
				     "channels on an ingest instance");
	memset(&cmd, 0, sizeof(cmd));
	cmd.op = (uint8_t)op;
	memcpy(cmd.channel, x->channel, sizeof(cmd.channel));
	if (cb_app_irc_command(app, &cmd, 1) != 0)
		return cb_http_error(x, 503, retry,
				     "the IRC command queue is full; try again");
	cb_info("http", "%s %s requested", action, x->channel);
	doc = json_pack("{s:s, s:s, s:s}", "channel_id", x->channel, "action",
			action, "status", "accepted");
	return send_json(x, 202, doc);
}

enum MHD_Result cb_http_api_start(struct cb_http_ctx *x)
{
	return command(x, CB_IRC_JOIN);
}

enum MHD_Result cb_http_api_stop(struct cb_http_ctx *x)
{
	return command(x, CB_IRC_PART);
}

/* ---- /metrics and the OpenAPI document ---- */

enum MHD_Result cb_http_api_metrics(struct cb_http_ctx *x)
{
	char *text;
	size_t len;

	if (cb_metrics_render(&text, &len) != 0)
		return cb_http_error(x, 500, NULL, "out of memory");
	return cb_http_send_owned(x, 200,
				  "text/plain; version=0.0.4; charset=utf-8",
				  text, len, NULL);
}

enum MHD_Result cb_http_api_openapi(struct cb_http_ctx *x)
{
	size_t len;
	const char *doc = cb_http_asset_data("/openapi.json", &len);

	if (doc == NULL)
		return cb_http_error(x, 500, NULL,
				     "openapi.json is not embedded");
	return cb_http_send_static(x, 200, JSON_TYPE, doc, len, NULL);
}
