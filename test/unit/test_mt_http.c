/*
 * test_mt_http.c - the HTTP module under concurrency (also run under
 * ThreadSanitizer): a writer thread applies ChannelStats records as fast as
 * it can while event streams on a two-thread pool suspend and resume,
 * clients come and go, keep-alive GETs read the same cache, and the server
 * stops with streams still open.  Every stream must see its channel's
 * counts only grow and reach the last one written; battle streams (every
 * channel, and two by name) must deliver the last record's figures.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "chatbattle/app.h"
#include "chatbattle/config.h"
#include "chatbattle/http.h"
#include "chatbattle/metrics.h"
#include "chatbattle/ring.h"
#include "chatbattle/stats_cache.h"
#include "test.h"
#include "test_http_client.h"

#define NCHAN 4
#define NSTREAMS 8
#define LAST 400

static struct cb_stats_cache *cache;
static atomic_int writer_done;

static void *writer(void *arg)
{
	char doc[512], errstr[128];
	static const char *const names[NCHAN] = {"c0", "c1", "c2", "c3"};

	for (int n = 1; n <= LAST; n++) {
		for (int c = 0; c < NCHAN; c++) {
			int len = snprintf(
				doc, sizeof(doc),
				"{\"channel_id\":\"%s\",\"message_count\":%d,"
				"\"window_start\":1234567800000,"
				"\"window_end\":1234568400000,"
				"\"window_duration_seconds\":600,"
				"\"last_updated\":%d}",
				names[c], n, 1000 + n);

			cb_stats_cache_apply(cache, names[c], 2, doc,
					     (size_t)len, 0, errstr,
					     sizeof(errstr));
		}
		if (n % 50 == 0) {
			struct pollfd p = {.fd = -1};

			poll(&p, 0, 5); /* let streams interleave */
		}
	}
	atomic_store(&writer_done, 1);
	return NULL;
}

struct reader {
	uint16_t port;
	int idx;
	int ok;
	int fd; /* the stream left open across the stop, or -1 */
};

/* Reads one stream; checks counts grow and the last one arrives. */
static void *stream_reader(void *arg)
{
	struct reader *r = arg;
	static _Thread_local char buf[1 << 20];
	char ch[8], want[64];
	size_t have = 0, off = 0;
	int fd, last = 0;

	snprintf(ch, sizeof(ch), "c%d", r->idx % NCHAN);
	fd = open_stream(r->port, ch);
	if (fd < 0)
		return NULL;
	snprintf(want, sizeof(want), "\"message_count\":%d,", LAST);
	if (!stream_until(fd, buf, sizeof(buf), &have, &off, want, 20000)) {
		printf("# stream %d: no final count\n", r->idx);
		close(fd);
		return NULL;
	}
	r->ok = 1;
	for (const char *p = buf; (p = strstr(p, "\"message_count\":")) != NULL;
	     p++) {
		int v = (int)strtol(p + 16, NULL, 10);

		if (v < last) {
			printf("# stream %d: %d after %d\n", r->idx, v, last);
			r->ok = 0;
		}
		last = v;
	}
	/* Half of them stay open across the stop. */
	if (r->idx % 2 == 0)
		close(fd);
	else
		r->fd = fd;
	return NULL;
}

/* A battle stream (query "" or "?channels=..."): reads until its document
 * holds the last record of every channel it names. */
struct battle_reader {
	uint16_t port;
	const char *query;
	int nchan; /* channels the document must list */
	int ok;
};

static void *battle_stream_reader(void *arg)
{
	struct battle_reader *b = arg;
	static _Thread_local char buf[1 << 20];
	char raw[256], want[64];
	size_t have = 0, off = 0;
	int fd = conn_open(b->port), found = 0;

	snprintf(raw, sizeof(raw),
		 "GET /api/battle/events%s HTTP/1.1\r\nHost: x\r\n\r\n",
		 b->query);
	if (fd < 0 || send_all(fd, raw, strlen(raw)) != 0)
		goto out;
	snprintf(want, sizeof(want), "\"last_updated\":%d,", 1000 + LAST);
	/* A document with every channel at its last record: count the hits
	 * within one document (they end with the next "event:"). */
	for (int64_t deadline = t_now_ms() + 20000; t_now_ms() < deadline;) {
		size_t doc;

		if (!stream_until(fd, buf, sizeof(buf), &have, &off,
				  "event: battle\n", 20000))
			break;
		doc = off;
		if (!stream_until(fd, buf, sizeof(buf), &have, &off, "\n\n",
				  5000))
			break;
		found = 0;
		for (const char *p = buf + doc; p < buf + off &&
					     (p = strstr(p, want)) != NULL &&
					     p < buf + off;
		     p++)
			found++;
		if (found == b->nchan) {
			b->ok = 1;
			break;
		}
	}
	if (!b->ok)
		printf("# battle stream %s: %d of %d channels at the last "
		       "record\n",
		       b->query, found, b->nchan);
out:
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void *getter(void *arg)
{
	uint16_t port = *(uint16_t *)arg;
	struct resp *res = malloc(sizeof(*res));
	int fd = conn_open(port);
	long served = 0;

	while (fd >= 0 && (served < 20 || !atomic_load(&writer_done))) {
		static const char req[] =
			"GET /api/channels/c1/stats HTTP/1.1\r\nHost: x\r\n\r\n";

		if (send_all(fd, req, sizeof(req) - 1) != 0 ||
		    read_resp(fd, res, false) != 0)
			break;
		if (res->status == 200)
			served++;
	}
	if (fd >= 0)
		close(fd);
	free(res);
	return (void *)served;
}

static void test_streams_and_gets_under_writes(void)
{
	struct cb_config cfg;
	struct cb_app app = {.wake_fd = -1};
	struct reader rd[NSTREAMS];
	struct battle_reader br[2];
	pthread_t w, g[2], s[NSTREAMS], bt[2];
	char errstr[256];
	uint16_t port;
	void *served[2];

	CHECK_INT(cb_config_init(&cfg, errstr, sizeof(errstr)), 0);
	CHECK_INT(cb_stats_cache_new(&cache, 4, errstr, sizeof(errstr)), 0);
	cfg.port = 0;
	cfg.http_threads = 2;
	cfg.sse_heartbeat_s = 1;
	app.cfg = &cfg;
	app.cache = cache;
	CHECK_INT(cb_http_start(&app, errstr, sizeof(errstr)), 0);
	port = cb_http_port(&app);
	for (int i = 0; i < NSTREAMS; i++) {
		rd[i] = (struct reader){.port = port, .idx = i, .fd = -1};
		pthread_create(&s[i], NULL, stream_reader, &rd[i]);
	}
	br[0] = (struct battle_reader){.port = port, .query = "", .nchan = NCHAN};
	br[1] = (struct battle_reader){.port = port, .query = "?channels=c3,c0",
				       .nchan = 2};
	for (int i = 0; i < 2; i++) {
		pthread_create(&g[i], NULL, getter, &port);
		pthread_create(&bt[i], NULL, battle_stream_reader, &br[i]);
	}
	pthread_create(&w, NULL, writer, NULL);
	pthread_join(w, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(g[i], &served[i]);
	for (int i = 0; i < NSTREAMS; i++)
		pthread_join(s[i], NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(bt[i], NULL);
	/* Stop with the odd streams still open: they must end. */
	cb_http_stop(&app);
	for (int i = 0; i < NSTREAMS; i++) {
		if (rd[i].fd >= 0) {
			char tail[256];
			bool closed = false;

			fill(rd[i].fd, tail, 0, sizeof(tail), sizeof(tail),
			     t_now_ms() + 3000, &closed);
			close(rd[i].fd);
			if (!closed)
				printf("# stream %d not ended by stop\n", i);
			rd[i].ok &= closed;
		}
	}
	printf("# keep-alive GETs served: %ld and %ld\n", (long)served[0],
	       (long)served[1]);
	cb_stats_cache_free(cache);
	cb_config_release(&cfg);
	for (int i = 0; i < NSTREAMS; i++)
		CHECK(rd[i].ok);
	CHECK((long)served[0] > 0 && (long)served[1] > 0);
	CHECK(br[0].ok && br[1].ok);
	CHECK_INT(cb_metric_get(CB_M_sse_clients), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(test_streams_and_gets_under_writes);
	return test_done();
}
