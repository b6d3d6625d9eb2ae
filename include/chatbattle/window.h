/*
 * window.h - tumbling event-time windows per channel, the figures kept for
 * each window, the spike ("moments") detector, ChannelStats JSON and the
 * restorable state (src/window.c).  Pure code: no I/O, no clocks (the
 * caller passes every time), no threads; one struct cb_winset belongs to
 * one thread.  docs/aggregation.md states the rules; docs/contracts.md the
 * record.
 *
 * A cb_winset holds the channels of ONE input partition, because stream
 * time (the largest event time seen) is per partition, as in Kafka Streams.
 *
 * Windows: [start, start + size), start = floor(timestamp / size) * size
 * (epoch-aligned, floor also for negative times).  After a record raises
 * stream time to max(stream time, timestamp), it is late when its window's
 * end <= stream time - grace (a window accepts records until stream time
 * >= end + grace, Kafka Streams' rule); a late record changes nothing but
 * the late counters.
 */
#ifndef CHATBATTLE_WINDOW_H
#define CHATBATTLE_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Event types (records whose "type" is not "message"), in state order. */
enum cb_event_type {
	CB_EV_SUB,
	CB_EV_RESUB,
	CB_EV_SUBGIFT,
	CB_EV_SUBMYSTERYGIFT,
	CB_EV_GIFTPAIDUPGRADE,
	CB_EV_RAID,
	CB_EV_ANNOUNCEMENT,
	CB_EV_RITUAL,
	CB_EV_BITSBADGETIER,
	CB_EV_VIEWERMILESTONE,
	CB_EV_USERNOTICE,
	CB_EV_BAN,
	CB_EV_TIMEOUT,
	CB_EV_CLEARCHAT,
	CB_EV_CLEARMSG,
	CB_EV_OTHER,
	CB_EV_COUNT
};
#define CB_EV_MESSAGE (-1)

/* The kind of a record from its "type" text: CB_EV_MESSAGE for a chat
 * message (type absent, empty or "message"), else an event type
 * (CB_EV_OTHER for unknown types). */
int cb_window_event_type(const char *type, size_t len);
/* The JSON name of an event type ("sub", ... "other"). */
const char *cb_window_event_name(int ev);

/* The window start of a timestamp: floor(ts / size) * size. */
int64_t cb_window_start(int64_t ts_ms, int64_t size_ms);

/* Moments kept per channel (the newest). */
#define CB_WIN_MOMENTS_MAX 16

struct cb_window_cfg {
	int64_t size_ms;        /* window_size * 1000 */
	int64_t grace_ms;       /* window_grace * 1000 */
	uint32_t exact_limit;   /* exact_chatters_limit */
	uint32_t top_k;         /* top_k; summaries keep 8 * top_k */
	uint32_t spike_history; /* minutes */
	uint32_t spike_min_rate;
	double spike_threshold; /* standard deviations */
};

/* One input record as the aggregator parsed it (strings not
 * NUL-terminated). */
struct cb_win_rec {
	const char *channel;
	size_t channel_len;      /* 1..25 */
	int64_t ts_ms;           /* event time */
	int64_t received_at_ms;  /* 0 when unknown */
	int event;               /* CB_EV_MESSAGE or an event type */
	const char *user;        /* identity for unique chatters: user_id, */
	size_t user_len;         /* else username; 0 = none */
	const char *username;    /* for top chatters; 0 = none */
	size_t username_len;
	const uint8_t *emotes;   /* emote block: (u16 LE len, bytes)... */
	uint16_t emote_count;
	uint32_t emotes_len;
	int32_t mood_milli;      /* the message's cb_sentiment_score */
};

struct cb_winset;

/* Creates an empty set.  Returns 0, CB_E_INVAL (bad cfg) or CB_E_NOMEM. */
int cb_winset_new(struct cb_winset **out, const struct cb_window_cfg *cfg,
		  char *errstr, size_t errstr_size);
void cb_winset_free(struct cb_winset *ws);

enum { CB_WIN_APPLIED = 0, CB_WIN_LATE = 1 };

/*
 * Applies one record: raises stream time, then counts it in its window,
 * or, when late, only in the late counters (the metric is the caller's).
 * Returns CB_WIN_APPLIED, CB_WIN_LATE, or CB_E_NOMEM (nothing changed).
 */
int cb_winset_apply(struct cb_winset *ws, const struct cb_win_rec *r);

/* The partition's stream time, INT64_MIN before any record. */
int64_t cb_winset_stream_time(const struct cb_winset *ws);

/* Channels with state, and channels changed since the last emit. */
size_t cb_winset_channels(const struct cb_winset *ws);
size_t cb_winset_dirty(const struct cb_winset *ws);

/*
 * Receives one ChannelStats record (the key is the channel).  The json
 * buffer is only valid during the call.  A non-zero return stops
 * cb_winset_emit, which returns it.
 */
typedef int (*cb_win_emit_fn)(void *arg, const char *channel,
			      size_t channel_len, const char *json,
			      size_t json_len);

/*
 * Emits the ChannelStats records of every changed channel: each changed
 * window, oldest first, and then always the channel's newest window, which
 * alone carries the restorable "state" (so the last record per channel, the
 * one compaction keeps, is the newest window and can rebuild everything).
 * now_ms becomes last_updated.  Then forgets closed windows and channels
 * idle past the spike history (the same pruning cb_winset_restore_done
 * does, so a restore continues exactly like the emitter would have).
 * Returns 0, the callback's error, or CB_E_NOMEM.
 */
int cb_winset_emit(struct cb_winset *ws, int64_t now_ms, cb_win_emit_fn fn,
		   void *arg);

/*
 * Restores a channel from the "state" field (base64) of its last
 * ChannelStats record, replacing what the set holds for it, and raises
 * stream time to the state's.  Returns 0; CB_E_RANGE when the state's
 * windows have another size than the settings (they are dropped, the rest
 * is restored); CB_E_PARSE with the reason (the channel then starts empty);
 * or CB_E_NOMEM.  Call cb_winset_restore_done after the last one.
 */
int cb_winset_restore(struct cb_winset *ws, const char *channel,
		      size_t channel_len, const char *state_b64, size_t n,
		      char *errstr, size_t errstr_size);
void cb_winset_restore_done(struct cb_winset *ws);

/* ---- inspection (tests, benchmarks) ---- */

struct cb_win_figures {
	int64_t start_ms;
	int64_t message_count;
	int64_t late_records;
	int64_t unique_chatters;
	bool unique_exact;
	int64_t last_received_at;
	uint32_t per_minute[1440];
	uint32_t events[CB_EV_COUNT];
	size_t minutes;
	int64_t sentiment_sum;    /* thousandths */
	int64_t sentiment_milli;  /* the mean, rounded */
	uint32_t sentiment_positive, sentiment_negative;
};

/* Copies the figures of channel's window starting at start_ms.  Returns 0
 * or CB_E_NOTFOUND. */
int cb_winset_figures(const struct cb_winset *ws, const char *channel,
		      int64_t start_ms, struct cb_win_figures *out);

/* The channel's moments, oldest first; returns how many (<= max). */
struct cb_moment {
	int64_t minute_start_ms;
	uint32_t count;
	double mean, stddev, score;
};
size_t cb_winset_moments(const struct cb_winset *ws, const char *channel,
			 struct cb_moment *out, size_t max);

#endif
