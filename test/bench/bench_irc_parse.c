/*
 * bench_irc_parse.c - IRC line parser throughput on one core, over the
 * corpus mix of test/fixtures/twitch-irc/lines.tsv (all 303 lines, tagged
 * PRIVMSGs, USERNOTICEs, control lines and malformed ones, repeated):
 *   parse only            cb_irc_parse
 *   parse + decode + JSON cb_irc_parse, cb_chatmsg_from_irc (which decodes
 *                         the chat lines and writes their JSON)
 *   tagged PRIVMSG only   the same over real chat lines alone
 * Each line is first copied to a scratch buffer (the parser works in
 * place), as the irc thread's read buffer would hold it; the copy is
 * counted.  Target (issue 4): >= 2 million lines/s parse on one core.
 * CB_BENCH_SECONDS (default 1) sets the time per figure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chatbattle/chatmsg.h"
#include "chatbattle/irc_msg.h"

#define MAX_LINES 1024

static char *lines[MAX_LINES];
static size_t lens[MAX_LINES];
static size_t nlines, total_bytes;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int load(void)
{
	const char *root = getenv("CB_ROOT");
	char path[1024], *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/test/fixtures/twitch-irc/lines.tsv",
		 root ? root : ".");
	f = fopen(path, "r");
	if (f == NULL) {
		perror(path);
		return -1;
	}
	while ((n = getline(&buf, &cap, f)) > 0 && nlines < MAX_LINES) {
		char *raw = strchr(buf, '\t'), *o;
		size_t len = 0;

		if (raw == NULL || (raw = strchr(raw + 1, '\t')) == NULL)
			continue;
		raw++;
		o = malloc(strlen(raw) + 1);
		if (o == NULL)
			break;
		for (char *p = raw; *p != '\0' && *p != '\n'; p++) {
			if (p[0] == '\\' && p[1] == 't') {
				o[len++] = '\t';
				p++;
			} else {
				o[len++] = *p;
			}
		}
		lines[nlines] = o;
		lens[nlines++] = len;
		total_bytes += len;
	}
	free(buf);
	fclose(f);
	return nlines > 0 ? 0 : -1;
}

int main(void)
{
	static struct cb_irc_msg m;
	static char scratch[CB_IRC_LINE_MAX + 2];
	static char json[CB_CHATMSG_BUF_SIZE];
	const char *secs_env = getenv("CB_BENCH_SECONDS");
	double secs = secs_env ? atof(secs_env) : 1.0;
	double t0, el, rate_parse, rate_full;
	unsigned long long done, ok = 0, records = 0, json_bytes = 0;
	struct cb_chatmsg out;

	if (load() != 0)
		return 1;

	/* parse only */
	done = 0;
	t0 = now_s();
	do {
		for (size_t i = 0; i < nlines; i++) {
			memcpy(scratch, lines[i], lens[i]);
			ok += cb_irc_parse(scratch, lens[i], &m, NULL, 0) == 0;
		}
		done += nlines;
	} while ((el = now_s() - t0) < secs);
	rate_parse = (double)done / el;
	printf("irc parse: %zu distinct lines (avg %zu bytes), %llu parsed "
	       "in %.2f s\n",
	       nlines, total_bytes / nlines, done, el);
	printf("  parse only            %6.2f M lines/s  %6.0f MB/s   "
	       "(target >= 2 M lines/s on one core) %s\n",
	       rate_parse / 1e6,
	       rate_parse * (double)total_bytes / (double)nlines / 1e6,
	       rate_parse >= 2e6 ? "OK" : "BELOW TARGET");

	/* parse + decode + JSON */
	done = 0;
	t0 = now_s();
	do {
		for (size_t i = 0; i < nlines; i++) {
			int rc;

			memcpy(scratch, lines[i], lens[i]);
			if (cb_irc_parse(scratch, lens[i], &m, NULL, 0) != 0)
				continue;
			rc = cb_chatmsg_from_irc(&m, 1700000000000LL, true,
						 &out, json, sizeof(json),
						 NULL, 0);
			if (rc > 0) {
				records++;
				json_bytes += out.json_len;
			}
		}
		done += nlines;
	} while ((el = now_s() - t0) < secs);
	rate_full = (double)done / el;
	printf("  parse+decode+JSON     %6.2f M lines/s  (%.0f%% of the "
	       "lines are records, %.2f M records/s, avg JSON %llu bytes)\n",
	       rate_full / 1e6, 100.0 * (double)records / (double)done,
	       (double)records / el / 1e6,
	       records ? json_bytes / records : 0);

	/* the hot path proper: tagged PRIVMSGs only (real Twitch chat) */
	{
		size_t idx[MAX_LINES], n = 0, bytes = 0;

		for (size_t i = 0; i < nlines; i++) {
			memcpy(scratch, lines[i], lens[i]);
			if (cb_irc_parse(scratch, lens[i], &m, NULL, 0) == 0 &&
			    m.kind == CB_IRC_K_PRIVMSG && m.ntags > 5) {
				idx[n++] = i;
				bytes += lens[i];
			}
		}
		done = 0;
		t0 = now_s();
		do {
			for (size_t k = 0; k < n; k++) {
				size_t i = idx[k];

				memcpy(scratch, lines[i], lens[i]);
				if (cb_irc_parse(scratch, lens[i], &m, NULL,
						 0) == 0)
					cb_chatmsg_from_irc(&m, 1700000000000LL,
							    true, &out, json,
							    sizeof(json), NULL,
							    0);
			}
			done += n;
		} while ((el = now_s() - t0) < secs);
		printf("  tagged PRIVMSG only   %6.2f M lines/s  parse+decode+"
		       "JSON (%zu lines, avg %zu bytes)\n",
		       (double)done / el / 1e6, n, n ? bytes / n : 0);
	}
	for (size_t i = 0; i < nlines; i++)
		free(lines[i]);
	return ok > 0 ? 0 : 1;
}
