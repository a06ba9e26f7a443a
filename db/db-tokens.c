/* db-tokens: the tokens table: API bearer tokens as hashes, their roles, use and revocation */
#include <errno.h>
#include <stdlib.h>

#include "db/db-tokens.h"
#include "db/db.h"

enum db_tokens_stmt {
	STMT_INSERT,
	STMT_LOAD,
	STMT_FIND_HASH,
	STMT_REVOKE,
	STMT_REVOKED_AT,
	STMT_TOUCH,
	_STMT_MAX,
};

#define DB_TOKENS_COLUMNS "id, name, role, hash, created_at, last_used_at, revoked_at"

static const char *const db_tokens_sql[_STMT_MAX] = {
	[STMT_INSERT] = "INSERT INTO tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
	[STMT_LOAD] = "SELECT " DB_TOKENS_COLUMNS " FROM tokens ORDER BY id",
	[STMT_FIND_HASH] = "SELECT " DB_TOKENS_COLUMNS " FROM tokens WHERE hash = ?1",
	[STMT_REVOKE] = "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
	[STMT_REVOKED_AT] = "SELECT revoked_at FROM tokens WHERE name = ?1",
	[STMT_TOUCH] = "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1",
};

struct db_tokens {
	struct db *db;
	sqlite3_stmt *stmt[_STMT_MAX];
};

static int db_tokens_errno(int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return -EEXIST;
	case SQLITE_CONSTRAINT_CHECK:
	case SQLITE_CONSTRAINT_NOTNULL:
		return -EINVAL;
	}
	switch (rc & 0xff) {
	case SQLITE_NOMEM: return -ENOMEM;
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

int db_tokens_new(struct db *db, struct db_tokens **ret)
{
	struct db_tokens *dt;

	if (!db)
		return -EINVAL;
	dt = calloc(1, sizeof(*dt));
	if (!dt)
		return -ENOMEM;
	dt->db = db;
	*ret = dt;
	return 0;
}

struct db_tokens *db_tokens_free(struct db_tokens *dt)
{
	if (dt) {
		for (size_t i = 0; i < _STMT_MAX; i++)
			sqlite3_finalize(dt->stmt[i]);
		free(dt);
	}
	return NULL;
}

/* The statement, prepared the first time it is needed and reset after every use. */
static int db_tokens_stmt(struct db_tokens *dt, enum db_tokens_stmt which, sqlite3_stmt **ret)
{
	int rc;

	if (!dt->stmt[which]) {
		rc = sqlite3_prepare_v3(db_handle(dt->db), db_tokens_sql[which], -1,
					SQLITE_PREPARE_PERSISTENT, &dt->stmt[which], NULL);
		if (rc != SQLITE_OK)
			return db_tokens_errno(rc);
	}
	*ret = dt->stmt[which];
	return 0;
}

static void db_tokens_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int db_tokens_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static uint64_t db_tokens_column_time(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	return v > 0 ? (uint64_t)v : 0;
}

static const char *db_tokens_column_str(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? s : "";
}

/* Runs a bound write statement to completion; counts it. Returns the number of rows changed. */
static int db_tokens_write(struct db_tokens *dt, sqlite3_stmt *st, int bind_rc)
{
	int rc = bind_rc;

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			db_count_write(dt->db);
	}
	db_tokens_done(st);
	if (rc != SQLITE_DONE)
		return db_tokens_errno(rc == SQLITE_ROW ? SQLITE_MISUSE : rc);
	return sqlite3_changes(db_handle(dt->db));
}

/* Steps a bound SELECT of DB_TOKENS_COLUMNS, calling cb per row. Returns the
 * number of rows, cb's first negative return, or -errno. */
static int db_tokens_walk(sqlite3_stmt *st, int bind_rc, db_tokens_row_fn cb, void *userdata)
{
	int rc = bind_rc, r, n = 0;

	if (rc != SQLITE_OK) {
		db_tokens_done(st);
		return db_tokens_errno(rc);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_token row = {
			.id = sqlite3_column_int64(st, 0),
			.name = db_tokens_column_str(st, 1),
			.role = db_tokens_column_str(st, 2),
			.hash = db_tokens_column_str(st, 3),
			.created_at_ms = db_tokens_column_time(st, 4),
			.last_used_at_ms = db_tokens_column_time(st, 5),
			.revoked_at_ms = db_tokens_column_time(st, 6),
		};

		r = cb(&row, userdata);
		if (r < 0) {
			db_tokens_done(st);
			return r;
		}
		n++;
	}
	db_tokens_done(st);
	return rc == SQLITE_DONE ? n : db_tokens_errno(rc);
}

int db_tokens_insert(struct db_tokens *dt, const char *name, const char *role, const char *hash,
		     uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_tokens_stmt(dt, STMT_INSERT, &st);
	if (r < 0)
		return r;
	rc = db_tokens_bind_text(st, 1, name);
	rc = rc ?: db_tokens_bind_text(st, 2, role);
	rc = rc ?: db_tokens_bind_text(st, 3, hash);
	rc = rc ?: sqlite3_bind_int64(st, 4, (sqlite3_int64)now_ms);
	r = db_tokens_write(dt, st, rc);
	return r < 0 ? r : 0;
}

int db_tokens_load(struct db_tokens *dt, db_tokens_row_fn cb, void *userdata)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = db_tokens_stmt(dt, STMT_LOAD, &st);
	if (r < 0)
		return r;
	return db_tokens_walk(st, SQLITE_OK, cb, userdata);
}

struct db_tokens_one {
	db_tokens_row_fn cb;
	void *userdata;
	int ret;
};

static int db_tokens_on_one(const struct db_token *row, void *userdata)
{
	struct db_tokens_one *one = userdata;

	one->ret = one->cb(row, one->userdata);
	return one->ret < 0 ? one->ret : 0;
}

int db_tokens_find_hash(struct db_tokens *dt, const char *hash, db_tokens_row_fn cb,
			void *userdata)
{
	struct db_tokens_one one = { .cb = cb, .userdata = userdata };
	sqlite3_stmt *st = NULL;
	int r;

	r = db_tokens_stmt(dt, STMT_FIND_HASH, &st);
	if (r < 0)
		return r;
	/* hash is UNIQUE: at most one row. */
	r = db_tokens_walk(st, db_tokens_bind_text(st, 1, hash), db_tokens_on_one, &one);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : one.ret;
}

int db_tokens_revoke(struct db_tokens *dt, const char *name, uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_tokens_stmt(dt, STMT_REVOKE, &st);
	if (r < 0)
		return r;
	rc = db_tokens_bind_text(st, 1, name);
	rc = rc ?: sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
	r = db_tokens_write(dt, st, rc);
	if (r != 0)
		return r < 0 ? r : 0;

	/* Nothing changed: tell an unknown name from one revoked before. */
	r = db_tokens_stmt(dt, STMT_REVOKED_AT, &st);
	if (r < 0)
		return r;
	rc = db_tokens_bind_text(st, 1, name);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	db_tokens_done(st);
	if (rc == SQLITE_ROW)
		return -EALREADY;
	return rc == SQLITE_DONE ? -ENOENT : db_tokens_errno(rc);
}

int db_tokens_touch(struct db_tokens *dt, int64_t id, uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_tokens_stmt(dt, STMT_TOUCH, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, id);
	rc = rc ?: sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
	r = db_tokens_write(dt, st, rc);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}
