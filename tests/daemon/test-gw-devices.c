/* test-gw-devices: shared clients, links on demand, offline fail-fast, uploads, the BLE budget */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/gw-devices.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "db/db.h"
#include "lib/macro.h"
#include "lib/smp-os.h"
#include "lib/smp-upload.h"
#include "tests/dbus-helper.h"
#include "tests/sim/sim-test.h"
#include "tests/tap.h"

#define START_MS 10000
#define IMAGE "tests/data/images/hash-only-1.2.3+4.bin"

static char dir[] = "/tmp/smpgw-test-devices-XXXXXX";
static struct gw_manager m;

/* ---- the manager, as smpgwd builds it, with what gw-devices needs ---- */

static void start(void)
{
	char path[256], err[256] = "";
	int r;

	memset(&m, 0, sizeof(m));
	if (sd_event_new(&m.event) < 0 || gw_config_init(&m.config) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/db-%d.sqlite", dir, rand());
	r = db_open(path, &m.db, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "db_open: %s\n", err);
		abort();
	}
	m.config.timeout_ms = 1000;
	if (gw_registry_new(&m, &m.registry) < 0)
		abort();
}

static void start_devices(void)
{
	if (gw_devices_new(&m, &m.devices) < 0)
		abort();
}

static void stop(void)
{
	m.devices = gw_devices_free(m.devices);
	m.registry = gw_registry_free(m.registry);
	m.db = db_close(m.db);
	/* Links freed from inside their own callbacks go in a deferred source. */
	while (sd_event_run(m.event, 0) > 0)
		;
	m.bluez_bus = sd_bus_flush_close_unref(m.bluez_bus);
	m.event = sd_event_unref(m.event);
	gw_config_clear(&m.config);
}

static struct gw_device *add_device(enum gw_transport t, const char *identity, const char *address,
				    bool online)
{
	struct gw_device_spec spec = {
		.transport = t,
		.identity = identity,
		.address = address,
		.source = GW_SOURCE_API,
	};
	struct gw_device *d = NULL;

	if (gw_registry_upsert(m.registry, &spec, &d) < 0)
		abort();
	gw_registry_set_online(m.registry, d, online);
	return d;
}

static struct gw_device *add_udp(const char *address, bool online)
{
	char identity[128];

	snprintf(identity, sizeof(identity), "udp:%s", address);
	return add_device(GW_TRANSPORT_UDP, identity, address, online);
}

/* Runs the loop until pred() holds or timeout_ms pass. */
static bool run_until(bool (*pred)(void *), void *userdata, unsigned timeout_ms)
{
	long long deadline = sim_test_now_ms() + timeout_ms;

	while (!pred(userdata)) {
		long long left = deadline - sim_test_now_ms();

		if (left <= 0)
			return false;
		if (sd_event_run(m.event, (uint64_t)left * 1000) < 0)
			return false;
	}
	return true;
}

static void spin(unsigned ms)
{
	bool never = false;

	sim_test_run_until(m.event, &never, ms);
}

/* ---- calls ---- */

struct call {
	bool done;
	int error;
	bool had_client;
	char *echo;
	unsigned destroyed;
	long long at_ms;
};

static void on_call(struct smp_client *c, int error, const struct smp_response *rsp, void *userdata)
{
	struct call *w = userdata;

	w->done = true;
	w->error = error;
	w->had_client = c != NULL;
	w->at_ms = sim_test_now_ms();
	if (error == 0 && smp_os_echo_parse(rsp, &w->echo) < 0)
		w->error = -EBADMSG;
}

static void on_call_destroy(void *userdata)
{
	struct call *w = userdata;

	w->destroyed++;
}

static int echo_async(struct gw_device *d, const char *text, struct call *w, unsigned flags,
		      uint64_t *ret_id)
{
	struct smp_request *req = SIM_REQ(smp_os_echo_request, text);

	*w = (struct call){0};
	return gw_devices_call_flags(m.devices, d, req, SMP_PRIO_INTERACTIVE, 0, flags, on_call, w,
				     on_call_destroy, ret_id);
}

static bool echo_wait(struct call *w, unsigned timeout_ms)
{
	return sim_test_run_until(m.event, &w->done, timeout_ms);
}

/* Echo through gw_devices_call(): 0 when the device echoed text. */
static int echo(struct gw_device *d, const char *text)
{
	struct call w;
	int r = echo_async(d, text, &w, 0, NULL);

	if (r < 0)
		return r;
	if (!echo_wait(&w, 8000))
		return -ETIME;
	r = w.error;
	if (r == 0 && (!w.echo || strcmp(w.echo, text)))
		r = -EBADMSG;
	free(w.echo);
	return r;
}

struct get {
	bool done;
	int error;
	struct smp_client *c;
	unsigned destroyed;
};

static void on_get(struct gw_devices *ds, int error, struct smp_client *c, void *userdata)
{
	struct get *g = userdata;

	g->done = true;
	g->error = error;
	g->c = c; /* compared only, never used after the loop moved on */
}

static void on_get_destroy(void *userdata)
{
	struct get *g = userdata;

	g->destroyed++;
}

static bool start_sim(struct sim_proc *p, const char *const *args)
{
	int r = sim_proc_start(p, START_MS, args);

	if (r < 0)
		tap_diag("smp-sim did not start: %s", strerror(-r));
	return r == 0;
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

static bool has_data(int fd, unsigned timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	long long deadline = sim_test_now_ms() + timeout_ms;

	/* The loop must run meanwhile: a send would happen from it. */
	while (sim_test_now_ms() < deadline) {
		spin(20);
		if (poll(&pfd, 1, 0) > 0)
			return true;
	}
	return false;
}

static void drain(int fd)
{
	char junk[2048];

	while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
}

/* ---- UDP: sharing, on demand, fail fast, cancel, close ---- */

static void test_udp(void)
{
	const char *args[] = {"--udp", "127.0.0.1:0", "--count", "2", NULL};
	struct sim_proc p;
	struct gw_device *a, *b, *off;
	struct get g1 = {0}, g2 = {0}, g3 = {0};
	struct call w;
	char *addr0, *addr1, silent[64];
	uint64_t id, seen;
	int fd, r;

	start();
	start_devices();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim --udp starts");
		stop();
		return;
	}
	addr0 = sim_proc_ready(&p, "udp", 0, NULL);
	addr1 = sim_proc_ready(&p, "udp", 1, NULL);
	a = add_udp(addr0, true);
	b = add_udp(addr1, true);

	ok(!gw_devices_has_link(m.devices, a), "no link before the first call");
	is_int(gw_devices_get_client(m.devices, a, on_get, &g1, on_get_destroy, NULL), 0,
	       "get_client queues");
	is_int(gw_devices_get_client(m.devices, a, on_get, &g2, on_get_destroy, NULL), 0,
	       "a second caller queues");
	ok(!g1.done && !g2.done, "callbacks never run inside the call");
	ok(gw_devices_has_link(m.devices, a), "the link is opened on demand");
	sim_test_run_until(m.event, &g2.done, 3000);
	ok(g1.done && g2.done && g1.error == 0 && g2.error == 0, "both callers get a client");
	ok(g1.c && g1.c == g2.c, "one client shared by both callers");
	ok(g1.destroyed == 1 && g2.destroyed == 1, "destroy ran once each");
	is_int(gw_devices_get_client(m.devices, b, on_get, &g3, NULL, NULL), 0, "get_client b");
	sim_test_run_until(m.event, &g3.done, 3000);
	ok(g3.error == 0 && g3.c && g3.c != g1.c, "another device has its own client");

	is_int(echo(a, "shared"), 0, "a call through gw_devices_call is answered");
	is_int(echo(b, "other"), 0, "and on the other device");
	ok(gw_devices_has_link(m.devices, a), "the link stays open after the call");

	/* The device is marked seen when a packet arrives. */
	seen = a->last_seen_ms;
	while (gw_now_ms() <= seen)
		spin(2);
	seen = gw_now_ms();
	is_int(echo(a, "seen"), 0, "another call");
	ok(a->last_seen_ms >= seen, "its answer updates last_seen");

	/* Cancel before the answer: destroy now, no callback. */
	r = echo_async(a, "cancelled", &w, 0, &id);
	is_int(r, 0, "call queued");
	is_int(gw_devices_cancel(m.devices, id), 0, "cancelled while waiting");
	ok(w.destroyed == 1, "destroy ran at cancel");
	spin(300);
	ok(!w.done && w.destroyed == 1, "the callback never runs");
	is_int(gw_devices_cancel(m.devices, id), -ENOENT, "a second cancel finds nothing");
	is_int(echo(a, "after-cancel"), 0, "the client still works after a cancel");

	/* A device that never answers: cancel once sent. */
	fd = silent_socket(silent, sizeof(silent));
	off = add_udp(silent, true);
	r = echo_async(off, "sent", &w, 0, &id);
	ok(r == 0 && has_data(fd, 2000), "a call reaches the silent device");
	is_int(gw_devices_cancel(m.devices, id), 0, "cancelled once handed to the client");
	ok(!w.done && w.destroyed == 1, "no callback, destroy once");
	spin(300);
	ok(!w.done && w.destroyed == 1, "still no callback");
	drain(fd);

	/* Offline: fail fast, no packet, no link. */
	gw_registry_set_online(m.registry, off, false);
	ok(!gw_devices_has_link(m.devices, off), "offline: its link is closed");
	is_int(echo_async(off, "nobody", &w, 0, NULL), 0, "call to an offline device queues");
	ok(!w.done, "its failure still comes from the loop");
	echo_wait(&w, 1000);
	ok(w.done && w.error == -EHOSTDOWN && !w.had_client, "offline: -EHOSTDOWN without a client");
	ok(w.destroyed == 1, "and destroy");
	ok(!gw_devices_has_link(m.devices, off), "no link was opened");
	ok(!has_data(fd, 200), "nothing was sent to the device");
	g1 = (struct get){0};
	gw_devices_get_client(m.devices, off, on_get, &g1, NULL, NULL);
	sim_test_run_until(m.event, &g1.done, 1000);
	ok(g1.done && g1.error == -EHOSTDOWN && !g1.c, "get_client: -EHOSTDOWN too");
	is_int(echo_async(off, "probe", &w, GW_DEVICES_PROBE, NULL), 0, "a probe goes out anyway");
	ok(has_data(fd, 2000), "the probe reaches the offline device");
	gw_devices_close(m.devices, off);
	echo_wait(&w, 1000);
	ok(w.done && w.error == -ECONNRESET && !w.had_client,
	   "gw_devices_close fails the call in flight with -ECONNRESET");
	ok(!gw_devices_has_link(m.devices, off), "and the link is gone");
	close(fd);

	/* Going offline closes the link; removal frees everything. */
	gw_registry_set_online(m.registry, b, false);
	ok(!gw_devices_has_link(m.devices, b), "offline closes the link");
	is_int(echo(b, "x"), -EHOSTDOWN, "then calls fail fast");
	gw_registry_set_online(m.registry, b, true);
	is_int(echo(b, "back"), 0, "back online: a new link on demand");
	r = echo_async(b, "removed", &w, 0, NULL);
	gw_registry_remove(m.registry, b);
	echo_wait(&w, 1000);
	ok(w.done && w.error == -ECANCELED && w.destroyed == 1,
	   "a call of a removed device ends with -ECANCELED");

	/* Hold counts. */
	gw_devices_hold(m.devices, a);
	gw_devices_hold(m.devices, a);
	gw_devices_release(m.devices, a);
	ok(gw_devices_is_held(m.devices, a), "holds are counted");
	gw_devices_release(m.devices, a);
	ok(!gw_devices_is_held(m.devices, a), "released");
	gw_devices_release(m.devices, a);
	ok(!gw_devices_is_held(m.devices, a), "an extra release is harmless");

	/* A call still waiting when the module goes: -ECANCELED, destroy. */
	r = echo_async(a, "teardown", &w, 0, NULL);
	m.devices = gw_devices_free(m.devices);
	ok(w.done && w.error == -ECANCELED && w.destroyed == 1, "free ends waiting calls");

	free(addr0);
	free(addr1);
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- MCUmgr params from the registry (gw-devices.c) ---- */

/* The command id of the next SMP request the silent device gets (group 0
 * only: echo 0, params 6), -1 when none comes within timeout_ms. */
static int next_os_command(int fd, unsigned timeout_ms)
{
	uint8_t pkt[2048];
	ssize_t n;

	if (!has_data(fd, timeout_ms))
		return -1;
	n = recv(fd, pkt, sizeof(pkt), MSG_DONTWAIT);
	if (n < 8 || pkt[4] != 0 || pkt[5] != 0)
		return -2;
	return pkt[7];
}

/* Sends an echo to the silent device and returns the first command it gets. */
static int first_command(struct gw_device *d, int fd)
{
	struct call w;
	uint64_t id;
	int cmd;

	long long deadline;

	drain(fd);
	if (echo_async(d, "x", &w, 0, &id) < 0)
		return -3;
	cmd = next_os_command(fd, 2000);
	(void)gw_devices_cancel(m.devices, id);
	/* The next call opens a new client: this one goes once its requests
	 * timed out (test_params_seed() makes that quick). */
	deadline = sim_test_now_ms() + 3000;
	while (!gw_devices_close_idle(m.devices, d) && d->live && sim_test_now_ms() < deadline)
		spin(20);
	drain(fd);
	return d->live && gw_devices_has_link(m.devices, d) ? -4 : cmd;
}

static json_t *params(unsigned size, unsigned count)
{
	return json_pack("{sIsI}", "buf_size", (json_int_t)size, "buf_count", (json_int_t)count);
}

static struct smp_client *client_of(struct gw_device *d)
{
	struct get g = {0};

	if (gw_devices_get_client(m.devices, d, on_get, &g, NULL, NULL) < 0 ||
	    !sim_test_run_until(m.event, &g.done, 2000) || g.error < 0)
		return NULL;
	return g.c;
}

static void test_params_seed(void)
{
	struct gw_device *d, *bare;
	struct smp_client *c;
	char address[64], other[64];
	int fd, fd2;

	start();
	m.config.timeout_ms = 100;
	m.config.retries = 0;
	start_devices();
	fd = silent_socket(address, sizeof(address));
	fd2 = silent_socket(other, sizeof(other));
	d = add_udp(address, true);
	bare = add_udp(other, true);
	is_int(first_command(bare, fd2), 6, "nothing reported: the client reads params first");
	is_int(gw_registry_set_reported(m.registry, d, "params", params(1024, 4)), 0,
	       "params reported");
	is_int(first_command(d, fd), 0, "reported: the echo goes out first, no params read");
	c = client_of(d);
	ok(c && smp_client_get_buf_size(c) == 1024 && smp_client_get_buf_count(c) == 4 &&
		   smp_client_get_window(c) == 3,
	   "the client starts with buf_size 1024, buf_count 4 (window 3)");
	gw_registry_set_reported(m.registry, d, "params", params(512, 2));
	ok(c && smp_client_get_buf_size(c) == 512 && smp_client_get_buf_count(c) == 2,
	   "a new report updates the live client");
	gw_registry_set_reported(m.registry, d, "params", params(10, 4));
	ok(c && smp_client_get_buf_size(c) == SMP_CLIENT_FALLBACK_BUF_SIZE &&
		   smp_client_get_buf_count(c) == 1,
	   "an unusable report: the client's fallback, as for such an answer");
	gw_registry_set_reported(m.registry, d, "params", params(1024, 4));
	ok(gw_devices_close_idle(m.devices, d), "its link closed");

	/* A reset (what the rollout engine closes the link for): the device may
	 * run other firmware, so its params are read again, until reported. */
	gw_devices_close(m.devices, d);
	is_int(first_command(d, fd), 6, "after gw_devices_close: params read again");
	gw_registry_set_reported(m.registry, d, "params", params(1024, 4));
	is_int(first_command(d, fd), 0, "reported again: trusted again");
	gw_registry_set_online(m.registry, d, false);
	gw_registry_set_online(m.registry, d, true);
	is_int(first_command(d, fd), 6, "after being offline: params read again");
	gw_registry_set_reported(m.registry, d, "params", params(1024, 4));

	/* What the client would not take from the device is not seeded. */
	gw_registry_set_reported(m.registry, d, "params", params(10, 4));
	is_int(first_command(d, fd), 6, "buf_size 10: not seeded");
	gw_registry_set_reported(m.registry, d, "params",
				 json_pack("{sssI}", "buf_size", "big", "buf_count",
					   (json_int_t)4));
	is_int(first_command(d, fd), 6, "a string buf_size: not seeded");
	gw_registry_set_reported(m.registry, d, "params", params(1024, 4));
	is_int(first_command(d, fd), 0, "sane again: seeded");
	m.devices = gw_devices_free(m.devices);

	/* Without polling nobody refreshes them: never seeded. */
	m.config.poll_interval_ms = 0;
	start_devices();
	is_int(first_command(d, fd), 6, "[poll] interval 0: params read by the client");
	close(fd);
	close(fd2);
	stop();
}

/* ---- an interactive call while an upload runs on the same client ---- */

struct upload {
	bool done;
	int error;
	uint64_t progress;
	struct call echo;
	bool echo_sent;
	bool echo_before_done;
	long long echo_sent_ms;
	struct gw_device *d;
};

static void on_progress(uint64_t off, uint64_t total, void *userdata)
{
	struct upload *u = userdata;

	u->progress = off;
	if (!u->echo_sent && off > 0 && off < total / 2) {
		u->echo_sent = true;
		u->echo_sent_ms = sim_test_now_ms();
		echo_async(u->d, "while uploading", &u->echo, 0, NULL);
	}
}

static void on_upload_done(int error, const struct smp_upload_result *res, void *userdata)
{
	struct upload *u = userdata;

	u->done = true;
	u->error = error;
	u->echo_before_done = u->echo.done;
}

static void test_upload(void)
{
	const char *args[] = {"--udp", "127.0.0.1:0", "--flash-write-us-per-kib", "20000", NULL};
	struct smp_upload_source src = {.fd = -1};
	struct smp_upload_options opts;
	struct upload u = {0};
	struct sim_proc p;
	struct get g = {0};
	uint8_t *img;
	size_t len;
	char *addr;

	start();
	start_devices();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	addr = sim_proc_ready(&p, "udp", 0, NULL);
	u.d = add_udp(addr, true);
	img = tap_read_file(tap_srcpath(IMAGE), &len);
	src.data = img;
	src.size = len;

	gw_devices_get_client(m.devices, u.d, on_get, &g, NULL, NULL);
	sim_test_run_until(m.event, &g.done, 3000);
	ok(g.error == 0 && g.c, "client for the upload");
	gw_devices_hold(m.devices, u.d);
	smp_upload_options_init(&opts);
	opts.first_timeout_ms = m.config.upload_first_timeout_ms;
	is_int(smp_image_upload(g.c, &src, &opts, on_progress, on_upload_done, &u, NULL, NULL), 0,
	       "upload started on the shared client");
	sim_test_run_until(m.event, &u.done, 60000);
	ok(u.done && u.error == 0, "upload finished: %s", strerror(-u.error));
	ok(u.echo_sent, "an echo was sent while the upload ran");
	ok(u.echo_before_done, "the echo was answered before the upload ended");
	ok(u.echo.error == 0 && u.echo.echo && !strcmp(u.echo.echo, "while uploading"),
	   "with the right answer");
	ok(u.echo.at_ms - u.echo_sent_ms < 1000,
	   "within one chunk's round trip, not after the upload (%lld ms)",
	   u.echo.at_ms - u.echo_sent_ms);
	ok(gw_devices_is_held(m.devices, u.d), "held during the upload");
	gw_devices_release(m.devices, u.d);
	free(u.echo.echo);
	free(img);
	free(addr);
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- serial: a PTY, the port stays open ---- */

static void test_serial(void)
{
	char link[256];
	const char *args[] = {"--serial", "--pty-link", link, NULL};
	struct sim_proc p;
	struct gw_device *d;

	snprintf(link, sizeof(link), "%s/tty-sim", dir);
	start();
	start_devices();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim --serial starts");
		stop();
		return;
	}
	d = add_device(GW_TRANSPORT_SERIAL, "tty:sim", link, true);
	is_int(echo(d, "over the serial port"), 0, "echo over the device's PTY (console framing)");
	ok(gw_devices_has_link(m.devices, d), "the port stays open");
	is_int(echo(d, "again"), 0, "and is used again");
	gw_devices_close(m.devices, d);
	ok(!gw_devices_has_link(m.devices, d), "closed on request");
	is_int(echo(d, "reopened"), 0, "reopened on demand");
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- BLE: the budget ---- */

static unsigned max_ble;

static int on_post(sd_event_source *s, void *userdata)
{
	if (m.devices)
		max_ble = MAX(max_ble, gw_devices_ble_connections(m.devices));
	return 0;
}

static int bus_open(const char *address, sd_bus **ret)
{
	sd_bus *b = NULL;
	int r;

	r = sd_bus_new(&b);
	if (r >= 0)
		r = sd_bus_set_address(b, address);
	if (r >= 0)
		r = sd_bus_set_bus_client(b, 1);
	if (r >= 0)
		r = sd_bus_start(b);
	if (r >= 0)
		r = sd_bus_attach_event(b, m.event, 0);
	if (r < 0) {
		sd_bus_unref(b);
		return r;
	}
	*ret = b;
	return 0;
}

static bool object_exists(const char *path)
{
	char *n = NULL;
	int r = sd_bus_get_property_string(m.bluez_bus, "org.bluez", path, "org.bluez.Device1",
					   "Name", NULL, &n);

	free(n);
	return r >= 0;
}

/* Discovery as gw-bluez would do it; the registry gets the devices. */
static bool ble_setup(struct sim_proc *p, const char *bus_address, unsigned n,
		      struct gw_device **devs)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	int r;

	if (bus_open(bus_address, &m.bluez_bus) < 0)
		return false;
	r = sd_bus_call_method(m.bluez_bus, "org.bluez", "/org/bluez/hci0", "org.bluez.Adapter1",
			       "StartDiscovery", &err, NULL, NULL);
	sd_bus_error_free(&err);
	if (r < 0)
		return false;
	for (unsigned i = 0; i < n; i++) {
		char *path = sim_proc_ready(p, "ble", i, NULL), *mac = sim_proc_ready(p, "ble", i, "addr");
		char identity[64];
		long long deadline = sim_test_now_ms() + 5000;

		while (!object_exists(path) && sim_test_now_ms() < deadline)
			spin(50);
		snprintf(identity, sizeof(identity), "ble:%s", mac);
		devs[i] = add_device(GW_TRANSPORT_BLE, identity, path, true);
		r = object_exists(path);
		free(path);
		free(mac);
		if (!r)
			return false;
	}
	return true;
}

static bool no_ble_links(void *userdata)
{
	return gw_devices_ble_connections(m.devices) == 0;
}

struct upload_wait {
	bool done;
	int error;
	uint64_t progress;
};

static void on_ble_progress(uint64_t off, uint64_t total, void *userdata)
{
	struct upload_wait *u = userdata;

	u->progress = off;
}

static void on_ble_upload(int error, const struct smp_upload_result *res, void *userdata)
{
	struct upload_wait *u = userdata;

	u->done = true;
	u->error = error;
}

static bool upload_going(void *userdata)
{
	struct upload_wait *u = userdata;

	return u->done || u->progress > 4096;
}

static void test_ble(void)
{
	struct test_dbus bus = {0};
	struct sim_proc p;
	struct gw_device *dev[3], *ghost;
	struct smp_upload_source src = {.fd = -1};
	struct upload_wait up = {0};
	struct call wb;
	struct get g = {0};
	sd_event_source *post = NULL;
	long long t0;
	uint8_t *img;
	size_t len;
	int r;

	r = test_dbus_start(&bus);
	if (r == -ENOENT) {
		tap_skip("dbus-daemon is not installed", "BLE budget");
		return;
	}
	ok(r == 0, "private dbus-daemon");
	if (r < 0)
		return;
	{
		/* The adapter itself refuses a third connection: the budget must
		 * never get there. */
		const char *args[] = {"--ble", "--ble-bus", bus.address, "--count", "3",
				      "--ble-max-connections", "2", NULL};

		if (!start_sim(&p, args)) {
			ok(false, "smp-sim --ble starts");
			test_dbus_stop(&bus);
			return;
		}
	}
	start();
	m.config.ble_max_connections = 2;
	m.config.ble_idle_timeout_ms = 60000;
	start_devices();
	sd_event_add_post(m.event, &post, on_post, NULL);
	ok(ble_setup(&p, bus.address, 3, dev), "three BLE devices discovered");

	is_int(echo(dev[0], "a"), 0, "echo over BLE to device 0 (connects on demand)");
	is_int(gw_devices_ble_connections(m.devices), 1, "one BLE link");
	is_int(echo(dev[1], "b"), 0, "echo to device 1");
	is_int(gw_devices_ble_connections(m.devices), 2, "two BLE links");
	is_int(echo(dev[0], "a again"), 0, "device 0 used again: device 1 is least recently used");
	is_int(echo(dev[2], "c"), 0, "device 2 gets a link beyond the budget of two");
	ok(!gw_devices_has_link(m.devices, dev[1]), "the least recently used idle link was closed");
	ok(gw_devices_has_link(m.devices, dev[0]) && gw_devices_has_link(m.devices, dev[2]),
	   "the others stay");
	is_int(gw_devices_ble_connections(m.devices), 2, "still two links");

	/* Device 0 uploads (held), device 2 is held: device 1 must wait. */
	img = tap_read_file(tap_srcpath(IMAGE), &len);
	src.data = img;
	src.size = len;
	gw_devices_hold(m.devices, dev[0]);
	gw_devices_get_client(m.devices, dev[0], on_get, &g, NULL, NULL);
	sim_test_run_until(m.event, &g.done, 3000);
	is_int(smp_image_upload(g.c, &src, NULL, on_ble_progress, on_ble_upload, &up, NULL, NULL), 0,
	       "upload on device 0 started");
	gw_devices_hold(m.devices, dev[2]);
	is_int(echo_async(dev[1], "waits", &wb, 0, NULL), 0, "call to device 1 queued");
	ok(run_until(upload_going, &up, 20000) && !up.done, "the upload runs");
	ok(!wb.done, "device 1 waits rather than fails while both links are held");
	is_int(gw_devices_ble_connections(m.devices), 2, "two links");
	ok(gw_devices_has_link(m.devices, dev[0]), "the uploading link was not evicted");
	gw_devices_release(m.devices, dev[2]);
	echo_wait(&wb, 8000);
	ok(wb.done && wb.error == 0 && wb.echo && !strcmp(wb.echo, "waits"),
	   "released: the waiting call is answered");
	free(wb.echo);
	ok(!gw_devices_has_link(m.devices, dev[2]) && gw_devices_has_link(m.devices, dev[0]),
	   "the released link made room, the uploading one stayed");
	sim_test_run_until(m.event, &up.done, 60000);
	is_int(up.error, 0, "the upload over BLE completed");
	gw_devices_release(m.devices, dev[0]);
	ok(max_ble <= 2, "never more than two BLE links at once (max %u)", max_ble);
	free(img);

	/* Background work does not queue when everything is held. */
	gw_devices_hold(m.devices, dev[0]);
	gw_devices_hold(m.devices, dev[1]);
	echo_async(dev[2], "bg", &wb, GW_DEVICES_BACKGROUND, NULL);
	echo_wait(&wb, 2000);
	ok(wb.done && wb.error == -EBUSY, "a background call fails with -EBUSY instead of waiting");
	gw_devices_release(m.devices, dev[0]);
	gw_devices_release(m.devices, dev[1]);

	/* A device object that does not exist: the waiting call gets the error. */
	ghost = add_device(GW_TRANSPORT_BLE, "ble:C0:53:49:4D:0F:0F",
			   "/org/bluez/hci0/dev_C0_53_49_4D_0F_0F", true);
	r = echo(ghost, "ghost");
	ok(r == -ENODEV, "a missing device object fails the call (%s)", strerror(-r));
	ok(!gw_devices_has_link(m.devices, ghost), "and leaves no link");
	ok(gw_devices_ble_connections(m.devices) <= 2, "its slot was given back");

	/* Idle timeout, with a fresh module. */
	m.devices = gw_devices_free(m.devices);
	m.config.ble_idle_timeout_ms = 400;
	start_devices();
	is_int(echo(dev[1], "idle"), 0, "a new link");
	t0 = sim_test_now_ms();
	ok(run_until(no_ble_links, NULL, 5000), "an idle link is closed");
	ok(sim_test_now_ms() - t0 >= 350, "after the idle timeout (%lld ms)", sim_test_now_ms() - t0);
	gw_devices_hold(m.devices, dev[1]);
	is_int(echo(dev[1], "held"), 0, "a held link");
	spin(1200);
	ok(gw_devices_has_link(m.devices, dev[1]), "is not closed for idleness");
	gw_devices_release(m.devices, dev[1]);
	ok(run_until(no_ble_links, NULL, 5000), "closed once released and idle");
	ok(max_ble <= 2, "never more than two BLE links at once");

	sd_event_source_disable_unref(post);
	stop();
	sim_proc_stop(&p, SIGTERM, 5000);
	test_dbus_stop(&bus);
}

int main(void)
{
	if (!mkdtemp(dir))
		abort();
	gw_log_setup(getenv("TEST_LOG") ? getenv("TEST_LOG") : "err", getenv("TEST_DEBUG"));
	test_udp();
	test_params_seed();
	test_upload();
	test_serial();
	test_ble();
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			tap_diag("could not remove %s", dir);
	}
	return tap_done();
}
