/*
 * statsd.h - the stats thread (src/statsd.c, role "serve"): a read_committed
 * consumer of `topic_stats` that fills the stats cache (stats_cache.h) the
 * HTTP threads serve.  It reads every partition from the start, so a
 * restart warms the cache from the compacted topic, and reports the cache
 * ready (CB_DEP_CACHE up) once it has caught up with the end of each
 * partition as it was at start.
 */
#ifndef CHATBATTLE_STATSD_H
#define CHATBATTLE_STATSD_H

#include <stddef.h>

struct cb_app;
struct cb_config;
struct rd_kafka_conf_s; /* rd_kafka_conf_t */

/* Main thread: creates app->cache and the consumer, starts the thread.
 * Returns 0 or a negative cb_err with the reason in errstr. */
int cb_statsd_start(struct cb_app *app, char *errstr, size_t errstr_size);

/* Main thread: stops and joins the thread, frees the consumer and the
 * cache (the HTTP threads have stopped by then). */
void cb_statsd_stop(struct cb_app *app);

/* The stats reader's Kafka configuration (cb_kafka_conf_build with its
 * table: docs/aggregation.md), without callbacks; exposed so a test can
 * read back what the client gets.  The caller owns *out. */
int cb_statsd_kafka_conf(const struct cb_config *cfg,
			 struct rd_kafka_conf_s **out, char *errstr,
			 size_t errstr_size);

#endif
