/*
 * test_cmd_history.c - the --since/--until parser of `chatbattle history`
 * (isotime.h, also the before/since of GET /api/channels/:id/messages):
 * epoch milliseconds, ISO 8601 dates and times with Z or an offset,
 * fractions, dates before 1970 and leap days, and the inputs it must
 * refuse (impossible dates, no time zone, trailing text).  Expected values
 * were computed independently (Python's calendar.timegm).
 */
#include "chatbattle/isotime.h"
#include "chatbattle/err.h"
#include "test.h"

static char errstr[256];

static int64_t ms_of(const char *s)
{
	int64_t ms = -42;

	errstr[0] = '\0';
	if (cb_isotime_parse(s, &ms, errstr, sizeof(errstr)) != 0) {
		printf("# \"%s\": %s\n", s, errstr);
		return INT64_MIN;
	}
	return ms;
}

static void epoch_ms(void)
{
	CHECK_INT(ms_of("0"), 0);
	CHECK_INT(ms_of("1763834400000"), 1763834400000LL);
	CHECK_INT(ms_of("000123"), 123);
	CHECK_INT(ms_of("999999999999999999"), 999999999999999999LL);
}

static void iso_utc(void)
{
	CHECK_INT(ms_of("2026-11-22T18:00:00Z"), 1795370400000LL);
	CHECK_INT(ms_of("2026-11-22t18:00:00z"), 1795370400000LL);
	CHECK_INT(ms_of("2026-11-22 18:00:00Z"), 1795370400000LL);
	CHECK_INT(ms_of("2026-11-22T18:00Z"), 1795370400000LL);
	CHECK_INT(ms_of("2026-11-22"), 1795305600000LL);
	CHECK_INT(ms_of("1970-01-01"), 0);
	CHECK_INT(ms_of("2000-02-29T00:00:00Z"), 951782400000LL);
	CHECK_INT(ms_of("2024-12-31T23:59:59Z"), 1735689599000LL);
	CHECK_INT(ms_of("1969-12-31T23:59:59Z"), -1000);
	CHECK_INT(ms_of("1900-03-01T00:00:00Z"), -2203891200000LL);
}

static void fractions_and_offsets(void)
{
	CHECK_INT(ms_of("2026-11-22T18:00:00.5Z"), 1795370400500LL);
	CHECK_INT(ms_of("2026-11-22T18:00:00.123Z"), 1795370400123LL);
	/* beyond milliseconds: truncated, not rounded */
	CHECK_INT(ms_of("2026-11-22T18:00:00.123999Z"), 1795370400123LL);
	CHECK_INT(ms_of("2026-11-22T18:00:00,25Z"), 1795370400250LL);
	CHECK_INT(ms_of("2026-11-22T19:00:00+01:00"), 1795370400000LL);
	CHECK_INT(ms_of("2026-11-22T12:30:00-0530"), 1795370400000LL);
	CHECK_INT(ms_of("2026-11-23T03:00:00+09:00"), 1795370400000LL);
	CHECK_INT(ms_of("2026-11-22T18:00:00+00:00"), 1795370400000LL);
}

static void refused(void)
{
	static const char *const bad[] = {
		"",
		"yesterday",
		"-5",
		"1234567890123456789", /* 19 digits could overflow */
		"2026-11-22T",
		"2026-11-22T18",
		"2026-11-22T18:00:00Zjunk",
		"2026-13-01",
		"2026-00-10",
		"2026-02-29",
		"1900-02-29",
		"2026-04-31T00:00:00Z",
		"2026-11-22T24:00:00Z",
		"2026-11-22T18:60:00Z",
		"2026-11-22T18:00:61Z",
		"2026-11-22T18:00:00.Z",
		"2026-11-22T18:00:00+1:00",
		"2026-11-22T18:00:00+01:60",
		"2026/11/22",
		"26-11-22",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms = 7;

		errstr[0] = '\0';
		if (cb_isotime_parse(bad[i], &ms, errstr,
					      sizeof(errstr)) != CB_E_PARSE ||
		    ms != 7 || errstr[0] == '\0') {
			printf("# accepted \"%s\" as %lld\n", bad[i],
			       (long long)ms);
			CHECK(0);
		}
	}
	/* a time without a zone is refused with a hint, not guessed */
	errstr[0] = '\0';
	CHECK_INT(ms_of("2026-11-22T18:00:00"), INT64_MIN);
	CHECK(strstr(errstr, "no time zone") != NULL);
}

int main(void)
{
	RUN(epoch_ms);
	RUN(iso_utc);
	RUN(fractions_and_offsets);
	RUN(refused);
	return test_done();
}
