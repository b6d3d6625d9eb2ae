/*
 * config.c - settings: the table from options.def turned into defaults,
 * config-file, environment and getopt_long parsing, --help and
 * --print-config.  Runs in the main thread before any other thread starts.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "chatbattle/config.h"
#include "chatbattle/err.h"

#define DEFAULT_CONFIG_PATH "/etc/chatbattle/chatbattle.conf"
#define LINE_MAX_BYTES 8192

const struct cb_option_desc cb_options[CB_OPT_COUNT] = {
#define CB_OPT(name, type, lflag, sflag, env, env2, def, min, max, choices,    \
	       group, help)                                                    \
	{#name, CB_OT_##type, lflag, sflag, env, env2, def, min, max, choices,  \
	 group, help},
#include "options.def"
#undef CB_OPT
};

const char *const cb_config_action_flags[] = {"help", "version", "config",
					      "print-config", NULL};

static const char *const source_names[] = {"default", "file", "env", "flag"};

/* Returns the address of setting id inside cfg. */
static void *field(struct cb_config *cfg, enum cb_opt_id id)
{
	switch (id) {
#define CB_OPT(name, ...)                                                      \
	case CB_OPT_##name:                                                    \
		return &cfg->name;
#include "options.def"
#undef CB_OPT
	default:
		return NULL;
	}
}

static const void *cfield(const struct cb_config *cfg, enum cb_opt_id id)
{
	return field((struct cb_config *)cfg, id);
}

static bool is_list(enum cb_opt_type t)
{
	return t == CB_OT_CHANNELS || t == CB_OT_HOSTS || t == CB_OT_KV ||
	       t == CB_OT_SET;
}

static bool is_string(enum cb_opt_type t)
{
	return t == CB_OT_STR || t == CB_OT_SECRET || t == CB_OT_ENUM ||
	       t == CB_OT_IDENT;
}

static void strlist_clear(struct cb_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int strlist_add(struct cb_strlist *l, const char *s, size_t len)
{
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
	char *copy;

	if (v == NULL)
		return CB_E_NOMEM;
	l->v = v;
	copy = strndup(s, len);
	if (copy == NULL)
		return CB_E_NOMEM;
	l->v[l->n++] = copy;
	return 0;
}

bool cb_strlist_has(const struct cb_strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return true;
	return false;
}

static const char *trim(const char *s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)s[0])) {
		s++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)s[*len - 1]))
		(*len)--;
	return s;
}

int cb_channel_normalize(const char *in, size_t in_len, char *out,
			 char *errstr, size_t errstr_size)
{
	size_t len = in_len;
	const char *s = trim(in, &len);

	if (len > 0 && s[0] == '#') {
		s++;
		len--;
	}
	if (len == 0)
		return cb_seterr(errstr, errstr_size, CB_E_INVAL,
				 "empty channel name");
	if (len > CB_CHANNEL_MAX)
		return cb_seterr(errstr, errstr_size, CB_E_INVAL,
				 "channel name longer than %d characters",
				 CB_CHANNEL_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return cb_seterr(errstr, errstr_size, CB_E_INVAL,
					 "channel name \"%.*s\" may only hold "
					 "letters, digits and _",
					 (int)len, s);
		out[i] = (char)c;
	}
	out[len] = '\0';
	return 0;
}

static int check_host(const char *s, size_t len, char *errstr,
		      size_t errstr_size)
{
	const char *colon = NULL;
	size_t hostlen = len;

	if (len == 0)
		return cb_seterr(errstr, errstr_size, CB_E_INVAL,
				 "empty host");
	if (s[0] == '[') {
		const char *end = memchr(s, ']', len);

		if (end == NULL)
			return cb_seterr(errstr, errstr_size, CB_E_INVAL,
					 "\"%.*s\": missing ']'", (int)len, s);
		if ((size_t)(end - s) + 1 < len) {
			if (end[1] != ':')
				return cb_seterr(errstr, errstr_size,
						 CB_E_INVAL,
						 "\"%.*s\": expected ':' after ']'",
						 (int)len, s);
			colon = end + 1;
		}
		hostlen = (size_t)(end - s) + 1;
	} else {
		colon = memchr(s, ':', len);
		if (colon != NULL)
			hostlen = (size_t)(colon - s);
		for (size_t i = 0; i < hostlen; i++) {
			unsigned char c = (unsigned char)s[i];

			if (!(isalnum(c) || c == '.' || c == '-' || c == '_'))
				return cb_seterr(errstr, errstr_size,
						 CB_E_INVAL,
						 "\"%.*s\": not a host name or "
						 "address",
						 (int)len, s);
		}
	}
	if (hostlen == 0)
		return cb_seterr(errstr, errstr_size, CB_E_INVAL,
				 "\"%.*s\": empty host", (int)len, s);
	if (colon != NULL) {
		size_t plen = len - (size_t)(colon + 1 - s);
		long port = 0;

		if (plen == 0 || plen > 5)
			return cb_seterr(errstr, errstr_size, CB_E_INVAL,
					 "\"%.*s\": bad port", (int)len, s);
		for (size_t i = 0; i < plen; i++) {
			if (!isdigit((unsigned char)colon[1 + i]))
				return cb_seterr(errstr, errstr_size,
						 CB_E_INVAL,
						 "\"%.*s\": bad port", (int)len,
						 s);
			port = port * 10 + (colon[1 + i] - '0');
		}
		if (port < 1 || port > 65535)
			return cb_seterr(errstr, errstr_size, CB_E_INVAL,
					 "\"%.*s\": port must be 1..65535",
					 (int)len, s);
	}
	return 0;
}

static bool enum_has(const char *choices, const char *s);

/* Splits value on sep and adds each non-empty, validated item to l. */
static int parse_list(const struct cb_option_desc *d, struct cb_strlist *l,
		      const char *value, char *errstr, size_t errstr_size)
{
	char sep = d->type == CB_OT_KV ? ';' : ',';
	const char *p = value;
	int err = 0;

	while (*p != '\0') {
		const char *end = strchr(p, sep);
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *item = trim(p, &len);

		if (len > 0) {
			if (d->type == CB_OT_CHANNELS) {
				char name[CB_CHANNEL_MAX + 1];

				err = cb_channel_normalize(item, len, name,
							   errstr,
							   errstr_size);
				if (err != 0)
					return err;
				if (!cb_strlist_has(l, name))
					err = strlist_add(l, name,
							  strlen(name));
			} else if (d->type == CB_OT_SET) {
				char *item_copy = strndup(item, len);

				if (item_copy == NULL)
					return CB_E_NOMEM;
				if (!enum_has(d->choices, item_copy)) {
					err = cb_seterr(errstr, errstr_size,
							CB_E_INVAL,
							"\"%s\" is not one of %s",
							item_copy, d->choices);
					free(item_copy);
					return err;
				}
				if (!cb_strlist_has(l, item_copy))
					err = strlist_add(l, item, len);
				free(item_copy);
			} else if (d->type == CB_OT_HOSTS) {
				err = check_host(item, len, errstr,
						 errstr_size);
				if (err == 0)
					err = strlist_add(l, item, len);
			} else {
				const char *eq = memchr(item, '=', len);

				if (eq == NULL || eq == item)
					return cb_seterr(
						errstr, errstr_size,
						CB_E_INVAL,
						"\"%.*s\": expected key=value",
						(int)len, item);
				err = strlist_add(l, item, len);
			}
			if (err == CB_E_NOMEM)
				return cb_seterr(errstr, errstr_size, err,
						 "out of memory");
			if (err != 0)
				return err;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on", NULL};
	static const char *const no[] = {"0", "false", "no", "off", NULL};

	for (int i = 0; yes[i] != NULL; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return CB_E_INVAL;
}

static bool enum_has(const char *choices, const char *s)
{
	size_t n = strlen(s);
	const char *p = choices;

	while (p != NULL && *p != '\0') {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);

		if (len == n && strncmp(p, s, n) == 0)
			return true;
		p = bar ? bar + 1 : NULL;
	}
	return false;
}

/* Parses value for setting d into dst without touching cfg on error. */
static int parse_value(const struct cb_option_desc *d, void *dst,
		       const char *value, bool append, char *errstr,
		       size_t errstr_size)
{
	size_t len = strlen(value);
	const char *v = trim(value, &len);
	char *copy = NULL;
	int err = 0;

	switch (d->type) {
	case CB_OT_INT: {
		char buf[32];
		char *end;
		long long n;

		if (len == 0 || len >= sizeof(buf))
			return cb_seterr(errstr, errstr_size, CB_E_INVAL,
					 "%s: expected an integer", d->name);
		memcpy(buf, v, len);
		buf[len] = '\0';
		errno = 0;
		n = strtoll(buf, &end, 10);
		if (errno != 0 || *end != '\0')
			return cb_seterr(errstr, errstr_size, CB_E_INVAL,
					 "%s: \"%s\" is not an integer",
					 d->name, buf);
		if ((double)n < d->min || (double)n > d->max)
			return cb_seterr(errstr, errstr_size, CB_E_RANGE,
					 "%s: must be %.0f..%.0f", d->name,
					 d->min, d->max);
		*(int64_t *)dst = n;
		return 0;
	}
	case CB_OT_DOUBLE: {
		char buf[64];
		char *end;
		double x;

		if (len == 0 || len >= sizeof(buf))
			return cb_seterr(errstr, errstr_size, CB_E_INVAL,
					 "%s: expected a number", d->name);
		memcpy(buf, v, len);
		buf[len] = '\0';
		errno = 0;
		x = strtod(buf, &end);
		if (errno != 0 || *end != '\0' || !isfinite(x))
			return cb_seterr(errstr, errstr_size, CB_E_INVAL,
					 "%s: \"%s\" is not a number", d->name,
					 buf);
		if (x < d->min || x > d->max)
			return cb_seterr(errstr, errstr_size, CB_E_RANGE,
					 "%s: must be %g..%g", d->name, d->min,
					 d->max);
		*(double *)dst = x;
		return 0;
	}
	case CB_OT_BOOL: {
		char buf[8];
		bool b;

		if (len == 0 || len >= sizeof(buf))
			return cb_seterr(errstr, errstr_size, CB_E_INVAL,
					 "%s: expected true or false", d->name);
		memcpy(buf, v, len);
		buf[len] = '\0';
		if (parse_bool(buf, &b) != 0)
			return cb_seterr(errstr, errstr_size, CB_E_INVAL,
					 "%s: \"%s\" is not true or false",
					 d->name, buf);
		*(bool *)dst = b;
		return 0;
	}
	case CB_OT_STR:
	case CB_OT_SECRET:
	case CB_OT_ENUM:
	case CB_OT_IDENT:
		copy = strndup(v, len);
		if (copy == NULL)
			return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
					 "out of memory");
		if (d->type == CB_OT_ENUM && !enum_has(d->choices, copy)) {
			err = cb_seterr(errstr, errstr_size, CB_E_INVAL,
					"%s: \"%s\" is not one of %s", d->name,
					copy, d->choices);
			free(copy);
			return err;
		}
		if (d->type == CB_OT_IDENT) {
			bool ok = len > 0 && len <= 48 &&
				  (isalpha((unsigned char)copy[0]));

			for (size_t i = 0; ok && i < len; i++) {
				copy[i] = (char)tolower((unsigned char)copy[i]);
				ok = isalnum((unsigned char)copy[i]) ||
				     copy[i] == '_';
			}
			if (!ok) {
				err = cb_seterr(errstr, errstr_size,
						CB_E_INVAL,
						"%s: \"%s\" is not a CQL name "
						"(a letter, then up to 47 "
						"letters, digits or _)",
						d->name, copy);
				free(copy);
				return err;
			}
		}
		free(*(char **)dst);
		*(char **)dst = copy;
		return 0;
	case CB_OT_CHANNELS:
	case CB_OT_HOSTS:
	case CB_OT_KV:
	case CB_OT_SET: {
		struct cb_strlist fresh = {0};
		struct cb_strlist *l = dst;
		char reason[256];

		/* Parse into a copy so a bad item leaves the list intact. */
		if (append) {
			for (size_t i = 0; i < l->n; i++) {
				if (strlist_add(&fresh, l->v[i],
						strlen(l->v[i])) != 0) {
					strlist_clear(&fresh);
					return cb_seterr(errstr, errstr_size,
							 CB_E_NOMEM,
							 "out of memory");
				}
			}
		}
		err = parse_list(d, &fresh, value, reason, sizeof(reason));
		if (err != 0) {
			strlist_clear(&fresh);
			return cb_seterr(errstr, errstr_size, err, "%s: %s",
					 d->name, reason);
		}
		strlist_clear(l);
		*l = fresh;
		return 0;
	}
	}
	return cb_seterr(errstr, errstr_size, CB_E_INVAL, "%s: unknown type",
			 d->name);
}

int cb_config_set(struct cb_config *cfg, enum cb_opt_id id, const char *value,
		  enum cb_opt_source src, const char *where, bool append,
		  char *errstr, size_t errstr_size)
{
	const struct cb_option_desc *d;
	char *w;
	int err;

	if ((int)id < 0 || id >= CB_OPT_COUNT)
		return cb_seterr(errstr, errstr_size, CB_E_INVAL,
				 "unknown setting");
	d = &cb_options[id];
	err = parse_value(d, field(cfg, id), value,
			  append && is_list(d->type) && cfg->src[id] == src,
			  errstr, errstr_size);
	if (err != 0)
		return err;
	w = strdup(where ? where : "");
	if (w == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	free(cfg->src_where[id]);
	cfg->src_where[id] = w;
	cfg->src[id] = src;
	return 0;
}

int cb_config_find(const char *name)
{
	for (int i = 0; i < CB_OPT_COUNT; i++)
		if (strcmp(cb_options[i].name, name) == 0)
			return i;
	return -1;
}

int cb_config_init(struct cb_config *cfg, char *errstr, size_t errstr_size)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->command = "run";
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		char reason[256];
		int err = cb_config_set(cfg, (enum cb_opt_id)i,
					cb_options[i].defval, CB_SRC_DEFAULT,
					"default", false, reason,
					sizeof(reason));

		if (err != 0)
			return cb_seterr(errstr, errstr_size, err,
					 "built-in default: %s", reason);
	}
	return 0;
}

void cb_config_release(struct cb_config *cfg)
{
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		const struct cb_option_desc *d = &cb_options[i];
		void *f = field(cfg, (enum cb_opt_id)i);

		if (is_list(d->type))
			strlist_clear(f);
		else if (is_string(d->type)) {
			free(*(char **)f);
			*(char **)f = NULL;
		}
		free(cfg->src_where[i]);
		cfg->src_where[i] = NULL;
	}
	free(cfg->config_path);
	cfg->config_path = NULL;
	free(cfg->args);
	cfg->args = NULL;
	cfg->nargs = 0;
}

/*
 * Unquotes a config-file value in place: "..." with \" and \\ escapes, or a
 * bare value whose " #" starts a comment.  Returns 0 or CB_E_PARSE.
 */
static int file_value(char *v)
{
	size_t len = strlen(v);

	if (v[0] == '"') {
		size_t o = 0, i = 1;

		for (; i < len && v[i] != '"'; i++) {
			if (v[i] == '\\' && i + 1 < len)
				i++;
			v[o++] = v[i];
		}
		if (i >= len)
			return CB_E_PARSE;
		for (size_t j = i + 1; j < len; j++) {
			if (v[j] == '#')
				break;
			if (!isspace((unsigned char)v[j]))
				return CB_E_PARSE;
		}
		v[o] = '\0';
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		if (v[i] == '#' && isspace((unsigned char)v[i - 1])) {
			v[i] = '\0';
			break;
		}
	}
	return 0;
}

int cb_config_load_file(struct cb_config *cfg, const char *path, char *errstr,
			size_t errstr_size)
{
	FILE *f = fopen(path, "r");
	char line[LINE_MAX_BYTES];
	bool appended[CB_OPT_COUNT] = {false};
	int lineno = 0;
	int err = 0;

	if (f == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				 "%s: cannot open: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *eq, *key, *val, where[512], reason[512];
		size_t klen, vlen;
		int id;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					"%s:%d: line longer than %d bytes",
					path, lineno, LINE_MAX_BYTES - 2);
			goto out;
		}
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0' || *p == '#' || *p == ';')
			continue;
		eq = strchr(p, '=');
		if (eq == NULL) {
			err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					"%s:%d: expected \"name = value\"",
					path, lineno);
			goto out;
		}
		klen = (size_t)(eq - p);
		key = (char *)trim(p, &klen);
		key[klen] = '\0';
		vlen = strlen(eq + 1);
		val = (char *)trim(eq + 1, &vlen);
		val[vlen] = '\0';
		id = cb_config_find(key);
		if (id < 0) {
			err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					"%s:%d: %s: unknown setting", path,
					lineno, key);
			goto out;
		}
		if (file_value(val) != 0) {
			err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					"%s:%d: %s: unterminated quote or text "
					"after the closing quote",
					path, lineno, key);
			goto out;
		}
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		err = cb_config_set(cfg, (enum cb_opt_id)id, val, CB_SRC_FILE,
				    where, appended[id], reason,
				    sizeof(reason));
		if (err != 0) {
			err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					"%s:%d: %s", path, lineno, reason);
			goto out;
		}
		appended[id] = true;
	}
	if (ferror(f))
		err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				"%s: read error", path);
out:
	fclose(f);
	return err;
}

int cb_config_load_env(struct cb_config *cfg, char *errstr,
		       size_t errstr_size)
{
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		const struct cb_option_desc *d = &cb_options[i];
		const char *name = d->env;
		const char *v = name ? getenv(name) : NULL;
		char where[128], reason[512];
		int err;

		if (v == NULL && d->env_alias != NULL) {
			name = d->env_alias;
			v = getenv(name);
		}
		if (v == NULL)
			continue;
		snprintf(where, sizeof(where), "$%s", name);
		err = cb_config_set(cfg, (enum cb_opt_id)i, v, CB_SRC_ENV,
				    where, false, reason, sizeof(reason));
		if (err != 0)
			return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					 "environment %s: %s", name, reason);
	}
	return 0;
}

/* getopt_long ids: short flags are their character (< 256); a setting's
 * long flag is FLAG_SETTING + its index, --no-<bool> FLAG_NEGATE + index. */
enum {
	FLAG_HELP = 1000,
	FLAG_VERSION,
	FLAG_CONFIG,
	FLAG_PRINT_CONFIG,
	FLAG_SETTING = 2000,
	FLAG_NEGATE = 4000,
};

struct pending_flag {
	int id;
	const char *value;
	const char *name;
};

/* The getopt tables of the settings table: shortopts (room for
 * 3 * CB_OPT_COUNT + 8) and longopts (room for 2 * CB_OPT_COUNT + 8). */
static void getopt_tables(char *shortopts, struct option *longopts)
{
	/* "--no-<flag>" names live in one buffer so they outlive getopt. */
	static char negbuf[CB_OPT_COUNT][64];
	size_t nlong = 0, ns = 0;

	shortopts[ns++] = ':';
	shortopts[ns++] = 'h';
	shortopts[ns++] = 'V';
	shortopts[ns++] = 'f';
	shortopts[ns++] = ':';
	longopts[nlong++] = (struct option){"help", no_argument, NULL,
					    FLAG_HELP};
	longopts[nlong++] = (struct option){"version", no_argument, NULL,
					    FLAG_VERSION};
	longopts[nlong++] = (struct option){"config", required_argument, NULL,
					    FLAG_CONFIG};
	longopts[nlong++] = (struct option){"print-config", no_argument, NULL,
					    FLAG_PRINT_CONFIG};
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		const struct cb_option_desc *d = &cb_options[i];
		bool b = d->type == CB_OT_BOOL;

		longopts[nlong++] = (struct option){
			d->long_flag, b ? optional_argument : required_argument,
			NULL, FLAG_SETTING + i};
		if (b) {
			snprintf(negbuf[i], sizeof(negbuf[i]), "no-%s",
				 d->long_flag);
			longopts[nlong++] = (struct option){
				negbuf[i], no_argument, NULL, FLAG_NEGATE + i};
		}
		if (d->short_flag != 0) {
			shortopts[ns++] = (char)d->short_flag;
			if (!b)
				shortopts[ns++] = ':';
		}
	}
	shortopts[ns] = '\0';
}

/*
 * Parse: the command line into cfg's actions (help, version,
 * print-config), *config_path, the setting flags in order (flags[],
 * *nflags; applied later) and the arguments (args[], cfg->nargs).
 * Returns 0 or CB_E_CONFIG naming the bad option.
 */
static int parse_flags(struct cb_config *cfg, int sub_argc, char **sub_argv,
		       const char *shortopts, const struct option *longopts,
		       struct pending_flag *flags, size_t *nflags,
		       const char **config_path, char **args, char *errstr,
		       size_t errstr_size)
{
	int c;

	optind = 0; /* full re-initialization (GNU) */
	opterr = 0;
	while ((c = getopt_long(sub_argc, sub_argv, shortopts, longopts,
				NULL)) != -1) {
		const char *opt = sub_argv[optind - 1];

		if (c == '?' || c == ':') {
			if (optopt != 0 && optopt < 256)
				return cb_seterr(errstr, errstr_size,
						 CB_E_CONFIG,
						 c == ':' ? "-%c: needs a value"
							  : "-%c: unknown option",
						 optopt);
			return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					 c == ':' ? "%s: needs a value"
						  : "%s: unknown option "
						    "(see --help)",
					 opt);
		}
		if (c == 'h' || c == FLAG_HELP) {
			cfg->show_help = true;
			continue;
		}
		if (c == 'V' || c == FLAG_VERSION) {
			cfg->show_version = true;
			continue;
		}
		if (c == 'f' || c == FLAG_CONFIG) {
			*config_path = optarg;
			continue;
		}
		if (c == FLAG_PRINT_CONFIG) {
			cfg->print_config = true;
			continue;
		}
		if (c >= FLAG_NEGATE) {
			flags[(*nflags)++] = (struct pending_flag){
				c - FLAG_NEGATE, "false",
				cb_options[c - FLAG_NEGATE].long_flag};
			continue;
		}
		if (c >= FLAG_SETTING) {
			c -= FLAG_SETTING;
		} else {
			/* A short flag: find its row. */
			int row = -1;

			for (int i = 0; i < CB_OPT_COUNT && row < 0; i++)
				if (cb_options[i].short_flag == c)
					row = i;
			if (row < 0)
				return cb_seterr(errstr, errstr_size,
						 CB_E_CONFIG,
						 "-%c: unknown option", c);
			c = row;
		}
		flags[(*nflags)++] = (struct pending_flag){
			c, optarg ? optarg : "true", cb_options[c].long_flag};
	}
	for (int i = optind; i < sub_argc; i++)
		args[cfg->nargs++] = sub_argv[i];
	return 0;
}

/*
 * Apply: the config file, then the environment, then the flags (later
 * sources override); each value is validated by cb_config_set.  Returns 0
 * or CB_E_CONFIG saying which source and setting.
 */
static int apply_sources(struct cb_config *cfg, const char *config_path,
			 const struct pending_flag *flags, size_t nflags,
			 char *errstr, size_t errstr_size)
{
	bool appended[CB_OPT_COUNT] = {false};
	int err;

	if (config_path == NULL)
		config_path = getenv("CHATBATTLE_CONFIG");
	if (config_path == NULL && access(DEFAULT_CONFIG_PATH, F_OK) == 0)
		config_path = DEFAULT_CONFIG_PATH;
	if (config_path != NULL && config_path[0] != '\0') {
		cfg->config_path = strdup(config_path);
		err = cb_config_load_file(cfg, config_path, errstr,
					  errstr_size);
		if (err != 0)
			return err;
	}
	err = cb_config_load_env(cfg, errstr, errstr_size);
	if (err != 0)
		return err;
	for (size_t k = 0; k < nflags; k++) {
		char where[128], reason[512];
		int id = flags[k].id;

		snprintf(where, sizeof(where), "--%s", flags[k].name);
		err = cb_config_set(cfg, (enum cb_opt_id)id, flags[k].value,
				    CB_SRC_FLAG, where, appended[id], reason,
				    sizeof(reason));
		if (err != 0)
			return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					 "command line --%s: %s",
					 flags[k].name, reason);
		appended[id] = true;
	}
	return 0;
}

int cb_config_load(struct cb_config *cfg, int argc, char **argv, char *errstr,
		   size_t errstr_size)
{
	struct option *longopts = NULL;
	struct pending_flag *flags = NULL;
	char shortopts[3 * CB_OPT_COUNT + 8];
	char **args = NULL;
	size_t nflags = 0;
	const char *config_path = NULL;
	int err = 0, first = 1;

	/* The subcommand, if any, comes first. */
	if (argc > 1 && argv[1][0] != '-') {
		cfg->command = argv[1];
		first = 2;
	}
	longopts = calloc(2 * CB_OPT_COUNT + 8, sizeof(*longopts));
	flags = calloc((size_t)argc + 1, sizeof(*flags));
	args = calloc((size_t)argc + 1, sizeof(*args));
	if (longopts == NULL || flags == NULL || args == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"out of memory");
		goto out;
	}
	getopt_tables(shortopts, longopts);
	err = parse_flags(cfg, argc - (first - 1), argv + (first - 1),
			  shortopts, longopts, flags, &nflags, &config_path,
			  args, errstr, errstr_size);
	if (err != 0)
		goto out;
	cfg->args = args;
	args = NULL;
	if (cfg->show_help || cfg->show_version)
		goto out;
	err = apply_sources(cfg, config_path, flags, nflags, errstr,
			    errstr_size);
out:
	free(args);
	free(flags);
	free(longopts);
	return err;
}

void cb_config_format(const struct cb_config *cfg, enum cb_opt_id id,
		      char *buf, size_t buf_size)
{
	const struct cb_option_desc *d = &cb_options[id];
	const void *f = cfield(cfg, id);
	size_t o = 0;

	buf[0] = '\0';
	switch (d->type) {
	case CB_OT_INT:
		snprintf(buf, buf_size, "%lld", (long long)*(const int64_t *)f);
		break;
	case CB_OT_DOUBLE:
		snprintf(buf, buf_size, "%g", *(const double *)f);
		break;
	case CB_OT_BOOL:
		snprintf(buf, buf_size, "%s",
			 *(const bool *)f ? "true" : "false");
		break;
	case CB_OT_SECRET:
		snprintf(buf, buf_size, "%s",
			 (*(char *const *)f)[0] ? "********" : "");
		break;
	case CB_OT_STR:
	case CB_OT_ENUM:
	case CB_OT_IDENT:
		snprintf(buf, buf_size, "%s", *(char *const *)f);
		break;
	case CB_OT_CHANNELS:
	case CB_OT_HOSTS:
	case CB_OT_KV:
	case CB_OT_SET: {
		const struct cb_strlist *l = f;
		const char *sep = d->type == CB_OT_KV ? "; " : ",";

		for (size_t i = 0; i < l->n && o + 1 < buf_size; i++) {
			const char *v = l->v[i], *eq = strchr(v, '=');
			int r;

			/* kafka_opt may carry sasl.password and the like */
			if (d->type == CB_OT_KV && eq != NULL &&
			    cb_config_key_is_secret(v, (size_t)(eq - v)))
				r = snprintf(buf + o, buf_size - o,
					     "%s%.*s=********", i ? sep : "",
					     (int)(eq - v), v);
			else
				r = snprintf(buf + o, buf_size - o, "%s%s",
					     i ? sep : "", v);
			if (r < 0)
				break;
			o += (size_t)r;
		}
		break;
	}
	}
}

bool cb_config_key_is_secret(const char *key, size_t n)
{
	static const char *const words[] = {"password", "secret", "token",
					    "ssl.key", "oauthbearer", "jaas"};

	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
		size_t wl = strlen(words[w]);

		for (size_t i = 0; i + wl <= n; i++)
			if (strncasecmp(key + i, words[w], wl) == 0)
				return true;
	}
	return false;
}

void cb_config_print(const struct cb_config *cfg, FILE *out)
{
	const char *group = "";

	fprintf(out, "# chatbattle effective configuration%s%s\n",
		cfg->config_path ? "; file " : "",
		cfg->config_path ? cfg->config_path : "");
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		const struct cb_option_desc *d = &cb_options[i];
		char value[4096];
		bool quote;

		if (strcmp(group, d->group) != 0) {
			group = d->group;
			fprintf(out, "\n# [%s]\n", group);
		}
		cb_config_format(cfg, (enum cb_opt_id)i, value, sizeof(value));
		quote = value[0] == '\0' || strchr(value, '#') != NULL ||
			value[0] == '"';
		if (quote) {
			fprintf(out, "%s = \"", d->name);
			for (const char *p = value; *p; p++) {
				if (*p == '"' || *p == '\\')
					fputc('\\', out);
				fputc(*p, out);
			}
			fputc('"', out);
		} else {
			fprintf(out, "%s = %s", d->name, value);
		}
		fprintf(out, "    # %s", source_names[cfg->src[i]]);
		if (cfg->src[i] != CB_SRC_DEFAULT && cfg->src_where[i])
			fprintf(out, " %s", cfg->src_where[i]);
		fputc('\n', out);
	}
}

static const struct {
	const char *name;
	const char *help;
} subcommands[] = {
	{"run", "watch the channels: IRC -> Kafka -> windows -> Cassandra, HTTP API (default)"},
	{"init", "create the Kafka topics (topics/) and the Cassandra schema (cql/)"},
	{"check", "test the connections to Kafka, Cassandra and Twitch"},
	{"history", "print stored messages of --channel from Cassandra as JSON lines"},
	{"simulate", "run a Twitch-compatible IRC server for demos and tests"},
	{"irc-parse", "read raw IRC lines on stdin, print the ChatMessage JSON of each"},
	{NULL, NULL},
};

void cb_config_usage(FILE *out, const char *progname)
{
	const char *group = "";

	fprintf(out,
		"usage: %s [COMMAND] [OPTIONS]\n\n"
		"Watches Twitch chat live: IRC -> Kafka -> windowed counts -> "
		"Cassandra, REST API and dashboard.\n\ncommands:\n",
		progname);
	for (int i = 0; subcommands[i].name != NULL; i++)
		fprintf(out, "  %-10s %s\n", subcommands[i].name,
			subcommands[i].help);
	fprintf(out,
		"\ngeneral options:\n"
		"  -h, --help                 print this help and exit\n"
		"  -V, --version              print the version and exit\n"
		"  -f, --config=FILE          read settings from FILE "
		"(default " DEFAULT_CONFIG_PATH " if present; $CHATBATTLE_CONFIG)\n"
		"      --print-config         print every setting, its value "
		"and origin, and exit\n");
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		const struct cb_option_desc *d = &cb_options[i];
		char flag[80];

		if (strcmp(group, d->group) != 0) {
			group = d->group;
			fprintf(out, "\n%s settings:\n", group);
		}
		if (d->type == CB_OT_BOOL)
			snprintf(flag, sizeof(flag), "%c%c%s--[no-]%s",
				 d->short_flag ? '-' : ' ',
				 d->short_flag ? d->short_flag : ' ',
				 d->short_flag ? ", " : "  ", d->long_flag);
		else
			snprintf(flag, sizeof(flag), "%c%c%s--%s=VALUE",
				 d->short_flag ? '-' : ' ',
				 d->short_flag ? d->short_flag : ' ',
				 d->short_flag ? ", " : "  ", d->long_flag);
		fprintf(out, "  %-34s %s\n", flag, d->help);
		fprintf(out, "  %-34s [%s", "", d->name);
		if (d->env)
			fprintf(out, ", $%s", d->env);
		if (d->env_alias)
			fprintf(out, ", $%s", d->env_alias);
		if (d->defval[0] != '\0' && d->type != CB_OT_SECRET)
			fprintf(out, "; default %s", d->defval);
		if (d->type == CB_OT_INT || d->type == CB_OT_DOUBLE)
			fprintf(out, "; %g..%g", d->min, d->max);
		if (d->choices)
			fprintf(out, "; one of %s", d->choices);
		fprintf(out, "]\n");
	}
	fprintf(out, "\nPrecedence: flag, then environment, then config file, "
		     "then default.  See chatbattle(1), chatbattle.conf(5).\n");
}
