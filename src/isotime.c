/*
 * isotime.c - epoch milliseconds to ISO 8601 as JavaScript writes it, and
 * times as users type them (command line, query strings) back to epoch
 * milliseconds; see isotime.h.  Pure code, any thread.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "chatbattle/err.h"
#include "chatbattle/isotime.h"

/* n decimal digits at s into *v; false when any is not a digit. */
static bool digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int month_days(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30,
				   31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

int cb_isotime_parse(const char *s, int64_t *ms, char *errstr,
		     size_t errstr_size)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, oh = 0, om = 0;
	int sign = 0;
	const char *p = s;
	size_t n = strlen(s), k = 0;

	while (k < n && s[k] >= '0' && s[k] <= '9')
		k++;
	if (n > 0 && k == n) {
		int64_t v = 0;

		if (n > 18)
			goto bad;
		for (size_t i = 0; i < n; i++)
			v = v * 10 + (s[i] - '0');
		*ms = v;
		return 0;
	}
	if (n < 10 || !digits(p, 4, &y) || p[4] != '-' ||
	    !digits(p + 5, 2, &mo) || p[7] != '-' || !digits(p + 8, 2, &d))
		goto bad;
	if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo))
		goto bad;
	p += 10;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!digits(p, 2, &h) || p[2] != ':' || !digits(p + 3, 2, &mi))
			goto bad;
		p += 5;
		if (*p == ':') {
			if (!digits(p + 1, 2, &sec))
				goto bad;
			p += 3;
			if (*p == '.' || *p == ',') {
				int nd = 0;

				for (p++; *p >= '0' && *p <= '9'; p++, nd++)
					if (nd < 3)
						frac = frac * 10 + (*p - '0');
				if (nd == 0 || nd > 9)
					goto bad;
				for (; nd < 3; nd++)
					frac *= 10;
			}
		}
		if (h > 23 || mi > 59 || sec > 59)
			goto bad;
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p == '+' ? 1 : -1;
			if (!digits(p + 1, 2, &oh))
				goto bad;
			p += 3;
			if (*p == ':')
				p++;
			if (!digits(p, 2, &om) || oh > 23 || om > 59)
				goto bad;
			p += 2;
		} else {
			/* A local time would depend on the machine's zone:
			 * ask for the zone instead of guessing. */
			return cb_seterr(errstr, errstr_size, CB_E_PARSE,
					 "'%s' has no time zone: end it with Z "
					 "(UTC) or an offset such as +01:00",
					 s);
		}
	}
	if (*p != '\0')
		goto bad;
	*ms = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
	       (int64_t)sign * (oh * 3600 + om * 60)) *
		      1000 +
	      frac;
	return 0;
bad:
	return cb_seterr(errstr, errstr_size, CB_E_PARSE,
			 "'%s' is neither epoch milliseconds nor an ISO 8601 "
			 "time such as 2026-11-22T18:00:00Z",
			 s);
}

/* Days since 1970-01-01 to a civil date (H. Hinnant's algorithm): exact for
 * the whole range of JavaScript dates, unlike gmtime_r on some libcs. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	yoe = z - era * 146097;
	yoe = (yoe - yoe / 1460 + yoe / 36524 - yoe / 146096) / 365;
	doy = z - era * 146097 - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

char *cb_isotime_format(int64_t ms, char *buf)
{
	int64_t days = ms / 86400000, rem = ms % 86400000, y;
	unsigned mo, d;

	if (rem < 0) {
		rem += 86400000;
		days--;
	}
	civil_from_days(days, &y, &mo, &d);
	if (y >= 0 && y <= 9999)
		snprintf(buf, CB_ISOTIME_MAX, "%04lld", (long long)y);
	else
		snprintf(buf, CB_ISOTIME_MAX, "%c%06lld", y < 0 ? '-' : '+',
			 (long long)(y < 0 ? -y : y));
	snprintf(buf + strlen(buf), CB_ISOTIME_MAX - strlen(buf),
		 "-%02u-%02uT%02u:%02u:%02u.%03uZ", mo, d,
		 (unsigned)(rem / 3600000), (unsigned)(rem / 60000 % 60),
		 (unsigned)(rem / 1000 % 60), (unsigned)(rem % 1000));
	return buf;
}
