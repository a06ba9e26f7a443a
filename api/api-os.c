/* api-os: the OS group (0) over HTTP: echo, info, params, tasks, pools, time, reset, bootloader */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api-device-seq.h"
#include "api/api-field.h"
#include "api/api-reported.h"
#include "api/api-text.h"
#include "api/api.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-reported.h"
#include "lib/macro.h"
#include "lib/smp-os.h"

/* Bounds on what a client may make the gateway send. The device's own
 * buffer (smp_client's packet budget) bounds echo text further: beyond it
 * the call answers 413. */
#define API_OS_ECHO_MAX 4096
#define API_OS_FORMAT_MAX 32
#define API_OS_QUERY_MAX 64
#define API_OS_DATETIME_MAX 64

/* Sends req with parse; the parser's userdata is a store for d when want_store. */
static void api_os_call(struct api_req *q, struct gw_manager *m, struct gw_device *d,
			struct smp_request *req, api_device_parse_fn parse, bool want_store)
{
	struct api_reported *st = want_store ? api_reported_new(m, d) : NULL;

	(void)api_device_call(q, m, d, req, parse, st, api_reported_free);
}

/* The reads without arguments: the device of {id}, the request build() makes, parse. */
static void api_os_read(struct api_req *q, struct gw_manager *m,
			int (*build)(struct smp_request **ret), api_device_parse_fn parse,
			bool want_store)
{
	struct smp_request *req = NULL;
	struct gw_device *d = api_device_lookup(q, m);
	int r;

	if (!d)
		return;
	r = build(&req);
	if (r < 0) {
		api_reply_errno(q, r, "building the request");
		return;
	}
	api_os_call(q, m, d, req, parse, want_store);
}

/* ---- echo ---- */

static int api_os_on_echo(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	_cleanup_free_ char *text = NULL;
	json_t *o;
	int r;

	r = smp_os_echo_parse(rsp, &text);
	if (r < 0)
		return r;
	o = json_pack("{ss}", "r", text);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static void api_os_echo(struct api_req *q, void *userdata)
{
	static const char *const allowed[] = {"d", NULL};
	struct gw_manager *m = userdata;
	struct smp_request *req = NULL;
	struct gw_device *d;
	const char *text = NULL;
	json_t *body;
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	body = api_body_object(q);
	if (!body || api_field_only(q, body, allowed) < 0)
		return;
	r = api_field_string(q, body, "d", API_OS_ECHO_MAX, true, &text);
	if (r == -ENOENT) {
		api_reply_error(q, 400, "bad_request", "\"d\": required");
		return;
	}
	if (r < 0)
		return;
	r = smp_os_echo_request(text, &req);
	if (r < 0) {
		api_reply_errno(q, r, "echo");
		return;
	}
	(void)api_device_call(q, m, d, req, api_os_on_echo, NULL, NULL);
}

/* ---- info and params ---- */

static int api_os_on_info(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	_cleanup_free_ char *text = NULL;
	json_t *o = NULL;
	int r;

	r = smp_os_info_parse(rsp, &text);
	if (r < 0)
		return r;
	r = gw_reported_info(text, &o);
	if (r < 0)
		return r;
	/* The poller reads format "a": only that answer is the cached "info". */
	api_reported_store(userdata, "info", o);
	*ret = o;
	return 0;
}

static void api_os_info(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct smp_request *req = NULL;
	struct gw_device *d;
	const char *format = "a";
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	r = api_field_query_string(q, "format", API_OS_FORMAT_MAX, &format);
	if (r < 0 && r != -ENOENT)
		return;
	r = smp_os_info_request(format, &req);
	if (r < 0) {
		api_reply_errno(q, r, "info");
		return;
	}
	api_os_call(q, m, d, req, api_os_on_info, strcmp(format, "a") == 0);
}

static int api_os_on_params(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	struct smp_os_params p;
	json_t *o = NULL;
	int r;

	r = smp_os_params_parse(rsp, &p);
	if (r < 0)
		return r;
	r = gw_reported_params(&p, &o);
	if (r < 0)
		return r;
	api_reported_store(userdata, "params", o);
	*ret = o;
	return 0;
}

static void api_os_params(struct api_req *q, void *userdata)
{
	api_os_read(q, userdata, smp_os_params_request, api_os_on_params, true);
}

/* ---- tasks and memory pools ---- */

static int api_os_task_json(const struct smp_os_task *t, json_t **ret)
{
	static const struct {
		unsigned flag;
		const char *name;
		size_t offset;
	} optional[] = {
		{SMP_OS_TASK_HAS_STKUSE, "stkuse", offsetof(struct smp_os_task, stkuse)},
		{SMP_OS_TASK_HAS_STKSIZ, "stksiz", offsetof(struct smp_os_task, stksiz)},
		{SMP_OS_TASK_HAS_CSWCNT, "cswcnt", offsetof(struct smp_os_task, cswcnt)},
		{SMP_OS_TASK_HAS_RUNTIME, "runtime", offsetof(struct smp_os_task, runtime)},
		{SMP_OS_TASK_HAS_LAST_CHECKIN, "last_checkin",
		 offsetof(struct smp_os_task, last_checkin)},
		{SMP_OS_TASK_HAS_NEXT_CHECKIN, "next_checkin",
		 offsetof(struct smp_os_task, next_checkin)},
	};
	_cleanup_(json_decrefp) json_t *o = NULL;

	o = json_pack("{sssIsIsI}", "name", t->name, "prio", (json_int_t)t->prio, "tid",
		      api_text_json_uint(t->tid), "state",
		      api_text_json_uint(t->state));
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(optional); i++) {
		uint64_t v;

		if (!(t->present & optional[i].flag))
			continue;
		memcpy(&v, (const char *)t + optional[i].offset, sizeof(v));
		if (json_object_set_new(o, optional[i].name,
					json_integer(api_text_json_uint(v))) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(o);
	return 0;
}

static int api_os_on_tasks(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	struct smp_os_taskstat *ts = NULL;
	_cleanup_(json_decrefp) json_t *tasks = json_array();
	json_t *o = NULL;
	int r;

	if (!tasks)
		return -ENOMEM;
	r = smp_os_taskstat_parse(rsp, &ts);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ts->n_tasks && r >= 0; i++) {
		json_t *t = NULL;

		r = api_os_task_json(&ts->tasks[i], &t);
		if (r >= 0 && json_array_append_new(tasks, t) < 0)
			r = -ENOMEM;
	}
	smp_os_taskstat_free(ts);
	if (r < 0)
		return r;
	o = json_pack("{sO}", "tasks", tasks);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static void api_os_tasks(struct api_req *q, void *userdata)
{
	api_os_read(q, userdata, smp_os_taskstat_request, api_os_on_tasks, false);
}

static int api_os_on_mempools(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	struct smp_os_mpstat *mp = NULL;
	_cleanup_(json_decrefp) json_t *pools = json_array();
	json_t *o = NULL;
	int r;

	if (!pools)
		return -ENOMEM;
	r = smp_os_mpstat_parse(rsp, &mp);
	if (r < 0)
		return r;
	for (size_t i = 0; i < mp->n_pools && r >= 0; i++) {
		const struct smp_os_mpool *p = &mp->pools[i];
		json_t *e = json_pack("{sssIsIsI}", "name", p->name, "blksiz",
				      api_text_json_uint(p->blksiz), "nblks",
				      api_text_json_uint(p->nblks), "nfree",
				      api_text_json_uint(p->nfree));

		if (!e || json_array_append_new(pools, e) < 0)
			r = -ENOMEM;
		else if (p->has_min &&
			 json_object_set_new(e, "min", json_integer(api_text_json_uint(p->min))) < 0)
			r = -ENOMEM;
	}
	smp_os_mpstat_free(mp);
	if (r < 0)
		return r;
	o = json_pack("{sO}", "pools", pools);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static void api_os_mempools(struct api_req *q, void *userdata)
{
	api_os_read(q, userdata, smp_os_mpstat_request, api_os_on_mempools, false);
}

/* ---- date-time ---- */

static int api_os_on_datetime(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	_cleanup_free_ char *text = NULL;
	json_t *o;
	int r;

	r = smp_os_datetime_parse(rsp, &text);
	if (r < 0)
		return r;
	o = json_pack("{ss}", "datetime", text);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static void api_os_datetime_get(struct api_req *q, void *userdata)
{
	api_os_read(q, userdata, smp_os_datetime_get_request, api_os_on_datetime, false);
}

/* Reads exactly n decimal digits. */
static bool api_os_digits(const char **p, unsigned n, int *ret)
{
	int v = 0;

	for (unsigned i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*ret = v;
	return true;
}

/* ISO 8601 "YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM|±HHMM]" (no zone: UTC)
 * as the UTC text Zephyr takes, "YYYY-MM-DDTHH:MM:SS[.mmm]": a device RTC has
 * no zone. Returns 0, or -EINVAL. */
static int api_os_datetime_to_utc(const char *s, char *buf, size_t size)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = s;
	int year, mon, mday, hour, min, sec, ms = -1, off = 0;
	struct tm tm = {}, out;
	time_t t;

	if (!api_os_digits(&p, 4, &year) || *p++ != '-' || !api_os_digits(&p, 2, &mon) ||
	    *p++ != '-' || !api_os_digits(&p, 2, &mday) || (*p != 'T' && *p != 't' && *p != ' '))
		return -EINVAL;
	p++;
	if (!api_os_digits(&p, 2, &hour) || *p++ != ':' || !api_os_digits(&p, 2, &min) ||
	    *p++ != ':' || !api_os_digits(&p, 2, &sec))
		return -EINVAL;
	if (*p == '.' || *p == ',') {
		unsigned n = 0;

		p++;
		ms = 0;
		for (; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 3)
				ms = ms * 10 + (*p - '0');
		if (n == 0)
			return -EINVAL;
		for (; n < 3; n++)
			ms *= 10;
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;

		if (!api_os_digits(&p, 2, &oh))
			return -EINVAL;
		if (*p == ':')
			p++;
		if (!api_os_digits(&p, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600 + om * 60);
	}
	if (*p)
		return -EINVAL;
	if (mon < 1 || mon > 12 || mday < 1 || mday > mdays[mon - 1] || hour > 23 || min > 59 ||
	    sec > 59)
		return -EINVAL;
	if (mon == 2 && mday == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
		return -EINVAL;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = mday;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm) - off;
	if (!gmtime_r(&t, &out) || out.tm_year + 1900 < 1970 || out.tm_year + 1900 > 9999)
		return -EINVAL;
	if (ms >= 0)
		snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03d", out.tm_year + 1900,
			 out.tm_mon + 1, out.tm_mday, out.tm_hour, out.tm_min, out.tm_sec, ms);
	else
		snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d", out.tm_year + 1900,
			 out.tm_mon + 1, out.tm_mday, out.tm_hour, out.tm_min, out.tm_sec);
	return 0;
}

static int api_os_on_datetime_set(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	json_t *o = json_pack("{ss}", "datetime", (const char *)userdata);

	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static void api_os_datetime_put(struct api_req *q, void *userdata)
{
	static const char *const allowed[] = {"datetime", NULL};
	struct gw_manager *m = userdata;
	struct smp_request *req = NULL;
	struct gw_device *d;
	const char *text = NULL;
	char utc[40];
	char *copy;
	json_t *body;
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	body = api_body_object(q);
	if (!body || api_field_only(q, body, allowed) < 0)
		return;
	r = api_field_string(q, body, "datetime", API_OS_DATETIME_MAX, false, &text);
	if (r == -ENOENT) {
		api_reply_error(q, 400, "bad_request", "\"datetime\": required");
		return;
	}
	if (r < 0)
		return;
	if (api_os_datetime_to_utc(text, utc, sizeof(utc)) < 0) {
		api_reply_error(q, 400, "bad_request",
				"\"datetime\": must be ISO 8601, YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM]");
		return;
	}
	copy = strdup(utc);
	r = copy ? smp_os_datetime_set_request(utc, &req) : -ENOMEM;
	if (r < 0) {
		free(copy);
		api_reply_errno(q, r, "datetime");
		return;
	}
	(void)api_device_call(q, m, d, req, api_os_on_datetime_set, copy, free);
}

/* ---- reset ---- */

static void api_os_on_reset(struct api_device_seq *s, int error, const struct smp_response *rsp,
			    void *userdata)
{
	json_t *o;

	if (error < 0) {
		api_device_seq_reply_errno(s, error, "reset");
		return;
	}
	if (rsp && !smp_response_ok(rsp)) {
		api_device_seq_reply_status(s, rsp);
		return;
	}
	/* Accepted: the device reboots after its answer (or already did). */
	o = json_pack("{sb}", "answered", rsp != NULL);
	if (!o) {
		api_device_seq_reply_errno(s, -ENOMEM, "reset");
		return;
	}
	api_device_seq_reply_json(s, 202, o);
}

static void api_os_reset(struct api_req *q, void *userdata)
{
	static const char *const allowed[] = {"force", "boot_mode", NULL};
	struct gw_manager *m = userdata;
	struct api_device_seq *s = NULL;
	struct gw_device *d;
	int64_t boot_mode = -1;
	bool force = false;
	json_t *body;
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	body = api_req_json(q);
	if (body) {
		/* No body means a plain reset. */
		body = api_body_object(q);
		if (!body || api_field_only(q, body, allowed) < 0)
			return;
		r = api_field_bool(q, body, "force", &force);
		if (r < 0 && r != -ENOENT)
			return;
		r = api_field_int(q, body, "boot_mode", 0, 255, &boot_mode);
		if (r < 0 && r != -ENOENT)
			return;
	}
	if (api_device_seq_new(q, m, d, NULL, NULL, &s) < 0)
		return;
	(void)api_device_seq_reset(s, force, (int)boot_mode, api_os_on_reset);
}

/* ---- bootloader ---- */

static int api_os_on_bootloader(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	struct smp_os_bootloader_info *b = NULL;
	_cleanup_(json_decrefp) json_t *o = json_object();
	int r;

	if (!o)
		return -ENOMEM;
	r = smp_os_bootloader_parse(rsp, &b);
	if (r < 0)
		return r;
	if (b->bootloader && json_object_set_new(o, "bootloader", json_string(b->bootloader)) < 0)
		r = -ENOMEM;
	if (r >= 0 && b->has_mode) {
		const char *name = smp_os_boot_mode_name(b->mode);

		if (json_object_set_new(o, "mode", json_integer(b->mode)) < 0 ||
		    json_object_set_new(o, "mode_name",
					name ? json_string(name) : json_null()) < 0 ||
		    json_object_set_new(o, "can_revert",
					json_boolean(smp_os_boot_mode_can_revert(b->mode))) < 0)
			r = -ENOMEM;
	}
	if (r >= 0 && b->has_no_downgrade &&
	    json_object_set_new(o, "no_downgrade", json_boolean(b->no_downgrade)) < 0)
		r = -ENOMEM;
	if (r >= 0 && b->has_active &&
	    json_object_set_new(o, "active",
				json_integer(api_text_json_uint(b->active))) < 0)
		r = -ENOMEM;
	smp_os_bootloader_info_free(b);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(o);
	return 0;
}

static void api_os_bootloader(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct smp_request *req = NULL;
	const char *query = NULL;
	struct gw_device *d;
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	r = api_field_query_string(q, "query", API_OS_QUERY_MAX, &query);
	if (r < 0 && r != -ENOENT)
		return;
	r = smp_os_bootloader_request(query, &req);
	if (r < 0) {
		api_reply_errno(q, r, "bootloader");
		return;
	}
	(void)api_device_call(q, m, d, req, api_os_on_bootloader, NULL, NULL);
}

static const struct api_route api_os_routes[] = {
	{"POST", "/api/v1/devices/{id}/os/echo", API_ROLE_OPERATOR, 0, api_os_echo},
	{"GET", "/api/v1/devices/{id}/os/info", API_ROLE_VIEWER, 0, api_os_info},
	{"GET", "/api/v1/devices/{id}/os/params", API_ROLE_VIEWER, 0, api_os_params},
	{"GET", "/api/v1/devices/{id}/os/tasks", API_ROLE_VIEWER, 0, api_os_tasks},
	{"GET", "/api/v1/devices/{id}/os/mempools", API_ROLE_VIEWER, 0, api_os_mempools},
	{"GET", "/api/v1/devices/{id}/os/datetime", API_ROLE_VIEWER, 0, api_os_datetime_get},
	{"PUT", "/api/v1/devices/{id}/os/datetime", API_ROLE_OPERATOR, 0, api_os_datetime_put},
	{"POST", "/api/v1/devices/{id}/os/reset", API_ROLE_OPERATOR, 0, api_os_reset},
	{"GET", "/api/v1/devices/{id}/os/bootloader", API_ROLE_VIEWER, 0, api_os_bootloader},
};

int api_os_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_os_routes, ELEMENTSOF(api_os_routes), m);
}
