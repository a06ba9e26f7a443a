/* db-auto-updates: the auto_updates table: standing update rules, and what their rollouts left behind */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db-auto-updates.h"
#include "db/db-stmt.h"
#include "db/db.h"

enum {
	STMT_INSERT,
	STMT_UPDATE,
	STMT_DELETE,
	STMT_LOAD,
	STMT_LAST_JOB,
	STMT_DEVICE_JOB_TIME,
	_STMT_MAX,
};

#define DB_AUTO_UPDATE_COLUMNS                                                                     \
	"id, name, selector, firmware, image_name, strategy, allow_downgrade, enabled, "           \
	"created_at, updated_at"

static const char *const db_auto_updates_sql[_STMT_MAX] = {
	[STMT_INSERT] = "INSERT INTO auto_updates (name, selector, firmware, image_name, strategy, "
			"allow_downgrade, enabled, created_at, updated_at) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
	[STMT_UPDATE] = "UPDATE auto_updates SET name = ?2, selector = ?3, firmware = ?4, "
			"image_name = ?5, strategy = ?6, allow_downgrade = ?7, enabled = ?8, "
			"updated_at = ?9 WHERE id = ?1",
	[STMT_DELETE] = "DELETE FROM auto_updates WHERE id = ?1",
	[STMT_LOAD] = "SELECT " DB_AUTO_UPDATE_COLUMNS " FROM auto_updates ORDER BY id",
	/* jobs_by_device narrows to the device's few jobs; the newest wins. */
	[STMT_LAST_JOB] = "SELECT j.state, j.updated_at FROM jobs j "
			  "JOIN rollouts r ON r.id = j.rollout_id "
			  "WHERE j.device_id = ?2 AND r.auto_update_id = ?1 AND r.firmware = ?3 "
			  "ORDER BY j.id DESC LIMIT 1",
	/* Transitions, not jobs.updated_at, which batched progress writes move too. */
	[STMT_DEVICE_JOB_TIME] = ("SELECT max(e.at) FROM job_events e JOIN jobs j ON j.id = e.job_id "
				  "WHERE j.device_id = ?1"),
};

struct db_auto_updates {
	struct db_stmts *s;
};

int db_auto_updates_new(struct db *db, struct db_auto_updates **ret)
{
	struct db_auto_updates *da;
	int r;

	da = calloc(1, sizeof(*da));
	if (!da)
		return -ENOMEM;
	r = db_stmts_new(db, db_auto_updates_sql, _STMT_MAX, &da->s);
	if (r < 0) {
		free(da);
		return r;
	}
	*ret = da;
	return 0;
}

struct db_auto_updates *db_auto_updates_free(struct db_auto_updates *da)
{
	if (da) {
		db_stmts_free(da->s);
		free(da);
	}
	return NULL;
}

/* Binds the columns shared by insert and update, from parameter first on:
 * name, selector, firmware, image_name, strategy, allow_downgrade, enabled. */
static int db_auto_updates_bind(sqlite3_stmt *st, int first, const struct db_auto_update *row)
{
	int rc;

	rc = sqlite3_bind_text(st, first, row->name ? row->name : "", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, first + 1, row->selector ? row->selector : "{}", -1,
				       SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = db_bind_text_or_null(st, first + 2, row->firmware);
	if (rc == SQLITE_OK)
		rc = db_bind_text_or_null(st, first + 3, row->image_name);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, first + 4, row->strategy ? row->strategy : "{}", -1,
				       SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, first + 5, row->allow_downgrade);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, first + 6, row->enabled);
	return rc;
}

int db_auto_updates_insert(struct db_auto_updates *da, const struct db_auto_update *row,
			   uint64_t now_ms, int64_t *ret_id)
{
	sqlite3_stmt *st;
	int rc, r;

	r = db_stmts_get(da->s, STMT_INSERT, &st);
	if (r < 0)
		return r;
	rc = db_auto_updates_bind(st, 1, row);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 8, (sqlite3_int64)now_ms);
	r = db_stmt_write(da->s, st, rc);
	if (r < 0)
		return r;
	*ret_id = sqlite3_last_insert_rowid(db_handle(db_stmts_db(da->s)));
	return 0;
}

int db_auto_updates_update(struct db_auto_updates *da, const struct db_auto_update *row,
			   uint64_t now_ms)
{
	sqlite3_stmt *st;
	int rc, r;

	r = db_stmts_get(da->s, STMT_UPDATE, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, row->id);
	if (rc == SQLITE_OK)
		rc = db_auto_updates_bind(st, 2, row);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 9, (sqlite3_int64)now_ms);
	r = db_stmt_write(da->s, st, rc);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}

int db_auto_updates_delete(struct db_auto_updates *da, int64_t id)
{
	sqlite3_stmt *st;
	int r;

	r = db_stmts_get(da->s, STMT_DELETE, &st);
	if (r < 0)
		return r;
	r = db_stmt_write(da->s, st, sqlite3_bind_int64(st, 1, id));
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}

static const char *db_auto_updates_text_or_null(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL : db_column_text(st, i);
}

int db_auto_updates_load(struct db_auto_updates *da, db_auto_updates_row_fn cb, void *userdata)
{
	sqlite3_stmt *st;
	int r, n = 0;

	r = db_stmts_get(da->s, STMT_LOAD, &st);
	if (r < 0)
		return r;
	while ((r = db_stmt_step(st)) > 0) {
		struct db_auto_update row = {
			.id = sqlite3_column_int64(st, 0),
			.name = db_column_text(st, 1),
			.selector = db_column_text(st, 2),
			.firmware = db_auto_updates_text_or_null(st, 3),
			.image_name = db_auto_updates_text_or_null(st, 4),
			.strategy = db_column_text(st, 5),
			.allow_downgrade = sqlite3_column_int(st, 6) != 0,
			.enabled = sqlite3_column_int(st, 7) != 0,
			.created_at_ms = db_column_u64(st, 8),
			.updated_at_ms = db_column_u64(st, 9),
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

int db_auto_updates_last_job(struct db_auto_updates *da, int64_t rule, const char *device_id,
			     const char *firmware, char *ret_state, size_t state_size,
			     uint64_t *ret_at_ms)
{
	sqlite3_stmt *st;
	int rc, r;

	if (!device_id || !firmware || !ret_state || state_size == 0)
		return -EINVAL;
	r = db_stmts_get(da->s, STMT_LAST_JOB, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, rule);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 3, firmware, -1, SQLITE_STATIC);
	if (rc != SQLITE_OK) {
		db_stmt_done(st);
		return db_stmt_errno(rc);
	}
	r = db_stmt_step(st);
	if (r <= 0)
		return r;
	snprintf(ret_state, state_size, "%s", db_column_text(st, 0));
	*ret_at_ms = db_column_u64(st, 1);
	db_stmt_done(st);
	return 1;
}

int db_auto_updates_device_job_time(struct db_auto_updates *da, const char *device_id,
				    uint64_t *ret_at_ms)
{
	sqlite3_stmt *st;
	int rc, r;

	if (!device_id)
		return -EINVAL;
	r = db_stmts_get(da->s, STMT_DEVICE_JOB_TIME, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	if (rc != SQLITE_OK) {
		db_stmt_done(st);
		return db_stmt_errno(rc);
	}
	r = db_stmt_step(st);
	if (r <= 0)
		return r;
	/* max() of no rows is one NULL row. */
	r = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : 1;
	if (r)
		*ret_at_ms = db_column_u64(st, 0);
	db_stmt_done(st);
	return r;
}
