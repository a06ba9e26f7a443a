/* db-rollouts: the rollouts table: creating, loading, listing and updating rollout rows */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct db;
struct db_rollouts;

/* One row. Strings handed to a row callback live until it returns. */
struct db_rollout {
	int64_t id;
	const char *firmware; /* sha256 hex of the firmware file */
	const char *state;
	const char *name;
	const char *strategy; /* JSON object */
	const char *selector; /* JSON object */
	const char *reason;
	const char *counters; /* JSON object, "{}" until final */
	int64_t auto_update_id; /* 0: none */
	bool canary_passed;
	uint64_t created_at_ms;
	uint64_t updated_at_ms;
	uint64_t finished_at_ms; /* 0: not final */
};

/* The statements on the rollouts table; free before db_close(). db is borrowed. */
int db_rollouts_new(struct db *db, struct db_rollouts **ret);
struct db_rollouts *db_rollouts_free(struct db_rollouts *dr);

/* Inserts a rollout (id, created/updated/finished times of row ignored:
 * now_ms). Returns 0 and the new id, -EEXIST (constraint: unknown
 * firmware or auto-update), -errno. */
int db_rollouts_insert(struct db_rollouts *dr, const struct db_rollout *row, uint64_t now_ms,
		       int64_t *ret_id);
/* Sets state, reason and canary_passed; finished_at_ms and counters (JSON,
 * NULL: keep) are written when the rollout becomes final. Returns the rows
 * changed (0: no such rollout) or -errno. */
int db_rollouts_update(struct db_rollouts *dr, int64_t id, const char *state, const char *reason,
		       bool canary_passed, const char *counters, uint64_t finished_at_ms,
		       uint64_t now_ms);

/* Row callbacks: a negative return stops the walk and is returned. */
typedef int (*db_rollouts_row_fn)(const struct db_rollout *row, void *userdata);
/* Rollouts whose state is not final (running, paused, waiting), by id.
 * Returns the number of rows or -errno. */
int db_rollouts_load_unfinished(struct db_rollouts *dr, db_rollouts_row_fn cb, void *userdata);
/* Every rollout, newest first. */
int db_rollouts_list(struct db_rollouts *dr, db_rollouts_row_fn cb, void *userdata);
/* One rollout: 1 when cb ran, 0 when there is none, or -errno. */
int db_rollouts_get(struct db_rollouts *dr, int64_t id, db_rollouts_row_fn cb, void *userdata);
