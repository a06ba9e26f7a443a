/* sim-config: everything the command line sets, shared by all simulated devices */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-mcuboot.h"

/* Misbehaviour on purpose. Rates are probabilities in [0, 1]; every random
 * decision draws from a per-link generator seeded from sim_config.seed, so a
 * run is reproducible. The struct may be changed while the loop runs (see
 * sim_faults_set()); links read it at each decision. */
struct sim_faults {
	double drop_rate;    /* each frame, either direction, is lost */
	double corrupt_rate; /* each frame gets one byte flipped */
	double dup_rate;     /* UDP: a response is sent twice */
	double reorder_rate; /* UDP: a response is held back behind the next one */
	double busy_rate;    /* a request is refused with {"rc": 10} (EBUSY) */
	uint64_t latency_us; /* added to every response */
	uint64_t jitter_us;  /* plus a uniform random part of at most this */
	uint64_t bandwidth;  /* bytes per second each link carries, 0 = unlimited */
	uint64_t
	    disconnect_after; /* bytes (both directions) after which the link drops, 0 = never */
	uint64_t reconnect_delay_us; /* how long a dropped link stays away */
	int64_t reset_during_upload; /* power loss once an image upload passes this offset, -1 =
					never */
	bool fail_boot; /* a newly swapped-in image crashes before it can confirm itself */
	bool has_fail_boot_version; /* ... only the image with this version */
	struct smp_mcuboot_version fail_boot_version;
};

enum sim_info_field {
	SIM_INFO_KERNEL_NAME, /* s */
	SIM_INFO_NODE_NAME,   /* n */
	SIM_INFO_RELEASE,     /* r */
	SIM_INFO_VERSION,     /* v */
	SIM_INFO_BUILD_DATE,  /* b */
	SIM_INFO_MACHINE,     /* m */
	SIM_INFO_PROCESSOR,   /* p */
	SIM_INFO_PLATFORM,    /* i */
	SIM_INFO_OS,	      /* o */
	_SIM_INFO_MAX,
};

struct sim_config {
	unsigned count;
	const char *name_prefix;		/* device i is "<prefix><i>" */
	struct smp_mcuboot_version app_version; /* initial image; build = device index */
	const char *state_dir;			/* NULL: nothing survives the process */

	/* Device limits, as MCUmgr params reports them. */
	uint32_t buf_size;
	uint32_t buf_count;
	/* 2: a v2-capable Zephyr (answers v1 requests in v1 style); 1: an older
	 * server that ignores the version bits and always answers v1. */
	unsigned smp_version;

	/* MCUboot. */
	uint32_t slot_size;
	int bootloader_mode;	  /* reported by bootloader info: 1, 2, 3 or 9 */
	bool image_check;	  /* CONFIG_IMG_ENABLE_IMAGE_CHECK: "match" in uploads */
	bool auto_confirm;	  /* the application confirms itself after a test boot */
	uint64_t reboot_delay_us; /* silence after a reset before the device is back */
	uint64_t flash_write_us_per_kib;
	uint64_t flash_erase_us_per_kib;
	uint64_t swap_us_per_kib; /* MCUboot copying an image at boot */

	bool mpstat;			 /* answer OS memory pool statistics (cmd 3) */
	const char *info[_SIM_INFO_MAX]; /* OS info fields; NULL = default */
	const char *fs_mount;		 /* mount point of the file system, e.g. "/lfs1" */

	uint64_t seed;
	struct sim_faults faults;
};

/* Fills the defaults documented in smp-sim --help. */
void sim_config_init(struct sim_config *c);
