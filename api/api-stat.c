/* api-stat: the statistics group (2) over HTTP: every group (cached) and one group */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-device-seq.h"
#include "api/api-field.h"
#include "api/api-reported.h"
#include "api/api.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-reported.h"
#include "lib/macro.h"
#include "lib/smp-stat.h"

/* Zephyr's stats names are C identifiers of a few bytes. */
#define API_STAT_NAME_MAX 64

/* {"value": value (borrowed), "at": at, "age_ms": now - at}: what
 * api_device_cached() answers, so that both reads look alike. */
static json_t *api_stat_cached_json(json_t *value, uint64_t at)
{
	uint64_t now = gw_now_ms();

	return json_pack("{sOsIsI}", "value", value, "at", (json_int_t)at, "age_ms",
			 (json_int_t)(now > at ? now - at : 0));
}

static void api_stat_reply_cached(struct api_req *q, json_t *value, uint64_t at)
{
	json_t *o = api_stat_cached_json(value, at);

	if (!o)
		api_reply_errno(q, -ENOMEM, "stats");
	else
		api_reply_json(q, 200, o);
}

/* ---- every group: the list, then each group, as the poller reads them ---- */

struct api_stat_all {
	struct smp_stat_list *list;
	size_t next;
	json_t *stats;
	struct api_reported *st;
};

static void api_stat_all_free(void *userdata)
{
	struct api_stat_all *a = userdata;

	smp_stat_list_free(a->list);
	json_decref(a->stats);
	api_reported_free(a->st);
	free(a);
}

static void api_stat_all_next(struct api_device_seq *s, struct api_stat_all *a);

static void api_stat_all_on_group(struct api_device_seq *s, int error,
				  const struct smp_response *rsp, void *userdata)
{
	struct api_stat_all *a = userdata;
	struct smp_stat_group *g = NULL;
	json_t *fields = NULL;

	if (error < 0) {
		api_device_seq_reply_errno(s, error, "stats");
		return;
	}
	/* A group the device refuses is left out, as the poller does. */
	if (smp_response_ok(rsp) && smp_stat_show_parse(rsp, &g) == 0) {
		/* Keyed by the name asked for: that is what the list says. */
		if (gw_reported_stat_group(g, &fields) < 0 ||
		    json_object_set_new(a->stats, a->list->names[a->next - 1], fields) < 0) {
			smp_stat_group_free(g);
			api_device_seq_reply_errno(s, -ENOMEM, "stats");
			return;
		}
	}
	smp_stat_group_free(g);
	api_stat_all_next(s, a);
}

static void api_stat_all_next(struct api_device_seq *s, struct api_stat_all *a)
{
	struct smp_request *req = NULL;
	struct gw_device *d;
	json_t *o;
	uint64_t at;
	int r;

	if (a->next < a->list->n_names) {
		r = smp_stat_show_request(a->list->names[a->next++], &req);
		if (r < 0) {
			api_device_seq_reply_errno(s, r, "stats");
			return;
		}
		(void)api_device_seq_send(s, req, api_stat_all_on_group);
		return;
	}
	api_reported_store(a->st, "stats", a->stats);
	d = api_device_seq_device(s);
	if (!d || !gw_registry_get_reported(d, "stats", &at))
		at = gw_now_ms();
	o = api_stat_cached_json(a->stats, at);
	if (!o) {
		api_device_seq_reply_errno(s, -ENOMEM, "stats");
		return;
	}
	api_device_seq_reply_json(s, 200, o);
}

static void api_stat_all_on_list(struct api_device_seq *s, int error,
				 const struct smp_response *rsp, void *userdata)
{
	struct api_stat_all *a = userdata;
	int r;

	if (error < 0) {
		api_device_seq_reply_errno(s, error, "stat list");
		return;
	}
	if (!smp_response_ok(rsp)) {
		api_device_seq_reply_status(s, rsp);
		return;
	}
	r = smp_stat_list_parse(rsp, &a->list);
	if (r < 0) {
		api_device_seq_reply_errno(s, r, "stat list");
		return;
	}
	api_stat_all_next(s, a);
}

static void api_stat_all(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct api_device_seq *s = NULL;
	struct smp_request *req = NULL;
	struct api_stat_all *a;
	struct gw_device *d;
	bool refresh = false;
	json_t *cached;
	uint64_t at;
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	r = api_field_query_bool(q, "refresh", &refresh);
	if (r < 0 && r != -ENOENT)
		return;
	cached = gw_registry_get_reported(d, "stats", &at);
	if (cached && !refresh) {
		api_stat_reply_cached(q, cached, at);
		return;
	}
	a = calloc(1, sizeof(*a));
	if (a) {
		a->stats = json_object();
		a->st = api_reported_new(m, d);
	}
	r = a && a->stats ? smp_stat_list_request(&req) : -ENOMEM;
	if (r < 0) {
		if (a)
			api_stat_all_free(a);
		api_reply_errno(q, r, "stats");
		return;
	}
	if (api_device_seq_new(q, m, d, a, api_stat_all_free, &s) < 0) {
		smp_request_free(req);
		return;
	}
	(void)api_device_seq_send(s, req, api_stat_all_on_list);
}

/* ---- one group ---- */

static int api_stat_on_group(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	struct smp_stat_group *g = NULL;
	json_t *fields = NULL, *o;
	int r;

	r = smp_stat_show_parse(rsp, &g);
	if (r < 0)
		return r;
	r = gw_reported_stat_group(g, &fields);
	smp_stat_group_free(g);
	if (r < 0)
		return r;
	o = api_stat_cached_json(fields, gw_now_ms());
	json_decref(fields);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static void api_stat_group(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct smp_request *req = NULL;
	const char *group = api_req_param(q, "group");
	struct gw_device *d;
	bool refresh = false;
	json_t *fields;
	uint64_t at;
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	if (!group || strlen(group) > API_STAT_NAME_MAX) {
		api_reply_error(q, 400, "bad_request", "stat group names are 1..%d bytes",
				API_STAT_NAME_MAX);
		return;
	}
	r = api_field_query_bool(q, "refresh", &refresh);
	if (r < 0 && r != -ENOENT)
		return;
	/* The poller reads every group; a single group is only ever read, not stored. */
	fields = json_object_get(gw_registry_get_reported(d, "stats", &at), group);
	if (fields && !refresh) {
		api_stat_reply_cached(q, fields, at);
		return;
	}
	r = smp_stat_show_request(group, &req);
	if (r < 0) {
		api_reply_errno(q, r, "stats");
		return;
	}
	(void)api_device_call(q, m, d, req, api_stat_on_group, NULL, NULL);
}

static const struct api_route api_stat_routes[] = {
	{"GET", "/api/v1/devices/{id}/stats", API_ROLE_VIEWER, 0, api_stat_all},
	{"GET", "/api/v1/devices/{id}/stats/{group}", API_ROLE_VIEWER, 0, api_stat_group},
};

int api_stat_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_stat_routes, ELEMENTSOF(api_stat_routes), m);
}
