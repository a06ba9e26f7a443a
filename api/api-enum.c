/* api-enum: the enumeration group (10) over HTTP: which groups a device serves */
#include <errno.h>

#include "api/api-device-seq.h"
#include "api/api.h"
#include "lib/macro.h"
#include "lib/smp-enum.h"
#include "lib/smp-header.h"

/* {"group": id, "standard": "os"|...|null}: our name for the group, next to
 * whatever the device calls it. */
static json_t *api_enum_group_json(uint16_t group)
{
	const char *known = smp_group_to_string(group);

	return json_pack("{sIso}", "group", (json_int_t)group, "standard",
			 known ? json_string(known) : json_null());
}

static void api_enum_reply(struct api_device_seq *s, json_t *groups, const char *source)
{
	json_t *o = json_pack("{sosssI}", "groups", groups, "source", source, "count",
			      (json_int_t)json_array_size(groups));

	if (!o) {
		api_device_seq_reply_errno(s, -ENOMEM, "groups");
		return;
	}
	api_device_seq_reply_json(s, 200, o);
}

static void api_enum_on_list(struct api_device_seq *s, int error, const struct smp_response *rsp,
			     void *userdata)
{
	struct smp_enum_list *l = NULL;
	json_t *groups;
	int r;

	if (error < 0) {
		api_device_seq_reply_errno(s, error, "group list");
		return;
	}
	if (!smp_response_ok(rsp)) {
		api_device_seq_reply_status(s, rsp);
		return;
	}
	r = smp_enum_list_parse(rsp, &l);
	if (r < 0) {
		api_device_seq_reply_errno(s, r, "group list");
		return;
	}
	groups = json_array();
	for (size_t i = 0; groups && i < l->n_groups; i++)
		if (json_array_append_new(groups, api_enum_group_json(l->groups[i])) < 0)
			groups = (json_decref(groups), NULL);
	smp_enum_list_free(l);
	if (!groups) {
		api_device_seq_reply_errno(s, -ENOMEM, "group list");
		return;
	}
	api_enum_reply(s, groups, "list");
}

static void api_enum_on_details(struct api_device_seq *s, int error,
				const struct smp_response *rsp, void *userdata)
{
	struct smp_enum_details *det = NULL;
	struct smp_request *req = NULL;
	json_t *groups;
	int r;

	if (error < 0) {
		api_device_seq_reply_errno(s, error, "group details");
		return;
	}
	/* Details need CONFIG_MCUMGR_GRP_ENUM_DETAILS; the list is always there. */
	if (!smp_response_ok(rsp)) {
		r = smp_enum_list_request(&req);
		if (r < 0) {
			api_device_seq_reply_errno(s, r, "group list");
			return;
		}
		(void)api_device_seq_send(s, req, api_enum_on_list);
		return;
	}
	r = smp_enum_details_parse(rsp, &det);
	if (r < 0) {
		api_device_seq_reply_errno(s, r, "group details");
		return;
	}
	groups = json_array();
	for (size_t i = 0; groups && i < det->n_groups; i++) {
		const struct smp_enum_group_details *g = &det->groups[i];
		json_t *e = api_enum_group_json(g->group);

		if (!e || json_array_append_new(groups, e) < 0 ||
		    (g->name && json_object_set_new(e, "name", json_string(g->name)) < 0) ||
		    (g->has_handlers &&
		     json_object_set_new(e, "handlers", json_integer(g->handlers)) < 0))
			groups = (json_decref(groups), NULL);
	}
	smp_enum_details_free(det);
	if (!groups) {
		api_device_seq_reply_errno(s, -ENOMEM, "group details");
		return;
	}
	api_enum_reply(s, groups, "details");
}

static void api_enum_groups(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct api_device_seq *s = NULL;
	struct smp_request *req = NULL;
	struct gw_device *d;
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	r = smp_enum_details_request(NULL, 0, &req);
	if (r < 0) {
		api_reply_errno(q, r, "group details");
		return;
	}
	if (api_device_seq_new(q, m, d, NULL, NULL, &s) < 0) {
		smp_request_free(req);
		return;
	}
	(void)api_device_seq_send(s, req, api_enum_on_details);
}

static const struct api_route api_enum_routes[] = {
	{"GET", "/api/v1/devices/{id}/groups", API_ROLE_VIEWER, 0, api_enum_groups},
};

int api_enum_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_enum_routes, ELEMENTSOF(api_enum_routes), m);
}
