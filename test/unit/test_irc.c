/*
 * test_irc.c - the IRC module's pure parts with injected time: the JOIN
 * pacer (a sliding window, never more than the limit in any window), the
 * backoff (bounds, growth, full jitter), the duplicate filter (FIFO
 * eviction, deletion inside probe chains), and the OAuth refresh against a
 * local fake token endpoint (an evhttp server on the same event loop).
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chatbattle/err.h"
#include "chatbattle/irc.h"
#include "chatbattle/log.h"
#include "chatbattle/oauth.h"
#include "test.h"
#include "tls_fault.h"

/* ---- pacer ---- */

static void test_pacer_basic_window(void)
{
	struct cb_irc_pacer p;

	CHECK(cb_irc_pacer_init(&p, 3, 1000) == 0);
	CHECK_INT(cb_irc_pacer_available(&p, 0), 3);
	cb_irc_pacer_take(&p, 0, 2);
	CHECK_INT(cb_irc_pacer_available(&p, 10), 1);
	cb_irc_pacer_take(&p, 500, 1);
	CHECK_INT(cb_irc_pacer_available(&p, 999), 0);
	CHECK_INT(cb_irc_pacer_next_ms(&p, 999), 1000);
	CHECK_INT(cb_irc_pacer_available(&p, 1000), 2); /* the two at 0 */
	CHECK_INT(cb_irc_pacer_available(&p, 1499), 2);
	CHECK_INT(cb_irc_pacer_available(&p, 1500), 3);
	CHECK_INT(cb_irc_pacer_next_ms(&p, 1500), 1500);
	cb_irc_pacer_release(&p);
}

/* Constant demand over 20 simulated seconds: never more than limit JOINs
 * in any window, and the pacer uses the whole budget. */
static void test_pacer_never_exceeds_limit(void)
{
	enum { LIMIT = 20, WINDOW = 10000, SPAN = 20000 };
	struct cb_irc_pacer p;
	int64_t sent[4 * LIMIT];
	int n = 0;

	CHECK(cb_irc_pacer_init(&p, LIMIT, WINDOW) == 0);
	for (int64_t t = 0; t < SPAN; t += 7) {
		uint32_t a = cb_irc_pacer_available(&p, t);

		/* take one at a time, as JOIN batches would */
		for (; a > 0 && n < 4 * LIMIT; a--) {
			cb_irc_pacer_take(&p, t, 1);
			sent[n++] = t;
		}
	}
	for (int i = 0; i < n; i++) {
		int in = 0;

		for (int k = i; k < n; k++)
			in += sent[k] < sent[i] + WINDOW;
		CHECK(in <= LIMIT);
	}
	CHECK_INT(n, 2 * LIMIT); /* windows at 0 and 10000 (+7 ms step) */
	cb_irc_pacer_release(&p);
}

/* ---- backoff ---- */

static void test_backoff_bounds_and_growth(void)
{
	CHECK_INT(cb_irc_backoff_ms(0, 1000, 60000, 0), 1000);
	CHECK_INT(cb_irc_backoff_ms(0, 1000, 60000, UINT64_MAX), 1000);
	for (unsigned a = 0; a < 80; a++) {
		int64_t hi = a < 6 ? 1000 << a : 60000;

		if (hi > 60000)
			hi = 60000;
		for (uint64_t r = 1; r < (1ULL << 62); r = r * 3 + 17) {
			int64_t d = cb_irc_backoff_ms(a, 1000, 60000, r);

			CHECK(d >= 1000 && d <= hi);
		}
	}
	/* full jitter: the whole range is reachable */
	CHECK_INT(cb_irc_backoff_ms(3, 1000, 60000, 7000), 8000);
	CHECK_INT(cb_irc_backoff_ms(3, 1000, 60000, 7001), 1000);
	/* max below min is treated as min */
	CHECK_INT(cb_irc_backoff_ms(5, 500, 100, 12345), 500);
}

/* ---- duplicate filter ---- */

static void test_dedupe_fifo_eviction(void)
{
	struct cb_irc_dedupe d;

	CHECK(cb_irc_dedupe_init(&d, 16) == 0);
	CHECK_INT(d.cap, 16);
	for (uint64_t k = 1; k <= 16; k++)
		cb_irc_dedupe_add(&d, k * 0x9E3779B97F4A7C15ULL);
	for (uint64_t k = 1; k <= 16; k++)
		CHECK(cb_irc_dedupe_has(&d, k * 0x9E3779B97F4A7C15ULL));
	cb_irc_dedupe_add(&d, 17 * 0x9E3779B97F4A7C15ULL);
	CHECK(!cb_irc_dedupe_has(&d, 1 * 0x9E3779B97F4A7C15ULL));
	CHECK(cb_irc_dedupe_has(&d, 2 * 0x9E3779B97F4A7C15ULL));
	CHECK(cb_irc_dedupe_has(&d, 17 * 0x9E3779B97F4A7C15ULL));
	CHECK(cb_irc_hash("", 0) != 0);
	CHECK(cb_irc_hash("abc", 3) != cb_irc_hash("abd", 3));
	cb_irc_dedupe_release(&d);
}

/* Keys that collide in the table (same low bits) against a reference:
 * the set always holds exactly the last cap distinct keys. */
static void test_dedupe_collisions_match_reference(void)
{
	enum { CAP = 64 };
	struct cb_irc_dedupe d;
	uint64_t ref[CAP];
	size_t nref = 0, head = 0;
	uint64_t x = 88172645463325252ULL;

	CHECK(cb_irc_dedupe_init(&d, CAP) == 0);
	for (int i = 0; i < 20000; i++) {
		uint64_t key;
		bool in_ref = false;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* 8 possible home slots, 200 distinct keys: long chains */
		key = ((x % 200) << 8) | ((x >> 40) & 7) | 1;
		for (size_t k = 0; k < nref; k++)
			in_ref |= ref[k] == key;
		CHECK(cb_irc_dedupe_has(&d, key) == in_ref);
		if (!in_ref) {
			cb_irc_dedupe_add(&d, key);
			if (nref < CAP) {
				ref[nref++] = key;
			} else {
				ref[head] = key;
				head = (head + 1) % CAP;
			}
		}
	}
	for (size_t k = 0; k < nref; k++)
		CHECK(cb_irc_dedupe_has(&d, ref[k]));
	cb_irc_dedupe_release(&d);
}

/* ---- OAuth refresh against a local fake endpoint ---- */

struct fake {
	struct event_base *base;
	struct evhttp *http;
	int port;
	int mode; /* 0 ok, 1 http 400, 2 not JSON */
	int hits;
	char body[1024];
	char content_type[128];
};

static void fake_cb(struct evhttp_request *req, void *arg)
{
	struct fake *f = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evbuffer *out = evbuffer_new();
	const char *ct = evhttp_find_header(
		evhttp_request_get_input_headers(req), "Content-Type");
	size_t n = evbuffer_get_length(in);

	f->hits++;
	if (n >= sizeof(f->body))
		n = sizeof(f->body) - 1;
	evbuffer_copyout(in, f->body, n);
	f->body[n] = '\0';
	snprintf(f->content_type, sizeof(f->content_type), "%s", ct ? ct : "");
	if (f->mode == 0) {
		evbuffer_add_printf(out, "{\"access_token\":\"fresh-access\","
					 "\"refresh_token\":\"fresh-refresh\","
					 "\"expires_in\":14400,\"scope\":[],"
					 "\"token_type\":\"bearer\"}");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (f->mode == 1) {
		evbuffer_add_printf(out, "{\"status\":400,\"message\":\"Invalid "
					 "refresh token\"}");
		evhttp_send_reply(req, 400, "Bad Request", out);
	} else {
		evbuffer_add_printf(out, "<html>not json</html>");
		evhttp_send_reply(req, 200, "OK", out);
	}
	evbuffer_free(out);
}

static int fake_up(struct fake *f, int mode)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->base = event_base_new();
	f->http = evhttp_new(f->base);
	if (f->base == NULL || f->http == NULL)
		return -1;
	evhttp_set_cb(f->http, "/oauth2/token", fake_cb, f);
	bs = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	if (bs == NULL)
		return -1;
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa,
		    &len);
	f->port = ntohs(sa.sin_port);
	return 0;
}

static void fake_down(struct fake *f)
{
	evhttp_free(f->http);
	event_base_free(f->base);
}

struct outcome {
	bool done;
	int err;
	struct cb_oauth_tokens tok;
	char reason[300];
	struct event_base *base;
};

static void done_cb(int err, const struct cb_oauth_tokens *tok,
		    const char *reason, void *arg)
{
	struct outcome *o = arg;

	o->done = true;
	o->err = err;
	if (tok != NULL)
		o->tok = *tok;
	snprintf(o->reason, sizeof(o->reason), "%s", reason ? reason : "");
}

static int run_refresh(struct fake *f, const char *url, struct outcome *o)
{
	struct cb_oauth_params p = {.url = url,
				    .client_id = "my client",
				    .client_secret = "s3cret&x=1",
				    .refresh_token = "old-refresh",
				    .timeout_s = 5};
	struct cb_oauth_req *r = NULL;
	char errstr[256];
	int rc;

	memset(o, 0, sizeof(*o));
	rc = cb_oauth_refresh_start(f->base, NULL, &p, done_cb, o, &r, errstr,
				    sizeof(errstr));
	if (rc != 0) {
		snprintf(o->reason, sizeof(o->reason), "%s", errstr);
		return rc;
	}
	(void)WAIT_UNTIL_DO(o->done, 10000,
			    event_base_loop(f->base, EVLOOP_ONCE));
	/* let the request free itself */
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	return o->done ? 0 : -1;
}

static void test_oauth_refresh_success(void)
{
	struct fake f;
	struct outcome o;
	char url[128];

	CHECK(fake_up(&f, 0) == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/oauth2/token", f.port);
	CHECK(run_refresh(&f, url, &o) == 0);
	CHECK_INT(o.err, 0);
	CHECK_STR(o.tok.access, "fresh-access");
	CHECK_STR(o.tok.refresh, "fresh-refresh");
	CHECK_INT(o.tok.expires_in_s, 14400);
	CHECK_INT(f.hits, 1);
	CHECK_STR(f.content_type, "application/x-www-form-urlencoded");
	/* the form, URL-encoded */
	CHECK(strstr(f.body, "grant_type=refresh_token") != NULL);
	CHECK(strstr(f.body, "refresh_token=old-refresh") != NULL);
	CHECK(strstr(f.body, "client_id=my+client") != NULL ||
	      strstr(f.body, "client_id=my%20client") != NULL);
	CHECK(strstr(f.body, "client_secret=s3cret%26x%3D1") != NULL);
	fake_down(&f);
}

static void test_oauth_refresh_rejected(void)
{
	struct fake f;
	struct outcome o;
	char url[128];

	CHECK(fake_up(&f, 1) == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/oauth2/token", f.port);
	CHECK(run_refresh(&f, url, &o) == 0);
	CHECK_INT(o.err, CB_E_AUTH);
	CHECK(strstr(o.reason, "400") != NULL);
	CHECK(strstr(o.reason, "Invalid refresh token") != NULL);
	CHECK(strstr(o.reason, "old-refresh") == NULL);
	fake_down(&f);
}

static void test_oauth_refresh_bad_responses(void)
{
	struct fake f;
	struct outcome o;
	char url[128];
	int fd, port;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);

	CHECK(fake_up(&f, 2) == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/oauth2/token", f.port);
	CHECK(run_refresh(&f, url, &o) == 0);
	CHECK_INT(o.err, CB_E_PROTO);
	/* nothing listening: a port that was just closed */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	port = ntohs(sa.sin_port);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/oauth2/token", port);
	CHECK(run_refresh(&f, url, &o) == 0);
	CHECK_INT(o.err, CB_E_IO);
	/* not http(s): refused before any I/O */
	CHECK_INT(run_refresh(&f, "ftp://127.0.0.1/token", &o), CB_E_CONFIG);
	CHECK_INT(run_refresh(&f, "not a url", &o), CB_E_CONFIG);
	fake_down(&f);
}

/*
 * Regression (issue 17): oauth.c ignored the result of SSL_set1_host and
 * X509_VERIFY_PARAM_set1_ip_asc, so when the endpoint's name check could
 * not be armed the token request went out with the chain verified only.
 * Now the request is refused before any I/O (the failure is injected, see
 * tls_fault.h; nothing listens on the port, so an attempt would show as
 * CB_E_IO later instead of CB_E_TLS at once).
 */
static void test_oauth_refuses_unchecked_tls(void)
{
	struct fake f;
	struct outcome o;

	CHECK(fake_up(&f, 0) == 0);
	atomic_store(&t_fail_set1_host, 1);
	CHECK_INT(run_refresh(&f, "https://localhost:1/oauth2/token", &o),
		  CB_E_TLS);
	atomic_store(&t_fail_set1_host, 0);
	printf("# %s\n", o.reason);
	CHECK(strstr(o.reason, "cannot check the certificate") != NULL);
	atomic_store(&t_fail_set1_ip, 1);
	CHECK_INT(run_refresh(&f, "https://127.0.0.1:1/oauth2/token", &o),
		  CB_E_TLS);
	atomic_store(&t_fail_set1_ip, 0);
	CHECK(strstr(o.reason, "cannot check the certificate") != NULL);
	CHECK_INT(f.hits, 0);
	fake_down(&f);
}

int main(void)
{
	cb_log_init(getenv("CB_TEST_DEBUG") ? CB_LOG_DEBUG : CB_LOG_ERROR);
	RUN(test_pacer_basic_window);
	RUN(test_pacer_never_exceeds_limit);
	RUN(test_backoff_bounds_and_growth);
	RUN(test_dedupe_fifo_eviction);
	RUN(test_dedupe_collisions_match_reference);
	RUN(test_oauth_refresh_success);
	RUN(test_oauth_refresh_rejected);
	RUN(test_oauth_refresh_bad_responses);
	RUN(test_oauth_refuses_unchecked_tls);
	return test_done();
}
