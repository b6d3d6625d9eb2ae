/*
 * viewers.h - viewer counts (src/viewers.c, role "serve"): a thread that
 * polls Twitch Helix GET /helix/streams for every channel this instance
 * knows (the configured ones, the monitored ones, the ones with figures),
 * up to CB_HELIX_LOGINS_MAX logins a request, every viewers_interval_s
 * seconds, with an app access token from the client-credentials grant
 * (twitch_client_id, twitch_client_secret at twitch_token_url).  It honours
 * the rate-limit headers (a 429 waits until Ratelimit-Reset and is logged
 * once, not per retry) and fetches a new token on a 401.  Without a client
 * id and secret it is off: start does nothing and the API says so.
 *
 * The counts are kept in memory, a bounded series per channel
 * (CB_VIEWERS_KEPT samples, at most CB_VIEWERS_CHANNELS_MAX channels),
 * written by the thread and read by the HTTP threads under one mutex (a
 * read copies a few numbers; writes happen once per poll).  Neither the
 * client secret nor a token is ever logged.
 */
#ifndef CHATBATTLE_VIEWERS_H
#define CHATBATTLE_VIEWERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cb_app;
struct cb_config;
struct cb_viewers;

#define CB_VIEWERS_KEPT 240
#define CB_VIEWERS_CHANNELS_MAX 5000

/* True when cfg has what the poller needs (client id and secret). */
bool cb_viewers_enabled(const struct cb_config *cfg);

/*
 * Main thread: sets app->viewers and starts the poller when
 * cb_viewers_enabled, else leaves app->viewers NULL and logs one info line.
 * Returns 0, or CB_E_CONFIG for an unusable helix_url or
 * twitch_token_url, CB_E_NOMEM, CB_E_IO (thread), with the reason.
 */
int cb_viewers_start(struct cb_app *app, char *errstr, size_t errstr_size);

/* Main thread: stops and joins the poller, frees app->viewers (the HTTP
 * threads have stopped by then). */
void cb_viewers_stop(struct cb_app *app);

/* ---- readers: any thread ---- */

struct cb_viewers_view {
	bool live;           /* in the last answer as a live stream */
	int64_t viewers;     /* the last count; 0 when offline */
	int64_t updated_ms;  /* wall clock of the last answer naming it */
};

/* The last sample of channel.  Returns 0, or CB_E_NOTFOUND before its
 * first answer (or when v is NULL). */
int cb_viewers_get(struct cb_viewers *v, const char *channel,
		   struct cb_viewers_view *out);

struct cb_viewers_sample {
	int64_t t_ms;
	int64_t viewers; /* -1: offline at t_ms */
};

/* Copies up to max samples of channel, oldest first; returns how many. */
size_t cb_viewers_series(struct cb_viewers *v, const char *channel,
			 struct cb_viewers_sample *out, size_t max);

/* Grows with every poll answer applied (event streams compare it). */
uint64_t cb_viewers_version(struct cb_viewers *v);

struct cb_viewers_stats {
	uint64_t requests;   /* streams requests answered (any status) */
	uint64_t throttled;  /* of them 429 */
	uint64_t tokens;     /* tokens obtained */
	uint64_t cycles;     /* polls completed (every channel asked) */
	size_t channels;     /* channels with a sample */
	size_t live;         /* of them live at their last sample */
	int64_t interval_s;
};

/* Counters of the poller (tests, /metrics, check). */
void cb_viewers_stats(struct cb_viewers *v, struct cb_viewers_stats *out);

/* Records one sample (viewers -1 when offline) at t_ms, as the poller
 * does; exposed for tests (any thread: under the store's lock).  Returns 0,
 * CB_E_FULL past CB_VIEWERS_CHANNELS_MAX channels, or CB_E_NOMEM. */
int cb_viewers_record(struct cb_viewers *v, const char *channel, int64_t t_ms,
		      int64_t viewers);

/*
 * `chatbattle check`: one token request and one streams request for up to
 * CB_HELIX_LOGINS_MAX of cfg's channels, bounded by timeout_ms, on the
 * calling thread.  *live gets the number of live streams.  Returns 0, or a
 * negative cb_err with the reason (never holding a secret).
 */
int cb_viewers_probe(const struct cb_config *cfg, int timeout_ms,
		     size_t *live, char *errstr, size_t errstr_size);

#endif
