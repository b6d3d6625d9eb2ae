/*
 * helix.h - the pure parts of the Twitch Helix client (src/helix.c) that the
 * viewer-count poller (viewers.h) uses: the request target of one batch of
 * logins, the streams and token answers, and the wait the rate-limit
 * headers ask for.  No I/O, no clocks (now is an argument), no threads:
 * cheap to unit-test.
 */
#ifndef CHATBATTLE_HELIX_H
#define CHATBATTLE_HELIX_H

#include <stddef.h>
#include <stdint.h>

/* Logins one GET /helix/streams may name (Twitch's limit). */
#define CB_HELIX_LOGINS_MAX 100

/* Longest wait a Ratelimit-Reset may ask for; a far-off reset is a broken
 * header, not a reason to stop counting for hours. */
#define CB_HELIX_WAIT_MAX_MS 300000
/* Shortest wait after a 429, so that a reset already past (clock skew)
 * never makes a tight loop. */
#define CB_HELIX_WAIT_429_MIN_MS 1000

struct cb_helix_stream {
	char login[26];  /* lower case */
	int64_t viewers; /* viewer_count */
};

/*
 * Writes "<path>/helix/streams?user_login=a&user_login=b..." for the n
 * logins (1..CB_HELIX_LOGINS_MAX, already normalized: [a-z0-9_]) into out.
 * path is the base URL's path ("" or "/prefix", no trailing slash needed).
 * Returns the length, or CB_E_TOOBIG when out is too small, CB_E_INVAL for
 * n out of range.
 */
int cb_helix_streams_target(const char *path, const char (*logins)[26],
			    size_t n, char *out, size_t size);

/*
 * Parses a streams answer ({"data":[{"user_login","viewer_count",...}]}):
 * up to max live streams into out, their number into *n.  Entries without
 * a login or a count are skipped.  Returns 0, or CB_E_PARSE with the
 * reason (not JSON, no "data" array).
 */
int cb_helix_parse_streams(const char *body, size_t len,
			   struct cb_helix_stream *out, size_t max, size_t *n,
			   char *errstr, size_t errstr_size);

/*
 * Parses a client-credentials token answer: the access_token into token
 * (size bytes with the NUL) and expires_in (0 when absent).  Returns 0, or
 * CB_E_PARSE with a reason that never holds the token.
 */
int cb_helix_parse_token(const char *body, size_t len, char *token,
			 size_t size, int64_t *expires_in_s, char *errstr,
			 size_t errstr_size);

/*
 * The milliseconds to wait before the next request, after an answer with
 * HTTP status and the Ratelimit-Remaining and Ratelimit-Reset (epoch
 * seconds) header values (NULL when absent), at wall time now_ms:
 *   - 429: until the reset, at least CB_HELIX_WAIT_429_MIN_MS; without a
 *     usable reset, a minute (Twitch's bucket refills within one);
 *   - any other status with Remaining 0: until the reset (0 when past);
 *   - else 0.
 * Never more than CB_HELIX_WAIT_MAX_MS.
 */
int64_t cb_helix_wait_ms(int status, const char *remaining, const char *reset,
			 int64_t now_ms);

#endif
