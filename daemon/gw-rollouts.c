/* gw-rollouts: the rollout engine: a durable sqlite job queue driving each device through upload, test, reset, verify, confirm */
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/gw-devices.h"
#include "daemon/gw-events.h"
#include "daemon/gw-firmware.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-rollout-internal.h"
#include "daemon/gw-rollouts.h"
#include "db/db-jobs.h"
#include "db/db-rollouts.h"
#include "db/db.h"
#include "lib/macro.h"

#define LOG "rollouts"
#define GW_TICK_USEC (1000ULL * 1000)
/* Progress is written when it moved this much of the file, or this long after the last write. */
#define GW_PROGRESS_WRITE_PCT 5
#define GW_PROGRESS_WRITE_USEC (2000ULL * 1000)
#define GW_PROGRESS_EVENT_USEC (250ULL * 1000)
#define GW_ROLLOUT_EVENT_USEC (1000ULL * 1000)
#define GW_THROUGHPUT_USEC (60ULL * 1000 * 1000)
/* A job whose transition could not be written waits this long before it looks again. */
#define GW_PARK_USEC (30ULL * 1000 * 1000)
#define GW_ROLLOUT_NAME_MAX 128

/* ---- names ---- */

static const char *const gw_job_state_names[_GW_JOB_STATE_MAX] = {
	[GW_JOB_QUEUED] = "queued",
	[GW_JOB_CONNECTING] = "connecting",
	[GW_JOB_UPLOADING] = "uploading",
	[GW_JOB_UPLOADED] = "uploaded",
	[GW_JOB_TESTING] = "testing",
	[GW_JOB_RESETTING] = "resetting",
	[GW_JOB_REBOOTING] = "rebooting",
	[GW_JOB_VERIFYING] = "verifying",
	[GW_JOB_CONFIRMING] = "confirming",
	[GW_JOB_SUCCEEDED] = "succeeded",
	[GW_JOB_FAILED] = "failed",
	[GW_JOB_ROLLED_BACK] = "rolled_back",
	[GW_JOB_CANCELED] = "canceled",
};

static const char *const gw_rollout_state_names[_GW_ROLLOUT_STATE_MAX] = {
	[GW_ROLLOUT_RUNNING] = "running",
	[GW_ROLLOUT_PAUSED] = "paused",
	[GW_ROLLOUT_WAITING] = "waiting",
	[GW_ROLLOUT_COMPLETED] = "completed",
	[GW_ROLLOUT_CANCELED] = "canceled",
	[GW_ROLLOUT_FAILED] = "failed",
};

const char *gw_job_state_to_string(enum gw_job_state s)
{
	return (unsigned)s < _GW_JOB_STATE_MAX ? gw_job_state_names[s] : NULL;
}

int gw_job_state_from_string(const char *s)
{
	for (int i = 0; s && i < _GW_JOB_STATE_MAX; i++)
		if (strcmp(s, gw_job_state_names[i]) == 0)
			return i;
	return -EINVAL;
}

const char *gw_rollout_state_to_string(enum gw_rollout_state s)
{
	return (unsigned)s < _GW_ROLLOUT_STATE_MAX ? gw_rollout_state_names[s] : NULL;
}

int gw_rollout_state_from_string(const char *s)
{
	for (int i = 0; s && i < _GW_ROLLOUT_STATE_MAX; i++)
		if (strcmp(s, gw_rollout_state_names[i]) == 0)
			return i;
	return -EINVAL;
}

static int gw_unhex(const char *hex, uint8_t *out, size_t n)
{
	if (!hex || strlen(hex) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* ---- small shared helpers ---- */

uint64_t gw_rollouts_now_usec(struct gw_rollouts *rs)
{
	uint64_t now = 0;

	(void)sd_event_now(rs->m->event, CLOCK_MONOTONIC, &now);
	return now;
}

struct gw_device *gw_job_device(struct gw_job *job)
{
	if (job->removed)
		return NULL;
	return gw_registry_find(job->ro->rs->m->registry, job->device_id);
}

void gw_rollouts_publish(struct gw_rollouts *rs, const char *type, struct gw_job *job,
			 int64_t rollout_id, json_t *data)
{
	if (!rs->m->events) {
		json_decref(data);
		return;
	}
	gw_events_publish(rs->m->events, type, job ? job->device_id : NULL, rollout_id, data);
}

void gw_rollouts_kick(struct gw_rollouts *rs)
{
	if (!rs->freeing)
		(void)sd_event_source_set_enabled(rs->kick, SD_EVENT_ONESHOT);
}

static void gw_rollouts_tick_start(struct gw_rollouts *rs)
{
	int enabled = SD_EVENT_OFF;

	if (rs->freeing)
		return;
	(void)sd_event_source_get_enabled(rs->tick, &enabled);
	if (enabled != SD_EVENT_OFF)
		return;
	(void)sd_event_source_set_time(rs->tick, gw_rollouts_now_usec(rs) + GW_TICK_USEC);
	(void)sd_event_source_set_enabled(rs->tick, SD_EVENT_ONESHOT);
}

/* ---- jobs by device (not final only) ---- */

static int gw_job_cmp_device(const void *a, const void *b)
{
	return strcmp(((const struct gw_job *)a)->device_id, ((const struct gw_job *)b)->device_id);
}

static struct gw_job *gw_rollouts_job_of_device(struct gw_rollouts *rs, const char *device_id)
{
	struct gw_job key = { .device_id = (char *)device_id };
	void *p = tfind(&key, &rs->by_device, gw_job_cmp_device);

	return p ? *(struct gw_job **)p : NULL;
}

static int gw_rollouts_index_job(struct gw_rollouts *rs, struct gw_job *job)
{
	void *p = tsearch(job, &rs->by_device, gw_job_cmp_device);

	if (!p)
		return -ENOMEM;
	return *(struct gw_job **)p == job ? 0 : -EEXIST;
}

static void gw_rollouts_unindex_job(struct gw_rollouts *rs, struct gw_job *job)
{
	if (gw_rollouts_job_of_device(rs, job->device_id) == job)
		tdelete(job, &rs->by_device, gw_job_cmp_device);
}

static void gw_nop_free(void *p)
{
}

/* ---- memory objects ---- */

static struct gw_job *gw_job_free(struct gw_job *job)
{
	if (!job)
		return NULL;
	free(job->device_id);
	free(job->reason);
	free(job);
	return NULL;
}

static struct gw_rollout *gw_rollout_free(struct gw_rollout *ro)
{
	if (!ro)
		return NULL;
	for (size_t i = 0; i < ro->n_jobs; i++)
		gw_job_free(ro->jobs[i]);
	free(ro->jobs);
	if (ro->fd >= 0)
		close(ro->fd);
	free(ro->firmware);
	free(ro->name);
	free(ro->reason);
	free(ro->version);
	json_decref(ro->strategy_json);
	json_decref(ro->selector);
	free(ro);
	return NULL;
}

static struct gw_rollout *gw_rollout_find(struct gw_rollouts *rs, int64_t id)
{
	struct gw_rollout *ro;

	TAILQ_FOREACH(ro, &rs->rollouts, link)
		if (ro->id == id)
			return ro;
	return NULL;
}

static struct gw_job *gw_rollout_find_job(struct gw_rollout *ro, int64_t id)
{
	size_t lo = 0, hi = ro->n_jobs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ro->jobs[mid]->id == id)
			return ro->jobs[mid];
		if (ro->jobs[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct gw_job *gw_rollouts_find_job(struct gw_rollouts *rs, int64_t rollout_id, int64_t id)
{
	struct gw_rollout *ro = gw_rollout_find(rs, rollout_id);

	return ro ? gw_rollout_find_job(ro, id) : NULL;
}

/* Reads what the rollout needs of its firmware. */
static int gw_rollout_load_firmware(struct gw_rollout *ro)
{
	_cleanup_(json_decrefp) json_t *info = NULL;
	const char *hash, *version;
	int r;

	r = gw_firmware_get(ro->rs->m->firmware, ro->firmware, &info);
	if (r < 0)
		return r;
	hash = json_string_value(json_object_get(info, "image_hash"));
	version = json_string_value(json_object_get(info, "version"));
	if (gw_unhex(hash, ro->image_hash, sizeof(ro->image_hash)) < 0 ||
	    gw_unhex(ro->firmware, ro->file_sha, sizeof(ro->file_sha)) < 0 ||
	    !json_is_integer(json_object_get(info, "size")))
		return -EBADMSG;
	snprintf(ro->image_hash_hex, sizeof(ro->image_hash_hex), "%s", hash);
	ro->size = (uint64_t)json_integer_value(json_object_get(info, "size"));
	ro->version = strdup(version ? version : "");
	return ro->version ? 0 : -ENOMEM;
}

int gw_rollout_open_firmware(struct gw_rollout *ro, int *ret_fd)
{
	uint64_t size;
	int fd, r;

	if (ro->fd < 0) {
		r = gw_firmware_open(ro->rs->m->firmware, ro->firmware, &fd, &size);
		if (r < 0)
			return r;
		if (size != ro->size) {
			close(fd);
			return -EIO;
		}
		ro->fd = fd;
	}
	*ret_fd = ro->fd;
	return 0;
}

static struct gw_rollout *gw_rollout_new(struct gw_rollouts *rs)
{
	struct gw_rollout *ro = calloc(1, sizeof(*ro));

	if (!ro)
		return NULL;
	ro->rs = rs;
	ro->fd = -1;
	TAILQ_INIT(&ro->ready);
	return ro;
}

static struct gw_job *gw_job_new(struct gw_rollout *ro, const struct db_job *row)
{
	struct gw_job *job = calloc(1, sizeof(*job));
	struct gw_device *d;
	int s = gw_job_state_from_string(row->state);

	if (!job)
		return NULL;
	job->ro = ro;
	job->id = row->id;
	job->state = s < 0 ? GW_JOB_FAILED : (enum gw_job_state)s;
	job->attempt = row->attempt;
	job->not_before_ms = row->not_before_ms;
	job->bytes_done = row->bytes_done;
	job->bytes_total = row->bytes_total;
	job->persisted_bytes = row->bytes_done;
	job->canary = row->canary;
	job->heap_idx = GW_JOB_NOT_WAITING;
	snprintf(job->old_hash, sizeof(job->old_hash), "%s", row->old_hash ? row->old_hash : "");
	job->device_id = strdup(row->device_id);
	job->reason = strdup(row->reason ? row->reason : "");
	if (!job->device_id || !job->reason)
		return gw_job_free(job);
	d = gw_registry_find(ro->rs->m->registry, job->device_id);
	job->is_ble = d && d->transport == GW_TRANSPORT_BLE;
	return job;
}

static int gw_rollout_add_job(struct gw_rollout *ro, struct gw_job *job)
{
	struct gw_job **jobs;

	if ((ro->n_jobs & (ro->n_jobs - 1)) == 0 || ro->n_jobs < 8) {
		jobs = reallocarray(ro->jobs, MAX(ro->n_jobs * 2, (size_t)8), sizeof(*jobs));
		if (!jobs)
			return -ENOMEM;
		ro->jobs = jobs;
	}
	ro->jobs[ro->n_jobs++] = job;
	ro->counts[job->state]++;
	ro->bytes_done += job->bytes_done;
	ro->bytes_total += job->bytes_total;
	if (job->canary)
		ro->n_canary++;
	return 0;
}

/* A job not final joins the queue: it waits out its backoff, or stands in line. */
static int gw_rollout_enqueue(struct gw_rollout *ro, struct gw_job *job, uint64_t now_ms)
{
	struct gw_rollouts *rs = ro->rs;
	int r;

	if (gw_job_state_final(job->state))
		return 0;
	r = gw_rollouts_index_job(rs, job);
	if (r < 0)
		return r;
	if (job->not_before_ms > now_ms)
		return gw_job_wait(job, GW_JOB_WAIT_BACKOFF,
				   gw_rollouts_now_usec(rs) + (job->not_before_ms - now_ms) * 1000);
	gw_job_make_ready(job);
	return 0;
}

/* ---- rollout states ---- */

static json_t *gw_counts_json(const uint64_t counts[_GW_JOB_STATE_MAX], uint64_t total)
{
	json_t *j = json_object();

	if (!j)
		return NULL;
	json_object_set_new(j, "total", json_integer((json_int_t)total));
	for (int s = 0; s < _GW_JOB_STATE_MAX; s++)
		json_object_set_new(j, gw_job_state_names[s], json_integer((json_int_t)counts[s]));
	return j;
}

static char *gw_rollout_counters_text(struct gw_rollout *ro, const uint64_t *counts)
{
	_cleanup_(json_decrefp) json_t *j = json_pack(
		"{s:o, s:I, s:I}", "jobs", gw_counts_json(counts, ro->n_jobs), "bytes_done",
		(json_int_t)ro->bytes_done, "bytes_total", (json_int_t)ro->bytes_total);

	return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

/* Writes the rollout's row (no transaction of its own: callers may batch);
 * counts (NULL: the rollout's) are the job counters a final row keeps. */
static int gw_rollout_persist(struct gw_rollout *ro, enum gw_rollout_state to, const char *reason,
			      const uint64_t *counts, uint64_t now_ms)
{
	_cleanup_free_ char *counters = NULL;
	bool final = gw_rollout_state_final(to);

	if (final) {
		counters = gw_rollout_counters_text(ro, counts ? counts : ro->counts);
		if (!counters)
			return -ENOMEM;
	}
	return db_rollouts_update(ro->rs->dr, ro->id, gw_rollout_state_names[to], reason,
				  ro->canary_passed, counters, final ? now_ms : 0, now_ms);
}

static void gw_rollout_apply_state(struct gw_rollout *ro, enum gw_rollout_state to,
				   const char *reason, uint64_t now_ms)
{
	enum gw_rollout_state from = ro->state;
	char *copy = strdup(reason ? reason : "");

	if (copy) {
		free(ro->reason);
		ro->reason = copy;
	}
	ro->state = to;
	ro->updated_at_ms = now_ms;
	if (from != to)
		gw_info(LOG, "rollout %lld: %s -> %s: %s", (long long)ro->id,
			gw_rollout_state_names[from], gw_rollout_state_names[to], reason);
	gw_rollouts_publish(ro->rs, "rollout.state", NULL, ro->id,
			    json_pack("{s:s, s:s, s:s}", "from", gw_rollout_state_names[from], "to",
				      gw_rollout_state_names[to], "reason", reason ? reason : ""));
	ro->progress_dirty = true;
	if (gw_rollout_state_final(to)) {
		ro->reap = true;
		if (ro->fd >= 0) {
			close(ro->fd);
			ro->fd = -1;
		}
	}
	gw_rollouts_tick_start(ro->rs);
	gw_rollouts_kick(ro->rs);
}

int gw_rollout_set_state(struct gw_rollout *ro, enum gw_rollout_state to, const char *reason)
{
	uint64_t now = gw_now_ms();
	int r;

	r = gw_rollout_persist(ro, to, reason, NULL, now);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, LOG, "rollout %lld: cannot record the state %s: %m",
				    (long long)ro->id, gw_rollout_state_names[to]);
	gw_rollout_apply_state(ro, to, reason, now);
	return 0;
}

static void gw_rollout_pause(struct gw_rollout *ro, const char *reason)
{
	if (ro->state == GW_ROLLOUT_RUNNING || ro->state == GW_ROLLOUT_WAITING)
		gw_rollout_set_state(ro, GW_ROLLOUT_PAUSED, reason);
}

/* What a job's end means for its rollout: the canary gate, the failure
 * threshold, completion. */
static void gw_rollout_after_job(struct gw_rollout *ro, struct gw_job *job)
{
	const struct gw_rollout_strategy *s = &ro->strategy;
	uint64_t bad, finished, final = 0;
	char reason[384];

	if (gw_rollout_state_final(ro->state))
		return;
	if (job->canary && !ro->canary_passed) {
		if (job->state == GW_JOB_FAILED || job->state == GW_JOB_ROLLED_BACK) {
			snprintf(reason, sizeof(reason), "canary job %lld on %s %s: %s",
				 (long long)job->id, job->device_id,
				 job->state == GW_JOB_FAILED ? "failed" : "rolled back", job->reason);
			gw_rollout_pause(ro, reason);
		} else {
			size_t i, ok = 0;

			/* Canaries are the rollout's first jobs. */
			for (i = 0; i < ro->n_jobs && i < ro->n_canary; i++)
				if (ro->jobs[i]->canary && ro->jobs[i]->state == GW_JOB_SUCCEEDED)
					ok++;
			if (ok == ro->n_canary) {
				ro->canary_passed = true;
				gw_rollout_set_state(ro, ro->state, "every canary succeeded");
			}
		}
	}
	bad = ro->counts[GW_JOB_FAILED] + ro->counts[GW_JOB_ROLLED_BACK];
	finished = bad + ro->counts[GW_JOB_SUCCEEDED];
	if (s->max_failure_ratio >= 0 && finished >= s->min_finished && finished > 0 &&
	    (double)bad / (double)finished > s->max_failure_ratio) {
		snprintf(reason, sizeof(reason),
			 "failure ratio %.2f (%llu of %llu finished jobs failed or rolled back) "
			 "exceeds max_failure_ratio %.2f",
			 (double)bad / (double)finished, (unsigned long long)bad,
			 (unsigned long long)finished, s->max_failure_ratio);
		gw_rollout_pause(ro, reason);
	}
	for (int st = GW_JOB_SUCCEEDED; st < _GW_JOB_STATE_MAX; st++)
		final += ro->counts[st];
	if (final == ro->n_jobs) {
		snprintf(reason, sizeof(reason),
			 "%llu succeeded, %llu failed, %llu rolled back, %llu canceled",
			 (unsigned long long)ro->counts[GW_JOB_SUCCEEDED],
			 (unsigned long long)ro->counts[GW_JOB_FAILED],
			 (unsigned long long)ro->counts[GW_JOB_ROLLED_BACK],
			 (unsigned long long)ro->counts[GW_JOB_CANCELED]);
		gw_rollout_set_state(ro, GW_ROLLOUT_COMPLETED, reason);
	}
}

/* ---- job transitions ---- */

static void gw_job_undirty(struct gw_job *job)
{
	if (job->dirty) {
		TAILQ_REMOVE(&job->ro->rs->dirty, job, dirty_link);
		job->dirty = false;
	}
}

/* The job leaves the queue for good: final, or its device is gone. */
static void gw_job_retire(struct gw_job *job)
{
	struct gw_rollouts *rs = job->ro->rs;

	gw_job_stop_work(job);
	gw_job_unready(job);
	gw_job_deactivate(job);
	gw_job_undirty(job);
	gw_rollouts_unindex_job(rs, job);
}

static int gw_job_persist(struct gw_job *job, enum gw_job_state to, unsigned attempt,
			  uint64_t not_before_ms, const char *reason, uint64_t now_ms)
{
	struct db_job_change c = {
		.id = job->id,
		.from_state = gw_job_state_names[job->state],
		.to_state = gw_job_state_names[to],
		.attempt = attempt,
		.not_before_ms = not_before_ms,
		.bytes_done = job->bytes_done,
		.reason = reason,
		.old_hash = job->old_hash,
	};

	return db_jobs_transition(job->ro->rs->dj, &c, now_ms);
}

static void gw_job_apply(struct gw_job *job, enum gw_job_state to, unsigned attempt,
			 uint64_t not_before_ms, const char *reason)
{
	struct gw_rollout *ro = job->ro;
	struct gw_rollouts *rs = ro->rs;
	enum gw_job_state from = job->state;
	char *copy = strdup(reason ? reason : "");

	if (copy) {
		free(job->reason);
		job->reason = copy;
	}
	ro->counts[from]--;
	ro->counts[to]++;
	if (rs->counts[from] > 0)
		rs->counts[from]--;
	rs->counts[to]++;
	job->state = to;
	job->attempt = attempt;
	job->not_before_ms = not_before_ms;
	job->persisted_bytes = job->bytes_done;
	job->persisted_usec = gw_rollouts_now_usec(rs);
	gw_job_undirty(job);
	gw_debug(LOG, "job %lld (%s): %s -> %s: %s", (long long)job->id, job->device_id,
		 gw_job_state_names[from], gw_job_state_names[to], reason);
	if (gw_job_state_final(to))
		gw_log(to == GW_JOB_SUCCEEDED || to == GW_JOB_CANCELED ? LOG_INFO : LOG_WARNING, LOG,
		       "job %lld (%s) %s: %s", (long long)job->id, job->device_id,
		       gw_job_state_names[to], reason);
	gw_rollouts_publish(rs, "job.state", job, ro->id,
			    json_pack("{s:I, s:s, s:s, s:s, s:I}", "job", (json_int_t)job->id,
				      "from", gw_job_state_names[from], "to", gw_job_state_names[to],
				      "reason", reason ? reason : "", "attempt", (json_int_t)attempt));
	ro->progress_dirty = true;
	gw_rollouts_tick_start(rs);
	if (gw_job_state_final(to)) {
		gw_job_retire(job);
		gw_rollout_after_job(ro, job);
	}
}

/* The database refused the write: the job stops and looks again later,
 * from what its device says (its state in the database is the old one). */
static void gw_job_park(struct gw_job *job, int error)
{
	struct gw_rollouts *rs = job->ro->rs;

	gw_log_errno(LOG_ERR, error, LOG, "job %lld (%s): cannot record a transition, retrying in "
		     "%llu s: %m", (long long)job->id, job->device_id,
		     (unsigned long long)(GW_PARK_USEC / 1000000));
	gw_job_stop_work(job);
	gw_job_deactivate(job);
	job->resumed = true;
	(void)gw_job_wait(job, GW_JOB_WAIT_BACKOFF, gw_rollouts_now_usec(rs) + GW_PARK_USEC);
}

static int gw_job_commit(struct gw_job *job, enum gw_job_state to, unsigned attempt,
			 uint64_t not_before_ms, const char *reason)
{
	struct db *db = job->ro->rs->m->db;
	uint64_t now = gw_now_ms();
	int r;

	if (job->removed)
		return -ENODEV;
	r = db_begin(db);
	if (r >= 0) {
		r = gw_job_persist(job, to, attempt, not_before_ms, reason, now);
		if (r >= 0)
			r = db_commit(db);
		if (r < 0)
			db_rollback(db);
	}
	if (r < 0) {
		gw_job_park(job, r);
		return r;
	}
	gw_job_apply(job, to, attempt, not_before_ms, reason);
	/* Shutting down: the state is recorded, the next start acts on it. */
	if (job->ro->rs->m->stopping && !gw_job_state_final(to))
		return -ESHUTDOWN;
	return 0;
}

int gw_job_set_state(struct gw_job *job, enum gw_job_state to, const char *reason)
{
	return gw_job_commit(job, to, job->attempt, 0, reason);
}

void gw_job_retry(struct gw_job *job, enum gw_job_state from, const char *reason)
{
	const struct gw_rollout_strategy *s = &job->ro->strategy;
	struct gw_rollouts *rs = job->ro->rs;
	uint64_t delay = s->backoff_ms, now = gw_now_ms();
	char text[512];

	gw_job_stop_work(job);
	if (job->attempt >= s->retries) {
		snprintf(text, sizeof(text), "%s (gave up after %u attempts)", reason, job->attempt + 1);
		gw_job_set_state(job, GW_JOB_FAILED, text);
		return;
	}
	for (unsigned i = 0; i < job->attempt && delay < s->backoff_max_ms; i++)
		delay *= 2;
	delay = MIN(delay, s->backoff_max_ms);
	snprintf(text, sizeof(text), "retry %u of %u in %.1f s: %s", job->attempt + 1, s->retries,
		 (double)delay / 1000, reason);
	if (gw_job_commit(job, from, job->attempt + 1, now + delay, text) < 0)
		return;
	gw_job_deactivate(job);
	if (gw_job_wait(job, GW_JOB_WAIT_BACKOFF, gw_rollouts_now_usec(rs) + delay * 1000) < 0)
		gw_job_make_ready(job);
}

/* ---- progress ---- */

void gw_job_progress(struct gw_job *job, uint64_t bytes_done)
{
	struct gw_rollout *ro = job->ro;
	struct gw_rollouts *rs = ro->rs;
	uint64_t now = gw_rollouts_now_usec(rs);

	if (bytes_done > job->bytes_total)
		bytes_done = job->bytes_total;
	if (bytes_done == job->bytes_done)
		return;
	if (bytes_done > job->bytes_done)
		ro->bytes_moved += bytes_done - job->bytes_done;
	ro->bytes_done = ro->bytes_done - job->bytes_done + bytes_done;
	job->bytes_done = bytes_done;
	if (!job->dirty) {
		TAILQ_INSERT_TAIL(&rs->dirty, job, dirty_link);
		job->dirty = true;
	}
	ro->progress_dirty = true;
	if (now - job->published_usec >= GW_PROGRESS_EVENT_USEC || bytes_done == job->bytes_total) {
		job->published_usec = now;
		gw_rollouts_publish(rs, "job.progress", job, ro->id,
				    json_pack("{s:I, s:I, s:I}", "job", (json_int_t)job->id,
					      "bytes_done", (json_int_t)bytes_done, "bytes_total",
					      (json_int_t)job->bytes_total));
	}
	gw_rollouts_tick_start(rs);
}

/* Writes the progress that moved enough (all of it with force) in one transaction. */
static int gw_rollouts_write_progress(struct gw_rollouts *rs, bool force)
{
	uint64_t now = gw_rollouts_now_usec(rs), now_ms = gw_now_ms();
	struct gw_job *job, *next;
	bool began = false;
	int r = 0;

	for (job = TAILQ_FIRST(&rs->dirty); job; job = next) {
		uint64_t moved = job->bytes_done > job->persisted_bytes
					 ? job->bytes_done - job->persisted_bytes
					 : job->persisted_bytes - job->bytes_done;

		next = TAILQ_NEXT(job, dirty_link);
		if (!force && moved * 100 < job->bytes_total * GW_PROGRESS_WRITE_PCT &&
		    now - job->persisted_usec < GW_PROGRESS_WRITE_USEC)
			continue;
		if (!began) {
			r = db_begin(rs->m->db);
			if (r < 0)
				break;
			began = true;
		}
		r = db_jobs_update_progress(rs->dj, job->id, job->bytes_done, now_ms);
		if (r < 0)
			break;
		job->persisted_bytes = job->bytes_done;
		job->persisted_usec = now;
		gw_job_undirty(job);
	}
	if (began) {
		if (r >= 0)
			r = db_commit(rs->m->db);
		if (r < 0)
			db_rollback(rs->m->db);
	}
	if (r < 0)
		gw_log_errno(LOG_WARNING, r, LOG, "cannot write upload progress, ignoring: %m");
	return r < 0 ? r : 0;
}

int gw_rollouts_flush(struct gw_rollouts *rs)
{
	return rs ? gw_rollouts_write_progress(rs, true) : 0;
}

static double gw_rollout_throughput(struct gw_rollout *ro, uint64_t now)
{
	uint64_t base_usec = 0, base_bytes = 0;
	bool found = false;

	/* The oldest sample of the last minute is the base. */
	for (size_t i = 0; i < ro->n_samples; i++) {
		size_t k = (ro->sample_next + GW_ROLLOUT_SAMPLES - ro->n_samples + i) %
			   GW_ROLLOUT_SAMPLES;

		if (ro->samples[k].usec + GW_THROUGHPUT_USEC >= now) {
			base_usec = ro->samples[k].usec;
			base_bytes = ro->samples[k].bytes;
			found = true;
			break;
		}
	}
	if (!found || now <= base_usec + 100000 || ro->bytes_moved < base_bytes)
		return 0;
	return (double)(ro->bytes_moved - base_bytes) * 1e6 / (double)(now - base_usec);
}

static void gw_rollout_sample(struct gw_rollout *ro, uint64_t now)
{
	ro->samples[ro->sample_next].usec = now;
	ro->samples[ro->sample_next].bytes = ro->bytes_moved;
	ro->sample_next = (ro->sample_next + 1) % GW_ROLLOUT_SAMPLES;
	if (ro->n_samples < GW_ROLLOUT_SAMPLES)
		ro->n_samples++;
}

/* Throughput and ETA of a rollout in memory. */
static void gw_rollout_rates(struct gw_rollout *ro, double *ret_throughput, json_t **ret_eta)
{
	double tp = gw_rollout_throughput(ro, gw_rollouts_now_usec(ro->rs));
	uint64_t left = ro->bytes_total > ro->bytes_done ? ro->bytes_total - ro->bytes_done : 0;

	*ret_throughput = tp;
	if (gw_rollout_state_final(ro->state) || left == 0)
		*ret_eta = json_integer(0);
	else if (tp > 0)
		*ret_eta = json_integer((json_int_t)((double)left / tp + 0.5));
	else
		*ret_eta = json_null();
}

static void gw_rollout_publish_progress(struct gw_rollout *ro)
{
	double tp;
	json_t *eta;

	gw_rollout_rates(ro, &tp, &eta);
	gw_rollouts_publish(ro->rs, "rollout.progress", NULL, ro->id,
			    json_pack("{s:o, s:I, s:I, s:f, s:o}", "jobs",
				      gw_counts_json(ro->counts, ro->n_jobs), "bytes_done",
				      (json_int_t)ro->bytes_done, "bytes_total",
				      (json_int_t)ro->bytes_total, "throughput", tp, "eta_s", eta));
}

static int gw_rollouts_on_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gw_rollouts *rs = userdata;
	uint64_t now = gw_rollouts_now_usec(rs);
	struct gw_rollout *ro;
	bool more = rs->n_uploading > 0;

	(void)gw_rollouts_write_progress(rs, false);
	if (!TAILQ_EMPTY(&rs->dirty))
		more = true;
	TAILQ_FOREACH(ro, &rs->rollouts, link) {
		if (ro->n_active > 0)
			gw_rollout_sample(ro, now);
		if (!ro->progress_dirty)
			continue;
		if (now - ro->published_usec < GW_ROLLOUT_EVENT_USEC) {
			more = true;
			continue;
		}
		ro->progress_dirty = false;
		ro->published_usec = now;
		gw_rollout_publish_progress(ro);
	}
	if (more) {
		(void)sd_event_source_set_time(s, now + GW_TICK_USEC);
		(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	}
	return 0;
}

/* ---- the kick: reap final rollouts, start what may start ---- */

static void gw_rollouts_reap(struct gw_rollouts *rs)
{
	struct gw_rollout *ro, *next;

	for (ro = TAILQ_FIRST(&rs->rollouts); ro; ro = next) {
		next = TAILQ_NEXT(ro, link);
		if (!ro->reap)
			continue;
		/* Its last progress goes out before it leaves memory. */
		if (ro->progress_dirty)
			gw_rollout_publish_progress(ro);
		for (size_t i = 0; i < ro->n_jobs; i++)
			gw_job_retire(ro->jobs[i]);
		TAILQ_REMOVE(&rs->rollouts, ro, link);
		gw_rollout_free(ro);
	}
}

static int gw_rollouts_on_kick(sd_event_source *s, void *userdata)
{
	struct gw_rollouts *rs = userdata;

	gw_rollouts_reap(rs);
	gw_rollouts_schedule(rs);
	gw_rollouts_reap(rs);
	return 0;
}

/* ---- the registry ---- */

static int gw_rollouts_recount_cb(const char *state, uint64_t n, uint64_t done, uint64_t total,
				  void *userdata)
{
	struct gw_rollouts *rs = userdata;
	int s = gw_job_state_from_string(state);

	if (s >= 0)
		rs->counts[s] = n;
	return 0;
}

static int gw_rollouts_recount(struct gw_rollouts *rs)
{
	memset(rs->counts, 0, sizeof(rs->counts));
	return db_jobs_count(rs->dj, 0, gw_rollouts_recount_cb, rs);
}

static void gw_rollouts_on_registry(struct gw_registry *r, enum gw_registry_event ev,
				    struct gw_device *d, const char *section, void *userdata)
{
	struct gw_rollouts *rs = userdata;
	struct gw_job *job = gw_rollouts_job_of_device(rs, d->id);
	enum gw_job_state from;

	if (!job)
		return;
	switch (ev) {
	case GW_REGISTRY_ONLINE:
		gw_job_on_online(job);
		break;
	case GW_REGISTRY_REMOVED:
		/* The device's rows went with it (ON DELETE CASCADE): the job
		 * ends in memory only. */
		gw_job_retire(job);
		job->removed = true;
		from = job->state;
		job->state = GW_JOB_CANCELED;
		job->ro->counts[from]--;
		job->ro->counts[GW_JOB_CANCELED]++;
		free(job->reason);
		job->reason = strdup("the device was removed");
		gw_warn(LOG, "job %lld: device %s removed, job dropped", (long long)job->id, d->id);
		gw_rollouts_publish(rs, "job.state", job, job->ro->id,
				    json_pack("{s:I, s:s, s:s, s:s, s:I}", "job", (json_int_t)job->id,
					      "from", gw_job_state_names[from], "to", "canceled",
					      "reason", "the device was removed", "attempt",
					      (json_int_t)job->attempt));
		(void)gw_rollouts_recount(rs);
		gw_rollout_after_job(job->ro, job);
		break;
	default:
		break;
	}
}

/* ---- start and stop ---- */

struct gw_rollouts_load {
	struct gw_rollouts *rs;
	struct gw_rollout *ro;
	int error;
};

static int gw_rollouts_load_job(const struct db_job *row, void *userdata)
{
	struct gw_rollouts_load *l = userdata;
	struct gw_job *job = gw_job_new(l->ro, row);

	if (!job || gw_rollout_add_job(l->ro, job) < 0) {
		gw_job_free(job);
		return -ENOMEM;
	}
	/* Found mid-flight: the device is asked first where things stand. */
	job->resumed = job->state != GW_JOB_QUEUED && !gw_job_state_final(job->state);
	return 0;
}

static int gw_rollouts_load_rollout(const struct db_rollout *row, void *userdata)
{
	struct gw_rollouts_load *l = userdata;
	struct gw_rollouts *rs = l->rs;
	struct gw_rollout *ro = gw_rollout_new(rs);
	char err[256] = "";
	int s, r;

	if (!ro)
		return -ENOMEM;
	ro->id = row->id;
	ro->firmware = strdup(row->firmware);
	ro->name = strdup(row->name);
	ro->reason = strdup(row->reason);
	ro->strategy_json = json_loads(row->strategy, 0, NULL);
	ro->selector = json_loads(row->selector, 0, NULL);
	ro->auto_update_id = row->auto_update_id;
	ro->canary_passed = row->canary_passed;
	ro->created_at_ms = row->created_at_ms;
	ro->updated_at_ms = row->updated_at_ms;
	s = gw_rollout_state_from_string(row->state);
	ro->state = s < 0 ? GW_ROLLOUT_PAUSED : (enum gw_rollout_state)s;
	if (!ro->firmware || !ro->name || !ro->reason) {
		gw_rollout_free(ro);
		return -ENOMEM;
	}
	if (!ro->selector)
		ro->selector = json_object();
	r = gw_rollout_strategy_parse(ro->strategy_json, &ro->strategy, err, sizeof(err));
	if (r < 0) {
		gw_warn(LOG, "rollout %lld: stored strategy unreadable (%s): using the defaults",
			(long long)ro->id, err);
		(void)gw_rollout_strategy_parse(NULL, &ro->strategy, err, sizeof(err));
	}
	if (!ro->strategy_json)
		ro->strategy_json = gw_rollout_strategy_to_json(&ro->strategy);
	l->ro = ro;
	r = db_jobs_load_rollout(rs->dj, ro->id, gw_rollouts_load_job, l);
	if (r < 0) {
		gw_rollout_free(ro);
		return r;
	}
	TAILQ_INSERT_TAIL(&rs->rollouts, ro, link);
	return 0;
}

/* Ends every job not final with state to and the rollout with rto, in one
 * transaction (cancel; a rollout whose firmware is gone). */
static int gw_rollout_end(struct gw_rollout *ro, enum gw_job_state to, enum gw_rollout_state rto,
			  const char *reason)
{
	struct db *db = ro->rs->m->db;
	uint64_t now = gw_now_ms(), counts[_GW_JOB_STATE_MAX];
	enum gw_rollout_state prev;
	int r;

	memcpy(counts, ro->counts, sizeof(counts));
	r = db_begin(db);
	for (size_t i = 0; r >= 0 && i < ro->n_jobs; i++) {
		struct gw_job *job = ro->jobs[i];

		if (gw_job_state_final(job->state) || job->removed)
			continue;
		r = gw_job_persist(job, to, job->attempt, 0, reason, now);
		counts[job->state]--;
		counts[to]++;
	}
	if (r >= 0)
		r = gw_rollout_persist(ro, rto, reason, counts, now);
	if (r >= 0)
		r = db_commit(db);
	if (r < 0) {
		db_rollback(db);
		return gw_log_errno(LOG_ERR, r, LOG, "rollout %lld: cannot record its end: %m",
				    (long long)ro->id);
	}
	/* Final first: the jobs' ends must not judge the rollout again. */
	prev = ro->state;
	ro->state = rto;
	for (size_t i = 0; i < ro->n_jobs; i++) {
		struct gw_job *job = ro->jobs[i];

		if (!gw_job_state_final(job->state) && !job->removed) {
			gw_job_stop_work(job);
			gw_job_apply(job, to, job->attempt, 0, reason);
		}
	}
	ro->state = prev;
	gw_rollout_apply_state(ro, rto, reason, now);
	return 0;
}

/* The stop hook: requests to devices whose answer decides the next recorded
 * state. Uploads are not waited for: the device keeps their offset. */
static int gw_rollouts_on_stop_busy(void *userdata)
{
	struct gw_rollouts *rs = userdata;
	struct gw_rollout *ro;
	int n = 0;

	TAILQ_FOREACH(ro, &rs->rollouts, link)
		for (size_t i = 0; i < ro->n_jobs; i++)
			if (ro->jobs[i]->op == GW_JOB_OP_CALL || ro->jobs[i]->op == GW_JOB_OP_RESET)
				n++;
	return n;
}

void gw_rollouts_reload(struct gw_rollouts *rs)
{
	const struct gw_config *c = &rs->m->config;

	rs->max_jobs = c->rollouts_max_jobs;
	rs->ble_max = MAX(c->ble_max_connections, 1u);
	/* A higher cap may let waiting jobs start; a lower one stops none that
	 * run: no new job starts until fewer than the cap are under way. */
	gw_rollouts_kick(rs);
}

int gw_rollouts_new(struct gw_manager *m, struct gw_rollouts **ret)
{
	struct gw_rollouts *rs;
	struct gw_rollouts_load l = { 0 };
	struct gw_rollout *ro;
	uint64_t now = gw_now_ms();
	unsigned resumed = 0, n = 0;
	int r;

	if (!m || !m->event || !m->db || !m->registry || !m->devices || !m->firmware)
		return -EINVAL;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	rs->m = m;
	TAILQ_INIT(&rs->rollouts);
	TAILQ_INIT(&rs->dirty);
	rs->max_jobs = m->config.rollouts_max_jobs;
	rs->ble_max = MAX(m->config.ble_max_connections, 1u);
	r = db_rollouts_new(m->db, &rs->dr);
	if (r >= 0)
		r = db_jobs_new(m->db, &rs->dj);
	if (r >= 0)
		r = sd_event_add_defer(m->event, &rs->kick, gw_rollouts_on_kick, rs);
	if (r >= 0) {
		(void)sd_event_source_set_enabled(rs->kick, SD_EVENT_OFF);
		(void)sd_event_source_set_description(rs->kick, "gw-rollouts-kick");
		r = sd_event_add_time(m->event, &rs->tick, CLOCK_MONOTONIC, 0, 0,
				      gw_rollouts_on_tick, rs);
	}
	if (r >= 0) {
		(void)sd_event_source_set_enabled(rs->tick, SD_EVENT_OFF);
		(void)sd_event_source_set_description(rs->tick, "gw-rollouts-tick");
		r = gw_rollouts_sched_init(rs);
	}
	if (r >= 0)
		r = gw_rollouts_recount(rs);
	if (r >= 0) {
		l.rs = rs;
		r = db_rollouts_load_unfinished(rs->dr, gw_rollouts_load_rollout, &l);
	}
	if (r >= 0)
		r = gw_registry_add_listener(m->registry, gw_rollouts_on_registry, rs);
	if (r >= 0) {
		r = gw_manager_add_stop_hook(m, gw_rollouts_on_stop_busy, rs);
		rs->hooked = r >= 0;
	}
	if (r < 0) {
		gw_rollouts_free(rs);
		return r;
	}
	TAILQ_FOREACH(ro, &rs->rollouts, link) {
		n++;
		r = gw_rollout_load_firmware(ro);
		if (r < 0) {
			char reason[160];

			snprintf(reason, sizeof(reason), "firmware %.64s is gone: %s", ro->firmware,
				 strerror(-r));
			(void)gw_rollout_end(ro, GW_JOB_FAILED, GW_ROLLOUT_FAILED, reason);
			continue;
		}
		for (size_t i = 0; i < ro->n_jobs; i++) {
			struct gw_job *job = ro->jobs[i];

			resumed += job->resumed;
			r = gw_rollout_enqueue(ro, job, now);
			if (r < 0) {
				gw_rollouts_free(rs);
				return r;
			}
		}
	}
	if (n > 0)
		gw_info(LOG, "resuming %u rollouts, %u jobs found mid-flight", n, resumed);
	gw_rollouts_kick(rs);
	*ret = rs;
	return 0;
}

struct gw_rollouts *gw_rollouts_free(struct gw_rollouts *rs)
{
	struct gw_rollout *ro;

	if (!rs)
		return NULL;
	rs->freeing = true;
	if (rs->hooked)
		gw_manager_remove_stop_hook(rs->m, gw_rollouts_on_stop_busy, rs);
	if (rs->m->registry)
		gw_registry_remove_listener(rs->m->registry, gw_rollouts_on_registry, rs);
	if (rs->dj)
		(void)gw_rollouts_write_progress(rs, true);
	/* Work under way stops here; the database already says where each job
	 * is, and the next start asks the devices. */
	TAILQ_FOREACH(ro, &rs->rollouts, link)
		for (size_t i = 0; i < ro->n_jobs; i++)
			gw_job_retire(ro->jobs[i]);
	while ((ro = TAILQ_FIRST(&rs->rollouts))) {
		TAILQ_REMOVE(&rs->rollouts, ro, link);
		gw_rollout_free(ro);
	}
	tdestroy(rs->by_device, gw_nop_free);
	gw_rollouts_sched_done(rs);
	sd_event_source_disable_unref(rs->kick);
	sd_event_source_disable_unref(rs->tick);
	db_jobs_free(rs->dj);
	db_rollouts_free(rs->dr);
	free(rs);
	return NULL;
}

/* ---- creating rollouts ---- */

/* The version of image 0's running slot as the poller last reported it. */
static const char *gw_device_running_version(struct gw_device *d)
{
	json_t *st = gw_registry_get_reported(d, "image_state", NULL), *e;
	size_t i;

	json_array_foreach(json_object_get(st, "images"), i, e) {
		json_t *image = json_object_get(e, "image");

		if (json_is_true(json_object_get(e, "active")) &&
		    (!image || json_integer_value(image) == 0))
			return json_string_value(json_object_get(e, "version"));
	}
	return NULL;
}

/* "<1.2.0", "<=1.2.0", ">", ">=", "=", "==", "!=" or a bare version (equal). */
static int gw_version_cond_split(const char *cond, char op[3], const char **ret_version)
{
	size_t n = strspn(cond, "<>=!");
	int c;

	if (n > 2)
		return -EINVAL;
	memcpy(op, cond, n);
	op[n] = 0;
	if (n > 0 && strcmp(op, "<") && strcmp(op, "<=") && strcmp(op, ">") && strcmp(op, ">=") &&
	    strcmp(op, "=") && strcmp(op, "==") && strcmp(op, "!="))
		return -EINVAL;
	if (gw_firmware_version_compare(cond + n, cond + n, &c) < 0)
		return -EINVAL;
	*ret_version = cond + n;
	return 0;
}

static bool gw_version_cond_match(const char *cond, const char *version)
{
	const char *want;
	char op[3];
	int c;

	if (!version || gw_version_cond_split(cond, op, &want) < 0 ||
	    gw_firmware_version_compare(version, want, &c) < 0)
		return false;
	if (strcmp(op, "<") == 0)
		return c < 0;
	if (strcmp(op, "<=") == 0)
		return c <= 0;
	if (strcmp(op, ">") == 0)
		return c > 0;
	if (strcmp(op, ">=") == 0)
		return c >= 0;
	if (strcmp(op, "!=") == 0)
		return c != 0;
	return c == 0;
}

static int gw_selector_check(const json_t *sel, char *err, size_t errlen)
{
	const char *key, *want;
	json_t *v, *e;
	char op[3];
	size_t i;

	if (!json_is_object(sel)) {
		snprintf(err, errlen, "selector must be an object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)sel, key, v) {
		if (strcmp(key, "labels") == 0) {
			if (!json_is_array(v)) {
				snprintf(err, errlen, "selector.labels must be an array of strings");
				return -EINVAL;
			}
			json_array_foreach(v, i, e)
				if (!json_is_string(e)) {
					snprintf(err, errlen,
						 "selector.labels must be an array of strings");
					return -EINVAL;
				}
		} else if (strcmp(key, "transport") == 0) {
			if (!json_is_string(v) || gw_transport_from_string(json_string_value(v)) < 0) {
				snprintf(err, errlen,
					 "selector.transport must be \"udp\", \"serial\" or \"ble\"");
				return -EINVAL;
			}
		} else if (strcmp(key, "version") == 0) {
			if (!json_is_string(v) ||
			    gw_version_cond_split(json_string_value(v), op, &want) < 0) {
				snprintf(err, errlen, "selector.version must be a version with an "
						      "optional comparison, such as \"<1.2.0\"");
				return -EINVAL;
			}
		} else {
			snprintf(err, errlen, "unknown selector key \"%.64s\"", key);
			return -EINVAL;
		}
	}
	return 0;
}

static bool gw_selector_match(const json_t *sel, struct gw_device *d)
{
	json_t *labels = json_object_get(sel, "labels"), *want, *have;
	const char *transport = json_string_value(json_object_get(sel, "transport"));
	const char *version = json_string_value(json_object_get(sel, "version"));
	size_t i, k;

	if (transport && strcmp(transport, gw_transport_to_string(d->transport)) != 0)
		return false;
	json_array_foreach(labels, i, want) {
		bool found = false;

		json_array_foreach(d->labels, k, have)
			if (json_equal(want, have)) {
				found = true;
				break;
			}
		if (!found)
			return false;
	}
	if (version && !gw_version_cond_match(version, gw_device_running_version(d)))
		return false;
	return true;
}

static int gw_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The devices of the request, in order: the list, or the registry's matches. */
static int gw_rollouts_pick_devices(struct gw_rollouts *rs, const json_t *req,
				    struct gw_device ***ret, size_t *ret_n, char *err, size_t errlen)
{
	json_t *list = json_object_get(req, "devices"), *sel = json_object_get(req, "selector"), *e;
	_cleanup_free_ struct gw_device **devs = NULL;
	_cleanup_free_ const char **ids = NULL;
	struct gw_device *d;
	size_t n = 0, i, busy = 0;
	const char *first_busy = NULL;
	int r;

	if (!!list == !!sel) {
		snprintf(err, errlen, "give either \"devices\" (a list of ids) or \"selector\"");
		return -EINVAL;
	}
	if (list) {
		if (!json_is_array(list) || json_array_size(list) == 0 ||
		    json_array_size(list) > GW_ROLLOUT_MAX_DEVICES) {
			snprintf(err, errlen, "devices must be a list of 1 to %u device ids",
				 GW_ROLLOUT_MAX_DEVICES);
			return -EINVAL;
		}
		devs = calloc(json_array_size(list), sizeof(*devs));
		ids = calloc(json_array_size(list), sizeof(*ids));
		if (!devs || !ids)
			return -ENOMEM;
		json_array_foreach(list, i, e) {
			const char *id = json_string_value(e);

			if (!id) {
				snprintf(err, errlen, "devices must be a list of device ids");
				return -EINVAL;
			}
			d = gw_registry_find(rs->m->registry, id);
			if (!d) {
				snprintf(err, errlen, "unknown device \"%.128s\"", id);
				return -EINVAL;
			}
			if (gw_rollouts_job_of_device(rs, d->id)) {
				snprintf(err, errlen, "device %s already has a job in progress",
					 d->id);
				return -EBUSY;
			}
			devs[n] = d;
			ids[n++] = d->id;
		}
		qsort(ids, n, sizeof(*ids), gw_cmp_str);
		for (i = 1; i < n; i++)
			if (strcmp(ids[i - 1], ids[i]) == 0) {
				snprintf(err, errlen, "device %s is listed twice", ids[i]);
				return -EINVAL;
			}
	} else {
		r = gw_selector_check(sel, err, errlen);
		if (r < 0)
			return r;
		devs = calloc(gw_registry_count(rs->m->registry) + 1, sizeof(*devs));
		if (!devs)
			return -ENOMEM;
		for (d = gw_registry_next(rs->m->registry, NULL); d;
		     d = gw_registry_next(rs->m->registry, d->id)) {
			if (!gw_selector_match(sel, d))
				continue;
			/* A selector takes the devices that are free; a list must be. */
			if (gw_rollouts_job_of_device(rs, d->id)) {
				if (!first_busy)
					first_busy = d->id;
				busy++;
				continue;
			}
			devs[n++] = d;
		}
		if (n == 0 && busy > 0) {
			snprintf(err, errlen, "every matching device already has a job in progress "
				 "(%s ...)", first_busy);
			return -EBUSY;
		}
		if (n == 0) {
			snprintf(err, errlen, "no device matches the selector");
			return -EINVAL;
		}
	}
	*ret = TAKE_PTR(devs);
	*ret_n = n;
	return 0;
}

static int gw_rollouts_check_request(const json_t *req, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(req)) {
		snprintf(err, errlen, "the rollout must be a JSON object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)req, key, v) {
		if (strcmp(key, "firmware") && strcmp(key, "devices") && strcmp(key, "selector") &&
		    strcmp(key, "strategy") && strcmp(key, "name")) {
			snprintf(err, errlen, "unknown key \"%.64s\"", key);
			return -EINVAL;
		}
	}
	if (!json_is_string(json_object_get(req, "firmware"))) {
		snprintf(err, errlen, "firmware (the id of an uploaded image) is required");
		return -EINVAL;
	}
	v = json_object_get(req, "name");
	if (v && (!json_is_string(v) || strlen(json_string_value(v)) > GW_ROLLOUT_NAME_MAX)) {
		snprintf(err, errlen, "name must be a string of at most %d bytes",
			 GW_ROLLOUT_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}

/* Writes the rollout and its jobs in one transaction. */
static int gw_rollouts_insert(struct gw_rollouts *rs, struct gw_rollout *ro, const char *strategy,
			      const char *selector, struct gw_device **devs, size_t n,
			      uint64_t now)
{
	struct db *db = rs->m->db;
	struct db_rollout row = {
		.firmware = ro->firmware,
		.state = gw_rollout_state_names[GW_ROLLOUT_RUNNING],
		.name = ro->name,
		.strategy = strategy,
		.selector = selector,
		.reason = "created",
		.auto_update_id = ro->auto_update_id,
		.canary_passed = ro->canary_passed,
	};
	int r;

	r = db_begin(db);
	if (r < 0)
		return r;
	r = db_rollouts_insert(rs->dr, &row, now, &ro->id);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		struct db_job jr = {
			.rollout_id = ro->id,
			.device_id = devs[i]->id,
			.state = gw_job_state_names[GW_JOB_QUEUED],
			.bytes_total = ro->size,
			.reason = "created",
			.canary = i < ro->strategy.canary,
		};
		struct gw_job *job;

		r = db_jobs_insert(rs->dj, &jr, now, &jr.id);
		if (r < 0)
			break;
		job = gw_job_new(ro, &jr);
		if (!job || gw_rollout_add_job(ro, job) < 0) {
			gw_job_free(job);
			r = -ENOMEM;
		}
	}
	if (r >= 0)
		r = db_commit(db);
	if (r < 0)
		db_rollback(db);
	return r;
}

int gw_rollouts_create_auto(struct gw_rollouts *rs, const json_t *req, int64_t auto_update_id,
			    int64_t *ret_id, char *err, size_t errlen)
{
	_cleanup_free_ struct gw_device **devs = NULL;
	_cleanup_free_ char *strategy = NULL, *selector = NULL;
	struct gw_rollout *ro;
	uint64_t now = gw_now_ms();
	const char *name;
	size_t n = 0;
	int r;

	if (!rs || !req)
		return -EINVAL;
	r = gw_rollouts_check_request(req, err, errlen);
	if (r < 0)
		return r;
	ro = gw_rollout_new(rs);
	if (!ro)
		return -ENOMEM;
	name = json_string_value(json_object_get(req, "name"));
	ro->firmware = strdup(json_string_value(json_object_get(req, "firmware")));
	ro->name = strdup(name ? name : "");
	ro->reason = strdup("created");
	ro->auto_update_id = auto_update_id;
	ro->state = GW_ROLLOUT_RUNNING;
	ro->created_at_ms = ro->updated_at_ms = now;
	if (!ro->firmware || !ro->name || !ro->reason) {
		r = -ENOMEM;
		goto fail;
	}
	r = gw_rollout_load_firmware(ro);
	if (r < 0) {
		snprintf(err, errlen, "unknown firmware \"%.80s\"", ro->firmware);
		if (r != -ENOMEM)
			r = -ENOENT;
		goto fail;
	}
	r = gw_rollout_strategy_parse(json_object_get(req, "strategy"), &ro->strategy, err, errlen);
	if (r < 0)
		goto fail;
	r = gw_rollouts_pick_devices(rs, req, &devs, &n, err, errlen);
	if (r < 0)
		goto fail;
	ro->canary_passed = ro->strategy.canary == 0;
	ro->strategy_json = gw_rollout_strategy_to_json(&ro->strategy);
	if (json_object_get(req, "devices"))
		ro->selector = json_pack("{s:O}", "devices", json_object_get(req, "devices"));
	else
		ro->selector = json_deep_copy(json_object_get(req, "selector"));
	if (!ro->strategy_json || !ro->selector ||
	    !(strategy = json_dumps(ro->strategy_json, JSON_COMPACT | JSON_REAL_PRECISION(12))) ||
	    !(selector = json_dumps(ro->selector, JSON_COMPACT))) {
		r = -ENOMEM;
		goto fail;
	}
	r = gw_rollouts_insert(rs, ro, strategy, selector, devs, n, now);
	if (r == -EEXIST) {
		snprintf(err, errlen, "a device already has a job in progress");
		r = -EBUSY;
	}
	if (r < 0)
		goto fail;
	TAILQ_INSERT_TAIL(&rs->rollouts, ro, link);
	rs->counts[GW_JOB_QUEUED] += n;
	for (size_t i = 0; i < ro->n_jobs; i++)
		if (gw_rollout_enqueue(ro, ro->jobs[i], now) < 0)
			gw_warn(LOG, "rollout %lld: job %lld not queued: out of memory",
				(long long)ro->id, (long long)ro->jobs[i]->id);
	gw_info(LOG, "rollout %lld: firmware %s (%s) to %zu devices, %s", (long long)ro->id,
		ro->firmware, ro->version, n,
		json_string_value(json_object_get(ro->strategy_json, "mode")));
	gw_rollouts_publish(rs, "rollout.state", NULL, ro->id,
			    json_pack("{s:n, s:s, s:s}", "from", "to", "running", "reason",
				      "created"));
	ro->progress_dirty = true;
	gw_rollouts_tick_start(rs);
	gw_rollouts_kick(rs);
	*ret_id = ro->id;
	return 0;
fail:
	gw_rollout_free(ro);
	return r;
}

int gw_rollouts_create(struct gw_rollouts *rs, const json_t *req, int64_t *ret_id, char *err,
		       size_t errlen)
{
	return gw_rollouts_create_auto(rs, req, 0, ret_id, err, errlen);
}

/* ---- pause, resume, cancel ---- */

/* -ENOENT when no rollout has this id, -EINVAL when it is final. */
static int gw_rollouts_lookup(struct gw_rollouts *rs, int64_t id, struct gw_rollout **ret)
{
	struct gw_rollout *ro;
	int r;

	if (!rs)
		return -EINVAL;
	ro = gw_rollout_find(rs, id);
	if (ro && !gw_rollout_state_final(ro->state)) {
		*ret = ro;
		return 0;
	}
	if (ro)
		return -EINVAL;
	r = db_rollouts_get(rs->dr, id, NULL, NULL);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : -EINVAL;
}

int gw_rollouts_pause(struct gw_rollouts *rs, int64_t id)
{
	struct gw_rollout *ro;
	int r = gw_rollouts_lookup(rs, id, &ro);

	if (r < 0)
		return r;
	if (ro->state == GW_ROLLOUT_PAUSED)
		return -EALREADY;
	return gw_rollout_set_state(ro, GW_ROLLOUT_PAUSED, "paused by request");
}

int gw_rollouts_resume(struct gw_rollouts *rs, int64_t id)
{
	struct gw_rollout *ro;
	int r = gw_rollouts_lookup(rs, id, &ro);

	if (r < 0)
		return r;
	if (ro->state != GW_ROLLOUT_PAUSED)
		return -EALREADY;
	if (!ro->canary_passed) {
		size_t i, done = 0;

		/* Every canary ended and one failed: resuming is the operator's
		 * decision to go on anyway. */
		for (i = 0; i < ro->n_jobs && i < ro->n_canary; i++)
			if (gw_job_state_final(ro->jobs[i]->state))
				done++;
		if (done == ro->n_canary)
			ro->canary_passed = true;
	}
	/* The window, if any, is judged at the next scheduling pass. */
	return gw_rollout_set_state(ro, GW_ROLLOUT_RUNNING, "resumed by request");
}

int gw_rollouts_cancel(struct gw_rollouts *rs, int64_t id)
{
	struct gw_rollout *ro;
	int r = gw_rollouts_lookup(rs, id, &ro);

	if (r == -EINVAL) {
		ro = gw_rollout_find(rs, id);
		if (ro && ro->state == GW_ROLLOUT_CANCELED)
			return -EALREADY;
	}
	if (r < 0)
		return r;
	return gw_rollout_end(ro, GW_JOB_CANCELED, GW_ROLLOUT_CANCELED, "canceled by request");
}

/* ---- views ---- */

struct gw_rollout_view {
	int64_t id;
	const char *name;
	const char *firmware;
	const char *state;
	const char *reason;
	json_t *strategy; /* borrowed */
	json_t *selector; /* borrowed */
	int64_t auto_update_id;
	uint64_t created_at_ms;
	uint64_t updated_at_ms;
	uint64_t finished_at_ms;
	json_t *jobs; /* stolen */
	uint64_t bytes_done;
	uint64_t bytes_total;
	double throughput;
	json_t *eta; /* stolen */
};

static json_t *gw_time_json(uint64_t ms)
{
	return ms ? json_integer((json_int_t)ms) : json_null();
}

static json_t *gw_rollout_view_json(const struct gw_rollout_view *v)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:O, s:O, s:o, s:I, s:I, s:o, s:o, s:I, s:I, "
			 "s:f, s:o}",
			 "id", (json_int_t)v->id, "name", v->name, "firmware", v->firmware, "state",
			 v->state, "reason", v->reason, "strategy", v->strategy, "selector",
			 v->selector, "auto_update",
			 v->auto_update_id > 0 ? json_integer(v->auto_update_id) : json_null(),
			 "created_at", (json_int_t)v->created_at_ms, "updated_at",
			 (json_int_t)v->updated_at_ms, "finished_at", gw_time_json(v->finished_at_ms),
			 "jobs", v->jobs, "bytes_done", (json_int_t)v->bytes_done, "bytes_total",
			 (json_int_t)v->bytes_total, "throughput", v->throughput, "eta_s", v->eta);
}

static json_t *gw_rollout_memory_json(struct gw_rollout *ro)
{
	struct gw_rollout_view v = {
		.id = ro->id,
		.name = ro->name,
		.firmware = ro->firmware,
		.state = gw_rollout_state_names[ro->state],
		.reason = ro->reason,
		.strategy = ro->strategy_json,
		.selector = ro->selector,
		.auto_update_id = ro->auto_update_id,
		.created_at_ms = ro->created_at_ms,
		.updated_at_ms = ro->updated_at_ms,
		.finished_at_ms = gw_rollout_state_final(ro->state) ? ro->updated_at_ms : 0,
		.jobs = gw_counts_json(ro->counts, ro->n_jobs),
		.bytes_done = ro->bytes_done,
		.bytes_total = ro->bytes_total,
	};

	gw_rollout_rates(ro, &v.throughput, &v.eta);
	return gw_rollout_view_json(&v);
}

struct gw_count_acc {
	uint64_t counts[_GW_JOB_STATE_MAX];
	uint64_t total;
	uint64_t bytes_done;
	uint64_t bytes_total;
};

static int gw_count_acc_cb(const char *state, uint64_t n, uint64_t done, uint64_t total,
			   void *userdata)
{
	struct gw_count_acc *a = userdata;
	int s = gw_job_state_from_string(state);

	if (s >= 0)
		a->counts[s] += n;
	a->total += n;
	a->bytes_done += done;
	a->bytes_total += total;
	return 0;
}

struct gw_view_ctx {
	struct gw_rollouts *rs;
	json_t *out; /* an array (list) or the one view (get) */
	int error;
};

static json_t *gw_rollout_row_json(struct gw_rollouts *rs, const struct db_rollout *row)
{
	_cleanup_(json_decrefp) json_t *strategy = json_loads(row->strategy, 0, NULL);
	_cleanup_(json_decrefp) json_t *selector = json_loads(row->selector, 0, NULL);
	_cleanup_(json_decrefp) json_t *counters = json_loads(row->counters, 0, NULL);
	struct gw_rollout_view v = {
		.id = row->id,
		.name = row->name,
		.firmware = row->firmware,
		.state = row->state,
		.reason = row->reason,
		.auto_update_id = row->auto_update_id,
		.created_at_ms = row->created_at_ms,
		.updated_at_ms = row->updated_at_ms,
		.finished_at_ms = row->finished_at_ms,
		.eta = json_integer(0),
	};
	json_t *jobs = json_object_get(counters, "jobs");

	if (!strategy)
		strategy = json_object();
	if (!selector)
		selector = json_object();
	v.strategy = strategy;
	v.selector = selector;
	if (json_is_object(jobs)) {
		v.jobs = json_incref(jobs);
		v.bytes_done = (uint64_t)json_integer_value(json_object_get(counters, "bytes_done"));
		v.bytes_total = (uint64_t)json_integer_value(json_object_get(counters, "bytes_total"));
	} else {
		struct gw_count_acc a = { 0 };

		(void)db_jobs_count(rs->dj, row->id, gw_count_acc_cb, &a);
		v.jobs = gw_counts_json(a.counts, a.total);
		v.bytes_done = a.bytes_done;
		v.bytes_total = a.bytes_total;
	}
	return gw_rollout_view_json(&v);
}

static int gw_rollouts_view_row(const struct db_rollout *row, void *userdata)
{
	struct gw_view_ctx *c = userdata;
	struct gw_rollout *ro = gw_rollout_find(c->rs, row->id);
	json_t *j = ro ? gw_rollout_memory_json(ro) : gw_rollout_row_json(c->rs, row);

	if (!j)
		return -ENOMEM;
	if (json_is_array(c->out))
		return json_array_append_new(c->out, j) < 0 ? -ENOMEM : 0;
	c->out = j;
	return 0;
}

int gw_rollouts_get(struct gw_rollouts *rs, int64_t id, json_t **ret)
{
	struct gw_view_ctx c = { .rs = rs };
	int r;

	if (!rs)
		return -EINVAL;
	r = db_rollouts_get(rs->dr, id, gw_rollouts_view_row, &c);
	if (r < 0)
		return r;
	if (r == 0 || !c.out)
		return -ENOENT;
	*ret = c.out;
	return 0;
}

int gw_rollouts_list(struct gw_rollouts *rs, json_t **ret)
{
	struct gw_view_ctx c = { .rs = rs };
	int r;

	if (!rs)
		return -EINVAL;
	c.out = json_array();
	if (!c.out)
		return -ENOMEM;
	r = db_rollouts_list(rs->dr, gw_rollouts_view_row, &c);
	if (r < 0) {
		json_decref(c.out);
		return r;
	}
	*ret = c.out;
	return 0;
}

static json_t *gw_job_row_json(struct gw_rollouts *rs, const struct db_job *row)
{
	struct gw_job *job = gw_rollouts_find_job(rs, row->rollout_id, row->id);
	/* The database has everything but the latest upload progress. */
	uint64_t done = job && !job->removed ? job->bytes_done : row->bytes_done;

	return json_pack("{s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:b, s:I, s:I}", "id",
			 (json_int_t)row->id, "rollout", (json_int_t)row->rollout_id, "device",
			 row->device_id, "state", row->state, "attempt", (json_int_t)row->attempt,
			 "not_before", (json_int_t)row->not_before_ms, "bytes_done",
			 (json_int_t)done, "bytes_total", (json_int_t)row->bytes_total, "reason",
			 row->reason, "canary", row->canary, "created_at",
			 (json_int_t)row->created_at_ms, "updated_at", (json_int_t)row->updated_at_ms);
}

static int gw_rollouts_job_row(const struct db_job *row, void *userdata)
{
	struct gw_view_ctx *c = userdata;
	json_t *j = gw_job_row_json(c->rs, row);

	if (!j)
		return -ENOMEM;
	if (json_is_array(c->out))
		return json_array_append_new(c->out, j) < 0 ? -ENOMEM : 0;
	c->out = j;
	return 0;
}

int gw_rollouts_jobs(struct gw_rollouts *rs, int64_t rollout, const char *device,
		     const char *state, json_t **ret)
{
	struct gw_view_ctx c = { .rs = rs };
	int r;

	if (!rs || (state && gw_job_state_from_string(state) < 0))
		return -EINVAL;
	c.out = json_array();
	if (!c.out)
		return -ENOMEM;
	r = db_jobs_list(rs->dj, rollout, device, state, 0, 0, gw_rollouts_job_row, &c);
	if (r < 0) {
		json_decref(c.out);
		return r;
	}
	*ret = c.out;
	return 0;
}

static int gw_rollouts_event_row(const struct db_job_event *ev, void *userdata)
{
	json_t *events = userdata;
	json_t *j = json_pack("{s:I, s:I, s:o, s:s, s:s, s:I}", "id", (json_int_t)ev->id, "at",
			      (json_int_t)ev->at_ms, "from",
			      ev->from_state ? json_string(ev->from_state) : json_null(), "to",
			      ev->to_state, "reason", ev->reason, "attempt", (json_int_t)ev->attempt);

	if (!j)
		return -ENOMEM;
	return json_array_append_new(events, j) < 0 ? -ENOMEM : 0;
}

int gw_rollouts_job(struct gw_rollouts *rs, int64_t id, json_t **ret)
{
	struct gw_view_ctx c = { .rs = rs };
	json_t *events;
	int r;

	if (!rs)
		return -EINVAL;
	r = db_jobs_get(rs->dj, id, gw_rollouts_job_row, &c);
	if (r < 0)
		return r;
	if (r == 0 || !c.out)
		return -ENOENT;
	events = json_array();
	if (!events || json_object_set_new(c.out, "events", events) < 0) {
		json_decref(c.out);
		return -ENOMEM;
	}
	r = db_jobs_events(rs->dj, id, gw_rollouts_event_row, events);
	if (r < 0) {
		json_decref(c.out);
		return r;
	}
	*ret = c.out;
	return 0;
}

/* ---- what others ask ---- */

bool gw_rollouts_device_busy(struct gw_rollouts *rs, const char *device_id)
{
	return rs && device_id && gw_rollouts_job_of_device(rs, device_id);
}

bool gw_rollouts_active(struct gw_rollouts *rs)
{
	return rs && rs->n_active > 0;
}

unsigned gw_rollouts_count_active(struct gw_rollouts *rs)
{
	return rs ? rs->n_active : 0;
}

void gw_rollouts_foreach_job_count(struct gw_rollouts *rs, gw_rollouts_count_fn fn, void *userdata)
{
	for (int s = 0; s < _GW_JOB_STATE_MAX; s++)
		fn(gw_job_state_names[s], rs ? rs->counts[s] : 0, userdata);
}

void gw_rollouts_foreach_bytes(struct gw_rollouts *rs, gw_rollouts_bytes_fn fn, void *userdata)
{
	struct gw_rollout *ro;

	if (!rs)
		return;
	TAILQ_FOREACH(ro, &rs->rollouts, link)
		if (!gw_rollout_state_final(ro->state))
			fn(ro->id, ro->bytes_done, ro->bytes_total, userdata);
}
