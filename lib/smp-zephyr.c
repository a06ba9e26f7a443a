/* smp-zephyr: requests of the Zephyr basic group (63) */
#include "smp-zephyr.h"

int smp_zephyr_erase_storage_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_WRITE, SMP_GROUP_ZEPHYR, SMP_ZEPHYR_ERASE_STORAGE, ret);
}
