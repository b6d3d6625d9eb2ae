/*
 * kafka_mock.h - what the unit tests against librdkafka's in-process mock
 * cluster share: the cluster's set-up and tear-down, and settings from a
 * table.  Header-only, like test.h.
 */
#ifndef CB_TEST_KAFKA_MOCK_H
#define CB_TEST_KAFKA_MOCK_H

#include <stdio.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "chatbattle/config.h"

struct t_mock {
	rd_kafka_t *rk; /* the handle that owns the cluster */
	rd_kafka_mock_cluster_t *cluster;
	char brokers[256]; /* its bootstrap servers */
};

/* Starts a cluster of n brokers.  Returns 0 or -1. */
static inline int t_mock_up(struct t_mock *m, int n)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
	m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (m->rk == NULL)
		return -1;
	m->cluster = rd_kafka_mock_cluster_new(m->rk, n);
	if (m->cluster == NULL)
		return -1;
	snprintf(m->brokers, sizeof(m->brokers), "%s",
		 rd_kafka_mock_cluster_bootstraps(m->cluster));
	return 0;
}

static inline void t_mock_down(struct t_mock *m)
{
	rd_kafka_mock_cluster_destroy(m->cluster);
	rd_kafka_destroy(m->rk);
}

struct t_setting {
	enum cb_opt_id id;
	const char *value;
};

/* The defaults, then each setting in turn, as flags would.  Returns 0, or
 * -1 after printing why a setting was refused. */
static inline int t_config(struct cb_config *cfg, const struct t_setting *set,
			   size_t n)
{
	char errstr[256];

	if (cb_config_init(cfg, errstr, sizeof(errstr)) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (cb_config_set(cfg, set[i].id, set[i].value, CB_SRC_FLAG,
				  "test", false, errstr,
				  sizeof(errstr)) != 0) {
			printf("# %s\n", errstr);
			return -1;
		}
	return 0;
}

#endif
