/*
 * test_cql_ring.c - replica placement (src/cql_ring.c): SimpleStrategy,
 * NetworkTopologyStrategy with racks and two data centres, the wrap past
 * the largest token, and the keys of known Murmur3 tokens (their values
 * from Cassandra's own token(), see test_murmur3.c) landing on the node
 * whose range holds them.
 */
#include "chatbattle/cql_ring.h"
#include "chatbattle/err.h"
#include "chatbattle/murmur3.h"
#include "test.h"

#define SET(r, k, v)                                                          \
	CHECK_INT(cb_cql_repl_set(&(r), k, strlen(k), v, strlen(v), err,     \
				  sizeof(err)),                               \
		  0)

static const int64_t t0[] = {-6000000000000000000LL};
static const int64_t t1[] = {0};
static const int64_t t2[] = {6000000000000000000LL};

static void simple_strategy_walks_clockwise(void)
{
	struct cb_cql_ring_node nodes[] = {{"dc1", "r1", t0, 1},
					   {"dc1", "r1", t1, 1},
					   {"dc1", "r1", t2, 1}};
	struct cb_cql_ring ring = {0};
	struct cb_cql_repl repl;
	const uint16_t *rep;
	char err[128];

	cb_cql_repl_init(&repl);
	SET(repl, "class", "org.apache.cassandra.locator.SimpleStrategy");
	SET(repl, "replication_factor", "2");
	CHECK_INT(cb_cql_ring_build(&ring, nodes, 3, &repl, err, sizeof(err)),
		  0);
	/* (-6e18, 0] belongs to node 1, then node 2 */
	CHECK_INT(cb_cql_ring_replicas(&ring, -5, &rep), 2);
	CHECK_INT(rep[0], 1);
	CHECK_INT(rep[1], 2);
	/* a range's end is inclusive */
	CHECK_INT(cb_cql_ring_replicas(&ring, 0, &rep), 2);
	CHECK_INT(rep[0], 1);
	/* past the largest token: wraps to node 0 */
	CHECK_INT(cb_cql_ring_replicas(&ring, INT64_MAX, &rep), 2);
	CHECK_INT(rep[0], 0);
	CHECK_INT(rep[1], 1);
	/* Murmur3 tokens Cassandra reported: 'chan' 4790327283995738449 is
	 * in (0, 6e18] (node 2), 'room' -1271452466534520972 in node 1's,
	 * 'xqc' -9157219993072261309 below the smallest (node 0) */
	CHECK_INT(cb_cql_ring_replicas(&ring, cb_murmur3_token("chan", 4),
				       &rep),
		  2);
	CHECK_INT(rep[0], 2);
	CHECK_INT(cb_cql_ring_replicas(&ring, cb_murmur3_token("room", 4),
				       &rep),
		  2);
	CHECK_INT(rep[0], 1);
	CHECK_INT(cb_cql_ring_replicas(&ring, cb_murmur3_token("xqc", 3),
				       &rep),
		  2);
	CHECK_INT(rep[0], 0);
	cb_cql_ring_free(&ring);
}

static void rf_above_the_node_count_gives_every_node_once(void)
{
	static const int64_t many[] = {-100, 100, 300};
	struct cb_cql_ring_node nodes[] = {{"dc1", "r1", many, 3},
					   {"dc1", "r1", t2, 1}};
	struct cb_cql_ring ring = {0};
	struct cb_cql_repl repl;
	const uint16_t *rep;
	char err[128];

	cb_cql_repl_init(&repl);
	SET(repl, "class", "SimpleStrategy");
	SET(repl, "replication_factor", "3");
	CHECK_INT(cb_cql_ring_build(&ring, nodes, 2, &repl, err, sizeof(err)),
		  0);
	CHECK_INT(ring.ntokens, 4);
	CHECK_INT(cb_cql_ring_replicas(&ring, 150, &rep), 2);
	CHECK_INT(rep[0], 0);
	CHECK_INT(rep[1], 1);
	cb_cql_ring_free(&ring);
}

/* dc1: nodes 0 (r1), 1 (r1), 2 (r2); dc2: node 3.  NTS dc1:2 takes the
 * owner, then skips the next node of the same rack for one of r2. */
static void nts_prefers_distinct_racks_per_dc(void)
{
	static const int64_t a[] = {10}, b[] = {20}, c[] = {30}, d[] = {40};
	struct cb_cql_ring_node nodes[] = {{"dc1", "r1", a, 1},
					   {"dc1", "r1", b, 1},
					   {"dc1", "r2", c, 1},
					   {"dc2", "r1", d, 1}};
	struct cb_cql_ring ring = {0};
	struct cb_cql_repl repl;
	const uint16_t *rep;
	char err[128];

	cb_cql_repl_init(&repl);
	SET(repl, "class", "org.apache.cassandra.locator."
			   "NetworkTopologyStrategy");
	SET(repl, "dc1", "2");
	SET(repl, "dc2", "1");
	CHECK_INT(cb_cql_ring_build(&ring, nodes, 4, &repl, err, sizeof(err)),
		  0);
	CHECK_INT(cb_cql_ring_replicas(&ring, 5, &rep), 3);
	CHECK_INT(rep[0], 0);
	CHECK_INT(rep[1], 2); /* not node 1: rack r1 already holds one */
	CHECK_INT(rep[2], 3);
	/* rf 3 in dc1 with 2 racks: one repeat allowed, so node 1 too */
	cb_cql_repl_init(&repl);
	SET(repl, "class", "NetworkTopologyStrategy");
	SET(repl, "dc1", "3");
	CHECK_INT(cb_cql_ring_build(&ring, nodes, 4, &repl, err, sizeof(err)),
		  0);
	CHECK_INT(cb_cql_ring_replicas(&ring, 15, &rep), 3);
	CHECK_INT(rep[0], 1);
	CHECK_INT(rep[1], 2);
	CHECK_INT(rep[2], 0);
	cb_cql_ring_free(&ring);
}

static void bad_replication_and_empty_ring_are_errors(void)
{
	struct cb_cql_ring_node nodes[] = {{"dc1", "r1", NULL, 0}};
	struct cb_cql_ring ring = {0};
	struct cb_cql_repl repl;
	const uint16_t *rep;
	char err[128];

	cb_cql_repl_init(&repl);
	CHECK_INT(cb_cql_repl_set(&repl, "dc1", 3, "three", 5, err,
				  sizeof(err)),
		  CB_E_PROTO);
	CHECK(strstr(err, "dc1") != NULL);
	CHECK_INT(cb_cql_ring_build(&ring, nodes, 1, &repl, err, sizeof(err)),
		  CB_E_PROTO);
	CHECK_INT(cb_cql_ring_replicas(&ring, 0, &rep), 0);
}

int main(void)
{
	RUN(simple_strategy_walks_clockwise);
	RUN(rf_above_the_node_count_gives_every_node_once);
	RUN(nts_prefers_distinct_racks_per_dc);
	RUN(bad_replication_and_empty_ring_are_errors);
	return test_done();
}
