/* api-rollouts: rollouts, their jobs, single-device uploads and auto-update rules over HTTP */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "daemon/gw-autoupdate.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-rollouts.h"
#include "lib/macro.h"

#define LOG "rollouts"

/* The engine starts with the manager, before the server; a request can
 * only miss it in a half-built manager (tests). */
static struct gw_rollouts *rollouts_of(struct api_req *q, struct gw_manager *m)
{
	if (!m->rollouts)
		api_reply_error(q, 500, "internal", "the rollout engine is not running");
	return m->rollouts;
}

static struct gw_autoupdate *autoupdate_of(struct api_req *q, struct gw_manager *m)
{
	if (!m->autoupdate)
		api_reply_error(q, 500, "internal", "the auto-update rules are not loaded");
	return m->autoupdate;
}

static const char *rollouts_token(struct api_req *q)
{
	return api_req_token_name(q) ? api_req_token_name(q) : "";
}

/* A "{id}" that is a row id: decimal, 1..INT64_MAX, nothing else. */
static int rollouts_param_id(struct api_req *q, int64_t *ret)
{
	const char *s = api_req_param(q, "id");
	char *end = NULL;
	long long v;

	if (!s || *s < '1' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* ---- rollouts ---- */

static void rollouts_reply_not_found(struct api_req *q)
{
	api_reply_error(q, 404, "rollout_not_found", "no rollout has this id");
}

/* The reply to a refused gw_rollouts_create(). */
static void rollouts_reply_create_error(struct api_req *q, int r, const char *err)
{
	switch (r) {
	case -EINVAL:
		api_reply_error(q, 400, "bad_request", "%s", err[0] ? err : "invalid rollout");
		return;
	case -ENOENT:
		api_reply_error(q, 404, "firmware_not_found", "%s",
				err[0] ? err : "no stored image has this id");
		return;
	case -EBUSY:
		api_reply_error(q, 409, "job_in_progress", "%s",
				err[0] ? err : "a device already has a job in progress");
		return;
	default:
		gw_log_errno(LOG_ERR, r, LOG, "cannot create a rollout: %m");
		api_reply_errno(q, r, "creating the rollout");
	}
}

static void rollouts_reply_view(struct api_req *q, struct gw_rollouts *rs, int64_t id,
				unsigned status)
{
	json_t *view = NULL;
	int r;

	r = gw_rollouts_get(rs, id, &view);
	if (r == -ENOENT) {
		rollouts_reply_not_found(q);
		return;
	}
	if (r < 0) {
		api_reply_errno(q, r, "reading the rollout");
		return;
	}
	api_reply_json(q, status, view);
}

static void rollouts_on_create(struct api_req *q, void *userdata)
{
	struct gw_rollouts *rs = rollouts_of(q, userdata);
	char err[256] = "", location[64];
	json_t *body;
	int64_t id = 0;
	int r;

	if (!rs)
		return;
	body = api_body_object(q);
	if (!body)
		return;
	r = gw_rollouts_create(rs, body, &id, err, sizeof(err));
	if (r < 0) {
		rollouts_reply_create_error(q, r, err);
		return;
	}
	gw_info(LOG, "rollout %lld created by token \"%s\"", (long long)id, rollouts_token(q));
	snprintf(location, sizeof(location), "/api/v1/rollouts/%lld", (long long)id);
	api_req_add_header(q, "Location", location);
	rollouts_reply_view(q, rs, id, 201);
}

static void rollouts_on_list(struct api_req *q, void *userdata)
{
	struct gw_rollouts *rs = rollouts_of(q, userdata);
	json_t *list = NULL;
	int r;

	if (!rs)
		return;
	r = gw_rollouts_list(rs, &list);
	if (r < 0) {
		api_reply_errno(q, r, "listing the rollouts");
		return;
	}
	api_reply_json(q, 200, json_pack("{s:o}", "rollouts", list));
}

static void rollouts_on_get(struct api_req *q, void *userdata)
{
	struct gw_rollouts *rs = rollouts_of(q, userdata);
	int64_t id;

	if (!rs)
		return;
	if (rollouts_param_id(q, &id) < 0) {
		rollouts_reply_not_found(q);
		return;
	}
	rollouts_reply_view(q, rs, id, 200);
}

static bool rollouts_state_is(struct gw_rollouts *rs, int64_t id, const char *state)
{
	_cleanup_(json_decrefp) json_t *view = NULL;

	return gw_rollouts_get(rs, id, &view) == 0 &&
	       strcmp(json_string_value(json_object_get(view, "state")) ?: "", state) == 0;
}

enum rollouts_action {
	ROLLOUTS_PAUSE,
	ROLLOUTS_RESUME,
	ROLLOUTS_CANCEL,
};

static void rollouts_act(struct api_req *q, struct gw_manager *m, enum rollouts_action a)
{
	static const char *const already[] = {
		[ROLLOUTS_PAUSE] = "the rollout is paused already",
		[ROLLOUTS_RESUME] = "the rollout is not paused",
		[ROLLOUTS_CANCEL] = "the rollout is canceled already",
	};
	static const char *const verb[] = {
		[ROLLOUTS_PAUSE] = "paused",
		[ROLLOUTS_RESUME] = "resumed",
		[ROLLOUTS_CANCEL] = "canceled",
	};
	struct gw_rollouts *rs = rollouts_of(q, m);
	int64_t id;
	int r;

	if (!rs)
		return;
	if (rollouts_param_id(q, &id) < 0) {
		rollouts_reply_not_found(q);
		return;
	}
	switch (a) {
	case ROLLOUTS_PAUSE:
		r = gw_rollouts_pause(rs, id);
		break;
	case ROLLOUTS_RESUME:
		r = gw_rollouts_resume(rs, id);
		break;
	default:
		r = gw_rollouts_cancel(rs, id);
		break;
	}
	switch (r) {
	case 0:
		break;
	case -ENOENT:
		rollouts_reply_not_found(q);
		return;
	case -EALREADY:
		api_reply_error(q, 409, "rollout_state", "%s", already[a]);
		return;
	case -EINVAL:
		/* The engine forgets a final rollout soon after it ended: a second
		 * cancel gets the same answer whenever it comes. */
		if (a == ROLLOUTS_CANCEL && rollouts_state_is(rs, id, "canceled")) {
			api_reply_error(q, 409, "rollout_state", "%s", already[a]);
			return;
		}
		api_reply_error(q, 409, "rollout_finished",
				"the rollout is over (completed, canceled or failed)");
		return;
	default:
		gw_log_errno(LOG_ERR, r, LOG, "rollout %lld: cannot change its state: %m",
			     (long long)id);
		api_reply_errno(q, r, "changing the rollout");
		return;
	}
	gw_info(LOG, "rollout %lld %s by token \"%s\"", (long long)id, verb[a], rollouts_token(q));
	rollouts_reply_view(q, rs, id, 200);
}

static void rollouts_on_pause(struct api_req *q, void *userdata)
{
	rollouts_act(q, userdata, ROLLOUTS_PAUSE);
}

static void rollouts_on_resume(struct api_req *q, void *userdata)
{
	rollouts_act(q, userdata, ROLLOUTS_RESUME);
}

static void rollouts_on_cancel(struct api_req *q, void *userdata)
{
	rollouts_act(q, userdata, ROLLOUTS_CANCEL);
}

/* ---- jobs ---- */

static void jobs_on_list(struct api_req *q, void *userdata)
{
	struct gw_rollouts *rs = rollouts_of(q, userdata);
	const char *device = api_req_query(q, "device"), *state = api_req_query(q, "state");
	uint64_t rollout = 0;
	json_t *list = NULL;
	int r;

	if (!rs)
		return;
	r = api_req_query_uint(q, "rollout", &rollout);
	if (r == -EINVAL || (r == 0 && rollout > INT64_MAX)) {
		api_reply_error(q, 400, "bad_query", "rollout must be a rollout id");
		return;
	}
	r = gw_rollouts_jobs(rs, (int64_t)rollout, device, state, &list);
	if (r == -EINVAL) {
		api_reply_error(q, 400, "bad_query",
				"state must be one of queued, connecting, uploading, uploaded, "
				"testing, resetting, rebooting, verifying, confirming, succeeded, "
				"failed, rolled_back, canceled");
		return;
	}
	if (r < 0) {
		api_reply_errno(q, r, "listing the jobs");
		return;
	}
	api_reply_json(q, 200, json_pack("{s:o}", "jobs", list));
}

static void jobs_on_get(struct api_req *q, void *userdata)
{
	struct gw_rollouts *rs = rollouts_of(q, userdata);
	json_t *job = NULL;
	int64_t id;
	int r;

	if (!rs)
		return;
	r = rollouts_param_id(q, &id) < 0 ? -ENOENT : gw_rollouts_job(rs, id, &job);
	if (r == -ENOENT) {
		api_reply_error(q, 404, "job_not_found", "no job has this id");
		return;
	}
	if (r < 0) {
		api_reply_errno(q, r, "reading the job");
		return;
	}
	api_reply_json(q, 200, job);
}

/* ---- POST /api/v1/devices/{id}/images/upload: a rollout of one device ---- */

static void rollouts_on_device_upload(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct gw_rollouts *rs = rollouts_of(q, m);
	_cleanup_(json_decrefp) json_t *req = NULL, *jobs = NULL;
	const char *key, *mode = "upload-only";
	char err[256] = "", name[192], location[64];
	struct gw_device *d;
	json_t *body, *v;
	int64_t id = 0, job;
	int r;

	if (!rs)
		return;
	d = api_device_lookup(q, m);
	if (!d)
		return;
	body = api_body_object(q);
	if (!body)
		return;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "firmware") != 0 && strcmp(key, "mode") != 0) {
			api_reply_error(q, 400, "bad_request", "unknown key \"%.64s\" (firmware, mode)",
					key);
			return;
		}
	}
	if (!json_is_string(json_object_get(body, "firmware"))) {
		api_reply_error(q, 400, "bad_request",
				"firmware (the id of a stored image) is required");
		return;
	}
	v = json_object_get(body, "mode");
	if (v) {
		mode = json_string_value(v);
		if (!mode || (strcmp(mode, "upload-only") && strcmp(mode, "test-confirm") &&
			      strcmp(mode, "confirm"))) {
			api_reply_error(q, 400, "bad_request", "mode must be \"upload-only\", "
					"\"test-confirm\" or \"confirm\"");
			return;
		}
	}
	/* Device ids are short ASCII; rollout names hold 128 bytes. */
	snprintf(name, sizeof(name), "upload to %.110s", d->id);
	req = json_pack("{s:O, s:[s], s:{s:s, s:i}, s:s}", "firmware",
			json_object_get(body, "firmware"), "devices", d->id, "strategy", "mode", mode,
			"max_parallel", 1, "name", name);
	if (!req) {
		api_reply_errno(q, -ENOMEM, "creating the upload");
		return;
	}
	r = gw_rollouts_create(rs, req, &id, err, sizeof(err));
	if (r < 0) {
		rollouts_reply_create_error(q, r, err);
		return;
	}
	r = gw_rollouts_jobs(rs, id, NULL, NULL, &jobs);
	if (r < 0 || json_array_size(jobs) != 1) {
		gw_log_errno(LOG_ERR, r < 0 ? r : -EIO, LOG,
			     "rollout %lld: cannot read back its job: %m", (long long)id);
		api_reply_errno(q, r < 0 ? r : -EIO, "reading the upload's job");
		return;
	}
	job = json_integer_value(json_object_get(json_array_get(jobs, 0), "id"));
	gw_info(LOG, "%s: upload of %s (%s) by token \"%s\": rollout %lld, job %lld", d->id,
		json_string_value(json_object_get(body, "firmware")), mode, rollouts_token(q),
		(long long)id, (long long)job);
	snprintf(location, sizeof(location), "/api/v1/jobs/%lld", (long long)job);
	api_req_add_header(q, "Location", location);
	api_reply_json(q, 202, json_pack("{s:I, s:I}", "rollout", (json_int_t)id, "job",
					 (json_int_t)job));
}

/* ---- auto-update rules ---- */

static void autoupdates_reply_not_found(struct api_req *q)
{
	api_reply_error(q, 404, "auto_update_not_found", "no auto-update rule has this id");
}

static void autoupdates_reply_error(struct api_req *q, int r, const char *err, const char *what)
{
	switch (r) {
	case -EINVAL:
		api_reply_error(q, 400, "bad_request", "%s", err[0] ? err : "invalid rule");
		return;
	case -ENXIO:
		api_reply_error(q, 404, "firmware_not_found", "%s",
				err[0] ? err : "no stored image has this id");
		return;
	case -ENOENT:
		autoupdates_reply_not_found(q);
		return;
	default:
		gw_log_errno(LOG_ERR, r, "autoupdate", "cannot %s a rule: %m", what);
		api_reply_errno(q, r, what);
	}
}

static void autoupdates_reply_view(struct api_req *q, struct gw_autoupdate *au, int64_t id,
				   unsigned status)
{
	json_t *view = NULL;
	int r;

	r = gw_autoupdate_get(au, id, &view);
	if (r == -ENOENT) {
		autoupdates_reply_not_found(q);
		return;
	}
	if (r < 0) {
		api_reply_errno(q, r, "reading the rule");
		return;
	}
	api_reply_json(q, status, view);
}

static void autoupdates_on_list(struct api_req *q, void *userdata)
{
	struct gw_autoupdate *au = autoupdate_of(q, userdata);
	json_t *list = NULL;
	int r;

	if (!au)
		return;
	r = gw_autoupdate_list(au, &list);
	if (r < 0) {
		api_reply_errno(q, r, "listing the rules");
		return;
	}
	api_reply_json(q, 200, json_pack("{s:o}", "auto_updates", list));
}

static void autoupdates_on_create(struct api_req *q, void *userdata)
{
	struct gw_autoupdate *au = autoupdate_of(q, userdata);
	char err[256] = "", location[64];
	json_t *body;
	int64_t id = 0;
	int r;

	if (!au)
		return;
	body = api_body_object(q);
	if (!body)
		return;
	r = gw_autoupdate_create(au, body, &id, err, sizeof(err));
	if (r < 0) {
		autoupdates_reply_error(q, r, err, "create");
		return;
	}
	gw_info("autoupdate", "rule %lld created by token \"%s\"", (long long)id,
		rollouts_token(q));
	snprintf(location, sizeof(location), "/api/v1/auto-updates/%lld", (long long)id);
	api_req_add_header(q, "Location", location);
	autoupdates_reply_view(q, au, id, 201);
}

static void autoupdates_on_get(struct api_req *q, void *userdata)
{
	struct gw_autoupdate *au = autoupdate_of(q, userdata);
	int64_t id;

	if (!au)
		return;
	if (rollouts_param_id(q, &id) < 0) {
		autoupdates_reply_not_found(q);
		return;
	}
	autoupdates_reply_view(q, au, id, 200);
}

static void autoupdates_on_patch(struct api_req *q, void *userdata)
{
	struct gw_autoupdate *au = autoupdate_of(q, userdata);
	char err[256] = "";
	json_t *body;
	int64_t id;
	int r;

	if (!au)
		return;
	if (rollouts_param_id(q, &id) < 0) {
		autoupdates_reply_not_found(q);
		return;
	}
	body = api_body_object(q);
	if (!body)
		return;
	r = gw_autoupdate_update(au, id, body, err, sizeof(err));
	if (r < 0) {
		autoupdates_reply_error(q, r, err, "change");
		return;
	}
	gw_info("autoupdate", "rule %lld changed by token \"%s\"", (long long)id,
		rollouts_token(q));
	autoupdates_reply_view(q, au, id, 200);
}

static void autoupdates_on_delete(struct api_req *q, void *userdata)
{
	struct gw_autoupdate *au = autoupdate_of(q, userdata);
	char err[1] = "";
	int64_t id;
	int r;

	if (!au)
		return;
	r = rollouts_param_id(q, &id) < 0 ? -ENOENT : gw_autoupdate_remove(au, id);
	if (r < 0) {
		autoupdates_reply_error(q, r, err, "delete");
		return;
	}
	gw_info("autoupdate", "rule %lld deleted by token \"%s\"", (long long)id,
		rollouts_token(q));
	api_reply_json(q, 204, NULL);
}

int api_rollouts_register(struct api_http *h, struct gw_manager *m)
{
	static const struct api_route routes[] = {
		{ "POST", "/api/v1/rollouts", API_ROLE_OPERATOR, 0, rollouts_on_create },
		{ "GET", "/api/v1/rollouts", API_ROLE_VIEWER, 0, rollouts_on_list },
		{ "GET", "/api/v1/rollouts/{id}", API_ROLE_VIEWER, 0, rollouts_on_get },
		{ "POST", "/api/v1/rollouts/{id}/pause", API_ROLE_OPERATOR, 0, rollouts_on_pause },
		{ "POST", "/api/v1/rollouts/{id}/resume", API_ROLE_OPERATOR, 0, rollouts_on_resume },
		{ "POST", "/api/v1/rollouts/{id}/cancel", API_ROLE_OPERATOR, 0, rollouts_on_cancel },
		{ "GET", "/api/v1/jobs", API_ROLE_VIEWER, 0, jobs_on_list },
		{ "GET", "/api/v1/jobs/{id}", API_ROLE_VIEWER, 0, jobs_on_get },
		{ "POST", "/api/v1/devices/{id}/images/upload", API_ROLE_OPERATOR, 0,
		  rollouts_on_device_upload },
		{ "GET", "/api/v1/auto-updates", API_ROLE_VIEWER, 0, autoupdates_on_list },
		{ "POST", "/api/v1/auto-updates", API_ROLE_OPERATOR, 0, autoupdates_on_create },
		{ "GET", "/api/v1/auto-updates/{id}", API_ROLE_VIEWER, 0, autoupdates_on_get },
		{ "PATCH", "/api/v1/auto-updates/{id}", API_ROLE_OPERATOR, 0, autoupdates_on_patch },
		{ "DELETE", "/api/v1/auto-updates/{id}", API_ROLE_OPERATOR, 0,
		  autoupdates_on_delete },
	};

	return api_http_add_routes(h, routes, ELEMENTSOF(routes), m);
}
