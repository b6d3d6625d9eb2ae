/*
 * test_mt_stats_cache.c - one writer applies ChannelStats records while
 * reader threads read the same channels without locks: every view a reader
 * gets must be one the writer published (no torn reads: all fields derive
 * from one sequence number and never go backwards), every JSON document
 * must be whole (ASan catches a freed blob, TSan a race), new channels
 * appear while readers look them up, and an SSE-style waiter sees the
 * version move.  Runs under ASan/UBSan and TSan.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "chatbattle/err.h"
#include "chatbattle/stats_cache.h"
#include "test.h"

#define CHANNELS 8
#define READERS 3
#define W 600000LL

static struct cb_stats_cache *cache;
static _Atomic int done;
static int rounds;

struct result {
	uint64_t views, docs, errors;
};

static void name_of(int i, char *out)
{
	snprintf(out, 26, "ch%d", i);
}

/* Record number k of a channel: every field is a function of k. */
static int put(int ch, int64_t k)
{
	char name[26], json[512], errstr[256];
	int n;

	name_of(ch, name);
	n = snprintf(json, sizeof(json),
		     "{\"channel_id\":\"%s\",\"message_count\":%lld,"
		     "\"window_start\":%lld,\"window_end\":%lld,"
		     "\"window_duration_seconds\":600,\"unique_chatters\":%lld,"
		     "\"last_updated\":%lld,\"state\":\"%lld\"}",
		     name, (long long)k, (long long)((k / 4) * W),
		     (long long)((k / 4) * W + W), (long long)(k * 3),
		     (long long)(k * 7), (long long)k);
	return cb_stats_cache_apply(cache, name, strlen(name), json, (size_t)n,
				    0, errstr, sizeof(errstr));
}

static void *writer(void *arg)
{
	struct result *r = arg;

	for (int64_t k = 1; k <= rounds; k++)
		for (int ch = 0; ch < CHANNELS; ch++)
			if (put(ch, k) != 0)
				r->errors++;
	atomic_store(&done, 1);
	return NULL;
}

static long long field(const char *j, const char *key)
{
	const char *p = strstr(j, key);

	return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static void *reader(void *arg)
{
	struct result *r = arg;
	int64_t last[CHANNELS] = {0};
	char name[26];

	while (!atomic_load(&done)) {
		for (int ch = 0; ch < CHANNELS; ch++) {
			struct cb_stats_view v;
			char *j;
			size_t len;
			int64_t k;

			name_of(ch, name);
			if (cb_stats_cache_get(cache, name, &v) != 0)
				continue; /* not created yet */
			r->views++;
			k = v.message_count;
			if (k < last[ch] || v.window_start_ms != (k / 4) * W ||
			    v.window_end_ms != (k / 4) * W + W ||
			    v.unique_chatters != k * 3 ||
			    v.last_updated_ms != k * 7 || strcmp(v.channel, name))
				r->errors++;
			last[ch] = k;
			if (cb_stats_cache_current_json(cache, name, &j,
							&len) == 0) {
				long long jk = field(j, "\"message_count\":");

				r->docs++;
				if (jk < 1 || field(j, "\"window_start\":") !=
						      (jk / 4) * W ||
				    j[len - 1] != '}' || strstr(j, "state"))
					r->errors++;
				free(j);
			}
			if (cb_stats_cache_windows_json(cache, name, 3, &j,
							&len) == 0) {
				r->docs++;
				if (j[0] != '[' || j[len - 1] != ']')
					r->errors++;
				free(j);
			}
		}
	}
	return NULL;
}

static void *waiter(void *arg)
{
	struct result *r = arg;
	uint64_t seen = 0;

	while (!atomic_load(&done)) {
		uint64_t v = cb_stats_cache_wait(cache, seen, 20);

		if (v < seen)
			r->errors++;
		if (v != seen)
			r->views++;
		seen = v;
	}
	return NULL;
}

static void test_readers_never_see_torn_or_freed_data(void)
{
	pthread_t w, rd[READERS], wt;
	struct result wr = {0}, rr[READERS] = {{0}}, wtr = {0};
	char errstr[256];
	const char *env = getenv("CB_STATS_STRESS_ROUNDS");

	rounds = env ? (int)strtol(env, NULL, 10) : 8000;
	CHECK_INT(cb_stats_cache_new(&cache, 3, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < READERS; i++)
		pthread_create(&rd[i], NULL, reader, &rr[i]);
	pthread_create(&wt, NULL, waiter, &wtr);
	pthread_create(&w, NULL, writer, &wr);
	pthread_join(w, NULL);
	for (int i = 0; i < READERS; i++)
		pthread_join(rd[i], NULL);
	pthread_join(wt, NULL);
	printf("# %d rounds x %d channels; reads:", rounds, CHANNELS);
	for (int i = 0; i < READERS; i++)
		printf(" %llu views %llu docs", (unsigned long long)rr[i].views,
		       (unsigned long long)rr[i].docs);
	printf("; waiter woke %llu times\n", (unsigned long long)wtr.views);
	CHECK_INT(wr.errors, 0);
	for (int i = 0; i < READERS; i++)
		CHECK_INT(rr[i].errors, 0);
	CHECK_INT(wtr.errors, 0);
	CHECK(wtr.views > 0);
	/* Final state: the last record of every channel. */
	for (int ch = 0; ch < CHANNELS; ch++) {
		struct cb_stats_view v;
		char name[26];

		name_of(ch, name);
		CHECK_INT(cb_stats_cache_get(cache, name, &v), 0);
		CHECK_INT(v.message_count, rounds);
	}
	cb_stats_cache_free(cache);
}

int main(void)
{
	RUN(test_readers_never_see_torn_or_freed_data);
	return test_done();
}
