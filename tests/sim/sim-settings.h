/* sim-settings: Zephyr's settings subsystem: runtime values, persistent storage, handlers */
#pragma once

#include <stdbool.h>

#include "sim-smp.h"

/* Values live in two places, as on a device: the handlers' RAM (what read
 * and write reach, "runtime") and the storage backend (what save, delete
 * and load reach). Boot loads storage into RAM. Roots (subtrees with a
 * handler): "app" and "peer" read/write, "id" read-only (the identity),
 * "secret" write-only. Any other root is ROOT_KEY_NOT_FOUND. */
struct sim_settings;

/* path: the storage file (loaded when present), or NULL for RAM only.
 * identity: NULL-terminated key, value pairs served under "id/".
 * Returns 0, -ENOMEM, -EBADMSG for a corrupt storage file. */
int sim_settings_new(const char *path, const char *const *identity, struct sim_settings **ret);
struct sim_settings *sim_settings_free(struct sim_settings *s);

/* Power cycle: RAM values are lost; boot loads them from storage. */
void sim_settings_boot(struct sim_settings *s);
/* The storage partition is erased (Zephyr basic group); RAM keeps its values. */
int sim_settings_erase_storage(struct sim_settings *s);

/* Settings group handlers (smp-protocol.md §8). */
int sim_settings_read(struct sim_ctx *c);
int sim_settings_write(struct sim_ctx *c);
int sim_settings_delete(struct sim_ctx *c);
int sim_settings_commit(struct sim_ctx *c);
int sim_settings_load(struct sim_ctx *c);
int sim_settings_save(struct sim_ctx *c);
