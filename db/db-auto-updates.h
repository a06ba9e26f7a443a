/* db-auto-updates: the auto_updates table: standing update rules, and what their rollouts left behind */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct db;
struct db_auto_updates;

/* One row. Strings handed to a row callback live until it returns. */
struct db_auto_update {
	int64_t id;
	const char *name;
	const char *selector;   /* JSON object */
	const char *firmware;   /* sha256 hex, NULL: the newest stored image matching image_name */
	const char *image_name; /* glob on the firmware's name, NULL: any */
	const char *strategy;   /* JSON object */
	bool allow_downgrade;
	bool enabled;
	uint64_t created_at_ms;
	uint64_t updated_at_ms;
};

/* The statements on auto_updates; free before db_close(). db is borrowed. */
int db_auto_updates_new(struct db *db, struct db_auto_updates **ret);
struct db_auto_updates *db_auto_updates_free(struct db_auto_updates *da);

/* Inserts a rule (id and times of row ignored: now_ms). Returns 0 and the
 * new id, -EEXIST when firmware names no firmware row, -errno. */
int db_auto_updates_insert(struct db_auto_updates *da, const struct db_auto_update *row,
			   uint64_t now_ms, int64_t *ret_id);
/* Replaces every column but id and created_at of rule row->id. Returns 0,
 * -ENOENT for no such rule, -EEXIST for an unknown firmware, -errno. */
int db_auto_updates_update(struct db_auto_updates *da, const struct db_auto_update *row,
			   uint64_t now_ms);
/* Deletes the rule (its rollouts stay, without it). Returns 0, -ENOENT, -errno. */
int db_auto_updates_delete(struct db_auto_updates *da, int64_t id);

/* Every rule, by id; a negative return from cb stops the walk and is
 * returned. Returns the number of rows or -errno. */
typedef int (*db_auto_updates_row_fn)(const struct db_auto_update *row, void *userdata);
int db_auto_updates_load(struct db_auto_updates *da, db_auto_updates_row_fn cb, void *userdata);

/* The last job that a rollout started by rule gave the device for this
 * firmware: its state (copied into ret_state, size state_size) and when
 * it last changed. Returns 1 with a job, 0 when the rule never gave the
 * device this firmware (outputs untouched), -errno. */
int db_auto_updates_last_job(struct db_auto_updates *da, int64_t rule, const char *device_id,
			     const char *firmware, char *ret_state, size_t state_size,
			     uint64_t *ret_at_ms);
/* When a job of the device (of any rollout) last changed state: what the
 * device reported before that may be stale. Returns 1 with a time, 0 when the
 * device never had a job, -errno. */
int db_auto_updates_device_job_time(struct db_auto_updates *da, const char *device_id,
				    uint64_t *ret_at_ms);
