/* api-device-seq: a handler's exchange of several requests with one device */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-device-seq.h"
#include "api/api.h"
#include "daemon/gw-devices.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "lib/macro.h"
#include "lib/smp-error.h"

enum api_device_seq_state {
	SEQ_IDLE,
	SEQ_CALL,       /* gw_devices_call() in flight: call_id */
	SEQ_GET_CLIENT, /* waiting for the client to reset with: call_id */
	SEQ_RESET,      /* smp_client_reset_device() in flight on client: call_id */
};

struct api_device_seq {
	struct api_req *q;
	struct gw_manager *m;
	char *device_id;
	enum api_device_seq_state state;
	uint64_t call_id;
	struct smp_client *client;
	api_device_seq_fn cb;
	bool force;
	int boot_mode;
	void *userdata;
	void (*destroy)(void *);
};

void api_device_seq_free(struct api_device_seq *s)
{
	if (!s)
		return;
	smp_client_unref(s->client);
	if (s->destroy)
		s->destroy(s->userdata);
	free(s->device_id);
	free(s);
}

struct api_req *api_device_seq_req(struct api_device_seq *s)
{
	return s->q;
}

struct gw_manager *api_device_seq_manager(struct api_device_seq *s)
{
	return s->m;
}

struct gw_device *api_device_seq_device(struct api_device_seq *s)
{
	return gw_registry_find(s->m->registry, s->device_id);
}

/* The client went away or the deadline passed: stop the device work, no reply. */
static void api_device_seq_on_abort(struct api_req *q, void *userdata)
{
	struct api_device_seq *s = userdata;

	switch (s->state) {
	case SEQ_CALL:
	case SEQ_GET_CLIENT:
		(void)gw_devices_cancel(s->m->devices, s->call_id);
		break;
	case SEQ_RESET:
		(void)smp_client_cancel(s->client, s->call_id);
		break;
	case SEQ_IDLE:
		break;
	}
	api_device_seq_free(s);
}

int api_device_seq_new(struct api_req *q, struct gw_manager *m, struct gw_device *d,
		       void *userdata, void (*destroy)(void *), struct api_device_seq **ret)
{
	struct api_device_seq *s = calloc(1, sizeof(*s));

	if (s)
		s->device_id = strdup(d->id);
	if (!s || !s->device_id) {
		free(s);
		if (destroy)
			destroy(userdata);
		api_reply_errno(q, -ENOMEM, "device call");
		return -ENOMEM;
	}
	s->q = q;
	s->m = m;
	s->userdata = userdata;
	s->destroy = destroy;
	api_req_on_abort(q, api_device_seq_on_abort, s);
	*ret = s;
	return 0;
}

void api_device_seq_reply_json(struct api_device_seq *s, unsigned status, json_t *body)
{
	api_reply_json(s->q, status, body);
	api_device_seq_free(s);
}

void api_device_seq_reply_errno(struct api_device_seq *s, int error, const char *what)
{
	api_reply_errno(s->q, error, what);
	api_device_seq_free(s);
}

void api_device_seq_reply_status(struct api_device_seq *s, const struct smp_response *rsp)
{
	api_reply_device_status(s->q, &rsp->status, rsp->hdr.group);
	api_device_seq_free(s);
}

/* The device may have been removed since the last step. */
static struct gw_device *api_device_seq_find(struct api_device_seq *s)
{
	struct gw_device *d = api_device_seq_device(s);

	if (!d) {
		api_reply_error(s->q, 404, "device_not_found", "device %s was removed",
				s->device_id);
		api_device_seq_free(s);
	}
	return d;
}

static void api_device_seq_on_answer(struct smp_client *c, int error,
				     const struct smp_response *rsp, void *userdata)
{
	struct api_device_seq *s = userdata;

	s->state = SEQ_IDLE;
	s->cb(s, error, rsp, s->userdata);
}

int api_device_seq_send(struct api_device_seq *s, struct smp_request *req, api_device_seq_fn cb)
{
	_cleanup_(smp_request_freep) struct smp_request *rq = req;
	struct gw_device *d = api_device_seq_find(s);
	int r;

	if (!d)
		return -ENOENT;
	s->cb = cb;
	r = gw_devices_call(s->m->devices, d, TAKE_PTR(rq), SMP_PRIO_INTERACTIVE,
			    s->m->config.timeout_ms, api_device_seq_on_answer, s, NULL,
			    &s->call_id);
	if (r < 0) {
		api_device_seq_reply_errno(s, r, "device call");
		return r;
	}
	s->state = SEQ_CALL;
	return 0;
}

static void api_device_seq_on_reset(struct smp_client *c, int error,
				    const struct smp_response *rsp, void *userdata)
{
	struct api_device_seq *s = userdata;

	s->state = SEQ_IDLE;
	s->client = smp_client_unref(s->client);
	s->cb(s, error, rsp, s->userdata);
}

static void api_device_seq_on_client(struct gw_devices *ds, int error, struct smp_client *c,
				     void *userdata)
{
	struct api_device_seq *s = userdata;
	int r;

	s->state = SEQ_IDLE;
	if (error < 0) {
		s->cb(s, error, NULL, s->userdata);
		return;
	}
	r = smp_client_reset_device(c, s->force, s->boot_mode, s->m->config.timeout_ms,
				    api_device_seq_on_reset, s, NULL, &s->call_id);
	if (r < 0) {
		api_device_seq_reply_errno(s, r, "reset");
		return;
	}
	s->client = smp_client_ref(c);
	s->state = SEQ_RESET;
}

int api_device_seq_reset(struct api_device_seq *s, bool force, int boot_mode,
			 api_device_seq_fn cb)
{
	struct gw_device *d = api_device_seq_find(s);
	int r;

	if (!d)
		return -ENOENT;
	s->cb = cb;
	s->force = force;
	s->boot_mode = boot_mode;
	r = gw_devices_get_client(s->m->devices, d, api_device_seq_on_client, s, NULL, &s->call_id);
	if (r < 0) {
		api_device_seq_reply_errno(s, r, "reset");
		return r;
	}
	s->state = SEQ_GET_CLIENT;
	return 0;
}
