/* test-gw-uart: PTY hotplug through a watched glob with smp-sim, non-SMP ports, tty enumeration */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-device.h>
#include <unistd.h>

#include "daemon/gw-config.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-uart.h"
#include "db/db.h"
#include "lib/macro.h"
#include "tests/sim/sim-test.h"
#include "tests/tap.h"

#define WAIT_MS 10000

static char dir[] = "/tmp/smpgw-test-uart-XXXXXX";

static const char *tmp_path(const char *name)
{
	static char p[4][256];
	static unsigned next;
	char *s = p[next++ % ELEMENTSOF(p)];

	snprintf(s, sizeof(p[0]), "%s/%s", dir, name);
	return s;
}

/* Every state change the module reports, to count probes. */
struct seen {
	char path[256];
	enum gw_uart_port_state state;
};
static struct seen seen[1024];
static size_t n_seen;

static void on_port(struct gw_uart *u, const char *path, enum gw_uart_port_state state,
		    void *userdata)
{
	if (n_seen < ELEMENTSOF(seen)) {
		snprintf(seen[n_seen].path, sizeof(seen[0].path), "%s", path);
		seen[n_seen].state = state;
		n_seen++;
	}
}

static unsigned count_seen(const char *path, enum gw_uart_port_state state)
{
	unsigned n = 0;

	for (size_t i = 0; i < n_seen; i++)
		n += strcmp(seen[i].path, path) == 0 && seen[i].state == state;
	return n;
}

/* The manager as smpgwd builds it, with the registry and the config in text. */
static void start(struct gw_manager *m, const char *dbname, const char *conf)
{
	char err[256] = "";
	FILE *f;
	int r;

	memset(m, 0, sizeof(*m));
	if (sd_event_new(&m->event) < 0 || gw_config_init(&m->config) < 0)
		abort();
	f = fopen(tmp_path("smpgwd.conf"), "we");
	if (!f || fputs(conf, f) < 0 || fclose(f) != 0)
		abort();
	if (gw_config_load(&m->config, tmp_path("smpgwd.conf"), NULL, NULL) < 0)
		abort();
	r = db_open(tmp_path(dbname), &m->db, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "db_open: %s\n", err);
		abort();
	}
	r = gw_registry_new(m, &m->registry);
	if (r < 0)
		abort();
}

static void stop(struct gw_manager *m)
{
	m->uart = gw_uart_free(m->uart);
	m->registry = gw_registry_free(m->registry);
	m->db = db_close(m->db);
	m->event = sd_event_unref(m->event);
	gw_config_clear(&m->config);
}

/* Runs the loop until cond holds or timeout_ms passes; no sleeping. */
static bool run_until(struct gw_manager *m, bool (*cond)(struct gw_manager *, const void *),
		      const void *arg, unsigned timeout_ms)
{
	long long deadline = sim_test_now_ms() + timeout_ms;

	while (!cond(m, arg)) {
		long long left = deadline - sim_test_now_ms();

		if (left <= 0)
			return false;
		if (sd_event_run(m->event, (uint64_t)left * 1000) < 0)
			return false;
	}
	return true;
}

/* Runs whatever is ready now, without waiting. */
static void run_pending(struct gw_manager *m)
{
	while (sd_event_run(m->event, 0) > 0)
		;
}

struct want_state {
	const char *path;
	enum gw_uart_port_state state;
};

static bool port_is(struct gw_manager *m, const void *arg)
{
	const struct want_state *w = arg;

	return gw_uart_get_port_state(m->uart, w->path) == w->state;
}

static bool wait_port(struct gw_manager *m, const char *path, enum gw_uart_port_state state)
{
	struct want_state w = { path, state };

	return run_until(m, port_is, &w, WAIT_MS);
}

struct want_online {
	const char *identity;
	bool online;
};

static bool device_is(struct gw_manager *m, const void *arg)
{
	const struct want_online *w = arg;
	struct gw_device *d = gw_registry_find_identity(m->registry, w->identity);

	return d && d->online == w->online;
}

static bool wait_online(struct gw_manager *m, const char *identity, bool online)
{
	struct want_online w = { identity, online };

	return run_until(m, device_is, &w, WAIT_MS);
}

static const char *identity_of(const char *path)
{
	static char s[300];

	snprintf(s, sizeof(s), "tty:%s", path);
	return s;
}

static int start_sim(struct sim_proc *p)
{
	const char *args[] = { "--serial", "--count", "2", "--pty-link", tmp_path("sim%u"), "-q",
			       NULL };

	return sim_proc_start(p, WAIT_MS, args);
}

/* A PTY with nothing behind it, reached through a link in the watched directory. */
struct bare_pty {
	int master, slave;
	char name[128];
};

static void bare_open(struct bare_pty *b, const char *link)
{
	if (openpty(&b->master, &b->slave, b->name, NULL, NULL) < 0)
		abort();
	if (fcntl(b->master, F_SETFL, O_NONBLOCK) < 0)
		abort();
	if (symlink(b->name, link) < 0)
		abort();
}

static ssize_t drain(int fd, uint8_t *buf, size_t size)
{
	ssize_t n, total = 0;

	while ((n = read(fd, buf + total, size - (size_t)total)) > 0 && (size_t)total < size) {
		total += n;
		if ((size_t)total == size)
			break;
	}
	return total;
}

/* A PTY that answers every write with console noise and a frame that does not decode. */
static unsigned junk_answers;

static int junk_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	static const char junk[] = "*** Booting something else ***\r\n\x06\x09QUFBQUFB!!\n"
				   "\x06\x09\n\x04\x14garbage\n$ ";
	uint8_t buf[512];

	if (read(fd, buf, sizeof(buf)) > 0 && write(fd, junk, sizeof(junk) - 1) > 0)
		junk_answers++;
	return 0;
}

static void test_watch(void)
{
	struct gw_manager m;
	struct sim_proc sim;
	struct bare_pty bare = { -1, -1, "" }, junk = { -1, -1, "" };
	sd_event_source *junk_src = NULL;
	struct gw_device *d;
	json_t *v;
	uint8_t buf[4096];
	struct stat st;
	char conf[1024], id[128];
	size_t devices;

	snprintf(conf, sizeof(conf),
		 "[smp]\ntimeout = 400ms\n"
		 "[serial]\nmatch = no-real-tty-matches-this\n"
		 "watch = %s/sim*, %s/bare*,%s/junk*\nwatch_interval = 200ms\n"
		 "[device bench]\ntransport = serial\naddress = %s/sim1\n",
		 dir, dir, dir, dir);
	start(&m, "watch.db", conf);
	is_int(gw_uart_new(&m, &m.uart), 0, "new");
	gw_uart_set_port_observer(m.uart, on_port, NULL);
	is_int(gw_uart_start(m.uart), 0, "start");
	is_int(gw_uart_start(m.uart), -EALREADY, "a second start is refused");

	/* Hotplug: the links appear after the start. */
	is_int(start_sim(&sim), 0, "smp-sim with two PTYs");
	ok(wait_online(&m, identity_of(tmp_path("sim0")), true),
	   "the PTY link that appeared was probed and is an online device");
	d = gw_registry_find_identity(m.registry, identity_of(tmp_path("sim0")));
	ok(d != NULL, "registered as tty:<link>");
	if (!d)
		goto out;
	snprintf(id, sizeof(id), "%s", d->id);
	is_str(d->name, "sim-0", "named after the node name in OS info");
	is_str(d->address, tmp_path("sim0"), "the address is the link");
	is_int(d->transport, GW_TRANSPORT_SERIAL, "serial");
	is_int(d->source, GW_SOURCE_DISCOVERED, "discovered");
	v = gw_registry_get_reported(d, "params", NULL);
	is_int(json_integer_value(json_object_get(v, "buf_size")), 2048, "params: buf_size");
	is_int(json_integer_value(json_object_get(v, "buf_count")), 4, "params: buf_count");
	v = json_object_get(gw_registry_get_reported(d, "info", NULL), "output");
	ok(json_string_value(v) && strncmp(json_string_value(v), "Zephyr sim-0 v4.1.0 ", 20) == 0,
	   "info: the device's \"a\" answer (%s)", json_string_value(v));
	is_int(gw_uart_get_port_state(m.uart, tmp_path("sim0")), GW_UART_PORT_SMP, "port: smp");
	ok(wait_port(&m, tmp_path("sim1"), GW_UART_PORT_CONFIGURED),
	   "the port of [device bench] is left alone");
	is_int(count_seen(tmp_path("sim1"), GW_UART_PORT_PROBING), 0, "... never probed");
	ok(!gw_registry_find_identity(m.registry, identity_of(tmp_path("sim1"))),
	   "... and not registered by discovery");

	/* A PTY where nothing answers. */
	bare_open(&bare, tmp_path("bare0"));
	ok(wait_port(&m, tmp_path("bare0"), GW_UART_PORT_NOT_SMP), "a silent PTY is not SMP");
	ok(drain(bare.master, buf, sizeof(buf)) > 2 && buf[0] == 0x06 && buf[1] == 0x09,
	   "it was sent a framed SMP request");
	ok(!gw_registry_find_identity(m.registry, identity_of(tmp_path("bare0"))),
	   "and is not a device");

	/* A PTY that answers with noise. */
	if (openpty(&junk.master, &junk.slave, junk.name, NULL, NULL) < 0 ||
	    fcntl(junk.master, F_SETFL, O_NONBLOCK) < 0 ||
	    sd_event_add_io(m.event, &junk_src, junk.master, EPOLLIN, junk_on_io, NULL) < 0 ||
	    symlink(junk.name, tmp_path("junk0")) < 0)
		abort();
	ok(wait_port(&m, tmp_path("junk0"), GW_UART_PORT_NOT_SMP),
	   "a PTY answering garbage is not SMP");
	ok(junk_answers > 0, "it did answer (%u times)", junk_answers);
	ok(!gw_registry_find_identity(m.registry, identity_of(tmp_path("junk0"))),
	   "and is not a device");

	/* Remembered: a rescan does not probe them again. */
	is_int(gw_uart_rescan(m.uart), 0, "rescan");
	run_pending(&m);
	is_int(count_seen(tmp_path("bare0"), GW_UART_PORT_PROBING), 1, "the silent PTY: one probe");
	is_int(count_seen(tmp_path("junk0"), GW_UART_PORT_PROBING), 1, "the noisy PTY: one probe");
	is_int(drain(bare.master, buf, sizeof(buf)), 0, "nothing more was sent to it");
	is_int(gw_uart_get_port_state(m.uart, tmp_path("bare0")), GW_UART_PORT_NOT_SMP,
	       "still not SMP");
	is_int(count_seen(tmp_path("sim0"), GW_UART_PORT_PROBING), 1, "the SMP port: one probe");

	/* Re-plugged (link removed and made again): probed again. */
	unlink(tmp_path("bare0"));
	ok(wait_port(&m, tmp_path("bare0"), GW_UART_PORT_NONE), "link removed: port gone");
	if (symlink(bare.name, tmp_path("bare0")) < 0)
		abort();
	ok(wait_port(&m, tmp_path("bare0"), GW_UART_PORT_NOT_SMP), "plugged again: judged again");
	is_int(count_seen(tmp_path("bare0"), GW_UART_PORT_PROBING), 2, "... after a second probe");

	/* Reload: the junk glob is dropped, its port with it. */
	snprintf(conf, sizeof(conf), "%s/sim*,%s/bare*", dir, dir);
	is_int(gw_config_set(&m.config, "serial", "watch", conf), 0, "watch without junk*");
	is_int(gw_uart_reload(m.uart), 0, "reload");
	is_int(gw_uart_get_port_state(m.uart, tmp_path("junk0")), GW_UART_PORT_NONE,
	       "a path no glob covers any more is forgotten");
	is_int(gw_uart_get_port_state(m.uart, tmp_path("sim0")), GW_UART_PORT_SMP,
	       "the probed port is kept");
	is_int(count_seen(tmp_path("sim0"), GW_UART_PORT_PROBING), 1, "... and not probed again");
	is_int(gw_uart_get_port_state(m.uart, tmp_path("sim1")), GW_UART_PORT_CONFIGURED,
	       "the configured port is still left alone");

	/* The simulator ends: its links go, the device goes offline. */
	ok(WIFEXITED(sim_proc_stop(&sim, SIGTERM, WAIT_MS)), "smp-sim stopped");
	ok(wait_online(&m, identity_of(tmp_path("sim0")), false), "link removed: device offline");
	is_int(gw_uart_get_port_state(m.uart, tmp_path("sim0")), GW_UART_PORT_NONE, "port gone");
	devices = gw_registry_count(m.registry);

	/* Restarted: a new PTY behind the same link, the same device again. */
	is_int(start_sim(&sim), 0, "smp-sim restarted");
	ok(wait_online(&m, identity_of(tmp_path("sim0")), true), "online again");
	d = gw_registry_find_identity(m.registry, identity_of(tmp_path("sim0")));
	is_str(d ? d->id : NULL, id, "the same device");
	is_int(gw_registry_count(m.registry), devices, "no new device");

	/* Killed: the link stays but leads nowhere; the rescan notices. */
	ok(WIFSIGNALED(sim_proc_stop(&sim, SIGKILL, WAIT_MS)), "smp-sim killed");
	ok(lstat(tmp_path("sim0"), &st) == 0 && stat(tmp_path("sim0"), &st) < 0,
	   "its link is left dangling");
	ok(wait_online(&m, identity_of(tmp_path("sim0")), false), "the rescan takes it offline");

	/* Ports present at start are probed at start. */
	m.uart = gw_uart_free(m.uart);
	is_int(start_sim(&sim), 0, "smp-sim started again");
	n_seen = 0;
	is_int(gw_uart_new(&m, &m.uart), 0, "a new uart module");
	gw_uart_set_port_observer(m.uart, on_port, NULL);
	is_int(gw_uart_start(m.uart), 0, "started with the link present");
	ok(wait_online(&m, identity_of(tmp_path("sim0")), true), "probed at start: online");
	is_int(count_seen(tmp_path("sim0"), GW_UART_PORT_PROBING), 1, "one probe");
	ok(WIFEXITED(sim_proc_stop(&sim, SIGTERM, WAIT_MS)), "smp-sim stopped");
	ok(wait_online(&m, identity_of(tmp_path("sim0")), false), "offline");
out:
	sd_event_source_disable_unref(junk_src);
	stop(&m);
	close(bare.master);
	close(bare.slave);
	close(junk.master);
	close(junk.slave);
	unlink(tmp_path("bare0"));
	unlink(tmp_path("junk0"));
	unlink(tmp_path("sim0"));
	unlink(tmp_path("sim1"));
}

/* The real ttys of this machine, as sd-device lists them. */
static size_t list_ttys(char ***ret_nodes, char ***ret_names)
{
	sd_device_enumerator *e = NULL;
	char **nodes = NULL, **names = NULL;
	size_t n = 0;

	if (sd_device_enumerator_new(&e) < 0 ||
	    sd_device_enumerator_add_match_subsystem(e, "tty", 1) < 0 ||
	    sd_device_enumerator_allow_uninitialized(e) < 0)
		abort();
	for (sd_device *d = sd_device_enumerator_get_device_first(e); d;
	     d = sd_device_enumerator_get_device_next(e)) {
		const char *node, *name;

		if (sd_device_get_devname(d, &node) < 0 || sd_device_get_sysname(d, &name) < 0)
			continue;
		nodes = realloc(nodes, (n + 1) * sizeof(*nodes));
		names = realloc(names, (n + 1) * sizeof(*names));
		nodes[n] = strdup(node);
		names[n] = strdup(name);
		n++;
	}
	sd_device_enumerator_unref(e);
	*ret_nodes = nodes;
	*ret_names = names;
	return n;
}

static size_t count_state(struct gw_uart *u, char **nodes, size_t n, enum gw_uart_port_state s)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += gw_uart_get_port_state(u, nodes[i]) == s;
	return k;
}

static void test_enumerate(void)
{
	struct gw_manager m;
	char **nodes, **names, conf[1024];
	size_t n = list_ttys(&nodes, &names), pick = n;
	const char *base;
	struct stat st;

	tap_diag("%zu ttys on this machine", n);
	/* Every tty matches the name glob, but none is this USB device. */
	start(&m, "enum.db", "[serial]\nmatch = tty*,console,ptmx\nusb_ids = ffff:fffe\n");
	is_int(gw_uart_new(&m, &m.uart), 0, "new");
	gw_uart_set_port_observer(m.uart, on_port, NULL);
	n_seen = 0;
	is_int(gw_uart_start(m.uart), 0, "start");
	is_int(count_state(m.uart, nodes, n, GW_UART_PORT_SKIPPED), n,
	       "every tty was enumerated and skipped: none has USB id ffff:fffe");
	is_int(n_seen, n, "one decision each, no probe");
	is_int(gw_registry_count(m.registry), 0, "no device");
	stop(&m);

	for (size_t i = 0; i < n && pick == n; i++)
		if (stat(nodes[i], &st) == 0 && S_ISCHR(st.st_mode) &&
		    strncmp(names[i], "tty", 3) == 0)
			pick = i;
	if (pick == n) {
		tap_skip("no tty device node here", "a name rule accepts a real tty");
		goto out;
	}

	/* A rule that accepts one real tty by name: used by a [device], so it
	 * is recognised without being probed (a real port is not written to). */
	snprintf(conf, sizeof(conf),
		 "[serial]\nmatch = %s\n[device real]\ntransport = serial\naddress = %s\n",
		 names[pick], nodes[pick]);
	start(&m, "enum.db", conf);
	is_int(gw_uart_new(&m, &m.uart), 0, "new");
	is_int(gw_uart_start(m.uart), 0, "start");
	is_int(gw_uart_get_port_state(m.uart, nodes[pick]), GW_UART_PORT_CONFIGURED,
	       "%s is matched by its name, and left to its [device]", nodes[pick]);
	is_int(count_state(m.uart, nodes, n, GW_UART_PORT_SKIPPED), n - 1, "the others skipped");

	/* By path glob, and an unreadable usb_ids entry matching nothing. */
	/* A glob that matches this one path only: the others must not be probed. */
	base = strrchr(nodes[pick], '/') + 1;
	snprintf(conf, sizeof(conf), "%.*s[%c]%s", (int)(base - nodes[pick]), nodes[pick], base[0],
		 base + 1);
	is_int(gw_config_set(&m.config, "serial", "match", conf), 0, "match by path %s", conf);
	is_int(gw_config_set(&m.config, "serial", "usb_ids", "zzzz"), 0, "bad usb_ids");
	is_int(gw_uart_reload(m.uart), 0, "reload");
	is_int(gw_uart_get_port_state(m.uart, nodes[pick]), GW_UART_PORT_SKIPPED,
	       "a bad usb_ids entry narrows to nothing rather than widening to all");
	is_int(gw_config_set(&m.config, "serial", "usb_ids", ""), 0, "no usb_ids");
	is_int(gw_uart_reload(m.uart), 0, "reload");
	is_int(gw_uart_get_port_state(m.uart, nodes[pick]), GW_UART_PORT_CONFIGURED,
	       "the path glob matches it");
	stop(&m);

	/* Disabled: nothing is looked at. */
	start(&m, "enum.db", "[serial]\nenabled = no\nmatch = tty*\n");
	is_int(gw_uart_new(&m, &m.uart), 0, "new");
	is_int(gw_uart_start(m.uart), 0, "start with [serial] enabled = no");
	is_int(gw_uart_get_port_state(m.uart, nodes[pick]), GW_UART_PORT_NONE, "no port known");
	stop(&m);
out:
	for (size_t i = 0; i < n; i++) {
		free(nodes[i]);
		free(names[i]);
	}
	free(nodes);
	free(names);
}

static void test_misc(void)
{
	struct gw_manager m;

	memset(&m, 0, sizeof(m));
	if (sd_event_new(&m.event) < 0 || gw_config_init(&m.config) < 0)
		abort();
	is_int(gw_uart_new(&m, &m.uart), 0, "new without a registry");
	is_int(gw_uart_start(m.uart), -ENXIO, "start needs the registry");
	ok(gw_uart_free(NULL) == NULL, "free(NULL)");
	is_str(gw_uart_port_state_to_string(GW_UART_PORT_NOT_SMP), "not-smp", "state names");
	ok(gw_uart_port_state_to_string((enum gw_uart_port_state)99) == NULL, "unknown state");
	m.uart = gw_uart_free(m.uart);
	m.event = sd_event_unref(m.event);
	gw_config_clear(&m.config);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	if (!mkdtemp(dir))
		abort();
	test_misc();
	test_enumerate();
	test_watch();
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
