/*
 * test_config.c - the settings table: defaults, precedence (flag > env >
 * file > default), list handling, validation, and error messages that name
 * their source.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "test.h"

static char tmpfile_path[64];

static const char *write_conf(const char *text)
{
	FILE *f;

	snprintf(tmpfile_path, sizeof(tmpfile_path), "/tmp/cbconf.%d",
		 (int)getpid());
	f = fopen(tmpfile_path, "w");
	if (f == NULL)
		return NULL;
	fputs(text, f);
	fclose(f);
	return tmpfile_path;
}

/* Loads argv (NULL-terminated) into cfg with a clean environment. */
static int load(struct cb_config *cfg, char *errstr, size_t n, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	int err;

	argv[argc++] = "chatbattle";
	va_start(ap, n);
	for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	err = cb_config_init(cfg, errstr, n);
	if (err != 0)
		return err;
	return cb_config_load(cfg, argc, argv, errstr, n);
}

static void clear_env(void)
{
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		if (cb_options[i].env)
			unsetenv(cb_options[i].env);
		if (cb_options[i].env_alias)
			unsetenv(cb_options[i].env_alias);
	}
	unsetenv("CHATBATTLE_CONFIG");
}

static void every_default_parses(void)
{
	struct cb_config cfg;
	char err[256];

	CHECK_INT(cb_config_init(&cfg, err, sizeof(err)), 0);
	CHECK_INT(cfg.window_size, 600);
	CHECK_INT(cfg.port, 3000);
	CHECK_STR(cfg.kafka_brokers, "127.0.0.1:9092");
	CHECK_STR(cfg.cassandra_keyspace, "twitch_chat");
	CHECK_INT(cfg.channel.n, 0);
	CHECK(cfg.irc_tls);
	CHECK_INT(cfg.src[CB_OPT_window_size], CB_SRC_DEFAULT);
	cb_config_release(&cfg);
}

static void table_rows_are_well_formed(void)
{
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		const struct cb_option_desc *d = &cb_options[i];

		CHECK(d->name && d->long_flag && d->help && d->group);
		CHECK(strlen(d->help) > 10);
		CHECK(cb_config_find(d->name) == i);
		for (int j = 0; j < i; j++) {
			CHECK(strcmp(cb_options[j].long_flag, d->long_flag) != 0);
			CHECK(d->short_flag == 0 ||
			      cb_options[j].short_flag != d->short_flag);
			CHECK(d->env == NULL || cb_options[j].env == NULL ||
			      strcmp(cb_options[j].env, d->env) != 0);
		}
		CHECK(d->short_flag != 'h' && d->short_flag != 'V' &&
		      d->short_flag != 'f');
	}
}

static void channel_flag_normalizes_and_repeats(void)
{
	struct cb_config cfg;
	char err[256];

	clear_env();
	CHECK_INT(load(&cfg, err, sizeof(err), "--channel", "Foo", "-c",
		       "#Bar_2", "--channel=foo", NULL),
		  0);
	CHECK_INT(cfg.channel.n, 2);
	CHECK_STR(cfg.channel.v[0], "foo");
	CHECK_STR(cfg.channel.v[1], "bar_2");
	cb_config_release(&cfg);
}

static void bad_channel_names_are_refused(void)
{
	struct cb_config cfg;
	char err[256];

	clear_env();
	CHECK_INT(load(&cfg, err, sizeof(err), "--channel", "bad-name", NULL),
		  CB_E_CONFIG);
	CHECK(strstr(err, "--channel") != NULL);
	CHECK(strstr(err, "bad-name") != NULL);
	cb_config_release(&cfg);
	CHECK_INT(load(&cfg, err, sizeof(err), "--channel",
		       "abcdefghijklmnopqrstuvwxyz", NULL),
		  CB_E_CONFIG);
	CHECK(strstr(err, "longer than 25") != NULL);
	cb_config_release(&cfg);
}

static void env_holds_comma_separated_channels(void)
{
	struct cb_config cfg;
	char err[256];

	clear_env();
	setenv("TWITCH_CHANNEL", " a, #B ,c_3,", 1);
	CHECK_INT(load(&cfg, err, sizeof(err), NULL), 0);
	CHECK_INT(cfg.channel.n, 3);
	CHECK_STR(cfg.channel.v[1], "b");
	CHECK_INT(cfg.src[CB_OPT_channel], CB_SRC_ENV);
	CHECK_STR(cfg.src_where[CB_OPT_channel], "$TWITCH_CHANNEL");
	cb_config_release(&cfg);
	clear_env();
}

static void precedence_flag_env_file_default(void)
{
	struct cb_config cfg;
	char err[256];
	const char *path = write_conf("# comment\n"
				      "window_size = 120\n"
				      "port = 4000\n"
				      "log_level = debug\n");

	clear_env();
	CHECK(path != NULL);
	setenv("PORT", "5000", 1);
	setenv("WINDOW_SIZE_SECONDS", "300", 1);
	CHECK_INT(load(&cfg, err, sizeof(err), "--config", path,
		       "--window-size", "60", NULL),
		  0);
	CHECK_INT(cfg.window_size, 60);           /* flag beats env and file */
	CHECK_INT(cfg.port, 5000);                /* env beats file */
	CHECK_STR(cfg.log_level, "debug");        /* file beats default */
	CHECK_INT(cfg.window_grace, 60);          /* default */
	CHECK_INT(cfg.src[CB_OPT_window_size], CB_SRC_FLAG);
	CHECK_INT(cfg.src[CB_OPT_port], CB_SRC_ENV);
	CHECK_INT(cfg.src[CB_OPT_log_level], CB_SRC_FILE);
	CHECK(strstr(cfg.src_where[CB_OPT_log_level], ":4") != NULL);
	cb_config_release(&cfg);
	clear_env();
	unlink(path);
}

static void env_alias_is_read(void)
{
	struct cb_config cfg;
	char err[256];

	clear_env();
	setenv("KAFKA_BROKERS", "k1:9092,k2:9092", 1);
	CHECK_INT(load(&cfg, err, sizeof(err), NULL), 0);
	CHECK_STR(cfg.kafka_brokers, "k1:9092,k2:9092");
	cb_config_release(&cfg);
	setenv("KAFKA_BOOTSTRAP_SERVERS", "main:9092", 1);
	CHECK_INT(load(&cfg, err, sizeof(err), NULL), 0);
	CHECK_STR(cfg.kafka_brokers, "main:9092");
	cb_config_release(&cfg);
	clear_env();
}

static void file_error_names_file_line_and_setting(void)
{
	struct cb_config cfg;
	char err[256], want[128];
	const char *path = write_conf("channel = foo\n\n"
				      "window_size = 5\n");

	clear_env();
	CHECK_INT(load(&cfg, err, sizeof(err), "--config", path, NULL),
		  CB_E_CONFIG);
	snprintf(want, sizeof(want), "%s:3: window_size: must be 10..86400",
		 path);
	CHECK_STR(err, want);
	cb_config_release(&cfg);

	write_conf("no_such_setting = 1\n");
	CHECK_INT(load(&cfg, err, sizeof(err), "--config", path, NULL),
		  CB_E_CONFIG);
	CHECK(strstr(err, ":1: no_such_setting: unknown setting") != NULL);
	cb_config_release(&cfg);

	write_conf("window_size\n");
	CHECK_INT(load(&cfg, err, sizeof(err), "--config", path, NULL),
		  CB_E_CONFIG);
	CHECK(strstr(err, ":1: expected \"name = value\"") != NULL);
	cb_config_release(&cfg);
	unlink(path);
}

static void env_and_flag_errors_name_their_source(void)
{
	struct cb_config cfg;
	char err[256];

	clear_env();
	setenv("WINDOW_SIZE_SECONDS", "ten", 1);
	CHECK_INT(load(&cfg, err, sizeof(err), NULL), CB_E_CONFIG);
	CHECK_STR(err, "environment WINDOW_SIZE_SECONDS: window_size: \"ten\" "
		       "is not an integer");
	cb_config_release(&cfg);
	clear_env();
	CHECK_INT(load(&cfg, err, sizeof(err), "--port", "70000", NULL),
		  CB_E_CONFIG);
	CHECK_STR(err, "command line --port: port: must be 0..65535");
	cb_config_release(&cfg);
	CHECK_INT(load(&cfg, err, sizeof(err), "--no-such-flag", NULL),
		  CB_E_CONFIG);
	CHECK(strstr(err, "--no-such-flag") != NULL);
	cb_config_release(&cfg);
	CHECK_INT(load(&cfg, err, sizeof(err), "--log-level", "loud", NULL),
		  CB_E_CONFIG);
	CHECK(strstr(err, "error|warn|info|debug") != NULL);
	cb_config_release(&cfg);
}

static void bools_accept_flag_forms(void)
{
	struct cb_config cfg;
	char err[256];

	clear_env();
	CHECK_INT(load(&cfg, err, sizeof(err), "--no-irc-tls", NULL), 0);
	CHECK(!cfg.irc_tls);
	cb_config_release(&cfg);
	CHECK_INT(load(&cfg, err, sizeof(err), "--cassandra-tls", NULL), 0);
	CHECK(cfg.cassandra_tls);
	cb_config_release(&cfg);
	CHECK_INT(load(&cfg, err, sizeof(err), "--irc-tls=off", NULL), 0);
	CHECK(!cfg.irc_tls);
	cb_config_release(&cfg);
}

static void subcommand_and_arguments(void)
{
	struct cb_config cfg;
	char err[256];

	clear_env();
	CHECK_INT(load(&cfg, err, sizeof(err), "history", "--channel", "x",
		       "--limit", "5", "extra", NULL),
		  0);
	CHECK_STR(cfg.command, "history");
	CHECK_INT(cfg.history_limit, 5);
	CHECK_INT(cfg.nargs, 1);
	CHECK_STR(cfg.args[0], "extra");
	cb_config_release(&cfg);
}

static void lists_kv_and_hosts(void)
{
	struct cb_config cfg;
	char err[256];

	clear_env();
	setenv("CHATBATTLE_KAFKA_OPTS", "acks=all;linger.ms=9", 1);
	CHECK_INT(load(&cfg, err, sizeof(err), "--cassandra-hosts",
		       "a.example:9043, 10.0.0.2,[::1]:9042", NULL),
		  0);
	CHECK_INT(cfg.kafka_opt.n, 2);
	CHECK_STR(cfg.kafka_opt.v[1], "linger.ms=9");
	CHECK_INT(cfg.cassandra_hosts.n, 3);
	CHECK_STR(cfg.cassandra_hosts.v[2], "[::1]:9042");
	cb_config_release(&cfg);
	CHECK_INT(load(&cfg, err, sizeof(err), "--kafka-opt", "novalue",
		       NULL),
		  CB_E_CONFIG);
	cb_config_release(&cfg);
	CHECK_INT(load(&cfg, err, sizeof(err), "--cassandra-hosts", "h:0",
		       NULL),
		  CB_E_CONFIG);
	cb_config_release(&cfg);
	clear_env();
}

static void set_type_checks_choices(void)
{
	struct cb_config cfg;
	char err[256];

	clear_env();
	CHECK_INT(load(&cfg, err, sizeof(err), "--roles", "serve, ingest",
		       NULL),
		  0);
	CHECK_INT(cfg.roles.n, 2);
	CHECK(cb_strlist_has(&cfg.roles, "serve"));
	CHECK(!cb_strlist_has(&cfg.roles, "aggregate"));
	cb_config_release(&cfg);
	CHECK_INT(load(&cfg, err, sizeof(err), "--roles", "ingest,cook", NULL),
		  CB_E_CONFIG);
	CHECK_STR(err, "command line --roles: roles: \"cook\" is not one of "
		       "ingest|aggregate|serve");
	cb_config_release(&cfg);
}

static void print_config_masks_secrets(void)
{
	struct cb_config cfg;
	char err[256], out[65536];
	FILE *f = fmemopen(out, sizeof(out), "w");

	clear_env();
	CHECK(f != NULL);
	setenv("TWITCH_OAUTH_TOKEN", "oauth:verysecret123", 1);
	CHECK_INT(load(&cfg, err, sizeof(err), "--channel", "Foo", NULL), 0);
	cb_config_print(&cfg, f);
	fclose(f);
	CHECK(strstr(out, "verysecret123") == NULL);
	CHECK(strstr(out, "twitch_oauth_token = ********    # env "
			  "$TWITCH_OAUTH_TOKEN") != NULL);
	CHECK(strstr(out, "channel = foo    # flag --channel") != NULL);
	CHECK(strstr(out, "window_size = 600    # default") != NULL);
	cb_config_release(&cfg);
	clear_env();
}

/* Regression: kafka_opt values such as sasl.password were printed. */
static void print_config_masks_secret_kafka_opts(void)
{
	struct cb_config cfg;
	char err[256], out[65536];
	FILE *f = fmemopen(out, sizeof(out), "w");

	clear_env();
	CHECK(f != NULL);
	CHECK_INT(load(&cfg, err, sizeof(err), "--channel", "foo", "--kafka-opt",
		       "sasl.password=hunter2;linger.ms=3;ssl.key.password=k3y",
		       NULL),
		  0);
	cb_config_print(&cfg, f);
	fclose(f);
	CHECK(strstr(out, "hunter2") == NULL);
	CHECK(strstr(out, "k3y") == NULL);
	CHECK(strstr(out, "kafka_opt = sasl.password=********; linger.ms=3; "
			  "ssl.key.password=********") != NULL);
	CHECK(cb_config_key_is_secret("sasl.password", 13));
	CHECK(!cb_config_key_is_secret("linger.ms", 9));
	cb_config_release(&cfg);
	clear_env();
}

static void print_config_output_reads_back(void)
{
	struct cb_config a, b;
	char err[256];
	FILE *f;

	clear_env();
	CHECK_INT(load(&a, err, sizeof(err), "--channel", "x,y", "--cors-origin",
		       "http://a.example#frag", "--kafka-opt", "a=1;b=2",
		       "--spike-threshold", "2.5", NULL),
		  0);
	snprintf(tmpfile_path, sizeof(tmpfile_path), "/tmp/cbconf.%d",
		 (int)getpid());
	f = fopen(tmpfile_path, "w");
	CHECK(f != NULL);
	cb_config_print(&a, f);
	fclose(f);
	CHECK_INT(load(&b, err, sizeof(err), "--config", tmpfile_path, NULL),
		  0);
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		char va[4096], vb[4096];

		cb_config_format(&a, (enum cb_opt_id)i, va, sizeof(va));
		cb_config_format(&b, (enum cb_opt_id)i, vb, sizeof(vb));
		if (cb_options[i].type != CB_OT_SECRET)
			CHECK_STR(vb, va);
	}
	cb_config_release(&a);
	cb_config_release(&b);
	unlink(tmpfile_path);
}

int main(void)
{
	RUN(every_default_parses);
	RUN(table_rows_are_well_formed);
	RUN(channel_flag_normalizes_and_repeats);
	RUN(bad_channel_names_are_refused);
	RUN(env_holds_comma_separated_channels);
	RUN(precedence_flag_env_file_default);
	RUN(env_alias_is_read);
	RUN(file_error_names_file_line_and_setting);
	RUN(env_and_flag_errors_name_their_source);
	RUN(bools_accept_flag_forms);
	RUN(subcommand_and_arguments);
	RUN(lists_kv_and_hosts);
	RUN(set_type_checks_choices);
	RUN(print_config_masks_secrets);
	RUN(print_config_masks_secret_kafka_opts);
	RUN(print_config_output_reads_back);
	return test_done();
}
