/* sim-device: one simulated Zephyr device: its state and the SMP server that answers it */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim-config.h"
#include "sim-image.h"
#include "sim-smp.h"

/* Everything here is synchronous and free of I/O on sockets: a frame goes
 * in, response packets and effects come out. sim-node puts a device on the
 * event loop. */
struct sim_device;
struct sim_settings;
struct sim_fs;

/* index: the device number (identity, version build number). scratch: a
 * directory for the file system when cfg->state_dir is NULL (the device
 * uses <scratch>/<name>). The device boots (sim_device_boot) before it
 * returns. Returns 0, -ENOMEM, or a negative errno from the state files. */
int sim_device_new(const struct sim_config *cfg, unsigned index, const char *scratch,
		   struct sim_device **ret);
struct sim_device *sim_device_free(struct sim_device *d);

struct sim_packet {
	uint8_t *data;
	size_t len;
};

/* What processing one transport frame produced. */
struct sim_result {
	struct sim_packet *pkts; /* responses, in order, each a whole SMP packet */
	size_t n_pkts;
	uint64_t busy_us; /* how long the device worked on it */
	bool reset;	  /* reboot after the responses are sent */
	bool power_loss;  /* reboot now; nothing more is answered */
};

void sim_result_clear(struct sim_result *r);

/* Processes a frame as Zephyr's smp_process_request_packet() does: packets
 * one after another, one response each, stopping at the first error; fewer
 * than 8 bytes are dropped silently. link identifies the transport (the FS
 * group's ownership). Returns 0 or -ENOMEM; *ret must be cleared with
 * sim_result_clear(). */
int sim_device_process(struct sim_device *d, const void *link, const uint8_t *frame, size_t len,
		       struct sim_result *ret);

/* RAM is lost: upload session, open file, runtime settings. */
void sim_device_power_off(struct sim_device *d);
/* MCUboot runs, then the application starts. */
int sim_device_boot(struct sim_device *d, struct sim_boot_report *ret);
/* The application is running from now on (uptime counts from here). */
void sim_device_started(struct sim_device *d);

/* Identity. */
const char *sim_device_name(const struct sim_device *d);
const char *sim_device_serial(const struct sim_device *d);
const char *sim_device_address(const struct sim_device *d);
unsigned sim_device_index(const struct sim_device *d);

/* For the handlers. */
const struct sim_config *sim_device_config(const struct sim_device *d);
struct sim_image *sim_device_image(struct sim_device *d);
struct sim_settings *sim_device_settings(struct sim_device *d);
struct sim_fs *sim_device_fs(struct sim_device *d);
uint64_t sim_device_uptime_ms(const struct sim_device *d);
/* An OS info field ('s', 'n', ...) as the device reports it. */
const char *sim_device_info(const struct sim_device *d, enum sim_info_field f);
/* True once, when an image upload crosses the reset-during-upload offset. */
bool sim_device_upload_fault(struct sim_device *d, uint64_t before, uint64_t after);

/* The loop tells the device how many of its SMP buffers are in use, for
 * the memory pool statistics. */
void sim_device_set_buffers_in_use(struct sim_device *d, unsigned n);
