/*
 * test_mt_cql.c - the Cassandra writer (src/cql.c, its own thread) against
 * a small in-process CQL server (cql_fake.h) that speaks enough native protocol v4 to
 * script failures a real node produces only by accident: Overloaded and
 * Write_timeout errors (retried), UNPREPARED (prepared again), a connection
 * closed with requests in flight (resent elsewhere), and an invalid query
 * (kept and retried at the slowest pace).  The test thread plays the
 * aggregator: rows in through app->rows, acks back on app->acks.  Checks:
 * every row is stored, acks per partition only grow and end at the last
 * offset, and the counters say each failure path ran.  Also run under TSan
 * (test_mt_*).  The real node is exercised by test/integration/t3x.
 */
#include "chatbattle/log.h"
#include "cql_fake.h"
#include "test.h"

static struct fake_cluster cl1;
#define fk (cl1.node[0])

static void writer_survives_scripted_failures(void)
{
	struct cb_config cfg;
	struct cb_app app;
	char hosts[64];
	char *argv[] = {"t",
			"--cassandra-hosts",
			hosts,
			"--cassandra-connections",
			"2",
			"--cassandra-batch-rows",
			"8",
			"--cassandra-inflight",
			"32",
			"--log-level",
			getenv("FK_LOG") ? getenv("FK_LOG") : "error",
			NULL};
	struct fk_agg g;
	bool all;
	int port;

	fk.overloaded_every = 13;
	fk.unprepared_at = 20;
	fk.close_at = 40;
	fk.invalid_at = 60;
	port = fake_cluster_start(&cl1, 1, 31100);
	CHECK(port > 0);
	snprintf(hosts, sizeof(hosts), "127.0.0.1:%d", port);
	cb_log_init(cb_log_level_parse(getenv("FK_LOG") ? getenv("FK_LOG") : "error"));
	CHECK_INT(fk_writer_up(&cfg, &app, 11, argv), 0);
	fk_agg_init(&g);
	all = fk_agg_run(&app, &g, FK_ROWS, cb_mono_ms() + 60000);
	cb_cql_stop(&app);
	fake_cluster_stop(&cl1);
	CHECK(all);
	CHECK(g.monotonic);
	{
		int missing = 0;

		for (int i = 0; i < FK_ROWS; i++)
			missing += fk.stored[i] == 0;
		CHECK_INT(missing, 0);
	}
	/* cassandra_tables = both, the default: each row into both tables
	 * (stored counts the raw INSERTs, stored_day the daily ones) */
	{
		int missing_day = 0;

		for (int i = 0; i < FK_ROWS; i++)
			missing_day += fk.stored_day[i] == 0;
		CHECK_INT(missing_day, 0);
	}
	CHECK(fk.prepares >= 6); /* 2 per connection, and after UNPREPARED */
	CHECK(fk.connections >= 3); /* one was closed and came back */
	CHECK(cb_metric_get(CB_M_cql_retries_total) > 0);
	CHECK(cb_metric_get(CB_M_cql_reprepares_total) >= 1);
	CHECK_INT(cb_metric_get(CB_M_cql_rows_written_total), FK_ROWS);
	/* the one-node ring was read: routing by token, to that node */
	CHECK_INT(cb_metric_get(CB_M_cql_ring_nodes), 1);
	CHECK_INT(cb_metric_get(CB_M_cql_token_aware), 1);
	cb_ring_free(app.rows);
	cb_ring_free(app.acks);
	cb_config_release(&cfg);
}

/*
 * Regression: the writer's memory is bounded while Cassandra does not
 * answer.  It used to take rows up to FIFO_ROWS / 2 outstanding, and every
 * request it ever used kept its grown buffer: 2,048 requests of 4 KiB or
 * more, 8 MiB in this set-up (RSS over budget in b80-e2e's overload).  Now
 * the buffers of the requests in use stay under 4 MiB (plus one request's
 * growth), and the rows ring fills instead (back-pressure).
 */
static struct fake_cluster cl2;

static void writer_memory_is_bounded_when_cassandra_stalls(void)
{
	struct cb_config cfg;
	struct cb_app app;
	char hosts[64];
	char *argv[] = {"t", "--cassandra-hosts", hosts, "--log-level", "error",
			NULL};
	int64_t next_off[FK_PARTS] = {0}, deadline, stable_since = 0;
	int64_t peak = 0, last = -1;
	uint32_t pushed = 0;
	bool full = false;
	int port;

	cl2.node[0].silent = true;
	port = fake_cluster_start(&cl2, 1, 31200);
	CHECK(port > 0);
	snprintf(hosts, sizeof(hosts), "127.0.0.1:%d", port);
	CHECK_INT(fk_writer_up(&cfg, &app, 5, argv), 0);
	/* Push until the writer stops taking rows: the ring stays full and
	 * the writer's buffers stop changing for 300 ms. */
	deadline = cb_mono_ms() + 30000;
	while (cb_mono_ms() < deadline) {
		int64_t now = cb_mono_ms(), b;

		full = fk_push_rows(app.rows, &pushed, UINT32_MAX, next_off);
		b = cb_metric_get(CB_M_cql_buffer_bytes);
		if (b > peak)
			peak = b;
		if (b != last || stable_since == 0) {
			last = b;
			stable_since = now;
		} else if (full && now - stable_since >= 300 && b > 0) {
			break;
		}
		cb_ring_wait_space(app.rows, 256, 5);
	}
	cb_cql_stop(&app);
	fake_cluster_stop(&cl2);
	CHECK(full);
	/* it took a lot before stopping: the check below means something */
	CHECK(peak > (1 << 20));
	CHECK(peak <= (4 << 20) + (64 << 10));
	CHECK(cb_metric_get(CB_M_cql_rows_written_total) == 0);
	cb_ring_free(app.rows);
	cb_ring_free(app.acks);
	cb_config_release(&cfg);
}

int main(void)
{
	RUN(writer_survives_scripted_failures);
	RUN(writer_memory_is_bounded_when_cassandra_stalls);
	return test_done();
}
