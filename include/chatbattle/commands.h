/*
 * commands.h - the subcommands of the chatbattle binary.  Each returns the
 * process exit status (see chatbattle(1), EXIT STATUS): CB_EXIT_OK,
 * CB_EXIT_FAILURE (something outside failed: a service, the network) or
 * CB_EXIT_USAGE (bad command line or configuration).  Only main.c exits.
 */
#ifndef CHATBATTLE_COMMANDS_H
#define CHATBATTLE_COMMANDS_H

struct cb_config;

enum {
	CB_EXIT_OK = 0,
	CB_EXIT_FAILURE = 1,
	CB_EXIT_USAGE = 2,
};

/* `chatbattle run` (the default): the daemon (run.c). */
int cb_cmd_run(const struct cb_config *cfg);

/* Keeps argv so that SIGHUP can re-read the settings (run.c). */
void cb_run_save_argv(int argc, char **argv);

struct cb_command {
	const char *name;
	int (*fn)(const struct cb_config *cfg);
};

/* Every subcommand, NULL-terminated (commands.c). */
extern const struct cb_command cb_commands[];

#endif
