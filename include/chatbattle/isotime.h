/*
 * isotime.h - epoch milliseconds to ISO 8601 as the API writes times, and
 * times as users type them back to epoch milliseconds, for `chatbattle
 * history --since/--until` and the query strings of
 * GET /api/channels/:id/messages (src/isotime.c).  Pure code, any thread.
 */
#ifndef CHATBATTLE_ISOTIME_H
#define CHATBATTLE_ISOTIME_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parses s into epoch milliseconds: decimal epoch milliseconds
 * ("1763834400000"), or ISO 8601 "YYYY-MM-DD" (midnight UTC) or
 * "YYYY-MM-DDTHH:MM[:SS[.fff]]" followed by "Z" or an offset
 * "+HH:MM"/"-HH:MM" ("2026-11-22T18:00:00Z").  Impossible dates
 * (2026-02-30) and times without a zone are refused, not normalised or
 * guessed.  Returns 0, or CB_E_PARSE with the reason in errstr; *ms is
 * untouched on error.
 */
int cb_isotime_parse(const char *s, int64_t *ms, char *errstr,
		     size_t errstr_size);

/*
 * Formats epoch milliseconds as JavaScript's Date.prototype.toISOString()
 * does: "2009-02-13T23:31:30.123Z" (years beyond 0..9999 as +YYYYYY or
 * -YYYYYY).  buf must hold CB_ISOTIME_MAX bytes.  Returns buf.
 */
#define CB_ISOTIME_MAX 32
char *cb_isotime_format(int64_t ms, char *buf);

#endif
