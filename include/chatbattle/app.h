/*
 * app.h - how `chatbattle run` wires its threads together.
 *
 * main.c creates the rings, then starts the modules of cb_app_modules[] in
 * order; on SIGINT/SIGTERM (or a fatal module error) it stops them in reverse
 * order, so that every consumer outlives its producers:
 *
 *   cql -> stats -> aggregator -> producer -> irc -> viewers -> http
 *
 * Each module owns its thread(s) and state; what crosses threads is the rings
 * below, the stats cache, the metrics, and cb_app_request_stop().
 */
#ifndef CHATBATTLE_APP_H
#define CHATBATTLE_APP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct cb_config;
struct cb_ring;
struct cb_stats_cache;
struct cb_irc;
struct cb_producer;
struct cb_agg;
struct cb_cql;
struct cb_statsd;
struct cb_http;
struct cb_viewers;

struct cb_app {
	const struct cb_config *cfg;

	/* Rings (created by main before any module starts). */
	struct cb_ring *irc_out;  /* irc -> producer: struct cb_out_hdr records */
	struct cb_ring *rows;     /* aggregator -> cql: struct cb_row_hdr records */
	struct cb_ring *acks;     /* cql -> aggregator: struct cb_ack records */
	struct cb_ring *irc_cmd;  /* http/main -> irc: struct cb_irc_cmd records
				   * (producer side serialized by cb_irc_command) */

	struct cb_stats_cache *cache; /* stats thread writes, http reads */

	/* Module handles, set by each module's start function. */
	struct cb_irc *irc;
	struct cb_producer *producer;
	struct cb_agg *agg;
	struct cb_cql *cql;
	struct cb_statsd *statsd;
	struct cb_http *http;
	struct cb_viewers *viewers; /* NULL: viewer counts off */

	/* Set by any thread that hits a fatal error; main then stops all. */
	atomic_bool stop_requested;
	/* Wakes main (an eventfd) when stop is requested. */
	int wake_fd;
};

/*
 * A module belongs to a role; `chatbattle run` starts only the modules of
 * the roles in the `roles` setting, so stages can run in separate instances.
 * A module: start creates its state and thread(s) and returns 0, or a
 * negative cb_err with the reason in errstr; stop asks its threads to finish
 * (after draining what they own) and joins them, then frees the state.
 * stop is called only for modules whose start succeeded.
 */
struct cb_module {
	const char *name;
	const char *role; /* "ingest", "aggregate" or "serve" (setting roles) */
	int (*start)(struct cb_app *app, char *errstr, size_t errstr_size);
	void (*stop)(struct cb_app *app);
};

/* The modules of `chatbattle run`, in start order, NULL-terminated. */
extern const struct cb_module cb_app_modules[];

struct cb_irc_cmd;

/*
 * Any thread: queues IRC commands (JOIN/PART/SET) for the irc thread, all in
 * one ring commit.  The ring has one producer side, so callers are
 * serialized by a mutex here (commands are rare: never on a hot path).
 * Returns 0, or CB_E_FULL when the command ring lacks space.
 */
int cb_app_irc_command(struct cb_app *app, const struct cb_irc_cmd *cmds,
		       size_t n);

/* Any thread: ask main to stop everything (fatal error, or the last input
 * is done).  reason is logged once. */
void cb_app_request_stop(struct cb_app *app, const char *reason);

#endif
