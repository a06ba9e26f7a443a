/* db-devices: the devices table: loading, upserting, deleting and updating device rows */
#include <errno.h>
#include <stdlib.h>

#include "db/db-devices.h"
#include "db/db-stmt.h"
#include "db/db.h"

enum db_devices_stmt {
	STMT_LOAD,
	STMT_UPSERT,
	STMT_DELETE,
	STMT_RESET_ONLINE,
	STMT_ONLINE,
	STMT_NAMES,
	STMT_REPORTED,
	STMT_BATCH,
	_STMT_MAX,
};

static const char *const db_devices_sql[_STMT_MAX] = {
	[STMT_LOAD] = "SELECT id, identity, transport, address, name, labels, source, baud, "
		      "name_pinned, labels_pinned, online, last_seen, rssi, reported, reported_at, "
		      "created_at, updated_at FROM devices ORDER BY id",
	[STMT_UPSERT] = "INSERT INTO devices (id, identity, transport, address, name, labels, "
			"source, baud, name_pinned, labels_pinned, created_at, updated_at) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11) "
			"ON CONFLICT (id) DO UPDATE SET identity = excluded.identity, "
			"transport = excluded.transport, address = excluded.address, "
			"name = excluded.name, labels = excluded.labels, source = excluded.source, "
			"baud = excluded.baud, name_pinned = excluded.name_pinned, "
			"labels_pinned = excluded.labels_pinned, updated_at = excluded.updated_at",
	[STMT_DELETE] = "DELETE FROM devices WHERE id = ?1",
	[STMT_RESET_ONLINE] = "UPDATE devices SET online = 0 WHERE online <> 0",
	[STMT_ONLINE] = "UPDATE devices SET online = ?2, updated_at = ?3 WHERE id = ?1",
	[STMT_NAMES] = "UPDATE devices SET name = ?2, name_pinned = ?3, labels = ?4, "
		       "labels_pinned = ?5, updated_at = ?6 WHERE id = ?1",
	[STMT_REPORTED] = "UPDATE devices SET reported = ?2, reported_at = ?3 WHERE id = ?1",
	/* A NULL parameter keeps the column: one statement serves every batch row. */
	[STMT_BATCH] = "UPDATE devices SET last_seen = coalesce(?2, last_seen), "
		       "rssi = CASE WHEN ?3 THEN ?4 ELSE rssi END, "
		       "reported = coalesce(?5, reported), "
		       "reported_at = coalesce(?6, reported_at), "
		       "updated_at = ?7 WHERE id = ?1",
};

struct db_devices {
	struct db_stmts *stmts;
};

int db_devices_new(struct db *db, struct db_devices **ret)
{
	struct db_devices *dd;
	int r;

	if (!db)
		return -EINVAL;
	dd = calloc(1, sizeof(*dd));
	if (!dd)
		return -ENOMEM;
	r = db_stmts_new(db, db_devices_sql, _STMT_MAX, &dd->stmts);
	if (r < 0) {
		free(dd);
		return r;
	}
	*ret = dd;
	return 0;
}

struct db_devices *db_devices_free(struct db_devices *dd)
{
	if (dd) {
		db_stmts_free(dd->stmts);
		free(dd);
	}
	return NULL;
}

int db_devices_load(struct db_devices *dd, db_devices_row_fn cb, void *userdata)
{
	sqlite3_stmt *st = NULL;
	int r, n = 0;

	r = db_stmts_get(dd->stmts, STMT_LOAD, &st);
	if (r < 0)
		return r;
	while ((r = db_stmt_step(st)) > 0) {
		/* The strings point into the row, which lives until the next step:
		 * the callback copies them before we get there. */
		struct db_device row = {
			.id = db_column_text(st, 0),
			.identity = db_column_text(st, 1),
			.transport = db_column_text(st, 2),
			.address = db_column_text(st, 3),
			.name = db_column_text(st, 4),
			.labels = db_column_text(st, 5),
			.source = db_column_text(st, 6),
			.baud = (unsigned)sqlite3_column_int64(st, 7),
			.name_pinned = sqlite3_column_int(st, 8) != 0,
			.labels_pinned = sqlite3_column_int(st, 9) != 0,
			.online = sqlite3_column_int(st, 10) != 0,
			.last_seen_ms = db_column_u64(st, 11),
			.has_rssi = sqlite3_column_type(st, 12) != SQLITE_NULL,
			.rssi = sqlite3_column_int(st, 12),
			.reported = db_column_text(st, 13),
			.reported_at_ms = db_column_u64(st, 14),
			.created_at_ms = db_column_u64(st, 15),
			.updated_at_ms = db_column_u64(st, 16),
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

int db_devices_upsert(struct db_devices *dd, const struct db_device *dev, uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_stmts_get(dd->stmts, STMT_UPSERT, &st);
	if (r < 0)
		return r;
	rc = db_bind_text_or_null(st, 1, dev->id);
	rc = rc ?: db_bind_text_or_null(st, 2, dev->identity);
	rc = rc ?: db_bind_text_or_null(st, 3, dev->transport);
	rc = rc ?: db_bind_text_or_null(st, 4, dev->address);
	rc = rc ?: db_bind_text_or_null(st, 5, dev->name ? dev->name : "");
	rc = rc ?: db_bind_text_or_null(st, 6, dev->labels ? dev->labels : "[]");
	rc = rc ?: db_bind_text_or_null(st, 7, dev->source);
	rc = rc ?: sqlite3_bind_int64(st, 8, dev->baud);
	rc = rc ?: sqlite3_bind_int(st, 9, dev->name_pinned);
	rc = rc ?: sqlite3_bind_int(st, 10, dev->labels_pinned);
	rc = rc ?: sqlite3_bind_int64(st, 11, (sqlite3_int64)now_ms);
	r = db_stmt_write(dd->stmts, st, rc);
	return r < 0 ? r : 0;
}

int db_devices_delete(struct db_devices *dd, const char *id)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = db_stmts_get(dd->stmts, STMT_DELETE, &st);
	if (r < 0)
		return r;
	r = db_stmt_write(dd->stmts, st, db_bind_text_or_null(st, 1, id));
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}

int db_devices_reset_online(struct db_devices *dd)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = db_stmts_get(dd->stmts, STMT_RESET_ONLINE, &st);
	if (r < 0)
		return r;
	return db_stmt_write(dd->stmts, st, SQLITE_OK);
}

int db_devices_update_online(struct db_devices *dd, const char *id, bool online, uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_stmts_get(dd->stmts, STMT_ONLINE, &st);
	if (r < 0)
		return r;
	rc = db_bind_text_or_null(st, 1, id);
	rc = rc ?: sqlite3_bind_int(st, 2, online);
	rc = rc ?: sqlite3_bind_int64(st, 3, (sqlite3_int64)now_ms);
	r = db_stmt_write(dd->stmts, st, rc);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}

int db_devices_update_names(struct db_devices *dd, const char *id, const char *name,
			    bool name_pinned, const char *labels, bool labels_pinned,
			    uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_stmts_get(dd->stmts, STMT_NAMES, &st);
	if (r < 0)
		return r;
	rc = db_bind_text_or_null(st, 1, id);
	rc = rc ?: db_bind_text_or_null(st, 2, name ? name : "");
	rc = rc ?: sqlite3_bind_int(st, 3, name_pinned);
	rc = rc ?: db_bind_text_or_null(st, 4, labels ? labels : "[]");
	rc = rc ?: sqlite3_bind_int(st, 5, labels_pinned);
	rc = rc ?: sqlite3_bind_int64(st, 6, (sqlite3_int64)now_ms);
	r = db_stmt_write(dd->stmts, st, rc);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}

int db_devices_update_reported(struct db_devices *dd, const char *id, const char *reported,
			       uint64_t reported_at_ms)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_stmts_get(dd->stmts, STMT_REPORTED, &st);
	if (r < 0)
		return r;
	rc = db_bind_text_or_null(st, 1, id);
	rc = rc ?: db_bind_text_or_null(st, 2, reported ? reported : "{}");
	rc = rc ?: db_bind_time_or_null(st, 3, reported_at_ms);
	r = db_stmt_write(dd->stmts, st, rc);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}

int db_devices_update_batch(struct db_devices *dd, const struct db_device_batch *rows, size_t n,
			    uint64_t now_ms)
{
	struct db *db = db_stmts_db(dd->stmts);
	sqlite3_stmt *st = NULL;
	int r, rc;

	if (n == 0)
		return 0;
	r = db_stmts_get(dd->stmts, STMT_BATCH, &st);
	if (r < 0)
		return r;
	/* One transaction: one WAL commit for the whole batch instead of one per device. */
	r = db_begin(db);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		const struct db_device_batch *b = &rows[i];

		rc = db_bind_text_or_null(st, 1, b->id);
		rc = rc ?: db_bind_time_or_null(st, 2, b->last_seen_ms);
		rc = rc ?: sqlite3_bind_int(st, 3, b->has_rssi);
		rc = rc ?: sqlite3_bind_int(st, 4, b->rssi);
		rc = rc ?: db_bind_text_or_null(st, 5, b->reported);
		rc = rc ?: (b->reported ? db_bind_time_or_null(st, 6, b->reported_at_ms)
					: sqlite3_bind_null(st, 6));
		rc = rc ?: sqlite3_bind_int64(st, 7, (sqlite3_int64)now_ms);
		r = db_stmt_write(dd->stmts, st, rc);
		if (r < 0) {
			db_rollback(db);
			return r;
		}
	}
	r = db_commit(db);
	if (r < 0)
		db_rollback(db);
	return r;
}
