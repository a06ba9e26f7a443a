/* db-rollouts: the rollouts table: creating, loading, listing and updating rollout rows */
#include <errno.h>
#include <stdlib.h>

#include "db/db-rollouts.h"
#include "db/db-stmt.h"
#include "db/db.h"
#include "lib/macro.h"

enum {
	STMT_INSERT,
	STMT_UPDATE,
	STMT_UNFINISHED,
	STMT_LIST,
	STMT_GET,
	_STMT_MAX,
};

#define DB_ROLLOUT_COLUMNS                                                                         \
	"id, firmware, state, name, strategy, selector, reason, counters, auto_update_id, "        \
	"canary_passed, created_at, updated_at, finished_at"

static const char *const db_rollouts_sql[_STMT_MAX] = {
	[STMT_INSERT] = "INSERT INTO rollouts (firmware, state, name, strategy, selector, reason, "
			"auto_update_id, canary_passed, created_at, updated_at) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
	[STMT_UPDATE] = "UPDATE rollouts SET state = ?2, reason = ?3, canary_passed = ?4, "
			"counters = coalesce(?5, counters), finished_at = ?6, updated_at = ?7 "
			"WHERE id = ?1",
	[STMT_UNFINISHED] = "SELECT " DB_ROLLOUT_COLUMNS " FROM rollouts "
			    "WHERE state NOT IN ('completed', 'canceled', 'failed') ORDER BY id",
	[STMT_LIST] = "SELECT " DB_ROLLOUT_COLUMNS " FROM rollouts ORDER BY id DESC",
	[STMT_GET] = "SELECT " DB_ROLLOUT_COLUMNS " FROM rollouts WHERE id = ?1",
};

struct db_rollouts {
	struct db_stmts *s;
};

int db_rollouts_new(struct db *db, struct db_rollouts **ret)
{
	struct db_rollouts *dr;
	int r;

	dr = calloc(1, sizeof(*dr));
	if (!dr)
		return -ENOMEM;
	r = db_stmts_new(db, db_rollouts_sql, _STMT_MAX, &dr->s);
	if (r < 0) {
		free(dr);
		return r;
	}
	*ret = dr;
	return 0;
}

struct db_rollouts *db_rollouts_free(struct db_rollouts *dr)
{
	if (dr) {
		db_stmts_free(dr->s);
		free(dr);
	}
	return NULL;
}

int db_rollouts_insert(struct db_rollouts *dr, const struct db_rollout *row, uint64_t now_ms,
		       int64_t *ret_id)
{
	sqlite3_stmt *st;
	int rc, r;

	r = db_stmts_get(dr->s, STMT_INSERT, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_text(st, 1, row->firmware, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, row->state, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 3, row->name ? row->name : "", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 4, row->strategy ? row->strategy : "{}", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 5, row->selector ? row->selector : "{}", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 6, row->reason ? row->reason : "", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = row->auto_update_id > 0 ? sqlite3_bind_int64(st, 7, row->auto_update_id)
					     : sqlite3_bind_null(st, 7);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 8, row->canary_passed);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 9, (sqlite3_int64)now_ms);
	r = db_stmt_write(dr->s, st, rc);
	if (r < 0)
		return r;
	*ret_id = sqlite3_last_insert_rowid(db_handle(db_stmts_db(dr->s)));
	return 0;
}

int db_rollouts_update(struct db_rollouts *dr, int64_t id, const char *state, const char *reason,
		       bool canary_passed, const char *counters, uint64_t finished_at_ms,
		       uint64_t now_ms)
{
	sqlite3_stmt *st;
	int rc, r;

	r = db_stmts_get(dr->s, STMT_UPDATE, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 3, reason ? reason : "", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 4, canary_passed);
	if (rc == SQLITE_OK)
		rc = db_bind_text_or_null(st, 5, counters);
	if (rc == SQLITE_OK)
		rc = db_bind_time_or_null(st, 6, finished_at_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 7, (sqlite3_int64)now_ms);
	return db_stmt_write(dr->s, st, rc);
}

static int db_rollouts_walk(struct db_rollouts *dr, sqlite3_stmt *st, db_rollouts_row_fn cb,
			    void *userdata)
{
	int n = 0, r;

	while ((r = db_stmt_step(st)) > 0) {
		struct db_rollout row = {
			.id = sqlite3_column_int64(st, 0),
			.firmware = db_column_text(st, 1),
			.state = db_column_text(st, 2),
			.name = db_column_text(st, 3),
			.strategy = db_column_text(st, 4),
			.selector = db_column_text(st, 5),
			.reason = db_column_text(st, 6),
			.counters = db_column_text(st, 7),
			.auto_update_id = sqlite3_column_int64(st, 8),
			.canary_passed = sqlite3_column_int(st, 9) != 0,
			.created_at_ms = db_column_u64(st, 10),
			.updated_at_ms = db_column_u64(st, 11),
			.finished_at_ms = db_column_u64(st, 12),
		};

		n++;
		r = cb ? cb(&row, userdata) : 0;
		if (r < 0) {
			db_stmt_done(st);
			return r;
		}
	}
	return r < 0 ? r : n;
}

int db_rollouts_load_unfinished(struct db_rollouts *dr, db_rollouts_row_fn cb, void *userdata)
{
	sqlite3_stmt *st;
	int r = db_stmts_get(dr->s, STMT_UNFINISHED, &st);

	return r < 0 ? r : db_rollouts_walk(dr, st, cb, userdata);
}

int db_rollouts_list(struct db_rollouts *dr, db_rollouts_row_fn cb, void *userdata)
{
	sqlite3_stmt *st;
	int r = db_stmts_get(dr->s, STMT_LIST, &st);

	return r < 0 ? r : db_rollouts_walk(dr, st, cb, userdata);
}

int db_rollouts_get(struct db_rollouts *dr, int64_t id, db_rollouts_row_fn cb, void *userdata)
{
	sqlite3_stmt *st;
	int r = db_stmts_get(dr->s, STMT_GET, &st);

	if (r < 0)
		return r;
	r = sqlite3_bind_int64(st, 1, id);
	if (r != SQLITE_OK) {
		db_stmt_done(st);
		return db_stmt_errno(r);
	}
	return db_rollouts_walk(dr, st, cb, userdata);
}
