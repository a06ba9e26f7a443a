/* api-image: the image group (1) over HTTP: state (cached), test, confirm, erase, slot info */
#include <errno.h>
#include <stdlib.h>

#include "api/api-device-seq.h"
#include "api/api-field.h"
#include "api/api-reported.h"
#include "api/api-text.h"
#include "api/api.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-reported.h"
#include "lib/macro.h"
#include "lib/smp-image.h"

/* Slot numbers count two per image; no device has a hundred images. */
#define API_IMAGE_SLOT_MAX 255

/* An image state answer as the "image_state" section holds it. */
static int api_image_state_json(const struct smp_response *rsp, json_t **ret)
{
	struct smp_image_state *st = NULL;
	int r;

	r = smp_image_state_parse(rsp, &st);
	if (r < 0)
		return r;
	r = gw_reported_image_state(st, ret);
	smp_image_state_free(st);
	return r;
}

static int api_image_on_state(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	return api_image_state_json(rsp, ret);
}

/* Test and confirm answer with the new state: the cache takes it too. */
static int api_image_on_state_store(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	int r = api_image_state_json(rsp, ret);

	if (r >= 0)
		api_reported_store(userdata, "image_state", *ret);
	return r;
}

static void api_image_state(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct smp_request *req = NULL;
	struct gw_device *d = api_device_lookup(q, m);
	int r;

	if (!d)
		return;
	r = smp_image_state_read_request(&req);
	if (r < 0) {
		api_reply_errno(q, r, "image state");
		return;
	}
	(void)api_device_cached(q, m, d, "image_state", req, api_image_on_state);
}

/* Test (confirm false, hash required) and confirm (hash optional: the running image). */
static void api_image_set_state(struct api_req *q, struct gw_manager *m, bool confirm)
{
	static const char *const allowed[] = {"hash", NULL};
	uint8_t hash[SMP_IMAGE_HASH_LEN];
	struct smp_request *req = NULL;
	struct gw_device *d;
	json_t *body;
	bool has_hash;
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	/* Confirming the running image needs no body at all. */
	has_hash = false;
	if (!confirm || api_req_json(q)) {
		body = api_body_object(q);
		if (!body || api_field_only(q, body, allowed) < 0)
			return;
		r = api_field_hash(q, body, "hash", hash);
		if (r < 0 && r != -ENOENT)
			return;
		has_hash = r == 0;
	}
	if (!has_hash && !confirm) {
		api_reply_error(q, 400, "bad_request", "\"hash\": required (64 hex digits)");
		return;
	}
	r = smp_image_state_write_request(has_hash ? hash : NULL, confirm, &req);
	if (r < 0) {
		api_reply_errno(q, r, "image state");
		return;
	}
	(void)api_device_call(q, m, d, req, api_image_on_state_store, api_reported_new(m, d),
			      api_reported_free);
}

static void api_image_test(struct api_req *q, void *userdata)
{
	api_image_set_state(q, userdata, false);
}

static void api_image_confirm(struct api_req *q, void *userdata)
{
	api_image_set_state(q, userdata, true);
}

/* ---- erase: then the state again, since a slot just changed ---- */

struct api_image_erase {
	int64_t slot;
	struct api_reported *st;
};

static void api_image_erase_free(void *userdata)
{
	struct api_image_erase *e = userdata;

	api_reported_free(e->st);
	free(e);
}

static void api_image_erase_reply(struct api_device_seq *s, struct api_image_erase *e,
				  json_t *state)
{
	json_t *o = json_pack("{sosO?}", "slot", e->slot >= 0 ? json_integer(e->slot) : json_null(),
			      "image_state", state);

	if (!o) {
		api_device_seq_reply_errno(s, -ENOMEM, "erase");
		return;
	}
	api_device_seq_reply_json(s, 200, o);
}

static void api_image_on_erase_state(struct api_device_seq *s, int error,
				     const struct smp_response *rsp, void *userdata)
{
	struct api_image_erase *e = userdata;
	_cleanup_(json_decrefp) json_t *state = NULL;

	/* The erase is done whatever this says: the state is a courtesy. */
	if (error == 0 && smp_response_ok(rsp) && api_image_state_json(rsp, &state) == 0)
		api_reported_store(e->st, "image_state", state);
	api_image_erase_reply(s, e, state);
}

static void api_image_on_erase(struct api_device_seq *s, int error, const struct smp_response *rsp,
			       void *userdata)
{
	struct smp_request *req = NULL;
	int r;

	if (error < 0) {
		api_device_seq_reply_errno(s, error, "erase");
		return;
	}
	if (!smp_response_ok(rsp)) {
		api_device_seq_reply_status(s, rsp);
		return;
	}
	r = smp_image_state_read_request(&req);
	if (r < 0) {
		api_image_erase_reply(s, userdata, NULL);
		return;
	}
	(void)api_device_seq_send(s, req, api_image_on_erase_state);
}

static void api_image_erase(struct api_req *q, void *userdata)
{
	static const char *const allowed[] = {"slot", NULL};
	struct gw_manager *m = userdata;
	struct api_device_seq *s = NULL;
	struct smp_request *req = NULL;
	struct api_image_erase *e;
	struct gw_device *d;
	int64_t slot = -1;
	json_t *body;
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	if (api_req_json(q)) {
		/* No body: the device picks the slot that is not running. */
		body = api_body_object(q);
		if (!body || api_field_only(q, body, allowed) < 0)
			return;
		r = api_field_int(q, body, "slot", 0, API_IMAGE_SLOT_MAX, &slot);
		if (r < 0 && r != -ENOENT)
			return;
	}
	r = smp_image_erase_request(slot, &req);
	e = r >= 0 ? calloc(1, sizeof(*e)) : NULL;
	if (!e) {
		smp_request_free(req);
		api_reply_errno(q, r < 0 ? r : -ENOMEM, "erase");
		return;
	}
	e->slot = slot;
	e->st = api_reported_new(m, d);
	if (api_device_seq_new(q, m, d, e, api_image_erase_free, &s) < 0) {
		smp_request_free(req);
		return;
	}
	(void)api_device_seq_send(s, req, api_image_on_erase);
}

/* ---- slot info ---- */

static int api_image_on_slots(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	struct smp_image_slot_info *si = NULL;
	_cleanup_(json_decrefp) json_t *images = json_array();
	json_t *o;
	int r;

	if (!images)
		return -ENOMEM;
	r = smp_image_slot_info_parse(rsp, &si);
	if (r < 0)
		return r;
	for (size_t i = 0; i < si->n_images && r >= 0; i++) {
		const struct smp_image_slot_info_image *im = &si->images[i];
		json_t *slots = json_array(), *img;

		img = json_pack("{sIso}", "image", (json_int_t)im->image, "slots", slots);
		if (!img || json_array_append_new(images, img) < 0) {
			r = -ENOMEM;
			break;
		}
		if (im->has_max_image_size &&
		    json_object_set_new(img, "max_image_size",
					json_integer(api_text_json_uint(im->max_image_size))) < 0)
			r = -ENOMEM;
		for (size_t k = 0; k < im->n_slots && r >= 0; k++) {
			const struct smp_image_slot_info_slot *sl = &im->slots[k];
			json_t *e = json_pack("{sIsI}", "slot", (json_int_t)sl->slot, "size",
					      api_text_json_uint(sl->size));

			if (!e || json_array_append_new(slots, e) < 0)
				r = -ENOMEM;
			else if (sl->has_upload_image_id &&
				 json_object_set_new(e, "upload_image_id",
						     json_integer(sl->upload_image_id)) < 0)
				r = -ENOMEM;
		}
	}
	smp_image_slot_info_free(si);
	if (r < 0)
		return r;
	o = json_pack("{sO}", "images", images);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static void api_image_slots(struct api_req *q, void *userdata)
{
	api_device_command(q, userdata, smp_image_slot_info_request, "slot info",
			   api_image_on_slots);
}

static const struct api_route api_image_routes[] = {
	{"GET", "/api/v1/devices/{id}/images", API_ROLE_VIEWER, 0, api_image_state},
	{"POST", "/api/v1/devices/{id}/images/test", API_ROLE_OPERATOR, 0, api_image_test},
	{"POST", "/api/v1/devices/{id}/images/confirm", API_ROLE_OPERATOR, 0, api_image_confirm},
	{"POST", "/api/v1/devices/{id}/images/erase", API_ROLE_OPERATOR, 0, api_image_erase},
	{"GET", "/api/v1/devices/{id}/images/slots", API_ROLE_VIEWER, 0, api_image_slots},
};

int api_image_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_image_routes, ELEMENTSOF(api_image_routes), m);
}
