/* api-http: smpgwd's HTTP server: libmicrohttpd on the daemon's sd-event loop, routing, auth, replies */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "api/api-http.h"
#include "daemon/gw-log.h"
#include "lib/macro.h"
#include "lib/smp-cbor.h"

/* Per connection: the request line and headers must fit in it (MHD answers
 * 414/431 itself beyond), along with the read and write buffers. */
#define API_HTTP_MEMORY_LIMIT (32 * 1024)
/* A connection idle this long is closed (one waiting on a handler is not idle). */
#define API_HTTP_IDLE_TIMEOUT_S 60
/* Longer paths answer 414 without being routed. */
#define API_HTTP_MAX_PATH 2048
#define API_HTTP_DEFAULT_JSON_BODY (1024 * 1024)
#define API_HTTP_STREAM_LOW_WATER (64 * 1024)
/* Body bytes read and dropped after an error found mid-body (libmicrohttpd
 * sends a reply only once the request is in); beyond this the connection is cut. */
#define API_HTTP_DISCARD_MAX (1024 * 1024)
#define API_HTTP_STREAM_BLOCK (32 * 1024)
/* Status recorded for requests whose client went away before the reply (nginx's convention). */
#define API_HTTP_STATUS_CLIENT_GONE 499

enum seg_kind {
	SEG_LITERAL,
	SEG_PARAM,
	SEG_GREEDY,
};

struct seg {
	enum seg_kind kind;
	char *text; /* the literal, or the parameter's name */
};

struct stat_entry {
	const char *method; /* static or the route's */
	unsigned status;
	uint64_t count;
	uint64_t duration_us;
};

struct stat_list {
	struct stat_entry *v;
	size_t n;
};

struct route {
	const struct api_route *r;
	void *userdata;
	struct seg *segs;
	size_t n_segs;
	struct stat_list stats;
};

enum req_phase {
	REQ_RECEIVING, /* headers in, body coming */
	REQ_HANDLER,   /* the handler runs or waits (the connection is then suspended) */
	REQ_REPLIED,   /* a reply is ready and not yet queued */
	REQ_QUEUED,    /* a whole reply is queued */
	REQ_STREAMING, /* a streamed reply is queued */
	REQ_ABORTED,   /* the abort ran: the connection is closed */
};

struct req_header {
	char *name;
	char *value;
};

struct query_arg {
	char *key;
	char *value;
};

struct api_req {
	struct api_http *h;
	struct MHD_Connection *conn;
	struct api_req *prev, *next;
	enum req_phase phase;
	uint64_t start_usec;
	char *method;
	char *path;
	struct route *route;
	char **params; /* one per parameter segment of the route, decoded */
	struct query_arg *query;
	size_t n_query;
	enum api_role role;
	char *token_name;

	/* body */
	char *body;
	size_t body_len, body_cap;
	uint64_t body_limit;
	int body_fd;
	uint64_t body_size;
	json_t *json;
	uint64_t discarded; /* after a deferred error */

	/* the reply */
	struct MHD_Response *response;
	unsigned status;
	struct req_header *headers;
	size_t n_headers;
	bool suspended;
	bool streaming;
	sd_event_source *deadline;
	sd_event_source *hangup;
	api_abort_fn abort_fn;
	void *abort_userdata;

	/* streamed replies */
	char *sbuf;
	size_t s_off, s_len, s_cap;
	bool s_ended;
	int s_error;
	void (*drain_fn)(struct api_req *q, void *userdata);
	void *drain_userdata;
};

struct api_http {
	sd_event *event;
	char *listen;
	char *tmp_dir;
	char *cert_pem;
	char *key_pem;
	uint64_t max_body;
	size_t max_json_body;
	unsigned max_connections;
	unsigned request_timeout_ms;
	bool use_listen_fds;
	api_auth_fn auth;
	void *auth_userdata;
	struct sockaddr_storage addr;
	socklen_t addr_len;

	struct MHD_Daemon *mhd;
	int port;
	sd_event_source *epoll_source;
	sd_event_source *timer_source;
	sd_event_source *kick_source;

	struct route *routes;
	size_t n_routes;
	struct stat_list unmatched;
	struct api_req *requests; /* every request between its headers and its end */
};

static const char *const known_methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };

const char *api_role_to_string(enum api_role r)
{
	switch (r) {
	case API_ROLE_NONE: return "none";
	case API_ROLE_VIEWER: return "viewer";
	case API_ROLE_OPERATOR: return "operator";
	case API_ROLE_ADMIN: return "admin";
	}
	return "none";
}

int api_role_from_string(const char *s)
{
	for (int r = API_ROLE_NONE; r <= API_ROLE_ADMIN; r++)
		if (s && strcmp(s, api_role_to_string(r)) == 0)
			return r;
	return -EINVAL;
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* --- configuration --- */

/* "127.0.0.1:8080", "[::1]:8080", "*:8080" (every IPv4 address). */
static int parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len)
{
	struct sockaddr_storage ss = { 0 };
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *port_s;
	unsigned long port;
	char *end;
	size_t n;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		n = (size_t)(close - s - 1);
		if (n == 0 || n >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		port_s = close + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - s);
		if (n == 0 || n >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, n);
		host[n] = '\0';
		port_s = colon + 1;
	}
	if (*port_s < '0' || *port_s > '9')
		return -EINVAL;
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (errno || *end || port > 65535)
		return -EINVAL;

	if (s[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return -EINVAL;
		*ret_len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;

		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		if (strcmp(host, "*") == 0)
			a4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (strcmp(host, "localhost") == 0)
			a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return -EINVAL;
		*ret_len = sizeof(*a4);
	}
	*ret = ss;
	return 0;
}

/* Reads a whole PEM file (small) into a NUL-terminated string. */
static int read_pem(const char *path, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *p;

			if (cap >= 1024 * 1024) {
				r = -EFBIG;
				break;
			}
			p = realloc(buf, cap + 16384);
			if (!p) {
				r = -ENOMEM;
				break;
			}
			buf = p;
			cap += 16384;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (r < 0)
		return r;
	if (len == 0)
		return -EINVAL;
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	return 0;
}

static int strdup_opt(const char *s, char **ret)
{
	if (!s) {
		*ret = NULL;
		return 0;
	}
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

int api_http_new(sd_event *e, const struct api_http_config *cfg, struct api_http **ret)
{
	struct api_http *h;
	int r;

	if (!e || !cfg || !ret)
		return -EINVAL;
	if (!cfg->tls_cert != !cfg->tls_key)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->event = sd_event_ref(e);
	h->port = -1;
	r = parse_listen(cfg->listen, &h->addr, &h->addr_len);
	if (r < 0)
		goto fail;
	if ((r = strdup_opt(cfg->listen, &h->listen)) < 0 ||
	    (r = strdup_opt(cfg->tmp_dir ? cfg->tmp_dir : "/tmp", &h->tmp_dir)) < 0)
		goto fail;
	if (cfg->tls_cert) {
		r = read_pem(cfg->tls_cert, &h->cert_pem);
		if (r >= 0)
			r = read_pem(cfg->tls_key, &h->key_pem);
		if (r < 0)
			goto fail;
	}
	h->max_body = cfg->max_body;
	h->max_json_body = cfg->max_json_body ? cfg->max_json_body : API_HTTP_DEFAULT_JSON_BODY;
	h->max_connections = cfg->max_connections;
	h->request_timeout_ms = cfg->request_timeout_ms;
	h->use_listen_fds = cfg->use_listen_fds;
	h->auth = cfg->auth;
	h->auth_userdata = cfg->auth_userdata;
	*ret = h;
	return 0;
fail:
	api_http_free(h);
	return r;
}

/* --- the loop --- */

static void http_rearm(struct api_http *h)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (!h->mhd || !h->timer_source)
		return;
	if (MHD_get_timeout(h->mhd, &ms) == MHD_YES) {
		uint64_t at = now_usec() +
			      (uint64_t)MIN(ms, (MHD_UNSIGNED_LONG_LONG)UINT32_MAX) * 1000;

		sd_event_source_set_time(h->timer_source, at);
		sd_event_source_set_enabled(h->timer_source, SD_EVENT_ONESHOT);
	} else {
		sd_event_source_set_enabled(h->timer_source, SD_EVENT_OFF);
	}
}

static void http_run(struct api_http *h)
{
	if (!h->mhd)
		return;
	MHD_run(h->mhd);
	http_rearm(h);
}

static int http_on_epoll(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	http_run(userdata);
	return 0;
}

static int http_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	http_run(userdata);
	return 0;
}

static int http_on_kick(sd_event_source *s, void *userdata)
{
	http_run(userdata);
	return 0;
}

/* A connection was resumed from outside libmicrohttpd: have it looked at
 * soon (its internal wake-up also marks the epoll fd readable; this does
 * not depend on it). */
static void http_kick(struct api_http *h)
{
	if (h->kick_source)
		sd_event_source_set_enabled(h->kick_source, SD_EVENT_ONESHOT);
}

/* --- requests: lifetime --- */

static void req_stop_waiting(struct api_req *q)
{
	q->deadline = sd_event_source_disable_unref(q->deadline);
	q->hangup = sd_event_source_disable_unref(q->hangup);
}

static void req_resume(struct api_req *q)
{
	q->hangup = sd_event_source_disable_unref(q->hangup);
	if (!q->suspended)
		return;
	q->suspended = false;
	MHD_resume_connection(q->conn);
	http_kick(q->h);
}

static void req_free(struct api_req *q)
{
	struct api_http *h = q->h;

	if (q->prev)
		q->prev->next = q->next;
	else
		h->requests = q->next;
	if (q->next)
		q->next->prev = q->prev;
	req_stop_waiting(q);
	if (q->response)
		MHD_destroy_response(q->response);
	if (q->params) {
		for (size_t i = 0; i < q->route->n_segs; i++)
			free(q->params[i]);
		free(q->params);
	}
	for (size_t i = 0; i < q->n_query; i++) {
		free(q->query[i].key);
		free(q->query[i].value);
	}
	free(q->query);
	for (size_t i = 0; i < q->n_headers; i++) {
		free(q->headers[i].name);
		free(q->headers[i].value);
	}
	free(q->headers);
	free(q->path);
	free(q->method);
	free(q->token_name);
	free(q->body);
	if (q->body_fd >= 0)
		close(q->body_fd);
	json_decref(q->json);
	free(q->sbuf);
	free(q);
}

/* Runs the handler's abort (at most once). */
static void req_run_abort(struct api_req *q)
{
	api_abort_fn fn = q->abort_fn;

	q->abort_fn = NULL;
	if (fn)
		fn(q, q->abort_userdata);
}

/* --- statistics --- */

static void stat_add(struct stat_list *l, const char *method, unsigned status, uint64_t dur)
{
	struct stat_entry *v;

	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].status == status && strcmp(l->v[i].method, method) == 0) {
			l->v[i].count++;
			l->v[i].duration_us += dur;
			return;
		}
	}
	v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		return; /* a counter lost under memory pressure */
	l->v = v;
	l->v[l->n++] = (struct stat_entry){ method, status, 1, dur };
}

static const char *stat_method(const char *m)
{
	for (size_t i = 0; i < ELEMENTSOF(known_methods); i++)
		if (m && strcmp(m, known_methods[i]) == 0)
			return known_methods[i];
	/* Clients choose methods: one bucket keeps the series bounded. */
	return "OTHER";
}

void api_http_foreach_stat(struct api_http *h, api_http_stat_fn fn, void *userdata)
{
	for (size_t i = 0; i < h->n_routes; i++) {
		struct route *rt = &h->routes[i];

		for (size_t j = 0; j < rt->stats.n; j++)
			fn(rt->stats.v[j].method, rt->r->pattern, rt->stats.v[j].status,
			   rt->stats.v[j].count, rt->stats.v[j].duration_us, userdata);
	}
	for (size_t j = 0; j < h->unmatched.n; j++)
		fn(h->unmatched.v[j].method, "unmatched", h->unmatched.v[j].status,
		   h->unmatched.v[j].count, h->unmatched.v[j].duration_us, userdata);
}

/* --- replies --- */

static int response_add_headers(struct api_req *q, struct MHD_Response *resp,
				const char *content_type)
{
	bool own_cache_control = false;

	/* no-store unless the handler says otherwise (event streams say no-cache). */
	for (size_t i = 0; i < q->n_headers; i++)
		own_cache_control |= strcasecmp(q->headers[i].name, "Cache-Control") == 0;
	if (!own_cache_control &&
	    MHD_add_response_header(resp, "Cache-Control", "no-store") != MHD_YES)
		return -ENOMEM;
	if (content_type && MHD_add_response_header(resp, "Content-Type", content_type) != MHD_YES)
		return -ENOMEM;
	for (size_t i = 0; i < q->n_headers; i++)
		if (MHD_add_response_header(resp, q->headers[i].name, q->headers[i].value) !=
		    MHD_YES)
			return -ENOMEM;
	return 0;
}

/* Hands a reply to libmicrohttpd: right away when the connection is in its
 * handler, else on its next visit (after the resume). */
static void req_set_response(struct api_req *q, unsigned status, struct MHD_Response *resp)
{
	assert(q->phase == REQ_HANDLER || q->phase == REQ_RECEIVING);
	q->response = resp;
	q->status = status;
	q->phase = REQ_REPLIED;
	q->abort_fn = NULL;
	req_stop_waiting(q);
	req_resume(q);
}

/* The reply of last resort: a fixed body that needs no allocation of ours. */
static struct MHD_Response *response_internal_error(void)
{
	static const char body[] =
		"{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
					       MHD_RESPMEM_PERSISTENT);
	if (resp) {
		MHD_add_response_header(resp, "Cache-Control", "no-store");
		MHD_add_response_header(resp, "Content-Type", "application/json");
	}
	return resp;
}

void api_reply_bytes(struct api_req *q, unsigned status, const char *content_type,
		     const void *data, size_t len)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
	if (resp && response_add_headers(q, resp, content_type) < 0) {
		MHD_destroy_response(resp);
		resp = NULL;
	}
	if (!resp) {
		status = 500;
		resp = response_internal_error();
	}
	req_set_response(q, status, resp);
}

void api_reply_json(struct api_req *q, unsigned status, json_t *body)
{
	struct MHD_Response *resp = NULL;
	char *text;

	if (!body) {
		api_reply_bytes(q, status, NULL, "", 0);
		return;
	}
	text = json_dumps(body, API_JSON_FLAGS);
	json_decref(body);
	if (text) {
		resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
		if (!resp)
			free(text);
		else if (response_add_headers(q, resp, "application/json") < 0) {
			MHD_destroy_response(resp);
			resp = NULL;
		}
	}
	if (!resp) {
		status = 500;
		resp = response_internal_error();
	}
	req_set_response(q, status, resp);
}

_printf_(2, 0) static json_t *error_object(const char *code, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

void api_reply_error(struct api_req *q, unsigned status, const char *code, const char *fmt, ...)
{
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	j = error_object(code, fmt, ap);
	va_end(ap);
	api_reply_json(q, status, j);
}

void api_reply_smp_error(struct api_req *q, unsigned status, const char *code, uint16_t group,
			 int64_t rc, const char *rc_name, const char *fmt, ...)
{
	json_t *j, *err;
	va_list ap;

	va_start(ap, fmt);
	j = error_object(code, fmt, ap);
	va_end(ap);
	err = j ? json_object_get(j, "error") : NULL;
	if (err && json_object_set_new(err, "smp",
				       json_pack("{s:i,s:I,s:s?}", "group", (int)group, "rc",
						 (json_int_t)rc, "name", rc_name)) < 0) {
		json_decref(j);
		j = NULL;
	}
	api_reply_json(q, status, j);
}

void api_reply_errno(struct api_req *q, int error, const char *what)
{
	static const struct {
		int error;
		unsigned status;
		const char *code;
	} map[] = {
		{ EHOSTDOWN, 503, "device_offline" },   { ETIMEDOUT, 504, "device_timeout" },
		{ EBUSY, 409, "busy" },                 { ENOENT, 404, "not_found" },
		{ EINVAL, 400, "bad_request" },         { EMSGSIZE, 413, "too_large" },
		{ EFBIG, 413, "too_large" },            { ECONNRESET, 502, "link_error" },
		{ ENOTCONN, 502, "link_error" },        { ECONNREFUSED, 502, "link_error" },
		{ EIO, 502, "link_error" },             { EBADMSG, 502, "bad_device_answer" },
		{ ECANCELED, 503, "unavailable" },
	};
	int e = error < 0 ? -error : error;

	for (size_t i = 0; i < ELEMENTSOF(map); i++)
		if (map[i].error == e) {
			api_reply_error(q, map[i].status, map[i].code, "%s: %s", what, strerror(e));
			return;
		}
	api_reply_error(q, 500, "internal", "%s: %s", what, strerror(e));
}

int api_req_add_header(struct api_req *q, const char *name, const char *value)
{
	struct req_header *v;
	char *n, *val;

	/* Header injection is the caller's bug, but a CR or LF must never reach the wire. */
	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return -EINVAL;
	v = realloc(q->headers, (q->n_headers + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	q->headers = v;
	n = strdup(name);
	val = strdup(value);
	if (!n || !val) {
		free(n);
		free(val);
		return -ENOMEM;
	}
	q->headers[q->n_headers++] = (struct req_header){ n, val };
	return 0;
}

/* --- streamed replies --- */

static void req_watch_hangup(struct api_req *q, int fd);

static size_t stream_pending(struct api_req *q)
{
	return q->s_len - q->s_off;
}

static ssize_t stream_on_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct api_req *q = cls;
	size_t before = stream_pending(q), n;

	if (q->phase == REQ_ABORTED)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (before == 0) {
		if (q->s_ended)
			return q->s_error < 0 ? MHD_CONTENT_READER_END_WITH_ERROR
					      : MHD_CONTENT_READER_END_OF_STREAM;
		/* Nothing to send: wait for the producer without spinning. A
		 * client that goes away meanwhile is noticed by the hangup watch. */
		if (!q->suspended) {
			const union MHD_ConnectionInfo *ci;

			MHD_suspend_connection(q->conn);
			q->suspended = true;
			ci = MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
			if (ci)
				req_watch_hangup(q, ci->connect_fd);
		}
		return 0;
	}
	n = MIN(max, before);
	memcpy(buf, q->sbuf + q->s_off, n);
	q->s_off += n;
	if (q->s_off == q->s_len)
		q->s_off = q->s_len = 0;
	if (before >= API_HTTP_STREAM_LOW_WATER && stream_pending(q) < API_HTTP_STREAM_LOW_WATER &&
	    q->drain_fn && !q->s_ended)
		q->drain_fn(q, q->drain_userdata);
	return (ssize_t)n;
}

int api_reply_stream_begin(struct api_req *q, unsigned status, const char *content_type)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, API_HTTP_STREAM_BLOCK,
						 stream_on_read, q, NULL);
	if (!resp)
		return -ENOMEM;
	if (response_add_headers(q, resp, content_type) < 0) {
		MHD_destroy_response(resp);
		return -ENOMEM;
	}
	/* The abort stays: a client that leaves mid-stream must stop the producer. */
	{
		api_abort_fn fn = q->abort_fn;
		void *ud = q->abort_userdata;

		q->streaming = true;
		req_set_response(q, status, resp);
		q->abort_fn = fn;
		q->abort_userdata = ud;
	}
	return 0;
}

int api_reply_stream_write(struct api_req *q, const void *data, size_t len)
{
	if (!q->streaming || q->s_ended)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (q->s_off > 0 && q->s_len + len > q->s_cap) {
		memmove(q->sbuf, q->sbuf + q->s_off, q->s_len - q->s_off);
		q->s_len -= q->s_off;
		q->s_off = 0;
	}
	if (q->s_len + len > q->s_cap) {
		size_t cap = MAX(q->s_cap * 2, q->s_len + len);
		char *p = realloc(q->sbuf, cap);

		if (!p)
			return -ENOMEM;
		q->sbuf = p;
		q->s_cap = cap;
	}
	memcpy(q->sbuf + q->s_len, data, len);
	q->s_len += len;
	if (q->phase == REQ_STREAMING)
		req_resume(q);
	return 0;
}

size_t api_req_stream_pending(struct api_req *q)
{
	return stream_pending(q);
}

void api_req_on_drain(struct api_req *q, void (*fn)(struct api_req *q, void *userdata),
		      void *userdata)
{
	q->drain_fn = fn;
	q->drain_userdata = userdata;
}

void api_reply_stream_end(struct api_req *q, int error)
{
	if (!q->streaming || q->s_ended)
		return;
	q->s_ended = true;
	q->s_error = error;
	q->abort_fn = NULL;
	q->drain_fn = NULL;
	if (error < 0) {
		/* Unsent bytes would make a cut body look longer than it is. */
		q->s_off = q->s_len = 0;
	}
	if (q->phase == REQ_STREAMING)
		req_resume(q);
}

/* --- waiting handlers: deadline and hangup --- */

static int req_on_hangup(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct api_req *q = userdata;

	q->hangup = sd_event_source_disable_unref(q->hangup);
	if (q->phase != REQ_HANDLER && !(q->phase == REQ_STREAMING && !q->s_ended))
		return 0;
	q->deadline = sd_event_source_disable_unref(q->deadline);
	q->phase = REQ_ABORTED;
	req_run_abort(q);
	/* libmicrohttpd closes the connection on its next visit (the handler
	 * answers MHD_NO, the stream reader an error) and reports the end. */
	req_resume(q);
	return 0;
}

static void req_watch_hangup(struct api_req *q, int fd)
{
	int r;

	if (q->hangup)
		return;
	r = sd_event_add_io(q->h->event, &q->hangup, fd, EPOLLRDHUP, req_on_hangup, q);
	if (r < 0) {
		/* Without the watch a vanished client is noticed at the deadline. */
		gw_log_errno(LOG_DEBUG, r, "http", "cannot watch a waiting connection: %m");
		return;
	}
	sd_event_source_set_description(q->hangup, "api-http-hangup");
}

static int req_on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct api_req *q = userdata;

	q->deadline = sd_event_source_disable_unref(q->deadline);
	if (q->phase != REQ_HANDLER)
		return 0;
	req_run_abort(q);
	api_reply_error(q, 504, "timeout", "no answer within %u ms", q->h->request_timeout_ms);
	return 0;
}

/* --- routing --- */

static bool is_param_name(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

static void segs_free(struct seg *segs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(segs[i].text);
	free(segs);
}

static int pattern_parse(const char *pattern, struct seg **ret, size_t *ret_n)
{
	struct seg *segs = NULL;
	size_t n = 0;
	const char *p;

	if (!pattern || pattern[0] != '/')
		return -EINVAL;
	p = pattern + 1;
	for (;;) {
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		struct seg s = { SEG_LITERAL, NULL }, *v;

		if (len == 0)
			goto bad;
		if (p[0] == '{') {
			if (p[len - 1] != '}' || len < 3)
				goto bad;
			if (p[len - 2] == '+') {
				if (*end) /* greedy only last */
					goto bad;
				s.kind = SEG_GREEDY;
				len -= 3;
			} else {
				s.kind = SEG_PARAM;
				len -= 2;
			}
			if (!is_param_name(p + 1, len))
				goto bad;
			s.text = strndup(p + 1, len);
			for (size_t i = 0; i < n && s.text; i++)
				if (segs[i].kind != SEG_LITERAL &&
				    strcmp(segs[i].text, s.text) == 0) {
					free(s.text);
					goto bad;
				}
		} else {
			for (size_t i = 0; i < len; i++)
				if (p[i] == '{' || p[i] == '}' || p[i] == '%' || p[i] == '?' ||
				    (unsigned char)p[i] <= ' ')
					goto bad;
			s.text = strndup(p, len);
		}
		if (!s.text)
			goto nomem;
		v = realloc(segs, (n + 1) * sizeof(*v));
		if (!v) {
			free(s.text);
			goto nomem;
		}
		segs = v;
		segs[n++] = s;
		if (!*end)
			break;
		p = end + 1;
	}
	*ret = segs;
	*ret_n = n;
	return 0;
bad:
	segs_free(segs, n);
	return -EINVAL;
nomem:
	segs_free(segs, n);
	return -ENOMEM;
}

static bool method_known(const char *m)
{
	for (size_t i = 0; i < ELEMENTSOF(known_methods); i++)
		if (m && strcmp(m, known_methods[i]) == 0)
			return true;
	return false;
}

int api_http_add_routes(struct api_http *h, const struct api_route *routes, size_t n,
			void *userdata)
{
	struct route *v;
	size_t added = 0;
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		if (!method_known(routes[i].method) || !routes[i].handler ||
		    routes[i].role > API_ROLE_ADMIN)
			return -EINVAL;
		for (size_t j = 0; j < h->n_routes; j++)
			if (strcmp(h->routes[j].r->method, routes[i].method) == 0 &&
			    strcmp(h->routes[j].r->pattern, routes[i].pattern) == 0)
				return -EEXIST;
		for (size_t j = 0; j < i; j++)
			if (strcmp(routes[j].method, routes[i].method) == 0 &&
			    strcmp(routes[j].pattern, routes[i].pattern) == 0)
				return -EEXIST;
	}
	v = realloc(h->routes, (h->n_routes + n) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	h->routes = v;
	for (; added < n; added++) {
		struct route *rt = &h->routes[h->n_routes + added];

		*rt = (struct route){ .r = &routes[added], .userdata = userdata };
		r = pattern_parse(routes[added].pattern, &rt->segs, &rt->n_segs);
		if (r < 0)
			break;
	}
	if (r < 0) {
		for (size_t i = 0; i < added; i++) {
			struct route *rt = &h->routes[h->n_routes + i];

			segs_free(rt->segs, rt->n_segs);
		}
		return r;
	}
	h->n_routes += n;
	return 0;
}

void api_http_foreach_route(struct api_http *h, api_http_route_fn fn, void *userdata)
{
	for (size_t i = 0; i < h->n_routes; i++)
		fn(h->routes[i].r, userdata);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into a new string (which may hold NULs: its
 * length is *ret_len). plus: '+' means a space (query strings). */
static int percent_decode(const char *s, size_t n, bool plus, char **ret, size_t *ret_len)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= n) {
				free(out);
				return -EINVAL;
			}
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0) {
				free(out);
				return -EINVAL;
			}
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (plus && s[i] == '+') {
			out[o++] = ' ';
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	*ret = out;
	*ret_len = o;
	return 0;
}

/* A decoded text the handlers can trust: no NUL, valid UTF-8. */
static bool decoded_ok(const char *s, size_t n)
{
	return memchr(s, '\0', n) == NULL && smp_utf8_valid((const uint8_t *)s, n);
}

struct path_seg {
	const char *raw;
	size_t raw_len;
	char *dec; /* NULL when the escapes are malformed */
	size_t dec_len;
};

static void path_segs_free(struct path_seg *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].dec);
	free(v);
}

static int path_split(const char *path, struct path_seg **ret, size_t *ret_n)
{
	struct path_seg *v;
	size_t n = 1, i = 0;
	const char *p;

	for (p = path + 1; *p; p++)
		n += *p == '/';
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (p = path + 1;; i++) {
		const char *end = strchrnul(p, '/');
		int r;

		v[i].raw = p;
		v[i].raw_len = (size_t)(end - p);
		r = percent_decode(p, v[i].raw_len, false, &v[i].dec, &v[i].dec_len);
		if (r == -ENOMEM) {
			path_segs_free(v, n);
			return r;
		}
		if (!*end)
			break;
		p = end + 1;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static bool route_matches(const struct route *rt, const struct path_seg *ps, size_t n)
{
	size_t i;

	for (i = 0; i < rt->n_segs; i++) {
		const struct seg *s = &rt->segs[i];

		if (s->kind == SEG_GREEDY)
			return i < n;
		if (i >= n)
			return false;
		if (s->kind == SEG_PARAM) {
			if (ps[i].raw_len == 0)
				return false;
		} else if (!ps[i].dec || ps[i].dec_len != strlen(s->text) ||
			   memcmp(ps[i].dec, s->text, ps[i].dec_len) != 0) {
			return false;
		}
	}
	return i == n;
}

/* Whether a is preferred over b (both match): the first segment where
 * they differ decides, literal before parameter before greedy. */
static bool route_better(const struct route *a, const struct route *b)
{
	for (size_t i = 0; i < a->n_segs && i < b->n_segs; i++)
		if (a->segs[i].kind != b->segs[i].kind)
			return a->segs[i].kind < b->segs[i].kind;
	return false;
}

/* Fills q->params from the matched route. Returns 0, -EINVAL (400), -ENOMEM. */
static int req_bind_params(struct api_req *q, struct path_seg *ps, size_t n)
{
	struct route *rt = q->route;

	q->params = calloc(rt->n_segs, sizeof(char *));
	if (!q->params)
		return -ENOMEM;
	for (size_t i = 0; i < rt->n_segs; i++) {
		if (rt->segs[i].kind == SEG_PARAM) {
			if (!ps[i].dec || !decoded_ok(ps[i].dec, ps[i].dec_len) ||
			    memchr(ps[i].dec, '/', ps[i].dec_len))
				return -EINVAL;
			q->params[i] = TAKE_PTR(ps[i].dec);
		} else if (rt->segs[i].kind == SEG_GREEDY) {
			size_t len = 0, o = 0;
			char *joined;

			for (size_t j = i; j < n; j++) {
				if (!ps[j].dec || !decoded_ok(ps[j].dec, ps[j].dec_len) ||
				    memchr(ps[j].dec, '/', ps[j].dec_len) || ps[j].dec_len == 0 ||
				    strcmp(ps[j].dec, ".") == 0 || strcmp(ps[j].dec, "..") == 0)
					return -EINVAL;
				len += ps[j].dec_len + 1;
			}
			joined = malloc(len);
			if (!joined)
				return -ENOMEM;
			for (size_t j = i; j < n; j++) {
				if (o)
					joined[o++] = '/';
				memcpy(joined + o, ps[j].dec, ps[j].dec_len);
				o += ps[j].dec_len;
			}
			joined[o] = '\0';
			q->params[i] = joined;
		}
	}
	return 0;
}

static const char bad_path_msg[] =
	"a path segment is not valid (encoded '/', NUL, not UTF-8, bad percent-encoding; "
	"'.', '..' or empty in a file path)";

static void req_unbind_params(struct api_req *q)
{
	if (q->params) {
		for (size_t i = 0; i < q->route->n_segs; i++)
			free(q->params[i]);
		free(q->params);
	}
	q->params = NULL;
	q->route = NULL;
}

/* Appends m to a ", "-separated list unless it is there already. */
static void allow_add(char *allow, size_t size, const char *m)
{
	size_t l = strlen(allow), ml = strlen(m);

	for (const char *p = allow; *p;) {
		const char *end = strchrnul(p, ',');

		if ((size_t)(end - p) == ml && memcmp(p, m, ml) == 0)
			return;
		p = *end ? end + 2 : end;
	}
	snprintf(allow + l, size - l, "%s%s", l ? ", " : "", m);
}

/* Finds the route; replies 404/405/400 itself. Returns 0 when routed,
 * 1 when it replied, -ENOMEM. */
static int req_route(struct api_req *q)
{
	struct api_http *h = q->h;
	struct route *best = NULL, *other = NULL;
	struct path_seg *ps;
	char allow[64] = "";
	size_t n;
	int r;

	if (q->path[0] != '/') {
		api_reply_error(q, 400, "bad_path", "the path must start with /");
		return 1;
	}
	r = path_split(q->path, &ps, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < h->n_routes; i++) {
		struct route *rt = &h->routes[i];

		if (!route_matches(rt, ps, n))
			continue;
		if (strcmp(rt->r->method, q->method) != 0) {
			allow_add(allow, sizeof(allow), rt->r->method);
			if (!other || route_better(rt, other))
				other = rt;
			continue;
		}
		if (!best || route_better(rt, best))
			best = rt;
	}
	if (!best && other) {
		/* A hostile path is refused as such whatever the method. */
		q->route = other;
		r = req_bind_params(q, ps, n);
		req_unbind_params(q);
		if (r == -EINVAL) {
			path_segs_free(ps, n);
			api_reply_error(q, 400, "bad_path", "%s", bad_path_msg);
			return 1;
		}
		if (r < 0) {
			path_segs_free(ps, n);
			return r;
		}
	}
	if (!best) {
		path_segs_free(ps, n);
		if (allow[0]) {
			r = api_req_add_header(q, "Allow", allow);
			if (r < 0)
				return r;
			api_reply_error(q, 405, "method_not_allowed",
					"%s is not allowed here (allowed: %s)", q->method, allow);
		} else {
			api_reply_error(q, 404, "not_found", "no such path");
		}
		return 1;
	}
	q->route = best;
	r = req_bind_params(q, ps, n);
	path_segs_free(ps, n);
	if (r == -EINVAL) {
		api_reply_error(q, 400, "bad_path", "%s", bad_path_msg);
		return 1;
	}
	return r;
}

/* --- requests: arrival --- */

static enum MHD_Result req_on_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
					const char *value)
{
	struct api_req *q = cls;
	struct query_arg a = { 0 }, *v;
	size_t klen, vlen;

	if (percent_decode(key, strlen(key), true, &a.key, &klen) < 0 ||
	    percent_decode(value ? value : "", value ? strlen(value) : 0, true, &a.value, &vlen) <
		    0 ||
	    !decoded_ok(a.key, klen) || !decoded_ok(a.value, vlen))
		goto bad;
	v = realloc(q->query, (q->n_query + 1) * sizeof(*v));
	if (!v)
		goto bad;
	q->query = v;
	q->query[q->n_query++] = a;
	return MHD_YES;
bad:
	free(a.key);
	free(a.value);
	q->n_query = SIZE_MAX; /* marks the failure for req_begin */
	return MHD_NO;
}

static int reply_unauthorized(struct api_req *q, const char *msg)
{
	int r = api_req_add_header(q, "WWW-Authenticate", "Bearer");

	if (r < 0)
		return r;
	api_reply_error(q, 401, "unauthorized", "%s", msg);
	return 1;
}

/* Checks the bearer token against the route's role. Returns 0 when allowed,
 * 1 when it replied 401/403, -ENOMEM. The secret is never logged. */
static int req_authorize(struct api_req *q)
{
	enum api_role need = q->route->r->role, role;
	const char *hdr, *secret;
	char *name = NULL;
	int r;

	if (need == API_ROLE_NONE)
		return 0;
	hdr = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "Authorization");
	if (!hdr)
		return reply_unauthorized(q, "this needs a bearer token");
	if (strncasecmp(hdr, "Bearer ", 7) != 0)
		return reply_unauthorized(q, "the Authorization header is not a bearer token");
	secret = hdr + 7;
	while (*secret == ' ')
		secret++;
	if (!*secret || strchr(secret, ' ') || strlen(secret) > 512 || !q->h->auth)
		return reply_unauthorized(q, "unknown or revoked token");
	r = q->h->auth(secret, &role, &name, q->h->auth_userdata);
	if (r == -EACCES)
		return reply_unauthorized(q, "unknown or revoked token");
	if (r < 0) {
		gw_log_errno(LOG_ERR, r, "http", "cannot check a token: %m");
		api_reply_error(q, 500, "internal", "cannot check the token");
		return 1;
	}
	q->token_name = name;
	q->role = role;
	if (role < need) {
		api_reply_error(q, 403, "forbidden", "this needs the %s role (token \"%s\" is %s)",
				api_role_to_string(need), name ? name : "",
				api_role_to_string(role));
		return 1;
	}
	return 0;
}

static int req_open_body_file(struct api_req *q)
{
	int fd;

	fd = open(q->h->tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		/* Filesystems without O_TMPFILE: a named file, unlinked at once. */
		char tmpl[4096];
		int n = snprintf(tmpl, sizeof(tmpl), "%s/body-XXXXXX", q->h->tmp_dir);

		if (n < 0 || (size_t)n >= sizeof(tmpl))
			return -ENAMETOOLONG;
		fd = mkostemp(tmpl, O_CLOEXEC);
		if (fd >= 0)
			unlink(tmpl);
	}
	if (fd < 0)
		return -errno;
	q->body_fd = fd;
	return 0;
}

/* Everything decided on the headers alone. Replies itself when the request
 * cannot go on. Returns 0 or -ENOMEM. */
static int req_begin(struct api_req *q)
{
	const char *cl;
	int r;

	if (strlen(q->path) > API_HTTP_MAX_PATH) {
		api_reply_error(q, 414, "uri_too_long", "the path is longer than %d bytes",
				API_HTTP_MAX_PATH);
		return 0;
	}
	MHD_get_connection_values(q->conn, MHD_GET_ARGUMENT_KIND, req_on_query_arg, q);
	if (q->n_query == SIZE_MAX) {
		q->n_query = 0;
		api_reply_error(q, 400, "bad_query",
				"a query argument is not valid (bad percent-encoding, NUL or not "
				"UTF-8)");
		return 0;
	}
	r = req_route(q);
	if (r != 0)
		return r < 0 ? r : 0;
	r = req_authorize(q);
	if (r != 0)
		return r < 0 ? r : 0;

	q->body_limit = q->route->r->flags & API_ROUTE_BODY_FILE ? q->h->max_body
								    : q->h->max_json_body;
	cl = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "Content-Length");
	if (cl) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(cl, &end, 10);
		if (errno == 0 && *end == '\0' && v > q->body_limit) {
			api_reply_error(q, 413, "too_large",
					"the body is %llu bytes; at most %llu are accepted here", v,
					(unsigned long long)q->body_limit);
			return 0;
		}
	}
	if (q->route->r->flags & API_ROUTE_BODY_FILE) {
		r = req_open_body_file(q);
		if (r < 0) {
			gw_log_errno(LOG_ERR, r, "http", "cannot create a file in %s: %m",
				     q->h->tmp_dir);
			api_reply_error(q, 500, "internal", "cannot store the body");
			return 0;
		}
	}
	return 0;
}

/* One piece of the body. Returns 0, or -EFBIG when the connection must be
 * cut (a client that keeps sending after its error). */
static int req_body_data(struct api_req *q, const char *data, size_t n)
{
	if (q->phase == REQ_REPLIED) {
		/* An error was found earlier: drop the rest, within a bound. */
		q->discarded += n;
		return q->discarded > API_HTTP_DISCARD_MAX ? -EFBIG : 0;
	}
	if (q->body_size + n > q->body_limit) {
		api_reply_error(q, 413, "too_large", "the body exceeds %llu bytes",
				(unsigned long long)q->body_limit);
		return 0;
	}
	if (q->body_fd >= 0) {
		while (n > 0) {
			ssize_t w = write(q->body_fd, data, n);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				int e = errno;

				gw_log_errno(LOG_ERR, e, "http", "cannot write a body to %s: %m",
					     q->h->tmp_dir);
				if (e == ENOSPC || e == EDQUOT)
					api_reply_error(q, 507, "no_space",
							"no space left for the body");
				else
					api_reply_error(q, 500, "internal",
							"cannot store the body");
				return 0;
			}
			data += w;
			n -= (size_t)w;
			q->body_size += (uint64_t)w;
		}
		return 0;
	}
	if (q->body_len + n > q->body_cap) {
		size_t cap = MAX(q->body_cap * 2, MAX(q->body_len + n, (size_t)4096));
		char *p;

		cap = MIN(cap, (size_t)q->body_limit);
		p = realloc(q->body, cap);
		if (!p) {
			api_reply_error(q, 500, "internal", "out of memory");
			return 0;
		}
		q->body = p;
		q->body_cap = cap;
	}
	memcpy(q->body + q->body_len, data, n);
	q->body_len += n;
	q->body_size += n;
	return 0;
}

static void req_run_handler(struct api_req *q)
{
	if (q->body_fd >= 0) {
		if (lseek(q->body_fd, 0, SEEK_SET) < 0) {
			api_reply_error(q, 500, "internal", "cannot read the body back");
			return;
		}
	} else if (q->body_len > 0) {
		json_error_t err;

		q->json = json_loadb(q->body, q->body_len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
				     &err);
		if (!q->json) {
			api_reply_error(q, 400, "bad_json",
					"the body is not JSON: line %d, column %d: %s", err.line,
					err.column, err.text);
			return;
		}
		free(q->body);
		q->body = NULL;
		q->body_cap = 0;
	}
	q->phase = REQ_HANDLER;
	q->route->r->handler(q, q->route->userdata);
}

/* The handler has not replied: park the connection until it does. */
static void req_wait(struct api_req *q)
{
	const union MHD_ConnectionInfo *ci;
	int r;

	MHD_suspend_connection(q->conn);
	q->suspended = true;
	ci = MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		req_watch_hangup(q, ci->connect_fd);
	if (q->h->request_timeout_ms == 0)
		return;
	r = sd_event_add_time_relative(q->h->event, &q->deadline, CLOCK_MONOTONIC,
				       (uint64_t)q->h->request_timeout_ms * 1000, 1000,
				       req_on_deadline, q);
	if (r < 0) {
		/* A request that cannot be bounded is not started blind. */
		req_run_abort(q);
		api_reply_error(q, 500, "internal", "cannot arm the request deadline");
		return;
	}
	sd_event_source_set_description(q->deadline, "api-http-deadline");
}

static enum MHD_Result req_queue(struct api_req *q)
{
	struct MHD_Response *resp = TAKE_PTR(q->response);
	enum MHD_Result ok;

	ok = MHD_queue_response(q->conn, q->status, resp);
	MHD_destroy_response(resp);
	if (ok != MHD_YES)
		return MHD_NO;
	q->phase = q->streaming ? REQ_STREAMING : REQ_QUEUED;
	return MHD_YES;
}

static struct api_req *req_new(struct api_http *h, struct MHD_Connection *conn, const char *url,
			       const char *method)
{
	struct api_req *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->h = h;
	q->conn = conn;
	q->body_fd = -1;
	q->start_usec = now_usec();
	q->phase = REQ_RECEIVING;
	q->path = strdup(url ? url : "");
	q->method = strdup(method ? method : "");
	if (!q->path || !q->method) {
		free(q->path);
		free(q->method);
		free(q);
		return NULL;
	}
	q->next = h->requests;
	if (q->next)
		q->next->prev = q;
	h->requests = q;
	return q;
}

static enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
				       const char *method, const char *version,
				       const char *upload_data, size_t *upload_data_size,
				       void **con_cls)
{
	struct api_http *h = cls;
	struct api_req *q = *con_cls;

	if (!q) {
		q = req_new(h, conn, url, method);
		if (!q)
			return MHD_NO;
		*con_cls = q;
		if (req_begin(q) < 0)
			return MHD_NO;
		if (q->phase == REQ_REPLIED)
			return req_queue(q);
		return MHD_YES;
	}

	switch (q->phase) {
	case REQ_RECEIVING:
		if (*upload_data_size > 0) {
			size_t n = *upload_data_size;

			*upload_data_size = 0;
			return req_body_data(q, upload_data, n) < 0 ? MHD_NO : MHD_YES;
		}
		req_run_handler(q);
		if (q->phase == REQ_HANDLER)
			req_wait(q);
		if (q->phase == REQ_REPLIED)
			return req_queue(q);
		return MHD_YES;
	case REQ_REPLIED:
		if (*upload_data_size > 0) {
			size_t n = *upload_data_size;

			*upload_data_size = 0;
			return req_body_data(q, upload_data, n) < 0 ? MHD_NO : MHD_YES;
		}
		return req_queue(q);
	case REQ_ABORTED:
		return MHD_NO;
	case REQ_HANDLER:
		/* Not expected (the connection is suspended): wait again. */
		if (!q->suspended) {
			MHD_suspend_connection(conn);
			q->suspended = true;
		}
		return MHD_YES;
	case REQ_QUEUED:
	case REQ_STREAMING:
		*upload_data_size = 0;
		return MHD_YES;
	}
	return MHD_NO;
}

static void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			      enum MHD_RequestTerminationCode toe)
{
	struct api_req *q = *con_cls;
	unsigned status;
	uint64_t dur;

	if (!q)
		return;
	*con_cls = NULL;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && q->phase != REQ_ABORTED &&
	    (q->phase == REQ_HANDLER || (q->streaming && !q->s_ended))) {
		q->phase = REQ_ABORTED;
		req_run_abort(q);
	}
	status = q->status ? q->status : API_HTTP_STATUS_CLIENT_GONE;
	if (q->phase == REQ_ABORTED && q->status == 0)
		status = API_HTTP_STATUS_CLIENT_GONE;
	dur = now_usec() - q->start_usec;
	stat_add(q->route ? &q->route->stats : &q->h->unmatched, stat_method(q->method), status,
		 dur);
	if (gw_log_enabled(LOG_DEBUG, "http"))
		gw_debug("http", "%s %s %u %.1f ms%s%s", q->method, q->path, status,
			 (double)dur / 1000.0, q->token_name ? " token=" : "",
			 q->token_name ? q->token_name : "");
	req_free(q);
}

/* libmicrohttpd's own diagnostics: mostly about clients, so debug level. */
_printf_(2, 0) static void http_on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	if (!gw_log_enabled(LOG_DEBUG, "http"))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	gw_debug("http", "libmicrohttpd: %s", msg);
}

/* Paths and query arguments reach us raw: routing decodes segment by
 * segment, so that an encoded '/' cannot pass for a separator. */
static size_t http_on_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	return strlen(s);
}

/* The TCP listening socket systemd passed, or -ENOENT. */
static int http_listen_fd_from_systemd(void)
{
	int n = sd_listen_fds(1);

	if (n < 0)
		return n;
	for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
		if (sd_is_socket(fd, AF_INET, SOCK_STREAM, 1) > 0 ||
		    sd_is_socket(fd, AF_INET6, SOCK_STREAM, 1) > 0)
			return fd;
	}
	return -ENOENT;
}

static int http_bind(struct api_http *h)
{
	int fd, one = 1;

	fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (h->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&h->addr, h->addr_len) < 0 || listen(fd, SOMAXCONN) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

int api_http_start(struct api_http *h)
{
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *di;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -ENOENT, r;

	if (h->mhd)
		return -EALREADY;
	if (h->use_listen_fds)
		fd = http_listen_fd_from_systemd();
	if (fd < 0) {
		fd = http_bind(h);
		if (fd < 0)
			return fd;
	} else {
		int fl = fcntl(fd, F_GETFL);

		if (fl >= 0)
			fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (ss.ss_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		h->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else {
		h->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	if (h->cert_pem)
		flags |= MHD_USE_TLS;

	{
		struct MHD_OptionItem opts[12];
		size_t n = 0;

		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER,
						     (intptr_t)http_on_mhd_log, h };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_SOCKET, fd, NULL };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT,
						     API_HTTP_MEMORY_LIMIT, NULL };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
						     API_HTTP_IDLE_TIMEOUT_S, NULL };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT,
						     h->max_connections ? h->max_connections : 256,
						     NULL };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED,
						     (intptr_t)http_on_completed, h };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_UNESCAPE_CALLBACK,
						     (intptr_t)http_on_unescape, h };
		if (h->cert_pem) {
			opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0,
							     h->cert_pem };
			opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0,
							     h->key_pem };
		}
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
		assert(n <= ELEMENTSOF(opts));
		h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, http_on_request, h,
					  MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	}
	if (!h->mhd) {
		close(fd);
		return h->cert_pem ? -EBADMSG : -EIO;
	}
	di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di) {
		r = -EIO;
		goto fail;
	}
	r = sd_event_add_io(h->event, &h->epoll_source, di->epoll_fd, EPOLLIN, http_on_epoll, h);
	if (r < 0)
		goto fail;
	sd_event_source_set_description(h->epoll_source, "api-http-epoll");
	r = sd_event_add_time(h->event, &h->timer_source, CLOCK_MONOTONIC, 0, 1000, http_on_timer,
			      h);
	if (r < 0)
		goto fail;
	sd_event_source_set_description(h->timer_source, "api-http-timer");
	r = sd_event_add_defer(h->event, &h->kick_source, http_on_kick, h);
	if (r < 0)
		goto fail;
	sd_event_source_set_description(h->kick_source, "api-http-kick");
	sd_event_source_set_enabled(h->kick_source, SD_EVENT_OFF);
	http_rearm(h);
	return 0;
fail:
	h->epoll_source = sd_event_source_disable_unref(h->epoll_source);
	h->timer_source = sd_event_source_disable_unref(h->timer_source);
	h->kick_source = sd_event_source_disable_unref(h->kick_source);
	MHD_stop_daemon(h->mhd);
	h->mhd = NULL;
	return r;
}

int api_http_port(struct api_http *h)
{
	return h->port;
}

unsigned api_http_connections(struct api_http *h)
{
	const union MHD_DaemonInfo *di;

	if (!h->mhd)
		return 0;
	di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return di ? di->num_connections : 0;
}

struct api_http *api_http_free(struct api_http *h)
{
	if (!h)
		return NULL;
	/* Handlers still waiting are told first; libmicrohttpd refuses to stop
	 * with suspended connections, so each is resumed to be closed. */
	for (struct api_req *q = h->requests; q; q = q->next) {
		if (q->phase == REQ_HANDLER || (q->streaming && !q->s_ended)) {
			q->phase = REQ_ABORTED;
			q->deadline = sd_event_source_disable_unref(q->deadline);
			req_run_abort(q);
		}
		req_resume(q);
	}
	h->epoll_source = sd_event_source_disable_unref(h->epoll_source);
	h->timer_source = sd_event_source_disable_unref(h->timer_source);
	h->kick_source = sd_event_source_disable_unref(h->kick_source);
	if (h->mhd) {
		MHD_run(h->mhd);
		MHD_stop_daemon(h->mhd);
	}
	while (h->requests)
		req_free(h->requests);
	for (size_t i = 0; i < h->n_routes; i++) {
		segs_free(h->routes[i].segs, h->routes[i].n_segs);
		free(h->routes[i].stats.v);
	}
	free(h->routes);
	free(h->unmatched.v);
	free(h->listen);
	free(h->tmp_dir);
	free(h->cert_pem);
	if (h->key_pem) {
		explicit_bzero(h->key_pem, strlen(h->key_pem));
		free(h->key_pem);
	}
	sd_event_unref(h->event);
	free(h);
	return NULL;
}

/* --- request accessors --- */

const char *api_req_method(struct api_req *q)
{
	return q->method;
}

const char *api_req_path(struct api_req *q)
{
	return q->path;
}

const char *api_req_pattern(struct api_req *q)
{
	return q->route ? q->route->r->pattern : NULL;
}

const char *api_req_param(struct api_req *q, const char *name)
{
	if (!q->route || !q->params)
		return NULL;
	for (size_t i = 0; i < q->route->n_segs; i++)
		if (q->route->segs[i].kind != SEG_LITERAL &&
		    strcmp(q->route->segs[i].text, name) == 0)
			return q->params[i];
	return NULL;
}

const char *api_req_query(struct api_req *q, const char *name)
{
	for (size_t i = 0; i < q->n_query; i++)
		if (strcmp(q->query[i].key, name) == 0)
			return q->query[i].value;
	return NULL;
}

int api_req_query_bool(struct api_req *q, const char *name, bool *ret)
{
	const char *v = api_req_query(q, name);

	if (!v)
		return -ENOENT;
	if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
		*ret = true;
	else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

int api_req_query_uint(struct api_req *q, const char *name, uint64_t *ret)
{
	const char *v = api_req_query(q, name);
	unsigned long long n;
	char *end;

	if (!v)
		return -ENOENT;
	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = n;
	return 0;
}

const char *api_req_header(struct api_req *q, const char *name)
{
	return MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, name);
}

enum api_role api_req_role(struct api_req *q)
{
	return q->role;
}

const char *api_req_token_name(struct api_req *q)
{
	return q->token_name;
}

json_t *api_req_json(struct api_req *q)
{
	return q->json;
}

int api_req_body_fd(struct api_req *q, uint64_t *ret_size)
{
	if (q->body_fd < 0)
		return -ENOENT;
	if (ret_size)
		*ret_size = q->body_size;
	return q->body_fd;
}

sd_event *api_req_event(struct api_req *q)
{
	return q->h->event;
}

void api_req_on_abort(struct api_req *q, api_abort_fn fn, void *userdata)
{
	q->abort_fn = fn;
	q->abort_userdata = userdata;
}
