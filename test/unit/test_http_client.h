/*
 * test_http_client.h - a raw HTTP/1.1 client for the HTTP module's tests
 * (test_http.c, test_mt_http.c): connections, requests, one response with
 * a Content-Length body, and reading an event stream until some text.
 * Static functions: each test includes it once.
 */
#ifndef CB_TEST_HTTP_CLIENT_H
#define CB_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

/* ---- a raw HTTP/1.1 client ---- */

static inline int conn_open(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

struct resp {
	int status;
	char head[8192]; /* status line and headers, NUL-terminated */
	char body[65536];
	size_t body_len;
	bool closed; /* the server closed the connection after it */
};

/* Reads from fd until buf holds n bytes or deadline; returns bytes held. */
static inline size_t fill(int fd, char *buf, size_t have, size_t want, size_t cap,
		   int64_t deadline, bool *closed)
{
	while (have < want && have < cap) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - t_now_ms();
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		r = recv(fd, buf + have, cap - have, 0);
		if (r <= 0) {
			*closed = true;
			break;
		}
		have += (size_t)r;
	}
	return have;
}

/* The value of header name in r->head ("" when absent). */
static inline const char *hdr(const struct resp *r, const char *name, char *out,
		       size_t size)
{
	const char *p = r->head;
	size_t n = strlen(name);

	out[0] = '\0';
	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			snprintf(out, size, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
			break;
		}
	}
	return out;
}

/* Reads one response (Content-Length bodies; HEAD and 204/304 have
 * none).  Returns 0 or -1. */
static inline int read_resp(int fd, struct resp *r, bool head_only)
{
	static _Thread_local char buf[sizeof(r->head) + sizeof(r->body)];
	static _Thread_local size_t have; /* bytes of the next response already read */
	static _Thread_local int have_fd = -1;
	int64_t deadline = t_now_ms() + 5000;
	char *end;
	char cl[32];
	size_t hlen, blen;

	if (have_fd != fd)
		have = 0;
	have_fd = fd;
	memset(r, 0, sizeof(*r));
	for (;;) {
		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end != NULL)
			break;
		size_t before = have;

		have = fill(fd, buf, have, have + 1, sizeof(buf) - 1, deadline,
			    &r->closed);
		if (have == before)
			return -1;
	}
	hlen = (size_t)(end - buf) + 4;
	if (hlen >= sizeof(r->head))
		return -1;
	memcpy(r->head, buf, hlen);
	r->head[hlen] = '\0';
	if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
		return -1;
	hdr(r, "Content-Length", cl, sizeof(cl));
	blen = (head_only || r->status == 204 || r->status == 304)
		       ? 0
		       : (size_t)strtoull(cl, NULL, 10);
	if (blen >= sizeof(r->body))
		return -1;
	have = fill(fd, buf, have, hlen + blen, sizeof(buf) - 1, deadline,
		    &r->closed);
	if (have < hlen + blen)
		return -1;
	memcpy(r->body, buf + hlen, blen);
	r->body[blen] = '\0';
	r->body_len = blen;
	memmove(buf, buf + hlen + blen, have - hlen - blen);
	have -= hlen + blen;
	if (!r->closed) {
		/* Did the server close after this response? */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char c;

		if (have == 0 && poll(&p, 1, 0) == 1 &&
		    recv(fd, &c, 1, MSG_PEEK) == 0)
			r->closed = true;
	}
	return 0;
}

/* One request on a fresh connection. */
static inline int request(uint16_t port, const char *raw, struct resp *r)
{
	int fd = conn_open(port), rc;

	if (fd < 0)
		return -1;
	rc = send_all(fd, raw, strlen(raw));
	if (rc == 0)
		rc = read_resp(fd, r, strncmp(raw, "HEAD ", 5) == 0);
	close(fd);
	return rc;
}

static inline int get(uint16_t port, const char *path, struct resp *r)
{
	char raw[2048];

	snprintf(raw, sizeof(raw),
		 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
	return request(port, raw, r);
}

/* Reads the stream on fd into buf until it holds needle (after *off);
 * returns true when found within timeout_ms. */
static inline bool stream_until(int fd, char *buf, size_t cap, size_t *have,
			 size_t *off, const char *needle, int timeout_ms)
{
	int64_t deadline = t_now_ms() + timeout_ms;
	bool closed = false;

	for (;;) {
		char *hit;

		buf[*have] = '\0';
		hit = strstr(buf + *off, needle);
		if (hit != NULL) {
			*off = (size_t)(hit - buf) + strlen(needle);
			return true;
		}
		if (closed || t_now_ms() >= deadline || *have >= cap - 1)
			return false;
		*have = fill(fd, buf, *have, *have + 1, cap - 1, deadline,
			     &closed);
	}
}

static inline int open_stream(uint16_t port, const char *ch)
{
	char raw[256];
	int fd = conn_open(port);

	snprintf(raw, sizeof(raw),
		 "GET /api/channels/%s/events HTTP/1.1\r\nHost: x\r\n"
		 "Accept: text/event-stream\r\n\r\n",
		 ch);
	if (fd >= 0 && send_all(fd, raw, strlen(raw)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

#endif
