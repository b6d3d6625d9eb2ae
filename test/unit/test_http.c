/*
 * test_http.c - the HTTP module in-process on a free port, with a real
 * stats cache filled through cb_stats_cache_apply and a real IRC command
 * ring, talked to over raw TCP: every endpoint's status codes and JSON
 * shape (the original API's exact fields and bytes), errors (400 404 405
 * 413 415 401 403), CORS, keep-alive, hostile requests, the OpenAPI
 * document against the route table, embedded assets, and Server-Sent
 * Events (updates, heartbeats, no pinned thread, limits, stop), and the
 * battle (GET /api/battle ranking from the cache, bad requests, its event
 * stream).  The browser test (t55) runs the whole pipeline instead of a
 * fixture.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "chatbattle/app.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/http.h"
#include "chatbattle/isotime.h"
#include "chatbattle/metrics.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"
#include "chatbattle/stats_cache.h"
#include "test.h"
#include "test_http_client.h"
#include "http_int.h"

/* ---- a server under test ---- */

struct srv {
	struct cb_config cfg;
	struct cb_app app;
	struct cb_stats_cache *cache;
	uint16_t port;
};

/* Starts the module with defaults changed by tweak (may be NULL). */
static int srv_start(struct srv *s, void (*tweak)(struct cb_config *))
{
	char errstr[512];
	int err;

	memset(s, 0, sizeof(*s));
	if (cb_config_init(&s->cfg, errstr, sizeof(errstr)) != 0)
		return -1;
	s->cfg.port = 0;
	s->cfg.http_threads = 1;
	if (tweak)
		tweak(&s->cfg);
	if (cb_stats_cache_new(&s->cache, 8, errstr, sizeof(errstr)) != 0)
		return -1;
	if (cb_ring_new(&s->app.irc_cmd, 64 << 10, "irc_cmd", errstr,
			sizeof(errstr)) != 0)
		return -1;
	s->app.cfg = &s->cfg;
	s->app.cache = s->cache;
	s->app.wake_fd = -1;
	err = cb_http_start(&s->app, errstr, sizeof(errstr));
	if (err != 0) {
		printf("# cb_http_start: %s\n", errstr);
		return err;
	}
	s->port = cb_http_port(&s->app);
	return 0;
}

static void srv_stop(struct srv *s)
{
	cb_http_stop(&s->app);
	cb_ring_free(s->app.irc_cmd);
	cb_stats_cache_free(s->cache);
	cb_config_release(&s->cfg);
}

static char docbuf[8192];

/* Applies a ChannelStats record for ch, window [start, start + 600 s). */
static int apply(struct srv *s, const char *ch, int64_t count, int64_t start,
		 int64_t updated, const char *extra)
{
	char errstr[256];
	int n = snprintf(docbuf, sizeof(docbuf),
			 "{\"channel_id\":\"%s\",\"message_count\":%lld,"
			 "\"window_start\":%lld,\"window_end\":%lld,"
			 "\"window_duration_seconds\":600,"
			 "\"unique_chatters\":7,\"last_updated\":%lld%s%s}",
			 ch, (long long)count, (long long)start,
			 (long long)(start + 600000), (long long)updated,
			 extra ? "," : "", extra ? extra : "");

	return cb_stats_cache_apply(s->cache, ch, strlen(ch), docbuf,
				    (size_t)n, 0, errstr, sizeof(errstr));
}

/* One raw request on a fresh connection: the response's status, or -1. */
static int call(uint16_t port, const char *raw, struct resp *r)
{
	return request(port, raw, r) == 0 ? r->status : -1;
}

static json_t *body_json(const struct resp *r)
{
	json_error_t e;

	return json_loadb(r->body, r->body_len, 0, &e);
}

/* True when r is {"error": non-empty string, "status": r->status} only. */
static bool is_error_doc(const struct resp *r)
{
	json_t *j = body_json(r);
	bool ok = j != NULL && json_object_size(j) == 2 &&
		  json_is_string(json_object_get(j, "error")) &&
		  json_string_length(json_object_get(j, "error")) > 0 &&
		  json_integer_value(json_object_get(j, "status")) == r->status;

	json_decref(j);
	return ok;
}

/* ---- tests ---- */

static void test_iso8601_matches_javascript(void)
{
	/* Expected values printed by node: new Date(ms).toISOString(). */
	static const struct {
		int64_t ms;
		const char *iso;
	} v[] = {
		{0, "1970-01-01T00:00:00.000Z"},
		{1234567890123, "2009-02-13T23:31:30.123Z"},
		{-1, "1969-12-31T23:59:59.999Z"},
		{951782400000, "2000-02-29T00:00:00.000Z"},
		{253402300800000, "+010000-01-01T00:00:00.000Z"},
		{-62198755200000, "-000001-01-01T00:00:00.000Z"},
		{-62167219200001, "-000001-12-31T23:59:59.999Z"},
		{8640000000000000, "+275760-09-13T00:00:00.000Z"},
	};
	char buf[CB_ISOTIME_MAX];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		CHECK_STR(cb_isotime_format(v[i].ms, buf), v[i].iso);
}

static void test_loopback_addresses(void)
{
	CHECK(cb_http_is_loopback("127.0.0.1"));
	CHECK(cb_http_is_loopback("127.1.2.3"));
	CHECK(cb_http_is_loopback("::1"));
	CHECK(cb_http_is_loopback("localhost"));
	CHECK(!cb_http_is_loopback("0.0.0.0"));
	CHECK(!cb_http_is_loopback("::"));
	CHECK(!cb_http_is_loopback("10.0.0.1"));
	CHECK(!cb_http_is_loopback("128.0.0.1"));
}

static void no_token_everywhere(struct cb_config *c)
{
	free(c->http_bind);
	c->http_bind = strdup("0.0.0.0");
}

static void test_refuses_public_bind_without_token(void)
{
	struct srv s;

	CHECK_INT(srv_start(&s, no_token_everywhere), CB_E_CONFIG);
	CHECK(s.app.http == NULL);
	cb_ring_free(s.app.irc_cmd);
	cb_stats_cache_free(s.cache);
	cb_config_release(&s.cfg);
}

static void test_port_in_use_is_an_error(void)
{
	struct srv a, b;
	static uint16_t taken;
	char errstr[256];

	CHECK_INT(srv_start(&a, NULL), 0);
	taken = a.port;
	memset(&b, 0, sizeof(b));
	CHECK_INT(cb_config_init(&b.cfg, errstr, sizeof(errstr)), 0);
	b.cfg.port = taken;
	b.app.cfg = &b.cfg;
	CHECK_INT(cb_http_start(&b.app, errstr, sizeof(errstr)), CB_E_HTTP);
	CHECK(strstr(errstr, "cannot listen") != NULL);
	cb_config_release(&b.cfg);
	srv_stop(&a);
}

static void test_stats_original_bytes(void)
{
	struct srv s;
	struct resp r;
	char v[64];

	CHECK_INT(srv_start(&s, NULL), 0);
	CHECK_INT(apply(&s, "pajlada", 1250, 1234567800000, 1234567890123,
			NULL),
		  0);
	CHECK_INT(get(s.port, "/api/channels/pajlada/stats", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK_STR(r.body,
		  "{\"channel_id\":\"pajlada\",\"message_count\":1250,"
		  "\"current_window\":{\"start\":\"2009-02-13T23:30:00.000Z\","
		  "\"end\":\"2009-02-13T23:40:00.000Z\","
		  "\"duration_seconds\":600},"
		  "\"last_updated\":\"2009-02-13T23:31:30.123Z\"}");
	CHECK_STR(hdr(&r, "Content-Type", v, sizeof(v)), "application/json");
	CHECK_STR(hdr(&r, "Access-Control-Allow-Origin", v, sizeof(v)), "*");
	/* The id is normalized like a --channel value. */
	CHECK_INT(get(s.port, "/api/channels/PajLada/stats", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK(strstr(r.body, "\"channel_id\":\"pajlada\"") != NULL);
	CHECK_INT(get(s.port, "/api/channels/%23pajlada/stats", &r), 0);
	CHECK_INT(r.status, 200);
	/* Newer figures replace older ones. */
	CHECK_INT(apply(&s, "pajlada", 1300, 1234567800000, 1234567891000,
			NULL),
		  0);
	CHECK_INT(get(s.port, "/api/channels/pajlada/stats", &r), 0);
	CHECK(strstr(r.body, "\"message_count\":1300,") != NULL);
	/* Each thread reuses its last response while the figures stand
	 * still: never for another channel. */
	CHECK_INT(apply(&s, "forsen", 7, 1234567800000, 1234567891000, NULL),
		  0);
	CHECK_INT(get(s.port, "/api/channels/forsen/stats", &r), 0);
	CHECK(strstr(r.body, "\"channel_id\":\"forsen\",\"message_count\":7,") !=
	      NULL);
	CHECK_INT(get(s.port, "/api/channels/pajlada/stats", &r), 0);
	CHECK(strstr(r.body, "\"channel_id\":\"pajlada\",\"message_count\":1300,") !=
	      NULL);
	CHECK_INT(get(s.port, "/api/channels/pajlada/stats", &r), 0);
	CHECK(strstr(r.body, "\"message_count\":1300,") != NULL);
	CHECK_STR(hdr(&r, "Access-Control-Allow-Origin", v, sizeof(v)), "*");
	srv_stop(&s);
}

static void test_stats_missing_or_invalid_channel(void)
{
	static const char *const bad[] = {
		"/api/channels/b%40d/stats",
		"/api/channels/aaaaaaaaaaaaaaaaaaaaaaaaaa/stats",
		"/api/channels/%20/stats",
	};
	struct srv s;
	struct resp r;

	CHECK_INT(srv_start(&s, NULL), 0);
	CHECK_INT(get(s.port, "/api/channels/nobody/stats", &r), 0);
	CHECK_INT(r.status, 404);
	CHECK(is_error_doc(&r));
	CHECK(strstr(r.body, "nobody") != NULL);
	/* A decoded slash makes another path, which does not exist. */
	CHECK_INT(get(s.port, "/api/channels/..%2F..%2Fetc/stats", &r), 0);
	CHECK_INT(r.status, 404);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(get(s.port, bad[i], &r), 0);
		if (r.status != 400)
			printf("# %s -> %d\n", bad[i], r.status);
		CHECK_INT(r.status, 400);
		CHECK(is_error_doc(&r));
	}
	srv_stop(&s);
}

static void test_health_states(void)
{
	struct srv s;
	struct resp r;
	json_t *j, *svc;

	CHECK_INT(srv_start(&s, NULL), 0);
	for (int d = 0; d < CB_DEP_COUNT; d++)
		cb_health_set((enum cb_dep)d, CB_DEP_UP);
	CHECK_INT(get(s.port, "/api/health", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK(strncmp(r.body, "{\"status\":\"healthy\",\"timestamp\":\"", 33) ==
	      0);
	j = body_json(&r);
	CHECK(j != NULL);
	svc = json_object_get(j, "services");
	CHECK_STR(json_string_value(json_object_get(svc, "kafka")),
		  "connected");
	CHECK_STR(json_string_value(json_object_get(svc, "cache")), "ready");
	CHECK_STR(json_string_value(json_object_get(svc, "cassandra")),
		  "connected");
	CHECK_STR(json_string_value(json_object_get(svc, "irc")), "connected");
	CHECK_INT(strlen(json_string_value(json_object_get(j, "timestamp"))),
		  24);
	json_decref(j);

	/* Disabled does not make it unhealthy. */
	cb_health_set(CB_DEP_CASSANDRA, CB_DEP_DISABLED);
	CHECK_INT(get(s.port, "/api/health", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK(strstr(r.body, "\"cassandra\":\"disabled\"") != NULL);

	/* Down or not yet connected does. */
	cb_health_set(CB_DEP_KAFKA, CB_DEP_DOWN);
	CHECK_INT(get(s.port, "/api/health", &r), 0);
	CHECK_INT(r.status, 503);
	j = body_json(&r);
	CHECK_STR(json_string_value(json_object_get(j, "status")),
		  "unhealthy");
	CHECK_STR(json_string_value(json_object_get(
			  json_object_get(j, "services"), "kafka")),
		  "disconnected");
	CHECK(json_is_false(json_object_get(
		json_object_get(json_object_get(j, "dependencies"), "kafka"),
		"healthy")));
	json_decref(j);
	cb_health_set(CB_DEP_KAFKA, CB_DEP_UP);
	cb_health_set(CB_DEP_IRC, CB_DEP_UNKNOWN);
	CHECK_INT(get(s.port, "/api/health", &r), 0);
	CHECK_INT(r.status, 503);
	CHECK(strstr(r.body, "\"irc\":\"connecting\"") != NULL);
	srv_stop(&s);
}

static void serve_only(struct cb_config *c)
{
	char errstr[128];

	cb_config_set(c, CB_OPT_roles, "serve", CB_SRC_FLAG, "test", false,
		      errstr, sizeof(errstr));
}

static void test_health_ignores_other_roles(void)
{
	struct srv s;
	struct resp r;

	CHECK_INT(srv_start(&s, serve_only), 0);
	cb_health_set(CB_DEP_KAFKA, CB_DEP_UP);
	cb_health_set(CB_DEP_CACHE, CB_DEP_UP);
	cb_health_set(CB_DEP_IRC, CB_DEP_DOWN);
	cb_health_set(CB_DEP_CASSANDRA, CB_DEP_DOWN);
	CHECK_INT(get(s.port, "/api/health", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK(strstr(r.body, "\"irc\":\"not_in_roles\"") != NULL);
	CHECK(strstr(r.body, "\"cassandra\":\"not_in_roles\"") != NULL);
	/* ... and such an instance cannot start or stop channels. */
	CHECK_INT(call(s.port,
		       "POST /api/channels/abc HTTP/1.1\r\nHost: x\r\n"
		       "Content-Length: 0\r\n\r\n",
		       &r),
		  503);
	CHECK(is_error_doc(&r));
	srv_stop(&s);
}

static void test_channels_list(void)
{
	struct srv s;
	struct resp r;
	json_t *j, *list, *e;

	CHECK_INT(srv_start(&s, NULL), 0);
	CHECK_INT(get(s.port, "/api/channels", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK(strstr(r.body, "\"channels\":[]") != NULL);
	CHECK_INT(apply(&s, "zed", 5, 1234567800000, 1234567800500, NULL), 0);
	CHECK_INT(apply(&s, "alpha", 9, 1234567800000, 1234567800500, NULL),
		  0);
	CHECK_INT(get(s.port, "/api/channels", &r), 0);
	CHECK_INT(r.status, 200);
	j = body_json(&r);
	list = json_object_get(j, "channels");
	CHECK_INT(json_array_size(list), 2);
	CHECK_INT(json_integer_value(json_object_get(j, "count")), 2);
	e = json_array_get(list, 0);
	CHECK_STR(json_string_value(json_object_get(e, "channel_id")), "alpha");
	CHECK(json_is_true(json_object_get(e, "has_stats")));
	CHECK_INT(json_integer_value(json_object_get(e, "message_count")), 9);
	CHECK(json_is_boolean(json_object_get(e, "monitored")));
	CHECK_STR(json_string_value(json_object_get(
			  json_array_get(list, 1), "channel_id")),
		  "zed");
	json_decref(j);
	srv_stop(&s);
}

static void test_windows_newest_first(void)
{
	struct srv s;
	struct resp r;
	json_t *j, *w;

	CHECK_INT(srv_start(&s, NULL), 0);
	for (int i = 0; i < 3; i++)
		CHECK_INT(apply(&s, "chan", 10 + i, 1234567800000 + i * 600000LL,
				1234567800000 + i * 600000LL + 1, NULL),
			  0);
	CHECK_INT(get(s.port, "/api/channels/chan/windows?limit=2", &r), 0);
	CHECK_INT(r.status, 200);
	j = body_json(&r);
	CHECK(j != NULL);
	CHECK_STR(json_string_value(json_object_get(j, "channel_id")), "chan");
	w = json_object_get(j, "windows");
	CHECK_INT(json_array_size(w), 2);
	CHECK_INT(json_integer_value(
			  json_object_get(json_array_get(w, 0), "message_count")),
		  12);
	CHECK_INT(json_integer_value(
			  json_object_get(json_array_get(w, 1), "message_count")),
		  11);
	json_decref(j);
	CHECK_INT(get(s.port, "/api/channels/chan/windows", &r), 0);
	j = body_json(&r);
	CHECK_INT(json_array_size(json_object_get(j, "windows")), 3);
	json_decref(j);
	CHECK_INT(get(s.port, "/api/channels/chan/windows?limit=0", &r), 0);
	CHECK_INT(r.status, 400);
	CHECK(is_error_doc(&r));
	CHECK_INT(get(s.port, "/api/channels/chan/windows?limit=ten", &r), 0);
	CHECK_INT(r.status, 400);
	CHECK_INT(get(s.port, "/api/channels/chan/windows?limit=5&x=1", &r), 0);
	CHECK_INT(r.status, 400);
	CHECK(strstr(r.body, "\\\"x\\\"") != NULL);
	CHECK_INT(get(s.port, "/api/channels/other/windows", &r), 0);
	CHECK_INT(r.status, 404);
	srv_stop(&s);
}

static void test_top_lists(void)
{
	struct srv s;
	struct resp r;
	json_t *j;

	CHECK_INT(srv_start(&s, NULL), 0);
	CHECK_INT(apply(&s, "chan", 50, 1234567800000, 1234567800001,
			"\"top_emotes\":[{\"name\":\"Kappa\",\"count\":40},"
			"{\"name\":\"PogChamp\",\"count\":3}],"
			"\"top_chatters\":[{\"username\":\"x\",\"count\":12}]"),
		  0);
	CHECK_INT(get(s.port, "/api/channels/chan/top?limit=1", &r), 0);
	CHECK_INT(r.status, 200);
	j = body_json(&r);
	CHECK(j != NULL);
	CHECK_INT(json_array_size(json_object_get(j, "top_emotes")), 1);
	CHECK_STR(json_string_value(json_object_get(
			  json_array_get(json_object_get(j, "top_emotes"), 0),
			  "name")),
		  "Kappa");
	CHECK_INT(json_array_size(json_object_get(j, "top_chatters")), 1);
	CHECK_STR(json_string_value(json_object_get(j, "window_start")),
		  "2009-02-13T23:30:00.000Z");
	CHECK_INT(json_integer_value(json_object_get(j, "message_count")), 50);
	json_decref(j);
	CHECK_INT(get(s.port, "/api/channels/chan/top", &r), 0);
	j = body_json(&r);
	CHECK_INT(json_array_size(json_object_get(j, "top_emotes")), 2);
	json_decref(j);
	CHECK_INT(get(s.port, "/api/channels/chan/top?limit=101", &r), 0);
	CHECK_INT(r.status, 400);
	CHECK_INT(get(s.port, "/api/channels/none/top", &r), 0);
	CHECK_INT(r.status, 404);
	srv_stop(&s);
}

/* The next command in the IRC ring, or op 0. */
static struct cb_irc_cmd next_cmd(struct srv *s)
{
	struct cb_irc_cmd c = {0};
	uint32_t len;
	const void *p = cb_ring_read(s->app.irc_cmd, &len);

	if (p != NULL && len == sizeof(c)) {
		memcpy(&c, p, sizeof(c));
		cb_ring_release(s->app.irc_cmd);
	}
	return c;
}

static void test_start_and_stop_channels(void)
{
	struct srv s;
	struct resp r;
	struct cb_irc_cmd c;
	char raw[20000];

	CHECK_INT(srv_start(&s, NULL), 0);
	CHECK_INT(call(s.port,
		       "POST /api/channels/%23Forsen HTTP/1.1\r\nHost: x\r\n"
		       "Content-Length: 0\r\n\r\n",
		       &r),
		  202);
	CHECK_STR(r.body, "{\"channel_id\":\"forsen\",\"action\":\"join\","
			  "\"status\":\"accepted\"}");
	c = next_cmd(&s);
	CHECK_INT(c.op, CB_IRC_JOIN);
	CHECK_STR(c.channel, "forsen");
	CHECK_INT(call(s.port,
		       "DELETE /api/channels/forsen HTTP/1.1\r\nHost: x\r\n"
		       "\r\n",
		       &r),
		  202);
	c = next_cmd(&s);
	CHECK_INT(c.op, CB_IRC_PART);
	CHECK_STR(c.channel, "forsen");
	/* A JSON object body is accepted. */
	CHECK_INT(call(s.port,
		       "POST /api/channels/a HTTP/1.1\r\nHost: x\r\n"
		       "Content-Type: application/json\r\n"
		       "Content-Length: 2\r\n\r\n{}",
		       &r),
		  202);
	CHECK_INT(next_cmd(&s).op, CB_IRC_JOIN);
	/* Other bodies are refused and queue nothing. */
	CHECK_INT(call(s.port,
		       "POST /api/channels/a HTTP/1.1\r\nHost: x\r\n"
		       "Content-Type: text/plain\r\n"
		       "Content-Length: 2\r\n\r\nhi",
		       &r),
		  415);
	CHECK(is_error_doc(&r));
	CHECK_INT(call(s.port,
		       "POST /api/channels/a HTTP/1.1\r\nHost: x\r\n"
		       "Content-Type: application/json\r\n"
		       "Content-Length: 5\r\n\r\n{nope",
		       &r),
		  400);
	CHECK(is_error_doc(&r));
	CHECK_INT(call(s.port,
		       "POST /api/channels/a HTTP/1.1\r\nHost: x\r\n"
		       "Content-Type: application/json\r\n"
		       "Content-Length: 3\r\n\r\n[1]",
		       &r),
		  400);
	/* Over http_max_body (16384): announced, and chunked. */
	CHECK_INT(call(s.port,
		       "POST /api/channels/a HTTP/1.1\r\nHost: x\r\n"
		       "Content-Type: application/json\r\n"
		       "Content-Length: 16385\r\n\r\n",
		       &r),
		  413);
	CHECK(is_error_doc(&r));
	{
		int n = snprintf(raw, sizeof(raw),
				 "POST /api/channels/a HTTP/1.1\r\nHost: x\r\n"
				 "Content-Type: application/json\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n"
				 "4400\r\n");

		memset(raw + n, ' ', 0x4400);
		snprintf(raw + n + 0x4400, sizeof(raw) - (size_t)n - 0x4400,
			 "\r\n0\r\n\r\n");
		CHECK_INT(request(s.port, raw, &r), 0);
		CHECK_INT(r.status, 413);
	}
	CHECK_INT(call(s.port,
		       "POST /api/channels/b%21d HTTP/1.1\r\nHost: x\r\n"
		       "Content-Length: 0\r\n\r\n",
		       &r),
		  400);
	CHECK_INT(next_cmd(&s).op, 0);
	/* GET with a body is refused. */
	CHECK_INT(call(s.port,
		       "GET /api/health HTTP/1.1\r\nHost: x\r\n"
		       "Content-Type: application/json\r\n"
		       "Content-Length: 2\r\n\r\n{}",
		       &r),
		  400);
	srv_stop(&s);
}

static void with_token(struct cb_config *c)
{
	free(c->api_token);
	c->api_token = strdup("s3cret-token");
	free(c->http_bind);
	c->http_bind = strdup("0.0.0.0");
}

static void test_control_needs_token(void)
{
	struct srv s;
	struct resp r;
	char v[128];

	CHECK_INT(srv_start(&s, with_token), 0);
	CHECK_INT(call(s.port,
		       "POST /api/channels/abc HTTP/1.1\r\nHost: x\r\n"
		       "Content-Length: 0\r\n\r\n",
		       &r),
		  401);
	CHECK(is_error_doc(&r));
	CHECK(strncmp(hdr(&r, "WWW-Authenticate", v, sizeof(v)), "Bearer", 6) ==
	      0);
	CHECK(strstr(r.body, "s3cret") == NULL);
	CHECK_INT(call(s.port,
		       "DELETE /api/channels/abc HTTP/1.1\r\nHost: x\r\n"
		       "Authorization: Bearer s3cret-tokeX\r\n\r\n",
		       &r),
		  403);
	CHECK_INT(call(s.port,
		       "DELETE /api/channels/abc HTTP/1.1\r\nHost: x\r\n"
		       "Authorization: Bearer s3cret\r\n\r\n",
		       &r),
		  403);
	CHECK_INT(next_cmd(&s).op, 0);
	CHECK_INT(call(s.port,
		       "DELETE /api/channels/abc HTTP/1.1\r\nHost: x\r\n"
		       "Authorization: Bearer s3cret-token\r\n\r\n",
		       &r),
		  202);
	CHECK_INT(next_cmd(&s).op, CB_IRC_PART);
	/* Reading needs no token. */
	CHECK_INT(get(s.port, "/api/channels", &r), 0);
	CHECK_INT(r.status, 200);
	srv_stop(&s);
}

static void test_methods_paths_and_preflight(void)
{
	struct srv s;
	struct resp r;
	char v[128];

	CHECK_INT(srv_start(&s, NULL), 0);
	CHECK_INT(call(s.port,
		       "PUT /api/channels/abc/stats HTTP/1.1\r\nHost: x\r\n"
		       "Content-Length: 0\r\n\r\n",
		       &r),
		  405);
	CHECK(is_error_doc(&r));
	CHECK_STR(hdr(&r, "Allow", v, sizeof(v)), "GET, HEAD, OPTIONS");
	CHECK_INT(call(s.port,
		       "GET /api/channels/abc HTTP/1.1\r\nHost: x\r\n\r\n",
		       &r),
		  405);
	CHECK_STR(hdr(&r, "Allow", v, sizeof(v)), "POST, DELETE, OPTIONS");
	CHECK_INT(request(s.port,
			  "FOO /api/health HTTP/1.1\r\nHost: x\r\n\r\n", &r),
		  0);
	CHECK_INT(r.status, 405);
	CHECK_INT(get(s.port, "/api/nothing", &r), 0);
	CHECK_INT(r.status, 404);
	CHECK(is_error_doc(&r));
	CHECK_STR(hdr(&r, "Access-Control-Allow-Origin", v, sizeof(v)), "*");
	CHECK_INT(get(s.port, "/api/health/", &r), 0);
	CHECK_INT(r.status, 404);
	CHECK_INT(get(s.port, "/api/channels/abc/stats/extra", &r), 0);
	CHECK_INT(r.status, 404);
	CHECK_INT(call(s.port,
		       "OPTIONS /api/channels/abc HTTP/1.1\r\nHost: x\r\n"
		       "Origin: http://example.org\r\n"
		       "Access-Control-Request-Method: POST\r\n\r\n",
		       &r),
		  204);
	CHECK_STR(hdr(&r, "Access-Control-Allow-Methods", v, sizeof(v)),
		  "POST, DELETE, OPTIONS");
	CHECK(strstr(hdr(&r, "Access-Control-Allow-Headers", v, sizeof(v)),
		     "Authorization") != NULL);
	CHECK_STR(hdr(&r, "Access-Control-Allow-Origin", v, sizeof(v)), "*");
	CHECK_INT(request(s.port,
			  "HEAD /api/health HTTP/1.1\r\nHost: x\r\n\r\n", &r),
		  0);
	CHECK(r.status == 200 || r.status == 503);
	CHECK_INT(r.body_len, 0);
	srv_stop(&s);
}

static void no_cors(struct cb_config *c)
{
	free(c->cors_origin);
	c->cors_origin = strdup("");
}

static void one_origin(struct cb_config *c)
{
	free(c->cors_origin);
	c->cors_origin = strdup("https://dash.example");
}

static void test_cors_setting(void)
{
	struct srv s;
	struct resp r;
	char v[128];

	CHECK_INT(srv_start(&s, no_cors), 0);
	CHECK_INT(get(s.port, "/api/channels", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK_STR(hdr(&r, "Access-Control-Allow-Origin", v, sizeof(v)), "");
	srv_stop(&s);
	CHECK_INT(srv_start(&s, one_origin), 0);
	CHECK_INT(get(s.port, "/api/nothing", &r), 0);
	CHECK_STR(hdr(&r, "Access-Control-Allow-Origin", v, sizeof(v)),
		  "https://dash.example");
	CHECK_STR(hdr(&r, "Vary", v, sizeof(v)), "Origin");
	srv_stop(&s);
}

/* Regression: libmicrohttpd closed the connection after every response
 * queued on the first handler call; one connection must serve many. */
static void test_keepalive_one_connection_many_requests(void)
{
	struct srv s;
	struct resp r;
	int fd, i;

	CHECK_INT(srv_start(&s, NULL), 0);
	CHECK_INT(apply(&s, "chan", 1, 1234567800000, 1234567800001, NULL), 0);
	fd = conn_open(s.port);
	CHECK(fd >= 0);
	for (i = 0; i < 300; i++) {
		static const char *const paths[] = {
			"/api/channels/chan/stats", "/api/channels/zz/stats",
			"/api/health", "/nothing", "/api/channels/chan/top",
			"/metrics"};
		char raw[256];

		snprintf(raw, sizeof(raw),
			 "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", paths[i % 6]);
		if (send_all(fd, raw, strlen(raw)) != 0 ||
		    read_resp(fd, &r, false) != 0 || r.closed)
			break;
		if (i % 6 == 0 && r.status != 200)
			break;
	}
	close(fd);
	if (i != 300)
		printf("# connection ended after %d requests\n", i + 1);
	CHECK_INT(i, 300);
	/* Pipelined requests on one connection too. */
	fd = conn_open(s.port);
	CHECK(fd >= 0);
	{
		static const char two[] =
			"GET /api/channels/chan/stats HTTP/1.1\r\nHost: x\r\n\r\n"
			"GET /api/channels/chan/stats HTTP/1.1\r\nHost: x\r\n\r\n";

		CHECK_INT(send_all(fd, two, sizeof(two) - 1), 0);
		CHECK_INT(read_resp(fd, &r, false), 0);
		CHECK_INT(r.status, 200);
		CHECK_INT(read_resp(fd, &r, false), 0);
		CHECK_INT(r.status, 200);
		CHECK(!r.closed);
	}
	close(fd);
	srv_stop(&s);
}

static void test_hostile_requests(void)
{
	static const char *const traversal[] = {
		"/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
		"/..%2Fsrc%2Fhttp.c", "/web/index.html", "/index.html/",
		"/./index.html", "//etc/passwd", "/%00"};
	struct srv s;
	struct resp r;
	char *raw;
	size_t n = 70000;

	CHECK_INT(srv_start(&s, NULL), 0);
	for (size_t i = 0; i < sizeof(traversal) / sizeof(traversal[0]); i++) {
		CHECK_INT(get(s.port, traversal[i], &r), 0);
		if (r.status != 404 && r.status != 400)
			printf("# %s -> %d\n", traversal[i], r.status);
		CHECK(r.status == 404 || r.status == 400);
	}
	/* A header larger than the connection's memory: refused, and the
	 * server goes on. */
	raw = malloc(n + 128);
	CHECK(raw != NULL);
	snprintf(raw, n + 128, "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(raw + strlen(raw), 'a', n);
	snprintf(raw + strlen(raw) - 10, 128, "aa\r\n\r\n");
	CHECK_INT(request(s.port, raw, &r), 0);
	free(raw);
	CHECK(r.status == 431 || r.status == 413 || r.status == 400);
	/* An endless chunked body is cut short: 413 (when the answer beats
	 * the reset) or a closed connection, never a hang. */
	{
		static char chunk[1 << 16];
		int fd = conn_open(s.port);
		bool closed = false;
		int sent = 0;
		char head[] = "POST /api/channels/a HTTP/1.1\r\nHost: x\r\n"
			      "Content-Type: application/json\r\n"
			      "Transfer-Encoding: chunked\r\n\r\n"
			      "10000000\r\n";

		CHECK(fd >= 0);
		memset(chunk, ' ', sizeof(chunk));
		CHECK_INT(send_all(fd, head, strlen(head)), 0);
		while (sent < 64 && send_all(fd, chunk, sizeof(chunk)) == 0)
			sent++;
		n = fill(fd, chunk, 0, sizeof(chunk) - 1, sizeof(chunk) - 1,
			 t_now_ms() + 5000, &closed);
		chunk[n] = '\0';
		close(fd);
		CHECK(closed || strstr(chunk, " 413 ") != NULL);
		CHECK(sent < 64 || closed);
	}
	/* Request text echoed in errors and logs: valid JSON, one line. */
	CHECK_INT(get(s.port, "/%ff%fe%0a%0d%01x", &r), 0);
	CHECK_INT(r.status, 404);
	CHECK(is_error_doc(&r));
	CHECK_INT(get(s.port, "/api/channels/%c3%28/stats", &r), 0);
	CHECK_INT(r.status, 400);
	CHECK(is_error_doc(&r));
	CHECK_INT(get(s.port, "/api/channels/a/windows?%ff=1", &r), 0);
	CHECK_INT(r.status, 400);
	CHECK(is_error_doc(&r));
	/* Garbage instead of a request line. */
	CHECK(request(s.port, "\x01\x02 garbage\r\n\r\n", &r) != 0 ||
	      r.status == 400);
	CHECK(request(s.port, "GET /api/health HTTP/9.9\r\n\r\n", &r) != 0 ||
	      r.status >= 400);
	/* Still serving. */
	CHECK_INT(get(s.port, "/api/channels", &r), 0);
	CHECK_INT(r.status, 200);
	srv_stop(&s);
}

static void test_metrics_text(void)
{
	struct srv s;
	struct resp r;
	char v[128];

	CHECK_INT(srv_start(&s, NULL), 0);
	CHECK_INT(get(s.port, "/api/nothing", &r), 0);
	CHECK_INT(get(s.port, "/metrics", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK(strncmp(hdr(&r, "Content-Type", v, sizeof(v)), "text/plain", 10) ==
	      0);
	CHECK(strstr(r.body, "\nchatbattle_http_requests_total ") != NULL);
	CHECK(strstr(r.body, "\nchatbattle_http_client_errors_total ") != NULL);
	CHECK(strstr(r.body, "chatbattle_sse_clients ") != NULL);
	srv_stop(&s);
}

/* Every route is in web/openapi.json and every operation there is a
 * route. */
static void test_openapi_matches_routes(void)
{
	const struct cb_http_route_info *routes;
	size_t n = cb_http_routes(&routes), ops = 0;
	struct srv s;
	struct resp r;
	json_t *doc, *paths, *item;
	const char *path, *method;

	CHECK_INT(srv_start(&s, NULL), 0);
	CHECK_INT(get(s.port, "/api/openapi.json", &r), 0);
	CHECK_INT(r.status, 200);
	doc = body_json(&r);
	srv_stop(&s);
	CHECK(doc != NULL);
	CHECK(strncmp(json_string_value(json_object_get(doc, "openapi")),
		      "3.", 2) == 0);
	paths = json_object_get(doc, "paths");
	for (size_t i = 0; i < n; i++) {
		char m[16];
		size_t k;

		for (k = 0; routes[i].method[k] && k < sizeof(m) - 1; k++)
			m[k] = (char)(routes[i].method[k] | 0x20);
		m[k] = '\0';
		if (json_object_get(json_object_get(paths, routes[i].path),
				    m) == NULL)
			printf("# %s %s is not in openapi.json\n",
			       routes[i].method, routes[i].path);
		CHECK(json_object_get(json_object_get(paths, routes[i].path),
				      m) != NULL);
	}
	json_object_foreach(paths, path, item)
	{
		json_t *op;

		json_object_foreach(item, method, op)
		{
			bool found = false;

			if (strcmp(method, "parameters") == 0)
				continue;
			ops++;
			for (size_t i = 0; i < n; i++)
				found |= strcmp(routes[i].path, path) == 0 &&
					 strcasecmp(routes[i].method, method) ==
						 0;
			if (!found)
				printf("# openapi.json has %s %s, the code "
				       "does not\n",
				       method, path);
			CHECK(found);
			CHECK(json_object_get(op, "responses") != NULL);
		}
	}
	CHECK_INT(ops, n);
	json_decref(doc);
}

static void test_assets_and_etag(void)
{
	struct srv s;
	struct resp r;
	char v[128], etag[80], raw[256];

	CHECK_INT(srv_start(&s, NULL), 0);
	CHECK_INT(get(s.port, "/", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK(strncmp(hdr(&r, "Content-Type", v, sizeof(v)), "text/html", 9) ==
	      0);
	CHECK(strstr(r.body, "<html") != NULL || strstr(r.body, "<!doctype") != NULL);
	CHECK_STR(hdr(&r, "Cache-Control", v, sizeof(v)), "no-cache");
	hdr(&r, "ETag", etag, sizeof(etag));
	CHECK(etag[0] == '"');
	snprintf(raw, sizeof(raw),
		 "GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n",
		 etag);
	CHECK_INT(request(s.port, raw, &r), 0);
	CHECK_INT(r.status, 304);
	CHECK_INT(r.body_len, 0);
	CHECK_INT(get(s.port, "/app.js", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK_STR(hdr(&r, "Content-Type", v, sizeof(v)),
		  "text/javascript; charset=utf-8");
	CHECK_INT(get(s.port, "/app.css", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK_STR(hdr(&r, "Content-Type", v, sizeof(v)),
		  "text/css; charset=utf-8");
	CHECK_INT(call(s.port,
		       "POST /index.html HTTP/1.1\r\nHost: x\r\n"
		       "Content-Length: 0\r\n\r\n",
		       &r),
		  405);
	srv_stop(&s);
}

static void test_base64url_tokens(void)
{
	uint8_t in[64], out[64];
	char text[100];
	size_t n;

	for (size_t len = 0; len <= sizeof(in); len++) {
		for (size_t i = 0; i < len; i++)
			in[i] = (uint8_t)(i * 37 + len);
		cb_http_b64url_encode(in, len, text);
		CHECK(strpbrk(text, "+/=") == NULL);
		CHECK_INT(cb_http_b64url_decode(text, out, sizeof(out), &n), 0);
		CHECK_INT(n, len);
		CHECK(memcmp(in, out, len) == 0);
	}
	in[0] = 0xfb;
	in[1] = 0xff;
	cb_http_b64url_encode(in, 2, text);
	CHECK_STR(text, "-_8");
	CHECK_INT(cb_http_b64url_decode("a+b/", out, sizeof(out), &n),
		  CB_E_PARSE);
	CHECK_INT(cb_http_b64url_decode("abcde", out, sizeof(out), &n),
		  CB_E_PARSE);
	CHECK_INT(cb_http_b64url_decode("-_9", out, sizeof(out), &n),
		  CB_E_PARSE); /* not canonical: low bits set */
	CHECK_INT(cb_http_b64url_decode("AAAAAAAA", out, 5, &n), CB_E_TOOBIG);
}

static void test_messages_parameters(void)
{
	static const char *const bad[] = {
		"/api/channels/chan/messages?limit=0",
		"/api/channels/chan/messages?limit=1001",
		"/api/channels/chan/messages?before=yesterday",
		"/api/channels/chan/messages?since=2009-02-13T23:31:30",
		/* regression: strptime and timegm took this as March 2 */
		"/api/channels/chan/messages?before=2009-02-30T00:00:00Z",
		"/api/channels/chan/messages?before=2009-02-13T23:31:30.Z",
		"/api/channels/chan/messages?page=%2B%2F%3D",
		"/api/channels/chan/messages?after=1",
		"/api/channels/b%40d/messages",
	};
	struct srv s;
	struct resp r;

	CHECK_INT(srv_start(&s, NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(get(s.port, bad[i], &r), 0);
		if (r.status != 400)
			printf("# %s -> %d\n", bad[i], r.status);
		CHECK_INT(r.status, 400);
		CHECK(is_error_doc(&r));
	}
	/* Valid: a page (with Cassandra and the CQL module), else a JSON
	 * error saying what is missing. */
	CHECK_INT(get(s.port,
		      "/api/channels/chan/messages?limit=5&before="
		      "2009-02-13T23:31:30.123Z&since=1234567800000",
		      &r),
		  0);
	CHECK(r.status == 200 || (r.status == 503 && is_error_doc(&r)));
	srv_stop(&s);
}

/* ---- Server-Sent Events ---- */

static void fast_heartbeat(struct cb_config *c)
{
	c->sse_heartbeat_s = 1;
	c->sse_max_clients = 2;
}

static void test_sse_updates_heartbeats_and_limits(void)
{
	static char buf[65536];
	struct srv s;
	struct resp r;
	size_t have = 0, off = 0;
	int fd, fd2, fd3;
	int64_t t0;

	CHECK_INT(srv_start(&s, fast_heartbeat), 0);
	CHECK_INT(apply(&s, "chan", 10, 1234567800000, 1234567800001, NULL), 0);
	fd = open_stream(s.port, "chan");
	CHECK(fd >= 0);
	CHECK(stream_until(fd, buf, sizeof(buf), &have, &off,
			   "Content-Type: text/event-stream", 3000));
	/* The current figures at once. */
	CHECK(stream_until(fd, buf, sizeof(buf), &have, &off,
			   "event: stats\ndata: {\"channel_id\":\"chan\","
			   "\"message_count\":10,",
			   3000));
	/* While the stream is idle (suspended), the single HTTP thread
	 * serves other requests. */
	CHECK_INT(get(s.port, "/api/channels/chan/stats", &r), 0);
	CHECK_INT(r.status, 200);
	/* An update is pushed as soon as the cache changes. */
	t0 = t_now_ms();
	CHECK_INT(apply(&s, "chan", 11, 1234567800000, 1234567800002, NULL), 0);
	CHECK(stream_until(fd, buf, sizeof(buf), &have, &off,
			   "\"message_count\":11,", 3000));
	printf("# update delivered in %lld ms\n", (long long)(t_now_ms() - t0));
	/* Regression: the notifier sampled the cache version when its
	 * thread first ran, so an update right after the first stream
	 * opened waited for the next heartbeat (1 s here). */
	CHECK(t_now_ms() - t0 < 900);
	/* Another channel's change sends nothing on this stream. */
	CHECK_INT(apply(&s, "other", 1, 1234567800000, 1234567800002, NULL),
		  0);
	/* Heartbeats (sse_heartbeat_s = 1). */
	CHECK(stream_until(fd, buf, sizeof(buf), &have, &off, ": heartbeat\n\n",
			   4000));
	CHECK(strstr(buf, "\"channel_id\":\"other\"") == NULL);
	/* sse_max_clients = 2: a third stream is refused. */
	fd2 = open_stream(s.port, "other");
	CHECK(fd2 >= 0);
	{
		static char b2[8192];
		size_t h2 = 0, o2 = 0;

		CHECK(stream_until(fd2, b2, sizeof(b2), &h2, &o2,
				   "\"channel_id\":\"other\"", 3000));
	}
	CHECK(cb_metric_get(CB_M_sse_clients) == 2);
	fd3 = open_stream(s.port, "chan");
	CHECK(fd3 >= 0);
	CHECK_INT(read_resp(fd3, &r, false), 0);
	CHECK_INT(r.status, 503);
	CHECK(is_error_doc(&r));
	close(fd3);
	/* A stream for a bad id is a 400. */
	CHECK_INT(get(s.port, "/api/channels/b%40d/events", &r), 0);
	CHECK_INT(r.status, 400);
	/* A client that leaves is forgotten (at its next heartbeat). */
	close(fd2);
	{
		int64_t deadline = t_now_ms() + 5000;

		while (cb_metric_get(CB_M_sse_clients) != 1 &&
		       t_now_ms() < deadline) {
			struct pollfd p = {.fd = -1};

			poll(&p, 0, 20);
		}
		CHECK_INT(cb_metric_get(CB_M_sse_clients), 1);
	}
	/* Stop ends open streams promptly. */
	t0 = t_now_ms();
	srv_stop(&s);
	CHECK(t_now_ms() - t0 < 2500);
	{
		bool closed = false;

		have = fill(fd, buf, have, sizeof(buf), sizeof(buf) - 1,
			    t_now_ms() + 2000, &closed);
		CHECK(closed);
	}
	close(fd);
	CHECK_INT(cb_metric_get(CB_M_sse_clients), 0);
}

static void two_threads(struct cb_config *c)
{
	c->http_threads = 2;
}

/* Several streams and plain requests at once on a thread pool. */
static void test_sse_many_streams_thread_pool(void)
{
	static char buf[8][16384];
	size_t have[8] = {0}, off[8] = {0};
	struct srv s;
	struct resp r;
	int fd[8];

	CHECK_INT(srv_start(&s, two_threads), 0);
	for (int i = 0; i < 8; i++) {
		fd[i] = open_stream(s.port, i % 2 ? "odd" : "even");
		CHECK(fd[i] >= 0);
		CHECK(stream_until(fd[i], buf[i], sizeof(buf[i]), &have[i],
				   &off[i], ": stream of ", 3000));
	}
	for (int round = 1; round <= 3; round++) {
		char want[64];

		CHECK_INT(apply(&s, "odd", round, 1234567800000,
				1234567800000 + round, NULL),
			  0);
		CHECK_INT(apply(&s, "even", 100 + round, 1234567800000,
				1234567800000 + round, NULL),
			  0);
		CHECK_INT(get(s.port, "/api/channels/odd/stats", &r), 0);
		CHECK_INT(r.status, 200);
		for (int i = 0; i < 8; i++) {
			snprintf(want, sizeof(want), "\"message_count\":%d,",
				 i % 2 ? round : 100 + round);
			CHECK(stream_until(fd[i], buf[i], sizeof(buf[i]),
					   &have[i], &off[i], want, 3000));
		}
	}
	srv_stop(&s);
	for (int i = 0; i < 8; i++)
		close(fd[i]);
}

/* ---- the battle of channels ---- */

/* The battle entry of channel ch in doc, or NULL. */
static json_t *fighter(json_t *doc, const char *ch)
{
	json_t *list = json_object_get(doc, "channels");

	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *e = json_array_get(list, i);

		if (strcmp(json_string_value(json_object_get(e, "channel_id")),
			   ch) == 0)
			return e;
	}
	return NULL;
}

/* What the documentation says messages_per_minute is, for the "now" the
 * server used: count over the minutes since the first active minute (at
 * least one), rounded to a tenth. */
static double expected_rate(int64_t count, int64_t active_ms, int64_t now)
{
	int64_t elapsed = now - active_ms;

	if (elapsed < 60000)
		elapsed = 60000;
	return round((double)count * 60000.0 / (double)elapsed * 10.0) / 10.0;
}

static void test_battle_ranking(void)
{
	struct srv s;
	struct resp r;
	json_t *j, *list, *e, *spark;
	int64_t now = cb_wall_ms(), minute = now - now % 60000;
	/* A window that began five minutes ago and is open for five more. */
	int64_t start = minute - 5 * 60000, doc_now, spark_start;
	const char *order[] = {"fast", "late", "early", "stale", "nodata"};

	CHECK_INT(srv_start(&s, NULL), 0);
	/* fast: 3000 since the window began; early: 150 since then; late:
	 * 100 since one minute ago (it joined late: its rate counts from its
	 * first minute, so it beats early); stale: busy, but its newest
	 * window has ended, so nothing in the current one. */
	CHECK_INT(apply(&s, "fast", 3000, start, now,
			"\"per_minute\":[500,500,500,500,500,500,0,0,0,0],"
			"\"top_emotes\":[{\"name\":\"PogChamp\",\"count\":90},"
			"{\"name\":\"Kappa\",\"count\":3}]"),
		  0);
	CHECK_INT(apply(&s, "early", 150, start, now,
			"\"per_minute\":[25,25,25,25,25,25,0,0,0,0]"), 0);
	CHECK_INT(apply(&s, "late", 100, start, now,
			"\"per_minute\":[0,0,0,0,60,40,0,0,0,0]"), 0);
	CHECK_INT(apply(&s, "stale", 5000, start - 600000, start - 1000,
			"\"per_minute\":[500,500,500,500,500,500,500,500,500,"
			"500],\"top_emotes\":[{\"name\":\"LUL\",\"count\":9}]"),
		  0);

	CHECK_INT(get(s.port, "/api/battle?channels=FAST,%23late,early,fast,"
			      "stale,nodata",
		      &r),
		  0);
	CHECK_INT(r.status, 200);
	CHECK(strstr(r.head, "application/json") != NULL);
	j = body_json(&r);
	CHECK(j != NULL);
	list = json_object_get(j, "channels");
	CHECK_INT(json_array_size(list), 5); /* "fast" twice counts once */
	CHECK_INT(json_integer_value(json_object_get(j, "count")), 5);
	CHECK(json_is_false(json_object_get(j, "truncated")));
	for (size_t i = 0; i < 5 && i < json_array_size(list); i++) {
		e = json_array_get(list, i);
		CHECK_STR(json_string_value(json_object_get(e, "channel_id")),
			  order[i]);
		CHECK_INT(json_integer_value(json_object_get(e, "rank")),
			  (int64_t)i + 1);
	}
	doc_now = json_integer_value(json_object_get(j, "now"));
	CHECK(doc_now >= now && doc_now < now + 60000);
	spark_start = json_integer_value(json_object_get(j, "sparkline_start"));
	CHECK_INT(spark_start, doc_now - doc_now % 60000 - 29 * 60000);
	CHECK_INT(json_integer_value(json_object_get(j, "sparkline_minutes")),
		  30);

	e = fighter(j, "fast");
	CHECK(json_real_value(json_object_get(e, "messages_per_minute")) ==
	      expected_rate(3000, start, doc_now));
	CHECK_INT(json_integer_value(json_object_get(e, "message_count")),
		  3000);
	CHECK_INT(json_integer_value(json_object_get(e, "unique_chatters")), 7);
	CHECK_STR(json_string_value(json_object_get(
			  json_object_get(e, "top_emote"), "name")),
		  "PogChamp");
	CHECK_INT(json_integer_value(json_object_get(
			  json_object_get(e, "top_emote"), "count")),
		  90);
	CHECK(json_is_true(json_object_get(e, "has_stats")));
	CHECK(json_is_true(json_object_get(e, "in_window")));
	CHECK_INT(json_integer_value(json_object_get(e, "window_start")),
		  start);
	CHECK(json_is_false(json_object_get(e, "monitored")));
	/* The sparkline: this window's minutes at their place, oldest
	 * first, ending with the current minute. */
	spark = json_object_get(e, "sparkline");
	CHECK_INT(json_array_size(spark), 30);
	for (int64_t k = 0; k < 30; k++) {
		int64_t t = spark_start + k * 60000;
		int64_t want = t >= start && t <= minute ? 500 : 0;

		if (json_integer_value(json_array_get(spark, (size_t)k)) != want)
			printf("# fast sparkline[%lld] = %lld, want %lld\n",
			       (long long)k,
			       (long long)json_integer_value(
				       json_array_get(spark, (size_t)k)),
			       (long long)want);
		CHECK(json_integer_value(json_array_get(spark, (size_t)k)) ==
		      want);
	}
	e = fighter(j, "late");
	CHECK(json_real_value(json_object_get(e, "messages_per_minute")) ==
	      expected_rate(100, start + 4 * 60000, doc_now));
	CHECK(json_is_null(json_object_get(e, "top_emote")));
	e = fighter(j, "early");
	CHECK(json_real_value(json_object_get(e, "messages_per_minute")) ==
	      expected_rate(150, start, doc_now));
	/* stale: nothing in the current window, but its last window is in
	 * the sparkline. */
	e = fighter(j, "stale");
	CHECK(json_real_value(json_object_get(e, "messages_per_minute")) == 0);
	CHECK_INT(json_integer_value(json_object_get(e, "message_count")), 0);
	CHECK(json_is_false(json_object_get(e, "in_window")));
	CHECK(json_is_true(json_object_get(e, "has_stats")));
	CHECK(json_is_null(json_object_get(e, "top_emote")));
	spark = json_object_get(e, "sparkline");
	CHECK_INT(json_integer_value(json_array_get(
			  spark, (size_t)((start - 600000 - spark_start) / 60000))),
		  500);
	CHECK_INT(json_integer_value(json_array_get(
			  spark, (size_t)((start - spark_start) / 60000))),
		  0);
	/* nodata: named, no figures yet. */
	e = fighter(j, "nodata");
	CHECK(json_is_false(json_object_get(e, "has_stats")));
	CHECK(json_is_null(json_object_get(e, "messages_per_minute")));
	CHECK(json_is_null(json_object_get(e, "message_count")));
	CHECK(json_is_null(json_object_get(e, "window_start")));
	json_decref(j);

	/* Without ?channels=: every channel watched (here: with figures). */
	CHECK_INT(get(s.port, "/api/battle", &r), 0);
	CHECK_INT(r.status, 200);
	j = body_json(&r);
	list = json_object_get(j, "channels");
	CHECK_INT(json_array_size(list), 4);
	for (size_t i = 0; i < 4 && i < json_array_size(list); i++)
		CHECK_STR(json_string_value(json_object_get(
				  json_array_get(list, i), "channel_id")),
			  order[i]);
	json_decref(j);
	/* The ranking follows new figures: early overtakes fast. */
	CHECK_INT(apply(&s, "early", 9000, start, now + 1,
			"\"per_minute\":[1500,1500,1500,1500,1500,1500,0,0,0,"
			"0]"),
		  0);
	CHECK_INT(get(s.port, "/api/battle?channels=fast,early", &r), 0);
	j = body_json(&r);
	CHECK_STR(json_string_value(json_object_get(
			  json_array_get(json_object_get(j, "channels"), 0),
			  "channel_id")),
		  "early");
	json_decref(j);
	srv_stop(&s);
}

static void test_battle_bad_requests(void)
{
	static char path[4096], raw[4200];
	struct srv s;
	struct resp r;
	size_t used;

	CHECK_INT(srv_start(&s, NULL), 0);
	CHECK_INT(get(s.port, "/api/battle?channels=good,bad-name", &r), 0);
	CHECK_INT(r.status, 400);
	CHECK(is_error_doc(&r));
	CHECK(strstr(r.body, "bad-name") != NULL);
	CHECK_INT(get(s.port, "/api/battle?channels=", &r), 0);
	CHECK_INT(r.status, 400);
	CHECK(is_error_doc(&r));
	CHECK_INT(get(s.port, "/api/battle?channels=a,,b", &r), 0);
	CHECK_INT(r.status, 400);
	CHECK_INT(get(s.port, "/api/battle?channels=abcdefghijklmnopqrstuvwxyz",
		      &r),
		  0);
	CHECK_INT(r.status, 400);
	CHECK_INT(get(s.port, "/api/battle?channel=a", &r), 0);
	CHECK_INT(r.status, 400);
	CHECK(strstr(r.body, "channels") != NULL);
	/* 100 channels are fine; 101 are refused, saying the limit. */
	used = (size_t)snprintf(path, sizeof(path), "/api/battle?channels=c0");
	for (int i = 1; i < 100; i++)
		used += (size_t)snprintf(path + used, sizeof(path) - used,
					 ",c%d", i);
	snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
		 path);
	CHECK_INT(request(s.port, raw, &r), 0);
	CHECK_INT(r.status, 200);
	snprintf(path + used, sizeof(path) - used, ",c100");
	snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
		 path);
	CHECK_INT(request(s.port, raw, &r), 0);
	CHECK_INT(r.status, 400);
	CHECK(is_error_doc(&r));
	CHECK(strstr(r.body, "at most 100") != NULL);
	/* The same rules for the event stream. */
	CHECK_INT(get(s.port, "/api/battle/events?channels=no%20way", &r), 0);
	CHECK_INT(r.status, 400);
	CHECK(is_error_doc(&r));
	CHECK_INT(call(s.port,
		       "POST /api/battle HTTP/1.1\r\nHost: x\r\n"
		       "Content-Length: 0\r\n\r\n",
		       &r),
		  405);
	srv_stop(&s);
}

static int open_battle_stream(uint16_t port, const char *query)
{
	char raw[512];
	int fd = conn_open(port);

	snprintf(raw, sizeof(raw),
		 "GET /api/battle/events%s HTTP/1.1\r\nHost: x\r\n"
		 "Accept: text/event-stream\r\n\r\n",
		 query);
	if (fd >= 0 && send_all(fd, raw, strlen(raw)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void test_battle_stream(void)
{
	static char buf[1 << 18], buf2[1 << 16];
	struct srv s;
	size_t have = 0, off = 0, have2 = 0, off2 = 0;
	int64_t now = cb_wall_ms(), start = now - now % 60000 - 60000;
	int fd, fd2;

	CHECK_INT(srv_start(&s, fast_heartbeat), 0);
	CHECK_INT(apply(&s, "alpha", 50, start, now,
			"\"per_minute\":[20,30,0,0,0,0,0,0,0,0]"), 0);
	fd = open_battle_stream(s.port, "");
	fd2 = open_battle_stream(s.port, "?channels=beta");
	CHECK(fd >= 0 && fd2 >= 0);
	CHECK(stream_until(fd, buf, sizeof(buf), &have, &off,
			   "Content-Type: text/event-stream", 3000));
	/* The ranking at once. */
	CHECK(stream_until(fd, buf, sizeof(buf), &have, &off,
			   "event: battle\ndata: {\"now\":", 3000));
	CHECK(stream_until(fd, buf, sizeof(buf), &have, &off,
			   "{\"rank\":1,\"channel_id\":\"alpha\"", 3000));
	/* beta has no figures yet: its stream says so. */
	CHECK(stream_until(fd2, buf2, sizeof(buf2), &have2, &off2,
			   "{\"rank\":1,\"channel_id\":\"beta\","
			   "\"messages_per_minute\":null",
			   3000));
	/* A new channel, busier: it leads the next document, which comes
	 * well before the heartbeat would resend one (1 s here)... */
	CHECK_INT(apply(&s, "beta", 900, start, now + 1,
			"\"per_minute\":[400,500,0,0,0,0,0,0,0,0]"), 0);
	CHECK(stream_until(fd, buf, sizeof(buf), &have, &off,
			   "{\"rank\":1,\"channel_id\":\"beta\"", 3000));
	CHECK(stream_until(fd2, buf2, sizeof(buf2), &have2, &off2,
			   "\"channel_id\":\"beta\",\"messages_per_minute\":",
			   3000));
	/* ...and without changes the document comes again with the
	 * heartbeat (the rates move with the clock). */
	CHECK(stream_until(fd2, buf2, sizeof(buf2), &have2, &off2,
			   "event: battle\ndata: {\"now\":", 4000));
	CHECK(cb_metric_get(CB_M_sse_clients) == 2);
	close(fd);
	close(fd2);
	srv_stop(&s);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(test_iso8601_matches_javascript);
	RUN(test_loopback_addresses);
	RUN(test_refuses_public_bind_without_token);
	RUN(test_port_in_use_is_an_error);
	RUN(test_stats_original_bytes);
	RUN(test_stats_missing_or_invalid_channel);
	RUN(test_health_states);
	RUN(test_health_ignores_other_roles);
	RUN(test_channels_list);
	RUN(test_windows_newest_first);
	RUN(test_top_lists);
	RUN(test_start_and_stop_channels);
	RUN(test_control_needs_token);
	RUN(test_methods_paths_and_preflight);
	RUN(test_cors_setting);
	RUN(test_keepalive_one_connection_many_requests);
	RUN(test_hostile_requests);
	RUN(test_metrics_text);
	RUN(test_openapi_matches_routes);
	RUN(test_assets_and_etag);
	RUN(test_base64url_tokens);
	RUN(test_messages_parameters);
	RUN(test_sse_updates_heartbeats_and_limits);
	RUN(test_sse_many_streams_thread_pool);
	RUN(test_battle_ranking);
	RUN(test_battle_bad_requests);
	RUN(test_battle_stream);
	return test_done();
}
