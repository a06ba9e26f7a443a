/* gw-manager: the object that owns smpgwd's event loop and every module on it */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "daemon/gw-bluez.h"
#include "daemon/gw-devices.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-poller.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-static.h"
#include "daemon/gw-uart.h"
#include "db/db.h"

#define GW_STATUS_INTERVAL_USEC (10ULL * 1000 * 1000)

uint64_t gw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void manager_on_config_warning(const char *msg, void *userdata)
{
	gw_warn("config", "%s", msg);
}

static int manager_apply_overrides(struct gw_config *c, const struct gw_manager_overrides *o)
{
	static const struct {
		size_t off;
		const char *section, *key;
	} map[] = {
		{ offsetof(struct gw_manager_overrides, state_dir), "daemon", "state_dir" },
		{ offsetof(struct gw_manager_overrides, listen), "http", "listen" },
		{ offsetof(struct gw_manager_overrides, log_level), "daemon", "log_level" },
		{ offsetof(struct gw_manager_overrides, debug), "daemon", "debug" },
	};

	if (!o)
		return 0;
	for (size_t i = 0; i < ELEMENTSOF(map); i++) {
		const char *v = *(const char *const *)((const char *)o + map[i].off);
		int r;

		if (!v)
			continue;
		r = gw_config_set(c, map[i].section, map[i].key, v);
		if (r < 0)
			return gw_log_errno(LOG_ERR, r, "config", "bad value \"%s\" for --%s", v,
					    map[i].key);
	}
	return 0;
}

/* Reads file + overrides into a fresh config; on success replaces *c. */
static int manager_read_config(const char *path, bool explicit_path,
			       const struct gw_manager_overrides *o, struct gw_config *c)
{
	struct gw_config next;
	int r;

	r = gw_config_init(&next);
	if (r < 0)
		return r;
	r = gw_config_load(&next, path, manager_on_config_warning, NULL);
	if (r == -ENOENT && !explicit_path) {
		gw_info("config", "%s not found, using the built-in defaults", path);
	} else if (r < 0) {
		gw_log_errno(LOG_ERR, r, "config", "cannot read %s: %m", path);
		gw_config_clear(&next);
		return r;
	}
	r = manager_apply_overrides(&next, o);
	if (r < 0) {
		gw_config_clear(&next);
		return r;
	}
	r = gw_log_setup(next.log_level, next.debug);
	if (r < 0) {
		gw_config_clear(&next);
		return r;
	}
	gw_config_clear(c);
	*c = next;
	return 0;
}

static int manager_on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct gw_manager *m = userdata;

	if (si->ssi_signo == SIGHUP) {
		gw_manager_reload(m);
		return 0;
	}
	if (m->stopping) {
		gw_notice("core", "second %s: leaving now", strsignal((int)si->ssi_signo));
		return sd_event_exit(m->event, 0);
	}
	gw_info("core", "%s: shutting down", strsignal((int)si->ssi_signo));
	m->stopping = true;
	sd_notify(false, "STOPPING=1\nSTATUS=Shutting down");
	/* Batched registry writes are flushed after the loop returns. Work that
	 * must survive (rollout jobs) is committed before it is acted on, so
	 * leaving here loses nothing. */
	return sd_event_exit(m->event, 0);
}

static void manager_notify_status(struct gw_manager *m)
{
	size_t online = m->registry ? gw_registry_count_online(m->registry) : 0;
	size_t known = m->registry ? gw_registry_count(m->registry) : 0;

	sd_notifyf(false, "STATUS=%zu of %zu devices online, 0 jobs running", online, known);
}

static int manager_on_status_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gw_manager *m = userdata;

	manager_notify_status(m);
	return sd_event_source_set_time_relative(s, GW_STATUS_INTERVAL_USEC);
}

int gw_manager_new(const char *config_path, const struct gw_manager_overrides *o,
		   struct gw_manager **ret)
{
	struct gw_manager *m;
	sigset_t mask;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->config_path = strdup(config_path ? config_path : GW_DEFAULT_CONFIG);
	if (!m->config_path) {
		free(m);
		return -ENOMEM;
	}
	r = manager_read_config(m->config_path, config_path != NULL, o, &m->config);
	if (r < 0)
		goto fail;
	r = sd_event_new(&m->event);
	if (r < 0)
		goto fail;

	/* Signals must be blocked before sd-event can take them (main blocks
	 * them first thing, so one arriving during start-up waits for the loop). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((r = sd_event_add_signal(m->event, NULL, SIGTERM, manager_on_signal, m)) < 0 ||
	    (r = sd_event_add_signal(m->event, NULL, SIGINT, manager_on_signal, m)) < 0 ||
	    (r = sd_event_add_signal(m->event, NULL, SIGHUP, manager_on_signal, m)) < 0)
		goto fail;
	/* Pings WATCHDOG=1 from the loop itself when WatchdogSec= is set: a stuck loop stops them. */
	r = sd_event_set_watchdog(m->event, true);
	if (r < 0)
		goto fail;
	*ret = m;
	return 0;
fail:
	gw_log_errno(LOG_ERR, r, "core", "cannot set up: %m");
	gw_manager_free(m);
	return r;
}

static int manager_open_bluez_bus(struct gw_manager *m)
{
	const char *bus = m->config.bluez_bus;
	int r;

	if (strcmp(bus, "system") == 0) {
		r = sd_bus_open_system(&m->bluez_bus);
	} else {
		r = sd_bus_new(&m->bluez_bus);
		if (r >= 0)
			r = sd_bus_set_address(m->bluez_bus, bus);
		if (r >= 0)
			r = sd_bus_set_bus_client(m->bluez_bus, true);
		if (r >= 0)
			r = sd_bus_start(m->bluez_bus);
	}
	if (r < 0) {
		m->bluez_bus = sd_bus_unref(m->bluez_bus);
		return r;
	}
	return sd_bus_attach_event(m->bluez_bus, m->event, SD_EVENT_PRIORITY_NORMAL);
}

int gw_manager_start(struct gw_manager *m)
{
	char path[4096], err[512] = "";
	int r;

	if (mkdir(m->config.state_dir, 0750) < 0 && errno != EEXIST)
		return gw_log_errno(LOG_ERR, errno, "core", "cannot create state directory %s: %m",
				    m->config.state_dir);
	snprintf(path, sizeof(path), "%s/smpgw.db", m->config.state_dir);
	r = db_open(path, &m->db, err, sizeof(err));
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "db", "%s", err);

	r = gw_registry_new(m, &m->registry);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "registry", "cannot load devices: %m");
	r = gw_devices_new(m, &m->devices);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "devices", "cannot set up device clients: %m");
	r = gw_static_reload(m);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "config", "cannot register the configured devices: %m");

	if (m->config.serial) {
		r = gw_uart_new(m, &m->uart);
		if (r >= 0)
			r = gw_uart_start(m->uart);
		if (r < 0)
			return gw_log_errno(LOG_ERR, r, "uart", "cannot watch serial ports: %m");
	}
	if (m->config.ble) {
		r = manager_open_bluez_bus(m);
		if (r >= 0)
			r = gw_bluez_new(m, &m->bluez);
		if (r >= 0)
			r = gw_bluez_start(m->bluez);
		/* A gateway without Bluetooth still serves its serial and UDP devices. */
		if (r < 0) {
			gw_log_errno(LOG_WARNING, r, "bluez",
				     "BLE discovery unavailable (%m): set [ble] enabled = no to silence this");
			m->bluez = gw_bluez_free(m->bluez);
		}
	}
	r = gw_poller_new(m, &m->poller);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "poller", "cannot start polling: %m");

	r = sd_event_add_time_relative(m->event, &m->status_timer, CLOCK_MONOTONIC,
				       GW_STATUS_INTERVAL_USEC, 0, manager_on_status_timer, m);
	if (r < 0)
		return r;
	sd_event_source_set_description(m->status_timer, "status");

	gw_info("core", "started: %zu devices known, state in %s", gw_registry_count(m->registry),
		m->config.state_dir);
	sd_notify(false, "READY=1");
	manager_notify_status(m);
	return 0;
}

int gw_manager_run(struct gw_manager *m)
{
	int r = sd_event_loop(m->event);

	if (m->registry)
		gw_registry_flush(m->registry);
	return r < 0 ? gw_log_errno(LOG_ERR, r, "core", "event loop failed: %m") : 0;
}

int gw_manager_reload(struct gw_manager *m)
{
	struct gw_config next = { 0 };
	int r;

	gw_info("config", "reloading %s", m->config_path);
	r = gw_config_init(&next);
	if (r < 0)
		return r;
	r = manager_read_config(m->config_path, true, NULL, &next);
	if (r < 0) {
		gw_config_clear(&next);
		gw_warn("config", "reload failed, keeping the running configuration");
		return r;
	}
	/* What the process was started with stays: the state directory and the
	 * listener cannot move under a running daemon. */
	free(next.state_dir);
	next.state_dir = strdup(m->config.state_dir);
	free(next.listen);
	next.listen = strdup(m->config.listen);
	if (!next.state_dir || !next.listen) {
		gw_config_clear(&next);
		return -ENOMEM;
	}
	gw_config_clear(&m->config);
	m->config = next;
	/* Devices freed from [device] sections become free to probe: static first. */
	if (m->registry)
		gw_static_reload(m);
	if (m->uart)
		gw_uart_reload(m->uart);
	return 0;
}

struct gw_manager *gw_manager_free(struct gw_manager *m)
{
	if (!m)
		return NULL;
	sd_event_source_unref(m->status_timer);
	m->poller = gw_poller_free(m->poller);
	m->bluez = gw_bluez_free(m->bluez);
	m->uart = gw_uart_free(m->uart);
	m->devices = gw_devices_free(m->devices);
	m->registry = gw_registry_free(m->registry);
	m->db = db_close(m->db);
	m->bluez_bus = sd_bus_flush_close_unref(m->bluez_bus);
	m->event = sd_event_unref(m->event);
	gw_config_clear(&m->config);
	free(m->config_path);
	free(m);
	return NULL;
}
