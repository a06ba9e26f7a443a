/* gw-rollouts: the rollout engine: a durable sqlite job queue driving each device through upload, test, reset, verify, confirm */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
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

/*
 * The strategy (the "strategy" object of a rollout; every key optional; the
 * rollout keeps it normalised, every key with its value):
 *   "mode": "test-confirm" (default: upload, test, reset, verify, confirm),
 *           "confirm" (upload, mark permanent, reset, verify) or
 *           "upload-only" (the image waits in slot 1)
 *   "max_parallel": jobs doing device work at once, 1..1000 (default 4)
 *   "canary": the first N jobs (in the order of "devices"; by device id for a
 *           selector) must all succeed before the others start; a canary that
 *           fails or rolls back pauses the rollout (default 0). Resuming such a
 *           rollout by hand opens the gate.
 *   "max_failure_ratio": 0..1: pause when (failed + rolled_back) / finished
 *           exceeds it once "min_finished" jobs finished (default: none)
 *   "min_finished": 1.. (default 1)
 *   "retries": further attempts after transient failures (timeout, link
 *           lost, busy or offline device, a reset that did not happen),
 *           counted over the job's whole life, 0..100 (default 3); a
 *           refusal by the device (image rejected) fails the job at once
 *   "backoff": seconds before the first retry, doubling (default 10; may be
 *           a fraction), capped by "backoff_max" (default 600)
 *   "window": "HH:MM-HH:MM", local time, may wrap midnight: jobs start only
 *           inside it (default null: any time). Outside, the rollout is
 *           "waiting"; jobs under way finish.
 *   "reboot_timeout": seconds a device may take to come back after the
 *           reset (default 120)
 *   "upgrade": true: the device refuses an image not newer than its own
 *           (the upload's "upgrade" flag; default false)
 * Pausing or leaving the window stops jobs from starting; jobs under way
 * (any state past queued, retries included) run to their end.
 *
 * Views (gw_rollouts_get/list): {"id", "name", "firmware", "state", "reason",
 * "strategy", "selector" (the request's devices or selector), "auto_update"
 * (id or null), "created_at", "updated_at", "finished_at" (ms or null),
 * "jobs": {"total": n, "<state>": n for every job state}, "bytes_done",
 * "bytes_total", "throughput" (bytes/s over the last minute), "eta_s" (s or
 * null)}. Jobs (gw_rollouts_jobs/job): {"id", "rollout", "device", "state",
 * "attempt", "not_before" (ms, 0: none), "bytes_done", "bytes_total",
 * "reason", "canary", "created_at", "updated_at"}; gw_rollouts_job adds
 * "events": [{"id", "at", "from" (null for the first), "to", "reason",
 * "attempt"}, ...] oldest first.
 *
 * Events published: job.state {job, device, rollout, from, to, reason,
 * attempt}; job.progress {job, device, rollout, bytes_done, bytes_total} (at
 * most 4/s per job); rollout.state {rollout, from, to, reason};
 * rollout.progress {rollout, jobs (counts as above), bytes_done, bytes_total,
 * throughput, eta_s} (at most 1/s per rollout).
 */

/* Loads every unfinished rollout and job and resumes them (a job found mid
 * flight is re-checked against the device first). Needs m->db, m->registry,
 * m->devices, m->firmware; publishes on m->events when set. Returns 0 or -errno. */
int gw_rollouts_new(struct gw_manager *m, struct gw_rollouts **ret);
struct gw_rollouts *gw_rollouts_free(struct gw_rollouts *rs);
/* Takes [rollouts] max_jobs and [ble] max_connections from m->config again
 * (SIGHUP) and schedules with them. */
void gw_rollouts_reload(struct gw_rollouts *rs);

/* Creates and starts a rollout. req is the POST /api/v1/rollouts body:
 * {"firmware": id, "devices": [ids] | "selector": {"labels": [...],
 * "transport": "udp", "version": "<1.2.0" | "1.0.0" ...}, "strategy": {...},
 * "name"?}. Unknown keys are refused. A selector takes the matching devices
 * that have no job in progress. Returns 0 and the id; -EINVAL with a
 * sentence in err (bad body, unknown device, empty device set), -ENOENT
 * unknown firmware, -EBUSY when a listed device (or every matching one)
 * already has an active job (err names it). */
int gw_rollouts_create(struct gw_rollouts *rs, const json_t *req, int64_t *ret_id, char *err,
		       size_t errlen);
/* gw_rollouts_create() for an auto-update rule: the rollout records the
 * rule's id (rollouts.auto_update_id, "auto_update" in the view). */
int gw_rollouts_create_auto(struct gw_rollouts *rs, const json_t *req, int64_t auto_update_id,
			    int64_t *ret_id, char *err, size_t errlen);
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
/* How many jobs are doing device work now (sd_notify STATUS). */
unsigned gw_rollouts_count_active(struct gw_rollouts *rs);

/* For /metrics: jobs per state (every state, zeros included), and per
 * unfinished rollout its bytes done and total. */
typedef void (*gw_rollouts_count_fn)(const char *state, uint64_t n, void *userdata);
void gw_rollouts_foreach_job_count(struct gw_rollouts *rs, gw_rollouts_count_fn fn, void *userdata);
typedef void (*gw_rollouts_bytes_fn)(int64_t rollout, uint64_t done, uint64_t total, void *userdata);
void gw_rollouts_foreach_bytes(struct gw_rollouts *rs, gw_rollouts_bytes_fn fn, void *userdata);

/* Checks a "strategy" object as gw_rollouts_create() would (for rules that
 * start rollouts later). Returns 0, or -EINVAL with a sentence in err. */
int gw_rollouts_check_strategy(const json_t *strategy, char *err, size_t errlen);

/* Writes the batched upload progress now (shutdown; also every 2 s while
 * uploads run). Returns 0 or -errno. */
int gw_rollouts_flush(struct gw_rollouts *rs);
