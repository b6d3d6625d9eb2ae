/*
 * agg.h - the aggregator module (src/agg.c, role "aggregate"): consumes
 * `topic_messages` in the consumer group, hands every chat message to the
 * Cassandra writer (ring app->rows, acknowledged on app->acks), counts the
 * acknowledged records into windows (window.h) and publishes ChannelStats to
 * `topic_stats` in Kafka transactions that also commit the input offsets,
 * every commit_interval_ms.  docs/aggregation.md describes the design.
 *
 * It owns one thread and its two librdkafka clients.  It needs the
 * Cassandra writer (module cql) to run in the same process: starting
 * without it is an error, never silent data loss.
 */
#ifndef CHATBATTLE_AGG_H
#define CHATBATTLE_AGG_H

#include <stddef.h>

struct cb_app;
struct cb_config;
struct rd_kafka_conf_s; /* rd_kafka_conf_t */

/*
 * Main thread: checks the settings and topics (both exist, same partition
 * count), creates the transactional producer (init_transactions: this
 * fences an older run of the same instance) and the consumer, and starts the
 * thread.  Returns 0, or a negative cb_err with the reason in errstr.
 */
int cb_agg_start(struct cb_app *app, char *errstr, size_t errstr_size);

/*
 * Main thread: stops consuming, waits (a bounded time) for the writer to
 * acknowledge what is pending, commits a last transaction, leaves the group
 * and frees everything.  The cql module must still be running.
 */
void cb_agg_stop(struct cb_app *app);

/* The aggregator's three Kafka clients. */
enum cb_agg_client {
	CB_AGG_CONSUMER, /* topic_messages, in the consumer group */
	CB_AGG_PRODUCER, /* transactional, to topic_stats */
	CB_AGG_RESTORE   /* reads topic_stats back at an assignment */
};

/* The Kafka configuration of one of them (cb_kafka_conf_build with its
 * table: docs/aggregation.md), without callbacks; exposed so a test can
 * read back what each client gets.  The caller owns *out. */
int cb_agg_kafka_conf(const struct cb_config *cfg, enum cb_agg_client which,
		      struct rd_kafka_conf_s **out, char *errstr,
		      size_t errstr_size);

#endif
