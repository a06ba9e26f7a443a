/* test-smp-groups: the dispatcher over every command and every recorded Zephyr 4.1 response */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-groups.h"
#include "tests/tap.h"
#include "tests/unit/group-test.h"

#define R SMP_OP_READ_RSP
#define W SMP_OP_WRITE_RSP

/* What smp_groups_parse_any() says about every recorded response. */
static const struct {
	const char *name;
	int v2, v1;
} recorded[] = {
	{ "os echo", 0, 0 },
	{ "os taskstat", 0, 0 },
	{ "os mpstat (unsupported here)", -EREMOTEIO, -EREMOTEIO },
	{ "os datetime set", 0, 0 },
	{ "os datetime get", 0, 0 },
	{ "os params", 0, 0 },
	{ "os info all", 0, 0 },
	{ "os info bad format", -EREMOTEIO, -EREMOTEIO },
	{ "os bootloader (no mcuboot here)", -EREMOTEIO, -EREMOTEIO },
	{ "img state", 0, 0 },
	{ "img slot info", 0, 0 },
	{ "img upload first chunk", 0, 0 },
	{ "img upload last chunk", 0, 0 },
	{ "img state after upload", 0, 0 },
	{ "img test", 0, 0 },
	{ "img test unknown hash", -EREMOTEIO, -EREMOTEIO },
	{ "stat list", 0, 0 },
	{ "stat read", 0, 0 },
	/* v1: the recording holds only a header announcing 41 bytes. */
	{ "stat read unknown", -EREMOTEIO, GT_UNDECODABLE },
	{ "settings write", 0, 0 },
	{ "settings read", 0, 0 },
	{ "settings read missing", -EREMOTEIO, -EREMOTEIO },
	{ "settings delete", 0, 0 },
	{ "settings commit", 0, 0 },
	{ "settings save", 0, 0 },
	{ "fs upload", 0, 0 },
	{ "fs download", 0, 0 },
	{ "fs download missing", -EREMOTEIO, -EREMOTEIO },
	{ "fs status", 0, 0 },
	{ "fs hash sha256", 0, 0 },
	{ "fs hash crc32", 0, 0 },
	{ "fs supported hashes", 0, 0 },
	{ "fs close", 0, 0 },
	{ "shell exec", 0, 0 },
	{ "shell exec unknown", 0, 0 },
	{ "enum count", 0, 0 },
	{ "enum list", 0, 0 },
	{ "enum single", 0, 0 },
	{ "enum details", 0, 0 },
	{ "unknown group", -ENOTSUP, -ENOTSUP },
	{ "unknown command", -ENOTSUP, -ENOTSUP },
};

static void test_recordings(const char *file)
{
	struct gt_recording *rec = gt_recording_load(file);
	size_t listed = 0;

	for (size_t i = 0; i < rec->n_pairs; i++) {
		const struct gt_pair *p = &rec->pairs[i];
		struct smp_response *rsp = NULL;
		int want = 0, got;
		bool found = false;

		for (size_t k = 0; k < ELEMENTSOF(recorded); k++)
			if (strcmp(recorded[k].name, p->name) == 0) {
				want = rec->version == 1 ? recorded[k].v2 : recorded[k].v1;
				found = true;
				listed++;
			}
		if (!ok(found, "%s %s: expectation listed", file, p->name))
			continue;
		got = smp_response_decode(p->rsp, p->rsp_len, &rsp) < 0 ? GT_UNDECODABLE
									: smp_groups_parse_any(rsp);
		is_int(got, want, "%s %s: parse_any", file, p->name);
		smp_response_free(rsp);
	}
	is_int(listed, ELEMENTSOF(recorded), "%s: every listed pair was recorded", file);
	gt_recording_free(rec);
}

/* The commands with a typed parser, and what each says about an empty map:
 * 0 for empty answers (and mpstat's zero pools), -EBADMSG for required fields. */
static const struct {
	uint16_t group;
	uint8_t id, op;
	int empty;
} parsers[] = {
	{ 0, 0, R, -EBADMSG },  { 0, 0, W, -EBADMSG },  { 0, 1, R, 0 },	       { 0, 1, W, 0 },
	{ 0, 2, R, -EBADMSG },  { 0, 3, R, 0 },	        { 0, 4, R, -EBADMSG }, { 0, 4, W, 0 },
	{ 0, 5, W, 0 },	        { 0, 6, R, -EBADMSG },  { 0, 7, R, -EBADMSG }, { 0, 8, R, -EBADMSG },
	{ 1, 0, R, -EBADMSG },  { 1, 0, W, -EBADMSG },  { 1, 1, W, -EBADMSG }, { 1, 5, W, 0 },
	{ 1, 6, R, -EBADMSG },  { 2, 0, R, -EBADMSG },  { 2, 1, R, -EBADMSG }, { 3, 0, R, -EBADMSG },
	{ 3, 0, W, 0 },	        { 3, 1, W, 0 },	        { 3, 2, W, 0 },	       { 3, 3, R, 0 },
	{ 3, 3, W, 0 },	        { 8, 0, R, -EBADMSG },  { 8, 0, W, -EBADMSG }, { 8, 1, R, -EBADMSG },
	{ 8, 2, R, -EBADMSG },  { 8, 3, R, -EBADMSG },  { 8, 4, W, 0 },	       { 9, 0, W, -EBADMSG },
	{ 10, 0, R, -EBADMSG }, { 10, 1, R, -EBADMSG }, { 10, 2, R, -EBADMSG },
	{ 10, 3, R, -EBADMSG }, { 63, 0, W, 0 },
};

static int parser_of(uint16_t group, uint8_t id, uint8_t op)
{
	for (size_t i = 0; i < ELEMENTSOF(parsers); i++)
		if (parsers[i].group == group && parsers[i].id == id && parsers[i].op == op)
			return (int)i;
	return -1;
}

static void test_matrix(void)
{
	static const uint16_t groups[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 62, 63, 64, 65535 };
	size_t wrong_empty = 0, wrong_rc = 0, wrong_err = 0, wrong_rsn = 0, cases = 0;

	for (size_t g = 0; g < ELEMENTSOF(groups); g++)
		for (unsigned id = 0; id < 12; id++)
			for (uint8_t op = R; op <= W; op += 2) {
				int k = parser_of(groups[g], (uint8_t)id, op);
				int want_err = k >= 0 ? -EREMOTEIO : -ENOTSUP;
				char what[64];
				struct smp_response *rsp;
				char pkt[96];

				cases++;
				snprintf(what, sizeof(what), "%u/%u/%u", groups[g], id, op);
				snprintf(pkt, sizeof(pkt), "%02x000002 %04x00%02x | bfff", op,
					 groups[g], id);
				rsp = gt_response(pkt, what);
				if (!rsp || smp_groups_parse_any(rsp) !=
						    (k >= 0 ? parsers[k].empty : -ENOTSUP)) {
					tap_diag("empty map: %s", what);
					wrong_empty++;
				}
				smp_response_free(rsp);

				/* {"rc": 10}: EBUSY */
				snprintf(pkt, sizeof(pkt), "%02x000006 %04x00%02x | bf6272630aff", op,
					 groups[g], id);
				rsp = gt_response(pkt, what);
				if (!rsp || smp_groups_parse_any(rsp) != want_err) {
					tap_diag("rc: %s", what);
					wrong_rc++;
				}
				smp_response_free(rsp);

				/* {"err": {"group": 9, "rc": 2}} */
				snprintf(pkt, sizeof(pkt),
					 "%02x000013 %04x00%02x | bf63657272bf6567726f75700962726302ffff",
					 op, groups[g], id);
				rsp = gt_response(pkt, what);
				if (!rsp || smp_groups_parse_any(rsp) != want_err) {
					tap_diag("err: %s", what);
					wrong_err++;
				}
				smp_response_free(rsp);

				/* Zephyr 3.4's {"ret": {"group": 9, "rc": 2}} with a reason. */
				snprintf(pkt, sizeof(pkt),
					 "%02x000019 %04x00%02x | bf63726574bf6567726f75700962726302ff"
					 "6372736e6178ff",
					 op, groups[g], id);
				rsp = gt_response(pkt, what);
				if (!rsp || smp_groups_parse_any(rsp) != want_err) {
					tap_diag("ret: %s", what);
					wrong_rsn++;
				}
				smp_response_free(rsp);
			}
	is_int(wrong_empty, 0, "empty map: typed parser per command, -ENOTSUP elsewhere (%zu cases)",
	       cases);
	is_int(wrong_rc, 0, "\"rc\" errors: -EREMOTEIO from every typed parser");
	is_int(wrong_err, 0, "v2 \"err\" errors: -EREMOTEIO from every typed parser");
	is_int(wrong_rsn, 0, "Zephyr 3.4 \"ret\" errors: -EREMOTEIO from every typed parser");
}

static void test_odd_responses(void)
{
	struct smp_response fake = { .hdr = { .op = SMP_OP_READ, .group = 0, .id = 0 } };
	struct smp_response *rsp;

	is_int(smp_groups_parse_any(&fake), -ENOTSUP, "a request op has no parser");
	fake.hdr.op = SMP_OP_WRITE_RSP;
	is_int(smp_groups_parse_any(&fake), -EBADMSG, "a response without a map is malformed");
	is_int(smp_groups_parse_empty(&fake), -EBADMSG, "parse_empty without a map");

	/* A user group answering with an array, and with nothing. */
	rsp = gt_response("03000003 00400000 | 820102", "user array");
	if (rsp) {
		is_int(smp_groups_parse_any(rsp), -ENOTSUP, "user group: no typed parser");
		is_int(smp_groups_parse_empty(rsp), -EBADMSG, "user group array is not an empty map");
		smp_response_free(rsp);
	}
	rsp = gt_response("03000000 00400000", "user empty");
	if (rsp) {
		is_int(smp_groups_parse_any(rsp), -ENOTSUP, "user group with no payload");
		smp_response_free(rsp);
	}
	rsp = gt_response("01000006 00402000 | bf62726308ff", "V20");
	if (rsp) {
		gt_check_status(rsp, SMP_STATUS_RC, 0, SMP_RC_ENOTSUP, "V20 user group ENOTSUP");
		is_int(smp_groups_parse_empty(rsp), -EREMOTEIO, "V20 parse_empty: error response");
		is_int(smp_groups_parse_any(rsp), -ENOTSUP, "V20 parse_any: no typed parser");
		smp_response_free(rsp);
	}
}

static void test_user_group_robust(void)
{
	static const char *const files[] = { "udp-v2.json", "udp-v1.json" };

	for (size_t f = 0; f < 2; f++) {
		struct gt_recording *rec = gt_recording_load(files[f]);
		const struct gt_pair *p = gt_recording_pair(rec, "unknown group");
		char what[64];

		snprintf(what, sizeof(what), "%s unknown group", files[f]);
		gt_check_truncations(what, p->rsp, p->rsp_len);
		gt_check_mutations(what, p->rsp, p->rsp_len);
		gt_recording_free(rec);
	}
}

int main(void)
{
	test_recordings("udp-v2.json");
	test_recordings("udp-v1.json");
	test_matrix();
	test_odd_responses();
	test_user_group_robust();
	return tap_done();
}
