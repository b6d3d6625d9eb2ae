/*
 * cql_days.h - reading raw_chat_messages_by_day across day boundaries.
 * Pure code: no I/O, no clock (the caller passes the day range).
 *
 * A reader asks for one channel's messages newest first.  The rows sit in
 * one partition per (channel_id, UTC day), so the walk queries the newest
 * day first and moves back one day whenever a partition is exhausted,
 * until the page is full or the oldest day is done.  Where it stops is a
 * cursor: the day and Cassandra's paging state inside that day (empty: the
 * day from its start).  The next call resumes exactly there, so a page
 * that spans midnight is seamless and no row is skipped or repeated.
 *
 * Cursor bytes (opaque to clients; cql.h's page tokens): "CBd1", the day
 * as a big-endian int32 (days since 1970-01-01), then the paging state.
 */
#ifndef CHATBATTLE_CQL_DAYS_H
#define CHATBATTLE_CQL_DAYS_H

#include <stddef.h>
#include <stdint.h>

#define CB_CQL_DAYS_MAGIC "CBd1"
#define CB_CQL_DAYS_HDR 8
#define CB_CQL_DAYS_QUERIES_MAX 10000 /* partition queries per walk */

/*
 * Encodes (day, paging state ps[0..n-1]) into a malloc'd cursor *out
 * (*out_len bytes).  Returns 0 or CB_E_NOMEM.
 */
int cb_cql_days_cursor_encode(int32_t day, const uint8_t *ps, size_t n,
			      uint8_t **out, size_t *out_len);

/*
 * Decodes a cursor: *day, and *ps and *ps_len pointing into in (NULL, 0 when
 * the day starts from its first row).  Returns 0 or CB_E_PARSE.
 */
int cb_cql_days_cursor_decode(const uint8_t *in, size_t n, int32_t *day,
			      const uint8_t **ps, size_t *ps_len);

/*
 * One partition query of the walk: rows of `day`, from paging state ps
 * (NULL: the start), at most limit of them, each delivered to the
 * caller's row callback.  Sets *rows to the rows delivered and *ps_out to
 * the paging state after them (malloc'd, NULL when the day is exhausted).
 * Returns 0, or a negative cb_err / the row callback's non-zero value,
 * which ends the walk.
 */
typedef int (*cb_cql_days_query_fn)(void *q, int32_t day, const uint8_t *ps,
				    size_t ps_len, size_t limit, size_t *rows,
				    uint8_t **ps_out, size_t *ps_out_len);

/*
 * Reads at most limit rows, days newest..oldest (inclusive, newest >=
 * oldest), starting at cursor (NULL: the newest day's start).  Sets
 * *cursor_out to a malloc'd cursor when rows may follow, else NULL.
 * Returns 0, CB_E_PARSE (a bad cursor, or one outside the range),
 * CB_E_PROTO (more than CB_CQL_DAYS_QUERIES_MAX queries: a server whose
 * pages never end), or the query's error.
 */
int cb_cql_days_walk(int32_t newest, int32_t oldest, size_t limit,
		     const uint8_t *cursor, size_t cursor_len,
		     cb_cql_days_query_fn query, void *q,
		     uint8_t **cursor_out, size_t *cursor_out_len);

#endif
