/*
 * log.c - stderr logger (see log.h).  Used from every thread; each line is
 * formatted into a stack buffer and written with one write(2), so lines from
 * different threads never interleave.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chatbattle/log.h"

int cb_log_threshold = CB_LOG_INFO;
static int log_journal; /* stderr is connected to journald */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const int level_prio[] = {3, 4, 6, 7};

void cb_log_init(int level)
{
	if (level >= CB_LOG_ERROR && level <= CB_LOG_DEBUG)
		cb_log_threshold = level;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

int cb_log_level_parse(const char *name)
{
	for (int i = 0; i <= CB_LOG_DEBUG; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	if (strcmp(name, "warning") == 0)
		return CB_LOG_WARN;
	return -1;
}

const char *cb_log_level_name(int level)
{
	if (level < CB_LOG_ERROR || level > CB_LOG_DEBUG)
		return "?";
	return level_names[level];
}

void cb_log_write(int level, const char *subsys, int errnum, const char *fmt,
		  ...)
{
	char line[2048];
	size_t n = 0;
	int r;
	va_list ap;
	int saved_errno = errno;

	if (level < CB_LOG_ERROR)
		level = CB_LOG_ERROR;
	if (level > CB_LOG_DEBUG)
		level = CB_LOG_DEBUG;

	if (log_journal) {
		r = snprintf(line, sizeof(line), "<%d>%s: ", level_prio[level],
			     subsys);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		r = snprintf(line, sizeof(line),
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000, level_names[level], subsys);
	}
	if (r > 0)
		n = (size_t)r < sizeof(line) ? (size_t)r : sizeof(line) - 1;

	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (r > 0)
		n += (size_t)r < sizeof(line) - n ? (size_t)r
						  : sizeof(line) - n - 1;

	if (errnum != 0 && n < sizeof(line) - 1) {
		char buf[128];
		const char *msg = strerror_r(errnum, buf, sizeof(buf));

		r = snprintf(line + n, sizeof(line) - n, ": %s", msg);
		if (r > 0)
			n += (size_t)r < sizeof(line) - n
				     ? (size_t)r
				     : sizeof(line) - n - 1;
	}

	/* Keep one event on one line, whatever the message contains. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report it. */
	}
	errno = saved_errno;
}
