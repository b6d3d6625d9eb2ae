/*
 * test_mt_cql_ring.c - the writer (src/cql.c) against three in-process
 * fake nodes (cql_fake.h) on 127.0.0.1-3, one port of 31000-31999 on each
 * address: it learns the ring from system.local and system.peers_v2 (or
 * system.peers), sends every row to the replica of its channel for known
 * Murmur3 tokens (values Cassandra computed, see test_murmur3.c), follows
 * STATUS_CHANGE and TOPOLOGY_CHANGE events, and resends the requests in
 * flight on a node that dies to the others: every row stored exactly once,
 * acknowledged to the aggregator once, acks only growing.  Also run under
 * TSan (test_mt_*).
 *
 * The ring: node 0 owns (6e18, -6e18] (wrapping), node 1 (-6e18, 0],
 * node 2 (0, 6e18], SimpleStrategy RF 1, so each channel has one replica:
 * 'xqc' (token -9157219993072261309) on node 0, 'room'
 * (-1271452466534520972) on node 1, 'chan' (4790327283995738449) on
 * node 2.
 */
#include <time.h>

#include "chatbattle/log.h"
#include "chatbattle/murmur3.h"
#include "cql_fake.h"
#include "test.h"

static const int64_t tokens[FK_NODES] = {-6000000000000000000LL, 0,
					 6000000000000000000LL};

static void cluster_init(struct fake_cluster *cl, int in_ring)
{
	memset(cl, 0, sizeof(*cl));
	for (int i = 0; i < FK_NODES; i++) {
		cl->token[i] = tokens[i];
		cl->in_ring[i] = i < in_ring;
	}
}

/* Waits (bounded) until the writer's gauges say so. */
static bool wait_metrics(uint64_t ring_nodes, uint64_t connections,
			 uint64_t nodes_up)
{
	int64_t deadline = cb_mono_ms() + 20000;
	struct timespec ts = {0, 5 * 1000 * 1000};

	while (cb_mono_ms() < deadline) {
		if (cb_metric_get(CB_M_cql_ring_nodes) == ring_nodes &&
		    cb_metric_get(CB_M_cql_connections) == connections &&
		    cb_metric_get(CB_M_cql_nodes_up) == nodes_up)
			return true;
		nanosleep(&ts, NULL); /* polling the condition, not a delay */
	}
	printf("# ring_nodes %" PRIu64 " connections %" PRIu64
	       " nodes_up %" PRIu64 ", waited for %" PRIu64 " %" PRIu64
	       " %" PRIu64 "\n",
	       cb_metric_get(CB_M_cql_ring_nodes),
	       cb_metric_get(CB_M_cql_connections),
	       cb_metric_get(CB_M_cql_nodes_up), ring_nodes, connections,
	       nodes_up);
	return false;
}

/* Rows [from, to) stored by node k, counted under the nodes' lock. */
static int stored_on(struct fake_cluster *cl, int k, uint32_t from,
		     uint32_t to)
{
	int n = 0;

	pthread_mutex_lock(&fk_mu);
	for (uint32_t i = from; i < to; i++)
		n += cl->node[k].stored[i];
	pthread_mutex_unlock(&fk_mu);
	return n;
}

static char hosts[64];
static char *argv[] = {"t",
		       "--cassandra-hosts",
		       hosts,
		       "--cassandra-connections",
		       "2",
		       "--cassandra-batch-rows",
		       "8",
		       "--cassandra-inflight",
		       "32",
		       "--log-level",
		       "error",
		       "--cassandra-tables", /* routing by the channel's token */
		       "raw",
		       NULL};
#define ARGC 13

static struct fake_cluster cl;

static bool up(int base, int in_ring, struct cb_config *cfg,
	       struct cb_app *app)
{
	int port = fake_cluster_start(&cl, FK_NODES, base);

	if (port < 0)
		return false;
	snprintf(hosts, sizeof(hosts), "127.0.0.1:%d", port);
	if (getenv("FK_LOG") != NULL)
		argv[10] = getenv("FK_LOG");
	cb_log_init(cb_log_level_parse(argv[10]));
	return fk_writer_up(cfg, app, ARGC, argv) == 0;
}

static void rows_go_to_the_replica_of_their_token(void)
{
	struct cb_config cfg;
	struct cb_app app;
	struct fk_agg g;
	bool all, ready;

	cluster_init(&cl, 3);
	cl.no_peers_v2 = true; /* and system.peers is read instead */
	fk_channels[0] = "xqc";
	fk_channels[1] = "room";
	fk_channels[2] = "chan";
	fk_nchannels = 3;
	CHECK(up(31300, 3, &cfg, &app));
	/* the contact point, then the two peers it listed */
	ready = wait_metrics(3, 6, 3);
	fk_agg_init(&g);
	all = ready && fk_agg_run(&app, &g, FK_ROWS, cb_mono_ms() + 30000);
	cb_cql_stop(&app);
	fake_cluster_stop(&cl);
	CHECK(ready);
	CHECK(all);
	CHECK(g.monotonic);
	CHECK_INT(cb_metric_get(CB_M_cql_token_aware), 1);
	for (uint32_t i = 0; i < FK_ROWS; i++)
		for (int k = 0; k < FK_NODES; k++)
			if (cl.node[k].stored[i] != (i % 3 == (uint32_t)k)) {
				printf("# row %u (%s) stored %d times on "
				       "node %d\n",
				       i, fk_channels[i % 3],
				       cl.node[k].stored[i], k);
				CHECK(0);
			}
	CHECK(cl.node[0].ring_queries >= 4); /* local, v2, peers, keyspace */
	CHECK_INT(cb_metric_get(CB_M_cql_rows_written_total), FK_ROWS);
	cb_ring_free(app.rows);
	cb_ring_free(app.acks);
	cb_config_release(&cfg);
}

/* The node owning token t in cluster_init's ring. */
static int owner_of(int64_t t)
{
	for (int k = 0; k < FK_NODES; k++)
		if (t <= tokens[k])
			return k;
	return 0; /* past the largest: wraps to the smallest */
}

/* With the daily table, a row goes to the replica of its (channel, day)
 * composite token, which for these channels is not the owner of the
 * channel's own token. */
static void daily_rows_go_to_the_replica_of_their_day_token(void)
{
	struct cb_config cfg;
	struct cb_app app;
	struct fk_agg g;
	int want[3], moved = 0;
	bool all, ready;
	/* fk rows are stamped 1700000000000 + i ms: one UTC day */
	int32_t day = cb_murmur3_day_of_ms(1700000000000LL);

	cluster_init(&cl, 3);
	fk_channels[0] = "xqc";
	fk_channels[1] = "room";
	fk_channels[2] = "chan";
	fk_nchannels = 3;
	for (int c = 0; c < 3; c++) {
		want[c] = owner_of(cb_murmur3_token_channel_day(
			fk_channels[c], strlen(fk_channels[c]), day));
		moved += want[c] != c;
	}
	CHECK(moved > 0); /* else this test would not tell the keys apart */
	argv[12] = "daily";
	CHECK(up(31350, 3, &cfg, &app));
	ready = wait_metrics(3, 6, 3);
	fk_agg_init(&g);
	all = ready && fk_agg_run(&app, &g, FK_ROWS, cb_mono_ms() + 30000);
	cb_cql_stop(&app);
	fake_cluster_stop(&cl);
	argv[12] = "raw";
	CHECK(ready);
	CHECK(all);
	CHECK(g.monotonic);
	for (uint32_t i = 0; i < FK_ROWS; i++)
		for (int k = 0; k < FK_NODES; k++) {
			int w = want[i % 3] == k;

			if (cl.node[k].stored_day[i] != w ||
			    cl.node[k].stored[i] != 0) {
				printf("# row %u (%s) on node %d: %d daily, "
				       "%d raw (want %d daily on node %d)\n",
				       i, fk_channels[i % 3], k,
				       cl.node[k].stored_day[i],
				       cl.node[k].stored[i], 1, want[i % 3]);
				CHECK(0);
				goto out;
			}
		}
out:
	cb_ring_free(app.rows);
	cb_ring_free(app.acks);
	cb_config_release(&cfg);
}

static void status_down_moves_routing_and_up_brings_it_back(void)
{
	struct cb_config cfg;
	struct cb_app app;
	struct fk_agg g;
	bool ok1 = false, ok2 = false, ok3 = false, ready, down = false,
	     back = false;

	cluster_init(&cl, 3);
	fk_channels[0] = "chan"; /* node 2's */
	fk_nchannels = 1;
	CHECK(up(31400, 3, &cfg, &app));
	ready = wait_metrics(3, 6, 3);
	fk_agg_init(&g);
	if (ready)
		ok1 = fk_agg_run(&app, &g, 1000, cb_mono_ms() + 30000);
	/* node 0 holds the control connection (the contact point) */
	fake_event(&cl, 0, "STATUS_CHANGE", "DOWN", 2);
	if (ok1)
		down = wait_metrics(3, 6, 2);
	if (down)
		ok2 = fk_agg_run(&app, &g, 2000, cb_mono_ms() + 30000);
	fake_event(&cl, 0, "STATUS_CHANGE", "UP", 2);
	if (ok2)
		back = wait_metrics(3, 6, 3);
	if (back)
		ok3 = fk_agg_run(&app, &g, 3000, cb_mono_ms() + 30000);
	cb_cql_stop(&app);
	fake_cluster_stop(&cl);
	CHECK(ready && ok1 && down && ok2 && back && ok3);
	CHECK(g.monotonic);
	CHECK_INT(stored_on(&cl, 2, 0, 1000), 1000);
	/* DOWN: to the other nodes, none to node 2 */
	CHECK_INT(stored_on(&cl, 2, 1000, 2000), 0);
	CHECK_INT(stored_on(&cl, 0, 1000, 2000) +
			  stored_on(&cl, 1, 1000, 2000),
		  1000);
	/* UP again: back to the replica */
	CHECK_INT(stored_on(&cl, 2, 2000, 3000), 1000);
	CHECK_INT(cb_metric_get(CB_M_cql_rows_written_total), FK_ROWS);
	cb_ring_free(app.rows);
	cb_ring_free(app.acks);
	cb_config_release(&cfg);
}

static void topology_change_adds_and_removes_a_node(void)
{
	struct cb_config cfg;
	struct cb_app app;
	struct fk_agg g;
	bool ok1 = false, ok2 = false, ok3 = false, ready, joined = false,
	     left = false;

	cluster_init(&cl, 2); /* node 2 runs but is not in the ring yet */
	fk_channels[0] = "chan";
	fk_nchannels = 1;
	CHECK(up(31500, 2, &cfg, &app));
	ready = wait_metrics(2, 4, 2);
	fk_agg_init(&g);
	if (ready) /* 'chan' wraps to node 0 in a two-node ring */
		ok1 = fk_agg_run(&app, &g, 1000, cb_mono_ms() + 30000);
	pthread_mutex_lock(&fk_mu);
	cl.in_ring[2] = true;
	pthread_mutex_unlock(&fk_mu);
	fake_event(&cl, 0, "TOPOLOGY_CHANGE", "NEW_NODE", 2);
	if (ok1)
		joined = wait_metrics(3, 6, 3);
	if (joined)
		ok2 = fk_agg_run(&app, &g, 2000, cb_mono_ms() + 30000);
	pthread_mutex_lock(&fk_mu);
	cl.in_ring[2] = false;
	pthread_mutex_unlock(&fk_mu);
	fake_event(&cl, 0, "TOPOLOGY_CHANGE", "REMOVED_NODE", 2);
	if (ok2)
		left = wait_metrics(2, 4, 2);
	if (left)
		ok3 = fk_agg_run(&app, &g, 3000, cb_mono_ms() + 30000);
	cb_cql_stop(&app);
	fake_cluster_stop(&cl);
	CHECK(ready && ok1 && joined && ok2 && left && ok3);
	CHECK(g.monotonic);
	CHECK_INT(stored_on(&cl, 0, 0, 1000), 1000);
	CHECK_INT(stored_on(&cl, 2, 1000, 2000), 1000);
	CHECK_INT(stored_on(&cl, 0, 2000, 3000), 1000);
	CHECK_INT(stored_on(&cl, 1, 0, 3000), 0);
	CHECK(cb_metric_get(CB_M_cql_ring_refreshes_total) >= 3);
	cb_ring_free(app.rows);
	cb_ring_free(app.acks);
	cb_config_release(&cfg);
}

/* Node 2 takes writes without answering, then closes its sockets and
 * refuses new ones: its requests in flight are resent to nodes 0 and 1. */
static void a_dead_nodes_requests_are_resent_elsewhere(void)
{
	struct cb_config cfg;
	struct cb_app app;
	struct fk_agg g;
	bool all = false, ready, stuck = false;
	int unanswered = 0, once = 0, dup = 0;
	int64_t deadline;

	cluster_init(&cl, 3);
	cl.node[2].silent = true;
	fk_channels[0] = "xqc";
	fk_channels[1] = "room";
	fk_channels[2] = "chan";
	fk_nchannels = 3;
	CHECK(up(31600, 3, &cfg, &app));
	ready = wait_metrics(3, 6, 3);
	fk_agg_init(&g);
	/* push until node 2 holds writes in flight */
	deadline = cb_mono_ms() + 20000;
	while (ready && !stuck && cb_mono_ms() < deadline) {
		fk_agg_run(&app, &g, FK_ROWS, cb_mono_ms() + 20);
		pthread_mutex_lock(&fk_mu);
		stuck = cl.node[2].unanswered >= 8;
		pthread_mutex_unlock(&fk_mu);
	}
	pthread_mutex_lock(&fk_mu);
	cl.node[2].dead = true;
	unanswered = cl.node[2].unanswered;
	pthread_mutex_unlock(&fk_mu);
	if (stuck)
		all = fk_agg_run(&app, &g, FK_ROWS, cb_mono_ms() + 30000);
	cb_cql_stop(&app);
	fake_cluster_stop(&cl);
	CHECK(ready && stuck);
	CHECK(all);
	CHECK(g.monotonic);
	printf("# %d requests were in flight on the dead node\n", unanswered);
	for (uint32_t i = 0; i < FK_ROWS; i++) {
		int n = cl.node[0].stored[i] + cl.node[1].stored[i] +
			cl.node[2].stored[i];

		once += n == 1;
		dup += n > 1;
	}
	CHECK_INT(dup, 0);
	CHECK_INT(once, FK_ROWS);
	CHECK_INT(stored_on(&cl, 2, 0, FK_ROWS), 0);
	/* each row acknowledged to the aggregator once */
	CHECK_INT(cb_metric_get(CB_M_cql_rows_written_total), FK_ROWS);
	cb_ring_free(app.rows);
	cb_ring_free(app.acks);
	cb_config_release(&cfg);
}

/* Another partitioner: no token-aware routing, a clear log line, and the
 * rows still all written (round robin). */
static void another_partitioner_falls_back_to_round_robin(void)
{
	struct cb_config cfg;
	struct cb_app app;
	struct fk_agg g;
	bool all = false, ready;

	cluster_init(&cl, 3);
	cl.partitioner = "org.apache.cassandra.dht.RandomPartitioner";
	fk_channels[0] = "chan";
	fk_nchannels = 1;
	CHECK(up(31700, 3, &cfg, &app));
	ready = wait_metrics(3, 6, 3);
	fk_agg_init(&g);
	if (ready)
		all = fk_agg_run(&app, &g, 1200, cb_mono_ms() + 30000);
	cb_cql_stop(&app);
	fake_cluster_stop(&cl);
	CHECK(ready && all);
	CHECK_INT(cb_metric_get(CB_M_cql_token_aware), 0);
	/* round robin: every node took some of 'chan' */
	for (int k = 0; k < FK_NODES; k++)
		CHECK(stored_on(&cl, k, 0, 1200) > 0);
	CHECK_INT(stored_on(&cl, 0, 0, 1200) + stored_on(&cl, 1, 0, 1200) +
			  stored_on(&cl, 2, 0, 1200),
		  1200);
	cb_ring_free(app.rows);
	cb_ring_free(app.acks);
	cb_config_release(&cfg);
}

int main(void)
{
	RUN(rows_go_to_the_replica_of_their_token);
	RUN(daily_rows_go_to_the_replica_of_their_day_token);
	RUN(status_down_moves_routing_and_up_brings_it_back);
	RUN(topology_change_adds_and_removes_a_node);
	RUN(a_dead_nodes_requests_are_resent_elsewhere);
	RUN(another_partitioner_falls_back_to_round_robin);
	return test_done();
}
