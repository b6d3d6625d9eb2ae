/*
 * bench_window.c - the aggregator's per-record CPU cost, single-threaded:
 * ChatMessage parsing (cb_aggjson_parse), window updates (cb_winset_apply:
 * windows, unique chatters, top-k, detector) and ChannelStats emission with
 * the restorable state.  Targets: parse and update each >= 500,000
 * records/s (50x the 10,000 messages/s design load), a full ChannelStats
 * record with state in <= 200 us.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chatbattle/aggjson.h"
#include "chatbattle/window.h"

#define N 2000000
#define CHANNELS 100

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 1;

static uint64_t next(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t bytes_out;

static int sink(void *arg, const char *ch, size_t chl, const char *json,
		size_t len)
{
	bytes_out += len;
	return 0;
}

int main(void)
{
	static uint8_t scratch[4096];
	static const char *emotes[] = {"Kappa", "PogChamp", "LUL", "KEKW",
				       "monkaS", "OMEGALUL", "Pog", "5Head"};
	struct cb_window_cfg cfg = {
		.size_ms = 600000, .grace_ms = 60000, .exact_limit = 1024,
		.top_k = 10, .spike_history = 10, .spike_min_rate = 30,
		.spike_threshold = 3.0,
	};
	struct cb_winset *ws;
	struct cb_aggjson_msg m;
	char json[1024], names[CHANNELS][16], errstr[128];
	double t0, parse_s, apply_s, emit_s;
	int len, records = 0;
	int64_t ts = 1700000400000LL;

	/* Parsing: a typical record of the contract, varied. */
	len = snprintf(json, sizeof(json),
		       "{\"channel_id\":\"pajlada\",\"user_id\":\"29803735\","
		       "\"username\":\"jun1orrrr\",\"message\":\"dank cam "
		       "\\u00e9 Kappa LUL\",\"timestamp\":1594545155039,"
		       "\"emotes\":[\"Kappa\",\"LUL\"],\"message_id\":"
		       "\"e9d998c3-36f1-430f-89ec-6b887c28af36\","
		       "\"display_name\":\"JuN1oRRRR\",\"room_id\":\"11148817\","
		       "\"type\":\"message\",\"color\":\"#0000FF\",\"badges\":"
		       "{\"subscriber\":\"12\"},\"bits\":0,\"is_action\":false,"
		       "\"first_msg\":false,\"received_at\":1594545155101}");
	t0 = now_s();
	for (int i = 0; i < N / 4; i++)
		if (cb_aggjson_parse(json, (size_t)len, &m, scratch,
				     sizeof(scratch), errstr,
				     sizeof(errstr)) != 0)
			return 1;
	parse_s = now_s() - t0;

	if (cb_winset_new(&ws, &cfg, errstr, sizeof(errstr)) != 0)
		return 1;
	for (int c = 0; c < CHANNELS; c++)
		snprintf(names[c], sizeof(names[c]), "channel%d", c);
	t0 = now_s();
	for (int i = 0; i < N; i++) {
		uint64_t r = next();
		char user[16];
		uint8_t eb[16];
		const char *e = emotes[(r >> 20) % 8];
		size_t el = strlen(e);
		struct cb_win_rec rec = {0};
		int c = (int)(r % CHANNELS);

		snprintf(user, sizeof(user), "u%u", (unsigned)((r >> 32) % 5000));
		eb[0] = (uint8_t)el;
		eb[1] = 0;
		memcpy(eb + 2, e, el);
		rec.channel = names[c];
		rec.channel_len = strlen(names[c]);
		rec.ts_ms = ts - (int64_t)((r >> 40) % 3000);
		rec.received_at_ms = ts;
		rec.event = CB_EV_MESSAGE;
		rec.user = rec.username = user;
		rec.user_len = rec.username_len = strlen(user);
		rec.emotes = eb;
		rec.emote_count = 1;
		rec.emotes_len = (uint32_t)(el + 2);
		cb_winset_apply(ws, &rec);
		ts += 1; /* 1000 messages per second of event time */
		records++;
	}
	apply_s = now_s() - t0;

	/* Every channel changed: one record (with state) each, twice. */
	t0 = now_s();
	for (int round = 0; round < 20; round++) {
		for (int c = 0; c < CHANNELS; c++) {
			struct cb_win_rec rec = {0};

			rec.channel = names[c];
			rec.channel_len = strlen(names[c]);
			rec.ts_ms = ts;
			rec.event = CB_EV_SUB;
			cb_winset_apply(ws, &rec);
		}
		cb_winset_emit(ws, 1, sink, NULL);
	}
	emit_s = now_s() - t0;

	printf("parse ChatMessage:     %8.0f records/s   (target >= 500000)\n",
	       (N / 4) / parse_s);
	printf("window update:         %8.0f records/s   (target >= 500000; "
	       "%d channels, 5000 chatters)\n",
	       records / apply_s, CHANNELS);
	printf("emit ChannelStats:     %8.1f us/record   (target <= 200; "
	       "%.1f KiB/record with state)\n",
	       emit_s * 1e6 / (20.0 * CHANNELS),
	       bytes_out / 1024.0 / (20.0 * CHANNELS));
	cb_winset_free(ws);
	return 0;
}
