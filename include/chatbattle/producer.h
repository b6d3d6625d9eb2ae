/*
 * producer.h - the producer thread (module "producer", src/producer.c): pops
 * the irc thread's records (record.h, struct cb_out_hdr) from app->irc_out
 * in batches and produces them with an idempotent librdkafka producer:
 * CB_OUT_CHAT and CB_OUT_EVENT to topic_messages, CB_OUT_DLQ to topic_dlq,
 * keyed by channel.  docs/ingest.md explains the settings.
 *
 * Back-pressure: when librdkafka's queue is full the thread polls for
 * delivery reports and retries the same record; it does not release ring
 * space meanwhile, so the ring fills and the irc thread stops reading.
 * Nothing is dropped: message.timeout.ms=0 retries until Kafka accepts.
 */
#ifndef CHATBATTLE_PRODUCER_H
#define CHATBATTLE_PRODUCER_H

#include <stddef.h>

struct cb_app;
struct cb_config;
struct rd_kafka_conf_s; /* rd_kafka_conf_t */

/* Module entry points for cb_app_modules[] (app.h).  start creates the
 * Kafka producer (CB_E_CONFIG for a bad kafka_opt) and the thread; stop
 * drains the ring, flushes with a deadline (producer_flush_timeout_ms) and
 * reports what was not delivered. */
int cb_producer_start(struct cb_app *app, char *errstr, size_t errstr_size);
void cb_producer_stop(struct cb_app *app);

/* The producer's Kafka configuration (cb_kafka_conf_build with the
 * producer's table: docs/ingest.md), without callbacks; exposed so a test
 * can read back what the client gets.  The caller owns *out. */
int cb_producer_kafka_conf(const struct cb_config *cfg,
			   struct rd_kafka_conf_s **out, char *errstr,
			   size_t errstr_size);

#endif
