/* smp-settings: requests and response parsers of the settings group (3) */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-request.h"
#include "smp-response.h"

/* Builder and parser conventions are those of smp-os.h. name is the full
 * settings key ("subsys/key") and must not be empty (-EINVAL). */

/* Read (cmd 0, READ): {"name", "max_size"?}; max_size 0 leaves it out.
 * → {"val": bytes, "max_size"?: uint}. */
int smp_settings_read_request(const char *name, uint32_t max_size, struct smp_request **ret);

struct smp_settings_value {
	uint8_t *val; /* never NULL, even when len is 0 */
	size_t len;
	bool has_max_size;
	uint32_t max_size; /* the device's limit, when it capped the request's */
};

int smp_settings_read_parse(const struct smp_response *rsp, struct smp_settings_value **ret);
struct smp_settings_value *smp_settings_value_free(struct smp_settings_value *v);

/* Write (cmd 0, WRITE): {"name", "val": bytes} → {}. Not persisted until save. */
int smp_settings_write_request(const char *name, const uint8_t *val, size_t len,
			       struct smp_request **ret);
/* Delete (cmd 1, WRITE): {"name"} → {}. */
int smp_settings_delete_request(const char *name, struct smp_request **ret);
/* Commit (cmd 2, WRITE): {} → {}. */
int smp_settings_commit_request(struct smp_request **ret);
/* Load (cmd 3, READ): {} → {}. */
int smp_settings_load_request(struct smp_request **ret);
/* Save (cmd 3, WRITE): {} or {"name"} (newer devices: only that subtree);
 * name NULL leaves it out. → {}. */
int smp_settings_save_request(const char *name, struct smp_request **ret);
