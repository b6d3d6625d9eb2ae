/*
 * irc.h - the IRC thread (module "irc", src/irc.c): TLS connections to
 * Twitch, login, JOIN pacing, PING/PONG, RECONNECT and backoff.  It pushes
 * ChatMessage/event/DLQ records (record.h, struct cb_out_hdr) into
 * app->irc_out and takes JOIN/PART/SET commands from app->irc_cmd.
 * docs/ingest.md describes the behaviour.
 */
#ifndef CHATBATTLE_IRC_H
#define CHATBATTLE_IRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cb_app;
struct cb_irc;

/* Module entry points for cb_app_modules[] (app.h). */
int cb_irc_start(struct cb_app *app, char *errstr, size_t errstr_size);
void cb_irc_stop(struct cb_app *app);

enum cb_irc_chan_state {
	CB_IRC_CHAN_PENDING = 0, /* waiting for a connection or JOIN slot */
	CB_IRC_CHAN_JOINING,     /* JOIN sent, no confirmation yet */
	CB_IRC_CHAN_JOINED,      /* receiving chat */
	CB_IRC_CHAN_FAILED,      /* Twitch refused it (e.g. suspended) */
};

struct cb_irc_channel_status {
	char channel[26];
	int state;               /* enum cb_irc_chan_state */
	int connection;          /* index of the connection carrying it */
	int64_t since_ms;        /* epoch ms of the last state change */
	uint64_t messages;       /* chat messages received */
	char reason[96];         /* why FAILED; for PENDING the last
				  * connection error (e.g. a TLS failure);
				  * else "" */
};

/*
 * Any thread (HTTP): copies the state of up to max monitored channels into
 * out, sorted by name, and returns how many channels there are in total.
 * Never blocks the irc thread for longer than a copy.  The snapshot is
 * refreshed by the irc thread at most every 250 ms; irc may be NULL (no irc
 * module running): returns 0.
 */
size_t cb_irc_status(struct cb_irc *irc, struct cb_irc_channel_status *out,
		     size_t max);

/* ---- timing constants, overridable by tests ---- */

struct cb_irc_tuning {
	int64_t join_window_ms;     /* Twitch's JOIN window: 10000 */
	int64_t join_margin_ms;     /* added to the window for clock skew: 500 */
	int64_t join_timeout_ms;    /* JOIN unconfirmed: send it again, 15000 */
	int64_t connect_timeout_ms; /* TCP + TLS + login, 20000 */
	int64_t drain_timeout_ms;   /* RECONNECT: longest overlap, 30000 */
	int64_t tick_ms;            /* housekeeping timer, 100 */
	uint32_t dedupe_keys;       /* recent message ids kept, 131072 */
};

void cb_irc_tuning_defaults(struct cb_irc_tuning *t);

/* cb_irc_start() with other timing constants (tests). */
int cb_irc_start_tuned(struct cb_app *app, const struct cb_irc_tuning *t,
		       char *errstr, size_t errstr_size);

/* ---- pure helpers (no I/O, time is an argument), exposed for tests ---- */

/*
 * JOIN pacing: at most limit JOINs in any window of window_ms - a sliding
 * window, i.e. a token bucket of limit tokens where each token comes back
 * window_ms after it was spent.  (A classic refilling bucket of the same
 * size would allow 2 * limit JOINs inside one window, which Twitch counts
 * against us.)
 */
struct cb_irc_pacer {
	int64_t *sent_ms; /* ring of the last limit send times, oldest first */
	uint32_t limit, head, n;
	int64_t window_ms;
};

int cb_irc_pacer_init(struct cb_irc_pacer *p, uint32_t limit,
		      int64_t window_ms);
void cb_irc_pacer_release(struct cb_irc_pacer *p);
/* JOINs that may be sent at now_ms. */
uint32_t cb_irc_pacer_available(const struct cb_irc_pacer *p, int64_t now_ms);
/* Records n (<= available) JOINs sent at now_ms (now_ms never decreases). */
void cb_irc_pacer_take(struct cb_irc_pacer *p, int64_t now_ms, uint32_t n);
/* When the next JOIN may be sent: now_ms when one is available. */
int64_t cb_irc_pacer_next_ms(const struct cb_irc_pacer *p, int64_t now_ms);

/*
 * Reconnect delay before retry number attempt (0: the first): uniform in
 * [min_ms, min(max_ms, min_ms * 2^attempt)] - exponential growth with full
 * jitter above the floor, so a fleet of readers dropped together does not
 * come back in lock step.  r is a uniformly random 64-bit value.
 */
int64_t cb_irc_backoff_ms(unsigned attempt, int64_t min_ms, int64_t max_ms,
			  uint64_t r);

/*
 * The recent-id set behind the duplicate filter: remembers the last cap
 * keys (64-bit hashes, open addressing, FIFO eviction).  No allocation after
 * init.
 */
struct cb_irc_dedupe {
	uint64_t *slots; /* 2 * cap, 0 = empty */
	uint64_t *fifo;  /* cap, insertion order */
	uint32_t cap, mask, head, n;
};

int cb_irc_dedupe_init(struct cb_irc_dedupe *d, uint32_t cap);
void cb_irc_dedupe_release(struct cb_irc_dedupe *d);
/* The key's hash (never 0). */
uint64_t cb_irc_hash(const void *key, size_t len);
/* True when h is among the remembered keys. */
bool cb_irc_dedupe_has(const struct cb_irc_dedupe *d, uint64_t h);
/* Remembers h (forgetting the oldest key when full); no-op if present. */
void cb_irc_dedupe_add(struct cb_irc_dedupe *d, uint64_t h);

#endif
