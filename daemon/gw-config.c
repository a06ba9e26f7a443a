/* gw-config: smpgwd's configuration: every key, its default, parsing from INI and the command line */
#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/gw-config.h"
#include "lib/macro.h"

enum key_type {
	KEY_STRING,
	KEY_BOOL,
	KEY_UINT,
	KEY_U64,
	KEY_MS, /* a duration: "250ms", "30s", "5min", plain number = milliseconds */
	KEY_SIZE, /* bytes with an optional K/M/G suffix (powers of 1024) */
	KEY_LOG_LEVEL,
};

struct key {
	const char *section;
	const char *key;
	enum key_type type;
	size_t offset;
	const char *def;
	const char *help;
	enum gw_config_apply apply;
};

#define KEY(apply, sec, name, type, field, def, help) \
	{ sec, name, type, offsetof(struct gw_config, field), def, help, apply }
#define K(...) KEY(GW_CONFIG_APPLY_NOW, __VA_ARGS__)
/* Read by a link when it opens: a reload reaches the links opened after it. */
#define K_LINK(...) KEY(GW_CONFIG_APPLY_NEW_LINKS, __VA_ARGS__)
/* Set up once at start (a listener, a bus connection, a directory). */
#define K_START(...) KEY(GW_CONFIG_APPLY_RESTART, __VA_ARGS__)

/* The one place that lists every key. etc/smpgwd.conf and smpgwd.conf(5) are
 * checked against it by tests/daemon/test-gw-config. */
static const struct key keys[] = {
	K_START("daemon", "state_dir", KEY_STRING, state_dir, "/var/lib/smpgw",
	  "where the database and firmware files live"),
	K("daemon", "log_level", KEY_LOG_LEVEL, log_level, "info",
	  "lowest priority logged: err, warning, notice, info or debug"),
	K("daemon", "debug", KEY_STRING, debug, "",
	  "comma-separated modules logged at debug level (or all)"),
	K("daemon", "shutdown_timeout", KEY_MS, shutdown_timeout_ms, "10s",
	  "on SIGTERM, how long work in flight may take to finish (0: leave at once)"),
	K_START("http", "listen", KEY_STRING, listen, "127.0.0.1:8080",
	  "address and port of the REST API; loopback unless you open it on purpose"),
	K_START("http", "tls_cert", KEY_STRING, tls_cert, "", "PEM certificate: HTTPS when set with tls_key"),
	K_START("http", "tls_key", KEY_STRING, tls_key, "", "PEM private key for tls_cert"),
	K_START("http", "max_body", KEY_SIZE, max_body, "64M",
	  "largest request body (firmware uploads are streamed to disk)"),
	K_START("http", "max_connections", KEY_UINT, max_connections, "256", "simultaneous HTTP connections"),
	K_START("http", "request_timeout", KEY_MS, request_timeout_ms, "30s",
	  "deadline of one API request that waits on a device"),
	K("smp", "timeout", KEY_MS, timeout_ms, "3s", "time to wait for a device's answer"),
	K("smp", "upload_first_timeout", KEY_MS, upload_first_timeout_ms, "30s",
	  "time to wait for the first upload chunk, which may erase flash"),
	K_LINK("smp", "retries", KEY_UINT, retries, "3", "UDP retransmissions of an unanswered request"),
	K_START("ble", "enabled", KEY_BOOL, ble, "yes", "discover devices through BlueZ"),
	K_START("ble", "bus", KEY_STRING, bluez_bus, "system",
	  "D-Bus where BlueZ lives: system, or a bus address"),
	K("ble", "max_connections", KEY_UINT, ble_max_connections, "4",
	  "simultaneous BLE connections (adapters hold few)"),
	K("ble", "idle_timeout", KEY_MS, ble_idle_timeout_ms, "30s",
	  "disconnect a BLE device idle this long"),
	K_START("serial", "enabled", KEY_BOOL, serial, "yes", "probe tty devices for SMP"),
	K("serial", "match", KEY_STRING, serial_match, "ttyACM*,ttyUSB*",
	  "comma-separated globs of tty names or paths to probe"),
	K("serial", "usb_ids", KEY_STRING, serial_usb_ids, "",
	  "comma-separated vendor:product[:serial glob] USB ids to accept (empty: any)"),
	K_LINK("serial", "baud", KEY_UINT, serial_baud, "115200", "baud rate of discovered ports"),
	K("serial", "watch", KEY_STRING, serial_watch, "",
	  "comma-separated globs of device paths probed without udev (e.g. /run/sim/tty*)"),
	K("serial", "watch_interval", KEY_MS, serial_watch_interval_ms, "5s",
	  "rescan of the watch globs besides inotify, for links whose target vanished (0: off)"),
	K("poll", "interval", KEY_MS, poll_interval_ms, "60s",
	  "background refresh of stats, image state and liveness (0: off)"),
	K("poll", "jitter", KEY_UINT, poll_jitter_pct, "20",
	  "random spread of the poll interval, percent"),
	K("poll", "during_upload", KEY_BOOL, poll_during_upload, "no",
	  "keep polling a device while it receives an upload"),
	K("rollouts", "max_jobs", KEY_UINT, rollouts_max_jobs, "0",
	  "jobs doing device work at once over every rollout, shared fairly (0: no cap)"),
};

static const struct key *key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		if (strcasecmp(keys[i].section, section) == 0 && strcasecmp(keys[i].key, name) == 0)
			return &keys[i];
	return NULL;
}

static int parse_bool(const char *v, bool *ret)
{
	static const char *const yes[] = { "1", "yes", "true", "on" };
	static const char *const no[] = { "0", "no", "false", "off" };

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_u64(const char *v, uint64_t *ret, char **end)
{
	unsigned long long x;

	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	x = strtoull(v, end, 10);
	if (errno)
		return -ERANGE;
	*ret = x;
	return 0;
}

static int parse_ms(const char *v, uint64_t *ret)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = { { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "min", 60000 }, { "h", 3600000 } };
	char *end;
	uint64_t x;

	if (parse_u64(v, &x, &end) < 0)
		return -EINVAL;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (strcasecmp(end, units[i].suffix) == 0) {
			if (x > UINT32_MAX / units[i].ms)
				return -ERANGE;
			*ret = x * units[i].ms;
			return 0;
		}
	return -EINVAL;
}

static int parse_size(const char *v, uint64_t *ret)
{
	char *end;
	uint64_t x, mul = 1;

	if (parse_u64(v, &x, &end) < 0)
		return -EINVAL;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': mul = 1024; end++; break;
	case 'm': case 'M': mul = 1024 * 1024; end++; break;
	case 'g': case 'G': mul = 1024ULL * 1024 * 1024; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' && end[1] == 'B' ? 2 : 1;
	if (*end || x > UINT64_MAX / mul)
		return -EINVAL;
	*ret = x * mul;
	return 0;
}

static int key_apply(struct gw_config *c, const struct key *k, const char *v)
{
	void *field = (char *)c + k->offset;
	uint64_t x;
	bool b;
	char *s;

	switch (k->type) {
	case KEY_LOG_LEVEL: {
		static const char *const levels[] = { "emerg", "alert", "crit", "err", "warning",
						      "notice", "info", "debug" };
		size_t i;

		for (i = 0; i < ELEMENTSOF(levels); i++)
			if (strcasecmp(v, levels[i]) == 0)
				break;
		if (i == ELEMENTSOF(levels))
			return -EINVAL;
	}
		/* fall through */
	case KEY_STRING:
		s = strdup(v);
		if (!s)
			return -ENOMEM;
		free(*(char **)field);
		*(char **)field = s;
		return 0;
	case KEY_BOOL:
		if (parse_bool(v, &b) < 0)
			return -EINVAL;
		*(bool *)field = b;
		return 0;
	case KEY_UINT: {
		char *end;

		if (parse_u64(v, &x, &end) < 0 || *end || x > UINT32_MAX)
			return -EINVAL;
		*(unsigned *)field = (unsigned)x;
		return 0;
	}
	case KEY_U64: {
		char *end;

		if (parse_u64(v, &x, &end) < 0 || *end)
			return -EINVAL;
		*(uint64_t *)field = x;
		return 0;
	}
	case KEY_MS:
		if (parse_ms(v, &x) < 0)
			return -EINVAL;
		*(unsigned *)field = (unsigned)x;
		return 0;
	case KEY_SIZE:
		if (parse_size(v, &x) < 0)
			return -EINVAL;
		*(uint64_t *)field = x;
		return 0;
	}
	return -EINVAL;
}

int gw_config_init(struct gw_config *c)
{
	*c = (struct gw_config){ 0 };
	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		if (key_apply(c, &keys[i], keys[i].def) < 0) {
			gw_config_clear(c);
			return -ENOMEM;
		}
	return 0;
}

static void device_clear(struct gw_config_device *d)
{
	free(d->name);
	free(d->transport);
	free(d->address);
	free(d->labels);
}

static bool key_is_string(const struct key *k)
{
	return k->type == KEY_STRING || k->type == KEY_LOG_LEVEL;
}

void gw_config_clear(struct gw_config *c)
{
	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		if (key_is_string(&keys[i]))
			free(*(char **)((char *)c + keys[i].offset));
	for (size_t i = 0; i < c->n_devices; i++)
		device_clear(&c->devices[i]);
	free(c->devices);
	*c = (struct gw_config){ 0 };
}

int gw_config_set(struct gw_config *c, const char *section, const char *key, const char *value)
{
	const struct key *k = key_find(section, key);

	return k ? key_apply(c, k, value) : -EINVAL;
}

const struct gw_config_key_info *gw_config_keys(size_t *ret_n)
{
	static struct gw_config_key_info info[ELEMENTSOF(keys)];

	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		info[i] = (struct gw_config_key_info){ keys[i].section, keys[i].key, keys[i].def,
						       keys[i].help, keys[i].apply };
	*ret_n = ELEMENTSOF(keys);
	return info;
}

/* Bytes of a key's field that is not a string. */
static size_t key_width(const struct key *k)
{
	switch (k->type) {
	case KEY_BOOL:
		return sizeof(bool);
	case KEY_UINT:
	case KEY_MS:
		return sizeof(unsigned);
	case KEY_U64:
	case KEY_SIZE:
		return sizeof(uint64_t);
	case KEY_STRING:
	case KEY_LOG_LEVEL:
		break;
	}
	return 0;
}

static bool key_equal(const struct gw_config *a, const struct gw_config *b, const struct key *k)
{
	const void *x = (const char *)a + k->offset, *y = (const char *)b + k->offset;
	const char *s, *t;

	if (!key_is_string(k))
		return memcmp(x, y, key_width(k)) == 0;
	s = *(char *const *)x;
	t = *(char *const *)y;
	return strcmp(s ? s : "", t ? t : "") == 0;
}

static int key_copy(struct gw_config *to, const struct gw_config *from, const struct key *k)
{
	void *x = (char *)to + k->offset;
	const void *y = (const char *)from + k->offset;
	const char *t;
	char *s;

	if (!key_is_string(k)) {
		memcpy(x, y, key_width(k));
		return 0;
	}
	t = *(char *const *)y;
	s = t ? strdup(t) : NULL;
	if (t && !s)
		return -ENOMEM;
	free(*(char **)x);
	*(char **)x = s;
	return 0;
}

int gw_config_keep_start_keys(struct gw_config *next, const struct gw_config *running,
			      gw_config_changed_fn changed, void *userdata)
{
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		int r;

		if (keys[i].apply != GW_CONFIG_APPLY_RESTART || key_equal(next, running, &keys[i]))
			continue;
		if (changed)
			changed(keys[i].section, keys[i].key, userdata);
		r = key_copy(next, running, &keys[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- [device NAME] sections ---- */

struct load_ctx {
	struct gw_config *c;
	gw_config_warn_fn warn;
	void *userdata;
	const char *path;
};

_printf_(2, 3) static void load_warn(struct load_ctx *ctx, const char *fmt, ...)
{
	char msg[512];
	int n;
	va_list ap;

	n = snprintf(msg, sizeof(msg), "%s: ", ctx->path);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	va_end(ap);
	if (ctx->warn)
		ctx->warn(msg, ctx->userdata);
}

static struct gw_config_device *device_get(struct gw_config *c, const char *name)
{
	struct gw_config_device *d;

	for (size_t i = 0; i < c->n_devices; i++)
		if (strcmp(c->devices[i].name, name) == 0)
			return &c->devices[i];
	d = realloc(c->devices, (c->n_devices + 1) * sizeof(*d));
	if (!d)
		return NULL;
	c->devices = d;
	d = &c->devices[c->n_devices];
	*d = (struct gw_config_device){ .name = strdup(name), .baud = 115200 };
	if (!d->name)
		return NULL;
	c->n_devices++;
	return d;
}

static int device_set(struct gw_config_device *d, const char *key, const char *value)
{
	char **field = NULL;

	if (strcasecmp(key, "transport") == 0) {
		if (strcmp(value, "udp") != 0 && strcmp(value, "serial") != 0)
			return -EINVAL;
		field = &d->transport;
	} else if (strcasecmp(key, "address") == 0) {
		field = &d->address;
	} else if (strcasecmp(key, "labels") == 0) {
		field = &d->labels;
	} else if (strcasecmp(key, "baud") == 0) {
		char *end;
		uint64_t x;

		if (parse_u64(value, &x, &end) < 0 || *end || x == 0 || x > 4000000)
			return -EINVAL;
		d->baud = (unsigned)x;
		return 0;
	} else {
		return -ENOENT;
	}
	free(*field);
	*field = strdup(value);
	return *field ? 0 : -ENOMEM;
}

/* Debian's inih is built without line numbers in the handler. */
static int load_handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	int r;

	if (strncasecmp(section, "device ", 7) == 0) {
		struct gw_config_device *d = device_get(ctx->c, section + 7);

		if (!d)
			return 0; /* out of memory: inih stops */
		r = device_set(d, name, value);
		if (r == -ENOENT)
			load_warn(ctx, "unknown key \"%s\" in [%s], ignoring", name, section);
		else if (r < 0)
			load_warn(ctx, "bad value \"%s\" for %s in [%s], ignoring", value, name, section);
		return 1;
	}
	if (!key_find(section, name)) {
		load_warn(ctx, "unknown key \"%s\" in [%s], ignoring", name, section);
		return 1;
	}
	r = gw_config_set(ctx->c, section, name, value);
	if (r == -ENOMEM)
		return 0;
	if (r < 0)
		load_warn(ctx, "bad value \"%s\" for %s in [%s], keeping the previous value", value,
			  name, section);
	return 1;
}

int gw_config_load(struct gw_config *c, const char *path, gw_config_warn_fn warn, void *userdata)
{
	struct load_ctx ctx = { .c = c, .warn = warn, .userdata = userdata, .path = path };
	FILE *f = fopen(path, "re");
	int r;

	if (!f)
		return -errno;
	r = ini_parse_file(f, load_handler, &ctx);
	fclose(f);
	if (r > 0) {
		/* inih stops at nothing: r is the first line it could not parse. */
		load_warn(&ctx, "line %d cannot be parsed, ignoring it", r);
	} else if (r < 0) {
		return -ENOMEM;
	}
	/* A device without transport or address cannot be used: drop it loudly. */
	for (size_t i = 0; i < c->n_devices;) {
		struct gw_config_device *d = &c->devices[i];

		if (!d->transport || !d->address) {
			load_warn(&ctx, "[device %s] needs transport and address, ignoring it", d->name);
			device_clear(d);
			memmove(d, d + 1, (c->n_devices - i - 1) * sizeof(*d));
			c->n_devices--;
			continue;
		}
		i++;
	}
	return 0;
}
