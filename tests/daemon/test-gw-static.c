/* test-gw-static: config devices with precedence and reload, API registration and its validation */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/gw-config.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-static.h"
#include "db/db.h"
#include "lib/macro.h"
#include "tests/tap.h"

static char dir[] = "/tmp/smpgw-test-static-XXXXXX";

static const char *tmp_path(const char *name)
{
	static char p[4][256];
	static unsigned next;
	char *s = p[next++ % ELEMENTSOF(p)];

	snprintf(s, sizeof(p[0]), "%s/%s", dir, name);
	return s;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
}

static void load_config(struct gw_manager *m, const char *text)
{
	gw_config_clear(&m->config);
	if (gw_config_init(&m->config) < 0)
		abort();
	write_file(tmp_path("smpgwd.conf"), text);
	if (gw_config_load(&m->config, tmp_path("smpgwd.conf"), NULL, NULL) < 0)
		abort();
}

static void start(struct gw_manager *m)
{
	char err[256] = "";

	memset(m, 0, sizeof(*m));
	if (sd_event_new(&m->event) < 0 || gw_config_init(&m->config) < 0)
		abort();
	if (db_open(tmp_path("static.db"), &m->db, err, sizeof(err)) < 0) {
		fprintf(stderr, "db_open: %s\n", err);
		abort();
	}
	if (gw_registry_new(m, &m->registry) < 0)
		abort();
}

static void stop(struct gw_manager *m)
{
	m->registry = gw_registry_free(m->registry);
	m->db = db_close(m->db);
	m->event = sd_event_unref(m->event);
	gw_config_clear(&m->config);
}

static const char *labels_text(struct gw_device *d)
{
	static char s[256];
	char *t = d ? json_dumps(d->labels, JSON_COMPACT) : NULL;

	snprintf(s, sizeof(s), "%s", t ? t : "(none)");
	free(t);
	return s;
}

static void test_parse_udp(void)
{
	static const struct {
		const char *in, *canonical;
	} good[] = {
		{ "127.0.0.1:1337", "127.0.0.1:1337" },
		{ "192.0.2.10:1", "192.0.2.10:1" },
		{ "10.0.0.1:65535", "10.0.0.1:65535" },
		{ "[::1]:1337", "[::1]:1337" },
		{ "[0:0:0:0:0:0:0:1]:80", "[::1]:80" },
		{ "[2001:DB8::0001]:5683", "[2001:db8::1]:5683" },
	};
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:99999999",
		"127.0.0.1:12a", "127.0.0.1:-1", "127.0.0.1:+5", "localhost:1337", "::1:1337",
		"[::1]1337", "[::1", "[::1]:", "[127.0.0.1]:5", ":1337", "[]:1337", "300.0.0.1:5",
		"1.2.3.4 :5", "[::1]:1337x",
	};
	struct sockaddr_storage sa;
	socklen_t len = 0;
	char *c;

	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		c = NULL;
		is_int(gw_static_parse_udp(good[i].in, &c, NULL, NULL), 0, "%s parses", good[i].in);
		is_str(c, good[i].canonical, "... as %s", good[i].canonical);
		free(c);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		c = NULL;
		is_int(gw_static_parse_udp(bad[i], &c, NULL, NULL), -EINVAL, "\"%s\" refused",
		       bad[i]);
		ok(c == NULL, "... nothing returned");
	}
	is_int(gw_static_parse_udp(NULL, NULL, NULL, NULL), -EINVAL, "NULL refused");
	is_int(gw_static_parse_udp("127.0.0.1:1337", NULL, &sa, &len), 0, "to a socket address");
	is_int(sa.ss_family, AF_INET, "IPv4");
	is_int(len, sizeof(struct sockaddr_in), "its length");
	is_int(ntohs(((struct sockaddr_in *)&sa)->sin_port), 1337, "the port");
	is_int(ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr), 0x7f000001, "the host");
	is_int(gw_static_parse_udp("[::1]:7", NULL, &sa, &len), 0, "IPv6 socket address");
	is_int(sa.ss_family, AF_INET6, "IPv6");
	is_int(ntohs(((struct sockaddr_in6 *)&sa)->sin6_port), 7, "its port");
}

static void test_config(void)
{
	struct gw_manager m;
	struct gw_device *d, *api;
	char conf[2048], serial_identity[300], id[128];
	struct gw_device_spec discovered;

	start(&m);
	snprintf(serial_identity, sizeof(serial_identity), "tty:%s", tmp_path("bench"));

	/* What discovery and the API knew before the configuration said otherwise. */
	discovered = (struct gw_device_spec){
		.transport = GW_TRANSPORT_SERIAL,
		.identity = serial_identity,
		.address = tmp_path("bench"),
		.name = "from-the-device",
		.source = GW_SOURCE_DISCOVERED,
	};
	is_int(gw_registry_upsert(m.registry, &discovered, &d), 0, "a discovered serial device");
	is_int(gw_static_register(&m,
				  &(struct gw_device_spec){ .transport = GW_TRANSPORT_UDP,
							    .address = "[::1]:1400",
							    .name = "from-the-api" },
				  &api),
	       0, "an API device");
	is_int(gw_static_register(&m,
				  &(struct gw_device_spec){ .transport = GW_TRANSPORT_UDP,
							    .address = "10.1.1.1:9" },
				  NULL),
	       0, "an API device the configuration does not list");

	snprintf(conf, sizeof(conf),
		 "[device kitchen]\ntransport = udp\naddress = 127.0.0.1:1337\nlabels = a, b\n"
		 "[device bench]\ntransport = serial\naddress = %s\nbaud = 921600\n"
		 "[device lab]\ntransport = udp\naddress = [0::1]:1400\n"
		 "[device nameless-host]\ntransport = udp\naddress = nothere.example:1337\n"
		 "[device relative]\ntransport = serial\naddress = ttyACM0\n"
		 "[device again]\ntransport = udp\naddress = 127.0.0.1:1337\n",
		 tmp_path("bench"));
	load_config(&m, conf);
	is_int(m.config.n_devices, 6, "six sections");
	is_int(gw_static_reload(&m), 3, "three usable (no host name, relative path or twin)");
	is_int(gw_registry_count(m.registry), 4, "three from the config, one more from the API");

	d = gw_registry_find_identity(m.registry, "udp:127.0.0.1:1337");
	ok(d != NULL, "kitchen registered as udp:127.0.0.1:1337");
	is_str(d ? d->name : NULL, "kitchen", "named after its section, not the later twin");
	is_str(labels_text(d), "[\"a\",\"b\"]", "labels");
	is_int(d ? (int)d->source : -1, GW_SOURCE_CONFIG, "source config");
	is_int(d ? (int)d->transport : -1, GW_TRANSPORT_UDP, "udp");
	is_int(d ? d->baud : 99, 0, "no baud on udp");

	d = gw_registry_find_identity(m.registry, serial_identity);
	is_str(d ? d->name : NULL, "bench", "the config names the discovered device");
	is_int(d ? (int)d->source : -1, GW_SOURCE_CONFIG, "... and owns it now");
	is_int(d ? d->baud : 0, 921600, "... with its baud");
	is_str(labels_text(d), "[]", "no labels");
	is_int(gw_registry_upsert(m.registry, &discovered, &d), 0, "discovery finds it again");
	is_str(d->name, "bench", "the config's name stays");
	is_int(d->source, GW_SOURCE_CONFIG, "and so does the source");

	d = gw_registry_find_identity(m.registry, "udp:[::1]:1400");
	ok(d == api, "[0::1]:1400 is the API's [::1]:1400");
	is_str(d ? d->name : NULL, "lab", "the config wins over the API");
	is_int(d ? (int)d->source : -1, GW_SOURCE_CONFIG, "source config");
	is_int(gw_static_register(&m,
				  &(struct gw_device_spec){ .transport = GW_TRANSPORT_UDP,
							    .address = "127.0.0.1:1337" },
				  NULL),
	       -EEXIST, "the API cannot take a device of the configuration");
	is_int(gw_static_unregister(&m, d), -EPERM, "nor remove one");
	snprintf(id, sizeof(id), "%s", d->id);

	/* SIGHUP: kitchen loses its labels and gets a new name, bench is gone,
	 * lab moves to another port, a new one appears. */
	load_config(&m,
		    "[device cuisine]\ntransport = udp\naddress = 127.0.0.1:1337\n"
		    "[device lab]\ntransport = udp\naddress = [::1]:1401\n"
		    "[device new]\ntransport = udp\naddress = 192.0.2.7:1337\nlabels = x\n");
	is_int(gw_static_reload(&m), 3, "reload");
	d = gw_registry_find_identity(m.registry, "udp:127.0.0.1:1337");
	is_str(d ? d->name : NULL, "cuisine", "renamed");
	is_str(labels_text(d), "[]", "labels removed in the file are removed");
	ok(!gw_registry_find_identity(m.registry, serial_identity), "bench dropped");
	ok(!gw_registry_find(m.registry, id), "the old address of lab dropped");
	d = gw_registry_find_identity(m.registry, "udp:[::1]:1401");
	is_str(d ? d->name : NULL, "lab", "lab at its new address");
	d = gw_registry_find_identity(m.registry, "udp:192.0.2.7:1337");
	is_str(labels_text(d), "[\"x\"]", "the new one");
	ok(gw_registry_find_identity(m.registry, "udp:10.1.1.1:9") != NULL,
	   "the API's own device is untouched");
	is_int(gw_registry_count(m.registry), 4, "four devices");

	/* Persisted: a restart with the same file changes nothing. */
	stop(&m);
	start(&m);
	is_int(gw_registry_count(m.registry), 4, "four devices after a restart");
	load_config(&m,
		    "[device cuisine]\ntransport = udp\naddress = 127.0.0.1:1337\n"
		    "[device lab]\ntransport = udp\naddress = [::1]:1401\n"
		    "[device new]\ntransport = udp\naddress = 192.0.2.7:1337\nlabels = x\n");
	is_int(gw_static_reload(&m), 3, "reload at start");
	is_int(gw_registry_count(m.registry), 4, "no duplicates");

	/* An empty configuration drops what it provided, nothing else. */
	load_config(&m, "[daemon]\n");
	is_int(gw_static_reload(&m), 0, "nothing configured");
	is_int(gw_registry_count(m.registry), 1, "only the API's device remains");
	stop(&m);
	unlink(tmp_path("static.db"));
	unlink(tmp_path("static.db-wal"));
	unlink(tmp_path("static.db-shm"));
}

static void test_register(void)
{
	struct gw_manager m, none;
	struct gw_device *d, *d2;
	int master = -1, slave = -1;
	char name[128], identity[300];

	start(&m);
	if (openpty(&master, &slave, name, NULL, NULL) < 0 || symlink(name, tmp_path("pty")) < 0)
		abort();
	write_file(tmp_path("plain"), "not a tty\n");

#define SPEC(...) (&(struct gw_device_spec){ __VA_ARGS__ })
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_UDP, .address = "host:1"), NULL),
	       -EINVAL, "udp: names are refused");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_UDP, .address = "1.2.3.4"), NULL),
	       -EINVAL, "udp: no port");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_UDP, .address = "1.2.3.4:5",
					   .baud = 9600),
				  NULL),
	       -EINVAL, "udp: no baud");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_BLE,
					   .address = "/org/bluez/hci0/dev_C0_FF_EE_00_00_01"),
				  NULL),
	       -EINVAL, "ble: found by discovery, not registered");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_UDP), NULL), -EINVAL,
	       "no address");
	is_int(gw_static_register(&m, NULL, NULL), -EINVAL, "no spec");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_SERIAL, .address = "ttyACM0"),
				  NULL),
	       -EINVAL, "serial: relative path");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_SERIAL,
					   .address = tmp_path("missing")),
				  NULL),
	       -ENOENT, "serial: no such path");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_SERIAL,
					   .address = tmp_path("plain")),
				  NULL),
	       -ENOTTY, "serial: a file");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_SERIAL, .address = "/dev/null"),
				  NULL),
	       -ENOTTY, "serial: /dev/null is a character device but no terminal");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_SERIAL, .address = dir), NULL),
	       -ENOTTY, "serial: a directory");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_UDP, .address = "1.2.3.4:5",
					   .name = "bad\nname"),
				  NULL),
	       -EINVAL, "a name with a control character");
	is_int(gw_registry_count(m.registry), 0, "nothing registered by the refusals");

	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_SERIAL,
					   .address = tmp_path("pty"), .name = "bench",
					   .labels = "lab,bench", .baud = 57600,
					   .source = GW_SOURCE_CONFIG),
				  &d),
	       0, "serial: a link to a PTY");
	snprintf(identity, sizeof(identity), "tty:%s", tmp_path("pty"));
	is_str(d->identity, identity, "identity tty:<path as given>");
	is_str(d->address, tmp_path("pty"), "address");
	is_int(d->source, GW_SOURCE_API, "source api, whatever the spec said");
	is_int(d->baud, 57600, "baud");
	is_str(labels_text(d), "[\"lab\",\"bench\"]", "labels");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_SERIAL,
					   .address = tmp_path("pty")),
				  NULL),
	       -EEXIST, "twice: refused");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_SERIAL, .address = name), &d2),
	       0, "the PTY itself is another identity");

	/* A device discovery found is taken over by the API. */
	is_int(gw_registry_upsert(m.registry,
				  SPEC(.transport = GW_TRANSPORT_UDP, .identity = "udp:192.0.2.1:1337",
				       .address = "192.0.2.1:1337", .name = "reported",
				       .source = GW_SOURCE_DISCOVERED),
				  &d),
	       0, "a discovered device");
	is_int(gw_static_register(&m, SPEC(.transport = GW_TRANSPORT_UDP, .address = "192.0.2.1:1337",
					   .name = "mine"),
				  &d2),
	       0, "registered by the API");
	ok(d2 == d, "the same device");
	is_int(d->source, GW_SOURCE_API, "the API owns it");
	is_str(d->name, "mine", "its name");

	/* Unregistering. */
	is_int(gw_static_unregister(&m, NULL), -EINVAL, "NULL");
	d = gw_registry_find_identity(m.registry, identity);
	is_int(gw_static_unregister(&m, d), 0, "unregister the API's device");
	ok(!gw_registry_find_identity(m.registry, identity), "gone");
	is_int(gw_registry_upsert(m.registry,
				  SPEC(.transport = GW_TRANSPORT_UDP, .identity = "udp:192.0.2.2:1337",
				       .address = "192.0.2.2:1337", .source = GW_SOURCE_DISCOVERED),
				  &d),
	       0, "another discovered device");
	is_int(gw_static_unregister(&m, d), 0, "a discovered device can be forgotten");
	ok(!gw_registry_find_identity(m.registry, "udp:192.0.2.2:1337"), "forgotten");
	is_int(gw_registry_count(m.registry), 2, "two left");
#undef SPEC

	memset(&none, 0, sizeof(none));
	is_int(gw_static_register(&none, &(struct gw_device_spec){ .transport = GW_TRANSPORT_UDP,
								     .address = "1.2.3.4:5" },
				  NULL),
	       -ENXIO, "no registry");
	is_int(gw_static_reload(&none), -ENXIO, "reload without a registry");
	is_int(gw_static_unregister(&none, d2), -ENXIO, "unregister without a registry");

	stop(&m);
	close(master);
	close(slave);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	if (!mkdtemp(dir))
		abort();
	test_parse_udp();
	test_config();
	test_register();
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
