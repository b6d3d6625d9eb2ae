/*
 * test_window.c - the pure window logic: alignment, Kafka Streams' late rule
 * and its grace boundary (also against a straight model on random
 * out-of-order streams), events, unique chatters (exact, then HyperLogLog
 * within its documented error), space-saving top-k, the spike rule on
 * synthetic bursts, ChannelStats JSON, and the state round trip.
 */
#include <jansson.h>
#include <math.h>

#include "chatbattle/err.h"
#include "chatbattle/hll.h"
#include "chatbattle/jw.h"
#include "chatbattle/topk.h"
#include "chatbattle/window.h"
#include "test.h"

#define S 1000LL
#define MIN 60000LL

static struct cb_window_cfg cfg(int64_t size_s, int64_t grace_s)
{
	return (struct cb_window_cfg){
		.size_ms = size_s * S,
		.grace_ms = grace_s * S,
		.exact_limit = 1024,
		.top_k = 10,
		.spike_history = 10,
		.spike_min_rate = 30,
		.spike_threshold = 3.0,
	};
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A chat message record; user names "u<N>", emotes from a block. */
struct msg {
	struct cb_win_rec r;
	char user[16];
	uint8_t emotes[64];
};

static const struct cb_win_rec *mk(struct msg *m, const char *ch, int64_t ts,
				   int user, const char *emote)
{
	size_t n = 0;

	memset(m, 0, sizeof(*m));
	m->r.channel = ch;
	m->r.channel_len = strlen(ch);
	m->r.ts_ms = ts;
	m->r.received_at_ms = ts + 7;
	m->r.event = CB_EV_MESSAGE;
	if (user >= 0) {
		snprintf(m->user, sizeof(m->user), "u%d", user);
		m->r.user = m->r.username = m->user;
		m->r.user_len = m->r.username_len = strlen(m->user);
	}
	if (emote != NULL) {
		size_t len = strlen(emote);

		m->emotes[n++] = (uint8_t)len;
		m->emotes[n++] = 0;
		memcpy(m->emotes + n, emote, len);
		n += len;
		m->r.emote_count = 1;
	}
	m->r.emotes = m->emotes;
	m->r.emotes_len = (uint32_t)n;
	return &m->r;
}

static int apply_msg(struct cb_winset *ws, const char *ch, int64_t ts, int user)
{
	struct msg m;

	return cb_winset_apply(ws, mk(&m, ch, ts, user, NULL));
}

static int64_t count_of(struct cb_winset *ws, const char *ch, int64_t start)
{
	struct cb_win_figures f;

	if (cb_winset_figures(ws, ch, start, &f) != 0)
		return -1;
	return f.message_count;
}

static void test_alignment(void)
{
	CHECK_INT(cb_window_start(0, 600000), 0);
	CHECK_INT(cb_window_start(599999, 600000), 0);
	CHECK_INT(cb_window_start(600000, 600000), 600000);
	CHECK_INT(cb_window_start(1234567890123, 600000), 1234567800000);
	CHECK_INT(cb_window_start(-1, 600000), -600000);
	CHECK_INT(cb_window_start(-600000, 600000), -600000);
	CHECK_INT(cb_window_start(-600001, 600000), -1200000);
	CHECK_INT(cb_window_start(INT64_MAX, 10000), INT64_MAX / 10000 * 10000);
	CHECK_INT(cb_window_start(-10001, 10000), -20000);
	CHECK_INT(cb_window_start(-9999, 10000), -10000);
}

static void test_windows_half_open_and_per_minute(void)
{
	struct cb_window_cfg c = cfg(600, 60);
	struct cb_winset *ws;
	struct cb_win_figures f;
	char errstr[128];

	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(apply_msg(ws, "a", 600000, 1), CB_WIN_APPLIED);
	CHECK_INT(apply_msg(ws, "a", 1199999, 2), CB_WIN_APPLIED);
	CHECK_INT(apply_msg(ws, "a", 1200000, 3), CB_WIN_APPLIED);
	CHECK_INT(apply_msg(ws, "a", 660000, 1), CB_WIN_APPLIED);
	CHECK_INT(count_of(ws, "a", 600000), 3);
	CHECK_INT(count_of(ws, "a", 1200000), 1);
	CHECK_INT(cb_winset_figures(ws, "a", 600000, &f), 0);
	CHECK_INT(f.minutes, 10);
	CHECK_INT(f.per_minute[0], 1);
	CHECK_INT(f.per_minute[1], 1);
	CHECK_INT(f.per_minute[9], 1);
	CHECK_INT(f.unique_chatters, 2);
	CHECK(f.unique_exact);
	CHECK_INT(f.last_received_at, 1199999 + 7);
	CHECK_INT(cb_winset_stream_time(ws), 1200000);
	cb_winset_free(ws);

	/* A window size that is not a whole number of minutes. */
	c = cfg(90, 0);
	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(apply_msg(ws, "a", 90000 + 89999, 1), CB_WIN_APPLIED);
	CHECK_INT(cb_winset_figures(ws, "a", 90000, &f), 0);
	CHECK_INT(f.minutes, 2);
	CHECK_INT(f.per_minute[1], 1);
	cb_winset_free(ws);
}

/*
 * Kafka Streams: a window accepts records until stream time >= window end
 * + grace; stream time includes the record itself.
 */
static void test_late_rule_grace_boundary(void)
{
	struct cb_window_cfg c = cfg(10, 2);
	struct cb_winset *ws;
	char errstr[128];

	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(apply_msg(ws, "a", 5000, 1), CB_WIN_APPLIED);
	CHECK_INT(apply_msg(ws, "a", 11999, 1), CB_WIN_APPLIED);
	/* Stream time 11999 < 10000 + 2000: [0, 10 s) still open. */
	CHECK_INT(apply_msg(ws, "a", 9999, 1), CB_WIN_APPLIED);
	CHECK_INT(apply_msg(ws, "a", 12000, 1), CB_WIN_APPLIED);
	/* Stream time 12000 = end + grace: closed. */
	CHECK_INT(apply_msg(ws, "a", 9999, 1), CB_WIN_LATE);
	CHECK_INT(apply_msg(ws, "a", 0, 1), CB_WIN_LATE);
	CHECK_INT(count_of(ws, "a", 0), 2);
	CHECK_INT(count_of(ws, "a", 10000), 2);
	/* The late ones count on the channel's newest open window. */
	struct cb_win_figures f;
	CHECK_INT(cb_winset_figures(ws, "a", 10000, &f), 0);
	CHECK_INT(f.late_records, 2);
	/* Another channel of the partition shares stream time: its first
	 * record for [0, 10 s) is late too, and has no window to count on. */
	CHECK_INT(apply_msg(ws, "b", 3000, 1), CB_WIN_LATE);
	CHECK_INT(count_of(ws, "b", 0), -1);
	cb_winset_free(ws);

	/* Grace 0: the record at end - 1 is fine, nothing older after. */
	c = cfg(10, 0);
	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(apply_msg(ws, "a", 9999, 1), CB_WIN_APPLIED);
	CHECK_INT(apply_msg(ws, "a", 10000, 1), CB_WIN_APPLIED);
	CHECK_INT(apply_msg(ws, "a", 9999, 1), CB_WIN_LATE);
	cb_winset_free(ws);
}

/*
 * Random out-of-order streams against a model written straight from the
 * Kafka Streams rule: same applied counts per (channel, window), same late
 * records.
 */
static void test_matches_kafka_streams_model(void)
{
	enum { N = 20000, CH = 3, WMAX = 64 };
	struct cb_window_cfg c = cfg(10, 3);
	int64_t model[CH][WMAX] = {{0}};
	int64_t st = INT64_MIN, late_model = 0, late = 0;
	uint64_t rng = 42;
	struct cb_winset *ws;
	char errstr[128], name[CH][4] = {"c0", "c1", "c2"};

	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < N; i++) {
		/* Time moves forward ~30 ms per record with jitter of up to
		 * 8 s backwards: many records land within grace, some not. */
		int64_t base = (int64_t)i * 30;
		int64_t ts = base - (int64_t)(splitmix(&rng) % 8000);
		int ch = (int)(splitmix(&rng) % CH);
		int64_t start = cb_window_start(ts < 0 ? 0 : ts, c.size_ms);
		int rc;

		if (ts < 0)
			ts = 0;
		if (ts > st)
			st = ts;
		rc = apply_msg(ws, name[ch], ts, i % 50);
		if (start + c.size_ms > st - c.grace_ms) {
			model[ch][start / c.size_ms]++;
			CHECK_INT(rc, CB_WIN_APPLIED);
		} else {
			late_model++;
			CHECK_INT(rc, CB_WIN_LATE);
			late++;
		}
		/* Emitting (and pruning closed windows) must not change the
		 * outcome. */
		if (i % 97 == 0) {
			for (int k = 0; k < CH; k++)
				for (int w = 0; w < WMAX; w++) {
					int64_t got = count_of(ws, name[k],
							       w * c.size_ms);

					if (got >= 0)
						CHECK_INT(got, model[k][w]);
				}
		}
	}
	CHECK(late_model > 100);
	CHECK_INT(late, late_model);
	CHECK_INT(cb_winset_stream_time(ws), st);
	cb_winset_free(ws);
}

static void test_events_counted_apart(void)
{
	struct cb_window_cfg c = cfg(600, 60);
	struct cb_winset *ws;
	struct cb_win_figures f;
	struct msg m;
	char errstr[128];
	const char *types[] = {"sub", "resub", "raid", "ban", "timeout",
			       "clearchat", "whatever", "subgift"};

	CHECK_INT(cb_window_event_type(NULL, 0), CB_EV_MESSAGE);
	CHECK_INT(cb_window_event_type("message", 7), CB_EV_MESSAGE);
	CHECK_INT(cb_window_event_type("raid", 4), CB_EV_RAID);
	CHECK_INT(cb_window_event_type("rai", 3), CB_EV_OTHER);
	CHECK_STR(cb_window_event_name(CB_EV_CLEARMSG), "clearmsg");
	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(apply_msg(ws, "a", 1000, 1), CB_WIN_APPLIED);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		mk(&m, "a", 2000 + (int64_t)i, 9, NULL);
		m.r.event = cb_window_event_type(types[i], strlen(types[i]));
		CHECK_INT(cb_winset_apply(ws, &m.r), CB_WIN_APPLIED);
	}
	CHECK_INT(cb_winset_figures(ws, "a", 0, &f), 0);
	CHECK_INT(f.message_count, 1);
	CHECK_INT(f.unique_chatters, 1);
	CHECK_INT(f.per_minute[0], 1);
	CHECK_INT(f.events[CB_EV_SUB], 1);
	CHECK_INT(f.events[CB_EV_RAID], 1);
	CHECK_INT(f.events[CB_EV_OTHER], 1);
	CHECK_INT(f.events[CB_EV_CLEARCHAT], 1);
	CHECK_INT(f.events[CB_EV_SUBMYSTERYGIFT], 0);
	cb_winset_free(ws);
}

static void test_unique_exact_then_sketch(void)
{
	struct cb_window_cfg c = cfg(600, 60);
	struct cb_winset *ws;
	struct cb_win_figures f;
	char errstr[128];

	c.exact_limit = 100;
	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < 300; i++)
		apply_msg(ws, "a", 1000 + i, i % 100);
	CHECK_INT(cb_winset_figures(ws, "a", 0, &f), 0);
	CHECK_INT(f.unique_chatters, 100);
	CHECK(f.unique_exact);
	apply_msg(ws, "a", 5000, 100);
	CHECK_INT(cb_winset_figures(ws, "a", 0, &f), 0);
	CHECK(!f.unique_exact);
	CHECK(llabs(f.unique_chatters - 101) <= 5);
	for (int i = 0; i < 5000; i++)
		apply_msg(ws, "a", 6000 + i, i);
	CHECK_INT(cb_winset_figures(ws, "a", 0, &f), 0);
	CHECK(fabs((double)f.unique_chatters - 5000) <= 5000 * 3 * CB_HLL_STDERR);
	cb_winset_free(ws);
}

/*
 * The documented bound: 1.04 / sqrt(4096) relative standard error.  Each
 * trial must fall within 3 sigma; the mean of the relative errors must be
 * near 0 (no bias) and their spread near sigma.
 */
static void test_hll_error_bound(void)
{
	const size_t sizes[] = {100, 2000, 10000, 100000, 1000000};
	uint64_t rng = 7;

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		int trials = sizes[s] >= 1000000 ? 3 : 20;
		double sum = 0, sq = 0;

		for (int t = 0; t < trials; t++) {
			struct cb_hll h;
			double est, rel;

			cb_hll_init(&h);
			for (size_t i = 0; i < sizes[s]; i++) {
				uint64_t x = splitmix(&rng);

				cb_hll_add(&h, x);
				if (i % 3 == 0)
					cb_hll_add(&h, x); /* repeats */
			}
			est = cb_hll_estimate(&h);
			rel = (est - (double)sizes[s]) / (double)sizes[s];
			if (fabs(rel) > 3 * CB_HLL_STDERR)
				printf("# n=%zu estimate %.0f (%.2f%%)\n",
				       sizes[s], est, rel * 100);
			CHECK(fabs(rel) <= 3 * CB_HLL_STDERR);
			sum += rel;
			sq += rel * rel;
		}
		printf("# hll n=%zu: mean error %+.3f%%, rms %.3f%% "
		       "(documented sigma %.3f%%)\n",
		       sizes[s], 100 * sum / trials, 100 * sqrt(sq / trials),
		       100 * CB_HLL_STDERR);
		if (trials >= 20) {
			CHECK(fabs(sum / trials) < CB_HLL_STDERR);
			CHECK(sqrt(sq / trials) < 2 * CB_HLL_STDERR);
		}
	}
}

static void test_hll_save_load(void)
{
	struct cb_hll a, b;
	uint8_t buf[CB_HLL_BYTES];
	uint64_t rng = 3;

	cb_hll_init(&a);
	CHECK(cb_hll_estimate(&a) == 0);
	for (int i = 0; i < 50000; i++)
		cb_hll_add(&a, splitmix(&rng));
	cb_hll_add(&a, 0); /* an all-zero rest: the top register value */
	cb_hll_save(&a, buf);
	CHECK_INT(cb_hll_load(&b, buf), 0);
	CHECK(memcmp(a.reg, b.reg, sizeof(a.reg)) == 0);
	buf[0] = 0xff; /* register 0 = 63: impossible */
	CHECK_INT(cb_hll_load(&b, buf), CB_E_PARSE);
}

static void test_topk_exact_then_bounded(void)
{
	struct cb_topk t;
	const struct cb_topk_entry *top[10];
	uint64_t rng = 11;
	static uint32_t truth[5000];
	char name[32];
	size_t n;
	const uint32_t N = 200000;

	CHECK_INT(cb_topk_init(&t, 16), 0);
	for (int i = 0; i < 16; i++)
		for (int k = 0; k <= i; k++) {
			snprintf(name, sizeof(name), "e%d", i);
			cb_topk_add(&t, name, strlen(name));
		}
	n = cb_topk_top(&t, top, 3);
	CHECK_INT(n, 3);
	CHECK_STR((snprintf(name, sizeof(name), "%.*s", top[0]->len,
			    top[0]->name),
		   name),
		  "e15");
	CHECK_INT(top[0]->count, 16);
	CHECK_INT(top[2]->count, 14);
	CHECK_INT(top[2]->error, 0);
	CHECK_INT(cb_topk_top(&t, top, 0), 0);
	cb_topk_release(&t);

	/* Skewed stream over 5000 names: the heavy ones are found, counts
	 * within the bound count - error <= truth <= count, error <= N/m. */
	CHECK_INT(cb_topk_init(&t, 80), 0);
	for (uint32_t i = 0; i < N; i++) {
		uint64_t r = splitmix(&rng);
		/* ~40% on 5 heavy names, the rest spread over 5000. */
		uint32_t id = (r % 10 < 4) ? (uint32_t)(r >> 8) % 5
					   : (uint32_t)(r >> 8) % 5000;

		truth[id]++;
		snprintf(name, sizeof(name), "name_%u", id);
		cb_topk_add(&t, name, strlen(name));
	}
	n = cb_topk_top(&t, top, 5);
	CHECK_INT(n, 5);
	for (size_t i = 0; i < n; i++) {
		unsigned id;

		CHECK(sscanf(top[i]->name, "name_%u", &id) == 1);
		CHECK(id < 5);
		CHECK(top[i]->count >= truth[id]);
		CHECK(top[i]->count - top[i]->error <= truth[id]);
		CHECK(top[i]->error <= N / 80);
	}
	for (uint32_t i = 0; i < t.n; i++) {
		unsigned id;
		char nm[64];

		snprintf(nm, sizeof(nm), "%.*s", t.e[i].len, t.e[i].name);
		CHECK(sscanf(nm, "name_%u", &id) == 1);
		CHECK(t.e[i].count >= truth[id]);
		CHECK(t.e[i].count - t.e[i].error <= truth[id]);
	}
	/* Long names are cut to CB_TOPK_NAME_MAX and count as one. */
	cb_topk_release(&t);
	CHECK_INT(cb_topk_init(&t, 4), 0);
	cb_topk_add(&t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaX",
		    56);
	cb_topk_add(&t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaY",
		    56);
	CHECK_INT(t.n, 1);
	CHECK_INT(t.e[0].count, 2);
	CHECK_INT(t.e[0].len, CB_TOPK_NAME_MAX);
	cb_topk_release(&t);
}

/* ---- spikes ---- */

/* Feeds `per_min[i]` messages in minute (base + i) for channel ch. */
static void feed(struct cb_winset *ws, const char *ch, int64_t base_min,
		 const int *per_min, int minutes)
{
	for (int i = 0; i < minutes; i++)
		for (int k = 0; k < per_min[i]; k++)
			apply_msg(ws, ch, (base_min + i) * MIN +
					      k * (MIN / (per_min[i] + 1)),
				  k);
}

static void test_spike_rule(void)
{
	struct cb_window_cfg c = cfg(600, 600);
	struct cb_winset *ws;
	struct cb_moment m[CB_WIN_MOMENTS_MAX];
	char errstr[128];
	/* Ten steady minutes (mean 50, sd 2), a burst of 200, then calm. */
	int steady[] = {48, 52, 50, 49, 51, 47, 53, 50, 50, 50, 200, 50, 1};

	c.grace_ms = 3600 * S;
	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	feed(ws, "a", 1000, steady, 10);
	CHECK_INT(cb_winset_moments(ws, "a", m, 16), 0);
	feed(ws, "a", 1010, steady + 10, 1);
	/* The burst minute is judged when a later minute starts. */
	CHECK_INT(cb_winset_moments(ws, "a", m, 16), 0);
	feed(ws, "a", 1011, steady + 11, 2);
	CHECK_INT(cb_winset_moments(ws, "a", m, 16), 1);
	CHECK_INT(m[0].minute_start_ms, 1010 * MIN);
	CHECK_INT(m[0].count, 200);
	CHECK(fabs(m[0].mean - 50) < 0.01);
	CHECK(fabs(m[0].stddev - sqrt(2.8)) < 0.01);
	CHECK(fabs(m[0].score - 150 / sqrt(2.8)) < 0.01);
	cb_winset_free(ws);

	/* Below spike_min_rate: a quiet channel jumping 2 -> 25 is no
	 * moment; at 30 it is (sd floor 1: score = 30 - 2). */
	int quiet[] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 25, 2, 2, 2, 2, 2, 2, 2,
		       2, 2, 2, 30, 2};
	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	feed(ws, "q", 2000, quiet, 23);
	CHECK_INT(cb_winset_moments(ws, "q", m, 16), 1);
	CHECK_INT(m[0].minute_start_ms, 2021 * MIN);
	CHECK(m[0].mean == 2 && m[0].stddev == 0);
	CHECK(fabs(m[0].score - 28) < 1e-9);
	cb_winset_free(ws);

	/* Not before spike_history minutes of history; a rise of less than
	 * spike_threshold sigmas is no moment. */
	int young[] = {50, 50, 50, 200, 50};
	int noisy[] = {20, 80, 20, 80, 20, 80, 20, 80, 20, 80, 120, 50};
	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	feed(ws, "y", 3000, young, 5);
	feed(ws, "n", 3000, noisy, 12);
	CHECK_INT(cb_winset_moments(ws, "y", m, 16), 0);
	CHECK_INT(cb_winset_moments(ws, "n", m, 16), 0);
	cb_winset_free(ws);

	/* Silent minutes count as zeros; a channel silent for the whole
	 * history starts over. */
	int one[] = {40};
	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	feed(ws, "z", 4000, steady, 10);
	feed(ws, "z", 4015, one, 1); /* 5 silent minutes: history full */
	feed(ws, "z", 4016, one, 1);
	CHECK_INT(cb_winset_moments(ws, "z", m, 16), 0); /* 40 vs mean 25 */
	feed(ws, "z", 4040, steady + 10, 1); /* after 23 silent minutes */
	feed(ws, "z", 4041, one, 1);
	CHECK_INT(cb_winset_moments(ws, "z", m, 16), 0); /* no history */
	cb_winset_free(ws);
}

/* ---- emission, JSON, state ---- */

struct sink {
	int n;
	char last_channel[32];
	char docs[64][65536];
	int with_state;
};

static int collect(void *arg, const char *ch, size_t chl, const char *json,
		   size_t len)
{
	struct sink *s = arg;

	if (s->n < 64 && len < sizeof(s->docs[0])) {
		memcpy(s->docs[s->n], json, len);
		s->docs[s->n][len] = '\0';
		s->with_state += strstr(s->docs[s->n], "\"state\"") != NULL;
	}
	snprintf(s->last_channel, sizeof(s->last_channel), "%.*s", (int)chl, ch);
	s->n++;
	return 0;
}

static struct sink sink1, sink2;

static void test_emit_records_and_json(void)
{
	struct cb_window_cfg c = cfg(600, 120);
	struct cb_winset *ws;
	struct msg m;
	char errstr[128];
	json_t *doc;
	json_error_t jerr;
	const char *order[] = {"channel_id", "message_count", "window_start",
			       "window_end", "window_duration_seconds"};

	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	cb_winset_apply(ws, mk(&m, "a", 590000, 1, "Kappa"));
	cb_winset_apply(ws, mk(&m, "a", 600000, 2, "Kappa"));
	cb_winset_apply(ws, mk(&m, "a", 601000, 2, "Pog\"Champ"));
	CHECK_INT(cb_winset_dirty(ws), 1);
	memset(&sink1, 0, sizeof(sink1));
	CHECK_INT(cb_winset_emit(ws, 777, collect, &sink1), 0);
	/* Two changed windows, the newest last and alone with the state. */
	CHECK_INT(sink1.n, 2);
	CHECK_INT(sink1.with_state, 1);
	CHECK(strstr(sink1.docs[0], "\"window_start\":0,") != NULL);
	CHECK(strstr(sink1.docs[1], "\"window_start\":600000,") != NULL);
	CHECK(strstr(sink1.docs[1], "\"state\":\"") != NULL);
	CHECK_INT(cb_winset_dirty(ws), 0);

	doc = json_loads(sink1.docs[1], 0, &jerr);
	CHECK(doc != NULL);
	{
		const char *key;
		json_t *v;
		size_t i = 0;

		json_object_foreach(doc, key, v)
		{
			if (i < 5)
				CHECK_STR(key, order[i]);
			i++;
		}
		CHECK_INT(json_integer_value(json_object_get(doc, "message_count")),
			  2);
		CHECK_INT(json_integer_value(
				  json_object_get(doc, "window_duration_seconds")),
			  600);
		CHECK_INT(json_integer_value(json_object_get(doc, "last_updated")),
			  777);
		CHECK_INT(json_integer_value(
				  json_object_get(doc, "last_received_at")),
			  601007);
		CHECK_INT(json_integer_value(json_object_get(doc, "stream_time")),
			  601000);
		CHECK(json_is_true(json_object_get(doc, "unique_chatters_exact")));
		CHECK_INT(json_array_size(json_object_get(doc, "per_minute")), 10);
		json_t *te = json_object_get(doc, "top_emotes");
		CHECK_INT(json_array_size(te), 2);
		CHECK_STR(json_string_value(json_object_get(json_array_get(te, 1),
							    "name")),
			  "Pog\"Champ");
		CHECK_INT(json_integer_value(json_object_get(
				  json_object_get(doc, "events"), "raid")),
			  0);
		CHECK(json_is_array(json_object_get(doc, "moments")));
		json_decref(doc);
	}
	/* Nothing changed: nothing to emit. */
	memset(&sink1, 0, sizeof(sink1));
	CHECK_INT(cb_winset_emit(ws, 778, collect, &sink1), 0);
	CHECK_INT(sink1.n, 0);
	/* A late-but-in-grace change of the older window re-emits the newest
	 * after it, so the compacted last record stays the newest window. */
	cb_winset_apply(ws, mk(&m, "a", 599000, 3, NULL));
	CHECK_INT(cb_winset_emit(ws, 779, collect, &sink1), 0);
	CHECK_INT(sink1.n, 2);
	CHECK(strstr(sink1.docs[0], "\"window_start\":0,") != NULL);
	CHECK(strstr(sink1.docs[0], "\"message_count\":2,") != NULL);
	CHECK(strstr(sink1.docs[1], "\"window_start\":600000,") != NULL);
	cb_winset_free(ws);
}

/* Applies the same pseudo-random records to a and b. */
static void feed_both(struct cb_winset *a, struct cb_winset *b, uint64_t *rng,
		      int64_t *t, int n)
{
	static const char *chans[] = {"alpha", "beta", "gamma"};
	static const char *em[] = {"Kappa", "PogChamp", "LUL", "OMEGALUL",
				   "monkaS", "KEKW"};

	for (int i = 0; i < n; i++) {
		struct msg m;
		uint64_t r = splitmix(rng);
		/* Mostly within grace, one in a hundred far behind. */
		int64_t ts = *t - (r % 100 == 0 ? 400000 : (int64_t)(r % 90000));
		const char *ch = chans[(r >> 20) % 3];
		int user = (int)((r >> 24) % (i % 3 == 0 ? 3000 : 40));

		mk(&m, ch, ts, user, em[(r >> 40) % 6]);
		/* Mood scores over the whole range, a third of them neutral. */
		m.r.mood_milli = (r >> 30) % 3 == 0
					 ? (int32_t)((r >> 33) % 99) - 49
					 : (int32_t)((r >> 33) % 2001) - 1000;
		if ((r >> 50) % 50 == 0)
			m.r.event = (int)((r >> 8) % CB_EV_COUNT);
		CHECK_INT(cb_winset_apply(a, &m.r), cb_winset_apply(b, &m.r));
		*t += (int64_t)(r >> 56);
	}
}

/* The last state record per channel in a sink. */
static const char *state_of(struct sink *s, const char *ch, size_t *len)
{
	char want[64];

	snprintf(want, sizeof(want), "{\"channel_id\":\"%s\"", ch);
	for (int i = s->n - 1; i >= 0; i--) {
		const char *st;

		if (strncmp(s->docs[i], want, strlen(want)) != 0 ||
		    (st = strstr(s->docs[i], "\"state\":\"")) == NULL)
			continue;
		st += strlen("\"state\":\"");
		*len = (size_t)(strchr(st, '"') - st);
		return st;
	}
	return NULL;
}

/*
 * Restore from the last record of each channel, then keep feeding both the
 * original and the restored set: every later record is byte-identical
 * (counts, unique sketch, top-k order, moments, late counts, mood sums).
 */
static void test_state_round_trip(void)
{
	struct cb_window_cfg c = cfg(600, 300);
	struct cb_winset *a, *b;
	char errstr[128];
	uint64_t rng = 99;
	int64_t t = 100 * MIN;
	int sketched = 0;
	const char *chans[] = {"alpha", "beta", "gamma"};

	c.exact_limit = 500;
	c.spike_history = 5;
	c.spike_min_rate = 5;
	c.spike_threshold = 1.5;
	CHECK_INT(cb_winset_new(&a, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(cb_winset_new(&b, &c, errstr, sizeof(errstr)), 0);
	/* b only serves as a twin for feed_both here. */
	feed_both(a, b, &rng, &t, 30000);
	memset(&sink1, 0, sizeof(sink1));
	CHECK_INT(cb_winset_emit(a, 1, collect, &sink1), 0);
	cb_winset_free(b);

	CHECK_INT(cb_winset_new(&b, &c, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < 3; i++) {
		size_t len;
		const char *st = state_of(&sink1, chans[i], &len);

		CHECK(st != NULL);
		CHECK_INT(cb_winset_restore(b, chans[i], strlen(chans[i]), st,
					    len, errstr, sizeof(errstr)),
			  0);
	}
	cb_winset_restore_done(b);
	CHECK_INT(cb_winset_stream_time(b), cb_winset_stream_time(a));
	CHECK_INT(cb_winset_channels(b), cb_winset_channels(a));
	{
		struct cb_moment ma[16], mb[16];
		size_t na = cb_winset_moments(a, "alpha", ma, 16);

		CHECK(na > 0);
		CHECK_INT(cb_winset_moments(b, "alpha", mb, 16), na);
	}
	for (int round = 0; round < 5; round++) {
		feed_both(a, b, &rng, &t, 3000);
		memset(&sink1, 0, sizeof(sink1));
		memset(&sink2, 0, sizeof(sink2));
		CHECK_INT(cb_winset_emit(a, 5, collect, &sink1), 0);
		CHECK_INT(cb_winset_emit(b, 5, collect, &sink2), 0);
		CHECK(sink1.n > 0);
		CHECK_INT(sink2.n, sink1.n);
		for (int i = 0; i < sink1.n && i < 64; i++) {
			/* The state's bytes may differ (the hash set's layout
			 * depends on its growth), what it restores may not:
			 * every visible figure after it must match. */
			char *s1 = strstr(sink1.docs[i], ",\"state\":");
			char *s2 = strstr(sink2.docs[i], ",\"state\":");

			CHECK((s1 == NULL) == (s2 == NULL));
			if (s1 != NULL)
				*s1 = *s2 = '\0';
			CHECK_STR(sink2.docs[i], sink1.docs[i]);
			sketched += strstr(sink1.docs[i],
					   "\"unique_chatters_exact\":false") !=
				    NULL;
		}
	}
	/* The stream reached the sketch (and, above, the moments). */
	CHECK(sketched > 0);
	cb_winset_free(a);
	cb_winset_free(b);
}

/*
 * Two rules test/integration/t70-parity compares with Kafka Streams 3.9:
 * a timestamp in the future is accepted and closes every older window of
 * the partition (neither clamps event time); and stream time survives a
 * restore, so a record past grace that comes first after a restart is
 * still late (Kafka Streams 3.9 starts its stream time over and counts
 * it: the documented difference, docs/aggregation.md).
 */
static void test_future_time_and_restored_stream_time(void)
{
	const int64_t future = 4102444800000; /* 2100-01-01 */
	struct cb_window_cfg c = cfg(10, 2);
	struct cb_winset *a, *b;
	char errstr[128];
	size_t len;
	const char *st;

	CHECK_INT(cb_winset_new(&a, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(apply_msg(a, "a", 5000, 1), CB_WIN_APPLIED);
	CHECK_INT(apply_msg(a, "b", 7000, 2), CB_WIN_APPLIED);
	CHECK_INT(apply_msg(a, "a", future, 1), CB_WIN_APPLIED);
	CHECK_INT(cb_winset_stream_time(a), future);
	CHECK_INT(apply_msg(a, "b", 8000, 2), CB_WIN_LATE);
	CHECK_INT(apply_msg(a, "b", future - 12001, 2), CB_WIN_LATE);
	CHECK_INT(apply_msg(a, "b", future - 1, 2), CB_WIN_APPLIED);
	CHECK_INT(count_of(a, "a", future), 1);
	cb_winset_free(a);

	CHECK_INT(cb_winset_new(&a, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(apply_msg(a, "a", 5000, 1), CB_WIN_APPLIED);
	CHECK_INT(apply_msg(a, "a", 12000, 1), CB_WIN_APPLIED);
	memset(&sink1, 0, sizeof(sink1));
	CHECK_INT(cb_winset_emit(a, 1, collect, &sink1), 0);
	st = state_of(&sink1, "a", &len);
	CHECK(st != NULL);
	CHECK_INT(cb_winset_new(&b, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(cb_winset_restore(b, "a", 1, st, len, errstr, sizeof(errstr)),
		  0);
	cb_winset_restore_done(b);
	CHECK_INT(cb_winset_stream_time(b), 12000);
	/* The first record after the restore, past grace: late, as it is
	 * for the set that never stopped. */
	CHECK_INT(apply_msg(b, "a", 9999, 1), CB_WIN_LATE);
	CHECK_INT(apply_msg(a, "a", 9999, 1), CB_WIN_LATE);
	CHECK_INT(count_of(b, "a", 10000), 1);
	cb_winset_free(a);
	cb_winset_free(b);
}

static void test_restore_rejects_damage(void)
{
	struct cb_window_cfg c = cfg(600, 60);
	struct cb_winset *a, *b;
	char errstr[128], copy[65536];
	const char *st;
	size_t len;

	CHECK_INT(cb_winset_new(&a, &c, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < 100; i++)
		apply_msg(a, "alpha", 1000 + i * 100, i);
	memset(&sink1, 0, sizeof(sink1));
	CHECK_INT(cb_winset_emit(a, 1, collect, &sink1), 0);
	st = state_of(&sink1, "alpha", &len);
	CHECK(st != NULL && len < sizeof(copy));

	CHECK_INT(cb_winset_new(&b, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(cb_winset_restore(b, "alpha", 5, "!!!!", 4, errstr,
				    sizeof(errstr)),
		  CB_E_PARSE);
	/* Truncated: parse error, channel left empty. */
	CHECK_INT(cb_winset_restore(b, "alpha", 5, st, (len - 8) / 4 * 4,
				    errstr, sizeof(errstr)),
		  CB_E_PARSE);
	CHECK_INT(count_of(b, "alpha", 0), -1);
	memcpy(copy, st, len);
	copy[0] = copy[0] == 'B' ? 'C' : 'B'; /* the version byte */
	CHECK_INT(cb_winset_restore(b, "alpha", 5, copy, len, errstr,
				    sizeof(errstr)),
		  CB_E_PARSE);
	CHECK_INT(cb_winset_restore(b, "alpha", 5, st, len, errstr,
				    sizeof(errstr)),
		  0);
	CHECK_INT(count_of(b, "alpha", 0), 100);
	cb_winset_free(b);

	/* Another window size: the windows go, a warning comes back. */
	c = cfg(300, 60);
	CHECK_INT(cb_winset_new(&b, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(cb_winset_restore(b, "alpha", 5, st, len, errstr,
				    sizeof(errstr)),
		  CB_E_RANGE);
	CHECK(strstr(errstr, "dropped") != NULL);
	CHECK_INT(count_of(b, "alpha", 0), -1);
	CHECK_INT(cb_winset_stream_time(b), 1000 + 99 * 100);
	cb_winset_free(b);
	cb_winset_free(a);
}

/*
 * Mood per window: the integer sum of the messages' scores, the positive
 * and negative counts at the +-0.05 thresholds, the rounded mean in the
 * JSON; events are not scored; and the figures survive the state round
 * trip exactly (an emptied mood in the state would fail here).
 */
static void test_mood_sums_and_restore(void)
{
	struct cb_window_cfg c = cfg(600, 60);
	struct cb_winset *a, *b;
	struct cb_win_figures fa, fb;
	char errstr[128];
	const int32_t scores[] = {542, 542, -542, 0, 49, -50, 1000, 50};
	struct msg m;
	json_t *doc;
	json_error_t jerr;
	const char *st;
	size_t len;

	CHECK_INT(cb_winset_new(&a, &c, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < 8; i++) {
		mk(&m, "alpha", 1000 + i * 100, i, NULL);
		m.r.mood_milli = scores[i];
		CHECK_INT(cb_winset_apply(a, &m.r), CB_WIN_APPLIED);
	}
	/* An event carries no text: its score, if any, is not counted. */
	mk(&m, "alpha", 2000, 1, NULL);
	m.r.event = CB_EV_RAID;
	m.r.mood_milli = 900;
	CHECK_INT(cb_winset_apply(a, &m.r), CB_WIN_APPLIED);
	CHECK_INT(cb_winset_figures(a, "alpha", 0, &fa), 0);
	CHECK_INT(fa.message_count, 8);
	CHECK_INT(fa.sentiment_sum, 542 + 542 - 542 + 0 + 49 - 50 + 1000 + 50);
	CHECK_INT(fa.sentiment_positive, 4); /* 542, 542, 1000, 50 */
	CHECK_INT(fa.sentiment_negative, 2); /* -542, -50 */
	CHECK_INT(fa.sentiment_milli, 199);  /* 1591 / 8 = 198.875 */

	memset(&sink1, 0, sizeof(sink1));
	CHECK_INT(cb_winset_emit(a, 1, collect, &sink1), 0);
	CHECK_INT(sink1.n, 1);
	doc = json_loads(sink1.docs[0], 0, &jerr);
	CHECK(doc != NULL);
	CHECK(fabs(json_number_value(json_object_get(doc, "sentiment")) -
		   0.199) < 1e-9);
	CHECK_INT(json_integer_value(json_object_get(doc, "sentiment_sum")),
		  1591);
	CHECK_INT(json_integer_value(json_object_get(doc, "sentiment_positive")),
		  4);
	CHECK_INT(json_integer_value(json_object_get(doc, "sentiment_negative")),
		  2);
	CHECK_INT(json_integer_value(json_object_get(doc, "sentiment_neutral")),
		  2);
	json_decref(doc);

	st = state_of(&sink1, "alpha", &len);
	CHECK(st != NULL);
	CHECK_INT(cb_winset_new(&b, &c, errstr, sizeof(errstr)), 0);
	CHECK_INT(cb_winset_restore(b, "alpha", 5, st, len, errstr,
				    sizeof(errstr)),
		  0);
	cb_winset_restore_done(b);
	CHECK_INT(cb_winset_figures(b, "alpha", 0, &fb), 0);
	CHECK_INT(fb.sentiment_sum, fa.sentiment_sum);
	CHECK_INT(fb.sentiment_positive, fa.sentiment_positive);
	CHECK_INT(fb.sentiment_negative, fa.sentiment_negative);
	CHECK_INT(fb.sentiment_milli, fa.sentiment_milli);
	/* And both go on alike: one more negative message each. */
	mk(&m, "alpha", 3000, 9, NULL);
	m.r.mood_milli = -900;
	CHECK_INT(cb_winset_apply(a, &m.r), CB_WIN_APPLIED);
	CHECK_INT(cb_winset_apply(b, &m.r), CB_WIN_APPLIED);
	CHECK_INT(cb_winset_figures(a, "alpha", 0, &fa), 0);
	CHECK_INT(cb_winset_figures(b, "alpha", 0, &fb), 0);
	CHECK_INT(fb.sentiment_sum, 691);
	CHECK_INT(fa.sentiment_sum, 691);
	CHECK_INT(fb.sentiment_negative, 3);
	CHECK_INT(fb.sentiment_milli, 77); /* 691 / 9 = 76.8 */
	cb_winset_free(b);
	cb_winset_free(a);

	/* A negative mean rounds half away from zero too. */
	CHECK_INT(cb_winset_new(&a, &c, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < 2; i++) {
		mk(&m, "beta", 1000 + i, i, NULL);
		m.r.mood_milli = i == 0 ? -1 : -2;
		CHECK_INT(cb_winset_apply(a, &m.r), CB_WIN_APPLIED);
	}
	CHECK_INT(cb_winset_figures(a, "beta", 0, &fa), 0);
	CHECK_INT(fa.sentiment_milli, -2); /* -1.5 */
	cb_winset_free(a);
}

/*
 * A version 1 state (before the mood) still restores: its windows keep
 * their counts and start with zero mood.  Made from a version 2 state of
 * one window by setting the version byte and cutting the three one-byte
 * mood varints at its end.
 */
static void test_restore_version_1_state(void)
{
	struct cb_window_cfg c = cfg(600, 60);
	struct cb_winset *a, *b;
	struct cb_win_figures f;
	struct cb_jw j = {0};
	char errstr[128];
	uint8_t bin[65536];
	const char *st;
	size_t len;
	long n;
	struct msg m;

	CHECK_INT(cb_winset_new(&a, &c, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < 3; i++) {
		mk(&m, "alpha", 1000 + i, i, NULL);
		m.r.mood_milli = 10; /* neutral: sum 30, 0 positive, 0 negative */
		CHECK_INT(cb_winset_apply(a, &m.r), CB_WIN_APPLIED);
	}
	memset(&sink1, 0, sizeof(sink1));
	CHECK_INT(cb_winset_emit(a, 1, collect, &sink1), 0);
	st = state_of(&sink1, "alpha", &len);
	CHECK(st != NULL && len / 4 * 3 <= sizeof(bin));
	n = cb_jw_base64_decode(st, len, bin);
	CHECK(n > 4);
	CHECK_INT(bin[0], 2);
	CHECK_INT(bin[n - 3], 60); /* zigzag(30) */
	CHECK_INT(bin[n - 2], 0);
	CHECK_INT(bin[n - 1], 0);
	bin[0] = 1;
	cb_jw_reset(&j);
	cb_jw_base64(&j, bin, (size_t)n - 3);
	CHECK(!j.oom && j.len > 2);

	CHECK_INT(cb_winset_new(&b, &c, errstr, sizeof(errstr)), 0);
	/* The string value without its quotes. */
	CHECK_INT(cb_winset_restore(b, "alpha", 5, j.buf + 1, j.len - 2, errstr,
				    sizeof(errstr)),
		  0);
	cb_winset_restore_done(b);
	CHECK_INT(cb_winset_figures(b, "alpha", 0, &f), 0);
	CHECK_INT(f.message_count, 3);
	CHECK_INT(f.sentiment_sum, 0);
	CHECK_INT(f.sentiment_positive, 0);
	/* The same bytes claiming version 2 are damaged (the mood is
	 * missing). */
	bin[0] = 2;
	cb_jw_reset(&j);
	cb_jw_base64(&j, bin, (size_t)n - 3);
	CHECK_INT(cb_winset_restore(b, "alpha", 5, j.buf + 1, j.len - 2, errstr,
				    sizeof(errstr)),
		  CB_E_PARSE);
	/* Damage in the mood fields themselves: */
	bin[n - 3] = 127; /* zigzag: -64 is fine ... */
	cb_jw_reset(&j);
	cb_jw_base64(&j, bin, (size_t)n);
	CHECK_INT(cb_winset_restore(b, "alpha", 5, j.buf + 1, j.len - 2, errstr,
				    sizeof(errstr)),
		  0);
	bin[n - 1] = 4; /* ... but 4 negative messages out of 3 are not */
	cb_jw_reset(&j);
	cb_jw_base64(&j, bin, (size_t)n);
	CHECK_INT(cb_winset_restore(b, "alpha", 5, j.buf + 1, j.len - 2, errstr,
				    sizeof(errstr)),
		  CB_E_PARSE);
	cb_jw_release(&j);
	cb_winset_free(b);
	cb_winset_free(a);
}

static void test_prune_forgets_closed_and_idle(void)
{
	struct cb_window_cfg c = cfg(60, 0);
	struct cb_winset *ws;
	char errstr[128];

	c.spike_history = 3;
	CHECK_INT(cb_winset_new(&ws, &c, errstr, sizeof(errstr)), 0);
	apply_msg(ws, "old", 0, 1);
	apply_msg(ws, "new", 60000, 1);
	memset(&sink1, 0, sizeof(sink1));
	CHECK_INT(cb_winset_emit(ws, 1, collect, &sink1), 0);
	CHECK_INT(count_of(ws, "old", 0), -1); /* closed: forgotten */
	CHECK_INT(cb_winset_channels(ws), 2);  /* detector still young */
	apply_msg(ws, "new", 5 * 60000, 1);
	CHECK_INT(cb_winset_emit(ws, 2, collect, &sink1), 0);
	CHECK_INT(cb_winset_channels(ws), 1); /* "old" idle > 3 minutes */
	cb_winset_free(ws);
}

int main(void)
{
	RUN(test_alignment);
	RUN(test_windows_half_open_and_per_minute);
	RUN(test_late_rule_grace_boundary);
	RUN(test_matches_kafka_streams_model);
	RUN(test_events_counted_apart);
	RUN(test_unique_exact_then_sketch);
	RUN(test_hll_error_bound);
	RUN(test_hll_save_load);
	RUN(test_topk_exact_then_bounded);
	RUN(test_spike_rule);
	RUN(test_emit_records_and_json);
	RUN(test_state_round_trip);
	RUN(test_future_time_and_restored_stream_time);
	RUN(test_restore_rejects_damage);
	RUN(test_mood_sums_and_restore);
	RUN(test_restore_version_1_state);
	RUN(test_prune_forgets_closed_and_idle);
	return test_done();
}
