/* db: the sqlite database: opening, pragmas, migrations, and refusing corrupt files */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db-migrations.h"
#include "db/db.h"

/* Written into every smpgw database so a foreign sqlite file is recognised. */
#define DB_APPLICATION_ID 0x534d5047 /* "SMPG" */

struct db {
	sqlite3 *sql;
	bool in_tx;
	unsigned long long writes;
};

__attribute__((format(printf, 3, 4))) static void db_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int db_errno_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return -EBADMSG;
	case SQLITE_PERM:
	case SQLITE_READONLY:
	case SQLITE_AUTH: return -EACCES;
	case SQLITE_CANTOPEN: return -ENOENT;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return -EBUSY;
	default: return -EIO;
	}
}

static int db_pragma_int(sqlite3 *sql, const char *pragma, int *ret)
{
	sqlite3_stmt *st = NULL;
	char q[64];
	int rc;

	snprintf(q, sizeof(q), "PRAGMA %s", pragma);
	rc = sqlite3_prepare_v2(sql, q, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*ret = sqlite3_column_int(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

static int db_exec(struct db *db, const char *sql, char *err, size_t errlen, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db->sql, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		db_errf(err, errlen, "%s: %s", what, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return db_errno_of(rc);
	}
	return 0;
}

/* quick_check reads every page: a damaged file is refused at start rather than
 * failing later in the middle of a rollout. */
static int db_check_health(struct db *db, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc, appid = 0, r = 0;

	rc = db_pragma_int(db->sql, "application_id", &appid);
	if (rc != SQLITE_OK) {
		db_errf(err, errlen, "%s is not a valid database: %s; move it aside to start afresh",
			path, sqlite3_errstr(rc));
		return db_errno_of(rc) == -EIO ? -EBADMSG : db_errno_of(rc);
	}
	rc = sqlite3_prepare_v2(db->sql, "PRAGMA quick_check", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		db_errf(err, errlen, "%s is not a valid database: %s; move it aside to start afresh",
			path, sqlite3_errmsg(db->sql));
		r = -EBADMSG;
	} else if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
		db_errf(err, errlen, "%s is corrupt (%s); restore a backup or move it aside",
			path, (const char *)sqlite3_column_text(st, 0));
		/* quick_check reports one problem per line: keep the message on one line. */
		for (char *p = err; p && *p; p++)
			if (*p == '\n')
				*p = ' ';
		r = -EBADMSG;
	}
	sqlite3_finalize(st);
	if (r < 0)
		return r;
	if (appid != 0 && appid != DB_APPLICATION_ID) {
		db_errf(err, errlen, "%s belongs to another application (application_id %#x)", path,
			(unsigned)appid);
		return -EBADMSG;
	}
	if (appid == 0) {
		/* A new file, or a non-empty sqlite file that is not ours. */
		int tables = 0;

		rc = sqlite3_prepare_v2(db->sql, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
		if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
			tables = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		if (tables > 0) {
			db_errf(err, errlen, "%s is an sqlite database of another application", path);
			return -EBADMSG;
		}
	}
	return 0;
}

static int db_migrate(struct db *db, const char *path, char *err, size_t errlen)
{
	int version = 0, rc, r;

	rc = db_pragma_int(db->sql, "user_version", &version);
	if (rc != SQLITE_OK) {
		db_errf(err, errlen, "%s: reading the schema version: %s", path, sqlite3_errstr(rc));
		return db_errno_of(rc);
	}
	if (version < 0 || (unsigned)version > db_schema_latest()) {
		db_errf(err, errlen,
			"%s has schema version %d, newer than this smpgwd knows (%u): upgrade smpgwd",
			path, version, db_schema_latest());
		return -EPROTO;
	}
	for (unsigned i = 0; i < db_migrations_count; i++) {
		const struct db_migration *m = &db_migrations[i];
		char what[128], setv[96];

		if (m->version <= (unsigned)version)
			continue;
		snprintf(what, sizeof(what), "%s: migration %s", path, m->name);
		r = db_exec(db, "BEGIN IMMEDIATE", err, errlen, what);
		if (r < 0)
			return r;
		snprintf(setv, sizeof(setv), "PRAGMA user_version = %u; PRAGMA application_id = %d;",
			 m->version, DB_APPLICATION_ID);
		r = db_exec(db, m->sql, err, errlen, what);
		if (r == 0)
			r = db_exec(db, setv, err, errlen, what);
		if (r < 0) {
			sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
			return r;
		}
		r = db_exec(db, "COMMIT", err, errlen, what);
		if (r < 0)
			return r;
	}
	return 0;
}

int db_open(const char *path, struct db **ret, char *err, size_t errlen)
{
	struct db *db;
	int rc, r;

	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &db->sql,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		db_errf(err, errlen, "cannot open %s: %s", path,
			db->sql ? sqlite3_errmsg(db->sql) : sqlite3_errstr(rc));
		r = db_errno_of(rc);
		goto fail;
	}
	sqlite3_extended_result_codes(db->sql, 1);
	sqlite3_busy_timeout(db->sql, 5000);

	r = db_check_health(db, path, err, errlen);
	if (r < 0)
		goto fail;
	/* WAL keeps readers and the writer apart; NORMAL sync is durable across
	 * process crashes (kill -9), which is what the job queue relies on. */
	r = db_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
			"PRAGMA foreign_keys = ON;", err, errlen, path);
	if (r < 0)
		goto fail;
	r = db_migrate(db, path, err, errlen);
	if (r < 0)
		goto fail;
	*ret = db;
	return 0;
fail:
	db_close(db);
	return r;
}

struct db *db_close(struct db *db)
{
	if (db) {
		sqlite3_close_v2(db->sql);
		free(db);
	}
	return NULL;
}

int db_schema_version(struct db *db)
{
	int v = -1;

	db_pragma_int(db->sql, "user_version", &v);
	return v;
}

unsigned db_schema_latest(void)
{
	return db_migrations_count ? db_migrations[db_migrations_count - 1].version : 0;
}

sqlite3 *db_handle(struct db *db)
{
	return db->sql;
}

int db_begin(struct db *db)
{
	int rc;

	if (db->in_tx)
		return -EBUSY;
	rc = sqlite3_exec(db->sql, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_errno_of(rc);
	db->in_tx = true;
	return 0;
}

int db_commit(struct db *db)
{
	int rc;

	if (!db->in_tx)
		return -EINVAL;
	rc = sqlite3_exec(db->sql, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_errno_of(rc);
	db->in_tx = false;
	return 0;
}

int db_rollback(struct db *db)
{
	if (!db->in_tx)
		return -EINVAL;
	sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
	db->in_tx = false;
	return 0;
}

unsigned long long db_write_count(struct db *db)
{
	return db->writes;
}

void db_count_write(struct db *db)
{
	db->writes++;
}
