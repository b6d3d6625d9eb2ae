/*
 * bench_agg.c - aggregator throughput: consume -> row to the (fake,
 * instantly acknowledging) Cassandra writer -> apply on ack -> transactional
 * ChannelStats with offsets every commit interval, against librdkafka's
 * in-process mock cluster (so the figure is chatbattle's side plus
 * librdkafka, no network or broker disk).  Target: >= 10,000 messages/s
 * (the design load), with the process RSS it took.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chatbattle/agg.h"
#include "chatbattle/app.h"
#include "chatbattle/config.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"

#define N 30000

static atomic_bool stop;

/* The measuring thread checks the counters every millisecond without
 * taking a core from the threads it measures. */
static void nap(void)
{
	struct timespec ts = {0, 1000000};

	nanosleep(&ts, NULL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Acknowledges every row at once (the writer's work is not measured). */
static void *writer(void *arg)
{
	struct cb_app *app = arg;

	while (!atomic_load(&stop)) {
		struct cb_ack ack = {-1, 0, -1};
		const void *rec;
		uint32_t len;

		if (cb_ring_wait(app->rows, 20) != 0)
			continue;
		while ((rec = cb_ring_read(app->rows, &len)) != NULL) {
			struct cb_row_hdr h;

			memcpy(&h, rec, sizeof(h));
			if (ack.partition >= 0 &&
			    (ack.partition != h.partition ||
			     ack.generation != h.generation)) {
				while (cb_ring_push(app->acks, &ack,
						    sizeof(ack)) != 0)
					;
			}
			ack.partition = h.partition;
			ack.generation = h.generation;
			ack.offset = h.offset;
		}
		cb_ring_release(app->rows);
		if (ack.partition >= 0)
			while (cb_ring_push(app->acks, &ack, sizeof(ack)) != 0 &&
			       !atomic_load(&stop))
				;
	}
	return NULL;
}

int main(void)
{
	char errstr[512], brokers[256], v[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *mk, *p;
	rd_kafka_mock_cluster_t *mc;
	struct cb_config cfg;
	struct cb_app app = {.wake_fd = -1};
	pthread_t wt;
	int fake;
	double t0, t1;
	uint64_t start_tx;

	cb_log_init(getenv("CB_BENCH_VERBOSE") ? CB_LOG_DEBUG : CB_LOG_WARN);
	rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
	mk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	mc = rd_kafka_mock_cluster_new(mk, 1);
	snprintf(brokers, sizeof(brokers), "%s",
		 rd_kafka_mock_cluster_bootstraps(mc));
	rd_kafka_mock_topic_create(mc, "msgs", 3, 1);
	rd_kafka_mock_topic_create(mc, "stats", 3, 1);
	rd_kafka_mock_topic_create(mc, "dlq", 1, 1);

	conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", brokers, NULL, 0);
	rd_kafka_conf_set(conf, "linger.ms", "20", NULL, 0);
	rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
	p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	for (int i = 0; i < N; i++) {
		char ch[16];
		int n;

		snprintf(ch, sizeof(ch), "chan%d", i % 90);
		n = snprintf(v, sizeof(v),
			     "{\"channel_id\":\"%s\",\"user_id\":\"%d\","
			     "\"username\":\"user%d\",\"message\":\"hello "
			     "world %d\",\"timestamp\":%lld,\"emotes\":"
			     "[\"Kappa\"],\"type\":\"message\","
			     "\"received_at\":%lld}",
			     ch, i % 3000, i % 3000, i,
			     1700000400000LL + i / 10, 1700000400000LL + i / 10);
		while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC("msgs"),
					 RD_KAFKA_V_KEY(ch, strlen(ch)),
					 RD_KAFKA_V_VALUE(v, (size_t)n),
					 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
					 RD_KAFKA_V_END) != 0)
			rd_kafka_poll(p, 10);
	}
	rd_kafka_flush(p, 30000);
	for (int part = 0; part < 3; part++) {
		int64_t lo = 0, hi = 0;

		/* The mock broker keeps a bounded log: all must be there. */
		rd_kafka_query_watermark_offsets(p, "msgs", part, &lo, &hi,
						 10000);
		if (lo != 0) {
			printf("aggregator:  the mock broker dropped the start "
			       "of partition %d; lower N\n",
			       part);
			return 1;
		}
	}
	rd_kafka_destroy(p);

	cb_config_init(&cfg, errstr, sizeof(errstr));
	cb_config_set(&cfg, CB_OPT_kafka_brokers, brokers, CB_SRC_FLAG, "b",
		      false, errstr, sizeof(errstr));
	cb_config_set(&cfg, CB_OPT_topic_messages, "msgs", CB_SRC_FLAG, "b",
		      false, errstr, sizeof(errstr));
	cb_config_set(&cfg, CB_OPT_topic_stats, "stats", CB_SRC_FLAG, "b",
		      false, errstr, sizeof(errstr));
	cb_config_set(&cfg, CB_OPT_topic_dlq, "dlq", CB_SRC_FLAG, "b", false,
		      errstr, sizeof(errstr));
	cb_config_set(&cfg, CB_OPT_kafka_opt, "log_level=3", CB_SRC_FLAG, "b",
		      false, errstr, sizeof(errstr));
	app.cfg = &cfg;
	app.cql = (struct cb_cql *)&fake;
	cb_ring_new(&app.rows, (getenv("BIGRING") ? 256u : 4u) << 20, "rows", errstr, sizeof(errstr));
	cb_ring_new(&app.acks, 256u << 10, "acks", errstr, sizeof(errstr));
	pthread_create(&wt, NULL, writer, &app);
	if (cb_agg_start(&app, errstr, sizeof(errstr)) != 0) {
		fprintf(stderr, "bench_agg: %s\n", errstr);
		return 1;
	}
	/* Timing starts with the first counted record (after the group
	 * join and the recovery) and ends with the transaction after the
	 * last one. */
	t0 = now_s();
	while (cb_metric_get(CB_M_agg_counted_total) == 0 && now_s() < t0 + 60)
		nap();
	t0 = now_s();
	while (cb_metric_get(CB_M_agg_counted_total) < N && now_s() < t0 + 120)
		nap();
	start_tx = cb_metric_get(CB_M_agg_transactions_total);
	while (cb_metric_get(CB_M_agg_transactions_total) < start_tx + 1 &&
	       now_s() < t0 + 130)
		nap();
	t1 = now_s();
	if (cb_metric_get(CB_M_agg_counted_total) < N) {
		printf("aggregator:  counted only %llu of %d messages in time "
		       "(consumed %llu, late %llu, bad %llu; target >= 10000 "
		       "messages/s)\n",
		       (unsigned long long)cb_metric_get(CB_M_agg_counted_total),
		       N,
		       (unsigned long long)cb_metric_get(CB_M_agg_consumed_total),
		       (unsigned long long)cb_metric_get(
			       CB_M_agg_late_records_total),
		       (unsigned long long)cb_metric_get(
			       CB_M_agg_bad_records_total));
		return 1;
	}
	printf("aggregator:  %8.0f messages/s consumed, counted and "
	       "committed   (target >= 10000; mock broker, %d messages, "
	       "%llu transactions)\n",
	       N / (t1 - t0), N,
	       (unsigned long long)cb_metric_get(CB_M_agg_transactions_total));
	printf("             RSS %.1f MiB, peak %.1f MiB (the whole process "
	       "incl. the mock broker holding the topics; target <= 64)\n",
	       cb_process_rss_bytes() / 1048576.0,
	       cb_process_peak_rss_bytes() / 1048576.0);
	cb_agg_stop(&app);
	atomic_store(&stop, true);
	pthread_join(wt, NULL);
	cb_ring_free(app.rows);
	cb_ring_free(app.acks);
	cb_config_release(&cfg);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(mk);
	return 0;
}
