/* api-http: smpgwd's HTTP server: libmicrohttpd on the daemon's sd-event loop, routing, auth, replies */
#pragma once

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct api_http;
struct api_req;

/* Roles are ordered: a route needing VIEWER accepts OPERATOR and ADMIN. */
enum api_role {
	API_ROLE_NONE,     /* route needs no token (health) */
	API_ROLE_VIEWER,   /* reads */
	API_ROLE_OPERATOR, /* device calls, rollouts */
	API_ROLE_ADMIN,    /* shell, FS writes, settings writes, storage erase, raw, tokens */
};
const char *api_role_to_string(enum api_role r); /* "viewer", ...; "none" */
int api_role_from_string(const char *s);          /* enum value or -EINVAL */

/* Checks a bearer token (the secret exactly as the client sent it). Returns 0
 * and the token's role and name (ret_name: malloc'd, for logs and audit;
 * never the secret), or -EACCES when the token is unknown or revoked. */
typedef int (*api_auth_fn)(const char *secret, enum api_role *ret_role, char **ret_name,
			   void *userdata);

struct api_http_config {
	const char *listen;          /* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8080"; port 0 picks one */
	const char *tls_cert;        /* PEM file paths; both set: HTTPS, both NULL: HTTP */
	const char *tls_key;
	uint64_t max_body;           /* largest streamed body (API_ROUTE_BODY_FILE routes) */
	size_t max_json_body;        /* largest in-memory body of every other route; 0: 1 MiB */
	unsigned max_connections;
	unsigned request_timeout_ms; /* a handler that has not replied by then: 504, and its abort runs */
	const char *tmp_dir;         /* where streamed bodies are written (an O_TMPFILE/unlinked file) */
	bool use_listen_fds;         /* take an HTTP socket from sd_listen_fds() when one was passed */
	api_auth_fn auth;
	void *auth_userdata;
};

/* Creates the server on loop e (config strings are copied). Nothing listens
 * before api_http_start(). Returns 0, -EINVAL for a bad listen address or a
 * half-set TLS pair, -ENOENT/-EACCES for unreadable certificate files, -ENOMEM. */
int api_http_new(sd_event *e, const struct api_http_config *cfg, struct api_http **ret);
/* Stops listening, ends every connection (aborts of waiting handlers run).
 * NULL-safe; returns NULL. */
struct api_http *api_http_free(struct api_http *h);

/* Binds (or adopts the socket-activated fd) and starts serving. Event
 * sources: "api-http-epoll" (MHD's epoll fd) and "api-http-timer" (MHD's
 * timeout), "api-http-kick" (a defer that runs MHD after a connection was
 * resumed from outside it), plus one "api-http-hangup" IO source per
 * suspended connection (to notice a client that goes away while its
 * handler waits) and one "api-http-deadline" timer per waiting handler.
 * Returns 0, -EADDRINUSE, -EACCES, or another -errno from bind/listen. */
int api_http_start(struct api_http *h);
/* The bound TCP port (after start), for tests that listen on port 0. */
int api_http_port(struct api_http *h);
/* Number of connections open now. */
unsigned api_http_connections(struct api_http *h);

/* A handler runs once the whole body is in. It must call exactly one
 * api_reply_*() (or api_reply_stream_begin()), now or later from the loop:
 * when it returns without replying the connection is suspended until it
 * does. */
typedef void (*api_handler_fn)(struct api_req *q, void *userdata);

enum {
	/* The body is streamed to an unlinked file in tmp_dir, up to max_body
	 * (413 beyond, before the handler runs); read it with api_req_body_fd(). */
	API_ROUTE_BODY_FILE = 1 << 0,
};

struct api_route {
	const char *method;   /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	/* "/api/v1/devices/{id}/os/echo". "{name}" matches one non-empty path
	 * segment, percent-decoded (a segment that decodes to something holding
	 * '/' or NUL, or that is not UTF-8, is refused with 400 before the
	 * handler runs). A last "{name+}" matches one or more segments, decoded
	 * one by one and joined with '/' (for FS paths); ".", ".." and empty
	 * segments in it are refused with 400. Literal segments win over
	 * parameters when both match. */
	const char *pattern;
	enum api_role role;   /* least role allowed */
	unsigned flags;       /* API_ROUTE_* */
	api_handler_fn handler;
};

/* Adds routes (the array and its strings must outlive the server; userdata
 * is passed to each handler). An unknown path answers 404, a known path with
 * another method 405 with an Allow header. Returns 0, -EEXIST for a
 * duplicate method+pattern, -EINVAL for a bad pattern, -ENOMEM. */
int api_http_add_routes(struct api_http *h, const struct api_route *routes, size_t n,
			void *userdata);
/* Every registered route in registration order, for the OpenAPI check. */
typedef void (*api_http_route_fn)(const struct api_route *r, void *userdata);
void api_http_foreach_route(struct api_http *h, api_http_route_fn fn, void *userdata);

/* HTTP counters, for /metrics: requests by route pattern (or "unmatched")
 * and status, and the sum of their durations. Methods other than the five
 * routable ones count as "OTHER"; a request whose client went away before
 * any reply counts with status 499. */
typedef void (*api_http_stat_fn)(const char *method, const char *pattern, unsigned status,
				 uint64_t count, uint64_t duration_us_sum, void *userdata);
void api_http_foreach_stat(struct api_http *h, api_http_stat_fn fn, void *userdata);

/* --- the request (valid from the handler until the reply has been queued or the abort ran) --- */

const char *api_req_method(struct api_req *q);
const char *api_req_path(struct api_req *q);      /* raw path, without the query */
const char *api_req_pattern(struct api_req *q);   /* the route's pattern */
/* A path parameter, decoded ("id" of "{id}"); NULL when the route has none by that name. */
const char *api_req_param(struct api_req *q, const char *name);
/* A query argument, decoded; NULL when absent ("" for "?x"). */
const char *api_req_query(struct api_req *q, const char *name);
/* Query arguments helpers: 0 and the value, -ENOENT when absent (ret untouched),
 * -EINVAL when malformed: callers reply 400 naming the argument. */
int api_req_query_bool(struct api_req *q, const char *name, bool *ret);   /* true/false/1/0 */
int api_req_query_uint(struct api_req *q, const char *name, uint64_t *ret);
const char *api_req_header(struct api_req *q, const char *name);
enum api_role api_req_role(struct api_req *q);
const char *api_req_token_name(struct api_req *q); /* NULL for routes without auth */
/* The body parsed as JSON (borrowed); NULL when the body was empty. A
 * non-empty body that is not JSON is refused with 400 "bad_json" before the
 * handler runs (not for API_ROUTE_BODY_FILE routes). */
json_t *api_req_json(struct api_req *q);
/* API_ROUTE_BODY_FILE routes: the body's file (owned by the request; the
 * handler may dup() it to keep it), positioned at 0, and its size. */
int api_req_body_fd(struct api_req *q, uint64_t *ret_size);
sd_event *api_req_event(struct api_req *q);

/* Called at most once, when the client goes away or the request deadline
 * passes before the handler replied: the handler must stop its work
 * (cancel its SMP request) and must not reply; q is gone after this returns.
 * Replaces an earlier abort; never called once a reply was queued. */
typedef void (*api_abort_fn)(struct api_req *q, void *userdata);
void api_req_on_abort(struct api_req *q, api_abort_fn fn, void *userdata);

/* --- replies (each ends the handler's hold on q) --- */

/* Adds a header to the coming reply (copied). Every reply carries
 * "Cache-Control: no-store" unless the handler adds its own Cache-Control.
 * -EINVAL for a name or value holding CR or LF (or a name holding ':'). */
int api_req_add_header(struct api_req *q, const char *name, const char *value);
/* How replies and events are serialised: compact, and doubles with 15
 * significant digits so a strategy's "backoff": 0.2 reads back as 0.2,
 * not 0.20000000000000001. */
#define API_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* Replies with a JSON body (stolen; NULL: no body). */
void api_reply_json(struct api_req *q, unsigned status, json_t *body);
/* Replies {"error":{"code":code,"message":...}}. */
void api_reply_error(struct api_req *q, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Same, with an "smp" member {"group","rc","name"} (the device's status). */
void api_reply_smp_error(struct api_req *q, unsigned status, const char *code, uint16_t group,
			 int64_t rc, const char *rc_name, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
/* Maps a negative errno of the device layer to an honest reply, message
 * "<what>: <reason>": -EHOSTDOWN 503 device_offline, -ETIMEDOUT 504
 * device_timeout, -EBUSY 409 busy, -ENOENT 404 not_found, -EINVAL 400
 * bad_request, -EMSGSIZE/-EFBIG 413 too_large, -ECONNRESET/-ENOTCONN/
 * -ECONNREFUSED/-EIO 502 link_error, -EBADMSG 502 bad_device_answer,
 * -ECANCELED 503 unavailable, others 500 internal. */
void api_reply_errno(struct api_req *q, int error, const char *what);
/* Replies with bytes (copied). */
void api_reply_bytes(struct api_req *q, unsigned status, const char *content_type,
		     const void *data, size_t len);

/* Streamed replies (SSE, file downloads): the status and headers go out now,
 * the body as the producer writes it. Writes are buffered; the producer
 * paces itself with api_req_stream_pending() and the drain callback, which
 * runs when the buffer falls below a low-water mark (64 KiB). The abort
 * callback still runs if the client goes away before api_reply_stream_end(). */
int api_reply_stream_begin(struct api_req *q, unsigned status, const char *content_type);
int api_reply_stream_write(struct api_req *q, const void *data, size_t len);
size_t api_req_stream_pending(struct api_req *q);
void api_req_on_drain(struct api_req *q, void (*fn)(struct api_req *q, void *userdata),
		      void *userdata);
/* Ends the body (error 0), or cuts the connection (error < 0: the client sees
 * a truncated body, which is how a download that failed midway must look). */
void api_reply_stream_end(struct api_req *q, int error);
