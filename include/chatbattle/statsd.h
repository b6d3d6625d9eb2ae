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

/* Main thread: creates app->cache and the consumer, starts the thread.
 * Returns 0 or a negative cb_err with the reason in errstr. */
int cb_statsd_start(struct cb_app *app, char *errstr, size_t errstr_size);

/* Main thread: stops and joins the thread, frees the consumer and the
 * cache (the HTTP threads have stopped by then). */
void cb_statsd_stop(struct cb_app *app);

#endif
