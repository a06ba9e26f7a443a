/* gw-rollout-internal: the rollout engine's shared state (gw-rollouts.c, gw-rollout-job.c, gw-rollout-sched.c) */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "lib/smp-client.h"
#include "lib/smp-image.h"

struct gw_manager;
struct gw_device;
struct db_rollouts;
struct db_jobs;
struct gw_rollouts;
struct gw_rollout;

enum gw_job_state {
	GW_JOB_QUEUED,
	GW_JOB_CONNECTING,
	GW_JOB_UPLOADING,
	GW_JOB_UPLOADED,
	GW_JOB_TESTING,
	GW_JOB_RESETTING,
	GW_JOB_REBOOTING,
	GW_JOB_VERIFYING,
	GW_JOB_CONFIRMING,
	GW_JOB_SUCCEEDED,
	GW_JOB_FAILED,
	GW_JOB_ROLLED_BACK,
	GW_JOB_CANCELED,
	_GW_JOB_STATE_MAX,
};

enum gw_rollout_state {
	GW_ROLLOUT_RUNNING,
	GW_ROLLOUT_PAUSED,
	GW_ROLLOUT_WAITING,
	GW_ROLLOUT_COMPLETED,
	GW_ROLLOUT_CANCELED,
	GW_ROLLOUT_FAILED,
	_GW_ROLLOUT_STATE_MAX,
};

enum gw_rollout_mode {
	GW_ROLLOUT_TEST_CONFIRM,
	GW_ROLLOUT_CONFIRM,
	GW_ROLLOUT_UPLOAD_ONLY,
};

const char *gw_job_state_to_string(enum gw_job_state s);
int gw_job_state_from_string(const char *s);
static inline bool gw_job_state_final(enum gw_job_state s)
{
	return s >= GW_JOB_SUCCEEDED;
}
const char *gw_rollout_state_to_string(enum gw_rollout_state s);
int gw_rollout_state_from_string(const char *s);
static inline bool gw_rollout_state_final(enum gw_rollout_state s)
{
	return s >= GW_ROLLOUT_COMPLETED;
}

/* The parsed "strategy" (gw-rollouts.h lists the keys and defaults). */
struct gw_rollout_strategy {
	enum gw_rollout_mode mode;
	unsigned max_parallel;
	unsigned canary;
	double max_failure_ratio; /* < 0: no threshold */
	unsigned min_finished;
	unsigned retries;
	uint64_t backoff_ms;
	uint64_t backoff_max_ms;
	uint64_t reboot_timeout_ms;
	bool has_window;
	unsigned window_start; /* minutes after local midnight */
	unsigned window_end;
	bool upgrade;
};

#define GW_ROLLOUT_MAX_PARALLEL 1000
#define GW_JOB_NOT_WAITING SIZE_MAX /* heap_idx of a job not in the wake heap */
#define GW_ROLLOUT_MAX_DEVICES 100000

/* gw-rollout-sched.c: strategies and windows. */
int gw_rollout_strategy_parse(const json_t *j, struct gw_rollout_strategy *ret, char *err,
			      size_t errlen);
json_t *gw_rollout_strategy_to_json(const struct gw_rollout_strategy *s);
/* Whether local time t is inside the window (always without one). */
bool gw_rollout_window_contains(const struct gw_rollout_strategy *s, time_t t);
/* The next time after t when t's side of the window changes; 0 without a window. */
time_t gw_rollout_window_next_change(const struct gw_rollout_strategy *s, time_t t);

/* Why a job waits on the engine's one timer. */
enum gw_job_wait {
	GW_JOB_WAIT_NONE,
	GW_JOB_WAIT_BACKOFF, /* not_before of a retry: then back to the ready list */
	GW_JOB_WAIT_PROBE,   /* rebooting: the next look at the device */
};

/* The device work a job has under way (one at a time). */
enum gw_job_op {
	GW_JOB_OP_NONE,
	GW_JOB_OP_CALL,   /* gw_devices_call_flags(): op_id is a gw-devices id */
	GW_JOB_OP_CLIENT, /* gw_devices_get_client(): a gw-devices id */
	GW_JOB_OP_UPLOAD, /* smp_image_upload() on client: a client id */
	GW_JOB_OP_RESET,  /* smp_client_reset_device() on client: a client id */
};

/* What a state read is for. */
enum gw_job_step {
	GW_JOB_STEP_INSPECT, /* connecting and resumes before the reset: where are we? */
	GW_JOB_STEP_PROBE,   /* rebooting: is the device back? */
	GW_JOB_STEP_VERIFY,
	GW_JOB_STEP_CONFIRM, /* the read right before a confirmation */
};

struct gw_job {
	struct gw_rollout *ro;
	int64_t id;
	char *device_id;
	enum gw_job_state state;
	unsigned attempt;       /* retries so far */
	uint64_t not_before_ms; /* realtime; 0: none */
	uint64_t bytes_done;
	uint64_t bytes_total;
	char *reason;
	char old_hash[2 * SMP_IMAGE_HASH_LEN + 1]; /* what the device ran before; "" unknown */
	bool canary;
	bool is_ble;
	bool resumed;  /* loaded mid-flight, or parked: its first step re-checks the device */
	bool removed;  /* the device was deleted (its rows with it): inert */
	bool wake_on_online; /* waiting out a backoff because the device was offline */

	/* scheduling (gw-rollout-sched.c) */
	bool active;   /* holds a slot: doing device work */
	bool ready;    /* in ro->ready, waiting for a slot */
	TAILQ_ENTRY(gw_job) ready_link;
	enum gw_job_wait wait;
	size_t heap_idx;
	uint64_t wake_usec; /* CLOCK_MONOTONIC */

	/* device work (gw-rollout-job.c) */
	enum gw_job_op op;
	enum gw_job_step step; /* of the state read under way */
	uint64_t op_id;
	struct smp_client *client; /* referenced while op is UPLOAD or RESET */
	bool held;                 /* gw_devices_hold() while uploading */
	uint64_t reboot_deadline_usec;
	uint64_t upload_start_usec;

	/* progress */
	uint64_t persisted_bytes;
	uint64_t persisted_usec;
	uint64_t published_usec;
	bool dirty;
	TAILQ_ENTRY(gw_job) dirty_link;
};

TAILQ_HEAD(gw_job_list, gw_job);

#define GW_ROLLOUT_SAMPLES 64

struct gw_rollout {
	struct gw_rollouts *rs;
	TAILQ_ENTRY(gw_rollout) link;
	int64_t id;
	char *firmware;
	char *name;
	json_t *strategy_json;
	json_t *selector;
	int64_t auto_update_id;
	struct gw_rollout_strategy strategy;
	enum gw_rollout_state state;
	char *reason;
	bool canary_passed;
	uint64_t created_at_ms;
	uint64_t updated_at_ms;

	/* the firmware */
	uint8_t image_hash[SMP_IMAGE_HASH_LEN];
	char image_hash_hex[2 * SMP_IMAGE_HASH_LEN + 1];
	uint8_t file_sha[32];
	char *version;
	uint64_t size;
	int fd; /* opened at the first upload, shared by every job (pread) */

	struct gw_job **jobs; /* by id */
	size_t n_jobs;
	struct gw_job_list ready;
	unsigned n_active;
	uint64_t counts[_GW_JOB_STATE_MAX];
	unsigned n_canary;
	uint64_t bytes_done;
	uint64_t bytes_total;
	uint64_t bytes_moved; /* acknowledged upload bytes, only growing: throughput */
	struct {
		uint64_t usec;
		uint64_t bytes;
	} samples[GW_ROLLOUT_SAMPLES];
	size_t n_samples;
	size_t sample_next;
	uint64_t published_usec;
	bool progress_dirty;
	bool reap; /* final: leaves memory at the next kick */
};

TAILQ_HEAD(gw_rollout_list, gw_rollout);

struct gw_rollouts {
	struct gw_manager *m;
	struct db_rollouts *dr;
	struct db_jobs *dj;
	struct gw_rollout_list rollouts; /* not final, by id */
	int64_t rr_next;                 /* round robin: the rollout served first next time */
	void *by_device;                 /* tsearch tree of jobs not final, by device id */
	struct gw_job **heap;            /* wake times */
	size_t n_heap;
	size_t heap_size;
	struct gw_job_list dirty; /* upload progress not yet written */
	sd_event_source *kick;    /* defer: schedule and reap */
	sd_event_source *wake;    /* the heap's timer */
	sd_event_source *tick;    /* 1 s while something moves: progress writes and events */
	sd_event_source *window;  /* the next window boundary of any rollout */
	unsigned n_active;
	unsigned n_active_ble;
	unsigned n_uploading;
	unsigned max_jobs; /* [rollouts] max_jobs; 0: no cap */
	unsigned ble_max;
	uint64_t counts[_GW_JOB_STATE_MAX]; /* every job in the database */
	bool freeing;
	bool hooked; /* our stop hook is registered with the manager */
};

/* gw-rollouts.c: persistence and bookkeeping. */
/* Commits the job's transition (and its event; old_hash rides along), then
 * updates memory, counters and publishes job.state; a final state ends the
 * job (slot, canary gate, failure ratio, completion). Returns 0, -ESHUTDOWN
 * when the manager is stopping (recorded: act no further), or -errno (logged;
 * the job is then parked: it waits and starts again from what the device
 * says). */
int gw_job_set_state(struct gw_job *job, enum gw_job_state to, const char *reason);
/* A transient failure: a retry from state from after the backoff, or failed
 * once the strategy's retries are spent. */
void gw_job_retry(struct gw_job *job, enum gw_job_state from, const char *reason);
/* Upload progress: memory now, database in batches, events throttled. */
void gw_job_progress(struct gw_job *job, uint64_t bytes_done);
/* Sets a rollout's state (persisted, rollout.state published). */
int gw_rollout_set_state(struct gw_rollout *ro, enum gw_rollout_state to, const char *reason);
/* The firmware file, opened once per rollout. Returns 0 or -errno. */
int gw_rollout_open_firmware(struct gw_rollout *ro, int *ret_fd);
void gw_rollouts_kick(struct gw_rollouts *rs);
uint64_t gw_rollouts_now_usec(struct gw_rollouts *rs);
void gw_rollouts_publish(struct gw_rollouts *rs, const char *type, struct gw_job *job,
			 int64_t rollout_id, json_t *data);
struct gw_device *gw_job_device(struct gw_job *job);

/* gw-rollout-sched.c: slots, the ready lists, the wake heap. */
int gw_rollouts_sched_init(struct gw_rollouts *rs);
void gw_rollouts_sched_done(struct gw_rollouts *rs);
/* Queues the job for a slot: work under way before new jobs. */
void gw_job_make_ready(struct gw_job *job);
void gw_job_unready(struct gw_job *job);
/* Takes / gives back the job's slot. */
void gw_job_activate(struct gw_job *job);
void gw_job_deactivate(struct gw_job *job);
/* Wakes the job at usec (CLOCK_MONOTONIC) for why; replaces an earlier wait. */
int gw_job_wait(struct gw_job *job, enum gw_job_wait why, uint64_t usec);
void gw_job_unwait(struct gw_job *job);
/* Starts the jobs that may start, fairly across rollouts; updates window states. */
void gw_rollouts_schedule(struct gw_rollouts *rs);

/* gw-rollout-job.c: the device work of each state. */
/* Starts the work of the job's state (it has just taken a slot or woken). */
void gw_job_run(struct gw_job *job);
/* The rebooting wait's next look at the device. */
void gw_job_probe(struct gw_job *job);
/* Cancels the work under way (no callback runs after), releases the hold. */
void gw_job_stop_work(struct gw_job *job);
/* The device came online: a job waiting for it looks now. */
void gw_job_on_online(struct gw_job *job);
