/* test-gw-config: defaults, INI loading with warnings, overrides, and the documented file */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/gw-config.h"
#include "tests/tap.h"

static unsigned warnings;
static char last_warning[512];

static void on_warn(const char *msg, void *userdata)
{
	warnings++;
	snprintf(last_warning, sizeof(last_warning), "%s", msg);
}

static const char *write_tmp(const char *text)
{
	static char path[64];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/smpgw-conf-XXXXXX");
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_defaults(void)
{
	struct gw_config c;

	is_int(gw_config_init(&c), 0, "init");
	is_str(c.listen, "127.0.0.1:8080", "listens on loopback by default");
	is_str(c.state_dir, "/var/lib/smpgw", "state dir default");
	is_int(c.timeout_ms, 3000, "3s timeout");
	is_int(c.max_body, 64 * 1024 * 1024, "64M body");
	ok(c.ble && c.serial && !c.poll_during_upload, "booleans");
	is_int(c.n_devices, 0, "no devices");
	gw_config_clear(&c);
}

static void test_load(void)
{
	struct gw_config c;
	const char *p = write_tmp(
		"[daemon]\nstate_dir = /tmp/x\nlog_level = debug\n"
		"[http]\nlisten = [::1]:9000\nmax_body = 2G\nrequest_timeout = 2min\n"
		"bogus = 1\n"
		"[smp]\ntimeout = 250ms\nretries = many\n"
		"[ble]\nenabled = off\n"
		"[poll]\ninterval = 0\n"
		"[device kitchen]\ntransport = udp\naddress = 127.0.0.1:1337\nlabels = a,b\n"
		"[device bench]\ntransport = serial\naddress = /dev/ttyACM0\nbaud = 921600\ncolour = red\n"
		"[device broken]\ntransport = udp\n"
		"[device weird]\ntransport = carrier-pigeon\naddress = x\n"
		"this line has no equals sign\n");

	warnings = 0;
	gw_config_init(&c);
	is_int(gw_config_load(&c, p, on_warn, NULL), 0, "loads");
	is_str(c.state_dir, "/tmp/x", "state_dir read");
	is_str(c.log_level, "debug", "log_level read");
	is_str(c.listen, "[::1]:9000", "listen read");
	is_int(c.max_body, 2ULL << 30, "2G");
	is_int(c.request_timeout_ms, 120000, "2min");
	is_int(c.timeout_ms, 250, "250ms");
	is_int(c.retries, 3, "bad retries keeps the default");
	ok(!c.ble, "ble off");
	is_int(c.poll_interval_ms, 0, "poll off");
	is_int(c.n_devices, 2, "two usable devices");
	is_str(c.devices[0].name, "kitchen", "first device");
	is_str(c.devices[0].labels, "a,b", "labels");
	is_int(c.devices[1].baud, 921600, "baud");
	/* bogus key, many, colour, pigeon transport, broken/weird without address, bad line */
	ok(warnings >= 6, "warnings for every problem (%u)", warnings);
	gw_config_clear(&c);
	unlink(p);

	gw_config_init(&c);
	is_int(gw_config_load(&c, "/nonexistent/smpgwd.conf", on_warn, NULL), -ENOENT, "missing file");
	gw_config_clear(&c);
}

static void test_set(void)
{
	struct gw_config c;

	gw_config_init(&c);
	is_int(gw_config_set(&c, "http", "listen", "0.0.0.0:80"), 0, "override listen");
	is_str(c.listen, "0.0.0.0:80", "overridden");
	is_int(gw_config_set(&c, "daemon", "log_level", "chatty"), -EINVAL, "bad log level");
	is_int(gw_config_set(&c, "daemon", "nope", "1"), -EINVAL, "unknown key");
	is_int(gw_config_set(&c, "smp", "timeout", "5 s"), 0, "spaces before a unit");
	is_int(c.timeout_ms, 5000, "5 s");
	is_int(gw_config_set(&c, "smp", "timeout", "-5"), -EINVAL, "negative refused");
	is_int(gw_config_set(&c, "smp", "timeout", "99999999999"), -EINVAL, "overflow refused");
	is_int(gw_config_set(&c, "http", "max_body", "10X"), -EINVAL, "bad size suffix");
	is_int(gw_config_set(&c, "http", "max_body", "512KiB"), 0, "KiB");
	is_int(c.max_body, 512 * 1024, "512KiB");
	gw_config_clear(&c);
}

static char changed_keys[256];

static void on_changed(const char *section, const char *key, void *userdata)
{
	size_t n = strlen(changed_keys);

	snprintf(changed_keys + n, sizeof(changed_keys) - n, "%s[%s] %s", n ? " " : "", section, key);
}

/* A reload keeps what was set up at start and names each such key that changed. */
static void test_keep_start_keys(void)
{
	struct gw_config run, next;
	size_t n;
	const struct gw_config_key_info *k = gw_config_keys(&n);
	unsigned restart = 0, link = 0;

	gw_config_init(&run);
	gw_config_init(&next);
	gw_config_set(&run, "http", "listen", "127.0.0.1:0");
	gw_config_set(&next, "http", "listen", "0.0.0.0:8080");
	gw_config_set(&next, "http", "max_body", "1M");
	gw_config_set(&next, "ble", "enabled", "no");
	gw_config_set(&next, "daemon", "state_dir", "/elsewhere");
	gw_config_set(&next, "poll", "interval", "5s");
	gw_config_set(&next, "rollouts", "max_jobs", "3");
	changed_keys[0] = 0;
	is_int(gw_config_keep_start_keys(&next, &run, on_changed, NULL), 0, "keep_start_keys");
	is_str(changed_keys, "[daemon] state_dir [http] listen [http] max_body [ble] enabled",
	       "every start-only key that changed is named, in table order");
	is_str(next.listen, "127.0.0.1:0", "listen stays as started");
	is_str(next.state_dir, run.state_dir, "state_dir stays as started");
	is_int(next.max_body, run.max_body, "max_body stays as started");
	is_int(next.ble, true, "ble enabled stays as started");
	is_int(next.poll_interval_ms, 5000, "a key applied at once takes the new value");
	is_int(next.rollouts_max_jobs, 3, "max_jobs takes the new value");
	changed_keys[0] = 0;
	is_int(gw_config_keep_start_keys(&next, &run, on_changed, NULL), 0, "again");
	is_str(changed_keys, "", "nothing named when nothing start-only changed");
	for (size_t i = 0; i < n; i++) {
		restart += k[i].apply == GW_CONFIG_APPLY_RESTART;
		link += k[i].apply == GW_CONFIG_APPLY_NEW_LINKS;
	}
	is_int(restart, 10, "ten keys take effect at the next start");
	is_int(link, 2, "two keys reach new links only ([smp] retries, [serial] baud)");
	gw_config_clear(&run);
	gw_config_clear(&next);
}

/* etc/smpgwd.conf must show every key with its default under its section. */
static void test_documented(void)
{
	size_t n, len;
	const struct gw_config_key_info *k = gw_config_keys(&n);
	char *text = (char *)tap_read_file(tap_srcpath("etc/smpgwd.conf"), &len);

	text = realloc(text, len + 1);
	text[len] = 0;
	for (size_t i = 0; i < n; i++) {
		char sec[64], line[256];
		const char *s;

		snprintf(sec, sizeof(sec), "[%s]\n", k[i].section);
		snprintf(line, sizeof(line), "\n#%s =%s%s\n", k[i].key, *k[i].default_value ? " " : "",
			 k[i].default_value);
		s = strstr(text, sec);
		ok(s && strstr(s, line) && (!strstr(s + 1, "\n[") || strstr(s, line) < strstr(s + 1, "\n[")),
		   "etc/smpgwd.conf documents [%s] %s = %s", k[i].section, k[i].key, k[i].default_value);
	}
	free(text);
}

int main(void)
{
	test_defaults();
	test_load();
	test_set();
	test_keep_start_keys();
	test_documented();
	return tap_done();
}
