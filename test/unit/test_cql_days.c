/*
 * test_cql_days.c - the day-bucket walk of raw_chat_messages_by_day
 * (src/cql_days.c): its cursor's encoding, and reading a channel across
 * day boundaries page by page against a simulated table, whose partitions
 * page like Cassandra's (a paging state whenever a page is full, even when
 * nothing follows), with empty days between full ones.  Every page size
 * must return every row exactly once, newest day first, in order.
 */
#include <stdlib.h>
#include <string.h>

#include "chatbattle/cql_days.h"
#include "chatbattle/err.h"
#include "test.h"

#define DAY0 20420 /* the oldest simulated day */
#define NDAYS 6

/* Rows per day, oldest first: empty days at both ends and between. */
static const int day_rows[NDAYS] = {0, 5, 0, 3, 1, 4};

struct table {
	int32_t seen[64][2]; /* (day, row) in the order delivered */
	size_t nseen;
	int queries;
	int fail_at;         /* the Nth query fails, 0: never */
};

static int query(void *q, int32_t day, const uint8_t *ps, size_t ps_len,
		 size_t limit, size_t *rows, uint8_t **ps_out,
		 size_t *ps_out_len)
{
	struct table *t = q;
	int total = day >= DAY0 && day < DAY0 + NDAYS ? day_rows[day - DAY0]
						      : 0;
	int from = 0, n;

	*rows = 0;
	*ps_out = NULL;
	*ps_out_len = 0;
	if (++t->queries == t->fail_at)
		return CB_E_IO;
	if (ps != NULL) {
		if (ps_len != 1)
			return CB_E_PROTO;
		from = ps[0];
	}
	n = total - from < (int)limit ? total - from : (int)limit;
	for (int i = 0; i < n && t->nseen < 64; i++) {
		/* newest first inside a day: row total-1 first */
		t->seen[t->nseen][0] = day;
		t->seen[t->nseen][1] = total - 1 - (from + i);
		t->nseen++;
	}
	*rows = (size_t)n;
	if (n == (int)limit) { /* a full page: Cassandra sends a state */
		*ps_out = malloc(1);
		(*ps_out)[0] = (uint8_t)(from + n);
		*ps_out_len = 1;
	}
	return 0;
}

static void cursor_round_trip(void)
{
	uint8_t *c = NULL;
	const uint8_t *ps;
	size_t n = 0, ps_len;
	int32_t day = 0;

	CHECK_INT(cb_cql_days_cursor_encode(20426, (const uint8_t *)"\x01\x02",
					    2, &c, &n),
		  0);
	CHECK_INT(n, 10);
	CHECK(memcmp(c, "CBd1\x00\x00\x4f\xca\x01\x02", 10) == 0);
	CHECK_INT(cb_cql_days_cursor_decode(c, n, &day, &ps, &ps_len), 0);
	CHECK_INT(day, 20426);
	CHECK_INT(ps_len, 2);
	CHECK(ps != NULL && ps[0] == 1 && ps[1] == 2);
	free(c);
	/* a day from its start, and days before the epoch */
	CHECK_INT(cb_cql_days_cursor_encode(-3, NULL, 0, &c, &n), 0);
	CHECK_INT(cb_cql_days_cursor_decode(c, n, &day, &ps, &ps_len), 0);
	CHECK_INT(day, -3);
	CHECK(ps == NULL && ps_len == 0);
	free(c);
}

static void bad_cursors_are_refused(void)
{
	struct table t = {0};
	uint8_t *out = NULL, *c = NULL;
	const uint8_t *ps;
	size_t out_len = 0, ps_len, n;
	int32_t day;

	/* a raw paging state (cassandra_tables was raw), short, wrong magic */
	CHECK_INT(cb_cql_days_cursor_decode((const uint8_t *)"\x00\x10" "ab", 4,
					    &day, &ps, &ps_len),
		  CB_E_PARSE);
	CHECK_INT(cb_cql_days_cursor_decode((const uint8_t *)"CBd1\x00", 5,
					    &day, &ps, &ps_len),
		  CB_E_PARSE);
	CHECK_INT(cb_cql_days_walk(DAY0 + 5, DAY0, 10,
				   (const uint8_t *)"CBd2\0\0\0\0", 8, query,
				   &t, &out, &out_len),
		  CB_E_PARSE);
	/* a day after the range's newest is no cursor of this range */
	cb_cql_days_cursor_encode(DAY0 + 6, NULL, 0, &c, &n);
	CHECK_INT(cb_cql_days_walk(DAY0 + 5, DAY0, 10, c, n, query, &t, &out,
				   &out_len),
		  CB_E_PARSE);
	free(c);
	CHECK_INT(t.queries, 0);
	CHECK(out == NULL);
}

/* Walks the whole range with pages of `limit`; checks every row comes
 * once, newest day first and newest first inside a day. */
static void walk_all(size_t limit)
{
	struct table t = {0};
	uint8_t *cur = NULL;
	size_t cur_len = 0, total = 0, pages = 0;
	size_t expect_n = 0;

	for (int d = 0; d < NDAYS; d++)
		expect_n += (size_t)day_rows[d];
	for (;;) {
		uint8_t *next = NULL;
		size_t next_len = 0, before = t.nseen;
		int err = cb_cql_days_walk(DAY0 + NDAYS - 1, DAY0, limit, cur,
					   cur_len, query, &t, &next,
					   &next_len);

		free(cur);
		cur = next;
		cur_len = next_len;
		CHECK_OR(err == 0, out);
		CHECK_OR(t.nseen - before <= limit, out);
		/* a page short of the limit is the last one */
		if (t.nseen - before < limit)
			CHECK_OR(cur == NULL, out);
		pages++;
		CHECK_OR(pages < 100, out);
		if (cur == NULL)
			break;
	}
	CHECK_INT(t.nseen, expect_n);
	for (int d = NDAYS - 1; d >= 0; d--)
		for (int r = day_rows[d] - 1; r >= 0; r--) {
			CHECK_OR(total < t.nseen, out);
			if (t.seen[total][0] != DAY0 + d ||
			    t.seen[total][1] != r)
				printf("# limit %zu: row %zu is (%d, %d), "
				       "expected (%d, %d)\n",
				       limit, total, (int)t.seen[total][0],
				       (int)t.seen[total][1], DAY0 + d, r);
			CHECK(t.seen[total][0] == DAY0 + d &&
			      t.seen[total][1] == r);
			total++;
		}
out:
	free(cur);
}

static void every_page_size_reads_every_row_once(void)
{
	for (size_t limit = 1; limit <= 14; limit++)
		walk_all(limit);
	walk_all(1000);
}

/* One page of 6 spans three days (4 of the newest, the 1 before, and 1
 * of the day before that) and the next starts inside that day. */
static void a_page_spans_midnight(void)
{
	struct table t = {0};
	uint8_t *cur = NULL;
	size_t cur_len = 0;
	int32_t day;
	const uint8_t *ps;
	size_t ps_len;

	CHECK_INT(cb_cql_days_walk(DAY0 + 5, DAY0, 6, NULL, 0, query, &t,
				   &cur, &cur_len),
		  0);
	CHECK_INT(t.nseen, 6);
	CHECK_INT(t.seen[3][0], DAY0 + 5);
	CHECK_INT(t.seen[4][0], DAY0 + 4);
	CHECK_INT(t.seen[5][0], DAY0 + 3);
	CHECK_OR(cur != NULL, out);
	CHECK_INT(cb_cql_days_cursor_decode(cur, cur_len, &day, &ps, &ps_len),
		  0);
	CHECK_INT(day, DAY0 + 3);
	CHECK(ps != NULL && ps_len == 1 && ps[0] == 1);
out:
	free(cur);
}

static void a_failed_query_ends_the_walk(void)
{
	struct table t = {.fail_at = 2};
	uint8_t *cur = NULL;
	size_t cur_len = 0;

	CHECK_INT(cb_cql_days_walk(DAY0 + 5, DAY0, 100, NULL, 0, query, &t,
				   &cur, &cur_len),
		  CB_E_IO);
	CHECK(cur == NULL);
}

static void an_empty_range_reads_nothing(void)
{
	struct table t = {0};
	uint8_t *cur = NULL;
	size_t cur_len = 0;

	/* only the empty oldest day */
	CHECK_INT(cb_cql_days_walk(DAY0, DAY0, 10, NULL, 0, query, &t, &cur,
				   &cur_len),
		  0);
	CHECK_INT(t.nseen, 0);
	CHECK_INT(t.queries, 1);
	CHECK(cur == NULL);
}

/* A server that answers every page with no row and a paging state. */
static int stuck(void *q, int32_t day, const uint8_t *ps, size_t ps_len,
		 size_t limit, size_t *rows, uint8_t **ps_out,
		 size_t *ps_out_len)
{
	(*(int *)q)++;
	*rows = 0;
	*ps_out = malloc(1);
	(*ps_out)[0] = 7;
	*ps_out_len = 1;
	return 0;
}

static void a_server_whose_pages_never_end_is_not_followed_forever(void)
{
	uint8_t *cur = NULL;
	size_t cur_len = 0;
	int queries = 0;

	CHECK_INT(cb_cql_days_walk(DAY0 + 5, DAY0, 10, NULL, 0, stuck,
				   &queries, &cur, &cur_len),
		  CB_E_PROTO);
	CHECK_INT(queries, CB_CQL_DAYS_QUERIES_MAX);
	CHECK(cur == NULL);
}

int main(void)
{
	RUN(cursor_round_trip);
	RUN(bad_cursors_are_refused);
	RUN(every_page_size_reads_every_row_once);
	RUN(a_page_spans_midnight);
	RUN(a_failed_query_ends_the_walk);
	RUN(an_empty_range_reads_nothing);
	RUN(a_server_whose_pages_never_end_is_not_followed_forever);
	return test_done();
}
