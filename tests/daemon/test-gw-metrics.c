/* test-gw-metrics: SMP requests by group and result and link totals, from real clients against smp-sim */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/gw-devices.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-metrics.h"
#include "daemon/gw-registry.h"
#include "db/db.h"
#include "lib/macro.h"
#include "lib/smp-os.h"
#include "lib/smp-stat.h"
#include "tests/sim/sim-test.h"
#include "tests/tap.h"

static char dir[] = "/tmp/smpgw-test-metrics-XXXXXX";
static struct gw_manager m;

struct call {
	bool done;
	int error;
	bool device_error;
};

static void on_call(struct smp_client *c, int error, const struct smp_response *rsp, void *userdata)
{
	struct call *w = userdata;

	w->done = true;
	w->error = error;
	w->device_error = rsp && !smp_response_ok(rsp);
}

/* Sends req to d through gw-devices and waits for its end. */
static struct call call(struct gw_device *d, struct smp_request *req, unsigned timeout_ms)
{
	struct call w = { 0 };

	if (gw_devices_call(m.devices, d, req, SMP_PRIO_INTERACTIVE, 0, on_call, &w, NULL, NULL) < 0)
		abort();
	if (!sim_test_run_until(m.event, &w.done, timeout_ms))
		w.error = -ETIME;
	return w;
}

static struct gw_device *add_udp(const char *address)
{
	char identity[128];
	struct gw_device_spec spec = {
		.transport = GW_TRANSPORT_UDP,
		.identity = identity,
		.address = address,
		.source = GW_SOURCE_API,
	};
	struct gw_device *d;

	snprintf(identity, sizeof(identity), "udp:%s", address);
	if (gw_registry_upsert(m.registry, &spec, &d) < 0)
		abort();
	gw_registry_set_online(m.registry, d, true);
	return d;
}

/* A bound UDP socket nobody answers on, and its "127.0.0.1:port". */
static int silent_socket(char *address, size_t size)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		abort();
	snprintf(address, size, "127.0.0.1:%u", ntohs(sa.sin_port));
	return fd;
}

struct get {
	bool done;
	int error;
	struct smp_client *c;
};

static void on_get(struct gw_devices *ds, int error, struct smp_client *c, void *userdata)
{
	struct get *g = userdata;

	g->done = true;
	g->error = error;
	g->c = smp_client_ref(c);
}

struct group_seen {
	unsigned n;
	uint16_t last_group;
	bool ordered;
	uint64_t os_ok;
};

static void on_request(uint16_t group, enum gw_metrics_result result, uint64_t n, void *userdata)
{
	struct group_seen *s = userdata;

	if (s->n > 0 && group < s->last_group)
		s->ordered = false;
	s->last_group = group;
	s->n++;
	if (group == SMP_GROUP_OS && result == GW_METRICS_OK)
		s->os_ok = n;
}

static void test_results(void)
{
	static const char *const args[] = { "--udp", "127.0.0.1:0", NULL };
	struct smp_client_stats st, st2;
	struct group_seen gs = {.ordered = true};
	char *addr, silent_addr[64], path[256], err[256] = "";
	struct gw_device *d, *quiet;
	struct sim_proc p;
	struct get g = { 0 };
	struct call w;
	uint64_t id;
	int fd;

	memset(&m, 0, sizeof(m));
	if (sd_event_new(&m.event) < 0 || gw_config_init(&m.config) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/smpgw.db", dir);
	if (db_open(path, &m.db, err, sizeof(err)) < 0)
		abort();
	m.config.timeout_ms = 150;
	m.config.retries = 1;
	if (gw_registry_new(&m, &m.registry) < 0 || gw_metrics_new(&m.metrics) < 0 ||
	    gw_devices_new(&m, &m.devices) < 0)
		abort();

	if (!ok(sim_proc_start(&p, 10000, args) == 0, "smp-sim started"))
		return;
	addr = sim_proc_ready(&p, "udp", 0, NULL);
	d = add_udp(addr);

	w = call(d, SIM_REQ(smp_os_echo_request, "hi"), 5000);
	ok(w.done && w.error == 0 && !w.device_error, "echo answered");
	is_int(gw_metrics_get_request(m.metrics, SMP_GROUP_OS, GW_METRICS_OK), 1,
	       "os/ok counts the echo (the params read is not counted)");
	w = call(d, SIM_REQ(smp_stat_show_request, "no-such-group"), 5000);
	ok(w.done && w.error == 0 && w.device_error, "unknown stat group: a device error");
	is_int(gw_metrics_get_request(m.metrics, SMP_GROUP_STAT, GW_METRICS_DEVICE_ERROR), 1,
	       "stat/device_error");
	is_int(gw_metrics_get_request(m.metrics, SMP_GROUP_STAT, GW_METRICS_OK), 0, "stat/ok is 0");

	/* A request cancelled on the shared client. */
	is_int(gw_devices_get_client(m.devices, d, on_get, &g, NULL, NULL), 0, "get the client");
	sim_test_run_until(m.event, &g.done, 5000);
	ok(g.done && g.error == 0 && g.c, "client ready");
	if (g.c) {
		is_int(smp_client_send(g.c, SIM_REQ(smp_os_echo_request, "x"), SMP_PRIO_INTERACTIVE,
				       0, NULL, NULL, NULL, &id),
		       0, "a request on the client");
		is_int(smp_client_cancel(g.c, id), 0, "cancelled");
		is_int(gw_metrics_get_request(m.metrics, SMP_GROUP_OS, GW_METRICS_CANCELED), 1,
		       "os/canceled");
		g.c = smp_client_unref(g.c);
	}

	gw_metrics_get_totals(m.metrics, &st);
	ok(st.bytes_sent > 0 && st.bytes_received > 0, "live client: bytes sent and received");
	is_int(st.timeouts + st.retransmits, 0, "no timeout yet");

	/* A device that never answers: UDP retries, then a timeout. */
	fd = silent_socket(silent_addr, sizeof(silent_addr));
	quiet = add_udp(silent_addr);
	w = call(quiet, SIM_REQ(smp_os_echo_request, "anyone?"), 5000);
	ok(w.done && w.error == -ETIMEDOUT, "silent device: -ETIMEDOUT");
	is_int(gw_metrics_get_request(m.metrics, SMP_GROUP_OS, GW_METRICS_TIMEOUT), 1, "os/timeout");
	gw_metrics_get_totals(m.metrics, &st2);
	/* The params read (2 expiries, 1 resend) and the echo (2 and 1). */
	is_int(st2.timeouts, 4, "timer expiries counted");
	is_int(st2.retransmits, 2, "retransmits counted");

	/* Links closed: their totals stay. */
	gw_devices_close(m.devices, d);
	gw_devices_close(m.devices, quiet);
	gw_metrics_get_totals(m.metrics, &st);
	ok(st.bytes_sent == st2.bytes_sent && st.bytes_received == st2.bytes_received &&
		   st.timeouts == st2.timeouts && st.retransmits == st2.retransmits,
	   "closed clients: totals kept");

	/* A new link to the same device adds to them. */
	w = call(d, SIM_REQ(smp_os_echo_request, "again"), 5000);
	ok(w.done && w.error == 0, "echo on a new link");
	gw_metrics_get_totals(m.metrics, &st2);
	ok(st2.bytes_sent > st.bytes_sent && st2.bytes_received > st.bytes_received,
	   "new link: totals grow from the closed ones");
	is_int(gw_metrics_get_request(m.metrics, SMP_GROUP_OS, GW_METRICS_OK), 2, "os/ok 2");

	/* A link lost under a request: link_error. */
	w = (struct call){ 0 };
	if (gw_devices_call(m.devices, d, SIM_REQ(smp_os_echo_request, "x"), SMP_PRIO_INTERACTIVE,
			    0, on_call, &w, NULL, NULL) < 0)
		abort();
	gw_registry_set_online(m.registry, d, false);
	sim_test_run_until(m.event, &w.done, 5000);
	ok(w.done && w.error < 0, "device gone offline: the call fails (%d)", w.error);

	gw_metrics_foreach_request(m.metrics, on_request, &gs);
	ok(gs.ordered, "foreach: groups in ascending order");
	is_int(gs.n, 2 * _GW_METRICS_RESULT_MAX, "foreach: every result of the 2 groups seen");
	is_int(gs.os_ok, 2, "foreach: os/ok");

	is_str(gw_metrics_result_to_string(GW_METRICS_LINK_ERROR), "link_error", "result names");
	is_int(gw_metrics_result_of(-ECONNRESET), GW_METRICS_LINK_ERROR, "-ECONNRESET: link_error");
	is_int(gw_metrics_result_of(-ENOTCONN), GW_METRICS_LINK_ERROR, "-ENOTCONN: link_error");
	is_int(gw_metrics_result_of(1), GW_METRICS_DEVICE_ERROR, "1: device_error");

	gw_metrics_count_request(m.metrics, 64, 0);
	is_int(gw_metrics_get_request(m.metrics, 64, GW_METRICS_OK), 1, "a user group counted");

	m.devices = gw_devices_free(m.devices);
	m.metrics = gw_metrics_free(m.metrics);
	m.registry = gw_registry_free(m.registry);
	m.db = db_close(m.db);
	while (sd_event_run(m.event, 0) > 0)
		;
	m.event = sd_event_unref(m.event);
	gw_config_clear(&m.config);
	sim_proc_stop(&p, SIGTERM, 5000);
	free(addr);
	close(fd);
	unlink(path);
}

int main(void)
{
	char p[300];

	if (!mkdtemp(dir))
		abort();
	test_results();
	snprintf(p, sizeof(p), "%s/smpgw.db-wal", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/smpgw.db-shm", dir);
	unlink(p);
	rmdir(dir);
	return tap_done();
}
