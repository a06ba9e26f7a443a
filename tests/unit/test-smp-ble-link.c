/* test-smp-ble-link: the BLE transport over socketpairs and against the fake BlueZ on a private bus
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "smp-ble-link.h"
#include "tests/dbus-helper.h"
#include "tests/sim/sim-bluez.h"
#include "tests/tap.h"

/* smp-protocol.md §15.1. */
#define V1 "0a000009 00000100 a161646568656c6c6f"
#define V2 "0b00000a 00000100 bf61726568656c6c6fff"
#define V12 "08000001 00011000 a0"
#define V13                                                                                        \
	"0a000089 00011101 a665696d61676500636c656e1888636f666600637368615820a678ce1ed77e9580a875" \
	"bc1f228c15d8438965e671921c6b31d494f69057c7ce646461746158403db8f39600000000200000004000"   \
	"000000000000010100000000000000000000000102030405060708090a0b0c0d0e0f000102030405060708"   \
	"090a0b0c0d0e0f6775706772616465f4"
#define V32                                                                                        \
	"090000f4 00011000 "                                                                       \
	"bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e30646861736858"                 \
	"20644d69c5f2f82ee9a6195ddadf5272cd4aa80ea3205e9824b79a6facf2d4734f68626f6f7461626c65f567" \
	"70656e64696e67f469636f6e6669726d6564f566616374697665f5697065726d616e656e74f4ffbf64736c6f" \
	"74016776657273696f6e65312e312e30646861736858"                                             \
	"20c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f068626f6f7461626c65f567" \
	"70656e64696e67f469636f6e6669726d6564f466616374697665f4697065726d616e656e74f4ffff6b73706c" \
	"697453746174757300ff"

struct sink {
	size_t packets;
	uint8_t *last;
	size_t last_len;
	size_t n_states;
	int state;
	bool free_in_callback;
	struct smp_transport *t;
};

static bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool run_until(sd_event *e, const size_t *count, size_t want, int ms)
{
	long long end = now_ms() + ms;

	while (*count < want && now_ms() < end)
		if (sd_event_run(e, 20 * 1000) < 0)
			return false;
	return *count >= want;
}

static void run_for(sd_event *e, int ms)
{
	long long end = now_ms() + ms;

	while (now_ms() < end)
		sd_event_run(e, 5 * 1000);
}

static void on_packet(struct smp_transport *t, const uint8_t *pkt, size_t len, void *userdata)
{
	struct sink *s = userdata;

	s->packets++;
	free(s->last);
	s->last = malloc(len);
	memcpy(s->last, pkt, len);
	s->last_len = len;
	if (s->free_in_callback) {
		smp_transport_free(t);
		s->t = NULL;
	}
}

static void on_state(struct smp_transport *t, int state, void *userdata)
{
	struct sink *s = userdata;

	(void)t;
	s->n_states++;
	s->state = state;
}

static int send_hex(struct smp_transport *t, const char *hex)
{
	size_t n;
	uint8_t *p = tap_unhex(hex, &n);
	int r = smp_transport_send(t, p, n);

	free(p);
	return r;
}

static bool is_hex(const uint8_t *got, size_t len, const char *hex, const char *name)
{
	size_t n;
	uint8_t *want = tap_unhex(hex, &n);
	bool r = is_mem(got, len, want, n, "%s", name);

	free(want);
	return r;
}

/* ---- over socketpairs ---- */

struct peer {
	int write_end;	/* reads what the link writes */
	int notify_end; /* sends notifications */
};

static void make_link_fds(sd_event *e, size_t mtu, bool reassembly, unsigned gap_ms, struct peer *p,
			  struct smp_transport **t)
{
	struct smp_ble_link_config cfg = {.reassembly = reassembly, .gap_timeout_ms = gap_ms};
	int w[2], n[2];

	socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, w);
	socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, n);
	p->write_end = w[1];
	p->notify_end = n[1];
	fcntl(p->write_end, F_SETFL, O_NONBLOCK);
	if (smp_ble_link_new_fds(e, w[0], n[0], mtu, &cfg, t) < 0)
		*t = NULL;
}

/* Collects the ATT writes the link has made so far. */
static size_t peer_read(struct peer *p, uint8_t *buf, size_t cap, size_t *ret_writes,
			size_t *ret_max)
{
	size_t len = 0;

	*ret_writes = 0;
	*ret_max = 0;
	for (;;) {
		ssize_t n = recv(p->write_end, buf + len, cap - len, MSG_DONTWAIT);

		if (n <= 0)
			return len;
		(*ret_writes)++;
		if ((size_t)n > *ret_max)
			*ret_max = (size_t)n;
		len += (size_t)n;
	}
}

static void peer_notify(struct peer *p, const char *hex, size_t mtu)
{
	size_t n;
	uint8_t *pkt = tap_unhex(hex, &n);

	for (size_t off = 0; off < n; off += mtu - 3) {
		size_t c = n - off < mtu - 3 ? n - off : mtu - 3;
		send(p->notify_end, pkt + off, c, 0);
	}
	free(pkt);
}

static void test_fds(sd_event *e)
{
	struct sink s = {0};
	struct peer p;
	struct smp_transport *t = NULL;
	uint8_t buf[8192];
	size_t writes, max, len;

	is_int(smp_ble_link_new_fds(e, -1, 3, 247, NULL, &t), -EINVAL, "fds: bad fd refused");
	is_int(smp_ble_link_new_fds(e, 0, 0, 22, NULL, &t), -EINVAL, "fds: MTU below 23 refused");

	make_link_fds(e, 247, false, 50, &p, &t);
	ok(t != NULL, "fds: link over socketpairs");
	smp_transport_set_handlers(t, on_packet, on_state, &s);
	is_str(t->ops->name, "ble", "fds: vtable name");
	ok(run_until(e, &s.n_states, 1, 1000) && s.state == 0, "fds: on_state(0) from the loop");
	ok(smp_ble_link_write_acquired(t) && smp_ble_link_notify_acquired(t), "fds: socket mode");
	is_int(smp_ble_link_get_att_mtu(t), 247, "fds: ATT MTU");

	/* §13.4 budgets. */
	is_int(smp_transport_packet_budget(t, 2475), 244, "fds: budget without reassembly");
	is_int(smp_transport_packet_budget(t, 128), 128, "fds: budget below the MTU");

	is_int(send_hex(t, V1), 0, "fds: V1 sent");
	sd_event_run(e, 0);
	len = peer_read(&p, buf, sizeof(buf), &writes, &max);
	is_int(writes, 1, "fds: one ATT write");
	is_hex(buf, len, V1, "fds: the write is V1");

	uint8_t big[300] = {0x0a, 0, 0x01, 0x24};
	is_int(smp_transport_send(t, big, sizeof(big)), -EMSGSIZE,
	       "fds: 300 bytes refused without reassembly");

	/* V32 arrives as 244 + 8 bytes. */
	peer_notify(&p, V32, 247);
	ok(run_until(e, &s.packets, 1, 1000), "fds: answer reassembled");
	is_hex(s.last, s.last_len, V32, "fds: V32 intact");

	/* A stalled answer is dropped after the gap timeout; its late rest does not
	 * complete it (it looks like the start of another packet and times out too), and
	 * the next answer comes through alone. */
	size_t n;
	uint8_t *v32 = tap_unhex(V32, &n);
	send(p.notify_end, v32, 244, 0);
	run_for(e, 150);
	send(p.notify_end, v32 + 244, n - 244, 0);
	run_for(e, 150);
	free(v32);
	peer_notify(&p, V2, 247);
	ok(run_until(e, &s.packets, 2, 1000), "fds: answer after a stalled one");
	run_for(e, 10);
	is_int(s.packets, 2, "fds: the stalled answer was dropped");
	is_hex(s.last, s.last_len, V2, "fds: and the delivered one is V2");

	/* The device side goes away: BlueZ closes the sockets on disconnect. */
	close(p.notify_end);
	ok(run_until(e, &s.n_states, 2, 1000), "fds: hang-up reported");
	is_int(s.state, -ECONNRESET, "fds: on_state(-ECONNRESET)");
	is_int(send_hex(t, V1), -ENOTCONN, "fds: send after hang-up refused");
	smp_transport_free(t);
	close(p.write_end);

	/* With reassembly and the minimum MTU, a request leaves in 20-byte writes. */
	struct sink s2 = {0};
	make_link_fds(e, 23, true, 0, &p, &t);
	smp_transport_set_handlers(t, on_packet, on_state, &s2);
	is_int(smp_transport_packet_budget(t, 2475), 2475, "fds: budget with reassembly");
	is_int(send_hex(t, V13), 0, "fds: 145-byte V13 sent over MTU 23");
	sd_event_run(e, 0);
	len = peer_read(&p, buf, sizeof(buf), &writes, &max);
	is_int(writes, 8, "fds: split into 8 writes");
	is_int(max, 20, "fds: none longer than MTU - 3");
	is_hex(buf, len, V13, "fds: pieces concatenate to V13");
	peer_notify(&p, V32, 23);
	ok(run_until(e, &s2.packets, 1, 1000), "fds: 13 notifications reassembled");
	is_hex(s2.last, s2.last_len, V32, "fds: V32 intact at MTU 23");

	/* A callback may free the link; the next notification is not delivered. */
	s2.free_in_callback = true;
	s2.t = t;
	peer_notify(&p, V2, 23);
	peer_notify(&p, V2, 23);
	ok(run_until(e, &s2.packets, 2, 1000), "fds: delivered to a freeing callback");
	run_for(e, 10);
	is_int(s2.packets, 2, "fds: nothing after free");
	close(p.write_end);
	close(p.notify_end);
	free(s.last);
	free(s2.last);
}

/* ---- against the fake BlueZ ---- */

struct call {
	bool done;
	char error[128];
	sd_bus_message *reply;
};

static int call_done(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct call *c = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	(void)error;
	c->done = true;
	if (e)
		snprintf(c->error, sizeof(c->error), "%s: %s", e->name, e->message ?: "");
	else
		c->reply = sd_bus_message_ref(m);
	return 0;
}

/* An asynchronous call run to completion: the fake BlueZ lives on the same loop, so a
 * blocking call would never be answered. Returns 0 or -1 (error text in c->error). */
static int call(sd_event *e, sd_bus *bus, struct call *c, const char *path, const char *iface,
		const char *member, const char *types, ...)
{
	sd_bus_message *m = NULL;
	va_list ap;
	long long end = now_ms() + 3000;

	memset(c, 0, sizeof(*c));
	sd_bus_message_new_method_call(bus, &m, "org.bluez", path, iface, member);
	if (types) {
		va_start(ap, types);
		sd_bus_message_appendv(m, types, ap);
		va_end(ap);
	}
	sd_bus_call_async(bus, NULL, m, call_done, c, 0);
	sd_bus_message_unref(m);
	while (!c->done && now_ms() < end)
		sd_event_run(e, 20 * 1000);
	if (!c->done)
		snprintf(c->error, sizeof(c->error), "no answer");
	return c->reply ? 0 : -1;
}

static void call_clear(struct call *c)
{
	c->reply = sd_bus_message_unref(c->reply);
}

/* Counts the Device1 objects in a GetManagedObjects answer. */
static size_t count_devices(sd_event *e, sd_bus *bus)
{
	struct call c;
	size_t n = 0;

	if (call(e, bus, &c, "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", NULL) <
	    0)
		return (size_t)-1;
	sd_bus_message_enter_container(c.reply, 'a', "{oa{sa{sv}}}");
	while (sd_bus_message_enter_container(c.reply, 'e', "oa{sa{sv}}") > 0) {
		const char *path;

		sd_bus_message_read(c.reply, "o", &path);
		sd_bus_message_enter_container(c.reply, 'a', "{sa{sv}}");
		while (sd_bus_message_enter_container(c.reply, 'e', "sa{sv}") > 0) {
			const char *iface;

			sd_bus_message_read(c.reply, "s", &iface);
			if (strcmp(iface, "org.bluez.Device1") == 0)
				n++;
			sd_bus_message_skip(c.reply, "a{sv}");
			sd_bus_message_exit_container(c.reply);
		}
		sd_bus_message_exit_container(c.reply);
		sd_bus_message_exit_container(c.reply);
	}
	call_clear(&c);
	return n;
}

struct device_state {
	size_t requests;
	uint8_t *last;
	size_t last_len;
	size_t links_up, links_down;
};

/* A tiny SMP server: V1 -> V2, V12 -> V32, anything else echoed as its response. */
static void device_on_smp(struct sim_bluez_device *dev, const uint8_t *pkt, size_t len,
			  void *userdata)
{
	struct device_state *s = userdata;
	size_t n1, n12;
	uint8_t *v1 = tap_unhex(V1, &n1), *v12 = tap_unhex(V12, &n12);

	s->requests++;
	free(s->last);
	s->last = malloc(len);
	memcpy(s->last, pkt, len);
	s->last_len = len;
	if (len == n1 && memcmp(pkt, v1, n1) == 0) {
		size_t n;
		uint8_t *a = tap_unhex(V2, &n);
		sim_bluez_device_notify(dev, a, n);
		free(a);
	} else if (len == n12 && memcmp(pkt, v12, n12) == 0) {
		size_t n;
		uint8_t *a = tap_unhex(V32, &n);
		sim_bluez_device_notify(dev, a, n);
		free(a);
	} else {
		uint8_t *a = malloc(len);
		memcpy(a, pkt, len);
		a[0] |= 1;
		sim_bluez_device_notify(dev, a, len);
		free(a);
	}
	free(v1);
	free(v12);
}

static void device_on_link(struct sim_bluez_device *dev, bool up, void *userdata)
{
	struct device_state *s = userdata;

	(void)dev;
	if (up)
		s->links_up++;
	else
		s->links_down++;
}

static int bus_open(sd_event *e, const char *address, sd_bus **ret)
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
		r = sd_bus_attach_event(b, e, 0);
	if (r < 0) {
		sd_bus_unref(b);
		return r;
	}
	*ret = b;
	return 0;
}

struct signals {
	size_t added;
	size_t rssi;
};

static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct signals *s = userdata;
	const char *path;

	(void)error;
	if (sd_bus_message_read(m, "o", &path) >= 0 && strstr(path, "/dev_") &&
	    !strstr(path, "/service"))
		s->added++;
	return 0;
}

static int on_device_changed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct signals *s = userdata;
	const char *iface, *key;

	(void)error;
	sd_bus_message_read(m, "s", &iface);
	sd_bus_message_enter_container(m, 'a', "{sv}");
	while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
		sd_bus_message_read(m, "s", &key);
		if (strcmp(key, "RSSI") == 0)
			s->rssi++;
		sd_bus_message_skip(m, "v");
		sd_bus_message_exit_container(m);
	}
	return 0;
}

static void test_discovery(sd_event *e, sd_bus *bus, struct sim_bluez *b)
{
	struct signals sig = {0};
	sd_bus_slot *s1 = NULL, *s2 = NULL;
	struct call c;
	int v = 0;

	sd_bus_match_signal_async(bus, &s1, "org.bluez", "/", "org.freedesktop.DBus.ObjectManager",
				  "InterfacesAdded", on_interfaces_added, NULL, &sig);
	sd_bus_add_match_async(bus, &s2,
			       "type='signal',sender='org.bluez',member='PropertiesChanged',"
			       "path_namespace='/org/bluez/hci0'",
			       on_device_changed, NULL, &sig);

	is_int(count_devices(e, bus), 4, "discovery: only the known devices before discovery");
	ok(call(e, bus, &c, SIM_BLUEZ_ADAPTER_PATH, "org.freedesktop.DBus.Properties", "Get", "ss",
		"org.bluez.Adapter1", "Address") == 0,
	   "discovery: Adapter1.Address readable");
	const char *addr = NULL;
	sd_bus_message_read(c.reply, "v", "s", &addr);
	is_str(addr, "00:AA:01:00:00:01", "discovery: adapter address");
	call_clear(&c);

	ok(call(e, bus, &c, SIM_BLUEZ_ADAPTER_PATH, "org.bluez.Adapter1", "SetDiscoveryFilter",
		"a{sv}", 1, "Bogus", "b", 1) < 0,
	   "discovery: unknown filter key refused");
	ok(strncmp(c.error, "org.bluez.Error.InvalidArguments", 32) == 0, "discovery: %s", c.error);
	ok(call(e, bus, &c, SIM_BLUEZ_ADAPTER_PATH, "org.bluez.Adapter1", "SetDiscoveryFilter",
		"a{sv}", 2, "UUIDs", "as", 1, SMP_BLE_SMP_SERVICE_UUID, "Transport", "s",
		"le") == 0,
	   "discovery: filter on the SMP service");
	call_clear(&c);

	ok(call(e, bus, &c, SIM_BLUEZ_ADAPTER_PATH, "org.bluez.Adapter1", "StartDiscovery", NULL) ==
	       0,
	   "discovery: started");
	call_clear(&c);
	ok(sim_bluez_is_discovering(b), "discovery: Discovering");
	ok(call(e, bus, &c, SIM_BLUEZ_ADAPTER_PATH, "org.bluez.Adapter1", "StartDiscovery", NULL) <
		   0 &&
	       strncmp(c.error, "org.bluez.Error.InProgress", 26) == 0,
	   "discovery: second start from the same client: %s", c.error);
	ok(run_until(e, &sig.added, 4, 2000), "discovery: SMP devices appeared");
	run_for(e, 30);
	is_int(sig.added, 4, "discovery: the device without SMP was filtered out");
	ok(run_until(e, &sig.rssi, 1, 2000), "discovery: RSSI changes while discovering");

	ok(call(e, bus, &c, SIM_BLUEZ_ADAPTER_PATH, "org.bluez.Adapter1", "StopDiscovery", NULL) ==
	       0,
	   "discovery: stopped");
	call_clear(&c);
	ok(call(e, bus, &c, SIM_BLUEZ_ADAPTER_PATH, "org.freedesktop.DBus.Properties", "Get", "ss",
		"org.bluez.Adapter1", "Discovering") == 0,
	   "discovery: Discovering readable");
	sd_bus_message_read(c.reply, "v", "b", &v);
	is_int(v, 0, "discovery: Discovering false");
	call_clear(&c);
	ok(call(e, bus, &c, SIM_BLUEZ_ADAPTER_PATH, "org.bluez.Adapter1", "StopDiscovery", NULL) <
		   0 &&
	       strstr(c.error, "org.bluez.Error.Failed: No discovery started"),
	   "discovery: stop without start: %s", c.error);
	is_int(count_devices(e, bus), 8, "discovery: found devices stay known");

	sd_bus_slot_unref(s1);
	sd_bus_slot_unref(s2);
}

static struct smp_transport *link_up(sd_event *e, sd_bus *bus, struct sim_bluez_device *dev,
				     const struct smp_ble_link_config *cfg, struct sink *s,
				     const char *name)
{
	struct smp_transport *t = NULL;

	is_int(smp_ble_link_new(e, bus, sim_bluez_device_get_path(dev), cfg, &t), 0,
	       "%s: link created", name);
	smp_transport_set_handlers(t, on_packet, on_state, s);
	ok(run_until(e, &s->n_states, 1, 5000), "%s: setup finished", name);
	is_int(s->state, 0, "%s: on_state(0)", name);
	return t;
}

static void test_dbus_links(sd_event *e, sd_bus *bus, struct sim_bluez *b,
			    struct sim_bluez_device *fast, struct sim_bluez_device *slow,
			    struct sim_bluez_device *small)
{
	struct sim_bluez_device_stats st;
	struct device_state *ds = sim_bluez_device_get_userdata(fast);
	struct smp_ble_link_config cfg = {.reassembly = true};
	struct sink s = {0};
	struct smp_transport *t;

	/* The fast path: Connect, ServicesResolved, AcquireNotify, AcquireWrite. */
	t = link_up(e, bus, fast, &cfg, &s, "acquire");
	ok(sim_bluez_device_is_connected(fast), "acquire: the device is connected");
	ok(smp_ble_link_write_acquired(t) && smp_ble_link_notify_acquired(t),
	   "acquire: both directions on sockets");
	is_int(smp_ble_link_get_att_mtu(t), 247, "acquire: MTU is the ATT_MTU BlueZ returns");
	is_int(smp_transport_packet_budget(t, 2475), 2475, "acquire: budget with reassembly");
	is_int(send_hex(t, V1), 0, "acquire: V1 sent");
	ok(run_until(e, &s.packets, 1, 2000), "acquire: answer arrived");
	is_hex(ds->last, ds->last_len, V1, "acquire: the device got V1");
	is_hex(s.last, s.last_len, V2, "acquire: the link delivered V2");

	/* 2000 bytes: nine writes of at most 244 bytes, reassembled by the device. */
	size_t big_len = 2000;
	uint8_t *big = malloc(big_len);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (uint8_t)(i * 13 + 1);
	big[0] = 0x02;
	big[2] = (uint8_t)((big_len - 8) >> 8);
	big[3] = (uint8_t)(big_len - 8);
	sim_bluez_device_get_stats(fast, &st);
	uint64_t writes_before = st.att_writes;
	is_int(smp_transport_send(t, big, big_len), 0, "acquire: 2000-byte request sent");
	ok(run_until(e, &s.packets, 2, 2000), "acquire: 2000-byte answer arrived");
	sim_bluez_device_get_stats(fast, &st);
	is_int(st.att_writes - writes_before, 9, "acquire: nine ATT writes");
	is_int(st.max_write, 244, "acquire: longest write MTU - 3");
	is_mem(ds->last, ds->last_len, big, big_len, "acquire: the device reassembled it");
	big[0] |= 1;
	is_mem(s.last, s.last_len, big, big_len, "acquire: the 2000-byte answer intact");
	free(big);
	ok(st.acquire_write == 1 && st.acquire_notify == 1 && st.write_value == 0,
	   "acquire: no WriteValue used");

	/* BlueZ's answers while the sockets are held. */
	const char *chr = sim_bluez_device_get_char_path(fast);
	struct call c;
	ok(call(e, bus, &c, chr, "org.bluez.GattCharacteristic1", "AcquireWrite", "a{sv}", 0) < 0 &&
	       streq(c.error, "org.bluez.Error.NotPermitted: Write acquired"),
	   "gatt: second AcquireWrite: %s", c.error);
	ok(call(e, bus, &c, chr, "org.bluez.GattCharacteristic1", "AcquireNotify", "a{sv}", 0) <
		   0 &&
	       streq(c.error, "org.bluez.Error.NotPermitted: Notify acquired"),
	   "gatt: second AcquireNotify: %s", c.error);
	ok(call(e, bus, &c, chr, "org.bluez.GattCharacteristic1", "WriteValue", "aya{sv}", 1, 0x00,
		0) < 0 &&
	       streq(c.error, "org.bluez.Error.NotPermitted: Write acquired"),
	   "gatt: WriteValue while acquired: %s", c.error);
	ok(call(e, bus, &c, chr, "org.bluez.GattCharacteristic1", "StartNotify", NULL) < 0 &&
	       streq(c.error, "org.bluez.Error.NotPermitted: Notify acquired"),
	   "gatt: StartNotify while acquired: %s", c.error);
	ok(call(e, bus, &c, chr, "org.bluez.GattCharacteristic1", "ReadValue", "a{sv}", 0) < 0 &&
	       streq(c.error, "org.bluez.Error.NotPermitted: Read not permitted"),
	   "gatt: ReadValue: %s", c.error);
	ok(call(e, bus, &c, sim_bluez_device_get_path(fast), "org.bluez.Device1", "Connect",
		NULL) == 0,
	   "gatt: Connect when connected succeeds");
	call_clear(&c);
	ok(call(e, bus, &c, chr, "org.freedesktop.DBus.Properties", "Get", "ss",
		"org.bluez.GattCharacteristic1", "MTU") == 0,
	   "gatt: MTU property");
	uint16_t mtu = 0;
	sd_bus_message_read(c.reply, "v", "q", &mtu);
	is_int(mtu, 247, "gatt: MTU property is the ATT_MTU");
	call_clear(&c);

	/* Link loss as BlueZ reports it. */
	sim_bluez_device_drop_connection(fast);
	ok(run_until(e, &s.n_states, 2, 2000), "acquire: link loss reported");
	is_int(s.state, -ECONNRESET, "acquire: on_state(-ECONNRESET)");
	is_int(send_hex(t, V1), -ENOTCONN, "acquire: send while down refused");
	/* And back. */
	is_int(smp_ble_link_connect(t), 0, "acquire: reconnect started");
	ok(run_until(e, &s.n_states, 3, 5000) && s.state == 0, "acquire: up again");
	is_int(send_hex(t, V1), 0, "acquire: V1 after reconnect");
	ok(run_until(e, &s.packets, 3, 2000), "acquire: answer after reconnect");
	sim_bluez_device_get_stats(fast, &st);
	is_int(st.connects, 2, "acquire: the device saw two connections");

	/* The daemon frees a connection slot. */
	is_int(smp_ble_link_disconnect(t), 0, "acquire: disconnect requested");
	ok(run_until(e, &s.n_states, 4, 2000), "acquire: disconnect reported");
	is_int(s.state, -ENOTCONN, "acquire: on_state(-ENOTCONN)");
	run_for(e, 30);
	ok(!sim_bluez_device_is_connected(fast), "acquire: BlueZ disconnected the device");
	smp_transport_free(t);
	free(s.last);

	/* The fallback: no Acquire, MTU 23 from the MTU property, no reassembly. */
	struct sink s2 = {0};
	struct device_state *ds2 = sim_bluez_device_get_userdata(slow);
	cfg.reassembly = false;
	t = link_up(e, bus, slow, &cfg, &s2, "fallback");
	ok(!smp_ble_link_write_acquired(t) && !smp_ble_link_notify_acquired(t),
	   "fallback: WriteValue and StartNotify");
	is_int(smp_ble_link_get_att_mtu(t), 23, "fallback: MTU from the characteristic");
	is_int(smp_transport_packet_budget(t, 2475), 20, "fallback: budget MTU - 3");
	is_int(send_hex(t, V13), -EMSGSIZE, "fallback: 145 bytes refused without reassembly");
	is_int(send_hex(t, V1), 0, "fallback: V1 sent");
	ok(run_until(e, &s2.packets, 1, 2000), "fallback: answer through Value changes");
	is_hex(ds2->last, ds2->last_len, V1, "fallback: the device got V1 by WriteValue");
	is_hex(s2.last, s2.last_len, V2, "fallback: V2 delivered");
	is_int(send_hex(t, V12), 0, "fallback: image state read sent");
	ok(run_until(e, &s2.packets, 2, 2000), "fallback: 13 notifications reassembled");
	is_hex(s2.last, s2.last_len, V32, "fallback: V32 intact");
	sim_bluez_device_get_stats(slow, &st);
	ok(st.write_value == 2 && st.acquire_write == 0, "fallback: two WriteValue calls");
	is_int(st.notifications, 14, "fallback: 1 + 13 notifications");

	const char *chr2 = sim_bluez_device_get_char_path(slow);
	ok(call(e, bus, &c, chr2, "org.bluez.GattCharacteristic1", "AcquireWrite", "a{sv}", 0) <
		   0 &&
	       streq(c.error, "org.bluez.Error.NotSupported: Operation is not supported"),
	   "gatt: AcquireWrite unsupported: %s", c.error);
	uint8_t v21[21] = {0};
	sd_bus_message *wm = NULL;
	sd_bus_message_new_method_call(bus, &wm, "org.bluez", chr2, "org.bluez.GattCharacteristic1",
				       "WriteValue");
	sd_bus_message_append_array(wm, 'y', v21, sizeof(v21));
	sd_bus_message_append(wm, "a{sv}", 1, "type", "s", "command");
	memset(&c, 0, sizeof(c));
	sd_bus_call_async(bus, NULL, wm, call_done, &c, 0);
	sd_bus_message_unref(wm);
	long long until = now_ms() + 2000;
	while (!c.done && now_ms() < until)
		sd_event_run(e, 20 * 1000);
	ok(streq(c.error, "org.bluez.Error.Failed: Failed to initiate write"),
	   "gatt: WriteValue longer than MTU - 3: %s", c.error);
	ok(call(e, bus, &c, chr2, "org.bluez.GattCharacteristic1", "WriteValue", "aya{sv}", 1, 0x00,
		1, "type", "s", "request") < 0 &&
	       streq(c.error, "org.bluez.Error.NotPermitted: Write not permitted"),
	   "gatt: write request on a write-command characteristic: %s", c.error);
	ok(call(e, bus, &c, chr2, "org.bluez.GattCharacteristic1", "StartNotify", NULL) == 0,
	   "gatt: StartNotify again from the same client succeeds");
	call_clear(&c);
	ok(call(e, bus, &c, sim_bluez_device_get_path(small), "org.bluez.Device1", "Disconnect",
		NULL) < 0 &&
	       streq(c.error, "org.bluez.Error.NotConnected: Not Connected"),
	   "gatt: Disconnect of an idle device: %s", c.error);

	/* The device object vanishes. */
	sim_bluez_remove_device(slow);
	ok(run_until(e, &s2.n_states, 2, 2000), "fallback: removal reported");
	is_int(s2.state, -ECONNRESET, "fallback: on_state(-ECONNRESET)");
	smp_transport_free(t);
	free(s2.last);

	/* A link configured for reassembly to a device without it: the device drops the
	 * pieces, as Zephyr does; with the right configuration send() refuses. */
	struct sink s3 = {0};
	struct device_state *ds3 = sim_bluez_device_get_userdata(small);
	cfg.reassembly = true;
	t = link_up(e, bus, small, &cfg, &s3, "no-reassembly");
	is_int(smp_ble_link_get_att_mtu(t), 23, "no-reassembly: ATT MTU 23 acquired");
	is_int(send_hex(t, V13), 0, "no-reassembly: V13 split into writes anyway");
	is_int(send_hex(t, V1), 0, "no-reassembly: then V1 in one write");
	ok(run_until(e, &s3.packets, 1, 2000), "no-reassembly: V1 answered");
	sim_bluez_device_get_stats(small, &st);
	is_int(st.requests, 1, "no-reassembly: only V1 reached the SMP server");
	is_int(st.requests_dropped, 8, "no-reassembly: the 8 pieces of V13 were dropped");
	is_hex(ds3->last, ds3->last_len, V1, "no-reassembly: last request V1");
	smp_ble_link_disconnect(t);
	ok(run_until(e, &s3.n_states, 2, 2000) && s3.state == -ENOTCONN,
	   "no-reassembly: disconnected");
	smp_transport_free(t);
	free(s3.last);
	(void)b;
}

static void wait_disconnected(sd_event *e, struct sim_bluez_device *dev)
{
	long long end = now_ms() + 2000;

	while (sim_bluez_device_is_connected(dev) && now_ms() < end)
		sd_event_run(e, 20 * 1000);
}

static void test_dbus_failures(sd_event *e, sd_bus *bus, struct sim_bluez *b,
			       struct sim_bluez_device **devs)
{
	struct smp_ble_link_config cfg = {0};
	struct sink s[8] = {0};
	struct smp_transport *t[8] = {0};

	/* A device that connects but offers no SMP characteristic. */
	is_int(smp_ble_link_new(e, bus, sim_bluez_device_get_path(devs[3]), &cfg, &t[0]), 0,
	       "no-smp: link created");
	smp_transport_set_handlers(t[0], on_packet, on_state, &s[0]);
	ok(run_until(e, &s[0].n_states, 1, 3000), "no-smp: setup finished");
	is_int(s[0].state, -EPROTONOSUPPORT, "no-smp: on_state(-EPROTONOSUPPORT)");
	ok(sim_bluez_device_is_connected(devs[3]), "no-smp: the link left the device connected");
	is_int(smp_ble_link_disconnect(t[0]), 0, "no-smp: disconnect after a failed setup");
	wait_disconnected(e, devs[3]);
	ok(!sim_bluez_device_is_connected(devs[3]), "no-smp: BlueZ disconnected it");
	run_for(e, 10);
	is_int(s[0].n_states, 1, "no-smp: no second report for a link that was down");

	/* Two connections fill the adapter (max_connections = 2). */
	t[1] = link_up(e, bus, devs[0], &cfg, &s[1], "limit-1");
	t[2] = link_up(e, bus, devs[5], &cfg, &s[2], "limit-2");
	is_int(sim_bluez_connection_count(b), 2, "limit: two connections");
	is_int(smp_ble_link_new(e, bus, sim_bluez_device_get_path(devs[2]), &cfg, &t[3]), 0,
	       "limit: third link created");
	smp_transport_set_handlers(t[3], on_packet, on_state, &s[3]);
	ok(run_until(e, &s[3].n_states, 1, 3000), "limit: third setup finished");
	is_int(s[3].state, -ECONNABORTED, "limit: le-connection-abort-by-local -> -ECONNABORTED");
	ok(!sim_bluez_device_is_connected(devs[2]), "limit: the third device is not connected");
	smp_ble_link_disconnect(t[1]);
	smp_ble_link_disconnect(t[2]);
	wait_disconnected(e, devs[0]);
	wait_disconnected(e, devs[5]);
	is_int(sim_bluez_connection_count(b), 0, "limit: both disconnected");

	/* Out of range. */
	is_int(smp_ble_link_new(e, bus, sim_bluez_device_get_path(devs[4]), &cfg, &t[4]), 0,
	       "unreachable: link created");
	smp_transport_set_handlers(t[4], on_packet, on_state, &s[4]);
	ok(run_until(e, &s[4].n_states, 1, 3000), "unreachable: setup finished");
	is_int(s[4].state, -ECONNABORTED, "unreachable: on_state(-ECONNABORTED)");

	/* No such object. */
	is_int(smp_ble_link_new(e, bus, "/org/bluez/hci0/dev_00_00_00_00_00_99", &cfg, &t[5]), 0,
	       "unknown: link created");
	smp_transport_set_handlers(t[5], on_packet, on_state, &s[5]);
	ok(run_until(e, &s[5].n_states, 1, 3000), "unknown: setup finished");
	is_int(s[5].state, -ENODEV, "unknown: on_state(-ENODEV)");
	is_int(smp_ble_link_new(e, bus, "not a path", &cfg, &t[7]), -EINVAL, "unknown: bad path");

	/* Setup is bounded: services that take too long to resolve. */
	cfg.setup_timeout_ms = 100;
	is_int(smp_ble_link_new(e, bus, sim_bluez_device_get_path(devs[7]), &cfg, &t[6]), 0,
	       "timeout: link created");
	smp_transport_set_handlers(t[6], on_packet, on_state, &s[6]);
	ok(run_until(e, &s[6].n_states, 1, 3000), "timeout: setup finished");
	is_int(s[6].state, -ETIMEDOUT, "timeout: on_state(-ETIMEDOUT)");
	smp_ble_link_disconnect(t[6]);

	/* Created idle, connected on demand. */
	cfg.setup_timeout_ms = 0;
	cfg.no_autoconnect = true;
	is_int(smp_ble_link_new(e, bus, sim_bluez_device_get_path(devs[2]), &cfg, &t[7]), 0,
	       "on-demand: link created without connecting");
	smp_transport_set_handlers(t[7], on_packet, on_state, &s[7]);
	run_for(e, 30);
	ok(s[7].n_states == 0 && !sim_bluez_device_is_connected(devs[2]),
	   "on-demand: nothing happens before connect");
	is_int(send_hex(t[7], V1), -ENOTCONN, "on-demand: send before up refused");
	is_int(smp_ble_link_connect(t[7]), 0, "on-demand: connect");
	ok(run_until(e, &s[7].n_states, 1, 3000) && s[7].state == 0, "on-demand: up");
	is_int(send_hex(t[7], V1), 0, "on-demand: V1 sent");
	ok(run_until(e, &s[7].packets, 1, 2000), "on-demand: answered");

	for (size_t i = 0; i < 8; i++) {
		smp_transport_free(t[i]);
		free(s[i].last);
	}
	run_for(e, 20);
}

/* The throughput model: 7.5 ms connection interval, 2 packets per event and direction.
 * 2000 bytes at MTU 247 are 9 writes (5 events) and 9 notifications (5 events). */
static void test_throughput(sd_event *e, sd_bus *bus, struct sim_bluez_device *dev)
{
	struct smp_ble_link_config cfg = {.reassembly = true};
	struct sink s = {0};
	struct smp_transport *t = link_up(e, bus, dev, &cfg, &s, "throughput");
	size_t len = 2000;
	uint8_t *pkt = calloc(1, len);
	long long start;

	pkt[0] = 0x02;
	pkt[2] = (uint8_t)((len - 8) >> 8);
	pkt[3] = (uint8_t)(len - 8);
	start = now_ms();
	is_int(smp_transport_send(t, pkt, len), 0, "throughput: 2000 bytes sent");
	ok(run_until(e, &s.packets, 1, 3000), "throughput: answered");
	long long took = now_ms() - start;
	ok(took >= 70, "throughput: 10 connection events of 7.5 ms (%lld ms)", took);
	is_int(s.last_len, len, "throughput: whole answer");
	smp_ble_link_disconnect(t);
	smp_transport_free(t);
	free(s.last);
	free(pkt);
	run_for(e, 20);
}

static void test_dbus(sd_event *e)
{
	struct test_dbus d = {0};
	sd_bus *sim_bus = NULL, *bus = NULL;
	struct sim_bluez *b = NULL;
	struct sim_bluez_config cfg = {.max_connections = 2, .rssi_interval_ms = 20};
	struct device_state st[9] = {0};
	struct sim_bluez_device *devs[9];
	const struct sim_bluez_device_config dcfg[9] = {
	    {.address = "c0:ff:ee:00:00:01",
	     .name = "smp-fast",
	     .att_mtu = 247,
	     .reassembly = true},
	    {.address = "C0:FF:EE:00:00:02", .name = "smp-slow", .att_mtu = 23, .no_acquire = true},
	    {.address = "C0:FF:EE:00:00:03", .att_mtu = 23},
	    {.address = "C0:FF:EE:00:00:04",
	     .name = "battery",
	     .no_smp_service = true,
	     .known = true},
	    {.address = "C0:FF:EE:00:00:05", .name = "far-away", .unreachable = true},
	    {.address = "C0:FF:EE:00:00:06", .name = "known", .known = true},
	    {.address = "C0:FF:EE:00:00:07", .name = "thermometer", .no_smp_service = true},
	    {.address = "C0:FF:EE:00:00:08",
	     .name = "sluggish",
	     .known = true,
	     .resolve_delay_ms = 5000},
	    {.address = "C0:FF:EE:00:00:09",
	     .name = "throttled",
	     .known = true,
	     .att_mtu = 247,
	     .reassembly = true,
	     .conn_interval_us = 7500,
	     .packets_per_event = 2},
	};
	int r;

	r = test_dbus_start(&d);
	is_int(r, 0, "dbus: private dbus-daemon started");
	if (r < 0)
		return;
	ok(bus_open(e, d.address, &sim_bus) == 0 && bus_open(e, d.address, &bus) == 0,
	   "dbus: two connections");
	is_int(sim_bluez_new(e, sim_bus, &cfg, &b), 0, "dbus: fake BlueZ owns org.bluez");
	for (size_t i = 0; i < 9; i++) {
		struct sim_bluez_device_config c = dcfg[i];

		c.on_smp_packet = device_on_smp;
		c.on_link = device_on_link;
		c.userdata = &st[i];
		is_int(sim_bluez_add_device(b, &c, &devs[i]), 0, "dbus: device %zu added", i);
	}
	is_int(sim_bluez_add_device(b, &dcfg[0], NULL), -EEXIST, "dbus: duplicate address refused");
	struct sim_bluez_device_config badmtu = {.address = "C0:FF:EE:00:00:09", .att_mtu = 600};
	is_int(sim_bluez_add_device(b, &badmtu, NULL), -EINVAL, "dbus: MTU 600 refused");
	is_str(sim_bluez_device_get_path(devs[0]), "/org/bluez/hci0/dev_C0_FF_EE_00_00_01",
	       "dbus: object path from the address");

	test_discovery(e, bus, b);
	test_dbus_links(e, bus, b, devs[0], devs[1], devs[2]);
	ok(st[0].links_up == 2 && st[0].links_down == 2, "dbus: on_link saw both sessions");
	test_dbus_failures(e, bus, b, devs);
	test_throughput(e, bus, devs[8]);

	sim_bluez_free(b);
	sd_bus_flush_close_unref(bus);
	sd_bus_flush_close_unref(sim_bus);
	for (size_t i = 0; i < 9; i++)
		free(st[i].last);
	test_dbus_stop(&d);
}

int main(void)
{
	sd_event *e = NULL;
	struct test_dbus probe = {0};

	/* Skipped only when there is no dbus-daemon at all. */
	if (test_dbus_start(&probe) == -ENOENT) {
		printf("1..0 # SKIP dbus-daemon not installed\n");
		return 77;
	}
	test_dbus_stop(&probe);

	if (sd_event_new(&e) < 0)
		return 1;
	test_fds(e);
	test_dbus(e);
	sd_event_unref(e);
	return tap_done();
}
