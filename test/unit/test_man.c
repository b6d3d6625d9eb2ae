/*
 * test_man.c - the man pages document exactly the settings of the table:
 *   chatbattle.conf.5: one ".It Cm NAME" per setting under SETTINGS, and no
 *     other;
 *   chatbattle.1: every long flag (".Fl -FLAG") under OPTIONS, and no flag
 *     the table lacks; every environment variable (".It Ev NAME") under
 *     ENVIRONMENT, and no setting variable the table lacks.
 * A row added to src/options.def without documentation fails here.
 */
#include <ctype.h>

#include "chatbattle/config.h"
#include "test.h"

#define MAX_ITEMS 512

struct names {
	char *v[MAX_ITEMS];
	int n;
};

static char *slurp(const char *rel)
{
	char path[1024];
	FILE *f;
	char *buf;
	long len;

	snprintf(path, sizeof(path), "%s/%s", t_root(), rel);
	f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)len + 1);
	if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Returns the text of section ".Sh NAME" up to the next ".Sh". */
static char *section(char *doc, const char *name)
{
	char head[64];
	char *start, *end;

	snprintf(head, sizeof(head), "\n.Sh %s\n", name);
	start = strstr(doc, head);
	if (start == NULL)
		return NULL;
	start += strlen(head);
	end = strstr(start, "\n.Sh ");
	if (end)
		*end = '\0';
	return start;
}

/* Collects the word after each occurrence of marker (e.g. ".It Cm "). */
static void collect(const char *text, const char *marker, struct names *out)
{
	const char *p = text;

	while ((p = strstr(p, marker)) != NULL) {
		const char *w = p + strlen(marker);
		size_t len = 0;

		while (w[len] && !isspace((unsigned char)w[len]))
			len++;
		if (out->n < MAX_ITEMS)
			out->v[out->n++] = strndup(w, len);
		p = w;
	}
}

static bool has(const struct names *ns, const char *s)
{
	for (int i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], s) == 0)
			return true;
	return false;
}

static void release(struct names *ns)
{
	for (int i = 0; i < ns->n; i++)
		free(ns->v[i]);
	ns->n = 0;
}

static void conf5_documents_exactly_the_table(void)
{
	char *doc = slurp("man/chatbattle.conf.5");
	struct names items = {0};
	char *sec;
	int missing = 0, extra = 0;

	CHECK(doc != NULL);
	sec = section(doc, "SETTINGS");
	CHECK(sec != NULL);
	collect(sec, ".It Cm ", &items);
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		if (!has(&items, cb_options[i].name)) {
			printf("# chatbattle.conf.5 lacks setting %s\n",
			       cb_options[i].name);
			missing++;
		}
	}
	for (int i = 0; i < items.n; i++) {
		if (cb_config_find(items.v[i]) < 0) {
			printf("# chatbattle.conf.5 documents %s, which the "
			       "table lacks\n",
			       items.v[i]);
			extra++;
		}
	}
	release(&items);
	free(doc);
	CHECK_INT(missing, 0);
	CHECK_INT(extra, 0);
}

static bool known_flag(const char *f)
{
	for (int i = 0; cb_config_action_flags[i] != NULL; i++)
		if (strcmp(f, cb_config_action_flags[i]) == 0)
			return true;
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		const struct cb_option_desc *d = &cb_options[i];

		if (strcmp(f, d->long_flag) == 0)
			return true;
		if (d->type == CB_OT_BOOL && strncmp(f, "no-", 3) == 0 &&
		    strcmp(f + 3, d->long_flag) == 0)
			return true;
	}
	return false;
}

static void page1_documents_every_flag(void)
{
	char *doc = slurp("man/chatbattle.1");
	struct names flags = {0};
	char *sec;
	int missing = 0, extra = 0;

	CHECK(doc != NULL);
	sec = section(doc, "OPTIONS");
	CHECK(sec != NULL);
	collect(sec, "Fl -", &flags);
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		if (!has(&flags, cb_options[i].long_flag)) {
			printf("# chatbattle.1 lacks --%s\n",
			       cb_options[i].long_flag);
			missing++;
		}
	}
	for (int i = 0; cb_config_action_flags[i] != NULL; i++)
		if (!has(&flags, cb_config_action_flags[i])) {
			printf("# chatbattle.1 lacks --%s\n",
			       cb_config_action_flags[i]);
			missing++;
		}
	for (int i = 0; i < flags.n; i++) {
		if (!known_flag(flags.v[i])) {
			printf("# chatbattle.1 documents --%s, which the table "
			       "lacks\n",
			       flags.v[i]);
			extra++;
		}
	}
	release(&flags);
	free(doc);
	CHECK_INT(missing, 0);
	CHECK_INT(extra, 0);
}

static void page1_documents_every_environment_variable(void)
{
	static const char *const others[] = {"CHATBATTLE_CONFIG",
					     "NOTIFY_SOCKET", "WATCHDOG_USEC",
					     "JOURNAL_STREAM", NULL};
	char *doc = slurp("man/chatbattle.1");
	struct names envs = {0};
	char *sec;
	int missing = 0, extra = 0;

	CHECK(doc != NULL);
	sec = section(doc, "ENVIRONMENT");
	CHECK(sec != NULL);
	collect(sec, ".It Ev ", &envs);
	for (int i = 0; i < CB_OPT_COUNT; i++) {
		const struct cb_option_desc *d = &cb_options[i];

		if (d->env && !has(&envs, d->env)) {
			printf("# chatbattle.1 lacks $%s\n", d->env);
			missing++;
		}
		if (d->env_alias && !has(&envs, d->env_alias)) {
			printf("# chatbattle.1 lacks $%s\n", d->env_alias);
			missing++;
		}
	}
	for (int i = 0; i < envs.n; i++) {
		bool ok = false;

		for (int k = 0; others[k] && !ok; k++)
			ok = strcmp(envs.v[i], others[k]) == 0;
		for (int k = 0; k < CB_OPT_COUNT && !ok; k++)
			ok = (cb_options[k].env &&
			      strcmp(envs.v[i], cb_options[k].env) == 0) ||
			     (cb_options[k].env_alias &&
			      strcmp(envs.v[i], cb_options[k].env_alias) == 0);
		if (!ok) {
			printf("# chatbattle.1 documents $%s, which no setting "
			       "reads\n",
			       envs.v[i]);
			extra++;
		}
	}
	release(&envs);
	free(doc);
	CHECK_INT(missing, 0);
	CHECK_INT(extra, 0);
}

int main(void)
{
	RUN(conf5_documents_exactly_the_table);
	RUN(page1_documents_every_flag);
	RUN(page1_documents_every_environment_variable);
	return test_done();
}
