/*
 * test_mt_viewers.c - viewer counts: the pure Helix helpers (helix.c: batch
 * targets, streams and token parsing, the rate-limit wait) and the poller
 * thread (viewers.c) against a fake Helix server on its own thread
 * (evhttp, loopback): 150 channels in two requests of 100 and 50, the
 * series, a 429 honoured until Ratelimit-Reset and logged once, a new token
 * after a 401, a refused secret logged once, and neither the secret nor a
 * token in the log (at debug level).  Runs under ASan and TSan.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "chatbattle/app.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/helix.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/viewers.h"
#include "test.h"

#define SECRET "s3cr3t-never-in-a-log"
#define TOKEN_PREFIX "faketok"
#define MAX_REQS 256

/* ---- the pure helpers ---- */

static void test_target_batches(void)
{
	char names[101][26], out[4096];
	int n;

	for (int i = 0; i < 101; i++)
		snprintf(names[i], 26, "c%03d", i);
	n = cb_helix_streams_target("", (const char(*)[26])names, 2, out,
				    sizeof(out));
	CHECK(n > 0);
	CHECK_STR(out, "/helix/streams?user_login=c000&user_login=c001");
	n = cb_helix_streams_target("/base/", (const char(*)[26])names, 1, out,
				    sizeof(out));
	CHECK_STR(out, "/base/helix/streams?user_login=c000");
	CHECK(cb_helix_streams_target("", (const char(*)[26])names, 100, out,
				      sizeof(out)) > 0);
	CHECK_INT(cb_helix_streams_target("", (const char(*)[26])names, 101,
					  out, sizeof(out)),
		  CB_E_INVAL);
	CHECK_INT(cb_helix_streams_target("", (const char(*)[26])names, 0, out,
					  sizeof(out)),
		  CB_E_INVAL);
	CHECK_INT(cb_helix_streams_target("", (const char(*)[26])names, 10,
					  out, 40),
		  CB_E_TOOBIG);
}

static void test_parse_streams(void)
{
	const char *body =
		"{\"data\":[{\"user_login\":\"XQC\",\"viewer_count\":51234,"
		"\"type\":\"live\"},{\"user_login\":\"nocount\"},"
		"{\"user_login\":\"bad-name\",\"viewer_count\":5},"
		"{\"user_login\":\"forsen\",\"viewer_count\":0}],"
		"\"pagination\":{}}";
	struct cb_helix_stream s[4];
	char errstr[200];
	size_t n;

	CHECK_INT(cb_helix_parse_streams(body, strlen(body), s, 4, &n, errstr,
					 sizeof(errstr)),
		  0);
	CHECK_INT(n, 2);
	CHECK_STR(s[0].login, "xqc");
	CHECK_INT(s[0].viewers, 51234);
	CHECK_STR(s[1].login, "forsen");
	CHECK_INT(s[1].viewers, 0);
	CHECK_INT(cb_helix_parse_streams("nope", 4, s, 4, &n, errstr,
					 sizeof(errstr)),
		  CB_E_PARSE);
	CHECK_INT(cb_helix_parse_streams("{}", 2, s, 4, &n, errstr,
					 sizeof(errstr)),
		  CB_E_PARSE);
	CHECK(strstr(errstr, "data") != NULL);
}

static void test_parse_token(void)
{
	const char *ok = "{\"access_token\":\"abc\",\"expires_in\":5000,"
			 "\"token_type\":\"bearer\"}";
	char tok[16], errstr[200];
	int64_t exp;

	CHECK_INT(cb_helix_parse_token(ok, strlen(ok), tok, sizeof(tok), &exp,
				       errstr, sizeof(errstr)),
		  0);
	CHECK_STR(tok, "abc");
	CHECK_INT(exp, 5000);
	CHECK_INT(cb_helix_parse_token("{\"access_token\":\"\"}", 19, tok,
				       sizeof(tok), &exp, errstr,
				       sizeof(errstr)),
		  CB_E_PARSE);
	/* a token longer than the buffer is refused, and not echoed */
	CHECK_INT(cb_helix_parse_token(
			  "{\"access_token\":\"0123456789abcdefXYZ\"}", 38, tok,
			  sizeof(tok), &exp, errstr, sizeof(errstr)),
		  CB_E_PARSE);
	CHECK(strstr(errstr, "XYZ") == NULL);
}

static void test_wait_ms(void)
{
	int64_t now = 1700000000500; /* .5 s into a second */

	/* 429: until the reset, at least a second, a minute without one */
	CHECK_INT(cb_helix_wait_ms(429, "0", "1700000002", now), 1500);
	CHECK_INT(cb_helix_wait_ms(429, "0", "1700000000", now),
		  CB_HELIX_WAIT_429_MIN_MS);
	CHECK_INT(cb_helix_wait_ms(429, "0", "1600000000", now),
		  CB_HELIX_WAIT_429_MIN_MS);
	CHECK_INT(cb_helix_wait_ms(429, NULL, NULL, now), 60000);
	CHECK_INT(cb_helix_wait_ms(429, "0", "soon", now), 60000);
	CHECK_INT(cb_helix_wait_ms(429, "0", "1800000000", now),
		  CB_HELIX_WAIT_MAX_MS);
	/* 200 with the bucket empty: until the reset; else at once */
	CHECK_INT(cb_helix_wait_ms(200, "0", "1700000003", now), 2500);
	CHECK_INT(cb_helix_wait_ms(200, "0", "1699999999", now), 0);
	CHECK_INT(cb_helix_wait_ms(200, "799", "1700000003", now), 0);
	CHECK_INT(cb_helix_wait_ms(200, NULL, NULL, now), 0);
}

/* ---- a fake Helix server ---- */

struct fake_req {
	int64_t at_ms;   /* wall clock of arrival */
	int status;      /* answered */
	int logins;
	int64_t reset_s; /* Ratelimit-Reset sent (429) */
	char first[26];
};

struct fake {
	struct event_base *base;
	struct evhttp *http;
	struct event *poll_ev;
	pthread_t thread;
	atomic_bool stop;
	int port;
	pthread_mutex_t lock;
	/* under lock */
	int tokens;         /* issued */
	int token_refusals; /* the next token requests get 403 */
	int n429;           /* the next streams requests get 429 */
	int n401;           /* the next streams requests get 401 */
	int nreq;
	struct fake_req reqs[MAX_REQS];
	char bad_auth[300]; /* an Authorization header it saw without Bearer */
};

static void fake_reply(struct evhttp_request *req, int code, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, body, strlen(body));
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", b);
	evbuffer_free(b);
}

static void fake_token(struct evhttp_request *req, struct fake *f)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char form[1024], body[200];

	if (len >= sizeof(form))
		len = sizeof(form) - 1;
	evbuffer_copyout(in, form, len);
	form[len] = '\0';
	if (strstr(form, "grant_type=client_credentials") == NULL ||
	    strstr(form, "client_secret=" SECRET) == NULL ||
	    strstr(form, "client_id=cid") == NULL) {
		fake_reply(req, 400, "{\"message\":\"bad form\"}");
		return;
	}
	pthread_mutex_lock(&f->lock);
	if (f->token_refusals > 0) {
		f->token_refusals--;
		pthread_mutex_unlock(&f->lock);
		fake_reply(req, 403, "{\"status\":403,\"message\":\"invalid "
				     "client secret\"}");
		return;
	}
	f->tokens++;
	snprintf(body, sizeof(body),
		 "{\"access_token\":\"" TOKEN_PREFIX "%d\",\"expires_in\":"
		 "5000000,\"token_type\":\"bearer\"}",
		 f->tokens);
	pthread_mutex_unlock(&f->lock);
	fake_reply(req, 200, body);
}

static void fake_streams(struct evhttp_request *req, struct fake *f)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *auth = evhttp_find_header(h, "Authorization");
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq kv;
	struct evkeyval *e;
	struct evbuffer *b;
	struct fake_req *r = NULL;
	char expect[64], v[32];
	int64_t now = cb_wall_ms();
	int status = 200, live = 0, idx;

	pthread_mutex_lock(&f->lock);
	snprintf(expect, sizeof(expect), "Bearer " TOKEN_PREFIX "%d", f->tokens);
	if (f->nreq < MAX_REQS) {
		r = &f->reqs[f->nreq++];
		memset(r, 0, sizeof(*r));
		r->at_ms = now;
	}
	if (auth == NULL || strcmp(auth, expect) != 0 ||
	    evhttp_find_header(h, "Client-Id") == NULL) {
		status = 401;
		if (auth != NULL && strncmp(auth, "Bearer ", 7) != 0)
			snprintf(f->bad_auth, sizeof(f->bad_auth), "%s", auth);
	} else if (f->n401 > 0) {
		f->n401--;
		status = 401;
	} else if (f->n429 > 0) {
		f->n429--;
		status = 429;
	}
	if (r != NULL) {
		r->status = status;
		r->reset_s = now / 1000 + 1;
	}
	pthread_mutex_unlock(&f->lock);
	if (status == 429) {
		snprintf(v, sizeof(v), "%lld", (long long)(now / 1000 + 1));
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Ratelimit-Remaining", "0");
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Ratelimit-Reset", v);
		fake_reply(req, 429, "{\"message\":\"Too Many Requests\"}");
		return;
	}
	if (status == 401) {
		fake_reply(req, 401, "{\"message\":\"Invalid OAuth token\"}");
		return;
	}
	TAILQ_INIT(&kv);
	evhttp_parse_query_str(q ? q : "", &kv);
	b = evbuffer_new();
	evbuffer_add_printf(b, "{\"data\":[");
	TAILQ_FOREACH(e, &kv, next)
	{
		if (strcmp(e->key, "user_login") != 0)
			continue;
		if (r != NULL && r->logins++ == 0)
			snprintf(r->first, sizeof(r->first), "%s", e->value);
		/* channel cNNN: live with 1000 + NNN viewers when NNN is even */
		idx = (int)strtol(e->value + 1, NULL, 10);
		if (idx % 2 != 0)
			continue;
		evbuffer_add_printf(b,
				    "%s{\"user_login\":\"%s\",\"type\":\"live\","
				    "\"viewer_count\":%d}",
				    live++ ? "," : "", e->value, 1000 + idx);
	}
	evhttp_clear_headers(&kv);
	evbuffer_add_printf(b, "],\"pagination\":{}}");
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Ratelimit-Remaining", "700");
	snprintf(v, sizeof(v), "%lld", (long long)(now / 1000 + 60));
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Ratelimit-Reset", v);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void fake_cb(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	if (path != NULL && strcmp(path, "/oauth2/token") == 0)
		fake_token(req, arg);
	else if (path != NULL && strcmp(path, "/helix/streams") == 0)
		fake_streams(req, arg);
	else
		fake_reply(req, 404, "{}");
}

static void fake_poll(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;

	if (atomic_load(&f->stop))
		event_base_loopbreak(f->base);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	event_base_dispatch(f->base);
	return NULL;
}

static int fake_up(struct fake *f)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct timeval tv = {0, 10000};

	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	f->base = event_base_new();
	f->http = evhttp_new(f->base);
	evhttp_set_gencb(f->http, fake_cb, f);
	bs = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	if (bs == NULL)
		return -1;
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa,
		    &sl);
	f->port = ntohs(sa.sin_port);
	f->poll_ev = event_new(f->base, -1, EV_PERSIST, fake_poll, f);
	event_add(f->poll_ev, &tv);
	return pthread_create(&f->thread, NULL, fake_main, f) == 0 ? 0 : -1;
}

static void fake_down(struct fake *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->thread, NULL);
	event_free(f->poll_ev);
	evhttp_free(f->http);
	event_base_free(f->base);
	pthread_mutex_destroy(&f->lock);
}

/* ---- the poller ---- */

struct rig {
	struct fake f;
	struct cb_config cfg;
	struct cb_app app;
	FILE *log;
	int saved_fd;
	bool up;
};

static void rig_set(struct rig *r, const char *name, const char *value)
{
	char errstr[256];
	int id = cb_config_find(name);

	if (id < 0 || cb_config_set(&r->cfg, (enum cb_opt_id)id, value,
				    CB_SRC_FLAG, "test", false, errstr,
				    sizeof(errstr)) != 0)
		abort();
}

/* Fake server, settings for nch channels (c000...), stderr to a file. */
static int rig_setup(struct rig *r, int nch)
{
	char errstr[256], url[128], *list;

	memset(r, 0, sizeof(*r));
	r->saved_fd = -1;
	if (fake_up(&r->f) != 0 ||
	    cb_config_init(&r->cfg, errstr, sizeof(errstr)) != 0)
		return -1;
	list = malloc((size_t)nch * 6 + 1);
	list[0] = '\0';
	for (int i = 0; i < nch && i < 1000; i++) {
		size_t o = strlen(list);

		snprintf(list + o, (size_t)nch * 6 + 1 - o, "%sc%03d",
			 i ? "," : "", i);
	}
	rig_set(r, "channel", list);
	free(list);
	rig_set(r, "twitch_client_id", "cid");
	rig_set(r, "twitch_client_secret", SECRET);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", r->f.port);
	rig_set(r, "helix_url", url);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/oauth2/token",
		 r->f.port);
	rig_set(r, "twitch_token_url", url);
	rig_set(r, "viewers_interval_s", "1");
	r->app.cfg = &r->cfg;
	r->log = tmpfile();
	fflush(stderr);
	r->saved_fd = dup(2);
	if (r->log == NULL || r->saved_fd < 0)
		return -1;
	dup2(fileno(r->log), 2);
	return 0;
}

static int rig_start(struct rig *r)
{
	char errstr[256];

	if (cb_viewers_start(&r->app, errstr, sizeof(errstr)) != 0 ||
	    r->app.viewers == NULL)
		return -1;
	r->up = true;
	return 0;
}

static void rig_stop(struct rig *r)
{
	if (r->up)
		cb_viewers_stop(&r->app);
	r->up = false;
}

/* Stops everything, puts stderr back, returns the log (malloc'd). */
static char *rig_down(struct rig *r)
{
	char *text = NULL;
	long n;

	rig_stop(r);
	fake_down(&r->f);
	if (r->saved_fd >= 0) {
		fflush(stderr);
		dup2(r->saved_fd, 2);
		close(r->saved_fd);
	}
	if (r->log != NULL) {
		n = ftell(r->log);
		text = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
		rewind(r->log);
		if (n > 0 && fread(text, 1, (size_t)n, r->log) != (size_t)n)
			text[0] = '\0';
		fclose(r->log);
	}
	cb_config_release(&r->cfg);
	return text ? text : calloc(1, 1);
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static bool cycles_at_least(struct rig *r, uint64_t n)
{
	struct cb_viewers_stats st;

	cb_viewers_stats(r->app.viewers, &st);
	return st.cycles >= n;
}

/* Not a log line may hold the secret or a token. */
static bool log_clean(const char *log)
{
	return strstr(log, SECRET) == NULL && strstr(log, TOKEN_PREFIX) == NULL;
}

static void test_off_without_credentials(void)
{
	struct cb_config cfg;
	struct cb_app app;
	char errstr[256];

	memset(&app, 0, sizeof(app));
	CHECK(cb_config_init(&cfg, errstr, sizeof(errstr)) == 0);
	app.cfg = &cfg;
	CHECK(!cb_viewers_enabled(&cfg));
	CHECK_INT(cb_viewers_start(&app, errstr, sizeof(errstr)), 0);
	CHECK(app.viewers == NULL);
	cb_viewers_stop(&app);
	cb_config_release(&cfg);
}

static void test_150_channels_in_two_requests(void)
{
	struct rig r;
	struct cb_viewers_view view;
	struct cb_viewers_sample s[CB_VIEWERS_KEPT];
	struct fake_req q[2];
	bool ok, got0, got1, got149;
	int nreq, first_cycle_reqs = 0;
	size_t ns;
	char *log;

	ok = rig_setup(&r, 150) == 0 && rig_start(&r) == 0;
	ok = ok && WAIT_UNTIL(cycles_at_least(&r, 2), 20000);
	pthread_mutex_lock(&r.f.lock);
	nreq = r.f.nreq;
	if (nreq >= 2)
		memcpy(q, r.f.reqs, sizeof(q));
	for (int i = 0; i < nreq; i++)
		first_cycle_reqs += i < 2;
	pthread_mutex_unlock(&r.f.lock);
	got0 = cb_viewers_get(r.app.viewers, "c000", &view) == 0 && view.live &&
	       view.viewers == 1000;
	got149 = cb_viewers_get(r.app.viewers, "c149", &view) == 0 &&
		 !view.live && view.viewers == 0;
	got1 = cb_viewers_get(r.app.viewers, "c148", &view) == 0 &&
	       view.live && view.viewers == 1148;
	ns = cb_viewers_series(r.app.viewers, "c002", s, CB_VIEWERS_KEPT);
	log = rig_down(&r);
	CHECK_OR(ok, out);
	/* one cycle: 100 logins then 50, in name order */
	CHECK_OR(nreq >= 4, out);
	CHECK_OR(q[0].status == 200 && q[0].logins == 100 &&
			 strcmp(q[0].first, "c000") == 0,
		 out);
	CHECK_OR(q[1].status == 200 && q[1].logins == 50 &&
			 strcmp(q[1].first, "c100") == 0,
		 out);
	CHECK_OR(got0 && got1 && got149, out);
	/* a sample per cycle, oldest first */
	CHECK_OR(ns >= 2 && s[0].t_ms <= s[1].t_ms && s[0].viewers == 1002, out);
	CHECK_OR(log_clean(log), out);
out:
	free(log);
}

static void test_429_waits_for_reset_logged_once(void)
{
	struct rig r;
	struct fake_req q[MAX_REQS];
	bool ok, honoured = true;
	int nreq = 0, n429 = 0;
	uint64_t m0 = cb_metric_get(CB_M_viewers_throttled_total), m1;
	char *log;

	ok = rig_setup(&r, 3) == 0;
	if (ok) {
		r.f.n429 = 3; /* before the thread starts: no lock needed */
		ok = rig_start(&r) == 0;
	}
	ok = ok && WAIT_UNTIL(cycles_at_least(&r, 2), 20000);
	pthread_mutex_lock(&r.f.lock);
	nreq = r.f.nreq;
	memcpy(q, r.f.reqs, (size_t)nreq * sizeof(*q));
	pthread_mutex_unlock(&r.f.lock);
	log = rig_down(&r);
	m1 = cb_metric_get(CB_M_viewers_throttled_total);
	CHECK_OR(ok, out);
	CHECK_OR(m1 - m0 == 3, out); /* counted in /metrics */
	for (int i = 0; i < nreq; i++) {
		if (q[i].status != 429)
			continue;
		n429++;
		/* the next request comes at the reset, not before */
		if (i + 1 < nreq && q[i + 1].at_ms < q[i].reset_s * 1000 - 20)
			honoured = false;
	}
	CHECK_OR(n429 == 3, out);
	CHECK_OR(q[0].status == 429 && q[3].status == 200, out);
	CHECK_OR(honoured, out);
	CHECK_OR(count_of(log, "rate limit reached") == 1, out);
	CHECK_OR(count_of(log, "rate limit over after 3") == 1, out);
	CHECK_OR(log_clean(log), out);
out:
	if (t_cur_failed)
		printf("# log:\n%s", log);
	free(log);
}

static void test_401_fetches_a_new_token(void)
{
	struct rig r;
	struct cb_viewers_stats st;
	bool ok;
	int tokens;
	char *log;

	ok = rig_setup(&r, 2) == 0;
	if (ok) {
		r.f.n401 = 1;
		ok = rig_start(&r) == 0;
	}
	ok = ok && WAIT_UNTIL(cycles_at_least(&r, 1), 20000);
	cb_viewers_stats(r.app.viewers, &st);
	pthread_mutex_lock(&r.f.lock);
	tokens = r.f.tokens;
	pthread_mutex_unlock(&r.f.lock);
	log = rig_down(&r);
	CHECK_OR(ok, out);
	CHECK_OR(tokens == 2 && st.tokens == 2, out);
	CHECK_OR(count_of(log, "HTTP 401") == 1, out);
	CHECK_OR(log_clean(log), out);
out:
	free(log);
}

static void test_refused_secret_logged_once_never_printed(void)
{
	struct rig r;
	bool ok;
	char *log;

	ok = rig_setup(&r, 2) == 0;
	if (ok) {
		r.f.token_refusals = 3;
		ok = rig_start(&r) == 0;
	}
	/* three refusals a second apart, then a token and a cycle */
	ok = ok && WAIT_UNTIL(cycles_at_least(&r, 1), 20000);
	log = rig_down(&r);
	CHECK_OR(ok, out);
	CHECK_OR(count_of(log, "HTTP 403") == 1, out);
	CHECK_OR(strstr(log, "invalid client secret") != NULL, out);
	CHECK_OR(count_of(log, "Helix answers again") == 1, out);
	CHECK_OR(log_clean(log), out);
out:
	if (t_cur_failed)
		printf("# log:\n%s", log);
	free(log);
}

/* The store keeps the newest CB_VIEWERS_KEPT samples per channel and at
 * most CB_VIEWERS_CHANNELS_MAX channels. */
static void test_store_is_bounded(void)
{
	struct rig r;
	struct cb_viewers_sample *s = calloc(CB_VIEWERS_KEPT + 10, sizeof(*s));
	struct cb_viewers_view view;
	char name[26];
	bool ok, full = false;
	int err = 0;
	size_t n = 0;

	ok = s != NULL && rig_setup(&r, 1) == 0 && rig_start(&r) == 0;
	for (int i = 0; ok && i < CB_VIEWERS_KEPT + 60; i++)
		err |= cb_viewers_record(r.app.viewers, "zz", 1000 + i, i);
	if (ok)
		n = cb_viewers_series(r.app.viewers, "zz", s, CB_VIEWERS_KEPT + 10);
	ok = ok && err == 0 && cb_viewers_get(r.app.viewers, "zz", &view) == 0;
	for (int i = 0; ok && i < CB_VIEWERS_CHANNELS_MAX + 1 && !full; i++) {
		snprintf(name, sizeof(name), "q%05d", i);
		full = cb_viewers_record(r.app.viewers, name, 1, 1) == CB_E_FULL;
	}
	free(rig_down(&r));
	CHECK_OR(ok, out);
	CHECK_OR(n == CB_VIEWERS_KEPT, out);
	CHECK_OR(s[0].viewers == 60 && s[n - 1].viewers == CB_VIEWERS_KEPT + 59,
		 out);
	CHECK_OR(view.live && view.viewers == CB_VIEWERS_KEPT + 59, out);
	CHECK_OR(full, out);
out:
	free(s);
}

static void test_probe(void)
{
	struct rig r;
	char errstr[900];
	size_t live = 0;
	int err;
	char *log;

	if (rig_setup(&r, 5) != 0) {
		free(rig_down(&r));
		CHECK(false);
	}
	err = cb_viewers_probe(&r.cfg, 5000, &live, errstr, sizeof(errstr));
	pthread_mutex_lock(&r.f.lock);
	r.f.token_refusals = 1;
	pthread_mutex_unlock(&r.f.lock);
	{
		size_t l2;
		int err2 = cb_viewers_probe(&r.cfg, 5000, &l2, errstr,
					    sizeof(errstr));

		log = rig_down(&r);
		CHECK_OR(err == 0 && live == 3, out); /* c000 c002 c004 */
		CHECK_OR(err2 == CB_E_AUTH && strstr(errstr, "403") != NULL &&
				 strstr(errstr, SECRET) == NULL,
			 out);
	}
	CHECK_OR(log_clean(log), out);
out:
	free(log);
}

int main(void)
{
	cb_log_init(CB_LOG_DEBUG);
	RUN(test_target_batches);
	RUN(test_parse_streams);
	RUN(test_parse_token);
	RUN(test_wait_ms);
	RUN(test_off_without_credentials);
	RUN(test_150_channels_in_two_requests);
	RUN(test_429_waits_for_reset_logged_once);
	RUN(test_401_fetches_a_new_token);
	RUN(test_refused_secret_logged_once_never_printed);
	RUN(test_store_is_bounded);
	RUN(test_probe);
	return test_done();
}
