/*
 * test_agg.c - the aggregator module end to end against librdkafka's
 * in-process mock cluster, with a fake Cassandra writer thread that
 * acknowledges rows (the real one is the cql module's; unit tests only).
 *
 * Ground truth is what the test produces.  Checked: channel-stats (the last
 * record per channel and window) equals the truth exactly; nothing is
 * counted before the writer acknowledges its row; invalid records go to
 * the dead-letter topic; starting without a writer, or with topics that
 * are not co-partitioned, is refused.  Every seek runs against librdkafka
 * 2.0.2's microsecond timeout and a slow broker thread (kafka_fault.h):
 * none may give up, and the aggregator must not stop.
 */
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "chatbattle/agg.h"
#include "chatbattle/app.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"
#include "kafka_fault.h"
#include "kafka_mock.h"
#include "test.h"

#define NPART 3
#define NCH 4
#define NWIN 3
#define WIN_MS 600000LL
#define BASE_MS 1699999800000LL /* a multiple of 600000 */
#define BURST_SEQ0 1000000
/* Kafka API keys (librdkafka's RD_KAFKAP_* are not in its public headers) */
#define API_ADD_PARTITIONS_TO_TXN 24
#define API_TXN_OFFSET_COMMIT 28

static struct t_mock mk;
static const char *chans[NCH] = {"alpha", "bravo", "charlie", "delta"};
static int64_t truth[NCH][NWIN];
/* The mood truth: the sum of the texts' scores (test_sentiment.c pins
 * them) per channel and window, and what the last read found.  No numbers
 * in the texts: VADER's lexicon scores some ("143", "187", "1337"). */
static int64_t truth_mood[NCH][NWIN], got_mood[NCH][NWIN];
static const struct {
	const char *text;
	int score;
} texts[] = {{"hello", 0}, {"PogChamp", 542}, {"NotLikeThis", -542},
	     {"PogChamp PogChamp", 791}};
static int64_t produced_total;

/* ---- the fake writer: acknowledges every row, optionally holding them ---- */

struct writer {
	struct cb_app *app;
	pthread_t t;
	atomic_bool stop;
	atomic_bool hold;     /* do not acknowledge while set */
	atomic_bool holding;  /* the writer has seen hold */
	atomic_long rows;
	atomic_long max_offset[NPART];
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	while (!atomic_load(&w->stop)) {
		struct cb_ack acks[NPART * 4];
		int nacks = 0;
		const void *rec;
		uint32_t len;

		if (atomic_load(&w->hold)) {
			atomic_store(&w->holding, true);
			cb_ring_wait(w->app->rows, 5);
			continue;
		}
		atomic_store(&w->holding, false);
		if (cb_ring_wait(w->app->rows, 20) != 0)
			continue;
		while (nacks < NPART * 4 &&
		       (rec = cb_ring_read(w->app->rows, &len)) != NULL) {
			struct cb_row_hdr h;
			int k;

			memcpy(&h, rec, sizeof(h));
			atomic_fetch_add(&w->rows, 1);
			for (k = 0; k < nacks; k++)
				if (acks[k].partition == h.partition &&
				    acks[k].generation == h.generation)
					break;
			if (k == nacks) {
				acks[nacks].partition = h.partition;
				acks[nacks].generation = h.generation;
				nacks++;
			}
			acks[k].offset = h.offset;
			if (h.partition >= 0 && h.partition < NPART &&
			    h.offset > atomic_load(&w->max_offset[h.partition]))
				atomic_store(&w->max_offset[h.partition],
					     h.offset);
		}
		cb_ring_release(w->app->rows);
		for (int k = 0; k < nacks; k++)
			while (cb_ring_push(w->app->acks, &acks[k],
					    sizeof(acks[k])) != 0)
				if (atomic_load(&w->stop))
					return NULL;
	}
	return NULL;
}

/* ---- set-up ---- */

static int mock_up(void)
{
	if (t_mock_up(&mk, 3) != 0)
		return -1;
	rd_kafka_mock_topic_create(mk.cluster, "msgs", NPART, 1);
	rd_kafka_mock_topic_create(mk.cluster, "stats", NPART, 1);
	rd_kafka_mock_topic_create(mk.cluster, "dlq", 1, 1);
	rd_kafka_mock_topic_create(mk.cluster, "stats2", NPART + 1, 1);
	rd_kafka_mock_topic_create(mk.cluster, "fstats", NPART, 1);
	rd_kafka_mock_topic_create(mk.cluster, "fstats2", NPART, 1);
	rd_kafka_mock_topic_create(mk.cluster, "wide", CB_PARTITIONS_MAX + 1,
				   1);
	rd_kafka_mock_topic_create(mk.cluster, "wide-stats",
				   CB_PARTITIONS_MAX + 1, 1);
	return 0;
}

static int config(struct cb_config *cfg, const char *group,
		  const char *instance, const char *stats_topic)
{
	const struct t_setting set[] = {
		{CB_OPT_kafka_brokers, mk.brokers},
		{CB_OPT_topic_messages, "msgs"},
		{CB_OPT_topic_stats, stats_topic},
		{CB_OPT_topic_dlq, "dlq"},
		{CB_OPT_kafka_group_id, group},
		{CB_OPT_instance_id, instance},
		{CB_OPT_commit_interval_ms, "50"},
		{CB_OPT_window_grace, "60"},
		{CB_OPT_kafka_opt, "log_level=3"},
	};

	return t_config(cfg, set, sizeof(set) / sizeof(set[0]));
}

/* Produces n chat messages (plus one event and one bad record per 100),
 * spread over the channels and windows, updating the truth. */
static int produce_batch(int n, int seq0)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *p;

	rd_kafka_conf_set(conf, "bootstrap.servers", mk.brokers, NULL, 0);
	rd_kafka_conf_set(conf, "partitioner", "murmur2_random", NULL, 0);
	rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
	p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (p == NULL)
		return -1;
	for (int i = 0; i < n; i++) {
		/* Time moves 400 ms per record, up to 4 s out of order (the
		 * grace is 60 s): nothing is late, windows fill in turn. */
		int seq = seq0 + i, ch = seq % NCH;
		/* (a burst, from BURST_SEQ0 on, all falls in the last window) */
		int64_t ts = (seq >= BURST_SEQ0
				      ? BASE_MS + 2 * WIN_MS + 550000
				      : BASE_MS + 10000 + (int64_t)seq * 400) -
			     (seq % 5) * 1000;
		int w = (int)((ts - BASE_MS) / WIN_MS);
		char v[512];
		int len;

		if (seq % 100 == 99) {
			len = snprintf(v, sizeof(v), "{\"channel_id\":\"%s\","
						     "\"timestamp\":",
				       chans[ch]);
		} else if (seq % 100 == 98) {
			len = snprintf(v, sizeof(v),
				       "{\"channel_id\":\"%s\",\"type\":\"sub\","
				       "\"username\":\"s\",\"message\":\"x\","
				       "\"timestamp\":%lld}",
				       chans[ch], (long long)ts);
		} else {
			int tx = (seq / NCH) % 4;

			len = snprintf(v, sizeof(v),
				       "{\"channel_id\":\"%s\",\"user_id\":\"%d\","
				       "\"username\":\"user%d\",\"message\":"
				       "\"%s\",\"timestamp\":%lld,"
				       "\"emotes\":[\"Kappa\"],\"message_id\":"
				       "\"00000000-0000-4000-8000-%012d\","
				       "\"type\":\"message\",\"received_at\":%lld}",
				       chans[ch], seq % 50, seq % 50,
				       texts[tx].text, (long long)ts, seq,
				       (long long)ts + 5);
			truth[ch][w]++;
			truth_mood[ch][w] += texts[tx].score;
			produced_total++;
		}
		while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC("msgs"),
					 RD_KAFKA_V_KEY(chans[ch],
							strlen(chans[ch])),
					 RD_KAFKA_V_VALUE(v, (size_t)len),
					 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
					 RD_KAFKA_V_END) ==
		       RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(p, 10);
	}
	rd_kafka_flush(p, 10000);
	rd_kafka_destroy(p);
	return 0;
}

/* A consumer of partitions 0..nparts-1 of topic from the start, reporting
 * the end of each partition. */
static rd_kafka_t *reader(const char *topic, int nparts, bool committed)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_t *c;

	rd_kafka_conf_set(conf, "bootstrap.servers", mk.brokers, NULL, 0);
	rd_kafka_conf_set(conf, "group.id", "test-reader", NULL, 0);
	rd_kafka_conf_set(conf, "isolation.level",
			  committed ? "read_committed" : "read_uncommitted",
			  NULL, 0);
	rd_kafka_conf_set(conf, "enable.partition.eof", "true", NULL, 0);
	rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
	c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (c == NULL)
		return NULL;
	rd_kafka_poll_set_consumer(c);
	l = rd_kafka_topic_partition_list_new(nparts);
	for (int p = 0; p < nparts; p++)
		rd_kafka_topic_partition_list_add(l, topic, p)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(c, l);
	rd_kafka_topic_partition_list_destroy(l);
	return c;
}

/* Reads a topic read_committed to its end: the last message_count per
 * (channel, window) into got; returns the records read. */
static long read_stats(const char *topic, int nparts, int64_t got[NCH][NWIN],
		       bool *all_have_state)
{
	rd_kafka_t *c;
	int left = nparts;
	bool eof[8] = {false};
	long n = 0;
	int64_t deadline = t_now_ms() + 20000;

	memset(got, 0, sizeof(int64_t) * NCH * NWIN);
	memset(got_mood, 0, sizeof(got_mood));
	*all_have_state = true;
	c = reader(topic, nparts, true);
	if (c == NULL)
		return -1;
	while (left > 0 && t_now_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
		json_t *doc;

		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (m->partition < 8 && !eof[m->partition]) {
				eof[m->partition] = true;
				left--;
			}
		}
		else if (!m->err &&
			 (doc = json_loadb(m->payload, m->len, 0, NULL))) {
			const char *ch = json_string_value(
				json_object_get(doc, "channel_id"));
			int64_t ws = json_integer_value(
				json_object_get(doc, "window_start"));

			n++;
			for (int k = 0; ch && k < NCH; k++) {
				int w = (int)((ws - BASE_MS) / WIN_MS);

				if (strcmp(ch, chans[k]) == 0 && w >= 0 &&
				    w < NWIN) {
					got[k][w] = json_integer_value(
						json_object_get(
							doc, "message_count"));
					got_mood[k][w] = json_integer_value(
						json_object_get(
							doc, "sentiment_sum"));
				}
			}
			json_decref(doc);
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	return left == 0 ? n : -1;
}

/* Waits until channel-stats equals the truth (or the deadline). */
static bool stats_match(const char *topic, int64_t ms)
{
	int64_t deadline = t_now_ms() + ms;
	int64_t got[NCH][NWIN];
	bool st;

	while (t_now_ms() < deadline) {
		if (read_stats(topic, NPART, got, &st) >= 0 &&
		    memcmp(got, truth, sizeof(got)) == 0 &&
		    memcmp(got_mood, truth_mood, sizeof(got_mood)) == 0)
			return true;
	}
	printf("# counted %llu, transactions %llu, aborts %llu, stats "
	       "emitted %llu, read %ld\n",
	       (unsigned long long)cb_metric_get(CB_M_agg_counted_total),
	       (unsigned long long)cb_metric_get(CB_M_agg_transactions_total),
	       (unsigned long long)cb_metric_get(
		       CB_M_agg_transaction_aborts_total),
	       (unsigned long long)cb_metric_get(CB_M_agg_stats_emitted_total),
	       read_stats(topic, NPART, got, &st));
	for (int k = 0; k < NCH; k++)
		for (int w = 0; w < NWIN; w++)
			if (got[k][w] != truth[k][w] ||
			    got_mood[k][w] != truth_mood[k][w])
				printf("# %s window %d: %lld (mood %lld), "
				       "truth %lld (mood %lld)\n",
				       chans[k], w, (long long)got[k][w],
				       (long long)got_mood[k][w],
				       (long long)truth[k][w],
				       (long long)truth_mood[k][w]);
	return false;
}

struct rig {
	struct cb_config cfg;
	struct cb_app app;
	struct writer w;
	int fake_cql;
};

static int rig_up_stats(struct rig *r, const char *group,
			const char *instance, uint32_t rows_bytes,
			const char *stats_topic)
{
	char errstr[512];

	memset(r, 0, sizeof(*r));
	if (config(&r->cfg, group, instance, stats_topic) != 0)
		return -1;
	r->app.cfg = &r->cfg;
	r->app.wake_fd = -1;
	if (cb_ring_new(&r->app.rows, rows_bytes, "rows", errstr,
			sizeof(errstr)) != 0 ||
	    cb_ring_new(&r->app.acks, 1 << 16, "acks", errstr,
			sizeof(errstr)) != 0)
		return -1;
	r->app.cql = (struct cb_cql *)&r->fake_cql;
	r->w.app = &r->app;
	pthread_create(&r->w.t, NULL, writer_main, &r->w);
	if (cb_agg_start(&r->app, errstr, sizeof(errstr)) != 0) {
		printf("# start: %s\n", errstr);
		return -1;
	}
	return 0;
}

static int rig_up_ring(struct rig *r, const char *group, const char *instance,
		       uint32_t rows_bytes)
{
	return rig_up_stats(r, group, instance, rows_bytes, "stats");
}

static void rig_down(struct rig *r)
{
	cb_agg_stop(&r->app);
	atomic_store(&r->w.stop, true);
	pthread_join(r->w.t, NULL);
	cb_ring_free(r->app.rows);
	cb_ring_free(r->app.acks);
	cb_config_release(&r->cfg);
}

/* ---- tests ---- */

static void test_refuses_to_start_without_writer(void)
{
	struct cb_config cfg;
	struct cb_app app = {0};
	char errstr[512];

	CHECK_INT(config(&cfg, "g0", "i0", "stats"), 0);
	app.cfg = &cfg;
	CHECK_INT(cb_agg_start(&app, errstr, sizeof(errstr)), CB_E_CONFIG);
	CHECK(strstr(errstr, "Cassandra writer") != NULL);
	cb_config_release(&cfg);
}

static void test_refuses_partition_mismatch(void)
{
	struct cb_config cfg;
	struct cb_app app = {0};
	char errstr[512];
	int fake;

	CHECK_INT(config(&cfg, "g0", "i0", "stats2"), 0);
	app.cfg = &cfg;
	app.cql = (struct cb_cql *)&fake;
	CHECK_INT(cb_ring_new(&app.rows, 1 << 16, "rows", errstr,
			      sizeof(errstr)),
		  0);
	CHECK_INT(cb_agg_start(&app, errstr, sizeof(errstr)), CB_E_CONFIG);
	CHECK(strstr(errstr, "co-partitioned") != NULL);
	cb_ring_free(app.rows);
	cb_config_release(&cfg);
}

/* Co-partitioned but wider than CB_PARTITIONS_MAX: refused, and the
 * reason names the limit (it used to say "must be equal" of two equal
 * counts). */
static void test_refuses_too_many_partitions(void)
{
	struct cb_config cfg;
	struct cb_app app = {0};
	char errstr[512], want[64];
	int fake;

	CHECK_INT(config(&cfg, "g0", "i0", "wide-stats"), 0);
	CHECK_INT(cb_config_set(&cfg, CB_OPT_topic_messages, "wide",
				CB_SRC_FLAG, "test", false, errstr,
				sizeof(errstr)),
		  0);
	app.cfg = &cfg;
	app.cql = (struct cb_cql *)&fake;
	CHECK_INT(cb_ring_new(&app.rows, 1 << 16, "rows", errstr,
			      sizeof(errstr)),
		  0);
	CHECK_INT(cb_agg_start(&app, errstr, sizeof(errstr)), CB_E_CONFIG);
	printf("# %s\n", errstr);
	snprintf(want, sizeof(want), "at most %d partitions",
		 CB_PARTITIONS_MAX);
	CHECK(strstr(errstr, want) != NULL);
	CHECK(strstr(errstr, "wide has 1025 partitions") != NULL);
	cb_ring_free(app.rows);
	cb_config_release(&cfg);
}

/* Reads the dead-letter topic: records with stage "aggregator". */
static int count_dead_letters(void)
{
	rd_kafka_t *c = reader("dlq", 1, false);
	int n = 0;
	int64_t deadline = t_now_ms() + 10000;

	if (c == NULL)
		return -1;
	while (t_now_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
		json_t *doc;

		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			rd_kafka_message_destroy(m);
			break;
		}
		if (!m->err &&
		    (doc = json_loadb(m->payload, m->len, 0, NULL)) != NULL) {
			const char *stage = json_string_value(
				json_object_get(doc, "stage"));
			const char *raw = json_string_value(
				json_object_get(doc, "raw"));

			if (stage && strcmp(stage, "aggregator") == 0 && raw &&
			    strstr(raw, "\"timestamp\":") &&
			    json_is_integer(json_object_get(doc, "offset")) &&
			    json_object_get(doc, "reason"))
				n++;
			json_decref(doc);
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	return n;
}

static void writer_stalls(struct rig *r)
{
	atomic_store(&r->w.hold, true);
	(void)WAIT_UNTIL_DO(atomic_load(&r->w.holding), 5000, sched_yield());
}

/*
 * Regression: back-pressure from the Cassandra writer (here: it stops
 * taking rows, so the 128 KiB rows ring fills) first holds - the aggregator
 * stops taking records - and pauses partitions only when the hold outlasts
 * a second.  Pausing at once, as the first version did, made librdkafka
 * drop what it had fetched for the partition every time; at 75,000
 * messages/s the hot partition paused and re-fetched the same megabytes
 * several times a second.  Either way the counts stay exact.
 */
/* Waits (10 s at most) until a counter moves from 0; true when it did. */
static bool counter_moves(enum cb_metric_id id)
{
	return WAIT_UNTIL(cb_metric_get(id) > 0, 10000);
}

static void stall_holds_then_pauses(struct rig *r)
{
	long waited;

	cb_metrics_reset();
	writer_stalls(r);
	CHECK_INT(produce_batch(1000, 2300), 0);
	CHECK(counter_moves(CB_M_agg_holds_total));
	atomic_store(&r->w.hold, false); /* well within the second */
	CHECK(stats_match("stats", 30000));
	CHECK_INT(cb_metric_get(CB_M_agg_pauses_total), 0);

	writer_stalls(r);
	CHECK_INT(produce_batch(1000, 3300), 0);
	CHECK(counter_moves(CB_M_agg_pauses_total));
	waited = atomic_load(&t_seek_waited);
	atomic_store(&r->w.hold, false);
	CHECK(stats_match("stats", 30000));
	/* each resume seeks to the partition's position first, and waits */
	CHECK(atomic_load(&t_seek_waited) > waited);
	CHECK_INT(atomic_load(&t_seek_timed_out), 0);
}

/*
 * The fetch nudge (agg.c, nudge_fetch): a backlog larger than the 4 MiB
 * fetch queue (here 16,000 records, about 4.5 MB, produced while the writer
 * stalls) is taken in one long streak; when the queue then runs dry the
 * aggregator seeks every partition to its own position to wake librdkafka
 * 2.0.2's fetcher.  Checked: it nudges, and the seek loses and repeats
 * nothing - the counts stay exact.
 */
static void long_streak_nudges(struct rig *r)
{
	cb_metrics_reset();
	writer_stalls(r);
	CHECK_INT(produce_batch(16000, BURST_SEQ0), 0);
	atomic_store(&r->w.hold, false);
	CHECK(counter_moves(CB_M_agg_fetch_nudges_total));
	CHECK(stats_match("stats", 30000));
	CHECK(atomic_load(&t_seek_async) > 0); /* the nudge does not wait */
}

/*
 * One run: exact counts; while the writer holds its acks nothing past the
 * last acknowledged row is counted; then exact again.
 *
 * Regression (commit 8bf7615): all along, seeks behave like librdkafka
 * 2.0.2's behind a broker thread that needs 100 ms (kafka_fault.h).  With
 * the bounded waits agg.c had (10000 and 5000, read as microseconds) the
 * recovery's seek "timed out" and the aggregator stopped with nothing
 * counted; the resumes' seeks timed out too.  Checked: no seek gives up,
 * the recovery and the resumes did wait, the aggregator never asks to stop.  (Restarts, aborts
 * and rebalances need a real broker: the mock cluster keeps neither
 * transactional offsets nor abort markers; see test/integration/t4x.)
 */
static void test_counts_exact_and_wait_for_acks(void)
{
	struct rig r;
	int64_t before[NCH][NWIN], got[NCH][NWIN];
	bool st;

	CHECK_INT(produce_batch(2000, 0), 0);
	atomic_store(&t_seek_slow, true);
	CHECK_INT(rig_up_ring(&r, "g1", "i1", 128 << 10), 0);
	CHECK(stats_match("stats", 30000));
	CHECK(atomic_load(&t_seek_waited) > 0); /* the recovery's seek */
	CHECK_INT(atomic_load(&t_seek_timed_out), 0);
	CHECK_INT(cb_metric_get(CB_M_agg_bad_records_total), 20);
	CHECK(atomic_load(&r.w.rows) >= produced_total);
	CHECK_INT(count_dead_letters(), 20);

	memcpy(before, truth, sizeof(before));
	atomic_store(&r.w.hold, true);
	CHECK(WAIT_UNTIL_DO(atomic_load(&r.w.holding), 5000, sched_yield()));
	CHECK_INT(produce_batch(300, 2000), 0);
	/* The aggregator consumes them meanwhile, but counts none. */
	for (int64_t end = t_now_ms() + 1500; t_now_ms() < end;) {
		CHECK(read_stats("stats", NPART, got, &st) >= 0);
		for (int k = 0; k < NCH; k++)
			for (int w = 0; w < NWIN; w++)
				if (got[k][w] != before[k][w])
					printf("# held: %s window %d: %lld, "
					       "before %lld\n",
					       chans[k], w,
					       (long long)got[k][w],
					       (long long)before[k][w]);
		CHECK(memcmp(got, before, sizeof(got)) == 0);
	}
	CHECK(cb_metric_get(CB_M_agg_consumed_total) >= 2300);
	atomic_store(&r.w.hold, false);
	CHECK(stats_match("stats", 30000));
	stall_holds_then_pauses(&r);
	long_streak_nudges(&r);
	printf("# seeks: %ld waited, %ld asynchronous, %ld timed out\n",
	       atomic_load(&t_seek_waited), atomic_load(&t_seek_async),
	       atomic_load(&t_seek_timed_out));
	CHECK_INT(atomic_load(&t_seek_timed_out), 0);
	CHECK(!atomic_load(&r.app.stop_requested));
	rig_down(&r);
	atomic_store(&t_seek_slow, false);
}

/*
 * Regression (t23-kafka-rebalance-broker-kill): a broker killed during a
 * rebalance outlived transaction.timeout.ms; the coordinator aborted the
 * open transaction and bumped the producer epoch (KIP-360), the next
 * request got INVALID_PRODUCER_EPOCH, which librdkafka 2.0.2 raises as the
 * fatal _FENCED, and the aggregator stopped with "another process uses
 * transactional.id".  Now one fencing replaces the producer and the
 * aggregator goes on.  The fencing hits the first transaction of a fresh
 * group (its AddPartitionsToTxn), so nothing of it reached the mock
 * cluster's log: the mock keeps neither transactional offsets nor abort
 * markers, so only there can exact counts prove that nothing was lost or
 * counted twice.  Runs after the test above: it counts all of msgs again
 * into its own fstats.
 */
static void test_one_fencing_replaces_producer(void)
{
	struct rig r;

	cb_metrics_reset();
	rd_kafka_mock_push_request_errors(
		mk.cluster, API_ADD_PARTITIONS_TO_TXN, 1,
		RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH);
	CHECK_INT(rig_up_stats(&r, "gf1", "if1", 1 << 20, "fstats"), 0);
	CHECK_OR(stats_match("fstats", 60000), out);
	CHECK_OR(cb_metric_get(CB_M_agg_producer_fencings_total) == 1, out);
	CHECK_OR(cb_metric_get(CB_M_agg_transaction_aborts_total) >= 1, out);
	CHECK_OR(!atomic_load(&r.app.stop_requested), out);
	/* seq < 4475: window 2 */
	CHECK_OR(produce_batch(150, 4300) == 0, out);
	CHECK_OR(stats_match("fstats", 30000), out);
	CHECK_OR(!atomic_load(&r.app.stop_requested), out);
out:
	rig_down(&r);
}

/* Reads what fd 2 got since it was sent to f (at most cap - 1 bytes). */
static void read_log(FILE *f, char *buf, size_t cap)
{
	size_t n;

	fflush(stderr);
	rewind(f);
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
}

/*
 * Fencing that repeats (as when a second process really uses the same
 * transactional.id: each side's new producer fences the other) stops the
 * aggregator at the 5th within 5 minutes, with the message that says so.
 * The fencings come on TxnOffsetCommit, as in t23.
 */
static void test_repeated_fencing_stops(void)
{
	struct rig r;
	static char log[1 << 16];
	FILE *f = tmpfile();
	int saved = dup(2);
	bool up, stopped;

	CHECK(f != NULL && saved >= 0);
	if (f == NULL || saved < 0)
		return;
	cb_metrics_reset();
	rd_kafka_mock_push_request_errors(
		mk.cluster, API_TXN_OFFSET_COMMIT, 5,
		RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH,
		RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH,
		RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH,
		RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH,
		RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH);
	fflush(stderr);
	dup2(fileno(f), 2);
	/* stderr goes back before any CHECK can return */
	up = rig_up_stats(&r, "gf2", "if2", 1 << 20, "fstats2") == 0;
	stopped = up && WAIT_UNTIL(atomic_load(&r.app.stop_requested), 120000);
	if (up)
		rig_down(&r);
	read_log(f, log, sizeof(log));
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fclose(f);
	CHECK(up);
	CHECK(stopped);
	CHECK_INT(cb_metric_get(CB_M_agg_producer_fencings_total), 5);
	CHECK_INT(cb_metric_get(CB_M_agg_transactions_total), 0);
	CHECK(strstr(log, "fenced 5 times within 300 s: another process uses "
			  "transactional.id") != NULL);
	if (strstr(log, "(fenced") != NULL) {
		const char *m = strstr(log, "(fenced");

		printf("# ...%.*s\n", (int)strcspn(m, "\n"), m);
	}
}

int main(void)
{
	cb_log_init(getenv("CB_TEST_VERBOSE") ? CB_LOG_DEBUG : CB_LOG_ERROR);
	if (mock_up() != 0) {
		printf("not ok - mock cluster\n");
		return 1;
	}
	RUN(test_refuses_to_start_without_writer);
	RUN(test_refuses_partition_mismatch);
	RUN(test_refuses_too_many_partitions);
	RUN(test_counts_exact_and_wait_for_acks);
	RUN(test_one_fencing_replaces_producer);
	RUN(test_repeated_fencing_stops);
	t_mock_down(&mk);
	return test_done();
}
