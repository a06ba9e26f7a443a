/* gw-uart: tty discovery through sd-device and watched globs, and the SMP probe of new ports */
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <systemd/sd-device.h>
#include <systemd/sd-event.h>

#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-uart.h"
#include "lib/macro.h"
#include "lib/smp-client.h"
#include "lib/smp-os.h"
#include "lib/smp-serial-link.h"

#define LOG_MODULE "uart"
#define PROBE_ECHO_TEXT "smpgw-probe"
/* Longest node name taken from a device as its name. */
#define NAME_MAX_LEN 64

struct uart_usb_rule {
	unsigned vendor, product;
	char *serial_glob; /* NULL: any serial number */
	bool valid;
};

struct uart_rules {
	char **match;
	size_t n_match;
	struct uart_usb_rule *usb;
	size_t n_usb; /* 0: any port, USB or not */
};

struct uart_watch {
	struct gw_uart *u;
	char *glob;
	char *dir; /* NULL when the directory part has wildcards: rescans only */
	sd_event_source *inotify;
};

struct uart_usb_info {
	bool present;
	unsigned vendor, product;
	char *serial; /* NULL when the device has none */
};

enum probe_step {
	PROBE_ECHO,
	PROBE_PARAMS,
	PROBE_INFO_ALL,
	PROBE_INFO_NAME,
	PROBE_DONE,
};

struct uart_port {
	struct gw_uart *u;
	char *path;          /* device node (udev) or watched path; what the probe opens */
	bool watched;
	bool seen;           /* mark of the current rescan */
	sd_device *dev;      /* udev ports: for the match rules at a reload */
	dev_t rdev;          /* 0 when unknown */
	ino_t link_ino;      /* watched ports: the inode of the path itself (lstat) */
	struct uart_usb_info usb;
	enum gw_uart_port_state state;
	/* the probe */
	struct smp_client *client;
	enum probe_step step;
	json_t *params;
	json_t *info;
	char *name;
	char *identity;      /* of the registry device once SMP */
};

struct gw_uart {
	struct gw_manager *m;
	struct uart_rules rules;
	struct uart_watch **watches;
	size_t n_watches;
	struct uart_port **ports;
	size_t n_ports;
	sd_device_monitor *monitor;
	sd_event_source *rescan;
	bool started;
	gw_uart_port_fn observer;
	void *observer_userdata;
};

static const char *const state_names[] = {
	[GW_UART_PORT_NONE] = "none",
	[GW_UART_PORT_SKIPPED] = "skipped",
	[GW_UART_PORT_CONFIGURED] = "configured",
	[GW_UART_PORT_PROBING] = "probing",
	[GW_UART_PORT_SMP] = "smp",
	[GW_UART_PORT_NOT_SMP] = "not-smp",
};

const char *gw_uart_port_state_to_string(enum gw_uart_port_state s)
{
	return (unsigned)s < ELEMENTSOF(state_names) ? state_names[s] : NULL;
}

/* ---- lists and rules ---- */

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Splits a comma-separated list, trimming blanks and skipping empty items. */
static int split_list(const char *s, char ***ret, size_t *ret_n)
{
	char **v = NULL;
	size_t n = 0;

	while (s && *s) {
		const char *end = strchrnul(s, ',');
		const char *a = s, *b = end;
		char **nv;

		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (b > a) {
			nv = realloc(v, (n + 1) * sizeof(*v));
			if (!nv)
				goto oom;
			v = nv;
			v[n] = strndup(a, (size_t)(b - a));
			if (!v[n])
				goto oom;
			n++;
		}
		s = *end ? end + 1 : end;
	}
	*ret = v;
	*ret_n = n;
	return 0;
oom:
	strv_free(v, n);
	return -ENOMEM;
}

static int parse_hex16(const char *s, size_t len, unsigned *ret)
{
	unsigned x = 0;

	if (len == 0 || len > 4)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9')
			x = x * 16 + (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			x = x * 16 + (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			x = x * 16 + (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*ret = x;
	return 0;
}

/* "vvvv:pppp" or "vvvv:pppp:serial-glob". */
static int usb_rule_parse(const char *s, struct uart_usb_rule *ret)
{
	const char *c1 = strchr(s, ':'), *c2;
	struct uart_usb_rule rule = { 0 };

	if (!c1)
		return -EINVAL;
	c2 = strchr(c1 + 1, ':');
	if (parse_hex16(s, (size_t)(c1 - s), &rule.vendor) < 0 ||
	    parse_hex16(c1 + 1, c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1), &rule.product) < 0)
		return -EINVAL;
	if (c2 && c2[1]) {
		rule.serial_glob = strdup(c2 + 1);
		if (!rule.serial_glob)
			return -ENOMEM;
	}
	rule.valid = true;
	*ret = rule;
	return 0;
}

static void rules_clear(struct uart_rules *r)
{
	strv_free(r->match, r->n_match);
	for (size_t i = 0; i < r->n_usb; i++)
		free(r->usb[i].serial_glob);
	free(r->usb);
	*r = (struct uart_rules){ 0 };
}

static int rules_load(const struct gw_config *c, struct uart_rules *ret)
{
	struct uart_rules r = { 0 };
	char **ids = NULL;
	size_t n_ids = 0;
	int k;

	k = split_list(c->serial_match, &r.match, &r.n_match);
	if (k < 0)
		return k;
	k = split_list(c->serial_usb_ids, &ids, &n_ids);
	if (k < 0)
		goto fail;
	r.usb = calloc(n_ids ? n_ids : 1, sizeof(*r.usb));
	if (!r.usb) {
		k = -ENOMEM;
		goto fail;
	}
	/* A bad entry stays in the list as one that never matches: dropping it
	 * would widen the filter, with an empty list to "any port". */
	for (; r.n_usb < n_ids; r.n_usb++) {
		k = usb_rule_parse(ids[r.n_usb], &r.usb[r.n_usb]);
		if (k == -ENOMEM)
			goto fail;
		if (k < 0)
			gw_warn(LOG_MODULE,
				"[serial] usb_ids: \"%s\" is not vendor:product[:serial], "
				"it matches nothing",
				ids[r.n_usb]);
	}
	strv_free(ids, n_ids);
	*ret = r;
	return 0;
fail:
	strv_free(ids, n_ids);
	rules_clear(&r);
	return k;
}

static bool glob_has_magic(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '*' || s[i] == '?' || s[i] == '[')
			return true;
	return false;
}

static bool rules_match_name(const struct uart_rules *r, sd_device *dev, const char *devnode)
{
	const char *sysname = NULL;

	(void)sd_device_get_sysname(dev, &sysname);
	for (size_t i = 0; i < r->n_match; i++) {
		const char *g = r->match[i];

		if (!strchr(g, '/')) {
			if (sysname && fnmatch(g, sysname, 0) == 0)
				return true;
			continue;
		}
		if (fnmatch(g, devnode, FNM_PATHNAME) == 0)
			return true;
		for (const char *l = sd_device_get_devlink_first(dev); l;
		     l = sd_device_get_devlink_next(dev))
			if (fnmatch(g, l, FNM_PATHNAME) == 0)
				return true;
	}
	return false;
}

static bool rules_match_usb(const struct uart_rules *r, const struct uart_usb_info *usb)
{
	if (r->n_usb == 0)
		return true;
	if (!usb->present)
		return false;
	for (size_t i = 0; i < r->n_usb; i++) {
		const struct uart_usb_rule *u = &r->usb[i];

		if (!u->valid || u->vendor != usb->vendor || u->product != usb->product)
			continue;
		if (!u->serial_glob)
			return true;
		if (usb->serial && fnmatch(u->serial_glob, usb->serial, 0) == 0)
			return true;
	}
	return false;
}

/* ---- USB facts of a port ---- */

static const char *device_prop(sd_device *dev, sd_device *usb, const char *prop,
			       const char *sysattr)
{
	const char *v = NULL;

	if (sd_device_get_property_value(dev, prop, &v) >= 0 && v && *v)
		return v;
	if (usb && sd_device_get_property_value(usb, prop, &v) >= 0 && v && *v)
		return v;
	/* Without udevd there are no properties: sysfs has the same facts. */
	if (usb && sd_device_get_sysattr_value(usb, sysattr, &v) >= 0 && v && *v)
		return v;
	return NULL;
}

/* Keeps what makes a readable identity: printable ASCII without blanks and
 * slashes, as udev does for ID_SERIAL_SHORT. */
static char *sanitize_serial(const char *s)
{
	size_t n = strnlen(s, 128);
	char *out = strndup(s, n);

	if (!out)
		return NULL;
	for (char *c = out; *c; c++)
		if (*c <= ' ' || *c > '~' || *c == '/')
			*c = '_';
	return out;
}

static int usb_info_read(sd_device *dev, struct uart_usb_info *ret)
{
	sd_device *usb = NULL;
	const char *vendor, *product, *serial;
	struct uart_usb_info info = { 0 };

	/* The parent belongs to dev: no reference to drop. */
	(void)sd_device_get_parent_with_subsystem_devtype(dev, "usb", "usb_device", &usb);
	vendor = device_prop(dev, usb, "ID_VENDOR_ID", "idVendor");
	product = device_prop(dev, usb, "ID_MODEL_ID", "idProduct");
	serial = device_prop(dev, usb, "ID_SERIAL_SHORT", "serial");
	if (vendor && product && parse_hex16(vendor, strlen(vendor), &info.vendor) == 0 &&
	    parse_hex16(product, strlen(product), &info.product) == 0)
		info.present = true;
	if (info.present && serial) {
		info.serial = sanitize_serial(serial);
		if (!info.serial)
			return -ENOMEM;
	}
	*ret = info;
	return 0;
}

/* ---- ports ---- */

static struct uart_port *port_find(struct gw_uart *u, const char *path)
{
	for (size_t i = 0; i < u->n_ports; i++)
		if (strcmp(u->ports[i]->path, path) == 0)
			return u->ports[i];
	return NULL;
}

static void port_probe_clear(struct uart_port *p)
{
	p->client = smp_client_unref(p->client);
	json_decref(p->params);
	json_decref(p->info);
	p->params = p->info = NULL;
	free(p->name);
	p->name = NULL;
}

static struct uart_port *port_free(struct uart_port *p)
{
	if (!p)
		return NULL;
	port_probe_clear(p);
	sd_device_unref(p->dev);
	free(p->usb.serial);
	free(p->identity);
	free(p->path);
	free(p);
	return NULL;
}

static void port_set_state(struct uart_port *p, enum gw_uart_port_state state)
{
	struct gw_uart *u = p->u;

	p->state = state;
	if (u->observer)
		u->observer(u, p->path, state, u->observer_userdata);
}

static struct uart_port *port_new(struct gw_uart *u, const char *path)
{
	struct uart_port *p, **v;

	v = realloc(u->ports, (u->n_ports + 1) * sizeof(*v));
	if (!v)
		return NULL;
	u->ports = v;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->path = strdup(path);
	if (!p->path) {
		free(p);
		return NULL;
	}
	p->u = u;
	p->state = GW_UART_PORT_NONE;
	u->ports[u->n_ports++] = p;
	return p;
}

/* The registry device this port made, while it is still the one there: a
 * device that moved to another port since (a USB device re-enumerated as
 * ttyACM1) is that port's business. */
static struct gw_device *port_device(struct uart_port *p)
{
	struct gw_device *d;

	if (!p->identity || !p->u->m->registry)
		return NULL;
	d = gw_registry_find_identity(p->u->m->registry, p->identity);
	return d && d->address && strcmp(d->address, p->path) == 0 ? d : NULL;
}

/* The port went away (unplugged, link removed): its device goes offline. */
static void port_remove(struct gw_uart *u, struct uart_port *p)
{
	struct gw_device *d = p->state == GW_UART_PORT_SMP ? port_device(p) : NULL;
	size_t i;

	for (i = 0; i < u->n_ports && u->ports[i] != p; i++)
		;
	if (i == u->n_ports)
		return;
	u->ports[i] = u->ports[--u->n_ports];
	if (d) {
		gw_info(LOG_MODULE, "%s: gone, %s offline", p->path, d->id);
		gw_registry_set_online(u->m->registry, d, false);
	} else {
		gw_debug(LOG_MODULE, "%s: gone", p->path);
	}
	port_probe_clear(p);
	port_set_state(p, GW_UART_PORT_NONE);
	port_free(p);
}

static bool same_port(const char *path, const struct uart_port *p)
{
	struct stat st;

	if (strcmp(path, p->path) == 0)
		return true;
	return p->rdev && stat(path, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == p->rdev;
}

/* Whether a [device] section or a device registered by the API uses this port. */
static bool port_is_configured(struct gw_uart *u, const struct uart_port *p)
{
	const struct gw_config *c = &u->m->config;
	struct gw_registry *r = u->m->registry;

	for (size_t i = 0; i < c->n_devices; i++)
		if (c->devices[i].transport && strcmp(c->devices[i].transport, "serial") == 0 &&
		    c->devices[i].address && same_port(c->devices[i].address, p))
			return true;
	for (struct gw_device *d = gw_registry_next(r, NULL); d; d = gw_registry_next(r, d->id))
		if (d->transport == GW_TRANSPORT_SERIAL && d->source != GW_SOURCE_DISCOVERED &&
		    d->address && same_port(d->address, p))
			return true;
	return false;
}

/* Another path to a port that is being probed or was found: a symlink in a
 * watched directory to a tty udev announced too. */
static bool port_is_alias(struct gw_uart *u, const struct uart_port *p)
{
	if (!p->rdev)
		return false;
	for (size_t i = 0; i < u->n_ports; i++) {
		const struct uart_port *o = u->ports[i];

		if (o != p && o->rdev == p->rdev &&
		    (o->state == GW_UART_PORT_PROBING || o->state == GW_UART_PORT_SMP))
			return true;
	}
	return false;
}

/* ---- the probe ---- */

static void probe_send(struct uart_port *p);

static void probe_log(const char *msg, void *userdata)
{
	struct uart_port *p = userdata;

	gw_debug(LOG_MODULE, "%s: %s", p->path, msg);
}

static void probe_fail(struct uart_port *p, int error)
{
	gw_info(LOG_MODULE, "%s: no SMP answer (%s), not probed again until it is re-plugged",
		p->path, strerror(-error));
	port_probe_clear(p);
	port_set_state(p, GW_UART_PORT_NOT_SMP);
}

/* The node name is the device's word: short, printable, UTF-8 (jansson
 * refuses anything else), or no name. */
static bool name_usable(const char *s)
{
	size_t n = strnlen(s, NAME_MAX_LEN + 1);
	json_t *j;

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
			return false;
	j = json_string(s);
	json_decref(j);
	return j != NULL;
}

static void probe_finish(struct uart_port *p)
{
	struct gw_uart *u = p->u;
	struct gw_registry *r = u->m->registry;
	_cleanup_free_ char *identity = NULL;
	struct gw_device_spec spec;
	struct gw_device *d;
	int k;

	/* Free the port for gw-devices, which opens it on demand. */
	p->client = smp_client_unref(p->client);
	if (p->usb.serial)
		k = asprintf(&identity, "usb:%s", p->usb.serial);
	else
		k = asprintf(&identity, "tty:%s", p->path);
	if (k < 0) {
		identity = NULL;
		k = -ENOMEM;
		goto fail;
	}
	spec = (struct gw_device_spec){
		.transport = GW_TRANSPORT_SERIAL,
		.identity = identity,
		.address = p->path,
		.name = p->name,
		.source = GW_SOURCE_DISCOVERED,
	};
	k = gw_registry_upsert(r, &spec, &d);
	if (k < 0)
		goto fail;
	if (p->params) {
		k = gw_registry_set_reported(r, d, "params", TAKE_PTR(p->params));
		if (k < 0)
			gw_log_errno(LOG_WARNING, k, LOG_MODULE, "%s: storing params, ignoring: %m",
				     p->path);
	}
	if (p->info) {
		k = gw_registry_set_reported(r, d, "info", TAKE_PTR(p->info));
		if (k < 0)
			gw_log_errno(LOG_WARNING, k, LOG_MODULE, "%s: storing info, ignoring: %m",
				     p->path);
	}
	gw_registry_set_online(r, d, true);
	gw_registry_seen(r, d);
	gw_info(LOG_MODULE, "%s: SMP device %s (%s)", p->path, d->id,
		*d->name ? d->name : "no name");
	free(p->identity);
	p->identity = TAKE_PTR(identity);
	port_probe_clear(p);
	port_set_state(p, GW_UART_PORT_SMP);
	return;
fail:
	gw_log_errno(LOG_ERR, k, LOG_MODULE, "%s: registering the device: %m", p->path);
	port_probe_clear(p);
	port_set_state(p, GW_UART_PORT_NOT_SMP);
}

static void gw_uart_on_probe_done(struct smp_client *c, int error,
				  const struct smp_response *rsp, void *userdata)
{
	struct uart_port *p = userdata;
	struct smp_os_params params;
	char *text = NULL;

	if (p->step == PROBE_ECHO) {
		/* Any SMP answer counts, a refusal of echo included: only an SMP
		 * server produces a framed packet with our sequence number. */
		if (error < 0) {
			probe_fail(p, error);
			return;
		}
		if (smp_os_echo_parse(rsp, &text) == 0 && strcmp(text, PROBE_ECHO_TEXT) != 0)
			gw_debug(LOG_MODULE, "%s: echo came back altered", p->path);
		free(text);
	} else if (error < 0) {
		gw_log_errno(LOG_DEBUG, error, LOG_MODULE, "%s: probe step %d: %m", p->path,
			     (int)p->step);
		if (error == -ECONNRESET || error == -ENOTCONN) {
			/* The device answered the echo: it is one, with less known. */
			probe_finish(p);
			return;
		}
	} else if (p->step == PROBE_PARAMS) {
		/* The same shapes as the poller's, which refreshes them later. */
		if (smp_os_params_parse(rsp, &params) == 0)
			p->params = json_pack("{sIsI}", "buf_size", (json_int_t)params.buf_size,
					      "buf_count", (json_int_t)params.buf_count);
	} else if (p->step == PROBE_INFO_ALL) {
		/* NULL when the text is not UTF-8: then there is no info to keep. */
		if (smp_os_info_parse(rsp, &text) == 0)
			p->info = json_pack("{ss}", "output", text);
		free(text);
	} else if (p->step == PROBE_INFO_NAME) {
		if (smp_os_info_parse(rsp, &text) == 0 && name_usable(text))
			p->name = TAKE_PTR(text);
		free(text);
	}
	p->step++;
	if (p->step == PROBE_DONE)
		probe_finish(p);
	else
		probe_send(p);
}

static void probe_send(struct uart_port *p)
{
	struct smp_request *req = NULL;
	int k;

	switch (p->step) {
	case PROBE_ECHO:
		k = smp_os_echo_request(PROBE_ECHO_TEXT, &req);
		break;
	case PROBE_PARAMS:
		k = smp_os_params_request(&req);
		break;
	case PROBE_INFO_ALL:
		k = smp_os_info_request("a", &req);
		break;
	case PROBE_INFO_NAME:
		k = smp_os_info_request("n", &req);
		break;
	default:
		k = -EINVAL;
		break;
	}
	if (k >= 0)
		k = smp_client_send(p->client, req, SMP_PRIO_INTERACTIVE, 0, gw_uart_on_probe_done,
				    p, NULL, NULL);
	if (k < 0) {
		if (p->step == PROBE_ECHO)
			probe_fail(p, k);
		else
			probe_finish(p);
	}
}

static void probe_start(struct uart_port *p)
{
	struct gw_uart *u = p->u;
	struct smp_serial_link_config lc = { .baud = u->m->config.serial_baud };
	struct smp_client_config cc;
	struct smp_transport *t = NULL;
	int k;

	port_set_state(p, GW_UART_PORT_PROBING);
	k = smp_serial_link_new(u->m->event, p->path, &lc, &t);
	if (k < 0) {
		gw_log_errno(LOG_WARNING, k, LOG_MODULE, "%s: cannot open it for a probe: %m",
			     p->path);
		port_set_state(p, GW_UART_PORT_NOT_SMP);
		return;
	}
	smp_client_config_init(&cc);
	if (u->m->config.timeout_ms)
		cc.timeout_ms = u->m->config.timeout_ms;
	cc.discover_params = false; /* asked for in its turn, after the echo */
	cc.max_window = 1;
	if (gw_log_enabled(LOG_DEBUG, LOG_MODULE)) {
		cc.log = probe_log;
		cc.log_userdata = p;
	}
	k = smp_client_new(u->m->event, t, &cc, &p->client);
	if (k < 0) {
		gw_log_errno(LOG_ERR, k, LOG_MODULE, "%s: probe client: %m", p->path);
		port_set_state(p, GW_UART_PORT_NOT_SMP);
		return;
	}
	gw_debug(LOG_MODULE, "%s: probing", p->path);
	p->step = PROBE_ECHO;
	probe_send(p);
}

/* Decides what to do with a port that is new or whose rules changed. */
static void port_judge(struct gw_uart *u, struct uart_port *p)
{
	if (!p->watched && (!rules_match_name(&u->rules, p->dev, p->path) ||
			    !rules_match_usb(&u->rules, &p->usb))) {
		gw_debug(LOG_MODULE, "%s: no [serial] rule matches, skipped", p->path);
		port_set_state(p, GW_UART_PORT_SKIPPED);
	} else if (port_is_configured(u, p)) {
		gw_debug(LOG_MODULE, "%s: used by a configured device, not probed", p->path);
		port_set_state(p, GW_UART_PORT_CONFIGURED);
	} else if (port_is_alias(u, p)) {
		gw_debug(LOG_MODULE, "%s: another path of a port being probed, skipped", p->path);
		port_set_state(p, GW_UART_PORT_SKIPPED);
	} else {
		probe_start(p);
	}
}

/* ---- udev ---- */

static int udev_add(struct gw_uart *u, sd_device *dev)
{
	struct uart_port *p;
	const char *devnode;
	dev_t devnum = 0;
	int k;

	if (sd_device_get_devname(dev, &devnode) < 0)
		return 0; /* no device node: nothing to open */
	p = port_find(u, devnode);
	if (p) {
		/* An "add" for a port we know: enumeration and monitor overlapped. */
		p->seen = true;
		return 0;
	}
	p = port_new(u, devnode);
	if (!p)
		return -ENOMEM;
	p->seen = true;
	p->dev = sd_device_ref(dev);
	if (sd_device_get_devnum(dev, &devnum) >= 0)
		p->rdev = devnum;
	k = usb_info_read(dev, &p->usb);
	if (k < 0) {
		port_remove(u, p);
		return k;
	}
	port_judge(u, p);
	return 0;
}

static int gw_uart_on_udev(sd_device_monitor *mon, sd_device *dev, void *userdata)
{
	struct gw_uart *u = userdata;
	sd_device_action_t action;
	const char *devnode;
	struct uart_port *p;
	int k;

	if (sd_device_get_action(dev, &action) < 0 || sd_device_get_devname(dev, &devnode) < 0)
		return 0;
	if (action == SD_DEVICE_ADD) {
		k = udev_add(u, dev);
		if (k < 0)
			gw_log_errno(LOG_ERR, k, LOG_MODULE, "%s: %m", devnode);
	} else if (action == SD_DEVICE_REMOVE) {
		p = port_find(u, devnode);
		if (p && !p->watched)
			port_remove(u, p);
	}
	return 0;
}

static int udev_enumerate(struct gw_uart *u)
{
	_cleanup_(sd_device_enumerator_unrefp) sd_device_enumerator *e = NULL;
	int k;

	k = sd_device_enumerator_new(&e);
	if (k < 0)
		return k;
	k = sd_device_enumerator_add_match_subsystem(e, "tty", 1);
	if (k < 0)
		return k;
	/* Without udevd (containers) no device is "initialized"; a port whose
	 * udev rules are still running gets its "add" from the monitor later. */
	k = sd_device_enumerator_allow_uninitialized(e);
	if (k < 0)
		return k;
	for (sd_device *d = sd_device_enumerator_get_device_first(e); d;
	     d = sd_device_enumerator_get_device_next(e)) {
		k = udev_add(u, d);
		if (k < 0)
			return k;
	}
	return 0;
}

static int udev_monitor_start(struct gw_uart *u)
{
	_cleanup_(sd_device_monitor_unrefp) sd_device_monitor *mon = NULL;
	int k;

	k = sd_device_monitor_new(&mon);
	if (k < 0)
		return k;
	k = sd_device_monitor_filter_add_match_subsystem_devtype(mon, "tty", NULL);
	if (k < 0)
		return k;
	k = sd_device_monitor_attach_event(mon, u->m->event);
	if (k < 0)
		return k;
	(void)sd_device_monitor_set_description(mon, "gw-uart-udev");
	k = sd_device_monitor_start(mon, gw_uart_on_udev, u);
	if (k < 0)
		return k;
	u->monitor = TAKE_PTR(mon);
	return 0;
}

/* ---- watched paths ---- */

static bool watched_path_wanted(struct gw_uart *u, const char *path)
{
	for (size_t i = 0; i < u->n_watches; i++)
		if (fnmatch(u->watches[i]->glob, path, FNM_PATHNAME) == 0)
			return true;
	return false;
}

/* A path under a watch glob appeared or was seen by a rescan. Anything but a
 * character device (after symlinks) is not a port; a rescan looks again. */
static int watched_add(struct gw_uart *u, const char *path)
{
	_cleanup_(sd_device_unrefp) sd_device *dev = NULL;
	struct uart_port *p = port_find(u, path);
	struct stat lst, st;
	int k;

	if (lstat(path, &lst) < 0 || stat(path, &st) < 0 || !S_ISCHR(st.st_mode)) {
		if (p && p->watched)
			port_remove(u, p);
		return 0;
	}
	if (p) {
		p->seen = true;
		if (!p->watched || (p->rdev == st.st_rdev && p->link_ino == lst.st_ino))
			return 0;
		/* The path leads somewhere else now: unplugged and plugged again. */
		port_remove(u, p);
	}
	p = port_new(u, path);
	if (!p)
		return -ENOMEM;
	p->seen = true;
	p->watched = true;
	p->rdev = st.st_rdev;
	p->link_ino = lst.st_ino;
	/* A link to a real USB tty still has a USB serial number; a PTY has no
	 * sysfs device at all. */
	if (sd_device_new_from_devnum(&dev, 'c', st.st_rdev) >= 0) {
		k = usb_info_read(dev, &p->usb);
		if (k < 0) {
			port_remove(u, p);
			return k;
		}
	}
	port_judge(u, p);
	return 0;
}

static void watched_gone(struct gw_uart *u, const char *path)
{
	struct uart_port *p = port_find(u, path);

	if (p && p->watched)
		port_remove(u, p);
}

static int gw_uart_on_inotify(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
	struct uart_watch *w = userdata;
	struct gw_uart *u = w->u;
	_cleanup_free_ char *path = NULL;
	int k;

	if (ev->mask & IN_Q_OVERFLOW) {
		k = gw_uart_rescan(u);
		if (k < 0)
			gw_log_errno(LOG_ERR, k, LOG_MODULE, "rescan: %m");
		return 0;
	}
	if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
		/* The directory itself went away: its ports with it. The rescan
		 * watches it again once it is back. */
		w->inotify = sd_event_source_disable_unref(w->inotify);
		k = gw_uart_rescan(u);
		if (k < 0)
			gw_log_errno(LOG_ERR, k, LOG_MODULE, "rescan: %m");
		return 0;
	}
	if (ev->len == 0 || asprintf(&path, "%s/%s", w->dir, ev->name) < 0)
		return 0;
	if (fnmatch(w->glob, path, FNM_PATHNAME) != 0)
		return 0;
	if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
		watched_gone(u, path);
	if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
		k = watched_add(u, path);
		if (k < 0)
			gw_log_errno(LOG_ERR, k, LOG_MODULE, "%s: %m", path);
	}
	return 0;
}

static int watch_arm(struct uart_watch *w)
{
	int k;

	if (!w->dir || w->inotify)
		return 0;
	k = sd_event_add_inotify(w->u->m->event, &w->inotify, w->dir,
				 IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
					 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR,
				 gw_uart_on_inotify, w);
	if (k < 0)
		return k;
	(void)sd_event_source_set_description(w->inotify, "gw-uart-watch");
	return 0;
}

static struct uart_watch *watch_free(struct uart_watch *w)
{
	if (!w)
		return NULL;
	sd_event_source_disable_unref(w->inotify);
	free(w->glob);
	free(w->dir);
	free(w);
	return NULL;
}

static void watches_clear(struct gw_uart *u)
{
	for (size_t i = 0; i < u->n_watches; i++)
		watch_free(u->watches[i]);
	free(u->watches);
	u->watches = NULL;
	u->n_watches = 0;
}

static int watches_load(struct gw_uart *u)
{
	char **globs = NULL;
	size_t n = 0;
	int k;

	k = split_list(u->m->config.serial_watch, &globs, &n);
	if (k < 0)
		return k;
	u->watches = calloc(n ? n : 1, sizeof(*u->watches));
	if (!u->watches) {
		strv_free(globs, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct uart_watch *w;
		const char *slash = strrchr(globs[i], '/');
		size_t dirlen;

		if (globs[i][0] != '/' || !slash[1]) {
			gw_warn(LOG_MODULE, "[serial] watch: \"%s\" is not an absolute path glob, "
				"ignoring it", globs[i]);
			continue;
		}
		dirlen = (size_t)(slash - globs[i]);
		w = calloc(1, sizeof(*w));
		if (!w) {
			strv_free(globs, n);
			return -ENOMEM;
		}
		u->watches[u->n_watches++] = w;
		w->u = u;
		w->glob = TAKE_PTR(globs[i]);
		if (!glob_has_magic(w->glob, dirlen)) {
			w->dir = dirlen == 0 ? strdup("/") : strndup(w->glob, dirlen);
			if (!w->dir) {
				strv_free(globs, n);
				return -ENOMEM;
			}
		} else {
			gw_notice(LOG_MODULE,
				  "[serial] watch: \"%s\" has wildcards in its directory, only the "
				  "rescan sees it change",
				  w->glob);
		}
	}
	strv_free(globs, n);
	return 0;
}

static int watches_scan(struct gw_uart *u)
{
	int k;

	for (size_t i = 0; i < u->n_watches; i++) {
		struct uart_watch *w = u->watches[i];
		glob_t g = { 0 };

		k = watch_arm(w);
		if (k < 0 && k != -ENOENT && k != -ENOTDIR)
			gw_log_errno(LOG_WARNING, k, LOG_MODULE, "watching %s, ignoring: %m",
				     w->dir);
		k = glob(w->glob, 0, NULL, &g);
		if (k == GLOB_NOSPACE) {
			globfree(&g);
			return -ENOMEM;
		}
		for (size_t j = 0; k == 0 && j < g.gl_pathc; j++) {
			int r = watched_add(u, g.gl_pathv[j]);

			if (r < 0) {
				globfree(&g);
				return r;
			}
		}
		globfree(&g);
	}
	return 0;
}

/* ---- rescans ---- */

static uint64_t usec_interval(struct gw_uart *u)
{
	return (uint64_t)u->m->config.serial_watch_interval_ms * 1000;
}

/* Marks what the globs (and the enumeration when udev is true) see now and
 * removes the rest; a watched path is also gone when its link now leads
 * nowhere. */
static int rescan(struct gw_uart *u, bool udev)
{
	int k;

	for (size_t i = 0; i < u->n_ports; i++)
		u->ports[i]->seen = !udev && !u->ports[i]->watched;
	k = watches_scan(u);
	if (k < 0)
		return k;
	if (udev) {
		k = udev_enumerate(u);
		if (k < 0)
			return k;
	}
	for (size_t i = 0; i < u->n_ports;) {
		struct uart_port *p = u->ports[i];

		if (!p->seen) {
			port_remove(u, p);
			continue;
		}
		i++;
	}
	return 0;
}

int gw_uart_rescan(struct gw_uart *u)
{
	return u->started ? rescan(u, true) : 0;
}

static int gw_uart_on_rescan(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gw_uart *u = userdata;
	int k;

	/* The udev monitor follows ttys as they come; without it (no netlink)
	 * the rescan does, late but surely. */
	k = rescan(u, !u->monitor);
	if (k < 0)
		gw_log_errno(LOG_ERR, k, LOG_MODULE, "rescan: %m");
	k = sd_event_source_set_time_relative(s, usec_interval(u));
	if (k >= 0)
		k = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	if (k < 0)
		gw_log_errno(LOG_ERR, k, LOG_MODULE, "rearming the rescan timer: %m");
	return 0;
}

static int rescan_timer_setup(struct gw_uart *u)
{
	uint64_t usec = usec_interval(u);
	int k;

	u->rescan = sd_event_source_disable_unref(u->rescan);
	if (usec == 0 || (u->n_watches == 0 && u->monitor))
		return 0;
	k = sd_event_add_time_relative(u->m->event, &u->rescan, CLOCK_MONOTONIC, usec, usec / 10,
				       gw_uart_on_rescan, u);
	if (k < 0)
		return k;
	(void)sd_event_source_set_description(u->rescan, "gw-uart-rescan");
	return 0;
}

/* ---- the object ---- */

int gw_uart_new(struct gw_manager *m, struct gw_uart **ret)
{
	struct gw_uart *u = calloc(1, sizeof(*u));
	int k;

	if (!u)
		return -ENOMEM;
	u->m = m;
	k = rules_load(&m->config, &u->rules);
	if (k < 0) {
		free(u);
		return k;
	}
	*ret = u;
	return 0;
}

struct gw_uart *gw_uart_free(struct gw_uart *u)
{
	if (!u)
		return NULL;
	u->observer = NULL;
	sd_device_monitor_unref(u->monitor);
	sd_event_source_disable_unref(u->rescan);
	watches_clear(u);
	for (size_t i = 0; i < u->n_ports; i++)
		port_free(u->ports[i]);
	free(u->ports);
	rules_clear(&u->rules);
	free(u);
	return NULL;
}

int gw_uart_start(struct gw_uart *u)
{
	int k;

	if (u->started)
		return -EALREADY;
	if (!u->m->registry)
		return -ENXIO;
	if (!u->m->config.serial) {
		gw_info(LOG_MODULE, "serial discovery disabled ([serial] enabled = no)");
		return 0;
	}
	k = udev_monitor_start(u);
	if (k < 0)
		gw_log_errno(LOG_NOTICE, k, LOG_MODULE,
			     "no udev monitor, ttys are seen at rescans only: %m");
	k = watches_load(u);
	if (k < 0)
		return k;
	u->started = true;
	k = gw_uart_rescan(u);
	if (k < 0)
		return k;
	return rescan_timer_setup(u);
}

int gw_uart_reload(struct gw_uart *u)
{
	struct uart_rules rules;
	int k;

	if (!u->started)
		return 0;
	k = rules_load(&u->m->config, &rules);
	if (k < 0)
		return k;
	rules_clear(&u->rules);
	u->rules = rules;
	watches_clear(u);
	k = watches_load(u);
	if (k < 0)
		return k;
	for (size_t i = 0; i < u->n_ports;) {
		struct uart_port *p = u->ports[i];

		if (p->watched && !watched_path_wanted(u, p->path)) {
			port_remove(u, p);
			continue;
		}
		if (p->state == GW_UART_PORT_SKIPPED || p->state == GW_UART_PORT_CONFIGURED)
			port_judge(u, p);
		i++;
	}
	k = gw_uart_rescan(u);
	if (k < 0)
		return k;
	return rescan_timer_setup(u);
}

enum gw_uart_port_state gw_uart_get_port_state(struct gw_uart *u, const char *path)
{
	struct uart_port *p = port_find(u, path);

	return p ? p->state : GW_UART_PORT_NONE;
}

void gw_uart_set_port_observer(struct gw_uart *u, gw_uart_port_fn fn, void *userdata)
{
	u->observer = fn;
	u->observer_userdata = userdata;
}
