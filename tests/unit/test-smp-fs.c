/* test-smp-fs: file system group builders and parsers against smp-protocol.md §15 and Zephyr 4.1 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-fs.h"
#include "smp-groups.h"
#include "tests/tap.h"
#include "tests/unit/group-test.h"

#define READ SMP_OP_READ_RSP
#define WRITE SMP_OP_WRITE_RSP

static void test_requests(void)
{
	struct smp_fs_upload_args up = { .off = 11, .data = (const uint8_t *)"!", .data_len = 1,
					 .name = "/lfs1/cap.txt", .len = 99 };
	struct smp_request *r = NULL;
	int err;

	err = smp_fs_download_request("/lfs/hello.txt", 0, &r);
	gt_check_request(err, r, 1, 0x40,
			 "0800001a 00084000 | a2636f666600646e616d656e2f6c66732f68656c6c6f2e747874",
			 "V26 download");

	/* Our own, encoded by hand. */
	err = smp_fs_upload_request(&up, &r);
	gt_check_request(err, r, 1, 0x41,
			 "0a000020 00084100 | a3646e616d656d2f6c6673312f6361702e747874636f66660b"
			 "64646174614121",
			 "upload later chunk: no len");
	err = smp_fs_hash_request("/lfs/a", SMP_FS_HASH_SHA256, 5, 100, &r);
	gt_check_request(err, r, 1, 0x42,
			 "08000024 00084202 | a4646e616d65662f6c66732f61647479706566736861323536"
			 "636f666605636c656e1864",
			 "hash with type, off and len");
	err = smp_fs_status_request("/lfs/a", &r);
	gt_check_request(err, r, 1, 0x43, "0800000d 00084301 | a1646e616d65662f6c66732f61",
			 "status");

	is_int(smp_fs_download_request(NULL, 0, &r), -EINVAL, "download without name");
	is_int(smp_fs_download_request("", 0, &r), -EINVAL, "download with empty name");
	is_int(smp_fs_status_request("", &r), -EINVAL, "status with empty name");
	is_int(smp_fs_hash_request("/a", "", 0, 0, &r), -EINVAL, "hash with empty type");
	up.name = NULL;
	is_int(smp_fs_upload_request(&up, &r), -EINVAL, "upload without name");
	up = (struct smp_fs_upload_args){ .name = "/a", .data_len = 3 };
	is_int(smp_fs_upload_request(&up, &r), -EINVAL, "upload NULL data with a length");
}

static size_t built_size(const struct smp_fs_upload_args *a)
{
	struct smp_request *r = NULL;
	size_t n;

	if (smp_fs_upload_request(a, &r) < 0)
		return 0;
	n = r->pkt.len;
	smp_request_free(r);
	return n;
}

static void test_packet_size(void)
{
	static const uint64_t offs[] = { 0, 1, 24, 256, 65536, (uint64_t)UINT32_MAX + 1 };
	static const uint64_t lens[] = { 0, 23, 24, 70000 };
	static const size_t datas[] = { 0, 23, 24, 300 };
	static const char *const names[] = { "/a", "/lfs1/a-name-of-exactly-24b", "/lfs1/cap.txt" };
	uint8_t *data = calloc(1, 300);
	size_t bad = 0, cases = 0;

	for (size_t o = 0; o < ELEMENTSOF(offs); o++)
		for (size_t l = 0; l < ELEMENTSOF(lens); l++)
			for (size_t d = 0; d < ELEMENTSOF(datas); d++)
				for (size_t n = 0; n < ELEMENTSOF(names); n++) {
					struct smp_fs_upload_args a = {
						.off = offs[o], .len = lens[l], .name = names[n],
						.data = data, .data_len = datas[d],
					};

					cases++;
					if (built_size(&a) != smp_fs_upload_packet_size(&a) - 1 +
								      smp_cbor_str_size(datas[d]))
						bad++;
				}
	is_int(bad, 0, "FS packet size formula matches the encoder in %zu cases", cases);
	free(data);
}

static bool same_download(const struct gt_pair *p, const char *name, uint64_t off)
{
	cbor_item_t *m = NULL;
	char *got = NULL;
	uint64_t got_off;
	bool same;

	if (smp_cbor_load(p->req + 8, p->req_len - 8, 4, &m) < 0)
		return false;
	same = smp_cbor_get_text(m, "name", &got) == 0 && strcmp(got, name) == 0 &&
	       smp_cbor_get_uint(m, "off", &got_off) == 0 && got_off == off &&
	       cbor_map_size(m) == 2;
	free(got);
	cbor_decref(&m);
	return same;
}

static void test_recorded_requests(const struct gt_recording *rec)
{
	struct smp_fs_upload_args up = { .off = 0, .data = (const uint8_t *)"hello world",
					 .data_len = 11, .name = "/lfs1/cap.txt", .len = 11 };
	struct smp_request *r = NULL;
	int err;

	err = smp_fs_upload_request(&up, &r);
	gt_check_recorded_request(rec, "fs upload", err, r);
	err = smp_fs_status_request("/lfs1/cap.txt", &r);
	gt_check_recorded_request(rec, "fs status", err, r);
	err = smp_fs_hash_request("/lfs1/cap.txt", SMP_FS_HASH_SHA256, 0, 0, &r);
	gt_check_recorded_request(rec, "fs hash sha256", err, r);
	err = smp_fs_hash_request("/lfs1/cap.txt", SMP_FS_HASH_CRC32, 0, 0, &r);
	gt_check_recorded_request(rec, "fs hash crc32", err, r);
	err = smp_fs_types_request(&r);
	gt_check_recorded_request(rec, "fs supported hashes", err, r);
	err = smp_fs_close_request(&r);
	gt_check_recorded_request(rec, "fs close", err, r);

	/* The recorder sent {"name", "off"}; we follow V26's {"off", "name"}: same map. */
	ok(same_download(gt_recording_pair(rec, "fs download"), "/lfs1/cap.txt", 0),
	   "%s fs download: recorded request holds our off and name", rec->file);
	ok(same_download(gt_recording_pair(rec, "fs download missing"), "/lfs1/none.txt", 0),
	   "%s fs download missing: recorded request holds our off and name", rec->file);
	err = smp_fs_download_request("/lfs1/cap.txt", 0, &r);
	gt_check_request(err, r, (uint8_t)rec->version, 0x1b,
			 rec->version == 1 ? "08000019 00081b00 | a2636f666600646e616d656d2f6c6673"
					     "312f6361702e747874"
					   : "00000019 00081b00 | a2636f666600646e616d656d2f6c6673"
					     "312f6361702e747874",
			 "our download request in V26 order");
}

static void test_recorded_responses(const struct gt_recording *rec)
{
	static const char sha[] = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
	struct smp_response *rsp;
	struct smp_fs_download *d = NULL;
	struct smp_fs_hash *h = NULL;
	struct smp_fs_types *t = NULL;
	uint64_t v;

	if ((rsp = gt_recording_response(rec, "fs upload"))) {
		gt_check_status(rsp, SMP_STATUS_OK, 0, 0, "recorded fs upload");
		is_int(smp_fs_upload_parse(rsp, &v), 0, "%s upload answer parses", rec->file);
		is_int(v, 11, "%s upload: 11 bytes in the file", rec->file);
		is_int(smp_fs_upload_error_len(rsp, &v), -EINVAL, "%s upload: no error len",
		       rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "fs download"))) {
		is_int(smp_fs_download_parse(rsp, &d), 0, "%s download parses", rec->file);
		ok(d && d->off == 0 && d->has_len && d->len == 11 && d->data_len == 11 &&
			   memcmp(d->data, "hello world", 11) == 0,
		   "%s download: off 0, len 11, \"hello world\"", rec->file);
		d = smp_fs_download_free(d);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "fs download missing"))) {
		if (rec->version == 1)
			gt_check_status(rsp, SMP_STATUS_GROUP_ERR, SMP_GROUP_FS, 3,
					"v2 missing file: FILE_NOT_FOUND");
		else
			gt_check_status(rsp, SMP_STATUS_RC, 0, SMP_RC_ENOENT, "v1 missing file: ENOENT");
		is_int(smp_fs_download_parse(rsp, &d), -EREMOTEIO, "%s missing: error", rec->file);
		ok(!d, "%s missing: no result", rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "fs status"))) {
		is_int(smp_fs_status_parse(rsp, &v), 0, "%s status parses", rec->file);
		is_int(v, 11, "%s status: 11 bytes", rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "fs hash sha256"))) {
		size_t n;
		uint8_t *want = tap_unhex(sha, &n);

		is_int(smp_fs_hash_parse(rsp, &h), 0, "%s sha256 parses", rec->file);
		ok(h && strcmp(h->type, "sha256") == 0 && h->off == 0 && h->len == 11 &&
			   h->output_is_bytes && h->output_len == 32 &&
			   memcmp(h->output, want, 32) == 0,
		   "%s sha256 of 11 bytes = b94d27b9...", rec->file);
		h = smp_fs_hash_free(h);
		free(want);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "fs hash crc32"))) {
		is_int(smp_fs_hash_parse(rsp, &h), 0, "%s crc32 parses", rec->file);
		ok(h && strcmp(h->type, "crc32") == 0 && h->len == 11 && !h->output_is_bytes &&
			   h->output_uint == 0x0d4a1185 && !h->output,
		   "%s crc32 = 0x0d4a1185", rec->file);
		h = smp_fs_hash_free(h);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "fs supported hashes"))) {
		is_int(smp_fs_types_parse(rsp, &t), 0, "%s types parse", rec->file);
		ok(t && t->n_types == 2 && strcmp(t->types[0].name, "crc32") == 0 &&
			   t->types[0].format == SMP_FS_HASH_FORMAT_NUMBER && t->types[0].size == 4 &&
			   strcmp(t->types[1].name, "sha256") == 0 &&
			   t->types[1].format == SMP_FS_HASH_FORMAT_BYTES && t->types[1].size == 32,
		   "%s types crc32 (number, 4) and sha256 (bytes, 32)", rec->file);
		t = smp_fs_types_free(t);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "fs close"))) {
		is_int(smp_groups_parse_any(rsp), 0, "%s close: empty success", rec->file);
		smp_response_free(rsp);
	}
}

static void test_responses(void)
{
	struct smp_fs_download *d = NULL;
	struct smp_response *rsp;
	uint64_t v = 0;

	rsp = gt_response("0900001e 00084000 | bf636f66660064646174614c48656c6c6f2c20534d50210a636c"
			  "656e0cff",
			  "V27");
	if (rsp) {
		is_int(smp_fs_download_parse(rsp, &d), 0, "V27 parses");
		ok(d && d->off == 0 && d->has_len && d->len == 12 && d->data_len == 12 &&
			   memcmp(d->data, "Hello, SMP!\n", 12) == 0,
		   "V27 off 0, len 12, \"Hello, SMP!\\n\"");
		d = smp_fs_download_free(d);
		smp_response_free(rsp);
	}
	/* {"err": {"group": 8, "rc": 11}, "len": 5}: the upload offset was not the file size. */
	rsp = gt_response("0b000016 00084100 | a263657272a26567726f7570086272630b636c656e05",
			  "offset error");
	if (rsp) {
		gt_check_status(rsp, SMP_STATUS_GROUP_ERR, SMP_GROUP_FS, 11, "FILE_OFFSET_NOT_VALID");
		is_int(smp_fs_upload_parse(rsp, &v), -EREMOTEIO, "offset error: upload parse fails");
		is_int(smp_fs_upload_error_len(rsp, &v), 0, "offset error carries len");
		is_int(v, 5, "5 bytes on the device");
		smp_response_free(rsp);
	}
	/* {"err": {"group": 8, "rc": 11}} without len, and with a text len. */
	rsp = gt_response("0b000011 00084100 | a163657272a26567726f7570086272630b", "no len");
	if (rsp) {
		is_int(smp_fs_upload_error_len(rsp, &v), -ENOENT, "error without len");
		smp_response_free(rsp);
	}
	rsp = gt_response("0b000017 00084100 | a263657272a26567726f7570086272630b636c656e6135",
			  "text len");
	if (rsp) {
		is_int(smp_fs_upload_error_len(rsp, &v), -EBADMSG, "error with a text len");
		smp_response_free(rsp);
	}
	gt_check_payload("download later chunk without len", 8, SMP_FS_FILE, READ,
			 "bf636f666618406464617461420102ff", 0);
	gt_check_payload("hash output as bytes of another length", 8, SMP_FS_HASH, READ,
			 "bf6474797065646d643573636c656e01666f757470757443010203ff", 0);
	gt_check_payload("hash output negative", 8, SMP_FS_HASH, READ,
			 "bf6474797065656372633332636c656e0b666f7574707574 20ff", -EBADMSG);
	gt_check_payload("types entry not a map", 8, SMP_FS_TYPES, READ,
			 "bf657479706573bf65637263333200ffff", -EBADMSG);
	gt_check_payload("types name not text", 8, SMP_FS_TYPES, READ,
			 "bf657479706573bf01bf66666f726d6174006473697a6504ffffff", -EBADMSG);
	gt_check_payload("types size beyond 32 bits", 8, SMP_FS_TYPES, READ,
			 "bf657479706573bf656372633332bf66666f726d6174006473697a651b0000000100000000"
			 "ffffff",
			 -EBADMSG);
	gt_check_payload("no types at all", 8, SMP_FS_TYPES, READ, "bf657479706573a0ff", 0);
	gt_check_payload("status has no WRITE", 8, SMP_FS_STATUS, WRITE, "bfff", -ENOTSUP);
	gt_check_payload("close has no READ", 8, SMP_FS_CLOSE, READ, "bfff", -ENOTSUP);
	gt_check_payload("FS command 5 has no parser", 8, 5, READ, "bfff", -ENOTSUP);
}

static void test_malformed(void)
{
	static const struct gt_field download[] = {
		{ "off", "00", "6161", true },
		{ "data", "4b68656c6c6f20776f726c64", "6b68656c6c6f20776f726c64", true },
		{ "len", "0b", "20", false },
	};
	static const struct gt_field upload[] = { { "off", "0b", "4101", true } };
	static const struct gt_field status[] = { { "len", "0b", "f5", true } };
	static const struct gt_field hash[] = {
		{ "type", "656372633332", "4101", true },
		{ "off", "05", "20", false },
		{ "len", "0b", "6161", true },
		{ "output", "1a0d4a1185", "6161", true },
	};
	static const struct gt_field types[] = { { "types", "a0", "80", true } };
	static const struct gt_field type[] = {
		{ "format", "00", "f4", true },
		{ "size", "04", "20", true },
	};

	gt_check_fields("download", 8, SMP_FS_FILE, READ, "", download, 3, "");
	gt_check_fields("upload", 8, SMP_FS_FILE, WRITE, "", upload, 1, "");
	gt_check_fields("status", 8, SMP_FS_STATUS, READ, "", status, 1, "");
	gt_check_fields("hash", 8, SMP_FS_HASH, READ, "", hash, 4, "");
	gt_check_fields("types", 8, SMP_FS_TYPES, READ, "", types, 1, "");
	gt_check_fields("type entry", 8, SMP_FS_TYPES, READ, "bf657479706573bf656372633332", type,
			2, "ffff");

	gt_check_hostile("download", 8, SMP_FS_FILE, READ, "636f666600", "data");
	gt_check_hostile("upload", 8, SMP_FS_FILE, WRITE, "", "off");
	gt_check_hostile("status", 8, SMP_FS_STATUS, READ, "", "len");
	gt_check_hostile("hash", 8, SMP_FS_HASH, READ, "6474797065656372633332636c656e0b", "output");
	gt_check_hostile("types", 8, SMP_FS_TYPES, READ, "", "types");
}

int main(void)
{
	struct gt_recording *v2 = gt_recording_load("udp-v2.json");
	struct gt_recording *v1 = gt_recording_load("udp-v1.json");

	test_requests();
	test_packet_size();
	test_recorded_requests(v2);
	test_recorded_requests(v1);
	test_recorded_responses(v2);
	test_recorded_responses(v1);
	test_responses();
	test_malformed();
	gt_check_recordings_robust(SMP_GROUP_FS);

	gt_recording_free(v2);
	gt_recording_free(v1);
	return tap_done();
}
