/* sim-fs: a device file system (a host directory behind a mount point) and the FS group */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "sim-smp.h"

/* The device sees one mount point (e.g. "/lfs1") backed by a host directory;
 * paths never leave it ("." and ".." components are invalid names). The FS
 * group's single open transfer (upload or download) lives in RAM, belongs to
 * one transport, and closes after 4 s idle, as in Zephyr's fs_mgmt. */
struct sim_fs;

/* root: the host directory (created when missing). mount: the device path.
 * Returns 0, -ENOMEM or a negative errno from creating root. */
int sim_fs_new(const char *root, const char *mount, struct sim_flash_stats *stats,
	       struct sim_fs **ret);
struct sim_fs *sim_fs_free(struct sim_fs *fs);

/* RAM is lost: the open transfer is forgotten. */
void sim_fs_power_off(struct sim_fs *fs);
/* Called at every boot: appends a line to <mount>/logs/boot.log, as an
 * application logging its boots would. */
void sim_fs_boot(struct sim_fs *fs, const char *line);
/* The storage partition is erased: every file is gone. */
int sim_fs_erase(struct sim_fs *fs);

/* File system group handlers (smp-protocol.md §9). */
int sim_fs_download(struct sim_ctx *c);
int sim_fs_upload(struct sim_ctx *c);
int sim_fs_status(struct sim_ctx *c);
int sim_fs_hash(struct sim_ctx *c);
int sim_fs_types(struct sim_ctx *c);
int sim_fs_close(struct sim_ctx *c);

/* IEEE CRC-32 (zlib's crc32), continued from crc (start with 0). */
uint32_t sim_crc32(uint32_t crc, const uint8_t *p, size_t n);
