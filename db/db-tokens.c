/* db-tokens: the tokens table: API bearer tokens as hashes, their roles, use and revocation */
#include <errno.h>
#include <stdlib.h>

#include "db/db-stmt.h"
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
	struct db_stmts *stmts;
};

int db_tokens_new(struct db *db, struct db_tokens **ret)
{
	struct db_tokens *dt;
	int r;

	if (!db)
		return -EINVAL;
	dt = calloc(1, sizeof(*dt));
	if (!dt)
		return -ENOMEM;
	r = db_stmts_new(db, db_tokens_sql, _STMT_MAX, &dt->stmts);
	if (r < 0) {
		free(dt);
		return r;
	}
	*ret = dt;
	return 0;
}

struct db_tokens *db_tokens_free(struct db_tokens *dt)
{
	if (dt) {
		db_stmts_free(dt->stmts);
		free(dt);
	}
	return NULL;
}

/* Steps a bound SELECT of DB_TOKENS_COLUMNS, calling cb per row. Returns the
 * number of rows, cb's first negative return, or -errno. */
static int db_tokens_walk(sqlite3_stmt *st, int bind_rc, db_tokens_row_fn cb, void *userdata)
{
	int rc = bind_rc, r, n = 0;

	if (rc != SQLITE_OK) {
		db_stmt_done(st);
		return db_stmt_errno(rc);
	}
	while ((r = db_stmt_step(st)) > 0) {
		struct db_token row = {
			.id = sqlite3_column_int64(st, 0),
			.name = db_column_text(st, 1),
			.role = db_column_text(st, 2),
			.hash = db_column_text(st, 3),
			.created_at_ms = db_column_u64(st, 4),
			.last_used_at_ms = db_column_u64(st, 5),
			.revoked_at_ms = db_column_u64(st, 6),
		};

		r = cb(&row, userdata);
		if (r < 0) {
			db_stmt_done(st);
			return r;
		}
		n++;
	}
	return r < 0 ? r : n;
}

int db_tokens_insert(struct db_tokens *dt, const char *name, const char *role, const char *hash,
		     uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_stmts_get(dt->stmts, STMT_INSERT, &st);
	if (r < 0)
		return r;
	rc = db_bind_text_or_null(st, 1, name);
	rc = rc ?: db_bind_text_or_null(st, 2, role);
	rc = rc ?: db_bind_text_or_null(st, 3, hash);
	rc = rc ?: sqlite3_bind_int64(st, 4, (sqlite3_int64)now_ms);
	r = db_stmt_write(dt->stmts, st, rc);
	return r < 0 ? r : 0;
}

int db_tokens_load(struct db_tokens *dt, db_tokens_row_fn cb, void *userdata)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = db_stmts_get(dt->stmts, STMT_LOAD, &st);
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

	r = db_stmts_get(dt->stmts, STMT_FIND_HASH, &st);
	if (r < 0)
		return r;
	/* hash is UNIQUE: at most one row. */
	r = db_tokens_walk(st, db_bind_text_or_null(st, 1, hash), db_tokens_on_one, &one);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : one.ret;
}

int db_tokens_revoke(struct db_tokens *dt, const char *name, uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_stmts_get(dt->stmts, STMT_REVOKE, &st);
	if (r < 0)
		return r;
	rc = db_bind_text_or_null(st, 1, name);
	rc = rc ?: sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
	r = db_stmt_write(dt->stmts, st, rc);
	if (r != 0)
		return r < 0 ? r : 0;

	/* Nothing changed: tell an unknown name from one revoked before. */
	r = db_stmts_get(dt->stmts, STMT_REVOKED_AT, &st);
	if (r < 0)
		return r;
	rc = db_bind_text_or_null(st, 1, name);
	if (rc != SQLITE_OK) {
		db_stmt_done(st);
		return db_stmt_errno(rc);
	}
	r = db_stmt_step(st);
	if (r > 0) {
		db_stmt_done(st);
		return -EALREADY;
	}
	return r < 0 ? r : -ENOENT;
}

int db_tokens_touch(struct db_tokens *dt, int64_t id, uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_stmts_get(dt->stmts, STMT_TOUCH, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, id);
	rc = rc ?: sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
	r = db_stmt_write(dt->stmts, st, rc);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}
