/* api-device: what the device handlers share: finding the device, one call and its reply, the cache */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "daemon/gw-devices.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "lib/macro.h"
#include "lib/smp-error.h"
#include "lib/smp-json.h"

struct api_device_call {
	struct api_req *q;
	struct gw_manager *m;
	char *device_id; /* the device may be removed while the call waits */
	char *section;   /* api_device_cached(): where the answer is stored */
	uint64_t call_id;
	api_device_parse_fn parse;
	void *userdata;
	void (*destroy)(void *);
};

static void device_call_free(struct api_device_call *c)
{
	if (!c)
		return;
	if (c->destroy)
		c->destroy(c->userdata);
	free(c->device_id);
	free(c->section);
	free(c);
}

struct gw_device *api_device_lookup(struct api_req *q, struct gw_manager *m)
{
	const char *id = api_req_param(q, "id");
	struct gw_device *d = id && m->registry ? gw_registry_find(m->registry, id) : NULL;

	if (!d)
		api_reply_error(q, 404, "device_not_found", "no device \"%s\"", id ? id : "");
	return d;
}

json_t *api_body_object(struct api_req *q)
{
	json_t *j = api_req_json(q);

	if (!j) {
		api_reply_error(q, 400, "bad_request", "this needs a JSON object as the body");
		return NULL;
	}
	if (!json_is_object(j)) {
		api_reply_error(q, 400, "bad_request", "the body must be a JSON object");
		return NULL;
	}
	return j;
}

/* {"value": v, "at": ms, "age_ms": n}; v is stolen. */
static json_t *cached_body(json_t *v, uint64_t at_ms)
{
	uint64_t now = gw_now_ms();

	return json_pack("{s:o,s:I,s:I}", "value", v, "at", (json_int_t)at_ms, "age_ms",
			 (json_int_t)(now > at_ms ? now - at_ms : 0));
}

void api_reply_device_status(struct api_req *q, const struct smp_status *st,
			     uint16_t header_group)
{
	uint16_t group = st->kind == SMP_STATUS_GROUP_ERR ? st->group : header_group;
	const char *name = smp_status_name(st);
	const char *code = "device_error";
	unsigned status = 502;

	switch (smp_status_to_errno(st)) {
	case -EBUSY:
		status = 409;
		code = "device_busy";
		break;
	case -ENOENT:
		status = 404;
		code = "not_found";
		break;
	case -EINVAL:
		status = 400;
		code = "device_refused";
		break;
	default:
		break;
	}
	api_reply_smp_error(q, status, code, group, st->rc, name ? name : "UNKNOWN", "%s",
			    smp_status_describe(st));
}

static void device_call_on_answer(struct smp_client *client, int error,
				  const struct smp_response *rsp, void *userdata)
{
	struct api_device_call *c = userdata;
	json_t *j = NULL;
	int r;

	api_req_on_abort(c->q, NULL, NULL);
	if (error < 0) {
		api_reply_errno(c->q, error, "device call");
		goto out;
	}
	if (!smp_response_ok(rsp)) {
		api_reply_device_status(c->q, &rsp->status, rsp->hdr.group);
		goto out;
	}
	if (c->parse)
		r = c->parse(rsp, &j, c->userdata);
	else if (rsp->root)
		r = smp_json_from_cbor(rsp->root, &j);
	else
		r = (j = json_object()) ? 0 : -ENOMEM;
	if (r == -EBADMSG) {
		api_reply_error(c->q, 502, "bad_device_answer",
				"the device's answer lacks what the command promises");
		goto out;
	}
	if (r < 0) {
		api_reply_errno(c->q, r, "device answer");
		goto out;
	}
	if (c->section) {
		struct gw_device *d = gw_registry_find(c->m->registry, c->device_id);
		uint64_t at = gw_now_ms();

		/* Stored first, so that the answer carries the registry's own stamp. */
		if (d &&
		    gw_registry_set_reported(c->m->registry, d, c->section, json_incref(j)) >= 0)
			gw_registry_get_reported(d, c->section, &at);
		j = cached_body(j, at);
	}
	api_reply_json(c->q, 200, j);
out:
	device_call_free(c);
}

/* The client went away or the deadline passed: the request is withdrawn. */
static void device_call_on_abort(struct api_req *q, void *userdata)
{
	struct api_device_call *c = userdata;

	(void)gw_devices_cancel(c->m->devices, c->call_id);
	device_call_free(c);
}

static int device_call_start(struct api_req *q, struct gw_manager *m, struct gw_device *d,
			     struct smp_request *req, const char *section,
			     api_device_parse_fn parse, void *userdata, void (*destroy)(void *))
{
	_cleanup_(smp_request_freep) struct smp_request *rq = req;
	struct api_device_call *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		if (destroy)
			destroy(userdata);
		api_reply_errno(q, -ENOMEM, "device call");
		return -ENOMEM;
	}
	c->q = q;
	c->m = m;
	c->parse = parse;
	c->userdata = userdata;
	c->destroy = destroy;
	c->device_id = strdup(d->id);
	c->section = section ? strdup(section) : NULL;
	if (!c->device_id || (section && !c->section) || !m->devices) {
		r = m->devices ? -ENOMEM : -ECANCELED;
		device_call_free(c);
		api_reply_errno(q, r, "device call");
		return r;
	}
	r = gw_devices_call(m->devices, d, TAKE_PTR(rq), SMP_PRIO_INTERACTIVE, m->config.timeout_ms,
			    device_call_on_answer, c, NULL, &c->call_id);
	if (r < 0) {
		device_call_free(c);
		api_reply_errno(q, r, "device call");
		return r;
	}
	api_req_on_abort(q, device_call_on_abort, c);
	return 0;
}

int api_device_call(struct api_req *q, struct gw_manager *m, struct gw_device *d,
		    struct smp_request *req, api_device_parse_fn parse, void *userdata,
		    void (*destroy)(void *))
{
	return device_call_start(q, m, d, req, NULL, parse, userdata, destroy);
}

int api_device_cached(struct api_req *q, struct gw_manager *m, struct gw_device *d,
		      const char *section, struct smp_request *req, api_device_parse_fn parse)
{
	_cleanup_(smp_request_freep) struct smp_request *rq = req;
	bool refresh = false;
	uint64_t at = 0;
	json_t *v;
	int r;

	r = api_req_query_bool(q, "refresh", &refresh);
	if (r == -EINVAL) {
		api_reply_error(q, 400, "bad_query", "refresh must be true or false");
		return r;
	}
	v = gw_registry_get_reported(d, section, &at);
	if (v && !refresh) {
		api_reply_json(q, 200, cached_body(json_incref(v), at));
		return 0;
	}
	return device_call_start(q, m, d, TAKE_PTR(rq), section, parse, NULL, NULL);
}

void api_device_command(struct api_req *q, struct gw_manager *m,
			int (*build)(struct smp_request **ret), const char *what,
			api_device_parse_fn parse)
{
	struct smp_request *req = NULL;
	struct gw_device *d = api_device_lookup(q, m);
	int r;

	if (!d)
		return;
	r = build(&req);
	if (r < 0) {
		api_reply_errno(q, r, what);
		return;
	}
	(void)api_device_call(q, m, d, req, parse, NULL, NULL);
}
