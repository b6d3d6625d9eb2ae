/*
 * cmd.h - the operator subcommands `init` (src/cmd_init.c), `history`
 * (src/cmd_history.c) and `check` (src/cmd_check.c), and the pure parts
 * they are built on, exposed for the unit tests: the topics/ file parser,
 * the CQL statement splitter and the keyspace and replication rewrite of
 * cql/ statements (the time parser of --since/--until is isotime.h's).  The
 * pure functions allocate only where they say so and touch no global state
 * (any thread).
 * The commands run in the main thread and return an exit status
 * (commands.h).
 */
#ifndef CHATBATTLE_CMD_H
#define CHATBATTLE_CMD_H

#include <stddef.h>
#include <stdint.h>

struct cb_config;

/* `chatbattle init [topics] [cql]`: creates the Kafka topics of topics/
 * and applies cql/ (both when no argument names one). */
int cb_cmd_init(const struct cb_config *cfg);

/* `chatbattle history --channel C [--since T] [--until T] [--limit N]`:
 * the channel's stored messages, newest first, one JSON object a line. */
int cb_cmd_history(const struct cb_config *cfg);

/* `chatbattle check`: one line per dependency (Kafka, Cassandra, Twitch),
 * ok or failed with the reason; CB_EXIT_FAILURE when any failed. */
int cb_cmd_check(const struct cb_config *cfg);

/* ---- topics/NAME.conf ---- */

#define CB_TOPIC_NAME_MAX 249 /* Kafka's limit */
#define CB_TOPIC_CONFIGS_MAX 64
#define CB_TOPIC_KEY_MAX 128
#define CB_TOPIC_VALUE_MAX 256
#define CB_TOPIC_FILE_MAX (64 * 1024)

struct cb_topic_config {
	char key[CB_TOPIC_KEY_MAX + 1]; /* without "config." */
	char value[CB_TOPIC_VALUE_MAX + 1];
	unsigned line;
};

struct cb_topic_def {
	char name[CB_TOPIC_NAME_MAX + 1];
	int partitions;
	int replication_factor;
	size_t nconfigs;
	struct cb_topic_config configs[CB_TOPIC_CONFIGS_MAX];
};

/*
 * Parses one topics/NAME.conf held in text[0..len): '#' comment lines, blank
 * lines and "key = value" lines with the keys name, partitions,
 * replication_factor (positive numbers) and config.<Kafka topic config>;
 * each key at most once.  path only names the file in messages.  Returns 0,
 * or CB_E_PARSE with "path:line: reason" (or "path: reason" for a missing
 * key) in errstr.
 */
int cb_cmd_init_parse_topic(const char *text, size_t len, const char *path,
			    struct cb_topic_def *out, char *errstr,
			    size_t errstr_size);

/* ---- cql/NNN-name.cql ---- */

#define CB_CQL_FILE_MAX (1024 * 1024)
#define CB_CQL_STMTS_MAX 10000

struct cb_cql_stmt {
	char *text;    /* malloc'd, NUL-terminated, comments blanked, trimmed,
			* without the ';' */
	size_t len;
	unsigned line; /* where the statement starts in its file */
};

struct cb_cql_script {
	struct cb_cql_stmt *v;
	size_t n;
};

/*
 * Splits CQL text into statements on ';' outside string literals ('...'
 * with '' escapes, $$...$$), quoted identifiers ("...") and comments (--
 * and // to the end of the line, / * ... * / blocks), as cqlsh does.
 * Comments become blanks; empty statements are dropped; a last statement
 * without ';' is kept.  Appends to out (zeroed by the caller before the
 * first call).  Returns 0, or CB_E_PARSE ("path:line: unterminated ...")
 * or CB_E_TOOBIG / CB_E_NOMEM.
 */
int cb_cmd_init_split_cql(const char *text, size_t len, const char *path,
			  struct cb_cql_script *out, char *errstr,
			  size_t errstr_size);

void cb_cmd_init_script_release(struct cb_cql_script *s);

/*
 * The cql/ files name the default keyspace (from_keyspace, "twitch_chat")
 * and a single-node replication map.  Rewrites one statement for this
 * installation into a malloc'd string *out: the identifier from_keyspace
 * (unquoted and any case, or quoted exactly) where it names a keyspace -
 * before a '.', or after KEYSPACE [IF [NOT] EXISTS] or USE - becomes
 * keyspace; and in CREATE/ALTER KEYSPACE the map after "replication ="
 * becomes replication when that is not NULL or empty.  Nothing inside
 * string literals changes.  Returns 0, CB_E_CONFIG when replication is not
 * one {...} map literal, or CB_E_NOMEM.
 */
int cb_cmd_init_rewrite_cql(const char *stmt, const char *from_keyspace,
			    const char *keyspace, const char *replication,
			    char **out, char *errstr, size_t errstr_size);

#endif
