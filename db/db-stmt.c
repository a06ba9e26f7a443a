/* db-stmt: prepared statements kept by a data-access module, and the helpers its queries share */
#include <errno.h>
#include <stdlib.h>

#include "db/db-stmt.h"
#include "db/db.h"

struct db_stmts {
	struct db *db;
	const char *const *sql;
	size_t n;
	sqlite3_stmt *st[];
};

int db_stmts_new(struct db *db, const char *const *sql, size_t n, struct db_stmts **ret)
{
	struct db_stmts *s;

	if (!db || !sql)
		return -EINVAL;
	s = calloc(1, sizeof(*s) + n * sizeof(s->st[0]));
	if (!s)
		return -ENOMEM;
	s->db = db;
	s->sql = sql;
	s->n = n;
	*ret = s;
	return 0;
}

struct db_stmts *db_stmts_free(struct db_stmts *s)
{
	if (s) {
		for (size_t i = 0; i < s->n; i++)
			sqlite3_finalize(s->st[i]);
		free(s);
	}
	return NULL;
}

struct db *db_stmts_db(struct db_stmts *s)
{
	return s->db;
}

int db_stmt_errno(int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_CHECK:
	case SQLITE_CONSTRAINT_NOTNULL: return -EINVAL;
	}
	switch (rc & 0xff) {
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_CONSTRAINT: return -EEXIST;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return -EBADMSG;
	case SQLITE_PERM:
	case SQLITE_READONLY:
	case SQLITE_AUTH: return -EACCES;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return -EBUSY;
	default: return -EIO;
	}
}

int db_stmts_get(struct db_stmts *s, size_t which, sqlite3_stmt **ret)
{
	int rc;

	if (which >= s->n)
		return -EINVAL;
	if (!s->st[which]) {
		rc = sqlite3_prepare_v3(db_handle(s->db), s->sql[which], -1, SQLITE_PREPARE_PERSISTENT,
					&s->st[which], NULL);
		if (rc != SQLITE_OK)
			return db_stmt_errno(rc);
	}
	*ret = s->st[which];
	return 0;
}

void db_stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int db_stmt_write(struct db_stmts *s, sqlite3_stmt *st, int bind_rc)
{
	int rc = bind_rc;

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			db_count_write(s->db);
	}
	db_stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_stmt_errno(rc == SQLITE_ROW ? SQLITE_MISUSE : rc);
	return sqlite3_changes(db_handle(s->db));
}

int db_stmt_step(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	db_stmt_done(st);
	return rc == SQLITE_DONE ? 0 : db_stmt_errno(rc);
}

const char *db_column_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? s : "";
}

int db_bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

int db_bind_time_or_null(sqlite3_stmt *st, int i, uint64_t ms)
{
	return ms ? sqlite3_bind_int64(st, i, (sqlite3_int64)ms) : sqlite3_bind_null(st, i);
}

uint64_t db_column_u64(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	return v > 0 ? (uint64_t)v : 0;
}
