/* api-fs: the file system group (8) over HTTP: streamed download and upload, status, hash, types, close */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api-field.h"
#include "api/api-text.h"
#include "api/api.h"
#include "daemon/gw-devices.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "lib/macro.h"
#include "lib/smp-cbor.h"
#include "lib/smp-error.h"
#include "lib/smp-fs.h"
#include "lib/smp-upload.h"

#define LOG "api"

/* Zephyr file systems name a file in at most 255 bytes (LittleFS's
 * LFS_NAME_MAX, MAX_FILE_NAME); MCUmgr's own path limit
 * (CONFIG_MCUMGR_GRP_FS_PATH_LEN, 64 by default) is the device's to judge. */
#define API_FS_PATH_MAX 255
/* A download reads ahead of a slow client at most this much. */
#define API_FS_READ_AHEAD (256 * 1024)
/* Hash and checksum names are at most 8 characters (§9.4). */
#define API_FS_HASH_TYPE_MAX 8

/* The device path of {path+}: "/" and the joined segments, bounded and
 * without control characters. Returns 0 and a malloc'd path, or -errno
 * after replying. */
static int api_fs_path(struct api_req *q, char **ret)
{
	const char *p = api_req_param(q, "path");
	size_t n = p ? strlen(p) : 0;
	char *path;

	if (n == 0) {
		api_reply_error(q, 400, "bad_path", "the path is empty");
		return -EINVAL;
	}
	if (n + 1 > API_FS_PATH_MAX) {
		api_reply_error(q, 400, "bad_path", "paths are at most %d bytes", API_FS_PATH_MAX);
		return -EINVAL;
	}
	if (api_text_has_control(p, n)) {
		api_reply_error(q, 400, "bad_path", "the path holds a control character");
		return -EINVAL;
	}
	if (asprintf(&path, "/%s", p) < 0) {
		api_reply_errno(q, -ENOMEM, "file system");
		return -ENOMEM;
	}
	*ret = path;
	return 0;
}

/* Transfers hold the device (no idle close, no eviction, the poller
 * waits). They keep the device's id, not the device: it may be removed
 * meanwhile. */
static void api_fs_hold(struct gw_manager *m, const char *device_id)
{
	gw_devices_hold(m->devices, gw_registry_find(m->registry, device_id));
}

static void api_fs_release(struct gw_manager *m, const char *device_id)
{
	gw_devices_release(m->devices, gw_registry_find(m->registry, device_id));
}

/* --- download: GET /fs/files/{path+} --- */

/* Chunks are read one at a time, as bulk requests (interactive calls to
 * the device pass them), and only while the client keeps up: at most
 * API_FS_READ_AHEAD bytes wait in the reply's buffer. lib's
 * smp_file_download() cannot pause between chunks, hence this loop on the
 * same builder and parser. */
struct api_fs_download {
	struct gw_manager *m;
	struct api_req *q;
	char *device_id;
	char *path;
	uint64_t call_id;
	bool calling;  /* a chunk request is in flight: call_id */
	bool started;  /* the status line went out: an error now cuts the body */
	bool draining; /* waiting for the client to take what is buffered */
	uint64_t off;  /* bytes received and handed to the reply */
	uint64_t size; /* the file's size, from the first answer */
};

static void api_fs_download_free(struct api_fs_download *dl)
{
	if (dl->calling)
		(void)gw_devices_cancel(dl->m->devices, dl->call_id);
	api_fs_release(dl->m, dl->device_id);
	free(dl->device_id);
	free(dl->path);
	free(dl);
}

/* Ends the download with an error: a JSON reply while nothing was sent,
 * else a cut connection (the client sees a truncated body; the log says
 * why). rsp: the device's answer when its status was the error. */
static void api_fs_download_fail(struct api_fs_download *dl, int error,
				 const struct smp_response *rsp)
{
	if (dl->started) {
		if (rsp)
			gw_warn(LOG,
				"%s: download of %s cut at byte %" PRIu64 ": device answered %s",
				dl->device_id, dl->path, dl->off, smp_status_name(&rsp->status));
		else
			gw_log_errno(LOG_WARNING, error, LOG,
				     "%s: download of %s cut at byte %" PRIu64 ": %m",
				     dl->device_id, dl->path, dl->off);
		api_reply_stream_end(dl->q, -EIO);
	} else if (rsp) {
		api_reply_device_status(dl->q, &rsp->status, SMP_GROUP_FS);
	} else if (error == -ENODEV) {
		api_reply_error(dl->q, 404, "device_not_found", "device %s was removed",
				dl->device_id);
	} else {
		/* Before the first byte, a file that shrank is an answer that
		 * contradicts itself. */
		api_reply_errno(dl->q, error == -ENODATA ? -EBADMSG : error, "download");
	}
	api_fs_download_free(dl);
}

static void api_fs_download_on_answer(struct smp_client *c, int error,
				      const struct smp_response *rsp, void *userdata);

static void api_fs_download_next(struct api_fs_download *dl)
{
	struct gw_device *d = gw_registry_find(dl->m->registry, dl->device_id);
	struct smp_request *req;
	int r;

	if (!d) {
		api_fs_download_fail(dl, -ENODEV, NULL);
		return;
	}
	r = smp_fs_download_request(dl->path, dl->off, &req);
	if (r >= 0)
		r = gw_devices_call(dl->m->devices, d, req, SMP_PRIO_BULK, dl->m->config.timeout_ms,
				    api_fs_download_on_answer, dl, NULL, &dl->call_id);
	if (r < 0) {
		api_fs_download_fail(dl, r, NULL);
		return;
	}
	dl->calling = true;
}

static void api_fs_download_on_drain(struct api_req *q, void *userdata)
{
	struct api_fs_download *dl = userdata;

	if (!dl->draining || api_req_stream_pending(q) > API_FS_READ_AHEAD)
		return;
	dl->draining = false;
	api_fs_download_next(dl);
}

static void api_fs_download_on_abort(struct api_req *q, void *userdata)
{
	struct api_fs_download *dl = userdata;

	gw_debug(LOG, "%s: download of %s: the client went away at byte %" PRIu64, dl->device_id,
		 dl->path, dl->off);
	api_fs_download_free(dl);
}

/* The first answer: a file that came whole is one reply with its length;
 * a longer one starts the stream (chunked: its length is known, but a
 * failure midway must be able to cut it). */
static int api_fs_download_start(struct api_fs_download *dl, const struct smp_fs_download *d)
{
	int r;

	if (d->data_len == dl->size) {
		api_reply_bytes(dl->q, 200, "application/octet-stream", d->data, d->data_len);
		return 1;
	}
	r = api_reply_stream_begin(dl->q, 200, "application/octet-stream");
	if (r < 0)
		return r;
	dl->started = true;
	api_req_on_drain(dl->q, api_fs_download_on_drain, dl);
	return 0;
}

static void api_fs_download_on_answer(struct smp_client *c, int error,
				      const struct smp_response *rsp, void *userdata)
{
	struct api_fs_download *dl = userdata;
	struct smp_fs_download *d = NULL;
	int r;

	dl->calling = false;
	if (error < 0) {
		api_fs_download_fail(dl, error, NULL);
		return;
	}
	if (!smp_response_ok(rsp)) {
		api_fs_download_fail(dl, -EREMOTEIO, rsp);
		return;
	}
	r = smp_fs_download_parse(rsp, &d);
	if (r < 0 || d->off != dl->off || (dl->off == 0 && !d->has_len)) {
		r = r == -ENOMEM ? r : -EBADMSG;
		goto fail;
	}
	if (dl->off == 0)
		dl->size = d->len;
	if (d->data_len > dl->size - dl->off) {
		r = -EBADMSG;
		goto fail;
	}
	if (d->data_len == 0 && dl->off < dl->size) {
		/* §9.1: the file shrank under us. */
		r = -ENODATA;
		goto fail;
	}
	if (!dl->started) {
		r = api_fs_download_start(dl, d);
		if (r != 0)
			goto done;
	}
	r = api_reply_stream_write(dl->q, d->data, d->data_len);
	if (r < 0)
		goto fail;
	dl->off += d->data_len;
	smp_fs_download_free(d);
	if (dl->off == dl->size) {
		api_reply_stream_end(dl->q, 0);
		api_fs_download_free(dl);
		return;
	}
	if (api_req_stream_pending(dl->q) > API_FS_READ_AHEAD) {
		dl->draining = true;
		return;
	}
	api_fs_download_next(dl);
	return;

fail:
	smp_fs_download_free(d);
	api_fs_download_fail(dl, r, NULL);
	return;
done:
	/* Replied whole (r > 0) or could not start the stream (r < 0). */
	smp_fs_download_free(d);
	if (r < 0) {
		api_fs_download_fail(dl, r, NULL);
		return;
	}
	api_fs_download_free(dl);
}

static void api_fs_on_download(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct api_fs_download *dl;
	struct gw_device *d;
	char *path;

	d = api_device_lookup(q, m);
	if (!d || api_fs_path(q, &path) < 0)
		return;
	dl = calloc(1, sizeof(*dl));
	if (dl)
		dl->device_id = strdup(d->id);
	if (!dl || !dl->device_id) {
		free(dl);
		free(path);
		api_reply_errno(q, -ENOMEM, "download");
		return;
	}
	dl->m = m;
	dl->q = q;
	dl->path = path;
	api_req_on_abort(q, api_fs_download_on_abort, dl);
	api_fs_hold(m, dl->device_id);
	api_fs_download_next(dl);
}

/* --- upload: PUT /fs/files/{path+} --- */

/* The server has the whole body in a file. A status read first tells
 * whether the file exists (201 Created or 204 No Content), then lib's file
 * upload sends the file from the fd, pipelined. The client waits for the
 * end: the request's deadline ([http] request_timeout) bounds the upload. */
enum api_fs_upload_state {
	API_FS_UPLOAD_STATUS, /* status read in flight: id is a gw_devices call */
	API_FS_UPLOAD_CLIENT, /* waiting for the client: id is a gw_devices request */
	API_FS_UPLOAD_XFER,   /* smp_file_upload() running on client: id */
	API_FS_UPLOAD_DONE,
};

struct api_fs_upload {
	struct gw_manager *m;
	struct api_req *q;
	char *device_id;
	char *path;
	int fd;
	uint64_t size;
	enum api_fs_upload_state state;
	uint64_t id;
	struct smp_client *client;
	bool existed;
};

static void api_fs_upload_free(struct api_fs_upload *up)
{
	switch (up->state) {
	case API_FS_UPLOAD_STATUS:
	case API_FS_UPLOAD_CLIENT:
		(void)gw_devices_cancel(up->m->devices, up->id);
		break;
	case API_FS_UPLOAD_XFER:
		(void)smp_upload_cancel(up->client, up->id);
		break;
	case API_FS_UPLOAD_DONE:
		break;
	}
	smp_client_unref(up->client);
	api_fs_release(up->m, up->device_id);
	if (up->fd >= 0)
		close(up->fd);
	free(up->device_id);
	free(up->path);
	free(up);
}

static void api_fs_upload_reply_errno(struct api_fs_upload *up, int error)
{
	up->state = API_FS_UPLOAD_DONE;
	api_reply_errno(up->q, error, "upload");
	api_fs_upload_free(up);
}

static void api_fs_upload_on_done(int error, const struct smp_upload_result *result, void *userdata)
{
	struct api_fs_upload *up = userdata;
	json_t *body;

	up->state = API_FS_UPLOAD_DONE;
	if (error == -EREMOTEIO) {
		api_reply_device_status(up->q, &result->status, SMP_GROUP_FS);
	} else if (error < 0) {
		api_reply_errno(up->q, error, "upload");
	} else if (up->existed) {
		api_reply_json(up->q, 204, NULL);
	} else {
		body = json_pack("{s:s, s:I}", "path", up->path, "len", (json_int_t)up->size);
		if (!body) {
			api_reply_errno(up->q, -ENOMEM, "upload");
		} else {
			(void)api_req_add_header(up->q, "Location", api_req_path(up->q));
			api_reply_json(up->q, 201, body);
		}
	}
	api_fs_upload_free(up);
}

static void api_fs_upload_on_client(struct gw_devices *ds, int error, struct smp_client *c,
				    void *userdata)
{
	struct api_fs_upload *up = userdata;
	struct smp_upload_source src = {.fd = up->fd, .size = up->size};
	int r;

	if (error < 0) {
		api_fs_upload_reply_errno(up, error);
		return;
	}
	up->client = smp_client_ref(c);
	r = smp_file_upload(c, up->path, &src, NULL, NULL, api_fs_upload_on_done, up, NULL,
			    &up->id);
	if (r < 0) {
		api_fs_upload_reply_errno(up, r);
		return;
	}
	up->state = API_FS_UPLOAD_XFER;
}

static void api_fs_upload_on_status(struct smp_client *c, int error, const struct smp_response *rsp,
				    void *userdata)
{
	struct api_fs_upload *up = userdata;
	struct gw_device *d;
	int r;

	if (error < 0) {
		api_fs_upload_reply_errno(up, error);
		return;
	}
	if (smp_response_ok(rsp)) {
		up->existed = true;
	} else {
		/* Not found (or a device without status): the upload creates the
		 * file. Anything else (a directory ...) would refuse the upload too. */
		r = smp_status_to_errno(&rsp->status);
		if (r != -ENOENT && r != -ENOTSUP) {
			up->state = API_FS_UPLOAD_DONE;
			api_reply_device_status(up->q, &rsp->status, SMP_GROUP_FS);
			api_fs_upload_free(up);
			return;
		}
	}
	d = gw_registry_find(up->m->registry, up->device_id);
	if (!d) {
		up->state = API_FS_UPLOAD_DONE;
		api_reply_error(up->q, 404, "device_not_found", "device %s was removed",
				up->device_id);
		api_fs_upload_free(up);
		return;
	}
	up->state = API_FS_UPLOAD_CLIENT;
	r = gw_devices_get_client(up->m->devices, d, api_fs_upload_on_client, up, NULL, &up->id);
	if (r < 0)
		api_fs_upload_reply_errno(up, r);
}

static void api_fs_upload_on_abort(struct api_req *q, void *userdata)
{
	struct api_fs_upload *up = userdata;

	gw_info(LOG, "%s: upload of %s abandoned (client gone or deadline passed)", up->device_id,
		up->path);
	api_fs_upload_free(up);
}

static void api_fs_on_upload(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct api_fs_upload *up;
	struct smp_request *req;
	struct gw_device *d;
	uint64_t size;
	char *path;
	int fd = -1, r;

	d = api_device_lookup(q, m);
	if (!d || api_fs_path(q, &path) < 0)
		return;
	/* The request owns its body's fd: the upload keeps its own. */
	r = api_req_body_fd(q, &size);
	if (r >= 0) {
		fd = fcntl(r, F_DUPFD_CLOEXEC, 3);
		r = fd < 0 ? -errno : 0;
	}
	up = r < 0 ? NULL : calloc(1, sizeof(*up));
	if (up)
		up->device_id = strdup(d->id);
	if (!up || !up->device_id) {
		if (r >= 0)
			close(fd);
		free(up);
		free(path);
		api_reply_errno(q, r < 0 ? r : -ENOMEM, "upload");
		return;
	}
	up->m = m;
	up->q = q;
	up->path = path;
	up->fd = fd;
	up->size = size;
	api_req_on_abort(q, api_fs_upload_on_abort, up);
	api_fs_hold(m, up->device_id);

	r = smp_fs_status_request(path, &req);
	if (r >= 0)
		r = gw_devices_call(m->devices, d, req, SMP_PRIO_INTERACTIVE, m->config.timeout_ms,
				    api_fs_upload_on_status, up, NULL, &up->id);
	if (r < 0)
		api_fs_upload_reply_errno(up, r);
}

/* --- status, hash, types, close --- */

static int api_fs_on_status_answer(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	uint64_t len;
	json_t *o;
	int r;

	r = smp_fs_status_parse(rsp, &len);
	if (r < 0)
		return r;
	if (len > INT64_MAX)
		return -EBADMSG;
	o = json_pack("{s:s, s:I}", "path", (const char *)userdata, "len", (json_int_t)len);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

/* Sends req for the path; the parser gets the path as userdata (taken). */
static void api_fs_call_path(struct api_req *q, struct gw_manager *m, struct gw_device *d,
			     struct smp_request *req, api_device_parse_fn parse, char *path)
{
	(void)api_device_call(q, m, d, req, parse, path, free);
}

static void api_fs_on_status(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct smp_request *req;
	struct gw_device *d;
	char *path;
	int r;

	d = api_device_lookup(q, m);
	if (!d || api_fs_path(q, &path) < 0)
		return;
	r = smp_fs_status_request(path, &req);
	if (r < 0) {
		free(path);
		api_reply_errno(q, r, "file status");
		return;
	}
	api_fs_call_path(q, m, d, req, api_fs_on_status_answer, path);
}

static int api_fs_on_hash_answer(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	struct smp_fs_hash *h = NULL;
	_cleanup_free_ char *hex = NULL;
	json_t *o = NULL, *out;
	int r;

	r = smp_fs_hash_parse(rsp, &h);
	if (r < 0)
		return r;
	r = -EBADMSG;
	if (!smp_utf8_valid((const uint8_t *)h->type, strlen(h->type)) || h->off > INT64_MAX ||
	    h->len > INT64_MAX || (!h->output_is_bytes && h->output_uint > INT64_MAX))
		goto out;
	if (h->output_is_bytes) {
		r = api_text_hex(h->output, h->output_len, &hex);
		if (r < 0)
			goto out;
		out = json_string(hex);
	} else {
		out = json_integer((json_int_t)h->output_uint);
	}
	o = json_pack("{s:s, s:s, s:I, s:I, s:o?}", "path", (const char *)userdata, "type", h->type,
		      "off", (json_int_t)h->off, "len", (json_int_t)h->len, "output", out);
	if (!o || !out) {
		json_decref(o);
		r = -ENOMEM;
		goto out;
	}
	*ret = o;
	r = 0;
out:
	smp_fs_hash_free(h);
	return r;
}

/* ?type= names a hash the device knows (crc32, sha256, ...): a short
 * lower-case word. Returns 0 (type NULL when absent) or -EINVAL after
 * replying. */
static int api_fs_hash_type(struct api_req *q, const char **ret)
{
	const char *type = NULL;
	int r;

	r = api_field_query_string(q, "type", API_FS_HASH_TYPE_MAX, &type);
	if (r == -EINVAL)
		return r;
	if (type) {
		bool ok = type[0] != 0;

		for (const char *c = type; *c && ok; c++)
			ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9');
		if (!ok) {
			api_reply_error(q, 400, "bad_query",
					"query \"type\": a hash name such as sha256 or crc32");
			return -EINVAL;
		}
	}
	*ret = type;
	return 0;
}

static void api_fs_on_hash(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	const char *type = NULL;
	struct smp_request *req;
	uint64_t off = 0, len = 0;
	struct gw_device *d;
	char *path;
	int r;

	d = api_device_lookup(q, m);
	if (!d || api_fs_hash_type(q, &type) < 0)
		return;
	if (api_req_query_uint(q, "off", &off) == -EINVAL) {
		api_reply_error(q, 400, "bad_query", "query \"off\": must be an integer");
		return;
	}
	r = api_req_query_uint(q, "len", &len);
	if (r == -EINVAL || (r == 0 && len == 0)) {
		/* The device refuses len 0; absent means the whole file. */
		api_reply_error(q, 400, "bad_query", "query \"len\": must be a positive integer");
		return;
	}
	if (api_fs_path(q, &path) < 0)
		return;
	r = smp_fs_hash_request(path, type, off, len, &req);
	if (r < 0) {
		free(path);
		api_reply_errno(q, r, "file hash");
		return;
	}
	api_fs_call_path(q, m, d, req, api_fs_on_hash_answer, path);
}

static const char *api_fs_format_to_string(uint32_t format)
{
	switch (format) {
	case SMP_FS_HASH_FORMAT_NUMBER:
		return "number";
	case SMP_FS_HASH_FORMAT_BYTES:
		return "bytes";
	default:
		return "unknown";
	}
}

static int api_fs_on_types_answer(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	struct smp_fs_types *t = NULL;
	json_t *types = NULL, *o = NULL;
	int r;

	r = smp_fs_types_parse(rsp, &t);
	if (r < 0)
		return r;
	types = json_object();
	r = types ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < t->n_types; i++) {
		const struct smp_fs_type *ty = &t->types[i];

		if (!smp_utf8_valid((const uint8_t *)ty->name, strlen(ty->name))) {
			r = -EBADMSG;
			break;
		}
		if (json_object_set_new(types, ty->name,
					json_pack("{s:s, s:I}", "format",
						  api_fs_format_to_string(ty->format), "size",
						  (json_int_t)ty->size)) < 0)
			r = -ENOMEM;
	}
	if (r == 0) {
		o = json_pack("{s:O}", "types", types);
		r = o ? 0 : -ENOMEM;
	}
	json_decref(types);
	smp_fs_types_free(t);
	if (r == 0)
		*ret = o;
	return r;
}

static void api_fs_on_types(struct api_req *q, void *userdata)
{
	api_device_command(q, userdata, smp_fs_types_request, "hash types",
			   api_fs_on_types_answer);
}

static int api_fs_on_close_answer(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	json_t *o = json_object();

	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static void api_fs_on_close(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	json_t *body = api_req_json(q);
	struct smp_request *req;
	struct gw_device *d;
	int r;

	d = api_device_lookup(q, m);
	if (!d)
		return;
	if (body && (!json_is_object(body) || json_object_size(body) > 0)) {
		api_reply_error(q, 400, "bad_request", "the body must be empty or {}");
		return;
	}
	r = smp_fs_close_request(&req);
	if (r < 0) {
		api_reply_errno(q, r, "file close");
		return;
	}
	(void)api_device_call(q, m, d, req, api_fs_on_close_answer, NULL, NULL);
}

static const struct api_route api_fs_routes[] = {
    {"GET", "/api/v1/devices/{id}/fs/files/{path+}", API_ROLE_OPERATOR, 0, api_fs_on_download},
    {"PUT", "/api/v1/devices/{id}/fs/files/{path+}", API_ROLE_ADMIN, API_ROUTE_BODY_FILE,
     api_fs_on_upload},
    {"GET", "/api/v1/devices/{id}/fs/status/{path+}", API_ROLE_VIEWER, 0, api_fs_on_status},
    {"GET", "/api/v1/devices/{id}/fs/hash/{path+}", API_ROLE_VIEWER, 0, api_fs_on_hash},
    {"GET", "/api/v1/devices/{id}/fs/hash-types", API_ROLE_VIEWER, 0, api_fs_on_types},
    {"POST", "/api/v1/devices/{id}/fs/close", API_ROLE_ADMIN, 0, api_fs_on_close},
};

int api_fs_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_fs_routes, ELEMENTSOF(api_fs_routes), m);
}
