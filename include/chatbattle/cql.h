/*
 * cql.h - chatbattle's own Cassandra client (native protocol v4; no DataStax
 * driver).  Two faces:
 *
 *  - the Cassandra writer, module "cql" (role "aggregate", src/cql.c): its
 *    own thread and libevent loop, a connection pool, pipelined prepared
 *    INSERTs; it consumes app->rows (struct cb_row_hdr) and answers on
 *    app->acks (struct cb_ack), see record.h and docs/contracts.md;
 *
 *  - a blocking session for other threads (src/cql_sync.c): `init`,
 *    `history`, `check` and the HTTP server's messages endpoint.  A session
 *    is one connection used by one thread at a time (not thread-safe; open
 *    one per thread or guard it).
 *
 * Every ERROR frame is decoded into a sentence naming the error code and
 * its details, which these functions put into errstr.
 */
#ifndef CHATBATTLE_CQL_H
#define CHATBATTLE_CQL_H

#include <stddef.h>
#include <stdint.h>

struct cb_app;
struct cb_config;
struct cb_cql_session;

/* Module entry points for cb_app_modules[] (app.h). */
int cb_cql_start(struct cb_app *app, char *errstr, size_t errstr_size);
void cb_cql_stop(struct cb_app *app);

/*
 * Opens a blocking session to the first reachable host of
 * cfg->cassandra_hosts (STARTUP, authentication, optional TLS), with
 * timeouts of cfg->cassandra_timeout_ms.  keyspace may be NULL (no USE).
 * Returns 0, or CB_E_IO/CB_E_AUTH/CB_E_TLS/CB_E_TIMEOUT/CB_E_CQL with the
 * reason.
 */
int cb_cql_session_open(const struct cb_config *cfg, const char *keyspace,
			struct cb_cql_session **out, char *errstr,
			size_t errstr_size);
void cb_cql_session_close(struct cb_cql_session *s);

/* The same, to one node (host, port) instead of cfg->cassandra_hosts. */
int cb_cql_session_open_node(const struct cb_config *cfg, const char *host,
			     int port, struct cb_cql_session **out,
			     char *errstr, size_t errstr_size);

struct cb_cql_peer;

/*
 * Reads the ring as the session's node sees it: its system.local row
 * first, then system.peers_v2 (system.peers on a server without it; rows
 * without a port get default_port).  *peers is malloc'd (free it with
 * cb_cql_peers_free, cql_ring.h).  Returns 0 or a negative cb_err.
 */
int cb_cql_read_ring(struct cb_cql_session *s, int default_port,
		     struct cb_cql_peer **peers, size_t *n, char *errstr,
		     size_t errstr_size);

struct cb_cql_repl;

/* The replication of keyspace (system_schema.keyspaces) into r.  Returns
 * 0, CB_E_NOTFOUND (no such keyspace) or a negative cb_err. */
int cb_cql_read_replication(struct cb_cql_session *s, const char *keyspace,
			    struct cb_cql_repl *r, char *errstr,
			    size_t errstr_size);

/* Runs one statement without bound values (DDL, USE, INSERT...) at the
 * configured consistency.  Returns 0 or a negative cb_err. */
int cb_cql_exec(struct cb_cql_session *s, const char *cql, char *errstr,
		size_t errstr_size);

/*
 * Runs a query and copies the first column of its first row, converted to
 * text (text, varchar, ascii, uuid, int, bigint, timestamp as epoch ms,
 * boolean), into out.  Returns 0, CB_E_NOTFOUND when there is no row, or a
 * negative cb_err.
 */
int cb_cql_query_text(struct cb_cql_session *s, const char *cql, char *out,
		      size_t out_size, char *errstr, size_t errstr_size);

/* Waits until system.local and every system.peers row report the same
 * schema_version, for at most timeout_ms.  Returns 0 or CB_E_TIMEOUT. */
int cb_cql_wait_schema_agreement(struct cb_cql_session *s, int timeout_ms,
				 char *errstr, size_t errstr_size);

struct cb_cql_str {
	const char *p;
	size_t len;
};

/* One raw_chat_messages row; pointers valid during the callback only. */
struct cb_cql_message {
	struct cb_cql_str channel_id;
	int64_t timestamp_ms;
	uint8_t message_id[16];
	struct cb_cql_str user_id;
	struct cb_cql_str username;
	struct cb_cql_str message;
	const struct cb_cql_str *emotes;
	size_t nemotes;
};

/* Return 0 to go on, non-zero to stop reading (that value is returned). */
typedef int (*cb_cql_message_cb)(void *ctx, const struct cb_cql_message *m);

/*
 * Reads the messages of one channel from <keyspace>.raw_chat_messages
 * (cassandra_tables = raw) or, otherwise, from raw_chat_messages_by_day,
 * walking its day partitions newest first over the 7 days of the TTL
 * (cql_days.h; the token then carries the day and the paging state), newest
 * first, with since_ms <= timestamp < until_ms (since_ms INT64_MIN
 * and until_ms INT64_MAX: unbounded), at most limit rows, starting at the
 * opaque paging token page_in (NULL: the first page).  Calls cb once per
 * row.  When more rows follow, *page_out is set to a malloc'd token (the
 * caller frees it) for the next call, else to NULL.  Returns 0 or a
 * negative cb_err.
 */
int cb_cql_read_messages(struct cb_cql_session *s, const char *channel,
			 int64_t since_ms, int64_t until_ms, size_t limit,
			 const uint8_t *page_in, size_t page_in_len,
			 cb_cql_message_cb cb, void *ctx, uint8_t **page_out,
			 size_t *page_out_len, char *errstr,
			 size_t errstr_size);

#endif
