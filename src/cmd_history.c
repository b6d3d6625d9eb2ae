/*
 * cmd_history.c - `chatbattle history --channel C [--since T] [--until T]
 * [--limit N]`: the seed's "historical access and replay".  Reads the
 * channel's rows of <keyspace>.raw_chat_messages (cassandra_tables = raw)
 * or raw_chat_messages_by_day (daily, both: the day buckets newest first,
 * docs/cql.md) back through the CQL module's blocking session
 * (cb_cql_read_messages), newest first, a page
 * of history_page_size rows at a time, and prints each as one ChatMessage
 * JSON object a line, with the original fields in their original order
 * (channel_id, user_id, username, message, timestamp, emotes, message_id),
 * so the output can be fed back to Kafka (kcat -P) to replay a channel.
 *
 * --since and --until bound the message time, both inclusive: epoch
 * milliseconds or ISO 8601 (cb_isotime_parse).  Without
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
#include "chatbattle/isotime.h"
#include "chatbattle/jw.h"

#define PROG "chatbattle history"

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
	CB_JW_LIT(&h->w, "\n");
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
	if (cb_isotime_parse(v, ms, errstr, sizeof(errstr)) == 0)
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
