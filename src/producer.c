/*
 * producer.c - the producer thread (module "producer", role "ingest"; see
 * producer.h and docs/ingest.md).
 *
 * One pthread owns one idempotent librdkafka producer.  It waits on the
 * irc_out ring with a short timeout (so it also serves librdkafka's
 * delivery reports when idle), reads up to BATCH records, hands each to
 * rd_kafka_produce() with RD_KAFKA_MSG_F_COPY, and releases the ring space
 * once per batch.  Delivery reports, errors and statistics callbacks run
 * in this thread too (inside rd_kafka_poll), so its state needs no locks.
 *
 * Why these librdkafka settings:
 *   enable.idempotence=true  no duplicates and no reordering per partition
 *                            when librdkafka retries after a broker failure
 *                            (implies acks=all);
 *   partitioner=murmur2_random  the Java client's partitioner: Java, Node
 *                            and chatbattle put a channel on one partition;
 *   compression.codec=lz4    chat JSON compresses ~4x for little CPU;
 *   linger.ms, queue.buffering.max.kbytes  from the settings: batching, and
 *                            a hard memory bound for what waits for Kafka;
 *   message.timeout.ms=0     retry until delivered: a record is never
 *                            expired by time, so a broker restart or an
 *                            outage loses nothing; the bounded queue turns
 *                            an outage into back-pressure instead.
 * Any of them can be overridden with --kafka-opt (a warning says so).
 */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chatbattle/app.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/kafka.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/producer.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"
#include "chatbattle/thread.h"

/* Records per ring batch: large enough to amortize the release, small
 * enough that a stalled batch holds little of the ring. */
#define BATCH 1024
#define WAIT_MS 50
#define ERR_LOG_EVERY_MS 10000

struct cb_producer {
	struct cb_app *app;
	const struct cb_config *cfg;
	struct cb_ring *ring;
	rd_kafka_t *rk;
	rd_kafka_topic_t *t_msgs, *t_dlq;
	struct cb_thread thread;
	atomic_bool stopping;

	/* producer thread only */
	uint64_t produced, delivered, failed, queue_full, dlq;
	uint64_t health_seen; /* delivered at the last health check */
	uint64_t given_up;    /* records read but not produced at stop */
	struct cb_kafka_health health;
	int64_t err_log_ms;
	int64_t stop_deadline_ms; /* set once stopping is seen */
	rd_kafka_resp_err_t err_last;
	uint64_t err_suppressed;
	bool fatal;
};

/* Logs a delivery/produce failure, at most once per ERR_LOG_EVERY_MS per
 * error code (an outage must not flood the log), with the count. */
static void log_failure(struct cb_producer *p, rd_kafka_resp_err_t err,
			const char *topic, const char *what)
{
	int64_t now = cb_mono_ms();

	if (err == p->err_last && now - p->err_log_ms < ERR_LOG_EVERY_MS) {
		p->err_suppressed++;
		return;
	}
	cb_error("producer", "%s to %s failed: %s%s", what, topic,
		 rd_kafka_err2str(err),
		 p->err_suppressed ? " (and earlier failures not logged)" : "");
	p->err_last = err;
	p->err_log_ms = now;
	p->err_suppressed = 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct cb_producer *p = opaque;
	int64_t lat = rd_kafka_message_latency(m);

	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		p->delivered++;
		cb_metric_add(CB_M_kafka_delivered_total, 1);
		if (lat >= 0)
			cb_metric_observe_us(CB_M_kafka_delivery_latency_us,
					     (uint64_t)lat);
		return;
	}
	p->failed++;
	cb_metric_add(CB_M_kafka_delivery_errors_total, 1);
	log_failure(p, m->err, rd_kafka_topic_name(m->rkt), "delivery");
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason,
		     void *opaque)
{
	struct cb_producer *p = opaque;
	char why[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_resp_err_t orig =
			rd_kafka_fatal_error(rk, why, sizeof(why));

		cb_error("producer", "fatal Kafka producer error: %s: %s",
			 rd_kafka_err2name(orig), why);
		p->fatal = true;
		cb_health_set(CB_DEP_KAFKA, CB_DEP_DOWN);
		cb_app_request_stop(p->app, "fatal Kafka producer error");
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
		cb_health_set(CB_DEP_KAFKA, CB_DEP_DOWN);
		cb_warn("producer", "all Kafka brokers are down: %s", reason);
		return;
	}
	cb_debug("producer", "Kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/* 0 while running; once a stop is requested, the flush deadline. */
static int64_t stop_deadline(struct cb_producer *p)
{
	if (p->stop_deadline_ms == 0 &&
	    atomic_load_explicit(&p->stopping, memory_order_acquire))
		p->stop_deadline_ms =
			cb_mono_ms() + p->cfg->producer_flush_timeout_ms;
	return p->stop_deadline_ms;
}

/* Health: UP after deliveries; when none came for a while (idle, or Kafka
 * down and the queue full), a metadata request tells (kafka.h).  Called
 * from the back-pressure wait too: a late "up" (deliveries acknowledged
 * just before the outage but counted after the all-brokers-down event, or
 * another client's) must not stand for the whole outage. */
static void check_health(struct cb_producer *p)
{
	if (p->delivered != p->health_seen) {
		p->health_seen = p->delivered;
		cb_kafka_health_seen(&p->health);
		return;
	}
	cb_kafka_health_check(&p->health, p->rk, p->t_msgs);
}

/* Hands one record to librdkafka, waiting while its queue is full.
 * Returns false when stopping made it give up (record not produced). */
static bool produce_one(struct cb_producer *p, const uint8_t *rec,
			uint32_t len)
{
	struct cb_out_hdr h;
	const char *key, *val;
	rd_kafka_topic_t *t;

	memcpy(&h, rec, sizeof(h));
	if (sizeof(h) + h.key_len + (size_t)h.value_len > len) {
		cb_error("producer", "dropping a malformed ring record");
		p->failed++;
		cb_metric_add(CB_M_kafka_delivery_errors_total, 1);
		return true;
	}
	key = (const char *)rec + sizeof(h);
	val = key + h.key_len;
	t = h.kind == CB_OUT_DLQ ? p->t_dlq : p->t_msgs;
	for (;;) {
		rd_kafka_resp_err_t err;

		if (rd_kafka_produce(t, RD_KAFKA_PARTITION_UA,
				     RD_KAFKA_MSG_F_COPY, (void *)val,
				     h.value_len, h.key_len ? key : NULL,
				     h.key_len, NULL) == 0) {
			p->produced++;
			if (h.kind == CB_OUT_DLQ) {
				p->dlq++;
				cb_metric_add(CB_M_dlq_records_total, 1);
			}
			return true;
		}
		err = rd_kafka_last_error();
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			/* permanent (e.g. a record larger than
			 * message.max.bytes): counted and logged */
			p->failed++;
			cb_metric_add(CB_M_kafka_delivery_errors_total, 1);
			log_failure(p, err, rd_kafka_topic_name(t), "produce");
			return true;
		}
		/* Back-pressure: wait for deliveries to free the queue. */
		p->queue_full++;
		cb_metric_add(CB_M_kafka_queue_full_total, 1);
		rd_kafka_poll(p->rk, 100);
		if (!atomic_load_explicit(&p->stopping, memory_order_acquire))
			check_health(p);
		if (stop_deadline(p) != 0 && cb_mono_ms() >= stop_deadline(p))
			return false;
		if (p->fatal)
			return false;
	}
}

/* One batch: returns the number of records read (0: the ring was empty),
 * or -1 when it gave up (stopping, deadline passed). */
static int produce_batch(struct cb_producer *p)
{
	const void *rec;
	uint32_t len;
	int n = 0;
	uint64_t before = p->produced;

	while (n < BATCH && (rec = cb_ring_read(p->ring, &len)) != NULL) {
		if (!produce_one(p, rec, len)) {
			p->given_up++;
			cb_metric_add(CB_M_kafka_produced_total,
				      p->produced - before);
			return -1;
		}
		n++;
	}
	cb_ring_release(p->ring);
	cb_metric_add(CB_M_kafka_produced_total, p->produced - before);
	return n;
}

/*
 * Waits up to timeout_ms for records.  Parks on the ring's eventfd at once
 * instead of cb_ring_wait()'s spin: this thread is faster than the irc
 * thread, so it finds the ring empty often, and on a small machine the
 * spinning would take CPU from the irc thread and Kafka.  The irc thread
 * then pays one eventfd write per commit (per read batch), not per record.
 */
static bool wait_records(struct cb_producer *p, int timeout_ms)
{
	struct pollfd pfd = {.fd = cb_ring_consumer_fd(p->ring),
			     .events = POLLIN};

	if (!cb_ring_arm_consumer(p->ring))
		return true;
	if (poll(&pfd, 1, timeout_ms) > 0)
		cb_ring_drain_fd(pfd.fd);
	return !cb_ring_arm_consumer(p->ring);
}

static void *producer_main(void *arg)
{
	struct cb_producer *p = arg;
	const struct cb_config *cfg = p->cfg;
	int64_t deadline, left;
	uint64_t undelivered_ring;
	int outq;

	while (!atomic_load_explicit(&p->stopping, memory_order_acquire) &&
	       !p->fatal) {
		if (wait_records(p, WAIT_MS) && produce_batch(p) < 0)
			break;
		rd_kafka_poll(p->rk, 0);
		check_health(p);
	}

	/* Stop: the irc thread has stopped; drain the ring, then flush. */
	atomic_store_explicit(&p->stopping, true, memory_order_release);
	deadline = stop_deadline(p);
	while (!p->fatal && p->given_up == 0) {
		int n = produce_batch(p);

		rd_kafka_poll(p->rk, 0);
		if (n <= 0)
			break;
	}
	undelivered_ring = p->given_up;
	{
		const void *rec;
		uint32_t len;

		while ((rec = cb_ring_read(p->ring, &len)) != NULL)
			undelivered_ring++;
		cb_ring_release(p->ring);
	}
	left = deadline - cb_mono_ms();
	rd_kafka_flush(p->rk, left > 0 ? (int)left : 0);
	outq = rd_kafka_outq_len(p->rk);
	if (outq > 0 || undelivered_ring > 0)
		cb_error("producer",
			 "stopping with %d record(s) not acknowledged by Kafka "
			 "and %" PRIu64 " not produced after %" PRId64 " ms",
			 outq, undelivered_ring,
			 (int64_t)cfg->producer_flush_timeout_ms);
	cb_info("producer",
		"stopped: %" PRIu64 " produced, %" PRIu64 " delivered, %" PRIu64
		" failed, %" PRIu64 " dead letters",
		p->produced, p->delivered, p->failed, p->dlq);
	return NULL;
}

int cb_producer_kafka_conf(const struct cb_config *cfg, rd_kafka_conf_t **out,
			   char *errstr, size_t errstr_size)
{
	char linger[32], queue_kb[32];
	/* See docs/ingest.md for why each value. */
	const struct cb_kafka_prop props[] = {
		{"enable.idempotence", "true", 0},
		{"partitioner", "murmur2_random", 0},
		{"compression.codec", "lz4", 1},
		{"linger.ms", linger, 1},
		{"queue.buffering.max.kbytes", queue_kb, 1},
		/* the byte limit above is the one that binds */
		{"queue.buffering.max.messages", "10000000", 1},
		{"message.timeout.ms", "0", 1},
	};

	snprintf(linger, sizeof(linger), "%" PRId64, cfg->producer_linger_ms);
	snprintf(queue_kb, sizeof(queue_kb), "%" PRId64,
		 cfg->producer_queue_kbytes);
	return cb_kafka_conf_build(cfg, "producer", props,
				   sizeof(props) / sizeof(props[0]), out,
				   errstr, errstr_size);
}

static void producer_free(struct cb_producer *p)
{
	if (p == NULL)
		return;
	if (p->t_msgs != NULL)
		rd_kafka_topic_destroy(p->t_msgs);
	if (p->t_dlq != NULL)
		rd_kafka_topic_destroy(p->t_dlq);
	if (p->rk != NULL)
		rd_kafka_destroy(p->rk);
	free(p);
}

int cb_producer_start(struct cb_app *app, char *errstr, size_t errstr_size)
{
	const struct cb_config *cfg = app->cfg;
	struct cb_producer *p = calloc(1, sizeof(*p));
	rd_kafka_conf_t *conf = NULL;
	char why[512];
	int err;

	if (p == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	p->app = app;
	p->cfg = cfg;
	p->ring = app->irc_out;
	err = cb_producer_kafka_conf(cfg, &conf, errstr, errstr_size);
	if (err != 0)
		goto out;
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_opaque(conf, p);
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (p->rk == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				"cannot create the Kafka producer: %s", why);
		goto out;
	}
	conf = NULL; /* owned by rk now */
	p->t_msgs = rd_kafka_topic_new(p->rk, cfg->topic_messages, NULL);
	p->t_dlq = rd_kafka_topic_new(p->rk, cfg->topic_dlq, NULL);
	if (p->t_msgs == NULL || p->t_dlq == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_KAFKA,
				"cannot create topic handles: %s",
				rd_kafka_err2str(rd_kafka_last_error()));
		goto out;
	}
	cb_kafka_health_start(&p->health);
	err = cb_thread_start(&p->thread, producer_main, p, "producer", errstr,
			      errstr_size);
	if (err != 0)
		goto out;
	cb_info("producer", "producing to %s (dead letters to %s) via %s",
		cfg->topic_messages, cfg->topic_dlq, cfg->kafka_brokers);
	app->producer = p;
	p = NULL;
out:
	if (conf != NULL)
		rd_kafka_conf_destroy(conf);
	producer_free(p);
	return err;
}

void cb_producer_stop(struct cb_app *app)
{
	struct cb_producer *p = app->producer;

	if (p == NULL)
		return;
	atomic_store_explicit(&p->stopping, true, memory_order_release);
	cb_ring_kick(p->ring);
	cb_thread_join(&p->thread);
	app->producer = NULL;
	producer_free(p);
}
