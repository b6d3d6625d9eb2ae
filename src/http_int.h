/*
 * http_int.h - what the files of the HTTP module (http.c, http_api.c,
 * http_sse.c, http_assets.c) share.  Not a public interface: libmicrohttpd
 * types appear here and nowhere under include/.
 */
#ifndef CHATBATTLE_HTTP_INT_H
#define CHATBATTLE_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

struct cb_app;
struct cb_config;
struct cb_http_sse;

struct cb_http {
	struct cb_app *app;
	const struct cb_config *cfg;
	struct MHD_Daemon *daemon;
	uint16_t port;
	int64_t started_ms;       /* wall clock at start, for uptime */
	struct cb_http_sse *sse;  /* NULL when there is no stats cache */
};

/* One request being answered (lives on the handler's stack). */
struct cb_http_ctx {
	struct cb_http *h;
	struct MHD_Connection *conn;
	const char *method;       /* as received ("HEAD" is routed as GET) */
	const char *url;          /* decoded path, no query */
	char channel[26];         /* the normalized {channelId}, or "" */
	const char *param;        /* raw text of the one path parameter */
	size_t param_len;
	const char *body;         /* request body (NUL-terminated), or NULL */
	size_t body_len;
};

/* Status codes this module sends, and a text for each. */
const char *cb_http_reason(unsigned status);

/*
 * Sends a complete response: adds Content-Type, CORS and extra headers
 * (NULL-terminated name, value pairs, or NULL), queues it, counts and logs
 * it.  body is copied.  Returns MHD_YES/MHD_NO for the access handler.
 */
enum MHD_Result cb_http_send(struct cb_http_ctx *x, unsigned status,
			     const char *ctype, const char *body, size_t len,
			     const char *const *headers);

/* Queues response r (NULL: out of memory) with Content-Type ctype (or
 * none), CORS and headers, then drops this reference to it. */
enum MHD_Result cb_http_queue(struct cb_http_ctx *x, unsigned status,
			      const char *ctype, struct MHD_Response *r,
			      size_t len, const char *const *headers);

/* Sends body that outlives the response (embedded files): no copy. */
enum MHD_Result cb_http_send_static(struct cb_http_ctx *x, unsigned status,
				    const char *ctype, const void *body,
				    size_t len, const char *const *headers);

/* Sends body (malloc'd) without copying it; frees it in every case. */
enum MHD_Result cb_http_send_owned(struct cb_http_ctx *x, unsigned status,
				   const char *ctype, char *body, size_t len,
				   const char *const *headers);

/* Sends {"error": "<message>", "status": N} (the message is escaped). */
enum MHD_Result cb_http_error(struct cb_http_ctx *x, unsigned status,
			      const char *const *headers, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Adds the CORS headers of the cors_origin setting to r. */
void cb_http_add_cors(struct cb_http *h, struct MHD_Response *r);

/* Logs and counts one response of status (send paths call it). */
void cb_http_account(struct cb_http_ctx *x, unsigned status, size_t len);

/*
 * Reads the query parameter name as an integer in [min, max]; absent gives
 * def.  Returns 0, or -1 after sending a 400 (the handler returns *ret).
 */
int cb_http_query_int(struct cb_http_ctx *x, const char *name, int64_t def,
		      int64_t min, int64_t max, int64_t *out,
		      enum MHD_Result *ret);

/* API handlers (http_api.c). */
enum MHD_Result cb_http_api_health(struct cb_http_ctx *x);
enum MHD_Result cb_http_api_stats(struct cb_http_ctx *x);
enum MHD_Result cb_http_api_channels(struct cb_http_ctx *x);
enum MHD_Result cb_http_api_windows(struct cb_http_ctx *x);
enum MHD_Result cb_http_api_top(struct cb_http_ctx *x);
enum MHD_Result cb_http_api_start(struct cb_http_ctx *x);
enum MHD_Result cb_http_api_stop(struct cb_http_ctx *x);
enum MHD_Result cb_http_api_metrics(struct cb_http_ctx *x);
enum MHD_Result cb_http_api_openapi(struct cb_http_ctx *x);

/* Shared by the channel list and the battle (http_api.c).  The monitored
 * channels and the channels with figures, each sorted by name, malloc'd
 * (NULL with *n = 0 when none); the name of an enum cb_irc_chan_state. */
struct cb_irc_channel_status;
struct cb_stats_cache;
struct cb_irc_channel_status *cb_http_irc_channels(struct cb_app *app,
						  size_t *n);
char (*cb_http_cache_channels(struct cb_stats_cache *c, size_t *n))[26];
const char *cb_http_irc_state_name(int st);

/* ---- the battle of channels (http_battle.c) ---- */

/* Most channels one battle names (?channels=) or returns. */
#define CB_HTTP_BATTLE_MAX 100

struct cb_http_battle_query {
	bool all;  /* no ?channels=: every channel watched */
	size_t n;  /* channels named, distinct, normalized */
	char names[CB_HTTP_BATTLE_MAX][26];
};

/* Reads ?channels= into q.  Returns 0, or -1 after sending a 400 (the
 * handler returns *ret). */
int cb_http_battle_parse(struct cb_http_ctx *x,
			 struct cb_http_battle_query *q, enum MHD_Result *ret);
/* The ranking document at now_ms (wall clock), malloc'd.  Returns 0 or
 * CB_E_NOMEM. */
int cb_http_battle_json(struct cb_http *h,
			const struct cb_http_battle_query *q, int64_t now_ms,
			char **json, size_t *len);
/* Moves whenever a channel of q gets new figures (the event streams). */
uint64_t cb_http_battle_version(struct cb_http *h,
				const struct cb_http_battle_query *q);
enum MHD_Result cb_http_api_battle(struct cb_http_ctx *x);
/* Messages per minute in channel's current window, as the battle ranks
 * it (0 without figures). */
double cb_http_channel_rate(struct cb_http *h, const char *channel,
			    int64_t now_ms);
/* messages per minute per 1,000 viewers, 2 decimals; null unless have and
 * viewers > 0.  (jansson's json_t, as the battle uses it.) */
struct json_t;
struct json_t *cb_http_per_1k_json(double per_minute, bool have,
				   int64_t viewers);
/* GET /api/channels/:id/viewers (http_api.c), and its document:
 * {"channel_id","enabled","interval_s","viewers","live","updated",
 * "messages_per_minute","msgs_per_1k_viewers"[,"series"]} with up to
 * series_max samples (0: no "series"), malloc'd compact JSON, or NULL
 * when out of memory. */
enum MHD_Result cb_http_api_viewers(struct cb_http_ctx *x);
char *cb_http_viewers_json(struct cb_http *h, const char *channel,
			   int64_t now_ms, size_t series_max, size_t *len);

/* GET /api/channels/:id/messages (http_messages.c). */
enum MHD_Result cb_http_api_messages(struct cb_http_ctx *x);

/* base64url without padding (RFC 4648 section 5), for paging tokens.
 * encode writes 4 * ceil(n / 3) + 1 bytes at most and returns the length;
 * decode returns 0, CB_E_PARSE (not canonical base64url) or CB_E_TOOBIG. */
size_t cb_http_b64url_encode(const uint8_t *in, size_t n, char *out);
int cb_http_b64url_decode(const char *in, uint8_t *out, size_t max,
			  size_t *out_len);

/* Embedded dashboard files (http_assets.c). */
enum MHD_Result cb_http_asset(struct cb_http_ctx *x);
/* Looks an embedded file up by path ("/index.html"); NULL if absent. */
const char *cb_http_asset_data(const char *path, size_t *len);

/* Server-Sent Events (http_sse.c). */
int cb_http_sse_new(struct cb_http *h, char *errstr, size_t errstr_size);
/* Ends every stream (they get end-of-stream) and joins the notifier;
 * waits up to timeout_ms for the streams to finish. */
void cb_http_sse_shutdown(struct cb_http *h, int timeout_ms);
void cb_http_sse_free(struct cb_http *h);
enum MHD_Result cb_http_sse_events(struct cb_http_ctx *x);
/* GET /api/battle/events: the battle document as it changes. */
enum MHD_Result cb_http_sse_battle(struct cb_http_ctx *x);


#endif
