/*
 * bench_cql.c - insert throughput of the Cassandra writer (src/cql.c)
 * against a live node: the bench thread plays the aggregator, pushing
 * raw_chat_messages rows into app->rows as fast as the writer takes them
 * and reading its acks, and reports rows/s from the first row pushed to the
 * last one acknowledged (every row is stored when that ack arrives).
 *
 *   bench_cql HOST:PORT KEYSPACE ROWS BATCH_ROWS [CONNECTIONS]
 *
 * The environment shapes the rows for test/bench/b31-history:
 * BENCH_CQL_TABLES (cassandra_tables, default raw), BENCH_CQL_CHANNELS
 * (default 8) and BENCH_CQL_SPAN_MS (0, the default: timestamps
 * 1700000000000 + i; else the rows' times spread evenly over the SPAN_MS
 * before now, so that they fall into the day buckets of the last days).
 *
 * Without arguments it prints how to run it and exits 0: `make bench` runs
 * it through test/bench/b30-cql, which starts Cassandra, creates the
 * keyspace and compares with the DataStax Python driver on the same node.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatbattle/app.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/cql.h"
#include "chatbattle/err.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"

#define PARTITIONS 3

static unsigned nchannels = 8;
static int64_t ts_base = 1700000000000LL, ts_step_us = 1000;

static uint32_t put_row(uint8_t *p, uint64_t i, int64_t offset)
{
	struct cb_row_hdr h = {0};
	char channel[16], user[16], msg[96];
	int cl = snprintf(channel, sizeof(channel), "bench%02u",
			  (unsigned)(i % nchannels));
	int ul = snprintf(user, sizeof(user), "user%u", (unsigned)(i % 997));
	int ml = snprintf(msg, sizeof(msg),
			  "message %" PRIu64 " Kappa this is fine PogChamp", i);
	uint16_t el = 5;
	uint8_t *v;

	h.partition = (int32_t)(i % PARTITIONS);
	h.generation = 1;
	h.offset = offset;
	h.timestamp_ms = ts_base + (int64_t)i * ts_step_us / 1000;
	for (int k = 0; k < 8; k++)
		h.message_id[k] = (uint8_t)(i >> (8 * k));
	h.message_id[8] = 0x80; /* a valid variant */
	h.message_id[6] = 0x40;
	h.channel_len = (uint16_t)cl;
	h.user_id_len = (uint16_t)ul;
	h.username_len = (uint16_t)ul;
	h.message_len = (uint32_t)ml;
	h.emote_count = 1;
	h.emotes_len = 2 + el;
	memcpy(p, &h, sizeof(h));
	v = p + sizeof(h);
	memcpy(v, channel, (size_t)cl);
	v += cl;
	memcpy(v, user, (size_t)ul);
	v += ul;
	memcpy(v, user, (size_t)ul);
	v += ul;
	memcpy(v, msg, (size_t)ml);
	v += ml;
	memcpy(v, &el, 2);
	memcpy(v + 2, "Kappa", el);
	return (uint32_t)(sizeof(h) + (size_t)cl + 2 * (size_t)ul +
			  (size_t)ml + 2 + el);
}

int main(int argc, char **argv)
{
	struct cb_config cfg;
	struct cb_app app;
	char errstr[512];
	uint64_t rows, pushed = 0;
	int64_t next_off[PARTITIONS] = {0}, acked[PARTITIONS];
	int64_t t0, t1;
	char *cargv[16];
	int cargc = 0, err;

	if (argc < 5) {
		printf("   bench_cql: needs a live Cassandra; run by "
		       "test/bench/b30-cql (usage: bench_cql HOST:PORT "
		       "KEYSPACE ROWS BATCH_ROWS [CONNECTIONS])\n");
		return 0;
	}
	rows = strtoull(argv[3], NULL, 10);
	if (getenv("BENCH_CQL_CHANNELS") != NULL)
		nchannels = (unsigned)strtoul(getenv("BENCH_CQL_CHANNELS"),
					      NULL, 10);
	if (nchannels == 0)
		nchannels = 1;
	if (getenv("BENCH_CQL_SPAN_MS") != NULL && rows > 0) {
		int64_t span = strtoll(getenv("BENCH_CQL_SPAN_MS"), NULL, 10);

		if (span > 0) {
			ts_base = cb_wall_ms() - span;
			ts_step_us = span * 1000 / (int64_t)rows;
		}
	}
	cargv[cargc++] = "bench_cql";
	cargv[cargc++] = "--cassandra-hosts";
	cargv[cargc++] = argv[1];
	cargv[cargc++] = "--keyspace";
	cargv[cargc++] = argv[2];
	cargv[cargc++] = "--cassandra-batch-rows";
	cargv[cargc++] = argv[4];
	cargv[cargc++] = "--cassandra-connections";
	cargv[cargc++] = argc > 5 ? argv[5] : "2";
	cargv[cargc++] = "--cassandra-tables";
	cargv[cargc++] = getenv("BENCH_CQL_TABLES") != NULL
				 ? getenv("BENCH_CQL_TABLES")
				 : "raw";
	cargv[cargc++] = "--log-level";
	cargv[cargc++] = "warn";
	cargv[cargc] = NULL;
	memset(&app, 0, sizeof(app));
	if (cb_config_init(&cfg, errstr, sizeof(errstr)) != 0) {
		fprintf(stderr, "bench_cql: %s\n", errstr);
		return 1;
	}
	err = cb_config_load(&cfg, cargc, cargv, errstr, sizeof(errstr));
	if (err != 0) {
		fprintf(stderr, "bench_cql: %s\n", errstr);
		return 1;
	}
	cb_log_init(cb_log_level_parse("warn"));
	app.cfg = &cfg;
	if (cb_ring_new(&app.rows, 4u << 20, "rows", errstr, sizeof(errstr)) ||
	    cb_ring_new(&app.acks, 256u << 10, "acks", errstr,
			sizeof(errstr))) {
		fprintf(stderr, "bench_cql: %s\n", errstr);
		return 1;
	}
	err = cb_cql_start(&app, errstr, sizeof(errstr));
	if (err != 0) {
		fprintf(stderr, "bench_cql: %s\n", errstr);
		return 1;
	}
	for (int p = 0; p < PARTITIONS; p++)
		acked[p] = -1;
	t0 = cb_mono_ns();
	for (;;) {
		const struct cb_ack *a;
		uint32_t len;
		bool all = pushed == rows;

		while (pushed < rows) {
			uint8_t *slot = cb_ring_reserve(app.rows, 512);
			int p = (int)(pushed % PARTITIONS);
			uint32_t n;

			if (slot == NULL)
				break;
			n = put_row(slot, pushed, next_off[p]++);
			cb_ring_shrink(app.rows, n);
			pushed++;
			if (pushed % 64 == 0)
				cb_ring_commit(app.rows);
		}
		cb_ring_commit(app.rows);
		while ((a = cb_ring_read(app.acks, &len)) != NULL) {
			acked[a->partition] = a->offset;
			cb_ring_release(app.acks);
		}
		for (int p = 0; p < PARTITIONS && all; p++)
			if (acked[p] != next_off[p] - 1)
				all = false;
		if (all)
			break;
		if (cb_mono_ns() - t0 > 600LL * 1000000000LL) {
			fprintf(stderr, "bench_cql: not done after 600 s\n");
			return 1;
		}
		cb_ring_wait(app.acks, 5);
	}
	t1 = cb_mono_ns();
	printf("   cql writer, batches of %s: %" PRIu64 " rows in %.2f s = "
	       "%.0f rows/s\n",
	       argv[4], rows, (double)(t1 - t0) / 1e9,
	       (double)rows / ((double)(t1 - t0) / 1e9));
	cb_cql_stop(&app);
	cb_ring_free(app.rows);
	cb_ring_free(app.acks);
	cb_config_release(&cfg);
	return 0;
}
