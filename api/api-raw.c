/* api-raw: any SMP command over HTTP, user groups included: JSON in, the answer as JSON out */
#include <errno.h>
#include <string.h>

#include "api/api-device-seq.h"
#include "api/api-field.h"
#include "api/api.h"
#include "lib/macro.h"
#include "lib/smp-error.h"
#include "lib/smp-header.h"
#include "lib/smp-json.h"

/* The answer is data here, whatever its status: a client speaking raw SMP
 * wants to see what the device said (200), and only a failed exchange is an
 * HTTP error. */
static json_t *api_raw_status_json(const struct smp_response *rsp)
{
	const struct smp_status *st = &rsp->status;
	uint16_t group = st->kind == SMP_STATUS_GROUP_ERR ? st->group : rsp->hdr.group;
	static const char *const kinds[] = {
		[SMP_STATUS_OK] = "ok",
		[SMP_STATUS_RC] = "rc",
		[SMP_STATUS_GROUP_ERR] = "err",
	};

	return json_pack("{sbsssIsIssss}", "ok", st->kind == SMP_STATUS_OK, "kind", kinds[st->kind],
			 "group", (json_int_t)group, "rc", (json_int_t)st->rc, "name",
			 smp_status_name(st), "message", smp_status_describe(st));
}

static void api_raw_on_answer(struct api_device_seq *s, int error, const struct smp_response *rsp,
			      void *userdata)
{
	_cleanup_(json_decrefp) json_t *payload = NULL, *header = NULL, *status = NULL;
	const struct smp_header *h;
	json_t *o;
	int r;

	if (error < 0) {
		api_device_seq_reply_errno(s, error, "raw request");
		return;
	}
	h = &rsp->hdr;
	if (rsp->root) {
		r = smp_json_from_cbor(rsp->root, &payload);
		if (r < 0) {
			api_device_seq_reply_errno(s, r, "translating the answer");
			return;
		}
	} else
		payload = json_null();
	header = json_pack("{sIsIsIsIsIsIsI}", "version", (json_int_t)h->version, "op",
			   (json_int_t)h->op, "flags", (json_int_t)h->flags, "len",
			   (json_int_t)h->len, "group", (json_int_t)h->group, "seq",
			   (json_int_t)h->seq, "id", (json_int_t)h->id);
	status = api_raw_status_json(rsp);
	o = header && status && payload ? json_pack("{sOsOsO}", "header", header, "status", status,
						    "payload", payload)
					: NULL;
	if (!o) {
		api_device_seq_reply_errno(s, -ENOMEM, "raw request");
		return;
	}
	api_device_seq_reply_json(s, 200, o);
}

static void api_raw_call(struct api_req *q, void *userdata)
{
	static const char *const allowed[] = {"op", "group", "id", "payload", NULL};
	struct gw_manager *m = userdata;
	struct api_device_seq *s = NULL;
	struct smp_request *req = NULL;
	int64_t op = -1, group = 0, id = 0;
	struct gw_device *d;
	json_t *body, *jop, *payload;
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	body = api_body_object(q);
	if (!body || api_field_only(q, body, allowed) < 0)
		return;
	jop = json_object_get(body, "op");
	if (json_is_string(jop) && strcmp(json_string_value(jop), "read") == 0)
		op = SMP_OP_READ;
	else if (json_is_string(jop) && strcmp(json_string_value(jop), "write") == 0)
		op = SMP_OP_WRITE;
	else if (json_is_integer(jop) && (json_integer_value(jop) == SMP_OP_READ ||
					  json_integer_value(jop) == SMP_OP_WRITE))
		op = json_integer_value(jop);
	if (op < 0) {
		api_reply_error(q, 400, "bad_request", "\"op\": required: \"read\", \"write\", 0 or 2");
		return;
	}
	r = api_field_int(q, body, "group", 0, UINT16_MAX, &group);
	if (r == -ENOENT) {
		api_reply_error(q, 400, "bad_request", "\"group\": required (0..65535)");
		return;
	}
	if (r < 0)
		return;
	r = api_field_int(q, body, "id", 0, UINT8_MAX, &id);
	if (r == -ENOENT) {
		api_reply_error(q, 400, "bad_request", "\"id\": required (0..255)");
		return;
	}
	if (r < 0)
		return;
	payload = json_object_get(body, "payload");
	if (json_is_null(payload))
		payload = NULL;
	r = smp_json_request((uint8_t)op, (uint16_t)group, (uint8_t)id, payload, &req);
	if (r == -EINVAL) {
		api_reply_error(q, 400, "bad_request",
				"\"payload\": not translatable to CBOR (groups 0..63 take an object; "
				"see the $bytes, $int, $map... forms)");
		return;
	}
	if (r == -EMSGSIZE) {
		api_reply_error(q, 413, "too_large", "\"payload\": larger than an SMP packet");
		return;
	}
	if (r < 0) {
		api_reply_errno(q, r, "raw request");
		return;
	}
	if (api_device_seq_new(q, m, d, NULL, NULL, &s) < 0) {
		smp_request_free(req);
		return;
	}
	(void)api_device_seq_send(s, req, api_raw_on_answer);
}

static const struct api_route api_raw_routes[] = {
	{"POST", "/api/v1/devices/{id}/smp", API_ROLE_ADMIN, 0, api_raw_call},
};

int api_raw_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_raw_routes, ELEMENTSOF(api_raw_routes), m);
}
