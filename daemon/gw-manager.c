/* gw-manager: the object that owns smpgwd's event loop and every module on it */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "api/api-http.h"
#include "api/api.h"
#include "daemon/gw-autoupdate.h"
#include "daemon/gw-bluez.h"
#include "daemon/gw-devices.h"
#include "daemon/gw-events.h"
#include "daemon/gw-firmware.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-metrics.h"
#include "daemon/gw-poller.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-rollouts.h"
#include "daemon/gw-static.h"
#include "daemon/gw-tokens.h"
#include "daemon/gw-uart.h"
#include "db/db.h"

#define GW_STATUS_INTERVAL_USEC (10ULL * 1000 * 1000)

uint64_t gw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int gw_manager_schema_version(struct gw_manager *m)
{
	return m && m->db ? db_schema_version(m->db) : 0;
}

unsigned long long gw_manager_db_writes(struct gw_manager *m)
{
	return m && m->db ? db_write_count(m->db) : 0;
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

/* --- shutdown: stop hooks and the bound --- */

#define GW_STOP_POLL_USEC (100ULL * 1000)

struct gw_stop_hook {
	int (*busy)(void *userdata);
	void *userdata;
};

int gw_manager_add_stop_hook(struct gw_manager *m, int (*busy)(void *userdata), void *userdata)
{
	struct gw_stop_hook *h;

	h = reallocarray(m->stop_hooks, m->n_stop_hooks + 1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	m->stop_hooks = h;
	m->stop_hooks[m->n_stop_hooks++] = (struct gw_stop_hook){ busy, userdata };
	return 0;
}

void gw_manager_remove_stop_hook(struct gw_manager *m, int (*busy)(void *userdata),
				 void *userdata)
{
	for (size_t i = 0; i < m->n_stop_hooks; i++) {
		if (m->stop_hooks[i].busy != busy || m->stop_hooks[i].userdata != userdata)
			continue;
		memmove(m->stop_hooks + i, m->stop_hooks + i + 1,
			(m->n_stop_hooks - i - 1) * sizeof(*m->stop_hooks));
		/* Managers built by hand in tests are never freed: leave nothing. */
		if (--m->n_stop_hooks == 0)
			m->stop_hooks = (free(m->stop_hooks), NULL);
		return;
	}
}

/* What every module still has in flight. */
static unsigned manager_busy(struct gw_manager *m)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->n_stop_hooks; i++) {
		int r = m->stop_hooks[i].busy(m->stop_hooks[i].userdata);

		if (r < 0)
			gw_log_errno(LOG_WARNING, r, "core",
				     "shutdown: a module cannot tell its work in flight, not waiting "
				     "for it: %m");
		else
			n += (unsigned)r;
	}
	return n;
}

static uint64_t manager_now_usec(struct gw_manager *m)
{
	uint64_t now = 0;

	(void)sd_event_now(m->event, CLOCK_MONOTONIC, &now);
	return now;
}

static int manager_on_stop_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gw_manager *m = userdata;
	uint64_t waited_ms = (manager_now_usec(m) - m->stop_started_usec) / 1000;
	unsigned n = manager_busy(m);

	if (n == 0) {
		gw_info("core", "shutdown: the work in flight is done after %llu ms",
			(unsigned long long)waited_ms);
		return sd_event_exit(m->event, 0);
	}
	if (waited_ms >= m->config.shutdown_timeout_ms) {
		gw_warn("core", "shutdown: %u task(s) still in flight after %llu ms "
			"([daemon] shutdown_timeout), leaving them", n,
			(unsigned long long)waited_ms);
		return sd_event_exit(m->event, 0);
	}
	sd_notifyf(false, "STATUS=Shutting down: %u task(s) in flight", n);
	/* A timer is one-shot: moving it does not enable it again. */
	(void)sd_event_source_set_time_relative(s, GW_STOP_POLL_USEC);
	return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* Takes no new work and waits for what is in flight, within the bound. */
static int manager_stop(struct gw_manager *m)
{
	unsigned n;
	int r;

	m->stopping = true;
	m->stop_started_usec = manager_now_usec(m);
	n = manager_busy(m);
	sd_notifyf(false, "STOPPING=1\nSTATUS=Shutting down: %u task(s) in flight", n);
	/* Batched registry writes are flushed after the loop returns. Work that
	 * must survive (rollout jobs) is committed before it is acted on. */
	if (n == 0 || m->config.shutdown_timeout_ms == 0)
		return sd_event_exit(m->event, 0);
	gw_info("core", "shutdown: waiting for %u task(s) in flight, at most %u ms", n,
		m->config.shutdown_timeout_ms);
	r = sd_event_add_time_relative(m->event, &m->stop_timer, CLOCK_MONOTONIC,
				       GW_STOP_POLL_USEC, 0, manager_on_stop_timer, m);
	if (r < 0) {
		gw_log_errno(LOG_WARNING, r, "core", "shutdown: cannot wait, leaving now: %m");
		return sd_event_exit(m->event, 0);
	}
	(void)sd_event_source_set_description(m->stop_timer, "gw-manager-stop");
	return 0;
}

/* --- end of shutdown --- */

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
	return manager_stop(m);
}

static void manager_notify_status(struct gw_manager *m)
{
	size_t online = m->registry ? gw_registry_count_online(m->registry) : 0;
	size_t known = m->registry ? gw_registry_count(m->registry) : 0;

	sd_notifyf(false, "STATUS=%zu of %zu devices online, %u jobs running", online, known,
		   gw_rollouts_count_active(m->rollouts));
}

static int manager_on_status_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gw_manager *m = userdata;

	manager_notify_status(m);
	/* A timer is one-shot: moving it does not enable it again. */
	(void)sd_event_source_set_time_relative(s, GW_STATUS_INTERVAL_USEC);
	return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
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

/* --- the REST API --- */

/* Bearer tokens are checked against the token store; without one (not
 * started) every token is refused. */
static int manager_on_http_auth(const char *secret, enum api_role *ret_role, char **ret_name,
				void *userdata)
{
	struct gw_manager *m = userdata;
	const char *role_name;
	char *name = NULL;
	int role;

	if (!m->tokens || gw_tokens_verify(m->tokens, secret, &role_name, &name) < 0)
		return -EACCES;
	role = api_role_from_string(role_name);
	if (role < 0) {
		free(name);
		return -EACCES;
	}
	*ret_role = (enum api_role)role;
	*ret_name = name;
	return 0;
}

static const char *manager_nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

static int manager_start_http(struct gw_manager *m)
{
	struct api_http_config cfg = {
		.listen = m->config.listen,
		.tls_cert = manager_nonempty(m->config.tls_cert),
		.tls_key = manager_nonempty(m->config.tls_key),
		.max_body = m->config.max_body,
		.max_connections = m->config.max_connections,
		.request_timeout_ms = m->config.request_timeout_ms,
		.use_listen_fds = true,
		.auth = manager_on_http_auth,
		.auth_userdata = m,
	};
	char tmp[4096];
	int r;

	/* Streamed bodies (firmware) land here: on the state's filesystem, private. */
	snprintf(tmp, sizeof(tmp), "%s/tmp", m->config.state_dir);
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return gw_log_errno(LOG_ERR, errno, "http", "cannot create %s: %m", tmp);
	cfg.tmp_dir = tmp;
	r = api_http_new(m->event, &cfg, &m->http);
	if (r == -EINVAL)
		return gw_log_errno(LOG_ERR, r, "http",
				    "bad [http] settings: listen \"%s\" must be HOST:PORT, and "
				    "tls_cert and tls_key must be set together",
				    m->config.listen);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "http", "cannot set up the API (%s): %m",
				    cfg.tls_cert ? "reading tls_cert and tls_key"
						 : m->config.listen);
	r = api_register(m->http, m);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "http", "cannot register the API routes: %m");
	r = api_http_start(m->http);
	if (r == -EBADMSG)
		return gw_log_errno(LOG_ERR, r, "http",
				    "[http] tls_cert and tls_key are not a usable PEM certificate "
				    "and key");
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "http", "cannot listen on %s: %m",
				    m->config.listen);
	{
		const char *host = m->config.listen, *colon = strrchr(host, ':');
		int n = colon ? (int)(colon - host) : (int)strlen(host);

		/* Tests and people read the address from this line. */
		gw_notice("http", "API at %s://%.*s:%d/api/v1", cfg.tls_cert ? "https" : "http",
			  n, host, api_http_port(m->http));
	}
	return 0;
}

/* --- end of the REST API --- */

int gw_manager_start(struct gw_manager *m)
{
	char path[4096], err[512] = "";
	int r;

	if (mkdir(m->config.state_dir, 0750) < 0 && errno != EEXIST)
		return gw_log_errno(LOG_ERR, errno, "core", "cannot create state directory %s: %m",
				    m->config.state_dir);
	snprintf(path, sizeof(path), "%s/" GW_DB_FILE, m->config.state_dir);
	r = db_open(path, &m->db, err, sizeof(err));
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "db", "%s", err);
	/* --- tokens and the firmware store: right after the database they live in --- */
	r = gw_tokens_new(m->db, &m->tokens);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "tokens", "cannot set up API tokens: %m");
	r = gw_firmware_new(m, &m->firmware);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "firmware", "cannot open the firmware store: %m");
	/* --- end of tokens and the firmware store --- */

	r = gw_registry_new(m, &m->registry);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "registry", "cannot load devices: %m");
	/* --- events and metrics: before the device clients, which they count and announce --- */
	r = gw_events_new(m, 0, &m->events);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "events", "cannot set up the event stream: %m");
	r = gw_metrics_new(&m->metrics);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "metrics", "cannot set up metrics: %m");
	/* --- end of events and metrics --- */
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
	/* --- the rollout engine: needs the firmware store, events, registry and clients --- */
	r = gw_rollouts_new(m, &m->rollouts);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "rollouts", "cannot resume the rollouts: %m");
	/* --- end of the rollout engine --- */
	/* --- auto-update rules: they start rollouts --- */
	r = gw_autoupdate_new(m, &m->autoupdate);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, "autoupdate", "cannot load the auto-update rules: %m");
	/* --- end of auto-update rules --- */

	/* --- the REST API: last, so that READY=1 means its listener is live --- */
	r = manager_start_http(m);
	if (r < 0)
		return r;
	/* --- end of the REST API --- */

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

/* A reload leaves what was set up at start as it is: say so for each key. */
static void manager_on_start_key_changed(const char *section, const char *key, void *userdata)
{
	gw_notice("config", "[%s] %s changed: it takes effect when smpgwd restarts", section, key);
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
	/* What the process set up at start stays (the state directory, the
	 * listener and its limits, the buses): m->config keeps saying so. */
	r = gw_config_keep_start_keys(&next, &m->config, manager_on_start_key_changed, NULL);
	if (r < 0) {
		gw_config_clear(&next);
		return r;
	}
	gw_config_clear(&m->config);
	m->config = next;
	/* Modules that copied a value at start take the new one. */
	if (m->devices)
		gw_devices_reload(m->devices);
	if (m->poller)
		gw_poller_reload(m->poller);
	if (m->rollouts)
		gw_rollouts_reload(m->rollouts);
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
	/* --- shutdown --- */
	sd_event_source_disable_unref(m->stop_timer);
	/* --- end of shutdown --- */
	/* --- the REST API: first, its aborts reach into the modules below --- */
	m->http = api_http_free(m->http);
	/* --- end of the REST API --- */
	/* --- auto-update rules: before the engine they start rollouts on --- */
	m->autoupdate = gw_autoupdate_free(m->autoupdate);
	/* --- end of auto-update rules --- */
	/* --- the rollout engine: before the clients its jobs use (progress is written) --- */
	m->rollouts = gw_rollouts_free(m->rollouts);
	/* --- end of the rollout engine --- */
	m->poller = gw_poller_free(m->poller);
	m->bluez = gw_bluez_free(m->bluez);
	m->uart = gw_uart_free(m->uart);
	m->devices = gw_devices_free(m->devices);
	/* --- events and metrics: after their subscribers and the clients they follow --- */
	m->metrics = gw_metrics_free(m->metrics);
	m->events = gw_events_free(m->events);
	/* --- end of events and metrics --- */
	m->registry = gw_registry_free(m->registry);
	/* --- tokens and the firmware store: their statements go before the database --- */
	m->firmware = gw_firmware_free(m->firmware);
	m->tokens = gw_tokens_free(m->tokens);
	/* --- end of tokens and the firmware store --- */
	/* Modules remove their stop hooks as they are freed above. */
	free(m->stop_hooks);
	m->stop_hooks = NULL;
	m->n_stop_hooks = 0;
	m->db = db_close(m->db);
	m->bluez_bus = sd_bus_flush_close_unref(m->bluez_bus);
	m->event = sd_event_unref(m->event);
	gw_config_clear(&m->config);
	free(m->config_path);
	free(m);
	return NULL;
}
