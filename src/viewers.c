/*
 * viewers.c - the viewer-count poller and its store (see viewers.h).
 *
 * Thread: one libevent loop (evloop.h) owned by the viewers thread.  One
 * request is in flight at a time, so the rate-limit headers of each answer
 * decide when the next request goes: a poll ("cycle") gathers the channels,
 * asks for them CB_HELIX_LOGINS_MAX at a time, and the next cycle starts
 * viewers_interval_s after this one started.  A 429 keeps the batch and
 * retries it at Ratelimit-Reset (cb_helix_wait_ms never answers less than a
 * second, so there is no tight loop); the first 429 of a run of them is
 * logged, the end of the run once more.  A 401 drops the token and fetches
 * a new one once; a second 401 in a row waits for the next cycle.  Every
 * other failure is logged when it starts (not per retry) and waits for the
 * next cycle.
 *
 * Requests are plain evhttp client requests over a bufferevent from
 * cb_tls_bufferevent_new (https: verified against the system store; http
 * only for a local test endpoint such as `chatbattle simulate`'s).  Nothing
 * here logs the client secret, a token or a token answer's body.
 *
 * Store: series[] sorted by name (bsearch), each a ring of
 * CB_VIEWERS_KEPT samples, under v->lock (the HTTP threads read it).
 *
 * `chatbattle check` runs the same state machine once on its own loop
 * (probe mode): a token, one batch, then the loop breaks.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "chatbattle/app.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/evloop.h"
#include "chatbattle/helix.h"
#include "chatbattle/irc.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/oauth.h"
#include "chatbattle/stats_cache.h"
#include "chatbattle/thread.h"
#include "chatbattle/tls.h"
#include "chatbattle/viewers.h"

#define SUB "viewers"
/* A streams answer for 100 logins is ~30 KB; far more is wrong. */
#define BODY_MAX (1 << 20)
#define REQ_TIMEOUT_S 15
/* A token is fetched again this long before Twitch says it expires. */
#define TOKEN_MARGIN_MS 60000

struct series {
	char name[26];
	struct cb_viewers_sample s[CB_VIEWERS_KEPT];
	size_t head; /* next slot written */
	size_t n;
};

struct endpoint {
	bool https;
	char host[256];
	int port;
	char path[1024];     /* path and query, for the request line */
	char hostport[300];  /* the Host header */
};

enum req_kind { REQ_NONE, REQ_TOKEN, REQ_STREAMS };

struct cb_viewers {
	struct cb_app *app; /* NULL in probe mode */
	const struct cb_config *cfg;

	/* The store: v->lock guards series, nseries, version and st. */
	pthread_mutex_t lock;
	struct series **series;
	size_t nseries;
	uint64_t version;
	struct cb_viewers_stats st;

	/* The poller's own (its thread, or check's caller in probe mode). */
	struct cb_evloop loop;
	struct cb_thread thread;
	atomic_bool stop;
	struct event *tick;
	struct ssl_ctx_st *ssl_ctx; /* NULL when neither endpoint is https */
	struct endpoint api, token_ep;
	char token[CB_OAUTH_TOKEN_MAX];
	int64_t token_expiry_ms; /* monotonic; 0: no expiry known */
	struct evhttp_connection *conn;
	enum req_kind kind;
	char (*names)[26]; /* this cycle's channels, sorted */
	size_t nnames, pos, batch;
	int64_t cycle_start_ms;
	bool in_cycle;
	bool throttled;      /* in a run of 429s (logged at its start) */
	uint64_t throttled_run;
	bool failing;        /* a failure was logged; cleared on success */
	int auth_retries;

	/* Probe mode (check). */
	bool probe;
	bool probe_done;
	int probe_err;
	size_t probe_live;
	char probe_reason[800];
};

bool cb_viewers_enabled(const struct cb_config *cfg)
{
	return cfg->twitch_client_id[0] != '\0' &&
	       cfg->twitch_client_secret[0] != '\0';
}

/* ---- the store ---- */

static int by_series_name(const void *key, const void *elem)
{
	return strcmp(key, (*(struct series *const *)elem)->name);
}

static struct series *series_find(struct cb_viewers *v, const char *name)
{
	struct series **p;

	if (v->nseries == 0)
		return NULL;
	p = bsearch(name, v->series, v->nseries, sizeof(*v->series),
		    by_series_name);
	return p ? *p : NULL;
}

/* Under v->lock. */
static int record_locked(struct cb_viewers *v, const char *channel,
			 int64_t t_ms, int64_t viewers)
{
	struct series *s = series_find(v, channel);
	size_t at;

	if (s == NULL) {
		if (v->nseries >= CB_VIEWERS_CHANNELS_MAX)
			return CB_E_FULL;
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return CB_E_NOMEM;
		snprintf(s->name, sizeof(s->name), "%s", channel);
		for (at = 0; at < v->nseries &&
			     strcmp(v->series[at]->name, channel) < 0;
		     at++)
			;
		memmove(&v->series[at + 1], &v->series[at],
			(v->nseries - at) * sizeof(*v->series));
		v->series[at] = s;
		v->nseries++;
	}
	s->s[s->head].t_ms = t_ms;
	s->s[s->head].viewers = viewers;
	s->head = (s->head + 1) % CB_VIEWERS_KEPT;
	if (s->n < CB_VIEWERS_KEPT)
		s->n++;
	return 0;
}

static const struct cb_viewers_sample *last_sample(const struct series *s)
{
	return &s->s[(s->head + CB_VIEWERS_KEPT - 1) % CB_VIEWERS_KEPT];
}

/* Recounts st.channels and st.live; under v->lock. */
static void recount_locked(struct cb_viewers *v)
{
	v->st.channels = v->nseries;
	v->st.live = 0;
	for (size_t i = 0; i < v->nseries; i++)
		v->st.live += last_sample(v->series[i])->viewers >= 0;
}

int cb_viewers_record(struct cb_viewers *v, const char *channel, int64_t t_ms,
		      int64_t viewers)
{
	int err;

	pthread_mutex_lock(&v->lock);
	err = record_locked(v, channel, t_ms, viewers);
	if (err == 0) {
		v->version++;
		recount_locked(v);
	}
	pthread_mutex_unlock(&v->lock);
	return err;
}

int cb_viewers_get(struct cb_viewers *v, const char *channel,
		   struct cb_viewers_view *out)
{
	const struct series *s;
	int err = CB_E_NOTFOUND;

	memset(out, 0, sizeof(*out));
	if (v == NULL)
		return CB_E_NOTFOUND;
	pthread_mutex_lock(&v->lock);
	s = series_find(v, channel);
	if (s != NULL && s->n > 0) {
		const struct cb_viewers_sample *l = last_sample(s);

		out->live = l->viewers >= 0;
		out->viewers = l->viewers >= 0 ? l->viewers : 0;
		out->updated_ms = l->t_ms;
		err = 0;
	}
	pthread_mutex_unlock(&v->lock);
	return err;
}

size_t cb_viewers_series(struct cb_viewers *v, const char *channel,
			 struct cb_viewers_sample *out, size_t max)
{
	const struct series *s;
	size_t n = 0;

	if (v == NULL)
		return 0;
	pthread_mutex_lock(&v->lock);
	s = series_find(v, channel);
	if (s != NULL) {
		size_t k = s->n < max ? s->n : max;
		size_t first = (s->head + CB_VIEWERS_KEPT - k) % CB_VIEWERS_KEPT;

		for (n = 0; n < k; n++)
			out[n] = s->s[(first + n) % CB_VIEWERS_KEPT];
	}
	pthread_mutex_unlock(&v->lock);
	return n;
}

uint64_t cb_viewers_version(struct cb_viewers *v)
{
	uint64_t ver;

	if (v == NULL)
		return 0;
	pthread_mutex_lock(&v->lock);
	ver = v->version;
	pthread_mutex_unlock(&v->lock);
	return ver;
}

void cb_viewers_stats(struct cb_viewers *v, struct cb_viewers_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (v == NULL)
		return;
	pthread_mutex_lock(&v->lock);
	*out = v->st;
	pthread_mutex_unlock(&v->lock);
}

/* ---- the poller ---- */

static int endpoint_parse(struct endpoint *ep, const char *url,
			  const char *setting, bool keep_path, char *errstr,
			  size_t errstr_size)
{
	struct evhttp_uri *uri = evhttp_uri_parse(url);
	const char *scheme, *host, *path, *query;
	int err = 0;

	if (uri == NULL || (scheme = evhttp_uri_get_scheme(uri)) == NULL ||
	    (host = evhttp_uri_get_host(uri)) == NULL || host[0] == '\0' ||
	    strlen(host) >= sizeof(ep->host)) {
		err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				"%s: not an http(s) URL", setting);
		goto out;
	}
	ep->https = strcasecmp(scheme, "https") == 0;
	if (!ep->https && strcasecmp(scheme, "http") != 0) {
		err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				"%s: scheme must be https (or http for a "
				"local test endpoint)",
				setting);
		goto out;
	}
	snprintf(ep->host, sizeof(ep->host), "%s", host);
	ep->port = evhttp_uri_get_port(uri);
	if (ep->port < 0)
		ep->port = ep->https ? 443 : 80;
	if (ep->port == (ep->https ? 443 : 80))
		snprintf(ep->hostport, sizeof(ep->hostport), "%s", host);
	else
		snprintf(ep->hostport, sizeof(ep->hostport), "%s:%d", host,
			 ep->port);
	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	if (!keep_path && query != NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				"%s: a base URL takes no query", setting);
		goto out;
	}
	snprintf(ep->path, sizeof(ep->path), "%s%s%s",
		 path && path[0] ? path : (keep_path ? "/" : ""),
		 query ? "?" : "", query ? query : "");
out:
	if (uri != NULL)
		evhttp_uri_free(uri);
	return err;
}

static void schedule(struct cb_viewers *v, int64_t delay_ms)
{
	struct timeval tv;

	if (delay_ms < 0)
		delay_ms = 0;
	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(delay_ms % 1000) * 1000;
	evtimer_add(v->tick, &tv);
}

static void probe_finish(struct cb_viewers *v, int err, const char *reason)
{
	v->probe_done = true;
	v->probe_err = err;
	snprintf(v->probe_reason, sizeof(v->probe_reason), "%s",
		 reason ? reason : "");
	event_base_loopbreak(v->loop.base);
}

/* Logs a failure when a run of failures starts; the next cycle retries. */
static void fail(struct cb_viewers *v, int err, const char *reason)
{
	if (v->probe) {
		probe_finish(v, err, reason);
		return;
	}
	cb_metric_add(CB_M_viewers_failures_total, 1);
	if (!v->failing)
		cb_warn(SUB,
			"%s; retrying every %lld s (logged once until it "
			"works)",
			reason, (long long)v->cfg->viewers_interval_s);
	v->failing = true;
	v->in_cycle = false;
	schedule(v, v->cfg->viewers_interval_s * 1000);
}

static void recovered(struct cb_viewers *v)
{
	if (v->failing)
		cb_info(SUB, "Helix answers again");
	v->failing = false;
}

/* Keeps printable ASCII of a server message for a log line. */
static void sanitize(char *dst, size_t size, const char *src, size_t len)
{
	size_t k = 0;

	for (size_t i = 0; i < len && k + 1 < size; i++)
		dst[k++] = (src[i] >= 32 && src[i] < 127) ? src[i] : '?';
	dst[k] = '\0';
}

static void free_conn_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evhttp_connection_free(arg);
}

/* evhttp must not free a connection inside its own callback. */
static void release_conn(struct cb_viewers *v)
{
	struct timeval now = {0, 0};

	if (v->conn == NULL)
		return;
	if (event_base_once(v->loop.base, -1, EV_TIMEOUT, free_conn_cb,
			    v->conn, &now) != 0) {
		/* Cannot defer: leak it rather than free it under its own
		 * callback. */
	}
	v->conn = NULL;
}

static void response_cb(struct evhttp_request *req, void *arg);

static int send_request(struct cb_viewers *v, const struct endpoint *ep,
			enum evhttp_cmd_type method, const char *target,
			const char *form, char *errstr, size_t errstr_size)
{
	struct bufferevent *bev = NULL;
	struct evhttp_request *req;
	struct evkeyvalq *hdrs;
	char auth[CB_OAUTH_TOKEN_MAX + 16];

	if (ep->https) {
		bev = cb_tls_bufferevent_new(v->loop.base, v->ssl_ctx, ep->host,
					     BEV_OPT_CLOSE_ON_FREE |
						     BEV_OPT_DEFER_CALLBACKS,
					     errstr, errstr_size);
		if (bev == NULL)
			return CB_E_TLS;
	}
	v->conn = evhttp_connection_base_bufferevent_new(
		v->loop.base, v->loop.dns, bev, ep->host,
		(unsigned short)ep->port);
	if (v->conn == NULL) {
		if (bev != NULL)
			bufferevent_free(bev);
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "cannot create the HTTP connection");
	}
	evhttp_connection_set_timeout(v->conn, REQ_TIMEOUT_S);
	evhttp_connection_set_retries(v->conn, 0);
	evhttp_connection_set_max_body_size(v->conn, BODY_MAX);
	req = evhttp_request_new(response_cb, v);
	if (req == NULL) {
		release_conn(v);
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	}
	hdrs = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdrs, "Host", ep->hostport);
	evhttp_add_header(hdrs, "Accept", "application/json");
	evhttp_add_header(hdrs, "Connection", "close");
	if (form != NULL) {
		evhttp_add_header(hdrs, "Content-Type",
				  "application/x-www-form-urlencoded");
		evbuffer_add(evhttp_request_get_output_buffer(req), form,
			     strlen(form));
	} else {
		evhttp_add_header(hdrs, "Client-Id", v->cfg->twitch_client_id);
		snprintf(auth, sizeof(auth), "Bearer %s", v->token);
		evhttp_add_header(hdrs, "Authorization", auth);
		explicit_bzero(auth, sizeof(auth));
	}
	/* evhttp_make_request owns req from here, even when it fails. */
	if (evhttp_make_request(v->conn, req, method, target) != 0) {
		release_conn(v);
		return cb_seterr(errstr, errstr_size, CB_E_IO,
				 "cannot send the request to %s",
				 ep->hostport);
	}
	return 0;
}

static void token_request(struct cb_viewers *v)
{
	char *id = evhttp_uriencode(v->cfg->twitch_client_id, -1, 1);
	char *secret = evhttp_uriencode(v->cfg->twitch_client_secret, -1, 1);
	char *form = NULL, errstr[300];
	size_t n;
	int err = CB_E_NOMEM;

	if (id == NULL || secret == NULL)
		goto out;
	n = strlen(id) + strlen(secret) + 64;
	form = malloc(n);
	if (form == NULL)
		goto out;
	snprintf(form, n,
		 "grant_type=client_credentials&client_id=%s&client_secret=%s",
		 id, secret);
	v->kind = REQ_TOKEN;
	err = send_request(v, &v->token_ep, EVHTTP_REQ_POST, v->token_ep.path,
			   form, errstr, sizeof(errstr));
	explicit_bzero(form, strlen(form));
out:
	if (secret != NULL) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	free(id);
	free(form);
	if (err == CB_E_NOMEM)
		snprintf(errstr, sizeof(errstr), "out of memory");
	if (err != 0) {
		v->kind = REQ_NONE;
		fail(v, err, errstr);
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The channels of a new cycle: configured, monitored, with figures;
 * sorted, distinct, at most CB_VIEWERS_CHANNELS_MAX. */
static int gather(struct cb_viewers *v)
{
	const size_t cap = CB_VIEWERS_CHANNELS_MAX;
	const struct cb_strlist *cl = &v->cfg->channel;
	size_t n = 0, k;

	free(v->names);
	v->nnames = 0;
	v->names = malloc(cap * sizeof(*v->names));
	if (v->names == NULL)
		return CB_E_NOMEM;
	for (size_t i = 0; i < cl->n && n < cap; i++)
		snprintf(v->names[n++], 26, "%s", cl->v[i]);
	if (v->app != NULL && v->app->irc != NULL && n < cap) {
		struct cb_irc_channel_status *st = malloc(
			(cap - n) * sizeof(*st));

		if (st == NULL)
			return CB_E_NOMEM;
		k = cb_irc_status(v->app->irc, st, cap - n);
		for (size_t i = 0; i < k && i < cap - n; i++)
			memcpy(v->names[n + i], st[i].channel, 26);
		n += k < cap - n ? k : cap - n;
		free(st);
	}
	if (v->app != NULL && v->app->cache != NULL && n < cap) {
		k = cb_stats_cache_channels(v->app->cache, &v->names[n],
					    cap - n);
		n += k < cap - n ? k : cap - n;
	}
	qsort(v->names, n, sizeof(*v->names), by_name);
	k = 0;
	for (size_t i = 0; i < n; i++)
		if (v->names[i][0] != '\0' &&
		    (k == 0 || strcmp(v->names[k - 1], v->names[i]) != 0))
			memmove(v->names[k++], v->names[i], 26);
	v->nnames = k;
	return 0;
}

static void step(struct cb_viewers *v)
{
	char target[4096], errstr[300];
	int err, len;

	if (atomic_load(&v->stop))
		return;
	if (v->token[0] == '\0' ||
	    (v->token_expiry_ms > 0 && cb_mono_ms() >= v->token_expiry_ms)) {
		v->token[0] = '\0';
		token_request(v);
		return;
	}
	if (!v->in_cycle) {
		if ((err = gather(v)) != 0) {
			fail(v, err, "out of memory");
			return;
		}
		v->pos = 0;
		v->in_cycle = true;
		v->cycle_start_ms = cb_mono_ms();
	}
	if (v->pos >= v->nnames) {
		v->in_cycle = false;
		if (v->probe) {
			probe_finish(v, 0, NULL);
			return;
		}
		schedule(v, v->cycle_start_ms + v->cfg->viewers_interval_s * 1000 -
				    cb_mono_ms());
		return;
	}
	v->batch = v->nnames - v->pos;
	if (v->batch > CB_HELIX_LOGINS_MAX)
		v->batch = CB_HELIX_LOGINS_MAX;
	len = cb_helix_streams_target(v->api.path,
				      (const char(*)[26])&v->names[v->pos],
				      v->batch, target, sizeof(target));
	if (len < 0) {
		fail(v, len, "helix_url: its path is too long");
		return;
	}
	v->kind = REQ_STREAMS;
	err = send_request(v, &v->api, EVHTTP_REQ_GET, target, NULL, errstr,
			   sizeof(errstr));
	if (err != 0) {
		v->kind = REQ_NONE;
		fail(v, err, errstr);
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	step(arg);
}

static void token_done(struct cb_viewers *v, int status, const char *body,
		       size_t len)
{
	char reason[800], msg[160], errstr[200];
	int64_t expires_s;

	if (status == 0) {
		snprintf(reason, sizeof(reason),
			 "token endpoint %s: no answer (connection refused, "
			 "TLS failure or timeout)",
			 v->token_ep.hostport);
		fail(v, CB_E_IO, reason);
		return;
	}
	if (status != 200) {
		/* Twitch's error body names the problem ("invalid client
		 * secret"), never the secret itself. */
		sanitize(msg, sizeof(msg), body, len > 120 ? 120 : len);
		snprintf(reason, sizeof(reason),
			 "token endpoint %s answered HTTP %d: %s "
			 "(check twitch_client_id and twitch_client_secret)",
			 v->token_ep.hostport, status, msg);
		fail(v, status == 400 || status == 401 || status == 403
				? CB_E_AUTH
				: CB_E_HTTP,
		     reason);
		return;
	}
	if (cb_helix_parse_token(body, len, v->token, sizeof(v->token),
				 &expires_s, errstr, sizeof(errstr)) != 0) {
		snprintf(reason, sizeof(reason), "token endpoint %s: %s",
			 v->token_ep.hostport, errstr);
		fail(v, CB_E_PROTO, reason);
		return;
	}
	v->token_expiry_ms = expires_s > 0 ? cb_mono_ms() + expires_s * 1000 -
						     TOKEN_MARGIN_MS
					   : 0;
	pthread_mutex_lock(&v->lock);
	v->st.tokens++;
	pthread_mutex_unlock(&v->lock);
	if (!v->probe)
		cb_metric_add(CB_M_viewers_tokens_total, 1);
	cb_debug(SUB, "app access token obtained (expires in %lld s)",
		 (long long)expires_s);
	schedule(v, 0);
}

static void apply_streams(struct cb_viewers *v, const struct cb_helix_stream *l,
			  size_t n)
{
	int64_t now = cb_wall_ms();
	bool full = false;

	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < v->batch; i++) {
		const char *name = v->names[v->pos + i];
		int64_t viewers = -1;

		for (size_t j = 0; j < n; j++)
			if (strcmp(l[j].login, name) == 0) {
				viewers = l[j].viewers;
				break;
			}
		full |= record_locked(v, name, now, viewers) == CB_E_FULL;
	}
	v->version++;
	recount_locked(v);
	cb_metric_set(CB_M_viewers_channels_live, v->st.live);
	pthread_mutex_unlock(&v->lock);
	(void)full; /* gather() caps the channels at the store's bound */
}

static void streams_done(struct cb_viewers *v, int status, const char *body,
			 size_t len, const char *remaining, const char *reset)
{
	struct cb_helix_stream *list = NULL;
	char reason[800], errstr[200], msg[160];
	int64_t wait = cb_helix_wait_ms(status, remaining, reset, cb_wall_ms());
	size_t n = 0;

	if (status != 0) {
		pthread_mutex_lock(&v->lock);
		v->st.requests++;
		v->st.throttled += status == 429;
		pthread_mutex_unlock(&v->lock);
		if (!v->probe) {
			cb_metric_add(CB_M_viewers_requests_total, 1);
			cb_metric_add(CB_M_viewers_throttled_total, status == 429);
		}
	}
	if (status == 429) {
		if (v->probe) {
			snprintf(reason, sizeof(reason),
				 "Helix is rate limiting (HTTP 429); the "
				 "limit resets in %.1f s",
				 (double)wait / 1000.0);
			probe_finish(v, CB_E_AGAIN, reason);
			return;
		}
		if (!v->throttled)
			cb_warn(SUB,
				"Helix rate limit reached (HTTP 429, "
				"Ratelimit-Remaining %s): waiting %.1f s for "
				"Ratelimit-Reset (logged once until a request "
				"succeeds)",
				remaining ? remaining : "-",
				(double)wait / 1000.0);
		v->throttled = true;
		v->throttled_run++;
		schedule(v, wait);
		return;
	}
	if (status == 401) {
		v->token[0] = '\0';
		if (++v->auth_retries > 1) {
			v->auth_retries = 0;
			fail(v, CB_E_AUTH,
			     "Helix rejects a new app access token too (HTTP "
			     "401); check twitch_client_id");
			return;
		}
		cb_info(SUB, "Helix rejected the app access token (HTTP 401); "
			     "fetching a new one");
		schedule(v, 0);
		return;
	}
	if (status != 200) {
		if (status == 0)
			snprintf(reason, sizeof(reason),
				 "Helix %s: no answer (connection refused, "
				 "TLS failure or timeout)",
				 v->api.hostport);
		else {
			sanitize(msg, sizeof(msg), body, len > 120 ? 120 : len);
			snprintf(reason, sizeof(reason),
				 "Helix %s answered HTTP %d: %s",
				 v->api.hostport, status, msg);
		}
		fail(v, status == 0 ? CB_E_IO : CB_E_HTTP, reason);
		return;
	}
	list = malloc(CB_HELIX_LOGINS_MAX * sizeof(*list));
	if (list == NULL) {
		fail(v, CB_E_NOMEM, "out of memory");
		return;
	}
	if (cb_helix_parse_streams(body, len, list, CB_HELIX_LOGINS_MAX, &n,
				   errstr, sizeof(errstr)) != 0) {
		free(list);
		snprintf(reason, sizeof(reason), "Helix %s: %s",
			 v->api.hostport, errstr);
		fail(v, CB_E_PROTO, reason);
		return;
	}
	v->auth_retries = 0;
	recovered(v);
	if (v->throttled)
		cb_info(SUB, "Helix rate limit over after %llu throttled "
			     "request(s)",
			(unsigned long long)v->throttled_run);
	v->throttled = false;
	v->throttled_run = 0;
	if (v->probe) {
		v->probe_live += n;
		free(list);
		probe_finish(v, 0, NULL);
		return;
	}
	apply_streams(v, list, n);
	free(list);
	v->pos += v->batch;
	if (v->pos >= v->nnames) {
		int64_t next = v->cycle_start_ms +
			       v->cfg->viewers_interval_s * 1000 - cb_mono_ms();

		pthread_mutex_lock(&v->lock);
		v->st.cycles++;
		pthread_mutex_unlock(&v->lock);
		v->in_cycle = false;
		schedule(v, next > wait ? next : wait);
		return;
	}
	schedule(v, wait);
}

static void response_cb(struct evhttp_request *req, void *arg)
{
	struct cb_viewers *v = arg;
	enum req_kind kind = v->kind;
	struct evkeyvalq *h;
	struct evbuffer *in;
	const char *body = "";
	char *remaining = NULL, *reset = NULL;
	size_t len = 0;
	int status = req ? evhttp_request_get_response_code(req) : 0;

	v->kind = REQ_NONE;
	if (status != 0) {
		h = evhttp_request_get_input_headers(req);
		in = evhttp_request_get_input_buffer(req);
		len = evbuffer_get_length(in);
		if (len > 0)
			body = (const char *)evbuffer_pullup(in, -1);
		if (evhttp_find_header(h, "Ratelimit-Remaining"))
			remaining = strdup(evhttp_find_header(
				h, "Ratelimit-Remaining"));
		if (evhttp_find_header(h, "Ratelimit-Reset"))
			reset = strdup(evhttp_find_header(h, "Ratelimit-Reset"));
	}
	if (kind == REQ_TOKEN)
		token_done(v, status, body, len);
	else if (kind == REQ_STREAMS)
		streams_done(v, status, body, len, remaining, reset);
	if (kind == REQ_TOKEN && len > 0 && req != NULL)
		explicit_bzero((char *)body, len); /* it held the token */
	free(remaining);
	free(reset);
	release_conn(v);
}

/* ---- life cycle ---- */

static int state_new(struct cb_viewers **out, struct cb_app *app,
		     const struct cb_config *cfg, bool probe, char *errstr,
		     size_t errstr_size)
{
	struct cb_viewers *v = calloc(1, sizeof(*v));
	int err;

	*out = NULL;
	if (v == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	v->app = app;
	v->cfg = cfg;
	v->probe = probe;
	v->loop.stop_efd = -1;
	pthread_mutex_init(&v->lock, NULL);
	v->st.interval_s = cfg->viewers_interval_s;
	atomic_init(&v->stop, false);
	if ((err = endpoint_parse(&v->api, cfg->helix_url, "helix_url", false,
				  errstr, errstr_size)) != 0 ||
	    (err = endpoint_parse(&v->token_ep, cfg->twitch_token_url,
				  "twitch_token_url", true, errstr,
				  errstr_size)) != 0)
		goto fail;
	v->series = calloc(CB_VIEWERS_CHANNELS_MAX, sizeof(*v->series));
	if (v->series == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"out of memory");
		goto fail;
	}
	if (v->api.https || v->token_ep.https) {
		err = cb_tls_client_ctx(&v->ssl_ctx, NULL, "Twitch Helix",
					errstr, errstr_size);
		if (err != 0)
			goto fail;
	}
	if ((err = cb_evloop_new(&v->loop, errstr, errstr_size)) != 0)
		goto fail;
	v->tick = evtimer_new(v->loop.base, tick_cb, v);
	if (v->tick == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"out of memory");
		goto fail;
	}
	*out = v;
	return 0;
fail:
	free(v->series);
	if (v->ssl_ctx != NULL)
		SSL_CTX_free(v->ssl_ctx);
	cb_evloop_free(&v->loop);
	pthread_mutex_destroy(&v->lock);
	free(v);
	return err;
}

static void state_free(struct cb_viewers *v)
{
	/* The thread has ended (or never ran): this thread owns the loop.
	 * A request still in flight goes first (evhttp frees it without its
	 * callback), then the loop runs the frees release_conn deferred. */
	atomic_store(&v->stop, true);
	if (v->tick != NULL)
		event_del(v->tick);
	if (v->conn != NULL)
		evhttp_connection_free(v->conn);
	v->conn = NULL;
	if (v->loop.base != NULL)
		event_base_loop(v->loop.base, EVLOOP_NONBLOCK);
	if (v->tick != NULL)
		event_free(v->tick);
	cb_evloop_free(&v->loop);
	if (v->ssl_ctx != NULL)
		SSL_CTX_free(v->ssl_ctx);
	for (size_t i = 0; i < v->nseries; i++)
		free(v->series[i]);
	free(v->series);
	free(v->names);
	explicit_bzero(v->token, sizeof(v->token));
	pthread_mutex_destroy(&v->lock);
	free(v);
}

static void *thread_main(void *arg)
{
	struct cb_viewers *v = arg;

	event_base_dispatch(v->loop.base);
	return NULL;
}

int cb_viewers_start(struct cb_app *app, char *errstr, size_t errstr_size)
{
	const struct cb_config *cfg = app->cfg;
	struct cb_viewers *v;
	int err;

	app->viewers = NULL;
	if (!cb_viewers_enabled(cfg)) {
		cb_info(SUB, "viewer counts off: no twitch_client_id and "
			     "twitch_client_secret");
		return 0;
	}
	if ((err = state_new(&v, app, cfg, false, errstr, errstr_size)) != 0)
		return err;
	schedule(v, 0);
	err = cb_thread_start(&v->thread, thread_main, v, "viewers", errstr,
			      errstr_size);
	if (err != 0) {
		state_free(v);
		return err;
	}
	app->viewers = v;
	cb_info(SUB, "polling %s every %lld s for viewer counts",
		v->api.hostport, (long long)cfg->viewers_interval_s);
	return 0;
}

void cb_viewers_stop(struct cb_app *app)
{
	struct cb_viewers *v = app->viewers;

	if (v == NULL)
		return;
	cb_thread_stop(&v->thread, &v->stop, v->loop.stop_efd);
	app->viewers = NULL;
	state_free(v);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	probe_finish(arg, CB_E_TIMEOUT, "Helix: no answer in time");
}

int cb_viewers_probe(const struct cb_config *cfg, int timeout_ms,
		     size_t *live, char *errstr, size_t errstr_size)
{
	struct cb_viewers *v;
	struct event *deadline;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	int err;

	*live = 0;
	if ((err = state_new(&v, NULL, cfg, true, errstr, errstr_size)) != 0)
		return err;
	deadline = evtimer_new(v->loop.base, deadline_cb, v);
	if (deadline == NULL) {
		state_free(v);
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	}
	evtimer_add(deadline, &tv);
	schedule(v, 0);
	while (!v->probe_done)
		if (event_base_dispatch(v->loop.base) != 0)
			break;
	err = v->probe_done ? v->probe_err : CB_E_IO;
	if (err != 0)
		cb_seterr(errstr, errstr_size, err, "%s",
			  v->probe_done ? v->probe_reason : "event loop failed");
	*live = v->probe_live;
	event_free(deadline);
	state_free(v);
	return err;
}
