/* test-api-device: the device handlers' helpers against smp-sim: calls, status mapping, aborts, the cache */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/api.h"
#include "daemon/gw-devices.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "db/db.h"
#include "lib/macro.h"
#include "lib/smp-os.h"
#include "lib/smp-stat.h"
#include "tests/api/http-client.h"
#include "tests/sim/sim-test.h"
#include "tests/tap.h"

static char dir[] = "/tmp/smpgw-test-api-device-XXXXXX";
static struct gw_manager m;
static struct api_http *h;
static int port;

static struct {
	unsigned destroyed;
	bool aborted_seen;
	int go_fd;
} st;

static void on_destroy(void *userdata)
{
	st.destroyed++;
}

static int parse_echo(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	char *text = NULL;
	int r = smp_os_echo_parse(rsp, &text);

	if (r < 0)
		return r;
	*ret = json_pack("{s:s,s:s}", "echo", text, "tag", (const char *)userdata);
	free(text);
	return *ret ? 0 : -ENOMEM;
}

static int parse_refuse(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	return -EBADMSG;
}

static int parse_info(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	char *text = NULL;
	int r = smp_os_info_parse(rsp, &text);

	if (r < 0)
		return r;
	*ret = json_pack("{s:s}", "output", text);
	free(text);
	return *ret ? 0 : -ENOMEM;
}

/* GET /d/{id}/echo?text=...&parse=none|refuse */
static void on_echo(struct api_req *q, void *userdata)
{
	struct gw_device *d = api_device_lookup(q, &m);
	const char *text = api_req_query(q, "text"), *how = api_req_query(q, "parse");
	struct smp_request *req = NULL;

	if (!d)
		return;
	static const uint8_t bad_echo[] = { 0xa1, 0x61, 'd', 0x05 }; /* {"d": 5} */

	if (text)
		smp_os_echo_request(text, &req);
	else /* "d" of the wrong type: the device judges the arguments */
		smp_request_new_raw(SMP_OP_WRITE, SMP_GROUP_OS, SMP_OS_ECHO, bad_echo,
				    sizeof(bad_echo), &req);
	if (how && strcmp(how, "none") == 0)
		api_device_call(q, &m, d, req, NULL, NULL, NULL);
	else if (how && strcmp(how, "refuse") == 0)
		api_device_call(q, &m, d, req, parse_refuse, NULL, on_destroy);
	else
		api_device_call(q, &m, d, req, parse_echo, "t1", on_destroy);
	/* The abort tests let the client go once the call waits. */
	if (st.go_fd >= 0)
		eventfd_write(st.go_fd, 1);
}

static void on_stat(struct api_req *q, void *userdata)
{
	struct gw_device *d = api_device_lookup(q, &m);
	struct smp_request *req = NULL;

	if (!d)
		return;
	smp_stat_show_request(api_req_param(q, "group"), &req);
	api_device_call(q, &m, d, req, NULL, NULL, NULL);
}

static void on_cached(struct api_req *q, void *userdata)
{
	struct gw_device *d = api_device_lookup(q, &m);
	struct smp_request *req = NULL;

	if (!d)
		return;
	smp_os_info_request("a", &req);
	api_device_cached(q, &m, d, "info", req, parse_info);
}

static void on_body(struct api_req *q, void *userdata)
{
	json_t *j = api_body_object(q);

	if (j)
		api_reply_json(q, 200, json_pack("{s:O}", "got", j));
}

static const struct api_route routes[] = {
	{ "GET", "/d/{id}/echo", API_ROLE_NONE, 0, on_echo },
	{ "GET", "/d/{id}/stat/{group}", API_ROLE_NONE, 0, on_stat },
	{ "GET", "/d/{id}/cached", API_ROLE_NONE, 0, on_cached },
	{ "POST", "/d/body", API_ROLE_NONE, 0, on_body },
};

/* GET /d/<id><rest> */
static void get(struct http_reply *r, const char *id, const char *rest)
{
	char path[512];

	snprintf(path, sizeof(path), "/d/%s%s", id, rest);
	http_request(m.event, port, r, "GET", path, NULL, NULL);
}

static json_t *smp_of(const struct http_reply *r)
{
	json_t *j = http_reply_json(r), *smp;

	smp = json_incref(json_object_get(json_object_get(j, "error"), "smp"));
	json_decref(j);
	return smp;
}

static struct gw_device *add_udp(const char *address, bool online)
{
	struct gw_device_spec spec = {
		.transport = GW_TRANSPORT_UDP,
		.address = address,
		.source = GW_SOURCE_API,
	};
	struct gw_device *d = NULL;
	char identity[128];

	snprintf(identity, sizeof(identity), "udp:%s", address);
	spec.identity = identity;
	if (gw_registry_upsert(m.registry, &spec, &d) < 0)
		abort();
	gw_registry_set_online(m.registry, d, online);
	return d;
}

static void test_calls(struct gw_device *d)
{
	struct http_reply r;
	json_t *smp;
	char *s;

	st.destroyed = 0;
	get(&r, d->id, "/echo?text=hello");
	is_int(r.status, 200, "api_device_call: 200");
	s = http_json_field(&r, "echo");
	is_str(s, "hello", "parse's value is the body");
	free(s);
	s = http_json_field(&r, "tag");
	is_str(s, "t1", "parse gets its userdata");
	free(s);
	is_int(st.destroyed, 1, "destroy ran once after the reply");
	http_reply_clear(&r);

	get(&r, d->id, "/echo?text=raw&parse=none");
	is_int(r.status, 200, "parse NULL: 200");
	is_str(r.body, "{\"r\":\"raw\"}", "the response map as JSON");
	http_reply_clear(&r);

	get(&r, d->id, "/echo?parse=none");
	is_int(r.status, 400, "the device's EINVAL: 400");
	is_str(http_error_code(&r), "device_refused", "device_refused");
	smp = smp_of(&r);
	is_int(json_integer_value(json_object_get(smp, "group")), 0, "smp.group 0");
	is_int(json_integer_value(json_object_get(smp, "rc")), 3, "smp.rc 3");
	is_str(json_string_value(json_object_get(smp, "name")), "EINVAL", "smp.name EINVAL");
	json_decref(smp);
	http_reply_clear(&r);

	get(&r, d->id, "/stat/nosuchgroup");
	is_int(r.status, 502, "a group error without a better status: 502");
	is_str(http_error_code(&r), "device_error", "device_error");
	smp = smp_of(&r);
	is_int(json_integer_value(json_object_get(smp, "group")), 63,
	       "smp.group is the error's group, not the header's");
	is_int(json_integer_value(json_object_get(smp, "rc")), 3, "smp.rc 3");
	json_decref(smp);
	http_reply_clear(&r);

	get(&r, d->id, "/stat/smp_svr_stats");
	is_int(r.status, 200, "stat show: 200");
	ok(r.body && strstr(r.body, "\"fields\""), "the response map as JSON (%s)", r.body);
	http_reply_clear(&r);

	st.destroyed = 0;
	get(&r, d->id, "/echo?text=x&parse=refuse");
	is_int(r.status, 502, "parse says -EBADMSG: 502");
	is_str(http_error_code(&r), "bad_device_answer", "bad_device_answer");
	is_int(st.destroyed, 1, "destroy ran");
	http_reply_clear(&r);

	get(&r, "no-such-device", "/echo?text=x");
	is_int(r.status, 404, "an unknown device: 404");
	is_str(http_error_code(&r), "device_not_found", "device_not_found");
	http_reply_clear(&r);

	gw_registry_set_online(m.registry, d, false);
	st.destroyed = 0;
	get(&r, d->id, "/echo?text=x");
	is_int(r.status, 503, "an offline device: 503");
	is_str(http_error_code(&r), "device_offline", "device_offline");
	is_int(st.destroyed, 1, "destroy ran when the call could not start");
	http_reply_clear(&r);
	gw_registry_set_online(m.registry, d, true);
}

static void test_busy(struct gw_device *d)
{
	struct http_reply r;
	json_t *smp;

	get(&r, d->id, "/echo?text=x");
	is_int(r.status, 409, "a device that says EBUSY: 409");
	is_str(http_error_code(&r), "device_busy", "device_busy");
	smp = smp_of(&r);
	is_str(json_string_value(json_object_get(smp, "name")), "EBUSY", "smp.name EBUSY");
	json_decref(smp);
	http_reply_clear(&r);
}

/* A "device" that never answers: the call waits until the client leaves or the deadline. */
static void test_abort(struct gw_device *silent, struct gw_device *silent2)
{
	struct http_job j = { .fn = http_job_hangup, .port = port };
	struct http_reply r;
	bool gone = false;
	long long end;
	char *req;

	st.go_fd = eventfd(0, EFD_CLOEXEC);
	st.destroyed = 0;
	j.go_fd = st.go_fd;
	if (asprintf(&req, "GET /d/%s/echo?text=x HTTP/1.1\r\nHost: t\r\n\r\n", silent->id) < 0)
		abort();
	j.req = req;
	j.req_len = strlen(req);
	http_job_run(m.event, &j);
	end = http_now_ms() + 5000;
	while (!(gone = st.destroyed == 1) && http_now_ms() < end)
		sd_event_run(m.event, 100 * 1000);
	ok(gone, "a client that leaves cancels the call (destroy ran)");
	free(req);
	close(st.go_fd);
	st.go_fd = -1;

	/* The deadline (request_timeout 300 ms) passes before the device's timeout. */
	st.destroyed = 0;
	m.config.timeout_ms = 5000;
	get(&r, silent->id, "/echo?text=x");
	is_int(r.status, 504, "the request deadline: 504");
	is_str(http_error_code(&r), "timeout", "timeout");
	is_int(st.destroyed, 1, "the call was cancelled (destroy ran)");
	http_reply_clear(&r);
	/* Another device: the cancelled requests hold the first one's window until
	 * they time out. Params (defaulted after their timeout) and the echo, both
	 * within the deadline. */
	m.config.timeout_ms = 50;
	get(&r, silent2->id, "/echo?text=x");
	is_int(r.status, 504, "the device's timeout: 504");
	is_str(http_error_code(&r), "device_timeout", "device_timeout");
	http_reply_clear(&r);
}

static void test_cached(struct gw_device *d)
{
	struct http_reply r;
	json_t *j, *v;
	uint64_t at = 0, at2 = 0;

	ok(gw_registry_get_reported(d, "info", NULL) == NULL, "nothing cached yet");
	get(&r, d->id, "/cached");
	is_int(r.status, 200, "cached, never read: the device answers");
	j = http_reply_json(&r);
	v = json_object_get(json_object_get(j, "value"), "output");
	ok(json_is_string(v) && strstr(json_string_value(v), "Zephyr"),
	   "value is parse's ({\"output\": ...})");
	at = (uint64_t)json_integer_value(json_object_get(j, "at"));
	ok(at > 0 && json_is_integer(json_object_get(j, "age_ms")), "with at and age_ms");
	json_decref(j);
	http_reply_clear(&r);
	ok(gw_registry_get_reported(d, "info", &at2) != NULL && at2 == at,
	   "stored in the registry with the same time");

	gw_registry_set_online(m.registry, d, false);
	get(&r, d->id, "/cached");
	is_int(r.status, 200, "cached: answered without the (offline) device");
	j = http_reply_json(&r);
	is_int(json_integer_value(json_object_get(j, "at")), at, "the stored time");
	json_decref(j);
	http_reply_clear(&r);

	get(&r, d->id, "/cached?refresh=true");
	is_int(r.status, 503, "?refresh=true asks the device (offline: 503)");
	http_reply_clear(&r);
	get(&r, d->id, "/cached?refresh=maybe");
	is_int(r.status, 400, "?refresh=maybe: 400");
	is_str(http_error_code(&r), "bad_query", "bad_query");
	http_reply_clear(&r);
	gw_registry_set_online(m.registry, d, true);

	get(&r, d->id, "/cached?refresh=1");
	is_int(r.status, 200, "?refresh=1 with the device online: 200");
	j = http_reply_json(&r);
	ok((uint64_t)json_integer_value(json_object_get(j, "at")) >= at, "a fresh time");
	is_int(json_integer_value(json_object_get(j, "age_ms")), 0, "age 0");
	json_decref(j);
	http_reply_clear(&r);
}

static void test_body(void)
{
	struct http_reply r;

	http_request(m.event, port, &r, "POST", "/d/body", NULL, NULL);
	is_int(r.status, 400, "api_body_object: no body: 400");
	is_str(http_error_code(&r), "bad_request", "bad_request");
	http_reply_clear(&r);
	http_request(m.event, port, &r, "POST", "/d/body", NULL, "[1]");
	is_int(r.status, 400, "api_body_object: an array: 400");
	http_reply_clear(&r);
	http_request(m.event, port, &r, "POST", "/d/body", NULL, "{\"a\":1}");
	is_int(r.status, 200, "api_body_object: an object: 200");
	http_reply_clear(&r);
}

int main(void)
{
	const char *args[] = { "--udp", "127.0.0.1:0", NULL };
	const char *busy_args[] = { "--udp", "127.0.0.1:0", "--busy-rate", "1", NULL };
	struct api_http_config cfg = { .listen = "127.0.0.1:0", .request_timeout_ms = 300 };
	struct sim_proc sim, busy;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	char path[256], err[256] = "", silent_addr[64], *addr;
	struct gw_device *d, *silent[2];
	int silent_fd[2];

	st.go_fd = -1;
	if (!mkdtemp(dir))
		return 99;
	memset(&m, 0, sizeof(m));
	snprintf(path, sizeof(path), "%s/smpgw.db", dir);
	if (sd_event_new(&m.event) < 0 || gw_config_init(&m.config) < 0 ||
	    db_open(path, &m.db, err, sizeof(err)) < 0)
		return 99;
	m.config.timeout_ms = 200;
	m.config.retries = 0;
	if (gw_registry_new(&m, &m.registry) < 0 || gw_devices_new(&m, &m.devices) < 0)
		return 99;
	cfg.tmp_dir = dir;
	if (api_http_new(m.event, &cfg, &h) < 0 ||
	    api_http_add_routes(h, routes, ELEMENTSOF(routes), NULL) < 0 || api_http_start(h) < 0)
		return 99;
	port = api_http_port(h);

	if (sim_proc_start(&sim, 10000, args) < 0 || sim_proc_start(&busy, 10000, busy_args) < 0) {
		tap_skip("smp-sim did not start", "every device call");
		return tap_done();
	}
	addr = sim_proc_ready(&sim, "udp", 0, NULL);
	d = add_udp(addr, true);
	free(addr);
	test_calls(d);
	test_cached(d);
	test_body();

	addr = sim_proc_ready(&busy, "udp", 0, NULL);
	test_busy(add_udp(addr, true));
	free(addr);

	for (int i = 0; i < 2; i++) {
		silent_fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		a.sin_port = 0;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		al = sizeof(a);
		bind(silent_fd[i], (struct sockaddr *)&a, sizeof(a));
		getsockname(silent_fd[i], (struct sockaddr *)&a, &al);
		snprintf(silent_addr, sizeof(silent_addr), "127.0.0.1:%d", ntohs(a.sin_port));
		silent[i] = add_udp(silent_addr, true);
	}
	test_abort(silent[0], silent[1]);
	close(silent_fd[0]);
	close(silent_fd[1]);

	h = api_http_free(h);
	m.devices = gw_devices_free(m.devices);
	m.registry = gw_registry_free(m.registry);
	m.db = db_close(m.db);
	while (sd_event_run(m.event, 0) > 0)
		;
	m.event = sd_event_unref(m.event);
	gw_config_clear(&m.config);
	sim_proc_stop(&sim, SIGTERM, 5000);
	sim_proc_stop(&busy, SIGTERM, 5000);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
