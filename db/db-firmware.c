/* db-firmware: the firmware table: stored MCUboot images, and whether rollouts still need them */
#include <errno.h>
#include <stdlib.h>

#include "db/db-firmware.h"
#include "db/db-stmt.h"
#include "db/db.h"

enum db_firmware_stmt {
	STMT_INSERT,
	STMT_GET,
	STMT_LOAD,
	STMT_IN_USE,
	STMT_DELETE,
	STMT_MARK_DELETED,
	_STMT_MAX,
};

#define DB_FIRMWARE_COLUMNS "sha256, image_hash, version, size, name, metadata, created_at"

static const char *const db_firmware_sql[_STMT_MAX] = {
	/* A row marked removed comes back as new; a live one is left alone
	 * (no change: the caller learns it exists). */
	[STMT_INSERT] = "INSERT INTO firmware (" DB_FIRMWARE_COLUMNS ") "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
			"ON CONFLICT (sha256) DO UPDATE SET image_hash = excluded.image_hash, "
			"version = excluded.version, size = excluded.size, name = excluded.name, "
			"metadata = excluded.metadata, created_at = excluded.created_at, "
			"deleted_at = NULL WHERE firmware.deleted_at IS NOT NULL",
	[STMT_GET] = "SELECT " DB_FIRMWARE_COLUMNS " FROM firmware "
		     "WHERE sha256 = ?1 AND deleted_at IS NULL",
	[STMT_LOAD] = "SELECT " DB_FIRMWARE_COLUMNS " FROM firmware WHERE deleted_at IS NULL "
		      "ORDER BY created_at DESC, sha256",
	[STMT_IN_USE] = "SELECT EXISTS (SELECT 1 FROM rollouts WHERE firmware = ?1 AND "
			"state NOT IN ('completed', 'canceled', 'failed')) "
			"OR EXISTS (SELECT 1 FROM auto_updates WHERE firmware = ?1 AND enabled <> 0)",
	[STMT_DELETE] = "DELETE FROM firmware WHERE sha256 = ?1 AND deleted_at IS NULL",
	[STMT_MARK_DELETED] = "UPDATE firmware SET deleted_at = ?2 WHERE sha256 = ?1 AND deleted_at IS NULL",
};

struct db_firmware {
	struct db *db;
	struct db_stmts *stmts;
};

int db_firmware_new(struct db *db, struct db_firmware **ret)
{
	struct db_firmware *df;
	int r;

	if (!db)
		return -EINVAL;
	df = calloc(1, sizeof(*df));
	if (!df)
		return -ENOMEM;
	df->db = db;
	r = db_stmts_new(db, db_firmware_sql, _STMT_MAX, &df->stmts);
	if (r < 0) {
		free(df);
		return r;
	}
	*ret = df;
	return 0;
}

struct db_firmware *db_firmware_free(struct db_firmware *df)
{
	if (df) {
		db_stmts_free(df->stmts);
		free(df);
	}
	return NULL;
}

/* Steps a bound SELECT of DB_FIRMWARE_COLUMNS, calling cb per row. Returns
 * the number of rows, cb's first negative return, or -errno. */
static int db_firmware_walk(sqlite3_stmt *st, int bind_rc, db_firmware_row_fn cb, void *userdata,
			    int *ret_last)
{
	int r = 0, last = 0, n = 0;

	if (bind_rc != SQLITE_OK) {
		db_stmt_done(st);
		return db_stmt_errno(bind_rc);
	}
	while ((r = db_stmt_step(st)) > 0) {
		struct db_firmware_row row = {
			.sha256 = db_column_text(st, 0),
			.image_hash = db_column_text(st, 1),
			.version = db_column_text(st, 2),
			.size = db_column_u64(st, 3),
			.name = db_column_text(st, 4),
			.metadata = db_column_text(st, 5),
			.created_at_ms = db_column_u64(st, 6),
		};

		last = cb(&row, userdata);
		if (last < 0) {
			db_stmt_done(st);
			return last;
		}
		n++;
	}
	if (r < 0)
		return r;
	if (ret_last)
		*ret_last = last;
	return n;
}

int db_firmware_insert(struct db_firmware *df, const struct db_firmware_row *row)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_stmts_get(df->stmts, STMT_INSERT, &st);
	if (r < 0)
		return r;
	rc = db_bind_text_or_null(st, 1, row->sha256);
	rc = rc ?: db_bind_text_or_null(st, 2, row->image_hash);
	rc = rc ?: db_bind_text_or_null(st, 3, row->version);
	rc = rc ?: sqlite3_bind_int64(st, 4, (sqlite3_int64)row->size);
	rc = rc ?: db_bind_text_or_null(st, 5, row->name ? row->name : "");
	rc = rc ?: db_bind_text_or_null(st, 6, row->metadata ? row->metadata : "{}");
	rc = rc ?: sqlite3_bind_int64(st, 7, (sqlite3_int64)row->created_at_ms);
	r = db_stmt_write(df->stmts, st, rc);
	if (r < 0)
		return r;
	return r == 0 ? -EEXIST : 0;
}

int db_firmware_get(struct db_firmware *df, const char *sha256, db_firmware_row_fn cb,
		    void *userdata)
{
	sqlite3_stmt *st = NULL;
	int r, last = 0;

	r = db_stmts_get(df->stmts, STMT_GET, &st);
	if (r < 0)
		return r;
	r = db_firmware_walk(st, db_bind_text_or_null(st, 1, sha256), cb, userdata, &last);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : last;
}

int db_firmware_load(struct db_firmware *df, db_firmware_row_fn cb, void *userdata)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = db_stmts_get(df->stmts, STMT_LOAD, &st);
	if (r < 0)
		return r;
	return db_firmware_walk(st, SQLITE_OK, cb, userdata, NULL);
}

int db_firmware_in_use(struct db_firmware *df, const char *sha256)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_stmts_get(df->stmts, STMT_IN_USE, &st);
	if (r < 0)
		return r;
	rc = db_bind_text_or_null(st, 1, sha256);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	r = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) != 0 : db_stmt_errno(rc);
	db_stmt_done(st);
	return r;
}

int db_firmware_delete(struct db_firmware *df, const char *sha256, uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc, changes = 0;

	r = db_stmts_get(df->stmts, STMT_DELETE, &st);
	if (r < 0)
		return r;
	rc = db_bind_text_or_null(st, 1, sha256);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		db_count_write(df->db);
		changes = sqlite3_changes(db_handle(df->db));
	}
	db_stmt_done(st);
	if (rc == SQLITE_DONE)
		return changes > 0 ? 0 : -ENOENT;
	/* A DELETE can only break the references to the row (ON DELETE
	 * RESTRICT reports SQLITE_CONSTRAINT_TRIGGER, other actions
	 * SQLITE_CONSTRAINT_FOREIGNKEY). */
	if ((rc & 0xff) != SQLITE_CONSTRAINT)
		return db_stmt_errno(rc);

	/* A finished rollout or a rule names the image: keep the row for
	 * them, marked removed. */
	r = db_stmts_get(df->stmts, STMT_MARK_DELETED, &st);
	if (r < 0)
		return r;
	rc = db_bind_text_or_null(st, 1, sha256);
	rc = rc ?: sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
	r = db_stmt_write(df->stmts, st, rc);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}
