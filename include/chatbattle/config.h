/*
 * config.h - settings, generated from src/options.def.
 *
 * Sources, highest precedence first: command-line flag, environment variable,
 * config file (--config FILE, else $CHATBATTLE_CONFIG, else
 * /etc/chatbattle/chatbattle.conf when it exists), default.  Every value,
 * defaults included, goes through the same parser, and every error names
 * where the value came from:
 *     chatbattle.conf:12: window_size: must be 10..86400
 *
 * A struct cb_config is filled by the main thread before other threads start
 * and is read-only afterwards, so threads may read it without locks.
 */
#ifndef CHATBATTLE_CONFIG_H
#define CHATBATTLE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A Twitch login is 1..25 of [a-z0-9_]; 26 bytes with the NUL. */
#define CB_CHANNEL_MAX 25

struct cb_strlist {
	char **v;
	size_t n;
};

enum cb_opt_type {
	CB_OT_STR,      /* any string */
	CB_OT_SECRET,   /* a string never printed or logged */
	CB_OT_INT,      /* int64_t within [min, max] */
	CB_OT_BOOL,     /* true/false, yes/no, on/off, 1/0 */
	CB_OT_DOUBLE,   /* double within [min, max] */
	CB_OT_ENUM,     /* one of choices "a|b|c" (exact match) */
	CB_OT_IDENT,    /* CQL identifier, folded to lower case */
	CB_OT_CHANNELS, /* list of Twitch logins, ',' separated, normalized */
	CB_OT_HOSTS,    /* list of host[:port], ',' separated */
	CB_OT_KV,       /* list of key=value, ';' separated */
	CB_OT_SET,      /* list of choices "a|b|c", ',' separated */
};

#define CB_CT_STR char *
#define CB_CT_SECRET char *
#define CB_CT_INT int64_t
#define CB_CT_BOOL bool
#define CB_CT_DOUBLE double
#define CB_CT_ENUM char *
#define CB_CT_IDENT char *
#define CB_CT_CHANNELS struct cb_strlist
#define CB_CT_HOSTS struct cb_strlist
#define CB_CT_KV struct cb_strlist
#define CB_CT_SET struct cb_strlist

enum cb_opt_id {
#define CB_OPT(name, ...) CB_OPT_##name,
#include "options.def"
#undef CB_OPT
	CB_OPT_COUNT
};

enum cb_opt_source {
	CB_SRC_DEFAULT = 0,
	CB_SRC_FILE,
	CB_SRC_ENV,
	CB_SRC_FLAG,
};

struct cb_option_desc {
	const char *name;
	enum cb_opt_type type;
	const char *long_flag;
	int short_flag;
	const char *env;
	const char *env_alias;
	const char *defval;
	double min;
	double max;
	const char *choices;
	const char *group;
	const char *help;
};

/* The table, indexed by enum cb_opt_id. */
extern const struct cb_option_desc cb_options[CB_OPT_COUNT];

/* Flags that are not settings (documented in chatbattle(1) only). */
extern const char *const cb_config_action_flags[];

struct cb_config {
#define CB_OPT(name, type, ...) CB_CT_##type name;
#include "options.def"
#undef CB_OPT
	enum cb_opt_source src[CB_OPT_COUNT];
	char *src_where[CB_OPT_COUNT]; /* "file:12", "$ENV", "--flag" */
	char *config_path;             /* the file read, or NULL */
	const char *command;           /* subcommand, "run" by default */
	char **args;                   /* positional arguments (array owned,
					* strings point into argv) */
	int nargs;
	bool show_help;
	bool show_version;
	bool print_config;
};

/* True when a key=value setting's key names a secret (password, secret,
 * token, private key...): its value is never printed or logged. */
bool cb_config_key_is_secret(const char *key, size_t n);

/* Fills cfg with the defaults.  Returns 0 or a negative cb_err. */
int cb_config_init(struct cb_config *cfg, char *errstr, size_t errstr_size);

/* Frees every string and list in cfg. */
void cb_config_release(struct cb_config *cfg);

/*
 * The whole load: defaults, then the config file, then the environment, then
 * argv (argv[0] is the program; an optional subcommand may follow it).
 * Returns 0, or a negative cb_err with the reason (naming its source) in
 * errstr.  On error cfg is still valid and must be released.
 */
int cb_config_load(struct cb_config *cfg, int argc, char **argv, char *errstr,
		   size_t errstr_size);

/*
 * Sets one setting from text.  src and where describe the origin for
 * messages and --print-config; append adds to a list instead of replacing it.
 */
int cb_config_set(struct cb_config *cfg, enum cb_opt_id id, const char *value,
		  enum cb_opt_source src, const char *where, bool append,
		  char *errstr, size_t errstr_size);

/* Reads "name = value" lines from path.  Returns 0 or a negative cb_err. */
int cb_config_load_file(struct cb_config *cfg, const char *path, char *errstr,
			size_t errstr_size);

/* Reads every setting's environment variable(s). */
int cb_config_load_env(struct cb_config *cfg, char *errstr,
		       size_t errstr_size);

/* True when list l holds s (e.g. a role in cfg->roles). */
bool cb_strlist_has(const struct cb_strlist *l, const char *s);

/* Looks a setting up by its name; returns its id or -1. */
int cb_config_find(const char *name);

/* Writes the value of setting id as config-file text (secrets masked). */
void cb_config_format(const struct cb_config *cfg, enum cb_opt_id id,
		      char *buf, size_t buf_size);

/* --print-config: every setting, its effective value and its origin. */
void cb_config_print(const struct cb_config *cfg, FILE *out);

/* --help: usage, subcommands and every setting, grouped. */
void cb_config_usage(FILE *out, const char *progname);

/*
 * Normalizes a Twitch channel name: trims blanks, strips one leading '#',
 * folds to lower case, and checks 1..25 of [a-z0-9_].  out must hold
 * CB_CHANNEL_MAX + 1 bytes.  Returns 0 or CB_E_INVAL with the reason.
 */
int cb_channel_normalize(const char *in, size_t in_len, char *out,
			 char *errstr, size_t errstr_size);

#endif
