/*
 * test_producer.c - the producer thread without a Kafka broker: a bad
 * --kafka-opt is refused at start; records are taken from the ring in
 * batches and handed to librdkafka (DLQ records counted); with Kafka
 * unreachable the bounded queue fills, QUEUE_FULL is counted and the ring
 * stops draining (back-pressure, nothing dropped), and Kafka's health
 * reads "down" meanwhile even after another client said "up"; stop returns
 * within the flush deadline and reports what was not delivered.
 */
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "chatbattle/app.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/producer.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"
#include "test.h"

struct ph {
	struct cb_config cfg;
	struct cb_app app;
};

static void ph_set(struct ph *h, const char *name, const char *value)
{
	char errstr[256];
	int id = cb_config_find(name);

	if (id < 0 || cb_config_set(&h->cfg, (enum cb_opt_id)id, value,
				    CB_SRC_FLAG, "test", false, errstr,
				    sizeof(errstr)) != 0)
		abort();
}

static int ph_setup(struct ph *h)
{
	char errstr[256];

	memset(h, 0, sizeof(*h));
	if (cb_config_init(&h->cfg, errstr, sizeof(errstr)) != 0)
		return -1;
	/* nothing listens on port 1: Kafka is unreachable */
	ph_set(h, "kafka_brokers", "127.0.0.1:1");
	ph_set(h, "producer_flush_timeout_ms", "300");
	h->app.cfg = &h->cfg;
	h->app.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return cb_ring_new(&h->app.irc_out, 4 << 20, "irc_out", errstr,
			   sizeof(errstr));
}

static void ph_teardown(struct ph *h)
{
	cb_ring_free(h->app.irc_out);
	close(h->app.wake_fd);
	cb_config_release(&h->cfg);
}

/* Pushes one record: kind, key, a value of value_len bytes. */
static int push(struct ph *h, int kind, const char *key, size_t value_len)
{
	struct cb_out_hdr hdr = {.kind = (uint8_t)kind,
				 .key_len = (uint8_t)strlen(key),
				 .value_len = (uint32_t)value_len};
	uint32_t len = (uint32_t)(sizeof(hdr) + hdr.key_len + value_len);
	uint8_t *p = cb_ring_reserve(h->app.irc_out, len);

	if (p == NULL)
		return -1;
	memcpy(p, &hdr, sizeof(hdr));
	memcpy(p + sizeof(hdr), key, hdr.key_len);
	memset(p + sizeof(hdr) + hdr.key_len, 'x', value_len);
	p[sizeof(hdr) + hdr.key_len] = '{';
	p[len - 1] = '}';
	cb_ring_commit(h->app.irc_out);
	return 0;
}

static void test_bad_kafka_opt_refused(void)
{
	struct ph h;
	char errstr[256] = "";

	CHECK(ph_setup(&h) == 0);
	ph_set(&h, "kafka_opt", "no.such.property=sekrit");
	CHECK_INT(cb_producer_start(&h.app, errstr, sizeof(errstr)),
		  CB_E_CONFIG);
	CHECK(strstr(errstr, "no.such.property") != NULL);
	CHECK(strstr(errstr, "sekrit") == NULL);
	CHECK(h.app.producer == NULL);
	ph_teardown(&h);
}

static void test_records_taken_in_batches(void)
{
	struct ph h;
	char errstr[256];
	uint64_t prod0 = cb_metric_get(CB_M_kafka_produced_total);
	uint64_t dlq0 = cb_metric_get(CB_M_dlq_records_total);
	struct cb_ring_stats rs;
	int64_t deadline;

	CHECK(ph_setup(&h) == 0);
	CHECK(cb_producer_start(&h.app, errstr, sizeof(errstr)) == 0);
	for (int i = 0; i < 100; i++)
		CHECK(push(&h, i < 3 ? CB_OUT_DLQ : CB_OUT_CHAT,
			   i < 3 ? "" : "chan", 200) == 0);
	deadline = t_now_ms() + 10000;
	do {
		cb_ring_stats(h.app.irc_out, &rs);
		if (rs.records_out == 100 &&
		    cb_metric_get(CB_M_kafka_produced_total) - prod0 == 100)
			break;
		cb_ring_wait_space(h.app.irc_out, 1, 10);
	} while (t_now_ms() < deadline);
	CHECK_INT(rs.records_out, 100);
	CHECK_INT(cb_metric_get(CB_M_kafka_produced_total) - prod0, 100);
	CHECK_INT(cb_metric_get(CB_M_dlq_records_total) - dlq0, 3);
	cb_producer_stop(&h.app);
	CHECK(h.app.producer == NULL);
	ph_teardown(&h);
}

static void test_queue_full_back_pressure_and_bounded_stop(void)
{
	struct ph h;
	char errstr[256];
	uint64_t qf0 = cb_metric_get(CB_M_kafka_queue_full_total);
	uint64_t del0 = cb_metric_get(CB_M_kafka_delivered_total);
	struct cb_ring_stats rs;
	int pushed = 0;
	int64_t deadline, t0;

	CHECK(ph_setup(&h) == 0);
	ph_set(&h, "producer_queue_kbytes", "1024");
	CHECK(cb_producer_start(&h.app, errstr, sizeof(errstr)) == 0);
	/* 3 MiB of records against a 1 MiB queue that cannot drain */
	deadline = t_now_ms() + 20000;
	while (pushed < 1500 && t_now_ms() < deadline) {
		if (push(&h, CB_OUT_CHAT, "chan", 2048) == 0)
			pushed++;
		else
			cb_ring_wait_space(h.app.irc_out, 4096, 10);
	}
	CHECK_INT(pushed, 1500);
	(void)WAIT_UNTIL_DO(
		cb_metric_get(CB_M_kafka_queue_full_total) != qf0, 10000,
		cb_ring_wait_space(h.app.irc_out, 1, 10));
	CHECK(cb_metric_get(CB_M_kafka_queue_full_total) > qf0);
	cb_ring_stats(h.app.irc_out, &rs);
	printf("# ring: %" PRIu64 " in, %" PRIu64 " out (queue full %" PRIu64
	       " times)\n",
	       rs.records_in, rs.records_out,
	       cb_metric_get(CB_M_kafka_queue_full_total) - qf0);
	/* back-pressure: the producer holds the rest in the ring */
	CHECK(rs.records_out < rs.records_in);
	/* Regression (t63 in CI): a late "up" (here set by hand, as another
	 * client would) stood for the whole outage, because the producer,
	 * waiting on its full queue, never probed Kafka again.  It must say
	 * "down" again. */
	cb_health_set(CB_DEP_KAFKA, CB_DEP_UP);
	(void)WAIT_UNTIL_DO(cb_health_get(CB_DEP_KAFKA) == CB_DEP_DOWN, 15000,
		poll(NULL, 0, 10));
	CHECK_INT(cb_health_get(CB_DEP_KAFKA), CB_DEP_DOWN);
	t0 = t_now_ms();
	cb_producer_stop(&h.app);
	printf("# stop took %" PRId64 " ms (flush deadline 300 ms)\n",
	       t_now_ms() - t0);
	CHECK(t_now_ms() - t0 < 5000);
	CHECK_INT(cb_metric_get(CB_M_kafka_delivered_total) - del0, 0);
	ph_teardown(&h);
}

int main(void)
{
	cb_log_init(getenv("CB_TEST_DEBUG") ? CB_LOG_DEBUG : CB_LOG_ERROR);
	RUN(test_bad_kafka_opt_refused);
	RUN(test_records_taken_in_batches);
	RUN(test_queue_full_back_pressure_and_bounded_stop);
	return test_done();
}
