/* db-jobs: the jobs and job_events tables: a rollout's jobs, their transitions and history */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct db;
struct db_jobs;

/* One job row. Strings handed to a row callback live until it returns. */
struct db_job {
	int64_t id;
	int64_t rollout_id;
	const char *device_id;
	const char *state;
	unsigned attempt;
	uint64_t not_before_ms; /* 0: none */
	uint64_t bytes_done;
	uint64_t bytes_total;
	const char *reason;
	const char *old_hash; /* hex, "" when not known yet */
	bool canary;
	uint64_t created_at_ms;
	uint64_t updated_at_ms;
};

/* One job_events row; from_state is NULL for the first one. */
struct db_job_event {
	int64_t id;
	int64_t job_id;
	uint64_t at_ms;
	const char *from_state;
	const char *to_state;
	const char *reason;
	unsigned attempt;
};

/* A transition: the job's new columns, and the event that records it. */
struct db_job_change {
	int64_t id;
	const char *from_state;
	const char *to_state;
	unsigned attempt;
	uint64_t not_before_ms;
	uint64_t bytes_done;
	const char *reason;
	const char *old_hash;
};

/* The statements on jobs and job_events; free before db_close(). db is borrowed. */
int db_jobs_new(struct db *db, struct db_jobs **ret);
struct db_jobs *db_jobs_free(struct db_jobs *dj);

/* Inserts a job (id and times of row ignored) and its first event (from
 * NULL to row->state, row->reason). Two writes: run it inside
 * db_begin()/db_commit() with the rollout. Returns 0 and the id, -EEXIST
 * when the device already has a job that is not final (or in this rollout),
 * or an unknown rollout or device; -errno. */
int db_jobs_insert(struct db_jobs *dj, const struct db_job *row, uint64_t now_ms,
		   int64_t *ret_id);
/* Updates the job and appends its event (two writes: inside a transaction
 * so that both or neither land). Returns 0, -ENOENT for no such job,
 * -EEXIST when the new state would give the device two active jobs, -errno. */
int db_jobs_transition(struct db_jobs *dj, const struct db_job_change *c, uint64_t now_ms);
/* Upload progress (batched by the caller). Returns the rows changed or -errno. */
int db_jobs_update_progress(struct db_jobs *dj, int64_t id, uint64_t bytes_done, uint64_t now_ms);

typedef int (*db_jobs_row_fn)(const struct db_job *row, void *userdata);
typedef int (*db_jobs_event_fn)(const struct db_job_event *ev, void *userdata);
/* Row walks, by id; a negative return from cb stops the walk and is
 * returned. Return the number of rows or -errno. */
int db_jobs_load_rollout(struct db_jobs *dj, int64_t rollout_id, db_jobs_row_fn cb, void *userdata);
/* Filters: rollout 0, device NULL, state NULL match any; at most limit rows
 * (0: no limit) with an id above after_id. */
int db_jobs_list(struct db_jobs *dj, int64_t rollout_id, const char *device_id, const char *state,
		 int64_t after_id, unsigned limit, db_jobs_row_fn cb, void *userdata);
/* One job: 1 when cb ran, 0 when there is none, or -errno. */
int db_jobs_get(struct db_jobs *dj, int64_t id, db_jobs_row_fn cb, void *userdata);
/* A job's events, oldest first. */
int db_jobs_events(struct db_jobs *dj, int64_t job_id, db_jobs_event_fn cb, void *userdata);

/* Jobs per state of one rollout (rollout_id 0: of every rollout), with
 * their bytes. States without jobs are not reported. */
typedef int (*db_jobs_count_fn)(const char *state, uint64_t n, uint64_t bytes_done,
				uint64_t bytes_total, void *userdata);
int db_jobs_count(struct db_jobs *dj, int64_t rollout_id, db_jobs_count_fn cb, void *userdata);
