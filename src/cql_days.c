/*
 * cql_days.c - the walk over raw_chat_messages_by_day's day partitions and
 * its cursor (see cql_days.h).  Pure code, used by cql_sync.c's
 * cb_cql_read_messages (history, GET /api/channels/:id/messages) and
 * tested in test/unit/test_cql_days.c.
 */
#include <stdlib.h>
#include <string.h>

#include "chatbattle/cql_days.h"
#include "chatbattle/err.h"

int cb_cql_days_cursor_encode(int32_t day, const uint8_t *ps, size_t n,
			      uint8_t **out, size_t *out_len)
{
	uint32_t d = (uint32_t)day;
	uint8_t *p = malloc(CB_CQL_DAYS_HDR + n);

	*out = NULL;
	*out_len = 0;
	if (p == NULL)
		return CB_E_NOMEM;
	memcpy(p, CB_CQL_DAYS_MAGIC, 4);
	p[4] = (uint8_t)(d >> 24);
	p[5] = (uint8_t)(d >> 16);
	p[6] = (uint8_t)(d >> 8);
	p[7] = (uint8_t)d;
	if (n > 0)
		memcpy(p + CB_CQL_DAYS_HDR, ps, n);
	*out = p;
	*out_len = CB_CQL_DAYS_HDR + n;
	return 0;
}

int cb_cql_days_cursor_decode(const uint8_t *in, size_t n, int32_t *day,
			      const uint8_t **ps, size_t *ps_len)
{
	if (in == NULL || n < CB_CQL_DAYS_HDR ||
	    memcmp(in, CB_CQL_DAYS_MAGIC, 4) != 0)
		return CB_E_PARSE;
	*day = (int32_t)(((uint32_t)in[4] << 24) | ((uint32_t)in[5] << 16) |
			 ((uint32_t)in[6] << 8) | in[7]);
	*ps = n > CB_CQL_DAYS_HDR ? in + CB_CQL_DAYS_HDR : NULL;
	*ps_len = n - CB_CQL_DAYS_HDR;
	return 0;
}

int cb_cql_days_walk(int32_t newest, int32_t oldest, size_t limit,
		     const uint8_t *cursor, size_t cursor_len,
		     cb_cql_days_query_fn query, void *q,
		     uint8_t **cursor_out, size_t *cursor_out_len)
{
	const uint8_t *ps = NULL;
	uint8_t *owned = NULL;
	size_t ps_len = 0, got = 0;
	int32_t day = newest;
	int err = 0, queries = 0;

	*cursor_out = NULL;
	*cursor_out_len = 0;
	if (cursor != NULL) {
		if (cb_cql_days_cursor_decode(cursor, cursor_len, &day, &ps,
					      &ps_len) != 0)
			return CB_E_PARSE;
		/* a day after the range's newest would repeat nothing but
		 * is not a cursor this range made; older than the oldest:
		 * nothing left */
		if (day > newest)
			return CB_E_PARSE;
	}
	while (got < limit && day >= oldest) {
		uint8_t *next = NULL;
		size_t next_len = 0, rows = 0;

		/* Cassandra may answer a page with no row (tombstones) but
		 * always moves on; one that does not is not followed
		 * forever. */
		if (++queries > CB_CQL_DAYS_QUERIES_MAX) {
			free(owned);
			return CB_E_PROTO;
		}

		err = query(q, day, ps, ps_len, limit - got, &rows, &next,
			    &next_len);
		free(owned);
		owned = NULL;
		ps = NULL;
		ps_len = 0;
		if (err != 0) {
			free(next);
			return err;
		}
		got += rows;
		if (next != NULL && next_len > 0) {
			/* the day has more: go on inside it */
			owned = next;
			ps = next;
			ps_len = next_len;
		} else {
			free(next);
			if (day == INT32_MIN)
				break;
			day--;
		}
	}
	if (day >= oldest && (ps != NULL || got >= limit))
		err = cb_cql_days_cursor_encode(day, ps, ps_len, cursor_out,
						cursor_out_len);
	free(owned);
	return err;
}
