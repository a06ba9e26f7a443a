/* test-smp-image: image group builders and parsers against smp-protocol.md §15 and Zephyr 4.1 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-groups.h"
#include "smp-image.h"
#include "tests/tap.h"
#include "tests/unit/group-test.h"

#define READ SMP_OP_READ_RSP
#define WRITE SMP_OP_WRITE_RSP

/* The 136-byte hash-only MCUboot image of smp-protocol.md §15.3. */
static const char tiny_image_hex[] =
	"3db8f39600000000200000004000000000000000010100000000000000000000"
	"000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
	"000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
	"0769280010002000c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0";
static const char tiny_file_sha[] =
	"a678ce1ed77e9580a875bc1f228c15d8438965e671921c6b31d494f69057c7ce";
static const char h1_hex[] = "644d69c5f2f82ee9a6195ddadf5272cd4aa80ea3205e9824b79a6facf2d4734f";
static const char h2_hex[] = "c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0";
static const char zephyr_h0[] = "072e40afb39c9ae3fc60ffd93e2f6fda101883955e5319a20954d8e7f78b0a93";
static const char zephyr_h1[] = "0f9d952ba1cb7c92d053acbaa78361700c19c0bef9adbc36a55054b4938a3857";

static bool hash_is(const struct smp_image_slot_state *e, const char *hex)
{
	size_t n;
	uint8_t *want = tap_unhex(hex, &n);
	bool same = e && e->has_hash && n == SMP_IMAGE_HASH_LEN && memcmp(e->hash, want, n) == 0;

	free(want);
	return same;
}

static void test_request_vectors(void)
{
	struct smp_request *r = NULL;
	size_t file_len, sha_len, h2_len;
	uint8_t *file = tap_unhex(tiny_image_hex, &file_len);
	uint8_t *sha = tap_unhex(tiny_file_sha, &sha_len);
	uint8_t *h2 = tap_unhex(h2_hex, &h2_len);
	struct smp_image_upload_args first = {
		.off = 0, .data = file, .data_len = 64, .len = file_len,
		.image = 0, .has_image = true, .sha = sha, .sha_len = sha_len,
		.upgrade = false, .has_upgrade = true,
	};
	struct smp_image_upload_args next = {
		.off = 64, .data = file + 64, .data_len = file_len - 64, .len = file_len,
		/* Ignored after the first chunk. */
		.image = 0, .has_image = true, .sha = sha, .sha_len = sha_len, .has_upgrade = true,
	};
	int err;

	is_int(file_len, 136, "tiny image is 136 bytes");
	err = smp_image_state_read_request(&r);
	gt_check_request(err, r, 1, 0x10, "08000001 00011000 | a0", "V12 state read");
	err = smp_image_upload_request(&first, &r);
	gt_check_request(err, r, 1, 0x11,
			 "0a000089 00011101 | a665696d61676500636c656e1888636f666600637368615820"
			 "a678ce1ed77e9580a875bc1f228c15d8438965e671921c6b31d494f69057c7ce6464617461"
			 "58403db8f39600000000200000004000000000000000010100000000000000000000000102"
			 "030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f6775706772616465"
			 "f4",
			 "V13 first upload chunk");
	err = smp_image_upload_request(&next, &r);
	gt_check_request(err, r, 1, 0x12,
			 "0a000056 00011201 | a2636f6666184064646174615848000102030405060708090a0b"
			 "0c0d0e0f000102030405060708090a0b0c0d0e0f0769280010002000c39a0f220a6d7ff5e6"
			 "59124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0",
			 "V15 last upload chunk");
	err = smp_image_state_write_request(h2, false, &r);
	gt_check_request(err, r, 1, 0x13,
			 "0a000031 00011300 | a264686173685820c39a0f220a6d7ff5e659124e4b3557466d1a"
			 "0fdd17cb6fe30d863ad017bd12f067636f6e6669726df4",
			 "V17 test");
	err = smp_image_state_write_request(NULL, true, &r);
	gt_check_request(err, r, 1, 0x14, "0a00000a 00011400 | a167636f6e6669726df5", "V18 confirm");

	/* Our own, encoded by hand. */
	err = smp_image_erase_request(-1, &r);
	gt_check_request(err, r, 1, 0x20, "0a000001 00012005 | a0", "erase default slot");
	err = smp_image_erase_request(1, &r);
	gt_check_request(err, r, 1, 0x21, "0a000007 00012105 | a164736c6f7401", "erase slot 1");
	err = smp_image_slot_info_request(&r);
	gt_check_request(err, r, 1, 0x22, "08000001 00012206 | a0", "slot info");
	first = (struct smp_image_upload_args){ .len = 100000, .upgrade = true, .has_upgrade = true };
	err = smp_image_upload_request(&first, &r);
	gt_check_request(err, r, 1, 0x23,
			 "0a00001e 00012301 | a4636c656e1a000186a0636f6666006464617461406775706772"
			 "616465f5",
			 "first chunk: no image, no sha, empty data, upgrade true");

	first = (struct smp_image_upload_args){ .data = file, .data_len = 32, .len = 136,
						.sha = sha, .sha_len = 33 };
	is_int(smp_image_upload_request(&first, &r), -EINVAL, "sha longer than 32 bytes");
	first = (struct smp_image_upload_args){ .data_len = 32, .len = 136 };
	is_int(smp_image_upload_request(&first, &r), -EINVAL, "data NULL with a length");
	first = (struct smp_image_upload_args){ .len = 136, .sha_len = 32 };
	is_int(smp_image_upload_request(&first, &r), -EINVAL, "sha NULL with a length");
	is_int(smp_image_erase_request((int64_t)UINT32_MAX + 1, &r), -EINVAL, "slot beyond 32 bits");
	{
		uint8_t *big = calloc(1, 65536);

		next = (struct smp_image_upload_args){ .off = 64, .data = big, .data_len = 65536 };
		is_int(smp_image_upload_request(&next, &r), -EMSGSIZE,
		       "a chunk past the 16-bit length field");
		free(big);
	}
	free(file);
	free(sha);
	free(h2);
}

static size_t built_size(const struct smp_image_upload_args *a)
{
	struct smp_request *r = NULL;
	size_t n;

	if (smp_image_upload_request(a, &r) < 0)
		return 0;
	n = r->pkt.len;
	smp_request_free(r);
	return n;
}

/* The largest data that fits budget B (smp-protocol.md §13.5). */
static size_t max_data(const struct smp_image_upload_args *a, size_t budget)
{
	size_t fixed = smp_image_upload_packet_size(a) - 1;
	size_t n = budget - fixed - 1;

	while (n > 0 && smp_cbor_str_size(n) > budget - fixed)
		n--;
	return n;
}

static void test_packet_size(void)
{
	static const uint64_t offs[] = { 0, 1, 23, 24, 255, 256, 65535, 65536, 100000,
					 UINT32_MAX, (uint64_t)UINT32_MAX + 1 };
	static const uint64_t lens[] = { 0, 23, 24, 200000, (uint64_t)UINT32_MAX + 7 };
	static const size_t datas[] = { 0, 1, 23, 24, 255, 256, 1000 };
	uint8_t sha[32] = { 0 }, *data = calloc(1, 1000);
	size_t bad = 0, cases = 0;
	struct smp_image_upload_args a;

	for (size_t o = 0; o < ELEMENTSOF(offs); o++)
		for (size_t l = 0; l < ELEMENTSOF(lens); l++)
			for (unsigned opt = 0; opt < 16; opt++)
				for (size_t d = 0; d < ELEMENTSOF(datas); d++) {
					a = (struct smp_image_upload_args){
						.off = offs[o], .len = lens[l],
						.has_image = opt & 1, .image = opt & 1 ? 300 : 0,
						.sha = sha, .sha_len = opt & 2 ? 32 : opt & 4 ? 3 : 0,
						.has_upgrade = opt & 8, .upgrade = true,
						.data = data, .data_len = datas[d],
					};
					cases++;
					if (built_size(&a) != smp_image_upload_packet_size(&a) - 1 +
								      smp_cbor_str_size(datas[d]))
						bad++;
				}
	is_int(bad, 0, "packet size formula matches the encoder in %zu cases", cases);

	/* The worked examples of smp-protocol.md §13.5. */
	a = (struct smp_image_upload_args){ .len = 200000, .has_image = true, .sha = sha,
					    .sha_len = 32, .has_upgrade = true };
	is_int(max_data(&a, 380), 295, "serial 384: first chunk carries 295 bytes");
	a = (struct smp_image_upload_args){ .off = 100000 };
	is_int(max_data(&a, 380), 354, "serial 384: later chunk carries 354 bytes");
	a = (struct smp_image_upload_args){ .len = 200000, .has_image = true, .sha = sha,
					    .sha_len = 32 };
	is_int(max_data(&a, 2475), 2399, "BLE 2475: first chunk carries 2399 bytes");
	a = (struct smp_image_upload_args){ .off = 100000 };
	is_int(max_data(&a, 2475), 2449, "BLE 2475: later chunk carries 2449 bytes");
	is_int(max_data(&a, 244), 219, "BLE MTU 247: later chunk carries 219 bytes");
	a.data = data;
	a.data_len = 219;
	is_int(built_size(&a), 244, "and that chunk is exactly 244 bytes on the wire");
	free(data);
}

static void test_recorded_requests(const struct gt_recording *rec)
{
	const struct gt_pair *p;
	struct smp_request *r = NULL;
	cbor_item_t *m = NULL;
	const uint8_t *data, *sha;
	size_t data_len, sha_len, n;
	uint8_t *hash;
	int err;

	err = smp_image_state_read_request(&r);
	gt_check_recorded_request(rec, "img state", err, r);
	err = smp_image_slot_info_request(&r);
	gt_check_recorded_request(rec, "img slot info", err, r);
	err = smp_image_state_read_request(&r);
	gt_check_recorded_request(rec, "img state after upload", err, r);

	/* Take the chunks out of the recorded requests and build them again. */
	p = gt_recording_pair(rec, "img upload first chunk");
	if (smp_cbor_load(p->req + 8, p->req_len - 8, 4, &m) == 0 &&
	    smp_cbor_get_bytes(m, "data", &data, &data_len) == 0 &&
	    smp_cbor_get_bytes(m, "sha", &sha, &sha_len) == 0) {
		struct smp_image_upload_args a = {
			.off = 0, .data = data, .data_len = data_len, .len = 1152,
			.image = 0, .has_image = true, .sha = sha, .sha_len = sha_len,
		};

		err = smp_image_upload_request(&a, &r);
		gt_check_recorded_request(rec, "img upload first chunk", err, r);
	} else {
		ok(false, "%s: recorded first chunk decodes", rec->file);
	}
	smp_cbor_decrefp(&m);
	m = NULL;
	p = gt_recording_pair(rec, "img upload last chunk");
	if (smp_cbor_load(p->req + 8, p->req_len - 8, 4, &m) == 0 &&
	    smp_cbor_get_bytes(m, "data", &data, &data_len) == 0) {
		struct smp_image_upload_args a = { .off = 300, .data = data, .data_len = data_len };

		err = smp_image_upload_request(&a, &r);
		gt_check_recorded_request(rec, "img upload last chunk", err, r);
	} else {
		ok(false, "%s: recorded last chunk decodes", rec->file);
	}
	smp_cbor_decrefp(&m);

	hash = tap_unhex(zephyr_h1, &n);
	err = smp_image_state_write_request(hash, false, &r);
	gt_check_recorded_request(rec, "img test", err, r);
	free(hash);
	hash = tap_unhex("1111111111111111111111111111111111111111111111111111111111111111", &n);
	err = smp_image_state_write_request(hash, false, &r);
	gt_check_recorded_request(rec, "img test unknown hash", err, r);
	free(hash);
}

static void test_response_vectors(void)
{
	struct smp_image_upload_result u;
	struct smp_image_state *s = NULL;
	struct smp_response *rsp;
	char flags[64];

	rsp = gt_response("0b000008 00011101 | bf636f66661840ff", "V14");
	if (rsp) {
		is_int(smp_image_upload_parse(rsp, &u), 0, "V14 parses");
		ok(u.off == 64 && !u.has_match, "V14 off 64, no match");
		smp_response_free(rsp);
	}
	rsp = gt_response("0b00000f 00011201 | bf636f66661888656d61746368f5ff", "V16");
	if (rsp) {
		is_int(smp_image_upload_parse(rsp, &u), 0, "V16 parses");
		ok(u.off == 136 && u.has_match && u.match, "V16 off 136, match true");
		smp_response_free(rsp);
	}
	rsp = gt_response("0b000013 00011101 | bf63657272bf6567726f75700162726309ffff", "V19");
	if (rsp) {
		gt_check_status(rsp, SMP_STATUS_GROUP_ERR, SMP_GROUP_IMAGE, 9, "V19 NO_FREE_SLOT");
		u.off = 77;
		is_int(smp_image_upload_parse(rsp, &u), -EREMOTEIO, "V19 is an error response");
		is_int(u.off, 77, "V19 leaves the result alone");
		smp_response_free(rsp);
	}
	rsp = gt_response(
		"090000f4 00011000 | bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e30"
		"646861736858 20644d69c5f2f82ee9a6195ddadf5272cd4aa80ea3205e9824b79a6facf2d4734f68"
		"626f6f7461626c65f56770656e64696e67f469636f6e6669726d6564f566616374697665f5697065"
		"726d616e656e74f4ffbf64736c6f74016776657273696f6e65312e312e3064686173685820c39a0f"
		"220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f068626f6f7461626c65f567"
		"70656e64696e67f469636f6e6669726d6564f466616374697665f4697065726d616e656e74f4ffff"
		"6b73706c697453746174757300ff",
		"V32");
	if (rsp) {
		is_int(smp_image_state_parse(rsp, &s), 0, "V32 parses");
		if (s && is_int(s->n_slots, 2, "V32 lists two slots")) {
			const struct smp_image_slot_state *e0 = &s->slots[0], *e1 = &s->slots[1];

			ok(e0->image == 0 && e0->slot == 0 && strcmp(e0->version, "1.0.0") == 0 &&
				   hash_is(e0, h1_hex),
			   "V32 slot 0: 1.0.0, H1");
			is_str(smp_image_slot_state_flags(e0, flags, sizeof(flags)),
			       "active,confirmed,bootable", "V32 slot 0 flags");
			ok(e1->image == 0 && e1->slot == 1 && strcmp(e1->version, "1.1.0") == 0 &&
				   hash_is(e1, h2_hex),
			   "V32 slot 1: 1.1.0, H2");
			is_str(smp_image_slot_state_flags(e1, flags, sizeof(flags)), "bootable",
			       "V32 slot 1 flags");
			ok(s->has_split_status && s->split_status == 0, "V32 splitStatus 0");
			ok(smp_image_state_find_active(s, 0) == e0, "find active");
			ok(smp_image_state_find_slot(s, 0, 1) == e1, "find image 0 slot 1");
			ok(!smp_image_state_find_slot(s, 1, 0), "no image 1");
			ok(smp_image_state_find_hash(s, e1->hash) == e1, "find by hash");
			is_str(smp_image_slot_state_flags(e0, flags, 10), "active", "flags truncate");
		}
		s = smp_image_state_free(s);
		smp_response_free(rsp);
	}
}

static void check_state(const struct gt_recording *rec, const char *name, bool uploaded,
			bool pending)
{
	struct smp_response *rsp = gt_recording_response(rec, name);
	struct smp_image_state *s = NULL;

	if (!rsp)
		return;
	gt_check_status(rsp, SMP_STATUS_OK, 0, 0, name);
	is_int(smp_image_state_parse(rsp, &s), 0, "%s %s parses", rec->file, name);
	if (s && is_int(s->n_slots, uploaded ? 2 : 1, "%s %s slot count", rec->file, name)) {
		const struct smp_image_slot_state *e = &s->slots[0];

		ok(e->image == 0 && e->slot == 0 && strcmp(e->version, "1.0.0") == 0 &&
			   hash_is(e, zephyr_h0) && e->bootable && !e->pending && e->confirmed &&
			   e->active && !e->permanent,
		   "%s %s: slot 0 runs 1.0.0 (072e40af...), confirmed", rec->file, name);
		if (uploaded) {
			e = &s->slots[1];
			ok(e->image == 0 && e->slot == 1 && strcmp(e->version, "1.0.1") == 0 &&
				   hash_is(e, zephyr_h1) && e->bootable && e->pending == pending &&
				   !e->confirmed && !e->active && !e->permanent,
			   "%s %s: slot 1 holds 1.0.1 (0f9d952b...), %s", rec->file, name,
			   pending ? "pending" : "not pending");
		}
		ok(s->has_split_status && s->split_status == 0, "%s %s splitStatus", rec->file, name);
	}
	smp_image_state_free(s);
	smp_response_free(rsp);
}

static void test_recorded_responses(const struct gt_recording *rec)
{
	struct smp_image_slot_info *si = NULL;
	struct smp_image_upload_result u;
	struct smp_response *rsp;

	check_state(rec, "img state", false, false);
	check_state(rec, "img state after upload", true, false);
	check_state(rec, "img test", true, true);

	if ((rsp = gt_recording_response(rec, "img slot info"))) {
		is_int(smp_image_slot_info_parse(rsp, &si), 0, "%s slot info parses", rec->file);
		if (si && is_int(si->n_images, 1, "%s slot info: one image", rec->file)) {
			const struct smp_image_slot_info_image *img = &si->images[0];

			ok(img->image == 0 && img->n_slots == 2 && !img->has_max_image_size,
			   "%s slot info: image 0, two slots, no max size", rec->file);
			ok(img->n_slots == 2 && img->slots[0].slot == 0 &&
				   img->slots[0].size == 0x69000 && !img->slots[0].has_upload_image_id &&
				   img->slots[1].slot == 1 && img->slots[1].size == 0x69000 &&
				   img->slots[1].has_upload_image_id && img->slots[1].upload_image_id == 0,
			   "%s slot info: 0x69000 bytes each, slot 1 upload id 0", rec->file);
		}
		si = smp_image_slot_info_free(si);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "img upload first chunk"))) {
		is_int(smp_image_upload_parse(rsp, &u), 0, "%s first chunk answer", rec->file);
		ok(u.off == 300 && !u.has_match, "%s next offset 300", rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "img upload last chunk"))) {
		is_int(smp_image_upload_parse(rsp, &u), 0, "%s last chunk answer", rec->file);
		ok(u.off == 1152 && !u.has_match, "%s offset 1152, no match (no image check)",
		   rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "img test unknown hash"))) {
		struct smp_image_state *s = NULL;

		if (rec->version == 1)
			gt_check_status(rsp, SMP_STATUS_GROUP_ERR, SMP_GROUP_IMAGE, 8,
					"v2 unknown hash: HASH_NOT_FOUND");
		else
			gt_check_status(rsp, SMP_STATUS_RC, 0, SMP_RC_EUNKNOWN,
					"v1 unknown hash: EUNKNOWN");
		is_int(smp_image_state_parse(rsp, &s), -EREMOTEIO, "%s unknown hash: error",
		       rec->file);
		smp_response_free(rsp);
	}
}

static void test_malformed(void)
{
	static const char hash32[] =
		"5820072e40afb39c9ae3fc60ffd93e2f6fda101883955e5319a20954d8e7f78b0a93";
	const struct gt_field state[] = {
		{ "images", "80", "a0", true },
		{ "splitStatus", "00", "6161", false },
	};
	const struct gt_field entry[] = {
		{ "image", "01", "20", false },
		{ "slot", "01", "6161", true },
		{ "version", "65312e302e30", "01", true },
		{ "hash", hash32, "6161", false },
		{ "bootable", "f5", "01", false },
		{ "pending", "f4", "00", false },
		{ "confirmed", "f5", "6161", false },
		{ "active", "f5", "4101", false },
		{ "permanent", "f4", "80", false },
	};
	const struct gt_field upload[] = {
		{ "off", "1840", "f5", true },
		{ "match", "f5", "01", false },
	};
	const struct gt_field info[] = { { "images", "80", "a0", true } };
	const struct gt_field info_image[] = {
		{ "image", "00", "6161", true },
		{ "slots", "80", "a0", true },
		{ "max_image_size", "1a00069000", "20", false },
	};
	const struct gt_field info_slot[] = {
		{ "slot", "00", "6161", true },
		{ "size", "1a00069000", "20", true },
		{ "upload_image_id", "00", "f5", false },
	};

	gt_check_fields("state", 1, SMP_IMAGE_STATE, READ, "", state, 2, "");
	gt_check_fields("state entry", 1, SMP_IMAGE_STATE, READ, "bf66696d616765739f", entry, 9,
			"ffff");
	gt_check_fields("state write answer", 1, SMP_IMAGE_STATE, WRITE, "bf66696d616765739f",
			entry, 9, "ffff");
	gt_check_fields("upload", 1, SMP_IMAGE_UPLOAD, WRITE, "", upload, 2, "");
	gt_check_fields("slot info", 1, SMP_IMAGE_SLOT_INFO, READ, "", info, 1, "");
	gt_check_fields("slot info image", 1, SMP_IMAGE_SLOT_INFO, READ, "bf66696d616765739f",
			info_image, 3, "ffff");
	gt_check_fields("slot info slot", 1, SMP_IMAGE_SLOT_INFO, READ,
			"bf66696d616765739fbf65696d6167650065736c6f74739f", info_slot, 3, "ffffffff");

	gt_check_payload("state hash of 31 bytes", 1, SMP_IMAGE_STATE, READ,
			 "bf66696d616765739fbf64736c6f74006776657273696f6e61316468617368581f"
			 "00000000000000000000000000000000000000000000000000000000000000ffffff",
			 -EBADMSG);
	gt_check_payload("state entry that is not a map", 1, SMP_IMAGE_STATE, READ,
			 "bf66696d616765739f01ffff", -EBADMSG);
	gt_check_payload("state image beyond 32 bits", 1, SMP_IMAGE_STATE, READ,
			 "bf66696d616765739fbf65696d6167651b000000010000000064736c6f74006776657273"
			 "696f6e6131ffffff",
			 -EBADMSG);
	gt_check_payload("state with no images is fine", 1, SMP_IMAGE_STATE, READ,
			 "bf66696d616765739fffff", 0);
	gt_check_payload("upload answer without off", 1, SMP_IMAGE_UPLOAD, WRITE, "bf62646300ff",
			 -EBADMSG);
	gt_check_payload("upload answer {\"rc\": 0, \"off\": 5}", 1, SMP_IMAGE_UPLOAD, WRITE,
			 "a26272630063 6f666605", 0);
	gt_check_payload("erase answer {} through the dispatcher", 1, SMP_IMAGE_ERASE, WRITE,
			 "bfff", 0);
	gt_check_payload("erase has no READ", 1, SMP_IMAGE_ERASE, READ, "bfff", -ENOTSUP);
	gt_check_payload("image command 2 has no parser", 1, 2, WRITE, "bfff", -ENOTSUP);
	gt_check_payload("slot info slots entry not a map", 1, SMP_IMAGE_SLOT_INFO, READ,
			 "bf66696d616765739fbf65696d6167650065736c6f74739f00ffffffff", -EBADMSG);

	gt_check_hostile("state", 1, SMP_IMAGE_STATE, READ, "", "images");
	gt_check_hostile("upload", 1, SMP_IMAGE_UPLOAD, WRITE, "", "off");
	gt_check_hostile("upload match", 1, SMP_IMAGE_UPLOAD, WRITE, "636f666600", "match");
	gt_check_hostile("slot info", 1, SMP_IMAGE_SLOT_INFO, READ, "", "images");
}

int main(void)
{
	struct gt_recording *v2 = gt_recording_load("udp-v2.json");
	struct gt_recording *v1 = gt_recording_load("udp-v1.json");

	test_request_vectors();
	test_packet_size();
	test_recorded_requests(v2);
	test_recorded_requests(v1);
	test_response_vectors();
	test_recorded_responses(v2);
	test_recorded_responses(v1);
	test_malformed();
	gt_check_recordings_robust(SMP_GROUP_IMAGE);

	gt_recording_free(v2);
	gt_recording_free(v1);
	return tap_done();
}
