/*
 * cql_ring.h - Cassandra's token ring and the replicas of a token, for
 * token-aware routing (cql.c) and `chatbattle check`.  Pure code: no I/O.
 *
 * The caller lists the nodes (data centre, rack, tokens, as system.local
 * and system.peers_v2 give them) and the keyspace's replication (from
 * system_schema.keyspaces); cb_cql_ring_build() computes, for every token
 * range, the replicas the way Cassandra places them:
 *
 *  - SimpleStrategy: the owner of the range, then the next distinct
 *    nodes clockwise, replication_factor in all;
 *  - NetworkTopologyStrategy: per data centre, walking clockwise, nodes
 *    of racks not seen yet first; a node in a rack already used is taken
 *    only while rf exceeds the DC's rack count (Cassandra's
 *    NetworkTopologyStrategy.calculateNaturalReplicas);
 *  - any other class (LocalStrategy, EverywhereStrategy...): every node.
 *
 * A token t belongs to the range (tokens[i-1], tokens[i]] of the first
 * ring token >= t, wrapping past the largest to the smallest.
 */
#ifndef CHATBATTLE_CQL_RING_H
#define CHATBATTLE_CQL_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cb_cql_response;

#define CB_CQL_RING_DCS 16    /* data centres in a replication map */
#define CB_CQL_RING_RF_MAX 16 /* replicas per range we keep */

enum cb_cql_strategy {
	CB_CQL_STRATEGY_SIMPLE,
	CB_CQL_STRATEGY_NTS,
	CB_CQL_STRATEGY_OTHER, /* every node replicates everything */
};

struct cb_cql_repl {
	enum cb_cql_strategy strategy;
	int rf;                 /* SimpleStrategy */
	size_t ndc;
	struct {
		char name[64];
		int rf;
	} dc[CB_CQL_RING_DCS];  /* NetworkTopologyStrategy */
};

/*
 * Fills r from the replication map of system_schema.keyspaces: key/value
 * pairs such as ("class", "org.apache.cassandra.locator.SimpleStrategy"),
 * ("replication_factor", "3"), or ("class", "...NetworkTopologyStrategy"),
 * ("dc1", "3").  Returns 0, or CB_E_PROTO naming the bad entry.
 */
int cb_cql_repl_set(struct cb_cql_repl *r, const char *key, size_t klen,
		    const char *value, size_t vlen, char *errstr,
		    size_t errstr_size);
void cb_cql_repl_init(struct cb_cql_repl *r);

/* One node as the ring builder sees it. */
struct cb_cql_ring_node {
	const char *dc;
	const char *rack;
	const int64_t *tokens;
	size_t ntokens;
};

struct cb_cql_ring {
	size_t ntokens;
	int64_t *token;         /* sorted */
	uint16_t *nrep;         /* replicas of the range ending at token[i] */
	uint16_t *rep;          /* [ntokens * CB_CQL_RING_RF_MAX] node indexes */
};

/*
 * Builds r (freed first) for nodes[0..n-1] (at most 65535) under repl.
 * Returns 0, CB_E_NOMEM, or CB_E_PROTO when no node has a token.
 */
int cb_cql_ring_build(struct cb_cql_ring *r,
		      const struct cb_cql_ring_node *nodes, size_t n,
		      const struct cb_cql_repl *repl, char *errstr,
		      size_t errstr_size);
void cb_cql_ring_free(struct cb_cql_ring *r);

/* The replicas (node indexes, the range's owner first) of token; *rep
 * points into r.  Returns their count, 0 for an empty ring. */
size_t cb_cql_ring_replicas(const struct cb_cql_ring *r, int64_t token,
			    const uint16_t **rep);

/* One node as system.local or system.peers(_v2) describe it. */
struct cb_cql_peer {
	char addr[64];          /* the native-protocol address, as text */
	int port;               /* its native port */
	char dc[64];
	char rack[64];
	uint8_t host_id[16];
	char partitioner[128];  /* system.local only */
	int64_t *tokens;        /* malloc'd */
	size_t ntokens;
};

/*
 * Appends the rows of a `SELECT * FROM system.local`, `system.peers_v2` or
 * `system.peers` answer (res, a Rows result) to *peers (*n of them, the
 * array grown with realloc).  The address is native_address, else
 * rpc_address (a wildcard 0.0.0.0/:: replaced by peer/broadcast_address);
 * the port native_port, else rpc_port, else default_port.  Returns 0, or
 * CB_E_PROTO (a row without an address, a bad token) / CB_E_NOMEM.
 */
int cb_cql_peers_from_rows(struct cb_cql_response *res, int default_port,
			   struct cb_cql_peer **peers, size_t *n, char *errstr,
			   size_t errstr_size);
void cb_cql_peers_free(struct cb_cql_peer *peers, size_t n);

/* Reads the `replication` map of a system_schema.keyspaces row into r.
 * Returns 0, CB_E_NOTFOUND (no row: no such keyspace) or CB_E_PROTO. */
int cb_cql_repl_from_rows(struct cb_cql_response *res, struct cb_cql_repl *r,
			  char *errstr, size_t errstr_size);

#endif
