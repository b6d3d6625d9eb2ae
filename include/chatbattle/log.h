/*
 * log.h - one line per event on stderr, level-gated, subsystem-tagged.
 *
 * The level test happens in the macro, before any argument is evaluated, so a
 * disabled debug line costs one compare.  Under systemd (JOURNAL_STREAM set)
 * lines carry a <N> syslog priority prefix and no timestamp; otherwise they
 * start with an ISO-8601 UTC timestamp.  Secrets are never passed to these
 * functions: callers log cb_config_mask()ed values or nothing.
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef CHATBATTLE_LOG_H
#define CHATBATTLE_LOG_H

enum cb_log_level {
	CB_LOG_ERROR = 0,
	CB_LOG_WARN = 1,
	CB_LOG_INFO = 2,
	CB_LOG_DEBUG = 3,
};

/* The current threshold; set once at start-up by cb_log_init(). */
extern int cb_log_threshold;

/* Sets the threshold and output style.  Call before threads start. */
void cb_log_init(int level);

/* Returns the level for "error", "warn", "info", "debug", or -1. */
int cb_log_level_parse(const char *name);
const char *cb_log_level_name(int level);

void cb_log_write(int level, const char *subsys, int errnum, const char *fmt,
		  ...) __attribute__((format(printf, 4, 5)));

#define cb_log(level, subsys, ...)                                             \
	do {                                                                   \
		if ((level) <= cb_log_threshold)                               \
			cb_log_write((level), (subsys), 0, __VA_ARGS__);       \
	} while (0)

/* Like cb_log, with ": <strerror(errnum)>" appended; errnum passed explicitly. */
#define cb_log_errno(level, subsys, errnum, ...)                               \
	do {                                                                   \
		if ((level) <= cb_log_threshold)                               \
			cb_log_write((level), (subsys), (errnum), __VA_ARGS__); \
	} while (0)

#define cb_error(subsys, ...) cb_log(CB_LOG_ERROR, subsys, __VA_ARGS__)
#define cb_warn(subsys, ...) cb_log(CB_LOG_WARN, subsys, __VA_ARGS__)
#define cb_info(subsys, ...) cb_log(CB_LOG_INFO, subsys, __VA_ARGS__)
#define cb_debug(subsys, ...) cb_log(CB_LOG_DEBUG, subsys, __VA_ARGS__)

#endif
