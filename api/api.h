/* api: the REST API's routes: one register function per resource file, and what handlers share */
#pragma once

#include <jansson.h>

#include "api/api-http.h"
#include "lib/smp-request.h"
#include "lib/smp-response.h"

struct gw_manager;
struct gw_device;

/* Registers every route of /api/v1 and /metrics on h; each resource file
 * (api/api-<resource>.c) adds its own with api_<resource>_register(). The
 * handlers get the manager as userdata. Returns 0 or -errno. */
int api_register(struct api_http *h, struct gw_manager *m);

int api_system_register(struct api_http *h, struct gw_manager *m);   /* health, version, openapi.yaml */
int api_devices_register(struct api_http *h, struct gw_manager *m);  /* device list and CRUD */
int api_os_register(struct api_http *h, struct gw_manager *m);
int api_image_register(struct api_http *h, struct gw_manager *m);
int api_stat_register(struct api_http *h, struct gw_manager *m);
int api_settings_register(struct api_http *h, struct gw_manager *m);
int api_fs_register(struct api_http *h, struct gw_manager *m);
int api_shell_register(struct api_http *h, struct gw_manager *m);
int api_enum_register(struct api_http *h, struct gw_manager *m);
int api_zephyr_register(struct api_http *h, struct gw_manager *m);
int api_raw_register(struct api_http *h, struct gw_manager *m);
int api_firmware_register(struct api_http *h, struct gw_manager *m);
int api_tokens_register(struct api_http *h, struct gw_manager *m);
int api_events_register(struct api_http *h, struct gw_manager *m);
int api_metrics_register(struct api_http *h, struct gw_manager *m);
int api_rollouts_register(struct api_http *h, struct gw_manager *m); /* rollouts, jobs, auto-updates */

/* --- shared by the device handlers (api/api-device.c) --- */

/* The device named by the "{id}" path parameter, or NULL after replying 404
 * "device_not_found". */
struct gw_device *api_device_lookup(struct api_req *q, struct gw_manager *m);

/* Turns a successful response into the reply's JSON body (*ret, new
 * reference). Return 0, or -EBADMSG when the answer lacks what the command
 * promises (the reply is then 502 bad_device_answer). */
typedef int (*api_device_parse_fn)(const struct smp_response *rsp, json_t **ret, void *userdata);

/* Sends req (always taken) to d at interactive priority with the [smp]
 * timeout, waits (the connection is suspended), and replies:
 *   200 with parse(rsp) (parse NULL: the response map as JSON, smp-json.h);
 *   a device error status as 502 "device_error" with the smp object (group,
 *   rc, name) and the code's sentence, except rc EBUSY: 409 "device_busy",
 *   ENOENT: 404 "not_found" and EINVAL: 400 "device_refused" (the device
 *   judged the arguments), all with the smp object; link errors through
 *   api_reply_errno().
 * A client that goes away cancels the request. userdata/destroy belong to
 * parse: destroy runs once, after the reply or the abort. Returns 0 (the
 * reply will come), or -errno after having replied (the caller just returns). */
int api_device_call(struct api_req *q, struct gw_manager *m, struct gw_device *d,
		    struct smp_request *req, api_device_parse_fn parse, void *userdata,
		    void (*destroy)(void *));

/* A command without arguments: the device of "{id}" (404 when unknown),
 * the request build() makes (what names it in an error reply), and
 * api_device_call() with parse. */
void api_device_command(struct api_req *q, struct gw_manager *m,
			int (*build)(struct smp_request **ret), const char *what,
			api_device_parse_fn parse);

/* Replies a device's error status as api_device_call() does: rc EBUSY 409
 * "device_busy", ENOENT 404 "not_found", EINVAL 400 "device_refused", else
 * 502 "device_error", each with the smp object. header_group names the
 * group when the status does not (an "rc" answer). For handlers that see
 * answers api_device_call() does not (sequences, transfers). */
void api_reply_device_status(struct api_req *q, const struct smp_status *st,
			     uint16_t header_group);

/* Answers a cached section of the registry ("image_state", "stats/<group>",
 * ...) as {"value": ..., "at": ms, "age_ms": n}, or asks the device with req
 * when the section was never read or ?refresh=true (then stores parse's
 * value with gw_registry_set_reported() and answers it the same way). req
 * is always taken (freed unused when the cache answers). Same return as
 * api_device_call(). */
int api_device_cached(struct api_req *q, struct gw_manager *m, struct gw_device *d,
		      const char *section, struct smp_request *req, api_device_parse_fn parse);

/* Reads a JSON object body: replies 400 and returns NULL when the body is
 * missing or not an object. */
json_t *api_body_object(struct api_req *q);
