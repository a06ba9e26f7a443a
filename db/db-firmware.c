/* db-firmware: the firmware table: stored MCUboot images, and whether rollouts still need them */
#include <errno.h>
#include <stdlib.h>

#include "db/db-firmware.h"
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
	sqlite3_stmt *stmt[_STMT_MAX];
};

static int db_firmware_errno(int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return -EEXIST;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return -EBUSY;
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

int db_firmware_new(struct db *db, struct db_firmware **ret)
{
	struct db_firmware *df;

	if (!db)
		return -EINVAL;
	df = calloc(1, sizeof(*df));
	if (!df)
		return -ENOMEM;
	df->db = db;
	*ret = df;
	return 0;
}

struct db_firmware *db_firmware_free(struct db_firmware *df)
{
	if (df) {
		for (size_t i = 0; i < _STMT_MAX; i++)
			sqlite3_finalize(df->stmt[i]);
		free(df);
	}
	return NULL;
}

/* The statement, prepared the first time it is needed and reset after every use. */
static int db_firmware_stmt(struct db_firmware *df, enum db_firmware_stmt which,
			    sqlite3_stmt **ret)
{
	int rc;

	if (!df->stmt[which]) {
		rc = sqlite3_prepare_v3(db_handle(df->db), db_firmware_sql[which], -1,
					SQLITE_PREPARE_PERSISTENT, &df->stmt[which], NULL);
		if (rc != SQLITE_OK)
			return db_firmware_errno(rc);
	}
	*ret = df->stmt[which];
	return 0;
}

static void db_firmware_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int db_firmware_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static const char *db_firmware_column_str(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? s : "";
}

/* Runs a bound write statement to completion; counts it. Returns the number of rows changed. */
static int db_firmware_write(struct db_firmware *df, sqlite3_stmt *st, int bind_rc)
{
	int rc = bind_rc;

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			db_count_write(df->db);
	}
	db_firmware_done(st);
	if (rc != SQLITE_DONE)
		return db_firmware_errno(rc == SQLITE_ROW ? SQLITE_MISUSE : rc);
	return sqlite3_changes(db_handle(df->db));
}

/* Steps a bound SELECT of DB_FIRMWARE_COLUMNS, calling cb per row. Returns
 * the number of rows, cb's first negative return, or -errno. */
static int db_firmware_walk(sqlite3_stmt *st, int bind_rc, db_firmware_row_fn cb, void *userdata,
			    int *ret_last)
{
	int rc = bind_rc, r = 0, n = 0;

	if (rc != SQLITE_OK) {
		db_firmware_done(st);
		return db_firmware_errno(rc);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 size = sqlite3_column_int64(st, 3), at = sqlite3_column_int64(st, 6);
		struct db_firmware_row row = {
			.sha256 = db_firmware_column_str(st, 0),
			.image_hash = db_firmware_column_str(st, 1),
			.version = db_firmware_column_str(st, 2),
			.size = size > 0 ? (uint64_t)size : 0,
			.name = db_firmware_column_str(st, 4),
			.metadata = db_firmware_column_str(st, 5),
			.created_at_ms = at > 0 ? (uint64_t)at : 0,
		};

		r = cb(&row, userdata);
		if (r < 0) {
			db_firmware_done(st);
			return r;
		}
		n++;
	}
	db_firmware_done(st);
	if (rc != SQLITE_DONE)
		return db_firmware_errno(rc);
	if (ret_last)
		*ret_last = r;
	return n;
}

int db_firmware_insert(struct db_firmware *df, const struct db_firmware_row *row)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_firmware_stmt(df, STMT_INSERT, &st);
	if (r < 0)
		return r;
	rc = db_firmware_bind_text(st, 1, row->sha256);
	rc = rc ?: db_firmware_bind_text(st, 2, row->image_hash);
	rc = rc ?: db_firmware_bind_text(st, 3, row->version);
	rc = rc ?: sqlite3_bind_int64(st, 4, (sqlite3_int64)row->size);
	rc = rc ?: db_firmware_bind_text(st, 5, row->name ? row->name : "");
	rc = rc ?: db_firmware_bind_text(st, 6, row->metadata ? row->metadata : "{}");
	rc = rc ?: sqlite3_bind_int64(st, 7, (sqlite3_int64)row->created_at_ms);
	r = db_firmware_write(df, st, rc);
	if (r < 0)
		return r;
	return r == 0 ? -EEXIST : 0;
}

int db_firmware_get(struct db_firmware *df, const char *sha256, db_firmware_row_fn cb,
		    void *userdata)
{
	sqlite3_stmt *st = NULL;
	int r, last = 0;

	r = db_firmware_stmt(df, STMT_GET, &st);
	if (r < 0)
		return r;
	r = db_firmware_walk(st, db_firmware_bind_text(st, 1, sha256), cb, userdata, &last);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : last;
}

int db_firmware_load(struct db_firmware *df, db_firmware_row_fn cb, void *userdata)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = db_firmware_stmt(df, STMT_LOAD, &st);
	if (r < 0)
		return r;
	return db_firmware_walk(st, SQLITE_OK, cb, userdata, NULL);
}

int db_firmware_in_use(struct db_firmware *df, const char *sha256)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_firmware_stmt(df, STMT_IN_USE, &st);
	if (r < 0)
		return r;
	rc = db_firmware_bind_text(st, 1, sha256);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	r = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) != 0 : db_firmware_errno(rc);
	db_firmware_done(st);
	return r;
}

int db_firmware_delete(struct db_firmware *df, const char *sha256, uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc, changes = 0;

	r = db_firmware_stmt(df, STMT_DELETE, &st);
	if (r < 0)
		return r;
	rc = db_firmware_bind_text(st, 1, sha256);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		db_count_write(df->db);
		changes = sqlite3_changes(db_handle(df->db));
	}
	db_firmware_done(st);
	if (rc == SQLITE_DONE)
		return changes > 0 ? 0 : -ENOENT;
	/* A DELETE can only break the references to the row (ON DELETE
	 * RESTRICT reports SQLITE_CONSTRAINT_TRIGGER, other actions
	 * SQLITE_CONSTRAINT_FOREIGNKEY). */
	if ((rc & 0xff) != SQLITE_CONSTRAINT)
		return db_firmware_errno(rc);

	/* A finished rollout or a rule names the image: keep the row for
	 * them, marked removed. */
	r = db_firmware_stmt(df, STMT_MARK_DELETED, &st);
	if (r < 0)
		return r;
	rc = db_firmware_bind_text(st, 1, sha256);
	rc = rc ?: sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
	r = db_firmware_write(df, st, rc);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}
