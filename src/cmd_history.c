/*
 * cmd_history.c - `chatbattle history --channel C [--since T] [--until T]
 * [--limit N]`: the seed's "historical access and replay".  Reads the
 * channel's rows of <keyspace>.raw_chat_messages back through the CQL
 * module's blocking session (cb_cql_read_messages), newest first, a page
 * of history_page_size rows at a time, and prints each as one ChatMessage
 * JSON object a line, with the original fields in their original order
 * (channel_id, user_id, username, message, timestamp, emotes, message_id),
 * so the output can be fed back to Kafka (kcat -P) to replay a channel.
 *
 * --since and --until bound the message time, both inclusive: epoch
 * milliseconds or ISO 8601 (cb_cmd_history_parse_time, pure).  Without
 * --until the bound is now.  Runs in the main thread; one reused JSON
 * buffer, so memory stays flat however many rows are printed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatbattle/clock.h"
#include "chatbattle/cmd.h"
#include "chatbattle/commands.h"
#include "chatbattle/config.h"
#include "chatbattle/cql.h"
#include "chatbattle/err.h"
#include "chatbattle/jw.h"

#define PROG "chatbattle history"

/* ---- time parsing ---- */

/* n decimal digits at s into *v; false when any is not a digit. */
static bool digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int month_days(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30,
				   31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

int cb_cmd_history_parse_time(const char *s, int64_t *ms, char *errstr,
			      size_t errstr_size)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, oh = 0, om = 0;
	int sign = 0;
	const char *p = s;
	size_t n = strlen(s), k = 0;

	while (k < n && s[k] >= '0' && s[k] <= '9')
		k++;
	if (n > 0 && k == n) {
		int64_t v = 0;

		if (n > 18)
			goto bad;
		for (size_t i = 0; i < n; i++)
			v = v * 10 + (s[i] - '0');
		*ms = v;
		return 0;
	}
	if (n < 10 || !digits(p, 4, &y) || p[4] != '-' ||
	    !digits(p + 5, 2, &mo) || p[7] != '-' || !digits(p + 8, 2, &d))
		goto bad;
	if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo))
		goto bad;
	p += 10;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!digits(p, 2, &h) || p[2] != ':' || !digits(p + 3, 2, &mi))
			goto bad;
		p += 5;
		if (*p == ':') {
			if (!digits(p + 1, 2, &sec))
				goto bad;
			p += 3;
			if (*p == '.' || *p == ',') {
				int nd = 0;

				for (p++; *p >= '0' && *p <= '9'; p++, nd++)
					if (nd < 3)
						frac = frac * 10 + (*p - '0');
				if (nd == 0 || nd > 9)
					goto bad;
				for (; nd < 3; nd++)
					frac *= 10;
			}
		}
		if (h > 23 || mi > 59 || sec > 59)
			goto bad;
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p == '+' ? 1 : -1;
			if (!digits(p + 1, 2, &oh))
				goto bad;
			p += 3;
			if (*p == ':')
				p++;
			if (!digits(p, 2, &om) || oh > 23 || om > 59)
				goto bad;
			p += 2;
		} else {
			/* A local time would depend on the machine's zone:
			 * ask for the zone instead of guessing. */
			return cb_seterr(errstr, errstr_size, CB_E_PARSE,
					 "'%s' has no time zone: end it with Z "
					 "(UTC) or an offset such as +01:00",
					 s);
		}
	}
	if (*p != '\0')
		goto bad;
	*ms = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
	       (int64_t)sign * (oh * 3600 + om * 60)) *
		      1000 +
	      frac;
	return 0;
bad:
	return cb_seterr(errstr, errstr_size, CB_E_PARSE,
			 "'%s' is neither epoch milliseconds nor an ISO 8601 "
			 "time such as 2026-11-22T18:00:00Z",
			 s);
}

/* ---- the command ---- */

struct history {
	struct cb_jw w;
	size_t printed;
	size_t page_rows;
	int cb_err; /* why print_row stopped the read, or 0 */
};

static int print_row(void *ctx, const struct cb_cql_message *m)
{
	static const char hex[] = "0123456789abcdef";
	struct history *h = ctx;
	char uuid[36];
	size_t o = 0;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			uuid[o++] = '-';
		uuid[o++] = hex[m->message_id[i] >> 4];
		uuid[o++] = hex[m->message_id[i] & 15];
	}
	cb_jw_reset(&h->w);
	cb_jw_open(&h->w, '{');
	cb_jw_key(&h->w, "channel_id");
	cb_jw_str(&h->w, m->channel_id.p, m->channel_id.len);
	cb_jw_key(&h->w, "user_id");
	cb_jw_str(&h->w, m->user_id.p, m->user_id.len);
	cb_jw_key(&h->w, "username");
	cb_jw_str(&h->w, m->username.p, m->username.len);
	cb_jw_key(&h->w, "message");
	cb_jw_str(&h->w, m->message.p, m->message.len);
	cb_jw_key(&h->w, "timestamp");
	cb_jw_int(&h->w, m->timestamp_ms);
	cb_jw_key(&h->w, "emotes");
	cb_jw_open(&h->w, '[');
	for (size_t i = 0; i < m->nemotes; i++)
		cb_jw_str(&h->w, m->emotes[i].p, m->emotes[i].len);
	cb_jw_close(&h->w, ']');
	cb_jw_key(&h->w, "message_id");
	cb_jw_str(&h->w, uuid, sizeof(uuid));
	cb_jw_close(&h->w, '}');
	cb_jw_raw(&h->w, "\n", 1);
	if (h->w.oom)
		return h->cb_err = CB_E_NOMEM;
	if (fwrite(h->w.buf, 1, h->w.len, stdout) != h->w.len)
		return h->cb_err = CB_E_IO;
	h->printed++;
	h->page_rows++;
	return 0;
}

/* One time bound from a setting; false (reported) when it does not parse. */
static bool bound(const struct cb_config *cfg, enum cb_opt_id id,
		  int64_t *ms)
{
	const char *v = id == CB_OPT_history_since ? cfg->history_since
						   : cfg->history_until;
	char errstr[256];

	if (v == NULL || v[0] == '\0')
		return true;
	if (cb_cmd_history_parse_time(v, ms, errstr, sizeof(errstr)) == 0)
		return true;
	fprintf(stderr, PROG ": %s (%s): %s\n", cb_options[id].name,
		cfg->src_where[id] != NULL ? cfg->src_where[id] : "default",
		errstr);
	return false;
}

int cb_cmd_history(const struct cb_config *cfg)
{
	struct history h = {0};
	struct cb_cql_session *s = NULL;
	uint8_t *page = NULL;
	size_t page_len = 0;
	int64_t since = INT64_MIN, until = cb_wall_ms();
	size_t limit = (size_t)cfg->history_limit;
	char errstr[1024] = "";
	int rc = CB_EXIT_FAILURE, err, empty_pages = 0;

	if (cfg->nargs > 0) {
		fprintf(stderr,
			PROG ": unexpected argument \"%s\" (the channel is "
			     "given with --channel)\n",
			cfg->args[0]);
		return CB_EXIT_USAGE;
	}
	if (cfg->channel.n != 1) {
		fprintf(stderr,
			PROG ": name exactly one channel with --channel "
			     "(%zu given)\n",
			cfg->channel.n);
		return CB_EXIT_USAGE;
	}
	if (!bound(cfg, CB_OPT_history_since, &since) ||
	    !bound(cfg, CB_OPT_history_until, &until))
		return CB_EXIT_USAGE;
	if (since > until) {
		fprintf(stderr,
			PROG ": --since (%lld) is later than %s (%lld)\n",
			(long long)since,
			cfg->history_until[0] != '\0' ? "--until" : "now",
			(long long)until);
		return CB_EXIT_USAGE;
	}
	err = cb_cql_session_open(cfg, cfg->cassandra_keyspace, &s, errstr,
				  sizeof(errstr));
	if (err != 0) {
		fprintf(stderr, PROG ": %s\n", errstr);
		return CB_EXIT_FAILURE;
	}
	/* The CQL bound is exclusive; --until is inclusive. */
	if (until < INT64_MAX)
		until++;
	for (;;) {
		size_t want = limit - h.printed;
		uint8_t *next = NULL;
		size_t next_len = 0;

		if (want > (size_t)cfg->history_page_size)
			want = (size_t)cfg->history_page_size;
		h.page_rows = 0;
		err = cb_cql_read_messages(s, cfg->channel.v[0], since, until,
					   want, page, page_len, print_row, &h,
					   &next, &next_len, errstr,
					   sizeof(errstr));
		free(page);
		page = next;
		page_len = next_len;
		if (err != 0) {
			if (h.cb_err == CB_E_IO)
				fprintf(stderr, PROG ": writing the output "
						"failed\n");
			else if (h.cb_err != 0)
				fprintf(stderr, PROG ": %s\n",
					cb_strerror(h.cb_err));
			else
				fprintf(stderr, PROG ": %s\n", errstr);
			goto out;
		}
		if (page == NULL || h.printed >= limit)
			break;
		/* Cassandra may answer a page with no row (tombstones) but
		 * always moves on; a server that does not is not followed
		 * forever. */
		empty_pages = h.page_rows == 0 ? empty_pages + 1 : 0;
		if (empty_pages > 1000) {
			fprintf(stderr, PROG ": Cassandra keeps answering "
					"empty pages; giving up\n");
			goto out;
		}
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, PROG ": writing the output failed\n");
		goto out;
	}
	rc = CB_EXIT_OK;
out:
	free(page);
	cb_jw_release(&h.w);
	cb_cql_session_close(s);
	return rc;
}
