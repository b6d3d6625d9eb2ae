/*
 * test_kafka_conf.c - what each Kafka client of chatbattle gets from
 * --kafka-opt (kafka.h's contract; the tables in docs/ingest.md and
 * docs/aggregation.md): a tuning property the user sets (linger.ms,
 * queued.max.messages.kbytes) reaches every client; a property a client
 * fixes (enable.idempotence, transactional.id, isolation.level) keeps the
 * client's value; the defaults stay when the user sets nothing.  Each
 * configuration is read back with rd_kafka_conf_get from the builder the
 * client itself calls, then a client is created from it against
 * librdkafka's mock cluster (so the combination is one librdkafka takes).
 */
#include "chatbattle/agg.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/kafka.h"
#include "chatbattle/log.h"
#include "chatbattle/producer.h"
#include "chatbattle/statsd.h"
#include "kafka_mock.h"
#include "test.h"

static struct t_mock mk;

enum client { PRODUCER, AGG_CONSUMER, AGG_PRODUCER, AGG_RESTORE, STATS,
	      PLAIN, NCLIENTS };

static const char *const names[NCLIENTS] = {
	"producer", "agg consumer", "agg producer", "agg restore", "stats",
	"init/check"};

static int build(enum client c, const struct cb_config *cfg,
		 rd_kafka_conf_t **out, char *errstr, size_t size)
{
	switch (c) {
	case PRODUCER:
		return cb_producer_kafka_conf(cfg, out, errstr, size);
	case AGG_CONSUMER:
		return cb_agg_kafka_conf(cfg, CB_AGG_CONSUMER, out, errstr,
					 size);
	case AGG_PRODUCER:
		return cb_agg_kafka_conf(cfg, CB_AGG_PRODUCER, out, errstr,
					 size);
	case AGG_RESTORE:
		return cb_agg_kafka_conf(cfg, CB_AGG_RESTORE, out, errstr,
					 size);
	case STATS:
		return cb_statsd_kafka_conf(cfg, out, errstr, size);
	case PLAIN:
	case NCLIENTS:
		break;
	}
	return cb_kafka_conf_new(cfg, "init", out, errstr, size);
}

static int config(struct cb_config *cfg, const char *kafka_opt)
{
	const struct t_setting set[] = {
		{CB_OPT_kafka_brokers, mk.brokers},
		{CB_OPT_instance_id, "conftest"},
		{CB_OPT_kafka_group_id, "conftest-group"},
		{CB_OPT_kafka_opt, kafka_opt},
	};

	return t_config(cfg, set, sizeof(set) / sizeof(set[0]));
}

/* The value of key in conf, or "" when unset. */
static const char *get(rd_kafka_conf_t *conf, const char *key, char *buf,
		       size_t size)
{
	size_t n = size;

	if (rd_kafka_conf_get(conf, key, buf, &n) != RD_KAFKA_CONF_OK)
		buf[0] = '\0';
	return buf;
}

/* A client of the right kind takes the configuration (and owns it). */
static int takes(enum client c, rd_kafka_conf_t *conf)
{
	bool consumer = c == AGG_CONSUMER || c == AGG_RESTORE || c == STATS;
	char errstr[512];
	rd_kafka_t *rk = rd_kafka_new(consumer ? RD_KAFKA_CONSUMER
					       : RD_KAFKA_PRODUCER,
				      conf, errstr, sizeof(errstr));

	if (rk == NULL) {
		printf("# %s: rd_kafka_new: %s\n", names[c], errstr);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rd_kafka_destroy(rk);
	return 0;
}

/* Regression (issue 17): the aggregator's transactional producer set
 * linger.ms, compression.type and its queue size after the user's options,
 * so the user's values were lost there; every client now gets them. */
static void test_user_tuning_reaches_every_client(void)
{
	struct cb_config cfg;
	char errstr[512], v[256];

	CHECK(config(&cfg, "log_level=3;linger.ms=77;compression.type=zstd;"
			   "queue.buffering.max.kbytes=3000;"
			   "queued.max.messages.kbytes=1234") == 0);
	for (int c = 0; c < NCLIENTS; c++) {
		rd_kafka_conf_t *conf = NULL;

		CHECK_INT(build(c, &cfg, &conf, errstr, sizeof(errstr)), 0);
		printf("# %s: linger.ms=%s compression.type=%s\n", names[c],
		       get(conf, "linger.ms", v, sizeof(v)),
		       get(conf, "compression.type", v + 128, sizeof(v) - 128));
		CHECK_STR(get(conf, "linger.ms", v, sizeof(v)), "77");
		CHECK_STR(get(conf, "compression.type", v, sizeof(v)), "zstd");
		CHECK_STR(get(conf, "queue.buffering.max.kbytes", v, sizeof(v)),
			  "3000");
		CHECK_STR(get(conf, "queued.max.messages.kbytes", v, sizeof(v)),
			  "1234");
		CHECK_INT(takes(c, conf), 0);
	}
	cb_config_release(&cfg);
}

/* A property a client needs for its guarantees keeps the client's value
 * whatever kafka_opt says; init and check, which fix nothing, take it. */
static void test_fixed_properties_keep_their_value(void)
{
	struct cb_config cfg;
	char errstr[512], v[256];
	rd_kafka_conf_t *conf = NULL;

	CHECK(config(&cfg, "log_level=3;enable.idempotence=false;"
			   "transactional.id=someone-else;"
			   "isolation.level=read_uncommitted;"
			   "group.id=other-group") == 0);
	CHECK_INT(build(PRODUCER, &cfg, &conf, errstr, sizeof(errstr)), 0);
	CHECK_STR(get(conf, "enable.idempotence", v, sizeof(v)), "true");
	CHECK_INT(takes(PRODUCER, conf), 0);

	CHECK_INT(build(AGG_PRODUCER, &cfg, &conf, errstr, sizeof(errstr)), 0);
	CHECK_STR(get(conf, "transactional.id", v, sizeof(v)),
		  "chatbattle-agg-conftest-conftest-group");
	CHECK_STR(get(conf, "enable.idempotence", v, sizeof(v)), "true");
	CHECK_INT(takes(AGG_PRODUCER, conf), 0);

	CHECK_INT(build(AGG_CONSUMER, &cfg, &conf, errstr, sizeof(errstr)), 0);
	CHECK_STR(get(conf, "isolation.level", v, sizeof(v)), "read_committed");
	CHECK_STR(get(conf, "group.id", v, sizeof(v)), "conftest-group");
	CHECK_INT(takes(AGG_CONSUMER, conf), 0);

	CHECK_INT(build(AGG_RESTORE, &cfg, &conf, errstr, sizeof(errstr)), 0);
	CHECK_STR(get(conf, "isolation.level", v, sizeof(v)), "read_committed");
	CHECK_STR(get(conf, "group.id", v, sizeof(v)), "conftest-group-restore");
	CHECK_INT(takes(AGG_RESTORE, conf), 0);

	CHECK_INT(build(STATS, &cfg, &conf, errstr, sizeof(errstr)), 0);
	CHECK_STR(get(conf, "isolation.level", v, sizeof(v)), "read_committed");
	CHECK_STR(get(conf, "group.id", v, sizeof(v)),
		  "chatbattle-stats-conftest");
	CHECK_INT(takes(STATS, conf), 0);

	CHECK_INT(build(PLAIN, &cfg, &conf, errstr, sizeof(errstr)), 0);
	CHECK_STR(get(conf, "isolation.level", v, sizeof(v)),
		  "read_uncommitted");
	CHECK_STR(get(conf, "enable.idempotence", v, sizeof(v)), "false");
	rd_kafka_conf_destroy(conf);
	cb_config_release(&cfg);
}

/* Without kafka_opt each client has its own defaults. */
static void test_defaults_without_kafka_opt(void)
{
	struct cb_config cfg;
	char errstr[512], v[256];
	rd_kafka_conf_t *conf = NULL;

	CHECK(config(&cfg, "log_level=3") == 0);
	CHECK_INT(build(PRODUCER, &cfg, &conf, errstr, sizeof(errstr)), 0);
	CHECK_STR(get(conf, "linger.ms", v, sizeof(v)), "25");
	CHECK_STR(get(conf, "compression.codec", v, sizeof(v)), "lz4");
	CHECK_STR(get(conf, "message.timeout.ms", v, sizeof(v)), "0");
	CHECK_STR(get(conf, "client.id", v, sizeof(v)),
		  "chatbattle-conftest-producer");
	rd_kafka_conf_destroy(conf);
	CHECK_INT(build(AGG_PRODUCER, &cfg, &conf, errstr, sizeof(errstr)), 0);
	CHECK_STR(get(conf, "linger.ms", v, sizeof(v)), "5");
	CHECK_STR(get(conf, "queue.buffering.max.kbytes", v, sizeof(v)),
		  "16384");
	CHECK_STR(get(conf, "transaction.timeout.ms", v, sizeof(v)), "10000");
	rd_kafka_conf_destroy(conf);
	CHECK_INT(build(AGG_CONSUMER, &cfg, &conf, errstr, sizeof(errstr)), 0);
	CHECK_STR(get(conf, "partition.assignment.strategy", v, sizeof(v)),
		  "cooperative-sticky");
	CHECK_STR(get(conf, "enable.auto.commit", v, sizeof(v)), "false");
	rd_kafka_conf_destroy(conf);
	CHECK_INT(build(STATS, &cfg, &conf, errstr, sizeof(errstr)), 0);
	CHECK_STR(get(conf, "fetch.max.bytes", v, sizeof(v)), "2097152");
	rd_kafka_conf_destroy(conf);
	cb_config_release(&cfg);
}

/* A bad kafka_opt fails every builder and names the property only. */
static void test_bad_kafka_opt_names_the_property(void)
{
	struct cb_config cfg;
	char errstr[512];

	CHECK(config(&cfg, "no.such.property=sekrit") == 0);
	for (int c = 0; c < NCLIENTS; c++) {
		rd_kafka_conf_t *conf = NULL;

		CHECK_INT(build(c, &cfg, &conf, errstr, sizeof(errstr)),
			  CB_E_CONFIG);
		CHECK(conf == NULL);
		CHECK(strstr(errstr, "no.such.property") != NULL);
		CHECK(strstr(errstr, "sekrit") == NULL);
	}
	cb_config_release(&cfg);
}

int main(void)
{
	cb_log_init(getenv("CB_TEST_DEBUG") ? CB_LOG_DEBUG : CB_LOG_ERROR);
	if (t_mock_up(&mk, 1) != 0) {
		printf("not ok - mock cluster\n");
		return 1;
	}
	RUN(test_user_tuning_reaches_every_client);
	RUN(test_fixed_properties_keep_their_value);
	RUN(test_defaults_without_kafka_opt);
	RUN(test_bad_kafka_opt_names_the_property);
	t_mock_down(&mk);
	return test_done();
}
