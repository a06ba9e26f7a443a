/* test-smp-enum: enumeration group builders and parsers against smp-protocol.md §15 and Zephyr 4.1 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smp-enum.h"
#include "smp-groups.h"
#include "tests/tap.h"
#include "tests/unit/group-test.h"

#define READ SMP_OP_READ_RSP

static void test_requests(void)
{
	static const uint16_t some[] = { 0, 1, 63 };
	struct smp_request *r = NULL;
	int err;

	err = smp_enum_list_request(&r);
	gt_check_request(err, r, 1, 0x50, "08000001 000a5001 | a0", "V28 enum list");
	err = smp_enum_details_request(some, 3, &r);
	gt_check_request(err, r, 1, 0x51, "0800000d 000a5103 | a16667726f757073830001183f",
			 "details of groups 0, 1, 63");
	err = smp_enum_single_request(300, &r);
	gt_check_request(err, r, 1, 0x52, "0800000a 000a5202 | a165696e64657819012c", "single 300");
	is_int(smp_enum_details_request(NULL, 2, &r), -EINVAL, "details NULL groups with a count");
}

static void test_recorded(const struct gt_recording *rec)
{
	static const uint16_t ids[] = { 10, 8, 1, 0, 3, 9, 2, 63 };
	static const struct {
		uint16_t group;
		const char *name;
		uint32_t handlers;
	} details[] = {
		{ 10, "enum mgmt", 4 }, { 8, "fs mgmt", 5 },        { 1, "img mgmt", 7 },
		{ 0, "os mgmt", 9 },    { 3, "settings mgmt", 4 },  { 9, "shell mgmt", 1 },
		{ 2, "stat mgmt", 2 },  { 63, "zephyr basic mgmt", 1 },
	};
	struct smp_request *r = NULL;
	struct smp_response *rsp;
	struct smp_enum_list *l = NULL;
	struct smp_enum_details *d = NULL;
	struct smp_enum_single one;
	uint32_t count = 0;
	int err;

	err = smp_enum_count_request(&r);
	gt_check_recorded_request(rec, "enum count", err, r);
	err = smp_enum_list_request(&r);
	gt_check_recorded_request(rec, "enum list", err, r);
	err = smp_enum_single_request(0, &r);
	gt_check_recorded_request(rec, "enum single", err, r);
	err = smp_enum_details_request(NULL, 0, &r);
	gt_check_recorded_request(rec, "enum details", err, r);

	if ((rsp = gt_recording_response(rec, "enum count"))) {
		gt_check_status(rsp, SMP_STATUS_OK, 0, 0, "recorded enum count");
		is_int(smp_enum_count_parse(rsp, &count), 0, "%s count parses", rec->file);
		is_int(count, 8, "%s eight groups", rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "enum list"))) {
		is_int(smp_enum_list_parse(rsp, &l), 0, "%s list parses", rec->file);
		ok(l && l->n_groups == 8 && memcmp(l->groups, ids, sizeof(ids)) == 0,
		   "%s groups 10 8 1 0 3 9 2 63", rec->file);
		l = smp_enum_list_free(l);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "enum single"))) {
		is_int(smp_enum_single_parse(rsp, &one), 0, "%s single parses", rec->file);
		ok(one.group == 10 && !one.end, "%s index 0 is group 10, not the end", rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "enum details"))) {
		bool same = true;

		is_int(smp_enum_details_parse(rsp, &d), 0, "%s details parse", rec->file);
		if (d && is_int(d->n_groups, 8, "%s details of eight groups", rec->file)) {
			for (size_t i = 0; i < 8; i++)
				if (d->groups[i].group != details[i].group || !d->groups[i].name ||
				    strcmp(d->groups[i].name, details[i].name) != 0 ||
				    !d->groups[i].has_handlers ||
				    d->groups[i].handlers != details[i].handlers)
					same = false;
			ok(same, "%s details: ids, names and handler counts", rec->file);
		}
		d = smp_enum_details_free(d);
		smp_response_free(rsp);
	}
}

static void test_responses(void)
{
	static const uint16_t ids[] = { 0, 1, 2, 3, 8, 9, 10, 63 };
	struct smp_enum_list *l = NULL;
	struct smp_enum_details *d = NULL;
	struct smp_enum_single one;
	struct smp_response *rsp;

	rsp = gt_response("09000014 000a5001 | bf6667726f7570739f0001020308090a183fffff", "V29");
	if (rsp) {
		is_int(smp_enum_list_parse(rsp, &l), 0, "V29 parses");
		ok(l && l->n_groups == 8 && memcmp(l->groups, ids, sizeof(ids)) == 0,
		   "V29 groups 0 1 2 3 8 9 10 63");
		l = smp_enum_list_free(l);
		smp_response_free(rsp);
	}
	rsp = gt_response("0900000e 000a0002 | a26567726f7570183f63656e64f5", "last");
	if (rsp) {
		is_int(smp_enum_single_parse(rsp, &one), 0, "last single parses");
		ok(one.group == 63 && one.end, "group 63 is the end");
		smp_response_free(rsp);
	}
	rsp = gt_response("09000024 000a0003 | a16667726f75707382a16567726f75701840a26567726f757018"
			  "41646e616d6563617070",
			  "sparse details");
	if (rsp) {
		is_int(smp_enum_details_parse(rsp, &d), 0, "details without names or handlers");
		ok(d && d->n_groups == 2 && d->groups[0].group == 64 && !d->groups[0].name &&
			   !d->groups[0].has_handlers && d->groups[1].group == 65 &&
			   strcmp(d->groups[1].name, "app") == 0 && !d->groups[1].has_handlers,
		   "optional name and handlers");
		d = smp_enum_details_free(d);
		smp_response_free(rsp);
	}
	gt_check_payload("index too large: ENUM rc 4", 10, SMP_ENUM_SINGLE, READ,
			 "bf63657272bf6567726f75700a62726304ffff", -EREMOTEIO);
	gt_check_payload("group id beyond 16 bits", 10, SMP_ENUM_LIST, READ,
			 "bf6667726f7570739f1a00010000ffff", -EBADMSG);
	gt_check_payload("group id that is text", 10, SMP_ENUM_LIST, READ,
			 "bf6667726f7570739f6161ffff", -EBADMSG);
	gt_check_payload("count beyond 32 bits", 10, SMP_ENUM_COUNT, READ,
			 "bf65636f756e741b0000000100000000ff", -EBADMSG);
	gt_check_payload("single group beyond 16 bits", 10, SMP_ENUM_SINGLE, READ,
			 "bf6567726f75701a00010000ff", -EBADMSG);
	gt_check_payload("details entry that is not a map", 10, SMP_ENUM_DETAILS, READ,
			 "bf6667726f7570739f0affff", -EBADMSG);
	gt_check_payload("empty list", 10, SMP_ENUM_LIST, READ, "bf6667726f75707380ff", 0);
	gt_check_payload("enum has no WRITE", 10, SMP_ENUM_COUNT, SMP_OP_WRITE_RSP, "bfff",
			 -ENOTSUP);
	gt_check_payload("enum command 4 has no parser", 10, 4, READ, "bfff", -ENOTSUP);
}

static void test_malformed(void)
{
	static const struct gt_field count[] = { { "count", "08", "6161", true } };
	static const struct gt_field list[] = { { "groups", "80", "a0", true } };
	static const struct gt_field single[] = {
		{ "group", "0a", "20", true },
		{ "end", "f5", "01", false },
	};
	static const struct gt_field detail[] = {
		{ "group", "0a", "6161", true },
		{ "name", "69656e756d206d676d74", "4100", false },
		{ "handlers", "04", "20", false },
	};

	gt_check_fields("count", 10, SMP_ENUM_COUNT, READ, "", count, 1, "");
	gt_check_fields("list", 10, SMP_ENUM_LIST, READ, "", list, 1, "");
	gt_check_fields("single", 10, SMP_ENUM_SINGLE, READ, "", single, 2, "");
	gt_check_fields("details", 10, SMP_ENUM_DETAILS, READ, "", list, 1, "");
	gt_check_fields("details entry", 10, SMP_ENUM_DETAILS, READ, "bf6667726f7570739f", detail, 3,
			"ffff");
	gt_check_hostile("count", 10, SMP_ENUM_COUNT, READ, "", "count");
	gt_check_hostile("list", 10, SMP_ENUM_LIST, READ, "", "groups");
	gt_check_hostile("single", 10, SMP_ENUM_SINGLE, READ, "", "group");
	gt_check_hostile("details", 10, SMP_ENUM_DETAILS, READ, "", "groups");
}

int main(void)
{
	struct gt_recording *v2 = gt_recording_load("udp-v2.json");
	struct gt_recording *v1 = gt_recording_load("udp-v1.json");

	test_requests();
	test_recorded(v2);
	test_recorded(v1);
	test_responses();
	test_malformed();
	gt_check_recordings_robust(SMP_GROUP_ENUM);

	gt_recording_free(v2);
	gt_recording_free(v1);
	return tap_done();
}
