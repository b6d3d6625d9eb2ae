/*
 * kafka.c - shared librdkafka configuration for chatbattle's Kafka clients
 * (see kafka.h).  Called from the threads that create clients; the log
 * callback runs on librdkafka's own threads and only calls cb_log_write,
 * which is thread-safe.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/kafka.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	/* librdkafka uses syslog levels: 0..3 error, 4 warning, 5..6 info. */
	int ours = level <= 3 ? CB_LOG_ERROR
			      : level == 4 ? CB_LOG_WARN
					   : level <= 6 ? CB_LOG_INFO
							: CB_LOG_DEBUG;

	if (ours <= cb_log_threshold)
		cb_log_write(ours, "kafka", 0, "%s: %s: %s", rd_kafka_name(rk),
			     fac, buf);
}

int cb_kafka_conf_set(rd_kafka_conf_t *conf, const char *key,
		      const char *value, char *errstr, size_t errstr_size)
{
	char why[512];

	if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) !=
	    RD_KAFKA_CONF_OK)
		/* librdkafka's reason may quote the value */
		return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				 "Kafka property %s: %s", key,
				 cb_config_key_is_secret(key, strlen(key))
					 ? "invalid value"
					 : why);
	return 0;
}

static pthread_once_t id_once = PTHREAD_ONCE_INIT;
static char instance_id[128];
static const struct cb_config *id_cfg;

static void make_id(void)
{
	if (id_cfg != NULL && id_cfg->instance_id[0] != '\0') {
		snprintf(instance_id, sizeof(instance_id), "%s",
			 id_cfg->instance_id);
		return;
	}
	if (gethostname(instance_id, sizeof(instance_id) - 1) != 0 ||
	    instance_id[0] == '\0')
		snprintf(instance_id, sizeof(instance_id), "localhost");
	instance_id[sizeof(instance_id) - 1] = '\0';
}

const char *cb_instance_id(const struct cb_config *cfg)
{
	id_cfg = cfg;
	pthread_once(&id_once, make_id);
	return instance_id;
}

/* The value the user gave key in kafka_opt (the last one wins), or NULL. */
static const char *user_value(const struct cb_config *cfg, const char *key)
{
	size_t n = strlen(key);
	const char *v = NULL;

	for (size_t i = 0; i < cfg->kafka_opt.n; i++)
		if (strncmp(cfg->kafka_opt.v[i], key, n) == 0 &&
		    cfg->kafka_opt.v[i][n] == '=')
			v = cfg->kafka_opt.v[i] + n + 1;
	return v;
}

static int set_props(rd_kafka_conf_t *conf, const struct cb_config *cfg,
		     const char *role, const struct cb_kafka_prop *props,
		     size_t nprops, int overridable, char *errstr,
		     size_t errstr_size)
{
	int err = 0;

	for (size_t i = 0; err == 0 && i < nprops; i++) {
		const struct cb_kafka_prop *p = &props[i];
		const char *v;

		if (!p->user_may_override != !overridable)
			continue;
		v = user_value(cfg, p->key);
		if (overridable && v != NULL) {
			cb_warn("kafka", "%s: kafka_opt overrides %s "
					 "(default %s)",
				role, p->key, p->value);
			continue;
		}
		if (!overridable && v != NULL && strcmp(v, p->value) != 0)
			cb_warn("kafka", "%s: kafka_opt %s is not used: this "
					 "client needs its own value",
				role, p->key);
		err = cb_kafka_conf_set(conf, p->key, p->value, errstr,
					errstr_size);
	}
	return err;
}

int cb_kafka_conf_build(const struct cb_config *cfg, const char *role,
			const struct cb_kafka_prop *props, size_t nprops,
			rd_kafka_conf_t **out, char *errstr,
			size_t errstr_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char client_id[256];
	int err;

	*out = NULL;
	snprintf(client_id, sizeof(client_id), "chatbattle-%s-%s",
		 cb_instance_id(cfg), role);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	err = cb_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka_brokers,
				errstr, errstr_size);
	if (err == 0)
		err = cb_kafka_conf_set(conf, "client.id", client_id, errstr,
					errstr_size);
	if (err == 0)
		err = set_props(conf, cfg, role, props, nprops, 1, errstr,
				errstr_size);
	for (size_t i = 0; err == 0 && i < cfg->kafka_opt.n; i++) {
		const char *kv = cfg->kafka_opt.v[i];
		const char *eq = strchr(kv, '=');
		char key[256];

		/* The config parser guarantees "key=value" with a key. */
		snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
		err = cb_kafka_conf_set(conf, key, eq + 1, errstr,
					errstr_size);
	}
	if (err == 0)
		err = set_props(conf, cfg, role, props, nprops, 0, errstr,
				errstr_size);
	if (err != 0) {
		rd_kafka_conf_destroy(conf);
		return err;
	}
	*out = conf;
	return 0;
}

int cb_kafka_conf_new(const struct cb_config *cfg, const char *role,
		      rd_kafka_conf_t **out, char *errstr, size_t errstr_size)
{
	return cb_kafka_conf_build(cfg, role, NULL, 0, out, errstr,
				   errstr_size);
}

void cb_kafka_health_start(struct cb_kafka_health *h)
{
	h->last_seen_ms = cb_mono_ms();
	h->last_probe_ms = 0;
}

void cb_kafka_health_seen(struct cb_kafka_health *h)
{
	h->last_seen_ms = cb_mono_ms();
	cb_health_set(CB_DEP_KAFKA, CB_DEP_UP);
}

void cb_kafka_health_check(struct cb_kafka_health *h, rd_kafka_t *rk,
			   rd_kafka_topic_t *t)
{
	int64_t now = cb_mono_ms();
	const struct rd_kafka_metadata *md = NULL;

	if (now - h->last_seen_ms < CB_KAFKA_HEALTH_PROBE_MS ||
	    now - h->last_probe_ms < CB_KAFKA_HEALTH_PROBE_MS)
		return;
	h->last_probe_ms = now;
	if (rd_kafka_metadata(rk, 0, t, &md, 1000) ==
	    RD_KAFKA_RESP_ERR_NO_ERROR) {
		cb_health_set(CB_DEP_KAFKA, CB_DEP_UP);
		rd_kafka_metadata_destroy(md);
	} else {
		cb_health_set(CB_DEP_KAFKA, CB_DEP_DOWN);
	}
}

int cb_kafka_err(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
		return 0;
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		return CB_E_TIMEOUT;
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
		return CB_E_AUTH;
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
		return CB_E_FULL;
	case RD_KAFKA_RESP_ERR__FATAL:
		return CB_E_FATAL;
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
		return CB_E_NOTFOUND;
	default:
		return CB_E_KAFKA;
	}
}
