/*
 * test_cmd_init.c - the pure parts of `chatbattle init`: the topics/ file
 * parser (values, and errors naming file:line), the CQL statement splitter
 * (';' inside literals, quoted identifiers and comments, line numbers,
 * unterminated input), and the keyspace/replication rewrite; plus the
 * repository's own topics/ and cql/ files through them.
 */
#include <dirent.h>

#include "chatbattle/cmd.h"
#include "chatbattle/err.h"
#include "test.h"

static struct cb_topic_def def;
static char errstr[512];

static int parse(const char *text)
{
	errstr[0] = '\0';
	return cb_cmd_init_parse_topic(text, strlen(text), "t.conf", &def,
				       errstr, sizeof(errstr));
}

static void topic_file_values(void)
{
	CHECK_INT(parse("# a comment\n"
			"\n"
			"   # indented comment\n"
			"name = my.topic-1_x\n"
			"partitions=12\r\n"
			"\treplication_factor   =  3  \n"
			"config.cleanup.policy = compact,delete\n"
			"config.min.cleanable.dirty.ratio = 0.1\n"
			"config.message.format = a # not a comment\n"),
		  0);
	CHECK_STR(def.name, "my.topic-1_x");
	CHECK_INT(def.partitions, 12);
	CHECK_INT(def.replication_factor, 3);
	CHECK_INT(def.nconfigs, 3);
	CHECK_STR(def.configs[0].key, "cleanup.policy");
	CHECK_STR(def.configs[0].value, "compact,delete");
	CHECK_INT(def.configs[0].line, 7);
	CHECK_STR(def.configs[1].key, "min.cleanable.dirty.ratio");
	CHECK_STR(def.configs[1].value, "0.1");
	CHECK_STR(def.configs[2].value, "a # not a comment");
	/* no newline at the end of the last line */
	CHECK_INT(parse("name = a\npartitions = 1\nreplication_factor = 1"), 0);
	CHECK_INT(def.replication_factor, 1);
	CHECK_INT(def.nconfigs, 0);
}

/* Each bad input fails with CB_E_PARSE and a message naming t.conf and
 * the line (when there is one) and the problem. */
static void topic_file_errors(void)
{
	static const struct {
		const char *text, *where, *what;
	} cases[] = {
		{"name = a\npartitions 3\n", "t.conf:2:", "expected 'key = value'"},
		{"name = a\n\npartitions =\n", "t.conf:3:", "expected 'key = value'"},
		{"= 3\n", "t.conf:1:", "expected 'key = value'"},
		{"name = a\nfoo = 1\n", "t.conf:2:", "unknown key 'foo'"},
		{"name = a\nconfig. = 1\n", "t.conf:2:", "unknown key 'config.'"},
		{"name = a\nname = b\n", "t.conf:2:", "given twice (first on line 1)"},
		{"name = a\npartitions = 1\npartitions = 2\n", "t.conf:3:",
		 "given twice (first on line 2)"},
		{"config.x = 1\nconfig.x = 2\n", "t.conf:2:",
		 "given twice (first on line 1)"},
		{"name = a b\n", "t.conf:1:", "not a Kafka topic name"},
		{"name = a/b\n", "t.conf:1:", "not a Kafka topic name"},
		{"name = ..\n", "t.conf:1:", "not a Kafka topic name"},
		{"name = a\npartitions = 0\n", "t.conf:2:", "positive number"},
		{"name = a\npartitions = 3x\n", "t.conf:2:", "positive number"},
		{"name = a\npartitions = -1\n", "t.conf:2:", "positive number"},
		{"name = a\nreplication_factor = 99999\n", "t.conf:2:",
		 "positive number"},
		{"partitions = 1\nreplication_factor = 1\n", "t.conf:", "no 'name"},
		{"name = a\nreplication_factor = 1\n", "t.conf:", "no 'partitions"},
		{"name = a\npartitions = 1\n", "t.conf:", "no 'replication_factor"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = parse(cases[i].text);

		if (rc != CB_E_PARSE || strstr(errstr, cases[i].where) != errstr ||
		    strstr(errstr, cases[i].what) == NULL) {
			printf("# case %zu: rc %d, errstr \"%s\"\n", i, rc,
			       errstr);
			CHECK(0);
		}
	}
	/* a NUL inside a line is not text */
	CHECK_INT(cb_cmd_init_parse_topic("name = a\0b\n", 11, "t.conf", &def,
					  errstr, sizeof(errstr)),
		  CB_E_PARSE);
	CHECK(strstr(errstr, "t.conf:1:") == errstr);
}

static void topic_file_caps(void)
{
	static char text[CB_TOPIC_CONFIGS_MAX * 32 + 4096];
	size_t o = 0;

	o += (size_t)snprintf(text + o, sizeof(text) - o,
			      "name = a\npartitions = 1\n"
			      "replication_factor = 1\n");
	for (int i = 0; i <= CB_TOPIC_CONFIGS_MAX; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o,
				      "config.k%d = v\n", i);
	CHECK_INT(parse(text), CB_E_PARSE);
	CHECK(strstr(errstr, "too many or too long") != NULL);
	/* the 65th config is on line 3 + 65 */
	CHECK(strstr(errstr, "t.conf:68:") == errstr);
	memset(text, 'x', 300);
	memcpy(text, "name = ", 7);
	text[300] = '\n';
	text[301] = '\0';
	CHECK_INT(parse(text), CB_E_PARSE); /* a 293-byte topic name */
}

/*
 * Calls fn for each file of the repository's directory sub whose name ends
 * in suffix, with its text (at most CB_CQL_FILE_MAX bytes); returns how
 * many there were, or -1 when the directory cannot be read.
 */
static int each_repo_file(const char *sub, const char *suffix,
			  void (*fn)(const char *name, const char *text,
				     size_t len))
{
	static char text[CB_CQL_FILE_MAX];
	char dir[1024], path[2048];
	size_t slen = strlen(suffix);
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", t_root(), sub);
	d = opendir(dir);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name), got;
		FILE *f;

		if (len <= slen || strcmp(e->d_name + len - slen, suffix) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		got = fread(text, 1, sizeof(text), f);
		fclose(f);
		fn(e->d_name, text, got);
		n++;
	}
	closedir(d);
	return n;
}

static int repo_errors;

static void one_topic_file(const char *name, const char *text, size_t len)
{
	if (cb_cmd_init_parse_topic(text, len, name, &def, errstr,
				    sizeof(errstr)) != 0) {
		printf("# %s\n", errstr);
		repo_errors++;
	} else if (strlen(def.name) != strlen(name) - 5 ||
		   memcmp(def.name, name, strlen(name) - 5) != 0) {
		printf("# %s names topic %s\n", name, def.name);
		repo_errors++;
	}
}

/* Every repository topics/ file parses and names the topic its file name
 * says (the convention init's default-topic mapping relies on). */
static void repo_topic_files(void)
{
	repo_errors = 0;
	CHECK(each_repo_file("topics", ".conf", one_topic_file) >= 3);
	CHECK_INT(repo_errors, 0);
}

/* ---- the splitter ---- */

static struct cb_cql_script script;

static int split(const char *text)
{
	cb_cmd_init_script_release(&script);
	errstr[0] = '\0';
	return cb_cmd_init_split_cql(text, strlen(text), "s.cql", &script,
				     errstr, sizeof(errstr));
}

static void split_statements(void)
{
	CHECK_INT(split("CREATE A;\n\n  CREATE B ;\nSELECT 1"), 0);
	CHECK_INT(script.n, 3);
	CHECK_STR(script.v[0].text, "CREATE A");
	CHECK_INT(script.v[0].line, 1);
	CHECK_STR(script.v[1].text, "CREATE B");
	CHECK_INT(script.v[1].line, 3);
	CHECK_STR(script.v[2].text, "SELECT 1");
	CHECK_INT(script.v[2].line, 4);
	CHECK_INT(script.v[2].len, 8);
	/* empty statements and blank input */
	CHECK_INT(split(";; ;\n;"), 0);
	CHECK_INT(script.n, 0);
	CHECK_INT(split(""), 0);
	CHECK_INT(script.n, 0);
}

static void split_respects_literals(void)
{
	CHECK_INT(split("INSERT INTO t (a) VALUES ('x;y');"
			"INSERT INTO t (a) VALUES ('it''s; fine');"
			"SELECT \"we;ird\"\"col\" FROM t;"
			"CREATE FUNCTION f() RETURNS text LANGUAGE java AS "
			"$$ return \"a;b\"; $$;"),
		  0);
	CHECK_INT(script.n, 4);
	CHECK_STR(script.v[0].text, "INSERT INTO t (a) VALUES ('x;y')");
	CHECK_STR(script.v[1].text, "INSERT INTO t (a) VALUES ('it''s; fine')");
	CHECK_STR(script.v[2].text, "SELECT \"we;ird\"\"col\" FROM t");
	CHECK_STR(script.v[3].text, "CREATE FUNCTION f() RETURNS text "
				    "LANGUAGE java AS $$ return \"a;b\"; $$");
	/* comment markers inside a literal are text */
	CHECK_INT(split("SELECT '--x;' FROM t; SELECT '/*' FROM u;"), 0);
	CHECK_INT(script.n, 2);
	CHECK_STR(script.v[0].text, "SELECT '--x;' FROM t");
	CHECK_STR(script.v[1].text, "SELECT '/*' FROM u");
}

static void split_drops_comments(void)
{
	CHECK_INT(split("-- header; with a semicolon\n"
			"// another; one\n"
			"CREATE A -- trailing; comment\n"
			"  WITH x = 1; /* block; comment\n"
			"spanning; lines */ CREATE B /* inline */ WITH y;\n"
			"-- the end;"),
		  0);
	CHECK_INT(script.n, 2);
	CHECK_STR(script.v[0].text, "CREATE A  \n  WITH x = 1");
	CHECK_INT(script.v[0].line, 3);
	CHECK(strstr(script.v[1].text, "block") == NULL);
	CHECK(strstr(script.v[1].text, "inline") == NULL);
	CHECK(strstr(script.v[1].text, "CREATE B") != NULL);
	/* the block comment's newline is kept: B starts on line 5 */
	CHECK_INT(script.v[1].line, 5);
	CHECK_INT(split("SELECT 1 -- no newline at the end"), 0);
	CHECK_INT(script.n, 1);
	CHECK_STR(script.v[0].text, "SELECT 1");
}

static void split_errors(void)
{
	CHECK_INT(split("CREATE A;\nINSERT 'abc;\nmore;\n"), CB_E_PARSE);
	CHECK(strstr(errstr, "s.cql:2: unterminated string literal") == errstr);
	CHECK_INT(split("SELECT 1;\n\n/* never\nclosed;"), CB_E_PARSE);
	CHECK(strstr(errstr, "s.cql:3: unterminated comment") == errstr);
	CHECK_INT(split("SELECT \"a;"), CB_E_PARSE);
	CHECK(strstr(errstr, "s.cql:1: unterminated quoted identifier") ==
	      errstr);
	CHECK_INT(split("x\n$$ a;"), CB_E_PARSE);
	CHECK(strstr(errstr, "s.cql:2:") == errstr);
	CHECK_INT(cb_cmd_init_split_cql("A;\0B;", 5, "s.cql", &script, errstr,
					sizeof(errstr)),
		  CB_E_PARSE);
	CHECK(strstr(errstr, "NUL") != NULL);
	cb_cmd_init_script_release(&script);
	CHECK_INT(cb_cmd_init_split_cql("", CB_CQL_FILE_MAX + 1, "s.cql",
					&script, errstr, sizeof(errstr)),
		  CB_E_TOOBIG);
}

static void one_cql_file(const char *name, const char *text, size_t len)
{
	if (cb_cmd_init_split_cql(text, len, name, &script, errstr,
				  sizeof(errstr)) != 0) {
		printf("# %s\n", errstr);
		repo_errors++;
	}
}

/* The repository's cql/ files split into CREATE statements only. */
static void repo_cql_files(void)
{
	repo_errors = 0;
	cb_cmd_init_script_release(&script);
	CHECK(each_repo_file("cql", ".cql", one_cql_file) >= 2);
	CHECK_INT(repo_errors, 0);
	CHECK(script.n >= 2);
	for (size_t i = 0; i < script.n; i++) {
		if (strncmp(script.v[i].text, "CREATE ", 7) != 0 ||
		    strstr(script.v[i].text, "IF NOT EXISTS") == NULL ||
		    strstr(script.v[i].text, "--") != NULL) {
			printf("# statement %zu: %s\n", i, script.v[i].text);
			CHECK(0);
		}
	}
	cb_cmd_init_script_release(&script);
}

/* ---- the rewrite ---- */

static char *out;

static int rewrite(const char *stmt, const char *repl)
{
	free(out);
	out = NULL;
	errstr[0] = '\0';
	return cb_cmd_init_rewrite_cql(stmt, "twitch_chat", "ks_1", repl,
				       &out, errstr, sizeof(errstr));
}

static void rewrite_keyspace(void)
{
	CHECK_INT(rewrite("CREATE KEYSPACE IF NOT EXISTS twitch_chat\n  WITH "
			  "replication = {'class': 'SimpleStrategy', "
			  "'replication_factor': 1}",
			  "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"),
		  0);
	CHECK_STR(out, "CREATE KEYSPACE IF NOT EXISTS ks_1\n  WITH replication "
		       "= {'class': 'NetworkTopologyStrategy', 'dc1': 3}");
	CHECK_INT(rewrite("create keyspace Twitch_Chat with REPLICATION={'a': "
			  "'}'} AND durable_writes = true",
			  "{'b': 2}"),
		  0);
	CHECK_STR(out, "create keyspace ks_1 with REPLICATION={'b': 2} AND "
		       "durable_writes = true");
	CHECK_INT(rewrite("ALTER KEYSPACE twitch_chat WITH replication = {'x': "
			  "1}",
			  "{'y': 2}"),
		  0);
	CHECK_STR(out, "ALTER KEYSPACE ks_1 WITH replication = {'y': 2}");
	/* no replication setting: the file's map stays */
	CHECK_INT(rewrite("CREATE KEYSPACE twitch_chat WITH replication = {'x': "
			  "1}",
			  ""),
		  0);
	CHECK_STR(out, "CREATE KEYSPACE ks_1 WITH replication = {'x': 1}");
	CHECK_INT(rewrite("DROP KEYSPACE IF EXISTS twitch_chat", NULL), 0);
	CHECK_STR(out, "DROP KEYSPACE IF EXISTS ks_1");
	CHECK_INT(rewrite("USE twitch_chat", NULL), 0);
	CHECK_STR(out, "USE ks_1");
}

static void rewrite_tables(void)
{
	CHECK_INT(rewrite("CREATE TABLE IF NOT EXISTS twitch_chat.raw_chat_messages "
			  "(channel_id text, twitch_chat text, PRIMARY KEY "
			  "(channel_id)) WITH comment = 'twitch_chat.x' AND "
			  "compaction = {'class': 'TWCS'}",
			  "{'class': 'SimpleStrategy'}"),
		  0);
	/* the column named twitch_chat, the string and the table's maps
	 * stay */
	CHECK_STR(out, "CREATE TABLE IF NOT EXISTS ks_1.raw_chat_messages "
		       "(channel_id text, twitch_chat text, PRIMARY KEY "
		       "(channel_id)) WITH comment = 'twitch_chat.x' AND "
		       "compaction = {'class': 'TWCS'}");
	CHECK_INT(rewrite("SELECT * FROM TWITCH_CHAT . t, \"twitch_chat\".u, "
			  "twitch_chat_old.v, \"Twitch_chat\".w",
			  NULL),
		  0);
	CHECK_STR(out, "SELECT * FROM ks_1 . t, ks_1.u, twitch_chat_old.v, "
		       "\"Twitch_chat\".w");
	CHECK_INT(rewrite("INSERT INTO twitch_chat.t (a) VALUES ($$twitch_chat."
			  "t$$)",
			  NULL),
		  0);
	CHECK_STR(out, "INSERT INTO ks_1.t (a) VALUES ($$twitch_chat.t$$)");
}

static void rewrite_bad_replication(void)
{
	static const char *const bad[] = {
		"SimpleStrategy", "{'a': 1", "{'a': 1}; DROP KEYSPACE x",
		"{'a': 1} {'b': 2}", "{'a': '}", "   ",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (rewrite("CREATE KEYSPACE twitch_chat WITH replication = "
			    "{'x': 1}",
			    bad[i]) != CB_E_CONFIG ||
		    out != NULL ||
		    strstr(errstr, "cassandra_replication") == NULL) {
			printf("# accepted \"%s\": %s\n", bad[i],
			       out ? out : errstr);
			CHECK(0);
		}
	}
	CHECK_INT(rewrite("SELECT 1", " {'a': '{;}'} "), 0);
	CHECK_STR(out, "SELECT 1");
	free(out);
	out = NULL;
}

int main(void)
{
	RUN(topic_file_values);
	RUN(topic_file_errors);
	RUN(topic_file_caps);
	RUN(repo_topic_files);
	RUN(split_statements);
	RUN(split_respects_literals);
	RUN(split_drops_comments);
	RUN(split_errors);
	RUN(repo_cql_files);
	RUN(rewrite_keyspace);
	RUN(rewrite_tables);
	RUN(rewrite_bad_replication);
	cb_cmd_init_script_release(&script);
	free(out);
	return test_done();
}
