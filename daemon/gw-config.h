/* gw-config: smpgwd's configuration: every key, its default, parsing from INI and the command line */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A device listed in the configuration ([device NAME] sections). */
struct gw_config_device {
	char *name;
	char *transport; /* "udp" or "serial" */
	char *address;   /* udp: host:port; serial: device path */
	unsigned baud;
	char *labels;    /* comma-separated */
};

struct gw_config {
	/* [daemon] */
	char *state_dir;
	char *log_level;       /* err, warning, notice, info, debug */
	char *debug;           /* comma-separated modules logged at debug level, or "all" */
	unsigned shutdown_timeout_ms; /* SIGTERM: how long in-flight work may take to finish */
	/* [http] */
	char *listen;          /* host:port; loopback by default */
	char *tls_cert;
	char *tls_key;
	uint64_t max_body;
	unsigned max_connections;
	unsigned request_timeout_ms;
	/* [smp] */
	unsigned timeout_ms;
	unsigned upload_first_timeout_ms;
	unsigned retries;
	/* [ble] */
	bool ble;
	char *bluez_bus;       /* "system" or a D-Bus address */
	unsigned ble_max_connections;
	unsigned ble_idle_timeout_ms;
	/* [serial] */
	bool serial;
	char *serial_match;    /* comma-separated globs of tty names/paths probed for SMP */
	char *serial_usb_ids;  /* comma-separated vendor:product[:serial glob] */
	unsigned serial_baud;
	char *serial_watch;    /* comma-separated globs of device paths watched outside udev */
	unsigned serial_watch_interval_ms;
	/* [poll] */
	unsigned poll_interval_ms;
	unsigned poll_jitter_pct;
	bool poll_during_upload;
	/* [rollouts] */
	unsigned rollouts_max_jobs; /* 0: no cap beyond each rollout's max_parallel */
	/* [device NAME] sections */
	struct gw_config_device *devices;
	size_t n_devices;
};

/* When a changed key takes effect after SIGHUP. */
enum gw_config_apply {
	GW_CONFIG_APPLY_NOW,	   /* at once */
	GW_CONFIG_APPLY_NEW_LINKS, /* for device links opened after the reload */
	GW_CONFIG_APPLY_RESTART,   /* only when smpgwd starts again */
};

/* Describes one key for documentation and tests: section, key, default as text. */
struct gw_config_key_info {
	const char *section;
	const char *key;
	const char *default_value;
	const char *help;
	enum gw_config_apply apply;
};

/* Fills *c with every default. */
int gw_config_init(struct gw_config *c);
void gw_config_clear(struct gw_config *c);

/* Reads an INI file over the current values. Unknown keys and bad values
 * produce a warning line each through warn() and keep the previous value.
 * Returns 0, -ENOENT when the file does not exist, or -errno on I/O errors. */
typedef void (*gw_config_warn_fn)(const char *msg, void *userdata);
int gw_config_load(struct gw_config *c, const char *path, gw_config_warn_fn warn, void *userdata);

/* Sets one key as if read from the file (command-line overrides). -EINVAL
 * for an unknown key or a bad value, -ENOMEM. */
int gw_config_set(struct gw_config *c, const char *section, const char *key, const char *value);

/* For a reload: every key read only at start (GW_CONFIG_APPLY_RESTART) whose
 * value in next differs from the running one gets changed() called and the
 * running value copied back into next, so the configuration in use says
 * what the process does. 0 or -ENOMEM. */
typedef void (*gw_config_changed_fn)(const char *section, const char *key, void *userdata);
int gw_config_keep_start_keys(struct gw_config *next, const struct gw_config *running,
			      gw_config_changed_fn changed, void *userdata);

/* The table of every key, for --help, the man page and the test that checks
 * etc/smpgwd.conf documents them all. */
const struct gw_config_key_info *gw_config_keys(size_t *ret_n);
