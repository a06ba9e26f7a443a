/* gw-rollouts: the rollout engine: a durable sqlite job queue driving each device through upload, test, reset, verify, confirm */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct gw_manager;
struct gw_rollouts;

/*
 * Job states (design.md): queued, connecting, uploading, uploaded, testing,
 * resetting, rebooting, verifying, confirming; final: succeeded, failed,
 * rolled_back, canceled. Rollout states: running, paused (by hand or by the
 * failure threshold; reason says which), waiting (outside its window);
 * final: completed (every job final), canceled, failed (could not start:
 * firmware gone). Every job transition is committed (with a job_events row)
 * before the engine acts on the new state.
 */

/* Loads every unfinished rollout and job and resumes them (a job found mid
 * flight is re-checked against the device first). Needs m->db, m->registry,
 * m->devices, m->firmware; publishes on m->events when set. Returns 0 or -errno. */
int gw_rollouts_new(struct gw_manager *m, struct gw_rollouts **ret);
struct gw_rollouts *gw_rollouts_free(struct gw_rollouts *rs);

/* Creates and starts a rollout. req is the POST /api/v1/rollouts body:
 * {"firmware": id, "devices": [ids] | "selector": {"labels": [...],
 * "transport": "udp", "version": "<1.2.0" | "1.0.0" ...}, "strategy": {...},
 * "name"?}. Returns 0 and the id; -EINVAL with a sentence in err (bad body,
 * unknown device, empty device set), -ENOENT unknown firmware, -EBUSY when a
 * device already has an active job (err names it). */
int gw_rollouts_create(struct gw_rollouts *rs, const json_t *req, int64_t *ret_id, char *err,
		       size_t errlen);
int gw_rollouts_pause(struct gw_rollouts *rs, int64_t id);   /* -ENOENT, -EALREADY, -EINVAL (final) */
int gw_rollouts_resume(struct gw_rollouts *rs, int64_t id);
int gw_rollouts_cancel(struct gw_rollouts *rs, int64_t id);  /* jobs not final become canceled
							       * (a device mid-test is left to revert
							       * on its next reset: never confirmed) */

/* JSON views for the API: a rollout with state, counts per job state, bytes
 * done/total, throughput (bytes/s over the last minute), ETA (s or null). */
int gw_rollouts_get(struct gw_rollouts *rs, int64_t id, json_t **ret);
int gw_rollouts_list(struct gw_rollouts *rs, json_t **ret);
/* Jobs filtered by rollout (0: any), device (NULL: any), state (NULL: any). */
int gw_rollouts_jobs(struct gw_rollouts *rs, int64_t rollout, const char *device,
		     const char *state, json_t **ret);
/* One job with its whole job_events history. */
int gw_rollouts_job(struct gw_rollouts *rs, int64_t id, json_t **ret);

/* Whether the device has a job that is not final (DELETE device answers 409). */
bool gw_rollouts_device_busy(struct gw_rollouts *rs, const char *device_id);
/* Whether any job is doing device work now (for the shutdown bound). */
bool gw_rollouts_active(struct gw_rollouts *rs);

/* For /metrics: jobs per state (every state, zeros included), and per
 * unfinished rollout its bytes done and total. */
typedef void (*gw_rollouts_count_fn)(const char *state, uint64_t n, void *userdata);
void gw_rollouts_foreach_job_count(struct gw_rollouts *rs, gw_rollouts_count_fn fn, void *userdata);
typedef void (*gw_rollouts_bytes_fn)(int64_t rollout, uint64_t done, uint64_t total, void *userdata);
void gw_rollouts_foreach_bytes(struct gw_rollouts *rs, gw_rollouts_bytes_fn fn, void *userdata);
