/*
 * test_stats_cache.c - the stats cache on one thread: applying ChannelStats
 * records, the view GET serves, the JSON documents (without the aggregator's
 * state), the window history, the channel list, versions and waits.
 */
#include <stdio.h>

#include "chatbattle/err.h"
#include "chatbattle/metrics.h"
#include "chatbattle/stats_cache.h"
#include "test.h"

static char doc[4096];

/* A ChannelStats document for channel ch, window [start, start + 600 s). */
static const char *stats(const char *ch, int64_t count, int64_t start,
			 int64_t updated)
{
	snprintf(doc, sizeof(doc),
		 "{\"channel_id\":\"%s\",\"message_count\":%lld,"
		 "\"window_start\":%lld,\"window_end\":%lld,"
		 "\"window_duration_seconds\":600,\"unique_chatters\":%lld,"
		 "\"last_updated\":%lld,\"last_received_at\":%lld,"
		 "\"state\":\"AAAA\"}",
		 ch, (long long)count, (long long)start,
		 (long long)(start + 600000), (long long)(count / 2),
		 (long long)updated, (long long)(updated - 50));
	return doc;
}

static int apply(struct cb_stats_cache *c, const char *ch, int64_t count,
		 int64_t start)
{
	char errstr[256];
	const char *j = stats(ch, count, start, start + 1000);

	return cb_stats_cache_apply(c, ch, strlen(ch), j, strlen(j), 0, errstr,
				    sizeof(errstr));
}

static void test_get_after_apply(void)
{
	struct cb_stats_cache *c;
	struct cb_stats_view v;
	char errstr[256];

	CHECK_INT(cb_stats_cache_new(&c, 4, errstr, sizeof(errstr)), 0);
	CHECK_INT(cb_stats_cache_get(c, "pajlada", &v), CB_E_NOTFOUND);
	CHECK_INT(apply(c, "pajlada", 1250, 1234567800000), 0);
	CHECK_INT(cb_stats_cache_get(c, "pajlada", &v), 0);
	CHECK_STR(v.channel, "pajlada");
	CHECK_INT(v.message_count, 1250);
	CHECK_INT(v.window_start_ms, 1234567800000);
	CHECK_INT(v.window_end_ms, 1234568400000);
	CHECK_INT(v.window_duration_s, 600);
	CHECK_INT(v.last_updated_ms, 1234567801000);
	CHECK_INT(v.unique_chatters, 625);
	CHECK(v.version > 0);
	CHECK_INT(cb_stats_cache_get(c, "pajlad", &v), CB_E_NOTFOUND);
	CHECK_INT(cb_stats_cache_get(c, "pajladaa", &v), CB_E_NOTFOUND);
	cb_stats_cache_free(c);
}

static void test_rejects_what_is_not_channel_stats(void)
{
	struct cb_stats_cache *c;
	struct cb_stats_view v;
	char errstr[256];
	const char *bad[] = {
		"not json",
		"[1,2]",
		"{\"channel_id\":\"a\",\"message_count\":\"x\","
		"\"window_start\":1,\"window_end\":2}",
		"{\"channel_id\":\"a\",\"window_start\":1,\"window_end\":2}",
		"{\"channel_id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
		"\"message_count\":1,\"window_start\":1,\"window_end\":2}",
		"{\"message_count\":1,\"window_start\":1,\"window_end\":2}",
	};

	CHECK_INT(cb_stats_cache_new(&c, 4, errstr, sizeof(errstr)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errstr[0] = '\0';
		CHECK_INT(cb_stats_cache_apply(c, NULL, 0, bad[i],
					       strlen(bad[i]), 0, errstr,
					       sizeof(errstr)),
			  CB_E_PARSE);
		CHECK(errstr[0] != '\0');
	}
	CHECK_INT(cb_stats_cache_channels(c, NULL, 0), 0);
	CHECK_INT(cb_stats_cache_version(c), 0);
	/* The key names the channel when the document does not. */
	CHECK_INT(cb_stats_cache_apply(c, "keyed", 5, bad[5], strlen(bad[5]),
				       0, errstr, sizeof(errstr)),
		  0);
	CHECK_INT(cb_stats_cache_get(c, "keyed", &v), 0);
	CHECK_INT(v.window_duration_s, 0);
	cb_stats_cache_free(c);
}

static void test_json_drops_state_keeps_order(void)
{
	struct cb_stats_cache *c;
	char errstr[256], *j;
	size_t len;

	CHECK_INT(cb_stats_cache_new(&c, 4, errstr, sizeof(errstr)), 0);
	CHECK_INT(apply(c, "forsen", 7, 600000), 0);
	CHECK_INT(cb_stats_cache_current_json(c, "forsen", &j, &len), 0);
	CHECK_INT(len, strlen(j));
	CHECK(strstr(j, "\"state\"") == NULL);
	CHECK(strncmp(j, "{\"channel_id\":\"forsen\",\"message_count\":7,"
			 "\"window_start\":600000,\"window_end\":1200000,"
			 "\"window_duration_seconds\":600,",
		      strlen("{\"channel_id\":\"forsen\",\"message_count\":7,"
			     "\"window_start\":600000,\"window_end\":1200000,"
			     "\"window_duration_seconds\":600,")) == 0);
	free(j);
	CHECK_INT(cb_stats_cache_current_json(c, "nobody", &j, &len),
		  CB_E_NOTFOUND);
	CHECK(j == NULL);
	cb_stats_cache_free(c);
}

/* Returns the window_start of the k-th element of a windows array. */
static long long nth_start(const char *arr, int k)
{
	const char *p = arr;

	for (int i = 0; i <= k; i++) {
		p = strstr(p, "\"window_start\":");
		if (p == NULL)
			return -1;
		p += strlen("\"window_start\":");
	}
	return strtoll(p, NULL, 10);
}

static void test_history_newest_first_and_bounded(void)
{
	struct cb_stats_cache *c;
	struct cb_stats_view v;
	char errstr[256], *j;
	size_t len;
	const int64_t W = 600000;

	/* windows_kept 2: the current window and two past ones. */
	CHECK_INT(cb_stats_cache_new(&c, 2, errstr, sizeof(errstr)), 0);
	for (int64_t i = 1; i <= 5; i++)
		CHECK_INT(apply(c, "x", i * 10, i * W), 0);
	CHECK_INT(cb_stats_cache_windows_json(c, "x", 100, &j, &len), 0);
	CHECK(j[0] == '[' && j[len - 1] == ']');
	CHECK_INT(nth_start(j, 0), 5 * W);
	CHECK_INT(nth_start(j, 1), 4 * W);
	CHECK_INT(nth_start(j, 2), 3 * W);
	CHECK_INT(nth_start(j, 3), -1);
	free(j);
	CHECK_INT(cb_stats_cache_windows_json(c, "x", 1, &j, &len), 0);
	CHECK_INT(nth_start(j, 0), 5 * W);
	CHECK_INT(nth_start(j, 1), -1);
	free(j);

	/* A late update of a past window changes that entry, not the view. */
	CHECK_INT(cb_stats_cache_get(c, "x", &v), 0);
	uint64_t before = v.version;
	CHECK_INT(apply(c, "x", 41, 4 * W), 0);
	CHECK_INT(cb_stats_cache_get(c, "x", &v), 0);
	CHECK_INT(v.message_count, 50);
	CHECK_INT(v.window_start_ms, 5 * W);
	CHECK(v.version > before);
	CHECK_INT(cb_stats_cache_windows_json(c, "x", 100, &j, &len), 0);
	CHECK(strstr(j, "\"message_count\":41") != NULL);
	CHECK(strstr(j, "\"message_count\":40") == NULL);
	free(j);

	/* Older than everything kept: ignored.  A gap inside is filled. */
	CHECK_INT(apply(c, "x", 99, 1 * W), 0);
	CHECK_INT(cb_stats_cache_windows_json(c, "x", 100, &j, &len), 0);
	CHECK(strstr(j, "\"message_count\":99") == NULL);
	free(j);
	CHECK_INT(apply(c, "x", 77, 7 * W), 0);
	CHECK_INT(apply(c, "x", 66, 6 * W), 0);
	CHECK_INT(cb_stats_cache_windows_json(c, "x", 100, &j, &len), 0);
	CHECK_INT(nth_start(j, 0), 7 * W);
	CHECK_INT(nth_start(j, 1), 6 * W);
	CHECK_INT(nth_start(j, 2), 5 * W);
	free(j);
	CHECK_INT(cb_stats_cache_get(c, "x", &v), 0);
	CHECK_INT(v.message_count, 77);
	cb_stats_cache_free(c);
}

static void test_many_channels_all_found(void)
{
	struct cb_stats_cache *c;
	struct cb_stats_view v;
	char errstr[256], name[26];
	static char list[3000][26];
	int seen = 0;

	CHECK_INT(cb_stats_cache_new(&c, 1, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < 2500; i++) {
		snprintf(name, sizeof(name), "chan_%d", i);
		CHECK_INT(apply(c, name, i, 600000), 0);
	}
	for (int i = 0; i < 2500; i++) {
		snprintf(name, sizeof(name), "chan_%d", i);
		CHECK_INT(cb_stats_cache_get(c, name, &v), 0);
		CHECK_INT(v.message_count, i);
	}
	CHECK_INT(cb_stats_cache_channels(c, list, 3000), 2500);
	CHECK_INT(cb_stats_cache_channels(c, list, 10), 2500);
	CHECK_INT(cb_stats_cache_channels(c, list, 3000), 2500);
	for (int i = 0; i < 2500; i++)
		if (strcmp(list[i], "chan_1234") == 0)
			seen++;
	CHECK_INT(seen, 1);
	CHECK_INT(cb_metric_get(CB_M_stats_channels), 2500);
	cb_stats_cache_free(c);
}

static void test_version_and_wait(void)
{
	struct cb_stats_cache *c;
	char errstr[256];
	uint64_t v0, v1;
	int64_t t0;

	CHECK_INT(cb_stats_cache_new(&c, 2, errstr, sizeof(errstr)), 0);
	v0 = cb_stats_cache_version(c);
	t0 = t_now_ms();
	CHECK_INT(cb_stats_cache_wait(c, v0, 50), v0);
	CHECK(t_now_ms() - t0 >= 45);
	CHECK_INT(apply(c, "a", 1, 0), 0);
	v1 = cb_stats_cache_version(c);
	CHECK(v1 != v0);
	t0 = t_now_ms();
	CHECK_INT(cb_stats_cache_wait(c, v0, 10000), v1);
	CHECK(t_now_ms() - t0 < 1000);
	cb_stats_cache_free(c);
}

static void test_e2e_latency_observed_only_when_live(void)
{
	struct cb_stats_cache *c;
	char errstr[256];
	const char *j;

	cb_metrics_reset();
	CHECK_INT(cb_stats_cache_new(&c, 2, errstr, sizeof(errstr)), 0);
	/* last_received_at = updated - 50 = 600000 + 1000 - 50. */
	j = stats("a", 1, 600000, 601000);
	CHECK_INT(cb_stats_cache_apply(c, "a", 1, j, strlen(j), 0, errstr,
				       sizeof(errstr)),
		  0);
	CHECK_INT(cb_metric_quantile_us(CB_M_e2e_latency_us, 0.5), 0);
	CHECK_INT(cb_stats_cache_apply(c, "a", 1, j, strlen(j), 601070, errstr,
				       sizeof(errstr)),
		  0);
	/* 120 ms, within its histogram bucket. */
	uint64_t p50 = cb_metric_quantile_us(CB_M_e2e_latency_us, 0.5);
	CHECK(p50 >= 50000 && p50 <= 250000);
	CHECK_INT(cb_metric_get(CB_M_stats_records_total), 2);
	cb_stats_cache_free(c);
}

int main(void)
{
	RUN(test_get_after_apply);
	RUN(test_rejects_what_is_not_channel_stats);
	RUN(test_json_drops_state_keeps_order);
	RUN(test_history_newest_first_and_bounded);
	RUN(test_many_channels_all_found);
	RUN(test_version_and_wait);
	RUN(test_e2e_latency_observed_only_when_live);
	return test_done();
}
