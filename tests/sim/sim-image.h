/* sim-image: MCUboot's two slots, their trailers, the upload session and the boot decision */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim-config.h"
#include "sim-smp.h"
#include "smp-mcuboot.h"

/* The model follows MCUboot's swap modes (scratch, move, offset) and
 * overwrite-only: slot 0 (primary) always runs; a slot's trailer holds magic,
 * image_ok and copy_done; the swap type for the next boot is derived from
 * both trailers with bootutil's table; every image fact (version, hash,
 * flags) is parsed from the bytes actually in the slot. */
struct sim_image;

struct sim_image_params {
	uint32_t slot_size;
	int mode;			    /* bootloader mode: 1, 3, 9 swap; 2 overwrite-only */
	const char *dir;		    /* where slots and trailers persist, or NULL */
	const char *ident;		    /* makes the factory image of each device unique */
	struct smp_mcuboot_version version; /* of the factory image */
	struct sim_flash_stats *stats;	    /* counters to move, may be NULL */
};

/* Loads the slots from dir when it holds them, else writes a valid factory
 * image (hash-only TLV) into the primary slot. Returns 0, -ENOMEM, or a
 * negative errno from the state directory. */
int sim_image_new(const struct sim_image_params *p, struct sim_image **ret);
struct sim_image *sim_image_free(struct sim_image *img);

enum sim_swap_type {
	SIM_SWAP_NONE,
	SIM_SWAP_TEST,
	SIM_SWAP_PERM,
	SIM_SWAP_REVERT,
};

const char *sim_swap_type_to_string(enum sim_swap_type t);

/* What MCUboot did at one boot. */
struct sim_boot_report {
	enum sim_swap_type swap;  /* the swap performed (NONE when none) */
	bool invalid_secondary;	  /* the image to test failed validation and was erased */
	bool failed_and_reverted; /* the new image crashed and MCUboot reverted it */
	bool bricked;		  /* nothing bootable, or a permanent image that crashes */
	uint64_t copied_bytes;	  /* bytes MCUboot moved (for the swap time) */
	char version[SMP_MCUBOOT_VERSION_STRING_MAX]; /* of the image now running */
};

/* RAM is lost: the upload session is forgotten. */
void sim_image_power_off(struct sim_image *img);
/* Runs MCUboot's decision and starts the application. faults decide which
 * image crashes at boot; auto_confirm makes a test image confirm itself. */
int sim_image_boot(struct sim_image *img, const struct sim_faults *faults, bool auto_confirm,
		   struct sim_boot_report *ret);

/* boot_write_img_confirmed(): what the application (or the shell's
 * "mcuboot confirm") does. Returns 0 or -EIO for a bad trailer. */
int sim_image_confirm_running(struct sim_image *img);
/* The swap type MCUboot would perform at the next reset. */
enum sim_swap_type sim_image_swap_type(struct sim_image *img);
/* Version of the running image, "?" when unreadable. */
const char *sim_image_running_version(struct sim_image *img,
				      char buf[static SMP_MCUBOOT_VERSION_STRING_MAX]);
/* Writes a human summary of both slots (the shell's "mcuboot" command). */
void sim_image_describe(struct sim_image *img, char *buf, size_t size);

/* Image group handlers (smp-protocol.md §6), Zephyr's img_mgmt. */
int sim_image_state_read(struct sim_ctx *c);
int sim_image_state_write(struct sim_ctx *c);
int sim_image_upload(struct sim_ctx *c);
int sim_image_erase(struct sim_ctx *c);
int sim_image_slot_info(struct sim_ctx *c);

/* Builds a valid hash-only MCUboot image of payload_len bytes of filler
 * derived from ident (also used by the tests). Returns 0 or -ENOMEM. */
int sim_image_build(const char *ident, const struct smp_mcuboot_version *v, size_t payload_len,
		    uint8_t **ret, size_t *ret_len);
