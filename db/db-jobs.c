/* db-jobs: the jobs and job_events tables: a rollout's jobs, their transitions and history */
#include <errno.h>
#include <stdlib.h>

#include "db/db-jobs.h"
#include "db/db-stmt.h"
#include "db/db.h"

enum {
	STMT_INSERT,
	STMT_EVENT,
	STMT_UPDATE,
	STMT_PROGRESS,
	STMT_LOAD_ROLLOUT,
	STMT_LIST,
	STMT_GET,
	STMT_EVENTS,
	STMT_COUNT_ROLLOUT,
	STMT_COUNT_ALL,
	_STMT_MAX,
};

#define DB_JOB_COLUMNS                                                                             \
	"id, rollout_id, device_id, state, attempt, not_before, bytes_done, bytes_total, reason, " \
	"old_hash, canary, created_at, updated_at"

static const char *const db_jobs_sql[_STMT_MAX] = {
	[STMT_INSERT] = "INSERT INTO jobs (rollout_id, device_id, state, attempt, not_before, "
			"bytes_done, bytes_total, reason, old_hash, canary, created_at, updated_at) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
	[STMT_EVENT] = "INSERT INTO job_events (job_id, at, from_state, to_state, reason, attempt) "
		       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[STMT_UPDATE] = "UPDATE jobs SET state = ?2, attempt = ?3, not_before = ?4, "
			"bytes_done = ?5, reason = ?6, old_hash = coalesce(?7, old_hash), "
			"updated_at = ?8 WHERE id = ?1",
	[STMT_PROGRESS] = "UPDATE jobs SET bytes_done = ?2, updated_at = ?3 WHERE id = ?1",
	[STMT_LOAD_ROLLOUT] = "SELECT " DB_JOB_COLUMNS " FROM jobs WHERE rollout_id = ?1 ORDER BY id",
	[STMT_LIST] = "SELECT " DB_JOB_COLUMNS " FROM jobs WHERE (?1 = 0 OR rollout_id = ?1) "
		      "AND (?2 IS NULL OR device_id = ?2) AND (?3 IS NULL OR state = ?3) "
		      "AND id > ?4 ORDER BY id LIMIT ?5",
	[STMT_GET] = "SELECT " DB_JOB_COLUMNS " FROM jobs WHERE id = ?1",
	[STMT_EVENTS] = "SELECT id, job_id, at, from_state, to_state, reason, attempt "
			"FROM job_events WHERE job_id = ?1 ORDER BY id",
	[STMT_COUNT_ROLLOUT] = "SELECT state, count(*), sum(bytes_done), sum(bytes_total) FROM jobs "
			       "WHERE rollout_id = ?1 GROUP BY state",
	[STMT_COUNT_ALL] = "SELECT state, count(*), sum(bytes_done), sum(bytes_total) FROM jobs "
			   "GROUP BY state",
};

struct db_jobs {
	struct db_stmts *s;
};

int db_jobs_new(struct db *db, struct db_jobs **ret)
{
	struct db_jobs *dj;
	int r;

	dj = calloc(1, sizeof(*dj));
	if (!dj)
		return -ENOMEM;
	r = db_stmts_new(db, db_jobs_sql, _STMT_MAX, &dj->s);
	if (r < 0) {
		free(dj);
		return r;
	}
	*ret = dj;
	return 0;
}

struct db_jobs *db_jobs_free(struct db_jobs *dj)
{
	if (dj) {
		db_stmts_free(dj->s);
		free(dj);
	}
	return NULL;
}

static int db_jobs_add_event(struct db_jobs *dj, int64_t job_id, const char *from, const char *to,
			     const char *reason, unsigned attempt, uint64_t now_ms)
{
	sqlite3_stmt *st;
	int rc, r;

	r = db_stmts_get(dj->s, STMT_EVENT, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, job_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
	if (rc == SQLITE_OK)
		rc = db_bind_text_or_null(st, 3, from);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 4, to, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 5, reason ? reason : "", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 6, attempt);
	r = db_stmt_write(dj->s, st, rc);
	return r < 0 ? r : 0;
}

int db_jobs_insert(struct db_jobs *dj, const struct db_job *row, uint64_t now_ms, int64_t *ret_id)
{
	sqlite3_stmt *st;
	int64_t id;
	int rc, r;

	r = db_stmts_get(dj->s, STMT_INSERT, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, row->rollout_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, row->device_id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 3, row->state, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, row->attempt);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, (sqlite3_int64)row->not_before_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 6, (sqlite3_int64)row->bytes_done);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 7, (sqlite3_int64)row->bytes_total);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 8, row->reason ? row->reason : "", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 9, row->old_hash ? row->old_hash : "", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 10, row->canary);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 11, (sqlite3_int64)now_ms);
	r = db_stmt_write(dj->s, st, rc);
	if (r < 0)
		return r;
	id = sqlite3_last_insert_rowid(db_handle(db_stmts_db(dj->s)));
	r = db_jobs_add_event(dj, id, NULL, row->state, row->reason, row->attempt, now_ms);
	if (r < 0)
		return r;
	*ret_id = id;
	return 0;
}

int db_jobs_transition(struct db_jobs *dj, const struct db_job_change *c, uint64_t now_ms)
{
	sqlite3_stmt *st;
	int rc, r;

	r = db_stmts_get(dj->s, STMT_UPDATE, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, c->id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, c->to_state, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, c->attempt);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, (sqlite3_int64)c->not_before_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, (sqlite3_int64)c->bytes_done);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 6, c->reason ? c->reason : "", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = db_bind_text_or_null(st, 7, c->old_hash);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 8, (sqlite3_int64)now_ms);
	r = db_stmt_write(dj->s, st, rc);
	if (r < 0)
		return r;
	if (r == 0)
		return -ENOENT;
	return db_jobs_add_event(dj, c->id, c->from_state, c->to_state, c->reason, c->attempt,
				 now_ms);
}

int db_jobs_update_progress(struct db_jobs *dj, int64_t id, uint64_t bytes_done, uint64_t now_ms)
{
	sqlite3_stmt *st;
	int rc, r;

	r = db_stmts_get(dj->s, STMT_PROGRESS, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)bytes_done);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)now_ms);
	return db_stmt_write(dj->s, st, rc);
}

static int db_jobs_walk(sqlite3_stmt *st, db_jobs_row_fn cb, void *userdata)
{
	int n = 0, r;

	while ((r = db_stmt_step(st)) > 0) {
		struct db_job row = {
			.id = sqlite3_column_int64(st, 0),
			.rollout_id = sqlite3_column_int64(st, 1),
			.device_id = db_column_text(st, 2),
			.state = db_column_text(st, 3),
			.attempt = (unsigned)sqlite3_column_int64(st, 4),
			.not_before_ms = db_column_u64(st, 5),
			.bytes_done = db_column_u64(st, 6),
			.bytes_total = db_column_u64(st, 7),
			.reason = db_column_text(st, 8),
			.old_hash = db_column_text(st, 9),
			.canary = sqlite3_column_int(st, 10) != 0,
			.created_at_ms = db_column_u64(st, 11),
			.updated_at_ms = db_column_u64(st, 12),
		};

		n++;
		r = cb(&row, userdata);
		if (r < 0) {
			db_stmt_done(st);
			return r;
		}
	}
	return r < 0 ? r : n;
}

/* Binds one int64 parameter or fails with the statement reset. */
static int db_jobs_bind_id(sqlite3_stmt *st, int i, int64_t v)
{
	int rc = sqlite3_bind_int64(st, i, v);

	if (rc != SQLITE_OK) {
		db_stmt_done(st);
		return db_stmt_errno(rc);
	}
	return 0;
}

int db_jobs_load_rollout(struct db_jobs *dj, int64_t rollout_id, db_jobs_row_fn cb, void *userdata)
{
	sqlite3_stmt *st;
	int r = db_stmts_get(dj->s, STMT_LOAD_ROLLOUT, &st);

	if (r < 0 || (r = db_jobs_bind_id(st, 1, rollout_id)) < 0)
		return r;
	return db_jobs_walk(st, cb, userdata);
}

int db_jobs_list(struct db_jobs *dj, int64_t rollout_id, const char *device_id, const char *state,
		 int64_t after_id, unsigned limit, db_jobs_row_fn cb, void *userdata)
{
	sqlite3_stmt *st;
	int rc, r;

	r = db_stmts_get(dj->s, STMT_LIST, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, rollout_id);
	if (rc == SQLITE_OK)
		rc = db_bind_text_or_null(st, 2, device_id);
	if (rc == SQLITE_OK)
		rc = db_bind_text_or_null(st, 3, state);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, after_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, limit ? (sqlite3_int64)limit : -1);
	if (rc != SQLITE_OK) {
		db_stmt_done(st);
		return db_stmt_errno(rc);
	}
	return db_jobs_walk(st, cb, userdata);
}

int db_jobs_get(struct db_jobs *dj, int64_t id, db_jobs_row_fn cb, void *userdata)
{
	sqlite3_stmt *st;
	int r = db_stmts_get(dj->s, STMT_GET, &st);

	if (r < 0 || (r = db_jobs_bind_id(st, 1, id)) < 0)
		return r;
	return db_jobs_walk(st, cb, userdata);
}

int db_jobs_events(struct db_jobs *dj, int64_t job_id, db_jobs_event_fn cb, void *userdata)
{
	sqlite3_stmt *st;
	int n = 0, r;

	r = db_stmts_get(dj->s, STMT_EVENTS, &st);
	if (r < 0 || (r = db_jobs_bind_id(st, 1, job_id)) < 0)
		return r;
	while ((r = db_stmt_step(st)) > 0) {
		struct db_job_event ev = {
			.id = sqlite3_column_int64(st, 0),
			.job_id = sqlite3_column_int64(st, 1),
			.at_ms = db_column_u64(st, 2),
			.from_state = (const char *)sqlite3_column_text(st, 3),
			.to_state = db_column_text(st, 4),
			.reason = db_column_text(st, 5),
			.attempt = (unsigned)sqlite3_column_int64(st, 6),
		};

		n++;
		r = cb(&ev, userdata);
		if (r < 0) {
			db_stmt_done(st);
			return r;
		}
	}
	return r < 0 ? r : n;
}

int db_jobs_count(struct db_jobs *dj, int64_t rollout_id, db_jobs_count_fn cb, void *userdata)
{
	sqlite3_stmt *st;
	int n = 0, r;

	r = db_stmts_get(dj->s, rollout_id ? STMT_COUNT_ROLLOUT : STMT_COUNT_ALL, &st);
	if (r < 0 || (rollout_id && (r = db_jobs_bind_id(st, 1, rollout_id)) < 0))
		return r;
	while ((r = db_stmt_step(st)) > 0) {
		n++;
		r = cb(db_column_text(st, 0), db_column_u64(st, 1), db_column_u64(st, 2),
		       db_column_u64(st, 3), userdata);
		if (r < 0) {
			db_stmt_done(st);
			return r;
		}
	}
	return r < 0 ? r : n;
}
