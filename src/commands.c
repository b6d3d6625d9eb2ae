/*
 * commands.c - the table of subcommands main() dispatches to.  A module that
 * adds a subcommand declares its function in its own header and adds a row.
 */
#include <stddef.h>

#include "chatbattle/cmd.h"
#include "chatbattle/commands.h"
#include "chatbattle/irc_msg.h"
#include "chatbattle/simulate.h"

const struct cb_command cb_commands[] = {
	{"run", cb_cmd_run},
	{"irc-parse", cb_cmd_irc_parse},
	{"simulate", cb_cmd_simulate},
	{"init", cb_cmd_init},
	{"history", cb_cmd_history},
	{"check", cb_cmd_check},
	{NULL, NULL},
};
