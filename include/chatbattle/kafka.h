/*
 * kafka.h - what every Kafka client of chatbattle shares (src/kafka.c):
 * configuration from the settings, logging into cb_log, error conversion,
 * and the instance id.  Used by the producer, aggregator, stats reader,
 * init and check; each owns its rd_kafka_t in its own thread.
 *
 * This header exposes librdkafka types on purpose: it is the Kafka modules'
 * internal toolkit, not a public interface of another module.
 */
#ifndef CHATBATTLE_KAFKA_H
#define CHATBATTLE_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

struct cb_config;

/*
 * One property a client sets, and whether the user may override it with
 * kafka_opt.  The rule for every client: a property that carries one of
 * chatbattle's guarantees (idempotence, transactions, read_committed,
 * offsets committed only with the output, the partitioner that keeps a
 * channel on one partition, the group) is fixed; tuning (linger,
 * compression, buffer sizes, timeouts of the group protocol) is a default
 * the user may override.  docs/ingest.md and docs/aggregation.md list each
 * client's table.
 */
struct cb_kafka_prop {
	const char *key;
	const char *value;
	int user_may_override; /* 1: a default; 0: fixed */
};

/*
 * The fixed rows of a reader that assigns its partitions itself (the
 * aggregator's restore reader, the stats thread): a group id only because
 * librdkafka wants one for assign() - it never joins the group nor
 * commits - committed transactions only, and an event at each partition's
 * end.
 */
#define CB_KAFKA_READER_PROPS(group)                                           \
	{"group.id", (group), 0}, {"isolation.level", "read_committed", 0},    \
		{"enable.partition.eof", "true", 0},                           \
		{"enable.auto.commit", "false", 0},                            \
		{"enable.auto.offset.store", "false", 0}

/*
 * Builds a client's configuration, in this order:
 *   1. bootstrap.servers, client.id "chatbattle-<instance>-<role>", a log
 *      callback into cb_log (subsystem "kafka");
 *   2. the overridable rows of props the user did not set in kafka_opt
 *      (a warning names each one the user did set);
 *   3. every kafka_opt key=value of the settings, in order (so users can
 *      set anything else, e.g. SASL or SSL, and override 1 and 2);
 *   4. the fixed rows of props, last: a kafka_opt value for one of them is
 *      not used (a warning names the property, never the value).
 * Returns 0 or CB_E_CONFIG with the reason (a bad kafka_opt names the
 * property, never its value).  The caller owns *out until it hands it to
 * rd_kafka_new().
 */
int cb_kafka_conf_build(const struct cb_config *cfg, const char *role,
			const struct cb_kafka_prop *props, size_t nprops,
			rd_kafka_conf_t **out, char *errstr,
			size_t errstr_size);

/* cb_kafka_conf_build without client properties (init, check). */
int cb_kafka_conf_new(const struct cb_config *cfg, const char *role,
		      rd_kafka_conf_t **out, char *errstr, size_t errstr_size);

/* Sets one property; on error names the property (not the value, which may
 * be a secret).  Returns 0 or CB_E_CONFIG. */
int cb_kafka_conf_set(rd_kafka_conf_t *conf, const char *key,
		      const char *value, char *errstr, size_t errstr_size);

/* Returns the instance id: the instance_id setting, else the host name.
 * Computed once; safe from any thread after the first call in main. */
const char *cb_instance_id(const struct cb_config *cfg);

/*
 * Kafka's health (/api/health) from one client's point of view.  Every
 * client that sees traffic says "up" (cb_kafka_health_seen); when it has
 * seen none for CB_KAFKA_HEALTH_PROBE_MS, cb_kafka_health_check asks the
 * brokers for metadata (1 s at most, at most once per interval) and sets
 * "up" or "down" from the answer.  The probe is what ends a stale verdict:
 * an "up" that arrived just after the all-brokers-down event (records or
 * deliveries counted late), or a "down" after the brokers came back while
 * nothing flowed.  Each client owns its struct; only its thread uses it.
 */
#define CB_KAFKA_HEALTH_PROBE_MS 5000

struct cb_kafka_health {
	int64_t last_seen_ms;  /* traffic last seen (monotonic) */
	int64_t last_probe_ms; /* last metadata probe (monotonic) */
};

/* At the client's start: the first probe comes one interval later. */
void cb_kafka_health_start(struct cb_kafka_health *h);

/* Traffic seen now: Kafka is up. */
void cb_kafka_health_seen(struct cb_kafka_health *h);

/* Probes when no traffic was seen for CB_KAFKA_HEALTH_PROBE_MS; t: a topic
 * to ask about (NULL: the brokers only).  Blocks at most 1 s. */
void cb_kafka_health_check(struct cb_kafka_health *h, rd_kafka_t *rk,
			   rd_kafka_topic_t *t);

/* Maps a librdkafka error to a cb_err (CB_E_TIMEOUT, CB_E_AUTH, CB_E_KAFKA...). */
int cb_kafka_err(rd_kafka_resp_err_t err);

#endif
