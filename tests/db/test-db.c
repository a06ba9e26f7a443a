/* test-db: opening, migrating an old schema forward, refusing corrupt and foreign files */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "tests/tap.h"

static char dir[] = "/tmp/smpgw-test-db-XXXXXX";

static const char *tmp_path(const char *name)
{
	static char p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static void exec_file(const char *path, const char *sql_file)
{
	sqlite3 *s;
	size_t n;
	char *sql = (char *)tap_read_file(tap_srcpath(sql_file), &n);

	sql = realloc(sql, n + 1);
	sql[n] = 0;
	if (sqlite3_open(path, &s) != SQLITE_OK || sqlite3_exec(s, sql, NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "fixture %s: %s\n", sql_file, sqlite3_errmsg(s));
		abort();
	}
	sqlite3_close(s);
	free(sql);
}

static long long query_int(struct db *db, const char *q)
{
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_prepare_v2(db_handle(db), q, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* A description of every table's columns and every index, to compare schemas. */
static char *schema_digest(sqlite3 *s)
{
	sqlite3_stmt *st;
	char *out = calloc(1, 1);
	size_t len = 0;
	const char *q =
		"SELECT m.name, p.name, p.type, p.\"notnull\", coalesce(p.dflt_value, ''), p.pk "
		"FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' "
		"UNION ALL SELECT name, tbl_name, 'index', 0, '', 0 FROM sqlite_master "
		"WHERE type = 'index' AND sql IS NOT NULL ORDER BY 1, 2";

	if (sqlite3_prepare_v2(s, q, -1, &st, NULL) != SQLITE_OK)
		abort();
	while (sqlite3_step(st) == SQLITE_ROW) {
		char line[512];
		int n = snprintf(line, sizeof(line), "%s|%s|%s|%d|%s|%d\n", sqlite3_column_text(st, 0),
				 sqlite3_column_text(st, 1), sqlite3_column_text(st, 2),
				 sqlite3_column_int(st, 3), sqlite3_column_text(st, 4),
				 sqlite3_column_int(st, 5));
		out = realloc(out, len + n + 1);
		memcpy(out + len, line, n + 1);
		len += n;
	}
	sqlite3_finalize(st);
	return out;
}

static void test_fresh_matches_schema(void)
{
	struct db *db = NULL;
	char err[256] = "";
	sqlite3 *ref;
	char *a, *b;

	is_int(db_open(tmp_path("fresh.db"), &db, err, sizeof(err)), 0, "fresh database opens");
	is_int(db_schema_version(db), db_schema_latest(), "at the latest schema version");
	ok(db_schema_latest() >= 2, "there are migrations to apply");
	is_int(query_int(db, "PRAGMA foreign_keys"), 1, "foreign keys on");
	is_int(query_int(db, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1,
	       "WAL mode");

	/* db/schema.sql must describe what the migrations produce. */
	exec_file(tmp_path("ref.db"), "db/schema.sql");
	sqlite3_open(tmp_path("ref.db"), &ref);
	a = schema_digest(db_handle(db));
	b = schema_digest(ref);
	is_str(a, b, "migrations produce db/schema.sql");
	free(a);
	free(b);
	sqlite3_close(ref);
	db_close(db);

	/* Opening again applies nothing and keeps the version. */
	is_int(db_open(tmp_path("fresh.db"), &db, err, sizeof(err)), 0, "reopens");
	is_int(db_schema_version(db), db_schema_latest(), "same version");
	db_close(db);
}

static void test_old_schema_migrates(void)
{
	struct db *db = NULL;
	char err[256] = "";

	exec_file(tmp_path("v1.db"), "tests/data/db/v1.sql");
	is_int(db_open(tmp_path("v1.db"), &db, err, sizeof(err)), 0, "version 1 database opens: %s", err);
	is_int(db_schema_version(db), db_schema_latest(), "migrated to the latest version");
	is_int(query_int(db, "SELECT count(*) FROM devices WHERE name = 'kitchen'"), 1, "device kept");
	is_int(query_int(db, "SELECT bytes_done FROM jobs WHERE id = 1"), 4096, "job progress kept");
	is_int(query_int(db, "SELECT count(*) FROM job_events"), 1, "job events kept");
	is_int(query_int(db, "SELECT count(*) FROM rollouts WHERE auto_update_id IS NULL"), 1,
	       "new column added with its default");
	is_int(query_int(db, "SELECT count(*) FROM auto_updates"), 0, "new table exists");
	/* The one-active-job-per-device rule survives. */
	ok(sqlite3_exec(db_handle(db), "INSERT INTO rollouts (id, firmware, state, created_at, updated_at) "
			"VALUES (2, '0ceb96b2ff430917b1effcbff4a5158545a4507ee40aecadcd9959a3f85e3e43', "
			"'running', 0, 0); INSERT INTO jobs (rollout_id, device_id, state, created_at, "
			"updated_at) VALUES (2, 'udp-127-0-0-1-1337', 'queued', 0, 0)",
			NULL, NULL, NULL) != SQLITE_OK,
	   "a second active job for a device is refused");
	ok(sqlite3_exec(db_handle(db), "DELETE FROM firmware", NULL, NULL, NULL) != SQLITE_OK,
	   "firmware in use by a rollout cannot be deleted");
	db_close(db);
}

static void write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, n) != (ssize_t)n)
		abort();
	close(fd);
}

static void test_refusals(void)
{
	struct db *db = NULL;
	char err[256] = "";
	char junk[8192];
	sqlite3 *s;
	int fd;

	memset(junk, 'x', sizeof(junk));
	write_file(tmp_path("junk.db"), junk, sizeof(junk));
	is_int(db_open(tmp_path("junk.db"), &db, err, sizeof(err)), -EBADMSG, "a non-database file is refused");
	ok(strstr(err, "not a valid database") != NULL, "with a clear message: %s", err);

	/* A real smpgw database with a damaged page. */
	is_int(db_open(tmp_path("damaged.db"), &db, err, sizeof(err)), 0, "create a database to damage");
	for (int i = 0; i < 300; i++) {
		char q[256];

		snprintf(q, sizeof(q), "INSERT INTO devices (id, identity, transport, address, source, "
			 "created_at, updated_at) VALUES ('d%d', 'udp:h:%d', 'udp', 'h', 'api', 0, 0)", i, i);
		sqlite3_exec(db_handle(db), q, NULL, NULL, NULL);
	}
	sqlite3_exec(db_handle(db), "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE",
		     NULL, NULL, NULL);
	db_close(db);
	fd = open(tmp_path("damaged.db"), O_WRONLY);
	ok(fd >= 0 && pwrite(fd, junk, 8192, 4096) == 8192, "damage pages 2 and 3");
	close(fd);
	is_int(db_open(tmp_path("damaged.db"), &db, err, sizeof(err)), -EBADMSG, "a damaged database is refused");
	ok(strstr(err, "corrupt") || strstr(err, "not a valid"), "with a clear message: %s", err);

	/* Someone else's sqlite database. */
	sqlite3_open(tmp_path("foreign.db"), &s);
	sqlite3_exec(s, "CREATE TABLE t (x); INSERT INTO t VALUES (1)", NULL, NULL, NULL);
	sqlite3_close(s);
	is_int(db_open(tmp_path("foreign.db"), &db, err, sizeof(err)), -EBADMSG, "a foreign database is refused");
	ok(strstr(err, "another application") != NULL, "says whose: %s", err);

	/* A newer schema than this program knows. */
	sqlite3_open(tmp_path("future.db"), &s);
	sqlite3_exec(s, "PRAGMA application_id = 1397575751; PRAGMA user_version = 9999; CREATE TABLE t (x)",
		     NULL, NULL, NULL);
	sqlite3_close(s);
	is_int(db_open(tmp_path("future.db"), &db, err, sizeof(err)), -EPROTO, "a newer schema is refused");
	ok(strstr(err, "upgrade smpgwd") != NULL, "says what to do: %s", err);

	is_int(db_open("/nonexistent-dir/x.db", &db, err, sizeof(err)) < 0, 1, "an unreachable path fails");
}

int main(void)
{
	if (!mkdtemp(dir))
		abort();
	test_fresh_matches_schema();
	test_old_schema_migrates();
	test_refusals();
	if (fork() == 0)
		execlp("rm", "rm", "-rf", dir, (char *)NULL);
	return tap_done();
}
