/*
 * cql_int.h - what the Cassandra writer (cql.c) and the blocking session
 * (cql_sync.c) share: host lists, TLS contexts, the statements on
 * raw_chat_messages, and the consistency setting.  Private to src/.
 */
#ifndef CHATBATTLE_CQL_INT_H
#define CHATBATTLE_CQL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "chatbattle/cql_frame.h"

struct cb_config;

struct cb_cql_host {
	char name[256];
	int port;
};

/*
 * Splits cfg->cassandra_hosts ("h1,h2:9043,[::1]:9042") into a malloc'd
 * array; hosts without a port get cfg->cassandra_port.  Returns 0 or
 * CB_E_CONFIG naming the bad entry.
 */
int cb_cql_hosts(const struct cb_config *cfg, struct cb_cql_host **out,
		 size_t *n, char *errstr, size_t errstr_size);

/* A client TLS context verifying the server against cfg->cassandra_ca_file
 * (or the system store).  Returns NULL with the reason. */
SSL_CTX *cb_cql_tls_ctx(const struct cb_config *cfg, char *errstr,
			size_t errstr_size);

/* Sets SNI and the name/IP check on a new SSL for host. */
int cb_cql_tls_prepare(SSL *ssl, const char *host, char *errstr,
		       size_t errstr_size);

/* cfg->cassandra_consistency as a protocol code. */
uint16_t cb_cql_cfg_consistency(const struct cb_config *cfg);

/* The INSERT the writer prepares (7 bind variables, in the column order
 * channel_id, timestamp, message_id, user_id, username, message, emotes),
 * into buf. */
void cb_cql_insert_cql(const char *keyspace, char *buf, size_t size);
/* The same for raw_chat_messages_by_day (8 bind variables: channel_id,
 * day, then those of raw_chat_messages after channel_id). */
void cb_cql_insert_day_cql(const char *keyspace, char *buf, size_t size);
/* Which tables cfg->cassandra_tables names (raw, daily, both; unset:
 * both).  Readers use the daily table whenever it is written. */
void cb_cql_cfg_tables(const struct cb_config *cfg, bool *raw, bool *daily);

/* Writes the [value] of a list<text> from the record's emote block
 * (count times uint16_t length + bytes, unaligned). */
void cb_cql_put_emote_block(struct cb_cql_wbuf *w, const uint8_t *block,
			    size_t block_len, uint16_t count);

#endif
