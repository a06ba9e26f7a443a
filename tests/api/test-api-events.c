/* test-api-events: the SSE route over a real socket (filters, replay, slow and vanishing clients) and the /metrics text */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/api-http.h"
#include "api/api-metrics.h"
#include "api/api.h"
#include "daemon/gw-events.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-metrics.h"
#include "daemon/gw-registry.h"
#include "db/db.h"
#include "lib/macro.h"
#include "tests/tap.h"

static char dir[] = "/tmp/smpgw-test-api-events-XXXXXX";
static struct gw_manager m;
static int port;

static int test_auth(const char *secret, enum api_role *ret_role, char **ret_name, void *ud)
{
	if (strcmp(secret, "viewer-secret") != 0)
		return -EACCES;
	*ret_role = API_ROLE_VIEWER;
	*ret_name = strdup("vera");
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A client socket; rcvbuf > 0 shrinks its receive buffer (a slow reader). */
static int client(int rcvbuf)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		abort();
	if (rcvbuf > 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
	return fd;
}

static void send_get(int fd, const char *path, const char *extra)
{
	char req[1024];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer viewer-secret\r\n%s\r\n",
			 path, extra ? extra : "");

	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
		abort();
}

/* What a client read so far. */
struct rx {
	char *buf;
	size_t len, cap;
	bool eof;
};

static void rx_clear(struct rx *x)
{
	free(x->buf);
	*x = (struct rx){ 0 };
}

/* Runs the loop and reads fd until needle appears in what was read (or EOF
 * with needle NULL), at most timeout_ms. */
static bool read_until(int fd, struct rx *x, const char *needle, unsigned timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (needle && x->buf && strstr(x->buf, needle))
			return true;
		if (x->eof)
			return needle == NULL;
		if (now_ms() > end)
			return false;
		(void)sd_event_run(m.event, 5000);
		while (poll(&p, 1, 0) > 0) {
			ssize_t n;

			if (x->cap - x->len < 65536 + 1) {
				x->cap = x->cap ? x->cap * 2 : 131072;
				x->buf = realloc(x->buf, x->cap);
				if (!x->buf)
					abort();
			}
			n = recv(fd, x->buf + x->len, 65536, MSG_DONTWAIT);
			if (n <= 0) {
				x->eof = true;
				break;
			}
			x->len += (size_t)n;
			x->buf[x->len] = 0;
		}
	}
}

/* Runs the loop until cond() holds, at most timeout_ms. */
static bool loop_until(bool (*cond)(void), unsigned timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	while (!cond()) {
		if (now_ms() > end)
			return false;
		(void)sd_event_run(m.event, 10000);
	}
	return true;
}

static bool no_subscribers(void)
{
	return gw_events_subscribers(m.events) == 0;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay ? strstr(hay, needle) : NULL; p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void test_stream_and_filters(void)
{
	struct rx a = { 0 }, f = { 0 }, r = { 0 };
	int fa = client(0), ff = client(0), fr;
	char hdr[64], *p;
	uint64_t id2;

	send_get(fa, "/api/v1/events", NULL);
	send_get(ff, "/api/v1/events?type=job.&rollout=7&device=dev-b,dev-c", NULL);
	ok(read_until(fa, &a, ": stream\n\n", 5000), "stream opened");
	ok(strstr(a.buf, "HTTP/1.1 200") && strstr(a.buf, "text/event-stream"), "200 event-stream");
	ok(read_until(ff, &f, ": stream\n\n", 5000), "filtered stream opened");
	is_int(gw_events_subscribers(m.events), 2, "two subscribers");

	gw_events_publish(m.events, "device.online", "dev-a", 0, NULL);
	id2 = gw_events_publish(m.events, "job.state", "dev-b", 7, json_pack("{s:s}", "to", "uploading"));
	gw_events_publish(m.events, "job.state", "dev-b", 8, NULL);
	gw_events_publish(m.events, "job.progress", "dev-a", 7, NULL);
	gw_events_publish(m.events, "rollout.state", NULL, 7, NULL);
	gw_events_publish(m.events, "job.progress", "dev-c", 7, json_pack("{s:i}", "bytes_done", 5));
	snprintf(hdr, sizeof(hdr), "id: %llu\nevent: job.state\ndata: ", (unsigned long long)id2);
	ok(read_until(fa, &a, "\"bytes_done\":5", 5000), "unfiltered stream got the last event");
	is_int(count(a.buf, "\nevent: "), 6, "unfiltered: every event");
	ok(strstr(a.buf, hdr) != NULL, "id, event and data lines");
	p = strstr(a.buf, hdr);
	ok(p && strncmp(p + strlen(hdr), "{\"to\":\"uploading\",\"device\":\"dev-b\",\"rollout\":7}\n\n",
			49) == 0, "data: the object with device and rollout, then a blank line");
	ok(read_until(ff, &f, "\"bytes_done\":5", 5000), "filtered stream got its last event");
	is_int(count(f.buf, "\nevent: "), 2, "filtered: job.* of rollout 7 about dev-b or dev-c only");
	ok(strstr(f.buf, hdr) != NULL, "filtered: the job.state of dev-b in rollout 7");

	/* Resume after id2 with the same filters: the dev-c progress only. */
	fr = client(0);
	snprintf(hdr, sizeof(hdr), "Last-Event-ID: %llu\r\n", (unsigned long long)id2);
	send_get(fr, "/api/v1/events?type=job.&rollout=7&device=dev-b,dev-c", hdr);
	ok(read_until(fr, &r, "\"bytes_done\":5", 5000), "resumed stream replays");
	is_int(count(r.buf, "\nevent: "), 1, "resumed: only the later matching event");
	ok(!strstr(r.buf, "event: reset"), "no reset within the retained");

	close(fa);
	close(ff);
	close(fr);
	ok(loop_until(no_subscribers, 5000), "clients gone: every subscription dropped");
	gw_events_publish(m.events, "device.offline", "dev-a", 0, NULL);
	rx_clear(&a);
	rx_clear(&f);
	rx_clear(&r);
}

static void test_heartbeat(void)
{
	struct rx a = { 0 };
	int fd = client(0);
	long long t0 = now_ms();

	send_get(fd, "/api/v1/events?heartbeat=100", NULL);
	ok(read_until(fd, &a, ": stream\n\n", 5000), "stream opened");
	while (count(a.buf, ": heartbeat\n\n") < 3 && now_ms() - t0 < 5000)
		read_until(fd, &a, "never", 50);
	ok(count(a.buf, ": heartbeat\n\n") >= 3, "heartbeats keep coming");
	close(fd);
	ok(loop_until(no_subscribers, 5000), "unsubscribed");
	rx_clear(&a);
}

/* A reader that never reads: cut once 1 MiB waits for it. */
static void test_slow_client(void)
{
	char *big = malloc(2048);
	struct rx a = { 0 };
	int fd = client(4096);
	unsigned published = 0;
	long long end;

	memset(big, 'x', 2047);
	big[2047] = 0;
	send_get(fd, "/api/v1/events", NULL);
	ok(read_until(fd, &a, ": stream\n\n", 5000), "slow client's stream opened");
	end = now_ms() + 20000;
	while (gw_events_subscribers(m.events) > 0 && published < 100000 && now_ms() < end) {
		for (unsigned i = 0; i < 64; i++, published++)
			gw_events_publish(m.events, "job.progress", "dev-a", 1,
					  json_pack("{s:s}", "pad", big));
		(void)sd_event_run(m.event, 0);
	}
	ok(gw_events_subscribers(m.events) == 0, "the slow client was cut off (after %u events)",
	   published);
	ok(published < 100000, "well before everything was published");
	/* What it gets is a body that stops without the last chunk. */
	ok(read_until(fd, &a, NULL, 10000), "its connection closed");
	ok(a.len < (size_t)published * 2048, "it never got everything");
	ok(!strstr(a.buf, "\r\n0\r\n\r\n"), "no last chunk: the client sees a cut body");
	close(fd);
	free(big);
	rx_clear(&a);
}

static void test_stale(void)
{
	struct rx a = { 0 };
	int fd = client(0);

	send_get(fd, "/api/v1/events?last_event_id=1", NULL);
	ok(read_until(fd, &a, "event: reset\ndata: {\"reason\":\"events were dropped, re-read state\"}\n\n",
		      5000),
	   "an id older than the run: event reset");
	ok(a.buf && strstr(a.buf, "\nid: ") && strstr(a.buf, "event: reset") < strstr(a.buf, "\nid: "),
	   "reset first, then the retained events");
	close(fd);
	ok(loop_until(no_subscribers, 5000), "unsubscribed");
	rx_clear(&a);
}

/* ---- /metrics ---- */

static void test_metrics_text(void)
{
	struct gw_device_spec spec = {
		.transport = GW_TRANSPORT_BLE,
		.identity = "ble:C0:FF:EE:00:00:01",
		.address = "/org/bluez/hci0/dev_C0_FF_EE_00_00_01",
		.name = "we\"ird\\name",
		.source = GW_SOURCE_API,
	};
	struct smp_buf b = SMP_BUF_INIT;
	struct gw_device *d;
	struct rx a = { 0 };
	char *text;
	int fd;

	if (gw_registry_upsert(m.registry, &spec, &d) < 0)
		abort();
	gw_registry_set_online(m.registry, d, true);
	gw_registry_seen(m.registry, d);
	gw_registry_set_rssi(m.registry, d, -67);
	gw_registry_set_reported(
		m.registry, d, "image_state",
		json_pack("{s:[{s:i,s:i,s:s,s:s,s:b},{s:i,s:i,s:s,s:s,s:b}]}", "images", "image", 0,
			  "slot", 0, "version", "1.0.0", "hash", "aa", "active", false, "image", 0,
			  "slot", 1, "version", "2.0.0", "hash", "bb", "active", true));
	gw_registry_set_reported(m.registry, d, "stats",
				 json_pack("{s:{s:i,s:i},s:{s:f}}", "g\"1", "f\\x", 42, "f\ny", -3,
					   "g2", "r", 1.5));
	gw_metrics_count_request(m.metrics, 0, 0);
	gw_metrics_count_request(m.metrics, 1, 1);
	gw_metrics_count_request(m.metrics, 70, -ECONNRESET);

	is_int(api_metrics_render(&m, &b), 0, "rendered");
	smp_buf_append(&b, "", 1);
	text = (char *)b.data;
	ok(strstr(text, "# HELP smpgw_smp_requests_total ") &&
		   strstr(text, "# TYPE smpgw_smp_requests_total counter\n"),
	   "HELP and TYPE lines");
	ok(strstr(text, "smpgw_smp_requests_total{group=\"os\",result=\"ok\"} 1\n") != NULL,
	   "os/ok");
	ok(strstr(text, "smpgw_smp_requests_total{group=\"image\",result=\"device_error\"} 1\n") !=
		   NULL,
	   "image/device_error");
	ok(strstr(text, "smpgw_smp_requests_total{group=\"70\",result=\"link_error\"} 1\n") != NULL,
	   "a user group by number");
	ok(strstr(text, "smpgw_devices{transport=\"ble\",state=\"online\"} 1\n") != NULL,
	   "devices by transport and state");
	ok(strstr(text, "smpgw_device_rssi_dbm{device=\"ble-c0-ff-ee-00-00-01\"} -67\n") != NULL,
	   "RSSI");
	ok(strstr(text, "smpgw_device_info{device=\"ble-c0-ff-ee-00-00-01\",name=\"we\\\"ird\\\\name\","
			"transport=\"ble\",version=\"2.0.0\",hash=\"bb\"} 1\n") != NULL,
	   "info: name escaped, the active slot's version and hash");
	ok(strstr(text, "smpgw_device_stat{device=\"ble-c0-ff-ee-00-00-01\",group=\"g\\\"1\","
			"field=\"f\\\\x\"} 42\n") != NULL,
	   "stat: group and field escaped");
	ok(strstr(text, "smpgw_device_stat{device=\"ble-c0-ff-ee-00-00-01\",group=\"g\\\"1\","
			"field=\"f\\ny\"} -3\n") != NULL,
	   "stat: a newline in a field name escaped");
	ok(strstr(text, "group=\"g2\",field=\"r\"} 1.5\n") != NULL, "a real value");
	ok(strstr(text, "smpgw_device_stats_age_seconds{device=\"ble-c0-ff-ee-00-00-01\"} 0.") !=
		   NULL,
	   "stats age");
	ok(strstr(text, "# TYPE smpgw_jobs gauge\n") != NULL, "jobs family (no engine: empty)");
	smp_buf_clear(&b);

	/* Over HTTP: counted by route. */
	fd = client(0);
	send_get(fd, "/metrics", "Connection: close\r\n");
	ok(read_until(fd, &a, NULL, 5000), "GET /metrics answered");
	ok(a.buf && strstr(a.buf, "HTTP/1.1 200") &&
		   strstr(a.buf, "Content-Type: text/plain; version=0.0.4; charset=utf-8"),
	   "200 text/plain version 0.0.4");
	close(fd);
	rx_clear(&a);
	is_int(api_metrics_render(&m, &b), 0, "rendered again");
	smp_buf_append(&b, "", 1);
	ok(strstr((char *)b.data, "smpgw_http_requests_total{method=\"GET\",route=\"/metrics\","
				  "status=\"200\"} 1\n") != NULL,
	   "the scrape counted by method, route and status");
	ok(strstr((char *)b.data, "smpgw_http_request_duration_seconds_count{method=\"GET\","
				  "route=\"/metrics\",status=\"200\"} 1\n") != NULL,
	   "and its duration");
	smp_buf_clear(&b);
}

int main(void)
{
	struct api_http_config cfg = {
		.listen = "127.0.0.1:0",
		.max_body = 1024 * 1024,
		.max_connections = 16,
		.request_timeout_ms = 5000,
		.auth = test_auth,
	};
	char path[300], err[256] = "";

	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		abort();
	cfg.tmp_dir = dir;
	snprintf(path, sizeof(path), "%s/smpgw.db", dir);
	if (sd_event_new(&m.event) < 0 || gw_config_init(&m.config) < 0 ||
	    db_open(path, &m.db, err, sizeof(err)) < 0 || gw_registry_new(&m, &m.registry) < 0 ||
	    gw_events_new(&m, 0, &m.events) < 0 || gw_metrics_new(&m.metrics) < 0)
		abort();
	is_int(api_http_new(m.event, &cfg, &m.http), 0, "server");
	is_int(api_events_register(m.http, &m), 0, "events route");
	is_int(api_metrics_register(m.http, &m), 0, "metrics route");
	is_int(api_http_start(m.http), 0, "listening");
	port = api_http_port(m.http);

	test_stream_and_filters();
	test_heartbeat();
	test_stale();
	test_slow_client();
	test_metrics_text();

	m.http = api_http_free(m.http);
	is_int(gw_events_subscribers(m.events), 0, "no subscriber left");
	m.metrics = gw_metrics_free(m.metrics);
	m.events = gw_events_free(m.events);
	m.registry = gw_registry_free(m.registry);
	m.db = db_close(m.db);
	m.event = sd_event_unref(m.event);
	gw_config_clear(&m.config);
	unlink(path);
	snprintf(path, sizeof(path), "%s/smpgw.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/smpgw.db-shm", dir);
	unlink(path);
	rmdir(dir);
	return tap_done();
}
