/* gw-manager: the object that owns smpgwd's event loop and every module on it */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "daemon/gw-config.h"

struct db;
struct gw_registry;
struct gw_devices;
struct gw_bluez;
struct gw_uart;
struct gw_poller;
struct gw_events;
struct gw_tokens;
struct gw_firmware;
struct gw_metrics;
struct gw_rollouts;
struct gw_autoupdate;
struct api_http;
struct gw_stop_hook;

/* One per process. Modules receive the manager and reach their siblings
 * through it; nothing else is global (except logging, see gw-log.h). Every
 * pointer may be NULL while the module is disabled or not started. */
struct gw_manager {
	sd_event *event;
	sd_bus *bluez_bus;          /* the bus BlueZ lives on ([ble] bus) */
	struct gw_config config;
	char *config_path;
	struct db *db;
	struct gw_registry *registry; /* every known device, persisted */
	struct gw_devices *devices;   /* live per-device clients, BLE budget */
	struct gw_bluez *bluez;       /* BLE discovery */
	struct gw_uart *uart;         /* tty discovery and probing */
	struct gw_poller *poller;     /* background refresh of what dashboards read */
	struct gw_events *events;     /* the event stream (SSE) */
	struct gw_tokens *tokens;     /* API bearer tokens */
	struct gw_firmware *firmware; /* the firmware store */
	struct gw_metrics *metrics;   /* gateway counters for /metrics */
	struct gw_rollouts *rollouts; /* the rollout engine and its job queue */
	struct gw_autoupdate *autoupdate; /* standing update rules (auto-updates) */
	struct api_http *http;        /* the REST API server */
	sd_event_source *status_timer;
	bool stopping;                /* SIGTERM/SIGINT came: start no new work */
	/* --- shutdown: stop hooks and the bound (gw_manager_add_stop_hook) --- */
	struct gw_stop_hook *stop_hooks;
	size_t n_stop_hooks;
	sd_event_source *stop_timer;
	uint64_t stop_started_usec;   /* CLOCK_MONOTONIC */
	/* --- end of shutdown --- */
};

/* Command-line overrides, applied over the file (NULL: keep). */
struct gw_manager_overrides {
	const char *state_dir;
	const char *listen;
	const char *log_level;
	const char *debug;
};

/* Reads the configuration (path NULL: the default /etc/smpgw/smpgwd.conf, a
 * missing default file is fine, a missing explicit one is an error) and
 * creates the loop. Returns 0 or -errno (logged). */
int gw_manager_new(const char *config_path, const struct gw_manager_overrides *o,
		   struct gw_manager **ret);
struct gw_manager *gw_manager_free(struct gw_manager *m);

/* Opens the database and starts every module; sends READY=1 once the
 * registry, links and listeners are live. */
int gw_manager_start(struct gw_manager *m);
/* Runs the loop until SIGTERM/SIGINT; returns the exit code. */
int gw_manager_run(struct gw_manager *m);
/* Reads the configuration again (SIGHUP). */
int gw_manager_reload(struct gw_manager *m);

/* Shutdown. On the first SIGTERM or SIGINT the manager sets m->stopping
 * (modules start no new work once it is set: check it before starting
 * any), sends STOPPING=1, and then waits for the work in flight: every
 * stop hook is asked busy(userdata) at once and then every 100 ms (timer
 * "gw-manager-stop"), and the loop ends when all of them answer 0 or when
 * [daemon] shutdown_timeout has passed (the work still in flight is then
 * dropped; what must survive is persisted before it is acted on). A second
 * signal ends the loop at once. busy() returns how many things of the
 * module are in flight, 0 when none; a negative errno counts as 0 (logged).
 * It must not start or end work itself: it is a question. A module adds its
 * hook when it is created and removes it before it is freed. Returns 0 or
 * -ENOMEM. */
int gw_manager_add_stop_hook(struct gw_manager *m, int (*busy)(void *userdata), void *userdata);
/* Removes the hook added with the same busy and userdata; unknown ones are ignored. */
void gw_manager_remove_stop_hook(struct gw_manager *m, int (*busy)(void *userdata),
				 void *userdata);

/* Milliseconds since the epoch (CLOCK_REALTIME), as stored in the database. */
uint64_t gw_now_ms(void);

/* The database's schema version (for GET /api/v1/version: api/ does not
 * reach db/ itself); 0 while no database is open. */
int gw_manager_schema_version(struct gw_manager *m);
/* Sqlite write statements since the database opened (db_write_count(), for
 * /metrics and the rollout benchmark); 0 while no database is open. */
unsigned long long gw_manager_db_writes(struct gw_manager *m);

#define GW_DEFAULT_CONFIG "/etc/smpgw/smpgwd.conf"
/* The database file in the state directory (the daemon and the token commands). */
#define GW_DB_FILE "smpgw.db"
