/* smp-stat: requests and response parsers of the statistics group (2) */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "smp-request.h"
#include "smp-response.h"

/* Builder and parser conventions are those of smp-os.h. */

/* Show (cmd 0, READ): {"name": text} → {"name": text, "fields": {name: uint}}. */
struct smp_stat_field {
	char *name;
	uint64_t value;
};

struct smp_stat_group {
	char *name;
	size_t n_fields;
	struct smp_stat_field *fields; /* in the device's order, padding entries included */
};

int smp_stat_show_request(const char *name, struct smp_request **ret);
int smp_stat_show_parse(const struct smp_response *rsp, struct smp_stat_group **ret);
struct smp_stat_group *smp_stat_group_free(struct smp_stat_group *g);

/* List (cmd 1, READ): {} → {"stat_list": [text, ...]} (may be empty). */
struct smp_stat_list {
	size_t n_names;
	char **names;
};

int smp_stat_list_request(struct smp_request **ret);
int smp_stat_list_parse(const struct smp_response *rsp, struct smp_stat_list **ret);
struct smp_stat_list *smp_stat_list_free(struct smp_stat_list *l);
