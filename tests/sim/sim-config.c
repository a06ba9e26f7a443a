/* sim-config: everything the command line sets, shared by all simulated devices */
#include <string.h>

#include "sim-config.h"

void sim_config_init(struct sim_config *c)
{
	*c = (struct sim_config){
	    .count = 1,
	    .name_prefix = "sim-",
	    .app_version = {.major = 1, .minor = 0, .revision = 0, .build = 0},
	    .buf_size = 2048,
	    .buf_count = 4,
	    .smp_version = 2,
	    .slot_size = 0x69000,
	    .bootloader_mode = 3,
	    .image_check = true,
	    .reboot_delay_us = 500 * 1000,
	    .flash_write_us_per_kib = 2000,
	    .flash_erase_us_per_kib = 1000,
	    .swap_us_per_kib = 2000,
	    .mpstat = true,
	    .fs_mount = "/lfs1",
	    .seed = 1,
	    .faults =
		{
		    .reconnect_delay_us = 1000 * 1000,
		    .reset_during_upload = -1,
		},
	};
}
