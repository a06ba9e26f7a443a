/* gw-rollout-job: the device work of one job: inspect, upload, test, reset, wait, verify, confirm */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/gw-devices.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-rollout-internal.h"
#include "lib/macro.h"
#include "lib/smp-upload.h"

#define LOG "rollouts"
/* A device answers its reset before it reboots (Zephyr: 250 ms later), so
 * the first look waits a little; then one look every few seconds. */
#define GW_JOB_REBOOT_FIRST_LOOK_USEC (1000ULL * 1000)
#define GW_JOB_REBOOT_LOOK_USEC (2000ULL * 1000)

static struct gw_devices *gw_job_devices(struct gw_job *job)
{
	return job->ro->rs->m->devices;
}

static void gw_job_hex(const uint8_t *h, char out[2 * SMP_IMAGE_HASH_LEN + 1])
{
	for (size_t i = 0; i < SMP_IMAGE_HASH_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static bool gw_job_is_new(struct gw_job *job, const struct smp_image_slot_state *e)
{
	return e && e->has_hash && memcmp(e->hash, job->ro->image_hash, SMP_IMAGE_HASH_LEN) == 0;
}

/* A short prefix of a hash for sentences people read. */
static const char *gw_job_short(const char *hex, char buf[17])
{
	if (!hex[0])
		return "an unknown image";
	memcpy(buf, hex, 16);
	buf[16] = 0;
	return buf;
}

/* Errors that another attempt cannot fix: the rest (timeouts, lost links,
 * a busy or offline device, answers that made no sense) are retried. */
static bool gw_job_error_permanent(int error)
{
	switch (error) {
	case -EMSGSIZE:
	case -EINVAL:
	case -EACCES:
	case -EPERM:
	case -ENOTSUP:
	case -ENOENT:
	case -ENOMEM:
		return true;
	default:
		return false;
	}
}

static void gw_job_link_error(struct gw_job *job, int error, const char *what)
{
	char reason[256];

	if (error == -EHOSTDOWN) {
		snprintf(reason, sizeof(reason), "%s: the device is offline", what);
		job->wake_on_online = true;
	} else {
		snprintf(reason, sizeof(reason), "%s: %s", what, strerror(-error));
	}
	if (gw_job_error_permanent(error))
		gw_job_set_state(job, GW_JOB_FAILED, reason);
	else
		gw_job_retry(job, job->state, reason);
}

/* The device answered with an error: busy is worth another attempt, a
 * refusal is not. */
static void gw_job_device_error(struct gw_job *job, const struct smp_status *st, const char *what)
{
	char reason[256];

	snprintf(reason, sizeof(reason), "the device refused %s: %s (%s)", what,
		 smp_status_name(st), smp_status_describe(st));
	if (smp_status_to_errno(st) == -EBUSY)
		gw_job_retry(job, job->state, reason);
	else
		gw_job_set_state(job, GW_JOB_FAILED, reason);
}

static void gw_job_clear_op(struct gw_job *job)
{
	job->op = GW_JOB_OP_NONE;
	job->op_id = 0;
	job->client = smp_client_unref(job->client);
}

/* ---- state reads and writes ---- */

static void gw_job_on_state(struct smp_client *c, int error, const struct smp_response *rsp,
			    void *userdata);

static int gw_job_call(struct gw_job *job, struct smp_request *req, smp_client_done_fn cb)
{
	struct gw_device *d = gw_job_device(job);
	unsigned flags = 0;
	int r;

	if (!d) {
		smp_request_free(req);
		return -ENODEV;
	}
	/* A UDP or serial device the poller has not seen yet (or saw go away
	 * during its reboot) is asked anyway: its answer is what we wait for.
	 * BLE devices come back through discovery. */
	if (d->transport != GW_TRANSPORT_BLE)
		flags |= GW_DEVICES_PROBE;
	r = gw_devices_call_flags(gw_job_devices(job), d, req, SMP_PRIO_INTERACTIVE, 0, flags, cb,
				  job, NULL, &job->op_id);
	if (r < 0)
		return r;
	job->op = GW_JOB_OP_CALL;
	return 0;
}

static void gw_job_read_state(struct gw_job *job, enum gw_job_step step)
{
	struct smp_request *req = NULL;
	int r;

	job->step = step;
	r = smp_image_state_read_request(&req);
	if (r >= 0)
		r = gw_job_call(job, req, gw_job_on_state);
	if (r < 0)
		gw_job_link_error(job, r, "reading the image state");
}

/* The device answered: a device that was thought offline is not. */
static void gw_job_seen(struct gw_job *job)
{
	struct gw_device *d = gw_job_device(job);

	if (d && !d->online)
		gw_registry_set_online(job->ro->rs->m->registry, d, true);
}

static void gw_job_on_confirm(struct smp_client *c, int error, const struct smp_response *rsp,
			      void *userdata);

/* Confirms the running image. Only called right after a read showed the new
 * image running: the request carries no hash, so even a device that
 * reverted in between confirms what runs, never the new image in slot 1. */
static void gw_job_confirm_write(struct gw_job *job)
{
	struct smp_request *req = NULL;
	int r;

	r = smp_image_state_write_request(NULL, true, &req);
	if (r >= 0)
		r = gw_job_call(job, req, gw_job_on_confirm);
	if (r < 0)
		gw_job_link_error(job, r, "confirming the image");
}

static void gw_job_on_test(struct smp_client *c, int error, const struct smp_response *rsp,
			   void *userdata);

static void gw_job_test_write(struct gw_job *job)
{
	struct smp_request *req = NULL;
	int r;

	/* confirm=true with the hash of slot 1: a permanent swap ("confirm" mode). */
	r = smp_image_state_write_request(job->ro->image_hash,
					  job->ro->strategy.mode == GW_ROLLOUT_CONFIRM, &req);
	if (r >= 0)
		r = gw_job_call(job, req, gw_job_on_test);
	if (r < 0)
		gw_job_link_error(job, r, "marking the image for test");
}

/* ---- the upload ---- */

static void gw_job_upload(struct gw_job *job);

static void gw_job_after_upload(struct gw_job *job)
{
	if (job->ro->strategy.mode == GW_ROLLOUT_UPLOAD_ONLY) {
		gw_job_set_state(job, GW_JOB_SUCCEEDED, "the image waits in slot 1 (upload-only)");
		return;
	}
	if (gw_job_set_state(job, GW_JOB_TESTING,
			     job->ro->strategy.mode == GW_ROLLOUT_CONFIRM
				     ? "marking the image for a permanent swap"
				     : "marking the image for test") < 0)
		return;
	gw_job_test_write(job);
}

static void gw_job_upload_release(struct gw_job *job)
{
	struct gw_device *d;

	if (job->held) {
		d = gw_job_device(job);
		if (d)
			gw_devices_release(gw_job_devices(job), d);
		job->held = false;
	}
}

static void gw_job_on_upload_progress(uint64_t off, uint64_t total, void *userdata)
{
	gw_job_progress(userdata, off);
}

static void gw_job_on_upload_done(int error, const struct smp_upload_result *res, void *userdata)
{
	struct gw_job *job = userdata;
	struct gw_rollouts *rs = job->ro->rs;
	double secs = (double)(gw_rollouts_now_usec(rs) - job->upload_start_usec) / 1e6;
	char reason[256], resumed[64] = "";

	gw_job_clear_op(job);
	rs->n_uploading--;
	gw_job_upload_release(job);
	if (error == 0) {
		gw_job_progress(job, job->bytes_total);
		if (res->resumed_at > 0)
			snprintf(resumed, sizeof(resumed), ", resumed at offset %llu",
				 (unsigned long long)res->resumed_at);
		if (res->skipped)
			snprintf(reason, sizeof(reason),
				 "the device already holds the image: no upload");
		else
			snprintf(reason, sizeof(reason), "uploaded %llu bytes in %.1f s%s%s",
				 (unsigned long long)res->size, secs, resumed,
				 res->verified ? ", checked by the device" : "");
		if (gw_job_set_state(job, GW_JOB_UPLOADED, reason) < 0)
			return;
		gw_job_after_upload(job);
		return;
	}
	if (error == -EREMOTEIO) {
		gw_job_device_error(job, &res->status, "the upload");
		return;
	}
	if (error == -EILSEQ) {
		gw_job_retry(job, GW_JOB_UPLOADING,
			     "the device's copy does not match the file (match: false)");
		return;
	}
	snprintf(reason, sizeof(reason), "the upload stopped at offset %llu: %s",
		 (unsigned long long)res->offset, strerror(-error));
	if (gw_job_error_permanent(error) || error == -EIO)
		gw_job_set_state(job, GW_JOB_FAILED, reason);
	else
		gw_job_retry(job, GW_JOB_UPLOADING, reason);
}

static void gw_job_on_upload_client(struct gw_devices *ds, int error, struct smp_client *c,
				    void *userdata)
{
	struct gw_job *job = userdata;
	struct gw_rollout *ro = job->ro;
	struct gw_manager *m = ro->rs->m;
	struct smp_upload_options opts;
	struct smp_upload_source src = {
		.size = ro->size,
		.has_sha = true,
		.has_image_hash = true,
		.upgrade = ro->strategy.upgrade,
	};
	int r;

	gw_job_clear_op(job);
	if (m->stopping) {
		gw_job_upload_release(job);
		return;
	}
	if (error < 0) {
		gw_job_upload_release(job);
		gw_job_link_error(job, error, "connecting for the upload");
		return;
	}
	r = gw_rollout_open_firmware(ro, &src.fd);
	if (r < 0) {
		gw_job_upload_release(job);
		gw_job_link_error(job, r, "opening the firmware");
		return;
	}
	memcpy(src.sha, ro->file_sha, sizeof(src.sha));
	memcpy(src.image_hash, ro->image_hash, sizeof(src.image_hash));
	smp_upload_options_init(&opts);
	if (m->config.upload_first_timeout_ms > 0)
		opts.first_timeout_ms = m->config.upload_first_timeout_ms;
	/* The state was read just before: a skip is decided there. */
	opts.check_state = false;
	r = smp_image_upload(c, &src, &opts, gw_job_on_upload_progress, gw_job_on_upload_done, job,
			     NULL, &job->op_id);
	if (r < 0) {
		gw_job_upload_release(job);
		gw_job_link_error(job, r, "starting the upload");
		return;
	}
	job->op = GW_JOB_OP_UPLOAD;
	job->client = smp_client_ref(c);
	job->upload_start_usec = gw_rollouts_now_usec(ro->rs);
	ro->rs->n_uploading++;
}

/* Uploads from wherever the device is: the first chunk announces the file's
 * sha, and a device holding part of this same file answers its offset. */
static void gw_job_upload(struct gw_job *job)
{
	struct gw_device *d = gw_job_device(job);
	int r;

	if (!d) {
		gw_job_link_error(job, -ENODEV, "uploading");
		return;
	}
	/* The link stays open and the poller keeps off while the upload runs. */
	gw_devices_hold(gw_job_devices(job), d);
	job->held = true;
	r = gw_devices_get_client(gw_job_devices(job), d, gw_job_on_upload_client, job, NULL,
				  &job->op_id);
	if (r < 0) {
		gw_job_upload_release(job);
		gw_job_link_error(job, r, "connecting for the upload");
		return;
	}
	job->op = GW_JOB_OP_CLIENT;
}

/* ---- reset and reboot ---- */

static void gw_job_on_reset(struct smp_client *c, int error, const struct smp_response *rsp,
			    void *userdata)
{
	struct gw_job *job = userdata;
	struct gw_rollouts *rs = job->ro->rs;
	struct gw_device *d;
	char reason[128];

	gw_job_clear_op(job);
	if (error == 0 && rsp && !smp_response_ok(rsp)) {
		/* An application hook said no: it may say yes later. */
		snprintf(reason, sizeof(reason), "the device refused the reset: %s (%s)",
			 smp_status_name(&rsp->status), smp_status_describe(&rsp->status));
		gw_job_retry(job, GW_JOB_RESETTING, reason);
		return;
	}
	if (error == -ENOTCONN) {
		gw_job_link_error(job, error, "resetting");
		return;
	}
	/* Answered, link dropped, or no answer at all (a UDP device that reset
	 * before answering): the look at the device decides which. The link
	 * goes: the device comes back with other firmware and maybe other
	 * buffers, read again on the next link. */
	d = gw_job_device(job);
	if (d)
		gw_devices_close(gw_job_devices(job), d);
	snprintf(reason, sizeof(reason), "waiting for the device to come back (up to %.0f s)",
		 (double)job->ro->strategy.reboot_timeout_ms / 1000);
	if (gw_job_set_state(job, GW_JOB_REBOOTING, reason) < 0)
		return;
	job->reboot_deadline_usec =
		gw_rollouts_now_usec(rs) + job->ro->strategy.reboot_timeout_ms * 1000;
	if (gw_job_wait(job, GW_JOB_WAIT_PROBE,
			gw_rollouts_now_usec(rs) + GW_JOB_REBOOT_FIRST_LOOK_USEC) < 0)
		gw_job_probe(job);
}

static void gw_job_on_reset_client(struct gw_devices *ds, int error, struct smp_client *c,
				   void *userdata)
{
	struct gw_job *job = userdata;
	int r;

	gw_job_clear_op(job);
	if (job->ro->rs->m->stopping)
		return;
	if (error < 0) {
		gw_job_link_error(job, error, "connecting for the reset");
		return;
	}
	r = smp_client_reset_device(c, false, -1, 0, gw_job_on_reset, job, NULL, &job->op_id);
	if (r < 0) {
		gw_job_link_error(job, r, "resetting");
		return;
	}
	job->op = GW_JOB_OP_RESET;
	job->client = smp_client_ref(c);
}

static void gw_job_reset(struct gw_job *job)
{
	struct gw_device *d = gw_job_device(job);
	int r = -ENODEV;

	if (d)
		r = gw_devices_get_client(gw_job_devices(job), d, gw_job_on_reset_client, job, NULL,
					  &job->op_id);
	if (r < 0) {
		gw_job_link_error(job, r, "connecting for the reset");
		return;
	}
	job->op = GW_JOB_OP_CLIENT;
}

/* The rebooting wait's look failed: look again later, or give up. */
static void gw_job_probe_missed(struct gw_job *job, const char *why)
{
	struct gw_rollouts *rs = job->ro->rs;
	uint64_t now = gw_rollouts_now_usec(rs);
	char reason[256];

	if (now >= job->reboot_deadline_usec) {
		snprintf(reason, sizeof(reason),
			 "the device did not come back within %.0f s after the reset (%s)",
			 (double)job->ro->strategy.reboot_timeout_ms / 1000, why);
		gw_job_retry(job, GW_JOB_REBOOTING, reason);
		return;
	}
	if (gw_job_wait(job, GW_JOB_WAIT_PROBE,
			MIN(now + GW_JOB_REBOOT_LOOK_USEC, job->reboot_deadline_usec)) < 0)
		gw_job_retry(job, GW_JOB_REBOOTING, "out of memory");
}

void gw_job_probe(struct gw_job *job)
{
	gw_job_read_state(job, GW_JOB_STEP_PROBE);
}

/* ---- judging what the device runs ---- */

/* The new image is not running: a test still pending means no reboot
 * happened; the old image back means MCUboot reverted. */
static void gw_job_judge_not_running(struct gw_job *job, const struct smp_image_state *st)
{
	const struct smp_image_slot_state *a0 = smp_image_state_find_active(st, 0);
	const struct smp_image_slot_state *s = smp_image_state_find_hash(st, job->ro->image_hash);
	char running[2 * SMP_IMAGE_HASH_LEN + 1] = "", reason[256], b1[17], b2[17];

	if (s && s->pending && !s->active) {
		gw_job_retry(job, GW_JOB_RESETTING, "the device did not reboot: the image is still "
						    "pending in slot 1");
		return;
	}
	if (!a0 || !a0->has_hash) {
		gw_job_retry(job, job->state, "the device reports no running image");
		return;
	}
	gw_job_hex(a0->hash, running);
	if (job->state == GW_JOB_CONFIRMING) {
		/* It was seen running the new image (that is how a job gets
		 * here): it booted, then reset before the confirmation, and
		 * MCUboot went back. Not the image's fault: test it again. */
		snprintf(reason, sizeof(reason), "the device went back to %s before the new image was "
			 "confirmed (reset meanwhile): testing it again", gw_job_short(running, b1));
		gw_job_retry(job, GW_JOB_CONNECTING, reason);
		return;
	}
	if (!job->old_hash[0] || strcmp(running, job->old_hash) == 0) {
		snprintf(reason, sizeof(reason), "device reverted to %s (%s): the new image did not "
			 "boot", gw_job_short(running, b1), a0->version ? a0->version : "?");
		gw_job_set_state(job, GW_JOB_ROLLED_BACK, reason);
		return;
	}
	snprintf(reason, sizeof(reason), "the device runs %s, neither the old image (%s) nor the new",
		 gw_job_short(running, b1), gw_job_short(job->old_hash, b2));
	gw_job_retry(job, job->state, reason);
}

static void gw_job_verify(struct gw_job *job, const struct smp_image_state *st)
{
	const struct smp_image_slot_state *a0 = smp_image_state_find_active(st, 0);
	char reason[192];

	if (!gw_job_is_new(job, a0)) {
		gw_job_judge_not_running(job, st);
		return;
	}
	if (a0->confirmed) {
		snprintf(reason, sizeof(reason), "the device runs %s, confirmed",
			 a0->version ? a0->version : job->ro->version);
		gw_job_set_state(job, GW_JOB_SUCCEEDED, reason);
		return;
	}
	snprintf(reason, sizeof(reason), "the device runs %s: confirming",
		 a0->version ? a0->version : job->ro->version);
	if (gw_job_set_state(job, GW_JOB_CONFIRMING, reason) < 0)
		return;
	gw_job_confirm_write(job);
}

/* Connecting, or a look before the reset after a retry or restart: where is
 * the device on the way? */
static void gw_job_inspect(struct gw_job *job, const struct smp_image_state *st)
{
	struct gw_rollout *ro = job->ro;
	const struct smp_image_slot_state *a0 = smp_image_state_find_active(st, 0), *s;
	char reason[192];

	if (gw_job_is_new(job, a0)) {
		if (a0->confirmed || ro->strategy.mode == GW_ROLLOUT_UPLOAD_ONLY) {
			gw_job_progress(job, job->bytes_total);
			snprintf(reason, sizeof(reason), "already running %s%s",
				 a0->version ? a0->version : ro->version,
				 a0->confirmed ? "" : " (not confirmed)");
			gw_job_set_state(job, GW_JOB_SUCCEEDED, reason);
			return;
		}
		/* A test swap already happened (an earlier attempt, or someone else). */
		if (gw_job_set_state(job, GW_JOB_CONFIRMING,
				     "the device runs the new image, not confirmed: confirming") < 0)
			return;
		gw_job_confirm_write(job);
		return;
	}
	if (a0 && a0->has_hash)
		gw_job_hex(a0->hash, job->old_hash);

	s = smp_image_state_find_hash(st, ro->image_hash);
	if (s) {
		switch (job->state) {
		case GW_JOB_CONNECTING:
		case GW_JOB_UPLOADING:
			gw_job_progress(job, job->bytes_total);
			snprintf(reason, sizeof(reason),
				 "the device already holds the image in slot %u: no upload",
				 (unsigned)s->slot);
			if (gw_job_set_state(job, GW_JOB_UPLOADED, reason) < 0)
				return;
			gw_job_after_upload(job);
			return;
		case GW_JOB_UPLOADED:
			gw_job_after_upload(job);
			return;
		default:
			/* Testing: marking it again is a no-op on the device. */
			gw_job_test_write(job);
			return;
		}
	}
	if (job->state != GW_JOB_UPLOADING) {
		snprintf(reason, sizeof(reason), "uploading %llu bytes%s",
			 (unsigned long long)job->bytes_total,
			 job->state == GW_JOB_CONNECTING ? ""
							  : ": the device no longer holds the image");
		gw_job_progress(job, 0);
		if (gw_job_set_state(job, GW_JOB_UPLOADING, reason) < 0)
			return;
	}
	gw_job_upload(job);
}

static void gw_job_on_state(struct smp_client *c, int error, const struct smp_response *rsp,
			    void *userdata)
{
	struct gw_job *job = userdata;
	struct smp_image_state *st = NULL;
	enum gw_job_step step = job->step;
	int r;

	gw_job_clear_op(job);
	if (error < 0) {
		if (step == GW_JOB_STEP_PROBE)
			gw_job_probe_missed(job, strerror(-error));
		else
			gw_job_link_error(job, error, "reading the image state");
		return;
	}
	gw_job_seen(job);
	if (!smp_response_ok(rsp)) {
		if (step == GW_JOB_STEP_PROBE)
			gw_job_probe_missed(job, smp_status_describe(&rsp->status));
		else
			gw_job_device_error(job, &rsp->status, "the image state read");
		return;
	}
	r = smp_image_state_parse(rsp, &st);
	if (r < 0) {
		gw_job_retry(job, job->state, "the device's image state does not parse");
		return;
	}
	switch (step) {
	case GW_JOB_STEP_INSPECT:
		gw_job_inspect(job, st);
		break;
	case GW_JOB_STEP_PROBE: {
		const struct smp_image_slot_state *s;

		s = smp_image_state_find_hash(st, job->ro->image_hash);
		if (s && s->pending && !s->active) {
			gw_job_retry(job, GW_JOB_RESETTING, "the device did not reboot: the image is "
							    "still pending in slot 1");
			break;
		}
		if (gw_job_set_state(job, GW_JOB_VERIFYING, "the device is back") < 0)
			break;
		gw_job_verify(job, st);
		break;
	}
	case GW_JOB_STEP_VERIFY:
		gw_job_verify(job, st);
		break;
	case GW_JOB_STEP_CONFIRM: {
		const struct smp_image_slot_state *a0 = smp_image_state_find_active(st, 0);
		char reason[128];

		if (!gw_job_is_new(job, a0)) {
			gw_job_judge_not_running(job, st);
		} else if (a0->confirmed) {
			snprintf(reason, sizeof(reason), "the device runs %s, confirmed",
				 a0->version ? a0->version : job->ro->version);
			gw_job_set_state(job, GW_JOB_SUCCEEDED, reason);
		} else {
			gw_job_confirm_write(job);
		}
		break;
	}
	}
	smp_image_state_free(st);
}

static void gw_job_on_test(struct smp_client *c, int error, const struct smp_response *rsp,
			   void *userdata)
{
	struct gw_job *job = userdata;
	const struct smp_image_slot_state *s;
	struct smp_image_state *st = NULL;
	bool ok;

	gw_job_clear_op(job);
	if (error < 0) {
		gw_job_link_error(job, error, "marking the image for test");
		return;
	}
	gw_job_seen(job);
	if (!smp_response_ok(rsp)) {
		gw_job_device_error(job, &rsp->status, "to mark the image for test");
		return;
	}
	if (smp_image_state_parse(rsp, &st) < 0) {
		gw_job_retry(job, GW_JOB_TESTING, "the device's image state does not parse");
		return;
	}
	s = smp_image_state_find_hash(st, job->ro->image_hash);
	ok = s && !s->active && s->pending &&
	     (job->ro->strategy.mode != GW_ROLLOUT_CONFIRM || s->permanent);
	smp_image_state_free(st);
	if (!ok) {
		gw_job_retry(job, GW_JOB_TESTING, "the device did not mark the image pending");
		return;
	}
	if (gw_job_set_state(job, GW_JOB_RESETTING, "resetting the device") < 0)
		return;
	gw_job_reset(job);
}

static void gw_job_on_confirm(struct smp_client *c, int error, const struct smp_response *rsp,
			      void *userdata)
{
	struct gw_job *job = userdata;
	const struct smp_image_slot_state *a0;
	struct smp_image_state *st = NULL;
	char reason[128];

	gw_job_clear_op(job);
	if (error < 0) {
		gw_job_link_error(job, error, "confirming the image");
		return;
	}
	gw_job_seen(job);
	if (!smp_response_ok(rsp)) {
		gw_job_device_error(job, &rsp->status, "to confirm the image");
		return;
	}
	/* The answer is the state after the write: the read-back. */
	if (smp_image_state_parse(rsp, &st) < 0) {
		gw_job_retry(job, GW_JOB_CONFIRMING, "the device's image state does not parse");
		return;
	}
	a0 = smp_image_state_find_active(st, 0);
	if (!gw_job_is_new(job, a0)) {
		gw_job_judge_not_running(job, st);
	} else if (a0->confirmed) {
		snprintf(reason, sizeof(reason), "confirmed: the device runs %s",
			 a0->version ? a0->version : job->ro->version);
		gw_job_set_state(job, GW_JOB_SUCCEEDED, reason);
	} else {
		gw_job_retry(job, GW_JOB_CONFIRMING, "the device did not confirm the image");
	}
	smp_image_state_free(st);
}

/* ---- entry points ---- */

void gw_job_run(struct gw_job *job)
{
	struct gw_rollouts *rs = job->ro->rs;
	bool resumed = job->resumed;

	job->resumed = false;
	switch (job->state) {
	case GW_JOB_QUEUED:
		if (gw_job_set_state(job, GW_JOB_CONNECTING, "connecting to the device") < 0)
			return;
		gw_job_read_state(job, GW_JOB_STEP_INSPECT);
		return;
	case GW_JOB_CONNECTING:
	case GW_JOB_UPLOADING:
	case GW_JOB_UPLOADED:
	case GW_JOB_TESTING:
		gw_job_read_state(job, GW_JOB_STEP_INSPECT);
		return;
	case GW_JOB_RESETTING:
		if (!resumed) {
			gw_job_reset(job);
			return;
		}
		/* The reset may or may not have gone out: the look decides. */
		if (gw_job_set_state(job, GW_JOB_REBOOTING, "smpgwd restarted during the reset: "
							    "checking whether the device rebooted") < 0)
			return;
		/* fall through */
	case GW_JOB_REBOOTING:
		job->reboot_deadline_usec =
			gw_rollouts_now_usec(rs) + job->ro->strategy.reboot_timeout_ms * 1000;
		gw_job_probe(job);
		return;
	case GW_JOB_VERIFYING:
		gw_job_read_state(job, GW_JOB_STEP_VERIFY);
		return;
	case GW_JOB_CONFIRMING:
		gw_job_read_state(job, GW_JOB_STEP_CONFIRM);
		return;
	default:
		return;
	}
}

void gw_job_stop_work(struct gw_job *job)
{
	struct gw_rollouts *rs = job->ro->rs;

	switch (job->op) {
	case GW_JOB_OP_CALL:
	case GW_JOB_OP_CLIENT:
		(void)gw_devices_cancel(gw_job_devices(job), job->op_id);
		break;
	case GW_JOB_OP_UPLOAD:
		(void)smp_upload_cancel(job->client, job->op_id);
		rs->n_uploading--;
		break;
	case GW_JOB_OP_RESET:
		(void)smp_client_cancel(job->client, job->op_id);
		break;
	case GW_JOB_OP_NONE:
		break;
	}
	gw_job_clear_op(job);
	gw_job_upload_release(job);
	gw_job_unwait(job);
}

void gw_job_on_online(struct gw_job *job)
{
	if (job->wait == GW_JOB_WAIT_PROBE) {
		gw_job_unwait(job);
		gw_job_probe(job);
	} else if (job->wait == GW_JOB_WAIT_BACKOFF && job->wake_on_online) {
		gw_job_unwait(job);
		job->wake_on_online = false;
		gw_job_make_ready(job);
	}
}
