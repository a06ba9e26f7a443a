/* test-smp-zephyr: Zephyr basic group (63) against smp-protocol.md §15 */
#include <errno.h>
#include <stdlib.h>

#include "smp-groups.h"
#include "smp-zephyr.h"
#include "tests/tap.h"
#include "tests/unit/group-test.h"

#define WRITE SMP_OP_WRITE_RSP

int main(void)
{
	struct smp_request *r = NULL;
	struct smp_response *rsp;
	int err;

	err = smp_zephyr_erase_storage_request(&r);
	gt_check_request(err, r, 1, 0x52, "0a000001 003f5200 | a0", "V31 erase storage");
	err = smp_zephyr_erase_storage_request(&r);
	gt_check_request(err, r, 0, 0x00, "02000001 003f0000 | a0", "erase storage as SMP v1");

	rsp = gt_response("0b000002 003f5200 | bfff", "erase answer");
	if (rsp) {
		gt_check_status(rsp, SMP_STATUS_OK, 0, 0, "erase answer");
		is_int(smp_groups_parse_empty(rsp), 0, "erase answer is an empty success");
		is_int(smp_groups_parse_any(rsp), 0, "and so says the dispatcher");
		smp_response_free(rsp);
	}
	/* v2 {"err": {"group": 63, "rc": 4}}: FLASH_ERASE_FAILED. */
	rsp = gt_response("0b000014 003f5200 | bf63657272bf6567726f7570183f62726304ffff",
			  "erase failed");
	if (rsp) {
		gt_check_status(rsp, SMP_STATUS_GROUP_ERR, SMP_GROUP_ZEPHYR, 4, "FLASH_ERASE_FAILED");
		is_int(smp_groups_parse_any(rsp), -EREMOTEIO, "erase failure is an error response");
		smp_response_free(rsp);
	}
	/* A v1 request hides that failure as {"rc": 0} (smp-protocol.md §4.6): speak v2. */
	gt_check_payload("v1's rc 0 for a failed erase looks like success", SMP_GROUP_ZEPHYR, 0,
			 WRITE, "bf62726300ff", 0);
	gt_check_payload("unknown keys beside an empty answer are ignored", SMP_GROUP_ZEPHYR, 0,
			 WRITE, "bf6178f5ff", 0);
	gt_check_payload("a payload that is not a map does not decode", SMP_GROUP_ZEPHYR, 0, WRITE,
			 "80", GT_UNDECODABLE);
	gt_check_payload("erase storage has no READ", SMP_GROUP_ZEPHYR, 0, SMP_OP_READ_RSP, "bfff",
			 -ENOTSUP);
	gt_check_payload("Zephyr basic command 1 has no parser", SMP_GROUP_ZEPHYR, 1, WRITE, "bfff",
			 -ENOTSUP);
	return tap_done();
}
