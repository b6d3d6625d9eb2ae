/*
 * statsd.c - the stats thread (see statsd.h).  It owns a librdkafka
 * consumer of topic_stats (no group: it assigns every partition from the
 * beginning, read_committed) and is the one writer of the stats cache.
 *
 * Readiness: the end of each partition is reported by librdkafka as a
 * partition EOF (for read_committed, at the last stable offset).  Once every
 * partition has reported one, the cache holds everything committed up to
 * start-up and /api/health says "cache":"ready"; records applied before that
 * add no end-to-end latency samples (they are history, not live).
 *
 * Kafka may not answer yet, or the topic may not exist yet (chatbattle init
 * not run): the thread warns once for each, retries every two seconds, and
 * the cache stays "down" meanwhile.
 */
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
#include "chatbattle/stats_cache.h"
#include "chatbattle/statsd.h"
#include "chatbattle/thread.h"

#define SUB "stats"

struct cb_statsd {
	struct cb_app *app;
	const struct cb_config *cfg;
	struct cb_thread thread;
	atomic_bool stop;
	rd_kafka_t *rk;
	int nparts;
	bool *eof;
	int eof_left;
	bool ready;
	struct cb_kafka_health health;
};

/* Assigns every partition of the topic from the beginning.  Returns 0,
 * CB_E_AGAIN while Kafka does not answer, or CB_E_NOTFOUND while the topic
 * does not exist. */
static int assign_all(struct cb_statsd *s)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *t = rd_kafka_topic_new(s->rk, s->cfg->topic_stats,
						 NULL);
	rd_kafka_topic_partition_list_t *l = NULL;
	rd_kafka_resp_err_t err;
	int rc = CB_E_NOTFOUND;

	err = rd_kafka_metadata(s->rk, 0, t, &md, 5000);
	/* the answer, with or without the topic, says whether Kafka is up */
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		cb_health_set(CB_DEP_KAFKA, CB_DEP_DOWN);
		rc = CB_E_AGAIN;
		goto out;
	}
	cb_kafka_health_seen(&s->health);
	if (md->topic_cnt != 1 ||
	    md->topics[0].err || md->topics[0].partition_cnt == 0)
		goto out;
	s->nparts = md->topics[0].partition_cnt;
	s->eof = calloc((size_t)s->nparts, sizeof(*s->eof));
	if (s->eof == NULL) {
		rc = CB_E_NOMEM;
		goto out;
	}
	s->eof_left = s->nparts;
	l = rd_kafka_topic_partition_list_new(s->nparts);
	for (int p = 0; p < s->nparts; p++)
		rd_kafka_topic_partition_list_add(l, s->cfg->topic_stats, p)
			->offset = RD_KAFKA_OFFSET_BEGINNING;
	err = rd_kafka_assign(s->rk, l);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		cb_error(SUB, "assign %s: %s", s->cfg->topic_stats,
			 rd_kafka_err2str(err));
		rc = CB_E_KAFKA;
		goto out;
	}
	cb_info(SUB, "reading %s (%d partitions) into the stats cache",
		s->cfg->topic_stats, s->nparts);
	rc = 0;
out:
	if (l)
		rd_kafka_topic_partition_list_destroy(l);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	return rc;
}

/* Client-wide errors come here, not to rd_kafka_consumer_poll(): the
 * all-brokers-down event says "down" at once (probes say it 5 s later). */
static void error_cb(rd_kafka_t *rk, int err, const char *reason,
		     void *opaque)
{
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
		cb_health_set(CB_DEP_KAFKA, CB_DEP_DOWN);
		cb_warn(SUB, "all Kafka brokers are down: %s", reason);
		return;
	}
	cb_debug(SUB, "Kafka: %s: %s", rd_kafka_err2name(err), reason);
}

static void handle(struct cb_statsd *s, rd_kafka_message_t *m)
{
	char errstr[256];

	/* Kafka's health is the latest observation of any client: a
	 * serve-only instance has no producer to report it.  Records and
	 * partition ends say "up"; error_cb says "down"; while nothing
	 * arrives, statsd_main probes (kafka.h). */
	if (m->err == 0 || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		cb_kafka_health_seen(&s->health);

	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		if (m->partition >= 0 && m->partition < s->nparts &&
		    !s->eof[m->partition]) {
			s->eof[m->partition] = true;
			if (--s->eof_left == 0 && !s->ready) {
				s->ready = true;
				cb_health_set(CB_DEP_CACHE, CB_DEP_UP);
				cb_info(SUB, "stats cache ready: %zu "
					     "channel(s)",
					cb_stats_cache_channels(s->app->cache,
								NULL, 0));
			}
		}
		return;
	}
	if (m->err) {
		cb_warn(SUB, "%s: %s", s->cfg->topic_stats,
			rd_kafka_message_errstr(m));
		return;
	}
	if (cb_stats_cache_apply(s->app->cache, m->key, m->key_len,
				 m->payload, m->len, s->ready ? cb_wall_ms() : 0,
				 errstr, sizeof(errstr)) != 0) {
		cb_metric_add(CB_M_stats_bad_records_total, 1);
		cb_debug(SUB, "%s [%d] offset %lld skipped: %s",
			 s->cfg->topic_stats, (int)m->partition,
			 (long long)m->offset, errstr);
	}
}

/* Says why the topic is not read yet, once per reason (assign_all's). */
static void warn_retry(struct cb_statsd *s, int rc, int *warned)
{
	if (rc == *warned)
		return;
	*warned = rc;
	if (rc == CB_E_NOTFOUND)
		cb_warn(SUB, "topic %s not found yet: retrying (run chatbattle "
			     "init)",
			s->cfg->topic_stats);
	else
		cb_warn(SUB, "Kafka (%s) does not answer: retrying",
			s->cfg->kafka_brokers);
}

static void *statsd_main(void *arg)
{
	struct cb_statsd *s = arg;
	bool assigned = false;
	int warned = 0; /* the last retry reason warned about */

	while (!atomic_load(&s->stop)) {
		rd_kafka_message_t *m;

		if (!assigned) {
			int rc = assign_all(s);

			if (rc == 0) {
				assigned = true;
			} else if (rc == CB_E_NOTFOUND || rc == CB_E_AGAIN) {
				warn_retry(s, rc, &warned);
				for (int i = 0; i < 20 && !atomic_load(&s->stop);
				     i++)
					rd_kafka_poll(s->rk, 100);
				continue;
			} else {
				cb_app_request_stop(s->app,
						    "stats consumer failed");
				break;
			}
		}
		m = rd_kafka_consumer_poll(s->rk, 100);
		if (m != NULL) {
			handle(s, m);
			rd_kafka_message_destroy(m);
		}
		cb_kafka_health_check(&s->health, s->rk, NULL);
	}
	return NULL;
}

static void statsd_free(struct cb_statsd *s)
{
	if (s->rk) {
		rd_kafka_consumer_close(s->rk);
		rd_kafka_destroy(s->rk);
	}
	free(s->eof);
	free(s);
}

int cb_statsd_kafka_conf(const struct cb_config *cfg, rd_kafka_conf_t **out,
			 char *errstr, size_t errstr_size)
{
	char group[300];
	/* Small buffers are tuning the user may override. */
	const struct cb_kafka_prop props[] = {
		CB_KAFKA_READER_PROPS(group),
		{"queued.max.messages.kbytes", "2048", 1},
		{"fetch.max.bytes", "2097152", 1},
	};

	snprintf(group, sizeof(group), "chatbattle-stats-%s",
		 cb_instance_id(cfg));
	return cb_kafka_conf_build(cfg, "stats", props,
				   sizeof(props) / sizeof(props[0]), out,
				   errstr, errstr_size);
}

int cb_statsd_start(struct cb_app *app, char *errstr, size_t errstr_size)
{
	struct cb_statsd *s = calloc(1, sizeof(*s));
	rd_kafka_conf_t *conf = NULL;
	int err;

	if (s == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	s->app = app;
	s->cfg = app->cfg;
	cb_kafka_health_start(&s->health);
	cb_health_set(CB_DEP_CACHE, CB_DEP_DOWN);
	err = cb_stats_cache_new(&app->cache, (size_t)app->cfg->windows_kept,
				 errstr, errstr_size);
	if (err != 0)
		goto fail;
	err = cb_statsd_kafka_conf(app->cfg, &conf, errstr, errstr_size);
	if (err != 0)
		goto fail;
	rd_kafka_conf_set_error_cb(conf, error_cb);
	s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
	if (s->rk == NULL) {
		err = CB_E_KAFKA;
		goto fail;
	}
	conf = NULL;
	rd_kafka_poll_set_consumer(s->rk);
	err = cb_thread_start(&s->thread, statsd_main, s, "stats", errstr,
			      errstr_size);
	if (err != 0)
		goto fail;
	app->statsd = s; /* only cb_statsd_stop reads it, on this thread */
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	statsd_free(s);
	cb_stats_cache_free(app->cache);
	app->cache = NULL;
	return err;
}

void cb_statsd_stop(struct cb_app *app)
{
	struct cb_statsd *s = app->statsd;

	if (s == NULL)
		return;
	/* the thread writes the cache: it goes only after the thread */
	cb_thread_stop(&s->thread, &s->stop, -1);
	statsd_free(s);
	cb_stats_cache_free(app->cache);
	app->statsd = NULL;
	app->cache = NULL;
}
