/* smp-zephyr: requests of the Zephyr basic group (63) */
#pragma once

#include "smp-request.h"

/* Erase storage (cmd 0, WRITE): {} → {}. Erases the whole storage_partition
 * (settings, NVS, file systems); irreversible. Returns 0 and a new request in
 * *ret, or -ENOMEM. The empty answer is checked with smp_groups_parse_empty(). */
int smp_zephyr_erase_storage_request(struct smp_request **ret);
