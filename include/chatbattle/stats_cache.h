/*
 * stats_cache.h - the in-memory figures the HTTP API serves (src/stats_cache.c).
 *
 * Written by one thread only, the stats thread, which applies every
 * ChannelStats record it reads (read_committed) from `channel-stats`.
 * Read by the HTTP threads without locks on the hot path (GET
 * /api/channels/:id/stats).  Keeps, per channel, the current window and the
 * last `windows_kept` windows (docs/contracts.md describes the JSON).
 */
#ifndef CHATBATTLE_STATS_CACHE_H
#define CHATBATTLE_STATS_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct cb_stats_cache;

int cb_stats_cache_new(struct cb_stats_cache **out, size_t windows_kept,
		       char *errstr, size_t errstr_size);
void cb_stats_cache_free(struct cb_stats_cache *c);

/*
 * Stats thread only: applies one ChannelStats record (the Kafka key and the
 * JSON value).  now_ms is the wall clock, for the end-to-end latency metric
 * (from the record's last_received_at); 0 skips the sample (records re-read
 * at start-up are not live).  The aggregator's restorable "state" field is
 * not kept (nor returned by the JSON readers).  A record for an older window than
 * the current one updates that window's history entry.  Returns 0, or
 * CB_E_PARSE with the reason when the value is not a ChannelStats document
 * (the record is then skipped; the caller counts it).
 */
int cb_stats_cache_apply(struct cb_stats_cache *c, const char *key,
			 size_t key_len, const char *json, size_t json_len,
			 int64_t now_ms, char *errstr, size_t errstr_size);

/* ---- readers: HTTP threads, lock-free (no mutex, never blocks the writer) ---- */

/* The figures GET /api/channels/:id/stats serves. */
struct cb_stats_view {
	char channel[26];
	int64_t message_count;
	int64_t window_start_ms;
	int64_t window_end_ms;
	int64_t window_duration_s;
	int64_t last_updated_ms;   /* from the record's last_updated */
	int64_t unique_chatters;
	uint64_t version;          /* changes whenever this channel changes */
};

/* Copies the current window of channel into out.  Returns 0 or
 * CB_E_NOTFOUND when the channel has no data. */
int cb_stats_cache_get(struct cb_stats_cache *c, const char *channel,
		       struct cb_stats_view *out);

/*
 * The current window's full ChannelStats JSON (as received), or the last
 * `limit` windows newest first as a JSON array, in a malloc'd buffer the
 * caller frees.  Returns 0, CB_E_NOTFOUND or CB_E_NOMEM.
 */
int cb_stats_cache_current_json(struct cb_stats_cache *c, const char *channel,
				char **json, size_t *len);
int cb_stats_cache_windows_json(struct cb_stats_cache *c, const char *channel,
				size_t limit, char **json, size_t *len);

/* Copies up to max channel names that have data; returns the total. */
size_t cb_stats_cache_channels(struct cb_stats_cache *c, char (*out)[26],
			       size_t max);

/*
 * Change notification for Server-Sent Events: the cache's version grows
 * with every applied record.  cb_stats_cache_wait() blocks the calling
 * (HTTP) thread until the version differs from seen or timeout_ms passes,
 * and returns the current version.
 */
uint64_t cb_stats_cache_version(struct cb_stats_cache *c);
uint64_t cb_stats_cache_wait(struct cb_stats_cache *c, uint64_t seen,
			     int timeout_ms);

#endif
