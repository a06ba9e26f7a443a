/* http-client: a blocking HTTP/1.1 client for the API tests, run in a thread while the test runs the loop */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

/* Every wait of the client is bounded by this. */
#define HTTP_CLIENT_TIMEOUT_MS 10000

struct http_reply {
	int status;      /* -1: no HTTP answer */
	char head[8192]; /* status line and headers */
	char *body;      /* NUL-terminated, de-chunked */
	size_t body_len;
	bool chunked;
	bool complete;   /* a chunked body ended with its last chunk */
	int error;       /* of the socket, or -ETIMEDOUT */
};

long long http_now_ms(void);
/* Runs the loop until *flag is set, at most timeout_ms; returns whether it was. */
bool http_loop_until(sd_event *e, volatile bool *flag, unsigned timeout_ms);

int http_connect(int port); /* loopback TCP; -1 on failure */
int http_send_all(int fd, const void *p, size_t n);
/* Reads until the server closes (requests say Connection: close). */
void http_read_reply(int fd, struct http_reply *r);
const char *http_header(const struct http_reply *r, const char *name); /* thread-local copy */
void http_reply_clear(struct http_reply *r);
json_t *http_reply_json(const struct http_reply *r);       /* new reference or NULL */
const char *http_error_code(const struct http_reply *r);   /* "(none)" when absent */
char *http_json_field(const struct http_reply *r, const char *key); /* strings as is, else JSON */

/* A client run in its own thread: fn does the talking, the loop runs here. */
struct http_job {
	void (*fn)(struct http_job *j);
	int port;
	char *req;
	size_t req_len;
	struct http_reply rep;
	int go_fd; /* http_job_hangup: leaves once this is readable */
	void *data;
	int efd;   /* set by http_job_run */
};
void http_job_exchange(struct http_job *j); /* sends req, reads the reply */
void http_job_hangup(struct http_job *j);   /* sends req, waits for go_fd, closes */
void *http_job_thread(void *j);             /* runs fn, then signals efd */
/* Runs j in a thread and the loop until it ends. */
bool http_job_run(sd_event *e, struct http_job *j);

/* One request on a fresh connection (Connection: close). headers: extra
 * header lines, each ending in CRLF; body: sent with its Content-Length. */
void http_request(sd_event *e, int port, struct http_reply *r, const char *method,
		  const char *path, const char *headers, const char *body);
