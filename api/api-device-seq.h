/* api-device-seq: a handler's exchange of several requests with one device */
#pragma once

#include <stdbool.h>

#include "api/api-http.h"
#include "lib/smp-client.h"
#include "lib/smp-request.h"
#include "lib/smp-response.h"

struct gw_manager;
struct gw_device;
struct api_device_seq;

/* api_device_call() sends one request and turns its answer into the
 * reply. Some routes need more: several requests in a row (stats: the list,
 * then each group), a fallback (enum details, else the list), the answer
 * whatever its status (raw), or the client's reset that tolerates the link
 * dropping. A seq holds the request q for them: it sends with the same
 * priority and timeout as api_device_call(), cancels what is in flight when
 * the client goes away, and ends with exactly one reply.
 *
 * Ownership: after api_device_seq_new() succeeded, the seq owns the handler's
 * state (userdata, freed with destroy exactly once: after the reply or the
 * abort). Every function below that replies also frees the seq. */

/* The answer to the last request: error 0 and rsp (valid during the call;
 * a device error is data in rsp->status), or a negative errno of the link
 * (rsp NULL). The callback must send again or reply. */
typedef void (*api_device_seq_fn)(struct api_device_seq *s, int error,
				  const struct smp_response *rsp, void *userdata);

/* Starts a seq for device d (its id is kept: a device removed meanwhile
 * ends the seq with 404). Returns 0, or -ENOMEM after having replied 500
 * (destroy has run then too). */
int api_device_seq_new(struct api_req *q, struct gw_manager *m, struct gw_device *d,
		       void *userdata, void (*destroy)(void *), struct api_device_seq **ret);

/* Sends req (always taken). Returns 0 (cb will run), or -errno after having
 * replied (and freed the seq): the caller just returns. */
int api_device_seq_send(struct api_device_seq *s, struct smp_request *req, api_device_seq_fn cb);
/* Resets the device with smp_client_reset_device(): cb gets error 0 with rsp
 * when the device answered, and error 0 with rsp NULL when the link dropped
 * while waiting (the device rebooted before its answer got out). Same
 * returns as api_device_seq_send(). */
int api_device_seq_reset(struct api_device_seq *s, bool force, int boot_mode,
			 api_device_seq_fn cb);

/* The replies; each frees the seq. */
void api_device_seq_reply_json(struct api_device_seq *s, unsigned status, json_t *body);
/* An answer whose status is an error, as api_device_call() replies it. */
void api_device_seq_reply_status(struct api_device_seq *s, const struct smp_response *rsp);
/* A link error, through api_reply_errno(). */
void api_device_seq_reply_errno(struct api_device_seq *s, int error, const char *what);
/* The request, for replies the helpers above do not cover (then call
 * api_device_seq_free() right after replying). */
struct api_req *api_device_seq_req(struct api_device_seq *s);
struct gw_manager *api_device_seq_manager(struct api_device_seq *s);
/* The device, looked up again (NULL when it was removed meanwhile). */
struct gw_device *api_device_seq_device(struct api_device_seq *s);
void api_device_seq_free(struct api_device_seq *s);

