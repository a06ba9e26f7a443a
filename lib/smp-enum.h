/* smp-enum: requests and response parsers of the enumeration group (10) */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-request.h"
#include "smp-response.h"

/* Builder and parser conventions are those of smp-os.h. Group ids are
 * 16-bit; a larger value is -EBADMSG. */

/* Count (cmd 0, READ): {} → {"count": uint}. */
int smp_enum_count_request(struct smp_request **ret);
int smp_enum_count_parse(const struct smp_response *rsp, uint32_t *ret);

/* List (cmd 1, READ): {} → {"groups": [uint, ...]}. */
struct smp_enum_list {
	size_t n_groups;
	uint16_t *groups;
};

int smp_enum_list_request(struct smp_request **ret);
int smp_enum_list_parse(const struct smp_response *rsp, struct smp_enum_list **ret);
struct smp_enum_list *smp_enum_list_free(struct smp_enum_list *l);

/* Single (cmd 2, READ): {"index": uint} → {"group": uint, "end"?: true}. */
struct smp_enum_single {
	uint16_t group;
	bool end; /* this was the last group */
};

int smp_enum_single_request(uint32_t index, struct smp_request **ret);
int smp_enum_single_parse(const struct smp_response *rsp, struct smp_enum_single *ret);

/* Details (cmd 3, READ): {} or {"groups": [ids]} (n_groups 0 leaves it out)
 * → {"groups": [{"group", "name"?, "handlers"?}, ...]}. */
struct smp_enum_group_details {
	uint16_t group;
	char *name; /* NULL when the device leaves it out */
	bool has_handlers;
	uint32_t handlers; /* number of command slots */
};

struct smp_enum_details {
	size_t n_groups;
	struct smp_enum_group_details *groups;
};

int smp_enum_details_request(const uint16_t *groups, size_t n_groups, struct smp_request **ret);
int smp_enum_details_parse(const struct smp_response *rsp, struct smp_enum_details **ret);
struct smp_enum_details *smp_enum_details_free(struct smp_enum_details *d);
