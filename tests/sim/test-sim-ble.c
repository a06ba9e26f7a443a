/* test-sim-ble: smp-sim through the fake BlueZ on a private D-Bus: discovery, GATT, limits, resets
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim-test.h"
#include "sim-util.h"
#include "smp-ble-link.h"
#include "smp-image.h"
#include "smp-os.h"
#include "smp-upload.h"
#include "tests/dbus-helper.h"
#include "tests/tap.h"

#define START_MS 10000

static sd_event *event;
static sd_bus *bus;

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
		r = sd_bus_attach_event(b, event, 0);
	if (r < 0) {
		sd_bus_unref(b);
		return r;
	}
	*ret = b;
	return 0;
}

/* Lets the loop (and the bus) run for a while. */
static void spin(unsigned ms)
{
	bool never = false;

	sim_test_run_until(event, &never, ms);
}

/* The Device1 object named name, once discovery has shown it. */
static char *find_device(const char *name, unsigned timeout_ms)
{
	long long deadline = sim_test_now_ms() + timeout_ms;

	while (sim_test_now_ms() < deadline) {
		for (unsigned i = 0; i < 256; i++) {
			char path[64];
			char *n = NULL;

			snprintf(path, sizeof(path), "/org/bluez/hci0/dev_C0_53_49_4D_%02X_%02X",
				 i >> 8, i & 0xff);
			if (sd_bus_get_property_string(bus, "org.bluez", path, "org.bluez.Device1",
						       "Name", NULL, &n) < 0)
				break;
			if (!strcmp(n, name)) {
				free(n);
				return strdup(path);
			}
			free(n);
		}
		spin(50);
	}
	return NULL;
}

static int start_discovery(void)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	int r = sd_bus_call_method(bus, "org.bluez", "/org/bluez/hci0", "org.bluez.Adapter1",
				   "StartDiscovery", &err, NULL, NULL);

	sd_bus_error_free(&err);
	return r;
}

struct link_state {
	bool reported;
	int state;
};

static void on_state(struct smp_transport *t, int state, void *userdata)
{
	struct link_state *s = userdata;

	s->reported = true;
	s->state = state;
}

static void on_packet(struct smp_transport *t, const uint8_t *pkt, size_t len, void *userdata)
{
}

static struct smp_client *client_for(const char *path, bool reassembly)
{
	struct smp_ble_link_config cfg = {.reassembly = reassembly, .setup_timeout_ms = 5000};
	struct smp_client_config ccfg;
	struct smp_transport *t = NULL;
	struct smp_client *c = NULL;
	struct link_state st = {0};

	smp_client_config_init(&ccfg);
	ccfg.timeout_ms = 2000;
	if (smp_ble_link_new(event, bus, path, &cfg, &t) < 0)
		return NULL;
	/* Wait for the link before handing it over, to see its result. */
	smp_transport_set_handlers(t, on_packet, on_state, &st);
	sim_test_run_until(event, &st.reported, 8000);
	if (!st.reported || st.state < 0) {
		tap_diag("link to %s: %s", path, st.reported ? strerror(-st.state) : "no answer");
		smp_transport_free(t);
		return NULL;
	}
	if (smp_client_new(event, t, &ccfg, &c) < 0)
		return NULL;
	return c;
}

static bool echo_ok(struct smp_client *c, const char *text)
{
	struct smp_response *rsp =
	    sim_test_call(event, c, SIM_REQ(smp_os_echo_request, text), 3000, NULL);
	char *s = NULL;
	bool fine = rsp && smp_os_echo_parse(rsp, &s) == 0 && !strcmp(s, text);

	free(s);
	smp_response_free(rsp);
	return fine;
}

struct upload_wait {
	bool done;
	int error;
	struct smp_upload_result res;
};

static void on_upload(int error, const struct smp_upload_result *res, void *userdata)
{
	struct upload_wait *w = userdata;

	w->done = true;
	w->error = error;
	w->res = *res;
}

static void test_main(const char *address)
{
	const char *args[] = {"--ble", "--ble-bus",
			      address, "--count",
			      "3",     "--ble-max-connections",
			      "2",     "--reboot-delay",
			      "200",   "--flash-write-us-per-kib",
			      "0",     NULL};
	struct sim_proc p;
	struct smp_client *c0 = NULL, *c1 = NULL;
	char *path0 = NULL, *path1 = NULL, *path2 = NULL;

	if (sim_proc_start(&p, START_MS, args) < 0) {
		ok(false, "smp-sim --ble starts");
		return;
	}
	{
		char *where = sim_proc_ready(&p, "ble", 1, NULL);

		ok(where && !strcmp(where, "/org/bluez/hci0/dev_C0_53_49_4D_00_01"),
		   "READY ble line per device");
		free(where);
	}
	ok(find_device("sim-0", 300) == NULL, "devices are not on the bus before discovery");
	ok(start_discovery() >= 0, "StartDiscovery");
	path0 = find_device("sim-0", 5000);
	path1 = find_device("sim-1", 5000);
	path2 = find_device("sim-2", 5000);
	ok(path0 && path1 && path2, "three devices discovered with their names");

	c0 = path0 ? client_for(path0, true) : NULL;
	ok(c0 != NULL, "libsmp's BLE link connects to sim-0 (AcquireWrite/AcquireNotify)");
	if (c0) {
		struct upload_wait w = {.error = -ETIMEDOUT};
		struct smp_upload_source src = {.fd = -1};
		struct smp_upload_options opts;
		size_t len;
		uint8_t *img =
		    tap_read_file(tap_srcpath("tests/data/images/hash-only-1.2.3+4.bin"), &len);
		char big[1500];

		ok(echo_ok(c0, "over BLE"), "echo over GATT");
		memset(big, 'z', sizeof(big) - 1);
		big[sizeof(big) - 1] = 0;
		ok(echo_ok(c0, big),
		   "a 1.5 KB request is reassembled by the device, the answer by libsmp");
		src.data = img;
		src.size = len;
		smp_upload_options_init(&opts);
		if (smp_image_upload(c0, &src, &opts, NULL, on_upload, &w, NULL, NULL) == 0)
			sim_test_run_until(event, &w.done, 60000);
		ok(w.done && w.error == 0 && w.res.verified,
		   "70 KB image uploaded over BLE (%u chunks)", w.res.chunks);
		free(img);
	}
	c1 = path1 ? client_for(path1, true) : NULL;
	ok(c1 && echo_ok(c1, "second"), "a second connection");
	if (path2) {
		struct smp_ble_link_config cfg = {.reassembly = true, .setup_timeout_ms = 5000};
		struct smp_transport *t = NULL;
		struct link_state st = {0};

		if (smp_ble_link_new(event, bus, path2, &cfg, &t) == 0) {
			smp_transport_set_handlers(t, on_packet, on_state, &st);
			sim_test_run_until(event, &st.reported, 8000);
		}
		ok(st.reported && st.state == -ECONNABORTED,
		   "a third connection is refused by the adapter (limit 2)");
		smp_transport_free(t);
	}

	/* A reset drops the connection; the device comes back and advertises. */
	if (c0) {
		char *line;

		smp_response_free(
		    sim_test_call(event, c0, SIM_REQ(smp_os_reset_request, false, -1), 2000, NULL));
		line = sim_proc_wait_line(&p, "BOOT id=sim-0", 10000);
		ok(line != NULL, "sim-0 rebooted");
		free(line);
		smp_client_unref(c0);
		c0 = client_for(path0, true);
		ok(c0 && echo_ok(c0, "back"), "reconnected after the reboot");
	}
	smp_client_unref(c0);
	smp_client_unref(c1);
	spin(100);
	is_int(sim_proc_stop(&p, SIGTERM, 5000), 0, "clean exit");
	{
		sd_bus_error err = SD_BUS_ERROR_NULL;
		int has = -1;

		{
			sd_bus_message *reply = NULL;

			if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
					       "org.freedesktop.DBus", "NameHasOwner", &err, &reply,
					       "s", "org.bluez") >= 0)
				sd_bus_message_read(reply, "b", &has);
			sd_bus_message_unref(reply);
		}
		sd_bus_error_free(&err);
		is_int(has, 0, "org.bluez is released after exit");
	}
	free(path0);
	free(path1);
	free(path2);
}

static void test_small_mtu(const char *address)
{
	const char *args[] = {"--ble",
			      "--ble-bus",
			      address,
			      "--att-mtu",
			      "23",
			      "--no-reassembly",
			      "--ble-conn-interval",
			      "15",
			      "--ble-packets-per-event",
			      "1",
			      NULL};
	struct sim_proc p;
	struct smp_client *c;
	char *path;

	if (sim_proc_start(&p, START_MS, args) < 0) {
		ok(false, "smp-sim --att-mtu 23 starts");
		return;
	}
	start_discovery();
	path = find_device("sim-0", 5000);
	c = path ? client_for(path, false) : NULL;
	ok(c != NULL, "connected with ATT MTU 23");
	if (c) {
		struct smp_response *rsp;
		long long t0 = sim_test_now_ms();

		ok(echo_ok(c, "tiny"), "a 15-byte request fits one write");
		/* The answer of params spans two notifications of 20 bytes,
		 * one per 15 ms connection event. */
		rsp = sim_test_call(event, c, SIM_REQ0(smp_os_params_request), 3000, NULL);
		ok(rsp && smp_response_ok(rsp) && sim_test_now_ms() - t0 >= 30,
		   "multi-notification answers reassembled, paced by connection events (%lld ms)",
		   sim_test_now_ms() - t0);
		smp_response_free(rsp);
		smp_client_unref(c);
	}
	/* A client that wrongly assumes reassembly: the device drops the pieces. */
	c = path ? client_for(path, true) : NULL;
	if (c) {
		int err = 0;
		struct smp_response *rsp = sim_test_call(
		    event, c, SIM_REQ(smp_os_echo_request, "this request needs three ATT writes"),
		    1500, &err);

		ok(!rsp && err == -ETIMEDOUT,
		   "without reassembly a split request is never answered");
		smp_response_free(rsp);
		smp_client_unref(c);
	}
	free(path);
	sim_proc_stop(&p, SIGTERM, 5000);
}

int main(void)
{
	struct test_dbus d = {0};
	int r;

	r = test_dbus_start(&d);
	if (r == -ENOENT) {
		printf("1..0 # SKIP dbus-daemon is not installed\n");
		return 0;
	}
	if (r < 0 || sd_event_new(&event) < 0 || bus_open(d.address, &bus) < 0) {
		ok(false, "private bus");
		test_dbus_stop(&d);
		return tap_done();
	}
	test_main(d.address);
	test_small_mtu(d.address);
	sd_bus_flush_close_unref(bus);
	sd_event_unref(event);
	test_dbus_stop(&d);
	return tap_done();
}
