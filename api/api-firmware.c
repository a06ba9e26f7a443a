/* api-firmware: the firmware store over HTTP: upload a raw MCUboot image, list, read, remove */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "daemon/gw-firmware.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "lib/macro.h"

/* The store opens with the database, before the server starts; a request
 * can only miss it in a half-built manager (tests). */
static struct gw_firmware *firmware_of(struct api_req *q, struct gw_manager *m)
{
	if (!m->firmware)
		api_reply_error(q, 500, "internal", "the firmware store is not open");
	return m->firmware;
}

static void firmware_on_add(struct api_req *q, void *userdata)
{
	struct gw_firmware *fw = firmware_of(q, userdata);
	const char *name = api_req_query(q, "name");
	char err[256] = "", location[128];
	json_t *info = NULL;
	uint64_t size = 0;
	int fd, r;

	if (!fw)
		return;
	r = api_req_body_fd(q, &size);
	if (r < 0) {
		api_reply_errno(q, r, "reading the body");
		return;
	}
	fd = r;
	r = gw_firmware_add_fd(fw, fd, name, &info, err, sizeof(err));
	switch (r) {
	case 0:
	case 1:
		break;
	case -EBADMSG:
		api_reply_error(q, 400, "invalid_image", "%s", err);
		return;
	case -EINVAL:
		api_reply_error(q, 400, "bad_query", "%s", err);
		return;
	case -EFBIG:
		api_reply_error(q, 413, "too_large", "%s", err);
		return;
	case -ENOSPC:
		gw_warn("firmware", "%s", err);
		api_reply_error(q, 507, "no_space", "no space left in the firmware store");
		return;
	default:
		if (err[0])
			gw_err("firmware", "%s", err);
		else
			gw_log_errno(LOG_ERR, r, "firmware", "cannot add an image: %m");
		api_reply_errno(q, r, "storing the image");
		return;
	}
	if (r == 0) {
		gw_info("firmware", "image %s (version %s, %llu bytes) added by token \"%s\"",
			json_string_value(json_object_get(info, "id")),
			json_string_value(json_object_get(info, "version")), (unsigned long long)size,
			api_req_token_name(q) ? api_req_token_name(q) : "");
		snprintf(location, sizeof(location), "/api/v1/firmware/%s",
			 json_string_value(json_object_get(info, "id")));
		api_req_add_header(q, "Location", location);
	}
	api_reply_json(q, r == 0 ? 201 : 200, info);
}

static void firmware_on_list(struct api_req *q, void *userdata)
{
	struct gw_firmware *fw = firmware_of(q, userdata);
	json_t *list = NULL;
	int r;

	if (!fw)
		return;
	r = gw_firmware_list(fw, &list);
	if (r < 0) {
		api_reply_errno(q, r, "listing the firmware");
		return;
	}
	api_reply_json(q, 200, json_pack("{s:o}", "firmware", list));
}

static void firmware_reply_not_found(struct api_req *q)
{
	api_reply_error(q, 404, "firmware_not_found",
			"no stored image has this id (the SHA-256 of the file, 64 hex digits)");
}

static void firmware_on_get(struct api_req *q, void *userdata)
{
	struct gw_firmware *fw = firmware_of(q, userdata);
	json_t *info = NULL;
	int r;

	if (!fw)
		return;
	r = gw_firmware_get(fw, api_req_param(q, "id"), &info);
	if (r == -ENOENT) {
		firmware_reply_not_found(q);
		return;
	}
	if (r < 0) {
		api_reply_errno(q, r, "reading the image");
		return;
	}
	api_reply_json(q, 200, info);
}

static void firmware_on_remove(struct api_req *q, void *userdata)
{
	struct gw_firmware *fw = firmware_of(q, userdata);
	const char *id = api_req_param(q, "id");
	int r;

	if (!fw)
		return;
	r = gw_firmware_remove(fw, id);
	if (r == -ENOENT) {
		firmware_reply_not_found(q);
		return;
	}
	if (r == -EBUSY) {
		api_reply_error(q, 409, "firmware_in_use",
				"a rollout that is not finished or an enabled auto-update uses this "
				"image: cancel or disable it first");
		return;
	}
	if (r < 0) {
		api_reply_errno(q, r, "removing the image");
		return;
	}
	gw_info("firmware", "image %s removed by token \"%s\"", id,
		api_req_token_name(q) ? api_req_token_name(q) : "");
	api_reply_json(q, 204, NULL);
}

int api_firmware_register(struct api_http *h, struct gw_manager *m)
{
	static const struct api_route routes[] = {
		{ "POST", "/api/v1/firmware", API_ROLE_OPERATOR, API_ROUTE_BODY_FILE, firmware_on_add },
		{ "GET", "/api/v1/firmware", API_ROLE_VIEWER, 0, firmware_on_list },
		{ "GET", "/api/v1/firmware/{id}", API_ROLE_VIEWER, 0, firmware_on_get },
		{ "DELETE", "/api/v1/firmware/{id}", API_ROLE_OPERATOR, 0, firmware_on_remove },
	};

	return api_http_add_routes(h, routes, ELEMENTSOF(routes), m);
}
