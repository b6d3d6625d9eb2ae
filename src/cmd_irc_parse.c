/*
 * cmd_irc_parse.c - `chatbattle irc-parse`: reads raw IRC lines (CR LF or
 * LF) on standard input and prints, one per line, the exact JSON record the
 * irc thread would produce to Kafka for each chat message (and event, when
 * irc_emit_events is on).  Other lines are skipped silently; malformed ones
 * are reported on standard error with their line number and reason.  Runs
 * in the main thread; a fixed input buffer, so a line longer than
 * CB_IRC_LINE_MAX is reported and skipped, never truncated.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chatbattle/chatmsg.h"
#include "chatbattle/clock.h"
#include "chatbattle/commands.h"
#include "chatbattle/config.h"
#include "chatbattle/irc_msg.h"

/* Larger than a line so that read(2) fetches many lines at once. */
#define IN_BUF_SIZE (4 * CB_IRC_LINE_MAX)

struct irc_parse_state {
	bool emit_events;
	unsigned long lineno;
	struct cb_irc_msg msg;
	char json[CB_CHATMSG_BUF_SIZE];
	char in[IN_BUF_SIZE];
};

static void oversize(const struct irc_parse_state *st)
{
	fprintf(stderr,
		"chatbattle irc-parse: line %lu: longer than %d bytes, "
		"skipped\n",
		st->lineno, CB_IRC_LINE_MAX);
}

/* One line without its LF. */
static void handle_line(struct irc_parse_state *st, char *line, size_t len)
{
	struct cb_chatmsg out;
	char errstr[256];
	int rc;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return; /* blank lines carry nothing; IRC clients ignore them */
	if (len > CB_IRC_LINE_MAX) {
		oversize(st);
		return;
	}
	rc = cb_irc_parse(line, len, &st->msg, errstr, sizeof(errstr));
	if (rc == 0)
		rc = cb_chatmsg_from_irc(&st->msg, cb_wall_ms(), st->emit_events,
					 &out, st->json, sizeof(st->json),
					 errstr, sizeof(errstr));
	if (rc < 0) {
		fprintf(stderr, "chatbattle irc-parse: line %lu: %s\n",
			st->lineno, errstr);
		return;
	}
	if (rc == CB_CHATMSG_NONE)
		return;
	fwrite(out.json, 1, out.json_len, stdout);
	fputc('\n', stdout);
}

int cb_cmd_irc_parse(const struct cb_config *cfg)
{
	static struct irc_parse_state st;
	size_t have = 0;
	bool skipping = false;
	int status = CB_EXIT_OK;

	st.emit_events = cfg->irc_emit_events;
	st.lineno = 0;
	for (;;) {
		ssize_t r = read(STDIN_FILENO, st.in + have,
				 sizeof(st.in) - have);
		size_t start = 0;
		char *nl;

		if (r < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr,
				"chatbattle irc-parse: reading standard "
				"input: %s\n",
				strerror(errno));
			status = CB_EXIT_FAILURE;
			break;
		}
		if (r == 0) {
			if (have > 0 || skipping) { /* last line, no LF */
				st.lineno++;
				if (skipping)
					oversize(&st);
				else
					handle_line(&st, st.in, have);
			}
			break;
		}
		have += (size_t)r;
		while ((nl = memchr(st.in + start, '\n', have - start)) !=
		       NULL) {
			st.lineno++;
			if (skipping) {
				oversize(&st);
				skipping = false;
			} else {
				handle_line(&st, st.in + start,
					    (size_t)(nl - (st.in + start)));
			}
			start = (size_t)(nl - st.in) + 1;
		}
		memmove(st.in, st.in + start, have - start);
		have -= start;
		if (have == sizeof(st.in)) {
			/* No LF in a full buffer: far past the cap.  Drop
			 * bytes until the next LF, then report the line. */
			skipping = true;
			have = 0;
		}
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "chatbattle irc-parse: writing standard "
				"output failed\n");
		status = CB_EXIT_FAILURE;
	}
	return status;
}
