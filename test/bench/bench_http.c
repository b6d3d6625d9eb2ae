/*
 * bench_http.c - GET /api/channels/:id/stats through the real HTTP module
 * and stats cache, in this process, with nothing else running (an idle
 * pipeline), measured by wrk (Debian) with 64 keep-alive connections:
 * requests/s and p99 latency, for http_threads 1 and 2.
 *
 * Target: >= 100,000 requests/s.  wrk runs on the same two cores, so the
 * figure is what the server does while sharing the machine with its load.
 * The measurement under full ingest is test/bench/b50-http.
 * CB_BENCH_HTTP_SECONDS sets the duration of each run (default 8).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chatbattle/app.h"
#include "chatbattle/config.h"
#include "chatbattle/http.h"
#include "chatbattle/log.h"
#include "chatbattle/ring.h"
#include "chatbattle/stats_cache.h"

/* wrk's latency text ("1.23ms", "850.00us", "1.01s") in microseconds. */
static double to_us(const char *v)
{
	char *end;
	double x = strtod(v, &end);

	if (strncmp(end, "us", 2) == 0)
		return x;
	if (strncmp(end, "ms", 2) == 0)
		return x * 1e3;
	if (strncmp(end, "s", 1) == 0)
		return x * 1e6;
	return x;
}

static int run_wrk(uint16_t port, int seconds, double *rps, double *p99_us,
		   long *non2xx)
{
	char cmd[512], line[512];
	FILE *p;

	*rps = *p99_us = 0;
	*non2xx = 0;
	snprintf(cmd, sizeof(cmd),
		 "wrk -t2 -c64 -d%ds --latency "
		 "http://127.0.0.1:%u/api/channels/benchchan/stats 2>&1",
		 seconds, (unsigned)port);
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	while (fgets(line, sizeof(line), p) != NULL) {
		char v[64];

		if (sscanf(line, " 99%% %63s", v) == 1)
			*p99_us = to_us(v);
		if (strncmp(line, "Requests/sec:", 13) == 0)
			*rps = strtod(line + 13, NULL);
		if (strstr(line, "Non-2xx or 3xx responses:") != NULL)
			*non2xx = strtol(strchr(line, ':') + 1, NULL, 10);
	}
	return pclose(p) == 0 ? 0 : -1;
}

int main(void)
{
	const char *sec = getenv("CB_BENCH_HTTP_SECONDS");
	int seconds = sec ? (int)strtol(sec, NULL, 10) : 8;
	double best = 0;

	signal(SIGPIPE, SIG_IGN);
	if (system("command -v wrk >/dev/null 2>&1") != 0) {
		printf("http stats GET: not measured: wrk is not installed "
		       "(apt-get install wrk)\n");
		return 0;
	}
	cb_log_init(CB_LOG_WARN);
	for (int threads = 1; threads <= 2; threads++) {
		struct cb_config cfg;
		struct cb_app app = {.wake_fd = -1};
		struct cb_stats_cache *cache;
		char errstr[256];
		static const char doc[] =
			"{\"channel_id\":\"benchchan\",\"message_count\":1250,"
			"\"window_start\":1234567800000,"
			"\"window_end\":1234568400000,"
			"\"window_duration_seconds\":600,"
			"\"last_updated\":1234567890123}";
		double rps, p99;
		long bad;

		if (cb_config_init(&cfg, errstr, sizeof(errstr)) != 0 ||
		    cb_stats_cache_new(&cache, 8, errstr, sizeof(errstr)) != 0 ||
		    cb_stats_cache_apply(cache, "benchchan", 9, doc,
					 sizeof(doc) - 1, 0, errstr,
					 sizeof(errstr)) != 0) {
			fprintf(stderr, "bench_http: %s\n", errstr);
			return 1;
		}
		cfg.port = 0;
		cfg.http_threads = threads;
		app.cfg = &cfg;
		app.cache = cache;
		if (cb_http_start(&app, errstr, sizeof(errstr)) != 0) {
			fprintf(stderr, "bench_http: %s\n", errstr);
			return 1;
		}
		if (run_wrk(cb_http_port(&app), seconds, &rps, &p99, &bad) !=
		    0) {
			fprintf(stderr, "bench_http: wrk failed\n");
			cb_http_stop(&app);
			return 1;
		}
		cb_http_stop(&app);
		cb_stats_cache_free(cache);
		cb_config_release(&cfg);
		printf("http stats GET, idle, http_threads=%d, 64 keep-alive "
		       "connections: %.0f requests/s (target >= 100000), "
		       "p99 %.2f ms%s\n",
		       threads, rps, p99 / 1000.0,
		       bad ? " (with non-2xx responses!)" : "");
		if (bad)
			return 1;
		if (rps > best)
			best = rps;
	}
	return 0;
}
