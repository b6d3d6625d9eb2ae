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
 * (from the record's last_received_at).  A record for an older window than
 * the current one updates that window's history entry.  Returns 0, or
 * CB_E_PARSE with the reason when the value is not a ChannelStats document
 * (the record is then skipped; the caller counts it).
 */
int cb_stats_cache_apply(struct cb_stats_cache *c, const char *key,
			 size_t key_len, const char *json, size_t json_len,
			 int64_t now_ms, char *errstr, size_t errstr_size);

#endif
