/* http-client: a blocking HTTP/1.1 client for the API tests, run in a thread while the test runs the loop */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/api/http-client.h"

long long http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool http_loop_until(sd_event *e, volatile bool *flag, unsigned timeout_ms)
{
	long long end = http_now_ms() + timeout_ms;

	while (!*flag) {
		long long left = end - http_now_ms();

		if (left <= 0)
			return false;
		if (sd_event_run(e, (uint64_t)left * 1000) < 0)
			return false;
	}
	return true;
}

int http_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int http_send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		ssize_t w;

		if (poll(&pfd, 1, HTTP_CLIENT_TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

const char *http_header(const struct http_reply *r, const char *name)
{
	static __thread char val[1024];
	size_t n = strlen(name);

	for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2, *end = strstr(line, "\r\n");

		if (!end)
			break;
		if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
			const char *v = line + n + 1;

			while (*v == ' ')
				v++;
			snprintf(val, sizeof(val), "%.*s", (int)(end - v), v);
			return val;
		}
	}
	return NULL;
}

static void dechunk(struct http_reply *r)
{
	size_t i = 0, o = 0;

	while (i < r->body_len) {
		char *end;
		unsigned long n = strtoul(r->body + i, &end, 16);
		size_t hdr;

		if (end == r->body + i)
			break;
		hdr = (size_t)(end - (r->body + i));
		if (i + hdr + 2 > r->body_len)
			break;
		i += hdr + 2;
		if (n == 0) {
			r->complete = true;
			break;
		}
		if (i + n + 2 > r->body_len)
			break;
		memmove(r->body + o, r->body + i, n);
		o += n;
		i += n + 2;
	}
	r->body_len = o;
	r->body[o] = '\0';
}

void http_read_reply(int fd, struct http_reply *r)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1), *sep;
	const char *te;

	if (!buf)
		abort();
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, HTTP_CLIENT_TIMEOUT_MS) <= 0) {
			r->error = -ETIMEDOUT;
			break;
		}
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			if (!buf)
				abort();
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r->error = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	sep = strstr(buf, "\r\n\r\n");
	if (!sep || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
		free(buf);
		r->status = -1;
		return;
	}
	snprintf(r->head, sizeof(r->head), "%.*s", (int)(sep - buf + 2), buf);
	r->body_len = len - (size_t)(sep + 4 - buf);
	r->body = malloc(r->body_len + 1);
	if (!r->body)
		abort();
	memcpy(r->body, sep + 4, r->body_len);
	r->body[r->body_len] = '\0';
	free(buf);
	te = http_header(r, "Transfer-Encoding");
	r->chunked = te && strcasecmp(te, "chunked") == 0;
	if (r->chunked)
		dechunk(r);
}

void http_reply_clear(struct http_reply *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

json_t *http_reply_json(const struct http_reply *r)
{
	return r->body ? json_loads(r->body, 0, NULL) : NULL;
}

const char *http_error_code(const struct http_reply *r)
{
	static __thread char code[64];
	json_t *j = http_reply_json(r);
	const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));

	snprintf(code, sizeof(code), "%s", c ? c : "(none)");
	json_decref(j);
	return code;
}

char *http_json_field(const struct http_reply *r, const char *key)
{
	json_t *j = http_reply_json(r), *v = json_object_get(j, key);
	char *s = NULL;

	if (json_is_string(v))
		s = strdup(json_string_value(v));
	else if (v)
		s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(j);
	return s;
}

void http_job_exchange(struct http_job *j)
{
	int fd = http_connect(j->port);

	if (fd < 0) {
		j->rep.error = -errno;
		j->rep.status = -1;
		return;
	}
	if (http_send_all(fd, j->req, j->req_len) == 0)
		http_read_reply(fd, &j->rep);
	close(fd);
}

void http_job_hangup(struct http_job *j)
{
	struct pollfd pfd = { .fd = j->go_fd, .events = POLLIN };
	int fd = http_connect(j->port);

	if (fd < 0)
		return;
	http_send_all(fd, j->req, j->req_len);
	poll(&pfd, 1, HTTP_CLIENT_TIMEOUT_MS);
	close(fd);
}

void *http_job_thread(void *p)
{
	struct http_job *j = p;

	j->fn(j);
	eventfd_write(j->efd, 1);
	return NULL;
}

static int job_on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	eventfd_t v;

	eventfd_read(fd, &v);
	*(bool *)userdata = true;
	return 0;
}

bool http_job_run(sd_event *e, struct http_job *j)
{
	sd_event_source *src = NULL;
	bool done = false, finished;
	pthread_t t;

	j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->efd < 0 || sd_event_add_io(e, &src, j->efd, EPOLLIN, job_on_done, &done) < 0 ||
	    pthread_create(&t, NULL, http_job_thread, j) != 0)
		abort();
	/* The client's own waits are bounded, so the thread always ends. */
	finished = http_loop_until(e, &done, 3 * HTTP_CLIENT_TIMEOUT_MS);
	pthread_join(t, NULL);
	sd_event_source_disable_unref(src);
	close(j->efd);
	return finished;
}

void http_request(sd_event *e, int port, struct http_reply *r, const char *method,
		  const char *path, const char *headers, const char *body)
{
	struct http_job j = { .fn = http_job_exchange, .port = port };
	int n;

	if (body)
		n = asprintf(&j.req, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
				     "%sContent-Length: %zu\r\n\r\n%s",
			     method, path, headers ? headers : "", strlen(body), body);
	else
		n = asprintf(&j.req, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n",
			     method, path, headers ? headers : "");
	if (n < 0)
		abort();
	j.req_len = (size_t)n;
	http_job_run(e, &j);
	free(j.req);
	*r = j.rep;
}
