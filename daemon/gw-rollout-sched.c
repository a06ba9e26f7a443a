/* gw-rollout-sched: strategies, windows, slots and the fair start of jobs across rollouts */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-rollout-internal.h"
#include "daemon/gw-rollouts.h"
#include "lib/macro.h"

#define LOG "rollouts"
/* Entries of a ready list looked at per pick: jobs under way and canaries
 * are at its front, so a longer look would only find what may not start. */
#define GW_SCHED_SCAN_MAX 64

/* ---- strategies ---- */

static const char *const gw_rollout_mode_names[] = {
	[GW_ROLLOUT_TEST_CONFIRM] = "test-confirm",
	[GW_ROLLOUT_CONFIRM] = "confirm",
	[GW_ROLLOUT_UPLOAD_ONLY] = "upload-only",
};

static void gw_rollout_strategy_defaults(struct gw_rollout_strategy *s)
{
	*s = (struct gw_rollout_strategy){
		.mode = GW_ROLLOUT_TEST_CONFIRM,
		.max_parallel = 4,
		.canary = 0,
		.max_failure_ratio = -1,
		.min_finished = 1,
		.retries = 3,
		.backoff_ms = 10000,
		.backoff_max_ms = 600000,
		.reboot_timeout_ms = 120000,
	};
}

static int gw_strategy_uint(const json_t *v, const char *key, unsigned lo, unsigned hi,
			    unsigned *ret, char *err, size_t errlen)
{
	json_int_t n;

	if (!json_is_integer(v) || (n = json_integer_value(v)) < lo || n > hi) {
		snprintf(err, errlen, "strategy.%s must be an integer from %u to %u", key, lo, hi);
		return -EINVAL;
	}
	*ret = (unsigned)n;
	return 0;
}

/* Seconds (integer or fraction) as milliseconds. */
static int gw_strategy_seconds(const json_t *v, const char *key, double lo, double hi,
			       uint64_t *ret, char *err, size_t errlen)
{
	double d;

	if (!json_is_number(v) || !isfinite(d = json_number_value(v)) || d < lo || d > hi) {
		snprintf(err, errlen, "strategy.%s must be a number of seconds from %g to %g", key,
			 lo, hi);
		return -EINVAL;
	}
	*ret = (uint64_t)(d * 1000 + 0.5); /* d >= 0: rounds to the nearest ms */
	return 0;
}

static int gw_strategy_window(const char *text, struct gw_rollout_strategy *s)
{
	unsigned h1, m1, h2, m2;
	int n = -1;

	if (sscanf(text, "%2u:%2u-%2u:%2u%n", &h1, &m1, &h2, &m2, &n) != 4 || n < 0 ||
	    (size_t)n != strlen(text) || strlen(text) != 11 || h1 > 23 || h2 > 23 || m1 > 59 ||
	    m2 > 59)
		return -EINVAL;
	s->window_start = h1 * 60 + m1;
	s->window_end = h2 * 60 + m2;
	if (s->window_start == s->window_end)
		return -EINVAL;
	s->has_window = true;
	return 0;
}

int gw_rollouts_check_strategy(const json_t *strategy, char *err, size_t errlen)
{
	struct gw_rollout_strategy parsed;

	return gw_rollout_strategy_parse(strategy, &parsed, err, errlen);
}

int gw_rollout_strategy_parse(const json_t *j, struct gw_rollout_strategy *ret, char *err,
			      size_t errlen)
{
	struct gw_rollout_strategy s;
	const char *key;
	json_t *v;
	int r = 0;

	gw_rollout_strategy_defaults(&s);
	if (j && !json_is_null(j) && !json_is_object(j)) {
		snprintf(err, errlen, "strategy must be an object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)j, key, v) {
		if (strcmp(key, "mode") == 0) {
			const char *m = json_string_value(v);
			size_t i;

			for (i = 0; m && i < ELEMENTSOF(gw_rollout_mode_names); i++)
				if (strcmp(m, gw_rollout_mode_names[i]) == 0)
					break;
			if (!m || i == ELEMENTSOF(gw_rollout_mode_names)) {
				snprintf(err, errlen, "strategy.mode must be \"test-confirm\", "
						      "\"confirm\" or \"upload-only\"");
				return -EINVAL;
			}
			s.mode = (enum gw_rollout_mode)i;
		} else if (strcmp(key, "max_parallel") == 0) {
			r = gw_strategy_uint(v, key, 1, GW_ROLLOUT_MAX_PARALLEL, &s.max_parallel, err,
					     errlen);
		} else if (strcmp(key, "canary") == 0) {
			r = gw_strategy_uint(v, key, 0, GW_ROLLOUT_MAX_DEVICES, &s.canary, err, errlen);
		} else if (strcmp(key, "min_finished") == 0) {
			r = gw_strategy_uint(v, key, 1, GW_ROLLOUT_MAX_DEVICES, &s.min_finished, err,
					     errlen);
		} else if (strcmp(key, "retries") == 0) {
			r = gw_strategy_uint(v, key, 0, 100, &s.retries, err, errlen);
		} else if (strcmp(key, "max_failure_ratio") == 0) {
			double d = json_number_value(v);

			if (json_is_null(v)) {
				s.max_failure_ratio = -1;
			} else if (!json_is_number(v) || !isfinite(d) || d < 0 || d > 1) {
				snprintf(err, errlen,
					 "strategy.max_failure_ratio must be a number from 0 to 1");
				return -EINVAL;
			} else {
				s.max_failure_ratio = d;
			}
		} else if (strcmp(key, "backoff") == 0) {
			r = gw_strategy_seconds(v, key, 0, 86400, &s.backoff_ms, err, errlen);
		} else if (strcmp(key, "backoff_max") == 0) {
			r = gw_strategy_seconds(v, key, 0, 86400, &s.backoff_max_ms, err, errlen);
		} else if (strcmp(key, "reboot_timeout") == 0) {
			r = gw_strategy_seconds(v, key, 0.1, 86400, &s.reboot_timeout_ms, err, errlen);
		} else if (strcmp(key, "window") == 0) {
			if (json_is_null(v)) {
				s.has_window = false;
			} else if (!json_is_string(v) ||
				   gw_strategy_window(json_string_value(v), &s) < 0) {
				snprintf(err, errlen, "strategy.window must be \"HH:MM-HH:MM\" (local "
						      "time, start and end different) or null");
				return -EINVAL;
			}
		} else if (strcmp(key, "upgrade") == 0) {
			if (!json_is_boolean(v)) {
				snprintf(err, errlen, "strategy.upgrade must be true or false");
				return -EINVAL;
			}
			s.upgrade = json_is_true(v);
		} else {
			snprintf(err, errlen, "unknown strategy key \"%.64s\"", key);
			return -EINVAL;
		}
		if (r < 0)
			return r;
	}
	if (s.backoff_max_ms < s.backoff_ms)
		s.backoff_max_ms = s.backoff_ms;
	*ret = s;
	return 0;
}

static json_t *gw_strategy_seconds_json(uint64_t ms)
{
	return ms % 1000 == 0 ? json_integer((json_int_t)(ms / 1000)) : json_real((double)ms / 1000);
}

json_t *gw_rollout_strategy_to_json(const struct gw_rollout_strategy *s)
{
	char window[48];

	if (s->has_window)
		snprintf(window, sizeof(window), "%02u:%02u-%02u:%02u", s->window_start / 60,
			 s->window_start % 60, s->window_end / 60, s->window_end % 60);
	return json_pack("{s:s, s:I, s:I, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:b}", "mode",
			 gw_rollout_mode_names[s->mode], "max_parallel", (json_int_t)s->max_parallel,
			 "canary", (json_int_t)s->canary, "max_failure_ratio",
			 s->max_failure_ratio < 0 ? json_null() : json_real(s->max_failure_ratio),
			 "min_finished", (json_int_t)s->min_finished, "retries",
			 (json_int_t)s->retries, "backoff", gw_strategy_seconds_json(s->backoff_ms),
			 "backoff_max", gw_strategy_seconds_json(s->backoff_max_ms),
			 "reboot_timeout", gw_strategy_seconds_json(s->reboot_timeout_ms), "window",
			 s->has_window ? json_string(window) : json_null(), "upgrade", s->upgrade);
}

/* ---- windows (local time) ---- */

bool gw_rollout_window_contains(const struct gw_rollout_strategy *s, time_t t)
{
	struct tm tm;
	unsigned now;

	if (!s->has_window)
		return true;
	if (!localtime_r(&t, &tm))
		return true;
	now = (unsigned)(tm.tm_hour * 60 + tm.tm_min);
	if (s->window_start < s->window_end)
		return now >= s->window_start && now < s->window_end;
	/* Wraps midnight: 22:00-06:00. */
	return now >= s->window_start || now < s->window_end;
}

/* The first local time after t that is minute m of a day. */
static time_t gw_window_next(time_t t, unsigned m)
{
	struct tm tm;
	time_t x;

	if (!localtime_r(&t, &tm))
		return t + 60;
	for (int day = 0; day < 3; day++) {
		struct tm c = tm;

		c.tm_mday += day;
		c.tm_hour = (int)(m / 60);
		c.tm_min = (int)(m % 60);
		c.tm_sec = 0;
		c.tm_isdst = -1;
		x = mktime(&c);
		if (x != (time_t)-1 && x > t)
			return x;
	}
	return t + 60;
}

time_t gw_rollout_window_next_change(const struct gw_rollout_strategy *s, time_t t)
{
	if (!s->has_window)
		return 0;
	return MIN(gw_window_next(t, s->window_start), gw_window_next(t, s->window_end));
}

/* ---- the ready lists and slots ---- */

void gw_job_make_ready(struct gw_job *job)
{
	struct gw_rollout *ro = job->ro;

	if (job->ready || job->active || job->removed || gw_job_state_final(job->state))
		return;
	/* Work under way goes first: it finishes what it started before new
	 * devices begin, and it is not held back by the gates. */
	if (job->state == GW_JOB_QUEUED)
		TAILQ_INSERT_TAIL(&ro->ready, job, ready_link);
	else
		TAILQ_INSERT_HEAD(&ro->ready, job, ready_link);
	job->ready = true;
	gw_rollouts_kick(ro->rs);
}

void gw_job_unready(struct gw_job *job)
{
	if (!job->ready)
		return;
	TAILQ_REMOVE(&job->ro->ready, job, ready_link);
	job->ready = false;
}

void gw_job_activate(struct gw_job *job)
{
	struct gw_rollouts *rs = job->ro->rs;

	if (job->active)
		return;
	job->active = true;
	job->ro->n_active++;
	rs->n_active++;
	if (job->is_ble)
		rs->n_active_ble++;
}

void gw_job_deactivate(struct gw_job *job)
{
	struct gw_rollouts *rs = job->ro->rs;

	if (!job->active)
		return;
	job->active = false;
	job->ro->n_active--;
	rs->n_active--;
	if (job->is_ble)
		rs->n_active_ble--;
	gw_rollouts_kick(rs);
}

/* ---- the wake heap: one timer for every job waiting on time ---- */

static void gw_heap_set(struct gw_rollouts *rs, size_t i, struct gw_job *job)
{
	rs->heap[i] = job;
	job->heap_idx = i;
}

static void gw_heap_up(struct gw_rollouts *rs, size_t i)
{
	struct gw_job *job = rs->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (rs->heap[parent]->wake_usec <= job->wake_usec)
			break;
		gw_heap_set(rs, i, rs->heap[parent]);
		i = parent;
	}
	gw_heap_set(rs, i, job);
}

static void gw_heap_down(struct gw_rollouts *rs, size_t i)
{
	struct gw_job *job = rs->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = i;
		uint64_t v = job->wake_usec;

		if (l < rs->n_heap && rs->heap[l]->wake_usec < v) {
			min = l;
			v = rs->heap[l]->wake_usec;
		}
		if (r < rs->n_heap && rs->heap[r]->wake_usec < v)
			min = r;
		if (min == i)
			break;
		gw_heap_set(rs, i, rs->heap[min]);
		i = min;
	}
	gw_heap_set(rs, i, job);
}

static void gw_heap_remove(struct gw_rollouts *rs, struct gw_job *job)
{
	size_t i = job->heap_idx;
	struct gw_job *last;

	if (i == GW_JOB_NOT_WAITING)
		return;
	job->heap_idx = GW_JOB_NOT_WAITING;
	last = rs->heap[--rs->n_heap];
	if (last != job) {
		gw_heap_set(rs, i, last);
		gw_heap_up(rs, i);
		gw_heap_down(rs, last->heap_idx);
	}
}

static void gw_heap_arm(struct gw_rollouts *rs)
{
	if (rs->n_heap == 0) {
		(void)sd_event_source_set_enabled(rs->wake, SD_EVENT_OFF);
		return;
	}
	(void)sd_event_source_set_time(rs->wake, rs->heap[0]->wake_usec);
	(void)sd_event_source_set_enabled(rs->wake, SD_EVENT_ONESHOT);
}

int gw_job_wait(struct gw_job *job, enum gw_job_wait why, uint64_t usec)
{
	struct gw_rollouts *rs = job->ro->rs;

	if (job->heap_idx == GW_JOB_NOT_WAITING) {
		if (rs->n_heap == rs->heap_size) {
			size_t size = MAX(rs->heap_size * 2, (size_t)64);
			struct gw_job **h = reallocarray(rs->heap, size, sizeof(*h));

			if (!h)
				return -ENOMEM;
			rs->heap = h;
			rs->heap_size = size;
		}
		job->wake_usec = usec;
		gw_heap_set(rs, rs->n_heap++, job);
		gw_heap_up(rs, job->heap_idx);
	} else {
		job->wake_usec = usec;
		gw_heap_up(rs, job->heap_idx);
		gw_heap_down(rs, job->heap_idx);
	}
	job->wait = why;
	gw_heap_arm(rs);
	return 0;
}

void gw_job_unwait(struct gw_job *job)
{
	struct gw_rollouts *rs = job->ro->rs;

	if (job->heap_idx == GW_JOB_NOT_WAITING)
		return;
	gw_heap_remove(rs, job);
	job->wait = GW_JOB_WAIT_NONE;
	gw_heap_arm(rs);
}

static int gw_rollouts_on_wake(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gw_rollouts *rs = userdata;
	uint64_t now = gw_rollouts_now_usec(rs);

	/* Shutting down: waits stay as they are, recorded. */
	if (rs->m->stopping)
		return 0;
	while (rs->n_heap > 0 && rs->heap[0]->wake_usec <= now) {
		struct gw_job *job = rs->heap[0];
		enum gw_job_wait why = job->wait;

		gw_heap_remove(rs, job);
		job->wait = GW_JOB_WAIT_NONE;
		if (why == GW_JOB_WAIT_PROBE) {
			gw_job_probe(job);
		} else {
			job->wake_on_online = false;
			gw_job_make_ready(job);
		}
	}
	gw_heap_arm(rs);
	return 0;
}

/* ---- the scheduler ---- */

/* The first job of the rollout's ready list that may take a slot now. */
static struct gw_job *gw_rollout_pick(struct gw_rollout *ro)
{
	struct gw_rollouts *rs = ro->rs;
	unsigned scanned = 0;
	struct gw_job *job;

	if (ro->n_active >= ro->strategy.max_parallel || gw_rollout_state_final(ro->state))
		return NULL;
	TAILQ_FOREACH(job, &ro->ready, ready_link) {
		if (++scanned > GW_SCHED_SCAN_MAX)
			break;
		/* Pause and windows hold back new jobs; work under way finishes. */
		if (job->state == GW_JOB_QUEUED &&
		    (ro->state != GW_ROLLOUT_RUNNING || (!ro->canary_passed && !job->canary)))
			continue;
		if (job->is_ble && rs->n_active_ble >= rs->ble_max)
			continue;
		return job;
	}
	return NULL;
}

static void gw_rollouts_update_windows(struct gw_rollouts *rs)
{
	time_t now = time(NULL), next = 0;
	struct gw_rollout *ro;
	char why[96];

	TAILQ_FOREACH(ro, &rs->rollouts, link) {
		const struct gw_rollout_strategy *s = &ro->strategy;
		bool inside;
		time_t t;

		if (!s->has_window || gw_rollout_state_final(ro->state))
			continue;
		inside = gw_rollout_window_contains(s, now);
		snprintf(why, sizeof(why), "%s the window %02u:%02u-%02u:%02u",
			 inside ? "inside" : "outside", s->window_start / 60, s->window_start % 60,
			 s->window_end / 60, s->window_end % 60);
		if (ro->state == GW_ROLLOUT_RUNNING && !inside)
			gw_rollout_set_state(ro, GW_ROLLOUT_WAITING, why);
		else if (ro->state == GW_ROLLOUT_WAITING && inside)
			gw_rollout_set_state(ro, GW_ROLLOUT_RUNNING, why);
		t = gw_rollout_window_next_change(s, now);
		if (t > 0 && (next == 0 || t < next))
			next = t;
	}
	if (next == 0) {
		(void)sd_event_source_set_enabled(rs->window, SD_EVENT_OFF);
		return;
	}
	(void)sd_event_source_set_time(rs->window, (uint64_t)next * 1000000);
	(void)sd_event_source_set_enabled(rs->window, SD_EVENT_ONESHOT);
}

void gw_rollouts_schedule(struct gw_rollouts *rs)
{
	struct gw_rollout *ro, *first;
	bool progress;

	gw_rollouts_update_windows(rs);
	/* Shutting down: nothing new starts. */
	if (rs->m->stopping)
		return;
	/* Round robin: each pass gives at most one slot to each rollout, and the
	 * next call starts after the last rollout served, so a global cap is
	 * shared fairly. */
	first = NULL;
	TAILQ_FOREACH(ro, &rs->rollouts, link)
		if (ro->id >= rs->rr_next) {
			first = ro;
			break;
		}
	if (!first)
		first = TAILQ_FIRST(&rs->rollouts);
	if (!first)
		return;
	do {
		progress = false;
		ro = first;
		do {
			struct gw_job *job;
			struct gw_rollout *next = TAILQ_NEXT(ro, link);

			if (!next)
				next = TAILQ_FIRST(&rs->rollouts);
			if (rs->max_jobs > 0 && rs->n_active >= rs->max_jobs)
				return;
			job = gw_rollout_pick(ro);
			if (job) {
				gw_job_unready(job);
				gw_job_activate(job);
				rs->rr_next = next->id > ro->id ? next->id : 0;
				progress = true;
				gw_job_run(job);
			}
			ro = next;
		} while (ro != first);
	} while (progress);
}

static int gw_rollouts_on_window(sd_event_source *s, uint64_t usec, void *userdata)
{
	gw_rollouts_kick(userdata);
	return 0;
}

int gw_rollouts_sched_init(struct gw_rollouts *rs)
{
	sd_event *e = rs->m->event;
	int r;

	r = sd_event_add_time(e, &rs->wake, CLOCK_MONOTONIC, 0, 0, gw_rollouts_on_wake, rs);
	if (r < 0)
		return r;
	(void)sd_event_source_set_enabled(rs->wake, SD_EVENT_OFF);
	(void)sd_event_source_set_description(rs->wake, "gw-rollouts-wake");
	/* Windows are wall-clock times: a realtime timer follows clock changes. */
	r = sd_event_add_time(e, &rs->window, CLOCK_REALTIME, 0, 1000000, gw_rollouts_on_window, rs);
	if (r < 0)
		return r;
	(void)sd_event_source_set_enabled(rs->window, SD_EVENT_OFF);
	(void)sd_event_source_set_description(rs->window, "gw-rollouts-window");
	return 0;
}

void gw_rollouts_sched_done(struct gw_rollouts *rs)
{
	rs->wake = sd_event_source_disable_unref(rs->wake);
	rs->window = sd_event_source_disable_unref(rs->window);
	free(rs->heap);
	rs->heap = NULL;
	rs->n_heap = rs->heap_size = 0;
}
