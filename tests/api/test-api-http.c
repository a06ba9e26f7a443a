/* test-api-http: the HTTP server over real sockets: routing, auth, bodies, suspend, aborts, streams, TLS */
#include <arpa/inet.h>
#include <errno.h>
#include <nettle/sha2.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "api/api-http.h"
#include "lib/macro.h"
#include "tests/api/http-client.h"
#include "tests/tap.h"

#define UPLOAD_SIZE (20u * 1024 * 1024)

static sd_event *ev;

/* A pseudo-random body of UPLOAD_SIZE bytes, streamed from a small buffer. */
static void job_upload(struct http_job *j)
{
	struct sha256_ctx ctx;
	uint8_t buf[65536];
	uint32_t x = 12345;
	int fd = http_connect(j->port);

	if (fd < 0)
		return;
	sha256_init(&ctx);
	if (http_send_all(fd, j->req, j->req_len) < 0)
		goto out;
	for (size_t sent = 0; sent < UPLOAD_SIZE; sent += sizeof(buf)) {
		for (size_t i = 0; i < sizeof(buf); i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (uint8_t)(x >> 16);
		}
		sha256_update(&ctx, sizeof(buf), buf);
		if (http_send_all(fd, buf, sizeof(buf)) < 0)
			goto out;
	}
	sha256_digest(&ctx, SHA256_DIGEST_SIZE, j->data);
	http_read_reply(fd, &j->rep);
out:
	close(fd);
}

static int g_port;

static void http(struct http_reply *r, const char *method, const char *path, const char *headers,
		 const char *body)
{
	http_request(ev, g_port, r, method, path, headers, body);
}

/* --- the routes under test --- */

static struct {
	bool hang_aborted;
	bool slow_aborted;
	bool stream_aborted;
	int hang_go_fd;
	unsigned drains;
	struct api_req *waiting;
} st;

static void on_hello(struct api_req *q, void *ud)
{
	api_reply_json(q, 200, json_pack("{s:s}", "hello", "world"));
}

static void on_item(struct api_req *q, void *ud)
{
	api_reply_json(q, 200, json_pack("{s:s,s:s}", "id", api_req_param(q, "id"), "pattern",
					 api_req_pattern(q)));
}

static void on_special(struct api_req *q, void *ud)
{
	api_reply_json(q, 200, json_pack("{s:b}", "special", 1));
}

static void on_file(struct api_req *q, void *ud)
{
	api_reply_json(q, 200, json_pack("{s:s}", "path", api_req_param(q, "path")));
}

static void on_post_item(struct api_req *q, void *ud)
{
	api_reply_json(q, 201, json_pack("{s:O?}", "body", api_req_json(q)));
}

static void on_query(struct api_req *q, void *ud)
{
	bool flag = false;
	uint64_t n = 0;
	int r;

	r = api_req_query_uint(q, "n", &n);
	if (r == -EINVAL) {
		api_reply_error(q, 400, "bad_query", "n is not a number");
		return;
	}
	r = api_req_query_bool(q, "flag", &flag);
	if (r == -EINVAL) {
		api_reply_error(q, 400, "bad_query", "flag is not a boolean");
		return;
	}
	api_reply_json(q, 200, json_pack("{s:s?,s:b,s:I,s:s?}", "x", api_req_query(q, "x"), "flag",
					 flag, "n", (json_int_t)n, "empty", api_req_query(q, "e")));
}

static void on_whoami(struct api_req *q, void *ud)
{
	api_reply_json(q, 200, json_pack("{s:s,s:s}", "token", api_req_token_name(q), "role",
					 api_role_to_string(api_req_role(q))));
}

static void on_json(struct api_req *q, void *ud)
{
	json_t *j = api_req_json(q);

	api_reply_json(q, 200, json_pack("{s:O?}", "got", j));
}

static void on_upload(struct api_req *q, void *ud)
{
	uint8_t buf[65536], d[SHA256_DIGEST_SIZE];
	char hex[2 * SHA256_DIGEST_SIZE + 1];
	struct sha256_ctx ctx;
	uint64_t size = 0, total = 0;
	int fd = api_req_body_fd(q, &size);
	ssize_t n;

	sha256_init(&ctx);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		sha256_update(&ctx, (size_t)n, buf);
		total += (uint64_t)n;
	}
	sha256_digest(&ctx, sizeof(d), d);
	for (size_t i = 0; i < sizeof(d); i++)
		sprintf(hex + 2 * i, "%02x", d[i]);
	api_reply_json(q, 200, json_pack("{s:s,s:I,s:I}", "sha256", hex, "size", (json_int_t)size,
					 "read", (json_int_t)total));
}

static int on_async_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	api_reply_json(userdata, 200, json_pack("{s:b}", "late", 1));
	sd_event_source_disable_unref(s);
	return 0;
}

static void on_async(struct api_req *q, void *ud)
{
	sd_event_add_time_relative(api_req_event(q), NULL, CLOCK_MONOTONIC, 20 * 1000, 0,
				   on_async_timer, q);
}

static void on_hang_abort(struct api_req *q, void *ud)
{
	st.hang_aborted = true;
	st.waiting = NULL;
}

static void on_hang(struct api_req *q, void *ud)
{
	st.waiting = q;
	api_req_on_abort(q, on_hang_abort, NULL);
	/* The client leaves once the handler waits. */
	eventfd_write(st.hang_go_fd, 1);
}

static void on_slow_abort(struct api_req *q, void *ud)
{
	st.slow_aborted = true;
}

static void on_slow(struct api_req *q, void *ud)
{
	api_req_on_abort(q, on_slow_abort, NULL);
}

#define STREAM_TOTAL (1024 * 1024)
#define STREAM_PIECE 16384

struct streamer {
	size_t written;
};

static struct streamer streamer;

static void stream_fill(struct api_req *q, void *ud)
{
	struct streamer *s = ud;
	char piece[STREAM_PIECE];

	st.drains++;
	/* Writes until the buffer is above its low-water mark, then waits for the drain. */
	while (s->written < STREAM_TOTAL && api_req_stream_pending(q) < 128 * 1024) {
		for (size_t i = 0; i < sizeof(piece); i++)
			piece[i] = (char)('a' + (s->written + i) % 26);
		api_reply_stream_write(q, piece, sizeof(piece));
		s->written += sizeof(piece);
	}
	if (s->written >= STREAM_TOTAL)
		api_reply_stream_end(q, 0);
}

static void on_stream(struct api_req *q, void *ud)
{
	streamer.written = 0;
	st.drains = 0;
	api_reply_stream_begin(q, 200, "text/plain");
	api_req_on_drain(q, stream_fill, &streamer);
	stream_fill(q, &streamer);
	st.drains = 0;
}

static int on_cut_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	api_reply_stream_end(userdata, -EIO);
	sd_event_source_disable_unref(s);
	return 0;
}

static void on_stream_cut(struct api_req *q, void *ud)
{
	api_reply_stream_begin(q, 200, "application/octet-stream");
	api_reply_stream_write(q, "0123456789", 10);
	sd_event_add_time_relative(api_req_event(q), NULL, CLOCK_MONOTONIC, 10 * 1000, 0,
				   on_cut_timer, q);
}

static void on_stream_wait_abort(struct api_req *q, void *ud)
{
	st.stream_aborted = true;
}

static void on_stream_wait(struct api_req *q, void *ud)
{
	api_req_on_abort(q, on_stream_wait_abort, NULL);
	api_reply_stream_begin(q, 200, "text/event-stream");
	api_reply_stream_write(q, ": hi\n\n", 6);
	eventfd_write(st.hang_go_fd, 1);
}

/* Writes after the connection went idle, as event streams do. */
static unsigned ticks;

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct api_req *q = userdata;
	char line[32];

	snprintf(line, sizeof(line), "tick %u\n", ++ticks);
	api_reply_stream_write(q, line, strlen(line));
	if (ticks == 5) {
		api_reply_stream_end(q, 0);
		sd_event_source_disable_unref(s);
		return 0;
	}
	return sd_event_source_set_time_relative(s, 10 * 1000);
}

static void on_stream_ticks(struct api_req *q, void *ud)
{
	sd_event_source *s = NULL;

	ticks = 0;
	api_req_add_header(q, "Cache-Control", "no-cache");
	api_reply_stream_begin(q, 200, "text/plain");
	sd_event_add_time_relative(api_req_event(q), &s, CLOCK_MONOTONIC, 10 * 1000, 0, on_tick, q);
	sd_event_source_set_enabled(s, SD_EVENT_ON);
}

static void on_smp_error(struct api_req *q, void *ud)
{
	api_req_add_header(q, "X-Test", "yes");
	api_reply_smp_error(q, 502, "device_error", 1, 6, "NO_FREE_SLOT", "no slot: %d", 6);
}

static void on_errno(struct api_req *q, void *ud)
{
	api_reply_errno(q, -EHOSTDOWN, "device call");
}

static const struct api_route routes[] = {
	{ "GET", "/t/hello", API_ROLE_NONE, 0, on_hello },
	{ "GET", "/t/items/{id}", API_ROLE_NONE, 0, on_item },
	{ "GET", "/t/items/special", API_ROLE_NONE, 0, on_special },
	{ "POST", "/t/items/{id}", API_ROLE_NONE, 0, on_post_item },
	{ "GET", "/t/files/{path+}", API_ROLE_NONE, 0, on_file },
	{ "GET", "/t/query", API_ROLE_NONE, 0, on_query },
	{ "GET", "/t/viewer", API_ROLE_VIEWER, 0, on_whoami },
	{ "POST", "/t/admin", API_ROLE_ADMIN, 0, on_whoami },
	{ "POST", "/t/json", API_ROLE_NONE, 0, on_json },
	{ "POST", "/t/upload", API_ROLE_NONE, API_ROUTE_BODY_FILE, on_upload },
	{ "GET", "/t/async", API_ROLE_NONE, 0, on_async },
	{ "GET", "/t/hang", API_ROLE_NONE, 0, on_hang },
	{ "GET", "/t/slow", API_ROLE_NONE, 0, on_slow },
	{ "GET", "/t/stream", API_ROLE_NONE, 0, on_stream },
	{ "GET", "/t/stream-cut", API_ROLE_NONE, 0, on_stream_cut },
	{ "GET", "/t/stream-wait", API_ROLE_NONE, 0, on_stream_wait },
	{ "GET", "/t/stream-ticks", API_ROLE_NONE, 0, on_stream_ticks },
	{ "GET", "/t/smp-error", API_ROLE_NONE, 0, on_smp_error },
	{ "GET", "/t/errno", API_ROLE_NONE, 0, on_errno },
};

/* The test's tokens: the auth function is the test's input to the server. */
static int test_auth(const char *secret, enum api_role *ret_role, char **ret_name, void *ud)
{
	if (strcmp(secret, "viewer-secret") == 0) {
		*ret_role = API_ROLE_VIEWER;
		*ret_name = strdup("vera");
		return 0;
	}
	if (strcmp(secret, "admin-secret") == 0) {
		*ret_role = API_ROLE_ADMIN;
		*ret_name = strdup("ada");
		return 0;
	}
	return -EACCES;
}

/* --- the tests --- */

static void test_routing(void)
{
	struct http_reply r;
	char *s;

	http(&r, "GET", "/t/hello", NULL, NULL);
	is_int(r.status, 200, "GET /t/hello: 200");
	ok(r.body && strcmp(r.body, "{\"hello\":\"world\"}") == 0, "JSON body");
	is_str(http_header(&r, "Content-Type"), "application/json",
	       "Content-Type application/json");
	is_str(http_header(&r, "Cache-Control"), "no-store", "Cache-Control: no-store");
	http_reply_clear(&r);

	http(&r, "GET", "/t/items/abc", NULL, NULL);
	s = http_json_field(&r, "id");
	is_str(s, "abc", "{id} bound");
	free(s);
	s = http_json_field(&r, "pattern");
	is_str(s, "/t/items/{id}", "api_req_pattern");
	free(s);
	http_reply_clear(&r);

	http(&r, "GET", "/t/items/special", NULL, NULL);
	s = http_json_field(&r, "special");
	is_str(s, "true", "a literal segment wins over a parameter");
	free(s);
	http_reply_clear(&r);

	http(&r, "GET", "/t/items/%73pecial", NULL, NULL);
	s = http_json_field(&r, "special");
	is_str(s, "true", "literal segments are compared decoded");
	free(s);
	http_reply_clear(&r);

	http(&r, "GET", "/t/items/h%C3%A9llo%20w", NULL, NULL);
	s = http_json_field(&r, "id");
	is_str(s, "h\xc3\xa9llo w", "parameters are percent-decoded");
	free(s);
	http_reply_clear(&r);

	http(&r, "GET", "/t/items/a+b", NULL, NULL);
	s = http_json_field(&r, "id");
	is_str(s, "a+b", "'+' in a path stays '+'");
	free(s);
	http_reply_clear(&r);

	static const struct {
		const char *path, *why;
	} bad[] = {
		{ "/t/items/a%2Fb", "%2F in a segment" },
		{ "/t/items/a%2fb", "%2f in a segment" },
		{ "/t/items/a%00b", "%00 in a segment" },
		{ "/t/items/%FF", "a segment that is not UTF-8" },
		{ "/t/items/%C3", "a truncated UTF-8 sequence" },
		{ "/t/items/%zz", "a bad escape" },
		{ "/t/items/ab%4", "a short escape" },
		{ "/t/files/a/../b", "'..' in {path+}" },
		{ "/t/files/a/%2e%2e/b", "encoded '..' in {path+}" },
		{ "/t/files/./b", "'.' in {path+}" },
		{ "/t/files/a//b", "an empty segment in {path+}" },
		{ "/t/files/a/", "a trailing empty segment in {path+}" },
		{ "/t/files/a%2F..%2Fb", "an encoded '/' in {path+}" },
		{ "/t/files/a/%00", "NUL in {path+}" },
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		http(&r, "GET", bad[i].path, NULL, NULL);
		is_int(r.status, 400, "%s: 400", bad[i].why);
		is_str(http_error_code(&r), "bad_path", "%s: bad_path", bad[i].why);
		http_reply_clear(&r);
	}

	http(&r, "GET", "/t/files/a/b%20c/d%25e", NULL, NULL);
	s = http_json_field(&r, "path");
	is_str(s, "a/b c/d%e", "{path+} joins decoded segments with '/'");
	free(s);
	http_reply_clear(&r);

	http(&r, "GET", "/t/files/x", NULL, NULL);
	s = http_json_field(&r, "path");
	is_str(s, "x", "{path+} with one segment");
	free(s);
	http_reply_clear(&r);

	{
		char *path = malloc(3100);

		strcpy(path, "/t/items/");
		memset(path + 9, 'a', 3000);
		path[3009] = '\0';
		http(&r, "GET", path, NULL, NULL);
		ok(r.status == 414 || r.status == 400, "an overlong path: %d (414 or 400)",
		   r.status);
		http_reply_clear(&r);
		free(path);
	}

	{
		char *hdr = malloc(48 * 1024);

		strcpy(hdr, "X-Big: ");
		memset(hdr + 7, 'b', 40 * 1024);
		strcpy(hdr + 7 + 40 * 1024, "\r\n");
		http(&r, "GET", "/t/hello", hdr, NULL);
		ok(r.status == 431 || r.status == 413 || r.status == 400,
		   "headers beyond the per-connection memory are refused (%d)", r.status);
		http_reply_clear(&r);
		free(hdr);
	}

	http(&r, "GET", "/t/nothing", NULL, NULL);
	is_int(r.status, 404, "unknown path: 404");
	is_str(http_error_code(&r), "not_found", "not_found");
	http_reply_clear(&r);

	http(&r, "GET", "/t/items", NULL, NULL);
	is_int(r.status, 404, "a parameter never matches nothing: 404");
	http_reply_clear(&r);

	http(&r, "GET", "/t/items/", NULL, NULL);
	is_int(r.status, 404, "a parameter never matches an empty segment: 404");
	http_reply_clear(&r);

	http(&r, "DELETE", "/t/items/a%2Fb", NULL, NULL);
	is_int(r.status, 400, "a bad segment is 400 also under another method");
	is_str(http_error_code(&r), "bad_path", "bad_path, not method_not_allowed");
	http_reply_clear(&r);

	http(&r, "DELETE", "/t/items/x", NULL, NULL);
	is_int(r.status, 405, "known path, other method: 405");
	is_str(http_error_code(&r), "method_not_allowed", "method_not_allowed");
	is_str(http_header(&r, "Allow"), "GET, POST", "Allow lists the path's methods once each");
	http_reply_clear(&r);

	http(&r, "GET", "/t/query?x=a%20b+c&flag=true&n=42&e", NULL, NULL);
	is_int(r.status, 200, "query: 200");
	s = http_json_field(&r, "x");
	is_str(s, "a b c", "query values decoded, '+' is a space");
	free(s);
	s = http_json_field(&r, "flag");
	is_str(s, "true", "api_req_query_bool");
	free(s);
	s = http_json_field(&r, "n");
	is_str(s, "42", "api_req_query_uint");
	free(s);
	s = http_json_field(&r, "empty");
	is_str(s, "", "\"?e\" is present and empty");
	free(s);
	http_reply_clear(&r);

	http(&r, "GET", "/t/query?n=-1", NULL, NULL);
	is_int(r.status, 400, "a negative uint: the handler's 400");
	http_reply_clear(&r);
	http(&r, "GET", "/t/query?flag=yes", NULL, NULL);
	is_int(r.status, 400, "a bad bool: the handler's 400");
	http_reply_clear(&r);
	http(&r, "GET", "/t/query?x=a%00", NULL, NULL);
	is_int(r.status, 400, "NUL in a query value: 400");
	is_str(http_error_code(&r), "bad_query", "bad_query");
	http_reply_clear(&r);
	http(&r, "GET", "/t/query?x=%G0", NULL, NULL);
	is_int(r.status, 400, "a bad escape in the query: 400");
	http_reply_clear(&r);
}

static void test_auth_paths(void)
{
	struct http_reply r;
	char *s;

	http(&r, "GET", "/t/viewer", NULL, NULL);
	is_int(r.status, 401, "no token: 401");
	is_str(http_error_code(&r), "unauthorized", "unauthorized");
	is_str(http_header(&r, "WWW-Authenticate"), "Bearer", "WWW-Authenticate: Bearer");
	http_reply_clear(&r);

	http(&r, "GET", "/t/viewer", "Authorization: Basic dmVyYTp4\r\n", NULL);
	is_int(r.status, 401, "not a bearer token: 401");
	http_reply_clear(&r);

	http(&r, "GET", "/t/viewer", "Authorization: Bearer \r\n", NULL);
	is_int(r.status, 401, "an empty bearer token: 401");
	http_reply_clear(&r);

	http(&r, "GET", "/t/viewer", "Authorization: Bearer nope\r\n", NULL);
	is_int(r.status, 401, "an unknown token: 401");
	is_str(http_header(&r, "WWW-Authenticate"), "Bearer", "with the challenge");
	ok(r.body && !strstr(r.body, "nope"), "the secret is not echoed");
	http_reply_clear(&r);

	http(&r, "GET", "/t/viewer", "Authorization: Bearer viewer-secret\r\n", NULL);
	is_int(r.status, 200, "viewer token on a viewer route: 200");
	s = http_json_field(&r, "token");
	is_str(s, "vera", "api_req_token_name");
	free(s);
	ok(http_header(&r, "WWW-Authenticate") == NULL, "no challenge on success");
	http_reply_clear(&r);

	http(&r, "GET", "/t/viewer", "Authorization: bearer admin-secret\r\n", NULL);
	is_int(r.status, 200, "admin token on a viewer route (scheme case-insensitive): 200");
	s = http_json_field(&r, "role");
	is_str(s, "admin", "api_req_role");
	free(s);
	http_reply_clear(&r);

	http(&r, "POST", "/t/admin", "Authorization: Bearer viewer-secret\r\n", "{}");
	is_int(r.status, 403, "viewer token on an admin route: 403");
	is_str(http_error_code(&r), "forbidden", "forbidden");
	ok(r.body && strstr(r.body, "admin"), "the message names the role needed");
	http_reply_clear(&r);

	http(&r, "POST", "/t/admin", "Authorization: Bearer admin-secret\r\n", "{}");
	is_int(r.status, 200, "admin token on an admin route: 200");
	http_reply_clear(&r);

	http(&r, "GET", "/t/hello", "Authorization: Bearer nope\r\n", NULL);
	is_int(r.status, 200, "a role-none route ignores tokens");
	http_reply_clear(&r);
}

static void test_json_bodies(void)
{
	struct http_reply r;
	char *s, big[6000];

	http(&r, "POST", "/t/json", NULL, "{\"a\":[1,2,{\"b\":null}]}");
	is_int(r.status, 200, "a JSON body: 200");
	s = http_json_field(&r, "got");
	is_str(s, "{\"a\":[1,2,{\"b\":null}]}", "parsed and handed to the handler");
	free(s);
	http_reply_clear(&r);

	http(&r, "POST", "/t/json", NULL, "");
	is_int(r.status, 200, "an empty body: 200");
	s = http_json_field(&r, "got");
	is_str(s, "null", "api_req_json() is NULL for an empty body");
	free(s);
	http_reply_clear(&r);

	http(&r, "POST", "/t/json", NULL, "{\"a\":\n  tru}");
	is_int(r.status, 400, "bad JSON: 400");
	is_str(http_error_code(&r), "bad_json", "bad_json");
	ok(r.body && strstr(r.body, "line 2"), "the message says where (%s)", r.body);
	http_reply_clear(&r);

	http(&r, "POST", "/t/json", NULL, "{\"a\":1,\"a\":2}");
	is_int(r.status, 400, "duplicate keys: 400 bad_json");
	http_reply_clear(&r);

	memset(big, ' ', sizeof(big) - 1);
	big[0] = '[';
	big[sizeof(big) - 2] = ']';
	big[sizeof(big) - 1] = '\0';
	http(&r, "POST", "/t/json", NULL, big);
	is_int(r.status, 413, "a JSON body over max_json_body: 413");
	is_str(http_error_code(&r), "too_large", "too_large");
	http_reply_clear(&r);

	/* Announced too large: the answer comes before the body is sent. */
	{
		struct http_job j = { .fn = http_job_exchange, .port = g_port };

		j.req = strdup("POST /t/json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
			       "Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n");
		j.req_len = strlen(j.req);
		http_job_run(ev, &j);
		is_int(j.rep.status, 413, "Content-Length over the limit: 413 before the body");
		http_reply_clear(&j.rep);
		free(j.req);
	}

	/* Chunked, so only the bytes tell. */
	{
		struct http_job j = { .fn = http_job_exchange, .port = g_port };
		char *chunks = malloc(9000);
		size_t o = 0;

		o += (size_t)sprintf(chunks, "POST /t/json HTTP/1.1\r\nHost: t\r\nConnection: "
					     "close\r\nTransfer-Encoding: chunked\r\n\r\n");
		for (int i = 0; i < 5; i++) {
			o += (size_t)sprintf(chunks + o, "400\r\n");
			memset(chunks + o, ' ', 0x400);
			o += 0x400;
			o += (size_t)sprintf(chunks + o, "\r\n");
		}
		o += (size_t)sprintf(chunks + o, "0\r\n\r\n");
		j.req = chunks;
		j.req_len = o;
		http_job_run(ev, &j);
		is_int(j.rep.status, 413, "a chunked body over the limit: 413");
		http_reply_clear(&j.rep);
		free(chunks);
	}
}

static long maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void test_body_file(void)
{
	uint8_t sha[SHA256_DIGEST_SIZE];
	struct http_job j = { .fn = job_upload, .port = g_port, .data = sha };
	char hex[2 * SHA256_DIGEST_SIZE + 1], *s;
	long before, after;

	before = maxrss_kb();
	j.req_len = (size_t)asprintf(&j.req, "POST /t/upload HTTP/1.1\r\nHost: t\r\nConnection: "
					     "close\r\nContent-Length: %u\r\n\r\n",
				     UPLOAD_SIZE);
	ok(http_job_run(ev, &j), "a 20 MB upload ends");
	after = maxrss_kb();
	is_int(j.rep.status, 200, "BODY_FILE upload: 200");
	for (size_t i = 0; i < SHA256_DIGEST_SIZE; i++)
		sprintf(hex + 2 * i, "%02x", sha[i]);
	s = http_json_field(&j.rep, "sha256");
	is_str(s, hex, "the handler read back exactly what was sent (SHA-256)");
	free(s);
	s = http_json_field(&j.rep, "size");
	ok(s && strtoull(s, NULL, 10) == UPLOAD_SIZE, "api_req_body_fd() gives the size");
	free(s);
	ok(after - before < 8 * 1024, "max RSS grew by %ld KiB (< 8 MiB) for a 20 MiB body",
	   after - before);
	http_reply_clear(&j.rep);
	free(j.req);

	{
		struct http_job k = { .fn = http_job_exchange, .port = g_port };

		k.req = strdup("POST /t/upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
			       "Content-Length: 40000000\r\n\r\n");
		k.req_len = strlen(k.req);
		http_job_run(ev, &k);
		is_int(k.rep.status, 413, "a BODY_FILE body over max_body: 413");
		http_reply_clear(&k.rep);
		free(k.req);
	}
}

static void test_waiting(struct api_http *h)
{
	struct http_reply r;
	char *s;

	http(&r, "GET", "/t/async", NULL, NULL);
	is_int(r.status, 200, "a reply from a timer after the handler returned: 200");
	s = http_json_field(&r, "late");
	is_str(s, "true", "its body");
	free(s);
	http_reply_clear(&r);

	/* The client goes away while the handler waits. */
	{
		struct http_job j = { .fn = http_job_hangup, .port = g_port };

		st.hang_go_fd = eventfd(0, EFD_CLOEXEC);
		j.go_fd = st.hang_go_fd;
		j.req = strdup("GET /t/hang HTTP/1.1\r\nHost: t\r\n\r\n");
		j.req_len = strlen(j.req);
		st.hang_aborted = false;
		http_job_run(ev, &j);
		ok(http_loop_until(ev, &st.hang_aborted, 5000),
		   "a client that leaves: the abort runs");
		free(j.req);
		close(st.hang_go_fd);
	}

	http(&r, "GET", "/t/slow", NULL, NULL);
	is_int(r.status, 504, "no reply by request_timeout: 504");
	is_str(http_error_code(&r), "timeout", "timeout");
	ok(st.slow_aborted, "and the abort ran");
	http_reply_clear(&r);

	{
		volatile bool idle = false;
		long long end = http_now_ms() + 5000;

		while (!(idle = api_http_connections(h) == 0) && http_now_ms() < end)
			sd_event_run(ev, 100 * 1000);
		ok(idle, "every connection closed afterwards (%u open)", api_http_connections(h));
	}
}

static void test_streams(void)
{
	struct http_reply r;
	bool good = true;

	http(&r, "GET", "/t/stream", NULL, NULL);
	is_int(r.status, 200, "stream: 200");
	ok(r.chunked, "sent chunked");
	ok(r.complete, "with its last chunk");
	is_int(r.body_len, STREAM_TOTAL, "every byte");
	for (size_t i = 0; i < r.body_len && good; i++)
		good = r.body[i] == (char)('a' + i % 26);
	ok(good, "in order");
	ok(st.drains > 0, "paced by the drain callback (%u calls)", st.drains);
	is_str(http_header(&r, "Cache-Control"), "no-store", "streams get Cache-Control too");
	http_reply_clear(&r);

	http(&r, "GET", "/t/stream-ticks", NULL, NULL);
	is_int(r.status, 200, "a stream written to after it went idle: 200");
	ok(r.complete, "it ends with its last chunk");
	is_str(r.body, "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n", "every write arrived, once");
	is_str(http_header(&r, "Cache-Control"), "no-cache",
	       "a handler's Cache-Control replaces no-store");
	ok(strstr(r.head, "no-store") == NULL, "and is the only one");
	http_reply_clear(&r);

	http(&r, "GET", "/t/stream-cut", NULL, NULL);
	is_int(r.status, 200, "a stream that fails midway: 200 went out");
	ok(r.chunked && !r.complete, "the body is cut: no last chunk");
	http_reply_clear(&r);

	{
		struct http_job j = { .fn = http_job_hangup, .port = g_port };

		st.hang_go_fd = eventfd(0, EFD_CLOEXEC);
		j.go_fd = st.hang_go_fd;
		j.req = strdup("GET /t/stream-wait HTTP/1.1\r\nHost: t\r\n\r\n");
		j.req_len = strlen(j.req);
		st.stream_aborted = false;
		http_job_run(ev, &j);
		ok(http_loop_until(ev, &st.stream_aborted, 5000),
		   "a client that leaves a waiting stream: the abort runs");
		free(j.req);
		close(st.hang_go_fd);
	}
}

static void test_errors(void)
{
	struct http_reply r;
	json_t *j, *smp;

	http(&r, "GET", "/t/smp-error", NULL, NULL);
	is_int(r.status, 502, "api_reply_smp_error: its status");
	j = http_reply_json(&r);
	smp = json_object_get(json_object_get(j, "error"), "smp");
	is_int(json_integer_value(json_object_get(smp, "group")), 1, "smp.group");
	is_int(json_integer_value(json_object_get(smp, "rc")), 6, "smp.rc");
	is_str(json_string_value(json_object_get(smp, "name")), "NO_FREE_SLOT", "smp.name");
	is_str(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
	       "no slot: 6", "message");
	is_str(http_header(&r, "X-Test"), "yes", "api_req_add_header");
	json_decref(j);
	http_reply_clear(&r);

	http(&r, "GET", "/t/errno", NULL, NULL);
	is_int(r.status, 503, "api_reply_errno(-EHOSTDOWN): 503");
	is_str(http_error_code(&r), "device_offline", "device_offline");
	http_reply_clear(&r);
}

struct stat_find {
	const char *method, *pattern;
	unsigned status;
	uint64_t count;
};

static void stat_find(const char *method, const char *pattern, unsigned status, uint64_t count,
		      uint64_t dur, void *ud)
{
	struct stat_find *f = ud;

	if (strcmp(method, f->method) == 0 && strcmp(pattern, f->pattern) == 0 &&
	    status == f->status)
		f->count += count;
}

static void test_stats(struct api_http *h)
{
	struct stat_find f = { "GET", "/t/hello", 200, 0 };

	api_http_foreach_stat(h, stat_find, &f);
	ok(f.count >= 2, "counters: GET /t/hello 200 counted (%llu)", (unsigned long long)f.count);
	f = (struct stat_find){ "GET", "unmatched", 404, 0 };
	api_http_foreach_stat(h, stat_find, &f);
	ok(f.count >= 1, "counters: unmatched 404 counted (%llu)", (unsigned long long)f.count);
	f = (struct stat_find){ "DELETE", "unmatched", 405, 0 };
	api_http_foreach_stat(h, stat_find, &f);
	is_int(f.count, 1, "counters: the 405 counted once");
	f = (struct stat_find){ "GET", "/t/viewer", 401, 0 };
	api_http_foreach_stat(h, stat_find, &f);
	is_int(f.count, 4, "counters: the route's 401s");
	f = (struct stat_find){ "GET", "/t/hang", 499, 0 };
	api_http_foreach_stat(h, stat_find, &f);
	is_int(f.count, 1, "counters: a client that left is 499");
}

static void route_count(const struct api_route *r, void *ud)
{
	(*(size_t *)ud)++;
}

static void test_routes_api(struct api_http *h)
{
	static const struct api_route dup[] = { { "GET", "/t/hello", API_ROLE_NONE, 0, on_hello } };
	static const struct api_route badp[] = { { "GET", "/t/{a}/{a}", API_ROLE_NONE, 0,
						   on_hello } };
	static const struct api_route badg[] = { { "GET", "/t/{a+}/x", API_ROLE_NONE, 0,
						   on_hello } };
	static const struct api_route badm[] = { { "HEAD", "/t/h", API_ROLE_NONE, 0, on_hello } };
	static const struct api_route bads[] = { { "GET", "t/h", API_ROLE_NONE, 0, on_hello } };
	static const struct api_route bade[] = { { "GET", "/t//h", API_ROLE_NONE, 0, on_hello } };
	size_t n = 0;

	is_int(api_http_add_routes(h, dup, 1, NULL), -EEXIST, "a duplicate route: -EEXIST");
	is_int(api_http_add_routes(h, badp, 1, NULL), -EINVAL, "a parameter twice: -EINVAL");
	is_int(api_http_add_routes(h, badg, 1, NULL), -EINVAL, "{x+} not last: -EINVAL");
	is_int(api_http_add_routes(h, badm, 1, NULL), -EINVAL, "an unknown method: -EINVAL");
	is_int(api_http_add_routes(h, bads, 1, NULL), -EINVAL, "no leading '/': -EINVAL");
	is_int(api_http_add_routes(h, bade, 1, NULL), -EINVAL, "an empty segment: -EINVAL");
	api_http_foreach_route(h, route_count, &n);
	is_int(n, ELEMENTSOF(routes), "api_http_foreach_route lists each route once");
	is_int(api_role_from_string("operator"), API_ROLE_OPERATOR, "api_role_from_string");
	is_int(api_role_from_string("root"), -EINVAL, "api_role_from_string: unknown");
	is_str(api_role_to_string(API_ROLE_NONE), "none", "api_role_to_string(NONE)");
}

static void test_config_errors(void)
{
	struct api_http_config c = { .listen = "127.0.0.1" };
	struct api_http *h = NULL;

	is_int(api_http_new(ev, &c, &h), -EINVAL, "listen without a port: -EINVAL");
	c.listen = "999.1.1.1:80";
	is_int(api_http_new(ev, &c, &h), -EINVAL, "a bad address: -EINVAL");
	c.listen = "127.0.0.1:70000";
	is_int(api_http_new(ev, &c, &h), -EINVAL, "a bad port: -EINVAL");
	c.listen = "127.0.0.1:0";
	c.tls_cert = "/nonexistent.pem";
	is_int(api_http_new(ev, &c, &h), -EINVAL, "a certificate without a key: -EINVAL");
	c.tls_key = "/nonexistent.key";
	is_int(api_http_new(ev, &c, &h), -ENOENT, "a missing certificate file: -ENOENT");
	c.tls_cert = c.tls_key = NULL;
	c.listen = "[::1]:0";
	ok(api_http_new(ev, &c, &h) == 0, "an IPv6 address parses");
	h = api_http_free(h);

	/* A port in use. */
	{
		struct sockaddr_in a = { .sin_family = AF_INET };
		socklen_t l = sizeof(a);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		char listen_s[64];

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		bind(fd, (struct sockaddr *)&a, sizeof(a));
		listen(fd, 1);
		getsockname(fd, (struct sockaddr *)&a, &l);
		snprintf(listen_s, sizeof(listen_s), "127.0.0.1:%d", ntohs(a.sin_port));
		c.listen = listen_s;
		ok(api_http_new(ev, &c, &h) == 0, "created on a taken port");
		is_int(api_http_start(h), -EADDRINUSE, "api_http_start: -EADDRINUSE");
		h = api_http_free(h);
		close(fd);
	}
}

/* Socket activation: a listening socket at fd 3 with LISTEN_FDS/LISTEN_PID. */
static int activation_port;

static void prepare_activation(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char pid[32];

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0)
		return;
	getsockname(fd, (struct sockaddr *)&a, &l);
	if (fd != SD_LISTEN_FDS_START) {
		if (dup2(fd, SD_LISTEN_FDS_START) < 0)
			return;
		close(fd);
	}
	activation_port = ntohs(a.sin_port);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_PID", pid, 1);
}

static void test_activation(void)
{
	struct api_http_config c = { .listen = "127.0.0.1:0", .use_listen_fds = true };
	struct api_http *h = NULL;
	struct http_reply r;
	int saved = g_port;

	if (!activation_port) {
		tap_skip("could not prepare fd 3", "socket activation");
		return;
	}
	ok(api_http_new(ev, &c, &h) == 0 && api_http_add_routes(h, routes, 1, NULL) == 0,
	   "activated server created");
	is_int(api_http_start(h), 0, "started on the passed socket");
	is_int(api_http_port(h), activation_port, "it listens on the passed socket's port");
	ok(getenv("LISTEN_FDS") == NULL, "LISTEN_FDS consumed");
	g_port = activation_port;
	http(&r, "GET", "/t/hello", NULL, NULL);
	is_int(r.status, 200, "a request through the activated socket");
	http_reply_clear(&r);
	g_port = saved;
	api_http_free(h);
}

/* --- TLS: a certificate made by openssl now; the client is curl --- */

static bool have(const char *prog)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

struct curl_job {
	char cmd[1024];
	char out[4096];
	int rc;
};

static void job_curl(struct http_job *j)
{
	struct curl_job *c = j->data;
	FILE *p = popen(c->cmd, "r");
	size_t n = 0;

	if (!p) {
		c->rc = -1;
		return;
	}
	n = fread(c->out, 1, sizeof(c->out) - 1, p);
	c->out[n] = '\0';
	c->rc = pclose(p);
}

static void test_tls(const char *dir)
{
	struct api_http_config c = { .listen = "127.0.0.1:0" };
	char cert[512], key[512], cmd[2048];
	struct api_http *h = NULL;
	struct curl_job cj = { 0 };
	struct http_job j = { .fn = job_curl };

	if (!have("openssl") || !have("curl")) {
		tap_skip("openssl or curl missing", "TLS");
		return;
	}
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
		 "-subj /CN=127.0.0.1 -keyout %s -out %s >/dev/null 2>&1",
		 key, cert);
	if (system(cmd) != 0) {
		tap_skip("openssl could not make a certificate", "TLS");
		return;
	}
	c.tls_cert = cert;
	c.tls_key = key;
	ok(api_http_new(ev, &c, &h) == 0 && api_http_add_routes(h, routes, 1, NULL) == 0,
	   "TLS server created");
	is_int(api_http_start(h), 0, "TLS server started");
	snprintf(cj.cmd, sizeof(cj.cmd),
		 "curl -s -k --max-time 10 -D - https://127.0.0.1:%d/t/hello 2>/dev/null",
		 api_http_port(h));
	j.data = &cj;
	http_job_run(ev, &j);
	ok(cj.rc == 0 && strstr(cj.out, "HTTP/1.1 200") && strstr(cj.out, "{\"hello\":\"world\"}"),
	   "HTTPS request answered");
	snprintf(cj.cmd, sizeof(cj.cmd),
		 "curl -s --max-time 10 -o /dev/null -w '%%{http_code}' "
		 "http://127.0.0.1:%d/t/hello",
		 api_http_port(h));
	http_job_run(ev, &j);
	ok(strstr(cj.out, "200") == NULL, "plain HTTP is not served on the TLS port");
	api_http_free(h);
}

/* Freeing the server with a handler waiting runs its abort. */
static void test_free_with_waiting(const char *dir)
{
	struct api_http_config c = { .listen = "127.0.0.1:0", .tmp_dir = dir };
	static const struct api_route hang[] = { { "GET", "/t/hang", API_ROLE_NONE, 0, on_hang } };
	struct api_http *h = NULL;
	struct http_job j = { .fn = http_job_hangup };
	volatile bool waiting = false;
	long long end = http_now_ms() + 5000;

	api_http_new(ev, &c, &h);
	api_http_add_routes(h, hang, 1, NULL);
	api_http_start(h);
	j.port = api_http_port(h);
	st.hang_go_fd = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
	j.go_fd = eventfd(0, EFD_CLOEXEC); /* signalled below, after the free */
	j.req = strdup("GET /t/hang HTTP/1.1\r\nHost: t\r\n\r\n");
	j.req_len = strlen(j.req);
	st.hang_aborted = false;
	st.waiting = NULL;
	{
		pthread_t t;

		j.efd = eventfd(0, EFD_CLOEXEC);
		pthread_create(&t, NULL, http_job_thread, &j);
		while (!(waiting = st.waiting != NULL) && http_now_ms() < end)
			sd_event_run(ev, 100 * 1000);
		ok(waiting, "a handler waits");
		api_http_free(h);
		ok(st.hang_aborted, "api_http_free() ran its abort");
		eventfd_write(j.go_fd, 1);
		pthread_join(t, NULL);
		close(j.efd);
	}
	close(j.go_fd);
	close(st.hang_go_fd);
	free(j.req);
}

int main(void)
{
	char dir[] = "/tmp/test-api-http-XXXXXX";
	struct api_http_config cfg = {
		.listen = "127.0.0.1:0",
		.max_body = 32 * 1024 * 1024,
		.max_json_body = 4096,
		.max_connections = 16,
		.request_timeout_ms = 300,
		.auth = test_auth,
	};
	struct api_http *h = NULL;
	char cmd[256];

	/* Before any other descriptor exists, so that fd 3 is free to take. */
	prepare_activation();
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		return 99;
	cfg.tmp_dir = dir;
	sd_event_default(&ev);

	test_activation();

	ok(api_http_new(ev, &cfg, &h) == 0, "api_http_new");
	ok(api_http_add_routes(h, routes, ELEMENTSOF(routes), NULL) == 0, "routes added");
	is_int(api_http_port(h), -1, "no port before start");
	is_int(api_http_start(h), 0, "api_http_start");
	g_port = api_http_port(h);
	ok(g_port > 0, "listening on port %d", g_port);

	test_routing();
	test_auth_paths();
	test_json_bodies();
	test_body_file();
	test_waiting(h);
	test_streams();
	test_errors();
	test_stats(h);
	test_routes_api(h);
	api_http_free(h);

	test_config_errors();
	test_free_with_waiting(dir);
	test_tls(dir);

	sd_event_unref(ev);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
