/*
 * cmd_init.c - `chatbattle init [topics] [cql]`: creates the Kafka topics
 * described by topics/NAME.conf through librdkafka's Admin API and applies the
 * cql/NNN-name.cql files, in file-name order, through the CQL module's blocking
 * session (cql.h), waiting for schema agreement after each DDL statement.
 *
 * Idempotent: a topic that exists with the partitions, replication factor
 * and configs of its file is left alone; one that differs is reported, one
 * line per setting, and makes init fail (it never alters a topic: that is
 * an operator's decision).  The CQL files use IF NOT EXISTS.
 *
 * The files name the default topics and keyspace: the topic files whose
 * name is the default of topic_messages, topic_stats or topic_dlq create
 * the topics those settings name, and the keyspace twitch_chat and the
 * replication map in cql/ become cassandra_keyspace and
 * cassandra_replication (cb_cmd_init_rewrite_cql).
 *
 * Runs in the main thread; every file is read and checked before the first
 * request, so a bad file changes nothing.  The parsers below are pure.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "chatbattle/clock.h"
#include "chatbattle/cmd.h"
#include "chatbattle/commands.h"
#include "chatbattle/config.h"
#include "chatbattle/cql.h"
#include "chatbattle/err.h"
#include "chatbattle/jw.h"
#include "chatbattle/kafka.h"

#ifndef CB_DATADIR
#define CB_DATADIR "/usr/local/share/chatbattle"
#endif

#define PROG "chatbattle init"
/* Admin requests and waiting for new topics' leaders. */
#define KAFKA_TIMEOUT_MS 30000
/* Nodes exchange schema versions by gossip, about once a second; a large
 * cluster under load can take tens of seconds to converge. */
#define SCHEMA_AGREEMENT_MS 60000

/* ---- topics/NAME.conf ---- */

static bool topic_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > CB_TOPIC_NAME_MAX || (n == 1 && s[0] == '.') ||
	    (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* A positive decimal number up to max. */
static bool positive(const char *s, size_t n, long max, int *out)
{
	long v = 0;

	if (n == 0 || n > 9)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > max)
		return false;
	*out = (int)v;
	return true;
}

static bool key_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

int cb_cmd_init_parse_topic(const char *text, size_t len, const char *path,
			    struct cb_topic_def *out, char *errstr,
			    size_t errstr_size)
{
	unsigned name_line = 0, parts_line = 0, rf_line = 0, lineno = 0;
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		const char *line = text + pos, *nl, *k, *v, *end;
		size_t n, klen, vlen;

		nl = memchr(line, '\n', len - pos);
		n = nl != NULL ? (size_t)(nl - line) : len - pos;
		pos += n + (nl != NULL);
		lineno++;
		end = line + n;
		k = line;
		while (k < end && blank(*k))
			k++;
		if (k == end || *k == '#')
			continue;
		if (memchr(line, '\0', n) != NULL)
			goto bad_line;
		v = k;
		while (v < end && key_char(*v))
			v++;
		klen = (size_t)(v - k);
		while (v < end && blank(*v))
			v++;
		if (klen == 0 || v == end || *v != '=')
			goto bad_line;
		v++;
		while (v < end && blank(*v))
			v++;
		while (end > v && blank(end[-1]))
			end--;
		vlen = (size_t)(end - v);
		if (vlen == 0)
			goto bad_line;
#define KEY(lit) (klen == sizeof(lit) - 1 && memcmp(k, lit, klen) == 0)
		if (KEY("name")) {
			if (name_line != 0)
				goto twice;
			if (!topic_name_ok(v, vlen))
				return cb_seterr(errstr, errstr_size,
						 CB_E_PARSE,
						 "%s:%u: '%.*s' is not a Kafka "
						 "topic name (1 to 249 of "
						 "[A-Za-z0-9._-])",
						 path, lineno, (int)vlen, v);
			memcpy(out->name, v, vlen);
			out->name[vlen] = '\0';
			name_line = lineno;
		} else if (KEY("partitions")) {
			if (parts_line != 0)
				goto twice;
			if (!positive(v, vlen, 1000000, &out->partitions))
				return cb_seterr(errstr, errstr_size,
						 CB_E_PARSE,
						 "%s:%u: partitions must be a "
						 "positive number, got '%.*s'",
						 path, lineno, (int)vlen, v);
			parts_line = lineno;
		} else if (KEY("replication_factor")) {
			if (rf_line != 0)
				goto twice;
			if (!positive(v, vlen, 32767,
				      &out->replication_factor))
				return cb_seterr(errstr, errstr_size,
						 CB_E_PARSE,
						 "%s:%u: replication_factor must "
						 "be a positive number, got "
						 "'%.*s'",
						 path, lineno, (int)vlen, v);
			rf_line = lineno;
		} else if (klen > 7 && memcmp(k, "config.", 7) == 0) {
			struct cb_topic_config *c;

			for (size_t i = 0; i < out->nconfigs; i++)
				if (strlen(out->configs[i].key) == klen - 7 &&
				    memcmp(out->configs[i].key, k + 7,
					   klen - 7) == 0)
					return cb_seterr(
						errstr, errstr_size,
						CB_E_PARSE,
						"%s:%u: '%.*s' given twice "
						"(first on line %u)",
						path, lineno, (int)klen, k,
						out->configs[i].line);
			if (out->nconfigs == CB_TOPIC_CONFIGS_MAX ||
			    klen - 7 > CB_TOPIC_KEY_MAX ||
			    vlen > CB_TOPIC_VALUE_MAX)
				return cb_seterr(errstr, errstr_size,
						 CB_E_PARSE,
						 "%s:%u: too many or too long "
						 "configs (at most %d, keys of "
						 "%d and values of %d bytes)",
						 path, lineno,
						 CB_TOPIC_CONFIGS_MAX,
						 CB_TOPIC_KEY_MAX,
						 CB_TOPIC_VALUE_MAX);
			c = &out->configs[out->nconfigs++];
			memcpy(c->key, k + 7, klen - 7);
			c->key[klen - 7] = '\0';
			memcpy(c->value, v, vlen);
			c->value[vlen] = '\0';
			c->line = lineno;
		} else {
			return cb_seterr(errstr, errstr_size, CB_E_PARSE,
					 "%s:%u: unknown key '%.*s' (name, "
					 "partitions, replication_factor or "
					 "config.<topic config>)",
					 path, lineno, (int)klen, k);
		}
#undef KEY
		continue;
twice:
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "%s:%u: '%.*s' given twice (first on line "
				 "%u)",
				 path, lineno, (int)klen, k,
				 k[0] == 'n' ? name_line
				 : k[0] == 'p' ? parts_line
					       : rf_line);
bad_line:
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "%s:%u: expected 'key = value', got: %.*s%s",
				 path, lineno, n > 80 ? 80 : (int)n, line,
				 n > 80 ? "..." : "");
	}
	if (name_line == 0 || parts_line == 0 || rf_line == 0)
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "%s: no '%s = ...' line", path,
				 name_line == 0	   ? "name"
				 : parts_line == 0 ? "partitions"
						   : "replication_factor");
	return 0;
}

/* ---- cql/: the statement splitter ---- */

void cb_cmd_init_script_release(struct cb_cql_script *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].text);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* Appends buf[0..len), trimmed, as a statement unless it is blank. */
static int push_stmt(struct cb_cql_script *out, const char *buf, size_t len,
		     unsigned line, const char *path, char *errstr,
		     size_t errstr_size)
{
	struct cb_cql_stmt *v;
	size_t a = 0;

	while (a < len && isspace((unsigned char)buf[a]))
		a++;
	while (len > a && isspace((unsigned char)buf[len - 1]))
		len--;
	if (len == a)
		return 0;
	if (out->n >= CB_CQL_STMTS_MAX)
		return cb_seterr(errstr, errstr_size, CB_E_TOOBIG,
				 "%s:%u: more than %d statements", path, line,
				 CB_CQL_STMTS_MAX);
	v = realloc(out->v, (out->n + 1) * sizeof(*v));
	if (v == NULL)
		goto oom;
	out->v = v;
	v = &out->v[out->n];
	v->text = malloc(len - a + 1);
	if (v->text == NULL)
		goto oom;
	memcpy(v->text, buf + a, len - a);
	v->text[len - a] = '\0';
	v->len = len - a;
	v->line = line;
	out->n++;
	return 0;
oom:
	return cb_seterr(errstr, errstr_size, CB_E_NOMEM, "out of memory");
}

int cb_cmd_init_split_cql(const char *text, size_t len, const char *path,
			  struct cb_cql_script *out, char *errstr,
			  size_t errstr_size)
{
	enum { CODE, SQUOTE, DQUOTE, DOLLAR, LINE_COMMENT, BLOCK_COMMENT } st;
	unsigned line = 1, start_line = 0, open_line = 0;
	char *buf;
	size_t blen = 0;
	int err = 0;

	if (len > CB_CQL_FILE_MAX)
		return cb_seterr(errstr, errstr_size, CB_E_TOOBIG,
				 "%s: larger than %d bytes", path,
				 CB_CQL_FILE_MAX);
	/* The statement being collected; never longer than the file. */
	buf = malloc(len + 1);
	if (buf == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	st = CODE;
	for (size_t i = 0; i < len; i++) {
		char c = text[i], next = i + 1 < len ? text[i + 1] : '\0';

		if (c == '\0') {
			err = cb_seterr(errstr, errstr_size, CB_E_PARSE,
					"%s:%u: NUL byte", path, line);
			goto out;
		}
		switch (st) {
		case CODE:
			if (c == ';') {
				err = push_stmt(out, buf, blen, start_line,
						path, errstr, errstr_size);
				if (err != 0)
					goto out;
				blen = 0;
				start_line = 0;
				break;
			}
			if ((c == '-' && next == '-') ||
			    (c == '/' && next == '/')) {
				st = LINE_COMMENT;
				buf[blen++] = ' ';
				i++;
				break;
			}
			if (c == '/' && next == '*') {
				st = BLOCK_COMMENT;
				open_line = line;
				buf[blen++] = ' ';
				i++;
				break;
			}
			if (!isspace((unsigned char)c) && start_line == 0)
				start_line = line;
			if (c == '\'' || c == '"') {
				st = c == '\'' ? SQUOTE : DQUOTE;
				open_line = line;
			} else if (c == '$' && next == '$') {
				st = DOLLAR;
				open_line = line;
				buf[blen++] = c;
				c = next;
				i++;
			}
			buf[blen++] = c;
			break;
		case SQUOTE:
		case DQUOTE:
			buf[blen++] = c;
			if (c == (st == SQUOTE ? '\'' : '"')) {
				if (next == c) { /* a doubled quote */
					buf[blen++] = next;
					i++;
				} else {
					st = CODE;
				}
			}
			break;
		case DOLLAR:
			buf[blen++] = c;
			if (c == '$' && next == '$') {
				buf[blen++] = next;
				i++;
				st = CODE;
			}
			break;
		case LINE_COMMENT:
			if (c == '\n') {
				buf[blen++] = c;
				st = CODE;
			}
			break;
		case BLOCK_COMMENT:
			if (c == '*' && next == '/') {
				i++;
				st = CODE;
			} else if (c == '\n') {
				buf[blen++] = c; /* keeps line numbers right */
			}
			break;
		}
		if (c == '\n')
			line++;
	}
	if (st != CODE && st != LINE_COMMENT) {
		err = cb_seterr(errstr, errstr_size, CB_E_PARSE,
				"%s:%u: unterminated %s", path, open_line,
				st == SQUOTE	? "string literal ('...')"
				: st == DQUOTE	? "quoted identifier (\"...\")"
				: st == DOLLAR	? "string literal ($$...$$)"
						: "comment (/* ... */)");
		goto out;
	}
	err = push_stmt(out, buf, blen, start_line, path, errstr, errstr_size);
out:
	free(buf);
	return err;
}

/* ---- cql/: keyspace and replication ---- */

static bool ident_start(char c)
{
	return isalpha((unsigned char)c) || c == '_';
}

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Index just past the string literal or quoted identifier starting at i
 * (s[i] is ', " or the first $ of $$); len when it does not end. */
static size_t skip_quoted(const char *s, size_t len, size_t i)
{
	if (s[i] == '$') {
		for (i += 2; i + 1 < len; i++)
			if (s[i] == '$' && s[i + 1] == '$')
				return i + 2;
		return len;
	}
	for (char q = s[i++]; i < len; i++) {
		if (s[i] != q)
			continue;
		if (i + 1 < len && s[i + 1] == q) {
			i++;
			continue;
		}
		return i + 1;
	}
	return len;
}

/* The index of the '}' closing the map that starts at s[i] == '{', or
 * len. */
static size_t map_end(const char *s, size_t len, size_t i)
{
	int depth = 0;

	while (i < len) {
		char c = s[i];

		if (c == '\'' || c == '"' || (c == '$' && i + 1 < len &&
					      s[i + 1] == '$')) {
			i = skip_quoted(s, len, i);
			continue;
		}
		if (c == '{')
			depth++;
		else if (c == '}' && --depth == 0)
			return i;
		else if (c == ';')
			return len;
		i++;
	}
	return len;
}

static bool word_is(const char *w, const char *lit)
{
	return strcasecmp(w, lit) == 0;
}

int cb_cmd_init_rewrite_cql(const char *stmt, const char *from_keyspace,
			    const char *keyspace, const char *replication,
			    char **out, char *errstr, size_t errstr_size)
{
	/* The last four words, most recent first; a punctuation character
	 * clears them, so only "KEYSPACE IF NOT EXISTS name" style runs
	 * match. */
	char words[4][16] = {{0}};
	size_t len = strlen(stmt), i = 0, nwords = 0;
	bool ks_stmt = false;
	struct cb_jw w = {0};

	*out = NULL;
	if (replication != NULL && replication[0] != '\0') {
		size_t rlen = strlen(replication), a = 0;

		while (a < rlen && isspace((unsigned char)replication[a]))
			a++;
		while (rlen > a &&
		       isspace((unsigned char)replication[rlen - 1]))
			rlen--;
		if (a == rlen || replication[a] != '{' ||
		    map_end(replication, rlen, a) != rlen - 1)
			return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					 "cassandra_replication must be one "
					 "CQL map literal such as {'class': "
					 "'SimpleStrategy', "
					 "'replication_factor': 1}, got: %s",
					 replication);
	}
	while (i < len) {
		char c = stmt[i];
		size_t j;

		if (c == '\'' || (c == '$' && i + 1 < len &&
				  stmt[i + 1] == '$')) {
			j = skip_quoted(stmt, len, i);
			cb_jw_raw(&w, stmt + i, j - i);
			i = j;
			continue;
		}
		if (c == '"' || ident_start(c)) {
			bool quoted = c == '"', ks_here, before_dot;
			char word[16] = "";
			size_t k, wlen;

			j = quoted ? skip_quoted(stmt, len, i) : i + 1;
			while (!quoted && j < len && ident_char(stmt[j]))
				j++;
			wlen = j - i;
			if (!quoted && wlen < sizeof(word)) {
				memcpy(word, stmt + i, wlen);
				word[wlen] = '\0';
			}
			k = j;
			while (k < len && isspace((unsigned char)stmt[k]))
				k++;
			before_dot = k < len && stmt[k] == '.';
			ks_here = word_is(words[0], "KEYSPACE") ||
				  word_is(words[0], "USE") ||
				  (word_is(words[0], "EXISTS") &&
				   (word_is(words[2], "KEYSPACE") ||
				    word_is(words[3], "KEYSPACE")));
			if ((before_dot || ks_here) &&
			    (quoted ? wlen == strlen(from_keyspace) + 2 &&
					      memcmp(stmt + i + 1,
						     from_keyspace,
						     wlen - 2) == 0
				    : strlen(from_keyspace) == wlen &&
					      strncasecmp(stmt + i,
							  from_keyspace,
							  wlen) == 0))
				cb_jw_raw(&w, keyspace, strlen(keyspace));
			else
				cb_jw_raw(&w, stmt + i, wlen);
			i = j;
			if (nwords < 2 && !quoted) {
				nwords++;
				if (nwords == 2 && word_is(word, "KEYSPACE") &&
				    (word_is(words[0], "CREATE") ||
				     word_is(words[0], "ALTER")))
					ks_stmt = true;
			}
			memmove(words[1], words[0], sizeof(words[0]) * 3);
			memcpy(words[0], word, sizeof(word));
			if (ks_stmt && word_is(word, "replication") &&
			    replication != NULL && replication[0] != '\0' &&
			    k < len && stmt[k] == '=') {
				size_t m = k + 1, e;

				while (m < len &&
				       isspace((unsigned char)stmt[m]))
					m++;
				if (m < len && stmt[m] == '{' &&
				    (e = map_end(stmt, len, m)) < len) {
					cb_jw_raw(&w, stmt + i, m - i);
					cb_jw_raw(&w, replication,
						  strlen(replication));
					i = e + 1;
					memset(words, 0, sizeof(words));
				}
			}
			continue;
		}
		if (!isspace((unsigned char)c)) {
			memset(words, 0, sizeof(words));
			nwords = nwords == 0 ? 0 : 2; /* statement kind fixed */
		}
		cb_jw_raw(&w, &c, 1);
		i++;
	}
	cb_jw_raw(&w, "", 0);
	if (w.oom || w.buf == NULL) {
		cb_jw_release(&w);
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	}
	*out = w.buf;
	return 0;
}

/* ---- reading the directories ---- */

/* The directory a setting names; empty: ./sub when it exists, else the
 * installed copy (make install puts topics/ and cql/ in DATADIR). */
static void resolve_dir(const char *setting, const char *sub, char *out,
			size_t size)
{
	struct stat st;

	if (setting != NULL && setting[0] != '\0')
		snprintf(out, size, "%s", setting);
	else if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
		snprintf(out, size, "%s", sub);
	else
		snprintf(out, size, "%s/%s", CB_DATADIR, sub);
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return name[0] != '.' && n > s && strcmp(name + n - s, suffix) == 0;
}

static int conf_filter(const struct dirent *d)
{
	return has_suffix(d->d_name, ".conf");
}

static int cql_filter(const struct dirent *d)
{
	return has_suffix(d->d_name, ".cql");
}

/* Byte order, whatever the locale: "file-name order" means the same on
 * every machine. */
static int name_order(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Reads a whole file of at most max bytes into a malloc'd buffer. */
static int read_whole(const char *path, size_t max, char **out, size_t *len,
		      char *errstr, size_t errstr_size)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n;
	int err = 0;

	*out = NULL;
	if (f == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_IO, "%s: %s", path,
				 strerror(errno));
	buf = malloc(max + 1);
	if (buf == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"out of memory");
		goto out;
	}
	n = fread(buf, 1, max + 1, f);
	if (ferror(f)) {
		err = cb_seterr(errstr, errstr_size, CB_E_IO, "%s: read error",
				path);
		goto out;
	}
	if (n > max) {
		err = cb_seterr(errstr, errstr_size, CB_E_TOOBIG,
				"%s: larger than %zu bytes", path, max);
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return err;
}

struct topic_file {
	char path[4096];
	struct cb_topic_def def;
	const char *name; /* the topic to create (settings applied) */
	int rf;           /* the replication factor to create it with */
};

struct cql_file {
	char path[4096];
	struct cb_cql_script script;
};

/* Called for file i of n (file-name order) with its whole text. */
typedef int (*file_fn)(void *ctx, size_t i, size_t n, const char *path,
		       const char *text, size_t len, char *errstr,
		       size_t errstr_size);

/*
 * Reads every file that filter accepts in the directory of setting (see
 * resolve_dir), in file-name order, each at most max bytes, and hands it
 * to fn; stops at the first error.  No file at all is an error too: init
 * would silently do nothing.
 */
static int each_file(const char *setting, const char *sub,
		     int (*filter)(const struct dirent *), const char *what,
		     size_t max, file_fn fn, void *ctx, char *errstr,
		     size_t errstr_size)
{
	struct dirent **names = NULL;
	char dir[2048], path[4096];
	int k, err = 0;

	resolve_dir(setting, sub, dir, sizeof(dir));
	k = scandir(dir, &names, filter, name_order);
	if (k < 0)
		return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				 "%s: %s (set %s)", dir, strerror(errno),
				 what);
	if (k == 0)
		err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				"%s: no files to apply (set %s)", dir, what);
	for (int i = 0; i < k; i++) {
		char *text = NULL;
		size_t len = 0;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (err == 0)
			err = read_whole(path, max, &text, &len, errstr,
					 errstr_size);
		if (err == 0)
			err = fn(ctx, (size_t)i, (size_t)k, path, text, len,
				 errstr, errstr_size);
		free(text);
		free(names[i]);
	}
	free(names);
	return err;
}

/* The topic a file creates: the files name the default topics, the
 * settings may rename them. */
static const char *topic_for(const struct cb_config *cfg, const char *name)
{
	if (strcmp(name, cb_options[CB_OPT_topic_messages].defval) == 0)
		return cfg->topic_messages;
	if (strcmp(name, cb_options[CB_OPT_topic_stats].defval) == 0)
		return cfg->topic_stats;
	if (strcmp(name, cb_options[CB_OPT_topic_dlq].defval) == 0)
		return cfg->topic_dlq;
	return name;
}

struct loaded {
	const struct cb_config *cfg;
	struct topic_file *tf;
	struct cql_file *cf;
	size_t n;
};

static int add_topic(void *ctx, size_t i, size_t n, const char *path,
		     const char *text, size_t len, char *errstr,
		     size_t errstr_size)
{
	struct loaded *l = ctx;
	struct topic_file *t;
	int err;

	if (i == 0 && (l->tf = calloc(n, sizeof(*l->tf))) == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	t = &l->tf[i];
	l->n = i + 1;
	snprintf(t->path, sizeof(t->path), "%s", path);
	err = cb_cmd_init_parse_topic(text, len, path, &t->def, errstr,
				      errstr_size);
	if (err != 0)
		return err;
	t->name = topic_for(l->cfg, t->def.name);
	t->rf = l->cfg->kafka_replication_factor > 0
			? (int)l->cfg->kafka_replication_factor
			: t->def.replication_factor;
	for (size_t j = 0; j < i; j++)
		if (strcmp(l->tf[j].name, t->name) == 0)
			return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					 "%s and %s both define topic %s",
					 l->tf[j].path, t->path, t->name);
	return 0;
}

static int add_cql(void *ctx, size_t i, size_t n, const char *path,
		   const char *text, size_t len, char *errstr,
		   size_t errstr_size)
{
	struct loaded *l = ctx;

	if (i == 0 && (l->cf = calloc(n, sizeof(*l->cf))) == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	l->n = i + 1;
	snprintf(l->cf[i].path, sizeof(l->cf[i].path), "%s", path);
	return cb_cmd_init_split_cql(text, len, path, &l->cf[i].script,
				     errstr, errstr_size);
}

static void free_cql(struct cql_file *cf, size_t n)
{
	for (size_t i = 0; cf != NULL && i < n; i++)
		cb_cmd_init_script_release(&cf[i].script);
	free(cf);
}

/* ---- Kafka ---- */

struct topic_state {
	bool found;
	bool leaders; /* every partition has a leader */
	int partitions;
	int rf;
};

static struct topic_state topic_state(const rd_kafka_metadata_t *md,
				      const char *name)
{
	struct topic_state s = {0};

	for (int i = 0; i < md->topic_cnt; i++) {
		const rd_kafka_metadata_topic_t *t = &md->topics[i];

		if (strcmp(t->topic, name) != 0 ||
		    t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			continue;
		s.found = true;
		s.leaders = t->partition_cnt > 0;
		s.partitions = t->partition_cnt;
		for (int p = 0; p < t->partition_cnt; p++) {
			if (t->partitions[p].leader < 0)
				s.leaders = false;
			if (p == 0 || t->partitions[p].replica_cnt < s.rf)
				s.rf = t->partitions[p].replica_cnt;
		}
	}
	return s;
}

static int metadata(rd_kafka_t *rk, const struct cb_config *cfg,
		    const rd_kafka_metadata_t **md, char *errstr,
		    size_t errstr_size)
{
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, md,
						  KAFKA_TIMEOUT_MS);

	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		return cb_seterr(errstr, errstr_size, cb_kafka_err(e),
				 "Kafka %s: cannot read the cluster metadata: "
				 "%s",
				 cfg->kafka_brokers, rd_kafka_err2str(e));
	return 0;
}

/* Waits for the one result event of an Admin request. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, const char *what,
				    char *errstr, size_t errstr_size)
{
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, KAFKA_TIMEOUT_MS + 5000);

	if (ev == NULL) {
		cb_seterr(errstr, errstr_size, CB_E_TIMEOUT,
			  "Kafka: no answer to %s within %d ms", what,
			  KAFKA_TIMEOUT_MS + 5000);
		return NULL;
	}
	if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		cb_seterr(errstr, errstr_size,
			  cb_kafka_err(rd_kafka_event_error(ev)),
			  "Kafka: %s failed: %s", what,
			  rd_kafka_event_error_string(ev));
		rd_kafka_event_destroy(ev);
		return NULL;
	}
	return ev;
}

static rd_kafka_AdminOptions_t *admin_options(rd_kafka_t *rk,
					      rd_kafka_admin_op_t op)
{
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
	char why[256];

	rd_kafka_AdminOptions_set_request_timeout(o, KAFKA_TIMEOUT_MS + 2000,
						  why, sizeof(why));
	if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS)
		rd_kafka_AdminOptions_set_operation_timeout(
			o, KAFKA_TIMEOUT_MS, why, sizeof(why));
	return o;
}

/* Creates the topics marked in create[]; on return create[i] stays true
 * for those created, exists[i] is set for those a concurrent init created
 * first.  Returns the number of failures (reported). */
static int create_topics(rd_kafka_t *rk, struct topic_file *tf, size_t n,
			 bool *create, bool *exists)
{
	rd_kafka_NewTopic_t **nt = calloc(n, sizeof(*nt));
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o = NULL;
	rd_kafka_event_t *ev = NULL;
	const rd_kafka_topic_result_t **res;
	size_t k = 0, nres = 0;
	char errstr[512];
	int failed = 0;

	if (nt == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		failed = 1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!create[i])
			continue;
		nt[k] = rd_kafka_NewTopic_new(tf[i].name, tf[i].def.partitions,
					      tf[i].rf, errstr,
					      sizeof(errstr));
		if (nt[k] == NULL) {
			fprintf(stderr, PROG ": topic %s (%s): %s\n",
				tf[i].name, tf[i].path, errstr);
			create[i] = false;
			failed++;
			continue;
		}
		for (size_t c = 0; c < tf[i].def.nconfigs; c++)
			rd_kafka_NewTopic_set_config(nt[k],
						     tf[i].def.configs[c].key,
						     tf[i].def.configs[c].value);
		k++;
	}
	if (k == 0)
		goto out;
	o = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	rd_kafka_CreateTopics(rk, nt, k, o, q);
	ev = admin_wait(q, "CreateTopics", errstr, sizeof(errstr));
	if (ev == NULL) {
		fprintf(stderr, PROG ": %s\n", errstr);
		for (size_t i = 0; i < n; i++)
			create[i] = false;
		failed += (int)k;
		goto out;
	}
	res = rd_kafka_CreateTopics_result_topics(
		rd_kafka_event_CreateTopics_result(ev), &nres);
	for (size_t i = 0; i < n; i++) {
		const rd_kafka_topic_result_t *r = NULL;

		if (!create[i])
			continue;
		for (size_t j = 0; j < nres; j++)
			if (strcmp(rd_kafka_topic_result_name(res[j]),
				   tf[i].name) == 0)
				r = res[j];
		if (r != NULL && rd_kafka_topic_result_error(r) ==
					 RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			create[i] = false;
			exists[i] = true;
			continue;
		}
		if (r == NULL ||
		    rd_kafka_topic_result_error(r) != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr,
				PROG ": creating topic %s from %s failed: "
				     "%s\n",
				tf[i].name, tf[i].path,
				r == NULL ? "no result for it"
				: rd_kafka_topic_result_error_string(r)
					? rd_kafka_topic_result_error_string(r)
					: rd_kafka_err2str(
						  rd_kafka_topic_result_error(r)));
			create[i] = false;
			failed++;
		}
	}
out:
	if (ev != NULL)
		rd_kafka_event_destroy(ev);
	if (o != NULL)
		rd_kafka_AdminOptions_destroy(o);
	if (nt != NULL)
		rd_kafka_NewTopic_destroy_array(nt, k);
	free(nt);
	rd_kafka_queue_destroy(q);
	return failed;
}

/* Compares each config of the files of the topics marked in exists[] with
 * the broker's value.  Returns the number of topics that differ or could
 * not be described (reported). */
static int compare_configs(rd_kafka_t *rk, struct topic_file *tf, size_t n,
			   const bool *exists, bool *differs)
{
	rd_kafka_ConfigResource_t **cr = calloc(n, sizeof(*cr));
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o = NULL;
	rd_kafka_event_t *ev = NULL;
	const rd_kafka_ConfigResource_t **res;
	size_t k = 0, nres = 0;
	char errstr[512];
	int failed = 0;

	if (cr == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		failed = 1;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (exists[i])
			cr[k++] = rd_kafka_ConfigResource_new(
				RD_KAFKA_RESOURCE_TOPIC, tf[i].name);
	if (k == 0)
		goto out;
	o = admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
	rd_kafka_DescribeConfigs(rk, cr, k, o, q);
	ev = admin_wait(q, "DescribeConfigs", errstr, sizeof(errstr));
	if (ev == NULL) {
		fprintf(stderr, PROG ": %s\n", errstr);
		failed = (int)k;
		goto out;
	}
	res = rd_kafka_DescribeConfigs_result_resources(
		rd_kafka_event_DescribeConfigs_result(ev), &nres);
	for (size_t i = 0; i < n; i++) {
		const rd_kafka_ConfigResource_t *r = NULL;
		const rd_kafka_ConfigEntry_t **ent;
		size_t nent = 0;

		if (!exists[i])
			continue;
		for (size_t j = 0; j < nres; j++)
			if (strcmp(rd_kafka_ConfigResource_name(res[j]),
				   tf[i].name) == 0)
				r = res[j];
		if (r == NULL || rd_kafka_ConfigResource_error(r) !=
					 RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr,
				PROG ": cannot describe the configs of topic "
				     "%s: %s\n",
				tf[i].name,
				r == NULL ? "no result for it"
				: rd_kafka_ConfigResource_error_string(r)
					? rd_kafka_ConfigResource_error_string(r)
					: rd_kafka_err2str(
						  rd_kafka_ConfigResource_error(r)));
			failed++;
			continue;
		}
		ent = rd_kafka_ConfigResource_configs(r, &nent);
		for (size_t c = 0; c < tf[i].def.nconfigs; c++) {
			const struct cb_topic_config *want =
				&tf[i].def.configs[c];
			const char *have = NULL;
			bool known = false;

			for (size_t e = 0; e < nent; e++)
				if (strcmp(rd_kafka_ConfigEntry_name(ent[e]),
					   want->key) == 0) {
					known = true;
					have = rd_kafka_ConfigEntry_value(
						ent[e]);
				}
			if (known && have != NULL &&
			    strcmp(have, want->value) == 0)
				continue;
			if (!known)
				fprintf(stderr,
					PROG ": topic %s: %s: the broker has "
					     "no such topic config (%s:%u)\n",
					tf[i].name, want->key, tf[i].path,
					want->line);
			else
				fprintf(stderr,
					PROG ": topic %s: %s is %s on the "
					     "broker, %s in %s:%u\n",
					tf[i].name, want->key,
					have != NULL ? have : "(hidden)",
					want->value, tf[i].path, want->line);
			differs[i] = true;
		}
	}
out:
	if (ev != NULL)
		rd_kafka_event_destroy(ev);
	if (o != NULL)
		rd_kafka_AdminOptions_destroy(o);
	if (cr != NULL)
		rd_kafka_ConfigResource_destroy_array(cr, k);
	free(cr);
	rd_kafka_queue_destroy(q);
	return failed;
}

/* New topics are usable once every partition has a leader. */
static int wait_leaders(rd_kafka_t *rk, const struct cb_config *cfg,
			struct topic_file *tf, size_t n, const bool *created)
{
	int64_t deadline = cb_mono_ms() + KAFKA_TIMEOUT_MS;
	char errstr[512];

	for (;;) {
		const rd_kafka_metadata_t *md;
		size_t ready = 0, want = 0;

		if (metadata(rk, cfg, &md, errstr, sizeof(errstr)) != 0) {
			fprintf(stderr, PROG ": %s\n", errstr);
			return 1;
		}
		for (size_t i = 0; i < n; i++) {
			struct topic_state s;

			if (!created[i])
				continue;
			want++;
			s = topic_state(md, tf[i].name);
			ready += s.found && s.leaders &&
				 s.partitions == tf[i].def.partitions;
		}
		rd_kafka_metadata_destroy(md);
		if (ready == want)
			return 0;
		if (cb_mono_ms() >= deadline) {
			fprintf(stderr,
				PROG ": %zu new topic(s) still without a "
				     "leader for every partition after %d "
				     "ms\n",
				want - ready, KAFKA_TIMEOUT_MS);
			return 1;
		}
		poll(NULL, 0, 100);
	}
}

static int init_topics(const struct cb_config *cfg, struct topic_file *tf,
		       size_t n)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	const rd_kafka_metadata_t *md = NULL;
	bool *create = calloc(n, sizeof(bool)), *exists = calloc(n, sizeof(bool));
	bool *differs = calloc(n, sizeof(bool));
	char errstr[512];
	int failed = 0, ndiffer = 0;

	if (create == NULL || exists == NULL || differs == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		failed = 1;
		goto out;
	}
	if (cb_kafka_conf_new(cfg, "init", &conf, errstr, sizeof(errstr)) !=
	    0) {
		fprintf(stderr, PROG ": %s\n", errstr);
		failed = 1;
		goto out;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, PROG ": Kafka client: %s\n", errstr);
		failed = 1;
		goto out;
	}
	if (metadata(rk, cfg, &md, errstr, sizeof(errstr)) != 0) {
		fprintf(stderr, PROG ": %s\n", errstr);
		failed = 1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct topic_state s = topic_state(md, tf[i].name);

		exists[i] = s.found;
		create[i] = !s.found;
	}
	failed += create_topics(rk, tf, n, create, exists);
	/* Partitions and replicas of the topics that were there (or that a
	 * concurrent init created), from fresh metadata. */
	rd_kafka_metadata_destroy(md);
	md = NULL;
	if (metadata(rk, cfg, &md, errstr, sizeof(errstr)) != 0) {
		fprintf(stderr, PROG ": %s\n", errstr);
		failed++;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct topic_state s;

		if (!exists[i])
			continue;
		s = topic_state(md, tf[i].name);
		if (s.partitions != tf[i].def.partitions) {
			fprintf(stderr,
				PROG ": topic %s: partitions is %d on the "
				     "broker, %d in %s\n",
				tf[i].name, s.partitions, tf[i].def.partitions,
				tf[i].path);
			differs[i] = true;
		}
		if (s.rf != tf[i].rf) {
			fprintf(stderr,
				PROG ": topic %s: replication factor is %d on "
				     "the broker, %d in %s%s\n",
				tf[i].name, s.rf, tf[i].rf, tf[i].path,
				cfg->kafka_replication_factor > 0
					? " (replication_factor setting)"
					: "");
			differs[i] = true;
		}
	}
	failed += compare_configs(rk, tf, n, exists, differs);
	failed += wait_leaders(rk, cfg, tf, n, create);
	for (size_t i = 0; i < n; i++) {
		if (create[i])
			printf(PROG ": topic %s created from %s (%d "
				    "partitions, replication factor %d, %zu "
				    "configs)\n",
			       tf[i].name, tf[i].path, tf[i].def.partitions,
			       tf[i].rf, tf[i].def.nconfigs);
		else if (exists[i] && !differs[i])
			printf(PROG ": topic %s exists as %s describes it\n",
			       tf[i].name, tf[i].path);
		ndiffer += differs[i];
	}
	if (ndiffer > 0)
		fprintf(stderr,
			PROG ": %d existing topic(s) differ from their topics/ "
			     "file (above); init does not alter topics: "
			     "change them with kafka-topics/kafka-configs, or "
			     "change the file\n",
			ndiffer);
out:
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	if (rk != NULL)
		rd_kafka_destroy(rk);
	free(create);
	free(exists);
	free(differs);
	return failed + ndiffer > 0 ? CB_EXIT_FAILURE : CB_EXIT_OK;
}

/* ---- Cassandra ---- */

static bool is_ddl(const char *stmt)
{
	static const char *const verbs[] = {"CREATE", "ALTER", "DROP"};

	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		size_t n = strlen(verbs[i]);

		if (strncasecmp(stmt, verbs[i], n) == 0 &&
		    !ident_char(stmt[n]))
			return true;
	}
	return false;
}

static int init_cql(const struct cb_config *cfg, struct cql_file *cf,
		    size_t n)
{
	const char *from = cb_options[CB_OPT_cassandra_keyspace].defval;
	struct cb_cql_session *s = NULL;
	char errstr[1024];
	int rc = CB_EXIT_FAILURE;

	if (cb_cql_session_open(cfg, NULL, &s, errstr, sizeof(errstr)) != 0) {
		fprintf(stderr, PROG ": %s\n", errstr);
		return CB_EXIT_FAILURE;
	}
	for (size_t f = 0; f < n; f++) {
		const struct cb_cql_script *sc = &cf[f].script;

		for (size_t i = 0; i < sc->n; i++) {
			char *cql = NULL;
			int err;

			err = cb_cmd_init_rewrite_cql(
				sc->v[i].text, from, cfg->cassandra_keyspace,
				cfg->cassandra_replication, &cql, errstr,
				sizeof(errstr));
			if (err == 0)
				err = cb_cql_exec(s, cql, errstr,
						  sizeof(errstr));
			if (err == 0 && is_ddl(cql))
				err = cb_cql_wait_schema_agreement(
					s, SCHEMA_AGREEMENT_MS, errstr,
					sizeof(errstr));
			free(cql);
			if (err != 0) {
				fprintf(stderr, PROG ": %s:%u: %s\n",
					cf[f].path, sc->v[i].line, errstr);
				goto out;
			}
		}
		printf(PROG ": %s: %zu statement(s) applied\n", cf[f].path,
		       sc->n);
	}
	printf(PROG ": Cassandra schema in keyspace %s is ready, every node "
		    "agrees\n",
	       cfg->cassandra_keyspace);
	rc = CB_EXIT_OK;
out:
	cb_cql_session_close(s);
	return rc;
}

int cb_cmd_init(const struct cb_config *cfg)
{
	struct loaded topics_l = {cfg, NULL, NULL, 0};
	struct loaded cql_l = {cfg, NULL, NULL, 0};
	bool topics = cfg->nargs == 0, cql = cfg->nargs == 0;
	char errstr[1024];
	int rc = CB_EXIT_OK;

	for (int i = 0; i < cfg->nargs; i++) {
		if (strcmp(cfg->args[i], "topics") == 0) {
			topics = true;
		} else if (strcmp(cfg->args[i], "cql") == 0) {
			cql = true;
		} else {
			fprintf(stderr,
				PROG ": unknown part \"%s\" (topics, cql, or "
				     "nothing for both)\n",
				cfg->args[i]);
			return CB_EXIT_USAGE;
		}
	}
	/* Every file is read and checked before anything is changed. */
	if ((topics &&
	     each_file(cfg->topics_dir, "topics", conf_filter, "topics_dir",
		       CB_TOPIC_FILE_MAX, add_topic, &topics_l, errstr,
		       sizeof(errstr)) != 0) ||
	    (cql && each_file(cfg->cql_dir, "cql", cql_filter, "cql_dir",
			      CB_CQL_FILE_MAX, add_cql, &cql_l, errstr,
			      sizeof(errstr)) != 0)) {
		fprintf(stderr, PROG ": %s\n", errstr);
		rc = CB_EXIT_USAGE;
		goto out;
	}
	if (topics && init_topics(cfg, topics_l.tf, topics_l.n) != CB_EXIT_OK)
		rc = CB_EXIT_FAILURE;
	if (cql && init_cql(cfg, cql_l.cf, cql_l.n) != CB_EXIT_OK)
		rc = CB_EXIT_FAILURE;
out:
	free(topics_l.tf);
	free_cql(cql_l.cf, cql_l.n);
	return rc;
}
